"""The book's network tiers, one package each, and the registry that the CLI and the chapters loop over.

Every tier package has the same shape: its network (and readout or
conversion) in modules of their own, ``run.py`` with
``run_tier(profile, *, out_dir, seed, device, progress)`` that returns
``(record, details)``, and ``record.py`` that turns the tier's measurements
into the common :class:`snnlib.runs.TierRecord` (and migrates the tier's
records of older snnlib versions). A profile has one section per tier,
named as the tier is here.

>>> from snnlib.tiers import TIERS
>>> [t.number for t in TIERS.values()]
[1, 2, 3]

Tier modules are imported when first used (``tier.module()``), so that
listing the tiers needs neither Brian2 nor a network to be built.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

__all__ = ["TIERS", "Tier"]


@dataclass(frozen=True)
class Tier:
    """One tier of the book.

    Attributes
    ----------
    name : str
        Package name under ``snnlib.tiers``, profile section, record name
        (``results/NAME.json``) and the CLI's ``run NAME``.
    number : int
        Its place on the ladder (1: most plausible, 3: most efficient).
    title : str
    simulator : str
        What simulates its spiking layers.
    devices : tuple of str
        Device types its ``run_tier`` accepts.
    chapters : tuple of str
        The notebooks that present it.
    """

    name: str
    number: int
    title: str
    simulator: str
    devices: tuple[str, ...]
    chapters: tuple[str, ...]

    def __post_init__(self) -> None:
        from .. import _validate as check

        for field in ("name", "title", "simulator"):
            check.instance(f"Tier.{field}", getattr(self, field), str)
        if not self.name.isidentifier():
            raise ValueError(f"Tier.name must be a package name (an identifier), got {self.name!r}")
        check.positive_int("Tier.number", self.number)
        for field in ("devices", "chapters"):
            value = check.instance(f"Tier.{field}", getattr(self, field), tuple,
                                   what="a tuple of strings")
            if not value or not all(isinstance(v, str) for v in value):
                raise ValueError(f"Tier.{field} must be a non-empty tuple of strings, got "
                                 f"{value!r}")

    def module(self) -> ModuleType:
        """The tier's package (imported on first use)."""
        return importlib.import_module(f"{__name__}.{self.name}")

    def record_module(self) -> ModuleType:
        """The tier's ``record`` module: ``to_record``, ``MOVES``, ``summary_lines``."""
        return importlib.import_module(f"{__name__}.{self.name}.record")

    def run(self, profile, *, out_dir, seed: int = 2026, device: str | None = None,
            progress: bool = True, **options):
        """``run_tier`` of the tier; a device it cannot use is refused with a clear message.

        ``device`` None: ``$SNNLIB_DEVICE`` (or the CPU), except for a tier that runs on the
        CPU only, which then runs there whatever the variable says."""
        from .. import runs

        _profile_section(profile, self.name, f"{self.name}.run_tier")
        if device is None and self.devices == ("cpu",):
            device = "cpu"  # $SNNLIB_DEVICE is for the tiers that can leave the CPU
        device = runs.get_device(device)
        if device.split(":")[0] not in self.devices:
            raise ValueError(f"tier {self.number} ({self.name}) runs on "
                             f"{' or '.join(self.devices)} only ({self.simulator}), not {device!r}.")
        return self.module().run_tier(profile, out_dir=out_dir, seed=seed, device=device,
                                      progress=progress, **options)


TIERS: dict[str, Tier] = {t.name: t for t in (
    Tier("brian_stdp", 1, "Brian2, most plausible: STDP hidden layers and an R-STDP output layer",
         "Brian2", ("cpu",), ("03_stdp_network", "04_rstdp")),
    Tier("dog_lif", 2, "PyTorch, balanced: a retina, LIF neurons, STDP features, a linear readout",
         "PyTorch", ("cpu", "cuda"), ("05_dog_lif",)),
    Tier("conversion", 3, "PyTorch, efficient: a CNN converted into a rate-based spiking network",
         "PyTorch", ("cpu", "cuda"), ("06_conversion",)),
)}
"""The tiers in the book's order."""


def _profile_section(profile, section: str, where: str):
    """``profile``'s section for a tier (``profile.conversion``, ...), or a TypeError naming
    ``profile`` when it is not a :class:`snnlib.profiles.Profile`."""
    sizes = getattr(profile, section, None)
    if sizes is None or isinstance(profile, (str, bytes)):
        import reprlib

        raise TypeError(f"{where}: profile must be a snnlib.profiles.Profile (with a .{section} "
                        f"section; snnlib.profiles.get_profile(name) gives one), got "
                        f"{type(profile).__name__} {reprlib.repr(profile)}")
    return sizes
