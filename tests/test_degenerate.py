"""Degenerate and extreme data: finite, usable fits and no NaN predictions."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skmoe import (
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)


def _two_regimes(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] > 0, 1 + 2 * X[:, 1], -1 - X[:, 1]) + 0.1 * rng.normal(size=n)
    return X, y


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_experts", [2, 3])
def test_repeated_points_hit_the_variance_floor(n_experts):
    """Copies of one point make the likelihood unbounded; the floor keeps it finite."""
    X, y = _two_regimes(150)
    X = np.vstack([X, np.zeros((10, 2))])
    y = np.r_[y, np.full(10, 4.0)]
    est = MixtureOfExpertsRegressor(n_experts, n_init=5, random_state=0).fit(X, y)
    floor = est.min_variance * np.var(y)
    assert np.all(est.expert_variance_ >= floor * (1 - 1e-9))
    assert np.isfinite(est.lower_bound_) and np.all(np.isfinite(est.lower_bounds_))
    assert np.all(np.isfinite(est.predict(X)))
    assert np.all(np.isfinite(est.predict_responsibilities(X, y)))


@pytest.mark.parametrize("scale", [1e8, 1e-8])
@pytest.mark.parametrize("Estimator", [MixtureOfExpertsRegressor,
                                       HierarchicalMixtureOfExpertsRegressor])
def test_predictions_follow_the_units(scale, Estimator):
    X, y = _two_regimes()
    shape = {"branching": (2, 2)} if Estimator is HierarchicalMixtureOfExpertsRegressor else {}
    base = Estimator(random_state=0, **shape).fit(X, y).predict(X)
    scaled = Estimator(random_state=0, **shape).fit(X * scale, y * scale + 3 * scale)
    assert_allclose((scaled.predict(X * scale) - 3 * scale) / scale, base, rtol=1e-6, atol=1e-6)


def test_constant_and_collinear_columns():
    X, y = _two_regimes()
    wide = np.column_stack([X, np.full(len(y), 7.0), 2 * X[:, 1] + 1])
    # Several starts each: the extra columns change the k-means starts, not the optimum.
    est = MixtureOfExpertsRegressor(2, n_init=5, random_state=0).fit(wide, y)
    plain = MixtureOfExpertsRegressor(2, n_init=5, random_state=0).fit(X, y)
    assert_allclose(est.lower_bound_, plain.lower_bound_, rtol=1e-6)
    assert np.all(np.isfinite(est.expert_coef_)) and np.all(np.isfinite(est.gate_coef_))
    assert_allclose(est.expert_coef_[:, 2], 0.0, atol=1e-12)  # the constant column
    assert_allclose(est.predict(wide), plain.predict(X), rtol=1e-4, atol=1e-4)


def test_constant_target():
    X, _ = _two_regimes()
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, np.full(len(X), 2.5))
    assert_allclose(est.predict(X), 2.5, rtol=1e-9)
    assert np.all(np.isfinite(est.expert_variance_))


def test_separable_classes_keep_finite_coefficients():
    X, _ = _two_regimes()
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    clf = MixtureOfExpertsClassifier(2, random_state=0, max_iter=200).fit(X, y)
    assert np.all(np.isfinite(clf.expert_coef_)) and np.all(np.isfinite(clf.gate_coef_))
    assert clf.score(X, y) == 1.0
    proba = clf.predict_proba(X * 1e6)
    assert np.all(np.isfinite(proba)) and np.all((proba >= 0) & (proba <= 1))


def test_far_away_inputs_give_finite_predictions():
    X, y = _two_regimes()
    est = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    far = np.array([[1e150, -1e150], [-1e300, 1e300], [0.0, 1e200]])
    assert np.all(np.isfinite(est.predict_gate(far)))
