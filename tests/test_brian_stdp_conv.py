"""The convolutional tier-1 network (snnlib.tiers.brian_stdp.network): its wiring is a
convolution, its learning is competitive, its thresholds follow the homeostasis rule
(Brian2 with numpy code generation, tiny sizes)."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

b2 = pytest.importorskip("brian2")
b2.BrianLogger.suppress_name("unused_brian_object")

from snnlib.tiers.brian_stdp import network as N  # noqa: E402


def params(**kwargs) -> N.Tier1Params:
    base = dict(layer1=N.ConvLayerParams(n_filters=4, patch_batch=20),
                layer2=N.ConvLayerParams(n_filters=3, field_px=3, w_sum_mv=10.0, patch_batch=20),
                codegen_target="numpy", features_pool=(2, 2), features_sqrt=False)
    base.update(kwargs)
    return N.Tier1Params(**base)


def _reference_indices(n, c, side, field, k, *, channels_last=False):
    """The synapse lists the slow way: every (input, offset, filter) on a grid, then sorted."""
    s = side - field + 1
    b, ch, dy, dx, py, px, kk = (a.ravel() for a in np.meshgrid(
        np.arange(n), np.arange(c), np.arange(field), np.arange(field), np.arange(s),
        np.arange(s), np.arange(k), indexing="ij"))
    y, x = py + dy, px + dx
    pre = (((b * side + y) * side + x) * c + ch if channels_last
           else ((b * c + ch) * side + y) * side + x)
    post = ((b * s + py) * s + px) * k + kk
    order = np.lexsort((post, pre))
    return pre[order], post[order], kk[order], ((ch * field + dy) * field + dx)[order]


@pytest.mark.parametrize("shape", [(2, 3, 7, 3, 4), (3, 2, 9, 5, 5), (1, 4, 6, 2, 3)])
def test_the_wiring_is_every_input_offset_and_filter_in_input_order(shape):
    """The fast enumeration equals building every synapse and sorting them (both layouts)."""
    for last in (False, True):
        fast = N._conv_indices(*shape, channels_last=last)
        for a, b in zip(fast, _reference_indices(*shape, channels_last=last)):
            np.testing.assert_array_equal(a, b)


def test_the_wiring_of_both_layers_is_a_convolution():
    """The synapse lists, as a matrix, compute torch's conv2d (layer 1 on channel-first
    inputs, layer 2 on channel-last complex cells), for every filter and position."""
    rng = np.random.default_rng(0)
    n, c, side, field, k = 2, 3, 7, 3, 4
    pre, post, row, col = N._conv_indices(n, c, side, field, k)
    assert np.all(np.diff(pre) >= 0)  # sorted by input neuron
    w = rng.random((k, c * field * field))
    x = rng.random((n, c, side, side))
    out = np.zeros(n * (side - field + 1) ** 2 * k)
    np.add.at(out, post, w[row, col] * x.ravel()[pre])
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w).reshape(k, c, field, field))
    np.testing.assert_allclose(out.reshape(n, side - field + 1, side - field + 1, k),
                               expected.permute(0, 2, 3, 1).numpy(), rtol=1e-12)
    # channel-last inputs (b, y, x, c): the same convolution
    pre, post, row, col = N._conv_indices(n, c, side, field, k, channels_last=True)
    out_last = np.zeros_like(out)
    np.add.at(out_last, post, w[row, col] * x.transpose(0, 2, 3, 1).ravel()[pre])
    np.testing.assert_allclose(out_last, out, rtol=1e-12)


def test_one_input_spike_moves_layer_one_by_the_flipped_filter():
    """Intensity 1 at rate x step = 1 fires every step: after one step each layer-1
    neuron's potential has moved by its weight from that ON pixel (no spike: high
    thresholds), i.e. the filter seen through the pixel's position."""
    p = params(max_rate_hz=500.0, dt_ms=2.0, steps=1)
    filters, _ = N.initial_layer(p, 1, seed=3)
    net = N.FrozenLayers(p, [filters], [np.full(4, 1000.0)], batch=1, layers=1)
    x = np.zeros((1, 2, 32, 32))
    y0, x0 = 10, 12
    x[0, 0, y0, x0] = 1.0
    out = net.run(x, seed=0)
    assert out["counts1"].sum() == 0
    dv = (np.asarray(net.l1.v / b2.mV) - p.v_rest_mv).reshape(p.side1, p.side1, 4)
    f = filters.reshape(4, 2, 5, 5)
    for py in range(p.side1):
        for px in range(p.side1):
            dy, dx = y0 - py, x0 - px
            want = f[:, 0, dy, dx] if 0 <= dy < 5 and 0 <= dx < 5 else np.zeros(4)
            np.testing.assert_allclose(dv[py, px], want, atol=1e-9)


@pytest.mark.parametrize("alpha", [0.5, 1.0])
def test_feedforward_inhibition_takes_a_fraction_of_the_mean_weight_off_each_input(alpha):
    """With feed-forward inhibition alpha, one input spike moves each layer-1 neuron of the
    positions it reaches by w - alpha * w_sum / n_in; neurons it does not reach stay at rest."""
    lp = N.ConvLayerParams(n_filters=4, patch_batch=20, feedforward_inhibition=alpha)
    p = params(layer1=lp, max_rate_hz=500.0, dt_ms=2.0, steps=1)
    assert p.ffi_mv(1) == pytest.approx(alpha * lp.w_sum_mv / 50)
    filters, _ = N.initial_layer(p, 1, seed=3)
    net = N.FrozenLayers(p, [filters], [np.full(4, 1000.0)], batch=1, layers=1)
    x = np.zeros((1, 2, 32, 32))
    x[0, 1, 10, 12] = 1.0  # one OFF pixel
    net.run(x, seed=0)
    dv = (np.asarray(net.l1.v / b2.mV) - p.v_rest_mv).reshape(p.side1, p.side1, 4)
    f = filters.reshape(4, 2, 5, 5)
    for py, px in [(10, 12), (8, 9), (6, 8), (0, 0), (20, 20)]:
        dy, dx = 10 - py, 12 - px
        want = (f[:, 1, dy, dx] - alpha * lp.w_sum_mv / 50 if 0 <= dy < 5 and 0 <= dx < 5
                else np.zeros(4))
        np.testing.assert_allclose(dv[py, px], want, atol=1e-9)


def test_full_feedforward_inhibition_silences_a_filter_that_matches_nothing():
    """A uniform filter is its own mean: with alpha = 1 its input cancels whatever the input,
    so it never fires; without inhibition the same input fires it."""
    x = np.full((1, 2, 32, 32), 1.0)
    counts = []
    for alpha in (0.0, 1.0):
        p = params(layer1=N.ConvLayerParams(n_filters=4, patch_batch=20,
                                            feedforward_inhibition=alpha))
        flat = np.full((4, 50), p.layer1.w_sum_mv / 50)
        net = N.FrozenLayers(p, [flat], [np.zeros(4)], batch=1, layers=1)
        counts.append(net.run(x, seed=0)["counts1"].sum())
    assert counts[0] > 0 and counts[1] == 0


def test_the_learning_copies_feel_the_feedforward_inhibition_too():
    """While a layer learns, uniform filters under alpha = 1 get no input whatever the patch,
    so no copy has a winner; without the inhibition the same patches have winners."""
    no_winner = []
    for alpha in (0.0, 1.0):
        p = params(layer1=N.ConvLayerParams(n_filters=4, patch_batch=10,
                                            feedforward_inhibition=alpha))
        flat = np.full((4, p.inputs1), p.layer1.w_sum_mv / p.inputs1)
        learner = N.ConvLearner(p, 1, seed=0, filters=flat, thresholds=np.zeros(4))
        no_winner.append(learner.step(np.ones((10, p.inputs1)))["no_winner"])
    assert no_winner[0] < 1 and no_winner[1] == 1


def test_frozen_layers_count_spikes_where_the_input_is_and_pool_them():
    p = params()
    f1, _ = N.initial_layer(p, 1, seed=0)
    f2, _ = N.initial_layer(p, 2, seed=0)
    net = N.FrozenLayers(p, [f1, f2], [np.full(4, -8.0), np.full(3, -10.0)], batch=2,
                         record_trains=True)
    x = np.zeros((2, 2, 32, 32))
    x[0, :, :16, :16] = 1.0  # image 0: only its top-left quarter; image 1: dark
    out = net.run(x[:1], seed=1)
    c1 = out["counts1"]
    assert c1.shape == (1, 28, 28, 4) and c1[0, :12, :12].sum() > 0
    assert c1[0, 16:, 16:].sum() == 0  # no input there, no spike
    pooled = N.pool_counts(c1, 2)
    np.testing.assert_array_equal(pooled.reshape(1, 4, 4)[0, :, 0], c1[0, :14, :14].sum(axis=(0, 1)))
    assert out["counts2"].shape == (1, 12, 12, 3)
    image, neuron, step = out["pool_trains"]
    assert np.all(image == 0) and np.all(step < p.steps) and len(neuron) == out["pool_spikes"]
    dark = net.run(x[1:], seed=2)
    assert dark["counts1"].sum() == 0 and dark["counts2"].sum() == 0


def test_a_pyramid_is_each_grid_side_by_side_and_every_grid_keeps_every_spike():
    counts = np.random.default_rng(0).integers(0, 5, (3, 12, 12, 4)).astype(float)
    pyramid = N.pool_pyramid(counts, (1, 2, 3))
    assert pyramid.shape == (3, 4 * (1 + 4 + 9))
    np.testing.assert_array_equal(pyramid, np.hstack([N.pool_counts(counts, g) for g in (1, 2, 3)]))
    np.testing.assert_array_equal(N.pool_pyramid(counts, 2), N.pool_counts(counts, 2))
    # the whole-image grid is each filter's total; any grid's regions add up to it
    np.testing.assert_array_equal(pyramid[:, :4], counts.sum(axis=(1, 2)))
    for grid, cols in ((2, slice(4, 20)), (3, slice(20, None))):
        np.testing.assert_allclose(pyramid[:, cols].reshape(3, 4, grid ** 2).sum(axis=2),
                                   counts.sum(axis=(1, 2)))
    assert params(features_pool=(3, (1, 2, 3))).n_features == 4 * 9 + 3 * 14
    with pytest.raises(ValueError, match="at least one grid"):
        N.pool_pyramid(counts, ())


def test_the_same_seed_gives_the_same_counts():
    p = params()
    f1, _ = N.initial_layer(p, 1, seed=0)
    net = N.FrozenLayers(p, [f1], [np.full(4, -8.0)], batch=1, layers=1)
    x = np.random.default_rng(0).random((1, 2, 32, 32)) * 0.5
    a, b, c = (net.run(x, seed=s)["counts1"] for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_seeds_past_numpys_bound_are_folded_below_it():
    # Brian2 seeds NumPy, which refuses seeds of 2**32 and above; seeds are taken modulo
    # 2**32, and a learner's batch seeds (seed x 1,000,003 + batch) pass 2**32 from 4,295
    p = params()
    f1, _ = N.initial_layer(p, 1, seed=0)
    net = N.FrozenLayers(p, [f1], [np.full(4, -8.0)], batch=1, layers=1)
    x = np.random.default_rng(0).random((1, 2, 32, 32)) * 0.5
    np.testing.assert_array_equal(net.run(x, seed=2**32 + 5)["counts1"],
                                  net.run(x, seed=5)["counts1"])
    assert not np.array_equal(net.run(x, seed=2**32 - 1)["counts1"],
                              net.run(x, seed=0)["counts1"])  # the largest seed is its own
    learner = N.ConvLearner(params(layer1=N.ConvLayerParams(n_filters=3, patch_batch=10)), 1,
                            seed=5000)
    learner.step(_two_patterns(10, seed=0)[0])
    assert len(learner.last_winners) == 10


def _two_patterns(n: int, seed: int):
    """ON/OFF 5 x 5 patches: a vertical bar (ON left, OFF right) or its opposite."""
    a = np.zeros((2, 5, 5))
    a[0, :, 1] = a[1, :, 3] = 1.0
    b = a[::-1].copy()
    labels = np.random.default_rng(seed).integers(0, 2, n)
    return np.where(labels[:, None], b.ravel(), a.ravel()), labels, a.ravel(), b.ravel()


def test_competitive_stdp_finds_the_two_patterns_and_homeostasis_shares_the_wins():
    """STDP under winner-take-all is competitive learning: with two kinds of patch and two
    neurons, each neuron's filter comes to match one kind (the cosine to it rises
    from below 0.5 at the random start to > 0.9), and both neurons win."""
    p = params(layer1=N.ConvLayerParams(n_filters=2, patch_batch=40, a_plus=0.05,
                                        theta_eta_mv=1.0))
    learner = N.ConvLearner(p, 1, seed=0)
    cos = lambda f, g: f @ g / np.linalg.norm(f) / np.linalg.norm(g)  # noqa: E731
    _, _, a, b = _two_patterns(1, seed=0)
    assert max(cos(f, g) for f in learner.filters for g in (a, b)) < 0.5
    for step in range(20):
        patches, _, a, b = _two_patterns(40, seed=step)
        learner.step(patches)
    f = learner.filters
    best = sorted([max(cos(f[0], a), cos(f[0], b)), max(cos(f[1], a), cos(f[1], b))])
    assert best[0] > 0.9
    assert {int(cos(f[0], b) > cos(f[0], a)), int(cos(f[1], b) > cos(f[1], a))} == {0, 1}
    # weights moved away from their start, and every filter keeps its sum
    assert np.abs(f - learner.initial).sum(axis=1).min() > 1.0
    np.testing.assert_allclose(f.sum(axis=1), p.layer1.w_sum_mv)
    patches, labels, _, _ = _two_patterns(40, seed=99)
    learner.learn = False
    stats = learner.step(patches)
    assert stats["no_winner"] < 0.5 and stats["wins_cv"] < 0.5


def test_only_the_winner_learns_and_thresholds_follow_the_homeostasis_rule():
    p = params(layer1=N.ConvLayerParams(n_filters=3, patch_batch=10, theta_eta_mv=0.5,
                                        win_target=0.75))
    # thresholds lowered for two neurons, so that they can win; the third can never fire
    learner = N.ConvLearner(p, 1, seed=1, thresholds=np.array([-10.0, -10.0, 50.0]))
    patches, _, _, _ = _two_patterns(10, seed=0)
    before_f, before_th = learner.filters.copy(), learner.thresholds.copy()
    stats = learner.step(patches)
    winners = learner.last_winners
    assert (winners >= 0).any()  # else nothing below could fail
    moved = np.abs(learner.filters - before_f).sum(axis=1) > 1e-12
    assert moved[:2].any() and not moved[2]
    np.testing.assert_array_equal(moved, np.isin(np.arange(3), winners[winners >= 0]))
    wins = np.bincount(winners[winners >= 0], minlength=3)
    np.testing.assert_allclose(learner.thresholds - before_th, 0.5 * (3 * wins / 10 - 0.75))
    assert stats["no_winner"] == np.mean(winners < 0)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
def test_layer_two_learns_from_given_spike_trains(alpha):
    """Complex-cell spike trains given as fields: winners appear, and only their filters move
    (with and without feed-forward inhibition)."""
    p = params(layer2=N.ConvLayerParams(n_filters=3, field_px=3, w_sum_mv=10.0, patch_batch=20,
                                        feedforward_inhibition=alpha))
    learner = N.ConvLearner(p, 2, seed=0, thresholds=np.array([-10.0, -10.0, 50.0]))
    rng = np.random.default_rng(0)
    fields = [(rng.choice(p.inputs2, 30, replace=False), rng.integers(0, 5, 30)) for _ in range(20)]
    before = learner.filters.copy()
    stats = learner.step(N.stack_patches(fields))
    winners = learner.last_winners
    assert stats["no_winner"] < 1 and learner.filters.shape == (3, p.inputs2)
    moved = np.abs(learner.filters - before).sum(axis=1) > 1e-12
    np.testing.assert_array_equal(moved, np.isin(np.arange(3), winners[winners >= 0]))
    assert moved.any() and not moved[2]  # the third neuron, far from its threshold, never wins


@pytest.mark.parametrize("m", [2, 3])
def test_with_m_learning_winners_the_first_m_of_a_copy_fire_and_learn(m):
    """A k-winners-take-all while learning: in each copy at most m neurons fire (more only
    when several first fire in the same step); a neuron that has not fired by then never
    fires; exactly the neurons that fired have filters that move, and the thresholds follow
    the homeostasis rule with a win per winner, aiming at win_target * m winners a patch."""
    k, c = 6, 30
    p = params(layer2=N.ConvLayerParams(n_filters=k, field_px=3, w_sum_mv=10.0, patch_batch=c,
                                        learning_winners=m, theta_eta_mv=0.5))
    # low thresholds: without the competition most of a copy's neurons would fire
    learner = N.ConvLearner(p, 2, seed=0, thresholds=np.full(k, -12.0))
    rng = np.random.default_rng(0)
    fields = [(rng.choice(p.inputs2, 30, replace=False), rng.integers(0, 10, 30))
              for _ in range(c)]
    before_f, before_th = learner.filters.copy(), learner.thresholds.copy()
    start = learner.monitor.num_spikes
    learner.step(N.stack_patches(fields))
    i = np.asarray(learner.monitor.i[start:])
    t = np.asarray(learner.monitor.t[start:] / b2.ms)
    copy, neuron = i // k, i % k
    fired = np.zeros((c, k), bool)
    fired[copy, neuron] = True
    assert fired.sum(axis=1).max() > 1  # several winners happen
    for q in range(c):
        mine = copy == q
        if not mine.any():
            continue
        first = {int(j): t[mine][neuron[mine] == j].min() for j in np.unique(neuron[mine])}
        times = sorted(first.values())
        if len(times) > m:  # only ties at the m-th first spike may go past m
            assert times[m] == times[m - 1]
    wins = fired.sum(axis=0)
    moved = np.abs(learner.filters - before_f).sum(axis=1) > 1e-12
    np.testing.assert_array_equal(moved, wins > 0)
    np.testing.assert_allclose(learner.thresholds - before_th,
                               0.5 * (k * wins / (m * c) - 0.75))
    # more winners than neurons is refused on construction
    with pytest.raises(ValueError, match="learning_winners"):
        N.ConvLayerParams(n_filters=3, learning_winners=4)


def test_layer_two_can_learn_from_longer_presentations_than_layer_one():
    """steps2 sets layer 2's presentations alone: its learner runs steps2 steps per batch,
    layer 1's runs steps."""
    p = params(steps=5, steps2=12)
    assert (p.learning_steps(1), p.learning_steps(2)) == (5, 12)
    assert params(steps=5).learning_steps(2) == 5
    for layer, steps in ((1, 5), (2, 12)):
        learner = N.ConvLearner(p, layer, seed=0)
        if layer == 1:
            learner.step(np.zeros((3, p.inputs1)))
        else:
            learner.step(N.stack_patches([(np.array([0]), np.array([0]))]))
        assert float(learner.net.t / b2.ms) == pytest.approx(steps * p.dt_ms)
    with pytest.raises(ValueError, match="steps2"):
        params(steps2=0)


def test_volley_fraction_tells_a_volley_from_spread_firing():
    n_neurons = 100
    volley = (np.zeros(60, int), np.arange(60), np.full(60, 3))  # 60% in one step
    spread = (np.zeros(60, int), np.arange(60), np.arange(60) % 15)  # 4 per step
    assert N.volley_fraction(volley, 1, n_neurons) == 1.0
    assert N.volley_fraction(spread, 1, n_neurons) == 0.0
    both = tuple(np.concatenate([a, b]) for a, b in zip(
        volley, (spread[0] + 1, spread[1], spread[2])))
    assert N.volley_fraction(both, 2, n_neurons) == 0.5


def test_the_retina_removes_brightness_and_splits_on_off():
    gray = np.random.default_rng(0).random((40, 32, 32)).astype(np.float32)
    gray = F.avg_pool2d(torch.from_numpy(gray)[:, None], 3, 1, 1)[:, 0].numpy()  # correlated
    ret = N.Retina.fit(gray, N.RetinaParams(fit_images=40), seed=0)
    x = ret.intensities(gray)
    assert x.shape == (40, 2, 32, 32) and x.min() >= 0 and x.max() <= 1
    assert np.all(x[:, 0] * x[:, 1] == 0)  # a pixel is ON or OFF, never both
    brighter = ret.intensities(np.clip(gray + 0.2, 0, 2))  # uniform light added
    np.testing.assert_allclose(brighter, x, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (dict(pool_px=3), "does not divide"),
    (dict(max_rate_hz=1000.0), "more than one spike per step"),
    (dict(features_pool=(30, 2)), "features_pool"),
    (dict(features_pool=(3, (1, 2, 30))), "features_pool"),
    (dict(features_pool=(3, ())), "features_pool"),
    (dict(features_pool=(3, (1, True))), "features_pool"),
    (dict(codegen_target="cpp"), "codegen_target"),
    (dict(feature_steps=0), "feature_steps"),
    (dict(feature_steps=2.5), "feature_steps"),
])
def test_bad_parameters_are_refused_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        params(**bad)


def test_bad_layer_parameters_and_inputs_are_refused():
    with pytest.raises(ValueError, match="n_filters must be a positive integer"):
        N.ConvLayerParams(n_filters=0)
    with pytest.raises(ValueError, match="win_target"):
        N.ConvLayerParams(win_target=1.5)
    with pytest.raises(ValueError, match="feedforward_inhibition"):
        N.ConvLayerParams(feedforward_inhibition=-0.1)
    p = params()
    f1, t1 = N.initial_layer(p, 1, seed=0)
    net = N.FrozenLayers(p, [f1], [t1], batch=1, layers=1)
    with pytest.raises(ValueError, match=r"intensities must be \(N >= 1, 2, 32, 32\)"):
        net.run(np.zeros((2, 1, 32, 32)), seed=0)
    with pytest.raises(ValueError, match=r"intensities must be \(N >= 1, 2, 32, 32\)"):
        net.run(np.zeros((0, 2, 32, 32)), seed=0)


def test_presentations_in_one_run_match_a_run_per_batch():
    """More images than the batch: the batches follow one another in one Brian2 run, each
    from rest with its own rates. The first batch gives what a call with only it gives
    (same seed); the images and steps of the recorded trains count from each batch."""
    p = params()
    f1, _ = N.initial_layer(p, 1, seed=0)
    f2, _ = N.initial_layer(p, 2, seed=0)
    x = np.zeros((5, 2, 32, 32))
    x[[0, 2, 4], 0, :16, :16] = 0.8  # images 0, 2, 4 lit in their top-left quarter
    x[3, 0, 16:, 16:] = 0.8  # image 3 lit in its bottom-right quarter; image 1 dark
    net = N.FrozenLayers(p, [f1, f2], [np.full(4, -8.0), np.full(3, -10.0)], batch=2,
                         record_trains=True)
    many = net.run(x, seed=4)
    first = N.FrozenLayers(p, [f1, f2], [np.full(4, -8.0), np.full(3, -10.0)], batch=2,
                           record_trains=True).run(x[:2], seed=4)
    np.testing.assert_array_equal(many["counts1"][:2], first["counts1"])
    np.testing.assert_array_equal(many["counts2"][:2], first["counts2"])
    c1 = many["counts1"]
    assert c1.shape == (5, 28, 28, 4) and c1[1].sum() == 0
    assert c1[[0, 2, 4], :12, :12].sum(axis=(1, 2, 3)).min() > 0
    assert c1[[0, 2, 4], 16:, 16:].sum() == 0 and c1[3, :12, :12].sum() == 0
    assert c1[3, 16:, 16:].sum() > 0
    image, neuron, step = many["pool_trains"]
    assert set(np.unique(image)) == {0, 2, 3, 4} and step.min() >= 0 and step.max() < p.steps
    per_image = np.bincount(image, minlength=5)
    assert np.all(per_image <= c1.reshape(5, -1).sum(axis=1))  # a pool cell needs a layer-1 spike
    assert many["pool_spikes"] == pytest.approx(per_image.sum() / 5)
    image2, _, step2 = many["trains2"]
    np.testing.assert_array_equal(np.bincount(image2, minlength=5),
                                  many["counts2"].reshape(5, -1).sum(axis=1))



def test_train_layers_and_features_end_to_end_and_the_random_twin_keeps_its_weights():
    p = params(layer1=N.ConvLayerParams(n_filters=4, patch_batch=20, train_patches=40),
               layer2=N.ConvLayerParams(n_filters=3, field_px=3, w_sum_mv=10.0, patch_batch=8,
                                        train_patches=8))
    x = np.random.default_rng(0).random((3, 2, 32, 32)).astype(np.float32) * 0.6
    x[:, 1] = 0.0
    learned = N.train_layers(p, x, seed=0, batch=2)
    twin = N.train_layers(p, x, seed=0, batch=2, learn=False)
    assert [len(h["no_winner"]) for h in learned["history"]] == [2, 1]
    for layer in range(2):
        np.testing.assert_array_equal(twin["filters"][layer], twin["initial"][layer])
        np.testing.assert_array_equal(twin["initial"][layer], learned["initial"][layer])
    assert np.abs(learned["filters"][0] - learned["initial"][0]).sum() > 0
    out = N.features(p, learned, x, seed=0, batch=2, record_every=1)
    assert out["f1"].shape == (3, 4 * 4) and out["f2"].shape == (3, 3 * 4)
    np.testing.assert_allclose(out["f1"].sum(axis=1), out["spikes1"])
    assert 0.0 <= out["volley_fraction"] <= 1.0
    again = N.features(p, learned, x, seed=0, batch=2, keep_counts=True)
    np.testing.assert_array_equal(again["f1"], out["f1"])
    assert again["counts1"].dtype == np.uint8 and again["counts2"].shape == (3, 12, 12, 3)
    np.testing.assert_array_equal(N.pool_counts(again["counts1"].astype(float), 2), out["f1"])
    assert again["volley_fraction"] is None
    firing = {"filters": [N.initial_layer(p, k, seed=1)[0] for k in (1, 2)],  # low thresholds
              "thresholds": [np.full(4, -8.0), np.full(3, -8.0)]}
    counts = N.features(p, firing, x, seed=0, batch=2)
    assert counts["f1"].max() > 1  # roots that differ from the counts
    roots = N.features(replace(p, features_sqrt=True), firing, x, seed=0, batch=2)
    for f in ("f1", "f2"):
        np.testing.assert_allclose(roots[f], np.sqrt(counts[f]), rtol=1e-6)
    np.testing.assert_array_equal(roots["spikes1"], counts["spikes1"])  # the counts stay counts
    with pytest.raises(ValueError, match=r"intensities must be \(N, 2, 32, 32\)"):
        N.features(p, learned, x[:, :1], seed=0)


def test_features_reuse_the_frozen_network_and_count_what_a_fresh_one_counts():
    """A second call of the same shape reuses the wired network with other weights loaded;
    after other weights, the first ones give the counts a freshly built network gives
    (same seed)."""
    p = params()

    def layers(seed):  # low thresholds: both layers fire
        return {"filters": [N.initial_layer(p, k, seed=seed)[0] for k in (1, 2)],
                "thresholds": [np.full(4, -8.0), np.full(3, -8.0)]}

    a, b = layers(1), layers(2)
    x = np.random.default_rng(0).random((3, 2, 32, 32)).astype(np.float32)
    N._REUSED.clear()
    first = N.features(p, a, x, seed=5, batch=2)
    network = next(iter(N._REUSED.values()))
    other = N.features(p, b, x, seed=5, batch=2)
    again = N.features(p, a, x, seed=5, batch=2)
    assert next(iter(N._REUSED.values())) is network  # reused, not rebuilt
    assert first["spikes1"].sum() > 0 and first["spikes2"].sum() > 0
    assert not np.array_equal(other["f1"], first["f1"])  # the other weights were loaded
    N._REUSED.clear()
    fresh = N.features(p, a, x, seed=5, batch=2)
    for key in ("f1", "f2", "spikes1", "spikes2"):
        np.testing.assert_array_equal(again[key], first[key])
        np.testing.assert_array_equal(fresh[key], first[key])


def test_features_in_forked_workers_count_what_one_process_counts():
    """The calls of a features pass run side by side in forked copies of the process and
    give the counts, volleys and spike totals of one process running them in turn."""
    p = params()
    a = {"filters": [N.initial_layer(p, k, seed=1)[0] for k in (1, 2)],
         "thresholds": [np.full(4, -8.0), np.full(3, -8.0)]}
    x = np.random.default_rng(0).random((7, 2, 32, 32)).astype(np.float32)
    N._REUSED.clear()
    kw = dict(seed=5, batch=2, per_call=1, record_every=2, keep_counts=True)
    serial = N.features(p, a, x, workers=1, **kw)
    assert N._feature_workers(2, 4) == (2 if sys.platform.startswith("linux") else 1)
    parallel = N.features(p, a, x, workers=2, **kw)
    assert N._FORKED is None  # nothing of the pass kept
    assert serial["spikes1"].sum() > 0 and serial["spikes2"].sum() > 0
    for key in ("f1", "f2", "spikes1", "spikes2", "spikes_pool", "counts1", "counts2"):
        np.testing.assert_array_equal(parallel[key], serial[key])
    assert parallel["volley_fraction"] == serial["volley_fraction"]
    assert N._feature_workers(None, 1) == 1 and N._feature_workers(8, 3) <= 3


def test_a_call_that_measures_volleys_reuses_the_network_and_records_what_a_recording_one_does():
    """Layer 2's trains recorded for one call (``trains2``) by the reused network equal those
    of a network built to record them (same seed), its counts equal a plain call's, and the
    monitor added for the call is removed after it."""
    p = params()
    a = {"filters": [N.initial_layer(p, k, seed=1)[0] for k in (1, 2)],
         "thresholds": [np.full(4, -8.0), np.full(3, -8.0)]}
    x = np.random.default_rng(0).random((3, 2, 32, 32)).astype(np.float32)
    N._REUSED.clear()
    plain = N.features(p, a, x, seed=5, batch=2)
    network = next(iter(N._REUSED.values()))
    n_objects = len(network.net.objects)
    recorded = N.features(p, a, x, seed=5, batch=2, record_every=1)
    assert next(iter(N._REUSED.values())) is network and len(network.net.objects) == n_objects
    for key in ("f1", "f2", "spikes1", "spikes2"):
        np.testing.assert_array_equal(recorded[key], plain[key])
    builds = N.FrozenLayers(p, a["filters"], a["thresholds"], batch=2, record_trains=True,
                            record_pool=False, steps=p.steps_frozen)
    want = builds.run(x, seed=7)["trains2"]
    got = network.run(x, seed=7, trains2=True)["trains2"]
    assert len(want[0]) > 0
    np.testing.assert_array_equal(np.stack(want)[:, np.lexsort(want)],
                                  np.stack(got)[:, np.lexsort(got)])
    n2 = p.side2 ** 2 * p.layer2.n_filters
    assert recorded["volley_fraction"] == pytest.approx(
        N.volley_fraction(network.run(x, seed=5 * 1_000_003, trains2=True)["trains2"], 3, n2))
    assert "trains2" not in network.run(x, seed=7)
    N._REUSED.clear()


def test_the_retina_takes_brightness_out_of_layer_one_drives():
    """Positive filters on raw intensities carry brightness (correlation ~1); the same
    filters behind the whitening retina do not (|correlation| small)."""
    rng = np.random.default_rng(7)
    base = F.avg_pool2d(torch.from_numpy(rng.random((60, 1, 32, 32))), 3, 1, 1)[:, 0].numpy()
    gray = np.clip(base * 0.5 + rng.random((60, 1, 1)) * 0.5, 0, 1)  # each image its own light
    brightness = gray.mean(axis=(1, 2))
    p = params()
    filters, _ = N.initial_layer(p, 1, seed=0)
    raw = np.stack([gray, np.zeros_like(gray)], axis=1)  # intensities straight to layer 1
    assert N.drive_brightness_correlation(filters, raw, brightness) > 0.95
    retina = N.Retina.fit(gray, N.RetinaParams(fit_images=60), seed=0)
    through = N.drive_brightness_correlation(filters, retina.intensities(gray), brightness)
    assert abs(through) < 0.5
    with pytest.raises(ValueError, match="do not fit"):
        N.drive_brightness_correlation(filters[:, :10], raw, brightness)


def test_weights_moved_is_zero_for_no_change_and_one_for_disjoint_filters():
    p = params()
    w0 = np.zeros((4, p.inputs1))
    w0[:, :10] = p.layer1.w_sum_mv / 10  # all weight on the first ten inputs
    w1 = np.zeros_like(w0)
    w1[:, -10:] = p.layer1.w_sum_mv / 10  # all on the last ten: nothing shared
    v0 = np.full((3, p.inputs2), p.layer2.w_sum_mv / p.inputs2)
    moved = N.weights_moved(p, {"filters": [w0, v0], "initial": [w1, v0]})
    assert moved == [pytest.approx(1.0), 0.0]


def test_features_look_for_feature_steps_and_spike_more_the_longer_they_look():
    """With ``feature_steps`` the frozen layers present each image that long (the trains'
    steps reach it), learning keeps ``steps``; a longer look gives more spikes: four times
    the steps, at least four times the spikes (the potentials start at rest, so the first
    steps of a look are quiet), but not much more."""
    p = params(steps=10)
    f1, _ = N.initial_layer(p, 1, seed=0)
    f2, _ = N.initial_layer(p, 2, seed=0)
    layers = {"filters": [f1, f2], "thresholds": [np.full(4, -8.0), np.full(3, -10.0)]}
    x = np.random.default_rng(1).random((4, 2, 32, 32)) * 0.6
    short = N.features(p, layers, x, seed=0, batch=2, record_every=1)
    long_p = params(steps=10, feature_steps=40)
    assert long_p.steps_frozen == 40 and p.steps_frozen == 10
    net = N.FrozenLayers(long_p, layers["filters"], layers["thresholds"], batch=2,
                         record_trains=True, steps=long_p.steps_frozen)
    out = net.run(x, seed=0)
    _, _, step = out["trains2"]
    assert step.max() >= 30 and step.max() < 40
    long = N.features(long_p, layers, x, seed=0, batch=2)
    ratio = long["spikes1"].sum() / short["spikes1"].sum()
    assert 4.0 < ratio < 7.0


@pytest.mark.parametrize("r, gap", [(0, 2), (1, 4), (3, 6), (4, 6)])
def test_a_refractory_complex_cell_ignores_its_inputs_for_r_steps_after_a_spike(r, gap):
    """With ``pool_refractory_steps = r`` a complex cell fires at most once every r + 2
    steps, and inputs during its refractory steps are dropped, not deferred. Layer 1,
    driven at every step, fires every other step (an input in the step of a spike is
    cleared by the reset), so a complex cell fires at the first even gap >= r + 2."""
    p = params(pool_refractory_steps=r, steps=24)
    f1 = np.zeros((4, p.inputs1))
    f1[0] = 20.0  # filter 0: any one input spike fires it
    net = N.FrozenLayers(p, [f1], [np.full(4, 0.0)], batch=1, layers=1, record_trains=True)
    out = net.run(np.ones((1, 2, 32, 32)), seed=3)
    assert np.all(out["counts1"][0, 4:20, 4:20, 0] == p.steps // 2)  # layer 1: every other step
    _, neuron, step = out["pool_trains"]
    assert len(neuron) and np.all(neuron % 4 == 0)  # only filter 0's cells fire
    for cell in np.unique(neuron)[:20]:
        s = np.sort(step[neuron == cell])
        np.testing.assert_array_equal(np.diff(s), gap)  # as fast as it may, never faster
        assert s[0] == 2  # layer 1 fires at step 1 (its first input arrives at step 0)


def test_the_complex_cells_refractory_steps_must_be_a_whole_number_at_least_zero():
    with pytest.raises(ValueError, match="pool_refractory_steps"):
        params(pool_refractory_steps=-1)
    with pytest.raises(TypeError, match="pool_refractory_steps"):
        params(pool_refractory_steps=1.5)
