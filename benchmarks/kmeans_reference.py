"""Tier 2 without spikes: k-means triangle features (Coates et al. 2011) on the tier's retina.

The same whitened patches, pooling grid and readout as tier 2
(:class:`snnlib.tiers.dog_lif.DoGLIFParams` ``patch_px``, ``norm_eps``, ``zca_eps``, ``pool``;
the tier's standardised logistic regression), with the STDP layer's spike counts replaced by the
triangle code of k-means centroids (:mod:`snnlib.tiers.dog_lif.kmeans`): what the features of this
family reach without spikes. The retina, the centroids and the readout learn from class-balanced
images of the training split; the accuracy is measured on the validation split (the last 500
training images of each class, :func:`snnlib.data.validation_split`). The test set is never
read.

    python benchmarks/kmeans_reference.py --train 5000 --val 2000       # the tier's geometry
    python benchmarks/kmeans_reference.py --train 45000 --val 5000 \\
        --centroids 1600 --patch-px 6 --pool 2

    python benchmarks/kmeans_reference.py --train 20000 --val 5000 --second-layer 1024
    python benchmarks/kmeans_reference.py --train 45000 --val 5000 --second-scale 2

The second line is Coates et al.'s own choice (1,600 centroids, 6 x 6 patches, quadrants). The
third adds a second k-means layer (:class:`snnlib.tiers.dog_lif.kmeans.SecondLayer`: the first
layer's code averaged over 2 x 2 blocks, its 3 x 3 neighbourhoods contrast-normalised, whitened
onto ``--second-dims`` directions, coded by ``--second-layer`` centroids and pooled over
quadrants) and reads out both layers' features together; the same run also reads out the first
layer's alone, so the two figures share their retina, centroids and split. The second layer
learns from ``--second-patches`` neighbourhoods of the same first 10,000 images as k-means.
The fourth adds a second scale instead: the same code (its own retina and ``--centroids``
centroids, fitted as the first's) of the images averaged over blocks of 2 x 2 pixels
(``DoGLIFParams.downsample``), so that its 5-pixel patches cover 10 pixels; the two scales'
features are read out together, and the first scale's alone in the same run.
k-means runs ``--iterations`` iterations of Lloyd's algorithm on ``--patches`` random patches of
the first 10,000 images of the ``--train`` selection (class-balanced and shuffled, as the retina
is fitted on its first 2,000). The readout chooses C from a wider grid than the tier's
(``READOUT_CS`` was 0.003 and 0.01 when this table was made), on a fifth of the training images
as the tier does: with 45,000 training images the best C of this code was 0.03.

Prints the validation accuracy, the readout's C, the features per image and the time of each
phase, and one line of JSON; ``--append PATH --name NAME`` also stores it, with its command line, in
the JSON list at PATH (``results/kmeans_reference.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np

from snnlib import data
from snnlib.progress import tqdm
from snnlib.readout import logistic_regression
from snnlib.tiers import dog_lif as D
from snnlib.tiers.dog_lif.kmeans import (SecondLayer, kmeans_features, kmeans_fit,
                                         sample_patches)

from _split import SPLIT, tuning_split
from cnn_techniques import add_store_arguments, check_store_arguments, print_and_store

PATCH_IMAGES = 10_000
"""k-means learns from patches of the first this many images of the --train selection."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=5000, help="training images (class-balanced)")
    ap.add_argument("--val", type=int, default=2000,
                    help="validation images (class-balanced, from the validation split)")
    ap.add_argument("--centroids", type=int, default=512, help="k (the tier: 512 filters)")
    ap.add_argument("--patch-px", type=int, default=5)
    ap.add_argument("--pool", type=int, default=3)
    ap.add_argument("--norm-eps", type=float, default=D.DoGLIFParams.norm_eps,
                    help="contrast floor of the per-patch normalisation (DoGLIFParams.norm_eps)")
    ap.add_argument("--zca-eps", type=float, default=D.DoGLIFParams.zca_eps)
    ap.add_argument("--patches", type=int, default=400_000, help="patches k-means learns from")
    ap.add_argument("--iterations", type=int, default=10, help="iterations of Lloyd's algorithm")
    ap.add_argument("--cs", type=float, nargs="+", default=[0.001, 0.003, 0.01, 0.03, 0.1],
                    help="the logistic regression's C values (chosen on a fifth of training)")
    ap.add_argument("--second-layer", type=int, default=0, metavar="K2",
                    help="centroids of a second k-means layer (0: none)")
    ap.add_argument("--second-dims", type=int, default=384,
                    help="whitened directions of the second layer's neighbourhoods")
    ap.add_argument("--second-patches", type=int, default=200_000,
                    help="neighbourhoods the second layer learns from")
    ap.add_argument("--second-scale", type=int, default=None, metavar="D",
                    help="also the code of the images averaged over D x D blocks (read out "
                         "beside the first scale's)")
    ap.add_argument("--seed", type=int, default=0)
    add_store_arguments(ap)
    args = ap.parse_args()
    check_store_arguments(ap, args)
    try:
        p = D.DoGLIFParams(n_filters=args.centroids, patch_px=args.patch_px, pool=args.pool,
                           norm_eps=args.norm_eps, zca_eps=args.zca_eps)
    except (TypeError, ValueError) as error:
        ap.error(str(error))
    if args.patches < args.centroids or args.iterations < 1:
        ap.error(f"--patches ({args.patches}) must be at least --centroids ({args.centroids}) "
                 f"and --iterations ({args.iterations}) at least 1")
    if args.second_layer < 0 or (args.second_layer and not (
            1 <= args.second_dims <= 9 * args.centroids
            and max(2, args.second_layer) <= args.second_patches <= 2 ** 24)):
        ap.error("--second-layer must be 0 or positive, --second-dims from 1 to 9 x "
                 "--centroids (the values of a 3 x 3 neighbourhood) and --second-patches from "
                 "--second-layer (and 2) to 2**24")
    coarse = None
    if args.second_scale is not None:
        if args.second_layer:
            ap.error("--second-scale and --second-layer are measured one at a time")
        if args.second_scale < 2:
            ap.error(f"--second-scale must be at least 2 (the factor by which the second "
                     f"scale's images are averaged), got {args.second_scale}")
        try:
            coarse = replace(p, downsample=p.downsample * args.second_scale)
        except ValueError as error:
            ap.error(f"--second-scale {args.second_scale}: {error}")
    if args.second_layer and p.side // 2 - 2 < 2:
        ap.error(f"--patch-px {args.patch_px} leaves too few places for a second layer's 3 x 3 "
                 "neighbourhoods of 2 x 2 blocks pooled over quadrants")
    train = data.load_cifar10("train")
    itr, iva = tuning_split(train.labels, args.train, args.val, seed=args.seed)
    phases = {}
    start = time.perf_counter()

    def fit_code(q: D.DoGLIFParams) -> tuple:
        """The retina, centroids and k-means objective of the code with parameters ``q``."""
        fitted = D.RetinaFit.fit(train.images[itr], q, seed=args.seed)
        patches = sample_patches(train.images[itr[:PATCH_IMAGES]], fitted, q, args.patches,
                                 seed=args.seed)
        return (fitted, *kmeans_fit(patches, args.centroids, iterations=args.iterations,
                                    seed=args.seed))

    retina, centroids, objective = fit_code(p)
    scale2 = None if coarse is None else fit_code(coarse)[:2]  # its retina and centroids
    second = None
    if args.second_layer:
        second = SecondLayer.fit(train.images[itr[:PATCH_IMAGES]], retina, p, centroids,
                                 args.second_layer, dims=args.second_dims,
                                 n_patches=args.second_patches, seed=args.seed)
    phases["retina_and_kmeans_s"] = time.perf_counter() - start
    start = time.perf_counter()
    feats = {}
    for name, index in (("training", itr), ("validation", iva)):
        parts = []
        for s in tqdm(range(0, len(index), 1000), desc=f"k-means features, {name} images",
                      unit="kimg"):
            block = train.images[index[s:s + 1000]]
            codes = [kmeans_features(block, retina, p, centroids) if second is None else
                     second.features(block, retina, p, with_first=True)]
            if scale2 is not None:
                codes.append(kmeans_features(block, scale2[0], coarse, scale2[1]))
            parts.append(np.concatenate(codes, axis=1))
        feats[name] = np.concatenate(parts)
    phases["features_s"] = time.perf_counter() - start
    images_per_s = (len(itr) + len(iva)) / phases["features_s"]
    start = time.perf_counter()

    def readout(columns):
        return logistic_regression(feats["training"][:, columns], train.labels[itr],
                                   feats["validation"][:, columns], train.labels[iva],
                                   cs=tuple(args.cs), seed=args.seed, dtype=np.float32,
                                   max_iter=D.READOUT_MAX_ITER, backend=D.READOUT_BACKEND)

    r = readout(slice(None))
    phases["readout_s"] = time.perf_counter() - start
    first = None
    if second is not None or coarse is not None:
        first = readout(slice(0, args.centroids * args.pool ** 2))
    result = {"split": SPLIT, "train_images": len(itr), "val_images": len(iva),
              "centroids": args.centroids, "patch_px": args.patch_px, "pool": args.pool,
              "norm_eps": args.norm_eps, "zca_eps": args.zca_eps, "patches": args.patches,
              "iterations": args.iterations,
              "kmeans_objective": [round(j, 4) for j in objective],
              "features": int(feats["validation"].shape[1]), "c": r["c"],
              "c_validation": {str(c): a for c, a in r["validation"].items()},
              "images_per_s": round(images_per_s, 1),
              **{k: round(v, 1) for k, v in phases.items()},
              "val_accuracy": r["accuracy"]}
    if second is not None:
        result["second_layer"] = {
            "centroids": second.k, "dims": args.second_dims, "patches": args.second_patches,
            "local_px": second.local_px, "size": second.size, "pool": second.pool,
            "contrast_eps": second.contrast_eps,
            "kmeans_objective": [round(j, 4) for j in second.objective],
            "features": second.k * second.pool ** 2}
    if coarse is not None:
        result["second_scale"] = {"downsample": coarse.downsample, "centroids": args.centroids,
                                  "patch_px": coarse.patch_px, "positions_per_side": coarse.side,
                                  "features": args.centroids * args.pool ** 2}
    if first is not None:
        result["val_accuracy_first_layer"] = first["accuracy"]
        result["c_first_layer"] = first["c"]
    print(f"k-means, {args.centroids} centroids of {args.patch_px} x {args.patch_px} patches, "
          f"{args.pool} x {args.pool} pooling: validation accuracy {100 * r['accuracy']:.2f}% "
          f"(C {r['c']}), {result['features']} features, {images_per_s:.1f} images/s; "
          f"k-means {phases['retina_and_kmeans_s']:.0f} s, features {phases['features_s']:.0f} s, "
          f"readout {phases['readout_s']:.0f} s", flush=True)
    if coarse is not None:
        print(f"with a second scale, the images averaged over {coarse.downsample} x "
              f"{coarse.downsample} blocks (both scales read out together); the first scale "
              f"alone: {100 * first['accuracy']:.2f}% (C {first['c']})", flush=True)
    if second is not None:
        print(f"with a second layer of {second.k} centroids (both layers read out together); "
              f"the first layer alone: {100 * first['accuracy']:.2f}% (C {first['c']})",
              flush=True)
    print_and_store(args, result, "kmeans_reference.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
