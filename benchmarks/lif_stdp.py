"""Benchmark: N LIF neurons, 1024 Poisson inputs, STDP on, 1 s of model time.

    python benchmarks/lif_stdp.py                  # N = 100, 1000, 10000; every simulator
    python benchmarks/lif_stdp.py --n 100 1000 --simulators torch brian2-numpy

Every configuration runs in its own Python process (Brian2's device and
code-generation settings are global), one after the other, and the script
prints one table: wall time per configuration and its ratio to snnlib's
PyTorch in the same run. Not a test: the numbers depend on the machine.

The network (the same in every simulator, built from the same parameter
objects): 1024 Poisson inputs at ``--rate-hz``, all-to-all synapses onto N
conductance-based LIF neurons (``g_exc += w`` at each input spike), weights
drawn uniformly in [0, w_max], trace STDP with hard bounds, dt = 0.5 ms,
1 s of model time.

Timings:
- ``torch``: snnlib's PyTorch (``encoding.poisson_spikes`` then
  ``plasticity.run_lif_stdp``), input generation included.
- ``brian2-numpy``, ``brian2-cython``: Brian2 runtime mode; the wall time
  covers building the network (synapse creation included) and ``run``;
  "run only" is ``run`` alone. For cython a warm-up (build and 1 ms of
  run at the same N, untimed but reported) compiles the code or loads it
  from Brian2's disk cache first, so compilation is not in the wall time.
- ``brian2-cpp``: Brian2's C++ standalone mode: the wall time includes code
  generation and compilation; "run only" is the compiled program's own
  run time as Brian2 reports it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

N_INPUTS = 1024
DURATION_MS = 1000.0
DT_MS = 0.5
SIMULATORS = ("torch", "brian2-numpy", "brian2-cython", "brian2-cpp")


def parameters():
    from snnlib import neurons, plasticity

    lif = neurons.LIFParams(dt_ms=DT_MS)
    stdp = plasticity.STDPParams(a_plus=0.0005, a_minus=0.000525, w_max=0.06, dt_ms=DT_MS)
    return lif, stdp


def run_torch(n: int, rate_hz: float, seed: int) -> dict:
    import torch

    from snnlib import encoding, plasticity

    torch.manual_seed(seed)
    lif, stdp = parameters()
    w0 = torch.rand(n, N_INPUTS, generator=encoding.make_generator(seed)) * stdp.w_max
    start = time.perf_counter()
    params = encoding.PoissonParams(max_rate_hz=rate_hz, duration_ms=DURATION_MS, dt_ms=DT_MS)
    spikes = encoding.poisson_spikes(torch.ones(1, N_INPUTS), params, generator=seed)
    out = plasticity.run_lif_stdp(spikes, w0, lif, stdp)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "output_rate_hz": float(out["counts"].sum()) / n / (DURATION_MS / 1000),
            "input_spikes": int(spikes.sum()), "torch_threads": torch.get_num_threads()}


def build_brian2(n: int, rate_hz: float, seed: int):
    import brian2 as b2
    import numpy as np

    from snnlib import neurons, plasticity

    lif, stdp = parameters()
    b2.seed(seed)
    inputs = b2.PoissonGroup(N_INPUTS, rate_hz * b2.Hz, dt=DT_MS * b2.ms, name="inputs")
    group = neurons.build_lif_group(n, lif, name="lif")
    syn = plasticity.build_stdp_synapses(inputs, group, stdp, on_pre="g_exc_post += w")
    syn.connect()
    syn.w = np.random.default_rng(seed).random(N_INPUTS * n) * stdp.w_max
    counter = b2.SpikeMonitor(group, record=False, name="counter")
    return b2.Network(inputs, group, syn, counter), counter


def run_brian2(n: int, rate_hz: float, seed: int, target: str) -> dict:
    import warnings

    import brian2 as b2

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    b2.prefs.codegen.target = target
    compile_s = None
    if target == "cython":  # compile (or load from the disk cache) first, untimed
        start = time.perf_counter()
        net, _ = build_brian2(n, rate_hz, seed)
        net.run(1 * b2.ms)
        compile_s = time.perf_counter() - start
    start = time.perf_counter()
    net, counter = build_brian2(n, rate_hz, seed)
    built = time.perf_counter()
    net.run(DURATION_MS * b2.ms)
    end = time.perf_counter()
    out = {"wall_s": end - start, "run_only_s": end - built,
           "output_rate_hz": counter.num_spikes / n / (DURATION_MS / 1000)}
    if compile_s is not None:
        out["warm_up_s"] = compile_s
    return out


def run_brian2_cpp(n: int, rate_hz: float, seed: int) -> dict:
    import warnings

    import brian2 as b2

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    directory = tempfile.mkdtemp(prefix="brian2-standalone-")
    b2.set_device("cpp_standalone", directory=directory, build_on_run=False)
    start = time.perf_counter()
    net, counter = build_brian2(n, rate_hz, seed)
    net.run(DURATION_MS * b2.ms)
    b2.device.build(directory=directory, compile=True, run=True, debug=False)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "run_only_s": float(b2.device._last_run_time),
            "output_rate_hz": int(counter.num_spikes) / n / (DURATION_MS / 1000)}


def one(simulator: str, n: int, rate_hz: float, seed: int) -> dict:
    if simulator == "torch":
        return run_torch(n, rate_hz, seed)
    if simulator in ("brian2-numpy", "brian2-cython"):
        return run_brian2(n, rate_hz, seed, simulator.split("-")[1])
    if simulator == "brian2-cpp":
        return run_brian2_cpp(n, rate_hz, seed)
    raise ValueError(f"unknown simulator {simulator!r}; choose from {SIMULATORS}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=SIMULATORS)
    parser.add_argument("--rate-hz", type=float, default=10.0, help="input rate (default 10 Hz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--one", nargs=2, metavar=("SIMULATOR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.rate_hz, args.seed)))
        return 0

    print(f"# LIF + STDP benchmark: {N_INPUTS} Poisson inputs at {args.rate_hz:g} Hz, "
          f"dt {DT_MS} ms, {DURATION_MS / 1000:g} s of model time")
    print(f"# machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    results = {}
    for n in args.n:
        for sim in args.simulators:
            cmd = [sys.executable, __file__, "--one", sim, str(n), "--rate-hz", str(args.rate_hz),
                   "--seed", str(args.seed)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_s)
            except subprocess.TimeoutExpired:
                results[(sim, n)] = {"error": f"timed out after {args.timeout_s:g} s"}
                continue
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
                results[(sim, n)] = {"error": last[:120]}
            else:
                results[(sim, n)] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"# {sim:14s} N={n:6d}: {results[(sim, n)]}", flush=True)

    print()
    print("| N | simulator | wall time (s) | run only (s) | output rate (Hz) | time / PyTorch |")
    print("|---|---|---|---|---|---|")
    for n in args.n:
        base = results.get(("torch", n), {}).get("wall_s")
        for sim in args.simulators:
            r = results[(sim, n)]
            if "error" in r:
                print(f"| {n} | {sim} | failed: {r['error']} | | | |")
                continue
            ratio = f"{r['wall_s'] / base:.2f}" if base else "n/a"
            run_only = f"{r['run_only_s']:.2f}" if "run_only_s" in r else ""
            print(f"| {n} | {sim} | {r['wall_s']:.2f} | {run_only} | {r['output_rate_hz']:.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
