"""Benchmark: tier-1 training throughput, the naive Brian2 loop against snnlib's.

    python benchmarks/brian_stdp_speed.py                # 100 neurons, 40 images
    python benchmarks/brian_stdp_speed.py --neurons 400 --images 100

Same network (layer 1 of ``params_for_profile``: 1024 Poisson inputs, N
excitatory neurons with adaptive thresholds and N inhibitory partners, STDP
on the input weights), same seed, same CIFAR-10 training images (grayscale,
class-balanced), same 350 ms presentation per image, Brian2's cython code
generation for both, in one run:

- naive: one ``run()`` per image, then 150 ms of simulated rest, every input
  and layer spike recorded, weights normalised after every image
  (``BrianSTDPNetwork.fit_naive``), as most Brian2 tutorials do;
- snnlib: ``chunk_images`` images per ``run()`` with a ``TimedArray``,
  state reset instead of rest, only layer spikes recorded, weights
  normalised at the start of every image by a network operation
  (``BrianSTDPNetwork.fit``).

A warm-up (one chunk for snnlib, two images for the naive loop) compiles the
cython code (or loads it from Brian2's disk cache) before anything is timed. Not a test: the numbers depend on
the machine; the ratio is measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neurons", type=int, default=100)
    parser.add_argument("--images", type=int, default=40, help="a multiple of 10")
    parser.add_argument("--chunk", type=int, default=20, help="images per run() for snnlib")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np

    import snnlib as sl
    from snnlib.tiers import brian_stdp as T

    train = sl.data.load_cifar10("train")
    idx = sl.data.balanced_subset(train.labels, args.images // 10, seed=args.seed)
    x = sl.data.to_grayscale(train.images[idx])
    x = x[np.random.default_rng(args.seed).permutation(len(x))]
    from dataclasses import replace

    tuned = T.params_for_profile(sl.profiles.get_profile("book"))  # the chapter's network
    params = replace(tuned, layer1=replace(tuned.layer1, n_neurons=args.neurons), layer2=None,
                     chunk_images=args.chunk, codegen_target="cython")

    print(f"# tier-1 layer 1: {args.neurons} exc + {args.neurons} inh neurons, 1024 inputs, "
          f"{len(x)} CIFAR-10 (JPEG copy) training images, {params.encoding.duration_ms:g} ms "
          f"each, dt {params.encoding.dt_ms} ms, seed {args.seed}")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    start = time.perf_counter()
    # the same chunk size as the timed run: with cython the stimulus shape is part of the code
    T.BrianSTDPNetwork(params, seed=args.seed).fit(x[:args.chunk], progress=False)
    T.BrianSTDPNetwork(params, seed=args.seed).fit_naive(x[:2])
    print(f"# warm-up (compile or load cython code): {time.perf_counter() - start:.1f} s")

    naive = T.BrianSTDPNetwork(params, seed=args.seed).fit_naive(x)
    fast_net = T.BrianSTDPNetwork(params, seed=args.seed)
    fast = fast_net.fit(x, progress=False)
    ratio = fast["images_per_s"] / naive["images_per_s"]
    print()
    print("| loop | images | wall time (s) | images/s | layer-1 rate (Hz) | simulated per image |")
    print("|---|---|---|---|---|---|")
    print(f"| naive: run() per image + 150 ms rest | {naive['images']} | {naive['wall_s']:.1f} | "
          f"{naive['images_per_s']:.2f} | {naive['rate_hz'][0]:.2f} | 500 ms |")
    print(f"| snnlib: {args.chunk} images per run(), state reset | {fast['images']} | "
          f"{fast['wall_s']:.1f} | {fast['images_per_s']:.2f} | {fast['rate_hz'][0]:.2f} | "
          f"350 ms ({fast['presentations'] - fast['images']} boosted re-presentations) |")
    print(f"\nspeed-up: {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
