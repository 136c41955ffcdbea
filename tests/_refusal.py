"""What the bad-input tests ask of a refusal: at once (``time_limit``), naming the argument
(``names_the_argument``)."""

from __future__ import annotations

import re
import signal
from contextlib import contextmanager


class Hung(AssertionError):
    """A call did not refuse its bad input within the time limit."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hung` when the block runs longer than ``seconds`` (SIGALRM, main thread)."""
    def alarm(signum, frame):
        raise Hung(f"still running after {seconds:g} s: the bad value was not refused at once")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def names_the_argument(message: str, arg: str) -> bool:
    """``arg`` appears in ``message`` as a word (``labels`` is not named by ``eval_labels``,
    nor ``w`` by ``normalize_weights``)."""
    return re.search(rf"(?<!\w){re.escape(arg)}(?!\w)", message) is not None
