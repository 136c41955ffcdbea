"""The book's structure and the committed notebooks' hygiene (no execution here:
nbval runs the notebooks, `make book` builds the pages)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    walk(toc.get("chapters", []))
    return files


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ is empty"


def test_toc_entries_exist_and_every_notebook_is_listed():
    files = toc_files()
    for entry in files:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".md", ".ipynb")), entry
    listed = {f for f in files if f.startswith("notebooks/")}
    assert listed == {f"notebooks/{p.stem}" for p in NOTEBOOKS}


def test_chapters_are_numbered_in_reading_order():
    chapters = [f for f in toc_files() if f.startswith("notebooks/")]
    assert chapters == sorted(chapters)
    assert all(re.match(r"notebooks/\d\d_[a-z0-9_]+$", f) for f in chapters)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_hold_no_error_and_no_traceback(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", f"cell {i} has an error output"
            text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
            assert "Traceback (most recent call last)" not in text, f"cell {i} prints a traceback"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed_in_order(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"
            and "skip-execution" not in c["metadata"].get("tags", [])]
    counts = [c.get("execution_count") for c in code]
    assert all(isinstance(n, int) for n in counts), "commit the notebooks with their outputs"
    assert counts == sorted(counts), "cells were executed out of order"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_starts_with_the_house_imports(path):
    nb = json.loads(path.read_text())
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    source = "".join(first["source"])
    assert "import snnlib as sl" in source and "get_profile()" in source and "SEED" in source
    # the Colab button opens a bare kernel: the first cell installs snnlib there, and only there
    assert 'if "google.colab" in sys.modules' in source and "git+https://github.com/" in source
    assert source.index("google.colab") < source.index("import snnlib as sl")
    # setup, not prose: the book shows its output and folds its code behind a toggle
    assert "hide-input" in first["metadata"].get("tags", [])
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_widget_metadata_carries_its_state(path):
    # GitHub refuses to render a notebook whose metadata.widgets lacks "state".
    widgets = json.loads(path.read_text())["metadata"].get("widgets")
    if widgets is not None:
        assert "state" in widgets.get(WIDGET_STATE, {})


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,]+),", bib))
    sources = [p.read_text() for p in NOTEBOOKS] + [p.read_text() for p in (ROOT / "book").glob("*.md")]
    cited = set()
    for text in sources:
        for group in re.findall(r"\{cite(?::[pt])?\}`([^`]+)`", text):
            cited.update(k.strip() for k in group.split(","))
    assert cited, "no citations found"
    assert sorted(cited - keys) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_explorer_cells_are_skipped_by_the_book_build_and_drawn_statically_before(path):
    # nbclient (which builds the book) can block on a cell that creates widgets
    # (jupyter/nbclient#312): explorers run under nbval only, and the cell before
    # each one draws the same figure statically for the published page.
    cells = json.loads(path.read_text())["cells"]
    for k, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "sl.widgets." in source:
            assert "skip-execution" in cell["metadata"].get("tags", []), source[:80]
            assert not cell["outputs"]
            previous = [c for c in cells[:k] if c["cell_type"] == "code"][-1]
            assert "sl.viz." in "".join(previous["source"])


def test_bibliography_labels_are_author_year_and_unique():
    # book/_ext/bibstyle.py: the {bibliography} lists label entries as the text cites
    # them ("Diehl and Cook, 2015"), not alpha keys ("DC15"); sphinxcontrib-bibtex warns
    # (an error under -W) when two entries share a label.
    pytest.importorskip("pybtex")
    import importlib.util

    from pybtex.database import parse_file
    from pybtex.plugin import find_plugin

    spec = importlib.util.spec_from_file_location("bibstyle", ROOT / "book" / "_ext" / "bibstyle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    style = find_plugin("pybtex.style.formatting", module.STYLE_NAME)()
    entries = style.sort(parse_file(str(ROOT / "book" / "references.bib")).entries.values())
    labels = dict(zip((e.key for e in entries), style.format_labels(entries)))
    assert labels["krizhevsky2009learning"] == "Krizhevsky, 2009"
    assert labels["diehl2015unsupervised"] == "Diehl and Cook, 2015"
    assert labels["diehl2015fast"] == "Diehl et al., 2015"
    assert labels["fremaux2016neuromodulated"] == "Frémaux and Gerstner, 2016"  # LaTeX decoded
    assert len(set(labels.values())) == len(labels)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_says_how_long_it_runs_right_under_its_title(path):
    """A reader learns before running anything how long the chapter takes: a note right
    after the title, with the time at the book profile and what the full profile needs."""
    first = json.loads(path.read_text())["cells"][0]
    source = "".join(first["source"])
    title, rest = source.split("\n", 1)
    assert first["cell_type"] == "markdown" and title.startswith("# ")
    assert rest.lstrip().startswith("```{admonition} Run time")
    note = rest.split("```", 2)[1]
    assert "`book` profile" in note or "whatever the profile" in note
    assert re.search(r"\d+ (seconds|minutes?)|a minute", note)
