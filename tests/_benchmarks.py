"""A script of benchmarks/ loaded as a module, for the tests of its functions."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str, monkeypatch):
    """``benchmarks/<name>.py`` as a module, with benchmarks/ on ``sys.path`` for the test's
    duration (the scripts import their sibling modules)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
