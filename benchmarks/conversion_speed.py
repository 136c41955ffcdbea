"""Tier 3 speed: float32 against bfloat16 autocast, for training, CNN inference and the SNN.

On CPUs with AMX or AVX-512 BF16 (this machine's Xeon has both), PyTorch's
``torch.autocast("cpu", dtype=torch.bfloat16)`` runs convolutions in
bfloat16. This measures, for the tier's CNN (``--width``: convolutions of
width, width, 2 width, 2 width, 4 width, 4 width), on random images:

- training: images per second of forward + backward + SGD step (batch 128);
- CNN inference: images per second (batch 500);
- SNN: image-steps per second of :func:`snnlib.tiers.conversion.simulate`
  (batch 500).

Prints the figures and the bfloat16 / float32 ratios, measured in this run.

    python benchmarks/conversion_speed.py [--width 64] [--steps 16]
"""

from __future__ import annotations

import argparse
import time

import torch

from snnlib.tiers import conversion as C


def _rate(fn, n_items: int, repeats: int = 3) -> float:
    fn()  # warm up (oneDNN picks its kernels on the first call)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return n_items * repeats / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16, help="SNN steps per timing")
    args = ap.parse_args()
    torch.manual_seed(0)
    w = args.width
    model = C.ConvNet(C.ConvNetParams(widths=(w, w, 2 * w, 2 * w, 4 * w, 4 * w)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x_train, y_train = torch.rand(128, 3, 32, 32), torch.randint(0, 10, (128,))
    x_eval = torch.rand(500, 3, 32, 32)
    print(f"width {w}, {torch.get_num_threads()} threads")
    results = {}
    for name, bf16 in (("float32", False), ("bfloat16", True)):
        def train_step():
            model.train()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(model(x_train).float(), y_train)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def infer():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model.eval()(x_eval)

        folded = C.fold_batchnorm(model.eval())
        net, _ = C.normalise(folded, x_eval[:100], percentile=99.99)

        def snn():
            C.simulate(net, x_eval, torch.zeros(500, dtype=torch.long), steps=[args.steps],
                       bf16=bf16)

        results[name] = {"training images/s": _rate(train_step, 128),
                         "CNN inference images/s": _rate(infer, 500),
                         "SNN image-steps/s": _rate(snn, 500 * args.steps, repeats=1)}
        print(name + ": " + ", ".join(f"{k} {v:.0f}" for k, v in results[name].items()),
              flush=True)
    for k in results["float32"]:
        print(f"  {k}: bfloat16 / float32 = {results['bfloat16'][k] / results['float32'][k]:.2f}")


if __name__ == "__main__":
    main()
