"""benchmarks/cnn_techniques.py's ``store``, through which every benchmark's ``--append``
keeps its runs: one row per name, the command line as it can be pasted, and where it ran."""

import json
import shlex

import pytest

from _benchmarks import load_benchmark
from snnlib import runs


@pytest.fixture
def techniques(monkeypatch):
    return load_benchmark("cnn_techniques", monkeypatch)


def test_a_stored_run_replaces_its_namesake_and_says_which_cpu_ran_it(techniques, tmp_path,
                                                                      monkeypatch):
    cpu = {"model": "a test CPU", "family": "1", "model_number": "2", "flags": ["avx2"]}
    monkeypatch.setattr(runs, "cpu_description", lambda: cpu)
    path = tmp_path / "runs.json"
    command = ["python", "benchmarks/x.py", "--name", "a b"]
    techniques.store(path, "a", {"val_accuracy": 0.5}, command)
    techniques.store(path, "b", {"val_accuracy": 0.6}, ["python", "benchmarks/x.py"])
    techniques.store(path, "a", {"val_accuracy": 0.7}, command)
    stored = json.loads(path.read_text())
    assert [(r["name"], r["val_accuracy"]) for r in stored] == [("b", 0.6), ("a", 0.7)]
    assert shlex.split(stored[-1]["command"]) == command
    assert stored[-1]["command"].endswith("--name 'a b'")
    prov = stored[-1]["provenance"]
    assert prov["machine"]["cpu"] == cpu and prov["device"]["name"] == "a test CPU"
    assert prov["git_commit"] == runs.git_commit()
    assert [p.name for p in tmp_path.iterdir()] == ["runs.json"]  # no temporary file left
