"""The tiers side by side, from their records: chapter 7, the README's results, ``snnlib compare``.

Nothing here trains or simulates: every number comes from a results record
(:class:`snnlib.runs.TierRecord`, read with :func:`snnlib.runs.load_record`),
either from ``results/`` (``results/TIER.json``, the full-profile records
committed with the book) or from a runs folder at any profile
(``runs/TIER/PROFILE/tier_record.json``). A field a record does not hold is
shown as ``n/a``, never filled in; a tier whose record is missing or cannot be
read gets no row, and :attr:`Records.missing` says which tier it is and which
command makes its record.

What is derived from the records, and how (every number of the comparison
table, :func:`comparison_rows`):

- **accuracy**: the record's ``accuracy``; for a variant, the variant's.
- **best non-spiking baseline**: the highest of the record's ``baselines``
  whose network has no spikes (:func:`is_non_spiking_baseline`: not chance,
  not a readout of spike counts, not an R-STDP layer, not a random-weight
  twin); measured in the same run, on the same test images.
- **training wall time**: the record's ``training_wall_s`` (what it took to
  make the network from its training images). A variant's is the sum of the
  record's ``wall_s`` phases that make it (:data:`VARIANT_DETAILS`); ``n/a``
  when a phase is missing or was not timed (``None`` or 0: loaded from a
  checkpoint that carries no time).
- **inference images/s**: ``inference.images_per_s`` of the record or the
  variant; what was timed is in its ``what`` (:func:`counting_table`).
- **time steps per image**: ``time_steps`` (the variant's for a variant;
  ``n/a`` for a network that does not run in time steps).
- **spikes per neuron per image**: all spiking layers' spikes per image over
  all their neurons (``firing``; :attr:`snnlib.runs.TierRecord.spikes_per_neuron_per_image`);
  for a variant, the ``firing`` of its part of the record's ``specific``
  (:data:`VARIANT_DETAILS`) when it has one, else ``n/a``.
- **accumulates (AC) and multiply-accumulates (MAC) per image**: the
  ``synaptic_events`` of the record or variant, as recorded: an AC is a spike
  crossing a synapse (one addition of a weight), a MAC a non-spiking value
  times a weight (a converted network's first layer takes the image as a
  current at every step; a CNN does only MACs). What each tier counted, and
  left out, is in the events' ``what``.
- **energy per image**: :func:`energy_pj`, ``0.9 pJ x AC + 4.6 pJ x MAC``,
  the energies of a 32-bit floating-point addition and of a multiplication
  plus an addition in a 45 nm process (Horowitz 2014). It leaves out memory
  traffic (reading weights and states, usually the larger cost), the neurons'
  own updates (leak, threshold, bias additions: tier 3 records its bias
  additions apart, and they are not added), the retina's filtering and the
  readouts' arithmetic where the tier did not count them, and any saving or
  cost of real neuromorphic hardware. It is an estimate of arithmetic, not a
  measurement.
- **hardware**: the record's provenance (device, processor, cores).
- **per-class accuracy**: the diagonal of the confusion matrix over each
  class's images (its row sum) when every test image got a decision;
  otherwise (a network that could stay silent) the recorded
  ``per_class_accuracy``, which counts an undecided image as wrong.

References
----------
Horowitz, M. (2014). Computing's energy problem (and what we can do about it).
*IEEE International Solid-State Circuits Conference (ISSCC)*, 10-14.
"""

from __future__ import annotations

import difflib
import html
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal, Mapping, Sequence

import numpy as np

from . import profiles, runs
from .tiers import TIERS

__all__ = ["E_AC_PJ", "E_MAC_PJ", "NA", "PLAUSIBILITY", "README_BEGIN", "README_END",
           "RECORD_FILES", "Records", "RecordFile", "Row", "Table", "Trait", "VARIANT_DETAILS",
           "VariantDetail", "WRITE_README_COMMAND", "check_readme", "comparison_rows",
           "comparison_table",
           "counting_table", "energy_pj", "is_non_spiking_baseline", "load_records",
           "pareto_front", "per_class_table", "plausibility_table", "plot_accuracy_vs_energy",
           "plot_accuracy_vs_training_time", "plot_per_class", "provenance_table",
           "readme_results", "shared_confusions", "write_figures", "write_readme"]

E_AC_PJ = 0.9
"""Energy of an accumulate (32-bit floating-point addition, 45 nm; Horowitz 2014), pJ."""
E_MAC_PJ = 4.6
"""Energy of a multiply-accumulate (32-bit floating-point multiplication 3.7 pJ + addition 0.9 pJ,
45 nm; Horowitz 2014), pJ."""
NA = "n/a"
"""What a table shows for a number the records do not hold."""
README_BEGIN = "<!-- results:begin -->"
README_END = "<!-- results:end -->"
WRITE_README_COMMAND = "python -m snnlib compare --write-readme"
"""The command that regenerates the README's results section from ``results/``."""


# --- where the records are ----------------------------------------------------------------------
@dataclass(frozen=True)
class RecordFile:
    """One record the comparison reads.

    Attributes
    ----------
    name : str
        ``results/NAME.json`` in a results folder.
    tier : str
        The tier's registry name (:data:`snnlib.tiers.TIERS`); in a runs folder
        the record is ``TIER/PROFILE/tier_record.json``.
    label : str
        The network's name in tables and figures.
    required : bool
        A tier's headline record (its absence is reported as missing); the
        others are extra sections, shown when present.
    in_runs : bool
        Whether a runs folder holds it (``tier_record.json`` of ``run TIER``).
    how : str
        How the record is made, when it is not ``python -m snnlib run TIER``.
    """

    name: str
    tier: str
    label: str
    required: bool = True
    in_runs: bool = True
    how: str = ""


RECORD_FILES: tuple[RecordFile, ...] = (
    RecordFile("brian_stdp", "brian_stdp", "tier 1: STDP layers, R-STDP output"),
    RecordFile("brian_stdp_diehl_cook", "brian_stdp",
               "tier 1, first version: fully connected (Diehl & Cook)", required=False,
               in_runs=False,
               how="snnlib.tiers.brian_stdp.run_diehl_cook at the full profile (chapter 3)"),
    RecordFile("dog_lif", "dog_lif", "tier 2: STDP layer, linear readout"),
    RecordFile("conversion", "conversion", "tier 3: converted CNN"),
)
"""The records of the comparison, in the book's order."""


def _run_command(tier: str, profile: str) -> str:
    return f"python -m snnlib run {tier} --profile {profile}"


@dataclass(frozen=True)
class Records:
    """The records found in one folder (:func:`load_records`).

    Attributes
    ----------
    source : Path
        The folder that was read.
    layout : {"results", "runs"}
        ``results/NAME.json`` files, or ``TIER/PROFILE/tier_record.json``.
    profile : str or None
        The profile read from a runs folder (None for a results folder).
    records : Mapping[str, TierRecord]
        :attr:`RecordFile.name` to its record, in :data:`RECORD_FILES`' order.
    paths : Mapping[str, Path]
        Where each record was read from.
    missing : Mapping[str, str]
        :attr:`RecordFile.name` to a message naming the tier and the command that
        makes its record, for every required record that is absent or unreadable.
    """

    source: Path
    layout: Literal["results", "runs"]
    profile: str | None
    records: Mapping[str, runs.TierRecord]
    paths: Mapping[str, Path]
    missing: Mapping[str, str]

    def require(self) -> None:
        """Raise :class:`snnlib.runs.RecordError` listing every missing record, if any."""
        if self.missing:
            raise runs.RecordError("\n".join(self.missing.values()))


def load_records(path: str | os.PathLike | None = None, *,
                 profile: str | None = None) -> Records:
    """Every record of :data:`RECORD_FILES` that ``path`` holds.

    Parameters
    ----------
    path : path, optional
        A results folder (``TIER.json`` files; default ``results``, relative to
        the working directory) or a runs folder (``TIER/PROFILE/tier_record.json``,
        as ``python -m snnlib run`` writes them).
    profile : str, optional
        The profile to read from a runs folder (default ``$SNNLIB_PROFILE`` or
        ``book``); ignored for a results folder.

    Returns
    -------
    Records
        The records, and a message for each required record that is missing or
        cannot be read (an unknown format, another tier's, broken JSON): it names
        the tier and the command that makes the record. Records of an older
        snnlib are migrated (:func:`snnlib.runs.load_record`).

    Raises
    ------
    snnlib.runs.RecordError
        When ``path`` does not exist or is not a folder.
    """
    source = Path("results") if path is None else Path(path)
    if not source.exists():
        raise runs.RecordError(
            f"{source} does not exist; give a results folder (results/, with TIER.json files) "
            f"or a runs folder (runs/, with TIER/PROFILE/tier_record.json).")
    if not source.is_dir():
        raise runs.RecordError(f"{source} is not a folder; give a results folder (results/) or "
                               "a runs folder (runs/).")
    is_results = any((source / f"{f.name}.json").exists() for f in RECORD_FILES)
    is_runs = not is_results and any((source / t).is_dir() for t in TIERS)
    layout: Literal["results", "runs"] = "runs" if is_runs else "results"
    run_profile = profiles.get_profile(profile).name if is_runs else None
    records, paths, missing = {}, {}, {}
    for f in RECORD_FILES:
        if layout == "runs" and not f.in_runs:
            continue
        file = (source / f.tier / run_profile / "tier_record.json" if layout == "runs"
                else source / f"{f.name}.json")
        tier = TIERS[f.tier]
        command = f.how or _run_command(f.tier, run_profile or "full")
        who = f"tier {tier.number} ({f.tier})" + ("" if f.required else f", {f.label}")
        if not file.exists():
            if f.required:
                missing[f.name] = f"{who}: no record at {file}; make it with `{command}`."
            continue
        try:
            records[f.name] = runs.load_record(file, tier=f.tier)
            paths[f.name] = file
        except runs.RecordError as err:
            reason = str(err).split("; make it again")[0]
            missing[f.name] = f"{who}: {reason}; make it again with `{command}`."
    return Records(source, layout, run_profile, MappingProxyType(records),
                   MappingProxyType(paths), MappingProxyType(missing))


# --- one row per network -------------------------------------------------------------------------
@dataclass(frozen=True)
class VariantDetail:
    """Where a tier's record keeps more about one of its variants.

    Attributes
    ----------
    tier : str
    prefix : str
        The variant's name in the record starts with it.
    specific : str
        The variant's part of the record's ``specific`` (its ``confusion``,
        ``per_class_accuracy``, ``firing`` when it has them).
    training_phases : tuple of str
        The record's ``wall_s`` phases whose sum is the time it took to make the
        variant from the training images.
    by_steps : str or None
        The key, in that part, of shorter simulations of the same network by their
        number of steps (``"4"``: a part like the variant's own): a variant whose
        T is not the part's ``steps`` reads its numbers there.
    optional_phases : tuple of str
        Phases added to ``training_phases`` where the record has them (a record made
        before a phase existed has none, and its time is the others' sum).
    """

    tier: str
    prefix: str
    specific: str
    training_phases: tuple[str, ...]
    by_steps: str | None = None
    optional_phases: tuple[str, ...] = ()


VARIANT_DETAILS: tuple[VariantDetail, ...] = (
    # the CNN the tier converts: its training is the tier's
    VariantDetail("conversion", "the CNN", "cnn", ("cnn_training",)),
    # QCFS: the trained CNN, then fine-tuned with clip-floor-shift activations, then its
    # biases calibrated (simulated again for T = 4 and 8 on their own: each a variant with
    # its own numbers)
    VariantDetail("conversion", "QCFS fine-tuned", "qcfs", ("cnn_training", "qcfs_training"),
                  by_steps="short_simulations", optional_phases=("qcfs_calibration",)),
)
"""What the comparison reads about a variant beyond :class:`snnlib.runs.Variant`'s fields."""


@dataclass(frozen=True)
class Row:
    """One network of the comparison (a tier, or a variant that a tier's run measured).

    Numbers the record does not hold are None. ``accumulates`` and
    ``multiply_accumulates`` are per test image; ``training_wall_s`` in
    seconds; ``per_class`` in the order of ``class_names``.
    """

    key: str
    label: str
    tier: str
    tier_number: int
    spiking: bool
    accuracy: float
    test_images: int
    baseline: float | None
    baseline_name: str | None
    training_wall_s: float | None
    inference_images_per_s: float | None
    inference_what: str
    time_steps: int | None
    spikes_per_neuron: float | None
    accumulates: float | None
    multiply_accumulates: float | None
    events_what: str
    hardware: str
    profile: str
    dataset: str
    seed: int
    commit: str | None
    date: str | None
    source: str
    class_names: tuple[str, ...]
    per_class: tuple[float, ...] | None
    confusion: tuple[tuple[int, ...], ...] | None

    @property
    def energy_pj(self) -> float | None:
        """:func:`energy_pj` of the row's synaptic events (None when they are not recorded)."""
        if self.accumulates is None or self.multiply_accumulates is None:
            return None
        return energy_pj(self.accumulates, self.multiply_accumulates)


def energy_pj(accumulates: float, multiply_accumulates: float = 0.0, *,
              e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ) -> float:
    """Energy estimate of the arithmetic of one image, in picojoules.

    .. math:: E = e_{AC}\\, n_{AC} + e_{MAC}\\, n_{MAC}

    with :math:`e_{AC} = 0.9` pJ and :math:`e_{MAC} = 4.6` pJ by default (32-bit
    floating point, 45 nm; Horowitz 2014). Memory traffic and neuron updates
    (leak, thresholds, biases) are left out (see the module docstring).

    >>> energy_pj(1e6, 1e5)
    1360000.0
    """
    for name, value in (("accumulates", accumulates), ("e_ac_pj", e_ac_pj), ("e_mac_pj", e_mac_pj),
                        ("multiply_accumulates", multiply_accumulates)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(e_ac_pj * accumulates + e_mac_pj * multiply_accumulates)


def is_non_spiking_baseline(name: str) -> bool:
    """Whether a baseline of a record is a network without spikes (pixels, a CNN, ...).

    Chance is not a network; a readout of spike counts, an R-STDP layer and a
    random-weight twin are spiking networks. The test is on the baseline's
    name as the tiers record it:

    >>> [is_non_spiking_baseline(n) for n in ("logistic regression, grayscale pixels",
    ...  "logistic regression, hidden layer 1 spike counts", "the CNN it was converted from",
    ...  "R-STDP output on the random-weight twin", "chance")]
    [True, False, True, False, False]
    """
    low = name.lower()
    return low != "chance" and not any(
        word in low for word in ("spike", "r-stdp", "twin", "random-weight", "untrained"))


def _hardware(record: runs.TierRecord) -> str:
    prov = record.provenance or {}
    device = prov.get("device") or {}
    machine = prov.get("machine") or {}
    kind = str(device.get("type") or record.device).upper()
    name, cores = device.get("name"), machine.get("cores")
    text = "GPU" if kind == "CUDA" else kind
    if name:
        text += f" ({name})"
    if cores:
        text += f", {cores} cores" if kind != "CUDA" else f", host of {cores} cores"
    return text


def _untimed(value) -> bool:
    return value is None or value == 0


def _per_class(confusion, recorded, n_images: int) -> tuple[float, ...] | None:
    """Per-class accuracy from the confusion matrix if every image was decided, else as recorded."""
    if confusion is not None:
        m = np.asarray(confusion, dtype=np.float64)
        if m.ndim == 2 and m.shape[0] == m.shape[1] and m.sum() == n_images and (
                m.sum(axis=1) > 0).all():
            return tuple(float(x) for x in np.diag(m) / m.sum(axis=1))
    return tuple(float(x) for x in recorded) if recorded is not None else None


def _variant_detail(tier: str, name: str) -> VariantDetail | None:
    return next((d for d in VARIANT_DETAILS if d.tier == tier and name.startswith(d.prefix)), None)


def _spikes_per_neuron(firing: Mapping | None) -> float | None:
    if not firing:
        return None
    neurons = sum(layer["neurons"] for layer in firing.values())
    spikes = sum(layer["spikes_per_image"] for layer in firing.values())
    return spikes / neurons if neurons else None


def comparison_rows(records: Records) -> list[Row]:
    """One :class:`Row` per record of ``records`` and per variant each record holds.

    The derivations are in the module docstring. A variant's baseline, hardware,
    profile, dataset, seed and test images are its record's (it was measured in
    the same run, on the same test images).
    """
    rows = []
    for f in RECORD_FILES:
        rec = records.records.get(f.name)
        if rec is None:
            continue
        tier = TIERS[f.tier]
        candidates = {k: v for k, v in rec.baselines.items() if is_non_spiking_baseline(k)}
        best = max(candidates, key=candidates.get) if candidates else None
        common = dict(tier=f.tier, tier_number=tier.number, test_images=rec.test_images,
                      baseline=candidates[best] if best else None, baseline_name=best,
                      hardware=_hardware(rec), profile=rec.profile, dataset=rec.dataset,
                      seed=rec.seed, commit=rec.provenance.get("git_commit"),
                      date=rec.provenance.get("date"), source=str(records.paths[f.name]),
                      class_names=tuple(rec.class_names))
        ev = rec.synaptic_events
        rows.append(Row(
            key=f.name, label=f.label, spiking=True, accuracy=rec.accuracy,
            training_wall_s=rec.training_wall_s,
            inference_images_per_s=rec.inference.images_per_s, inference_what=rec.inference.what,
            time_steps=rec.time_steps, spikes_per_neuron=_spikes_per_neuron(rec.firing),
            accumulates=ev.accumulates, multiply_accumulates=ev.multiply_accumulates,
            events_what=ev.what,
            per_class=_per_class(rec.confusion, rec.per_class_accuracy, rec.test_images),
            confusion=tuple(tuple(int(x) for x in r) for r in rec.confusion), **common))
        for name, v in rec.variants.items():
            detail = _variant_detail(f.tier, name)
            part = rec.specific.get(detail.specific) if detail else None
            part = part if isinstance(part, dict) else {}
            if detail and detail.by_steps and part.get("steps") not in (None, v.time_steps):
                part = (part.get(detail.by_steps) or {}).get(str(v.time_steps), {})
            training = None
            if detail is not None:
                phases = [rec.wall_s.get(p) for p in detail.training_phases] + [
                    rec.wall_s[p] for p in detail.optional_phases if p in rec.wall_s]
                training = None if any(_untimed(t) for t in phases) else float(sum(phases))
            confusion = part.get("confusion")
            spiking = not (v.time_steps is None and v.synaptic_events.accumulates == 0)
            # the record's baseline was measured for its headline network: a network without
            # spikes has no non-spiking baseline of its own, and a spiking variant says whose it is
            base = dict(common, baseline=None, baseline_name=None) if not spiking else dict(
                common, baseline_name=f"{best}, as for {f.label}" if best else None)
            rows.append(Row(
                key=f"{f.name}/{name}", label=f"tier {tier.number}: {name}", spiking=spiking,
                accuracy=v.accuracy, training_wall_s=training,
                inference_images_per_s=v.inference.images_per_s, inference_what=v.inference.what,
                time_steps=v.time_steps,
                spikes_per_neuron=_spikes_per_neuron(part.get("firing")) if spiking else None,
                accumulates=v.synaptic_events.accumulates,
                multiply_accumulates=v.synaptic_events.multiply_accumulates,
                events_what=v.synaptic_events.what,
                per_class=_per_class(confusion, part.get("per_class_accuracy"), rec.test_images),
                confusion=(tuple(tuple(int(x) for x in r) for r in confusion)
                           if confusion is not None else None), **base))
    return rows


# --- formatting ----------------------------------------------------------------------------------
def _pct(x: float | None, digits: int = 2) -> str:
    return NA if x is None else f"{100 * x:.{digits}f}%"


def _sig(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, with thousands separators (``1,360``, ``2.98``)."""
    if x is None or not math.isfinite(x):
        return NA
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    decimals = max(digits - 1 - exponent, 0)
    return f"{round(x, digits - 1 - exponent):,.{decimals}f}"


def _sci(x: float | None) -> str:
    """Three significant digits in scientific notation (``1.03e7``); 0 as ``0``."""
    if x is None or not math.isfinite(x):
        return NA
    if x == 0:
        return "0"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _energy(pj: float | None) -> str:
    """Energy with a prefix that puts it in [1, 1000) (``9.30 µJ``), three significant digits."""
    if pj is None:
        return NA
    if pj == 0:
        return "0 J"
    rounded = float(f"{pj:.2e}")  # three significant digits first, then the prefix
    scale, unit = next(((s, u) for s, u in ((1e12, "J"), (1e9, "mJ"), (1e6, "µJ"), (1e3, "nJ"))
                        if abs(rounded) >= s), (1.0, "pJ"))
    value = rounded / scale
    return f"{value:.{max(2 - math.floor(math.log10(abs(value))), 0)}f} {unit}"


def _minutes(seconds: float | None) -> str:
    """Minutes with one decimal (``19.2 min``); under a minute, seconds (``42.0 s``)."""
    if seconds is None:
        return NA
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


# --- tables --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """A table of strings: HTML in a notebook, Markdown in the README, text in a terminal."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str = ""
    notes: tuple[str, ...] = ()

    def to_markdown(self) -> str:
        """A pipe table (GitHub-flavoured Markdown), then the notes as paragraphs."""
        def cell(s: str) -> str:
            return s.replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(cell(c) for c in self.columns) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in self.rows]
        out = "\n".join(lines)
        if self.notes:
            out += "\n\n" + "\n\n".join(self.notes)
        return out

    def to_text(self) -> str:
        """Columns aligned with spaces (for a terminal), the title above, the notes below."""
        cells = [self.columns, *self.rows]
        widths = [max(len(r[k]) for r in cells) for k in range(len(self.columns))]
        lines = [self.title] if self.title else []
        for i, row in enumerate(cells):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines + list(self.notes))

    def _repr_html_(self) -> str:
        esc = html.escape
        head = "".join(f"<th style='text-align:left'>{esc(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row)
                       + "</tr>" for row in self.rows)
        caption = f"<caption>{esc(self.title)}</caption>" if self.title else ""
        notes = "".join(f"<p><small>{esc(n)}</small></p>" for n in self.notes)
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.to_text())

    def __str__(self) -> str:
        return self.to_text()


COMPARISON_COLUMNS = (
    "network", "test accuracy", "best non-spiking baseline (same run)", "training wall time",
    "inference images/s", "time steps per image", "spikes per neuron per image",
    "accumulates (AC) per image", "multiply-accumulates (MAC) per image", "energy per image",
    "hardware")
ENERGY_NOTE = (
    f"Energy per image = {E_AC_PJ} pJ per accumulate + {E_MAC_PJ} pJ per multiply-accumulate "
    "(32-bit floating point, 45 nm; Horowitz 2014): the arithmetic of the counted synaptic "
    "events only. Memory traffic, neuron updates (leak, thresholds, biases) and whatever a tier "
    f"did not count are left out. {NA}: not in the record.")


def comparison_table(rows: Sequence[Row]) -> Table:
    """The comparison table: one row per network, the columns of :data:`COMPARISON_COLUMNS`.

    Accuracies with two decimals in percent (a hundredth of a point is one
    image in 10,000), events in three significant digits, energy with a unit
    prefix, training time in minutes.
    """
    out = []
    for r in rows:
        base = NA if r.baseline is None else f"{_pct(r.baseline)} ({r.baseline_name})"
        out.append((r.label, _pct(r.accuracy), base, _minutes(r.training_wall_s),
                    _sig(r.inference_images_per_s),
                    NA if r.time_steps is None else str(r.time_steps),
                    _sig(r.spikes_per_neuron), _sci(r.accumulates), _sci(r.multiply_accumulates),
                    _energy(r.energy_pj), r.hardware))
    return Table(COMPARISON_COLUMNS, tuple(out), "The tiers side by side", (ENERGY_NOTE,))


def counting_table(rows: Sequence[Row]) -> Table:
    """What each network's counts and speeds cover, in the records' own words (their ``what``)."""
    return Table(("network", "synaptic events counted", "inference speed measured"),
                 tuple((r.label, r.events_what or NA, r.inference_what or NA) for r in rows),
                 "What was counted and timed")


def provenance_table(rows: Sequence[Row]) -> Table:
    """Where each row comes from: record, profile, data, test images, seed, commit, date."""
    return Table(("network", "record", "profile", "dataset", "test images", "seed", "commit",
                  "date"),
                 tuple((r.label, r.source, r.profile, r.dataset, f"{r.test_images:,}", str(r.seed),
                        (r.commit or NA)[:7], (r.date or NA)[:10]) for r in rows),
                 "Where the numbers come from")


def per_class_table(rows: Sequence[Row]) -> Table:
    """Per-class test accuracy (percent, one decimal) of every row that has it."""
    have = [r for r in rows if r.per_class is not None]
    if not have:
        return Table(("network",), (), "Per-class accuracy",
                     ("No record holds a confusion matrix.",))
    names = have[0].class_names
    return Table(("network", *names),
                 tuple((r.label, *(f"{100 * a:.1f}" for a in r.per_class)) for r in have),
                 "Per-class test accuracy (%)")


def shared_confusions(rows: Sequence[Row], *, top: int = 5) -> Table:
    """The mistakes every given network makes: true class -> decision, ranked by the smallest rate.

    For each pair of classes (i, j), i != j, each network's rate is the fraction of
    class i's decided test images that it put in class j (its confusion matrix's row
    normalised); the pair's rank is the smallest rate over the networks, so a pair
    ranks high only if *every* network makes that mistake often. Rows without a
    confusion matrix are skipped.
    """
    have = [r for r in rows if r.confusion is not None]
    if not have:
        return Table(("mistake",), (), "Mistakes every network makes",
                     ("No record holds a confusion matrix.",))
    names = have[0].class_names
    rates = []
    for r in have:
        m = np.asarray(r.confusion, dtype=np.float64)
        rates.append(m / np.maximum(m.sum(axis=1, keepdims=True), 1))
    rates = np.stack(rates)
    low = rates.min(axis=0)
    np.fill_diagonal(low, -1.0)
    order = np.dstack(np.unravel_index(np.argsort(-low, axis=None), low.shape))[0][:top]
    return Table(("true class -> decision", *(r.label for r in have)),
                 tuple((f"{names[i]} -> {names[j]}", *(f"{100 * rates[k, i, j]:.1f}%"
                                                       for k in range(len(have))))
                       for i, j in order),
                 "Mistakes every network makes (share of the true class's test images)")


# --- plausibility --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trait:
    """One cell of the plausibility table: a short ``answer`` and ``why`` it is so."""

    answer: str
    why: str


PLAUSIBILITY: Mapping[str, Mapping[str, Trait]] = MappingProxyType({
    "spikes": MappingProxyType({
        "brian_stdp": Trait("yes", "Poisson input spikes; every hidden and output neuron is a LIF "
                                   "neuron simulated in Brian2. The retina before them is a fixed "
                                   "filter, not neurons."),
        "dog_lif": Trait("partly", "Poisson input spikes into a layer of LIF neurons; the decision "
                                   "is a logistic regression on their spike counts."),
        "conversion": Trait("at inference", "integrate-and-fire neurons in every hidden layer; the "
                                            "image enters as a constant current and the output "
                                            "layer integrates without spiking; training has no "
                                            "spikes at all."),
    }),
    "continuous time": MappingProxyType({
        "brian_stdp": Trait("partly", "membrane equations in milliseconds, solved by Brian2 on a "
                                      "clock of fixed steps of a millisecond or two; each image "
                                      "is shown for a fixed time."),
        "dog_lif": Trait("partly", "LIF equations in milliseconds at 2 ms steps, a fixed number "
                                   "of steps per image."),
        "conversion": Trait("no", "T abstract steps with no time constant; the neurons do not "
                                  "leak."),
    }),
    "local learning": MappingProxyType({
        "brian_stdp": Trait("mostly", "STDP uses each synapse's pre- and postsynaptic spikes; "
                                      "R-STDP adds one reward per image. Not local: the shared "
                                      "filters sum changes over positions, the whitening retina "
                                      "and the output layer's input gain are fitted to training "
                                      "statistics."),
        "dog_lif": Trait("partly", "the features learn by STDP (changes summed over positions); "
                                   "the readout is fitted by a global optimiser (L-BFGS) on all "
                                   "training images."),
        "conversion": Trait("no", "backpropagation of the loss gradient through every layer."),
    }),
    "no labels in hidden layers": MappingProxyType({
        "brian_stdp": Trait("yes", "both hidden layers learn by unsupervised STDP."),
        "dog_lif": Trait("yes", "the STDP layer never sees a label."),
        "conversion": Trait("no", "every layer's weights follow the labels' loss gradient."),
    }),
    "where supervision enters": MappingProxyType({
        "brian_stdp": Trait("output layer, as reward", "one scalar per image: the decision was "
                                                       "right or wrong."),
        "dog_lif": Trait("readout", "a logistic regression fitted to the labels on the pooled "
                                    "spike counts."),
        "conversion": Trait("everywhere", "the CNN's cross-entropy on the labels, before the "
                                          "conversion."),
    }),
    "reward instead of error": MappingProxyType({
        "brian_stdp": Trait("yes", "the output layer learns from reward (1 right, 0 wrong) minus "
                                   "its own confidence; it is never told the right class."),
        "dog_lif": Trait("no", "the readout minimises cross-entropy against the label."),
        "conversion": Trait("no", "gradients of the cross-entropy."),
    }),
    "inhibition": MappingProxyType({
        "brian_stdp": Trait("yes", "lateral inhibition among the neurons of a position "
                                   "(winner-take-all while learning) and between the output "
                                   "layer's class populations."),
        "dog_lif": Trait("yes", "lateral inhibition among the neurons of a position (a hard "
                                "winner-take-all while learning), and push-pull inhibition: "
                                "an ON input's spike also inhibits by the weight of the same "
                                "pixel's OFF input, and the other way round."),
        "conversion": Trait("only as negative weights", "no inhibitory neurons and no lateral "
                                                        "inhibition."),
    }),
    "Dale's law": MappingProxyType({
        "brian_stdp": Trait("no", "hidden weights are excitatory, but the same neurons inhibit "
                                  "their rivals directly (no interneurons), and output weights "
                                  "are signed. The first, fully connected version had a separate "
                                  "inhibitory population."),
        "dog_lif": Trait("no", "excitatory feed-forward weights, but the same neurons inhibit "
                               "their rivals directly, and push-pull inhibition comes straight "
                               "from the inputs (no interneurons are simulated); the readout's "
                               "weights are signed."),
        "conversion": Trait("no", "every neuron has positive and negative outgoing weights."),
    }),
    "weight sharing": MappingProxyType({
        "brian_stdp": Trait("yes", "convolutional filters, a computational shortcut (the first, "
                                   "fully connected version shared none)."),
        "dog_lif": Trait("yes", "one convolutional layer."),
        "conversion": Trait("yes", "convolutions."),
    }),
    "signed or clipped weights": MappingProxyType({
        "brian_stdp": Trait("clipped; signed output", "hidden weights clipped at 0 and rescaled "
                                                      "to a fixed sum per neuron; output weights "
                                                      "signed."),
        "dog_lif": Trait("clipped; signed readout", "STDP weights clipped at 0 and rescaled to a "
                                                    "fixed sum per neuron; readout weights "
                                                    "signed."),
        "conversion": Trait("signed", "real-valued weights of either sign, scaled per layer by "
                                      "the normalisation."),
    }),
    "conversion from backprop": MappingProxyType({
        "brian_stdp": Trait("no", "nothing is trained by gradients."),
        "dog_lif": Trait("no", "only the linear readout is an optimiser's fit."),
        "conversion": Trait("yes", "a trained CNN's weights, normalised, run by "
                                   "integrate-and-fire neurons."),
    }),
})
"""Facts about each tier's design (not measurements): question -> tier -> :class:`Trait`."""


def plausibility_table(*, why: bool = False) -> Table:
    """:data:`PLAUSIBILITY` as a table, one column per tier; ``why`` adds each cell's reason."""
    columns = ("", *(f"tier {t.number} ({t.name})" for t in TIERS.values()))
    rows = tuple((question, *((f"{c.answer}: {c.why}" if why else c.answer)
                              for c in (cells[t] for t in TIERS)))
                 for question, cells in PLAUSIBILITY.items())
    return Table(columns, rows, "What is biological in each tier")


# --- figures -------------------------------------------------------------------------------------
def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats: none is as cheap and more accurate, or cheaper
    and as accurate. Ordered by cost.

    >>> pareto_front([1, 2, 3, 4], [0.5, 0.4, 0.8, 0.8])
    [0, 2]
    """
    if len(costs) != len(accuracies):
        raise ValueError(f"costs and accuracies must have the same length, got {len(costs)} and "
                         f"{len(accuracies)}.")
    order = sorted(range(len(costs)), key=lambda k: (costs[k], -accuracies[k]))
    front, best = [], -math.inf
    for k in order:
        if accuracies[k] > best:
            front.append(k)
            best = accuracies[k]
    return front


def _tier_colours() -> dict[int, tuple]:
    """One colour per tier number, from the book's colour-blind-friendly palette."""
    import seaborn as sns

    palette = sns.color_palette("colorblind", n_colors=max(t.number for t in TIERS.values()))
    return {t.number: palette[t.number - 1] for t in TIERS.values()}


MARKERS = "osD^v<>"
"""Marker of a tier's headline record (circle), then of its other records and variants, in order."""


def _scatter(ax, rows: Sequence[Row], xs: Sequence[float]) -> None:
    """One point per row: the colour says the tier, the marker which of its networks (a circle
    for the tier itself), a hollow marker a network without spikes."""
    colours = _tier_colours()
    seen: dict[str, int] = {}
    for r, x in zip(rows, xs):
        if r.key == r.tier:
            m = MARKERS[0]
        else:
            seen[r.tier] = seen.get(r.tier, 0) + 1
            m = MARKERS[seen[r.tier] % len(MARKERS)]
        face = colours[r.tier_number] if r.spiking else "white"
        label = r.label if r.spiking or "not spiking" in r.label else f"{r.label} (not spiking)"
        # hollow markers larger and beneath, so a filled one at the same place shows inside
        ax.scatter([x], [100 * r.accuracy], s=60 if r.spiking else 120, marker=m, facecolor=face,
                   edgecolor=colours[r.tier_number], linewidth=1.5, zorder=4 if r.spiking else 3,
                   label=label)


def _log_axis(ax, xs: Sequence[float]) -> None:
    """A log x axis whose ticks read as plain numbers (10, 100, ...; 1, 2, 5, 10, ... when the
    points span less than two decades)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    span = math.log10(max(xs) / min(xs)) if len(xs) and min(xs) > 0 else 0.0
    subs = (1.0,) if span > 2 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_accuracy_vs_energy(rows: Sequence[Row], *, ax=None, e_ac_pj: float = E_AC_PJ,
                            e_mac_pj: float = E_MAC_PJ,
                            title: str = "Accuracy against the energy of the synaptic events"):
    """Test accuracy against the energy estimate per image (log scale), the Pareto front drawn.

    One point per row with recorded synaptic events (:func:`energy_pj` with
    ``e_ac_pj`` and ``e_mac_pj``); hollow markers are networks without spikes.
    The front (dashed) joins the points that no other point beats on both axes.
    Returns the axes.
    """
    import matplotlib.pyplot as plt

    have = [r for r in rows if r.accumulates is not None and r.multiply_accumulates is not None]
    energy_uj = [energy_pj(r.accumulates, r.multiply_accumulates, e_ac_pj=e_ac_pj,
                           e_mac_pj=e_mac_pj) / 1e6 for r in have]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.6))
    _scatter(ax, have, energy_uj)
    front = pareto_front(energy_uj, [r.accuracy for r in have])
    if front:
        ax.step([energy_uj[k] for k in front], [100 * have[k].accuracy for k in front],
                where="post", color="0.4", ls="--", lw=1, zorder=2, label="Pareto front")
    ax.axhline(10, color="0.6", lw=0.8, ls=":", label="chance")
    _log_axis(ax, energy_uj)
    ax.set(xlabel=f"energy per test image (µJ; {e_ac_pj:g} pJ per AC, {e_mac_pj:g} pJ per MAC)",
           ylabel="test accuracy (%)", ylim=(0, 100), title=title)
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return ax


def plot_accuracy_vs_training_time(rows: Sequence[Row], *, ax=None,
                                   title: str = "Accuracy against training time"):
    """Test accuracy against the wall time of training (minutes, log scale).

    Rows whose training time is not recorded are not drawn; the figure names them.
    Returns the axes.
    """
    import matplotlib.pyplot as plt

    have = [r for r in rows if r.training_wall_s is not None]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.6))
    minutes = [r.training_wall_s / 60 for r in have]
    _scatter(ax, have, minutes)
    ax.axhline(10, color="0.6", lw=0.8, ls=":", label="chance")
    _log_axis(ax, minutes)
    ax.set(xlabel="training wall time (min, on the hardware of the table)",
           ylabel="test accuracy (%)", ylim=(0, 100), title=title)
    ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    absent = [r.label for r in rows if r.training_wall_s is None]
    if absent:
        ax.text(0.01, 0.02, "training time not recorded: " + "; ".join(absent),
                transform=ax.transAxes, fontsize=7, color="0.3", va="bottom", wrap=True)
    return ax


def plot_per_class(rows: Sequence[Row], *, ax=None,
                   title: str = "Per-class test accuracy of every network"):
    """A heatmap of per-class test accuracy (%): one row per network, one column per class.

    Drawn with seaborn (``rocket_r``, as the book's confusion matrices). Returns the axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if not rows:  # every record missing (load_records lists them): an empty panel, as the others
        if ax is None:
            _, ax = plt.subplots(figsize=(10, 2.5))
        ax.set_axis_off()
        ax.set_title(title)
        ax.text(0.5, 0.5, "no record to compare", ha="center", va="center",
                transform=ax.transAxes)
        return ax
    have = [r for r in rows if r.per_class is not None]
    if not have:
        raise ValueError("no row holds a per-class accuracy (no record has a confusion matrix).")
    values = 100 * np.array([r.per_class for r in have])
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.55 * len(have) + 1.6))
    sns.heatmap(values, annot=True, fmt=".0f", cmap="rocket_r", vmin=0, vmax=100, ax=ax,
                xticklabels=have[0].class_names, yticklabels=[r.label for r in have],
                annot_kws={"size": 8}, cbar_kws={"label": "test accuracy (%)"})
    ax.set(xlabel="true class", ylabel="", title=title)
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    return ax


def write_figures(rows: Sequence[Row], out_dir: str | os.PathLike) -> list[Path]:
    """The three figures as PNG files in ``out_dir`` (made if needed); returns their paths."""
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, plot in (("accuracy_vs_energy", plot_accuracy_vs_energy),
                       ("accuracy_vs_training_time", plot_accuracy_vs_training_time),
                       ("per_class_accuracy", plot_per_class)):
        ax = plot(rows)
        path = out / f"{name}.png"
        ax.figure.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(ax.figure)
        paths.append(path)
    return paths


# --- the README's results ------------------------------------------------------------------------
def _dig(d, path: str):
    """``d["a"]["b"]`` for ``"a/b"``, or None when a key is missing."""
    for key in path.split("/"):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _accuracy_table(header: str, rec: runs.TierRecord, headline: str) -> str:
    rows = [(f"{headline} (the tier)", _pct(rec.accuracy))]
    rows += [(name, _pct(acc)) for name, acc in rec.baselines.items()]
    return Table((header, ""), tuple(rows)).to_markdown()


def _phases(rec: runs.TierRecord) -> str:
    """Wall time by phase, in minutes; phases not timed named apart ("this_call" is left out:
    it is the wall time of the last invocation, which may have resumed from checkpoints)."""
    phases = {k: v for k, v in rec.wall_s.items() if k != "this_call"}
    timed = [f"{k} {v / 60:.1f}" for k, v in phases.items() if not _untimed(v)]
    untimed = [k for k, v in phases.items() if _untimed(v)]
    text = "Wall time by phase (min): " + "; ".join(timed) + "."
    together = (rec.specific or {}).get("side_by_side", {}).get("phases", [])
    if together:
        text += (" " + " and ".join(together) + " ran side by side (at the same time, one "
                 "process per core), so their times overlap.")
    if untimed:
        text += (" Not timed (loaded from checkpoints that carry no time): "
                 + "; ".join(untimed) + ".")
    return text


def _header(rec: runs.TierRecord, path: str) -> str:
    tier = TIERS[rec.tier]
    commit = (rec.provenance.get("git_commit") or NA)[:7]
    return (f"Measured by `{_run_command(rec.tier, rec.profile)}` (hardware: {_hardware(rec)}; "
            f"data: {rec.dataset}), recorded in `{path}` (commit {commit}, seed {rec.seed}): "
            f"{rec.train_images:,} training and {rec.test_images:,} test images, simulated with "
            f"{tier.simulator}.")


def _brian_stdp_readme(rec: runs.TierRecord) -> list[str]:
    p, s = rec.parameters, rec.specific
    out = []
    h1, h2 = _dig(p, "hidden/layer1"), _dig(p, "hidden/layer2")
    hidden, q, images = _dig(p, "hidden"), _dig(p, "output"), _dig(s, "images")
    if None not in (h1, h2, hidden, q, images):
        steps = hidden.get("feature_steps") or hidden["steps"]
        out.append(
            f"A whitening retina and two convolutional STDP layers ({h1['n_filters']} filters of "
            f"{h1['field_px']} x {h1['field_px']} x ON/OFF, {h2['n_filters']} of "
            f"{h2['field_px']} x {h2['field_px']} complex cells) that learned without labels from "
            f"{h1['train_patches']:,} + {h2['train_patches']:,} patches of "
            f"{images['hidden_layers']:,} training images ({hidden['steps']} steps of "
            f"{hidden['dt_ms']:g} ms each); their spike counts over {steps} steps "
            f"({steps * hidden['dt_ms']:g} ms) per image, pooled, read by an R-STDP output layer "
            f"of {q['neurons_per_class']} neurons per class that learned from "
            f"{images['output_layer']:,} images, {images['output_epochs']} epochs.")
    chosen = _dig(s, "chosen_on/split")
    if isinstance(chosen, str):
        where = (f"the validation split, {chosen.removeprefix('validation: ')}"
                 if chosen.startswith("validation: ") else chosen)
        c_on = _dig(s, "chosen_on/logistic regression's C")
        out.append(f"Its design was chosen on {where}"
                   + (f"; the logistic regressions chose their C on {c_on}" if c_on else "")
                   + "; the test images were read for the reported figures only.")
    out.append(_accuracy_table("tier 1 (Brian2), test accuracy", rec,
                               "R-STDP output layer on the STDP-trained layers"))
    b = rec.baselines
    twin = b.get("R-STDP output on the random-weight twin")
    lr, lr_twin = (b.get("logistic regression, hidden layers 1 + 2 spike counts"),
                   b.get("logistic regression, random-weight layers 1 + 2 spike counts"))
    sentences = []
    if twin is not None and lr is not None and lr_twin is not None:
        sentences.append(f"The STDP layers beat their random-weight twin by "
                         f"{100 * (rec.accuracy - twin):.1f} points under the R-STDP output layer "
                         f"and {100 * (lr - lr_twin):.1f} under logistic regression.")
    if lr:
        sentences.append(f"The reward-trained output layer reaches {rec.accuracy / lr:.2f} of a "
                         f"logistic regression on the same counts.")
    volleys = _dig(s, "layer2_volley_fraction")
    if volleys and volleys.get("trained") is not None and volleys.get("random") is not None:
        sentences.append(f"Layer 2 fires in volleys (at least a quarter of its neurons within "
                         f"4 ms) on {100 * volleys['trained']:.1f}% of the test images (the twin: "
                         f"{100 * volleys['random']:.1f}%).")
    out.append(" ".join(sentences + [_phases(rec)]))
    return out


def _diehl_cook_readme(rec: runs.TierRecord, path: str) -> list[str]:
    b = rec.baselines
    text = (f"The first version of tier 1, a fully connected network after Diehl & Cook "
            f"(`{path}`, {rec.test_images:,} test images): {_pct(rec.accuracy)}")
    parts = [f"{name} {_pct(acc)}" for name, acc in b.items() if name != "chance"]
    return [text + (f"; {'; '.join(parts)}." if parts else ".") + " Chapter 3 shows why it fails."]


def _dog_lif_readme(rec: runs.TierRecord) -> list[str]:
    p, s = rec.parameters, rec.specific
    out = []
    keys = ("n_filters", "patch_px", "retina", "steps", "dt_ms", "train_patches", "pool")
    if all(k in p for k in keys):
        retina = {"zca": "whitened", "dog": "colour-opponent DoG"}.get(p["retina"], p["retina"])
        features = s.get("features_per_image")
        out.append(
            f"One convolutional layer of {p['n_filters']} LIF filters ({p['patch_px']} x "
            f"{p['patch_px']} pixels, {retina} ON/OFF input, {p['steps']} steps of "
            f"{p['dt_ms']:g} ms"
            + (f", push-pull inhibition {p['push_pull']:g}" if p.get("push_pull") else "")
            + f") that learned by STDP from {p['train_patches']:,} patches; its "
            f"spike counts pooled over {p['pool']} x {p['pool']} regions"
            + (f" ({features:,} features)" if features else "")
            + " read out by logistic regression"
            + (", each test image together with its mirror image (class probabilities "
               "averaged; every readout of the table alike)"
               if str(s.get("test_views", "")).startswith("each test image and its") else "")
            + ".")
    out.append(_accuracy_table("tier 2 (PyTorch), test accuracy", rec,
                               "logistic regression on the STDP layer's spike counts"))
    sentences = []
    if rec.inference.images_per_s is not None:
        sentences.append(f"Feature extraction ran at {_sig(rec.inference.images_per_s)} images/s"
                         + (f", STDP learning at {_sig(rec.training.images_per_s)} patches/s"
                            if rec.training.images_per_s is not None else "") + ";")
    sentences.append(f"{_sci(rec.synaptic_events.accumulates)} synaptic events per image.")
    out.append(" ".join(sentences + [_phases(rec)]))
    return out


def _steps_table(header: str, rows: Sequence[tuple[str, Mapping]]) -> str:
    steps = sorted({int(t) for _, d in rows for t in d}, key=int)
    body = tuple((name, *(_fmt_step(d, t) for t in steps)) for name, d in rows)
    return Table((header, *(f"T = {t}" for t in steps)), body).to_markdown()


def _fmt_step(d: Mapping, t: int) -> str:
    value = d.get(str(t), d.get(t))
    return "" if value is None else value


def _conversion_readme(rec: runs.TierRecord) -> list[str]:
    from .tiers.conversion.record import describe_cnn, describe_training, rounds_clause

    p, s = rec.parameters, rec.specific
    out = []
    widths, epochs = _dig(p, "cnn/widths"), _dig(s, "cnn/training/epochs")
    snn = _dig(s, "snn") or {}
    if widths and epochs:
        train = p.get("training", {})
        if "pool_after" in p["cnn"] and "batch_size" in train:
            text = (f"A CNN ({describe_cnn(p['cnn'])}) trained by backpropagation on "
                    f"{rec.train_images:,} images ({describe_training(train)})")
        else:  # a record without the full parameters
            text = (f"A CNN (convolutions of {', '.join(str(w) for w in widths)} channels) "
                    f"trained by backpropagation on {rec.train_images:,} images for {epochs} "
                    f"epochs")
        text += "; batch norm folded; converted into integrate-and-fire neurons (reset by subtraction"
        if "percentile" in p and "calibration_images" in p:
            text += (f", each layer normalised at the {p['percentile']:g}th percentile of its "
                     f"activations on {p['calibration_images']:,} training images")
        out.append(text + f", the image as a constant current) and simulated for "
                          f"{rec.time_steps} steps.")
    cnn = rec.baselines.get("the CNN it was converted from")
    acc = snn.get("accuracy_vs_steps")
    if acc and cnn is not None:
        loss = {t: f"{100 * (cnn - a):.2f}" for t, a in acc.items()}
        out.append(_steps_table(
            "tier 3 (PyTorch), test accuracy",
            [("its spiking copy (the tier)", {t: _pct(a) for t, a in acc.items()}),
             ("CNN minus SNN (points)", loss)]) + f"\n\nThe CNN: {_pct(cnn)}.")
    else:
        out.append(_accuracy_table("tier 3 (PyTorch), test accuracy", rec,
                                   f"the spiking network at T = {rec.time_steps}"))
    sentences = []
    within = [(snn.get(f"smallest_steps_within_{k}_point"), k) for k in ("1", "0.1")]
    if all(f"smallest_steps_within_{k}_point" in snn for k in ("1", "0.1")):
        said = [f"within {k} point of its CNN from T = {t} on" if t is not None
                else f"never within {k} point up to T = {rec.time_steps}" for t, k in within]
        sentences.append(f"The spiking network is {said[0]}, and {said[1]}.")
    ev = rec.synaptic_events
    cnn_var = next((v for k, v in rec.variants.items() if k.startswith("the CNN")), None)
    cnn_macs = cnn_var.synaptic_events.multiply_accumulates if cnn_var else 0
    sentences.append(f"Per image at T = {rec.time_steps} it does {_sci(ev.accumulates)} "
                     "accumulates" + (f" ({ev.accumulates / cnn_macs:.1f} per CNN "
                                      "multiply-accumulate)" if cnn_macs else "")
                     + f" and {_sci(ev.multiply_accumulates)} multiply-accumulates (the first "
                     "layer takes the image as a current every step)"
                     + (f"; the CNN does {_sci(cnn_macs)} multiply-accumulates" if cnn_macs else "")
                     + ".")
    if cnn_var and cnn_var.inference.images_per_s is not None:
        sentences.append(f"The CNN classifies {_sig(cnn_var.inference.images_per_s)} images/s "
                         f"({cnn_var.inference.what}); the spiking network "
                         f"{_sig(rec.inference.images_per_s)} ({rec.inference.what}).")
    out.append(" ".join(sentences + [_phases(rec)]))
    q = _dig(s, "qcfs")
    if q and q.get("accuracy_vs_steps"):
        own = q.get("cnn_accuracy_on_snn_images")
        epochs_q, wall_q = _dig(q, "training/epochs"), _dig(q, "training/wall_s")
        signed = ("signed IF neurons with memory, which take back a spike when their "
                  "potential falls below zero, " if q.get("signed") else "")
        if q.get("burst", 1) > 1:
            signed += (f"firing bursts of up to {q['burst']} spikes a step, each worth "
                       f"1/{q['burst']} of a plain neuron's threshold (Li and Zeng's burst "
                       "spikes), ")
        cal = q.get("bias_calibration")
        calibrated = ""
        if cal:
            calibrated = (f"; its biases calibrated for T = {cal['steps']} on "
                          f"{cal['images']:,} training images"
                          f"{rounds_clause(cal.get('rounds', 1))}, Li et al.'s bias correction")
        out.append(
            f"Quantisation-aware fine-tuning (Bu et al.'s clip-floor-shift activation, "
            f"{q.get('levels')} levels, thresholds starting at the {q.get('init_percentile'):g}th "
            f"percentile of each layer's activations; {epochs_q} epochs from the trained CNN, "
            f"{_minutes(wall_q)}) gives a CNN of {_pct(own)}, whose spiking copy ({signed}"
            f"neurons starting at {q.get('v0')} of the threshold{calibrated}) does:")
        qa = q["accuracy_vs_steps"]
        rows = [("its spiking copy", {t: _pct(a) for t, a in qa.items()})]
        before = _dig(q, "uncalibrated/accuracy_vs_steps")
        if before:
            rows.append(("the same before the bias calibration",
                         {t: _pct(a) for t, a in before.items()}))
        if own is not None:
            rows.append((f"its CNN ({_pct(own)}) minus SNN (points)",
                         {t: f"{100 * (own - a):.2f}" for t, a in qa.items()}))
        if cnn is not None:
            rows.append((f"the ReLU CNN ({_pct(cnn)}) minus SNN (points)",
                         {t: f"{100 * (cnn - a):.2f}" for t, a in qa.items()}))
        out.append(_steps_table("QCFS fine-tuned, test accuracy", rows))
        ops = q.get("operations_per_image")
        if ops:
            out.append(f"At T = {q.get('steps')} it does {_sci(ops['accumulates'])} accumulates "
                       f"and {_sci(ops['multiply_accumulates'])} multiply-accumulates per image, "
                       f"and simulates {_sig(q.get('images_per_s'))} images/s.")
        shorts = q.get("short_simulations") or {}
        if shorts:
            out.append(" ".join(
                f"Simulated for T = {t} on its own: {_pct(r['accuracy'])}, "
                f"{_sci(r['operations_per_image']['accumulates'])} accumulates and "
                f"{_sci(r['operations_per_image']['multiply_accumulates'])} "
                f"multiply-accumulates per image." for t, r in shorts.items()))
    return out


def readme_results(records: Records) -> str:
    """The README's results section (Markdown, without the markers), from ``records``.

    It holds the comparison table and, per tier, what was measured and its
    accuracy against the baselines of the same run; every number comes from a
    record. Raises :class:`snnlib.runs.RecordError` (which names the tier and
    the command that makes its record) when a required record is missing.
    """
    records.require()
    rows = comparison_rows(records)
    folder = records.source.name
    parts = [f"Generated from the records in `{folder}/` by "
             f"`{WRITE_README_COMMAND}`; `tests/test_compare.py` fails when the two disagree. "
             "Chapter 7 (`notebooks/07_comparison.ipynb`) draws the same numbers.",
             "### The tiers side by side", comparison_table(rows).to_markdown()]
    paths = {k: f"{folder}/{Path(v).name}" for k, v in records.paths.items()}
    sections = (("brian_stdp", "### Tier 1 (Brian2)", _brian_stdp_readme),
                ("dog_lif", "### Tier 2 (PyTorch, balanced)", _dog_lif_readme),
                ("conversion", "### Tier 3 (PyTorch, efficient)", _conversion_readme))
    for name, heading, describe in sections:
        rec = records.records[name]
        parts += [heading, _header(rec, paths[name]), *describe(rec)]
        if name == "brian_stdp" and "brian_stdp_diehl_cook" in records.records:
            parts += _diehl_cook_readme(records.records["brian_stdp_diehl_cook"],
                                        paths["brian_stdp_diehl_cook"])
    return "\n\n".join(parts) + "\n"


def _split_readme(text: str) -> tuple[str, str, str]:
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if begin < 0 or end < begin:
        raise ValueError(f"README has no results section between {README_BEGIN} and {README_END}; "
                         "add the two markers where the results should go.")
    return text[:begin + len(README_BEGIN)], text[begin + len(README_BEGIN):end], text[end:]


def check_readme(readme: str, records: Records) -> list[str]:
    """The differences between ``readme``'s results section and :func:`readme_results`
    (a unified diff, empty when they agree)."""
    _, current, _ = _split_readme(readme)
    expected = "\n" + readme_results(records)
    return list(difflib.unified_diff(current.splitlines(), expected.splitlines(),
                                     "README.md", "from the records", lineterm="", n=1))


def write_readme(path: str | os.PathLike, records: Records) -> bool:
    """Replace the results section of the README at ``path``; True if it changed."""
    path = Path(path)
    text = path.read_text()
    head, current, tail = _split_readme(text)
    new = "\n" + readme_results(records)
    if new == current:
        return False
    runs.atomic_write(path, lambda tmp: Path(tmp).write_text(head + new + tail))
    return True
