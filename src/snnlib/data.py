"""CIFAR-10: find, download, read, validate, grayscale and subsample.

The book reads the official "CIFAR-10 python version" layout
(Krizhevsky, 2009)::

    <root>/cifar-10-batches-py/
        data_batch_1 ... data_batch_5   training batches, 10000 images each
        test_batch                      test batch, 10000 images
        batches.meta                    the ten class names

Each batch is a pickled dict with ``data`` (a 10000 x 3072 uint8 array: the
red, then green, then blue 32 x 32 planes, row-major) and ``labels`` (10000
integers in 0..9). Files pickled by Python 2 (bytes keys) and by Python 3
(str keys) are both read.

Where the data is looked for, in order:

1. the ``root`` argument of :func:`load_cifar10`;
2. the environment variable ``SNNLIB_DATA_DIR`` (:data:`DATA_DIR_ENV`);
3. ``~/.cache/snnlib`` (:data:`DEFAULT_DATA_DIR`).

``root`` may be the directory that holds ``cifar-10-batches-py/`` or that
folder itself. A local directory is validated by its *content* (shapes,
dtype, label range, all files present), so re-encoded copies with other
checksums are accepted; a download is validated by the official archive's
MD5 sum before anything is unpacked into place.

Note that the batches are Python pickles: only read files you trust.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from . import _validate as check

__all__ = [
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "CLASS_NAMES",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "CIFARDataError",
    "Dataset",
    "balanced_subset",
    "validation_split",
    "dataset_name",
    "default_data_dir",
    "download_cifar10",
    "find_cifar10",
    "load_cifar10",
    "to_grayscale",
]

DATA_DIR_ENV = "SNNLIB_DATA_DIR"
"""Environment variable naming the directory that holds ``cifar-10-batches-py/``."""

DEFAULT_DATA_DIR = Path("~/.cache/snnlib")
"""Where the data lives when neither an argument nor the variable says otherwise."""

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
ROWS_PER_BATCH = 10000
PIXELS = 3 * 32 * 32
CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

# ITU-R BT.601 luma weights (the ones PIL's "L" mode and torchvision use).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class CIFARDataError(RuntimeError):
    """CIFAR-10 is missing, incomplete, corrupted, or could not be downloaded."""


@dataclass(frozen=True)
class Dataset:
    """One split of CIFAR-10.

    Attributes
    ----------
    images : numpy.ndarray
        ``(N, 32, 32, 3)`` uint8, RGB, height then width.
    labels : numpy.ndarray
        ``(N,)`` int64 class indices in 0..9.
    class_names : tuple of str
        The ten names, indexed by label.
    source : str
        Where the data was read from (for results records).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        where = "data.Dataset"
        check.instance("images", self.images, np.ndarray, where=where)
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"{where}: images must be (N, H, W, 3) RGB, channels last, got shape "
                             f"{self.images.shape}")
        if self.images.dtype != np.uint8:
            raise TypeError(f"{where}: images must be uint8 (0-255), got dtype {self.images.dtype}")
        check.labels("labels", self.labels, length=len(self.images), where=where)
        names = self.class_names
        if isinstance(names, str) or not hasattr(names, "__len__") or len(names) != 10 \
                or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{where}: class_names must be the 10 class names (str), got "
                             f"{names!r}")
        check.text("source", self.source, nonempty=False, where=where)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices) -> "Dataset":
        """The images and labels at ``indices`` (e.g. from :func:`balanced_subset`): integers
        in ``[-N, N)`` or a boolean mask of length N."""
        where = "data.Dataset.subset"
        indices = np.asarray(indices)
        n = len(self.labels)
        if indices.dtype == bool:
            if indices.shape != (n,):
                raise ValueError(f"{where}: a boolean mask of indices must have shape ({n},), got "
                                 f"{indices.shape}")
        elif indices.dtype.kind not in "iu" and indices.size:
            raise TypeError(f"{where}: indices must be integers (or a boolean mask), got dtype "
                            f"{indices.dtype}")
        elif indices.ndim != 1:
            raise ValueError(f"{where}: indices must have one dimension, got shape "
                             f"{indices.shape}")
        elif indices.size and (indices.min() < -n or indices.max() >= n):
            bad = indices.min() if indices.min() < -n else indices.max()
            raise ValueError(f"{where}: indices must be in [-{n}, {n - 1}] for {n} images, got "
                             f"{int(bad)}")
        if indices.dtype.kind == "f":  # empty float array: no image
            indices = indices.astype(np.int64)
        return Dataset(self.images[indices], self.labels[indices], self.class_names, self.source)


def default_data_dir() -> Path:
    """The data directory: ``$SNNLIB_DATA_DIR`` if set, else ``~/.cache/snnlib``.

    Raises
    ------
    ValueError
        When ``$SNNLIB_DATA_DIR`` names something that exists and is not a
        directory (a file, say).
    """
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        return DEFAULT_DATA_DIR.expanduser()
    root = Path(value).expanduser()
    if root.exists() and not root.is_dir():
        raise ValueError(f"${DATA_DIR_ENV} is {value!r}, which is a file, not a directory; set "
                         f"{DATA_DIR_ENV} to the directory that holds (or will hold) {FOLDER}/.")
    return root


def _root(root, where: str) -> Path:
    """``root`` (checked: a path, not a file) or the default data directory."""
    if root is None:
        return default_data_dir()
    check.path("root", root, where=where)
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{where}: root is {os.fspath(root)!r}, which is a file, not a "
                         f"directory; give the directory that holds {FOLDER}/ (or that folder).")
    return path


def _batches_dir(root: Path) -> Path:
    """``root/cifar-10-batches-py``, or ``root`` itself if it is that folder."""
    if root.name == FOLDER or (root / META_FILE).exists():
        return root
    return root / FOLDER


def find_cifar10(root: str | os.PathLike | None = None) -> Path | None:
    """The ``cifar-10-batches-py`` folder under ``root`` if it exists, else None.

    Existence only: :func:`load_cifar10` validates the content.
    """
    root = _root(root, "data.find_cifar10")
    folder = _batches_dir(root)
    return folder if folder.is_dir() else None


def _normalise_keys(obj):
    """Decode bytes keys (Python 2 pickles read with encoding='bytes')."""
    if isinstance(obj, dict):
        return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    return obj


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise
    except (PermissionError, IsADirectoryError) as err:  # the file may be sound: never advise deleting
        raise CIFARDataError(
            f"{path} cannot be opened ({type(err).__name__}: {err}). Give this user read "
            f"access to it, or point {DATA_DIR_ENV} at a copy you can read."
        ) from err
    except Exception as err:  # truncated, not a pickle, wrong protocol...
        raise CIFARDataError(
            f"{path} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}). "
            "The file is corrupted or not from the 'python version' archive; "
            "delete the folder and prepare it again."
        ) from err
    obj = _normalise_keys(obj)
    if not isinstance(obj, dict):
        raise CIFARDataError(f"{path} holds a {type(obj).__name__}, expected a dict of 'data' and 'labels'.")
    return obj


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one batch file; return images (N,32,32,3) and labels (N,)."""
    batch = _unpickle(path)
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        hint = " (this looks like CIFAR-100: 'fine_labels')" if "fine_labels" in batch else ""
        raise CIFARDataError(
            f"{path} lacks the key(s) {missing}{hint}; found {sorted(batch)}."
        )
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8:
        raise CIFARDataError(f"{path}: 'data' has dtype {data.dtype}, expected uint8.")
    if data.shape != (ROWS_PER_BATCH, PIXELS):
        raise CIFARDataError(
            f"{path}: 'data' has shape {data.shape}, expected ({ROWS_PER_BATCH}, {PIXELS})."
        )
    labels = np.asarray(batch["labels"])
    if labels.shape != (ROWS_PER_BATCH,):
        raise CIFARDataError(
            f"{path}: 'labels' has {labels.size} entries, expected {ROWS_PER_BATCH}."
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        integer = np.issubdtype(labels.dtype, np.integer)
        bad = labels[(labels < 0) | (labels > 9)] if integer else labels[:3]
        raise CIFARDataError(
            f"{path}: labels must be integers 0..9; found {bad[:5].tolist()}."
        )
    images = data.reshape(ROWS_PER_BATCH, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_class_names(folder: Path) -> tuple[str, ...]:
    meta = _unpickle(folder / META_FILE)
    names = meta.get("label_names")
    if names is None or len(names) != 10:
        raise CIFARDataError(
            f"{folder / META_FILE}: expected 'label_names' with 10 entries, found {names!r}."
        )
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def _validate_folder(folder: Path) -> None:
    """Raise :class:`CIFARDataError` naming every missing file of the layout."""
    expected = (*TRAIN_FILES, *TEST_FILES, META_FILE)
    missing = [name for name in expected if not (folder / name).is_file()]
    if missing:
        raise CIFARDataError(
            f"{folder} is incomplete: missing {', '.join(missing)}. "
            f"Delete it and prepare CIFAR-10 again (see README, '{DATA_DIR_ENV}')."
        )


def load_cifar10(
    split: Literal["train", "test"] = "train",
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
) -> Dataset:
    """Load one split of CIFAR-10 as uint8 images with labels and class names.

    Parameters
    ----------
    split : {"train", "test"}
        50,000 training or 10,000 test images.
    root : path, optional
        The directory holding ``cifar-10-batches-py/`` (or that folder).
        Default: ``$SNNLIB_DATA_DIR``, else ``~/.cache/snnlib``.
    download : bool
        When the folder is absent, download the official archive into
        ``root`` (about 163 MB, MD5-checked). When False, or when the
        download fails, raise :class:`CIFARDataError` naming the directory
        and the variable.

    Returns
    -------
    Dataset
        ``images`` ``(N, 32, 32, 3)`` uint8 and ``labels`` ``(N,)`` int64.

    Raises
    ------
    ValueError
        For a ``split`` other than "train" or "test".
    CIFARDataError
        When the data is absent and cannot be downloaded, or is invalid.
    """
    if split not in ("train", "test"):
        raise ValueError(f"data.load_cifar10: split must be 'train' or 'test', got {split!r}.")
    check.flag("download", download, where="data.load_cifar10")
    root = _root(root, "data.load_cifar10")
    folder = find_cifar10(root)
    if folder is None:
        if not download:
            raise CIFARDataError(
                f"CIFAR-10 was not found: no '{FOLDER}' folder in {root}. "
                f"Set {DATA_DIR_ENV} to the directory that holds it, or pass root=..., "
                "or allow download=True."
            )
        folder = download_cifar10(root)
    _validate_folder(folder)
    files = TRAIN_FILES if split == "train" else TEST_FILES
    parts = [_read_batch(folder / name) for name in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Dataset(images, labels, _read_class_names(folder), str(folder))


def _md5(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, dest: Path, progress: bool) -> None:
    """Stream ``url`` into ``dest`` with a tqdm progress bar."""
    from .progress import tqdm

    with urllib.request.urlopen(url, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(dest, "wb") as out, tqdm(
            total=total, unit="B", unit_scale=True, unit_divisor=1024,
            desc="CIFAR-10", disable=not progress,
        ) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))


def _extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse unsafe members
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - older Pythons
            tar.extractall(dest)


def download_cifar10(
    root: str | os.PathLike | None = None,
    *,
    url: str | None = None,
    md5: str | None = None,
    progress: bool = True,
) -> Path:
    """Download the official archive into ``root`` and return the batches folder.

    The archive is written to a temporary directory inside ``root``, its MD5
    sum checked, unpacked there, validated, and only then moved to
    ``root/cifar-10-batches-py``. ``url`` and ``md5`` default to the
    official archive (:data:`CIFAR10_URL`, :data:`CIFAR10_MD5`). An interrupted or corrupted download
    removes the temporary directory, so nothing half-made is left behind.

    Raises
    ------
    CIFARDataError
        When the download fails (offline, HTTP error), the checksum does not
        match, or the archive does not hold a valid layout.
    """
    where = "data.download_cifar10"
    if url is not None:
        check.text("url", url, where=where)
    if md5 is not None:
        check.text("md5", md5, where=where)
        if len(md5) != 32 or any(c not in "0123456789abcdefABCDEF" for c in md5):
            raise ValueError(f"{where}: md5 must be 32 hexadecimal digits, got {md5!r}")
        md5 = md5.lower()
    check.flag("progress", progress, where=where)
    url = url or CIFAR10_URL
    md5 = md5 or CIFAR10_MD5
    root = _root(root, where)
    if root.name == FOLDER:  # given the batches folder itself: unpack beside it
        root = root.parent
    target = root / FOLDER
    if target.exists():
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".cifar10-download-", dir=root))
    except OSError as err:
        raise CIFARDataError(
            f"CIFAR-10 was not found in {root} ('{FOLDER}' is not there), and it cannot be "
            f"downloaded into that folder ({type(err).__name__}: {err}). Set {DATA_DIR_ENV} "
            f"to a folder that holds '{FOLDER}', or to one you can write to."
        ) from err
    try:
        archive = tmp / "cifar-10-python.tar.gz"
        try:
            _fetch(url, archive, progress)
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise CIFARDataError(
                f"CIFAR-10 was not found in {root} and could not be downloaded from {url} "
                f"({reason}). If you are offline, put a copy of '{FOLDER}' in a directory "
                f"and set {DATA_DIR_ENV} to it (see README). Nothing was left behind."
            ) from err
        actual = _md5(archive)
        if actual != md5:
            raise CIFARDataError(
                f"The downloaded archive from {url} has MD5 {actual}, expected {md5}: "
                "it is corrupted or not the official file. It was deleted; try again."
            )
        unpacked = tmp / "unpacked"
        _extract(archive, unpacked)
        folder = unpacked / FOLDER
        if not folder.is_dir():
            raise CIFARDataError(f"The archive from {url} does not contain '{FOLDER}/'.")
        _validate_folder(folder)
        for name in (*TRAIN_FILES, *TEST_FILES):
            _read_batch(folder / name)
        _read_class_names(folder)
        os.replace(folder, target)  # atomic on one file system
    except KeyboardInterrupt:
        print("CIFAR-10 download interrupted: the partial files were removed.", file=sys.stderr)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def to_grayscale(images: np.ndarray) -> np.ndarray:
    """Luminance of RGB images as intensities in [0, 1].

    .. math:: Y = (0.299\\,R + 0.587\\,G + 0.114\\,B) / 255

    (ITU-R BT.601 weights, as PIL's ``"L"`` mode and torchvision use.)

    Parameters
    ----------
    images : numpy.ndarray
        ``(..., 32, 32, 3)`` uint8 RGB (channels last).

    Returns
    -------
    numpy.ndarray
        ``(..., 32, 32)`` float32 in [0, 1].
    """
    where = "data.to_grayscale"
    images = np.asarray(images)
    if images.ndim < 3 or images.shape[-1] != 3:
        raise ValueError(f"{where}: images must have 3 colour channels last, got shape "
                         f"{images.shape}.")
    if images.dtype != np.uint8:
        raise ValueError(f"{where}: images must be uint8 (0..255), got {images.dtype}.")
    if images.size == 0:
        raise ValueError(f"{where}: images must not be empty, got shape {images.shape}.")
    return (images.astype(np.float32) @ LUMA_WEIGHTS) / np.float32(255.0)


def _labels(labels, where: str) -> np.ndarray:
    """CIFAR-10 class indices (0..9), one dimension, not empty; as a numpy array."""
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(check.labels("labels", labels, where=where))
    if len(labels) == 0:
        raise ValueError(f"{where}: labels must not be empty.")
    return labels


def balanced_subset(labels: np.ndarray, n_per_class: int, *, seed: int) -> np.ndarray:
    """Indices of ``n_per_class`` examples of every class, drawn without replacement.

    The draw is seeded (``numpy.random.default_rng(seed)``); the returned
    indices are sorted class by class, in the order of ``labels``' classes
    0, 1, ..., so the same seed gives the same subset.

    Raises
    ------
    ValueError
        If ``n_per_class`` is not positive or exceeds the smallest class.
    """
    where = "data.balanced_subset"
    labels = _labels(labels, where)
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) \
            or n_per_class < 1:
        raise ValueError(f"{where}: n_per_class must be a positive integer, got {n_per_class!r}.")
    seed = check.integer("seed", seed, low=0, where=where)
    rng = np.random.default_rng(seed)
    chosen = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if n_per_class > len(members):
            raise ValueError(
                f"n_per_class={n_per_class} but class {cls} has only {len(members)} examples."
            )
        chosen.append(np.sort(rng.choice(members, size=n_per_class, replace=False)))
    return np.concatenate(chosen)


VALIDATION_PER_CLASS = 500
"""Images per class held out of the training set for every choice the book makes."""


def validation_split(labels: np.ndarray, n_per_class: int = VALIDATION_PER_CLASS
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices of the CIFAR-10 training set: no seed, no choice.

    The validation split is the *last* ``n_per_class`` images of each class
    in the training set's own order (5,000 for the default 500, class-balanced);
    the training split is every other image, in order. Every design choice,
    hyper-parameter and readout of the book is made on the validation split;
    the test set is read once, for the reported figure.

    Returns
    -------
    (train_index, validation_index) : tuple of numpy.ndarray
        Disjoint, sorted, together all of ``labels``' indices.

    Raises
    ------
    ValueError
        If ``n_per_class`` is not positive or leaves a class without training images.
    """
    where = "data.validation_split"
    labels = _labels(labels, where)
    if not isinstance(n_per_class, (int, np.integer)) or isinstance(n_per_class, bool) \
            or n_per_class < 1:
        raise ValueError(f"{where}: n_per_class must be a positive integer, got "
                         f"{n_per_class!r}.")
    held = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        if n_per_class >= len(members):
            raise ValueError(f"n_per_class={n_per_class} would leave class {cls} (with "
                             f"{len(members)} images) no training image.")
        held.append(members[-n_per_class:])
    validation = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), validation), validation


# MD5 sums of the official test batch (the archive's own file).
OFFICIAL_TEST_BATCH_MD5 = "40351d587109b95175f43aff81a1287e"


def dataset_name(source: str | os.PathLike) -> str:
    """How results should name the data read from ``source`` (a batches folder).

    "CIFAR-10" when its ``test_batch`` is the official file (by MD5), else
    "CIFAR-10 (JPEG copy or other non-official local copy)": pixels may
    differ slightly from the official ones (see README).
    """
    check.path("source", source, where="data.dataset_name")
    path = Path(source) / "test_batch"
    if path.is_file() and _md5(path) == OFFICIAL_TEST_BATCH_MD5:
        return "CIFAR-10"
    return "CIFAR-10 (JPEG copy or other non-official local copy)"
