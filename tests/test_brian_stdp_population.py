"""The population R-STDP output layer of the convolutional tier 1
(snnlib.tiers.brian_stdp.output; Brian2, numpy code generation, tiny sizes)."""

from __future__ import annotations

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")
b2.BrianLogger.suppress_name("unused_brian_object")

from snnlib.tiers.brian_stdp import output as O  # noqa: E402


def task(n: int, seed: int, n_classes: int = 4, per_class: int = 3):
    """Features where each class raises its own group of features (plus noise): a task
    that reward alone can teach, and that a linear readout solves."""
    return O.toy_features(n, seed=seed, n_classes=n_classes, per_class=per_class)


def params(**kwargs) -> O.PopulationParams:
    base = dict(n_classes=4, neurons_per_class=3, steps=10, eval_steps=20, epochs=3,
                eta=0.05, codegen_target="numpy")
    base.update(kwargs)
    return O.PopulationParams(**base)


def test_reward_teaches_the_populations_their_classes():
    f, y = task(240, seed=0)
    fv, yv = task(100, seed=1)
    readout = O.PopulationReadout(params(), f.shape[1], seed=0)
    history = readout.fit(f, y, validation=(fv, yv))
    assert len(history["train_accuracy"]) == 3 and len(history["validation_accuracy"]) == 3
    assert history["validation_accuracy"][-1] >= 0.8  # chance is 0.25
    pred = readout.predict(fv)
    assert pred.shape == (100,) and np.mean(pred == yv) >= 0.8
    # each population's weights now prefer its own class's ON inputs
    w = readout.weights()  # (neurons, inputs): ON inputs first
    for c in range(4):
        mine = w[c * 3:(c + 1) * 3, c * 3:(c + 1) * 3].mean()
        others = np.delete(w[c * 3:(c + 1) * 3, :12], np.s_[c * 3:(c + 1) * 3], axis=1).mean()
        assert mine > others


def test_without_reward_there_is_no_learning_and_the_same_seed_repeats():
    f, y = task(80, seed=2)
    a = O.PopulationReadout(params(eta=0.0, epochs=1), f.shape[1], seed=3)
    a.fit(f, y)
    w0 = a.weights()
    a.fit(f, y)  # continues: eta 0, so the weights stay where they started
    np.testing.assert_array_equal(a.weights(), w0)
    b = O.PopulationReadout(params(eta=0.0, epochs=1), f.shape[1], seed=3)
    b.fit(f, y)
    np.testing.assert_array_equal(b.weights(), w0)
    np.testing.assert_array_equal(a.predict(f[:20], seed=5), a.predict(f[:20], seed=5))


def test_homeostasis_shares_the_decisions_among_the_classes():
    """With learning off (eta 0) the decision homeostasis alone spreads the decisions:
    no class takes more than about half of them."""
    f, y = task(200, seed=4)
    readout = O.PopulationReadout(params(eta=0.0, epochs=2, decision_eta_mv=1.0),
                                  f.shape[1], seed=0)
    readout.fit(f, y)
    pred = readout.predict(f)
    assert np.bincount(pred[pred >= 0], minlength=4).max() <= 0.5 * len(pred)


def test_the_intensities_are_on_off_standardised_features():
    f, y = task(50, seed=5)
    readout = O.PopulationReadout(params(epochs=1), f.shape[1], seed=0)
    readout.fit(f, y)
    u = readout.intensities(f)
    assert u.shape == (50, 24) and u.min() >= 0 and u.max() <= 1
    assert np.all(u[:, :12] * u[:, 12:] == 0)  # a feature is above or below its mean
    z = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-6)
    np.testing.assert_allclose(u[:, :12] - u[:, 12:], np.clip(z, -3, 3) / 3, atol=1e-9)


@pytest.mark.parametrize("bad, message", [
    (dict(neurons_per_class=0), "neurons_per_class must be a positive integer"),
    (dict(eta=float("nan")), "eta must be a finite number >= 0"),
    (dict(fire_target=0.0), "fire_target must be in"),
    (dict(eta_decay=1.5), "eta_decay must be in"),
    (dict(max_rate_hz=2000.0), "more than one spike per step"),
    (dict(baseline=1), "baseline must be True or False"),
])
def test_bad_parameters_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        params(**bad)


def test_bad_features_and_labels_are_refused():
    f, y = task(20, seed=6)
    readout = O.PopulationReadout(params(epochs=1), f.shape[1], seed=0)
    with pytest.raises(ValueError, match="has not learned yet"):
        readout.predict(f)
    with pytest.raises(ValueError, match=r"features must be \(N >= 1, 12\)"):
        readout.fit(f[:, :5], y)
    with pytest.raises(ValueError, match=r"labels must be 20 integers in \[0, 4\)"):
        readout.fit(f, y + 4)
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        readout.fit(bad, y)
