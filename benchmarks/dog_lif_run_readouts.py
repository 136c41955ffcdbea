"""Tier 2: readouts of a finished run's training features, scored on a held-out fifth (no test image).

    python benchmarks/dog_lif_run_readouts.py --run runs/dog_lif/full --net stdp
    python benchmarks/dog_lif_run_readouts.py --run runs/dog_lif/full --grids 1 3 --sqrt

Reads the pooled spike counts that ``python -m snnlib run dog_lif --out DIR``
checkpointed for all its training images (``DIR/features_NET_train/part_*.npz``,
made with the parameters of ``--set``, default the tier's; the features are those
the run computed, so ``--set`` must name its parameters) and scores the
tier's logistic regression on them the way its C is chosen: fitted on four
fifths of the training images and scored on the stratified fifth held out
(:func:`snnlib.readout.held_out_accuracy` with the run's seed and the
tier's solver, C values from ``--cs``). ``--grids`` also sums the counts over coarser
grids side by side (``dog_lif_tuning.py``'s :func:`pyramid`; each must divide the
layer's pool), ``--sqrt`` takes their square roots. This measures a readout
at the full run's size without simulating anything; the test images are never
read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from snnlib import data, readout
from snnlib.tiers import dog_lif as D

from dog_lif_tuning import add_variant_options, parse_sets, pyramid


def training_features(run: Path, net: str) -> np.ndarray:
    """The run's checkpointed features of every training image, in the run's order."""
    parts = sorted((run / f"features_{net}_train").glob("part_*.npz"))
    if not parts:
        raise SystemExit(f"{run}: no features_{net}_train/part_*.npz; run "
                         f"`python -m snnlib run dog_lif --out {run}` first")
    return np.concatenate([np.load(p)["features"] for p in parts]).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="the run's output folder")
    ap.add_argument("--net", choices=("stdp", "random"), default="stdp")
    ap.add_argument("--seed", type=int, default=2026, help="the run's seed (the held-out fifth)")
    ap.add_argument("--grids", type=int, nargs="+", default=None)
    ap.add_argument("--sqrt", action="store_true")
    add_variant_options(ap)
    args = ap.parse_args()
    params = D.DoGLIFParams(**parse_sets(args.set))
    grids = args.grids or [params.pool]
    if any(g < 1 or params.pool % g for g in grids):
        raise SystemExit(f"--grids {' '.join(map(str, grids))}: each must divide the layer's "
                         f"pool ({params.pool})")
    x = training_features(args.run, args.net)
    y = data.load_cifar10("train").labels
    if len(x) != len(y) or x.shape[1] != params.n_features:
        raise SystemExit(f"{args.run}: {x.shape} features, expected ({len(y)}, "
                         f"{params.n_features}) for all training images and these parameters")
    x = pyramid(x, params, grids, args.sqrt).astype(np.float32)
    start = time.perf_counter()
    scores = readout.held_out_accuracy(x, y, cs=args.cs, seed=args.seed, dtype=np.float32,
                                       max_iter=D.READOUT_MAX_ITER, backend=D.READOUT_BACKEND)
    for c, accuracy in scores.items():
        print(f"{args.net} grids={','.join(map(str, grids))}{' sqrt' if args.sqrt else ''} "
              f"C={c:g}: held-out fifth {accuracy:.4f} ({x.shape[1]} features)", flush=True)
    print(f"{time.perf_counter() - start:.0f} s for {len(scores)} fits")


if __name__ == "__main__":
    main()
