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
   one run.

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
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ConvNet", "ConvNetParams", "QCFS", "SpikingLayer", "TrainParams", "augment",
           "evaluate_cnn", "fold_batchnorm", "if_rate", "images_to_tensor", "normalise",
           "relu_layers", "simulate", "train_cnn"]

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
              batch: int = 250) -> tuple[nn.Sequential, list[float]]:
    """Data-based weight normalisation (Rueckauer et al. 2017); returns the scaled copy and the :math:`\\lambda_l`.

    :math:`\\lambda_l` is the ``percentile`` of layer :math:`l`'s activations
    (after its ReLU) over ``images``; the layer's weights become
    :math:`W_l \\lambda_{l-1} / \\lambda_l` and its bias :math:`b_l / \\lambda_l`
    (:math:`\\lambda_0 = 1`), so its activations are at most about 1: one
    spike per step. The output layer is scaled by :math:`\\lambda_{L-1}` only.
    With QCFS activations, :math:`\\lambda_l` is the activation's trained
    threshold instead (Bu et al. 2022). ``percentile=100`` is max-norm
    (Diehl et al. 2015).
    """
    import copy

    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile!r}.")
    net = copy.deepcopy(net).eval()
    acts = relu_layers(net)
    samples: dict[int, list[torch.Tensor]] = {k: [] for k in acts}
    hooks = [net[k].register_forward_hook(lambda m, i, o, k=k: samples[k].append(
        o.flatten()[torch.randperm(o.numel())[:200_000]])) for k in acts]
    for i in range(0, len(images), batch):
        net(images[i:i + batch])
    for h in hooks:
        h.remove()
    lambdas = []
    for k in acts:
        if isinstance(net[k], QCFS):
            lambdas.append(float(net[k].threshold))
        else:
            values = torch.cat(samples[k])
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


class SpikingLayer(nn.Module):
    """IF neurons with threshold 1 and reset by subtraction, replacing an activation.

    Each step: :math:`v \\leftarrow v + z`, :math:`s = [v \\ge 1]`,
    :math:`v \\leftarrow v - s`. ``v0`` is the initial potential (0, or 0.5 as
    Bu et al. recommend).
    """

    def __init__(self, v0: float = 0.0) -> None:
        super().__init__()
        self.v0 = v0
        self.v: torch.Tensor | None = None
        self.spikes = 0.0

    def reset(self) -> None:
        self.v, self.spikes = None, 0.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.v is None:
            self.v = torch.full_like(z, self.v0)
        self.v = self.v + z
        s = (self.v >= 1.0).to(z.dtype)
        self.v = self.v - s
        self.spikes += float(s.sum())
        return s


@torch.no_grad()
def simulate(net: nn.Sequential, images: torch.Tensor, labels, *, steps: Sequence[int],
             input: Literal["analog", "poisson"] = "analog", v0: float = 0.0,
             generator: torch.Generator | None = None) -> dict:
    """Run the converted network for ``max(steps)`` steps; accuracy at every ``T`` in ``steps``.

    ``net`` is a normalised network (:func:`normalise`): each ReLU becomes
    a :class:`SpikingLayer`; pooling, flattening, convolutions and the
    linear layer act on spikes unchanged (they are linear). The output
    layer does not spike: its input is summed over steps, and the class with
    the largest sum after :math:`T` steps is the decision at :math:`T`.
    ``analog`` input feeds the image itself every step (a constant current);
    ``poisson`` feeds Bernoulli spikes with probability equal to the pixel
    intensity (in [0, 1]).

    Returns ``accuracy`` ``{T: fraction}``, ``predictions`` ``{T: array}``,
    ``spikes_per_image`` per spiking layer (over ``max(steps)`` steps) and
    ``neurons`` per spiking layer.
    """
    import copy

    steps = sorted(set(int(t) for t in steps))
    if not steps or steps[0] < 1:
        raise ValueError(f"steps must be positive integers, got {steps!r}.")
    snn = copy.deepcopy(net).eval()
    spiking = []
    for k in relu_layers(snn):
        snn[k] = SpikingLayer(v0)
        spiking.append(snn[k])
    labels = torch.as_tensor(np.asarray(labels))
    total = None
    preds = {}
    for t in range(1, steps[-1] + 1):
        x = images if input == "analog" else (
            torch.rand(images.shape, generator=generator) < images).to(images.dtype)
        out = snn(x)
        total = out if total is None else total + out
        if t in steps:
            preds[t] = total.argmax(dim=1)
    neurons = []
    probe = copy.deepcopy(net).eval()
    sizes = []
    hooks = [probe[k].register_forward_hook(lambda m, i, o: sizes.append(o[0].numel()))
             for k in relu_layers(probe)]
    probe(images[:1])
    for h in hooks:
        h.remove()
    neurons = sizes
    return {"accuracy": {t: float((p == labels).float().mean()) for t, p in preds.items()},
            "predictions": {t: p.numpy() for t, p in preds.items()},
            "spikes_per_image": [layer.spikes / len(images) for layer in spiking],
            "neurons": neurons}


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
    """

    epochs: int = 30
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    warmup: float = 0.2
    augment: bool = True
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
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
              on_epoch=None) -> dict:
    """Train ``model`` on uint8 ``images`` ``(N, 32, 32, 3)``; resumable from ``checkpoint``.

    The checkpoint (model, optimiser, schedule, generator and history) is
    written atomically after every epoch; a call with the same arguments
    after an interruption continues from the last finished epoch and ends
    with the same weights as an uninterrupted run. With ``eval_images``, the
    accuracy on them is recorded after every epoch (for the training curve;
    they should not be the test set used to report results). ``on_epoch(epoch,
    history)`` is called after each epoch's checkpoint is written.

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
    if path is not None and path.exists():
        state = torch.load(path, weights_only=False)
        if state["params"] != p or state["n_images"] != len(x) or state["seed"] != seed:
            raise ValueError(f"{path} was written by another training run (other parameters, "
                             "images or seed); remove it or choose another checkpoint.")
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
            out = model(xb)
            loss = loss_fn(out, y[idx])
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
                        "n_images": len(x), "seed": seed}, tmp)
            os.replace(tmp, path)
        if on_epoch is not None:
            on_epoch(epoch + 1, history)
    model.eval()
    history["total_wall_s"] = float(sum(history["wall_s"]))
    return history
