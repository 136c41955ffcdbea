"""Brian2 and PyTorch run the same LIF and STDP models from the same
parameter objects: they must agree with each other and with theory.

Brian2 runs with its numpy code generation (no compiler needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("brian2")

from snnlib import neurons as N  # noqa: E402
from snnlib import plasticity as P  # noqa: E402


def noisy_current(steps, n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    return (1.2 + 0.15 * np.arange(n)[None, :] + 0.3 * np.sin(t / 50.0)
            + 0.2 * rng.standard_normal((steps, n))).astype(np.float32)


@pytest.mark.parametrize("theta_plus_mv", [0.0, 1.0])
def test_lif_spike_times_and_traces_agree(theta_plus_mv):
    p = N.LIFParams(dt_ms=0.5, t_ref_ms=2.0, theta_plus_mv=theta_plus_mv, tau_theta_ms=200.0)
    current = noisy_current(2000, 5)
    spikes_b2, v_b2 = N.simulate_lif_brian2(current, p)
    spikes_t, v_t, _ = N.simulate_lif(torch.from_numpy(current)[:, None, :], p)
    spikes_t, v_t = spikes_t[:, 0].numpy(), v_t[:, 0].numpy()
    assert spikes_b2.sum(axis=0).min() >= 3, "vacuous: a neuron barely fired"
    for k in range(5):  # same spike times, within one step
        times_b2, times_t = np.flatnonzero(spikes_b2[:, k]), np.flatnonzero(spikes_t[:, k])
        assert len(times_b2) == len(times_t)
        assert np.abs(times_b2 - times_t).max() <= 1
    assert np.abs(v_b2 - v_t).max() < 1e-3  # mV; float32 against float64


def test_lif_rates_of_both_simulators_match_the_f_i_curve():
    p = N.LIFParams(dt_ms=0.1, t_ref_ms=2.0)
    currents = np.array([1.5, 2.0, 4.0, 8.0], dtype=np.float32)
    steps = 10000  # 1 s
    spikes_b2, _ = N.simulate_lif_brian2(np.broadcast_to(currents, (steps, 4)), p)
    spikes_t, _, _ = N.simulate_lif(torch.from_numpy(currents).expand(steps, 1, 4), p, record=False)
    isi_theory = 1000.0 / N.lif_rate_hz(currents, p)
    for k in range(4):
        for spikes in (spikes_b2[:, k], spikes_t[:, 0, k].numpy()):
            isi = np.diff(np.flatnonzero(spikes)) * p.dt_ms
            assert len(isi) > 3
            assert np.all(np.abs(isi - isi_theory[k]) <= p.dt_ms + 1e-6)


def test_conductance_input_through_synapses_agrees():
    """Poisson spikes into g_exc through weights: Brian2 Synapses vs pre @ w.T."""
    import brian2 as b2

    p = N.LIFParams(dt_ms=0.5)
    n_in, n_out, steps = 40, 3, 1000
    gen = torch.Generator().manual_seed(0)
    pre = torch.rand(steps, n_in, generator=gen) < 0.02  # 40 Hz
    w = torch.rand(n_out, n_in, generator=gen) * 0.3
    # PyTorch
    state = N.LIFState.initial(p, 1, n_out)
    out_t = []
    for k in range(steps):
        s, state = N.lif_step(state, p, exc_input=pre[k:k + 1].float() @ w.T)
        out_t.append(s[0])
    out_t = torch.stack(out_t).numpy()
    # Brian2
    k_idx, i_idx = np.nonzero(pre.numpy())
    source = b2.SpikeGeneratorGroup(n_in, i_idx, k_idx * p.dt_ms * b2.ms, dt=p.dt_ms * b2.ms)
    group = N.build_lif_group(n_out, p, current="I = 0*amp : amp")
    syn = b2.Synapses(source, group, "w : 1", on_pre="g_exc_post += w", dt=p.dt_ms * b2.ms)
    syn.connect()
    syn.w[:] = w.numpy().T.ravel()  # Brian2 orders all-to-all synapses by source, then target
    monitor = b2.SpikeMonitor(group)
    N.run_brian2(b2.Network(source, group, syn, monitor), steps * p.dt_ms)
    out_b2 = np.zeros_like(out_t)
    out_b2[np.round(np.asarray(monitor.t / b2.ms) / p.dt_ms).astype(int), np.asarray(monitor.i)] = True
    assert out_t.sum() >= 5, "vacuous"
    np.testing.assert_array_equal(out_b2, out_t)


@pytest.mark.parametrize("variant", ["all_to_all", "nearest"])
def test_stdp_pairing_curves_agree_with_each_other_and_the_window(variant):
    p = P.STDPParams(a_plus=0.01, a_minus=0.012, tau_plus_ms=16.8, tau_minus_ms=33.7,
                     variant=variant, dt_ms=0.5)
    offsets = np.arange(-100.0, 100.5, 5.0)
    dw_b2 = P.pairing_experiment(offsets, p, simulator="brian2")
    dw_t = P.pairing_experiment(offsets, p, simulator="torch")
    theory = P.stdp_window(offsets, p)
    np.testing.assert_allclose(dw_b2, theory, atol=1e-12)
    np.testing.assert_allclose(dw_t, theory, atol=1e-7)  # float32


@pytest.mark.parametrize("bounds", ["hard", "soft"])
def test_stdp_with_bounds_agrees_on_random_spike_trains(bounds):
    """Many pre and post spikes, weights pushed into the bounds: same final weights."""
    import brian2 as b2

    p = P.STDPParams(a_plus=0.3, a_minus=0.33, bounds=bounds, dt_ms=0.5)
    n_pre, n_post, steps = 8, 3, 2000
    gen = torch.Generator().manual_seed(1)
    pre = torch.rand(steps, 1, n_pre, generator=gen) < 0.02
    post = torch.rand(steps, 1, n_post, generator=gen) < 0.02
    w0 = torch.rand(n_post, n_pre, generator=gen)
    w, state = w0.clone(), P.STDPState.initial(1, n_pre, n_post)
    for k in range(steps):
        change, state = P.stdp_step(pre[k], post[k], state, p)
        w = P.apply_weight_change(w, change, p)
    spikes = []
    for name, s in (("pre", pre), ("post", post)):
        k_idx, i_idx = np.nonzero(s[:, 0].numpy())
        spikes.append(b2.SpikeGeneratorGroup(s.shape[2], i_idx, k_idx * p.dt_ms * b2.ms,
                                             dt=p.dt_ms * b2.ms, name=f"random_{name}"))
    syn = P.build_stdp_synapses(*spikes, p)
    syn.connect()
    syn.w[:] = w0.numpy().T.ravel()
    N.run_brian2(b2.Network(*spikes, syn), steps * p.dt_ms)
    w_b2 = np.asarray(syn.w).reshape(n_pre, n_post).T
    assert np.abs(w.numpy() - w0.numpy()).max() > 0.1, "vacuous: weights barely moved"
    if bounds == "hard":
        assert (w == 0).any() or (w == 1).any(), "the bounds were never reached"
    np.testing.assert_allclose(w.numpy(), w_b2, atol=1e-5)
