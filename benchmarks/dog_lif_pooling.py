"""Tier 2: one trained layer, its spike counts pooled several ways at once (validation only).

    python benchmarks/dog_lif_pooling.py --train 5000 --val 2000
    python benchmarks/dog_lif_pooling.py --set n_filters=512 --cs 0.003 0.01 0.03 0.1

Trains :class:`snnlib.tiers.dog_lif.DoGLIF` (its defaults, or with the fields of
``--set NAME=VALUE ...`` changed, as in ``dog_lif_tuning.py``) on class-balanced
images of the training split, counts its spikes once per image, pools the counts
over several grids (and their union, and square roots of the counts) and prints
the validation accuracy of the tier's logistic regression on each, its ``C``
chosen from ``--cs`` (default: the tier's grid) on a fifth of the training
images. The test set is never read.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from snnlib import data
from snnlib.readout import logistic_regression
from snnlib.tiers import dog_lif as D
from snnlib.tiers.dog_lif.layer import (_as_float, _checked_images, _coded_counts, _layer_run,
                                        _pool)

from _split import tuning_split
from dog_lif_tuning import add_variant_options, parse_sets

GRIDS = (1, 2, 3, 4)
COMBOS = [((3,), False), ((2, 3), False), ((1, 2, 3), False), ((3, 4), False), ((1, 3), False),
          ((3,), True), ((2, 3), True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=5000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    add_variant_options(ap)
    args = ap.parse_args()
    p = D.DoGLIFParams(**parse_sets(args.set))
    train = data.load_cifar10("train")
    itr, iva = tuning_split(train.labels, args.train, args.val, seed=args.seed)
    net = D.DoGLIF(p, seed=args.seed, learn=True)
    net.fit(train.images[itr], progress=False)

    def pooled(idx, seed):
        images = _checked_images(train.images[idx], "images", "dog_lif_pooling")
        rng = np.random.default_rng([args.seed, seed, 0])
        out = {g: [] for g in GRIDS}
        for i in range(0, len(idx), p.image_batch):
            j = min(len(idx), i + p.image_batch)
            x = net.retina._intensities(_as_float(images[i:j]), p)
            run = _layer_run(x.reshape(-1, x.shape[-1]), net.w_mv, net.theta_mv, p, rng)
            counts = _coded_counts(run, p)  # as DoGLIF.features counts them
            for g in GRIDS:
                out[g].append(_pool(counts, j - i, p.side, g).numpy())
        return {g: np.concatenate(v) for g, v in out.items()}

    start = time.perf_counter()
    ftr, fva = pooled(itr, 1), pooled(iva, 2)
    print(f"{' '.join(args.set) or 'defaults'}: {len(itr)} training and {len(iva)} validation "
          f"images; counts in {time.perf_counter() - start:.0f} s", flush=True)
    for grids, sqrt in COMBOS:
        a, b = (np.hstack([f[g] for g in grids]) for f in (ftr, fva))
        if sqrt:
            a, b = np.sqrt(a), np.sqrt(b)
        r = logistic_regression(a, train.labels[itr], b, train.labels[iva], cs=tuple(args.cs),
                                seed=args.seed, dtype=np.float32, max_iter=D.READOUT_MAX_ITER,
                                backend=D.READOUT_BACKEND)
        print(f"{'square root, ' if sqrt else ''}pools {grids}: {a.shape[1]} features, "
              f"validation accuracy {r['accuracy']:.3f} (C {r['c']}; C on the held-out fifth: "
              f"{r['validation']})", flush=True)


if __name__ == "__main__":
    main()
