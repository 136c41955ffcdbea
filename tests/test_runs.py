"""snnlib.runs: atomic saves, cache keys, safe loading, the device, the one record format."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from snnlib import runs
from snnlib.tiers import TIERS

LEGACY = Path(__file__).parent / "records_v1"
RESULTS = Path(__file__).parent.parent / "results"


# --- atomic saves -----------------------------------------------------------------------------
def test_atomic_write_leaves_the_old_file_or_the_new_one_and_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    runs.save_json(path, {"v": 1})

    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise KeyboardInterrupt  # a kill in the middle of the write

    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(path, fail)
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)  # not private, as mkstemp makes it


def test_two_writers_of_one_file_never_share_a_temporary_name(tmp_path):
    path, seen = tmp_path / "x.npz", []

    def outer(tmp: str) -> None:
        seen.append(tmp)
        # a second run saves the same file while the first is still writing
        runs.atomic_write(path, lambda inner: seen.append(inner) or Path(inner).write_text("2"))
        Path(tmp).write_text("1")

    runs.atomic_write(path, outer)
    assert len(set(seen)) == 2 and path.read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]


def test_save_npz_writes_the_name_it_is_given(tmp_path):
    runs.save_npz(tmp_path / "part.npz", a=np.arange(3))
    runs.save_npz(tmp_path / "model", a=np.arange(3))  # no ".npz" added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "part.npz"]
    np.testing.assert_array_equal(runs.load_npz(tmp_path / "model")["a"], np.arange(3))


# --- cache keys -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Params:
    rate_hz: float = 10.0
    steps: int = 4


def test_cache_key_leaves_out_a_field_marked_at_its_default_only():
    # the same parameters before and after an option was added (both classes are called P)
    before = dataclasses.make_dataclass("P", [("steps", int, 4)], frozen=True)
    after = dataclasses.make_dataclass(
        "P", [("steps", int, 4),
              ("partners", bool, dataclasses.field(default=False,
                                                   metadata=runs.KEY_OMITS_DEFAULT))],
        frozen=True)
    unmarked = dataclasses.make_dataclass(
        "P", [("steps", int, 4), ("partners", bool, False)], frozen=True)
    key = runs.cache_key(before(), 3, version=1)
    assert runs.cache_key(after(), 3, version=1) == key
    assert runs.cache_key(after(partners=True), 3, version=1) != key
    assert runs.cache_key(after(steps=5), 3, version=1) == runs.cache_key(before(steps=5), 3,
                                                                        version=1)
    assert runs.cache_key(after(partners=0), 3, version=1) != key  # equal, not the default
    assert runs.cache_key(unmarked(), 3, version=1) != key


def test_cache_key_changes_with_any_element_and_only_then():
    images = np.random.default_rng(0).integers(0, 256, (500, 32, 32, 3), dtype=np.uint8)
    key = runs.cache_key(images, _Params(), 3, "analog", version=1)
    assert key == runs.cache_key(images.copy(), _Params(), 3, "analog", version=1)
    changed = images.copy()
    changed[317, 31, 0, 2] ^= 1  # one bit of one channel of one pixel of one image
    for other in (runs.cache_key(changed, _Params(), 3, "analog", version=1),
                  runs.cache_key(images, _Params(steps=5), 3, "analog", version=1),
                  runs.cache_key(images, _Params(), 4, "analog", version=1),
                  runs.cache_key(images, _Params(), 3, "poisson", version=1),
                  runs.cache_key(images.astype(np.int16), _Params(), 3, "analog", version=1),
                  runs.cache_key(images, _Params(), 3, "analog", version=2)):
        assert other != key
    net = torch.nn.Linear(3, 2)
    before = runs.cache_key(net, version=1)
    with torch.no_grad():
        net.weight[1, 2] += 1e-6
    assert runs.cache_key(net, version=1) != before
    assert runs.cache_key(torch.ones(2, dtype=torch.bfloat16), version=1) != runs.cache_key(
        torch.ones(2), version=1)
    with pytest.raises(TypeError, match="cannot hash a object"):
        runs.cache_key(object(), version=1)


# --- safe loading -----------------------------------------------------------------------------
class _Payload:
    """What a crafted checkpoint does when unpickled: create a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    from snnlib.tiers import conversion as C

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "run" / "cnn.pt"
    ckpt.parent.mkdir()
    torch.save({"model": {}, "payload": _Payload(marker)}, ckpt)
    with pytest.raises(runs.CheckpointError) as err:
        runs.load_torch(ckpt)
    assert str(ckpt) in str(err.value) and "was refused" in str(err.value)
    assert "nothing in it was run" in str(err.value) and not marker.exists()
    # the tier's training reads its checkpoint the same way
    images = np.zeros((20, 32, 32, 3), np.uint8)
    with pytest.raises(runs.CheckpointError, match="cnn.pt was refused"):
        C.train_cnn(C.ConvNet(C.ConvNetParams(widths=(2,), pool_after=())), images,
                    np.arange(20) % 10, C.TrainParams(epochs=1), seed=0, progress=False,
                    checkpoint=ckpt)
    assert not marker.exists()


def test_the_cli_refuses_a_crafted_checkpoint_in_one_line(tmp_path, monkeypatch, capsys):
    from snnlib import data
    from snnlib.__main__ import main

    rng = np.random.default_rng(0)
    fake = data.Dataset(rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8),
                        np.repeat(np.arange(10), 20), data.CLASS_NAMES, str(tmp_path))
    monkeypatch.setattr(data, "load_cifar10", lambda split: fake)
    marker, out = tmp_path / "pwned", tmp_path / "run"
    out.mkdir()
    torch.save({"payload": _Payload(marker)}, out / "cnn.pt")
    assert main(["run", "conversion", "--profile", "ci", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cnn.pt was refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_a_truncated_checkpoint_names_the_file_and_what_to_do(tmp_path):
    from snnlib.tiers import conversion as C

    images = np.random.default_rng(1).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    args = (images, np.arange(20) % 10, C.TrainParams(epochs=1, batch_size=10))
    ckpt = tmp_path / "cnn.pt"
    C.train_cnn(C.ConvNet(C.ConvNetParams(widths=(2,), pool_after=())), *args, seed=0,
                progress=False, checkpoint=ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(runs.CheckpointError) as err:
        C.train_cnn(C.ConvNet(C.ConvNetParams(widths=(2,), pool_after=())), *args, seed=0,
                    progress=False, checkpoint=ckpt)
    message = str(err.value)
    assert message.startswith(f"{ckpt} is truncated or corrupt")
    assert message.endswith("delete it and run again: it will be recomputed.")


def test_npz_with_pickled_objects_is_refused_and_a_broken_cache_is_set_aside(tmp_path, capsys):
    pickled = tmp_path / "features.npz"
    np.savez(pickled, key=np.array("k"), obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(runs.CheckpointError, match="holds pickled Python objects"):
        runs.load_npz(pickled)
    broken = tmp_path / "part.npz"
    runs.save_npz(broken, key=np.array("k"), x=np.arange(1000))
    assert runs.cached_npz(broken, "k")["x"].sum() == 499500
    assert runs.cached_npz(broken, "other") is None and broken.exists()  # stale: kept
    broken.write_bytes(broken.read_bytes()[:200])
    assert runs.cached_npz(broken, "k") is None
    assert not broken.exists() and (tmp_path / "part.npz.stale").exists()
    assert "set aside as part.npz.stale, recomputing" in capsys.readouterr().out


def test_a_cache_this_user_cannot_read_is_not_set_aside_as_corrupt(tmp_path, monkeypatch):
    # a permission error is the folder's, not the file's: it is raised, and the cache stays
    import torch

    cache = tmp_path / "part.npz"
    runs.save_npz(cache, key=np.array("k"), x=np.arange(10))
    ckpt = tmp_path / "cnn.pt"
    torch.save({"w": torch.zeros(2)}, ckpt)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(np, "load", refuse)
    with pytest.raises(PermissionError):
        runs.cached_npz(cache, "k")
    assert cache.exists() and not (tmp_path / "part.npz.stale").exists()
    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(PermissionError):
        runs.load_torch(ckpt)


# --- the device -------------------------------------------------------------------------------
def test_the_device_comes_from_the_argument_or_the_environment(monkeypatch):
    monkeypatch.delenv(runs.DEVICE_ENV, raising=False)
    assert runs.get_device() == "cpu" and runs.get_device(" CPU ") == "cpu"
    monkeypatch.setenv(runs.DEVICE_ENV, "gpu")
    with pytest.raises(ValueError, match=r"\$SNNLIB_DEVICE is 'gpu'; use 'cpu', 'cuda'"):
        runs.get_device()
    with pytest.raises(ValueError, match="argument device is 'cpu:1'"):
        runs.get_device("cpu:1")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="PyTorch sees no CUDA GPU here"):
            runs.get_device("cuda")


def test_tier1_refuses_a_gpu_with_the_reason(tmp_path, monkeypatch):
    from snnlib import profiles

    monkeypatch.setattr(runs, "get_device", lambda name=None: "cuda")  # as on a GPU machine
    with pytest.raises(ValueError, match=r"tier 1 \(brian_stdp\) runs on cpu only \(Brian2\)"):
        TIERS["brian_stdp"].run(profiles.get_profile("ci"), out_dir=tmp_path, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tier3_simulation_agrees_on_cpu_and_cuda():
    from snnlib.tiers import conversion as C

    torch.manual_seed(0)
    net = C.fold_batchnorm(C.ConvNet(C.ConvNetParams(widths=(4, 6), pool_after=(0, 1))).eval())
    x = torch.rand(64, 3, 32, 32)
    normed, _ = C.normalise(net, x, percentile=99.9)
    labels = net(x).argmax(1).numpy()
    cpu = C.simulate(normed, x, labels, steps=[8, 64], device="cpu")
    gpu = C.simulate(normed, x, labels, steps=[8, 64], device="cuda")
    for t in (8, 64):  # float sums in another order: a few images may tip, not more
        assert abs(cpu["accuracy"][t] - gpu["accuracy"][t]) <= 3 / 64
    assert gpu["spikes_per_image"] == pytest.approx(cpu["spikes_per_image"], rel=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tier2_layer_agrees_on_cpu_and_cuda():
    from snnlib.tiers import dog_lif as D

    p = D.DoGLIFParams(n_filters=8, train_patches=500, patch_batch=250)
    images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    feats = {}
    for device in ("cpu", "cuda"):
        net = D.DoGLIF(p, seed=0, device=device)
        net.fit(images, progress=False)
        feats[device] = net.features(images, seed=1, progress=False)["features"]
    # the same Poisson draws (numpy, on the CPU) on both: counts agree up to float rounding
    assert np.abs(feats["cpu"] - feats["cuda"]).mean() < 0.05 * feats["cpu"].mean()


# --- the record -------------------------------------------------------------------------------
@pytest.mark.parametrize("tier", list(TIERS))
def test_migrated_records_keep_every_field_of_the_old_ones(tier):
    old = json.loads((LEGACY / f"{tier}.json").read_text())
    record = runs.load_record(LEGACY / f"{tier}.json", tier=tier)
    moves = TIERS[tier].record_module().MOVES
    # every value of the old record, at its old place, from the new one
    assert runs.legacy_view(record, moves) == old
    moved = [source for source, _ in moves]
    for path, _ in runs.iter_leaves(old):  # each old field was moved, or kept in `specific`
        assert any(path == m or path.startswith(m + "/") for m in moved) or (
            path.split("/")[0] in record.specific), path
    # the committed results are these migrated records, in the current format (tier 1's first,
    # fully connected network is kept apart: its record is the chapter-3 section's)
    name = "brian_stdp_diehl_cook" if tier == "brian_stdp" else tier
    committed = json.loads((RESULTS / f"{name}.json").read_text())
    assert committed["format"] == runs.RECORD_FORMAT
    if committed["provenance"]["git_commit"] == old["git_commit"]:  # not remade since
        assert runs.TierRecord.from_dict(committed) == record
    else:  # remade since: it still holds every field the old one had (values at numbers of
        # steps aside: a remade run may simulate other T), and is the same tier's
        remade = runs.TierRecord.from_dict(committed)
        view = runs.legacy_view(remade, moves)
        missing = [path for path, _ in runs.iter_leaves(old)
                   if not any(k.isdigit() for k in path.split("/")) and not _has_path(view, path)]
        # today's provenance names the device it ran on (type and name) instead of a GPU flag
        if "machine/gpu" in missing:
            missing.remove("machine/gpu")
            assert remade.provenance["device"]["type"] == ("cuda" if old["machine"]["gpu"]
                                                           else "cpu")
        assert not missing, missing
        assert (remade.tier, remade.profile) == (tier, "full")
    # the common fields hold what the tier measured
    assert record.tier == tier and record.profile == "full" and record.device == "cpu"
    assert record.provenance["git_commit"] == old["git_commit"]
    assert len(record.confusion) == 10 and sum(map(sum, record.confusion)) <= record.test_images
    assert record.synaptic_events.accumulates > 0 and record.time_steps > 0


def _has_path(tree: dict, path: str) -> bool:
    """Whether ``tree`` has a value at ``path`` (``a/b/c``); a list counts as a leaf."""
    for key in path.split("/"):
        if isinstance(tree, list):
            return True
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def test_the_common_fields_of_each_tier_come_from_its_measurements():
    rec = {t: runs.load_record(LEGACY / f"{t}.json") for t in TIERS}
    old = {t: json.loads((LEGACY / f"{t}.json").read_text()) for t in TIERS}
    assert rec["conversion"].accuracy == old["conversion"]["snn"]["accuracy"] == 0.8846
    assert rec["conversion"].test_images == old["conversion"]["snn_images"]
    assert rec["conversion"].time_steps == 256 and rec["conversion"].dt_ms is None
    assert rec["conversion"].synaptic_events.multiply_accumulates == old["conversion"]["snn"][
        "operations_per_image"]["multiply_accumulates"]
    q = rec["conversion"].variants["QCFS fine-tuned, T = 32"]
    assert q.accuracy == old["conversion"]["qcfs"]["accuracy_vs_steps"]["32"]
    assert rec["dog_lif"].accuracy == 0.6811 and rec["dog_lif"].time_steps == 15
    assert rec["dog_lif"].training_wall_s is None  # its training features were not timed
    assert rec["brian_stdp"].time_steps == 700 and rec["brian_stdp"].dt_ms == 0.5
    assert rec["brian_stdp"].train_images == 10000
    assert set(rec["brian_stdp"].firing) == {"hidden layer 1", "hidden layer 2", "output"}
    assert rec["brian_stdp"].spikes_per_neuron_per_image == pytest.approx(
        (351.1513 + 264.9992 + 134.1424) / (400 + 200 + 100))


def test_a_bad_record_is_refused_with_the_file_and_the_command(tmp_path):
    good = json.loads((RESULTS / "dog_lif.json").read_text())
    for change, message in (({"accuracy": 1.5}, r"accuracy must be a fraction in \[0, 1\]"),
                            ({"format": 9}, "format 9, this snnlib reads format 2"),
                            ({"confusion": [[1]]}, "must cover the 10 classes"),
                            ({"extra": 1}, "fields this snnlib does not know .extra."),
                            ({"variants": None}, "r.json: 'NoneType' object has no attribute"),
                            ({"tier": "tier9"}, "unknown tier 'tier9' .known: brian_stdp")):
        path = tmp_path / "r.json"
        path.write_text(json.dumps({**good, **change}))
        with pytest.raises(runs.RecordError, match=message):
            runs.load_record(path)
    del good["firing"]
    path.write_text(json.dumps(good))
    with pytest.raises(runs.RecordError, match=r"r.json lacks firing; make it again with "
                                               r"`python -m snnlib run dog_lif`"):
        runs.load_record(path)
    path.write_text("{not json")
    with pytest.raises(runs.RecordError, match="is not readable JSON"):
        runs.load_record(path)
    with pytest.raises(runs.RecordError, match="is tier 'dog_lif''s record, not 'conversion''s"):
        runs.load_record(RESULTS / "dog_lif.json", tier="conversion")
    with pytest.raises(runs.RecordError, match="unknown tier 'tier9'"):
        runs.migrate_record({"tier": "tier9"})
    # an old-format record (no "format") that lacks what its tier's migration reads
    path.write_text(json.dumps({"tier": "brian_stdp", "accuracy": 0.5}))
    with pytest.raises(runs.RecordError, match=r"r.json: an old-format record of tier "
                                               r"'brian_stdp' that this snnlib cannot read "
                                               r"\(KeyError: it lacks '[a-z_]+'\); make it again"):
        runs.load_record(path)


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9B14
flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni sse4_2

processor\t: 1
model name\t: some other core
flags\t\t: amx_tile amx_bf16
"""


def test_the_cpu_is_described_by_its_first_core():
    cpu = runs.cpu_description(CPUINFO)
    assert cpu == {"model": "AMD EPYC 9B14", "family": "25", "model_number": "17",
                   "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]}
    bare = runs.cpu_description("\n\n")
    assert bare["model"] and bare["family"] is None and bare["flags"] == []
    arm = runs.cpu_description("\nprocessor\t: 0\nFeatures\t: fp asimd sve bf16\n"
                               "CPU part\t: 0xd40\n")
    assert arm["flags"] == ["asimd", "sve", "bf16"] and arm["model_number"] is None


def test_without_a_cpuinfo_file_the_cpu_is_named_by_platform(monkeypatch):
    def missing(self):
        raise FileNotFoundError(self)

    monkeypatch.setattr(Path, "read_text", missing)
    cpu = runs.cpu_description()
    assert cpu["model"] == (platform.processor() or platform.machine())
    assert cpu["family"] is None and cpu["flags"] == []


def test_a_record_survives_json_and_says_where_it_ran(tmp_path):
    record = runs.load_record(RESULTS / "conversion.json")
    fresh = replace(record, provenance=runs.provenance("cpu"))
    runs.save_record(fresh, tmp_path / "r.json")
    again = runs.load_record(tmp_path / "r.json")
    assert again == fresh
    prov = again.provenance
    assert prov["device"]["type"] == "cpu" and prov["machine"]["cores"] == os.cpu_count()
    cpu = runs.cpu_description()
    assert prov["device"]["name"] == prov["machine"]["cpu"]["model"] == cpu["model"]
    assert torch.__version__.startswith(prov["versions"]["torch"])
    assert set(prov["versions"]) == {"python", "snnlib", "numpy", "torch", "brian2"}
