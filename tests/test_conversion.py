"""Tier 3 building blocks (snnlib.tiers.conversion) against theory: batch-norm folding is
exact, normalisation keeps the function, IF rates follow the floor formula, the converted
network approaches its CNN as T grows."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from snnlib.tiers import conversion as C

TINY = C.ConvNetParams(widths=(4, 6), pool_after=(0, 1))


def _trained_like(params=TINY, seed=0) -> C.ConvNet:
    """A tiny CNN with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = C.ConvNet(params)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


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


def test_normalisation_keeps_the_function_and_bounds_the_activations():
    net = C.fold_batchnorm(_trained_like())
    x = torch.rand(64, 3, 32, 32)
    normed, lambdas = C.normalise(net, x, percentile=100.0)
    torch.testing.assert_close(normed(x), net(x), atol=1e-4, rtol=1e-4)
    assert len(lambdas) == 2 and all(lam > 0 for lam in lambdas)
    acts = []
    hooks = [normed[k].register_forward_hook(lambda m, i, o: acts.append(o))
             for k in C.relu_layers(normed)]
    normed(x)
    for h in hooks:
        h.remove()
    # max-norm: every activation at most 1 (one spike per step) on the calibration images
    assert all(float(a.detach().max()) <= 1.0 + 1e-5 for a in acts)
    assert max(float(a.detach().max()) for a in acts) > 0.99


def test_if_neuron_rate_is_the_floor_formula():
    z = torch.tensor([-0.3, 0.0, 0.05, 0.26, 0.5, 0.99, 1.0, 1.7])
    for v0 in (0.0, 0.5):
        layer = C.SpikingLayer(v0)
        for steps in (1, 7, 64):
            layer.reset()
            count = sum(layer(z) for _ in range(steps))
            np.testing.assert_allclose(count.numpy() / steps, C.if_rate(z.numpy(), steps, v0=v0))
    # and the rate tends to clip(z, 0, 1): the ReLU the network was trained with
    np.testing.assert_allclose(C.if_rate(z.numpy(), 10_000), np.clip(z.numpy(), 0, 1), atol=1e-4)


def test_converted_network_approaches_its_cnn_as_t_grows():
    net = C.fold_batchnorm(_trained_like(seed=1))
    x = torch.rand(200, 3, 32, 32)
    normed, _ = C.normalise(net, x, percentile=99.9)
    cnn = net(x).argmax(1)
    out = C.simulate(normed, x, cnn.numpy(), steps=[1, 4, 32, 256])
    acc = out["accuracy"]
    assert acc[256] >= 0.9 and acc[256] >= acc[1]
    assert len(out["spikes_per_image"]) == 2 and out["spikes_per_image"][0] > 0
    assert out["neurons"] == [4 * 32 * 32, 6 * 16 * 16]
    poisson = C.simulate(normed, x, cnn.numpy(), steps=[256], input="poisson",
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


def test_augment_crops_and_flips_reproducibly():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    a = C.augment(x, torch.Generator().manual_seed(0))
    b = C.augment(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    same = C.augment(x, torch.Generator().manual_seed(0), pad=0)
    for k in range(2):  # without padding, each image is itself or its mirror
        assert torch.equal(same[k], x[k]) or torch.equal(same[k], x[k].flip(2))


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
    for a, b in zip(resumed.state_dict().values(), full.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="another training run"):
        C.train_cnn(C.ConvNet(TINY), images, labels, replace(p, max_lr=0.01), seed=1,
                    progress=False, checkpoint=tmp_path / "cnn.pt")
