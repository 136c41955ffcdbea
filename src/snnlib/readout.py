"""Linear readouts on features (pixels or spike counts): the book's baselines.

A multinomial logistic regression (scikit-learn) on standardised features:

.. math::

    p(y = c \\mid x) = \\frac{e^{w_c \\cdot z + b_c}}{\\sum_k e^{w_k \\cdot z + b_k}},
    \\qquad z = \\frac{x - \\mu}{\\sigma},

fitted by minimising the cross-entropy plus :math:`\\frac{1}{2C}\\lVert W \\rVert^2`.
``C`` is chosen on a held-out fifth of the training set, so the test set never
decides anything. Two backends minimise the same objective with L-BFGS:
scikit-learn's (one thread) and a PyTorch one (every core; 2.1 times faster on
40,000 x 3,072 pixels on two cores, ``benchmarks/readout_backends.py``).

Example
-------
>>> import numpy as np
>>> from snnlib import readout
>>> x = np.r_[np.zeros((20, 3)), np.ones((20, 3))] + np.random.default_rng(0).normal(0, .1, (40, 3))
>>> y = np.r_[np.zeros(20, int), np.ones(20, int)]
>>> readout.logistic_regression(x, y, x, y)["accuracy"]
1.0
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from . import _validate as check

__all__ = ["held_out_accuracy", "logistic_regression"]


def _lbfgs_multinomial(x: np.ndarray, y: np.ndarray, c: float, *, n_classes: int,
                       max_iter: int, tol: float = 1e-4, init: tuple | None = None) -> tuple:
    """Multinomial logistic regression by L-BFGS in PyTorch: scikit-learn's objective and stop.

    .. math::

        \\min_{W, b}\\; \\frac{1}{n} \\sum_{i=1}^{n} -\\log \\mathrm{softmax}(W^T x_i + b)_{y_i}
        + \\frac{1}{2 C n} \\lVert W \\rVert^2,

    scikit-learn's ``LogisticRegression(C=c)`` objective divided by :math:`C n`
    (the same minimum; the intercept is not penalised), minimised by L-BFGS with
    10 pairs of history and a strong-Wolfe line search, stopped when every
    component of the gradient is at most ``tol`` (scikit-learn's ``tol``) or
    after ``max_iter`` iterations (or 15,000 evaluations, as scikit-learn's),
    with a ``ConvergenceWarning`` where it stopped at ``max_iter`` or with a
    gradient above ten times ``tol`` (a line search that could not go on). It uses every core
    torch is allowed. For two classes scikit-learn fits one logit
    :math:`w^T x + b` with penalty :math:`\\lVert w \\rVert^2 / (2Cn)`; the two
    softmax rows reach the same optimum as :math:`\\pm w / 2` when their penalty
    is doubled, which it then is.

    Parameters
    ----------
    x : numpy array ``(n, d)``, float32 or float64
        Features (already standardised); ``y`` int labels in ``[0, n_classes)``.
    init : (W, b), optional
        A starting point (``(d, n_classes)`` and ``(n_classes,)``), e.g. the
        solution for a neighbouring C; zeros otherwise.

    Returns
    -------
    (W, b, iterations)
        The coefficients as numpy arrays in ``x``'s dtype and the L-BFGS iterations.
    """
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    n, d = xt.shape
    w0, b0 = init if init is not None else (np.zeros((d, n_classes)), np.zeros(n_classes))
    w = torch.tensor(w0, dtype=xt.dtype).requires_grad_()
    b = torch.tensor(b0, dtype=xt.dtype).requires_grad_()
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, max_eval=max(15_000, max_iter),
                            tolerance_grad=tol, tolerance_change=0.0, history_size=10,
                            line_search_fn="strong_wolfe")
    penalty = (1.0 if n_classes == 2 else 0.5) / (c * n)

    def objective():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + penalty * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(objective)
        objective()
    iterations = int(opt.state[opt.param_groups[0]["params"][0]].get("n_iter", 0))
    largest = max(float(w.grad.abs().max()), float(b.grad.abs().max()))
    if iterations >= max_iter or largest > 10 * tol:  # the limit, or stuck far from the optimum
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        warnings.warn(f"readout: L-BFGS stopped after {iterations} iterations with a gradient of "
                      f"{largest:.3g} (tol {tol:g}); raise max_iter or scale the features.",
                      ConvergenceWarning, stacklevel=3)
    return w.detach().numpy(), b.detach().numpy(), iterations


def logistic_regression(train_x, train_y, test_x, test_y, *, cs: Sequence[float] = (0.01, 0.1, 1.0),
                        seed: int = 0, dtype=np.float64, max_iter: int = 3000,
                        backend: Literal["sklearn", "torch"] = "sklearn",
                        test_views: Sequence = ()) -> dict:
    """Fit a standardised multinomial logistic regression; score it on the test set.

    Parameters
    ----------
    train_x, test_x : array ``(N, d)``
        Features (flattened if more dimensions).
    train_y, test_y : array of int
    cs : sequence of float
        Inverse regularisation strengths tried; the one with the best
        accuracy on a seeded, stratified fifth of the training set is refitted
        on all of it. When that fifth would hold fewer than two images per
        class (tiny runs), or a class has a single training image, the middle
        one is used without validation.
    dtype : numpy float type
        Precision of the fit. ``np.float32`` halves the memory and roughly
        halves the time on large feature sets (tier 2's 50,000 x 4,608).
    max_iter : int
        L-BFGS iteration limit per fit.
    backend : {"sklearn", "torch"}
        scikit-learn's L-BFGS on one thread, or :func:`_lbfgs_multinomial` on every
        core (the same objective and stopping rule: the same predictions up to
        where the optimiser stops).
    test_views : sequence of arrays ``(N_test, d)``
        Other views of the same test images (the features of their mirror
        images, say). The prediction is then the class of largest mean
        probability over ``test_x`` and the views,
        :math:`\\hat y = \\arg\\max_k \\frac{1}{V} \\sum_v p(k \\mid x^{(v)})`;
        C is still chosen on the held-out fifth without views.

    Returns
    -------
    dict
        ``accuracy`` (test), ``predictions`` (test), ``c`` (chosen),
        ``validation`` ({C: held-out accuracy}), ``iterations`` (L-BFGS, of the
        final fit) and ``fit_dtype`` (of its coefficients); with ``test_views``
        also ``accuracy_test_x_alone`` (the same fit, ``test_x`` alone).
    """
    where = "readout.logistic_regression"
    max_iter, seed = _checked_settings(where, cs, seed, dtype, max_iter, backend)
    if isinstance(test_views, np.ndarray) or not isinstance(test_views, (list, tuple)):
        raise ValueError(f"{where}: test_views must be a list or tuple of (N_test, d) arrays, "
                         f"got {type(test_views).__name__}.")
    train_x = _as_features("train_x", train_x, dtype, where)
    test_x = _as_features("test_x", test_x, dtype, where)
    views = [_as_features(f"test_views[{i}]", view, dtype, where)
             for i, view in enumerate(test_views)]
    for i, view in enumerate(views):
        if view.shape != test_x.shape:
            raise ValueError(f"{where}: test_views[{i}] has shape {view.shape}, test_x "
                             f"{test_x.shape}; a view holds the same test images' features, "
                             "in the same order.")
    if len(np.asarray(test_y).reshape(-1)) != len(test_x) or np.ndim(test_y) != 1:
        raise ValueError(f"{where}: test_x has {len(test_x)} rows and test_y "
                         f"{np.shape(test_y)} labels; features and labels must have the same "
                         "number of rows (one label per row).")
    train_y = _checked_labels("train_x", train_x, "train_y", train_y, where)
    test_y = check.labels("test_y", test_y, where=where)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"{where}: train_x has {train_x.shape[1]} features, test_x "
                         f"{test_x.shape[1]}; they must match.")

    from sklearn.preprocessing import StandardScaler

    classes, index = np.unique(train_y, return_inverse=True)
    solve = _solver(backend)(len(classes), max_iter)
    validation = {}
    with _threads(backend):
        if (len(cs) > 1 and 0.2 * len(train_y) >= 2 * len(classes)
                and np.bincount(index).min() >= 2):  # a stratified split needs 2 of each
            validation = _held_out(train_x, index, cs, seed, solve)
            best = max((float(c) for c in cs), key=validation.get)  # ties: the first in cs
        else:
            best = float(cs[len(cs) // 2])
        scaler = StandardScaler().fit(train_x)
        proba, iterations, fit_dtype = solve(scaler.transform(train_x), index, best, warm=False)
        alone = proba(scaler.transform(test_x))
        mean = alone
        for view in views:
            mean = mean + proba(scaler.transform(view))
        predictions = classes[np.argmax(mean, 1)]
    out = {"accuracy": float(np.mean(predictions == test_y)), "predictions": predictions,
           "c": best, "validation": validation, "iterations": iterations,
           "fit_dtype": fit_dtype}
    if views:
        out["accuracy_test_x_alone"] = float(np.mean(classes[np.argmax(alone, 1)] == test_y))
    return out


def _checked_settings(where: str, cs, seed, dtype, max_iter, backend) -> tuple[int, int]:
    """:func:`logistic_regression`'s ``cs``, ``seed``, ``dtype``, ``max_iter`` and
    ``backend`` checked; returns ``(max_iter, seed)`` as ints."""
    try:
        ok = np.dtype(dtype) in (np.dtype(np.float32), np.dtype(np.float64))
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"{where}: dtype must be numpy.float32 or numpy.float64, not {dtype!r}.")
    if backend not in ("sklearn", "torch"):
        raise ValueError(f"{where}: backend must be 'sklearn' or 'torch', not {backend!r}.")
    max_iter = check.integer("max_iter", max_iter, where=where)
    if max_iter < 1:
        raise ValueError(f"{where}: max_iter must be at least 1, not {max_iter}.")
    seed = check.integer("seed", seed, low=0, high=2**32 - 1, where=where)
    if isinstance(cs, (str, bytes)) or not hasattr(cs, "__len__") or not len(cs):
        raise ValueError(f"{where}: cs must name at least one C (a sequence of numbers > 0), "
                         f"got {cs!r}.")
    for c in cs:
        check.number("cs", c, low=0, low_open=True, where=where)
    return max_iter, seed


def _as_features(name: str, x, dtype, where: str) -> np.ndarray:
    """``x`` as ``(N, d)`` in ``dtype``: numeric, not empty, finite once converted."""
    x = check.array(name, x, finite=False, where=where)  # numeric, not empty
    if x.ndim < 1 or len(x) == 0:
        raise ValueError(f"{where}: {name} must be (N, d) features, got shape {x.shape}.")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
        x = np.asarray(x, dtype=dtype).reshape(len(x), -1)
    return check.array(name, x, where=where)  # finite in dtype (a large value overflows)


def _checked_labels(x_name: str, x: np.ndarray, y_name: str, y, where: str) -> np.ndarray:
    """Training labels: one per row of ``x``, integers, at least two classes."""
    if len(np.asarray(y).reshape(-1)) != len(x) or np.ndim(y) != 1:
        raise ValueError(f"{where}: {x_name} has {len(x)} rows and {y_name} "
                         f"{np.shape(y)} labels; features and labels must have the same "
                         "number of rows (one label per row).")
    y = check.labels(y_name, y, where=where)
    if len(np.unique(y)) < 2:
        raise ValueError(f"{where}: {y_name} holds one class only ({int(y[0])}); a "
                         "classifier needs at least two.")
    return y


def _solver(backend: str):
    """The solver factory of ``backend``: :func:`_torch_solver` or :func:`_sklearn_solver`."""
    return _torch_solver if backend == "torch" else _sklearn_solver


def _threads(backend: str):
    """scikit-learn on one BLAS/OpenMP thread: on 2 cores, two threads made each L-BFGS
    iteration slower at every size measured, 7 times at hundreds of images
    (``benchmarks/readout_threads.py``); PyTorch's on every core."""
    import contextlib

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if backend == "sklearn" else contextlib.nullcontext()


def _held_out(train_x: np.ndarray, index: np.ndarray, cs, seed: int, solve) -> dict:
    """{C: accuracy} of ``solve``'s fits on a seeded, stratified four fifths of ``train_x``
    (class indices ``index``), scored on the fifth held out: :func:`logistic_regression`'s
    choice of C."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    fit_x, val_x, fit_y, val_y = train_test_split(train_x, index, test_size=0.2,
                                                  random_state=seed, stratify=index)
    # one scaler; the Cs from the strongest regularisation up, each fit starting from
    # the last one's solution (the same optimum, reached in fewer L-BFGS iterations)
    scaler = StandardScaler().fit(fit_x)
    fit_s, val_s = scaler.transform(fit_x), scaler.transform(val_x)
    validation = {}
    for c in sorted(float(c) for c in cs):
        proba, _, _ = solve(fit_s, fit_y, c, warm=True)
        validation[c] = float(np.mean(np.argmax(proba(val_s), 1) == val_y))
    return validation


def held_out_accuracy(train_x, train_y, *, cs: Sequence[float], seed: int = 0,
                      dtype=np.float64, max_iter: int = 3000,
                      backend: Literal["sklearn", "torch"] = "sklearn") -> dict:
    """{C: accuracy on the held-out fifth}: how :func:`logistic_regression` (the same
    arguments) chooses its C, without its final fit or any test set; for a readout measured
    on training features alone (``benchmarks/dog_lif_run_readouts.py``)."""
    where = "readout.held_out_accuracy"
    max_iter, seed = _checked_settings(where, cs, seed, dtype, max_iter, backend)
    train_x = _as_features("train_x", train_x, dtype, where)
    train_y = _checked_labels("train_x", train_x, "train_y", train_y, where)
    classes, index = np.unique(train_y, return_inverse=True)
    if np.bincount(index).min() < 5:
        raise ValueError(f"{where}: every class needs at least 5 training rows for a "
                         "stratified fifth, got fewer.")
    with _threads(backend):
        return _held_out(train_x, index, cs, seed,
                         _solver(backend)(len(classes), max_iter))


def _sklearn_solver(n_classes: int, max_iter: int):
    """``solve(x, y, c, warm) -> (proba, iterations, dtype)`` with scikit-learn's L-BFGS
    (``warm``: start from the previous warm fit's solution); ``proba(x)`` gives the class
    probabilities ``(N, n_classes)``."""
    from sklearn.linear_model import LogisticRegression

    path = LogisticRegression(max_iter=max_iter, warm_start=True)

    def solve(x, y, c, *, warm: bool):
        model = path if warm else LogisticRegression(max_iter=max_iter)
        model.set_params(C=c).fit(x, y)
        return model.predict_proba, int(np.max(model.n_iter_)), str(model.coef_.dtype)

    return solve


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise :math:`e^{z_k} / \\sum_j e^{z_j}` (shifted by the row's maximum)."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _torch_solver(n_classes: int, max_iter: int):
    """The same as :func:`_sklearn_solver` with :func:`_lbfgs_multinomial`."""
    previous = [None]  # the last warm fit's (W, b)

    def solve(x, y, c, *, warm: bool):
        w, b, iterations = _lbfgs_multinomial(x, y, c, n_classes=n_classes, max_iter=max_iter,
                                              init=previous[0] if warm else None)
        if warm:
            previous[0] = (w, b)
        return (lambda z: _softmax(z @ w + b)), iterations, str(w.dtype)

    return solve
