"""The comparison (snnlib.compare, `python -m snnlib compare`) against the records it reads.

The records are read here as plain JSON, independently of the module, and
every number of the comparison table must equal them to its printed
precision; the README's results section must be exactly what the records
generate.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import snnlib.__main__ as cli
from snnlib import compare as C
from snnlib import runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
README = ROOT / "README.md"

# Every baseline name the committed records hold, and whether it is a network without spikes.
# A new name fails the test below: check that is_non_spiking_baseline classifies it, then add it.
BASELINE_KINDS = {
    "chance": False,
    "logistic regression, grayscale pixels": True,
    "logistic regression, raw pixels (RGB)": True,
    "logistic regression, colour-opponent DoG of the pixels": True,
    "the CNN it was converted from": True,
    "R-STDP output on the random-weight twin": False,
    "R-STDP output on random (untrained) hidden weights": False,
    "logistic regression, hidden layer 1 spike counts": False,
    "logistic regression, hidden layer 2 spike counts": False,
    "logistic regression, hidden layers 1 + 2 spike counts": False,
    "logistic regression, random-weight layers 1 + 2 spike counts": False,
    "logistic regression, random-weight layer 2 spike counts": False,
    "logistic regression, random-weight layer's spike counts": False,
}


def raw(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


@pytest.fixture
def records():
    return C.load_records(RESULTS)


@pytest.fixture
def rows(records):
    return C.comparison_rows(records)


def table_by_label(rows) -> dict[str, dict[str, str]]:
    table = C.comparison_table(rows)
    return {row[0]: dict(zip(table.columns, row)) for row in table.rows}


# --- reading the records --------------------------------------------------------------------------
def test_every_committed_record_is_read(records):
    assert records.layout == "results" and dict(records.missing) == {}
    assert list(records.records) == [f.name for f in C.RECORD_FILES]


def test_one_row_per_record_and_per_variant(records, rows):
    expected = [f.name for f in C.RECORD_FILES]
    for f in C.RECORD_FILES:
        expected += [f"{f.name}/{v}" for v in raw(f.name).get("variants", {})]
    assert sorted(r.key for r in rows) == sorted(expected)
    assert len({r.label for r in rows}) == len(rows)


# --- the table equals the records ---------------------------------------------------------------
def _pct(cell: str) -> float:
    assert cell.endswith("%"), cell
    return float(cell.split("%")[0])


def _same_sig(cell: str, value: float, digits: int) -> bool:
    """The cell is ``value`` rounded to ``digits`` significant digits."""
    return math.isclose(float(cell.replace(",", "")), float(f"{value:.{digits - 1}e}"),
                        rel_tol=1e-12)


def _energy_pj(cell: str) -> float:
    number, unit = cell.split()
    return float(number) * {"pJ": 1, "nJ": 1e3, "µJ": 1e6, "mJ": 1e9, "J": 1e12}[unit]


def _check_row(cells: dict, *, accuracy, wall_s, images_per_s, steps, spikes, neurons, ac, mac):
    assert abs(_pct(cells["test accuracy"]) - 100 * accuracy) <= 0.005 + 1e-9
    if wall_s is None:
        assert cells["training wall time"] == "n/a"
    else:
        number, unit = cells["training wall time"].split()
        assert abs(float(number) * {"min": 60, "s": 1}[unit] - wall_s) <= 0.05 * (
            60 if unit == "min" else 1)
    assert _same_sig(cells["inference images/s"], images_per_s, 3)
    assert cells["time steps per image"] == ("n/a" if steps is None else str(steps))
    if neurons:
        assert _same_sig(cells["spikes per neuron per image"], spikes / neurons, 3)
    else:
        assert cells["spikes per neuron per image"] == "n/a"
    for column, value in (("accumulates (AC) per image", ac),
                          ("multiply-accumulates (MAC) per image", mac)):
        assert cells[column] == "0" if value == 0 else _same_sig(cells[column], value, 3)
    energy = 0.9 * ac + 4.6 * mac  # pJ, Horowitz 2014 (45 nm)
    assert math.isclose(_energy_pj(cells["energy per image"]), energy, rel_tol=0.005)


def _firing(firing: dict | None) -> tuple[float, int]:
    firing = firing or {}
    return (sum(layer["spikes_per_image"] for layer in firing.values()),
            sum(layer["neurons"] for layer in firing.values()))


def test_the_table_equals_the_records_to_its_printed_precision(rows):
    cells = table_by_label(rows)
    checked = 0
    for f in C.RECORD_FILES:
        d = raw(f.name)
        spikes, neurons = _firing(d["firing"])
        row = cells[f.label]
        _check_row(row, accuracy=d["accuracy"], wall_s=d["training_wall_s"],
                   images_per_s=d["inference"]["images_per_s"], steps=d["time_steps"],
                   spikes=spikes, neurons=neurons, ac=d["synaptic_events"]["accumulates"],
                   mac=d["synaptic_events"]["multiply_accumulates"])
        baselines = {k: v for k, v in d["baselines"].items() if BASELINE_KINDS[k]}
        best = max(baselines, key=baselines.get)
        cell = row["best non-spiking baseline (same run)"]
        assert cell.startswith(f"{100 * baselines[best]:.2f}%") and best in cell
        device, machine = d["provenance"]["device"], d["provenance"]["machine"]
        assert row["hardware"].startswith(device["type"].upper())
        assert f"{machine['cores']} cores" in row["hardware"]
        checked += 1
        for name, v in d.get("variants", {}).items():
            part = {"QCFS": "qcfs", "the CNN": "cnn"}
            key = next(p for prefix, p in part.items() if name.startswith(prefix))
            spiking = v["time_steps"] is not None
            section = d["specific"][key]
            if spiking and section.get("steps") not in (None, v["time_steps"]):
                # a shorter simulation of the section's network reports its own firing
                section = section.get("short_simulations", {}).get(str(v["time_steps"]), {})
            spikes, neurons = _firing(section.get("firing") if spiking else None)
            phases = {"qcfs": ("cnn_training", "qcfs_training", "qcfs_calibration"),
                      "cnn": ("cnn_training",)}[key]
            phases = [p for p in phases if p in d["wall_s"]]  # (older records: no calibration)
            _check_row(cells[f"tier 3: {name}"], accuracy=v["accuracy"],
                       wall_s=sum(d["wall_s"][p] for p in phases),
                       images_per_s=v["inference"]["images_per_s"], steps=v["time_steps"],
                       spikes=spikes, neurons=neurons, ac=v["synaptic_events"]["accumulates"],
                       mac=v["synaptic_events"]["multiply_accumulates"])
            checked += 1
    assert checked == len(rows) >= 4, "vacuous"


def test_every_baseline_name_is_classified():
    for f in C.RECORD_FILES:
        for name in raw(f.name)["baselines"]:
            assert name in BASELINE_KINDS, (
                f"{f.name}.json has a new baseline {name!r}: check is_non_spiking_baseline and add "
                "it to BASELINE_KINDS")
            assert C.is_non_spiking_baseline(name) is BASELINE_KINDS[name], name


def test_a_missing_field_is_shown_as_missing(tmp_path):
    d = raw("dog_lif")
    d["inference"]["images_per_s"] = None
    d["training_wall_s"] = None
    d["firing"] = {}
    (tmp_path / "dog_lif.json").write_text(json.dumps(d))
    rows = C.comparison_rows(C.load_records(tmp_path))
    row = table_by_label(rows)["tier 2: STDP layer, linear readout"]
    assert row["inference images/s"] == row["training wall time"] == "n/a"
    assert row["spikes per neuron per image"] == "n/a"


def test_per_class_accuracy_comes_from_the_confusion_matrices(rows):
    for r in rows:
        if r.confusion is None:
            continue
        m = [list(map(int, row)) for row in r.confusion]
        assert len(r.per_class) == len(m) == 10
        if sum(map(sum, m)) == r.test_images:  # every image decided: diagonal over row sums
            for k, row in enumerate(m):
                assert r.per_class[k] == pytest.approx(row[k] / sum(row))
    for f in C.RECORD_FILES:  # and it agrees with what the tiers recorded
        d = raw(f.name)
        row = next(r for r in rows if r.key == f.name)
        assert row.per_class == pytest.approx(d["per_class_accuracy"], abs=5e-4)


def test_with_every_record_missing_the_per_class_panel_says_so(tmp_path):
    # chapter 7 pointed at a folder without records: every figure drawn, none refuses
    empty = C.load_records(tmp_path, profile="book")
    assert not C.comparison_rows(empty) and len(empty.missing) == 3
    ax = C.plot_per_class([])
    assert [t.get_text() for t in ax.texts] == ["no record to compare"]
    with pytest.raises(ValueError, match="no row holds a per-class accuracy"):
        C.plot_per_class([replace(r, per_class=None) for r in C.comparison_rows(
            C.load_records(RESULTS))])


def test_a_network_that_can_stay_silent_keeps_its_recorded_per_class_accuracy(rows):
    d = raw("brian_stdp_diehl_cook")
    assert sum(map(sum, d["confusion"])) < d["test_images"], "the first version decides always?"
    row = next(r for r in rows if r.key == "brian_stdp_diehl_cook")
    assert row.per_class == pytest.approx(d["per_class_accuracy"])


def test_the_docstring_examples_run():
    import doctest

    result = doctest.testmod(C)
    assert result.failed == 0 and result.attempted >= 3


def test_energy_is_the_documented_sum():
    assert C.energy_pj(1e6, 1e5) == pytest.approx(0.9e6 + 4.6e5)
    assert C.energy_pj(10, 0, e_ac_pj=0.03, e_mac_pj=0.2) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="accumulates must be a finite number >= 0"):
        C.energy_pj(-1)


def test_the_pareto_front_keeps_only_undominated_points():
    assert C.pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.8, 0.8]) == [0, 2]
    assert C.pareto_front([3, 1, 2], [0.9, 0.1, 0.5]) == [1, 2, 0]
    assert C.pareto_front([1, 1], [0.2, 0.3]) == [1]  # as cheap and more accurate
    assert C.pareto_front([], []) == []
    with pytest.raises(ValueError, match="same length"):
        C.pareto_front([1], [])


def test_shared_confusions_rank_the_mistakes_every_network_makes(rows):
    tiers = [r for r in rows if r.key in ("brian_stdp", "dog_lif", "conversion")]
    table = C.shared_confusions(tiers, top=3)
    assert len(table.rows) == 3 and len(table.columns) == 4
    lows = [min(float(c.rstrip("%")) for c in row[1:]) for row in table.rows]
    assert lows == sorted(lows, reverse=True) and lows[0] > 0, "vacuous"
    true, decision = table.rows[0][0].split(" -> ")
    names = list(tiers[0].class_names)
    for k, r in enumerate(tiers):  # the first row, from the confusion matrix itself
        row = r.confusion[names.index(true)]
        assert float(table.rows[0][k + 1].rstrip("%")) == pytest.approx(
            100 * row[names.index(decision)] / sum(row), abs=0.05)


def test_the_plausibility_table_answers_every_question_for_every_tier():
    from snnlib.tiers import TIERS

    assert list(C.PLAUSIBILITY) == [
        "spikes", "continuous time", "local learning", "no labels in hidden layers",
        "where supervision enters", "reward instead of error", "inhibition", "Dale's law",
        "weight sharing", "signed or clipped weights", "conversion from backprop"]
    for question, cells in C.PLAUSIBILITY.items():
        assert list(cells) == list(TIERS), question
        assert all(c.answer and len(c.why) > 10 for c in cells.values()), question
    table = C.plausibility_table(why=True)
    assert len(table.columns) == 1 + len(TIERS) and len(table.rows) == len(C.PLAUSIBILITY)


def test_tables_render_as_markdown_html_and_text(rows):
    table = C.comparison_table(rows)
    md = table.to_markdown().splitlines()
    assert md[0].count("|") == len(table.columns) + 1 and md[1].startswith("|---")
    assert len([line for line in md if line.startswith("| tier")]) == len(rows)
    assert "<table>" in table._repr_html_() and "&amp;" in table._repr_html_()  # escaped
    assert table.to_text().splitlines()[0] == table.title


def test_figures_are_written(rows, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    paths = C.write_figures(rows, tmp_path)
    assert [p.name for p in paths] == ["accuracy_vs_energy.png", "accuracy_vs_training_time.png",
                                       "per_class_accuracy.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_the_energy_figure_draws_the_pareto_front(rows):
    import matplotlib.pyplot as plt

    ax = C.plot_accuracy_vs_energy(rows)
    front = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    energies = [r.energy_pj / 1e6 for r in rows]
    expected = C.pareto_front(energies, [r.accuracy for r in rows])
    assert len(front) == 1 and list(front[0].get_xdata()) == pytest.approx(
        [energies[k] for k in expected])
    assert 2 <= len(expected) < len(rows), "vacuous"
    assert ax.get_xscale() == "log"
    plt.close(ax.figure)


# --- missing and older records ------------------------------------------------------------------
def test_a_missing_record_names_the_tier_and_the_command(tmp_path, capsys):
    for name in ("brian_stdp", "conversion"):
        shutil.copy(RESULTS / f"{name}.json", tmp_path)
    records = C.load_records(tmp_path)
    assert list(records.missing) == ["dog_lif"]  # the optional first version of tier 1 is no row
    message = records.missing["dog_lif"]
    assert message.startswith("tier 2 (dog_lif): no record at ")
    assert "`python -m snnlib run dog_lif --profile full`" in message
    assert {r.tier for r in C.comparison_rows(records)} == {"brian_stdp", "conversion"}
    with pytest.raises(runs.RecordError, match=re.escape(message)):
        C.readme_results(records)
    assert cli.main(["compare", "--records", str(tmp_path), "--no-figures"]) == 1
    out, err = capsys.readouterr()
    assert "tier 3: converted CNN" in out and "tier 2" not in out
    assert f"missing: {message}" in err and "Traceback" not in err


def test_an_unreadable_or_unknown_record_names_the_tier_and_the_command(tmp_path):
    for name in ("brian_stdp", "dog_lif"):
        shutil.copy(RESULTS / f"{name}.json", tmp_path)
    (tmp_path / "conversion.json").write_text(json.dumps({**raw("conversion"), "format": 9}))
    message = C.load_records(tmp_path).missing["conversion"]
    assert message.startswith("tier 3 (conversion): ") and "format 9" in message
    assert message.endswith("make it again with `python -m snnlib run conversion --profile full`.")
    (tmp_path / "conversion.json").write_text(json.dumps(raw("dog_lif")))  # another tier's
    assert "not 'conversion''s" in C.load_records(tmp_path).missing["conversion"]


def test_an_older_record_is_migrated_not_refused(tmp_path):
    legacy = Path(__file__).parent / "records_v1" / "dog_lif.json"
    shutil.copy(legacy, tmp_path / "dog_lif.json")
    records = C.load_records(tmp_path)
    assert "dog_lif" in records.records and records.records["dog_lif"].accuracy == json.loads(
        legacy.read_text())["accuracy"]


def test_a_runs_folder_is_read_at_a_profile(tmp_path):
    (tmp_path / "dog_lif" / "ci").mkdir(parents=True)
    shutil.copy(RESULTS / "dog_lif.json", tmp_path / "dog_lif" / "ci" / "tier_record.json")
    records = C.load_records(tmp_path, profile="ci")
    assert records.layout == "runs" and records.profile == "ci"
    assert list(records.records) == ["dog_lif"]
    assert "`python -m snnlib run brian_stdp --profile ci`" in records.missing["brian_stdp"]
    assert "brian_stdp_diehl_cook" not in records.missing  # not a runs folder's record


def test_a_missing_folder_is_a_clean_error(tmp_path, capsys):
    with pytest.raises(runs.RecordError, match="does not exist"):
        C.load_records(tmp_path / "nowhere")
    assert cli.main(["compare", "--records", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere does not exist" in err
    assert "Traceback" not in err
    (tmp_path / "file").write_text("")
    assert cli.main(["compare", "--records", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err


# --- the README ---------------------------------------------------------------------------------
def _section(text: str) -> str:
    return text[text.index(C.README_BEGIN):text.index(C.README_END)]


def test_the_readme_results_are_the_records(records):
    diff = C.check_readme(README.read_text(), records)
    assert not diff, (
        "README.md's results section and the records in results/ disagree; regenerate it with "
        f"`{C.WRITE_README_COMMAND}`:\n" + "\n".join(diff[:40]))


def test_a_doctored_readme_fails_the_check(records):
    text = README.read_text()
    section = _section(text)
    numbers = list(re.finditer(r"\d+\.\d\d%", section))
    assert len(numbers) > 20, "vacuous"
    for match in (numbers[0], numbers[len(numbers) // 2], numbers[-1]):
        digit = match.group()[-2]
        doctored = match.group()[:-2] + str((int(digit) + 1) % 10) + "%"
        start = text.index(C.README_BEGIN) + match.start()
        bad = text[:start] + doctored + text[start + len(match.group()):]
        diff = C.check_readme(bad, records)
        assert any(line.startswith("-") and doctored in line for line in diff), doctored


def test_the_generated_readme_passes_and_is_idempotent(tmp_path, records):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{C.README_BEGIN}\nold numbers: 12.34%\n{C.README_END}\n\nrest\n")
    assert C.check_readme(readme.read_text(), records)
    assert C.write_readme(readme, records) is True
    assert C.check_readme(readme.read_text(), records) == []
    assert C.write_readme(readme, records) is False
    text = readme.read_text()
    assert text.startswith("# title\n\n") and text.endswith(f"{C.README_END}\n\nrest\n")
    assert "12.34%" not in text


def test_a_readme_without_markers_is_refused(tmp_path, records):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="results:begin"):
        C.write_readme(readme, records)


def test_the_cli_prints_the_table_writes_figures_and_the_readme(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"{C.README_BEGIN}\n{C.README_END}\n")
    out_dir = tmp_path / "out"
    assert cli.main(["compare", "--records", str(RESULTS), "--out", str(out_dir),
                     "--write-readme", "--readme", str(readme)]) == 0
    out = capsys.readouterr().out
    for f in C.RECORD_FILES:
        assert f"{100 * raw(f.name)['accuracy']:.2f}%" in out
    assert "0.9 pJ per accumulate + 4.6 pJ per multiply-accumulate" in out
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "accuracy_vs_energy.png", "accuracy_vs_training_time.png", "comparison.md",
        "per_class_accuracy.png"]
    assert C.check_readme(readme.read_text(), C.load_records(RESULTS)) == []


def test_the_readme_is_not_written_from_a_runs_folder(tmp_path, capsys):
    (tmp_path / "dog_lif" / "ci").mkdir(parents=True)
    shutil.copy(RESULTS / "dog_lif.json", tmp_path / "dog_lif" / "ci" / "tier_record.json")
    assert cli.main(["compare", "--records", str(tmp_path), "--profile", "ci", "--no-figures",
                     "--write-readme", "--readme", str(tmp_path / "README.md")]) == 2
    assert "--write-readme reads a results folder" in capsys.readouterr().err


def test_a_short_simulation_row_reads_its_own_confusion_and_firing(tmp_path):
    """Tier 3's QCFS network simulated for T = 4 on its own is a row with its own numbers, not
    those of the longer simulation of the same network."""
    from snnlib.tiers.conversion import record as R

    legacy = runs.load_record(Path(__file__).parent / "records_v1" / "conversion.json")
    d = runs.legacy_view(legacy, R.MOVES)
    q = d["qcfs"]
    confusion = [[0] * 10 for _ in range(10)]
    for k in range(10):
        confusion[k][k] = 400
        confusion[k][(k + 1) % 10] = 600
    firing = {name: {**layer, "spikes_per_image": layer["spikes_per_image"] / 8}
              for name, layer in q["firing"].items()}
    q["short_simulations"] = {"4": {
        "accuracy": 0.4, "operations_per_image": {**q["operations_per_image"], "accumulates": 1e6},
        "images_per_s": 100.0, "what_images_per_s": "images simulated for 4 steps per second",
        "firing": firing, "per_class_accuracy": [0.4] * 10, "confusion": confusion,
        "wall_s": 100.0}}
    runs.save_record(R.to_record(d, device="cpu", provenance=legacy.provenance),
                     tmp_path / "conversion.json")
    rows = {r.label: r for r in C.comparison_rows(C.load_records(tmp_path))}
    short, long = rows["tier 3: QCFS fine-tuned, T = 4"], rows["tier 3: QCFS fine-tuned, T = 32"]
    assert (short.accuracy, short.time_steps, short.accumulates) == (0.4, 4, 1e6)
    assert short.confusion == tuple(map(tuple, confusion)) != long.confusion
    assert short.spikes_per_neuron == pytest.approx(long.spikes_per_neuron / 8)
    assert short.training_wall_s == long.training_wall_s  # the same network, trained once


def test_phases_that_ran_side_by_side_are_named_as_overlapping(records):
    from dataclasses import replace

    tier1 = records.records["brian_stdp"]
    alone = {k: v for k, v in tier1.specific.items() if k != "side_by_side"}
    assert "side by side" not in C._phases(replace(tier1, specific=alone))
    together = ["output_stdp_training", "output_random_training"]
    rec = replace(tier1, specific={**alone, "side_by_side": {"phases": together,
                                                            "what": "at the same time"}})
    text = C._phases(rec)
    assert text.endswith("output_stdp_training and output_random_training ran side by side (at "
                         "the same time, one process per core), so their times overlap.")
    assert f"output_stdp_training {rec.wall_s['output_stdp_training'] / 60:.1f}" in text


def test_the_readme_says_when_tier_2_read_each_test_image_with_its_mirror_image(tmp_path):
    for f in RESULTS.glob("*.json"):  # every record, then tier 2's changed
        shutil.copy(f, tmp_path / f.name)
    d = raw("dog_lif")
    d["specific"].pop("test_views", None)  # records before mirror images: no sentence
    (tmp_path / "dog_lif.json").write_text(json.dumps(d))
    assert "mirror image" not in C.readme_results(C.load_records(tmp_path))
    d["specific"]["test_views"] = ("each test image and its left-right mirror image: the "
                                   "readout's class probabilities averaged over the two")
    (tmp_path / "dog_lif.json").write_text(json.dumps(d))
    text = C.readme_results(C.load_records(tmp_path))
    assert "each test image together with its mirror image (class probabilities averaged" in text


def test_the_readme_names_tier_2s_push_pull_inhibition_when_the_record_has_it(tmp_path):
    for f in RESULTS.glob("*.json"):  # every record, then tier 2's changed
        shutil.copy(f, tmp_path / f.name)
    d = raw("dog_lif")
    for value, said in ((0.0, False), (1.0, True), (None, False)):  # None: records before it
        if value is None:
            d["parameters"].pop("push_pull", None)
        else:
            d["parameters"]["push_pull"] = value
        (tmp_path / "dog_lif.json").write_text(json.dumps(d))
        text = C.readme_results(C.load_records(tmp_path))
        assert ("steps of 2 ms, push-pull inhibition 1) that learned by STDP" in text) is said
        assert ("push-pull" in text) is said
