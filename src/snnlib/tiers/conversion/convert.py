"""Tier 3, the conversion: a trained CNN becomes a spiking network of integrate-and-fire neurons.

An integrate-and-fire (IF) neuron with threshold :math:`\\vartheta`, reset by
subtraction and a constant input :math:`z` per step fires at the rate
(:func:`snnlib.neurons.if_rate`)

.. math::

    r = \\frac{1}{T} \\left\\lfloor \\frac{T z + v_0}{\\vartheta} \\right\\rfloor
      \\;\\to\\; \\mathrm{clip}(z / \\vartheta, 0, 1) \\quad (T \\to \\infty),

which is a ReLU clipped at one spike per step. So a ReLU network whose
activations are scaled to [0, 1] becomes a spiking network with the same
weights: each layer's rates approximate the next layer's inputs, better the
longer it runs.

- :func:`normalise`: data-based normalisation (Rueckauer et al. 2017): each
  layer's weights are scaled by :math:`\\lambda_{l-1} / \\lambda_l` and its bias
  by :math:`1 / \\lambda_l`, with :math:`\\lambda_l` the ``p``-th percentile of
  layer :math:`l`'s activations on training images (``p = 100`` is Diehl et
  al.'s max-norm);
- :func:`simulate`: IF neurons with threshold 1 and reset by subtraction
  (:class:`snnlib.neurons.IFNeurons`), the image given as a constant current
  (``analog``) or as Poisson spikes (``poisson``), the output layer
  integrating without spiking; the accuracy at every requested number of
  steps is read from one run; :func:`simulate_parts` checkpoints it;
- :func:`qcfs_from_relu`: the trained CNN's ReLUs become clip-floor-shift
  activations with ``L`` levels (Bu et al. 2022) to fine-tune, after which
  the network converts with neurons that start half-way to threshold
  (``v0 = 0.5``) and needs far fewer steps;
- :func:`calibrate_biases`: bias correction for a given number of steps
  (Li et al. 2021): each channel's mean rate error is added to its bias;
- :class:`SpikingMaxPool`: a network's max pooling in spikes, exact in spike
  counts;
- :func:`synaptic_operations`: exact operation counts from the spike maps.

References
----------
Cao, Y., Chen, Y. & Khosla, D. (2015). Spiking deep convolutional neural
networks for energy-efficient object recognition. *IJCV* 113, 54-66.
Diehl, P. U. et al. (2015). Fast-classifying, high-accuracy spiking deep
networks through weight and threshold balancing. *IJCNN*.
Rueckauer, B. et al. (2017). Conversion of continuous-valued deep networks
to efficient event-driven networks for image classification. *Front.
Neurosci.* 11, 682.
Bu, T. et al. (2022). Optimal ANN-SNN conversion for high-accuracy and
ultra-low-latency spiking neural networks. *ICLR*.
Wang, Y., Zhang, M., Chen, Y. & Qu, H. (2022). Signed neuron with memory:
towards simple, accurate and high-efficient ANN-SNN conversion. *IJCAI*.
Li, Y., Deng, S., Dong, X., Gong, R. & Gu, S. (2021). A free lunch from ANN:
towards efficient, accurate spiking neural networks calibration. *ICML*.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ... import _validate as check
from ... import runs
from ...encoding import PoissonParams, poisson_step
from ...neurons import IFNeurons, check_burst
from .cnn import (QCFS, QCFS_INIT_PERCENTILE, QCFS_LEVELS, ConvNet, _finite_module, _image_batch,
                  _labels_for, _n_classes, fold_batchnorm, gelu_refusal, relu_twin)
from .numerics import Numerics, fingerprint, numerics_scope

__all__ = ["CHANNEL_PERCENTILE", "PERCENTILE", "PERCENTILES", "QCFS_CALIBRATION_ROUNDS",
           "QCFS_CALIBRATION_STEPS", "QCFS_BURST", "QCFS_SHORT_STEPS", "QCFS_SIGNED", "QCFS_V0",
           "SIM_VERSION", "SNN_PART_IMAGES", "STEPS_ANALYSED", "SpikingMaxPool", "calibrate_biases",
           "normalise", "qcfs_from_relu", "rates_vs_activations", "record_spikes", "relu_layers",
           "simulate", "simulate_parts", "smallest_steps_within", "synaptic_operations"]

QCFS_V0 = 0.5
"""Initial potential of the QCFS network's IF neurons (the shift of the activation), as a
fraction of the threshold. Chosen on the validation split as the start whose signed copy was
most accurate at T = 4: first on row D (5 epochs) without calibration, and again on the full
profile's design, row "M, 17 epochs" fine-tuned and calibrated as the tier does
(``benchmarks/cnn_techniques.py ... --signed --calibrate 4 --calibration-rounds 2 --v0 0.4 0.5
0.6``): 88.24 / 88.98 / 88.54% at T = 4 and 89.08 / 89.26 / 89.34% at T = 8 (uncalibrated
84.06 / 87.92 / 88.40% at T = 4). Checked again for an eight-level copy with bursts of up to
2 (M trained again), calibrated with them: 88.64 / 89.00 / 88.94% at T = 4 and 89.26 / 89.28
/ 89.00% at T = 8; not checked for the tier's 32 levels with bursts of up to 8."""
QCFS_SIGNED = True
"""The QCFS network is simulated with signed IF neurons with memory
(:class:`snnlib.neurons.IFNeurons` with ``signed=True``, after Wang et al. 2022): a
neuron whose potential falls below zero takes back one of its spikes, so that its net
count follows the staircase of its summed input whatever the order the input came in.
Chosen on the validation split (``benchmarks/cnn_techniques.py --signed``): at T = 4
they kept the QCFS network within 1 point of its CNN where plain IF neurons lost about
10 points."""
QCFS_BURST = 8
"""The most spikes a neuron of the QCFS network's spiking copy fires in one step
(:class:`snnlib.neurons.IFNeurons`' ``burst``, after Li and Zeng 2022): spikes of an eighth
of a plain neuron's threshold, so that T steps resolve the staircase of 8T levels and the
copy of the 32-level QCFS network (``QCFS_LEVELS``) has all its levels at T = 4. Chosen with
``QCFS_LEVELS`` on the validation split, on the full profile's network (row "M, 17 epochs",
fine-tuned as the tier does), as the pair whose signed copy, calibrated, was the most
accurate at T = 4 on one training; only pairs with L = 4 G were compared (4 / 1, 8 / 2,
16 / 4, 32 / 8). With one spike a step, 4 levels calibrated as the tier does were the best
at T = 4 (88.98%; 3 / 5 / 8 levels 88.96 / 88.70 / 88.00%), and on the same training 8
levels with bursts of up to 2 reached 89.66% uncalibrated (89.58% at T = 8, against 89.26%;
the ReLU CNN 90.08%). On M trained again (ReLU CNN 89.70%), each calibrated for T = 4 in 2
rounds with its own bursts, G = 8 / 4 / 2 / 1 reached 89.56 / 89.40 / 89.00 / 88.00% at
T = 4 and 89.52 / 89.36 / 89.28 / 89.08% at T = 8 (QCFS CNNs 89.38 / 89.28 / 89.04 /
88.46%): rows "M, 17 epochs, fine-tuned with QCFS (32 levels, ...), bursts of up to 8,
biases calibrated with bursts", the same with 16 levels and bursts of up to 4, with 8 levels
and bursts of up to 2, and "M trained again for 17 epochs (the network of the burst rows),
fine-tuned with QCFS (4 levels, ...), biases calibrated in rounds" of
``results/cnn_techniques.json``. The gain of each doubling of the burst shrinks (1.00, 0.40,
0.16 points at T = 4; one standard error is about 0.44) while its events nearly double:
simulated for 16 steps, the four calibrated copies made 13.4e8, 6.96e8, 3.90e8 and 2.44e8
accumulates per image."""
QCFS_SHORT_STEPS = (4, 8)
"""The few-step simulations of the QCFS network that :func:`.run.run_tier` runs on their
own, so that their operations per image are counted over exactly that many steps."""
MAX_STEPS = 100_000
"""The most time steps a simulation accepts: the book reads accuracy up to a few hundred;
far more is a typo that would run for days."""


def relu_layers(net: nn.Sequential) -> list[int]:
    """Indices of the activation modules (ReLU or QCFS) of a folded network."""
    _sequential("net", net, "relu_layers")
    return [k for k, m in enumerate(net) if isinstance(m, (nn.ReLU, QCFS))]


def _sequential(name: str, net, where: str, *, finite: bool = False) -> nn.Sequential:
    """A folded network (an ``nn.Sequential``, :func:`fold_batchnorm` or :func:`normalise` gives one)."""
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"{where}: {name} must be an nn.Sequential (fold_batchnorm or normalise "
                        f"gives one), got {type(net).__name__}")
    if any(isinstance(m, nn.GELU) for m in net.modules()):
        raise gelu_refusal(where, name)
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        raise ValueError(f"{where}: {name} still has batch norms (a CNN's own layers, such as "
                         "model.features?); fold them into the convolutions first: "
                         "fold_batchnorm(model)")
    if finite:
        _finite_module(name, net, where)
    return net


def _steps(steps, where: str) -> list[int]:
    """Sorted distinct numbers of steps: positive integers (:func:`_max_steps` bounds them)."""
    if isinstance(steps, (str, bytes)) or not hasattr(steps, "__iter__"):
        raise TypeError(f"{where}: steps must be a sequence of positive integers (e.g. [1, 8, "
                        f"64]), got {type(steps).__name__} {steps!r}")
    values = list(steps)
    if not values:
        raise ValueError(f"{where}: steps must be positive integers, got none ({steps!r})")
    out = []
    for t in values:
        if isinstance(t, (bool, float)) or not hasattr(t, "__index__"):
            raise ValueError(f"{where}: steps must be positive integers, got {t!r} in {steps!r}")
        out.append(t.__index__())
    out = sorted(set(out))
    if out[0] < 1:
        raise ValueError(f"{where}: steps must be positive integers, got {out[0]} in {steps!r}")
    return out


def _max_steps(steps: list[int], n_images: int, where: str) -> None:
    """Refuse a simulation longer than ``MAX_STEPS`` steps, saying how much work it would be."""
    if steps[-1] > MAX_STEPS:
        raise ValueError(f"{where}: steps go up to {steps[-1]:,}, more than the {MAX_STEPS:,} a "
                         f"simulation accepts ({steps[-1]:.3g} steps x {n_images} images = "
                         f"{steps[-1] * n_images:.3g} image-steps, days of computing); ask for "
                         f"fewer steps")


def _v0(v0, where: str) -> float:
    return check.number("v0", v0, low=0.0, high=1.0, where=where)


@torch.no_grad()
def normalise(net: nn.Sequential, images: torch.Tensor, *, percentile: float = 99.99,
              batch: int = 250, seed: int = 0, channel_wise: bool = False
              ) -> tuple[nn.Sequential, list]:
    """Data-based weight normalisation (Rueckauer et al. 2017); returns the scaled copy and the :math:`\\lambda_l`.

    :math:`\\lambda_l` is the ``percentile`` of layer :math:`l`'s activations
    (after its ReLU) over ``images``; the layer's weights become
    :math:`W_l \\lambda_{l-1} / \\lambda_l` and its bias :math:`b_l / \\lambda_l`
    (:math:`\\lambda_0 = 1`), so its activations are at most about 1: one
    spike per step. The output layer is scaled by :math:`\\lambda_{L-1}` only.
    With QCFS activations, :math:`\\lambda_l` is the activation's trained
    threshold instead (Bu et al. 2022). ``percentile=100`` is max-norm
    (Diehl et al. 2015). The percentile is taken over up to 200,000
    activations per layer and batch, sampled with a generator seeded by
    ``seed``; the maximum (``percentile=100``) over all of them. The
    percentile is over all activations, zeros included (some implementations
    take it over the non-zero ones only, which gives larger thresholds).

    ``channel_wise``: one :math:`\\lambda_{l,c}` for each channel :math:`c` of each layer,
    the ``percentile`` of that channel's activations at every position of every image (up
    to ``CHANNEL_SAMPLES`` activations per layer and batch: as many positions, drawn at random,
    for each of its channels), at least :math:`10^{-6}` (a channel silent on more than
    ``100 - percentile`` percent of its positions then passes on almost nothing); channel
    :math:`o`'s weights from channel :math:`i` become
    :math:`W_{l,oi} \\lambda_{l-1,i} / \\lambda_{l,o}` and its bias
    :math:`b_{l,o} / \\lambda_{l,o}` (pools act on each channel alone, so the scales pass
    through them; after a flattening each input of the linear layer takes its channel's
    :math:`\\lambda`). A channel whose activations are rarely large then fires as often as
    one whose are often large (Kim et al. 2020's channel-wise normalisation; SpikingJelly's
    ``channel_wise`` conversion). The :math:`\\lambda`'s are then returned as one 1-D tensor per
    layer (a QCFS layer's, its threshold for every channel).
    """
    where = "normalise"
    _sequential("net", net, where, finite=True)
    _image_batch("images", images, where)
    check.number("percentile", percentile, low=0, low_open=True, high=100, where=where)
    check.positive_int("batch", batch, where=where)
    check.integer("seed", seed, where=where)
    check.flag("channel_wise", channel_wise, where=where)
    for k in relu_layers(net):
        if isinstance(net[k], QCFS) and not float(net[k].threshold) > 0:
            raise ValueError(f"{where}: net[{k}] is a QCFS activation with threshold "
                             f"{float(net[k].threshold):g}; its threshold must be > 0")
    net = copy.deepcopy(net).eval()
    sizes = _activation_sizes(net, images[:1])
    n_batches = -(-len(images) // batch)
    check.fits_in_memory(
        f"normalising on {len(images)} images in batches of batch={batch}",
        4 * (n_batches * sum(min(CHANNEL_SAMPLES if channel_wise else LAYER_SAMPLES, batch * s)
                             for s in sizes)
             + 3 * min(batch, len(images)) * sum(sizes)), where=where)
    acts = relu_layers(net)
    if channel_wise:
        return _normalise_channels(net, images, acts, percentile, batch, seed)
    samples: dict[int, list[torch.Tensor]] = {k: [] for k in acts}
    g = torch.Generator().manual_seed(seed)
    maxima: dict[int, float] = {k: 0.0 for k in acts}

    def record(k: int, o: torch.Tensor) -> None:
        samples[k].append(o.flatten()[torch.randperm(o.numel(), generator=g)[:LAYER_SAMPLES]])
        maxima[k] = max(maxima[k], float(o.max()))

    _pass_with_hooks(net, images, acts, batch, record)
    lambdas = []
    for k in acts:
        if isinstance(net[k], QCFS):
            lambdas.append(float(net[k].threshold))
        elif percentile == 100:  # max-norm: the exact maximum, not a sample's
            lambdas.append(max(maxima[k], 1e-6))
        else:
            values = torch.cat(samples[k])
            if len(values) > 10_000_000:  # torch.quantile takes at most 2**24 values
                values = values[torch.randperm(len(values), generator=g)[:10_000_000]]
            lambdas.append(max(float(torch.quantile(values.float(), percentile / 100.0)), 1e-6))
    previous = 1.0
    weighted = [k for k, m in enumerate(net) if isinstance(m, (nn.Conv2d, nn.Linear))]
    for j, k in enumerate(weighted):
        lam = lambdas[j] if j < len(lambdas) else 1.0
        net[k].weight.mul_(previous / lam)
        if net[k].bias is not None:
            net[k].bias.div_(lam)
        previous = lam
    for k in acts:  # the activations are now IF neurons with threshold 1
        net[k] = nn.ReLU()
    return net, lambdas


LAYER_SAMPLES = 200_000
"""Activations per layer and batch, drawn at random, that :func:`normalise` keeps to take a
layer's percentile (layer by layer)."""
CHANNEL_SAMPLES = 2_000_000
"""Activations per layer and batch that ``normalise(channel_wise=True)`` keeps to take each
channel's percentile: :math:`2 \\times 10^6 / C` positions for each of a layer's :math:`C`
channels (7,812 per batch of 250 images for 256 channels: 31,250 over the 1,000 images
the tier normalises on, so the 99.9th percentile rests on about 31 of them)."""


def _pass_with_hooks(net: nn.Sequential, images: torch.Tensor, acts: list[int], batch: int,
                     record) -> None:
    """Run ``images`` through ``net`` in batches of ``batch``, calling ``record(k, output)``
    with the output of each activation ``net[k]``, ``k`` in ``acts`` (the hooks removed after,
    also on an error)."""
    hooks = [net[k].register_forward_hook(lambda m, i, o, k=k: record(k, o)) for k in acts]
    try:
        for i in range(0, len(images), batch):
            net(images[i:i + batch])
    finally:
        for h in hooks:
            h.remove()


def _normalise_channels(net: nn.Sequential, images: torch.Tensor, acts: list[int],
                        percentile: float, batch: int, seed: int) -> tuple[nn.Sequential, list]:
    """:func:`normalise` with ``channel_wise=True``, on its deep copy ``net`` (checked)."""
    samples: dict[int, list[torch.Tensor]] = {k: [] for k in acts}
    maxima: dict[int, torch.Tensor | None] = {k: None for k in acts}
    g = torch.Generator().manual_seed(seed)

    def record(k: int, o: torch.Tensor) -> None:
        per_channel = o.transpose(0, 1).reshape(o.shape[1], -1)  # (C, positions)
        keep = max(1, CHANNEL_SAMPLES // per_channel.shape[0])
        pick = torch.randperm(per_channel.shape[1], generator=g)[:keep]
        samples[k].append(per_channel[:, pick])
        top = per_channel.amax(1)
        maxima[k] = top if maxima[k] is None else torch.maximum(maxima[k], top)

    _pass_with_hooks(net, images, acts, batch, record)
    lambdas: list[torch.Tensor] = []
    for k in acts:
        n_channels = len(maxima[k])
        if isinstance(net[k], QCFS):
            lam = torch.full((n_channels,), float(net[k].threshold))
        elif percentile == 100:
            lam = maxima[k].float()
        else:
            lam = torch.quantile(torch.cat(samples[k], 1).float(), percentile / 100.0, dim=1)
        lambdas.append(lam.clamp_min(1e-6))
    previous = None  # the input image: no scale
    weighted = [k for k, m in enumerate(net) if isinstance(m, (nn.Conv2d, nn.Linear))]
    for j, k in enumerate(weighted):  # (normalise runs without gradients)
        layer = net[k]
        out_scale = lambdas[j] if j < len(lambdas) else torch.ones(layer.weight.shape[0])
        w = layer.weight
        if previous is not None:
            fan_in = w.shape[1]
            if isinstance(layer, nn.Conv2d) and layer.groups != 1:
                raise ValueError("normalise: channel_wise=True takes convolutions without "
                                 f"groups; net[{k}] has groups={layer.groups}")
            if fan_in % len(previous):
                raise ValueError(f"normalise: net[{k}] takes {fan_in} inputs, not a "
                                 f"multiple of the {len(previous)} channels before it")
            scale_in = previous.repeat_interleave(fan_in // len(previous))
            w.mul_(scale_in.view(1, -1, *([1] * (w.dim() - 2))).to(w.dtype))
        if j < len(lambdas):
            w.div_(out_scale.view(-1, *([1] * (w.dim() - 1))).to(w.dtype))
            if layer.bias is not None:
                layer.bias.div_(out_scale.to(layer.bias.dtype))
        previous = out_scale
    for k in acts:  # the activations are now IF neurons with threshold 1
        net[k] = nn.ReLU()
    return net, lambdas


@torch.no_grad()
def qcfs_from_relu(model: ConvNet, images: torch.Tensor, *, levels: int = QCFS_LEVELS,
                   percentile: float = QCFS_INIT_PERCENTILE, seed: int = 0) -> ConvNet:
    """A copy of a trained ReLU or GELU :class:`ConvNet` with QCFS activations, to fine-tune.

    The copy has the same convolutions, batch norms and linear layer; each
    ReLU becomes a :class:`QCFS` with ``levels`` levels whose threshold
    :math:`\\lambda_l` starts at the ``percentile`` of that ReLU's activations
    on ``images`` (as :func:`normalise` takes it). Before any training it computes

    .. math:: h(x) = \\frac{\\lambda}{L}\\,\\mathrm{clip}\\left(\\left\\lfloor
              \\frac{x L}{\\lambda} + \\frac{1}{2} \\right\\rfloor, 0, L\\right),

    the ReLU's activation rounded to the nearest of :math:`L + 1` levels in
    :math:`[0, \\lambda]`: at most :math:`\\lambda / 2L` from it where it is below
    :math:`\\lambda`, and :math:`\\lambda` where it is above. Training it for a few epochs
    (:func:`train_cnn`) adapts the weights and thresholds to the staircase;
    the result converts with :func:`normalise` (which takes the trained
    thresholds as :math:`\\lambda_l`) and simulates with ``v0 = 0.5``.
    Starting from the ReLU network instead of from scratch (Bu et al. train
    from scratch for hundreds of epochs) keeps the training short, and on the
    validation split it did better at few steps: the full profile's network
    trained with QCFS from its first epoch for the same 17 epochs gave a signed
    copy, calibrated as the tier's, 1.2 points less accurate at T = 4 and at
    T = 8 than this copy fine-tuned for 2 (``results/cnn_techniques.json``).

    A GELU network (``ConvNetParams.activation="gelu"``, airbench's activation, which does
    not convert) is copied the same way, its thresholds starting at the percentiles of the
    activations of its :func:`~.cnn.relu_twin` (the same weights with ReLUs): before any
    training the copy computes the twin's staircase, not the GELU network's function, and the
    fine-tuning adapts the weights, trained with GELUs, to it.
    """
    where = "qcfs_from_relu"
    if not isinstance(model, ConvNet):
        raise TypeError(f"{where}: model must be a ConvNet, got {type(model).__name__}.")
    if model.params.quantisation_levels is not None:
        raise ValueError(f"{where}: model must be a ReLU or GELU ConvNet; this one already "
                         "has QCFS activations.")
    check.positive_int("levels", levels, where=where)
    _image_batch("images", images, where)
    check.number("percentile", percentile, low=0, low_open=True, high=100, where=where)
    check.integer("seed", seed, where=where)
    relu = model if model.params.activation == "relu" else relu_twin(model)
    _, lambdas = normalise(fold_batchnorm(relu), images, percentile=percentile, seed=seed)
    q = ConvNet(replace(model.params, quantisation_levels=levels, activation="relu"))
    missing, unexpected = q.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(".threshold") for k in missing), (missing, unexpected)
    for act, lam in zip((m for m in q.features if isinstance(m, QCFS)), lambdas):
        act.threshold.fill_(lam)
    return q.train(model.training)


QCFS_CALIBRATION_STEPS = 4
"""The T for which :func:`.run.run_tier` calibrates the QCFS network's biases
(:func:`calibrate_biases`, on the 1,000 training images of the normalisation, with the
tier's neurons). Chosen on the validation split, for the four-level copy with one spike a
step, calibrating in one round, as the T whose calibration gave the signed
spiking copy the best accuracy at T = 4 (the harder of the tier's two few-step targets): row
"M, 17 epochs, fine-tuned with QCFS (4 levels, 2 epochs, peak learning rate 0.1), biases calibrated" of
``results/cnn_techniques.json``, 87.92% at T = 4 and 89.08% at T = 8 uncalibrated; calibrated
at T = 2 / 4 / 8: 84.58 / 88.38 / 88.04% at T = 4 and 78.54 / 89.50 / 89.40% at T = 8 (its
QCFS CNN: 88.92%; one standard error on these 5,000 images is about 0.45 points)."""
QCFS_CALIBRATION_ROUNDS = 2
"""The rounds of that calibration (:func:`calibrate_biases`' ``rounds``). Chosen on the
validation split as the number whose signed copy was most accurate at T = 4: row "M, 17
epochs, fine-tuned with QCFS (4 levels, 2 epochs, peak learning rate 0.1), biases calibrated
in rounds" of ``results/cnn_techniques.json``: after 1 / 2 / 3 rounds, 88.38 / 88.98 / 88.92%
at T = 4 and 89.50 / 89.26 / 89.38% at T = 8 (uncalibrated 87.92 and 89.08%; its QCFS CNN
88.92%). Checked again for an eight-level copy with bursts of up to 2: 1 / 2 rounds gave
88.92 / 89.00% at T = 4 and 89.00 / 89.28% at T = 8 (uncalibrated 88.26 and 88.80%). For the
tier's 32-level copy with bursts of up to 8 (``QCFS_BURST``) two rounds gave 89.56% at T = 4
and 89.52% at T = 8 against 89.42 and 89.58% uncalibrated (one round was not tried for it);
for a sixteen-level copy with bursts of up to 4 they were within 0.1 point of none from T = 2
on, a little below it at each (89.40 against 89.48% at T = 4)."""


@torch.no_grad()
def calibrate_biases(net: nn.Sequential, images: torch.Tensor, *, steps: int,
                     levels: int | None = QCFS_LEVELS, v0: float = QCFS_V0,
                     signed: bool = QCFS_SIGNED, bf16: bool = False, batch: int = 250,
                     device: str = "cpu", progress: bool = False,
                     desc: str = "tier 3, bias calibration",
                     reference: nn.Sequential | None = None,
                     rounds: int = 1, burst: int = QCFS_BURST) -> tuple[nn.Sequential, list]:
    """Bias correction of a normalised network for a simulation of ``steps`` steps (Li et al.
    2021).

    A spiking layer :math:`l` simulated for :math:`T` steps fires at rates
    :math:`r_l = N_l / T` (:math:`N_l` its spike counts, negative spikes
    subtracted) that differ from the CNN activations :math:`a_l` they stand for
    (in the normalised units, where the threshold is 1): by rounding to
    multiples of :math:`1/T`, by spikes that arrive unevenly, and by the
    errors of the layers below. Part of that error is systematic, the same for
    every image: its mean over the calibration images and the positions of
    each channel :math:`c`,

    .. math:: e_{l,c} = \\mathbb{E}\\left[a_{l,c}(x) - r_{l,c}(x; T)\\right],

    is added to the bias of the weighted layer that feeds the channel,
    :math:`b_{l,c} \\leftarrow b_{l,c} + e_{l,c}`: an IF neuron's rate grows by
    its input's growth per step (between 0 and 1 spike per step, and in steps of
    :math:`1/T`), so the channel's mean rate moves to the CNN's. Layers are corrected in
    order, each measured after the layers below it are corrected. :math:`a_l` is the
    activation of the CNN ``reference`` (by default ``net`` itself, as it was before any
    correction) computed from the image:
    the staircase :math:`\\mathrm{clip}(\\lfloor zL + 1/2 \\rfloor, 0, L) / L` of
    its input :math:`z` at every layer up to :math:`l` for a QCFS network of ``levels``
    levels (:func:`normalise` turned its activations into ReLUs: the staircases are put
    back: :class:`.cnn.QCFS` with threshold 1), :math:`\\max(z, 0)` for ``levels=None`` (a
    ReLU network). The spiking layers are simulated as :func:`simulate` does (analog input,
    initial potential ``v0``, ``signed`` neurons, ``bf16``), on ``images`` (training images:
    the correction is a choice made on data) in batches of ``batch``; ``progress`` shows a bar.
    ``burst``: neurons that fire bursts of up to :math:`\\Gamma` = ``burst`` spikes of
    :math:`1/\\Gamma` a step (:func:`simulate`'s ``burst``; by default the tier's,
    ``QCFS_BURST``, as ``levels``, ``v0`` and ``signed`` are); the rates then move in steps of
    :math:`1/(\\Gamma T)`.

    One pass under-corrects where rates move in steps of :math:`1/T`: ``rounds``
    passes over the layers each measure the errors left after the passes before
    (against the same CNN) and add them too.

    The network is simulated stage by stage (a stage: the modules after one activation up
    to the next), each stage on the spikes of the corrected stages below it, kept for every
    image and step between stages (as int8: a neuron's spikes in one step are :math:`k/\\Gamma`
    with :math:`k` an integer from :math:`-\\Gamma` to :math:`\\Gamma`, kept as :math:`k`), and
    each CNN stage on
    the CNN's activations of the stage below. That is the same arithmetic on the same
    values as simulating the whole network up to each layer from the image (the same
    biases to the last bit, ``tests/test_conversion.py``), at about twice the cost of one
    simulation per round instead of the sum over layers of the network up to them: 18.5 s
    against 38.3 s for the book profile's network on 1,000 images (two rounds, two CPU
    cores).

    Returns the corrected copy of ``net`` (``net`` itself is unchanged) and,
    per spiking layer, the correction :math:`e_l` added over all passes (a tensor of
    one value per channel). Calibrating that copy again with ``reference=net`` measures
    the systematic errors left.
    """
    where = "calibrate_biases"
    _sequential("net", net, where, finite=True)
    images = _image_batch("images", images, where)
    check.positive_int("steps", steps, where=where)
    _max_steps([steps], len(images), where)
    if levels is not None:
        check.positive_int("levels", levels, where=where)
    _v0(v0, where)
    check.flag("signed", signed, where=where)
    check.flag("bf16", bf16, where=where)
    check.positive_int("batch", batch, where=where)
    check.flag("progress", progress, where=where)
    check.instance("desc", desc, str, where=where)
    check.positive_int("rounds", rounds, where=where)
    check_burst(burst, where)
    _device(device, where)
    acts = relu_layers(net)
    if not acts:
        raise ValueError(f"{where}: net has no activations to calibrate (no ReLU or QCFS)")
    if reference is None:
        reference = net
    _sequential("reference", reference, where, finite=True)
    if [type(m) for m in reference] != [type(m) for m in net]:
        raise ValueError(f"{where}: reference must have net's layers, in its order")
    sizes = _check_simulation_memory(net, images, batch, "calibrating", where)
    # the spikes between two stages, of every image at every step, as int8 (and the CNN's
    # activations there, as floats, in the first round), on the device
    check.fits_in_memory(f"keeping the spikes between layers of len(images)={len(images)} "
                         f"images for steps={steps} steps (use fewer images or steps)",
                         len(images) * (2 * steps + 8) * max(sizes), where=where)
    out = copy.deepcopy(net).eval()
    feeding = _fed_layers(out, where)
    starts = [0] + [k + 1 for k in acts[:-1]]  # stage j: out[starts[j] : acts[j] + 1]
    firsts = range(0, len(images), batch)

    def channel_sums(y: torch.Tensor) -> torch.Tensor:
        return y.float().sum(dim=(0, 2, 3) if y.ndim == 4 else 0)

    def spiking_stage(j: int) -> nn.Sequential:
        snn, _ = _spiking_copy(out[starts[j]:acts[j] + 1], v0, signed, burst)
        return snn.to(device=device, memory_format=torch.channels_last)

    def stage_inputs(trains, b: int, first: int):
        """Stage j's input at each step for batch b: the image (constant) or the spikes
        of the stage below."""
        if trains is None:
            x = images[first:first + batch].to(device).contiguous(
                memory_format=torch.channels_last)
            return [x] * steps
        spikes, dtype = trains[b]
        # one step's copy at a time, k / G: exact (G a power of 2)
        return (s.to(dtype).div_(burst) for s in spikes)

    from ...progress import tqdm
    bar = tqdm(total=rounds * (2 * len(acts) - 1) * len(images), disable=not progress,
               unit="img", desc=desc,
               bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]")
    targets: dict[int, torch.Tensor] = {}  # per layer: the CNN's mean activation per channel
    corrections: list = [0.0] * len(acts)
    ann_in = None  # the CNN's activations entering the stage, per batch (first round)
    for _ in range(rounds):
        trains = None  # the spikes entering the stage, per batch: (int8 counts per step, dtype)
        for j, (k, layer) in enumerate(zip(acts, feeding)):
            if k not in targets:
                # the CNN's stage, its activation as the CNN computes it (normalise made it a
                # ReLU; a QCFS network's is a staircase, QCFS with threshold 1 in the
                # normalised units), fed the CNN's activations of the stage below
                ann = copy.deepcopy(reference[starts[j]:k + 1]).eval()
                ann[len(ann) - 1] = nn.ReLU() if levels is None else QCFS(levels, threshold=1.0)
                ann = ann.to(device)
                a_sum, count, ann_out = 0.0, 0, []
                for b, first in enumerate(firsts):
                    y = ann(images[first:first + batch].to(device) if ann_in is None
                            else ann_in[b])
                    a_sum = a_sum + channel_sums(y)
                    count += y.numel() // y.shape[1]  # values per channel
                    ann_out.append(y)
                targets[k] = a_sum / count
                ann_in = ann_out if j + 1 < len(acts) else None
            # the stage's spiking rates, measured on the spikes of the (corrected) stages below
            snn = spiking_stage(j)
            r_sum, count = 0.0, 0
            for b, first in enumerate(firsts):
                _reset(snn)
                for x in stage_inputs(trains, b, first):
                    with runs.autocast(device, bf16):
                        y = snn(x)
                        r_sum = r_sum + channel_sums(y)
                count += y.numel() // y.shape[1]
                bar.update(len(y))
            e = (targets[k] - r_sum / (steps * count)).cpu()
            layer.bias.add_(e.to(layer.bias))
            corrections[j] = corrections[j] + e
            if j + 1 < len(acts):
                # the corrected stage's spikes (k / G, k an integer in [-G, G]; kept as k), the
                # next stage's input
                snn = spiking_stage(j)
                new = []
                for b, first in enumerate(firsts):
                    _reset(snn)
                    spikes = []
                    for x in stage_inputs(trains, b, first):
                        with runs.autocast(device, bf16):
                            y = snn(x)
                        spikes.append((y * burst).to(torch.int8))
                    new.append((spikes, y.dtype))
                    bar.update(len(y))
                trains = new
    bar.close()
    return out, corrections


def _check_simulation_memory(net: nn.Sequential, images: torch.Tensor, batch: int, doing: str,
                             where: str) -> list[int]:
    """Refuse a spiking simulation of ``images`` in batches of ``batch`` that would not fit in
    memory: per image of a batch, the IF potentials, the layers' inputs and outputs and the
    spike maps. Returns the neurons per image of each activation (:func:`_probe_sizes`)."""
    sizes = _probe_sizes(net, images)
    n = min(batch, len(images))
    check.fits_in_memory(f"{doing} batches of {n} images (batch={batch})",
                         4 * n * (4 * sum(sizes) + 2 * images[0].numel()), where=where)
    return sizes


def _device(device, where: str) -> None:
    """Refuse a device that is not a string (or torch.device) naming one this machine has."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{where}: device must be a string such as 'cpu' or 'cuda', got "
                        f"{type(device).__name__} {device!r}")
    runs.get_device(str(device))


def _fed_layers(net: nn.Sequential, where: str) -> list[nn.Module]:
    """The weighted layer (with a bias) that feeds each activation of ``net``: the one whose
    bias :func:`calibrate_biases` corrects."""
    feeding = []
    for k in relu_layers(net):
        j = k - 1
        while j >= 0 and not isinstance(net[j], (nn.Conv2d, nn.Linear)):
            j -= 1
        if j < 0 or net[j].bias is None:
            raise ValueError(f"{where}: net's activation net[{k}] has no weighted layer with a "
                             f"bias before it to correct")
        feeding.append(net[j])
    return feeding


@torch.no_grad()
def simulate(net: nn.Sequential, images: torch.Tensor, labels, *, steps: Sequence[int],
             input: Literal["analog", "poisson"] = "analog", v0: float = 0.0,
             generator: torch.Generator | None = None, bf16: bool = False,
             batch: int = 100, bar=None, max_rate_hz: float = 1000.0, dt_ms: float = 1.0,
             device: str = "cpu", signed: bool = False, burst: int = 1) -> dict:
    """Run the converted network for ``max(steps)`` steps; accuracy at every ``T`` in ``steps``.

    ``net`` is a normalised network (:func:`normalise`): each ReLU becomes
    IF neurons (:class:`snnlib.neurons.IFNeurons`); pooling, flattening, convolutions and the
    linear layer act on spikes unchanged (they are linear). The output
    layer does not spike: its input is summed over steps, and the class with
    the largest sum after :math:`T` steps is the decision at :math:`T`.
    ``analog`` input feeds the image itself every step (a constant current);
    ``poisson`` feeds Poisson spikes (:func:`snnlib.encoding.poisson_step`)
    at a rate of ``intensity x max_rate_hz`` in steps of ``dt_ms``: with the
    defaults (1000 Hz, 1 ms) a pixel of intensity :math:`x` spikes in a step
    with probability :math:`x`, the analog input's mean. ``bf16`` runs the convolutions and the linear
    layer in bfloat16: the potentials stay float32 and the spikes (0 or 1)
    are exact, but weights, biases, the analog input image and every layer's
    input current are rounded to 8 significant bits, and the first layer gets
    the same rounded current every step, so its rounding does not average
    out (run_tier measures the effect against float32). The tensors are kept
    channels-last, which oneDNN runs fastest. Images go
    through in batches of ``batch``; ``bar`` (a tqdm bar counting images)
    advances every step. ``device``: where the spiking copy runs (``net``
    itself stays where it is; the Poisson draws come from ``generator`` on
    the CPU, so they are the same on every device). ``signed``: signed IF
    neurons with memory (``IFNeurons(signed=True)``, after Wang et al. 2022),
    which take back a spike with a negative one when their potential falls
    below zero; their spike counts include the negative spikes. ``burst``: the most
    spikes a neuron fires in one step (``IFNeurons(burst=...)``, after Li and Zeng 2022:
    spikes of ``1 / burst`` each, so that T steps resolve the rates of a QCFS network of
    ``burst x T`` levels); every spike of a burst is counted as an event.

    Returns ``accuracy`` ``{T: fraction}``, ``predictions`` ``{T: array}``;
    per spiking layer: ``spikes_per_image`` (over ``max(steps)`` steps),
    ``neurons``, ``rate_per_step`` (spikes per neuron per step) and
    ``spike_maps`` (spikes per image summed over channels, one value per
    position); ``pool_maps`` (for a layer whose spikes go through a max pool,
    :class:`SpikingMaxPool`, the pool's output spikes per image and position, which
    are what reach the next layer; None for the others); ``input_spikes_per_image`` (Poisson input; 0 for analog);
    ``synaptic_ops_per_image`` (see :func:`synaptic_operations`) and
    ``wall_s``.
    """
    import time

    where = "simulate"
    _simulation_checks(net, images, labels, steps, input, v0, bf16, device, where)
    steps = _steps(steps, where)
    if generator is not None and not isinstance(generator, (torch.Generator, np.random.Generator)):
        raise TypeError(f"{where}: generator must be None, a torch.Generator or a "
                        f"numpy.random.Generator, got {type(generator).__name__}")
    check.positive_int("batch", batch, where=where)
    check.flag("signed", signed, where=where)
    check_burst(burst, where)
    check.finite_number("max_rate_hz", max_rate_hz, above=0, where=where)
    check.finite_number("dt_ms", dt_ms, above=0, where=where)
    if max_rate_hz * dt_ms / 1000.0 > 1:
        raise ValueError(f"{where}: max_rate_hz={max_rate_hz} x dt_ms={dt_ms} is more than one "
                         "spike per step; lower the rate or the step")
    _max_steps(steps, len(images), where)
    _check_simulation_memory(net, images, batch, "simulating", where)
    p_max = PoissonParams(max_rate_hz=max_rate_hz, duration_ms=dt_ms, dt_ms=dt_ms).p_max
    if input == "poisson" and generator is None:
        generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    snn, spiking = _spiking_copy(net, v0, signed, burst)
    snn = snn.to(device=device, memory_format=torch.channels_last)
    labels = torch.as_tensor(np.asarray(labels))
    n = len(images)
    preds = {t: [] for t in steps}
    maps = [None] * len(spiking)
    # the last of the max pools that take each spiking layer's spikes one after the other, if
    # any does (its output is what reaches the next weighted layer)
    pools = [snn[e - 1] if e > a + 1 else None
             for a, e in zip(relu_layers(net), _pool_chain_ends(net))]
    pool_maps: list = [None] * len(spiking)
    input_map = torch.zeros(images.shape[-2:], device=device)
    for first in range(0, n, batch):
        x_all = images[first:first + batch].to(device).contiguous(memory_format=torch.channels_last)
        _reset(snn)
        total = None
        for t in range(1, steps[-1] + 1):
            if input == "analog":
                x = x_all
            else:
                x = poisson_step(x_all, p_max, generator=generator)
                input_map += x.sum(dim=(0, 1))
            with runs.autocast(device, bf16):
                out = snn(x)
            total = out.float() if total is None else total + out.float()
            if t in preds:
                preds[t].append(total.argmax(dim=1).cpu())
            if bar is not None:
                bar.update(len(x_all) / steps[-1])
        for j, layer in enumerate(spiking):
            maps[j] = layer.spike_map.clone() if maps[j] is None else maps[j] + layer.spike_map
            if pools[j] is not None:
                m = pools[j].spike_map
                pool_maps[j] = m.clone() if pool_maps[j] is None else pool_maps[j] + m
    predictions = {t: torch.cat(p).numpy() for t, p in preds.items()}
    neurons = _activation_sizes(net, images[:1])
    spike_maps = [m.cpu() / n for m in maps]
    input_map = input_map.cpu()
    per_image = [float(m.sum()) for m in spike_maps]
    pool_maps = [None if m is None else m.cpu() / n for m in pool_maps]
    ops = synaptic_operations(net, spike_maps, steps[-1],
                              input_map=input_map / n if input == "poisson" else None,
                              pool_maps=pool_maps)
    return {"accuracy": {t: float(np.mean(p == labels.numpy())) for t, p in predictions.items()},
            "predictions": predictions,
            "spikes_per_image": per_image,
            "neurons": neurons,
            "rate_per_step": [s / (m * steps[-1]) for s, m in zip(per_image, neurons)],
            "spike_maps": [m.numpy() for m in spike_maps],
            "pool_maps": [None if m is None else m.numpy() for m in pool_maps],
            "input_spikes_per_image": float(input_map.sum()) / n,
            "input_map": (input_map / n).numpy(),
            "synaptic_ops_per_image": ops,
            "steps": steps[-1],
            "wall_s": time.perf_counter() - start}


@torch.no_grad()
def rates_vs_activations(net: nn.Sequential, images: torch.Tensor, *, steps: Sequence[int],
                         keep_rates: bool = False, v0: float = 0.0) -> dict:
    """How far each layer's spike rates are from the activations they stand for.

    ``net`` is normalised (:func:`normalise`), so its ReLU activations
    :math:`a` should be approximated by the IF rates :math:`r_T` (spikes per
    step after :math:`T` steps, analog input) up to clipping at one spike per
    step. Per spiking layer and :math:`T`, returns the mean absolute error

    .. math:: \\varepsilon_l(T) = \\langle |r_{l,T} - \\min(a_l, 1)| \\rangle

    over neurons and images (``error[l][T]``), and the fraction of neurons
    whose activation exceeds one (``clipped[l]``: rates cannot follow them).
    Errors of early layers propagate: a layer's input is spikes, not the
    activations, so the deepest layers' errors are the largest at small T.
    With ``keep_rates``, ``rates[T]`` (per layer, ``(N, ...)``),
    ``activations`` and ``outputs[T]`` (the output layer's mean input per
    step) are returned too (use few images).
    """
    where = "rates_vs_activations"
    _sequential("net", net, where, finite=True)
    _image_batch("images", images, where)
    steps = _steps(steps, where)
    check.flag("keep_rates", keep_rates, where=where)
    v0 = _v0(v0, where)
    _max_steps(steps, len(images), where)
    sizes = _probe_sizes(net, images)
    # the activations, the counts, one step's spikes and the layers' inputs; with keep_rates
    # the rates at every T asked for
    check.fits_in_memory(
        f"rates of {len(images)} images" + (f" at {len(steps)} steps (keep_rates)" if keep_rates
                                            else ""),
        4 * len(images) * sum(sizes) * (6 + (len(steps) if keep_rates else 0)), where=where)
    activations: list[torch.Tensor] = []
    hooks = [net[k].register_forward_hook(lambda m, i, o: activations.append(o.clone()))
             for k in relu_layers(net)]
    cnn_out = net(images)
    for h in hooks:
        h.remove()
    snn, spiking = _spiking_copy(net, v0)
    counts: list[torch.Tensor | None] = [None] * len(spiking)
    captured: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, i, o: captured.append(o)) for layer in spiking]
    error = [{} for _ in spiking]
    rates, outputs, total = {}, {}, None
    for t in range(1, steps[-1] + 1):
        captured.clear()
        out = snn(images)
        total = out if total is None else total + out
        for j, s in enumerate(captured):
            counts[j] = s.clone() if counts[j] is None else counts[j] + s
        if t in steps:
            for j, c in enumerate(counts):
                error[j][t] = float((c / t - activations[j].clamp(max=1.0)).abs().mean())
            if keep_rates:
                rates[t] = [c / t for c in counts]
                outputs[t] = total / t
    for h in hooks:
        h.remove()
    result = {"error": error, "clipped": [float((a > 1).float().mean()) for a in activations],
              "mean_activation": [float(a.clamp(max=1.0).mean()) for a in activations]}
    if keep_rates:
        result.update(rates=rates, activations=activations, outputs=outputs, cnn_outputs=cnn_out)
    return result


@torch.no_grad()
def record_spikes(net: nn.Sequential, image: torch.Tensor, *, steps: int,
                  neurons_per_layer: int = 6, v0: float = 0.0) -> dict:
    """The spikes of a few neurons per layer of the converted network, for one image over ``steps`` steps.

    ``net`` is normalised (:func:`normalise`) and runs as :func:`simulate`
    runs it with analog input: the image is the first layer's input current
    at every step, and every activation is IF neurons (threshold 1, reset by
    subtraction, potential starting at ``v0``). In each spiking layer the
    neurons recorded are those at ``neurons_per_layer`` evenly spaced ranks
    of the layer's positive CNN activations :math:`a` (the normalised
    network's ReLU outputs for this image), from the smallest to the
    largest (all of them when fewer are positive; none in a silent layer),
    so that a raster of them runs from the weakest neuron to the strongest.

    A neuron of the first layer receives the constant current :math:`z = a`
    and fires

    .. math:: n_T = \\mathrm{clip}\\left(\\left\\lfloor T a + v_0 \\right\\rfloor, 0, T\\right)

    times in :math:`T` steps (:func:`snnlib.neurons.if_rate` times
    :math:`T`): rate coding, a count proportional to the activation and
    clipped at one spike per step. A deeper neuron receives spikes rather
    than a constant current and fires about :math:`T \\min(a, 1)` times.

    Parameters
    ----------
    net : nn.Sequential
        A normalised network.
    image : torch.Tensor
        One image, float ``(3, 32, 32)`` or ``(1, 3, 32, 32)`` in [0, 1].
    steps : int
        :math:`T`, the steps simulated.
    neurons_per_layer : int
        Neurons recorded per spiking layer (at most).
    v0 : float
        Initial potential, in [0, 1] (0.5 for a QCFS-trained network).

    Returns
    -------
    dict
        ``spikes``: per layer, bool ``(steps, 1, n)`` (time-major, a batch of
        one, as :func:`snnlib.viz.raster` takes them); ``neurons``: per layer,
        the neurons' flat indices in the layer's output (channel, row,
        column); ``activations``: per layer, their activations :math:`a`;
        ``steps``.
    """
    where = "record_spikes"
    _sequential("net", net, where, finite=True)
    if not relu_layers(net):
        raise ValueError(f"{where}: net has no ReLU or QCFS activation to turn into IF neurons")
    if not torch.is_tensor(image) or image.ndim not in (3, 4) or (image.ndim == 4
                                                                  and len(image) != 1):
        raise ValueError(f"{where}: image must be one image, a float tensor (3, 32, 32) or "
                         f"(1, 3, 32, 32), got "
                         f"{tuple(image.shape) if torch.is_tensor(image) else type(image).__name__}")
    x = image[None] if image.ndim == 3 else image
    _image_batch("image", x, where)
    steps = check.positive_int("steps", steps, where=where)
    _max_steps([steps], 1, where)
    check.positive_int("neurons_per_layer", neurons_per_layer, where=where)
    v0 = _v0(v0, where)
    net = copy.deepcopy(net).eval()
    activations: list[torch.Tensor] = []
    hooks = [net[k].register_forward_hook(lambda m, i, o: activations.append(o[0].flatten()))
             for k in relu_layers(net)]
    net(x)
    for h in hooks:
        h.remove()
    chosen = []
    for a in activations:
        positive = torch.nonzero(a > 0).flatten()
        order = positive[torch.argsort(a[positive], stable=True)]
        if len(order) > neurons_per_layer:
            ranks = np.round(np.linspace(0, len(order) - 1, neurons_per_layer)).astype(np.int64)
            order = order[torch.as_tensor(ranks)]
        chosen.append(order)
    snn, spiking = _spiking_copy(net, v0)
    record: list[list[torch.Tensor]] = [[] for _ in spiking]
    hooks = [layer.register_forward_hook(
        lambda m, i, o, j=j: record[j].append(o[0].flatten()[chosen[j]] > 0))
        for j, layer in enumerate(spiking)]
    for _ in range(steps):
        snn(x)
    for h in hooks:
        h.remove()
    return {"spikes": [torch.stack(r)[:, None, :] for r in record],
            "neurons": chosen,
            "activations": [a[idx].clone() for a, idx in zip(activations, chosen)],
            "steps": steps}


class SpikingMaxPool(nn.Module):
    """Max pooling of spike trains (or currents), exact in their sums over time.

    Each output unit keeps the running sum :math:`C_i(t) = \\sum_{\\tau \\le t} x_i(\\tau)`
    of each input :math:`i` of its window and passes on how much their
    maximum grew:

    .. math:: y(t) = \\max_i C_i(t) - \\max_i C_i(t - 1),
              \\qquad \\sum_{t=1}^{T} y(t) = \\max_i C_i(T).

    So over :math:`T` steps the output sums to the maximum of the inputs'
    sums: the max pool of the spike counts, hence of the rates that
    approximate the CNN's activations, which is what the CNN's max pool
    computes. For spikes of 0 or 1 each running count grows by at most one
    per step, so :math:`y(t)` is 0 or 1, a spike train again (it is a spike
    of the input that is, or has just become, the most active one); for
    signed spikes it is -1, 0 or 1. ``spike_map`` counts its output events over
    the batch and the channels since :meth:`reset_state` (one value per output position),
    what the next layer's synaptic operations are counted from. ``kernel_size`` as
    :class:`torch.nn.MaxPool2d`'s (the stride is the kernel's, no padding). Behind neurons
    that fire bursts of up to ``burst`` spikes of :math:`1/\\Gamma` each
    (:class:`snnlib.neurons.IFNeurons`' ``burst``), an output of :math:`y` is
    :math:`\\Gamma |y|` events.
    """

    def __init__(self, kernel_size: int = 2, burst: int = 1) -> None:
        super().__init__()
        self.kernel_size = check.positive_int("kernel_size", kernel_size,
                                              where="SpikingMaxPool")
        self.burst = check_burst(burst, "SpikingMaxPool")
        self.total: torch.Tensor | None = None
        self.last: torch.Tensor | None = None
        self.spike_map: torch.Tensor | None = None

    def reset_state(self) -> None:
        self.total, self.last, self.spike_map = None, None, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One step for input ``x`` ``(N, C, H, W)`` (the shape of the first input since
        :meth:`reset_state`)."""
        if self.total is not None and self.total.shape != x.shape:
            raise ValueError(f"SpikingMaxPool: x has shape {tuple(x.shape)}, the running sums "
                             f"{tuple(self.total.shape)}; call reset_state() before a new batch")
        if self.total is None:
            self.total = x.float().clone(memory_format=torch.preserve_format)
        else:
            self.total.add_(x)
        top = F.max_pool2d(self.total, self.kernel_size)
        y = (top if self.last is None else top - self.last).to(x.dtype)
        # what has been passed on, as passed on: a current rounded to x's precision (bfloat16)
        # is made up for at the next step instead of lost (spikes are exact either way)
        passed = y.float()
        self.last = passed if self.last is None else self.last + passed
        m = passed.abs().sum(dim=(0, 1))
        if self.burst > 1:
            m.mul_(self.burst)
        self.spike_map = m if self.spike_map is None else self.spike_map.add_(m)
        return y


def _pool_chain_ends(net: nn.Sequential) -> list[int]:
    """For each activation of ``net`` (:func:`relu_layers`), the index of the first module
    after the max pools that follow it one after the other (the activation's index + 1 when
    none does): where its spikes leave for the next weighted layer."""
    ends = []
    for a in relu_layers(net):
        e = a + 1
        while e < len(net) and isinstance(net[e], nn.MaxPool2d):
            e += 1
        ends.append(e)
    return ends


def _spiking_copy(net: nn.Sequential, v0: float, signed: bool = False, burst: int = 1
                  ) -> tuple[nn.Sequential, list[IFNeurons]]:
    """A copy of a normalised network with every activation replaced by IF neurons (signed ones
    with ``signed``, firing bursts of up to ``burst`` spikes) and every max pool by a
    :class:`SpikingMaxPool`."""
    snn = copy.deepcopy(net).eval()
    spiking = []
    for k in relu_layers(snn):
        snn[k] = IFNeurons(v0, signed, burst)
        spiking.append(snn[k])
    for k, m in enumerate(snn):
        if isinstance(m, nn.MaxPool2d):
            snn[k] = SpikingMaxPool(_max_pool_kernel(m, k), burst)
    return snn, spiking


def _max_pool_kernel(m: nn.MaxPool2d, index: int) -> int:
    """The side of a max pool that :class:`SpikingMaxPool` can take (square, stride = kernel,
    no padding or dilation); ``index``: its place in the network, for the error."""
    k = m.kernel_size
    if isinstance(k, tuple) and len(k) == 2 and k[0] == k[1]:
        k = k[0]
    if (not isinstance(k, int) or m.stride not in (k, (k, k)) or m.padding not in (0, (0, 0))
            or m.dilation not in (1, (1, 1)) or m.ceil_mode):
        raise ValueError(f"net: its max pool net[{index}] converts as a SpikingMaxPool only with "
                         f"a square kernel, a stride equal to it, and no padding, dilation or "
                         f"ceil_mode; got {m}")
    return k


def _reset(snn: nn.Sequential) -> None:
    """Every stateful layer of a spiking copy back to its start."""
    for m in snn:
        if isinstance(m, (IFNeurons, SpikingMaxPool)):
            m.reset_state()


def _probe_sizes(net: nn.Sequential, images: torch.Tensor) -> list[int]:
    """:func:`_activation_sizes` on an eval-mode copy: ``net`` itself is not run (a batch norm
    in training mode would update its statistics)."""
    return _activation_sizes(copy.deepcopy(net).eval(), images[:1])


def _activation_sizes(net: nn.Sequential, probe_image: torch.Tensor) -> list[int]:
    """Neurons (per image) of each activation of ``net``."""
    sizes: list[int] = []
    hooks = [net[k].register_forward_hook(lambda m, i, o: sizes.append(o[0].numel()))
             for k in relu_layers(net)]
    with torch.no_grad():
        net(probe_image)
    for h in hooks:
        h.remove()
    return sizes


def _fanout(path: list[nn.Module], shape: tuple[int, ...]) -> torch.Tensor:
    """Synapses each input unit of ``path`` (pooling, flattening, one weighted layer) reaches.

    Computed as :math:`\\partial \\sum_j y_j / \\partial x_i` of the path with every
    weight set to one and average pooling replaced by sum pooling: the number
    of weights an input spike is added through. Summed over channels, one
    value per position (inputs of the same position share their fan-out).
    """
    with torch.enable_grad():
        x = torch.ones((1, *shape), requires_grad=True)
        y = _fanout_forward(path, x)
        y.sum().backward()
    g = x.grad[0]
    return g[0] if g.ndim == 3 else g  # a conv input's channels share a fan-out


def _fanout_forward(path: list[nn.Module], y: torch.Tensor) -> torch.Tensor:
    for m in path:
        if isinstance(m, nn.AvgPool2d):
            y = F.avg_pool2d(y, m.kernel_size, m.stride, m.padding) * (
                m.kernel_size ** 2 if isinstance(m.kernel_size, int) else math.prod(m.kernel_size))
        elif isinstance(m, nn.Conv2d):
            y = F.conv2d(y, torch.ones_like(m.weight), None, m.stride, m.padding)
        elif isinstance(m, nn.Linear):
            y = F.linear(y, torch.ones_like(m.weight))
        else:
            y = m(y)
    return y


def synaptic_operations(net: nn.Sequential, spike_maps: Sequence[torch.Tensor], steps: int, *,
                        input_map: torch.Tensor | None = None,
                        pool_maps: Sequence | None = None) -> dict:
    """Operations per image of the converted network, and the CNN's multiply-accumulates.

    A spike reaching a layer costs one accumulate per synapse it crosses
    (its fan-out, :func:`_fanout`); a layer whose input is not spikes costs
    one multiply-accumulate per weight and step. So

    .. math:: \\mathrm{AC} = \\sum_l \\sum_i s_{l,i}\\, f_{l,i},
              \\qquad \\mathrm{MAC}_\\mathrm{SNN} = T \\cdot \\mathrm{MAC}_1

    with :math:`s_{l,i}` the spikes per image at position :math:`i` of the
    layer feeding layer :math:`l` and :math:`f_{l,i}` their fan-out; with
    analog input, the first layer takes the image as a current every step
    (``MAC_1`` per step), with Poisson input its input spikes are counted as
    accumulates too (``input_map``). The CNN's cost is one multiply-accumulate
    per weight use: :math:`\\sum_l` (output units x fan-in). The SNN's
    biases are constant currents: one addition per neuron and step, counted
    apart (``bias_additions``); pooling's additions are counted in neither.

    ``spike_maps`` must have one map per spiking layer, shaped as its
    positions (``H x W``, or ``(units,)`` for a flat layer); ``input_map``
    ``32 x 32``. A layer whose spikes go through a max pool first reaches the
    next layer with the pool's output spikes (:class:`SpikingMaxPool`; the last
    pool's, when several follow each other): for it ``pool_maps`` (one entry per
    spiking layer, None for the others) holds them, shaped as that pool's output
    positions, and the accumulates are counted from them.

    Returns ``accumulates``, ``multiply_accumulates``, ``bias_additions``
    (SNN, per image), ``cnn_multiply_accumulates`` and
    ``per_layer_accumulates``.
    """
    where = "synaptic_operations"
    _sequential("net", net, where)
    check.positive_int("steps", steps, where=where)
    if isinstance(spike_maps, (str, bytes)) or not hasattr(spike_maps, "__len__"):
        raise TypeError(f"{where}: spike_maps must be a sequence of arrays (one per spiking "
                        f"layer), got {type(spike_maps).__name__}")
    for j, m in enumerate(spike_maps):
        check.array(f"spike_maps[{j}]", m, low=0.0, where=where)
    if input_map is not None:
        check.array("input_map", input_map, low=0.0, where=where)
    mods = list(net)
    acts = relu_layers(net)
    weighted = [k for k, m in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.Linear))]
    shapes = _input_shapes(net)
    macs = list(_layer_macs(net, shapes).values())
    if len(spike_maps) != len(acts):
        raise ValueError(f"need one spike map per spiking layer ({len(acts)}), got {len(spike_maps)}.")

    def checked(m, fan: torch.Tensor, what: str) -> torch.Tensor:
        m = torch.as_tensor(m)
        if tuple(m.shape) != tuple(fan.shape):
            raise ValueError(f"{what} has shape {tuple(m.shape)}, its layer's positions are "
                             f"{tuple(fan.shape)}.")
        return m

    ends = _pool_chain_ends(net)
    pooled = [e > a + 1 for a, e in zip(acts, ends)]
    if any(pooled):
        if (isinstance(pool_maps, (str, bytes)) or not hasattr(pool_maps, "__len__")
                or len(pool_maps) != len(acts)):
            raise ValueError(f"{where}: net max-pools the spikes of its spiking layers "
                             f"{[j for j, p in enumerate(pooled) if p]}: pool_maps must have one "
                             f"entry per spiking layer ({len(acts)}), the pool's output spikes "
                             "for those and None for the others")
        for j, p in enumerate(pooled):
            if p and pool_maps[j] is None:
                raise ValueError(f"{where}: pool_maps[{j}] is None, but spiking layer {j}'s "
                                 "spikes go through a max pool: give the pool's output spikes")
            if p:
                check.array(f"pool_maps[{j}]", pool_maps[j], low=0.0, where=where)

    per_layer = []
    for j, a in enumerate(acts):
        nxt = next(k for k in weighted if k > a)
        if pooled[j]:
            fan = _fanout(mods[ends[j]:nxt + 1], shapes[ends[j]])
            per_layer.append(float((checked(pool_maps[j], fan, f"pool_maps[{j}]") * fan).sum()))
            continue
        fan = _fanout(mods[a + 1:nxt + 1], shapes[a + 1])
        per_layer.append(float((checked(spike_maps[j], fan, f"spike map {j}") * fan).sum()))
    first_mac = 0.0
    if input_map is not None:
        fan = _fanout(mods[:weighted[0] + 1], shapes[0])
        per_layer.insert(0, float((checked(input_map, fan, "input_map") * fan).sum()))
    else:
        first_mac = float(steps * macs[0])
    biases = sum(m.out_channels * _conv_out_positions(m, shapes[k]) if isinstance(m, nn.Conv2d)
                 else m.out_features for k in weighted for m in [mods[k]] if m.bias is not None)
    return {"accumulates": float(sum(per_layer)), "multiply_accumulates": first_mac,
            "bias_additions": float(steps * biases),
            "cnn_multiply_accumulates": float(sum(macs)), "per_layer_accumulates": per_layer}


def _input_shapes(net: nn.Sequential, image_px: int = 32) -> dict[int, tuple[int, ...]]:
    """The input shape (without the batch) of each module of ``net``, by its index, for one
    ``image_px`` x ``image_px`` RGB image (run in eval mode, so batch norms' statistics stay
    as they are; ``net`` is handed back in its own mode)."""
    mods = list(net)
    shapes: dict[int, tuple[int, ...]] = {}
    hooks = [mods[k].register_forward_hook(
        lambda m, i, o, k=k: shapes.__setitem__(k, tuple(i[0].shape[1:])))
        for k in range(len(mods))]
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, 3, image_px, image_px))
    finally:
        net.train(was_training)
        for h in hooks:
            h.remove()
    return shapes


def _layer_macs(net: nn.Sequential, shapes: dict[int, tuple[int, ...]] | None = None
                ) -> dict[int, int]:
    """The multiply-accumulates per image of each convolution and linear layer of ``net``, by
    its index: :math:`\\mathrm{MAC}_l` = output units x fan-in, with :math:`H_l W_l
    C^{out}_l` output units and :math:`C^{in}_l k_l^2 / g_l` inputs each for a convolution
    (``shapes``: :func:`_input_shapes`, computed when not given)."""
    shapes = _input_shapes(net) if shapes is None else shapes
    macs = {}
    for k, m in enumerate(net):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            out_units = (m.out_channels * _conv_out_positions(m, shapes[k])
                         if isinstance(m, nn.Conv2d) else m.out_features)
            macs[k] = out_units * m.weight[0].numel()
    return macs


def _conv_out_positions(m: nn.Conv2d, in_shape: tuple[int, ...]) -> int:
    h, w = in_shape[-2:]
    kh, kw = m.kernel_size
    ph, pw = m.padding
    sh, sw = m.stride
    return ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)


STEPS_ANALYSED = tuple(2 ** k for k in range(9))
"""Numbers of steps at which the converted network's accuracy is read (1 ... 256)."""
PERCENTILES = (99.9, 99.99, 100.0)
"""Normalisation percentiles compared; the tier uses ``PERCENTILE``, and
``CHANNEL_PERCENTILE`` must be one of them (its layer-wise network is reused)."""
PERCENTILE = 99.99
"""The tier's normalisation percentile, chosen on the validation split as the one with the
highest accuracy at the full profile's longest simulation (T = 128):
``benchmarks/cnn_techniques.py`` with row I's network (F trained for 16 epochs on the training
split, the full profile's then) ``--percentiles 99.9 99.99 100 --steps 8 16 32 64 128 --snn-val 1000`` gave 88.10% at
T = 128 for 99.99, 87.70% for 99.9 and 81.20% for 100 (its CNN 88.40% on those 1,000
images); 99.9 was ahead at T = 16 and 32 (54.60% and 79.20%, against 38.40% and 76.30%)."""
CHANNEL_PERCENTILE = 99.9
"""The percentile of the tier's two copies whose neurons start half-way to their threshold
(``v0 = 0.5``), normalised layer by layer and channel by channel (:func:`normalise` with
``channel_wise=True``), simulated beside the others on the variant images. Chosen on the
validation split as the more accurate at few steps of 99.9 and 100:
``benchmarks/peer_conversion.py`` on the full profile's network (M trained with Muon for 8
epochs on the training split; its CNN 88.60% on those 500 images) gave, at T = 4 / 8 / 16,
46.60% / 73.00% / 87.00% layer by layer and 43.80% / 69.20% / 86.40% channel by channel at
99.9, against 12.20% / 14.60% / 20.40% and 22.40% / 36.00% / 67.40% at 100 (the tier's own
copy, layer by layer at 99.99 with ``v0 = 0``: 12.00% / 46.40% / 71.60%;
``results/peer_conversion.json``)."""
SNN_PART_IMAGES = 500
"""Images per checkpointed part of a simulation (a killed run resumes at a part)."""
SIM_VERSION = 3
"""Part of every simulation checkpoint's key: raised when :func:`simulate` changes."""


def simulate_parts(net: nn.Sequential, images: torch.Tensor, labels, *, steps: Sequence[int],
                   folder, input: Literal["analog", "poisson"] = "analog", seed: int = 0,
                   bf16: bool = False, v0: float = 0.0, part_images: int = SNN_PART_IMAGES,
                   progress: bool = True, desc: str = "tier 3, SNN", device: str = "cpu",
                   numerics: Numerics | None = None, signed: bool = False,
                   burst: int = 1) -> dict:
    """:func:`simulate` in parts of ``part_images`` images, each saved in ``folder``; resumable.

    A part is recomputed when its network's weights, its images or labels,
    the settings, the seed or ``SIM_VERSION`` differ from the saved one, or
    when its file cannot be read (it is then set aside and the run says so)
    (Poisson parts draw from a generator seeded with ``seed`` and the part's
    first image, so an interrupted run gives the same numbers). Returns what
    :func:`simulate` returns for all the images, with ``wall_s`` summed over
    the parts and ``images_per_s`` (images simulated for ``max(steps)`` steps
    per second).

    ``numerics`` (:class:`.numerics.Numerics`): the arithmetic, applied for
    the call; with reproducible numerics a part computed with other threads
    or CPU kernels is recomputed (:func:`.numerics.fingerprint` is part of
    its key). None: the process's own arithmetic, not part of the key.
    ``signed``: signed IF neurons with memory (:func:`simulate`'s ``signed``); ``burst``:
    neurons that fire bursts of up to ``burst`` spikes a step (:func:`simulate`'s ``burst``).
    """
    import os
    from pathlib import Path

    where = "simulate_parts"
    check.instance("folder", folder, (str, os.PathLike), where=where)
    _simulation_checks(net, images, labels, steps, input, v0, bf16, device, where)
    check.integer("seed", seed, where=where)
    check.positive_int("part_images", part_images, where=where)
    check.flag("progress", progress, where=where)
    check.instance("desc", desc, str, where=where)
    check.instance("numerics", numerics, Numerics, none=True, where=where)
    check.flag("signed", signed, where=where)
    check_burst(burst, where)
    if numerics is not None and numerics.reproducible and bf16:
        raise ValueError(f"{where}: bf16=True with reproducible numerics (float32 only)")
    _max_steps(_steps(steps, where), len(images), where)
    with numerics_scope(numerics):
        return _simulate_parts(net, images, labels, steps=steps, folder=Path(folder), input=input,
                               seed=seed, bf16=bf16, v0=v0, part_images=part_images,
                               progress=progress, desc=desc, device=device,
                               numerics_key=fingerprint(numerics), signed=signed,
                               burst=int(burst))


def _simulate_parts(net, images, labels, *, steps, folder, input, seed, bf16, v0, part_images,
                    progress, desc, device, numerics_key, signed, burst) -> dict:
    """:func:`simulate_parts` after its checks, inside its numerics."""
    from ...progress import tqdm

    steps = sorted(set(int(t) for t in steps))
    labels = np.asarray(labels)
    n = len(images)
    folder.mkdir(parents=True, exist_ok=True)
    preds = {t: np.zeros(n, dtype=np.int64) for t in steps}
    maps, pool_maps, input_maps, walls = None, None, [], []
    bar = tqdm(total=n, disable=not progress, unit="img", desc=desc,
               bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]")
    for first in range(0, n, part_images):
        last = min(n, first + part_images)
        path = folder / f"part_{first:06d}_{last:06d}.npz"
        x = images[first:last]
        key_parts = (net, x, labels[first:last], steps, input, seed, bf16, float(v0), first)
        if numerics_key is not None:  # (without numerics, the keys of earlier runs)
            key_parts += (numerics_key,)
        if signed:  # (plain neurons keep the keys of earlier runs)
            key_parts += ("signed",)
        if burst > 1:  # (and so do neurons of one spike a step)
            key_parts += ("burst", burst)
        if any(isinstance(m, nn.MaxPool2d) for m in net):  # (pools hold no weights to hash;
            key_parts += ("layers", [type(m).__name__ for m in net])  # others keep their keys)
        part_key = runs.cache_key(*key_parts, version=SIM_VERSION)
        saved = runs.cached_npz(path, part_key)
        if saved is None:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + first)
            r = simulate(net, x, labels[first:last], steps=steps, input=input, generator=g,
                         bf16=bf16, v0=v0, bar=bar, device=device, signed=signed,
                         burst=burst)
            saved = {"key": np.array(part_key), "wall_s": np.array(r["wall_s"]),
                     "predictions": np.stack([r["predictions"][t] for t in steps]),
                     "input_map": r["input_map"],
                     **{f"map_{j}": m for j, m in enumerate(r["spike_maps"])},
                     **{f"pool_map_{j}": m for j, m in enumerate(r["pool_maps"])
                        if m is not None}}
            runs.save_npz(path, **saved)
        else:
            bar.update(last - first)
        for i, t in enumerate(steps):
            preds[t][first:last] = saved["predictions"][i]
        n_maps = sum(k.startswith("map_") for k in saved)
        part_maps = [saved[f"map_{j}"] * (last - first) for j in range(n_maps)]
        maps = part_maps if maps is None else [a + b for a, b in zip(maps, part_maps)]
        part_pools = [saved[f"pool_map_{j}"] * (last - first) if f"pool_map_{j}" in saved
                      else None for j in range(n_maps)]
        pool_maps = (part_pools if pool_maps is None else
                     [None if a is None else a + b for a, b in zip(pool_maps, part_pools)])
        input_maps.append(saved["input_map"] * (last - first))
        walls.append(float(saved["wall_s"]))
    bar.close()
    spike_maps = [torch.as_tensor(m / n) for m in maps]
    neurons = _activation_sizes(net, images[:1])
    per_image = [float(m.sum()) for m in spike_maps]
    input_map = torch.as_tensor(sum(input_maps) / n)
    input_per_image = float(input_map.sum())
    if input != "poisson":
        input_map = None
    wall = float(sum(walls))
    return {"accuracy": {t: float(np.mean(p == labels)) for t, p in preds.items()},
            "predictions": preds, "spikes_per_image": per_image, "neurons": neurons,
            "rate_per_step": [s / (m * steps[-1]) for s, m in zip(per_image, neurons)],
            "spike_maps": [m.numpy() for m in spike_maps],
            "pool_maps": [None if m is None else m / n for m in pool_maps],
            "input_spikes_per_image": input_per_image,
            "input_map": np.asarray(sum(input_maps) / n),
            "synaptic_ops_per_image": synaptic_operations(
                net, spike_maps, steps[-1], input_map=input_map,
                pool_maps=[None if m is None else torch.as_tensor(m / n) for m in pool_maps]),
            "steps": steps[-1], "wall_s": wall, "images_per_s": n / wall if wall else None}


def smallest_steps_within(accuracy: dict, reference: float, points: float):
    """The smallest T whose accuracy is within ``points`` percentage points of ``reference`` (or None)."""
    where = "smallest_steps_within"
    check.instance("accuracy", accuracy, dict, where=where, what="a dict {T: accuracy}")
    if not accuracy:
        raise ValueError(f"{where}: accuracy must map numbers of steps to accuracies, got {{}}")
    for t, a in accuracy.items():
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"{where}: accuracy's keys must be numbers of steps (positive "
                             f"integers), got {t!r}")
        check.probability(f"accuracy[{t}]", a, where=where)
    check.probability("reference", reference, where=where)
    check.finite_number("points", points, at_least=0, where=where)
    ok = [t for t, a in sorted(accuracy.items()) if a >= reference - points / 100.0 - 1e-12]
    return ok[0] if ok else None


def _simulation_checks(net, images, labels, steps, input, v0, bf16, device, where: str) -> None:
    """What :func:`simulate` and :func:`simulate_parts` share: the network, the images and
    their labels, the steps, the input, ``v0``, ``bf16`` and the device."""
    _sequential("net", net, where, finite=True)
    if not relu_layers(net):
        raise ValueError(f"{where}: net has no ReLU or QCFS activation to turn into IF neurons")
    _image_batch("images", images, where)
    if labels is None or not hasattr(labels, "__len__"):
        raise TypeError(f"{where}: labels must be an array of class indices, got "
                        f"{type(labels).__name__} {labels!r}")
    if len(images) != len(labels):  # the phrase of the earlier message, kept
        raise ValueError(f"{where}: need at least one image and one label per image, got "
                         f"{len(images)} images and {len(labels)} labels.")
    _labels_for("labels", labels, len(images), where, n_classes=_n_classes(net))
    _steps(steps, where)
    check.choice("input", input, ("analog", "poisson"), where=where)
    _v0(v0, where)
    check.flag("bf16", bf16, where=where)
    _device(device, where)
