"""Tier 3: train a CNN, convert it into a spiking network of integrate-and-fire neurons.

The efficient tier (Cao et al. 2015; Diehl et al. 2015; Rueckauer et al. 2017).
An integrate-and-fire (IF) neuron with threshold :math:`\\vartheta`, reset by
subtraction and a constant input :math:`z` per step fires at the rate

.. math::

    r = \\frac{1}{T} \\left\\lfloor \\frac{T z + v_0}{\\vartheta} \\right\\rfloor
      \\;\\to\\; \\mathrm{clip}(z / \\vartheta, 0, 1) \\quad (T \\to \\infty),

which is a ReLU clipped at one spike per step. So a ReLU network whose
activations are scaled to [0, 1] becomes a spiking network with the same
weights: each layer's rates approximate the next layer's inputs, better the
longer it runs.

The recipe here:

1. a CNN built to convert (:class:`ConvNet`): convolutions and a linear
   layer, batch norm, ReLU (or the quantised clip-floor-shift activation of
   Bu et al. 2022), average pooling only (a spiking max-pool has no simple
   rate equivalent);
2. batch norm folded into the convolutions (:func:`fold_batchnorm`);
3. data-based normalisation (:func:`normalise`): each layer's weights are
   scaled by :math:`\\lambda_{l-1} / \\lambda_l` and its bias by
   :math:`1 / \\lambda_l`, with :math:`\\lambda_l` the ``p``-th percentile of
   layer :math:`l`'s activations on training images (Rueckauer et al. 2017;
   ``p = 100`` is Diehl et al.'s max-norm);
4. simulation (:func:`simulate`): IF neurons with threshold 1 and reset by
   subtraction, the image given as a constant current (``analog``) or as
   Poisson spikes (``poisson``), the output layer integrating without
   spiking; the accuracy at every requested number of steps is read from
   one run;
5. optionally, quantisation-aware fine-tuning (:func:`qcfs_from_relu`): the
   trained CNN's ReLUs become clip-floor-shift activations with ``L`` levels
   (Bu et al. 2022), a few epochs of training adapt the weights to them, and
   the network converts with neurons that start half-way to threshold
   (``v0 = 0.5``), which it needs far fewer steps for.

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
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvNet", "ConvNetParams", "QCFS", "SpikingLayer", "TrainParams", "augment",
           "evaluate_cnn", "fold_batchnorm", "if_rate", "images_to_tensor", "normalise",
           "params_for_profile", "qcfs_from_relu", "rates_vs_activations", "relu_layers",
           "run_tier", "simulate", "simulate_parts", "smallest_steps_within",
           "synaptic_operations", "train_cnn"]

@dataclass(frozen=True)
class ConvNetParams:
    """A VGG-style CNN that converts: 3 x 3 convolutions, batch norm, ReLU, average pooling.

    Attributes
    ----------
    widths : tuple of int
        Output channels of each convolution; ``pool_after`` says after which
        (0-based) a 2 x 2 average pool halves the image.
    pool_after : tuple of int
    quantisation_levels : int or None
        None: ReLU. L: the clip-floor-shift activation with L levels (Bu et
        al. 2022), trained so that the SNN is accurate after few steps.
    """

    widths: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    pool_after: tuple[int, ...] = (1, 3, 5)
    quantisation_levels: int | None = None

    def __post_init__(self) -> None:
        if not self.widths or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"ConvNetParams.widths must be positive integers, got {self.widths!r}.")
        if any(not 0 <= k < len(self.widths) for k in self.pool_after):
            raise ValueError(f"ConvNetParams.pool_after must index the convolutions "
                             f"(0..{len(self.widths) - 1}), got {self.pool_after!r}.")
        if 2 ** len(self.pool_after) > 32:
            raise ValueError("at most 5 poolings fit a 32 x 32 image.")
        q = self.quantisation_levels
        if q is not None and (not isinstance(q, int) or q < 1):
            raise ValueError(f"ConvNetParams.quantisation_levels must be None or a positive "
                             f"integer, got {q!r}.")


class QCFS(nn.Module):
    """Quantisation-clip-floor-shift activation (Bu et al. 2022).

    .. math:: h(x) = \\frac{\\lambda}{L}\\, \\mathrm{clip}\\left(\\left\\lfloor
              \\frac{x L}{\\lambda} + \\frac{1}{2} \\right\\rfloor, 0, L\\right)

    with a trainable threshold :math:`\\lambda`; the gradient of the floor is
    taken as 1 (straight-through). It is what an IF neuron with threshold
    :math:`\\lambda` and initial potential :math:`\\lambda / 2` computes in
    :math:`L` steps, so a network trained with it converts with little loss
    at :math:`T \\approx L`.
    """

    def __init__(self, levels: int, threshold: float = 8.0) -> None:
        super().__init__()
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.threshold
        y = torch.clamp(x / lam, 0.0, 1.0) * self.levels + 0.5
        y = y + (torch.floor(y) - y).detach()  # straight-through floor: already in 0..L
        return y * lam / self.levels


QCFS_LEVELS = 4
"""Quantisation levels ``L`` of the clip-floor-shift network (Bu et al. use 4 on CIFAR-10)."""
QCFS_INIT_PERCENTILE = 99.0
"""Percentile of the ReLU network's activations that each QCFS threshold starts at."""
QCFS_MAX_LR = 0.05
"""Peak learning rate of the quantisation-aware fine-tuning (one-cycle, like training)."""
QCFS_V0 = 0.5
"""Initial potential of the QCFS network's IF neurons (the shift of the activation)."""


class ConvNet(nn.Module):
    """The CNN of tier 3 (see :class:`ConvNetParams`), on images in [0, 1].

    No input normalisation: the batch norm after the first convolution
    learns it, and the converted network then takes the intensities that
    Poisson encoding also uses.
    """

    def __init__(self, params: ConvNetParams = ConvNetParams()) -> None:
        super().__init__()
        self.params = params
        layers: list[nn.Module] = []
        c_in = 3
        for k, width in enumerate(params.widths):
            layers += [nn.Conv2d(c_in, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU() if params.quantisation_levels is None
                       else QCFS(params.quantisation_levels)]
            if k in params.pool_after:
                layers.append(nn.AvgPool2d(2))
            c_in = width
        side = 32 // 2 ** len(params.pool_after)
        layers += [nn.Flatten(), nn.Linear(c_in * side * side, 10)]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` float ``(N, 3, 32, 32)`` in [0, 1]; returns logits ``(N, 10)``."""
        return self.features(x)


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops (``pad`` pixels of reflection around, then the original size) and horizontal flips.

    ``x`` ``(N, C, H, W)``; every image gets its own offset and flip from ``generator``.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def fold_batchnorm(model: ConvNet) -> nn.Sequential:
    """The network with every batch norm folded into the convolution before it (eval mode).

    For :math:`y = \\gamma (W x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta`:
    :math:`W' = W \\gamma / \\sqrt{\\sigma^2 + \\epsilon}`, :math:`b' = \\beta - \\mu \\gamma /
    \\sqrt{\\sigma^2 + \\epsilon}`. Exact: the folded network computes the same
    function as the original in eval mode.
    """
    layers: list[nn.Module] = []
    mods = list(model.features)
    k = 0
    while k < len(mods):
        m = mods[k]
        if isinstance(m, nn.Conv2d) and k + 1 < len(mods) and isinstance(mods[k + 1], nn.BatchNorm2d):
            bn = mods[k + 1]
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            w = m.weight.detach() * scale.view(-1, 1, 1, 1)
            b = bn.bias.detach() - bn.running_mean * scale
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding, bias=True)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            layers.append(conv)
            k += 2
            continue
        layers.append(m)
        k += 1
    return nn.Sequential(*layers).eval()


def if_rate(z, steps: int, threshold: float = 1.0, v0: float = 0.0) -> np.ndarray:
    """Rate (spikes per step) of an IF neuron with reset by subtraction under constant input ``z``.

    .. math:: r = \\frac{1}{T}\\, \\mathrm{clip}\\left(\\left\\lfloor \\frac{T z + v_0}{\\vartheta}
              \\right\\rfloor, 0, T\\right)

    (at most one spike per step).
    """
    z = np.asarray(z, dtype=float)
    return np.clip(np.floor((steps * z + v0) / threshold + 1e-9), 0, steps) / steps


def relu_layers(net: nn.Sequential) -> list[int]:
    """Indices of the activation modules (ReLU or QCFS) of a folded network."""
    return [k for k, m in enumerate(net) if isinstance(m, (nn.ReLU, QCFS))]


@torch.no_grad()
def normalise(net: nn.Sequential, images: torch.Tensor, *, percentile: float = 99.99,
              batch: int = 250, seed: int = 0) -> tuple[nn.Sequential, list[float]]:
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
    """
    import copy

    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
    net = copy.deepcopy(net).eval()
    acts = relu_layers(net)
    samples: dict[int, list[torch.Tensor]] = {k: [] for k in acts}
    g = torch.Generator().manual_seed(seed)
    maxima: dict[int, float] = {k: 0.0 for k in acts}

    def record(k: int, o: torch.Tensor) -> None:
        samples[k].append(o.flatten()[torch.randperm(o.numel(), generator=g)[:200_000]])
        maxima[k] = max(maxima[k], float(o.max()))

    hooks = [net[k].register_forward_hook(lambda m, i, o, k=k: record(k, o)) for k in acts]
    for i in range(0, len(images), batch):
        net(images[i:i + batch])
    for h in hooks:
        h.remove()
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


@torch.no_grad()
def qcfs_from_relu(model: ConvNet, images: torch.Tensor, *, levels: int = QCFS_LEVELS,
                   percentile: float = QCFS_INIT_PERCENTILE, seed: int = 0) -> ConvNet:
    """A copy of a trained ReLU :class:`ConvNet` with clip-floor-shift activations, to fine-tune.

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
    from scratch for hundreds of epochs) keeps the training short.
    """
    if not isinstance(model, ConvNet):
        raise TypeError(f"qcfs_from_relu takes a ConvNet, got {type(model).__name__}.")
    if model.params.quantisation_levels is not None:
        raise ValueError("qcfs_from_relu takes a ReLU ConvNet; this one already has QCFS "
                         "activations.")
    if not isinstance(levels, int) or levels < 1:
        raise ValueError(f"levels must be a positive integer, got {levels!r}.")
    _, lambdas = normalise(fold_batchnorm(model), images, percentile=percentile, seed=seed)
    q = ConvNet(replace(model.params, quantisation_levels=levels))
    missing, unexpected = q.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(k.endswith(".threshold") for k in missing), (missing, unexpected)
    for act, lam in zip((m for m in q.features if isinstance(m, QCFS)), lambdas):
        act.threshold.fill_(lam)
    return q.train(model.training)


class SpikingLayer(nn.Module):
    """IF neurons with threshold 1 and reset by subtraction, replacing an activation.

    Each step: :math:`v \\leftarrow v + z`, :math:`s = [v \\ge 1]`,
    :math:`v \\leftarrow v - s`. ``v0`` is the initial potential (0, or 0.5 as
    Bu et al. recommend).

    ``spike_map`` sums the spikes over images and channels (one value per
    position, or per unit of a flat layer): what the synaptic operations of
    the next layer are counted from.
    """

    def __init__(self, v0: float = 0.0) -> None:
        super().__init__()
        self.v0 = v0
        self.v: torch.Tensor | None = None
        self.spike_map: torch.Tensor | None = None

    def reset(self) -> None:
        self.v, self.spike_map = None, None

    @property
    def spikes(self) -> float:
        """All spikes since the last reset."""
        return 0.0 if self.spike_map is None else float(self.spike_map.sum())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.v is None:  # the potential is float32 whatever the input's precision
            self.v = torch.full_like(z, self.v0, dtype=torch.float32,
                                     memory_format=torch.preserve_format)
        self.v.add_(z)
        s = (self.v >= 1.0).to(z.dtype)  # spikes in the input's precision (exact: 0 or 1)
        self.v.sub_(s)
        m = s.sum(dim=(0, 1), dtype=torch.float32) if s.ndim == 4 else s.sum(dim=0, dtype=torch.float32)
        self.spike_map = m if self.spike_map is None else self.spike_map.add_(m)
        return s


@torch.no_grad()
def simulate(net: nn.Sequential, images: torch.Tensor, labels, *, steps: Sequence[int],
             input: Literal["analog", "poisson"] = "analog", v0: float = 0.0,
             generator: torch.Generator | None = None, bf16: bool = False,
             batch: int = 100, bar=None) -> dict:
    """Run the converted network for ``max(steps)`` steps; accuracy at every ``T`` in ``steps``.

    ``net`` is a normalised network (:func:`normalise`): each ReLU becomes
    a :class:`SpikingLayer`; pooling, flattening, convolutions and the
    linear layer act on spikes unchanged (they are linear). The output
    layer does not spike: its input is summed over steps, and the class with
    the largest sum after :math:`T` steps is the decision at :math:`T`.
    ``analog`` input feeds the image itself every step (a constant current);
    ``poisson`` feeds Bernoulli spikes with probability equal to the pixel
    intensity (in [0, 1]). ``bf16`` runs the convolutions and the linear
    layer in bfloat16: the potentials stay float32 and the spikes (0 or 1)
    are exact, but weights, biases, the analog input image and every layer's
    input current are rounded to 8 significant bits, and the first layer gets
    the same rounded current every step, so its rounding does not average
    out (run_tier measures the effect against float32). The tensors are kept
    channels-last, which oneDNN runs fastest. Images go
    through in batches of ``batch``; ``bar`` (a tqdm bar counting images)
    advances every step.

    Returns ``accuracy`` ``{T: fraction}``, ``predictions`` ``{T: array}``;
    per spiking layer: ``spikes_per_image`` (over ``max(steps)`` steps),
    ``neurons``, ``rate_per_step`` (spikes per neuron per step) and
    ``spike_maps`` (spikes per image summed over channels, one value per
    position); ``input_spikes_per_image`` (Poisson input; 0 for analog);
    ``synaptic_ops_per_image`` (see :func:`synaptic_operations`) and
    ``wall_s``.
    """
    import time

    steps = sorted(set(int(t) for t in steps))
    if not steps or steps[0] < 1:
        raise ValueError(f"steps must be positive integers, got {steps!r}.")
    if input not in ("analog", "poisson"):
        raise ValueError(f"input must be 'analog' or 'poisson', got {input!r}.")
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"need at least one image and one label per image, got {len(images)} "
                         f"images and {len(labels)} labels.")
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}.")
    start = time.perf_counter()
    snn, spiking = _spiking_copy(net, v0)
    snn = snn.to(memory_format=torch.channels_last)
    labels = torch.as_tensor(np.asarray(labels))
    n = len(images)
    preds = {t: [] for t in steps}
    maps = [None] * len(spiking)
    input_map = torch.zeros(images.shape[-2:])
    for first in range(0, n, batch):
        x_all = images[first:first + batch].contiguous(memory_format=torch.channels_last)
        for layer in spiking:
            layer.reset()
        total = None
        for t in range(1, steps[-1] + 1):
            if input == "analog":
                x = x_all
            else:
                x = (torch.rand(x_all.shape, generator=generator) < x_all).to(x_all.dtype)
                input_map += x.sum(dim=(0, 1))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = snn(x)
            total = out.float() if total is None else total + out.float()
            if t in preds:
                preds[t].append(total.argmax(dim=1))
            if bar is not None:
                bar.update(len(x_all) / steps[-1])
        for j, layer in enumerate(spiking):
            maps[j] = layer.spike_map.clone() if maps[j] is None else maps[j] + layer.spike_map
    predictions = {t: torch.cat(p).numpy() for t, p in preds.items()}
    neurons = _activation_sizes(net, images[:1])
    spike_maps = [m / n for m in maps]
    per_image = [float(m.sum()) for m in spike_maps]
    ops = synaptic_operations(net, spike_maps, steps[-1],
                              input_map=input_map / n if input == "poisson" else None)
    return {"accuracy": {t: float(np.mean(p == labels.numpy())) for t, p in predictions.items()},
            "predictions": predictions,
            "spikes_per_image": per_image,
            "neurons": neurons,
            "rate_per_step": [s / (m * steps[-1]) for s, m in zip(per_image, neurons)],
            "spike_maps": [m.numpy() for m in spike_maps],
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
    steps = sorted(set(int(t) for t in steps))
    if not steps or steps[0] < 1:
        raise ValueError(f"steps must be positive integers, got {steps!r}.")
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


def _spiking_copy(net: nn.Sequential, v0: float) -> tuple[nn.Sequential, list[SpikingLayer]]:
    """A copy of a normalised network with every activation replaced by IF neurons."""
    import copy

    snn = copy.deepcopy(net).eval()
    spiking = []
    for k in relu_layers(snn):
        snn[k] = SpikingLayer(v0)
        spiking.append(snn[k])
    return snn, spiking


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
                        input_map: torch.Tensor | None = None) -> dict:
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
    ``32 x 32``.

    Returns ``accumulates``, ``multiply_accumulates``, ``bias_additions``
    (SNN, per image), ``cnn_multiply_accumulates`` and
    ``per_layer_accumulates``.
    """
    mods = list(net)
    acts = relu_layers(net)
    weighted = [k for k, m in enumerate(mods) if isinstance(m, (nn.Conv2d, nn.Linear))]
    shapes: dict[int, tuple[int, ...]] = {}
    macs: list[int] = []
    hooks = []
    for k in range(len(mods)):
        hooks.append(mods[k].register_forward_hook(
            lambda m, i, o, k=k: shapes.__setitem__(k, tuple(i[0].shape[1:]))))
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    for k in weighted:
        m = mods[k]
        out_units = (m.out_channels * _conv_out_positions(m, shapes[k]) if isinstance(m, nn.Conv2d)
                     else m.out_features)
        fan_in = m.weight[0].numel()
        macs.append(out_units * fan_in)
    if len(spike_maps) != len(acts):
        raise ValueError(f"need one spike map per spiking layer ({len(acts)}), got {len(spike_maps)}.")

    def checked(m, fan: torch.Tensor, what: str) -> torch.Tensor:
        m = torch.as_tensor(m)
        if tuple(m.shape) != tuple(fan.shape):
            raise ValueError(f"{what} has shape {tuple(m.shape)}, its layer's positions are "
                             f"{tuple(fan.shape)}.")
        return m

    per_layer = []
    for j, a in enumerate(acts):
        nxt = next(k for k in weighted if k > a)
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


def _conv_out_positions(m: nn.Conv2d, in_shape: tuple[int, ...]) -> int:
    h, w = in_shape[-2:]
    kh, kw = m.kernel_size
    ph, pw = m.padding
    sh, sw = m.stride
    return ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)


@dataclass(frozen=True)
class TrainParams:
    """How the CNN is trained: SGD with Nesterov momentum and a one-cycle learning rate.

    Attributes
    ----------
    epochs, batch_size : int
    max_lr : float
        Peak learning rate of the one-cycle schedule (reached after ``warmup``
        of the steps, then annealed by cosine to ``max_lr / 1e4``).
    weight_decay, momentum : float
    warmup : float
        Fraction of the steps spent rising to ``max_lr``.
    augment : bool
        Random crops and flips (:func:`augment`).
    label_smoothing : float
    bf16 : bool
        Forward and backward passes in bfloat16 under ``torch.autocast``
        (the weights stay float32). On CPUs with AMX or AVX-512 BF16 units
        this about doubles the speed; the trained network is evaluated and
        converted in float32.
    """

    epochs: int = 30
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup: float = 0.2
    augment: bool = True
    label_smoothing: float = 0.0
    bf16: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.bf16, bool):
            raise ValueError(f"TrainParams.bf16 must be True or False, got {self.bf16!r}.")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainParams.{name} must be a positive integer, got {value!r}.")
        for name in ("max_lr", "weight_decay", "momentum", "warmup", "label_smoothing"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"TrainParams.{name} must be a finite number >= 0, got {value!r}.")
        if not 0 < self.warmup < 1:
            raise ValueError(f"TrainParams.warmup must be in (0, 1), got {self.warmup!r}.")


def _data_key(images, labels) -> str:
    """A fingerprint of every training image and label (a checkpoint belongs to its data)."""
    import hashlib

    h = hashlib.sha1(np.ascontiguousarray(np.asarray(images)).tobytes())
    h.update(np.ascontiguousarray(np.asarray(labels)).tobytes())
    return h.hexdigest()


def images_to_tensor(images) -> torch.Tensor:
    """uint8 ``(N, 32, 32, 3)`` to float ``(N, 3, 32, 32)`` in [0, 1]."""
    x = torch.as_tensor(np.asarray(images))
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be (N, 32, 32, 3) RGB, got shape {tuple(x.shape)}.")
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def evaluate_cnn(model: nn.Module, images: torch.Tensor, labels, *, batch: int = 500) -> dict:
    """Accuracy and predictions of a CNN (eval mode) on float images ``(N, 3, 32, 32)``."""
    model.eval()
    preds = torch.cat([model(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])
    labels = torch.as_tensor(np.asarray(labels))
    return {"accuracy": float((preds == labels).float().mean()), "predictions": preds.numpy()}


def train_cnn(model: ConvNet, images, labels, p: TrainParams = TrainParams(), *, seed: int,
              checkpoint=None, progress: bool = True, eval_images=None, eval_labels=None,
              on_epoch=None, restart_stale: bool = False, init_key: str | None = None) -> dict:
    """Train ``model`` on uint8 ``images`` ``(N, 32, 32, 3)``; resumable from ``checkpoint``.

    The checkpoint (model, optimiser, schedule, generator and history) is
    written atomically after every epoch; a call with the same arguments
    after an interruption continues from the last finished epoch and ends
    with the same weights as an uninterrupted run. With ``eval_images``, the
    accuracy on them is recorded after every epoch (for the training curve;
    they should not be the test set used to report results). ``on_epoch(epoch,
    history)`` is called after each epoch's checkpoint is written. A
    checkpoint written by another run (other parameters, network, images or
    seed, or another ``init_key``: a fingerprint of the starting weights, for
    fine-tuning) raises ``ValueError``, or with ``restart_stale`` is set aside
    (as ``NAME.stale``) and training starts afresh.

    Returns the history: per epoch ``loss``, ``train_accuracy`` (on the
    augmented batches), ``eval_accuracy`` (or None), ``wall_s``; and
    ``total_wall_s``.
    """
    import os
    import time
    from pathlib import Path

    from tqdm.auto import tqdm

    x = images_to_tensor(images)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    x_eval = images_to_tensor(eval_images) if eval_images is not None else None
    steps_per_epoch = math.ceil(len(x) / p.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=p.max_lr, momentum=p.momentum, nesterov=True,
                          weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.max_lr, epochs=p.epochs,
                                                steps_per_epoch=steps_per_epoch,
                                                pct_start=p.warmup, final_div_factor=1e4)
    g = torch.Generator().manual_seed(seed)
    history = {"loss": [], "train_accuracy": [], "eval_accuracy": [], "wall_s": []}
    start_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    data_key = _data_key(images, labels)
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        stale = (state["params"] != p or state["n_images"] != len(x) or state["seed"] != seed
                 or state.get("data_key") != data_key or state.get("model_params") != model.params
                 or state.get("init_key") != init_key)
        if stale and not restart_stale:
            raise ValueError(f"{path} was written by another training run (other parameters, "
                             "network, images, seed or starting weights); remove it or choose "
                             "another checkpoint.")
        if stale:
            os.replace(path, path.with_name(path.name + ".stale"))
            print(f"{path} was written by another training run: set aside as "
                  f"{path.name}.stale; training afresh.")
    if path is not None and path.exists():
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        g.set_state(state["generator"])
        history, start_epoch = state["history"], state["epoch"]
    loss_fn = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
    for epoch in range(start_epoch, p.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), generator=g)
        total, correct, seen = 0.0, 0, 0
        bar = tqdm(range(0, len(x), p.batch_size), disable=not progress, unit="batch",
                   desc=f"tier 3, CNN epoch {epoch + 1}/{p.epochs}", leave=False)
        for first in bar:
            idx = order[first:first + p.batch_size]
            xb = augment(x[idx], g) if p.augment else x[idx]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=p.bf16):
                out = model(xb)
                loss = loss_fn(out.float(), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
            seen += len(idx)
        history["loss"].append(total / seen)
        history["train_accuracy"].append(correct / seen)
        history["eval_accuracy"].append(
            evaluate_cnn(model, x_eval, eval_labels)["accuracy"] if x_eval is not None else None)
        history["wall_s"].append(time.perf_counter() - t0)
        if progress:
            ev = history["eval_accuracy"][-1]
            print(f"epoch {epoch + 1}/{p.epochs}: loss {history['loss'][-1]:.3f}, train "
                  f"{history['train_accuracy'][-1]:.3f}" + (f", eval {ev:.3f}" if ev is not None else "")
                  + f" ({history['wall_s'][-1]:.0f} s)")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "generator": g.get_state(),
                        "history": history, "epoch": epoch + 1, "params": p,
                        "n_images": len(x), "seed": seed, "data_key": data_key,
                        "model_params": model.params, "init_key": init_key}, tmp)
            os.replace(tmp, path)
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    model.eval()
    history["total_wall_s"] = float(sum(history["wall_s"]))
    return history


STEPS_ANALYSED = tuple(2 ** k for k in range(9))
"""Numbers of steps at which the converted network's accuracy is read (1 ... 256)."""
PERCENTILES = (99.9, 99.99, 100.0)
"""Normalisation percentiles compared; the tier uses ``PERCENTILE``."""
PERCENTILE = 99.99
SNN_PART_IMAGES = 500
"""Images per checkpointed part of a simulation (a killed run resumes at a part)."""
SIM_VERSION = 2
"""Part of every simulation checkpoint's key: raised when :func:`simulate` changes."""


def bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX-512 BF16 or AMX, via oneDNN).

    Elsewhere bfloat16 is emulated and slower than float32, so the tier uses float32.
    """
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def params_for_profile(profile) -> tuple[ConvNetParams, TrainParams]:
    """The CNN and its training at a profile's size (``tier3_width``, ``tier3_epochs``).

    Training uses bfloat16 autocast where the CPU supports it (:func:`bf16_supported`).
    """
    w = profile.tier3_width
    return (ConvNetParams(widths=(w, w, 2 * w, 2 * w, 4 * w, 4 * w)),
            TrainParams(epochs=profile.tier3_epochs, bf16=bf16_supported()))


def _images_key(images: torch.Tensor, labels) -> str:
    import hashlib

    h = hashlib.sha1(images.detach().contiguous().numpy().tobytes())
    h.update(np.ascontiguousarray(np.asarray(labels)).tobytes())
    return h.hexdigest()[:16]


def _net_key(net: nn.Sequential, *extra) -> str:
    import hashlib

    h = hashlib.sha1(repr(extra).encode())
    for t in net.state_dict().values():
        h.update(t.detach().numpy().tobytes())
    return h.hexdigest()[:16]


def simulate_parts(net: nn.Sequential, images: torch.Tensor, labels, *, steps: Sequence[int],
                   folder, input: Literal["analog", "poisson"] = "analog", seed: int = 0,
                   bf16: bool = False, v0: float = 0.0, part_images: int = SNN_PART_IMAGES,
                   progress: bool = True, desc: str = "tier 3, SNN") -> dict:
    """:func:`simulate` in parts of ``part_images`` images, each saved in ``folder``; resumable.

    A part is recomputed when its network's weights, its images or labels,
    the settings, the seed or ``SIM_VERSION`` differ from the saved one
    (Poisson parts draw from a generator seeded with ``seed`` and the part's
    first image, so an interrupted run gives the same numbers). Returns what
    :func:`simulate` returns for all the images, with ``wall_s`` summed over
    the parts and ``images_per_s`` (images simulated for ``max(steps)`` steps
    per second).
    """
    import os
    from pathlib import Path

    from tqdm.auto import tqdm

    folder = Path(folder)
    steps = sorted(set(int(t) for t in steps))
    labels = np.asarray(labels)
    n = len(images)
    if n == 0 or n != len(labels):
        raise ValueError(f"need at least one image and one label per image, got {n} images "
                         f"and {len(labels)} labels.")
    if not isinstance(part_images, int) or part_images < 1:
        raise ValueError(f"part_images must be a positive integer, got {part_images!r}.")
    folder.mkdir(parents=True, exist_ok=True)
    # v0 joins the key only when it is not 0, so that parts saved before it was
    # an option (all with v0 = 0) keep their keys
    key = _net_key(net, SIM_VERSION, steps, input, seed, bf16, *([float(v0)] if v0 else []))
    preds = {t: np.zeros(n, dtype=np.int64) for t in steps}
    maps, input_maps, walls = None, [], []
    bar = tqdm(total=n, disable=not progress, unit="img", desc=desc,
               bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]")
    for first in range(0, n, part_images):
        last = min(n, first + part_images)
        path = folder / f"part_{first:06d}_{last:06d}.npz"
        x = images[first:last]
        part_key = key + _images_key(x, labels[first:last])
        saved = dict(np.load(path, allow_pickle=False)) if path.exists() else None
        if saved is None or str(saved["key"]) != part_key:
            g = torch.Generator().manual_seed(int(seed) * 1_000_003 + first)
            r = simulate(net, x, labels[first:last], steps=steps, input=input, generator=g,
                         bf16=bf16, v0=v0, bar=bar)
            saved = {"key": np.array(part_key), "wall_s": np.array(r["wall_s"]),
                     "predictions": np.stack([r["predictions"][t] for t in steps]),
                     "input_map": r["input_map"],
                     **{f"map_{j}": m for j, m in enumerate(r["spike_maps"])}}
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **saved)
            os.replace(tmp, path)
        else:
            bar.update(last - first)
        for i, t in enumerate(steps):
            preds[t][first:last] = saved["predictions"][i]
        part_maps = [saved[f"map_{j}"] * (last - first)
                     for j in range(sum(k.startswith("map_") for k in saved))]
        maps = part_maps if maps is None else [a + b for a, b in zip(maps, part_maps)]
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
            "input_spikes_per_image": input_per_image,
            "input_map": np.asarray(sum(input_maps) / n),
            "synaptic_ops_per_image": synaptic_operations(net, spike_maps, steps[-1],
                                                          input_map=input_map),
            "steps": steps[-1], "wall_s": wall, "images_per_s": n / wall if wall else None}


def smallest_steps_within(accuracy: dict, reference: float, points: float):
    """The smallest T whose accuracy is within ``points`` percentage points of ``reference`` (or None)."""
    ok = [t for t, a in sorted(accuracy.items()) if a >= reference - points / 100.0 - 1e-12]
    return ok[0] if ok else None


def run_tier(profile, *, out_dir, seed: int = 2026, progress: bool = True):
    """Tier 3 at a profile's size: train the CNN, convert it, simulate it; resumable.

    1. The CNN (``profile.tier3_width``) trains for ``tier3_epochs`` on
       ``tier3_train_images`` class-balanced images (all 50,000 for ``full``),
       checkpointed every epoch in ``out_dir/cnn.pt``.
    2. Batch norm is folded; the CNN's test accuracy and speed are measured.
    3. The network is normalised on 1,000 training images at each of
       ``PERCENTILES`` and simulated with analog input for ``tier3_steps``
       steps: the tier (``PERCENTILE``) on ``tier3_snn_images`` test images,
       the others, and Poisson input, on the first ``tier3_variant_images``
       of them. Simulations are checkpointed in parts.
    4. Step 5 of the recipe: the CNN is fine-tuned with clip-floor-shift activations
       (:func:`qcfs_from_relu`, ``tier3_qcfs_epochs``, checkpointed in
       ``out_dir/cnn_qcfs.pt``), converted with its trained thresholds and
       simulated with ``v0 = 0.5`` for ``tier3_qcfs_steps`` on the tier's
       test images (and, when that runs in bfloat16, in float32 on the
       variant images).

    Writes ``out_dir/tier_record.json``; returns ``(record, details)``.
    """
    import json
    import platform
    import time
    from datetime import datetime, timezone
    from pathlib import Path

    from .. import data, metrics
    from . import git_commit

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    t_start = time.perf_counter()
    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    rng = np.random.default_rng(seed)
    itr = (np.arange(len(train)) if profile.tier3_train_images is None
           else rng.permutation(data.balanced_subset(train.labels,
                                                     profile.tier3_train_images // 10, seed=seed)))
    # balanced_subset sorts by class: shuffled, so that the first images (simulated
    # by the variants) hold every class; all 10,000 keep CIFAR's own order
    ite = (np.arange(len(test)) if profile.n_test_per_class is None
           else rng.permutation(data.balanced_subset(test.labels, profile.n_test_per_class,
                                                     seed=seed)))
    y_train, y_test = train.labels[itr], test.labels[ite]
    cp, tp = params_for_profile(profile)
    # bfloat16 simulation where the CPU has it (about 1.8 times faster here,
    # benchmarks/conversion_speed.py); every run then also simulates its variant
    # images in float32, so that what the rounding costs is measured, not assumed
    snn_bf16 = tp.bf16
    torch.manual_seed(seed)
    model = ConvNet(cp)
    history = train_cnn(model, train.images[itr], y_train, tp, seed=seed,
                        checkpoint=out / "cnn.pt", progress=progress, restart_stale=True)
    folded = fold_batchnorm(model)
    x_test = images_to_tensor(test.images[ite])
    evaluate_cnn(folded, x_test[:500], y_test[:500])  # warm-up: oneDNN sets up on first use
    start = time.perf_counter()
    cnn = evaluate_cnn(folded, x_test, y_test)
    cnn_wall = time.perf_counter() - start
    with torch.autocast("cpu", dtype=torch.bfloat16):
        evaluate_cnn(folded, x_test[:500], y_test[:500])
        start = time.perf_counter()
        cnn_bf16 = evaluate_cnn(folded, x_test, y_test)
    cnn_bf16_wall = time.perf_counter() - start

    calibration = images_to_tensor(train.images[itr[:1000]])
    nets, lambdas = {}, {}
    for pct in PERCENTILES:
        nets[pct], lambdas[pct] = normalise(folded, calibration, percentile=pct)
    n_snn = len(ite) if profile.tier3_snn_images is None else min(len(ite), profile.tier3_snn_images)
    n_var = min(n_snn, profile.tier3_variant_images)
    steps = [t for t in STEPS_ANALYSED if t < profile.tier3_steps] + [profile.tier3_steps]
    sims = {"analog, p99.99": simulate_parts(
        nets[PERCENTILE], x_test[:n_snn], y_test[:n_snn], steps=steps, seed=seed,
        folder=out / "snn_analog_p99.99", bf16=snn_bf16, progress=progress,
        desc="tier 3, SNN (analog input)")}
    variants = {}
    for pct in PERCENTILES:
        if pct != PERCENTILE:
            variants[f"analog, p{pct:g}"] = simulate_parts(
                nets[pct], x_test[:n_var], y_test[:n_var], steps=steps, seed=seed,
                folder=out / f"snn_analog_p{pct:g}", bf16=snn_bf16, progress=progress,
                desc=f"tier 3, SNN (normalised at p{pct:g})")
    variants["poisson, p99.99"] = simulate_parts(
        nets[PERCENTILE], x_test[:n_var], y_test[:n_var], steps=steps, input="poisson",
        seed=seed, folder=out / "snn_poisson_p99.99", bf16=snn_bf16, progress=progress,
        desc="tier 3, SNN (Poisson input)")
    if snn_bf16:
        variants["analog, p99.99, float32"] = simulate_parts(
            nets[PERCENTILE], x_test[:n_var], y_test[:n_var], steps=steps, seed=seed,
            folder=out / "snn_analog_p99.99_float32", bf16=False, progress=progress,
            desc="tier 3, SNN (float32 check)")
    # 5. quantisation-aware fine-tuning from the trained CNN, then the same conversion
    # with the trained thresholds as lambda and neurons starting half-way (v0 = 0.5)
    # (its own seed, so that its shuffles and crops do not repeat the CNN's first epochs)
    q_model = qcfs_from_relu(model, calibration, seed=seed)
    q_tp = replace(tp, epochs=profile.tier3_qcfs_epochs, max_lr=QCFS_MAX_LR)
    q_history = train_cnn(q_model, train.images[itr], y_train, q_tp, seed=seed + 1,
                          checkpoint=out / "cnn_qcfs.pt", progress=progress, restart_stale=True,
                          init_key=_net_key(q_model, QCFS_LEVELS))
    q_folded = fold_batchnorm(q_model)
    q_cnn = evaluate_cnn(q_folded, x_test, y_test)
    q_net, q_lambdas = normalise(q_folded, calibration)
    q_steps = ([t for t in STEPS_ANALYSED if t < profile.tier3_qcfs_steps]
               + [profile.tier3_qcfs_steps])
    q_sim = simulate_parts(q_net, x_test[:n_snn], y_test[:n_snn], steps=q_steps, seed=seed,
                           v0=QCFS_V0, folder=out / "snn_qcfs", bf16=snn_bf16, progress=progress,
                           desc="tier 3, SNN (fine-tuned QCFS)")
    q_check = None
    if snn_bf16:  # the staircase's edges are what QCFS relies on: measure what bfloat16 moves
        q_check = simulate_parts(q_net, x_test[:n_var], y_test[:n_var], steps=q_steps, seed=seed,
                                 v0=QCFS_V0, folder=out / "snn_qcfs_float32", bf16=False,
                                 progress=progress, desc="tier 3, SNN (QCFS, float32 check)")
    main = sims["analog, p99.99"]
    cnn_on_snn = float(np.mean(cnn["predictions"][:n_snn] == y_test[:n_snn]))
    q_cnn_on_snn = float(np.mean(q_cnn["predictions"][:n_snn] == y_test[:n_snn]))
    cnn_on_var = float(np.mean(cnn["predictions"][:n_var] == y_test[:n_var]))
    t_max = steps[-1]
    ops = main["synaptic_ops_per_image"]
    layer_names = [f"conv{k + 1}" for k in range(len(cp.widths))]

    def confusion(y, predictions) -> dict:
        summary = metrics.classification_summary(y, predictions)
        return {k: summary[k] for k in ("per_class_accuracy", "confusion")}

    def firing(sim) -> dict:
        return {name: {"neurons": m, "spikes_per_image": s, "rate_per_step": r}
                for name, m, s, r in zip(layer_names, sim["neurons"], sim["spikes_per_image"],
                                         sim["rate_per_step"])}

    def operations(sim, what: str) -> dict:
        o = sim["synaptic_ops_per_image"]
        return {"what": what, "accumulates": o["accumulates"],
                "multiply_accumulates": o["multiply_accumulates"],
                "bias_additions": o["bias_additions"],
                "per_layer_accumulates": dict(zip(layer_names[1:] + ["output"],
                                                  o["per_layer_accumulates"]))}
    record = {
        "tier": "conversion",
        "profile": profile.name,
        "cnn": {
            "accuracy": cnn["accuracy"],
            "accuracy_on_snn_images": cnn_on_snn,
            "accuracy_on_variant_images": cnn_on_var,
            **confusion(y_test, cnn["predictions"]),
            "images_per_s": len(x_test) / cnn_wall,
            "bfloat16": {"accuracy": cnn_bf16["accuracy"],
                         "images_per_s": len(x_test) / cnn_bf16_wall},
            "multiply_accumulates_per_image": ops["cnn_multiply_accumulates"],
            "training": {"epochs": tp.epochs, "wall_s": history["total_wall_s"],
                         "loss": history["loss"], "train_accuracy": history["train_accuracy"],
                         "epoch_wall_s": history["wall_s"]},
        },
        "snn": {
            "accuracy_vs_steps": {str(t): a for t, a in main["accuracy"].items()},
            "accuracy": main["accuracy"][t_max],
            "steps": t_max,
            "loss_vs_cnn_points": {str(t): 100 * (cnn_on_snn - a) for t, a in main["accuracy"].items()},
            "smallest_steps_within_1_point": smallest_steps_within(main["accuracy"], cnn_on_snn, 1.0),
            "smallest_steps_within_0.1_point": smallest_steps_within(main["accuracy"], cnn_on_snn, 0.1),
            **confusion(y_test[:n_snn], main["predictions"][t_max]),
            "images_per_s": main["images_per_s"],
            "what_images_per_s": f"images simulated for {t_max} steps per second",
            "firing": firing(main),
            "operations_per_image": operations(
                main, f"over {t_max} steps: accumulates (a spike crossing a synapse), "
                      "multiply-accumulates (the first layer takes the image as a current) "
                      "and bias additions (one per neuron and step)"),
        },
        "variants": {
            "images": n_var,
            "cnn_accuracy": cnn_on_var,
            "accuracy_vs_steps": {
                name: {str(t): a for t, a in r.items()} for name, r in
                [("analog, p99.99", {t: float(np.mean(p[:n_var] == y_test[:n_var]))
                                     for t, p in main["predictions"].items()})]
                + [(k, v["accuracy"]) for k, v in variants.items()]},
            "accumulates_per_image": {k: v["synaptic_ops_per_image"]["accumulates"]
                                      for k, v in variants.items()},
        },
        "qcfs": {
            "what": (f"the CNN fine-tuned for {q_tp.epochs} epochs with clip-floor-shift "
                     f"activations of {QCFS_LEVELS} levels (thresholds starting at the "
                     f"{QCFS_INIT_PERCENTILE:g}th percentile of its activations), converted with "
                     f"the trained thresholds and simulated with v0 = {QCFS_V0}"),
            "levels": QCFS_LEVELS, "init_percentile": QCFS_INIT_PERCENTILE, "v0": QCFS_V0,
            "training": {"epochs": q_tp.epochs, "max_lr": q_tp.max_lr,
                         "wall_s": q_history["total_wall_s"], "loss": q_history["loss"],
                         "train_accuracy": q_history["train_accuracy"],
                         "epoch_wall_s": q_history["wall_s"]},
            "cnn_accuracy": q_cnn["accuracy"],
            "cnn_accuracy_on_snn_images": q_cnn_on_snn,
            "thresholds": q_lambdas,
            "accuracy_vs_steps": {str(t): a for t, a in q_sim["accuracy"].items()},
            "steps": q_steps[-1],
            "loss_vs_own_cnn_points": {str(t): 100 * (q_cnn_on_snn - a)
                                       for t, a in q_sim["accuracy"].items()},
            "loss_vs_relu_cnn_points": {str(t): 100 * (cnn_on_snn - a)
                                        for t, a in q_sim["accuracy"].items()},
            "smallest_steps_within_1_point": smallest_steps_within(q_sim["accuracy"],
                                                                   q_cnn_on_snn, 1.0),
            "smallest_steps_within_0.1_point": smallest_steps_within(q_sim["accuracy"],
                                                                     q_cnn_on_snn, 0.1),
            "smallest_steps_within_1_point_of_relu_cnn": smallest_steps_within(
                q_sim["accuracy"], cnn_on_snn, 1.0),
            **confusion(y_test[:n_snn], q_sim["predictions"][q_steps[-1]]),
            "images_per_s": q_sim["images_per_s"],
            "what_images_per_s": f"images simulated for {q_steps[-1]} steps per second",
            "float32_check": None if q_check is None else {
                "images": n_var,
                "bfloat16": {str(t): float(np.mean(p[:n_var] == y_test[:n_var]))
                             for t, p in q_sim["predictions"].items()},
                "float32": {str(t): a for t, a in q_check["accuracy"].items()}},
            "firing": firing(q_sim),
            "operations_per_image": operations(
                q_sim, f"over {q_steps[-1]} steps, counted as for the tier"),
        },
        "normalisation_lambdas": {f"p{k:g}": v for k, v in lambdas.items()},
        "parameters": {"cnn": asdict(cp), "training": asdict(tp), "percentile": PERCENTILE,
                       "calibration_images": len(calibration), "v0": 0.0,
                       "snn_bf16": snn_bf16},
        "seed": seed,
        "dataset": data.dataset_name(train.source),
        "train_images": len(itr),
        "test_images": len(ite),
        "snn_images": n_snn,
        "wall_s": {"cnn_training": history["total_wall_s"], "cnn_test": cnn_wall,
                   "snn": main["wall_s"], **{f"snn {k}": v["wall_s"] for k, v in variants.items()},
                   "qcfs_training": q_history["total_wall_s"], "snn qcfs": q_sim["wall_s"],
                   **({"snn qcfs float32": q_check["wall_s"]} if q_check is not None else {}),
                   "this_call": time.perf_counter() - t_start},
        "git_commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "gpu": False, "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads()},
    }
    (out / "tier_record.json").write_text(json.dumps(record, indent=2, default=str))
    details = {"model": model, "folded": folded, "nets": nets, "lambdas": lambdas,
               "simulation": main, "variants": variants, "cnn": cnn, "history": history,
               "test_images": x_test, "test_labels": y_test, "train_index": itr, "test_index": ite,
               "qcfs": {"model": q_model, "folded": q_folded, "net": q_net, "cnn": q_cnn,
                        "simulation": q_sim, "float32_check": q_check, "history": q_history}}
    return record, details
