"""book/_ext/execution_times.py: the record written after a build and the
table `make book` prints from it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "execution_times", ROOT / "book" / "_ext" / "execution_times.py")
execution_times = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(execution_times)

STARTED = 1000.0


def run(seconds, at, succeeded=True) -> dict:
    # myst-nb's ExecutionResult, as NbMetadataCollector keeps it
    return {"exec_data": {"runtime": seconds, "mtime": at, "method": "force",
                          "succeeded": succeeded, "error": None, "traceback": None}}


def test_the_record_lists_executed_documents_in_order():
    metadata = {"notebooks/02_b": run(20.0, 1020.0), "book/intro": {},
                "notebooks/01_a": run(10.0, 1010.0)}
    record = execution_times.execution_record(metadata, STARTED)
    assert record["build_started"] == STARTED
    assert [c["docname"] for c in record["chapters"]] == ["notebooks/01_a", "notebooks/02_b"]
    assert record["chapters"][0]["seconds"] == 10.0


def test_the_table_has_each_chapter_and_the_total():
    record = execution_times.execution_record(
        {"notebooks/01_a": run(10.04, 1010.0), "notebooks/02_b": run(20.0, 1020.0)}, STARTED)
    lines = execution_times.format_table(record).splitlines()
    assert lines[2].split() == ["notebooks/01_a", "10.0"]
    assert lines[-1].split() == ["total", "30.0"]


def test_a_chapter_from_an_earlier_build_is_named_and_left_out_of_the_total():
    record = execution_times.execution_record(
        {"notebooks/01_a": run(10.0, 500.0), "notebooks/02_b": run(20.0, 1020.0, succeeded=False)},
        STARTED)
    table = execution_times.format_table(record)
    assert "earlier" in table.splitlines()[2]
    assert "failed" in table.splitlines()[3]
    assert table.splitlines()[-1].split()[:2] == ["total", "20.0"]


def test_the_script_reads_the_file_and_tolerates_its_absence(tmp_path, capsys):
    path = tmp_path / "execution_times.json"
    assert execution_times.main([str(path)]) == 0
    assert "No execution times" in capsys.readouterr().out
    path.write_text(json.dumps(execution_times.execution_record(
        {"notebooks/01_a": run(3.0, 1003.0)}, STARTED)))
    assert execution_times.main([str(path)]) == 0
    assert "notebooks/01_a" in capsys.readouterr().out
