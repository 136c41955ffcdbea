"""snnlib.tiers.brian_stdp, part 2: the frozen replicas that record the hidden
layers' spikes, and the R-STDP output layer (numpy code generation, tiny sizes)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")
b2.BrianLogger.suppress_name("unused_brian_object")

from snnlib import encoding as E  # noqa: E402
from snnlib.tiers import brian_stdp as T  # noqa: E402

ENC = E.PoissonParams(max_rate_hz=63.75, duration_ms=50.0, dt_ms=0.5)


def small() -> T.BrianSTDPParams:
    return T.BrianSTDPParams(
        encoding=ENC, layer1=T.LayerParams(n_neurons=10),
        layer2=T.LayerParams(n_neurons=6, weight_sum_per_input=3.0,
                             stdp=replace(T.DC_STDP, w_max=10.0)),
        chunk_images=3, codegen_target="numpy")


def test_frozen_replicas_count_like_the_network_and_their_trains_match_their_counts():
    images = np.random.default_rng(1).random((12, 32, 32)).astype(np.float32)
    net = T.BrianSTDPNetwork(small(), seed=0)
    net.fit(images[:4], layer=1, progress=False)
    state = net.state_dict()
    reference = net.spike_counts(images)
    rates = {}
    for replicas in (1, 5):  # 5: the last group of images is padded with blank ones
        out = T.FrozenReplicas(small(), state, replicas=replicas).run(images, seed=3)
        assert [c.shape for c in out["counts"]] == [(12, 10), (12, 6)]
        trains = out["trains"]
        again = np.zeros((12, 6), dtype=np.int64)
        np.add.at(again, (trains["image"], trains["neuron"]), 1)
        np.testing.assert_array_equal(again, out["counts"][1])
        assert trains["t_ms"].min() >= 0 and trains["t_ms"].max() < ENC.duration_ms
        assert np.all(np.diff(trains["image"]) >= 0)
        rates[replicas] = out["counts"][0].mean()
    # the same network: mean layer-1 counts agree within Poisson noise (hundreds of spikes)
    ref = reference[0].mean()
    assert ref > 1, "vacuous: layer 1 barely fired"
    for r in rates.values():
        assert abs(r - ref) < 0.3 * ref
    # frozen: learning left the network as it was
    for key, value in net.state_dict().items():
        np.testing.assert_array_equal(value, state[key])


def test_frozen_replicas_refuse_a_state_that_does_not_fit():
    with pytest.raises(ValueError, match="lacks"):
        T.FrozenReplicas(small(), {"w1": np.zeros(10240)}, replicas=2)
    with pytest.raises(ValueError, match="replicas"):
        T.FrozenReplicas(small(), {}, replicas=0)


def test_decide_takes_the_most_active_class_ties_to_the_first_spike():
    counts = np.array([[0, 3, 1], [2, 2, 0], [2, 2, 0], [0, 0, 0]])
    first = np.array([[np.inf, 5, 1], [9, 4, np.inf], [3, 4, np.inf], [np.inf] * 3])
    np.testing.assert_array_equal(T.decide(counts, first), [1, 1, 0, -1])


def test_select_trains_renumbers_the_chosen_images():
    trains = {"image": np.array([0, 0, 1, 3, 3, 3]), "neuron": np.arange(6),
              "t_ms": np.arange(6) * 1.0}
    sel = T.select_trains(trains, np.array([3, 1, 2]))
    np.testing.assert_array_equal(sel["image"], [0, 0, 0, 1])
    np.testing.assert_array_equal(sel["neuron"], [3, 4, 5, 2])


def toy_task(n, seed, n_classes=4, duration_ms=100.0):
    """Class c: inputs 5c..5c+4 fire at 100 Hz, the others at 5 Hz."""
    return T.toy_spike_task(n, seed=seed, n_classes=n_classes, duration_ms=duration_ms)


def test_toy_task_rates_are_those_asked_for():
    trains, labels = T.toy_spike_task(400, seed=0, n_classes=4, duration_ms=100.0)
    counts = np.zeros((400, 20))
    np.add.at(counts, (trains["image"], trains["neuron"]), 1)
    own = np.arange(20)[None, :] // 5 == labels[:, None]
    # Poisson means: 100 Hz x 0.1 s = 10 spikes; 5 Hz x 0.1 s = 0.5 (std of the means ~0.07, ~0.01)
    assert counts[own].mean() == pytest.approx(10.0, abs=0.3)
    assert counts[~own].mean() == pytest.approx(0.5, abs=0.06)
    assert np.bincount(labels, minlength=4).min() > 70
    with pytest.raises(ValueError, match="n_images must be a positive integer"):
        T.toy_spike_task(0, seed=0)
    with pytest.raises(ValueError, match="rate_hz"):
        T.toy_spike_task(3, seed=0, rate_hz=3000.0)  # 1.5 spikes per 0.5 ms step


def toy_params(**kwargs):
    return replace(T.OutputParams(), n_classes=4, neurons_per_class=2, chunk_images=20, **kwargs)


def test_rstdp_readout_learns_a_task_that_rewards_can_teach():
    train, train_labels = toy_task(100, seed=1)
    test, test_labels = toy_task(40, seed=2)
    readout = T.RSTDPReadout(toy_params(), n_inputs=20, duration_ms=100.0, seed=0,
                             codegen_target="numpy")
    before = np.mean(readout.predict(test, 40)["decision"] == test_labels)
    result = readout.fit(train, train_labels, progress=False)
    after = readout.predict(test, 40)
    accuracy = np.mean(after["decision"] == test_labels)
    assert before < 0.5
    assert accuracy > 0.9, (before, accuracy, [h["accuracy"] for h in result["history"]])
    assert after["counts"].shape == (40, 8)
    # weights stay normalised (a neuron with weights clipped at w_max falls short)
    sums, w = readout.weights().sum(axis=1), readout.weights()
    full = (w < 15.0).all(axis=1)
    assert full.any()
    np.testing.assert_allclose(sums[full], 3.0 * 20, rtol=1e-6)
    assert np.all(sums <= 3.0 * 20 * (1 + 1e-9)) and np.all(sums > 0.5 * 3.0 * 20)
    assert len(result["history"]) == 5 and result["history"][-1]["images"] == 100


def test_without_reward_the_readout_does_not_learn():
    train, train_labels = toy_task(40, seed=1)
    frozen = replace(toy_params(), rstdp=replace(T.OutputParams().rstdp, eta=0.0))
    readout = T.RSTDPReadout(frozen, n_inputs=20, duration_ms=100.0, seed=0, codegen_target="numpy")
    before = readout.weights()
    readout.fit(train, train_labels, progress=False)
    np.testing.assert_allclose(readout.weights(), before, rtol=1e-12)


def test_a_killed_readout_resumes_to_the_same_weights(tmp_path):
    train, labels = toy_task(60, seed=1)

    def fresh():
        return T.RSTDPReadout(toy_params(), n_inputs=20, duration_ms=100.0, seed=0,
                              codegen_target="numpy")

    whole = fresh()
    whole.fit(train, labels, epochs=2, progress=False)

    def kill(readout, position):
        if position == 60:
            raise T.TrainingInterrupted

    ckpt = tmp_path / "output.npz"
    with pytest.raises(T.TrainingInterrupted):
        fresh().fit(train, labels, epochs=2, checkpoint=ckpt, progress=False, on_chunk=kill)
    resumed = fresh()
    result = resumed.fit(train, labels, epochs=2, checkpoint=ckpt, progress=False)
    assert result["resumed_from"] == 60 and result["images"] == 120
    # the same spikes, decisions and rewards; only the clock differs (the resumed
    # network starts at t = 0), which moves the last bits of the trace decays
    np.testing.assert_allclose(resumed.weights(), whole.weights(), rtol=1e-9, atol=1e-9)
    assert not np.allclose(resumed.weights(), fresh().weights())
    with pytest.raises(ValueError, match="delete it"):
        fresh().fit(train, labels, epochs=3, checkpoint=ckpt, progress=False)


def test_readout_refuses_bad_labels():
    train, labels = toy_task(10, seed=1)
    readout = T.RSTDPReadout(toy_params(), n_inputs=20, duration_ms=100.0, seed=0,
                             codegen_target="numpy")
    with pytest.raises(ValueError, match="labels must lie"):
        readout.fit(train, labels + 4, progress=False)
    with pytest.raises(ValueError, match="only 5 labels"):
        readout.fit(train, labels[:5], progress=False)
    with pytest.raises(ValueError, match="weight_sum_per_input"):
        replace(T.OutputParams(), weight_sum_per_input=100.0)


def test_readout_training_images_start_with_the_hidden_layers_and_stay_balanced():
    labels = np.repeat(np.arange(10), 30)
    hidden, readout = T.readout_training_indices(labels, 40, 100, seed=5)
    assert len(hidden) == 40 and len(readout) == 100
    np.testing.assert_array_equal(readout[:40], hidden)
    assert len(set(readout.tolist())) == 100  # the extra images are new ones
    np.testing.assert_array_equal(np.bincount(labels[readout]), np.full(10, 10))
    again = T.readout_training_indices(labels, 40, 100, seed=5)
    np.testing.assert_array_equal(again[1], readout)
    _, fewer = T.readout_training_indices(labels, 40, 20, seed=5)
    np.testing.assert_array_equal(fewer, hidden[:20])


def test_initial_state_is_the_untrained_network():
    params = small()
    net = T.BrianSTDPNetwork(params, seed=11)
    state = T.initial_state(params, 11)
    for key, value in net.state_dict().items():
        np.testing.assert_allclose(state[key], value, rtol=1e-12, atol=0)


def test_synaptic_events_count_spikes_times_fan_out():
    params = small()  # 10 then 6 neurons
    x = np.full((2, 32, 32), 0.5, dtype=np.float32)
    # layer 1: 2 and 6 spikes (mean 4); layer 2: 2 and 0 (mean 1)
    hidden = [np.array([[1, 1], [3, 3]]), np.array([[2], [0]])]
    output = np.zeros((2, 4))
    expected_input = 1024 * 0.5 * 63.75 * 0.05  # expected input spikes per image
    expected = expected_input * 10 + 4 * 6 + 1 * 4
    assert T.synaptic_events(x, hidden, output, params) == pytest.approx(expected)


def test_frozen_replicas_boost_silent_images_boundedly():
    dim = np.full((6, 32, 32), 0.2, dtype=np.float32)  # layer 2 often silent in 50 ms
    net = T.BrianSTDPNetwork(small(), seed=0)
    frozen = T.FrozenReplicas(small(), net.state_dict(), replicas=2)
    plain = frozen.run(dim, seed=1, boost=False)
    boosted = frozen.run(dim, seed=1)  # the same first showing (same seed), then retries
    silent = plain["counts"][1].sum(axis=1) < small().min_spikes
    assert silent.any(), "vacuous: no silent image to boost"
    assert plain["boosted"] == 0 and boosted["boosted"] == silent.sum()
    assert 0 <= boosted["silent_after_boosts"] <= silent.sum()  # bounded: it returned
    for layer in (0, 1):
        np.testing.assert_array_equal(boosted["counts"][layer][~silent], plain["counts"][layer][~silent])
    # shown again with more input: layer 1 fires more for them
    assert boosted["counts"][0][silent].sum() > plain["counts"][0][silent].sum()
    again = np.zeros((6, 6), dtype=np.int64)
    np.add.at(again, (boosted["trains"]["image"], boosted["trains"]["neuron"]), 1)
    np.testing.assert_array_equal(again, boosted["counts"][1])
    # every layer's spikes are those of the last showing too
    every = frozen.run(dim, seed=1, every_layer=True)
    assert every["boosted"] == silent.sum()
    for layer, trains in enumerate(every["layer_trains"]):
        again = np.zeros_like(every["counts"][layer])
        np.add.at(again, (trains["image"], trains["neuron"]), 1)
        np.testing.assert_array_equal(again, every["counts"][layer])
        np.testing.assert_array_equal(every["counts"][layer], boosted["counts"][layer])


def test_volley_fraction_counts_images_where_nearly_every_neuron_fires_together():
    n = 10
    image = np.r_[np.zeros(n), np.ones(n), np.full(n, 2)].astype(int)
    neuron = np.r_[np.arange(n), np.arange(n), np.zeros(n)].astype(int)
    t = np.r_[np.linspace(100, 102, n), np.linspace(0, 300, n), np.linspace(50, 51, n)]
    trains = {"image": image, "neuron": neuron, "t_ms": t}
    # image 0: all ten within 2 ms; image 1: spread over 300 ms; image 2: one neuron ten times;
    # image 3: silent
    assert T.volley_fraction(trains, 4, n) == pytest.approx(1 / 4)
    assert T.volley_fraction(trains, 4, n, window_ms=400.0) == pytest.approx(2 / 4)
    shuffled = np.random.default_rng(0).permutation(len(t))  # any order of the spikes
    trains = {k: v[shuffled] for k, v in trains.items()}
    assert T.volley_fraction(trains, 4, n) == pytest.approx(1 / 4)
    assert T.volley_fraction(trains, 4, n, fraction=0.25, window_ms=100.0) == pytest.approx(2 / 4)


def test_every_layer_trains_match_every_layers_counts_and_keep_the_last_layer_as_before():
    images = np.random.default_rng(4).random((7, 32, 32)).astype(np.float32)
    state = T.initial_state(small(), seed=0)
    plain = T.FrozenReplicas(small(), state, replicas=3).run(images, seed=5)
    full = T.FrozenReplicas(small(), state, replicas=3).run(images, seed=5, every_layer=True)
    assert len(full["layer_trains"]) == 2
    for layer, trains in enumerate(full["layer_trains"]):
        again = np.zeros_like(full["counts"][layer])
        np.add.at(again, (trains["image"].astype(int), trains["neuron"].astype(int)), 1)
        np.testing.assert_array_equal(again, full["counts"][layer])
    assert full["counts"][0].sum() > 20, "vacuous: layer 1 barely fired"
    # the same seed: the same spikes whether or not every layer is kept
    for f in ("image", "neuron", "t_ms"):
        np.testing.assert_array_equal(full["trains"][f], plain["trains"][f])
        np.testing.assert_array_equal(full["layer_trains"][1][f], plain["trains"][f])


def test_predict_returns_the_output_spikes_behind_its_counts():
    test, labels = toy_task(30, seed=2)
    readout = T.RSTDPReadout(toy_params(), n_inputs=20, duration_ms=100.0, seed=0,
                             codegen_target="numpy")
    out = readout.predict(test, 30)
    tr = out["trains"]
    again = np.zeros_like(out["counts"])
    np.add.at(again, (tr["image"], tr["neuron"]), 1)
    np.testing.assert_array_equal(again, out["counts"])
    assert out["counts"].sum() > 0, "vacuous: the output never fired"
    assert tr["t_ms"].min() >= 0 and tr["t_ms"].max() < 100.0
    # the decision is the population with most spikes (ties: see test_decide_...)
    per_class = out["counts"].reshape(30, 4, 2).sum(axis=2)
    clear = (per_class.max(axis=1) > 0) & ((per_class == per_class.max(axis=1, keepdims=True))
                                            .sum(axis=1) == 1)
    assert clear.sum() > 5
    np.testing.assert_array_equal(out["decision"][clear], per_class[clear].argmax(axis=1))


def test_image_spikes_runs_one_image_through_every_layer_to_a_decision():
    params = small()
    images = np.random.default_rng(6).random((2, 32, 32))
    frozen = T.FrozenReplicas(params, T.initial_state(params, seed=0), replicas=1)
    readout = T.RSTDPReadout(replace(T.OutputParams(), n_classes=3, neurons_per_class=2,
                                     w_init_max=10.0, weight_sum_per_input=6.0),
                             n_inputs=6, duration_ms=ENC.duration_ms, seed=0,
                             codegen_target="numpy")
    out = T.image_spikes(frozen, readout, images[0], seed=1)
    assert len(out["hidden"]) == 2 and len(out["hidden"][0]["neuron"]) > 0
    assert out["class_counts"].shape == (3,)
    assert out["class_counts"].sum() > 0, "vacuous: the output never fired"
    assert out["class_counts"].sum() == len(out["output"]["neuron"])
    assert out["class_counts"][out["decision"]] == out["class_counts"].max()
    with pytest.raises(ValueError, match="one 32 x 32"):
        T.image_spikes(frozen, readout, images, seed=1)
    with pytest.raises(ValueError, match="replicas=1"):
        T.image_spikes(T.FrozenReplicas(params, T.initial_state(params, seed=0), replicas=2),
                       readout, images[0], seed=1)
    with pytest.raises(ValueError, match="inputs"):
        T.image_spikes(frozen, T.RSTDPReadout(T.OutputParams(), n_inputs=5, duration_ms=50.0,
                                              seed=0, codegen_target="numpy"), images[0], seed=1)
