"""Tier 1 (Brian2, the most plausible tier): STDP hidden layers under lateral inhibition, an R-STDP output.

- :mod:`.diehl_cook`: the fully connected hidden layers of Diehl & Cook
  (:class:`BrianSTDPNetwork`, trained in chunks of images per Brian2 run) and
  their frozen copies for evaluation (:class:`FrozenReplicas`), with the
  analyses of their weights and spikes: the network the chapters run today;
- :mod:`.network`: the convolutional network that replaces it: a whitening
  retina with ON/OFF channels, two convolutional STDP layers under
  winner-take-all with homeostatic thresholds, complex cells between them
  (:func:`~.network.train_layers`, :func:`~.network.features`);
- :mod:`.output`: its output layer, class populations learning by R-STDP
  (:class:`~.output.PopulationReadout`);
- :mod:`.readout`: the Diehl & Cook network's reward-modulated output layer (:class:`RSTDPReadout`);
- :mod:`.run`: the tier's pipeline (:func:`run_tier`, its first part
  :func:`train_hidden_layers`), which writes the common record (:mod:`.record`).
"""

from .diehl_cook import (DC_EXC, DC_INH, DC_STDP, N_INPUTS, BrianSTDPNetwork, BrianSTDPParams,
                         FrozenReplicas, LayerParams, TrainingInterrupted, field_similarity,
                         field_smoothness, initial_state, learned_fraction, snapshot_schedule, spike_statistics, volley_fraction)
from .readout import OutputParams, RSTDPReadout, decide, image_spikes, select_trains, toy_spike_task
from .run import params_for_profile, readout_training_indices, run_tier, synaptic_events, train_hidden_layers

__all__ = ["DC_EXC", "DC_INH", "DC_STDP", "N_INPUTS", "BrianSTDPNetwork", "BrianSTDPParams", "FrozenReplicas", "LayerParams", "OutputParams",
           "RSTDPReadout", "TrainingInterrupted", "decide", "field_similarity", "field_smoothness",
           "image_spikes", "initial_state", "learned_fraction", "params_for_profile",
           "readout_training_indices", "run_tier", "select_trains", "snapshot_schedule",
           "spike_statistics", "synaptic_events", "toy_spike_task", "train_hidden_layers",
           "volley_fraction"]
