"""Chapter 6's tables and summary lines, read from tier 3's record.

Each function takes the :class:`snnlib.runs.TierRecord` that
:func:`.run.run_tier` writes (or what the chapter computed beside it) and
returns either a line of text (to ``print``) or a :class:`snnlib.viz.DisplayTable`
made by :func:`snnlib.viz.table`, the book's one table helper (to ``display``:
an HTML table in a notebook and in the book, aligned text elsewhere), so that a
chapter cell reads as its prose does::

    display(conversion.report.accuracy_table(record))
    print(conversion.report.smallest_steps_line(record))

Numbers are formatted as the chapter shows them, one format per column:
accuracies as percentages with one decimal, losses in percentage points with
one decimal, operation counts with three significant digits. A table of a
curve against the simulation steps has one row per T when its quantities are
formatted differently (:func:`accuracy_table`, :func:`full_profile_items`).
:func:`show` prints lines and displays tables in order (for a cell with
several of them, such as :func:`full_profile_items`).
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from ... import _validate as check
from ... import runs, viz
from .cnn import ACTIVATIONS
from .record import describe_cnn, describe_training, rounds_clause, spiking_layer_names

__all__ = ["accumulates_line", "accuracy_table", "calibration_line", "costs_table", "firing_table",
           "float32_gap_line", "full_profile_items", "lambda_table", "layer_names",
           "network_lines", "operations_table", "peer_table", "qcfs_choice_line",
           "qcfs_choice_table", "qcfs_float32_line", "qcfs_steps_line", "qcfs_table",
           "qcfs_training_line", "reference_table", "show", "smallest_steps_line",
           "techniques_table", "training_line", "variants_table"]


def _record(record, where: str) -> runs.TierRecord:
    """A tier-3 record (what :func:`.run.run_tier` returns or ``runs.load_record`` reads)."""
    check.instance("record", record, runs.TierRecord, where=where)
    if record.tier != "conversion":
        raise ValueError(f"{where}: record must be tier 3's (conversion), got tier "
                         f"{record.tier!r}")
    return record


def _steps_row(curve: dict) -> dict[str, float]:
    """``{"1": a, 2: b}`` as ``{"1": a, "2": b}``: the steps T as the record's JSON keys
    (text, so that a table shows ``1024`` and not ``1,024``)."""
    return {str(int(t)): a for t, a in curve.items()}


def _by_steps(columns: dict[str, dict]) -> dict[str, dict]:
    """``{column: {T: value}}`` as rows ``{T: {column: value}}``, one per T of any column,
    in the order met (a T that a column lacks shows :data:`snnlib.viz.NA`)."""
    rows: dict[str, dict] = {}
    for name, curve in columns.items():
        for t, value in _steps_row(curve).items():
            rows.setdefault(t, {})[name] = value
    return rows


def layer_names(record) -> list[str]:
    """The spiking layers' names: ``whitening`` if the CNN has a whitening layer, then
    ``conv1`` ... (one per convolution of the CNN)."""
    record = _record(record, "report.layer_names")
    return spiking_layer_names(record.parameters["cnn"])


def network_lines(cnn_params, train_params, numerics) -> str:
    """Two lines: the CNN's layers, and how it trains (epochs, batch, learning rate, arithmetic).

    ``numerics`` is a :class:`.numerics.Numerics`; its :meth:`~.numerics.Numerics.describe`
    names no value of the machine, so the line is the same wherever it is printed.
    """
    from .cnn import ConvNetParams, TrainParams
    from .numerics import Numerics

    where = "report.network_lines"
    check.instance("cnn_params", cnn_params, ConvNetParams, where=where)
    check.instance("train_params", train_params, TrainParams, where=where)
    check.instance("numerics", numerics, Numerics, where=where)
    return (f"CNN: {describe_cnn(asdict(cnn_params))}\n"
            # (bfloat16 is said by the arithmetic)
            f"training: {describe_training({**asdict(train_params), 'bf16': False})}; "
            f"arithmetic: "
            f"{numerics.describe()}")


def training_line(record) -> str:
    """Training images and wall time, and the CNN's test accuracy."""
    record = _record(record, "report.training_line")
    cnn = record.specific["cnn"]
    return (f"trained on {record.train_images} images in {cnn['training']['wall_s']:.0f} s; "
            f"CNN test accuracy {cnn['accuracy']:.1%} on {record.specific['test_images']} "
            f"test images")


def lambda_table(record):
    """Each layer's normalisation :math:`\\lambda_l` at each percentile (rows: layers)."""
    record = _record(record, "report.lambda_table")
    lambdas = record.specific["normalisation_lambdas"]
    rows = {layer: {p: values[k] for p, values in lambdas.items()}
            for k, layer in enumerate(layer_names(record))}
    return viz.table(rows, formats=".2f", index_name="layer",
                     caption="λ: the activation each layer's threshold stands for")


def accuracy_table(record):
    """The converted network's accuracy after every T, and its loss against the CNN in points.

    Rows: the steps T. Columns: the SNN's accuracy (a percentage) and its loss
    against the CNN in percentage points.
    """
    record = _record(record, "report.accuracy_table")
    snn = record.specific["snn"]
    rows = _by_steps({"SNN accuracy": snn["accuracy_vs_steps"],
                      "loss vs CNN (points)": snn["loss_vs_cnn_points"]})
    return viz.table(rows, formats={"SNN accuracy": ".1%", "loss vs CNN (points)": ".1f"},
                     index_name="steps T")


def smallest_steps_line(record) -> str:
    """The smallest T within 1 and within 0.1 percentage point of the CNN."""
    snn = _record(record, "report.smallest_steps_line").specific["snn"]
    return (f"smallest T within 1 point of the CNN: {snn['smallest_steps_within_1_point']}; "
            f"within 0.1 point: {snn['smallest_steps_within_0.1_point']}")


def variants_table(record):
    """Accuracy against T of every normalisation and input coding, on the variant images.

    Rows: the variants (input coding, percentile). Columns: the steps T.
    """
    var = _record(record, "report.variants_table").specific["variants"]
    rows = {name: _steps_row(acc) for name, acc in var["accuracy_vs_steps"].items()}
    return viz.table(rows, formats=".1%",
                     caption=f"accuracy on {var['images']} test images; CNN "
                             f"{var['cnn_accuracy']:.1%}")


def float32_gap_line(record) -> str | None:
    """How far the bfloat16 simulations are from float32 ones (None: they ran in float32).

    The largest difference in accuracy, over every T, between the tier's
    simulation and the same simulation in float32, on the variant images.
    """
    var = _record(record, "report.float32_gap_line").specific["variants"]
    curves = var["accuracy_vs_steps"]
    if "analog, p99.99, float32" not in curves:
        return None
    bf, f32 = curves["analog, p99.99"], curves["analog, p99.99, float32"]
    gap = max(abs(bf[t] - f32[t]) for t in f32)
    return (f"the simulations above run in bfloat16; in float32 the same {var['images']} images "
            f"differ by at most {100 * gap:.1f} points at any T")


def firing_table(record, probe: dict):
    """Per layer: neurons, spikes per image and per neuron and step, and from ``probe``
    (:func:`.convert.rates_vs_activations`) the clipped fraction and mean activation."""
    where = "report.firing_table"
    record = _record(record, where)
    check.instance("probe", probe, dict, where=where)
    for key in ("clipped", "mean_activation"):
        if key not in probe:
            raise ValueError(f"{where}: probe must be rates_vs_activations' result (with "
                             f"{key!r}), got keys {sorted(probe)}")
    if len(probe["clipped"]) != len(record.firing):
        raise ValueError(f"{where}: probe has {len(probe['clipped'])} layers, the record "
                         f"{len(record.firing)}")
    rows = {layer: {**stats, "clipped activations": clipped,
                    "mean activation (normalised)": mean}
            for (layer, stats), clipped, mean in zip(record.firing.items(), probe["clipped"],
                                                    probe["mean_activation"])}
    return viz.table(rows, formats={
        "neurons": ",.0f", "spikes_per_image": ",.0f", "rate_per_step": ".3f",
        "clipped activations": ".2%", "mean activation (normalised)": ".3f",
    }, caption=f"firing over {record.specific['snn']['steps']} steps, per image")


def costs_table(record):
    """Operations per image and speed of the CNN and of the converted network.

    Rows: the CNN in float32, the CNN in bfloat16 (when the run measured it:
    the ``full`` profile), the SNN at its longest T, named with the precision
    it ran in. Columns: multiply-accumulates, accumulates, bias additions,
    images per second on the machine of the run.
    """
    record = _record(record, "report.costs_table")
    cnn, snn = record.specific["cnn"], record.specific["snn"]
    ops = snn["operations_per_image"]

    def cnn_row(images_per_s) -> dict:
        return {"multiply-accumulates": cnn["multiply_accumulates_per_image"],
                "accumulates": 0.0, "bias additions": 0.0,
                "images/s on this machine": images_per_s}

    rows = {"CNN (float32)": cnn_row(cnn["images_per_s"])}
    if cnn.get("bfloat16") is not None:
        rows["CNN (bfloat16)"] = cnn_row(cnn["bfloat16"]["images_per_s"])
    dtype = "bfloat16" if record.parameters.get("snn_bf16", False) else "float32"
    rows[f"SNN ({dtype}), T = {snn['steps']}"] = {
        "multiply-accumulates": ops["multiply_accumulates"], "accumulates": ops["accumulates"],
        "bias additions": ops["bias_additions"], "images/s on this machine": snn["images_per_s"]}
    return viz.table(rows, formats=",.3g")


def accumulates_line(record) -> str:
    """The SNN's accumulates per image over the CNN's multiply-accumulates per image."""
    record = _record(record, "report.accumulates_line")
    cnn, snn = record.specific["cnn"], record.specific["snn"]
    ratio = snn["operations_per_image"]["accumulates"] / cnn["multiply_accumulates_per_image"]
    return f"accumulates per CNN multiply-accumulate: {ratio:.1f}"


def qcfs_training_line(record) -> str:
    """The QCFS fine-tuning: epochs, wall time, and its CNN's accuracy beside the ReLU CNN's."""
    record = _record(record, "report.qcfs_training_line")
    q, cnn = record.specific["qcfs"], record.specific["cnn"]
    return (f"fine-tuned for {q['training']['epochs']} epochs in {q['training']['wall_s']:.0f} s; "
            f"QCFS CNN ({q['levels']} levels) {q['cnn_accuracy']:.1%} on the test images (ReLU "
            f"CNN {cnn['accuracy']:.1%})"
            + (f"; its spiking copy fires bursts of up to {q['burst']} spikes a step"
               if q.get("burst", 1) > 1 else ""))


def qcfs_table(record):
    """Accuracy against T of the ReLU conversion and of the fine-tuned QCFS conversion (before
    and after its bias calibration, where the record has both).

    Rows: the conversions. Columns: the steps T of any; a T that a
    conversion was not simulated for is an empty cell (QCFS stops at a
    shorter T).
    """
    record = _record(record, "report.qcfs_table")
    snn, q, cnn = record.specific["snn"], record.specific["qcfs"], record.specific["cnn"]
    curves = {"ReLU conversion": _steps_row(snn["accuracy_vs_steps"])}
    if "uncalibrated" in q:
        curves["QCFS conversion, before bias calibration"] = _steps_row(
            q["uncalibrated"]["accuracy_vs_steps"])
        curves["QCFS conversion, biases calibrated"] = _steps_row(q["accuracy_vs_steps"])
    else:
        curves["QCFS conversion"] = _steps_row(q["accuracy_vs_steps"])
    steps = list(dict.fromkeys(t for curve in curves.values() for t in curve))
    rows = {name: {t: curve.get(t, "") for t in steps} for name, curve in curves.items()}
    return viz.table(rows, formats=".1%",
                     caption=f"SNN accuracy by steps T; CNNs on these images: ReLU "
                             f"{cnn['accuracy_on_snn_images']:.1%}, QCFS "
                             f"{q['cnn_accuracy_on_snn_images']:.1%}")


def calibration_line(record) -> str | None:
    """The QCFS network's bias calibration: its T, images, time, the largest mean absolute
    correction of a layer, and the accuracy at that T before and after (None: the record has no
    calibration)."""
    q = _record(record, "report.calibration_line").specific["qcfs"]
    if "bias_calibration" not in q:
        return None
    c, before = q["bias_calibration"], q["uncalibrated"]["accuracy_vs_steps"]
    t = str(c["steps"])
    layer, size = max(c["mean_abs_correction"].items(), key=lambda kv: kv[1])
    line = (f"biases calibrated for T = {t} on {c['images']:,} training images"
            + rounds_clause(c.get("rounds", 1))
            + f", {c['wall_s']:.0f} s; the largest mean size of a layer's corrections, "
              f"{size:.3f} of the threshold per step, in {layer}")
    if t in before and t in q["accuracy_vs_steps"]:
        line += (f"; at T = {t} the spiking copy goes from {before[t]:.1%} to "
                 f"{q['accuracy_vs_steps'][t]:.1%}")
    return line


def qcfs_steps_line(record) -> str:
    """The QCFS conversion's smallest T within 1 and 0.1 point of its CNN, and within 1 of the
    ReLU CNN."""
    q = _record(record, "report.qcfs_steps_line").specific["qcfs"]
    return (f"QCFS: smallest T within 1 point of its own CNN {q['smallest_steps_within_1_point']}, "
            f"within 0.1 point {q['smallest_steps_within_0.1_point']}, within 1 point of the "
            f"ReLU CNN {q['smallest_steps_within_1_point_of_relu_cnn']}")


def operations_table(record, short: dict | None = None, short_steps: int | None = None):
    """Accuracy and operations per image of the ReLU conversion and the QCFS conversion at
    their longest T, and of the QCFS conversion simulated again for fewer steps.

    The few-step rows come from the record's ``qcfs.short_simulations`` (one per
    T of :data:`.convert.QCFS_SHORT_STEPS` that :func:`.run.run_tier` ran), or,
    given ``short`` and ``short_steps``, from ``short``, :func:`.convert.simulate`'s
    result for ``steps=[short_steps]``. A row with the same T as the longest
    QCFS simulation is left out (it would repeat it). The last column divides
    the accumulates by the CNN's multiply-accumulates.
    """
    where = "report.operations_table"
    record = _record(record, where)
    snn, q, cnn = record.specific["snn"], record.specific["qcfs"], record.specific["cnn"]
    if (short is None) != (short_steps is None):
        raise ValueError(f"{where}: give both short and short_steps, or neither (then the "
                         f"record's own short simulations are shown)")
    if short is None:
        if "short_simulations" not in q:
            raise ValueError(f"{where}: this record has no short QCFS simulations (it was made "
                             f"before run_tier ran them); pass short and short_steps")
        # (empty when the QCFS simulation itself is no longer than QCFS_SHORT_STEPS)
        few = [(int(t), r["accuracy"], r["operations_per_image"])
               for t, r in q["short_simulations"].items()]
    else:
        check.instance("short", short, dict, where=where)
        check.positive_int("short_steps", short_steps, where=where)
        if short_steps not in short.get("accuracy", {}) or "synaptic_ops_per_image" not in short:
            raise ValueError(f"{where}: short must be simulate's result with "
                             f"steps=[{short_steps}] (its accuracy at T = {short_steps} and "
                             f"synaptic_ops_per_image)")
        few = [(short_steps, short["accuracy"][short_steps], short["synaptic_ops_per_image"])]
    rows = {}
    for name, acc, o in (
            [(f"ReLU conversion, T = {snn['steps']}", record.accuracy, snn["operations_per_image"]),
             (f"QCFS conversion, T = {q['steps']}", q["accuracy_vs_steps"][str(q["steps"])],
              q["operations_per_image"])]
            + [(f"QCFS conversion, T = {t}", acc, o) for t, acc, o in sorted(few, reverse=True)]):
        if name in rows:  # the longest QCFS simulation may itself be a short one
            continue
        rows[name] = {"accuracy": acc, "accumulates": o["accumulates"],
                      "multiply-accumulates": o["multiply_accumulates"],
                      "accumulates per CNN multiply-accumulate":
                          o["accumulates"] / cnn["multiply_accumulates_per_image"]}
    return viz.table(rows, formats={
        "accuracy": ".1%", "accumulates": ",.3g", "multiply-accumulates": ",.3g",
        "accumulates per CNN multiply-accumulate": ".2f"})


def qcfs_float32_line(record) -> str | None:
    """How far the bfloat16 QCFS simulation is from float32 (None: it ran in float32)."""
    f = _record(record, "report.qcfs_float32_line").specific["qcfs"]["float32_check"]
    if f is None:
        return None
    gap = max(abs(f["bfloat16"][t] - f["float32"][t]) for t in f["float32"])
    return (f"QCFS simulations run in bfloat16; in float32 the first {f['images']} images "
            f"differ by at most {100 * gap:.1f} points at any T")


def full_profile_items(path) -> list:
    """What the chapter shows of the full-profile record at ``path``: lines and tables, in order.

    The run (CNN widths, images, epochs, time, commit), the CNN's accuracy
    (and with six views of each image, where the record has it), the converted
    network's accuracy against T with its loss in points, the smallest T within 1
    and 0.1 point; then the same for the QCFS network if
    the record has it. The two tables have a row per steps T; accuracies are
    percentages and losses points, both with two decimals. A missing file
    gives one line saying how to make it.
    """
    check.instance("path", path, (str, os.PathLike), where="report.full_profile_items")
    path = Path(path)
    if not path.exists():
        return [f"{path} not found: run `python -m snnlib run conversion --profile full`."]
    full = runs.load_record(path, tier="conversion")
    fc, fs = full.specific["cnn"], full.specific["snn"]
    items = [
        f"full profile ({full.dataset}): CNN: {describe_cnn(full.parameters['cnn'])}; "
        f"trained on {full.train_images} images for {fc['training']['epochs']} epochs in "
        f"{fc['training']['wall_s'] / 60:.1f} min; "
        f"commit {str(full.provenance['git_commit'])[:7]}\n"
        f"CNN test accuracy {fc['accuracy']:.2%} ({fc['images_per_s']:.0f} images/s)"
        + (f"; with six views of each image (airbench's test-time augmentation) "
           f"{fc['accuracy_six_views']:.2%}" if "accuracy_six_views" in fc else ""),
        viz.table(_by_steps({"SNN accuracy": fs["accuracy_vs_steps"],
                             "loss vs CNN (points)": fs["loss_vs_cnn_points"]}),
                  formats={"SNN accuracy": ".2%", "loss vs CNN (points)": ".2f"},
                  index_name="steps T"),
        f"smallest T within 1 point: {fs['smallest_steps_within_1_point']}, within 0.1 "
        f"point: {fs['smallest_steps_within_0.1_point']}; SNN {fs['images_per_s']:.1f} "
        f"images/s at T = {fs['steps']}",
    ]
    if "qcfs" in full.specific:
        fq = full.specific["qcfs"]
        columns = {"QCFS SNN accuracy": fq["accuracy_vs_steps"],
                   "loss vs QCFS CNN (points)": fq["loss_vs_own_cnn_points"],
                   "loss vs ReLU CNN (points)": fq["loss_vs_relu_cnn_points"]}
        formats = {"QCFS SNN accuracy": ".2%", "loss vs QCFS CNN (points)": ".2f",
                   "loss vs ReLU CNN (points)": ".2f"}
        if "uncalibrated" in fq:
            columns["before bias calibration"] = fq["uncalibrated"]["accuracy_vs_steps"]
            formats["before bias calibration"] = ".2%"
        items += [
            f"fine-tuned with QCFS ({fq['levels']} levels) for {fq['training']['epochs']} "
            f"epochs in "
            f"{fq['training']['wall_s'] / 60:.0f} min: CNN {fq['cnn_accuracy']:.2%}"
            + (f"; {calibration_line(full)}" if "bias_calibration" in fq else ""),
            viz.table(_by_steps(columns), formats=formats, index_name="steps T"),
            f"smallest T within 1 point of the QCFS CNN: {fq['smallest_steps_within_1_point']}, "
            f"within 0.1 point: {fq['smallest_steps_within_0.1_point']}"
            + _neurons_clause(fq),
        ]
        if "short_simulations" in fq:
            items.append(operations_table(full))
        else:
            items.append("(this record predates the short QCFS simulations: no operation "
                         "counts at T = 4 and 8)")
    return items


def _neurons_clause(q: dict) -> str:
    """"; simulated with ..." naming a QCFS record's signed neurons and bursts ("" for plain
    neurons of one spike a step)."""
    burst = q.get("burst", 1)
    if not q.get("signed") and burst == 1:
        return ""
    return ("; simulated with " + ("signed neurons" if q.get("signed") else "IF neurons")
            + (f" firing bursts of up to {burst} spikes a step" if burst > 1 else ""))


def _techniques(path, where: str) -> list[dict]:
    return runs.stored_benchmark_runs(
        path, where, "cnn_techniques.py", ("name", "val_accuracy", "val_accuracy_tta",
                                           "train_min", "training", "train_images", "val_images"))


def _split_caption(found: list[dict]) -> str:
    """A caption naming the training and validation images of the stored runs ``found``."""
    sizes = sorted({(r["train_images"], r["val_images"]) for r in found})
    return ("trained on " + " or ".join(f"{a:,}" for a, _ in sizes) + " training images, "
            "scored on " + " or ".join(f"{b:,}" for _, b in sizes) + " validation images")


def _last_qcfs_run(path, where: str, name: str | None = None) -> dict:
    """The run named ``name`` (None: the last run) among the runs with a QCFS copy in the JSON
    list at ``path``."""
    check.instance("name", name, str, none=True, where=where)
    runs_q = [r for r in _techniques(path, where) if r.get("qcfs")]
    if not runs_q:
        raise ValueError(f"{where}: {path} has no run with a QCFS copy (--qcfs-epochs)")
    if name is None:
        return runs_q[-1]
    named = [r for r in runs_q if r["name"] == name]
    if not named:
        raise ValueError(f"{where}: {path} has no run with a QCFS copy named {name!r}; it has "
                         f"{[r['name'] for r in runs_q]}")
    return named[-1]


def techniques_table(path):
    """What each training technique bought, on the validation split: one row per run of
    ``benchmarks/cnn_techniques.py`` stored in the JSON list at ``path`` (without its QCFS
    runs), in the order of their names, with the validation accuracy, the accuracy with
    test-time augmentation (flips and shifts), and the training minutes."""
    found = sorted((r for r in _techniques(path, "report.techniques_table") if not r.get("qcfs")),
                   key=lambda r: r["name"])
    rows = {r["name"]: {"validation": r["val_accuracy"],
                        "with test-time augmentation": r["val_accuracy_tta"],
                        "epochs": r["training"]["epochs"], "training (min)": r["train_min"]}
            for r in found}
    return viz.table(rows, formats={"validation": ".2%", "with test-time augmentation": ".2%",
                                    "training (min)": ".1f"}, caption=_split_caption(found))


def reference_table(path):
    """airbench's own recipe on this machine: one row per run of
    ``benchmarks/airbench_reference.py`` stored in the JSON list at ``path``, in the order
    of their names, with its pooling and activation, the validation accuracy with and
    without test-time augmentation, the epochs and the training minutes."""
    where = "report.reference_table"
    found = runs.stored_benchmark_runs(
        path, where, "airbench_reference.py",
        ("name", "pool", "activation", "val_accuracy", "val_accuracy_tta", "epochs", "train_min",
         "train_images", "val_images"))
    if not found:
        raise ValueError(f"{where}: {path} holds no run of benchmarks/airbench_reference.py")
    rows = {r["name"]: {"pooling": r["pool"], "activation": r["activation"],
                        "validation": r["val_accuracy"],
                        "with test-time augmentation": r["val_accuracy_tta"],
                        "epochs": r["epochs"], "training (min)": r["train_min"]}
            for r in sorted(found, key=lambda r: r["name"])}
    return viz.table(rows, formats={"validation": ".2%", "with test-time augmentation": ".2%",
                                    "epochs": "g", "training (min)": ".1f"},
                     caption=_split_caption(found))


def peer_table(path, name: str):
    """The tier's conversion beside SpikingJelly's on the same CNN, on the validation split:
    the run named ``name`` of ``benchmarks/peer_conversion.py`` stored in the JSON list at
    ``path``, one row per spiking copy in the order it ran (ours: layer by layer at each
    percentile, one of them again in bfloat16, then with neurons starting half-way and
    channel by channel; then SpikingJelly's), with its accuracy at each simulated T and its
    speed in image-steps per second (images times steps simulated per second)."""
    where = "report.peer_table"
    check.instance("name", name, str, where=where)
    found = runs.stored_benchmark_runs(
        path, where, "peer_conversion.py",
        ("name", "cnn_accuracy", "steps", "copies", "train_images", "val_images"))
    run = next((r for r in found if r["name"] == name), None)
    if run is None:
        raise ValueError(f"{where}: {path} holds no run named {name!r}; it holds "
                         f"{[r['name'] for r in found]}")
    rows = {copy: {**{f"T = {t}": res["accuracy"][str(t)] for t in run["steps"]},
                   "image-steps/s": res["image_steps_per_s"]}
            for copy, res in run["copies"].items()}
    return viz.table(rows, formats={**{f"T = {t}": ".1%" for t in run["steps"]},
                                    "image-steps/s": ",.0f"},
                     index_name="spiking copy",
                     caption=f"{run['name']}: the CNN {run['cnn_accuracy']:.2%}; "
                             f"{_split_caption([run])}")


def qcfs_choice_table(path, name: str | None = None):
    """The QCFS copy's neurons and starting potential, chosen on the validation split: one
    row per (neurons, v0) of a QCFS run in the JSON list at ``path`` (the one named ``name``;
    None: the last), accuracy at each T, with the QCFS CNN's and the ReLU CNN's accuracy in
    the caption (a network trained with QCFS from the start has no ReLU CNN; one fine-tuned from
    a GELU network names its GELU CNN)."""
    r = _last_qcfs_run(path, "report.qcfs_choice_table", name)
    q = r["qcfs"]
    rows = {name: {f"T = {t}": a for t, a in sim["accuracy"].items()}
            for name, sim in q["snn"].items()}
    kind = ACTIVATIONS[r["net"].get("activation", "relu")]
    trained = ("" if q["epochs"] == "from the start"  # trained with QCFS: no ReLU CNN
               else f", the {kind} CNN {r['val_accuracy']:.2%}")
    return viz.table(rows, formats=".2%", index_name="neurons, v0",
                     caption=f"{r['name']}; validation accuracy of the spiking copy; its CNN "
                             f"{q['cnn']:.2%}{trained}")


def qcfs_choice_line(path, steps: int = 4, name: str | None = None) -> str:
    """What the choice of neurons bought at ``steps``: the best plain and the best signed
    neurons of a QCFS run in the JSON list at ``path`` (the one named ``name``; None: the
    last; :func:`qcfs_choice_table`), each with its ``v0``, its validation accuracy and how
    far below the QCFS CNN it is."""
    where = "report.qcfs_choice_line"
    check.positive_int("steps", steps, where=where)
    q = _last_qcfs_run(path, where, name)["qcfs"]
    parts = []
    for kind, label in (("IF", "plain IF neurons"), ("signed", "signed neurons")):
        scored = {name: sim["accuracy"][str(steps)] for name, sim in q["snn"].items()
                  if name.startswith(kind + ",") and str(steps) in sim["accuracy"]}
        if not scored:
            raise ValueError(f"{where}: the QCFS run has no {label} at T = {steps}")
        name = max(scored, key=scored.get)
        parts.append(f"the best {label} ({name.split(', ', 1)[1]}) {scored[name]:.2%}, "
                     f"{100 * (q['cnn'] - scored[name]):.2f} points below the QCFS CNN")
    return (f"validation, T = {steps}: " + "; ".join(parts)
            + f" (QCFS CNN {q['cnn']:.2%}, {q['levels']} levels)")


def show(*items) -> None:
    """Print each line and display each table (a :class:`snnlib.viz.DisplayTable`: HTML in a
    notebook, its text elsewhere), in order (None items are skipped)."""
    from IPython.display import display

    for item in items:
        if item is None:
            continue
        if isinstance(item, str):
            print(item)
        else:
            display(item)
