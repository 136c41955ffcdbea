"""Benchmark: tier 1 with learning off, one network against replicas of it.

    python benchmarks/brian_stdp_eval_speed.py                      # book size
    python benchmarks/brian_stdp_eval_speed.py --profile full --images 128 --replicas 1 16 32

The network of ``params_for_profile(profile)`` with random weights trained
for nothing (the speed does not depend on what was learned, the spike
counts do, a little) or, with ``--model DIR/model.npz``, a trained one. Same
test images, Brian2's cython code generation, in one run:

- ``BrianSTDPNetwork.spike_counts``: the training network with plasticity
  switched off, ``chunk_images`` images per ``run()``;
- ``FrozenReplicas(replicas=R)``: R copies of the network without plasticity
  code side by side, R images at a time (no boosts, as ``spike_counts``).

Each variant first runs once on a few images (compilation, or Brian2's disk
cache), then is timed. Printed: images/s, the ratio to ``spike_counts``, and
the mean rate of each layer (the same network: rates should agree within
the noise of the images' Poisson inputs). Not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="book")
    parser.add_argument("--model", default=None, help="a model.npz written by train_hidden_layers")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np

    import snnlib as sl
    from snnlib.tiers import brian_stdp as T

    profile = sl.profiles.get_profile(args.profile)
    params = T.params_for_profile(profile)
    if params.codegen_target != "cython":
        params = dataclasses.replace(params, codegen_target="cython")
    test = sl.data.load_cifar10("test")
    x = sl.data.to_grayscale(test.images[:args.images])
    net = T.BrianSTDPNetwork(params, seed=args.seed)
    if args.model:
        net.load_state_dict(dict(np.load(args.model)))
    state = net.state_dict()
    seconds = params.encoding.duration_ms / 1000.0
    print(f"profile {profile.name}: layers {params.layer1.n_neurons} + {params.layer2.n_neurons} "
          f"neurons, {len(x)} test images, model {args.model or 'untrained'}; "
          f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    rows = []
    net.spike_counts(x[:params.chunk_images])  # warm-up
    start = time.perf_counter()
    counts = net.spike_counts(x)
    base = time.perf_counter() - start
    rows.append(("spike_counts (one network)", base, counts))
    for r in args.replicas:
        frozen = T.FrozenReplicas(params, state, replicas=r)
        frozen.run(x[:r], seed=args.seed, boost=False)  # warm-up
        start = time.perf_counter()
        out = frozen.run(x, seed=args.seed + 1, boost=False)
        rows.append((f"FrozenReplicas, {r} replicas", time.perf_counter() - start, out["counts"]))
    print(f"{'variant':<30} {'wall (s)':>9} {'images/s':>9} {'ratio':>6}  rates (Hz)")
    for name, wall, c in rows:
        rates = " / ".join(f"{k.mean() / seconds:.2f}" for k in c)
        print(f"{name:<30} {wall:>9.1f} {len(x) / wall:>9.2f} {base / wall:>6.2f}  {rates}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
