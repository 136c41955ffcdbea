"""Accuracy, per-class accuracy and the confusion matrix.

For predictions :math:`\\hat y` and labels :math:`y` of :math:`N` images,
accuracy :math:`= \\frac{1}{N} \\sum_n [\\hat y_n = y_n]`; the confusion
matrix :math:`M_{ij}` counts images of class :math:`i` predicted as
:math:`j` (rows: true class); per-class accuracy is :math:`M_{ii} / \\sum_j M_{ij}`.
A prediction of -1 (no decision) counts as wrong and appears in no column.
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_summary", "confusion_matrix"]


def confusion_matrix(labels, predictions, n_classes: int = 10) -> np.ndarray:
    """``(n_classes, n_classes)`` counts, rows the true class; predictions of -1 are left out."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} differ in shape.")
    m = np.zeros((n_classes, n_classes), dtype=np.int64)
    ok = predictions >= 0
    np.add.at(m, (labels[ok], predictions[ok]), 1)
    return m


def classification_summary(labels, predictions, n_classes: int = 10) -> dict:
    """``accuracy``, ``per_class_accuracy``, ``confusion`` (lists, for JSON) and ``no_decision``."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    m = confusion_matrix(labels, predictions, n_classes)
    per_class = np.diag(m) / np.maximum(np.bincount(labels, minlength=n_classes), 1)
    return {"accuracy": float(np.mean(predictions == labels)),
            "per_class_accuracy": [float(v) for v in per_class],
            "confusion": m.tolist(),
            "no_decision": float(np.mean(predictions < 0))}
