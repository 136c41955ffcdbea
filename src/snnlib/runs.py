"""What every run shares: atomic saves, cache keys, safe loading, provenance, the device, the record.

Every tier's ``run_tier`` writes its checkpoints, its caches and its record
through this module, so that they all behave the same way:

- **Atomic saves** (:func:`save_npz`, :func:`save_torch`, :func:`save_json`):
  the file is written under a unique temporary name in its folder, then
  renamed. A kill leaves the old file or the new one, never half of one, and
  two runs sharing a folder never write into each other's temporary file.
- **Cache keys** (:func:`cache_key`): one SHA-256 over *all* the data (every
  image and label), the parameters, the seed and a code version, so a cached
  result is reused only when nothing it depends on changed. A parameter added
  later, whose default computes what the code computed before it existed, is
  left out of the key at that default (:data:`KEY_OMITS_DEFAULT`), so that
  adding an option does not discard every cache.
- **Safe loading** (:func:`load_npz`, :func:`load_torch`): ``np.load`` with
  ``allow_pickle=False`` and ``torch.load`` with ``weights_only=True``, so a
  crafted file cannot execute code. A truncated, corrupt or foreign file
  raises :class:`CheckpointError`, which names the file and says what to do;
  a cache that is unreadable is set aside (:func:`cached_npz`) and recomputed,
  and the run says so.
- **Provenance** (:func:`provenance`): commit, date, machine, device and the
  versions of Python, numpy, torch and Brian2.
- **The device** (:func:`get_device`, :func:`autocast`): ``"cpu"`` (default)
  or ``"cuda"``, from an argument or ``$SNNLIB_DEVICE``.
- **The record** (:class:`TierRecord`, :func:`load_record`): one format for
  every tier: accuracy, baselines, per-class accuracy, confusion, firing,
  synaptic events per image, wall times by phase, images/s, device and
  provenance, plus a tier-specific part. Records written by an older snnlib
  are migrated when they are loaded (:func:`migrate_record`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import pickle
import platform
import re
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import _validate as check

__all__ = ["CPU_FLAGS", "CheckpointError", "DEVICE_ENV", "KEY_OMITS_DEFAULT", "RECORD_FORMAT",
           "RecordError", "Speed", "SynapticEvents", "TierRecord", "Variant", "atomic_write",
           "autocast", "cache_key", "cached_npz", "cpu_description", "get_device", "git_commit",
           "legacy_view", "load_npz", "load_record", "load_torch", "migrate_record",
           "provenance", "record_from_dict", "save_json", "save_npz", "save_record",
           "save_torch", "set_aside", "stored_benchmark_runs"]

DEVICE_ENV = "SNNLIB_DEVICE"
RECORD_FORMAT = 2
"""Version of :class:`TierRecord`'s JSON layout; records without one are older (migrated)."""


_UMASK = os.umask(0o022)
os.umask(_UMASK)


class CheckpointError(ValueError):
    """A checkpoint, cache or record that cannot be used; the message names the file and the remedy."""


class RecordError(ValueError):
    """A results record that is missing, unreadable or incomplete; the message says how to make it."""


# --- atomic saves -----------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp)`` on a unique temporary file beside ``path``, then rename it to ``path``.

    The temporary name is unique (``tempfile.mkstemp``), so runs that share a
    folder do not overwrite each other's half-written files; the rename is
    atomic on one file system, so a reader sees the old file or the new one.
    """
    check.path("path", path, where="runs.atomic_write")
    if not callable(write):
        raise TypeError(f"runs.atomic_write: write must be a function of the temporary path, got "
                        f"{type(write).__name__}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"runs.atomic_write: path {os.fspath(path)!r} is a directory; give the "
                         "name of the file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes it private; a saved file is not
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def save_npz(path: str | os.PathLike, **arrays) -> Path:
    """``np.savez`` atomically (:func:`atomic_write`); arrays only, so it loads without pickle.

    Object arrays (which would need pickle, and :func:`load_npz` refuses) are refused here.
    """
    check.path("path", path, where="runs.save_npz")
    for name, value in arrays.items():
        try:
            kind = np.asanyarray(value).dtype
        except (TypeError, ValueError) as err:  # ragged lists
            raise TypeError(f"runs.save_npz: arrays[{name!r}] is not an array ({err})") from None
        if kind == object:
            raise TypeError(f"runs.save_npz: arrays[{name!r}] has dtype object (ragged lists, "
                            "None, Python objects), which would need pickle to load; save "
                            "numeric or string arrays")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: savez adds no ".npz" to the name
            np.savez(f, **arrays)

    return atomic_write(path, write)


def save_torch(path: str | os.PathLike, obj) -> Path:
    """``torch.save`` atomically; ``obj`` should hold only tensors and plain Python values
    (dicts, lists, numbers, strings), so that :func:`load_torch` can read it with ``weights_only``."""
    import torch

    check.path("path", path, where="runs.save_torch")
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(path: str | os.PathLike, obj) -> Path:
    """JSON (indented, a final newline) written atomically.

    NaN and infinite numbers are refused (JSON has none; ``finite_or_none`` turns
    them into None): the message names where in ``obj`` the first one is.
    """
    check.path("path", path, where="runs.save_json")
    try:
        text = json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    except TypeError as err:
        raise TypeError(f"runs.save_json: obj holds a value JSON cannot store ({err}); {path} "
                        "was not written") from None
    except ValueError:
        where = next((k for k, v in _json_leaves(obj) if isinstance(v, (float, np.floating))
                      and not math.isfinite(v)), "?")
        raise ValueError(f"runs.save_json: obj holds a non-finite number at {where!r}, which JSON "
                         f"cannot store (use None, e.g. runs.finite_or_none); {path} was not "
                         "written") from None
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _json_leaves(value, prefix: str = ""):
    """``(path, leaf)`` of nested dicts, lists, tuples and arrays (for error messages)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _json_leaves(v, f"{prefix}/{k}" if prefix else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _json_leaves(v, f"{prefix}[{i}]")
    elif isinstance(value, np.ndarray):
        yield from _json_leaves(value.tolist(), prefix)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield from _json_leaves(dataclasses.asdict(value), prefix)
    else:
        yield prefix, value


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --- cache keys -------------------------------------------------------------------------------
_OMIT_DEFAULT = "snnlib.runs.key_omits_default"
KEY_OMITS_DEFAULT = {_OMIT_DEFAULT: True}
"""Metadata of a dataclass field that :func:`cache_key` leaves out while it holds its default.

For a parameter added after results were cached, whose default reproduces the computation
of before (``field(default=False, metadata=runs.KEY_OMITS_DEFAULT)``): at its default the
parameters hash as they did before the field existed, so those caches stay valid; any other
value changes the key. Only the fields of a dataclass passed to :func:`cache_key` itself are
left out, not those of a dataclass nested in its fields (hashed as plain dicts), and only
fields with a plain default (not a ``default_factory``).
"""


def cache_key(*parts, version: int | str) -> str:
    """SHA-256 (first 32 hex digits) of everything a cached result depends on.

    ``parts`` may be numbers, strings, None, numpy arrays, torch tensors (every
    element is hashed, with its dtype and shape), PyTorch modules (their
    ``state_dict``), dataclass instances (their fields, less those marked with
    :data:`KEY_OMITS_DEFAULT` that hold their default), and dicts, lists or
    tuples of these. ``version`` is the code version of whatever computed the
    result: raise it when the computation changes, and every cache made
    before is recomputed.
    """
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise TypeError(f"runs.cache_key: version must be an int or a str, got "
                        f"{type(version).__name__} {version!r}")
    h = hashlib.sha256(f"version={version!r}".encode())
    for part in parts:
        _feed(h, part)
    return h.hexdigest()[:32]


def _feed(h, value) -> None:
    if value is None or isinstance(value, (bool, int, float, str, np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, bytes):
        h.update(b"bytes:" + value + b";")
    elif isinstance(value, np.ndarray):
        a = np.ascontiguousarray(value)
        h.update(f"ndarray:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dataclass:{type(value).__name__};".encode())
        fields = dataclasses.asdict(value)
        for f in dataclasses.fields(value):
            if (f.metadata.get(_OMIT_DEFAULT) and f.default is not dataclasses.MISSING
                    and type(fields[f.name]) is type(f.default) and fields[f.name] == f.default):
                del fields[f.name]
        _feed(h, fields)
    elif isinstance(value, dict):
        h.update(f"dict:{len(value)};".encode())
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}:{len(value)};".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, Path):
        _feed(h, str(value))
    else:
        import torch

        if isinstance(value, torch.nn.Module):
            _feed(h, dict(value.state_dict()))
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"tensor:{t.dtype}:{tuple(t.shape)};".encode())
            if t.dtype == torch.bfloat16:
                t = t.view(torch.int16)
            h.update(t.numpy().tobytes())
        else:
            raise TypeError(f"cache_key cannot hash a {type(value).__name__}; pass arrays, "
                            "numbers, strings, dataclasses or containers of them.")


# --- safe loading -----------------------------------------------------------------------------
def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path``, read without pickle.

    Raises :class:`CheckpointError` naming the file when it is truncated,
    corrupt or holds pickled objects.
    """
    path = Path(check.path("path", path, where="runs.load_npz"))
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a .npz file; give the file's path.")
    try:
        saved = np.load(path, allow_pickle=False)
        if not isinstance(saved, np.lib.npyio.NpzFile):  # a .npy file: one array, no names
            raise CheckpointError(f"{path} holds a single array ({type(saved).__name__}), not an "
                                  ".npz archive of named arrays; delete it and run again: it will "
                                  "be recomputed.")
        with saved:
            return {k: saved[k] for k in saved.files}
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise CheckpointError(
                f"{path} holds pickled Python objects, which snnlib never writes; it was not "
                "loaded (it may be from another program or crafted). Delete it and run again."
            ) from None
        raise CheckpointError(f"{path} is corrupt ({err}); delete it and run again: it will be "
                              "recomputed.") from None
    except (MemoryError, PermissionError):  # not the file's fault: never "corrupt, delete it"
        raise
    except Exception as err:  # OSError, EOFError, BadZipFile...: whatever the bytes make np.load do
        raise CheckpointError(f"{path} is truncated or corrupt ({type(err).__name__}: {err}); "
                              "delete it and run again: it will be recomputed.") from None


def load_torch(path: str | os.PathLike) -> dict:
    """A checkpoint written by :func:`save_torch`, read with ``torch.load(weights_only=True)``.

    Only tensors and plain Python values are accepted: a file that asks to
    build any other object (a crafted pickle, or a checkpoint of an older
    snnlib that stored parameter objects) is refused before anything in it
    runs. Raises :class:`CheckpointError` naming the file for that, and for a
    truncated or corrupt file.
    """
    import torch

    path = Path(check.path("path", path, where="runs.load_torch"))
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file; give the file's "
                              "path.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        what = f"'{found.group(1)}'" if found else "objects"
        raise CheckpointError(
            f"{path} was refused: it asks to build Python {what}, which snnlib's checkpoints "
            "never hold. It may come from an older snnlib or have been crafted; nothing in it "
            "was run. Delete it (or move it away) and run again to recompute it.") from None
    except (MemoryError, PermissionError):  # not the file's fault: never "corrupt, delete it"
        raise
    except Exception as err:  # RuntimeError, EOFError, BadZipFile, IndexError...: corrupt bytes
        first = str(err).split(". ")[0].strip()[:120]
        raise CheckpointError(f"{path} is truncated or corrupt ({type(err).__name__}: {first}); "
                              "delete it and run again: it will be recomputed.") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an snnlib checkpoint (it holds a "
                              f"{type(state).__name__}, not a dict); delete it and run again.")
    return state


def set_aside(path: str | os.PathLike, reason: str) -> Path:
    """Rename ``path`` to ``NAME.stale`` (``.stale1``, ... if taken), print why, return the new path."""
    path = Path(check.path("path", path, where="runs.set_aside"))
    check.text("reason", reason, nonempty=False, where="runs.set_aside")
    target, k = path.with_name(path.name + ".stale"), 0
    while target.exists():
        k += 1
        target = path.with_name(f"{path.name}.stale{k}")
    os.replace(path, target)
    print(f"{path}: {reason}; set aside as {target.name}, recomputing.")
    return target


def cached_npz(path: str | os.PathLike, key: str) -> dict[str, np.ndarray] | None:
    """The arrays cached at ``path`` if its ``key`` matches, else None (recompute).

    A file that cannot be read (truncated, corrupt, pickled) is set aside
    (:func:`set_aside`) and None is returned, so the caller recomputes it.
    """
    path = Path(check.path("path", path, where="runs.cached_npz"))
    check.text("key", key, where="runs.cached_npz")
    if not path.exists():
        return None
    try:
        saved = load_npz(path)
    except CheckpointError as err:
        set_aside(path, str(err).split(";")[0].removeprefix(f"{path} ").removeprefix("is "))
        return None
    return saved if "key" in saved and str(saved["key"]) == key else None


# --- provenance and device --------------------------------------------------------------------
def git_commit() -> str | None:
    """The checked-out commit (read when a run starts: the code it runs), or None."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=False, cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:
        return None


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


#: The vector extensions that set PyTorch's speed on a CPU, as ``/proc/cpuinfo`` names them:
#: x86-64's (its ``flags``) and ARM's (its ``Features``).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8",
             "asimd", "sve", "sve2", "bf16", "i8mm")


def cpu_description(cpuinfo: str | None = None) -> dict:
    """The processor, as Linux's ``/proc/cpuinfo`` describes its first core.

    Returns ``{"model": ..., "family": ..., "model_number": ..., "flags": [...]}``:
    the model name, the family and model as the file writes them (text; on
    x86-64 they tell processors of one model name apart: "AMD EPYC" with
    family 25 and model 17 is a Zen 4; None where the file has no such line),
    and which of :data:`CPU_FLAGS` it has (from ``flags``, or ARM's
    ``Features``). Two machines of one kind can differ in speed by a factor of
    two or more for the same network (AMX multiplies bfloat16 matrices that
    AVX-512 does in several instructions), so a timing is read beside this.
    ``cpuinfo`` is the file's text (read when None); where there is no such
    file, only ``model`` is filled, from :func:`platform.processor`.
    """
    if cpuinfo is not None:
        check.text("cpuinfo", cpuinfo, nonempty=False, where="runs.cpu_description")
    else:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break  # the first core's block is enough: the others repeat it
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {"model": fields.get("model name") or platform.processor() or platform.machine(),
            "family": fields.get("cpu family"), "model_number": fields.get("model"),
            "flags": [f for f in CPU_FLAGS if f in flags]}


def provenance(device: str = "cpu", *, commit: str | None = None) -> dict:
    """Where and with what a record was made: commit, date, machine, device, versions.

    The machine's ``cpu`` is :func:`cpu_description`; a CPU device is named by
    its model name.

    ``commit`` defaults to :func:`git_commit` now; a run passes the commit it
    read when it started.
    """
    check.text("device", device, where="runs.provenance")
    if commit is not None:
        check.text("commit", commit, nonempty=False, where="runs.provenance")
    machine = {"cores": os.cpu_count(), "platform": platform.platform(),
               "processor": platform.processor() or platform.machine(),
               "cpu": cpu_description()}
    dev = {"type": device.split(":")[0], "name": machine["cpu"]["model"]}
    if dev["type"] == "cuda":
        import torch

        dev["name"] = torch.cuda.get_device_name(torch.device(device))
    elif "torch" in sys.modules:
        machine["torch_threads"] = sys.modules["torch"].get_num_threads()
    return {"git_commit": commit if commit is not None else git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "device": dev,
            "versions": {"python": platform.python_version(),
                         **{p: _version(p) for p in ("snnlib", "numpy", "torch", "brian2")}}}


def get_device(name: str | None = None) -> str:
    """The device a PyTorch tier runs on: ``name``, else ``$SNNLIB_DEVICE``, else ``"cpu"``.

    Accepts ``"cpu"``, ``"cuda"`` and ``"cuda:N"``. Raises ``ValueError``
    naming where the value came from when it is neither, or when CUDA is
    asked for and PyTorch sees no GPU.
    """
    source = "argument device"
    if name is None:
        name = os.environ.get(DEVICE_ENV, "").strip() or "cpu"
        source = f"${DEVICE_ENV}"
    if not isinstance(name, str):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda', got {name!r}.")
    key = name.strip().lower()
    kind, _, index = key.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"{source} is {name!r}; use 'cpu', 'cuda' or 'cuda:N'.")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError(f"{source} is {name!r}, but PyTorch sees no CUDA GPU here; "
                             "use 'cpu'.")
        if index and int(index) >= torch.cuda.device_count():
            raise ValueError(f"{source} is {name!r}, but there are only "
                             f"{torch.cuda.device_count()} CUDA device(s).")
    return key


def autocast(device: str, enabled: bool):
    """``torch.autocast`` to bfloat16 for ``device``'s type (a no-op context when not ``enabled``)."""
    import torch

    check.text("device", device, where="runs.autocast")
    check.choice("device", device.split(":")[0], ("cpu", "cuda"), where="runs.autocast")
    check.flag("enabled", enabled, where="runs.autocast")
    return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                          enabled=enabled)


# --- the record -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynapticEvents:
    """Synaptic events per image: ``accumulates`` (a spike crossing a synapse adds a weight)
    and ``multiply_accumulates`` (a non-spiking input times a weight); ``what`` says what was counted."""

    accumulates: float
    multiply_accumulates: float = 0.0
    what: str = ""

    def __post_init__(self) -> None:
        check.number("accumulates", self.accumulates, low=0, where="runs.SynapticEvents")
        check.number("multiply_accumulates", self.multiply_accumulates, low=0,
                     where="runs.SynapticEvents")
        check.text("what", self.what, nonempty=False, where="runs.SynapticEvents")


@dataclass(frozen=True)
class Speed:
    """``images_per_s`` (or None when not measured) and ``what`` was timed."""

    images_per_s: float | None
    what: str = ""

    def __post_init__(self) -> None:
        if self.images_per_s is not None:
            check.number("images_per_s", self.images_per_s, low=0, where="runs.Speed")
        check.text("what", self.what, nonempty=False, where="runs.Speed")


@dataclass(frozen=True)
class Variant:
    """Another network the tier's run measured on the same test images (e.g. a fine-tuned copy)."""

    accuracy: float
    time_steps: int | None
    synaptic_events: SynapticEvents
    inference: Speed
    what: str = ""

    def __post_init__(self) -> None:
        where = "runs.Variant"
        check.probability("accuracy", self.accuracy, where=where)
        if self.time_steps is not None:
            check.integer("time_steps", self.time_steps, low=0, where=where)
        check.instance("synaptic_events", self.synaptic_events, SynapticEvents, where=where)
        check.instance("inference", self.inference, Speed, where=where)
        check.text("what", self.what, nonempty=False, where=where)


@dataclass(frozen=True)
class TierRecord:
    """The one record every tier writes (``tier_record.json``, ``results/TIER.json``).

    Attributes
    ----------
    tier, profile, dataset : str
        The tier's registry name, the profile it ran at, the data (``"CIFAR-10
        (JPEG copy)"`` when measured on the offline copy).
    seed, train_images, test_images : int
    class_names : list of str
    accuracy : float
        The tier's headline test accuracy (a fraction).
    baselines : dict
        Name to test accuracy of every baseline measured in the same run.
    per_class_accuracy : list of float
    confusion : list of list of int
        Rows: true class, columns: decision.
    firing : dict
        Per spiking layer: ``neurons`` (per image) and ``spikes_per_image`` at
        least; ``rate_hz`` or ``rate_per_step`` where the tier has them.
    synaptic_events : SynapticEvents
        Per test image, of the network that gave ``accuracy``.
    time_steps : int
        Simulated steps per image at ``accuracy``; ``dt_ms`` their length (None
        when the steps are not in time units, as for a converted network).
    wall_s : dict
        Phase name to wall time in seconds (None: loaded from a checkpoint
        that carries no time).
    training_wall_s : float or None
        Wall time of what it takes to make the tier's network from its
        training images (learning, and the readout's fit); None when a part
        of it was loaded from a checkpoint that carries no time.
    training, inference : Speed
        Images (or patches) per second while learning, and with learning off.
    device : str
        ``"cpu"`` or ``"cuda"`` (what the run's computations ran on).
    provenance : dict
        :func:`provenance`: commit, date, machine, device, versions.
    parameters : dict
        The tier's parameters.
    variants : dict
        Name to :class:`Variant`.
    specific : dict
        Everything else the tier measured, in its own shape.
    """

    tier: str
    profile: str
    dataset: str
    seed: int
    train_images: int
    test_images: int
    class_names: list
    accuracy: float
    baselines: dict
    per_class_accuracy: list
    confusion: list
    firing: dict
    synaptic_events: SynapticEvents
    time_steps: int
    dt_ms: float | None
    wall_s: dict
    training_wall_s: float | None
    training: Speed
    inference: Speed
    device: str
    provenance: dict
    parameters: dict
    variants: dict = field(default_factory=dict)
    specific: dict = field(default_factory=dict)
    format: int = RECORD_FORMAT

    def __post_init__(self) -> None:
        self._check("TierRecord")

    @property
    def spikes_per_neuron_per_image(self) -> float:
        """All spiking layers' spikes per image over their neurons."""
        neurons = sum(layer["neurons"] for layer in self.firing.values())
        spikes = sum(layer["spikes_per_image"] for layer in self.firing.values())
        return spikes / neurons if neurons else float("nan")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "record") -> "TierRecord":
        """Build from :meth:`to_dict`'s shape, checking every field; :class:`RecordError` names
        ``source`` and the field that is wrong."""
        if not isinstance(d, dict):
            raise RecordError(f"{source}: a record is a JSON object, got {type(d).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(d))
        if missing:
            raise RecordError(f"{source} lacks {', '.join(missing)}; {_remedy(d.get('tier'))}")
        unknown = sorted(set(d) - names)
        if unknown:
            raise RecordError(f"{source} has fields this snnlib does not know ({', '.join(unknown)}); "
                              "it may come from a newer snnlib.")
        try:
            values = dict(d)
            values["synaptic_events"] = SynapticEvents(**d["synaptic_events"])
            values["training"] = Speed(**d["training"])
            values["inference"] = Speed(**d["inference"])
            values["variants"] = {
                k: Variant(**{**v, "synaptic_events": SynapticEvents(**v["synaptic_events"]),
                              "inference": Speed(**v["inference"])})
                for k, v in d.get("variants", {}).items()}
            record = cls(**values)
        except RecordError as err:
            raise RecordError(f"{source}: {str(err).removeprefix('TierRecord: ')}") from None
        except (TypeError, KeyError, ValueError, AttributeError) as err:
            raise RecordError(f"{source}: {err}; {_remedy(d.get('tier'))}") from None
        return record

    def _check(self, source: str) -> None:
        def bad(what: str) -> RecordError:
            return RecordError(f"{source}: {what}; {_remedy(self.tier)}")

        if self.format != RECORD_FORMAT:
            raise bad(f"format {self.format!r}, this snnlib reads format {RECORD_FORMAT}")
        for name in ("tier", "profile", "dataset", "device"):
            if not isinstance(getattr(self, name), str):
                raise bad(f"{name} must be a str, got {getattr(self, name)!r}")
        from .tiers import TIERS

        if self.tier not in TIERS:
            raise bad(f"unknown tier {self.tier!r} (known: {', '.join(TIERS)})")
        for name in ("seed", "train_images", "test_images"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad(f"{name} must be an integer >= 0, got {value!r}")
        for name, kind in (("synaptic_events", SynapticEvents), ("training", Speed),
                           ("inference", Speed)):
            if not isinstance(getattr(self, name), kind):
                raise bad(f"{name} must be a {kind.__name__}, got {getattr(self, name)!r}")
        for name in ("class_names", "per_class_accuracy", "confusion"):
            if not isinstance(getattr(self, name), (list, tuple)):
                raise bad(f"{name} must be a list, got {type(getattr(self, name)).__name__}")
        for name in ("baselines", "firing", "wall_s", "provenance", "parameters", "variants",
                     "specific"):
            if not isinstance(getattr(self, name), dict):
                raise bad(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        for name in ("accuracy", *(f"baselines[{k!r}]" for k in self.baselines)):
            value = self.accuracy if name == "accuracy" else self.baselines[name[11:-2]]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                raise bad(f"{name} must be a fraction in [0, 1], got {value!r}")
        n = len(self.class_names)
        if len(self.per_class_accuracy) != n or len(self.confusion) != n or any(
                len(row) != n for row in self.confusion):
            raise bad(f"per_class_accuracy and confusion must cover the {n} classes")
        for k, value in enumerate(self.per_class_accuracy):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                raise bad(f"per_class_accuracy[{k}] must be a fraction in [0, 1], got {value!r}")
        for layer, stats in self.firing.items():
            if not isinstance(stats, dict) or not {"neurons", "spikes_per_image"} <= set(stats):
                raise bad(f"firing[{layer!r}] needs 'neurons' and 'spikes_per_image'")


def _remedy(tier) -> str:
    name = tier if isinstance(tier, str) else "TIER"
    return f"make it again with `python -m snnlib run {name}` (with the record's --profile)."


def _get(d: dict, path: str):
    for key in path.split("/"):
        d = d[key]
    return d


def _pop(d: dict, path: str):
    *parents, last = path.split("/")
    for key in parents:
        d = d[key]
    return d.pop(last)


def _put(d: dict, path: str, value) -> None:
    *parents, last = path.split("/")
    for key in parents:
        d = d.setdefault(key, {})
    d[last] = value


def _has(d: dict, path: str) -> bool:
    try:
        _get(d, path)
    except (KeyError, TypeError):
        return False
    return True


def record_from_dict(d: dict, moves: Sequence[tuple[str, str]], **derived) -> TierRecord:
    """A :class:`TierRecord` from a tier's measurements ``d`` (one nested dict).

    ``moves`` are ``(path in d, path in the record)`` pairs, ``/``-separated:
    each value is taken out of ``d`` and put at its place in the record (a
    path absent from ``d`` is skipped). What is left of ``d`` becomes the
    record's ``specific`` part. ``derived`` gives the fields computed from
    ``d`` (firing, synaptic events, ...; ``provenance=None`` for a record
    that kept none of its own). :func:`legacy_view` puts the moved
    values back, so no measurement is lost or changed on the way.
    """
    check.instance("d", d, dict, where="runs.record_from_dict")
    _check_moves(moves, "runs.record_from_dict")
    if derived.get("provenance") is None:  # an old record: where it ran is all that is known
        derived["provenance"] = {"device": {"type": derived["device"], "name": None}}
    rest = copy.deepcopy(d)
    out: dict[str, Any] = {}
    for source, target in moves:
        if _has(rest, source):
            _put(out, target, _pop(rest, source))
    for key, value in derived.items():  # a derived dict is completed by what was moved into it
        out[key] = ({**value, **out[key]} if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    out["specific"] = rest
    out.setdefault("variants", {})
    return TierRecord.from_dict(_plain(out), source=f"the {d.get('tier', '?')} record")


def _check_moves(moves, where: str) -> None:
    """``(source path, target path)`` pairs of str."""
    if isinstance(moves, (str, bytes)) or not isinstance(moves, (list, tuple)):
        raise TypeError(f"{where}: moves must be a list of (source, target) path pairs, got "
                        f"{type(moves).__name__}")
    for pair in moves:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(p, str) and p for p in pair)):
            raise ValueError(f"{where}: moves must hold (source, target) pairs of '/'-separated "
                             f"paths, got {pair!r}")


def legacy_view(record: TierRecord, moves: Sequence[tuple[str, str]]) -> dict:
    """The tier's measurements as one nested dict again: ``specific`` with the moved values put back."""
    check.instance("record", record, TierRecord, where="runs.legacy_view")
    _check_moves(moves, "runs.legacy_view")
    full = record.to_dict()
    out = copy.deepcopy(record.specific)
    for source, target in moves:
        if _has(full, target):
            _put(out, source, copy.deepcopy(_get(full, target)))
    return out


def _plain(value):
    """Dataclasses as dicts, recursively (so that from_dict sees one shape)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_record(record: TierRecord, path: str | os.PathLike) -> Path:
    """Write ``record`` as JSON, atomically (checked first: a bad record is never written)."""
    check.instance("record", record, TierRecord, where="runs.save_record")
    check.path("path", path, where="runs.save_record")
    record._check("runs.save_record: record")
    return save_json(path, record.to_dict())


def load_record(path: str | os.PathLike, *, tier: str | None = None) -> TierRecord:
    """Read a record; one written by an older snnlib is migrated (:func:`migrate_record`).

    ``tier`` checks that the record is that tier's. Raises :class:`RecordError`
    naming the file and the command that makes it when the file is missing,
    unreadable, of an unknown format or of another tier.
    """
    path = Path(check.path("path", path, where="runs.load_record"))
    if tier is not None:
        check.text("tier", tier, where="runs.load_record")
    if not path.exists():
        raise RecordError(f"{path} does not exist; {_remedy(tier)}")
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"{path} is not readable JSON ({err}); {_remedy(tier)}") from None
    if not isinstance(d, dict):
        raise RecordError(f"{path} is not a record (a JSON {type(d).__name__}); {_remedy(tier)}")
    record = (TierRecord.from_dict(d, source=str(path)) if "format" in d
              else migrate_record(d, source=str(path)))
    if tier is not None and record.tier != tier:
        raise RecordError(f"{path} is tier {record.tier!r}'s record, not {tier!r}'s.")
    return record


def migrate_record(old: dict, *, source: str = "record") -> TierRecord:
    """A record written before :data:`RECORD_FORMAT` 2 (each tier its own shape), in the one format.

    Each tier's ``record`` module says where its old fields go
    (``MOVES``) and how the common fields are derived (``to_record``); the
    provenance of such a record says ``device: cpu`` (every old run ran on
    the CPU) and has no versions (they were not recorded).
    """
    from .tiers import TIERS

    check.instance("old", old, dict, where="runs.migrate_record")
    tier = old.get("tier")
    if tier not in TIERS:
        raise RecordError(f"{source}: unknown tier {tier!r} (known: {', '.join(TIERS)}).")
    try:
        return TIERS[tier].record_module().to_record(old, device="cpu")
    except RecordError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        what = f"it lacks {err}" if isinstance(err, KeyError) else str(err)
        raise RecordError(f"{source}: an old-format record of tier {tier!r} that this snnlib "
                          f"cannot read ({type(err).__name__}: {what}); "
                          f"{_remedy(tier)}") from None


def common_moves() -> list[tuple[str, str]]:
    """The fields every tier's measurements hold at the top, and where they go in the record."""
    return [(k, k) for k in ("tier", "profile", "dataset", "seed", "test_images", "class_names",
                             "parameters", "wall_s")] + [
        ("git_commit", "provenance/git_commit"), ("date", "provenance/date"),
        ("machine", "provenance/machine")]


def total_or_none(*times) -> float | None:
    """The sum of phase wall times, or None when one is unknown (None, or 0: not timed)."""
    return None if any(not t for t in times) else float(sum(times))


def finite_or_none(value) -> float | None:
    """``float(value)``, or None for None and NaN (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def iter_leaves(d, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``(path, value)`` for every leaf of nested dicts (lists are leaves)."""
    if isinstance(d, dict) and d:
        for k, v in d.items():
            yield from iter_leaves(v, f"{prefix}/{k}" if prefix else str(k))
    else:
        yield prefix, d


def stored_benchmark_runs(path, where: str, script: str, keys: Sequence[str]) -> list[dict]:
    """The JSON list of runs that ``benchmarks/<script> --append path`` stored, each with
    ``keys``; errors name ``where``, and a missing file says which script writes it."""
    check.instance("where", where, str, where="runs.stored_benchmark_runs")
    check.instance("script", script, str, where=where)
    if isinstance(keys, str) or not isinstance(keys, (list, tuple)) or not all(
            isinstance(k, str) for k in keys):
        raise TypeError(f"{where}: keys must be a list or tuple of strings, got {keys!r}")
    check.instance("path", path, (str, os.PathLike), where=where)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{where}: {path} not found; benchmarks/{script} "
                                f"--append {path} --name NAME writes it")
    if not path.is_file():
        raise ValueError(f"{where}: path {str(path)!r} is not a file; give the JSON list that "
                         f"benchmarks/{script} --append writes")
    try:
        found = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{where}: {path} is not JSON ({error}); benchmarks/{script} --append "
                         "writes a JSON list") from None
    if not isinstance(found, list) or not all(isinstance(r, dict) and all(k in r for k in keys)
                                              for r in found):
        raise ValueError(f"{where}: {path} must be a list of benchmarks/{script} runs "
                         f"(each with {', '.join(keys)})")
    return found
