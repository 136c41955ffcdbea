"""Chapter 6's tables and figures (snnlib.tiers.conversion.report and .plots), on the committed
full-profile record: every table holds the record's numbers formatted as the chapter shows
them, every figure draws exactly the record's curves, the spike raster draws exactly the
recorded spikes, and the filter images are the kernels scaled as documented."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from snnlib import metrics, runs, viz  # noqa: E402
from snnlib.tiers import conversion as C  # noqa: E402
from snnlib.tiers.conversion import plots, report  # noqa: E402

RECORD = Path(__file__).resolve().parent / "records_v1" / "conversion.json"
"""A full-profile record of tier 3 kept for the tests (the one of commit 5c83170, in the
first format; loading migrates it): its numbers are fixed, whatever results/ holds now."""


@pytest.fixture
def record() -> runs.TierRecord:
    """A full-profile record of tier 3 (it has every section: QCFS, bfloat16 CNN, float32
    checks), loaded from :data:`RECORD`."""
    return runs.load_record(RECORD, tier="conversion")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _float32_run(rec: runs.TierRecord) -> runs.TierRecord:
    """The record as a reproducible (float32) run writes it: no bfloat16 CNN, no float32 checks."""
    specific = copy.deepcopy(rec.specific)
    specific["cnn"]["bfloat16"] = None
    specific["variants"]["accuracy_vs_steps"].pop("analog, p99.99, float32")
    specific["qcfs"]["float32_check"] = None
    parameters = {**rec.parameters, "snn_bf16": False}
    return dataclasses.replace(rec, specific=specific, parameters=parameters)


def _pct(x: float) -> str:
    return f"{x:.1%}"


# --- report -----------------------------------------------------------------------------------
def test_layer_names_follow_the_convolutions(record):
    assert report.layer_names(record) == [f"conv{k}" for k in range(1, 7)]
    whitened = dataclasses.replace(record, parameters={
        **record.parameters, "cnn": {**record.parameters["cnn"], "whitening_px": 2}})
    assert report.layer_names(whitened) == ["whitening"] + [f"conv{k}" for k in range(1, 7)]


def test_layer_names_match_the_spiking_layers_of_each_design():
    """One name per layer of IF neurons that the converted network has, whitening included."""
    from snnlib import profiles
    from snnlib.tiers.conversion.record import spiking_layer_names

    for name in ("ci", "full"):
        cp, _ = C.params_for_profile(profiles.get_profile(name))
        net, _ = C.normalise(C.fold_batchnorm(C.ConvNet(cp).eval()), torch.rand(4, 3, 32, 32))
        assert len(spiking_layer_names(dataclasses.asdict(cp))) == len(C.relu_layers(net))


def test_network_lines_name_the_arithmetic_and_no_machine_value():
    from snnlib import profiles

    ci = profiles.get_profile("ci")
    cp, tp = C.params_for_profile(ci)
    text = report.network_lines(cp, tp, C.numerics.numerics_for_profile(ci))
    assert text == ("CNN: convolutions of 8, 8, 16, 16, 32, 32 channels, batch norm, ReLU, 2 x 2 "
                    "average pooling after convolutions 2, 4, 6, one linear layer\n"
                    "training: 1 epoch, batch 128, one-cycle SGD up to lr 0.1, crops of up to 4 "
                    "pixels and random flips; "
                    "arithmetic: float32, 2 threads, deterministic algorithms, CPU kernels capped "
                    "at AVX2")
    full = profiles.get_profile("full")
    cp, tp = C.params_for_profile(full)
    text = report.network_lines(cp, tp, C.numerics.numerics_for_profile(full, "cpu"))
    assert text.startswith(
        "CNN: a fixed first layer that whitens 2 x 2 patches (ON and OFF copies, 24 channels), "
        "convolutions of 64, 64, 256, 256, 256, 256 channels (starting as identities), batch "
        "norm without a learned scale, ReLU, 2 x 2 max pooling straight after convolutions 1, "
        "3, 5, global max pooling, one linear layer (logits times 0.111)\ntraining: 8 "
        "epochs, batch 1024, SGD on airbench's linear schedule up to lr 1.5 (the convolutions' "
        "filters by Muon up to lr 0.17, momentum 0.6), crops of up to 2 "
        "pixels and alternating flips, label smoothing 0.2, momentum 0.85 throughout, "
        "batch-norm biases learning 64 times faster, Lookahead; arithmetic: ")
    assert text.count("bfloat16") <= 1  # said once, by the arithmetic, where it is used


def test_lines_quote_the_record(record):
    s = record.specific
    cnn, snn, q = s["cnn"], s["snn"], s["qcfs"]
    assert report.training_line(record) == (
        f"trained on 50000 images in {cnn['training']['wall_s']:.0f} s; CNN test accuracy "
        f"{_pct(cnn['accuracy'])} on 10000 test images")
    assert report.smallest_steps_line(record) == (
        f"smallest T within 1 point of the CNN: {snn['smallest_steps_within_1_point']}; "
        f"within 0.1 point: {snn['smallest_steps_within_0.1_point']}")
    ratio = snn["operations_per_image"]["accumulates"] / cnn["multiply_accumulates_per_image"]
    assert report.accumulates_line(record) == (
        f"accumulates per CNN multiply-accumulate: {ratio:.1f}")
    assert report.qcfs_training_line(record).startswith(
        f"fine-tuned for {q['training']['epochs']} epochs in ")
    assert report.qcfs_steps_line(record).endswith(
        f"ReLU CNN {q['smallest_steps_within_1_point_of_relu_cnn']}")


def _column(table: viz.DisplayTable, name: str) -> list[str]:
    """A DisplayTable's column as it shows it."""
    k = table.columns.index(name)
    return [row[k] for row in table.cells]


def _row(table: viz.DisplayTable, label: str) -> list[str]:
    """A DisplayTable's row as it shows it."""
    return list(table.cells[table.index.index(label)])


def test_accuracy_table_has_a_row_per_steps_t_and_a_format_per_column(record):
    snn = record.specific["snn"]
    table = report.accuracy_table(record)
    assert isinstance(table, viz.DisplayTable)
    assert table.index == tuple(snn["accuracy_vs_steps"]) and table.index_name == "steps T"
    assert table.columns == ("SNN accuracy", "loss vs CNN (points)")
    assert _column(table, "SNN accuracy") == [_pct(a) for a in snn["accuracy_vs_steps"].values()]
    assert _column(table, "loss vs CNN (points)") == [
        f"{p:.1f}" for p in snn["loss_vs_cnn_points"].values()]
    assert str(table) == (
        "steps T  SNN accuracy  loss vs CNN (points)\n"
        "-------  ------------  --------------------\n"
        "1               10.0%                  78.7\n"
        "2               10.0%                  78.7\n"
        "4               12.5%                  76.2\n"
        "8               22.7%                  65.9\n"
        "16              63.1%                  25.6\n"
        "32              83.1%                   5.5\n"
        "64              87.1%                   1.6\n"
        "128             88.2%                   0.5\n"
        "256             88.5%                   0.2")
    html = table._repr_html_()
    assert '<th scope="row">256</th><td style="text-align: right">88.5%</td>' in html
    assert '<td style="text-align: right">0.2</td>' in html


def test_lambda_table_has_a_row_per_layer(record):
    table = report.lambda_table(record)
    assert table.index == tuple(report.layer_names(record)) and table.index_name == "layer"
    lambdas = record.specific["normalisation_lambdas"]
    assert _column(table, "p99.99") == [f"{x:.2f}" for x in lambdas["p99.99"]]
    assert str(table) == (
        "λ: the activation each layer's threshold stands for\n"
        "layer  p99.9  p99.99   p100\n"
        "-----  -----  ------  -----\n"
        "conv1   1.69    2.37   4.73\n"
        "conv2   1.80    2.76   6.68\n"
        "conv3   1.09    1.56   3.37\n"
        "conv4   1.04    1.48   3.00\n"
        "conv5   0.72    1.04   2.21\n"
        "conv6   2.21    3.65  13.02")


def test_variants_table_has_a_row_per_variant_and_a_column_per_steps_t(record):
    var = record.specific["variants"]
    table = report.variants_table(record)
    assert table.index == tuple(var["accuracy_vs_steps"])
    assert table.columns == ("1", "2", "4", "8", "16", "32", "64", "128", "256")
    for name, curve in var["accuracy_vs_steps"].items():
        assert _row(table, name) == [_pct(a) for a in curve.values()]
    assert _row(table, "poisson, p99.99") == [
        "10.0%", "10.0%", "11.5%", "12.0%", "17.2%", "32.7%", "56.1%", "72.1%", "81.4%"]
    assert table.caption == f"accuracy on 1000 test images; CNN {_pct(var['cnn_accuracy'])}"
    assert table.caption == "accuracy on 1000 test images; CNN 89.2%"


def test_float32_checks_are_quoted_only_when_the_run_was_in_bfloat16(record):
    var = record.specific["variants"]
    bf, f32 = var["accuracy_vs_steps"]["analog, p99.99"], var["accuracy_vs_steps"][
        "analog, p99.99, float32"]
    gap = max(abs(bf[t] - f32[t]) for t in f32)
    assert report.float32_gap_line(record).endswith(f"at most {100 * gap:.1f} points at any T")
    assert report.qcfs_float32_line(record).startswith("QCFS simulations run in bfloat16")
    plain = _float32_run(record)
    assert report.float32_gap_line(plain) is None and report.qcfs_float32_line(plain) is None


def test_costs_table_names_the_precision_each_row_ran_in(record):
    cnn, snn = record.specific["cnn"], record.specific["snn"]
    ops = snn["operations_per_image"]
    table = report.costs_table(record)
    assert table.index == ("CNN (float32)", "CNN (bfloat16)", "SNN (bfloat16), T = 256")
    assert table.columns == ("multiply-accumulates", "accumulates", "bias additions",
                             "images/s on this machine")
    assert _row(table, "CNN (bfloat16)") == [
        f"{cnn['multiply_accumulates_per_image']:,.3g}", "0", "0",
        f"{cnn['bfloat16']['images_per_s']:,.3g}"]
    assert _row(table, "SNN (bfloat16), T = 256") == [
        f"{ops[k]:,.3g}" for k in ("multiply_accumulates", "accumulates", "bias_additions")] + [
        f"{snn['images_per_s']:,.3g}"]
    assert str(table) == (
        "                         multiply-accumulates  accumulates  bias additions  "
        "images/s on this machine\n"
        "-----------------------  --------------------  -----------  --------------  "
        "------------------------\n"
        "CNN (float32)                        1.53e+08            0               0  "
        "                     479\n"
        "CNN (bfloat16)                       1.53e+08            0               0  "
        "                1.36e+03\n"
        "SNN (bfloat16), T = 256              4.53e+08      2.5e+09        5.87e+07  "
        "                    2.98")
    plain = report.costs_table(_float32_run(record))
    assert plain.index == ("CNN (float32)", "SNN (float32), T = 256")


def test_firing_table_adds_the_probe(record):
    probe = {"clipped": [0.01 * k for k in range(6)], "mean_activation": [0.1] * 6}
    table = report.firing_table(record, probe)
    assert table.index == tuple(report.layer_names(record))
    assert table.columns == ("neurons", "spikes_per_image", "rate_per_step",
                             "clipped activations", "mean activation (normalised)")
    assert _column(table, "clipped activations") == [
        "0.00%", "1.00%", "2.00%", "3.00%", "4.00%", "5.00%"]
    assert _column(table, "mean activation (normalised)") == ["0.100"] * 6
    assert _row(table, "conv1")[:3] == ["65,536", "1,187,249", "0.071"]
    firing = record.firing["conv6"]
    assert _row(table, "conv6")[:3] == [f"{firing['neurons']:,}",
                                        f"{firing['spikes_per_image']:,.0f}",
                                        f"{firing['rate_per_step']:.3f}"]
    assert table.caption == "firing over 256 steps, per image"
    with pytest.raises(ValueError, match="probe"):
        report.firing_table(record, {"clipped": [0.0]})
    with pytest.raises(ValueError, match="probe"):
        report.firing_table(record, {"clipped": [0.0], "mean_activation": [0.0]})


def test_qcfs_table_leaves_the_steps_qcfs_did_not_run_empty(record):
    s = record.specific
    snn, q = s["snn"], s["qcfs"]
    table = report.qcfs_table(record)
    assert table.index == ("ReLU conversion", "QCFS conversion")
    assert table.columns == tuple(snn["accuracy_vs_steps"])
    assert _row(table, "ReLU conversion") == [_pct(a) for a in snn["accuracy_vs_steps"].values()]
    assert _row(table, "QCFS conversion") == [
        "68.4%", "80.5%", "86.4%", "88.1%", "88.4%", "88.4%", "", "", ""]
    assert table.caption == (
        f"SNN accuracy by steps T; CNNs on these images: ReLU "
        f"{_pct(s['cnn']['accuracy_on_snn_images'])}, QCFS "
        f"{_pct(q['cnn_accuracy_on_snn_images'])}")
    assert all(table.numeric)  # the empty cells keep the columns numbers (right-aligned)


def test_operations_table_has_a_row_per_simulation(record):
    q, cnn = record.specific["qcfs"], record.specific["cnn"]
    short = {"accuracy": {8: 0.5},
             "synaptic_ops_per_image": {"accumulates": 2e6, "multiply_accumulates": 1e6}}
    table = report.operations_table(record, short, 8)
    assert table.index == ("ReLU conversion, T = 256", "QCFS conversion, T = 32",
                           "QCFS conversion, T = 8")
    assert table.columns == ("accuracy", "accumulates", "multiply-accumulates",
                             "accumulates per CNN multiply-accumulate")
    assert _row(table, "QCFS conversion, T = 8") == [
        "50.0%", "2e+06", "1e+06", f"{2e6 / cnn['multiply_accumulates_per_image']:.2f}"]
    ops = q["operations_per_image"]
    assert _row(table, "QCFS conversion, T = 32") == [
        _pct(q["accuracy_vs_steps"]["32"]), f"{ops['accumulates']:,.3g}",
        f"{ops['multiply_accumulates']:,.3g}",
        f"{ops['accumulates'] / cnn['multiply_accumulates_per_image']:.2f}"]
    assert _row(table, "ReLU conversion, T = 256") == ["88.5%", "2.5e+09", "4.53e+08", "16.36"]
    same = report.operations_table(record, {**short, "accuracy": {32: 0.5}}, 32)
    assert len(same.index) == 2  # the short simulation is the longest: not repeated
    with pytest.raises(ValueError, match="short"):
        report.operations_table(record, short, 16)


def test_operations_table_reads_the_records_short_simulations(record):
    cnn_macs = record.specific["cnn"]["multiply_accumulates_per_image"]
    with pytest.raises(ValueError, match="no short QCFS simulations"):
        report.operations_table(record)  # the committed record predates them
    with pytest.raises(ValueError, match="both short and short_steps"):
        report.operations_table(record, short_steps=8)
    specific = copy.deepcopy(record.specific)
    ops = lambda a, m: {"accumulates": a, "multiply_accumulates": m}  # noqa: E731
    specific["qcfs"]["short_simulations"] = {
        "4": {"accuracy": 0.8, "operations_per_image": ops(1e7, 2e8), "wall_s": 1.0},
        "8": {"accuracy": 0.85, "operations_per_image": ops(3e7, 4e8), "wall_s": 2.0}}
    table = report.operations_table(dataclasses.replace(record, specific=specific))
    assert table.index == ("ReLU conversion, T = 256", "QCFS conversion, T = 32",
                           "QCFS conversion, T = 8", "QCFS conversion, T = 4")
    none = copy.deepcopy(specific)
    none["qcfs"]["short_simulations"] = {}  # a QCFS simulation no longer than the short ones
    assert report.operations_table(dataclasses.replace(record, specific=none)).index == (
        "ReLU conversion, T = 256", "QCFS conversion, T = 32")
    assert _row(table, "QCFS conversion, T = 4") == [
        "80.0%", "1e+07", "2e+08", f"{1e7 / cnn_macs:.2f}"]
    assert _row(table, "QCFS conversion, T = 8") == [
        "85.0%", "3e+07", "4e+08", f"{3e7 / cnn_macs:.2f}"]


def test_full_profile_items(record, tmp_path):
    items = report.full_profile_items(RECORD)
    assert [type(i).__name__ for i in items] == [
        "str", "DisplayTable", "str", "str", "DisplayTable", "str", "str"]
    assert items[0].startswith("full profile (") and "88.66%" in items[0]
    assert "CNN: convolutions of 64, 64, 128, 128, 256, 256 channels" in items[0]
    assert items[-1] == ("(this record predates the short QCFS simulations: no operation counts "
                         "at T = 4 and 8)")
    snn, q = record.specific["snn"], record.specific["qcfs"]
    assert items[1].index == tuple(snn["accuracy_vs_steps"])
    assert _column(items[1], "SNN accuracy") == [f"{a:.2%}" for a in
                                                 snn["accuracy_vs_steps"].values()]
    assert str(items[1]) == (
        "steps T  SNN accuracy  loss vs CNN (points)\n"
        "-------  ------------  --------------------\n"
        "1              10.00%                 78.66\n"
        "2              10.00%                 78.66\n"
        "4              12.47%                 76.19\n"
        "8              22.72%                 65.94\n"
        "16             63.08%                 25.58\n"
        "32             83.13%                  5.53\n"
        "64             87.08%                  1.58\n"
        "128            88.17%                  0.49\n"
        "256            88.46%                  0.20")
    assert items[4].index == tuple(q["accuracy_vs_steps"])
    assert str(items[4]) == (
        "steps T  QCFS SNN accuracy  loss vs QCFS CNN (points)  loss vs ReLU CNN (points)\n"
        "-------  -----------------  -------------------------  -------------------------\n"
        "1                   68.42%                      19.65                      20.24\n"
        "2                   80.48%                       7.59                       8.18\n"
        "4                   86.40%                       1.67                       2.26\n"
        "8                   88.14%                      -0.07                       0.52\n"
        "16                  88.43%                      -0.36                       0.23\n"
        "32                  88.40%                      -0.33                       0.26")
    # a record with the short simulations ends with their operations table
    specific = copy.deepcopy(record.specific)
    specific["qcfs"]["short_simulations"] = {"4": {
        "accuracy": 0.8, "operations_per_image": {"accumulates": 1e7, "multiply_accumulates": 2e6}}}
    runs.save_record(dataclasses.replace(record, specific=specific), tmp_path / "short.json")
    table = report.full_profile_items(tmp_path / "short.json")[-1]
    assert table.index[-1] == "QCFS conversion, T = 4"
    # the CNN with six views, where the record has it (the old one does not)
    assert "six views" not in items[0]
    specific["cnn"]["accuracy_six_views"] = 0.91234
    runs.save_record(dataclasses.replace(record, specific=specific), tmp_path / "six.json")
    first = report.full_profile_items(tmp_path / "six.json")[0]
    assert first.endswith("; with six views of each image (airbench's test-time augmentation) "
                          "91.23%")
    missing = report.full_profile_items(tmp_path / "none.json")
    assert missing == [f"{tmp_path / 'none.json'} not found: run `python -m snnlib run "
                       "conversion --profile full`."]


def test_show_prints_lines_skips_none_and_displays_tables(record, capsys):
    report.show("first", None, "second")
    assert capsys.readouterr().out == "first\nsecond\n"
    table = report.accuracy_table(record)
    report.show("before", table, None, "after")  # outside IPython, display prints the text
    assert capsys.readouterr().out == f"before\n{table}\nafter\n"


def test_no_table_is_a_pandas_styler():
    import inspect

    source = inspect.getsource(report)
    assert "Styler" not in source and ".style." not in source


def test_report_refuses_what_is_not_a_tier3_record(record):
    with pytest.raises(TypeError, match="record"):
        report.accuracy_table(record.to_dict())
    other = dataclasses.replace(record, tier="dog_lif")
    with pytest.raises(ValueError, match="record"):
        report.training_line(other)


# --- plots ------------------------------------------------------------------------------------
def _ydata(ax) -> list[list[float]]:
    return [list(line.get_ydata()) for line in ax.get_lines()]


def test_training_curve_draws_the_history(record):
    hist = record.specific["cnn"]["training"]
    fig = plots.training_curve(record)
    loss, acc = fig.axes
    assert _ydata(loss) == [hist["loss"]]
    np.testing.assert_allclose(_ydata(acc)[0], 100 * np.array(hist["train_accuracy"]))
    np.testing.assert_allclose(loss.get_lines()[0].get_xdata(),
                               np.cumsum(hist["epoch_wall_s"]) / 60)  # minutes at each epoch's end
    assert len(hist["epoch_wall_s"]) == len(hist["loss"])


def test_accuracy_figures_draw_the_record_curves(record):
    s = record.specific
    ax = plots.accuracy_curve(record).axes[0]
    curve = s["snn"]["accuracy_vs_steps"]
    np.testing.assert_allclose(_ydata(ax)[0], [100 * curve[t] for t in curve])
    assert ax.get_title() == "10000 test images, full profile"
    left, right = plots.variants(record).axes
    assert {t.get_text() for t in left.get_legend().get_texts()} == {
        "analog, p99.99", "analog, p99.9", "analog, p100", "CNN"}
    assert {t.get_text() for t in right.get_legend().get_texts()} == {
        "analog, p99.99", "poisson, p99.99", "CNN"}
    var, drawn = s["variants"]["accuracy_vs_steps"], 0
    for panel in (left, right):  # each line is the curve its label names
        for line in panel.get_lines():
            if line.get_label() in var:
                curve = var[line.get_label()]
                np.testing.assert_allclose(line.get_ydata(), [100 * curve[t] for t in curve])
                drawn += 1
    assert drawn == 5  # three percentiles, then analog and Poisson input
    ax = plots.qcfs_accuracy(record).axes[0]
    q = s["qcfs"]["accuracy_vs_steps"]
    np.testing.assert_allclose(_ydata(ax)[1], [100 * q[t] for t in q])
    assert _ydata(ax)[-1][0] == pytest.approx(100 * s["qcfs"]["cnn_accuracy_on_snn_images"])


def test_rate_error_figure_has_a_line_per_layer_and_the_bound(record):
    error = [{1: 0.5 / (j + 1), 2: 0.3 / (j + 1), 4: 0.2 / (j + 1)} for j in range(6)]
    ax = plots.rate_errors(record, {"error": error}, 100).axes[0]
    assert len(ax.get_lines()) == 7 and ax.get_title() == "rate error by layer, 100 test images"
    for j in range(6):  # each layer's own errors, in order
        np.testing.assert_allclose(_ydata(ax)[j], list(error[j].values()))
    assert _ydata(ax)[-1] == [1.0, 0.5, 0.25]


def test_confusions_count_the_cnn_on_the_snn_images(record):
    rec = dataclasses.replace(record, specific={**record.specific, "snn_images": 40})
    rng = np.random.default_rng(0)
    labels, predictions = rng.integers(0, 10, 50), rng.integers(0, 10, 50)
    fig = plots.confusions(rec, predictions, labels)
    acc = record.specific["cnn"]["accuracy_on_snn_images"]
    assert fig.axes[0].get_title() == f"CNN ({acc:.1%})"
    expected = metrics.confusion_matrix(labels[:40], predictions[:40], 10)
    shown = fig.axes[0].collections[0].get_array().reshape(10, 10)
    np.testing.assert_allclose(shown, expected / np.maximum(expected.sum(1, keepdims=True), 1))
    snn = np.array(record.confusion)  # beside it, the record's SNN, row by row
    shown = fig.axes[1].collections[0].get_array().reshape(10, 10)
    np.testing.assert_allclose(shown, snn / np.maximum(snn.sum(1, keepdims=True), 1))
    with pytest.raises(ValueError, match="cnn_predictions"):
        plots.confusions(rec, predictions[:10], labels)


def test_qcfs_staircase_is_the_if_neuron_starting_half_way():
    ax = plots.qcfs_staircase(levels=4).axes[0]
    from_zero, half_way, qcfs = (np.asarray(y) for y in _ydata(ax))
    z = np.asarray(ax.get_lines()[0].get_xdata())
    off_edges = np.abs(z * 4 + 0.5 - np.round(z * 4 + 0.5)) > 1e-3
    np.testing.assert_allclose(half_way[off_edges], qcfs[off_edges], atol=1e-6)
    # from v0 = 0 the IF neuron floors instead (snnlib.neurons.if_rate)
    off_edges = np.abs(z * 4 - np.round(z * 4)) > 1e-3
    np.testing.assert_allclose(from_zero[off_edges],
                               np.clip(np.floor(4 * z[off_edges]), 0, 4) / 4, atol=1e-6)
    assert qcfs.max() == 1.0 and half_way.max() == 1.0, "vacuous"


def test_qcfs_staircase_with_bursts_is_the_staircase_of_g_t_levels():
    ax = plots.qcfs_staircase(levels=8, burst=2).axes[0]
    one, burst, qcfs = (np.asarray(y) for y in _ydata(ax))
    z = np.asarray(ax.get_lines()[0].get_xdata())
    off_edges = np.abs(z * 8 + 0.5 - np.round(z * 8 + 0.5)) > 1e-3
    np.testing.assert_allclose(burst[off_edges], qcfs[off_edges], atol=1e-6)
    # one spike a step over the same four steps: the staircase of four levels
    off_edges = np.abs(z * 4 + 0.5 - np.round(z * 4 + 0.5)) > 1e-3
    np.testing.assert_allclose(one[off_edges],
                               np.clip(np.floor(4 * z[off_edges] + 0.5), 0, 4) / 4, atol=1e-6)
    assert len(np.unique(burst)) == 9 and len(np.unique(one)) == 5
    assert "bursts of up to 2" in ax.get_legend().get_texts()[1].get_text()
    with pytest.raises(ValueError, match="multiple of burst"):
        plots.qcfs_staircase(levels=6, burst=4)
    with pytest.raises(ValueError, match="burst"):
        plots.qcfs_staircase(levels=8, burst=3)


def test_filter_images_scale_each_kernel_to_its_largest_weight():
    w = torch.zeros(3, 3, 3, 3)
    w[0, 0, 1, 1] = 2.0   # red centre
    w[0, 2, 0, 0] = -1.0  # half as strong "not blue" in a corner
    w[1] = 0.5            # uniform: white
    images = plots.filter_images(w)  # (K, kh, kw, 3); kernel 2 is all zero
    assert images.shape == (3, 3, 3, 3)
    assert images[0, 1, 1, 0] == 1.0 and images[0, 0, 0, 2] == 0.25 and images[0, 2, 2, 1] == 0.5
    assert np.all(images[1] == 1.0) and np.all(images[2] == 0.5)
    with pytest.raises(ValueError, match="weight"):
        plots.filter_images(torch.zeros(4, 1, 3, 3))


def test_first_layer_filters_show_the_first_convolution():
    torch.manual_seed(0)
    net = C.fold_batchnorm(C.ConvNet(C.ConvNetParams(widths=(5, 6), pool_after=(0, 1))).eval())
    fig = plots.first_layer_filters(net, ncols=4, title="kernels")
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    expected = plots.filter_images(net[0].weight)
    assert len(shown) == 5 and fig.get_suptitle() == "kernels"
    for k in range(5):
        np.testing.assert_allclose(np.asarray(shown[k]), expected[k], rtol=1e-6)
    with pytest.raises(ValueError, match="convolution"):
        plots.first_layer_filters(nn.Sequential(nn.ReLU()))


def test_spike_raster_says_where_a_layer_had_no_active_neuron():
    # record_spikes records no neuron of a layer without a positive activation: (T, 1, 0)
    g = torch.Generator().manual_seed(0)
    spikes = [torch.rand(16, 1, 3, generator=g) < 0.5, torch.zeros(16, 1, 0, dtype=torch.bool)]
    recording = {"spikes": spikes, "activations": [torch.tensor([0.1, 0.5, 0.9]),
                                                   torch.zeros(0)],
                 "neurons": [torch.arange(3), torch.zeros(0, dtype=torch.long)], "steps": 16}
    fig = plots.spike_raster(recording, layer_names=["conv1", "conv2"])
    silent = next(ax for ax in fig.axes if ax.get_title() == "conv2")
    assert not silent.collections and "no active neuron" in silent.texts[0].get_text()
    drawn = next(ax for ax in fig.axes if ax.get_title() == "conv1").collections[0]
    assert len(drawn.get_offsets()) == int(spikes[0].sum()) > 0


def test_spike_raster_draws_every_recorded_spike():
    g = torch.Generator().manual_seed(0)
    spikes = [torch.rand(16, 1, 4, generator=g) < p for p in (0.2, 0.6)]
    recording = {"spikes": spikes, "activations": [torch.tensor([0.1, 0.2, 0.3, 0.4])] * 2,
                 "neurons": [torch.arange(4)] * 2, "steps": 16}
    fig = plots.spike_raster(recording, layer_names=["conv1", "conv2"], title="raster")
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.collections]
    assert [ax.get_title() for ax in axes] == ["conv1", "conv2"]
    for ax, s in zip(axes, spikes):
        t, n = np.nonzero(s[:, 0].numpy())
        drawn = ax.collections[0].get_offsets()
        np.testing.assert_array_equal(np.asarray(drawn), np.stack([t, n], axis=1))
        counts = s.sum(dim=(0, 1)).tolist()
        assert [tick.get_text() for tick in ax.get_yticklabels()] == [
            f"{a:.2f} → {c}" for a, c in zip([0.1, 0.2, 0.3, 0.4], counts)]
    assert sum(len(ax.collections[0].get_offsets()) for ax in axes) > 0, "vacuous"
    with pytest.raises(ValueError, match="layer_names"):
        plots.spike_raster(recording, layer_names=["conv1"])
    with pytest.raises(ValueError, match="recording"):
        plots.spike_raster({"spikes": spikes})


# --- the validation runs that chose the full profile's design ---------------------------------
TECHNIQUES = Path(__file__).resolve().parents[1] / "results" / "cnn_techniques.json"


def _stored() -> list[dict]:
    """The runs stored in :data:`TECHNIQUES` (read afresh: a test may change its copy)."""
    import json

    return json.loads(TECHNIQUES.read_text())


def test_techniques_table_reads_every_run_but_the_qcfs_ones():
    found = _stored()
    table = report.techniques_table(TECHNIQUES)
    plain = [r for r in found if not r.get("qcfs")]
    assert table.index == tuple(sorted(r["name"] for r in plain))
    assert table.columns == ("validation", "with test-time augmentation", "epochs",
                             "training (min)")
    for r in plain:
        assert _row(table, r["name"])[:2] == [f"{r['val_accuracy']:.2%}",
                                              f"{r['val_accuracy_tta']:.2%}"]
    # the full profile's design and training are those of the best of the five-epoch runs on
    # validation, trained for the profile's epochs
    best = max((r for r in plain if r["training"]["epochs"] == 5),
               key=lambda r: r["val_accuracy"])
    cp, tp = C.params_for_profile(__import__("snnlib").profiles.get_profile("full"))
    # a run stored before a field existed ran with its default
    net = {**dataclasses.asdict(C.ConvNetParams()), **best["net"]}
    training = {**dataclasses.asdict(C.TrainParams()), **best["training"]}
    assert net == {**dataclasses.asdict(cp), "widths": list(cp.widths),
                   "pool_after": list(cp.pool_after)}
    chosen = dataclasses.asdict(tp)
    assert {k: v for k, v in training.items() if k not in ("bf16", "epochs", "optimizer")} == {
        k: v for k, v in chosen.items() if k not in ("bf16", "epochs", "optimizer")}
    # and its optimiser is the one that did better in the profile's epochs, the same network
    by_name = {r["name"]: r for r in plain}
    muon, sgd = by_name[MUON_8], by_name["M, 8 epochs"]
    assert muon["training"] == {**sgd["training"], "optimizer": "muon"}
    assert muon["net"] == sgd["net"] == best["net"]
    assert muon["training"]["epochs"] == tp.epochs
    # each trained from two seeds (a run stored before "seed" was stored ran with the default,
    # 2026); the profile's optimiser is the better on average
    by_seed = {name: [by_name[name], by_name[f"{name}, seed 2027"]]
            for name in (MUON_8, "M, 8 epochs")}
    for first, again in by_seed.values():
        assert (first.get("seed", 2026), again["seed"]) == (2026, 2027)
        assert (again["net"], again["training"]) == (first["net"], first["training"])
    mean = {name: sum(r["val_accuracy"] for r in rs) / len(rs) for name, rs in by_seed.items()}
    assert tp.optimizer == ("muon" if mean[MUON_8] > mean["M, 8 epochs"] else "sgd")
    assert {k: v for k, v in muon["training"].items() if k != "bf16"} == {
        k: v for k, v in chosen.items() if k != "bf16"}


MUON_8 = "M, 8 epochs, filters trained with Muon (peak learning rate 0.17, momentum 0.6)"
"""The stored run of M trained for the full profile's 8 epochs with Muon for its filters."""


M17_QCFS = "M, 17 epochs, fine-tuned with QCFS (4 levels, 2 epochs"
"""Name prefix of the stored two-epoch four-level QCFS fine-tunings of row "M, 17 epochs"."""
CHOICE_LEVELS = 4
"""The levels of the QCFS copy (one spike a step) on which the fine-tuning's learning rate,
the thresholds' start, v0 and the bias calibration were chosen, before bursts; the tier
keeps those choices for its 32-level copy with bursts of up to eight."""
CALIBRATED = "signed, v0 = 0.5, biases calibrated at T = 4 in 2 rounds"
"""The spiking copy the tier reports: signed neurons, biases calibrated as the tier does."""
FROM_START = "M, 17 epochs, with QCFS (4 levels) from the start, biases calibrated in rounds"
"""The stored run of M trained with QCFS activations from its first epoch."""


def _at_t4_by(vary: str, neurons: str) -> dict:
    """The stored QCFS fine-tunings of row "M, 17 epochs" that differ from the full profile's
    only in ``vary`` (``"max_lr"``, ``"init_percentile"`` or ``"levels"``; none distilled): the
    accuracy of their copy with ``neurons`` at T = 4, by their value of ``vary`` (a run stored
    before an option existed ran at its default)."""

    from snnlib import profiles
    from snnlib.tiers.conversion import run

    default = {"max_lr": C.QCFS_MAX_LR, "init_percentile": C.QCFS_INIT_PERCENTILE}
    tier = {"max_lr": run.WHITENED_QCFS_MAX_LR, "init_percentile": C.QCFS_INIT_PERCENTILE,
            "levels": CHOICE_LEVELS,
            "epochs": profiles.get_profile("full").conversion.qcfs_epochs}
    rows = [r for r in _stored()
            if r["name"].startswith("M, 17 epochs, fine-tuned with QCFS (")
            and not r["qcfs"].get("distill") and neurons in r["qcfs"]["snn"]
            and "4" in r["qcfs"]["snn"][neurons]["accuracy"]
            and all(r["qcfs"].get(k, default.get(k)) == v for k, v in tier.items() if k != vary)]
    by: dict = {}
    for r in rows:  # two runs of the same setting (another row's reruns) must agree
        key = r["qcfs"].get(vary, default.get(vary))
        value = r["qcfs"]["snn"][neurons]["accuracy"]["4"]
        assert by.setdefault(key, value) == value, (vary, key, r["name"])
    return by


def test_the_full_profiles_qcfs_learning_rate_is_the_best_at_t4_on_validation():
    from snnlib.tiers.conversion import run

    rates = _at_t4_by("max_lr", "signed, v0 = 0.5")
    assert len(rates) >= 4
    assert max(rates, key=rates.get) == run.WHITENED_QCFS_MAX_LR
    # and with the bias calibration the tier makes
    after = _at_t4_by("max_lr", CALIBRATED)
    assert len(after) >= 3
    assert max(after, key=after.get) == run.WHITENED_QCFS_MAX_LR


def test_the_qcfs_thresholds_start_where_validation_put_them():
    starts = _at_t4_by("init_percentile", CALIBRATED)
    assert {99.0, 99.5, 99.9} <= set(starts)
    assert max(starts, key=starts.get) == C.QCFS_INIT_PERCENTILE


BURST_ROW = ("M, 17 epochs, fine-tuned with QCFS (8 levels, 2 epochs, peak learning rate 0.1), "
             "bursts of up to 2, biases calibrated with bursts")
"""The stored run of M's eight-level copy with bursts, calibrated with bursts (M trained
again: a ReLU CNN of 89.70%, not the 90.08% of the rows fine-tuned before it)."""
TIER_ROW = ("M, 17 epochs, fine-tuned with QCFS (32 levels, 2 epochs, peak learning rate 0.1), "
            "bursts of up to 8, biases calibrated with bursts")
"""The stored run of M's 32-level copy with bursts of up to eight (the tier's levels and
bursts), of the same training as :data:`BURST_ROW`."""
SIXTEEN_ROW = ("M, 17 epochs, fine-tuned with QCFS (16 levels, 2 epochs, peak learning rate "
               "0.1), bursts of up to 4, biases calibrated with bursts")
"""The sixteen-level copy with bursts of up to four, of the same training."""
AGAIN_FOUR = ("M trained again for 17 epochs (the network of the burst rows), fine-tuned with "
              "QCFS (4 levels, 2 epochs, peak learning rate 0.1), biases calibrated in rounds")
"""The four-level copy with one spike a step of the same training as :data:`BURST_ROW`."""


def _tiers_calibration() -> str:
    """", biases calibrated at T = 4 in 2 rounds": how ``cnn_techniques.py`` names a copy
    calibrated as the tier calibrates (``QCFS_CALIBRATION_STEPS``, ``QCFS_CALIBRATION_ROUNDS``)."""
    from snnlib.tiers.conversion import convert
    from snnlib.tiers.conversion.record import rounds_clause

    return (f", biases calibrated at T = {convert.QCFS_CALIBRATION_STEPS}"
            f"{rounds_clause(convert.QCFS_CALIBRATION_ROUNDS)}")


def _signed_at_t4_by_v0(qcfs_runs, suffix: str) -> dict:
    """{v0: accuracy at T = 4} of the signed copies of ``qcfs_runs`` whose names end in
    ``suffix``."""
    return {float(name.split("v0 = ")[1].split(",")[0]): sim["accuracy"]["4"]
            for q in qcfs_runs for name, sim in q["snn"].items()
            if name.startswith("signed, v0 = ") and name.endswith(suffix)}


def test_the_tiers_levels_and_bursts_are_the_best_at_t4_on_the_full_profiles_network():
    from snnlib import profiles
    from snnlib.tiers.conversion import convert, run

    # one spike a step: L = 3, 4, 5, 8 fine-tuned and calibrated as the tier does; four is the
    # best (three within one image of it); bursts then beat it on the same training
    # (test_bursts_give_the_eight_level_copy_more_at_four_steps_than_the_four_level_copy)
    levels = _at_t4_by("levels", CALIBRATED)
    assert {3, 4, 5, 8} <= set(levels)
    assert max(levels, key=levels.get) == CHOICE_LEVELS
    # on M trained again (one ReLU CNN for the four rows), each copy calibrated for T = 4 in
    # the tier's rounds with its own bursts: the tier's levels and bursts are the best at T = 4
    rows = {r["name"]: r for r in _stored()}
    assert rows[TIER_ROW]["val_accuracy"] == rows[SIXTEEN_ROW]["val_accuracy"] == rows[
        BURST_ROW]["val_accuracy"] == rows[AGAIN_FOUR]["val_accuracy"]
    for name in (TIER_ROW, SIXTEEN_ROW, BURST_ROW, AGAIN_FOUR):  # one checkpoint, fine-tuned as the tier does
        assert "--checkpoint /work/ck/M17.pt " in rows[name]["command"]
        q = rows[name]["qcfs"]
        assert (q["max_lr"], q["init_percentile"], q["epochs"], q["distill"]) == (
            run.WHITENED_QCFS_MAX_LR, C.QCFS_INIT_PERCENTILE,
            profiles.get_profile("full").conversion.qcfs_epochs, 0.0)
    assert rows[BURST_ROW]["qcfs"]["levels"] == 8 and rows[SIXTEEN_ROW]["qcfs"]["levels"] == 16
    q = rows[TIER_ROW]["qcfs"]
    assert (q["levels"], C.QCFS_LEVELS, C.QCFS_BURST) == (32, 32, 8)
    calibrated = f"signed, v0 = {convert.QCFS_V0}{_tiers_calibration()}"
    tier = q["snn"][f"{calibrated}, bursts of up to {C.QCFS_BURST}"]["accuracy"]
    sixteen = rows[SIXTEEN_ROW]["qcfs"]["snn"][calibrated + ", bursts of up to 4"]["accuracy"]
    eight = rows[BURST_ROW]["qcfs"]["snn"][calibrated + ", bursts of up to 2"]["accuracy"]
    four = rows[AGAIN_FOUR]["qcfs"]["snn"][calibrated]["accuracy"]
    assert rows[AGAIN_FOUR]["qcfs"]["levels"] == CHOICE_LEVELS
    assert tier["4"] > sixteen["4"] > eight["4"] > four["4"]
    # and the calibration pays for the tier's copy at T = 4
    plain = q["snn"][f"signed, v0 = {convert.QCFS_V0}, bursts of up to {C.QCFS_BURST}"]["accuracy"]
    assert tier["4"] > plain["4"]


def test_the_tiers_calibration_rounds_are_the_best_at_t4_for_the_eight_level_burst_copy():
    """(Checked on the eight-level copy with bursts of up to two; the tier's copy has no run in
    one round.)"""
    from snnlib.tiers.conversion import convert

    q = next(r for r in _stored() if r["name"] == BURST_ROW)["qcfs"]
    bursts = ", bursts of up to 2"
    by = {name: sim["accuracy"]["4"] for name, sim in q["snn"].items()
          if name.startswith("signed") and name.endswith(bursts)}
    assert len(by) == 3
    assert max(by, key=by.get) == f"signed, v0 = {convert.QCFS_V0}{_tiers_calibration()}{bursts}"


def test_the_tier_fine_tunes_because_qcfs_from_the_start_was_worse_at_t4():
    # (compared with the four-level copy of one spike a step, which was the tier's then)
    from dataclasses import replace

    rows = _stored()
    relu = next(r for r in rows if r["name"] == "M, 17 epochs")
    start = next(r for r in rows if r["name"] == FROM_START)
    assert start["qcfs"]["epochs"] == "from the start"
    assert start["qcfs"]["init_percentile"] == C.QCFS_INIT_PERCENTILE
    # the same network and training as the ReLU CNN the tier fine-tunes, QCFS from the start
    assert C.TrainParams(**start["training"]) == C.TrainParams(**relu["training"])
    assert C.ConvNetParams(**start["net"]) == replace(C.ConvNetParams(**relu["net"]),
                                                      quantisation_levels=CHOICE_LEVELS)
    from_start = start["qcfs"]["snn"][CALIBRATED]["accuracy"]["4"]
    assert from_start < _at_t4_by("levels", CALIBRATED)[CHOICE_LEVELS]


def test_bursts_give_the_eight_level_copy_more_at_four_steps_than_the_four_level_copy():
    """On the first training of M, the eight-level copy simulated with bursts of up to two
    (uncalibrated) beats, at T = 4 and 8, both its own one-spike copy and the four-level
    one-spike copy calibrated in two rounds (chapter 6 compares it with the latter), and it is
    the same fine-tuning as the eight-level row of the levels check."""

    rows = {r["name"]: r for r in _stored()}
    eight = "M, 17 epochs, fine-tuned with QCFS (8 levels, 2 epochs, peak learning rate 0.1)"
    q = rows[eight + ", bursts of up to 2"]["qcfs"]
    assert q["levels"] == 8 and q["cnn"] == rows[eight + ", biases calibrated in rounds"][
        "qcfs"]["cnn"]
    burst = q["snn"]["signed, v0 = 0.5, bursts of up to 2"]["accuracy"]
    single = q["snn"]["signed, v0 = 0.5"]["accuracy"]
    four = rows[M17_QCFS + ", peak learning rate 0.1), biases calibrated in rounds"]["qcfs"]
    for t in ("4", "8"):
        assert burst[t] > single[t] and burst[t] > four["snn"][CALIBRATED]["accuracy"][t]


def test_the_starting_potential_is_the_best_at_t4_under_the_tiers_calibration():
    from snnlib.tiers.conversion import convert, run

    row = next(r for r in _stored()
               if r["name"].startswith(M17_QCFS) and "starting potentials" in r["name"])
    # fine-tuned as the full profile does
    assert row["qcfs"]["max_lr"] == run.WHITENED_QCFS_MAX_LR
    assert row["qcfs"]["init_percentile"] == C.QCFS_INIT_PERCENTILE
    assert not row["qcfs"]["distill"] and row["qcfs"]["levels"] == CHOICE_LEVELS
    starts = _signed_at_t4_by_v0([row["qcfs"]], _tiers_calibration())
    assert {0.4, 0.5, 0.6} <= set(starts)
    assert max(starts, key=starts.get) == convert.QCFS_V0
    # the same network, fine-tuning and calibration as the row that chose the rounds: the
    # same copy at 0.5
    rounds = next(r for r in _stored()
                  if r["name"] == M17_QCFS + ", peak learning rate 0.1), biases calibrated in "
                  "rounds")
    assert starts[0.5] == rounds["qcfs"]["snn"][CALIBRATED]["accuracy"]["4"]


def test_the_starting_potential_is_still_the_best_at_t4_with_bursts_of_two():
    from snnlib.tiers.conversion import convert

    rows = {r["name"]: r for r in _stored()}
    eight, others = rows[BURST_ROW]["qcfs"], rows[BURST_ROW + ": starting potentials"]["qcfs"]
    assert others["cnn"] == eight["cnn"]  # the same fine-tuning, read from its checkpoint
    starts = _signed_at_t4_by_v0([eight, others], _tiers_calibration() + ", bursts of up to 2")
    assert set(starts) == {0.4, 0.5, 0.6}
    assert max(starts, key=starts.get) == convert.QCFS_V0


QCFS_CHOICE = "D, fine-tuned with QCFS (4 levels, 2 epochs): starting potentials and neurons"
"""The stored QCFS run that compared starting potentials and neurons (chapter 6 shows it)."""


def test_qcfs_choice_table_and_the_tiers_choice_agree():
    table = report.qcfs_choice_table(TECHNIQUES, QCFS_CHOICE)
    assert "signed, v0 = 0.5" in table.index and "IF, v0 = 0.5" in table.index
    assert table.columns == ("T = 1", "T = 2", "T = 4", "T = 8", "T = 16")
    # the tier's neurons and v0 are the best at T = 4 on validation
    best = max(table.index, key=lambda name: float(_row(table, name)[2].rstrip("%")))
    assert best == f"{'signed' if C.QCFS_SIGNED else 'IF'}, v0 = {C.QCFS_V0}"


def test_qcfs_choice_table_names_a_relu_cnn_only_where_there_is_one():
    assert ", the ReLU CNN 84.14%" in report.qcfs_choice_table(TECHNIQUES, QCFS_CHOICE).caption
    caption = report.qcfs_choice_table(TECHNIQUES, FROM_START).caption
    assert caption.endswith("its CNN 87.44%") and "ReLU" not in caption


GELU_QCFS = ("M, 8 epochs, filters trained with Muon, GELU activations, fine-tuned with QCFS "
             "(32 levels, 2 epochs, peak learning rate 0.1), bursts of up to 8, biases "
             "calibrated with bursts")
"""The stored run of the full profile's training with GELUs, fine-tuned into a QCFS copy."""
MUON_QCFS = ("M, 8 epochs, filters trained with Muon, fine-tuned with QCFS (32 levels, 2 epochs, "
             "peak learning rate 0.1), bursts of up to 8, biases calibrated with bursts")
"""The same with ReLUs: the full profile's training and fine-tuning, on validation."""


def test_the_tier_trains_with_relus_because_a_gelu_trainings_gain_did_not_survive_qcfs():
    by_name = {r["name"]: r for r in _stored() if r.get("qcfs")}
    gelu, relu = by_name[GELU_QCFS], by_name[MUON_QCFS]
    # the same network, training, seed and fine-tuning, but for the activation (a run stored
    # before the field existed ran with its default, ReLU)
    defaults = dataclasses.asdict(C.ConvNetParams())
    assert {**defaults, **gelu["net"]} == {**defaults, **relu["net"], "activation": "gelu"}
    assert gelu["training"] == relu["training"]
    assert gelu.get("seed", 2026) == relu.get("seed", 2026)
    assert {k: v for k, v in gelu["qcfs"].items() if k not in ("snn", "cnn", "train_min")} == {
        k: v for k, v in relu["qcfs"].items() if k not in ("snn", "cnn", "train_min")}
    # GELUs train a better CNN, which does not convert as it is (ReLUs in their place) ...
    assert gelu["val_accuracy"] > relu["val_accuracy"]
    assert gelu["as_relu"]["val_accuracy"] < relu["val_accuracy"] - 0.1
    # ... and after the fine-tuning the tier's copy at T = 4 gains less than one standard error
    # of the 5,000 validation images (sqrt(p (1 - p) / n), about 0.44 points)
    n, at4 = gelu["val_images"], {r["name"]: r["qcfs"]["snn"][CALIBRATED + ", bursts of up to 8"]
                                  ["accuracy"]["4"] for r in (gelu, relu)}
    p = at4[MUON_QCFS]
    assert at4[GELU_QCFS] - p < (p * (1 - p) / n) ** 0.5
    cp, _ = C.params_for_profile(__import__("snnlib").profiles.get_profile("full"))
    assert cp.activation == "relu"
    caption = report.qcfs_choice_table(TECHNIQUES, GELU_QCFS).caption
    assert caption.endswith(f"the GELU CNN {gelu['val_accuracy']:.2%}") and "ReLU" not in caption


def test_qcfs_choice_line_quotes_the_best_of_each_kind():
    stored = [r for r in _stored() if r.get("qcfs")]
    assert len(stored) >= 2 and stored[-1]["name"] != QCFS_CHOICE
    # without a name: the last QCFS run; with one, that run (at a T the last run has)
    steps = int(list(next(iter(stored[-1]["qcfs"]["snn"].values()))["accuracy"])[-1])
    assert report.qcfs_choice_line(TECHNIQUES, steps) == report.qcfs_choice_line(
        TECHNIQUES, steps, name=stored[-1]["name"])
    q = next(r for r in stored if r["name"] == QCFS_CHOICE)["qcfs"]
    line = report.qcfs_choice_line(TECHNIQUES, name=QCFS_CHOICE)
    best = {kind: max((sim["accuracy"]["4"], name) for name, sim in q["snn"].items()
                      if name.startswith(kind + ",")) for kind in ("IF", "signed")}
    for kind, label in (("IF", "plain IF neurons"), ("signed", "signed neurons")):
        acc, name = best[kind]
        assert (f"the best {label} ({name.split(', ')[1]}) {acc:.2%}, "
                f"{100 * (q['cnn'] - acc):.2f} points below the QCFS CNN") in line
    assert line.startswith("validation, T = 4: ") and line.endswith(
        f"(QCFS CNN {q['cnn']:.2%}, {q['levels']} levels)")


def test_technique_tables_refuse_what_is_not_a_list_of_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="cnn_techniques.py"):
        report.techniques_table(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="list of benchmarks/cnn_techniques.py runs"):
        report.techniques_table(bad)
    bad.write_text('[{"name": "x", "val_accuracy": 0.5}]')
    with pytest.raises(ValueError, match="each with name, val_accuracy, val_accuracy_tta"):
        report.techniques_table(bad)
    import json

    plain_only = [r for r in _stored() if not r.get("qcfs")]
    bad.write_text(json.dumps(plain_only))
    with pytest.raises(ValueError, match="no run with a QCFS copy"):
        report.qcfs_choice_table(bad)
    with pytest.raises(ValueError, match="no run with a QCFS copy"):
        report.qcfs_choice_line(bad)
    with pytest.raises(ValueError, match="positive integer"):
        report.qcfs_choice_line(TECHNIQUES, steps=0)
    with pytest.raises(ValueError, match="no plain IF neurons at T = 32"):
        report.qcfs_choice_line(TECHNIQUES, steps=32)
    with pytest.raises(ValueError, match="no run with a QCFS copy named 'Z'"):
        report.qcfs_choice_table(TECHNIQUES, name="Z")
    with pytest.raises(TypeError, match="name"):
        report.qcfs_choice_line(TECHNIQUES, name=3)
    with pytest.raises(TypeError):
        report.techniques_table(3)


def test_the_short_simulations_become_variants_of_the_record(record):
    """The few-step QCFS simulations are rows of the comparison, with their own steps,
    operations and speed."""
    from snnlib.tiers.conversion import record as R

    d = runs.legacy_view(record, R.MOVES)
    assert "QCFS fine-tuned, T = 4" not in R.to_record(d, device="cpu").variants
    ops = {"what": "4 steps", "accumulates": 1e7, "multiply_accumulates": 2e6,
           "bias_additions": 1.0, "per_layer_accumulates": {}}
    d["qcfs"]["short_simulations"] = {
        "8": {"accuracy": 0.85, "operations_per_image": {**ops, "accumulates": 2e7},
              "images_per_s": 50.0, "what_images_per_s": "images simulated for 8 steps per "
              "second", "wall_s": 200.0},
        "4": {"accuracy": 0.8, "operations_per_image": ops, "images_per_s": 100.0,
              "what_images_per_s": "images simulated for 4 steps per second", "wall_s": 100.0}}
    variants = R.to_record(d, device="cpu").variants
    assert list(variants)[-2:] == ["QCFS fine-tuned, T = 4", "QCFS fine-tuned, T = 8"]
    four = variants["QCFS fine-tuned, T = 4"]
    assert (four.accuracy, four.time_steps) == (0.8, 4)
    assert (four.synaptic_events.accumulates, four.synaptic_events.multiply_accumulates) == (
        1e7, 2e6)
    assert four.inference.images_per_s == 100.0
    assert variants["QCFS fine-tuned, T = 8"].synaptic_events.accumulates == 2e7


def test_the_channel_wise_copy_is_drawn_with_the_normalisations(record):
    # a record made since the tier simulates it (made-up curve): drawn in the left panel
    # only, and listed in the variants table
    specific = copy.deepcopy(record.specific)
    var = specific["variants"]["accuracy_vs_steps"]
    var[C.run.CHANNEL_VARIANT] = {t: 0.5 + 0.001 * int(t) for t in var["analog, p99.99"]}
    rec = dataclasses.replace(record, specific=specific)
    left, right = plots.variants(rec).axes
    assert [ln.get_label() for ln in left.get_lines()].count(C.run.CHANNEL_VARIANT) == 1
    line = next(ln for ln in left.get_lines() if ln.get_label() == C.run.CHANNEL_VARIANT)
    curve = var[C.run.CHANNEL_VARIANT]
    np.testing.assert_allclose(line.get_ydata(), [100 * curve[t] for t in curve])
    assert C.run.CHANNEL_VARIANT not in [ln.get_label() for ln in right.get_lines()]
    assert left.get_title() == "normalisation"
    assert _row(report.variants_table(rec), C.run.CHANNEL_VARIANT)[0] == _pct(curve["1"])


def test_reference_table_shows_each_airbench_run(tmp_path):
    import json

    run = {"name": "airbench94, 5 epochs", "pool": "max", "activation": "gelu",
           "val_accuracy": 0.8734, "val_accuracy_tta": 0.882, "epochs": 5.0, "train_min": 24.47,
           "train_images": 45000, "val_images": 5000}
    path = tmp_path / "ref.json"
    path.write_text(json.dumps([run, {**run, "name": "a convertible copy", "pool": "avg",
                                      "activation": "relu", "val_accuracy": 0.78}]))
    table = report.reference_table(path)
    assert table.index == ("a convertible copy", "airbench94, 5 epochs")
    assert _row(table, "airbench94, 5 epochs") == ["max", "gelu", "87.34%", "88.20%", "5", "24.5"]
    assert "45,000 training images" in repr(table) and "5,000 validation" in repr(table)
    with pytest.raises(FileNotFoundError, match="airbench_reference.py"):
        report.reference_table(tmp_path / "none.json")
    path.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(ValueError, match="airbench_reference.py runs"):
        report.reference_table(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="no run"):
        report.reference_table(path)


def _calibrated(rec: runs.TierRecord) -> runs.TierRecord:
    """The record as run_tier now writes it: the QCFS copy bias-calibrated, the uncalibrated
    copy's curve beside it (made-up numbers)."""
    specific = copy.deepcopy(rec.specific)
    q = specific["qcfs"]
    q["uncalibrated"] = {"accuracy_vs_steps": {t: a - 0.01 for t, a in
                                               q["accuracy_vs_steps"].items()}}
    q["bias_calibration"] = {"steps": 4, "images": 1000, "wall_s": 31.4,
                             "mean_abs_correction": {f"conv{k}": 0.001 * k for k in range(1, 7)},
                             "max_abs_correction": {f"conv{k}": 0.01 * k for k in range(1, 7)}}
    return dataclasses.replace(rec, specific=specific)


def test_a_burst_copy_says_so_where_its_neurons_are_named(record, tmp_path):
    from snnlib import compare
    from snnlib.tiers.conversion import record as rec_mod

    rec = _calibrated(record)
    q = rec.specific["qcfs"]
    assert "burst" not in report.qcfs_training_line(rec)  # a record made before bursts
    q.update(burst=2, signed=True)
    assert report.qcfs_training_line(rec).endswith(
        "; its spiking copy fires bursts of up to 2 spikes a step")
    runs.save_record(rec, tmp_path / "burst.json")
    items = report.full_profile_items(tmp_path / "burst.json")
    assert items[3].startswith(f"fine-tuned with QCFS ({q['levels']} levels) for ")
    assert items[5].endswith(
        "simulated with signed neurons firing bursts of up to 2 spikes a step")
    assert any("its SNN (signed IF neurons, bursts of up to 2, v0 = " in line
               for line in rec_mod.summary_lines(rec))
    readme = "\n".join(compare._conversion_readme(rec))
    assert ("firing bursts of up to 2 spikes a step, each worth 1/2 of a plain neuron's "
            "threshold (Li and Zeng's burst spikes), neurons starting at") in readme
    q["signed"] = False
    runs.save_record(rec, tmp_path / "plain.json")
    assert report.full_profile_items(tmp_path / "plain.json")[5].endswith(
        "simulated with IF neurons firing bursts of up to 2 spikes a step")
    q["burst"] = 1
    assert "burst" not in report.qcfs_training_line(rec)


def test_the_bias_calibration_is_shown_beside_the_uncalibrated_copy(record, tmp_path):
    assert report.calibration_line(record) is None  # a record made before the calibration
    rec = _calibrated(record)
    q = rec.specific["qcfs"]
    assert report.calibration_line(rec) == (
        "biases calibrated for T = 4 on 1,000 training images, 31 s; the largest mean size of "
        "a layer's corrections, 0.006 of the threshold per step, in conv6; at T = 4 the spiking "
        "copy goes "
        f"from {q['accuracy_vs_steps']['4'] - 0.01:.1%} to {q['accuracy_vs_steps']['4']:.1%}")
    table = report.qcfs_table(rec)
    assert table.index == ("ReLU conversion", "QCFS conversion, before bias calibration",
                           "QCFS conversion, biases calibrated")
    assert _row(table, "QCFS conversion, biases calibrated")[:6] == [
        "68.4%", "80.5%", "86.4%", "88.1%", "88.4%", "88.4%"]
    assert _row(table, "QCFS conversion, before bias calibration")[:3] == [
        "67.4%", "79.5%", "85.4%"]
    ax = plots.qcfs_accuracy(rec).axes[0]
    before, after = q["uncalibrated"]["accuracy_vs_steps"], q["accuracy_vs_steps"]
    np.testing.assert_allclose(_ydata(ax)[1], [100 * before[t] for t in before])
    np.testing.assert_allclose(_ydata(ax)[2], [100 * after[t] for t in after])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[2].endswith("biases calibrated for T = 4")
    # the QCFS CNN's line has the calibrated copy's colour
    assert ax.get_lines()[-1].get_color() == ax.get_lines()[2].get_color()
    runs.save_record(rec, tmp_path / "calibrated.json")
    items = report.full_profile_items(tmp_path / "calibrated.json")
    assert items[3].endswith(report.calibration_line(rec))
    q["bias_calibration"]["rounds"] = 2
    assert report.calibration_line(rec).startswith(
        "biases calibrated for T = 4 on 1,000 training images in 2 rounds, 31 s; ")
    assert items[4].columns[-1] == "before bias calibration"
    assert _column(items[4], "before bias calibration")[2] == f"{before['4']:.2%}"


def _peer_run(name: str = "a CNN") -> dict:
    """A run of benchmarks/peer_conversion.py as it stores one (made-up numbers)."""
    return {"name": name, "cnn_accuracy": 0.875, "steps": [4, 64], "train_images": 45000,
            "val_images": 500,
            "copies": {"ours, p99.9": {"accuracy": {"4": 0.25, "64": 0.87},
                                       "image_steps_per_s": 848.9},
                       "SpikingJelly, 99.9%, layer-wise": {"accuracy": {"4": 0.355, "64": 0.255},
                                                           "image_steps_per_s": 738.5}}}


def test_peer_table_shows_each_copy_of_the_named_run(tmp_path):
    import json

    path = tmp_path / "peer.json"
    path.write_text(json.dumps([_peer_run("another CNN"), _peer_run()]))
    table = report.peer_table(path, "a CNN")
    assert table.index == ("ours, p99.9", "SpikingJelly, 99.9%, layer-wise")  # the order run
    assert _row(table, "ours, p99.9") == ["25.0%", "87.0%", "849"]
    assert _row(table, "SpikingJelly, 99.9%, layer-wise") == ["35.5%", "25.5%", "738"]
    assert "a CNN: the CNN 87.50%" in repr(table) and "500 validation images" in repr(table)
    with pytest.raises(ValueError, match="no run named 'a third CNN'.*'another CNN'"):
        report.peer_table(path, "a third CNN")
    with pytest.raises(FileNotFoundError, match="peer_conversion.py"):
        report.peer_table(tmp_path / "none.json", "a CNN")
    with pytest.raises(TypeError, match="name"):
        report.peer_table(path, None)


def test_the_stored_peer_runs_score_every_copy_at_every_step_and_ours_converge():
    # results/peer_conversion.json as chapter 6 reads it: every copy of a run was scored at
    # every step the run names, and ours converge to within a point of the CNN at the longest
    # simulation (the converters' sanity check)
    import json

    for run in json.loads((Path(__file__).parents[1] / "results"
                           / "peer_conversion.json").read_text()):
        assert run["split"].startswith("validation")
        longest = str(max(run["steps"]))
        for copy_name, res in run["copies"].items():
            assert sorted(map(int, res["accuracy"])) == sorted(run["steps"]), copy_name
            assert res["image_steps_per_s"] > 0
        best_ours = max(res["accuracy"][longest] for c, res in run["copies"].items()
                        if c.startswith("ours"))
        assert best_ours > run["cnn_accuracy"] - 0.01, run["name"]
