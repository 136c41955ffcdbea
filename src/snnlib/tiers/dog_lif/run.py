"""Tier 2, the pipeline: the STDP layer and its random twin, their features, the readouts; resumable.

:func:`run_tier` is what ``python -m snnlib run dog_lif`` and chapter 5 call;
it writes the tier's :class:`snnlib.runs.TierRecord`.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from ... import _validate as check
from ... import retina as R
from ... import runs
from .. import _profile_section
from .layer import IMAGE_PX, DoGLIF, DoGLIFParams, features_together, spike_statistics
from .record import to_record

__all__ = ["CHOSEN_ON", "READOUT_BACKEND", "READOUT_CS", "READOUT_MAX_ITER", "params_for_profile",
           "run_tier"]

READOUT_CS = (0.001, 0.003, 0.01)
"""Inverse regularisation strengths the readouts choose from (on a held-out fifth).

0.001 was added after the record with push-pull inhibition chose 0.003, the grid's edge, for
both layers: on that run's held-out fifth the random twin scored 67.96% at 0.001 against
66.20% at 0.003, the STDP layer 72.18% and 72.12% (``benchmarks/dog_lif_run_readouts.py``).
Fitted in float32 with at most ``READOUT_MAX_ITER`` L-BFGS iterations: in the
full-profile record the readout of 50,000 x 4,608 STDP features took 176 s in all
(PyTorch's L-BFGS, the three Cs on a fifth and the final fit; C = 0.001, 216 iterations).
Larger Cs need many more iterations: with 256 filters and scikit-learn's L-BFGS in
float64, three Cs up to 0.1 had not finished the four readouts after 50 minutes."""
READOUT_MAX_ITER = 1000
READOUT_BACKEND = "torch"
"""The readouts' L-BFGS (:func:`snnlib.readout.logistic_regression`'s ``backend``): PyTorch's
on every core, 2.1 times faster than scikit-learn's on 40,000 x 3,072 pixels for the same
optimum (``benchmarks/readout_backends.py``)."""

CHOSEN_ON = {
    "split": "validation: the last 500 training images of each class (snnlib.data.validation_split)",
    "layer (retina, pooling grid, filters, step length)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000: logistic regression on the "
        "pooled spike counts, validation accuracy",
    "filters and steps per image (512, 30)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000: 62.6% against 60.4% for 256 "
        "and 15, 61.6% for 512 and 15, 61.9% for 256 and 30, 62.4% for 1024 and 15 (as fast "
        "as 512 and 30, twice the features), 63.2% for 1024 and 30 (half the speed, beyond "
        "the 90-minute budget of the full run); with --train 20000 --val 5000, at the tier's "
        "cost per image: 67.8% against 66.9% for 1024 and 15 and 66.9% for 256 and 60, and "
        "68.1% for 1024 and 30 (twice the cost)",
    "the whitening retina's regularisers (norm_eps 0.01, zca_eps 0.1)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000: 62.6% against 61.8%, 63.1% "
        "and 61.5% for norm_eps 0.003, 0.03 and 0.1, and 62.0%, 62.0% and 60.8% for zca_eps "
        "0.03, 0.3 and 1; with --train 20000 --val 5000: 67.8% against 67.0% for norm_eps "
        "0.03 and 67.8% for zca_eps 0.3",
    "every neuron's spikes counted (k_winners 0)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --set k_winners=32 (and =16): "
        "63.55% (63.55%) against 62.6% for every neuron's count; with --train 20000 --val 5000 "
        "--set k_winners=32 --cs 0.001 0.003 0.01 --mirror: 67.34% (C 0.001; 69.22% with the "
        "mirror images) against 67.8% (68.9% with them, --mirror); --cs 0.0003 0.001 chose 0.001 "
        "again (67.34%)",
    "the readout learns from the training images alone":
        "benchmarks/dog_lif_tuning.py --train 20000 --val 5000 --set steps=15 --mirror "
        "--mirror-train (half the steps, each training image's mirror image read out too): "
        "68.8% with the validation images' mirror images, against 68.9% with --mirror alone",
    "input rate and scale (300 Hz at the 99th percentile of the patches)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000: 62.6% against 61.4% at 450 Hz "
        "and 61.6% at the 95th percentile",
    "lateral inhibition (13 mV per spike of another neuron at the same position)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000: 62.6% against 63.2% at 6.5 mV "
        "and 62.6% at 26 mV; with --train 20000 --val 5000: 67.8% at 6.5 mV, as for 13 mV",
    "training patches (100,000; the book profile 50,000)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000: 62.6% for 100,000, 62.4% for "
        "50,000, 61.2% for 300,000 (61.7% with a_plus halved)",
    "push-pull inhibition (push_pull 1)":
        "benchmarks/dog_lif_tuning.py --train 20000 --val 5000 --set push_pull=1: 69.88% "
        "(C 0.003; 69,031 layer spikes per image), against 67.8% with --set push_pull=0, the "
        "layer every other entry here was measured with (add push_pull=0 to their --set to "
        "repeat them); regular input spikes in place of Poisson ones (input_code=regular, "
        "without push-pull) scored 67.78%",
    "logistic regression's C": "a stratified fifth of the training images (READOUT_CS); 0.001 "
        "joined the grid when both layers of the full run chose its lowest C, 0.003 (on that "
        "fifth: random twin 67.96% at 0.001, 66.20% at 0.003)",
    "the pooled counts as they are (no transform, one grid)":
        "benchmarks/dog_lif_run_readouts.py on the full run's training features, scored on "
        "the readout's held-out fifth (C 0.01): 69.88%, against 69.76% with square roots, "
        "69.97% with the whole image's counts added (5,120 features) and 70.24% with both",
    "mirror images at test (full profile: profile.dog_lif.mirror_test)":
        "benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --mirror: 63.7% with each "
        "validation image's class probabilities averaged with its mirror image's, against "
        "62.6% from the same fit without them (twice the test images' simulation)",
}
"""What chose each design parameter (the record keeps this as ``specific["chosen_on"]``)."""


def params_for_profile(profile) -> DoGLIFParams:
    """The tier's parameters at a profile's size (``profile.dog_lif``: filters, training patches)."""
    _profile_section(profile, "dog_lif", "dog_lif.params_for_profile")
    return DoGLIFParams(n_filters=profile.dog_lif.filters,
                        train_patches=profile.dog_lif.train_patches)


LAYER_VERSION = 1
"""Part of every trained layer's cache key: raised when :meth:`DoGLIF.fit` changes."""


def _layer(out: Path, name: str, params: DoGLIFParams, images: np.ndarray, *, seed: int,
           progress: bool, device: str = "cpu", retina=None) -> DoGLIF:
    """The layer trained (``stdp``) or with random weights (``random``), cached in ``out/layer_NAME.npz``.

    The cache is keyed on the parameters that change learning (all but ``drive_dtype``,
    ``k_winners`` and ``time_windows``), the seed and every training image.
    """
    net = DoGLIF(params, seed=seed, learn=(name == "stdp"), device=device)
    # neither the drive's dtype nor the features' k winners or time windows change learning:
    # one trained layer serves every value of them
    key = runs.cache_key(replace(params, drive_dtype="float32", k_winners=0, time_windows=1),
                         seed, name, images, version=LAYER_VERSION)
    path = out / f"layer_{name}.npz"
    saved = runs.cached_npz(path, key)
    if saved is not None:
        saved.pop("key")
        net.load_state_dict(saved)
        return net
    net.fit(images, progress=progress, retina=retina)
    runs.save_npz(path, key=np.array(key), **net.state_dict())
    return net


def run_tier(profile, *, out_dir: str | os.PathLike, seed: int = 2026, device: str | None = None,
             params: DoGLIFParams | None = None, progress: bool = True
             ) -> tuple[runs.TierRecord, dict]:
    """Tier 2 at a profile's size, with its baselines measured in the same run; resumable.

    1. The layer learns from random patches of the training images (STDP);
       the same layer with random weights adapts only its thresholds.
    2. Pooled spike counts of both for the training and test images
       (checkpointed every 2000 images in ``out_dir``), the two layers simulated together
       on the same input spikes (:func:`.layer.features_together`).
    3. Logistic regression (:func:`snnlib.readout.logistic_regression`) on
       the STDP features (the tier), on the random-weight features, on the
       raw RGB pixels and on the colour-opponent DoG responses of the pixels.

    Sizes: ``10 x profile.n_train_per_class`` training and ``10 x
    n_test_per_class`` test images, class-balanced (all 50,000 and 10,000
    for ``full``); ``profile.dog_lif`` (filters, training patches).

    ``device`` (default ``$SNNLIB_DEVICE`` or ``"cpu"``): where the layer
    learns and runs (the retina and the readouts run on the CPU).

    Writes ``out_dir/tier_record.json`` (:class:`snnlib.runs.TierRecord`) and
    returns ``(record, details)``: the record and, for the chapter, the
    networks, features, labels and predictions.
    """
    from ... import data, metrics, readout

    where = "dog_lif.run_tier"
    _profile_section(profile, "dog_lif", where)
    check.instance("out_dir", out_dir, (str, os.PathLike), where=where)
    check.integer("seed", seed, low=0, where=where)
    check.instance("params", params, DoGLIFParams, none=True, where=where)
    check.flag("progress", progress, where=where)
    device = runs.get_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = params if params is not None else params_for_profile(profile)
    t_start = time.perf_counter()
    commit = runs.git_commit()
    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    # balanced_subset groups its indices by class; the retina is fitted on the first
    # 2000 training images, so those are shuffled (all 50,000 keep CIFAR's own order)
    itr = (np.arange(len(train)) if profile.n_train_per_class is None
           else np.random.default_rng(seed).permutation(
               data.balanced_subset(train.labels, profile.n_train_per_class, seed=seed)))
    ite = (np.arange(len(test)) if profile.n_test_per_class is None
           else data.balanced_subset(test.labels, profile.n_test_per_class, seed=seed))
    x_train, y_train = train.images[itr], train.labels[itr]
    x_test, y_test = test.images[ite], test.labels[ite]

    mirror = profile.dog_lif.mirror_test
    splits = [("train", x_train), ("test", x_test)]
    if mirror:  # each test image's left-right mirror image, read out with it
        splits.append(("test_mirrored", np.ascontiguousarray(x_test[:, :, ::-1])))
    wall, nets, feats, extraction = {}, {}, {}, {}
    for name in ("stdp", "random"):
        start = time.perf_counter()
        # the twin takes the layer's retina (the one it would fit itself): the same input
        # spikes, so that the two are simulated together
        nets[name] = _layer(out, name, params, x_train, seed=seed, progress=progress,
                            device=device, retina=nets["stdp"].retina if nets else None)
        wall[f"layer_{name}"] = float(nets[name].history.get("wall_s", time.perf_counter() - start))
        feats[name], extraction[name] = {}, {}
    for k, (split, x) in enumerate(splits):
        # both layers on the same input spikes, simulated together (each charged half the time)
        both = features_together(list(nets.values()), x, seed=seed + 1 + k, progress=progress,
                                 checkpoints=[out / f"features_{name}_{split}" for name in nets],
                                 desc=f"tier 2, features of both layers, {split}")
        for name, f in zip(nets, both):
            feats[name][split], extraction[name][split] = f["features"], f
            # None: every part was loaded from a checkpoint that carries no time
            wall[f"features_{name}_{split}"] = f["wall_s"] if f["wall_s"] or not len(x) else None

    start = time.perf_counter()
    images = dict(splits)
    # each readout's features of a split: the training images, the test images and (where
    # the profile asks for them) the test images' mirror images, read out with them
    fits = {
        "the tier: STDP layer's spike counts": lambda split: feats["stdp"][split],
        "random-weight layer's spike counts": lambda split: feats["random"][split],
        "raw pixels (RGB)": lambda split: images[split].reshape(len(images[split]), -1) / 255.0,
        "colour-opponent DoG of the pixels": lambda split: _dog_pixels(images[split], params),
    }
    results = {}
    for label, features in fits.items():
        ftr, fte = features("train"), features("test")
        views = [features("test_mirrored")] if mirror else []
        s = time.perf_counter()
        results[label] = readout.logistic_regression(ftr, y_train, fte, y_test, cs=READOUT_CS,
                                                     seed=seed, dtype=np.float32,
                                                     max_iter=READOUT_MAX_ITER,
                                                     backend=READOUT_BACKEND,
                                                     test_views=views)
        results[label]["wall_s"] = time.perf_counter() - s
    wall["readouts"] = time.perf_counter() - start
    wall["this_call"] = time.perf_counter() - t_start

    tier_label = "the tier: STDP layer's spike counts"
    summary = metrics.classification_summary(y_test, results[tier_label]["predictions"])
    speed = {n: [extraction[n][s]["images_per_s"] for s in ("train", "test")] for n in nets}
    measured = {
        "tier": "dog_lif",
        "profile": profile.name,
        "accuracy": summary["accuracy"],
        "per_class_accuracy": summary["per_class_accuracy"],
        "confusion": summary["confusion"],
        "class_names": list(data.CLASS_NAMES),
        "baselines": {
            "logistic regression, random-weight layer's spike counts":
                results["random-weight layer's spike counts"]["accuracy"],
            "logistic regression, raw pixels (RGB)": results["raw pixels (RGB)"]["accuracy"],
            "logistic regression, colour-opponent DoG of the pixels":
                results["colour-opponent DoG of the pixels"]["accuracy"],
            "chance": 0.1,
        },
        "readout_details": {k: {"c": v["c"], "validation": v["validation"], "wall_s": v["wall_s"],
                                "lbfgs_iterations": v["iterations"],
                                **({"accuracy_without_mirror_images": v["accuracy_test_x_alone"]}
                                   if mirror else {})}
                            for k, v in results.items()},
        "test_views": ("each test image and its left-right mirror image: the readout's class "
                       "probabilities averaged over the two" if mirror
                       else "each test image alone"),
        "seed": seed,
        "dataset": data.dataset_name(train.source),
        "train_images": len(itr),
        "test_images": len(ite),
        "features_per_image": params.n_features,
        "chosen_on": CHOSEN_ON,
        "parameters": asdict(params),
        "wall_s": wall,
        "images_per_s": {
            "what": "stdp_training_patches_per_s: the learning loop alone (patches shown "
                    "per second); feature_extraction: images per second over the train "
                    "and test images (their mean), the two layers simulated together on the "
                    "same input spikes and each charged half of that time",
            "layers_together": True,
            "stdp_training_patches_per_s": float(nets["stdp"].history["patches_per_s"]),
            "feature_extraction": {n: float(np.nanmean(v)) if not np.isnan(v).all() else None
                                   for n, v in speed.items()},
        },
        "synaptic_operations_per_image": {
            "what": "feed-forward synaptic events per test image: input spikes x filters "
                    "(every input spike reaches the n_filters neurons of its position)"
                    + ("; the image and its mirror image" if mirror else ""),
            **{n: sum(extraction[n][split]["synaptic_ops_per_image"]
                      for split in ("test", "test_mirrored")[:1 + mirror]) for n in nets}},
        "spike_statistics": {n: spike_statistics(extraction[n]["test"]["filter_spikes"], params)
                             for n in nets},
        "stdp_training": {n: {"no_winner_last_batch": float(nets[n].history["no_winner"][-1]),
                              "wins_cv_last_batch": float(nets[n].history["wins_cv"][-1])}
                          for n in nets},
    }
    record = to_record(measured, device=device, provenance=runs.provenance(device, commit=commit))
    runs.save_record(record, out / "tier_record.json")
    details = {"nets": nets, "features": feats, "results": results, "train_labels": y_train,
               "test_labels": y_test, "train_index": itr, "test_index": ite,
               "test_images": x_test, "extraction": extraction}
    return record, details


def _dog_pixels(images: np.ndarray, p: DoGLIFParams, batch: int = 2000) -> np.ndarray:
    """The colour-opponent DoG responses ``(N, 3 * 32 * 32)`` of uint8 images (a baseline's features)."""
    out = [R.colour_opponent(torch.from_numpy(images[i:i + batch]).float() / 255.0, p.dog)
           .flatten(1).numpy() for i in range(0, len(images), batch)]
    return np.concatenate(out) if out else np.zeros((0, 3 * IMAGE_PX ** 2), np.float32)
