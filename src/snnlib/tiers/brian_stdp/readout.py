"""Tier 1, the output layer: reward-modulated STDP on the hidden layers' spikes (Brian2).

:class:`RSTDPReadout` is a layer of ``neurons_per_class`` excitatory neurons
per class, learning with R-STDP (Izhikevich 2007; Florian 2007): eligibility
traces of pre/post pairings, turned into weight changes by a reward after
each image (:mod:`snnlib.plasticity`). :func:`decide` reads a decision from
class spike counts; :func:`image_spikes` runs one image through the whole
tier for the chapter's figures.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Literal

import numpy as np

from ... import _validate as check
from ... import runs
from ...neurons import LIFParams, build_lif_group, run_brian2
from ...plasticity import RSTDPParams, STDPParams, apply_reward, build_rstdp_synapses
from .diehl_cook import (BYTES_PER_SYNAPSE, DC_EXC, RESET_NEURONS, FrozenReplicas,
                         _joined_trains, _normalised, _spikes_since, _trains_dict)

TRAIN_VERSION = 1
"""Part of the output layer's checkpoint keys: raised when its training changes."""

__all__ = ["DC_OUT", "OutputParams", "RSTDPReadout", "decide", "image_spikes", "select_trains",
           "toy_spike_task"]

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
            check.positive_int(f"OutputParams.{name}", getattr(self, name))
        if self.n_classes < 2:
            raise ValueError(f"OutputParams.n_classes must be at least 2, got {self.n_classes}.")
        check.instance("OutputParams.exc", self.exc, LIFParams)
        check.instance("OutputParams.rstdp", self.rstdp, RSTDPParams)
        for name in ("w_inh", "weight_sum_per_input", "w_init_max"):
            check.finite_number(f"OutputParams.{name}", getattr(self, name), at_least=0)
        check.finite_number("OutputParams.reward", self.reward, above=0)
        check.finite_number("OutputParams.punishment", self.punishment, at_most=0)
        for name in ("balanced_reward", "reward_decision_only"):
            check.flag(f"OutputParams.{name}", getattr(self, name))
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
    where = "decide"
    check.array("class_counts", class_counts, ndim=2, low=0.0, where=where)
    first = np.asarray(first_spike_ms)
    if first.shape != np.shape(class_counts):
        raise ValueError(f"{where}: first_spike_ms must have class_counts' shape "
                         f"{np.shape(class_counts)}, got {first.shape}")
    check.array("first_spike_ms", first, finite=False, where=where)
    if np.isnan(first.astype(np.float64)).any():
        raise ValueError(f"{where}: first_spike_ms must be times (ms) or inf, got NaN")
    check.instance("rng", rng, np.random.Generator, none=True, where=where)
    return _decide(class_counts, first_spike_ms, rng=rng)


def _decide(class_counts: np.ndarray, first_spike_ms: np.ndarray, *, rng=None) -> np.ndarray:
    """:func:`decide` without the checks (it runs at every image)."""
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
    where = "select_trains"
    trains = _trains_dict("trains", trains, where)
    if len(trains["image"]) and (np.diff(trains["image"]) < 0).any():
        raise ValueError(f"{where}: trains must be sorted by image (as FrozenReplicas.run gives "
                         "them)")
    chosen = check.array("images", images, ndim=1, nonempty=False, where=where)
    if np.asarray(chosen).dtype.kind not in "iu":
        raise TypeError(f"{where}: images must be integer image indices, got dtype "
                        f"{np.asarray(chosen).dtype}")
    if len(chosen) and np.asarray(chosen).min() < 0:
        raise ValueError(f"{where}: images must be image indices >= 0, got "
                         f"{int(np.asarray(chosen).min())}")
    return _select_trains(trains, images)


def _select_trains(trains: dict, images: np.ndarray) -> dict:
    """:func:`select_trains` without the checks (it runs at every chunk)."""
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

        where = "RSTDPReadout"
        check.instance("params", params, OutputParams, where=where)
        check.positive_int("n_inputs", n_inputs, where=where)
        check.finite_number("duration_ms", duration_ms, at_least=params.exc.dt_ms, where=where)
        check.integer("seed", seed, low=0, where=where)
        check.choice("codegen_target", codegen_target, ("cython", "numpy"), where=where)
        n_syn = n_inputs * params.n_neurons + params.n_neurons ** 2
        check.fits_in_memory(f"an output layer for n_inputs={n_inputs} ({n_syn:,} synapses)",
                             BYTES_PER_SYNAPSE * n_syn, where=where)
        n_inputs = int(n_inputs)
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
        decision = int(_decide(counts, first, rng=rng)[0])
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
        sel = _select_trains(trains, images)
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
        return runs.cache_key(self.params, self.n_inputs, self.duration_ms, self.seed, epochs,
                              *(np.asarray(trains[k], dtype=np.float64)
                                for k in ("image", "neuron", "t_ms")),
                              np.asarray(labels, dtype=np.int64), version=TRAIN_VERSION)

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

        from ...progress import tqdm

        where = "RSTDPReadout.fit"
        check.positive_int("epochs", epochs, where=where)
        raw = np.asarray(labels)
        if raw.dtype.kind not in "iu":
            raise TypeError(f"{where}: labels must be integer class indices, got dtype "
                            f"{raw.dtype}")
        labels = raw.astype(np.int64)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError(f"{where}: labels must be a non-empty 1-d array, got shape "
                             f"{labels.shape}.")
        if labels.min() < 0 or labels.max() >= self.params.n_classes:
            bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
            raise ValueError(f"{where}: labels must lie in [0, {self.params.n_classes - 1}], "
                             f"got {bad}.")
        n = len(labels)
        trains = _trains_dict("trains", trains, where, n_neurons=self.n_inputs)
        if len(trains["image"]) and trains["image"].max() >= n:
            raise ValueError(f"trains hold spikes of image {int(trains['image'].max())}, "
                             f"but only {n} labels were given.")
        check.instance("checkpoint", checkpoint, (str, os.PathLike), none=True, where=where)
        check.flag("progress", progress, where=where)
        if on_chunk is not None and not callable(on_chunk):
            raise TypeError(f"{where}: on_chunk must be None or a callable, got "
                            f"{type(on_chunk).__name__}")
        order = np.concatenate([np.random.default_rng([self.seed, e]).permutation(n)
                                for e in range(epochs)])
        fingerprint = self._fingerprint(trains, labels, epochs)
        p_out = self.params
        run = {"hits": [], "history": [], "wall_s": 0.0}
        position, resumed_from = 0, None
        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and ckpt.exists():
            saved = runs.load_npz(ckpt)
            missing = [k for k in ("fingerprint", "position", "run", "w") if k not in saved]
            if missing:
                raise runs.CheckpointError(
                    f"checkpoint {ckpt} lacks {missing}: it is not a checkpoint of this output "
                    "layer; delete it to start afresh.")
            if np.asarray(saved["w"]).size != self.n_inputs * p_out.n_neurons:
                raise runs.CheckpointError(
                    f"checkpoint {ckpt} holds {np.asarray(saved['w']).size} weights, this output "
                    f"layer has {self.n_inputs * p_out.n_neurons}; delete it to start afresh.")
            if str(saved["fingerprint"]) != fingerprint:
                raise runs.CheckpointError(
                    f"checkpoint {ckpt} comes from other parameters, seed, spikes, labels or "
                    "epochs; delete it to start afresh or pass another path.")
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
                    runs.save_npz(ckpt, fingerprint=fingerprint, position=position,
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
        from ...progress import tqdm

        where = "RSTDPReadout.predict"
        check.positive_int("n_images", n_images, where=where)
        trains = _trains_dict("trains", trains, where, n_neurons=self.n_inputs)
        if len(trains["image"]) and (np.diff(trains["image"]) < 0).any():
            raise ValueError(f"{where}: trains must be sorted by image (as FrozenReplicas.run "
                             "gives them)")
        check.flag("progress", progress, where=where)
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
    where = "toy_spike_task"
    for name, value in (("n_images", n_images), ("n_classes", n_classes),
                        ("inputs_per_class", inputs_per_class)):
        check.positive_int(name, value, where=where)
    check.integer("seed", seed, low=0, where=where)
    check.finite_number("dt_ms", dt_ms, above=0, where=where)
    for name, value in (("rate_hz", rate_hz), ("background_hz", background_hz)):
        check.finite_number(name, value, at_least=0, where=where)
        if not value * dt_ms / 1000.0 <= 1:
            raise ValueError(f"{name}={value!r} must be >= 0 with {name} x dt_ms / 1000 <= 1 "
                             f"(dt_ms={dt_ms}).")
    check.finite_number("duration_ms", duration_ms, where=where)
    if not duration_ms >= dt_ms:
        raise ValueError(f"duration_ms={duration_ms!r} and dt_ms={dt_ms!r} must satisfy "
                         "duration_ms >= dt_ms > 0.")
    n_in, n_steps = n_classes * inputs_per_class, round(duration_ms / dt_ms)
    spikes = n_images * n_steps * (inputs_per_class * rate_hz
                                   + (n_in - inputs_per_class) * background_hz) * dt_ms / 1000.0
    # every spike as three int64 / float64 numbers, and one image's uniform draws
    check.fits_in_memory(f"n_images={n_images} images of {n_steps} steps x {n_in} inputs",
                         3 * 8 * spikes + 8 * n_steps * n_in, where=where)
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
    where = "image_spikes"
    check.instance("frozen", frozen, FrozenReplicas, where=where)
    check.instance("readout", readout, RSTDPReadout, where=where)
    check.integer("seed", seed, low=0, where=where)
    x = np.asarray(image, dtype=np.float64)
    if x.shape != (32, 32):
        raise ValueError(f"image must be one 32 x 32 grayscale image, got shape {x.shape}.")
    check.array("image", x, low=0.0, high=1.0, where=where)
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


