"""Command line: ``python -m snnlib COMMAND``.

    python -m snnlib data [--dir DIR] [--no-download]
        Find (or download) CIFAR-10, validate every batch, print a summary.
    python -m snnlib profile [NAME]
        Print the run sizes of a profile (default: $SNNLIB_PROFILE or book).
    python -m snnlib run brian_stdp [--profile full] [--out DIR] [--seed N] [--hidden-only]
        Train tier 1 (resumable: run it again after a kill): the hidden
        layers, then the R-STDP output layer, with the baselines measured in
        the same run; writes checkpoints, features, model.npz,
        eval_counts.npz, record.json and tier_record.json to DIR (default
        runs/brian_stdp/PROFILE), prints the results table, and for the
        ``full`` profile copies the record to results/brian_stdp.json.
        --hidden-only stops after the hidden layers and their test spike
        statistics (record.json).
    python -m snnlib run dog_lif [--profile full] [--out DIR] [--seed N]
        Tier 2 (resumable: run it again after a kill): the STDP layer and a
        random-weight copy, their spike-count features (checkpointed), and
        the logistic-regression readouts with their baselines; writes
        layer_*.npz, features_*/ and tier_record.json to DIR (default
        runs/dog_lif/PROFILE), prints the results table, and for the
        ``full`` profile copies the record to results/dog_lif.json.
    python -m snnlib run conversion [--profile full] [--out DIR] [--seed N]
        Tier 3 (resumable: run it again after a kill): train the CNN
        (checkpointed every epoch), convert it, simulate the spiking network
        (checkpointed in parts of 500 images), then fine-tune a QCFS copy and
        simulate it too; writes cnn.pt, cnn_qcfs.pt, snn_*/ and
        tier_record.json to DIR (default runs/conversion/PROFILE), prints the
        CNN and SNN accuracies, and for the ``full`` profile copies the
        record to results/conversion.json.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

import numpy as np

from . import data, profiles


def _data(args: argparse.Namespace) -> int:
    root = args.dir if args.dir is not None else data.default_data_dir()
    for split in ("train", "test"):
        ds = data.load_cifar10(split, root, download=not args.no_download)
        counts = ", ".join(str(int(n)) for n in np.bincount(ds.labels, minlength=10))
        print(f"{split}: {len(ds)} images {ds.images.shape[1:]} uint8, per class [{counts}]")
    print(f"CIFAR-10 is valid in {ds.source}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    profile = profiles.get_profile(args.name)
    for key, value in asdict(profile).items():
        print(f"{key}: {value}")
    return 0


def _run(args: argparse.Namespace) -> int:
    profile = profiles.get_profile(args.profile)
    if args.tier == "dog_lif":
        return _run_dog_lif(profile, args)
    if args.tier == "conversion":
        return _run_conversion(profile, args)
    from .tiers import brian_stdp

    out = args.out or f"runs/brian_stdp/{profile.name}"
    if not args.hidden_only:
        return _run_tier(profile, out, args)
    _, record = brian_stdp.train_hidden_layers(profile, out_dir=out, seed=args.seed)
    for name, phase in record["phases"].items():
        print(f"{name}: {phase['images']} images; this call trained {phase['trained_images']} "
              f"in {phase['wall_s']:.1f} s; whole run {phase['total_wall_s']:.1f} s "
              f"({phase['images'] / max(phase['total_wall_s'], 1e-9):.2f} images/s); training "
              f"rates {[round(r, 2) for r in phase['rate_hz']]} Hz; "
              f"{phase['boosted']} boosted, {phase['silent_after_boosts']} silent after boosts")
    n_eval = record["eval_images"]
    for name, st in record["test_spikes"].items():
        print(f"{name} on {n_eval} test images: {st['rate_hz']:.2f} Hz mean, "
              f"{st['spikes_per_image']:.1f} spikes and {st['active_per_image']:.1f} active "
              f"neurons per image, {100 * st['silent_neurons']:.1f}% neurons silent, "
              f"{100 * st['silent_images']:.1f}% images without a spike")
    print(f"model and record in {out}")
    return 0


def _print_wall_times(record: dict) -> None:
    """Wall times of a record; a phase loaded from checkpoints without a time (None) is named apart."""
    wall = record["wall_s"]
    print("wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items() if v is not None))
    untimed = [k for k, v in wall.items() if v is None]
    if untimed:
        print("not timed (loaded from checkpoints that carry no time): " + ", ".join(untimed))


def _write_results(record: dict, profile, args: argparse.Namespace) -> None:
    """Write the record to --results, or for the full profile to results/TIER.json."""
    import json
    from pathlib import Path

    results = args.results or (f"results/{record['tier']}.json" if profile.name == "full" else None)
    if results:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
        Path(results).write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"results record in {results}")


def _run_tier(profile, out: str, args: argparse.Namespace) -> int:
    from .tiers import brian_stdp

    record, _ = brian_stdp.train_tier(profile, out_dir=out, seed=args.seed)
    sizes = record["train_images"]
    print(f"tier 1 on {record['test_images']} test images ({record['dataset']}); hidden layers "
          f"trained on {sizes['hidden_layer1']} and {sizes['hidden_layer2']} images, output layer "
          f"on {sizes['output_layer']} x {sizes['output_epochs']} epoch(s)")
    print(f"  {'R-STDP output on STDP hidden layers (the tier)':<58} {record['accuracy']:.3f}")
    for name, acc in record["baselines"].items():
        print(f"  {name:<58} {acc:.3f}")
    _print_wall_times(record)
    _write_results(record, profile, args)
    print(f"model, features and records in {out}")
    return 0


def _run_dog_lif(profile, args: argparse.Namespace) -> int:
    from .tiers import dog_lif

    if args.hidden_only:
        raise ValueError("--hidden-only is for tier 1 (brian_stdp).")
    out = args.out or f"runs/dog_lif/{profile.name}"
    record, _ = dog_lif.run_tier(profile, out_dir=out, seed=args.seed)
    print(f"tier 2 on {record['test_images']} test images ({record['dataset']}); "
          f"{record['train_images']} training images, {record['parameters']['n_filters']} filters, "
          f"{record['features_per_image']} features per image")
    print(f"  {'logistic regression, STDP layer spike counts (the tier)':<58} {record['accuracy']:.3f}")
    for name, acc in record["baselines"].items():
        print(f"  {name:<58} {acc:.3f}")
    _print_wall_times(record)
    speed = record["images_per_s"]["feature_extraction"]
    print("feature extraction (images/s): " + ", ".join(
        f"{k} {v:.1f}" for k, v in speed.items() if v is not None))
    _write_results(record, profile, args)
    print(f"layers, features and record in {out}")
    return 0


def _run_conversion(profile, args: argparse.Namespace) -> int:
    from .tiers import conversion

    if args.hidden_only:
        raise ValueError("--hidden-only is for tier 1 (brian_stdp).")
    out = args.out or f"runs/conversion/{profile.name}"
    record, _ = conversion.run_tier(profile, out_dir=out, seed=args.seed)
    cnn, snn = record["cnn"], record["snn"]
    print(f"tier 3 on {record['test_images']} test images ({record['dataset']}); CNN trained on "
          f"{record['train_images']} images for {cnn['training']['epochs']} epochs in "
          f"{cnn['training']['wall_s']:.0f} s")
    print(f"  CNN accuracy {cnn['accuracy']:.4f} ({cnn['accuracy_on_snn_images']:.4f} on the "
          f"{record['snn_images']} images the SNN ran on), {cnn['images_per_s']:.0f} images/s")
    print("  SNN accuracy by steps: " + ", ".join(
        f"T={t} {a:.4f}" for t, a in snn["accuracy_vs_steps"].items()))
    print(f"  smallest T within 1 point of the CNN: {snn['smallest_steps_within_1_point']}, "
          f"within 0.1 point: {snn['smallest_steps_within_0.1_point']}; "
          f"{snn['images_per_s']:.1f} images/s at T={snn['steps']}")
    for name, acc in record["variants"]["accuracy_vs_steps"].items():
        print(f"  {name:<18} on {record['variants']['images']} images: "
              + ", ".join(f"T={t} {a:.3f}" for t, a in acc.items()))
    q = record["qcfs"]
    print(f"  fine-tuned with QCFS ({q['levels']} levels, {q['training']['epochs']} epochs, "
          f"{q['training']['wall_s']:.0f} s): CNN accuracy {q['cnn_accuracy']:.4f} "
          f"({q['cnn_accuracy_on_snn_images']:.4f} on the SNN's images)")
    print(f"  its SNN (v0 = {q['v0']}) by steps: " + ", ".join(
        f"T={t} {a:.4f}" for t, a in q["accuracy_vs_steps"].items()))
    print(f"  smallest T within 1 point of its CNN: {q['smallest_steps_within_1_point']}, "
          f"within 0.1 point: {q['smallest_steps_within_0.1_point']}, within 1 point of the "
          f"ReLU CNN: {q['smallest_steps_within_1_point_of_relu_cnn']}")
    _print_wall_times(record)
    _write_results(record, profile, args)
    print(f"CNN, simulations and record in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snnlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("data", help="find or download CIFAR-10 and validate it")
    p.add_argument("--dir", default=None,
                   help=f"directory holding cifar-10-batches-py/ (default: ${data.DATA_DIR_ENV} "
                        f"or {data.DEFAULT_DATA_DIR})")
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    p.set_defaults(func=_data)
    p = sub.add_parser("profile", help="print a profile's run sizes")
    p.add_argument("name", nargs="?", default=None)
    p.set_defaults(func=_profile)
    p = sub.add_parser("run", help="train a tier at a profile's size (resumable)")
    p.add_argument("tier", choices=["brian_stdp", "dog_lif", "conversion"])
    p.add_argument("--profile", default=None, help="ci, book or full (default: $SNNLIB_PROFILE or book)")
    p.add_argument("--out", default=None, help="output directory (default runs/TIER/PROFILE)")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--hidden-only", action="store_true",
                   help="train and evaluate the hidden layers only (tier 1, part 1)")
    p.add_argument("--results", default=None,
                   help="where to write the results record (default for --profile full: "
                        "results/TIER.json)")
    p.set_defaults(func=_run)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (data.CIFARDataError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
