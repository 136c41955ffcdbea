"""Tier 3 building blocks (snnlib.tiers.conversion) against theory: batch-norm folding is
exact, normalisation keeps the function, IF rates follow the floor formula, the converted
network approaches its CNN as T grows."""

from __future__ import annotations

import copy
import dataclasses
import shutil
import warnings
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from torch import nn

from snnlib import neurons as N
from snnlib import runs
from snnlib.tiers import conversion as C

from _tiny_cnn import converted_agreement, spread_readout, trained_like

TINY = C.ConvNetParams(widths=(4, 6), pool_after=(0, 1))

pytestmark = pytest.mark.filterwarnings(
    "ignore:tier 3's reproducible arithmetic caps the CPU kernels:RuntimeWarning")
"""Tests compute before a run caps the kernels: the run warns that it cannot (and keys its
caches by the kernels it used); a fresh interpreter is tested apart."""


def _trained_like(params=TINY, seed=0) -> C.ConvNet:
    """A tiny CNN with non-trivial batch-norm statistics, in eval mode."""
    return trained_like(params, seed)


def test_params_are_validated():
    with pytest.raises(ValueError, match="pool_after"):
        C.ConvNetParams(widths=(4,), pool_after=(1,))
    with pytest.raises(ValueError, match="quantisation_levels"):
        C.ConvNetParams(quantisation_levels=0)


def test_folding_batchnorm_is_exact():
    net = _trained_like()
    x = torch.rand(5, 3, 32, 32)
    folded = C.fold_batchnorm(net)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded)
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)


AIRBENCH_ORDER = replace(TINY, pool_first=True, bn_scale=False, logit_scale=1 / 9)


def test_pool_first_puts_the_pool_before_the_batch_norm_and_folds_exactly():
    net = _trained_like(AIRBENCH_ORDER)
    kinds = [type(m).__name__ for m in net.features]
    assert kinds[:4] == ["Conv2d", "AvgPool2d", "BatchNorm2d", "ReLU"]
    assert kinds.count("AvgPool2d") == 2 and kinds[-1] == "Linear"
    x = torch.rand(5, 3, 32, 32)
    # the logits are scaled: the same weights with logit_scale 1 give 9 times as much
    plain = C.ConvNet(replace(AIRBENCH_ORDER, logit_scale=1.0)).eval()
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(plain(x), 9 * net(x), atol=1e-5, rtol=1e-5)
    own = net.features[-1].weight.detach().clone()
    folded = C.fold_batchnorm(net)
    assert [type(m).__name__ for m in folded][:3] == ["Conv2d", "AvgPool2d", "ReLU"]
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-5)
    assert torch.equal(net.features[-1].weight, own)  # the model's own layer is not scaled
    # its QCFS copy keeps the order, the frozen scales and the factor, and folds exactly too
    q = C.qcfs_from_relu(net, torch.rand(16, 3, 32, 32)).eval()
    assert all(not m.weight.requires_grad for m in q.modules() if isinstance(m, nn.BatchNorm2d))
    torch.testing.assert_close(C.fold_batchnorm(q)(x), q(x), atol=1e-5, rtol=1e-5)


def test_the_record_describes_the_airbench_order_and_training():
    from snnlib.tiers.conversion.record import describe_cnn, describe_training

    text = describe_cnn(asdict(AIRBENCH_ORDER))
    assert text == ("convolutions of 4, 6 channels, batch norm without a learned scale, ReLU, "
                    "2 x 2 average pooling straight after convolutions 1, 2, "
                    "one linear layer (logits times 0.111)")
    assert "straight" not in describe_cnn(asdict(TINY))
    train = asdict(C.TrainParams(epochs=5, batch_size=1024, max_lr=1.5, momentum=0.85,
                                 cycle_momentum=False, bias_lr_scale=64.0))
    assert describe_training(train) == (
        "5 epochs, batch 1024, one-cycle SGD up to lr 1.5, crops of up to 4 pixels and random "
        "flips, momentum 0.85 throughout, batch-norm biases learning 64 times faster")
    windows = asdict(C.TrainParams(epochs=4, small_crop_px=24, small_crop_epochs=1,
                                   cutout_px=12))
    assert describe_training(windows) == (
        "4 epochs, batch 128, one-cycle SGD up to lr 0.1, crops of up to 4 pixels and random "
        "flips, the first epoch on windows of 24 x 24 pixels, cutout of 12 x 12 pixels")
    distilled = asdict(C.TrainParams(epochs=2, distill=0.5, label_smoothing=0.2))
    assert describe_training(distilled) == (
        "2 epochs, batch 128, one-cycle SGD up to lr 0.1, crops of up to 4 pixels and random "
        "flips, label smoothing 0.2, distilled from a trained network (the teacher's share 0.5)")
    muon = asdict(C.TrainParams(epochs=8, optimizer="muon", augment=False, schedule="airbench",
                                cycle_momentum=False, momentum=0.85))
    assert describe_training(muon) == (
        "8 epochs, batch 128, SGD on airbench's linear schedule up to lr 0.1 (the convolutions' "
        "filters by Muon up to lr 0.17, momentum 0.6), momentum 0.85 throughout")


def test_without_bn_scale_only_the_shift_learns():
    net = C.ConvNet(AIRBENCH_ORDER)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    x = torch.rand(8, 3, 32, 32)
    net(x).sum().backward()
    assert all(m.weight.grad is None and m.bias.grad is not None for m in norms)
    with pytest.raises(ValueError, match="logit_scale"):
        C.ConvNetParams(logit_scale=0.0)
    with pytest.raises(TypeError, match="pool_first"):
        C.ConvNetParams(pool_first="yes")


def test_a_pool_first_network_converts():
    x = torch.rand(200, 3, 32, 32)
    out, _, _ = converted_agreement(C.fold_batchnorm(_trained_like(AIRBENCH_ORDER, seed=1)), x,
                                    [8, 256, 1024])
    acc = out["accuracy"]
    assert acc[8] < acc[256] < acc[1024] and acc[1024] >= 0.85
    # the neurons of a pooled layer sit at the pooled positions
    assert out["neurons"] == [4 * 16 * 16, 6 * 8 * 8]


def _activations(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """The output of each of ``net``'s activation layers on ``x``."""
    acts = []
    hooks = [net[k].register_forward_hook(lambda m, i, o: acts.append(o))
             for k in C.relu_layers(net)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in hooks:
            h.remove()
    return acts


def test_normalisation_keeps_the_function_and_bounds_the_activations():
    net = C.fold_batchnorm(_trained_like())
    x = torch.rand(64, 3, 32, 32)
    normed, lambdas = C.normalise(net, x, percentile=100.0)
    torch.testing.assert_close(normed(x), net(x), atol=1e-4, rtol=1e-4)
    assert len(lambdas) == 2 and all(lam > 0 for lam in lambdas)
    acts = _activations(normed, x)
    # max-norm: every activation at most 1 (one spike per step) on the calibration images
    assert all(float(a.detach().max()) <= 1.0 + 1e-5 for a in acts)
    assert max(float(a.detach().max()) for a in acts) > 0.99


@pytest.mark.parametrize("design", ["vgg", "airbench"])
def test_channel_wise_normalisation_keeps_the_function_and_bounds_each_channel(design):
    # ReLU(x / lambda) = ReLU(x) / lambda for lambda > 0, channel by channel, so the normalised
    # network computes the same logits; each channel's activations reach exactly its
    # percentile 1 (max-norm: its maximum is 1), where the layer-wise scale leaves most
    # channels well below 1
    net = C.fold_batchnorm(_trained_like(AIRBENCH_ORDER if design == "airbench" else TINY,
                                         seed=2))
    x = torch.rand(64, 3, 32, 32)
    for pct in (100.0, 99.0):
        normed, lambdas = C.normalise(net, x, percentile=pct, channel_wise=True)
        torch.testing.assert_close(normed(x), net(x), atol=1e-4, rtol=1e-4)
        acts = _activations(normed, x)
        assert [len(lam) for lam in lambdas] == [a.shape[1] for a in acts]
        for lam, a in zip(lambdas, acts):
            per_channel = a.transpose(0, 1).reshape(a.shape[1], -1)
            live = lam > 1e-6
            if pct == 100.0:
                torch.testing.assert_close(per_channel.amax(1)[live], torch.ones(int(live.sum())))
            else:
                # the percentile of a random sample of positions: close to 1, not exactly
                q = torch.quantile(per_channel, 0.99, dim=1)[live]
                assert float((q - 1).abs().max()) < 0.15
        if pct == 100.0:  # max-norm: the layer's scale is its largest channel's
            _, layer = C.normalise(net, x, percentile=pct)
            assert [float(lam.max()) for lam in lambdas] == pytest.approx(layer)


def test_channel_wise_normalisation_resolves_small_channels_finely():
    # channels whose activations differ in size by a factor of 10. With analog input the
    # first layer's rate after T steps is floor(T a / lambda) / T, so the activation it stands
    # for, lambda times the rate, is off by less than lambda / T: layer-wise lambda is set by
    # the large channels, so the small ones are resolved about ten times more coarsely than
    # with their own lambda
    x = torch.rand(100, 3, 32, 32)
    folded = C.fold_batchnorm(_trained_like(seed=1))
    with torch.no_grad():
        conv = next(m for m in folded if isinstance(m, nn.Conv2d))
        conv.weight[::2] *= 10
        conv.bias[::2] *= 10
    small = torch.arange(1, conv.out_channels, 2)
    error = {}
    for channel_wise in (False, True):
        normed, lambdas = C.normalise(folded, x, percentile=100.0, channel_wise=channel_wise)
        lam = (lambdas[0] if channel_wise
               else torch.full((conv.out_channels,), lambdas[0]))[small].view(1, -1, 1, 1)
        out = C.rates_vs_activations(normed, x, steps=[16], keep_rates=True)
        rate, act = out["rates"][16][0][:, small], out["activations"][0][:, small]
        assert float((act - rate).min()) >= 0 and float((act - rate).max()) < 1 / 16 + 1e-5
        error[channel_wise] = float(((act - rate) * lam).abs().mean())  # in the CNN's units
    assert error[True] < error[False] / 4


def test_channel_wise_normalisation_refuses_what_it_cannot_scale():
    net = C.fold_batchnorm(_trained_like())
    x = torch.rand(8, 3, 32, 32)
    with pytest.raises(TypeError, match="channel_wise"):
        C.normalise(net, x, channel_wise="yes")
    grouped = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                            nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.ReLU(), nn.Flatten(),
                            nn.Linear(4 * 32 * 32, 2))
    with pytest.raises(ValueError, match="groups=2"):
        C.normalise(grouped, x, channel_wise=True)


def test_converted_network_approaches_its_cnn_as_t_grows():
    x = torch.rand(200, 3, 32, 32)
    # decisions spread over the classes and close to each other: agreement needs many steps
    out, normed, cnn = converted_agreement(C.fold_batchnorm(_trained_like(seed=1)), x,
                                           [1, 4, 32, 256, 1024])
    acc = out["accuracy"]
    assert acc[4] < acc[32] < acc[256] < acc[1024] and acc[1024] >= 0.9
    assert len(out["spikes_per_image"]) == 2 and out["spikes_per_image"][0] > 0
    assert out["neurons"] == [4 * 32 * 32, 6 * 16 * 16]
    poisson = C.simulate(normed, x, cnn, steps=[256], input="poisson",
                         generator=torch.Generator().manual_seed(0))
    assert poisson["accuracy"][256] > 0.5


def test_qcfs_quantises_and_passes_gradients_straight_through():
    q = C.QCFS(levels=4, threshold=2.0)
    x = torch.tensor([-1.0, 0.0, 0.24, 0.26, 1.0, 1.9, 3.0], requires_grad=True)
    y = q(x)
    # lambda / L = 0.5 per level: floor(x * 2 + 0.5) / 2 clipped to [0, 2]
    assert y.tolist() == pytest.approx([0.0, 0.0, 0.0, 0.5, 1.0, 2.0, 2.0])
    y.sum().backward()
    assert x.grad[2:5].tolist() == pytest.approx([1.0, 1.0, 1.0])  # inside the clip range
    assert x.grad[0] == 0 and x.grad[-1] == 0


def test_if_neuron_starting_half_way_computes_qcfs_in_l_steps():
    # Bu et al. 2022: an IF neuron with threshold 1, v0 = 1/2 and constant input z fires
    # floor(L z + 1/2) clipped to [0, L] times in L steps: L times the QCFS activation
    levels = 4
    z = torch.linspace(-0.5, 1.5, 801) + 1e-3  # no input exactly on a step's edge
    layer = N.IFNeurons(v0=0.5)
    for _ in range(levels):
        layer(z[None, :])
    q = C.QCFS(levels=levels, threshold=1.0)
    torch.testing.assert_close(layer.spike_map / levels, q(z).detach(), atol=1e-6, rtol=0)


def test_signed_neurons_make_the_network_a_quantised_one_at_any_order_of_spikes():
    """With signed IF neurons (v0 = 1/2) a layer whose input per step stays within one
    threshold ends T steps with the net count max(0, floor(W n + T b + 1/2)) of its
    inputs' counts n: the network computes a quantised ReLU network with T levels exactly,
    whatever the order in which its spikes arrived. Plain IF neurons do not."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 24), nn.ReLU(), nn.Linear(24, 24),
                        nn.ReLU(), nn.Linear(24, 10))
    with torch.no_grad():
        net[1].weight.uniform_(-0.02, 0.02)
        net[1].bias.uniform_(0.0, 0.5)
        net[3].weight.zero_()  # each neuron: one excitatory and one inhibitory input,
        for row in range(24):  # so that |W s + b| < 1 for any spikes s
            a, b = torch.randperm(24)[:2]
            net[3].weight[row, a], net[3].weight[row, b] = 0.5, -0.45
        net[3].bias.uniform_(-0.04, 0.04)
        net[5].weight.uniform_(-1.0, 1.0)
        net[5].bias.zero_()
    images = torch.rand(300, 3, 1, 1).expand(300, 3, 32, 32).contiguous()  # a colour each
    steps = 6
    with torch.no_grad():
        n1 = torch.clamp(torch.floor(steps * (images.flatten(1) @ net[1].weight.T + net[1].bias)
                                     + 0.5), 0, steps)
        n2 = torch.clamp(torch.floor(n1 @ net[3].weight.T + steps * net[3].bias + 0.5), min=0)
        expected = (n2 @ net[5].weight.T + steps * net[5].bias).argmax(1).numpy()
    labels = np.zeros(300, dtype=int)
    signed = C.simulate(net, images, labels, steps=[steps], v0=0.5, signed=True)
    plain = C.simulate(net, images, labels, steps=[steps], v0=0.5)
    assert np.array_equal(signed["predictions"][steps], expected)
    assert len(set(expected.tolist())) > 3, "vacuous: the network gives one class"
    assert not np.array_equal(plain["predictions"][steps], expected), (
        "vacuous: plain IF neurons already compute the quantised network here")


def test_qcfs_threshold_gradient_is_the_straight_through_derivative():
    # h = lambda / L * (clip(x / lambda, 0, 1) L + 1/2 + [floor - identity], held fixed):
    # dh/dlambda = 0 below 0, 1 above lambda, (floor(x L / lambda + 1/2) - x L / lambda) / L between
    levels, lam = 4, 2.0
    x = torch.tensor([-1.0, 0.3, 0.7, 1.1, 1.9, 2.5])
    q = C.QCFS(levels=levels, threshold=lam)
    q(x).sum().backward()
    inside = x[1:5] * levels / lam
    expected = [0.0, *((torch.floor(inside + 0.5) - inside) / levels).tolist(), 1.0]
    torch.testing.assert_close(q.threshold.grad, torch.tensor(sum(expected)))
    for k, e in enumerate(expected):  # one input at a time
        one = C.QCFS(levels=levels, threshold=lam)
        one(x[k:k + 1]).sum().backward()
        assert float(one.threshold.grad) == pytest.approx(e, abs=1e-6), float(x[k])


def test_converted_qcfs_network_gives_its_first_layer_in_l_steps():
    # after normalisation with the trained thresholds, the first layer's IF neurons (v0 = 1/2,
    # constant input) count exactly L times the QCFS activation divided by lambda in L steps
    qnet = _trained_like(replace(TINY, quantisation_levels=4), seed=8)
    for m in qnet.features:
        if isinstance(m, C.QCFS):
            m.threshold.data.fill_(0.8)
    folded = C.fold_batchnorm(qnet)
    x = torch.rand(6, 3, 32, 32)
    normed, lambdas = C.normalise(folded, x)
    assert lambdas == pytest.approx([0.8, 0.8])
    with torch.no_grad():
        expected = folded[1](folded[0](x)) / 0.8  # the first QCFS activation, over lambda
    snn, spiking = C.convert._spiking_copy(normed, 0.5)
    counts = torch.zeros_like(expected)
    first = snn[:2]  # convolution and IF neurons
    for _ in range(4):
        counts += first(x)
    torch.testing.assert_close(counts / 4, expected, atol=1e-5, rtol=0)
    assert 0 < float(expected.mean()) < 1  # neither silent nor saturated


def test_qcfs_from_relu_rounds_each_activation_to_its_levels():
    relu = _trained_like(seed=7)
    x = torch.rand(40, 3, 32, 32)
    q = C.qcfs_from_relu(relu, x, levels=4, percentile=99.0)
    assert q.params.quantisation_levels == 4 and not q.training
    _, lambdas = C.normalise(C.fold_batchnorm(relu), x, percentile=99.0)
    acts = [m for m in q.features if isinstance(m, C.QCFS)]
    assert [float(m.threshold.detach()) for m in acts] == pytest.approx(lambdas)
    # layer by layer: fed the ReLU network's pre-activation, each QCFS gives the ReLU
    # activation rounded to the nearest multiple of lambda / L, clipped at lambda
    pre = []
    hooks = [m.register_forward_hook(lambda mod, i, o: pre.append(i[0]))
             for m in relu.features if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        relu(x)
    for h in hooks:
        h.remove()
    for act, lam, z in zip(acts, lambdas, pre):
        h = act(z).detach()
        below = (z > 0) & (z < lam)
        assert float((h - z.clamp(min=0))[below].abs().max()) <= lam / 8 + 1e-5
        assert torch.allclose(h[z >= lam], torch.tensor(lam))
        assert torch.all(h[z <= 0] == 0)
    # with many levels and the maximum as threshold, the copy is the ReLU network
    fine = C.qcfs_from_relu(relu, x, levels=4096, percentile=100.0)
    with torch.no_grad():
        torch.testing.assert_close(fine(x), relu(x), atol=2e-2, rtol=0)
    with pytest.raises(ValueError, match="ReLU or GELU ConvNet"):
        C.qcfs_from_relu(q, x)
    with pytest.raises(ValueError, match="levels"):
        C.qcfs_from_relu(relu, x, levels=0)


def test_gelu_network_computes_x_phi_x_and_converts_only_through_its_qcfs_copy():
    relu = _trained_like(seed=7)
    gelu = C.ConvNet(replace(relu.params, activation="gelu"))
    gelu.load_state_dict(relu.state_dict())
    gelu.eval()
    gelus = [m for m in gelu.features if isinstance(m, nn.GELU)]
    assert len(gelus) == sum(isinstance(m, nn.ReLU) for m in relu.features) > 0
    assert not any(isinstance(m, nn.ReLU) for m in gelu.features)
    # GELU(z) = z Phi(z), Phi the standard normal distribution function (not tanh's approximation)
    z = torch.linspace(-4.0, 4.0, 81, dtype=torch.float64)
    phi = 0.5 * (1 + torch.erf(z / 2 ** 0.5))
    torch.testing.assert_close(gelus[0](z), z * phi, atol=1e-12, rtol=0)
    x = torch.rand(40, 3, 32, 32)
    twin = C.relu_twin(gelu)
    assert twin.params.activation == "relu" and not twin.training
    assert C.relu_twin(copy.deepcopy(gelu).train()).training  # the model's mode, either way
    with torch.no_grad():
        torch.testing.assert_close(twin(x), relu(x), atol=0, rtol=0)  # the same weights, ReLUs
        assert float((gelu(x) - relu(x)).abs().max()) > 1e-3  # and GELUs compute otherwise
    with pytest.raises(ValueError, match="GELU activations"):
        C.fold_batchnorm(gelu)
    # nor does a folded network that still has GELUs simulate as if they were ReLUs
    def with_gelus(net):
        return nn.Sequential(*[nn.GELU() if isinstance(m, nn.ReLU) else m for m in net])

    folded = C.fold_batchnorm(twin)
    with pytest.raises(ValueError, match="GELU activations"):
        C.normalise(with_gelus(folded), x)
    normed, _ = C.normalise(folded, x)
    with pytest.raises(ValueError, match="GELU activations"):
        C.simulate(with_gelus(normed), x[:4], [0, 1, 2, 3], steps=[1])
    # its QCFS copy starts where the ReLU network's would: thresholds from the twin's activations
    q_gelu = C.qcfs_from_relu(gelu, x, levels=4, percentile=99.0)
    q_relu = C.qcfs_from_relu(relu, x, levels=4, percentile=99.0)
    assert q_gelu.params == q_relu.params and q_gelu.params.activation == "relu"
    for (k, a), (k2, b) in zip(q_gelu.state_dict().items(), q_relu.state_dict().items(),
                               strict=True):
        assert k == k2 and torch.equal(a, b), k
    with pytest.raises(ValueError, match="QCFS activations"):
        C.relu_twin(q_gelu)
    with pytest.raises(ValueError, match="activation must be 'relu'"):
        C.ConvNetParams(quantisation_levels=4, activation="gelu")
    # a GELU network's caches never stand for a ReLU network's, and a ReLU network keeps the
    # keys of the caches made before the field existed (the same class name and values)
    kept = [f.name for f in dataclasses.fields(relu.params) if f.name != "activation"]
    old = dataclasses.make_dataclass("ConvNetParams", [(n, object) for n in kept], frozen=True)
    key = runs.cache_key(old(**{n: getattr(relu.params, n) for n in kept}), version=1)
    assert runs.cache_key(relu.params, version=1) == key != runs.cache_key(gelu.params, version=1)
    assert "ReLU" in C.record.describe_cnn(dataclasses.asdict(relu.params))
    assert "GELU" in C.record.describe_cnn(dataclasses.asdict(gelu.params))


def test_augment_crops_and_flips_reproducibly():
    n, pad = 64, 4
    x = torch.arange(n * 3 * 32 * 32, dtype=torch.float32).reshape(n, 3, 32, 32)
    a = C.augment(x, torch.Generator().manual_seed(0))
    b = C.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    same = C.augment(x, torch.Generator().manual_seed(0), pad=0)
    flipped = 0
    for k in range(n):  # without padding, each image is itself or its mirror
        assert torch.equal(same[k], x[k]) or torch.equal(same[k], x[k].flip(2))
        flipped += not torch.equal(same[k], x[k])
    assert 0 < flipped < n  # a coin per image: some flip, some do not
    # with padding, each image is a 32 x 32 window of its reflection-padded self (or that
    # window's mirror) at an offset of 0 to 2 pad each way, and the offsets vary
    padded = torch.nn.functional.pad(x, (pad,) * 4, mode="reflect")
    offsets = set()
    for k in range(n):
        windows = {(i, j): padded[k, :, i:i + 32, j:j + 32]
                   for i in range(2 * pad + 1) for j in range(2 * pad + 1)}
        found = [place for place, w in windows.items()
                 if torch.equal(a[k], w) or torch.equal(a[k], w.flip(2))]
        assert len(found) == 1, k  # every pixel of the arange images differs: one place only
        offsets |= set(found)
    assert len(offsets) > 10


def test_training_learns_and_resumes_to_the_same_weights(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 128)  # two classes: dark or bright images, with noise
    images = np.clip(rng.normal(80 + 100 * labels[:, None, None, None], 30, (128, 32, 32, 3)),
                     0, 255).astype(np.uint8)
    p = C.TrainParams(epochs=4, batch_size=16, max_lr=0.05)
    torch.manual_seed(0)
    full = C.ConvNet(TINY)
    hist = C.train_cnn(full, images, labels, p, seed=1, progress=False, eval_images=images,
                       eval_labels=labels)
    assert hist["eval_accuracy"][-1] >= 0.9 and len(hist["loss"]) == 4

    def stop_after_two(epoch, history):
        if epoch == 2:  # of 4
            raise KeyboardInterrupt

    torch.manual_seed(0)
    interrupted = C.ConvNet(TINY)
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(interrupted, images, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt", on_epoch=stop_after_two)
    resumed = C.ConvNet(TINY)  # fresh weights: everything comes from the checkpoint
    again = C.train_cnn(resumed, images, labels, p, seed=1, progress=False,
                        checkpoint=tmp_path / "cnn.pt")
    assert len(again["loss"]) == 4
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="another training run"):
        C.train_cnn(C.ConvNet(TINY), images, labels, replace(p, max_lr=0.01), seed=1,
                    progress=False, checkpoint=tmp_path / "cnn.pt")
    other = images.copy()
    other[0, 0, 0, 0] ^= 1  # one pixel of other data: the checkpoint is not theirs
    with pytest.raises(ValueError, match="another training run"):
        C.train_cnn(C.ConvNet(TINY), other, labels, p, seed=1, progress=False,
                    checkpoint=tmp_path / "cnn.pt")
    with pytest.raises(ValueError, match="another training run"):
        C.train_cnn(C.ConvNet(C.ConvNetParams(widths=(4, 8), pool_after=(0, 1))), images, labels,
                    p, seed=1, progress=False, checkpoint=tmp_path / "cnn.pt")
    # a cache (run_tier) sets a stale checkpoint aside and trains afresh
    fresh = C.train_cnn(C.ConvNet(TINY), other, labels, replace(p, epochs=1), seed=1,
                        progress=False, checkpoint=tmp_path / "cnn.pt", restart_stale=True)
    assert len(fresh["loss"]) == 1 and (tmp_path / "cnn.pt.stale").exists()
    # fine-tuning: a checkpoint that started from other weights is not this run's
    with pytest.raises(ValueError, match="another training run"):
        C.train_cnn(C.ConvNet(TINY), other, labels, replace(p, epochs=1), seed=1,
                    progress=False, checkpoint=tmp_path / "cnn.pt", init_key="other start")


def _assert_resumes_to(full, net, images, labels, p, checkpoint, *, stop: int) -> None:
    """Training ``net`` (from ``torch.manual_seed(0)``, as ``full`` was) with ``p``, interrupted
    after epoch ``stop`` and resumed from ``checkpoint``, ends with ``full``'s weights."""
    def interrupt(epoch, history):
        if epoch == stop:
            raise KeyboardInterrupt

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(C.ConvNet(net), images, labels, p, seed=1, progress=False,
                    checkpoint=checkpoint, on_epoch=interrupt)
    resumed = C.ConvNet(net)
    C.train_cnn(resumed, images, labels, p, seed=1, progress=False, checkpoint=checkpoint)
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_crop_windows_are_windows_of_each_image_at_uniform_places():
    from snnlib.tiers.conversion.cnn import _crop_windows

    x = torch.arange(4000 * 2 * 6 * 6, dtype=torch.float32).reshape(4000, 2, 6, 6)
    y = _crop_windows(x, torch.Generator().manual_seed(0), 4)
    assert y.shape == (4000, 2, 4, 4)
    assert torch.equal(y, _crop_windows(x, torch.Generator().manual_seed(0), 4))
    places = []
    for n in range(len(x)):  # y[n] = x[n, :, a:a + 4, b:b + 4] for one place (a, b)
        a, b = divmod(int(y[n, 0, 0, 0] - x[n, 0, 0, 0]), 6)
        assert torch.equal(y[n], x[n, :, a:a + 4, b:b + 4])
        places.append(3 * a + b)
    counts = np.bincount(places, minlength=9)  # 3 x 3 places, 4000 / 9 each on average
    assert len(counts) == 9 and abs(counts - 4000 / 9).max() < 5 * np.sqrt(4000 / 9)


def test_cutout_sets_one_square_of_each_image_to_the_batch_mean_at_uniform_places():
    from snnlib.tiers.conversion.cnn import _cutout

    x = torch.rand(3000, 2, 6, 6) + torch.tensor([0.0, 5.0])[None, :, None, None]
    y = _cutout(x, torch.Generator().manual_seed(0), 4)
    assert torch.equal(y, _cutout(x, torch.Generator().manual_seed(0), 4))
    mean = x.mean(dim=(0, 2, 3))
    places = []
    for n in range(len(x)):
        changed = (y[n] != x[n]).any(dim=0)  # random floats: every cut pixel changes
        rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
        a, b = int(rows[0]), int(cols[0])
        assert changed.sum() == 16 and changed[a:a + 4, b:b + 4].all()
        torch.testing.assert_close(y[n, :, a:a + 4, b:b + 4],
                                   mean[:, None, None].expand(2, 4, 4))
        places.append(3 * a + b)
    counts = np.bincount(places, minlength=9)  # 3 x 3 places, 3000 / 9 each on average
    assert len(counts) == 9 and abs(counts - 3000 / 9).max() < 5 * np.sqrt(3000 / 9)


def test_training_on_small_windows_first_learns_resumes_and_keeps_the_global_pool(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 128)
    images = np.clip(rng.normal(80 + 100 * labels[:, None, None, None], 30, (128, 32, 32, 3)),
                     0, 255).astype(np.uint8)
    net = C.ConvNetParams(widths=(4, 6), pool_after=(0, 1), global_pool=True, pool="max",
                          global_max=True)
    p = C.TrainParams(epochs=4, batch_size=16, max_lr=0.05, small_crop_px=12,
                      small_crop_epochs=2, cutout_px=4)
    seen = []
    torch.manual_seed(0)
    full = C.ConvNet(net)
    forward = full.forward

    def watch(xb):
        seen.append(xb.shape[-1])
        return forward(xb)

    full.forward = watch
    hist = C.train_cnn(full, images, labels, p, seed=1, progress=False, eval_images=images,
                       eval_labels=labels)
    assert hist["eval_accuracy"][-1] >= 0.9
    # two epochs of 8 batches of 12 x 12 windows, each scored on whole images, then whole ones
    assert seen == [12] * 8 + [32] + [12] * 8 + [32] * (len(seen) - 17) and len(seen) > 17
    assert type(full.features[-3]) is nn.MaxPool2d  # the network's own pool again
    _assert_resumes_to(full, net, images, labels, p, tmp_path / "cnn.pt", stop=1)  # in windows
    # an interruption inside a window epoch gives the network its own pool back too
    broken = C.ConvNet(net)
    calls = []

    def fail_at_the_third_batch(xb):
        calls.append(xb.shape[-1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return C.ConvNet.forward(broken, xb)

    broken.forward = fail_at_the_third_batch
    with pytest.raises(KeyboardInterrupt):
        C.train_cnn(broken, images, labels, p, seed=1, progress=False)
    assert calls == [12, 12, 12] and type(broken.features[-3]) is nn.MaxPool2d
    # a network that flattens its last map cannot take windows; nor can one whose map vanishes
    with pytest.raises(ValueError, match="global_pool"):
        C.train_cnn(C.ConvNet(TINY), images, labels, p, seed=1, progress=False)
    with pytest.raises(ValueError, match="larger windows"):
        C.train_cnn(C.ConvNet(net), images, labels, replace(p, small_crop_px=3, cutout_px=0),
                    seed=1, progress=False)


@pytest.mark.parametrize("fields, match", [
    ({"small_crop_epochs": 2}, "needs small_crop_px"),
    ({"small_crop_px": 24, "small_crop_epochs": 0}, "from 1 to epochs - 1"),
    ({"small_crop_px": 24, "small_crop_epochs": 4}, "from 1 to epochs - 1"),
    ({"small_crop_px": 32, "small_crop_epochs": 2}, "smaller than the images"),
    ({"small_crop_px": 24, "small_crop_epochs": 2, "augment": False}, "augment=True"),
    ({"cutout_px": 8, "augment": False}, "augment=True"),
    ({"cutout_px": 32}, "smaller than the training images"),
    ({"cutout_px": 24, "small_crop_px": 24, "small_crop_epochs": 2}, "24 pixels, small_crop_px"),
    ({"small_crop_px": 24, "small_crop_epochs": 1, "epochs": 1}, "needs epochs >= 2"),
])
def test_small_windows_and_cutout_are_validated(fields, match):
    with pytest.raises(ValueError, match=match):
        C.TrainParams(**{"epochs": 4, **fields})


def test_airbench_schedule_rises_linearly_falls_to_zero_and_resumes(tmp_path):
    from snnlib.tiers.conversion.cnn import _airbench_lr_factor

    # 0.2 of the peak at the start, the peak after the warm-up, 0 at the end, linear between
    assert _airbench_lr_factor(0, 10, 50) == pytest.approx(0.2)
    assert _airbench_lr_factor(5, 10, 50) == pytest.approx(0.6)
    assert _airbench_lr_factor(10, 10, 50) == pytest.approx(1.0)
    assert _airbench_lr_factor(30, 10, 50) == pytest.approx(0.5)
    assert _airbench_lr_factor(50, 10, 50) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        C.TrainParams(schedule="airbench")
    with pytest.raises(ValueError, match="schedule must be"):
        C.TrainParams(schedule="cosine")
    with pytest.raises(ValueError, match="bn_momentum"):
        C.ConvNetParams(bn_momentum=0.0)
    with pytest.raises(ValueError, match="bn_eps"):
        C.ConvNetParams(bn_eps=-1.0)
    bn = next(m for m in C.ConvNet(replace(TINY, bn_momentum=0.4, bn_eps=1e-12)).modules()
              if isinstance(m, nn.BatchNorm2d))
    assert (bn.momentum, bn.eps) == (0.4, 1e-12)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 128)
    images = np.clip(rng.normal(80 + 100 * labels[:, None, None, None], 30, (128, 32, 32, 3)),
                     0, 255).astype(np.uint8)
    p = C.TrainParams(epochs=4, batch_size=16, max_lr=0.1, schedule="airbench",
                      cycle_momentum=False, momentum=0.85, lookahead=True, warmup=0.23)
    torch.manual_seed(0)
    full = C.ConvNet(TINY)
    hist = C.train_cnn(full, images, labels, p, seed=1, progress=False, eval_images=images,
                       eval_labels=labels, checkpoint=tmp_path / "full.pt")
    assert hist["eval_accuracy"][-1] >= 0.9
    # the scheduler ends at 0 after its 32 steps
    state = __import__("snnlib").runs.load_torch(tmp_path / "full.pt")
    assert state["scheduler"]["last_epoch"] == 32
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)
    # stopped after 2 of 4 epochs: the average is not set at that epoch's end, and must resume
    _assert_resumes_to(full, TINY, images, labels, p, tmp_path / "cnn.pt", stop=2)


@pytest.mark.parametrize("warmup, steps", [(0.2, 5), (1 / 3, 3), (1 / 17, 17)])
def test_one_cycle_schedule_with_a_warm_up_of_exactly_one_step(tmp_path, warmup, steps):
    # batches of 16 for 1 epoch: a warm-up of warmup x steps = 1 step (in floats, also one
    # float above warmup for 1/3 and 1/17), where PyTorch's OneCycleLR divides by zero
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 16 * steps)
    images = rng.integers(0, 256, (16 * steps, 32, 32, 3), dtype=np.uint8)
    p = C.TrainParams(epochs=1, batch_size=16, max_lr=0.1, warmup=warmup)
    assert p.schedule != "airbench" and p.warmup * steps == 1
    torch.manual_seed(0)
    C.train_cnn(C.ConvNet(TINY), images, labels, p, seed=1, progress=False,
                checkpoint=tmp_path / "one.pt")
    state = runs.load_torch(tmp_path / "one.pt")
    assert state["scheduler"]["last_epoch"] == steps
    # the weights' rate (the last group; the first holds the batch norms' biases) below its
    # peak after the anneal (PyTorch leaves the rate of one step more)
    assert 0 < state["optimizer"]["param_groups"][-1]["lr"] < 0.1


@pytest.mark.parametrize("n, steps", [(17, 1), (18, 2)])
def test_a_last_batch_of_one_image_sits_the_epoch_out(tmp_path, n, steps):
    # five pools: the last batch norms see 1 x 1 maps, where one image has no batch statistics
    # (PyTorch refuses it); a last batch of two images is trained on
    params = C.ConvNetParams(widths=(4,) * 6, pool_after=(0, 1, 2, 3, 4))
    assert params.final_side() == 1
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, n)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    p = C.TrainParams(epochs=2, batch_size=16, max_lr=0.1, warmup=0.3)
    torch.manual_seed(0)
    C.train_cnn(C.ConvNet(params), images, labels, p, seed=1, progress=False,
                checkpoint=tmp_path / "cnn.pt")
    assert runs.load_torch(tmp_path / "cnn.pt")["scheduler"]["last_epoch"] == 2 * steps
    with pytest.raises(ValueError, match="at least 2 images"):
        C.train_cnn(C.ConvNet(params), images[:1], labels[:1], p, seed=1, progress=False)
    with pytest.raises(ValueError, match="batch_size=1. leave the batch norms"):
        C.train_cnn(C.ConvNet(params), images, labels, replace(p, batch_size=1), seed=1,
                    progress=False)


def test_a_network_with_batch_norms_or_images_of_other_floats_are_refused_clearly():
    # model.features still normalises with its batch norms, which the weight scaling does not
    # carry through; float64 images (x / 255. from numpy) would fail inside conv2d
    model = trained_like(TINY)
    x = torch.rand(4, 3, 32, 32)
    with pytest.raises(ValueError, match=r"still has batch norms .*fold_batchnorm\(model\)"):
        C.normalise(model.features, x)
    with pytest.raises(ValueError, match="still has batch norms"):
        C.simulate(model.features, x, [0, 1, 2, 3], steps=(4,))
    folded = C.fold_batchnorm(model)
    with pytest.raises(TypeError, match=r"must be float32 images .*got dtype torch.float64"):
        C.normalise(folded, x.double())
    with pytest.raises(TypeError, match="must be float32 images"):
        C.evaluate_cnn(model, x.double(), [0, 1, 2, 3])
    assert C.normalise(folded, x)[0] is not None


def _synapses(path: nn.Sequential, shape) -> int:
    """Brute force: the non-zero entries of the path's Jacobian (random, non-zero weights)."""
    jac = torch.autograd.functional.jacobian(lambda v: path(v.reshape(1, *shape)).flatten(),
                                             torch.rand(int(np.prod(shape))))
    return int((jac != 0).sum())


def test_synaptic_operations_count_every_synapse_a_spike_crosses():
    params = C.ConvNetParams(widths=(3, 4, 5), pool_after=(1, 2))
    net = C.fold_batchnorm(_trained_like(params, seed=3))
    mods = list(net)  # conv relu conv relu pool conv relu pool flatten linear
    acts = C.relu_layers(net)
    side = 32
    # every neuron of every layer spikes exactly once: the accumulates of a layer are then
    # the synapses from its input layer, counted here from the Jacobian on random weights
    x = torch.zeros(1, 3, side, side)
    shapes = []
    for k, m in enumerate(mods):
        if k in acts:
            shapes.append(tuple(x.shape[1:]))
        x = m(x)
    maps = [torch.full(s[1:], float(s[0])) for s in shapes]
    ops = C.synaptic_operations(net, maps, steps=7)
    expected = []
    for j, a in enumerate(acts):
        nxt = next(k for k, m in enumerate(mods) if k > a and isinstance(m, (nn.Conv2d, nn.Linear)))
        expected.append(_synapses(nn.Sequential(*mods[a + 1:nxt + 1]), shapes[j]))
    assert ops["per_layer_accumulates"] == pytest.approx(expected)
    assert ops["accumulates"] == pytest.approx(sum(expected))
    # the CNN: output units x fan-in, the padded borders included (the usual count)
    macs = [3 * 32 * 32 * 3 * 9, 4 * 32 * 32 * 3 * 9, 5 * 16 * 16 * 4 * 9, 10 * 5 * 8 * 8]
    assert ops["cnn_multiply_accumulates"] == pytest.approx(sum(macs))
    # analog input: the first layer multiplies the image every step
    assert ops["multiply_accumulates"] == pytest.approx(7 * macs[0])
    # biases: one addition per neuron (and output unit) per step
    assert ops["bias_additions"] == pytest.approx(7 * (3 * 1024 + 4 * 1024 + 5 * 256 + 10))
    # one spike in a corner of layer 1 crosses 4 taps of layer 2's 3 x 3 kernels, one in
    # the middle 9 (zero padding): x 4 output channels
    corner, centre = torch.zeros(side, side), torch.zeros(side, side)
    corner[0, 0], centre[10, 10] = 1.0, 1.0
    one = [torch.zeros(s[1:]) for s in shapes]
    ops_corner = C.synaptic_operations(net, [corner] + one[1:], steps=1)
    ops_centre = C.synaptic_operations(net, [centre] + one[1:], steps=1)
    assert ops_corner["per_layer_accumulates"][0] == 4 * 4
    assert ops_centre["per_layer_accumulates"][0] == 9 * 4
    with pytest.raises(ValueError, match="shape"):
        C.synaptic_operations(net, [torch.zeros(side * side)] + one[1:], steps=1)
    with pytest.raises(ValueError, match="one spike map per spiking layer"):
        C.synaptic_operations(net, one[1:], steps=1)
    # Poisson input: its spikes are accumulates through the first layer's synapses
    poisson = C.synaptic_operations(net, maps, steps=7, input_map=torch.full((side, side), 3.0))
    assert poisson["multiply_accumulates"] == 0
    assert poisson["per_layer_accumulates"][0] == pytest.approx(
        _synapses(nn.Sequential(mods[0]), (3, side, side)))


def test_signed_simulation_in_parts_and_a_short_run_read_the_long_one(tmp_path, monkeypatch):
    """What run_tier relies on for its short QCFS simulations: with signed neurons, the
    parts give the whole run, and a run of T steps predicts what a longer run predicts at
    T, while its operations are counted over T steps only (and differ from plain ones)."""
    net = C.fold_batchnorm(_trained_like(seed=6))
    x = torch.rand(24, 3, 32, 32)
    normed, _ = C.normalise(net, x, percentile=99.9)
    labels = net(x).argmax(1).numpy()
    events, net_counts = [], []  # per spiking layer: |spikes| and spikes, summed
    real_copy = C.convert._spiking_copy

    def watched_copy(*args, **kwargs):
        snn, spiking = real_copy(*args, **kwargs)
        for j, layer in enumerate(spiking):
            events.append(0.0)
            net_counts.append(0.0)

            def hook(module, inputs, out, j=j):
                events[j] += float(out.float().abs().sum())
                net_counts[j] += float(out.float().sum())
            layer.register_forward_hook(hook)
        return snn, spiking

    monkeypatch.setattr(C.convert, "_spiking_copy", watched_copy)
    long = C.simulate(normed, x, labels, steps=[4, 8, 32], v0=0.5, signed=True)
    monkeypatch.undo()
    # a negative spike is an event like a positive one: the counts are of |spikes|
    assert long["spikes_per_image"] == pytest.approx([e / len(x) for e in events])
    assert any(e > c + 1 for e, c in zip(events, net_counts))  # negative spikes happen
    plain = C.simulate(normed, x, labels, steps=[4, 8, 32], v0=0.5)
    for t in (4, 8):
        short = C.simulate_parts(normed, x, labels, steps=[t], v0=0.5, signed=True,
                                 folder=tmp_path / f"T{t}", part_images=10, progress=False)
        assert np.array_equal(short["predictions"][t], long["predictions"][t])
        assert short["accuracy"][t] == long["accuracy"][t]
        ops = short["synaptic_ops_per_image"]
        assert 0 < ops["accumulates"] < long["synaptic_ops_per_image"]["accumulates"]
        # the analog image enters the first layer every step: T times one image's MACs
        assert ops["multiply_accumulates"] == pytest.approx(
            long["synaptic_ops_per_image"]["multiply_accumulates"] * t / 32)
    # and they differ from the plain neurons' (which never fire negative spikes)
    assert long["spikes_per_image"] != pytest.approx(plain["spikes_per_image"])


def test_smallest_steps_within_reads_the_curve():
    acc = {1: 0.50, 2: 0.80, 4: 0.895, 8: 0.899, 16: 0.9}
    assert C.smallest_steps_within(acc, 0.9, 1.0) == 4
    assert C.smallest_steps_within(acc, 0.9, 0.1) == 8
    assert C.smallest_steps_within(acc, 0.95, 1.0) is None


def test_simulation_in_parts_equals_one_run_and_resumes(tmp_path):
    net = C.fold_batchnorm(_trained_like(seed=4))
    x = torch.rand(30, 3, 32, 32)
    normed, _ = C.normalise(net, x, percentile=99.9)
    labels = net(x).argmax(1).numpy()
    whole = C.simulate(normed, x, labels, steps=[4, 16])
    parts = C.simulate_parts(normed, x, labels, steps=[4, 16], folder=tmp_path / "a",
                             part_images=12, progress=False)
    assert parts["accuracy"] == whole["accuracy"]
    for t in (4, 16):
        assert np.array_equal(parts["predictions"][t], whole["predictions"][t])
    assert parts["rate_per_step"] == pytest.approx(whole["rate_per_step"])
    assert parts["spikes_per_image"] == pytest.approx(whole["spikes_per_image"])
    assert parts["synaptic_ops_per_image"]["accumulates"] == pytest.approx(
        whole["synaptic_ops_per_image"]["accumulates"])
    assert parts["rate_per_step"] == pytest.approx(
        [s / (m * 16) for s, m in zip(parts["spikes_per_image"], parts["neurons"])])
    assert all(0 < r < 1 for r in parts["rate_per_step"])
    # bursts are passed on: the same predictions and events as simulate's
    burst = C.simulate(normed, x, labels, steps=[4, 16], v0=0.5, signed=True, burst=2)
    parts2 = C.simulate_parts(normed, x, labels, steps=[4, 16], folder=tmp_path / "b",
                              part_images=12, progress=False, v0=0.5, signed=True, burst=2)
    for t in (4, 16):
        assert np.array_equal(parts2["predictions"][t], burst["predictions"][t])
    assert parts2["spikes_per_image"] == pytest.approx(burst["spikes_per_image"])
    assert parts2["spikes_per_image"] != pytest.approx(C.simulate(
        normed, x, labels, steps=[4, 16], v0=0.5, signed=True)["spikes_per_image"])
    first = C.simulate_parts(normed, x, labels, steps=[4, 16], folder=tmp_path / "p",
                             input="poisson", seed=5, part_images=12, progress=False)
    # a part is recomputed when anything it depends on changes, and only then
    folder = tmp_path / "a"
    mtimes = lambda: [p.stat().st_mtime_ns for p in sorted(folder.glob("part_*.npz"))]  # noqa: E731
    before = mtimes()
    C.simulate_parts(normed, x, labels, steps=[4, 16], folder=folder, part_images=12,
                     progress=False)
    assert mtimes() == before
    for change in ({"bf16": True}, {"steps": [4, 32]}, {"input": "poisson"}, {"seed": 9},
                   {"v0": 0.5}, {"signed": True}, {"burst": 2}):
        C.simulate_parts(normed, x, labels, folder=folder, part_images=12, progress=False,
                         **{"steps": [4, 16], **change})
        assert all(a != b for a, b in zip(mtimes(), before)), change
        before = mtimes()
    nudged = copy.deepcopy(normed)
    with torch.no_grad():
        nudged[0].weight[0, 0, 0, 0] += 1e-3
    C.simulate_parts(nudged, x, labels, steps=[4, 16], folder=folder, part_images=12,
                     progress=False)
    assert all(a != b for a, b in zip(mtimes(), before))
    before = mtimes()
    y = x.clone()
    y[-1, 0, 0, 0] += 0.01  # the last image only: only the last part is redone
    C.simulate_parts(nudged, y, labels, steps=[4, 16], folder=folder, part_images=12,
                     progress=False)
    after = mtimes()
    assert after[:2] == before[:2] and after[2] != before[2]
    with pytest.raises(ValueError, match="one label per image"):
        C.simulate_parts(normed, x, labels[:-1], steps=[4], folder=folder, progress=False)

    (tmp_path / "p" / "part_000012_000024.npz").unlink()  # as if killed in that part
    again = C.simulate_parts(normed, x, labels, steps=[4, 16], folder=tmp_path / "p",
                             input="poisson", seed=5, part_images=12, progress=False)
    for t in (4, 16):
        assert np.array_equal(first["predictions"][t], again["predictions"][t])
    assert again["input_spikes_per_image"] == pytest.approx(first["input_spikes_per_image"])
    # Poisson input spikes: intensity x steps on average, position by position
    assert again["input_spikes_per_image"] == pytest.approx(
        float(x[0:1].numel()) * 16 * float(x.mean()), rel=0.02)
    expected_map = x.sum(dim=1).mean(dim=0) * 16
    assert float(np.abs(again["synaptic_ops_per_image"]["per_layer_accumulates"][0]
                        / first["synaptic_ops_per_image"]["per_layer_accumulates"][0] - 1)) < 1e-6
    assert float((torch.as_tensor(again["input_map"]) - expected_map).abs().mean()) < 0.1 * float(
        expected_map.mean())


def test_cli_runs_tier3_at_ci_size_and_resumes(tmp_path, monkeypatch):
    import json

    from snnlib import data
    from snnlib.__main__ import main

    rng = np.random.default_rng(0)
    fake = data.Dataset(rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8),
                        np.repeat(np.arange(10), 20), data.CLASS_NAMES, str(tmp_path))
    monkeypatch.setattr(data, "load_cifar10", lambda split: fake)
    out, results = tmp_path / "run", tmp_path / "conversion.json"
    args = ["run", "conversion", "--profile", "ci", "--out", str(out), "--results", str(results)]
    from snnlib.tiers.conversion import run as tier_run
    evaluations, evaluate = [], tier_run._evaluate_cnn

    def spy(model, images, labels, **kw):
        found = evaluate(model, images, labels, **kw)
        evaluations.append((len(images), kw.get("tta", False), found["accuracy"]))
        return found

    monkeypatch.setattr(tier_run, "_evaluate_cnn", spy)
    assert main(args) == 0
    rec = runs.load_record(results, tier="conversion")
    assert rec.train_images == 200 and rec.test_images == 50 and rec.device == "cpu"
    assert rec.provenance["versions"]["torch"] and rec.provenance["device"]["type"] == "cpu"
    assert rec.time_steps == 32 and rec.synaptic_events.accumulates > 0
    short = [f"QCFS fine-tuned, T = {t}" for t in C.QCFS_SHORT_STEPS]
    assert set(rec.variants) == {"the CNN (not spiking)", "QCFS fine-tuned, T = 16", *short}
    record = rec.specific
    # each short simulation is a variant of its own: its accuracy, its operations, its T
    for t, name in zip(C.QCFS_SHORT_STEPS, short):
        ran = record["qcfs"]["short_simulations"][str(t)]
        assert rec.variants[name].accuracy == ran["accuracy"]
        assert rec.variants[name].time_steps == t
        assert ran["operations_per_image"]["accumulates"] > 0
        assert sum(map(sum, ran["confusion"])) == rec.test_images
    longer = record["qcfs"]["short_simulations"]
    assert (longer["8"]["operations_per_image"]["accumulates"]
            > longer["4"]["operations_per_image"]["accumulates"])
    assert set(record["snn"]["accuracy_vs_steps"]) == {"1", "2", "4", "8", "16", "32"}
    assert record["snn_images"] == 50 and record["variants"]["images"] == 20
    # the copies whose neurons start half-way, layer by layer and channel by channel, beside
    # the others; the same images, so the same CNN decisions: they differ in the spiking copy
    var = record["variants"]["accuracy_vs_steps"]
    for name in (C.run.HALF_VARIANT, C.run.CHANNEL_VARIANT):
        assert set(var[name]) == {"1", "2", "4", "8", "16", "32"}
    assert C.run.HALF_VARIANT == "analog, p99.9, v0 = 0.5"
    assert C.CHANNEL_PERCENTILE in C.PERCENTILES  # its layer-wise network is one of the tier's
    assert C.run.CHANNEL_VARIANT == "analog, p99.9, channel-wise, v0 = 0.5"
    # v0 = 0.5 was simulated: starting half-way, the neurons fire more (up to one spike more
    # each), so more spikes cross synapses than in the p99.9 copy starting at 0
    ops = record["variants"]["accumulates_per_image"]
    assert ops[C.run.HALF_VARIANT] > ops["analog, p99.9"]
    assert record["cnn"]["multiply_accumulates_per_image"] > 0
    # the ci profile's arithmetic: float32, fixed threads (no bfloat16 CNN measured)
    assert rec.parameters["numerics"] == asdict(C.numerics.REPRODUCIBLE)
    assert rec.parameters["numerics_in_use"]["threads"] == C.numerics.REPRODUCIBLE_THREADS
    assert record["cnn"]["bfloat16"] is None and rec.parameters["snn_bf16"] is False
    firing = rec.firing
    assert list(firing) == [f"conv{k}" for k in range(1, 7)]
    assert all(0 <= f["rate_per_step"] <= 1 for f in firing.values())
    qcfs = record["qcfs"]
    assert set(qcfs["accuracy_vs_steps"]) == {"1", "2", "4", "8", "16"}
    assert qcfs["levels"] == C.QCFS_LEVELS and len(qcfs["thresholds"]) == 6
    # simulated (and calibrated) with the tier's bursts, in folders of their own
    assert qcfs["burst"] == C.QCFS_BURST > 1 and f"bursts of up to {C.QCFS_BURST}" in qcfs["what"]
    assert (out / f"snn_qcfs_signed_burst{C.QCFS_BURST}_calibrated").is_dir()
    assert qcfs["training"]["epochs"] == 1 and qcfs["operations_per_image"]["accumulates"] > 0
    assert qcfs["training"]["max_lr"] == C.QCFS_MAX_LR  # the vgg design's (ci)
    # the tier's QCFS copy is bias-calibrated; the uncalibrated one is recorded beside it
    cal = qcfs["bias_calibration"]
    assert cal["steps"] == C.QCFS_CALIBRATION_STEPS and cal["images"] == 200
    assert list(cal["mean_abs_correction"]) == list(firing)
    assert all(0 <= cal["mean_abs_correction"][k] <= cal["max_abs_correction"][k]
               for k in firing)
    assert sum(cal["max_abs_correction"].values()) > 0
    assert set(qcfs["uncalibrated"]["accuracy_vs_steps"]) == set(qcfs["accuracy_vs_steps"])
    # the record's corrections are the cached ones, which rebuilt the simulated network
    cached = runs.load_npz(out / "qcfs_calibration.npz")
    assert [cal["mean_abs_correction"][k] for k in firing] == pytest.approx(
        [float(np.abs(cached[f"layer_{j}"]).mean()) for j in range(len(firing))])
    saved = sorted(out.rglob("*.npz")) + [out / "cnn.pt", out / "cnn_qcfs.pt"]
    mtimes = [p.stat().st_mtime_ns for p in saved]
    assert main(args) == 0  # everything cached: resumes without training or simulating again
    assert [p.stat().st_mtime_ns for p in saved] == mtimes
    again = runs.load_record(results)
    assert again.specific["snn"] == rec.specific["snn"] and again.accuracy == rec.accuracy
    assert json.loads(results.read_text())["format"] == runs.RECORD_FORMAT
    # the CNN's six-view accuracy is an evaluation with tta_logits over all the test images
    n_test = max(n for n, _, _ in evaluations)  # the CNN's test images (the SNN's are fewer)
    assert (n_test, True, record["cnn"]["accuracy_six_views"]) in evaluations
    assert (n_test, False, record["cnn"]["accuracy"]) in evaluations


def test_rates_approach_the_activations_they_stand_for():
    net = C.fold_batchnorm(_trained_like(seed=6))
    x = torch.rand(20, 3, 32, 32)
    normed, _ = C.normalise(net, x, percentile=99.0)
    r = C.rates_vs_activations(normed, x, steps=[1, 8, 64, 512], keep_rates=True)
    for err in r["error"]:
        # an IF neuron's rate after T steps is within 1/T of its (clipped) input in the first
        # layer; deeper layers add their inputs' errors: the error falls as T grows
        assert err[512] < err[8] < err[1]
    first = r["error"][0]
    assert first[64] <= 1 / 64 + 1e-6 and first[512] <= 1 / 512 + 1e-6
    for t in (64, 512):  # every first-layer neuron: floor(T a) / T, within 1/T below a
        gap = r["rates"][t][0] - r["activations"][0].clamp(max=1)
        assert -1 / t - 1e-6 <= float(gap.min()) and float(gap.max()) <= 1e-6
    assert 0 < r["clipped"][0] < 0.05  # normalised at p99: about 1% of activations above 1
    assert r["rates"][512][0].shape == r["activations"][0].shape
    with pytest.raises(ValueError, match="steps"):
        C.rates_vs_activations(normed, x, steps=[0])


@pytest.mark.parametrize("v0", [0.0, 0.5])
def test_recorded_spikes_are_rate_coded_activations(v0):
    net = C.fold_batchnorm(_trained_like(seed=7))
    x = torch.rand(10, 3, 32, 32)
    normed, _ = C.normalise(net, x, percentile=99.0)
    steps = 64
    rec = C.convert.record_spikes(normed, x[3], steps=steps, neurons_per_layer=5, v0=v0)
    assert rec["steps"] == steps and len(rec["spikes"]) == 2
    for spikes, neurons, a in zip(rec["spikes"], rec["neurons"], rec["activations"]):
        assert spikes.dtype == torch.bool and spikes.shape == (steps, 1, 5) and len(neurons) == 5
        assert bool((a > 0).all()) and bool((a[1:] >= a[:-1]).all())  # weakest to strongest
    # the first layer's input is constant: exactly the IF staircase, n_T = clip(floor(T a + v0))
    a = rec["activations"][0].double().numpy()
    counts = rec["spikes"][0].sum(dim=(0, 1)).numpy()
    on_edge = np.abs(steps * a + v0 - np.round(steps * a + v0)) < 1e-4
    expected = steps * N.if_rate(a, steps, v0=v0)
    np.testing.assert_array_equal(counts[~on_edge], expected[~on_edge])
    assert counts.sum() > 0, "vacuous"
    # every layer: the same spikes as rates_vs_activations' run of the same image
    trace = C.rates_vs_activations(normed, x[3:4], steps=[steps], keep_rates=True, v0=v0)
    for j, (spikes, neurons) in enumerate(zip(rec["spikes"], rec["neurons"])):
        rates = trace["rates"][steps][j][0].flatten()[neurons]
        torch.testing.assert_close(spikes.sum(dim=(0, 1)).float(), rates * steps)
        torch.testing.assert_close(rec["activations"][j],
                                   trace["activations"][j][0].flatten()[neurons])


def test_recorded_neurons_span_the_positive_activations():
    net = C.fold_batchnorm(_trained_like(seed=8))
    x = torch.rand(4, 3, 32, 32)
    normed, _ = C.normalise(net, x)
    rec = C.convert.record_spikes(normed, x[0], steps=4, neurons_per_layer=3)
    trace = C.rates_vs_activations(normed, x[:1], steps=[1], keep_rates=True)
    for neurons, acts in zip(rec["neurons"], trace["activations"]):
        positive = acts[0].flatten()[acts[0].flatten() > 0].sort().values
        # the smallest, the middle and the largest positive activation
        expected = positive[[0, round((len(positive) - 1) / 2), len(positive) - 1]]
        torch.testing.assert_close(acts[0].flatten()[neurons], expected)
    everything = C.convert.record_spikes(normed, x[0][None], steps=2, neurons_per_layer=10**6)
    assert len(everything["neurons"][0]) == int((trace["activations"][0] > 0).sum())
    for bad, match in (({"image": x[:2]}, "image"), ({"image": x[0].numpy()}, "image"),
                       ({"steps": 0}, "steps"), ({"neurons_per_layer": 0}, "neurons_per_layer"),
                       ({"v0": 1.5}, "v0")):
        kwargs = {"image": x[0], "steps": 4, **bad}
        with pytest.raises((ValueError, TypeError), match=match):
            C.convert.record_spikes(normed, **kwargs)


def _qcfs_pass(q: C.QCFS, x: torch.Tensor, g: torch.Tensor) -> tuple:
    """Output, input gradient and threshold gradient of one forward and backward pass."""
    x = x.clone().requires_grad_()
    q.threshold.grad = None
    y = q(x)
    y.backward(g)
    return y.detach(), x.grad, q.threshold.grad.clone()


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU")
def test_compiled_qcfs_gives_the_uncompiled_activation_and_its_straight_through_gradients(
        monkeypatch):
    from snnlib.tiers.conversion import cnn, numerics

    monkeypatch.setattr(cnn._Compiled, "fn", None)  # compile afresh in this test
    q = C.QCFS(levels=4, threshold=1.5)
    gen = torch.Generator().manual_seed(0)
    for shape in [(6, 5, 7, 7), (3, 9, 4, 4)]:  # two layers' shapes: one dynamic-shape code
        x = torch.randn(*shape, generator=gen) * 1.5
        g = torch.randn(*shape, generator=gen)
        eager = _qcfs_pass(q, x, g)
        with numerics.numerics_scope(numerics.Numerics(compile_activations=True)):
            compiled = _qcfs_pass(q, x, g)
        assert callable(cnn._Compiled.fn)  # the compiled code ran: no fallback
        torch.testing.assert_close(compiled[0], eager[0], rtol=0, atol=0)
        torch.testing.assert_close(compiled[1], eager[1], rtol=0, atol=0)
        # dh/dlambda = floor(x L / lambda + 1/2) / L - x / lambda inside [0, lambda], 1 above it
        z = x / 1.5
        inside = (z >= 0) & (z <= 1)
        dlam = torch.where(inside, torch.floor(z * 4 + 0.5) / 4 - z, (z > 1).float())
        torch.testing.assert_close(compiled[2], (g * dlam).sum(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(compiled[1], g * inside)  # 1 inside [0, lambda], else 0
    with torch.no_grad(), numerics.numerics_scope(numerics.Numerics(compile_activations=True)):
        monkeypatch.setattr(cnn, "_compiled_qcfs", None)  # inference never calls it
        assert torch.equal(q(x), eager[0])


def test_qcfs_falls_back_to_the_uncompiled_activation_where_compiling_fails(monkeypatch):
    from snnlib.tiers.conversion import cnn, numerics

    calls = []

    def no_compiler(x, lam, levels):
        calls.append(x.shape)
        raise torch._dynamo.exc.BackendCompilerFailed(
            lambda: None, RuntimeError("No working C++ compiler found\nmore"), None)

    monkeypatch.setattr(cnn._Compiled, "fn", no_compiler)
    q = C.QCFS(levels=4, threshold=2.0)
    x = torch.tensor([-1.0, 0.26, 1.0, 3.0])
    with numerics.numerics_scope(numerics.Numerics(compile_activations=True)):
        with pytest.warns(RuntimeWarning, match="RuntimeError: No working C.. compiler found\\)"):
            y = q(x)
        assert y.tolist() == pytest.approx([0.0, 0.5, 1.0, 2.0])
        assert cnn._Compiled.fn is False
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once: later calls are quietly uncompiled
            assert torch.equal(q(x), y)
    assert len(calls) == 1


def _constant_current_net(bias) -> nn.Sequential:
    """A normalised network whose one spiking layer gets the constant current ``bias[c]`` in
    channel c at every position and step (a 1 x 1 convolution with zero weights)."""
    conv = nn.Conv2d(3, len(bias), 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor(bias))
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(len(bias) * 32 * 32, 3))


def test_calibrate_biases_adds_the_mean_rate_error_of_constant_currents():
    # IF neurons from v0 = 0 fed z in [0, 1) fire floor(T z) times in T steps: the rate error
    # against the ReLU activation z is z - floor(T z) / T, the same at every position
    z = [0.3, 0.55, 0.9, 0.05, 0.7]
    net = _constant_current_net(z)
    x = torch.rand(6, 3, 32, 32)
    for steps in (3, 4, 7):
        out, corrections = C.calibrate_biases(net, x, steps=steps, levels=None, v0=0.0,
                                              signed=False, burst=1)
        expected = torch.tensor([v - np.floor(steps * v) / steps for v in z])
        assert len(corrections) == 1
        torch.testing.assert_close(corrections[0], expected.float(), atol=1e-6, rtol=0)
        torch.testing.assert_close(out[0].bias, torch.tensor(z) + expected.float(), atol=1e-6,
                                   rtol=0)
    torch.testing.assert_close(net[0].bias, torch.tensor(z))  # net itself unchanged


@pytest.mark.parametrize("burst", [2, 4, 8])
def test_calibrate_biases_with_bursts_adds_the_error_of_g_t_levels(burst):
    # neurons firing bursts of up to G spikes of 1/G from v0 = 0, fed z in [0, 1), emit
    # floor(G T z) / G in T steps: the rate error against z is z - floor(G T z) / (G T)
    z = [0.3, 0.55, 0.9, 0.05, 0.7]
    net = _constant_current_net(z)
    x = torch.rand(6, 3, 32, 32)
    for steps in (1, 3, 4):
        _, corrections = C.calibrate_biases(net, x, steps=steps, levels=None, v0=0.0,
                                            signed=False, burst=burst)
        n = burst * steps
        expected = torch.tensor([v - np.floor(n * v) / n for v in z]).float()
        torch.testing.assert_close(corrections[0], expected, atol=1e-6, rtol=0)
        # (not the error of one spike a step)
        one = torch.tensor([v - np.floor(steps * v) / steps for v in z]).float()
        assert float((corrections[0] - one).abs().max()) > 0.05


def _calibration_net(seed: int = 0) -> nn.Sequential:
    """A normalised two-layer network whose currents spread over [-1, 2] (random weights)."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 8 * 8, 10))
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.25)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.1)
    return net


def test_calibrate_biases_leaves_a_qcfs_layer_with_constant_input_alone_at_t_equal_l():
    # Bu et al.'s result: from v0 = 1/2, T = L steps of a constant current z give
    # clip(floor(L z + 1/2), 0, L) spikes, the QCFS staircase exactly, so the first layer
    # (which gets the image as a constant current) needs no correction; at T != L it does
    net = _calibration_net()
    x = torch.rand(30, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    _, at_l = C.calibrate_biases(net, x, steps=4, levels=4, v0=0.5, signed=True, burst=1)
    assert float(at_l[0].abs().max()) < 1e-6
    _, at_2 = C.calibrate_biases(net, x, steps=2, levels=4, v0=0.5, signed=True, burst=1)
    assert float(at_2[0].abs().max()) > 2e-3
    assert [e.shape for e in at_l] == [(8,), (8,)]
    # with bursts of up to G spikes of 1/G, the staircase of G T levels: L = 8 at T = 4, G = 2
    _, burst = C.calibrate_biases(net, x, steps=4, levels=8, v0=0.5, signed=True, burst=2)
    assert float(burst[0].abs().max()) < 1e-6
    _, one = C.calibrate_biases(net, x, steps=4, levels=8, v0=0.5, signed=True, burst=1)
    assert float(one[0].abs().max()) > 2e-3


def test_calibrated_network_has_smaller_mean_rate_errors():
    # the calibrated network's systematic errors (against the same CNN) are much smaller
    net = _calibration_net()
    x = torch.rand(30, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    size = lambda es: float(sum(e.abs().sum() for e in es))
    for steps, burst in ((2, 1), (4, 1), (8, 1), (2, 2), (4, 2)):
        once, before = C.calibrate_biases(net, x, steps=steps, levels=4 * burst, burst=burst)
        _, after = C.calibrate_biases(once, x, steps=steps, levels=4 * burst, reference=net,
                                      burst=burst)
        assert size(after) < 0.5 * size(before), (steps, burst)


def test_calibration_in_rounds_adds_the_errors_each_round_leaves():
    # two rounds are one round, then the errors left (against the same CNN) added too
    net = _calibration_net()
    x = torch.rand(30, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    once, first = C.calibrate_biases(net, x, steps=2, levels=4, burst=1)
    twice_by_hand, second = C.calibrate_biases(once, x, steps=2, levels=4, reference=net, burst=1)
    twice, total = C.calibrate_biases(net, x, steps=2, levels=4, rounds=2, burst=1)
    for t, a, b in zip(total, first, second):
        torch.testing.assert_close(t, a + b)
    for m, n in zip(twice, twice_by_hand):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            torch.testing.assert_close(m.bias, n.bias)
    assert float(sum(e.abs().sum() for e in second)) > 0  # the second round did something
    with pytest.raises(ValueError, match="rounds"):
        C.calibrate_biases(net, x, steps=2, rounds=0)


def test_calibration_targets_are_the_qcfs_cnns_activations_at_every_layer():
    # layer 1 gets 1.5 per step: it fires every step, rate 1 = the staircase of 1.5 (clipped);
    # layer 2 gets 0.5 x that = 0.5 per step: from v0 = 1/2 it fires at steps 1 and 3, rate
    # 1/2 = the staircase of 0.5 x 1. Neither needs a correction (a target computed through
    # an unclipped layer 1 would be the staircase of 0.75 = 3/4 and ask for +1/4)
    one, two = nn.Conv2d(3, 1, 1), nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        one.weight.zero_()
        one.bias.fill_(1.5)
        two.weight.fill_(0.5)
        two.bias.zero_()
    net = nn.Sequential(one, nn.ReLU(), two, nn.ReLU(), nn.Flatten(), nn.Linear(1024, 2))
    x = torch.rand(3, 3, 32, 32)
    _, corrections = C.calibrate_biases(net, x, steps=4, levels=4, v0=0.5, signed=True, burst=1)
    assert [float(e) for e in corrections] == [0.0, 0.0]
    # without levels the target is the ReLU network's own activation: 1.5 and 0.75
    _, relu = C.calibrate_biases(net, x, steps=4, levels=None, v0=0.5, signed=True, burst=1)
    assert [float(e) for e in relu] == pytest.approx([0.5, 0.25])


def _calibration_by_definition(net, x, *, steps, levels, v0, signed, rounds, batch, burst=1,
                               bf16=False):
    """calibrate_biases as its docstring defines it: each layer measured by simulating the
    whole corrected network up to it from the image, its target by the whole CNN up to it."""
    out = copy.deepcopy(net).eval()
    acts = C.relu_layers(out)
    feeding = C.convert._fed_layers(out, "test")
    corrections = [0.0] * len(acts)
    for _ in range(rounds):
        for j, (k, layer) in enumerate(zip(acts, feeding)):
            ann = copy.deepcopy(net[:k + 1]).eval()
            for i in acts:
                if i <= k:
                    ann[i] = nn.ReLU() if levels is None else C.QCFS(levels, threshold=1.0)
            a_sum, r_sum, count = 0.0, 0.0, 0
            for first in range(0, len(x), batch):
                y = ann(x[first:first + batch])
                a_sum = a_sum + y.sum(dim=(0, 2, 3) if y.ndim == 4 else 0)
                count += y.numel() // y.shape[1]
            snn, _ = C.convert._spiking_copy(out[:k + 1], v0, signed, burst)
            snn = snn.to(memory_format=torch.channels_last)
            for first in range(0, len(x), batch):
                C.convert._reset(snn)
                for _ in range(steps):
                    with runs.autocast("cpu", bf16):
                        y = snn(x[first:first + batch].contiguous(
                            memory_format=torch.channels_last))
                    r_sum = r_sum + y.float().sum(dim=(0, 2, 3) if y.ndim == 4 else 0)
            e = a_sum / count - r_sum / (steps * count)
            with torch.no_grad():
                layer.bias.add_(e)
            corrections[j] = corrections[j] + e
    return out, corrections


@pytest.mark.parametrize("levels, signed, v0, burst, bf16", [
    (4, True, 0.5, 1, False), (None, False, 0.0, 1, False), (8, True, 0.5, 2, False),
    (None, False, 0.0, 4, False), (8, True, 0.5, 2, True), (4, True, 0.5, 1, True)])
def test_calibration_stage_by_stage_is_the_definition_bit_for_bit(levels, signed, v0, burst,
                                                                  bf16):
    # calibrate_biases simulates each stage once on the spikes of the corrected stages below
    # (kept between stages) instead of the whole network up to each layer from the image:
    # the same arithmetic on the same values, so the same biases to the last bit; here with
    # spiking max pools at the fronts of stages and two batches
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(8 * 4 * 4, 16), nn.ReLU(), nn.Linear(16, 10))
    with torch.no_grad():
        for m in net:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 0.3)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.1)
    x = torch.rand(14, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    kw = dict(steps=3, levels=levels, v0=v0, signed=signed, rounds=2, batch=8, burst=burst,
              bf16=bf16)
    got, got_e = C.calibrate_biases(net, x, **kw)
    want, want_e = _calibration_by_definition(net, x, **kw)
    assert len(got_e) == 4
    for a, b in zip(got_e, want_e):
        assert torch.equal(a, b)
    for m, n in zip(got, want):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert torch.equal(m.bias, n.bias)
    assert float(sum(e.abs().sum() for e in got_e)) > 0.01  # it corrected something


def test_calibrate_biases_checks_its_arguments():
    net = _constant_current_net([0.2, 0.4])
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match="steps"):
        C.calibrate_biases(net, x, steps=0)
    with pytest.raises(ValueError, match="levels"):
        C.calibrate_biases(net, x, steps=4, levels=0)
    with pytest.raises(ValueError, match="v0"):
        C.calibrate_biases(net, x, steps=4, v0=2.0)
    with pytest.raises(ValueError, match="no activations"):
        C.calibrate_biases(nn.Sequential(nn.Flatten(), nn.Linear(3072, 2)), x, steps=4)
    no_bias = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.ReLU(), nn.Flatten(),
                            nn.Linear(2048, 2))
    with pytest.raises(ValueError, match="has no weighted layer with a bias"):
        C.calibrate_biases(no_bias, x, steps=4)
    with pytest.raises(TypeError, match="nn.Sequential"):
        C.calibrate_biases(nn.Linear(2, 2), x, steps=4)
    with pytest.raises(ValueError, match="reference"):
        C.calibrate_biases(net, x, steps=4, reference=nn.Sequential(nn.Flatten()))
