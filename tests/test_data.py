"""snnlib.data: the loader on tiny synthetic batches in the official layout,
bad files, missing directories, the download path (served from a local
file:// URL), grayscale against PIL, and class-balanced subsets."""

from __future__ import annotations

import hashlib
import pickle
import struct
import tarfile

import numpy as np
import pytest
from PIL import Image

import snnlib as sl
from snnlib import data as D

ROWS = 20  # rows per synthetic batch; the real files have 10000


@pytest.fixture
def small_batches(monkeypatch):
    """Make the validator expect ROWS rows per batch instead of 10000."""
    monkeypatch.setattr(D, "ROWS_PER_BATCH", ROWS)
    monkeypatch.delenv(D.DATA_DIR_ENV, raising=False)


class _Py2Pickler(pickle._Pickler):
    """Pickle bytes as Python 2 str, as the official files were written."""

    def save_bytes(self, obj):
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[bytes] = save_bytes


def _dump(obj, path, style):
    with open(path, "wb") as f:
        if style == "bytes":
            _Py2Pickler(f, protocol=2).dump(obj)
        else:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _key(name, style):
    return name.encode() if style == "bytes" else name


def write_layout(root, *, style="bytes", seed=0):
    """Write root/cifar-10-batches-py with ROWS images per batch.

    Returns the images (N, 32, 32, 3) and labels of train and test.
    """
    rng = np.random.default_rng(seed)
    folder = root / D.FOLDER
    folder.mkdir(parents=True)
    out = {}
    for split, names in (("train", D.TRAIN_FILES), ("test", D.TEST_FILES)):
        images, labels = [], []
        for name in names:
            img = rng.integers(0, 256, size=(ROWS, 32, 32, 3), dtype=np.uint8)
            lab = (np.arange(ROWS) % 10).tolist()
            flat = img.transpose(0, 3, 1, 2).reshape(ROWS, 3072)  # R, G, B planes
            _dump({_key("data", style): flat, _key("labels", style): lab,
                   _key("batch_label", style): _key(name, style)}, folder / name, style)
            images.append(img)
            labels.extend(lab)
        out[split] = (np.concatenate(images), np.array(labels))
    names = [_key(c, style) for c in D.CLASS_NAMES]
    _dump({_key("label_names", style): names, _key("num_cases_per_batch", style): ROWS},
          folder / D.META_FILE, style)
    return out


@pytest.mark.parametrize("style", ["bytes", "str"])
def test_loader_reads_both_key_styles_pixel_exact(tmp_path, small_batches, style):
    truth = write_layout(tmp_path, style=style)
    for split in ("train", "test"):
        ds = sl.data.load_cifar10(split, tmp_path, download=False)
        images, labels = truth[split]
        assert ds.images.dtype == np.uint8 and ds.images.shape == images.shape
        np.testing.assert_array_equal(ds.images, images)  # channel order: RGB planes
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.class_names == D.CLASS_NAMES
    assert len(sl.data.load_cifar10("train", tmp_path, download=False)) == 5 * ROWS


def test_loader_accepts_the_batches_folder_itself_and_the_env_var(tmp_path, small_batches,
                                                                   monkeypatch):
    truth = write_layout(tmp_path)
    ds = sl.data.load_cifar10("test", tmp_path / D.FOLDER, download=False)
    np.testing.assert_array_equal(ds.labels, truth["test"][1])
    monkeypatch.setenv(D.DATA_DIR_ENV, str(tmp_path))
    assert sl.data.default_data_dir() == tmp_path
    assert len(sl.data.load_cifar10("test", download=False)) == ROWS


def test_missing_directory_names_the_variable_and_the_directory(tmp_path, small_batches):
    missing = tmp_path / "nowhere"
    with pytest.raises(sl.data.CIFARDataError) as err:
        sl.data.load_cifar10("train", missing, download=False)
    message = str(err.value)
    assert str(missing) in message and D.DATA_DIR_ENV in message


def test_missing_file_is_named(tmp_path, small_batches):
    write_layout(tmp_path)
    (tmp_path / D.FOLDER / "data_batch_3").unlink()
    with pytest.raises(sl.data.CIFARDataError, match="missing data_batch_3"):
        sl.data.load_cifar10("test", tmp_path, download=False)


def test_truncated_file_is_reported_as_corrupted(tmp_path, small_batches):
    write_layout(tmp_path)
    path = tmp_path / D.FOLDER / "test_batch"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(sl.data.CIFARDataError, match="test_batch is not a readable CIFAR-10 batch"):
        sl.data.load_cifar10("test", tmp_path, download=False)


def test_a_batch_this_user_cannot_open_is_not_called_corrupted(tmp_path, small_batches,
                                                               monkeypatch):
    write_layout(tmp_path)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(D, "open", refuse, raising=False)  # as root, chmod would not refuse
    with pytest.raises(sl.data.CIFARDataError, match="test_batch cannot be opened "
                                                     r"\(PermissionError.*read access") as err:
        sl.data.load_cifar10("test", tmp_path, download=False)
    assert "delete" not in str(err.value) and "corrupt" not in str(err.value)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda b: b.update(data=b["data"][:-1]), r"shape \(19, 3072\), expected \(20, 3072\)"),
        (lambda b: b.update(data=b["data"].astype(np.float32)), "dtype float32, expected uint8"),
        (lambda b: b.update(labels=[10] * ROWS), r"labels must be integers 0..9; found \[10"),
        (lambda b: b.update(labels=[0] * (ROWS - 1)), "19 entries, expected 20"),
        (lambda b: b.pop("labels"), r"lacks the key\(s\) \['labels'\]"),
    ],
)
def test_invalid_content_says_what_is_wrong(tmp_path, small_batches, change, message):
    write_layout(tmp_path, style="str")
    path = tmp_path / D.FOLDER / "test_batch"
    batch = pickle.loads(path.read_bytes())
    change(batch)
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(sl.data.CIFARDataError, match=message):
        sl.data.load_cifar10("test", tmp_path, download=False)


def test_bad_split_is_a_value_error(tmp_path, small_batches):
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        sl.data.load_cifar10("validation", tmp_path, download=False)


# --- download: served from a file:// URL, so no network is needed ----------

def _archive(tmp_path, *, valid=True):
    """A .tar.gz of a synthetic layout; returns (url, md5)."""
    src = tmp_path / "src"
    write_layout(src)
    if not valid:
        (src / D.FOLDER / "test_batch").write_bytes(b"not a pickle")
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src / D.FOLDER, arcname=D.FOLDER)
    return path.as_uri(), hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_md5_and_moves_into_place(tmp_path, small_batches):
    url, md5 = _archive(tmp_path)
    root = tmp_path / "data"
    folder = sl.data.download_cifar10(root, url=url, md5=md5, progress=False)
    assert folder == root / D.FOLDER
    assert sorted(p.name for p in root.iterdir()) == [D.FOLDER]  # no temporary left
    assert len(sl.data.load_cifar10("train", root, download=False)) == 5 * ROWS


def test_download_with_wrong_md5_leaves_nothing(tmp_path, small_batches):
    url, _ = _archive(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(sl.data.CIFARDataError, match="has MD5 .* expected 0{32}"):
        sl.data.download_cifar10(root, url=url, md5="0" * 32, progress=False)
    assert list(root.iterdir()) == []


def test_download_of_invalid_archive_leaves_nothing(tmp_path, small_batches):
    url, md5 = _archive(tmp_path, valid=False)
    root = tmp_path / "data"
    with pytest.raises(sl.data.CIFARDataError, match="test_batch is not a readable"):
        sl.data.download_cifar10(root, url=url, md5=md5, progress=False)
    assert list(root.iterdir()) == []


def test_interrupted_download_leaves_nothing(tmp_path, small_batches, monkeypatch):
    url, md5 = _archive(tmp_path)
    root = tmp_path / "data"

    def interrupted(url, dest, progress):
        dest.write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(D, "_fetch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sl.data.download_cifar10(root, url=url, md5=md5, progress=False)
    assert list(root.iterdir()) == []


def test_offline_download_names_the_variable_and_the_directory(tmp_path, small_batches,
                                                               monkeypatch):
    root = tmp_path / "data"
    unreachable = (tmp_path / "no-such-archive.tar.gz").as_uri()
    monkeypatch.setattr(D, "CIFAR10_URL", unreachable)
    with pytest.raises(sl.data.CIFARDataError) as err:
        sl.data.load_cifar10("train", root, download=True)
    message = str(err.value)
    assert "could not be downloaded" in message
    assert str(root) in message and D.DATA_DIR_ENV in message
    assert list(root.iterdir()) == []


def test_a_folder_without_the_batches_that_cannot_be_written_is_one_clear_error(
        tmp_path, small_batches, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted", str(tmp_path))

    monkeypatch.setattr(D.tempfile, "mkdtemp", refuse)
    with pytest.raises(sl.data.CIFARDataError, match=r"CIFAR-10 was not found in .*cannot be "
                                                     r"downloaded into that folder") as err:
        sl.data.load_cifar10("train", tmp_path, download=True)
    assert D.DATA_DIR_ENV in str(err.value)


# --- grayscale and subsets --------------------------------------------------

def test_grayscale_matches_pil_luma():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    gray = sl.data.to_grayscale(images)
    assert gray.shape == (4, 32, 32) and gray.dtype == np.float32
    pil = np.stack([np.asarray(Image.fromarray(im).convert("L")) for im in images]) / 255.0
    assert np.abs(gray - pil).max() <= 1.0 / 255  # PIL rounds to integers


def test_grayscale_of_gray_pixels_is_their_level():
    levels = np.array([0, 51, 128, 255], dtype=np.uint8)
    images = np.broadcast_to(levels[:, None, None, None], (4, 32, 32, 3)).copy()
    np.testing.assert_allclose(sl.data.to_grayscale(images)[:, 0, 0], levels / 255.0, atol=1e-6)


def test_grayscale_refuses_wrong_input():
    with pytest.raises(ValueError, match="3 colour channels"):
        sl.data.to_grayscale(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError, match="must be uint8"):
        sl.data.to_grayscale(np.zeros((2, 32, 32, 3), dtype=np.float32))


def test_balanced_subset_is_balanced_seeded_and_without_repeats():
    labels = np.random.default_rng(2).integers(0, 10, size=2000)
    idx = sl.data.balanced_subset(labels, 7, seed=3)
    assert len(idx) == 70 and len(set(idx.tolist())) == 70
    np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10), [7] * 10)
    np.testing.assert_array_equal(idx, sl.data.balanced_subset(labels, 7, seed=3))
    assert not np.array_equal(idx, sl.data.balanced_subset(labels, 7, seed=4))


def test_balanced_subset_refuses_impossible_sizes():
    labels = np.array([0, 0, 1])
    with pytest.raises(ValueError, match="class 1 has only 1 examples"):
        sl.data.balanced_subset(labels, 2, seed=0)
    with pytest.raises(ValueError, match="positive integer"):
        sl.data.balanced_subset(labels, 0, seed=0)


def test_dataset_subset_keeps_images_and_labels_together(tmp_path, small_batches):
    write_layout(tmp_path)
    ds = sl.data.load_cifar10("train", tmp_path, download=False)
    idx = sl.data.balanced_subset(ds.labels, 3, seed=0)
    sub = ds.subset(idx)
    np.testing.assert_array_equal(sub.images, ds.images[idx])
    np.testing.assert_array_equal(sub.labels, ds.labels[idx])
    np.testing.assert_array_equal(np.bincount(sub.labels), [3] * 10)
    backwards = ds.subset(idx[::-1])  # an order balanced_subset does not give
    np.testing.assert_array_equal(backwards.images, ds.images[idx[::-1]])
    np.testing.assert_array_equal(backwards.labels, ds.labels[idx[::-1]])


def test_download_into_a_root_named_like_the_batches_folder(tmp_path, small_batches):
    url, md5 = _archive(tmp_path)
    root = tmp_path / "data" / D.FOLDER  # the user points at the folder itself
    folder = sl.data.download_cifar10(root, url=url, md5=md5, progress=False)
    assert folder == root
    assert len(sl.data.load_cifar10("test", root, download=False)) == ROWS


def test_float_labels_are_named_in_the_message(tmp_path, small_batches):
    write_layout(tmp_path, style="str")
    path = tmp_path / D.FOLDER / "test_batch"
    batch = pickle.loads(path.read_bytes())
    batch["labels"] = [0.5] * ROWS
    path.write_bytes(pickle.dumps(batch))
    with pytest.raises(sl.data.CIFARDataError, match=r"labels must be integers 0..9; found \[0.5"):
        sl.data.load_cifar10("test", tmp_path, download=False)


def test_the_validation_split_is_the_last_images_of_each_class():
    labels = np.repeat(np.arange(10), 30)[np.random.default_rng(0).permutation(300)]
    train, val = D.validation_split(labels, 7)
    assert len(val) == 70 and len(train) == 230
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(300))
    for cls in range(10):
        members = np.flatnonzero(labels == cls)
        assert np.array_equal(val[labels[val] == cls], members[-7:])
    assert np.array_equal(D.validation_split(labels, 7)[1], val)  # no seed: always the same
    with pytest.raises(ValueError, match="would leave class"):
        D.validation_split(labels, 30)
    with pytest.raises(ValueError, match="positive integer"):
        D.validation_split(labels, 0)
