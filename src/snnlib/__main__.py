"""Command line: ``python -m snnlib COMMAND``.

    python -m snnlib data [--dir DIR] [--no-download]
        Find (or download) CIFAR-10, validate every batch, print a summary.
    python -m snnlib profile [NAME]
        Print the run sizes of a profile (default: $SNNLIB_PROFILE or book).
    python -m snnlib run TIER [--profile full] [--out DIR] [--seed N] [--device cuda]
        Train and measure a tier (brian_stdp, dog_lif or conversion; the
        registry snnlib.tiers.TIERS lists them). Every tier is resumable: run
        the same command again after a kill and it continues from its
        checkpoints. Writes checkpoints, caches and tier_record.json to DIR
        (default runs/TIER/PROFILE, or runs/TIER/PROFILE-seedN for a --seed other
        than 2026, so that its caches never replace the default seed's), prints
        the results, and for the ``full`` profile at the default seed copies the
        record to results/TIER.json (or, any seed, to --results).
        --device (default $SNNLIB_DEVICE or cpu) chooses where the PyTorch
        tiers compute; tier 1 (Brian2) runs on the CPU.
        --hidden-only (tier 1) stops after the hidden layers and their spike
        counts (layers_stdp.npz, features_stdp_*.npz).
    python -m snnlib record PATH
        Print a record (any tier, any snnlib version: older ones are migrated).
    python -m snnlib migrate PATH [PATH ...]
        Rewrite records of an older snnlib in the current format, in place.
    python -m snnlib compare [--records DIR] [--profile NAME] [--out DIR] [--write-readme]
        The tiers side by side, from their records only (seconds; nothing is
        trained or simulated): prints the comparison table, writes its figures
        and tables to --out (default runs/compare/results, or
        runs/compare/PROFILE for a runs folder). --records is a results folder
        (default results/, TIER.json files) or a runs folder (runs/, read at
        --profile, default $SNNLIB_PROFILE or book). A tier whose record is
        missing is named with the command that makes it (exit status 1).
        --write-readme regenerates README.md's results section from the
        results folder (--readme PATH for another file).

Errors (a wrong option, missing or corrupt data, a record or checkpoint that
cannot be read, a folder that cannot be written) are printed as one line,
``error: ...``, with exit status 2; ``python -m snnlib --debug COMMAND ...``
shows the traceback instead. An interrupted command (Ctrl-C) exits with 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from . import data, profiles, runs
from .tiers import TIERS


class _UsageError(Exception):
    """A command line that argparse refuses (wrong option, wrong value)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a wrong command line is one ``error:`` line (printed by :func:`main`)."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


SEED_MAX = 2**32 - 1
"""The largest seed every random generator of the tiers accepts (scikit-learn's limit)."""
DEFAULT_SEED = 2026
"""The seed of the book's runs and records (runs/TIER/PROFILE, results/TIER.json)."""


def _seed(text: str) -> int:
    """argparse type of ``--seed``: an integer in [0, 2**32 - 1] (argparse names the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SEED_MAX}], got "
                                         f"{text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, {SEED_MAX}], got {value}")
    return value


def _folder(option: str, path: str | Path) -> Path:
    """Check that ``path`` (an output folder named by ``option``) is a folder that exists or
    can be created, and is writable; say why not, naming the option. Creates nothing."""
    path = Path(path)
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "it" if existing == path else str(existing)
        raise ValueError(f"{option} {path}: {where} is a file, not a folder; give a folder to "
                         "write to.")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "the folder" if existing == path else f"{existing}, where it would be created,"
        raise ValueError(f"{option} {path}: {where} is not writable.")
    return path


def _data(args: argparse.Namespace) -> int:
    if args.dir is not None and Path(args.dir).exists() and not Path(args.dir).is_dir():
        raise ValueError(f"--dir {args.dir}: it is a file, not a directory; give the directory "
                         f"that holds {data.FOLDER}/.")
    root = args.dir if args.dir is not None else data.default_data_dir()
    for split in ("train", "test"):
        ds = data.load_cifar10(split, root, download=not args.no_download)
        counts = ", ".join(str(int(n)) for n in np.bincount(ds.labels, minlength=10))
        print(f"{split}: {len(ds)} images {ds.images.shape[1:]} uint8, per class [{counts}]")
    print(f"CIFAR-10 is valid in {ds.source}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    for key, value in profiles.profile_items(profiles.get_profile(args.name)):
        print(f"{key}: {value}")
    return 0


def print_record(record: runs.TierRecord) -> None:
    """The results of any tier: accuracy, baselines, cost, wall times, then the tier's own lines."""
    tier = TIERS[record.tier]
    print(f"tier {tier.number} ({record.tier}), {record.profile} profile, on {record.test_images} "
          f"test images ({record.dataset}), {record.device}")
    print(f"  {'the tier':<62} {record.accuracy:.4f}")
    for name, acc in record.baselines.items():
        print(f"  {name:<62} {acc:.4f}")
    ev = record.synaptic_events
    print(f"  {record.time_steps} steps per image; synaptic events per image: {ev.accumulates:.3g} "
          f"accumulates, {ev.multiply_accumulates:.3g} multiply-accumulates; "
          f"{record.spikes_per_neuron_per_image:.3g} spikes per neuron per image")
    for label, speed in (("training", record.training), ("inference", record.inference)):
        if speed.images_per_s is not None:
            print(f"  {label}: {speed.images_per_s:.3g} per second ({speed.what})")
    try:
        lines = tier.record_module().summary_lines(record)
    except (KeyError, TypeError, IndexError, AttributeError) as err:  # an older record's shape
        lines = [f"(the tier's own results are left out: the record's 'specific' part is not "
                 f"in the shape this snnlib writes ({type(err).__name__}: {err}); a new run of "
                 "the tier writes it)"]
    for line in lines:
        print(f"  {line}")
    wall = record.wall_s
    print("  wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items() if v is not None))
    untimed = [k for k, v in wall.items() if v is None]
    if untimed:
        print("  not timed (loaded from checkpoints that carry no time): " + ", ".join(untimed))


def _run(args: argparse.Namespace) -> int:
    profile = profiles.get_profile(args.profile)
    tier = TIERS[args.tier]
    if args.hidden_only and tier.name != "brian_stdp":
        raise ValueError("--hidden-only is for tier 1 (brian_stdp).")
    # another seed gets its own folder: its caches would otherwise replace the default seed's
    out = args.out or (f"runs/{tier.name}/{profile.name}" + (
        "" if args.seed == DEFAULT_SEED else f"-seed{args.seed}"))
    _folder("--out", out)  # before hours of training, not after
    results = None if args.hidden_only else (  # the book's records: the default seed's
        args.results or (f"results/{tier.name}.json"
                         if profile.name == "full" and args.seed == DEFAULT_SEED else None))
    if results:
        if Path(results).is_dir():
            raise ValueError(f"--results {results}: it is a folder; give the record's file name "
                             f"(e.g. {Path(results) / (tier.name + '.json')}).")
        _folder("--results", Path(results).parent)
    options = {"hidden_only": True} if args.hidden_only else {}
    result, details = tier.run(profile, out_dir=out, seed=args.seed, device=args.device, **options)
    if args.hidden_only:
        _print_hidden(details)
    else:
        print_record(result)
        if results:
            runs.save_record(result, results)
            print(f"results record in {results}")
    print(f"checkpoints and records in {out}")
    return 0


def _print_hidden(details: dict) -> None:
    layers, feats = details["layers"]["stdp"], details["features"]["stdp"]
    print(f"hidden layers learned in {layers['wall_s']:.1f} s (the whole run)")
    for set_name, f in feats.items():
        volleys = ("" if f["volley_fraction"] is None
                   else f", layer-2 volleys in {100 * f['volley_fraction']:.1f}% of the images")
        print(f"{set_name} images ({len(f['f1'])}): layer 1 {np.mean(f['spikes1']):.0f} and "
              f"layer 2 {np.mean(f['spikes2']):.0f} spikes per image{volleys}; "
              f"{len(f['f1']) / max(f['wall_s'], 1e-9):.1f} images/s")


def _record(args: argparse.Namespace) -> int:
    print_record(runs.load_record(args.path))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    for path in args.paths:
        record = runs.load_record(path)
        runs.save_record(record, path)
        print(f"{path}: tier {record.tier}, format {record.format}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    import matplotlib

    from . import compare, viz

    records = compare.load_records(args.records, profile=args.profile)
    rows = compare.comparison_rows(records)
    kind = (f"a runs folder, profile {records.profile}" if records.layout == "runs"
            else "a results folder")
    print(f"records: {records.source} ({kind}); {len(rows)} networks from "
          f"{len(records.records)} records")
    if rows:
        print(compare.comparison_table(rows).to_text())
    for message in records.missing.values():
        print(f"missing: {message}", file=sys.stderr)
    if rows and not args.no_figures:
        matplotlib.use("Agg")  # files only, no window
        viz.use_style()
        out = _folder("--out", args.out or f"runs/compare/{records.profile or 'results'}")
        paths = compare.write_figures(rows, out)
        tables = (compare.comparison_table(rows), compare.counting_table(rows),
                  compare.provenance_table(rows), compare.per_class_table(rows),
                  compare.shared_confusions(rows), compare.plausibility_table(why=True))
        text = "\n\n".join(f"## {t.title}\n\n{t.to_markdown()}" for t in tables) + "\n"
        paths.append(runs.atomic_write(out / "comparison.md",
                                       lambda tmp: Path(tmp).write_text(text)))
        print(f"figures and tables in {out}: " + ", ".join(p.name for p in paths))
    if args.write_readme:
        if records.layout != "results":
            raise ValueError(f"--write-readme reads a results folder (TIER.json files); "
                             f"{records.source} is a runs folder.")
        changed = compare.write_readme(args.readme, records)
        print(f"{args.readme}: results section " + ("regenerated from " if changed
                                                    else "already matches ") + f"{records.source}")
    return 1 if records.missing else 0


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status:
    0, 1 (``compare`` with a record missing), 2 (an error, printed as one ``error:`` line)
    or 130 (interrupted)."""
    parser = _Parser(prog="python -m snnlib", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the traceback instead of one line")
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
    p.add_argument("tier", choices=list(TIERS))
    p.add_argument("--profile", default=None, help="ci, book or full (default: $SNNLIB_PROFILE or book)")
    p.add_argument("--out", default=None, help="output directory (default runs/TIER/PROFILE, "
                   "or runs/TIER/PROFILE-seedN for another seed than the default)")
    p.add_argument("--seed", type=_seed, default=DEFAULT_SEED,
                   help=f"random seed, an integer in [0, {SEED_MAX}] (default {DEFAULT_SEED})")
    p.add_argument("--hidden-only", action="store_true",
                   help="train and evaluate the hidden layers only (tier 1, part 1)")
    p.add_argument("--device", default=None,
                   help=f"cpu or cuda (default: ${runs.DEVICE_ENV} or cpu); tier 1 runs on the CPU")
    p.add_argument("--results", default=None,
                   help="where to write the results record (default for --profile full: "
                        "results/TIER.json)")
    p.set_defaults(func=_run)
    p = sub.add_parser("record", help="print a record (older formats are migrated)")
    p.add_argument("path")
    p.set_defaults(func=_record)
    p = sub.add_parser("migrate", help="rewrite records of an older snnlib in the current format")
    p.add_argument("paths", nargs="+")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("compare", help="the tiers side by side, from their records (no simulation)")
    p.add_argument("--records", default="results",
                   help="a results folder (TIER.json) or a runs folder (TIER/PROFILE/"
                        "tier_record.json); default results")
    p.add_argument("--profile", default=None,
                   help="the profile read from a runs folder (default: $SNNLIB_PROFILE or book)")
    p.add_argument("--out", default=None,
                   help="folder for the figures and tables (default runs/compare/results or "
                        "runs/compare/PROFILE)")
    p.add_argument("--no-figures", action="store_true", help="print the table only")
    p.add_argument("--write-readme", action="store_true",
                   help="regenerate the README's results section from the records")
    p.add_argument("--readme", default="README.md", help="the README to write (default README.md)")
    p.set_defaults(func=_compare)
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        resume = "; run the same command again to continue" if args.command == "run" else ""
        print(f"error: interrupted{resume}", file=sys.stderr)
        return 130
    # ValueError covers runs.CheckpointError and runs.RecordError; OSError a folder or file
    # that cannot be read or written. Anything else is a bug: its traceback is shown.
    except (data.CIFARDataError, ValueError, TypeError, OSError) as err:
        if args.debug:
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
