"""snnlib.plasticity: the STDP window, a from-scratch all-pairs reference,
batching, bounds, normalisation and R-STDP's delayed reward."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnlib import plasticity as P

DT = 0.5


def run_stdp(pre, post, p, w0):
    """Apply STDP step by step; pre (T, B, n_pre), post (T, B, n_post)."""
    w = w0.clone()
    state = P.STDPState.initial(pre.shape[1], pre.shape[2], post.shape[2])
    for k in range(pre.shape[0]):
        change, state = P.stdp_step(pre[k], post[k], state, p)
        w = P.apply_weight_change(w, change, p)
    return w


def pairing(offsets_ms, p, t0_ms=150.0, total_ms=400.0):
    """One pre and one post spike per synapse i (pre i -> post i), at t0 and t0 + offset."""
    n, steps = len(offsets_ms), int(total_ms / DT)
    pre = torch.zeros(steps, 1, n, dtype=torch.bool)
    post = torch.zeros(steps, 1, n, dtype=torch.bool)
    idx = torch.arange(n)
    pre[int(t0_ms / DT), 0, idx] = True
    post[torch.tensor(np.round((t0_ms + np.asarray(offsets_ms)) / DT).astype(int)), 0, idx] = True
    w = run_stdp(pre, post, p, torch.full((n, n), 0.5))
    return torch.diagonal(w).numpy() - 0.5


def test_pairing_experiment_gives_the_analytic_window():
    p = P.STDPParams(a_plus=0.01, a_minus=0.012, tau_plus_ms=16.8, tau_minus_ms=33.7, dt_ms=DT)
    offsets = np.arange(-100.0, 100.5, 2.5)
    dw = pairing(offsets, p)
    np.testing.assert_allclose(dw, P.stdp_window(offsets, p), atol=1e-7)
    assert dw[offsets > 0].min() > 0 and dw[offsets < 0].max() < 0  # signs: dt = t_post - t_pre
    assert dw[offsets == 0] == pytest.approx(p.a_plus, rel=1e-5)  # simultaneous: potentiation


def test_window_function_values():
    p = P.STDPParams(a_plus=1.0, a_minus=0.5, tau_plus_ms=10.0, tau_minus_ms=20.0)
    np.testing.assert_allclose(P.stdp_window([10.0, 0.0, -20.0], p),
                               [math.exp(-1), 1.0, -0.5 * math.exp(-1)])


def test_all_to_all_equals_the_sum_over_every_pair():
    """Trace STDP without bounds = sum of the window over all pre/post spike pairs."""
    p = P.STDPParams(a_plus=0.01, a_minus=0.011, w_min=-100.0, w_max=100.0, dt_ms=DT)
    gen = torch.Generator().manual_seed(0)
    steps, n_pre, n_post = 400, 6, 4
    pre = torch.rand(steps, 1, n_pre, generator=gen) < 0.03
    post = torch.rand(steps, 1, n_post, generator=gen) < 0.03
    w = run_stdp(pre, post, p, torch.zeros(n_post, n_pre))
    reference = np.zeros((n_post, n_pre))
    for j in range(n_post):
        for i in range(n_pre):
            t_post = np.flatnonzero(post[:, 0, j].numpy()) * DT
            t_pre = np.flatnonzero(pre[:, 0, i].numpy()) * DT
            reference[j, i] = P.stdp_window((t_post[:, None] - t_pre[None, :]).ravel(), p).sum()
    assert pre.any() and post.any(), "vacuous"
    np.testing.assert_allclose(w.numpy(), reference, atol=1e-6)


def test_nearest_variant_pairs_with_the_latest_spike_only():
    p_all = P.STDPParams(a_plus=0.01, a_minus=0.0, dt_ms=DT, tau_plus_ms=20.0)
    p_near = P.STDPParams(a_plus=0.01, a_minus=0.0, dt_ms=DT, tau_plus_ms=20.0, variant="nearest")
    pre = torch.zeros(100, 1, 1, dtype=torch.bool)
    post = torch.zeros(100, 1, 1, dtype=torch.bool)
    pre[10] = pre[30] = True  # pre at 5 ms and 15 ms
    post[50] = True  # post at 25 ms
    w0 = torch.full((1, 1), 0.5)
    all_dw = run_stdp(pre, post, p_all, w0).item() - 0.5
    near_dw = run_stdp(pre, post, p_near, w0).item() - 0.5
    assert all_dw == pytest.approx(0.01 * (math.exp(-20 / 20) + math.exp(-10 / 20)), rel=1e-5)
    assert near_dw == pytest.approx(0.01 * math.exp(-10 / 20), rel=1e-5)


def test_batch_change_is_the_sum_of_the_samples_changes():
    p = P.STDPParams(dt_ms=DT)
    gen = torch.Generator().manual_seed(1)
    pre = torch.rand(3, 5, generator=gen) < 0.5
    post = torch.rand(3, 4, generator=gen) < 0.5
    state = P.STDPState(torch.rand(3, 5, generator=gen), torch.rand(3, 4, generator=gen))
    batch, _ = P.stdp_step(pre, post, state, p)
    singles = sum(P.stdp_step(pre[b:b + 1], post[b:b + 1],
                              P.STDPState(state.x_pre[b:b + 1], state.y_post[b:b + 1]), p)[0].dense()
                  for b in range(3))
    torch.testing.assert_close(batch.dense(), singles)
    mean_p = P.STDPParams(dt_ms=DT, reduction="mean")
    torch.testing.assert_close(P.stdp_step(pre, post, state, mean_p)[0].dense(), singles / 3)


def test_apply_weight_change_equals_the_dense_update_and_touches_only_spiking_neurons():
    p = P.STDPParams(w_min=-10.0, w_max=10.0, dt_ms=DT)
    gen = torch.Generator().manual_seed(2)
    pre = torch.zeros(2, 6, dtype=torch.bool)
    pre[0, 1] = pre[1, 4] = True
    post = torch.zeros(2, 3, dtype=torch.bool)
    post[1, 2] = True
    state = P.STDPState(torch.rand(2, 6, generator=gen), torch.rand(2, 3, generator=gen))
    change, _ = P.stdp_step(pre, post, state, p)
    w = torch.rand(3, 6, generator=gen)
    new = P.apply_weight_change(w, change, p)
    torch.testing.assert_close(new, w + change.dense())
    untouched = torch.ones(3, 6, dtype=torch.bool)
    untouched[:, [1, 4]] = False
    untouched[2, :] = False
    assert torch.equal(new[untouched], w[untouched])


def test_hard_bounds_clip_and_soft_bounds_scale():
    hard = P.STDPParams(a_plus=0.5, a_minus=0.5, w_min=0.0, w_max=1.0, dt_ms=DT)
    soft = P.STDPParams(a_plus=0.5, a_minus=0.5, w_min=0.0, w_max=1.0, dt_ms=DT, bounds="soft")
    post = torch.ones(1, 1, dtype=torch.bool)
    no_pre = torch.zeros(1, 1, dtype=torch.bool)
    state = P.STDPState(torch.ones(1, 1), torch.zeros(1, 1))  # x = 1 before this step's decay
    x = math.exp(-DT / hard.tau_plus_ms)
    w = torch.full((1, 1), 0.8)
    change, _ = P.stdp_step(no_pre, post, state, hard)
    assert P.apply_weight_change(w, change, hard).item() == pytest.approx(1.0)  # 0.8 + 0.5 clipped
    change, _ = P.stdp_step(no_pre, post, state, soft)
    assert P.apply_weight_change(w, change, soft).item() == pytest.approx(0.8 + 0.5 * x * 0.2)
    # depression under soft bounds scales with w - w_min
    pre = torch.ones(1, 1, dtype=torch.bool)
    state = P.STDPState(torch.zeros(1, 1), torch.ones(1, 1))
    change, _ = P.stdp_step(pre, torch.zeros(1, 1, dtype=torch.bool), state, soft)
    decay = math.exp(-DT / soft.tau_minus_ms)
    assert P.apply_weight_change(w, change, soft).item() == pytest.approx(0.8 - 0.5 * decay * 0.8)


def test_normalize_weights_sets_every_row_sum():
    w = torch.rand(4, 10, generator=torch.Generator().manual_seed(3))
    w[2] = 0.0
    out = P.normalize_weights(w, 7.8)
    torch.testing.assert_close(out.sum(dim=1), torch.tensor([7.8, 7.8, 0.0, 7.8]))
    torch.testing.assert_close(out[0] / out[0].sum(), w[0] / w[0].sum())  # shape kept


def test_rstdp_changes_nothing_without_reward_and_converts_eligibility_at_reward():
    stdp = P.STDPParams(a_plus=0.01, a_minus=0.012, dt_ms=DT)
    p = P.RSTDPParams(stdp=stdp, tau_elig_ms=500.0, eta=2.0)
    state = P.RSTDPState.initial(1, 1, 1)
    steps = 1000
    reward_step = 900
    pre = torch.zeros(steps, 1, 1, dtype=torch.bool)
    post = torch.zeros(steps, 1, 1, dtype=torch.bool)
    pre[20] = True
    post[30] = True  # dt = +5 ms
    total = torch.zeros(1, 1)
    for k in range(steps):
        reward = 1.0 if k == reward_step else 0.0
        dw, state = P.rstdp_step(pre[k], post[k], reward, state, p)
        if k < reward_step:
            assert dw.abs().max() == 0.0
        total += dw
    expected = 2.0 * P.stdp_window(5.0, stdp) * math.exp(-(reward_step - 30) * DT / 500.0)
    assert total.item() == pytest.approx(float(expected), rel=1e-4)


def test_rstdp_reward_sign_and_batch():
    stdp = P.STDPParams(dt_ms=DT)
    p = P.RSTDPParams(stdp=stdp)
    state = P.RSTDPState(P.STDPState(torch.ones(2, 3), torch.zeros(2, 2)), torch.zeros(2, 2, 3))
    post = torch.tensor([[True, False], [True, False]])
    pre = torch.zeros(2, 3, dtype=torch.bool)
    dw_plus, _ = P.rstdp_step(pre, post, torch.tensor([1.0, 1.0]), state, p)
    dw_mixed, _ = P.rstdp_step(pre, post, torch.tensor([1.0, -1.0]), state, p)
    assert dw_plus[0].min() > 0 and dw_plus[1].abs().max() == 0
    torch.testing.assert_close(dw_mixed, torch.zeros(2, 3))  # +1 and -1 cancel


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(a_plus=-0.1), "a_plus must be >= 0"),
        (dict(tau_plus_ms=0.0), "tau_plus_ms must be positive"),
        (dict(dt_ms=30.0), "dt_ms=30.0 must be smaller than tau_plus_ms"),
        (dict(w_min=1.0, w_max=1.0), "w_max=1.0 must be above w_min=1.0"),
        (dict(variant="triplet"), "variant must be one of"),
        (dict(bounds="none"), "bounds must be one of"),
    ],
)
def test_bad_parameters_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        P.STDPParams(**kwargs)


def test_bad_rstdp_parameters_are_refused_clearly():
    with pytest.raises(ValueError, match="tau_elig_ms"):
        P.RSTDPParams(tau_elig_ms=0.1)
    with pytest.raises(ValueError, match="eta"):
        P.RSTDPParams(eta=-1.0)


def test_run_rstdp_records_weights_that_move_only_at_reward():
    stdp = P.STDPParams(a_plus=0.1, a_minus=0.12, dt_ms=DT)
    p = P.RSTDPParams(stdp=stdp, tau_elig_ms=200.0, eta=1.0)
    steps = 400
    pre = torch.zeros(steps, 1, 1, dtype=torch.bool)
    post = torch.zeros(steps, 1, 1, dtype=torch.bool)
    pre[10], post[20] = True, True
    reward = torch.zeros(steps, 1)
    reward[300] = -1.0
    out = P.run_rstdp(pre, post, reward, torch.full((1, 1), 0.5), p)
    w = out["w"][:, 0, 0]
    assert torch.all(w[:300] == 0.5) and w[-1] < 0.5  # punishment undoes a causal pairing
    assert torch.all(w[300:] == w[300])  # one reward, one change
    # its size: eta r e(t), the pairing's window A+ e^(-5 ms / tau+) decayed from step 20 to
    # step 300 with tau_elig
    assert float(w[300]) - 0.5 == pytest.approx(
        -1.0 * 0.1 * math.exp(-5.0 / stdp.tau_plus_ms) * math.exp(-280 * DT / 200.0), rel=1e-4)
    e = out["eligibility"][:, 0, 0, 0]
    assert e[20] == pytest.approx(float(P.stdp_window(5.0, stdp)), rel=1e-5)
    assert e[299] == pytest.approx(float(e[20]) * math.exp(-279 * DT / 200.0), rel=1e-4)


def test_stdp_neuron_picks_out_correlated_inputs():
    """Song, Miller & Abbott (2000): with depression slightly stronger than
    potentiation, correlated inputs win and independent ones lose."""
    from snnlib import encoding as E
    from snnlib import neurons as N

    lif = N.LIFParams(dt_ms=1.0, tau_exc_ms=5.0, tau_inh_ms=10.0)
    stdp = P.STDPParams(a_plus=0.0008, a_minus=0.00096, w_max=0.04, dt_ms=1.0)
    gen = E.make_generator(0)
    correlated = E.correlated_poisson_spikes(50, 15.0, 0.4, 15000.0, 1.0, generator=gen)
    independent = E.correlated_poisson_spikes(50, 15.0, 0.0, 15000.0, 1.0, generator=gen)
    out = P.run_lif_stdp(torch.cat([correlated, independent], dim=2), torch.full((1, 100), 0.02),
                         lif, stdp)
    assert out["counts"].sum() > 20, "vacuous: the neuron barely fired"
    w = out["w"][0]
    assert w[:50].mean() > 0.035 and w[50:].mean() < 0.018


def test_event_driven_propagation_equals_the_matrix_product():
    gen = torch.Generator().manual_seed(5)
    w = torch.rand(7, 30, generator=gen)
    for batch in (1, 3):
        spikes = torch.rand(batch, 30, generator=gen) < 0.2
        torch.testing.assert_close(P._propagate(spikes, w), spikes.float() @ w.T)
    assert torch.equal(P._propagate(torch.zeros(1, 30, dtype=torch.bool), w), torch.zeros(1, 7))


def test_in_place_application_equals_the_pure_one_and_the_pure_one_copies():
    p = P.STDPParams(dt_ms=DT)
    gen = torch.Generator().manual_seed(6)
    pre = torch.rand(2, 8, generator=gen) < 0.3
    post = torch.rand(2, 5, generator=gen) < 0.3
    change, _ = P.stdp_step(pre, post, P.STDPState(torch.rand(2, 8, generator=gen),
                                                   torch.rand(2, 5, generator=gen)), p)
    w = torch.rand(5, 8, generator=gen)
    before = w.clone()
    pure = P.apply_weight_change(w, change, p)
    assert torch.equal(w, before)  # the pure form leaves its input alone
    assert P.apply_weight_change_(w, change, p) is w
    torch.testing.assert_close(w, pure)


@pytest.mark.parametrize("simulator", ["torch", "brian2"])
def test_pairing_experiment_with_only_negative_offsets(simulator):
    pytest.importorskip("brian2")
    p = P.STDPParams(a_plus=0.01, a_minus=0.012, dt_ms=DT)
    offsets = np.array([-40.0, -10.0])
    dw = P.pairing_experiment(offsets, p, simulator=simulator)
    np.testing.assert_allclose(dw, P.stdp_window(offsets, p), atol=1e-7)


def test_run_lif_stdp_records_the_start_every_k_steps_and_the_end():
    from snnlib import neurons as N

    lif = N.LIFParams(dt_ms=1.0, tau_exc_ms=5.0, tau_inh_ms=10.0)
    stdp = P.STDPParams(dt_ms=1.0)
    spikes = torch.zeros(10, 1, 3, dtype=torch.bool)
    out = P.run_lif_stdp(spikes, torch.full((2, 3), 0.5), lif, stdp, record_every=4)
    assert out["record_ms"].tolist() == [0.0, 4.0, 8.0, 10.0]
    assert out["w_history"].shape == (4, 2, 3)
    out = P.run_lif_stdp(spikes, torch.full((2, 3), 0.5), lif, stdp, record_every=5)
    assert out["record_ms"].tolist() == [0.0, 5.0, 10.0]  # the end is not recorded twice


@pytest.mark.parametrize("offset_ms", [-6.0, 4.0, 10.0])
def test_brian2_rstdp_eligibility_and_reward_follow_the_analytic_rule(offset_ms):
    """One pre spike at 10 ms, one post spike at 10 ms + offset, reward r at 60 ms:
    Δw = η r e(60), e(60) = A+ e^{-Δt/τ+} e^{-(60 - t_post)/τ_e} (pre first) or
    -A- e^{Δt/τ-} e^{-(60 - t_pre)/τ_e} (post first)."""
    b2 = pytest.importorskip("brian2")
    stdp = P.STDPParams(a_plus=0.5, a_minus=0.3, tau_plus_ms=20.0, tau_minus_ms=15.0,
                        w_min=0.0, w_max=10.0, dt_ms=0.5)
    p = P.RSTDPParams(stdp=stdp, tau_elig_ms=40.0, eta=2.0)
    t_pre, t_post, t_reward = 10.0, 10.0 + offset_ms, 60.0
    pre = b2.SpikeGeneratorGroup(1, [0], [t_pre] * b2.ms, dt=0.5 * b2.ms)
    post = b2.SpikeGeneratorGroup(1, [0], [t_post] * b2.ms, dt=0.5 * b2.ms)
    syn = P.build_rstdp_synapses(pre, post, p)
    syn.connect()
    syn.w = 5.0
    P.run_brian2(b2.Network(pre, post, syn), t_reward, "numpy")
    if offset_ms >= 0:
        e = 0.5 * np.exp(-offset_ms / 20.0) * np.exp(-(t_reward - t_post) / 40.0)
    else:
        e = -0.3 * np.exp(offset_ms / 15.0) * np.exp(-(t_reward - t_pre) / 40.0)
    np.testing.assert_allclose(P.eligibility(syn, p), [e], rtol=1e-6)
    assert float(syn.w[0]) == 5.0  # nothing changes before the reward
    dw = P.apply_reward(syn, -1.0, p)
    np.testing.assert_allclose(dw, [2.0 * -1.0 * e], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(syn.w), [5.0 - 2.0 * e], rtol=1e-6)
    # the bounds hold whatever the reward
    P.apply_reward(syn, 1e6 * np.sign(e), p)
    assert float(syn.w[0]) == 10.0
