"""Tier 1, hidden layers: a Brian2 network learning with STDP under lateral inhibition.

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
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from ..encoding import PoissonParams, _as_intensities
from ..neurons import LIFParams, build_lif_group, run_brian2
from . import git_commit
from ..plasticity import (RSTDPParams, STDPParams, apply_reward, build_rstdp_synapses,
                          build_stdp_synapses, normalize_weights)

__all__ = ["BrianSTDPNetwork", "BrianSTDPParams", "FrozenReplicas", "LayerParams", "OutputParams",
           "RSTDPReadout", "TrainingInterrupted", "decide", "initial_state", "readout_training_indices", "select_trains",
           "synaptic_events", "volley_fraction",
           "train_tier",
           "field_similarity", "field_smoothness", "learned_fraction", "params_for_profile", "snapshot_schedule", "spike_statistics",
           "train_hidden_layers", "image_spikes", "toy_spike_task"]

N_INPUTS = 32 * 32

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
        if not isinstance(self.n_neurons, int) or self.n_neurons < 1:
            raise ValueError(f"n_neurons must be a positive integer, got {self.n_neurons!r}.")
        for name in ("w_exc_inh", "w_inh_exc", "weight_sum_per_input", "w_init_max"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"LayerParams.{name} must be a finite number >= 0, got {value!r}.")
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
        for layer in (self.layer1, self.layer2):
            if layer is not None and layer.exc.dt_ms != self.encoding.dt_ms:
                raise ValueError(f"the layers' dt_ms={layer.exc.dt_ms} differs from the "
                                 f"encoding's dt_ms={self.encoding.dt_ms}.")
        for name in ("chunk_images", "min_spikes", "max_boosts"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (1 if name == "chunk_images" else 0):
                raise ValueError(f"{name} must be a non-negative integer (chunk_images >= 1), "
                                 f"got {value!r}.")
        if not np.isfinite(self.boost_hz) or self.boost_hz < 0:
            raise ValueError(f"boost_hz must be a finite number >= 0, got {self.boost_hz!r}.")
        if self.codegen_target not in ("cython", "numpy"):
            raise ValueError(f"codegen_target must be 'cython' or 'numpy', got {self.codegen_target!r}.")


# What a new image starts from, as after Diehl & Cook's 150 ms of rest: rest
# potential, no conductance, not refractory (the adaptive threshold stays).
RESET_NEURONS = "v = v_rest\ng_exc = 0\ng_inh = 0\nlastspike = -1e4 * second"


def _flat_images(intensities) -> np.ndarray:
    """``(N, 32, 32)`` intensities in [0, 1] as ``(N, 1024)``, or a clear ValueError."""
    if len(intensities) == 0:
        raise ValueError("no images given.")
    x = _as_intensities(intensities).numpy().reshape(len(intensities), -1)
    if x.shape[1] != N_INPUTS:
        raise ValueError(f"images must have {N_INPUTS} pixels (32 x 32 grayscale), got {x.shape[1]}.")
    return x


def _cache_key(header: bytes, arrays) -> str:
    """SHA-256 of ``header`` followed by the bytes of every array: what a cached result depends on."""
    import hashlib

    h = hashlib.sha256(header)
    for value in arrays:
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _cached(path: Path, key: str) -> dict | None:
    """The arrays of the ``.npz`` at ``path`` if its ``key`` matches; None if absent, unreadable or stale."""
    import zipfile

    try:
        with np.load(path) as saved:
            if str(saved["key"]) == key:
                return {k: saved[k] for k in saved.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass
    return None


def _savez_atomic(path: Path, **arrays) -> None:
    """``np.savez`` to a temporary file, then rename: a kill leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


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
        lp = self.layers[layer - 1]
        n_source = N_INPUTS if layer == 1 else self.layers[layer - 2].n_neurons
        return np.asarray(self.syn[layer - 1].w).reshape(n_source, lp.n_neurons).T.copy()

    def theta_mv(self, layer: int) -> np.ndarray:
        """Adaptive threshold increase of ``layer``'s excitatory neurons (mV)."""
        import brian2 as b2

        return np.asarray(self.exc[layer - 1].theta / b2.mV).copy()

    def normalise(self, layers) -> None:
        """Scale each neuron's input weights to sum to ``weight_sum_per_input x n_inputs``.

        Then clip to the STDP bounds: a weight scaled above ``w_max`` makes
        that neuron's sum fall short of the target.
        """
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
        return (self.seed * 1_000_003 + chunk * 101 + boost) % (2**32 - 1)

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
        from tqdm.auto import tqdm

        x = _flat_images(intensities)
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}.")
        n_layers = len(self.layers)
        if layer not in (1, 2, "joint") or (layer in (2, "joint") and n_layers < 2):
            raise ValueError(f"layer must be 1, 2 or 'joint' (2 and 'joint' need layer2), got {layer!r}.")
        wanted = sorted({int(s) for s in snapshots})
        if any(s < 0 for s in wanted):
            raise ValueError(f"snapshots must be image counts >= 0, got {list(snapshots)!r}.")
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
            b2.seed(self._chunk_seed(chunk))
            counts = self._present(x[idx], p.encoding.max_rate_hz)
            run["presentations"] += len(idx)
            silent = counts[watched - 1].sum(axis=1) < p.min_spikes
            run["boosted"] += int(silent.sum())
            for boost in range(1, p.max_boosts + 1):
                if not silent.any():
                    break
                b2.seed(self._chunk_seed(chunk, boost))
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
        from tqdm.auto import tqdm

        x = _flat_images(intensities)
        p = self.params
        self._configure(1, {1})
        self._normalised_layers = []  # image slots do not line up with the clock here
        for r in self._resets[0]:
            r.active = False
        self._input_monitor.active = True
        b2.seed(self.seed)
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
        from tqdm.auto import tqdm

        x = _flat_images(intensities)
        p = self.params
        self._configure(len(self.layers), set())
        out = [np.zeros((len(x), lp.n_neurons), dtype=np.int64) for lp in self.layers]
        for chunk, first in enumerate(tqdm(range(0, len(x), p.chunk_images), disable=not progress,
                                           unit="chunk", desc="spike counts")):
            idx = np.arange(first, min(len(x), first + p.chunk_images))
            b2.seed(self._chunk_seed(10**6 + chunk))
            for k, c in enumerate(self._present(x[idx], p.encoding.max_rate_hz)):
                out[k][idx] = c
        return out

    # --- checkpoints ----------------------------------------------------
    def _fingerprint(self, x: np.ndarray, layer) -> str:
        import hashlib

        h = hashlib.sha256()
        h.update(repr(asdict(self.params)).encode())
        h.update(f"{self.seed}|{layer}|{x.shape}".encode())
        h.update(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        return h.hexdigest()

    def _save_checkpoint(self, path: Path, fingerprint: str, position: int, run: dict,
                         snaps: dict[int, np.ndarray]) -> None:
        import json

        _savez_atomic(path, fingerprint=fingerprint, position=position, run=json.dumps(run),
                      **{f"snapshot_{k}": w for k, w in snaps.items()}, **self.state_dict())

    def _load_checkpoint(self, path: Path, fingerprint: str) -> tuple[int, dict, dict]:
        import json

        with np.load(path) as data:
            if str(data["fingerprint"]) != fingerprint:
                raise ValueError(
                    f"checkpoint {path} comes from other parameters, seed, layer or images; "
                    "delete it to start afresh or pass another path.")
            if "run" not in data.files:
                raise ValueError(f"checkpoint {path} was written by an older snnlib (no training "
                                 "history); delete it to start afresh.")
            self.load_state_dict({k: data[k] for k in data.files})
            snaps = {int(k.split("_", 1)[1]): data[k] for k in data.files
                     if k.startswith("snapshot_")}
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

        if not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas must be a positive integer, got {replicas!r}.")
        self.params, self.replicas = params, replicas
        self.layers = [params.layer1] + ([params.layer2] if params.layer2 is not None else [])
        missing = [f"{v}{k}" for k in range(1, len(self.layers) + 1) for v in ("w", "theta")
                   if f"{v}{k}" not in state]
        if missing:
            raise ValueError(f"state lacks {missing} for a network of {len(self.layers)} layers.")
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
            if w.size != n_source * lp.n_neurons:
                raise ValueError(f"w{k} has {w.size} weights; layer {k} needs {n_source * lp.n_neurons}.")
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
        from tqdm.auto import tqdm

        x = _flat_images(intensities)
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
            b2.seed((seed * 1_000_003 + chunk) % (2**32 - 1))
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

# --- the R-STDP output layer --------------------------------------------------

DC_OUT = replace(DC_EXC, theta_plus_mv=0.0)  # output neurons: no adaptive threshold


@dataclass(frozen=True)
class OutputParams:
    """The output layer: one population of neurons per class, learning by R-STDP.

    Attributes
    ----------
    n_classes, neurons_per_class : int
        ``n_classes x neurons_per_class`` output neurons; neuron ``k``
        belongs to class ``k // neurons_per_class``.
    exc : LIFParams
        The output neurons (Diehl & Cook's excitatory neuron, no adaptive
        threshold).
    rstdp : RSTDPParams
        Pairings (``a_plus``, ``a_minus``, trace time constants) fill the
        eligibility trace (decay ``tau_elig_ms``); a reward ``r`` turns it
        into ``eta * r * e``, clipped to ``[w_min, w_max]``.
    w_inh : float
        Lateral inhibition between classes: a spike of a class-c neuron
        raises ``g_inh`` of every neuron of the other classes by ``w_inh``
        (a direct shortcut for inhibitory interneurons).
    weight_sum_per_input : float
        After every reward each output neuron's input weights are rescaled
        to sum to this times the number of inputs (as in the hidden layers):
        reward moves weight between inputs, not the neuron's total drive.
    w_init_max : float
        Initial weights uniform in ``[0, w_init_max]`` (then normalised).
    reward, punishment : float
        ``r`` for a right decision (> 0) and for a wrong one (< 0); an image
        with no output spike gives no decision and ``r = 0``.
    balanced_reward : bool
        Mozafari et al. (2018): scale rewards by the running miss rate and
        punishments by the running hit rate (over ``balance_window``
        images). Off by default: near chance accuracy it makes punishments
        about ten times weaker than rewards, and in a first trial on
        book-size features one class then won most decisions.
    reward_decision_only : bool
        Deliver the reward only to the synapses onto the population that made
        the decision. In Mozafari et al. (2018) only the winner fires, so only
        its synapses are eligible; here inhibition is soft and several
        populations often fire in the same volley, and a global reward would
        credit them all alike.
    chunk_images : int
        Images per Brian2 ``run()``; checkpoints are written between chunks.
    """

    n_classes: int = 10
    neurons_per_class: int = 10
    exc: LIFParams = DC_OUT
    rstdp: RSTDPParams = RSTDPParams(
        stdp=STDPParams(a_plus=1.0, a_minus=1.0, tau_plus_ms=20.0, tau_minus_ms=20.0,
                        w_min=0.0, w_max=15.0, dt_ms=0.5),
        tau_elig_ms=200.0, eta=1.0)
    w_inh: float = 20.0
    weight_sum_per_input: float = 3.0
    w_init_max: float = 6.0
    reward: float = 1.0
    punishment: float = -1.0
    balanced_reward: bool = False
    balance_window: int = 200
    reward_decision_only: bool = True
    chunk_images: int = 50

    def __post_init__(self) -> None:
        for name in ("n_classes", "neurons_per_class", "balance_window", "chunk_images"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"OutputParams.{name} must be a positive integer, got {value!r}.")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be at least 2, got {self.n_classes}.")
        for name in ("w_inh", "weight_sum_per_input", "w_init_max"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"OutputParams.{name} must be a finite number >= 0, got {value!r}.")
        if not (np.isfinite(self.reward) and self.reward > 0):
            raise ValueError(f"reward must be a positive number, got {self.reward!r}.")
        if not (np.isfinite(self.punishment) and self.punishment <= 0):
            raise ValueError(f"punishment must be a number <= 0, got {self.punishment!r}.")
        s = self.rstdp.stdp
        if not s.w_min <= self.weight_sum_per_input <= s.w_max:
            raise ValueError(f"weight_sum_per_input={self.weight_sum_per_input} must lie within "
                             f"the R-STDP bounds [{s.w_min}, {s.w_max}].")
        if s.dt_ms != self.exc.dt_ms:
            raise ValueError(f"exc.dt_ms={self.exc.dt_ms} and rstdp.stdp.dt_ms={s.dt_ms} differ.")

    @property
    def n_neurons(self) -> int:
        return self.n_classes * self.neurons_per_class


def decide(class_counts: np.ndarray, first_spike_ms: np.ndarray, *, rng=None) -> np.ndarray:
    """The network's decision per image: the class population that fired most.

    Ties go to the tied class that fired first; classes tied on both (their
    first spikes in the same time step, common when one input volley makes
    several populations fire at once) are drawn at random with ``rng`` (a
    ``numpy.random.Generator``; without one, the lowest class wins, which
    biases learning towards class 0). An image with no output spike gets -1
    (no decision). ``class_counts`` ``(N, classes)``; ``first_spike_ms``
    ``(N, classes)``, ``inf`` for a silent class.
    """
    counts = np.asarray(class_counts, dtype=np.float64)
    first = np.asarray(first_spike_ms, dtype=np.float64)
    top = counts == counts.max(axis=1, keepdims=True)
    first_top = np.where(top, first, np.inf)
    tied = first_top == first_top.min(axis=1, keepdims=True)
    if rng is None:
        decision = tied.argmax(axis=1)
    else:
        decision = np.array([rng.choice(np.flatnonzero(row)) for row in tied])
    return np.where(counts.sum(axis=1) > 0, decision, -1)


def select_trains(trains: dict, images: np.ndarray) -> dict:
    """The spikes of ``images`` (indices into ``trains``' image numbering), renumbered 0..len-1."""
    images = np.asarray(images)
    starts = np.searchsorted(trains["image"], images, side="left")
    stops = np.searchsorted(trains["image"], images, side="right")
    take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops)]) if len(images) else \
        np.zeros(0, dtype=int)
    new = np.repeat(np.arange(len(images)), stops - starts)
    return {"image": new, "neuron": trains["neuron"][take], "t_ms": trains["t_ms"][take]}


class RSTDPReadout:
    """Tier 1's output layer in Brian2: class populations learning by reward-modulated STDP.

    Its input is hidden layer 2's spikes, replayed image by image from
    :meth:`FrozenReplicas.run` (the hidden layers are frozen while the
    output learns, so their spikes for an image do not depend on the
    output layer; replaying them is the same network, simulated once).
    Each image is shown for ``duration_ms``; at its end the decision
    (:func:`decide`) is judged and a reward (+) or punishment (-) is
    delivered to every synapse through its eligibility trace
    (:func:`snnlib.plasticity.apply_reward`); then the weights are
    normalised per neuron, and the membranes, conductances and traces reset
    for the next image.

    Deterministic: the input spikes are given, so the same seed (initial
    weights), spikes and order give the same weights.
    """

    def __init__(self, params: OutputParams, *, n_inputs: int, duration_ms: float, seed: int,
                 codegen_target: Literal["cython", "numpy"] = "cython") -> None:
        import brian2 as b2

        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive integer, got {n_inputs!r}.")
        self.params, self.n_inputs, self.seed = params, n_inputs, int(seed)
        self.codegen_target = codegen_target
        self.duration_ms = float(duration_ms)
        p, ms = params, b2.ms
        dt, slot = p.exc.dt_ms * ms, self.duration_ms * ms
        self.input = b2.SpikeGeneratorGroup(n_inputs, np.zeros(0, dtype=int), np.zeros(0) * ms,
                                            dt=dt, name="out_input")
        self.out = build_lif_group(p.n_neurons, p.exc, name="out_exc")
        self.syn = build_rstdp_synapses(self.input, self.out, p.rstdp, on_pre="g_exc_post += w",
                                        name="out_w")
        self.syn.connect()
        rng = np.random.default_rng(self.seed)
        self.syn.w = rng.uniform(0.0, p.w_init_max, n_inputs * p.n_neurons)
        inh = b2.Synapses(self.out, self.out, on_pre="g_inh_post += w_inh", dt=dt, name="out_inh",
                          namespace={"w_inh": p.w_inh})
        inh.connect(condition=f"i // {p.neurons_per_class} != j // {p.neurons_per_class}")
        self.monitor = b2.SpikeMonitor(self.out, name="out_spikes")
        reset = self.out.run_regularly(RESET_NEURONS, dt=slot, when="start", name="out_reset")
        self._learning = False
        self._pending: int | None = None  # image of the slot that just ended, awaiting its reward
        self._labels: np.ndarray = np.zeros(0, dtype=int)
        self._ids: np.ndarray = np.zeros(0, dtype=int)
        self._seen = 0
        self._hits: list[int] = []
        self.decisions: dict[int, int] = {}

        self._next = 0

        @b2.network_operation(dt=slot, when="start", name="out_reward")
        def reward_each_image():
            self._advance()

        self.net = b2.Network(self.input, self.out, self.syn, inh, self.monitor, reset,
                              reward_each_image)
        self.normalise()

    # --- state -----------------------------------------------------------
    def weights(self) -> np.ndarray:
        """``(n_output_neurons, n_inputs)`` (post x pre)."""
        return np.asarray(self.syn.w).reshape(self.n_inputs, self.params.n_neurons).T.copy()

    def normalise(self) -> None:
        p = self.params
        w = np.asarray(self.syn.w).reshape(self.n_inputs, p.n_neurons)
        self.syn.w = _normalised(w, p.weight_sum_per_input * self.n_inputs, p.rstdp.stdp).ravel()

    def _class_spikes(self, start: int, t0_ms: float, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-slot class counts and first-spike times of the monitor's spikes from ``start`` on."""
        p = self.params
        t, i = _spikes_since(self.monitor, start, t0_ms)
        cls = i // p.neurons_per_class
        slot = np.minimum((t / self.duration_ms).astype(int), n_slots - 1)
        counts = np.zeros((n_slots, p.n_classes), dtype=np.int64)
        np.add.at(counts, (slot, cls), 1)
        first = np.full((n_slots, p.n_classes), np.inf)
        np.minimum.at(first, (slot, cls), t - slot * self.duration_ms)
        return counts, first

    def _close_slot(self) -> None:
        """Judge the image whose slot just ended, deliver its reward, reset the traces."""
        import brian2 as b2

        if self._pending is None:
            return
        p = self.params
        t_now = float(self.net.t / b2.ms)
        counts, first = self._class_spikes(self._seen, t_now - self.duration_ms, 1)
        self._seen = self.monitor.num_spikes
        image = int(self._pending)
        rng = np.random.default_rng([self.seed, int(self._ids[image])])
        decision = int(decide(counts, first, rng=rng)[0])
        label = int(self._labels[image])
        self.decisions[image] = decision
        if self._learning:
            if decision >= 0:
                hit = decision == label
                r = p.reward if hit else p.punishment
                if p.balanced_reward and self._hits:
                    rate = float(np.mean(self._hits[-p.balance_window:]))
                    r *= (1.0 - rate) if hit else rate
                where = None
                if p.reward_decision_only:
                    where = np.tile(np.arange(p.n_neurons) // p.neurons_per_class == decision,
                                    self.n_inputs)  # synapse k: pre k // n_out, post k % n_out
                apply_reward(self.syn, r, p.rstdp, where=where)
                self.normalise()
            self._hits.append(int(decision == label))
            self.syn.elig = 0
            self.syn.pre_trace = 0
            self.syn.post_trace = 0
        self._pending = None

    # --- simulation ------------------------------------------------------
    def _advance(self) -> None:
        """At the start of an image slot: judge the previous image, then open the next."""
        self._close_slot()
        if self._next < len(self._labels):
            self._pending = self._next
            self._next += 1

    def _present(self, trains: dict, images: np.ndarray, labels: np.ndarray,
                 ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """Show ``images`` (indices into ``trains``) back to back in one ``run()``.

        Learning (if on) happens at the end of each image, inside the run.
        ``ids`` number the presentations (they seed the tie-breaks).
        Returns the decisions, the output neurons' spike counts and their
        spikes (``image``: position in ``images``, ``neuron``, ``t_ms``).
        """
        import brian2 as b2

        dt = self.params.exc.dt_ms
        sel = select_trains(trains, images)
        t0 = float(self.net.t / b2.ms)
        # on the time-step grid, one spike per neuron and step (as recorded)
        steps = np.round((t0 + sel["image"] * self.duration_ms + sel["t_ms"]) / dt).astype(np.int64)
        self.input.set_spikes(sel["neuron"], steps * dt * b2.ms)
        self._labels, self._ids = np.asarray(labels), np.asarray(ids)
        self.decisions = {}
        self._seen = start = self.monitor.num_spikes
        self._pending, self._next = None, 0
        run_brian2(self.net, len(images) * self.duration_ms, self.codegen_target)
        self._close_slot()  # the last image's slot ended with the run
        t, i = _spikes_since(self.monitor, start, t0)
        slot = np.minimum((t / self.duration_ms).astype(int), len(images) - 1)
        counts = np.zeros((len(images), self.params.n_neurons), dtype=np.int64)
        np.add.at(counts, (slot, i), 1)
        trains = {"image": slot, "neuron": i, "t_ms": t - slot * self.duration_ms}
        return np.array([self.decisions[k] for k in range(len(images))]), counts, trains

    def _fingerprint(self, trains: dict, labels: np.ndarray, epochs: int) -> str:
        import hashlib

        h = hashlib.sha256()
        h.update(repr((asdict(self.params), self.n_inputs, self.duration_ms, self.seed, epochs)).encode())
        for key in ("image", "neuron", "t_ms"):
            h.update(np.ascontiguousarray(trains[key], dtype=np.float64).tobytes())
        h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
        return h.hexdigest()

    def fit(self, trains: dict, labels, *, epochs: int = 1,
            checkpoint: str | os.PathLike | None = None, progress: bool = True,
            on_chunk: Callable[["RSTDPReadout", int], None] | None = None) -> dict:
        """Learn from rewards: show every training image ``epochs`` times, shuffled each epoch.

        Parameters
        ----------
        trains : dict
            Hidden layer 2's spikes (``image``, ``neuron``, ``t_ms``), from
            :meth:`FrozenReplicas.run`; images numbered like ``labels``.
        labels : array of int
            The class of each image (the reward needs it, nothing else does).
        checkpoint : path, optional
            Written after every chunk (weights, position, running hits,
            history); an existing one is resumed from (same parameters,
            seed, spikes, labels and epochs, or a clear error).
        on_chunk : callable, optional
            ``on_chunk(readout, position)`` after each chunk; raising
            :class:`TrainingInterrupted` stops training.

        Returns
        -------
        dict
            ``images`` (presentations), ``wall_s``, ``total_wall_s``,
            ``images_per_s``, ``history`` (per chunk: ``images`` shown so
            far, ``accuracy`` and ``no_decision`` fractions of the chunk,
            ``running_accuracy`` over the last ``balance_window`` images),
            ``resumed_from``.
        """
        import json

        from tqdm.auto import tqdm

        labels = np.asarray(labels, dtype=np.int64)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError("labels must be a non-empty 1-d array.")
        if labels.min() < 0 or labels.max() >= self.params.n_classes:
            raise ValueError(f"labels must lie in [0, {self.params.n_classes - 1}].")
        n = len(labels)
        if len(trains["image"]) and trains["image"].max() >= n:
            raise ValueError(f"trains hold spikes of image {int(trains['image'].max())}, "
                             f"but only {n} labels were given.")
        order = np.concatenate([np.random.default_rng([self.seed, e]).permutation(n)
                                for e in range(epochs)])
        fingerprint = self._fingerprint(trains, labels, epochs)
        run = {"hits": [], "history": [], "wall_s": 0.0}
        position, resumed_from = 0, None
        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and ckpt.exists():
            with np.load(ckpt) as saved:
                if str(saved["fingerprint"]) != fingerprint:
                    raise ValueError(f"checkpoint {ckpt} comes from other parameters, seed, spikes, "
                                     "labels or epochs; delete it to start afresh or pass another path.")
                self.syn.w = saved["w"]
                position = resumed_from = int(saved["position"])
                run = json.loads(str(saved["run"]))
        self._hits = list(run["hits"])
        self._learning = True
        total = len(order)
        wall_before, start = run["wall_s"], time.perf_counter()
        bar = tqdm(total=total, initial=position, unit="img", desc="tier 1, R-STDP output",
                   disable=not progress)
        p = self.params
        try:
            while position < total:
                idx = order[position:position + p.chunk_images]
                decisions, _, _ = self._present(trains, idx, labels[idx],
                                             np.arange(position, position + len(idx)))
                position += len(idx)
                run["hits"] = self._hits
                run["wall_s"] = wall_before + time.perf_counter() - start
                run["history"].append({
                    "images": position,
                    "accuracy": float(np.mean(decisions == labels[idx])),
                    "no_decision": float(np.mean(decisions < 0)),
                    "running_accuracy": float(np.mean(self._hits[-p.balance_window:])),
                    "wall_s": run["wall_s"]})
                if ckpt is not None:
                    _savez_atomic(ckpt, fingerprint=fingerprint, position=position,
                                  run=json.dumps(run), w=np.asarray(self.syn.w))
                bar.update(len(idx))
                bar.set_postfix({"running acc": f"{run['history'][-1]['running_accuracy']:.3f}"})
                if on_chunk is not None:
                    on_chunk(self, position)
        finally:
            self._learning = False
            bar.close()
        wall = time.perf_counter() - start
        trained = total - (resumed_from or 0)
        return {"images": total, "epochs": epochs, "trained_images": trained, "wall_s": wall,
                "total_wall_s": run["wall_s"],
                "images_per_s": trained / wall if trained and wall > 0 else None,
                "history": run["history"], "resumed_from": resumed_from}

    def predict(self, trains: dict, n_images: int, *, progress: bool = False) -> dict:
        """Decisions for images ``0 .. n_images - 1`` of ``trains``, learning off.

        Returns ``decision`` ``(N,)`` (-1: no output spike), ``counts``
        ``(N, n_output_neurons)`` and ``trains``, the output neurons' spikes
        (``image``, ``neuron``, ``t_ms`` within the image).
        """
        from tqdm.auto import tqdm

        self._learning = False
        p = self.params
        decisions = np.zeros(n_images, dtype=np.int64)
        counts = np.zeros((n_images, p.n_neurons), dtype=np.int64)
        out = {"image": [], "neuron": [], "t_ms": []}
        for first in tqdm(range(0, n_images, p.chunk_images), disable=not progress, unit="chunk",
                          desc="R-STDP output, test"):
            idx = np.arange(first, min(n_images, first + p.chunk_images))
            decisions[idx], counts[idx], tr = self._present(
                trains, idx, np.zeros(len(idx), dtype=np.int64), 10**9 + idx)
            out["image"].append(idx[tr["image"]])
            out["neuron"].append(np.asarray(tr["neuron"]))
            out["t_ms"].append(np.asarray(tr["t_ms"]))
        out = _joined_trains(out)
        return {"decision": decisions, "counts": counts, "trains": out}


def toy_spike_task(n_images: int, *, seed: int, n_classes: int = 4, inputs_per_class: int = 5,
                   duration_ms: float = 100.0, rate_hz: float = 100.0, background_hz: float = 5.0,
                   dt_ms: float = 0.5) -> tuple[dict, np.ndarray]:
    """A task that reward alone can teach: each class drives its own group of inputs.

    Image ``k`` of class ``c`` (drawn uniformly) is ``n_classes x
    inputs_per_class`` Poisson inputs for ``duration_ms``: inputs
    ``c * inputs_per_class`` to ``(c + 1) * inputs_per_class - 1`` fire at
    ``rate_hz``, the others at ``background_hz``. Poisson in the Bernoulli
    approximation: a spike in each step of ``dt_ms`` with probability
    ``rate_hz * dt_ms / 1000`` (refused above 1).

    Returns
    -------
    (dict, ndarray)
        Spikes (``image``, ``neuron``, ``t_ms``, as :meth:`FrozenReplicas.run`
        gives them) and the labels.
    """
    for name, value in (("n_images", n_images), ("n_classes", n_classes),
                        ("inputs_per_class", inputs_per_class)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    for name, value in (("rate_hz", rate_hz), ("background_hz", background_hz)):
        if not (np.isfinite(value) and 0 <= value * dt_ms / 1000.0 <= 1):
            raise ValueError(f"{name}={value!r} must be >= 0 with {name} x dt_ms / 1000 <= 1 "
                             f"(dt_ms={dt_ms}).")
    if not (np.isfinite(duration_ms) and duration_ms >= dt_ms > 0):
        raise ValueError(f"duration_ms={duration_ms!r} and dt_ms={dt_ms!r} must satisfy "
                         "duration_ms >= dt_ms > 0.")
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_images)
    n_inputs, steps = n_classes * inputs_per_class, int(round(duration_ms / dt_ms))
    image, neuron, t = [], [], []
    for k, c in enumerate(labels):
        rates = np.full(n_inputs, background_hz)
        rates[c * inputs_per_class:(c + 1) * inputs_per_class] = rate_hz
        step, j = np.nonzero(rng.random((steps, n_inputs)) < rates * dt_ms * 1e-3)
        image.append(np.full(len(step), k))
        neuron.append(j)
        t.append(step * dt_ms)
    return {"image": np.concatenate(image), "neuron": np.concatenate(neuron),
            "t_ms": np.concatenate(t)}, labels


def _neuron_times(trains: dict) -> dict:
    """The ``neuron`` and ``t_ms`` arrays of one image's spikes."""
    return {"neuron": np.asarray(trains["neuron"]), "t_ms": np.asarray(trains["t_ms"])}


def image_spikes(frozen: FrozenReplicas, readout: RSTDPReadout, image, *, seed: int) -> dict:
    """One image through the whole tier, learning off: every layer's spikes and the decision.

    A new presentation (new Poisson input spikes from ``seed``, the test-time
    boost if layer 2 stays silent) through the hidden layers of ``frozen``
    (build it with ``replicas=1``), whose layer-2 spikes then drive the
    trained ``readout``. The decision can differ from the one recorded for
    the same image in a test run, which saw other input spikes.

    Returns
    -------
    dict
        ``hidden``: per hidden layer, spikes (``neuron``, ``t_ms``);
        ``output``: the output neurons' spikes; ``decision`` (class, or -1
        for no output spike); ``class_counts`` (spikes per class population).
    """
    x = np.asarray(image, dtype=np.float64)
    if x.shape != (32, 32):
        raise ValueError(f"image must be one 32 x 32 grayscale image, got shape {x.shape}.")
    if frozen.replicas != 1:
        raise ValueError(f"frozen has {frozen.replicas} replicas; build it with replicas=1 for one "
                         "image (the others would simulate blank images for nothing).")
    if readout.n_inputs != frozen.layers[-1].n_neurons:
        raise ValueError(f"the readout has {readout.n_inputs} inputs but the last hidden layer "
                         f"{frozen.layers[-1].n_neurons} neurons.")
    if readout.duration_ms != frozen.params.encoding.duration_ms:
        raise ValueError(f"the readout shows an image for {readout.duration_ms} ms, the hidden "
                         f"layers for {frozen.params.encoding.duration_ms} ms.")
    run = frozen.run(x[None], seed=seed, every_layer=True)
    pred = readout.predict(run["trains"], 1)
    p = readout.params
    return {"hidden": [_neuron_times(tr) for tr in run["layer_trains"]],
            "output": _neuron_times(pred["trains"]),
            "decision": int(pred["decision"][0]),
            "class_counts": pred["counts"][0].reshape(p.n_classes, p.neurons_per_class).sum(axis=1)}


def params_for_profile(profile) -> BrianSTDPParams:
    """The tier-1 network at a profile's size: layer 1 of ``profile.tier1_neurons``, layer 2 of half.

    Retuned from Diehl & Cook's MNIST constants for CIFAR-10's dense input
    (``benchmarks/brian_stdp_tuning.py`` compares the variants):

    - layer 1's normalisation sum per input is 0.05 instead of 0.1: the mean
      grayscale intensity is about 3.5 times MNIST's, so with 0.1 the layer
      fires for every image;
    - the adaptive threshold decays with ``tau_theta`` = 1e5 ms (100 s of
      model time, about 285 images) instead of 1e7 ms, so that theta settles
      where a neuron fires at a sustainable rate instead of growing through
      the whole run (with 1e7 ms a long run drives every threshold up
      until the layer needs boosts); more neurons answer each test image;
    - STDP keeps Diehl & Cook's hard bounds: soft bounds gave fields as
      smooth but more alike (measured with per-image normalisation);
    - layer 2 has the same neurons and rule; it receives only layer 1's spikes, so its sum per input is
      far larger (LAYER2_SUM, with ``w_max`` raised to match). At the book
      size (100 + 50 neurons, 400 images) about a fifth of the training
      images still need a boost before layer 2 fires: layer 2 may need
      more tuning.

    The ``ci`` profile uses Brian2's numpy code generation (no compilation).
    """
    n1 = profile.tier1_neurons
    exc = replace(DC_EXC, tau_theta_ms=1.0e5)
    stdp = DC_STDP
    layer1 = LayerParams(n_neurons=n1, exc=exc, stdp=stdp, weight_sum_per_input=0.05)
    layer2 = LayerParams(n_neurons=max(1, n1 // 2), exc=exc, weight_sum_per_input=LAYER2_SUM,
                         stdp=replace(stdp, w_max=LAYER2_W_MAX))
    return BrianSTDPParams(layer1=layer1, layer2=layer2,
                           # at ci size compiling would take longer than simulating
                           codegen_target="numpy" if profile.name == "ci" else "cython")


def field_smoothness(weights) -> np.ndarray:
    """How image-like each receptive field is: the correlation of neighbouring pixels' weights.

    For a field ``w`` ``(32, 32)`` with its mean removed, the mean of the
    Pearson correlations between ``w[y, x]`` and ``w[y, x + 1]`` and between
    ``w[y, x]`` and ``w[y + 1, x]``. Independent random weights give about 0
    (the initial fields); fields that look like parts of natural images
    (blobs, edges) give values near 1, because neighbouring pixels of natural
    images are strongly correlated. ``weights``: ``(n, 1024)``; returns ``(n,)``.
    """
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
    w, w0 = np.asarray(weights, dtype=np.float64), np.asarray(initial, dtype=np.float64)
    if w.shape != w0.shape:
        raise ValueError(f"weights {w.shape} and initial {w0.shape} must have the same shape.")
    return float(np.mean([np.corrcoef(a, b)[0, 1] < threshold for a, b in zip(w, w0)]))


def field_similarity(weights) -> float:
    """Mean Pearson correlation between the receptive fields of different neurons.

    ``weights`` ``(n, d)``: 1 when every neuron learned the same field, about
    0 for independent random fields. Lateral inhibition should keep it low.
    """
    w = np.asarray(weights, dtype=np.float64)
    if len(w) < 2:
        raise ValueError("field_similarity needs at least two neurons.")
    c = np.corrcoef(w)
    return float(np.nanmean(c[~np.eye(len(w), dtype=bool)]))


def snapshot_schedule(n_images: int, chunk_images: int) -> list[int]:
    """Image counts at which training keeps the weights: 0, then doubling up to ``n_images``.

    ``[0, n/32, n/16, n/8, n/4, n/2, n]`` rounded to whole chunks (at least one).
    """
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


def train_hidden_layers(profile, *, out_dir: str | os.PathLike, seed: int = 2026,
                        params: BrianSTDPParams | None = None, layers: Sequence[int] = (1, 2),
                        n_images: int | None = None, n_eval_images: int | None = None,
                        progress: bool = True):
    """Train tier 1's hidden layers at a profile's size; resumable; write the model and a record.

    Layer 1 on ``n_images`` (default ``profile.tier1_train_images``;
    rounded down to a multiple of 10, at least 10: class-balanced) training images,
    then (if 2 is in ``layers``) layer 2 with layer 1 frozen, on the first
    ``profile.tier1_layer2_train_images`` of the same images (all if None;
    classes are interleaved, so they are close to balanced); then spike counts of every layer, learning off, for
    ``n_eval_images`` class-balanced test images (default: 10 x the
    profile's test images per class, at most 1000).

    With ``layers=(1,)`` the network has no layer 2, which is part of the
    checkpoints' fingerprint: use another ``out_dir`` than for ``(1, 2)``.

    Writes, in ``out_dir``: ``layer1.npz`` and ``layer2.npz`` (checkpoints,
    with the training history and layer-1 weight snapshots from
    :func:`snapshot_schedule`: calling again with the same arguments resumes
    from them, or just loads a finished run), ``model.npz`` (weights and
    thresholds), ``eval_counts.npz`` (the test spike counts and labels) and
    ``record.json`` (sizes, timings, images/s, training rates, spike statistics).

    Returns
    -------
    (BrianSTDPNetwork, dict)
        The trained network and the record, which also holds the phases'
        ``history`` and ``snapshots`` and the ``eval`` counts (not in the JSON).
    """
    import json
    import platform
    from datetime import datetime, timezone

    from .. import data

    commit = git_commit()  # at the start: the code this call runs
    layers = tuple(layers)
    if layers not in ((1,), (1, 2)):
        raise ValueError(f"layers must be (1,) or (1, 2), got {layers!r}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = data.load_cifar10("train")
    n_images = profile.tier1_train_images if n_images is None else n_images
    if not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}.")
    idx, _ = readout_training_indices(train.labels, n_images, 1, seed)
    x = data.to_grayscale(train.images[idx])
    params = params if params is not None else params_for_profile(profile)
    if 2 in layers and params.layer2 is None:
        raise ValueError("layers=(1, 2) but params.layer2 is None.")
    if layers == (1,):
        params = replace(params, layer2=None)
    net = BrianSTDPNetwork(params, seed=seed)
    # layer 2: the profile's number, or all of layer 1's images when there are fewer
    n2 = min(profile.tier1_layer2_train_images or len(x), len(x))
    phases = {}
    for layer in layers:
        xl = x if layer == 1 else x[:n2]  # layer 2: the first n2 of layer 1's (classes interleaved)
        phases[f"layer{layer}"] = net.fit(
            xl, layer=layer, checkpoint=out / f"layer{layer}.npz", progress=progress,
            snapshots=snapshot_schedule(len(xl), params.chunk_images) if layer == 1 else ())
    _savez_atomic(out / "model.npz", **net.state_dict())

    test = data.load_cifar10("test")
    if n_eval_images is None:
        n_eval_images = min(1000, 10 * (profile.n_test_per_class or 1000))
    eval_idx = data.balanced_subset(test.labels, max(1, n_eval_images // 10), seed=seed)
    eval_path = out / "eval_counts.npz"
    eval_x = data.to_grayscale(test.images[eval_idx])
    # the trained weights and thresholds, and the test images: the counts depend on nothing else
    key = _cache_key(b"", (*net.state_dict().values(), eval_x, eval_idx))
    saved = _cached(eval_path, key)
    counts = None if saved is None else [saved[f"counts{k}"] for k in range(1, len(net.layers) + 1)]
    if counts is None:
        counts = net.spike_counts(eval_x, progress=progress)
        _savez_atomic(eval_path, key=key, labels=test.labels[eval_idx], index=eval_idx,
                      **{f"counts{k}": c for k, c in enumerate(counts, start=1)})
    duration = params.encoding.duration_ms
    record = {
        "tier": "brian_stdp (hidden layers)",
        "profile": profile.name,
        "seed": seed,
        "dataset": data.dataset_name(train.source),
        "train_images": len(x),
        "layer2_train_images": n2 if 2 in layers else 0,
        "eval_images": len(eval_idx),
        "parameters": asdict(params),
        "phases": {name: {k: v for k, v in ph.items() if k != "snapshots"}
                   for name, ph in phases.items()},
        "theta_mv_mean": [float(net.theta_mv(k).mean()) for k in range(1, len(net.layers) + 1)],
        "test_spikes": {f"layer{k}": spike_statistics(c, duration)
                        for k, c in enumerate(counts, start=1)},
        "git_commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "gpu": False, "platform": platform.platform()},
    }
    (out / "record.json").write_text(json.dumps(record, indent=2, default=str))
    record = {**record, "phases": phases,
              "eval": {"counts": counts, "labels": test.labels[eval_idx], "index": eval_idx}}
    return net, record


def readout_training_indices(labels: np.ndarray, n_hidden: int, n_readout: int, seed: int
                             ) -> tuple[np.ndarray, np.ndarray]:
    """Training images of tier 1: the hidden layers' and the output layer's (indices into ``labels``).

    The hidden layers get ``n_hidden`` class-balanced images (rounded down to
    a multiple of 10), classes interleaved; the output layer and the linear
    baselines get ``n_readout``: the hidden layers' images first, then more
    class-balanced ones they never saw (or the first ``n_readout`` of them).
    """
    labels = np.asarray(labels)
    for name, n in (("n_hidden", n_hidden), ("n_readout", n_readout)):
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"{name} must be a positive integer, got {n!r}.")
    from .. import data

    hidden = data.balanced_subset(labels, max(1, n_hidden // 10), seed=seed)
    hidden = hidden[np.random.default_rng(seed).permutation(len(hidden))]  # classes interleaved
    if n_readout <= len(hidden):
        return hidden, hidden[:n_readout]
    rest = np.setdiff1d(np.arange(len(labels)), hidden)
    extra = rest[data.balanced_subset(labels[rest], max(1, (n_readout - len(hidden)) // 10),
                                      seed=seed + 1)]
    extra = extra[np.random.default_rng(seed + 1).permutation(len(extra))]
    return hidden, np.concatenate([hidden, extra])


def _features(out: Path, name: str, params: BrianSTDPParams, state: dict, sets: dict, *,
              seed: int, replicas: int, progress: bool) -> dict:
    """Spike counts of every layer and layer 2's spikes for each image set.

    Each set is cached in ``out/features_{name}_{set}.npz``, keyed by the
    parameters, seed, replicas, state and images (a long run keeps the
    sets it finished).
    """
    frozen, result = None, {}
    for k, (set_name, x) in enumerate(sets.items()):
        key = _cache_key(repr((asdict(params), seed, replicas, set_name)).encode(),
                         (*state.values(), x))
        path = out / f"features_{name}_{set_name}.npz"
        saved = _cached(path, key)
        if saved is not None:
            result[set_name] = _unpack_features(saved)
            continue
        if frozen is None:
            frozen = FrozenReplicas(params, state, replicas=replicas)
        start = time.perf_counter()
        run = frozen.run(x, seed=seed * 7919 + k, progress=progress,
                         desc=f"hidden spikes, {name} weights, {set_name}")
        _savez_atomic(path, key=key, wall_s=np.array(time.perf_counter() - start),
                      **{f"counts{layer}": c for layer, c in enumerate(run["counts"], start=1)},
                      **{f"train_{f}": v for f, v in run["trains"].items()})
        result[set_name] = _unpack_features(_cached(path, key))
    return result


def _unpack_features(saved: dict) -> dict:
    n_layers = sum(1 for f in saved if f.startswith("counts"))
    return {"counts": [saved[f"counts{k}"] for k in range(1, n_layers + 1)],
            "trains": {f: saved[f"train_{f}"] for f in ("image", "neuron", "t_ms")},
            "wall_s": float(saved["wall_s"])}


def initial_state(params: BrianSTDPParams, seed: int) -> dict:
    """The untrained network's state, as :class:`BrianSTDPNetwork` builds it (without Brian2).

    Weights uniform in ``[0, w_init_max]`` from ``numpy.random.default_rng(seed)``
    (layer 1 first), each neuron's then scaled to its layer's sum and clipped
    to the STDP bounds (:meth:`BrianSTDPNetwork.normalise`); thresholds 0.
    """
    rng = np.random.default_rng(seed)
    out, n_source = {}, N_INPUTS
    for k, lp in enumerate([params.layer1] + ([params.layer2] if params.layer2 else []), start=1):
        w = rng.uniform(0.0, lp.w_init_max, n_source * lp.n_neurons).reshape(n_source, lp.n_neurons)
        out[f"w{k}"] = _normalised(w, lp.weight_sum_per_input * n_source, lp.stdp).ravel()
        out[f"theta{k}"] = np.zeros(lp.n_neurons)
        n_source = lp.n_neurons
    return out


def synaptic_events(x, hidden_counts, output_counts, params: BrianSTDPParams) -> float:
    """Mean feed-forward synaptic events per image: every spike times its fan-out.

    Input spikes are their expectation (intensity x max rate x duration, summed
    over the 1024 pixels) times layer 1's size; then layer 1's spikes times
    layer 2's size and layer 2's spikes times the output layer's size
    (``output_counts.shape[1]``). Inhibitory synapses are not counted.
    """
    x = _flat_images(x)
    enc = params.encoding
    input_spikes = x.sum(axis=1).mean() * enc.max_rate_hz * enc.duration_ms / 1000.0
    sizes = [lp.n_neurons for lp in (params.layer1, params.layer2)] + [output_counts.shape[1]]
    events = input_spikes * sizes[0]
    for counts, fan_out in zip(hidden_counts, sizes[1:]):
        events += counts.sum(axis=1).mean() * fan_out
    return float(events)


def train_tier(profile, *, out_dir: str | os.PathLike, seed: int = 2026,
               params: BrianSTDPParams | None = None, output: OutputParams | None = None,
               n_readout_images: int | None = None, epochs: int | None = None,
               n_test_images: int | None = None, replicas: int = 16, progress: bool = True):
    """The whole of tier 1 at a profile's size, with its baselines measured in the same run.

    1. The hidden layers (:func:`train_hidden_layers`, resumable, in ``out_dir``).
    2. Their spikes, learning off (:class:`FrozenReplicas`), for the output
       layer's training images (:func:`readout_training_indices`) and the
       test images, for the trained network and for the same network with
       its initial random weights (and zero adaptive thresholds).
    3. An R-STDP output layer (:class:`RSTDPReadout`, resumable) on each
       network's layer-2 spikes; predictions for the test images.
    4. Baselines on the same images: logistic regression on the grayscale
       pixels, on the trained network's spike counts (layer 2; layers 1 and
       2), on the random network's layer-2 counts; chance.

    Sizes: ``profile.tier1_readout_images`` and ``tier1_readout_epochs``;
    test images ``10 x profile.n_test_per_class`` (all 10,000 for ``full``).

    Writes ``tier_record.json`` in ``out_dir`` (and everything
    :func:`train_hidden_layers` writes, ``features_*.npz``, ``output_*.npz``)
    and returns ``(record, details)``: the JSON record, and arrays for the
    chapter (``history`` of both readouts, output ``weights``, test
    ``labels``, ``predictions``, ``features``, the networks' states).
    """
    import json
    import platform
    from datetime import datetime, timezone

    from .. import data, metrics, readout

    out = Path(out_dir)
    params = params if params is not None else params_for_profile(profile)
    output = output if output is not None else OutputParams()
    if params.layer2 is None:
        raise ValueError("tier 1 needs both hidden layers: params.layer2 is None.")
    n_readout = profile.tier1_readout_images if n_readout_images is None else n_readout_images
    epochs = profile.tier1_readout_epochs if epochs is None else epochs
    t_start = time.perf_counter()
    commit = git_commit()  # at the start: the code this call runs
    net, hidden = train_hidden_layers(profile, out_dir=out, seed=seed, params=params, progress=progress)
    wall = {"hidden_layers_total": sum(ph["total_wall_s"] for ph in hidden["phases"].values())}

    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    _, readout_idx = readout_training_indices(train.labels, profile.tier1_train_images, n_readout, seed)
    per_class = (n_test_images // 10 if n_test_images is not None
                 else profile.n_test_per_class or 1000)
    test_idx = data.balanced_subset(test.labels, max(1, per_class), seed=seed)
    x_train, y_train = data.to_grayscale(train.images[readout_idx]), train.labels[readout_idx]
    x_test, y_test = data.to_grayscale(test.images[test_idx]), test.labels[test_idx]
    states = {"stdp": net.state_dict(), "random": initial_state(params, seed)}
    features, readouts, results, histories = {}, {}, {}, {}
    duration = params.encoding.duration_ms
    for name, state in states.items():
        features[name] = _features(out, name, params, state, {"train": x_train, "test": x_test},
                                   seed=seed, replicas=replicas, progress=progress)
        wall[f"features_{name}"] = features[name]["train"]["wall_s"] + features[name]["test"]["wall_s"]
        ro = RSTDPReadout(output, n_inputs=params.layer2.n_neurons, duration_ms=duration, seed=seed,
                          codegen_target=params.codegen_target)
        fit = ro.fit(features[name]["train"]["trains"], y_train, epochs=epochs,
                     checkpoint=out / f"output_{name}.npz", progress=progress)
        wall[f"output_{name}_training_total"] = fit["total_wall_s"]
        start = time.perf_counter()
        pred = ro.predict(features[name]["test"]["trains"], len(x_test), progress=progress)
        wall[f"output_{name}_test"] = time.perf_counter() - start
        readouts[name], histories[name] = ro, fit["history"]
        results[name] = {"summary": metrics.classification_summary(y_test, pred["decision"]),
                         "decision": pred["decision"], "counts": pred["counts"],
                         "images_per_s": fit["images"] / max(fit["total_wall_s"], 1e-9)}

    start = time.perf_counter()
    f_stdp, f_rand = features["stdp"], features["random"]
    baselines = {
        "logistic regression, grayscale pixels": readout.logistic_regression(
            x_train, y_train, x_test, y_test, seed=seed),
        "logistic regression, hidden layer 2 spike counts": readout.logistic_regression(
            f_stdp["train"]["counts"][1], y_train, f_stdp["test"]["counts"][1], y_test, seed=seed),
        "logistic regression, hidden layers 1 + 2 spike counts": readout.logistic_regression(
            np.hstack(f_stdp["train"]["counts"]), y_train, np.hstack(f_stdp["test"]["counts"]),
            y_test, seed=seed),
        "logistic regression, random-weight layer 2 spike counts": readout.logistic_regression(
            f_rand["train"]["counts"][1], y_train, f_rand["test"]["counts"][1], y_test, seed=seed),
    }
    wall["baselines"] = time.perf_counter() - start
    wall["this_call"] = time.perf_counter() - t_start

    def spikes(feat, out_counts):
        layers = {f"hidden layer {k}": spike_statistics(c, duration)
                  for k, c in enumerate(feat["test"]["counts"], start=1)}
        layers["output"] = spike_statistics(out_counts, duration)
        return layers

    summary = results["stdp"]["summary"]
    record = {
        "tier": "brian_stdp",
        "profile": profile.name,
        "accuracy": summary["accuracy"],
        "per_class_accuracy": summary["per_class_accuracy"],
        "confusion": summary["confusion"],
        "no_decision": summary["no_decision"],
        "class_names": list(data.CLASS_NAMES),
        "baselines": {
            "R-STDP output on random (untrained) hidden weights":
                results["random"]["summary"]["accuracy"],
            **{k: v["accuracy"] for k, v in baselines.items()},
            "chance": 0.1,
        },
        "baseline_details": {k: {"c": v["c"], "validation": v["validation"]}
                             for k, v in baselines.items()},
        "seed": seed,
        "dataset": data.dataset_name(train.source),
        "train_images": {"hidden_layer1": hidden["train_images"],
                         "hidden_layer2": hidden["layer2_train_images"], "output_layer": len(readout_idx),
                         "output_epochs": epochs},
        "test_images": len(test_idx),
        "parameters": {"network": asdict(params), "output": asdict(output), "replicas": replicas},
        "wall_s": wall,
        "images_per_s": {
            "hidden_layer_training": {name: ph["images"] / ph["total_wall_s"]
                                      for name, ph in hidden["phases"].items()},
            "hidden_spikes_learning_off": (2 * (len(x_train) + len(x_test))
                                           / max(wall["features_stdp"] + wall["features_random"], 1e-9)),
            "output_training": results["stdp"]["images_per_s"],
        },
        "spike_statistics": {"trained": spikes(f_stdp, results["stdp"]["counts"]),
                             "random": spikes(f_rand, results["random"]["counts"])},
        "layer2_volleys": {
            "what": "fraction of test images in which at least 90% (25%) of hidden layer 2's "
                    "neurons fire within 5 ms (volley_fraction)",
            **{name: {f"{q:.0%}": volley_fraction(
                features[key]["test"]["trains"], len(x_test), params.layer2.n_neurons, fraction=q)
                for q in (0.9, 0.25)} for name, key in (("trained", "stdp"), ("random", "random"))}},
        "synaptic_operations": {
            "what": "feed-forward synaptic events per test image (input->layer 1, layer 1->2, "
                    "layer 2->output; inhibitory synapses not counted)",
            "trained": synaptic_events(x_test, f_stdp["test"]["counts"], results["stdp"]["counts"],
                                       params),
            "random": synaptic_events(x_test, f_rand["test"]["counts"], results["random"]["counts"],
                                      params)},
        "git_commit": commit,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "gpu": False, "platform": platform.platform()},
    }
    (out / "tier_record.json").write_text(json.dumps(record, indent=2, default=str))
    details = {"net": net, "hidden": hidden, "readouts": readouts, "history": histories,
               "results": results, "baselines": baselines, "features": features,
               "test_labels": y_test, "test_index": test_idx, "train_index": readout_idx,
               "train_labels": y_train, "test_images": x_test, "states": states}
    return record, details
