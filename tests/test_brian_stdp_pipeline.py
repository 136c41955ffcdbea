"""snnlib.tiers.brian_stdp.pipeline: tier 1 end to end (retina, STDP layers, R-STDP output, record).

Tiny sizes and numpy code generation: these tests check the pipeline's
mechanics (which images, caches, resuming, the record), not learning, which
tests/test_brian_stdp_conv.py and tests/test_brian_stdp_population.py check.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

b2 = pytest.importorskip("brian2")
b2.BrianLogger.suppress_name("unused_brian_object")

from snnlib import data, profiles, runs  # noqa: E402
from snnlib.tiers.brian_stdp import network as N, output as O, pipeline as P  # noqa: E402


def tiny():
    ci = profiles.get_profile("ci")
    profile = replace(ci, brian_stdp=replace(ci.brian_stdp, hidden_images=10, layer1_patches=40,
                                             layer2_patches=8, output_images=10, output_epochs=1,
                                             test_images=10))
    # low thresholds: the neurons fire from the first batch (no time for homeostasis here)
    params = N.Tier1Params(layer1=N.ConvLayerParams(n_filters=4, patch_batch=20, train_patches=40,
                                                    v_gap_mv=3.0),
                           layer2=N.ConvLayerParams(n_filters=3, field_px=3, w_sum_mv=10.0,
                                                    patch_batch=8, train_patches=8, v_gap_mv=3.0),
                           retina=N.RetinaParams(fit_images=10), codegen_target="numpy")
    return profile, params


def test_images_come_from_the_training_split_and_the_test_set_is_balanced():
    labels = np.repeat(np.arange(10), 600)
    ci = profiles.get_profile("ci")
    idx = P.tier_images(ci, labels, np.repeat(np.arange(10), 100), seed=0)
    _, val = data.validation_split(labels)
    assert not np.intersect1d(idx["hidden"], val).size and not np.intersect1d(idx["output"], val).size
    assert len(idx["hidden"]) == ci.brian_stdp.hidden_images
    assert len(idx["output"]) == ci.brian_stdp.output_images
    assert np.bincount(np.repeat(np.arange(10), 100)[idx["test"]]).tolist() == [2] * 10
    full = profiles.get_profile("full")
    assert len(P.tier_images(full, np.repeat(np.arange(10), 5000), np.repeat(np.arange(10), 1000),
                             seed=0)["test"]) == 10000
    with pytest.raises(ValueError, match="output_images = 10000 is more than the 1000 images"):
        P.tier_images(replace(ci, brian_stdp=replace(ci.brian_stdp, output_images=10000)),
                      labels, labels, seed=0)


def test_synaptic_events_follow_the_fan_out_of_each_pathway():
    p = N.Tier1Params(layer1=N.ConvLayerParams(n_filters=4), layer2=N.ConvLayerParams(
        n_filters=3, field_px=3), codegen_target="numpy")
    x = np.full((2, 2, 32, 32), 0.25, dtype=np.float32)  # uniform: every field sums the same
    feats = {"spikes1": np.array([100.0, 300.0]), "spikes_pool": np.array([50.0, 50.0])}
    ev = P.synaptic_events(p, x, feats, output_inputs=40.0, n_output=100)
    field_sum = 2 * 5 * 5 * 0.25
    assert ev["input -> layer 1"] == pytest.approx(28 * 28 * field_sum * 4 * p.p_max * p.steps)
    assert ev["layer 1 -> complex cells"] == 200.0
    assert ev["complex cells -> layer 2"] == pytest.approx(50 * 3 * 12 * 12 * 9 / 14 ** 2)
    assert ev["output inputs -> output"] == 4000.0
    assert ev["total"] == pytest.approx(sum(v for k, v in ev.items() if k != "total"))


def test_run_tier_writes_a_record_and_a_second_call_loads_every_phase(tmp_path, monkeypatch):
    profile, params = tiny()
    small = replace(P.output_params(profile), neurons_per_class=2)  # numpy: few output neurons
    record, details = P.run_tier(profile, out_dir=tmp_path, seed=3, params=params, progress=False,
                                 output=small)
    again = runs.load_record(tmp_path / "tier_record.json", tier="brian_stdp")
    assert again == record and record.profile == "ci" and record.test_images == 10
    assert set(record.baselines) >= {"R-STDP output on the random-weight twin",
                                     "logistic regression, grayscale pixels",
                                     "logistic regression, hidden layers 1 + 2 spike counts",
                                     "logistic regression, random-weight layers 1 + 2 spike counts"}
    assert set(record.firing) == {"hidden layer 1", "complex cells", "hidden layer 2", "output"}
    assert record.firing["hidden layer 1"]["neurons"] == 28 * 28 * 4
    assert record.specific["images"]["output_layer"] == 10
    if N._feature_workers(None, 2) > 1:  # the two output layers learned at the same time
        assert record.specific["side_by_side"]["phases"] == ["output_stdp_training",
                                                              "output_random_training"]
    assert "validation" in record.specific["chosen_on"]["split"]
    # the random twin kept its weights; the learned layer 1 moved
    twin = details["layers"]["random"]
    np.testing.assert_array_equal(twin["filters"][0], twin["initial"][0])
    assert record.specific["weights_moved"]["layer 1"] > 0
    # every phase is cached: the second call learns nothing and makes no spike counts again
    stamps = {f.name: f.stat().st_mtime_ns for f in tmp_path.glob("*.npz")}
    record2, details2 = P.run_tier(profile, out_dir=tmp_path, seed=3, params=params,
                                   progress=False, output=small)
    assert {f.name: f.stat().st_mtime_ns for f in tmp_path.glob("*.npz")} == stamps
    assert record2.accuracy == record.accuracy and record2.baselines == record.baselines
    np.testing.assert_array_equal(details2["decisions"]["stdp"], details["decisions"]["stdp"])
    # the output layer's variants (chapter 4), side by side: one process per core
    variants = {"1 neuron per class": {"neurons_per_class": 1},
                "no reward prediction": {"prediction": "none"}}
    side = P.ablations(profile, details, out_dir=tmp_path, variants=variants, n_validation=10,
                       seed=3, progress=False)
    # one more epoch continues the output layer from its checkpoint, and ends where an
    # uninterrupted two-epoch run ends; asking for fewer epochs than saved learns afresh
    more = replace(profile, brian_stdp=replace(profile.brian_stdp, output_epochs=2))
    q1 = small
    (tmp_path / "more").mkdir()
    for cached in tmp_path.glob("[lf]*.npz"):  # the same layers and counts: only the outputs learn
        shutil.copy(cached, tmp_path / "more" / cached.name)
    P.run_tier(more, out_dir=tmp_path / "more", seed=3, params=params, progress=False, output=q1)
    calls = []
    fit = O.PopulationReadout.fit
    monkeypatch.setattr(O.PopulationReadout, "fit",
                        lambda self, *a, **k: calls.append(1) or fit(self, *a, **k))
    # the output layers learn in this process, where the calls are counted (not side by side)
    monkeypatch.setattr(N, "_feature_workers", lambda workers, n_calls: 1)
    (tmp_path / "serial").mkdir()
    serial = P.ablations(profile, details, out_dir=tmp_path / "serial", variants=variants,
                         n_validation=10, seed=3, progress=False)
    assert list(serial) == list(side) == ["the tier's output layer", *variants]
    assert ({k: {**v, "wall_s": 0} for k, v in serial.items()}
            == {k: {**v, "wall_s": 0} for k, v in side.items()})
    assert len(calls) == len(variants)
    calls.clear()
    _, resumed = P.run_tier(more, out_dir=tmp_path / "more", seed=3, params=params,
                            progress=False, output=replace(q1, epochs=2))
    assert len(calls) == 2  # one more epoch for each of the two networks, not two each
    (tmp_path / "straight").mkdir()
    for cached in (tmp_path / "more").glob("[lf]*.npz"):  # the layers and counts, not the outputs
        shutil.copy(cached, tmp_path / "straight" / cached.name)
    _, straight = P.run_tier(more, out_dir=tmp_path / "straight", seed=3, params=params,
                             progress=False, output=replace(q1, epochs=2))
    np.testing.assert_array_equal(resumed["readouts"]["stdp"].weights(),
                                  straight["readouts"]["stdp"].weights())
    calls.clear()
    _, fewer = P.run_tier(more, out_dir=tmp_path / "more", seed=3, params=params,
                          progress=False, output=q1)
    assert len(calls) == 2 and len(fewer["readouts"]["stdp"].history["train_accuracy"]) == 1
    with pytest.raises(ValueError, match="device must be 'cpu', got 'cuda'"):
        P.run_tier(profile, out_dir=tmp_path, device="cuda")


def test_the_output_layer_continues_from_its_state():
    rng = np.random.default_rng(0)
    f, y = rng.random((30, 6)), rng.integers(0, 3, 30)
    p = O.PopulationParams(n_classes=3, neurons_per_class=2, epochs=1, eta_decay=0.5,
                           prediction="running_mean", codegen_target="numpy")
    a = O.PopulationReadout(p, 6, seed=1)
    a.fit(f, y)
    b = O.PopulationReadout(p, 6, seed=1)
    b.load_state(a.state_dict())
    np.testing.assert_array_equal(a.predict(f, seed=5), b.predict(f, seed=5))
    np.testing.assert_array_equal(a.last_counts, b.last_counts)
    assert a.last_counts.shape == (30, 6)
    a.fit(f, y)
    b.fit(f, y)  # the same random order of images: the generator's state was restored
    np.testing.assert_array_equal(a.weights(), b.weights())
    with pytest.raises(ValueError, match="saved weights are"):
        O.PopulationReadout(p, 5, seed=1).load_state(a.state_dict())


def _pid_and_twice(name, report):
    report(len(name))
    return os.getpid(), name * 2


def _fails_on_b(name, report):
    if name == "b":
        raise ValueError("no b here")
    return name


def _dies(name, report):
    os._exit(3)


def _reports_then_sleeps(name, report):
    report(1)
    time.sleep(120)


def _interrupt(n):
    raise KeyboardInterrupt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks: Linux only")
def test_side_by_side_answers_each_name_in_its_own_process_and_passes_reports_on():
    heard = []
    out = P._side_by_side(["a", "bb", "ccc"], _pid_and_twice, workers=2, report=heard.append)
    assert list(out) == ["a", "bb", "ccc"]
    assert [answer for _, answer in out.values()] == ["aa", "bbbb", "cccccc"]
    assert os.getpid() not in {pid for pid, _ in out.values()}
    assert sorted(heard) == [1, 2, 3]
    with pytest.raises(RuntimeError, match="b: Traceback(.|\n)*ValueError: no b here"):
        P._side_by_side(["a", "b"], _fails_on_b, workers=2)
    with pytest.raises(RuntimeError, match="a: its process ended without an answer"):
        P._side_by_side(["a"], _dies, workers=1)
    # an interrupt (here from the parent's progress report) stops the processes at once
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        P._side_by_side(["a", "b"], _reports_then_sleeps, workers=2, report=_interrupt)
    assert time.perf_counter() - start < 60
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("snnlib-")]
    assert P._SIDE_BY_SIDE is None  # nothing left behind for later forks


def test_output_layers_side_by_side_learn_what_they_learn_one_after_another(tmp_path):
    f, y = O.toy_features(40, seed=0)
    q = O.PopulationParams(n_classes=4, neurons_per_class=2, steps=10, eval_steps=10, epochs=2,
                           codegen_target="numpy")
    train = {"stdp": f, "random": 0.5 * f}
    got = {}
    for workers in (1, 2):
        (tmp_path / str(workers)).mkdir()
        got[workers] = P._outputs(tmp_path / str(workers), q, train, y, seed=3, progress=False,
                                  workers=workers)
    for name in train:
        (one, _, alone), (two, wall, shared) = got[1][name], got[2][name]
        assert not alone and shared  # the checkpoints say how each learned
        np.testing.assert_array_equal(one.weights(), two.weights())
        assert one.history == two.history and len(two.history["train_accuracy"]) == 2
        assert wall > 0  # the learning time the checkpoint kept
    assert not np.array_equal(got[2]["stdp"][0].weights(), got[2]["random"][0].weights())
