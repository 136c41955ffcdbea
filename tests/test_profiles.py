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
    t1 = [p.brian_stdp for p in (ci, book, full)]
    assert t1[0].neurons < t1[1].neurons < t1[2].neurons
    assert t1[2].neurons >= 400 and t1[2].train_images >= 10000
    assert t1[2].layer2_train_images <= t1[2].train_images
    for name in ("hidden_images", "layer1_patches", "output_images", "output_epochs"):
        assert getattr(t1[0], name) <= getattr(t1[1], name) <= getattr(t1[2], name), name
    assert t1[2].test_images is None and t1[2].output_images >= 5000  # all 10,000 test images
    with pytest.raises(ValueError, match="brian_stdp.output_images must be a positive integer"):
        P.BrianSTDPSizes(output_images=0)
    t3 = [p.conversion for p in (ci, book, full)]
    assert t3[0].width < t3[1].width < t3[2].width and t3[2].train_images is None


def test_every_tier_has_its_section_in_every_profile():
    from snnlib.tiers import TIERS

    for profile in P.PROFILES.values():
        for name in TIERS:
            assert getattr(profile, name) is not None, (profile.name, name)
    assert [k for k, _ in P.profile_items(P.PROFILES["ci"])][-3:] == [
        "conversion.qcfs_epochs", "conversion.qcfs_steps", "conversion.design"]


def test_profile_values_are_validated():
    with pytest.raises(ValueError, match="Profile.n_encode_images must be a positive integer"):
        P.Profile("ci", n_train_per_class=1, n_test_per_class=1, n_encode_images=0,
                  stdp_demo_ms=1)
    with pytest.raises(ValueError, match="Profile.conversion.width must be a positive integer"):
        P.ConversionSizes(width=0)
    with pytest.raises(ValueError, match="Profile.conversion.design must be 'vgg' or 'whitened'"):
        P.ConversionSizes(design="resnet")
    with pytest.raises(ValueError, match="Profile.dog_lif.filters must be a positive integer"):
        P.DogLIFSizes(filters=True)
    with pytest.raises(ValueError, match="Profile.conversion must be a ConversionSizes"):
        P.Profile("ci", n_train_per_class=1, n_test_per_class=1, n_encode_images=1,
                  stdp_demo_ms=1, conversion={"width": 8})


def test_tier1_readout_sizes_grow_and_cover_layer_2s_images():
    ci, book, full = (P.PROFILES[k].brian_stdp for k in ("ci", "book", "full"))
    assert ci.readout_images < book.readout_images <= full.readout_images
    assert full.readout_images >= full.layer2_train_images
    with pytest.raises(ValueError, match="brian_stdp.readout_epochs must be a positive integer"):
        P.BrianSTDPSizes(neurons=1, train_images=1, readout_epochs=0)


def test_layer_2_cannot_train_on_more_images_than_layer_1():
    with pytest.raises(ValueError, match="must not exceed train_images"):
        P.BrianSTDPSizes(neurons=1, train_images=10, layer2_train_images=20)
