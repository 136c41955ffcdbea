"""Tier 1's measurements as the common record (:class:`snnlib.runs.TierRecord`).

:func:`to_record` takes the nested dict that :func:`.run.run_tier` measures
(the shape ``results/brian_stdp.json`` had before the common format), moves
its common fields into place (``MOVES``) and keeps the rest as the record's
``specific`` part. The same function migrates an old record.
"""

from __future__ import annotations

from ... import runs

MOVES = runs.common_moves() + [(k, k) for k in (
    "accuracy", "per_class_accuracy", "confusion", "baselines")]
"""``train_images`` stays in the specific part (one number per layer); the record's is the
number of distinct training images (the hidden layers' and the output layer's are nested)."""


def to_record(d: dict, *, device: str, provenance: dict | None = None) -> runs.TierRecord:
    """The record of tier 1's measurements ``d`` (see the module docstring)."""
    net, out = d["parameters"]["network"], d["parameters"]["output"]
    enc = net["encoding"]
    sizes = {"hidden layer 1": net["layer1"]["n_neurons"],
             "hidden layer 2": net["layer2"]["n_neurons"],
             "output": out["n_classes"] * out["neurons_per_class"]}
    trained = d["spike_statistics"]["trained"]
    speed = d["images_per_s"]
    n = d["train_images"]
    return runs.record_from_dict(
        d, MOVES,
        train_images=max(n["hidden_layer1"], n["output_layer"]),
        firing={layer: {"neurons": sizes[layer], "spikes_per_image": s["spikes_per_image"],
                        "rate_hz": s["rate_hz"]} for layer, s in trained.items()},
        synaptic_events=runs.SynapticEvents(
            accumulates=d["synaptic_operations"]["trained"], multiply_accumulates=0.0,
            what=d["synaptic_operations"]["what"]),
        time_steps=round(enc["duration_ms"] / enc["dt_ms"]), dt_ms=enc["dt_ms"],
        # the hidden layers' learning, their spikes for the output layer's training images
        # (not recorded apart before this format: None), the output layer's learning
        training_wall_s=runs.total_or_none(
            d["wall_s"]["hidden_layers_total"], d["wall_s"].get("features_stdp_train"),
            d["wall_s"]["output_stdp_training_total"]),
        training=runs.Speed(speed["hidden_layer_training"]["layer1"],
                            "hidden layer 1 learning by STDP: images per second"),
        inference=runs.Speed(speed["hidden_spikes_learning_off"],
                             "hidden layers with learning off (frozen replicas): images per "
                             "second"),
        device=device,
        provenance=provenance)


def summary_lines(record: runs.TierRecord) -> list[str]:
    """What ``python -m snnlib run brian_stdp`` prints beyond the common table."""
    sizes = record.specific.get("images")
    if sizes is None:  # a record of the first, fully connected network
        sizes = record.specific["train_images"]
        return [f"hidden layers trained on {sizes['hidden_layer1']} and {sizes['hidden_layer2']} "
                f"images, output layer on {sizes['output_layer']} x {sizes['output_epochs']} "
                "epoch(s)"]
    volleys = record.specific["layer2_volley_fraction"]["trained"]
    return [f"hidden layers learned from {sizes['layer1_patches']} + {sizes['layer2_patches']} "
            f"patches of {sizes['hidden_layers']} images, output layer from "
            f"{sizes['output_layer']} images x {sizes['output_epochs']} epochs",
            f"layer-2 volleys in {100 * volleys:.1f}% of the test images; weights moved "
            + ", ".join(f"{k} {v:.2f}" for k, v in record.specific["weights_moved"].items())]
