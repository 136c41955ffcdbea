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
- ``qcfs, torch.compile``: snnlib's activation (``cnn._qcfs``, the function that
  :class:`~snnlib.tiers.conversion.QCFS` calls) compiled by ``torch.compile``, which
  can fuse the elementwise operations of the forward and of the backward pass
  (it needs a C++ compiler; the compile time is printed). By
  default it compiles once per input shape (``dynamic=False``: each layer's
  activations, and again for a short last batch); ``--compile-dynamic`` compiles
  one code for all shapes.

With ``--epoch-images N`` it also times whole training epochs of
:func:`snnlib.tiers.conversion.train_cnn` (augmentation, one-cycle schedule, the
tier's loop) on the first ``N`` images of the CIFAR-10 training split, one epoch
per activation and repeat (``SNNLIB_DATA_DIR`` or the download gives the images).

Before timing, it checks that the two rewritten activations give the eager
activation's outputs and gradients on random inputs. Prints each variant's
images/s and its time per step relative to ReLU, measured in this run, ``--repeats``
times in alternation (the machine is shared: look at the spread).

    python benchmarks/qcfs_speed.py [--width 64] [--batch 128] [--float32]
    python benchmarks/qcfs_speed.py --epoch-images 5000 [--compile-dynamic]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from snnlib.tiers import conversion as C
from snnlib.tiers.conversion import cnn

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


class CompiledQCFS(cnn.QCFS):
    formula = None  # main() sets it: torch.compile of snnlib's activation, cnn._qcfs

    def forward(self, x):
        return CompiledQCFS.formula(x, self.threshold, self.levels)


def _net(width: int, qcfs: type | None) -> nn.Module:
    widths = tuple(width * m for m in (1, 1, 2, 2, 4, 4))
    net = C.ConvNet(C.ConvNetParams(widths=widths, quantisation_levels=None if qcfs is None else 4))
    if qcfs is not None and qcfs is not cnn.QCFS:
        for module in list(net.modules()):
            for name, child in list(module.named_children()):
                if type(child) is cnn.QCFS:
                    setattr(module, name, qcfs(child.levels, float(child.threshold.detach())))
    return net


def _check(qcfs: type) -> str:
    """Outputs and gradients of ``qcfs`` against the eager activation, on random inputs."""
    torch.manual_seed(0)
    x = (torch.randn(64, 16, 8, 8) * 3).requires_grad_()
    a, b = cnn.QCFS(4, 2.0), qcfs(4, 2.0)
    ya, yb = a(x), b(x)
    g = torch.randn_like(ya)
    gxa, gla = torch.autograd.grad(ya, [x, a.threshold], g)
    gxb, glb = torch.autograd.grad(yb, [x, b.threshold], g)
    return (f"outputs equal: {torch.equal(ya, yb)}, largest input-gradient difference "
            f"{float((gxa - gxb).abs().max()):.2g}, threshold gradient {float(gla):.6g} against "
            f"{float(glb):.6g}")


def _precision(bf16: bool) -> str:
    return "bfloat16" if bf16 else "float32"


def _train_rate(net: nn.Module, bf16: bool, batch: int, steps: int) -> float:
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

    return _rate(step, batch, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64, help="the first convolution's width")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed training steps per measurement")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--float32", action="store_true", help="no bfloat16 autocast")
    ap.add_argument("--compile-dynamic", action="store_true",
                    help="compile once for all input shapes (default: once per shape)")
    ap.add_argument("--epoch-images", type=int, default=0,
                    help="also time one train_cnn epoch on this many training images")
    args = ap.parse_args()
    bf16 = not args.float32
    CompiledQCFS.formula = torch.compile(cnn._qcfs, dynamic=args.compile_dynamic)
    print("autograd function:", _check(FunctionQCFS), flush=True)
    start = time.perf_counter()
    print("torch.compile:", _check(CompiledQCFS), flush=True)
    nets = {"relu": _net(args.width, None), "qcfs": _net(args.width, cnn.QCFS),
            "qcfs, autograd function": _net(args.width, FunctionQCFS),
            "qcfs, torch.compile": _net(args.width, CompiledQCFS)}
    _train_rate(nets["qcfs, torch.compile"], bf16, args.batch, 1)
    print(f"torch.compile: compiled and first steps in {time.perf_counter() - start:.0f} s",
          flush=True)
    for rep in range(args.repeats):
        rates = {name: _train_rate(net, bf16, args.batch, args.steps) for name, net in nets.items()}
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
    for rep in range(args.repeats):
        walls = {}
        for name, qcfs in (("relu", None), ("qcfs", cnn.QCFS),
                           ("qcfs, autograd function", FunctionQCFS),
                           ("qcfs, torch.compile", CompiledQCFS)):
            torch.manual_seed(0)
            net = _net(args.width, qcfs)
            walls[name] = C.train_cnn(net, images, labels, p, seed=0,
                                      progress=False)["wall_s"][0]
        print(f"epoch, repeat {rep + 1} ({len(images)} images, width {args.width}, "
              f"{_precision(bf16)}): " + "; ".join(
                  f"{name} {w:.1f} s ({w / walls['relu']:.2f} x ReLU's)"
                  for name, w in walls.items()), flush=True)


if __name__ == "__main__":
    main()
