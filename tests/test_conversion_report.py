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

from snnlib import metrics, runs  # noqa: E402
from snnlib.tiers import conversion as C  # noqa: E402
from snnlib.tiers.conversion import plots, report  # noqa: E402

RECORD = Path(__file__).resolve().parents[1] / "results" / "conversion.json"


@pytest.fixture
def record() -> runs.TierRecord:
    """The committed full-profile record of tier 3 (it has every section: QCFS, bfloat16 CNN,
    float32 checks)."""
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


def test_network_lines_name_the_arithmetic_and_no_machine_value():
    from snnlib import profiles

    ci = profiles.get_profile("ci")
    cp, tp = C.params_for_profile(ci)
    text = report.network_lines(cp, tp, C.numerics.numerics_for_profile(ci))
    assert text == ("CNN: widths (8, 8, 16, 16, 32, 32), 2 x 2 average pooling after convolutions "
                    "[2, 4, 6], then one linear layer\n"
                    "training: 1 epochs, batch 128, one-cycle SGD up to lr 0.1, crops and flips; "
                    "arithmetic: float32, 2 threads, deterministic algorithms, CPU kernels capped "
                    "at AVX2")


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


def test_accuracy_table_holds_the_curve_and_the_loss_in_points(record):
    snn = record.specific["snn"]
    table = report.accuracy_table(record)
    assert list(table.data.columns) == [int(t) for t in snn["accuracy_vs_steps"]]
    for t, a in snn["accuracy_vs_steps"].items():
        assert table.data.loc["SNN accuracy", int(t)] == a
        assert table.data.loc["loss vs CNN (points)", int(t)] == snn["loss_vs_cnn_points"][t]
    html = table.to_html()
    last = str(snn["steps"])
    assert _pct(snn["accuracy_vs_steps"][last]) in html
    assert f">{snn['loss_vs_cnn_points'][last]:.1f}<" in html


def test_lambda_and_variant_tables(record):
    lambdas = report.lambda_table(record)
    assert list(lambdas.data.index) == report.layer_names(record)
    assert lambdas.data["p99.99"].tolist() == record.specific["normalisation_lambdas"]["p99.99"]
    var = record.specific["variants"]
    table = report.variants_table(record)
    assert list(table.data.index) == list(var["accuracy_vs_steps"])
    assert table.data.loc["poisson, p99.99", 8] == var["accuracy_vs_steps"]["poisson, p99.99"]["8"]
    assert f"CNN {_pct(var['cnn_accuracy'])}" in table.caption


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
    table = report.costs_table(record).data
    assert list(table.index) == ["CNN (float32)", "CNN (bfloat16)", f"SNN (bfloat16), T = 256"]
    speed = cnn["bfloat16"]["images_per_s"]
    assert table.loc["CNN (bfloat16)", "images/s on this machine"] == speed
    assert table.loc["SNN (bfloat16), T = 256", "accumulates"] == ops["accumulates"]
    assert table.loc["CNN (float32)", "accumulates"] == 0.0
    plain = report.costs_table(_float32_run(record)).data
    assert list(plain.index) == ["CNN (float32)", "SNN (float32), T = 256"]


def test_firing_table_adds_the_probe(record):
    probe = {"clipped": [0.01 * k for k in range(6)], "mean_activation": [0.1] * 6}
    table = report.firing_table(record, probe)
    assert table.data["clipped activations"].tolist() == probe["clipped"]
    assert table.data.loc["conv1", "neurons"] == record.firing["conv1"]["neurons"]
    with pytest.raises(ValueError, match="probe"):
        report.firing_table(record, {"clipped": [0.0]})
    with pytest.raises(ValueError, match="probe"):
        report.firing_table(record, {"clipped": [0.0], "mean_activation": [0.0]})


def test_operations_table_has_a_row_per_simulation(record):
    q, cnn = record.specific["qcfs"], record.specific["cnn"]
    short = {"accuracy": {8: 0.5},
             "synaptic_ops_per_image": {"accumulates": 2e6, "multiply_accumulates": 1e6}}
    table = report.operations_table(record, short, 8).data
    assert list(table.index) == ["ReLU conversion, T = 256", "QCFS conversion, T = 32",
                                 "QCFS conversion, T = 8"]
    assert table.loc["QCFS conversion, T = 8", "accumulates per CNN multiply-accumulate"] == (
        2e6 / cnn["multiply_accumulates_per_image"])
    assert table.loc["QCFS conversion, T = 32", "accuracy"] == q["accuracy_vs_steps"]["32"]
    assert table.loc["ReLU conversion, T = 256", "accuracy"] == record.accuracy
    same = report.operations_table(record, {**short, "accuracy": {32: 0.5}}, 32).data
    assert len(same) == 2  # the short simulation is the longest: not repeated
    with pytest.raises(ValueError, match="short"):
        report.operations_table(record, short, 16)


def test_full_profile_items(record, tmp_path):
    items = report.full_profile_items(RECORD)
    assert [type(i).__name__ for i in items] == ["str", "Styler", "str", "str", "Styler", "str"]
    assert items[0].startswith("full profile (") and "88.66%" in items[0]
    assert items[1].data.loc["SNN accuracy", "256"] == record.specific["snn"]["accuracy_vs_steps"][
        "256"]
    missing = report.full_profile_items(tmp_path / "none.json")
    assert missing == [f"{tmp_path / 'none.json'} not found: run `python -m snnlib run "
                       "conversion --profile full`."]


def test_show_prints_lines_skips_none_and_displays_tables(capsys):
    report.show("first", None, "second")
    assert capsys.readouterr().out == "first\nsecond\n"


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
    assert list(loss.get_lines()[0].get_xdata()) == list(range(1, len(hist["loss"]) + 1))


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
    ax = plots.qcfs_accuracy(record).axes[0]
    q = s["qcfs"]["accuracy_vs_steps"]
    np.testing.assert_allclose(_ydata(ax)[1], [100 * q[t] for t in q])
    assert _ydata(ax)[-1][0] == pytest.approx(100 * s["qcfs"]["cnn_accuracy_on_snn_images"])


def test_rate_error_figure_has_a_line_per_layer_and_the_bound(record):
    error = [{1: 0.5, 2: 0.3, 4: 0.2} for _ in range(6)]
    ax = plots.rate_errors(record, {"error": error}, 100).axes[0]
    assert len(ax.get_lines()) == 7 and ax.get_title() == "rate error by layer, 100 test images"
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
