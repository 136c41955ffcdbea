"""Tier 1, the hidden layers: a retina, then two convolutional layers of LIF neurons that learn by STDP (Brian2).

The network, as Brian2 simulates it (every spiking layer is a Brian2 group):

1. **Retina** (:class:`Retina`, fixed): the grayscale image is filtered by a
   centre-surround whitening kernel fitted on training patches
   (:func:`snnlib.retina.whitening_kernel`), divided by its local contrast
   (:func:`snnlib.retina.local_contrast_normalise`) and split into ON and OFF
   channels. The ``2 x 32 x 32`` intensities set the rates of Poisson input
   neurons (``intensity x max_rate_hz``): one spike train per ON or OFF pixel.
2. **Layer 1**: at each of the ``28 x 28`` positions, ``K1`` LIF neurons whose
   receptive field is the ``5 x 5 x 2`` ON/OFF inputs there. The ``K1``
   neurons of a position inhibit each other at once (a spike lowers the others'
   potential by ``inhibition_mv`` in the same time step), and each neuron has a
   threshold offset :math:`\\theta_k` set by homeostasis. The weights are the
   same at every position (a convolution): a computational shortcut, see
   below.
3. **Complex cells**: a pooling neuron per ``2 x 2`` block of positions and
   filter fires (one step later) whenever any of its four layer-1 neurons
   does: ``14 x 14 x K1`` of them.
4. **Layer 2**: at each of the ``12 x 12`` positions, ``K2`` LIF neurons whose
   field is the ``3 x 3 x K1`` complex cells there, with the same
   competition, and feed-forward inhibition (``feedforward_inhibition`` 1):
   each input spike also lowers the potential by the mean weight, so the
   neurons integrate how far their input matches their field more than how
   much input there is.

The neurons are current-based LIF neurons with instantaneous synapses
(:func:`snnlib.neurons.lif_delta_step`): each input spike moves the potential
by its weight (mV), and between spikes

.. math:: \\tau_m \\frac{dv}{dt} = v_{rest} - v, \\qquad
          \\text{spike when } v > v_{th} + \\theta_k, \\text{ then } v \\leftarrow v_{reset}.

**Learning** (unsupervised, one layer at a time, :class:`ConvLearner`): many
copies of one position of a layer run side by side in one Brian2 network,
each copy seeing another patch (another image and place). Within a copy the
first neuron to fire wins: its spike holds every other neuron of the copy
at reset for the rest of the presentation (a hard winner-take-all), and only
the winner's spikes drive pair STDP (the eligibility of
:func:`snnlib.plasticity.build_rstdp_synapses`, with a constant reward: plain
STDP, summed). (``ConvLayerParams.learning_winners`` m > 1 makes it a
k-winners-take-all: once m neurons of a copy have fired the others may not, and
every neuron that fired learns; the tier uses m = 1.) The changes of all copies are summed into the shared filter,
which is clipped to ``[0, w_sum_mv]`` and rescaled to sum to ``w_sum_mv``
(Masquelier & Thorpe 2007; Kheradpisheh et al. 2018). The thresholds adapt so
that every neuron wins equally often and a fraction ``win_target`` of the
patches has a winner (homeostasis):

.. math:: \\theta_k \\leftarrow \\theta_k + \\eta_\\theta \\left(K\\, \\frac{w_k}{n} - f\\right).

**Weight sharing** is a computational shortcut: the brain has no mechanism
that copies a synapse from one place to another. What sharing buys is that
every position learns from every patch; a brain could approximate it with
many more patches and neurons (each position learning its own copy from the
same statistics) or with slow eye movements that show each patch to many
positions (Földiák 1991 proposed a trace rule of this kind).

References
----------
Masquelier, T. & Thorpe, S. J. (2007). Unsupervised learning of visual
features through spike timing dependent plasticity. *PLoS Comput. Biol.* 3, e31.
Kheradpisheh, S. R. et al. (2018). STDP-based spiking deep convolutional
neural networks for object recognition. *Neural Networks* 99, 56-67.
Falez, P., Tirilly, P. & Bilasco, I. M. (2019). Multi-layered spiking neural
network with target timestamp threshold adaptation and STDP. *IJCNN*.
Atick, J. J. & Redlich, A. N. (1992). What does the retina know about natural
scenes? *Neural Computation* 4, 196-210.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ... import _validate as check
from ... import retina as R
from ...neurons import LIFParams, _named_clock, _seed_brian2, connect_brian2, run_brian2

__all__ = ["ConvLayerParams", "ConvLearner", "drive_brightness_correlation", "features",
           "FrozenLayers", "IMAGE_PX", "initial_layer", "layer2_patches", "pool_counts",
           "pool_grids", "pool_pyramid", "Retina", "RetinaParams", "spike_statistics",
           "stack_patches", "Tier1Params", "train_layers", "volley_fraction", "weights_moved"]

IMAGE_PX = 32


@dataclass(frozen=True)
class RetinaParams:
    """The fixed front end (fitted once on training images, never learned).

    Attributes
    ----------
    kernel_px : int
        Side of the whitening kernel (odd).
    zca_eps : float
        Regularisation of the whitening fit.
    lcn_sigma_px : float
        Width of the local-contrast neighbourhood.
    scale_quantile : float
        Responses are divided by this quantile of the training images'
        absolute responses, then clipped to [-1, 1].
    fit_images : int
        Training images the kernel, the contrast constant and the scale are fitted on.
    """

    kernel_px: int = 7
    zca_eps: float = 0.01
    lcn_sigma_px: float = 2.0
    scale_quantile: float = 0.99
    fit_images: int = 2000

    def __post_init__(self) -> None:
        k = self.kernel_px
        if isinstance(k, bool) or not isinstance(k, int) or k < 3 or k % 2 == 0:
            kind = TypeError if not isinstance(k, (int, float)) else ValueError
            raise kind(f"RetinaParams.kernel_px must be an odd integer >= 3, got "
                       f"{type(k).__name__} {k!r}.")
        for name in ("zca_eps", "lcn_sigma_px"):
            check.finite_number(f"RetinaParams.{name}", getattr(self, name), above=0)
        check.number("RetinaParams.scale_quantile", self.scale_quantile, low=0.5, high=1.0)
        check.positive_int("RetinaParams.fit_images", self.fit_images)


@dataclass(frozen=True)
class ConvLayerParams:
    """One convolutional layer of LIF neurons and how it learns.

    Attributes
    ----------
    n_filters : int
        Neurons per position (``K``).
    field_px : int
        Side of a neuron's receptive field, in its input's positions.
    w_sum_mv : float
        Sum of each neuron's input weights (mV).
    tau_mem_ms, v_gap_mv : float
        Membrane time constant; threshold minus rest (= reset).
    inhibition_mv : float
        How far a spike lowers the potential of the other neurons of its
        position (with learning off).
    a_plus, a_minus : float
        STDP amplitudes (mV per pairing); ``tau_stdp_ms`` the traces' time constant.
    theta_eta_mv : float
        Homeostasis step :math:`\\eta_\\theta`.
    win_target : float
        Fraction of patches that should have a winner (homeostasis target ``f``).
    train_patches : int
        Patches the layer learns from (one pass).
    patch_batch : int
        Copies (patches) simulated at once; their changes are summed.
    feedforward_inhibition : float
        Feed-forward inhibition, as a fraction :math:`\\alpha` (0 to 2) of the
        mean weight: every input spike also lowers the potential of each neuron
        whose field contains it by :math:`\\alpha\\, w_{sum} / n_{in}` (an
        inhibitory interneuron that relays the same input); a potential may then
        fall below rest and decays back. The neurons then integrate
        :math:`\\sum_i (w_{ki} - \\alpha \\bar w)\\, s_i`: what a field
        matches, less how much input it has. 0: none; 1: zero-mean effective
        weights.
    """

    n_filters: int = 32
    field_px: int = 5
    w_sum_mv: float = 9.0
    tau_mem_ms: float = 10.0
    v_gap_mv: float = 13.0
    inhibition_mv: float = 13.0
    a_plus: float = 0.026
    a_minus: float = 0.0
    tau_stdp_ms: float = 10.0
    theta_eta_mv: float = 0.65
    win_target: float = 0.75
    train_patches: int = 20000
    patch_batch: int = 500
    feedforward_inhibition: float = 0.0
    learning_winners: int = 1

    def __post_init__(self) -> None:
        for name in ("n_filters", "field_px", "train_patches", "patch_batch", "learning_winners"):
            check.positive_int(f"ConvLayerParams.{name}", getattr(self, name))
        for name in ("w_sum_mv", "tau_mem_ms", "v_gap_mv", "tau_stdp_ms"):
            check.finite_number(f"ConvLayerParams.{name}", getattr(self, name), above=0)
        for name in ("inhibition_mv", "a_plus", "a_minus", "theta_eta_mv"):
            check.finite_number(f"ConvLayerParams.{name}", getattr(self, name), at_least=0)
        check.number("ConvLayerParams.feedforward_inhibition", self.feedforward_inhibition,
                     low=0.0, high=2.0)
        check.number("ConvLayerParams.win_target", self.win_target, low=0.0, low_open=True,
                     high=1.0)
        if self.learning_winners > self.n_filters:
            raise ValueError(f"ConvLayerParams.learning_winners ({self.learning_winners}) exceeds "
                             f"n_filters ({self.n_filters}): at most every neuron can win.")


@dataclass(frozen=True)
class Tier1Params:
    """The hidden layers of tier 1 (units in the names; validated on construction).

    Attributes
    ----------
    retina : RetinaParams
    layer1, layer2 : ConvLayerParams
        Layer 2's ``field_px`` counts complex cells (``pool_px`` layer-1 positions each).
    pool_px : int
        Side of the complex cells' pooling blocks.
    pool_refractory_steps : int
        Steps after the step of a complex cell's spike during which it ignores its
        inputs. With 0 it may fire every other step (an input that arrives in the
        step of a spike is cleared by the reset); with ``r`` at most once every
        ``r + 2`` steps. A refractory complex cell saturates: its rate grows with
        its inputs' up to that and no further, so a few strong layer-1 responses
        weigh less in layer 2's drive (a compressive nonlinearity, as the square
        root of ``features_sqrt`` is for the readouts).
    max_rate_hz : float
        Rate of an input of intensity 1.
    steps, dt_ms : int, float
        Time steps of ``dt_ms`` per presentation while the layers learn (a patch,
        or an image through layer 1 for layer 2's patches; layer 1's alone when
        ``steps2`` is set).
    feature_steps : int or None
        Time steps per image when the frozen layers make the readouts' features
        (None: ``steps``). A longer look gives more spikes, so less Poisson
        noise in the counts.
    steps2 : int or None
        Time steps per presentation while layer 2 learns (the images through
        layer 1 that make its patches, and the patches themselves); None: ``steps``.
    v_rest_mv : float
        Rest and reset potential.
    features_pool : tuple of two (int or tuple of int)
        The spike counts the readouts see: layer 1's summed over a
        ``features_pool[0]`` square grid of image regions, layer 2's over a
        ``features_pool[1]`` grid. A tuple of grids is a spatial pyramid: the
        counts summed over each grid, side by side (``(1, 2, 3)``: the whole
        image, its quadrants and a 3 x 3 grid; :func:`pool_pyramid`).
    features_sqrt : bool
        The readouts see the square roots of the pooled counts. A count's Poisson
        noise grows as its square root, so the root gives every feature about the
        same noise (a variance-stabilising transform), whatever its rate.
    codegen_target : {"cython", "numpy"}
        Brian2's code generation (numpy needs no compiler).
    """

    retina: RetinaParams = field(default_factory=RetinaParams)
    layer1: ConvLayerParams = field(default_factory=ConvLayerParams)
    layer2: ConvLayerParams = field(default_factory=lambda: ConvLayerParams(
        n_filters=64, field_px=3, w_sum_mv=150.0, feedforward_inhibition=1.0,
        train_patches=20000, patch_batch=250))
    pool_px: int = 2
    pool_refractory_steps: int = 0
    max_rate_hz: float = 300.0
    steps: int = 15
    dt_ms: float = 2.0
    feature_steps: int | None = None
    steps2: int | None = None
    v_rest_mv: float = -65.0
    features_pool: tuple[int | tuple[int, ...], int | tuple[int, ...]] = (3, (1, 2, 3))
    features_sqrt: bool = True
    codegen_target: Literal["cython", "numpy"] = "cython"

    def __post_init__(self) -> None:
        check.instance("Tier1Params.retina", self.retina, RetinaParams)
        for name in ("layer1", "layer2"):
            check.instance(f"Tier1Params.{name}", getattr(self, name), ConvLayerParams)
        for name in ("pool_px", "steps"):
            check.positive_int(f"Tier1Params.{name}", getattr(self, name))
        check.integer("Tier1Params.pool_refractory_steps", self.pool_refractory_steps, low=0)
        for name in ("feature_steps", "steps2"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 1):
                raise ValueError(f"Tier1Params.{name} must be a positive integer or None, "
                                 f"got {value!r}.")
        for name in ("max_rate_hz", "dt_ms"):
            check.finite_number(f"Tier1Params.{name}", getattr(self, name), above=0)
        check.finite_number("Tier1Params.v_rest_mv", self.v_rest_mv)
        fp = self.features_pool
        if isinstance(fp, (str, bytes)) or not isinstance(fp, (tuple, list)):
            raise TypeError(f"Tier1Params.features_pool must be a tuple of two grid sizes, got "
                            f"{type(fp).__name__} {fp!r}.")
        if self.p_max > 1:
            raise ValueError(f"max_rate_hz={self.max_rate_hz} x dt_ms={self.dt_ms} is more than one "
                             "spike per step; lower the rate or the step.")
        if self.side1 % self.pool_px:
            raise ValueError(f"pool_px={self.pool_px} does not divide layer 1's {self.side1} "
                             "positions per side.")
        if self.side2 < 1:
            raise ValueError(f"layer 2's field ({self.layer2.field_px}) is wider than the "
                             f"{self.side1 // self.pool_px} complex cells per side.")
        if len(fp) != 2 or not all(
                _grids_ok(g, side) for g, side in zip(fp, (self.side1, self.side2))):
            raise ValueError(f"Tier1Params.features_pool must be two grid sizes (or tuples of "
                             f"grid sizes) that fit the layers ({self.side1}, {self.side2}), got "
                             f"{fp!r}.")
        if not isinstance(self.features_sqrt, bool):
            raise TypeError(f"Tier1Params.features_sqrt must be True or False, got "
                            f"{type(self.features_sqrt).__name__} {self.features_sqrt!r}.")
        if self.codegen_target not in ("cython", "numpy"):
            raise ValueError(f"Tier1Params.codegen_target must be 'cython' or 'numpy', got "
                             f"{self.codegen_target!r}.")

    @property
    def p_max(self) -> float:
        """Spike probability per step of an input of intensity 1."""
        return self.max_rate_hz * self.dt_ms / 1000.0

    @property
    def steps_frozen(self) -> int:
        """Time steps per image of the readouts' features (``feature_steps`` or ``steps``)."""
        return self.feature_steps if self.feature_steps is not None else self.steps

    def learning_steps(self, layer: int) -> int:
        """Time steps per presentation while layer ``layer`` learns (``steps``, or ``steps2``
        for layer 2 where set)."""
        return self.steps2 if layer == 2 and self.steps2 is not None else self.steps

    @property
    def side1(self) -> int:
        """Layer-1 positions per side."""
        return IMAGE_PX - self.layer1.field_px + 1

    @property
    def side_pool(self) -> int:
        """Complex cells per side."""
        return self.side1 // self.pool_px

    @property
    def side2(self) -> int:
        """Layer-2 positions per side."""
        return self.side_pool - self.layer2.field_px + 1

    @property
    def inputs1(self) -> int:
        """Inputs of a layer-1 neuron: ON and OFF of ``field_px**2`` pixels."""
        return 2 * self.layer1.field_px ** 2

    @property
    def inputs2(self) -> int:
        """Inputs of a layer-2 neuron: ``K1 x field_px**2`` complex cells."""
        return self.layer1.n_filters * self.layer2.field_px ** 2

    @property
    def n_features(self) -> int:
        """Spike counts per image the readouts see (both layers, pooled)."""
        return sum(lp.n_filters * sum(g ** 2 for g in pool_grids(grids))
                   for lp, grids in zip((self.layer1, self.layer2), self.features_pool))

    def ffi_mv(self, layer: int) -> float:
        """Layer ``layer``'s feed-forward inhibition per input spike (mV):
        :math:`\\alpha\\, w_{sum} / n_{in}` (``feedforward_inhibition``)."""
        lp = self.layer1 if layer == 1 else self.layer2
        return lp.feedforward_inhibition * lp.w_sum_mv / (self.inputs1 if layer == 1 else
                                                          self.inputs2)

    def lif(self, layer: ConvLayerParams) -> LIFParams:
        """A layer's neurons as :class:`snnlib.neurons.LIFParams` (rest = reset)."""
        return LIFParams(tau_mem_ms=layer.tau_mem_ms, v_rest_mv=self.v_rest_mv,
                         v_reset_mv=self.v_rest_mv, v_thresh_mv=self.v_rest_mv + layer.v_gap_mv,
                         t_ref_ms=0.0, dt_ms=self.dt_ms, tau_exc_ms=max(1.0, 2 * self.dt_ms),
                         tau_inh_ms=max(2.0, 2 * self.dt_ms))


# --- the retina ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Retina:
    """The fitted retina: whitening kernel, contrast constant and scale (see the module docstring)."""

    kernel: torch.Tensor
    lcn_c: float
    scale: float
    params: RetinaParams

    def __post_init__(self) -> None:
        check.instance("Retina.kernel", self.kernel, torch.Tensor)
        check.array("Retina.kernel", self.kernel, ndim=2)
        check.finite_number("Retina.lcn_c", self.lcn_c, above=0)
        check.finite_number("Retina.scale", self.scale, above=0)
        check.instance("Retina.params", self.params, RetinaParams)

    @classmethod
    def fit(cls, gray, p: RetinaParams, *, seed: int) -> "Retina":
        """Fit on the first ``p.fit_images`` grayscale training images ``(N, 32, 32)`` in [0, 1]."""
        where = "Retina.fit"
        check.instance("p", p, RetinaParams, where=where)
        check.integer("seed", seed, low=0, where=where)
        if isinstance(gray, (str, bytes)) or not hasattr(gray, "__getitem__"):
            raise TypeError(f"{where}: gray must be grayscale images (N, 32, 32) in [0, 1], got "
                            f"{type(gray).__name__}")
        _gray("gray", gray[:p.fit_images], where)
        x = torch.as_tensor(np.asarray(gray[:p.fit_images]), dtype=torch.float32)
        kernel = R.whitening_kernel(x, size_px=p.kernel_px, eps=p.zca_eps, seed=seed)
        d, c = R.local_contrast_normalise(R.filter_images(x, kernel), sigma_px=p.lcn_sigma_px)
        g = torch.Generator().manual_seed(seed)
        values = d.abs().flatten()
        sample = values[torch.randint(0, len(values), (min(len(values), 1_000_000),), generator=g)]
        scale = float(torch.quantile(sample, p.scale_quantile))
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"{where}: gray gives no contrast to scale by (the responses' "
                             f"{p.scale_quantile:g} quantile is {scale:g}: blank or uniform "
                             "images?)")
        return cls(kernel, c, scale, p)

    def signed(self, gray) -> torch.Tensor:
        """Whitened, contrast-normalised responses in [-1, 1], ``(N, 32, 32)``.

        ``gray``: light intensities >= 0 (the retina removes their mean brightness: images
        brighter than the [0, 1] it was fitted on give the same responses)."""
        _gray("gray", gray, "Retina.signed", high=None)
        x = torch.as_tensor(np.asarray(gray), dtype=torch.float32)
        d, _ = R.local_contrast_normalise(R.filter_images(x, self.kernel),
                                          sigma_px=self.params.lcn_sigma_px, c=self.lcn_c)
        return (d / self.scale).clamp_(-1.0, 1.0)

    def intensities(self, gray) -> np.ndarray:
        """ON and OFF intensities in [0, 1], ``(N, 2, 32, 32)`` float32: the input neurons' rates
        divided by ``max_rate_hz``."""
        _gray("gray", gray, "Retina.intensities", high=None)
        return R.on_off(self.signed(gray)).numpy()

    def state(self) -> dict:
        return {"kernel": self.kernel.numpy(), "lcn_c": np.array(self.lcn_c),
                "scale": np.array(self.scale)}

    @classmethod
    def from_state(cls, s: dict, p: RetinaParams) -> "Retina":
        return cls(torch.from_numpy(np.asarray(s["kernel"]).copy()), float(s["lcn_c"]),
                   float(s["scale"]), p)


def _gray(name: str, gray, where: str, high: float | None = 1.0):
    """Grayscale images ``(N >= 1, 32, 32)``, floats in [0, ``high``] (snnlib.data.to_grayscale)."""
    x = gray if torch.is_tensor(gray) else np.asarray(gray)
    if str(x.dtype) in ("uint8", "torch.uint8"):
        raise TypeError(f"{where}: {name} must be floats in [0, 1], got uint8 images; use "
                        "snnlib.data.to_grayscale")
    if x.ndim != 3 or tuple(x.shape[1:]) != (IMAGE_PX, IMAGE_PX):
        raise ValueError(f"{where}: {name} must be grayscale images (N, 32, 32), got shape "
                         f"{tuple(x.shape)}")
    return check.array(name, x, low=0.0, high=high, where=where)


def _intensities(name: str, intensities, where: str) -> np.ndarray:
    """ON/OFF intensities ``(N >= 1, 2, 32, 32)`` in [0, 1] (:meth:`Retina.intensities`)."""
    x = np.asarray(intensities)
    if x.ndim != 4 or x.shape[1:] != (2, IMAGE_PX, IMAGE_PX) or len(x) < 1:
        raise ValueError(f"{where}: {name} must be (N, 2, 32, 32), got {x.shape}.")
    check.array(name, x, low=0.0, high=1.0, where=where)
    return x


def _check_layers(name: str, layers, p: "Tier1Params", where: str, *,
                  keys=("filters", "thresholds"), n_layers: int = 2) -> None:
    """``layers`` as :func:`train_layers` returns them: filters ``(K, inputs)`` (mV) and
    thresholds ``(K,)`` of each layer, finite."""
    if not hasattr(layers, "keys") or any(k not in layers for k in keys):
        raise TypeError(f"{where}: {name} must be a dict with {list(keys)} (train_layers gives "
                        f"one), got {type(layers).__name__}")
    for key in keys:
        _check_filters(f"{name}[{key!r}]", layers[key], p, where, n_layers=n_layers,
                       thresholds=key == "thresholds")


def _check_filters(name: str, values, p: "Tier1Params", where: str, *, n_layers: int,
                   thresholds: bool = False) -> None:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) < n_layers:
        raise ValueError(f"{where}: {name} must hold {n_layers} layer(s), got "
                         f"{type(values).__name__}")
    for k, (lp, n_in) in enumerate(((p.layer1, p.inputs1), (p.layer2, p.inputs2))[:n_layers]):
        shape = (lp.n_filters,) if thresholds else (lp.n_filters, n_in)
        check.array(f"{name}[{k}]", values[k], shape=shape, where=where)


# --- connectivity -------------------------------------------------------------------------------
def _conv_indices(n_images: int, channels: int, side_in: int, field: int, n_filters: int, *,
                  channels_last: bool = False):
    """Synapses of a convolutional layer over ``n_images`` copies, sorted by input neuron.

    Input neuron ``(b, c, y, x)`` has index ``((b * C + c) * side_in + y) * side_in + x``
    (with ``channels_last``: ``((b * side_in + y) * side_in + x) * C + c``, the complex
    cells that feed layer 2); layer neuron ``(b, py, px, k)`` has
    ``((b * S + py) * S + px) * K + k`` with ``S = side_in - field + 1``; kernel entry
    ``(c, dy, dx)`` is column ``(c * field + dy) * field + dx`` of the ``(K, C * field**2)``
    filter matrix, and input ``(y, x)`` reaches ``(py, px) = (y - dy, x - dx)``.

    The synapses come sorted by input neuron, then by target: one input's synapses lie
    side by side in Brian2's arrays, and delivering its spike reads memory in order
    (2x faster). They are enumerated in that order (inputs, then ``dy`` and ``dx``
    descending, then ``k``), the offsets that fall outside the layer masked out, so
    no sort of tens of millions of synapses is needed. Returns
    ``(pre, post, filter_row, filter_column)`` as int32 arrays.
    """
    s, f = side_in - field + 1, field
    if n_images * channels * side_in ** 2 * field ** 2 * n_filters >= 2 ** 31:
        raise ValueError("too many synapses for 32-bit indices: use a smaller batch.")
    b = np.arange(n_images, dtype=np.int32).reshape(-1, 1, 1, 1, 1, 1, 1)
    c, y, x = (np.arange(n, dtype=np.int32).reshape(shape) for n, shape in (
        (channels, (1, -1, 1, 1, 1, 1, 1)), (side_in, (1, 1, -1, 1, 1, 1, 1)),
        (side_in, (1, 1, 1, -1, 1, 1, 1))))
    if channels_last:  # enumerate (b, y, x, c): move c after x
        c, y, x = c.reshape(1, 1, 1, -1, 1, 1, 1), y.reshape(1, -1, 1, 1, 1, 1, 1), \
            x.reshape(1, 1, -1, 1, 1, 1, 1)
    # offsets descending, so that a given input's targets (py, px) come out ascending
    dy = (f - 1 - np.arange(f, dtype=np.int32)).reshape(1, 1, 1, 1, -1, 1, 1)
    dx = (f - 1 - np.arange(f, dtype=np.int32)).reshape(1, 1, 1, 1, 1, -1, 1)
    k = np.arange(n_filters, dtype=np.int32).reshape(1, 1, 1, 1, 1, 1, -1)
    py, px = y - dy, x - dx
    keep = (py >= 0) & (py < s) & (px >= 0) & (px < s)
    shape = np.broadcast_shapes(b.shape, c.shape, y.shape, x.shape, dy.shape, dx.shape, k.shape)
    keep = np.broadcast_to(keep, shape)
    pre = (((b * side_in + y) * side_in + x) * channels + c if channels_last
           else ((b * channels + c) * side_in + y) * side_in + x)
    post = ((b * s + py) * s + px) * n_filters + k
    col = (c * f + dy) * f + dx
    return tuple(np.broadcast_to(a, shape)[keep] for a in (pre, post, k, col))


def _rival_indices(n_groups: int, k: int):
    """Pairs ``(i, j)``, ``i != j``, within each group of ``k`` consecutive neurons."""
    a = np.arange(k)
    i, j = np.meshgrid(a, a, indexing="ij")
    keep = (i != j).ravel()
    base = (np.arange(n_groups) * k)[:, None]
    return (base + i.ravel()[keep]).ravel(), (base + j.ravel()[keep]).ravel()


def _lif_group(n: int, p: Tier1Params, layer: ConvLayerParams, name: str, *, learning: bool,
               clock):
    """LIF neurons with instantaneous synapses; in learning mode a spike of a rival blocks them."""
    import brian2 as b2

    lif = p.lif(layer)
    ns = {"v_rest": lif.v_rest_mv * b2.mV, "v_th": lif.v_thresh_mv * b2.mV,
          "tau": lif.tau_mem_ms * b2.ms}
    eqs = "dv/dt = (v_rest - v) / tau : volt\ntheta : volt"
    threshold = "v > v_th + theta"
    reset = "v = v_rest"
    if learning and layer.learning_winners == 1:
        eqs += "\nblocked : 1"
        threshold += " and blocked < 0.5"
    elif learning:  # rivals: how many other neurons of the copy have fired
        eqs += "\nrivals : 1\nspiked : 1"
        threshold += f" and (rivals < {layer.learning_winners - 0.5} or spiked > 0.5)"
        reset += "\nspiked = 1"
    g = b2.NeuronGroup(n, eqs, threshold=threshold, reset=reset, method="exact",
                       namespace=ns, clock=clock, name=name,
                       refractory=0 * b2.ms if learning else False)  # learning: lastspike
    g.v = lif.v_rest_mv * b2.mV
    return g


def _rivals(group, p: Tier1Params, layer: ConvLayerParams, n_positions: int, name: str, *,
            learning: bool, clock):
    """Lateral inhibition among the ``K`` neurons of each position (same time step).

    With learning off a spike lowers the others' potential by ``inhibition_mv``
    (not below reset; one already below it, by feed-forward inhibition, stays); in learning mode it holds them at reset for the rest of
    the presentation (a hard winner-take-all), unless they fired in the same
    step (a tie: both learn). With ``learning_winners`` ``m > 1`` each neuron
    counts its rivals' first spikes (a rival's ``spiked`` is still 0 when its
    first spike arrives: synapses act before resets) and, from the ``m``-th
    on, may not fire (its own ``rivals < m`` threshold condition: its potential
    no longer matters); the neurons that fired before (the winners) keep firing.
    """
    import brian2 as b2

    ns = {"v_rest": p.v_rest_mv * b2.mV, "w_inh": layer.inhibition_mv * b2.mV}
    if learning and layer.learning_winners == 1:
        on_pre = "v_post = v_rest\nblocked_post = int(lastspike_post < t - 0.5 * dt)"
    elif learning:
        on_pre = "rivals_post += 1 - spiked_pre"
    elif layer.feedforward_inhibition:  # a potential may be below rest: leave it there
        on_pre = "v_post -= clip(v_post - v_rest, 0 * mV, w_inh)"
    else:
        on_pre = "v_post = clip(v_post - w_inh, v_rest, v_post)"
    syn = b2.Synapses(group, group, on_pre=on_pre, namespace=ns, clock=clock, name=name)
    i, j = _rival_indices(n_positions, layer.n_filters)
    connect_brian2(syn, i=i, j=j)
    return syn


# --- frozen layers: features of whole images ---------------------------------------------------
class FrozenLayers:
    """Both hidden layers with learning off, for ``batch`` images at once (one Brian2 network).

    ``filters`` and ``thresholds`` are the layers' weight matrices ``(K, inputs)``
    in mV and threshold offsets ``(K,)`` in mV (:func:`initial_layer` or
    :class:`ConvLearner`). With ``layers=1`` only layer 1 and its complex
    cells are built (layer 2 learns from them). Each presentation lasts ``steps``
    time steps (default ``p.steps``; the readouts' features use ``p.steps_frozen``).
    ``record_trains`` records the spike trains of the complex cells and of layer 2;
    ``record_pool=False`` leaves out the complex cells' (recording them costs time).
    """

    def __init__(self, p: Tier1Params, filters: list[np.ndarray], thresholds: list[np.ndarray],
                 *, batch: int = 8, layers: int = 2, record_trains: bool = False,
                 record_pool: bool = True, steps: int | None = None) -> None:
        import brian2 as b2

        where = "FrozenLayers"
        check.instance("p", p, Tier1Params, where=where)
        if (isinstance(layers, bool) or layers not in (1, 2) or not hasattr(filters, "__len__")
                or not hasattr(thresholds, "__len__") or len(filters) < layers
                or len(thresholds) < layers):
            raise ValueError(f"layers must be 1 or 2 with as many filters and thresholds, got "
                             f"{layers} and {len(filters) if hasattr(filters, '__len__') else filters}, "
                             f"{len(thresholds) if hasattr(thresholds, '__len__') else thresholds}.")
        check.positive_int("batch", batch, where=where)
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool)
                                  or steps < 1):
            raise ValueError(f"{where}: steps must be a positive integer or None, got {steps!r}.")
        check.flag("record_trains", record_trains, where=where)
        check.flag("record_pool", record_pool, where=where)
        _check_filters("filters", filters, p, where, n_layers=layers)
        _check_filters("thresholds", thresholds, p, where, n_layers=layers, thresholds=True)
        k1, f1, k2, f2 = p.layer1.n_filters, p.layer1.field_px, p.layer2.n_filters, p.layer2.field_px
        synapses = batch * (2 * IMAGE_PX ** 2 * f1 ** 2 * k1 + p.side1 ** 2 * k1 * k1)
        if layers == 2:
            synapses += batch * (p.side_pool ** 2 * k1 * f2 ** 2 * k2 + p.side2 ** 2 * k2 * k2)
        check.fits_in_memory(f"frozen layers for batch={batch} images ({synapses:,} synapses)",
                             24 * synapses, where=where)
        self.p, self.batch, self.layers = p, batch, layers
        self.steps = steps if steps is not None else p.steps  # per presentation
        # numpy code generation runs the inhibition's clip() in a Python loop and says so
        b2.BrianLogger.suppress_name("numpy_generator")
        clock = _named_clock(p.dt_ms, "tier1_clock")
        k1, s1, sp = p.layer1.n_filters, p.side1, p.side_pool
        self.inputs = b2.PoissonGroup(batch * 2 * IMAGE_PX ** 2, rates=0 * b2.Hz, clock=clock,
                                      name="inputs")
        self.l1 = _lif_group(batch * s1 * s1 * k1, p, p.layer1, "layer1", learning=False,
                             clock=clock)
        s_in = b2.Synapses(self.inputs, self.l1, "w : volt", on_pre="v_post += w", clock=clock,
                           name="input_layer1")
        pre, post, row, col = _conv_indices(batch, 2, IMAGE_PX, p.layer1.field_px, k1)
        connect_brian2(s_in, i=pre, j=post)
        self._rows = [(s_in, row, col)]
        objects = [self.inputs, self.l1, s_in,
                   _rivals(self.l1, p, p.layer1, batch * s1 * s1, "rivals1", learning=False,
                           clock=clock)]
        # complex cells: one per pool block and filter, spiking the step after any of its inputs
        r = p.pool_refractory_steps
        self.pool = b2.NeuronGroup(batch * sp * sp * k1, "v : 1", threshold="v > 0.5",
                                   reset="v = 0", clock=clock, name="complex",
                                   refractory=(r + 1) * p.dt_ms * b2.ms if r
                                   else False)
        # Brian2 counts the spike's own step as refractory, hence r + 1 steps; a refractory
        # complex cell ignores its inputs (no spike deferred to the period's end)
        to_pool = b2.Synapses(self.l1, self.pool,
                              on_pre="v_post = 1.0 * int(not_refractory_post)" if r
                              else "v_post = 1", clock=clock, name="pooling")
        b, py, px, k = np.meshgrid(np.arange(batch), np.arange(s1), np.arange(s1), np.arange(k1),
                                   indexing="ij")
        connect_brian2(to_pool, i=(((b * s1 + py) * s1 + px) * k1 + k).ravel(),
                       j=(((b * sp + py // p.pool_px) * sp + px // p.pool_px) * k1 + k).ravel())
        objects += [self.pool, to_pool]
        self.monitors = [b2.SpikeMonitor(self.l1, record=False, name="count1")]
        self.pool_monitor = b2.SpikeMonitor(self.pool, record=record_trains and record_pool,
                                            name="pool_spikes")
        objects += [self.monitors[0], self.pool_monitor]
        if layers == 2:
            k2, s2 = p.layer2.n_filters, p.side2
            self.l2 = _lif_group(batch * s2 * s2 * k2, p, p.layer2, "layer2", learning=False,
                                 clock=clock)
            s12 = b2.Synapses(self.pool, self.l2, "w : volt", on_pre="v_post += w", clock=clock,
                              name="complex_layer2")
            # complex cells are channel-last (b, y, x, k1); the filter's columns are (k1, dy, dx)
            pre, post, row, col = _conv_indices(batch, k1, sp, p.layer2.field_px, k2,
                                                channels_last=True)
            connect_brian2(s12, i=pre, j=post)
            self._rows.append((s12, row, col))
            self.monitors.append(b2.SpikeMonitor(self.l2, record=record_trains, name="count2"))
            objects += [self.l2, s12, self.monitors[1],
                        _rivals(self.l2, p, p.layer2, batch * s2 * s2, "rivals2", learning=False,
                                clock=clock)]
        objects.append(b2.NetworkOperation(self._boundary, clock=clock, when="start",
                                           name="presentations"))
        self.net = b2.Network(*objects)
        self.set_layers(filters, thresholds)

    def set_layers(self, filters: list[np.ndarray], thresholds: list[np.ndarray]) -> None:
        """Load filter matrices (mV) and threshold offsets (mV) into the synapses and neurons."""
        import brian2 as b2

        _check_filters("filters", filters, self.p, "FrozenLayers.set_layers", n_layers=self.layers)
        _check_filters("thresholds", thresholds, self.p, "FrozenLayers.set_layers",
                       n_layers=self.layers, thresholds=True)
        for layer, (syn, row, col) in enumerate(self._rows):
            f = np.asarray(filters[layer], dtype=float)
            syn.w = (f[row, col] - self.p.ffi_mv(layer + 1)) * b2.mV
            group = self.l1 if layer == 0 else self.l2
            th = np.asarray(thresholds[layer], dtype=float)
            group.theta = np.tile(th, len(group) // len(th)) * b2.mV

    def run(self, intensities: np.ndarray, *, seed: int, trains2: bool = False) -> dict:
        """Present images (``(n, 2, 32, 32)`` ON/OFF intensities), ``batch`` at a time.

        The presentations follow one another in one Brian2 run (a network
        operation swaps the input rates and resets the potentials at each
        boundary): a call of Brian2's ``run`` costs about half a second of
        preparation, many times the simulation of one batch. The first ``batch``
        images of a call give the same counts as a call with only them (same seed).

        Returns ``counts1`` ``(n, S1, S1, K1)``, ``counts2`` ``(n, S2, S2, K2)``
        (layers=2), ``pool_spikes`` (complex-cell spikes per image, the mean of the
        call), and with ``record_trains`` the complex cells' and layer 2's spikes as
        ``(image, neuron-in-image, step)`` arrays. ``trains2`` records layer 2's
        spikes for this call only (``trains2`` in the result) in a network built
        without ``record_trains``: a monitor is added for the call and removed after
        it, so the wired network serves both kinds of call.
        """
        import brian2 as b2

        intensities = np.asarray(intensities)
        p, n = self.p, len(intensities)
        if intensities.ndim != 4 or n < 1 or tuple(intensities.shape[1:]) != (2, IMAGE_PX, IMAGE_PX):
            raise ValueError(f"intensities must be (N >= 1, 2, 32, 32), got "
                             f"{tuple(intensities.shape)}.")
        check.array("intensities", intensities, low=0.0, high=1.0, where="FrozenLayers.run")
        check.integer("seed", seed, low=0, where="FrozenLayers.run")
        check.flag("trains2", trains2, where="FrozenLayers.run")
        if trains2 and self.layers != 2:
            raise ValueError("FrozenLayers.run: trains2 needs layer 2 (layers=2).")
        extra = None  # layer 2's monitor for this call only
        if trains2 and not self.monitors[1].record:
            # a fixed name: Brian2's unique names (spikemonitor_1, ...) change its code
            extra = b2.SpikeMonitor(self.l2, record=True, name="trains2")
            self.net.add(extra)
        try:
            return self._run(intensities, seed, extra)
        finally:
            if extra is not None:
                self.net.remove(extra)

    def _run(self, intensities: np.ndarray, seed: int, extra) -> dict:
        """:meth:`run` once its arguments are checked; ``extra``: layer 2's monitor for this
        call, or None."""
        import brian2 as b2

        p, n = self.p, len(intensities)
        chunks = -(-n // self.batch)
        x = np.zeros((chunks * self.batch, 2, IMAGE_PX, IMAGE_PX))
        x[:n] = intensities
        self._rates = x.reshape(chunks, -1) * p.max_rate_hz
        self._chunk, self._step = 0, 0
        self._closed = [[] for _ in self.monitors]
        pool_before = self.pool_monitor.num_spikes
        trains_from = [m.num_spikes if m.record else 0 for m in (self.pool_monitor,
                                                                 *self.monitors[1:])]
        _seed_brian2(seed)
        t0 = float(self.net.t / b2.ms)
        run_brian2(self.net, chunks * self.steps * p.dt_ms, p.codegen_target)
        self._close_chunk()
        counts = [np.concatenate(c)[:n] for c in self._closed]
        out = {"counts1": counts[0].reshape(n, p.side1, p.side1, -1),
               "pool_spikes": (self.pool_monitor.num_spikes - pool_before) / n}
        if self.layers == 2:
            out["counts2"] = counts[1].reshape(n, p.side2, p.side2, -1)
        if self.pool_monitor.record:
            out["pool_trains"] = _trains(self.pool_monitor, trains_from[0], t0, p,
                                         len(self.pool) // self.batch, n, self.batch, self.steps)
        if self.layers == 2:
            monitor2, from2 = (extra, 0) if extra is not None else (self.monitors[1], trains_from[1])
            if monitor2.record:
                out["trains2"] = _trains(monitor2, from2, t0, p, len(self.l2) // self.batch, n,
                                         self.batch, self.steps)
        return out

    def _boundary(self) -> None:
        """At the start of each time step: at a presentation's first step, close the
        previous batch (its counts) and open the next (its rates, potentials at rest)."""
        import brian2 as b2

        if self._step % self.steps == 0 and self._chunk < len(self._rates):
            if self._chunk > 0:
                self._close_chunk()
            self._before = [np.asarray(m.count).copy() for m in self.monitors]
            self.inputs.rates = self._rates[self._chunk] * b2.Hz
            for g in [self.l1] + ([self.l2] if self.layers == 2 else []):
                g.v = self.p.v_rest_mv * b2.mV
            self.pool.v = 0
            self._chunk += 1
        self._step += 1

    def _close_chunk(self) -> None:
        for closed, m, before in zip(self._closed, self.monitors, self._before):
            closed.append((np.asarray(m.count) - before).reshape(self.batch, -1))


def _trains(monitor, start: int, t0_ms: float, p: Tier1Params, per_image: int, n: int,
            batch: int, steps_each: int):
    """Spikes since index ``start``: ``(image, neuron within image, step)`` int arrays.

    Presentations of ``batch`` images follow one another every ``steps_each`` steps
    (:meth:`FrozenLayers.run`): image and step are counted from each presentation's start."""
    import brian2 as b2

    i = np.asarray(monitor.i[start:])
    steps = np.rint((np.asarray(monitor.t[start:] / b2.ms) - t0_ms) / p.dt_ms).astype(np.int64)
    image = i // per_image + (steps // steps_each) * batch
    neuron, steps = i % per_image, steps % steps_each
    keep = image < n
    return image[keep], neuron[keep], steps[keep]


def pool_counts(counts: np.ndarray, grid: int) -> np.ndarray:
    """``(n, S, S, K)`` spike counts summed over a ``grid x grid`` partition of the positions:
    ``(n, K * grid**2)`` (regions as equal as integer edges allow)."""
    check.array("counts", counts, ndim=4, low=0.0, where="pool_counts")
    check.positive_int("grid", grid, where="pool_counts")
    if grid > counts.shape[1]:
        raise ValueError(f"pool_counts: grid must be at most the {counts.shape[1]} positions per "
                         f"side, got {grid}")
    n, s, _, k = counts.shape
    edges = [(i * s) // grid for i in range(grid + 1)]
    cells = [counts[:, edges[a]:edges[a + 1], edges[b]:edges[b + 1]].sum(axis=(1, 2))
             for a in range(grid) for b in range(grid)]
    return np.stack(cells, axis=2).reshape(n, -1).astype(np.float32)


def pool_grids(grids) -> tuple[int, ...]:
    """A ``features_pool`` entry as a tuple of grid sizes (one grid: a tuple of one)."""
    return tuple(grids) if isinstance(grids, (tuple, list)) else (grids,)


def _grids_ok(grids, side: int) -> bool:
    """Whether ``grids`` is a grid size, or a non-empty tuple of them, each in ``[1, side]``."""
    if isinstance(grids, (tuple, list)) and not grids:
        return False
    return all(isinstance(g, int) and not isinstance(g, bool) and 1 <= g <= side
               for g in pool_grids(grids))


def pool_pyramid(counts: np.ndarray, grids) -> np.ndarray:
    """``(n, S, S, K)`` spike counts pooled over each of ``grids`` (a grid size or a tuple of
    them: a spatial pyramid), side by side: ``(n, K * sum(g**2 for g in grids))``, the
    columns of :func:`pool_counts` for each grid in turn."""
    grids = pool_grids(grids)
    if not grids:
        raise ValueError("pool_pyramid: grids must name at least one grid size")
    return np.hstack([pool_counts(counts, g) for g in grids])


def initial_layer(p: Tier1Params, layer: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A layer before learning: uniform random filters scaled to ``w_sum_mv``, thresholds 0 (mV)."""
    check.instance("p", p, Tier1Params, where="initial_layer")
    if isinstance(layer, bool) or layer not in (1, 2):
        raise ValueError(f"initial_layer: layer must be 1 or 2, got {layer!r}")
    check.integer("seed", seed, low=0, where="initial_layer")
    lp = p.layer1 if layer == 1 else p.layer2
    n_in = p.inputs1 if layer == 1 else p.inputs2
    w = np.random.default_rng([seed, layer]).random((lp.n_filters, n_in))
    return w * (lp.w_sum_mv / w.sum(axis=1, keepdims=True)), np.zeros(lp.n_filters)


# --- learning ------------------------------------------------------------------------------------
class ConvLearner:
    """One layer learning by STDP under winner-take-all, ``patch_batch`` patches at a time.

    Each copy has the layer's ``K`` neurons and the inputs of one position:
    Poisson ON/OFF inputs (layer 1: ``patches`` are intensities
    ``(n, 2 * field**2)``) or given spike trains (layer 2: complex-cell spikes,
    ``(copy, input, step)``). See the module docstring for the rule.
    """

    def __init__(self, p: Tier1Params, layer: int, *, seed: int, filters=None,
                 thresholds=None, learn: bool = True) -> None:
        import brian2 as b2

        from ...plasticity import RSTDPParams, STDPParams, build_rstdp_synapses

        self.p, self.layer, self.seed, self.learn = p, layer, seed, learn
        lp = self.lp = p.layer1 if layer == 1 else p.layer2
        self.n_in = p.inputs1 if layer == 1 else p.inputs2
        w0, th0 = initial_layer(p, layer, seed)
        self.filters = np.array(w0 if filters is None else filters, dtype=float)
        self.initial = self.filters.copy()
        self.thresholds = np.array(th0 if thresholds is None else thresholds, dtype=float)
        # numpy code generation runs the inhibition's clip() in a Python loop and says so
        b2.BrianLogger.suppress_name("numpy_generator")
        clock = _named_clock(p.dt_ms, "tier1_clock")
        c, k = lp.patch_batch, lp.n_filters
        if layer == 1:
            self.inputs = b2.PoissonGroup(c * self.n_in, rates=0 * b2.Hz, clock=clock,
                                          name="patch_inputs")
        else:
            self.inputs = b2.SpikeGeneratorGroup(c * self.n_in, [], [] * b2.ms, clock=clock,
                                                 name="patch_inputs")
        self.neurons = _lif_group(c * k, p, lp, "patch_neurons", learning=True, clock=clock)
        stdp = STDPParams(a_plus=lp.a_plus, a_minus=lp.a_minus, tau_plus_ms=lp.tau_stdp_ms,
                          tau_minus_ms=lp.tau_stdp_ms, w_min=0.0, w_max=lp.w_sum_mv,
                          dt_ms=p.dt_ms)
        rule = RSTDPParams(stdp=stdp, tau_elig_ms=1e9)  # no decay within a presentation
        self.ffi = p.ffi_mv(layer)  # feed-forward inhibition: a constant off every weight
        self.syn = build_rstdp_synapses(self.inputs, self.neurons, rule,
                                        on_pre="v_post += w * mV", name="patch_synapses",
                                        clock=clock)
        ci, kk, ii = np.meshgrid(np.arange(c), np.arange(k), np.arange(self.n_in), indexing="ij")
        connect_brian2(self.syn, i=(ci * self.n_in + ii).ravel(), j=(ci * k + kk).ravel())
        self._rows, self._cols = kk.ravel(), ii.ravel()
        self.monitor = b2.SpikeMonitor(self.neurons, name="patch_spikes")
        self.input_monitor = b2.SpikeMonitor(self.inputs, name="patch_input_spikes")
        self.net = b2.Network(self.inputs, self.neurons, self.syn, self.monitor,
                              self.input_monitor,
                              _rivals(self.neurons, p, lp, c, "patch_rivals", learning=True,
                                      clock=clock))
        self.history: dict[str, list] = {"no_winner": [], "wins_cv": [], "w_change": [],
                                         "theta_mv": []}
        self._batches = 0

    def step(self, patches) -> dict:
        """Show one batch of patches and learn; returns the batch's statistics."""
        import brian2 as b2

        p, lp, c, k = self.p, self.lp, self.lp.patch_batch, self.lp.n_filters
        if self.layer == 1:
            x = np.zeros((c, self.n_in))
            x[:len(patches)] = patches
            self.inputs.rates = x.ravel() * p.max_rate_hz * b2.Hz
            n = len(patches)
        else:
            copy, inp, step, n = patches
            t0 = float(self.net.t / b2.ms)
            self.inputs.set_spikes(copy * self.n_in + inp,
                                   (t0 + step * p.dt_ms + 0.25 * p.dt_ms) * b2.ms)
        self.syn.w = self.filters[self._rows, self._cols] - self.ffi  # the weights felt
        self.syn.elig = 0
        self.syn.pre_trace = 0
        self.syn.post_trace = 0
        self.neurons.v = p.v_rest_mv * b2.mV
        if lp.learning_winners == 1:
            self.neurons.blocked = 0
        else:
            self.neurons.rivals = 0
            self.neurons.spiked = 0
        self.neurons.theta = np.tile(self.thresholds, c) * b2.mV
        start, in_start = self.monitor.num_spikes, self.input_monitor.num_spikes
        t0 = float(self.net.t / b2.ms)
        _seed_brian2(int(self.seed) * 1_000_003 + self._batches)
        run_brian2(self.net, p.learning_steps(self.layer) * p.dt_ms, p.codegen_target)
        self._batches += 1
        winner = self._winners(self.monitor, start, self.input_monitor, in_start, t0, n)
        self.last_winners = winner
        m = lp.learning_winners
        if m == 1:  # only each copy's winner learns (a tie that fired too does not)
            learns = np.zeros((c, k), bool)
            learns[np.flatnonzero(winner >= 0), winner[winner >= 0]] = True
        else:  # every neuron that fired learns: the first m of the copy (and ties)
            learns = np.zeros(c * k, bool)
            learns[np.asarray(self.monitor.i[start:])] = True
            learns = learns.reshape(c, k)
            learns[n:] = False
        wins = learns.sum(axis=0).astype(float)
        change = 0.0
        if self.learn:
            copy = np.arange(len(self._rows)) // (k * self.n_in)
            elig = np.where(learns[copy, self._rows], np.asarray(self.syn.elig), 0.0)
            dw = np.zeros((k, self.n_in))
            np.add.at(dw, (self._rows, self._cols), elig)
            new = np.clip(self.filters + dw, 0.0, lp.w_sum_mv)
            new *= lp.w_sum_mv / np.maximum(new.sum(axis=1, keepdims=True), 1e-12)
            change = float(np.abs(new - self.filters).sum(axis=1).mean())
            self.filters = new
        self.thresholds += lp.theta_eta_mv * (k * wins / (m * max(n, 1)) - lp.win_target)
        np.maximum(self.thresholds, -0.9 * lp.v_gap_mv, out=self.thresholds)
        stats = {"no_winner": float(np.mean(winner < 0)),
                 "wins_cv": float(wins.std() / max(wins.mean(), 1e-9)), "w_change": change,
                 "theta_mv": (float(self.thresholds.min()), float(self.thresholds.max()))}
        for key, val in stats.items():
            self.history[key].append(val)
        return stats


    def _winners(self, monitor, start, input_monitor, in_start, t0, n) -> np.ndarray:
        """Each copy's winner (-1: none): the neuron that fired first; among neurons that
        first fired in the same step, the one whose potential was furthest above its
        threshold (the one that would have crossed first in continuous time)."""
        import brian2 as b2

        p, k = self.p, self.lp.n_filters
        i = np.asarray(monitor.i[start:])
        step = np.rint((np.asarray(monitor.t[start:] / b2.ms) - t0) / p.dt_ms).astype(np.int64)
        copy, neuron = i // k, i % k
        first = np.full(n, np.iinfo(np.int64).max)
        keep = copy < n
        np.minimum.at(first, copy[keep], step[keep])
        winner = np.full(n, -1)
        has = first < np.iinfo(np.int64).max
        if not has.any():
            return winner
        # potential of every neuron of a copy at its first step: decayed sum of its input
        ii = np.asarray(input_monitor.i[in_start:])
        si = np.rint((np.asarray(input_monitor.t[in_start:] / b2.ms) - t0) / p.dt_ms).astype(
            np.int64)
        ci, inp = ii // self.n_in, ii % self.n_in
        ok = (ci < n)
        ci, inp, si = ci[ok], inp[ok], si[ok]
        ok = si < first[ci]  # an input delivered in step s is first seen by the threshold at s + 1
        decay = math.exp(-p.dt_ms / self.lp.tau_mem_ms)
        x = np.zeros((n, self.n_in))
        np.add.at(x, (ci[ok], inp[ok]), decay ** (first[ci[ok]] - si[ok]))
        # (n, K), mV above rest minus theta; the feed-forward inhibition is the same for
        # every neuron of a copy, so it changes the margins, not which is largest
        margin = x @ (self.filters - self.ffi).T - self.thresholds
        fired_first = np.zeros((n, k), bool)
        at_first = keep & (step == first[np.minimum(copy, n - 1)])
        fired_first[copy[at_first], neuron[at_first]] = True
        margin = np.where(fired_first, margin, -np.inf)
        winner[has] = margin[has].argmax(axis=1)
        return winner


def layer2_patches(pool_trains, n_images: int, p: Tier1Params, per_image: int,
                   rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """Complex-cell spike trains of ``per_image`` random layer-2 fields of each image.

    ``pool_trains`` is ``(image, neuron, step)`` of the complex cells
    (:meth:`FrozenLayers.run` with ``record_trains``); a neuron's index is
    ``(y * side + x) * K1 + k``. Returns one ``(input, step)`` pair of arrays
    per field, inputs numbered ``(k * field + dy) * field + dx`` as layer 2's
    filter columns are.
    """
    image, neuron, step = pool_trains
    k1, sp, f = p.layer1.n_filters, p.side_pool, p.layer2.field_px
    y, x, k = neuron // k1 // sp, (neuron // k1) % sp, neuron % k1
    out = []
    for b in range(n_images):
        mine = image == b
        yb, xb, kb, sb = y[mine], x[mine], k[mine], step[mine]
        for ly, lx in zip(rng.integers(0, p.side2, per_image), rng.integers(0, p.side2, per_image)):
            inside = (yb >= ly) & (yb < ly + f) & (xb >= lx) & (xb < lx + f)
            out.append(((kb[inside] * f + (yb[inside] - ly)) * f + (xb[inside] - lx),
                        sb[inside]))
    return out


def stack_patches(fields: list[tuple[np.ndarray, np.ndarray]]) -> tuple:
    """Fields of :func:`layer2_patches` as one ``(copy, input, step, n)`` batch for :class:`ConvLearner`."""
    copy = np.concatenate([np.full(len(i), c) for c, (i, _) in enumerate(fields)]) if fields \
        else np.zeros(0, int)
    inp = np.concatenate([i for i, _ in fields]) if fields else np.zeros(0, int)
    step = np.concatenate([s for _, s in fields]) if fields else np.zeros(0, int)
    return copy.astype(np.int64), inp.astype(np.int64), step.astype(np.int64), len(fields)


# --- analyses -----------------------------------------------------------------------------------
def spike_statistics(counts: np.ndarray, duration_ms: float) -> dict:
    """Firing of a layer from counts ``(images, ...)``: mean ``rate_hz`` of a neuron,
    ``spikes_per_image``, ``silent_filters`` (fraction of filters that never fired),
    ``silent_images`` (fraction of images without a spike)."""
    check.array("counts", counts, ndim=(2, 3, 4), low=0.0, where="network.spike_statistics")
    check.finite_number("duration_ms", duration_ms, above=0, where="network.spike_statistics")
    counts = np.asarray(counts)
    n = len(counts)
    per_image = counts.reshape(n, -1).sum(axis=1)
    per_filter = counts.reshape(n, -1, counts.shape[-1]).sum(axis=(0, 1))
    return {"rate_hz": float(counts.mean() / (duration_ms / 1000.0)),
            "spikes_per_image": float(per_image.mean()),
            "silent_filters": float(np.mean(per_filter == 0)),
            "silent_images": float(np.mean(per_image == 0))}


def volley_fraction(trains, n_images: int, n_neurons: int, *, window_steps: int = 2,
                    fraction: float = 0.25) -> float:
    """Fraction of images in which at least ``fraction`` of a layer's neurons fire within
    ``window_steps`` steps: a synchronous volley, where every neuron fires whatever its weights.

    ``trains`` is ``(image, neuron, step)`` as :meth:`FrozenLayers.run` records them.
    """
    where = "network.volley_fraction"
    check.positive_int("n_neurons", n_neurons, where=where)
    check.positive_int("window_steps", window_steps, where=where)
    check.number("fraction", fraction, low=0.0, low_open=True, high=1.0, where=where)
    check.positive_int("n_images", n_images, low=0, where=where)
    if isinstance(trains, (str, bytes)) or not hasattr(trains, "__len__") or len(trains) != 3:
        raise TypeError(f"{where}: trains must be (image, neuron, step) arrays, got "
                        f"{type(trains).__name__}")
    for name, a in zip(("image", "neuron", "step"), trains):
        a = check.array(f"trains' {name}", a, ndim=1, nonempty=False, low=0, where=where)
        if np.asarray(a).dtype.kind not in "iu" and len(a):
            raise TypeError(f"{where}: trains' {name} must be integers, got dtype "
                            f"{np.asarray(a).dtype}")
    image, neuron, step = (np.asarray(a, dtype=np.int64) for a in trains)
    if len(step) == 0 or n_images < 1:
        return 0.0
    n_steps = max(int(step.max()) + 1, window_steps)
    per_step = np.bincount(image * n_steps + step, minlength=n_images * n_steps)
    per_step = per_step[:n_images * n_steps].reshape(n_images, n_steps)
    run = np.cumsum(np.pad(per_step, ((0, 0), (1, 0))), axis=1)
    window = run[:, window_steps:] - run[:, :-window_steps]  # spikes in each window of steps
    return float(np.mean(window.max(axis=1) >= fraction * n_neurons))


# --- the two layers, end to end ---------------------------------------------------------------
def train_layers(p: Tier1Params, intensities: np.ndarray, *, seed: int, learn: bool = True,
                 batch: int = 16, progress: bool = False) -> dict:
    """Both hidden layers learn, one after the other, from training images' ON/OFF intensities.

    Layer 1 learns from ``p.layer1.train_patches`` random ``field x field``
    patches of ``intensities`` ``(N, 2, 32, 32)``; layer 2 from
    ``p.layer2.train_patches`` random fields of complex-cell spikes, made by
    running the learned layer 1 on the images, ``batch`` images for each learning
    step (simulated :data:`WIRED_BATCH` at a time). With
    ``learn=False`` the weights keep their random start and only the
    thresholds adapt (the same homeostasis, the same patches): the
    random-weight twin that the learned layers must beat.

    Returns ``{"filters": [f1, f2], "thresholds": [t1, t2], "history": [h1, h2],
    "initial": [w1, w2]}`` (mV).
    """
    from ...progress import tqdm

    where = "train_layers"
    check.instance("p", p, Tier1Params, where=where)
    _intensities("intensities", intensities, where)
    check.integer("seed", seed, low=0, where=where)
    check.flag("learn", learn, where=where)
    check.positive_int("batch", batch, where=where)
    check.flag("progress", progress, where=where)
    x = np.asarray(intensities, dtype=np.float32)
    rng = np.random.default_rng([seed, 17])
    out: dict = {"filters": [], "thresholds": [], "history": [], "initial": []}

    def keep(learner: ConvLearner) -> None:
        for key in out:
            out[key].append(getattr(learner, key))

    # layer 1: random patches of random images
    f1 = p.layer1.field_px
    learner = ConvLearner(p, 1, seed=seed, learn=learn)
    side = IMAGE_PX - f1 + 1
    n_batches = -(-p.layer1.train_patches // p.layer1.patch_batch)
    for _ in tqdm(range(n_batches), disable=not progress, desc="layer 1 learns", unit="batch"):
        img = rng.integers(0, len(x), p.layer1.patch_batch)
        py, px = (rng.integers(0, side, p.layer1.patch_batch) for _ in range(2))
        rows = py[:, None] + np.arange(f1)[None, :]
        cols = px[:, None] + np.arange(f1)[None, :]
        patches = x[img[:, None, None, None], np.arange(2)[None, :, None, None],
                    rows[:, None, :, None], cols[:, None, None, :]]
        learner.step(patches.reshape(len(img), -1))
    keep(learner)
    # layer 2: fields of the complex cells' spikes, a few from each image
    # the images of a step go through a network wired for WIRED_BATCH of them, one group
    # after another in the same run (FrozenLayers.run): wiring 16 at once takes longer
    layer1 = FrozenLayers(p, out["filters"], out["thresholds"], batch=min(batch, WIRED_BATCH),
                          layers=1, record_trains=True, steps=p.learning_steps(2))
    learner = ConvLearner(p, 2, seed=seed, learn=learn)
    n_img = min(batch, p.layer2.patch_batch)  # images per step, never more than its patches
    per_image = p.layer2.patch_batch // n_img
    n_batches = -(-p.layer2.train_patches // (per_image * n_img))
    order = rng.permutation(len(x))
    per_call = 32  # layer-1 batches per Brian2 run (see FrozenLayers.run)
    bar = tqdm(total=n_batches, disable=not progress, desc="layer 2 learns", unit="batch")
    for first in range(0, n_batches, per_call):
        todo = min(per_call, n_batches - first)
        take = order[(np.arange(todo * n_img) + first * n_img) % len(x)]
        image, neuron, step = layer1.run(x[take], seed=int(rng.integers(2**31)))["pool_trains"]
        by_image = np.argsort(image, kind="stable")
        edges = np.searchsorted(image[by_image], np.arange(todo + 1) * n_img)
        for b in range(todo):
            mine = by_image[edges[b]:edges[b + 1]]
            trains = (image[mine] - b * n_img, neuron[mine], step[mine])
            learner.step(stack_patches(layer2_patches(trains, n_img, p, per_image, rng)))
            bar.update(1)
    bar.close()
    keep(learner)
    return out


WIRED_BATCH = 4
"""Images that one frozen network simulates side by side (:func:`features`,
:func:`train_layers`). Wiring is the slow part of a short call: a batch of 4 images has
15 million synapses and takes about eight seconds, 16 images 60 million and about thirty,
while images simulate as fast in batches of 4 as of 16
(``benchmarks/brian_stdp_conv_speed.py --wire-batches 4 16``)."""

_REUSED: dict = {}
"""The last :class:`FrozenLayers` that :func:`features` built (see :func:`_frozen_layers`)."""


def _frozen_layers(p: Tier1Params, layers: dict, *, batch: int) -> FrozenLayers:
    """The frozen layers for :func:`features`, with ``layers``' filters and thresholds.

    Wiring the network is the slow part of a short call (:data:`WIRED_BATCH`): the
    network built for one call is kept and reused by the next call of the same shape,
    its weights and thresholds replaced (it gives the counts a new one would: every
    presentation starts from rest, and the synapses carry no delay); a call that
    measures volleys records layer 2's trains with a monitor of its own
    (:meth:`FrozenLayers.run`'s ``trains2``).
    """
    key = (p, batch)
    frozen = _REUSED.get(key)
    if frozen is None:
        _REUSED.clear()
        frozen = _REUSED[key] = FrozenLayers(p, layers["filters"], layers["thresholds"],
                                             batch=batch, steps=p.steps_frozen)
    else:
        frozen.set_layers(layers["filters"], layers["thresholds"])
    return frozen


def features(p: Tier1Params, layers: dict, intensities: np.ndarray, *, seed: int,
             batch: int = WIRED_BATCH, record_every: int = 0, keep_counts: bool = False,
             progress: bool = False, per_call: int = 32, workers: int | None = None) -> dict:
    """Spike counts of both frozen layers for every image, pooled for the readouts.

    ``layers`` is :func:`train_layers`' result. The images go through
    :meth:`FrozenLayers.run` ``batch`` at a time for ``p.steps_frozen`` steps each, ``per_call`` batches per call
    (the call ``k``, from image ``start``, draws its spikes with seed
    ``seed * 1_000_003 + start``). Returns ``f1`` ``(N, K1 g1^2)``
    and ``f2`` ``(N, K2 g2^2)`` (counts summed over a ``g x g`` grid, or over each grid of a
    pyramid side by side: ``p.features_pool``, :func:`pool_pyramid`; their square roots with
    ``p.features_sqrt``), ``spikes1`` and ``spikes2`` per image, the volley
    fraction of layer 2 (over the images of the calls whose trains are recorded:
    every ``record_every``-th, none if 0), and ``spikes_pool``, the complex cells'
    spikes per image (the mean of the image's call). With ``keep_counts`` also every neuron's
    count, ``counts1`` ``(N, S1, S1, K1)`` and ``counts2`` ``(N, S2, S2, K2)``
    (uint8 while ``steps_frozen`` < 256: a neuron fires at most once per step).

    The calls are independent (each starts from rest with its own seed), so on Linux
    ``workers`` processes (default: one per core, at most one per call) run them side by
    side: copies of this process made after the network is built (``fork``), which share
    its synapses. Any number of workers gives the same counts as one.
    """
    from ...progress import tqdm

    where = "features"
    check.instance("p", p, Tier1Params, where=where)
    _check_layers("layers", layers, p, where)
    _intensities("intensities", intensities, where)
    check.integer("seed", seed, low=0, where=where)
    check.positive_int("batch", batch, where=where)
    check.positive_int("record_every", record_every, low=0, where=where)
    check.positive_int("per_call", per_call, where=where)
    if workers is not None:
        check.positive_int("workers", workers, where=where)
    check.flag("keep_counts", keep_counts, where=where)
    check.flag("progress", progress, where=where)
    x = np.asarray(intensities, dtype=np.float32)
    check.fits_in_memory(
        f"features of {len(x)} images (intensities)", len(x) * (4 * p.n_features + 32 + (
            p.side1 ** 2 * p.layer1.n_filters + p.side2 ** 2 * p.layer2.n_filters
            if keep_counts else 0)), where=where)
    frozen = _frozen_layers(p, layers, batch=batch)
    step = batch * per_call
    calls = [(start, bool(record_every) and k % record_every == 0)
             for k, start in enumerate(range(0, len(x), step))]
    parts = []
    with tqdm(total=len(x), disable=not progress, desc="frozen layers", unit="image") as bar:
        for part in _map_calls(frozen, x, calls, step=step, seed=seed, keep_counts=keep_counts,
                               workers=_feature_workers(workers, len(calls))):
            parts.append(part)
            bar.update(len(part["f1"]))
    seen = sum(part["n_recorded"] for part in parts)
    out = {name: np.concatenate([part[name] for part in parts])
           for name in ("f1", "f2", "spikes1", "spikes2", "spikes_pool")
           + (("counts1", "counts2") if keep_counts else ())}
    out["volley_fraction"] = (sum(part["volleys"] for part in parts) / seen if seen else None)
    return out


def _feature_workers(workers: int | None, n_calls: int) -> int:
    """Processes for :func:`features`: 1 where ``fork`` is missing or unsafe (not Linux)."""
    if not sys.platform.startswith("linux"):
        return 1
    from ..._brian2_build import _cores

    return max(1, min(_cores() if workers is None else workers, n_calls))


def _features_call(frozen: FrozenLayers, x: np.ndarray, start: int, record: bool, *, step: int,
                   seed: int, keep_counts: bool) -> dict:
    """One call of :func:`features`: images ``x[start:start + step]``, pooled and summed."""
    p = frozen.p
    chunk = x[start:start + step]
    out = frozen.run(chunk, seed=seed * 1_000_003 + start, trains2=record)
    f1, f2 = (pool_pyramid(out[f"counts{k + 1}"], p.features_pool[k]) for k in (0, 1))
    if p.features_sqrt:
        f1, f2 = np.sqrt(f1), np.sqrt(f2)
    part = {"f1": f1, "f2": f2,
            "spikes1": out["counts1"].reshape(len(chunk), -1).sum(axis=1),
            "spikes2": out["counts2"].reshape(len(chunk), -1).sum(axis=1),
            "spikes_pool": np.full(len(chunk), out["pool_spikes"]),
            "volleys": 0.0, "n_recorded": 0}
    if keep_counts:
        small = np.uint8 if frozen.steps < 256 else np.uint16  # one spike a step at most
        part.update(counts1=out["counts1"].astype(small), counts2=out["counts2"].astype(small))
    if record:
        part["volleys"] = volley_fraction(out["trains2"], len(chunk),
                                          p.side2 ** 2 * p.layer2.n_filters) * len(chunk)
        part["n_recorded"] = len(chunk)
    return part


_FORKED: tuple | None = None
"""What the forked workers of :func:`_map_calls` read: the network, the images, the options."""


def _forked_init() -> None:
    """In a forked worker: leave Ctrl-C to the parent, and never share its compiler processes."""
    import signal

    from ... import _brian2_build

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _brian2_build._WORKERS = None


def _forked_call(call: tuple[int, bool]) -> dict:
    import traceback

    frozen, x, options = _FORKED
    try:
        return _features_call(frozen, x, *call, **options)
    except Exception:  # Brian2's errors hold objects that cannot be sent back: send their text
        raise RuntimeError(f"features: a worker failed on the images from {call[0]}:\n"
                           f"{traceback.format_exc()}") from None


def _map_calls(frozen: FrozenLayers, x: np.ndarray, calls: list, *, workers: int, **options):
    """:func:`_features_call` of every call, in order; with ``workers`` > 1 in forked copies of
    this process. The parent first presents one blank batch (with and without layer 2's
    recording monitor, as the calls need), so that every Brian2 module the workers run is
    compiled and loaded before they are made."""
    global _FORKED

    if workers <= 1:
        for call in calls:
            yield _features_call(frozen, x, *call, **options)
        return
    import multiprocessing

    blank = np.zeros((1, 2, IMAGE_PX, IMAGE_PX))
    for record in sorted({record for _, record in calls}):
        frozen.run(blank, seed=0, trains2=record)
    from concurrent.futures import ProcessPoolExecutor

    _FORKED = (frozen, x, options)
    # an executor, not a Pool: a worker that dies (out of memory) raises BrokenProcessPool
    # here instead of leaving its call unanswered
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_forked_init)
    try:
        yield from pool.map(_forked_call, calls)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        _FORKED = None


def weights_moved(p: Tier1Params, layers: dict) -> list[float]:
    r"""How far each layer's filters moved from their start: the mean over filters of
    :math:`\lVert w - w_0 \rVert_1 / (2 W)`, 0 for no change and 1 for filters that share
    no weight with their start (``layers`` as :func:`train_layers` returns)."""
    check.instance("p", p, Tier1Params, where="weights_moved")
    _check_layers("layers", layers, p, "weights_moved", keys=("filters", "initial"))
    return [float(np.abs(np.asarray(f) - np.asarray(w0)).sum(axis=1).mean() / (2 * lp.w_sum_mv))
            for f, w0, lp in zip(layers["filters"], layers["initial"], (p.layer1, p.layer2))]


def drive_brightness_correlation(filters: np.ndarray, intensities: np.ndarray,
                                 brightness: np.ndarray) -> float:
    """How much a layer-1 neuron's input says about an image's mean brightness.

    For filter ``k`` the drive of an image is its summed input over every position,
    :math:`d_k = \\sum_{p} w_k \\cdot x_p` (the convolution of the ON/OFF
    ``intensities`` ``(N, 2, 32, 32)`` with the filter, summed); the result is the
    median over filters of the correlation, across images, between :math:`d_k` and
    ``brightness`` ``(N,)`` (e.g. the grayscale image's mean). Near 1: the layer
    encodes brightness (the Diehl & Cook network on raw intensities: 0.995);
    near 0: it does not.
    """
    where = "drive_brightness_correlation"
    check.array("filters", filters, ndim=2, where=where)
    check.array("intensities", intensities, ndim=4, where=where)
    check.array("brightness", brightness, ndim=1, where=where)
    x = torch.as_tensor(np.asarray(intensities), dtype=torch.float64)
    w = np.asarray(filters, dtype=float)
    field = int(round(math.sqrt(w.shape[1] // x.shape[1])))
    if x.ndim != 4 or w.ndim != 2 or x.shape[1] * field * field != w.shape[1]:
        raise ValueError(f"filters {w.shape} do not fit intensities {tuple(x.shape)}.")
    b = np.asarray(brightness, dtype=float)
    if b.shape != (len(x),) or len(x) < 3:
        raise ValueError(f"brightness must be one value per image (>= 3), got {b.shape}.")
    kernel = torch.from_numpy(w).reshape(len(w), x.shape[1], field, field)
    drive = F.conv2d(x, kernel).sum(dim=(2, 3)).numpy()  # (N, K)
    corr = [np.corrcoef(drive[:, k], b)[0, 1] if drive[:, k].std() > 0 else 0.0
            for k in range(len(w))]
    return float(np.median(corr))
