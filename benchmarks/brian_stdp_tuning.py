"""Tuning tier 1 for CIFAR-10: Diehl & Cook's constants against the retuned ones.

    python benchmarks/brian_stdp_tuning.py                      # every variant, layer 1
    python benchmarks/brian_stdp_tuning.py dc s05 --images 300
    python benchmarks/brian_stdp_tuning.py --layer2 3 6         # layer 2 sums, on the tuned layer 1

Each layer-1 variant trains layer 1 (``--neurons`` neurons, cython) on the
same class-balanced training images with the same seed, then measures, with
learning off, the layer's spikes for ``--eval`` validation images (the last 500
training images of each class; the test set is never read). Printed per
variant: training rate, images boosted, mean and largest threshold theta,
the fraction of *learned* fields (correlation with the initial weights below
0.5), their median smoothness and their similarity
(``brian_stdp.field_smoothness`` / ``field_similarity``), validation spikes and
active neurons per image, wall time. Variants:

- ``dc``: Diehl & Cook's MNIST constants (normalisation sum 0.1 per input,
  theta time constant 1e7 ms);
- ``s05``, ``s03``: normalisation sum 0.05 / 0.03 per input;
- ``r25``: max input rate 25 Hz instead of 63.75;
- ``s05_inh40``: sum 0.05 and inhibition 40 instead of 17;
- ``s05_tt5`` (what ``params_for_profile`` uses): sum 0.05 and theta time
  constant 1e5 ms; ``s05_tt5_soft`` the same with soft STDP bounds (every
  other variant has Diehl & Cook's hard bounds);
- ``s05_tt5_inh40``, ``s05_th05`` (theta_plus 0.5 mV instead of 0.05).

``--layer2 S ...`` trains the tuned layer 1, then layer 2 (half as many
neurons) with each normalisation sum per input S, and prints its rates,
boosts and throughput. Not a test: one seed, small sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

VARIANTS = {
    "dc": dict(s=0.1, tau_theta=1e7),
    "s05": dict(s=0.05, tau_theta=1e7),
    "s03": dict(s=0.03, tau_theta=1e7),
    "r25": dict(s=0.1, tau_theta=1e7, rate=25.0),
    "s05_inh40": dict(s=0.05, tau_theta=1e7, inh=40.0),
    "s05_tt5": dict(s=0.05, tau_theta=1e5),
    "s05_tt5_inh40": dict(s=0.05, tau_theta=1e5, inh=40.0),
    "s05_th05": dict(s=0.05, tau_theta=1e7, theta_plus=0.5),
    "s05_tt5_soft": dict(s=0.05, tau_theta=1e5, bounds="soft"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=list(VARIANTS),
                        help=f"any of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--images", type=int, default=300, help="training images (multiple of 10)")
    parser.add_argument("--eval", type=int, default=100, help="validation images for the spike counts")
    parser.add_argument("--layer2", type=float, nargs="*", default=None,
                        help="layer-2 normalisation sums per input to compare")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")

    import numpy as np

    import snnlib as sl
    from snnlib.tiers import brian_stdp as T

    # layers learn from the training split; their spikes are measured on the validation split
    # (the last 500 training images of each class); the test set is not read
    train = sl.data.load_cifar10("train")
    train_split, val_split = sl.data.validation_split(train.labels)
    idx = train_split[sl.data.balanced_subset(train.labels[train_split], args.images // 10,
                                              seed=args.seed)]
    idx = idx[np.random.default_rng(args.seed).permutation(len(idx))]
    x, y = sl.data.to_grayscale(train.images[idx]), train.labels[idx]
    val_idx = val_split[sl.data.balanced_subset(train.labels[val_split], args.eval // 10,
                                                seed=args.seed)]
    xt, yt = sl.data.to_grayscale(train.images[val_idx]), train.labels[val_idx]
    base = T.params_for_profile(sl.profiles.get_profile("book"))

    def layer1(v, name):
        exc = replace(T.DC_EXC, tau_theta_ms=v["tau_theta"], theta_plus_mv=v.get("theta_plus", 0.05))
        bounds = v.get("bounds", "hard")
        return replace(base.layer1, n_neurons=args.neurons, exc=exc, weight_sum_per_input=v["s"],
                       w_inh_exc=v.get("inh", 17.0),
                       stdp=replace(base.layer1.stdp, bounds=bounds))

    print(f"# tier-1 tuning: {args.neurons} neurons, {len(x)} CIFAR-10 training images, "
          f"{len(xt)} validation images, seed {args.seed}")
    if args.layer2 is None:
        print("| variant | train rate (Hz) | boosted | theta mean / max (mV) | learned | smoothness "
              "| similarity | validation spikes/img | active/img | wall (s) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in args.variants:
            v = VARIANTS[name]
            enc = replace(base.encoding, max_rate_hz=v.get("rate", base.encoding.max_rate_hz))
            params = replace(base, encoding=enc, layer1=layer1(v, name), layer2=None)
            net = T.BrianSTDPNetwork(params, seed=args.seed)
            w0 = net.weights(1)
            start = time.perf_counter()
            fit = net.fit(x, progress=False)
            counts = net.spike_counts(xt)[0]
            w = net.weights(1)
            learned = T.learned_fraction(w, w0)
            th = net.theta_mv(1)
            print(f"| {name} | {fit['rate_hz'][0]:.2f} | {fit['boosted']} | {th.mean():.1f} / "
                  f"{th.max():.1f} | {learned:.2f} | {np.median(T.field_smoothness(w)):.2f} | "
                  f"{T.field_similarity(w):.3f} | {counts.sum(1).mean():.1f} | "
                  f"{(counts > 0).sum(1).mean():.1f} | {time.perf_counter() - start:.0f} |",
                  flush=True)
        return 0

    from snnlib import readout

    print("| layer-2 sum per input | layer-2 train rate (Hz) | boosted | presentations | "
          "silent after boosts | layer-2 images/s | validation spikes/img (l1, l2) | layer-2 volleys | "
          "LR on layer-2 counts |")
    print("|---|---|---|---|---|---|---|---|---|")
    tuned = base.layer1
    params = replace(base, layer1=replace(tuned, n_neurons=args.neurons), layer2=None)
    net = T.BrianSTDPNetwork(params, seed=args.seed)
    net.fit(x, progress=False)
    state = net.state_dict()
    for s in args.layer2:
        l2 = replace(base.layer2, n_neurons=max(1, args.neurons // 2), weight_sum_per_input=s,
                     stdp=replace(base.layer2.stdp, w_max=max(base.layer2.stdp.w_max, 4 * s)))
        net2 = T.BrianSTDPNetwork(replace(params, layer2=l2), seed=args.seed)
        net2.syn[0].w = state["w1"]
        import brian2 as b2
        net2.exc[0].theta = state["theta1"] * b2.mV
        fit = net2.fit(x, layer=2, progress=False)
        frozen = T.FrozenReplicas(net2.params, net2.state_dict(), replicas=16)
        val_out = frozen.run(xt, seed=args.seed + 1)
        train_out = frozen.run(x, seed=args.seed + 2)
        c1, c2 = val_out["counts"]
        volleys = T.volley_fraction(val_out["trains"], len(xt), l2.n_neurons)
        lr = readout.logistic_regression(train_out["counts"][1], y, c2, yt)["accuracy"]
        print(f"| {s:g} | {fit['rate_hz'][1]:.2f} | {fit['boosted']} | {fit['presentations']} | "
              f"{fit['silent_after_boosts']} | {fit['images_per_s']:.2f} | "
              f"{c1.sum(1).mean():.1f}, {c2.sum(1).mean():.1f} | {volleys:.2f} | {lr:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
