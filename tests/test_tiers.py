"""The tier registry and the shape every tier package shares."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from snnlib import profiles
from snnlib.tiers import TIERS

SRC = Path(__file__).parent.parent / "src" / "snnlib"
NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def test_the_registry_lists_the_tiers_in_the_books_order():
    assert [(t.number, t.name) for t in TIERS.values()] == [
        (1, "brian_stdp"), (2, "dog_lif"), (3, "conversion")]
    for tier in TIERS.values():
        assert all((NOTEBOOKS / f"{c}.ipynb").exists() for c in tier.chapters)
        assert (SRC.parent.parent / "results" / f"{tier.name}.json").exists()


def test_a_cpu_only_tier_ignores_the_environments_device_but_refuses_an_asked_one(
        monkeypatch):
    from snnlib import runs

    seen = []
    tier = TIERS["brian_stdp"]
    monkeypatch.setattr(tier.module(), "run_tier", lambda profile, **kw: seen.append(kw["device"]))
    monkeypatch.setenv("SNNLIB_DEVICE", "cuda")  # exported for chapters 5 and 6
    tier.run(profiles.get_profile("ci"), out_dir="unused")
    assert seen == ["cpu"]
    monkeypatch.setattr(runs, "get_device", lambda device=None: device)  # as if a GPU were here
    with pytest.raises(ValueError, match=r"tier 1 \(brian_stdp\) runs on cpu only"):
        tier.run(profiles.get_profile("ci"), out_dir="unused", device="cuda")


@pytest.mark.parametrize("name", list(TIERS))
def test_every_tier_package_has_the_same_shape(name):
    tier = TIERS[name]
    assert (SRC / "tiers" / name / "run.py").exists() and (SRC / "tiers" / name / "record.py").exists()
    run_tier = tier.module().run_tier
    params = inspect.signature(run_tier).parameters
    assert {"profile", "out_dir", "seed", "device", "progress"} <= set(params)
    rec = tier.record_module()
    assert callable(rec.to_record) and callable(rec.summary_lines) and rec.MOVES
    for p in profiles.PROFILES.values():  # the tier's profile section
        assert getattr(p, name).__class__.__name__.endswith("Sizes")


def _imports(path: Path) -> set[str]:
    """Every module a file imports (relative imports resolved to snnlib.*)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = "snnlib." + (node.module or "") if node.level else node.module or ""
            names |= {base} | {f"{base}.{a.name}".replace("snnlib..", "snnlib.") for a in node.names}
    return names


@pytest.mark.parametrize("module", ["viz.py", "widgets.py", "runs.py", "neurons.py",
                                    "encoding.py", "profiles.py"])
def test_shared_modules_do_not_import_the_tiers(module):
    imported = _imports(SRC / module)
    tiers = sorted(n for n in imported if "tiers" in n)
    # runs.py reaches the registry only to migrate old records (lazily, in one function)
    assert tiers == ([] if module != "runs.py" else ["snnlib.tiers", "snnlib.tiers.TIERS"]), tiers


def test_the_import_check_sees_a_tier_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .tiers.conversion import normalise\n")
    assert "snnlib.tiers.conversion" in _imports(bad)


@pytest.mark.parametrize("name", list(TIERS))
def test_tier_modules_save_and_load_only_through_runs(name):
    for path in (SRC / "tiers" / name).glob("*.py"):
        text = path.read_text()
        for call in ("torch.load(", "np.load(", "np.savez(", "torch.save(", "os.replace(",
                     ".write_text("):
            assert call not in text, f"{path.name} calls {call} (use snnlib.runs)"
