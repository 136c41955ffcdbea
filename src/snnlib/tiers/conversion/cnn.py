"""Tier 3, the network that is converted: a VGG-style CNN built to convert, and its training.

The CNN (:class:`ConvNet`) has only what has a spiking equivalent:
convolutions and a linear layer, batch norm (folded into the convolutions
before conversion, :func:`fold_batchnorm`), ReLU or the quantised
clip-floor-shift activation (:class:`QCFS`, Bu et al. 2022; GELU, airbench's activation,
for measuring what it would buy: such a network converts only through a QCFS copy), and average
pooling or max pooling of the activations (whose spiking copy,
:class:`.convert.SpikingMaxPool`, passes a spike whenever the largest running
count of its inputs grows, so that its count is the maximum of theirs). It trains with
SGD (or Muon for the convolutions' filters, :mod:`.muon`), one-cycle or airbench's learning
rates, crops and flips (:func:`train_cnn`), resumable from a checkpoint written after every
epoch.

:mod:`.convert` turns it into a spiking network; :mod:`.run` is the tier's
pipeline.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ... import _validate as check
from ... import runs
from ..._compile import CompiledOrEager
from .numerics import Numerics, activations_compiled, fingerprint, numerics_scope
from .muon import Muon

__all__ = ["ConvNet", "ConvNetParams", "LOOKAHEAD_EVERY", "LOOKAHEAD_START", "QCFS",
           "QCFS_INIT_PERCENTILE", "QCFS_LEVELS", "QCFS_MAX_LR", "TRAIN_VERSION", "TrainParams",
           "WHITENING_EPS", "WHITENING_PATCH_IMAGES", "augment", "bf16_supported",
           "distilled_targets", "evaluate_cnn", "fold_batchnorm", "images_to_tensor",
           "set_whitening", "train_cnn", "tta_logits"]

TRAIN_VERSION = 1
"""Part of every training checkpoint's key: raised when :func:`train_cnn` changes."""


ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU"}
"""The activations a :class:`ConvNet` can have where it is not quantised
(``ConvNetParams.activation``), by the name they are written with."""


def gelu_refusal(where: str, name: str) -> ValueError:
    """The error for a network with GELU activations where a spiking copy is asked for."""
    return ValueError(f"{where}: {name} has GELU activations, which IF neurons cannot follow "
                      f"(their rate is a ReLU of the current); convert its QCFS copy instead: "
                      f"qcfs_from_relu, fine-tuned with train_cnn")


@dataclass(frozen=True)
class ConvNetParams:
    """A VGG-style CNN that converts: 3 x 3 convolutions, batch norm, ReLU (or QCFS; GELU trains
    but does not convert), average or max pooling.

    Attributes
    ----------
    widths : tuple of int
        Output channels of each convolution; ``pool_after`` says after which
        (0-based) a 2 x 2 pool (``pool``) halves the image.
    pool_after : tuple of int
    quantisation_levels : int or None
        None: ``activation`` (ReLU by default). L: the clip-floor-shift activation with L
        levels (Bu et al. 2022), trained so that the SNN is accurate after few steps.
    whitening_px : int or None
        A first convolution that whitens the image's ``k x k`` patches
        (Jordan 2024, airbench), before the others: its ``2 x 3 k^2`` filters
        are the eigenvectors of the training patches' covariance divided by
        the square roots of their eigenvalues, and their negatives (an ON
        and an OFF copy of each), fixed; only its bias learns. No padding,
        so the image shrinks by ``k - 1``. The filters start at zero (not
        set); :func:`train_cnn` sets them from its first
        :data:`WHITENING_PATCH_IMAGES` training images (:func:`set_whitening`)
        when it finds them so. None: no such layer.
    global_pool : bool
        Average the last feature map (after its pooling, which drops the last
        row and column of an odd map) over its positions before the linear
        layer (one input per channel) instead of flattening it.
    identity_init : bool
        Each convolution's first ``c_in`` filters start as the identity
        (a Dirac kernel), the rest at random (airbench's "implicit residual").
    pool_first : bool
        The pool of a convolution in ``pool_after`` comes straight after it,
        before its batch norm and activation (airbench's order), instead of
        after its activation: the batch norm and the activation then work on a
        quarter of the positions. Both orders convert, since the pool is
        linear: after the activation it averages one layer's spikes on their
        way to the next layer's synapses; with ``pool_first`` it sits between a
        layer's synapses and its own neurons, each of which integrates the
        average of four positions' synaptic input.
    bn_scale : bool
        The batch norms learn a scale :math:`\\gamma` and a shift
        :math:`\\beta`; False: only the shift learns and :math:`\\gamma` stays 1
        (airbench's batch norms).
    logit_scale : float
        The logits are multiplied by it (airbench's 1/9: the softmax's
        temperature during training). :func:`fold_batchnorm` folds it into
        the linear layer, so the converted network computes the same logits.
    pool : {"avg", "max"}
        The 2 x 2 pools of ``pool_after``: averages, or maxima. A maximum
        converts exactly in sums over time: the spiking pool
        (:class:`snnlib.tiers.conversion.convert.SpikingMaxPool`) passes on how
        much the largest running sum of its four inputs grew, so that its
        output sums to the maximum of their sums. After the activation its
        inputs are spikes and so is its output (a spike whenever the largest
        running count grows); with ``pool_first`` they are the convolution's
        currents, and the neurons behind it integrate the maximum of the
        summed currents. A batch norm folds through a max pool only with a
        positive scale, so ``pool_first`` max pooling needs ``bn_scale=False``
        (:math:`\\gamma = 1`, airbench's batch norms). The global pool
        (``global_pool``) averages, unless ``global_max``.
    bn_momentum, bn_eps : float
        The batch norms' running averages: each batch's statistics enter them
        with weight ``bn_momentum`` (PyTorch's convention; airbench's 0.6 is
        0.4 here), and ``bn_eps`` is added to the variance (airbench: 1e-12).
    global_max : bool
        With ``global_pool`` and ``pool="max"``, the last map's maximum over its
        positions instead of its average (airbench's last max pool); it converts
        as a :class:`.convert.SpikingMaxPool` over the whole map.
    activation : {"relu", "gelu"}
        The activation where ``quantisation_levels`` is None: ``"relu"``, which converts
        (an IF neuron's rate is a ReLU of its input current), or ``"gelu"``,
        :math:`\\mathrm{GELU}(x) = x\\,\\Phi(x)` with :math:`\\Phi` the standard normal
        distribution function (airbench's activation), which does not: a GELU network
        reaches a spiking copy only through a QCFS copy fine-tuned from it
        (:func:`.convert.qcfs_from_relu`). Left out of cache keys at its default.
    """

    widths: tuple[int, ...] = (64, 64, 128, 128, 256, 256)
    pool_after: tuple[int, ...] = (1, 3, 5)
    quantisation_levels: int | None = None
    whitening_px: int | None = None
    global_pool: bool = False
    identity_init: bool = False
    pool_first: bool = False
    bn_scale: bool = True
    logit_scale: float = 1.0
    pool: str = "avg"
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    global_max: bool = False
    activation: str = field(default="relu", metadata=runs.KEY_OMITS_DEFAULT)

    def __post_init__(self) -> None:
        _int_sequence("ConvNetParams.widths", self.widths, low=1, nonempty=True)
        _int_sequence("ConvNetParams.pool_after", self.pool_after, low=0)
        if any(not 0 <= k < len(self.widths) for k in self.pool_after):
            raise ValueError(f"ConvNetParams.pool_after must index the convolutions "
                             f"(0..{len(self.widths) - 1}), got {self.pool_after!r}.")
        if len(set(self.pool_after)) != len(self.pool_after):
            raise ValueError(f"ConvNetParams.pool_after must not repeat a convolution (one pool "
                             f"after each at most), got {self.pool_after!r}.")
        if 2 ** len(self.pool_after) > 32:
            raise ValueError(f"ConvNetParams.pool_after: at most 5 poolings fit a 32 x 32 image, "
                             f"got {len(self.pool_after)} ({self.pool_after!r}).")
        q = self.quantisation_levels
        if q is not None and (isinstance(q, bool) or not isinstance(q, int) or q < 1):
            raise ValueError(f"ConvNetParams.quantisation_levels must be None or a positive "
                             f"integer, got {q!r}.")
        k = self.whitening_px
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 5):
            raise ValueError(f"ConvNetParams.whitening_px must be None or a patch side from 1 to "
                             f"5, got {k!r}.")
        for name in ("global_pool", "identity_init", "pool_first", "bn_scale", "global_max"):
            check.flag(f"ConvNetParams.{name}", getattr(self, name))
        check.finite_number("ConvNetParams.logit_scale", self.logit_scale, above=0)
        check.finite_number("ConvNetParams.bn_momentum", self.bn_momentum, above=0)
        if self.bn_momentum > 1:
            raise ValueError(f"ConvNetParams.bn_momentum must be in (0, 1], got "
                             f"{self.bn_momentum!r}.")
        check.finite_number("ConvNetParams.bn_eps", self.bn_eps, above=0)
        if self.pool not in ("avg", "max"):
            raise ValueError(f"ConvNetParams.pool must be 'avg' or 'max', got {self.pool!r}.")
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"ConvNetParams.activation must be one of "
                             f"{', '.join(map(repr, ACTIVATIONS))}, got {self.activation!r}.")
        if q is not None and self.activation != "relu":
            raise ValueError(f"ConvNetParams: quantisation_levels={q!r} replaces the activation "
                             f"with clip-floor-shift steps, so activation must be 'relu', got "
                             f"{self.activation!r} (qcfs_from_relu makes the QCFS copy of a "
                             f"GELU network).")
        if self.global_max and not (self.global_pool and self.pool == "max"):
            raise ValueError("ConvNetParams.global_max needs global_pool=True and pool='max' (a "
                             "maximum of averaged spikes would not be a spike train).")
        if self.pool == "max" and self.pool_first and self.bn_scale:
            raise ValueError("ConvNetParams: pool='max' with pool_first=True needs "
                             "bn_scale=False: a batch norm folds through a max pool only with a "
                             "positive scale, which a learned one need not keep.")
        if self.final_side() < 1:
            raise ValueError(f"ConvNetParams.pool_after: {len(self.pool_after)} poolings leave no "
                             f"position of the {self.input_side()} x {self.input_side()} map "
                             f"(whitening_px={self.whitening_px!r}); pool less.")

    @property
    def whitening_width(self) -> int:
        """Channels of the whitening layer (0 without one): ``2 x 3 x whitening_px**2``."""
        return 0 if self.whitening_px is None else 2 * 3 * self.whitening_px ** 2

    def input_side(self, image_px: int = 32) -> int:
        """Side of the map the 3 x 3 convolutions start from (``image_px``, less the
        whitening's shrink)."""
        return image_px if self.whitening_px is None else image_px + 1 - self.whitening_px

    def final_side(self, image_px: int = 32) -> int:
        """Side of the last convolution's map after its pooling, for images of ``image_px``."""
        side = self.input_side(image_px)
        for _ in self.pool_after:
            side //= 2
        return side

    def n_weights(self) -> int:
        """Numbers of the CNN (convolutions, batch norms, the linear layer; the whitening's
        fixed filters included)."""
        c_in, total = 3, 0
        if self.whitening_px is not None:
            total += (3 * self.whitening_px ** 2 + 1) * self.whitening_width
            c_in = self.whitening_width
        for width in self.widths:
            total += c_in * width * 9 + 2 * width + (self.quantisation_levels is not None)
            c_in = width
        side = 1 if self.global_pool else self.final_side()
        return total + c_in * side * side * 10 + 10

    def activations_per_image(self) -> int:
        """Activations of one image through the convolutions (what a batch keeps for backprop)."""
        side, total = self.input_side(), self.whitening_width * self.input_side() ** 2
        for k, width in enumerate(self.widths):
            total += width * side * side
            if k in self.pool_after:
                side //= 2
        return total


def _int_sequence(name: str, value, *, low: int, nonempty: bool = False) -> tuple:
    """A tuple or list of integers >= ``low`` (not bools), named ``name`` in the error."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of integers, got {type(value).__name__} "
                        f"{value!r}.")
    if nonempty and not value:
        raise ValueError(f"{name} must not be empty, got {value!r}.")
    if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in value):
        want = "positive integers" if low == 1 else f"integers >= {low}"
        raise ValueError(f"{name} must be {want}, got {value!r}.")
    return tuple(value)


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
        check.positive_int("levels", levels, where="QCFS")
        check.finite_number("threshold", threshold, above=0, where="QCFS")
        super().__init__()
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(float(threshold)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if activations_compiled() and torch.is_grad_enabled():
            out = _compiled_qcfs(x, self.threshold, self.levels)
            if out is not None:
                return out
        return _qcfs(x, self.threshold, self.levels)


def _qcfs(x: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor:
    """:class:`QCFS`'s activation, :math:`\\frac{\\lambda}{L}\\, \\mathrm{clip}(\\lfloor x L /
    \\lambda + 1/2 \\rfloor, 0, L)`, with the straight-through gradient of the floor (a pure
    function of the input, the threshold ``lam`` and ``levels``, so that it can be compiled
    once for every layer)."""
    y = torch.clamp(x / lam, 0.0, 1.0) * levels + 0.5
    y = y + (torch.floor(y) - y).detach()  # straight-through floor: already in 0..L
    return y * lam / levels


_Compiled = CompiledOrEager(_qcfs, "QCFS's activation")
""":func:`_qcfs` through ``torch.compile``, made on first use (``_Compiled.fn``: None, not yet;
False, the compiler failed in this process, which then computes :func:`_qcfs` uncompiled)."""


def _compiled_qcfs(x: torch.Tensor, lam: torch.Tensor, levels: int) -> torch.Tensor | None:
    """:func:`_qcfs` compiled by ``torch.compile`` (dynamic shapes: one code for every layer and
    batch size), which fuses its elementwise operations into one pass forward and one backward;
    None where this process cannot compile (no C++ compiler, say), after one warning
    (:class:`snnlib._compile.CompiledOrEager`).

    Used by :class:`QCFS` while gradients are on, where :class:`.numerics.Numerics` asks
    for it (``compile_activations``, the ``full`` profile). The first call compiles (seconds).
    In float32 its outputs and input gradients are those of :func:`_qcfs`; the threshold's
    gradient is a sum taken in another order, and under bfloat16 autocast the compiled code
    computes in float32 where the uncompiled one rounds each step to bfloat16.
    """
    return _Compiled(x, lam, levels)


QCFS_LEVELS = 32
"""Quantisation levels ``L`` of the clip-floor-shift network (Bu et al. use 4 on CIFAR-10).
With one spike a step, 4 was chosen on the validation split as the levels whose signed
spiking copy is most accurate at T = 4: row I's network (F trained for 16 epochs, the full profile's then) fine-tuned for 2
epochs with L levels (``benchmarks/cnn_techniques.py --set epochs=16 ... --qcfs-epochs 2
--levels L --signed --steps 1 2 4 8 16``), simulated with signed neurons from v0 = 0.5 on the 5,000 validation
images, reached 87.02% (L = 2), 88.06% (L = 4) and 87.44% (L = 8) at T = 4, and 86.96%,
88.88% and 88.70% at T = 8 (the QCFS CNNs 86.42%, 88.56%, 88.72%; the ReLU CNN 89.36%).
Checked again on the full profile's network, row "M, 17 epochs" fine-tuned and calibrated as
the tier does (2 epochs at ``run.WHITENED_QCFS_MAX_LR``, biases calibrated for T = 4 in 2
rounds, signed neurons from v0 = 0.5): L = 3 / 4 / 5 / 8 reached 88.96 / 88.98 / 88.70 /
88.00% at T = 4 and 89.38 / 89.26 / 89.14 / 89.24% at T = 8 (the QCFS CNNs 87.82 / 88.92 /
89.24 / 89.20%; the ReLU CNN 90.08%): 4 was the best, level with 3 at T = 4. With one
spike a step, a copy at T = 4 resolves only four levels; with bursts of up to G spikes of
1/G of the threshold (``convert.QCFS_BURST``) it resolves 4G, and the 32-level copy with
bursts of up to 8 was the most accurate at T = 4 of it and the 16-, 8- and 4-level ones with
bursts of up to 4, 2 and 1 (by 0.16 points over the 16-level one, within the noise;
``convert.QCFS_BURST`` gives the figures): the tier fine-tunes with 32."""
QCFS_INIT_PERCENTILE = 99.0
"""Percentile of the ReLU network's activations that each QCFS threshold starts at. Chosen on
the validation split as the start whose signed spiking copy was most accurate at T = 4: row
"M, 17 epochs" fine-tuned as the full profile does (2 epochs at ``run.WHITENED_QCFS_MAX_LR``,
calibrated for T = 4 in 2 rounds; ``benchmarks/cnn_techniques.py ... --qcfs-init-percentile
P``) from the 99th / 99.5th / 99.9th percentile reached 88.98 / 88.54 / 87.98% at T = 4 and
89.26 / 89.48 / 88.50% at T = 8 (QCFS CNNs 88.92 / 88.90 / 88.34%)."""
QCFS_MAX_LR = 0.05
"""Peak learning rate of the quantisation-aware fine-tuning, on the schedule of the CNN's own
training (the full profile's design has its own, ``run.WHITENED_QCFS_MAX_LR``)."""
LOOKAHEAD_START = 0.3
"""Fraction of the training steps before :class:`TrainParams`'s ``lookahead`` starts averaging."""
LOOKAHEAD_EVERY = 5
"""Steps between two averagings of ``lookahead``."""
WHITENING_PATCH_IMAGES = 5000
"""Training images whose patches set the whitening layer (:func:`set_whitening`)."""
WHITENING_EPS = 5e-4
"""Added to each eigenvalue of the patch covariance, relative to their mean (airbench's 5e-4
on standardised images)."""


class ConvNet(nn.Module):
    """The CNN of tier 3 (see :class:`ConvNetParams`), on images in [0, 1].

    No input normalisation: the batch norm after the first convolution
    learns it, and the converted network then takes the intensities that
    Poisson encoding also uses.
    """

    def __init__(self, params: ConvNetParams = ConvNetParams()) -> None:
        check.instance("params", params, ConvNetParams, where="ConvNet")
        # weights, their gradients and the optimiser's momentum, float32
        check.fits_in_memory(f"a CNN of params.widths={params.widths}", 3 * 4 * params.n_weights(),
                             where="ConvNet")
        super().__init__()
        self.params = params

        def activation() -> nn.Module:
            if params.quantisation_levels is not None:
                return QCFS(params.quantisation_levels)
            return nn.GELU() if params.activation == "gelu" else nn.ReLU()

        layers: list[nn.Module] = []
        c_in = 3
        if params.whitening_px is not None:
            stem = nn.Conv2d(3, params.whitening_width, params.whitening_px, bias=True)
            stem.weight.requires_grad_(False)  # set from the training patches, then fixed
            with torch.no_grad():  # zero: not set yet (train_cnn sets it)
                stem.weight.zero_()
                stem.bias.zero_()
            layers += [stem, activation()]
            c_in = params.whitening_width
        for k, width in enumerate(params.widths):
            conv = nn.Conv2d(c_in, width, 3, padding=1, bias=False)
            if params.identity_init:
                with torch.no_grad():
                    nn.init.dirac_(conv.weight[:min(c_in, width)])
            norm = nn.BatchNorm2d(width, eps=params.bn_eps, momentum=params.bn_momentum)
            if not params.bn_scale:
                norm.weight.requires_grad_(False)  # gamma stays 1: only the shift learns
            pool = ([nn.AvgPool2d(2) if params.pool == "avg" else nn.MaxPool2d(2)]
                    if k in params.pool_after else [])
            if params.pool_first:
                layers += [conv, *pool, norm, activation()]
            else:
                layers += [conv, norm, activation(), *pool]
            c_in = width
        side = params.final_side()
        if params.global_pool and side > 1:
            layers.append(nn.MaxPool2d(side) if params.global_max else nn.AvgPool2d(side))
        side = 1 if params.global_pool else side
        layers += [nn.Flatten(), nn.Linear(c_in * side * side, 10)]
        self.features = nn.Sequential(*layers)

    @property
    def whitening(self) -> nn.Conv2d | None:
        """The whitening layer (``params.whitening_px``), or None."""
        return self.features[0] if self.params.whitening_px is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` float ``(N, 3, 32, 32)`` in [0, 1]; returns logits ``(N, 10)`` (times
        ``params.logit_scale``)."""
        out = self.features(x)
        return out if self.params.logit_scale == 1.0 else out * self.params.logit_scale


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crops (``pad`` pixels of reflection around, then the original size) and horizontal flips.

    ``x`` ``(N, C, H, W)``; every image gets its own offset and flip from ``generator``.
    """
    check.instance("x", x, torch.Tensor, where="augment")
    check.array("x", x, ndim=4, where="augment")
    check.instance("generator", generator, torch.Generator, where="augment")
    check.positive_int("pad", pad, low=0, where="augment")
    if pad >= min(x.shape[-2:]):
        raise ValueError(f"augment: pad must be smaller than the images' sides "
                         f"{tuple(x.shape[-2:])} (reflection), got {pad}")
    return _augment(x, generator, pad)


def _augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4,
             flip: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`augment` without the checks (the training loop calls it every batch); ``flip``:
    which images to flip (bool ``(N,)``) instead of a coin per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy, dx = _places(n, 2 * pad + 1, 2 * pad + 1, generator)
    out = _windows_at(padded, dy, dx, h, w)
    if flip is None:
        flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(3)
    return out


def _places(n: int, rows: int, cols: int, generator: torch.Generator):
    """``n`` random places (row offsets ``a``, column offsets ``b``), uniform over ``rows`` x
    ``cols`` (from ``generator``, rows first)."""
    return (torch.randint(0, rows, (n,), generator=generator),
            torch.randint(0, cols, (n,), generator=generator))


def _windows_at(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int,
                w: int) -> torch.Tensor:
    """The ``h`` x ``w`` window of each image of ``x`` ``(N, C, H, W)`` whose corner is at
    ``(dy[n], dx[n])``: :math:`y_{n,c,i,j} = x_{n,c,i + a_n,j + b_n}`."""
    n, c = x.shape[:2]
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return x[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def _crop_windows(x: torch.Tensor, generator: torch.Generator, side: int) -> torch.Tensor:
    """A ``side`` x ``side`` window of each image of ``x`` ``(N, C, H, W)``, each at its own
    random place (uniform over the ``(H - side + 1) (W - side + 1)`` places, from ``generator``):
    :math:`y_{n,c,i,j} = x_{n,c,i + a_n,j + b_n}`."""
    n, _, h, w = x.shape
    dy, dx = _places(n, h - side + 1, w - side + 1, generator)
    return _windows_at(x, dy, dx, side, side)


def _cutout(x: torch.Tensor, generator: torch.Generator, side: int) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` with a ``side`` x ``side`` square of each image, at its own random
    place inside it (from ``generator``), set to the batch's mean of each channel:
    :math:`y_{n,c,i,j} = \\bar x_c` for :math:`a_n \\le i < a_n + s`, :math:`b_n \\le j < b_n + s`,
    else :math:`x_{n,c,i,j}`."""
    n, _, h, w = x.shape
    dy, dx = _places(n, h - side + 1, w - side + 1, generator)
    i, j = torch.arange(h), torch.arange(w)
    rows = (i[None, :] >= dy[:, None]) & (i[None, :] < dy[:, None] + side)
    cols = (j[None, :] >= dx[:, None]) & (j[None, :] < dx[:, None] + side)
    square = (rows[:, :, None] & cols[:, None, :])[:, None]
    return torch.where(square, x.mean(dim=(0, 2, 3), keepdim=True), x)


class _GlobalPoolFor:
    """While in use, the model's global pool (a pool over the whole last map of a whole image)
    is the same kind of pool over the whole last map of a ``image_px`` x ``image_px`` window
    (:meth:`ConvNetParams.final_side`). The pool holds no weights, so nothing else changes;
    it is put back on leaving, after an interruption too."""

    def __init__(self, model: ConvNet, image_px: int) -> None:
        self.model, self.pool = model, model.features[-3]
        assert isinstance(self.pool, (nn.MaxPool2d, nn.AvgPool2d)), self.pool
        side = model.params.final_side(image_px)
        self.window_pool = (nn.MaxPool2d(side) if isinstance(self.pool, nn.MaxPool2d)
                            else nn.AvgPool2d(side))

    def __enter__(self) -> None:
        self.model.features[-3] = self.window_pool

    def __exit__(self, *exc) -> None:
        self.model.features[-3] = self.pool


class _Lookahead:
    """The running average of :class:`TrainParams`'s ``lookahead`` (floating-point entries of
    the model's state: weights and batch-norm statistics)."""

    def __init__(self, model: nn.Module, average: dict | None = None) -> None:
        self.average = average if average is not None else {
            k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module, rho: float) -> None:
        """:math:`\\bar w \\leftarrow \\rho \\bar w + (1 - \\rho) w`, then :math:`w \\leftarrow \\bar w`."""
        state = model.state_dict()
        for k, avg in self.average.items():
            avg.lerp_(state[k], 1.0 - rho)
            state[k].copy_(avg)


def fold_batchnorm(model: ConvNet) -> nn.Sequential:
    """The network with every batch norm folded into the convolution before it (eval mode).

    For :math:`y = \\gamma (W x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} + \\beta`:
    :math:`W' = W \\gamma / \\sqrt{\\sigma^2 + \\epsilon}`, :math:`b' = \\beta - \\mu \\gamma /
    \\sqrt{\\sigma^2 + \\epsilon}`. A batch norm that follows a convolution's
    average pool (``ConvNetParams.pool_first``) folds the same way into the
    convolution before the pool: the pool averages a constant to itself; one
    that follows a max pool too, where its scale is positive (a maximum commutes
    with a positive scale and a shift common to the window). The
    linear layer takes ``params.logit_scale``. Exact: the folded network computes
    the same function as the original in eval mode. A GELU network
    (``ConvNetParams.activation="gelu"``) is refused: no IF neuron follows a GELU.
    """
    check.instance("model", model, ConvNet, where="fold_batchnorm")
    if model.params.activation != "relu":
        raise gelu_refusal("fold_batchnorm", "model")
    _finite_module("model", model, "fold_batchnorm")
    for m in model.features:
        if isinstance(m, nn.BatchNorm2d) and bool((m.running_var + m.eps <= 0).any()):
            raise ValueError(f"fold_batchnorm: model has a batch norm with a negative running "
                             f"variance ({float(m.running_var.min()):g}): corrupt statistics")
    layers: list[nn.Module] = []
    mods = list(model.features)
    k = 0
    while k < len(mods):
        m = mods[k]
        pooled = (k + 2 < len(mods) and isinstance(mods[k + 1], (nn.AvgPool2d, nn.MaxPool2d))
                  and isinstance(mods[k + 2], nn.BatchNorm2d))
        if isinstance(m, nn.Conv2d) and (pooled or (k + 1 < len(mods)
                                                   and isinstance(mods[k + 1], nn.BatchNorm2d))):
            bn = mods[k + 2] if pooled else mods[k + 1]
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            if pooled and isinstance(mods[k + 1], nn.MaxPool2d) and bool((scale <= 0).any()):
                raise ValueError("fold_batchnorm: a batch norm after a max pool has a scale "
                                 f"<= 0 ({float(scale.min()):g}); it folds into the convolution "
                                 "before the pool only with positive scales")
            w = m.weight.detach() * scale.view(-1, 1, 1, 1)
            b = bn.bias.detach() - bn.running_mean * scale
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, padding=m.padding, bias=True)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            layers += [conv, mods[k + 1]] if pooled else [conv]
            k += 3 if pooled else 2
            continue
        if isinstance(m, nn.Linear) and model.params.logit_scale != 1.0:
            scaled = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
            scaled.weight.data.copy_(m.weight.detach() * model.params.logit_scale)
            if m.bias is not None:
                scaled.bias.data.copy_(m.bias.detach() * model.params.logit_scale)
            m = scaled
        layers.append(m)
        k += 1
    return nn.Sequential(*layers).eval()


def relu_twin(model: ConvNet) -> ConvNet:
    """The same network with ReLU activations: a :class:`ConvNet` of ``model``'s parameters with
    ``activation="relu"``, its weights, biases and batch-norm statistics copied, in ``model``'s
    mode. For a ReLU network, a copy that computes the same function; for a GELU network,
    :math:`\\max(0, x)` in place of each :math:`x\\,\\Phi(x)`, the network a spiking copy would
    follow if each GELU were taken for the ReLU it approaches for large :math:`|x|`. The twin is
    built on the CPU, whatever device ``model`` is on."""
    check.instance("model", model, ConvNet, where="relu_twin")
    if model.params.quantisation_levels is not None:
        raise ValueError("relu_twin: model has QCFS activations (quantisation_levels="
                         f"{model.params.quantisation_levels}); it converts as it is")
    twin = ConvNet(replace(model.params, activation="relu"))
    twin.load_state_dict(model.state_dict())
    return twin.train(model.training)


@torch.no_grad()
def set_whitening(model: ConvNet, images: torch.Tensor) -> torch.Tensor:
    """Set the whitening layer of ``model`` from float images ``(N, 3, 32, 32)``; returns the
    eigenvalues (descending).

    With :math:`C = V \\Lambda V^\\top` the covariance of the images' ``k x k`` patches
    (flattened, :math:`3k^2` values, centred on their mean :math:`m`), the filters are
    :math:`\\pm v_i / \\sqrt{\\lambda_i + \\epsilon}` (:data:`WHITENING_EPS` times the mean
    eigenvalue) and each bias :math:`-w \\cdot m`: the outputs for the patches are
    decorrelated, of unit variance and zero mean, and the ReLU after them splits each
    into an ON and an OFF channel.
    """
    where = "set_whitening"
    check.instance("model", model, ConvNet, where=where)
    if model.whitening is None:
        raise ValueError(f"{where}: the model has no whitening layer (ConvNetParams.whitening_px "
                         "is None)")
    _image_batch("images", images, where)
    k = model.params.whitening_px
    d, n, total, outer = 3 * k * k, 0, 0.0, 0.0
    for i in range(0, len(images), 500):  # sums in float64, 500 images at a time
        patches = images[i:i + 500].unfold(2, k, 1).unfold(3, k, 1)  # (n, 3, H', W', k, k)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, d).double()
        n, total, outer = n + len(patches), total + patches.sum(0), outer + patches.T @ patches
    mean = total / n
    cov = outer / n - torch.outer(mean, mean)
    values, vectors = torch.linalg.eigh(cov)  # ascending
    if not float(values[-1]) > 1e-12:
        raise ValueError(f"{where}: the images' {k} x {k} patches do not vary (every patch the "
                         "same): there is nothing to whiten; give training images")
    values, vectors = values.flip(0), vectors.flip(1)
    filters = vectors.T / torch.sqrt(values.clamp_min(0) + WHITENING_EPS * values.mean())[:, None]
    filters = torch.cat([filters, -filters])
    stem = model.whitening
    stem.weight.copy_(filters.reshape(stem.weight.shape).to(stem.weight))
    stem.bias.copy_((-(filters @ mean)).to(stem.bias))
    return values.float()


@dataclass(frozen=True)
class TrainParams:
    """How the CNN is trained: SGD with Nesterov momentum and a one-cycle learning rate.

    Attributes
    ----------
    epochs, batch_size : int
    max_lr : float
        Peak learning rate of the schedule (``schedule``; one-cycle: reached
        after ``warmup`` of the steps, then annealed by cosine to ``max_lr / 1e4``).
    weight_decay : float
    momentum : float
        Nesterov momentum. With ``cycle_momentum`` it is the middle of the
        range it cycles over.
    cycle_momentum : bool
        The one-cycle schedule moves the momentum against the learning rate,
        from ``momentum + 0.05`` down to ``momentum - 0.05`` while the learning
        rate rises, and back while it anneals (PyTorch's ``OneCycleLR``; with
        the default 0.9, its own 0.95 and 0.85). False: the momentum stays
        ``momentum`` throughout (airbench's).
    warmup : float
        Fraction of the steps spent rising to ``max_lr``.
    augment : bool
        Random crops and flips (:func:`augment`).
    label_smoothing : float
    translate_px : int
        The crops' reach: images are padded by reflection and cut back to
        32 x 32 at an offset of up to ``translate_px`` pixels each way
        (with ``augment`` only, as ``alternate_flips``).
    small_crop_px, small_crop_epochs : int or None, int
        In the first ``small_crop_epochs`` epochs every training image is cut
        to a ``small_crop_px`` x ``small_crop_px`` window at a random place
        (after ``augment``'s crops and flips), and the last epochs train on
        whole images, the size the network is tested on: progressive
        resizing (fast.ai's DAWNBench entries, 2018), by cropping rather than
        rescaling, so that objects keep their size in pixels. With windows of
        24 pixels an epoch of the full profile's network took 0.63 times as
        long as one of whole images on two CPU cores. Needs a network with a
        global pool (:attr:`ConvNetParams.global_pool`, over a last map larger
        than 1 x 1), which then pools the window's smaller map (it must keep
        at least one position), and ``augment``; None and 0: no windows.
    cutout_px : int
        Cutout (DeVries and Taylor 2017; airbench96, Jordan 2024): a square of
        ``cutout_px`` x ``cutout_px`` pixels at a random place inside each
        training image (after the other augmentations) is set to the batch's mean
        intensity of each channel; 0: none (with ``augment`` only).
    alternate_flips : bool
        Flip each image in every other epoch (a random half in the first,
        then every image flips relative to the epoch before; airbench's
        derandomised flips) instead of a fresh coin every time.
    bias_lr_scale : float
        The batch norms' biases learn ``bias_lr_scale`` times faster than the
        other weights (the weight decay they feel is not scaled); airbench uses 64.
    lookahead : bool
        Every :data:`LOOKAHEAD_EVERY` steps after the first
        :data:`LOOKAHEAD_START` of training, the weights and batch-norm
        statistics are replaced by a running average of themselves,
        :math:`\\bar w \\leftarrow \\rho \\bar w + (1 - \\rho) w`, :math:`w \\leftarrow \\bar w`,
        with :math:`\\rho = 0.95^{5} (t / T)^3` growing with the step :math:`t`
        (airbench's Lookahead schedule); each epoch ends with the weights set to
        the average (with ``schedule="airbench"``, as legacy/airbench94.py of
        KellerJordan/cifar10-airbench does, only the last).
    schedule : {"one_cycle", "airbench"}
        ``"one_cycle"``: PyTorch's one-cycle schedule (above). ``"airbench"``:
        airbench's, the learning rate rising linearly from 0.2 ``max_lr`` to
        ``max_lr`` over ``warmup`` of the steps and falling linearly to 0
        (airbench94.py's code ends at 0.07 ``max_lr``), the
        momentum fixed (so ``cycle_momentum=False``), and ``lookahead``'s
        averaging from the start (its first average is taken at step
        :data:`LOOKAHEAD_EVERY`) with the weights set to the average only at the
        end of training (not at the end of every epoch).
    distill : float
        Knowledge distillation (Hinton et al. 2015), for fine-tuning a copy of a
        trained network (the QCFS copy of :func:`.convert.qcfs_from_relu`): each
        image's target mixes its label with what the ``teacher`` given to
        :func:`train_cnn` (the trained network) makes of the same augmented image,

        .. math:: q = (1 - \\varepsilon)\\left[(1 - \\alpha)\\, e_y + \\alpha\\,
                  \\mathrm{softmax}(z^{\\mathrm{teacher}})\\right] + \\varepsilon / K,

        with :math:`\\alpha` = ``distill``, :math:`\\varepsilon` = ``label_smoothing``,
        :math:`K` classes and :math:`e_y` the one-hot label; the loss is the
        cross-entropy :math:`-\\sum_k q_k \\log \\mathrm{softmax}(z)_k` (temperature 1).
        It is meant to pass on the teacher's graded judgement, which a network
        with coarser activations may not reach from the labels alone in a few
        epochs. 0: the labels alone (no teacher); 1: the teacher alone. Each
        step then also runs the teacher forward (no gradients).
    bf16 : bool
        Forward and backward passes in bfloat16 under ``torch.autocast``
        (the weights stay float32). On CPUs with AMX or AVX-512 BF16 units
        this about doubles the speed; the trained network is evaluated and
        converted in float32. The ``full`` profile sets it where the device
        has such units; ``ci`` and ``book`` train in float32, reproducibly
        (:mod:`.numerics`), since the rounding differs between processors.
    optimizer : {"sgd", "muon"}
        ``"sgd"``: every weight learns by SGD with Nesterov momentum (above).
        ``"muon"``: the convolutions' filters (not the fixed whitening layer's) learn
        by :class:`.muon.Muon` (Jordan et al. 2024: Nesterov momentum
        ``muon_momentum``, each update orthogonalised, the filters kept at a fixed
        norm, no weight decay) at a peak learning rate ``muon_lr`` on the same
        schedule (``schedule``, ``warmup``; its momentum never cycles); the batch
        norms' scales (with ``ConvNetParams.bn_scale``) and biases, the whitening
        layer's bias, QCFS thresholds and the linear layer learn by SGD as with
        ``"sgd"``.
    muon_lr, muon_momentum : float
        Muon's peak learning rate (the length of each filter update's every
        direction, relative to filters of mean squared norm 1) and momentum, with
        ``optimizer="muon"``.
    """

    epochs: int = 30
    batch_size: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    cycle_momentum: bool = True
    warmup: float = 0.2
    augment: bool = True
    label_smoothing: float = 0.0
    translate_px: int = 4
    small_crop_px: int | None = None
    small_crop_epochs: int = 0
    cutout_px: int = 0
    alternate_flips: bool = False
    bias_lr_scale: float = 1.0
    lookahead: bool = False
    bf16: bool = False
    schedule: str = "one_cycle"
    distill: float = 0.0
    optimizer: str = "sgd"
    muon_lr: float = 0.17
    muon_momentum: float = 0.6

    def __post_init__(self) -> None:
        for name in ("augment", "bf16", "alternate_flips", "lookahead", "cycle_momentum"):
            check.flag(f"TrainParams.{name}", getattr(self, name))
        check.positive_int("TrainParams.translate_px", self.translate_px, low=0)
        if self.translate_px > 16:
            raise ValueError(f"TrainParams.translate_px must be at most 16 (half the image's "
                             f"side), got {self.translate_px!r}.")
        check.finite_number("TrainParams.bias_lr_scale", self.bias_lr_scale, above=0)
        for name in ("epochs", "batch_size"):
            check.positive_int(f"TrainParams.{name}", getattr(self, name))
        check.positive_int("TrainParams.small_crop_epochs", self.small_crop_epochs, low=0)
        if self.small_crop_px is None:
            if self.small_crop_epochs:
                raise ValueError(f"TrainParams.small_crop_epochs={self.small_crop_epochs} needs "
                                 "small_crop_px (the windows' side); or set it to 0.")
        else:
            check.positive_int("TrainParams.small_crop_px", self.small_crop_px)
            if self.small_crop_px >= 32:
                raise ValueError(f"TrainParams.small_crop_px must be smaller than the images' "
                                 f"32 pixels, got {self.small_crop_px!r}.")
            if self.epochs < 2:
                raise ValueError("TrainParams.small_crop_px needs epochs >= 2 (the first on "
                                 "windows, the last on whole images), got "
                                 f"epochs={self.epochs!r}.")
            if not 1 <= self.small_crop_epochs < self.epochs:
                raise ValueError(f"TrainParams.small_crop_epochs must be from 1 to epochs - 1 "
                                 f"= {self.epochs - 1} with small_crop_px (the last epochs train "
                                 f"on whole images), got {self.small_crop_epochs!r}.")
            if not self.augment:
                raise ValueError("TrainParams.small_crop_px crops the augmented images: it needs "
                                 "augment=True.")
        check.positive_int("TrainParams.cutout_px", self.cutout_px, low=0)
        side = 32 if self.small_crop_px is None else self.small_crop_px
        if self.cutout_px >= side:
            raise ValueError(f"TrainParams.cutout_px must be smaller than the training images' "
                             f"side ({side} pixels"
                             f"{'' if self.small_crop_px is None else ', small_crop_px'}), "
                             f"got {self.cutout_px!r}.")
        if self.cutout_px and not self.augment:
            raise ValueError("TrainParams.cutout_px is an augmentation: it needs augment=True.")
        check.finite_number("TrainParams.max_lr", self.max_lr, above=0)
        for name in ("weight_decay", "momentum", "warmup", "label_smoothing"):
            check.finite_number(f"TrainParams.{name}", getattr(self, name), at_least=0)
        if not 0 < self.momentum < 1:  # Nesterov momentum needs one
            raise ValueError(f"TrainParams.momentum must be in (0, 1), got {self.momentum!r}.")
        if self.cycle_momentum and not 0.05 < self.momentum < 0.95:
            raise ValueError(f"TrainParams.momentum must be in (0.05, 0.95) with cycle_momentum "
                             f"(it cycles from momentum + 0.05 to momentum - 0.05), got "
                             f"{self.momentum!r}; or set cycle_momentum=False.")
        if self.schedule not in ("one_cycle", "airbench"):
            raise ValueError(f"TrainParams.schedule must be 'one_cycle' or 'airbench', got "
                             f"{self.schedule!r}.")
        if self.schedule == "airbench" and self.cycle_momentum:
            raise ValueError("TrainParams.schedule='airbench' keeps the momentum fixed: set "
                             "cycle_momentum=False.")
        if not 0 < self.warmup < 1:
            raise ValueError(f"TrainParams.warmup must be in (0, 1), got {self.warmup!r}.")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"TrainParams.label_smoothing must be in [0, 1), got "
                             f"{self.label_smoothing!r}.")
        check.finite_number("TrainParams.distill", self.distill, at_least=0, at_most=1)
        if self.optimizer not in ("sgd", "muon"):
            raise ValueError(f"TrainParams.optimizer must be 'sgd' or 'muon', got "
                             f"{self.optimizer!r}.")
        check.finite_number("TrainParams.muon_lr", self.muon_lr, above=0)
        check.finite_number("TrainParams.muon_momentum", self.muon_momentum, at_least=0)
        if self.muon_momentum >= 1:
            raise ValueError(f"TrainParams.muon_momentum must be in [0, 1), got "
                             f"{self.muon_momentum!r}.")


def images_to_tensor(images) -> torch.Tensor:
    """uint8 ``(N, 32, 32, 3)`` (0-255) or floats already in [0, 1] to float ``(N, 3, 32, 32)`` in [0, 1].

    uint8 images are divided by 255; float images are taken as they are (floats
    above 1, 0-255 values stored as floats, are refused: convert them to uint8).
    """
    return _images_tensor(images, "images", "images_to_tensor")


def _images_tensor(images, name: str, where: str) -> torch.Tensor:
    """:func:`images_to_tensor`, its errors naming the argument ``name`` of ``where``."""
    x = images if torch.is_tensor(images) else torch.as_tensor(
        check.array(name, images, nonempty=False, finite=False, where=where))
    if x.ndim != 4 or tuple(x.shape[1:]) != (32, 32, 3):
        raise ValueError(f"{where}: {name} must be (N, 32, 32, 3) RGB images (channels last, as "
                         f"load_cifar10 gives them), got shape {tuple(x.shape)}.")
    x, is_uint8 = check.images(name, x, where=where)
    check.fits_in_memory(f"{name} as floats ({len(x)} images)", 4 * x.numel(), where=where)
    x = x.permute(0, 3, 1, 2).float()
    return x.div_(255.0) if is_uint8 else x


def _finite_module(name: str, model: nn.Module, where: str) -> None:
    """Every parameter and buffer of ``model`` finite (a NaN weight makes every output NaN)."""
    for key, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{where}: {name} has non-finite values in {key} (NaN or inf "
                             f"weights make every output NaN)")


def _image_batch(name: str, images, where: str) -> torch.Tensor:
    """Float images ``(N, 3, 32, 32)`` in [0, 1], finite, not empty (as :func:`images_to_tensor` gives)."""
    if not torch.is_tensor(images):
        raise TypeError(f"{where}: {name} must be a float tensor (N, 3, 32, 32) in [0, 1] "
                        f"(images_to_tensor makes one), got {type(images).__name__}")
    if images.dtype != torch.float32:
        raise TypeError(f"{where}: {name} must be float32 images in [0, 1] (images_to_tensor "
                        f"converts uint8 ones; .float() converts other floats), got dtype "
                        f"{images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, 32, 32):
        raise ValueError(f"{where}: {name} must be (N, 3, 32, 32) images, got shape "
                         f"{tuple(images.shape)}")
    return check.array(name, images, low=0.0, high=1.0, where=where)


@torch.no_grad()
def evaluate_cnn(model: nn.Module, images: torch.Tensor, labels, *, batch: int = 500,
                 tta: bool = False) -> dict:
    """Accuracy and predictions of a CNN (eval mode) on float images ``(N, 3, 32, 32)``.

    The images go to the model's device a batch at a time; predictions come back to the CPU.
    With ``tta`` (test-time augmentation, airbench's multi-crop evaluation) the logits are
    averaged over six views of each image (:func:`tta_logits`).
    """
    where = "evaluate_cnn"
    check.instance("model", model, nn.Module, where=where)
    if next(model.parameters(), None) is None:
        raise ValueError(f"{where}: model has no parameters (it must be a trained CNN)")
    _finite_module("model", model, where)
    _image_batch("images", images, where)
    _labels_for("labels", labels, len(images), where, n_classes=_n_classes(model))
    check.positive_int("batch", batch, where=where)
    check.flag("tta", tta, where=where)
    return _evaluate_cnn(model, images, labels, batch=batch, tta=tta)


def tta_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits averaged over six views of the images ``x``:
    :math:`\\tfrac12 m(x) + \\tfrac14 m(x_{\\nwarrow}) + \\tfrac14 m(x_{\\searrow})`, each
    :math:`m(\\cdot)` the mean of the view and its mirror image, :math:`x_{\\nwarrow}` and
    :math:`x_{\\searrow}` the image moved one pixel up-left and down-right (reflected at the
    edges)."""
    where = "tta_logits"
    check.instance("model", model, nn.Module, where=where)
    _image_batch("x", x, where)
    was_training = model.training
    model.eval()  # batch norms use their running statistics, and do not update them
    try:
        with torch.no_grad():
            return _tta_logits(model, x)
    finally:
        model.train(was_training)


def _tta_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """:func:`tta_logits` without the checks (:func:`_evaluate_cnn` calls it every batch)."""
    def mirrored(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(v) + model(v.flip(3)))

    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return (0.5 * mirrored(x) + 0.25 * mirrored(padded[..., :h, :w])
            + 0.25 * mirrored(padded[..., 2:, 2:]))


@torch.no_grad()
def _evaluate_cnn(model: nn.Module, images: torch.Tensor, labels, *, batch: int = 500,
                  tta: bool = False) -> dict:
    """:func:`evaluate_cnn` without the checks (for timed code that checked its inputs once)."""
    model.eval()
    device = next(model.parameters()).device
    forward = (lambda v: _tta_logits(model, v)) if tta else model
    preds = torch.cat([forward(images[i:i + batch].to(device)).argmax(1).cpu()
                       for i in range(0, len(images), batch)])
    labels = torch.as_tensor(np.asarray(labels))
    return {"accuracy": float((preds == labels).float().mean()), "predictions": preds.numpy()}


def train_cnn(model: ConvNet, images, labels, p: TrainParams = TrainParams(), *, seed: int,
              checkpoint=None, progress: bool = True, eval_images=None, eval_labels=None,
              on_epoch=None, restart_stale: bool = False, init_key: str | None = None,
              device: str = "cpu", numerics: Numerics | None = None,
              teacher: nn.Module | None = None) -> dict:
    """Train ``model`` on uint8 ``images`` ``(N, 32, 32, 3)``; resumable from ``checkpoint``.

    Each epoch takes the images in a new shuffled order, in batches of
    ``p.batch_size``; where the last batch would hold a single image, that
    image sits the epoch out (a batch norm learns from a batch's statistics,
    and one image on a 1 x 1 map has none).

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

    The checkpoint holds only tensors and plain values (the parameters as
    dicts) and is read with ``weights_only=True`` (:func:`snnlib.runs.load_torch`):
    a file that asks to build any other object is refused, not run.

    ``device``: where the model trains (``"cpu"`` or ``"cuda"``); the crops,
    flips and shuffles are drawn on the CPU, so they are the same on every
    device.

    ``teacher``: the trained network whose outputs ``p.distill`` mixes into the
    targets (:class:`TrainParams`): needed when ``p.distill > 0``, refused when
    ``p.distill`` is 0, when it is ``model`` itself and with ``p.small_crop_px``
    (its windows would not fit the teacher's pooling). It runs in eval mode,
    without gradients, on ``device`` and in the training's memory format, and
    is handed back in its own mode and the default format (after an
    interruption too); a checkpoint written with another teacher counts as
    another run's.

    ``numerics`` (:class:`.numerics.Numerics`): the arithmetic, applied for
    the call (:func:`.numerics.numerics_scope`); None: the process's own.
    With reproducible numerics (the ``ci`` and ``book`` profiles: float32,
    fixed threads, deterministic algorithms, capped CPU kernels), two calls
    with the same arguments give the same weights bit for bit, and a
    checkpoint made with other threads or kernels counts as another run's
    (:func:`.numerics.fingerprint`). With ``numerics.channels_last`` the model
    and its batches are in the channels-last memory format while it trains;
    the model is handed back in the default format (after an interruption
    too). The number of epochs is fixed by
    ``p.epochs``: no time budget, so every machine trains the same steps.

    Returns the history: per epoch ``loss``, ``train_accuracy`` (on the
    augmented batches), ``eval_accuracy`` (or None), ``wall_s``; and
    ``total_wall_s``.
    """
    import os
    import time
    from pathlib import Path

    from ...progress import tqdm

    where = "train_cnn"
    check.instance("model", model, ConvNet, where=where)
    check.instance("p", p, TrainParams, where=where)
    check.integer("seed", seed, where=where)
    check.instance("checkpoint", checkpoint, (str, os.PathLike), none=True, where=where)
    check.flag("progress", progress, where=where)
    check.flag("restart_stale", restart_stale, where=where)
    check.instance("init_key", init_key, str, none=True, where=where)
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"{where}: on_epoch must be None or a callable, got "
                        f"{type(on_epoch).__name__}")
    if (eval_images is None) != (eval_labels is None):
        raise ValueError(f"{where}: eval_images and eval_labels go together; got "
                         f"{'only eval_images' if eval_labels is None else 'only eval_labels'}")
    check.instance("device", device, str, where=where)
    check.instance("numerics", numerics, Numerics, none=True, where=where)
    check.instance("teacher", teacher, nn.Module, none=True, where=where)
    if (teacher is None) != (p.distill == 0):
        raise ValueError(f"{where}: p.distill={p.distill} " + (
            "mixes a teacher's outputs into the targets: give the trained network as teacher"
            if teacher is None else "uses no teacher: set p.distill > 0 to learn from it, or "
                                    "leave teacher out"))
    if teacher is not None:
        if teacher is model:
            raise ValueError(f"{where}: the teacher must be another network than the model it "
                             "teaches (a trained copy that stays fixed)")
        if p.small_crop_px is not None:
            raise ValueError(f"{where}: p.small_crop_px trains on windows that the teacher's "
                             "pooling was not made for; distil on whole images (small_crop_px="
                             "None)")
        _finite_module("teacher", teacher, where)
        if _n_classes(teacher) != _n_classes(model):
            raise ValueError(f"{where}: the teacher decides between {_n_classes(teacher)} "
                             f"classes and the model between {_n_classes(model)}")
    if numerics is not None and numerics.bf16 != p.bf16:
        raise ValueError(f"{where}: p.bf16={p.bf16} but numerics.bf16={numerics.bf16}: the "
                         "training's precision must be the numerics' (params_for_profile "
                         "gives both)")
    _finite_module("model", model, where)
    if p.small_crop_px is not None:
        if not model.params.global_pool or model.params.final_side() == 1:
            raise ValueError(f"{where}: p.small_crop_px needs a network whose last map is pooled "
                             "over its positions (ConvNetParams.global_pool=True, and a last map "
                             "larger than 1 x 1), so that it takes windows smaller than the "
                             "images")
        if model.params.final_side(p.small_crop_px) < 1:
            raise ValueError(f"{where}: windows of p.small_crop_px={p.small_crop_px} pixels leave "
                             f"no position of the network's last map (its "
                             f"{len(model.params.pool_after)} pools and whitening_px="
                             f"{model.params.whitening_px}); take larger windows")
    x = _images_tensor(images, "images", where)
    _labels_for("labels", labels, len(x), where)
    if len(x) < 2:
        raise ValueError(f"{where}: training needs at least 2 images (a batch norm learns from "
                         f"a batch's statistics), got {len(x)}")
    if p.batch_size < 2 and model.params.final_side() == 1:
        raise ValueError(f"{where}: batches of one image (p.batch_size=1) leave the batch norms "
                         "of the network's 1 x 1 maps without statistics; use batch_size >= 2")
    x_eval = _images_tensor(eval_images, "eval_images", where) if eval_images is not None else None
    if x_eval is not None:
        _labels_for("eval_labels", eval_labels, len(x_eval), where, of="eval_images")
    # a batch's activations, kept for the backward pass (with the gradients: about 3 times)
    check.fits_in_memory(f"training in batches of p.batch_size={p.batch_size}",
                         3 * 4 * min(p.batch_size, len(x)) * model.params.activations_per_image(),
                         where=where)
    with numerics_scope(numerics):
        numerics_key = fingerprint(numerics)
        # channels-last: the model and each batch in that memory format (else as they come)
        layout = ({"memory_format": torch.channels_last}
                  if numerics is not None and numerics.channels_last else {})
        model.to(device, **layout)
        # a teacher is its weights and its design (a GELU teacher and its ReLU twin share
        # their weights; pooling and logit scale are not weights either)
        teacher_key = (None if teacher is None else runs.cache_key(
            teacher, teacher.params if isinstance(teacher, ConvNet) else None,
            version=TRAIN_VERSION))
        teacher_was_training = teacher is not None and teacher.training
        n_classes = _n_classes(model)
        y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        # a last batch of one image is left out (its batch norms would have no statistics
        # on a 1 x 1 map): that epoch's last image in its shuffled order
        steps_per_epoch = len(x) // p.batch_size + (len(x) % p.batch_size > 1)
        # with Muon, the convolutions' filters learn by it, everything else by SGD
        filters = _muon_filters(model) if p.optimizer == "muon" else []
        filter_ids = {id(w) for w in filters}
        rest = [w for w in model.parameters() if id(w) not in filter_ids]
        if p.bias_lr_scale == 1.0:
            groups, max_lrs = [{"params": rest}], [p.max_lr]
        else:  # batch norms' biases faster, their weight decay per step unchanged
            bias_ids = {id(m.bias) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
            biases = [w for w in rest if id(w) in bias_ids]
            groups = [{"params": biases, "weight_decay": p.weight_decay / p.bias_lr_scale},
                      {"params": [w for w in rest if id(w) not in bias_ids]}]
            max_lrs = [p.max_lr * p.bias_lr_scale, p.max_lr]
        opt = torch.optim.SGD(groups, lr=p.max_lr, momentum=p.momentum, nesterov=True,
                              weight_decay=p.weight_decay)
        steps_kw = dict(schedule=p.schedule, warmup=p.warmup, epochs=p.epochs,
                        steps_per_epoch=steps_per_epoch)
        total_steps = p.epochs * steps_per_epoch
        sched = _lr_schedule(opt, max_lrs, cycle_momentum=p.cycle_momentum,
                             momentum=p.momentum, **steps_kw)
        muon = (Muon(filters, lr=p.muon_lr, momentum=p.muon_momentum)
                if filters else None)
        muon_sched = (_lr_schedule(muon, [p.muon_lr], cycle_momentum=False,
                                   momentum=p.muon_momentum, **steps_kw)
                      if muon is not None else None)
        g = torch.Generator().manual_seed(seed)
        base_flips = (torch.rand(len(x), generator=torch.Generator().manual_seed(seed + 1)) < 0.5
                      if p.alternate_flips else None)
        lookahead = None
        lookahead_start = 0.0 if p.schedule == "airbench" else LOOKAHEAD_START
        history = {"loss": [], "train_accuracy": [], "eval_accuracy": [], "wall_s": []}
        start_epoch = 0
        path = Path(checkpoint) if checkpoint is not None else None
        data_key = runs.cache_key(np.asarray(images), np.asarray(labels), version=TRAIN_VERSION)
        if path is not None and path.exists():
            state = runs.load_torch(path)
            stale = (_with_defaults(state.get("params"), TrainParams) != asdict(p)
                     or state.get("n_images") != len(x)
                     or state.get("seed") != seed or state.get("data_key") != data_key
                     or _with_defaults(state.get("model_params"), ConvNetParams)
                     != asdict(model.params)
                     or state.get("init_key") != init_key
                     or state.get("numerics") != numerics_key
                     or state.get("teacher_key") != teacher_key)
            if stale and not restart_stale:
                raise runs.CheckpointError(
                    f"{path} was written by another training run (other parameters, network, "
                    "images, seed, starting weights, arithmetic or teacher); remove it or choose "
                    "another checkpoint.")
            if stale:
                runs.set_aside(path, "written by another training run")
        if path is not None and path.exists():
            model.load_state_dict(state["model"])  # onto the model's device
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if muon is not None:
                muon.load_state_dict(state["muon_optimizer"])
                muon_sched.load_state_dict(state["muon_scheduler"])
            g.set_state(state["generator"])
            history, start_epoch = state["history"], state["epoch"]
            if state.get("lookahead") is not None:  # loaded on the CPU: to the model's device
                own = model.state_dict()
                lookahead = _Lookahead(model, {k: v.to(own[k].device)
                                               for k, v in state["lookahead"].items()})
        elif model.whitening is not None and not bool(model.whitening.weight.any()):
            set_whitening(model, x[:WHITENING_PATCH_IMAGES])
        loss_fn = nn.CrossEntropyLoss(label_smoothing=p.label_smoothing)
        try:
            if teacher is not None:
                teacher.to(device, **layout).eval()
            for epoch in range(start_epoch, p.epochs):
                t0 = time.perf_counter()
                model.train()
                order = torch.randperm(len(x), generator=g)
                total, correct, seen = 0.0, 0, 0
                bar = tqdm(range(0, steps_per_epoch * p.batch_size, p.batch_size),
                           disable=not progress, unit="batch",
                           desc=f"tier 3, CNN epoch {epoch + 1}/{p.epochs}", leave=False)
                flips = None if base_flips is None else base_flips ^ bool(epoch % 2)
                windows = p.small_crop_px if epoch < p.small_crop_epochs else None
                with _GlobalPoolFor(model, windows) if windows else contextlib.nullcontext():
                    for step, first in enumerate(bar, start=epoch * steps_per_epoch + 1):
                        idx = order[first:first + p.batch_size]
                        xb = (_augment(x[idx], g, p.translate_px,
                                       None if flips is None else flips[idx])
                              if p.augment else x[idx])
                        if windows:
                            xb = _crop_windows(xb, g, windows)
                        if p.cutout_px:
                            xb = _cutout(xb, g, p.cutout_px)
                        xb = xb.to(device, non_blocking=True, **layout)
                        yb = y[idx].to(device, non_blocking=True)
                        with runs.autocast(device, p.bf16):
                            out = model(xb)
                            if teacher is None:
                                loss = loss_fn(out.float(), yb)
                            else:
                                with torch.no_grad():
                                    taught = teacher(xb).float()
                                loss = loss_fn(out.float(), distilled_targets(
                                    yb, taught, p.distill, n_classes))
                        opt.zero_grad(set_to_none=True)
                        if muon is not None:
                            muon.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                        sched.step()
                        if muon is not None:
                            muon.step()
                            muon_sched.step()
                        if (p.lookahead and step >= lookahead_start * total_steps
                                and step % LOOKAHEAD_EVERY == 0):
                            if lookahead is None:
                                lookahead = _Lookahead(model)
                            else:
                                lookahead.update(model, 0.95 ** 5 * (step / total_steps) ** 3)
                        total += float(loss.detach()) * len(idx)
                        correct += int((out.argmax(1) == yb).sum())
                        seen += len(idx)
                # the epoch ends on the average (airbench's schedule: only the last one)
                if lookahead is not None and (p.schedule != "airbench" or epoch + 1 == p.epochs):
                    lookahead.update(model, 1.0)
                history["loss"].append(total / seen)
                history["train_accuracy"].append(correct / seen)
                history["eval_accuracy"].append(
                    evaluate_cnn(model, x_eval, eval_labels)["accuracy"]
                    if x_eval is not None else None)
                history["wall_s"].append(time.perf_counter() - t0)
                if progress:
                    ev = history["eval_accuracy"][-1]
                    print(f"epoch {epoch + 1}/{p.epochs}: loss {history['loss'][-1]:.3f}, train "
                          f"{history['train_accuracy'][-1]:.3f}"
                          + (f", eval {ev:.3f}" if ev is not None else "")
                          + f" ({history['wall_s'][-1]:.0f} s)")
                if path is not None:
                    runs.save_torch(path, {
                        "model": model.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "generator": g.get_state(),
                        "muon_optimizer": None if muon is None else muon.state_dict(),
                        "muon_scheduler": None if muon is None else muon_sched.state_dict(),
                        "history": history, "epoch": epoch + 1, "params": asdict(p),
                        "n_images": len(x), "seed": seed, "data_key": data_key,
                        "model_params": asdict(model.params), "init_key": init_key,
                        "numerics": numerics_key, "teacher_key": teacher_key,
                        "lookahead": None if lookahead is None else lookahead.average})
                if on_epoch is not None:
                    on_epoch(epoch + 1, history)
        finally:  # handed back in the default memory format, even after an interruption
            if layout:
                model.to(memory_format=torch.contiguous_format)
            if teacher is not None:
                teacher.train(teacher_was_training)
                if layout:
                    teacher.to(memory_format=torch.contiguous_format)
        model.eval()
        history["total_wall_s"] = float(sum(history["wall_s"]))
        return history


def distilled_targets(labels: torch.Tensor, teacher_logits: torch.Tensor, share: float,
                      n_classes: int) -> torch.Tensor:
    """Knowledge distillation's targets (:attr:`TrainParams.distill`), before label smoothing:

    .. math:: (1 - \\alpha)\\, e_y + \\alpha\\, \\mathrm{softmax}(z^{\\mathrm{teacher}}),

    ``share`` = :math:`\\alpha`, ``labels`` :math:`y` ``(N,)``, ``teacher_logits``
    :math:`z^{\\mathrm{teacher}}` ``(N, n_classes)``; each row sums to 1.
    """
    onehot = nn.functional.one_hot(labels, n_classes).to(teacher_logits.dtype)
    return (1.0 - share) * onehot + share * torch.softmax(teacher_logits, dim=1)


def _muon_filters(model: nn.Module) -> list:
    """The weights ``optimizer="muon"`` trains by Muon: every convolution's filters that learn
    (not the fixed whitening layer's)."""
    return [m.weight for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.weight.requires_grad]


def _lr_schedule(opt: torch.optim.Optimizer, max_lrs: list, *, schedule: str, warmup: float,
                 epochs: int, steps_per_epoch: int, cycle_momentum: bool, momentum: float):
    """The learning-rate schedule of :class:`TrainParams` (``schedule``) for ``opt``, one peak
    per parameter group (``max_lrs``)."""
    total_steps = epochs * steps_per_epoch
    if schedule == "airbench":  # linear from 0.2 max_lr up, then linearly down to 0
        rise = max(1, int(warmup * total_steps))
        for group, peak in zip(opt.param_groups, max_lrs):
            group["lr"] = group["initial_lr"] = peak
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: _airbench_lr_factor(k, rise, total_steps))
    # PyTorch divides by zero when the warm-up is exactly one step (warmup x steps = 1 in
    # floats); a warm-up a hair longer is the same schedule: step 0 at the starting rate,
    # then the anneal
    pct_start = warmup
    while pct_start * total_steps == 1:
        pct_start = math.nextafter(pct_start, 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=max_lrs if len(max_lrs) > 1 else max_lrs[0], epochs=epochs,
        steps_per_epoch=steps_per_epoch, pct_start=pct_start, final_div_factor=1e4,
        cycle_momentum=cycle_momentum,
        # rounded: 0.9 - 0.05 is 0.8500000000000001
        base_momentum=round(momentum - 0.05, 12), max_momentum=round(momentum + 0.05, 12))


def _airbench_lr_factor(step: int, rise: int, total: int) -> float:
    """airbench's learning rate at ``step`` as a fraction of the peak: 0.2 at step 0, rising
    linearly to 1 at step ``rise``, then falling linearly to 0 at step ``total``."""
    return float(np.interp(step, [0, rise, total], [0.2, 1.0, 0.0]))


def _with_defaults(saved, params_class) -> dict | None:
    """A checkpoint's parameters with the fields it predates at their defaults (what it was
    trained with), so that adding a field leaves earlier checkpoints valid."""
    if not isinstance(saved, dict):
        return None
    return {**asdict(params_class()), **saved}


def bf16_supported(device: str = "cpu") -> bool:
    """Whether ``device`` runs bfloat16 convolutions natively.

    On the CPU: AVX-512 BF16 or AMX, via oneDNN (elsewhere bfloat16 is
    emulated and slower than float32, so the tier uses float32). On a CUDA
    GPU: what ``torch.cuda.is_bf16_supported`` says.
    """
    check.instance("device", device, str, where="bf16_supported")
    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _n_classes(model: nn.Module) -> int:
    """Outputs of the model's last linear layer (the classes it decides between), else 10."""
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else 10


def _labels_for(name: str, labels, n: int, where: str, *, of: str = "images",
                n_classes: int = 10):
    """Class indices, one per image of ``n`` (the images' argument is ``of``)."""
    if labels is None or isinstance(labels, (str, bytes)) or not hasattr(labels, "__len__"):
        raise TypeError(f"{where}: {name} must be an array of class indices, got "
                        f"{type(labels).__name__} {labels!r}")
    if len(labels) != n:
        raise ValueError(f"{where}: need one label per image: {name} has {len(labels)} entries "
                         f"for {n} {of}")
    return check.labels(name, labels, n_classes=n_classes, length=n, length_of=of, where=where)
