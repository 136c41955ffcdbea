"""``time_limit(seconds)``: bad input must be refused at once, never simulated for minutes."""

from __future__ import annotations

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
