"""Benchmark: tier 1's two R-STDP output layers, one after another against side by side.

    python benchmarks/brian_stdp_output_side_by_side.py                 # book profile, 4 epochs
    python benchmarks/brian_stdp_output_side_by_side.py --profile full --epochs 1

Loads a finished tier-1 run (``python -m snnlib run brian_stdp --profile P``, or chapters 3
and 4; ``--runs`` is the runs folder, default ``runs``) for the two networks' training
features, then trains both output layers (the learned network's and the random twin's)
afresh in empty folders, in the same run: first one after another in this process, then
side by side in forked processes (one per core, as ``run_tier`` does). Printed: each
way's wall time, their ratio, and whether the two ways learned the same weights (they
must: each layer draws from its own seeds). Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book")
    parser.add_argument("--runs", default="runs", help="the runs folder (SNNLIB_RUNS_DIR)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of each output layer (default: the profile's)")
    parser.add_argument("--seed", type=int, default=2026, help="the run's seed")
    args = parser.parse_args()

    import numpy as np

    from snnlib import profiles
    from snnlib.tiers.brian_stdp import network as N, pipeline as P

    profile = profiles.get_profile(args.profile)
    run_dir = Path(args.runs) / "brian_stdp" / profile.name
    if not (run_dir / "tier_record.json").exists():
        parser.error(f"no finished tier-1 run in {run_dir}: run `python -m snnlib run brian_stdp "
                     f"--profile {profile.name}` first (or give its folder with --runs)")
    print(f"loading the run in {run_dir} ...", flush=True)
    _, details = P.run_tier(profile, out_dir=run_dir, seed=args.seed, progress=False)
    q = details["output_params"]
    if args.epochs is not None:
        q = replace(q, epochs=args.epochs)
    train = {name: P._both(details["features"][name]["train"]) for name in ("stdp", "random")}
    y = details["labels"]["train"]
    cores = N._feature_workers(None, len(train))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len(y)} images x {train['stdp'].shape[1]} features, {q.epochs} epochs per layer, "
          f"{cores} processes side by side", flush=True)
    walls, learned = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for way, workers in (("one after another", 1), ("side by side", cores)):
            out = Path(tmp) / str(workers)
            out.mkdir()
            start = time.perf_counter()
            learned[way] = P._outputs(out, q, train, y, seed=args.seed, progress=True,
                                      workers=workers)
            walls[way] = time.perf_counter() - start
            print(f"{way}: {walls[way]:.1f} s", flush=True)
    same = all(np.array_equal(learned["one after another"][n][0].weights(),
                              learned["side by side"][n][0].weights()) for n in train)
    print(f"side by side takes {walls['side by side'] / walls['one after another']:.2f} of the "
          f"time one after another takes ({walls['one after another'] / walls['side by side']:.2f}"
          f" x faster); the same weights: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
