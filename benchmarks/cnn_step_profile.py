"""Tier 3: where a training step of the full profile's CNN spends its time, and whether
compiling the whole network speeds it up.

One training step (forward, label-smoothed cross-entropy, backward, the optimiser's step:
SGD with Nesterov momentum, and :class:`snnlib.tiers.conversion.Muon` for the convolutions'
filters where the profile trains with it) of the ``full`` profile's CNN
(:func:`snnlib.tiers.conversion.run.params_for_profile`)
on a batch of ``--batch`` random images, in the full profile's arithmetic (bfloat16 autocast
where the CPU has it, channels-last), timed:

- ``eager``: the network as :func:`snnlib.tiers.conversion.train_cnn` runs it;
- ``compiled``: the whole network through ``torch.compile`` (the compile time is printed
  apart; it needs a C++ compiler).

Then PyTorch's profiler, over ``--steps`` eager steps, says which share of the step's CPU
time the convolutions take (forward ``aten::mkldnn_convolution`` and
``aten::convolution_backward``), and the convolutions' arithmetic rate follows from their
multiply-accumulates: each image costs the network's convolution multiply-accumulates
:math:`M` forward and :math:`2M` backward (the gradients of the input and of the
weights), two floating-point operations each, so a step does :math:`6 M B` operations in
its convolutions for a batch of :math:`B` (the first layer, whose weights are fixed and
whose input needs no gradient, costs only its forward pass).

Times are medians of ``--repeats`` runs of ``--steps`` steps each, eager and compiled in
alternation (the machine is shared: look at the spread); the ratio is measured in this run.

    python benchmarks/cnn_step_profile.py
    python benchmarks/cnn_step_profile.py --batch 512 --steps 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time

MUON_STEP = "Muon step"
"""The profiler's label of Muon's step (its time includes the operations inside it)."""


def conv_macs_per_image(net) -> tuple[float, float]:
    """The multiply-accumulates of the convolutions of ``net`` (an ``nn.Sequential``, such as
    a ConvNet's ``features``) for one image, all of them and the first alone (the tier's own
    count, :func:`snnlib.tiers.conversion.convert._layer_macs`, without the linear layers)."""
    from torch import nn

    from snnlib.tiers.conversion.convert import _layer_macs

    conv = [n for k, n in _layer_macs(net).items() if isinstance(net[k], nn.Conv2d)]
    return float(sum(conv)), float(conv[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024, help="images per step (the full "
                        "profile's batch: 1,024)")
    parser.add_argument("--steps", type=int, default=5, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="time the eager step only")
    args = parser.parse_args()
    if args.batch < 2 or args.steps < 1 or args.repeats < 1:
        parser.error("--batch must be at least 2, --steps and --repeats at least 1")

    import torch
    from torch import nn
    from torch.profiler import ProfilerActivity, profile, record_function

    from snnlib import profiles
    from snnlib.tiers.conversion import Muon, cnn
    from snnlib.tiers.conversion.numerics import numerics_for_profile, numerics_scope
    from snnlib.tiers.conversion.run import params_for_profile

    full = profiles.get_profile("full")
    net, tp = params_for_profile(full)
    numerics = numerics_for_profile(full)
    torch.manual_seed(0)
    model = cnn.ConvNet(net)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (args.batch,), generator=gen)
    if model.whitening is not None:
        cnn.set_whitening(model, x)
    macs, first_macs = conv_macs_per_image(model.features)
    layout = torch.channels_last if numerics.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout).train()
    x = x.contiguous(memory_format=layout)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=tp.label_smoothing)
    filters = cnn._muon_filters(model) if tp.optimizer == "muon" else []
    filter_ids = {id(w) for w in filters}
    opt = torch.optim.SGD([w for w in model.parameters()
                           if w.requires_grad and id(w) not in filter_ids], lr=1e-3,
                          momentum=tp.momentum, nesterov=True)
    muon = Muon(filters, lr=1e-3, momentum=tp.muon_momentum) if filters else None
    print(f"the full profile's CNN: widths {net.widths}, {macs:.3g} convolution "
          f"multiply-accumulates per image; batches of {args.batch}; {numerics.describe()}; "
          + ("Muon for the filters, SGD for the rest" if muon is not None else "SGD"))

    def step(m) -> None:
        with torch.autocast("cpu", torch.bfloat16, enabled=numerics.bf16):
            loss = loss_fn(m(x).float(), y)
        opt.zero_grad(set_to_none=True)
        if muon is not None:
            muon.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if muon is not None:
            with record_function(MUON_STEP):
                muon.step()

    def timed(m) -> float:
        start = time.perf_counter()
        for _ in range(args.steps):
            step(m)
        return (time.perf_counter() - start) / args.steps

    with numerics_scope(numerics):
        variants = {"eager": model}
        step(model)  # oneDNN sets its kernels up on first use
        if not args.no_compile:
            compiled = torch.compile(model)
            start = time.perf_counter()
            try:
                step(compiled)
                step(compiled)
            except Exception as err:  # no C++ compiler, or the compiler failed here
                print(f"torch.compile could not compile the network here "
                      f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
                      "timing the eager step only")
            else:
                print(f"compiling the whole network (and its first two steps): "
                      f"{time.perf_counter() - start:.1f} s")
                variants["compiled"] = compiled
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, m in variants.items():
                times[name].append(timed(m))
        for name, ts in times.items():
            med = statistics.median(ts)
            print(f"{name:9s} {med:6.3f} s per step (runs: "
                  f"{', '.join(f'{t:.3f}' for t in ts)}), {args.batch / med:6.0f} images/s, "
                  f"{med / statistics.median(times['eager']):.2f} x eager")

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step(model)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    by_name = {e.key: e.self_cpu_time_total / 1e6 for e in events}
    forward = by_name.get("aten::mkldnn_convolution", 0.0)
    backward = by_name.get("aten::convolution_backward", 0.0)
    flops = 2 * args.batch * args.steps

    def rate(ops: float, seconds: float) -> float:
        return ops / seconds / 1e12 if seconds > 0 else float("nan")

    print(f"profiled eager steps: {total / args.steps:.3f} s of CPU time per step")
    print(f"  convolutions forward:  {forward / total:6.1%} of it, "
          f"{rate(flops * macs, forward):.2f} TFLOP/s")
    print(f"  convolutions backward: {backward / total:6.1%} of it, "
          f"{rate(flops * 2 * (macs - first_macs), backward):.2f} TFLOP/s")
    muon_s = sum(e.cpu_time_total for e in events if e.key == MUON_STEP) / 1e6
    if muon is not None:
        print(f"  Muon's step:           {muon_s / total:6.1%} of it (its orthogonalisation "
              "included)")
    print(f"  everything else:       {(total - forward - backward - muon_s) / total:6.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
