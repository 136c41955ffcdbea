"""Tier 1, the pipeline of the convolutional network: retina, two STDP layers, an R-STDP output layer.

:func:`run_tier` is what ``python -m snnlib run brian_stdp`` and chapters 3 and 4
call. Each phase keeps its result in the run folder, keyed by everything it
depends on, so a run that is killed resumes at the phase it was in (the
output layer after its last finished epoch), and a finished run just loads.

Which images do what (:func:`snnlib.data.validation_split`):

- the retina and the hidden layers learn from the first ``hidden_images`` of
  the **training split**; the output layer and the logistic-regression
  baselines from its first ``output_images``;
- the **validation split** (the last 500 training images of each class) is
  never used here: every design parameter was chosen on it by the benchmark
  scripts (``benchmarks/brian_stdp_conv_probe.py`` for the layers,
  ``benchmarks/brian_stdp_conv_readout.py`` for the output layer), and the
  record says so (``specific["chosen_on"]``);
- the **test images** are read once, for the reported figures.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ... import _validate as check
from ... import runs
from .. import _profile_section
from . import network as N
from .output import PopulationParams, PopulationReadout

__all__ = ["CHOSEN_ON", "FEATURE_STEPS", "LAYERS_VERSION", "LR_CS",
           "OUTPUT_VERSION", "ablations", "output_params", "run_tier", "synaptic_events",
           "tier_params", "tier_images"]

LAYERS_VERSION = 4
"""Part of the cache keys of the learned layers and their features: raised when
:mod:`.network`'s learning or simulation changes (3: networks wired for
:data:`.network.WIRED_BATCH` images, which draws other spikes; 4: features simulated 32
batches per call, which draws other spikes)."""
OUTPUT_VERSION = 3
"""Part of the cache key of the output layer's checkpoints (3: inputs that count their own
spikes for the eligibility, which draws other spikes)."""

FEATURE_STEPS = 60
"""Steps (of 2 ms) per image of the features the readouts see, chosen on the validation split
(``benchmarks/brian_stdp_conv_probe.py --feature-steps 15 30 60``): a longer look, more spikes,
less Poisson noise in the counts."""

LR_CS = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
"""The inverse regularisation strengths the logistic-regression baselines choose from (on a
stratified fifth of their training images): wide enough that the choice falls inside it."""

CHOSEN_ON = {
    "split": "validation: the last 500 training images of each class (snnlib.data.validation_split)",
    "hidden layers (filters, field sizes, weight sums, rates, steps, pooling)":
        "benchmarks/brian_stdp_conv_probe.py: logistic regression on each layer's counts, "
        "validation accuracy",
    "layer 2's feed-forward inhibition and weight sum (feedforward_inhibition 1, w_sum_mv 150)":
        "benchmarks/brian_stdp_conv_probe.py --w2 W --set2 feedforward_inhibition=A (A, W: 0, 30; "
        "0.5, 60; 0.75, 120; 1, 150), 10,000 training images: logistic regression on layer 2, "
        "validation accuracy; benchmarks/brian_stdp_conv_readout.py on the saved features: the "
        "output layer's validation accuracy, against the same without",
    "steps per image of the features (feature_steps)":
        "benchmarks/brian_stdp_conv_probe.py --feature-steps 15 30 60: logistic regression on "
        "layers 1 + 2, validation accuracy",
    "the readouts' features (layer 2's counts pooled over 1 x 1, 2 x 2 and 3 x 3 grids side by "
    "side, square roots of the counts)":
        "benchmarks/brian_stdp_conv_readout.py --pool2 1 2 3 --sqrt (and --pool2 1 2 3 4, without "
        "--sqrt, as saved): the output layer's validation accuracy after 8 epochs, and logistic "
        "regression on layer 2 and on layers 1 + 2",
    "output layer (neurons per class, who decides while learning, reward prediction, zero-sum "
    "changes, tonic input, firing target, learning rate and its decay, starting weights, steps)":
        "benchmarks/brian_stdp_conv_readout.py: validation accuracy after each epoch",
    "logistic regression's C": "a stratified fifth of the output layer's training images",
}
"""What chose each design parameter (the record keeps this)."""


def tier_params(profile) -> N.Tier1Params:
    """The hidden layers at a profile's size: :class:`~.network.Tier1Params`' defaults, with the
    profile's patch counts and ``FEATURE_STEPS`` steps (120 ms) per image for the features.

    The ``ci`` profile (a smoke test of the code, not of learning) uses numpy code
    generation (no compiling), a quarter of the filters, smaller patch batches, so
    that the thresholds have enough batches to come down to where neurons win, and
    features over the learning steps.
    """
    _profile_section(profile, "brian_stdp", "brian_stdp.tier_params")
    s, base = profile.brian_stdp, N.Tier1Params()
    l1 = replace(base.layer1, train_patches=s.layer1_patches)
    l2 = replace(base.layer2, train_patches=s.layer2_patches)
    if profile.name == "ci":
        l1 = replace(l1, n_filters=l1.n_filters // 4, patch_batch=50)
        l2 = replace(l2, n_filters=l2.n_filters // 4, patch_batch=64)
    return replace(base, layer1=l1, layer2=l2,
                   feature_steps=None if profile.name == "ci" else FEATURE_STEPS,
                   retina=replace(base.retina, fit_images=min(base.retina.fit_images,
                                                              s.hidden_images)),
                   codegen_target="numpy" if profile.name == "ci" else "cython")


def output_params(profile) -> PopulationParams:
    """The output layer at a profile's size. Chosen on the validation split (5,000 training
    and 2,000 validation images' features): 10 neurons per class, the first spike decides
    while learning, the reward minus the layer's confidence (each population's spikes squared
    before the share is taken: ``confidence_power`` 2), zero-sum changes, a tonic input,
    thresholds for firing on half the images, eta 0.1 decaying by 0.85 per epoch, starting
    weights that give an average image 3 times the threshold gap, 100 steps per image when
    deciding."""
    _profile_section(profile, "brian_stdp", "brian_stdp.output_params")
    return PopulationParams(neurons_per_class=10, decide_by="first_spike", prediction="confidence",
                            confidence_power=2.0, conserve=True, tonic_input=True, fire_target=0.5, eta=0.1,
                            eta_decay=0.85, init_drive=3.0,
                            eval_steps=100, epochs=profile.brian_stdp.output_epochs,
                            codegen_target="numpy" if profile.name == "ci" else "cython")


def tier_images(profile, train_labels, test_labels, *, seed: int) -> dict:
    """Indices of the images each phase uses (see the module docstring): ``hidden``, ``output``
    (into the training set) and ``test`` (class-balanced, or all for a profile without a
    test size)."""
    from ... import data

    where = "tier_images"
    s = _profile_section(profile, "brian_stdp", where)
    train_labels = check.labels("train_labels", train_labels, where=where)
    test_labels = check.labels("test_labels", test_labels, where=where)
    for name, y in (("train_labels", train_labels), ("test_labels", test_labels)):
        if len(y) == 0:
            raise ValueError(f"{where}: {name} must not be empty")
    check.integer("seed", seed, low=0, where=where)
    train_split, _ = data.validation_split(train_labels)
    for name in ("hidden_images", "output_images"):
        if getattr(s, name) > len(train_split):
            raise ValueError(f"Profile.brian_stdp.{name} = {getattr(s, name)} is more than the "
                             f"{len(train_split)} images of the training split.")
    n_test = s.test_images if s.test_images is not None else (
        10 * profile.n_test_per_class if profile.n_test_per_class else len(test_labels))
    test = (np.arange(len(test_labels)) if n_test >= len(test_labels)
            else data.balanced_subset(test_labels, max(1, n_test // 10), seed=seed))
    return {"hidden": train_split[:s.hidden_images], "output": train_split[:s.output_images],
            "test": test}


def synaptic_events(p: N.Tier1Params, intensities: np.ndarray, feats: dict,
                    output_inputs: float, n_output: int) -> dict:
    """Mean feed-forward synaptic events per image, by pathway (inhibition not counted).

    - input -> layer 1: every input spike reaches ``K1`` neurons at each of the
      positions whose field covers it; in expectation
      :math:`K_1\\, p_{max}\\, T \\sum_{positions} \\sum_{field} x` (``T``: the
      feature steps, ``p.steps_frozen``);
    - layer 1 -> complex cells: one event per layer-1 spike;
    - complex cells -> layer 2: their spikes times ``K2`` times the mean number of
      layer-2 positions that see a complex cell (:math:`S_2^2 F_2^2 / S_{pool}^2`; an
      approximation: a cell at the border is seen by fewer positions than one inside);
    - output inputs -> output: their spikes (``output_inputs`` per image) times the
      ``n_output`` output neurons.
    """
    import torch
    import torch.nn.functional as F

    f1 = p.layer1.field_px
    x = torch.as_tensor(np.asarray(intensities), dtype=torch.float64)
    window = F.avg_pool2d(x, f1, stride=1) * f1 * f1  # each position's field sum
    input_events = (float(window.sum(dim=(1, 2, 3)).mean()) * p.layer1.n_filters * p.p_max
                    * p.steps_frozen)
    coverage = p.side2 ** 2 * p.layer2.field_px ** 2 / p.side_pool ** 2
    events = {"input -> layer 1": input_events,
              "layer 1 -> complex cells": float(np.mean(feats["spikes1"])),
              "complex cells -> layer 2": float(np.mean(feats["spikes_pool"]))
              * p.layer2.n_filters * coverage,
              "output inputs -> output": float(output_inputs) * n_output}
    return {**events, "total": sum(events.values())}


def _both(f: dict) -> np.ndarray:
    """The readouts' features: both layers' pooled counts side by side."""
    return np.hstack([f["f1"], f["f2"]]).astype(float)


def _layers(out: Path, name: str, p: N.Tier1Params, x: np.ndarray, *, seed: int,
            progress: bool) -> dict:
    """The learned layers (``stdp``) or their random-weight twin (``random``), cached."""
    key = runs.cache_key(p, seed, name, x, version=LAYERS_VERSION)
    path = out / f"layers_{name}.npz"
    saved = runs.cached_npz(path, key)
    if saved is None:
        start = time.perf_counter()
        layers = N.train_layers(p, x, seed=seed, learn=name == "stdp", progress=progress)
        hist = {f"history{k + 1}_{h}": np.asarray(v, dtype=float)
                for k, layer_hist in enumerate(layers["history"]) for h, v in layer_hist.items()}
        runs.save_npz(path, key=key, wall_s=np.array(time.perf_counter() - start),
                      **{f"{f}{k + 1}": np.asarray(layers[f][k])
                         for f in ("filters", "thresholds", "initial") for k in range(2)}, **hist)
        saved = runs.cached_npz(path, key)
    return {"filters": [saved["filters1"], saved["filters2"]],
            "thresholds": [saved["thresholds1"], saved["thresholds2"]],
            "initial": [saved["initial1"], saved["initial2"]],
            "history": [{h.split("_", 1)[1]: saved[h] for h in saved if h.startswith(f"history{k}_")}
                        for k in (1, 2)],
            "wall_s": float(saved["wall_s"])}


def _features(out: Path, name: str, set_name: str, p: N.Tier1Params, layers: dict,
              x: np.ndarray, *, seed: int, progress: bool) -> dict:
    """Both layers' pooled counts for images ``x``, cached (volleys measured on every image)."""
    state = [layers["filters"], layers["thresholds"]]
    key = runs.cache_key(p, seed, name, set_name, state, x, version=LAYERS_VERSION)
    path = out / f"features_{name}_{set_name}.npz"
    saved = runs.cached_npz(path, key)
    if saved is None:
        start = time.perf_counter()
        feats = N.features(p, layers, x, seed=seed + (0 if set_name == "train" else 1),
                           record_every=1 if set_name == "test" else 0, progress=progress)
        volleys = feats.pop("volley_fraction")
        runs.save_npz(path, key=key, wall_s=np.array(time.perf_counter() - start),
                      volley_fraction=np.array(np.nan if volleys is None else volleys), **feats)
        saved = runs.cached_npz(path, key)
    result = dict(saved)
    result["wall_s"] = float(saved["wall_s"])
    v = float(saved["volley_fraction"])
    result["volley_fraction"] = None if np.isnan(v) else v
    return result


def _output_checkpoint(out: Path, name: str, q: PopulationParams, f_train: np.ndarray,
                       y_train: np.ndarray, *, seed: int) -> tuple[Path, str, dict | None]:
    """Where :func:`_output` keeps its checkpoint, its key, and what it holds (None: nothing
    for these inputs)."""
    # neither the number of epochs (asking for more continues from the last one) nor the steps
    # of a decision (they do not change learning) is in the key
    key = runs.cache_key(replace(q, epochs=1, eval_steps=1), seed, name, f_train, y_train,
                         version=OUTPUT_VERSION)
    path = out / f"output_{name}.npz"
    return path, key, runs.cached_npz(path, key)


def _output(out: Path, name: str, q: PopulationParams, f_train: np.ndarray, y_train: np.ndarray,
            *, seed: int, progress: bool, report=None, side_by_side: bool = False
            ) -> tuple[PopulationReadout, float, bool]:
    """The R-STDP output layer on one network's features, checkpointed after every epoch:
    ``(readout, wall_s, side_by_side)``.

    ``report(n)``, if given, hears of the epochs done: those loaded, then each one learned.
    ``side_by_side``: this call learns beside another process (:func:`_outputs`); the
    checkpoint keeps whether any of its epochs did, so that the record can say that its
    wall time overlaps another's."""
    from ...progress import tqdm

    path, key, saved = _output_checkpoint(out, name, q, f_train, y_train, seed=seed)
    readout = PopulationReadout(replace(q, epochs=1), f_train.shape[1], seed=seed)
    wall, shared = 0.0, False
    if saved is not None and len(saved["train_accuracy"]) <= q.epochs:  # else: learn afresh
        readout.load_state(saved)
        wall = float(saved["wall_s"])
        shared = "side_by_side" in saved and bool(saved["side_by_side"])
    done = len(readout.history["train_accuracy"])
    if report is not None:
        report(done)
    for _ in tqdm(range(done, q.epochs), disable=not progress, initial=done, total=q.epochs,
                  desc=f"output layer learns ({name} hidden weights)", unit="epoch"):
        start = time.perf_counter()
        readout.fit(f_train, y_train)
        wall += time.perf_counter() - start
        shared = shared or side_by_side
        runs.save_npz(path, key=key, wall_s=np.array(wall), side_by_side=np.array(shared),
                      **readout.state_dict())
        if report is not None:
            report(1)
    return readout, wall, shared


def _outputs(out: Path, q: PopulationParams, train: dict, y_train: np.ndarray, *, seed: int,
             progress: bool, workers: int | None = None) -> dict:
    """:func:`_output` for each network of ``train`` (``{name: training features}``):
    ``{name: (readout, wall_s, side_by_side)}``.

    The output layers are independent and each simulates on one core, so on Linux they
    learn side by side, one forked process per core (``workers``: at most that many),
    each writing its own checkpoints; the parent then loads the finished layers from
    them. The same numbers as one after another: each layer draws from its own seeds."""
    from ...progress import tqdm

    def finished(name):
        saved = _output_checkpoint(out, name, q, train[name], y_train, seed=seed)[2]
        return saved is not None and len(saved["train_accuracy"]) == q.epochs

    to_learn = [name for name in train if not finished(name)]
    n = N._feature_workers(workers, len(to_learn))
    if n > 1:
        with tqdm(total=q.epochs * len(to_learn), disable=not progress, unit="epoch",
                  desc="output layers learn, side by side") as bar:
            def learn(name, report):
                _output(out, name, q, train[name], y_train, seed=seed, progress=False,
                        report=report, side_by_side=True)

            _side_by_side(to_learn, learn, workers=n, report=bar.update)
    return {name: _output(out, name, q, f, y_train, seed=seed, progress=progress and n == 1)
            for name, f in train.items()}


_SIDE_BY_SIDE: tuple | None = None
"""What the forked processes of :func:`_side_by_side` read: the work and the message queue."""


def _side_by_side_child(name: str) -> None:
    """In a forked process: ``work(name, report)``, its result or its error sent back."""
    import traceback

    from . import network

    network._forked_init()
    work, messages = _SIDE_BY_SIDE
    try:
        result = work(name, lambda n: messages.put(("report", name, n)))
        messages.put(("result", name, result))
    except BaseException:  # Brian2's errors hold objects that cannot be sent back: their text
        messages.put(("error", name, traceback.format_exc()))


def _side_by_side(names: list, work, *, workers: int, report=None) -> dict:
    """``{name: work(name, report)}`` for each name, ``workers`` at a time in forked copies of
    this process (Linux). ``work`` calls ``report(n)`` to tell of progress (passed on to
    ``report``); it returns something that pickles. A process that fails raises here with its
    traceback's text; an interrupted or failed call stops the others (:func:`_output` keeps
    every finished epoch)."""
    import multiprocessing

    global _SIDE_BY_SIDE
    ctx = multiprocessing.get_context("fork")
    messages = ctx.SimpleQueue()
    _SIDE_BY_SIDE = (work, messages)
    pending, running, results, errors = list(names), {}, {}, []

    def read():
        while not messages.empty():
            kind, name, value = messages.get()
            if kind == "report":
                if report is not None:
                    report(value)
            elif kind == "result":
                results[name] = value
            else:
                errors.append(f"{name}: {value}")

    try:
        while pending or running:
            while pending and len(running) < workers:
                name = pending.pop(0)
                running[name] = ctx.Process(target=_side_by_side_child, args=(name,),
                                            name=f"snnlib-{name}", daemon=True)
                running[name].start()
            time.sleep(0.2)
            ended = [name for name, proc in running.items() if not proc.is_alive()]
            read()  # after looking: what an ended process sent is in the queue by now
            for name in ended:
                running.pop(name).join()
                if name not in results and not any(e.startswith(f"{name}: ") for e in errors):
                    errors.append(f"{name}: its process ended without an answer (out of memory?)")
            if errors:
                raise RuntimeError("a process working side by side failed: " + errors[0])
    finally:
        for proc in running.values():
            proc.terminate()
            proc.join()
        _SIDE_BY_SIDE = None
    return {name: results[name] for name in names}


def run_tier(profile, *, out_dir: str | os.PathLike, seed: int = 2026, device: str = "cpu",
             params: N.Tier1Params | None = None, output: PopulationParams | None = None,
             progress: bool = True, hidden_only: bool = False):
    """The whole of tier 1 at a profile's size, with its baselines measured in the same run.

    1. The retina, fitted on the hidden layers' training images.
    2. The two hidden layers learn by STDP (:func:`~.network.train_layers`); their
       random-weight twin runs the same patches with learning off (only its
       thresholds adapt).
    3. Both networks' spike counts with learning off (:func:`~.network.features`)
       for the output layer's training images and the test images.
    4. An R-STDP output layer (:class:`~.output.PopulationReadout`) on each
       network's counts (on Linux the two learn side by side, one process per core);
       its decisions for the test images.
    5. Baselines on the same images: logistic regression on the grayscale
       pixels, on layer 1, layer 2, layers 1 + 2 and the random twin's layers
       1 + 2; chance.

    Brian2 runs on the CPU: ``device`` must be ``"cpu"``. With ``hidden_only``
    only steps 1-3 run (for the trained network) and ``(None, details)`` is
    returned. Writes ``layers_*.npz``, ``features_*.npz``, ``output_*.npz`` and
    ``tier_record.json`` in ``out_dir``; returns ``(record, details)``: the
    :class:`snnlib.runs.TierRecord` and, for the chapters, ``params``,
    ``output_params``, ``retina``, ``layers`` and ``features`` of both networks,
    ``readouts``, ``index`` (image indices), ``labels`` and ``decisions``.
    """
    from ... import data, metrics, readout

    where = "brian_stdp.run_tier"
    if str(device).split(":")[0] != "cpu" or runs.get_device(device) != "cpu":
        raise ValueError(f"tier 1 simulates with Brian2 on the CPU; device must be 'cpu', "
                         f"got {device!r}.")
    _profile_section(profile, "brian_stdp", where)
    check.instance("out_dir", out_dir, (str, os.PathLike), where=where)
    check.integer("seed", seed, low=0, where=where)
    check.instance("params", params, N.Tier1Params, none=True, where=where)
    check.instance("output", output, PopulationParams, none=True, where=where)
    check.flag("progress", progress, where=where)
    check.flag("hidden_only", hidden_only, where=where)
    p = params if params is not None else tier_params(profile)
    q = output if output is not None else output_params(profile)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    commit = runs.git_commit()  # at the start: the code this call runs
    t_start = time.perf_counter()
    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    idx = tier_images(profile, train.labels, test.labels, seed=seed)
    gray = {"hidden": data.to_grayscale(train.images[idx["hidden"]]),
            "train": data.to_grayscale(train.images[idx["output"]]),
            "test": data.to_grayscale(test.images[idx["test"]])}
    labels = {"train": train.labels[idx["output"]], "test": test.labels[idx["test"]]}
    retina = N.Retina.fit(gray["hidden"], p.retina, seed=seed)
    x = {k: retina.intensities(v) for k, v in gray.items()}
    details = {"params": p, "output_params": q, "retina": retina, "index": idx,
               "labels": labels, "layers": {}, "features": {}, "readouts": {}, "decisions": {}}
    wall: dict = {}
    names = ("stdp",) if hidden_only else ("stdp", "random")
    for name in names:
        layers = details["layers"][name] = _layers(out, name, p, x["hidden"], seed=seed,
                                                   progress=progress)
        wall[f"hidden_layers_{name}"] = layers["wall_s"]
        details["features"][name] = {}
        for set_name in ("train", "test"):
            f = details["features"][name][set_name] = _features(
                out, name, set_name, p, layers, x[set_name], seed=seed, progress=progress)
            wall[f"features_{name}_{set_name}"] = f["wall_s"]
    if hidden_only:
        return None, details

    results = {}
    readouts = _outputs(out, q, {name: _both(details["features"][name]["train"])
                                 for name in names}, labels["train"], seed=seed,
                        progress=progress)
    for name in names:
        feats = details["features"][name]
        ro, wall[f"output_{name}_training"], _ = readouts[name]
        f_test = _both(feats["test"])
        start = time.perf_counter()
        decisions = ro.predict(f_test, seed=seed)
        wall[f"output_{name}_test"] = time.perf_counter() - start
        details["readouts"][name], details["decisions"][name] = ro, decisions
        results[name] = {"summary": metrics.classification_summary(labels["test"], decisions),
                         "counts": ro.last_counts,
                         "inputs": ro.intensities(f_test).sum(axis=1).mean()
                         * q.max_rate_hz * q.eval_steps * q.dt_ms / 1000.0}

    start = time.perf_counter()
    fs, fr = details["features"]["stdp"], details["features"]["random"]

    def lr(train_x, test_x):
        return readout.logistic_regression(train_x, labels["train"], test_x, labels["test"],
                                           seed=seed, cs=LR_CS)

    probes = {
        "logistic regression, grayscale pixels": lr(gray["train"], gray["test"]),
        "logistic regression, hidden layer 1 spike counts": lr(fs["train"]["f1"], fs["test"]["f1"]),
        "logistic regression, hidden layer 2 spike counts": lr(fs["train"]["f2"], fs["test"]["f2"]),
        "logistic regression, hidden layers 1 + 2 spike counts": lr(_both(fs["train"]),
                                                                    _both(fs["test"])),
        "logistic regression, random-weight layers 1 + 2 spike counts": lr(_both(fr["train"]),
                                                                           _both(fr["test"])),
    }
    wall["baselines"] = time.perf_counter() - start
    wall["this_call"] = time.perf_counter() - t_start
    details["baselines"] = probes

    duration_ms = p.steps_frozen * p.dt_ms
    sizes = {"hidden layer 1": p.side1 ** 2 * p.layer1.n_filters,
             "complex cells": p.side_pool ** 2 * p.layer1.n_filters,
             "hidden layer 2": p.side2 ** 2 * p.layer2.n_filters, "output": q.n_neurons}

    def firing(feats, counts):
        spikes = {"hidden layer 1": float(np.mean(feats["spikes1"])),
                  "complex cells": float(np.mean(feats["spikes_pool"])),
                  "hidden layer 2": float(np.mean(feats["spikes2"])),
                  "output": float(counts.sum(axis=1).mean())}
        return {layer: {"neurons": sizes[layer], "spikes_per_image": s,
                        "rate_hz": s / sizes[layer] / ((q.eval_steps * q.dt_ms if layer == "output"
                                                        else duration_ms) / 1000.0)}
                for layer, s in spikes.items()}

    events = {name: synaptic_events(p, x["test"], details["features"][name]["test"],
                                    results[name]["inputs"], q.n_neurons) for name in names}
    summary = results["stdp"]["summary"]
    n_test = len(idx["test"])
    together = [f"output_{name}_training" for name in names if readouts[name][2]]
    specific = {
        "no_decision": summary["no_decision"],
        "chosen_on": CHOSEN_ON,
        "images": {"hidden_layers": len(idx["hidden"]), "output_layer": len(idx["output"]),
                   "output_epochs": q.epochs, "layer1_patches": p.layer1.train_patches,
                   "layer2_patches": p.layer2.train_patches,
                   "from": "the first images of the training split (validation split excluded)"},
        "time": {"hidden_layers_ms": duration_ms, "hidden_dt_ms": p.dt_ms,
                 "hidden_layers_learning_ms": p.steps * p.dt_ms,
                 **({"layer2_learning_ms": p.learning_steps(2) * p.dt_ms}
                    if p.steps2 is not None else {}),
                 "output_learning_ms": q.steps * q.dt_ms, "output_deciding_ms": q.eval_steps * q.dt_ms,
                 "output_dt_ms": q.dt_ms},
        "random_twin": {"R-STDP accuracy": results["random"]["summary"]["accuracy"],
                        "firing": firing(fr["test"], results["random"]["counts"]),
                        "synaptic_events": events["random"]},
        "layer2_volley_fraction": {
            "what": "fraction of test images in which at least 25% of hidden layer 2's neurons "
                    "fire within 2 steps, 4 ms (volley_fraction)",
            "trained": fs["test"]["volley_fraction"], "random": fr["test"]["volley_fraction"]},
        "weights_moved": {f"layer {k + 1}": m for k, m in enumerate(
            N.weights_moved(p, details["layers"]["stdp"]))},
        "output_history": {name: details["readouts"][name].history for name in names},
        **({"side_by_side": {
            "phases": together, "what": "phases that ran at the same time, one process per "
                                        "core: their wall times overlap"}}
           if len(together) > 1 else {}),
        "baseline_details": {k: {"c": v["c"], "validation": v["validation"]}
                             for k, v in probes.items()},
        "synaptic_events_by_pathway": events["stdp"],
        "speed": {"hidden_layers_learning_patches_per_s": (
                      (p.layer1.train_patches + p.layer2.train_patches) / wall["hidden_layers_stdp"]),
                  "frozen_hidden_images_per_s": n_test / wall["features_stdp_test"],
                  "output_learning_images_per_s": (q.epochs * len(idx["output"])
                                                   / wall["output_stdp_training"]),
                  "output_deciding_images_per_s": n_test / wall["output_stdp_test"]},
    }
    record = runs.TierRecord(
        tier="brian_stdp", profile=profile.name, dataset=data.dataset_name(train.source),
        seed=seed, train_images=len(idx["hidden"]) if len(idx["hidden"]) > len(idx["output"])
        else len(idx["output"]), test_images=n_test, class_names=list(data.CLASS_NAMES),
        accuracy=summary["accuracy"],
        baselines={"R-STDP output on the random-weight twin": results["random"]["summary"]["accuracy"],
                   **{k: v["accuracy"] for k, v in probes.items()}, "chance": 0.1},
        per_class_accuracy=summary["per_class_accuracy"], confusion=summary["confusion"],
        firing=firing(fs["test"], results["stdp"]["counts"]),
        synaptic_events=runs.SynapticEvents(
            accumulates=events["stdp"]["total"], multiply_accumulates=0.0,
            what="feed-forward synaptic events per test image: input -> layer 1 (expected), "
                 "layer 1 -> complex cells, complex cells -> layer 2 (with the mean number of "
                 "layer-2 positions that see a complex cell), output inputs -> output; "
                 "inhibition not counted"),
        time_steps=p.steps_frozen + q.eval_steps, dt_ms=None,
        wall_s=wall,
        training_wall_s=(wall["hidden_layers_stdp"] + wall["features_stdp_train"]
                         + wall["output_stdp_training"]),
        training=runs.Speed(specific["speed"]["output_learning_images_per_s"],
                            "output layer learning by R-STDP: images per second (the hidden "
                            "layers learn from patches: see specific.speed)"),
        inference=runs.Speed(specific["speed"]["frozen_hidden_images_per_s"],
                             f"hidden layers with learning off, {N.WIRED_BATCH} images side by "
                             f"side, in {N._feature_workers(None, 10 ** 6)} process(es): images "
                             "per second"),
        device="cpu", provenance=runs.provenance("cpu", commit=commit),
        parameters={"hidden": asdict(p), "output": asdict(q)}, specific=runs._plain(specific))
    runs.save_record(record, out / "tier_record.json")
    record = runs.load_record(out / "tier_record.json", tier="brian_stdp")  # as JSON has it
    details["results"] = results
    return record, details


def ablations(profile, details: dict, *, out_dir: str | os.PathLike, variants: dict,
              n_validation: int, seed: int = 2026, progress: bool = True) -> dict:
    """Output-layer variants on the trained network's features, scored on validation images.

    ``details`` is :func:`run_tier`'s. Each variant is a dict of
    :class:`~.output.PopulationParams` fields that replace the tier's
    (``{"neurons_per_class": 1}``, ``{"prediction": "none"}``, ...); it learns from the
    same training features for the same epochs (on Linux the variants learn side by side,
    one process per core), and is scored on ``n_validation``
    images of the validation split (spread over the split; their spike counts are
    cached in ``features_stdp_validation.npz``). The tier's own output layer is scored
    on them too, as ``"the tier's output layer"``. Results are cached in
    ``ablations.json``. Returns ``{name: {"validation_accuracy", "train_accuracy",
    "wall_s", "changes"}}``. The test set is not read.
    """
    from ...progress import tqdm

    from ... import data

    where = "ablations"
    _profile_section(profile, "brian_stdp", where)
    check.positive_int("n_validation", n_validation, where=where)
    check.instance("out_dir", out_dir, (str, os.PathLike), where=where)
    check.integer("seed", seed, low=0, where=where)
    check.flag("progress", progress, where=where)
    needed = ("params", "output_params", "retina", "layers", "features", "labels", "readouts")
    if not isinstance(details, dict) or any(k not in details for k in needed):
        raise TypeError(f"{where}: details must be run_tier's details dict (with {list(needed)}), "
                        f"got {type(details).__name__}"
                        + (f" lacking {[k for k in needed if k not in details]}"
                           if isinstance(details, dict) else ""))
    check.instance("variants", variants, dict, where=where, what="a dict {name: {field: value}}")
    fields = set(PopulationParams.__dataclass_fields__)
    for name, changes in variants.items():
        check.instance(f"variants[{name!r}]", changes, dict, where=where,
                       what="a dict of PopulationParams fields")
        unknown = set(changes) - fields
        if unknown:
            raise ValueError(f"{where}: variants[{name!r}]: {sorted(unknown)} are not "
                             "PopulationParams fields.")
        try:  # a bad value is refused now, not after the features are computed
            replace(details["output_params"], **changes)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: variants[{name!r}]: {err}") from None
    out = Path(out_dir)
    p, q = details["params"], details["output_params"]
    train = data.load_cifar10("train")
    _, val = data.validation_split(train.labels)
    val = val[::max(1, len(val) // n_validation)][:n_validation]
    x_val = details["retina"].intensities(data.to_grayscale(train.images[val]))
    y_val = train.labels[val]
    f_val = _features(out, "stdp", "validation", p, details["layers"]["stdp"], x_val, seed=seed,
                      progress=progress)

    f_train, y_train = _both(details["features"]["stdp"]["train"]), details["labels"]["train"]
    key = runs.cache_key(q, seed, variants, f_train, _both(f_val), version=OUTPUT_VERSION)
    path = out / "ablations.json"
    if path.exists():
        import json

        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                return saved["results"]
        except (ValueError, OSError):
            pass
    main, x_val = details["readouts"]["stdp"], _both(f_val)
    results = {"the tier's output layer": {
        "validation_accuracy": float(np.mean(main.predict(x_val, seed=seed) == y_val)),
        "train_accuracy": main.history["train_accuracy"], "wall_s": None, "changes": {}}}

    def variant(name, report):
        start = time.perf_counter()
        changes = variants[name]
        ro = PopulationReadout(replace(q, **changes), f_train.shape[1], seed=seed)
        history = ro.fit(f_train, y_train)
        acc = float(np.mean(ro.predict(x_val, seed=seed) == y_val))
        report(1)
        return {"validation_accuracy": acc, "train_accuracy": history["train_accuracy"],
                "wall_s": time.perf_counter() - start, "changes": changes}

    # each variant simulates on one core: on Linux they learn side by side, one per core
    n = N._feature_workers(None, len(variants))
    with tqdm(total=len(variants), disable=not progress, desc="output variants",
              unit="variant") as bar:
        if n > 1:
            results.update(_side_by_side(list(variants), variant, workers=n, report=bar.update))
        else:
            for name in variants:
                results[name] = variant(name, bar.update)
    runs.save_json(path, {"key": key, "validation_images": len(val), "results": results})
    return results
