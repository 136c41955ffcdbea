"""``--set NAME=VALUE`` for the tuning scripts: values typed as the parameter dataclass's fields."""

from __future__ import annotations

import dataclasses


def field_value(text: str, current):
    """``text`` read as the type of a field whose default is ``current``: ``true``/``false`` for
    flags, comma-separated integers for tuples, the text itself for strings, ``none`` for None,
    else an integer or a float as the default is (an integer where the default is None and ``text`` is one)."""
    low = text.lower()
    if isinstance(current, bool):
        if low not in ("true", "false"):
            raise ValueError(f"expected true or false, got {text!r}")
        return low == "true"
    if isinstance(current, tuple):
        return tuple(int(v) for v in text.split(",") if v)
    if isinstance(current, str):
        return text
    if low == "none":
        return None
    if isinstance(current, int) or (current is None and text.lstrip("-").isdigit()):
        return int(text)
    return float(text)


def parse_sets(pairs: list[str], *classes) -> list[dict]:
    """``["epochs=10", "global_pool=true"]`` to typed keyword arguments, one dict per dataclass
    in ``classes`` (a name goes to the first that has such a field). A ``ValueError`` names the
    pair that is not ``NAME=VALUE`` with a known NAME and a value of its type."""
    out: list[dict] = [{} for _ in classes]
    for pair in pairs:
        name, _, text = pair.partition("=")
        k = next((k for k, c in enumerate(classes)
                  if name in {f.name for f in dataclasses.fields(c)}), None)
        if k is None or not text:
            known = sorted({f.name for c in classes for f in dataclasses.fields(c)})
            raise ValueError(f"--set wants NAME=VALUE with NAME one of {known}; got {pair!r}")
        try:
            out[k][name] = field_value(text, getattr(classes[k](), name))
        except ValueError as error:
            raise ValueError(f"--set {pair!r}: {error}") from None
    return out
