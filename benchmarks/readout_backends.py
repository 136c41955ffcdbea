"""The logistic-regression readout's two backends side by side: scikit-learn's L-BFGS and PyTorch's.

    python benchmarks/readout_backends.py [--train 40000] [--features pixels|random] [--c 0.003]

Fits :func:`snnlib.readout.logistic_regression` (one C, float32, at most 1,000
iterations, as tier 2 does) with ``backend="sklearn"`` (one thread) and
``backend="torch"`` (every core) on the same features, and prints each one's
wall time, L-BFGS iterations and accuracy, their ratio, and how often their
predictions agree. Features: the standardised RGB pixels of ``--train``
training-split images, scored on the 5,000 validation-split images
(:func:`snnlib.data.validation_split`), or ``random`` (``--dim`` Gaussian
features around class centres, for sizes beyond the pixels'). No test image
is read.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _split import tuning_split
from snnlib import data, readout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=40_000, help="training-split images")
    ap.add_argument("--features", choices=("pixels", "random"), default="pixels")
    ap.add_argument("--dim", type=int, default=4608, help="features per image for 'random'")
    ap.add_argument("--c", type=float, default=0.003, help="the inverse regularisation C")
    args = ap.parse_args()
    train = data.load_cifar10("train")
    itr, iva = tuning_split(train.labels, args.train, 5000, seed=0)
    y_tr, y_va = train.labels[itr], train.labels[iva]
    if args.features == "pixels":
        x_tr = train.images[itr].reshape(len(itr), -1).astype(np.float32) / 255
        x_va = train.images[iva].reshape(len(iva), -1).astype(np.float32) / 255
    else:
        rng = np.random.default_rng(0)
        centres = rng.normal(0, 0.05, (10, args.dim)).astype(np.float32)
        x_tr = centres[y_tr] + rng.standard_normal((len(itr), args.dim), dtype=np.float32)
        x_va = centres[y_va] + rng.standard_normal((len(iva), args.dim), dtype=np.float32)
    print(f"{args.features}: {len(itr)} x {x_tr.shape[1]} features, C = {args.c}, float32")
    rows = {}
    for backend in ("sklearn", "torch"):
        start = time.perf_counter()
        r = readout.logistic_regression(x_tr, y_tr, x_va, y_va, cs=(args.c,), dtype=np.float32,
                                        max_iter=1000, backend=backend)
        rows[backend] = (time.perf_counter() - start, r)
    print(f"{'backend':<9} {'wall (s)':>9} {'iterations':>11} {'validation accuracy':>20}")
    for backend, (wall, r) in rows.items():
        print(f"{backend:<9} {wall:9.1f} {r['iterations']:11d} {r['accuracy']:20.4f}")
    (ws, rs), (wt, rt) = rows["sklearn"], rows["torch"]
    print(f"torch is {ws / wt:.2f} x faster; the predictions agree on "
          f"{np.mean(rs['predictions'] == rt['predictions']):.2%} of the validation images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
