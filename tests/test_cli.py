from __future__ import annotations

import pytest

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


def test_record_prints_an_old_tier_3_record_without_qcfs_or_specific_results(tmp_path,
                                                                            capsys):
    import json
    from pathlib import Path

    legacy = json.loads((Path(__file__).parent / "records_v1" / "conversion.json").read_text())
    del legacy["qcfs"]  # records from before the QCFS copy
    (tmp_path / "conversion.json").write_text(json.dumps(legacy))
    assert cli.main(["record", str(tmp_path / "conversion.json")]) == 0
    out = capsys.readouterr().out
    assert "SNN accuracy by steps" in out and "QCFS" not in out
    rec = json.loads((Path(__file__).parent.parent / "results" / "brian_stdp.json").read_text())
    rec["specific"] = {}
    (tmp_path / "brian_stdp.json").write_text(json.dumps(rec))
    assert cli.main(["record", str(tmp_path / "brian_stdp.json")]) == 0
    out = capsys.readouterr().out
    assert "tier 1 (brian_stdp)" in out and "the tier's own results are left out" in out


def test_another_seed_runs_in_its_own_folder_and_leaves_the_books_record(tmp_path,
                                                                          monkeypatch, capsys):
    # its caches (keyed by the seed) would otherwise replace the default seed's, and its
    # full-profile record the book's results/TIER.json
    from pathlib import Path

    from snnlib import runs
    from snnlib.tiers import TIERS

    record = runs.load_record(Path(__file__).parent.parent / "results" / "dog_lif.json")
    seen = []

    def fake(profile, *, out_dir, seed, **kw):
        seen.append((out_dir, seed))
        return record, {}

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(TIERS["dog_lif"].module(), "run_tier", fake)
    for extra in (["--seed", "7"], ["--seed", "7", "--out", "mine"], []):
        assert cli.main(["run", "dog_lif", "--profile", "full", *extra]) == 0
        assert (tmp_path / "results" / "dog_lif.json").exists() == (extra == [])
    assert seen == [("runs/dog_lif/full-seed7", 7), ("mine", 7),
                    ("runs/dog_lif/full", cli.DEFAULT_SEED)]
    assert cli.main(["run", "dog_lif", "--profile", "full", "--seed", "7", "--results",
                     "r.json"]) == 0
    assert (tmp_path / "r.json").exists()


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


# --- every error of the command line: one line, exit status 2, no traceback -------------------

def _a_file(tmp_path):
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def _broken_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    return path


CLI_ERRORS = [
    # (argv from tmp_path; environment; what the one line must name, {tmp} for tmp_path)
    (lambda t: ["run", "dog_lif", "--profile", "ci", "--out", "/dev/null/x"], {},
     ["--out", "/dev/null"]),
    (lambda t: ["run", "dog_lif", "--profile", "ci", "--out", str(_a_file(t))], {},
     ["--out", "a_file"]),
    (lambda t: ["run", "dog_lif", "--profile", "ci", "--results", "/dev/null/r.json"], {},
     ["--results", "/dev/null"]),
    (lambda t: ["run", "dog_lif", "--seed", "-5"], {}, ["--seed", "-5"]),
    (lambda t: ["run", "dog_lif", "--seed", "1.5"], {}, ["--seed", "1.5"]),
    (lambda t: ["run", "dog_lif", "--seed", str(2**40)], {}, ["--seed"]),
    (lambda t: ["run", "tier9"], {}, ["tier9"]),
    (lambda t: ["run", "dog_lif", "--profile", "huge"], {}, ["huge"]),
    (lambda t: ["run", "dog_lif", "--profile", "ci", "--device", "tpu"], {}, ["tpu"]),
    (lambda t: ["frobnicate"], {}, ["frobnicate"]),
    (lambda t: ["data", "--no-download"], {"SNNLIB_DATA_DIR": "FILE"}, ["SNNLIB_DATA_DIR"]),
    (lambda t: ["data", "--dir", str(_a_file(t))], {}, ["--dir", "a_file"]),
    (lambda t: ["data", "--dir", str(t / "none"), "--no-download"], {}, ["{tmp}/none"]),
    (lambda t: ["record", str(t)], {}, ["{tmp}", "is not readable JSON"]),
    (lambda t: ["record", str(_broken_json(t))], {}, ["broken.json"]),
    (lambda t: ["migrate", str(t / "missing.json")], {}, ["missing.json"]),
    (lambda t: ["profile", "huge"], {}, ["huge"]),
]


@pytest.mark.parametrize("make_argv, environment, names", CLI_ERRORS)
def test_every_error_is_one_line_naming_the_option_or_file(make_argv, environment, names,
                                                           tmp_path, capsys, monkeypatch):
    from snnlib.tiers import TIERS

    def no_run(*args, **kwargs):
        raise AssertionError("the tier ran: the command line should have been refused first")

    for tier in TIERS.values():  # a refused command never starts a tier
        monkeypatch.setattr(tier.module(), "run_tier", no_run)
    for name, value in environment.items():
        monkeypatch.setenv(name, str(_a_file(tmp_path)) if value == "FILE" else value)
    argv = make_argv(tmp_path)
    assert cli.main(argv) == 2, argv
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    for name in names:
        name = name.replace("{tmp}", str(tmp_path))
        assert name in lines[0], (argv, name, lines[0])


def test_debug_shows_the_traceback_and_an_interrupt_is_one_line(monkeypatch, capsys):
    with pytest.raises(ValueError, match="Unknown profile 'huge'"):
        cli.main(["--debug", "profile", "huge"])

    def interrupted(name):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.profiles, "get_profile", interrupted)
    assert cli.main(["profile", "ci"]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: interrupted")
    with pytest.raises(KeyboardInterrupt):
        cli.main(["--debug", "profile", "ci"])
