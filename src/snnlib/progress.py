"""Progress bars that read as plain text wherever the output ends up.

In a terminal, :func:`tqdm` is tqdm's own bar (on stderr). In a Jupyter
kernel (a chapter, nbval, the book's build), it prints plain lines to stdout
instead of a widget: nothing when it starts, a line every
``NOTEBOOK_INTERVAL_S`` seconds while it runs, and one line when it ends::

    layer 1 learns: 100%|##########| 40/40 [00:31<00:00,  1.26batch/s]

so that a rendered page (read offline, without a widget manager) shows how
long each step took, and a reader running the notebook still sees it move.
"""

from __future__ import annotations

import sys

from tqdm.std import tqdm as _std_tqdm

__all__ = ["NOTEBOOK_INTERVAL_S", "in_notebook", "tqdm"]

NOTEBOOK_INTERVAL_S = 30.0
"""Seconds between two progress lines in a notebook."""


def in_notebook() -> bool:
    """True in a Jupyter kernel (IPython's ZMQ shell), False in a terminal or plain Python."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class _Discard:
    """A file that forgets what is written (tqdm's own cursor moves and carriage returns)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _TextLines(_std_tqdm):
    """tqdm's bar, printed as whole lines on stdout (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        kwargs["file"] = _Discard()
        kwargs.setdefault("mininterval", NOTEBOOK_INTERVAL_S)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("ncols", 80)
        self._shown = None
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        closing = self.disable  # close() sets it before its last display
        if not closing and self.total is not None and self.n >= self.total:
            return True  # the line of close() says it, with the overall rate
        if msg is None and (self.n > 0 or self.total == 0):
            line = self.__str__()
            if line != self._shown:  # close() redraws the last state: print it once
                print(line, file=sys.stdout, flush=True)
                self._shown = line
        return True


def tqdm(*args, **kwargs):
    """A progress bar with tqdm's signature: plain lines in a notebook, a bar in a terminal."""
    if in_notebook():
        return _TextLines(*args, **kwargs)
    return _std_tqdm(*args, **kwargs)
