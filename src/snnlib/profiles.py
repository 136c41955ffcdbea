"""Run sizes of the book, in one place: ``ci``, ``book`` and ``full``.

Every chapter and the command line read the profile from the environment
variable ``SNNLIB_PROFILE`` (default ``book``):

- ``ci``: tiny; every notebook runs in well under a minute (nbval, CI).
- ``book``: what the rendered book shows; all chapters together execute in
  about 20 minutes on 2 cores.
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

__all__ = ["PROFILE_ENV", "PROFILES", "Profile", "get_profile"]

PROFILE_ENV = "SNNLIB_PROFILE"
DEFAULT_PROFILE = "book"
ProfileName = Literal["ci", "book", "full"]


@dataclass(frozen=True)
class Profile:
    """How big a run is.

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
    tier1_neurons : int
        Tier 1: excitatory neurons in hidden layer 1 (layer 2 has half).
    tier1_train_images : int
        Tier 1: training images of hidden layer 1 (class-balanced).
    tier1_layer2_train_images : int or None
        Tier 1: training images of hidden layer 2, the first of layer 1's
        (classes interleaved at random, so close to balanced, not exactly);
        None: all of them. (Layer 2 trains at about a third of layer 1's
        speed: it re-presents the images it stays silent for.)
    tier1_readout_images : int
        Tier 1: training images of the R-STDP output layer and of the
        logistic-regression baselines: the hidden layers' images first (when
        fewer, the first of them: close to class-balanced, not exactly),
        then class-balanced others.
    tier1_readout_epochs : int
        Tier 1: passes of the output layer over its training images.
    tier2_filters : int
        Tier 2: neurons per position of the convolutional STDP layer.
    tier2_train_patches : int
        Tier 2: random image patches the STDP layer learns from.
    tier3_width : int
        Tier 3: channels of the CNN's first convolutions (the six
        convolutions have width, width, 2 width, 2 width, 4 width, 4 width).
    tier3_train_images : int or None
        Tier 3: CNN training images (class-balanced); None: all 50,000.
    tier3_epochs : int
        Tier 3: CNN training epochs.
    tier3_snn_images : int or None
        Tier 3: test images the converted network is simulated on (the first
        of the profile's test images); None: all of them.
    tier3_steps : int
        Tier 3: the longest simulation (steps); accuracy is read at every
        power of two up to it.
    tier3_variant_images : int
        Tier 3: test images for the comparisons of normalisation and input
        coding (the first of the simulated ones).
    tier3_qcfs_epochs : int
        Tier 3: epochs of quantisation-aware fine-tuning (clip-floor-shift
        activations) that start from the trained CNN.
    tier3_qcfs_steps : int
        Tier 3: the longest simulation of the fine-tuned network (steps), on
        the same test images as the tier's.
    """

    name: ProfileName
    n_train_per_class: int | None
    n_test_per_class: int | None
    n_encode_images: int
    stdp_demo_ms: int
    tier1_neurons: int
    tier1_train_images: int
    tier1_layer2_train_images: int | None = None
    tier1_readout_images: int = 20
    tier1_readout_epochs: int = 1
    tier2_filters: int = 16
    tier2_train_patches: int = 2000
    tier3_width: int = 8
    tier3_train_images: int | None = 200
    tier3_epochs: int = 1
    tier3_snn_images: int | None = 50
    tier3_steps: int = 32
    tier3_variant_images: int = 20
    tier3_qcfs_epochs: int = 1
    tier3_qcfs_steps: int = 16

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name" or value is None:
                continue
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"Profile.{f.name} must be a positive integer or None, got {value!r}.")
        if (self.tier1_layer2_train_images or 0) > self.tier1_train_images:
            raise ValueError(f"Profile.tier1_layer2_train_images ({self.tier1_layer2_train_images}) "
                             f"must not exceed tier1_train_images ({self.tier1_train_images}): "
                             "layer 2 trains on the first of layer 1's images.")
        if self.tier3_train_images is not None and self.tier3_train_images < 10:
            raise ValueError(f"Profile.tier3_train_images must be None or at least 10 (one per "
                             f"class), got {self.tier3_train_images!r}.")


PROFILES: dict[str, Profile] = {
    "ci": Profile("ci", n_train_per_class=10, n_test_per_class=10, n_encode_images=8,
                  stdp_demo_ms=3000, tier1_neurons=20, tier1_train_images=20,
                  tier1_readout_images=20, tier1_readout_epochs=1,
                  tier2_filters=16, tier2_train_patches=2000, tier3_width=8,
                  tier3_train_images=200, tier3_epochs=1, tier3_snn_images=50, tier3_steps=32,
                  tier3_variant_images=20, tier3_qcfs_epochs=1,
                  tier3_qcfs_steps=16),
    "book": Profile("book", n_train_per_class=100, n_test_per_class=100, n_encode_images=64,
                    stdp_demo_ms=40000, tier1_neurons=100, tier1_train_images=400,
                    tier1_readout_images=1000, tier1_readout_epochs=2,
                    tier2_filters=256, tier2_train_patches=100_000, tier3_width=32,
                    tier3_train_images=10_000, tier3_epochs=8, tier3_snn_images=500,
                    tier3_steps=128, tier3_variant_images=100, tier3_qcfs_epochs=2,
                    tier3_qcfs_steps=32),
    "full": Profile("full", n_train_per_class=None, n_test_per_class=None, n_encode_images=1000,
                    stdp_demo_ms=200000, tier1_neurons=400, tier1_train_images=10000,
                    tier1_layer2_train_images=4000, tier1_readout_images=5000,
                    tier1_readout_epochs=1, tier2_filters=256, tier2_train_patches=100_000,
                    tier3_width=64, tier3_train_images=None, tier3_epochs=15,
                    tier3_snn_images=None, tier3_steps=256, tier3_variant_images=1000,
                    tier3_qcfs_epochs=3, tier3_qcfs_steps=32),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, or the one ``$SNNLIB_PROFILE`` names (default ``book``).

    Raises
    ------
    ValueError
        For a name that is not ``ci``, ``book`` or ``full``.
    """
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
