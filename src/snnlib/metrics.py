"""Accuracy, per-class accuracy and the confusion matrix.

For predictions :math:`\\hat y` and labels :math:`y` of :math:`N` images,
accuracy :math:`= \\frac{1}{N} \\sum_n [\\hat y_n = y_n]`; the confusion
matrix :math:`M_{ij}` counts images of class :math:`i` predicted as
:math:`j` (rows: true class); per-class accuracy is :math:`M_{ii} / \\sum_j M_{ij}`.
A prediction of -1 (no decision) counts as wrong and appears in no column.
"""

from __future__ import annotations

import numpy as np

from . import _validate as check

__all__ = ["classification_summary", "confusion_matrix"]


def _check(labels, predictions, n_classes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels in [0, n_classes - 1] and predictions in [-1, n_classes - 1], one per label,
    not empty."""
    n_classes = check.integer("n_classes", n_classes, low=1, where=where)
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"{where}: labels {labels.shape} and predictions {predictions.shape} "
                         "differ in shape; give one prediction per label.")
    labels = check.labels("labels", labels, n_classes=n_classes, where=where)
    predictions = check.predictions("predictions", predictions, n_classes=n_classes, where=where)
    if len(labels) == 0:
        raise ValueError(f"{where}: labels and predictions must not be empty, got shape "
                         f"{labels.shape}.")
    return labels, predictions


def confusion_matrix(labels, predictions, n_classes: int = 10) -> np.ndarray:
    """``(n_classes, n_classes)`` counts, rows the true class; predictions of -1 are left out.

    ``labels`` are class indices in ``[0, n_classes - 1]``, ``predictions`` the same or -1
    (no decision), one per label; anything else is refused (ValueError, TypeError).
    """
    labels, predictions = _check(labels, predictions, n_classes, "metrics.confusion_matrix")
    return _confusion(labels, predictions, n_classes)


def _confusion(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """:func:`confusion_matrix` of checked labels and predictions."""
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    ok = predictions >= 0
    np.add.at(m, (labels[ok], predictions[ok]), 1)
    return m


def classification_summary(labels, predictions, n_classes: int = 10) -> dict:
    """``accuracy``, ``per_class_accuracy``, ``confusion`` (lists, for JSON) and ``no_decision``."""
    labels, predictions = _check(labels, predictions, n_classes,
                                 "metrics.classification_summary")
    m = _confusion(labels, predictions, n_classes)
    per_class = np.diag(m) / np.maximum(np.bincount(labels, minlength=n_classes), 1)
    return {"accuracy": float(np.mean(predictions == labels)),
            "per_class_accuracy": [float(v) for v in per_class],
            "confusion": m.tolist(),
            "no_decision": float(np.mean(predictions < 0))}
