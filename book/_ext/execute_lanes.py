"""Execute the book's chapters two at a time, then hand their outputs to the build.

    python book/_ext/execute_lanes.py [--cache _build/.jupyter_cache] [--timeout 1800]

Tier 1's chapters simulate in Brian2 on one core; the other chapters use
PyTorch and NumPy. Executed one after another, as a Sphinx build does, the
second core of a two-core machine sits idle for most of the tier-1 chapters.
This script runs the chapters in :data:`LANES`: the chapters of a lane one
after another (chapter 4 continues from chapter 3's run folder, so both are in
one lane), the lanes side by side, each chapter in its own Jupyter kernel with
the chapter's folder as working directory, exactly as myst-nb would run it.

Each executed notebook goes into the jupyter-cache at ``--cache`` with its run
time, as myst-nb's ``cache`` execution mode stores what it executes; the book
is built in that mode, finds every chapter there and executes nothing again.
``make book`` empties the cache first, so every build executes every chapter
with the snnlib of the working tree (the cache itself keys on the notebooks'
code only). A chapter that fails stops its lane; the script then prints the
error and exits with status 1, and nothing of that chapter is cached.

Printed at the end: each chapter's time, each lane's and the wall time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LANES = (
    ("notebooks/03_stdp_network.ipynb", "notebooks/04_rstdp.ipynb"),
    ("notebooks/01_encoding.ipynb", "notebooks/02_neurons_and_plasticity.ipynb",
     "notebooks/05_dog_lif.ipynb", "notebooks/06_conversion.ipynb",
     "notebooks/07_comparison.ipynb"),
)
"""The chapters of each lane, in the order they run (paths from the book's root). Every
notebook of the table of contents is in exactly one lane (``tests/test_book.py``)."""


def execute_lane(paths: list[Path], cache_path: Path, timeout: int) -> int:
    """Execute ``paths`` one after another and cache each; 1 at the first failure."""
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn
    from jupyter_cache.executors.utils import single_nb_execution

    cache = get_cache(str(cache_path))
    for path in paths:
        nb = nbformat.read(str(path), as_version=4)
        result = single_nb_execution(nb, cwd=str(path.parent), allow_errors=False,
                                     timeout=timeout, meta_override=True)
        if result.err is not None:
            print(f"{path.relative_to(ROOT)} failed after {result.time:.0f} s:\n"
                  f"{result.exc_string}", flush=True)
            return 1
        for attempt in range(20):  # the other lane may be writing to the cache's database
            try:
                cache.cache_notebook_bundle(
                    CacheBundleIn(nb, str(path), data={"execution_seconds": result.time}),
                    check_validity=False, overwrite=True)
                break
            except Exception as error:  # sqlite3's "database is locked", through SQLAlchemy
                if "locked" not in str(error) or attempt == 19:
                    raise
                time.sleep(0.5)
        print(f"{path.relative_to(ROOT)}: {result.time:.1f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    parser.add_argument("--lane", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cache = Path(args.cache)
    if args.lane is not None:  # a lane, in its own process
        return execute_lane([ROOT / p for p in LANES[args.lane]], cache, args.timeout)

    from jupyter_cache import get_cache

    get_cache(str(cache))  # create the database before the lanes share it
    start = time.perf_counter()
    lanes = [subprocess.Popen([sys.executable, __file__, "--cache", str(cache),
                               "--timeout", str(args.timeout), "--lane", str(k)], cwd=ROOT,
                              env=os.environ.copy())
             for k in range(len(LANES))]
    ended = {}
    while len(ended) < len(lanes):
        for k, lane in enumerate(lanes):
            if k not in ended and lane.poll() is not None:
                ended[k] = time.perf_counter() - start
        time.sleep(0.2)
    failed = [k for k, lane in enumerate(lanes) if lane.returncode != 0]
    for k in range(len(lanes)):
        print(f"lane {k + 1} ({len(LANES[k])} chapters): {ended[k]:.0f} s"
              + (" (failed)" if k in failed else ""))
    print(f"chapters executed in {time.perf_counter() - start:.0f} s, {len(LANES)} at a time")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
