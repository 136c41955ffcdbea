"""Tier 2's gap to k-means, taken apart: the filters (STDP or k-means) against the code (spikes or triangle).

Tier 2's spiking layer scores a few points below the k-means triangle code of the same whitened
patches (``benchmarks/kmeans_reference.py``). The two differ in their filters (learned by STDP
under winner-take-all, or by Lloyd's algorithm) and in their code (pooled spike counts of 30
noisy steps, or the triangle code of distances to the centroids). This script swaps the halves,
with one retina, one split and one readout for all of them:

1. the tier: STDP filters, spike counts;
2. k-means centroids as the layer's weights (:func:`~snnlib.tiers.dog_lif.kmeans.weights_from_centroids`:
   split into ON and OFF parts and scaled to the layer's weight sum; thresholds adapted by the
   layer's homeostasis, the weights never learn), spike counts;
3. STDP filters as centroids (:func:`~snnlib.tiers.dog_lif.kmeans.centroids_from_weights`: ON minus
   OFF weights, all at the median length of the k-means centroids), triangle code;
4. k-means centroids, all at their median length, triangle code;
5. k-means centroids as fitted, triangle code (``kmeans_reference.py``'s figure).

Rows 1 and 2 differ only in the filters, rows 3 and 4 only in their directions; 2 and 4 differ
only in the code (the same directions); 4 and 5 in the centroids' lengths, which the spiking
layer's normalised weights do not have. Rows 1 and 3 differ in the code and in a part of the
STDP filters: row 3 keeps the linear part of each neuron's drive and drops the part blind to
the sign of each value (:func:`~snnlib.tiers.dog_lif.kmeans.centroids_from_weights`). The two spiking layers are simulated together on the same input
spikes (:func:`~snnlib.tiers.dog_lif.features_together`; seeds 1 for the training images and
2 for the validation images, as ``dog_lif_tuning.py``). The retina, STDP, k-means (on
``--patches`` patches of the first 10,000 images, ``--iterations`` iterations) and the readout
learn from class-balanced images of the training split; accuracy is measured on the validation
split (the last 500 training images of each class). The test set is never read.

    python benchmarks/dog_lif_dictionaries.py --train 5000 --val 2000
    python benchmarks/dog_lif_dictionaries.py --train 20000 --val 5000 \\
        --append results/dog_lif_dictionaries.json --name '20,000 training images'

Prints each row's validation accuracy and C, the time of each phase and one line of JSON;
``--append PATH --name NAME`` also stores it, with its command line, in the JSON list at PATH.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from snnlib import data
from snnlib.progress import tqdm
from snnlib.readout import logistic_regression
from snnlib.tiers import dog_lif as D
from snnlib.tiers.dog_lif.kmeans import (centroids_from_weights, kmeans_features, kmeans_fit,
                                         sample_patches, weights_from_centroids)

from _split import SPLIT, tuning_split
from cnn_techniques import add_store_arguments, check_store_arguments, print_and_store
from dog_lif_tuning import add_variant_options, parse_sets

PATCH_IMAGES = 10_000
"""k-means learns from patches of the first this many images of the --train selection (as in
kmeans_reference.py)."""

ROWS = {"stdp_spikes": "STDP filters, spike counts (the tier)",
        "kmeans_spikes": "k-means centroids as weights, spike counts",
        "stdp_triangle": "STDP filters as centroids (one length), triangle code",
        "kmeans_triangle_one_length": "k-means centroids (one length), triangle code",
        "kmeans_triangle": "k-means centroids as fitted, triangle code"}
"""The rows, in the order printed and stored."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=5000, help="training images (class-balanced)")
    ap.add_argument("--val", type=int, default=2000, help="validation images (class-balanced)")
    ap.add_argument("--patches", type=int, default=400_000, help="patches k-means learns from")
    ap.add_argument("--iterations", type=int, default=10, help="iterations of Lloyd's algorithm")
    ap.add_argument("--seed", type=int, default=0)
    add_variant_options(ap)
    add_store_arguments(ap)
    args = ap.parse_args()
    check_store_arguments(ap, args)
    try:
        p = D.DoGLIFParams(**parse_sets(args.set))
    except (ValueError, TypeError) as error:
        ap.error(f"--set: {error}")
    if args.seed < 0:
        ap.error(f"--seed must be 0 or more, got {args.seed}")
    if args.train < 10 or args.val < 10:
        ap.error("--train and --val must be at least 10 (one image of each class)")
    if args.patches < p.n_filters or args.iterations < 1:
        ap.error(f"--patches ({args.patches}) must be at least the layer's filters "
                 f"({p.n_filters}) and --iterations ({args.iterations}) at least 1")
    train = data.load_cifar10("train")
    itr, iva = tuning_split(train.labels, args.train, args.val, seed=args.seed)
    phases = {}

    start = time.perf_counter()
    stdp = D.DoGLIF(p, seed=args.seed, learn=True)
    stdp.fit(train.images[itr], progress=False)
    phases["stdp_s"] = time.perf_counter() - start
    start = time.perf_counter()
    patches = sample_patches(train.images[itr[:PATCH_IMAGES]], stdp.retina, p, args.patches,
                             seed=args.seed)
    centroids, objective = kmeans_fit(patches, p.n_filters, iterations=args.iterations,
                                      seed=args.seed)
    del patches
    phases["kmeans_s"] = time.perf_counter() - start
    start = time.perf_counter()
    swapped = D.DoGLIF(p, seed=args.seed, learn=False)
    swapped.w_mv = weights_from_centroids(centroids, p)
    swapped.w_initial = swapped.w_mv.clone()
    swapped.fit(train.images[itr], progress=False, retina=stdp.retina)  # its thresholds
    phases["kmeans_layer_thresholds_s"] = time.perf_counter() - start

    lengths = centroids.norm(dim=1)
    one_length = float(lengths.median())
    codes = {"stdp_triangle": centroids_from_weights(stdp.w_mv, p, norm=one_length),
             "kmeans_triangle_one_length": centroids * (one_length / lengths[:, None]),
             "kmeans_triangle": centroids}
    feats = {row: {} for row in ROWS}
    start = time.perf_counter()
    for name, index, seed in (("training", itr, 1), ("validation", iva, 2)):
        both = D.features_together([stdp, swapped], train.images[index], seed=seed,
                                   progress=True)
        feats["stdp_spikes"][name] = both[0]["features"]
        feats["kmeans_spikes"][name] = both[1]["features"]
    phases["spiking_features_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for name, index in (("training", itr), ("validation", iva)):
        parts = {row: [] for row in codes}
        for s in tqdm(range(0, len(index), 1000), desc=f"triangle codes, {name} images",
                      unit="kimg"):
            block = train.images[index[s:s + 1000]]
            for row, c in codes.items():
                parts[row].append(kmeans_features(block, stdp.retina, p, c))
        for row in codes:
            feats[row][name] = np.concatenate(parts[row])
    phases["triangle_features_s"] = time.perf_counter() - start

    results = {}
    start = time.perf_counter()
    for row, label in ROWS.items():
        r = logistic_regression(feats[row]["training"], train.labels[itr],
                                feats[row]["validation"], train.labels[iva],
                                cs=tuple(args.cs), seed=args.seed, dtype=np.float32,
                                max_iter=D.READOUT_MAX_ITER, backend=D.READOUT_BACKEND)
        results[row] = {"what": label, "val_accuracy": r["accuracy"], "c": r["c"]}
        print(f"{label:<56} validation accuracy {100 * r['accuracy']:.2f}% (C {r['c']})",
              flush=True)
    phases["readouts_s"] = time.perf_counter() - start
    print("phases (s): " + ", ".join(f"{k} {v:.0f}" for k, v in phases.items()), flush=True)
    result = {"split": SPLIT, "train_images": len(itr), "val_images": len(iva),
              "set": args.set, "filters": p.n_filters, "patches": args.patches,
              "iterations": args.iterations,
              "kmeans_objective": [round(j, 4) for j in objective],
              "centroid_lengths": {"median": round(one_length, 4),
                                   "5th_percentile": round(float(lengths.quantile(0.05)), 4),
                                   "95th_percentile": round(float(lengths.quantile(0.95)), 4)},
              "features": int(feats["stdp_spikes"]["validation"].shape[1]),
              "rows": results, **{k: round(v, 1) for k, v in phases.items()}}
    print_and_store(args, result, "dog_lif_dictionaries.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
