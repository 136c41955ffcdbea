"""Tier 2's measurements as the common record (:class:`snnlib.runs.TierRecord`).

:func:`to_record` takes the nested dict that :func:`.run.run_tier` measures
(the shape ``results/dog_lif.json`` had before the common format), moves its
common fields into place (``MOVES``) and keeps the rest as the record's
``specific`` part. The same function migrates an old record.
"""

from __future__ import annotations

from ... import runs
from .layer import positions_per_side

TIER_READOUT = "the tier: STDP layer's spike counts"
"""The readout of the tier's own features in ``readout_details``."""

MOVES = runs.common_moves() + [(k, k) for k in (
    "accuracy", "per_class_accuracy", "confusion", "baselines", "train_images")]


def to_record(d: dict, *, device: str, provenance: dict | None = None) -> runs.TierRecord:
    """The record of tier 2's measurements ``d`` (see the module docstring)."""
    p = d["parameters"]
    side = positions_per_side(p["patch_px"], p.get("stride_px", 1),  # old records: stride 1,
                              p.get("downsample", 1))                 # no downsample
    stdp = d["spike_statistics"]["stdp"]
    speed = d["images_per_s"]
    return runs.record_from_dict(
        d, MOVES,
        firing={"STDP layer": {"neurons": p["n_filters"] * side * side,
                               "spikes_per_image": stdp["spikes_per_image"],
                               "rate_hz": stdp["rate_hz"]}},
        synaptic_events=runs.SynapticEvents(
            accumulates=d["synaptic_operations_per_image"]["stdp"], multiply_accumulates=0.0,
            what=d["synaptic_operations_per_image"]["what"] + "; the retina's whitening and the "
                 "readout are not counted"),
        time_steps=p["steps"], dt_ms=p["dt_ms"],
        training_wall_s=runs.total_or_none(  # STDP, the training images' features, the readout
            d["wall_s"]["layer_stdp"], d["wall_s"]["features_stdp_train"],
            d["readout_details"][TIER_READOUT]["wall_s"]),
        training=runs.Speed(speed["stdp_training_patches_per_s"],
                            "STDP learning: patches (one position each) per second"),
        inference=runs.Speed(speed["feature_extraction"]["stdp"],
                             "feature extraction (retina, spikes, pooled counts): images per "
                             "second" + (", simulated together with the random-weight layer "
                                         "on the same input spikes and charged half the time"
                                         if speed.get("layers_together") else "")),
        device=device,
        provenance=provenance)


def summary_lines(record: runs.TierRecord) -> list[str]:
    """What ``python -m snnlib run dog_lif`` prints beyond the common table."""
    p = record.parameters
    speed = record.specific["images_per_s"]["feature_extraction"]
    return [f"{record.train_images} training images, {p['n_filters']} filters, "
            f"{record.specific['features_per_image']} features per image",
            "feature extraction (images/s): " + ", ".join(
                f"{k} {v:.1f}" for k, v in speed.items() if v is not None)]
