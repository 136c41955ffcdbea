"""Tier 2 (PyTorch, the balanced tier): a retina, Poisson spikes, an STDP-trained LIF layer, a linear readout.

- :mod:`.layer`: the retina fit (:class:`RetinaFit`), the Poisson ON/OFF
  inputs, the convolutional LIF layer (:func:`layer_run`) and the network
  that learns by STDP and gives pooled spike counts (:class:`DoGLIF`);
- :mod:`.kmeans`: the layer's non-spiking counterpart, k-means triangle features of the
  same whitened patches (what the spikes cost);
- :mod:`.run`: the tier's pipeline (:func:`run_tier`), which writes the
  common record (:mod:`.record`).
"""

from . import kmeans
from .layer import (FEATURES_VERSION, IMAGE_PX, DoGLIF, DoGLIFParams, RetinaFit,
                    features_together, keep_k_winners, layer_run, on_off_inputs, poisson_on_off,
                    spike_statistics)
from .run import (READOUT_BACKEND, READOUT_CS, READOUT_MAX_ITER, params_for_profile,
                  run_tier)

__all__ = ["DoGLIF", "DoGLIFParams", "FEATURES_VERSION", "IMAGE_PX", "READOUT_BACKEND",
           "READOUT_CS", "READOUT_MAX_ITER", "RetinaFit", "features_together", "keep_k_winners",
           "kmeans", "layer_run", "on_off_inputs", "params_for_profile", "poisson_on_off",
           "run_tier", "spike_statistics"]
