"""Tier 3's measurements as the common record (:class:`snnlib.runs.TierRecord`).

:func:`to_record` takes the nested dict that :func:`.run.run_tier` measures
(the shape ``results/conversion.json`` had before the common format) and
moves its common fields into place (``MOVES``); the rest is the record's
``specific`` part. The same function migrates an old record.
"""

from __future__ import annotations

from ... import runs
from ...data import CLASS_NAMES
from .cnn import ACTIVATIONS

MOVES = [m for m in runs.common_moves() if m[0] not in ("test_images", "class_names")] + [
    ("train_images", "train_images"),
    ("snn/accuracy", "accuracy"),
    ("snn/per_class_accuracy", "per_class_accuracy"),
    ("snn/confusion", "confusion"),
]
"""``(path in the measurements, path in the record)``; the test images of the record are the
ones the spiking network ran on (``snn_images``); the class names are CIFAR-10's."""


def spiking_layer_names(cnn: dict) -> list[str]:
    """The spiking layers of a CNN's converted copy, in order: ``whitening`` when the CNN has
    a whitening layer (its ON and OFF channels spike too), then ``conv1`` ... one per
    convolution. ``cnn`` is :class:`.cnn.ConvNetParams` as a dict (the record's
    ``parameters["cnn"]``)."""
    return ((["whitening"] if cnn.get("whitening_px") else [])
            + [f"conv{k + 1}" for k in range(len(cnn["widths"]))])


def describe_cnn(cnn: dict) -> str:
    """The CNN in words, from :class:`.cnn.ConvNetParams` as a dict, e.g. ``convolutions of
    64, 64, 128, 128, 256, 256 channels, batch norm, ReLU, 2 x 2 average pooling after
    convolutions 2, 4, 6, one linear layer``."""
    parts = []
    k = cnn.get("whitening_px")
    if k:
        parts.append(f"a fixed first layer that whitens {k} x {k} patches (ON and OFF copies, "
                     f"{2 * 3 * k * k} channels)")
    parts.append(f"convolutions of {', '.join(str(w) for w in cnn['widths'])} channels"
                 + (" (starting as identities)" if cnn.get("identity_init") else ""))
    parts.append(("batch norm without a learned scale, " if cnn.get("bn_scale") is False
                  else "batch norm, ")
                 + ("clip-floor-shift activations" if cnn.get("quantisation_levels")
                    else ACTIVATIONS[cnn.get("activation", "relu")]))
    parts.append(f"2 x 2 {'max' if cnn.get('pool') == 'max' else 'average'} pooling "
                 + ("straight after convolutions " if cnn.get("pool_first")
                    else "after convolutions ")
                 + ", ".join(str(j + 1) for j in cnn["pool_after"]))
    if cnn.get("global_pool"):
        parts.append(f"global {'max' if cnn.get('global_max') else 'average'} pooling")
    scale = cnn.get("logit_scale", 1.0)
    return ", ".join(parts + ["one linear layer" + ("" if scale == 1.0 else
                                                    f" (logits times {scale:.3g})")])


def rounds_clause(rounds: int) -> str:
    """How a text names the bias calibration's rounds: ``" in N rounds"``, or nothing for one."""
    return f" in {rounds} rounds" if rounds > 1 else ""


def describe_training(training: dict) -> str:
    """How the CNN trained, in words, from :class:`.cnn.TrainParams` as a dict: epochs, batch,
    learning rate, and whichever of augmentation, smaller windows in the first epochs, cutout,
    label smoothing, distillation, alternating flips, a fixed momentum, faster batch-norm
    biases, Lookahead and bfloat16 it used, and Muon for the filters where it did."""
    extras = []
    if training.get("augment"):
        extras.append(f"crops of up to {training.get('translate_px', 4)} pixels and "
                      + ("alternating" if training.get("alternate_flips") else "random")
                      + " flips")
        if training.get("small_crop_px") and training.get("small_crop_epochs"):
            k = training["small_crop_epochs"]
            side = training["small_crop_px"]
            extras.append(("the first epoch" if k == 1 else f"the first {k} epochs")
                          + f" on windows of {side} x {side} pixels")
        if training.get("cutout_px"):
            side = training["cutout_px"]
            extras.append(f"cutout of {side} x {side} pixels")
    if training.get("label_smoothing"):
        extras.append(f"label smoothing {training['label_smoothing']:g}")
    if training.get("distill"):
        extras.append(f"distilled from a trained network (the teacher's share "
                      f"{training['distill']:g})")
    if training.get("cycle_momentum") is False:
        extras.append(f"momentum {training['momentum']:g} throughout")
    if training.get("bias_lr_scale", 1.0) != 1.0:
        extras.append(f"batch-norm biases learning {training['bias_lr_scale']:g} times faster")
    if training.get("lookahead"):
        extras.append("Lookahead")
    if training.get("bf16"):
        extras.append("bfloat16 autocast")
    n = training["epochs"]
    schedule = ("SGD on airbench's linear schedule" if training.get("schedule") == "airbench"
                else "one-cycle SGD")
    muon = (f" (the convolutions' filters by Muon up to lr {training.get('muon_lr', 0.17):g}, "
            f"momentum {training.get('muon_momentum', 0.6):g})"
            if training.get("optimizer") == "muon" else "")
    return (f"{n} epoch{'' if n == 1 else 's'}, batch {training['batch_size']}, {schedule} up to "
            f"lr {training['max_lr']:g}{muon}" + "".join(f", {e}" for e in extras))


def _events(ops: dict) -> runs.SynapticEvents:
    return runs.SynapticEvents(accumulates=ops["accumulates"],
                               multiply_accumulates=ops["multiply_accumulates"], what=ops["what"])


def to_record(d: dict, *, device: str, provenance: dict | None = None) -> runs.TierRecord:
    """The record of tier 3's measurements ``d`` (see the module docstring)."""
    cnn, snn, q = d["cnn"], d["snn"], d.get("qcfs")
    training = cnn["training"]
    variants = {"the CNN (not spiking)": runs.Variant(
        accuracy=cnn["accuracy_on_snn_images"], time_steps=None,
        synaptic_events=runs.SynapticEvents(
            accumulates=0.0, multiply_accumulates=cnn["multiply_accumulates_per_image"],
            what="one multiply-accumulate per weight use"),
        inference=runs.Speed(cnn["images_per_s"], "images per second, float32"),
        what="the CNN the spiking network was converted from, on the same test images")}
    if q is not None:
        variants[f"QCFS fine-tuned, T = {q['steps']}"] = runs.Variant(
            accuracy=q["accuracy_vs_steps"][str(q["steps"])], time_steps=q["steps"],
            synaptic_events=_events(q["operations_per_image"]),
            inference=runs.Speed(q["images_per_s"], q["what_images_per_s"]), what=q["what"])
        for t, short in sorted(q.get("short_simulations", {}).items(), key=lambda kv: int(kv[0])):
            variants[f"QCFS fine-tuned, T = {t}"] = runs.Variant(
                accuracy=short["accuracy"], time_steps=int(t),
                synaptic_events=_events(short["operations_per_image"]),
                inference=runs.Speed(short["images_per_s"], short["what_images_per_s"]),
                what=f"{q['what']}, for {t} steps")
    n_train = d["train_images"]
    return runs.record_from_dict(
        d, MOVES,
        class_names=list(CLASS_NAMES),
        test_images=d["snn_images"],
        baselines={"the CNN it was converted from": cnn["accuracy_on_snn_images"],
                   "chance": 0.1},
        firing={name: dict(layer) for name, layer in snn["firing"].items()},
        synaptic_events=_events(snn["operations_per_image"]),
        time_steps=snn["steps"], dt_ms=None,
        training_wall_s=runs.total_or_none(training["wall_s"]),
        training=runs.Speed(
            runs.finite_or_none(n_train * training["epochs"] / training["wall_s"])
            if training["wall_s"] else None,
            "CNN training: images per second over all epochs (backpropagation)"),
        inference=runs.Speed(snn["images_per_s"], snn["what_images_per_s"]),
        variants=variants,
        device=device,
        provenance=provenance)


def summary_lines(record: runs.TierRecord) -> list[str]:
    """What ``python -m snnlib run conversion`` prints beyond the common table."""
    s = record.specific
    cnn, snn, q = s["cnn"], s["snn"], s.get("qcfs")  # no QCFS in records before it
    lines = [
        f"CNN trained on {record.train_images} images for {cnn['training']['epochs']} epochs in "
        f"{cnn['training']['wall_s']:.0f} s: accuracy {cnn['accuracy']:.4f} "
        f"({cnn['accuracy_on_snn_images']:.4f} on the {record.test_images} images the SNN ran "
        f"on), {cnn['images_per_s']:.0f} images/s",
        "SNN accuracy by steps: " + ", ".join(
            f"T={t} {a:.4f}" for t, a in snn["accuracy_vs_steps"].items()),
        f"smallest T within 1 point of the CNN: {snn['smallest_steps_within_1_point']}, "
        f"within 0.1 point: {snn['smallest_steps_within_0.1_point']}",
    ]
    var = s["variants"]
    for name, acc in var["accuracy_vs_steps"].items():
        lines.append(f"{name:<24} on {var['images']} images: "
                     + ", ".join(f"T={t} {a:.3f}" for t, a in acc.items()))
    if q is None:
        return lines
    lines += [
        f"fine-tuned with QCFS ({q['levels']} levels, {q['training']['epochs']} epochs, "
        f"{q['training']['wall_s']:.0f} s): CNN accuracy {q['cnn_accuracy']:.4f} "
        f"({q['cnn_accuracy_on_snn_images']:.4f} on the SNN's images)",
        f"its SNN ({'signed IF neurons, ' if q.get('signed') else ''}"
        f"{'bursts of up to %d, ' % q['burst'] if q.get('burst', 1) > 1 else ''}"
        f"v0 = {q['v0']}) by steps: "
        + ", ".join(
            f"T={t} {a:.4f}" for t, a in q["accuracy_vs_steps"].items()),
    ]
    if "uncalibrated" in q:
        c = q["bias_calibration"]
        lines += [
            f"(its biases calibrated for T={c['steps']} on {c['images']} training images"
            f"{rounds_clause(c.get('rounds', 1))}, {c['wall_s']:.0f} s; before the calibration: "
            + ", ".join(
                f"T={t} {a:.4f}" for t, a in q["uncalibrated"]["accuracy_vs_steps"].items())
            + ")"]
    lines += [
        f"smallest T within 1 point of its CNN: {q['smallest_steps_within_1_point']}, "
        f"within 0.1 point: {q['smallest_steps_within_0.1_point']}, within 1 point of the "
        f"ReLU CNN: {q['smallest_steps_within_1_point_of_relu_cnn']}",
    ]
    for t, short in q.get("short_simulations", {}).items():
        o = short["operations_per_image"]
        lines.append(f"its SNN simulated for T={t} on its own: accuracy {short['accuracy']:.4f}, "
                     f"{o['accumulates']:.3g} accumulates and {o['multiply_accumulates']:.3g} "
                     f"multiply-accumulates per image")
    return lines
