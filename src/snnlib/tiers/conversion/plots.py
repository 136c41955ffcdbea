"""Chapter 6's figures: tier 3's record and networks drawn with :mod:`snnlib.viz`.

Each function draws one figure of the chapter and returns it (the chapter
then calls ``plt.show()``); the generic pieces (accuracy against T, rate
errors, confusion heatmaps, rasters, image grids) are :mod:`snnlib.viz`'s,
and what is specific to tier 3 is here: which curves go together, the
titles, and two figures of the networks themselves,

- :func:`spike_raster`: a few neurons per layer of the converted network
  over T steps (:func:`.convert.record_spikes`), one panel per layer, each
  neuron labelled with the CNN activation its rate stands for;
- :func:`first_layer_filters`: the first convolution's kernels as small RGB
  patches (:func:`filter_images`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from ... import _validate as check
from ... import viz
from .report import _record, layer_names

__all__ = ["accuracy_curve", "confusions", "filter_images", "first_layer_filters",
           "qcfs_accuracy", "qcfs_staircase", "rate_errors", "spike_raster", "training_curve",
           "variants"]


def training_curve(record):
    """Loss and accuracy on the (augmented) training batches against the minutes of training,
    one point per epoch (at the end of it)."""
    hist = _record(record, "plots.training_curve").specific["cnn"]["training"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    minutes = np.cumsum(hist["epoch_wall_s"]) / 60
    axes[0].plot(minutes, hist["loss"], "o-")
    axes[0].set(xlabel="training time (min), a point per epoch", ylabel="cross-entropy",
                title="training loss")
    axes[1].plot(minutes, 100 * np.array(hist["train_accuracy"]), "o-")
    axes[1].set(xlabel="training time (min), a point per epoch", ylabel="accuracy (%)",
                title="accuracy on training batches")
    for ax in axes:
        ax.set_xlim(0, None)
    return fig


def accuracy_curve(record):
    """The converted network's accuracy against T, with the CNN's on the same images."""
    record = _record(record, "plots.accuracy_curve")
    s = record.specific
    fig, ax = plt.subplots(figsize=(6.5, 4))
    viz.accuracy_vs_steps({"SNN (IF neurons, analog input)": s["snn"]["accuracy_vs_steps"]},
                          s["cnn"]["accuracy_on_snn_images"], ax=ax,
                          title=f"{s['snn_images']} test images, {record.profile} profile")
    return fig


def variants(record):
    """Two panels on the variant images: the normalisations (analog input: the percentiles,
    and the channel-wise copy where the record has it), and analog against Poisson input
    (99.99th percentile)."""
    var = _record(record, "plots.variants").specific["variants"]
    curves = var["accuracy_vs_steps"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    viz.accuracy_vs_steps({k: v for k, v in curves.items()
                           if k.startswith("analog") and "float32" not in k},
                          var["cnn_accuracy"], ax=axes[0], title="normalisation")
    viz.accuracy_vs_steps({k: v for k, v in curves.items() if k.endswith("p99.99")},
                          var["cnn_accuracy"], ax=axes[1], title="analog vs Poisson input")
    return fig


def rate_errors(record, probe: dict, n_images: int):
    """Each layer's mean rate error against T (``probe``: :func:`.convert.rates_vs_activations`
    on ``n_images`` images), with the 1/T bound."""
    where = "plots.rate_errors"
    record = _record(record, where)
    check.instance("probe", probe, dict, where=where)
    check.positive_int("n_images", n_images, where=where)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    viz.rate_error_plot(probe["error"], layer_names(record), ax=ax,
                        title=f"rate error by layer, {n_images} test images")
    return fig


def confusions(record, cnn_predictions, labels):
    """The CNN's and the SNN's confusion matrices side by side, on the images the SNN ran on.

    ``cnn_predictions`` and ``labels``: the CNN's predictions and the true
    classes of the test images (at least the record's ``snn_images`` first).
    """
    from ... import metrics
    from ...data import CLASS_NAMES

    where = "plots.confusions"
    record = _record(record, where)
    n = record.specific["snn_images"]
    predictions = np.asarray(cnn_predictions)[:n]
    truth = np.asarray(labels)[:n]
    if len(predictions) != n or len(truth) != n:
        raise ValueError(f"{where}: cnn_predictions and labels must cover the {n} images the "
                         f"SNN ran on, got {len(predictions)} and {len(truth)}")
    s = record.specific
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained")
    viz.confusion_heatmap(metrics.confusion_matrix(truth, predictions, 10), CLASS_NAMES,
                          ax=axes[0], title=f"CNN ({s['cnn']['accuracy_on_snn_images']:.1%})")
    viz.confusion_heatmap(np.array(record.confusion), CLASS_NAMES, ax=axes[1],
                          title=f"SNN, T = {s['snn']['steps']} ({record.accuracy:.1%})")
    return fig


def qcfs_staircase(levels: int = 4, burst: int = 1):
    """IF neurons simulated for ``levels`` steps from :math:`v_0 = 0` and :math:`v_0 = 1/2`,
    against the QCFS activation with ``levels`` levels and :math:`\\lambda = 1`.

    With :math:`v_0 = 1/2` the simulated rate equals
    :math:`h(z) = \\frac{1}{L}\\mathrm{clip}(\\lfloor zL + \\frac{1}{2}\\rfloor, 0, L)`
    (:class:`.cnn.QCFS`) wherever the staircase is not on an edge.

    With ``burst`` :math:`\\Gamma > 1` (``levels`` a multiple of it), both neurons start at
    :math:`v_0 = 1/2` and run for :math:`T = L/\\Gamma` steps: one firing a spike a step at
    most (a staircase of :math:`T` levels), one firing bursts of up to :math:`\\Gamma`
    spikes of :math:`1/\\Gamma` (:class:`snnlib.neurons.IFNeurons`' ``burst``), whose rate
    is :math:`h(z)` with :math:`L = \\Gamma T` levels.
    """
    from ...neurons import IFNeurons, check_burst
    from .cnn import QCFS

    where = "plots.qcfs_staircase"
    check.positive_int("levels", levels, where=where)
    burst = check_burst(burst, where)
    if levels % burst:
        raise ValueError(f"{where}: levels must be a multiple of burst (T = levels / burst "
                         f"steps), got levels={levels} and burst={burst}")
    steps = levels // burst
    neurons = ((0.0, 1), (0.5, 1)) if burst == 1 else ((0.5, 1), (0.5, burst))
    z = torch.linspace(-0.25, 1.25, 601)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for (v0, b), style in zip(neurons, ("-", "--")):
        layer = IFNeurons(v0=v0, burst=b)
        for _ in range(steps):
            layer(z[None, :])
        # spike events over T steps, each worth 1/b: the rate is events / (b T)
        ax.plot(z, layer.spike_map / (b * steps), style,
                label=f"IF neuron, {steps} steps, $v_0$ = {v0}"
                      + (f", bursts of up to {b}" if b > 1 else ""))
    ax.plot(z, QCFS(levels=levels, threshold=1.0)(z).detach(), ":", color="k", lw=2,
            label=f"QCFS, L = {levels}, λ = 1")
    ax.set(xlabel="input per step z", ylabel="spikes per step")
    ax.legend(fontsize=8)
    return fig


def max_pool_spikes(rates=(0.2, 0.45, 0.5, 0.3), steps: int = 32, seed: int = 3):
    """Four spike trains (a spike in each step with probability ``rates``, drawn with
    ``seed``) and the :class:`.convert.SpikingMaxPool` that takes them, over ``steps``
    steps: a raster of the five trains (top) and their running counts (bottom).

    The pool's running count is the largest of the four inputs' running counts at every
    step, so after :math:`T` steps it has fired as often as the most active input, whichever
    input led along the way. Returns the figure.
    """
    from .convert import SpikingMaxPool

    where = "plots.max_pool_spikes"
    check.positive_int("steps", steps, where=where)
    check.integer("seed", seed, where=where)
    p = check.array("rates", rates, ndim=1, low=0.0, high=1.0, where=where)
    if len(p) != 4:
        raise ValueError(f"{where}: rates must be the 4 inputs of a 2 x 2 window, got "
                         f"{len(p)} values")
    g = torch.Generator().manual_seed(seed)
    p = torch.as_tensor(np.asarray(p, dtype=np.float32)).reshape(1, 1, 2, 2)
    pool, ins, outs = SpikingMaxPool(2), [], []
    for _ in range(steps):
        s = (torch.rand(p.shape, generator=g) < p).float()
        ins.append(s.flatten())
        outs.append(pool(s).flatten())
    ins, outs = torch.stack(ins).numpy(), torch.stack(outs).numpy()[:, 0]
    t = np.arange(1, steps + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 4.6), sharex=True, layout="constrained",
                                      gridspec_kw={"height_ratios": [1.1, 1]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(4):
        top.eventplot(t[ins[:, i] > 0], lineoffsets=5 - i, linelengths=0.7, colors=colours[i])
        bottom.step(t, np.cumsum(ins[:, i]), where="post", color=colours[i],
                    label=f"input {i + 1} (rate {float(p.flatten()[i]):g})")
    top.eventplot(t[outs > 0], lineoffsets=0, linelengths=0.7, colors="k")
    bottom.step(t, np.cumsum(outs), where="post", color="k", lw=2.5, ls="--",
                label="max pool's output")
    top.set_yticks([5, 4, 3, 2, 0], ["input 1", "input 2", "input 3", "input 4", "max pool"])
    top.set_title("a spiking max pool over one 2 x 2 window")
    bottom.set(xlabel="step", ylabel="running spike count")
    bottom.legend(fontsize=8, loc="upper left")
    return fig


def qcfs_accuracy(record):
    """Accuracy against T of the ReLU conversion (:math:`v_0 = 0`) and the fine-tuned QCFS
    conversion (its own :math:`v_0`, signed neurons where the record says so; before and
    after its bias calibration where the record has both), with both CNNs' accuracies as
    lines."""
    record = _record(record, "plots.qcfs_accuracy")
    s = record.specific
    fig, ax = plt.subplots(figsize=(6.5, 4))
    q = s["qcfs"]
    q_label = (f"fine-tuned QCFS CNN ({'signed neurons, ' if q.get('signed') else ''}"
               f"v0 = {q['v0']:g})")
    curves = {"converted ReLU CNN (v0 = 0)": s["snn"]["accuracy_vs_steps"]}
    if "uncalibrated" in q:
        curves[f"{q_label}, before bias calibration"] = q["uncalibrated"]["accuracy_vs_steps"]
        q_label += f", biases calibrated for T = {q['bias_calibration']['steps']}"
    curves[q_label] = q["accuracy_vs_steps"]
    viz.accuracy_vs_steps(curves,
                          s["cnn"]["accuracy_on_snn_images"], ax=ax, cnn_label="ReLU CNN",
                          title=f"{s['snn_images']} test images, {record.profile} profile")
    q_color = ax.get_lines()[len(curves) - 1].get_color()  # the QCFS copy's curve
    ax.axhline(100 * s["qcfs"]["cnn_accuracy_on_snn_images"], color=q_color, ls=":", lw=1.5,
               label="QCFS CNN")
    ax.legend(frameon=False, fontsize=8)
    return fig


def spike_raster(recording: dict, *, layer_names=None, ncols: int = 3, title: str | None = None):
    """The spikes of :func:`.convert.record_spikes`, a raster per layer (:func:`snnlib.viz.raster`).

    Each row is one neuron, each tick a spike at that step; rows go from the
    smallest activation (bottom) to the largest, each labelled
    ``activation → spikes``: the normalised CNN activation :math:`a` its rate
    stands for, and how many times it fired in the :math:`T` steps (about
    :math:`T \\min(a, 1)`). The converted network has no time unit: the
    x-axis counts steps.
    """
    where = "plots.spike_raster"
    check.instance("recording", recording, dict, where=where)
    for key in ("spikes", "activations", "steps"):
        if key not in recording:
            raise ValueError(f"{where}: recording must be record_spikes' result (with {key!r}), "
                             f"got keys {sorted(recording)}")
    n = len(recording["spikes"])
    names = list(layer_names) if layer_names is not None else [f"layer {j + 1}" for j in range(n)]
    if len(names) != n:
        raise ValueError(f"{where}: layer_names has {len(names)} names for {n} layers")
    check.positive_int("ncols", ncols, where=where)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 2.5 * nrows), squeeze=False,
                             sharex=True)
    for j, ax in enumerate(axes.flat):
        if j >= n:
            ax.set_axis_off()
            continue
        spikes = recording["spikes"][j]
        if spikes.shape[-1] == 0:  # record_spikes found no positive activation in this layer
            ax.set_title(names[j])
            ax.set_yticks([])
            ax.text(0.5, 0.5, "no active neuron\nfor this image", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
            ax.set_xlabel("time step" if j >= n - ncols else "")
            continue
        counts = spikes.sum(dim=(0, 1)).tolist()
        viz.raster(spikes, 1.0, ax=ax, title=names[j], color=f"C{j % 10}",
                   ylabel="activation → spikes" if j % ncols == 0 else "")
        ax.set_yticks(range(len(counts)), [f"{a:.2f} → {c:.0f}" for a, c in
                                            zip(recording["activations"][j].tolist(), counts)],
                      fontsize=7)
        ax.set_xlabel("time step" if j >= n - ncols else "")
    if title:
        fig.suptitle(title)
    return fig


def filter_images(weight) -> np.ndarray:
    """Convolution kernels ``(K, 3, kh, kw)`` as RGB images ``(K, kh, kw, 3)`` in [0, 1].

    Each kernel is scaled by its own largest absolute weight,

    .. math:: x = \\frac{1}{2} + \\frac{1}{2}\\,\\frac{w}{\\max |w|},

    so that 0.5 (grey) is a zero weight, 1 the strongest positive and 0 the
    strongest negative one of that kernel, in each colour channel: a kernel
    that responds to red shows red, one that responds to "not blue" shows
    yellow. An all-zero kernel is grey.
    """
    where = "plots.filter_images"
    if torch.is_tensor(weight):
        weight = weight.detach().cpu().float().numpy()
    w = np.asarray(check.array("weight", weight, ndim=4, where=where), dtype=np.float64)
    if w.shape[1] != 3:
        raise ValueError(f"{where}: weight must be (K, 3, kh, kw) kernels over RGB images, got "
                         f"shape {w.shape}")
    scale = np.abs(w).reshape(len(w), -1).max(axis=1)
    scaled = w / np.where(scale > 0, scale, 1.0)[:, None, None, None]
    return (0.5 + 0.5 * scaled).transpose(0, 2, 3, 1)


def first_layer_filters(net: nn.Module, *, ncols: int = 16, title: str | None = None,
                        size: float = 0.6):
    """The first convolution's kernels of ``net`` (a :class:`.cnn.ConvNet` or a folded or
    normalised network) as a grid of RGB patches (:func:`filter_images`,
    :func:`snnlib.viz.image_grid`)."""
    where = "plots.first_layer_filters"
    check.instance("net", net, nn.Module, where=where)
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{where}: net has no convolution")
    check.positive_int("ncols", ncols, where=where)
    images = filter_images(conv.weight.detach())
    return viz.image_grid(images, ncols=min(ncols, len(images)), suptitle=title, size=size)
