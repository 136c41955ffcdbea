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


def test_a_wrong_decision_teaches_nothing_without_a_reward_prediction():
    """With no prediction (r_hat = 0) a wrong decision's reward error r - r_hat is 0: the
    weights move after right decisions only."""
    f, y = task(80, seed=2)
    readout = O.PopulationReadout(params(prediction="none", epochs=1), f.shape[1], seed=3)
    reward, seen = readout._reward, []

    def spy(counts, decision, label):
        w0 = readout.w.copy()
        reward(counts, decision, label)
        if decision >= 0:
            seen.append((decision == label, not np.array_equal(readout.w, w0)))

    readout._reward = spy
    readout.fit(f, y)
    right = [moved for ok, moved in seen if ok]
    wrong = [moved for ok, moved in seen if not ok]
    assert right and wrong  # both kinds of decision happened
    assert any(right) and not any(wrong)


def test_without_a_learning_rate_nothing_learns_and_the_same_seed_repeats():
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
    """With learning off (eta 0) the decision homeostasis alone spreads the decisions
    (made as when deciding, by the most spikes): no class takes more than about half."""
    f, y = task(200, seed=4)
    readout = O.PopulationReadout(params(eta=0.0, epochs=2, decision_eta_mv=1.0,
                                         decide_by="most_spikes", tonic_input=False,
                                         fire_target=0.2), f.shape[1], seed=0)
    readout.fit(f, y)
    pred = readout.predict(f)
    decided = pred[pred >= 0]
    assert len(decided) >= 0.8 * len(pred)  # most images get a decision
    assert np.bincount(decided, minlength=4).max() <= 0.5 * len(decided)


def test_the_intensities_are_on_off_standardised_features():
    f, y = task(50, seed=5)
    readout = O.PopulationReadout(params(epochs=1), f.shape[1], seed=0)
    readout.fit(f, y)
    u = readout.intensities(f)
    assert u.shape == (50, 25) and u.min() >= 0 and u.max() <= 1
    np.testing.assert_array_equal(u[:, 24], 1.0)  # the tonic input
    assert O.PopulationReadout(params(tonic_input=False), 12, seed=0).n_in == 24
    assert np.all(u[:, :12] * u[:, 12:24] == 0)  # a feature is above or below its mean
    z = (f - f.mean(axis=0)) / (f.std(axis=0) + 1e-6)
    np.testing.assert_allclose(u[:, :12] - u[:, 12:24], np.clip(z, -3, 3) / 3, atol=1e-9)


@pytest.mark.parametrize("bad, message", [
    (dict(neurons_per_class=0), "neurons_per_class must be a positive integer"),
    (dict(eta=float("nan")), "eta must be a finite number >= 0"),
    (dict(fire_target=0.0), "fire_target must be in"),
    (dict(eta_decay=1.5), "eta_decay must be in"),
    (dict(max_rate_hz=2000.0), "more than one spike per step"),
    (dict(conserve=1), "conserve must be True or False"),
    (dict(prediction="mean"), "prediction must be one of"),
    (dict(decide_by="last"), "decide_by must be one of"),
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


def _one_image(**kwargs):
    """One learning image after a first pass; returns the readout, the weights before it and
    its label. The label is a wrong one: the layer, sure of the right class, is punished."""
    f, y = task(40, seed=7)
    readout = O.PopulationReadout(params(epochs=1, **kwargs), f.shape[1], seed=1)
    readout.fit(f, y)  # a first pass sets the gain control and the weights
    w0 = readout.w.copy()
    label = (y[:1] + 1) % 4
    reward, seen = readout._reward, {}

    def spy(counts, decision, label):  # the eligibility when the reward arrives
        seen["elig"] = np.asarray(readout.syn.elig).reshape(readout.n_in, -1).copy()
        reward(counts, decision, label)

    readout._reward = spy
    readout.fit(f[:1], label)
    return readout, w0, int(label[0]), seen["elig"]


def test_the_eligibility_counts_each_inputs_earlier_spikes_at_each_output_spike():
    """e_ij = sum over neuron j's spikes (steps t) of input i's spikes at steps s < t, within
    the image, from spike trains recorded in the same run; the inputs are Poisson at their
    rates; with learning off the eligibility is left alone."""
    f, y = task(40, seed=7)
    readout = O.PopulationReadout(params(epochs=1, steps=30), f.shape[1], seed=1)
    readout.fit(f, y)
    inputs, outputs = b2.SpikeMonitor(readout.inputs), b2.SpikeMonitor(readout.neurons)
    readout.net.add(inputs, outputs)
    reward, seen = readout._reward, {}

    def spy(counts, decision, label):  # the eligibility when the reward arrives
        seen["elig"] = readout._elig_now.reshape(readout.n_in, -1).copy()
        reward(counts, decision, label)

    readout._reward = spy
    start = int(round(float(readout.net.t / b2.ms) / readout.p.dt_ms))
    readout.fit(f[:1], y[:1])
    e = seen["elig"]

    def steps(monitor):  # (neuron, step within the image) of the image's spikes
        t = np.rint(np.asarray(monitor.t / b2.ms) / readout.p.dt_ms).astype(int) - start
        keep = t < readout.p.steps  # the run's last step starts by closing the image
        return np.asarray(monitor.i)[keep], t[keep]

    (i_in, s_in), (j_out, t_out) = steps(inputs), steps(outputs)
    expected = np.zeros_like(e)
    for j, t in zip(j_out, t_out):
        np.add.at(expected[:, j], i_in[s_in < t], 1.0)
    assert len(t_out) > 0 and expected.max() > 0
    np.testing.assert_array_equal(e, expected)
    rates = readout.intensities(f[:1])[0] * readout.p.max_rate_hz
    per_input = np.bincount(i_in, minlength=readout.n_in)
    mean = rates.sum() * readout.p.steps * readout.p.dt_ms / 1000  # Poisson: mean = rate x T
    assert abs(per_input.sum() - mean) < 5 * np.sqrt(mean)
    assert per_input[rates == 0].sum() == 0
    before = readout._elig_now.copy()  # the run's closing step may have added to e
    readout.predict(f[:3])
    np.testing.assert_array_equal(readout._elig_now, before)


@pytest.mark.parametrize("conserve", [False, True])
def test_one_update_is_the_documented_rule(conserve):
    """dw_ij = eta (r - r_hat) e_ij / max(n_j, 1) for the deciding population, made zero-sum
    over each neuron's inputs and then over each input's neurons when ``conserve`` is on."""
    readout, w0, label, e = _one_image(conserve=conserve, eta=0.07)
    counts, decision = readout.last_counts[0], int(readout._decisions[0])
    assert decision >= 0
    r = 1.0 if decision == label else 0.0
    deciders = readout.klass == decision
    expected = np.zeros_like(w0)
    expected[:, deciders] = 0.07 * (r - readout.predicted_reward(counts, decision)) \
        * e[:, deciders] / np.maximum(counts[deciders], 1)
    if conserve:
        expected[:, deciders] -= expected[:, deciders].mean(axis=0)
        expected -= expected.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(readout.w - w0, expected, atol=1e-12)
    assert np.abs(expected).max() > 0


@pytest.mark.parametrize("conserve", [False, True])
def test_the_competitors_learn_the_other_way_by_their_share_of_the_spikes(conserve):
    """With competitors = kappa, every other population c that fired gets
    dw_ij = -kappa eta (r - r_hat) s_c e_ij / n_j (s_c: its share of the output spikes)."""
    readout, w0, label, e = _one_image(conserve=conserve, eta=0.07, competitors=0.5,
                                       inhibition_mv=0.0, init_drive=3.0)  # several fire
    counts, decision = readout.last_counts[0], int(readout._decisions[0])
    delta = (1.0 if decision == label else 0.0) - readout.predicted_reward(counts, decision)
    deciders = readout.klass == decision
    pop = np.bincount(readout.klass, weights=counts, minlength=4)
    others = ~deciders & (counts > 0)
    assert others.any(), "vacuous: no other population fired"
    expected = np.zeros_like(w0)
    expected[:, deciders] = 0.07 * delta * e[:, deciders] / np.maximum(counts[deciders], 1)
    share = (pop / pop.sum())[readout.klass]
    expected[:, others] = -0.5 * 0.07 * delta * share[others] * e[:, others] / counts[others]
    if conserve:
        learners = deciders | others
        expected[:, learners] -= expected[:, learners].mean(axis=0)
        expected -= expected.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(readout.w - w0, expected, atol=1e-12)
    if not conserve:  # the competitors' active synapses move against the deciders'
        assert delta != 0
        assert np.all(np.sign(expected[:, others][e[:, others] > 0]) == -np.sign(delta))


def test_conservation_keeps_every_neurons_and_every_inputs_summed_weight():
    f, y = task(120, seed=8)
    readout = O.PopulationReadout(params(epochs=1, eta=0.2), f.shape[1], seed=2)
    readout.fit(f[:1], y[:1])
    w0 = readout.w.copy()
    readout.fit(f, y)
    assert np.abs(readout.w - w0).max() > 1e-3  # the weights moved
    np.testing.assert_allclose(readout.w.sum(axis=0), w0.sum(axis=0), atol=1e-9)
    np.testing.assert_allclose(readout.w.sum(axis=1), w0.sum(axis=1), atol=1e-9)


def test_the_reward_prediction():
    readout = O.PopulationReadout(params(), 12, seed=0)  # 4 classes x 3 neurons
    counts = np.array([3, 1, 0, 0, 2, 0, 1, 0, 0, 0, 0, 1.0])  # populations: 4, 2, 1, 1
    assert readout.predicted_reward(counts, 0) == pytest.approx(3 / 7)  # (4 - 1) / (8 - 1)
    assert readout.predicted_reward(counts, 2) == pytest.approx(0 / 7)
    assert readout.predicted_reward(np.eye(12)[4], 1) == pytest.approx(1 / 4)  # one spike
    # with confidence_power n: the populations' counts after the first spike, to the power n,
    # normalised: (4 - 1)^2 / ((4 - 1)^2 + 2^2 + 1^2 + 1^2)
    sharp = O.PopulationReadout(params(confidence_power=2.0), 12, seed=0)
    assert sharp.predicted_reward(counts, 0) == pytest.approx(9 / 15)
    # population 1 decides: (2 - 1)^2 / (4^2 + 1^2 + 1^2 + 1^2), below its share 1 / 7
    assert sharp.predicted_reward(counts, 1) == pytest.approx(1 / 19)
    assert readout.predicted_reward(counts, 1) == pytest.approx(1 / 7)
    assert sharp.predicted_reward(np.eye(12)[4], 1) == pytest.approx(1 / 4)  # one spike
    running = O.PopulationReadout(params(prediction="running_mean"), 12, seed=0)
    assert running.predicted_reward(counts, 0) == 0.0  # a new layer's running mean
    running.reward_baseline = 0.3
    assert running.predicted_reward(counts, 0) == 0.3
    assert O.PopulationReadout(params(prediction="none"), 12, seed=0) \
        .predicted_reward(counts, 0) == 0.0


def test_while_learning_the_first_spike_decides():
    """The deciding population is one whose neuron fired first; ``first_step`` is the step of
    each neuron's first spike in the image (checked against a spike monitor)."""
    f, y = task(30, seed=9)
    readout = O.PopulationReadout(params(epochs=1, eta=0.0), f.shape[1], seed=3)
    readout.fit(f, y)
    monitor = b2.SpikeMonitor(readout.neurons)
    readout.net.add(monitor)
    readout.fit(f[:1], y[:1])
    steps = np.round(np.asarray(monitor.t / b2.ms) / readout.p.dt_ms).astype(int)
    idx = np.asarray(monitor.i)
    assert len(idx) > 1
    fired = readout.last_counts[0] > 0
    first = np.asarray(readout.neurons.first_step)
    for j in np.flatnonzero(fired):
        assert first[j] == steps[idx == j].min()
    earliest = first[fired].min()
    assert readout._decisions[0] in set(readout.klass[fired & (first == earliest)])
