"""Tier 2 design choices, measured: accuracy of the spiking layer's features for parameter variants.

Each variant is :class:`snnlib.tiers.dog_lif.DoGLIFParams` with some fields
changed (``--set name=value ...``), trained and read out exactly as
``run_tier`` does (STDP layer, pooled spike counts, standardised logistic
regression), on class-balanced training and test images (shuffled, since the
retina is fitted on the first 2,000). ``--variants stdp,random`` also
measures the same layer with random weights.

    python benchmarks/dog_lif_tuning.py --train 5000 --test 1000 --set dt_ms=1.0
    python benchmarks/dog_lif_tuning.py --train 5000 --test 1000 --set dt_ms=2.0 pool=4

Prints one line per variant: accuracy, the readout's C, features per image,
images/s of the feature extraction and the layer's spikes per image.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from snnlib import data
from snnlib.readout import logistic_regression
from snnlib.tiers import dog_lif as D


def parse_sets(pairs: list[str]) -> dict:
    """``["n_filters=128", "dt_ms=2.0"]`` to typed keyword arguments of DoGLIFParams."""
    defaults = D.DoGLIFParams()
    names = {f.name for f in dataclasses.fields(D.DoGLIFParams)}
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in names or not value:
            raise SystemExit(f"--set wants NAME=VALUE with NAME one of {sorted(names)}; got {pair!r}")
        current = getattr(defaults, name)
        out[name] = type(current)(value) if not isinstance(current, str) else value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=5000, help="training images (class-balanced)")
    ap.add_argument("--test", type=int, default=1000, help="test images (class-balanced)")
    ap.add_argument("--set", nargs="*", default=[], help="DoGLIFParams fields: NAME=VALUE")
    ap.add_argument("--variants", default="stdp", help="stdp, random or stdp,random")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    params = D.DoGLIFParams(**parse_sets(args.set))
    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    rng = np.random.default_rng(args.seed)
    itr = rng.permutation(data.balanced_subset(train.labels, args.train // 10, seed=args.seed))
    ite = data.balanced_subset(test.labels, args.test // 10, seed=args.seed)
    for variant in args.variants.split(","):
        start = time.perf_counter()
        net = D.DoGLIF(params, seed=args.seed, learn=(variant == "stdp"))
        net.fit(train.images[itr], progress=False)
        ftr = net.features(train.images[itr], seed=1, progress=False)
        fte = net.features(test.images[ite], seed=2, progress=False)
        r = logistic_regression(ftr["features"], train.labels[itr], fte["features"],
                                test.labels[ite], cs=D.READOUT_CS, seed=args.seed,
                                dtype=np.float32, max_iter=D.READOUT_MAX_ITER)
        print(f"{variant:<7} {' '.join(args.set) or 'defaults':<40} accuracy {r['accuracy']:.3f} "
              f"(C {r['c']}), {params.n_features} features, {fte['images_per_s']:.1f} images/s, "
              f"{fte['layer_spikes_per_image']:.0f} layer spikes per image, "
              f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
