"""Tier 3: training speed in the default memory format against channels-last (NHWC).

Times whole :func:`snnlib.tiers.conversion.train_cnn` epochs (augmentation,
one-cycle schedule, the tier's loop) of the tier's CNN on ``--images`` random
images, with the ``full`` profile's arithmetic (:func:`~snnlib.tiers.conversion.numerics.fast`:
bfloat16 where the CPU has it; QCFS compiled where the network has it), once with
``channels_last=False`` and once with ``channels_last=True``, in alternation,
``--repeats`` times (the machine is shared: look at the spread). Any field of
:class:`~snnlib.tiers.conversion.ConvNetParams` or
:class:`~snnlib.tiers.conversion.TrainParams` is set with ``--set NAME=VALUE``.
Prints images/s and the ratio of each pair, measured in this run. One untimed
epoch per format first (oneDNN sets its kernels up on first use).

    python benchmarks/cnn_layout_speed.py
    python benchmarks/cnn_layout_speed.py --set widths=64,64,256,256,256,256 pool_after=0,2,4 \\
        whitening_px=2 global_pool=true --images 5000 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from _fields import parse_sets


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2560, help="images per timed epoch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="a ConvNetParams or TrainParams field")
    args = parser.parse_args()
    if args.images < 10 or args.repeats < 1:
        parser.error("--images must be at least 10 and --repeats at least 1")

    import numpy as np
    import torch

    from snnlib.tiers import conversion as C
    from snnlib.tiers.conversion import numerics

    try:
        net_set, train_set = parse_sets(args.set, C.ConvNetParams, C.TrainParams)
        fixed = sorted({"epochs", "bf16"} & set(train_set))
        if fixed:
            raise ValueError(f"{', '.join(fixed)} cannot be set here: every timed run is one "
                             "epoch in the full profile's precision")
        net = C.ConvNetParams(**net_set)
        # QCFS compiled only where the network has QCFS activations
        base = replace(numerics.fast(), compile_activations=net.quantisation_levels is not None)
        train = C.TrainParams(**{"bf16": base.bf16, **train_set, "epochs": 1})
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(args.images) % 10
    formats = {"default": replace(base, channels_last=False),
               "channels-last": replace(base, channels_last=True)}

    def epoch(numbers, n: int) -> float:
        torch.manual_seed(0)
        model = C.ConvNet(net)
        start = time.perf_counter()
        C.train_cnn(model, images[:n], labels[:n], train, seed=0, progress=False,
                    numerics=numbers)
        return n / (time.perf_counter() - start)

    print(f"tier 3's CNN {net.widths}, batch {train.batch_size}, "
          f"{formats['default'].describe()}; "
          f"{args.images} images per epoch", flush=True)
    for numbers in formats.values():
        epoch(numbers, min(args.images, 4 * train.batch_size))  # untimed
    for repeat in range(1, args.repeats + 1):
        rates = {name: epoch(numbers, args.images) for name, numbers in formats.items()}
        print(f"repeat {repeat}: " + ", ".join(f"{name} {rate:.0f} images/s"
                                               for name, rate in rates.items())
              + f"; channels-last / default: {rates['channels-last'] / rates['default']:.2f} x",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
