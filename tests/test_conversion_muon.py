"""Tier 3's Muon optimiser (snnlib.tiers.conversion.muon): the Newton-Schulz iteration maps
each singular value by its quintic and keeps the singular vectors, a step is Nesterov momentum
then the orthogonalised update on filters brought back to a fixed norm (channels-last or
not), and train_cnn with ``optimizer="muon"`` learns, keeps its filters at that norm, gives
Muon the convolutions' filters and SGD the rest, and resumes to the same weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from _tiny_cnn import class_images as _class_images

from snnlib import runs
from snnlib.tiers import conversion as C
from snnlib.tiers.conversion import cnn
from snnlib.tiers.conversion.muon import NEWTON_SCHULZ_COEFFICIENTS

pytestmark = pytest.mark.filterwarnings(
    "ignore:tier 3's reproducible arithmetic caps the CPU kernels:RuntimeWarning")

STEM = C.ConvNetParams(widths=(6, 8), pool_after=(0, 1), whitening_px=2, global_pool=True,
                       identity_init=True)
PHI_MAX = 1.2024
"""The largest value of the quintic a s + b s^3 + c s^5 on [0, 1] (about 1.20237, at s = 0.555),
which it never leaves: no singular value of the result is larger."""


def _quintic(s: np.ndarray, n: int) -> np.ndarray:
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    for _ in range(n):
        s = a * s + b * s ** 3 + c * s ** 5
    return s


@pytest.mark.parametrize("steps", [0, 1, 3, 5])
def test_orthogonalise_maps_each_singular_value_by_the_quintic(steps):
    g = torch.randn(6, 15, generator=torch.Generator().manual_seed(steps), dtype=torch.float64)
    u, s, vt = torch.linalg.svd(g, full_matrices=False)
    # (the norm plus 1e-7, so that a zero matrix stays zero)
    sigma = _quintic((s / (torch.linalg.matrix_norm(g) + 1e-7)).numpy(), steps)
    expected = u @ torch.diag(torch.from_numpy(sigma)) @ vt
    torch.testing.assert_close(C.orthogonalise(g, steps), expected, atol=1e-10, rtol=0)
    # a tall matrix: the same, transposed
    torch.testing.assert_close(C.orthogonalise(g.T, steps), expected.T, atol=1e-10, rtol=0)


def test_orthogonalise_brings_the_singular_values_near_one():
    # singular values from 1 down to 0.05: at least 0.035 of the Frobenius norm; three
    # iterations take every value from 0.035 to 1 into [0.682, PHI_MAX] (the smallest result,
    # 0.682, from a start near 0.11)
    gen = torch.Generator().manual_seed(0)
    u, _ = torch.linalg.qr(torch.randn(40, 10, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(90, 10, generator=gen, dtype=torch.float64))
    s = torch.logspace(0, math.log10(0.05), 10, dtype=torch.float64)
    out = C.orthogonalise(u @ torch.diag(s) @ v.T, 3)
    sv = torch.linalg.svdvals(out)[:10]  # rank 10: the other 30 are zero
    assert float(sv.min()) >= 0.68 and float(sv.max()) <= PHI_MAX  # a spread of 20 times gone
    # the singular vectors are kept: out is U f(S) V^T with the same U and V
    torch.testing.assert_close(u.T @ out @ v, torch.diag(torch.diag(u.T @ out @ v)),
                               atol=1e-10, rtol=0)
    # in float32 (what the optimiser computes in), the same within its rounding
    out32 = C.orthogonalise((u @ torch.diag(s) @ v.T).float(), 3)
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out, atol=1e-5, rtol=0)


def test_a_muon_step_is_nesterov_momentum_then_the_orthogonalised_update_at_fixed_norm():
    gen = torch.Generator().manual_seed(1)
    w0 = torch.randn(4, 2, 3, 3, generator=gen) * 0.3
    g1, g2 = (torch.randn(4, 2, 3, 3, generator=gen) for _ in range(2))
    w = nn.Parameter(w0.clone())
    lr, mu = 0.2, 0.6
    opt = C.Muon([w], lr=lr, momentum=mu)

    def expected_step(weight, update):
        at_norm = weight * 2.0 / torch.linalg.vector_norm(weight)  # sqrt(4 rows) = 2
        return at_norm - lr * C.orthogonalise(update.reshape(4, -1), 3).reshape(weight.shape)

    w.grad = g1.clone()
    opt.step()
    m1 = g1  # the buffer starts at zero: mu * 0 + g1
    w1 = expected_step(w0, g1 + mu * m1)
    torch.testing.assert_close(w.data, w1, atol=1e-6, rtol=0)
    w.grad = g2.clone()
    opt.step()
    m2 = mu * m1 + g2
    torch.testing.assert_close(w.data, expected_step(w1, g2 + mu * m2), atol=1e-6, rtol=0)
    # the update's size does not follow the gradient's: ten times the gradient, the same step
    w_a, w_b = nn.Parameter(w0.clone()), nn.Parameter(w0.clone())
    for weight, scale in ((w_a, 1.0), (w_b, 10.0)):
        weight.grad = scale * g1
        C.Muon([weight], lr=lr, momentum=mu).step()
    torch.testing.assert_close(w_a.data, w_b.data, atol=1e-6, rtol=0)
    # a weight without a gradient is left as it is
    idle = nn.Parameter(w0.clone())
    C.Muon([idle], lr=lr).step()
    assert torch.equal(idle.data, w0)


def test_muon_refuses_biases_and_bad_settings():
    with pytest.raises(ValueError, match="params must be weights of at least two dimensions"):
        C.Muon([nn.Parameter(torch.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        C.Muon([nn.Parameter(torch.zeros(2, 3))], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError, match="optimizer"):
        C.TrainParams(optimizer="adam")
    with pytest.raises(ValueError, match="muon_momentum"):
        C.TrainParams(muon_momentum=1.0)
    with pytest.raises(ValueError, match="orthogonalise: g must be a matrix"):
        C.orthogonalise(torch.zeros(2, 3, 4))


def _filter_norms(model: C.ConvNet) -> list[tuple[float, float]]:
    """(Frobenius norm, sqrt of the output channels) of each trainable convolution's filters."""
    return [(float(torch.linalg.vector_norm(m.weight.detach())), len(m.weight) ** 0.5)
            for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.requires_grad]


def test_training_with_muon_learns_moves_only_the_filters_and_resumes(tmp_path):
    images, labels = _class_images(96)
    x = C.images_to_tensor(images)
    p = C.TrainParams(epochs=3, batch_size=16, max_lr=0.05, translate_px=2, optimizer="muon",
                      muon_lr=0.1, lookahead=True, bias_lr_scale=8.0)
    torch.manual_seed(0)
    full = C.ConvNet(STEM)
    start = [m.weight.detach().clone() for m in full.modules()
             if isinstance(m, nn.Conv2d) and m.weight.requires_grad]
    C.train_cnn(full, images, labels, p, seed=1, progress=False)
    assert C.evaluate_cnn(full, x, labels)["accuracy"] >= 0.9
    # the filters moved: by a fraction of their norm (muon_lr per direction, about sqrt(rank)
    # directions) more than the rounding of any bare renormalisation would
    learned = [m.weight.detach() for m in full.modules()
               if isinstance(m, nn.Conv2d) and m.weight.requires_grad]
    for w0, w in zip(start, learned, strict=True):
        cos = float((w0 * w).sum() / (w0.norm() * w.norm()))
        assert cos < 0.99
    # the whitening filters stay as set from the patches; its bias learns (by SGD)
    whitened = C.ConvNet(STEM)
    C.set_whitening(whitened, x[:cnn.WHITENING_PATCH_IMAGES])
    torch.testing.assert_close(full.whitening.weight, whitened.whitening.weight)
    assert full.whitening.bias.ne(whitened.whitening.bias).any()

    def stop_after_two(epoch, history):
        if epoch == 2:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(C.ConvNet(STEM), images, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt", on_epoch=stop_after_two)
    saved = runs.load_torch(tmp_path / "cnn.pt")
    assert saved["epoch"] == 2 and saved["muon_optimizer"]["state"]  # momentum buffers kept
    # Muon holds the two convolutions' filters, not the whitening layer's; SGD the rest
    n_weights = len(list(C.ConvNet(STEM).parameters()))
    assert len(saved["muon_optimizer"]["param_groups"][0]["params"]) == len(STEM.widths)
    assert sum(len(g["params"]) for g in saved["optimizer"]["param_groups"]) == (
        n_weights - len(STEM.widths))
    resumed = C.ConvNet(STEM)
    C.train_cnn(resumed, images, labels, p, seed=1, progress=False,
                checkpoint=tmp_path / "cnn.pt")
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("optimizer", ["muon", "sgd"])
def test_muon_keeps_each_convolution_at_its_norm_where_sgd_does_not(optimizer):
    # one-cycle: the last step is at muon_lr / 25 / 1e4 (PyTorch's start at a 25th of the
    # peak, its end a 1e4th of that), so the norm sqrt(r) set before it moves by at most that
    # times the update's norm, PHI_MAX sqrt(rank) <= PHI_MAX sqrt(r): relative to sqrt(r),
    # muon_lr / 25 / 1e4 x PHI_MAX (twice that allowed, for float32 rounding)
    images, labels = _class_images(64)
    p = C.TrainParams(epochs=2, batch_size=16, max_lr=0.05, optimizer=optimizer, muon_lr=0.2)
    torch.manual_seed(0)
    net = C.ConvNet(C.ConvNetParams(widths=(6, 8), pool_after=(0, 1)))
    C.train_cnn(net, images, labels, p, seed=1, progress=False)
    deviations = [abs(norm - target) / target for norm, target in _filter_norms(net)]
    if optimizer == "muon":
        assert max(deviations) <= 2 * 0.2 / 25 / 1e4 * PHI_MAX
    else:  # SGD does not renormalise (PyTorch's start is near sqrt(r / 3)): the check can fail
        assert min(deviations) > 0.01


def test_a_muon_step_on_channels_last_filters_is_the_same_step():
    gen = torch.Generator().manual_seed(3)
    w0 = torch.randn(8, 4, 3, 3, generator=gen)
    grads = [torch.randn(8, 4, 3, 3, generator=gen) for _ in range(2)]
    plain = nn.Parameter(w0.clone())
    last = nn.Parameter(w0.clone().contiguous(memory_format=torch.channels_last))
    for w in (plain, last):
        opt = C.Muon([w], lr=0.1)
        for g in grads:
            w.grad = g.clone().contiguous(memory_format=(
                torch.channels_last if w is last else torch.contiguous_format))
            opt.step()
    assert last.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(last.data, plain.data, atol=1e-6, rtol=0)
