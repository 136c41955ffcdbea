"""Tier 3 beside a peer: SpikingJelly's converter and the tier's on the same CNN, on the validation split.

Loads (or trains) the ReLU CNN that ``benchmarks/cnn_techniques.py`` trains with the same
``--set``, ``--seed``, ``--train`` and ``--checkpoint`` (its 45,000 training images; a finished
checkpoint is read, not retrained), converts it with both converters and simulates the copies
for the same steps on the same validation images (:func:`snnlib.data.validation_split`, the
first ``--val / 10`` of each class; no test image is read), with analog input (the image is
the first layer's current every step) in float32:

* **ours**: :func:`~snnlib.tiers.conversion.fold_batchnorm`, then
  :func:`~snnlib.tiers.conversion.normalise` at each ``--percentiles`` P on 1,000 training
  images (the tier's conversion), simulated by :func:`~snnlib.tiers.conversion.simulate`
  (IF neurons with reset by subtraction; max pools by
  :class:`~snnlib.tiers.conversion.convert.SpikingMaxPool`, exact in the spike counts); the
  tier's percentile (:data:`~snnlib.tiers.conversion.PERCENTILE`) again in bfloat16, the full
  profile's arithmetic, for its speed; and at each ``--channel-percentiles`` P, with the
  neurons starting at half the threshold (``simulate(v0=0.5)``), then normalised channel by
  channel (``normalise(channel_wise=True)``) with the neurons starting at 0 and at half the
  threshold; its tensors are kept channels-last (``simulate``'s layout);
* **SpikingJelly** 2.0's ``ann2snn.Converter`` with its ``RateCodingRecipe`` at each of its
  ``--modes`` (``"99.9%"``: the layer's 99.9th percentile; ``"Max"``: its largest activation),
  calibrated on the same 1,000 training images (in batches of 100, the recipe's running
  average of each batch's value), each mode twice: layer-wise thresholds (the recipe's
  default) and channel-wise ones with half-threshold starting potentials and max pools moved
  in front of the neurons where they follow a ReLU (``channel_wise``, ``half_threshold``,
  ``pre_spike_maxpool``); stepped as its CIFAR-10 example does (``reset_net``, then one call
  a step, the outputs summed), in PyTorch's default memory layout, as that example runs.

Prints, for each copy, its accuracy at each of ``--steps`` and its speed in image-steps per
second (both run on the same threads, in batches of 100 images), and one line of JSON
(``--append PATH --name NAME`` stores it, as in ``cnn_techniques.py``).

SpikingJelly is not a dependency of the project (its wheel asks for torchaudio, tensorboard
and h5py, which the book does not use); install it beside the project's environment with

    pip install --no-deps spikingjelly==2.0.0 "loguru>=0.7,<1"

The two networks measured (``M`` is the full profile's design: the ``--set`` of the rows
"M, 8 epochs, filters trained with Muon ..." in ``results/cnn_techniques.json``; each stored
run keeps its whole command line)::

    python benchmarks/peer_conversion.py --set widths=32,32,64,64,128,128 epochs=5 \\
        --checkpoint runs/tech/vgg32.pt --append results/peer_conversion.json \\
        --name "the book profile's VGG design at 32 channels (average pools), 5 epochs"
    python benchmarks/peer_conversion.py --set $M epochs=8 optimizer=muon \\
        --checkpoint runs/tech/M8muon.pt --append results/peer_conversion.json \\
        --name "the full profile's CNN (max pools on currents), 8 epochs with Muon"
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict

from _split import first_per_class

from cnn_techniques import (add_store_arguments, check_store_arguments, fast_settings,
                            print_and_store)

INSTALL = 'pip install --no-deps spikingjelly==2.0.0 "loguru>=0.7,<1"'
"""How to install the peer beside the project's environment."""

BATCH = 100
"""Images simulated at a time, by both converters."""


def peer_variants(modes: list[str]) -> list[tuple[str, dict]]:
    """``(name, RateCodingRecipe keywords)`` for each SpikingJelly copy: each mode layer-wise,
    then channel-wise with half-threshold starting potentials and max pools in front of the
    neurons."""
    out = []
    for mode in modes:
        out.append((f"SpikingJelly, {mode}, layer-wise", {"mode": mode}))
        out.append((f"SpikingJelly, {mode}, channel-wise, half threshold, pool before spikes",
                    {"mode": mode, "channel_wise": True, "half_threshold": True,
                     "pre_spike_maxpool": True}))
    return out


def run_peer(snn, images, labels, steps: list[int]) -> dict:
    """Accuracy of SpikingJelly's converted network ``snn`` at each of ``steps`` (outputs summed
    over the steps, as its example does) and its image-steps per second."""
    import torch
    from spikingjelly.activation_based import functional

    horizon = max(steps)
    right = {t: 0 for t in steps}
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), BATCH):
            x, y = images[i:i + BATCH], labels[i:i + BATCH]
            functional.reset_net(snn)
            total = 0
            for t in range(1, horizon + 1):
                total = total + snn(x)
                if t in right:
                    right[t] += int((total.argmax(1) == y).sum())
    wall = time.perf_counter() - start
    return {"accuracy": {t: right[t] / len(images) for t in steps},
            "image_steps_per_s": len(images) * horizon / wall, "wall_s": wall}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=45000,
                        help="training images the CNN learned from (the split's first N)")
    parser.add_argument("--val", type=int, default=500,
                        help="validation images simulated (the split's first N / 10 of each "
                             "class)")
    parser.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                        help="a ConvNetParams or TrainParams field, as for cnn_techniques.py")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="the ReLU CNN's checkpoint (cnn_techniques.py's; trained here "
                             "when it is missing)")
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--percentiles", type=float, nargs="+", default=[99.9, 99.99, 100.0],
                        help="our normalisation's percentiles")
    parser.add_argument("--channel-percentiles", type=float, nargs="+", default=[99.9, 100.0],
                        help="our channel-wise normalisation's percentiles")
    parser.add_argument("--modes", nargs="+", default=["99.9%", "Max"],
                        help="SpikingJelly's RateCodingRecipe modes")
    add_store_arguments(parser)
    args = parser.parse_args()
    check_store_arguments(parser, args)
    if any(t < 1 for t in args.steps):
        parser.error(f"--steps must be positive integers, got {args.steps}")
    for flag, values in (("--percentiles", args.percentiles),
                         ("--channel-percentiles", args.channel_percentiles)):
        if any(not 0.0 < p <= 100.0 for p in values):
            parser.error(f"{flag} must lie in (0, 100], got {values}")
    try:
        from spikingjelly.activation_based import ann2snn
    except ImportError as error:
        parser.error(f"SpikingJelly 2.0 is needed ({error}); install it with: {INSTALL}")
    from importlib.metadata import version

    import torch

    from snnlib import data
    from snnlib.tiers import conversion as C

    numbers, net, train = fast_settings(parser, args.set)
    if net.quantisation_levels is not None:
        parser.error("--set quantisation_levels: both converters take a ReLU CNN")
    for mode in args.modes:
        try:
            ann2snn.recipes.rate_coding.validate_rate_coding_mode(mode)
        except (ValueError, NotImplementedError, TypeError):
            parser.error(f"--modes: {mode!r} is not a RateCodingRecipe mode ('Max' or a "
                         "percentile such as '99.9%')")
    cifar = data.load_cifar10("train")
    train_idx, val_idx = data.validation_split(cifar.labels)
    train_idx = train_idx[:args.train]
    val_idx = val_idx[first_per_class(cifar.labels[val_idx], args.val)]
    torch.manual_seed(args.seed)
    model = C.ConvNet(net)
    history = C.train_cnn(model, cifar.images[train_idx], cifar.labels[train_idx], train,
                          seed=args.seed, numerics=numbers, progress=True,
                          checkpoint=args.checkpoint, restart_stale=True)
    model = model.float().eval()
    x_cal = C.images_to_tensor(cifar.images[train_idx[:1000]])
    x_val = C.images_to_tensor(cifar.images[val_idx])
    y_val = torch.as_tensor(cifar.labels[val_idx])
    cnn_acc = C.evaluate_cnn(model, x_val, cifar.labels[val_idx])["accuracy"]
    print(f"the CNN: {100 * cnn_acc:.2f}% on {len(val_idx)} validation images "
          f"(trained {history['total_wall_s'] / 60:.1f} min)", flush=True)
    copies = {}

    def show(name: str, res: dict) -> None:
        copies[name] = res
        print(f"{name}: " + ", ".join(f"T = {t}: {100 * a:.2f}%"
                                      for t, a in res["accuracy"].items())
              + f" ({res['image_steps_per_s']:.0f} image-steps/s)", flush=True)

    folded = C.fold_batchnorm(model)

    def ours(name: str, snn, bf16: bool = False, v0: float = 0.0) -> None:
        sim = C.simulate(snn, x_val, y_val.numpy(), steps=args.steps, bf16=bf16, v0=v0,
                         batch=BATCH)
        show(name, {"accuracy": {int(t): a for t, a in sim["accuracy"].items()},
                    "image_steps_per_s": len(val_idx) * max(args.steps) / sim["wall_s"],
                    "wall_s": sim["wall_s"]})

    layer_wise = {pct: C.normalise(folded, x_cal, percentile=pct)[0]
                  for pct in dict.fromkeys(args.percentiles + args.channel_percentiles)}
    for pct in args.percentiles:
        ours(f"ours, p{pct:g}", layer_wise[pct])
        if pct == C.PERCENTILE:
            ours(f"ours, p{pct:g}, bfloat16", layer_wise[pct], bf16=True)
    for pct in args.channel_percentiles:
        ours(f"ours, p{pct:g}, half threshold", layer_wise[pct], v0=0.5)
        snn, _ = C.normalise(folded, x_cal, percentile=pct, channel_wise=True)
        ours(f"ours, p{pct:g}, channel-wise", snn)
        ours(f"ours, p{pct:g}, channel-wise, half threshold", snn, v0=0.5)
    calibration = [x_cal[i:i + BATCH] for i in range(0, len(x_cal), BATCH)]
    for name, keywords in peer_variants(args.modes):
        recipe = ann2snn.RateCodingRecipe(dataloader=calibration, **keywords)
        snn = ann2snn.Converter(recipe=recipe, device="cpu").convert(model)
        show(name, run_peer(snn, x_val, y_val, args.steps))
    result = {"split": "validation (last 500 training images per class)",
              "train_images": len(train_idx), "val_images": len(val_idx), "seed": args.seed,
              "net": asdict(model.params), "training": asdict(train),
              "cnn_accuracy": cnn_acc, "steps": args.steps, "threads": torch.get_num_threads(),
              "spikingjelly": version("spikingjelly"), "torch": torch.__version__,
              "copies": copies}
    print_and_store(args, result, "peer_conversion.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
