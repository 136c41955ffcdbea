"""A tiny tier-3 CNN with non-trivial batch-norm statistics, and images of two classes, for
the conversion tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from snnlib.tiers import conversion as C


def trained_like(params: C.ConvNetParams, seed: int = 0) -> C.ConvNet:
    """A CNN of ``params`` whose batch norms have random running statistics, scales and
    shifts (as if trained), in eval mode."""
    torch.manual_seed(seed)
    net = C.ConvNet(params)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


@torch.no_grad()
def spread_readout(folded: nn.Sequential, images: torch.Tensor, seed: int = 0) -> nn.Sequential:
    """``folded`` with its linear layer replaced by random weights and a bias that centres its
    input on ``images`` (``b = -W mean(features)``), so that the network's decisions spread
    over the classes instead of all falling on one (what a random tiny CNN does): a test
    that compares another network's decisions with these cannot pass by a constant."""
    g = torch.Generator().manual_seed(seed)
    linear = folded[-1]
    features = folded[:-1](images)
    linear.weight.copy_(torch.randn(linear.weight.shape, generator=g))
    linear.bias.copy_(-(linear.weight @ features.mean(0)))
    return folded


def converted_agreement(folded: nn.Sequential, images: torch.Tensor, steps):
    """``folded`` with a spread readout (:func:`spread_readout`), normalised at the 99.9th
    percentile and simulated on ``images`` for ``steps``, scored against its own decisions
    (which must spread over more than three classes); returns simulate's result, the
    normalised network and the decisions."""
    folded = spread_readout(folded, images)
    normed, _ = C.normalise(folded, images, percentile=99.9)
    with torch.no_grad():
        decisions = folded(images).argmax(1)
    assert len(set(decisions.tolist())) > 3, "vacuous: the CNN gives one class"
    decisions = decisions.numpy()
    return C.simulate(normed, images, decisions, steps=steps), normed, decisions


def class_images(n: int, seed: int = 0):
    """uint8 images of two classes (dark, bright) with noise, and their labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = np.clip(rng.normal(80 + 100 * labels[:, None, None, None], 30, (n, 32, 32, 3)),
                     0, 255).astype(np.uint8)
    return images, labels
