"""Tuning probe: how much class information the convolutional tier-1 layers carry (validation only).

    python benchmarks/brian_stdp_conv_probe.py --train 2000 --val 1000
    python benchmarks/brian_stdp_conv_probe.py --w2 30 --set2 feedforward_inhibition=0  # no FFI
    python benchmarks/brian_stdp_conv_probe.py --train 5000 --val 2000 --no-twin --feature-steps 15 30 60
    python benchmarks/brian_stdp_conv_probe.py --train 5000 --val 2000 --no-twin --k2 128 \
        --feature-steps 60 --inh2 13 6 --pool2 2 3 --save k128.npz
    python benchmarks/brian_stdp_conv_probe.py --train 5000 --val 2000 --no-twin \
        --feature-steps 60 --gap2 13 10 --pool2 2 3

Every number it prints is measured on the *validation split* of the CIFAR-10
training set (:func:`snnlib.data.validation_split`: the last 500 training
images of each class); the test set is never read. The layers learn from the
first ``--train`` images of the training split; a logistic regression
(:func:`snnlib.readout.logistic_regression`, its ``C`` chosen on a fifth of
those) is fitted on their features and scored on ``--val`` validation images,
for: the retina's ON/OFF intensities (pixels), layer 1, layer 2, both, and the
random-weight twins of both layers (same thresholds rule, weights left at
their random start). It also prints the firing and layer 2's volley fraction.
With ``--feature-steps`` the same learned layers make features with each of
those presentation lengths (``Tier1Params.feature_steps``), each probed; with
``--inh2`` likewise for each inhibition among layer 2's neurons when the
layers no longer learn (``inhibition_mv``; in learning a winner always holds
its rivals at reset), and with ``--gap2`` for each threshold of layer 2
above rest (``v_gap_mv``) when the layers no longer learn. ``--pool2``
probes layer 2's counts summed over each of those grids of regions
(``features_pool[1]``). ``--f2`` sets layer 2's field (complex cells per
side), ``--steps`` the presentations' steps while the layers learn
(``--steps2``: layer 2's alone),
``--k1``/``--k2`` the filters, ``--w1``/``--w2`` their weight sums,
``--patches1``/``--patches2`` the
patches each layer learns from; ``--pool-refractory`` the complex cells'
refractory steps; ``--set1``/``--set2`` set any other field of a layer's
:class:`~snnlib.tiers.brian_stdp.network.ConvLayerParams` (e.g.
``--set2 feedforward_inhibition=0.5 a_plus=0.01``); every field not set is
the tier's (:class:`~snnlib.tiers.brian_stdp.network.Tier1Params`). ``--save`` writes the
spike counts of the first variant (or of each, numbered, with several).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import _fields


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--k1", type=int, default=32)
    parser.add_argument("--k2", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15,
                        help="steps per presentation while the layers learn")
    parser.add_argument("--steps2", type=int, default=None,
                        help="steps per presentation while layer 2 learns (default: --steps)")
    parser.add_argument("--f2", type=int, default=3, help="layer 2's field, in complex cells")
    parser.add_argument("--w1", type=float, default=None,
                        help="layer 1's weight sum, mV (default: the tier's)")
    parser.add_argument("--w2", type=float, default=None,
                        help="layer 2's weight sum, mV (default: the tier's)")
    parser.add_argument("--patches1", type=int, default=20000)
    parser.add_argument("--patches2", type=int, default=20000)
    parser.add_argument("--set1", nargs="*", default=[],
                        help="layer 1's ConvLayerParams fields (learning and features): NAME=VALUE")
    parser.add_argument("--set2", nargs="*", default=[],
                        help="layer 2's ConvLayerParams fields (learning and features): NAME=VALUE")
    parser.add_argument("--no-twin", action="store_true")
    parser.add_argument("--feature-steps", type=int, nargs="+", default=[0],
                        help="steps per image of the features (0: the learning steps)")
    parser.add_argument("--inh2", type=float, nargs="+", default=[None],
                        help="layer 2's inhibition (mV) when features are made")
    parser.add_argument("--gap2", type=float, nargs="+", default=[None],
                        help="layer 2's threshold above rest (mV) when features are made")
    parser.add_argument("--pool2", type=int, nargs="+", default=[],
                        help="also probe layer 2's counts pooled over these grids")
    parser.add_argument("--pool-refractory", type=int, default=0,
                        help="steps a complex cell ignores its inputs after a spike "
                             "(Tier1Params.pool_refractory_steps)")
    parser.add_argument("--save", help="write the learned layers' spike counts (npz) here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np

    from dataclasses import asdict, replace

    import snnlib as sl
    from snnlib.tiers.brian_stdp import network as N
    from snnlib.tiers.brian_stdp.pipeline import LR_CS

    try:
        (set1,), (set2,) = (_fields.parse_sets(pairs, N.ConvLayerParams)
                            for pairs in (args.set1, args.set2))
    except ValueError as error:
        parser.error(str(error))
    own = {"n_filters", "w_sum_mv", "train_patches", "patch_batch", "field_px"}
    if own & (set1.keys() | set2.keys()):
        parser.error(f"set {sorted(own & (set1.keys() | set2.keys()))} with --k1/--k2, --w1/--w2, "
                     "--patches1/--patches2, --f2 (patch_batch is fixed), not --set1/--set2")
    tier = N.Tier1Params()  # every field not set here is the tier's
    try:
        p = N.Tier1Params(
            steps=args.steps, steps2=args.steps2, pool_refractory_steps=args.pool_refractory,
            layer1=replace(tier.layer1, n_filters=args.k1,
                           w_sum_mv=tier.layer1.w_sum_mv if args.w1 is None else args.w1,
                           train_patches=args.patches1, patch_batch=500, **set1),
            layer2=replace(tier.layer2, n_filters=args.k2, field_px=args.f2,
                           w_sum_mv=tier.layer2.w_sum_mv if args.w2 is None else args.w2,
                           train_patches=args.patches2, patch_batch=250, **set2))
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    data = sl.data.load_cifar10("train")
    train_idx, val_idx = sl.data.validation_split(data.labels)
    train_idx, val_idx = train_idx[:args.train], val_idx[::len(val_idx) // args.val][:args.val]
    gray = sl.data.to_grayscale(data.images)
    retina = N.Retina.fit(gray[train_idx], p.retina, seed=args.seed)
    x_tr, x_va = retina.intensities(gray[train_idx]), retina.intensities(gray[val_idx])
    y_tr, y_va = data.labels[train_idx], data.labels[val_idx]
    result = {"split": "validation (last 500 training images per class)",
              "train_images": len(train_idx), "val_images": len(val_idx), "args": vars(args),
              "layers": [asdict(p.layer1), asdict(p.layer2)]}

    def probe(name, f_tr, f_va):
        acc = sl.readout.logistic_regression(f_tr, y_tr, f_va, y_va, seed=args.seed,
                                             cs=LR_CS)["accuracy"]
        result[name] = round(100 * acc, 2)
        print(f"{name}: {100 * acc:.2f}% validation", flush=True)

    probe("pixels (ON/OFF retina)", x_tr, x_va)
    probe("pixels (grayscale)", gray[train_idx], gray[val_idx])
    for twin in ([False] if args.no_twin else [False, True]):
        t0 = time.perf_counter()
        layers = N.train_layers(p, x_tr, seed=args.seed, learn=not twin, progress=True)
        tag = "random " if twin else ""
        result[f"{tag}learning_s"] = round(time.perf_counter() - t0, 1)
        moved = N.weights_moved(p, layers)
        result[f"{tag}weights_moved"] = moved
        variants = [(fs, inh, gap) for fs in args.feature_steps for inh in args.inh2
                    for gap in args.gap2]
        for n, (fs, inh, gap) in enumerate(variants):
            q = replace(p, feature_steps=fs or None)
            if inh is not None:
                q = replace(q, layer2=replace(q.layer2, inhibition_mv=inh))
            if gap is not None:
                q = replace(q, layer2=replace(q.layer2, v_gap_mv=gap))
            tag = ("random " if twin else "") + (f"{q.steps_frozen} steps, "
                                                  if len(args.feature_steps) > 1 else "") + (
                f"inhibition 2 {q.layer2.inhibition_mv} mV, " if len(args.inh2) > 1 else "") + (
                f"gap 2 {q.layer2.v_gap_mv} mV, " if len(args.gap2) > 1 else "")
            t0 = time.perf_counter()
            keep = (bool(args.save) or bool(args.pool2)) and not twin
            ftr = N.features(q, layers, x_tr, seed=1, keep_counts=keep, progress=True)
            fva = N.features(q, layers, x_va, seed=2, record_every=4, keep_counts=keep,
                             progress=True)
            if keep and args.save:
                path = args.save if len(variants) == 1 else args.save.replace(".npz", f"_{n}.npz")
                np.savez(path, y_tr=y_tr, y_va=y_va, features_sqrt=q.features_sqrt,
                         **{f"{k}_tr": v for k, v in ftr.items() if v is not None},
                         **{f"{k}_va": v for k, v in fva.items() if v is not None},
                         **{f"filters{i + 1}": f for i, f in enumerate(layers["filters"])},
                         **{f"thresholds{i + 1}": t for i, t in enumerate(layers["thresholds"])})
            result[f"{tag}frozen_images_s"] = round((len(x_tr) + len(x_va))
                                                    / (time.perf_counter() - t0), 2)
            result[f"{tag}spikes_per_image"] = [float(fva["spikes1"].mean()),
                                                float(fva["spikes2"].mean())]
            result[f"{tag}volley_fraction"] = fva["volley_fraction"]
            print(f"{tag}layers: moved {moved}, spikes/image {result[f'{tag}spikes_per_image']}, "
                  f"volleys {fva['volley_fraction']}", flush=True)
            probe(f"{tag}layer 1", ftr["f1"], fva["f1"])
            probe(f"{tag}layer 2", ftr["f2"], fva["f2"])
            probe(f"{tag}layers 1 + 2", np.hstack([ftr["f1"], ftr["f2"]]),
                  np.hstack([fva["f1"], fva["f2"]]))
            for grid in args.pool2 if keep else []:
                probe(f"{tag}layer 2 pooled {grid} x {grid}",
                      N.pool_counts(ftr["counts2"], grid), N.pool_counts(fva["counts2"], grid))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
