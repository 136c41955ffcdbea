"""snnlib.neurons against the analytic solution of the LIF equation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnlib import neurons as N


def test_subthreshold_response_is_the_exact_exponential():
    p = N.LIFParams(tau_mem_ms=20.0, v_rest_mv=-65.0, v_thresh_mv=-40.0, r_mem_mohm=10.0, dt_ms=0.5)
    current = torch.full((400, 1, 1), 1.5)  # v_inf = -65 + 15 = -50 mV < threshold
    spikes, v, _ = N.simulate_lif(current, p)
    assert not spikes.any()
    t_ms = (np.arange(400) + 1) * p.dt_ms  # v[k] is the potential at the end of step k
    theory = -50.0 + (-65.0 + 50.0) * np.exp(-t_ms / 20.0)
    np.testing.assert_allclose(v[:, 0, 0].numpy(), theory, atol=1e-4)


def test_f_i_curve_matches_the_analytic_rate_within_one_step_per_interval():
    p = N.LIFParams(dt_ms=0.1, t_ref_ms=2.0)
    currents = np.array([1.35, 1.5, 2.0, 3.0, 5.0, 10.0])  # rheobase is 1.3 nA
    steps = 20000  # 2 s
    spikes, _, _ = N.simulate_lif(torch.tensor(currents, dtype=torch.float32).expand(steps, 1, -1), p,
                               record=False)
    rates = N.lif_rate_hz(currents, p)
    assert (rates > 0).all()
    for k, rate in enumerate(rates):
        times = np.flatnonzero(spikes[:, 0, k].numpy()) * p.dt_ms
        assert len(times) > 5, "vacuous: the neuron barely fired"
        isi = np.diff(times)
        # a crossing is detected at the end of the step it happens in, and the
        # spike is stamped with the step's start: ISI in [T - dt, T]
        assert np.all(isi <= 1000.0 / rate + 1e-3) and np.all(isi >= 1000.0 / rate - p.dt_ms - 1e-3)


def test_below_rheobase_there_is_no_spike_and_the_rate_is_zero():
    p = N.LIFParams()
    rheobase = (p.v_thresh_mv - p.v_rest_mv) / p.r_mem_mohm
    assert N.lif_rate_hz([0.0, rheobase * 0.99, rheobase], p).tolist() == [0.0, 0.0, 0.0]
    spikes, _, _ = N.simulate_lif(torch.full((4000, 1, 1), rheobase * 0.99), p)
    assert not spikes.any()


def test_potential_is_held_at_reset_for_the_refractory_period():
    p = N.LIFParams(t_ref_ms=5.0, dt_ms=0.5)
    spikes, v, _ = N.simulate_lif(torch.full((400, 1, 1), 50.0), p)  # strong drive
    first = int(np.flatnonzero(spikes[:, 0, 0].numpy())[0])
    held = v[first:first + p.ref_steps, 0, 0].numpy()
    np.testing.assert_array_equal(held, np.full(p.ref_steps, p.v_reset_mv, dtype=np.float32))
    assert v[first + p.ref_steps, 0, 0] > p.v_reset_mv  # integrates again after t_ref
    isi = np.diff(np.flatnonzero(spikes[:, 0, 0].numpy())) * p.dt_ms
    assert isi.min() > p.t_ref_ms  # never faster than 1 / t_ref


def test_adaptive_threshold_rises_by_theta_plus_and_decays_exactly():
    p = N.LIFParams(theta_plus_mv=2.0, tau_theta_ms=100.0, dt_ms=0.5)
    state = N.LIFState.initial(p, 1, 1)
    state = state._replace(v_mem=torch.full((1, 1), 0.0))  # far above threshold: spikes at once
    spikes, state = N.lif_step(state, p)
    assert spikes.item() and state.theta.item() == pytest.approx(2.0)
    for _ in range(200):  # 100 ms with no input; refractory, then far below threshold
        spikes, state = N.lif_step(state, p)
        assert not spikes.any()
    assert state.theta.item() == pytest.approx(2.0 * math.exp(-1.0), rel=1e-4)


def test_adaptive_threshold_slows_firing():
    base = N.LIFParams(dt_ms=0.5)
    adaptive = N.LIFParams(dt_ms=0.5, theta_plus_mv=0.5, tau_theta_ms=1000.0)
    current = torch.full((4000, 1, 1), 3.0)
    plain, _, _ = N.simulate_lif(current, base, record=False)
    adapted, _, _ = N.simulate_lif(current, adaptive, record=False)
    first, last = adapted[:1000].sum(), adapted[-1000:].sum()
    assert plain[-1000:].sum() > last and first > last > 0


def test_conductance_input_relaxes_to_the_reversal_weighted_mean():
    # g_exc held nearly constant (tau_exc huge): v -> (v_rest + g E_exc) / (1 + g)
    p = N.LIFParams(v_thresh_mv=-10.0, tau_exc_ms=1e9, dt_ms=0.5)
    state = N.LIFState.initial(p, 1, 1)
    _, state = N.lif_step(state, p, exc_input=torch.full((1, 1), 0.5))
    for _ in range(400):
        _, state = N.lif_step(state, p)
    assert state.v_mem.item() == pytest.approx((-65.0 + 0.5 * 0.0) / 1.5, abs=1e-3)


def test_synaptic_input_acts_from_the_next_step_and_decays_exactly():
    p = N.LIFParams(tau_exc_ms=2.0, dt_ms=0.5)
    state = N.LIFState.initial(p, 1, 1)
    _, after = N.lif_step(state, p, exc_input=torch.full((1, 1), 0.2))
    assert after.v_mem.item() == p.v_rest_mv  # not yet
    assert after.g_exc.item() == pytest.approx(0.2)
    _, later = N.lif_step(after, p)
    assert later.v_mem.item() > p.v_rest_mv
    assert later.g_exc.item() == pytest.approx(0.2 * math.exp(-0.25))


def test_batch_elements_are_independent():
    p = N.LIFParams()
    currents = torch.tensor([1.0, 2.0, 4.0])
    together, _, _ = N.simulate_lif(currents.expand(1000, 1, 3), p)
    for k in range(3):
        alone, _, _ = N.simulate_lif(currents[k].expand(1000, 1, 1), p)
        assert torch.equal(alone[:, 0, 0], together[:, 0, k])


def test_stateful_module_matches_the_pure_step_and_resets():
    p = N.LIFParams()
    layer = N.LIF(p, batch=1, neurons=2)
    current = torch.tensor([[1.0, 3.0]])
    out = torch.stack([layer.step(current_na=current) for _ in range(200)])
    expected, _, _ = N.simulate_lif(current.expand(200, 1, 2), p)
    assert torch.equal(out, expected) and out.any()
    layer.reset_state()
    assert torch.equal(layer.state.v_mem, torch.full((1, 2), p.v_rest_mv))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dt_ms=20.0), "dt_ms=20.0 must be smaller than tau_mem_ms=20.0"),
        (dict(tau_mem_ms=-5.0), "tau_mem_ms must be positive"),
        (dict(v_thresh_mv=-70.0), "v_thresh_mv=-70.0 must be above v_reset_mv=-65.0"),
        (dict(v_reset_mv=-80.0, v_thresh_mv=-66.0), "must be above v_rest_mv"),
        (dict(t_ref_ms=0.7, dt_ms=0.5), "not a whole number"),
        (dict(theta_plus_mv=-1.0), "theta_plus_mv must be >= 0"),
        (dict(tau_mem_ms=float("nan")), "tau_mem_ms must be a finite number"),
    ],
)
def test_bad_parameters_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        N.LIFParams(**kwargs)


def test_simulate_lif_wants_time_batch_neurons():
    with pytest.raises(ValueError, match=r"\(T, batch, neurons\)"):
        N.simulate_lif(torch.zeros(10, 3), N.LIFParams())


def test_measured_rate_follows_the_analytic_curve():
    p = N.LIFParams(dt_ms=0.1)
    currents = np.array([0.5, 1.4, 2.0, 5.0])
    measured = N.measured_rate_hz(currents, p, duration_ms=2000.0)
    analytic = N.lif_rate_hz(currents, p)
    assert measured[0] == 0.0 and measured[1:].min() > 0
    # counting spikes from rest over 2 s: within one spike plus the dt bias of the ISI
    isi = 1000.0 / analytic[1:]
    upper = 2000.0 / (isi - p.dt_ms) / 2.0 + 0.5
    assert np.all(measured[1:] >= analytic[1:] - 0.5 - 1e-9) and np.all(measured[1:] <= upper + 1e-9)


# --- current-based LIF with delta synapses (tier 2) ----------------------------

DELTA = N.LIFParams(tau_mem_ms=10.0, v_rest_mv=-65.0, v_reset_mv=-65.0, v_thresh_mv=-52.0,
                  t_ref_ms=0.0, dt_ms=1.0, tau_exc_ms=2.0)


def test_lif_delta_constant_jump_matches_the_analytic_rate():
    jumps = torch.tensor([0.5, 1.3, 1.5, 2.0, 4.0, 14.0])
    steps = 2000
    v = torch.full((1, len(jumps)), DELTA.v_rest_mv)
    counts = torch.zeros(len(jumps))
    for _ in range(steps):
        s, v = N.lif_delta_step(v, jumps[None], DELTA)
        counts += s[0]
    measured = counts.numpy() / (steps * DELTA.dt_ms / 1000)
    expected = N.lif_delta_rate_hz(jumps.numpy(), DELTA)
    # 13 mV to threshold with alpha = e^-0.1: J = 0.5 mV never gets there (asymptote 5.25 mV)
    assert expected[0] == 0 and measured[0] == 0
    # J = 14 mV crosses in one step: 1000 Hz
    assert expected[-1] == 1000.0
    # whole periods of k steps; the count over 2000 steps is within one period of 2000/k
    np.testing.assert_allclose(measured, expected, atol=1000.0 / steps * 1.01)
    # closed form for J = 2 mV: first k with 2 (1 - a^k) / (1 - a) > 13
    a = math.exp(-0.1)
    k = math.ceil(math.log(1 - 13 * (1 - a) / 2.0) / math.log(a))
    assert expected[3] == pytest.approx(1000.0 / k)


def test_lif_delta_poisson_input_has_campbells_mean_and_variance():
    """Below threshold, v - v_rest = sum_k alpha^k w s_k: mean w p / (1 - alpha),
    variance w^2 p (1 - p) / (1 - alpha^2) (Campbell's theorem, discrete time)."""
    p_spike, w = 0.2, 0.5
    high = N.LIFParams(tau_mem_ms=10.0, v_thresh_mv=100.0, v_reset_mv=-65.0, t_ref_ms=0.0, dt_ms=1.0, tau_exc_ms=2.0)
    g = torch.Generator().manual_seed(0)
    v = torch.full((20000, 1), high.v_rest_mv)
    for _ in range(200):
        s = (torch.rand(20000, 1, generator=g) < p_spike).float()
        spikes, v = N.lif_delta_step(v, w * s, high)
        assert not spikes.any()
    a = math.exp(-0.1)
    dv = (v - high.v_rest_mv).double()
    assert dv.mean().item() == pytest.approx(w * p_spike / (1 - a), rel=0.01)
    assert dv.var().item() == pytest.approx(w**2 * p_spike * (1 - p_spike) / (1 - a**2), rel=0.05)


def test_lif_delta_lateral_inhibition_lowers_the_others_not_below_reset():
    v = torch.tensor([[-60.0, -55.0, -64.0]])
    spikes, v2 = N.lif_delta_step(v, torch.tensor([[20.0, 0.0, 0.0]]), DELTA, inhibition_mv=3.0)
    assert spikes.tolist() == [[1.0, 0.0, 0.0]]
    a = math.exp(-0.1)
    assert v2[0, 0].item() == DELTA.v_reset_mv
    assert v2[0, 1].item() == pytest.approx(-65 + 10 * a - 3.0, abs=1e-5)
    assert v2[0, 2].item() == DELTA.v_reset_mv  # -65 + 1 * a - 3 would be below reset
    # a threshold offset per neuron
    spikes, _ = N.lif_delta_step(torch.full((1, 2), -65.0), torch.tensor([[14.0, 14.0]]), DELTA,
                               theta_mv=torch.tensor([0.0, 2.0]))
    assert spikes.tolist() == [[1.0, 0.0]]


def test_lif_delta_needs_no_refractory_period():
    with pytest.raises(ValueError, match="t_ref_ms=0"):
        N.lif_delta_step(torch.zeros(1, 1), torch.zeros(1, 1), N.LIFParams())


def test_signed_if_neuron_counts_follow_the_cumulative_drive():
    """Under inputs of at most one threshold per step, the signed neuron's net count is
    max(0, floor(v0 + sum of the inputs so far)) at every step, whatever their order; the
    module and the pure step agree; the spike map counts negative spikes as events."""
    g = torch.Generator().manual_seed(0)
    z = torch.rand(60, 200, generator=g) * 2 - 1  # 60 steps, 200 neurons, |z| <= 1
    z[:, :50] *= 0.3  # some drives that stay near zero
    for v0 in (0.0, 0.5):
        layer = N.IFNeurons(v0, signed=True)
        v, n = torch.full((200,), v0), torch.zeros(200)
        count, events = torch.zeros(200), torch.zeros(200)
        for t in range(60):
            s = layer(z[t:t + 1])[0]
            pure, v, n = N.signed_if_step(v, n, z[t])
            assert torch.equal(s, pure)
            count += s
            events += s.abs()
            drive = v0 + z[:t + 1].sum(0)
            expected = torch.clamp(torch.floor(drive + 1e-6), min=0)
            torch.testing.assert_close(count, expected, rtol=0, atol=0)
            assert torch.equal(n, count)
        assert torch.equal(layer.spike_map, events)
        assert bool((events > count).any()), "vacuous: no negative spike was fired"


def test_burst_neurons_resolve_the_staircase_of_burst_times_steps_levels():
    """Under a constant input z, neurons firing bursts of up to G spikes of 1/G from v0 = 0.5
    give after T steps the rounding staircase of L = G T levels, clip(floor(z L + 1/2), 0, L)
    / L (the QCFS activation with threshold 1), plain or signed; every spike of a burst is
    an event."""
    g = torch.Generator().manual_seed(2)
    z = torch.rand(1, 400, generator=g) * 1.6 - 0.3  # below 0, across [0, 1] and above 1
    for burst in (2, 4, 8):
        for steps in (1, 2, 4, 8):
            levels = burst * steps
            expected = torch.clamp(torch.floor(z * levels + 0.5), 0, levels) / levels
            for signed in (False, True):
                layer = N.IFNeurons(0.5, signed=signed, burst=burst)
                out = [layer(z) for _ in range(steps)]
                assert all(bool((o <= 1).all()) for o in out)  # at most one threshold a step
                torch.testing.assert_close(sum(out) / steps, expected, rtol=0, atol=1e-6)
                events = burst * sum(o.abs() for o in out)[0]
                torch.testing.assert_close(layer.spike_map, events, rtol=0, atol=1e-4)
    # one spike a step resolves only L = T, another staircase on these z: neurons that
    # ignored their burst would fail the comparison above
    plain = N.IFNeurons(0.5)
    one = sum(plain(z) for _ in range(2)) / 2
    assert not torch.allclose(one, torch.clamp(torch.floor(z * 4 + 0.5), 0, 4) / 4)


def test_signed_burst_neurons_counts_follow_the_cumulative_drive():
    """Under inputs of at most one (G thresholds of 1/G) per step, a signed burst neuron's net
    count, in spikes of 1/G, is max(0, floor(v0 + G x the inputs so far)) at every step."""
    g = torch.Generator().manual_seed(3)
    z = torch.randint(-64, 65, (60, 300), generator=g) / 64  # dyadic: every sum exact
    for burst in (2, 4):
        for v0 in (0.0, 0.5):
            layer = N.IFNeurons(v0, signed=True, burst=burst)
            count, events = torch.zeros(300), torch.zeros(300)
            largest = 0.0
            for t in range(60):
                s = layer(z[t:t + 1])[0] * burst
                count += s
                events += s.abs()
                largest = max(largest, float(s.abs().max()))
                expected = torch.clamp(torch.floor(v0 + burst * z[:t + 1].sum(0)), min=0)
                assert torch.equal(count, expected)
            assert torch.equal(layer.spike_map, events)
            assert bool((events > count).any()), "vacuous: no spike was taken back"
            assert largest >= 2, "vacuous: no step fired or took back a burst"


def test_signed_if_neuron_takes_back_what_a_plain_one_keeps():
    # an early surplus, then a deficit: the cumulative drive ends at v0 = 0.5, no spike owed
    z = torch.tensor([[1.0], [-1.0], [0.0], [0.0]])
    plain, signed = N.IFNeurons(0.5), N.IFNeurons(0.5, signed=True)
    assert float(sum(plain(z[t:t + 1]) for t in range(4)).sum()) == 1.0
    out = [float(signed(z[t:t + 1])) for t in range(4)]
    assert out == [1.0, -1.0, 0.0, 0.0] and signed.spikes == 2.0
    # under a constant input it fires as the plain neuron does (the floor formula)
    zc = torch.tensor([0.0, 0.05, 0.26, 0.5, 0.99, 1.0])
    for steps in (1, 7, 64):
        layer = N.IFNeurons(0.5, signed=True)
        count = sum(layer(zc) for _ in range(steps))
        np.testing.assert_allclose(count.numpy() / steps, N.if_rate(zc.numpy(), steps, v0=0.5))
    # it never fires below a net count of zero
    layer = N.IFNeurons(0.0, signed=True)
    assert all(float(layer(torch.tensor([-0.7]))) == 0.0 for _ in range(5))


def test_signed_if_neurons_on_maps_count_events_per_position_in_either_precision():
    """On a convolutional layer's maps (batch, channels, H, W) the spike map counts events
    of either sign per position, summed over the batch and the channels; in bfloat16 the
    spikes and potentials are those of float32 (spikes are exact, the inputs here too)."""
    g = torch.Generator().manual_seed(1)
    z = (torch.randint(-4, 5, (12, 2, 3, 4, 5), generator=g) / 4.0)  # steps, then a map
    runs = {}
    for dtype in (torch.float32, torch.bfloat16):
        layer = N.IFNeurons(0.5, signed=True)
        spikes = torch.stack([layer(z[t].to(dtype)) for t in range(12)])
        assert spikes.dtype == dtype
        expected = spikes.float().abs().sum(dim=(0, 1, 2))
        assert torch.equal(layer.spike_map, expected) and layer.spikes == float(expected.sum())
        runs[dtype] = (spikes.float(), layer.v.clone())
    assert torch.equal(runs[torch.float32][0], runs[torch.bfloat16][0])
    assert torch.equal(runs[torch.float32][1], runs[torch.bfloat16][1])
    assert bool((runs[torch.float32][0] < 0).any()), "vacuous: no negative spike"
    # the pure step in bfloat16 resets by the threshold itself, not by a rounded one
    s, v, n = N.signed_if_step(torch.zeros(1), torch.zeros(1), torch.tensor([0.35],
                               dtype=torch.bfloat16), threshold=0.3)
    assert s.dtype == torch.bfloat16 and float(s) == 1.0
    assert float(v) == pytest.approx(float(torch.tensor(0.35, dtype=torch.bfloat16)) - 0.3,
                                     abs=1e-7)
    assert v.dtype == torch.float32 and n.dtype == torch.float32


def test_if_neuron_rate_is_the_floor_formula():
    z = torch.tensor([-0.3, 0.0, 0.05, 0.26, 0.5, 0.99, 1.0, 1.7])
    for v0 in (0.0, 0.5):
        layer = N.IFNeurons(v0)
        for steps in (1, 7, 64):
            layer.reset_state()
            count = sum(layer(z) for _ in range(steps))
            np.testing.assert_allclose(count.numpy() / steps, N.if_rate(z.numpy(), steps, v0=v0))
            # the pure step function gives the same spikes
            v, pure = torch.full_like(z, v0), torch.zeros_like(z)
            for _ in range(steps):
                s, v = N.if_step(v, z)
                pure += s
            assert torch.equal(pure, count)
    # and the rate tends to clip(z, 0, 1): the ReLU the network was trained with
    np.testing.assert_allclose(N.if_rate(z.numpy(), 10_000), np.clip(z.numpy(), 0, 1), atol=1e-4)
