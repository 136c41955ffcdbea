"""Tier 2 speed: snnlib's batched layer against two naive ways of writing the same simulation.

The same trained layer (fitted here on 2,000 training images), the same
images, the same equations (Poisson ON/OFF inputs, LIF with delta synapses,
lateral inhibition, ``steps`` steps):

- ``naive, one position at a time``: a Python loop over the 28 x 28 positions
  of each image, the K neurons of a position as one vector;
- ``naive, one image at a time``: every position of one image at once, but
  written plainly: a random number for every ON and every OFF input, boolean
  spike tensors, ``torch.where`` resets;
- ``snnlib, uncompiled``: :meth:`snnlib.tiers.dog_lif.DoGLIF.features` (several
  images at once, one random number per ON/OFF pair, in-place updates, the float32
  drive gathered as below) where ``torch.compile`` is not available;
- ``snnlib``: the same, each step's elementwise work compiled by ``torch.compile``
  (what it does where a C++ compiler is; it compiles before the clock starts), and with
  the float32 drive each step's jumps summed over the inputs that fired only
  (``_gathered_drive``);
- ``snnlib, with its random twin`` (float32 drive): the layer and the tier's random-weight
  twin (:func:`snnlib.tiers.dog_lif.features_together`, as the tier computes them), simulated
  together on the same input spikes: images per second per layer, each layer charged half
  of the time (the layer's spikes are the first row's, bit for bit);
- ``snnlib, drive as a product`` (float32 drive): the same, but the jumps computed as
  the dense product of every input's 0 or 1 with the weights, as before they were
  gathered (the same spikes up to float32 rounding);
- ``snnlib, <other> drive``: the same weights with the other ``drive_dtype``
  (bfloat16 or float32 synaptic drive: a slightly different model, so its spikes
  differ by more than Poisson noise would make them).

Prints images per second and the ratio to snnlib, measured in this run, and
the mean layer spikes per image of each (the same model: they must agree
within Poisson noise).

    python benchmarks/dog_lif_speed.py [--images 40] [--filters K] [--steps T]

(default: the tier's filters and steps, ``DoGLIFParams()``).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import torch

from snnlib import data
from snnlib.tiers import dog_lif as D


def naive_image(net: D.DoGLIF, image, g: torch.Generator, per_position: bool) -> float:
    """Layer spikes of one image, written plainly; returns the spike count."""
    p = net.params
    lif = p.lif
    signed = net.retina.intensities(image[None], p)[0]          # (L, h)
    prob = D.on_off_inputs(signed) * p.p_max                     # (L, 2h)
    decay = math.exp(-p.dt_ms / p.tau_mem_ms)
    thr = lif.v_thresh_mv + net.theta_mv
    rows = [prob[i:i + 1] for i in range(len(prob))] if per_position else [prob]
    total = 0.0
    for pr in rows:
        v = torch.full((len(pr), p.n_filters), lif.v_rest_mv)
        for _ in range(p.steps):
            s = torch.rand(pr.shape, generator=g) < pr
            v = lif.v_rest_mv + (v - lif.v_rest_mv) * decay + s.float() @ net.w_mv.T
            spikes = v > thr
            v = torch.where(spikes, torch.full_like(v, lif.v_reset_mv), v)
            others = spikes.sum(dim=1, keepdim=True) - spikes.int()
            v = torch.clamp(v - p.inhibition_mv * others, min=lif.v_reset_mv)
            total += float(spikes.sum())
    return total


def product_drive(fired: torch.Tensor, pair_input: torch.Tensor,
                  w_rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``D.layer._gathered_drive``'s jumps as the dense product :math:`J = s\\, w^T` of every
    input's 0 or 1 (how the compiled features computed them before they were gathered)."""
    s = torch.zeros(len(fired), len(w_rows))
    s.scatter_(1, pair_input, fired.float())
    return s @ w_rows, int(fired.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=40, help="test images for each method")
    tier = D.DoGLIFParams()
    ap.add_argument("--filters", type=int, default=tier.n_filters)
    ap.add_argument("--steps", type=int, default=tier.steps, help="time steps per image")
    ap.add_argument("--drive", choices=("float32", "bfloat16"), default=tier.drive_dtype,
                    help="the synaptic drive's dtype (DoGLIFParams.drive_dtype)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    train, test = data.load_cifar10("train"), data.load_cifar10("test")
    p = D.DoGLIFParams(n_filters=args.filters, steps=args.steps, train_patches=20_000,
                       drive_dtype=args.drive)
    net = D.DoGLIF(p, seed=args.seed)
    net.fit(train.images[:2000], progress=False)
    images = test.images[: args.images]
    print(f"{args.filters} filters, {p.side} x {p.side} positions, {p.steps} steps, "
          f"{p.drive_dtype} drive; {torch.get_num_threads()} threads")
    rows = []
    def warm_up(layer: D.DoGLIF) -> bool:
        """Compile the layer's steps (seconds) at the sizes of a batch, before the clock starts."""
        batch = torch.zeros(min(p.image_batch, len(images)) * p.side ** 2, p.n_inputs // 2)
        return D.layer._fused_ready(batch, D.layer._felt(layer.w_mv, layer.params),
                                    layer.theta_mv, layer.params)

    compiled = warm_up(net)
    net.features(images[:2], seed=1, progress=False)
    start = time.perf_counter()
    out = net.features(images, seed=1, progress=False)
    per_image = out["filter_spikes"].sum(axis=1)  # the layer's spikes in each image
    rows.append(("snnlib (DoGLIF.features)" if compiled else "snnlib (could not compile)",
                 len(images) / (time.perf_counter() - start),
                 float(per_image.mean()), float(per_image.mean())))
    other = "float32" if p.drive_dtype == "bfloat16" else "bfloat16"
    twin = D.DoGLIF(replace(p, drive_dtype=other), seed=args.seed)
    twin.load_state_dict(net.state_dict())
    warm_up(twin)  # its own steps too (the float32 drive compiles no input spikes)
    twin.features(images[:2], seed=1, progress=False)
    start = time.perf_counter()
    twin_spikes = twin.features(images, seed=1, progress=False)["filter_spikes"].sum(axis=1)
    rows.append((f"snnlib, {other} drive", len(images) / (time.perf_counter() - start),
                 float(twin_spikes.mean()), float(per_image.mean())))
    if compiled and p.drive_dtype == "float32":
        gathered = D.layer._gathered_drive
        D.layer._gathered_drive = product_drive
        try:
            start = time.perf_counter()
            product = net.features(images, seed=1, progress=False)["filter_spikes"].sum(axis=1)
        finally:
            D.layer._gathered_drive = gathered
        rows.append(("snnlib, drive as a product", len(images) / (time.perf_counter() - start),
                     float(product.mean()), float(per_image.mean())))
    if compiled and p.drive_dtype == "float32":
        # the tier's random-weight twin (the same retina: the same input spikes), simulated
        # with the layer: images per second per layer, each charged half of the pass
        rand = D.DoGLIF(p, seed=args.seed, learn=False)
        rand.fit(train.images[:2000], progress=False, retina=net.retina)
        start = time.perf_counter()
        pair = D.features_together([net, rand], images, seed=1, progress=False)
        rows.append(("snnlib, with its random twin", 2 * len(images) / (time.perf_counter() - start),
                     float(pair[0]["filter_spikes"].sum(axis=1).mean()), float(per_image.mean())))
    if compiled:
        D.layer._LIF_COUNTS.fn = False  # as where torch.compile is not available
        start = time.perf_counter()
        plain = net.features(images, seed=1, progress=False)["filter_spikes"].sum(axis=1)
        rows.append(("snnlib, uncompiled", len(images) / (time.perf_counter() - start),
                     float(plain.mean()), float(per_image.mean())))
    g = torch.Generator().manual_seed(args.seed)
    for name, per_position, n in (("naive, one image at a time", False, len(images)),
                                  ("naive, one position at a time", True, max(2, len(images) // 10))):
        start = time.perf_counter()
        spikes = [naive_image(net, im, g, per_position) for im in images[:n]]
        rows.append((name, n / (time.perf_counter() - start), float(np.mean(spikes)),
                     float(per_image[:n].mean())))
    fast = rows[0][1]
    print(f"{'method':<32} {'images/s':>9} {'snnlib is x faster':>19} "
          f"{'layer spikes/image':>19} {'snnlib, same images':>19}")
    for name, speed, spikes, reference in rows:
        print(f"{name:<32} {speed:9.2f} {fast / speed:19.1f} {spikes:19.0f} {reference:19.0f}")


if __name__ == "__main__":
    main()
