"""One module per network tier (brian_stdp, dog_lif, conversion), each with
the same verbs: ``fit``, ``predict``, ``evaluate``; and what their runs share."""

from __future__ import annotations


def git_commit() -> str | None:
    """The checked-out commit (read when a run starts: the code it runs), or None."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=False).stdout.strip() or None
    except OSError:
        return None
