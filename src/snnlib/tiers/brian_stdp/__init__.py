"""Tier 1 (Brian2, the most plausible tier): STDP hidden layers under lateral inhibition, an R-STDP output.

- :mod:`.network`: the tier's network: a whitening retina with ON/OFF
  channels, two convolutional STDP layers under winner-take-all with
  homeostatic thresholds, complex cells between them
  (:func:`~.network.train_layers`, :func:`~.network.features`);
- :mod:`.output`: its output layer, class populations learning by R-STDP
  (:class:`~.output.PopulationReadout`);
- :mod:`.pipeline`: the tier end to end (:func:`run_tier`), which writes the
  common record;
- :mod:`.diehl_cook`, :mod:`.readout`, :mod:`.run`: the first, fully connected
  network after Diehl & Cook (:class:`BrianSTDPNetwork`, :class:`FrozenReplicas`,
  :class:`RSTDPReadout`, :func:`train_hidden_layers`, :func:`run_diehl_cook`),
  kept for chapter 3's section on why it fails on CIFAR-10; :mod:`.record`
  migrates its old records.
"""

from .diehl_cook import (DC_EXC, DC_INH, DC_STDP, N_INPUTS, BrianSTDPNetwork, BrianSTDPParams,
                         FrozenReplicas, LayerParams, TrainingInterrupted, field_similarity,
                         field_smoothness, initial_state, learned_fraction, snapshot_schedule, spike_statistics, volley_fraction)
from .readout import OutputParams, RSTDPReadout, decide, image_spikes, select_trains, toy_spike_task
from .run import params_for_profile, readout_training_indices, run_diehl_cook, synaptic_events, train_hidden_layers
from .network import ConvLayerParams, RetinaParams, Tier1Params
from .output import PopulationParams, PopulationReadout
from .pipeline import ablations, output_params, run_tier, tier_params

__all__ = ["DC_EXC", "DC_INH", "DC_STDP", "N_INPUTS", "BrianSTDPNetwork", "BrianSTDPParams", "ConvLayerParams", "FrozenReplicas", "LayerParams", "OutputParams",
           "PopulationParams", "PopulationReadout", "RetinaParams", "Tier1Params", "ablations", "output_params",
           "run_diehl_cook", "tier_params",
           "RSTDPReadout", "TrainingInterrupted", "decide", "field_similarity", "field_smoothness",
           "image_spikes", "initial_state", "learned_fraction", "params_for_profile",
           "readout_training_indices", "run_tier", "select_trains", "snapshot_schedule",
           "spike_statistics", "synaptic_events", "toy_spike_task", "train_hidden_layers",
           "volley_fraction"]
