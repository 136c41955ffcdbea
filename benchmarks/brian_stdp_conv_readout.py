"""Tuning probe: the R-STDP output layer on the convolutional tier 1's features (validation only).

    python benchmarks/brian_stdp_conv_probe.py --train 5000 --val 2000 --no-twin --save feats.npz
    python benchmarks/brian_stdp_conv_readout.py feats.npz                  # 10 per class
    python benchmarks/brian_stdp_conv_readout.py feats.npz --per-class 1     # the ablations
    python benchmarks/brian_stdp_conv_readout.py feats.npz --prediction running_mean
    python benchmarks/brian_stdp_conv_readout.py feats.npz --set max_rate_hz=500
    python benchmarks/brian_stdp_conv_readout.py feats.npz --pool2 1 2 3 --sqrt  # saved counts

Reads the spike-count features that ``brian_stdp_conv_probe.py --save`` wrote
(layers 1 + 2, training split and validation split of the CIFAR-10 training
set), trains :class:`snnlib.tiers.brian_stdp.output.PopulationReadout` on the
training features and prints its validation accuracy after every epoch, next
to logistic regressions on the same features (layers 1 + 2, and layer 2 alone; ``C``
from the tier's grid). The test set is never read.
``--pool2 GRID ...`` sums layer 2's saved per-position counts over each
``GRID x GRID`` grid of regions instead, side by side (``Tier1Params.features_pool[1]``);
``--sqrt`` reads the square roots of the counts (refused for a file whose features
are already rooted, ``Tier1Params.features_sqrt``: layer 2's re-pooled counts are then
rooted too, as layer 1's saved ones are).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from _fields import parse_sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features", help="an npz written by brian_stdp_conv_probe.py --save")
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--prediction", default="confidence",
                        choices=("confidence", "running_mean", "none"),
                        help="the reward prediction subtracted from the reward")
    parser.add_argument("--epochs", type=int, default=8,
                        help="epochs of the output layer (0: the logistic regressions alone)")
    parser.add_argument("--eta", type=float, default=0.1)
    parser.add_argument("--eta-decay", type=float, default=1.0)
    parser.add_argument("--eval-steps", type=int, default=20, help="steps per image when deciding")
    parser.add_argument("--train", type=int, default=0, help="use the first N (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-lr", action="store_true")
    parser.add_argument("--pool2", type=int, nargs="+", default=[],
                        help="layer 2's counts summed over these grids (default: as saved)")
    parser.add_argument("--sqrt", action="store_true", help="square roots of the counts")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="any other PopulationParams field (a number or true/false)")
    args = parser.parse_args()

    import numpy as np

    from snnlib import readout
    from snnlib.tiers.brian_stdp import output as O

    try:
        extra = parse_sets(args.set, O.PopulationParams)[0]
    except ValueError as error:
        parser.error(str(error))
    from snnlib.tiers.brian_stdp import network as N
    from snnlib.tiers.brian_stdp.pipeline import LR_CS

    d = np.load(args.features)
    if args.pool2 and "counts2_tr" not in d:
        parser.error(f"--pool2 needs layer 2's per-position counts, which {args.features} lacks "
                     "(write it with brian_stdp_conv_probe.py --save)")

    rooted = bool(d["features_sqrt"]) if "features_sqrt" in d else False  # older files: counts
    if rooted and args.sqrt:
        parser.error(f"{args.features} already holds the square roots of the counts "
                     "(features_sqrt); leave out --sqrt")

    def layer2(s):
        if not args.pool2:
            return d[f"f2_{s}"]
        pooled = N.pool_pyramid(d[f"counts2_{s}"], tuple(args.pool2))
        return np.sqrt(pooled) if rooted else pooled  # as layer 1's saved features

    f_tr, f_va = (np.hstack([d[f"f1_{s}"], layer2(s)]).astype(float) for s in ("tr", "va"))
    if args.sqrt:
        f_tr, f_va = np.sqrt(f_tr), np.sqrt(f_va)
    y_tr, y_va = d["y_tr"], d["y_va"]
    if args.train:
        f_tr, y_tr = f_tr[:args.train], y_tr[:args.train]
    result = {"split": "validation (last 500 training images per class)",
              "train_images": len(f_tr), "val_images": len(f_va), "args": vars(args)}
    if not args.no_lr:
        n1 = d["f1_tr"].shape[1]
        for name, cols in (("layers 1 + 2", slice(None)), ("layer 2", slice(n1, None))):
            lr = readout.logistic_regression(f_tr[:, cols], y_tr, f_va[:, cols], y_va,
                                             seed=args.seed, cs=LR_CS)["accuracy"]
            result[f"logistic_regression, {name}"] = lr
            print(f"logistic regression, {name}: {100 * lr:.2f}% validation", flush=True)
    if args.epochs < 1:
        print(json.dumps(result))
        return 0
    p = O.PopulationParams(neurons_per_class=args.per_class, prediction=args.prediction,
                           eta=args.eta, eta_decay=args.eta_decay, eval_steps=args.eval_steps,
                           epochs=1, **extra)
    net = O.PopulationReadout(p, f_tr.shape[1], seed=args.seed)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        history = net.fit(f_tr, y_tr, validation=(f_va, y_va))
        print(f"epoch {epoch + 1}: train (while learning) {100 * history['train_accuracy'][-1]:.2f}%, "
              f"validation {100 * history['validation_accuracy'][-1]:.2f}%, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    result.update(history=history, wall_s=round(time.perf_counter() - t0, 1),
                  best_validation=max(history["validation_accuracy"]))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
