"""ipywidgets explorers for the chapters.

Each explorer redraws a figure from :mod:`snnlib.viz`. A static page (the
rendered book, GitHub) shows no live widget, so a chapter first draws the
same figure for the default parameters in a plain cell, then offers the
explorer for readers with a kernel.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from dataclasses import replace

from . import encoding as enc
from . import neurons as nrn
from . import plasticity as pl
from . import viz

__all__ = ["conversion_explorer", "dog_explorer", "encoding_explorer", "lif_explorer", "receptive_field_explorer",
           "stdp_explorer", "tier1_image_explorer", "tier2_position_explorer"]


def encoding_explorer(intensities, class_names=None, labels=None, *,
                      max_rate_hz: float = 63.75, duration_ms: float = 350.0,
                      dt_ms: float = 0.5, seed: int = 0):
    """Explore Poisson encoding: choose the image, the maximum rate and the duration.

    Parameters
    ----------
    intensities : array-like
        ``(N, 32, 32)`` grayscale intensities in [0, 1].
    class_names, labels : optional
        To title each image with its class.
    max_rate_hz, duration_ms, dt_ms, seed
        Starting values; the rate slider stops at one spike per step
        (1000 / dt_ms Hz).

    Returns
    -------
    ipywidgets.Widget
        Sliders over the :func:`snnlib.viz.encoding_panel` figure.
    """
    import ipywidgets as W

    n = len(intensities)
    image = W.IntSlider(value=0, min=0, max=n - 1, description="image")
    rate = W.FloatSlider(value=max_rate_hz, min=1.0, max=1000.0 / dt_ms, step=1.0,
                         description="max rate (Hz)", style={"description_width": "initial"})
    duration = W.FloatLogSlider(value=duration_ms, base=10, min=0.5, max=3.5, step=0.05,
                                description="duration (ms)", style={"description_width": "initial"})

    def draw(index: int, max_rate: float, duration_value: float) -> None:
        steps = max(1, round(duration_value / dt_ms))
        params = enc.PoissonParams(max_rate_hz=max_rate, duration_ms=steps * dt_ms, dt_ms=dt_ms)
        label = ""
        if class_names is not None and labels is not None:
            label = f"image {index} ({class_names[int(labels[index])]}): "
        viz.encoding_panel(
            intensities[index], params, seed=seed,
            title=f"{label}max rate {params.max_rate_hz:g} Hz, duration {params.duration_ms:g} ms",
        )
        plt.show()

    return W.interactive(draw, index=image, max_rate=rate, duration_value=duration)


def _slider(W, value, low, high, step, description):
    return W.FloatSlider(value=value, min=low, max=high, step=step, description=description,
                         style={"description_width": "initial"}, continuous_update=False)


def lif_explorer(params: nrn.LIFParams | None = None, *, current_na: float = 2.0):
    """Explore a LIF neuron: input current, membrane time constant, threshold, refractory period.

    Redraws :func:`snnlib.viz.lif_panel`. The threshold slider stays above
    the reset potential and the refractory slider moves in whole time steps,
    so every setting is a valid :class:`~snnlib.neurons.LIFParams`.
    """
    import ipywidgets as W

    p = params or nrn.LIFParams(dt_ms=0.1)
    current = _slider(W, current_na, 0.0, 10.0, 0.1, "current (nA)")
    tau = _slider(W, p.tau_mem_ms, max(1.0, 2 * p.dt_ms), 100.0, 1.0, "tau_mem (ms)")
    thresh = _slider(W, p.v_thresh_mv, max(p.v_reset_mv, p.v_rest_mv) + 1.0, -30.0, 0.5,
                     "threshold (mV)")
    ref = _slider(W, p.t_ref_ms, 0.0, 20.0, p.dt_ms, "t_ref (ms)")

    def draw(current_value: float, tau_value: float, thresh_value: float, ref_value: float) -> None:
        steps = round(ref_value / p.dt_ms)
        q = replace(p, tau_mem_ms=tau_value, v_thresh_mv=thresh_value, t_ref_ms=steps * p.dt_ms)
        viz.lif_panel(q, current_value)
        plt.show()

    return W.interactive(draw, current_value=current, tau_value=tau, thresh_value=thresh,
                         ref_value=ref)


def stdp_explorer(params: pl.STDPParams | None = None):
    """Explore the STDP window: A+, A-, tau+ and tau-; redraws :func:`snnlib.viz.stdp_panel`."""
    import ipywidgets as W

    p = params or pl.STDPParams()
    a_plus = _slider(W, p.a_plus, 0.0, 0.05, 0.001, "A+")
    a_minus = _slider(W, p.a_minus, 0.0, 0.05, 0.001, "A-")
    tau_plus = _slider(W, p.tau_plus_ms, 2.0, 80.0, 1.0, "tau+ (ms)")
    tau_minus = _slider(W, p.tau_minus_ms, 2.0, 80.0, 1.0, "tau- (ms)")

    def draw(a_plus_value: float, a_minus_value: float, tau_plus_value: float,
             tau_minus_value: float) -> None:
        q = replace(p, a_plus=a_plus_value, a_minus=a_minus_value, tau_plus_ms=tau_plus_value,
                    tau_minus_ms=tau_minus_value)
        viz.stdp_panel(q)
        plt.show()

    return W.interactive(draw, a_plus_value=a_plus, a_minus_value=a_minus,
                         tau_plus_value=tau_plus, tau_minus_value=tau_minus)


def receptive_field_explorer(weights, images, counts, *, labels=None, class_names=None,
                             duration_ms: float = 350.0):
    """Browse a layer's neurons: receptive field, response to a chosen image, responses to all.

    Arguments as :func:`snnlib.viz.neuron_response_panel`; two sliders
    choose the neuron and the image.
    """
    import ipywidgets as W

    n_neurons, n_images = len(weights), len(images)
    neuron = W.IntSlider(value=0, min=0, max=n_neurons - 1, description="neuron",
                         continuous_update=False)
    image = W.IntSlider(value=0, min=0, max=n_images - 1, description="image",
                        continuous_update=False)

    def draw(neuron_index: int, image_index: int) -> None:
        viz.neuron_response_panel(weights, images, counts, neuron_index, image_index,
                                  labels=labels, class_names=class_names, duration_ms=duration_ms)
        plt.show()

    return W.interactive(draw, neuron_index=neuron, image_index=image)


def filter_map_explorer(images, filters, field_px: int, counts_of, *, titles=None):
    """Pick an image and a layer-1 filter: where does the filter fire?

    ``counts_of(i)`` returns the layer's spike counts ``(S, S, K)`` for image ``i``
    (it may run the network; it is called when the image changes); the panel is
    :func:`snnlib.viz.filter_map_panel`.
    """
    import ipywidgets as W

    image = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                        continuous_update=False)
    k = W.IntSlider(value=0, min=0, max=len(filters) - 1, description="filter",
                    continuous_update=False)
    cache: dict = {}

    def draw(image_index: int, filter_index: int) -> None:
        if image_index not in cache:
            cache.clear()
            cache[image_index] = counts_of(image_index)
        viz.filter_map_panel(images[image_index], filters, field_px, cache[image_index],
                             filter_index, title=None if titles is None else titles[image_index])
        plt.show()

    return W.interactive(draw, image_index=image, filter_index=k)


def tier1_image_explorer(images, labels, class_names, spikes_of, *, duration_ms: float,
                         neurons_per_class: int, start: int = 0):
    """Pick a test image and see the spikes of every layer of tier 1 and its decision.

    ``spikes_of(k)`` returns :func:`snnlib.tiers.brian_stdp.image_spikes`'s
    dict for image ``k`` (it runs the network: a second or so); the panel is
    :func:`snnlib.viz.tier1_spike_panel`.
    """
    import ipywidgets as W

    image = W.IntSlider(value=start, min=0, max=len(images) - 1, description="test image",
                        continuous_update=False)

    def draw(image_index: int) -> None:
        viz.tier1_spike_panel(images[image_index], spikes_of(image_index), duration_ms=duration_ms,
                              neurons_per_class=neurons_per_class, class_names=class_names,
                              label=int(labels[image_index]))
        plt.show()

    return W.interactive(draw, image_index=image)


def dog_explorer(images, *, labels=None, class_names=None, sigma_center_px: float = 1.0,
                 sigma_surround_px: float = 2.0):
    """The retina on a chosen image: sliders for the image and the two sigmas (:func:`snnlib.viz.dog_panel`).

    A surround no wider than the centre is refused in words, not with a traceback.
    """
    import ipywidgets as W

    from .retina import DoGParams

    image = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                        continuous_update=False)
    centre = _slider(W, sigma_center_px, 0.3, 4.0, 0.1, "σ centre (px)")
    surround = _slider(W, sigma_surround_px, 0.5, 8.0, 0.1, "σ surround (px)")

    def draw(image_index: int, sigma_c: float, sigma_s: float) -> None:
        if sigma_s <= sigma_c:
            print(f"The surround (σ = {sigma_s:g} px) must be wider than the centre "
                  f"(σ = {sigma_c:g} px).")
            return
        name = (f"{class_names[labels[image_index]]}" if labels is not None and class_names is not None
                else f"image {image_index}")
        viz.dog_panel(images[image_index], DoGParams(sigma_c, sigma_s), title=name)
        plt.show()

    return W.interactive(draw, image_index=image, sigma_c=centre, sigma_s=surround)


def tier2_position_explorer(net, images, *, position: int | None = None, seed: int = 0):
    """Encoding and LIF at one position of tier 2's layer: choose the image, the position,
    the input rate, the membrane time constant and the lateral inhibition.

    ``net`` is a fitted :class:`snnlib.tiers.dog_lif.DoGLIF`; the panel is
    :func:`snnlib.viz.tier2_position_panel` (input raster, layer raster,
    membrane potentials of the three busiest neurons).
    """
    import ipywidgets as W

    base = net.params
    side = base.side
    if position is None:
        position = (side // 2) * side + side // 2  # the centre
    image = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                        continuous_update=False)
    row = W.IntSlider(value=position // side, min=0, max=side - 1, description="row",
                      continuous_update=False)
    col = W.IntSlider(value=position % side, min=0, max=side - 1, description="column",
                      continuous_update=False)
    rate = _slider(W, base.max_rate_hz, 10.0, 1000.0 / base.dt_ms, 10.0, "max rate (Hz)")
    tau = _slider(W, base.tau_mem_ms, 2.0 * base.dt_ms, 50.0, 1.0, "τ membrane (ms)")
    inh = _slider(W, base.inhibition_mv, 0.0, 40.0, 1.0, "inhibition (mV)")

    def draw(image_index, r, c, max_rate_hz, tau_mem_ms, inhibition_mv) -> None:
        p = replace(base, max_rate_hz=max_rate_hz, tau_mem_ms=tau_mem_ms,
                    inhibition_mv=inhibition_mv)
        rec = net.spikes_of_image(images[image_index], seed=seed, positions=[r * side + c],
                                  params=p)
        viz.tier2_position_panel(rec, dt_ms=p.dt_ms, v_thresh_mv=p.lif.v_thresh_mv + net.theta_mv,
                                 title=f"image {image_index}, position ({r}, {c}): "
                                       f"{int(rec['counts'].sum())} layer spikes")
        plt.show()

    return W.interactive(draw, image_index=image, r=row, c=col, max_rate_hz=rate,
                         tau_mem_ms=tau, inhibition_mv=inh)


def conversion_explorer(folded, images, calibration, class_names, *, normalise, trace,
                        labels=None, percentiles=(99.0, 99.9, 99.99, 100.0),
                        steps=(1, 2, 4, 8, 16, 32, 64, 128, 256), layer_names=None):
    """Tier 3 on a chosen image: the number of steps T, the normalisation percentile and the layer.

    ``folded`` is the CNN with batch norm folded, ``images`` float
    ``(N, 3, 32, 32)`` in [0, 1], ``calibration`` the training images the
    normalisation is computed on. ``normalise(folded, calibration,
    percentile=p)`` returns ``(network, lambdas)`` and ``trace(network,
    images, steps=..., keep_rates=True)`` the rates of one image (tier 3's
    :func:`~snnlib.tiers.conversion.normalise` and
    :func:`~snnlib.tiers.conversion.rates_vs_activations`). Each (image,
    percentile) is simulated once for ``max(steps)`` steps; moving the T
    slider only reads the record. The panel is
    :func:`snnlib.viz.conversion_image_panel`.
    """
    import ipywidgets as W
    from torch import nn

    nets: dict = {}
    traces: dict = {}
    # its spiking layers: ReLU, or tier 3's QCFS (by name: shared modules import no tier)
    n_layers = sum(isinstance(m, nn.ReLU) or type(m).__name__ == "QCFS" for m in folded)
    names = layer_names or [f"layer {j + 1}" for j in range(n_layers)]
    image = W.IntSlider(value=0, min=0, max=len(images) - 1, description="image",
                        continuous_update=False)
    t = W.SelectionSlider(options=list(steps), value=steps[len(steps) // 2], description="T",
                          continuous_update=False)
    pct = W.Dropdown(options=list(percentiles), value=99.99 if 99.99 in percentiles else percentiles[0],
                     description="percentile")
    layer = W.Dropdown(options=[(n, j) for j, n in enumerate(names)], value=n_layers - 1,
                       description="layer")

    def draw(image_index, steps_t, percentile, layer_index) -> None:
        if percentile not in nets:
            nets[percentile] = normalise(folded, calibration, percentile=percentile)[0]
        key = (image_index, percentile)
        if key not in traces:
            traces[key] = trace(nets[percentile], images[image_index:image_index + 1],
                                steps=steps, keep_rates=True)
        viz.conversion_image_panel(images[image_index].permute(1, 2, 0).numpy(), traces[key],
                                   steps_t, layer_index, class_names,
                                   label=None if labels is None else int(labels[image_index]),
                                   layer_names=names,
                                   title=f"normalised at the {percentile:g}th percentile")
        plt.show()

    return W.interactive(draw, image_index=image, steps_t=t, percentile=pct, layer_index=layer)
