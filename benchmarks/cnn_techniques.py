"""Tier 3: what each training technique buys, on the validation split (never the test set).

Trains the tier's CNN (:class:`snnlib.tiers.conversion.ConvNet`) on the
training split's first 45,000 images and scores it on the validation split
(:func:`snnlib.data.validation_split`: the last 500 training images of each
class), with the ``full`` profile's arithmetic (:func:`~snnlib.tiers.conversion.numerics.fast`).
Any field of :class:`~snnlib.tiers.conversion.ConvNetParams` or
:class:`~snnlib.tiers.conversion.TrainParams` is set with ``--set NAME=VALUE``
(tuples as comma-separated integers). Prints the training time, the
validation accuracy without and with test-time augmentation
(:func:`~snnlib.tiers.conversion.tta_logits`), and one line of JSON. With
``--qcfs-epochs N`` it then fine-tunes a QCFS copy for N epochs (as the tier
does: :func:`~snnlib.tiers.conversion.qcfs_from_relu`, at the peak learning rate
``--qcfs-max-lr``, by default ``QCFS_MAX_LR``; the full profile's design uses
``run.WHITENED_QCFS_MAX_LR``),
converts it and simulates it on the validation images (``v0 = QCFS_V0``, or each
of ``--v0``), printing its accuracy at each of ``--steps``. ``--levels`` sets the
QCFS copy's levels (``DEFAULT_LEVELS``, 4, by default); ``--qcfs-distill A`` distils the ReLU CNN
into it (``TrainParams.distill``: a share A of each target from the ReLU CNN's outputs);
``--burst G ...`` simulates each QCFS copy with neurons that fire bursts of up to G spikes a step
(``simulate``'s ``burst``, after Li and Zeng 2022: T steps then resolve ``G x T`` levels),
each ``--calibrate`` copy calibrated with the bursts it fires.
``--qcfs-init-percentile P`` starts each QCFS threshold at the P-th percentile of its ReLU's
activations (``QCFS_INIT_PERCENTILE`` by default). ``--qcfs-from-start`` trains the QCFS network
from the first epoch instead (as Bu et al. do; thresholds starting at that percentile of the
untrained ReLU network's activations) and simulates it as it would the fine-tuned copy; with
``--checkpoint PATH`` it is checkpointed beside PATH (``PATH.qcfs_L4_from_start.pt`` for four
levels), so that a ReLU CNN's checkpoint at PATH stays as it is.
With ``--checkpoint PATH`` the ReLU CNN is checkpointed there (``train_cnn``'s checkpoint: a
finished run with the same settings is loaded, not retrained) and the QCFS copy beside it, so
that other levels, ``--v0`` or ``--steps`` reuse the trainings. ``--signed`` also simulates the
QCFS copy with signed IF neurons (``simulate(signed=True)``). ``--calibrate T ...`` also
simulates each QCFS spiking copy after bias calibration at each T
(:func:`~snnlib.tiers.conversion.calibrate_biases` on the 1,000 training images the
normalisation uses), in each number of rounds of ``--calibration-rounds`` (default 1). The
spiking copies are simulated in bfloat16 where the CPU has it, as the ``full`` profile does.
``--percentiles P ...`` converts the ReLU CNN as the tier does (batch norm folded,
normalised at each percentile P of its activations on 1,000 training images) and scores
each spiking copy (analog input) on ``--snn-val`` validation images (the first tenth of
them from each class) at each of ``--steps``.
``--set activation=gelu`` trains with airbench's GELU activations, which do not convert: the
run also scores the same weights with ReLUs in their place (:func:`~snnlib.tiers.conversion.relu_twin`),
and the QCFS copy of ``--qcfs-epochs`` is fine-tuned from the GELU network (``--percentiles``,
which converts the trained network itself, refuses it).
``--append PATH --name NAME`` also stores the run's JSON, with its command line, under
NAME in the JSON list at PATH (a run of the same name is replaced): chapter 6 draws
its table of techniques from ``results/cnn_techniques.json``.

    python benchmarks/cnn_techniques.py --set epochs=10
    python benchmarks/cnn_techniques.py --set widths=64,64,256,256,256,256 pool_after=0,2,4 \\
        whitening_px=2 global_pool=true epochs=10 batch_size=512 label_smoothing=0.2
    python benchmarks/cnn_techniques.py --train 5000 --val 1000 --set epochs=1   # a smoke run
    python benchmarks/cnn_techniques.py --set epochs=10 --qcfs-epochs 2 --steps 1 2 4 8 16
    python benchmarks/cnn_techniques.py --set epochs=5 --checkpoint runs/tech/e5.pt \\
        --qcfs-epochs 2 --v0 0.3 0.5 0.7 --signed
    python benchmarks/cnn_techniques.py --set epochs=5 --checkpoint runs/tech/e5.pt \\
        --qcfs-epochs 2 --signed --calibrate 2 4 8
    python benchmarks/cnn_techniques.py --set epochs=5 --qcfs-from-start --signed --calibrate 4
    python benchmarks/cnn_techniques.py --set epochs=5 --checkpoint runs/tech/e5.pt \\
        --percentiles 99.9 99.99 100 --steps 16 32 64 128 --snn-val 1000
    python benchmarks/cnn_techniques.py --set epochs=5 --name "A: the VGG design" \\
        --append results/cnn_techniques.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from _fields import parse_sets
from _split import VALIDATION_IMAGES, count_problem, first_per_class

from snnlib.neurons import BURSTS
from snnlib.runs import atomic_write, provenance

DEFAULT_LEVELS = 4
"""``--levels``' default: the stored runs made without ``--levels`` have four (the tier's
``QCFS_LEVELS`` when they ran; the tier's is 32, with bursts of up to eight), so their command lines
still say what they ran."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=45000, help="training images (split's first N)")
    parser.add_argument("--val", type=int, default=5000,
                        help="validation images (the split's first N / 10 of each class)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="a ConvNetParams or TrainParams field")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--curve", action="store_true",
                        help="score the validation images after every epoch (costs time)")
    parser.add_argument("--qcfs-epochs", type=int, default=0,
                        help="then fine-tune a QCFS copy this many epochs and simulate it")
    parser.add_argument("--qcfs-max-lr", type=float, default=None,
                        help="the QCFS fine-tuning's peak learning rate (default: QCFS_MAX_LR)")
    parser.add_argument("--qcfs-init-percentile", type=float, default=None, metavar="P",
                        help="each QCFS threshold starts at this percentile of its ReLU's "
                             "activations (default: QCFS_INIT_PERCENTILE)")
    parser.add_argument("--qcfs-distill", type=float, default=0.0, metavar="ALPHA",
                        help="the QCFS fine-tuning learns this share of each target from the "
                             "ReLU CNN's outputs (TrainParams.distill; default 0: labels only)")
    parser.add_argument("--qcfs-from-start", action="store_true",
                        help="train the QCFS network from the first epoch (no ReLU CNN, no "
                             "fine-tuning) and simulate it")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32],
                        help="simulation steps at which the QCFS copy is scored")
    parser.add_argument("--levels", type=int, default=None,
                        help="the QCFS copy's levels L (default: 4, DEFAULT_LEVELS)")
    parser.add_argument("--v0", type=float, nargs="+", default=None,
                        help="the spiking copy's starting potentials (default: the tier's QCFS_V0)")
    parser.add_argument("--signed", action="store_true",
                        help="also simulate the QCFS copy with signed IF neurons (negative spikes)")
    parser.add_argument("--burst", type=int, nargs="+", default=None, metavar="G",
                        help="simulate each QCFS spiking copy with neurons that fire bursts of "
                             "up to G spikes a step (simulate's burst: 1, 2, 4 or 8), each "
                             "tried (with --calibrate, calibrated with those bursts)")
    parser.add_argument("--calibrate", type=int, nargs="+", default=None, metavar="T",
                        help="also simulate each QCFS spiking copy with its biases calibrated "
                             "for T steps (calibrate_biases), for each T")
    parser.add_argument("--calibration-rounds", type=int, nargs="+", default=None, metavar="N",
                        help="with --calibrate: the calibration's rounds (calibrate_biases' "
                             "rounds), each tried (default 1)")
    parser.add_argument("--percentiles", type=float, nargs="+", default=None,
                        help="also convert the ReLU CNN normalised at each of these percentiles "
                             "and score its spiking copy (analog input) at each of --steps")
    parser.add_argument("--snn-val", type=int, default=1000, metavar="N",
                        help="validation images the --percentiles copies are simulated on "
                             "(the first N / 10 of each class)")
    parser.add_argument("--checkpoint", default=None, metavar="PATH",
                        help="checkpoint the ReLU CNN here (and the QCFS copy, or the QCFS "
                             "network of --qcfs-from-start, beside it)")
    add_store_arguments(parser)
    args = parser.parse_args()
    check_store_arguments(parser, args)
    if args.levels is not None and args.levels < 1:
        parser.error(f"--levels must be a positive integer, got {args.levels}")
    if args.v0 is not None and any(not 0.0 <= v < 1.0 for v in args.v0):
        parser.error(f"--v0 values must lie in [0, 1) (fractions of the threshold), got {args.v0}")
    if args.percentiles is not None and any(not 0.0 < p <= 100.0 for p in args.percentiles):
        parser.error(f"--percentiles must lie in (0, 100], got {args.percentiles}")
    if problem := count_problem(args.val):
        parser.error(f"--val {problem}")
    if problem := count_problem(args.snn_val, args.val if args.percentiles else VALIDATION_IMAGES):
        parser.error(f"--snn-val (default 1000; at most --val) {problem}")
    if args.burst is not None and any(b not in BURSTS for b in args.burst):
        parser.error(f"--burst takes {', '.join(map(str, BURSTS))} (the most spikes a neuron "
                     f"fires in one step), got {args.burst}")
    if args.calibrate is not None and any(t < 1 for t in args.calibrate):
        parser.error(f"--calibrate takes positive numbers of steps, got {args.calibrate}")
    if args.calibration_rounds is not None and (args.calibrate is None
                                                or any(r < 1 for r in args.calibration_rounds)):
        parser.error("--calibration-rounds takes positive integers and goes with --calibrate, "
                     f"got {args.calibration_rounds}")
    if args.qcfs_max_lr is not None and not args.qcfs_max_lr > 0:
        parser.error(f"--qcfs-max-lr must be positive, got {args.qcfs_max_lr}")
    if args.qcfs_init_percentile is not None and not 0.0 < args.qcfs_init_percentile <= 100.0:
        parser.error(f"--qcfs-init-percentile must lie in (0, 100], got "
                     f"{args.qcfs_init_percentile}")
    if not 0.0 <= args.qcfs_distill <= 1.0:
        parser.error(f"--qcfs-distill must lie in [0, 1], got {args.qcfs_distill}")
    needing = [name for name, value in (("--levels", args.levels), ("--v0", args.v0),
                                        ("--qcfs-max-lr", args.qcfs_max_lr),
                                        ("--qcfs-distill", args.qcfs_distill or None),
                                        ("--qcfs-init-percentile", args.qcfs_init_percentile),
                                        ("--signed", args.signed or None),
                                        ("--burst", args.burst),
                                        ("--calibrate", args.calibrate)) if value is not None]
    if needing and not (args.qcfs_epochs or args.qcfs_from_start):
        parser.error(f"{', '.join(needing)} set the QCFS copy: give --qcfs-epochs "
                     "(or --qcfs-from-start) too")
    if args.qcfs_from_start:
        clash = [name for name, value in (("--qcfs-epochs", args.qcfs_epochs),
                                          ("--qcfs-max-lr", args.qcfs_max_lr),
                                          ("--qcfs-distill", args.qcfs_distill),
                                          ("--percentiles", args.percentiles)) if value]
        if clash:
            parser.error(f"--qcfs-from-start trains no ReLU CNN to fine-tune, distil or convert: "
                         f"drop {', '.join(clash)}")

    import numpy as np
    import torch

    from snnlib import data, runs
    from snnlib.tiers import conversion as C
    from snnlib.tiers.conversion import cnn, convert
    from snnlib.tiers.conversion.record import rounds_clause

    numbers, net, train = fast_settings(parser, args.set)
    if net.quantisation_levels is not None:
        parser.error("--set quantisation_levels: the QCFS network is trained with "
                     "--qcfs-from-start (its thresholds start at percentiles) or fine-tuned "
                     "with --qcfs-epochs")
    if args.qcfs_from_start and net.activation != "relu":
        parser.error(f"--qcfs-from-start trains the QCFS network from the first epoch, so no "
                     f"network trains with --set activation={net.activation}")
    if args.percentiles and net.activation != "relu":
        parser.error(f"--percentiles converts the trained CNN itself, which needs ReLU "
                     f"activations (--set activation={net.activation}); a GELU network reaches "
                     f"a spiking copy through its QCFS copy (--qcfs-epochs)")
    cifar = data.load_cifar10("train")
    train_idx, val_idx = data.validation_split(cifar.labels)
    train_idx, val_idx = train_idx[:args.train], val_idx[first_per_class(cifar.labels[val_idx],
                                                                         args.val)]
    x_val = C.images_to_tensor(cifar.images[val_idx])
    torch.manual_seed(args.seed)
    model = C.ConvNet(net)
    levels = DEFAULT_LEVELS if args.levels is None else args.levels
    x_train = C.images_to_tensor(cifar.images[train_idx[:1000]])
    q_pct = (C.QCFS_INIT_PERCENTILE if args.qcfs_init_percentile is None
             else args.qcfs_init_percentile)
    init_key = None

    def qcfs_checkpoint(run: str) -> str | None:
        """Where a QCFS training named ``run`` is checkpointed: beside --checkpoint."""
        return (None if args.checkpoint is None
                else f"{args.checkpoint}.qcfs_L{levels}_{run}"
                + ("" if q_pct == C.QCFS_INIT_PERCENTILE else f"_p{q_pct:g}") + ".pt")

    if args.qcfs_from_start:
        # the thresholds start at percentiles of the activations as training sees them: the
        # whitening layer set as train_cnn would set it, then each batch norm's statistics of
        # the images (one pass in training mode, its running averages made exact averages)
        if model.whitening is not None:
            C.set_whitening(model, C.images_to_tensor(
                cifar.images[train_idx[:cnn.WHITENING_PATCH_IMAGES]]))
        # (this ReLU network is only read: qcfs_from_relu builds the one that trains, with
        # its own momentum)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        with torch.no_grad():
            model.train()(x_train)
        model = C.qcfs_from_relu(model, x_train, levels=levels, percentile=q_pct, seed=args.seed)
        init_key = runs.cache_key(model, levels, "from start", version=cnn.TRAIN_VERSION)
    curve = dict(eval_images=cifar.images[val_idx], eval_labels=cifar.labels[val_idx]) \
        if args.curve else {}
    start = time.perf_counter()
    path = qcfs_checkpoint("from_start") if args.qcfs_from_start else args.checkpoint
    resumed = path is not None and Path(path).exists()
    history = C.train_cnn(model, cifar.images[train_idx], cifar.labels[train_idx], train,
                          seed=args.seed, numerics=numbers, progress=True,
                          checkpoint=path, restart_stale=True, init_key=init_key, **curve)
    call_s = time.perf_counter() - start
    plain = C.evaluate_cnn(model, x_val, cifar.labels[val_idx])["accuracy"]
    t0 = time.perf_counter()
    tta = C.evaluate_cnn(model, x_val, cifar.labels[val_idx], tta=True)["accuracy"]
    tta_s = time.perf_counter() - t0
    print(f"training {history['total_wall_s'] / 60:.2f} min in epochs"
          + (f" (some or all read from {path}: this call {call_s / 60:.2f} min)"
             if resumed else f" ({call_s / 60:.2f} min with the setup)") + "; "
          f"validation {100 * plain:.2f}%, with test-time augmentation {100 * tta:.2f}% "
          f"({tta_s:.0f} s for {len(val_idx)} images)", flush=True)
    as_relu = None
    if net.activation != "relu":  # the same weights with ReLUs: what converting it directly gives
        twin = C.relu_twin(model)
        as_relu = {"val_accuracy": C.evaluate_cnn(twin, x_val, cifar.labels[val_idx])["accuracy"],
                   "val_accuracy_tta": C.evaluate_cnn(twin, x_val, cifar.labels[val_idx],
                                                      tta=True)["accuracy"]}
        print(f"the same weights with ReLUs in place of the {cnn.ACTIVATIONS[net.activation]}s: "
              f"validation {100 * as_relu['val_accuracy']:.2f}%, with test-time augmentation "
              f"{100 * as_relu['val_accuracy_tta']:.2f}%", flush=True)
    conversion = None
    if args.percentiles:
        # the tier's conversion: batch norm folded, lambdas from 1,000 training images
        folded = C.fold_batchnorm(model)
        # the first snn_val / 10 validation images of each class
        y_val = cifar.labels[val_idx]
        pick = first_per_class(y_val, args.snn_val)
        x_snn, y_snn = x_val[pick], y_val[pick]
        on_them = C.evaluate_cnn(folded, x_snn, y_snn)["accuracy"]
        conversion = {"images": len(pick), "steps": args.steps, "cnn_accuracy": on_them,
                      "accuracy": {}}
        for pct in args.percentiles:
            snn, _ = C.normalise(folded, x_train, percentile=pct)
            sim = C.simulate(snn, x_snn, y_snn, steps=args.steps, bf16=numbers.bf16)
            conversion["accuracy"][f"p{pct:g}"] = {int(t): a for t, a in sim["accuracy"].items()}
            scores = ", ".join(f"T = {t}: {100 * a:.2f}%" for t, a in sim["accuracy"].items())
            print(f"converted at the {pct:g}th percentile, {len(pick)} validation images: "
                  f"{scores} (its CNN on them: {100 * on_them:.2f}%; {sim['wall_s']:.0f} s)",
                  flush=True)
    qcfs = None
    if args.qcfs_from_start:
        q_model, q_min = model, history["total_wall_s"] / 60
        qcfs = {"epochs": "from the start", "levels": levels, "init_percentile": q_pct,
                "train_min": round(q_min, 2)}
    elif args.qcfs_epochs:
        q_lr = C.QCFS_MAX_LR if args.qcfs_max_lr is None else args.qcfs_max_lr
        q_model = C.qcfs_from_relu(model, x_train, levels=levels, percentile=q_pct,
                                   seed=args.seed)
        q_path = qcfs_checkpoint(f"e{args.qcfs_epochs}"
                                 + ("" if q_lr == C.QCFS_MAX_LR else f"_lr{q_lr:g}")
                                 + (f"_kd{args.qcfs_distill:g}" if args.qcfs_distill else ""))
        q_history = C.train_cnn(
            q_model, cifar.images[train_idx], cifar.labels[train_idx],
            replace(train, epochs=args.qcfs_epochs, max_lr=q_lr, small_crop_px=None,
                    small_crop_epochs=0, distill=args.qcfs_distill, optimizer="sgd"),
            seed=args.seed + 1,
            teacher=model if args.qcfs_distill else None,
            numerics=numbers, progress=True, checkpoint=q_path, restart_stale=True,
            init_key=runs.cache_key(q_model, levels, version=cnn.TRAIN_VERSION))
        q_min = q_history["total_wall_s"] / 60  # in epochs (a finished checkpoint: its own)
        qcfs = {"epochs": args.qcfs_epochs, "levels": levels, "max_lr": q_lr,
                "distill": args.qcfs_distill, "init_percentile": q_pct,
                "train_min": round(q_min, 2)}
    if qcfs is not None:
        q_folded = C.fold_batchnorm(q_model)
        q_cnn = C.evaluate_cnn(q_folded, x_val, cifar.labels[val_idx])["accuracy"]
        q_net, _ = C.normalise(q_folded, x_train)
        qcfs.update(cnn=q_cnn, snn={})
        trained = (f"trained from the start in {q_min:.2f} min" if args.qcfs_from_start
                   else f"{args.qcfs_epochs} epochs in {q_min:.2f} min")
        cnn_clause = ("" if args.qcfs_from_start
                      else f"the {cnn.ACTIVATIONS[net.activation]} CNN: {100 * plain:.2f}%; ")
        for signed in (False, True) if args.signed else (False,):
            for v0 in args.v0 or [convert.QCFS_V0]:
                name = f"{'signed' if signed else 'IF'}, v0 = {v0}"
                nets = []  # (what, network, burst): each calibrated with the bursts it fires
                for burst in args.burst or [1]:
                    bursts = "" if burst == 1 else f", bursts of up to {burst}"
                    nets.append((name + bursts, q_net, burst))
                    for t in args.calibrate or []:
                        for r in args.calibration_rounds or [1]:
                            t0 = time.perf_counter()
                            calibrated, _ = C.calibrate_biases(
                                q_net, x_train, steps=t, levels=levels, v0=v0, signed=signed,
                                bf16=numbers.bf16, rounds=r, burst=burst)
                            what = f"{name}, biases calibrated at T = {t}{rounds_clause(r)}"
                            nets.append((what + bursts, calibrated, burst))
                            print(f"{what}{bursts}: calibrated in "
                                  f"{time.perf_counter() - t0:.0f} s", flush=True)
                for what, snn_net, burst in nets:
                    sim = C.simulate(snn_net, x_val, cifar.labels[val_idx], steps=args.steps,
                                     v0=v0, signed=signed, bf16=numbers.bf16, burst=burst)
                    qcfs["snn"][what] = {
                        "accuracy": {int(t): a for t, a in sim["accuracy"].items()},
                        "synaptic_ops_per_image": sim["synaptic_ops_per_image"]}
                    print(f"QCFS copy (L = {levels}): {trained}, "
                          f"its CNN {100 * q_cnn:.2f}%; spiking copy, {what}: " + ", ".join(
                              f"T = {t}: {100 * a:.2f}%" for t, a in sim["accuracy"].items())
                          + f" ({cnn_clause}{sim['wall_s']:.0f} s)",
                          flush=True)
    result = {"split": "validation (last 500 training images per class)",
              "train_images": len(train_idx), "val_images": len(val_idx), "seed": args.seed,
              "net": asdict(model.params), "training": asdict(train),
              "numerics": numbers.describe(),
              "train_min": round(history["total_wall_s"] / 60, 2),
              "resumed_from_checkpoint": resumed,
              "epoch_s": [round(w, 1) for w in history["wall_s"]],
              "eval_curve": history["eval_accuracy"] if args.curve else None,
              "val_accuracy": plain, "val_accuracy_tta": tta, "as_relu": as_relu,
              "conversion": conversion,
              "qcfs": qcfs}
    print_and_store(args, result, "cnn_techniques.py")
    return 0


def fast_settings(parser: argparse.ArgumentParser, pairs: list[str]):
    """The ``full`` profile's arithmetic (:func:`~snnlib.tiers.conversion.numerics.fast`, put
    in use) and the ``ConvNetParams`` and ``TrainParams`` that ``--set`` ``pairs`` give
    (training in bfloat16 where the CPU has it); a parser error for a bad pair."""
    from snnlib.tiers import conversion as C
    from snnlib.tiers.conversion import numerics

    numbers = numerics.fast()
    numerics.use_numerics(numbers)
    try:
        net_set, train_set = parse_sets(pairs, C.ConvNetParams, C.TrainParams)
        return (numbers, C.ConvNetParams(**net_set),
                C.TrainParams(**{"bf16": numbers.bf16, **train_set}))
    except (ValueError, TypeError) as error:
        parser.error(str(error))


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--append PATH --name NAME``: where :func:`store` puts the run (check them with
    :func:`check_store_arguments`)."""
    parser.add_argument("--append", default=None, metavar="PATH",
                        help="store the run's JSON under --name in the JSON list at PATH")
    parser.add_argument("--name", default=None, help="the run's name in --append's list")


def check_store_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A parser error unless ``--append`` and ``--name`` are given together or not at all."""
    if (args.append is None) != (args.name is None):
        parser.error("--append and --name go together")


def print_and_store(args: argparse.Namespace, result: dict, script: str) -> None:
    """Print ``result`` as one line of JSON and, with ``--append``, :func:`store` it under
    ``--name`` with the command line that ran ``benchmarks/<script>``."""
    print(json.dumps(result))
    if args.append is not None:
        store(Path(args.append), args.name, result,
              ["python", f"benchmarks/{script}"] + sys.argv[1:])


def store(path: Path, name: str, result: dict, command: list[str]) -> None:
    """Put ``result`` (with ``name``, ``command`` and where it ran: :func:`snnlib.runs.provenance`,
    whose machine names the CPU) in the JSON list at ``path``, replacing a run of the same name;
    written whole through :func:`snnlib.runs.atomic_write`, so that an interruption leaves the
    old list."""
    runs = json.loads(path.read_text()) if path.exists() else []
    entry = {"name": name, "command": shlex.join(command), **result,
             "provenance": provenance()}
    text = json.dumps([r for r in runs if r.get("name") != name] + [entry], indent=1) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


if __name__ == "__main__":
    sys.exit(main())
