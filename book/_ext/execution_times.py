"""How long each chapter took to execute: a Sphinx extension and a script.

myst-nb keeps every notebook's execution result in the Sphinx environment
(run time in seconds, method, success, when it ran): the data its
``{nb-exec-table}`` directive shows inside a page. When a build ends, this
extension writes that data to ``execution_times.json`` beside the HTML folder
(``_build/``). Run as a script, it prints the file as a table of chapters,
seconds and the total; ``make book`` does so after every build:

    python book/_ext/execution_times.py [_build/execution_times.json]

A chapter that the build did not execute again (Sphinx only reads pages that
changed) keeps the time of the build that did, and the table says so.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

FILE_NAME = "execution_times.json"
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "_build" / FILE_NAME


def execution_record(nb_metadata: dict, build_started: float) -> dict:
    """The JSON record from myst-nb's per-document metadata."""
    chapters = []
    for docname in sorted(nb_metadata):
        run = nb_metadata[docname].get("exec_data")
        if run:
            chapters.append({
                "docname": docname,
                "seconds": run.get("runtime"),
                "method": run.get("method"),
                "succeeded": run.get("succeeded"),
                "executed_at": run.get("mtime"),
            })
    return {"build_started": build_started, "chapters": chapters}


def write_record(build_started: float, app, exception) -> None:
    from myst_nb.sphinx_ import NbMetadataCollector

    record = execution_record(NbMetadataCollector.get_doc_data(app.env), build_started)
    path = Path(app.outdir).parent / FILE_NAME
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def format_table(record: dict) -> str:
    """The chapters, their execution time in seconds, and the total of this build."""
    chapters = record["chapters"]
    if not chapters:
        return "No chapter was executed."
    width = max(len(c["docname"]) for c in chapters) + 2
    lines = ["Execution time of each chapter:", f"  {'chapter':<{width}}{'seconds':>9}"]
    total, earlier = 0.0, 0
    for chapter in chapters:
        seconds = chapter["seconds"]
        notes = []
        if not chapter["succeeded"]:
            notes.append("failed")
        if (chapter["executed_at"] or 0) < record["build_started"]:
            notes.append("not executed by this build: time of an earlier one")
            earlier += 1
        elif seconds is not None:
            total += seconds
        shown = "-" if seconds is None else f"{seconds:.1f}"
        lines.append(f"  {chapter['docname']:<{width}}{shown:>9}  {', '.join(notes)}".rstrip())
    lines.append(f"  {'total':<{width}}{total:>9.1f}"
                 + (f"  (without the {earlier} of earlier builds)" if earlier else ""))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    if not path.is_file():
        print(f"No execution times recorded ({path} is missing).")
        return 0
    print(format_table(json.loads(path.read_text(encoding="utf-8"))))
    return 0


def setup(app):
    # Sphinx calls setup() as the build starts, before any notebook is executed.
    app.connect("build-finished", functools.partial(write_record, time.time()))
    return {"parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
