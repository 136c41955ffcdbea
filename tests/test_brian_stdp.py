"""snnlib.tiers.brian_stdp: the tier-1 hidden layers in Brian2 (numpy code
generation, tiny sizes: 10 neurons, 50 ms presentations)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")
# Networks that a test builds but never runs (bad input refused first) are
# reported by Brian2 when collected; that is expected here.
b2.BrianLogger.suppress_name("unused_brian_object")

from snnlib import encoding as E  # noqa: E402
from snnlib.tiers import brian_stdp as T  # noqa: E402

ENC = E.PoissonParams(max_rate_hz=63.75, duration_ms=50.0, dt_ms=0.5)


LAYER2_STDP = replace(T.DC_STDP, w_max=10.0)


def small(**kwargs) -> T.BrianSTDPParams:
    base = dict(encoding=ENC, layer1=T.LayerParams(n_neurons=10),
                layer2=T.LayerParams(n_neurons=6, weight_sum_per_input=3.0, stdp=LAYER2_STDP),
                chunk_images=2, codegen_target="numpy")
    base.update(kwargs)
    return T.BrianSTDPParams(**base)


@pytest.fixture
def images():
    return np.random.default_rng(0).random((6, 32, 32)).astype(np.float32)


def test_training_moves_and_normalises_weights_and_raises_thresholds(images):
    net = T.BrianSTDPNetwork(small(), seed=0)
    before = net.weights(1)
    result = net.fit(images, layer=1, progress=False)
    assert result["rate_hz"][0] > 0, "vacuous: layer 1 never fired"
    after = net.weights(1)
    assert after.shape == (10, 1024)
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after.sum(axis=1), 0.1 * 1024, rtol=1e-6)
    assert net.theta_mv(1).max() > 0  # adaptive thresholds rose with the spikes


def test_same_seed_same_weights_other_seed_other_weights(images):
    a = T.BrianSTDPNetwork(small(), seed=3)
    b = T.BrianSTDPNetwork(small(), seed=3)
    c = T.BrianSTDPNetwork(small(), seed=4)
    for net in (a, b, c):
        net.fit(images, layer=1, progress=False)
    np.testing.assert_array_equal(a.weights(1), b.weights(1))
    assert not np.array_equal(a.weights(1), c.weights(1))


def test_a_killed_run_resumes_to_the_same_weights(images, tmp_path):
    uninterrupted = T.BrianSTDPNetwork(small(), seed=1)
    full = uninterrupted.fit(images, layer=1, progress=False, snapshots=[0, 4, 6])

    ckpt = tmp_path / "layer1.npz"

    def kill_after_four(net, position):
        if position == 4:
            raise T.TrainingInterrupted("simulated kill")

    first = T.BrianSTDPNetwork(small(), seed=1)
    with pytest.raises(T.TrainingInterrupted):
        first.fit(images, layer=1, checkpoint=ckpt, progress=False, on_chunk=kill_after_four,
                  snapshots=[0, 4, 6])
    resumed = T.BrianSTDPNetwork(small(), seed=1)  # a new process would start like this
    result = resumed.fit(images, layer=1, checkpoint=ckpt, progress=False, snapshots=[0, 4, 6])
    assert result["resumed_from"] == 4 and result["trained_images"] == 2
    # the run's statistics, history and snapshots carry over the kill
    for key in ("presentations", "boosted", "silent_after_boosts", "rate_hz"):
        assert result[key] == full[key], key
    assert [h["images"] for h in result["history"]] == [2, 4, 6]
    assert [h["rate_hz"] for h in result["history"]] == [h["rate_hz"] for h in full["history"]]
    assert sorted(result["snapshots"]) == [0, 4, 6]
    for k in (0, 4):
        np.testing.assert_array_equal(result["snapshots"][k], full["snapshots"][k])
    # Same spikes, same updates; the event-driven traces decay over (t - lastupdate),
    # and t runs from 0 again after a resume, so float64 rounding may differ (~1e-16).
    np.testing.assert_allclose(resumed.weights(1), uninterrupted.weights(1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(resumed.theta_mv(1), uninterrupted.theta_mv(1), rtol=0, atol=1e-12)


def test_a_run_killed_between_checkpoints_redoes_the_lost_chunks_exactly(tmp_path):
    images = np.random.default_rng(5).random((8, 32, 32)).astype(np.float32)
    kw = dict(layer=1, progress=False, snapshots=[0, 2, 6, 8])
    full = T.BrianSTDPNetwork(small(), seed=2).fit(images, **kw)
    ckpt = tmp_path / "layer1.npz"

    def kill_after_six(net, position):  # checkpoints at 4 and 8 only: chunk 3 is lost
        if position == 6:
            raise T.TrainingInterrupted("simulated kill")

    with pytest.raises(T.TrainingInterrupted):
        T.BrianSTDPNetwork(small(), seed=2).fit(images, checkpoint=ckpt, checkpoint_every=2,
                                                on_chunk=kill_after_six, **kw)
    resumed = T.BrianSTDPNetwork(small(), seed=2)
    result = resumed.fit(images, checkpoint=ckpt, checkpoint_every=2, **kw)
    assert result["resumed_from"] == 4 and result["trained_images"] == 4
    for key in ("presentations", "boosted", "silent_after_boosts", "rate_hz"):
        assert result[key] == full[key], key
    assert [h["images"] for h in result["history"]] == [2, 4, 6, 8]
    assert [h["rate_hz"] for h in result["history"]] == [h["rate_hz"] for h in full["history"]]
    assert sorted(result["snapshots"]) == [0, 2, 6, 8]
    for k in (0, 2, 6, 8):
        np.testing.assert_allclose(result["snapshots"][k], full["snapshots"][k], rtol=0, atol=1e-12)


def test_an_old_checkpoint_without_history_is_refused_clearly(images, tmp_path):
    ckpt = tmp_path / "c.npz"
    net = T.BrianSTDPNetwork(small(), seed=0)
    net.fit(images[:2], layer=1, checkpoint=ckpt, progress=False)
    with np.load(ckpt) as data:
        old = {k: data[k] for k in data.files if k != "run"}
    np.savez(ckpt, **old)
    with pytest.raises(ValueError, match="older snnlib"):
        T.BrianSTDPNetwork(small(), seed=0).fit(images[:2], layer=1, checkpoint=ckpt,
                                                progress=False)


@pytest.mark.parametrize("name", ["ci", "book", "full"])
def test_the_profiles_networks_are_valid_and_retuned(name):
    from snnlib import profiles

    prof = profiles.get_profile(name)
    p = T.params_for_profile(prof)
    assert p.layer1.n_neurons == prof.brian_stdp.neurons and p.layer2.n_neurons == prof.brian_stdp.neurons // 2
    assert p.layer1.weight_sum_per_input == 0.05 and p.layer1.stdp.bounds == "hard"
    assert p.layer1.exc.tau_theta_ms == 1e5
    assert p.layer2.weight_sum_per_input <= p.layer2.stdp.w_max
    assert p.codegen_target == ("numpy" if name == "ci" else "cython")


def test_a_checkpoint_from_other_images_is_refused(images, tmp_path):
    ckpt = tmp_path / "c.npz"
    T.BrianSTDPNetwork(small(), seed=0).fit(images[:2], layer=1, checkpoint=ckpt, progress=False)
    with pytest.raises(ValueError, match="comes from other parameters, seed, layer or images"):
        T.BrianSTDPNetwork(small(), seed=0).fit(images, layer=1, checkpoint=ckpt, progress=False)


def test_a_blank_image_is_retried_a_bounded_number_of_times():
    net = T.BrianSTDPNetwork(small(max_boosts=2), seed=0)
    blank = np.zeros((3, 32, 32), dtype=np.float32)
    result = net.fit(blank, layer=1, progress=False)
    assert result["boosted"] == 3 and result["silent_after_boosts"] == 3
    assert result["presentations"] == 3 * (1 + 2)  # the first showing and two boosts, no more


def test_lateral_inhibition_makes_fewer_neurons_answer_each_image(images):
    counts = {}
    for inhibition in (True, False):
        layer1 = T.LayerParams(n_neurons=10, lateral_inhibition=inhibition)
        net = T.BrianSTDPNetwork(small(layer1=layer1, layer2=None), seed=0)
        counts[inhibition] = net.spike_counts(images)[0]
    assert counts[False].sum() > 0 and counts[True].sum() > 0, "vacuous"
    active = {k: (c > 0).sum(axis=1).mean() for k, c in counts.items()}
    assert active[True] < active[False]


def test_layer2_learns_on_frozen_layer1_spikes(images):
    net = T.BrianSTDPNetwork(small(), seed=0)
    net.fit(images, layer=1, progress=False)
    w1, theta1, w2 = net.weights(1), net.theta_mv(1), net.weights(2)
    result = net.fit(images, layer=2, progress=False)
    np.testing.assert_array_equal(net.weights(1), w1)
    np.testing.assert_array_equal(net.theta_mv(1), theta1)
    assert result["rate_hz"][1] > 0, "vacuous: layer 2 never fired"
    assert np.abs(net.weights(2) - w2).max() > 1e-4
    assert net.weights(2).shape == (6, 10)


def test_spike_counts_leave_the_network_unchanged(images):
    net = T.BrianSTDPNetwork(small(), seed=0)
    net.fit(images, layer=1, progress=False)
    before = {k: (net.weights(k), net.theta_mv(k)) for k in (1, 2)}
    counts = net.spike_counts(images)
    assert [c.shape for c in counts] == [(6, 10), (6, 6)]
    assert counts[0].sum() > 0
    for k in (1, 2):
        np.testing.assert_array_equal(net.weights(k), before[k][0])
        np.testing.assert_array_equal(net.theta_mv(k), before[k][1])


def test_normalised_weights_stay_within_the_stdp_bounds(images):
    net = T.BrianSTDPNetwork(small(), seed=0)
    for trained in (False, True):  # at the start, and after both layers learned
        if trained:
            net.fit(images, layer=1, progress=False)
            net.fit(images, layer=2, progress=False)
        for k, lp in ((1, net.params.layer1), (2, net.params.layer2)):
            w = net.weights(k)
            assert w.min() >= lp.stdp.w_min and w.max() <= lp.stdp.w_max
    with pytest.raises(ValueError, match="mean weight after normalisation"):
        T.LayerParams(weight_sum_per_input=3.0)  # above DC_STDP's w_max of 1


def test_naive_loop_trains_the_same_network(images):
    net = T.BrianSTDPNetwork(small(layer2=None), seed=0)
    before = net.weights(1)
    result = net.fit_naive(images[:2])
    assert result["images"] == 2 and result["rate_hz"][0] > 0
    assert np.abs(net.weights(1) - before).max() > 1e-3
    # normalised after every image, with thresholds raised by the spikes, as fit does
    np.testing.assert_allclose(net.weights(1).sum(axis=1), 0.1 * 1024, rtol=1e-6)
    assert net.theta_mv(1).max() > 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(chunk_images=0), "chunk_images"),
        (dict(boost_hz=-1.0), "boost_hz"),
        (dict(codegen_target="cpp"), "codegen_target"),
        (dict(encoding=E.PoissonParams(dt_ms=0.25, duration_ms=50.0)), "differs from the encoding"),
    ],
)
def test_bad_parameters_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small(**kwargs)


def test_bad_layer_and_bad_images_are_refused_clearly(images):
    net = T.BrianSTDPNetwork(small(layer2=None), seed=0)
    with pytest.raises(ValueError, match="need layer2"):
        net.fit(images, layer=2, progress=False)
    with pytest.raises(ValueError, match="1024 pixels"):
        net.fit(np.zeros((2, 16, 16), dtype=np.float32), progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        net.fit(images * 2, progress=False)
    with pytest.raises(ValueError, match="n_neurons must be a positive integer"):
        T.LayerParams(n_neurons=0)
    with pytest.raises(ValueError, match="no images"):
        net.fit(np.zeros((0, 32, 32), dtype=np.float32), progress=False)
    with pytest.raises(ValueError, match="checkpoint_every"):
        net.fit(images, checkpoint_every=0, progress=False)
    with pytest.raises(ValueError, match="1024 pixels"):
        net.spike_counts(np.zeros((2, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="1024 pixels"):
        net.fit_naive(np.zeros((2, 16, 16), dtype=np.float32))


def test_train_hidden_layers_writes_model_and_record_and_resumes(tmp_path, monkeypatch):
    import json

    from snnlib import data as D
    from snnlib import profiles

    rng = np.random.default_rng(0)
    fake = D.Dataset(rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8),
                     np.repeat(np.arange(10), 4), D.CLASS_NAMES, str(tmp_path))
    monkeypatch.setattr(D, "load_cifar10", lambda split: fake)
    ci = profiles.get_profile("ci")
    profile = replace(ci, brian_stdp=replace(ci.brian_stdp, neurons=6, train_images=10))
    monkeypatch.setattr(T.run, "params_for_profile",
                        lambda prof: small(layer1=T.LayerParams(n_neurons=6), chunk_images=5,
                                           layer2=T.LayerParams(n_neurons=3,
                                                                weight_sum_per_input=3.0,
                                                                stdp=LAYER2_STDP)))
    net, record = T.train_hidden_layers(profile, out_dir=tmp_path / "run", seed=0,
                                        n_eval_images=10, progress=False)
    assert record["train_images"] == 10 and record["profile"] == "ci"
    assert record["layer2_train_images"] == 10  # the ci profile: all of layer 1's
    assert record["phases"]["layer1"]["trained_images"] == 10
    assert record["dataset"] == "CIFAR-10 (JPEG copy or other non-official local copy)"
    saved = json.loads((tmp_path / "run" / "record.json").read_text())
    assert saved["phases"]["layer2"]["images"] == 10
    with np.load(tmp_path / "run" / "model.npz") as model:
        assert model["w1"].shape == (1024 * 6,) and model["w2"].shape == (6 * 3,)
    assert record["eval"]["counts"][0].shape == (10, 6)
    assert record["eval"]["labels"].tolist() == list(range(10))
    assert set(record["test_spikes"]) == {"layer1", "layer2"}
    snaps = record["phases"]["layer1"]["snapshots"]
    assert sorted(snaps) == [0, 5, 10]  # chunks of 5 images
    assert not np.array_equal(snaps[0], snaps[10])
    np.testing.assert_array_equal(snaps[10], net.weights(1))
    again_net, again = T.train_hidden_layers(profile, out_dir=tmp_path / "run", seed=0,
                                             n_eval_images=10, progress=False)
    np.testing.assert_array_equal(again_net.weights(2), net.weights(2))
    assert sorted(again["phases"]["layer1"]["snapshots"]) == [0, 5, 10]
    assert again["phases"]["layer1"]["history"] == record["phases"]["layer1"]["history"]
    assert again["phases"]["layer1"]["resumed_from"] == 10  # finished: nothing retrained
    assert again["phases"]["layer2"]["trained_images"] == 0
    assert again["phases"]["layer2"]["images_per_s"] is None  # valid JSON, not NaN
    json.loads((tmp_path / "run" / "record.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"record.json holds {c}"))

    # the test counts are cached: a finished run does not count again, unless the images change
    calls = []
    original = T.BrianSTDPNetwork.spike_counts
    monkeypatch.setattr(T.BrianSTDPNetwork, "spike_counts",
                        lambda self, *a, **k: calls.append(len(a[0])) or original(self, *a, **k))
    T.train_hidden_layers(profile, out_dir=tmp_path / "run", seed=0, n_eval_images=10,
                          progress=False)
    assert calls == []
    _, other = T.train_hidden_layers(profile, out_dir=tmp_path / "run", seed=0, n_eval_images=20,
                                     progress=False)
    assert calls == [20] and other["eval_images"] == 20
    # an unreadable cache (a kill while it was written, before writes were atomic) is recounted
    (tmp_path / "run" / "eval_counts.npz").write_bytes(b"PK\x03\x04 truncated")
    T.train_hidden_layers(profile, out_dir=tmp_path / "run", seed=0, n_eval_images=20,
                          progress=False)
    assert calls == [20, 20]

    # layer 1 alone, in its own directory
    net1, rec1 = T.train_hidden_layers(profile, out_dir=tmp_path / "one", seed=0, layers=(1,),
                                       n_eval_images=10, progress=False)
    assert len(net1.layers) == 1 and set(rec1["phases"]) == {"layer1"}
    np.testing.assert_array_equal(net1.weights(1), net.weights(1))  # same seed, same layer 1
    assert set(rec1["test_spikes"]) == {"layer1"}
    with pytest.raises(ValueError, match="n_images"):
        T.train_hidden_layers(profile, out_dir=tmp_path / "x", n_images=0, progress=False)
    # a profile that trains layer 2 on fewer images: the first of layer 1's
    fewer = replace(profile, brian_stdp=replace(profile.brian_stdp, train_images=30,
                                                 layer2_train_images=20))
    _, rec = T.train_hidden_layers(fewer, out_dir=tmp_path / "fewer", seed=0, n_eval_images=10,
                                   progress=False)
    assert rec["phases"]["layer1"]["images"] == 30 and rec["phases"]["layer2"]["images"] == 20
    assert rec["train_images"] == 30 and rec["layer2_train_images"] == 20
    # fewer images asked for than the profile's layer 2 gets: layer 2 takes them all
    _, rec = T.train_hidden_layers(fewer, out_dir=tmp_path / "fewer10", seed=0, n_images=10,
                                   n_eval_images=10, progress=False)
    assert rec["phases"]["layer1"]["images"] == 10 and rec["phases"]["layer2"]["images"] == 10


def test_field_smoothness_is_zero_for_noise_and_near_one_for_blobs():
    rng = np.random.default_rng(0)
    noise = rng.random((50, 1024))
    assert abs(T.field_smoothness(noise).mean()) < 0.02
    yy, xx = np.mgrid[:32, :32]
    blobs = np.stack([np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 4.0**2)).ravel()
                      for cx, cy in [(8, 8), (16, 20), (25, 10)]])
    assert (T.field_smoothness(blobs) > 0.9).all()
    # a vertical edge: horizontal neighbours differ only at the edge
    edge = np.where(xx < 16, 1.0, 0.0).ravel()[None]
    assert T.field_smoothness(edge)[0] > 0.9
    # a checkerboard is anti-correlated with its neighbours
    checker = ((xx + yy) % 2).astype(float).ravel()[None]
    np.testing.assert_allclose(T.field_smoothness(checker), -1.0, atol=1e-12)


def test_field_similarity_of_copies_and_of_noise():
    rng = np.random.default_rng(1)
    field = rng.random(1024)
    assert T.field_similarity(np.stack([field] * 5)) == pytest.approx(1.0)
    assert abs(T.field_similarity(rng.random((60, 1024)))) < 0.01
    with pytest.raises(ValueError, match="two neurons"):
        T.field_similarity(field[None])


def test_spike_statistics_on_known_counts():
    counts = np.array([[0, 7, 0], [0, 0, 0], [0, 7, 14]])  # 3 images, 3 neurons, 350 ms
    st = T.spike_statistics(counts, 350.0)
    assert st["rate_hz"] == pytest.approx(28 / 9 / 0.35)
    assert st["spikes_per_image"] == pytest.approx(28 / 3)
    assert st["silent_neurons"] == pytest.approx(1 / 3)
    assert st["silent_images"] == pytest.approx(1 / 3)
    assert st["active_per_image"] == pytest.approx(1.0)
    assert st["rate_hz_percentiles"][1] == pytest.approx(14 / 3 / 0.35)


def test_snapshot_schedule_doubles_in_whole_chunks():
    assert T.snapshot_schedule(400, 25) == [0, 25, 50, 100, 200, 400]
    assert T.snapshot_schedule(10000, 25) == [0, 300, 625, 1250, 2500, 5000, 10000]
    assert T.snapshot_schedule(10, 5) == [0, 5, 10]


def test_weights_are_normalised_at_the_start_of_every_image(images):
    import brian2 as b2

    net = T.BrianSTDPNetwork(small(chunk_images=3), seed=0)
    starts = []
    original = net.normalise

    def record(layers):
        starts.append(round(float(net.net.t / b2.ms) / ENC.duration_ms, 6))
        original(layers)

    net.normalise = record
    net.fit(images, layer=1, progress=False)
    # every image slot of both chunks (t restarts at each slot of the network clock),
    # and once more at the end of each chunk
    assert sorted(set(starts)) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    before = len(starts)
    net.spike_counts(images[:2])  # learning off: nothing to normalise
    assert len(starts) == before


def test_learned_fraction_counts_fields_that_left_their_start():
    rng = np.random.default_rng(2)
    w0 = rng.random((4, 1024))
    w = w0.copy()
    w[1] = rng.random(1024)           # a new, independent field: correlation ~0
    w[2] = w0[2] + 0.1 * rng.random(1024)  # a small change: still correlated ~0.99
    w[3] = 1.0 - w0[3]                # anti-correlated: left its start
    assert T.learned_fraction(w, w0) == pytest.approx(0.5)
    assert T.learned_fraction(w0, w0) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        T.learned_fraction(w[:2], w0)
