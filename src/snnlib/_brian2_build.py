"""Brian2's compiled code, built side by side on every core (private; imports Brian2).

Brian2's Cython target compiles one C++ module per code object of a network
(a group's state update, a threshold, a synapse pathway, a monitor), one
after another, when the network first runs; each takes the C++ compiler 2 to
10 s. On a machine that has not compiled them before (a fresh clone, a CI
runner) the tier-1 chapters spend most of their first run waiting for the
compiler on one core. Two things here shorten that wait without changing a
number:

* :class:`ParallelCythonCodeObject` is Brian2's Cython code object, except
  that a module not yet in Brian2's cache is compiled by a pool of worker
  processes (one per core) as soon as Brian2 asks for it, and the network
  waits for it only when the code first runs. The modules of a network thus
  compile side by side. Each is the module Brian2 would build itself (the
  same source and cache file, the same machine code: only the debugging
  information is left out, ``-g0``, which saves 15-25% of the compiler's
  time); the network loads it from Brian2's cache as usual.
* :func:`snnlib.neurons.connect_brian2` creates synapses from index arrays
  with Brian2's numpy target: a one-off vectorised copy, for which compiling
  a module (8-11 s) costs more than it saves.

:func:`snnlib.neurons.brian2_target` returns its target name for ``"cython"``.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import pickle
import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import brian2 as b2
import Cython
import numpy
from brian2.codegen.runtime.cython_rt import CythonCodeObject
from brian2.codegen.runtime.cython_rt.extension_manager import (cython_extension_manager,
                                                                 get_cython_cache_dir)
from brian2.codegen.targets import codegen_targets
from brian2.utils.stringtools import deindent

__all__ = ["ParallelCythonCodeObject", "module_cached"]

# A worker: a Python process that builds Brian2 modules it reads from stdin (pickled
# (cache_dir, code, kwargs)), answering None or the error's text. Its own output
# (compiler messages) goes to stderr, away from the answers.
_WORKER = r"""
import os, pickle, sys
answers = os.fdopen(os.dup(1), "wb")
os.dup2(2, 1)
import brian2
from brian2.codegen.runtime.cython_rt.extension_manager import cython_extension_manager
tasks = sys.stdin.buffer
while True:
    try:
        cache_dir, code, kwargs = pickle.load(tasks)
    except EOFError:
        break
    try:
        brian2.prefs.codegen.runtime.cython.cache_dir = cache_dir
        cython_extension_manager.create_extension(code, **kwargs)
        answer = None
    except Exception as exc:
        answer = repr(exc)
    pickle.dump(answer, answers)
    answers.flush()
"""


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class _Workers:
    """Worker processes, one per core, started when first needed and kept for the process.

    A plain subprocess per worker (not ``multiprocessing``, whose start methods
    re-import the caller's main script or fork a process with threads).
    """

    def __init__(self, n: int) -> None:
        self.threads = ThreadPoolExecutor(max_workers=n, thread_name_prefix="brian2-build")
        self.idle: queue.SimpleQueue = queue.SimpleQueue()
        self.processes: list[subprocess.Popen] = []
        atexit.register(self.close)

    def submit(self, cache_dir, code: str, kwargs: dict):
        return self.threads.submit(self._build, (cache_dir, code, kwargs))

    def _build(self, task) -> None:
        try:
            proc = self.idle.get_nowait()
        except queue.Empty:  # at most one process per thread
            proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            self.processes.append(proc)
        try:
            pickle.dump(task, proc.stdin)
            proc.stdin.flush()
            answer = pickle.load(proc.stdout)
        except BaseException:
            proc.kill()  # never hand a process in an unknown state to the next task
            raise
        self.idle.put(proc)
        if answer is not None:
            raise RuntimeError(answer)

    def close(self) -> None:
        for proc in self.processes:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()  # the worker's loop ends at EOF
        self.threads.shutdown(wait=False, cancel_futures=True)


_WORKERS: _Workers | None = None
_BUILT: set[str] = set()  # sources whose module this process has loaded


def _workers() -> _Workers:
    global _WORKERS
    if _WORKERS is None:
        _WORKERS = _Workers(_cores())
    return _WORKERS


def module_cached(code: str) -> bool:
    """Whether Brian2's cache already holds the compiled module of ``code``.

    Brian2 names a module by the MD5 of its source and of the Python, Cython,
    numpy and compiler it was built with
    (``CythonExtensionManager.create_extension``); the same key is computed here.
    """
    numpy_version = ".".join(numpy.__version__.split(".")[:2])
    key = (deindent(code), sys.version_info, sys.executable, Cython.__version__, numpy_version,
           os.environ.get("CC"), os.environ.get("CXX"))
    name = f"_cython_magic_{hashlib.md5(str(key).encode('utf-8')).hexdigest()}"
    path = os.path.join(os.path.expanduser(get_cython_cache_dir()),
                        name + cython_extension_manager.so_ext)
    return os.path.exists(path)


class _Pending:
    """A module being compiled by a worker, and its source."""

    __slots__ = ("code", "future")

    def __init__(self, code: str, future) -> None:
        self.code, self.future = code, future

    def wait(self) -> None:
        """Wait for the worker; a failure is left for Brian2 to report when it compiles again."""
        try:
            self.future.result()
        except Exception:  # noqa: BLE001 - Brian2's own compilation below gives the real error
            pass


class ParallelCythonCodeObject(CythonCodeObject):
    """Brian2's Cython code object, its modules compiled by worker processes.

    ``compile_block`` hands a module that is not yet cached to a worker and
    returns at once; the code object's first ``run_block`` waits for its
    modules, lets Brian2 load them from its cache (or compile them here,
    reporting its own error, if a worker failed) and from then on runs as
    Brian2's. Cached modules are loaded at once, as by Brian2.

    Registered with Brian2 as the target ``"cython_parallel"`` (Brian2 2.9 accepts a
    code-object class as ``codegen.target`` but then finds no class for it).
    """

    class_name = "cython_parallel"

    def compile_block(self, block):
        code = getattr(self.code, block, "").strip()
        # Brian2 generates a network's code again at every run(); a module built or found
        # once is remembered by its source, so a run of many short ones pays a set lookup
        if not code or "EMPTY_CODE_BLOCK" in code:
            return super().compile_block(block)
        if code in _BUILT or module_cached(code):
            _BUILT.add(code)
            return super().compile_block(block)
        # without debugging information (-g0): 15-25% less compiler time, the same machine code
        flags = list(self.extra_compile_args) + ([] if self.compiler == "msvc" else ["-g0"])
        kwargs = {"define_macros": self.define_macros, "libraries": self.libraries,
                  "extra_compile_args": flags,
                  "extra_link_args": self.extra_link_args, "include_dirs": self.include_dirs,
                  "library_dirs": self.library_dirs,
                  "runtime_library_dirs": self.runtime_library_dirs, "compiler": self.compiler,
                  "owner_name": f"{self.owner.name}_{self.template_name}",
                  "sources": self.sources}
        cache_dir = b2.prefs.codegen.runtime.cython.cache_dir
        self.run_block = self._run_when_built  # this object only, until its modules are in
        return _Pending(code, _workers().submit(cache_dir, code, kwargs))

    def _run_when_built(self, block):
        """``run_block`` while modules are pending: at the first call that needs one (the
        first time step), load them all, then run as Brian2 does from then on."""
        if block == "run" or isinstance(self.compiled_code.get(block), _Pending):
            for name, compiled in list(self.compiled_code.items()):
                if isinstance(compiled, _Pending):
                    compiled.wait()
                    self.compiled_code[name] = super().compile_block(name)
                    _BUILT.add(compiled.code)
            del self.run_block  # Brian2's own method from now on
        return super().run_block(block)


codegen_targets.add(ParallelCythonCodeObject)

