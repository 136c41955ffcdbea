"""snnlib.progress: plain progress lines in a notebook, tqdm's bar in a terminal."""

from __future__ import annotations

import snnlib.progress as P
from tqdm.std import tqdm as std_tqdm


def test_a_terminal_gets_tqdms_own_bar(monkeypatch):
    monkeypatch.setattr(P, "in_notebook", lambda: False)
    bar = P.tqdm(total=3, disable=True)
    assert type(bar) is std_tqdm
    bar.close()


def test_a_notebook_gets_one_line_at_the_end_and_none_at_the_start(monkeypatch, capsys):
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    with P.tqdm(total=4, desc="layer 1 learns", unit="batch") as bar:
        assert capsys.readouterr().out == ""  # nothing before the first step
        for _ in range(4):
            bar.update(1)  # within NOTEBOOK_INTERVAL_S: no line yet
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("layer 1 learns: 100%") and "4/4" in lines[0]
    assert "\r" not in lines[0] and "\x1b" not in lines[0]


def test_a_notebook_gets_a_line_per_interval(monkeypatch, capsys):
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    for k in P.tqdm(range(3), desc="epochs", mininterval=0, miniters=1):
        pass
    lines = capsys.readouterr().out.splitlines()
    # one line per step (the interval is 0 here), the last state printed once
    assert [line.split("|")[0] for line in lines] == ["epochs:  33%", "epochs:  67%", "epochs: 100%"]


def test_disabled_bars_print_nothing(monkeypatch, capsys):
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    for _ in P.tqdm(range(3), disable=True):
        pass
    assert capsys.readouterr().out == ""


def test_in_notebook_is_false_outside_a_kernel():
    assert P.in_notebook() is False
