"""Tier 2 (snnlib.tiers.dog_lif) against theory: Poisson means, the LIF rate under
deterministic input, the STDP change of a winner, competitive learning of two
patterns, pooling, determinism and resumption."""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from snnlib import neurons as N
from snnlib import runs
from snnlib.tiers import dog_lif as D
from snnlib.tiers.dog_lif import layer as L

SMALL = D.DoGLIFParams(n_filters=8, train_patches=600, patch_batch=200, image_batch=2)


def _images(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB images (uint8, channels last) with some structure to whiten."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n, 8, 8, 3))
    up = np.kron(base, np.ones((1, 4, 4, 1)))
    noise = rng.normal(scale=0.3, size=(n, 32, 32, 3))
    x = (up + noise - (up + noise).min()) / np.ptp(up + noise)
    return (255 * x).astype(np.uint8)


@pytest.mark.parametrize("bad, match", [
    (dict(retina="lgn"), "retina"),
    (dict(n_filters=0), "n_filters"),
    (dict(patch_px=33), "patch_px"),
    (dict(pool=29), "pool"),
    (dict(stride_px=0), "stride_px"),
    (dict(stride_px=2, pool=15), "stride of 2 pixels"),
    (dict(max_rate_hz=600.0), "more than one spike per step"),
    (dict(tau_mem_ms=2.0), "smaller than tau_mem_ms"),
    (dict(a_plus=-1.0), "a_plus"),
    (dict(norm_eps=0.0), "norm_eps"),
    (dict(downsample=0), "downsample"),
    (dict(downsample=3), "must divide the images' 32 pixels"),
    (dict(downsample=2, patch_px=17), "at most 16"),
    (dict(downsample=4, pool=5), "in 8 x 8 images"),
    (dict(feedforward_inhibition=-0.5), "feedforward_inhibition"),
    (dict(k_winners=-1), "k_winners"),
    (dict(input_code="gaussian"), "input_code must be 'poisson' or 'regular'"),
    (dict(push_pull=1.5), "push_pull"),
    (dict(opposite_phase=1), "opposite_phase"),
    (dict(opposite_phase=True, n_filters=7), "n_filters must be even with opposite_phase"),
    (dict(n_filters=8, k_winners=9), r"k_winners \(9\) must be at most n_filters \(8\)"),
    (dict(time_windows=0), "time_windows"),
    (dict(steps=4, time_windows=5), r"time_windows \(5\) must be at most steps \(4\)"),
    (dict(time_windows=2, k_winners=4), "k_winners must be 0 with time_windows > 1"),
])
def test_params_are_validated_with_clear_messages(bad, match):
    with pytest.raises(ValueError, match=match):
        D.DoGLIFParams(**bad)


def test_sizes_follow_from_the_patch():
    p = D.DoGLIFParams(patch_px=5, n_filters=10, pool=3)
    assert (p.side, p.n_inputs, p.n_features) == (28, 150, 90)
    full = D.DoGLIFParams(patch_px=32, pool=1)
    assert (full.side, full.n_inputs) == (1, 6144)  # a fully connected layer
    # floor((32 - 5) / s) + 1 positions per side
    sides = [D.DoGLIFParams(stride_px=s, pool=1).side for s in (1, 2, 3, 27, 28)]
    assert sides == [28, 14, 10, 2, 1]
    # floor((32 / d - 5) / s) + 1 in images averaged over d x d blocks
    coarse = [D.DoGLIFParams(downsample=d, stride_px=s, pool=1).side
              for d, s in ((2, 1), (2, 2), (4, 1), (4, 3))]
    assert coarse == [12, 6, 4, 2]
    assert D.DoGLIFParams(downsample=2, patch_px=16, pool=1).side == 1


def test_poisson_on_off_has_the_bernoulli_mean_and_never_both():
    signed = torch.tensor([[0.8, -0.5, 0.0, 1.0, -1.0]]).expand(20000, -1).contiguous()
    rng = np.random.default_rng(0)
    spikes = torch.stack([D.poisson_on_off(signed, 0.3, rng) for _ in range(5)])
    on, off = spikes[..., :5], spikes[..., 5:]
    assert not (on * off).any()
    expected_on = torch.tensor([0.8, 0, 0, 1.0, 0]) * 0.3
    expected_off = torch.tensor([0, 0.5, 0, 0, 1.0]) * 0.3
    # 100,000 draws each: standard error at most 0.0015
    np.testing.assert_allclose(on.mean(dim=(0, 1)).numpy(), expected_on.numpy(), atol=0.006)
    np.testing.assert_allclose(off.mean(dim=(0, 1)).numpy(), expected_off.numpy(), atol=0.006)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}


def test_layer_rate_under_deterministic_input_is_the_analytic_lif_rate():
    # intensity 1 at p_max = 1: every ON input spikes every step, so the jump is the
    # sum of the ON weights, constant: the neuron's rate is lif_delta_rate_hz's
    p = D.DoGLIFParams(max_rate_hz=1000.0, dt_ms=1.0, steps=200, n_filters=3, inhibition_mv=0.0)
    h = p.n_inputs // 2
    w = torch.zeros(3, p.n_inputs)
    jumps = [0.5, 2.0, 5.0]  # mV per step
    for k, j in enumerate(jumps):
        w[k, :h] = j / h
    out = D.layer_run(torch.ones(1, h), w, torch.zeros(3), p, np.random.default_rng(0))
    rate = out["counts"][0].numpy() / (p.steps * p.dt_ms / 1000)
    expected = N.lif_delta_rate_hz(np.array(jumps), p.lif)
    assert expected[0] == 0 and expected[2] > expected[1] > 0
    np.testing.assert_allclose(rate, expected, atol=1000 / p.steps * 1.01)
    assert out["input_spikes"] == p.steps * h


def test_feedforward_inhibition_lowers_each_jump_by_alpha_mean_weight_per_input_spike():
    """Every ON input spikes every step (h of them): with feed-forward inhibition alpha the
    jump is sum(w_on) - alpha * (w_sum / n_inputs) * h, and the rate is the analytic LIF
    rate of that jump: a filter that fires alone is silenced when its jump falls below the
    rheobase."""
    alpha = 0.04
    p = D.DoGLIFParams(max_rate_hz=1000.0, dt_ms=1.0, steps=200, n_filters=3, inhibition_mv=0.0,
                       feedforward_inhibition=alpha)
    h = p.n_inputs // 2
    w = torch.zeros(3, p.n_inputs)
    raw = [1.5, 5.0, 8.0]  # mV per step before the inhibition
    for k, j in enumerate(raw):
        w[k, :h] = j / h
    out = D.layer_run(torch.ones(1, h), w, torch.zeros(3), p, np.random.default_rng(0))
    jumps = np.array(raw) - alpha * p.w_sum_mv / p.n_inputs * h
    rate = out["counts"][0].numpy() / (p.steps * p.dt_ms / 1000)
    expected = N.lif_delta_rate_hz(jumps, p.lif)
    assert expected[0] == 0 and expected[2] > expected[1] > 0
    np.testing.assert_allclose(rate, expected, atol=1000 / p.steps * 1.01)
    free = D.layer_run(torch.ones(1, h), w, torch.zeros(3),
                       replace(p, feedforward_inhibition=0.0), np.random.default_rng(0))
    assert free["counts"][0, 0] > 0 and (free["counts"][0] > out["counts"][0]).all()


def test_push_pull_makes_the_drive_linear_in_the_signed_input_and_fires_at_the_lif_rate():
    """Every input pair fires every step, ON for the pixels of positive value and OFF for the
    others. With push-pull inhibition beta the jump of a pixel is w_on - beta w_off for an ON
    spike and w_off - beta w_on for an OFF spike; at beta = 1 the drive is the signed input
    times w_on - w_off, whatever its sign. The rates are the analytic LIF rates of the jumps."""
    p = D.DoGLIFParams(max_rate_hz=1000.0, dt_ms=1.0, steps=200, n_filters=3, inhibition_mv=0.0,
                       push_pull=1.0)
    h = p.n_inputs // 2
    gen = torch.Generator().manual_seed(2)
    signed = torch.where(torch.rand(1, h, generator=gen) < 0.5, -1.0, 1.0)
    w = torch.rand(3, p.n_inputs, generator=gen) * 0.02  # both polarities of every pixel
    match = torch.tensor([1.6, 2.5, 4.0])[:, None] / h  # mV per pixel along the input's sign
    w[:, :h] += match * signed.clamp(min=0)
    w[:, h:] += match * (-signed).clamp(min=0)
    want = (signed * (w[:, :h] - w[:, h:])).sum(1)  # the linear drive: c (w_on - w_off)
    felt = L._felt(w, p)
    np.testing.assert_allclose(felt[:, :h].numpy(), (w[:, :h] - w[:, h:]).numpy())
    np.testing.assert_allclose(felt[:, h:].numpy(), (w[:, h:] - w[:, :h]).numpy())
    out = D.layer_run(signed, w, torch.zeros(3), p, np.random.default_rng(0))
    assert out["input_spikes"] == p.steps * h  # every pair, every step
    rate = out["counts"][0].numpy() / (p.steps * p.dt_ms / 1000)
    expected = N.lif_delta_rate_hz(want.numpy(), p.lif)
    assert (expected > 0).all() and expected[2] > expected[1] > expected[0]
    np.testing.assert_allclose(rate, expected, atol=1000 / p.steps * 1.01)
    # half of it: the opposite polarity's weights count half
    half = L._felt(w, replace(p, push_pull=0.5))
    np.testing.assert_allclose(half[:, :h].numpy(), (w[:, :h] - 0.5 * w[:, h:]).numpy())
    # the sign of the input no longer matters to a flipped filter: -c and swapped halves
    flipped = torch.cat([w[:, h:], w[:, :h]], dim=1)
    back = D.layer_run(-signed, flipped, torch.zeros(3), p, np.random.default_rng(0))
    assert torch.equal(back["counts"], out["counts"])
    # and without it a neuron is driven by both polarities of its pixels: more spikes
    free = D.layer_run(signed, w, torch.zeros(3), replace(p, push_pull=0.0),
                       np.random.default_rng(0))
    assert (free["counts"][0] >= out["counts"][0]).all()
    assert free["counts"].sum() > out["counts"].sum()


def test_a_partner_of_opposite_phase_fires_for_the_inverted_patch_as_its_neuron_for_the_patch():
    """With push-pull inhibition, a partner (ON and OFF weights swapped) is driven by the
    filter -(w_on - w_off). Every input pair fires every step (ON for the pixels of positive
    value, OFF for the others), so inverting the patch swaps the input spikes, and each
    neuron's drive becomes its partner's: the whole layer's counts, lateral inhibition
    included, swap halves."""
    p = D.DoGLIFParams(max_rate_hz=1000.0, dt_ms=1.0, steps=60, n_filters=6, push_pull=1.0,
                       opposite_phase=True)
    h = p.n_inputs // 2
    gen = torch.Generator().manual_seed(4)
    signed = torch.where(torch.rand(2, h, generator=gen) < 0.5, -1.0, 1.0)
    w = torch.rand(p.n_learned, p.n_inputs, generator=gen) * 0.3
    full = L._with_partners(w, p)
    assert full.shape == (6, p.n_inputs) and torch.equal(full[:3], w)
    assert torch.equal(full[3:, :h], w[:, h:]) and torch.equal(full[3:, h:], w[:, :h])
    np.testing.assert_allclose(L._felt(full, p)[3:].numpy(), -L._felt(full, p)[:3].numpy())
    theta = torch.tensor([-4.0, -6.0, -8.0]).repeat(2)
    out = D.layer_run(signed, full, theta, p, np.random.default_rng(0))
    inverted = D.layer_run(-signed, full, theta, p, np.random.default_rng(0))
    assert out["counts"].sum() > 0
    assert torch.equal(inverted["counts"], out["counts"].roll(3, dims=1))
    assert (out["counts"][:, :3] * out["counts"][:, 3:] == 0).all()  # opposite drives
    # without the partners the layer is its learned half: the same params, half the neurons
    assert L._with_partners(w, replace(p, opposite_phase=False)) is w


def test_partners_of_opposite_phase_copy_their_neurons_and_do_not_compete():
    """Only the learned half competes (its wins give the homeostasis step, as for a layer of
    n_filters // 2 neurons); after each batch the partners hold their neuron's swapped weights
    and its threshold."""
    p = replace(SMALL, n_filters=8, opposite_phase=True, steps=15, patch_batch=100)
    half = replace(p, n_filters=4, opposite_phase=False)
    h = p.n_inputs // 2
    net, alone = D.DoGLIF(p, seed=5), D.DoGLIF(half, seed=5)
    assert torch.equal(net.w_mv[:4], alone.w_mv)
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    patches = torch.from_numpy(np.random.default_rng(2).uniform(-1, 1, (100, h))).float()
    for _ in range(3):
        a = net.learn_batch(patches, rng_a)
        b = alone.learn_batch(patches, rng_b)
        assert a == b
    assert torch.equal(net.w_mv[:4], alone.w_mv) and torch.equal(net.theta_mv[:4], alone.theta_mv)
    assert torch.equal(net.w_mv[4:], torch.cat([alone.w_mv[:, h:], alone.w_mv[:, :h]], dim=1))
    assert torch.equal(net.theta_mv[4:], alone.theta_mv)
    assert not torch.equal(net.w_mv, net.w_initial)  # it learned


@pytest.mark.parametrize("learn", [True, False])
def test_a_fitted_layer_with_partners_codes_images_with_all_its_neurons(learn):
    """fit then features with opposite_phase: the partners mirror the learned half (the
    random twin's too) and fire; the features have n_filters * pool**2 columns."""
    p = replace(SMALL, opposite_phase=True, steps=10)
    h = p.n_inputs // 2
    net = D.DoGLIF(p, seed=0, learn=learn)
    net.fit(_images(6), progress=False)
    k = p.n_learned
    assert torch.equal(net.w_mv[k:], torch.cat([net.w_mv[:k, h:], net.w_mv[:k, :h]], dim=1))
    assert torch.equal(net.theta_mv[k:], net.theta_mv[:k])
    assert torch.equal(net.w_mv, net.w_initial) != learn
    out = net.features(_images(2, seed=1), seed=1, progress=False)
    assert out["features"].shape == (2, p.n_filters * p.pool ** 2)
    assert out["filter_spikes"][:, k:].sum() > 0 and out["filter_spikes"][:, :k].sum() > 0


def test_lateral_inhibition_silences_the_weaker_neurons():
    p = D.DoGLIFParams(max_rate_hz=1000.0, dt_ms=1.0, steps=50, n_filters=2, inhibition_mv=13.0)
    h = p.n_inputs // 2
    w = torch.zeros(2, p.n_inputs)
    w[0, :h], w[1, :h] = 5.0 / h, 4.0 / h
    free = D.layer_run(torch.ones(1, h), w, torch.zeros(2), replace(p, inhibition_mv=0.0),
                       np.random.default_rng(0))
    inhibited = D.layer_run(torch.ones(1, h), w, torch.zeros(2), p, np.random.default_rng(0))
    assert free["counts"][0, 1] > 0
    assert inhibited["counts"][0, 0] == free["counts"][0, 0]
    assert inhibited["counts"][0, 1] == 0


def test_winner_take_all_and_the_winners_stdp_change():
    """Deterministic input, a_minus = 0: only the first neuron to fire learns, by
    a_plus times the presynaptic trace at each of its spikes."""
    p = D.DoGLIFParams(max_rate_hz=1000.0, dt_ms=1.0, steps=10, n_filters=2, a_plus=0.1,
                       a_minus=0.0, tau_stdp_ms=10.0)
    h = p.n_inputs // 2
    w = torch.zeros(2, p.n_inputs)
    # jumps of 6.9 and 7.0 mV per step: both cross 13 mV at the second step
    # (6.9 (1 + e^-0.1) = 13.14); the tie goes to the larger jump, neuron 1
    w[0, :h], w[1, :h] = 6.9 / h, 7.0 / h
    out = D.layer_run(torch.ones(3, h), w, torch.zeros(2), p, np.random.default_rng(0), learn=True)
    assert out["winner"].tolist() == [1, 1, 1]
    # the winner fires every 2nd step (from reset, 7 + 7 e^-0.1 = 13.33 > 13); the loser is
    # held at reset
    counts = out["counts"]
    assert counts[:, 0].sum() == 0 and counts[:, 1].tolist() == [5.0, 5.0, 5.0]
    x = [sum(math.exp(-(k - i) / 10.0) for i in range(k + 1)) for k in range(10)]
    expected = 3 * 0.1 * sum(x[k] for k in (1, 3, 5, 7, 9))   # 3 rows; spikes at steps 1, 3, ...
    assert out["dw"][1, :h] == pytest.approx(torch.full((h,), expected), rel=1e-5)
    assert (out["dw"][1, h:] == 0).all() and (out["dw"][0] == 0).all()
    # a neuron that crosses a step earlier wins even with the smaller jump: neuron 0's 6.9 mV
    # crosses its threshold lowered by 7 mV at the first step, neuron 1's 12.9 mV only at the
    # second; with equal thresholds both cross at the second step and the larger jump wins
    w[0, :h], w[1, :h] = 6.9 / h, 12.9 / h
    first = D.layer_run(torch.ones(1, h), w, torch.tensor([-7.0, 0.0]), p,
                        np.random.default_rng(0), learn=True)
    assert first["winner"].tolist() == [0]
    tie = D.layer_run(torch.ones(1, h), w, torch.zeros(2), p, np.random.default_rng(0), learn=True)
    assert tie["winner"].tolist() == [1]


@pytest.mark.parametrize("push_pull", [0.0, 1.0])
def test_competitive_learning_separates_two_patterns(push_pull):
    """Two patterns, two neurons: STDP under winner-take-all with normalisation
    makes each neuron's weights point to one pattern (its ON/OFF inputs). With push-pull
    inhibition a neuron's random start drives it by about nothing (its ON and OFF weights
    cancel), so it first wins nothing, until homeostasis has lowered its threshold (by
    about 10 mV here, at the tier's rate)."""
    p = D.DoGLIFParams(n_filters=2, steps=15, patch_batch=100, theta_eta_mv=0.65,
                       push_pull=push_pull)
    h = p.n_inputs // 2
    rng = np.random.default_rng(1)
    a = torch.from_numpy(np.sign(rng.normal(size=h))).float() * 0.8
    b = -a.roll(h // 2)
    net = D.DoGLIF(p, seed=3)
    for i in range(30):
        labels = torch.from_numpy(rng.integers(0, 2, 100))
        patches = torch.where(labels[:, None] == 0, a, b)
        net.learn_batch(patches, rng)
    on_off = D.on_off_inputs(torch.stack([a, b]))  # (2, n_inputs)
    sim = torch.nn.functional.cosine_similarity(net.w_mv[:, None], on_off[None], dim=-1)
    # one neuron per pattern, each much closer to its own
    assert sim.argmax(dim=1).sort().values.tolist() == [0, 1]
    assert sim.max(dim=1).values.min() > 0.9
    assert torch.allclose(net.w_mv.sum(1), torch.full((2,), p.w_sum_mv), rtol=1e-4)


def test_the_spread_of_the_wins_is_0_for_a_layer_of_one_neuron():
    rng = np.random.default_rng(0)
    patches = torch.from_numpy(rng.uniform(-1, 1, (50, D.DoGLIFParams().n_inputs // 2))).float()
    one = D.DoGLIF(D.DoGLIFParams(n_filters=1, steps=10, patch_batch=50), seed=0)
    assert one.learn_batch(patches, rng)["wins_cv"] == 0.0
    net = D.DoGLIF(D.DoGLIFParams(n_filters=4, steps=10, patch_batch=50), seed=0)
    assert np.isfinite(net.learn_batch(patches, np.random.default_rng(1))["wins_cv"])


def test_pooling_sums_counts_over_regions():
    counts = torch.arange(2 * 28 * 28 * 3, dtype=torch.float32).reshape(2 * 28 * 28, 3)
    pooled = D.layer._pool(counts, 2, 28, 3)
    assert pooled.shape == (2, 9 * 3)
    np.testing.assert_allclose(pooled.reshape(2, 3, 9).sum(-1).numpy(),
                               counts.reshape(2, 784, 3).sum(1).numpy(), rtol=1e-6)
    # the first region of image 0 holds rows 0..8 and columns 0..8 of the 28 x 28 grid,
    # the last rows and columns 18..27 (10 wide); filter-major: filter k's 9 regions together
    grid = counts.reshape(2, 28, 28, 3)
    assert pooled[0, 0].item() == pytest.approx(grid[0, :9, :9, 0].sum().item())
    assert pooled[1, 9 * 2 + 8].item() == pytest.approx(grid[1, 18:, 18:, 2].sum().item())


def _top_k_by_definition(counts: np.ndarray, k: int) -> np.ndarray:
    """c_mj [c_mj >= the k-th largest count of row m], by sorting each row."""
    kth = -np.sort(-counts, axis=1)[:, k - 1:k]
    return np.where(counts >= kth, counts, 0.0)


def test_k_winners_keep_the_k_largest_counts_at_each_position_and_their_ties():
    counts = torch.tensor([[5.0, 0.0, 3.0, 3.0, 1.0],    # a tie with the 2nd largest: 3 kept
                           [0.0, 0.0, 0.0, 0.0, 2.0],    # fewer than k fired: zeros stay zeros
                           [4.0, 4.0, 4.0, 4.0, 4.0]])   # all tied: all kept
    kept = D.keep_k_winners(counts, 2)
    np.testing.assert_array_equal(kept.numpy(), [[5, 0, 3, 3, 0], [0, 0, 0, 0, 2],
                                                 [4, 4, 4, 4, 4]])
    rng = np.random.default_rng(0)
    many = torch.from_numpy(rng.poisson(2.0, size=(200, 16)).astype(np.float32))
    for k in (1, 3, 8, 15):
        got = D.keep_k_winners(many, k).numpy()
        np.testing.assert_array_equal(got, _top_k_by_definition(many.numpy(), k))
    # integer counts too, by the same rule
    np.testing.assert_array_equal(D.keep_k_winners(many.long(), 3).numpy(),
                                  _top_k_by_definition(many.numpy(), 3))
    for k in (0, 16, 40):  # 0, or at least K: the counts unchanged
        assert torch.equal(D.keep_k_winners(many, k), many)


def test_counts_pooled_on_a_finer_grid_sum_to_every_grid_dividing_it():
    """benchmarks/dog_lif_tuning.py --grids pools on the grids' least common multiple and sums
    its regions again (tier 1's pool_pyramid): exact for a grid that divides it, not otherwise."""
    from snnlib.tiers.brian_stdp.network import pool_pyramid

    n, side, k = 3, 28, 5
    counts = torch.from_numpy(np.random.default_rng(0).poisson(2.0, (n * side * side, k))
                              .astype(np.float32))
    fine = D.layer._pool(counts, n, side, 6).numpy().reshape(n, k, 6, 6).transpose(0, 2, 3, 1)
    for g in (1, 2, 3, 6):
        np.testing.assert_array_equal(pool_pyramid(fine, g),
                                      D.layer._pool(counts, n, side, g).numpy())
    np.testing.assert_array_equal(pool_pyramid(fine, (1, 2, 3)), np.hstack(
        [D.layer._pool(counts, n, side, g).numpy() for g in (1, 2, 3)]))
    # 4 does not divide 6: the regions of 6 x 6 do not nest in those of 4 x 4
    assert not np.array_equal(pool_pyramid(fine, 4), D.layer._pool(counts, n, side, 4).numpy())


@pytest.mark.parametrize("retina", ["zca", "dog"])
def test_retina_gives_signed_intensities_in_range(retina):
    p = replace(SMALL, retina=retina)
    fit = D.RetinaFit.fit(_images(40), p, seed=0)
    x = fit.intensities(_images(3, seed=1), p)
    assert x.shape == (3, 28 * 28, 75)
    assert x.min() >= -1 and x.max() <= 1
    assert (x > 0).any() and (x < 0).any()
    assert (x.abs() == 1).float().mean() < 0.05  # the scale is a high quantile: few clipped
    # on the images it was fitted to, exactly the quantile's share of the values is clipped
    fitted = fit.intensities(_images(40), p)
    assert abs(float((fitted.abs() >= 1).float().mean()) - (1 - p.scale_quantile)) < 0.002


@pytest.mark.parametrize("retina", ["zca", "dog"])
def test_a_stride_keeps_every_other_position_of_the_stride_one_retina(retina):
    p = replace(SMALL, retina=retina)
    fit = D.RetinaFit.fit(_images(40), p, seed=0)
    x1 = fit.intensities(_images(3, seed=1), p).reshape(3, 28, 28, -1)
    x2 = fit.intensities(_images(3, seed=1), replace(p, stride_px=2))
    assert x2.shape == (3, 14 * 14, 75)
    torch.testing.assert_close(x2.reshape(3, 14, 14, -1), x1[:, ::2, ::2])
    assert not torch.equal(x2.reshape(3, 14, 14, -1), x1[:, 1::2, 1::2])


@pytest.mark.parametrize("norm_eps, d", [(1e-4, 1), (0.01, 1), (0.1, 1), (0.01, 2)])
def test_the_whitening_retina_is_its_definition(norm_eps, d):
    """z = ((x - mean(x)) / sqrt(var(x) + eps_n) - mu) W for every 5 x 5 x 3 patch x of the
    images averaged over d x d blocks, with the ZCA (mu, W) fitted to the normalised patches of
    the first images at a stride of 3."""
    from snnlib import retina as R
    p = replace(SMALL, norm_eps=norm_eps, downsample=d)
    train = _images(40)
    fit = D.RetinaFit.fit(train, p, seed=0)
    def normalised(images, stride):
        x = torch.as_tensor(images).double().permute(0, 3, 1, 2) / 255
        n, side = len(x), 32 // d
        x = x.reshape(n, 3, side, d, side, d).mean(dim=(3, 5))  # the d x d blocks' means
        c = R.extract_patches(x, 5, stride=stride)
        return (c - c.mean(-1, keepdim=True)) / (c.var(-1, keepdim=True) + norm_eps).sqrt()

    zca = R.zca_fit(normalised(train, 3), eps=p.zca_eps)
    want = ((normalised(_images(2, seed=1), 1) - zca.mean) @ zca.matrix / fit.scale).clamp(-1, 1)
    want = want.reshape(2, (32 // d - 4) ** 2, 75)
    torch.testing.assert_close(fit.intensities(_images(2, seed=1), p).double(), want,
                               atol=2e-4, rtol=1e-3)


def test_a_retina_is_applied_only_with_the_contrast_floor_it_was_fitted_after():
    p = replace(SMALL, norm_eps=0.03)
    fit = D.RetinaFit.fit(_images(40), p, seed=0)
    assert fit.norm_eps == 0.03
    assert D.RetinaFit.from_state(fit.state_dict()).norm_eps == 0.03
    with pytest.raises(ValueError, match="norm_eps is 0.01 but .* contrast floor of 0.03"):
        fit.intensities(_images(2), SMALL)
    net = D.DoGLIF(p, seed=0)
    net.fit(_images(6), retina=fit)
    other = D.DoGLIF(SMALL, seed=0)
    with pytest.raises(ValueError, match="DoGLIF.load_state_dict: p.norm_eps"):
        other.load_state_dict(net.state_dict())
    assert other.retina is None
    assert D.RetinaFit.fit(_images(40), replace(SMALL, retina="dog"), seed=0).norm_eps is None


def test_a_retina_is_applied_only_at_the_scale_it_was_fitted_at():
    p = replace(SMALL, downsample=2)
    fit = D.RetinaFit.fit(_images(40), p, seed=0)
    assert fit.downsample == 2 and D.RetinaFit.from_state(fit.state_dict()).downsample == 2
    assert D.RetinaFit.from_state(D.RetinaFit.fit(_images(40), SMALL, seed=0)
                                  .state_dict()).downsample == 1  # and stored ones say nothing
    with pytest.raises(ValueError, match="downsample is 1 but .* blocks of 2 x 2"):
        fit.intensities(_images(2), SMALL)
    with pytest.raises(ValueError, match="downsample is 2 but .* images as they are"):
        D.RetinaFit.fit(_images(40), SMALL, seed=0).intensities(_images(2), p)
    dog = replace(p, retina="dog")
    dog_fit = D.RetinaFit.fit(_images(40), dog, seed=0)
    x = dog_fit.intensities(_images(2), dog)
    # the DoG of the 2 x 2 blocks' means, cut into 5 x 5 patches, scaled and clipped
    from snnlib import retina as R
    m = torch.as_tensor(_images(2)).float().div(255).reshape(2, 16, 2, 16, 2, 3).mean(dim=(2, 4))
    want = torch.nn.functional.unfold(R.colour_opponent(m, dog.dog), 5).transpose(1, 2)
    assert x.shape == (2, 12 * 12, 75)
    torch.testing.assert_close(x, (want / dog_fit.scale).clamp(-1, 1), atol=1e-5, rtol=1e-4)
    net = D.DoGLIF(p, seed=0)
    net.fit(_images(6), retina=fit, progress=False)
    f = net.features(_images(3, seed=2), seed=1, progress=False)["features"]
    assert f.shape == (3, p.n_features) and f.sum() > 0
    with pytest.raises(ValueError, match="DoGLIF.spikes_of_image: params may not change .*"
                                         "downsample"):
        net.spikes_of_image(_images(1)[0], seed=0, params=SMALL)
    # the positions are those of the network's own retina, whatever params' stride
    with pytest.raises(ValueError, match=r"\[0, 143\] \(the 12 x 12 positions\)"):
        net.spikes_of_image(_images(1)[0], seed=0, positions=[144],
                            params=replace(p, stride_px=2))
    other = D.DoGLIF(SMALL, seed=0)
    with pytest.raises(ValueError, match="DoGLIF.load_state_dict: p.downsample"):
        other.load_state_dict(net.state_dict())
    same = D.DoGLIF(p, seed=0)
    same.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(
        same.features(_images(3, seed=2), seed=1, progress=False)["features"], f)


def test_retina_refuses_channels_first_images():
    with pytest.raises(ValueError, match="channels last"):
        D.RetinaFit.fit(np.zeros((4, 3, 32, 32), np.uint8), SMALL, seed=0)


def test_features_are_seeded_and_resume_from_their_checkpoint(tmp_path):
    train, test = _images(30), _images(6, seed=5)
    net = D.DoGLIF(SMALL, seed=0)
    hist = net.fit(train, progress=False)
    assert len(hist["no_winner"]) == 3 and hist["w_change"][0] > 0
    a = net.features(test, seed=1, progress=False, checkpoint=tmp_path / "f", part_images=4)
    assert a["features"].shape == (6, SMALL.n_features) and a["features"].sum() > 0
    assert a["computed_images"] == 6
    # an interruption after the first part: the second part is recomputed, the first loaded
    parts = sorted((tmp_path / "f").glob("part_*.npz"))
    assert len(parts) == 2
    parts[1].unlink()
    b = net.features(test, seed=1, progress=False, checkpoint=tmp_path / "f", part_images=4)
    assert b["computed_images"] == 2
    np.testing.assert_array_equal(a["features"], b["features"])
    assert b["wall_s"] > b["computed_wall_s"] > 0  # the loaded part's time is counted too
    c = net.features(test, seed=1, progress=False, part_images=4)
    np.testing.assert_array_equal(a["features"], c["features"])
    # a checkpoint made with other numbers (another seed) is not loaded: recomputed
    e = net.features(test, seed=2, progress=False, checkpoint=tmp_path / "f", part_images=4)
    assert e["computed_images"] == 6
    assert not np.array_equal(a["features"], e["features"])
    d = net.features(test, seed=2, progress=False, part_images=4)
    assert not np.array_equal(a["features"], d["features"])
    # synaptic operations: each input spike once per neuron of its position, and an input of
    # intensity |x| fires with probability |x| p_max a step (Poisson); five images, so that the
    # last batch is short
    odd = _images(5, seed=6)
    x = net.retina.intensities(odd, SMALL)
    expected = SMALL.n_filters * SMALL.steps * SMALL.p_max * float(x.abs().sum()) / len(odd)
    ops = net.features(odd, seed=1, progress=False)["synaptic_ops_per_image"]
    assert ops == pytest.approx(expected, rel=0.01)


def _same(a: dict, b: dict) -> None:
    for k in ("features", "filter_spikes"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["synaptic_ops_per_image"] == b["synaptic_ops_per_image"]


@pytest.mark.parametrize("compiled", [True, False])
def test_a_layer_and_its_twin_simulated_together_give_their_own_features(tmp_path, monkeypatch,
                                                                         compiled):
    # the same input spikes for both (one draw, one search for the fired inputs per step),
    # each its own jumps and LIF steps: every count as in each network's own call, bit for
    # bit; a part saved for one network is loaded and the other computes it alone
    if not compiled:
        monkeypatch.setattr(L._LIF_COUNTS, "fn", False)  # as where torch.compile is not available
    train, test = _images(30), _images(6, seed=5)
    stdp, twin = D.DoGLIF(SMALL, seed=0), D.DoGLIF(SMALL, seed=0, learn=False)
    stdp.fit(train, progress=False)
    twin.fit(train, progress=False)
    alone = [n.features(test, seed=1, progress=False, part_images=4) for n in (stdp, twin)]
    assert not np.array_equal(alone[0]["features"], alone[1]["features"])
    assert alone[0]["synaptic_ops_per_image"] == alone[1]["synaptic_ops_per_image"] > 0
    draws = []
    real = L._fused_runs
    monkeypatch.setattr(L, "_fused_runs", lambda s, layers, *a: draws.append(len(layers))
                        or real(s, layers, *a))
    both = D.features_together([stdp, twin], test, seed=1, progress=False, part_images=4,
                               checkpoints=[tmp_path / "s", tmp_path / "r"])
    assert draws.count(2) == 3  # three batches (2 + 2 + 2 images), both layers in each
    for a, b in zip(both, alone):
        _same(a, b)
        assert a["computed_images"] == 6 and a["wall_s"] > 0
    # the twin's second part lost: loaded for the layer, computed for the twin alone
    sorted((tmp_path / "r").glob("part_*.npz"))[1].unlink()
    draws.clear()
    again = D.features_together([stdp, twin], test, seed=1, progress=False, part_images=4,
                                checkpoints=[tmp_path / "s", tmp_path / "r"])
    assert draws and 2 not in draws
    assert [f["computed_images"] for f in again] == [0, 2]
    for a, b in zip(again, alone):
        _same(a, b)
    # a network whose input differs (another retina) is computed on its own
    other = D.DoGLIF(SMALL, seed=0, learn=False)
    other.fit(_images(30, seed=1), progress=False)
    draws.clear()
    mixed = D.features_together([stdp, other], test, seed=1, progress=False, part_images=4)
    assert draws and 2 not in draws
    _same(mixed[0], alone[0])
    _same(mixed[1], other.features(test, seed=1, progress=False, part_images=4))
    with pytest.raises(ValueError, match="one folder"):
        D.features_together([stdp, twin], test, seed=1, checkpoints=[tmp_path / "s"])
    with pytest.raises(ValueError, match="nets"):
        D.features_together([], test, seed=1)
    with pytest.raises(TypeError, match="nets.1. must be a DoGLIF"):
        D.features_together([stdp, "twin"], test, seed=1)
    with pytest.raises(TypeError, match="checkpoints"):
        D.features_together([stdp], test, seed=1, checkpoints=str(tmp_path))


def test_homeostasis_moves_each_threshold_by_its_share_of_the_wins():
    """theta_k <- theta_k + eta (K wins_k / n - 1), floored at -0.9 v_gap; the spread of the
    wins is their coefficient of variation."""
    p = D.DoGLIFParams(n_filters=8, steps=10, patch_batch=100)
    net = D.DoGLIF(p, seed=0, learn=False)
    patches = torch.from_numpy(np.random.default_rng(2).uniform(-1, 1, (100, 75))).float()
    out = D.layer_run(patches, net.w_mv, net.theta_mv, p, np.random.default_rng(1), learn=True)
    wins = torch.bincount(out["winner"][out["winner"] >= 0], minlength=8).float()
    assert len(set(wins.tolist())) > 1  # the neurons won different numbers of patches
    step = net.learn_batch(patches, np.random.default_rng(1))
    expected = (p.theta_eta_mv * (8 * wins / 100 - 1)).clamp(min=-0.9 * p.v_gap_mv)
    assert torch.allclose(net.theta_mv, expected)
    assert step["wins_cv"] == pytest.approx(float(wins.std() / wins.mean()))


def test_random_network_adapts_thresholds_but_keeps_its_weights():
    net = D.DoGLIF(SMALL, seed=0, learn=False)
    w0 = net.w_mv.clone()
    net.fit(_images(30), progress=False)
    assert torch.equal(net.w_mv, w0)
    assert net.theta_mv.abs().sum() > 0
    # a twin given the fitted retina learns exactly as one that fits its own
    own, given = D.DoGLIF(SMALL, seed=0), D.DoGLIF(SMALL, seed=0)
    own.fit(_images(30), progress=False)
    given.fit(_images(30), progress=False, retina=net.retina)
    assert given.retina is net.retina
    assert torch.equal(own.w_mv, given.w_mv)


def test_state_dict_round_trip():
    net = D.DoGLIF(SMALL, seed=0)
    net.fit(_images(30), progress=False)
    other = D.DoGLIF(SMALL, seed=0)
    other.load_state_dict(net.state_dict())
    test = _images(2, seed=9)
    np.testing.assert_array_equal(net.features(test, seed=1, progress=False)["features"],
                                  other.features(test, seed=1, progress=False)["features"])


def test_features_compile_at_their_own_sizes_before_the_first_batch(monkeypatch):
    # torch.compile tunes its code to the sizes of its first call: features() must make that
    # call at its batches' sizes (image_batch images of side x side positions), first
    net = D.DoGLIF(SMALL, seed=0)
    net.fit(_images(30), progress=False)
    calls, ready = [], L._fused_ready
    monkeypatch.setattr(L, "_fused_ready", lambda x, w, *a: calls.append((len(x), len(w)))
                        or ready(x, w, *a))
    net.features(_images(SMALL.image_batch + 1, seed=4), seed=1, progress=False)
    full, tail = SMALL.image_batch * SMALL.side ** 2, 1 * SMALL.side ** 2  # a short last batch
    assert calls[0] == (full, SMALL.n_filters)
    assert set(calls) == {(full, SMALL.n_filters), (tail, SMALL.n_filters)}


def test_features_need_a_fitted_retina():
    with pytest.raises(RuntimeError, match="fit"):
        D.DoGLIF(SMALL, seed=0).features(_images(2), seed=0, progress=False)


def test_spikes_of_one_image_are_recorded_step_by_step():
    net = D.DoGLIF(SMALL, seed=0)
    net.fit(_images(30), progress=False)
    rec = net.spikes_of_image(_images(1, seed=3)[0], seed=0, positions=[0, 100, 200])
    assert rec["trains"].shape == (SMALL.steps, 3, SMALL.n_filters)
    assert rec["v_mem"].shape == rec["trains"].shape
    assert rec["input_trains"].shape == (SMALL.steps, 3, SMALL.n_inputs)
    assert torch.equal(rec["trains"].sum(0).float(), rec["counts"])


def _random_layer(p: D.DoGLIFParams, m: int, seed: int = 0) -> tuple:
    """Signed intensities of m positions, normalised random weights and threshold offsets."""
    from snnlib.plasticity import normalize_weights

    gen = torch.Generator().manual_seed(seed)
    signed = torch.rand(m, p.n_inputs // 2, generator=gen) * 2 - 1
    w = normalize_weights(torch.rand(p.n_filters, p.n_inputs, generator=gen), p.w_sum_mv)
    # with push-pull inhibition random weights drive their neurons by about nothing (their
    # ON and OFF weights cancel): thresholds lowered as homeostasis would lower them
    return signed, w, torch.randn(p.n_filters, generator=gen) - 11.0 * p.push_pull


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU")
@pytest.mark.parametrize("ffi, inhibition, drive, code", [
    (0.0, 13.0, "float32", "poisson"), (1.0, 0.0, "float32", "poisson"),
    (0.0, 13.0, "bfloat16", "poisson"), (0.0, 13.0, "float32", "regular"),
    (0.0, 13.0, "bfloat16", "regular")])
def test_the_compiled_feature_steps_give_the_uncompiled_layers_spikes(monkeypatch, ffi,
                                                                       inhibition, drive, code):
    p = D.DoGLIFParams(n_filters=32, feedforward_inhibition=ffi, inhibition_mv=inhibition,
                       drive_dtype=drive, input_code=code)
    signed, w, theta = _random_layer(p, 700)
    theta = theta - 13.0 * ffi  # zero-mean jumps of random weights: lower thresholds to fire
    assert L._fused_ready(signed, w, theta, p)  # the compiled steps run: no fallback
    fused = D.layer_run(signed, w, theta, p, np.random.default_rng(1))
    monkeypatch.setattr(L._LIF_COUNTS, "fn", False)  # this process cannot compile, say
    assert not L._fused_ready(signed, w, theta, p)
    plain = D.layer_run(signed, w, theta, p, np.random.default_rng(1))
    assert fused["input_spikes"] == plain["input_spikes"]  # the same random numbers
    assert plain["counts"].sum() > 20 * len(signed), "vacuous: the layer hardly fired"
    # the same equations: a spike may differ where a potential is rounded differently
    assert float((fused["counts"] != plain["counts"]).float().mean()) < 1e-3
    np.testing.assert_allclose(float(fused["counts"].sum()), float(plain["counts"].sum()),
                               rtol=1e-4)


def test_regular_inputs_fire_the_floor_or_the_ceiling_of_their_mean_count():
    # input_code="regular": each input pair fires floor(T x p_max) or ceil(T x p_max) times
    # (encoding.regular_step), through ON where its value is positive, OFF where negative;
    # Poisson inputs of the same intensities spread far beyond that band
    p = D.DoGLIFParams(n_filters=16, steps=30, input_code="regular")
    signed, w, theta = _random_layer(p, 300, seed=4)
    h = signed.shape[1]
    lam = signed.abs() * p.p_max * p.steps
    low, high = torch.floor(lam + 1e-4), torch.ceil(lam - 1e-4)  # floor and ceiling of T x p
    band = []
    for code in ("regular", "poisson"):
        out = D.layer_run(signed, w, theta, replace(p, input_code=code),
                          np.random.default_rng(0), record=True)
        trains = out["input_trains"].float()  # (T, M, 2h), ON first
        on, off = trains[..., :h].sum(0), trains[..., h:].sum(0)
        assert not on[signed <= 0].any() and not off[signed >= 0].any()
        pair = on + off
        assert float(pair.sum()) == out["input_spikes"]
        band.append(float(((pair >= low) & (pair <= high)).float().mean()))
    assert band[0] > 0.999 and band[1] < 0.6, band
    # learning draws the phases first too: the same input spikes as the recorded run
    learned = D.layer_run(signed, w, theta, p, np.random.default_rng(0), learn=True)
    assert learned["winner"].ge(0).any(), "vacuous: no neuron won"
    recorded = D.layer_run(signed, w, theta, p, np.random.default_rng(0), record=True)
    assert learned["input_spikes"] == recorded["input_spikes"]
    assert float(low.sum()) <= learned["input_spikes"] <= float(high.sum())
    # the same generator state: the same phases, the same spikes
    again = D.layer_run(signed, w, theta, p, np.random.default_rng(0), record=True)
    assert torch.equal(again["input_trains"], recorded["input_trains"])


def test_the_gathered_drive_is_the_product_of_the_spikes_and_the_weights():
    # J = s w^T summed over the fired inputs only: the same spikes as _input_spikes, the same
    # sum in another order; a position where nothing fired gets J = 0
    p = D.DoGLIFParams(n_filters=24)
    signed, w, _ = _random_layer(p, 400, seed=3)
    signed[:7] = 0.0  # positions that cannot fire
    h = signed.shape[1]
    u = torch.rand(signed.shape, generator=torch.Generator().manual_seed(1))
    p_spike = signed.abs() * p.p_max
    s = L._input_spikes(p_spike, (signed > 0).float(), u)
    pair_input = L._pair_input(signed)
    # the input each pair fires through is the one _input_spikes puts its spike in
    fired_at = s.nonzero(as_tuple=True)
    assert torch.equal(fired_at[1], pair_input[fired_at[0], fired_at[1] % h])
    jump, fired = L._gathered_drive(u < p_spike, pair_input, w.T.contiguous())
    assert fired == int(s.sum()) and 0 < fired < s.numel() / 3
    exact = s.double() @ w.T.double()
    np.testing.assert_allclose(jump.double().numpy(), exact.numpy(), rtol=1e-5, atol=1e-4)
    assert torch.equal(jump[:7], torch.zeros(7, p.n_filters))
    # one input fired: exactly that input's weights
    one = torch.zeros_like(u, dtype=torch.bool)
    one[3, 5] = True
    single, n = L._gathered_drive(one, pair_input, w.T.contiguous())
    assert n == 1 and torch.equal(single[3], w[:, pair_input[3, 5]])
    assert not single[torch.arange(len(u)) != 3].any()


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU")
def test_the_compiled_steps_gather_on_the_cpu_and_multiply_elsewhere(monkeypatch):
    # the float32 drive is gathered on the CPU only; the product it replaces (what a GPU
    # runs) gives the same input spikes and, up to rounding, the same layer spikes
    p = D.DoGLIFParams(n_filters=32)
    assert L._gathers(p, torch.device("cpu"))
    assert not L._gathers(p, torch.device("cuda"))
    assert not L._gathers(replace(p, drive_dtype="bfloat16"), torch.device("cpu"))
    signed, w, theta = _random_layer(p, 600, seed=2)
    gathered = D.layer_run(signed, w, theta, p, np.random.default_rng(4))
    calls = []
    monkeypatch.setattr(L, "_gathers", lambda *a: False)
    monkeypatch.setattr(L, "_gathered_drive", lambda *a: calls.append(1))
    monkeypatch.setattr(L, "_WARMED", set())  # warmed again without the gather
    assert L._fused_ready(signed, w, theta, p) and callable(L._INPUT_SPIKES.fn)
    product = D.layer_run(signed, w, theta, p, np.random.default_rng(4))
    assert not calls
    assert product["input_spikes"] == gathered["input_spikes"]
    assert gathered["counts"].sum() > 20 * len(signed), "vacuous: the layer hardly fired"
    assert float((product["counts"] != gathered["counts"]).float().mean()) < 1e-3


def test_the_uncompiled_loop_gathers_too_and_records_the_inputs_that_fired(monkeypatch):
    # without learning, the float32 loop on the CPU (recording, or where nothing compiles)
    # gathers its drive as the compiled steps do; what it records is the ON/OFF spikes that
    # poisson_on_off draws from the same numbers; learning multiplies
    p = D.DoGLIFParams(n_filters=32)
    signed, w, theta = _random_layer(p, 600, seed=5)
    calls = []
    real = L._gathered_drive
    monkeypatch.setattr(L, "_gathered_drive", lambda *a: calls.append(1) or real(*a))
    rec = D.layer_run(signed, w, theta, p, np.random.default_rng(6), record=True)
    assert len(calls) == p.steps
    rng = np.random.default_rng(6)
    drawn = torch.stack([D.poisson_on_off(signed, p.p_max, rng) > 0 for _ in range(p.steps)])
    assert torch.equal(rec["input_trains"], drawn)
    assert rec["input_spikes"] == float(drawn.sum()) > 0
    assert rec["counts"].sum() > 20 * len(signed), "vacuous: the layer hardly fired"
    monkeypatch.setattr(L, "_gathers", lambda *a: False)
    product = D.layer_run(signed, w, theta, p, np.random.default_rng(6), record=True)
    assert len(calls) == p.steps  # not called again
    assert torch.equal(product["input_trains"], rec["input_trains"])
    assert float((product["counts"] != rec["counts"]).float().mean()) < 1e-3
    monkeypatch.undo()
    monkeypatch.setattr(L, "_gathered_drive", lambda *a: calls.append(1) or real(*a))
    D.layer_run(signed, w, theta, p, np.random.default_rng(6), learn=True)
    assert len(calls) == p.steps


def test_a_bfloat16_drive_is_the_float32_drive_within_two_roundings():
    # J = s w^T with w rounded to bfloat16 (8 significant bits: a relative error <= 2^-8
    # each, and w >= 0) and the sum rounded once more:
    # |J_bf16 - J| <= (2^-8 + 2^-8 (1 + 2^-8)) |J| < 2^-6.99 |J|
    p = D.DoGLIFParams(n_filters=64, drive_dtype="bfloat16")
    signed, w, _ = _random_layer(p, 500)
    s = D.poisson_on_off(signed, p.p_max, np.random.default_rng(0))
    w_t, low = L._drive_weights(w, p)
    assert low == torch.bfloat16 and w_t.dtype == torch.bfloat16
    fast = (s.to(low) @ w_t).double()
    exact = s.double() @ w.T.double()
    assert float(exact.sum()) > 0
    assert torch.all((fast - exact).abs() <= 2.0 ** -6.99 * exact.abs())
    assert not torch.equal(fast, exact)  # it is rounded: a different, cheaper model
    # learning always uses the float32 weights
    assert L._drive_weights(w, p, learn=True)[1] is None
    assert L._drive_weights(w, replace(p, drive_dtype="float32"))[1] is None


def test_learning_does_not_depend_on_the_drive_dtype():
    p = D.DoGLIFParams(n_filters=16)
    signed, w, theta = _random_layer(p, 200)
    a = D.layer_run(signed, w, theta, p, np.random.default_rng(3), learn=True)
    b = D.layer_run(signed, w, theta, replace(p, drive_dtype="bfloat16"),
                    np.random.default_rng(3), learn=True)
    assert torch.equal(a["dw"], b["dw"]) and float(a["dw"].abs().sum()) > 0


def test_an_unknown_drive_dtype_is_refused():
    with pytest.raises(ValueError, match="drive_dtype must be 'float32' or 'bfloat16'"):
        D.DoGLIFParams(drive_dtype="float16")


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile needs a C++ compiler on the CPU")
@pytest.mark.parametrize("drive", ["float32", "bfloat16"])
def test_once_warmed_up_a_run_compiles_nothing_more(monkeypatch, drive):
    # the warm-up's code must serve the real calls: a run that compiled again would compile
    # inside the clock, after drawing random numbers
    p = D.DoGLIFParams(n_filters=40, drive_dtype=drive)
    signed, w, theta = _random_layer(p, 333)
    monkeypatch.setattr(L, "_WARMED", set())  # warm up here, even if another test did
    assert L._fused_ready(signed, w, theta, p)
    with torch._dynamo.config.patch(error_on_recompile=True):
        out = D.layer_run(signed, w, theta, p, np.random.default_rng(5))
    assert out["counts"].sum() > 0


def _no_compiler(*args):
    raise torch._dynamo.exc.BackendCompilerFailed(
        lambda: None, RuntimeError("No working C++ compiler found\nmore"), None)


@pytest.mark.parametrize("drive, first", [("float32", "LIF step"),
                                          ("bfloat16", "input spikes")])
def test_where_compiling_fails_the_layer_runs_uncompiled_after_one_warning(monkeypatch, drive,
                                                                          first):
    # the float32 drive gathers its jumps (nothing to compile before the LIF step); the
    # bfloat16 drive compiles the input spikes first
    import warnings

    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: _no_compiler)
    monkeypatch.setattr(L._INPUT_SPIKES, "fn", None)
    monkeypatch.setattr(L._LIF_COUNTS, "fn", None)
    monkeypatch.setattr(L, "_WARMED", set())
    p = D.DoGLIFParams(n_filters=16, drive_dtype=drive)
    signed, w, theta = _random_layer(p, 300)
    with pytest.warns(RuntimeWarning, match=f"{first} could not be compiled .RuntimeError: "
                                            "No working C.. compiler found\\)"):
        out = D.layer_run(signed, w, theta, p, np.random.default_rng(2))
    assert (L._LIF_COUNTS if drive == "float32" else L._INPUT_SPIKES).fn is False
    if drive == "float32":  # the gathered drive never asks for the compiled input spikes
        assert L._INPUT_SPIKES.fn is None
    # the uncompiled loop from the generator's first number (record=True never compiles)
    rec = D.layer_run(signed, w, theta, p, np.random.default_rng(2), record=True)
    assert torch.equal(out["counts"], rec["counts"]) and out["counts"].sum() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per process, not one per call
        again = D.layer_run(signed, w, theta, p, np.random.default_rng(2))
    assert torch.equal(again["counts"], rec["counts"])


def test_a_step_that_fails_to_compile_for_the_runs_shapes_falls_back_before_any_draw(
        monkeypatch):
    # compiled on small shapes, then the LIF step fails for this run's own: the run must
    # fall back before it draws a random number, and give the uncompiled loop's spikes
    p = D.DoGLIFParams(n_filters=16)
    signed, w, theta = _random_layer(p, 300)
    monkeypatch.setattr(L._LIF_COUNTS, "fn", _no_compiler)  # as if compiled, then failing
    monkeypatch.setattr(L, "_WARMED", set())  # these shapes are new to it
    with pytest.warns(RuntimeWarning, match="LIF step could not be compiled"):
        out = D.layer_run(signed, w, theta, p, np.random.default_rng(4))
    assert L._LIF_COUNTS.fn is False
    rec = D.layer_run(signed, w, theta, p, np.random.default_rng(4), record=True)
    assert torch.equal(out["counts"], rec["counts"]) and out["counts"].sum() > 0


def test_the_command_runs_the_tier_with_its_baselines_and_resumes(tmp_path, monkeypatch, capsys):
    import snnlib.__main__ as cli
    from snnlib import data

    fake = data.Dataset(_images(100, seed=2), np.repeat(np.arange(10), 10), data.CLASS_NAMES,
                        str(tmp_path))
    monkeypatch.setattr(data, "load_cifar10", lambda split: fake)
    out, results = tmp_path / "run", tmp_path / "dog_lif.json"
    args = ["run", "dog_lif", "--profile", "ci", "--out", str(out), "--results", str(results)]
    assert cli.main(args) == 0
    rec = runs.load_record(results, tier="dog_lif")
    assert rec.train_images == 100 and rec.test_images == 100 and rec.device == "cpu"
    assert set(rec.baselines) == {
        "logistic regression, random-weight layer's spike counts",
        "logistic regression, raw pixels (RGB)",
        "logistic regression, colour-opponent DoG of the pixels", "chance"}
    assert 0 <= rec.accuracy <= 1
    assert rec.synaptic_events.accumulates == rec.specific["synaptic_operations_per_image"]["stdp"] > 0
    assert rec.firing["STDP layer"]["spikes_per_image"] > 0
    assert rec.time_steps == D.DoGLIFParams().steps and rec.dt_ms == D.DoGLIFParams().dt_ms
    printed = capsys.readouterr().out
    assert "the tier" in printed and "raw pixels (RGB)" in printed
    # run again: the layers and every feature part come from the checkpoints
    first = sorted(p.stat().st_mtime_ns for p in out.rglob("*.npz"))
    assert cli.main(args) == 0
    assert sorted(p.stat().st_mtime_ns for p in out.rglob("*.npz")) == first
    again = runs.load_record(results)
    assert again.accuracy == rec.accuracy and again.firing == rec.firing  # spikes reloaded too


def test_features_pool_the_k_winners_counts_and_report_every_spike(monkeypatch):
    train, test = _images(30), _images(4, seed=5)
    every = D.DoGLIF(SMALL, seed=0)
    every.fit(train, progress=False)
    sparse = D.DoGLIF(replace(SMALL, k_winners=1), seed=0)  # push-pull: a sparse code
    sparse.load_state_dict(every.state_dict())
    seen = []
    run = L._features_runs

    def recording(*args, **kw):
        outs = run(*args, **kw)
        seen.extend(out["counts"].clone() for out in outs)
        return outs

    monkeypatch.setattr(L, "_features_runs", recording)
    a = every.features(test, seed=1, progress=False)
    b = sparse.features(test, seed=1, progress=False)
    assert len(seen) == 4  # two batches of two images each
    assert all(torch.equal(x, y) for x, y in zip(seen[:2], seen[2:]))  # the same spikes
    counts = torch.cat(seen[2:])  # (4 images x 784 positions, 8 neurons)
    kept = torch.from_numpy(_top_k_by_definition(counts.numpy(), 1))
    np.testing.assert_array_equal(b["features"], L._pool(kept, 4, SMALL.side, SMALL.pool).numpy())
    np.testing.assert_array_equal(a["features"], L._pool(counts, 4, SMALL.side, SMALL.pool).numpy())
    assert (b["features"] <= a["features"]).all() and b["features"].sum() < a["features"].sum()
    # every spike, kept or not, in the firing statistics
    per_filter = counts.reshape(4, -1, SMALL.n_filters).sum(1).numpy()
    for f in (a, b):
        np.testing.assert_array_equal(f["filter_spikes"], per_filter)
        assert f["layer_spikes_per_image"] == pytest.approx(per_filter.sum(1).mean())


def test_spike_statistics_give_rates_from_each_filters_spikes():
    p = D.DoGLIFParams(n_filters=3, steps=10, dt_ms=2.0)  # 20 ms, 28 x 28 positions
    spikes = np.array([[784.0, 0.0, 1568.0], [784.0, 0.0, 3136.0]])  # per image, per filter
    st = D.spike_statistics(spikes, p)
    rates = np.array([1.0, 0.0, 3.0]) / 0.020  # spikes per position per image / duration
    assert st["rate_hz"] == pytest.approx(rates.mean())
    assert st["spikes_per_image"] == pytest.approx(spikes.sum(1).mean())
    assert st["silent_filters"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(st["filter_rate_hz_percentiles"], np.percentile(rates, [5, 50, 95]))


def test_the_features_k_winners_share_one_trained_layer(tmp_path, monkeypatch):
    params = D.DoGLIFParams(n_filters=8, train_patches=500, patch_batch=250)
    images = _images(40, seed=5)
    first = D.run._layer(tmp_path, "stdp", params, images, seed=0, progress=False)
    monkeypatch.setattr(D.DoGLIF, "fit", lambda *a, **k: pytest.fail("learned again"))
    again = D.run._layer(tmp_path, "stdp", replace(params, k_winners=3), images, seed=0,
                         progress=False)
    assert torch.equal(again.w_mv, first.w_mv) and again.params.k_winners == 3


def test_a_changed_training_image_makes_the_layer_learn_again(tmp_path):
    params = D.DoGLIFParams(n_filters=8, train_patches=500, patch_batch=250)
    images = _images(40, seed=5)
    first = D.run._layer(tmp_path, "stdp", params, images, seed=0, progress=False)
    path = tmp_path / "layer_stdp.npz"
    mtime = path.stat().st_mtime_ns
    again = D.run._layer(tmp_path, "stdp", params, images, seed=0, progress=False)
    assert path.stat().st_mtime_ns == mtime and torch.equal(again.w_mv, first.w_mv)  # loaded
    changed = images.copy()
    changed[37, 5, 5, 0] ^= 1  # one bit of one pixel of one image (not one of every 64th)
    D.run._layer(tmp_path, "stdp", params, changed, seed=0, progress=False)
    assert path.stat().st_mtime_ns != mtime  # the cache is keyed on every training image


def test_a_changed_image_invalidates_only_its_feature_part(tmp_path):
    net = D.DoGLIF(D.DoGLIFParams(n_filters=8, train_patches=500, patch_batch=250), seed=0)
    images = _images(12, seed=4)
    net.fit(images, progress=False)
    folder = tmp_path / "features"
    first = net.features(images, seed=1, checkpoint=folder, part_images=4, progress=False)
    mtimes = lambda: [p.stat().st_mtime_ns for p in sorted(folder.glob("part_*.npz"))]  # noqa: E731
    before = mtimes()
    changed = images.copy()
    changed[5, 31, 31, 2] ^= 1  # the second part's second image, one channel of one pixel
    again = net.features(changed, seed=1, checkpoint=folder, part_images=4, progress=False)
    after = mtimes()
    assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
    assert again["computed_images"] == 4
    np.testing.assert_array_equal(again["features"][:4], first["features"][:4])
    np.testing.assert_array_equal(again["filter_spikes"][:4], first["filter_spikes"][:4])
    assert again["filter_spikes"][:4].sum() > 0  # loaded with its part, not left at zero
    # a truncated part is set aside and recomputed, and the run says so
    part = sorted(folder.glob("part_*.npz"))[2]
    part.write_bytes(part.read_bytes()[:100])
    redone = net.features(changed, seed=1, checkpoint=folder, part_images=4, progress=False)
    assert redone["computed_images"] == 4 and (folder / (part.name + ".stale")).exists()
    np.testing.assert_array_equal(redone["features"], again["features"])
    np.testing.assert_array_equal(redone["filter_spikes"], again["filter_spikes"])


def test_the_record_says_which_split_chose_the_design(tmp_path):
    """run_tier (ci size) writes a record that names the validation split and what it chose."""
    from snnlib import profiles, runs
    from snnlib.tiers.dog_lif import run as R

    record, _ = R.run_tier(profiles.get_profile("ci"), out_dir=tmp_path, seed=0, progress=False)
    chosen = runs.load_record(tmp_path / "tier_record.json").specific["chosen_on"]
    assert chosen == R.CHOSEN_ON == record.specific["chosen_on"]
    assert chosen["split"].startswith("validation: the last 500 training images of each class")
    assert "benchmarks/dog_lif_tuning.py" in chosen["layer (retina, pooling grid, filters, step length)"]


def test_a_profile_with_mirror_test_reads_out_each_test_image_with_its_mirror_image(
        tmp_path, monkeypatch):
    from snnlib import data, profiles, runs
    from snnlib.tiers.dog_lif import run as R

    fake = data.Dataset(_images(100, seed=2), np.repeat(np.arange(10), 10), data.CLASS_NAMES,
                        str(tmp_path))
    monkeypatch.setattr(data, "load_cifar10", lambda split: fake)
    ci = profiles.get_profile("ci")
    mirrored = replace(ci, dog_lif=replace(ci.dog_lif, mirror_test=True))
    plain, pd = R.run_tier(ci, out_dir=tmp_path / "plain", seed=0, progress=False)
    rec, md = R.run_tier(mirrored, out_dir=tmp_path / "mirror", seed=0, progress=False)
    assert runs.load_record(tmp_path / "mirror" / "tier_record.json").specific["test_views"] \
        .startswith("each test image and its left-right mirror image")
    assert plain.specific["test_views"] == "each test image alone"
    # the mirror images are simulated: their features differ from the images' own
    for net in ("stdp", "random"):
        f = md["features"][net]
        assert f["test_mirrored"].shape == f["test"].shape
        assert not np.array_equal(f["test_mirrored"], f["test"])
        assert rec.wall_s[f"features_{net}_test_mirrored"] > 0
        # the same layer and the same test features as without mirror images
        np.testing.assert_array_equal(f["test"], pd["features"][net]["test"])
    # a classified image costs the synaptic events of both simulations
    ex = md["extraction"]["stdp"]
    assert rec.synaptic_events.accumulates == pytest.approx(
        ex["test"]["synaptic_ops_per_image"] + ex["test_mirrored"]["synaptic_ops_per_image"])
    # the same fit as without mirror images: its accuracy without them is the plain run's
    details = rec.specific["readout_details"]
    tier = "the tier: STDP layer's spike counts"
    assert details[tier]["accuracy_without_mirror_images"] == pytest.approx(plain.accuracy)
    assert "accuracy_without_mirror_images" not in plain.specific["readout_details"][tier]
    assert profiles.get_profile("full").dog_lif.mirror_test
    assert not profiles.get_profile("book").dog_lif.mirror_test


def test_mirror_test_must_be_a_bool():
    from snnlib import profiles

    with pytest.raises(ValueError, match="mirror_test must be True or False"):
        profiles.DogLIFSizes(mirror_test=1)


def test_options_added_later_keep_the_keys_of_caches_made_before_them_at_their_defaults():
    # the layer's parameters as they were before opposite_phase and time_windows: the same
    # class name and values
    p = L.DoGLIFParams()
    later = ("opposite_phase", "time_windows")
    kept = [f.name for f in dataclasses.fields(p) if f.name not in later]
    old = dataclasses.make_dataclass("DoGLIFParams", [(n, object) for n in kept], frozen=True)
    key = runs.cache_key(old(**{n: getattr(p, n) for n in kept}), 2026, version=1)
    assert runs.cache_key(p, 2026, version=1) == key
    assert runs.cache_key(replace(p, opposite_phase=True), 2026, version=1) != key
    assert runs.cache_key(replace(p, time_windows=2), 2026, version=1) != key


def test_time_windows_split_the_steps_and_multiply_the_features():
    p = D.DoGLIFParams(steps=30, time_windows=4, n_filters=10, pool=3)
    assert p.window_ends == (7, 15, 22)  # floor(w T / W)
    assert p.n_features == 10 * 9 * 4
    assert D.DoGLIFParams(time_windows=1).window_ends == ()


def test_the_window_counts_are_the_spikes_of_each_window_of_steps():
    """The recorded loop: each window's counts are the layer's spikes summed over its steps."""
    p = D.DoGLIFParams(n_filters=6, steps=9, time_windows=3, max_rate_hz=400.0, dt_ms=2.0)
    h = p.n_inputs // 2
    g = torch.Generator().manual_seed(0)
    signed = torch.rand(20, h, generator=g) * 2 - 1
    w = torch.rand(6, p.n_inputs, generator=g) * (4 * p.w_sum_mv / p.n_inputs)
    out = D.layer_run(signed, w, torch.zeros(6), p, np.random.default_rng(1), record=True)
    trains = out["trains"].float()  # (T, M, K)
    assert trains.sum() > 0
    expected = torch.cat([trains[a:b].sum(0) for a, b in ((0, 3), (3, 6), (6, 9))], dim=1)
    assert torch.equal(out["window_counts"], expected)
    assert torch.equal(out["counts"], trains.sum(0))


@pytest.mark.parametrize("learn", [True, False])
def test_time_windows_add_up_to_the_counts_and_the_first_is_a_shorter_look(learn):
    """Features of a fitted layer read in 2 windows of 5 steps: the windows add up to the
    counts of one window of 10 steps, and the first window is the features of a 5-step look
    (the same random numbers for its steps: one batch of images, which draws them step after
    step), bit for bit."""
    p = replace(SMALL, steps=10, image_batch=3)
    net = D.DoGLIF(p, seed=0, learn=learn)
    net.fit(_images(6), progress=False)
    images = _images(3, seed=1)

    def features(**changes):
        other = D.DoGLIF(replace(p, **changes), seed=0, learn=learn)
        other.load_state_dict(net.state_dict())
        return other.features(images, seed=1, progress=False)

    whole, windows, short = features(), features(time_windows=2), features(steps=5)
    n = p.n_filters * p.pool ** 2
    assert windows["features"].shape == (3, 2 * n)
    first, second = windows["features"][:, :n], windows["features"][:, n:]
    assert first.sum() > 0 and second.sum() > 0
    np.testing.assert_array_equal(first + second, whole["features"])
    np.testing.assert_array_equal(first, short["features"])
    np.testing.assert_array_equal(windows["filter_spikes"], whole["filter_spikes"])
