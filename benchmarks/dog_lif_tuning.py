"""Tier 2 design choices, measured: accuracy of the spiking layer's features for parameter variants.

Each variant is :class:`snnlib.tiers.dog_lif.DoGLIFParams` with some fields
changed (``--set name=value ...``), trained and read out exactly as
``run_tier`` does (STDP layer, pooled spike counts, standardised logistic
regression). The layer and the readout learn from class-balanced images of the
*training split* of the CIFAR-10 training set; the accuracy is measured on the
*validation split* (the last 500 training images of each class,
:func:`snnlib.data.validation_split`). The test set is never read.
``--variants stdp,random`` also measures the same layer with random weights.
``--grids 1 2 3`` reads out the counts pooled over several grids side by side
(a spatial pyramid; the layer pools on their least common multiple, whose
regions nest in each of them, :func:`pyramid`), ``--sqrt`` their square roots.
``--mirror`` also simulates each validation image's left-right mirror image and
averages the readout's class probabilities over the two (as the full profile's
run does with the test images). ``--mirror-train`` also simulates each training image's
mirror image and trains the readout on both (twice the rows; the held-out fifth that
chooses C may then hold an image whose mirror image it learned from).
``--second-scale D`` (D >= 2) also makes a
second layer of the same kind (learning, or random with ``random``) on the
images averaged over blocks of D x D pixels more than the first layer's (its
own retina and filters, ``DoGLIFParams.downsample``) and reads out both layers'
counts side by side; the same run also reads out the first layer alone, so the
two figures share its layer and split.

    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --set dt_ms=1.0
    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --set dt_ms=2.0 pool=4
    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --cs 0.003 0.01 0.03 0.1
    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --set k_winners=16
    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --grids 1 2 3 --sqrt
    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --variants stdp,random --mirror
    python benchmarks/dog_lif_tuning.py --train 20000 --val 5000 --second-scale 2
    python benchmarks/dog_lif_tuning.py --train 5000 --val 2000 --mirror --mirror-train

Prints one line per variant: validation accuracy, the readout's C, features per
image, images/s of the feature extraction and the layer's spikes per image
(with ``--second-scale``, of both layers together, and the first layer's
images/s also alone; ``C`` is chosen from ``--cs``, default the tier's grid, on
a fifth of the training images);
``--json`` also prints them as one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace

import numpy as np

from snnlib import data
from snnlib.readout import logistic_regression
from snnlib.tiers import dog_lif as D
from snnlib.tiers.brian_stdp.network import pool_pyramid

import _fields
from _split import SPLIT, tuning_split


def parse_sets(pairs: list[str]) -> dict:
    """``["n_filters=128", "dt_ms=2.0"]`` to typed keyword arguments of DoGLIFParams."""
    try:
        return _fields.parse_sets(pairs, D.DoGLIFParams)[0]
    except ValueError as error:
        raise SystemExit(str(error)) from None


def add_variant_options(ap: argparse.ArgumentParser) -> None:
    """``--set NAME=VALUE ...`` (DoGLIFParams fields, :func:`parse_sets`) and ``--cs`` (the
    logistic regression's C grid), shared by the tier-2 tuning scripts."""
    ap.add_argument("--set", nargs="*", default=[], help="DoGLIFParams fields: NAME=VALUE")
    ap.add_argument("--cs", type=float, nargs="+", default=list(D.READOUT_CS),
                    help="the logistic regression's C values (chosen on a fifth of training; "
                    "default the tier's READOUT_CS: figures measured before it held 0.001 chose "
                    "from 0.003 and 0.01)")


def pyramid(features: np.ndarray, params: D.DoGLIFParams, grids, sqrt: bool) -> np.ndarray:
    """Counts pooled on the layer's ``params.pool`` grid (``(n, n_features)``, the layout of
    :meth:`DoGLIF.features`, time window after time window) summed again over each of
    ``grids`` side by side, optionally square-rooted.

    Every grid must divide ``params.pool`` (``main`` pools on their least common multiple
    ``L``): with ``S`` positions per side, the coarse grid's edge :math:`\\lfloor iS/g \\rfloor`
    is the fine grid's edge number :math:`iL/g`, so each coarse region is a union of fine
    ones and the sums are those of pooling the positions directly (``tests/test_dog_lif.py``
    checks it).
    """
    fine = params.pool
    # each time window's counts are channels of their own (params.time_windows)
    cells = np.asarray(features).reshape(len(features), params.n_filters * params.time_windows,
                                         fine, fine)
    z = pool_pyramid(cells.transpose(0, 2, 3, 1), tuple(grids))
    return np.sqrt(z) if sqrt else z


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=5000, help="training images (class-balanced)")
    ap.add_argument("--val", type=int, default=2000,
                    help="validation images (class-balanced, from the validation split)")
    add_variant_options(ap)
    ap.add_argument("--variants", default="stdp", help="stdp, random or stdp,random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="also print a JSON line per variant")
    ap.add_argument("--grids", type=int, nargs="+", default=None,
                    help="read out the counts pooled over these grids side by side (default: "
                         "the layer's pool alone)")
    ap.add_argument("--sqrt", action="store_true", help="square roots of the pooled counts")
    ap.add_argument("--mirror", action="store_true",
                    help="also simulate each validation image's mirror image and average the "
                         "readout's class probabilities over the two")
    ap.add_argument("--mirror-train", action="store_true",
                    help="also simulate each training image's mirror image and train the "
                         "readout on both")
    ap.add_argument("--second-scale", type=int, default=None, metavar="D",
                    help="also a layer on the images averaged over D x D blocks, read out beside "
                         "the first (which is also read out alone)")
    args = ap.parse_args()
    params = D.DoGLIFParams(**parse_sets(args.set))
    grids = args.grids or [params.pool]
    if any(g < 1 for g in grids):
        raise SystemExit(f"--grids must be positive grid sizes, got {grids}")
    try:
        params = replace(params, pool=math.lcm(*grids))
    except ValueError as error:
        raise SystemExit(f"--grids {' '.join(map(str, grids))}: the layer pools on their least "
                         f"common multiple, and {error}") from None
    coarse = None  # the second scale's layer
    if args.second_scale is not None:
        if args.second_scale < 2:
            raise SystemExit(f"--second-scale must be at least 2 (the factor by which the "
                             f"second layer's images are averaged), got {args.second_scale}")
        try:
            coarse = replace(params, downsample=params.downsample * args.second_scale)
        except ValueError as error:
            raise SystemExit(f"--second-scale {args.second_scale}: {error}") from None
    train = data.load_cifar10("train")
    itr, iva = tuning_split(train.labels, args.train, args.val, seed=args.seed)

    def layer_features(p: D.DoGLIFParams, learn: bool) -> tuple:
        """One layer's training features (with their mirror images' below them) and validation
        features (and mirrored validation views)."""
        net = D.DoGLIF(p, seed=args.seed, learn=learn)
        net.fit(train.images[itr], progress=False)
        ftr = net.features(train.images[itr], seed=1, progress=False)
        fva = net.features(train.images[iva], seed=2, progress=False)
        xs = [pyramid(f["features"], p, grids, args.sqrt) for f in (ftr, fva)]
        if args.mirror_train:
            fmt = net.features(np.ascontiguousarray(train.images[itr][:, :, ::-1]), seed=4,
                               progress=False)
            xs[0] = np.concatenate([xs[0], pyramid(fmt["features"], p, grids, args.sqrt)])
        if args.mirror:
            fmi = net.features(np.ascontiguousarray(train.images[iva][:, :, ::-1]), seed=3,
                               progress=False)
            xs.append(pyramid(fmi["features"], p, grids, args.sqrt))
        return xs, fva

    def readout(xs: list) -> dict:
        y = train.labels[itr]
        return logistic_regression(xs[0], np.concatenate([y, y]) if args.mirror_train else y,
                                   xs[1], train.labels[iva],
                                   cs=tuple(args.cs), seed=args.seed, dtype=np.float32,
                                   max_iter=D.READOUT_MAX_ITER, backend=D.READOUT_BACKEND,
                                   test_views=xs[2:])

    for variant in args.variants.split(","):
        start = time.perf_counter()
        xs, fva = layer_features(params, variant == "stdp")
        first = None
        if coarse is not None:
            first = readout(xs)
            first["images_per_s"] = fva["images_per_s"]
            more, fva2 = layer_features(coarse, variant == "stdp")
            xs = [np.concatenate(pair, axis=1) for pair in zip(xs, more)]
            # images/s and spikes of the two layers together: each image goes through both
            fva = {"images_per_s": 1 / (1 / fva["images_per_s"] + 1 / fva2["images_per_s"]),
                   "layer_spikes_per_image": fva["layer_spikes_per_image"]
                   + fva2["layer_spikes_per_image"]}
        xva = xs[1]
        r = readout(xs)
        wall = time.perf_counter() - start
        label = " ".join(args.set + ([f"grids={','.join(map(str, grids))}"] if args.grids else [])
                         + (["sqrt"] if args.sqrt else []) + (["mirror"] if args.mirror else [])
                         + (["mirror-train"] if args.mirror_train else [])
                         + ([f"second-scale={args.second_scale}"] if first is not None else []))
        alone = (f" ({r['accuracy_test_x_alone']:.3f} without the mirror images)"
                 if args.mirror else "")
        if first is not None:
            alone += (f" (the first layer alone: {first['accuracy']:.3f}, C {first['c']}, "
                      f"{first['images_per_s']:.1f} images/s)")
        print(f"{variant:<7} {label or 'defaults':<40} validation accuracy "
              f"{r['accuracy']:.3f}{alone} (C {r['c']}), {xva.shape[1]} features, "
              f"{fva['images_per_s']:.1f} images/s, {fva['layer_spikes_per_image']:.0f} layer "
              f"spikes per image, {wall:.0f} s", flush=True)
        if args.json:
            print(json.dumps({"variant": variant, "set": args.set, "split": SPLIT,
                              "train_images": len(itr), "val_images": len(iva),
                              "validation_accuracy": r["accuracy"], "c": r["c"],
                              "grids": grids, "sqrt": args.sqrt, "mirror": args.mirror,
                              "mirror_train": args.mirror_train,
                              **({"validation_accuracy_without_mirror":
                                  r["accuracy_test_x_alone"]} if args.mirror else {}),
                              **({"second_scale": args.second_scale,
                                  "validation_accuracy_first_layer": first["accuracy"],
                                  "c_first_layer": first["c"],
                                  "images_per_s_first_layer": first["images_per_s"]}
                                 if first is not None else {}),
                              "features": xva.shape[1],
                              "images_per_s": fva["images_per_s"],
                              "layer_spikes_per_image": fva["layer_spikes_per_image"],
                              "wall_s": round(wall, 1)}), flush=True)


if __name__ == "__main__":
    main()
