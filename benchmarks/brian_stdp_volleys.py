"""Measure: how often tier 1's hidden layers fire as one volley, learning off.

    python benchmarks/brian_stdp_volleys.py --profile full --model runs/brian_stdp/full/model.npz

For class-balanced test images (``--images``, seeded), the trained network
(``model.npz`` from ``python -m snnlib run brian_stdp``) runs with learning
off (``FrozenReplicas``), without and with Diehl & Cook's bounded test-time
boost. Printed per layer: spikes per image, images without a spike, and
``volley_fraction``: images in which at least 90% (and 25%) of the layer's
neurons fire within 5 ms, which lateral inhibition (one time step late)
cannot separate. Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book")
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", type=int, default=300, help="a multiple of 10")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    import snnlib as sl
    from snnlib.tiers import brian_stdp as T

    params = T.params_for_profile(sl.profiles.get_profile(args.profile))
    state = dict(np.load(args.model))
    test = sl.data.load_cifar10("test")
    x = sl.data.to_grayscale(test.images[sl.data.balanced_subset(test.labels, args.images // 10,
                                                                 seed=args.seed)])
    print(f"profile {args.profile}, model {args.model}, {len(x)} test images")
    print("| layer | boost | spikes/image | images without a spike | volleys (90% in 5 ms) | "
          "volleys (25% in 5 ms) | wall (s) |")
    print("|---|---|---|---|---|---|---|")
    for layer in (1, 2):
        p = params if layer == 2 else dataclasses.replace(params, layer2=None)
        keys = [f"{v}{k}" for k in range(1, layer + 1) for v in ("w", "theta")]
        frozen = T.FrozenReplicas(p, {k: state[k] for k in keys}, replicas=16)
        n = (params.layer1, params.layer2)[layer - 1].n_neurons
        for boost in (False, True):
            start = time.perf_counter()
            out = frozen.run(x, seed=args.seed, boost=boost)
            counts = out["counts"][-1].sum(axis=1)
            print(f"| {layer} | {'yes' if boost else 'no'} | {counts.mean():.1f} | "
                  f"{(counts == 0).mean():.3f} | "
                  f"{T.volley_fraction(out['trains'], len(x), n):.3f} | "
                  f"{T.volley_fraction(out['trains'], len(x), n, fraction=0.25):.3f} | "
                  f"{time.perf_counter() - start:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
