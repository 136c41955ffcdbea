"""ipywidgets explorers for the chapters.

Each explorer redraws a figure from :mod:`snnlib.viz`. A static page (the
rendered book, GitHub) shows no live widget, so a chapter first draws the
same figure for the default parameters in a plain cell, then offers the
explorer for readers with a kernel.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from . import encoding as enc
from . import viz

__all__ = ["encoding_explorer"]


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
        fig = viz.encoding_panel(
            intensities[index], params, seed=seed,
            title=f"{label}max rate {params.max_rate_hz:g} Hz, duration {params.duration_ms:g} ms",
        )
        plt.show(fig)

    return W.interactive(draw, index=image, max_rate=rate, duration_value=duration)
