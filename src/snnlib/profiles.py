"""Run sizes of the book, in one place: ``ci``, ``book`` and ``full``.

Every chapter and the command line read the profile from the environment
variable ``SNNLIB_PROFILE`` (default ``book``):

- ``ci``: tiny; every notebook runs in well under a minute (nbval, CI).
- ``book``: what the rendered book shows; all chapters together execute in
  about 16 minutes on 2 cores (longer on a first run, while Brian2 compiles).
- ``full``: the headline numbers, on all of CIFAR-10 where a tier allows;
  may take hours, checkpointed, writes ``results/*.json``.

Example
-------
>>> import snnlib as sl
>>> sl.profiles.get_profile("ci").n_test_per_class
10
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Literal

__all__ = ["BrianSTDPSizes", "ConversionSizes", "DogLIFSizes", "PROFILE_ENV", "PROFILES",
           "Profile", "get_profile", "profile_items"]

PROFILE_ENV = "SNNLIB_PROFILE"
DEFAULT_PROFILE = "book"
ProfileName = Literal["ci", "book", "full"]


def _check_positive(owner: str, obj) -> None:
    """Every int field of ``obj`` positive (None allowed where the field says so)."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if "int" not in str(f.type) or (value is None and "None" in str(f.type)):
            continue  # names and sections are checked apart; None where the field allows it
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{owner}.{f.name} must be a positive integer"
                             f"{' or None' if 'None' in str(f.type) else ''}, got {value!r}.")


def _is_section(value) -> bool:
    return isinstance(value, (BrianSTDPSizes, DogLIFSizes, ConversionSizes))


@dataclass(frozen=True)
class BrianSTDPSizes:
    """Tier 1 (``brian_stdp``) at a profile's size.

    The convolutional network (:func:`snnlib.tiers.brian_stdp.run_tier`):

    Attributes
    ----------
    hidden_images : int
        Training images (the first of the training split, validation split
        excluded) that the retina is fitted on and the hidden layers' patches
        are drawn from.
    layer1_patches, layer2_patches : int
        Patches each hidden layer learns from (one pass).
    output_images : int
        Training images (the first of the training split) of the R-STDP output
        layer and of the logistic-regression baselines.
    output_epochs : int
        Passes of the output layer over them.
    test_images : int or None
        Class-balanced test images; None: ``10 x n_test_per_class`` of the profile.

    The fully connected network of Diehl & Cook (:mod:`snnlib.tiers.brian_stdp.run`, the
    chapter-3 section on why it fails on CIFAR-10):

    neurons : int
        Excitatory neurons in hidden layer 1 (layer 2 has half).
    train_images : int
        Training images of hidden layer 1 (class-balanced).
    layer2_train_images : int or None
        Training images of hidden layer 2, the first of layer 1's (classes
        interleaved at random, so close to balanced, not exactly); None: all
        of them. (Layer 2 trains at about half of layer 1's speed, 2.1 against
        4.2 images per second in the full Diehl and Cook record: it re-presents
        the images it stays silent for.)
    readout_images : int
        Training images of the R-STDP output layer and of the
        logistic-regression baselines: the hidden layers' images first (when
        fewer, the first of them: close to class-balanced, not exactly), then
        class-balanced others.
    readout_epochs : int
        Passes of the output layer over its training images.
    """

    hidden_images: int = 20
    layer1_patches: int = 1000
    layer2_patches: int = 500
    output_images: int = 20
    output_epochs: int = 2
    test_images: int | None = None
    neurons: int = 20
    train_images: int = 20
    layer2_train_images: int | None = None
    readout_images: int = 20
    readout_epochs: int = 1

    def __post_init__(self) -> None:
        _check_positive("Profile.brian_stdp", self)
        if (self.layer2_train_images or 0) > self.train_images:
            raise ValueError(f"Profile.brian_stdp.layer2_train_images ({self.layer2_train_images}) "
                             f"must not exceed train_images ({self.train_images}): layer 2 "
                             "trains on the first of layer 1's images.")


@dataclass(frozen=True)
class DogLIFSizes:
    """Tier 2 (``dog_lif``) at a profile's size.

    Attributes
    ----------
    filters : int
        Neurons per position of the convolutional STDP layer.
    train_patches : int
        Random image patches the STDP layer learns from.
    mirror_test : bool
        Also simulate each test image's mirror image (left-right) and average
        the readout's class probabilities over the two (every readout of the
        run, baselines included): twice the test images' simulation.
    """

    filters: int = 16
    train_patches: int = 2000
    mirror_test: bool = False

    def __post_init__(self) -> None:
        _check_positive("Profile.dog_lif", self)
        if not isinstance(self.mirror_test, bool):
            raise ValueError("Profile.dog_lif.mirror_test must be True or False, got "
                             f"{self.mirror_test!r}.")


@dataclass(frozen=True)
class ConversionSizes:
    """Tier 3 (``conversion``) at a profile's size.

    Attributes
    ----------
    width : int
        Channels of the CNN's first convolutions (the six convolutions have
        width, width, 2 width, 2 width, 4 width, 4 width).
    train_images : int or None
        CNN training images (class-balanced); None: all 50,000.
    epochs : int
        CNN training epochs.
    snn_images : int or None
        Test images the converted network is simulated on (the first of the
        profile's test images); None: all of them.
    steps : int
        The longest simulation (steps); accuracy is read at every power of
        two up to it.
    variant_images : int
        Test images for the comparisons of normalisation and input coding
        (the first of the simulated ones).
    qcfs_epochs : int
        Epochs of quantisation-aware fine-tuning (clip-floor-shift
        activations) that start from the trained CNN.
    qcfs_steps : int
        The longest simulation of the fine-tuned network (steps), on the same
        test images as the tier's.
    design : {"vgg", "whitened"}
        The CNN and its training (:func:`snnlib.tiers.conversion.params_for_profile`):
        ``"vgg"``, six 3 x 3 convolutions of width, width, 2 width, 2 width,
        4 width, 4 width channels, pooled after every second one; ``"whitened"``,
        a patch-whitening first layer, convolutions of width, width and four
        times 4 width channels, max-pooled after the first of each pair and
        over the last map, and airbench's network and training settings
        (Jordan 2024), chosen on the validation split for a short training.
    """

    width: int = 8
    train_images: int | None = 200
    epochs: int = 1
    snn_images: int | None = 50
    steps: int = 32
    variant_images: int = 20
    qcfs_epochs: int = 1
    qcfs_steps: int = 16
    design: Literal["vgg", "whitened"] = "vgg"

    def __post_init__(self) -> None:
        _check_positive("Profile.conversion", self)
        if self.design not in ("vgg", "whitened"):
            raise ValueError(f"Profile.conversion.design must be 'vgg' or 'whitened', got "
                             f"{self.design!r}.")
        if self.train_images is not None and self.train_images < 10:
            raise ValueError(f"Profile.conversion.train_images must be None or at least 10 (one "
                             f"per class), got {self.train_images!r}.")


@dataclass(frozen=True)
class Profile:
    """How big a run is: sizes shared by the chapters, then one section per tier.

    Attributes
    ----------
    name : {"ci", "book", "full"}
    n_train_per_class : int or None
        Training images per class (class-balanced, seeded); None: all 5000.
    n_test_per_class : int or None
        Test images per class; None: all 1000.
    n_encode_images : int
        Chapter 1: images whose pixels are Poisson-encoded to measure spike
        count against intensity.
    stdp_demo_ms : int
        Chapter 2: model time (ms) of the STDP neuron learning from
        correlated inputs.
    brian_stdp : BrianSTDPSizes
        Tier 1.
    dog_lif : DogLIFSizes
        Tier 2.
    conversion : ConversionSizes
        Tier 3.

    Each tier reads its own section, named as the tier is in
    :data:`snnlib.tiers.TIERS`: ``getattr(profile, tier.name)``.
    """

    name: ProfileName
    n_train_per_class: int | None
    n_test_per_class: int | None
    n_encode_images: int
    stdp_demo_ms: int
    brian_stdp: BrianSTDPSizes = BrianSTDPSizes()
    dog_lif: DogLIFSizes = DogLIFSizes()
    conversion: ConversionSizes = ConversionSizes()

    def __post_init__(self) -> None:
        if self.name not in ("ci", "book", "full"):
            raise ValueError(f"Profile.name must be one of 'ci', 'book', 'full'; got "
                             f"{self.name!r}.")
        _check_positive("Profile", self)
        for name, kind in (("brian_stdp", BrianSTDPSizes), ("dog_lif", DogLIFSizes),
                           ("conversion", ConversionSizes)):
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"Profile.{name} must be a {kind.__name__}, got "
                                 f"{getattr(self, name)!r}.")


PROFILES: dict[str, Profile] = {
    "ci": Profile("ci", n_train_per_class=10, n_test_per_class=10, n_encode_images=8,
                  stdp_demo_ms=3000,
                  brian_stdp=BrianSTDPSizes(hidden_images=20, layer1_patches=2000,
                                            layer2_patches=256, output_images=20, output_epochs=2,
                                            test_images=20, neurons=20, train_images=20,
                                            readout_images=20, readout_epochs=1),
                  dog_lif=DogLIFSizes(filters=16, train_patches=2000),
                  conversion=ConversionSizes(width=8, train_images=200, epochs=1, snn_images=50,
                                             steps=32, variant_images=20, qcfs_epochs=1,
                                             qcfs_steps=16)),
    "book": Profile("book", n_train_per_class=100, n_test_per_class=100, n_encode_images=64,
                    stdp_demo_ms=40000,
                    brian_stdp=BrianSTDPSizes(hidden_images=1000, layer1_patches=20000,
                                              layer2_patches=5000, output_images=600,
                                              output_epochs=4, test_images=400,
                                              neurons=100, train_images=100,
                                              readout_images=1000, readout_epochs=2),
                    dog_lif=DogLIFSizes(filters=512, train_patches=50_000),
                    conversion=ConversionSizes(width=32, train_images=10_000, epochs=5,
                                               snn_images=500, steps=128, variant_images=100,
                                               qcfs_epochs=2, qcfs_steps=32)),
    "full": Profile("full", n_train_per_class=None, n_test_per_class=None, n_encode_images=1000,
                    stdp_demo_ms=200000,
                    brian_stdp=BrianSTDPSizes(hidden_images=10000, layer1_patches=20000,
                                              layer2_patches=20000, output_images=10000,
                                              output_epochs=10, test_images=None,
                                              neurons=400, train_images=10000,
                                              layer2_train_images=4000, readout_images=5000,
                                              readout_epochs=1),
                    dog_lif=DogLIFSizes(filters=512, train_patches=100_000, mirror_test=True),
                    conversion=ConversionSizes(width=64, train_images=None, epochs=8,
                                               snn_images=None, steps=128, variant_images=500,
                                               qcfs_epochs=2, qcfs_steps=64, design="whitened")),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, or the one ``$SNNLIB_PROFILE`` names (default ``book``).

    Raises
    ------
    ValueError
        For a name that is not ``ci``, ``book`` or ``full``.
    """
    if name is not None and not isinstance(name, str):
        raise TypeError(f"profiles.get_profile: name must be a str (ci, book or full) or None, "
                        f"got {type(name).__name__} {name!r}.")
    source = "argument"
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or DEFAULT_PROFILE
        source = f"${PROFILE_ENV}"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"Unknown profile {name!r} (from {source}); choose one of {', '.join(PROFILES)}."
        )
    return PROFILES[key]


def profile_items(profile: Profile) -> list[tuple[str, object]]:
    """``(dotted name, value)`` of every size of ``profile``, sections flattened
    (``conversion.width``, ...), for printing."""
    if not isinstance(profile, Profile):
        raise TypeError(f"profiles.profile_items: profile must be a Profile, got "
                        f"{type(profile).__name__} {profile!r}.")
    out = []
    for f in fields(profile):
        value = getattr(profile, f.name)
        if _is_section(value):
            out += [(f"{f.name}.{g.name}", getattr(value, g.name)) for g in fields(value)]
        else:
            out.append((f.name, value))
    return out
