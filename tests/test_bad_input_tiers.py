"""Bad input to the tier packages is refused at their boundary, by name (property-based).

One registry entry per public name of ``snnlib.tiers``, ``snnlib.tiers.conversion``,
``snnlib.tiers.dog_lif`` and ``snnlib.tiers.brian_stdp`` (their ``__all__``, and what the
chapters call besides: the methods of the classes, ``brian_stdp.network``'s functions).
Each entry lists the arguments (or dataclass fields) that get bad values, a Hypothesis
strategy of bad values for each (NaN, infinities, negatives or zero where they are not
allowed, probabilities outside [0, 1], labels outside 0-9, mismatched lengths, empty
arrays, the wrong dtype, the wrong type), and the call. Every example must raise
``ValueError`` or ``TypeError`` whose message names the argument; a call that runs for
more than ``HUNG_S`` seconds fails (a typo must not hang). ``test_every_public_name_is_covered``
fails when a public callable is neither in the registry nor exempt, with a reason.

Then the checkpoints: a truncated ``cnn.pt``, simulation part, tier-2 feature part,
``layer_stdp.npz``, ``layers_stdp.npz`` or training checkpoint gives a message that names
the file, or is set aside (saying so) and recomputed.

Sizes are tiny: no network is trained and no Brian2 simulation runs.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from _refusal import listed_values, names_the_argument, time_limit

HUNG_S = 10
"""A call with a bad value that runs longer than this has not refused it."""
SCRATCH = os.path.join(tempfile.gettempdir(), "snnlib_bad_input_tiers")
"""The output folder of the calls that must refuse before they write anything (one that does
not refuse writes here, not into the repository)."""

PACKAGES = ("tiers", "conversion", "dog_lif", "brian_stdp")


def pkg(name: str):
    """``snnlib.tiers`` or one of its packages, or a module under them (imported when used)."""
    return importlib.import_module("snnlib.tiers" if name == "tiers" else f"snnlib.tiers.{name}")


# --- strategies of bad values ------------------------------------------------------------------
NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])
NOT_A_NUMBER = st.sampled_from(["1", None, [1.0], b"2", {}, object()])


def not_positive():
    """Numbers <= 0, NaN, infinities, booleans and things that are not numbers."""
    return st.one_of(st.floats(max_value=0.0, allow_infinity=False), st.integers(max_value=0),
                     NAN_INF, NOT_A_NUMBER, st.booleans())


def negative():
    return st.one_of(st.floats(max_value=-1e-6, allow_infinity=False),
                     st.integers(max_value=-1), NAN_INF, NOT_A_NUMBER, st.booleans())


def outside(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False):
    """Numbers outside ``[lo, hi]`` (an open end: ``lo`` or ``hi`` itself too), NaN, inf, types."""
    return st.one_of(st.floats(max_value=lo, exclude_max=not lo_open, allow_infinity=False),
                     st.floats(min_value=hi, exclude_min=not hi_open, allow_infinity=False),
                     NAN_INF, NOT_A_NUMBER)


def bad_int(low: int = 1):
    """Integers below ``low``, floats (even integral ones), booleans, non-numbers."""
    return st.one_of(st.integers(max_value=low - 1), st.floats(), st.booleans(), NOT_A_NUMBER)


def bad_seed():
    return st.one_of(st.integers(max_value=-1), st.floats(), st.booleans(),
                     st.sampled_from(["1", None, [1]]))


def bad_flag():
    return st.one_of(st.integers(), st.floats(), st.text(max_size=2), st.none())


def bad_type(*values):
    """Objects of the wrong type (plus ``values``)."""
    return st.sampled_from([None, 5, 2.5, "x", [1, 2], {"a": 1}, object(), *values])


BAD_PROFILE = st.sampled_from([None, 5, "ci", "book", {"conversion": 1}, object()])
BAD_DEVICE = st.sampled_from(["gpu", "tpu", "cuda:x", 5, b"cpu", ["cpu"]])
BAD_BURST = st.sampled_from([0, 3, -2, 16, 1.5, "2", True, None])


def _spot(draw, shape):
    return tuple(draw(st.integers(0, s - 1)) for s in shape)


@st.composite
def bad_rgb(draw, n: int = 2):
    """Not RGB images (N, 32, 32, 3) as uint8 0-255 or floats in [0, 1]."""
    kind = draw(st.sampled_from(["above_1", "negative", "nan", "inf", "channels_first",
                                 "wrong_size", "empty", "int64", "gray", "scalar", "text"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (n, 32, 32, 3)
    x = rng.random(shape)
    if kind == "above_1":  # 0-255 values stored as floats: ambiguous
        x[_spot(draw, shape)] = draw(st.floats(1.001, 1e6))
    elif kind == "negative":
        x[_spot(draw, shape)] = draw(st.floats(-1e6, -1e-3))
    elif kind in ("nan", "inf"):
        x[_spot(draw, shape)] = draw(NAN_INF) if kind == "inf" else math.nan
    elif kind == "channels_first":
        x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    elif kind == "wrong_size":
        x = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
    elif kind == "empty":
        x = np.zeros((0, 32, 32, 3), dtype=np.uint8)
    elif kind == "int64":
        x = rng.integers(0, 256, shape).astype(np.int64)
    elif kind == "gray":
        x = rng.random((n, 32, 32))
    elif kind == "scalar":
        x = np.float64(0.5)
    else:
        x = "images"
    return x


OUT_OF_RANGE = {"above_1": st.floats(1.001, 1e6), "negative": st.floats(-1e6, -1e-3),
                "nan": st.just(math.nan), "inf": NAN_INF}
"""One bad entry of intensities that must lie in [0, 1]: the kinds the image strategies draw."""


@st.composite
def bad_image_batch(draw, n: int = 2):
    """Not float tensors (N, 3, 32, 32) in [0, 1]."""
    kind = draw(st.sampled_from(["above_1", "negative", "nan", "inf", "uint8", "numpy",
                                 "channels_last", "empty", "3d"]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    shape = (n, 3, 32, 32)
    x = torch.rand(shape, generator=g)
    if kind in OUT_OF_RANGE:
        x[_spot(draw, shape)] = draw(OUT_OF_RANGE[kind])
    elif kind == "uint8":
        x = (x * 255).to(torch.uint8)
    elif kind == "numpy":
        x = x.numpy()
    elif kind == "channels_last":
        x = x.permute(0, 2, 3, 1).contiguous()
    elif kind == "empty":
        x = torch.zeros(0, 3, 32, 32)
    else:
        x = x[0]
    return x


@st.composite
def bad_gray(draw, n: int = 2, channels: int | None = None,
             kinds=("above_1", "negative", "nan", "inf", "uint8", "wrong_size", "empty")):
    """Not grayscale intensities (N, 32, 32) (or ON/OFF ones (N, 2, 32, 32)) in [0, 1]."""
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    shape = (n, 32, 32) if channels is None else (n, channels, 32, 32)
    x = rng.random(shape)
    if kind in OUT_OF_RANGE:
        x[_spot(draw, shape)] = draw(OUT_OF_RANGE[kind])
    elif kind == "uint8":
        x = (x * 255).astype(np.uint8)
        if channels is not None:
            x[0, 0, 0, 0] = 200  # ON/OFF intensities above 1 as well
    elif kind == "wrong_size":
        x = rng.random(shape[:-2] + (16, 16))
    else:
        x = np.zeros((0,) + shape[1:])
    return x


@st.composite
def bad_labels(draw, n: int = 2, n_classes: int = 10,
               kinds=("out_of_range", "length", "fraction", "2d", "text")):
    """Not ``n`` class indices in ``[0, n_classes - 1]``."""
    kind = draw(st.sampled_from(kinds))
    good = draw(st.lists(st.integers(0, n_classes - 1), min_size=n, max_size=n))
    if kind == "out_of_range":
        good[draw(st.integers(0, n - 1))] = draw(st.one_of(
            st.integers(-2**40, -1), st.integers(n_classes, 2**40)))
        return np.array(good)
    if kind == "length":
        return np.array(draw(st.lists(st.integers(0, n_classes - 1), max_size=n + 3).filter(
            lambda v: len(v) != n)), dtype=np.int64)
    if kind == "fraction":
        y = np.array(good, dtype=float)
        y[draw(st.integers(0, n - 1))] += draw(st.floats(0.01, 0.99))
        return y
    if kind == "2d":
        return np.array([good])
    if kind == "empty":
        return np.zeros(0, dtype=np.int64)
    return np.array(["a"] * n)


@st.composite
def bad_signed(draw, m: int = 3, h: int = 150, kinds=None):
    """Not signed intensities (M, h) in [-1, 1] as a float tensor."""
    kind = draw(st.sampled_from(kinds or ["numpy", "int", "nan", "above", "1d", "width"]))
    x = torch.rand(m, h, generator=torch.Generator().manual_seed(draw(st.integers(0, 999))))
    x = 2 * x - 1
    if kind == "numpy":
        return x.numpy()
    if kind == "int":
        return torch.ones(m, h, dtype=torch.int64)
    if kind == "nan":
        x[_spot(draw, (m, h))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    elif kind == "above":
        x[_spot(draw, (m, h))] = draw(st.one_of(st.floats(1.001, 1e6), st.floats(-1e6, -1.001)))
    elif kind == "1d":
        x = x[0]
    elif kind == "width":
        x = x[:, :h - draw(st.integers(1, h - 1))]
    return x


@st.composite
def bad_array(draw, shape, *, negative_ok: bool = False, kinds=None):
    """Not a finite (non-negative unless ``negative_ok``) float array of ``shape``."""
    kind = draw(st.sampled_from(kinds or (["nan", "shape", "empty", "text"]
                                          + ([] if negative_ok else ["negative"]))))
    x = np.random.default_rng(draw(st.integers(0, 999))).random(shape)
    if kind == "nan":
        x[_spot(draw, shape)] = draw(NAN_INF)
    elif kind == "negative":
        x[_spot(draw, shape)] = -draw(st.floats(1e-3, 1e6))
    elif kind == "shape":  # one dimension more or fewer
        x = x.reshape(-1) if x.ndim > 1 else x[None, None]
    elif kind == "empty":
        x = np.zeros((0,) + tuple(shape[1:]))
    else:
        x = "array"
    return x


@st.composite
def bad_trains(draw, n_images: int = 2, n_neurons: int = 2, kinds=None):
    """Not spikes as ``image``, ``neuron`` and ``t_ms`` arrays of one length."""
    kind = draw(st.sampled_from(kinds or ["missing", "lengths", "float_image", "negative_t",
                                          "nan_t", "negative_neuron", "not_dict", "2d"]))
    k = draw(st.integers(1, 6))
    good = {"image": np.sort(np.arange(k) % n_images), "neuron": np.arange(k) % n_neurons,
            "t_ms": np.linspace(0.0, 4.0, k)}
    if kind == "missing":
        good.pop(draw(st.sampled_from(sorted(good))))
    elif kind == "lengths":
        good["neuron"] = good["neuron"][:-1]
    elif kind == "float_image":
        good["image"] = good["image"] + 0.5
    elif kind == "negative_t":
        good["t_ms"][0] = -draw(st.floats(1e-3, 1e6))
    elif kind == "nan_t":
        good["t_ms"][0] = draw(NAN_INF)
    elif kind == "negative_neuron":
        good["neuron"][0] = -draw(st.integers(1, 100))
    elif kind == "2d":
        good = {key: v[None] for key, v in good.items()}
    else:
        return [good["image"], good["neuron"], good["t_ms"]]
    return good


# --- tiny valid things the bad values are put next to --------------------------------------------
@contextmanager
def numpy_codegen():
    """Brian2 objects built with numpy code generation (no compiler: building stays fast)."""
    import brian2 as b2

    b2.BrianLogger.suppress_name("unused_brian_object")
    old = b2.prefs.codegen.target
    b2.prefs.codegen.target = "numpy"
    try:
        yield
    finally:
        b2.prefs.codegen.target = old


@functools.cache
def profile():
    from snnlib import profiles

    return profiles.get_profile("ci")


@functools.cache
def rgb(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@functools.cache
def gray(n: int = 2) -> np.ndarray:
    return np.random.default_rng(1).random((n, 32, 32)).astype(np.float32)


@functools.cache
def onoff(n: int = 2) -> np.ndarray:
    return np.random.default_rng(2).random((n, 2, 32, 32)).astype(np.float32)


LABELS = np.array([3, 7])


@functools.cache
def conv():
    """A tiny CNN, folded and normalised, and its images as a tensor."""
    C = pkg("conversion")
    torch.manual_seed(0)
    model = C.ConvNet(C.ConvNetParams(widths=(2, 3), pool_after=(0, 1))).eval()
    x = C.images_to_tensor(rgb())
    folded = C.fold_batchnorm(model)
    normed, _ = C.normalise(folded, x)
    return model, folded, normed, x


@functools.cache
def whitened():
    """A tiny CNN with a whitening layer (not set)."""
    C = pkg("conversion")
    return C.ConvNet(C.ConvNetParams(widths=(2,), pool_after=(0,), whitening_px=2))


def spike_maps():
    C = pkg("conversion")
    _, _, normed, x = conv()
    return C.simulate(normed, x, LABELS, steps=[1])["spike_maps"]


@functools.cache
def max_pooled():
    """conv()'s network with max pools: normalised, and its spike and pool maps."""
    C = pkg("conversion")
    torch.manual_seed(0)
    model = C.ConvNet(C.ConvNetParams(widths=(2, 3), pool_after=(0, 1), pool="max")).eval()
    x = C.images_to_tensor(rgb())
    normed, _ = C.normalise(C.fold_batchnorm(model), x)
    out = C.simulate(normed, x, LABELS, steps=[1])
    return normed, out["spike_maps"], out["pool_maps"]


@functools.cache
def dog():
    """A tiny tier-2 network, fitted (retina and 8 patches)."""
    D = pkg("dog_lif")
    p = D.DoGLIFParams(n_filters=2, train_patches=8, patch_batch=8, steps=2, pool=2,
                       image_batch=2)
    net = D.DoGLIF(p, seed=0)
    net.fit(rgb(4), progress=False)
    return p, net


def dc_params():
    T = pkg("brian_stdp")
    from snnlib import encoding as E

    return T.BrianSTDPParams(encoding=E.PoissonParams(max_rate_hz=63.75, duration_ms=5.0,
                                                      dt_ms=0.5),
                             layer1=T.LayerParams(n_neurons=2), layer2=T.LayerParams(n_neurons=2),
                             chunk_images=1, codegen_target="numpy")


@functools.cache
def dc_net():
    with numpy_codegen():
        return pkg("brian_stdp").BrianSTDPNetwork(dc_params(), seed=0)


@functools.cache
def frozen():
    T = pkg("brian_stdp")
    with numpy_codegen():
        return T.FrozenReplicas(dc_params(), T.initial_state(dc_params(), 0), replicas=1)


def out_params():
    return pkg("brian_stdp").OutputParams(n_classes=2, neurons_per_class=1, chunk_images=2)


@functools.cache
def rstdp():
    with numpy_codegen():
        return pkg("brian_stdp").RSTDPReadout(out_params(), n_inputs=2, duration_ms=5.0, seed=0,
                                              codegen_target="numpy")


def good_trains(n_images: int = 2):
    return {"image": np.array([0, 0, 1]), "neuron": np.array([0, 1, 1]),
            "t_ms": np.array([0.5, 1.0, 2.0])}


def pop_params():
    return pkg("brian_stdp").PopulationParams(n_classes=2, neurons_per_class=1, steps=2,
                                              eval_steps=2, epochs=1, codegen_target="numpy")


@functools.cache
def pop():
    with numpy_codegen():
        return pkg("brian_stdp").PopulationReadout(pop_params(), 3, seed=0)


def t1():
    N = pkg("brian_stdp.network")
    return N.Tier1Params(layer1=N.ConvLayerParams(n_filters=2, train_patches=4, patch_batch=2),
                         layer2=N.ConvLayerParams(n_filters=2, field_px=3, train_patches=4,
                                                  patch_batch=2),
                         features_pool=(1, 1), codegen_target="numpy")


def t1_layers() -> dict:
    N = pkg("brian_stdp.network")
    (f1, th1), (f2, th2) = (N.initial_layer(t1(), k, 0) for k in (1, 2))
    return {"filters": [f1, f2], "thresholds": [th1, th2], "initial": [f1.copy(), f2.copy()]}


@functools.cache
def frozen_layers():
    N = pkg("brian_stdp.network")
    layers = t1_layers()
    with numpy_codegen():
        return N.FrozenLayers(t1(), layers["filters"], layers["thresholds"], batch=1)


def retina():
    N = pkg("brian_stdp.network")
    k = np.zeros((7, 7))
    k[3, 3] = 1.0
    return N.Retina(torch.from_numpy(k), 0.1, 1.0, N.RetinaParams())


def ablation_details() -> dict:
    return {"params": t1(), "output_params": pop_params(), "retina": None, "layers": {},
            "features": {}, "labels": {}, "readouts": {}}


# --- the registry ---------------------------------------------------------------------------------
@dataclass
class Bad:
    """Bad values for one argument (or field) ``arg`` and the call that gets them."""

    arg: str
    values: st.SearchStrategy
    call: Callable[[Any], Any]
    examples: int = 15
    limit_s: float = HUNG_S
    """How long the call may take (short for the sizes that would run, or fill memory, for
    long if they were not refused)."""


def conversion_entries() -> dict[str, list[Bad]]:
    C = lambda: pkg("conversion")  # noqa: E731
    x = lambda: conv()[3]  # noqa: E731

    def params(**kw):
        return C().ConvNetParams(**{"widths": (2, 3), "pool_after": (0,), **kw})

    def simulate(**kw):
        _, _, normed, images = conv()
        base = dict(net=normed, images=images, labels=LABELS, steps=[1, 2])
        return C().simulate(**{**base, **kw})

    def parts(tmp, **kw):
        _, _, normed, images = conv()
        base = dict(net=normed, images=images, labels=LABELS, steps=[1], folder=tmp,
                    progress=False)
        return C().simulate_parts(**{**base, **kw})

    def train(**kw):
        model = C().ConvNet(C().ConvNetParams(widths=(2,), pool_after=()))
        base = dict(model=model, images=rgb(), labels=LABELS,
                    p=C().TrainParams(epochs=1, batch_size=2, augment=False), seed=0,
                    progress=False)
        return C().train_cnn(**{**base, **kw})

    bad_steps = st.one_of(st.just([]), st.lists(st.integers(max_value=0), min_size=1, max_size=3),
                          st.lists(st.floats(), min_size=1, max_size=2), st.integers(),
                          st.text(max_size=3), st.none(), st.just([2, True]))
    return {
        "conversion.ConvNet": [Bad("params", bad_type(), lambda v: C().ConvNet(v))],
        "conversion.ConvNetParams": [
            Bad("widths", st.one_of(st.just(()), st.lists(st.integers(max_value=0), min_size=1,
                                                          max_size=3),
                                    st.lists(st.floats(), min_size=1, max_size=2), st.integers(),
                                    st.text(max_size=3), st.none(), st.just((True, 2))),
                lambda v: C().ConvNetParams(widths=v, pool_after=())),
            Bad("pool_after", st.one_of(st.lists(st.integers(min_value=2), min_size=1, max_size=3),
                                        st.lists(st.integers(max_value=-1), min_size=1),
                                        st.sampled_from([(0, 0), (1, 1), (True,)]),
                                        st.lists(st.floats(), min_size=1, max_size=2),
                                        st.integers(), st.text(min_size=1, max_size=3), st.none()),
                lambda v: params(pool_after=v)),
            Bad("quantisation_levels", bad_int().filter(lambda v: v is not None),
                lambda v: params(quantisation_levels=v)),
            Bad("pool", st.one_of(st.sampled_from(["min", "", "MAX", None, 2, b"avg"]),
                                  st.text(max_size=3).filter(lambda v: v not in ("avg", "max"))),
                lambda v: params(pool=v)),
            Bad("activation", st.one_of(st.sampled_from(["ReLU", "GELU", "tanh", "", None, 2,
                                                         b"relu"]),
                                        st.text(max_size=4).filter(
                                            lambda v: v not in ("relu", "gelu"))),
                lambda v: params(activation=v)),
        ],
        "conversion.SpikingMaxPool": [
            Bad("kernel_size", bad_int(), lambda v: C().SpikingMaxPool(v)),
            Bad("burst", BAD_BURST, lambda v: C().SpikingMaxPool(2, burst=v)),
        ],
        "conversion.QCFS": [
            Bad("levels", bad_int(), lambda v: C().QCFS(v)),
            Bad("threshold", not_positive(), lambda v: C().QCFS(4, threshold=v)),
        ],
        "conversion.TrainParams": [
            *[Bad(f, bad_int(), lambda v, f=f: C().TrainParams(**{f: v}))
              for f in ("epochs", "batch_size")],
            Bad("cutout_px", bad_int(low=0), lambda v: C().TrainParams(cutout_px=v)),
            Bad("small_crop_epochs", bad_int(low=0),
                lambda v: C().TrainParams(small_crop_epochs=v)),
            Bad("small_crop_px", bad_int().filter(lambda v: v is not None),
                lambda v: C().TrainParams(epochs=4, small_crop_px=v, small_crop_epochs=2)),
            Bad("max_lr", not_positive(), lambda v: C().TrainParams(max_lr=v)),
            Bad("weight_decay", negative(), lambda v: C().TrainParams(weight_decay=v)),
            Bad("momentum", outside(0, 1, lo_open=True, hi_open=True),
                lambda v: C().TrainParams(momentum=v)),
            Bad("warmup", outside(0, 1, lo_open=True, hi_open=True),
                lambda v: C().TrainParams(warmup=v)),
            Bad("label_smoothing", outside(0, 1, hi_open=True),
                lambda v: C().TrainParams(label_smoothing=v)),
            Bad("distill", outside(0, 1), lambda v: C().TrainParams(distill=v)),
            Bad("optimizer", st.one_of(st.sampled_from(["adam", "", "Muon", "SGD", None, 1]),
                                       st.text(max_size=4).filter(
                                           lambda v: v not in ("sgd", "muon"))),
                lambda v: C().TrainParams(optimizer=v)),
            Bad("muon_lr", not_positive(), lambda v: C().TrainParams(muon_lr=v)),
            Bad("muon_momentum", outside(0, 1, hi_open=True),
                lambda v: C().TrainParams(muon_momentum=v)),
            *[Bad(f, bad_flag(), lambda v, f=f: C().TrainParams(**{f: v}))
              for f in ("augment", "bf16")],
        ],
        "conversion.Muon": [
            Bad("params", st.sampled_from([[torch.zeros(3)], [torch.zeros(())],
                                           [torch.zeros(2, 2), torch.zeros(4)]]),
                lambda v: C().Muon(v, lr=0.1)),
            Bad("lr", not_positive(), lambda v: C().Muon([torch.zeros(2, 3)], lr=v)),
            Bad("momentum", outside(0, 1, hi_open=True),
                lambda v: C().Muon([torch.zeros(2, 3)], lr=0.1, momentum=v)),
            Bad("newton_schulz_steps", bad_int(),
                lambda v: C().Muon([torch.zeros(2, 3)], lr=0.1, newton_schulz_steps=v)),
        ],
        "conversion.orthogonalise": [
            Bad("g", st.one_of(st.sampled_from([torch.zeros(3), torch.zeros(2, 3, 4),
                                                np.zeros((2, 3)), None, [[1.0]]])),
                lambda v: C().orthogonalise(v)),
            Bad("steps", bad_int(low=0), lambda v: C().orthogonalise(torch.ones(2, 3), v)),
        ],
        "conversion.augment": [
            Bad("x", st.one_of(bad_image_batch().filter(lambda v: not torch.is_tensor(v)
                                                         or v.ndim != 4 or v.numel() == 0
                                                         or not bool(torch.isfinite(v).all()))),
                lambda v: C().augment(v, torch.Generator())),
            Bad("generator", bad_type(np.random.default_rng(0)),
                lambda v: C().augment(x(), v)),
            Bad("pad", st.one_of(st.integers(max_value=-1), st.integers(32, 10**6), st.floats(),
                                 st.none()), lambda v: C().augment(x(), torch.Generator(), v)),
        ],
        "conversion.bf16_supported": [Bad("device", st.sampled_from([5, None, b"cpu", ["cpu"]]),
                                          lambda v: C().bf16_supported(v))],
        "conversion.evaluate_cnn": [
            Bad("model", bad_type(), lambda v: C().evaluate_cnn(v, x(), LABELS)),
            Bad("images", bad_image_batch(), lambda v: C().evaluate_cnn(conv()[1], v, LABELS)),
            Bad("labels", bad_labels(), lambda v: C().evaluate_cnn(conv()[1], x(), v)),
            Bad("batch", bad_int(), lambda v: C().evaluate_cnn(conv()[1], x(), LABELS, batch=v)),
        ],
        "conversion.fold_batchnorm": [Bad("model", bad_type(torch.nn.Sequential()),
                                          lambda v: C().fold_batchnorm(v))],
        "conversion.relu_twin": [Bad("model", bad_type(torch.nn.Sequential()),
                                     lambda v: C().relu_twin(v))],
        "conversion.set_whitening": [
            Bad("model", bad_type(torch.nn.Sequential(), conv()[0]),  # conv()[0]: no whitening
                lambda v: C().set_whitening(v, x())),
            Bad("images", st.one_of(bad_image_batch(), st.sampled_from([torch.full(
                (2, 3, 32, 32), 0.5)])), lambda v: C().set_whitening(whitened(), v)),
        ],
        "conversion.tta_logits": [
            Bad("model", bad_type(), lambda v: C().tta_logits(v, x())),
            Bad("x", bad_image_batch(), lambda v: C().tta_logits(conv()[1], v)),
        ],
        "conversion.images_to_tensor": [Bad("images", bad_rgb(), lambda v: C().images_to_tensor(v),
                                            examples=30)],
        "conversion.normalise": [
            Bad("net", bad_type(), lambda v: C().normalise(v, x())),
            Bad("images", bad_image_batch(), lambda v: C().normalise(conv()[1], v)),
            Bad("percentile", outside(0, 100, lo_open=True), lambda v: C().normalise(conv()[1], x(),
                                                                                     percentile=v)),
            Bad("batch", bad_int(), lambda v: C().normalise(conv()[1], x(), batch=v)),
            Bad("seed", st.one_of(st.floats(), st.text(max_size=2), st.none()),
                lambda v: C().normalise(conv()[1], x(), seed=v)),
        ],
        "conversion.params_for_profile": [Bad("profile", BAD_PROFILE,
                                              lambda v: C().params_for_profile(v))],
        "conversion.calibrate_biases": [
            Bad("net", bad_type(), lambda v: C().calibrate_biases(v, x(), steps=4)),
            Bad("images", bad_image_batch(), lambda v: C().calibrate_biases(conv()[2], v, steps=4)),
            Bad("steps", bad_int(), lambda v: C().calibrate_biases(conv()[2], x(), steps=v)),
            Bad("steps", st.integers(10**6, 10**12),
                lambda v: C().calibrate_biases(conv()[2], x(), steps=v), examples=2, limit_s=2),
            Bad("levels", bad_int().filter(lambda v: v is not None),
                lambda v: C().calibrate_biases(conv()[2], x(), steps=4, levels=v)),
            Bad("v0", outside(0, 1), lambda v: C().calibrate_biases(conv()[2], x(), steps=4,
                                                                    v0=v)),
            *[Bad(f, bad_flag(), lambda v, f=f: C().calibrate_biases(conv()[2], x(), steps=4,
                                                                     **{f: v}))
              for f in ("signed", "bf16", "progress")],
            Bad("batch", bad_int(), lambda v: C().calibrate_biases(conv()[2], x(), steps=4,
                                                                   batch=v)),
            Bad("device", BAD_DEVICE, lambda v: C().calibrate_biases(conv()[2], x(), steps=4,
                                                                     device=v)),
            Bad("desc", st.sampled_from([None, 5, ["a"]]),
                lambda v: C().calibrate_biases(conv()[2], x(), steps=4, desc=v)),
            Bad("rounds", bad_int(), lambda v: C().calibrate_biases(conv()[2], x(), steps=4,
                                                                    rounds=v)),
            Bad("burst", BAD_BURST, lambda v: C().calibrate_biases(conv()[2], x(), steps=4,
                                                                   burst=v)),
            Bad("reference", st.sampled_from([5, 2.5, "x", [1, 2], object(),
                                              torch.nn.Sequential()]),
                lambda v: C().calibrate_biases(conv()[2], x(), steps=4, reference=v)),
        ],
        "conversion.qcfs_from_relu": [
            Bad("model", bad_type(torch.nn.Sequential()), lambda v: C().qcfs_from_relu(v, x())),
            Bad("images", bad_image_batch(), lambda v: C().qcfs_from_relu(conv()[0], v)),
            Bad("levels", bad_int(), lambda v: C().qcfs_from_relu(conv()[0], x(), levels=v)),
            Bad("percentile", outside(0, 100, lo_open=True),
                lambda v: C().qcfs_from_relu(conv()[0], x(), percentile=v)),
        ],
        "conversion.rates_vs_activations": [
            Bad("net", bad_type(), lambda v: C().rates_vs_activations(v, x(), steps=[1])),
            Bad("images", bad_image_batch(),
                lambda v: C().rates_vs_activations(conv()[2], v, steps=[1])),
            Bad("steps", bad_steps, lambda v: C().rates_vs_activations(conv()[2], x(), steps=v)),
            Bad("steps", st.integers(10**6, 10**12),
                lambda v: C().rates_vs_activations(conv()[2], x(), steps=[1, v]), examples=2,
                limit_s=2),
            Bad("v0", outside(0, 1), lambda v: C().rates_vs_activations(conv()[2], x(), steps=[1],
                                                                        v0=v)),
            Bad("keep_rates", bad_flag(), lambda v: C().rates_vs_activations(
                conv()[2], x(), steps=[1], keep_rates=v)),
        ],
        "conversion.relu_layers": [Bad("net", bad_type(), lambda v: C().relu_layers(v))],
        "conversion.run_tier": [
            Bad("profile", BAD_PROFILE, lambda v: C().run_tier(v, out_dir=SCRATCH)),
            Bad("seed", bad_seed(), lambda v: C().run_tier(profile(), out_dir=SCRATCH, seed=v)),
            Bad("out_dir", st.sampled_from([None, 5, 2.5, ["a"]]),
                lambda v: C().run_tier(profile(), out_dir=v)),
            Bad("device", BAD_DEVICE,
                lambda v: C().run_tier(profile(), out_dir=SCRATCH, device=v)),
        ],
        "conversion.simulate": [
            Bad("net", bad_type(), lambda v: simulate(net=v)),
            Bad("images", bad_image_batch(), lambda v: simulate(images=v)),
            Bad("labels", bad_labels(), lambda v: simulate(labels=v), examples=30),
            Bad("steps", bad_steps, lambda v: simulate(steps=v)),
            Bad("steps", st.integers(10**6, 10**12), lambda v: simulate(steps=[v]), examples=2,
                limit_s=2),
            Bad("input", st.one_of(st.text(max_size=5).filter(
                lambda v: v not in ("analog", "poisson")), st.none(), st.integers()),
                lambda v: simulate(input=v)),
            Bad("v0", outside(0, 1), lambda v: simulate(v0=v)),
            Bad("batch", bad_int(), lambda v: simulate(batch=v)),
            Bad("max_rate_hz", st.one_of(not_positive(), st.floats(1000.001, 1e9)),
                lambda v: simulate(max_rate_hz=v, input="poisson")),
            Bad("dt_ms", not_positive(), lambda v: simulate(dt_ms=v, input="poisson")),
            Bad("generator", bad_type().filter(lambda v: v is not None),
                lambda v: simulate(generator=v, input="poisson")),
            Bad("bf16", bad_flag(), lambda v: simulate(bf16=v)),
            Bad("signed", bad_flag(), lambda v: simulate(signed=v)),
            Bad("burst", BAD_BURST, lambda v: simulate(burst=v)),
            Bad("device", BAD_DEVICE, lambda v: simulate(device=v)),
        ],
        "conversion.simulate_parts": [
            Bad("folder", st.sampled_from([None, 5, 2.5, ["a"]]), lambda v: parts(v)),
            Bad("images", bad_image_batch(), lambda v: parts(SCRATCH, images=v)),
            Bad("labels", bad_labels(), lambda v: parts(SCRATCH, labels=v)),
            Bad("steps", bad_steps, lambda v: parts(SCRATCH, steps=v)),
            Bad("part_images", bad_int(), lambda v: parts(SCRATCH, part_images=v)),
            Bad("seed", st.one_of(st.floats(), st.text(max_size=2), st.none()),
                lambda v: parts(SCRATCH, seed=v)),
            Bad("burst", BAD_BURST, lambda v: parts(SCRATCH, burst=v)),
        ],
        "conversion.smallest_steps_within": [
            Bad("accuracy", st.one_of(
                st.just({}), bad_type(),
                st.dictionaries(st.integers(1, 100), outside(0, 1), min_size=1, max_size=3),
                st.dictionaries(st.integers(max_value=0), st.floats(0, 1), min_size=1, max_size=2),
                st.dictionaries(st.text(max_size=2), st.floats(0, 1), min_size=1, max_size=2)),
                lambda v: C().smallest_steps_within(v, 0.5, 1.0)),
            Bad("reference", outside(0, 1), lambda v: C().smallest_steps_within({1: 0.5}, v, 1.0)),
            Bad("points", negative(), lambda v: C().smallest_steps_within({1: 0.5}, 0.5, v)),
        ],
        "conversion.synaptic_operations": [
            Bad("net", bad_type(), lambda v: C().synaptic_operations(v, spike_maps(), 1)),
            Bad("spike_maps", st.one_of(bad_type().filter(lambda v: not isinstance(v, list)),
                                        st.just([np.full((32, 32), np.nan), np.zeros(16)]),
                                        st.just([-np.ones((32, 32)), np.zeros(16)])),
                lambda v: C().synaptic_operations(conv()[2], v, 1)),
            Bad("steps", bad_int(), lambda v: C().synaptic_operations(conv()[2], spike_maps(), v)),
            Bad("input_map", st.one_of(bad_array((32, 32)),
                                       bad_type().filter(lambda v: v is not None)),
                lambda v: C().synaptic_operations(conv()[2], spike_maps(), 1, input_map=v)),
            Bad("pool_maps", st.one_of(
                st.sampled_from([None, [None, None], [np.zeros((16, 16))], "maps"]),
                st.just([np.full((16, 16), np.nan), np.zeros((8, 8))]),
                st.just([-np.ones((16, 16)), np.zeros((8, 8))]),
                st.just([np.zeros((32, 32)), np.zeros((8, 8))])),
                lambda v: C().synaptic_operations(max_pooled()[0], max_pooled()[1], 1,
                                                  pool_maps=v)),
        ],
        "conversion.train_cnn": [
            Bad("model", bad_type(torch.nn.Sequential()), lambda v: train(model=v)),
            Bad("images", bad_rgb(), lambda v: train(images=v)),
            Bad("labels", bad_labels(), lambda v: train(labels=v)),
            Bad("p", bad_type(), lambda v: train(p=v)),
            Bad("seed", st.one_of(st.floats(), st.text(max_size=2), st.none()),
                lambda v: train(seed=v)),
            Bad("eval_labels", bad_labels(), lambda v: train(eval_images=rgb(), eval_labels=v)),
            Bad("eval_images", bad_rgb(), lambda v: train(eval_images=v, eval_labels=LABELS)),
            Bad("teacher", bad_type(),
                lambda v: train(teacher=v, p=C().TrainParams(epochs=1, batch_size=2,
                                                              augment=False, distill=0.5))),
        ],
    }


def dog_lif_entries() -> dict[str, list[Bad]]:
    D = lambda: pkg("dog_lif")  # noqa: E731

    def params(**kw):
        return D().DoGLIFParams(**kw)

    def layer_run(**kw):
        p = dog()[0]
        base = dict(signed=torch.zeros(3, p.n_inputs // 2), w_mv=torch.ones(2, p.n_inputs),
                    theta_mv=torch.zeros(2), p=p, rng=np.random.default_rng(0))
        return D().layer_run(**{**base, **kw})

    positive = ("norm_eps", "zca_eps", "max_rate_hz", "dt_ms", "tau_mem_ms", "v_gap_mv",
                "w_sum_mv", "tau_stdp_ms")
    ints = ("patch_px", "stride_px", "downsample", "steps", "n_filters", "train_patches",
            "patch_batch", "pool", "image_batch")
    return {
        "dog_lif.DoGLIFParams": [
            Bad("retina", st.one_of(st.text(max_size=4).filter(lambda v: v not in ("zca", "dog")),
                                    bad_type()), lambda v: params(retina=v)),
            Bad("dog", bad_type(), lambda v: params(dog=v)),
            *[Bad(f, bad_int(), lambda v, f=f: params(**{f: v}), examples=8) for f in ints],
            *[Bad(f, not_positive(), lambda v, f=f: params(**{f: v}), examples=8)
              for f in positive],
            *[Bad(f, negative(), lambda v, f=f: params(**{f: v}), examples=8)
              for f in ("inhibition_mv", "a_plus", "a_minus", "theta_eta_mv")],
            Bad("scale_quantile", outside(0.5, 1), lambda v: params(scale_quantile=v),
                examples=25),
            Bad("k_winners", st.one_of(bad_int(low=0), st.integers(9, 10**6)),
                lambda v: params(n_filters=8, k_winners=v), examples=8),
        ],
        "dog_lif.keep_k_winners": [
            Bad("counts", st.one_of(bad_type(), st.just(np.ones((3, 4), np.float32)),
                                    st.just(torch.ones(3, 4, dtype=torch.bool)),
                                    st.just(torch.ones(4)), st.just(torch.full((3, 4), -1.0)),
                                    st.just(torch.tensor([[1.0, math.nan]]))),
                lambda v: D().keep_k_winners(v, 2)),
            Bad("k", bad_int(low=0), lambda v: D().keep_k_winners(torch.ones(3, 4), v)),
        ],
        "dog_lif.DoGLIF": [
            Bad("params", bad_type(), lambda v: D().DoGLIF(v, seed=0)),
            Bad("seed", bad_seed(), lambda v: D().DoGLIF(dog()[0], seed=v)),
            Bad("learn", bad_flag(), lambda v: D().DoGLIF(dog()[0], seed=0, learn=v)),
        ],
        "dog_lif.DoGLIF.fit": [
            Bad("images", bad_rgb(), lambda v: D().DoGLIF(dog()[0], seed=0).fit(v, progress=False)),
            Bad("retina", bad_type().filter(lambda v: v is not None),
                lambda v: D().DoGLIF(dog()[0], seed=0).fit(
                rgb(4), retina=v, progress=False)),
        ],
        "dog_lif.DoGLIF.features": [
            Bad("images", bad_rgb(), lambda v: dog()[1].features(v, seed=1, progress=False)),
            Bad("seed", bad_seed(), lambda v: dog()[1].features(rgb(), seed=v, progress=False)),
            Bad("part_images", bad_int(), lambda v: dog()[1].features(rgb(), seed=1,
                                                                      part_images=v,
                                                                      progress=False)),
        ],
        "dog_lif.features_together": [
            Bad("nets", st.one_of(bad_type(), st.just([])),
                lambda v: D().features_together(v, rgb(), seed=1, progress=False)),
            Bad("images", bad_rgb(),
                lambda v: D().features_together([dog()[1]], v, seed=1, progress=False)),
            Bad("checkpoints", st.sampled_from(["folder", 5, [None, None], [5], {"a": 1}]),
                lambda v: D().features_together([dog()[1]], rgb(), seed=1, checkpoints=v,
                                                progress=False)),
        ],
        "dog_lif.DoGLIF.spikes_of_image": [
            Bad("image", st.one_of(bad_rgb(n=1).map(
                lambda v: v[0] if np.ndim(v) == 4 and len(v) else v),
                                   st.just(rgb())), lambda v: dog()[1].spikes_of_image(v, seed=0)),
            Bad("positions", st.one_of(st.lists(st.integers(29 * 29, 10**6), min_size=1),
                                       st.lists(st.integers(max_value=-1), min_size=1),
                                       st.lists(st.floats(), min_size=1), st.just([])),
                lambda v: dog()[1].spikes_of_image(rgb()[0], seed=0, positions=v)),
            Bad("seed", bad_seed(), lambda v: dog()[1].spikes_of_image(rgb()[0], seed=v)),
        ],
        "dog_lif.DoGLIF.learn_batch": [
            Bad("patches", bad_signed(), lambda v: D().DoGLIF(dog()[0], seed=0).learn_batch(
                v, np.random.default_rng(0))),
            Bad("rng", bad_type(), lambda v: D().DoGLIF(dog()[0], seed=0).learn_batch(
                torch.zeros(3, dog()[0].n_inputs // 2), v)),
        ],
        "dog_lif.DoGLIF.load_state_dict": [
            Bad("s", st.one_of(bad_type(), st.builds(
                lambda k: {key: val for key, val in dog()[1].state_dict().items() if key != k},
                st.sampled_from(["w_mv", "theta_mv", "w_initial"])),
                st.just({**{"w_mv": np.zeros((3, 3))}, **{k: v for k, v in
                                                        [("w_initial", np.zeros((2, 150))),
                                                         ("theta_mv", np.zeros(2)),
                                                         ("learn", np.array(True)),
                                                         ("retina_retina", np.array("zca")),
                                                         ("retina_scale", np.array(1.0))]}})),
                lambda v: D().DoGLIF(dog()[0], seed=0).load_state_dict(v)),
        ],
        "dog_lif.RetinaFit": [
            Bad("retina", st.one_of(st.text(max_size=3).filter(lambda v: v not in ("zca", "dog")),
                                    bad_type()), lambda v: D().RetinaFit(v, 1.0)),
            Bad("scale", not_positive(), lambda v: D().RetinaFit("dog", v)),
        ],
        "dog_lif.RetinaFit.fit": [
            Bad("images", bad_rgb(), lambda v: D().RetinaFit.fit(v, dog()[0], seed=0)),
            Bad("p", bad_type(), lambda v: D().RetinaFit.fit(rgb(), v, seed=0)),
            Bad("seed", st.one_of(st.floats(), st.text(max_size=2), st.none()),
                lambda v: D().RetinaFit.fit(rgb(), dog()[0], seed=v)),
            Bad("n_images", bad_int(), lambda v: D().RetinaFit.fit(rgb(), dog()[0], seed=0,
                                                                   n_images=v)),
            Bad("images", st.just(np.full((2, 32, 32, 3), 128, np.uint8)),
                lambda v: D().RetinaFit.fit(v, dog()[0], seed=0), examples=1),
        ],
        "dog_lif.RetinaFit.intensities": [
            Bad("images", bad_rgb(), lambda v: dog()[1].retina.intensities(v, dog()[0])),
            Bad("p", st.one_of(bad_type(), st.builds(lambda: D().DoGLIFParams(retina="dog")),
                               st.builds(lambda: D().DoGLIFParams(patch_px=3)),
                               st.builds(lambda: D().DoGLIFParams(retina="dog", downsample=2))),
                lambda v: dog()[1].retina.intensities(rgb(), v)),
        ],
        "dog_lif.layer_run": [
            Bad("signed", bad_signed(), lambda v: layer_run(signed=v)),
            Bad("w_mv", st.one_of(bad_type(), st.just(torch.ones(2, 7)),
                                  st.just(torch.full((2, 300), math.nan)),
                                  st.just(np.ones((2, 300)))), lambda v: layer_run(w_mv=v)),
            Bad("theta_mv", st.one_of(bad_type(), st.just(torch.zeros(3)),
                                      st.just(torch.tensor([math.nan, 0.0]))),
                lambda v: layer_run(theta_mv=v)),
            Bad("p", bad_type(), lambda v: layer_run(p=v)),
            Bad("rng", bad_type(), lambda v: layer_run(rng=v)),
            Bad("learn", bad_flag(), lambda v: layer_run(learn=v)),
            Bad("record", st.integers(10**7, 10**9), lambda v: layer_run(
                signed=torch.zeros(2000, 75), w_mv=torch.ones(256, 150),
                theta_mv=torch.zeros(256), p=replace(dog()[0], steps=v, n_filters=256),
                record=True), examples=2, limit_s=2),
        ],
        "dog_lif.on_off_inputs": [Bad("signed", bad_signed(kinds=["numpy", "int", "nan", "above"]),
                                      lambda v: D().on_off_inputs(v))],
        "dog_lif.poisson_on_off": [
            Bad("signed", bad_signed(kinds=["numpy", "int", "nan", "above"]),
                lambda v: D().poisson_on_off(v, 0.3, np.random.default_rng(0))),
            Bad("p_max", outside(0, 1, lo_open=True),
                lambda v: D().poisson_on_off(torch.zeros(2, 3), v, np.random.default_rng(0)),
                examples=25),
            Bad("rng", bad_type(np.random.RandomState(0)),
                lambda v: D().poisson_on_off(torch.zeros(2, 3), 0.3, v)),
        ],
        "dog_lif.params_for_profile": [Bad("profile", BAD_PROFILE,
                                           lambda v: D().params_for_profile(v))],
        "dog_lif.run_tier": [
            Bad("profile", BAD_PROFILE, lambda v: D().run_tier(v, out_dir=SCRATCH)),
            Bad("seed", bad_seed(), lambda v: D().run_tier(profile(), out_dir=SCRATCH, seed=v)),
            Bad("params", bad_type().filter(lambda v: v is not None),
                lambda v: D().run_tier(profile(), out_dir=SCRATCH, params=v)),
            Bad("out_dir", st.sampled_from([None, 5, 2.5, ["a"]]),
                lambda v: D().run_tier(profile(), out_dir=v)),
        ],
        "dog_lif.spike_statistics": [
            Bad("filter_spikes", st.one_of(bad_array((3, 2)), st.just(np.ones((3, 8)))),
                lambda v: D().spike_statistics(v, dog()[0])),
            Bad("p", bad_type(), lambda v: D().spike_statistics(np.ones((3, 2)), v)),
        ],
    }


def brian_stdp_entries() -> dict[str, list[Bad]]:
    T = lambda: pkg("brian_stdp")  # noqa: E731
    N = lambda: pkg("brian_stdp.network")  # noqa: E731

    def bp(**kw):
        return replace(dc_params(), **kw)

    def conv_layer(**kw):
        return T().ConvLayerParams(**kw)

    def tier1(**kw):
        return replace(t1(), **kw)

    def synaptic(**kw):
        base = dict(x=gray(), hidden_counts=[np.ones((2, 2)), np.ones((2, 2))],
                    output_counts=np.ones((2, 2)), params=dc_params())
        return T().synaptic_events(**{**base, **kw})

    def features(**kw):
        base = dict(p=t1(), layers=t1_layers(), intensities=onoff(), seed=0)
        return N().features(**{**base, **kw})

    bad_state = st.one_of(
        bad_type(),
        st.sampled_from(["w1", "theta1", "w2", "theta2"]).map(
            lambda k: {key: v for key, v in T().initial_state(dc_params(), 0).items() if key != k}),
        st.builds(lambda: {**T().initial_state(dc_params(), 0), "w1": np.zeros(7)}),
        st.builds(lambda: {**T().initial_state(dc_params(), 0), "theta2": np.full(2, np.nan)}))
    return {
        "brian_stdp.LayerParams": [
            Bad("n_neurons", bad_int(), lambda v: T().LayerParams(n_neurons=v)),
            *[Bad(f, bad_type(), lambda v, f=f: T().LayerParams(**{f: v}), examples=6)
              for f in ("exc", "inh", "stdp")],
            *[Bad(f, negative(), lambda v, f=f: T().LayerParams(**{f: v}), examples=10)
              for f in ("w_exc_inh", "w_inh_exc", "weight_sum_per_input", "w_init_max")],
            Bad("lateral_inhibition", bad_flag(), lambda v: T().LayerParams(lateral_inhibition=v)),
        ],
        "brian_stdp.BrianSTDPParams": [
            Bad("encoding", bad_type(), lambda v: bp(encoding=v)),
            Bad("layer1", bad_type(), lambda v: bp(layer1=v)),
            Bad("layer2", bad_type().filter(lambda v: v is not None), lambda v: bp(layer2=v)),
            Bad("chunk_images", bad_int(), lambda v: bp(chunk_images=v)),
            Bad("min_spikes", bad_int(0), lambda v: bp(min_spikes=v)),
            Bad("max_boosts", bad_int(0), lambda v: bp(max_boosts=v)),
            Bad("boost_hz", st.one_of(negative(), st.floats(1e4, 1e9)), lambda v: bp(boost_hz=v),
                examples=25),
            Bad("codegen_target", st.one_of(st.text(max_size=4), bad_type()),
                lambda v: bp(codegen_target=v)),
        ],
        "brian_stdp.BrianSTDPNetwork": [
            Bad("params", st.one_of(bad_type(), st.builds(lambda: T().Tier1Params())),
                lambda v: T().BrianSTDPNetwork(v, seed=0)),
            Bad("seed", bad_seed(), lambda v: T().BrianSTDPNetwork(dc_params(), seed=v)),
        ],
        "brian_stdp.BrianSTDPNetwork.fit": [
            Bad("intensities", bad_gray(), lambda v: dc_net().fit(v, progress=False)),
            Bad("layer", st.one_of(st.integers().filter(lambda v: v not in (1, 2)),
                                   st.sampled_from([True, 1.0, "1", None, "both"])),
                lambda v: dc_net().fit(gray(), layer=v, progress=False)),
            Bad("snapshots", st.one_of(st.lists(st.integers(max_value=-1), min_size=1),
                                       st.lists(st.floats(), min_size=1), st.integers(),
                                       st.text(min_size=1, max_size=2)),
                lambda v: dc_net().fit(gray(), snapshots=v, progress=False)),
            Bad("checkpoint_every", bad_int(), lambda v: dc_net().fit(
                gray(), checkpoint_every=v, progress=False)),
        ],
        "brian_stdp.BrianSTDPNetwork.weights": [
            Bad("layer", bad_int().filter(lambda v: v != 0) | st.integers(3, 100) | st.just(0),
                lambda v: dc_net().weights(v)),
        ],
        "brian_stdp.BrianSTDPNetwork.spike_counts": [
            Bad("intensities", bad_gray(), lambda v: dc_net().spike_counts(v)),
        ],
        "brian_stdp.BrianSTDPNetwork.load_state_dict": [
            Bad("state", bad_state, lambda v: dc_net().load_state_dict(v)),
        ],
        "brian_stdp.FrozenReplicas": [
            Bad("params", bad_type(), lambda v: T().FrozenReplicas(v, {}, replicas=1)),
            Bad("state", bad_state, lambda v: T().FrozenReplicas(dc_params(), v, replicas=1)),
            Bad("replicas", bad_int(), lambda v: T().FrozenReplicas(
                dc_params(), T().initial_state(dc_params(), 0), replicas=v)),
        ],
        "brian_stdp.FrozenReplicas.run": [
            Bad("intensities", bad_gray(), lambda v: frozen().run(v, seed=0)),
            Bad("seed", bad_seed(), lambda v: frozen().run(gray(), seed=v)),
        ],
        "brian_stdp.OutputParams": [
            *[Bad(f, bad_int(), lambda v, f=f: T().OutputParams(**{f: v}), examples=8)
              for f in ("n_classes", "neurons_per_class", "balance_window", "chunk_images")],
            *[Bad(f, bad_type(), lambda v, f=f: T().OutputParams(**{f: v}), examples=6)
              for f in ("exc", "rstdp")],
            *[Bad(f, negative(), lambda v, f=f: T().OutputParams(**{f: v}), examples=8)
              for f in ("w_inh", "weight_sum_per_input", "w_init_max")],
            Bad("reward", not_positive(), lambda v: T().OutputParams(reward=v)),
            Bad("punishment", st.one_of(st.floats(min_value=1e-9, allow_infinity=False),
                                        NAN_INF, NOT_A_NUMBER, st.booleans()),
                lambda v: T().OutputParams(punishment=v)),
            *[Bad(f, bad_flag(), lambda v, f=f: T().OutputParams(**{f: v}), examples=8)
              for f in ("balanced_reward", "reward_decision_only")],
        ],
        "brian_stdp.RSTDPReadout": [
            Bad("params", bad_type(), lambda v: T().RSTDPReadout(v, n_inputs=2, duration_ms=5.0,
                                                                 seed=0)),
            Bad("n_inputs", bad_int(), lambda v: T().RSTDPReadout(out_params(), n_inputs=v,
                                                                  duration_ms=5.0, seed=0)),
            Bad("duration_ms", st.one_of(not_positive(), st.floats(0.0, 0.5, exclude_max=True)),
                lambda v: T().RSTDPReadout(out_params(), n_inputs=2, duration_ms=v, seed=0)),
            Bad("seed", bad_seed(), lambda v: T().RSTDPReadout(out_params(), n_inputs=2,
                                                               duration_ms=5.0, seed=v)),
            Bad("codegen_target", st.one_of(st.text(max_size=3), bad_type()),
                lambda v: T().RSTDPReadout(out_params(), n_inputs=2, duration_ms=5.0, seed=0,
                                           codegen_target=v)),
        ],
        "brian_stdp.RSTDPReadout.fit": [
            Bad("trains", st.one_of(bad_trains(), st.just({**good_trains(),
                                                           "neuron": np.array([0, 1, 5])})),
                lambda v: rstdp().fit(v, np.array([0, 1]), progress=False)),
            Bad("labels", bad_labels(n_classes=2, kinds=("out_of_range", "fraction", "text",
                                                         "empty")),
                lambda v: rstdp().fit(good_trains(), v, progress=False)),
            Bad("epochs", bad_int(), lambda v: rstdp().fit(good_trains(), np.array([0, 1]),
                                                           epochs=v, progress=False)),
        ],
        "brian_stdp.RSTDPReadout.predict": [
            Bad("trains", bad_trains(), lambda v: rstdp().predict(v, 2)),
            Bad("n_images", bad_int(), lambda v: rstdp().predict(good_trains(), v)),
        ],
        "brian_stdp.PopulationParams": [
            *[Bad(f, bad_int(), lambda v, f=f: T().PopulationParams(**{f: v}), examples=8)
              for f in ("n_classes", "neurons_per_class", "steps", "eval_steps", "epochs")],
            *[Bad(f, not_positive(), lambda v, f=f: T().PopulationParams(**{f: v}), examples=8)
              for f in ("dt_ms", "max_rate_hz", "z_max", "tau_mem_ms", "v_gap_mv",
                        "baseline_images", "init_drive")],
            *[Bad(f, negative(), lambda v, f=f: T().PopulationParams(**{f: v}), examples=8)
              for f in ("inhibition_mv", "eta", "theta_eta_mv", "decision_eta_mv")],
            *[Bad(f, outside(0, 1, lo_open=True), lambda v, f=f: T().PopulationParams(**{f: v}),
                  examples=8) for f in ("fire_target", "eta_decay")],
            *[Bad(f, bad_flag(), lambda v, f=f: T().PopulationParams(**{f: v}), examples=8)
              for f in ("conserve", "tonic_input")],
            *[Bad(f, st.one_of(st.text(max_size=4).filter(lambda v: v != "none"), bad_type()),
                  lambda v, f=f: T().PopulationParams(**{f: v}), examples=8)
              for f in ("decide_by", "prediction", "codegen_target")],
        ],
        "brian_stdp.PopulationReadout": [
            Bad("p", bad_type(), lambda v: T().PopulationReadout(v, 3, seed=0)),
            Bad("n_features", bad_int(), lambda v: T().PopulationReadout(pop_params(), v, seed=0)),
            Bad("seed", bad_seed(), lambda v: T().PopulationReadout(pop_params(), 3, seed=v)),
        ],
        "brian_stdp.PopulationReadout.fit": [
            Bad("features", bad_array((4, 3), negative_ok=True),
                lambda v: pop().fit(v, np.array([0, 1, 0, 1]))),
            Bad("labels", bad_labels(n=4, n_classes=2),
                lambda v: pop().fit(np.ones((4, 3)), v)),
            Bad("validation", st.one_of(bad_type().filter(lambda v: v is not None),
                                        st.just((np.ones((2, 3)), np.array([0, 5]))),
                                        st.just((np.full((2, 3), np.nan), np.array([0, 1])))),
                lambda v: pop().fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), validation=v)),
        ],
        "brian_stdp.RetinaParams": [
            Bad("kernel_px", st.one_of(bad_int(), st.integers(min_value=0).map(lambda k: 2 * k),
                                       st.just(1)), lambda v: T().RetinaParams(kernel_px=v)),
            *[Bad(f, not_positive(), lambda v, f=f: T().RetinaParams(**{f: v}))
              for f in ("zca_eps", "lcn_sigma_px")],
            Bad("scale_quantile", outside(0.5, 1), lambda v: T().RetinaParams(scale_quantile=v)),
            Bad("fit_images", bad_int(), lambda v: T().RetinaParams(fit_images=v)),
        ],
        "brian_stdp.ConvLayerParams": [
            *[Bad(f, bad_int(), lambda v, f=f: conv_layer(**{f: v}), examples=8)
              for f in ("n_filters", "field_px", "train_patches", "patch_batch")],
            *[Bad(f, not_positive(), lambda v, f=f: conv_layer(**{f: v}), examples=8)
              for f in ("w_sum_mv", "tau_mem_ms", "v_gap_mv", "tau_stdp_ms")],
            *[Bad(f, negative(), lambda v, f=f: conv_layer(**{f: v}), examples=8)
              for f in ("inhibition_mv", "a_plus", "a_minus", "theta_eta_mv")],
            Bad("win_target", outside(0, 1, lo_open=True), lambda v: conv_layer(win_target=v)),
        ],
        "brian_stdp.Tier1Params": [
            *[Bad(f, bad_type(), lambda v, f=f: tier1(**{f: v}), examples=6)
              for f in ("retina", "layer1", "layer2")],
            *[Bad(f, bad_int(), lambda v, f=f: tier1(**{f: v}), examples=8)
              for f in ("pool_px", "steps")],
            Bad("feature_steps", bad_int().filter(lambda v: v is not None),
                lambda v: tier1(feature_steps=v)),
            *[Bad(f, not_positive(), lambda v, f=f: tier1(**{f: v}), examples=8)
              for f in ("max_rate_hz", "dt_ms")],
            Bad("v_rest_mv", st.one_of(NAN_INF, NOT_A_NUMBER), lambda v: tier1(v_rest_mv=v)),
            Bad("features_pool", st.one_of(
                st.integers(), st.text(max_size=3), st.none(),
                st.lists(st.integers(1, 3), max_size=4).filter(lambda v: len(v) != 2),
                st.tuples(st.integers(max_value=0), st.integers(1, 2)),
                st.tuples(st.integers(29, 100), st.integers(1, 2)),
                st.tuples(st.floats(), st.integers(1, 2)), st.just((True, 1)),
                st.tuples(st.just(()), st.integers(1, 2)),  # an empty pyramid
                st.tuples(st.integers(1, 2), st.tuples(st.integers(1, 2),
                                                       st.integers(13, 100)))),
                lambda v: tier1(features_pool=v)),
            Bad("features_sqrt", st.one_of(st.integers(), st.text(max_size=3), st.none()),
                lambda v: tier1(features_sqrt=v)),
            Bad("codegen_target", st.one_of(st.text(max_size=4), bad_type()),
                lambda v: tier1(codegen_target=v)),
        ],
        "brian_stdp.ablations": [
            Bad("profile", BAD_PROFILE, lambda v: T().ablations(
                v, ablation_details(), out_dir=SCRATCH, variants={}, n_validation=2)),
            Bad("n_validation", bad_int(), lambda v: T().ablations(
                profile(), ablation_details(), out_dir=SCRATCH, variants={}, n_validation=v)),
            Bad("details", st.one_of(bad_type(), st.just({"params": 1})), lambda v: T().ablations(
                profile(), v, out_dir=SCRATCH, variants={}, n_validation=2)),
            Bad("variants", st.one_of(
                st.just({"a": {"no_such_field": 1}}), st.just({"a": 5}),
                st.dictionaries(st.just("a"), st.fixed_dictionaries({"eta": negative()}),
                                min_size=1)), lambda v: T().ablations(
                profile(), ablation_details(), out_dir=SCRATCH, variants=v, n_validation=2)),
        ],
        "brian_stdp.output_params": [Bad("profile", BAD_PROFILE, lambda v: T().output_params(v))],
        "brian_stdp.tier_params": [Bad("profile", BAD_PROFILE, lambda v: T().tier_params(v))],
        "brian_stdp.params_for_profile": [Bad("profile", BAD_PROFILE,
                                              lambda v: T().params_for_profile(v))],
        "brian_stdp.run_diehl_cook": [
            Bad("profile", BAD_PROFILE, lambda v: T().run_diehl_cook(v, out_dir=SCRATCH)),
            Bad("seed", bad_seed(), lambda v: T().run_diehl_cook(profile(), out_dir=SCRATCH,
                                                                 seed=v)),
            Bad("replicas", bad_int(), lambda v: T().run_diehl_cook(profile(), out_dir=SCRATCH,
                                                                    replicas=v)),
            Bad("device", st.sampled_from(["gpu", "cuda", 5]), lambda v: T().run_diehl_cook(
                profile(), out_dir=SCRATCH, device=v)),
        ],
        "brian_stdp.run_tier": [
            Bad("profile", BAD_PROFILE, lambda v: T().run_tier(v, out_dir=SCRATCH)),
            Bad("seed", bad_seed(), lambda v: T().run_tier(profile(), out_dir=SCRATCH, seed=v)),
            *[Bad(f, bad_type().filter(lambda v: v is not None),
                  lambda v, f=f: T().run_tier(profile(), out_dir=SCRATCH, **{f: v}))
              for f in ("params", "output")],
            Bad("device", st.sampled_from(["gpu", "cuda", 5]), lambda v: T().run_tier(
                profile(), out_dir=SCRATCH, device=v)),
        ],
        "brian_stdp.train_hidden_layers": [
            Bad("profile", BAD_PROFILE, lambda v: T().train_hidden_layers(v, out_dir=SCRATCH)),
            Bad("seed", bad_seed(), lambda v: T().train_hidden_layers(profile(), out_dir=SCRATCH,
                                                                      seed=v)),
            Bad("n_images", bad_int().filter(lambda v: v is not None),
                lambda v: T().train_hidden_layers(profile(), out_dir=SCRATCH, n_images=v)),
            Bad("layers", st.sampled_from([(2,), (1, 2, 3), "12", (True,), 5, None, ()]),
                lambda v: T().train_hidden_layers(profile(), out_dir=SCRATCH, layers=v)),
        ],
        "brian_stdp.decide": [
            Bad("class_counts", bad_array((3, 2), kinds=["nan", "negative", "empty", "text"]),
                lambda v: T().decide(v, np.zeros((3, 2)))),
            Bad("first_spike_ms", st.one_of(st.just(np.full((3, 2), np.nan)),
                                            st.just(np.zeros((3, 3))), st.just(np.zeros(3))),
                lambda v: T().decide(np.ones((3, 2)), v)),
            Bad("rng", bad_type().filter(lambda v: v is not None),
                lambda v: T().decide(np.ones((3, 2)), np.zeros((3, 2)), rng=v)),
        ],
        "brian_stdp.field_similarity": [
            Bad("weights", st.one_of(bad_array((3, 5), negative_ok=True),
                                     st.just(np.ones((3, 5))), st.just(np.ones((1, 5)))),
                lambda v: T().field_similarity(v)),
        ],
        "brian_stdp.field_smoothness": [
            Bad("weights", st.one_of(bad_array((2, 1024), negative_ok=True),
                                     st.just(np.ones((2, 1000)))),
                lambda v: T().field_smoothness(v)),
        ],
        "brian_stdp.learned_fraction": [
            Bad("weights", bad_array((3, 5), negative_ok=True),
                lambda v: T().learned_fraction(v, np.ones((3, 5)))),
            Bad("initial", bad_array((3, 5), negative_ok=True),
                lambda v: T().learned_fraction(np.ones((3, 5)), v)),
            Bad("threshold", outside(-1, 1), lambda v: T().learned_fraction(
                np.ones((3, 5)), np.ones((3, 5)), threshold=v)),
        ],
        "brian_stdp.image_spikes": [
            Bad("frozen", bad_type(), lambda v: T().image_spikes(v, rstdp(), gray()[0], seed=0)),
            Bad("readout", bad_type(), lambda v: T().image_spikes(frozen(), v, gray()[0], seed=0)),
            Bad("image", bad_gray(n=1).map(lambda v: v[0] if len(v) else v),
                lambda v: T().image_spikes(frozen(), rstdp(), v, seed=0)),
            Bad("seed", bad_seed(), lambda v: T().image_spikes(frozen(), rstdp(), gray()[0],
                                                               seed=v)),
        ],
        "brian_stdp.initial_state": [
            Bad("params", bad_type(), lambda v: T().initial_state(v, 0)),
            Bad("seed", bad_seed(), lambda v: T().initial_state(dc_params(), v)),
        ],
        "brian_stdp.readout_training_indices": [
            Bad("labels", bad_labels(n=20, kinds=("out_of_range", "fraction", "2d", "text",
                                                  "empty")),
                lambda v: T().readout_training_indices(v, 10, 10, 0)),
            Bad("n_hidden", bad_int(), lambda v: T().readout_training_indices(
                np.arange(20) % 10, v, 10, 0)),
            Bad("n_readout", bad_int(), lambda v: T().readout_training_indices(
                np.arange(20) % 10, 10, v, 0)),
            Bad("seed", bad_seed(), lambda v: T().readout_training_indices(
                np.arange(20) % 10, 10, 10, v)),
        ],
        "brian_stdp.select_trains": [
            Bad("trains", bad_trains(), lambda v: T().select_trains(v, np.array([0, 1]))),
            Bad("images", st.one_of(st.lists(st.integers(max_value=-1), min_size=1),
                                    st.lists(st.floats(), min_size=1), st.just([[0, 1]])),
                lambda v: T().select_trains(good_trains(), v)),
        ],
        "brian_stdp.snapshot_schedule": [
            Bad("n_images", bad_int(), lambda v: T().snapshot_schedule(v, 5)),
            Bad("chunk_images", bad_int(), lambda v: T().snapshot_schedule(100, v)),
        ],
        "brian_stdp.spike_statistics": [
            Bad("counts", bad_array((3, 4)), lambda v: T().spike_statistics(v, 10.0)),
            Bad("duration_ms", not_positive(), lambda v: T().spike_statistics(np.ones((3, 4)), v)),
        ],
        "brian_stdp.synaptic_events": [
            Bad("x", bad_gray(), lambda v: synaptic(x=v)),
            Bad("hidden_counts", st.one_of(
                bad_type(), st.just([np.ones((2, 2))]),
                st.just([np.ones((2, 2)), np.full((2, 2), np.nan)]),
                st.just([np.ones((3, 2)), np.ones((2, 2))]),
                st.just([-np.ones((2, 2)), np.ones((2, 2))])), lambda v: synaptic(hidden_counts=v)),
            Bad("output_counts", st.one_of(bad_array((2, 2)), st.just(np.ones((3, 2)))),
                lambda v: synaptic(output_counts=v)),
            Bad("params", st.one_of(bad_type(),
                                    st.builds(lambda: replace(dc_params(), layer2=None))),
                lambda v: synaptic(params=v)),
        ],
        "brian_stdp.toy_spike_task": [
            *[Bad(f, bad_int(), lambda v, f=f: T().toy_spike_task(**{"n_images": 2, "seed": 0,
                                                                     f: v}), examples=8)
              for f in ("n_images", "n_classes", "inputs_per_class")],
            Bad("seed", bad_seed(), lambda v: T().toy_spike_task(2, seed=v)),
            *[Bad(f, st.one_of(negative(), st.floats(2001.0, 1e12)),
                  lambda v, f=f: T().toy_spike_task(2, seed=0, **{f: v}))
              for f in ("rate_hz", "background_hz")],
            Bad("dt_ms", not_positive(), lambda v: T().toy_spike_task(2, seed=0, dt_ms=v)),
            Bad("duration_ms", st.one_of(st.floats(max_value=0.49, allow_infinity=False),
                                         NAN_INF, NOT_A_NUMBER),
                lambda v: T().toy_spike_task(2, seed=0, duration_ms=v)),
            Bad("n_images", st.integers(10**10, 10**14), lambda v: T().toy_spike_task(v, seed=0),
                examples=2, limit_s=2),
        ],
        "brian_stdp.volley_fraction": [
            Bad("trains", st.one_of(bad_trains(), st.just({**good_trains(),
                                                           "image": np.array([0, 0, 5])})),
                lambda v: T().volley_fraction(v, 2, 2)),
            Bad("n_images", bad_int(), lambda v: T().volley_fraction(good_trains(), v, 2)),
            Bad("n_neurons", bad_int(), lambda v: T().volley_fraction(good_trains(), 2, v)),
            Bad("window_ms", not_positive(), lambda v: T().volley_fraction(
                good_trains(), 2, 2, window_ms=v)),
            Bad("fraction", outside(0, 1, lo_open=True), lambda v: T().volley_fraction(
                good_trains(), 2, 2, fraction=v)),
        ],
        # what chapter 3 and 4 call from the modules
        "brian_stdp.network.FrozenLayers": [
            Bad("p", bad_type(), lambda v: N().FrozenLayers(v, t1_layers()["filters"],
                                                            t1_layers()["thresholds"])),
            Bad("filters", st.one_of(st.just([np.ones((2, 7)), np.ones((2, 18))]),
                                     st.just([np.full((2, 50), np.nan), np.ones((2, 18))]),
                                     st.just([np.ones((3, 50)), np.ones((2, 18))])),
                lambda v: N().FrozenLayers(t1(), v, t1_layers()["thresholds"], batch=1)),
            Bad("batch", bad_int(), lambda v: N().FrozenLayers(t1(), t1_layers()["filters"],
                                                               t1_layers()["thresholds"],
                                                               batch=v)),
        ],
        "brian_stdp.network.FrozenLayers.run": [
            Bad("intensities", bad_gray(channels=2), lambda v: frozen_layers().run(v, seed=0)),
            Bad("seed", bad_seed(), lambda v: frozen_layers().run(onoff(1), seed=v)),
        ],
        "brian_stdp.network.Retina": [
            Bad("kernel", bad_type(), lambda v: N().Retina(v, 0.1, 1.0, N().RetinaParams())),
            Bad("scale", not_positive(), lambda v: N().Retina(torch.ones(7, 7), 0.1, v,
                                                              N().RetinaParams())),
        ],
        "brian_stdp.network.Retina.fit": [
            Bad("gray", bad_gray(n=4), lambda v: N().Retina.fit(v, N().RetinaParams(), seed=0)),
            Bad("p", bad_type(), lambda v: N().Retina.fit(gray(4), v, seed=0)),
            Bad("seed", bad_seed(), lambda v: N().Retina.fit(gray(4), N().RetinaParams(), seed=v)),
        ],
        "brian_stdp.network.Retina.intensities": [
            Bad("gray", bad_gray(kinds=("negative", "nan", "inf", "uint8", "wrong_size", "empty")),
                lambda v: retina().intensities(v)),
        ],
        "brian_stdp.network.features": [
            Bad("p", bad_type(), lambda v: features(p=v)),
            Bad("layers", st.one_of(bad_type(), st.just({"filters": []}),
                                    st.builds(lambda: {**t1_layers(), "thresholds": [np.zeros(3),
                                                                           np.zeros(2)]})),
                lambda v: features(layers=v)),
            Bad("intensities", bad_gray(channels=2), lambda v: features(intensities=v)),
            Bad("seed", bad_seed(), lambda v: features(seed=v)),
            Bad("batch", bad_int(), lambda v: features(batch=v)),
            Bad("per_call", bad_int(), lambda v: features(per_call=v)),
            Bad("workers", st.one_of(st.integers(max_value=0), st.floats(), st.booleans(),
                                     st.sampled_from(["1", [1.0]])),  # None: one per core
                lambda v: features(workers=v)),
        ],
        "brian_stdp.network.weights_moved": [
            Bad("layers", st.one_of(bad_type(),
                                    st.builds(lambda: {"filters": t1_layers()["filters"]})),
                lambda v: N().weights_moved(t1(), v)),
        ],
        "brian_stdp.network.drive_brightness_correlation": [
            Bad("filters", bad_array((2, 50), negative_ok=True, kinds=["nan", "text"]),
                lambda v: N().drive_brightness_correlation(v, onoff(3), np.ones(3))),
            Bad("intensities", bad_array((3, 2, 32, 32), negative_ok=True, kinds=["nan", "text"]),
                lambda v: N().drive_brightness_correlation(np.ones((2, 50)), v, np.ones(3))),
            Bad("brightness", st.one_of(st.just(np.ones(2)), st.just(np.full(3, np.nan))),
                lambda v: N().drive_brightness_correlation(np.ones((2, 50)), onoff(3), v)),
        ],
        "brian_stdp.network.train_layers": [
            Bad("intensities", bad_gray(channels=2), lambda v: N().train_layers(t1(), v, seed=0)),
            Bad("seed", bad_seed(), lambda v: N().train_layers(t1(), onoff(), seed=v)),
            Bad("batch", bad_int(), lambda v: N().train_layers(t1(), onoff(), seed=0, batch=v)),
        ],
        "brian_stdp.pipeline.tier_images": [
            Bad("train_labels", bad_labels(n=20, kinds=("out_of_range", "fraction", "2d", "text",
                                                        "empty")),
                lambda v: pkg("brian_stdp.pipeline").tier_images(profile(), v, LABELS, seed=0)),
            Bad("seed", bad_seed(), lambda v: pkg("brian_stdp.pipeline").tier_images(
                profile(), np.arange(20) % 10, LABELS, seed=v)),
        ],
        "brian_stdp.output.toy_features": [
            *[Bad(f, bad_int(), lambda v, f=f: pkg("brian_stdp.output").toy_features(
                **{"n": 4, "seed": 0, f: v})) for f in ("n", "n_classes", "per_class")],
            Bad("seed", bad_seed(), lambda v: pkg("brian_stdp.output").toy_features(4, seed=v)),
        ],
    }


def tiers_entries() -> dict[str, list[Bad]]:
    def tier(**kw):
        base = dict(name="x", number=1, title="t", simulator="s", devices=("cpu",),
                    chapters=("c",))
        return pkg("tiers").Tier(**{**base, **kw})

    return {
        "tiers.Tier": [
            Bad("name", st.one_of(bad_type().filter(lambda v: not isinstance(v, str)),
                                  st.just("not a name")), lambda v: tier(name=v)),
            Bad("number", bad_int(), lambda v: tier(number=v)),
            *[Bad(f, st.one_of(bad_type(), st.just(()), st.just(("cpu", 1))),
                  lambda v, f=f: tier(**{f: v})) for f in ("devices", "chapters")],
        ],
        "tiers.Tier.run": [
            Bad("profile", BAD_PROFILE, lambda v: pkg("tiers").TIERS["conversion"].run(
                v, out_dir=SCRATCH)),
            Bad("device", BAD_DEVICE, lambda v: pkg("tiers").TIERS["conversion"].run(
                profile(), out_dir=SCRATCH, device=v)),
        ],
    }


@functools.cache
def registry() -> dict[str, list[Bad]]:
    """Every package's entries; a package whose entries cannot be made (a name it lacks) gets
    one empty entry that fails, saying why."""
    out: dict[str, list[Bad]] = {}
    for entries in (tiers_entries, conversion_entries, dog_lif_entries, brian_stdp_entries):
        try:
            out.update(entries())
        except Exception as err:
            out[f"{entries.__name__} ({type(err).__name__}: {err})"] = []
    return out


EXEMPT: dict[str, str] = {}
"""Public callables without bad-input cases, each with the reason (none today: constants such
as ``TIERS`` or ``PERCENTILE`` and exceptions such as ``TrainingInterrupted`` take no input and
are skipped without being listed)."""


def _cases() -> list[tuple[str, int]]:
    return [(name, k) for name, bads in registry().items() for k in range(max(1, len(bads)))
            if bads or k == 0]


@pytest.fixture
def no_data(monkeypatch):
    """Loading CIFAR-10 fails loudly: a run_tier that did not refuse its bad input stops there."""
    from snnlib import data

    def refuse(*args, **kwargs):
        raise RuntimeError("the call went on to load the data: its bad input was not refused")

    monkeypatch.setattr(data, "load_cifar10", refuse)


WARM = {"conversion": (conv,), "dog_lif": (dog,),
        "brian_stdp": (dc_net, frozen, rstdp, pop, frozen_layers)}
"""What each package's cases build once, before the clock of ``time_limit`` runs."""


@pytest.mark.parametrize("name, k", _cases(), ids=lambda v: str(v))
def test_bad_input_is_refused_naming_the_argument(name, k, no_data):
    assert registry()[name], f"no cases could be made: {name}"
    bad = registry()[name][k]
    for build in WARM.get(name.split(".")[0], ()):
        build()

    @settings(max_examples=bad.examples, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(
                  __import__("hypothesis").HealthCheck))
    @given(bad.values)
    def refuses(value):
        with time_limit(bad.limit_s), pytest.raises((ValueError, TypeError)) as info:
            bad.call(value)
        message = str(info.value)
        assert names_the_argument(message, bad.arg), (
            f"{name}: the message does not name {bad.arg!r}: {type(info.value).__name__}: "
            f"{message}")

    refuses()


@pytest.mark.parametrize("name", sorted(registry()))
def test_every_listed_bad_value_is_tried(name, no_data):
    """The values a case lists outright are each tried once (hypothesis, drawing a few examples
    per case, would leave some of them out)."""
    for build in WARM.get(name.split(".")[0], ()):
        build()
    for bad in registry()[name]:
        for value in listed_values(bad.values):
            with time_limit(bad.limit_s), pytest.raises((ValueError, TypeError)) as info:
                bad.call(value)
            assert names_the_argument(str(info.value), bad.arg), (
                f"{name}({bad.arg}={value!r}): the message does not name {bad.arg!r}: "
                f"{info.value}")


def test_every_public_name_is_covered():
    """Each callable in a tier package's ``__all__`` has bad-input cases, or a reason not to."""
    covered = registry()
    missing = []
    for short in PACKAGES:
        module = pkg(short)
        for name in module.__all__:
            obj = getattr(module, name)
            key = f"{short}.{name}"
            if not callable(obj) or (inspect.isclass(obj) and issubclass(obj, BaseException)):
                continue  # constants and exceptions take no input
            if key not in covered and key not in EXEMPT:
                missing.append(key)
    assert not missing, f"public names without bad-input cases (add them, or to EXEMPT): {missing}"
    assert all(reason.strip() for reason in EXEMPT.values())


# --- the issue's examples, one by one -------------------------------------------------------------
def test_float_images_in_0_1_are_taken_as_they_are():
    C = pkg("conversion")
    u8 = rgb()
    torch.testing.assert_close(C.images_to_tensor(u8 / 255.0), C.images_to_tensor(u8))
    torch.testing.assert_close(C.images_to_tensor(u8.astype(np.float32) / 255),
                               C.images_to_tensor(u8))
    with pytest.raises(ValueError, match=r"images.*floats from 0 to 255"):
        C.images_to_tensor(u8.astype(np.float64))


@pytest.mark.parametrize("call, pattern", [
    (lambda: pkg("conversion").simulate(conv()[2], conv()[3], [1, 99], steps=[4]),
     r"simulate: labels .* \[0, 9\], got 99"),
    (lambda: pkg("conversion").evaluate_cnn(conv()[1], conv()[3], [1]),
     r"evaluate_cnn: .*labels has 1 entries for 2 images"),
    (lambda: pkg("conversion").QCFS(levels=0), r"QCFS: levels must be a positive integer, got 0"),
    (lambda: pkg("dog_lif").poisson_on_off(torch.zeros(2, 3), 2, np.random.default_rng(0)),
     r"poisson_on_off: p_max must be in \(0, 1\], got 2"),
    (lambda: pkg("conversion").simulate(conv()[2], conv()[3], LABELS, steps=[10**9]),
     r"simulate: steps go up to 1,000,000,000"),
])
def test_the_issues_examples_give_a_clear_error(call, pattern):
    with time_limit(HUNG_S), pytest.raises((ValueError, TypeError), match=pattern):
        call()


# --- truncated checkpoints -------------------------------------------------------------------
def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_a_truncated_cnn_checkpoint_names_the_file(tmp_path):
    C = pkg("conversion")
    path = tmp_path / "cnn.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "epoch": 1}, path)
    _truncate(path)
    model = C.ConvNet(C.ConvNetParams(widths=(2,), pool_after=()))
    with pytest.raises(ValueError) as info:
        C.train_cnn(model, rgb(), LABELS, C.TrainParams(epochs=1, batch_size=2), seed=0,
                    checkpoint=path, progress=False)
    assert str(path) in str(info.value) and "delete" in str(info.value)


def test_a_truncated_simulation_part_is_set_aside_and_recomputed(tmp_path, capsys):
    C = pkg("conversion")
    _, _, normed, x = conv()
    first = C.simulate_parts(normed, x, LABELS, steps=[1, 2], folder=tmp_path, progress=False)
    (part,) = tmp_path.glob("part_*.npz")
    _truncate(part)
    again = C.simulate_parts(normed, x, LABELS, steps=[1, 2], folder=tmp_path, progress=False)
    assert str(part) in capsys.readouterr().out
    assert (tmp_path / (part.name + ".stale")).exists()
    assert again["accuracy"] == first["accuracy"]


def test_a_truncated_feature_part_of_tier_2_is_set_aside_and_recomputed(tmp_path, capsys):
    _, net = dog()
    first = net.features(rgb(), seed=1, progress=False, checkpoint=tmp_path)["features"]
    (part,) = tmp_path.glob("part_*.npz")
    _truncate(part)
    again = net.features(rgb(), seed=1, progress=False, checkpoint=tmp_path)["features"]
    assert str(part) in capsys.readouterr().out
    assert (tmp_path / (part.name + ".stale")).exists()
    np.testing.assert_array_equal(again, first)


def test_a_truncated_layer_of_tier_2_is_set_aside_and_recomputed(tmp_path, capsys):
    run = pkg("dog_lif.run")
    p, _ = dog()
    first = run._layer(tmp_path, "stdp", p, rgb(4), seed=0, progress=False)
    path = tmp_path / "layer_stdp.npz"
    _truncate(path)
    again = run._layer(tmp_path, "stdp", p, rgb(4), seed=0, progress=False)
    assert str(path) in capsys.readouterr().out
    torch.testing.assert_close(again.w_mv, first.w_mv)


def test_truncated_layers_of_tier_1_are_set_aside_and_recomputed(tmp_path, capsys, monkeypatch):
    P, N = pkg("brian_stdp.pipeline"), pkg("brian_stdp.network")
    layers = t1_layers()
    stub = {**layers, "history": [{"no_winner": [0.5]}, {"no_winner": [0.25]}]}
    monkeypatch.setattr(N, "train_layers", lambda *a, **k: stub)
    first = P._layers(tmp_path, "stdp", t1(), onoff(), seed=0, progress=False)
    path = tmp_path / "layers_stdp.npz"
    _truncate(path)
    again = P._layers(tmp_path, "stdp", t1(), onoff(), seed=0, progress=False)
    assert str(path) in capsys.readouterr().out
    np.testing.assert_array_equal(again["filters"][0], first["filters"][0])


def test_a_truncated_training_checkpoint_of_tier_1_names_the_file(tmp_path):
    from snnlib import runs

    path = tmp_path / "layer1.npz"
    runs.save_npz(path, fingerprint=np.array("x"), position=np.array(1), **dc_net().state_dict())
    _truncate(path)
    with pytest.raises(ValueError) as info:
        dc_net().fit(gray(), checkpoint=path, progress=False)
    assert str(path) in str(info.value)
    np.savez(path, something=np.zeros(3))  # readable, but not a checkpoint
    with pytest.raises(ValueError) as info:
        dc_net().fit(gray(), checkpoint=path, progress=False)
    assert str(path) in str(info.value)


def test_a_truncated_output_layer_checkpoint_names_the_file(tmp_path):
    from snnlib import runs

    path = tmp_path / "output_stdp.npz"
    runs.save_npz(path, fingerprint=np.array("x"), w=np.zeros(1000))
    _truncate(path)
    with pytest.raises(ValueError) as info:
        rstdp().fit(good_trains(), np.array([0, 1]), checkpoint=path, progress=False)
    assert str(path) in str(info.value)
