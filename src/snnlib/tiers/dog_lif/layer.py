"""Tier 2, the network: a retina, Poisson spikes, and a convolutional layer of LIF neurons that learns by STDP.

The balanced tier, in PyTorch and batched over image patches:

1. **Retina** (:mod:`snnlib.retina`): every ``patch_px x patch_px`` patch of
   the RGB image (``stride_px`` 1: 28 x 28 positions for 5 x 5 patches) is either
   whitened (``retina="zca"``: per-patch brightness and contrast
   normalisation, then ZCA, Coates et al. 2011; Falez et al. 2020) or read
   from colour-opponent Difference-of-Gaussians channels (``retina="dog"``:
   luminance, red-green, blue-yellow). Whitened values :math:`z` are split
   into ON and OFF channels :math:`\\max(\\pm z, 0)`, as the DoG's are, and
   scaled to intensities in [0, 1] by a high quantile of the training
   patches. Both give ``2 x 3 x patch_px**2`` inputs per position. (The
   choice of whitening as the default, of 2 ms steps, of 30 steps per image,
   of 512 filters and of 3 x 3 pooling was measured on the validation split of
   the training images, ``benchmarks/dog_lif_tuning.py``; chapter 5 shows the
   figures.)
2. **Poisson encoding**: an input with intensity :math:`x` spikes in each step
   of :math:`\\Delta t` with probability :math:`x\\, r_{max} \\Delta t`
   (Bernoulli steps: at most one spike per step, so :math:`r_{max} \\Delta t \\le 1`).
   Every position has its own input spike trains (overlapping patches do not
   share spikes for the pixels they share): the weights are convolved, the
   Poisson processes are drawn per position.
3. **A convolutional LIF layer**: ``n_filters`` neurons per position share
   their input weights over positions (a convolution). Their synapses are
   instantaneous (:func:`snnlib.neurons.lif_delta_step`): each input spike
   moves the potential by its weight (mV). Neurons at the same position
   inhibit each other (``inhibition_mv`` per spike, a soft
   winner-take-all), and each has its own threshold offset
   :math:`\\theta_k`. Push-pull inhibition (``push_pull``): a spike of a pixel's
   ON input also inhibits by the weight of that pixel's OFF input, and the other way
   round (Troyer et al. 1998), so that a neuron's drive is linear in the signed input.
4. **Learning** (unsupervised, on random patches of the training images):
   a patch is shown for ``steps`` steps; the first neuron to fire is the
   winner (ties: the larger input), the others are held at reset for the
   rest of the patch (winner-take-all, Masquelier & Thorpe 2007;
   Kheradpisheh et al. 2018). The winner's spikes drive pair STDP with
   traces (:func:`snnlib.plasticity.stdp_step`), the changes of a batch of
   patches are summed, and each neuron's weights are normalised to
   ``w_sum_mv`` (:func:`snnlib.plasticity.normalize_weights`), which
   makes the potentiated inputs grow at the expense of the others. The
   thresholds adapt so that every neuron wins equally often (homeostasis):

   .. math::

      \\theta_k \\leftarrow \\theta_k + \\eta_\\theta \\left(K\\, \\frac{w_k}{n} - 1\\right),

   with :math:`w_k` the patches neuron :math:`k` won out of :math:`n`.
5. **Features**: the layer's spike counts over the ``steps`` steps (with
   ``k_winners``, at each position only those of the neurons that fired most,
   :func:`keep_k_winners`), summed over a ``pool x pool`` grid of image regions
   (quadrants for ``pool=2``): ``n_filters * pool**2`` numbers per image (times
   ``time_windows``, the counts of each window of steps apart), and a
   standardised logistic regression on them (:func:`snnlib.readout.logistic_regression`).

The same layer with *random* weights (uniform, normalised to the same sum;
thresholds adapted by the same homeostasis, weights never learned) is the
baseline that says what STDP adds.

Everything random comes from generators seeded from the network's ``seed``,
the call's ``seed`` and the index of the first image of each checkpointed
part, so a feature extraction resumed from its checkpoint gives the numbers
of an uninterrupted one. The trained and the random network draw the same
input spikes for the same images (common random numbers: their comparison
is paired).

References
----------
Coates, A., Ng, A. & Lee, H. (2011). An analysis of single-layer networks in
unsupervised feature learning. *AISTATS*.
Coates, A. & Ng, A. Y. (2011). The importance of encoding versus training with
sparse coding and vector quantization. *ICML*, 921-928.
Masquelier, T. & Thorpe, S. J. (2007). Unsupervised learning of visual
features through spike timing dependent plasticity. *PLoS Comput. Biol.* 3, e31.
Kheradpisheh, S. R. et al. (2018). STDP-based spiking deep convolutional
neural networks for object recognition. *Neural Networks* 99, 56-67.
Falez, P., Tirilly, P. & Bilasco, I. M. (2020). Improving STDP-based visual
feature learning with whitening. *IJCNN*.
Troyer, T. W., Krukowski, A. E., Priebe, N. J. & Miller, K. D. (1998).
Contrast-invariant orientation tuning in cat visual cortex: thalamocortical input
tuning and correlation-based intracortical connectivity. *J. Neurosci.* 18, 5908-5927.
"""


from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ... import _validate as check
from ... import retina as R
from ... import runs
from ..._compile import CompiledOrEager
from ...encoding import _regular_fired, poisson_step
from ...neurons import LIFParams, lif_delta_step
from ...plasticity import STDPParams, STDPState, normalize_weights, stdp_step

__all__ = ["DoGLIF", "DoGLIFParams", "FEATURES_VERSION", "RetinaFit", "features_together",
           "keep_k_winners", "layer_run", "on_off_inputs", "poisson_on_off", "spike_statistics"]

FEATURES_VERSION = 6
"""Part of every feature checkpoint's key: raised when what a part holds or how it is
computed changes."""
IMAGE_PX = 32


def positions_per_side(patch_px: int, stride_px: int = 1, downsample: int = 1) -> int:
    """Positions per image side: :math:`\\lfloor (32 / d - p) / s \\rfloor + 1` for patches of
    :math:`p` pixels at a stride of :math:`s` (no padding) in images averaged over blocks of
    :math:`d \\times d` pixels (``downsample``)."""
    return (IMAGE_PX // downsample - patch_px) // stride_px + 1


@dataclass(frozen=True)
class DoGLIFParams:
    """Parameters of tier 2 (units in the names; validated on construction).

    Attributes
    ----------
    retina : {"zca", "dog"}
        Whitened patches (ON/OFF of ZCA) or colour-opponent DoG ON/OFF channels.
    dog : snnlib.retina.DoGParams
        Centre and surround of the DoG retina.
    patch_px : int
        Side of a neuron's receptive field (pixels); 32 makes the layer fully
        connected (one position).
    stride_px : int
        Distance between neighbouring positions (pixels): 1 puts a position at
        every pixel, 2 at every other one (a quarter of the positions, so a
        quarter of the work per filter).
    downsample : int
        The retina sees the images averaged over blocks of ``downsample x
        downsample`` pixels, :math:`\\bar x_{ij} = d^{-2} \\sum_{a,b < d} x_{di+a,\\,dj+b}`
        (a coarser scale: with 2, 16 x 16 images, so a 5-pixel patch covers 10
        pixels of the original and there are about a fifth of the positions);
        ``patch_px`` and ``stride_px`` count pixels of the averaged image. 1: the
        images as they are. Must divide 32. The DoG's sigmas are in pixels of the
        averaged image too.
    norm_eps : float
        Contrast floor of the per-patch normalisation before whitening,
        :math:`(x - \\bar x) / \\sqrt{\\mathrm{var}(x) + \\epsilon_n}` (pixels in [0, 1]):
        patches with a variance well below it are not stretched to full contrast.
    zca_eps : float
        Regularisation of the ZCA whitening (:func:`snnlib.retina.zca_fit`).
    scale_quantile : float
        Input values are divided by this quantile of the training patches'
        absolute values and clipped at 1.
    max_rate_hz : float
        Firing rate of an input of intensity 1.
    steps : int
        Time steps of ``dt_ms`` per presentation.
    dt_ms, tau_mem_ms : float
        Time step and membrane time constant.
    v_gap_mv : float
        Threshold minus rest (= reset): 13 mV as in Diehl & Cook's neurons.
    n_filters : int
        Neurons per position (feature maps).
    w_sum_mv : float
        Sum of each neuron's input weights (mV of jump if all inputs spiked at once).
    inhibition_mv : float
        Lateral inhibition between neurons of the same position, per spike.
    a_plus, a_minus : float
        STDP amplitudes (mV per pairing); ``tau_stdp_ms`` both traces' time constant.
    theta_eta_mv : float
        Homeostasis step :math:`\\eta_\\theta`.
    train_patches : int
        Random patches the layer learns from (one pass).
    patch_batch : int
        Patches shown at once (their weight changes are summed).
    pool : int
        Features are spike counts summed over ``pool x pool`` image regions.
    k_winners : int
        The features count, at each position, only the spikes of the ``k_winners``
        neurons that fired most there (a k-winners-take-all on the counts,
        :func:`keep_k_winners`; ties with the k-th count are kept). 0: every
        neuron's spikes. The layer fires as it does without it; the firing
        statistics (:meth:`DoGLIF.features`' ``filter_spikes``) count every spike.
    image_batch : int
        Images simulated at once when extracting features.
    time_windows : int
        The features count each neuron's spikes in ``time_windows`` consecutive windows of
        the ``steps`` steps, each window's counts pooled as above and the windows side by
        side (``n_features`` = ``n_filters x pool**2 x time_windows``): window :math:`w` of
        :math:`W` (:math:`w = 0, \\dots, W - 1`; :math:`T` = ``steps``) holds steps
        :math:`\\lfloor wT/W \\rfloor + 1` to
        :math:`\\lfloor (w+1)T/W \\rfloor`, and the windows add up to the counts of the whole
        image. 1: one count per neuron. A neuron driven more strongly reaches its threshold
        sooner, so the windows carry a little of the spikes' timing. The layer fires as it
        does without it. Needs ``k_winners`` 0. One window in the tier: two scored 69.42% on
        the validation split against 69.88% for one (``benchmarks/dog_lif_tuning.py --train
        20000 --val 5000 --set time_windows=2``).
    feedforward_inhibition : float
        Feed-forward inhibition, as a fraction :math:`\\alpha` of the mean
        weight :math:`\\bar w = w_{sum} / n_{in}`: each input spike also lowers
        every neuron of its position by :math:`\\alpha \\bar w` (an inhibitory
        interneuron relaying the same input), so the jumps are
        :math:`s\\,(w - \\alpha \\bar w)^T`. 0: none; 1: zero-mean effective weights.
        A jump can then be negative: with lateral inhibition (``inhibition_mv`` > 0,
        features) a potential below reset is raised to it (:func:`snnlib.neurons.lif_delta_step`); while the
        layer learns (no lateral inhibition) it may fall below rest and decay back.
    drive_dtype : {"float32", "bfloat16"}
        Precision of the synaptic drive while the layer runs with learning off
        (features, rasters): with ``"bfloat16"`` each weight and each step's
        summed jump :math:`J = s\\,w^T` are rounded to bfloat16 (8 significant
        bits, a relative error of at most :math:`2^{-8}` each); the products of
        the 0/1 spikes are exact and add up in float32 before :math:`J` is
        rounded (on the CPU; a GPU may add in lower precision). The potentials,
        thresholds and learning stay in float32. How fast the bfloat16 product is
        depends on the CPU (``benchmarks/dog_lif_speed.py``): about four times
        the float32 product's speed with bfloat16 matrix units (AMX), several
        times slower on a CPU with neither those nor AVX-512's bfloat16
        instructions. With ``"float32"`` on the CPU, the features and rasters
        gather each step's jumps from the weights of the inputs that fired
        (``_gathered_drive``) instead of multiplying every input's 0 or 1, with
        ``torch.compile`` or without it (learning and a GPU multiply).
    input_code : {"poisson", "regular"}
        How an input's intensity :math:`x` becomes spikes, while the layer learns and while
        it codes images. ``"poisson"``: in each step a spike with probability
        :math:`x\\, p_{max}`, independently (:func:`snnlib.encoding.poisson_step`).
        ``"regular"``: the same mean rate without the Poisson noise, each input firing
        whenever an accumulator of :math:`x\\, p_{max}` per step, started at a random phase,
        crosses a whole number (:func:`snnlib.encoding.regular_step`; a count over the
        ``steps`` steps is then :math:`\\lfloor T x p_{max} \\rfloor` or
        :math:`\\lceil T x p_{max} \\rceil`). The phases are drawn once per input and
        patch.
    push_pull : float
        Push-pull inhibition, a fraction :math:`\\beta` in [0, 1]: a spike of a pixel's ON
        input also lowers each neuron by :math:`\\beta` times that neuron's weight from the
        same pixel's OFF input, and the other way round (an inhibitory interneuron of the
        opposite polarity relaying it, as simple cells of the visual cortex receive push-pull
        inhibition, Troyer et al. 1998), so the jumps are
        :math:`s\\,(w - \\beta\\, \\tilde w)^T` with :math:`\\tilde w` the weights with their
        ON and OFF halves swapped. With :math:`\\beta = 1` a neuron's drive is linear in the
        signed input: input :math:`c` of a pixel drives it by :math:`c\\,(w_{ON} - w_{OFF})`
        for either sign, and the part of the drive blind to the input's sign (there where
        STDP leaves both weights of a pixel above 0) is gone. 0: none; the default 1 was
        chosen on the validation split (``benchmarks/dog_lif_tuning.py --train 20000 --val
        5000``: 69.9% against 67.8% without it).
        Like feed-forward inhibition it acts while the layer learns and while it codes
        images, and a potential it lowers below reset is treated the same way.
    opposite_phase : bool
        Neurons in pairs of opposite phase: the layer learns ``n_filters // 2`` filters, and
        each has a partner whose ON and OFF weights are its own swapped
        (:math:`\\tilde w`) and whose threshold is its own, so that with push-pull
        inhibition the partner's drive is that of the filter :math:`-(w_{ON} - w_{OFF})`:
        it fires for the contrast-inverted patch (the "polarity split" of a code,
        Coates & Ng, ICML 2011). Only the first ``n_filters // 2`` neurons compete and learn;
        after every batch the partners (the last ``n_filters // 2`` neurons, in the same
        order) copy their weights and thresholds. While the layer codes images all
        ``n_filters`` neurons fire and inhibit each other. ``n_filters`` must be even.
        Off in the tier: with push-pull inhibition, 256 learned filters and their partners
        scored 69.78% on the validation split against 69.88% for 512 learned filters
        (``benchmarks/dog_lif_tuning.py --train 20000 --val 5000 --set
        opposite_phase=true``).
    """

    retina: Literal["zca", "dog"] = "zca"
    dog: R.DoGParams = field(default_factory=lambda: R.DoGParams(1.0, 2.0))
    patch_px: int = 5
    stride_px: int = 1
    downsample: int = 1
    norm_eps: float = 0.01
    zca_eps: float = 0.1
    scale_quantile: float = 0.99
    max_rate_hz: float = 300.0
    steps: int = 30
    dt_ms: float = 2.0
    tau_mem_ms: float = 10.0
    v_gap_mv: float = 13.0
    n_filters: int = 512
    w_sum_mv: float = 65.0
    inhibition_mv: float = 13.0
    a_plus: float = 0.026
    a_minus: float = 0.0
    tau_stdp_ms: float = 10.0
    theta_eta_mv: float = 0.65
    train_patches: int = 100_000
    patch_batch: int = 1000
    pool: int = 3
    k_winners: int = 0
    image_batch: int = 4
    feedforward_inhibition: float = 0.0
    drive_dtype: Literal["float32", "bfloat16"] = "float32"
    input_code: Literal["poisson", "regular"] = "poisson"
    push_pull: float = 1.0
    # added after the tier's caches were made; off, the layer computes what it did before
    opposite_phase: bool = field(default=False, metadata=runs.KEY_OMITS_DEFAULT)
    time_windows: int = field(default=1, metadata=runs.KEY_OMITS_DEFAULT)

    def __post_init__(self) -> None:
        if not isinstance(self.retina, str) or self.retina not in ("zca", "dog"):
            raise ValueError(f"DoGLIFParams.retina must be 'zca' or 'dog', got {self.retina!r}.")
        check.instance("DoGLIFParams.dog", self.dog, R.DoGParams)
        for name in ("patch_px", "stride_px", "downsample", "steps", "n_filters",
                     "train_patches", "patch_batch", "pool", "image_batch"):
            check.positive_int(f"DoGLIFParams.{name}", getattr(self, name))
        if IMAGE_PX % self.downsample:
            raise ValueError(f"DoGLIFParams.downsample must divide the images' {IMAGE_PX} "
                             f"pixels (1, 2, 4, 8, 16 or 32), got {self.downsample}.")
        px = self.image_px
        if self.patch_px > px:
            raise ValueError(f"DoGLIFParams.patch_px must be at most {px} (the images' side"
                             f"{'' if self.downsample == 1 else ' after downsample'}), got "
                             f"{self.patch_px}.")
        side = self.side
        if self.pool > side:
            raise ValueError(f"DoGLIFParams.pool ({self.pool}) exceeds the {side} x {side} "
                             f"positions of {self.patch_px}-pixel patches at a stride of "
                             f"{self.stride_px} pixels"
                             f"{'' if self.downsample == 1 else f' in {px} x {px} images'}.")
        check.integer("DoGLIFParams.k_winners", self.k_winners, low=0)
        if self.k_winners > self.n_filters:
            raise ValueError(f"DoGLIFParams.k_winners ({self.k_winners}) must be at most "
                             f"n_filters ({self.n_filters}), the neurons of a position; 0 "
                             "counts every neuron's spikes.")
        for name in ("norm_eps", "zca_eps", "max_rate_hz", "dt_ms", "tau_mem_ms", "v_gap_mv",
                     "w_sum_mv", "tau_stdp_ms"):
            check.finite_number(f"DoGLIFParams.{name}", getattr(self, name), above=0)
        for name in ("inhibition_mv", "a_plus", "a_minus", "theta_eta_mv"):
            check.finite_number(f"DoGLIFParams.{name}", getattr(self, name), at_least=0)
        check.number("DoGLIFParams.scale_quantile", self.scale_quantile, low=0.5, high=1.0)
        if not isinstance(self.drive_dtype, str) or self.drive_dtype not in ("float32",
                                                                              "bfloat16"):
            raise ValueError("DoGLIFParams.drive_dtype must be 'float32' or 'bfloat16', got "
                             f"{self.drive_dtype!r}.")
        if not isinstance(self.input_code, str) or self.input_code not in ("poisson", "regular"):
            raise ValueError("DoGLIFParams.input_code must be 'poisson' or 'regular', got "
                             f"{self.input_code!r}.")
        check.number("DoGLIFParams.feedforward_inhibition", self.feedforward_inhibition,
                     low=0.0, high=2.0)
        check.number("DoGLIFParams.push_pull", self.push_pull, low=0.0, high=1.0)
        check.flag("DoGLIFParams.opposite_phase", self.opposite_phase)
        check.positive_int("DoGLIFParams.time_windows", self.time_windows)
        if self.time_windows > self.steps:
            raise ValueError(f"DoGLIFParams.time_windows ({self.time_windows}) must be at most "
                             f"steps ({self.steps}): each window needs a step.")
        if self.time_windows > 1 and self.k_winners:
            raise ValueError("DoGLIFParams.k_winners must be 0 with time_windows > 1 (the k "
                             "winners are chosen on the whole image's counts); got k_winners="
                             f"{self.k_winners}, time_windows={self.time_windows}.")
        if self.opposite_phase and self.n_filters % 2:
            raise ValueError("DoGLIFParams.n_filters must be even with opposite_phase=True (a "
                             "learned half and its partners of opposite phase), got "
                             f"{self.n_filters}.")
        if self.max_rate_hz * self.dt_ms / 1000 > 1:
            raise ValueError(f"max_rate_hz={self.max_rate_hz} x dt_ms={self.dt_ms} is more than one "
                             "spike per step; lower the rate or the step.")
        if self.dt_ms >= self.tau_mem_ms or self.dt_ms >= self.tau_stdp_ms:
            raise ValueError(f"dt_ms={self.dt_ms} must be smaller than tau_mem_ms and tau_stdp_ms.")

    @property
    def n_learned(self) -> int:
        """Neurons per position that learn: ``n_filters``, or half of them with
        ``opposite_phase`` (the other half are their partners)."""
        return self.n_filters // 2 if self.opposite_phase else self.n_filters

    @property
    def n_inputs(self) -> int:
        """Inputs per position: ON and OFF of 3 channels x patch_px**2."""
        return 2 * 3 * self.patch_px ** 2

    @property
    def image_px(self) -> int:
        """Side of the images the retina sees: 32 / ``downsample``."""
        return IMAGE_PX // self.downsample

    @property
    def side(self) -> int:
        """Positions per image side (:func:`positions_per_side`)."""
        return positions_per_side(self.patch_px, self.stride_px, self.downsample)

    @property
    def n_features(self) -> int:
        """Features per image: ``n_filters x pool**2 x time_windows``."""
        return self.n_filters * self.pool ** 2 * self.time_windows

    @property
    def window_ends(self) -> tuple[int, ...]:
        """The last step of each time window but the last: :math:`\\lfloor wT/W \\rfloor` for
        :math:`w = 1, \\dots, W - 1` (empty for one window)."""
        return tuple((w * self.steps) // self.time_windows for w in range(1, self.time_windows))

    @property
    def lif(self) -> LIFParams:
        """The neurons, as :class:`snnlib.neurons.LIFParams` (rest = reset = -65 mV)."""
        return LIFParams(tau_mem_ms=self.tau_mem_ms, v_rest_mv=-65.0, v_reset_mv=-65.0,
                         v_thresh_mv=-65.0 + self.v_gap_mv, t_ref_ms=0.0, dt_ms=self.dt_ms,
                         tau_exc_ms=max(1.0, 2 * self.dt_ms), tau_inh_ms=max(2.0, 2 * self.dt_ms))

    @property
    def stdp(self) -> STDPParams:
        """The learning rule, as :class:`snnlib.plasticity.STDPParams` (sum over a batch)."""
        return STDPParams(a_plus=self.a_plus, a_minus=self.a_minus, tau_plus_ms=self.tau_stdp_ms,
                          tau_minus_ms=self.tau_stdp_ms, w_min=0.0, w_max=self.w_sum_mv,
                          reduction="sum", dt_ms=self.dt_ms)

    @property
    def p_max(self) -> float:
        """Spike probability per step of an input of intensity 1."""
        return self.max_rate_hz * self.dt_ms / 1000.0


def _normalise_patches(cols: torch.Tensor, eps: float) -> torch.Tensor:
    """Per-patch brightness and contrast normalisation,
    :math:`(x - \\bar x) / \\sqrt{\\mathrm{var}(x) + \\epsilon_n}` (``eps`` is :math:`\\epsilon_n`,
    ``DoGLIFParams.norm_eps``)."""
    cols = cols - cols.mean(-1, keepdim=True)
    return cols / (cols.var(-1, keepdim=True) + eps).sqrt()


def _downsampled(x: torch.Tensor, p: DoGLIFParams) -> torch.Tensor:
    """Float images ``(N, 3, 32, 32)`` averaged over blocks of ``p.downsample`` pixels a side
    (``DoGLIFParams.downsample``; the images themselves for 1)."""
    return x if p.downsample == 1 else F.avg_pool2d(x, p.downsample)


def _float_images(images, name: str = "images", where: str | None = None) -> torch.Tensor:
    """uint8 ``(N, 32, 32, 3)`` (or floats in [0, 1]) to float ``(N, 3, 32, 32)``, checked:
    errors name the argument ``name`` of ``where``."""
    return _as_float(_checked_images(images, name, where))


def _checked_images(images, name: str = "images", where: str | None = None) -> torch.Tensor:
    """Images ``(N >= 1, 32, 32, 3)``, uint8 (0-255) or floats in [0, 1], as a tensor."""
    x = images if torch.is_tensor(images) else torch.as_tensor(
        check.array(name, images, nonempty=False, finite=False, where=where))
    if x.ndim != 4 or tuple(x.shape[1:]) != (IMAGE_PX, IMAGE_PX, 3):
        raise ValueError(f"{where + ': ' if where else ''}{name} must be (N, 32, 32, 3) RGB "
                         f"(channels last, as load_cifar10 gives them), got shape "
                         f"{tuple(x.shape)}.")
    return check.images(name, x, where=where)[0]


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Checked images (:func:`_checked_images`) to float ``(N, 3, 32, 32)`` in [0, 1]."""
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class RetinaFit:
    """The retina fitted to training images: the ZCA transform (``retina="zca"``) and the input scale.

    A whitening retina also keeps the contrast floor its ZCA was fitted after
    (``norm_eps``, ``DoGLIFParams.norm_eps``): applying it with another floor is refused,
    and every retina keeps the scale it was fitted at (``downsample``): applying it at another
    is refused.
    """

    retina: str
    scale: float
    zca_mean: torch.Tensor | None = None
    zca_matrix: torch.Tensor | None = None
    norm_eps: float | None = None
    downsample: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.retina, str) or self.retina not in ("zca", "dog"):
            raise ValueError(f"RetinaFit.retina must be 'zca' or 'dog', got {self.retina!r}.")
        check.finite_number("RetinaFit.scale", self.scale, above=0)
        for name in ("zca_mean", "zca_matrix"):
            value = check.instance(f"RetinaFit.{name}", getattr(self, name), torch.Tensor,
                                   none=True)
            if value is not None:
                check.array(f"RetinaFit.{name}", value)
        if self.retina == "zca" and (self.zca_mean is None or self.zca_matrix is None):
            raise ValueError("RetinaFit.zca_mean and zca_matrix are needed by a ZCA retina, got "
                             "None.")
        if self.norm_eps is not None:
            check.finite_number("RetinaFit.norm_eps", self.norm_eps, above=0)
        check.positive_int("RetinaFit.downsample", self.downsample)

    @classmethod
    def fit(cls, images, p: DoGLIFParams, *, seed: int, n_images: int = 2000) -> "RetinaFit":
        """Fit on the first ``n_images`` images: ZCA on their patches (stride 3), then the scale."""
        where = "RetinaFit.fit"
        check.instance("p", p, DoGLIFParams, where=where)
        check.integer("seed", seed, where=where)
        check.positive_int("n_images", n_images, where=where)
        if isinstance(images, (str, bytes)) or not hasattr(images, "__getitem__"):
            raise TypeError(f"{where}: images must be an array (N, 32, 32, 3), got "
                            f"{type(images).__name__}")
        if np.ndim(images) != 4:
            _checked_images(images, "images", where)  # says what the shape should be
        x = _float_images(images[:n_images], "images", where)
        zmean = zmat = None
        if p.retina == "zca":
            patches = _normalise_patches(R.extract_patches(
                _downsampled(x, p), p.patch_px, stride=3 if p.patch_px < p.image_px else 1),
                p.norm_eps)
            zca = R.zca_fit(patches, eps=p.zca_eps)
            zmean, zmat = zca.mean.float(), zca.matrix.float()
        norm_eps = p.norm_eps if p.retina == "zca" else None
        fit = cls(p.retina, 1.0, zmean, zmat, norm_eps, p.downsample)
        values = fit._signed(x, p).abs().flatten()
        g = torch.Generator().manual_seed(seed)
        sample = values[torch.randint(0, len(values), (min(len(values), 1_000_000),), generator=g)]
        scale = float(torch.quantile(sample, p.scale_quantile))
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"{where}: images give no contrast to scale by (the retina's "
                             f"{p.scale_quantile:g} quantile is {scale:g}: blank or uniform "
                             f"images?)")
        return cls(p.retina, scale, zmean, zmat, norm_eps, p.downsample)

    def _check_params(self, p: DoGLIFParams, where: str) -> None:
        check.instance("p", p, DoGLIFParams, where=where)
        if p.retina != self.retina:
            raise ValueError(f"{where}: p.retina is {p.retina!r} but this retina was fitted as "
                             f"{self.retina!r}")
        if self.zca_matrix is not None and self.zca_matrix.shape[0] != 3 * p.patch_px ** 2:
            raise ValueError(f"{where}: p.patch_px is {p.patch_px} but this retina was fitted on "
                             f"{math.isqrt(self.zca_matrix.shape[0] // 3)}-pixel patches")
        if p.downsample != self.downsample:
            fitted = ("the images as they are" if self.downsample == 1 else
                      f"images averaged over blocks of {self.downsample} x {self.downsample} "
                      "pixels")
            raise ValueError(f"{where}: p.downsample is {p.downsample} but this retina was fitted "
                             f"to {fitted} (downsample={self.downsample})")
        if self.norm_eps is not None and p.norm_eps != self.norm_eps:
            raise ValueError(f"{where}: p.norm_eps is {p.norm_eps:g} but this retina's whitening "
                             f"was fitted after a contrast floor of {self.norm_eps:g}")

    def _signed(self, x: torch.Tensor, p: DoGLIFParams) -> torch.Tensor:
        """Float images ``(N, 3, 32, 32)`` to signed responses ``(N, L, 3 * patch_px**2)``, unscaled
        (the images averaged over ``p.downsample`` blocks first)."""
        x = _downsampled(x, p)
        if self.retina == "zca":
            cols = F.unfold(x, p.patch_px, stride=p.stride_px).transpose(1, 2)
            return (_normalise_patches(cols, p.norm_eps) - self.zca_mean) @ self.zca_matrix
        d = R.colour_opponent(x.permute(0, 2, 3, 1), p.dog)
        return F.unfold(d, p.patch_px, stride=p.stride_px).transpose(1, 2)

    def intensities(self, images, p: DoGLIFParams) -> torch.Tensor:
        """Images ``(N, 32, 32, 3)`` to *signed* input intensities ``(N, L, n_inputs // 2)`` in [-1, 1].

        :math:`c = \\mathrm{clip}(z / s, -1, 1)` for the whitened (or DoG) value :math:`z` of
        each pixel and channel of each patch; its ON input has intensity
        :math:`\\max(c, 0)` and its OFF input :math:`\\max(-c, 0)` (:func:`on_off_inputs`).
        At most one of the two is non-zero.
        """
        self._check_params(p, "RetinaFit.intensities")
        return self._intensities(_float_images(images, "images", "RetinaFit.intensities"), p)

    def _intensities(self, x: torch.Tensor, p: DoGLIFParams) -> torch.Tensor:
        """:meth:`intensities` of float images ``(N, 3, 32, 32)`` already checked."""
        return (self._signed(x, p) / self.scale).clamp_(-1.0, 1.0)

    def state_dict(self) -> dict:
        out = {"retina": np.array(self.retina), "scale": np.array(self.scale)}
        if self.zca_mean is not None:
            out.update(zca_mean=self.zca_mean.numpy(), zca_matrix=self.zca_matrix.numpy())
        if self.norm_eps is not None:
            out.update(norm_eps=np.array(self.norm_eps))
        if self.downsample != 1:
            out.update(downsample=np.array(self.downsample))
        return out

    @classmethod
    def from_state(cls, s) -> "RetinaFit":
        zm = torch.from_numpy(s["zca_mean"]) if "zca_mean" in s else None
        zw = torch.from_numpy(s["zca_matrix"]) if "zca_matrix" in s else None
        norm_eps = float(s["norm_eps"]) if "norm_eps" in s else None
        downsample = int(s["downsample"]) if "downsample" in s else 1
        return cls(str(s["retina"]), float(s["scale"]), zm, zw, norm_eps, downsample)


def on_off_inputs(signed: torch.Tensor) -> torch.Tensor:
    """Signed intensities ``(..., h)`` to ON and OFF input intensities ``(..., 2h)``: :math:`[\\max(c, 0), \\max(-c, 0)]`."""
    _signed_intensities("signed", signed, "on_off_inputs")
    return torch.cat([signed.clamp(min=0), (-signed).clamp(min=0)], dim=-1)


def poisson_on_off(signed: torch.Tensor, p_max: float, rng: np.random.Generator) -> torch.Tensor:
    """One step of Poisson spikes of the ON and OFF inputs, ``(M, 2h)`` float 0/1.

    An input of intensity :math:`x` spikes with probability :math:`x\\, p_{max}`
    (:func:`snnlib.encoding.poisson_step`). ON and OFF inputs of a pixel are
    never both active (one intensity is 0), so one draw per pair, at the
    pair's intensity :math:`|c|`, decides both: the same distribution as
    independent draws, with half the random numbers.
    """
    where = "poisson_on_off"
    _signed_intensities("signed", signed, where)
    check.number("p_max", p_max, low=0.0, low_open=True, high=1.0, where=where)
    check.instance("rng", rng, (np.random.Generator, torch.Generator), where=where)
    return _poisson_on_off(signed, float(p_max), rng)


def _signed_intensities(name: str, signed, where: str, ndim=None) -> torch.Tensor:
    """A float tensor of signed intensities in [-1, 1] (:meth:`RetinaFit.intensities`)."""
    if not torch.is_tensor(signed):
        raise TypeError(f"{where}: {name} must be a torch tensor of signed intensities in "
                        f"[-1, 1], got {type(signed).__name__}")
    if not signed.is_floating_point():
        raise TypeError(f"{where}: {name} must be floats in [-1, 1], got dtype {signed.dtype}")
    return check.array(name, signed, ndim=ndim, low=-1.0, high=1.0, where=where)


def _poisson_on_off(signed: torch.Tensor, p_max: float, rng: np.random.Generator) -> torch.Tensor:
    """:func:`poisson_on_off` without the checks (called every time step)."""
    return _split_on_off(poisson_step(signed.abs(), p_max, generator=rng).float(), signed)


def _split_on_off(spikes: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
    """The spikes ``(M, h)`` of input pairs as ON and OFF inputs ``(M, 2h)``: ON where
    :math:`c > 0`, else OFF."""
    on = spikes * (signed > 0)
    return torch.cat([on, spikes - on], dim=-1)


def layer_run(signed: torch.Tensor, w_mv: torch.Tensor, theta_mv: torch.Tensor,
              p: DoGLIFParams, rng: np.random.Generator, *, learn: bool = False,
              record: bool = False) -> dict:
    """Simulate the LIF layer at a batch of positions for ``p.steps`` steps.

    Each step: Poisson input spikes :math:`s` (:func:`poisson_on_off`), then
    :func:`snnlib.neurons.lif_delta_step` with jumps :math:`s\\, w^T` (mV; less
    :math:`\\alpha \\bar w` per input spike with ``p.feedforward_inhibition``),
    threshold offsets :math:`\\theta` and lateral inhibition ``p.inhibition_mv``.
    Without learning, a float32 drive on the CPU adds the weights of the inputs
    that fired (``_gathered_drive``: the same sum, in another order, as the product).

    With ``learn``: no lateral inhibition but a hard winner-take-all (the
    first neuron to fire at a position is its winner, ties going to the
    larger jump; the others are held at reset), and the winner's spikes
    drive STDP (:func:`snnlib.plasticity.stdp_step`): the change summed over
    the batch is returned, not applied.

    Parameters
    ----------
    signed : torch.Tensor
        ``(M, n_inputs // 2)`` signed intensities in [-1, 1]
        (:meth:`RetinaFit.intensities`): M positions (patches).
    w_mv : torch.Tensor
        ``(K, n_inputs)`` weights (mV): ON inputs first, then OFF.
    theta_mv : torch.Tensor
        ``(K,)`` threshold offsets (mV).
    rng : numpy.random.Generator
        The Poisson spikes' randomness.
    record : bool
        Also return every step's input spikes ``(T, M, n_inputs)``, layer
        spikes and potentials ``(T, M, K)``.

    Returns
    -------
    dict
        ``counts`` ``(M, K)`` spikes per neuron, ``input_spikes`` (the total,
        for the synaptic-operation count); with ``p.time_windows`` > 1 and without ``learn``
        also ``window_counts`` ``(M, time_windows x K)``, each window's counts, window after
        window (:attr:`DoGLIFParams.window_ends`); with ``learn``: ``dw``
        ``(K, n_inputs)`` and ``winner`` ``(M,)`` (-1: no neuron fired); with
        ``record``: ``input_trains``, ``trains`` (bool) and ``v_mem``.
    """
    _layer_checks(signed, w_mv, theta_mv, p, rng, learn, record, "layer_run")
    return _layer_run(signed, w_mv, theta_mv, p, rng, learn=learn, record=record)


def _layer_checks(signed, w_mv, theta_mv, p, rng, learn, record, where: str) -> None:
    """:func:`layer_run`'s arguments, and the memory it would take."""
    check.instance("p", p, DoGLIFParams, where=where)
    for name, t in (("w_mv", w_mv), ("theta_mv", theta_mv)):
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise TypeError(f"{where}: {name} must be a float tensor, got "
                            f"{type(t).__name__}{' ' + str(t.dtype) if torch.is_tensor(t) else ''}")
    check.array("w_mv", w_mv, ndim=2, where=where)
    if w_mv.shape[1] != p.n_inputs:
        raise ValueError(f"{where}: w_mv must be (K, {p.n_inputs}) for {p.patch_px}-pixel "
                         f"patches, got {tuple(w_mv.shape)}")
    check.array("theta_mv", theta_mv, shape=(w_mv.shape[0],), where=where)
    _signed_intensities("signed", signed, where, ndim=2)
    if 2 * signed.shape[1] != w_mv.shape[1]:
        raise ValueError(f"{where}: signed intensities must be (M, {w_mv.shape[1] // 2}), "
                         f"got {tuple(signed.shape)}.")
    check.instance("rng", rng, np.random.Generator, where=where)
    check.flag("learn", learn, where=where)
    check.flag("record", record, where=where)
    m, k, n_in = signed.shape[0], w_mv.shape[0], w_mv.shape[1]
    need = 4 * m * (n_in + 4 * k) + (4 * m * (2 * n_in + 2 * k) if learn else 0) \
        + (p.steps * m * (n_in + 5 * k) if record else 0)
    check.fits_in_memory(f"simulating {m} positions (signed) x {k} neurons (w_mv)"
                         + (f" with record=True for p.steps={p.steps} steps" if record else ""),
                         need, where=where)


def _felt(w_mv: torch.Tensor, p: DoGLIFParams) -> torch.Tensor:
    """The weights the drive uses: :math:`w - \\beta \\tilde w - \\alpha \\bar w` with
    push-pull inhibition (:math:`\\tilde w`: ON and OFF halves swapped) and feed-forward
    inhibition (the inhibition of every input spike, folded into the weights once for all
    steps)."""
    ffi = p.feedforward_inhibition * p.w_sum_mv / p.n_inputs  # mV per input spike
    w = w_mv
    if p.push_pull:
        w = w - p.push_pull * _swap_halves(w)
    return w - ffi if ffi else w


def _swap_halves(w_mv: torch.Tensor) -> torch.Tensor:
    """:math:`\\tilde w`: each row's ON and OFF halves swapped, :math:`[w_{ON}, w_{OFF}] \\to
    [w_{OFF}, w_{ON}]` (ON inputs first, then the OFF inputs of the same pixels)."""
    h = w_mv.shape[1] // 2
    return torch.cat([w_mv[:, h:], w_mv[:, :h]], dim=1)


def _with_partners(w_mv: torch.Tensor, p: DoGLIFParams) -> torch.Tensor:
    """The learned weights ``(n_learned, n_inputs)`` with, below them when
    ``p.opposite_phase``, their partners of opposite phase: the same rows with the ON and OFF
    halves swapped (:func:`_swap_halves`)."""
    return torch.cat([w_mv, _swap_halves(w_mv)]) if p.opposite_phase else w_mv


def _layer_run(signed: torch.Tensor, w_mv: torch.Tensor, theta_mv: torch.Tensor,
               p: DoGLIFParams, rng: np.random.Generator, *, learn: bool = False,
               record: bool = False) -> dict:
    """:func:`layer_run` without the checks (called for every batch)."""
    w_felt = _felt(w_mv, p)
    if not learn and not record:
        out = _fused_run(signed, w_felt, theta_mv, p, rng)
        if out is not None:  # None: this process cannot compile; the loop below, uncompiled
            return out
    lif = p.lif
    m, k = signed.shape[0], w_mv.shape[0]
    dev = signed.device
    v = torch.full((m, k), lif.v_rest_mv, device=dev)
    counts = torch.zeros(m, k, device=dev)
    n_input_spikes = 0.0
    if learn:
        rule = p.stdp
        traces = STDPState.initial(m, w_mv.shape[1], k, device=dev)
        dw = torch.zeros_like(w_mv)
        winner = torch.full((m,), -1, dtype=torch.long, device=dev)
        rows = torch.arange(m, device=dev)
    trains, v_rec, in_rec = [], [], []
    w_t, low = _drive_weights(w_felt, p, learn)
    gather = not learn and _gathers(p, dev)  # as _fused_run: the same sums in the same order
    if gather:  # computed once, not at every step
        pair_input, w_rows, intensity = _pair_input(signed), w_t.contiguous(), signed.abs()
    regular = p.input_code == "regular"
    if regular:  # as _fused_runs: the phases drawn once, the same spike probabilities
        phases, p_spike = _uniforms(signed, rng), signed.abs() * p.p_max
    ends, at_ends = () if learn else p.window_ends, []  # learning pools nothing
    for step in range(1, p.steps + 1):
        if gather:
            fired = (_regular_fired(phases, p_spike, step) if regular
                     else poisson_step(intensity, p.p_max, generator=rng) > 0)
            jump, n_fired = _gathered_drive(fired, pair_input, w_rows)
            n_input_spikes += n_fired
            if record:  # the spikes of the ON and OFF inputs, as _poisson_on_off gives them
                s = _split_on_off(fired.float(), signed)
        else:
            s = (_split_on_off(_regular_fired(phases, p_spike, step).float(), signed) if regular
                 else _poisson_on_off(signed, p.p_max, rng))
            n_input_spikes += float(s.sum())
            jump = (s.to(low) @ w_t).float() if low is not None else s @ w_t
        spikes, v = lif_delta_step(v, jump, lif, theta_mv=theta_mv,
                                   inhibition_mv=0.0 if learn else p.inhibition_mv)
        if learn:
            fired = spikes > 0
            new = (winner < 0) & fired.any(dim=1)
            if new.any():
                strength = torch.where(fired[new], jump[new], torch.tensor(-math.inf))
                winner[new] = strength.argmax(dim=1)
            won = winner >= 0
            mask = torch.zeros(m, k, device=dev)
            mask[rows[won], winner[won]] = 1.0
            spikes = spikes * mask
            held = won[:, None] & (mask == 0)
            v = torch.where(held, torch.full_like(v, lif.v_reset_mv), v)
            change, traces = stdp_step(s, spikes, traces, rule)
            dw += change.dense()
        counts += spikes
        if step in ends:
            at_ends.append(counts.clone())
        if record:
            trains.append(spikes > 0)
            v_rec.append(v.clone())
            in_rec.append(s > 0)
    out = {"counts": counts, "input_spikes": n_input_spikes}
    if ends:
        out["window_counts"] = _window_counts(at_ends, counts)
    if learn:
        out.update(dw=dw, winner=winner)
    if record:
        out.update(trains=torch.stack(trains), v_mem=torch.stack(v_rec),
                   input_trains=torch.stack(in_rec))
    return out


def _uniforms(signed: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Uniform float32 numbers in [0, 1), one per input pair of each position (``signed``'s
    shape and device), drawn on the CPU from ``rng``: each step's draws of Poisson inputs, or
    the phases of ``"regular"`` inputs (:func:`snnlib.encoding.regular_step`), drawn once for
    all steps."""
    return torch.from_numpy(rng.random(tuple(signed.shape), dtype=np.float32)).to(signed.device)


def _drive_weights(w_felt: torch.Tensor, p: DoGLIFParams, learn: bool = False):
    """``w_felt`` transposed for :math:`J = s\\,w^T`, and the dtype of the product: None
    (float32), or bfloat16 where ``p.drive_dtype`` asks for it and the layer does not learn
    (the weights then rounded to bfloat16)."""
    if learn or p.drive_dtype == "float32":
        return w_felt.T, None
    return w_felt.T.to(torch.bfloat16), torch.bfloat16


def _input_spikes(p_spike: torch.Tensor, on: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """ON and OFF input spikes from uniform numbers :math:`u` (:func:`poisson_on_off`'s maths).

    .. math:: s = [u < |c|\\, p_{max}], \\qquad s_{ON} = s\\,[c > 0], \\quad s_{OFF} = s - s_{ON}

    ``p_spike`` is :math:`|c|\\, p_{max}` and ``on`` is :math:`[c > 0]`, both ``(M, h)``;
    returns ``(M, 2h)``, ON first.
    """
    s = (u < p_spike).to(u.dtype)
    s_on = s * on
    return torch.cat([s_on, s - s_on], dim=-1)


def _lif_counts(jump: torch.Tensor, v: torch.Tensor, counts: torch.Tensor, thresh: torch.Tensor,
                consts: torch.Tensor, inhibit: bool):
    """One step of :func:`snnlib.neurons.lif_delta_step`, and the spike count.

    .. math::

        v \\leftarrow J + \\alpha v + (1 - \\alpha) v_{rest}, \\qquad s = [v > v_{th} + \\theta],
        \\qquad v \\leftarrow v_{reset} \\text{ where } s,

    then, with lateral inhibition :math:`\\iota` (``inhibit``), :math:`v \\leftarrow
    \\max(v - \\iota (\\textstyle\\sum s - s), v_{reset})`; returns the new ``v`` and
    ``counts + s``. ``consts`` holds :math:`\\alpha`, :math:`(1 - \\alpha) v_{rest}`,
    :math:`v_{reset}` and :math:`\\iota` as a tensor (numbers that ``torch.compile``
    reads at every call, never baked into its code). The same equations as
    :func:`~snnlib.neurons.lif_delta_step`, written so that ``torch.compile`` makes one
    pass over memory of them.
    """
    decay, rest_term, reset, inhibition = consts[0], consts[1], consts[2], consts[3]
    v = jump + v * decay + rest_term
    spikes = (v > thresh).to(v.dtype)
    v = v * (1.0 - spikes) + spikes * reset
    if inhibit:
        others = spikes.sum(dim=-1, keepdim=True)
        v = torch.maximum(v - others * inhibition + spikes * inhibition, reset)
    return v, counts + spikes


_INPUT_SPIKES = CompiledOrEager(_input_spikes, "Tier 2's input spikes")
_LIF_COUNTS = CompiledOrEager(_lif_counts, "Tier 2's LIF step")
_WARMED: set = set()
"""The shapes (and inhibition on or off, device, dtype) :func:`_fused_ready` has compiled for."""


def _fused_ready(signed: torch.Tensor, w_felt: torch.Tensor, theta_mv: torch.Tensor,
                 p: DoGLIFParams) -> bool:
    """Compile :func:`_lif_counts` (and :func:`_input_spikes`, for the bfloat16 drive) for
    :func:`_fused_run` of these arguments (if not done yet for their shapes and dtypes),
    by calling them once on tensors
    made as :func:`_fused_run` makes its own, without drawing any random number. Returns
    whether the compiled functions can run them.

    ``torch.compile`` makes one code for every shape (``dynamic=True``), but tunes it (how
    the loops over positions and neurons are vectorised) to the sizes of its first call: a
    first call on toy sizes gave code 1.3 times slower for 3,136 positions of 512 neurons.
    So the first compilation in a process should be made at the sizes that matter, which
    :meth:`DoGLIF.features` (:func:`features_together`) does before its clock starts. The
    example tensors are distinct objects, as in the real calls: a tensor passed twice would make a code guarded
    on that, compiled again at the first real call.
    """
    key = (tuple(signed.shape), tuple(w_felt.shape), bool(p.inhibition_mv), p.drive_dtype,
           str(signed.device), signed.dtype, w_felt.dtype, theta_mv.dtype)
    gather = _gathers(p, signed.device)
    if key in _WARMED:  # checked at every batch: no tensor made
        return callable(_LIF_COUNTS.fn) and (gather or callable(_INPUT_SPIKES.fn))
    numbers, p_spike, on, thresh, w_t, low, v, counts = _fused_tensors(signed, w_felt,
                                                                        theta_mv, p)
    if gather:  # the jumps are gathered: no compiled input spikes
        jump = torch.zeros(v.shape, dtype=w_t.dtype, device=signed.device)
    else:
        u = torch.ones(tuple(signed.shape), dtype=torch.float32, device=signed.device)
        s = _INPUT_SPIKES(p_spike, on, u)
        if s is None:
            return False
        jump = (s.to(low) if low is not None else s) @ w_t
    if _LIF_COUNTS(jump, v, counts, thresh, *numbers) is None:
        return False
    _WARMED.add(key)
    return True


def _fused_tensors(signed: torch.Tensor, w_felt: torch.Tensor, theta_mv: torch.Tensor,
                   p: DoGLIFParams) -> tuple:
    """What :func:`_fused_run` computes before its steps: the LIF numbers, the spike
    probabilities and ON mask, the thresholds, the weights for the drive and its dtype, the
    starting potentials and counts."""
    (thresh, w_t, v, counts), low = _layer_state(signed, w_felt, theta_mv, p)
    return (_lif_numbers(p, signed.device, signed.dtype), signed.abs() * p.p_max,
            (signed > 0).to(signed.dtype), thresh, w_t, low, v, counts)


def _layer_state(signed: torch.Tensor, w_felt: torch.Tensor, theta_mv: torch.Tensor,
                 p: DoGLIFParams) -> tuple[list, torch.dtype | None]:
    """One layer's part of :func:`_fused_tensors`: its thresholds, the weights for the
    drive, its starting potentials and counts, and the drive's dtype."""
    lif = p.lif
    m, k, dev = signed.shape[0], w_felt.shape[0], signed.device
    w_t, low = _drive_weights(w_felt, p)
    return [lif.v_thresh_mv + theta_mv, w_t, torch.full((m, k), lif.v_rest_mv, device=dev),
            torch.zeros(m, k, device=dev)], low


def _lif_numbers(p: DoGLIFParams, device, dtype) -> tuple[torch.Tensor, bool]:
    """:func:`_lif_counts`'s ``consts`` (decay, rest term, reset, inhibition) and ``inhibit``."""
    lif = p.lif
    decay = math.exp(-p.dt_ms / p.tau_mem_ms)
    return (torch.tensor([decay, lif.v_rest_mv * (1.0 - decay), lif.v_reset_mv, p.inhibition_mv],
                         dtype=dtype, device=device), bool(p.inhibition_mv))


def _fused_run(signed: torch.Tensor, w_felt: torch.Tensor, theta_mv: torch.Tensor,
               p: DoGLIFParams, rng: np.random.Generator) -> dict | None:
    """:func:`_layer_run` for features (no learning, no recording), each step's elementwise
    work compiled (:func:`_lif_counts`, and :func:`_input_spikes` for the bfloat16 drive):
    the same random numbers, drive and equations as the uncompiled loop, with fewer passes over
    memory (with the drive as a dense product in both: 1.4 times the speed of the
    uncompiled feature pass for 256 filters and 15 steps, 1.7 times for 512 and 30 steps on
    two CPU cores, ``benchmarks/dog_lif_speed.py``). The float32 drive is gathered from the
    weights of the inputs that fired (:func:`_gathered_drive`), faster than the dense
    product (``benchmarks/dog_lif_speed.py`` prints both). A spike can differ where a
    potential is rounded differently in its last bit.

    For each new shape, the compiled functions are first called once (:func:`_fused_ready`) with
    no random number drawn (which compiles them, or finds that this process cannot): None
    then, with the generator untouched, and the caller runs the uncompiled loop.
    """
    out = _fused_runs(signed, [(w_felt, theta_mv)], p, rng)
    return None if out is None else out[0]


def _fused_runs(signed: torch.Tensor, layers: list, p: DoGLIFParams,
                rng: np.random.Generator) -> list[dict] | None:
    """:func:`_fused_run` for several layers of the same shape at once, ``layers`` a list of
    ``(w_felt, theta_mv)``: every layer gets the same input spikes, drawn once per step, and
    with the gathered drive the inputs that fired are found once per step for all of them;
    each layer's jumps and LIF steps are its own, computed as :func:`_fused_run` computes
    them for it alone (so the same counts, bit for bit). Returns one dict per layer, or None
    as :func:`_fused_run` does."""
    for w_felt, theta_mv in layers:
        if not _fused_ready(signed, w_felt, theta_mv, p):
            return None
    dev = signed.device
    # the LIF numbers, spike probabilities, ON mask and drive dtype depend on p and the
    # input only: the first layer's serve all
    numbers, p_spike, on, thresh, w_t, low, v, counts = _fused_tensors(signed, *layers[0], p)
    states = [[thresh, w_t, v, counts]] + [_layer_state(signed, *layer, p)[0]
                                           for layer in layers[1:]]
    n_input_spikes = torch.zeros((), dtype=torch.float64, device=dev)
    gather = _gathers(p, dev)
    if gather:
        pair_input = _pair_input(signed)
        w_rows = [w_t.contiguous() for _, w_t, _, _ in states]
    regular = p.input_code == "regular"
    if regular:
        phases = _uniforms(signed, rng)
    ends, at_ends = p.window_ends, [[] for _ in states]
    for step in range(1, p.steps + 1):
        # the gathered drive takes which inputs fired; _INPUT_SPIKES takes numbers u that
        # are below p_spike where an input fires
        if regular:
            fired = _regular_fired(phases, p_spike, step)
            u = None if gather else (~fired).to(p_spike.dtype)  # p_spike > 0 where fired
        else:
            u = _uniforms(signed, rng)
            fired = u < p_spike if gather else None
        if gather:
            jumps, fired = _gathered_drive(fired, pair_input,
                                           w_rows[0] if len(states) == 1 else w_rows)
            jumps = [jumps] if len(states) == 1 else jumps
            n_input_spikes += fired
        else:
            s = _INPUT_SPIKES.fn(p_spike, on, u)
            n_input_spikes += s.sum(dtype=torch.float64)
            # a bfloat16 jump is added to the float32 potential exactly (its float32 value)
            jumps = [(s.to(low) if low is not None else s) @ w_t for _, w_t, _, _ in states]
        for state, jump in zip(states, jumps):
            state[2], state[3] = _LIF_COUNTS.fn(jump, state[2], state[3], state[0], *numbers)
        if step in ends:
            for kept, state in zip(at_ends, states):
                kept.append(state[3].clone())
    outs = [{"counts": counts, "input_spikes": float(n_input_spikes)}
            for _, _, _, counts in states]
    if ends:
        for out, kept in zip(outs, at_ends):
            out["window_counts"] = _window_counts(kept, out["counts"])
    return outs


def _window_counts(at_ends: list, counts: torch.Tensor) -> torch.Tensor:
    """Each time window's spike counts side by side, ``(M, W K)``, window by window, from the
    running counts at the end of every window but the last (``at_ends``) and the whole
    image's ``counts`` ``(M, K)``: :math:`c_w = C(t_w) - C(t_{w-1})` with :math:`C(t_0) = 0`
    and :math:`C(t_W)` the whole image's counts (whole numbers in float32: exact)."""
    ends = list(at_ends) + [counts]
    return torch.cat([ends[0]] + [b - a for a, b in zip(ends, ends[1:])], dim=1)


def _gathers(p: DoGLIFParams, device: torch.device) -> bool:
    """Whether a feature pass (:func:`_fused_run`, and :func:`_layer_run` without learning)
    gathers the drive (:func:`_gathered_drive`): the float32 drive on the CPU. On a GPU it
    keeps the dense product: the gather, which waits for the host at every step
    (``nonzero``), has not been measured there."""
    return p.drive_dtype == "float32" and device.type == "cpu"


def _pair_input(signed: torch.Tensor) -> torch.Tensor:
    """Which of its two inputs each input pair ``j`` of signed intensities ``(M, h)`` fires
    through: ON (``j``) where :math:`c > 0`, else OFF (``h + j``), as :func:`_input_spikes`
    splits them (an intensity of 0 never fires)."""
    h = signed.shape[1]
    return torch.arange(h, device=signed.device) + h * (signed <= 0).long()


def _gathered_drive(fired: torch.Tensor, pair_input: torch.Tensor,
                    w_rows) -> tuple:
    """The jumps :math:`J = s\\, w^T` of one step, summed over the inputs that fired only.

    .. math:: J_{mk} = \\sum_{i \\,:\\, s_{mi} = 1} w_{ki}

    ``fired`` ``(M, h)`` bool says whether the input pair ``j`` of position ``m`` fired
    (:func:`poisson_on_off`'s :math:`u < |c|\\, p_{max}`), ``pair_input`` ``(M, h)`` which of its
    two inputs that is (:func:`_pair_input`), and ``w_rows`` is :math:`w^T`
    ``(n_inputs, K)``, contiguous. The same spikes as :func:`_input_spikes` and the same sum as
    the product ``s @ w_rows``, in another order (so equal up to float32 rounding), but
    with the work of the inputs that fire (a few percent of them) instead of every input:
    ``torch.nn.functional.embedding_bag`` adds the rows of the fired inputs, one bag per
    position. Returns :math:`J` ``(M, K)`` and the number of input spikes. ``w_rows`` may also
    be a list of such matrices (layers fed the same spikes): the fired inputs are then found
    once, and a list of their jumps is returned.
    """
    rows, cols = fired.nonzero(as_tuple=True)  # row-major: each position's inputs in order
    per_row = torch.bincount(rows, minlength=fired.shape[0])
    offsets = torch.zeros_like(per_row)
    torch.cumsum(per_row[:-1], 0, out=offsets[1:])
    inputs = pair_input[rows, cols]
    if isinstance(w_rows, (list, tuple)):
        return [F.embedding_bag(inputs, w, offsets, mode="sum") for w in w_rows], len(rows)
    return F.embedding_bag(inputs, w_rows, offsets, mode="sum"), len(rows)


def keep_k_winners(counts: torch.Tensor, k: int) -> torch.Tensor:
    """The spike counts of the ``k`` neurons that fired most at each position, the others zeroed.

    .. math:: c'_{mj} = c_{mj}\\,[c_{mj} \\ge \\kappa_m]

    for counts :math:`c` ``(M, K)`` (M positions, K neurons, float or integer), with
    :math:`\\kappa_m` the k-th largest count at position m, counting repeats (for counts 3,
    3, 3, 1 and k = 2 it is 3). Ties with it are kept, so a position can keep more than ``k``
    neurons; a neuron that did not fire stays at 0. ``k`` 0 (or at least K): the counts
    themselves (the same tensor) are returned.
    """
    where = "dog_lif.keep_k_winners"
    if not torch.is_tensor(counts) or counts.dtype == torch.bool or counts.is_complex():
        raise TypeError(f"{where}: counts must be a tensor of numbers (M, K) (a numpy array: "
                        f"torch.from_numpy), got {type(counts).__name__}"
                        f"{' ' + str(counts.dtype) if torch.is_tensor(counts) else ''}")
    check.array("counts", counts, ndim=2, low=0.0, where=where)
    check.integer("k", k, low=0, where=where)
    return _keep_k_winners(counts, k)


def _keep_k_winners(counts: torch.Tensor, k: int) -> torch.Tensor:
    """:func:`keep_k_winners` without the checks (called for every batch)."""
    if k == 0 or k >= counts.shape[1]:
        return counts
    kth = counts.topk(k, dim=1).values[:, -1:]
    return counts.masked_fill(counts < kth, 0)


def _coded_counts(out: dict, p: DoGLIFParams) -> torch.Tensor:
    """What the features pool from a run of the layer (:func:`_layer_run`'s ``out``): each
    time window's counts, window after window (``window_counts``), or with one window the
    whole image's counts of the ``k_winners`` neurons that fired most at each position
    (:func:`keep_k_winners`; 0: every neuron's)."""
    return _keep_k_winners(out.get("window_counts", out["counts"]), p.k_winners)


def _pool(counts: torch.Tensor, n: int, side: int, pool: int) -> torch.Tensor:
    """``(n * side * side, K)`` counts to ``(n, K * pool * pool)``: sums over a pool x pool grid of regions."""
    c = counts.reshape(n, side, side, -1)
    edges = [(i * side) // pool for i in range(pool + 1)]
    cells = [c[:, edges[i]:edges[i + 1], edges[j]:edges[j + 1]].sum(dim=(1, 2))
             for i in range(pool) for j in range(pool)]
    return torch.stack(cells, dim=2).flatten(1)


class DoGLIF:
    """Tier 2: retina, Poisson spikes, an STDP-trained convolutional LIF layer, pooled spike counts.

    Example
    -------
    >>> net = DoGLIF(DoGLIFParams(n_filters=16, train_patches=2000), seed=0)
    >>> net.fit(train_images, progress=False)                      # doctest: +SKIP
    >>> feats = net.features(test_images, seed=1)["features"]    # (N, 16 * 9)  doctest: +SKIP
    """

    def __init__(self, params: DoGLIFParams = DoGLIFParams(), *, seed: int, learn: bool = True,
                 device: str = "cpu") -> None:
        where = "DoGLIF"
        check.instance("params", params, DoGLIFParams, where=where)
        check.integer("seed", seed, low=0, where=where)
        check.flag("learn", learn, where=where)
        check.instance("device", device, str, where=where)
        check.fits_in_memory(f"params.n_filters={params.n_filters} filters of {params.n_inputs} "
                             "weights",
                             3 * 4 * params.n_filters * params.n_inputs, where=where)
        self.params = params
        self.seed = seed
        self.learn = learn
        self.device = device
        g = torch.Generator().manual_seed(seed)  # on the CPU: the same weights on every device
        w = torch.rand(params.n_learned, params.n_inputs, generator=g)
        self.w_mv = _with_partners(normalize_weights(w, params.w_sum_mv), params).to(device)
        self.w_initial = self.w_mv.clone()
        self.theta_mv = torch.zeros(params.n_filters, device=device)
        self.retina: RetinaFit | None = None
        self.history: dict = {}

    def fit(self, images, *, progress: bool = True, retina: RetinaFit | None = None) -> dict:
        """Learn from random patches of ``images`` (uint8 ``(N, 32, 32, 3)``).

        ``retina``: a retina already fitted to the same images with the same
        seed (another network's ``.retina``), to skip fitting it again.

        Fits the retina on the first 2000 images (pass them in random order,
        not sorted by class, as :func:`run_tier` does), draws ``train_patches``
        positions at random (seeded) from all images, and shows them in
        batches of ``patch_batch``: STDP with winner-take-all and weight
        normalisation (only if this network was made with ``learn=True``),
        and threshold homeostasis (always). Returns the history: per batch,
        the fraction of patches without a winner, the spread of wins and
        of thresholds; ``wall_s`` (all of it, retina and whitening of every
        training image included) and ``learning_s`` / ``patches_per_s`` (the
        learning loop alone).
        """
        from ...progress import tqdm

        where = "DoGLIF.fit"
        p = self.params
        checked = _checked_images(images, "images", where)
        check.flag("progress", progress, where=where)
        check.instance("retina", retina, RetinaFit, none=True, where=where)
        if retina is not None:
            retina._check_params(p, where)
        h, n = p.n_inputs // 2, len(checked)
        per_image = -(-p.train_patches // n)  # ceil
        check.fits_in_memory(f"train_patches={p.train_patches} patches from {n} images",
                             4 * h * (n * per_image + p.train_patches + 500 * p.side ** 2),
                             where=where)
        start = time.perf_counter()
        self.retina = retina if retina is not None else RetinaFit.fit(images, p, seed=self.seed)
        g = torch.Generator().manual_seed(self.seed + 1)
        rng = np.random.default_rng([self.seed, 1])
        images = np.asarray(images)
        parts = []
        for first in range(0, len(images), 500):
            x = self.retina._intensities(_as_float(checked[first:first + 500]), p)  # (n, L, n_inputs)
            pos = torch.randint(0, x.shape[1], (len(x), per_image), generator=g)
            parts.append(x[torch.arange(len(x))[:, None], pos].reshape(-1, x.shape[-1]))
        patches = torch.cat(parts)
        patches = patches[torch.randperm(len(patches), generator=g)[:p.train_patches]].to(self.device)
        hist = {"no_winner": [], "wins_cv": [], "theta_mv": [], "w_change": []}
        learning_start = time.perf_counter()
        bar = tqdm(range(0, len(patches), p.patch_batch), disable=not progress, unit="batch",
                   desc="tier 2, STDP layer" if self.learn else "tier 2, thresholds (random weights)")
        for first in bar:
            step = self.learn_batch(patches[first:first + p.patch_batch], rng)
            for key, val in step.items():
                hist[key].append(val)
            if progress:
                bar.set_postfix(no_winner=f"{step['no_winner']:.2f}", refresh=False)
        self.history = {key: np.asarray(val) for key, val in hist.items()}
        self.history["learning_s"] = time.perf_counter() - learning_start
        self.history["wall_s"] = time.perf_counter() - start
        self.history["patches_per_s"] = len(patches) / self.history["learning_s"]
        return self.history

    def learn_batch(self, patches: torch.Tensor, rng: np.random.Generator) -> dict:
        """Show a batch of patches (signed intensities ``(M, n_inputs // 2)``) once and learn.

        STDP under winner-take-all (:func:`layer_run` with ``learn=True``),
        the summed change added to the weights (clipped to ``[0, w_sum_mv]``)
        and each neuron's weights normalised to ``w_sum_mv`` (only when
        ``learn``), then the homeostatic threshold step. Returns this batch's
        ``no_winner`` fraction, ``wins_cv`` (spread of the wins over neurons),
        ``theta_mv`` (min, max) and ``w_change`` (mean L1 change of a neuron's weights).
        With ``opposite_phase`` only the learned half runs, competes and adapts (``K`` in
        the homeostasis step is ``n_learned``), and the partners then copy it.
        """
        p = self.params
        k = p.n_learned  # the neurons that compete and learn (the partners copy them)
        where = "DoGLIF.learn_batch"
        _signed_intensities("patches", patches, where, ndim=2)
        if patches.shape[1] != p.n_inputs // 2:
            raise ValueError(f"{where}: patches must be (M, {p.n_inputs // 2}), got "
                             f"{tuple(patches.shape)}")
        check.instance("rng", rng, np.random.Generator, where=where)
        w, theta = self.w_mv[:k], self.theta_mv[:k].clone()
        out = _layer_run(patches, w, theta, p, rng, learn=True)
        wins = torch.bincount(out["winner"][out["winner"] >= 0], minlength=k).float()
        change = 0.0
        if self.learn:
            bounded = (w + out["dw"]).clamp_(p.stdp.w_min, p.stdp.w_max)
            new = normalize_weights(bounded, p.w_sum_mv)
            change = float((new - w).abs().sum(1).mean())
            w = new
        theta += p.theta_eta_mv * (k * wins / len(patches) - 1.0)
        # a threshold at least 10% of the gap above rest: no neuron fires without input
        theta.clamp_(min=-0.9 * p.v_gap_mv)
        self.w_mv = _with_partners(w, p)
        self.theta_mv = theta.repeat(2) if p.opposite_phase else theta
        return {"no_winner": float((out["winner"] < 0).float().mean()),
                # one neuron: no spread (torch's std of one value is NaN)
                "wins_cv": float(wins.std() / wins.mean().clamp_min(1e-9)) if k > 1 else 0.0,
                "theta_mv": (float(self.theta_mv.min()), float(self.theta_mv.max())),
                "w_change": change}

    def _check_fitted(self) -> None:
        if self.retina is None:
            raise RuntimeError("this network has no retina yet: call fit() (or load_state_dict) first.")

    def features(self, images, *, seed: int, progress: bool = True, checkpoint: str | os.PathLike | None = None,
                 part_images: int = 2000, desc: str = "tier 2, features") -> dict:
        """Pooled spike counts ``(N, n_features)`` of ``images`` (learning off): at each
        position every neuron's count, or with ``params.k_winners`` > 0 only those of the
        neurons that fired most (ties with the k-th count kept, :func:`keep_k_winners`),
        summed over the ``pool x pool`` regions; with ``params.time_windows`` > 1, the counts
        of each time window so pooled, window after window.

        With ``checkpoint`` (a directory), the counts are saved every
        ``part_images`` images and an interrupted call resumes where it
        stopped; each part draws its spikes from a generator seeded with the
        network's seed, ``seed`` and the part's first image, and uses it for
        its images in order, so the result does not depend on the
        interruption (it does depend on ``part_images`` and
        ``params.image_batch``: the same values give the same numbers).

        Returns a dict: ``features``; ``filter_spikes`` ``(N, n_filters)``, each filter's
        spikes in each image summed over its positions (every spike, also those that
        ``k_winners`` leaves out of the features); ``wall_s`` and ``images_per_s`` over all
        parts whose time is known (a part stores its own time), ``computed_images``
        and ``computed_wall_s`` for the parts computed in this call;
        ``synaptic_ops_per_image`` (input spikes x ``n_filters``) and
        ``layer_spikes_per_image``.
        """
        check.instance("checkpoint", checkpoint, (str, os.PathLike), none=True,
                       where="DoGLIF.features")
        return _features_together([self], images, seed=seed, progress=progress,
                                  checkpoints=[checkpoint], part_images=part_images, desc=desc,
                                  where="DoGLIF.features")[0]

    def _part_key(self, images: np.ndarray, seed: int, first: int) -> str:
        """Everything a part of the features depends on: the network, its retina, every image
        of the part, the seeds and where the part starts."""
        return runs.cache_key(self.params, self.seed, seed, self.learn, first, self.w_mv,
                              self.theta_mv, self.retina.state_dict(), images,
                              version=FEATURES_VERSION)

    def spikes_of_image(self, image, *, seed: int, positions=None,
                        params: DoGLIFParams | None = None) -> dict:
        """One image through the layer, every step recorded (for rasters and membrane traces).

        Returns :func:`layer_run`'s dict with ``input_trains`` ``(T, L, n_inputs)``,
        ``trains`` and ``v_mem`` ``(T, L, K)`` for the positions ``positions``
        (default: all ``side * side``). ``params`` may change the encoding and
        the neurons (rate, time constant, inhibition, steps) to explore them;
        the retina, the patch and the number of filters must stay those of
        this network.
        """
        where = "DoGLIF.spikes_of_image"
        self._check_fitted()
        check.instance("params", params, DoGLIFParams, none=True, where=where)
        check.integer("seed", seed, low=0, where=where)
        p = self.params if params is None else params
        if (p.retina, p.patch_px, p.n_filters, p.downsample) != (
                self.params.retina, self.params.patch_px, self.params.n_filters,
                self.params.downsample):
            raise ValueError(f"{where}: params may not change the retina, patch_px, n_filters "
                             "or downsample of a trained network.")
        one = image if torch.is_tensor(image) else np.asarray(image)
        if tuple(one.shape) != (IMAGE_PX, IMAGE_PX, 3):
            raise ValueError(f"{where}: image must be one (32, 32, 3) RGB image, got shape "
                             f"{tuple(one.shape)}")
        x = self.retina._intensities(_float_images(one[None], "image", where), self.params)[0].to(
            self.device)
        if positions is not None:
            pos = np.asarray(check.array("positions", positions, ndim=1, where=where))
            if pos.dtype.kind not in "iu":
                raise TypeError(f"{where}: positions must be integer indices, got dtype "
                                f"{pos.dtype}")
            if int(pos.min()) < 0 or int(pos.max()) >= len(x):
                raise ValueError(f"{where}: positions must be in [0, {len(x) - 1}] (the "
                                 f"{self.params.side} x {self.params.side} positions), got "
                                 f"{int(pos.min())} to {int(pos.max())}")
            x = x[torch.as_tensor(positions)]
        rng = np.random.default_rng(seed)
        _layer_checks(x, self.w_mv, self.theta_mv, p, rng, False, True, where)
        out = _layer_run(x, self.w_mv, self.theta_mv, p, rng, record=True)
        return {k: v.cpu() if torch.is_tensor(v) else v for k, v in out.items()}  # for figures

    def state_dict(self) -> dict:
        self._check_fitted()
        return {"w_mv": self.w_mv.cpu().numpy(), "w_initial": self.w_initial.cpu().numpy(),
                "theta_mv": self.theta_mv.cpu().numpy(), "learn": np.array(self.learn),
                "seed": np.array(self.seed),
                **{f"retina_{k}": v for k, v in self.retina.state_dict().items()},
                **{f"history_{k}": np.asarray(v) for k, v in self.history.items()}}

    def load_state_dict(self, s) -> None:
        where = "DoGLIF.load_state_dict"
        p = self.params
        if not hasattr(s, "keys") or not hasattr(s, "__getitem__"):
            raise TypeError(f"{where}: s must be a dict of arrays (state_dict gives one), got "
                            f"{type(s).__name__}")
        missing = [k for k in ("w_mv", "w_initial", "theta_mv", "learn", "retina_retina",
                               "retina_scale") if k not in s]
        if missing:
            raise ValueError(f"{where}: s lacks {missing} (it must come from state_dict)")
        for key in ("w_mv", "w_initial"):
            check.array(f"s[{key!r}]", np.asarray(s[key]), shape=(p.n_filters, p.n_inputs),
                        where=where)
        check.array("s['theta_mv']", np.asarray(s["theta_mv"]), shape=(p.n_filters,), where=where)
        retina = RetinaFit.from_state({k[len("retina_"):]: s[k] for k in s
                                       if k.startswith("retina_")})
        retina._check_params(p, where)
        self.w_mv = torch.from_numpy(np.asarray(s["w_mv"]).copy()).to(self.device)
        self.w_initial = torch.from_numpy(np.asarray(s["w_initial"]).copy()).to(self.device)
        self.theta_mv = torch.from_numpy(np.asarray(s["theta_mv"]).copy()).to(self.device)
        self.learn = bool(s["learn"])
        self.retina = retina
        self.history = {k[len("history_"):]: s[k] for k in s if k.startswith("history_")}


def spike_statistics(filter_spikes: np.ndarray, p: DoGLIFParams) -> dict:
    """Firing of the layer from each filter's spikes per image ``(images, n_filters)``
    (summed over its positions: :meth:`DoGLIF.features`' ``filter_spikes``).

    ``rate_hz``: mean rate of a neuron (one filter at one position);
    ``spikes_per_image``: the layer's spikes per image; ``silent_filters``:
    fraction of filters that never fired in any image;
    ``filter_rate_hz_percentiles``: 5th, 50th and 95th percentiles of the
    filters' mean rates.
    """
    where = "dog_lif.spike_statistics"
    check.instance("p", p, DoGLIFParams, where=where)
    check.array("filter_spikes", filter_spikes, shape=(None, p.n_filters), low=0.0, where=where)
    per_filter = np.asarray(filter_spikes)
    duration_s = p.steps * p.dt_ms / 1000.0
    rate = per_filter.mean(axis=0) / (p.side ** 2) / duration_s
    return {"rate_hz": float(rate.mean()),
            "spikes_per_image": float(per_filter.sum(axis=1).mean()),
            "silent_filters": float((per_filter.sum(axis=0) == 0).mean()),
            "filter_rate_hz_percentiles": [float(v) for v in np.percentile(rate, [5, 50, 95])]}


def features_together(nets, images, *, seed: int, progress: bool = True, checkpoints=None,
                      part_images: int = 2000, desc: str = "tier 2, features") -> list[dict]:
    """:meth:`DoGLIF.features` of several fitted networks on the same ``images``: one dict per
    network, each equal to what its own ``features`` call returns.

    Networks made with the same parameters, seed and device and with equal retinas (a layer
    and its random-weight twin, say) get the same input spikes from the same random numbers;
    they are simulated together (:func:`_fused_runs`), so that those numbers are drawn, and
    the inputs that fired found, once per step for all of them. If any network's input
    differs from the first's, every network is computed on its own, one after another.
    ``checkpoints``: one folder (or None) per network, as :meth:`DoGLIF.features`'
    ``checkpoint``; a part saved for one network is loaded and only the others compute it.
    A part computed together charges each network an equal share of its time, and stores
    that share as the part's time (``computed_wall_s`` summed over the networks is the time
    this call took to compute them; ``wall_s`` also counts the times of loaded parts).
    """
    return _features_together(nets, images, seed=seed, progress=progress,
                              checkpoints=checkpoints, part_images=part_images, desc=desc,
                              where="dog_lif.features_together")


def _features_together(nets, images, *, seed: int, progress: bool, checkpoints,
                       part_images: int, desc: str, where: str) -> list[dict]:
    """:func:`features_together`, its errors naming ``where``."""
    from ...progress import tqdm

    if not isinstance(nets, (list, tuple)):
        raise TypeError(f"{where}: nets must be a list of DoGLIF networks, got "
                        f"{type(nets).__name__}")
    nets = list(nets)
    if not nets:
        raise ValueError(f"{where}: nets must hold at least one DoGLIF network, got none")
    for i, net in enumerate(nets):
        if not isinstance(net, DoGLIF):
            raise TypeError(f"{where}: nets[{i}] must be a DoGLIF network, got "
                            f"{type(net).__name__}")
    for net in nets:
        net._check_fitted()
    checked = _checked_images(images, "images", where)
    check.integer("seed", seed, low=0, where=where)
    check.flag("progress", progress, where=where)
    if checkpoints is not None and (isinstance(checkpoints, (str, os.PathLike))
                                    or not isinstance(checkpoints, (list, tuple))):
        raise TypeError(f"{where}: checkpoints must be a list of one folder (or None) per "
                        f"network, got {type(checkpoints).__name__}")
    checkpoints = [None] * len(nets) if checkpoints is None else list(checkpoints)
    if len(checkpoints) != len(nets):
        raise ValueError(f"{where}: checkpoints must give one folder (or None) per network: "
                         f"{len(checkpoints)} for {len(nets)} networks")
    for i, c in enumerate(checkpoints):
        check.instance(f"checkpoints[{i}]", c, (str, os.PathLike), none=True, where=where)
    check.positive_int("part_images", part_images, where=where)
    check.instance("desc", desc, str, where=where)
    if len(nets) > 1 and not all(_same_input(nets[0], n) for n in nets[1:]):
        return [_features_together([n], images, seed=seed, progress=progress, checkpoints=[c],
                                   part_images=part_images, desc=desc, where=where)[0]
                for n, c in zip(nets, checkpoints)]
    net0, p = nets[0], nets[0].params
    m = min(p.image_batch, len(checked)) * p.side ** 2
    check.fits_in_memory(
        f"features of {len(checked)} images in batches of image_batch={p.image_batch}"
        + (f" for {len(nets)} networks at once" if len(nets) > 1 else ""),
        len(nets) * (4 * len(checked) * (p.n_features + p.n_filters + 2)
                     + 4 * m * (p.n_inputs + (4 + 2 * p.time_windows) * p.n_filters)),
        where=where)
    images = np.asarray(images)
    n = len(images)
    folders = [Path(c) if c is not None else None for c in checkpoints]
    feats = [np.zeros((n, p.n_features), dtype=np.float32) for _ in nets]
    filters = [np.zeros((n, p.n_filters), dtype=np.float32) for _ in nets]
    input_spikes = [np.zeros(n) for _ in nets]  # per image (the layer's spikes: filters.sum(1))
    computed, wall = [0] * len(nets), [0.0] * len(nets)
    timed_images, timed_wall = [0] * len(nets), [0.0] * len(nets)
    # compiles (seconds, once per process) at this call's sizes before any clock starts
    if m:
        _fused_ready(torch.zeros(m, p.n_inputs // 2, device=net0.device),
                     _felt(net0.w_mv, p), net0.theta_mv, p)
    bar = tqdm(total=n, disable=not progress, unit="img", desc=desc)
    for first in range(0, n, part_images):
        last = min(n, first + part_images)
        todo, saving = [], {}
        for i, (net, folder) in enumerate(zip(nets, folders)):
            path = folder / f"part_{first:06d}_{last:06d}.npz" if folder is not None else None
            key = net._part_key(images[first:last], seed, first) if path is not None else None
            saved = runs.cached_npz(path, key) if path is not None else None
            if saved is None:
                todo.append(i)
                saving[i] = (path, key)
                continue
            feats[i][first:last] = saved["features"]
            input_spikes[i][first:last] = saved["input_spikes"]
            filters[i][first:last] = saved["filter_spikes"]
            timed_images[i] += last - first
            timed_wall[i] += float(saved["wall_s"])
        if todo:
            start = time.perf_counter()
            rng = np.random.default_rng([net0.seed, seed, first])
            layers = [(nets[i].w_mv, nets[i].theta_mv) for i in todo]
            for b in range(first, last, p.image_batch):
                e = min(last, b + p.image_batch)
                x = net0.retina._intensities(_as_float(checked[b:e]), p).to(net0.device)
                outs = _features_runs(x.reshape(-1, x.shape[-1]), layers, p, rng)
                for i, out in zip(todo, outs):
                    feats[i][b:e] = _pool(_coded_counts(out, p), e - b, p.side,
                                          p.pool).cpu().numpy()
                    filters[i][b:e] = (out["counts"].reshape(e - b, -1, p.n_filters).sum(1)
                                       .cpu().numpy())
                    # batch mean (the batch is small)
                    input_spikes[i][b:e] = out["input_spikes"] / (e - b)
                bar.update(e - b)
            share = (time.perf_counter() - start) / len(todo)
            for i in todo:
                wall[i] += share
                computed[i] += last - first
                timed_images[i] += last - first
                timed_wall[i] += share
                path, key = saving[i]
                if path is not None:
                    runs.save_npz(path, key=np.array(key), features=feats[i][first:last],
                                  filter_spikes=filters[i][first:last],
                                  input_spikes=input_spikes[i][first:last],
                                  wall_s=np.array(share))
        if not todo:
            bar.update(last - first)
    bar.close()
    return [{"features": feats[i], "filter_spikes": filters[i],
             "wall_s": timed_wall[i], "computed_images": computed[i],
             "computed_wall_s": wall[i],
             "images_per_s": timed_images[i] / timed_wall[i] if timed_wall[i] else float("nan"),
             "synaptic_ops_per_image": float(input_spikes[i].mean() * p.n_filters),
             "layer_spikes_per_image": float(filters[i].sum(1).mean())}
            for i in range(len(nets))]


def _same_input(a: DoGLIF, b: DoGLIF) -> bool:
    """Whether ``a`` and ``b`` turn images into the same input spikes (the same parameters,
    seed, device and retina), so that :func:`features_together` can simulate them together."""
    if a.params != b.params or a.seed != b.seed or a.device != b.device:
        return False
    if a.retina is b.retina:
        return True
    sa, sb = a.retina.state_dict(), b.retina.state_dict()  # numpy arrays and numbers
    return sa.keys() == sb.keys() and all(np.array_equal(np.asarray(sa[k]), np.asarray(sb[k]))
                                          for k in sa)


def _features_runs(signed: torch.Tensor, layers: list, p: DoGLIFParams,
                   rng: np.random.Generator) -> list[dict]:
    """:func:`_layer_run` (features: no learning, no recording) of each ``(w_mv, theta_mv)`` of
    ``layers`` on the same input spikes: together where the steps compile
    (:func:`_fused_runs`), else one after another from copies of the generator's state (the
    same draws), which is left where the last layer left it."""
    felt = [(_felt(w, p), theta) for w, theta in layers]
    out = _fused_runs(signed, felt, p, rng)
    if out is not None:
        return out
    if len(layers) == 1:
        return [_layer_run(signed, *layers[0], p, rng)]
    outs, state = [], copy.deepcopy(rng.bit_generator.state)
    for w, theta in layers:
        rng.bit_generator.state = copy.deepcopy(state)
        outs.append(_layer_run(signed, w, theta, p, rng))
    return outs

