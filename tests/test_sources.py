"""The package's, the benchmarks' and the tests' sources compile without a warning.

An invalid escape sequence in a string (``"\\mathrm"`` in a docstring that is not raw) is a
DeprecationWarning when Python 3.11 compiles the module and a SyntaxWarning from 3.12 on,
printed at a reader's first import.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("src", "benchmarks", "tests", "book")
                 for p in (ROOT / folder).rglob("*.py"))


def test_there_are_sources_to_check():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert "src/snnlib/tiers/conversion/cnn.py" in names and "benchmarks/cnn_techniques.py" in names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_source_compiles_without_warnings(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compile(path.read_text(encoding="utf-8"), str(path), "exec")


def test_an_invalid_escape_is_caught():
    source = '"""The GELU, :math:`x \\Phi(x)`, written \\mathrm{GELU}."""'  # not a raw string
    assert "\\mathrm" in source
    with warnings.catch_warnings(), pytest.raises((SyntaxError, DeprecationWarning,
                                                   SyntaxWarning)):
        warnings.simplefilter("error")
        compile(source, "<docstring>", "exec")
