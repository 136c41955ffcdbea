"""Checks at the boundary of snnlib's public functions: one vocabulary of error messages.

Every check raises :class:`ValueError` (a wrong value) or :class:`TypeError`
(a wrong kind of object) whose message names the argument, the value it got
and what is allowed, for example::

    neurons.simulate_lif: current_na must be finite, got nan at index (3, 0)
    metrics.confusion_matrix: labels must be class indices in [0, 9], got -1

The checks return the value they accept (converted where that is harmless:
an int where a float is asked for), so a function can write
``rate_hz = check.number("rate_hz", rate_hz, low=0)``.

They work on numbers, numpy arrays and torch tensors (torch is imported only
when a tensor is passed). They are cheap next to the work they guard: one pass
over an array at most.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterable

__all__ = ["array", "choice", "finite_number", "fits_in_memory", "flag", "images",
           "instance", "integer", "labels", "number", "path", "positive_int", "predictions",
           "probability", "steps", "tensor", "text"]


def _where(where: str | None, name: str) -> str:
    return f"{where}: {name}" if where else name


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, allow_inf: bool = False,
           where: str | None = None) -> float:
    """A real number (not a bool), finite unless ``allow_inf``, in ``[low, high]``
    (an open end with ``low_open`` / ``high_open``). Returns it as a float."""
    label = _where(where, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if _is_tensor(value) and value.numel() == 1:
            value = float(value)
        elif hasattr(value, "item") and getattr(value, "size", 0) == 1 and not isinstance(value, bool):
            value = value.item()
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{label} must be a real number, got {value!r}")
        else:
            raise TypeError(f"{label} must be a real number, got {type(value).__name__} "
                            f"{value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{label} must be a finite number, got {value!r}")
    _range(label, value, low, high, low_open, high_open)
    return value


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None,
            where: str | None = None) -> int:
    """An integer (Python or numpy; not a bool, not a float) in ``[low, high]``."""
    label = _where(where, name)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{label} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    _range(label, value, low, high, False, False)
    return value


def _range(label: str, value: float, low, high, low_open: bool, high_open: bool) -> None:
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        left = "(" if low_open or low is None else "["
        right = ")" if high_open or high is None else "]"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{label} must be in {left}{lo}, {hi}{right}, got {value!r}")


def probability(name: str, value: Any, *, where: str | None = None) -> float:
    """A probability in [0, 1]."""
    return number(name, value, low=0.0, high=1.0, where=where)


def choice(name: str, value: Any, options: Iterable, *, where: str | None = None):
    """One of ``options``."""
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{_where(where, name)} must be one of "
                         f"{', '.join(repr(o) for o in options)}; got {value!r}")
    return value


def array(name: str, x: Any, *, ndim: int | Iterable[int] | None = None,
          shape: tuple | None = None, finite: bool = True, nonempty: bool = True,
          low: float | None = None, high: float | None = None, numeric: bool = True,
          where: str | None = None):
    """A numpy array or torch tensor (anything numpy can read as a numeric array is
    converted to a numpy array) with the given dimensions and shape (``None`` in
    ``shape`` for any size), not empty, finite, in ``[low, high]``. Returns it."""
    label = _where(where, name)
    if not _is_tensor(x):
        import numpy as np

        if not isinstance(x, np.ndarray):
            try:
                x = np.asarray(x)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{label} must be an array, got {type(x).__name__}: {err}") from None
        if numeric and x.dtype.kind not in "biuf":
            raise TypeError(f"{label} must be a numeric array, got dtype {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{label} must have {want} dimensions, got shape "
                             f"{tuple(x.shape)}")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != t for s, t in zip(shape, x.shape)):
            want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{label} must have shape {want}, got {tuple(x.shape)}")
    size = x.numel() if _is_tensor(x) else x.size
    if nonempty and size == 0:
        raise ValueError(f"{label} must not be empty, got shape {tuple(x.shape)}")
    if size == 0:
        return x
    floating = x.is_floating_point() if _is_tensor(x) else x.dtype.kind == "f"
    if not (finite and floating) and low is None and high is None:
        return x
    # two passes (min and max; a NaN carries through both): the bad entry is looked for
    # only when there is one
    lo, hi = float(x.min()), float(x.max())
    if finite and floating and not (math.isfinite(lo) and math.isfinite(hi)):
        if _is_tensor(x):
            import torch

            i = tuple(int(k) for k in (~torch.isfinite(x)).nonzero()[0])
        else:
            import numpy as np

            i = tuple(int(k) for k in np.argwhere(~np.isfinite(x))[0])
        raise ValueError(f"{label} must be finite, got {float(x[i])} at index {i}")
    if (low is not None and lo < low) or (high is not None and hi > high):
        rng = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        raise ValueError(f"{label} must lie in {rng}, got values from {lo:g} to {hi:g}")
    return x


def labels(name: str, y: Any, *, n_classes: int = 10, length: int | None = None,
           length_of: str = "images", where: str | None = None):
    """Class indices: integers in ``[0, n_classes - 1]``, one dimension, ``length`` of
    them when given (the number of ``length_of``)."""
    label = _where(where, name)
    if _is_tensor(y):
        if y.is_floating_point() or y.dtype.is_complex:
            raise TypeError(f"{label} must be integer class indices, got dtype {y.dtype}")
    else:
        import numpy as np

        y = np.asarray(y)
        if y.dtype.kind not in "iu":
            if y.dtype.kind == "f" and y.size and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                raise TypeError(f"{label} must be integer class indices, got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{label} must have one dimension, got shape {tuple(y.shape)}")
    if length is not None and len(y) != length:
        raise ValueError(f"{label} has {len(y)} entries for {length} {length_of}; "
                         f"they must match")
    if len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{label} must be class indices in [0, {n_classes - 1}], got {bad}")
    return y


def images(name: str, x: Any, *, where: str | None = None, channels: Iterable[int] | None = None):
    """Images, batch first, as uint8 in [0, 255] or as floats in [0, 1]; returns
    ``(x, is_uint8)``. Floats above 1 are refused (uint8 values stored as floats are
    ambiguous: convert them with ``.astype(np.uint8)`` first)."""
    label = _where(where, name)
    x = array(name, x, ndim=(3, 4), where=where)
    dtype = str(x.dtype)
    is_uint8 = dtype in ("uint8", "torch.uint8")
    if not is_uint8:
        floating = x.is_floating_point() if _is_tensor(x) else x.dtype.kind == "f"
        if not floating:
            raise TypeError(f"{label} must be uint8 (0-255) or float (0-1) images, got dtype "
                            f"{dtype}")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{label} are floats from {lo:g} to {hi:g}: float images must lie in "
                             f"[0, 1] (for 0-255 values pass uint8 images)")
    if channels is not None and x.ndim == 4 and x.shape[-1] not in tuple(channels):
        raise ValueError(f"{label} must be channels-last with {tuple(channels)} channels, got "
                         f"shape {tuple(x.shape)}")
    return x, is_uint8


def _available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def fits_in_memory(what: str, n_bytes: float, *, fraction: float = 0.8,
                   where: str | None = None) -> None:
    """Refuse an allocation of ``n_bytes`` (an estimate, e.g. steps x batch x neurons x
    itemsize) that exceeds ``fraction`` of the memory available now."""
    available = _available_bytes()
    if n_bytes > fraction * available:
        raise ValueError(f"{where + ': ' if where else ''}{what} would need about "
                         f"{n_bytes / 2**30:.3g} GiB, more than the {available / 2**30:.3g} GiB "
                         f"available; use fewer steps, a smaller batch or fewer neurons")


# --- added for the public functions of encoding, neurons, plasticity, retina, metrics, readout,
# data, runs, profiles and viz ------------------------------------------------------------------

def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def tensor(name: str, x: Any, *, where: str | None = None):
    """A torch tensor (not a numpy array or a list); returns it."""
    if not _is_tensor(x):
        raise TypeError(f"{_where(where, name)} must be a torch.Tensor, got {type(x).__name__}")
    return x


def path(name: str, value: Any, *, where: str | None = None):
    """A file system path: a str or an ``os.PathLike`` (not bytes, not a number); not empty."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{_where(where, name)} must be a path (str or os.PathLike), got "
                        f"{type(value).__name__} {_short(value)}")
    if not os.fspath(value):
        raise ValueError(f"{_where(where, name)} must be a path, got an empty string")
    return value


def text(name: str, value: Any, *, nonempty: bool = True, where: str | None = None) -> str:
    """A str (not empty unless ``nonempty=False``)."""
    if not isinstance(value, str):
        raise TypeError(f"{_where(where, name)} must be a str, got {type(value).__name__} "
                        f"{_short(value)}")
    if nonempty and not value.strip():
        raise ValueError(f"{_where(where, name)} must not be empty, got {value!r}")
    return value


def steps(what: str, n_steps: float, *, max_steps: int, where: str | None = None) -> int:
    """Refuse a simulation of an absurd number of time steps (a typo such as 1e6 ms for
    1e3 ms): it would run for minutes or hours. ``what`` says where the count comes from;
    ``n_steps`` is a float (e.g. duration_ms / dt_ms, perhaps inf). Returns it rounded."""
    n = float(n_steps)
    if not n <= max_steps:  # inf and nan too
        raise ValueError(f"{where + ': ' if where else ''}{what} would need {n:.3g} time "
                         f"steps, more than the {max_steps:.3g} allowed (minutes of simulation "
                         f"or more); check the value, or use a larger dt_ms")
    return int(round(n))


def predictions(name: str, y: Any, *, n_classes: int = 10, where: str | None = None):
    """Decisions: class indices in ``[0, n_classes - 1]``, or -1 for "no decision";
    one dimension. Returns them as a numpy integer array."""
    import numpy as np

    label = _where(where, name)
    if _is_tensor(y):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.int64)  # whole numbers stored as floats (an empty array too)
        else:
            raise TypeError(f"{label} must be integer class indices (or -1), got dtype {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{label} must have one dimension, got shape {tuple(y.shape)}")
    if len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < -1 or hi >= n_classes:
            bad = lo if lo < -1 else hi
            raise ValueError(f"{label} must be class indices in [0, {n_classes - 1}] or -1 (no "
                             f"decision), got {bad}")
    return y


# --- added for the tier packages (snnlib.tiers): the phrasing their parameter classes use ----
def positive_int(name: str, value: Any, *, low: int = 1, where: str | None = None) -> int:
    """An integer ``>= low`` (Python or numpy; not a bool): "must be a positive integer"
    (``low=1``), "a non-negative integer" (``low=0``) or "an integer >= low". A number of
    another kind (a float, a bool) is a :class:`ValueError`, anything else a :class:`TypeError`."""
    label = _where(where, name)
    want = {1: "a positive integer", 0: "a non-negative integer"}.get(low, f"an integer >= {low}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        kind = ValueError if isinstance(value, numbers.Number) else TypeError
        raise kind(f"{label} must be {want}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{label} must be {want}, got {value!r}")
    return int(value)


def finite_number(name: str, value: Any, *, above: float | None = None,
                  at_least: float | None = None, at_most: float | None = None,
                  where: str | None = None) -> float:
    """A finite real number (not a bool) ``> above``, ``>= at_least``, ``<= at_most``:
    "must be a finite number > 0, got nan". Returns it as a float."""
    label = _where(where, name)
    bounds = [f"{op} {b:g}" for op, b in ((">", above), (">=", at_least), ("<=", at_most))
              if b is not None]
    want = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{label} must be {want}, got {type(value).__name__} {value!r}")
    v = float(value)
    if (not math.isfinite(v) or (above is not None and not v > above)
            or (at_least is not None and not v >= at_least)
            or (at_most is not None and not v <= at_most)):
        raise ValueError(f"{label} must be {want}, got {value!r}")
    return v


def flag(name: str, value: Any, *, where: str | None = None) -> bool:
    """True or False (numpy bools too): a number such as 1 is a :class:`ValueError`,
    anything else a :class:`TypeError`."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    kind = ValueError if isinstance(value, numbers.Number) else TypeError
    raise kind(f"{_where(where, name)} must be True or False, got {type(value).__name__} "
               f"{value!r}")


def instance(name: str, value: Any, types, *, where: str | None = None,
             none: bool = False, what: str | None = None):
    """An instance of ``types`` (a class or a tuple of them), or None with ``none``;
    else a :class:`TypeError` saying what is allowed (``what``, or the class names)."""
    if (none and value is None) or isinstance(value, types):
        return value
    names = what or " or ".join(f"a {t.__name__}"
                                for t in (types if isinstance(types, tuple) else (types,)))
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise TypeError(f"{_where(where, name)} must be {'None or ' if none else ''}{names}, got "
                    f"{type(value).__name__} {shown}")
