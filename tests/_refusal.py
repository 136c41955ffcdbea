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


def listed_values(strategy) -> list:
    """The values a strategy lists outright (``sampled_from``, ``just``, and their unions);
    generated values (floats, integers, arrays, anything mapped) are hypothesis's to draw."""
    kind = type(strategy).__name__
    if kind == "LazyStrategy":
        return listed_values(strategy.wrapped_strategy)
    if kind == "FilteredStrategy":  # the listed values that pass the filters
        return [v for v in listed_values(strategy.filtered_strategy)
                if all(keep(v) for keep in strategy.flat_conditions)]
    if hasattr(strategy, "original_strategies"):  # one_of, a | b
        return [v for s in strategy.original_strategies for v in listed_values(s)]
    if kind == "SampledFromStrategy":  # (with a .map or .filter: generated, not listed)
        return list(strategy.elements) if not getattr(strategy, "_transformations", ()) else []
    if kind == "JustStrategy":
        return [strategy.value]
    return []
