"""Rate (Poisson) encoding of intensities into spike trains.

A pixel of intensity :math:`x \\in [0, 1]` becomes a neuron firing at rate
:math:`r = x\\, r_{max}`. Time is cut into steps of :math:`\\Delta t`; in each
step the neuron spikes with probability

.. math:: p = r\\, \\Delta t = x\\, r_{max}\\, \\Delta t_{ms} / 1000,

independently of other steps and neurons. This is the Bernoulli
approximation of a Poisson process: it is exact in the limit
:math:`\\Delta t \\to 0` and needs :math:`p \\le 1`. Over
:math:`T = D / \\Delta t` steps the spike count is Binomial(T, p):

.. math:: E[n] = T p = x\\, r_{max}\\, D_{ms} / 1000, \\qquad
          \\mathrm{Var}[n] = T p (1 - p),

so the Fano factor is :math:`1 - p` (1 for a true Poisson process).

Spikes are time-major: ``(T, batch, ...)``.

Example
-------
>>> import torch, snnlib as sl
>>> params = sl.encoding.PoissonParams(max_rate_hz=100.0, duration_ms=100.0, dt_ms=1.0)
>>> spikes = sl.encoding.poisson_spikes(torch.full((2, 4), 0.5), params, generator=0)
>>> spikes.shape, spikes.dtype
(torch.Size([100, 2, 4]), torch.bool)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import _validate as check

__all__ = [
    "PoissonParams",
    "correlated_poisson_spikes",
    "decode_counts",
    "decode_variance",
    "expected_counts",
    "make_generator",
    "poisson_spikes",
    "poisson_step",
    "reconstruction_error",
    "regular_step",
    "spike_counts",
]

_DRAW_BLOCK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class PoissonParams:
    """Parameters of Poisson rate encoding.

    Attributes
    ----------
    max_rate_hz : float
        Firing rate of a pixel of intensity 1, in Hz. Diehl & Cook (2015)
        use 63.75 Hz (intensity 255 / 4).
    duration_ms : float
        Presentation time D per image, in ms.
    dt_ms : float
        Time step, in ms. ``duration_ms`` must be a whole number of steps.
    """

    max_rate_hz: float = 63.75
    duration_ms: float = 350.0
    dt_ms: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_rate_hz", "duration_ms", "dt_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)):
                raise TypeError(f"PoissonParams.{name} must be a real number, got "
                                f"{type(value).__name__} {value!r}.")
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"PoissonParams.{name}: {name} must be a positive finite number, "
                                 f"got {value!r}.")
        if self.p_max > 1.0:
            raise ValueError(
                f"max_rate_hz={self.max_rate_hz} with dt_ms={self.dt_ms} asks for "
                f"{self.p_max:.3g} spikes per time step; at most one spike per step is "
                f"possible, so max_rate_hz must be <= {1000.0 / self.dt_ms:g} Hz at this dt "
                "(or use a smaller dt_ms)."
            )
        steps = self.duration_ms / self.dt_ms
        if not math.isfinite(steps):
            raise ValueError(f"duration_ms={self.duration_ms} / dt_ms={self.dt_ms} is not a finite "
                             "number of steps.")
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ValueError(
                f"duration_ms={self.duration_ms} is not a whole number of dt_ms={self.dt_ms} steps."
            )

    @property
    def n_steps(self) -> int:
        """Number of time steps T = duration_ms / dt_ms."""
        return int(round(self.duration_ms / self.dt_ms))

    @property
    def p_max(self) -> float:
        """Spike probability per step at intensity 1: max_rate_hz * dt_ms / 1000."""
        return self.max_rate_hz * self.dt_ms / 1000.0


def _seed(name: str, seed, where: str) -> int:
    """A seed torch accepts: an integer in [0, 2**64 - 1] (not a float, not a bool)."""
    return check.integer(name, seed, low=0, high=2**64 - 1, where=where)


def _device(device, where: str) -> torch.device:
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{where}: device must be a str or torch.device such as 'cpu' or "
                        f"'cuda', got {type(device).__name__} {device!r}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{where}: device must name a torch device such as 'cpu' or 'cuda', "
                         f"got {device!r} ({err})") from None


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (an integer >= 0)."""
    seed = _seed("seed", seed, "encoding.make_generator")
    gen = torch.Generator(device=_device(device, "encoding.make_generator"))
    gen.manual_seed(seed)
    return gen


def _generator(generator, device, where: str) -> torch.Generator:
    """``generator`` itself, or a new one seeded with it (an integer >= 0)."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, (int, np.integer)):
        raise TypeError(f"{where}: generator must be a torch.Generator or an integer seed, got "
                        f"{type(generator).__name__} {generator!r}")
    return make_generator(_seed("generator", generator, where), device)


def _params(params, where: str) -> "PoissonParams":
    return check.instance("params", params, PoissonParams, where=where)


def _as_intensities(intensities, where: str = "encoding", name: str = "intensities"
                    ) -> torch.Tensor:
    """Convert to a float32 tensor and check it lies in [0, 1] without NaN, not empty."""
    if torch.is_tensor(intensities):
        x = intensities
    else:
        try:
            a = np.asarray(intensities)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{where}: {name} must be an array of floats in [0, 1], got "
                            f"{type(intensities).__name__} ({err})") from None
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{where}: {name} must be an array of floats in [0, 1], got dtype "
                            f"{a.dtype}")
        x = torch.as_tensor(a)
    if x.dtype == torch.uint8:
        raise ValueError(
            f"{where}: {name} must be floats in [0, 1], got uint8 images; "
            "divide by 255 or use snnlib.data.to_grayscale first."
        )
    if x.is_complex():
        raise TypeError(f"{where}: {name} must be real floats in [0, 1], got dtype {x.dtype}")
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    if x.ndim < 1:
        raise ValueError(f"{where}: {name} must have a batch dimension first, got a scalar.")
    if x.numel() == 0:
        raise ValueError(f"{where}: {name} must not be empty, got shape {tuple(x.shape)}.")
    nan = torch.isnan(x)
    if nan.any():
        first = tuple(int(k) for k in nan.nonzero()[0])
        raise ValueError(f"{where}: {name} contain {int(nan.sum())} NaN value(s) (the first at "
                         f"index {first}); {name} must be floats in [0, 1].")
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"{where}: {name} must lie in [0, 1]; found values from {low:g} to {high:g}."
            + (" (0-255 values: divide by 255)" if 1.0 < high <= 255.0 else "")
        )
    return x.to(torch.float32)


def poisson_spikes(
    intensities,
    params: PoissonParams,
    *,
    generator: torch.Generator | int,
) -> torch.Tensor:
    """Encode intensities as Poisson (Bernoulli-approximated) spike trains.

    .. math:: s_t \\sim \\mathrm{Bernoulli}(x\\, r_{max}\\, \\Delta t_{ms} / 1000),
              \\quad t = 1, \\dots, T = D / \\Delta t

    Parameters
    ----------
    intensities : array-like or torch.Tensor
        ``(B, ...)`` floats in [0, 1], batch first (e.g. ``(B, 32, 32)``).
    params : PoissonParams
        Maximum rate, duration and time step.
    generator : torch.Generator or int
        The random source, or a seed for a new one: the same seed gives the
        same spikes.

    Returns
    -------
    torch.Tensor
        ``(T, B, ...)`` bool spikes, time-major, on the device of
        ``intensities``.

    Raises
    ------
    ValueError
        For NaN, negative or > 1 intensities, uint8 or empty input, or spikes that
        would not fit in memory (T x elements bytes).
    TypeError
        For ``params`` that are not a :class:`PoissonParams` or a ``generator``
        that is neither a generator nor an integer seed.
    """
    where = "encoding.poisson_spikes"
    _params(params, where)
    x = _as_intensities(intensities, where)
    check.fits_in_memory(f"{params.n_steps} steps x {x.numel()} intensities of bool spikes",
                         params.n_steps * x.numel(), where=where)
    generator = _generator(generator, x.device, where)
    p = x * params.p_max
    spikes = torch.empty((params.n_steps, *x.shape), dtype=torch.bool, device=x.device)
    # Draw the uniforms a block of time steps at a time: about 64 MB of
    # float32 at most, whatever the batch size and duration.
    block = max(1, _DRAW_BLOCK_ELEMENTS // max(1, x.numel()))
    for start in range(0, params.n_steps, block):
        stop = min(start + block, params.n_steps)
        u = torch.rand((stop - start, *x.shape), generator=generator, device=x.device)
        torch.lt(u, p, out=spikes[start:stop])
    return spikes


def poisson_step(intensities: torch.Tensor, p_max: float, *, generator) -> torch.Tensor:
    """One time step of Poisson (Bernoulli-approximated) spikes, for simulations that draw as they go.

    .. math:: s \\sim \\mathrm{Bernoulli}(x\\, p_{max}), \\qquad
              p_{max} = r_{max}\\, \\Delta t_{ms} / 1000 \\le 1

    the same process as :func:`poisson_spikes`, one step at a time (a long
    simulation of a large batch then never holds all its input spikes).

    Parameters
    ----------
    intensities : torch.Tensor
        Floats in [0, 1], any shape. Their values are not checked here, in the
        inner loop of a simulation (a NaN would never spike): callers check them
        once, before the loop (as :func:`poisson_spikes` does).
    p_max : float
        Spike probability per step of an input of intensity 1, in (0, 1]
        (:attr:`PoissonParams.p_max`).
    generator : torch.Generator or numpy.random.Generator
        The random source. A torch generator draws on its own device; a numpy
        generator draws float32 uniforms on the CPU (the same numbers on every
        device). Either way the result is moved to ``intensities``' device.

    Returns
    -------
    torch.Tensor
        Spikes, 1.0 or 0.0, in ``intensities``' shape, dtype and device.
    """
    if not torch.is_tensor(intensities):
        raise TypeError(f"encoding.poisson_step: intensities must be a torch.Tensor, got "
                        f"{type(intensities).__name__}.")
    _check_p_max(p_max, "encoding.poisson_step")
    if isinstance(generator, np.random.Generator):
        u = torch.from_numpy(generator.random(tuple(intensities.shape), dtype=np.float32))
    elif isinstance(generator, torch.Generator):
        u = torch.rand(intensities.shape, generator=generator, device=generator.device)
    else:
        raise TypeError(f"encoding.poisson_step: generator must be a torch.Generator or a "
                        f"numpy.random.Generator, got {type(generator).__name__}.")
    u = u.to(intensities.device)
    p = intensities if p_max == 1.0 else intensities * p_max
    return (u < p).to(intensities.dtype)


def _check_p_max(p_max, where: str) -> None:
    """Refuse a ``p_max`` that is not a spike probability per step in (0, 1]."""
    if isinstance(p_max, bool) or not isinstance(p_max, (int, float)):
        raise TypeError(f"{where}: p_max must be a real number (a spike probability per step "
                        f"in (0, 1]), got {type(p_max).__name__} {p_max!r}.")
    if not 0.0 < p_max <= 1.0:
        raise ValueError(f"{where}: p_max must be a spike probability per step in (0, 1], got "
                         f"{p_max!r}.")


def regular_step(intensities: torch.Tensor, p_max: float, phases: torch.Tensor,
                 step: int) -> torch.Tensor:
    """One time step of regular spikes of random phase: a rate code without Poisson noise.

    .. math:: s_t = \\left[\\, \\lfloor \\varphi + t\\, x\\, p_{max} \\rfloor >
              \\lfloor \\varphi + (t - 1)\\, x\\, p_{max} \\rfloor \\right],
              \\qquad t = 1, 2, \\dots

    where :math:`\\varphi \\in [0, 1)` is the input's phase. The input adds :math:`x\\,
    p_{max}` to an accumulator that starts at :math:`\\varphi` and fires whenever it crosses a
    whole number (an integrate-and-fire encoder without leak); with :math:`x\\, p_{max} \\le
    1` that is at most once per step, where the fractional part :math:`\\{\\varphi + t x
    p_{max}\\}` falls below :math:`x\\, p_{max}`. Over :math:`T` steps an input fires
    :math:`\\lfloor \\varphi + T x p_{max} \\rfloor` times, :math:`\\lfloor T x p_{max}
    \\rfloor` or :math:`\\lceil T x p_{max} \\rceil`; with :math:`\\varphi` uniform its mean is
    :math:`T x p_{max}`, as for :func:`poisson_step`, and its variance is :math:`f(1 - f)
    \\le 1/4`, :math:`f = \\{T x p_{max}\\}`, where a Poisson (Bernoulli) count's is
    :math:`T x p_{max} (1 - x p_{max})`. Random phases keep inputs of equal intensity
    from firing in volleys.

    Parameters
    ----------
    intensities : torch.Tensor
        Floats in [0, 1], any shape (not checked here, in the inner loop of a simulation,
        as for :func:`poisson_step`).
    p_max : float
        Spikes per step of an input of intensity 1, in (0, 1].
    phases : torch.Tensor
        :math:`\\varphi`, floats in [0, 1) of ``intensities``' shape, drawn once per input
        (for example uniform) and kept for every step.
    step : int
        :math:`t`, counted from 1.

    Returns
    -------
    torch.Tensor
        Spikes, 1.0 or 0.0, in ``intensities``' shape, dtype and device.
    """
    where = "encoding.regular_step"
    for name, value in (("intensities", intensities), ("phases", phases)):
        if not torch.is_tensor(value):
            raise TypeError(f"{where}: {name} must be a torch.Tensor, got "
                            f"{type(value).__name__}.")
    if phases.shape != intensities.shape:
        raise ValueError(f"{where}: phases must have intensities' shape "
                         f"{tuple(intensities.shape)}, got {tuple(phases.shape)}.")
    if not bool(((phases >= 0) & (phases < 1)).all()):  # NaN fails both
        raise ValueError(f"{where}: phases must be in [0, 1).")
    _check_p_max(p_max, where)
    check.integer("step", step, low=1, where=where)
    p = intensities * p_max
    return _regular_fired(phases, p, step).to(intensities.dtype)


def _regular_fired(phases: torch.Tensor, p: torch.Tensor, step: int) -> torch.Tensor:
    """:func:`regular_step`'s spikes as booleans, for spike probabilities ``p`` = x p_max
    (no checks: called at every step). Each accumulator is computed by the same expression at
    every step, so that the spikes of steps 1 to T add up to :math:`\\lfloor \\varphi + T p
    \\rfloor` as computed in floating point, whatever the rounding of the steps between (the
    fractional part's test, rounded at each step on its own, can fire twice for one
    crossing)."""
    return torch.floor(phases + step * p) > torch.floor(phases + (step - 1) * p)


_COUNT_CHUNK_ELEMENTS = 2**27
""":func:`spike_counts` sums at most this many spikes at a time (1 GiB as int64)."""


def spike_counts(spikes: torch.Tensor) -> torch.Tensor:
    """Spikes per neuron over time: the sum over the first (time) axis, as int64.

    ``spikes`` is a time-major ``(T, ...)`` tensor of bools or of 0/1 numbers. The
    sum runs over blocks of time steps, so that its int64 copy of the spikes never
    exceeds 1 GiB (a copy of 6,000 steps of 1,000 images would take 49 GB).
    """
    where = "encoding.spike_counts"
    check.tensor("spikes", spikes, where=where)
    if spikes.ndim < 1 or spikes.numel() == 0:
        raise ValueError(f"{where}: spikes must be time-major (T, ...) and not empty, got shape "
                         f"{tuple(spikes.shape)}.")
    if spikes.dtype != torch.bool:
        check.array("spikes", spikes, low=0, high=1, where=where)
    block = max(1, _COUNT_CHUNK_ELEMENTS // max(1, spikes[0].numel()))
    counts = spikes[:block].sum(dim=0, dtype=torch.int64)
    for start in range(block, spikes.shape[0], block):
        counts += spikes[start:start + block].sum(dim=0, dtype=torch.int64)
    return counts


def expected_counts(intensities, params: PoissonParams) -> torch.Tensor:
    """Mean spike count of each neuron: :math:`E[n] = x\\, r_{max}\\, D_{ms} / 1000`."""
    where = "encoding.expected_counts"
    _params(params, where)
    return _as_intensities(intensities, where) * params.max_rate_hz * params.duration_ms / 1000.0


def decode_counts(counts, params: PoissonParams) -> torch.Tensor:
    """Estimate intensities from spike counts: :math:`\\hat x = n / (r_{max} D_{ms} / 1000)`.

    The estimate is unbiased; :func:`decode_variance` gives its variance.
    ``counts`` are finite, non-negative numbers (e.g. :func:`spike_counts`).
    """
    where = "encoding.decode_counts"
    _params(params, where)
    counts = check.array("counts", counts, low=0, where=where)
    counts = torch.as_tensor(counts)
    return counts.to(torch.float32) / (params.max_rate_hz * params.duration_ms / 1000.0)


def decode_variance(intensities, params: PoissonParams) -> torch.Tensor:
    """Variance of :func:`decode_counts`' estimate for true intensities ``x``.

    With :math:`n \\sim \\mathrm{Binomial}(T, x p_{max})` and
    :math:`\\hat x = n / (T p_{max})`:

    .. math:: \\mathrm{Var}[\\hat x] = \\frac{x (1 - x p_{max})}{T p_{max}}
              = \\frac{x (1 - x p_{max})}{r_{max} D_{ms} / 1000}.

    It falls as 1/D: doubling the presentation time halves the squared error.
    """
    where = "encoding.decode_variance"
    _params(params, where)
    x = _as_intensities(intensities, where)
    return x * (1.0 - x * params.p_max) / (params.n_steps * params.p_max)


def reconstruction_error(
    intensities,
    durations_ms,
    *,
    max_rate_hz: float,
    dt_ms: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """RMS error of intensities decoded from spike counts, for several durations.

    For each duration D: encode, count, decode (:func:`decode_counts`) and
    compare with the true intensities; the theory is the square root of the
    mean of :func:`decode_variance` over the pixels, which falls as
    :math:`1/\\sqrt{D}`.

    Returns
    -------
    dict
        ``duration_ms``, ``measured_rmse`` and ``theory_rmse``, arrays of the
        same length as ``durations_ms``.
    """
    where = "encoding.reconstruction_error"
    x = _as_intensities(intensities, where)
    durations = check.array("durations_ms", durations_ms, ndim=1, low=0, where=where)
    all_params = []
    for duration in durations.tolist():  # every duration checked before any is simulated
        try:
            all_params.append(PoissonParams(max_rate_hz=max_rate_hz, duration_ms=float(duration),
                                            dt_ms=dt_ms))
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: {err}") from None
    steps = max(params.n_steps for params in all_params)
    check.fits_in_memory(f"{steps} steps x {x.numel()} intensities of bool spikes",
                         steps * x.numel(), where=where)
    gen = make_generator(_seed("seed", seed, where), x.device)
    measured, theory = [], []
    for params in all_params:
        decoded = decode_counts(spike_counts(poisson_spikes(x, params, generator=gen)), params)
        measured.append(float(torch.sqrt(torch.mean((decoded - x) ** 2))))
        theory.append(float(torch.sqrt(torch.mean(decode_variance(x, params)))))
    return {
        "duration_ms": np.asarray(durations_ms, dtype=float),
        "measured_rmse": np.asarray(measured),
        "theory_rmse": np.asarray(theory),
    }


def correlated_poisson_spikes(
    n_inputs: int,
    rate_hz: float,
    correlation: float,
    duration_ms: float,
    dt_ms: float,
    *,
    batch: int = 1,
    generator: torch.Generator | int,
) -> torch.Tensor:
    """Spike trains of equal rate that share a fraction of their spikes.

    A reference train :math:`R` fires with probability :math:`p = r \\Delta t`
    per step; each input copies each reference spike with probability
    :math:`c` and adds independent spikes with probability :math:`p (1 - c)`:

    .. math:: s_i = (R \\wedge A_i) \\vee B_i, \\quad
              A_i \\sim \\mathrm{Bernoulli}(c), \\ B_i \\sim \\mathrm{Bernoulli}(p (1 - c)),

    so every input fires at about rate :math:`r` (exactly
    :math:`p c + p(1-c) - p^2 c (1-c)` per step) and two inputs share
    spikes with correlation coefficient close to :math:`c^2` (Song, Miller
    & Abbott 2000 use this kind of input). ``correlation = 0`` gives
    independent Poisson trains.

    Returns
    -------
    torch.Tensor
        ``(T, batch, n_inputs)`` bool.
    """
    where = "encoding.correlated_poisson_spikes"
    n_inputs = check.integer("n_inputs", n_inputs, low=1, where=where)
    batch = check.integer("batch", batch, low=1, where=where)
    correlation = check.probability("correlation", correlation, where=where)
    rate_hz = check.number("rate_hz", rate_hz, low=0, low_open=True, where=where)
    try:
        params = PoissonParams(max_rate_hz=rate_hz, duration_ms=duration_ms, dt_ms=dt_ms)
    except (TypeError, ValueError) as err:  # the rate x dt_ms check: say it of rate_hz
        text = str(err)
        text = "rate_hz=" + text.removeprefix("max_rate_hz=") if text.startswith("max_rate_hz=") \
            else text
        raise type(err)(f"{where}: {text}") from None
    p = params.p_max
    shape = (params.n_steps, batch, n_inputs)
    # two float32 uniforms and three bool tensors of this shape at the peak
    check.fits_in_memory(f"{params.n_steps} steps (duration_ms / dt_ms) x batch={batch} x "
                         f"n_inputs={n_inputs}",
                         11 * params.n_steps * batch * n_inputs, where=where)
    generator = _generator(generator, "cpu", where)
    reference = torch.rand((params.n_steps, batch, 1), generator=generator) < p
    copied = torch.rand(shape, generator=generator) < correlation
    own = torch.rand(shape, generator=generator) < p * (1.0 - correlation)
    return (reference & copied) | own
