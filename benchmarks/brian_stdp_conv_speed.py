"""Benchmark: the convolutional tier-1 network in Brian2 against the naive Brian2 loop.

    python benchmarks/brian_stdp_conv_speed.py                     # 32 + 64 filters
    python benchmarks/brian_stdp_conv_speed.py --images 32 --batch 16 --naive-images 6

In one run, on the same CIFAR-10 training images (grayscale), with Brian2's
cython code generation for all:

- naive: the fully connected Diehl & Cook layer (400 excitatory + 400
  inhibitory neurons, 1,024 Poisson inputs), one ``run()`` of 350 ms per
  image then 150 ms of rest, every spike recorded
  (``diehl_cook.BrianSTDPNetwork.fit_naive``): what most Brian2 tutorials do;
- conv, layer-1 learning: ``ConvLearner`` on 5 x 5 ON/OFF patches, many
  copies of one position per ``run()`` (patches/s);
- conv, layer-2 learning: each image through frozen layer 1 and its complex
  cells, then fields of its complex-cell spikes to ``ConvLearner`` (images/s);
- conv, frozen: both layers on ``--batch`` whole images at once, the features
  the readouts see (images/s), in two ways: one Brian2 ``run()`` per batch, and
  ``--per-call`` batches per ``run()`` one after another (what
  ``network.features`` does: a ``run()`` call costs a fixed preparation time);
- conv, wiring: for each of ``--wire-batches``, the time to build (wire) the
  frozen network for that many images side by side, and its images/s on
  ``--batch * --per-call`` images in one call (``network.WIRED_BATCH`` is the
  choice this measures);
- features: ``network.features`` on ``--feature-images`` images at
  ``--feature-steps`` steps each, its calls one after another in one process
  against side by side in forked workers (one per core), and whether both
  give the same counts.

Layers are trained briefly first, so that their firing is that of a learned
layer (an untrained layer hardly fires and would be fast for nothing). A
warm-up compiles the cython code before anything is timed. Not a test: the
numbers depend on the machine; the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k1", type=int, default=32)
    parser.add_argument("--k2", type=int, default=64)
    parser.add_argument("--images", type=int, default=48, help="frozen images timed")
    parser.add_argument("--batch", type=int, default=4, help="images at once (frozen)")
    parser.add_argument("--per-call", type=int, default=32,
                        help="batches per run() in the second frozen measurement")
    parser.add_argument("--wire-batches", type=int, nargs="*", default=[4, 16],
                        help="batch sizes whose wiring time and speed are compared")
    parser.add_argument("--feature-images", type=int, default=256)
    parser.add_argument("--feature-steps", type=int, default=60)
    parser.add_argument("--naive-images", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np

    import snnlib as sl
    from snnlib.tiers.brian_stdp import diehl_cook as DC
    from snnlib.tiers.brian_stdp import network as N
    from snnlib.tiers.brian_stdp.run import params_for_profile

    p = N.Tier1Params(layer1=N.ConvLayerParams(n_filters=args.k1, patch_batch=500),
                      layer2=N.ConvLayerParams(n_filters=args.k2, field_px=3, w_sum_mv=30.0,
                                               patch_batch=250))
    train = sl.data.load_cifar10("train")
    gray = sl.data.to_grayscale(train.images[:2000])
    rng = np.random.default_rng(args.seed)
    print(f"# tier 1, conv: K1={args.k1} (5x5x2 fields), K2={args.k2} (3x3xK1 complex cells), "
          f"{p.steps} steps of {p.dt_ms:g} ms per image, max rate {p.max_rate_hz:g} Hz")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")

    retina = N.Retina.fit(gray, p.retina, seed=args.seed)
    x = retina.intensities(gray)
    patches = sl.retina.extract_patches(x, p.layer1.field_px).numpy()

    # layer 1 learning (first batch: compile)
    learner1 = N.ConvLearner(p, 1, seed=args.seed)
    learner1.step(patches[rng.integers(0, len(patches), 500)])
    t0, n_patches = time.perf_counter(), 0
    for _ in range(20):
        learner1.step(patches[rng.integers(0, len(patches), 500)])
        n_patches += 500
    l1_patches_s = n_patches / (time.perf_counter() - t0)
    print(f"conv layer-1 learning: {l1_patches_s:,.0f} patches/s", flush=True)

    # layer 2 learning: images through frozen layer 1, 250 // batch fields from each
    layer1 = N.FrozenLayers(p, [learner1.filters], [learner1.thresholds], batch=args.batch,
                            layers=1, record_trains=True)
    learner2 = N.ConvLearner(p, 2, seed=args.seed)
    per_image = p.layer2.patch_batch // args.batch

    def layer2_step(start: int) -> None:
        out = layer1.run(x[start:start + args.batch], seed=start)
        fields = N.layer2_patches(out["pool_trains"], args.batch, p, per_image, rng)
        learner2.step(N.stack_patches(fields))

    layer2_step(0)
    t0, n_images = time.perf_counter(), 0
    for start in range(args.batch, args.batch + 4 * args.batch, args.batch):
        layer2_step(start)
        n_images += args.batch
    l2_images_s = n_images / (time.perf_counter() - t0)
    print(f"conv layer-2 learning: {l2_images_s:.2f} images/s", flush=True)

    # frozen, both layers
    frozen = N.FrozenLayers(p, [learner1.filters, learner2.filters],
                            [learner1.thresholds, learner2.thresholds], batch=args.batch)
    frozen.run(x[1000:1000 + args.batch], seed=0)
    t0, spikes = time.perf_counter(), [0.0, 0.0]
    for start in range(1000 + args.batch, 1000 + args.batch + args.images, args.batch):
        out = frozen.run(x[start:start + args.batch], seed=start)
        spikes[0] += out["counts1"].sum()
        spikes[1] += out["counts2"].sum()
    per_batch_s = args.images / (time.perf_counter() - t0)
    print(f"conv frozen (both layers), one run() per batch: {per_batch_s:.2f} images/s "
          f"({spikes[0] / args.images:,.0f} layer-1 and {spikes[1] / args.images:,.0f} "
          f"layer-2 spikes per image)", flush=True)
    n_long = args.batch * args.per_call
    t0 = time.perf_counter()
    out = frozen.run(x[1000:1000 + n_long], seed=1)
    frozen_s = n_long / (time.perf_counter() - t0)
    print(f"conv frozen (both layers), {args.per_call} batches per run(): {frozen_s:.2f} "
          f"images/s ({out['counts1'].sum() / n_long:,.0f} layer-1 and "
          f"{out['counts2'].sum() / n_long:,.0f} layer-2 spikes per image); "
          f"{frozen_s / per_batch_s:.1f}x one run() per batch", flush=True)

    # network.features: its calls in turn in one process, then in forked workers
    from dataclasses import replace

    layers = {"filters": [learner1.filters, learner2.filters],
              "thresholds": [learner1.thresholds, learner2.thresholds]}
    q = replace(p, feature_steps=args.feature_steps)
    xf = x[1000:1000 + args.feature_images]
    N.features(q, layers, xf[:4], seed=0, workers=1)  # warm-up: wire and compile
    counts, seconds = {}, {}
    per_call = 32  # batches per call: the calls are what the workers share
    for workers in (1, None):
        t0 = time.perf_counter()
        counts[workers] = N.features(q, layers, xf, seed=1, workers=workers, keep_counts=True,
                                     per_call=per_call)
        seconds[workers] = time.perf_counter() - t0
    n_workers = N._feature_workers(None, -(-len(xf) // (N.WIRED_BATCH * per_call)))
    same = all(np.array_equal(counts[1][k], counts[None][k]) for k in ("counts1", "counts2"))
    print(f"features, {len(xf)} images x {args.feature_steps} steps: one process "
          f"{len(xf) / seconds[1]:.2f} images/s, {n_workers} forked workers "
          f"{len(xf) / seconds[None]:.2f} images/s ({seconds[1] / seconds[None]:.2f}x); "
          f"same counts: {same}", flush=True)

    # wiring: build time against speed, by batch size
    layers = [learner1.filters, learner2.filters], [learner1.thresholds, learner2.thresholds]
    for b in args.wire_batches:
        t0 = time.perf_counter()
        net_b = N.FrozenLayers(p, *layers, batch=b)
        wire_s = time.perf_counter() - t0
        net_b.run(x[1000:1000 + b], seed=0)  # first run: code objects
        t0 = time.perf_counter()
        net_b.run(x[1000:1000 + n_long], seed=1)
        print(f"conv frozen, {b} images side by side: wired in {wire_s:.1f} s, then "
              f"{n_long / (time.perf_counter() - t0):.2f} images/s on {n_long} images in one call",
              flush=True)
        del net_b

    # the naive Brian2 loop: the fully connected network, one run() per image
    base = params_for_profile(sl.profiles.get_profile("full"))
    naive_params = replace(base, layer1=replace(base.layer1, n_neurons=400), layer2=None,
                           codegen_target="cython")
    net = DC.BrianSTDPNetwork(naive_params, seed=args.seed)
    net.fit_naive(gray[:2])  # warm-up: compile
    naive = net.fit_naive(gray[2:2 + args.naive_images])
    print(f"naive Brian2 loop (Diehl & Cook, 400 neurons, 350 + 150 ms per image): "
          f"{naive['images_per_s']:.2f} images/s", flush=True)
    print(f"ratios: conv frozen / naive = {frozen_s / naive['images_per_s']:.1f}x, "
          f"conv layer-2 learning / naive = {l2_images_s / naive['images_per_s']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
