"""Spike-timing-dependent plasticity (STDP) and reward-modulated STDP, in
PyTorch and in Brian2.

Pair-based STDP with traces (Song, Miller & Abbott 2000; Morrison et al.
2008). Every presynaptic neuron keeps a trace :math:`x` and every
postsynaptic neuron a trace :math:`y`:

.. math::

    \\tau_+ \\frac{dx}{dt} = -x, \\qquad \\tau_- \\frac{dy}{dt} = -y,

    x \\leftarrow x + 1 \\text{ (all-to-all) or } x \\leftarrow 1 \\text{ (nearest)}
    \\text{ at each presynaptic spike; the same for } y.

At a postsynaptic spike the synapse is potentiated by :math:`A_+ x`; at a
presynaptic spike it is depressed by :math:`A_- y`. For one pair of spikes
with :math:`\\Delta t = t_{post} - t_{pre}` this gives the STDP window

.. math::

    \\Delta w = A_+ e^{-\\Delta t / \\tau_+} \\ (\\Delta t \\ge 0), \\qquad
    \\Delta w = -A_- e^{\\Delta t / \\tau_-} \\ (\\Delta t < 0)

(:func:`stdp_window`). Sign convention: :math:`\\Delta t = t_{post} - t_{pre}`;
``a_plus > 0`` potentiates, ``a_minus > 0`` depresses. "Nearest" here is the
symmetric nearest-spike variant: each spike pairs with the latest spike of
the other side only.

Within one time step (as in Brian2, where the ``pre`` pathway runs before
``post``): presynaptic spikes update :math:`x`, depression uses :math:`y`
*before* this step's postsynaptic spikes are added, potentiation uses
:math:`x` *after* this step's presynaptic spikes; so simultaneous spikes
(:math:`\\Delta t = 0`) potentiate by :math:`A_+`.

The rule (:func:`stdp_step`) returns the weight change; :func:`apply_weight_change`
applies it with hard bounds (clip to :math:`[w_{min}, w_{max}]`) or soft
bounds (potentiation scaled by :math:`w_{max} - w`, depression by
:math:`w - w_{min}`), and :func:`normalize_weights` rescales each neuron's
input weights to a fixed sum (Diehl & Cook 2015).

R-STDP (Izhikevich 2007; Florian 2007): the STDP change does not touch the
weight but is added to an eligibility trace :math:`e` per synapse, which
decays with :math:`\\tau_e`, and a reward :math:`r` (e.g. +1 / -1) turns it
into a weight change:

.. math::

    e \\leftarrow e\\, e^{-\\Delta t/\\tau_e} + (\\Delta w^+ - \\Delta w^-), \\qquad
    \\Delta w = \\eta\\, r\\, e.

Weights are ``(post, pre)``. Spikes are ``(batch, neurons)`` per step;
the change of a step is summed over the batch (``reduction="sum"``) or
averaged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch

from . import _validate as check
from .neurons import CODEGEN_TARGETS, _check_name, run_brian2

__all__ = [
    "RSTDPParams",
    "RSTDPState",
    "apply_reward",
    "build_rstdp_synapses",
    "eligibility",
    "STDPParams",
    "STDPState",
    "WeightChange",
    "apply_weight_change",
    "apply_weight_change_",
    "build_stdp_synapses",
    "normalize_weights",
    "pairing_experiment",
    "rstdp_step",
    "run_lif_stdp",
    "run_rstdp",
    "stdp_step",
    "stdp_window",
]


@dataclass(frozen=True)
class STDPParams:
    """Parameters of pair-based STDP (one object drives PyTorch and Brian2).

    Attributes
    ----------
    a_plus, a_minus : float
        Potentiation and depression amplitudes (>= 0).
    tau_plus_ms, tau_minus_ms : float
        Time constants of the pre (:math:`x`) and post (:math:`y`) traces (ms).
    variant : {"all_to_all", "nearest"}
        Traces add up over spikes, or reset to 1 at each spike.
    bounds : {"hard", "soft"}
        Clip to ``[w_min, w_max]``, or scale changes by the distance to the bound.
    w_min, w_max : float
        Weight bounds.
    reduction : {"sum", "mean"}
        How a batch's changes combine.
    dt_ms : float
        Time step (ms), smaller than both time constants.
    """

    a_plus: float = 0.01
    a_minus: float = 0.0105
    tau_plus_ms: float = 20.0
    tau_minus_ms: float = 20.0
    variant: Literal["all_to_all", "nearest"] = "all_to_all"
    bounds: Literal["hard", "soft"] = "hard"
    w_min: float = 0.0
    w_max: float = 1.0
    reduction: Literal["sum", "mean"] = "sum"
    dt_ms: float = 0.5

    def __post_init__(self) -> None:
        for name in ("a_plus", "a_minus", "tau_plus_ms", "tau_minus_ms", "w_min", "w_max", "dt_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"STDPParams.{name} must be a real number, got "
                                f"{type(value).__name__} {value!r}.")
            if not math.isfinite(value):
                raise ValueError(f"STDPParams.{name} must be a finite number, got {value!r}.")
        for name in ("a_plus", "a_minus"):
            if getattr(self, name) < 0:
                raise ValueError(f"STDPParams.{name} must be >= 0 (the sign is in the rule), "
                                 f"got {getattr(self, name)!r}.")
        for name in ("tau_plus_ms", "tau_minus_ms", "dt_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"STDPParams.{name} must be positive, got {getattr(self, name)!r}.")
            if name != "dt_ms" and self.dt_ms >= getattr(self, name):
                raise ValueError(f"dt_ms={self.dt_ms} must be smaller than {name}={getattr(self, name)}.")
        if self.w_max <= self.w_min:
            raise ValueError(f"w_max={self.w_max} must be above w_min={self.w_min}.")
        for name, allowed in (("variant", ("all_to_all", "nearest")), ("bounds", ("hard", "soft")),
                              ("reduction", ("sum", "mean"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"STDPParams.{name} must be one of {allowed}, got {getattr(self, name)!r}.")


class STDPState(NamedTuple):
    """Traces: ``x_pre`` ``(batch, pre)`` and ``y_post`` ``(batch, post)``."""

    x_pre: torch.Tensor
    y_post: torch.Tensor

    @classmethod
    def initial(cls, batch: int, pre: int, post: int, device="cpu") -> "STDPState":
        """Zero traces for ``batch`` samples of ``pre`` and ``post`` neurons."""
        _check_sizes(batch, pre, post, "plasticity.STDPState.initial")
        return cls(torch.zeros(batch, pre, device=device), torch.zeros(batch, post, device=device))


class WeightChange(NamedTuple):
    """One step's STDP change, kept as the factors of two outer products.

    ``potentiation()`` = :math:`A_+ s_{post}^T x` and ``depression()`` =
    :math:`A_- y^T s_{pre}`, both ``(post, pre)`` and >= 0, summed (or
    averaged) over the batch. Spikes are rare, so :func:`apply_weight_change`
    touches only the rows and columns of neurons that spiked.
    """

    post_spikes: torch.Tensor  # (batch, post) float
    x_pre: torch.Tensor        # (batch, pre), already scaled by a_plus / batch reduction
    y_post: torch.Tensor       # (batch, post), already scaled by a_minus / batch reduction
    pre_spikes: torch.Tensor   # (batch, pre) float

    def potentiation(self) -> torch.Tensor:
        return self.post_spikes.T @ self.x_pre

    def depression(self) -> torch.Tensor:
        return self.y_post.T @ self.pre_spikes

    def dense(self) -> torch.Tensor:
        """The net change ``potentiation - depression``, ``(post, pre)``."""
        return self.potentiation() - self.depression()


def _check_sizes(batch, pre, post, where: str, eligibility: bool = False) -> None:
    """Sizes of traces (and of an eligibility trace per synapse): integers >= 1 that fit."""
    batch = check.integer("batch", batch, low=1, where=where)
    pre = check.integer("pre", pre, low=1, where=where)
    post = check.integer("post", post, low=1, where=where)
    n_bytes = 4 * batch * (pre + post + (pre * post if eligibility else 0))
    check.fits_in_memory(f"the traces of batch={batch}, pre={pre}, post={post} neurons",
                         n_bytes, where=where)


def _check_spikes(pre_spikes, post_spikes, x_pre, y_post, where: str) -> None:
    """Types and shapes only (O(1): this runs every time step): spikes ``(batch, pre)`` and
    ``(batch, post)`` matching the traces."""
    for name, s, trace, trace_name in (("pre_spikes", pre_spikes, x_pre, "x_pre"),
                                       ("post_spikes", post_spikes, y_post, "y_post")):
        if not torch.is_tensor(s):
            check.tensor(name, s, where=where)
        if s.shape != trace.shape:
            raise ValueError(f"{where}: {name} has shape {tuple(s.shape)}, the state's "
                             f"{trace_name} {tuple(trace.shape)}; they must match (batch, neurons)")


def stdp_step(pre_spikes: torch.Tensor, post_spikes: torch.Tensor, state: STDPState,
              p: STDPParams) -> tuple[WeightChange, STDPState]:
    """One time step of trace-based pair STDP; pure.

    Parameters
    ----------
    pre_spikes : torch.Tensor
        ``(batch, pre)`` bool or float spikes of this step.
    post_spikes : torch.Tensor
        ``(batch, post)`` spikes of this step.
    state : STDPState
        The traces after the previous step.
    p : STDPParams

    Returns
    -------
    change : WeightChange
        Potentiation :math:`A_+ s_{post}^T x` and depression :math:`A_- y^T s_{pre}`.
    state : STDPState
        The traces after this step.

    Notes
    -----
    .. math::

        x \\leftarrow x e^{-\\Delta t/\\tau_+} + s_{pre}, \\quad
        \\Delta w^- = A_- y^T s_{pre}, \\quad
        \\Delta w^+ = A_+ s_{post}^T x, \\quad
        y \\leftarrow y e^{-\\Delta t/\\tau_-} + s_{post}

    (with ``nearest``: :math:`x \\leftarrow \\max(x e^{-\\Delta t/\\tau_+}, s_{pre})`).

    Types and shapes are checked; the spikes' values are not (a step of a
    simulation loop: spikes come from the neurons, 0 or 1).
    """
    where = "plasticity.stdp_step"
    if not isinstance(state, STDPState):
        check.instance("state", state, STDPState, where=where)
    if not isinstance(p, STDPParams):
        check.instance("p", p, STDPParams, where=where)
    _check_spikes(pre_spikes, post_spikes, state.x_pre, state.y_post, where)
    return _stdp_step(pre_spikes, post_spikes, state, p)


def _stdp_step(pre_spikes: torch.Tensor, post_spikes: torch.Tensor, state: STDPState,
               p: STDPParams) -> tuple[WeightChange, STDPState]:
    """:func:`stdp_step` without checks."""
    pre = pre_spikes.to(torch.float32)
    post = post_spikes.to(torch.float32)
    x = state.x_pre * math.exp(-p.dt_ms / p.tau_plus_ms)
    y = state.y_post * math.exp(-p.dt_ms / p.tau_minus_ms)
    if p.variant == "all_to_all":
        x = x + pre
    else:
        x = torch.where(pre > 0, torch.ones_like(x), x)
    scale = 1.0 if p.reduction == "sum" else 1.0 / pre.shape[0]
    change = WeightChange(post, (p.a_plus * scale) * x, (p.a_minus * scale) * y, pre)
    if p.variant == "all_to_all":
        y = y + post
    else:
        y = torch.where(post > 0, torch.ones_like(y), y)
    return change, STDPState(x, y)


def apply_weight_change(w: torch.Tensor, change: WeightChange, p: STDPParams) -> torch.Tensor:
    """Apply one step's change to weights ``w`` ``(post, pre)`` with the bounds of ``p``.

    Depression first, then potentiation (the order of Brian2's ``pre`` and
    ``post`` pathways), each followed by the bound:

    - hard: :math:`w \\leftarrow \\mathrm{clip}(w - \\Delta w^-)`, then
      :math:`\\mathrm{clip}(w + \\Delta w^+)` to :math:`[w_{min}, w_{max}]`;
    - soft: :math:`w \\leftarrow w - \\Delta w^- (w - w_{min})`, then
      :math:`w + \\Delta w^+ (w_{max} - w)`.

    Returns a new tensor; ``w`` is not modified (see
    :func:`apply_weight_change_` for the in-place form that simulation loops use).
    ``w`` must be finite (checked: one pass, as the copy is).
    """
    _check_change(w, change, p, "plasticity.apply_weight_change")
    check.array("w", w, where="plasticity.apply_weight_change")
    return _apply_weight_change_(w.clone(), change, p)


def _check_change(w, change, p, where: str) -> None:
    """Types and shapes (O(1)): ``w`` ``(post, pre)`` matching the change's factors."""
    if not torch.is_tensor(w):
        check.tensor("w", w, where=where)
    if not isinstance(change, WeightChange):
        check.instance("change", change, WeightChange, where=where)
    if not isinstance(p, STDPParams):
        check.instance("p", p, STDPParams, where=where)
    shape = (change.post_spikes.shape[-1], change.pre_spikes.shape[-1])
    if w.ndim != 2 or tuple(w.shape) != shape:
        raise ValueError(f"{where}: w has shape {tuple(w.shape)}; the change is for "
                         f"(post, pre) = {shape}")


def apply_weight_change_(w: torch.Tensor, change: WeightChange, p: STDPParams) -> torch.Tensor:
    """In-place :func:`apply_weight_change`: updates and returns ``w``.

    Only the columns of presynaptic and the rows of postsynaptic neurons
    that spiked are read and written, so a step costs in proportion to the
    spikes, not to the number of synapses. For loops that own ``w``. Types and
    shapes are checked; ``w``'s values are not (that would read every synapse).
    """
    _check_change(w, change, p, "plasticity.apply_weight_change_")
    return _apply_weight_change_(w, change, p)


def _apply_weight_change_(w: torch.Tensor, change: WeightChange, p: STDPParams) -> torch.Tensor:
    """:func:`apply_weight_change_` without checks."""
    # index_select / index_copy_ rather than w[:, cols]: several times faster
    # for the strided column gathers of a large (post, pre) matrix.
    cols = torch.nonzero(change.pre_spikes.any(dim=0)).flatten()
    if len(cols):
        dep = change.y_post.T @ change.pre_spikes.index_select(1, cols)
        block = w.index_select(1, cols)
        block = block - dep * (block - p.w_min) if p.bounds == "soft" else block - dep
        w.index_copy_(1, cols, block.clamp_(p.w_min, p.w_max))
    rows = torch.nonzero(change.post_spikes.any(dim=0)).flatten()
    if len(rows):
        pot = change.post_spikes.index_select(1, rows).T @ change.x_pre
        block = w.index_select(0, rows)
        block = block + pot * (p.w_max - block) if p.bounds == "soft" else block + pot
        w.index_copy_(0, rows, block.clamp_(p.w_min, p.w_max))
    return w


def normalize_weights(w: torch.Tensor, total: float) -> torch.Tensor:
    """Scale each postsynaptic neuron's input weights to sum to ``total``.

    .. math:: w_{ij} \\leftarrow w_{ij}\\, \\frac{W}{\\sum_k w_{ik}}

    (Diehl & Cook 2015 use W = 78 for 784 MNIST inputs.) Rows that sum to
    zero are left at zero. ``w`` is a finite ``(post, pre)`` tensor, ``total``
    a finite number > 0.
    """
    where = "plasticity.normalize_weights"
    check.tensor("w", w, where=where)
    check.array("w", w, ndim=2, where=where)
    total = check.number("total", total, low=0, low_open=True, where=where)
    sums = w.sum(dim=1, keepdim=True)
    return torch.where(sums > 0, w * (total / sums.clamp_min(1e-12)), w)


def stdp_window(delta_t_ms, p: STDPParams) -> np.ndarray:
    """Analytic weight change for one pre/post pair at ``delta_t = t_post - t_pre`` (ms).

    .. math:: \\Delta w = A_+ e^{-\\Delta t/\\tau_+} \\ (\\Delta t \\ge 0), \\quad
              -A_- e^{\\Delta t/\\tau_-} \\ (\\Delta t < 0)

    (Bi & Poo 1998 measured this shape; Song, Miller & Abbott 2000, eq. 1.)
    """
    check.instance("p", p, STDPParams, where="plasticity.stdp_window")
    dt = np.asarray(check.array("delta_t_ms", delta_t_ms, where="plasticity.stdp_window"),
                    dtype=float)
    return np.where(dt >= 0, p.a_plus * np.exp(-np.abs(dt) / p.tau_plus_ms),
                    -p.a_minus * np.exp(-np.abs(dt) / p.tau_minus_ms))


# --- R-STDP ---------------------------------------------------------------

@dataclass(frozen=True)
class RSTDPParams:
    """Reward-modulated STDP: an STDP rule feeding an eligibility trace.

    Attributes
    ----------
    stdp : STDPParams
        The pairing rule; :func:`run_rstdp` clips the weights to its
        ``[w_min, w_max]`` (hard bounds, whatever ``bounds`` says).
    tau_elig_ms : float
        Decay time constant of the eligibility trace :math:`\\tau_e` (ms);
        Izhikevich (2007) uses 1 s.
    eta : float
        Learning rate :math:`\\eta` multiplying reward x eligibility.
    """

    stdp: STDPParams = STDPParams()
    tau_elig_ms: float = 1000.0
    eta: float = 1.0

    def __post_init__(self) -> None:
        check.instance("stdp", self.stdp, STDPParams, where="RSTDPParams")
        check.number("tau_elig_ms", self.tau_elig_ms, where="RSTDPParams")
        check.number("eta", self.eta, where="RSTDPParams")
        if not self.tau_elig_ms > self.stdp.dt_ms:
            raise ValueError(f"RSTDPParams: tau_elig_ms must be finite and above dt_ms="
                             f"{self.stdp.dt_ms}, got {self.tau_elig_ms!r}.")
        if not self.eta >= 0:
            raise ValueError(f"RSTDPParams: eta must be a finite number >= 0, got {self.eta!r}.")


class RSTDPState(NamedTuple):
    """STDP traces and the eligibility ``(batch, post, pre)``."""

    traces: STDPState
    eligibility: torch.Tensor

    @classmethod
    def initial(cls, batch: int, pre: int, post: int, device="cpu") -> "RSTDPState":
        """Zero traces and eligibility ``(batch, post, pre)``."""
        _check_sizes(batch, pre, post, "plasticity.RSTDPState.initial", eligibility=True)
        return cls(STDPState.initial(batch, pre, post, device),
                   torch.zeros(batch, post, pre, device=device))


def rstdp_step(pre_spikes: torch.Tensor, post_spikes: torch.Tensor, reward, state: RSTDPState,
               p: RSTDPParams) -> tuple[torch.Tensor, RSTDPState]:
    """One step of R-STDP; returns the weight change ``(post, pre)`` and the new state.

    .. math::

        e \\leftarrow e\\, e^{-\\Delta t/\\tau_e} + (\\Delta w^+ - \\Delta w^-),
        \\qquad \\Delta w = \\eta \\sum_b r_b\\, e_b

    Parameters
    ----------
    reward : float or torch.Tensor
        Reward of this step per batch element ``(batch,)`` (or one number):
        usually 0, and +1 / -1 when a decision is judged; finite (checked).
    """
    where = "plasticity.rstdp_step"
    check.instance("state", state, RSTDPState, where=where)
    check.instance("p", p, RSTDPParams, where=where)
    _check_spikes(pre_spikes, post_spikes, state.traces.x_pre, state.traces.y_post, where)
    batch = pre_spikes.shape[0]
    if torch.is_tensor(reward) or isinstance(reward, np.ndarray):
        check.array("reward", reward, where=where)
        if tuple(reward.shape) not in ((), (1,), (batch,)):
            raise ValueError(f"{where}: reward must be one number or one per batch element "
                             f"({batch},), got shape {tuple(reward.shape)}")
    else:
        check.number("reward", reward, where=where)
    return _rstdp_step(pre_spikes, post_spikes, reward, state, p)


def _rstdp_step(pre_spikes: torch.Tensor, post_spikes: torch.Tensor, reward, state: RSTDPState,
                p: RSTDPParams) -> tuple[torch.Tensor, RSTDPState]:
    """:func:`rstdp_step` without checks."""
    batch = pre_spikes.shape[0]
    elig = state.eligibility * math.exp(-p.stdp.dt_ms / p.tau_elig_ms)
    # Per-sample outer products; with reduction="mean" the factors already
    # carry 1/batch, so the sum over the batch below is a mean.
    change, traces = _stdp_step(pre_spikes, post_spikes, state.traces, p.stdp)
    elig = elig + (change.post_spikes[:, :, None] * change.x_pre[:, None, :]
                   - change.y_post[:, :, None] * change.pre_spikes[:, None, :])
    reward = torch.as_tensor(reward, dtype=torch.float32, device=elig.device).expand(batch)
    dw = p.eta * torch.einsum("b,bij->ij", reward, elig)
    return dw, RSTDPState(traces, elig)


# --- Brian2 ---------------------------------------------------------------

def _stdp_code(p: STDPParams, on_pre_extra: str) -> tuple[str, str, str]:
    """Model, on_pre and on_post code of the STDP synapse (see :func:`build_stdp_synapses`)."""
    model = ("w : 1\n"
             "dpre_trace/dt = -pre_trace / tau_plus : 1 (event-driven)\n"
             "dpost_trace/dt = -post_trace / tau_minus : 1 (event-driven)")
    add_pre = "pre_trace += 1" if p.variant == "all_to_all" else "pre_trace = 1"
    add_post = "post_trace += 1" if p.variant == "all_to_all" else "post_trace = 1"
    if p.bounds == "hard":
        depress = "w = clip(w - a_minus * post_trace, w_min, w_max)"
        potentiate = "w = clip(w + a_plus * pre_trace, w_min, w_max)"
    else:
        depress = "w = clip(w - a_minus * post_trace * (w - w_min), w_min, w_max)"
        potentiate = "w = clip(w + a_plus * pre_trace * (w_max - w), w_min, w_max)"
    on_pre = "\n".join(line for line in (on_pre_extra, add_pre, depress) if line)
    on_post = "\n".join((add_post, potentiate))
    return model, on_pre, on_post


def _check_synapse_args(source, target, p, kind, on_pre, name, where: str) -> None:
    for label, group in (("source", source), ("target", target)):
        if not hasattr(group, "N") or not hasattr(group, "namespace"):
            raise TypeError(f"{where}: {label} must be a brian2 group (NeuronGroup, "
                            f"SpikeGeneratorGroup, ...), got {type(group).__name__}")
    check.instance("p", p, kind, where=where)
    check.text("on_pre", on_pre, nonempty=False, where=where)
    _check_name(name, where)


def build_stdp_synapses(source, target, p: STDPParams, *, on_pre: str = "", name: str = "stdp"):
    """A Brian2 ``Synapses`` object with the STDP rule of :func:`stdp_step`.

    Parameters
    ----------
    source, target : brian2 groups
        Presynaptic and postsynaptic groups.
    p : STDPParams
        The same parameter object as the PyTorch code (``reduction`` does
        not apply: Brian2 has no batch).
    on_pre : str
        The synapse's effect on the target, e.g. ``"g_exc_post += w"``;
        runs before the trace update and the depression.
    name : str

    Returns
    -------
    brian2.Synapses
        Not yet connected: call ``.connect(...)`` and set ``.w``. The traces
        ``pre_trace`` and ``post_trace`` (Brian2 reserves the ``_pre`` and
        ``_post`` suffixes, so they cannot be called ``x_pre`` and ``y_post``)
        are event-driven (updated exactly at spikes), which equals
        :func:`stdp_step`'s per-step exponential decay.
    """
    _check_synapse_args(source, target, p, STDPParams, on_pre, name,
                        "plasticity.build_stdp_synapses")
    import brian2 as b2

    model, pre_code, post_code = _stdp_code(p, on_pre)
    namespace = {"a_plus": p.a_plus, "a_minus": p.a_minus, "tau_plus": p.tau_plus_ms * b2.ms,
                 "tau_minus": p.tau_minus_ms * b2.ms, "w_min": p.w_min, "w_max": p.w_max}
    return b2.Synapses(source, target, model=model, on_pre=pre_code, on_post=post_code,
                       namespace=namespace, dt=p.dt_ms * b2.ms, name=name)


def build_rstdp_synapses(source, target, p: RSTDPParams, *, on_pre: str = "", name: str = "rstdp",
                         clock=None):
    """A Brian2 ``Synapses`` object with R-STDP: STDP pairings feed an eligibility trace.

    The pairing rule of :func:`rstdp_step` (hard bounds are applied when the
    reward arrives, by :func:`apply_reward`)::

        at a presynaptic spike:  pre_trace += 1 (or = 1);  elig -= a_minus * post_trace
        at a postsynaptic spike: post_trace += 1 (or = 1); elig += a_plus * pre_trace
        between spikes:          d elig/dt = -elig / tau_elig

    The weight does not change until :func:`apply_reward` turns the trace
    into :math:`\\Delta w = \\eta\\, r\\, e`. All three traces are
    event-driven (updated exactly at spikes); :func:`eligibility` decays
    ``e`` to the present.

    Parameters
    ----------
    source, target : brian2 groups
    p : RSTDPParams
    on_pre : str
        The synapse's effect on the target, e.g. ``"g_exc_post += w"``.
    name : str
    clock : brian2.Clock, optional
        The clock to run on (its ``dt`` must be ``p.stdp.dt_ms``), shared with the
        network's other objects so that Brian2 generates the same code for every
        network of a layout (its code names the clock); default: a new clock.

    Returns
    -------
    brian2.Synapses
        Not yet connected; variables ``w``, ``elig`` (the eligibility :math:`e`; Brian2
        reserves ``e``), ``pre_trace``, ``post_trace``.
    """
    _check_synapse_args(source, target, p, RSTDPParams, on_pre, name,
                        "plasticity.build_rstdp_synapses")
    import brian2 as b2

    s = p.stdp
    add_pre = "pre_trace += 1" if s.variant == "all_to_all" else "pre_trace = 1"
    add_post = "post_trace += 1" if s.variant == "all_to_all" else "post_trace = 1"
    model = ("w : 1\n"
             "delig/dt = -elig / tau_elig : 1 (event-driven)\n"
             "dpre_trace/dt = -pre_trace / tau_plus : 1 (event-driven)\n"
             "dpost_trace/dt = -post_trace / tau_minus : 1 (event-driven)")
    pre_code = "\n".join(line for line in (on_pre, add_pre, "elig -= a_minus * post_trace") if line)
    post_code = "\n".join((add_post, "elig += a_plus * pre_trace"))
    namespace = {"a_plus": s.a_plus, "a_minus": s.a_minus, "tau_plus": s.tau_plus_ms * b2.ms,
                 "tau_minus": s.tau_minus_ms * b2.ms, "tau_elig": p.tau_elig_ms * b2.ms}
    if clock is None:
        timing = {"dt": s.dt_ms * b2.ms}
    elif not isinstance(clock, b2.Clock) or not math.isclose(float(clock.dt / b2.ms), s.dt_ms):
        raise ValueError(f"plasticity.build_rstdp_synapses: clock must be a brian2.Clock with "
                         f"dt = p.stdp.dt_ms ({s.dt_ms} ms), got {clock!r}.")
    else:
        timing = {"clock": clock}
    return b2.Synapses(source, target, model=model, on_pre=pre_code, on_post=post_code,
                       namespace=namespace, name=name, **timing)


def eligibility(syn, p: RSTDPParams) -> np.ndarray:
    """The eligibility traces of :func:`build_rstdp_synapses` decayed to the present.

    Brian2 updates event-driven variables only at spikes; between them
    :math:`e(t) = e(t_{last})\\, e^{-(t - t_{last})/\\tau_e}`.
    """
    where = "plasticity.eligibility"
    if not hasattr(syn, "elig") or not hasattr(syn, "lastupdate"):
        raise TypeError(f"{where}: syn must be R-STDP synapses from build_rstdp_synapses (with "
                        f"'elig' and 'lastupdate'), got {type(syn).__name__}")
    check.instance("p", p, RSTDPParams, where=where)
    import brian2 as b2

    age_ms = float(syn.t / b2.ms) - np.asarray(syn.lastupdate / b2.ms)
    return np.asarray(syn.elig) * np.exp(-age_ms / p.tau_elig_ms)


def apply_reward(syn, reward: float, p: RSTDPParams, *, where=None) -> np.ndarray:
    """Deliver a reward to R-STDP synapses: :math:`w \\leftarrow \\mathrm{clip}(w + \\eta\\, r\\, e)`.

    ``reward`` > 0 strengthens the pairings that the trace holds (pre before
    post), < 0 weakens them (anti-STDP, Mozafari et al. 2018); 0 changes
    nothing. Clipped to ``[w_min, w_max]`` of ``p.stdp``. ``where`` (a
    boolean array over the synapses) limits the change to some synapses.
    Returns the weight change actually applied.
    """
    here = "plasticity.apply_reward"
    reward = check.number("reward", reward, where=here)
    check.instance("p", p, RSTDPParams, where=here)
    if not hasattr(syn, "w") or not hasattr(syn, "elig"):
        raise TypeError(f"{here}: syn must be R-STDP synapses from build_rstdp_synapses, got "
                        f"{type(syn).__name__}")
    w = np.asarray(syn.w, dtype=np.float64)
    if where is not None:
        mask = np.asarray(where)
        if mask.dtype != bool or mask.shape != w.shape:
            raise ValueError(f"{here}: where must be a boolean array over the {len(w)} synapses, "
                             f"got dtype {mask.dtype} and shape {mask.shape}")
    dw = p.eta * float(reward) * eligibility(syn, p)
    if where is not None:
        dw = np.where(np.asarray(where, dtype=bool), dw, 0.0)
    new = np.clip(w + dw, p.stdp.w_min, p.stdp.w_max)
    syn.w = new
    return new - w


MAX_PAIRING_STEPS = 200_000
"""The longest pairing experiment (time steps): 100 s of model time at dt = 0.5 ms, offsets
of +- 50 s, far beyond any STDP window."""


def pairing_experiment(offsets_ms, p: STDPParams, *, simulator: Literal["torch", "brian2"] = "torch",
                       w_init: float | None = None, codegen_target: str = "numpy") -> np.ndarray:
    """The classic pairing experiment: one pre and one post spike per synapse.

    Synapse k sees a presynaptic spike at :math:`t_0` and a postsynaptic spike at
    :math:`t_0 + \\Delta t_k` (``offsets_ms[k]``, rounded to the time step), in
    one simulation with one synapse per offset. Returns the weight changes,
    to compare with :func:`stdp_window`.

    Parameters
    ----------
    offsets_ms : array-like
        :math:`\\Delta t = t_{post} - t_{pre}` per synapse (ms).
    p : STDPParams
    simulator : {"torch", "brian2"}
        :func:`stdp_step` / :func:`apply_weight_change`, or
        :func:`build_stdp_synapses` between two ``SpikeGeneratorGroup``.
    w_init : float, optional
        Starting weight in ``[w_min, w_max]`` (default: the middle of the
        bounds, so nothing clips).

    Raises
    ------
    ValueError
        For offsets that are not finite, or so large that the simulation
        would need more than :data:`MAX_PAIRING_STEPS` steps (the window is
        zero there anyway: :math:`e^{-|\\Delta t|/\\tau}`), or too many
        synapses for memory (``n x n`` weights).
    """
    where = "plasticity.pairing_experiment"
    check.instance("p", p, STDPParams, where=where)
    check.choice("simulator", simulator, ("torch", "brian2"), where=where)
    check.choice("codegen_target", codegen_target, CODEGEN_TARGETS, where=where)
    offsets = np.asarray(check.array("offsets_ms", offsets_ms, ndim=1, where=where), dtype=float)
    n = len(offsets)
    if w_init is not None:
        w_init = check.number("w_init", w_init, low=p.w_min, high=p.w_max, where=where)
    w0 = (p.w_min + p.w_max) / 2 if w_init is None else w_init
    t0 = float(np.abs(offsets).max()) + 10.0  # every spike at t >= 10 ms
    check.steps(f"offsets_ms up to {t0 - 10.0:g} ms at dt_ms={p.dt_ms:g}",
                (2 * t0) / p.dt_ms + 2, max_steps=MAX_PAIRING_STEPS, where=where)
    if simulator == "torch":
        check.fits_in_memory(f"{n} offsets_ms ({n} synapses, {n} x {n} weights)", 12 * n * n,
                             where=where)
    pre_step = int(round(t0 / p.dt_ms))
    post_steps = np.round((t0 + offsets) / p.dt_ms).astype(int)
    steps = max(int(post_steps.max()), pre_step) + 2
    if simulator == "torch":
        pre = torch.zeros(steps, 1, n, dtype=torch.bool)
        post = torch.zeros(steps, 1, n, dtype=torch.bool)
        idx = torch.arange(n)
        pre[pre_step, 0, idx] = True
        post[torch.from_numpy(post_steps), 0, idx] = True
        # synapse k links pre k to post k: the diagonal of a (post, pre) matrix
        w = torch.full((n, n), float(w0))
        state = STDPState.initial(1, n, n)
        for k in range(steps):
            change, state = _stdp_step(pre[k], post[k], state, p)
            w = _apply_weight_change_(w.clone(), change, p)
        return torch.diagonal(w).numpy().astype(float) - w0
    if simulator == "brian2":
        import brian2 as b2

        ms = b2.ms
        pre = b2.SpikeGeneratorGroup(n, np.arange(n), np.full(n, pre_step) * p.dt_ms * ms,
                                     dt=p.dt_ms * ms, name="pairing_pre")
        post = b2.SpikeGeneratorGroup(n, np.arange(n), post_steps * p.dt_ms * ms,
                                      dt=p.dt_ms * ms, name="pairing_post")
        syn = build_stdp_synapses(pre, post, p, name="pairing_stdp")
        syn.connect(j="i")
        syn.w = w0
        run_brian2(b2.Network(pre, post, syn), steps * p.dt_ms, codegen_target)
        return np.asarray(syn.w, dtype=float) - w0
    raise ValueError(f"simulator must be 'torch' or 'brian2', got {simulator!r}.")


def _propagate(spikes: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Synaptic input :math:`s\\, w^T`, ``(batch, post)``, from spikes ``(batch, pre)``.

    For a single sample only the columns of neurons that spiked are summed
    (event-driven, as Brian2 does); a batch uses one matrix product.
    """
    if spikes.shape[0] == 1:
        active = torch.nonzero(spikes[0]).flatten()
        return w.index_select(1, active).sum(dim=1, keepdim=True).T
    return spikes.to(w.dtype) @ w.T


def run_lif_stdp(input_spikes: torch.Tensor, w_init: torch.Tensor, lif, p: STDPParams, *,
                 record_every: int = 0, progress: bool = False) -> dict:
    """A layer of conductance-based LIF neurons learning its input weights by STDP.

    Each step: :math:`g_e \\mathrel{+}= w\\, s_{pre}` (:func:`snnlib.neurons.lif_step`),
    then :func:`stdp_step` and :func:`apply_weight_change` with the layer's spikes.

    Parameters
    ----------
    input_spikes : torch.Tensor
        ``(T, batch, n_in)`` presynaptic spikes.
    w_init : torch.Tensor
        ``(n_out, n_in)`` initial weights (shared by the batch; the batch's
        changes are combined by ``p.reduction``).
    lif : snnlib.neurons.LIFParams
        Neuron parameters (``dt_ms`` must equal ``p.dt_ms``).
    p : STDPParams
    record_every : int
        Keep a copy of the weights every this many steps (0: only the end).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict
        ``w`` final weights, ``w_history`` ``(n_records, n_out, n_in)``
        (the start, every ``record_every`` steps, and the end),
        ``record_ms`` their times, ``counts`` ``(batch, n_out)`` output spikes.
    """
    from .progress import tqdm

    from .neurons import LIFParams, LIFState, _lif_step

    where = "plasticity.run_lif_stdp"
    check.instance("lif", lif, LIFParams, where=where)
    check.instance("p", p, STDPParams, where=where)
    check.tensor("input_spikes", input_spikes, where=where)
    check.tensor("w_init", w_init, where=where)
    record_every = check.integer("record_every", record_every, low=0, where=where)
    progress = check.flag("progress", progress, where=where)
    if abs(lif.dt_ms - p.dt_ms) > 1e-12:
        raise ValueError(f"{where}: the neurons' dt_ms={lif.dt_ms} differs from the rule's "
                         f"dt_ms={p.dt_ms}; lif.dt_ms and p.dt_ms must be equal.")
    check.array("input_spikes", input_spikes, ndim=3, low=0, high=1, where=where)
    check.array("w_init", w_init, ndim=2, where=where)
    steps, batch, n_in = input_spikes.shape
    if w_init.shape[1] != n_in:
        raise ValueError(f"{where}: w_init has {w_init.shape[1]} inputs, the spikes have {n_in}; "
                         f"w_init must be (n_out, {n_in}).")
    n_out = w_init.shape[0]
    records = (steps // record_every if record_every else 0) + 2
    check.fits_in_memory(f"{records} records of {n_out} x {n_in} weights",
                         4 * records * n_out * n_in, where=where)
    w = w_init.to(torch.float32).clone()
    neurons = LIFState.initial(lif, batch, n_out, input_spikes.device)
    traces = STDPState.initial(batch, n_in, n_out, input_spikes.device)
    counts = torch.zeros(batch, n_out, dtype=torch.int64, device=input_spikes.device)
    history, record_ms = [w.clone()], [0.0]
    for k in tqdm(range(steps), disable=not progress, desc="LIF + STDP", unit="step",
                  mininterval=1.0):
        pre = input_spikes[k]
        post, neurons = _lif_step(neurons, lif, exc_input=_propagate(pre, w))
        change, traces = _stdp_step(pre, post, traces, p)
        _apply_weight_change_(w, change, p)  # w is this loop's own copy
        counts += post
        if record_every and (k + 1) % record_every == 0:
            history.append(w.clone())
            record_ms.append((k + 1) * p.dt_ms)  # the weights after step k
    if not record_every or steps % record_every:
        history.append(w.clone())
        record_ms.append(steps * p.dt_ms)
    return {"w": w, "w_history": torch.stack(history), "record_ms": np.asarray(record_ms),
            "counts": counts}


def run_rstdp(pre_spikes: torch.Tensor, post_spikes: torch.Tensor, reward: torch.Tensor,
              w_init: torch.Tensor, p: RSTDPParams) -> dict:
    """Replay given spike trains and rewards through R-STDP, recording everything.

    Parameters
    ----------
    pre_spikes, post_spikes : torch.Tensor
        ``(T, batch, n_pre)`` and ``(T, batch, n_post)``.
    reward : torch.Tensor
        ``(T, batch)`` reward per step (mostly 0).
    w_init : torch.Tensor
        ``(n_post, n_pre)``.
    p : RSTDPParams

    Returns
    -------
    dict
        ``w`` ``(T, n_post, n_pre)`` weights after each step (clipped to the
        bounds of ``p.stdp``) and ``eligibility`` ``(T, batch, n_post, n_pre)``.
    """
    where = "plasticity.run_rstdp"
    check.instance("p", p, RSTDPParams, where=where)
    for name, x in (("pre_spikes", pre_spikes), ("post_spikes", post_spikes),
                    ("reward", reward), ("w_init", w_init)):
        check.tensor(name, x, where=where)
    check.array("pre_spikes", pre_spikes, ndim=3, low=0, high=1, where=where)
    check.array("post_spikes", post_spikes, ndim=3, low=0, high=1, where=where)
    check.array("reward", reward, ndim=2, where=where)
    check.array("w_init", w_init, ndim=2, where=where)
    steps, batch, n_pre = pre_spikes.shape
    n_post = post_spikes.shape[2]
    if post_spikes.shape[:2] != (steps, batch) or reward.shape != (steps, batch):
        raise ValueError(f"{where}: pre_spikes {tuple(pre_spikes.shape)}, post_spikes "
                         f"{tuple(post_spikes.shape)} and reward {tuple(reward.shape)} must share "
                         f"(T, batch) = {(steps, batch)}")
    if tuple(w_init.shape) != (n_post, n_pre):
        raise ValueError(f"{where}: w_init has shape {tuple(w_init.shape)}; (n_post, n_pre) = "
                         f"{(n_post, n_pre)} expected")
    check.fits_in_memory(f"recording {steps} steps of {batch} x {n_post} x {n_pre} eligibility "
                         f"traces", 4 * steps * (batch + 1) * n_post * n_pre, where=where)
    state = RSTDPState.initial(batch, n_pre, n_post, pre_spikes.device)
    w = w_init.to(torch.float32).clone()
    ws, elig = [], []
    for k in range(steps):
        dw, state = _rstdp_step(pre_spikes[k], post_spikes[k], reward[k], state, p)
        w = (w + dw).clamp(p.stdp.w_min, p.stdp.w_max)
        ws.append(w)
        elig.append(state.eligibility)
    return {"w": torch.stack(ws), "eligibility": torch.stack(elig)}
