"""snnlib.viz and snnlib.widgets: the figures show what they claim to show."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import snnlib as sl  # noqa: E402


def redraw(widget):
    """Call an explorer's drawing function with its current values.

    ipywidgets' own update() only logs an exception raised by the callback
    when no IPython kernel runs, so a test must call the function itself.
    """
    before = len(plt.get_fignums())
    widget.f(**widget.kwargs)
    assert len(plt.get_fignums()) == before + 1  # drew exactly one figure


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_importing_snnlib_leaves_rcparams_alone():
    import subprocess
    import sys

    code = ("import matplotlib; before = dict(matplotlib.rcParams); import snnlib; "
            "changed = [k for k, v in matplotlib.rcParams.items() if before[k] != v]; "
            "assert not changed, changed")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_raster_puts_a_tick_at_every_spike_and_nowhere_else():
    spikes = torch.zeros(10, 2, 3, dtype=torch.bool)  # (T, B, neurons)
    spikes[2, 1, 0] = spikes[7, 1, 2] = spikes[4, 0, 1] = True
    ax = sl.viz.raster(spikes, dt_ms=0.5, sample=1)
    offsets = ax.collections[0].get_offsets()
    assert sorted(map(tuple, np.asarray(offsets))) == [(1.0, 0.0), (3.5, 2.0)]
    assert ax.get_xlabel() == "time (ms)" and ax.get_xlim() == (0.0, 5.0)


def test_raster_selects_neurons_in_the_given_order():
    spikes = torch.zeros(4, 1, 2, 2, dtype=torch.bool)
    spikes[1, 0, 1, 1] = True  # flattened neuron 3
    ax = sl.viz.raster(spikes, dt_ms=1.0, neurons=[3, 0])
    assert np.asarray(ax.collections[0].get_offsets()).tolist() == [[1.0, 0.0]]


def test_count_vs_intensity_draws_the_theoretical_line():
    params = sl.encoding.PoissonParams(max_rate_hz=100.0, duration_ms=100.0, dt_ms=1.0)
    x = torch.rand(2, 32, 32, generator=sl.encoding.make_generator(0))
    counts = sl.encoding.spike_counts(sl.encoding.poisson_spikes(x, params, generator=0))
    ax = sl.viz.count_vs_intensity(x, counts, params)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), 10.0 * line.get_xdata(), atol=1e-5)  # r_max D
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()


def test_sample_grid_shows_n_per_class_with_class_names():
    images = np.zeros((30, 32, 32, 3), dtype=np.uint8)
    labels = np.repeat(np.arange(3), 10)
    fig = sl.viz.sample_grid(images, labels, ("a", "b", "c"), n_per_class=4)
    axes = np.array(fig.axes).reshape(3, 4)
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["a", "b", "c"]


def test_encoding_panel_and_reconstruction_row_have_their_panels():
    params = sl.encoding.PoissonParams(max_rate_hz=63.75, duration_ms=50.0, dt_ms=0.5)
    image = np.full((32, 32), 0.5, dtype=np.float32)
    assert len(sl.viz.encoding_panel(image, params).axes) == 3
    fig = sl.viz.reconstruction_row(image, [10, 100], max_rate_hz=63.75, dt_ms=0.5)
    assert [ax.get_title() for ax in fig.axes] == ["input", "10 ms", "100 ms"]


def test_use_style_applies_the_colour_blind_palette():
    import seaborn as sns

    with matplotlib.rc_context():
        sl.viz.use_style()
        cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
        expected = sns.color_palette("colorblind")[:3]
        assert [matplotlib.colors.to_hex(c) for c in cycle[:3]] == [matplotlib.colors.to_hex(c) for c in expected]


def test_encoding_explorer_caps_the_rate_at_one_spike_per_step():
    images = np.random.default_rng(0).random((3, 32, 32)).astype(np.float32)
    widget = sl.widgets.encoding_explorer(images, ("a", "b", "c"), [0, 1, 2], dt_ms=0.5,
                                          duration_ms=20.0)
    sliders = {w.description: w for w in widget.children[:-1]}
    assert sliders["max rate (Hz)"].max == 2000.0  # 1000 / dt_ms
    assert sliders["image"].max == 2
    sliders["max rate (Hz)"].value = 2000.0  # p = 1: allowed, redraws without error
    sliders["duration (ms)"].value = 3.3  # snapped to whole steps of dt
    redraw(widget)


def test_fi_curve_and_stdp_window_plots_draw_the_theory():
    p = sl.neurons.LIFParams()
    ax = sl.viz.fi_curve(p, np.linspace(0, 5, 6), {"PyTorch": np.zeros(6)})
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), sl.neurons.lif_rate_hz(line.get_xdata(), p))
    q = sl.plasticity.STDPParams()
    ax = sl.viz.stdp_window_plot(q)
    for line in ax.get_lines()[:2]:
        np.testing.assert_allclose(line.get_ydata(), sl.plasticity.stdp_window(line.get_xdata(), q))


def test_membrane_trace_marks_each_spike():
    v = np.array([-65.0, -60.0, -65.0, -58.0])
    s = np.array([False, True, False, False])
    ax = sl.viz.membrane_trace(v, s, 0.5, threshold_mv=-52.0)
    segments = ax.collections[0].get_segments()
    assert len(segments) == 1 and segments[0][0][0] == 1.0  # the spike at the end of step 2


def test_lif_and_stdp_explorers_keep_parameters_valid():
    lif = sl.widgets.lif_explorer(sl.neurons.LIFParams(dt_ms=0.5), current_na=1.0)
    sliders = {w.description: w for w in lif.children[:-1]}
    assert sliders["threshold (mV)"].min > -65.0  # above reset
    sliders["t_ref (ms)"].value = 2.3  # not a whole number of steps: snapped
    redraw(lif)
    stdp = sl.widgets.stdp_explorer()
    {w.description: w for w in stdp.children[:-1]}["A-"].value = 0.0
    redraw(stdp)
    assert len(sl.viz.weight_evolution(np.arange(3), np.random.rand(3, 4), {"a": [0, 1], "b": [2, 3]})) == 2


def test_tier1_figures_draw_what_they_are_given():
    import matplotlib.pyplot as plt

    w = np.random.default_rng(0).random((12, 1024))
    viz = sl.viz
    axes = viz.receptive_fields(w, ncols=5, titles=list(range(12)))
    assert len(axes) == 15 and len(axes[11].images) == 1 and len(axes[12].images) == 0
    np.testing.assert_array_equal(axes[3].images[0].get_array(), w[3].reshape(32, 32))
    ax = viz.rate_histograms({"layer 1": np.array([0.0, 1.0, 2.0]), "layer 2": np.array([0.5])})
    assert "1 silent" in ax.get_legend().get_texts()[0].get_text()
    ax = viz.weight_heatmap(w[:, :20])
    assert ax.images[0].get_array().shape == (12, 20)
    ax = viz.tier1_architecture(1024, 100, 50)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "layer 1: 100 excitatory" in texts and "50 inhibitory" in texts
    plt.close("all")


def test_receptive_field_explorer_shows_the_chosen_neuron_and_image():
    rng = np.random.default_rng(0)
    w, x = rng.random((5, 1024)), rng.random((4, 32, 32))
    counts = np.arange(20).reshape(4, 5)
    widget = sl.widgets.receptive_field_explorer(w, x, counts, labels=[0, 1, 2, 3],
                                                 class_names=list("abcd"))
    sliders = {s.description: s for s in widget.children[:-1]}
    assert sliders["neuron"].max == 4 and sliders["image"].max == 3
    sliders["neuron"].value, sliders["image"].value = 2, 3
    redraw(widget)
    fig = plt.gcf()
    ax_w, ax_x, ax_layer, ax_neuron = fig.axes
    np.testing.assert_array_equal(ax_w.images[0].get_array(), w[2].reshape(32, 32))
    assert ax_x.get_title() == "image 3 (d)"
    assert [p.get_height() for p in ax_layer.patches] == counts[3].tolist()
    assert [p.get_height() for p in ax_neuron.patches] == counts[:, 2].tolist()
    assert "neuron 2 fired 17" in ax_layer.get_title()


def test_tier1_chapter_figures_show_their_data():
    names = [f"c{k}" for k in range(10)]
    history = [{"images": 50 * k, "accuracy": 0.1 * k, "running_accuracy": 0.05 * k}
               for k in range(1, 5)]
    ax = sl.viz.running_accuracy({"trained": history})
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.05, 0.1, 0.15, 0.2])
    assert ax.lines[-1].get_ydata()[0] == 0.1  # chance
    confusion = np.diag(np.arange(1, 11)) + 1
    ax = sl.viz.confusion_heatmap(confusion, names)
    shown = ax.collections[0].get_array().reshape(10, 10)
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.diag(shown), (np.arange(1, 11) + 1) / (np.arange(1, 11) + 10))
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    # five images of class 0 got no decision: its row (11 decided) is a fraction of all 16
    ax = sl.viz.confusion_heatmap(confusion, names, class_totals=confusion.sum(axis=1) + np.r_[5, [0] * 9])
    shown = ax.collections[0].get_array().reshape(10, 10)
    assert shown[0].sum() == pytest.approx(11 / 16) and shown[0, 0] == pytest.approx(2 / 16)
    with pytest.raises(ValueError, match="at least the images"):
        sl.viz.confusion_heatmap(confusion, names, class_totals=np.ones(10))
    with pytest.raises(ValueError, match="class names"):
        sl.viz.output_weights(np.zeros((20, 7)), 2, names[:3])
    ax = sl.viz.output_weights(np.random.default_rng(0).random((20, 7)), 2, names)
    assert ax.images[0].get_array().shape == (20, 7)
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    plt.close("all")


def test_tier1_image_explorer_shows_each_layer_and_the_decision():
    rng = np.random.default_rng(0)
    images, labels = rng.random((3, 32, 32)), np.array([2, 0, 1])

    asked = []

    def spikes_of(k):
        asked.append(k)
        return {"hidden": [{"neuron": np.array([0, 1, 1]), "t_ms": np.array([1.0, 2.0, 3.0])},
                           {"neuron": np.array([4]), "t_ms": np.array([5.0])}],
                "output": {"neuron": np.array([2, 3]), "t_ms": np.array([6.0, 7.0])},
                "decision": 1, "class_counts": np.array([0, 2, 0])}

    widget = sl.widgets.tier1_image_explorer(images, labels, ["a", "b", "c"], spikes_of,
                                             duration_ms=50.0, neurons_per_class=2)
    widget.children[0].value = 2
    redraw(widget)
    fig = plt.gcf()
    titles = [ax.get_title(loc="left") for ax in fig.axes] + [ax.get_title() for ax in fig.axes]
    assert "hidden layer 1: 3 spikes" in titles and "output layer: 2 spikes" in titles
    assert "decision: b (right)" in titles and "true class: b" in titles
    assert asked[-1] == 2
    plt.close("all")


def _tier2_net():
    from snnlib.tiers import dog_lif as D

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    net = D.DoGLIF(D.DoGLIFParams(n_filters=6, train_patches=400, patch_batch=200), seed=0)
    net.fit(images, progress=False)
    return net, images


def test_dog_panel_shows_on_off_and_opponent_channels():
    image = np.zeros((32, 32, 3), np.uint8)
    image[12:20, 12:20] = (255, 0, 0)  # a red square on black
    axes = sl.viz.dog_panel(image, sl.retina.DoGParams(1.0, 2.0))
    on = axes[2].images[0].get_array()
    red_green = axes[4].images[0].get_array()
    assert on.max() > 0 and red_green[16, 16] > 0  # red centre: positive red-green
    kernel = axes[1].lines[0].get_ydata()
    assert kernel[len(kernel) // 2] > 0 and kernel.min() < 0  # centre excites, surround inhibits


def test_conv_filters_draw_on_minus_off_as_colour():
    w = torch.zeros(3, 150)
    w[0, 0:25] = 1.0      # ON, red channel: a red patch
    w[1, 75 + 50:75 + 75] = 1.0  # OFF, blue channel: a yellow-ish (no blue) patch
    fig = sl.viz.conv_filters(w, 5, ncols=3)
    img0 = fig.axes[0].images[0].get_array()
    img1 = fig.axes[1].images[0].get_array()
    assert img0[..., 0].min() == pytest.approx(1.0) and img0[..., 1].max() == pytest.approx(0.5)
    assert img1[..., 2].max() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="need 150"):
        sl.viz.conv_filters(torch.zeros(2, 100), 5)


def test_tier2_figures_and_explorers_show_the_layer():
    net, images = _tier2_net()
    rec = net.spikes_of_image(images[0], seed=0)
    fig = sl.viz.tier2_position_panel(rec, dt_ms=1.0, v_thresh_mv=-52.0 + net.theta_mv, position=5)
    n_input_ticks = len(fig.axes[0].collections[0].get_offsets())
    assert n_input_ticks == int(rec["input_trains"][:, 5].sum())
    fmap = sl.viz.feature_maps(rec["counts"], images[0], filters=[0, 1], w_mv=net.w_mv, patch_px=5)
    shown = fmap.axes[4].images[0].get_array()  # bottom row, filter 0
    np.testing.assert_array_equal(np.asarray(shown), rec["counts"][:, 0].reshape(28, 28).numpy())
    redraw(sl.widgets.dog_explorer(images[:3]))
    w = sl.widgets.tier2_position_explorer(net, images[:3])
    redraw(w)
    assert (w.kwargs["r"], w.kwargs["c"]) == (14, 14)  # the centre of 28 x 28 positions

    def input_ticks(max_rate_hz):
        w.f(**{**w.kwargs, "r": 10, "c": 10, "max_rate_hz": max_rate_hz})
        return len(plt.gcf().axes[0].collections[0].get_offsets())

    assert input_ticks(10.0) < input_ticks(500.0)  # the rate slider reaches the encoding
    with pytest.raises(ValueError, match="at least one filter"):
        sl.viz.feature_maps(rec["counts"], images[0], filters=[])


def test_dog_explorer_refuses_a_narrow_surround_in_words(capsys):
    w = sl.widgets.dog_explorer(np.zeros((2, 32, 32, 3), np.uint8))
    w.f(image_index=0, sigma_c=2.0, sigma_s=1.5)
    assert "must be wider than the centre" in capsys.readouterr().out


def test_tier3_figures_show_rates_accuracy_and_the_explorer_follows_t():
    from torch import nn

    from snnlib.tiers import conversion as C

    ax = sl.viz.if_rate_plot(steps=(4,))
    staircase, relu = ax.lines[0], ax.lines[1]
    z, r = staircase.get_xdata(), staircase.get_ydata()
    assert r[np.searchsorted(z, 0.6)] == pytest.approx(0.5)  # floor(4 x 0.6) / 4
    assert relu.get_ydata().max() == pytest.approx(1.0)
    ax = sl.viz.accuracy_vs_steps({"SNN": {"1": 0.2, "4": 0.5, "16": 0.8}}, 0.85)
    assert list(ax.lines[0].get_ydata()) == pytest.approx([20, 50, 80])
    assert ax.lines[1].get_ydata()[0] == pytest.approx(85)
    ax = sl.viz.rate_error_plot([{1: 0.5, 8: 0.1}, {1: 0.6, 8: 0.2}], ["a", "b"])
    assert len(ax.lines) == 3  # two layers and the 1/T line

    torch.manual_seed(0)
    folded = C.fold_batchnorm(C.ConvNet(C.ConvNetParams(widths=(4, 6), pool_after=(0, 1))).eval())
    images = torch.rand(3, 3, 32, 32)
    w = sl.widgets.conversion_explorer(folded, images, images, [str(k) for k in range(10)],
                                       normalise=C.normalise, trace=C.rates_vs_activations,
                                       labels=[0, 1, 2], steps=(1, 4, 16))
    redraw(w)

    def snn_bars(steps):
        w.f(**{**w.kwargs, "steps_t": steps, "layer_index": 0})
        bars = plt.gcf().axes[1].containers[1]
        return np.array([b.get_height() for b in bars])

    trace = C.rates_vs_activations(C.normalise(folded, images, percentile=99.99)[0], images[:1],
                                   steps=(1, 4, 16), keep_rates=True)
    np.testing.assert_allclose(snn_bars(4), trace["outputs"][4][0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(snn_bars(16), trace["outputs"][16][0].numpy(), rtol=1e-5)
    # a QCFS network's spiking layers are its QCFS activations: the last one is shown
    qcfs = nn.Sequential(*[C.QCFS(4) if isinstance(m, nn.ReLU) else m for m in folded])
    w = sl.widgets.conversion_explorer(qcfs, images, images, [str(k) for k in range(10)],
                                       normalise=C.normalise, trace=C.rates_vs_activations,
                                       labels=[0, 1, 2], steps=(1, 4, 16))
    assert w.kwargs["layer_index"] == len(C.relu_layers(qcfs)) - 1 == 1
    assert isinstance(folded[0], nn.Conv2d)


def test_tier1_conv_figures_show_their_data():
    w = np.zeros((3, 50))
    w[0, 12] = 1.0  # ON at the centre
    w[1, 25 + 12] = 1.0  # OFF at the centre
    axes = sl.viz.gray_filters(w, 5, ncols=3)
    assert axes[0].images[0].get_array()[2, 2] > 0 and axes[1].images[0].get_array()[2, 2] < 0
    with pytest.raises(ValueError, match=r"w_mv must be \(K, 2"):
        sl.viz.gray_filters(np.zeros((2, 49)), 5)
    gray = np.random.default_rng(0).random((2, 8, 8))
    signed = gray - 0.5
    fig = sl.viz.retina_panel(gray, signed, np.ones((3, 3)), titles=["a", "b"])
    on = fig.axes[3].images[0].get_array()
    np.testing.assert_allclose(on, np.maximum(signed[0], 0))
    fig = sl.viz.spike_rasters({"layer 1": (np.array([0, 5]), np.array([1, 2]))}, steps=15,
                               dt_ms=2.0, image=gray[0])
    assert "2 spikes" in fig.axes[1].get_title(loc="left")
    with pytest.raises(ValueError, match="titles has 1 names for 2 images"):
        sl.viz.retina_panel(gray, signed, np.ones((3, 3)), titles=["a"])
    with pytest.raises(ValueError, match="trains must be a non-empty dict"):
        sl.viz.spike_rasters({}, steps=15, dt_ms=2.0)
    plt.close("all")


def test_filter_map_panel_and_explorer_show_the_chosen_filter():
    counts = np.zeros((4, 4, 3))
    counts[1, 2, 2] = 5
    w = np.random.default_rng(0).random((3, 18))
    fig = sl.viz.filter_map_panel(np.zeros((6, 6)), w, 3, counts, 2)
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), counts[:, :, 2])
    assert "(5)" in fig.axes[2].get_title()
    with pytest.raises(ValueError, match="k in"):
        sl.viz.filter_map_panel(np.zeros((6, 6)), w, 3, counts, 3)
    calls = []
    widget = sl.widgets.filter_map_explorer(np.zeros((2, 6, 6)), w, 3,
                                            lambda i: calls.append(i) or counts)
    widget.children[1].value = 1  # another filter: the image's counts are reused
    assert calls == [0]
    plt.close("all")


# --- viz.table ---------------------------------------------------------------------------------
def test_table_formats_each_column_and_aligns_numbers_right():
    t = sl.viz.table(
        {"the tier": {"test accuracy": 0.41234, "spikes per image": 186547.03125, "note": "best"},
         "chance": {"test accuracy": 0.1, "spikes per image": 12, "note": None}},
        formats={"test accuracy": ".1%", "spikes per image": ",.0f"},
        caption="Accuracy", index_name="network", notes="Measured on 400 test images.")
    assert t.columns == ("test accuracy", "spikes per image", "note")
    assert t.cells == (("41.2%", "186,547", "best"), ("10.0%", "12", "n/a"))
    assert t.numeric == (True, True, False)
    assert repr(t) == str(t) == t.to_text() == "\n".join([
        "Accuracy",
        "network   test accuracy  spikes per image  note",
        "--------  -------------  ----------------  ----",
        "the tier          41.2%           186,547  best",
        "chance            10.0%                12  n/a",
        "Measured on 400 test images.",
    ])


def test_table_html_is_one_real_table_with_a_caption_and_escaped_text():
    t = sl.viz.table({"a <b>": {"x": 0.5, "kind": "cat & dog"}}, formats={"x": "{:.2f} Hz"},
                     caption="Rates", index_name="layer")
    assert t._repr_html_() == t.to_html() == "\n".join([
        '<table class="snnlib-table">',
        "<caption>Rates</caption>",
        '<thead><tr><th scope="col">layer</th><th scope="col" style="text-align: right">x</th>'
        '<th scope="col" style="text-align: left">kind</th></tr></thead>',
        "<tbody>",
        '<tr><th scope="row">a &lt;b&gt;</th><td style="text-align: right">0.50 Hz</td>'
        '<td style="text-align: left">cat &amp; dog</td></tr>',
        "</tbody></table>",
    ])


def test_table_default_formats_lists_and_missing_values():
    pd = pytest.importorskip("pandas")
    stats = pd.DataFrame({
        "stdp": {"rate_hz": 30.982113, "spikes_per_image": 186547.03125, "silent_filters": 0.0,
                 "percentiles": [4.689477, 26.361757, 70.263725], "ops": 33872060.0},
        "random": {"rate_hz": 57.882332, "spikes_per_image": 348516.46875,
                   "silent_filters": float("nan"), "percentiles": [24.06, 58.46, 91.1],
                   "ops": 0.00025},
    }).T
    stats.index.name = "layer"
    t = sl.viz.table(stats, formats={"percentiles": ".1f"})
    assert t.index_name == "layer" and t.index == ("stdp", "random")
    assert t.cells == (("30.98", "186,547", "0", "4.7, 26.4, 70.3", "33,872,060"),
                       ("57.88", "348,516", "n/a", "24.1, 58.5, 91.1", "0.0002500"))
    assert all(t.numeric)
    # a Series is one column; numpy and torch scalars format like Python numbers
    s = sl.viz.table(pd.Series({"a": np.float32(0.25), "b": torch.tensor(3)}, name="value"),
                     formats=lambda v: f"<{v}>")
    assert s.columns == ("value",) and s.cells == (("<0.25>",), ("<3>",))


def test_table_takes_a_compare_table_with_its_title_and_notes():
    src = sl.compare.Table(("network", "test accuracy", "hardware"),
                           (("tier 1", "41.15%", "CPU, 2 cores"),), "The tiers", ("E = ...",))
    t = sl.viz.table(src)
    assert (t.index_name, t.index, t.columns) == ("network", ("tier 1",), ("test accuracy", "hardware"))
    assert t.cells == (("41.15%", "CPU, 2 cores"),)
    assert t.numeric == (True, False)  # text that reads as a number is right-aligned too
    assert (t.caption, t.notes) == ("The tiers", ("E = ...",))
    assert t.to_html().endswith('</tbody></table>\n<p class="snnlib-table-note"><small>E = ...'
                                '</small></p>')
    units = sl.viz.table({"a": {"t": "19.2 min", "e": "9.30 µJ", "n": "n/a", "x": "5 x 5"}})
    assert units.numeric == (True, True, False, False)
    other = sl.viz.table(src, caption="", notes=())
    assert (other.caption, other.notes) == ("", ())
    assert sl.viz.table({5.0: {"x": 1}, 0.25: {"x": 2}}).index == ("5", "0.25")


def test_table_refuses_what_it_cannot_show():
    with pytest.raises(ValueError, match="'acc'.*columns: 'accuracy'"):
        sl.viz.table({"a": {"accuracy": 0.5}}, formats={"acc": ".1%"})
    with pytest.raises(TypeError, match="row 'a' is a float"):
        sl.viz.table({"a": 0.5})
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        sl.viz.table([1, 2, 3])
    with pytest.raises(ValueError, match=r"formats\['n'\] = '\{:.1%\} \{\}' cannot format 3"):
        sl.viz.table({"a": {"n": 3}}, formats={"n": "{:.1%} {}"})
    with pytest.raises(TypeError, match="must return a string"):
        sl.viz.table({"a": {"n": 3}}, formats=lambda v: v)
    with pytest.raises(ValueError, match="no rows"):
        sl.viz.table({})


def test_viz_docstring_examples_run():
    import doctest

    result = doctest.testmod(sl.viz)
    assert result.attempted > 0 and result.failed == 0
