from __future__ import annotations

import snnlib.__main__ as cli
from snnlib import data as D


def test_profile_command_prints_the_sizes(capsys):
    assert cli.main(["profile", "ci"]) == 0
    out = capsys.readouterr().out
    assert "n_test_per_class: 10" in out and "conversion.width: 8" in out


def test_data_command_fails_cleanly_offline(tmp_path, capsys):
    assert cli.main(["data", "--dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 was not found") and D.DATA_DIR_ENV in err
    assert "Traceback" not in err


def test_bad_profile_is_a_clean_error(capsys):
    assert cli.main(["profile", "huge"]) == 2
    assert "choose one of ci, book, full" in capsys.readouterr().err


def test_run_offers_every_registered_tier_and_refuses_a_device_it_cannot_use(capsys):
    from snnlib.tiers import TIERS

    for name in TIERS:  # argparse accepts the name (the profile is wrong: a clean error, exit 2)
        assert cli.main(["run", name, "--profile", "huge"]) == 2
        assert "choose one of ci, book, full" in capsys.readouterr().err
    assert cli.main(["run", "brian_stdp", "--profile", "ci", "--device", "tpu"]) == 2
    assert "use 'cpu', 'cuda' or 'cuda:N'" in capsys.readouterr().err
    assert cli.main(["run", "dog_lif", "--profile", "ci", "--hidden-only"]) == 2
    assert "--hidden-only is for tier 1" in capsys.readouterr().err


def test_record_command_prints_a_migrated_record(capsys):
    from pathlib import Path

    legacy = Path(__file__).parent / "records_v1" / "dog_lif.json"
    assert cli.main(["record", str(legacy)]) == 0
    out = capsys.readouterr().out
    assert "tier 2 (dog_lif), full profile, on 10000 test images" in out and "0.6811" in out


def test_a_missing_record_is_one_clean_line(tmp_path, capsys):
    assert cli.main(["record", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "none.json does not exist" in err and "python -m snnlib run" in err
    assert "Traceback" not in err


def test_hidden_only_prints_tier_1s_layers(monkeypatch, capsys, tmp_path):
    import numpy as np

    from snnlib.tiers import brian_stdp

    feats = {"f1": np.zeros((4, 3)), "spikes1": np.full(4, 100.0), "spikes2": np.full(4, 50.0),
             "wall_s": 2.0, "volley_fraction": None}
    details = {"layers": {"stdp": {"wall_s": 12.0}},
               "features": {"stdp": {"train": feats, "test": {**feats, "volley_fraction": 0.25}}}}
    seen = {}

    def fake_run_tier(profile, **kwargs):
        seen.update(kwargs)
        return None, details

    monkeypatch.setattr(brian_stdp, "run_tier", fake_run_tier)
    assert cli.main(["run", "brian_stdp", "--profile", "ci", "--hidden-only",
                     "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert seen["hidden_only"] is True
    assert "hidden layers learned in 12.0 s" in out
    assert "test images (4): layer 1 100 and layer 2 50 spikes per image, layer-2 volleys in " \
           "25.0% of the images; 2.0 images/s" in out
