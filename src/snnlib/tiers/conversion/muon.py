"""Tier 3: Muon, an optimiser that orthogonalises each convolution's update (Jordan et al. 2024).

SGD moves a layer's filters along the gradient, in which a few directions
(the largest singular values of the gradient, seen as a matrix of
``out_channels x (in_channels k k)``) dominate. Muon ("MomentUm Orthogonalized
by Newton-Schulz"; Jordan, Jin, Boza, You, Cesista, Newhouse and Bernstein 2024;
Bernstein and Newhouse 2024, "Old optimizer, new norm") keeps Nesterov momentum
but replaces the update by (an approximation of) the nearest semi-orthogonal
matrix, :math:`U V^T` for an update :math:`U S V^T`, so that the directions the
gradient points in move the filters by comparable amounts, however unequal their
singular values. airbench (Jordan 2024) trains its
network's convolutions with it and reaches its accuracy in fewer epochs than
with SGD. :func:`orthogonalise` is the approximation of :math:`U V^T`,
:class:`Muon` the optimiser; :func:`.cnn.train_cnn` uses it for the
convolutions' filters when :attr:`.cnn.TrainParams.optimizer` is ``"muon"``.
"""

from __future__ import annotations

import torch

from ... import _validate as check

__all__ = ["NEWTON_SCHULZ_COEFFICIENTS", "Muon", "orthogonalise"]

NEWTON_SCHULZ_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""The quintic iteration's :math:`(a, b, c)` (Jordan et al. 2024): chosen so that the
polynomial :math:`\\varphi(\\sigma) = a\\sigma + b\\sigma^3 + c\\sigma^5` pulls small
singular values up fast (slope :math:`a` at 0: at most :math:`a^3 \\approx 41` times in three
iterations) and never takes a value of [0, 1] above 1.2024. After three iterations every
value from 0.035 to 1 (of the Frobenius norm) lies in [0.68, 1.2024]: near 1, not exactly 1
(the update's directions need not be exactly equal); smaller ones stay smaller (0.01 ends at
0.40)."""


def orthogonalise(g: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """An approximately semi-orthogonal matrix with the singular vectors of the matrix ``g``.

    For :math:`G = U S V^T` it returns :math:`U \\varphi^{(n)}(S / \\lVert G\\rVert_F) V^T`,
    the quintic Newton-Schulz iteration

    .. math:: X_0 = G / \\lVert G \\rVert_F, \\qquad
              X_{k+1} = a X_k + b (X_k X_k^T) X_k + c (X_k X_k^T)^2 X_k,

    :math:`n` = ``steps`` times, with :math:`(a, b, c)` = :data:`NEWTON_SCHULZ_COEFFICIENTS`.
    Each iteration maps every singular value :math:`\\sigma` to
    :math:`\\varphi(\\sigma) = a\\sigma + b\\sigma^3 + c\\sigma^5` and keeps the singular
    vectors, so the result approximates :math:`U V^T` (singular values near 1) with matrix
    products alone, no decomposition. Dividing by the Frobenius norm (plus
    :math:`10^{-7}`, so that a zero matrix stays zero) puts every singular value in [0, 1]
    first. ``g`` ``(rows, cols)``; a tall matrix is transposed for the iteration (the
    smaller Gram matrix) and back. Computed in float32 (or float64 for a float64 ``g``).
    """
    check.instance("g", g, torch.Tensor, where="orthogonalise")
    if g.ndim != 2:
        raise ValueError(f"orthogonalise: g must be a matrix (rows, cols), got shape "
                         f"{tuple(g.shape)}")
    check.positive_int("steps", steps, low=0, where="orthogonalise")
    return _orthogonalise(g, steps)


def _orthogonalise(g: torch.Tensor, steps: int) -> torch.Tensor:
    """:func:`orthogonalise` without the checks (the optimiser calls it every step)."""
    a, b, c = NEWTON_SCHULZ_COEFFICIENTS
    x = g.double() if g.dtype == torch.float64 else g.float()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (torch.linalg.matrix_norm(x) + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Muon(torch.optim.Optimizer):
    """Muon for convolution filters (or any weights of two or more dimensions).

    Each step, for a weight :math:`W` of :math:`r` rows (output channels) with gradient
    :math:`g`, momentum :math:`\\mu`, learning rate :math:`\\eta`:

    .. math:: m \\leftarrow \\mu m + g, \\qquad
              W \\leftarrow W \\frac{\\sqrt{r}}{\\lVert W \\rVert_F}, \\qquad
              W \\leftarrow W - \\eta\\, \\mathrm{orth}(g + \\mu m),

    Nesterov momentum, then :func:`orthogonalise` of the update seen as a matrix of
    :math:`r` rows (``newton_schulz_steps`` iterations). The weight is first brought back
    to a Frobenius norm of :math:`\\sqrt r` (each filter's squared norm 1 on average), as
    airbench does: a convolution followed by a batch norm computes the same function at
    any scale, so the scale would only set the step's relative size, which the fixed norm
    keeps at :math:`\\eta` per direction. No weight decay (the fixed norm takes its place).
    """

    def __init__(self, params, lr: float, momentum: float = 0.6,
                 newton_schulz_steps: int = 3) -> None:
        check.finite_number("lr", lr, above=0, where="Muon")
        check.finite_number("momentum", momentum, at_least=0, where="Muon")
        if momentum >= 1:
            raise ValueError(f"Muon: momentum must be in [0, 1), got {momentum!r}")
        check.positive_int("newton_schulz_steps", newton_schulz_steps, where="Muon")
        super().__init__(params, {"lr": lr, "momentum": momentum,
                                  "newton_schulz_steps": newton_schulz_steps})
        for group in self.param_groups:
            for w in group["params"]:
                if w.ndim < 2:
                    raise ValueError(f"Muon: params must be weights of at least two "
                                     f"dimensions (filters, matrices), got one of shape "
                                     f"{tuple(w.shape)}; train biases and scales with another "
                                     "optimiser")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every weight that has a gradient (``closure``: as PyTorch's)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            mu, lr = group["momentum"], group["lr"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad.float()
                state = self.state[w]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                m = state["momentum_buffer"]
                m.mul_(mu).add_(g)
                update = g.add(m, alpha=mu).reshape(len(w), -1)
                w.mul_(len(w) ** 0.5 / torch.linalg.vector_norm(w).clamp_min(1e-12))
                orth = _orthogonalise(update, group["newton_schulz_steps"])
                w.add_(orth.reshape(w.shape).to(w.dtype), alpha=-lr)
        return loss
