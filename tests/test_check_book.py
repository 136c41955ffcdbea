"""The decisions of tests/browser/check_book.py, without a browser.

The checker itself (Chromium driven by Playwright over the built book) runs as
`make browser-test` after `make book`, in CI; here its pure functions get
page facts made by hand, shaped as its COLLECT_JS returns them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_book", ROOT / "tests" / "browser" / "check_book.py")
check_book = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = check_book  # dataclasses look their module up there
_spec.loader.exec_module(check_book)


def clean_facts(**changes) -> dict:
    facts = {
        "texts": [],
        "untypeset": [],
        "mathErrors": [],
        "mathjaxLoaded": True,
        "images": [{"src": "../_images/a.png", "ok": True}],
        "outputs": [{"classes": ["output", "stream"], "text": "accuracy: 0.52"}],
        "widgetViews": 0,
        "cells": [
            {"source": "sl.viz.lif_panel(lif, 2.0);", "images": [True]},
            {"source": "sl.widgets.lif_explorer(lif, current_na=2.0)", "images": []},
        ],
        "searchFields": 1,
        "emptyHeader": False,
    }
    facts.update(changes)
    return facts


@pytest.mark.parametrize("text, piece", [
    (r"intensities in \([0, 1]\);", r"\([0, 1]\)"),
    ("a display \\[\nx = \\frac{a}{b}\n\\] here", "\\[\nx = \\frac{a}{b}\n\\]"),
    ("$$E = T p$$", "$$E = T p$$"),
    ("the threshold $v_{th}$ is", "$v_{th}$"),
    ("the time $T$ in steps", "$T$"),
    (r"\begin{align} a \end{align}", r"\begin{align}"),
    (r"the rate \frac{1}{2} per step", r"\frac{"),
])
def test_raw_tex_is_found(text, piece):
    assert piece in check_book.raw_tex(text)


@pytest.mark.parametrize("text", [
    "A spiking network does not see pixels.",
    "it costs $5 and $10 a month",      # dollars, not maths (the dollarmath rule)
    "set $SNNLIB_PROFILE to ci",
    "a price of $ 3 $",
    r"a Windows path C:\Users\me",
])
def test_prose_is_not_taken_for_tex(text):
    assert check_book.raw_tex(text) == []


def test_a_formula_is_reported_once_per_match():
    assert check_book.raw_tex(r"\(x\) and \(y\)") == [r"\(x\)", r"\(y\)"]


@pytest.mark.parametrize("output, word", [
    ({"classes": ["output", "stderr"], "text": "x.py:3: UserWarning: careful"}, "stderr"),
    ({"classes": ["output", "traceback"], "text": "ValueError: bad"}, "error output"),
    ({"classes": ["output", "stream"], "text": "Traceback (most recent call last):\n  ..."}, "Traceback"),
    ({"classes": ["output", "stream"], "text": "epoch 1\nRuntimeWarning: overflow"}, "RuntimeWarning"),
    ({"classes": ["output", "text_plain"], "text": "torch.cuda.OutOfMemoryError: CUDA"}, "OutOfMemoryError"),
])
def test_outputs_showing_an_error_or_warning_fail(output, word):
    problems = check_book.output_problems([output])
    assert len(problems) == 1 and word in problems[0]


@pytest.mark.parametrize("output", [
    {"classes": ["output", "stream"], "text": "profile: ci\naccuracy 0.52 (error rate 0.48)"},
    {"classes": ["output", "text_html"], "text": "tier\taccuracy\nconversion\t0.81"},
    {"classes": ["output", "stream"], "text": "errors: 12 of 100"},
    {"classes": ["output", "stream"], "text": ""},
])
def test_ordinary_outputs_pass(output):
    assert check_book.output_problems([output]) == []


def test_an_explorer_after_a_figure_passes():
    assert check_book.explorer_problems(clean_facts()["cells"]) == []


@pytest.mark.parametrize("images", [[], [False]])
def test_an_explorer_needs_a_loaded_image_in_the_cell_before(images):
    cells = [{"source": "sl.viz.stdp_panel(stdp);", "images": images},
             {"source": "# Needs a kernel\nsl.widgets.stdp_explorer(stdp)", "images": []}]
    problems = check_book.explorer_problems(cells)
    assert problems == ["explorer sl.widgets.stdp_explorer: the cell before it shows no image"]


def test_an_explorer_first_on_its_page_fails():
    cells = [{"source": "sl.widgets.dog_explorer(images)", "images": []}]
    assert "first cell" in check_book.explorer_problems(cells)[0]


def test_a_figure_two_cells_back_does_not_count():
    cells = [{"source": "sl.viz.dog_panel(x);", "images": [True]},
             {"source": "print(params)", "images": []},
             {"source": "sl.widgets.dog_explorer(images)", "images": []}]
    assert len(check_book.explorer_problems(cells)) == 1


def test_a_clean_page_has_no_problem():
    assert check_book.page_problems(clean_facts(), check_book.Events(mathjax="done")) == []


@pytest.mark.parametrize("changes, events, expected", [
    ({"untypeset": [r"\(x\)"], "mathjaxLoaded": False}, {}, "MathJax did not load"),
    ({"untypeset": [r"\(x\)"]}, {}, r"formula not typeset: \(x\)"),
    ({"mathErrors": ["Missing open brace for superscript"]}, {}, "MathJax error"),
    ({"texts": [r"see \(r_{max}\) here"]}, {}, "raw TeX in the text"),
    ({"images": [{"src": "../_images/gone.png", "ok": False}]}, {}, "broken image: ../_images/gone.png"),
    ({"widgetViews": 2}, {}, "widget outputs"),
    ({"searchFields": 2}, {}, "2 search fields"),
    ({"emptyHeader": True}, {}, "empty top bar"),
    ({}, {"blocked": [("script", "https://cdn.example.org/mathjax.js")]}, "blocked script request"),
    ({}, {"failed_files": ["file:///book/_static/x.css"]}, "missing file"),
    ({}, {"console_errors": ["Uncaught TypeError"]}, "console error"),
    ({}, {"page_errors": ["SyntaxError: x"]}, "uncaught exception"),
    ({}, {"mathjax": "timed out"}, "MathJax timed out"),
])
def test_each_kind_of_problem_fails_the_page(changes, events, expected):
    problems = check_book.page_problems(clean_facts(**changes), check_book.Events(**events))
    assert any(expected in p for p in problems), problems


def test_problems_are_summarised_by_kind():
    problems = [r"formula not typeset: \(x\)", r"formula not typeset: \(y\)",
                "MathJax did not load; 2 formulas show raw TeX"]
    assert check_book.summarise(problems) == [
        r"formula not typeset (x2): \(x\)", "MathJax did not load; 2 formulas show raw TeX"]


def test_the_redirecting_index_is_recognised():
    # what Jupyter Book writes as _build/html/index.html
    assert check_book.redirect_target('<meta http-equiv="Refresh" content="0; url=book/intro.html" />\n') \
        == "book/intro.html"
    assert check_book.redirect_target("<html><body><p>a page</p></body></html>") is None


def test_pages_leave_out_theme_assets(tmp_path):
    for name in ["index.html", "notebooks/01_x.html", "_static/mathjax/a.html", "_sources/b.html"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<html></html>")
    assert check_book.pages_of(tmp_path) == [Path("index.html"), Path("notebooks/01_x.html")]


def test_without_a_built_book_it_says_so(tmp_path, capsys):
    assert check_book.main([str(tmp_path)]) == 2
    assert "make book" in capsys.readouterr().err


def test_a_chromium_named_but_absent_is_not_replaced_by_another(tmp_path):
    assert check_book.find_chromium(str(tmp_path / "no-chromium")) is None
