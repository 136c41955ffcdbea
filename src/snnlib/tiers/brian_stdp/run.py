"""Tier 1's first network, fully connected after Diehl & Cook: its pipeline (kept to show why it fails).

:func:`run_diehl_cook` runs it end to end (hidden layers, their spikes with
learning off, its R-STDP output layer, baselines) and writes a
:class:`snnlib.runs.TierRecord` in the format of ``results/records_v1``;
:func:`train_hidden_layers` is its first part (chapter 3's section on why this
network fails on CIFAR-10). The tier's network is now the convolutional one of
:mod:`.pipeline`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ... import _validate as check
from ... import runs
from .. import _profile_section
from .diehl_cook import (DC_EXC, DC_STDP, LAYER2_SUM, LAYER2_W_MAX, BrianSTDPNetwork,
                         BrianSTDPParams, FrozenReplicas, LayerParams, _flat_images,
                         initial_state, snapshot_schedule, spike_statistics, volley_fraction)
from .readout import OutputParams, RSTDPReadout
from .record import to_record

__all__ = ["FEATURES_VERSION", "params_for_profile", "readout_training_indices", "run_diehl_cook",
           "synaptic_events", "train_hidden_layers"]

FEATURES_VERSION = 1
"""Part of the cache keys of the hidden layers' spikes with learning off: raised when
:class:`FrozenReplicas` or :meth:`BrianSTDPNetwork.spike_counts` change."""


def params_for_profile(profile) -> BrianSTDPParams:
    """The tier-1 network at a profile's size: layer 1 of ``profile.brian_stdp.neurons``, layer 2 of half.

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
      far larger (LAYER2_SUM, with ``w_max`` raised to match). In one
      measurement (100 + 50 neurons, 400 images) about a fifth of the training
      images still need a boost before layer 2 fires: layer 2 may need
      more tuning.

    The ``ci`` profile uses Brian2's numpy code generation (no compilation).
    """
    _profile_section(profile, "brian_stdp", "brian_stdp.params_for_profile")
    n1 = profile.brian_stdp.neurons
    exc = replace(DC_EXC, tau_theta_ms=1.0e5)
    stdp = DC_STDP
    layer1 = LayerParams(n_neurons=n1, exc=exc, stdp=stdp, weight_sum_per_input=0.05)
    layer2 = LayerParams(n_neurons=max(1, n1 // 2), exc=exc, weight_sum_per_input=LAYER2_SUM,
                         stdp=replace(stdp, w_max=LAYER2_W_MAX))
    return BrianSTDPParams(layer1=layer1, layer2=layer2,
                           # at ci size compiling would take longer than simulating
                           codegen_target="numpy" if profile.name == "ci" else "cython")


def train_hidden_layers(profile, *, out_dir: str | os.PathLike, seed: int = 2026,
                        params: BrianSTDPParams | None = None, layers: Sequence[int] = (1, 2),
                        n_images: int | None = None, n_eval_images: int | None = None,
                        progress: bool = True):
    """Train tier 1's hidden layers at a profile's size; resumable; write the model and a record.

    Layer 1 on ``n_images`` (default ``profile.brian_stdp.train_images``;
    rounded down to a multiple of 10, at least 10: class-balanced) training images,
    then (if 2 is in ``layers``) layer 2 with layer 1 frozen, on the first
    ``profile.brian_stdp.layer2_train_images`` of the same images (all if None;
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
    from ... import data

    where = "train_hidden_layers"
    _profile_section(profile, "brian_stdp", where)
    check.instance("out_dir", out_dir, (str, os.PathLike), where=where)
    check.integer("seed", seed, low=0, where=where)
    check.instance("params", params, BrianSTDPParams, none=True, where=where)
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"{where}: layers must be (1,) or (1, 2), got {type(layers).__name__} "
                        f"{layers!r}")
    layers = tuple(layers)
    if layers not in ((1,), (1, 2)) or any(isinstance(k, bool) for k in layers):
        raise ValueError(f"layers must be (1,) or (1, 2), got {layers!r}.")
    n_images = profile.brian_stdp.train_images if n_images is None else n_images
    check.positive_int("n_images", n_images, where=where)
    if n_eval_images is not None:
        check.positive_int("n_eval_images", n_eval_images, where=where)
    check.flag("progress", progress, where=where)
    commit = runs.git_commit()  # at the start: the code this call runs
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = data.load_cifar10("train")
    idx, _ = readout_training_indices(train.labels, n_images, 1, seed)
    x = data.to_grayscale(train.images[idx])
    params = params if params is not None else params_for_profile(profile)
    if 2 in layers and params.layer2 is None:
        raise ValueError("layers=(1, 2) but params.layer2 is None.")
    if layers == (1,):
        params = replace(params, layer2=None)
    net = BrianSTDPNetwork(params, seed=seed)
    # layer 2: the profile's number, or all of layer 1's images when there are fewer
    n2 = min(profile.brian_stdp.layer2_train_images or len(x), len(x))
    phases = {}
    for layer in layers:
        xl = x if layer == 1 else x[:n2]  # layer 2: the first n2 of layer 1's (classes interleaved)
        phases[f"layer{layer}"] = net.fit(
            xl, layer=layer, checkpoint=out / f"layer{layer}.npz", progress=progress,
            snapshots=snapshot_schedule(len(xl), params.chunk_images) if layer == 1 else ())
    runs.save_npz(out / "model.npz", **net.state_dict())

    test = data.load_cifar10("test")
    if n_eval_images is None:
        n_eval_images = min(1000, 10 * (profile.n_test_per_class or 1000))
    eval_idx = data.balanced_subset(test.labels, max(1, n_eval_images // 10), seed=seed)
    eval_path = out / "eval_counts.npz"
    eval_x = data.to_grayscale(test.images[eval_idx])
    # the trained weights and thresholds, and the test images: the counts depend on nothing else
    key = runs.cache_key(net.state_dict(), eval_x, eval_idx, version=FEATURES_VERSION)
    saved = runs.cached_npz(eval_path, key)
    counts = None if saved is None else [saved[f"counts{k}"] for k in range(1, len(net.layers) + 1)]
    if counts is None:
        counts = net.spike_counts(eval_x, progress=progress)
        runs.save_npz(eval_path, key=key, labels=test.labels[eval_idx], index=eval_idx,
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
        "provenance": runs.provenance("cpu", commit=commit),
    }
    runs.save_json(out / "record.json", record)
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
    where = "readout_training_indices"
    labels = check.labels("labels", labels, where=where)
    if len(labels) == 0:
        raise ValueError(f"{where}: labels must not be empty")
    for name, n in (("n_hidden", n_hidden), ("n_readout", n_readout)):
        check.positive_int(name, n, where=where)
    check.integer("seed", seed, low=0, where=where)
    from ... import data

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
        key = runs.cache_key(params, seed, replicas, set_name, state, x, version=FEATURES_VERSION)
        path = out / f"features_{name}_{set_name}.npz"
        saved = runs.cached_npz(path, key)
        if saved is not None:
            result[set_name] = _unpack_features(saved)
            continue
        if frozen is None:
            frozen = FrozenReplicas(params, state, replicas=replicas)
        start = time.perf_counter()
        run = frozen.run(x, seed=seed * 7919 + k, progress=progress,
                         desc=f"hidden spikes, {name} weights, {set_name}")
        runs.save_npz(path, key=key, wall_s=np.array(time.perf_counter() - start),
                      **{f"counts{layer}": c for layer, c in enumerate(run["counts"], start=1)},
                      **{f"train_{f}": v for f, v in run["trains"].items()})
        result[set_name] = _unpack_features(runs.cached_npz(path, key))
    return result


def _unpack_features(saved: dict) -> dict:
    n_layers = sum(1 for f in saved if f.startswith("counts"))
    return {"counts": [saved[f"counts{k}"] for k in range(1, n_layers + 1)],
            "trains": {f: saved[f"train_{f}"] for f in ("image", "neuron", "t_ms")},
            "wall_s": float(saved["wall_s"])}


def synaptic_events(x, hidden_counts, output_counts, params: BrianSTDPParams) -> float:
    """Mean feed-forward synaptic events per image: every spike times its fan-out.

    Input spikes are their expectation (intensity x max rate x duration, summed
    over the 1024 pixels) times layer 1's size; then layer 1's spikes times
    layer 2's size and layer 2's spikes times the output layer's size
    (``output_counts.shape[1]``). Inhibitory synapses are not counted.
    """
    where = "synaptic_events"
    check.instance("params", params, BrianSTDPParams, where=where)
    if params.layer2 is None:
        raise ValueError(f"{where}: params must have both hidden layers (params.layer2 is None)")
    x = _flat_images(x, "x", where)
    if isinstance(hidden_counts, (str, bytes)) or not hasattr(hidden_counts, "__len__") \
            or len(hidden_counts) != 2:
        raise ValueError(f"{where}: hidden_counts must be the two hidden layers' counts, got "
                         f"{type(hidden_counts).__name__}"
                         + (f" of {len(hidden_counts)}" if hasattr(hidden_counts, "__len__") else ""))
    for k, c in enumerate(hidden_counts):  # only each image's total is used: any columns
        check.array(f"hidden_counts[{k}]", c, shape=(len(x), None), low=0.0, where=where)
    check.array("output_counts", output_counts, ndim=2, low=0.0, where=where)
    if len(output_counts) != len(x):
        raise ValueError(f"{where}: output_counts has {len(output_counts)} rows for {len(x)} "
                         "images in x")
    enc = params.encoding
    input_spikes = x.sum(axis=1).mean() * enc.max_rate_hz * enc.duration_ms / 1000.0
    sizes = [lp.n_neurons for lp in (params.layer1, params.layer2)] + [output_counts.shape[1]]
    events = input_spikes * sizes[0]
    for counts, fan_out in zip(hidden_counts, sizes[1:]):
        events += counts.sum(axis=1).mean() * fan_out
    return float(events)


def run_diehl_cook(profile, *, out_dir: str | os.PathLike, seed: int = 2026, device: str = "cpu",
             params: BrianSTDPParams | None = None, output: OutputParams | None = None,
             n_readout_images: int | None = None, epochs: int | None = None,
             n_test_images: int | None = None, replicas: int = 16, progress: bool = True,
             hidden_only: bool = False):
    """The whole Diehl & Cook network at a profile's size, with its baselines measured in the same run.

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

    Sizes: ``profile.brian_stdp.readout_images`` and ``.readout_epochs``;
    test images ``10 x profile.n_test_per_class`` (all 10,000 for ``full``).
    Brian2 runs on the CPU: ``device`` must be ``"cpu"``. With
    ``hidden_only``, only step 1 runs and ``(network, hidden record)`` of
    :func:`train_hidden_layers` is returned.

    Writes ``tier_record.json`` in ``out_dir`` (and everything
    :func:`train_hidden_layers` writes, ``features_*.npz``, ``output_*.npz``)
    and returns ``(record, details)``: the JSON record, and arrays for the
    chapter (``history`` of both readouts, output ``weights``, test
    ``labels``, ``predictions``, ``features``, the networks' states).
    """
    from ... import data, metrics, readout

    where = "run_diehl_cook"
    if runs.get_device(device) != "cpu":
        raise ValueError(f"tier 1 simulates with Brian2 on the CPU; device must be 'cpu', "
                         f"got {device!r}.")
    _profile_section(profile, "brian_stdp", where)
    check.instance("out_dir", out_dir, (str, os.PathLike), where=where)
    check.integer("seed", seed, low=0, where=where)
    check.instance("params", params, BrianSTDPParams, none=True, where=where)
    check.instance("output", output, OutputParams, none=True, where=where)
    for name, value in (("n_readout_images", n_readout_images), ("epochs", epochs),
                        ("n_test_images", n_test_images)):
        if value is not None:
            check.positive_int(name, value, where=where)
    check.positive_int("replicas", replicas, where=where)
    check.flag("progress", progress, where=where)
    check.flag("hidden_only", hidden_only, where=where)
    if hidden_only:
        return train_hidden_layers(profile, out_dir=out_dir, seed=seed, params=params,
                                   progress=progress)
    out = Path(out_dir)
    params = params if params is not None else params_for_profile(profile)
    output = output if output is not None else OutputParams()
    if params.layer2 is None:
        raise ValueError("tier 1 needs both hidden layers: params.layer2 is None.")
    n_readout = profile.brian_stdp.readout_images if n_readout_images is None else n_readout_images
    epochs = profile.brian_stdp.readout_epochs if epochs is None else epochs
    t_start = time.perf_counter()
    commit = runs.git_commit()  # at the start: the code this call runs
    net, hidden = train_hidden_layers(profile, out_dir=out, seed=seed, params=params, progress=progress)
    wall = {"hidden_layers_total": sum(ph["total_wall_s"] for ph in hidden["phases"].values())}

    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    _, readout_idx = readout_training_indices(train.labels, profile.brian_stdp.train_images,
                                              n_readout, seed)
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
        wall[f"features_{name}_train"] = features[name]["train"]["wall_s"]
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
    measured = {
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
    }
    record = to_record(measured, device="cpu", provenance=runs.provenance("cpu", commit=commit))
    runs.save_record(record, out / "tier_record.json")
    details = {"net": net, "hidden": hidden, "readouts": readouts, "history": histories,
               "results": results, "baselines": baselines, "features": features,
               "test_labels": y_test, "test_index": test_idx, "train_index": readout_idx,
               "train_labels": y_train, "test_images": x_test, "states": states}
    return record, details
