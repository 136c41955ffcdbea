"""Tier 3 (PyTorch, the efficient tier): train a CNN, convert it into a rate-based spiking network.

The efficient tier (Cao et al. 2015; Diehl et al. 2015; Rueckauer et al. 2017;
Bu et al. 2022), in three modules:

- :mod:`.cnn`: the CNN built to convert (:class:`ConvNet`: convolutions,
  batch norm, ReLU or :class:`QCFS`, average or max pooling, optionally a fixed
  whitening layer first, :func:`set_whitening`) and its training
  (:func:`train_cnn`), batch-norm folding (:func:`fold_batchnorm`),
  test-time augmentation (:func:`tta_logits`);
- :mod:`.convert`: normalisation (:func:`normalise`), the spiking copy
  (IF neurons, :class:`SpikingMaxPool` for a max pool) and its simulation
  (:func:`simulate`, :func:`simulate_parts`), rate errors
  (:func:`rates_vs_activations`), operation counts
  (:func:`synaptic_operations`), quantisation-aware fine-tuning
  (:func:`qcfs_from_relu`) and bias calibration for few steps
  (:func:`calibrate_biases`);
- :mod:`.run`: the tier's pipeline (:func:`run_tier`), which writes the
  common record (:mod:`.record`);
- :mod:`.muon`: the Muon optimiser (:class:`Muon`, :func:`orthogonalise`), which
  :func:`train_cnn` can use for the convolutions' filters;
- :mod:`.numerics`: the arithmetic of each profile (float32, fixed threads,
  deterministic algorithms and capped CPU kernels at ``ci`` and ``book``, so
  that their numbers are the same on every machine; bfloat16 at ``full``);
- :mod:`.plots` and :mod:`.report`: chapter 6's figures and tables, drawn
  from the record and the networks.

The IF neuron itself (reset by subtraction) is :class:`snnlib.neurons.IFNeurons`.
"""

from .cnn import (QCFS, QCFS_INIT_PERCENTILE, QCFS_LEVELS, QCFS_MAX_LR, ConvNet, ConvNetParams,
                  TrainParams, augment, bf16_supported, evaluate_cnn, fold_batchnorm,
                  images_to_tensor, relu_twin, set_whitening, train_cnn, tta_logits)
from .convert import (CHANNEL_PERCENTILE, PERCENTILE, PERCENTILES, QCFS_CALIBRATION_ROUNDS,
                      QCFS_CALIBRATION_STEPS, QCFS_BURST, QCFS_SHORT_STEPS, QCFS_SIGNED, QCFS_V0,
                      SIM_VERSION, SNN_PART_IMAGES, STEPS_ANALYSED, SpikingMaxPool,
                      calibrate_biases, normalise, qcfs_from_relu, rates_vs_activations,
                      relu_layers, simulate, simulate_parts, smallest_steps_within,
                      synaptic_operations)
from .muon import Muon, orthogonalise
from .run import params_for_profile, run_tier
from . import numerics, plots, report  # noqa: E402  (modules: conversion.plots.raster, ...)

__all__ = ["CHANNEL_PERCENTILE", "ConvNet", "ConvNetParams", "Muon", "PERCENTILE", "PERCENTILES",
           "QCFS", "QCFS_CALIBRATION_ROUNDS", "QCFS_CALIBRATION_STEPS", "QCFS_INIT_PERCENTILE",
           "QCFS_BURST", "QCFS_LEVELS", "QCFS_MAX_LR", "QCFS_SHORT_STEPS", "QCFS_SIGNED", "QCFS_V0",
           "SIM_VERSION", "SNN_PART_IMAGES", "STEPS_ANALYSED", "SpikingMaxPool", "TrainParams",
           "augment", "bf16_supported", "calibrate_biases", "evaluate_cnn", "fold_batchnorm",
           "images_to_tensor", "normalise", "orthogonalise", "params_for_profile", "qcfs_from_relu",
           "rates_vs_activations", "relu_layers", "relu_twin", "run_tier", "set_whitening",
           "simulate", "simulate_parts", "smallest_steps_within", "synaptic_operations", "train_cnn",
           "tta_logits"]
