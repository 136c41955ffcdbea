"""Tier 3: what a QCFS activation costs in training, against ReLU, three ways of computing it.

A training step (forward, backward, SGD step, batch ``--batch``) of the tier's
CNN on random images, in images per second, for:

- ``relu``: the CNN with ReLU;
- ``qcfs``: with :class:`snnlib.tiers.conversion.QCFS` as snnlib computes it
  (eager PyTorch: about eight elementwise operations, each with its backward);
- ``qcfs, autograd function``: the same activation as one
  ``torch.autograd.Function`` whose backward is written out (the straight-through
  gradient: :math:`\\partial h/\\partial x = 1[0 \\le x \\le \\lambda]`,
  :math:`\\partial h/\\partial \\lambda = \\lfloor\\cdot\\rfloor / L - (x/\\lambda)\\,
  1[0 \\le x \\le \\lambda]`);
- ``qcfs, compiled``: snnlib's QCFS as the ``full`` profile trains it
  (``Numerics(compile_activations=True)``: its activation ``cnn._qcfs`` through
  ``torch.compile`` with dynamic shapes, one code for every layer and batch
  size, which can fuse the elementwise operations of the forward and of the
  backward pass; it needs a C++ compiler, and the compile time is printed).

With ``--epoch-images N`` it also times whole training epochs of
:func:`snnlib.tiers.conversion.train_cnn` (augmentation, one-cycle schedule, the
tier's loop) on the first ``N`` images of the CIFAR-10 training split, one epoch
per activation and repeat (``SNNLIB_DATA_DIR`` or the download gives the images).

Before timing, it checks that the autograd function and the compiled activation give
the eager activation's outputs and gradients on random inputs. Prints each variant's
images/s and its time per step relative to ReLU, measured in this run, ``--repeats``
times in alternation (the machine is shared: look at the spread).

    python benchmarks/qcfs_speed.py [--width 64] [--batch 128] [--float32]
    python benchmarks/qcfs_speed.py --epoch-images 50000 --repeats 2 --steps 0
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
from torch import nn

from snnlib.tiers import conversion as C
from snnlib.tiers.conversion import cnn
from snnlib.tiers.conversion.numerics import Numerics, numerics_scope

from conversion_speed import _rate


class _QCFSFunction(torch.autograd.Function):
    """The clip-floor-shift activation with its straight-through backward written out."""

    @staticmethod
    def forward(ctx, x, lam, levels):
        z = x / lam
        q = torch.floor(z.clamp(0.0, 1.0) * levels + 0.5)
        ctx.save_for_backward(z, q)
        ctx.levels = levels
        return q * lam / levels

    @staticmethod
    def backward(ctx, g):
        z, q = ctx.saved_tensors
        inside = (z >= 0) & (z <= 1)
        glam = (g * (q / ctx.levels - z * inside)).sum().to(torch.float32)
        return g * inside, glam.reshape(()), None


class FunctionQCFS(cnn.QCFS):
    def forward(self, x):
        return _QCFSFunction.apply(x, self.threshold, self.levels)


VARIANTS = {"relu": (None, False), "qcfs": (cnn.QCFS, False),
            "qcfs, autograd function": (FunctionQCFS, False), "qcfs, compiled": (cnn.QCFS, True)}
"""Each variant's activation (None: ReLU) and whether it computes compiled."""


def _compiled(on: bool):
    """A scope in which snnlib's QCFS computes compiled (``on``), or no change."""
    return numerics_scope(Numerics(compile_activations=True)) if on else nullcontext()


def _net(width: int, qcfs: type | None) -> nn.Module:
    widths = tuple(width * m for m in (1, 1, 2, 2, 4, 4))
    net = C.ConvNet(C.ConvNetParams(widths=widths, quantisation_levels=None if qcfs is None else 4))
    if qcfs is not None and qcfs is not cnn.QCFS:
        for module in list(net.modules()):
            for name, child in list(module.named_children()):
                if type(child) is cnn.QCFS:
                    setattr(module, name, qcfs(child.levels, float(child.threshold.detach())))
    return net


def _check(qcfs: type, compiled: bool) -> str:
    """Outputs and gradients of ``qcfs`` against the eager activation, on random inputs."""
    torch.manual_seed(0)
    x = (torch.randn(64, 16, 8, 8) * 3).requires_grad_()
    a, b = cnn.QCFS(4, 2.0), qcfs(4, 2.0)
    ya = a(x)
    g = torch.randn_like(ya)
    gxa, gla = torch.autograd.grad(ya, [x, a.threshold], g)
    with _compiled(compiled):
        yb = b(x)
        gxb, glb = torch.autograd.grad(yb, [x, b.threshold], g)
    return (f"outputs equal: {torch.equal(ya, yb)}, largest input-gradient difference "
            f"{float((gxa - gxb).abs().max()):.2g}, threshold gradient {float(gla):.6g} against "
            f"{float(glb):.6g}")


def _precision(bf16: bool) -> str:
    return "bfloat16" if bf16 else "float32"


def _train_rate(net: nn.Module, bf16: bool, batch: int, steps: int, compiled: bool) -> float:
    """Training steps (forward, backward, SGD) on random images, in images/s."""
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(batch, 3, 32, 32, generator=g), torch.randint(0, 10, (batch,), generator=g)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    with _compiled(compiled):
        return _rate(step, batch, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64, help="the first convolution's width")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3,
                    help="timed training steps per measurement (0: epochs only)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--float32", action="store_true",
                    help="no bfloat16 autocast (by default it is used where the CPU has "
                         "bfloat16 units, as the full profile does; elsewhere it is emulated)")
    ap.add_argument("--epoch-images", type=int, default=0,
                    help="also time one train_cnn epoch on this many training images")
    ap.add_argument("--channels-last", action="store_true",
                    help="train the --epoch-images epochs channels-last, as the full profile "
                         "does (Numerics.channels_last)")
    args = ap.parse_args()
    if args.channels_last and not args.epoch_images:
        ap.error("--channels-last applies to the --epoch-images epochs: give --epoch-images too")
    bf16 = C.bf16_supported() and not args.float32
    print("autograd function:", _check(FunctionQCFS, False), flush=True)
    start = time.perf_counter()
    print("compiled:", _check(cnn.QCFS, True), flush=True)
    nets = {name: _net(args.width, qcfs) for name, (qcfs, _) in VARIANTS.items()}
    _train_rate(nets["qcfs, compiled"], bf16, args.batch, 1, True)
    print(f"compiled: compiled and first steps in {time.perf_counter() - start:.0f} s",
          flush=True)
    if not callable(cnn._Compiled.fn):
        print("compiled: this process could not compile (see the warning above): the "
              "'qcfs, compiled' rows time the uncompiled activation", flush=True)
    for rep in range(args.repeats if args.steps else 0):
        rates = {name: _train_rate(net, bf16, args.batch, args.steps, VARIANTS[name][1])
                 for name, net in nets.items()}
        print(f"repeat {rep + 1} (width {args.width}, batch {args.batch}, {_precision(bf16)}): "
              + "; ".join(
                  f"{name} {r:.0f} images/s ({rates['relu'] / r:.2f} x ReLU's time)"
                  for name, r in rates.items()), flush=True)
    if args.epoch_images:
        _epochs(args, bf16)


def _epochs(args, bf16: bool) -> None:
    """One :func:`train_cnn` epoch per activation and repeat, on real training images."""
    from snnlib import data

    train = data.load_cifar10("train")
    images, labels = train.images[:args.epoch_images], train.labels[:args.epoch_images]
    p = C.TrainParams(epochs=1, batch_size=args.batch, bf16=bf16)

    def epoch(name: str, n: int) -> float:
        qcfs, compiled = VARIANTS[name]
        torch.manual_seed(0)
        return C.train_cnn(_net(args.width, qcfs), images[:n], labels[:n], p, seed=0,
                           progress=False, numerics=Numerics(
                               bf16=bf16, compile_activations=compiled,
                               channels_last=args.channels_last))["wall_s"][0]

    for name in VARIANTS:  # untimed: the first epoch of a process also loads and picks kernels
        epoch(name, 2 * args.batch)
    for rep in range(args.repeats):
        walls = {name: epoch(name, len(images)) for name in VARIANTS}
        print(f"epoch, repeat {rep + 1} ({len(images)} images, width {args.width}, "
              f"{_precision(bf16)}{', channels-last' if args.channels_last else ''}): " + "; ".join(
                  f"{name} {w:.1f} s ({w / walls['relu']:.2f} x ReLU's)"
                  for name, w in walls.items()), flush=True)


if __name__ == "__main__":
    main()
