"""The images every tuning script uses: the training split to learn, the validation split to score.

The validation split is :func:`snnlib.data.validation_split` (the last 500
training images of each class); the test set is never read by a tuning script.
"""

from __future__ import annotations

import numpy as np

from snnlib import data

SPLIT = "validation: the last 500 training images of each class (snnlib.data.validation_split)"


def tuning_split(labels: np.ndarray, n_train: int, n_val: int, *, seed: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the CIFAR-10 training set: ``n_train`` class-balanced images of the
    training split (shuffled: the retina is fitted on the first ones) and ``n_val``
    class-balanced images of the validation split."""
    train, val = data.validation_split(labels)
    if n_train % 10 or n_val % 10 or not 0 < n_train <= len(train) or not 0 < n_val <= len(val):
        raise SystemExit(f"--train and --val must be multiples of 10 within the {len(train)} "
                         f"training and {len(val)} validation images, got {n_train}, {n_val}")
    itr = train[data.balanced_subset(labels[train], n_train // 10, seed=seed)]
    iva = val[data.balanced_subset(labels[val], n_val // 10, seed=seed)]
    return np.random.default_rng(seed).permutation(itr), iva


VALIDATION_IMAGES = 10 * data.VALIDATION_PER_CLASS
"""Images in the validation split (:func:`snnlib.data.validation_split`), as many of each class."""


def count_problem(n: int, at_most: int = VALIDATION_IMAGES) -> str | None:
    """What is wrong with taking ``n`` images, as many of each class, from at most ``at_most``
    (a multiple of 10); None when nothing is."""
    if n % 10 or not 10 <= n <= at_most:
        return f"must be a multiple of 10 from 10 to {at_most} (as many images of each class), " \
               f"got {n}"
    return None


def first_per_class(labels: np.ndarray, n: int) -> np.ndarray:
    """Positions in ``labels`` of the first ``n / 10`` entries of each class, in ``labels``'
    order: a class-balanced subset of the validation split without a draw (all of it, in its
    order, when ``n`` is its size). Exits with a message unless ``n`` is a positive multiple of
    10 within every class (:func:`count_problem`)."""
    labels = np.asarray(labels)
    problem = count_problem(n, at_most=10 * int(np.bincount(labels, minlength=10).min()))
    if problem:
        raise SystemExit(f"the validation images {problem}")
    return np.sort(np.concatenate([np.flatnonzero(labels == k)[:n // 10] for k in range(10)]))
