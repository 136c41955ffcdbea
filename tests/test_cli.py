from __future__ import annotations

import snnlib.__main__ as cli
from snnlib import data as D


def test_profile_command_prints_the_sizes(capsys):
    assert cli.main(["profile", "ci"]) == 0
    assert "n_test_per_class: 10" in capsys.readouterr().out


def test_data_command_fails_cleanly_offline(tmp_path, capsys):
    assert cli.main(["data", "--dir", str(tmp_path), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 was not found") and D.DATA_DIR_ENV in err
    assert "Traceback" not in err


def test_bad_profile_is_a_clean_error(capsys):
    assert cli.main(["profile", "huge"]) == 2
    assert "choose one of ci, book, full" in capsys.readouterr().err
