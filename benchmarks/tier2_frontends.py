"""Tier 2 exploration: which front end, and do learned filters beat random ones? (validation only)

A fast, *non-spiking* stand-in for tier 2's convolutional STDP layer, to choose
the design before building the spiking one:

- front ends: ``dog`` (colour-opponent DoG, ON and OFF: 6 channels),
  ``gray_dog`` (grayscale DoG, ON and OFF), ``zca`` (ZCA-whitened RGB patches);
- filters: K kernels of 5 x 5 on the front end, learned by competitive learning
  (the winner, the filter with the largest drive, moves towards the patch and is
  renormalised: what STDP with winner-take-all does to a neuron's weights in the
  rate limit), or random (suffix ``_rand``);
- responses: rectified drive above the mean over filters plus ``alpha`` standard
  deviations (a rate proxy for spike counts), summed over the four image quadrants;
- readout: standardised logistic regression (snnlib.readout), C chosen on a
  held-out fifth.

    python benchmarks/tier2_frontends.py --train 10000 --val 2000 --filters 256 zca zca_rand dog
    python benchmarks/tier2_frontends.py --train 10000 --val 2000 --filters 256 --patch-norm zca zca_rand

The filters and the readout learn from class-balanced images of the training
split of the CIFAR-10 training set; prints one line per variant: accuracy on
class-balanced images of the validation split (the last 500 training images of
each class, :func:`snnlib.data.validation_split`) and wall time. The test set is
never read.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from snnlib import data, retina as R
from snnlib.readout import logistic_regression

from _split import tuning_split

SIZE = 5


def front_end(name: str, rgb: torch.Tensor) -> torch.Tensor:
    """``(N, 32, 32, 3)`` in [0, 1] to ``(N, C, 32, 32)``."""
    if name == "dog":
        d = R.colour_opponent(rgb.double(), R.DoGParams(1.0, 2.0)).float()
        return torch.cat([d.clamp(min=0), (-d).clamp(min=0)], 1)
    if name == "gray_dog":
        y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
        return R.on_off(R.dog(y.double(), R.DoGParams(1.0, 2.0))).float()
    if name == "zca":
        return rgb.permute(0, 3, 1, 2)
    raise ValueError(f"unknown front end {name!r}")


def normalise_patches(cols: torch.Tensor) -> torch.Tensor:
    """Per-patch brightness and contrast normalisation (Coates et al. 2011): zero mean, unit std."""
    cols = cols - cols.mean(-1, keepdim=True)
    return cols / (cols.var(-1, keepdim=True) + 0.01).sqrt()


def responses(name, w, rgb, zca, alpha=0.5, batch=500, patch_norm=False):
    out = []
    for i in range(0, len(rgb), batch):
        cols = F.unfold(front_end(name, rgb[i:i + batch]), SIZE).transpose(1, 2)  # (n, L, d)
        if patch_norm:
            cols = normalise_patches(cols)
        if zca is not None:
            cols = (cols - zca.mean.float()) @ zca.matrix.float()
        a = cols @ w.T
        a = a - a.mean(-1, keepdim=True)
        a = (a - alpha * a.std(-1, keepdim=True)).clamp(min=0)
        side = int(round(a.shape[1] ** 0.5))
        out.append(F.adaptive_avg_pool2d(a.transpose(1, 2).reshape(len(a), -1, side, side), 2)
                   .flatten(1))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=10000)
    ap.add_argument("--val", type=int, default=2000, help="validation images (class-balanced)")
    ap.add_argument("--filters", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patch-norm", action="store_true",
                    help="normalise each patch's brightness and contrast before whitening")
    ap.add_argument("variants", nargs="+", help="dog, gray_dog, zca, each optionally with _rand")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    train = data.load_cifar10("train")
    itr, iva = tuning_split(train.labels, args.train, args.val, seed=args.seed)
    xtr = torch.from_numpy(train.images[itr]).float() / 255
    xva = torch.from_numpy(train.images[iva]).float() / 255
    print(f"{len(itr)} training and {len(iva)} validation images, {args.filters} filters of "
          f"{SIZE}x{SIZE}")
    for variant in args.variants:
        start = time.perf_counter()
        name = variant.removesuffix("_rand")
        patches = R.extract_patches(front_end(name, xtr[:2000]), SIZE, stride=3)
        if args.patch_norm:
            patches = normalise_patches(patches)
        zca = None
        if name == "zca":
            zca = R.zca_fit(patches, eps=0.1)
            patches = R.zca_apply(patches, zca).float()
        patches = patches[torch.randperm(len(patches))[:100_000]]
        w = torch.randn(args.filters, patches.shape[1])
        w /= w.norm(dim=1, keepdim=True)
        if not variant.endswith("_rand"):
            for _ in range(3):
                for i in range(0, len(patches), 1000):
                    p = patches[i:i + 1000]
                    win = (p @ w.T).argmax(1)
                    for k in win.unique():
                        w[k] += 0.1 * (p[win == k].mean(0) - w[k])
                    w /= w.norm(dim=1, keepdim=True) + 1e-9
        ftr = responses(name, w, xtr, zca, patch_norm=args.patch_norm)
        fva = responses(name, w, xva, zca, patch_norm=args.patch_norm)
        r = logistic_regression(ftr, train.labels[itr], fva, train.labels[iva], cs=(0.01, 0.1))
        print(f"{variant:<14} features {ftr.shape[1]:5d}  validation accuracy {r['accuracy']:.3f}  "
              f"(C {r['c']})  {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
