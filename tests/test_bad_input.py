"""Bad input never crashes deep inside, never passes silently, never hangs.

A registry of every public function and class of encoding, neurons, plasticity,
retina, metrics, readout, data, runs, profiles and viz: for each, valid
arguments (small) and, per argument, a hypothesis strategy of bad values (NaN,
+-inf, negatives or zero where not allowed, probabilities outside [0, 1],
labels outside 0-9, mismatched lengths, empty arrays, wrong dtypes, absurd
sizes and durations, corrupt files). Every bad value must be refused at the
boundary, at once, with a ``ValueError`` or ``TypeError`` whose message names
the argument (or, for a file, the file). A test walks each module's
``__all__``: a public callable that is neither in the registry nor in
:data:`EXEMPT` (with the reason) fails it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import importlib
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _refusal import listed_values, names_the_argument, time_limit

OWNED = ("encoding", "neurons", "plasticity", "retina", "metrics", "readout", "data", "runs",
         "profiles", "viz")


def _module(name: str):
    try:
        return importlib.import_module(f"snnlib.{name}")
    except Exception:  # an older snnlib without the module: its entries fail, one by one
        return None


M = SimpleNamespace(**{name: _module(name) for name in OWNED})
RESULTS = Path(__file__).resolve().parents[1] / "results"
TMP = Path(tempfile.mkdtemp(prefix="snnlib-bad-input-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)  # also when only collected
A_FILE = TMP / "a_file.txt"
A_FILE.write_text("not a directory")


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    shutil.rmtree(TMP, ignore_errors=True)


MAX_EXAMPLES = 25
TIME_LIMIT_S = 10.0  # a refusal is immediate; a simulation of the bad input would not be

# --- strategies ------------------------------------------------------------------------------
NAN, INF = float("nan"), float("inf")
NONFINITE = st.sampled_from([NAN, INF, -INF])
NOT_NUMBERS = st.sampled_from(["1.0", [1.0], True, {}, b"1"])  # TypeError for a number


def bad_real(*, low=None, high=None, low_open=False, high_open=False, none_ok=False):
    """Non-finite numbers, things that are not numbers, and finite numbers outside the
    allowed ``[low, high]`` (``(low, ...`` with ``low_open``)."""
    parts = [NONFINITE, NOT_NUMBERS if none_ok else NOT_NUMBERS | st.just(None)]
    if low is not None:
        parts.append(st.floats(-1e9, low).filter(
            (lambda v: v <= low) if low_open else (lambda v: v < low)))
    if high is not None:
        parts.append(st.floats(high, 1e9).filter(
            (lambda v: v >= high) if high_open else (lambda v: v > high)))
    return st.one_of(parts)


def positive():
    return bad_real(low=0, low_open=True)


def bad_int(*, low=None, high=None, none_ok=False):
    """Numbers that are not integers, bools, strings, and integers outside ``[low, high]``."""
    parts = [st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([True, "3", [3]])]
    if not none_ok:
        parts.append(st.just(None))
    if low is not None:
        parts.append(st.integers(max_value=low - 1))
    if high is not None:
        parts.append(st.integers(min_value=high + 1))
    return st.one_of(parts)


def outside(low, high):
    """Finite numbers clearly outside ``[low, high]``."""
    return st.floats(high + 1e-3, 1e6) | st.floats(-1e6, low - 1e-3)


@st.composite
def poisoned(draw, shape, low=-1.0, high=1.0, bad=NONFINITE, dtype=np.float64, tensor=False):
    """An array of ``shape`` with values in ``[low, high]`` but for one bad entry."""
    a = np.zeros(shape, dtype=dtype) + (low + high) / 2
    if np.prod(shape) <= 64:
        a = np.array(draw(hnp.arrays(dtype, shape, elements=st.floats(
            low, high, width=32 if dtype == np.float32 else 64))))
    index = tuple(draw(st.integers(0, n - 1)) for n in shape)
    a[index] = draw(bad)
    return torch.from_numpy(a) if tensor else a


def arrays_like(values, tensor=False):
    """Fixed bad arrays (or tensors)."""
    return st.sampled_from([torch.as_tensor(v) if tensor else v for v in values])


STRINGS = np.array([["a", "b"]])


def bad_floats(shape, low=-1.0, high=1.0, *, ranged=False, tensor=False, empty=True,
               ndim=True, strings=True, extra=()):
    """NaN/inf entries; out-of-range entries (``ranged``); an empty array; one dimension too
    many; strings; ``extra`` fixed values (as tensors with ``tensor``)."""
    parts = [poisoned(shape, low, high, NONFINITE, tensor=tensor)]
    if ranged:
        parts.append(poisoned(shape, low, high, outside(low, high), tensor=tensor))
    fixed = list(extra)
    if empty:
        fixed.append(np.zeros((0, *shape[1:])))
    if ndim:
        fixed.append(np.zeros((*shape, 2)) + (low + high) / 2)
    fixed = [torch.as_tensor(v) for v in fixed] if tensor else fixed
    if strings:
        fixed.append(STRINGS)
    if fixed:
        parts.append(st.sampled_from(fixed))
    return st.one_of(parts)


@st.composite
def bad_labels(draw, n, low=0, high=9, length=True):
    """Class indices with a value outside [low, high], non-integers, two dimensions, or
    (``length``) the wrong length."""
    y = np.array(draw(st.lists(st.integers(low, high), min_size=n, max_size=n)))
    kinds = ["value", "float", "2d"] + (["length"] if length else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "value":
        y[draw(st.integers(0, n - 1))] = draw(
            st.integers(-10**6, 10**6).filter(lambda v: not low <= v <= high))
    elif kind == "float":
        y = y + 0.5
    elif kind == "2d":
        y = y.reshape(1, n)
    else:
        y = y[:-1]
    return y


@st.composite
def corrupt_file(draw, suffix):
    """A file of random bytes (some starting like a zip, a .npy or a pickle)."""
    head = draw(st.sampled_from([b"", b"PK\x03\x04", b"\x93NUMPY\x01\x00", b"\x80\x04\x95",
                                 b"{", b"[1, 2"]))
    body = draw(st.binary(max_size=200))
    path = Path(tempfile.mkstemp(suffix=suffix, dir=TMP)[1])
    path.write_bytes(head + body)
    return path


def named(default: str, **by_kind):
    """The name a message must contain: ``default``, or by_kind[type name] for a value of
    that type; files (Path) by their path."""
    def name(value):
        if isinstance(value, Path) and value.exists():
            return str(value)
        return by_kind.get(type(value).__name__, default)
    return name


# --- the registry ----------------------------------------------------------------------------
@dataclass
class Entry:
    call: Callable[..., Any]      # called with keyword arguments
    good: Callable[[], dict]      # fresh valid arguments
    bad: dict                     # argument -> strategy of bad values
    names: dict = field(default_factory=dict)  # argument -> name (str or function of the value)
    examples: int = MAX_EXAMPLES
    check_good: bool = True       # call with the good arguments too (not: Brian2, network, files)


REGISTRY: dict[str, Entry] = {}
EXEMPT = {
    "viz.DisplayTable": "the formatted table that viz.table returns; viz.table checks its input",
    "neurons.LIFRecord": "a NamedTuple of results that simulate_lif returns; it takes no input",
    "plasticity.WeightChange": "a NamedTuple made by stdp_step; apply_weight_change(_) check it",
    "runs.git_commit": "takes no argument",
}


def register(name, call, good, bad, **options):
    """One entry; at least 5 examples per argument, so that every argument gets bad values."""
    options.setdefault("examples", max(MAX_EXAMPLES, 5 * len(bad)))
    REGISTRY[name] = Entry(call, good, bad, **options)


def lif(**kw):
    return M.neurons.LIFParams(**kw)


def stdp(**kw):
    return M.plasticity.STDPParams(**kw)


def poisson():
    return M.encoding.PoissonParams(max_rate_hz=100.0, duration_ms=10.0, dt_ms=1.0)


NOT_PARAMS = st.sampled_from([None, {}, "params", 1.0, (1.0, 2.0)])
LIF_P = named("LIFParams")
STDP_P = named("STDPParams")
BAD_NAMES = st.sampled_from(["1abc", "my group", "", None, 5, "naïve"])
BAD_TARGETS = st.sampled_from(["c++", "", None, "NUMPY", 5])


class FakeNet:
    def run(self, *args, **kwargs):
        pass


def fake_group():
    return SimpleNamespace(N=2, namespace={})


# encoding
register("encoding.PoissonParams", lambda **kw: M.encoding.PoissonParams(**kw),
         lambda: dict(max_rate_hz=100.0, duration_ms=10.0, dt_ms=1.0),
         {"max_rate_hz": positive() | st.floats(1000.001, 1e9),
          "duration_ms": positive() | st.floats(0.1, 100).filter(
              lambda v: abs(v - round(v)) > 1e-3),
          "dt_ms": positive() | st.just(1e-320)})
register("encoding.make_generator", lambda **kw: M.encoding.make_generator(**kw),
         lambda: dict(seed=0, device="cpu"),
         {"seed": bad_int(low=0) | st.integers(min_value=2**64),
          "device": st.sampled_from(["gpu", "tpu:0", 5, None, "cuda:x"])})
BAD_INTENSITIES = st.one_of(
    bad_floats((2, 3), 0.0, 1.0, ranged=True, ndim=False),
    bad_floats((2, 3), 0.0, 1.0, ranged=True, ndim=False, strings=False, tensor=True),
    arrays_like([np.array(0.5), np.zeros((2, 3), np.uint8), np.full((2, 3), 255.0)]),
    arrays_like([np.array(0.5), np.zeros((2, 3), np.uint8), np.zeros(0)], tensor=True))
BAD_GENERATOR = st.one_of(st.integers(max_value=-1), st.integers(min_value=2**64), st.floats(),
                          st.sampled_from(["0", None, True]))
register("encoding.poisson_spikes", lambda **kw: M.encoding.poisson_spikes(**kw),
         lambda: dict(intensities=np.full((2, 3), 0.5), params=poisson(), generator=0),
         {"intensities": BAD_INTENSITIES, "params": NOT_PARAMS, "generator": BAD_GENERATOR},
         names={"params": "PoissonParams"})
register("encoding.poisson_step", lambda **kw: M.encoding.poisson_step(**kw),
         lambda: dict(intensities=torch.full((2, 3), 0.5), p_max=0.1,
                      generator=torch.Generator().manual_seed(0)),
         {"intensities": arrays_like([np.full((2, 3), 0.5), [[0.5]], 0.5]),
          "p_max": bad_real(low=0, high=1, low_open=True),
          "generator": st.sampled_from([0, None, "rng", 1.5])})
register("encoding.regular_step", lambda **kw: M.encoding.regular_step(**kw),
         lambda: dict(intensities=torch.full((2, 3), 0.5), p_max=0.1,
                      phases=torch.full((2, 3), 0.25), step=1),
         {"intensities": arrays_like([np.full((2, 3), 0.5), [[0.5]], 0.5]),
          "p_max": bad_real(low=0, high=1, low_open=True),
          "phases": arrays_like([np.full((2, 3), 0.5), torch.full((2, 2), 0.5),
                                 torch.full((2, 3), 1.0), torch.full((2, 3), -0.1),
                                 torch.full((2, 3), float("nan"))]),
          "step": bad_int(low=1)})
register("encoding.spike_counts", lambda **kw: M.encoding.spike_counts(**kw),
         lambda: dict(spikes=torch.zeros(5, 2, 3, dtype=torch.bool)),
         {"spikes": st.one_of(
             arrays_like([np.zeros((5, 2, 3)), [[0, 1]]]),
             arrays_like([np.array(1.0), np.zeros((0, 3))], tensor=True),
             poisoned((5, 2), 0.0, 1.0, NONFINITE | outside(0, 1), tensor=True))})
register("encoding.expected_counts", lambda **kw: M.encoding.expected_counts(**kw),
         lambda: dict(intensities=np.full((2, 3), 0.5), params=poisson()),
         {"intensities": BAD_INTENSITIES, "params": NOT_PARAMS}, names={"params": "PoissonParams"})
register("encoding.decode_counts", lambda **kw: M.encoding.decode_counts(**kw),
         lambda: dict(counts=torch.zeros(2, 3, dtype=torch.int64), params=poisson()),
         {"counts": st.one_of(bad_floats((2, 3), 0.0, 10.0, ndim=False),
                              poisoned((2, 3), 0.0, 10.0, st.floats(-1e6, -1e-3), tensor=True)),
          "params": NOT_PARAMS}, names={"params": "PoissonParams"})
register("encoding.decode_variance", lambda **kw: M.encoding.decode_variance(**kw),
         lambda: dict(intensities=np.full((2, 3), 0.5), params=poisson()),
         {"intensities": BAD_INTENSITIES, "params": NOT_PARAMS}, names={"params": "PoissonParams"})
register("encoding.reconstruction_error", lambda **kw: M.encoding.reconstruction_error(**kw),
         lambda: dict(intensities=np.full((1, 4), 0.5), durations_ms=[10.0, 20.0],
                      max_rate_hz=100.0, dt_ms=1.0, seed=0),
         {"intensities": BAD_INTENSITIES,
          "durations_ms": st.sampled_from([[10.0, NAN], [INF], [], [[10.0]], ["a"], [-10.0],
                                           [0.0], [10.5]]),
          "max_rate_hz": positive() | st.floats(1000.001, 1e9),
          "dt_ms": positive(), "seed": bad_int(low=0)},
         names={"durations_ms": "duration"})
register("encoding.correlated_poisson_spikes",
         lambda **kw: M.encoding.correlated_poisson_spikes(**kw),
         lambda: dict(n_inputs=3, rate_hz=10.0, correlation=0.5, duration_ms=10.0, dt_ms=1.0,
                      batch=1, generator=0),
         {"n_inputs": bad_int(low=1) | st.just(10**15), "rate_hz": positive(),
          "correlation": bad_real(low=0, high=1), "duration_ms": positive(), "dt_ms": positive(),
          "batch": bad_int(low=1) | st.just(10**15), "generator": BAD_GENERATOR})

# neurons
POSITIVE_LIF = ("tau_mem_ms", "tau_exc_ms", "tau_inh_ms", "tau_theta_ms", "dt_ms", "r_mem_mohm")
register("neurons.LIFParams", lambda **kw: M.neurons.LIFParams(**kw), dict,
         {**{name: positive() for name in POSITIVE_LIF},
          "t_ref_ms": bad_real(low=0) | st.just(1.7e308), "theta_plus_mv": bad_real(low=0),
          "v_rest_mv": NONFINITE | NOT_NUMBERS, "e_exc_mv": NONFINITE | NOT_NUMBERS,
          "v_thresh_mv": NONFINITE | NOT_NUMBERS | st.floats(-1e6, -65.0)})
register("neurons.LIFState", lambda **kw: M.neurons.LIFState.initial(**kw),
         lambda: dict(p=lif(), batch=2, neurons=3),
         {"p": NOT_PARAMS, "batch": bad_int(low=1) | st.just(10**13),
          "neurons": bad_int(low=1) | st.just(10**13)}, names={"p": LIF_P})
BAD_CURRENT = st.one_of(
    poisoned((2, 3), -1.0, 1.0, NONFINITE, tensor=True), NONFINITE,
    arrays_like([np.zeros(4), np.zeros((2, 4)), np.zeros((3, 2, 3))], tensor=True),
    st.sampled_from(["1", [1.0]]),
    poisoned((2, 3), -1.0, 1.0, NONFINITE))


def lif_state(**kw):
    return M.neurons.LIFState.initial(lif(), 2, 3)


register("neurons.lif_step", lambda **kw: M.neurons.lif_step(**kw),
         lambda: dict(state=lif_state(), p=lif(), current_na=torch.full((2, 3), 1.0)),
         {"state": st.sampled_from([None, (1, 2), "state"]) | st.builds(
             lambda v: lif_state()._replace(v_mem=torch.full((2, 3), v)), NONFINITE),
          "p": NOT_PARAMS, "current_na": BAD_CURRENT, "exc_input": BAD_CURRENT,
          "inh_input": BAD_CURRENT}, names={"p": LIF_P})
register("neurons.LIF", lambda **kw: M.neurons.LIF(**kw),
         lambda: dict(params=lif(), batch=2, neurons=3),
         {"params": NOT_PARAMS, "batch": bad_int(low=1), "neurons": bad_int(low=1)},
         names={"params": LIF_P})
register("neurons.LIF.step",
         lambda current_na: M.neurons.LIF(lif(), 2, 3).step(current_na=current_na),
         lambda: dict(current_na=torch.full((2, 3), 1.0)), {"current_na": BAD_CURRENT})
register("neurons.simulate_lif", lambda **kw: M.neurons.simulate_lif(**kw),
         lambda: dict(current_na=torch.full((5, 2, 3), 1.0), p=lif(), record=True),
         {"current_na": st.one_of(
             bad_floats((5, 2, 3), tensor=True, strings=False),
             bad_floats((5, 2, 3), extra=[np.full((5, 2, 3), 1e300)]),
             arrays_like([np.zeros((5, 3))], tensor=True)),
          "p": NOT_PARAMS, "record": st.sampled_from([1, 0, "yes", None, 1.0])},
         names={"p": LIF_P})
register("neurons.measured_rate_hz", lambda **kw: M.neurons.measured_rate_hz(**kw),
         lambda: dict(current_na=[1.0, 2.0], p=lif(), duration_ms=10.0),
         {"current_na": st.sampled_from([[1.0, NAN], [INF], [], ["a"], [1e300]]),
          "p": NOT_PARAMS,
          "duration_ms": positive() | st.sampled_from([1e9, 1e12, 1.7e308, 0.1])},
         names={"p": LIF_P})
register("neurons.lif_rate_hz", lambda **kw: M.neurons.lif_rate_hz(**kw),
         lambda: dict(current_na=[1.0, 2.0], p=lif()),
         {"current_na": st.sampled_from([[1.0, NAN], [-INF], [], ["a"], NAN]), "p": NOT_PARAMS},
         names={"p": LIF_P})
register("neurons.lif_delta_step", lambda **kw: M.neurons.lif_delta_step(**kw),
         lambda: dict(v_mem=torch.full((2, 3), -65.0), input_mv=torch.zeros(2, 3),
                      p=lif(t_ref_ms=0.0), theta_mv=0.0, inhibition_mv=0.0),
         {"v_mem": st.sampled_from([np.full((2, 3), -65.0), [[-65.0]], None]),
          "input_mv": arrays_like([np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(3)], tensor=False)
          | arrays_like([np.zeros((2, 4)), np.zeros(3)], tensor=True),
          "p": NOT_PARAMS | st.builds(lif), "theta_mv": NONFINITE | NOT_NUMBERS,
          "inhibition_mv": bad_real(low=0)},
         names={"p": LIF_P})
register("neurons.lif_delta_rate_hz", lambda **kw: M.neurons.lif_delta_rate_hz(**kw),
         lambda: dict(jump_mv=[1.0, 2.0], p=lif(t_ref_ms=0.0)),
         {"jump_mv": st.sampled_from([[1.0, NAN], NAN, [INF], [], ["a"]]), "p": NOT_PARAMS},
         names={"p": LIF_P})
register("neurons.if_step", lambda **kw: M.neurons.if_step(**kw),
         lambda: dict(v=torch.zeros(2, 3), z=torch.full((2, 3), 0.5), threshold=1.0),
         {"v": st.sampled_from([np.zeros((2, 3)), 0.0]) | poisoned((2, 3), tensor=True),
          "z": st.sampled_from([np.zeros((2, 3)), torch.zeros(4), torch.zeros(2, 2)])
          | poisoned((2, 3), tensor=True),
          "threshold": positive()})
register("neurons.if_rate", lambda **kw: M.neurons.if_rate(**kw),
         lambda: dict(z=[0.1, 0.5], steps=16, threshold=1.0, v0=0.0),
         {"z": st.sampled_from([[0.1, NAN], [INF], [], ["a"]]), "steps": bad_int(low=1),
          "threshold": positive(), "v0": NONFINITE | NOT_NUMBERS})
register("neurons.IFNeurons", lambda **kw: M.neurons.IFNeurons(**kw),
         lambda: dict(v0=0.0, signed=False, burst=1),
         {"v0": NONFINITE | NOT_NUMBERS, "signed": st.sampled_from([1, "yes", None]),
          "burst": st.sampled_from([0, 3, -2, 16, 1.5, "2", True, None])})
register("neurons.signed_if_step", lambda **kw: M.neurons.signed_if_step(**kw),
         lambda: dict(v=torch.zeros(3), n=torch.zeros(3), z=torch.full((3,), 0.5), threshold=1.0),
         {"v": st.sampled_from([None, [0.0], torch.full((3,), NAN), torch.zeros(4)]),
          "n": st.sampled_from([None, torch.full((3,), INF), torch.zeros(2)]),
          "z": st.sampled_from([np.zeros(3), torch.full((3,), NAN), torch.zeros(5)]),
          "threshold": positive()})


def _if_forward(z):
    layer = M.neurons.IFNeurons()
    layer(torch.zeros(2, 3))
    return layer(z)


register("neurons.IFNeurons.forward", _if_forward, lambda: dict(z=torch.full((2, 3), 0.5)),
         {"z": st.sampled_from([np.zeros((2, 3)), [[0.5]], torch.zeros(4, 3),
                                torch.zeros(2, 3, 1)])})
register("neurons.run_brian2", lambda **kw: M.neurons.run_brian2(**kw),
         lambda: dict(net=FakeNet(), duration_ms=1.0, codegen_target="numpy"),
         {"net": st.sampled_from([None, 5, "net"]), "duration_ms": bad_real(low=0),
          "codegen_target": BAD_TARGETS}, check_good=False)
register("neurons.brian2_target", lambda **kw: M.neurons.brian2_target(**kw),
         lambda: dict(codegen_target="numpy"), {"codegen_target": BAD_TARGETS})
register("neurons.connect_brian2", lambda **kw: M.neurons.connect_brian2(**kw),
         lambda: dict(synapses=None), {"synapses": st.sampled_from([None, 5, "syn", [1, 2]])},
         check_good=False)
register("neurons.build_lif_group", lambda **kw: M.neurons.build_lif_group(**kw),
         lambda: dict(n=2, p=lif(), current="I : amp", name="lif", method="exponential_euler"),
         {"n": bad_int(low=1), "p": NOT_PARAMS, "current": st.sampled_from([None, 5, ""]),
          "name": BAD_NAMES, "method": st.sampled_from([None, 5, ""])},
         names={"p": LIF_P}, check_good=False)
register("neurons.simulate_lif_brian2", lambda **kw: M.neurons.simulate_lif_brian2(**kw),
         lambda: dict(current_na=np.ones((5, 2)), p=lif(), codegen_target="numpy"),
         {"current_na": bad_floats((5, 2), extra=[np.ones(5)]), "p": NOT_PARAMS,
          "codegen_target": BAD_TARGETS}, names={"p": LIF_P}, check_good=False)

# plasticity
register("plasticity.STDPParams", lambda **kw: M.plasticity.STDPParams(**kw), dict,
         {"a_plus": bad_real(low=0), "a_minus": bad_real(low=0), "tau_plus_ms": positive(),
          "tau_minus_ms": positive(), "dt_ms": positive(),
          "w_min": NONFINITE | NOT_NUMBERS | st.floats(1.0, 1e6),
          "w_max": NONFINITE | NOT_NUMBERS | st.floats(-1e6, 0.0),
          "variant": st.sampled_from(["triplet", "", None, 1]),
          "bounds": st.sampled_from(["none", None, 1]),
          "reduction": st.sampled_from(["max", None, 1])})
register("plasticity.STDPState", lambda **kw: M.plasticity.STDPState.initial(**kw),
         lambda: dict(batch=1, pre=3, post=2),
         {"batch": bad_int(low=1), "pre": bad_int(low=1), "post": bad_int(low=1)})


def spikes_state():
    return dict(pre_spikes=torch.zeros(1, 3), post_spikes=torch.zeros(1, 2),
                state=M.plasticity.STDPState.initial(1, 3, 2), p=stdp())


BAD_PRE = st.sampled_from([np.zeros((1, 3)), torch.zeros(1, 4), torch.zeros(2, 3), None])
BAD_POST = st.sampled_from([np.zeros((1, 2)), torch.zeros(1, 3), torch.zeros(2, 2), None])
register("plasticity.stdp_step", lambda **kw: M.plasticity.stdp_step(**kw), spikes_state,
         {"pre_spikes": BAD_PRE, "post_spikes": BAD_POST,
          "state": st.sampled_from([None, (1, 2), "s"]), "p": NOT_PARAMS},
         names={"p": STDP_P})


def weight_change():
    s = spikes_state()
    s["pre_spikes"][0, 0] = 1.0
    s["post_spikes"][0, 1] = 1.0
    change, _ = M.plasticity.stdp_step(**s)
    return dict(w=torch.full((2, 3), 0.5), change=change, p=stdp())


BAD_W_SHAPE = st.sampled_from([np.full((2, 3), 0.5), torch.zeros(3, 2), torch.zeros(6)])
register("plasticity.apply_weight_change", lambda **kw: M.plasticity.apply_weight_change(**kw),
         weight_change,
         {"w": BAD_W_SHAPE | poisoned((2, 3), 0.0, 1.0, tensor=True),
          "change": st.sampled_from([None, (1, 2, 3, 4), "c"]), "p": NOT_PARAMS},
         names={"p": STDP_P})
register("plasticity.apply_weight_change_",
         lambda **kw: M.plasticity.apply_weight_change_(**kw), weight_change,
         {"w": BAD_W_SHAPE, "change": st.sampled_from([None, (1, 2, 3, 4), "c"]),
          "p": NOT_PARAMS}, names={"p": STDP_P})
register("plasticity.normalize_weights", lambda **kw: M.plasticity.normalize_weights(**kw),
         lambda: dict(w=torch.rand(2, 3), total=1.0),
         {"w": st.sampled_from([np.ones((2, 3)), torch.ones(3), torch.ones(0, 3)])
          | poisoned((2, 3), 0.0, 1.0, tensor=True),
          "total": positive()})
register("plasticity.stdp_window", lambda **kw: M.plasticity.stdp_window(**kw),
         lambda: dict(delta_t_ms=[-5.0, 5.0], p=stdp()),
         {"delta_t_ms": st.sampled_from([[1.0, NAN], [INF], NAN, [], ["a"]]), "p": NOT_PARAMS},
         names={"p": STDP_P})
register("plasticity.RSTDPParams", lambda **kw: M.plasticity.RSTDPParams(**kw), dict,
         {"stdp": st.sampled_from([None, {}, 1.0]),
          "tau_elig_ms": bad_real(low=0.5, low_open=True), "eta": bad_real(low=0)})
register("plasticity.RSTDPState", lambda **kw: M.plasticity.RSTDPState.initial(**kw),
         lambda: dict(batch=1, pre=3, post=2),
         {"batch": bad_int(low=1) | st.just(10**12), "pre": bad_int(low=1) | st.just(10**12),
          "post": bad_int(low=1) | st.just(10**12)})


def rstdp_args():
    return dict(pre_spikes=torch.zeros(1, 3), post_spikes=torch.zeros(1, 2), reward=0.0,
                state=M.plasticity.RSTDPState.initial(1, 3, 2), p=M.plasticity.RSTDPParams())


register("plasticity.rstdp_step", lambda **kw: M.plasticity.rstdp_step(**kw), rstdp_args,
         {"pre_spikes": BAD_PRE, "post_spikes": BAD_POST,
          "reward": NONFINITE | NOT_NUMBERS | st.sampled_from(
              [torch.tensor([NAN]), torch.zeros(3), np.array([INF])]),
          "state": st.builds(lambda: M.plasticity.STDPState.initial(1, 3, 2))
          | st.sampled_from([None, "s"]),
          "p": NOT_PARAMS | st.builds(stdp)},
         names={"p": named("RSTDPParams")})
register("plasticity.build_stdp_synapses", lambda **kw: M.plasticity.build_stdp_synapses(**kw),
         lambda: dict(source=fake_group(), target=fake_group(), p=stdp(), on_pre="", name="stdp"),
         {"source": st.sampled_from([None, 5, "g"]), "target": st.sampled_from([None, 5, "g"]),
          "p": NOT_PARAMS | st.builds(lambda: M.plasticity.RSTDPParams()),
          "on_pre": st.sampled_from([None, 5]), "name": BAD_NAMES},
         names={"p": STDP_P}, check_good=False)
register("plasticity.build_rstdp_synapses",
         lambda **kw: M.plasticity.build_rstdp_synapses(**kw),
         lambda: dict(source=fake_group(), target=fake_group(), p=M.plasticity.RSTDPParams(),
                      on_pre="", name="rstdp"),
         {"source": st.sampled_from([None, 5, "g"]), "target": st.sampled_from([None, 5, "g"]),
          "p": NOT_PARAMS | st.builds(stdp), "on_pre": st.sampled_from([None, 5]),
          "name": BAD_NAMES},
         names={"p": named("RSTDPParams")}, check_good=False)


def fake_synapses():
    return SimpleNamespace(w=np.zeros(4), elig=np.zeros(4), lastupdate=np.zeros(4), t=0.0)


register("plasticity.eligibility", lambda **kw: M.plasticity.eligibility(**kw),
         lambda: dict(syn=fake_synapses(), p=M.plasticity.RSTDPParams()),
         {"syn": st.sampled_from([None, 5, "syn"]), "p": NOT_PARAMS | st.builds(stdp)},
         names={"p": named("RSTDPParams")}, check_good=False)
register("plasticity.apply_reward", lambda **kw: M.plasticity.apply_reward(**kw),
         lambda: dict(syn=fake_synapses(), reward=1.0, p=M.plasticity.RSTDPParams(), where=None),
         {"syn": st.sampled_from([None, 5, "syn"]), "reward": NONFINITE | NOT_NUMBERS,
          "p": NOT_PARAMS | st.builds(stdp),
          "where": st.sampled_from([np.ones(3, bool), np.ones(4), [1, 0, 1, 0]])},
         names={"p": named("RSTDPParams")}, check_good=False)
register("plasticity.pairing_experiment", lambda **kw: M.plasticity.pairing_experiment(**kw),
         lambda: dict(offsets_ms=[-10.0, 10.0], p=stdp(), simulator="torch", w_init=None,
                      codegen_target="numpy"),
         {"offsets_ms": st.sampled_from([[1.0, NAN], [INF], [], [[1.0]], ["a"], [1e6], [-1e7],
                                         [1e12], np.zeros(10**6)]),
          "p": NOT_PARAMS, "simulator": st.sampled_from(["numpy", "", None, "Torch"]),
          "w_init": NONFINITE | NOT_NUMBERS | outside(0.0, 1.0),
          "codegen_target": BAD_TARGETS},
         names={"p": STDP_P})
register("plasticity.run_lif_stdp", lambda **kw: M.plasticity.run_lif_stdp(**kw),
         lambda: dict(input_spikes=torch.zeros(5, 1, 3), w_init=torch.full((2, 3), 0.5),
                      lif=lif(), p=stdp(), record_every=0, progress=False),
         {"input_spikes": st.one_of(
             arrays_like([np.zeros((5, 1, 3))]),
             arrays_like([np.zeros((5, 3)), np.zeros((0, 1, 3)), np.full((5, 1, 3), 2.0),
                          np.full((5, 1, 3), -1.0)], tensor=True),
             poisoned((5, 1, 3), 0.0, 1.0, tensor=True)),
          "w_init": st.one_of(arrays_like([np.zeros((2, 3))]),
                              arrays_like([np.zeros((2, 4)), np.zeros(3)], tensor=True),
                              poisoned((2, 3), 0.0, 1.0, tensor=True)),
          "lif": NOT_PARAMS | st.builds(lambda: lif(dt_ms=0.25)),
          "p": NOT_PARAMS | st.builds(lambda: stdp(dt_ms=0.25)),
          "record_every": bad_int(low=0), "progress": st.sampled_from([1, "yes", None])},
         names={"lif": named("lif", LIFParams="dt_ms"),
                "p": named("STDPParams", STDPParams="dt_ms")})
register("plasticity.run_rstdp", lambda **kw: M.plasticity.run_rstdp(**kw),
         lambda: dict(pre_spikes=torch.zeros(5, 1, 3), post_spikes=torch.zeros(5, 1, 2),
                      reward=torch.zeros(5, 1), w_init=torch.full((2, 3), 0.5),
                      p=M.plasticity.RSTDPParams()),
         {"pre_spikes": st.one_of(
             arrays_like([np.zeros((5, 1, 3))]),
             arrays_like([np.zeros((5, 3)), np.zeros((0, 1, 3)), np.full((5, 1, 3), 2.0)],
                         tensor=True),
             poisoned((5, 1, 3), 0.0, 1.0, tensor=True)),
          "post_spikes": arrays_like([np.zeros((4, 1, 2)), np.zeros((5, 2, 2)), np.zeros((5, 2))],
                                     tensor=True),
          "reward": arrays_like([np.zeros(5), np.zeros((4, 1))], tensor=True)
          | poisoned((5, 1), tensor=True) | st.just(np.zeros((5, 1))),
          "w_init": arrays_like([np.zeros((3, 2)), np.zeros(6)], tensor=True)
          | poisoned((2, 3), 0.0, 1.0, tensor=True),
          "p": NOT_PARAMS | st.builds(stdp)},
         names={"p": named("RSTDPParams")})

# retina
register("retina.DoGParams", lambda **kw: M.retina.DoGParams(**kw), dict,
         {"sigma_center_px": positive() | st.floats(2.0, 1e6),
          "sigma_surround_px": positive() | st.floats(1e-6, 1.0),
          "truncate": positive()})
register("retina.gaussian_kernel1d", lambda **kw: M.retina.gaussian_kernel1d(**kw),
         lambda: dict(sigma_px=1.0, truncate=4.0),
         {"sigma_px": positive() | st.floats(1e5, 1e300),
          "truncate": positive() | st.floats(1e5, 1e300)})
BAD_IMAGES = st.one_of(
    bad_floats((2, 8, 8), 0.0, 1.0, tensor=True, ndim=False, strings=False,
               extra=[np.zeros((8, 8)), np.zeros((1, 2, 3, 8, 8)), np.zeros((2, 8, 8, 3))]),
    st.sampled_from([torch.zeros(2, 8, 8, dtype=torch.uint8), STRINGS]))
register("retina.gaussian_blur", lambda **kw: M.retina.gaussian_blur(**kw),
         lambda: dict(images=torch.rand(2, 8, 8), sigma_px=1.0, truncate=4.0),
         {"images": BAD_IMAGES, "sigma_px": positive() | st.floats(1e5, 1e300),
          "truncate": positive()})
NOT_DOG = st.sampled_from([None, {}, (1.0, 2.0), "dog"])
register("retina.dog", lambda **kw: M.retina.dog(**kw),
         lambda: dict(images=torch.rand(2, 8, 8), p=M.retina.DoGParams()),
         {"images": BAD_IMAGES, "p": NOT_DOG}, names={"p": named("DoGParams")})
register("retina.on_off", lambda **kw: M.retina.on_off(**kw),
         lambda: dict(response=torch.randn(2, 8, 8)),
         {"response": bad_floats((2, 8, 8), tensor=True, ndim=False, extra=[np.zeros(4)])})
register("retina.colour_opponent", lambda **kw: M.retina.colour_opponent(**kw),
         lambda: dict(images_rgb=torch.rand(2, 8, 8, 3), p=M.retina.DoGParams()),
         {"images_rgb": st.one_of(
             bad_floats((2, 8, 8, 3), 0.0, 1.0, ranged=True, tensor=True, strings=False,
                        ndim=False, extra=[np.zeros((2, 8, 8)), np.zeros((2, 3, 8, 8))]),
             st.sampled_from([torch.zeros(2, 8, 8, 3, dtype=torch.uint8), STRINGS,
                              np.full((2, 8, 8, 3), 255.0)])),
          "p": NOT_DOG}, names={"p": named("DoGParams")})
register("retina.extract_patches", lambda **kw: M.retina.extract_patches(**kw),
         lambda: dict(images=torch.rand(1, 1, 8, 8), size=3, stride=1),
         {"images": bad_floats((1, 1, 8, 8), tensor=True, strings=False),
          "size": bad_int(low=1, high=8), "stride": bad_int(low=1)})


def zca_args():
    return dict(mean=torch.zeros(3, dtype=torch.float64),
                matrix=torch.eye(3, dtype=torch.float64), eps=0.01)


register("retina.ZCA", lambda **kw: M.retina.ZCA(**kw), zca_args,
         {"mean": st.sampled_from([np.zeros(3), torch.zeros(3, 1), torch.tensor([0.0, NAN, 0.0])]),
          "matrix": st.sampled_from([np.eye(3), torch.zeros(3, 2), torch.full((3, 3), INF)]),
          "eps": positive()})
register("retina.zca_fit", lambda **kw: M.retina.zca_fit(**kw),
         lambda: dict(patches=np.random.default_rng(0).random((20, 5)), eps=0.01),
         {"patches": bad_floats((20, 5), 0.0, 1.0, extra=[np.zeros((1, 5)), np.zeros(5)]),
          "eps": positive()})
register("retina.zca_apply", lambda **kw: M.retina.zca_apply(**kw),
         lambda: dict(patches=np.zeros((4, 5)),
                      zca=M.retina.zca_fit(np.random.default_rng(0).random((20, 5)))),
         {"patches": bad_floats((4, 5), ndim=False, empty=False, extra=[np.zeros((4, 6))]),
          "zca": st.sampled_from([None, {}, (1, 2), "zca"])})
register("retina.whitening_kernel", lambda **kw: M.retina.whitening_kernel(**kw),
         lambda: dict(images=torch.rand(2, 8, 8), size_px=3, eps=0.01, n_patches=50, seed=0),
         {"images": bad_floats((2, 8, 8), 0.0, 1.0, tensor=True, strings=False),
          "size_px": st.sampled_from([2, 4, 1, 0, -3, 9, 3.0, True, "3", None]),
          "eps": positive(), "n_patches": bad_int(low=2), "seed": bad_int(low=0)})
register("retina.filter_images", lambda **kw: M.retina.filter_images(**kw),
         lambda: dict(images=torch.rand(2, 8, 8), kernel=torch.zeros(3, 3)),
         {"images": bad_floats((2, 8, 8), 0.0, 1.0, tensor=True, strings=False),
          "kernel": st.sampled_from([np.zeros((3, 3)), torch.zeros(3, 4), torch.zeros(4, 4),
                                     torch.zeros(17, 17), torch.full((3, 3), NAN)])})
register("retina.local_contrast_normalise",
         lambda **kw: M.retina.local_contrast_normalise(**kw),
         lambda: dict(response=torch.randn(2, 8, 8), sigma_px=2.0, c=None),
         {"response": bad_floats((2, 8, 8), tensor=True, ndim=False,
                                 extra=[np.zeros((8, 8)), np.zeros((2, 8, 8))]),
          "sigma_px": positive(), "c": bad_real(low=0, low_open=True, none_ok=True)})

# metrics and readout
for _name in ("confusion_matrix", "classification_summary"):
    register(f"metrics.{_name}",
             (lambda f: lambda **kw: getattr(M.metrics, f)(**kw))(_name),
             lambda: dict(labels=np.array([0, 1, 2, 3, 4, 5]),
                          predictions=np.array([0, 1, -1, 3, 4, 5]), n_classes=10),
             {"labels": bad_labels(6), "predictions": bad_labels(6, low=-1),
              "n_classes": bad_int(low=1)})


def readout_args():
    rng = np.random.default_rng(0)
    return dict(train_x=rng.normal(size=(20, 3)), train_y=np.repeat([0, 1], 10),
                test_x=rng.normal(size=(4, 3)), test_y=np.array([0, 1, 0, 1]), cs=(0.1,),
                seed=0, dtype=np.float64, max_iter=100)


register("readout.logistic_regression", lambda **kw: M.readout.logistic_regression(**kw),
         readout_args,
         {"train_x": bad_floats((20, 3), ndim=False, extra=[np.zeros((19, 3))]),
          "test_x": bad_floats((4, 3), ndim=False, extra=[np.zeros((4, 2))]),
          "train_y": bad_labels(20) | st.just(np.zeros(20, int)),
          "test_y": bad_labels(4),
          "cs": st.sampled_from([(), [], "abc", (0.0,), (-1.0,), (NAN,), (INF,), None, 5]),
          "seed": bad_int(low=0, high=2**32 - 1),
          "dtype": st.sampled_from([np.int32, "float16", "bogus", np.complex128]),
          "max_iter": bad_int(low=1),
          "backend": st.sampled_from(["lbfgs", "", None, 1, "Torch"])})


def held_out_args():
    args = readout_args()
    del args["test_x"], args["test_y"]
    return args


register("readout.held_out_accuracy", lambda **kw: M.readout.held_out_accuracy(**kw),
         held_out_args,
         {"train_x": bad_floats((20, 3), ndim=False, extra=[np.zeros((19, 3))]),
          "train_y": bad_labels(20) | st.just(np.zeros(20, int)),
          "cs": st.sampled_from([(), [], "abc", (0.0,), (-1.0,), (NAN,), (INF,), None, 5]),
          "seed": bad_int(low=0, high=2**32 - 1),
          "dtype": st.sampled_from([np.int32, "float16", "bogus", np.complex128]),
          "max_iter": bad_int(low=1),
          "backend": st.sampled_from(["lbfgs", "", None, 1, "Torch"])})

# data


def dataset(n=2):
    return M.data.Dataset(np.zeros((n, 32, 32, 3), np.uint8), np.arange(n) % 10,
                          M.data.CLASS_NAMES, "x")


BAD_ROOTS = st.sampled_from([5, 1.5, b"x", A_FILE, str(A_FILE)])
ROOT = named("root", PosixPath="root")
register("data.Dataset", lambda **kw: M.data.Dataset(**kw),
         lambda: dict(images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.array([0, 1]),
                      class_names=M.data.CLASS_NAMES, source="x"),
         {"images": st.sampled_from([np.zeros((2, 32, 32, 3), np.float32), np.zeros((2, 32, 32)),
                                     [[0]], None]),
          "labels": bad_labels(2),
          "class_names": st.sampled_from([("a",) * 9, "airplane", None, [1] * 10]),
          "source": st.sampled_from([None, 5, b"x"])})
register("data.Dataset.subset", lambda indices: dataset().subset(indices),
         lambda: dict(indices=[0]),
         {"indices": st.sampled_from([[5], [-3], [0.5], np.ones((1, 1), int), np.array([True]),
                                      ["a"]])})


@contextlib.contextmanager
def env(name, value):
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def _default_data_dir(data_dir):
    with env("SNNLIB_DATA_DIR", data_dir):
        return M.data.default_data_dir()


register("data.default_data_dir", _default_data_dir, lambda: dict(data_dir=str(TMP)),
         {"data_dir": st.just(str(A_FILE))}, names={"data_dir": "SNNLIB_DATA_DIR"})
register("data.find_cifar10", lambda **kw: M.data.find_cifar10(**kw),
         lambda: dict(root=str(TMP)), {"root": BAD_ROOTS}, names={"root": ROOT})
register("data.load_cifar10", lambda **kw: M.data.load_cifar10(**kw),
         lambda: dict(split="test", root=str(TMP), download=False),
         {"split": st.sampled_from(["val", "", None, "TRAIN", 1]), "root": BAD_ROOTS,
          "download": st.sampled_from([1, "yes", None])},
         names={"root": ROOT}, check_good=False)
register("data.download_cifar10", lambda **kw: M.data.download_cifar10(**kw),
         lambda: dict(root=str(TMP), url=None, md5=None, progress=False),
         {"url": st.sampled_from([5, "", b"x"]),
          "md5": st.sampled_from(["xyz", "0" * 31, "g" * 32, 5]),
          "progress": st.sampled_from([1, "yes", None]), "root": BAD_ROOTS},
         names={"root": ROOT}, check_good=False)
register("data.to_grayscale", lambda **kw: M.data.to_grayscale(**kw),
         lambda: dict(images=np.zeros((2, 32, 32, 3), np.uint8)),
         {"images": st.sampled_from([np.zeros((2, 32, 32, 3), np.float32),
                                     np.zeros((2, 32, 32, 4), np.uint8),
                                     np.zeros((32, 3), np.uint8),
                                     np.zeros((0, 32, 32, 3), np.uint8)])})
register("data.balanced_subset", lambda **kw: M.data.balanced_subset(**kw),
         lambda: dict(labels=np.repeat(np.arange(10), 3), n_per_class=2, seed=0),
         {"labels": bad_labels(30, length=False) | st.just(np.zeros(0, int)),
          "n_per_class": bad_int(low=1) | st.integers(4, 10**6), "seed": bad_int(low=0)})
register("data.validation_split", lambda **kw: M.data.validation_split(**kw),
         lambda: dict(labels=np.repeat(np.arange(10), 3), n_per_class=1),
         {"labels": bad_labels(30, length=False) | st.just(np.zeros(0, int)),
          "n_per_class": bad_int(low=1) | st.integers(3, 10**6)})
register("data.dataset_name", lambda **kw: M.data.dataset_name(**kw),
         lambda: dict(source=str(TMP)), {"source": st.sampled_from([5, None, 1.5, b"x"])})

# runs
_RECORD = []


def record():
    if not _RECORD:
        _RECORD.append(M.runs.load_record(RESULTS / "dog_lif.json"))
    return _RECORD[0]


def record_fields():
    r = record()
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


BAD_PATHS = st.sampled_from([5, None, b"x", ""])
register("runs.SynapticEvents", lambda **kw: M.runs.SynapticEvents(**kw),
         lambda: dict(accumulates=1.0, multiply_accumulates=0.0, what=""),
         {"accumulates": bad_real(low=0), "multiply_accumulates": bad_real(low=0),
          "what": st.sampled_from([None, 5])})
register("runs.Speed", lambda **kw: M.runs.Speed(**kw), lambda: dict(images_per_s=1.0, what=""),
         {"images_per_s": bad_real(low=0, none_ok=True), "what": st.sampled_from([None, 5])})
register("runs.Variant", lambda **kw: M.runs.Variant(**kw),
         lambda: dict(accuracy=0.5, time_steps=10, synaptic_events=M.runs.SynapticEvents(1.0),
                      inference=M.runs.Speed(1.0)),
         {"accuracy": bad_real(low=0, high=1), "time_steps": bad_int(low=0, none_ok=True),
          "synaptic_events": st.sampled_from([None, {}, 1.0]),
          "inference": st.sampled_from([None, {}, 1.0])})
register("runs.TierRecord", lambda **kw: M.runs.TierRecord(**kw), record_fields,
         {"accuracy": bad_real(low=0, high=1), "seed": bad_int(low=0),
          "per_class_accuracy": st.sampled_from([[NAN] * 10, [1.5] * 10, [0.5] * 9, None]),
          "synaptic_events": st.sampled_from([None, {}, 1.0]),
          "format": st.sampled_from([1, 3, "2"]),
          "baselines": st.sampled_from([{"x": 1.5}, {"x": NAN}, None])})
register("runs.atomic_write", lambda **kw: M.runs.atomic_write(**kw),
         lambda: dict(path=TMP / "a.txt", write=lambda tmp: Path(tmp).write_text("x")),
         {"path": BAD_PATHS | st.just(TMP), "write": st.sampled_from([None, 5, "w"])},
         names={"path": named("path", PosixPath="path")})
register("runs.save_npz", lambda path, arrays: M.runs.save_npz(path, **arrays),
         lambda: dict(path=TMP / "a.npz", arrays={"x": np.zeros(3)}),
         {"path": BAD_PATHS,
          "arrays": st.sampled_from([{"x": np.array([1, None], dtype=object)},
                                     {"x": [[1], [1, 2]]}, {"x": {"a": 1}}])})
register("runs.save_torch", lambda **kw: M.runs.save_torch(**kw),
         lambda: dict(path=TMP / "a.pt", obj={"x": torch.zeros(2)}), {"path": BAD_PATHS})
register("runs.save_json", lambda **kw: M.runs.save_json(**kw),
         lambda: dict(path=TMP / "a.json", obj={"a": 1.0}),
         {"path": BAD_PATHS,
          "obj": st.sampled_from([{"a": NAN}, [INF], {"a": {"b": [1.0, -INF]}},
                                  {"a": np.array([NAN])}, {"a": object()}])})
register("runs.cache_key", lambda parts, version: M.runs.cache_key(*parts, version=version),
         lambda: dict(parts=(1, "a"), version=1),
         {"version": st.sampled_from([None, 1.5, True, b"x", [1]]),
          "parts": st.sampled_from([(object(),), (1, {"a": object()})])},
         names={"parts": "cannot hash"})
register("runs.cached_npz", lambda **kw: M.runs.cached_npz(**kw),
         lambda: dict(path=TMP / "none.npz", key="k"),
         {"path": BAD_PATHS, "key": st.sampled_from([None, 5, ""])})
register("runs.get_device", lambda **kw: M.runs.get_device(**kw), lambda: dict(name="cpu"),
         {"name": st.sampled_from(["gpu", "cuda:x", "cpu:1", 5, "", "tpu"])},
         names={"name": "device"})
register("runs.autocast", lambda **kw: M.runs.autocast(**kw),
         lambda: dict(device="cpu", enabled=False),
         {"device": st.sampled_from([5, None, "tpu", ""]),
          "enabled": st.sampled_from([1, "yes", None])})
register("runs.cpu_description", lambda **kw: M.runs.cpu_description(**kw),
         lambda: dict(cpuinfo="model name\t: x\n"),
         {"cpuinfo": st.sampled_from([5, 1.5, b"x", ["model name: x"]])})
register("runs.provenance", lambda **kw: M.runs.provenance(**kw),
         lambda: dict(device="cpu", commit="abc"),
         {"device": st.sampled_from([5, None, ""]), "commit": st.sampled_from([5, 1.5, b"x"])})
BAD_MOVES = st.sampled_from(["ab", [("a",)], [(1, 2)], None, [("", "b")]])
register("runs.legacy_view", lambda **kw: M.runs.legacy_view(**kw),
         lambda: dict(record=record(), moves=[("a", "b")]),
         {"record": st.sampled_from([None, {}, "r"]), "moves": BAD_MOVES})
register("runs.record_from_dict", lambda **kw: M.runs.record_from_dict(**kw),
         lambda: dict(d={}, moves=[("a", "b")]),
         {"d": st.sampled_from([None, [], "d"]), "moves": BAD_MOVES}, check_good=False)
register("runs.save_record", lambda **kw: M.runs.save_record(**kw),
         lambda: dict(record=record(), path=TMP / "r.json"),
         {"record": st.sampled_from([None, {}, "r"]), "path": BAD_PATHS})
register("runs.load_record", lambda **kw: M.runs.load_record(**kw),
         lambda: dict(path=RESULTS / "dog_lif.json", tier=None),
         {"path": BAD_PATHS | corrupt_file(".json"), "tier": st.sampled_from([5, ""])},
         names={"path": named("path")})
register("runs.migrate_record", lambda **kw: M.runs.migrate_record(**kw),
         lambda: dict(old={}), {"old": st.sampled_from([None, [], "x", 5])}, check_good=False)


def _good_npz():
    path = TMP / "good.npz"
    np.savez(path, x=np.zeros(2))
    return dict(path=path)


def _good_pt():
    path = TMP / "good.pt"
    torch.save({"x": torch.zeros(2)}, path)
    return dict(path=path)


register("runs.load_npz", lambda **kw: M.runs.load_npz(**kw), _good_npz,
         {"path": BAD_PATHS | corrupt_file(".npz") | st.just(TMP)},
         names={"path": named("path")})
register("runs.load_torch", lambda **kw: M.runs.load_torch(**kw), _good_pt,
         {"path": BAD_PATHS | corrupt_file(".pt") | st.just(TMP)},
         names={"path": named("path")})
register("runs.stored_benchmark_runs", lambda **kw: M.runs.stored_benchmark_runs(**kw),
         lambda: dict(path=TMP / "runs.json", where="report.x", script="x.py", keys=("name",)),
         {"path": st.sampled_from([5, None, b"x", "", TMP]),
          "where": st.sampled_from([None, 5]), "script": st.sampled_from([None, 5]),
          "keys": st.sampled_from(["name", None, [5], ("name", None)])},
         check_good=False)
register("runs.set_aside", lambda **kw: M.runs.set_aside(**kw),
         lambda: dict(path=TMP / "nothing", reason="why"),
         {"path": st.sampled_from([5, None, b"x"]), "reason": st.sampled_from([5, None])},
         check_good=False)

# profiles
register("profiles.BrianSTDPSizes", lambda **kw: M.profiles.BrianSTDPSizes(**kw), dict,
         {"hidden_images": bad_int(low=1), "layer1_patches": bad_int(low=1),
          "output_epochs": bad_int(low=1), "test_images": bad_int(low=1, none_ok=True),
          "layer2_train_images": bad_int(low=1, none_ok=True) | st.integers(21, 10**6)})
register("profiles.DogLIFSizes", lambda **kw: M.profiles.DogLIFSizes(**kw), dict,
         {"filters": bad_int(low=1), "train_patches": bad_int(low=1)})
register("profiles.ConversionSizes", lambda **kw: M.profiles.ConversionSizes(**kw), dict,
         {"width": bad_int(low=1), "epochs": bad_int(low=1), "steps": bad_int(low=1),
          "train_images": bad_int(low=10, none_ok=True),
          "snn_images": bad_int(low=1, none_ok=True),
          "design": st.sampled_from(["", "VGG", "resnet", None, 1, ["vgg"]])})
register("profiles.Profile", lambda **kw: M.profiles.Profile(**kw),
         lambda: dict(name="ci", n_train_per_class=1, n_test_per_class=1, n_encode_images=1,
                      stdp_demo_ms=1),
         {"name": st.sampled_from(["huge", "", None, 5]),
          "n_train_per_class": bad_int(low=1, none_ok=True),
          "n_encode_images": bad_int(low=1), "stdp_demo_ms": bad_int(low=1),
          "brian_stdp": st.sampled_from([None, {}, 1]),
          "dog_lif": st.sampled_from([None, {}, 1]),
          "conversion": st.sampled_from([None, {}, 1])})
register("profiles.get_profile", lambda **kw: M.profiles.get_profile(**kw),
         lambda: dict(name="ci"),
         {"name": st.sampled_from([5, 1.5, ["ci"], "huge", "", "cii"])},
         names={"name": lambda v: repr(v) if isinstance(v, str) else "name"})
register("profiles.profile_items", lambda **kw: M.profiles.profile_items(**kw),
         lambda: dict(profile=M.profiles.PROFILES["ci"]),
         {"profile": st.sampled_from([None, "ci", {}, 5])})

# viz (the arrays it plots: shapes and finite values)


def _use_style(**kw):
    import matplotlib

    with matplotlib.rc_context():
        return M.viz.use_style(**kw)


GRAY = np.full((8, 8), 0.5)
BAD_GRAY = st.one_of(poisoned((8, 8), 0.0, 1.0), poisoned((8, 8), 0.0, 1.0, outside(0, 1)),
                     st.sampled_from([np.zeros(8), np.zeros((8, 8, 3)), np.full((8, 8), 255.0),
                                      np.zeros((1, 8, 8))]))


@st.composite
def big_poisoned(draw, shape, bad=NONFINITE):
    a = np.zeros(shape)
    a[tuple(draw(st.integers(0, n - 1)) for n in shape)] = draw(bad)
    return a


register("viz.use_style", _use_style, lambda: dict(context="notebook"),
         {"context": st.sampled_from(["big", "", None, 5])})
register("viz.table", lambda **kw: M.viz.table(**kw),
         lambda: dict(data={"a": {"x": 0.5, "y": "text"}}, formats={"x": ".1%"}, caption="c",
                      index_name="row", notes=("n",)),
         {"data": st.sampled_from([[1, 2], "abc", 5, None, {}, {"a": 1.0}, {"a": [1.0]}]),
          "formats": st.sampled_from([{"nope": ".1%"}, 5, {"x": 3}, {"x": "{:q}"},
                                      {"x": lambda v: 1}, "{:d}"]),
          "caption": st.sampled_from([5, b"c", ["c"]]),
          "index_name": st.sampled_from([5, b"r", ["r"]]),
          "notes": st.sampled_from([5, [1], b"n", {"n"}])})
register("viz.image_grid", lambda **kw: M.viz.image_grid(**kw),
         lambda: dict(images=np.zeros((2, 8, 8)), titles=None, ncols=2),
         {"images": st.one_of(bad_floats((2, 8, 8), 0.0, 1.0, ranged=True, ndim=False),
                              st.just(np.zeros((8,)))),
          "titles": st.just(["a"]), "ncols": bad_int(low=1)})
register("viz.sample_grid", lambda **kw: M.viz.sample_grid(**kw),
         lambda: dict(images=np.zeros((4, 8, 8, 3), np.uint8), labels=np.array([0, 0, 1, 1]),
                      class_names=["a", "b"], n_per_class=1, seed=0),
         {"images": st.sampled_from([np.full((4, 8, 8, 3), 255.0), np.zeros((4, 8, 8, 3)) + NAN,
                                     np.zeros((4, 8))]),
          "labels": bad_labels(4) | st.just(np.array([0, 0, 1, 5])),
          "class_names": st.sampled_from([None, "ab", []]),
          "n_per_class": bad_int(low=1) | st.integers(3, 100)})
register("viz.raster", lambda **kw: M.viz.raster(**kw),
         lambda: dict(spikes=np.zeros((5, 2, 3), bool), dt_ms=1.0, sample=0, neurons=None),
         {"spikes": bad_floats((5, 2, 3), 0.0, 1.0, ndim=False, extra=[np.zeros(5)]),
          "dt_ms": positive(), "sample": bad_int(low=0, high=1),
          "neurons": st.sampled_from([[5], [-1], [0.5], [[0]]])})
register("viz.count_vs_intensity", lambda **kw: M.viz.count_vs_intensity(**kw),
         lambda: dict(intensities=np.full(10, 0.5), counts=np.ones(10), params=poisson()),
         {"intensities": bad_floats((10,), 0.0, 1.0, ranged=True, ndim=False),
          "counts": bad_floats((10,), 0.0, 5.0, ndim=False, extra=[np.ones(9), -np.ones(10)]),
          "params": NOT_PARAMS}, names={"params": "PoissonParams"})
register("viz.reconstruction_error_plot", lambda **kw: M.viz.reconstruction_error_plot(**kw),
         lambda: dict(durations_ms=[10.0, 20.0], measured_rmse=[0.1, 0.05],
                      theory_rmse=[0.1, 0.05]),
         {"durations_ms": st.sampled_from([[10.0, NAN], [0.0, 10.0], [], [[1.0, 2.0]]]),
          "measured_rmse": st.sampled_from([[0.1, NAN], [-0.1, 0.1], [0.1]]),
          "theory_rmse": st.sampled_from([[0.1, INF], [-0.1, 0.1], [0.1, 0.1, 0.1]])})
register("viz.encoding_panel", lambda **kw: M.viz.encoding_panel(**kw),
         lambda: dict(image=GRAY, params=poisson(), seed=0, n_raster_neurons=8),
         {"image": BAD_GRAY, "params": NOT_PARAMS, "seed": bad_int(low=0),
          "n_raster_neurons": bad_int(low=1, high=64)}, names={"params": "PoissonParams"})
register("viz.reconstruction_row", lambda **kw: M.viz.reconstruction_row(**kw),
         lambda: dict(image=GRAY, durations_ms=[10.0], max_rate_hz=100.0, dt_ms=1.0, seed=0),
         {"image": BAD_GRAY,
          "durations_ms": st.sampled_from([[10.0, NAN], [-10.0], [], [10.5], [[10.0]]]),
          "max_rate_hz": positive() | st.floats(1000.001, 1e9), "dt_ms": positive(),
          "seed": bad_int(low=0)}, names={"durations_ms": "duration"})
register("viz.membrane_trace", lambda **kw: M.viz.membrane_trace(**kw),
         lambda: dict(v_mem=np.full(5, -65.0), spikes=np.zeros(5, bool), dt_ms=1.0,
                      threshold_mv=None),
         {"v_mem": bad_floats((5,), -70.0, -50.0, strings=False),
          "spikes": st.sampled_from([np.zeros(4, bool), np.zeros((5, 2), bool),
                                     np.array([0, 1, NAN, 0, 0])]),
          "dt_ms": positive(),
          "threshold_mv": NONFINITE | st.sampled_from([np.zeros(3), "a", np.array([])])})
register("viz.fi_curve", lambda **kw: M.viz.fi_curve(**kw),
         lambda: dict(p=lif(), currents_na=[0.0, 1.0, 2.0], measured=None),
         {"p": NOT_PARAMS,
          "currents_na": st.sampled_from([[0.0, NAN], [], [[1.0, 2.0]], ["a"]]),
          "measured": st.sampled_from([{"x": [1.0]}, {"x": [NAN, 1.0, 2.0]},
                                       {"x": [-1.0, 1.0, 2.0]}])},
         names={"p": LIF_P})
register("viz.stdp_window_plot", lambda **kw: M.viz.stdp_window_plot(**kw),
         lambda: dict(p=stdp(), measured=None, span_ms=50.0),
         {"p": NOT_PARAMS, "span_ms": positive(),
          "measured": st.sampled_from([{"x": ([1.0], [NAN])}, {"x": ([1.0, 2.0], [0.1])},
                                       {"x": 5}, {"x": ([1.0],)}])},
         names={"p": STDP_P})
register("viz.weight_evolution", lambda **kw: M.viz.weight_evolution(**kw),
         lambda: dict(record_ms=[0.0, 10.0], w_history=np.zeros((2, 4)), groups={"a": [0, 1]}),
         {"record_ms": st.sampled_from([[0.0, NAN], [0.0], []]),
          "w_history": st.one_of(poisoned((2, 4)), st.just(np.zeros(4))),
          "groups": st.sampled_from([{}, None, {"a": [9]}, {"a": [-1]}])})
register("viz.lif_panel", lambda **kw: M.viz.lif_panel(**kw),
         lambda: dict(p=lif(), current_na=2.0, duration_ms=20.0),
         {"p": NOT_PARAMS, "current_na": NONFINITE | NOT_NUMBERS,
          "duration_ms": positive() | st.sampled_from([1e9, 0.1])}, names={"p": LIF_P})
register("viz.stdp_panel", lambda **kw: M.viz.stdp_panel(**kw),
         lambda: dict(p=stdp(), offsets_ms=[-10.0, 10.0]),
         {"p": NOT_PARAMS, "offsets_ms": st.sampled_from([[1.0, NAN], [], [1e6]])},
         names={"p": STDP_P})
register("viz.receptive_fields", lambda **kw: M.viz.receptive_fields(**kw),
         lambda: dict(weights=np.zeros((2, 1024)), ncols=2, n=None),
         {"weights": big_poisoned((2, 1024)) | st.just(np.zeros((2, 100))),
          "n": bad_int(low=1, none_ok=True), "ncols": bad_int(low=1)})
register("viz.rate_histograms", lambda **kw: M.viz.rate_histograms(**kw),
         lambda: dict(rates_hz={"a": [1.0, 2.0]}, bins=5),
         {"rates_hz": st.sampled_from([{}, None, {"a": [NAN]}, {"a": [-1.0]}, {"a": []}]),
          "bins": bad_int(low=1)})
register("viz.weight_heatmap", lambda **kw: M.viz.weight_heatmap(**kw),
         lambda: dict(weights=np.zeros((2, 3))),
         {"weights": bad_floats((2, 3), extra=[np.zeros(3)])})
register("viz.tier1_architecture", lambda **kw: M.viz.tier1_architecture(**kw),
         lambda: dict(n_inputs=4, n1=2, n2=None),
         {"n_inputs": bad_int(low=1), "n1": bad_int(low=1), "n2": bad_int(low=0, none_ok=True)})
register("viz.neuron_response_panel", lambda **kw: M.viz.neuron_response_panel(**kw),
         lambda: dict(weights=np.zeros((2, 1024)), images=np.zeros((3, 32, 32)),
                      counts=np.zeros((3, 2)), neuron=0, image=0),
         {"weights": big_poisoned((2, 1024)) | st.just(np.zeros((2, 100))),
          "images": big_poisoned((3, 32, 32), NONFINITE | outside(0, 1))
          | st.just(np.zeros((3, 1024))),
          "counts": st.sampled_from([-np.ones((3, 2)), np.zeros((2, 3)), np.full((3, 2), NAN)]),
          "neuron": bad_int(low=0, high=1), "image": bad_int(low=0, high=2),
          "duration_ms": positive()})
register("viz.running_accuracy", lambda **kw: M.viz.running_accuracy(**kw),
         lambda: dict(histories={"a": [{"images": 1, "accuracy": 0.5, "running_accuracy": 0.5}]},
                      chance=0.1),
         {"histories": st.sampled_from([
             None, {"a": [{"images": 1}]},
             {"a": [{"images": 1, "accuracy": 1.5, "running_accuracy": 0.5}]},
             {"a": [{"images": 1, "accuracy": NAN, "running_accuracy": 0.5}]}]),
          "chance": bad_real(low=0, high=1)})
register("viz.confusion_heatmap", lambda **kw: M.viz.confusion_heatmap(**kw),
         lambda: dict(confusion=np.eye(2), class_names=["a", "b"], class_totals=None),
         {"confusion": st.sampled_from([np.array([[1.0, NAN], [0.0, 1.0]]), -np.eye(2),
                                        np.zeros((2, 3)), np.eye(3)]),
          "class_totals": st.sampled_from([[1], [0, 0]])},
         names={"confusion": named("confusion")})


def spikes_dict(**kw):
    return {"hidden": [{"neuron": [0], "t_ms": [1.0]}], "output": {"neuron": [0], "t_ms": [2.0]},
            "decision": 0, "class_counts": [1, 0], **kw}


register("viz.output_weights", lambda **kw: M.viz.output_weights(**kw),
         lambda: dict(weights=np.zeros((4, 3)), neurons_per_class=2, class_names=["a", "b"]),
         {"weights": bad_floats((4, 3), extra=[np.zeros(3), np.zeros((5, 3))]),
          "neurons_per_class": bad_int(low=1), "class_names": st.sampled_from([None, "ab"])})
register("viz.tier1_spike_panel", lambda **kw: M.viz.tier1_spike_panel(**kw),
         lambda: dict(image=np.zeros((8, 8)), spikes=spikes_dict(), duration_ms=10.0,
                      neurons_per_class=1, class_names=["a", "b"], label=0),
         {"image": BAD_GRAY,
          "spikes": st.sampled_from([None, {}, spikes_dict(class_counts=[NAN, 0]),
                                     spikes_dict(class_counts=[1])]),
          "duration_ms": positive(), "neurons_per_class": bad_int(low=1),
          "label": bad_int(low=0, high=1, none_ok=True)})
register("viz.dog_panel", lambda **kw: M.viz.dog_panel(**kw),
         lambda: dict(image=np.zeros((8, 8, 3), np.uint8), p=M.retina.DoGParams()),
         {"image": st.sampled_from([np.full((8, 8, 3), 255.0), np.zeros((8, 8, 3)) + NAN,
                                    np.zeros((8, 8)), np.zeros((8, 8, 4), np.uint8)]),
          "p": NOT_DOG}, names={"p": named("DoGParams")})
register("viz.conv_filters", lambda **kw: M.viz.conv_filters(**kw),
         lambda: dict(w_mv=np.zeros((2, 24)), patch_px=2, n=None, ncols=2),
         {"w_mv": bad_floats((2, 24), extra=[np.zeros((2, 10))]), "patch_px": bad_int(low=1),
          "n": bad_int(low=1, none_ok=True), "ncols": bad_int(low=1)})


def position_record(**kw):
    return {"input_trains": np.zeros((5, 2, 4)), "trains": np.zeros((5, 2, 3)),
            "v_mem": np.zeros((5, 2, 3)), **kw}


register("viz.tier2_position_panel", lambda **kw: M.viz.tier2_position_panel(**kw),
         lambda: dict(record=position_record(), dt_ms=1.0, v_thresh_mv=np.zeros(3), position=0),
         {"record": st.sampled_from([None, {}, position_record(v_mem=np.full((5, 2, 3), NAN)),
                                     position_record(trains=np.zeros(5))]),
          "dt_ms": positive(),
          "v_thresh_mv": st.sampled_from([NAN, np.array([INF, 0.0, 0.0]), np.array([])]),
          "position": bad_int(low=0, high=1),
          "neurons": st.sampled_from([[3], [-1], [0, 5], [1.5]])})
register("viz.feature_maps", lambda **kw: M.viz.feature_maps(**kw),
         lambda: dict(counts=np.zeros((4, 3)), image=np.zeros((8, 8, 3), np.uint8),
                      filters=[0, 1]),
         {"counts": st.sampled_from([np.full((4, 3), NAN), -np.ones((4, 3)), np.zeros((5, 3)),
                                     np.zeros(4)]),
          "filters": st.sampled_from([[], [5], [-1]]),
          "image": st.sampled_from([np.zeros((1, 8, 8)), np.zeros((3, 8, 8)), np.zeros(8),
                                    np.full((8, 8, 3), NAN)]),
          "w_mv": st.sampled_from([np.zeros((3, 150)), np.zeros((2, 6)), np.zeros(3)])})
register("viz.if_rate_plot", lambda **kw: M.viz.if_rate_plot(**kw),
         lambda: dict(steps=(4, 16), threshold=1.0),
         {"steps": st.sampled_from([(), (0,), (1.5,), "abc", None, (4, -1)]),
          "threshold": positive()})
register("viz.accuracy_vs_steps", lambda **kw: M.viz.accuracy_vs_steps(**kw),
         lambda: dict(curves={"a": {1: 0.5, 2: 0.6}}, cnn_accuracy=0.7),
         {"curves": st.sampled_from([None, {"a": {}}, {"a": {1: 1.5}}, {"a": {1: NAN}},
                                     {"a": {0: 0.5}}, {"a": {"x": 0.5}}, {"a": 5}]),
          "cnn_accuracy": bad_real(low=0, high=1, none_ok=True)})
register("viz.rate_error_plot", lambda **kw: M.viz.rate_error_plot(**kw),
         lambda: dict(error=[{1: 0.5, 2: 0.25}], layer_names=None),
         {"error": st.sampled_from([[], None, {}, [{1: NAN}], [{1: -0.5}], [{0: 0.1}], [5]]),
          "layer_names": st.just(["a", "b"])})


def trace():
    return {"cnn_outputs": [np.zeros(2)], "outputs": {4: [np.zeros(2)]},
            "rates": {4: [[np.zeros(3)]]}, "activations": [[np.zeros(3)]]}


register("viz.conversion_image_panel", lambda **kw: M.viz.conversion_image_panel(**kw),
         lambda: dict(image=np.zeros((8, 8, 3)), trace=trace(), steps=4, layer=0,
                      class_names=["a", "b"], label=None),
         {"image": st.sampled_from([np.zeros((8, 8, 3)) + NAN, np.zeros(8), np.zeros((3, 8, 8))]),
          "trace": st.sampled_from([None, {}, {**trace(), "cnn_outputs": [np.zeros(2)] * 2}]), "steps": st.sampled_from([8, 0, True, "4"]),
          "layer": bad_int(low=0, high=0), "label": bad_int(low=0, high=1, none_ok=True)})


# --- the tests -------------------------------------------------------------------------------
def _close_figures():
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(autouse=True, scope="module")
def _agg():
    import matplotlib

    backend = matplotlib.get_backend()
    matplotlib.use("Agg")
    yield
    _close_figures()
    matplotlib.use(backend)


def _check_bad(name: str, data) -> None:
    entry = REGISTRY[name]
    argument = data.draw(st.sampled_from(sorted(entry.bad)), label="argument")
    value = data.draw(entry.bad[argument], label=argument)
    kwargs = entry.good()
    kwargs[argument] = value
    expected = entry.names.get(argument, argument)
    expected = expected(value) if callable(expected) else expected
    try:
        with pytest.raises((ValueError, TypeError)) as err, time_limit(TIME_LIMIT_S):
            entry.call(**kwargs)
    finally:
        _close_figures()
    message = str(err.value)
    assert "keyword argument" not in message, f"{name}: the registry names no argument {argument}"
    # the argument's own name as a word (the function's name is no substitute); a name the
    # registry gives instead (a class, a fragment shared by several messages) as it stands
    named = (names_the_argument(message, expected) if expected == argument
             else expected in message)
    assert named, (
        f"{name}({argument}={value!r}): the message does not name {expected!r}: {message}")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bad_arguments_are_refused_naming_them(name):
    """Every bad value of every argument: ValueError or TypeError, at once, naming it."""
    entry = REGISTRY[name]

    @settings(max_examples=entry.examples, deadline=None, derandomize=True, database=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(data=st.data())
    def check(data):
        _check_bad(name, data)

    check()


LISTED = [(name, arg, i) for name in sorted(REGISTRY)
          for arg in sorted(REGISTRY[name].bad)
          for i in range(len(listed_values(REGISTRY[name].bad[arg])))]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_listed_bad_value_is_tried(name):
    """The values a registry entry lists outright are each tried once (hypothesis, drawing a few
    dozen examples, would leave some of them out)."""
    entry = REGISTRY[name]
    for argument in sorted(entry.bad):
        for value in listed_values(entry.bad[argument]):
            fixed = SimpleNamespace(draw=lambda s, label=None, _a=argument, _v=value:
                                    _a if label == "argument" else _v)
            _check_bad(name, fixed)


def test_the_registry_lists_values_to_try():
    """The enumeration above is not vacuous (hypothesis's internals could change under it)."""
    assert len(LISTED) > 500, len(LISTED)


@pytest.mark.parametrize("name", sorted(n for n, e in REGISTRY.items() if e.check_good))
def test_the_good_arguments_of_the_registry_are_accepted(name):
    """The registry's valid arguments are valid: a refusal above is the bad value's doing."""
    entry = REGISTRY[name]
    try:
        with time_limit(30.0):
            entry.call(**entry.good())
    finally:
        _close_figures()


def _public_callables(module_name: str):
    module = getattr(M, module_name)
    assert module is not None, f"snnlib.{module_name} cannot be imported"
    for public in module.__all__:
        obj = getattr(module, public)
        if not callable(obj) or (isinstance(obj, type) and issubclass(obj, BaseException)):
            continue  # constants and exceptions
        yield f"{module_name}.{public}"


@pytest.mark.parametrize("module_name", OWNED)
def test_every_public_callable_is_in_the_registry_or_exempt(module_name):
    missing = [name for name in _public_callables(module_name)
               if name not in REGISTRY and name not in EXEMPT]
    assert not missing, f"add these to REGISTRY (or to EXEMPT, with the reason): {missing}"


def test_the_exemptions_give_a_reason_and_name_public_callables():
    public = {name for module_name in OWNED for name in _public_callables(module_name)}
    for name, reason in EXEMPT.items():
        assert name in public and reason.strip(), name
        assert name not in REGISTRY, f"{name} is both registered and exempt"
