"""Leaky integrate-and-fire (LIF) neurons, in PyTorch and in Brian2.

The membrane potential :math:`v` relaxes towards rest and is pushed by an
input current :math:`I` or by excitatory and inhibitory conductances
:math:`g_e, g_i` (dimensionless, in units of the leak conductance, as in
Diehl & Cook 2015):

.. math::

    \\tau_m \\frac{dv}{dt} = (v_{rest} - v) + R I
                           + g_e (E_e - v) + g_i (E_i - v),
    \\qquad \\tau_{exc} \\frac{dg_e}{dt} = -g_e, \\qquad \\tau_{inh} \\frac{dg_i}{dt} = -g_i.

When :math:`v > v_{th} + \\theta` the neuron spikes, :math:`v` is set to
:math:`v_{reset}` and held there for the refractory period :math:`t_{ref}`.
With an adaptive threshold each spike raises :math:`\\theta` by
:math:`\\theta_+`, and :math:`\\theta` decays with :math:`\\tau_\\theta`
(Diehl & Cook 2015, section 2.1).

Integration (one step of :math:`\\Delta t`), the same scheme as Brian2's
``exponential_euler``: the conductances and the current are held at their
values at the start of the step, which makes the equation for :math:`v`
linear, and it is solved exactly:

.. math::

    v \\leftarrow v_\\infty + (v - v_\\infty)\\, e^{-\\Delta t (1 + g_e + g_i) / \\tau_m},
    \\qquad v_\\infty = \\frac{v_{rest} + R I + g_e E_e + g_i E_i}{1 + g_e + g_i}.

This is *exact* for a current that is constant over the step and no
conductance input (the usual "exact integration" of a linear ODE), and first
order in :math:`\\Delta t` when conductances change within a step. The
conductances and :math:`\\theta` decay exactly (:math:`g \\leftarrow g
e^{-\\Delta t / \\tau}`).

Order within a step (Brian2's default schedule): integrate, compare with the
threshold, add this step's synaptic input to the conductances, reset. A
neuron that spiked at step k is not integrated at steps k+1 ... k+n-1
(:math:`n = t_{ref} / \\Delta t`) and resumes at step k+n: its potential
is held for exactly :math:`t_{ref}`.

Units: ms, mV, nA, MΩ (so that nA x MΩ = mV). Tensors are float32; state is
``(batch, neurons)``; spikes over time are time-major ``(T, batch, neurons)``.

References: Gerstner et al. (2014), *Neuronal Dynamics*, ch. 1.3; Diehl &
Cook (2015), *Front. Comput. Neurosci.* 9:99; for the converted networks' IF
neurons, Rueckauer et al. (2017), *Front. Neurosci.* 11:682, and Wang, Zhang,
Chen & Qu (2022), signed neuron with memory, *IJCAI*.
"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import torch

from . import _validate as check

__all__ = [
    "IFNeurons",
    "LIF",
    "LIFParams",
    "LIFRecord",
    "LIFState",
    "brian2_target",
    "build_lif_group",
    "connect_brian2",
    "if_rate",
    "if_step",
    "lif_delta_rate_hz",
    "lif_delta_step",
    "lif_rate_hz",
    "lif_step",
    "measured_rate_hz",
    "run_brian2",
    "signed_if_step",
    "simulate_lif",
    "simulate_lif_brian2",
]


@dataclass(frozen=True)
class LIFParams:
    """Parameters of a LIF neuron (one object drives PyTorch and Brian2).

    Attributes
    ----------
    tau_mem_ms : float
        Membrane time constant :math:`\\tau_m` (ms).
    v_rest_mv, v_reset_mv, v_thresh_mv : float
        Resting, reset and threshold potentials (mV); threshold above reset
        and rest.
    t_ref_ms : float
        Refractory period (ms), a whole number of time steps.
    r_mem_mohm : float
        Membrane resistance R (MΩ) for current input: R I is in mV for I in nA.
    e_exc_mv, e_inh_mv : float
        Reversal potentials of the excitatory and inhibitory conductances (mV).
    tau_exc_ms, tau_inh_ms : float
        Decay time constants of the conductances (ms).
    theta_plus_mv : float
        Threshold increase per spike (mV); 0 disables the adaptive threshold.
    tau_theta_ms : float
        Decay time constant of the adaptive threshold (ms).
    dt_ms : float
        Time step (ms); must be smaller than every time constant.
    """

    tau_mem_ms: float = 20.0
    v_rest_mv: float = -65.0
    v_reset_mv: float = -65.0
    v_thresh_mv: float = -52.0
    t_ref_ms: float = 2.0
    r_mem_mohm: float = 10.0
    e_exc_mv: float = 0.0
    e_inh_mv: float = -100.0
    tau_exc_ms: float = 1.0
    tau_inh_ms: float = 2.0
    theta_plus_mv: float = 0.0
    tau_theta_ms: float = 1.0e7
    dt_ms: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"LIFParams.{f.name} must be a real number, got "
                                f"{type(value).__name__} {value!r}.")
            if not math.isfinite(value):
                raise ValueError(f"LIFParams.{f.name} must be a finite number, got {value!r}.")
        for name in ("tau_mem_ms", "tau_exc_ms", "tau_inh_ms", "tau_theta_ms", "dt_ms",
                     "r_mem_mohm"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LIFParams.{name} must be positive, got {getattr(self, name)!r}.")
        for name in ("t_ref_ms", "theta_plus_mv"):
            if getattr(self, name) < 0:
                raise ValueError(f"LIFParams.{name} must be >= 0, got {getattr(self, name)!r}.")
        for name in ("tau_mem_ms", "tau_exc_ms", "tau_inh_ms"):
            if self.dt_ms >= getattr(self, name):
                raise ValueError(
                    f"dt_ms={self.dt_ms} must be smaller than {name}={getattr(self, name)}: "
                    "a step as long as a time constant cannot resolve the dynamics."
                )
        if self.v_thresh_mv <= self.v_reset_mv:
            raise ValueError(
                f"v_thresh_mv={self.v_thresh_mv} must be above v_reset_mv={self.v_reset_mv}, "
                "or the neuron would spike again right after every reset."
            )
        if self.v_thresh_mv <= self.v_rest_mv:
            raise ValueError(
                f"v_thresh_mv={self.v_thresh_mv} must be above v_rest_mv={self.v_rest_mv}, "
                "or the neuron would fire without input."
            )
        steps = self.t_ref_ms / self.dt_ms
        if not math.isfinite(steps):
            raise ValueError(f"t_ref_ms={self.t_ref_ms} / dt_ms={self.dt_ms} is not a finite "
                             "number of steps.")
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"t_ref_ms={self.t_ref_ms} is not a whole number of dt_ms={self.dt_ms} steps.")

    @property
    def ref_steps(self) -> int:
        """Refractory period in time steps."""
        return int(round(self.t_ref_ms / self.dt_ms))


class LIFState(NamedTuple):
    """State of a batch of LIF neurons, each ``(batch, neurons)``.

    ``ref_steps``: steps of refractoriness left (int32; 0 = free).
    """

    v_mem: torch.Tensor
    g_exc: torch.Tensor
    g_inh: torch.Tensor
    theta: torch.Tensor
    ref_steps: torch.Tensor

    @classmethod
    def initial(cls, p: LIFParams, batch: int, neurons: int, device="cpu") -> "LIFState":
        """Every neuron at rest, no conductance, no threshold adaptation, not refractory."""
        _check_population(p, batch, neurons, "neurons.LIFState.initial")
        zeros = torch.zeros(batch, neurons, dtype=torch.float32, device=device)
        return cls(zeros + p.v_rest_mv, zeros.clone(), zeros.clone(), zeros.clone(),
                   torch.zeros(batch, neurons, dtype=torch.int32, device=device))


def _check_population(p, batch, neurons, where: str) -> None:
    check.instance("p", p, LIFParams, where=where)
    batch = check.integer("batch", batch, low=1, where=where)
    neurons = check.integer("neurons", neurons, low=1, where=where)
    check.fits_in_memory(f"the state of batch={batch} x neurons={neurons}",
                         20 * batch * neurons, where=where)


def _check_input(name: str, x, shape: tuple, where: str):
    """A finite number, or a finite tensor broadcastable to ``shape``; None passes."""
    if x is None:
        return None
    if isinstance(x, np.ndarray):
        x = torch.as_tensor(check.array(name, x, nonempty=False, where=where))
    if not torch.is_tensor(x):
        if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.integer,
                                                                 np.floating)):
            raise TypeError(f"{where}: {name} must be a number or a torch.Tensor broadcastable to "
                            f"{shape}, got {type(x).__name__}")
        return check.number(name, x, where=where)
    try:
        broadcast = tuple(torch.broadcast_shapes(tuple(x.shape), shape))
    except RuntimeError:
        raise ValueError(f"{where}: {name} of shape {tuple(x.shape)} does not broadcast to the "
                         f"state's (batch, neurons) = {shape}") from None
    # (an ndarray current is passed on as it came: lif_step reads it with torch.as_tensor)
    if broadcast != shape:
        raise ValueError(f"{where}: {name} of shape {tuple(x.shape)} would change the state's "
                         f"shape {shape}")
    return check.array(name, x, nonempty=False, where=where)


def lif_step(
    state: LIFState,
    p: LIFParams,
    *,
    current_na: torch.Tensor | float | None = None,
    exc_input: torch.Tensor | None = None,
    inh_input: torch.Tensor | None = None,
) -> tuple[torch.Tensor, LIFState]:
    """Advance LIF neurons by one step of ``p.dt_ms``; pure (returns a new state).

    Parameters
    ----------
    state : LIFState
        ``(batch, neurons)`` tensors.
    p : LIFParams
    current_na : tensor or float, optional
        Input current (nA) during this step, broadcastable to ``(batch, neurons)``.
    exc_input, inh_input : tensor, optional
        Conductance increments arriving this step (e.g. ``pre_spikes @ w.T``),
        added after the threshold test: they act from the next step on.

    Returns
    -------
    spikes : torch.Tensor
        ``(batch, neurons)`` bool.
    state : LIFState
        The state after the step.

    Notes
    -----
    .. math::

        v \\leftarrow v_\\infty + (v - v_\\infty) e^{-\\Delta t (1 + g_e + g_i)/\\tau_m}
        \\text{ (if not refractory)},\\quad
        s = [v > v_{th} + \\theta],\\quad v \\leftarrow v_{reset} \\text{ where } s.

    The inputs are checked (shapes, finite values: one pass each);
    :func:`simulate_lif` and the other loops check theirs once and step
    without checks.
    """
    where = "neurons.lif_step"
    check.instance("state", state, LIFState, where=where)
    check.instance("p", p, LIFParams, where=where)
    for name, value in zip(LIFState._fields, state):
        check.tensor(f"state.{name}", value, where=where)
    shape = tuple(state.v_mem.shape)
    if len(shape) != 2:
        raise ValueError(f"{where}: state must hold (batch, neurons) tensors, got v_mem of shape "
                         f"{shape}")
    for name, value in zip(LIFState._fields, state):
        if tuple(value.shape) != shape:
            raise ValueError(f"{where}: state.{name} has shape {tuple(value.shape)}, "
                             f"state.v_mem {shape}; they must match")
    check.array("state.v_mem", state.v_mem, where=where)
    _check_input("current_na", current_na, shape, where)
    _check_input("exc_input", exc_input, shape, where)
    _check_input("inh_input", inh_input, shape, where)
    return _lif_step(state, p, current_na=current_na, exc_input=exc_input, inh_input=inh_input)


def _lif_step(state: LIFState, p: LIFParams, *, current_na=None, exc_input=None, inh_input=None
              ) -> tuple[torch.Tensor, LIFState]:
    """:func:`lif_step` without checks, for loops that checked their inputs once."""
    v, g_e, g_i, theta, ref = state
    ref = torch.clamp(ref - 1, min=0)
    free = ref == 0
    leak = 1.0 + g_e + g_i
    drive = p.v_rest_mv + g_e * p.e_exc_mv + g_i * p.e_inh_mv
    if current_na is not None:
        drive = drive + p.r_mem_mohm * torch.as_tensor(current_na, dtype=torch.float32,
                                                       device=v.device)
    v_inf = drive / leak
    v_new = v_inf + (v - v_inf) * torch.exp(-p.dt_ms / p.tau_mem_ms * leak)
    v = torch.where(free, v_new, v)
    g_e = g_e * math.exp(-p.dt_ms / p.tau_exc_ms)
    g_i = g_i * math.exp(-p.dt_ms / p.tau_inh_ms)
    theta = theta * math.exp(-p.dt_ms / p.tau_theta_ms)
    spikes = (v > p.v_thresh_mv + theta) & free
    if exc_input is not None:
        g_e = g_e + exc_input
    if inh_input is not None:
        g_i = g_i + inh_input
    v = torch.where(spikes, torch.full_like(v, p.v_reset_mv), v)
    theta = theta + p.theta_plus_mv * spikes
    ref = torch.where(spikes, torch.full_like(ref, p.ref_steps), ref)
    return spikes, LIFState(v, g_e, g_i, theta, ref)


class LIF:
    """A population of LIF neurons that keeps its state between steps.

    Example
    -------
    >>> import torch, snnlib as sl
    >>> layer = sl.neurons.LIF(sl.neurons.LIFParams(), batch=2, neurons=3)
    >>> spikes = layer.step(current_na=torch.full((2, 3), 2.0))
    >>> spikes.shape
    torch.Size([2, 3])
    """

    def __init__(self, params: LIFParams, batch: int, neurons: int, device="cpu") -> None:
        where = "neurons.LIF"
        check.instance("params", params, LIFParams, where=where)
        batch = check.integer("batch", batch, low=1, where=where)
        neurons = check.integer("neurons", neurons, low=1, where=where)
        self.params = params
        self.batch, self.neurons, self.device = batch, neurons, device
        self.reset_state()

    def reset_state(self) -> None:
        """Back to rest (v = v_rest, no conductance, theta = 0, not refractory)."""
        self.state = LIFState.initial(self.params, self.batch, self.neurons, self.device)

    def step(self, *, current_na=None, exc_input=None, inh_input=None) -> torch.Tensor:
        """One time step (:func:`lif_step`'s inputs, checked there); returns the spikes."""
        spikes, self.state = lif_step(self.state, self.params, current_na=current_na,
                                      exc_input=exc_input, inh_input=inh_input)
        return spikes


class LIFRecord(NamedTuple):
    """What :func:`simulate_lif` records, each ``(T, batch, neurons)``.

    ``v_mem`` and ``theta`` are the values at the end of each step (after
    reset); they are None when the run was made with ``record=False``.
    """

    spikes: torch.Tensor
    v_mem: torch.Tensor | None
    theta: torch.Tensor | None


def simulate_lif(current_na: torch.Tensor, p: LIFParams, *, record: bool = True) -> LIFRecord:
    """Drive LIF neurons with a current ``(T, batch, neurons)`` (nA), from rest.

    Returns
    -------
    LIFRecord
        ``spikes`` (bool), and when ``record`` the potential ``v_mem`` (mV)
        and the threshold adaptation ``theta`` (mV).
    """
    where = "neurons.simulate_lif"
    check.instance("p", p, LIFParams, where=where)
    record = check.flag("record", record, where=where)
    if not torch.is_tensor(current_na):
        current_na = check.array("current_na", current_na, finite=False, nonempty=False,
                                 where=where)
    current_na = torch.as_tensor(current_na, dtype=torch.float32)
    if current_na.ndim != 3:
        raise ValueError(f"{where}: current_na must be (T, batch, neurons), got shape "
                         f"{tuple(current_na.shape)}.")
    check.array("current_na", current_na, where=where)  # finite (after float32), not empty
    steps, batch, neurons = current_na.shape
    check.fits_in_memory(f"recording {steps} steps x {batch} x {neurons} neurons",
                         current_na.numel() * (9 if record else 1) + 20 * batch * neurons,
                         where=where)
    state = LIFState.initial(p, batch, neurons, current_na.device)
    spikes = torch.empty(current_na.shape, dtype=torch.bool, device=current_na.device)
    v_mem = torch.empty_like(current_na) if record else None
    theta = torch.empty_like(current_na) if record else None
    for t in range(steps):
        spikes[t], state = _lif_step(state, p, current_na=current_na[t])
        if record:
            v_mem[t] = state.v_mem
            theta[t] = state.theta
    return LIFRecord(spikes, v_mem, theta)


def measured_rate_hz(current_na, p: LIFParams, *, duration_ms: float = 1000.0) -> np.ndarray:
    """Firing rate of :func:`simulate_lif` for each constant current (nA), in Hz.

    Counts the spikes of ``duration_ms`` of simulation from rest; the
    analytic counterpart is :func:`lif_rate_hz`.
    """
    where = "neurons.measured_rate_hz"
    check.instance("p", p, LIFParams, where=where)
    current = check.array("current_na", current_na, where=where)
    duration_ms = check.number("duration_ms", duration_ms, low=0, low_open=True, where=where)
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
        current = torch.as_tensor(np.asarray(current, dtype=np.float32)).flatten()
    check.array("current_na", current, where=where)  # finite in float32 too
    steps = check.steps(f"duration_ms={duration_ms:g} at dt_ms={p.dt_ms:g}",
                        duration_ms / p.dt_ms, max_steps=MAX_STEPS, where=where)
    if steps < 1:
        raise ValueError(f"{where}: duration_ms={duration_ms:g} is less than one step of "
                         f"dt_ms={p.dt_ms:g}")
    spikes = simulate_lif(current.expand(steps, 1, -1), p, record=False).spikes
    return spikes[:, 0].sum(dim=0).numpy() / (duration_ms / 1000.0)


def lif_rate_hz(current_na, p: LIFParams) -> np.ndarray:
    """Analytic firing rate of a LIF neuron under constant current (the f-I curve).

    .. math::

        r = \\left[t_{ref} + \\tau_m \\ln \\frac{v_\\infty - v_{reset}}
            {v_\\infty - v_{th}}\\right]^{-1} \\text{ for } v_\\infty > v_{th},
        \\qquad v_\\infty = v_{rest} + R I,

    and 0 below the rheobase :math:`I < (v_{th} - v_{rest}) / R`
    (Gerstner et al. 2014, eq. 1.13, with a refractory period). Without
    adaptation (``theta_plus_mv = 0``). A simulation with step
    :math:`\\Delta t` detects each threshold crossing up to one step late.
    """
    check.instance("p", p, LIFParams, where="neurons.lif_rate_hz")
    current = np.asarray(check.array("current_na", current_na, where="neurons.lif_rate_hz"),
                         dtype=float)
    v_inf = p.v_rest_mv + p.r_mem_mohm * current
    rate = np.zeros_like(current)
    above = v_inf > p.v_thresh_mv
    isi_ms = p.t_ref_ms + p.tau_mem_ms * np.log(
        (v_inf[above] - p.v_reset_mv) / (v_inf[above] - p.v_thresh_mv))
    rate[above] = 1000.0 / isi_ms
    return rate


MAX_STEPS = 1_000_000
"""The most time steps a duration given in ms may ask for (a typo such as 1e6 ms for 1e3 ms
would otherwise run for many minutes)."""


# --- current-based LIF with instantaneous (delta) synapses -------------------

def lif_delta_step(v_mem: torch.Tensor, input_mv: torch.Tensor, p: LIFParams, *,
                   theta_mv: torch.Tensor | float = 0.0, inhibition_mv: float = 0.0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a LIF neuron whose synapses are instantaneous jumps of ``v``; pure.

    The simplest LIF used by convolutional STDP networks (Kheradpisheh et al.
    2018; Mozafari et al. 2019): each presynaptic spike moves the potential by
    its weight at once (a current that is a delta function),

    .. math::

        \\tau_m \\frac{dv}{dt} = (v_{rest} - v) + \\tau_m \\sum_j w_j \\sum_f \\delta(t - t_j^f),

    integrated exactly over a step of :math:`\\Delta t`:

    .. math::

        v \\leftarrow v_{rest} + (v - v_{rest})\\, e^{-\\Delta t/\\tau_m} + \\sum_j w_j s_j,
        \\qquad s = [v > v_{th} + \\theta], \\qquad v \\leftarrow v_{reset} \\text{ where } s.

    With ``inhibition_mv`` > 0 the neurons along the last dimension inhibit
    each other (lateral inhibition, a soft winner-take-all): every spike
    lowers the potential of the *other* neurons of its row by
    ``inhibition_mv``, and then every potential below :math:`v_{reset}` is
    raised to it (with rest = reset and non-negative jumps nothing else is ever
    below it; negative jumps, e.g. tier 2's feed-forward inhibition, are floored
    there too).

    Uses ``tau_mem_ms``, ``v_rest_mv``, ``v_reset_mv``, ``v_thresh_mv`` and
    ``dt_ms`` of ``p`` (no conductances, no refractory period: ``t_ref_ms``
    must be 0).

    Parameters
    ----------
    v_mem : torch.Tensor
        ``(batch, neurons)`` potentials (mV) after the previous step.
    input_mv : torch.Tensor
        ``(batch, neurons)`` jump of this step, :math:`\\sum_j w_j s_j` (mV),
        e.g. ``pre_spikes @ w.T`` with ``w`` in mV.
    theta_mv : tensor or float
        Threshold offsets (mV), broadcastable (e.g. ``(neurons,)``).

    Returns
    -------
    spikes : torch.Tensor
        ``(batch, neurons)``, 1.0 for a spike and 0.0 otherwise, in the dtype of
        the inputs (ready for the next layer's matrix product).
    v_mem : torch.Tensor
        The potentials after the step (mV).

    Notes
    -----
    Types, shapes and the numbers ``theta_mv`` (when a float) and
    ``inhibition_mv`` are checked; the tensors' values are not (this is the
    inner loop of tier 2, millions of neurons per step): callers check their
    inputs once, before the loop.
    """
    where = "neurons.lif_delta_step"
    if not isinstance(p, LIFParams):
        check.instance("p", p, LIFParams, where=where)
    if not (torch.is_tensor(v_mem) and torch.is_tensor(input_mv)):
        check.tensor("v_mem", v_mem, where=where)
        check.tensor("input_mv", input_mv, where=where)
    if v_mem.shape != input_mv.shape:
        raise ValueError(f"{where}: input_mv has shape {tuple(input_mv.shape)}, v_mem "
                         f"{tuple(v_mem.shape)}; they must match")
    if not torch.is_tensor(theta_mv):
        check.number("theta_mv", theta_mv, where=where)
    if inhibition_mv.__class__ is not float or not 0.0 <= inhibition_mv < math.inf:
        check.number("inhibition_mv", inhibition_mv, low=0, where=where)
    if p.t_ref_ms != 0:
        raise ValueError(f"lif_delta_step has no refractory period; use LIFParams(t_ref_ms=0), "
                         f"not {p.t_ref_ms}.")
    decay = math.exp(-p.dt_ms / p.tau_mem_ms)
    # Written for speed (tier 2 calls it for millions of neurons per step): one new
    # tensor updated in place, and spikes as float 0/1, since float arithmetic is
    # several times faster than bool tensors on the CPU. v_mem and input_mv are not modified.
    v = input_mv.add(v_mem, alpha=decay).add_(p.v_rest_mv * (1.0 - decay))
    spikes = (v - (p.v_thresh_mv + theta_mv)).sign_().clamp_(min=0.0)  # 1 where v > threshold
    v.mul_(1.0 - spikes).add_(spikes, alpha=p.v_reset_mv)
    if inhibition_mv:
        others = spikes.sum(dim=-1, keepdim=True)
        v.sub_(others, alpha=inhibition_mv).add_(spikes, alpha=inhibition_mv).clamp_(min=p.v_reset_mv)
    return spikes, v


def lif_delta_rate_hz(jump_mv, p: LIFParams) -> np.ndarray:
    """Analytic rate of :func:`lif_delta_step` when the input jumps by ``jump_mv`` every step.

    From reset, after :math:`k` steps :math:`v_k = v_{rest} + (v_{reset} - v_{rest})\\alpha^k
    + J (1 - \\alpha^k)/(1 - \\alpha)` with :math:`\\alpha = e^{-\\Delta t/\\tau_m}`; the
    neuron fires at the first :math:`k` with :math:`v_k > v_{th}` and then
    repeats, so :math:`r = 1 / (k\\,\\Delta t)`; 0 when
    :math:`J/(1-\\alpha) \\le v_{th} - v_{rest}` (never reaches threshold).
    """
    where = "neurons.lif_delta_rate_hz"
    check.instance("p", p, LIFParams, where=where)
    jump = np.atleast_1d(np.asarray(check.array("jump_mv", jump_mv, where=where), dtype=float))
    alpha = math.exp(-p.dt_ms / p.tau_mem_ms)
    rate = np.zeros_like(jump)
    for i, j in enumerate(jump):
        if p.v_rest_mv + j / (1 - alpha) <= p.v_thresh_mv:
            continue
        v, k = p.v_reset_mv, 0
        while v <= p.v_thresh_mv and k < MAX_STEPS:
            v = p.v_rest_mv + (v - p.v_rest_mv) * alpha + j
            k += 1
        # a jump a rounding error above the rheobase may never cross in floating point:
        # slower than one spike per MAX_STEPS steps counts as silent
        rate[i] = 1000.0 / (k * p.dt_ms) if v > p.v_thresh_mv else 0.0
    return rate.reshape(np.shape(jump_mv))


# --- integrate-and-fire with reset by subtraction (converted networks) -------

def if_step(v: torch.Tensor, z: torch.Tensor, *, threshold: float = 1.0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of non-leaky integrate-and-fire neurons with reset by subtraction; pure.

    .. math:: v \\leftarrow v + z, \\qquad s = [v \\ge \\vartheta], \\qquad
              v \\leftarrow v - \\vartheta s

    (Rueckauer et al. 2017, eq. 2-3; "reset by subtraction" keeps the charge
    above threshold, so the rate follows the input without the loss of a
    reset to zero). ``v`` and ``z`` are any broadcastable shapes (input
    per step, in units of the threshold when ``threshold = 1``). Returns
    ``(spikes, v)``, spikes as 0/1 in ``z``'s dtype; ``v`` is not modified.
    """
    where = "neurons.if_step"
    check.tensor("v", v, where=where)
    check.tensor("z", z, where=where)
    threshold = check.number("threshold", threshold, low=0, low_open=True, where=where)
    try:
        torch.broadcast_shapes(v.shape, z.shape)
    except RuntimeError:
        raise ValueError(f"{where}: v of shape {tuple(v.shape)} and z of shape "
                         f"{tuple(z.shape)} do not broadcast") from None
    check.array("v", v, nonempty=False, where=where)
    check.array("z", z, nonempty=False, where=where)
    v = v + z
    spikes = (v >= threshold).to(z.dtype)
    return spikes, v - threshold * spikes


def signed_if_step(v: torch.Tensor, n: torch.Tensor, z: torch.Tensor, *,
                   threshold: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of signed integrate-and-fire neurons with memory; pure.

    .. math:: v \\leftarrow v + z, \\qquad
              s = [v \\ge \\vartheta] - [v < 0]\\,[n > 0], \\qquad
              v \\leftarrow v - \\vartheta s, \\qquad n \\leftarrow n + s

    An IF neuron with reset by subtraction that may also fire a negative
    spike, which takes back one of its earlier spikes: when its potential
    falls below zero while its net count :math:`n` (spikes less negative
    spikes so far) is positive (after Wang et al. 2022's signed neuron with
    memory). Its net count then follows the cumulative drive
    :math:`V_t = v_0 + \\sum_{\\tau \\le t} z_\\tau`: starting from
    :math:`n = 0` and :math:`0 \\le v_0 < \\vartheta`, whenever every
    :math:`|z_\\tau| \\le \\vartheta`,

    .. math:: n_t = \\max\\left(0, \\left\\lfloor V_t / \\vartheta \\right\\rfloor\\right)

    (in exact arithmetic; a floating-point sum may land on the other side of
    an integer), whatever the order in which the input arrived, where a plain IF
    neuron keeps every spike that an early surplus caused. That is the
    "unevenness" error of converted networks at few steps (Bu et al. 2022).
    ``v``, ``n`` and ``z`` broadcast together; returns ``(spikes, v, n)``,
    spikes as -1/0/1 in ``z``'s dtype; the inputs are not modified.
    """
    where = "neurons.signed_if_step"
    for name, t in (("v", v), ("n", n), ("z", z)):
        check.tensor(name, t, where=where)
    threshold = check.number("threshold", threshold, low=0, low_open=True, where=where)
    try:
        torch.broadcast_shapes(v.shape, n.shape, z.shape)
    except RuntimeError:
        raise ValueError(f"{where}: v of shape {tuple(v.shape)}, n of shape {tuple(n.shape)} "
                         f"and z of shape {tuple(z.shape)} do not broadcast") from None
    for name, t in (("v", v), ("n", n), ("z", z)):
        check.array(name, t, nonempty=False, where=where)
    v = v + z
    spikes = ((v >= threshold).to(z.dtype) - ((v < 0) & (n > 0)).to(z.dtype))
    return spikes, v - threshold * spikes.to(v.dtype), n + spikes.to(n.dtype)


def if_rate(z, steps: int, threshold: float = 1.0, v0: float = 0.0) -> np.ndarray:
    """Rate (spikes per step) of :func:`if_step` under a constant input ``z`` for ``steps`` steps.

    .. math:: r = \\frac{1}{T}\\, \\mathrm{clip}\\left(\\left\\lfloor \\frac{T z + v_0}{\\vartheta}
              \\right\\rfloor, 0, T\\right)

    (at most one spike per step): a staircase that approaches the ReLU
    clipped at one spike per step, :math:`\\mathrm{clip}(z/\\vartheta, 0, 1)`, as
    :math:`T` grows.
    """
    where = "neurons.if_rate"
    z = np.asarray(check.array("z", z, where=where), dtype=float)
    steps = check.integer("steps", steps, low=1, where=where)
    threshold = check.number("threshold", threshold, low=0, low_open=True, where=where)
    v0 = check.number("v0", v0, where=where)
    return np.clip(np.floor((steps * z + v0) / threshold + 1e-9), 0, steps) / steps


BURSTS = (1, 2, 4, 8)
"""The largest bursts :class:`IFNeurons` fire (``burst``): powers of two, whose spikes of
``1 / burst`` are exact in bfloat16."""


def check_burst(burst, where: str) -> int:
    """``burst`` if it is one of :data:`BURSTS`, else a ValueError naming ``where``."""
    if isinstance(burst, bool) or not isinstance(burst, numbers.Integral) or burst not in BURSTS:
        raise ValueError(f"{where}: burst must be one of {BURSTS} (the most spikes a neuron "
                         f"fires in one step), got {burst!r}")
    return int(burst)


class IFNeurons(torch.nn.Module):
    """IF neurons with threshold 1 and reset by subtraction (:func:`if_step`), with state.

    Replaces an activation of a converted network: each call is one step,
    :math:`v \\leftarrow v + z`, :math:`s = [v \\ge 1]`, :math:`v \\leftarrow v - s`,
    and returns the spikes. ``v0`` is the initial potential (0, or 0.5 as Bu
    et al. 2022 recommend for a quantisation-trained network).

    With ``signed=True`` they are signed neurons with memory
    (:func:`signed_if_step`): a neuron whose potential falls below zero
    takes back one of its earlier spikes with a negative spike, so that its
    net count follows its cumulative input.

    With ``burst`` :math:`\\Gamma > 1` they fire bursts (after Li and Zeng 2022, whose
    neurons fire up to :math:`\\Gamma` spikes of a whole threshold; here the threshold is
    divided by :math:`\\Gamma`, so that one step passes on at most one, as a plain neuron's):
    the threshold is :math:`1/\\Gamma`, and in one step a neuron fires
    :math:`k = \\mathrm{clip}(\\lfloor \\Gamma v \\rfloor, 0, \\Gamma)` spikes, each worth
    :math:`1/\\Gamma`, :math:`v \\leftarrow v - k/\\Gamma`; a signed one whose potential
    is below zero takes back :math:`\\min(\\lceil -\\Gamma v \\rceil, n, \\Gamma)` of its
    :math:`n` spikes so far. It returns :math:`k/\\Gamma`: at most 1 per step, as a plain
    neuron, but in steps of :math:`1/\\Gamma`, so that over :math:`T` steps its rate
    resolves :math:`1/(\\Gamma T)`: the staircase of :math:`L = \\Gamma T` levels. ``v0`` is
    a fraction of the threshold (the potential starts at :math:`v_0/\\Gamma`), and each
    spike of a burst is an event. ``burst`` is 1, 2, 4 or 8 (spikes of
    :math:`1/\\Gamma` are exact in bfloat16).

    ``spike_map`` counts the spike events (of either sign: a negative spike
    is an event too) over the batch and the channels since the
    last :meth:`reset_state` (one value per position, or per unit of a flat
    layer): what the synaptic operations of the next layer are counted from.
    The potential is kept in float32 whatever the input's precision, and
    updated in place (the converted network calls this millions of times).
    """

    def __init__(self, v0: float = 0.0, signed: bool = False, burst: int = 1) -> None:
        super().__init__()
        check.number("v0", v0, where="neurons.IFNeurons")
        check.flag("signed", signed, where="neurons.IFNeurons")
        self.v0 = v0
        self.signed = signed
        self.burst = check_burst(burst, "neurons.IFNeurons")
        self.v: torch.Tensor | None = None
        self.n: torch.Tensor | None = None
        self.spike_map: torch.Tensor | None = None

    def reset_state(self) -> None:
        self.v, self.n, self.spike_map = None, None, None

    @property
    def spikes(self) -> float:
        """All spike events since the last reset (negative ones counted too)."""
        return 0.0 if self.spike_map is None else float(self.spike_map.sum())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """One step for input ``z`` (the shape of the first input since :meth:`reset_state`;
        its values are not checked: this is the converted network's inner loop)."""
        if not torch.is_tensor(z):
            check.tensor("z", z, where="neurons.IFNeurons")
        if self.v is not None and self.v.shape != z.shape:
            raise ValueError(f"neurons.IFNeurons: z has shape {tuple(z.shape)}, the potential "
                             f"{tuple(self.v.shape)}; call reset_state() before a new batch")
        if self.v is None:
            self.v = torch.full_like(z, self.v0 / self.burst, dtype=torch.float32,
                                     memory_format=torch.preserve_format)
            if self.signed:
                self.n = torch.zeros_like(self.v)
        self.v.add_(z)  # if_step (signed_if_step), in place
        if self.burst > 1:
            u = self.v * self.burst  # the potential in thresholds of 1 / burst
            k = torch.floor(u).clamp_(0, self.burst)
            if self.signed:
                k = torch.where(u < 0, -torch.minimum(torch.ceil(-u), self.n).clamp_(0, self.burst),
                                k)
                self.n.add_(k)
            events = k.abs()
            k.div_(self.burst)  # each spike's worth: exact, the burst is a power of two
            self.v.sub_(k)
            s = k.to(z.dtype)
        elif self.signed:
            s = (self.v >= 1.0).float().sub_(((self.v < 0) & (self.n > 0)).float())
            self.n.add_(s)
            self.v.sub_(s)
            events = s.abs()
            s = s.to(z.dtype)  # in the input's precision (exact: -1, 0 or 1)
        else:
            s = events = (self.v >= 1.0).to(z.dtype)  # in the input's precision (exact: 0 or 1)
            self.v.sub_(s)
        dims = (0, 1) if s.ndim == 4 else 0
        m = events.sum(dim=dims, dtype=torch.float32)
        self.spike_map = m if self.spike_map is None else self.spike_map.add_(m)
        return s


# --- Brian2 ---------------------------------------------------------------

CODEGEN_TARGETS = ("numpy", "cython", "auto")
"""Brian2's code generation targets that :func:`run_brian2` accepts."""


def _check_name(name, where: str) -> str:
    """A Brian2 object name: letters, digits and underscores, not starting with a digit."""
    check.text("name", name, where=where)
    if not name.isascii() or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise ValueError(f"{where}: name must be a Brian2 name (letters, digits, _; not "
                         f"starting with a digit), got {name!r}")
    return name


def brian2_target(codegen_target: str):
    """The value of Brian2's ``codegen.target`` preference for ``codegen_target``.

    ``"cython"`` gives ``"cython_parallel"``, the target of
    :class:`snnlib._brian2_build.ParallelCythonCodeObject`: Brian2's Cython
    target, whose modules, when not yet in Brian2's cache, are compiled side by
    side on every core (the same modules, the same numbers). ``"numpy"`` and
    ``"auto"`` are returned as they are.
    """
    check.choice("codegen_target", codegen_target, CODEGEN_TARGETS, where="neurons.brian2_target")
    if codegen_target != "cython":
        return codegen_target
    from ._brian2_build import ParallelCythonCodeObject  # registers the target with Brian2
    return ParallelCythonCodeObject.class_name


@contextmanager
def _codegen_target(target):
    """Brian2's ``codegen.target`` preference (global) set to ``target`` inside the block."""
    import brian2 as b2

    previous = b2.prefs.codegen.target
    b2.prefs.codegen.target = target
    try:
        yield
    finally:
        b2.prefs.codegen.target = previous


def _named_clock(dt_ms: float, name: str):
    """A Brian2 clock of ``dt_ms`` with a fixed ``name``, for every object of one network.

    Brian2's generated code names the clock of each object. Objects given only
    a ``dt`` get a new clock each, named ``clock``, ``clock_1``, ... by how many
    exist at the time, so the same network built twice in one process got other
    code, compiled again (20 of the 75 modules of chapter 3's first run).
    """
    import brian2 as b2

    return b2.Clock(dt=dt_ms * b2.ms, name=name)


def connect_brian2(synapses, **kwargs) -> None:
    """``synapses.connect(**kwargs)`` with Brian2's numpy target.

    Creating synapses from index arrays is one vectorised copy in numpy; with
    the Cython target Brian2 first compiles a module for it (8-11 s), once for
    every network layout. The synapses are the same either way.
    """
    if not callable(getattr(synapses, "connect", None)):
        raise TypeError(f"neurons.connect_brian2: synapses must be brian2.Synapses, got "
                        f"{type(synapses).__name__}")
    with _codegen_target("numpy"):
        synapses.connect(**kwargs)


def run_brian2(net, duration_ms: float, codegen_target: str = "numpy") -> None:
    """Run a Brian2 ``Network`` for ``duration_ms`` with a code generation target.

    The target is set for this run only (Brian2's preference is global and
    restored afterwards; ``"cython"`` through :func:`brian2_target`); the run
    namespace is empty, so every name must come from the objects' own
    namespaces (as the ``build_*`` functions set them), never from the
    caller's variables. pyparsing's deprecation warnings,
    raised inside Brian2 2.9's parser, are silenced.

    Brian2 calls ``gc.collect()`` at the start of every run. In a process that
    holds many Python objects (a notebook's kernel after a few chapters' cells)
    one such pass takes a tenth of a second or more, more than a short run
    simulates, and the networks learn in hundreds of short runs. The objects that
    exist before the run are frozen (``gc.freeze``) for its duration, so the pass
    looks only at new ones; they are unfrozen afterwards and collected as usual.
    """
    where = "neurons.run_brian2"
    if not callable(getattr(net, "run", None)):
        raise TypeError(f"{where}: net must be a brian2.Network, got {type(net).__name__}")
    duration_ms = check.number("duration_ms", duration_ms, low=0, where=where)
    check.choice("codegen_target", codegen_target, CODEGEN_TARGETS, where=where)
    import gc
    import warnings

    import brian2 as b2

    gc.freeze()
    try:
        with _codegen_target(brian2_target(codegen_target)), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="pyparsing")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="brian2")
            net.run(duration_ms * b2.ms, namespace={})
    finally:
        gc.unfreeze()


def _seed_brian2(seed: int) -> None:
    """Seed Brian2's random numbers with ``seed`` modulo :math:`2^{32}`.

    Brian2's runtime device seeds NumPy's generator, which refuses seeds of
    :math:`2^{32}` and above; the tiers derive a seed for each chunk of a
    simulation (``seed * 1_000_003 + chunk``), which passes that bound from
    ``seed = 4295``. Smaller seeds are passed as they are.
    """
    import brian2 as b2

    b2.seed(int(seed) % 2**32)


def _b2_namespace(p: LIFParams) -> dict:
    import brian2 as b2

    ms, mV = b2.ms, b2.mV
    return {
        "tau_mem": p.tau_mem_ms * ms, "v_rest": p.v_rest_mv * mV, "v_reset": p.v_reset_mv * mV,
        "v_thresh": p.v_thresh_mv * mV, "r_mem": p.r_mem_mohm * b2.Mohm,
        "e_exc": p.e_exc_mv * mV, "e_inh": p.e_inh_mv * mV,
        "tau_exc": p.tau_exc_ms * ms, "tau_inh": p.tau_inh_ms * ms,
        "theta_plus": p.theta_plus_mv * mV, "tau_theta": p.tau_theta_ms * ms,
    }


LIF_EQUATIONS = """
dv/dt = ((v_rest - v) + r_mem * I + g_exc * (e_exc - v) + g_inh * (e_inh - v)) / tau_mem : volt (unless refractory)
dg_exc/dt = -g_exc / tau_exc : 1
dg_inh/dt = -g_inh / tau_inh : 1
dtheta/dt = -theta / tau_theta : volt
"""
"""The Brian2 equations of :func:`build_lif_group`; ``I`` is appended as a
parameter or as a function of time."""


def build_lif_group(n: int, p: LIFParams, *, current: str = "I : amp", name: str = "lif",
                    method: str = "exponential_euler"):
    """A Brian2 ``NeuronGroup`` of ``n`` LIF neurons with the parameters ``p``.

    The same model as :func:`lif_step` (see :data:`LIF_EQUATIONS`), integrated
    with Brian2's ``exponential_euler`` (the scheme :func:`lif_step` uses).

    Parameters
    ----------
    n : int
        Number of neurons.
    p : LIFParams
        The same parameter object as the PyTorch code; ``dt_ms`` sets the
        group's clock.
    current : str
        The line defining ``I``: a parameter (``"I : amp"``, the default) or
        a function of time, e.g. ``"I = I_input(t, i) : amp"`` with a
        ``TimedArray`` named ``I_input`` in the namespace (pass it through
        ``group.namespace`` or the ``run`` namespace).
    name : str
        The group's name.

    Returns
    -------
    brian2.NeuronGroup
        Variables ``v``, ``g_exc``, ``g_inh``, ``theta``, ``I``; threshold
        ``v > v_thresh + theta``; reset ``v = v_reset; theta += theta_plus``.
    """
    where = "neurons.build_lif_group"
    n = check.integer("n", n, low=1, where=where)
    check.instance("p", p, LIFParams, where=where)
    check.text("current", current, where=where)
    _check_name(name, where)
    check.text("method", method, where=where)
    import brian2 as b2

    group = b2.NeuronGroup(
        n, LIF_EQUATIONS + current, threshold="v > v_thresh + theta",
        reset="v = v_reset\ntheta += theta_plus", refractory=p.t_ref_ms * b2.ms,
        method=method, namespace=_b2_namespace(p), dt=p.dt_ms * b2.ms, name=name,
    )
    group.v = p.v_rest_mv * b2.mV
    return group


def simulate_lif_brian2(current_na, p: LIFParams, *, codegen_target: str = "numpy"
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Brian2 counterpart of :func:`simulate_lif` for one batch element.

    Parameters
    ----------
    current_na : array-like
        ``(T, neurons)`` input current (nA), constant within each step
        (a ``TimedArray``).
    p : LIFParams
    codegen_target : str
        Brian2's code generation target for this run ("numpy" needs no
        compiler; "cython" compiles once and is faster for long runs).

    Returns
    -------
    spikes : numpy.ndarray
        ``(T, neurons)`` bool, a spike at the step Brian2 recorded it.
    v_mem : numpy.ndarray
        ``(T, neurons)`` float in mV, at the end of each step.
    """
    where = "neurons.simulate_lif_brian2"
    check.instance("p", p, LIFParams, where=where)
    check.choice("codegen_target", codegen_target, CODEGEN_TARGETS, where=where)
    current = check.array("current_na", current_na, where=where)
    current = np.asarray(current, dtype=float)
    if current.ndim != 2:
        raise ValueError(f"{where}: current_na must be (T, neurons), got shape {current.shape}.")
    steps, n = current.shape
    check.fits_in_memory(f"recording v of {steps} steps x {n} neurons", 16 * steps * n,
                         where=where)
    import brian2 as b2

    group = build_lif_group(n, p, current="I = I_input(t, i) : amp", name="lif_b2")
    group.namespace["I_input"] = b2.TimedArray(current * b2.nA, dt=p.dt_ms * b2.ms)
    v_monitor = b2.StateMonitor(group, "v", record=True, when="end", name="lif_b2_v")
    spike_monitor = b2.SpikeMonitor(group, name="lif_b2_spikes")
    run_brian2(b2.Network(group, v_monitor, spike_monitor), steps * p.dt_ms, codegen_target)
    spikes = np.zeros((steps, n), dtype=bool)
    step_index = np.round(np.asarray(spike_monitor.t / b2.ms) / p.dt_ms).astype(int)
    spikes[step_index, np.asarray(spike_monitor.i)] = True
    return spikes, np.asarray(v_monitor.v / b2.mV).T
