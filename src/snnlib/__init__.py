"""snnlib: the simulation package behind *Spiking networks for CIFAR-10*.

Chapters import it as ``import snnlib as sl`` and call the modules by name::

    sl.data        CIFAR-10: find, download, validate, grayscale, subsets
    sl.profiles    run sizes: ci, book, full ($SNNLIB_PROFILE)
    sl.encoding    Poisson rate encoding of intensities into spike trains
    sl.retina      Difference-of-Gaussians (ON/OFF, colour-opponent) filters, ZCA whitening
    sl.viz         figures shared by the chapters
    sl.widgets     ipywidgets explorers

Importing snnlib changes no global state (plot style included).
"""

from . import data, encoding, metrics, profiles, readout, retina, viz, widgets

__version__ = "0.1.0"

__all__ = ["__version__", "data", "encoding", "metrics", "profiles", "readout", "retina", "viz",
           "widgets"]
