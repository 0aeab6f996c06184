"""Tests of the synthetic generators in skmoe.datasets."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from skmoe.datasets import (
    make_heteroscedastic_regression,
    make_piecewise_linear,
    make_piecewise_logistic,
)

GENERATORS = [make_piecewise_linear, make_heteroscedastic_regression, make_piecewise_logistic]


@pytest.mark.parametrize(
    "n_samples, n_features, n_regimes", [(1, 1, 1), (50, 2, 3), (300, 5, 4), (200, 3, 7)]
)
def test_piecewise_linear_shapes(n_samples, n_features, n_regimes):
    X, y, truth = make_piecewise_linear(
        n_samples, n_features, n_regimes, random_state=0, return_truth=True
    )
    assert X.shape == (n_samples, n_features)
    assert y.shape == (n_samples,)
    assert truth["regime"].shape == (n_samples,)
    assert truth["coef"].shape == (n_regimes, n_features)
    assert truth["intercept"].shape == (n_regimes,)
    assert truth["directions"].shape == (n_regimes, n_features)
    assert np.all(np.abs(X) <= 1.0)
    assert np.all((truth["regime"] >= 0) & (truth["regime"] < n_regimes))


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_piecewise_logistic_shapes(n_classes):
    X, y, truth = make_piecewise_logistic(
        400, n_features=4, n_regimes=3, n_classes=n_classes, random_state=0, return_truth=True
    )
    assert X.shape == (400, 4)
    assert y.shape == (400,)
    assert y.dtype.kind == "i"
    assert set(np.unique(y)) <= set(range(n_classes))
    assert truth["proba"].shape == (400, n_classes)
    assert_allclose(truth["proba"].sum(axis=1), 1.0)
    assert truth["coef"].shape == (3, n_classes, 4)
    assert truth["intercept"].shape == (3, n_classes)


def test_heteroscedastic_shapes():
    X, y, truth = make_heteroscedastic_regression(300, random_state=0, return_truth=True)
    assert X.shape == (300, 3)
    assert y.shape == (300,)
    for key in ("regime", "gate", "mean", "variance", "log_density"):
        assert truth[key].shape == (300,)
    assert set(np.unique(truth["regime"])) == {0, 1}


@pytest.mark.parametrize("make", GENERATORS)
def test_determinism(make):
    X1, y1 = make(n_samples=200, random_state=3)
    X2, y2 = make(n_samples=200, random_state=np.random.RandomState(3))
    assert_array_equal(X1, X2)
    assert_array_equal(y1, y2)
    X3, y3 = make(n_samples=200, random_state=4)
    assert not np.array_equal(X1, X3)


@pytest.mark.parametrize("make", [make_piecewise_linear, make_piecewise_logistic])
def test_parameters_do_not_depend_on_n_samples(make):
    _, _, small = make(n_samples=10, random_state=5, return_truth=True)
    _, _, large = make(n_samples=1000, random_state=5, return_truth=True)
    for key in ("directions", "coef", "intercept"):
        assert_array_equal(small[key], large[key])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_piecewise_linear_bayes_error(seed):
    # The README's setting: d=5, K=4, noise 0.5, n=20k, Bayes relative error ~0.017.
    noise = 0.5
    X, y, truth = make_piecewise_linear(
        20000, 5, 4, noise=noise, random_state=seed, return_truth=True
    )
    # Var(y) = 14.75 + noise^2 = 15 by construction, up to sampling error.
    assert 0.25 / np.var(y) == pytest.approx(1 / 60, rel=0.06)
    # The true conditional mean leaves exactly the noise.
    assert np.mean((y - truth["mean"]) ** 2) == pytest.approx(noise**2, rel=0.05)
    # It is a hard-gated mixture of linear experts: least squares within the
    # true regimes reaches the Bayes error too.
    residuals = np.empty_like(y)
    for k in range(4):
        rows = truth["regime"] == k
        assert rows.sum() > 0.05 * y.size
        design = np.column_stack([np.ones(rows.sum()), X[rows]])
        coef, *_ = np.linalg.lstsq(design, y[rows], rcond=None)
        residuals[rows] = y[rows] - design @ coef
        assert_allclose(coef[1:], truth["coef"][k], atol=0.2)
    assert np.mean(residuals**2) == pytest.approx(noise**2, rel=0.05)
    assert np.mean(-truth["log_density"]) == pytest.approx(
        0.5 * np.log(2 * np.pi * noise**2) + 0.5, abs=0.02
    )


def test_piecewise_linear_noise_free():
    X, y, truth = make_piecewise_linear(100, noise=0.0, random_state=0, return_truth=True)
    assert_array_equal(y, truth["mean"])


def test_heteroscedastic_model():
    X, y, truth = make_heteroscedastic_regression(50000, random_state=0, return_truth=True)
    x1 = X[:, 0]
    regime = truth["regime"]
    assert_allclose(truth["gate"], 1 / (1 + np.exp(-3 * x1)))
    # P(regime 0) = E[sigmoid(3 x1)] = 1/2 by symmetry.
    assert np.mean(regime == 0) == pytest.approx(0.5, abs=0.01)
    # The regimes' noise levels.
    first, second = regime == 0, regime == 1
    assert np.std(y[first] - (1 + 2 * x1[first])) == pytest.approx(0.2, rel=0.03)
    assert np.std(y[second] + x1[second] ** 2) == pytest.approx(0.8, rel=0.03)
    # The truth is consistent with the draws, and the last two inputs are noise.
    assert np.mean((y - truth["mean"]) ** 2) == pytest.approx(
        np.mean(truth["variance"]), rel=0.03
    )
    assert np.all(np.abs(np.corrcoef(X[:, 1:].T, y)[-1, :2]) < 0.02)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("n_classes", [2, 3])
def test_piecewise_logistic_classes_not_degenerate(seed, n_classes):
    X, y, truth = make_piecewise_logistic(
        5000, n_classes=n_classes, random_state=seed, return_truth=True
    )
    shares = np.bincount(y, minlength=n_classes) / y.size
    assert shares.min() > 0.3 / n_classes
    # Labels follow the true probabilities, and the task is far from a coin flip.
    assert_allclose(shares, truth["proba"].mean(axis=0), atol=0.03)
    assert np.mean(truth["proba"].max(axis=1)) > 1.2 / n_classes
    # Every regime is populated.
    assert np.bincount(truth["regime"], minlength=3).min() > 0.05 * y.size


@pytest.mark.parametrize(
    "make, kwargs",
    [
        (make_piecewise_linear, {"n_samples": 0}),
        (make_piecewise_linear, {"n_features": 0}),
        (make_piecewise_linear, {"n_regimes": 2.5}),
        (make_piecewise_linear, {"noise": -1.0}),
        (make_heteroscedastic_regression, {"n_samples": -3}),
        (make_piecewise_logistic, {"n_classes": 1}),
    ],
)
def test_invalid_arguments(make, kwargs):
    with pytest.raises(ValueError):
        make(**kwargs)
