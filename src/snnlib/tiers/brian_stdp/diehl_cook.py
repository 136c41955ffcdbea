"""Tier 1, the hidden layers: a Brian2 network learning with STDP under lateral inhibition.

After Diehl & Cook (2015). Grayscale images become Poisson spike trains
(1024 input neurons, rate = intensity x max rate). Each hidden layer has
``n`` excitatory LIF neurons with adaptive thresholds and ``n`` inhibitory
partners: excitatory neuron k excites inhibitory neuron k, which inhibits
every excitatory neuron but k (lateral inhibition, a soft winner-take-all).
The feed-forward weights (input -> layer 1, layer 1 -> layer 2) learn by
trace STDP (:mod:`snnlib.plasticity`) and are normalised per neuron to a
fixed sum. Neuron and STDP equations come from :mod:`snnlib.neurons` and
:mod:`snnlib.plasticity`: one parameter object drives them everywhere.

How training is made fast (measured in ``benchmarks/brian_stdp_speed.py``):
each Brian2 ``run()`` costs a fixed ~0.2 s here (code objects are prepared
anew) on top of the simulation itself, so the network presents a *chunk*
of images per ``run()``: a ``TimedArray`` holds the chunk's rates, and
``run_regularly`` operations reset the membrane, the conductances and the
STDP traces at every image boundary instead of simulating Diehl & Cook's
150 ms of rest, and only the hidden layers' spikes are recorded (the
monitors keep them for the whole training; the naive loop also records
every input spike). Weights are normalised at the start of every image, as
Diehl & Cook do, by a Brian2 ``network_operation`` that runs once per image
slot (a few milliseconds of numpy for 400 x 1024 weights). Normalising only
between chunks is not the same network: STDP then inflates the weights
within a chunk, the layer fires far more while it learns than it does with
normalised, frozen weights. The naive loop (one ``run()`` per image, rest simulated,
every spike recorded) is kept as :meth:`BrianSTDPNetwork.fit_naive`, the
baseline of the benchmark.

A layer that stays nearly silent for an image (fewer than ``min_spikes``)
gets the image again with ``boost_hz`` more input rate, at most
``max_boosts`` times: a bounded retry (public ports of Diehl & Cook loop
forever on a blank image).

Randomness: the weights come from ``numpy.random.default_rng(seed)``; each
chunk reseeds Brian2 with ``seed`` and the chunk's index, so a run resumed
from a checkpoint (saved at chunk boundaries) continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from ... import _validate as check
from ... import runs
from ...encoding import PoissonParams
from ...neurons import LIFParams, _seed_brian2, build_lif_group, run_brian2
from ...plasticity import STDPParams, build_stdp_synapses, normalize_weights

__all__ = ["BrianSTDPNetwork", "BrianSTDPParams", "DC_EXC", "DC_INH", "DC_STDP", "FrozenReplicas",
           "LAYER2_SUM", "LAYER2_W_MAX", "LayerParams", "N_INPUTS", "TrainingInterrupted",
           "field_similarity", "field_smoothness", "initial_state", "learned_fraction",
           "snapshot_schedule", "spike_statistics", "volley_fraction"]

N_INPUTS = 32 * 32
TRAIN_VERSION = 1
"""Part of the training checkpoints' keys: raised when the hidden layers' training changes."""

# Diehl & Cook (2015), section 2.1 and their published code.
DC_EXC = LIFParams(tau_mem_ms=100.0, v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-52.0,
                   t_ref_ms=5.0, e_exc_mv=0.0, e_inh_mv=-100.0, tau_exc_ms=1.0, tau_inh_ms=2.0,
                   theta_plus_mv=0.05, tau_theta_ms=1.0e7, dt_ms=0.5)
DC_INH = LIFParams(tau_mem_ms=10.0, v_rest_mv=-60.0, v_reset_mv=-45.0, v_thresh_mv=-40.0,
                   t_ref_ms=2.0, e_exc_mv=0.0, e_inh_mv=-85.0, tau_exc_ms=1.0, tau_inh_ms=2.0,
                   dt_ms=0.5)
LAYER2_SUM = 3.0
LAYER2_W_MAX = 10.0
DC_STDP = STDPParams(a_plus=0.01, a_minus=0.0001, tau_plus_ms=20.0, tau_minus_ms=20.0,
                     w_min=0.0, w_max=1.0, dt_ms=0.5)


@dataclass(frozen=True)
class LayerParams:
    """One hidden layer: excitatory neurons, their inhibitory partners, plastic input.

    Attributes
    ----------
    n_neurons : int
        Excitatory neurons (and as many inhibitory ones).
    exc, inh : LIFParams
        Excitatory (adaptive threshold) and inhibitory neurons.
    stdp : STDPParams
        The rule on the layer's input weights.
    w_exc_inh, w_inh_exc : float
        Conductance jumps exc k -> inh k, and inh k -> every exc but k
        (Diehl & Cook: 10.4 and 17).
    lateral_inhibition : bool
        Without it the layer has no inhibitory neurons: every neuron learns alone.
    weight_sum_per_input : float
        Normalisation: each neuron's input weights sum to this times the
        number of inputs (Diehl & Cook: 78 / 784 = 0.1 for MNIST).
    w_init_max : float
        Initial weights are uniform in [0, w_init_max].
    """

    n_neurons: int = 100
    exc: LIFParams = DC_EXC
    inh: LIFParams = DC_INH
    stdp: STDPParams = DC_STDP
    w_exc_inh: float = 10.4
    w_inh_exc: float = 17.0
    lateral_inhibition: bool = True
    weight_sum_per_input: float = 0.1
    w_init_max: float = 0.3

    def __post_init__(self) -> None:
        check.positive_int("LayerParams.n_neurons", self.n_neurons)
        check.instance("LayerParams.exc", self.exc, LIFParams)
        check.instance("LayerParams.inh", self.inh, LIFParams)
        check.instance("LayerParams.stdp", self.stdp, STDPParams)
        for name in ("w_exc_inh", "w_inh_exc", "weight_sum_per_input", "w_init_max"):
            check.finite_number(f"LayerParams.{name}", getattr(self, name), at_least=0)
        check.flag("LayerParams.lateral_inhibition", self.lateral_inhibition)
        if not self.stdp.w_min <= self.weight_sum_per_input <= self.stdp.w_max:
            raise ValueError(
                f"weight_sum_per_input={self.weight_sum_per_input} is the mean weight after "
                f"normalisation; it must lie within the STDP bounds [{self.stdp.w_min}, "
                f"{self.stdp.w_max}] (raise stdp.w_max).")
        if not (self.exc.dt_ms == self.inh.dt_ms == self.stdp.dt_ms):
            raise ValueError("exc, inh and stdp must share one dt_ms, got "
                             f"{self.exc.dt_ms}, {self.inh.dt_ms}, {self.stdp.dt_ms}.")


@dataclass(frozen=True)
class BrianSTDPParams:
    """The whole network and how it is trained.

    Attributes
    ----------
    encoding : PoissonParams
        Input: max rate (Diehl & Cook 63.75 Hz), presentation time
        (350 ms) and time step.
    layer1, layer2 : LayerParams
        The hidden layers; ``layer2`` may be None.
    chunk_images : int
        Images per Brian2 ``run()`` (weights are normalised before every image
        all the same; checkpoints are written between chunks).
    min_spikes : int
        A layer with fewer spikes than this for an image is "silent".
    boost_hz, max_boosts : float, int
        A silent image is shown again with ``boost_hz`` more max rate, at
        most ``max_boosts`` times.
    codegen_target : str
        Brian2's code generation: "cython" (compiled once, cached on disk)
        or "numpy" (no compiler; slower).
    """

    encoding: PoissonParams = PoissonParams(max_rate_hz=63.75, duration_ms=350.0, dt_ms=0.5)
    layer1: LayerParams = LayerParams()
    layer2: LayerParams | None = field(default_factory=lambda: LayerParams(n_neurons=100))
    chunk_images: int = 25
    min_spikes: int = 5
    boost_hz: float = 32.0
    max_boosts: int = 3
    codegen_target: Literal["cython", "numpy"] = "cython"

    def __post_init__(self) -> None:
        check.instance("BrianSTDPParams.encoding", self.encoding, PoissonParams)
        check.instance("BrianSTDPParams.layer1", self.layer1, LayerParams)
        check.instance("BrianSTDPParams.layer2", self.layer2, LayerParams, none=True)
        for layer in (self.layer1, self.layer2):
            if layer is not None and layer.exc.dt_ms != self.encoding.dt_ms:
                raise ValueError(f"the layers' dt_ms={layer.exc.dt_ms} differs from the "
                                 f"encoding's dt_ms={self.encoding.dt_ms}.")
        check.positive_int("BrianSTDPParams.chunk_images", self.chunk_images)
        for name in ("min_spikes", "max_boosts"):
            check.positive_int(f"BrianSTDPParams.{name}", getattr(self, name), low=0)
        check.finite_number("BrianSTDPParams.boost_hz", self.boost_hz, at_least=0)
        if (self.encoding.max_rate_hz + self.max_boosts * self.boost_hz) * self.encoding.dt_ms \
                / 1000.0 > 1:
            raise ValueError(f"BrianSTDPParams.boost_hz={self.boost_hz}: after {self.max_boosts} "
                             f"boosts the input rate ({self.encoding.max_rate_hz} Hz + "
                             f"{self.max_boosts} x {self.boost_hz} Hz) is more than one spike per "
                             f"step of {self.encoding.dt_ms} ms.")
        if self.codegen_target not in ("cython", "numpy"):
            raise ValueError(f"BrianSTDPParams.codegen_target must be 'cython' or 'numpy', got "
                             f"{self.codegen_target!r}.")

    def n_synapses(self, replicas: int = 1) -> int:
        """Synapses of the network (feed-forward and lateral), ``replicas`` copies of it."""
        total, n_source = 0, N_INPUTS
        for lp in (self.layer1, self.layer2):
            if lp is None:
                continue
            total += n_source * lp.n_neurons
            if lp.lateral_inhibition:
                total += lp.n_neurons * lp.n_neurons
            n_source = lp.n_neurons
        return replicas * total


# What a new image starts from, as after Diehl & Cook's 150 ms of rest: rest
# potential, no conductance, not refractory (the adaptive threshold stays).
RESET_NEURONS = "v = v_rest\ng_exc = 0\ng_inh = 0\nlastspike = -1e4 * second"


BYTES_PER_SYNAPSE = 24
"""What Brian2 keeps per synapse at least (its source, its target, its weight): the estimate
a network's size is checked with before it is built."""


def _flat_images(intensities, name: str = "intensities", where: str | None = None) -> np.ndarray:
    """``(N, 32, 32)`` intensities in [0, 1] as ``(N, 1024)`` float32, or a clear error naming
    the argument ``name`` of ``where`` (the checks of :mod:`snnlib.encoding`'s intensities)."""
    from ...encoding import _as_intensities

    label = f"{where}: {name}" if where else name
    if isinstance(intensities, (str, bytes)) or not hasattr(intensities, "__len__"):
        raise TypeError(f"{label} must be grayscale images (N, 32, 32) in [0, 1], got "
                        f"{type(intensities).__name__}")
    if len(intensities) == 0:
        raise ValueError(f"{label}: no images given.")
    x = _as_intensities(intensities, where=where or "diehl_cook", name=name)
    x = x.numpy().reshape(len(x), -1)
    if x.shape[1] != N_INPUTS:
        raise ValueError(f"{label}: images must have {N_INPUTS} pixels (32 x 32 grayscale), got "
                         f"{x.shape[1]}.")
    return x


def _check_state(state, layers: list, where: str, name: str = "state") -> None:
    """``state`` holds ``w1``, ``theta1`` (and ``w2``, ``theta2``) of the right sizes, finite."""
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"{where}: {name} must be a dict of arrays (state_dict gives one), got "
                        f"{type(state).__name__}")
    missing = [f"{v}{k}" for k in range(1, len(layers) + 1) for v in ("w", "theta")
               if f"{v}{k}" not in state]
    if missing:
        raise ValueError(f"{where}: {name} lacks {missing} for a network of {len(layers)} layers.")
    n_source = N_INPUTS
    for k, lp in enumerate(layers, start=1):
        w = check.array(f"{name}['w{k}']", np.asarray(state[f"w{k}"]), where=where)
        if w.size != n_source * lp.n_neurons:
            raise ValueError(f"{where}: {name}['w{k}'] has {w.size} weights; layer {k} needs "
                             f"{n_source * lp.n_neurons}.")
        check.array(f"{name}['theta{k}']", np.asarray(state[f"theta{k}"]), shape=(lp.n_neurons,),
                    where=where)
        n_source = lp.n_neurons


def _trains_dict(name: str, trains, where: str, *, n_images: int | None = None,
                 n_neurons: int | None = None) -> dict:
    """Spikes as ``image``, ``neuron`` (non-negative integers) and ``t_ms`` (finite) arrays
    of one length; images below ``n_images``, neurons below ``n_neurons`` when given."""
    if not hasattr(trains, "keys") or any(k not in trains for k in ("image", "neuron", "t_ms")):
        raise TypeError(f"{where}: {name} must be a dict of 'image', 'neuron' and 't_ms' arrays, "
                        f"got {type(trains).__name__}"
                        + (f" with keys {sorted(trains)}" if hasattr(trains, "keys") else ""))
    out = {k: np.asarray(trains[k]) for k in ("image", "neuron", "t_ms")}
    lengths = {k: v.shape for k, v in out.items()}
    if any(v.ndim != 1 for v in out.values()) or len({v.shape for v in out.values()}) > 1:
        raise ValueError(f"{where}: {name}' arrays must be one-dimensional and of one length, got "
                         f"shapes {lengths}")
    for k in ("image", "neuron"):
        if out[k].dtype.kind not in "iu":
            raise TypeError(f"{where}: {name}['{k}'] must be integer indices, got dtype "
                            f"{out[k].dtype}")
    check.array(f"{name}['t_ms']", out["t_ms"], nonempty=False, low=0.0, where=where)
    for k, n in (("image", n_images), ("neuron", n_neurons)):
        if len(out[k]) and (out[k].min() < 0 or (n is not None and out[k].max() >= n)):
            bad = int(out[k].min()) if out[k].min() < 0 else int(out[k].max())
            raise ValueError(f"{where}: {name}['{k}'] must be in [0, "
                             f"{'inf' if n is None else n - 1}], got {bad}")
    return out


def _normalised(w: np.ndarray, total: float, stdp: STDPParams) -> np.ndarray:
    """Weights ``(n_source, n)`` with each neuron's column scaled to sum to ``total``.

    :func:`snnlib.plasticity.normalize_weights` (on the transpose: it takes
    post x pre), then clipped to the STDP bounds ``[w_min, w_max]``: a weight
    scaled above ``w_max`` makes that neuron's sum fall short of ``total``.
    """
    import torch

    post_pre = torch.from_numpy(np.ascontiguousarray(np.asarray(w, dtype=np.float64).T))
    return np.clip(normalize_weights(post_pre, total).numpy().T, stdp.w_min, stdp.w_max)


def _spikes_since(monitor, start: int, t0_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """A ``SpikeMonitor``'s spikes from index ``start`` on: times (ms) since ``t0_ms``, neurons."""
    return np.asarray(monitor.t_[start:]) * 1000.0 - t0_ms, np.asarray(monitor.i[start:])


class TrainingInterrupted(RuntimeError):
    """Raised by an ``on_chunk`` callback to stop training (tests simulate a kill with it)."""


class BrianSTDPNetwork:
    """The tier-1 hidden layers as one Brian2 network.

    Example
    -------
    >>> net = BrianSTDPNetwork(BrianSTDPParams(), seed=0)            # doctest: +SKIP
    >>> net.fit(intensities, layer=1, checkpoint="ckpt/layer1.npz")  # doctest: +SKIP
    >>> counts = net.spike_counts(intensities)                       # doctest: +SKIP
    """

    REST_MS = 150.0  # Diehl & Cook's rest between images (naive loop only)

    def __init__(self, params: BrianSTDPParams, *, seed: int) -> None:
        check.instance("params", params, BrianSTDPParams, where="BrianSTDPNetwork")
        check.integer("seed", seed, low=0, where="BrianSTDPNetwork")
        check.fits_in_memory(f"params' network of {params.n_synapses():,} synapses",
                             BYTES_PER_SYNAPSE * params.n_synapses(), where="BrianSTDPNetwork")
        self.params = params
        self.seed = int(seed)
        self.layers = [params.layer1] + ([params.layer2] if params.layer2 is not None else [])
        self._build()

    # --- construction ---------------------------------------------------
    def _build(self) -> None:
        import brian2 as b2

        p, ms = self.params, b2.ms
        dt, slot = p.encoding.dt_ms * ms, p.encoding.duration_ms * ms
        rng = np.random.default_rng(self.seed)
        self._stimulus = b2.TimedArray(np.zeros((1, N_INPUTS)) * b2.Hz, dt=slot, name="stimulus")
        self.input = b2.NeuronGroup(
            N_INPUTS, "rates = stimulus(t - t_start, i) : Hz\nt_start : second (shared)",
            threshold="rand() < rates * dt", dt=dt, name="input",
            namespace={"stimulus": self._stimulus})
        objects = [self.input]
        self.exc, self.syn, self.monitors, self._resets, self._layer_objects = [], [], [], [], []
        source, n_source = self.input, N_INPUTS
        for k, lp in enumerate(self.layers, start=1):
            exc = build_lif_group(lp.n_neurons, lp.exc, name=f"exc{k}")
            syn = build_stdp_synapses(source, exc, lp.stdp, on_pre="g_exc_post += w", name=f"w{k}")
            syn.connect()
            syn.w = rng.uniform(0.0, lp.w_init_max, n_source * lp.n_neurons)
            layer_objects = [exc, syn]
            resets = [exc.run_regularly(RESET_NEURONS, dt=slot, when="start",
                                        name=f"reset_exc{k}"),
                      syn.run_regularly("pre_trace = 0\npost_trace = 0", dt=slot, when="start",
                                        name=f"reset_w{k}")]
            if lp.lateral_inhibition:
                inh = build_lif_group(lp.n_neurons, lp.inh, name=f"inh{k}")
                ei = b2.Synapses(exc, inh, on_pre="g_exc_post += w_ei", dt=dt, name=f"ei{k}",
                                 namespace={"w_ei": lp.w_exc_inh})
                ei.connect(j="i")
                ie = b2.Synapses(inh, exc, on_pre="g_inh_post += w_ie", dt=dt, name=f"ie{k}",
                                 namespace={"w_ie": lp.w_inh_exc})
                ie.connect(condition="i != j")
                layer_objects += [inh, ei, ie]
                resets.append(inh.run_regularly(RESET_NEURONS, dt=slot,
                                                when="start", name=f"reset_inh{k}"))
            monitor = b2.SpikeMonitor(exc, name=f"spikes{k}")
            layer_objects.append(monitor)
            self.exc.append(exc)
            self.syn.append(syn)
            self.monitors.append(monitor)
            self._resets.append(resets)
            self._layer_objects.append(layer_objects)
            objects += layer_objects
            source, n_source = exc, lp.n_neurons
        self._input_monitor = b2.SpikeMonitor(self.input, name="input_spikes")  # naive loop only
        self._input_monitor.active = False
        self._normalised_layers: list[int] = []  # set by _configure: the plastic layers

        @b2.network_operation(dt=slot, when="start", name="normalise_each_image")
        def normalise_each_image():
            if self._normalised_layers:
                self.normalise(self._normalised_layers)

        self.net = b2.Network(*objects, *[r for rs in self._resets for r in rs],
                              self._input_monitor, normalise_each_image)
        self.normalise(range(1, len(self.layers) + 1))

    # --- state ------------------------------------------------------------
    def weights(self, layer: int) -> np.ndarray:
        """Input weights of ``layer`` (1-based) as ``(n_neurons, n_inputs)`` (post x pre)."""
        self._layer_number(layer, "BrianSTDPNetwork.weights")
        lp = self.layers[layer - 1]
        n_source = N_INPUTS if layer == 1 else self.layers[layer - 2].n_neurons
        return np.asarray(self.syn[layer - 1].w).reshape(n_source, lp.n_neurons).T.copy()

    def theta_mv(self, layer: int) -> np.ndarray:
        """Adaptive threshold increase of ``layer``'s excitatory neurons (mV)."""
        import brian2 as b2

        self._layer_number(layer, "BrianSTDPNetwork.theta_mv")
        return np.asarray(self.exc[layer - 1].theta / b2.mV).copy()

    def normalise(self, layers) -> None:
        """Scale each neuron's input weights to sum to ``weight_sum_per_input x n_inputs``.

        Then clip to the STDP bounds: a weight scaled above ``w_max`` makes
        that neuron's sum fall short of the target.
        """
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"BrianSTDPNetwork.normalise: layers must be a sequence of layer "
                            f"numbers, got {type(layers).__name__} {layers!r}")
        layers = list(layers)
        for layer in layers:
            self._layer_number(layer, "BrianSTDPNetwork.normalise", name="layers")
        self._normalise(layers)

    def _layer_number(self, layer, where: str, name: str = "layer") -> int:
        check.positive_int(name, layer, where=where)
        if layer > len(self.layers):
            raise ValueError(f"{where}: {name} must be a layer number in [1, {len(self.layers)}], "
                             f"got {layer}")
        return int(layer)

    def _normalise(self, layers) -> None:
        """:meth:`normalise` after its checks."""
        for layer in layers:
            lp = self.layers[layer - 1]
            syn = self.syn[layer - 1]
            n_source = N_INPUTS if layer == 1 else self.layers[layer - 2].n_neurons
            w = np.asarray(syn.w).reshape(n_source, lp.n_neurons)
            # Kept within the STDP bounds, so that a frozen rule (a_plus = a_minus = 0),
            # whose update still clips, leaves the weights as they are.
            syn.w = _normalised(w, lp.weight_sum_per_input * n_source, lp.stdp).ravel()

    def state_dict(self) -> dict:
        """Weights and thresholds of every layer (what a checkpoint holds besides the position)."""
        out = {}
        for k in range(1, len(self.layers) + 1):
            out[f"w{k}"] = np.asarray(self.syn[k - 1].w).copy()
            out[f"theta{k}"] = self.theta_mv(k)
        return out

    def load_state_dict(self, state: dict) -> None:
        import brian2 as b2

        _check_state(state, self.layers, "BrianSTDPNetwork.load_state_dict")
        for k in range(1, len(self.layers) + 1):
            self.syn[k - 1].w = state[f"w{k}"]
            self.exc[k - 1].theta = state[f"theta{k}"] * b2.mV

    # --- simulation -----------------------------------------------------
    def _configure(self, active_layers: int, plastic: set[int]) -> None:
        """Switch layers on or off, and their STDP and threshold adaptation.

        The constants are read from the groups' namespaces at each ``run()``.
        """
        import brian2 as b2

        self._normalised_layers = sorted(plastic)
        for k, (objects, resets) in enumerate(zip(self._layer_objects, self._resets), start=1):
            for obj in (*objects, *resets):
                obj.active = k <= active_layers
            lp = self.layers[k - 1]
            on = k in plastic
            self.syn[k - 1].namespace["a_plus"] = lp.stdp.a_plus if on else 0.0
            self.syn[k - 1].namespace["a_minus"] = lp.stdp.a_minus if on else 0.0
            # frozen: theta neither grows nor decays (Diehl & Cook's test mode)
            self.exc[k - 1].namespace["theta_plus"] = (lp.exc.theta_plus_mv if on else 0.0) * b2.mV
            self.exc[k - 1].namespace["tau_theta"] = (lp.exc.tau_theta_ms if on else 1e30) * b2.ms

    def _set_stimulus(self, rates_hz: np.ndarray) -> None:
        """Input rates from now on: row k of ``rates_hz`` (Hz) during the k-th image slot."""
        import brian2 as b2

        self._stimulus = b2.TimedArray(rates_hz * b2.Hz, dt=self.params.encoding.duration_ms * b2.ms,
                                       name="stimulus")
        self.input.namespace["stimulus"] = self._stimulus
        self.input.t_start = self.net.t

    def _present(self, x: np.ndarray, max_rate_hz: float) -> list[np.ndarray]:
        """Show images ``x`` ``(m, 1024)`` back to back in one ``run()``; spike counts per layer."""
        import brian2 as b2

        p = self.params
        slot = p.encoding.duration_ms
        # Always chunk_images rows (the unused ones stay silent and are not
        # simulated): with cython every new TimedArray shape is new code to
        # compile, and retries and the last chunk would otherwise bring new shapes.
        rates = np.zeros((max(p.chunk_images, len(x)), N_INPUTS))
        rates[:len(x)] = x * max_rate_hz
        self._set_stimulus(rates)
        t0 = float(self.net.t / b2.ms)
        before = [m.num_spikes for m in self.monitors]
        run_brian2(self.net, len(x) * slot, p.codegen_target)
        counts = []
        for monitor, start, lp in zip(self.monitors, before, self.layers):
            t, i = _spikes_since(monitor, start, t0)
            image = np.minimum((t / slot).astype(int), len(x) - 1)
            c = np.zeros((len(x), lp.n_neurons), dtype=np.int64)
            np.add.at(c, (image, i), 1)
            counts.append(c)
        return counts

    def _chunk_seed(self, chunk: int, boost: int = 0) -> int:
        return self.seed * 1_000_003 + chunk * 101 + boost  # _seed_brian2 folds it

    def fit(
        self,
        intensities,
        *,
        layer: Literal[1, 2, "joint"] = 1,
        checkpoint: str | os.PathLike | None = None,
        checkpoint_every: int = 1,
        snapshots: Sequence[int] = (),
        progress: bool = True,
        on_chunk: Callable[["BrianSTDPNetwork", int], None] | None = None,
    ) -> dict:
        """Train on ``intensities`` ``(N, 32, 32)`` in [0, 1], in chunks, resumably.

        Parameters
        ----------
        layer : 1, 2 or "joint"
            Train layer 1 alone (layer 2 switched off), layer 2 alone on the
            spikes of a frozen layer 1, or both at once.
        checkpoint : path, optional
            An ``.npz`` file written every ``checkpoint_every`` chunks (weights,
            thresholds, position, the statistics, history and snapshots so
            far). If it exists, training resumes from it; it must come from
            the same parameters, seed, layer and images.
        snapshots : sequence of int
            Image counts at which to keep a copy of the trained layer's
            weights (layer 2 for "joint"): taken at the first chunk boundary
            at or after each count; 0 is the initial weights. Counts beyond
            the number of images are never reached. A resumed run has the
            snapshots its checkpoint holds; counts that fell before the
            checkpoint's position but were not asked for then are not taken.
        progress : bool
            A tqdm bar with images/s and mean rates per layer.
        on_chunk : callable, optional
            Called as ``on_chunk(net, position)`` after each chunk (and its
            checkpoint); raising :class:`TrainingInterrupted` stops training.

        Returns
        -------
        dict
            ``images``; ``trained_images``, ``wall_s`` and ``images_per_s`` of
            this call; ``total_wall_s`` over every call that trained on the
            same checkpoint; over the whole run: ``presentations`` (retries
            included), ``boosted`` and ``silent_after_boosts`` image counts,
            ``rate_hz`` (mean rate per active layer during training);
            ``history`` (one entry per chunk: ``images``, ``rate_hz`` of the
            chunk, ``theta_mv`` mean per layer, ``wall_s`` since the start);
            ``snapshots`` ({image count: weights}); ``resumed_from``.
        """
        from ...progress import tqdm

        where = "BrianSTDPNetwork.fit"
        x = _flat_images(intensities, "intensities", where)
        check.positive_int("checkpoint_every", checkpoint_every, where=where)
        n_layers = len(self.layers)
        if (isinstance(layer, (bool, float)) or layer not in (1, 2, "joint")
                or (layer in (2, "joint") and n_layers < 2)):
            raise ValueError(f"layer must be 1, 2 or 'joint' (2 and 'joint' need layer2), got {layer!r}.")
        if isinstance(snapshots, (str, bytes)) or not hasattr(snapshots, "__iter__"):
            raise TypeError(f"{where}: snapshots must be a sequence of image counts, got "
                            f"{type(snapshots).__name__} {snapshots!r}")
        for s in snapshots:
            if isinstance(s, (bool, float)) or not hasattr(s, "__index__") or s < 0:
                raise ValueError(f"snapshots must be image counts >= 0, got {list(snapshots)!r}.")
        wanted = sorted({int(s) for s in snapshots})
        check.instance("checkpoint", checkpoint, (str, os.PathLike), none=True, where=where)
        check.flag("progress", progress, where=where)
        if on_chunk is not None and not callable(on_chunk):
            raise TypeError(f"{where}: on_chunk must be None or a callable, got "
                            f"{type(on_chunk).__name__}")
        plastic = {1} if layer == 1 else {2} if layer == 2 else {1, 2}
        active = 1 if layer == 1 else 2
        watched = max(plastic)  # the layer whose silence triggers a boost
        fingerprint = self._fingerprint(x, layer)
        p, n = self.params, len(x)
        run = {"presentations": 0, "boosted": 0, "silent_after_boosts": 0,
               "spikes": [0.0] * n_layers, "neuron_seconds": [0.0] * n_layers,
               "wall_s": 0.0, "history": []}
        snaps: dict[int, np.ndarray] = {}
        position, resumed_from = 0, None
        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and ckpt.exists():
            position, run, snaps = self._load_checkpoint(ckpt, fingerprint)
            resumed_from = position
        self._configure(active, plastic)
        pending = [s for s in wanted if s >= position and s not in snaps]
        if pending and pending[0] == 0 and position == 0:
            snaps[0] = self.weights(watched)
            pending.pop(0)
        wall_before = run["wall_s"]
        start = time.perf_counter()
        bar = tqdm(total=n, initial=position, unit="img", desc=f"tier 1, layer {layer}",
                   disable=not progress)
        import brian2 as b2

        chunk = position // p.chunk_images
        while position < n:
            idx = np.arange(position, min(n, position + p.chunk_images))
            _seed_brian2(self._chunk_seed(chunk))
            counts = self._present(x[idx], p.encoding.max_rate_hz)
            run["presentations"] += len(idx)
            silent = counts[watched - 1].sum(axis=1) < p.min_spikes
            run["boosted"] += int(silent.sum())
            for boost in range(1, p.max_boosts + 1):
                if not silent.any():
                    break
                _seed_brian2(self._chunk_seed(chunk, boost))
                retry = self._present(x[idx[silent]], p.encoding.max_rate_hz + boost * p.boost_hz)
                run["presentations"] += int(silent.sum())
                for k in range(active):
                    counts[k][silent] = retry[k]
                silent = counts[watched - 1].sum(axis=1) < p.min_spikes
            run["silent_after_boosts"] += int(silent.sum())
            # the weights after the chunk's last image: what a checkpoint stores
            self.normalise(sorted(plastic))
            seconds = len(idx) * p.encoding.duration_ms / 1000.0
            for k in range(active):
                run["spikes"][k] += float(counts[k].sum())
                run["neuron_seconds"][k] += counts[k].shape[1] * seconds
            position = int(idx[-1]) + 1
            chunk += 1
            run["wall_s"] = wall_before + time.perf_counter() - start
            run["history"].append({
                "images": position,
                "rate_hz": [float(counts[k].sum() / (counts[k].shape[1] * seconds))
                            for k in range(active)],
                "theta_mv": [float(self.theta_mv(k + 1).mean()) for k in range(active)],
                "wall_s": run["wall_s"]})
            while pending and pending[0] <= position:
                snaps[position] = self.weights(watched)
                pending.pop(0)
            if ckpt is not None and (chunk % checkpoint_every == 0 or position == n):
                self._save_checkpoint(ckpt, fingerprint, position, run, snaps)
            elapsed = time.perf_counter() - start
            bar.update(len(idx))
            rates = np.array(run["spikes"][:active]) / np.maximum(run["neuron_seconds"][:active], 1e-12)
            bar.set_postfix({"img/s": f"{(position - (resumed_from or 0)) / elapsed:.2f}",
                             **{f"rate{k + 1} Hz": f"{r:.2f}" for k, r in enumerate(rates)}})
            if on_chunk is not None:
                on_chunk(self, position)
        bar.close()
        wall = time.perf_counter() - start
        trained = n - (resumed_from or 0)
        return {
            "images": n, "trained_images": trained, "presentations": run["presentations"],
            "boosted": run["boosted"], "silent_after_boosts": run["silent_after_boosts"],
            "wall_s": wall, "images_per_s": trained / wall if trained and wall > 0 else None,
            "total_wall_s": run["wall_s"],
            "rate_hz": (np.array(run["spikes"][:active])
                        / np.maximum(run["neuron_seconds"][:active], 1e-12)).tolist(),
            "history": run["history"], "snapshots": dict(sorted(snaps.items())),
            "resumed_from": resumed_from,
        }

    def fit_naive(self, intensities, *, progress: bool = False) -> dict:
        """The baseline most tutorials use: one ``run()`` per image, then 150 ms of rest.

        Every input and layer-1 spike is recorded, weights are normalised
        after every image, state decays during the rest instead of being
        reset. Trains layer 1. Use a fresh network: afterwards image slots no
        longer line up with the chunked loop's resets.
        """
        import brian2 as b2
        from ...progress import tqdm

        x = _flat_images(intensities, "intensities", "BrianSTDPNetwork.fit_naive")
        check.flag("progress", progress, where="BrianSTDPNetwork.fit_naive")
        p = self.params
        self._configure(1, {1})
        self._normalised_layers = []  # image slots do not line up with the clock here
        for r in self._resets[0]:
            r.active = False
        self._input_monitor.active = True
        _seed_brian2(self.seed)
        start = time.perf_counter()
        spikes_before = self.monitors[0].num_spikes
        for image in tqdm(x, disable=not progress, unit="img", desc="naive loop"):
            self._set_stimulus(image[None] * p.encoding.max_rate_hz)
            run_brian2(self.net, p.encoding.duration_ms, p.codegen_target)
            self._set_stimulus(np.zeros((1, N_INPUTS)))  # rest: no input
            run_brian2(self.net, self.REST_MS, p.codegen_target)
            self.normalise([1])
        wall = time.perf_counter() - start
        self._input_monitor.active = False
        spikes = self.monitors[0].num_spikes - spikes_before
        return {"images": len(x), "wall_s": wall, "images_per_s": len(x) / wall,
                "rate_hz": [spikes / (len(x) * self.layers[0].n_neurons
                                      * p.encoding.duration_ms / 1000.0)]}

    def spike_counts(self, intensities, *, progress: bool = False) -> list[np.ndarray]:
        """Spike counts ``(N, n_neurons)`` of every layer, with learning switched off.

        The features the R-STDP output layer and the linear readouts use.
        No boost: a silent image gives zero counts.
        """
        import brian2 as b2
        from ...progress import tqdm

        x = _flat_images(intensities, "intensities", "BrianSTDPNetwork.spike_counts")
        check.flag("progress", progress, where="BrianSTDPNetwork.spike_counts")
        p = self.params
        self._configure(len(self.layers), set())
        out = [np.zeros((len(x), lp.n_neurons), dtype=np.int64) for lp in self.layers]
        for chunk, first in enumerate(tqdm(range(0, len(x), p.chunk_images), disable=not progress,
                                           unit="chunk", desc="spike counts")):
            idx = np.arange(first, min(len(x), first + p.chunk_images))
            _seed_brian2(self._chunk_seed(10**6 + chunk))
            for k, c in enumerate(self._present(x[idx], p.encoding.max_rate_hz)):
                out[k][idx] = c
        return out

    # --- checkpoints ----------------------------------------------------
    def _fingerprint(self, x: np.ndarray, layer) -> str:
        return runs.cache_key(self.params, self.seed, layer, np.asarray(x, dtype=np.float32),
                              version=TRAIN_VERSION)

    def _save_checkpoint(self, path: Path, fingerprint: str, position: int, run: dict,
                         snaps: dict[int, np.ndarray]) -> None:
        import json

        runs.save_npz(path, fingerprint=fingerprint, position=position, run=json.dumps(run),
                      **{f"snapshot_{k}": w for k, w in snaps.items()}, **self.state_dict())

    def _load_checkpoint(self, path: Path, fingerprint: str) -> tuple[int, dict, dict]:
        import json

        data = runs.load_npz(path)
        missing = [k for k in ("fingerprint", "position") if k not in data]
        if missing:
            raise runs.CheckpointError(f"checkpoint {path} lacks {missing}: it is not a training "
                                       "checkpoint of this network; delete it to start afresh.")
        if str(data["fingerprint"]) != fingerprint:
            raise runs.CheckpointError(
                f"checkpoint {path} comes from other parameters, seed, layer or images; "
                "delete it to start afresh or pass another path.")
        if "run" not in data:
            raise runs.CheckpointError(f"checkpoint {path} was written by an older snnlib (no "
                                       "training history); delete it to start afresh.")
        try:
            _check_state(data, self.layers, "BrianSTDPNetwork.fit", name=str(path))
        except ValueError as err:
            raise runs.CheckpointError(f"checkpoint {path} is damaged ({err}); delete it to start "
                                       "afresh.") from None
        self.load_state_dict(data)
        snaps = {int(k.split("_", 1)[1]): v for k, v in data.items() if k.startswith("snapshot_")}
        return int(data["position"]), json.loads(str(data["run"])), snaps


def _joined_trains(parts: dict) -> dict:
    """Concatenate lists of ``image``, ``neuron`` and ``t_ms`` arrays (empty: int, int, float)."""
    return {key: np.concatenate(v) if v else np.zeros(0, dtype=float if key == "t_ms" else int)
            for key, v in parts.items()}


class FrozenReplicas:
    """The hidden layers with learning off, simulated for ``replicas`` images at once.

    Evaluation needs no plasticity, so ``replicas`` copies of the network
    (the same weights and thresholds, independent Poisson inputs) run side by
    side in one Brian2 network: copy ``r`` sees image ``r`` of each group of
    ``replicas`` images. A time step then does ``replicas`` times the work for
    the same fixed cost of Brian2's per-step code calls, which dominate at
    these sizes (``benchmarks/brian_stdp_speed.py`` measures the gain). The
    equations are those of :class:`BrianSTDPNetwork` with
    ``theta_plus = 0`` and ``tau_theta`` infinite; each image starts from
    the same reset state (the chunked trainer's ``RESET_NEURONS``).

    Parameters
    ----------
    params : BrianSTDPParams
    state : dict
        ``w1``, ``theta1`` (and ``w2``, ``theta2``), as from
        :meth:`BrianSTDPNetwork.state_dict`.
    replicas : int
        Images simulated at once.
    """

    def __init__(self, params: BrianSTDPParams, state: dict, *, replicas: int = 16) -> None:
        import brian2 as b2

        where = "FrozenReplicas"
        check.instance("params", params, BrianSTDPParams, where=where)
        check.positive_int("replicas", replicas, where=where)
        self.params, self.replicas = params, replicas
        self.layers = [params.layer1] + ([params.layer2] if params.layer2 is not None else [])
        _check_state(state, self.layers, where)
        check.fits_in_memory(
            f"replicas={replicas} copies of a network of {params.n_synapses():,} synapses",
            BYTES_PER_SYNAPSE * params.n_synapses(replicas)
            + 8 * params.chunk_images * replicas * N_INPUTS, where=where)
        R, ms = replicas, b2.ms
        dt, slot = params.encoding.dt_ms * ms, params.encoding.duration_ms * ms
        self.input = b2.NeuronGroup(
            R * N_INPUTS, "rates = stimulus(t - t_start, i) : Hz\nt_start : second (shared)",
            threshold="rand() < rates * dt", dt=dt, name="frozen_input",
            namespace={"stimulus": b2.TimedArray(np.zeros((1, R * N_INPUTS)) * b2.Hz, dt=slot)})
        objects, self.monitors = [self.input], []
        source, n_source = self.input, N_INPUTS
        for k, lp in enumerate(self.layers, start=1):
            frozen = replace(lp.exc, theta_plus_mv=0.0, tau_theta_ms=1e30)
            exc = build_lif_group(R * lp.n_neurons, frozen, name=f"frozen_exc{k}")
            exc.theta = np.tile(np.asarray(state[f"theta{k}"], dtype=np.float64), R) * b2.mV
            w = np.asarray(state[f"w{k}"], dtype=np.float64).reshape(n_source, lp.n_neurons)
            syn = b2.Synapses(source, exc, "w : 1", on_pre="g_exc_post += w", dt=dt,
                              name=f"frozen_w{k}")
            # block diagonal: copy r of the source drives copy r of the layer only
            pre, post = np.meshgrid(np.arange(n_source), np.arange(lp.n_neurons), indexing="ij")
            offsets = np.arange(R)[:, None]
            syn.connect(i=(pre.ravel() + offsets * n_source).ravel(),
                        j=(post.ravel() + offsets * lp.n_neurons).ravel())
            syn.w = np.tile(w.ravel(), R)
            objects += [exc, syn, exc.run_regularly(RESET_NEURONS, dt=slot, when="start")]
            if lp.lateral_inhibition:
                inh = build_lif_group(R * lp.n_neurons, lp.inh, name=f"frozen_inh{k}")
                ei = b2.Synapses(exc, inh, on_pre="g_exc_post += w_ei", dt=dt,
                                 namespace={"w_ei": lp.w_exc_inh}, name=f"frozen_ei{k}")
                ei.connect(j="i")
                a, b = np.meshgrid(np.arange(lp.n_neurons), np.arange(lp.n_neurons), indexing="ij")
                keep = a != b
                ie = b2.Synapses(inh, exc, on_pre="g_inh_post += w_ie", dt=dt,
                                 namespace={"w_ie": lp.w_inh_exc}, name=f"frozen_ie{k}")
                ie.connect(i=(a[keep] + offsets * lp.n_neurons).ravel(),
                           j=(b[keep] + offsets * lp.n_neurons).ravel())
                objects += [inh, ei, ie, inh.run_regularly(RESET_NEURONS, dt=slot, when="start")]
            monitor = b2.SpikeMonitor(exc, name=f"frozen_spikes{k}")
            objects.append(monitor)
            self.monitors.append(monitor)
            source, n_source = exc, lp.n_neurons
        self.net = b2.Network(*objects)

    def run(self, intensities, *, seed: int, progress: bool = False, boost: bool = True,
            desc: str = "spike counts", every_layer: bool = False) -> dict:
        """Spike counts of every layer for ``intensities`` ``(N, 32, 32)``, and the last layer's spikes.

        With ``boost`` (Diehl & Cook do it at test time too), an image for
        which the last layer fires fewer than ``min_spikes`` spikes is shown
        again with ``boost_hz`` more max rate, at most ``max_boosts`` times,
        as in training; its counts and spikes are those of its last showing.

        Returns
        -------
        dict
            ``counts``: one ``(N, n_neurons)`` int array per layer;
            ``trains``: the last layer's spikes as ``image``, ``neuron`` and
            ``t_ms`` (time within the image's presentation) arrays, sorted by
            image and time; ``boosted`` (images shown again) and
            ``silent_after_boosts`` (images still below ``min_spikes``);
            with ``every_layer``, also ``layer_trains``: every layer's
            spikes in the same form (memory grows with the spikes: meant for
            a few images).
        """
        from ...progress import tqdm

        where = "FrozenReplicas.run"
        x = _flat_images(intensities, "intensities", where)
        check.integer("seed", seed, low=0, where=where)
        for name, value in (("progress", progress), ("boost", boost), ("every_layer", every_layer)):
            check.flag(name, value, where=where)
        p = self.params
        bar = tqdm(total=len(x), unit="img", desc=desc, disable=not progress)
        counts, layer_trains = self._run_once(x, p.encoding.max_rate_hz, seed, bar, every_layer)
        bar.close()
        silent = np.flatnonzero(counts[-1].sum(axis=1) < p.min_spikes) if boost else np.zeros(0, int)
        boosted = len(silent)
        for k in range(1, p.max_boosts + 1):
            if not len(silent):
                break
            again, again_trains = self._run_once(x[silent], p.encoding.max_rate_hz + k * p.boost_hz,
                                                 seed * 31 + k, None, every_layer)
            for layer, c in enumerate(again):
                counts[layer][silent] = c
            for layer, (old, new) in enumerate(zip(layer_trains, again_trains)):
                if old is None:
                    continue
                keep = ~np.isin(old["image"], silent)
                layer_trains[layer] = {f: np.concatenate([old[f][keep],
                                                          silent[new[f]] if f == "image" else new[f]])
                                       for f in old}
            silent = silent[again[-1].sum(axis=1) < p.min_spikes]
        for layer, trains in enumerate(layer_trains):
            if trains is not None:
                order = np.lexsort((trains["t_ms"], trains["image"]))
                layer_trains[layer] = {f: v[order] for f, v in trains.items()}
        result = {"counts": counts, "trains": layer_trains[-1],
                  "boosted": int(boosted), "silent_after_boosts": int(len(silent))}
        if every_layer:
            result["layer_trains"] = layer_trains
        return result

    def _run_once(self, x: np.ndarray, max_rate_hz: float, seed: int, bar,
                  every_layer: bool = False) -> tuple[list, list]:
        """Counts of every layer, and the spikes of the last (or of every) layer (None: not kept)."""
        import brian2 as b2

        p, R = self.params, self.replicas
        slot = p.encoding.duration_ms
        per_run = R * p.chunk_images  # images per run(): chunk_images slots of R images
        counts = [np.zeros((len(x), lp.n_neurons), dtype=np.int64) for lp in self.layers]
        last = len(self.layers) - 1
        kept = [k for k in range(len(self.layers)) if every_layer or k == last]
        trains = {k: {"image": [], "neuron": [], "t_ms": []} for k in kept}
        for chunk, first in enumerate(range(0, len(x), per_run)):
            batch = x[first:first + per_run]
            n_slots = -(-len(batch) // R)
            rates = np.zeros((p.chunk_images, R * N_INPUTS))  # one shape: no recompilation
            padded = np.zeros((n_slots * R, N_INPUTS))
            padded[:len(batch)] = batch * max_rate_hz
            rates[:n_slots] = padded.reshape(n_slots, R * N_INPUTS)
            self.input.namespace["stimulus"] = b2.TimedArray(rates * b2.Hz, dt=slot * b2.ms)
            self.input.t_start = self.net.t
            t0 = float(self.net.t / b2.ms)
            before = [m.num_spikes for m in self.monitors]
            _seed_brian2(seed * 1_000_003 + chunk)
            run_brian2(self.net, n_slots * slot, p.codegen_target)
            for k, (monitor, start, lp) in enumerate(zip(self.monitors, before, self.layers)):
                t, i = _spikes_since(monitor, start, t0)
                slot_of = np.minimum((t / slot).astype(int), n_slots - 1)
                image = first + slot_of * R + i // lp.n_neurons
                neuron = i % lp.n_neurons
                ok = image < first + len(batch)  # padding replicas see a blank image
                np.add.at(counts[k], (image[ok], neuron[ok]), 1)
                if k in trains:
                    trains[k]["image"].append(image[ok])
                    trains[k]["neuron"].append(neuron[ok])
                    trains[k]["t_ms"].append(t[ok] - slot_of[ok] * slot)
            if bar is not None:
                bar.update(len(batch))
        layer_trains = [None] * len(self.layers)
        for k, tr in trains.items():
            layer_trains[k] = _joined_trains(tr)
        return counts, layer_trains

def field_smoothness(weights) -> np.ndarray:
    """How image-like each receptive field is: the correlation of neighbouring pixels' weights.

    For a field ``w`` ``(32, 32)`` with its mean removed, the mean of the
    Pearson correlations between ``w[y, x]`` and ``w[y, x + 1]`` and between
    ``w[y, x]`` and ``w[y + 1, x]``. Independent random weights give about 0
    (the initial fields); fields that look like parts of natural images
    (blobs, edges) give values near 1, because neighbouring pixels of natural
    images are strongly correlated. ``weights``: ``(n, 1024)``; returns ``(n,)``.
    """
    check.array("weights", weights, shape=(None, N_INPUTS), where="field_smoothness")
    w = np.asarray(weights, dtype=np.float64).reshape(-1, 32, 32)
    w = w - w.mean(axis=(1, 2), keepdims=True)

    def corr(a, b):
        a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
        b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
        den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
        return np.where(den > 0, (a * b).sum(1) / np.maximum(den, 1e-300), 0.0)

    return 0.5 * (corr(w[:, :, :-1], w[:, :, 1:]) + corr(w[:, :-1, :], w[:, 1:, :]))


def learned_fraction(weights, initial, *, threshold: float = 0.5) -> float:
    """Fraction of neurons whose field has moved away from its initial weights.

    A field counts as learned when the Pearson correlation between its
    weights and its initial weights has fallen below ``threshold``. Both
    arguments ``(n, d)``, row k the same neuron.
    """
    where = "learned_fraction"
    check.array("weights", weights, ndim=2, where=where)
    check.array("initial", initial, ndim=2, where=where)
    check.number("threshold", threshold, low=-1.0, high=1.0, where=where)
    w, w0 = np.asarray(weights, dtype=np.float64), np.asarray(initial, dtype=np.float64)
    if w.shape != w0.shape:
        raise ValueError(f"weights {w.shape} and initial {w0.shape} must have the same shape.")
    return float(np.mean([np.corrcoef(a, b)[0, 1] < threshold for a, b in zip(w, w0)]))


def field_similarity(weights) -> float:
    """Mean Pearson correlation between the receptive fields of different neurons.

    ``weights`` ``(n, d)``: 1 when every neuron learned the same field, about
    0 for independent random fields. Lateral inhibition should keep it low.
    """
    check.array("weights", weights, ndim=2, where="field_similarity")
    w = np.asarray(weights, dtype=np.float64)
    if len(w) < 2:
        raise ValueError(f"field_similarity needs at least two neurons; weights has shape "
                         f"{w.shape}.")
    varying = w.std(axis=1) > 0
    if varying.sum() < 2:
        raise ValueError("field_similarity: weights must hold at least two fields that are not "
                         f"constant (a constant field has no correlation), got {int(varying.sum())}")
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.corrcoef(w)
    return float(np.nanmean(c[~np.eye(len(w), dtype=bool)]))


def snapshot_schedule(n_images: int, chunk_images: int) -> list[int]:
    """Image counts at which training keeps the weights: 0, then doubling up to ``n_images``.

    ``[0, n/32, n/16, n/8, n/4, n/2, n]`` rounded to whole chunks (at least one).
    """
    check.positive_int("n_images", n_images, where="snapshot_schedule")
    check.positive_int("chunk_images", chunk_images, where="snapshot_schedule")
    counts = {0, n_images}
    for div in (32, 16, 8, 4, 2):
        counts.add(min(n_images, max(chunk_images, round(n_images / div / chunk_images) * chunk_images)))
    return sorted(counts)


def volley_fraction(trains: dict, n_images: int, n_neurons: int, *, window_ms: float = 5.0,
                    fraction: float = 0.9) -> float:
    """Fraction of images in which a layer fires as one volley.

    An image counts when, within some window of ``window_ms``, at least
    ``fraction`` of the layer's ``n_neurons`` neurons fire: lateral
    inhibition (one time step late) cannot separate neurons that cross
    threshold together, so such a layer says "an image" but not which.
    ``trains``: ``image``, ``neuron``, ``t_ms`` arrays (from
    :meth:`FrozenReplicas.run`), images ``0 .. n_images - 1``.
    """
    where = "volley_fraction"
    check.positive_int("n_images", n_images, where=where)
    check.positive_int("n_neurons", n_neurons, where=where)
    check.finite_number("window_ms", window_ms, above=0, where=where)
    check.number("fraction", fraction, low=0.0, low_open=True, high=1.0, where=where)
    trains = _trains_dict("trains", trains, where, n_images=n_images, n_neurons=n_neurons)
    image, neuron, t = (np.asarray(trains[k]) for k in ("image", "neuron", "t_ms"))
    order = np.lexsort((t, image))  # by image, then time
    image, neuron, t = image[order], neuron[order], t[order]
    bounds = np.searchsorted(image, np.arange(n_images + 1), side="left")
    need = max(1, int(np.ceil(fraction * n_neurons)))
    volleys = 0
    for k in range(n_images):
        a, b = bounds[k], bounds[k + 1]
        if b - a < need:
            continue
        tt, nn = t[a:b], neuron[a:b]
        stops = np.searchsorted(tt, tt + window_ms, side="left")
        if any(len(np.unique(nn[a:b])) >= need for a, b in zip(range(len(tt)), stops) if b - a >= need):
            volleys += 1
    return volleys / n_images if n_images else 0.0


def spike_statistics(counts: np.ndarray, duration_ms: float) -> dict:
    """Summary of one layer's spike counts ``(images, neurons)`` for ``duration_ms`` each.

    ``rate_hz``: mean rate over neurons and images; ``spikes_per_image``:
    mean layer spikes per image; ``silent_neurons``: fraction of neurons
    that never fired; ``silent_images``: fraction of images with no spike;
    ``active_per_image``: mean number of neurons that fired at least once;
    ``rate_hz_percentiles``: 5th, 50th, 95th percentiles of the per-neuron rates.
    """
    check.array("counts", counts, ndim=2, low=0.0, where="spike_statistics")
    check.finite_number("duration_ms", duration_ms, above=0, where="spike_statistics")
    counts = np.asarray(counts)
    per_neuron = counts.mean(axis=0) / (duration_ms / 1000.0)
    return {
        "rate_hz": float(per_neuron.mean()),
        "spikes_per_image": float(counts.sum(axis=1).mean()),
        "silent_neurons": float((counts.sum(axis=0) == 0).mean()),
        "silent_images": float((counts.sum(axis=1) == 0).mean()),
        "active_per_image": float((counts > 0).sum(axis=1).mean()),
        "rate_hz_percentiles": [float(v) for v in np.percentile(per_neuron, [5, 50, 95])],
    }


def initial_state(params: BrianSTDPParams, seed: int) -> dict:
    """The untrained network's state, as :class:`BrianSTDPNetwork` builds it (without Brian2).

    Weights uniform in ``[0, w_init_max]`` from ``numpy.random.default_rng(seed)``
    (layer 1 first), each neuron's then scaled to its layer's sum and clipped
    to the STDP bounds (:meth:`BrianSTDPNetwork.normalise`); thresholds 0.
    """
    check.instance("params", params, BrianSTDPParams, where="initial_state")
    check.integer("seed", seed, low=0, where="initial_state")
    rng = np.random.default_rng(seed)
    out, n_source = {}, N_INPUTS
    for k, lp in enumerate([params.layer1] + ([params.layer2] if params.layer2 else []), start=1):
        w = rng.uniform(0.0, lp.w_init_max, n_source * lp.n_neurons).reshape(n_source, lp.n_neurons)
        out[f"w{k}"] = _normalised(w, lp.weight_sum_per_input * n_source, lp.stdp).ravel()
        out[f"theta{k}"] = np.zeros(lp.n_neurons)
        n_source = lp.n_neurons
    return out


