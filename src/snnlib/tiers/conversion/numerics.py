"""Tier 3's arithmetic: reproducible at the ``ci`` and ``book`` profiles, fast at ``full``.

A CNN trained twice from the same seed ends with the same weights only if
every sum is taken in the same order and at the same precision. On a CPU
three things change that order from one machine to another:

- **precision**: bfloat16 autocast, which the tier uses where the processor
  has bfloat16 units (:func:`snnlib.tiers.conversion.bf16_supported`),
  rounds the inputs of every convolution to 8 significant bits;
- **threads**: a convolution's weight gradient is summed over the batch in
  one part per thread, so 1 and 2 threads give weights that differ in the
  last bits, and training turns such differences into different accuracies;
- **instruction set**: PyTorch's own kernels (ATen), oneDNN's convolutions
  and MKL's matrix products each choose AVX2, AVX-512 or AMX code when they
  first run, and each of those sums in its own order.

:class:`Numerics` says which of these a run fixes. The ``ci`` and ``book``
profiles use :data:`REPRODUCIBLE`: float32, :data:`REPRODUCIBLE_THREADS`
threads, PyTorch's deterministic algorithms (``torch.use_deterministic_algorithms``,
and on a GPU cuDNN's deterministic, non-benchmarked kernels), and the CPU
kernels capped at AVX2 (:data:`CPU_ISA_ENV`: ATen, oneDNN, and MKL's
conditional numerical reproducibility mode), so that two runs on x86-64
machines print the same numbers whatever their processor, core count or
``OMP_NUM_THREADS``. The cap costs speed on processors with AVX-512. The
``full`` profile uses :func:`fast`: bfloat16 autocast where the device has
it, PyTorch's default threads and kernels, QCFS's activation compiled
(``torch.compile``) and the channels-last memory format while it trains; its
numbers depend on the machine.

The instruction set is chosen once per process, when PyTorch first computes,
from environment variables: :func:`use_numerics` must run before any PyTorch
computation (a chapter calls it in its first cell; ``run_tier`` calls it
first thing). If PyTorch has already computed with other kernels,
:func:`numerics_in_use` says so, the run warns, and its caches are keyed by
the kernels it really used (:func:`fingerprint`), so that they never mix
results of two kinds of arithmetic. Not covered: processors other than
x86-64, GPUs of different models, and oneDNN's choice of blocking, which
follows the cache sizes (no such difference was seen, but none is excluded).
"""

from __future__ import annotations

import os
import platform
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from ... import _validate as check

__all__ = ["CPU_ISA_ENV", "Numerics", "REPRODUCIBLE", "REPRODUCIBLE_THREADS",
           "activations_compiled", "fast", "fingerprint", "numerics_for_profile",
           "numerics_in_use", "numerics_scope", "use_numerics"]

REPRODUCIBLE_THREADS = 2
"""Intra-op threads of the reproducible path (the book is built on 2 cores; a machine with
fewer runs them anyway, one with more leaves the rest idle)."""

CPU_ISA_ENV = {"avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                        "MKL_CBWR": "COMPATIBLE,STRICT"}}
"""The environment variables that cap the CPU kernels, per cap: ATen and oneDNN at AVX2;
MKL (here only the linear layer's matrix products) in its ``COMPATIBLE`` reproducibility
branch, since its ``AVX2`` branch falls back to the processor's own code on processors
that are not Intel's (MKL's documentation on conditional numerical reproducibility)."""


@dataclass(frozen=True)
class Numerics:
    """How tier 3 computes (see the module docstring).

    Attributes
    ----------
    reproducible : bool
        Deterministic algorithms on (``torch.use_deterministic_algorithms``,
        warning where an operation has no deterministic version), cuDNN
        deterministic and not benchmarked, float32 matrix products at full
        precision. Needs fixed ``threads`` and ``bf16=False``.
    threads : int or None
        Intra-op threads (``torch.set_num_threads``); None: PyTorch's default
        (the cores, or ``OMP_NUM_THREADS``).
    bf16 : bool
        Training and simulation under bfloat16 autocast.
    cpu_isa : {"avx2"} or None
        Cap on the CPU kernels' instruction set (:data:`CPU_ISA_ENV`); None:
        the best the processor has.
    compile_activations : bool
        Training computes QCFS's activation through ``torch.compile`` (one
        fused pass forward and one backward instead of about eight of each;
        the first step compiles, which takes seconds). Where the process
        cannot compile, it warns once and computes it uncompiled. Not with
        ``reproducible``: the compiled code sums the threshold's gradient in
        an order of its own, chosen for the processor.
    channels_last : bool
        Training keeps the network's weights and each batch in PyTorch's
        channels-last memory format (NHWC), whose oneDNN convolution kernels
        are faster on CPUs (``benchmarks/cnn_layout_speed.py`` measures it).
        The same arithmetic in another memory order: sums may differ in their
        last bits, so not with ``reproducible``.
    """

    reproducible: bool = False
    threads: int | None = None
    bf16: bool = False
    cpu_isa: Literal["avx2"] | None = None
    compile_activations: bool = False
    channels_last: bool = False

    def __post_init__(self) -> None:
        for name in ("reproducible", "bf16", "compile_activations", "channels_last"):
            check.flag(f"Numerics.{name}", getattr(self, name))
        if self.threads is not None:
            check.positive_int("Numerics.threads", self.threads)
        if self.cpu_isa is not None:
            check.choice("Numerics.cpu_isa", self.cpu_isa, tuple(CPU_ISA_ENV))
        if self.reproducible and (self.threads is None or self.bf16):
            raise ValueError(f"Numerics: reproducible arithmetic needs a fixed number of threads "
                             f"and float32, got threads={self.threads!r}, bf16={self.bf16!r}.")
        for name, why in (("compile_activations", "computes QCFS uncompiled (the compiled "
                                                  "code's sums follow the processor)"),
                          ("channels_last", "trains in the default memory format (other "
                                            "kernels, other sums)")):
            if self.reproducible and getattr(self, name):
                raise ValueError(f"Numerics: reproducible arithmetic {why}; set {name}=False.")

    def describe(self) -> str:
        """One line for a reader: the precision, threads and kernels (no machine-specific value)."""
        parts = ["bfloat16 autocast" if self.bf16 else "float32",
                 f"{self.threads} threads" if self.threads else "PyTorch's default threads"]
        if self.reproducible:
            parts.append("deterministic algorithms")
        parts.append(f"CPU kernels capped at {self.cpu_isa.upper()}" if self.cpu_isa
                     else "the CPU's fastest kernels")
        if self.compile_activations:
            parts.append("QCFS compiled")
        if self.channels_last:
            parts.append("channels-last training")
        return ", ".join(parts)


REPRODUCIBLE = Numerics(reproducible=True, threads=REPRODUCIBLE_THREADS, bf16=False,
                        cpu_isa="avx2")
"""The arithmetic of the ``ci`` and ``book`` profiles: the same numbers on every x86-64
machine with AVX2."""


def fast(device: str = "cpu") -> Numerics:
    """The ``full`` profile's arithmetic: bfloat16 where ``device`` has it, QCFS compiled,
    channels-last training, else the defaults."""
    from .cnn import bf16_supported

    check.instance("device", device, str, where="conversion.fast")
    return Numerics(bf16=bf16_supported(device), compile_activations=True, channels_last=True)


class _Activations:
    """Whether :class:`~snnlib.tiers.conversion.QCFS` computes through its compiled code now
    (set by :func:`use_numerics` and :func:`numerics_scope`)."""

    compiled = False


def activations_compiled() -> bool:
    """Whether QCFS's activation is compiled in this process now (``Numerics.compile_activations``
    of the numerics in use; False before any)."""
    return _Activations.compiled


def numerics_for_profile(profile, device: str = "cpu") -> Numerics:
    """:data:`REPRODUCIBLE` for the ``ci`` and ``book`` profiles, :func:`fast` for ``full``."""
    from .. import _profile_section

    _profile_section(profile, "conversion", "conversion.numerics_for_profile")
    check.instance("device", device, str, where="conversion.numerics_for_profile")
    return fast(device) if profile.name == "full" else REPRODUCIBLE


def _check_numerics(numerics, where: str) -> Numerics:
    check.instance("numerics", numerics, Numerics, where=where)
    return numerics


def _on_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _cap_cpu_isa(isa: str) -> None:
    """Set :data:`CPU_ISA_ENV`'s variables for ``isa`` (read by the libraries when they first
    compute: a process that has computed keeps its kernels)."""
    if _on_x86():
        os.environ.update(CPU_ISA_ENV[isa])


def numerics_in_use() -> dict:
    """What this process computes with now: threads, ATen's kernels, the deterministic flags and
    the environment variables that cap oneDNN and MKL."""
    return {"threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
            "mkl_cbwr": os.environ.get("MKL_CBWR"),
            "activations_compiled": _Activations.compiled,
            "machine": platform.machine()}


def _kernels_capped(numerics: Numerics) -> bool:
    """Whether ATen's kernels are the capped ones (True when nothing is capped or the processor
    is not x86-64, where the cap does not apply)."""
    if numerics.cpu_isa is None or not _on_x86():
        return True
    capability = torch.backends.cpu.get_cpu_capability()
    return capability.lower() == numerics.cpu_isa or capability in ("DEFAULT", "NO AVX")


def fingerprint(numerics: Numerics | None) -> dict | None:
    """What a cache of a run with ``numerics`` is keyed by, beyond its parameters.

    None for no numerics (the process's own settings) and for arithmetic that is
    not reproducible (a checkpoint of the ``full``
    profile resumes on any machine). For reproducible arithmetic: the
    numerics and the threads and ATen kernels in use, so that a checkpoint
    made with other kernels (another machine, or a process whose kernels
    were chosen before the cap) is not taken for this run's.
    """
    if numerics is None:
        return None
    _check_numerics(numerics, "conversion.fingerprint")
    if not numerics.reproducible:
        return None
    used = numerics_in_use()
    kept = asdict(numerics)
    for name in ("compile_activations", "channels_last"):
        kept.pop(name)  # always False here: keys stay those of earlier caches
    return {**kept, "threads_in_use": used["threads"],
            "cpu_capability": used["cpu_capability"]}


def _apply(numerics: Numerics, stacklevel: int) -> None:
    """Set the process-wide state ``numerics`` asks for (threads, flags, kernel caps); a warning
    points ``stacklevel`` frames up (at the caller's code)."""
    if numerics.cpu_isa is not None:
        _cap_cpu_isa(numerics.cpu_isa)
        if not _kernels_capped(numerics):
            env = " ".join(f"{k}={v}" for k, v in CPU_ISA_ENV[numerics.cpu_isa].items())
            warnings.warn(
                f"tier 3's reproducible arithmetic caps the CPU kernels at "
                f"{numerics.cpu_isa.upper()}, but PyTorch already computed in this process with "
                f"its {torch.backends.cpu.get_cpu_capability()} kernels, which it keeps: the "
                f"numbers will match only runs on processors like this one. Call "
                f"conversion.numerics.use_numerics(...) before any PyTorch computation, or start "
                f"Python with {env}.", RuntimeWarning, stacklevel=stacklevel)
    if numerics.threads is not None:
        torch.set_num_threads(numerics.threads)
    _Activations.compiled = numerics.compile_activations
    if numerics.reproducible:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic mode
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.backends.mkldnn.deterministic = True
        torch.set_float32_matmul_precision("highest")


def use_numerics(numerics: Numerics) -> dict:
    """Make this process compute as ``numerics`` says, from now on; returns :func:`numerics_in_use`.

    For a chapter's first cell, before any PyTorch computation (the CPU
    kernels are chosen at the first one; see the module docstring). It
    changes PyTorch's global settings (threads, deterministic algorithms) and
    whether QCFS computes compiled, for the rest of the process;
    :func:`numerics_scope` restores them afterwards.
    """
    _apply(_check_numerics(numerics, "conversion.use_numerics"), stacklevel=3)
    return numerics_in_use()


_ENV = sorted({name for env in CPU_ISA_ENV.values() for name in env} | {"CUBLAS_WORKSPACE_CONFIG"})
"""The environment variables :func:`numerics_scope` may set, and restores."""


@contextmanager
def numerics_scope(numerics: Numerics | None):
    """``with numerics_scope(numerics):`` computes as ``numerics`` says, then restores the
    threads, the deterministic flags and the environment variables (so that processes started
    later are not capped). The CPU kernels, once chosen, stay for the process. With None it
    changes nothing (the process's own settings)."""
    if numerics is None:
        yield None
        return
    _check_numerics(numerics, "conversion.numerics_scope")
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.backends.mkldnn.deterministic, torch.get_float32_matmul_precision(),
             _Activations.compiled)
    env = {name: os.environ.get(name) for name in _ENV}
    _apply(numerics, stacklevel=4)  # past this generator and contextlib's __enter__
    try:
        yield numerics
    finally:
        for name, value in env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        (threads, algorithms, warn_only, cudnn_det, cudnn_bench, mkldnn_det, precision,
         _Activations.compiled) = saved
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_det
        torch.backends.cudnn.benchmark = cudnn_bench
        torch.backends.mkldnn.deterministic = mkldnn_det
        torch.set_float32_matmul_precision(precision)
