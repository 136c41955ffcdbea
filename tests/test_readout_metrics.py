"""snnlib.readout (logistic-regression baselines) and snnlib.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from snnlib import metrics, readout


def test_confusion_matrix_rows_are_true_classes_and_no_decision_is_wrong():
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, -1, 0])
    m = metrics.confusion_matrix(labels, predictions, 3)
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    s = metrics.classification_summary(labels, predictions, 3)
    assert s["accuracy"] == pytest.approx(3 / 6)
    assert s["per_class_accuracy"] == pytest.approx([0.5, 1.0, 0.0])
    assert s["no_decision"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.confusion_matrix(labels, predictions[:2], 3)


def test_logistic_regression_separates_separable_classes_and_not_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    centres = rng.normal(0, 3, (4, 8))
    x = centres[y] + rng.normal(0, 0.5, (200, 8))
    yt = np.repeat(np.arange(4), 25)
    xt = centres[yt] + rng.normal(0, 0.5, (100, 8))
    good = readout.logistic_regression(x, y, xt, yt)
    assert good["accuracy"] > 0.95 and good["c"] in good["validation"]
    noise = readout.logistic_regression(rng.normal(size=(200, 8)), y, rng.normal(size=(100, 8)), yt)
    assert noise["accuracy"] < 0.45  # chance is 0.25
    with pytest.raises(ValueError, match="same number of rows"):
        readout.logistic_regression(x, y[:10], xt, yt)


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_a_class_with_one_training_row_takes_the_middle_c_without_validation(backend):
    # 20 rows, 10 per class on average, but one class has a single row: no stratified fifth
    rng = np.random.default_rng(1)
    y = np.array([0] * 19 + [1])
    x = rng.normal(0, 1, (20, 3)) + 4.0 * y[:, None]
    out = readout.logistic_regression(x, y, x, y, cs=(0.01, 0.1, 1.0), backend=backend)
    assert out["validation"] == {} and out["c"] == 0.1 and out["accuracy"] >= 0.95
    # two rows of that class: the fifth is held out as usual
    y2 = np.array([0] * 18 + [1] * 2)
    out = readout.logistic_regression(x, y2, x, y2, cs=(0.01, 0.1, 1.0), backend=backend)
    assert set(out["validation"]) == {0.01, 0.1, 1.0}


def test_logistic_regression_in_float32_predicts_as_float64_does():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 60)
    centres = rng.normal(0, 1, (3, 20))
    x = centres[y] + rng.normal(0, 1.0, (180, 20))
    xt = centres[y] + rng.normal(0, 1.0, (180, 20))
    a = readout.logistic_regression(x, y, xt, y, cs=(0.1,))
    b = readout.logistic_regression(x, y, xt, y, cs=(0.1,), dtype=np.float32)
    assert 0.5 < a["accuracy"] < 1.0  # neither trivial nor at chance (1/3)
    assert np.mean(a["predictions"] == b["predictions"]) > 0.97
    assert 1 <= b["iterations"] <= 3000
    assert (a["fit_dtype"], b["fit_dtype"]) == ("float64", "float32")  # the fit ran in float32
    with pytest.raises(ValueError, match="dtype"):
        readout.logistic_regression(x, y, xt, y, dtype=np.int32)
    with pytest.raises(ValueError, match="max_iter"):
        readout.logistic_regression(x, y, xt, y, max_iter=0)


def test_the_torch_backend_finds_sklearns_optimum_and_chooses_the_same_c():
    rng = np.random.default_rng(2)
    y = np.repeat(np.array([3, 5, 7, 9]), 80)  # labels that are not 0..K-1
    centres = rng.normal(0, 1, (10, 30))
    x = centres[y] + rng.normal(0, 1.5, (320, 30))
    yt = np.repeat(np.array([3, 5, 7, 9]), 40)
    xt = centres[yt] + rng.normal(0, 1.5, (160, 30))
    a = readout.logistic_regression(x, y, xt, yt, cs=(0.003, 0.1))
    b = readout.logistic_regression(x, y, xt, yt, cs=(0.003, 0.1), backend="torch")
    assert 0.4 < a["accuracy"] < 1.0  # neither trivial nor at chance (1/4)
    assert a["validation"] == pytest.approx(b["validation"], abs=1 / 64)  # 64 held out
    assert a["c"] == b["c"]
    assert np.mean(a["predictions"] == b["predictions"]) > 0.98
    assert set(np.unique(b["predictions"])) <= {3, 5, 7, 9}
    # C is the best on the held-out fifth (here neither the first nor the middle of the grid),
    # and the test labels have no say in it
    cs = (0.0003, 0.003, 0.1)
    for backend in ("sklearn", "torch"):
        chosen = readout.logistic_regression(x, y, xt, yt, cs=cs, backend=backend)
        assert len(set(chosen["validation"].values())) > 1
        assert chosen["c"] == max(cs, key=chosen["validation"].get) == 0.1
        shuffled = readout.logistic_regression(x, y, xt, np.roll(yt, 40), cs=cs,
                                               backend=backend)
        assert (shuffled["c"], shuffled["validation"]) == (chosen["c"], chosen["validation"])
    assert b["fit_dtype"] == "float64" and 1 <= b["iterations"] <= 3000
    # the optimum itself: scikit-learn's coefficients, and a vanishing gradient there
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import LogisticRegression

    xs = StandardScaler().fit_transform(x)
    ref = LogisticRegression(C=0.1, tol=1e-8, max_iter=5000).fit(xs, y)
    w, bias, _ = readout._lbfgs_multinomial(xs, np.searchsorted([3, 5, 7, 9], y), 0.1,
                                           n_classes=4, max_iter=5000, tol=1e-8)
    np.testing.assert_allclose(w, ref.coef_.T, atol=1e-5)
    np.testing.assert_allclose(bias, ref.intercept_, atol=1e-5)
    with pytest.raises(ValueError, match="backend"):
        readout.logistic_regression(x, y, xt, yt, backend="liblinear")


def test_the_torch_backend_fits_scikit_learns_binary_model_in_float32_too():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 100)
    x = rng.normal(0, 1, (200, 12)) + 0.6 * y[:, None] * rng.normal(0, 1, 12)
    xs = StandardScaler().fit_transform(x)
    # two classes: scikit-learn fits one logit; the softmax rows must differ by exactly it
    ref = LogisticRegression(C=0.05, tol=1e-8, max_iter=5000).fit(xs, y)
    w, bias, _ = readout._lbfgs_multinomial(xs, y, 0.05, n_classes=2, max_iter=5000, tol=1e-8)
    np.testing.assert_allclose(w[:, 1] - w[:, 0], ref.coef_[0], atol=1e-5)
    np.testing.assert_allclose(bias[1] - bias[0], ref.intercept_[0], atol=1e-5)
    a = readout.logistic_regression(x, y, x, y, cs=(0.01, 0.1))
    b = readout.logistic_regression(x, y, x, y, cs=(0.01, 0.1), backend="torch",
                                    dtype=np.float32)
    assert a["c"] == b["c"] and b["fit_dtype"] == "float32"
    assert np.mean(a["predictions"] == b["predictions"]) > 0.97
    assert 0.6 < a["accuracy"] < 1.0  # neither at chance (1/2) nor trivial
    with pytest.warns(ConvergenceWarning, match="stopped after 1 iterations"):
        readout.logistic_regression(x, y, x, y, cs=(0.1,), backend="torch", max_iter=1)


def _noisy_views(seed: int):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(4), 100)
    centres = rng.normal(0, 1, (4, 10))
    x = centres[y] + rng.normal(0, 1.5, (400, 10))
    yt = np.repeat(np.arange(4), 150)
    clean = centres[yt]
    views = [clean + rng.normal(0, 1.5, clean.shape) for _ in range(3)]  # three noisy looks
    return x, y, yt, views


@pytest.mark.parametrize("backend", ["sklearn", "torch"])
def test_test_views_average_the_class_probabilities(backend):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y, yt, views = _noisy_views(4)
    one = readout.logistic_regression(x, y, views[0], yt, cs=(0.1,), backend=backend)
    avg = readout.logistic_regression(x, y, views[0], yt, cs=(0.1,), backend=backend,
                                      test_views=views[1:])
    # the same fit: test_x alone gives the single view's accuracy
    assert avg["accuracy_test_x_alone"] == one["accuracy"] and "accuracy_test_x_alone" not in one
    # the equation: argmax of the mean probability (scikit-learn's own fit as the reference)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x), y)
    mean = sum(model.predict_proba(scaler.transform(v)) for v in views) / 3
    agree = np.mean(avg["predictions"] == np.argmax(mean, 1))
    assert agree == 1.0 if backend == "sklearn" else agree > 0.99
    # three independent looks beat one
    assert avg["accuracy"] > one["accuracy"] + 0.03
    # the same view again changes nothing
    same = readout.logistic_regression(x, y, views[0], yt, cs=(0.1,), backend=backend,
                                       test_views=[views[0]])
    np.testing.assert_array_equal(same["predictions"], one["predictions"])


def test_a_test_view_must_hold_the_same_images_features():
    x, y, yt, views = _noisy_views(5)
    with pytest.raises(ValueError, match=r"test_views\[0\] has shape \(150, 10\), test_x \(600, 10\)"):
        readout.logistic_regression(x, y, views[0], yt, test_views=[views[1][:150]])
    with pytest.raises(ValueError, match="test_views must be a list or tuple"):
        readout.logistic_regression(x, y, views[0], yt, test_views=views[1])


def test_held_out_accuracy_is_how_logistic_regression_chooses_c():
    """held_out_accuracy gives logistic_regression's own {C: held-out accuracy}, for both
    backends, and refuses what logistic_regression refuses."""
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(3), 40)
    x = rng.normal(size=(120, 6)) + y[:, None] * 0.7
    for backend in ("sklearn", "torch"):
        full = readout.logistic_regression(x, y, x[:9], y[:9], cs=(0.01, 0.1, 1.0), seed=5,
                                           backend=backend)
        alone = readout.held_out_accuracy(x, y, cs=(0.01, 0.1, 1.0), seed=5, backend=backend)
        assert alone == full["validation"]
    with pytest.raises(ValueError, match="held_out_accuracy: train_x has 120 rows"):
        readout.held_out_accuracy(x, y[:-1], cs=(0.1,))
    with pytest.raises(ValueError, match="held_out_accuracy: dtype"):
        readout.held_out_accuracy(x, y, cs=(0.1,), dtype=np.int32)
