"""Tier 3, the pipeline: train the CNN, convert it, simulate it, fine-tune a QCFS copy; resumable.

:func:`run_tier` is what ``python -m snnlib run conversion`` and chapter 6
call; it writes the tier's :class:`snnlib.runs.TierRecord`.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, replace

import numpy as np
import torch

from ... import _validate as check
from ... import runs
from .. import _profile_section
from .cnn import (QCFS_INIT_PERCENTILE, QCFS_LEVELS, QCFS_MAX_LR, TRAIN_VERSION, ConvNet,
                  ConvNetParams, TrainParams, _evaluate_cnn, evaluate_cnn, fold_batchnorm,
                  images_to_tensor, train_cnn)
from .convert import (CHANNEL_PERCENTILE, PERCENTILE, PERCENTILES, QCFS_BURST,
                      QCFS_CALIBRATION_ROUNDS, QCFS_CALIBRATION_STEPS, QCFS_SHORT_STEPS,
                      QCFS_SIGNED, QCFS_V0, SIM_VERSION, STEPS_ANALYSED, _fed_layers,
                      calibrate_biases, normalise, qcfs_from_relu, simulate_parts,
                      smallest_steps_within)
from .numerics import fingerprint, numerics_for_profile, numerics_in_use, numerics_scope
from .record import rounds_clause, spiking_layer_names, to_record

__all__ = ["CHANNEL_VARIANT", "HALF_VARIANT", "params_for_profile", "run_tier"]

HALF_VARIANT = f"analog, p{CHANNEL_PERCENTILE:g}, v0 = 0.5"
"""The variant normalised layer by layer at :data:`.convert.CHANNEL_PERCENTILE`, its neurons
starting half-way to their threshold (``v0 = 0.5``)."""
CHANNEL_VARIANT = f"analog, p{CHANNEL_PERCENTILE:g}, channel-wise, v0 = 0.5"
"""The same, normalised channel by channel (``normalise(channel_wise=True)``)."""


WHITENED_NET = {"pool": "max", "pool_first": True, "bn_scale": False, "logit_scale": 1 / 9,
                "bn_momentum": 0.4, "bn_eps": 1e-12, "global_max": True}
"""The ``"whitened"`` design's network beyond its widths, pools and whitening layer: as in
airbench (Jordan 2024), each 2 x 2 max pool sits between a convolution and its batch norm
(it pools currents; :class:`.convert.SpikingMaxPool` passes on the growth of the largest
running sum, so the charge is exact), the batch norms learn only their shifts (averages
updated with momentum 0.4), the last 3 x 3 map is max-pooled and the logits are divided by 9.
Row M of ``results/cnn_techniques.json``, the highest validation accuracy of its 5-epoch rows
(86.14%; row J, max pooling after the activation with PyTorch's batch norms and one-cycle
training, 85.86%; row L, M with a global average pool, 84.28%)."""


WHITENED_TRAINING = {"batch_size": 1024, "max_lr": 1.5, "weight_decay": 0.00133,
                     "momentum": 0.85, "cycle_momentum": False, "warmup": 0.23,
                     "label_smoothing": 0.2, "translate_px": 2, "alternate_flips": True,
                     "bias_lr_scale": 64.0, "lookahead": True, "schedule": "airbench",
                     "optimizer": "muon"}
"""The ``"whitened"`` design's training (beyond :class:`TrainParams`' defaults): airbench's,
in batches of 1,024 with Nesterov momentum 0.85, a learning rate of 1.5 (batch-norm biases 64
times faster) rising from a fifth of it over 23% of the steps and falling to 0, weight decay
0.00133 (a decay of 0.2% of each weight per step at the peak), label smoothing 0.2, crops of
at most 2 pixels with alternating flips and Lookahead (row M of
``results/cnn_techniques.json``, with :data:`WHITENED_NET`), and the convolutions' filters
trained by Muon (:mod:`.muon`; peak learning rate 0.17 and momentum 0.6, airbench's Muon
recipe for batches of 2,000 with its rate divided by the square root of 2 for batches half
as large; at 0.24, 8 epochs reached 89.16%, within the noise of 0.17's 89.00%). The full
profile trains it for 8 epochs, what fits in its 15 minutes of training on two CPU cores
of about 100 s an epoch on 45,000 images: on the validation split, 8 epochs with Muon
reached 89.00% in 13.1 minutes (90.30% with six views; row "M, 8 epochs, filters trained
with Muon ..."), where 8 epochs of M with SGD reached 88.50% in 13.3 minutes (89.32%;
row "M, 8 epochs"), both on the same machine the same day. M with SGD for 17 epochs reached
90.08% (row "M, 17 epochs"), twice the training time."""


WHITENED_QCFS_MAX_LR = 0.1
"""Peak learning rate of the ``"whitened"`` design's QCFS fine-tuning (on its training's
schedule, batch-norm biases 64 times faster); the other designs use :data:`.cnn.QCFS_MAX_LR`. Chosen on the
validation split as the one whose signed spiking copy was most accurate at T = 4: row "M, 17
epochs" fine-tuned for 2 epochs at 0.05 / 0.1 / 0.2 / 0.4 reached 87.56 / 87.92 / 87.86 / 87.06%
at T = 4 and 88.80 / 89.08 / 88.96 / 88.04% at T = 8 (QCFS CNNs 88.82 / 88.92 / 88.70 /
87.66%; one standard error on 5,000 images is about 0.47 points). Checked again with the bias
calibration the tier now makes (for T = 4, in 2 rounds): 0.05 / 0.1 / 0.2 gave 88.64 / 88.98 /
88.32% at T = 4 and 89.38 / 89.26 / 89.16% at T = 8 (rows "..., biases calibrated in
rounds")."""


def params_for_profile(profile, device: str = "cpu") -> tuple[ConvNetParams, TrainParams]:
    """The CNN and its training at a profile's size (``profile.conversion``: ``width``,
    ``epochs`` and ``design``).

    ``design="vgg"``: convolutions of :math:`(w, w, 2w, 2w, 4w, 4w)` channels
    (:math:`w` = ``width``), average-pooled after the 2nd, 4th and 6th, flattened
    into the linear layer; :class:`TrainParams`' defaults.

    ``design="whitened"`` (after airbench, Jordan 2024): a fixed patch-whitening
    layer of 2 x 2 patches with ON and OFF copies, convolutions of
    :math:`(w, w, 4w, 4w, 4w, 4w)` channels starting as identities, max-pooled
    after the 1st, 3rd and 5th and over the last map (:data:`WHITENED_NET`); trained
    with :data:`WHITENED_TRAINING`.

    Training is in float32 at the ``ci`` and ``book`` profiles (reproducible
    arithmetic, :func:`.numerics.numerics_for_profile`) and in bfloat16
    autocast at ``full`` where ``device`` supports it (:func:`bf16_supported`).
    """
    _profile_section(profile, "conversion", "conversion.params_for_profile")
    sizes = profile.conversion
    w = sizes.width
    bf16 = numerics_for_profile(profile, device).bf16
    if sizes.design == "whitened":
        return (ConvNetParams(widths=(w, w, 4 * w, 4 * w, 4 * w, 4 * w), pool_after=(0, 2, 4),
                              whitening_px=2, global_pool=True, identity_init=True,
                              **WHITENED_NET),
                TrainParams(epochs=sizes.epochs, bf16=bf16, **WHITENED_TRAINING))
    return (ConvNetParams(widths=(w, w, 2 * w, 2 * w, 4 * w, 4 * w)),
            TrainParams(epochs=sizes.epochs, bf16=bf16))


def run_tier(profile, *, out_dir, seed: int = 2026, device: str | None = None,
             progress: bool = True) -> tuple[runs.TierRecord, dict]:
    """Tier 3 at a profile's size: train the CNN, convert it, simulate it; resumable.

    Sizes come from ``profile.conversion`` (``sizes`` below).

    1. The CNN (``sizes.width``) trains for ``sizes.epochs`` on
       ``sizes.train_images`` class-balanced images (all 50,000 for ``full``),
       checkpointed every epoch in ``out_dir/cnn.pt``.
    2. Batch norm is folded; the CNN's test accuracy and speed are measured.
    3. The network is normalised on 1,000 training images at each of
       ``PERCENTILES`` and simulated with analog input for ``sizes.steps``
       steps: the tier (``PERCENTILE``) on ``sizes.snn_images`` test images,
       the others, Poisson input, and two copies at ``CHANNEL_PERCENTILE`` whose neurons
       start half-way to their threshold, normalised layer by layer (``HALF_VARIANT``) and
       channel by channel (``CHANNEL_VARIANT``), on the first ``sizes.variant_images`` of
       them. Simulations are checkpointed in parts.
    4. The CNN is fine-tuned with clip-floor-shift activations
       (:func:`qcfs_from_relu`, ``sizes.qcfs_epochs``, checkpointed in
       ``out_dir/cnn_qcfs.pt``), converted with its trained thresholds and
       simulated with signed IF neurons (``QCFS_SIGNED``) that fire bursts of up to
       ``QCFS_BURST`` spikes a step, starting at
       ``v0 = 0.5``, for ``sizes.qcfs_steps`` on the tier's test images; then its
       biases are calibrated for ``QCFS_CALIBRATION_STEPS`` steps in
       ``QCFS_CALIBRATION_ROUNDS`` rounds on the normalisation's training images
       (:func:`calibrate_biases`, cached in
       ``out_dir/qcfs_calibration.npz``), and the calibrated network, the
       tier's spiking copy, is simulated the same way (and, when that runs in
       bfloat16, in float32 on the variant images); then again for each T of
       ``QCFS_SHORT_STEPS`` on its own, so that the operations per image at
       those T are counted.

    ``device`` (default ``$SNNLIB_DEVICE`` or ``"cpu"``): where the CNN
    trains and the spiking network is simulated.

    The arithmetic is the profile's (:func:`.numerics.numerics_for_profile`),
    applied for the call (:func:`.numerics.numerics_scope`): at ``ci`` and
    ``book``, float32 with fixed threads, deterministic algorithms and capped
    CPU kernels, so that every number of the record except the wall times
    and speeds is the same on every x86-64 machine with AVX2, and caches made
    with other arithmetic are recomputed; at ``full``, bfloat16 where the
    device has it (then the record also measures the bfloat16 CNN and
    simulates the variant images in float32, so that what the rounding costs
    is measured, not assumed). Training runs a fixed number of epochs, never
    a time budget.

    Writes ``out_dir/tier_record.json`` (:class:`snnlib.runs.TierRecord`);
    returns ``(record, details)``: the record and, for the chapter, the
    networks, simulations and test images.
    """
    import os

    where = "conversion.run_tier"
    _profile_section(profile, "conversion", where)
    check.instance("out_dir", out_dir, (str, os.PathLike), where=where)
    check.integer("seed", seed, low=0, where=where)
    check.flag("progress", progress, where=where)
    device = runs.get_device(device)
    numerics = numerics_for_profile(profile, device)
    with numerics_scope(numerics):
        return _run_tier(profile, out_dir=out_dir, seed=seed, device=device, progress=progress,
                         numerics=numerics)


def _run_tier(profile, *, out_dir, seed: int, device: str, progress: bool, numerics):
    """:func:`run_tier` after its checks, inside its numerics."""
    import time
    from pathlib import Path

    from ... import data, metrics

    where = "conversion.run_tier"
    sizes = profile.conversion
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    commit = runs.git_commit()
    t_start = time.perf_counter()
    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    rng = np.random.default_rng(seed)
    itr = (np.arange(len(train)) if sizes.train_images is None
           else rng.permutation(data.balanced_subset(train.labels,
                                                     sizes.train_images // 10, seed=seed)))
    # balanced_subset sorts by class: shuffled, so that the first images (simulated
    # by the variants) hold every class; all 10,000 keep CIFAR's own order
    ite = (np.arange(len(test)) if profile.n_test_per_class is None
           else rng.permutation(data.balanced_subset(test.labels, profile.n_test_per_class,
                                                     seed=seed)))
    y_train, y_test = train.labels[itr], test.labels[ite]
    cp, tp = params_for_profile(profile, device)
    # bfloat16 simulation where the profile's numerics have it (full, on a CPU with
    # bfloat16 units: about 1.8 times faster, benchmarks/conversion_speed.py); such a
    # run then also simulates its variant images in float32, so that what the rounding
    # costs is measured, not assumed
    snn_bf16 = tp.bf16
    torch.manual_seed(seed)
    model = ConvNet(cp)
    history = train_cnn(model, train.images[itr], y_train, tp, seed=seed,
                        checkpoint=out / "cnn.pt", progress=progress, restart_stale=True,
                        device=device, numerics=numerics)
    model.cpu()
    folded = fold_batchnorm(model)
    on_device = folded if device == "cpu" else copy.deepcopy(folded).to(device)
    x_test = images_to_tensor(test.images[ite])
    # checked once here; the timed calls below do not check again
    evaluate_cnn(on_device, x_test[:500], y_test[:500])  # warm-up: oneDNN sets up on first use
    check.array("test images", x_test, low=0.0, high=1.0, where=where)
    start = time.perf_counter()
    cnn = _evaluate_cnn(on_device, x_test, y_test)
    cnn_wall = time.perf_counter() - start
    # airbench's multi-crop evaluation: logits averaged over six views of each image
    cnn_tta = _evaluate_cnn(on_device, x_test, y_test, tta=True)["accuracy"]
    cnn_bf16 = None
    if not numerics.reproducible:  # its speed and accuracy depend on the CPU's bfloat16 units
        with runs.autocast(device, True):
            _evaluate_cnn(on_device, x_test[:500], y_test[:500])
            start = time.perf_counter()
            cnn_bf16 = _evaluate_cnn(on_device, x_test, y_test)
        cnn_bf16 = {"accuracy": cnn_bf16["accuracy"],
                    "images_per_s": len(x_test) / (time.perf_counter() - start)}

    calibration = images_to_tensor(train.images[itr[:1000]])
    nets, lambdas = {}, {}
    for pct in PERCENTILES:
        nets[pct], lambdas[pct] = normalise(folded, calibration, percentile=pct)
    n_snn = len(ite) if sizes.snn_images is None else min(len(ite), sizes.snn_images)
    n_var = min(n_snn, sizes.variant_images)
    steps = [t for t in STEPS_ANALYSED if t < sizes.steps] + [sizes.steps]
    sims = {"analog, p99.99": simulate_parts(
        nets[PERCENTILE], x_test[:n_snn], y_test[:n_snn], steps=steps, seed=seed,
        folder=out / "snn_analog_p99.99", bf16=snn_bf16, progress=progress,
        desc="tier 3, SNN (analog input)", device=device, numerics=numerics)}
    variants = {}
    for pct in PERCENTILES:
        if pct != PERCENTILE:
            variants[f"analog, p{pct:g}"] = simulate_parts(
                nets[pct], x_test[:n_var], y_test[:n_var], steps=steps, seed=seed,
                folder=out / f"snn_analog_p{pct:g}", bf16=snn_bf16, progress=progress,
                desc=f"tier 3, SNN (normalised at p{pct:g})", device=device,
                numerics=numerics)
    variants["poisson, p99.99"] = simulate_parts(
        nets[PERCENTILE], x_test[:n_var], y_test[:n_var], steps=steps, input="poisson",
        seed=seed, folder=out / "snn_poisson_p99.99", bf16=snn_bf16, progress=progress,
        desc="tier 3, SNN (Poisson input)", device=device, numerics=numerics)
    # every neuron starting half-way to its threshold, normalised layer by layer (one of the
    # networks above), then channel by channel
    half_nets = {HALF_VARIANT: ("", nets[CHANNEL_PERCENTILE]),
                 CHANNEL_VARIANT: ("channels_", normalise(
                     folded, calibration, percentile=CHANNEL_PERCENTILE, channel_wise=True)[0])}
    for name, (folder, half_net) in half_nets.items():
        variants[name] = simulate_parts(
            half_net, x_test[:n_var], y_test[:n_var], steps=steps, seed=seed, v0=0.5,
            folder=out / f"snn_analog_p{CHANNEL_PERCENTILE:g}_{folder}v0.5", bf16=snn_bf16,
            progress=progress, desc=f"tier 3, SNN ({name})", device=device, numerics=numerics)
    if snn_bf16:
        variants["analog, p99.99, float32"] = simulate_parts(
            nets[PERCENTILE], x_test[:n_var], y_test[:n_var], steps=steps, seed=seed,
            folder=out / "snn_analog_p99.99_float32", bf16=False, progress=progress,
            desc="tier 3, SNN (float32 check)", device=device, numerics=numerics)
    # 5. quantisation-aware fine-tuning from the trained CNN, then the same conversion
    # with the trained thresholds as lambda and neurons starting half-way (v0 = 0.5)
    # (its own seed, so that its shuffles and crops do not repeat the CNN's first epochs)
    q_model = qcfs_from_relu(model, calibration, seed=seed)
    # (every weight by SGD, even where the CNN's filters trained with Muon: its peak learning
    # rates were chosen for SGD)
    q_tp = replace(tp, epochs=sizes.qcfs_epochs, optimizer="sgd",
                   max_lr=WHITENED_QCFS_MAX_LR if sizes.design == "whitened" else QCFS_MAX_LR)
    q_history = train_cnn(q_model, train.images[itr], y_train, q_tp, seed=seed + 1,
                          checkpoint=out / "cnn_qcfs.pt", progress=progress, restart_stale=True,
                          init_key=runs.cache_key(q_model, QCFS_LEVELS, version=TRAIN_VERSION),
                          device=device, numerics=numerics)
    q_model.cpu()
    q_folded = fold_batchnorm(q_model)
    q_cnn = evaluate_cnn(q_folded, x_test, y_test)
    q_net, q_lambdas = normalise(q_folded, calibration)
    q_steps = ([t for t in STEPS_ANALYSED if t < sizes.qcfs_steps]
               + [sizes.qcfs_steps])
    # (plain neurons in folders of their own names, signed ones in "_signed" folders, bursts
    # in "_burst" ones, so that a run directory made before keeps its simulations)
    tag = ("_signed" if QCFS_SIGNED else "") + (f"_burst{QCFS_BURST}" if QCFS_BURST > 1 else "")
    # what every simulation of the QCFS copy shares: its neurons, seed, device and arithmetic
    q_kw = dict(seed=seed, v0=QCFS_V0, signed=QCFS_SIGNED, burst=QCFS_BURST, device=device,
                numerics=numerics, progress=progress)
    q_raw = simulate_parts(q_net, x_test[:n_snn], y_test[:n_snn], steps=q_steps,
                           folder=out / f"snn_qcfs{tag}", bf16=snn_bf16,
                           desc="tier 3, SNN (fine-tuned QCFS, uncalibrated)", **q_kw)
    # bias calibration for few steps (Li et al. 2021), on the normalisation's training images
    q_net, q_corrections, q_cal_wall = _calibrated(
        q_net, calibration, out / "qcfs_calibration.npz", bf16=snn_bf16, device=device,
        numerics=numerics, progress=progress)
    tag += "_calibrated"
    q_sim = simulate_parts(q_net, x_test[:n_snn], y_test[:n_snn], steps=q_steps,
                           folder=out / f"snn_qcfs{tag}", bf16=snn_bf16,
                           desc="tier 3, SNN (fine-tuned QCFS)", **q_kw)
    # the few-step simulations on their own: operations counted over exactly T steps (their
    # accuracy is the long simulation's at T, since a neuron's first T steps do not depend
    # on how long the run goes on)
    q_short = {t: simulate_parts(q_net, x_test[:n_snn], y_test[:n_snn], steps=[t],
                                 folder=out / f"snn_qcfs{tag}_T{t}", bf16=snn_bf16,
                                 desc=f"tier 3, SNN (QCFS, T = {t})", **q_kw)
               for t in QCFS_SHORT_STEPS if t < q_steps[-1]}
    q_check = None
    if snn_bf16:  # the staircase's edges are what QCFS relies on: measure what bfloat16 moves
        q_check = simulate_parts(q_net, x_test[:n_var], y_test[:n_var], steps=q_steps,
                                 folder=out / f"snn_qcfs{tag}_float32", bf16=False,
                                 desc="tier 3, SNN (QCFS, float32 check)", **q_kw)
    main = sims["analog, p99.99"]
    cnn_on_snn = float(np.mean(cnn["predictions"][:n_snn] == y_test[:n_snn]))
    q_cnn_on_snn = float(np.mean(q_cnn["predictions"][:n_snn] == y_test[:n_snn]))
    cnn_on_var = float(np.mean(cnn["predictions"][:n_var] == y_test[:n_var]))
    t_max = steps[-1]
    ops = main["synaptic_ops_per_image"]
    layer_names = spiking_layer_names(asdict(cp))

    def confusion(y, predictions) -> dict:
        summary = metrics.classification_summary(y, predictions)
        return {k: summary[k] for k in ("per_class_accuracy", "confusion")}

    def firing(sim) -> dict:
        return {name: {"neurons": m, "spikes_per_image": s, "rate_per_step": r}
                for name, m, s, r in zip(layer_names, sim["neurons"], sim["spikes_per_image"],
                                         sim["rate_per_step"])}

    def operations(sim, what: str) -> dict:
        o = sim["synaptic_ops_per_image"]
        return {"what": what, "accumulates": o["accumulates"],
                "multiply_accumulates": o["multiply_accumulates"],
                "bias_additions": o["bias_additions"],
                "per_layer_accumulates": dict(zip(layer_names[1:] + ["output"],
                                                  o["per_layer_accumulates"]))}
    measured = {
        "tier": "conversion",
        "profile": profile.name,
        "cnn": {
            "accuracy": cnn["accuracy"],
            "accuracy_six_views": cnn_tta,
            "what_six_views": ("logits averaged over each image, its mirror image, and both "
                               "moved one pixel up-left and down-right (weights 1/4, 1/4, "
                               "1/8 x 4; tta_logits)"),
            "accuracy_on_snn_images": cnn_on_snn,
            "accuracy_on_variant_images": cnn_on_var,
            **confusion(y_test, cnn["predictions"]),
            "images_per_s": len(x_test) / cnn_wall,
            "bfloat16": cnn_bf16,
            "multiply_accumulates_per_image": ops["cnn_multiply_accumulates"],
            "training": {"epochs": tp.epochs, "wall_s": history["total_wall_s"],
                         "loss": history["loss"], "train_accuracy": history["train_accuracy"],
                         "epoch_wall_s": history["wall_s"]},
        },
        "snn": {
            "accuracy_vs_steps": {str(t): a for t, a in main["accuracy"].items()},
            "accuracy": main["accuracy"][t_max],
            "steps": t_max,
            "loss_vs_cnn_points": {str(t): 100 * (cnn_on_snn - a) for t, a in main["accuracy"].items()},
            "smallest_steps_within_1_point": smallest_steps_within(main["accuracy"], cnn_on_snn, 1.0),
            "smallest_steps_within_0.1_point": smallest_steps_within(main["accuracy"], cnn_on_snn, 0.1),
            **confusion(y_test[:n_snn], main["predictions"][t_max]),
            "images_per_s": main["images_per_s"],
            "what_images_per_s": f"images simulated for {t_max} steps per second",
            "firing": firing(main),
            "operations_per_image": operations(
                main, f"over {t_max} steps: accumulates (a spike crossing a synapse), "
                      "multiply-accumulates (the first layer takes the image as a current) "
                      "and bias additions (one per neuron and step)"),
        },
        "variants": {
            "images": n_var,
            "cnn_accuracy": cnn_on_var,
            "accuracy_vs_steps": {
                name: {str(t): a for t, a in r.items()} for name, r in
                [("analog, p99.99", {t: float(np.mean(p[:n_var] == y_test[:n_var]))
                                     for t, p in main["predictions"].items()})]
                + [(k, v["accuracy"]) for k, v in variants.items()]},
            "accumulates_per_image": {k: v["synaptic_ops_per_image"]["accumulates"]
                                      for k, v in variants.items()},
        },
        "qcfs": {
            "what": (f"the CNN fine-tuned for {q_tp.epochs} epochs (peak learning rate "
                     f"{q_tp.max_lr:g}) with clip-floor-shift "
                     f"activations of {QCFS_LEVELS} levels (thresholds starting at the "
                     f"{QCFS_INIT_PERCENTILE:g}th percentile of its activations), converted with "
                     f"the trained thresholds and simulated with "
                     f"{'signed IF neurons with memory' if QCFS_SIGNED else 'IF neurons'} "
                     + (f"that fire bursts of up to {QCFS_BURST} spikes a step, each worth "
                        f"1/{QCFS_BURST} of a plain neuron's threshold, "
                        if QCFS_BURST > 1 else "")
                     + f"starting at v0 = {QCFS_V0}, its biases calibrated for "
                     f"T = {QCFS_CALIBRATION_STEPS} on {len(calibration)} training images"
                     f"{rounds_clause(QCFS_CALIBRATION_ROUNDS)}"),
            "levels": QCFS_LEVELS, "init_percentile": QCFS_INIT_PERCENTILE, "v0": QCFS_V0,
            "signed": QCFS_SIGNED, "burst": QCFS_BURST,
            "training": {"epochs": q_tp.epochs, "max_lr": q_tp.max_lr,
                         "wall_s": q_history["total_wall_s"], "loss": q_history["loss"],
                         "train_accuracy": q_history["train_accuracy"],
                         "epoch_wall_s": q_history["wall_s"]},
            "cnn_accuracy": q_cnn["accuracy"],
            "cnn_accuracy_on_snn_images": q_cnn_on_snn,
            "bias_calibration": {
                "what": (f"each spiking layer's mean rate error per channel, over "
                         f"{len(calibration)} training images and {QCFS_CALIBRATION_STEPS} "
                         f"steps (with the same neurons), added to its bias, layer after layer"
                         f"{rounds_clause(QCFS_CALIBRATION_ROUNDS)} (calibrate_biases, after "
                         f"Li et al. 2021)"),
                "steps": QCFS_CALIBRATION_STEPS, "rounds": QCFS_CALIBRATION_ROUNDS,
                "images": len(calibration),
                "mean_abs_correction": dict(zip(layer_names, (float(e.abs().mean())
                                                              for e in q_corrections))),
                "max_abs_correction": dict(zip(layer_names, (float(e.abs().max())
                                                             for e in q_corrections))),
                "wall_s": q_cal_wall},
            "uncalibrated": {
                "accuracy_vs_steps": {str(t): a for t, a in q_raw["accuracy"].items()},
                "loss_vs_own_cnn_points": {str(t): 100 * (q_cnn_on_snn - a)
                                           for t, a in q_raw["accuracy"].items()},
                "loss_vs_relu_cnn_points": {str(t): 100 * (cnn_on_snn - a)
                                            for t, a in q_raw["accuracy"].items()},
                "wall_s": q_raw["wall_s"]},
            "thresholds": q_lambdas,
            "accuracy_vs_steps": {str(t): a for t, a in q_sim["accuracy"].items()},
            "steps": q_steps[-1],
            "loss_vs_own_cnn_points": {str(t): 100 * (q_cnn_on_snn - a)
                                       for t, a in q_sim["accuracy"].items()},
            "loss_vs_relu_cnn_points": {str(t): 100 * (cnn_on_snn - a)
                                        for t, a in q_sim["accuracy"].items()},
            "smallest_steps_within_1_point": smallest_steps_within(q_sim["accuracy"],
                                                                   q_cnn_on_snn, 1.0),
            "smallest_steps_within_0.1_point": smallest_steps_within(q_sim["accuracy"],
                                                                     q_cnn_on_snn, 0.1),
            "smallest_steps_within_1_point_of_relu_cnn": smallest_steps_within(
                q_sim["accuracy"], cnn_on_snn, 1.0),
            **confusion(y_test[:n_snn], q_sim["predictions"][q_steps[-1]]),
            "images_per_s": q_sim["images_per_s"],
            "what_images_per_s": f"images simulated for {q_steps[-1]} steps per second",
            "float32_check": None if q_check is None else {
                "what": ("the same calibrated network (its corrections measured in bfloat16) "
                         "simulated in float32"),
                "images": n_var,
                "bfloat16": {str(t): float(np.mean(p[:n_var] == y_test[:n_var]))
                             for t, p in q_sim["predictions"].items()},
                "float32": {str(t): a for t, a in q_check["accuracy"].items()}},
            "firing": firing(q_sim),
            "operations_per_image": operations(
                q_sim, f"over {q_steps[-1]} steps, counted as for the tier"),
            "short_simulations": {
                str(t): {"accuracy": r["accuracy"][t],
                         "operations_per_image": operations(
                             r, f"a simulation of {t} steps on its own, counted as for the tier"),
                         "images_per_s": r["images_per_s"],
                         "what_images_per_s": f"images simulated for {t} steps per second",
                         "firing": firing(r),
                         **confusion(y_test[:n_snn], r["predictions"][t]),
                         "wall_s": r["wall_s"]}
                for t, r in q_short.items()},
        },
        "normalisation_lambdas": {f"p{k:g}": v for k, v in lambdas.items()},
        "parameters": {"cnn": asdict(cp), "training": asdict(tp), "percentile": PERCENTILE,
                       "calibration_images": len(calibration), "v0": 0.0,
                       "snn_bf16": snn_bf16, "numerics": asdict(numerics),
                       "numerics_in_use": numerics_in_use()},
        "seed": seed,
        "dataset": data.dataset_name(train.source),
        "train_images": len(itr),
        "test_images": len(ite),
        "snn_images": n_snn,
        "wall_s": {"cnn_training": history["total_wall_s"], "cnn_test": cnn_wall,
                   "snn": main["wall_s"], **{f"snn {k}": v["wall_s"] for k, v in variants.items()},
                   "qcfs_training": q_history["total_wall_s"],
                   "snn qcfs uncalibrated": q_raw["wall_s"], "qcfs_calibration": q_cal_wall,
                   "snn qcfs": q_sim["wall_s"],
                   **{f"snn qcfs T = {t}": r["wall_s"] for t, r in q_short.items()},
                   **({"snn qcfs float32": q_check["wall_s"]} if q_check is not None else {}),
                   "this_call": time.perf_counter() - t_start},
    }
    record = to_record(measured, device=device, provenance=runs.provenance(device, commit=commit))
    runs.save_record(record, out / "tier_record.json")
    details = {"model": model, "folded": folded, "nets": nets, "lambdas": lambdas,
               "simulation": main, "variants": variants, "cnn": cnn, "history": history,
               "test_images": x_test, "test_labels": y_test, "train_index": itr, "test_index": ite,
               "qcfs": {"model": q_model, "folded": q_folded, "net": q_net, "cnn": q_cnn,
                        "simulation": q_sim, "short_simulations": q_short,
                        "uncalibrated_simulation": q_raw, "corrections": q_corrections,
                        "float32_check": q_check, "history": q_history}}
    return record, details


CALIBRATION_VERSION = 3
"""Version of :func:`_calibrated`'s cache (raise it when the calibration changes)."""


def _calibrated(net, images, path, *, bf16: bool, device: str, numerics, progress: bool):
    """``calibrate_biases(net, images, steps=QCFS_CALIBRATION_STEPS,
    rounds=QCFS_CALIBRATION_ROUNDS)`` with the tier's neurons (``QCFS_SIGNED``, ``QCFS_BURST``), its corrections and the
    corrected biases cached at ``path`` (recomputed when the network, the images, the
    settings, the simulation code or the arithmetic differ); returns the calibrated network,
    the corrections and the seconds the calibration took (when it was computed)."""
    import time

    key = runs.cache_key(net, images, QCFS_CALIBRATION_STEPS, QCFS_CALIBRATION_ROUNDS,
                         QCFS_LEVELS, QCFS_V0, QCFS_SIGNED, bf16, fingerprint(numerics),
                         SIM_VERSION, *(("burst", QCFS_BURST) if QCFS_BURST > 1 else ()),
                         version=CALIBRATION_VERSION)
    saved = runs.cached_npz(path, key)
    if saved is None:
        start = time.perf_counter()
        calibrated, corrections = calibrate_biases(
            net, images, steps=QCFS_CALIBRATION_STEPS, levels=QCFS_LEVELS, v0=QCFS_V0,
            signed=QCFS_SIGNED, bf16=bf16, device=device, progress=progress,
            rounds=QCFS_CALIBRATION_ROUNDS, burst=QCFS_BURST)
        wall = time.perf_counter() - start
        # the corrected biases themselves, so that the cached network is the computed one bit
        # for bit (adding the summed corrections of several rounds would round differently)
        fed = _fed_layers(calibrated, "conversion.run_tier")
        runs.save_npz(path, key=np.array(key), wall_s=np.array(wall),
                      **{f"layer_{j}": e.numpy() for j, e in enumerate(corrections)},
                      **{f"bias_{j}": m.bias.detach().cpu().numpy() for j, m in enumerate(fed)})
        return calibrated, corrections, wall
    corrections = [torch.as_tensor(saved[f"layer_{j}"])
                   for j in range(sum(k.startswith("layer_") for k in saved))]
    calibrated = copy.deepcopy(net)
    with torch.no_grad():
        for j, m in enumerate(_fed_layers(calibrated, "conversion.run_tier")):
            m.bias.copy_(torch.as_tensor(saved[f"bias_{j}"]))
    return calibrated, corrections, float(saved["wall_s"])

