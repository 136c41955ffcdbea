"""Pure tensor functions through ``torch.compile``, falling back to the function itself.

``torch.compile`` fuses a chain of elementwise operations into one pass over
memory (tier 2's neuron updates, tier 3's quantised activation), but it needs a
C++ compiler. Where a process cannot compile, :class:`CompiledOrEager` warns
once and reports it (returns ``None``) so that its caller computes the same
function uncompiled.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

import torch

_COMPILER_ERRORS = (torch._dynamo.exc.BackendCompilerFailed, torch._inductor.exc.InductorError)
"""What a (re)compilation raises when the compiler fails."""


class _NoCudaRuntimeNotice(logging.Filter):
    """Drops the compiler's "No CUDA runtime is found" notice, keeps the rest.

    On a machine with a CUDA toolkit but no GPU (a CPU laptop with CUDA
    installed, a CI runner), the first compilation in a fresh compiler cache
    logs this notice on stderr. It concerns the machine, not the computation:
    the compiled code runs on the CPU as intended.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


_CPP_LOG = logging.getLogger("torch.utils.cpp_extension")
if not any(isinstance(f, _NoCudaRuntimeNotice) for f in _CPP_LOG.filters):
    _CPP_LOG.addFilter(_NoCudaRuntimeNotice())


class CompiledOrEager:
    """``eager`` through ``torch.compile`` (dynamic shapes), made on first use.

    Calling it returns the compiled function's result, or ``None`` where this
    process cannot compile (no C++ compiler, say): after one ``RuntimeWarning``,
    every later call returns ``None`` at once, and the caller computes ``eager``
    itself. The first call (which compiles) falls back on any ``RuntimeError``;
    later calls only on the compiler's own errors (a recompilation for new
    shapes that fails): an error of the computation itself, such as running
    out of memory, is raised. The compiled code computes the same function;
    float32 results can differ from ``eager``'s in the last bit where one of
    them fuses a multiply and an add that the other rounds separately.

    Attributes
    ----------
    eager : callable
        The pure function.
    what : str
        Its name for the warning ("QCFS's activation").
    fn : callable, None or False
        The compiled function; None before the first call, False once
        compiling failed in this process.
    """

    def __init__(self, eager: Callable, what: str) -> None:
        self.eager = eager
        self.what = what
        self.fn = None

    def __call__(self, *args):
        if self.fn is False:
            return None
        first = self.fn is None
        try:
            if first:
                self.fn = torch.compile(self.eager, dynamic=True)
            return self.fn(*args)
        except (RuntimeError if first else _COMPILER_ERRORS) as error:
            if isinstance(error, torch.OutOfMemoryError):
                raise
            self.fn = False
            inner = getattr(error, "inner_exception", None) or error
            text = str(inner).strip()
            reason = f"{type(inner).__name__}: {text.splitlines()[0]}" if text else type(inner).__name__
            warnings.warn(f"{self.what} could not be compiled ({reason[:200]}); it is computed "
                          "uncompiled from now on in this process: the same function, slower.",
                          RuntimeWarning, stacklevel=3)
            return None
