"""snnlib: the simulation package behind *Spiking networks for CIFAR-10*.

Chapters import it as ``import snnlib as sl`` and call the modules by name::

    sl.data        CIFAR-10: find, download, validate, grayscale, subsets
    sl.profiles    run sizes: ci, book, full ($SNNLIB_PROFILE)
    sl.encoding    Poisson rate encoding of intensities into spike trains
    sl.neurons     LIF and IF neurons (one step, analytic rates), in PyTorch and Brian2
    sl.plasticity  STDP and R-STDP
    sl.retina      Difference-of-Gaussians (ON/OFF, colour-opponent) filters, ZCA whitening
    sl.readout     linear classifiers on spike counts
    sl.metrics     accuracy, confusion
    sl.runs        checkpoints, cache keys, provenance, the device, the one record format
    sl.tiers       the three tiers (TIERS: the registry), imported when used
    sl.viz         figures shared by the chapters
    sl.compare     the tiers side by side, from their records (chapter 7, the README's results)
    sl.widgets     ipywidgets explorers

Importing snnlib changes no global state (plot style included).
"""

from . import (compare, data, encoding, metrics, neurons, plasticity, profiles, readout, retina,
               runs, tiers, viz, widgets)

__version__ = "0.1.0"

__all__ = ["__version__", "compare", "data", "encoding", "metrics", "neurons", "plasticity",
           "profiles", "readout", "retina", "runs", "tiers", "viz", "widgets"]
