"""snnlib.encoding against the theory of a Bernoulli-approximated Poisson process.

Counts over T steps with spike probability p per step are Binomial(T, p):
mean T p, variance T p (1 - p); intervals between spikes are geometric with
mean 1 / p steps. Statistical checks use 5 standard errors (a false alarm
about once in 1.7 million runs) and fixed seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import snnlib as sl
from snnlib import encoding as E

N = 20000  # neurons per intensity level


def _counts(x, params, seed=0):
    spikes = E.poisson_spikes(torch.full((N,), float(x)), params, generator=seed)
    return E.spike_counts(spikes).double()


@pytest.mark.parametrize("x", [0.05, 0.3, 0.7, 1.0])
def test_mean_count_is_rate_times_duration(x):
    params = E.PoissonParams(max_rate_hz=100.0, duration_ms=200.0, dt_ms=1.0)
    counts = _counts(x, params)
    expected = x * 100.0 * 200.0 / 1000.0  # E[n] = x r_max D
    assert float(E.expected_counts(torch.tensor([x]), params)) == pytest.approx(expected)
    p = x * params.p_max
    standard_error = math.sqrt(params.n_steps * p * (1 - p) / N)
    assert abs(float(counts.mean()) - expected) < 5 * standard_error


@pytest.mark.parametrize("x", [0.2, 0.9])
def test_fano_factor_is_one_minus_p(x):
    # p = 0.1 and 0.45 a step: far enough below a Poisson count's Fano factor of 1 that the
    # tolerance below tells them apart
    params = E.PoissonParams(max_rate_hz=500.0, duration_ms=100.0, dt_ms=1.0)
    counts = _counts(x, params, seed=1)
    p = x * params.p_max
    fano = float(counts.var() / counts.mean())
    # Var of a sample variance ~ 2 sigma^4 / (N - 1) for near-Gaussian counts.
    assert abs(fano - (1 - p)) < 5 * (1 - p) * math.sqrt(2 / (N - 1)) + 0.01


def test_intervals_between_spikes_are_geometric():
    params = E.PoissonParams(max_rate_hz=50.0, duration_ms=2000.0, dt_ms=1.0)
    spikes = E.poisson_spikes(torch.full((200,), 1.0), params, generator=2)
    intervals = np.concatenate([np.diff(np.flatnonzero(s)) for s in spikes.T.numpy()])
    p = params.p_max
    # Geometric(p): mean 1/p, sd sqrt(1-p)/p.
    standard_error = math.sqrt(1 - p) / p / math.sqrt(len(intervals))
    assert abs(intervals.mean() - 1 / p) < 5 * standard_error
    # P(interval == 1) = p
    assert abs(np.mean(intervals == 1) - p) < 5 * math.sqrt(p * (1 - p) / len(intervals))


def test_zero_intensity_never_spikes_and_p_one_always_does():
    params = E.PoissonParams(max_rate_hz=1000.0, duration_ms=50.0, dt_ms=1.0)  # p_max = 1
    spikes = E.poisson_spikes(torch.tensor([[0.0, 1.0]]), params, generator=0)
    assert spikes.shape == (50, 1, 2) and spikes.dtype == torch.bool
    assert not spikes[:, 0, 0].any()
    assert spikes[:, 0, 1].all()


def test_same_seed_same_spikes_other_seed_other_spikes():
    x = torch.rand(3, 32, 32, generator=E.make_generator(9))
    params = E.PoissonParams()
    a = E.poisson_spikes(x, params, generator=5)
    b = E.poisson_spikes(x, params, generator=E.make_generator(5))
    c = E.poisson_spikes(x, params, generator=6)
    assert a.shape == (params.n_steps, 3, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_drawing_in_time_blocks_keeps_the_statistics(monkeypatch):
    monkeypatch.setattr(E, "_DRAW_BLOCK_ELEMENTS", 3 * N)  # 3 steps per block
    params = E.PoissonParams(max_rate_hz=100.0, duration_ms=100.0, dt_ms=1.0)
    spikes = E.poisson_spikes(torch.full((N,), 0.5), params, generator=3)
    assert spikes.shape == (100, N)
    # blocks are independent draws, not copies of one another
    assert not torch.equal(spikes[0:3], spikes[3:6])
    per_step = spikes.double().mean(dim=1)
    se = math.sqrt(0.05 * 0.95 / N)
    assert (per_step - 0.05).abs().max() < 5 * se + 1e-12


def test_decoded_intensity_is_unbiased_with_the_stated_variance():
    params = E.PoissonParams(max_rate_hz=63.75, duration_ms=350.0, dt_ms=0.5)
    x = 0.6
    decoded = E.decode_counts(_counts(x, params, seed=4), params).double()
    var = float(E.decode_variance(torch.tensor([x]), params))
    assert abs(float(decoded.mean()) - x) < 5 * math.sqrt(var / N)
    assert float(decoded.var()) == pytest.approx(var, rel=5 * math.sqrt(2 / (N - 1)))


def test_reconstruction_error_falls_as_one_over_sqrt_duration():
    x = torch.rand(16, 32, 32, generator=E.make_generator(0))
    result = E.reconstruction_error(x, [10, 40, 160, 640], max_rate_hz=63.75, dt_ms=0.5, seed=0)
    theory, measured = result["theory_rmse"], result["measured_rmse"]
    np.testing.assert_allclose(theory[:-1] / theory[1:], 2.0, rtol=0.02)  # 4x time: half
    np.testing.assert_allclose(measured, theory, rtol=0.05)  # 16384 pixels each


@pytest.mark.parametrize(
    "values, message",
    [
        ([[0.5, float("nan")]], "1 NaN value"),
        ([[0.5, -0.1]], r"must lie in \[0, 1\]; found values from -0.1"),
        ([[0.5, 1.5]], r"must lie in \[0, 1\]; found values from 0.5 to 1.5"),
    ],
)
def test_bad_intensities_are_refused_clearly(values, message):
    with pytest.raises(ValueError, match=message):
        E.poisson_spikes(torch.tensor(values), E.PoissonParams(), generator=0)


def test_uint8_images_and_scalars_are_refused():
    with pytest.raises(ValueError, match="got uint8 images"):
        E.poisson_spikes(np.zeros((1, 32, 32), dtype=np.uint8), E.PoissonParams(), generator=0)
    with pytest.raises(ValueError, match="batch dimension"):
        E.poisson_spikes(torch.tensor(0.5), E.PoissonParams(), generator=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_rate_hz=3000.0, dt_ms=0.5), r"asks for 1.5 spikes per time step.*<= 2000 Hz"),
        (dict(max_rate_hz=-1.0), "max_rate_hz must be a positive finite number"),
        (dict(dt_ms=0.0), "dt_ms must be a positive finite number"),
        (dict(duration_ms=float("inf")), "duration_ms must be a positive finite number"),
        (dict(duration_ms=10.25, dt_ms=0.5), "not a whole number of dt_ms=0.5 steps"),
    ],
)
def test_bad_parameters_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        E.PoissonParams(**kwargs)


def test_params_are_frozen_and_give_steps():
    params = E.PoissonParams(max_rate_hz=63.75, duration_ms=350.0, dt_ms=0.5)
    assert params.n_steps == 700
    assert params.p_max == pytest.approx(0.031875)
    with pytest.raises(AttributeError):
        params.dt_ms = 1.0  # type: ignore[misc]


def test_the_package_exports_the_modules_chapters_use():
    for name in ("data", "encoding", "profiles", "viz", "widgets"):
        assert hasattr(sl, name)


def test_correlated_trains_have_the_rate_and_share_spikes():
    spikes = E.correlated_poisson_spikes(40, 20.0, 0.5, 20000.0, 1.0, batch=1, generator=0)
    p = 0.02
    rate_per_step = p * 0.5 + p * 0.5 - p * p * 0.5 * 0.5  # exact, see the docstring
    n = spikes.shape[0] * 40
    assert abs(float(spikes.double().mean()) - rate_per_step) < 5 * math.sqrt(rate_per_step / n)
    s = spikes[:, 0].double()
    corr = np.corrcoef(s.T.numpy())
    off_diagonal = corr[~np.eye(40, dtype=bool)]
    assert abs(off_diagonal.mean() - 0.25) < 0.02  # about c^2
    independent = E.correlated_poisson_spikes(40, 20.0, 0.0, 20000.0, 1.0, generator=1)[:, 0]
    corr0 = np.corrcoef(independent.double().T.numpy())[~np.eye(40, dtype=bool)]
    assert abs(corr0.mean()) < 0.01


def test_correlation_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match=r"correlation must be in \[0, 1\]"):
        E.correlated_poisson_spikes(2, 10.0, 1.5, 100.0, 1.0, generator=0)


def test_poisson_step_is_bernoulli_at_the_rate_and_the_same_for_both_generators():
    x = torch.linspace(0.0, 1.0, 11).repeat(20000, 1)
    p_max = 0.3
    spikes = E.poisson_step(x, p_max, generator=torch.Generator().manual_seed(0))
    assert spikes.dtype == x.dtype and set(spikes.unique().tolist()) <= {0.0, 1.0}
    mean = spikes.mean(0)
    sem = torch.sqrt(x[0] * p_max * (1 - x[0] * p_max) / len(x))
    assert (torch.abs(mean - x[0] * p_max) <= 5 * sem + 1e-9).all()  # E[s] = x p_max
    assert spikes[:, 0].sum() == 0  # intensity 0 never spikes
    a = E.poisson_step(x[:50], 1.0, generator=np.random.default_rng(3))
    b = E.poisson_step(x[:50], 1.0, generator=np.random.default_rng(3))
    assert torch.equal(a, b) and torch.equal(a[:, -1], torch.ones(50))  # p = 1: always
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p_max must be a spike probability per step"):
            E.poisson_step(x, bad, generator=np.random.default_rng(0))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        E.poisson_step(x, 0.5, generator=0)


def test_regular_step_counts_are_floor_of_phase_plus_rate_mean_rate_and_variance_at_most_a_quarter():
    # an accumulator from phi gaining x p_max per step fires floor(phi + T x p_max) times in
    # T steps: floor(T x p) or ceil(T x p), mean T x p over uniform phases (as Poisson's), and
    # variance f (1 - f) with f the fractional part of T x p, where Poisson's is T x p (1 - x p)
    gen = torch.Generator().manual_seed(0)
    x = torch.linspace(0.0, 1.0, 11).repeat(20000, 1)
    phases = torch.rand(x.shape, generator=gen)
    p_max, T = 0.6, 30
    spikes = torch.stack([E.regular_step(x, p_max, phases, t) for t in range(1, T + 1)])
    assert spikes.dtype == x.dtype and set(spikes.unique().tolist()) <= {0.0, 1.0}
    counts = spikes.sum(0)
    rate = (x * p_max).double()
    # exactly floor(phi + T p) as float32 computes it; in exact arithmetic at most a few
    # inputs differ, where float32 rounds phi + T p across a whole number
    assert torch.equal(counts, torch.floor(phases + T * (x * p_max)))
    want = torch.floor(phases.double() + T * rate)
    assert float((counts.double() - want).abs().max()) <= 1
    assert float((counts.double() != want).float().mean()) < 1e-3
    lam = T * rate[0]
    low, high = torch.floor(lam + 1e-4), torch.ceil(lam - 1e-4)  # floor and ceiling of T x p
    inside = (counts.double() >= low) & (counts.double() <= high)
    assert float(inside.float().mean()) > 0.999
    mean, var = counts.double().mean(0), counts.double().var(0)
    f = lam - torch.floor(lam)
    np.testing.assert_allclose(mean.numpy(), lam.numpy(), atol=0.02)
    np.testing.assert_allclose(var.numpy(), (f * (1 - f)).numpy(), atol=0.02)
    assert counts[:, 0].sum() == 0  # intensity 0 never spikes
    assert torch.equal(counts[:, -1], torch.full((20000,), 18.0))  # x p_max T = 18 exactly
    # random phases: no volleys; each step fires about the mean fraction of the inputs
    per_step = spikes[:, :, 5].mean(1)  # x = 0.5: 0.3 spikes per step
    assert float((per_step - 0.3).abs().max()) < 0.02


def test_spike_counts_sum_long_trains_block_by_block_to_the_exact_total(monkeypatch):
    """The counts of a train summed a few steps at a time (as a long one is, to bound its int64
    copy) equal the plain sum, for bools and for 0/1 floats, whatever the block."""
    spikes = torch.rand((23, 4, 5), generator=torch.Generator().manual_seed(0)) < 0.3
    want = spikes.to(torch.int64).sum(dim=0)
    for elements in (1, 20, 40, 10_000):
        monkeypatch.setattr(E, "_COUNT_CHUNK_ELEMENTS", elements)
        got = E.spike_counts(spikes)
        assert got.dtype == torch.int64
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(E.spike_counts(spikes.float()), want)
