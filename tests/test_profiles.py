from __future__ import annotations

import pytest

import snnlib as sl
from snnlib import profiles as P


def test_default_profile_is_book(monkeypatch):
    monkeypatch.delenv(P.PROFILE_ENV, raising=False)
    assert sl.profiles.get_profile().name == "book"


def test_profile_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv(P.PROFILE_ENV, " CI ")
    assert sl.profiles.get_profile().name == "ci"


def test_unknown_profile_names_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv(P.PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match=r"Unknown profile 'huge' \(from \$SNNLIB_PROFILE\); "
                                         r"choose one of ci, book, full"):
        sl.profiles.get_profile()


def test_profiles_grow_from_ci_to_full():
    ci, book, full = (P.PROFILES[k] for k in ("ci", "book", "full"))
    assert ci.n_train_per_class < book.n_train_per_class and full.n_train_per_class is None
    assert ci.n_test_per_class < book.n_test_per_class and full.n_test_per_class is None
    assert ci.n_encode_images < book.n_encode_images < full.n_encode_images
    assert ci.stdp_demo_ms < book.stdp_demo_ms < full.stdp_demo_ms
    assert ci.tier1_neurons < book.tier1_neurons < full.tier1_neurons
    assert full.tier1_neurons >= 400 and full.tier1_train_images >= 10000  # issue 4's full size
    assert full.tier1_layer2_train_images <= full.tier1_train_images


def test_profile_values_are_validated():
    with pytest.raises(ValueError, match="n_encode_images must be a positive integer"):
        P.Profile("ci", n_train_per_class=1, n_test_per_class=1, n_encode_images=0,
                  stdp_demo_ms=1, tier1_neurons=1, tier1_train_images=1)


def test_tier1_readout_sizes_grow_and_cover_layer_2s_images():
    ci, book, full = (P.PROFILES[k] for k in ("ci", "book", "full"))
    assert ci.tier1_readout_images < book.tier1_readout_images <= full.tier1_readout_images
    assert full.tier1_readout_images >= full.tier1_layer2_train_images
    with pytest.raises(ValueError, match="tier1_readout_epochs must be a positive integer"):
        P.Profile("ci", n_train_per_class=1, n_test_per_class=1, n_encode_images=1,
                  stdp_demo_ms=1, tier1_neurons=1, tier1_train_images=1, tier1_readout_epochs=0)


def test_layer_2_cannot_train_on_more_images_than_layer_1():
    with pytest.raises(ValueError, match="must not exceed tier1_train_images"):
        P.Profile("ci", n_train_per_class=1, n_test_per_class=1, n_encode_images=1,
                  stdp_demo_ms=1, tier1_neurons=1, tier1_train_images=10,
                  tier1_layer2_train_images=20)
