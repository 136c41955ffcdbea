"""Figures and tables shared by every chapter: sample grids, rasters, encoding panels.

Nothing here changes matplotlib's global state on import. A chapter calls
:func:`use_style` once in its first cell to get the book's look (seaborn
``ticks`` theme and the colour-blind-friendly ``colorblind`` palette).
Every function takes an optional ``ax`` (or returns a new figure), titles
its axes and labels them with units. :func:`table` shows the chapters' tables:
HTML in the book, aligned text in a terminal.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import _validate as check
from . import encoding as enc
from . import neurons as nrn
from . import plasticity as pl

__all__ = [
    "NA",
    "PALETTE",
    "DisplayTable",
    "accuracy_vs_steps",
    "conversion_image_panel",
    "if_rate_plot",
    "rate_error_plot",
    "confusion_heatmap",
    "conv_filters",
    "dog_panel",
    "feature_maps",
    "tier2_position_panel",
    "output_weights",
    "running_accuracy",
    "tier1_spike_panel",
    "count_vs_intensity",
    "fi_curve",
    "lif_panel",
    "membrane_trace",
    "neuron_response_panel",
    "stdp_panel",
    "stdp_window_plot",
    "tier1_architecture",
    "weight_evolution",
    "weight_heatmap",
    "encoding_panel",
    "image_grid",
    "raster",
    "rate_histograms",
    "receptive_fields",
    "reconstruction_error_plot",
    "reconstruction_row",
    "sample_grid",
    "table",
    "use_style",
]

PALETTE = "colorblind"
"""The seaborn palette of the book (safe for the common colour-vision deficiencies)."""


def use_style(context: str = "notebook") -> None:
    """Apply the book's figure style (seaborn ``ticks``, ``colorblind`` palette).

    Call it once at the top of a chapter; it sets matplotlib's rcParams.
    """
    check.choice("context", context, ("paper", "notebook", "talk", "poster"), where="viz.use_style")
    import seaborn as sns

    sns.set_theme(context=context, style="ticks", palette=PALETTE,
                  rc={"figure.dpi": 100, "savefig.dpi": 100, "axes.titlesize": "medium",
                      "image.cmap": "gray", "figure.constrained_layout.use": True})


def _to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def _array(name: str, x, where: str, **kwargs) -> np.ndarray:
    """``x`` as a numpy array, checked (finite, not empty, ``ndim``/``low``/``high``...)."""
    if torch.is_tensor(x):
        x = x.detach().cpu()
        if x.dtype == torch.bfloat16:
            x = x.float()
        x = x.numpy()
    return np.asarray(check.array(name, x, where=where, **kwargs))


def _positive(name: str, value, where: str) -> float:
    return check.number(name, value, low=0, low_open=True, where=where)


def _count(name: str, value, where: str, low: int = 1) -> int:
    return check.integer(name, value, low=low, where=where)


def _index(name: str, value, n: int, where: str) -> int:
    """An integer in [0, n)."""
    return check.integer(name, value, low=0, high=n - 1, where=where)


def _class_names(class_names, where: str, n: int | None = None) -> list:
    if isinstance(class_names, str) or not hasattr(class_names, "__len__") or not len(class_names):
        raise TypeError(f"{where}: class_names must be a sequence of names, got "
                        f"{type(class_names).__name__}")
    if n is not None and len(class_names) != n:
        raise ValueError(f"{where}: class_names has {len(class_names)} names, {n} expected")
    return list(class_names)


def _image(name: str, image, where: str, *, rgb: bool | None = None) -> np.ndarray:
    """One image: grayscale (H, W) floats in [0, 1], or RGB (H, W, 3) uint8 or floats in [0, 1]."""
    x = _to_numpy(image)
    if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[-1] != 3):
        hint = ("; for a batch of one image, pass image[0]" if x.ndim == 3 and x.shape[0] == 1
                else "; a channels-first (3, H, W) image: permute it to (H, W, 3)"
                if x.ndim == 3 and x.shape[0] == 3 else "")
        raise ValueError(f"{where}: {name} must be one image, (H, W) or (H, W, 3), got shape "
                         f"{tuple(x.shape)}{hint}")
    x, _ = check.images(name, x[None], where=where, channels=(3,))
    x = np.asarray(x)[0]
    if rgb is True and x.ndim != 3:
        raise ValueError(f"{where}: {name} must be an RGB (H, W, 3) image, got shape {x.shape}")
    if rgb is False and x.ndim != 2:
        raise ValueError(f"{where}: {name} must be a grayscale (H, W) image, got shape {x.shape}")
    return x


def _show_image(ax, image, title: str | None = None) -> None:
    """Show an RGB uint8 image or a [0, 1] grayscale image without axes."""
    image = _to_numpy(image)
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize="small")


def image_grid(images, titles: Sequence[str] | None = None, *, ncols: int = 8,
               suptitle: str | None = None, size: float = 1.2):
    """A grid of images (RGB uint8 or grayscale in [0, 1]); returns the figure."""
    where = "viz.image_grid"
    images = np.asarray(check.images("images", _to_numpy(images), where=where, channels=(3,))[0])
    n = len(images)
    if titles is not None and len(titles) != n:
        raise ValueError(f"{where}: titles has {len(titles)} entries for {n} images")
    _count("ncols", ncols, where)
    _positive("size", size, where)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            _show_image(ax, images[i], titles[i] if titles is not None else None)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def sample_grid(images, labels, class_names: Sequence[str], *, n_per_class: int = 8,
                seed: int = 0, title: str = "CIFAR-10 samples, one row per class"):
    """``n_per_class`` random examples of each class, one row per class.

    ``images`` may be RGB uint8 ``(N, 32, 32, 3)`` or grayscale ``(N, 32, 32)``
    in [0, 1]. The examples are drawn with ``numpy.random.default_rng(seed)``.
    """
    from .data import balanced_subset

    where = "viz.sample_grid"
    images = np.asarray(check.images("images", _to_numpy(images), where=where, channels=(3,))[0])
    labels = np.asarray(check.labels("labels", _to_numpy(labels), length=len(images), where=where))
    _class_names(class_names, where)
    if len(labels) and int(labels.max()) >= len(class_names):
        raise ValueError(f"{where}: labels go up to {int(labels.max())}, but class_names has "
                         f"{len(class_names)} names")
    _count("n_per_class", n_per_class, where)
    idx = balanced_subset(labels, n_per_class, seed=seed)
    n_classes = len(np.unique(labels))
    fig, axes = plt.subplots(n_classes, n_per_class,
                             figsize=(1.0 * n_per_class + 1.2, 1.0 * n_classes + 0.4),
                             squeeze=False)
    for k, i in enumerate(idx):
        row, col = divmod(k, n_per_class)
        ax = axes[row, col]
        _show_image(ax, images[i])
        if col == 0:
            ax.set_ylabel(class_names[labels[i]], rotation=0, ha="right", va="center",
                          fontsize="small")
    fig.suptitle(title)
    return fig


def raster(spikes, dt_ms: float, *, sample: int = 0, neurons=None, ax=None,
           title: str = "Spike raster", color=None, ylabel: str = "neuron"):
    """Raster plot of one sample's spikes: a tick at (time, neuron) for every spike.

    Parameters
    ----------
    spikes : torch.Tensor or numpy.ndarray
        ``(T, B, ...)`` time-major spikes; the trailing axes are flattened
        into neurons.
    dt_ms : float
        Time step in ms (for the time axis).
    sample : int
        Which batch element to draw.
    neurons : sequence of int, optional
        Which (flattened) neurons to draw, in order from bottom to top.
    """
    where = "viz.raster"
    s = _array("spikes", spikes, where)
    if s.ndim < 2:
        raise ValueError(f"{where}: spikes must be time-major (T, B, ...), got shape {s.shape}.")
    _positive("dt_ms", dt_ms, where)
    _index("sample", sample, s.shape[1], where)
    s = s[:, sample].reshape(s.shape[0], -1)
    if neurons is not None:
        idx = np.asarray(check.array("neurons", np.asarray(neurons), ndim=1, low=0,
                                     high=s.shape[1] - 1, where=where))
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{where}: neurons must be integer indices, got dtype {idx.dtype}")
        s = s[:, idx]
    t, n = np.nonzero(s)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    ax.scatter(t * dt_ms, n, marker="|", s=12, linewidths=0.8,
               color=color if color is not None else "C0")
    ax.set_xlim(0, s.shape[0] * dt_ms)
    ax.set_ylim(-0.5, s.shape[1] - 0.5)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax


def count_vs_intensity(intensities, counts, params: enc.PoissonParams, *, ax=None,
                       title: str = "Spike count against pixel intensity"):
    """Measured spike counts against intensity, with the theory E[n] +- 1 s.d.

    Theory: :math:`E[n] = x r_{max} D`, :math:`\\sigma = \\sqrt{T p (1 - p)}`
    with :math:`p = x r_{max} \\Delta t` (see :mod:`snnlib.encoding`).
    """
    where = "viz.count_vs_intensity"
    check.instance("params", params, enc.PoissonParams, where=where)
    x = _array("intensities", intensities, where, low=0, high=1).ravel()
    n = _array("counts", counts, where, low=0).ravel()
    if x.shape != n.shape:
        raise ValueError(f"{where}: intensities ({x.size}) and counts ({n.size}) must have the "
                         "same number of values")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    ax.hexbin(x, n, gridsize=40, bins="log", cmap="Blues", mincnt=1, linewidths=0)
    grid = np.linspace(0, 1, 101)
    mean = _to_numpy(enc.expected_counts(grid, params))
    p = grid * params.p_max
    sd = np.sqrt(params.n_steps * p * (1 - p))
    ax.plot(grid, mean, color="C1", lw=2, label=r"theory $E[n] = x\,r_{max}\,D$")
    ax.fill_between(grid, mean - sd, mean + sd, color="C1", alpha=0.25,
                    label=r"theory $\pm 1$ s.d.")
    ax.set_xlabel("pixel intensity x (0-1)")
    ax.set_ylabel(f"spike count in {params.duration_ms:g} ms")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    return ax


def reconstruction_error_plot(durations_ms, measured_rmse, theory_rmse, *, ax=None,
                              title: str = "Reconstruction error against duration"):
    """RMS error of intensities decoded from counts, measured and theoretical, log-log."""
    where = "viz.reconstruction_error_plot"
    d = _array("durations_ms", durations_ms, where, ndim=1)
    if d.min() <= 0:
        raise ValueError(f"{where}: durations_ms must be > 0 (a log axis), got {d.min():g}")
    for name, values in (("measured_rmse", measured_rmse), ("theory_rmse", theory_rmse)):
        v = _array(name, values, where, ndim=1, low=0)
        if len(v) != len(d):
            raise ValueError(f"{where}: {name} has {len(v)} values for {len(d)} durations_ms")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(durations_ms, theory_rmse, color="C1", lw=2, label=r"theory $\propto 1/\sqrt{D}$")
    ax.plot(durations_ms, measured_rmse, "o", color="C0", label="measured")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("presentation duration D (ms)")
    ax.set_ylabel("RMS error of decoded intensity")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def encoding_panel(image, params: enc.PoissonParams, *, seed: int = 0,
                   n_raster_neurons: int = 64, title: str | None = None):
    """One image through the encoder: input, raster of its middle rows, decoded image.

    Parameters
    ----------
    image : array-like
        ``(32, 32)`` grayscale intensities in [0, 1].
    params : PoissonParams
        Encoding parameters.
    seed : int
        Seed of the spike draw.
    n_raster_neurons : int
        How many pixels (from the middle rows, in reading order) the raster shows.
    """
    where = "viz.encoding_panel"
    image = _image("image", image, where, rgb=False).astype(np.float32)
    check.instance("params", params, enc.PoissonParams, where=where)
    check.integer("seed", seed, low=0, where=where)
    check.integer("n_raster_neurons", n_raster_neurons, low=1, high=image.size, where=where)
    spikes = enc.poisson_spikes(image[None], params, generator=seed)
    decoded = enc.decode_counts(enc.spike_counts(spikes), params)[0].clamp(0, 1)
    first = (image.size - n_raster_neurons) // 2
    neurons = np.arange(first, first + n_raster_neurons)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4),
                             gridspec_kw={"width_ratios": [1, 2.2, 1]})
    _show_image(axes[0], image, "input intensities")
    axes[0].axhline(first // image.shape[1] - 0.5, color="C1", lw=1)
    axes[0].axhline((first + n_raster_neurons) // image.shape[1] - 0.5, color="C1", lw=1)
    raster(spikes, params.dt_ms, neurons=neurons, ax=axes[1],
           title=f"spikes of the {n_raster_neurons} pixels between the orange lines",
           ylabel="pixel")
    _show_image(axes[2], decoded, f"decoded from counts\n(RMS error "
                f"{float(np.sqrt(np.mean((decoded.numpy() - image) ** 2))):.3f})")
    fig.suptitle(title or f"Poisson encoding: max rate {params.max_rate_hz:g} Hz, "
                 f"duration {params.duration_ms:g} ms, dt {params.dt_ms:g} ms "
                 f"({int(spikes.sum())} spikes)")
    return fig


def reconstruction_row(image, durations_ms, *, max_rate_hz: float, dt_ms: float,
                       seed: int = 0, title: str = "Images decoded from spike counts"):
    """The input image, then the image decoded from spike counts for each duration.

    Decoding: :math:`\\hat x = n / (r_{max} D)` (:func:`snnlib.encoding.decode_counts`),
    clipped to [0, 1] for display only.
    """
    where = "viz.reconstruction_row"
    image = _image("image", image, where, rgb=False).astype(np.float32)
    durations = _array("durations_ms", durations_ms, where, ndim=1, low=0)
    for duration in durations.tolist():  # every duration checked before any is drawn
        try:
            enc.PoissonParams(max_rate_hz=max_rate_hz, duration_ms=float(duration), dt_ms=dt_ms)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: {err}") from None
    check.integer("seed", seed, low=0, where=where)
    gen = enc.make_generator(seed)
    fig, axes = plt.subplots(1, len(durations_ms) + 1,
                             figsize=(1.6 * (len(durations_ms) + 1), 2.1))
    _show_image(axes[0], image, "input")
    for ax, duration in zip(axes[1:], durations_ms):
        params = enc.PoissonParams(max_rate_hz=max_rate_hz, duration_ms=float(duration), dt_ms=dt_ms)
        counts = enc.spike_counts(enc.poisson_spikes(image[None], params, generator=gen))
        _show_image(ax, enc.decode_counts(counts, params)[0].clamp(0, 1), f"{duration:g} ms")
    fig.suptitle(f"{title} (max rate {max_rate_hz:g} Hz)")
    return fig


# --- neurons and plasticity (chapter 2) -----------------------------------

def membrane_trace(v_mem, spikes, dt_ms: float, *, threshold_mv=None, ax=None, label=None,
                   color=None, linestyle="-", title: str | None = None):
    """The potential of one neuron over time, with its spikes drawn as strokes to 0 mV.

    Parameters
    ----------
    v_mem, spikes : array-like
        ``(T,)`` potential (mV) at the end of each step, and bool spikes.
    threshold_mv : float or array-like, optional
        The threshold (constant, or ``(T,)`` when it adapts), drawn dashed.
    """
    where = "viz.membrane_trace"
    v = _array("v_mem", v_mem, where, ndim=1).astype(float).copy()
    s = _array("spikes", spikes, where, ndim=1).astype(bool)
    if len(s) != len(v):
        raise ValueError(f"{where}: spikes has {len(s)} steps, v_mem {len(v)}; they must match")
    _positive("dt_ms", dt_ms, where)
    if threshold_mv is not None:
        th = _array("threshold_mv", threshold_mv, where, nonempty=True)
        if th.shape not in ((), (1,), v.shape):
            raise ValueError(f"{where}: threshold_mv must be one number or one per step "
                             f"({len(v)},), got shape {th.shape}")
    t = (np.arange(len(v)) + 1) * dt_ms
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    line, = ax.plot(t, v, color=color, lw=1.2, label=label, linestyle=linestyle)
    ax.vlines(t[s], v[s], 0.0, color=line.get_color(), lw=1.0, linestyle=linestyle)
    if threshold_mv is not None:
        th = np.broadcast_to(_to_numpy(threshold_mv), v.shape)
        ax.plot(t, th, color="0.4", lw=1.0, linestyle="--", label="threshold")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("membrane potential (mV)")
    if title is not None or not ax.get_title():
        ax.set_title(title or "Membrane potential")
    return ax


def fi_curve(p: nrn.LIFParams, currents_na, measured: dict | None = None, *, ax=None,
             title: str = "f-I curve: firing rate against input current"):
    """Analytic f-I curve (:func:`snnlib.neurons.lif_rate_hz`) with measured rates as markers.

    ``measured`` maps a label ("PyTorch", "Brian2") to rates (Hz) at ``currents_na``.
    """
    where = "viz.fi_curve"
    check.instance("p", p, nrn.LIFParams, where=where)
    currents = _array("currents_na", currents_na, where, ndim=1).astype(float)
    for label, rates in (measured or {}).items():
        r = _array(f"measured[{label!r}]", rates, where, low=0)
        if r.shape != currents.shape:
            raise ValueError(f"{where}: measured[{label!r}] has shape {r.shape}, currents_na "
                             f"{currents.shape}; one rate per current")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    fine = np.linspace(currents.min(), currents.max(), 400)
    ax.plot(fine, nrn.lif_rate_hz(fine, p), color="0.2", lw=1.5, label="analytic")
    markers = iter(["o", "x", "s", "^"])
    for k, (label, rates) in enumerate((measured or {}).items()):
        ax.plot(currents, _to_numpy(rates), next(markers), color=f"C{k}", ms=6,
                mfc="none", label=label)
    ax.set_xlabel("input current I (nA)")
    ax.set_ylabel("firing rate (Hz)")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def stdp_window_plot(p: pl.STDPParams, measured: dict | None = None, *, ax=None,
                     span_ms: float = 100.0, title: str = "STDP window"):
    """The analytic window (:func:`snnlib.plasticity.stdp_window`) and measured points.

    ``measured`` maps a label to ``(offsets_ms, dw)`` from pairing experiments.
    """
    where = "viz.stdp_window_plot"
    check.instance("p", p, pl.STDPParams, where=where)
    _positive("span_ms", span_ms, where)
    for label, pair in (measured or {}).items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TypeError(f"{where}: measured[{label!r}] must be a pair (offsets_ms, dw)")
        offsets = _array(f"measured[{label!r}] offsets", pair[0], where, ndim=1)
        dw = _array(f"measured[{label!r}] dw", pair[1], where, ndim=1)
        if offsets.shape != dw.shape:
            raise ValueError(f"{where}: measured[{label!r}] has {len(offsets)} offsets and "
                             f"{len(dw)} weight changes; they must match")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4))
    fine = np.linspace(-span_ms, span_ms, 801)
    ax.plot(fine[fine < 0], pl.stdp_window(fine[fine < 0], p), color="0.2", lw=1.5,
            label="analytic")
    ax.plot(fine[fine >= 0], pl.stdp_window(fine[fine >= 0], p), color="0.2", lw=1.5)
    markers = iter(["o", "x", "s", "^"])
    for k, (label, (offsets, dw)) in enumerate((measured or {}).items()):
        ax.plot(_to_numpy(offsets), _to_numpy(dw), next(markers), color=f"C{k}", ms=6,
                mfc="none", label=label)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8)
    ax.set_xlabel(r"$\Delta t = t_{post} - t_{pre}$ (ms)")
    ax.set_ylabel(r"weight change $\Delta w$")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def weight_evolution(record_ms, w_history, groups: dict, *, axes=None,
                     title: str = "Weights under STDP"):
    """Mean weight of each input group over time, and the final weight histogram.

    Parameters
    ----------
    record_ms : array-like
        ``(R,)`` times of the records (ms).
    w_history : array-like
        ``(R, n_in)`` weights of one neuron at those times.
    groups : dict
        Label -> indices of the inputs in the group.
    """
    where = "viz.weight_evolution"
    w = _array("w_history", w_history, where, ndim=2)
    t_s = _array("record_ms", record_ms, where, ndim=1) / 1000.0
    if len(t_s) != len(w):
        raise ValueError(f"{where}: record_ms has {len(t_s)} times, w_history {len(w)} records; "
                         "they must match")
    if not isinstance(groups, dict) or not groups:
        raise TypeError(f"{where}: groups must be a dict of label -> input indices, got "
                        f"{type(groups).__name__}")
    for label, idx in groups.items():
        check.array(f"groups[{label!r}]", np.asarray(list(idx)), ndim=1, low=0,
                    high=w.shape[1] - 1, where=where)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.6, 1]})
    for k, (label, idx) in enumerate(groups.items()):
        sub = w[:, np.asarray(idx)]
        mean, low, high = sub.mean(1), np.percentile(sub, 10, 1), np.percentile(sub, 90, 1)
        axes[0].plot(t_s, mean, color=f"C{k}", label=f"{label} (mean)")
        axes[0].fill_between(t_s, low, high, color=f"C{k}", alpha=0.2)
        axes[1].hist(sub[-1], bins=20, range=(w.min(), w.max()), color=f"C{k}", alpha=0.7,
                     label=label)
    axes[0].set_xlabel("model time (s)")
    axes[0].set_ylabel("weight (10-90 % band)")
    axes[0].set_title(title)
    axes[0].legend(fontsize="small")
    axes[1].set_xlabel("final weight")
    axes[1].set_ylabel("inputs")
    axes[1].set_title("Final weights")
    axes[1].legend(fontsize="small")
    return axes


def lif_panel(p: nrn.LIFParams, current_na: float, *, duration_ms: float = 200.0,
              title: str | None = None):
    """A LIF neuron under a step of current: its membrane trace, and where it sits on the f-I curve."""
    where = "viz.lif_panel"
    check.instance("p", p, nrn.LIFParams, where=where)
    current_na = check.number("current_na", current_na, where=where)
    duration_ms = _positive("duration_ms", duration_ms, where)
    steps = check.steps(f"duration_ms={duration_ms:g} at dt_ms={p.dt_ms:g}",
                        duration_ms / p.dt_ms, max_steps=nrn.MAX_STEPS, where=where)
    if steps < 1:
        raise ValueError(f"{where}: duration_ms={duration_ms:g} is less than one step")
    current = torch.zeros(steps, 1, 1)
    start = steps // 10
    current[start:] = current_na
    record = nrn.simulate_lif(current, p)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1.7, 1]})
    membrane_trace(record.v_mem[:, 0, 0], record.spikes[:, 0, 0], p.dt_ms,
                   threshold_mv=p.v_thresh_mv + record.theta[:, 0, 0].numpy(), ax=axes[0],
                   title=f"step of {current_na:g} nA from t = {start * p.dt_ms:g} ms")
    rheobase = (p.v_thresh_mv - p.v_rest_mv) / p.r_mem_mohm
    currents = np.linspace(0, max(3 * rheobase, 1.5 * current_na), 200)
    fi_curve(p, currents, ax=axes[1])
    axes[1].plot([current_na], nrn.lif_rate_hz([current_na], p), "o", color="C1", ms=8,
                 label="this current")
    axes[1].legend(fontsize="small")
    n = int(record.spikes.sum())
    fig.suptitle(title or f"LIF: tau_mem {p.tau_mem_ms:g} ms, threshold {p.v_thresh_mv:g} mV, "
                 f"t_ref {p.t_ref_ms:g} ms ({n} spikes)")
    return fig


def stdp_panel(p: pl.STDPParams, *, offsets_ms=None, title: str | None = None):
    """The STDP window of ``p``: analytic curve and a PyTorch pairing experiment."""
    check.instance("p", p, pl.STDPParams, where="viz.stdp_panel")
    offsets = np.arange(-100.0, 100.5, 5.0) if offsets_ms is None else np.asarray(offsets_ms)
    dw = pl.pairing_experiment(offsets, p, simulator="torch")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    stdp_window_plot(p, {"PyTorch pairing experiment": (offsets, dw)}, ax=ax,
                     title=title or f"STDP window: A+ {p.a_plus:g}, A- {p.a_minus:g}, "
                                    f"tau+ {p.tau_plus_ms:g} ms, tau- {p.tau_minus_ms:g} ms")
    return fig


def _tile_axes(n: int, ncols: int, size: float, title: str | None, axes=None):
    """A flat sequence of axes for ``n`` small images (``axes`` if given, else a new grid)."""
    if axes is not None:
        return axes
    nrows = int(np.ceil(n / ncols))
    fig, grid = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    if title:
        fig.suptitle(title)
    return grid.ravel()


def receptive_fields(weights, *, ncols: int = 10, n: int | None = None, titles=None,
                     title: str | None = None, axes=None, size: float = 1.0):
    """Input weights of neurons as a grid of 32 x 32 images, each scaled to its own range.

    ``weights`` ``(neurons, 1024)``; the first ``n`` are shown (default all).
    Bright = strong weight. Pass ``axes`` (a flat sequence) to draw into an
    existing figure.
    """
    where = "viz.receptive_fields"
    w = _array("weights", weights, where, ndim=2)
    if w.shape[1] != 1024:
        raise ValueError(f"{where}: weights must be (neurons, 1024) for 32 x 32 images, got "
                         f"shape {w.shape}")
    if n is not None:
        _count("n", n, where)
    _count("ncols", ncols, where)
    w = w[: n or len(w)]
    if titles is not None and len(titles) < len(w):
        raise ValueError(f"{where}: titles has {len(titles)} entries for {len(w)} neurons")
    axes = _tile_axes(len(w), ncols, size, title, axes)
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < len(w):
            ax.imshow(w[k].reshape(32, 32), cmap="gray", interpolation="nearest")
            if titles is not None:
                ax.set_title(str(titles[k]), fontsize="x-small")
    return axes


def rate_histograms(rates_hz: dict, *, ax=None, bins: int = 30, title: str = "Firing rates"):
    """Histogram of per-neuron mean firing rates (Hz), one per layer (``{label: rates}``)."""
    where = "viz.rate_histograms"
    if not isinstance(rates_hz, dict) or not rates_hz:
        raise TypeError(f"{where}: rates_hz must be a dict of label -> rates, got "
                        f"{type(rates_hz).__name__}")
    for label, r in rates_hz.items():
        _array(f"rates_hz[{label!r}]", r, where, low=0)
    _count("bins", bins, where)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.6))
    top = max(float(np.max(_to_numpy(r))) for r in rates_hz.values())
    edges = np.linspace(0, max(top, 1e-3) * 1.02, bins + 1)
    for k, (label, r) in enumerate(rates_hz.items()):
        r = _to_numpy(r)
        ax.hist(r, bins=edges, color=f"C{k}", alpha=0.6,
                label=f"{label}: mean {r.mean():.2f} Hz, {int((r == 0).sum())} silent")
    ax.set_xlabel("mean firing rate per neuron (Hz)")
    ax.set_ylabel("neurons")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def weight_heatmap(weights, *, ax=None, title: str = "Weights", xlabel: str = "presynaptic neuron",
                   ylabel: str = "postsynaptic neuron"):
    """A weight matrix ``(post, pre)`` as a heatmap with a colour bar."""
    w = _array("weights", weights, "viz.weight_heatmap", ndim=2)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.8))
    im = ax.imshow(w, aspect="auto", cmap="viridis", interpolation="nearest")
    plt.colorbar(im, ax=ax, label="weight")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax


def tier1_architecture(n_inputs: int = 1024, n1: int = 400, n2: int | None = 200, *, ax=None):
    """Schematic of the tier-1 network: Poisson input, one or two (``n2``) excitatory layers with inhibitory partners."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    where = "viz.tier1_architecture"
    _count("n_inputs", n_inputs, where)
    _count("n1", n1, where)
    if n2 is not None:
        _count("n2", n2, where, low=0)
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4.2))
    ax.set_xlim(0, 11)
    ax.set_ylim(0, 4.2)
    ax.set_axis_off()

    def box(x, y, w, h, text, color):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color, ec="0.2",
                                    alpha=0.9))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(a, b, text, color="0.2", rad=0.0, dy=0.12):
        ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, color=color,
                                     connectionstyle=f"arc3,rad={rad}", lw=1.4))
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, text, ha="center", va="bottom",
                fontsize=8, color=color)

    box(0.1, 1.5, 1.9, 1.2, f"image 32x32\ngrayscale\n-> {n_inputs} Poisson\ninputs", "#cfe2f3")
    layers = [(3.3, n1, 1)] + ([(7.4, n2, 2)] if n2 else [])
    prev = (2.05, 2.1)
    for x, n, k in layers:
        box(x, 2.2, 2.3, 1.1, f"layer {k}: {n} excitatory\nLIF, adaptive threshold", "#d9ead3")
        box(x, 0.3, 2.3, 0.9, f"{n} inhibitory", "#f4cccc")
        arrow(prev, (x - 0.05, 2.75), "all-to-all, STDP\n+ normalisation", color="C0")
        arrow((x + 0.75, 2.15), (x + 0.75, 1.25), "one-to-one", color="C2", dy=-0.05)
        arrow((x + 1.55, 1.25), (x + 1.55, 2.15), "to all but\nits partner", color="C3", dy=-0.05)
        prev = (x + 2.35, 2.75)
    ax.set_title("Tier 1: unsupervised STDP with lateral inhibition (after Diehl & Cook 2015)")
    return ax


def neuron_response_panel(weights, images, counts, neuron: int, image: int, *,
                          labels=None, class_names=None, duration_ms: float = 350.0):
    """One neuron and one image: the neuron's receptive field, the image, the layer's answer.

    ``weights`` ``(neurons, 1024)``; ``images`` ``(N, 32, 32)`` intensities
    in [0, 1] (drawn on that fixed scale); ``counts``
    ``(N, neurons)`` spike counts of the layer for those images (learning off).
    Right: the spike count of every neuron for the chosen image (the chosen
    neuron in orange); below: the chosen neuron's count for every image.
    """
    where = "viz.neuron_response_panel"
    w = _array("weights", weights, where, ndim=2)
    if w.shape[1] != 1024:
        raise ValueError(f"{where}: weights must be (neurons, 1024), got shape {w.shape}")
    x = _array("images", images, where, ndim=3, low=0, high=1)
    c = _array("counts", counts, where, ndim=2, low=0)
    if c.shape != (len(x), len(w)):
        raise ValueError(f"{where}: counts must be (images, neurons) = {(len(x), len(w))}, got "
                         f"{c.shape}")
    _index("neuron", neuron, len(w), where)
    _index("image", image, len(x), where)
    _positive("duration_ms", duration_ms, where)
    if labels is not None:
        check.labels("labels", _to_numpy(labels), length=len(x), where=where)
    fig = plt.figure(figsize=(12, 5.2))
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1, 2.4])
    ax_w, ax_x = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    ax_layer, ax_neuron = fig.add_subplot(grid[0, 2]), fig.add_subplot(grid[1, :])
    ax_w.imshow(w[neuron].reshape(32, 32), cmap="gray", interpolation="nearest")
    ax_w.set_title(f"neuron {neuron}: receptive field")
    name = ""
    if labels is not None and class_names is not None:
        name = f" ({class_names[int(_to_numpy(labels)[image])]})"
    ax_x.imshow(x[image], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_x.set_title(f"image {image}{name}")
    for ax in (ax_w, ax_x):
        ax.set_axis_off()
    colours = ["C0"] * c.shape[1]
    colours[neuron] = "C1"
    ax_layer.bar(np.arange(c.shape[1]), c[image], color=colours, width=1.0)
    ax_layer.set_xlabel("neuron")
    ax_layer.set_ylabel(f"spikes in {duration_ms:g} ms")
    ax_layer.set_title(f"the layer's answer to image {image}: {int(c[image].sum())} spikes, "
                       f"neuron {neuron} fired {int(c[image, neuron])}")
    ax_neuron.bar(np.arange(len(c)), c[:, neuron], color="C1", width=1.0)
    ax_neuron.axvline(image, color="0.3", lw=0.8, ls="--")
    ax_neuron.set_xlabel("image")
    ax_neuron.set_ylabel("spikes")
    ax_neuron.set_title(f"neuron {neuron} over all {len(c)} images: fired for "
                        f"{int((c[:, neuron] > 0).sum())} of them")
    return fig


def running_accuracy(histories: dict, *, chance: float = 0.1, ax=None,
                     title: str = "R-STDP output layer: accuracy during training"):
    """Accuracy of the decisions while the output layer learns, one line per run.

    ``histories``: ``{label: history}``, each a list of chunk records with
    ``images`` (shown so far), ``accuracy`` (of the chunk's decisions) and
    ``running_accuracy`` (over a trailing window), as
    :meth:`snnlib.tiers.brian_stdp.RSTDPReadout.fit` returns. The running
    value is the line, the per-chunk values are faint dots; chance is dashed.
    """
    where = "viz.running_accuracy"
    check.probability("chance", chance, where=where)
    if not isinstance(histories, dict):
        raise TypeError(f"{where}: histories must be a dict of label -> history, got "
                        f"{type(histories).__name__}")
    for label, history in histories.items():
        for h in history:
            for key in ("images", "accuracy", "running_accuracy"):
                if not isinstance(h, dict) or key not in h:
                    raise ValueError(f"{where}: histories[{label!r}] entries need 'images', "
                                     f"'accuracy' and 'running_accuracy', got {h!r}"[:300])
            check.probability(f"histories[{label!r}] accuracy", h["accuracy"], where=where)
            check.probability(f"histories[{label!r}] running_accuracy", h["running_accuracy"],
                              where=where)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3.6))
    for k, (label, history) in enumerate(histories.items()):
        n = [h["images"] for h in history]
        ax.plot(n, [h["accuracy"] for h in history], ".", color=f"C{k}", alpha=0.25, ms=4)
        ax.plot(n, [h["running_accuracy"] for h in history], color=f"C{k}", lw=1.8, label=label)
    ax.axhline(chance, color="0.4", ls="--", lw=1, label=f"chance ({chance:.0%})")
    ax.set_xlabel("training images shown (rewards delivered)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, max(0.3, ax.get_ylim()[1]))
    ax.set_title(title)
    ax.legend(fontsize="small")
    return ax


def confusion_heatmap(confusion, class_names: Sequence[str], *, class_totals=None, ax=None,
                      title: str = "Confusion matrix", normalise: bool = True):
    """A confusion matrix (rows: true class, columns: decision) as a seaborn heatmap.

    With ``normalise`` each row is divided by its class's number of images,
    ``class_totals`` (default: the row sums); cells show the fraction, the
    colour bar the same. Images without a decision (:mod:`snnlib.metrics`)
    are in no column: give ``class_totals`` (e.g. ``np.bincount(labels)``)
    and the diagonal is the per-class accuracy, a row summing to less than
    1 by its undecided images.
    """
    import seaborn as sns

    m = _array("confusion", confusion, "viz.confusion_heatmap", low=0).astype(np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(class_names):
        raise ValueError(f"confusion must be square with one row per class name "
                         f"({len(class_names)}), got shape {m.shape}.")
    totals = m.sum(axis=1) if class_totals is None else np.asarray(class_totals, dtype=np.float64)
    if totals.shape != (len(m),) or np.any(totals < m.sum(axis=1)):
        raise ValueError("class_totals must give, per class, at least the images in its row.")
    if normalise:
        m = m / np.maximum(totals, 1)[:, None]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 6))
    sns.heatmap(m, annot=True, fmt=".2f" if normalise else "g", cmap="rocket_r", square=True,
                xticklabels=class_names, yticklabels=class_names, ax=ax, annot_kws={"size": 7},
                vmin=0, cbar_kws={"label": "fraction of the class" if normalise else "images"})
    ax.set_xlabel("decision")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return ax


def output_weights(weights, neurons_per_class: int, class_names: Sequence[str], *, ax=None,
                   title: str = "Output-layer weights (after R-STDP)"):
    """The output layer's weights ``(output neurons, hidden neurons)``, class populations marked."""
    where = "viz.output_weights"
    w = _array("weights", weights, where, ndim=2)
    _count("neurons_per_class", neurons_per_class, where)
    _class_names(class_names, where)
    if len(w) != len(class_names) * neurons_per_class:
        raise ValueError(f"{where}: weights has {len(w)} output neurons, but {len(class_names)} "
                         f"class names x {neurons_per_class} neurons per class.")
    ax = weight_heatmap(w, ax=ax, title=title, xlabel="hidden layer 2 neuron",
                        ylabel="output neuron")
    for k in range(1, len(w) // neurons_per_class):
        ax.axhline(k * neurons_per_class - 0.5, color="w", lw=0.6)
    ax.set_yticks(np.arange(len(class_names)) * neurons_per_class + (neurons_per_class - 1) / 2)
    ax.set_yticklabels(class_names, fontsize="small")
    return ax


def tier1_spike_panel(image, spikes: dict, *, duration_ms: float, neurons_per_class: int,
                      class_names: Sequence[str], label: int | None = None, title: str | None = None):
    """One image through tier 1: the image, then a raster per layer, then the decision.

    ``spikes`` as :func:`snnlib.tiers.brian_stdp.image_spikes` returns:
    ``hidden`` (per layer ``neuron`` and ``t_ms``), ``output``,
    ``decision``, ``class_counts``. Output neurons are coloured by class
    population; the bar chart shows each population's spikes.
    """
    where = "viz.tier1_spike_panel"
    _image("image", image, where, rgb=False)
    _positive("duration_ms", duration_ms, where)
    _count("neurons_per_class", neurons_per_class, where)
    _class_names(class_names, where)
    if label is not None:
        _index("label", label, len(class_names), where)
    if not isinstance(spikes, dict) or not {"hidden", "output", "decision",
                                            "class_counts"} <= set(spikes):
        raise ValueError(f"{where}: spikes must be image_spikes' dict (hidden, output, decision, "
                         "class_counts)")
    _array("spikes['class_counts']", spikes["class_counts"], where, ndim=1, low=0)
    if len(spikes["class_counts"]) != len(class_names):
        raise ValueError(f"{where}: spikes has {len(spikes['class_counts'])} class counts but "
                         f"{len(class_names)} class names.")
    layers = list(spikes["hidden"]) + [spikes["output"]]
    names = [f"hidden layer {k}" for k in range(1, len(layers))] + ["output layer"]
    fig = plt.figure(figsize=(12, 6.4))
    grid = fig.add_gridspec(len(layers), 3, width_ratios=[1.1, 3.2, 1.6])
    ax_img = fig.add_subplot(grid[:, 0])
    ax_img.imshow(_to_numpy(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax_img.set_axis_off()
    truth = f"true class: {class_names[label]}" if label is not None else ""
    ax_img.set_title(truth)
    axes = [fig.add_subplot(grid[k, 1]) for k in range(len(layers))]
    for k, (ax, tr, name) in enumerate(zip(axes, layers, names)):
        n, t = np.asarray(tr["neuron"]), np.asarray(tr["t_ms"])
        if k == len(layers) - 1:
            colours = [f"C{c % 10}" for c in (n // neurons_per_class).astype(int)]
        else:
            colours = "0.15"
        ax.scatter(t, n, s=30, c=colours, marker="|", linewidths=1.0)
        ax.set_xlim(0, duration_ms)
        ax.set_ylabel("neuron")
        ax.set_title(f"{name}: {len(n)} spikes", fontsize="small", loc="left")
        if k < len(layers) - 1:
            ax.tick_params(labelbottom=False)
    axes[-1].set_xlabel("time within the presentation (ms)")
    ax_bar = fig.add_subplot(grid[:, 2])
    counts = np.asarray(spikes["class_counts"])
    decision = int(spikes["decision"])
    colours = ["C" + str(c % 10) for c in range(len(counts))]
    ax_bar.barh(np.arange(len(counts)), counts, color=colours)
    ax_bar.set_yticks(np.arange(len(counts)))
    ax_bar.set_yticklabels(class_names, fontsize="small")
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("output spikes per class")
    verdict = "no decision (no output spike)" if decision < 0 else f"decision: {class_names[decision]}"
    if decision >= 0 and label is not None:
        verdict += " (right)" if decision == label else " (wrong)"
    ax_bar.set_title(verdict, fontsize="small")
    if title:
        fig.suptitle(title)
    return fig


def gray_filters(w_mv, field_px: int, *, n: int | None = None, ncols: int = 16, title: str | None = None,
                 size: float = 0.7, axes=None):
    """Filters of a layer on ON/OFF grayscale input as small images: ON minus OFF weights.

    ``w_mv`` ``(K, 2 * field_px**2)``, ON weights first. Bright: the filter
    prefers light there, dark: it prefers dark; mid-grey: it does not care.
    Each filter is scaled to its own largest magnitude. Pass ``axes`` (a
    flat sequence) to draw into an existing figure; returns the axes.
    """
    w = _to_numpy(w_mv).astype(np.float64)
    if w.ndim != 2 or w.shape[1] != 2 * field_px ** 2:
        raise ValueError(f"w_mv must be (K, 2 * {field_px}**2 = {2 * field_px ** 2}), got {w.shape}.")
    h = field_px ** 2
    signed = (w[:, :h] - w[:, h:]).reshape(-1, field_px, field_px)[: n or len(w)]
    axes = _tile_axes(len(signed), ncols, size, title, axes)
    for k, ax in enumerate(axes):
        ax.set_axis_off()
        if k < len(signed):
            f = signed[k]
            ax.imshow(f, cmap="gray", vmin=-np.abs(f).max() - 1e-12, vmax=np.abs(f).max() + 1e-12,
                      interpolation="nearest")
    return axes


def retina_panel(gray, signed, kernel, *, titles: Sequence[str] | None = None):
    """Grayscale images through a centre-surround retina: the kernel, then per image the input,
    the signed response and its ON and OFF halves (the input neurons' rates).

    ``gray`` ``(n, H, W)`` in [0, 1]; ``signed`` ``(n, H, W)`` in [-1, 1]; ``kernel`` ``(k, k)``.
    """
    g, s, k = _to_numpy(gray), _to_numpy(signed), _to_numpy(kernel)
    if g.shape != s.shape or g.ndim != 3:
        raise ValueError(f"gray and signed must both be (n, H, W), got {g.shape} and {s.shape}.")
    if titles is not None and len(titles) != len(g):
        raise ValueError(f"viz.retina_panel: titles has {len(titles)} names for {len(g)} images")
    fig, axes = plt.subplots(len(g), 5, figsize=(9.5, 2.0 * len(g)), squeeze=False)
    columns = ["kernel", "input", "response", "ON (rate)", "OFF (rate)"]
    for r in range(len(g)):
        panels = [None, g[r], s[r], np.maximum(s[r], 0), np.maximum(-s[r], 0)]
        for c, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if c == 0:
                if r == 0:
                    m = np.abs(k).max()
                    ax.imshow(k, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
                continue
            cmap, lo = ("RdBu_r", -1) if c == 2 else ("gray", 0)
            ax.imshow(panels[c], cmap=cmap, vmin=lo, vmax=1, interpolation="nearest")
            if r == 0:
                ax.set_title(columns[c], fontsize="small")
        if titles is not None:
            axes[r, 1].set_title(titles[r] if r else f"input: {titles[r]}", fontsize="small")
    axes[0, 0].set_title("kernel", fontsize="small")
    return fig


def spike_rasters(trains: dict, *, steps: int, dt_ms: float, image=None, title: str | None = None):
    """One image's spikes in several layers: a raster per layer, the image on the left.

    ``trains``: ``{layer name: (neuron, step)}`` integer arrays of one image.
    """
    if not isinstance(trains, dict) or not trains:
        raise ValueError("viz.spike_rasters: trains must be a non-empty dict {layer name: "
                         "(neuron, step)}")
    n = len(trains)
    fig = plt.figure(figsize=(11, 1.9 * n + 0.6))
    grid = fig.add_gridspec(n, 2 if image is not None else 1,
                            width_ratios=[1, 4] if image is not None else [1])
    if image is not None:
        ax_img = fig.add_subplot(grid[:, 0])
        ax_img.imshow(_to_numpy(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax_img.set_axis_off()
    col = 1 if image is not None else 0
    for k, (name, (neuron, step)) in enumerate(trains.items()):
        ax = fig.add_subplot(grid[k, col])
        ax.scatter(np.asarray(step) * dt_ms, np.asarray(neuron), marker="|", s=10,
                   linewidths=0.6, color="0.15")
        ax.set_xlim(-0.5 * dt_ms, steps * dt_ms)
        ax.set_ylabel("neuron")
        ax.set_title(f"{name}: {len(neuron)} spikes", fontsize="small", loc="left")
        if k < n - 1:
            ax.tick_params(labelbottom=False)
        else:
            ax.set_xlabel("time (ms)")
    if title:
        fig.suptitle(title)
    return fig


def filter_map_panel(image, filters, field_px: int, counts, k: int, *, title: str | None = None):
    """Where one layer-1 filter fires on an image: the image, the filter (ON minus OFF), and
    its spike count at every position.

    ``counts`` ``(S, S, K)``: the layer's spike counts for the image; ``k`` the filter.
    """
    c = _to_numpy(counts)
    if c.ndim != 3 or not 0 <= k < c.shape[2]:
        raise ValueError(f"counts must be (S, S, K) and k in [0, K), got {c.shape} and {k}.")
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.1))
    axes[0].imshow(_to_numpy(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title(title or "image", fontsize="small")
    gray_filters(_to_numpy(filters)[k:k + 1], field_px, axes=[axes[1]])
    axes[1].set_title(f"filter {k}", fontsize="small")
    axes[2].imshow(c[:, :, k], cmap="magma", vmin=0, interpolation="nearest")
    axes[2].set_title(f"its spikes at each position ({int(c[:, :, k].sum())})", fontsize="small")
    for ax in axes:
        ax.set_axis_off()
    return fig


# --- tier 2 ---------------------------------------------------------------------

def dog_panel(image, p, *, axes=None, title: str | None = None):
    """An RGB image through the retina: the DoG kernel's profile and the ON / OFF channels.

    Columns: the image; the centre-surround kernel's profile (centre Gaussian
    minus surround Gaussian, through the middle); luminance ON and OFF; the
    red-green and blue-yellow opponent responses (red / blue positive).

    Parameters
    ----------
    image : array-like
        ``(32, 32, 3)`` uint8 or floats in [0, 1].
    p : snnlib.retina.DoGParams
    """
    from . import retina

    where = "viz.dog_panel"
    x = _image("image", image, where, rgb=True)
    check.instance("p", p, retina.DoGParams, where=where)
    x = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    d = retina.colour_opponent(torch.as_tensor(x, dtype=torch.float64)[None], p)[0].numpy()
    if axes is None:
        fig, axes = plt.subplots(1, 6, figsize=(13, 2.6))
        if title:
            fig.suptitle(title)
    _show_image(axes[0], x, "image")
    r = int(p.truncate * p.sigma_surround_px + 0.5)
    k = np.arange(-r, r + 1)
    gc = np.exp(-0.5 * (k / p.sigma_center_px) ** 2) / (np.sqrt(2 * np.pi) * p.sigma_center_px) ** 2
    gs = np.exp(-0.5 * (k / p.sigma_surround_px) ** 2) / (np.sqrt(2 * np.pi) * p.sigma_surround_px) ** 2
    axes[1].plot(k, gc - gs, color="k")
    axes[1].axhline(0, color="0.6", lw=0.8)
    axes[1].set_xlabel("pixels from centre")
    axes[1].set_title(f"DoG kernel\nσc={p.sigma_center_px:g}, σs={p.sigma_surround_px:g}",
                      fontsize="small")
    lim = max(float(np.abs(d).max()), 1e-9)
    panels = [(np.clip(d[0], 0, None), "gray", (0, lim), "luminance ON"),
              (np.clip(-d[0], 0, None), "gray", (0, lim), "luminance OFF"),
              (d[1], "RdBu_r", (-lim, lim), "red - green"),
              (d[2], "RdBu_r", (-lim, lim), "blue - yellow")]
    for ax, (img, cmap, (lo, hi), name) in zip(axes[2:], panels):
        ax.imshow(img, cmap=cmap if name != "blue - yellow" else "PuOr", vmin=lo, vmax=hi,
                  interpolation="nearest")
        ax.set_title(name, fontsize="small")
        ax.set_axis_off()
    return axes


def _on_off_patches(w_mv, patch_px, where: str) -> np.ndarray:
    """ON/OFF weights ``(K, 2 * 3 * patch_px**2)`` as RGB patches ``(K, patch_px, patch_px, 3)``
    of ON minus OFF, checked."""
    w = _array("w_mv", w_mv, where, ndim=2).astype(np.float64)
    _count("patch_px", patch_px, where)
    h = w.shape[1] // 2
    if w.shape[1] != 6 * patch_px ** 2:
        raise ValueError(f"{where}: w_mv has {w.shape[1]} inputs; ON/OFF RGB patches of "
                         f"{patch_px} px need {6 * patch_px ** 2}.")
    return (w[:, :h] - w[:, h:]).reshape(-1, 3, patch_px, patch_px).transpose(0, 2, 3, 1)


def conv_filters(w_mv, patch_px: int, *, n: int | None = None, ncols: int = 16, order=None,
                 title: str | None = None, size: float = 0.7):
    """The input weights of a convolutional ON/OFF layer as small RGB patches.

    ``w_mv`` ``(K, 2 * 3 * patch_px**2)``: ON weights, then OFF (channel-major,
    as :func:`torch.nn.functional.unfold` orders them). Each filter is shown
    as ON minus OFF, the colour a pixel of its preferred patch would have,
    scaled to its own range (grey = 0).
    """
    where = "viz.conv_filters"
    signed = _on_off_patches(w_mv, patch_px, where)
    _count("ncols", ncols, where)
    if n is not None:
        _count("n", n, where)
    if order is not None:
        signed = signed[np.asarray(order)]
    signed = signed[: n or len(signed)]
    nrows = int(np.ceil(len(signed) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if k < len(signed):
            f = signed[k]
            ax.imshow(0.5 + 0.5 * f / max(np.abs(f).max(), 1e-12), interpolation="nearest")
    if title:
        fig.suptitle(title)
    return fig


def tier2_position_panel(record: dict, *, dt_ms: float, v_thresh_mv, position: int = 0,
                         neurons=None, title: str | None = None):
    """One position of the tier-2 layer: input raster, layer raster, membrane potentials.

    ``record`` is :meth:`snnlib.tiers.dog_lif.DoGLIF.spikes_of_image`'s dict;
    ``v_thresh_mv`` the neurons' thresholds ``(K,)`` (base + :math:`\\theta`);
    ``neurons``: whose potentials to draw (default: the three that fired most).
    """
    where = "viz.tier2_position_panel"
    if not isinstance(record, dict) or not {"input_trains", "trains", "v_mem"} <= set(record):
        raise ValueError(f"{where}: record must be spikes_of_image's dict (input_trains, trains, "
                         "v_mem)")
    _positive("dt_ms", dt_ms, where)
    trains = _array("record['trains']", record["trains"], where, ndim=3)
    _index("position", position, trains.shape[1], where)
    _array("record['v_mem']", record["v_mem"], where, ndim=3)
    _array("v_thresh_mv", v_thresh_mv, where)
    s_in = _to_numpy(record["input_trains"])[:, position]
    s_out = _to_numpy(record["trains"])[:, position]
    v = _to_numpy(record["v_mem"])[:, position]
    if neurons is None:
        neurons = np.argsort(-s_out.sum(0), kind="stable")[:3]
    else:
        neurons = [_index(f"neurons[{j}]", k, s_out.shape[1], where)
                   for j, k in enumerate(neurons)]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    raster(s_in[:, None], dt_ms, ax=axes[0], title="input spikes (ON, then OFF)",
           ylabel="input", color="0.3")
    raster(s_out[:, None], dt_ms, ax=axes[1], title="layer spikes", ylabel="neuron (filter)")
    th = np.broadcast_to(_to_numpy(v_thresh_mv), (s_out.shape[1],))
    for c, k in enumerate(neurons):
        membrane_trace(v[:, k], s_out[:, k], dt_ms, ax=axes[2], color=f"C{c}", label=f"neuron {k}")
        axes[2].axhline(th[k], color=f"C{c}", lw=0.8, linestyle="--")
    axes[2].set_title("membrane potential (dashed: threshold)")
    axes[2].legend(fontsize="x-small", loc="lower right")
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:  # use_style's constrained layout needs no help
        fig.tight_layout()
    return fig


def feature_maps(counts, image, *, filters, w_mv=None, patch_px: int | None = None,
                 title: str | None = None):
    """Where in an image some filters fired: the image, then one spike-count map per filter.

    ``counts`` ``(side * side, K)``: the layer's spike counts at each position
    (``spikes_of_image(...)["counts"]``). With ``w_mv`` and ``patch_px`` each
    map is titled by a small picture of its filter.
    """
    where = "viz.feature_maps"
    c = _array("counts", counts, where, ndim=2, low=0)
    side = int(round(np.sqrt(len(c))))
    if side * side != len(c):
        raise ValueError(f"{where}: counts must have side x side positions, got {len(c)}")
    filters = list(filters)
    if not filters:
        raise ValueError("filters must name at least one filter.")
    check.array("filters", np.asarray(filters), ndim=1, low=0, high=c.shape[1] - 1, where=where)
    _image("image", image, where)
    if w_mv is not None:
        if patch_px is None:
            raise ValueError(f"{where}: w_mv needs patch_px (the filters' side in pixels)")
        patches = _on_off_patches(w_mv, patch_px, where)
        if len(patches) != c.shape[1]:
            raise ValueError(f"{where}: w_mv has {len(patches)} filters, counts "
                             f"{c.shape[1]}")
    fig, axes = plt.subplots(1 + (w_mv is not None), len(filters) + 1,
                             figsize=(1.6 * (len(filters) + 1), 1.7 * (1 + (w_mv is not None)) + 0.4),
                             squeeze=False)
    _show_image(axes[-1, 0], image, "image")
    vmax = max(float(c[:, filters].max()), 1.0)
    for j, k in enumerate(filters, start=1):
        im = axes[-1, j].imshow(c[:, k].reshape(side, side), cmap="magma", vmin=0, vmax=vmax,
                                interpolation="nearest")
        axes[-1, j].set_title(f"filter {k}", fontsize="x-small")
        axes[-1, j].set_axis_off()
    if w_mv is not None:
        axes[0, 0].set_axis_off()
        for j, k in enumerate(filters, start=1):
            f = patches[k]
            axes[0, j].imshow(0.5 + 0.5 * f / max(np.abs(f).max(), 1e-12), interpolation="nearest")
            axes[0, j].set_axis_off()
    fig.colorbar(im, ax=axes[-1, -1], fraction=0.046, label="spikes")
    if title:
        fig.suptitle(title)
    return fig


def if_rate_plot(steps=(4, 16, 128), *, threshold: float = 1.0, ax=None,
                 title: str = "An IF neuron's rate is a clipped ReLU"):
    """Rate (spikes per step) of an IF neuron under constant input ``z``, for several ``T``.

    The staircase :math:`\\lfloor T z / \\vartheta \\rfloor / T`
    (:func:`snnlib.neurons.if_rate`) against the ReLU clipped at one
    spike per step, :math:`\\mathrm{clip}(z / \\vartheta, 0, 1)`, which it
    approaches as :math:`T` grows.
    """
    where = "viz.if_rate_plot"
    if isinstance(steps, (str, bytes)) or not hasattr(steps, "__len__") or not len(steps):
        raise TypeError(f"{where}: steps must be a sequence of step counts, got {steps!r}")
    for t in steps:
        _count("steps", t, where)
    _positive("threshold", threshold, where)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.6))
    z = np.linspace(-0.3, 1.4, 1200)
    for t in steps:
        ax.plot(z, nrn.if_rate(z, t, threshold), lw=1.2, label=f"IF rate, T = {t}")
    ax.plot(z, np.clip(z / threshold, 0, 1), "k--", lw=1.2, label="ReLU clipped at 1")
    ax.set(xlabel="input per step z (threshold units)", ylabel="spikes per step", title=title)
    ax.legend(frameon=False, fontsize=8)
    return ax


def accuracy_vs_steps(curves: dict, cnn_accuracy: float | None = None, *, ax=None,
                      title: str = "Accuracy of the converted network",
                      cnn_label: str = "CNN"):
    """Accuracy against simulation steps (log2 axis) for named curves ``{name: {T: accuracy}}``,
    with the CNN's accuracy as a horizontal line."""
    where = "viz.accuracy_vs_steps"
    if not isinstance(curves, dict):
        raise TypeError(f"{where}: curves must be a dict of name -> {{T: accuracy}}, got "
                        f"{type(curves).__name__}")
    for name, acc in curves.items():
        if not isinstance(acc, dict) or not acc:
            raise TypeError(f"{where}: curves[{name!r}] must be a non-empty dict of T -> accuracy")
        for t, a in acc.items():
            check.integer(f"curves[{name!r}] steps", int(t) if str(t).isdigit() else t, low=1,
                          where=where)
            check.probability(f"curves[{name!r}][{t!r}]", a, where=where)
    if cnn_accuracy is not None:
        check.probability("cnn_accuracy", cnn_accuracy, where=where)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    for name, acc in curves.items():
        ts = sorted(int(t) for t in acc)
        ax.plot(ts, [100 * acc[t] if t in acc else 100 * acc[str(t)] for t in ts], "o-",
                ms=4, label=name)
    if cnn_accuracy is not None:
        ax.axhline(100 * cnn_accuracy, color="k", ls="--", lw=1, label=cnn_label)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="simulation steps T", ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    ax.legend(frameon=False, fontsize=8)
    return ax


def rate_error_plot(error, layer_names: Sequence[str] | None = None, *, ax=None,
                    title: str = "Rate error by layer"):
    """Mean |rate - activation| of each spiking layer against T (log-log), with the 1/T bound.

    ``error`` is :func:`snnlib.tiers.conversion.rates_vs_activations`'s
    ``error``: one ``{T: error}`` per layer.
    """
    where = "viz.rate_error_plot"
    if isinstance(error, dict) or not hasattr(error, "__len__") or not len(error):
        raise TypeError(f"{where}: error must be a non-empty list of {{T: error}}, one per layer")
    for j, err in enumerate(error):
        if not isinstance(err, dict) or not err:
            raise TypeError(f"{where}: error[{j}] must be a non-empty dict of T -> error")
        for t, e in err.items():
            _positive(f"error[{j}] steps", t, where)
            check.number(f"error[{j}][{t!r}]", e, low=0, where=where)
    if layer_names is not None and len(layer_names) != len(error):
        raise ValueError(f"{where}: layer_names has {len(layer_names)} names for {len(error)} "
                         "layers")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    names = layer_names or [f"layer {j + 1}" for j in range(len(error))]
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(error)))
    for err, name, c in zip(error, names, colours):
        ts = sorted(err)
        ax.plot(ts, [err[t] for t in ts], "o-", ms=3, color=c, label=name)
    ts = sorted(error[0])
    ax.plot(ts, [1 / t for t in ts], "k:", lw=1, label="1 / T")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="simulation steps T", ylabel="mean |rate - activation| (spikes/step)",
           title=title)
    ax.legend(frameon=False, fontsize=7, ncol=2)
    return ax


def conversion_image_panel(image, trace: dict, steps: int, layer: int, class_names: Sequence[str],
                           *, label: int | None = None, layer_names: Sequence[str] | None = None,
                           title: str | None = None):
    """One image through the converted network: the image, the class scores of CNN and SNN
    after ``steps`` steps, and one layer's rates against its activations.

    ``trace`` is :func:`snnlib.tiers.conversion.rates_vs_activations` of one
    image with ``keep_rates=True`` (``steps`` must be one of its T).
    """
    where = "viz.conversion_image_panel"
    image = _image("image", image, where)
    _class_names(class_names, where)
    if not isinstance(trace, dict) or not {"cnn_outputs", "outputs", "rates",
                                           "activations"} <= set(trace):
        raise ValueError(f"{where}: trace must be rates_vs_activations' dict (cnn_outputs, "
                         "outputs, rates, activations)")
    if len(trace["cnn_outputs"]) != 1:
        raise ValueError(f"{where}: trace must be of the one image shown, got a trace of "
                         f"{len(trace['cnn_outputs'])} images (rates_vs_activations of "
                         "image[None])")
    if isinstance(steps, bool) or steps not in trace["outputs"]:
        raise ValueError(f"{where}: steps must be one of the trace's T "
                         f"({', '.join(str(t) for t in trace['outputs'])}), got {steps!r}")
    _index("layer", layer, len(trace["activations"]), where)
    if label is not None:
        _index("label", label, len(class_names), where)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), gridspec_kw={"width_ratios": [0.8, 1.4, 1.2]})
    _show_image(axes[0], image, class_names[label] if label is not None else None)
    cnn = _to_numpy(trace["cnn_outputs"][0])
    snn = _to_numpy(trace["outputs"][steps][0])
    x = np.arange(len(class_names))
    axes[1].bar(x - 0.2, cnn, 0.4, label=f"CNN → {class_names[int(cnn.argmax())]}")
    axes[1].bar(x + 0.2, snn, 0.4, label=f"SNN, T = {steps} → {class_names[int(snn.argmax())]}")
    axes[1].set_xticks(x, class_names, rotation=60, fontsize=8)
    axes[1].set(ylabel="output (per step)", title="class scores")
    axes[1].legend(frameon=False, fontsize=8)
    rate = _to_numpy(trace["rates"][steps][layer][0]).ravel()
    act = _to_numpy(trace["activations"][layer][0]).ravel()
    show = np.random.default_rng(0).permutation(len(act))[:4000]
    axes[2].plot(act[show], rate[show], ".", ms=2, alpha=0.4)
    top = max(1.0, float(act.max()))
    axes[2].plot([0, 1, top], [0, 1, 1], "k--", lw=1, label="clipped ReLU")
    name = layer_names[layer] if layer_names is not None else f"layer {layer + 1}"
    err = float(np.abs(rate - np.minimum(act, 1)).mean())
    axes[2].set(xlabel="CNN activation (normalised)", ylabel=f"SNN rate after T = {steps}",
                title=f"{name}: mean error {err:.3f}")
    axes[2].legend(frameon=False, fontsize=8)
    if title:
        fig.suptitle(title)
    if fig.get_layout_engine() is None:  # use_style's constrained layout needs no help
        fig.tight_layout()
    return fig


# --- tables ------------------------------------------------------------------------------------
NA = "n/a"
"""What a table shows for a missing value (``None``, NaN, or a column a row does not have)."""


def _scalar(value):
    """A tensor or numpy value of one element as a Python scalar; anything else unchanged."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        if value.ndim == 0 or (torch.is_tensor(value) and value.numel() == 1):
            return value.item()
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple)) or (
        (torch.is_tensor(value) or isinstance(value, np.ndarray)) and value.ndim == 1)


def _default_format(value) -> str:
    """Integers with thousands separators (``186,547``); other numbers with 4 significant
    digits, and all the digits before the point (``30.98``, ``0.002500``, ``186,547``),
    in scientific notation below 1e-4 and from 1e15 (``1.000e-05``)."""
    if isinstance(value, numbers.Integral):
        return f"{value:,}"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    exponent = math.floor(math.log10(abs(value)))
    if not -4 <= exponent < 15:
        return f"{value:.3e}"
    decimals = max(3 - exponent, 0)  # never rounds away digits before the point
    return f"{round(value, decimals):,.{decimals}f}"


def _format_cell(value, fmt, where: str, column: str) -> str:
    """One cell as text (``column`` names the format in an error: ``formats['x']``)."""
    value = _scalar(value)
    if _is_sequence(value):
        return ", ".join(_format_cell(v, fmt, where, column) for v in value)
    if _is_missing(value):
        return NA
    if isinstance(value, str):
        return value  # text is shown as it is, formatted columns included ("n/a", a note)
    if isinstance(value, bool):
        return str(value)
    if fmt is None:
        return _default_format(value) if _is_number(value) else str(value)
    try:
        text = fmt(value) if callable(fmt) else (fmt.format(value) if "{" in fmt
                                                else format(value, fmt))
    except (ValueError, TypeError, IndexError, KeyError) as e:
        raise ValueError(f"{where}: formats[{column!r}] = {fmt!r} cannot format {value!r} "
                         f"({e})") from None
    if not isinstance(text, str):
        raise TypeError(f"{where}: formats[{column!r}] must return a string, got "
                        f"{type(text).__name__} for {value!r}")
    return text


_NUMBER_TEXT = re.compile(r"[+\-±]?\d[\d,]*(\.\d+)?(e[+-]?\d+)?( ?(%|[A-Za-zµ]{1,3}))?")
"""Text that reads as one number, with at most a short unit: ``41.15%``, ``1.03e7``, ``9.30 µJ``."""


def _is_numeric_column(values) -> bool:
    """Numbers, sequences of numbers or text that reads as a number (``19.2 min``), ignoring
    missing values (``n/a`` and empty text included): such a column is right-aligned."""
    seen = False
    for v in values:
        v = _scalar(v)
        items = [_scalar(x) for x in v] if _is_sequence(v) else [v]
        for x in items:
            if _is_missing(x) or (isinstance(x, str) and x in (NA, "")):
                continue
            if not (_is_number(x) or (isinstance(x, str) and _NUMBER_TEXT.fullmatch(x))):
                return False
            seen = True
    return seen


def _table_parts(data, where: str):
    """``(index, index_name, columns, rows, caption, notes)`` from any input :func:`table` takes."""
    module = type(data).__module__
    if module.startswith("pandas"):
        if hasattr(data, "to_frame") and not hasattr(data, "columns"):  # a Series: one column
            data = data.to_frame(name=data.name if data.name is not None else "value")
        if not (hasattr(data, "columns") and hasattr(data, "index")):
            raise TypeError(f"{where}: data must be a DataFrame or a Series, got "
                            f"{type(data).__name__}")
        columns = [str(c) for c in data.columns]
        rows = [list(r) for r in data.itertuples(index=False, name=None)]
        name = data.index.name
        return (list(data.index), None if name is None else str(name), columns, rows, None, ())
    if hasattr(data, "columns") and hasattr(data, "rows") and not isinstance(data, Mapping):
        # a table of strings such as snnlib.compare.Table: its first column labels the rows
        columns = [str(c) for c in data.columns]
        if not columns:
            raise ValueError(f"{where}: data has no columns")
        rows = [list(r) for r in data.rows]
        if any(len(r) != len(columns) for r in rows):
            raise ValueError(f"{where}: every row of data must have {len(columns)} cells")
        notes = getattr(data, "notes", ())
        return ([r[0] for r in rows], columns[0], columns[1:], [r[1:] for r in rows],
                getattr(data, "title", None) or None, tuple(notes or ()))
    if isinstance(data, Mapping):
        if not data:
            raise ValueError(f"{where}: data has no rows")
        bad = [k for k, row in data.items() if not isinstance(row, Mapping)]
        if bad:
            raise TypeError(f"{where}: data must map each row label to a mapping "
                            f"{{column: value}}; row {bad[0]!r} is a "
                            f"{type(data[bad[0]]).__name__}")
        columns = list(dict.fromkeys(str(c) for row in data.values() for c in row))
        keyed = [{str(c): v for c, v in row.items()} for row in data.values()]
        rows = [[row.get(c) for c in columns] for row in keyed]
        return list(data), None, columns, rows, None, ()
    raise TypeError(f"{where}: data must be a pandas DataFrame or Series, a mapping "
                    f"{{row label: {{column: value}}}} or a table with columns and rows, got "
                    f"{type(data).__name__}")


class DisplayTable:
    """A table of formatted strings, made by :func:`table`.

    It shows as an HTML ``<table>`` in a notebook and in the book (``_repr_html_``)
    and as columns aligned with spaces in a terminal or a plain-text output
    (``repr``, ``str``, :meth:`to_text`). Numbers are right-aligned, text
    left-aligned; the row labels are row headers.

    Attributes
    ----------
    index : tuple of str
        The row labels.
    index_name : str
        The header of the row labels ("" for none).
    columns : tuple of str
        The column headers.
    cells : tuple of tuple of str
        ``cells[i][j]``: row ``i``, column ``j``, formatted.
    numeric : tuple of bool
        Per column: numbers (right-aligned) or text (left-aligned).
    caption : str
        Shown above the table ("" for none).
    notes : tuple of str
        Shown below the table, one paragraph each.
    """

    __slots__ = ("index", "index_name", "columns", "cells", "numeric", "caption", "notes")

    def __init__(self, index, index_name, columns, cells, numeric, caption="", notes=()):
        self.index = tuple(index)
        self.index_name = index_name
        self.columns = tuple(columns)
        self.cells = tuple(tuple(r) for r in cells)
        self.numeric = tuple(numeric)
        self.caption = caption
        self.notes = tuple(notes)

    def to_text(self) -> str:
        """The caption, the header, a rule, the rows (numbers right-aligned), the notes."""
        header = (self.index_name, *self.columns)
        body = [(label, *row) for label, row in zip(self.index, self.cells)]
        widths = [max(len(r[k]) for r in (header, *body)) for k in range(len(header))]
        right = (False, *self.numeric)

        def line(cells):
            return "  ".join(c.rjust(w) if r else c.ljust(w)
                             for c, w, r in zip(cells, widths, right)).rstrip()

        lines = [self.caption] if self.caption else []
        lines += [line(header), "  ".join("-" * w for w in widths)]
        lines += [line(r) for r in body]
        return "\n".join(lines + list(self.notes))

    def to_html(self) -> str:
        """A ``<table>`` (caption, one header row, a row header per row), then the notes."""
        esc = html.escape

        def align(numeric: bool) -> str:
            return ' style="text-align: right"' if numeric else ' style="text-align: left"'

        parts = ['<table class="snnlib-table">']
        if self.caption:
            parts.append(f"<caption>{esc(self.caption)}</caption>")
        head = f'<th scope="col">{esc(self.index_name)}</th>' + "".join(
            f'<th scope="col"{align(n)}>{esc(c)}</th>' for c, n in zip(self.columns, self.numeric))
        parts.append(f"<thead><tr>{head}</tr></thead>")
        parts.append("<tbody>")
        for label, row in zip(self.index, self.cells):
            cells = "".join(f"<td{align(n)}>{esc(c)}</td>" for c, n in zip(row, self.numeric))
            parts.append(f'<tr><th scope="row">{esc(label)}</th>{cells}</tr>')
        parts.append("</tbody></table>")
        parts += [f'<p class="snnlib-table-note"><small>{esc(n)}</small></p>' for n in self.notes]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.to_text())

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        if not isinstance(other, DisplayTable):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self.__slots__)


def table(data, *, formats=None, caption: str | None = None, index_name: str | None = None,
          notes: str | Sequence[str] | None = None) -> DisplayTable:
    """A table for a chapter: HTML in a notebook and in the book, aligned text elsewhere.

    Every table a chapter shows goes through this function, so that all of them
    look alike: one header row, the row labels as row headers, numbers
    right-aligned with the format their column asks for, a caption above and
    notes below. The book's stylesheet rules and pads them.

    Parameters
    ----------
    data : pandas.DataFrame, pandas.Series, mapping, or a table of strings
        The rows. A DataFrame's index labels its rows (a Series is one column).
        A mapping goes from each row label to a mapping ``{column: value}``;
        the columns appear in the order they are first met, and a column that a
        row does not have shows :data:`NA`. An object with ``columns`` and
        ``rows`` of strings (such as :class:`snnlib.compare.Table`) takes its
        first column as the row labels, and its ``title`` and ``notes`` as the
        defaults of ``caption`` and ``notes``. Row labels that are numbers are
        written as with the format ``"g"`` (``5``, ``0.25``).
    formats : str, callable or mapping, optional
        How numbers are written. A format specification (``".1%"``,
        ``",.0f"``), a format string (``"{:.2f} Hz"``) or a function from a
        value to a string; one for every column, or a mapping from column
        names to them (columns not named keep the default). The default writes
        integers with thousands separators (``186,547``) and other numbers with
        4 significant digits (``30.98``). Text is shown as it is; ``None`` and
        NaN as :data:`NA`; a list, tuple or 1-d array as its elements, each
        formatted, separated by commas.
    caption : str, optional
        A title shown above the table ("" for none, whatever the data says).
    index_name : str, optional
        The header of the row labels (default: the DataFrame's index name, or
        none).
    notes : str or sequence of str, optional
        Shown below the table, one paragraph each (``()`` for none, whatever
        the data says).

    Returns
    -------
    DisplayTable
        Shows itself as HTML (``_repr_html_``) and as text (``repr``).

    Raises
    ------
    TypeError
        For data of another kind, a format that is neither text nor callable,
        or a format function that does not return a string.
    ValueError
        For a format naming a column the data does not have, or one that
        cannot format a value of its column.

    Examples
    --------
    >>> t = table({"STDP layer": {"accuracy": 0.4118, "spikes per image": 186547.03},
    ...            "chance": {"accuracy": 0.1}},
    ...           formats={"accuracy": ".1%", "spikes per image": ",.0f"}, index_name="network")
    >>> print(t)
    network     accuracy  spikes per image
    ----------  --------  ----------------
    STDP layer     41.2%           186,547
    chance         10.0%               n/a
    """
    where = "viz.table"
    index, own_name, columns, rows, own_caption, own_notes = _table_parts(data, where)
    if len(set(columns)) != len(columns):
        raise ValueError(f"{where}: column names must be unique, got {columns}")
    if isinstance(formats, Mapping):
        unknown = [str(k) for k in formats if str(k) not in columns]
        if unknown:
            raise ValueError(f"{where}: formats names columns the data does not have: "
                             f"{', '.join(map(repr, unknown))} (columns: {', '.join(map(repr, columns))})")
        per_column = {str(k): v for k, v in formats.items()}
    else:
        per_column = {c: formats for c in columns}
    for c, fmt in per_column.items():
        if fmt is not None and not isinstance(fmt, str) and not callable(fmt):
            raise TypeError(f"{where}: formats[{c!r}] must be a format string or a function, "
                            f"got {type(fmt).__name__} {fmt!r}")
    check.instance("caption", caption, str, none=True, where=where)
    check.instance("index_name", index_name, str, none=True, where=where)
    if notes is None:
        notes = own_notes
    elif isinstance(notes, str):
        notes = (notes,) if notes else ()
    elif isinstance(notes, Sequence) and all(isinstance(n, str) for n in notes):
        notes = tuple(notes)
    else:
        raise TypeError(f"{where}: notes must be a string or a sequence of strings, got "
                        f"{type(notes).__name__}")
    cells = [[_format_cell(v, per_column.get(c), where, c) for v, c in zip(row, columns)]
             for row in rows]
    numeric = [_is_numeric_column([row[j] for row in rows]) for j in range(len(columns))]
    labels = [_format_cell(label, "g" if isinstance(_scalar(label), float) else None, where,
                           "(row labels)") for label in index]
    return DisplayTable(labels, index_name if index_name is not None else (own_name or ""),
                        columns, cells, numeric,
                        caption if caption is not None else (own_caption or ""), notes)
