"""scikit-learn regressors and classifiers as experts (``expert_estimator``)."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)

from ._helpers import assert_em_never_decreases


def _data(n=400, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2)) * [3.0, 0.5] + [10.0, -2.0]
    regime = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-(X[:, 0] - 10.0)))
    y = np.where(regime, 5.0 + 2.0 * X[:, 1], -1.0 - X[:, 1]) + 0.3 * rng.normal(size=n)
    return X, 100.0 + 10.0 * y


def _fit(est, X, y, w=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, sample_weight=w)


@pytest.mark.parametrize("make", [
    lambda **kw: MixtureOfExpertsRegressor(3, **kw),
    lambda **kw: HierarchicalMixtureOfExpertsRegressor((2, 2), **kw),
], ids=["flat", "hme"])
def test_least_squares_experts_are_the_linear_experts(make):
    """LinearRegression experts fit the weighted least squares of the built-in experts."""
    X, y = _data()
    w = np.random.RandomState(1).uniform(0.5, 2.0, size=y.size)
    common = {"random_state": 0, "tol": 0.0, "max_iter": 25, "reg_expert": 0.0}
    linear = _fit(make(**common), X, y, w)
    estimated = _fit(make(expert_estimator=LinearRegression(), **common), X, y, w)
    assert_allclose(estimated.lower_bounds_, linear.lower_bounds_, rtol=1e-9)
    assert_allclose(estimated.predict(X), linear.predict(X), rtol=1e-9)
    assert_allclose(estimated.expert_variance_, linear.expert_variance_, rtol=1e-8)
    for leaf, expert in enumerate(estimated.experts_):
        assert_allclose(expert.coef_, linear.expert_coef_[leaf], rtol=1e-7, atol=1e-9)
        assert_allclose(expert.intercept_, linear.expert_intercept_[leaf], rtol=1e-8)
    assert not hasattr(estimated, "expert_coef_") and not hasattr(linear, "experts_")


def test_least_squares_experts_never_lower_the_likelihood():
    X, y = _data(200, 2)
    est = MixtureOfExpertsRegressor(3, expert_estimator=LinearRegression(), reg_expert=0.0)
    assert_em_never_decreases(est, X, y, None, max_iter=40, random_state=0)


def test_tree_experts_end_to_end():
    """Every method works and the clones predict on the user's data."""
    X, y = _data()
    est = _fit(MixtureOfExpertsRegressor(
        2, random_state=0, expert_features=[1],
        expert_estimator=DecisionTreeRegressor(max_depth=3, random_state=0)), X, y)
    assert len(est.experts_) == 2 and est.experts_[0] is not est.experts_[1]
    assert_allclose(est.predict_experts(X),
                    np.column_stack([e.predict(X[:, [1]]) for e in est.experts_]))
    mean, std = est.predict(X, return_std=True)
    gate = est.predict_gate(X)
    assert_allclose(mean, np.sum(gate * est.predict_experts(X), axis=1), rtol=1e-10)
    assert np.all(std > 0)
    # top_k = K keeps every expert: the dense answer.
    assert_allclose(est.predict(X, top_k=2), mean, rtol=1e-12)
    routed = est.predict(X, top_k=1)
    best = np.argmax(gate, axis=1)
    assert_allclose(routed, est.predict_experts(X)[np.arange(len(y)), best], rtol=1e-12)
    for out in (est.predict_quantiles(X), est.predict_interval(X), est.sample(X, 2),
                est.score_samples(X, y), est.predict_responsibilities(X, y)):
        assert np.all(np.isfinite(out))
    assert np.isfinite(est.log_likelihood(X, y))
    # As the linear experts on the expert column (0.54): the regimes overlap.
    assert est.score(X, y) > 0.5
    assert "DecisionTreeRegressor(max_depth=3" in est.export_text()
    again = pickle.loads(pickle.dumps(est))
    assert_allclose(again.predict(X), mean)
    assert clone(est).get_params()["expert_estimator"] is not est.expert_estimator


def test_tree_experts_beat_linear_experts_on_steps():
    """Piecewise-constant regimes: trees as experts fit what lines cannot."""
    rng = np.random.RandomState(3)
    X = rng.uniform(-2, 2, size=(600, 2))
    y = np.where(X[:, 0] > 0, np.floor(2 * X[:, 1]), -np.floor(2 * X[:, 1]))
    y = y + 0.05 * rng.normal(size=600)
    tree = _fit(MixtureOfExpertsRegressor(2, random_state=0, expert_estimator=DecisionTreeRegressor(
        max_depth=4, random_state=0)), X, y)
    linear = _fit(MixtureOfExpertsRegressor(2, random_state=0), X, y)
    # Unexplained variance: trees at the noise (0.001 of Var y), lines 25 times that.
    assert 1 - tree.score(X, y) < 0.2 * (1 - linear.score(X, y))


def test_least_squares_experts_weights_are_repeats():
    """scikit-learn's weight-equivalence check, with experts continuous in their weights."""
    check_sample_weight_equivalence_on_dense_data(
        "moe", MixtureOfExpertsRegressor(2, random_state=0, max_iter=50,
                                         expert_estimator=LinearRegression()))


def test_unseeded_experts_are_seeded_by_their_leaf():
    """A fit is reproducible even when the expert's random_state is left None."""
    X, y = _data(200)
    est = MixtureOfExpertsRegressor(2, random_state=0, expert_estimator=DecisionTreeRegressor(
        max_depth=3, max_features=1))
    first, second = _fit(clone(est), X, y), _fit(clone(est), X, y)
    assert_allclose(first.lower_bounds_, second.lower_bounds_, rtol=0)
    assert [e.random_state for e in first.experts_] == [0, 1]
    assert est.expert_estimator.random_state is None  # the parameter is left alone


def test_switching_expert_kinds_leaves_no_stale_attribute():
    X, y = _data(150)
    est = _fit(MixtureOfExpertsRegressor(2, random_state=0), X, y)
    assert hasattr(est, "expert_coef_")
    _fit(est.set_params(expert_estimator=DecisionTreeRegressor(max_depth=2)), X, y)
    assert hasattr(est, "experts_") and not hasattr(est, "expert_coef_")
    _fit(est.set_params(expert_estimator=None), X, y)
    assert hasattr(est, "expert_coef_") and not hasattr(est, "experts_")


def test_what_is_not_defined_says_so():
    X, y = _data(150)
    est = _fit(MixtureOfExpertsRegressor(2, random_state=0,
                                         expert_estimator=LinearRegression()), X, y)
    for method in (est.n_parameters, lambda: est.bic(X, y), lambda: est.aic(X, y),
                   lambda: est.icl(X, y)):
        with pytest.raises(ValueError, match="not defined for expert_estimator"):
            method()
    with pytest.raises(ValueError, match="not defined for expert_estimator"):
        est.standard_errors(X, y)


def test_unusable_estimators_are_rejected_before_fitting():
    X, y = _data(100)
    with pytest.raises(ValueError, match="must accept sample_weight.*KNeighborsRegressor"):
        MixtureOfExpertsRegressor(2, expert_estimator=KNeighborsRegressor()).fit(X, y)
    with pytest.raises(ValueError, match='use backend="cpu"'):
        MixtureOfExpertsRegressor(2, expert_estimator=LinearRegression(),
                                  backend="cuda").fit(X, y)
    with pytest.raises(ValueError, match="expert_estimator"):
        MixtureOfExpertsRegressor(2, expert_estimator="tree").fit(X, y)


# --------------------------------------------------------------------------
# Classifiers


def _rings(n=600, seed=4):
    """Two regimes split by x0; in each, the class depends on |x1| (no line separates it)."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    inner = np.abs(X[:, 1]) < 0.7
    y = np.where(X[:, 0] > 0, inner, ~inner).astype(int)
    flip = rng.uniform(size=n) < 0.05
    return X, np.where(flip ^ (y == 1), "b", "a")


@pytest.mark.parametrize("make", [
    lambda **kw: MixtureOfExpertsClassifier(2, **kw),
    lambda **kw: HierarchicalMixtureOfExpertsClassifier((2, 2), **kw),
], ids=["flat", "hme"])
def test_tree_classifier_experts_end_to_end(make):
    X, y = _rings()
    est = _fit(make(random_state=0, expert_estimator=DecisionTreeClassifier(
        max_depth=3, random_state=0)), X, y)
    assert est.score(X, y) > 0.9  # 5 % of the labels are flipped
    if isinstance(est, MixtureOfExpertsClassifier):
        # Two logistic experts cannot draw the bands (four, in a tree of gates, can).
        assert _fit(make(random_state=0), X, y).score(X, y) < 0.9
    proba = est.predict_proba(X)
    # The mixture of the clones' probabilities, which are over class indices.
    experts = np.stack([e.predict_proba(X) for e in est.experts_], axis=1)
    assert all(list(e.classes_) == [0, 1] for e in est.experts_)
    expected = np.einsum("il,ilc->ic", est.predict_gate(X), np.maximum(experts, 2.2e-308))
    assert_allclose(proba, expected / expected.sum(axis=1, keepdims=True), rtol=1e-9,
                    atol=1e-12)
    K = len(est.experts_)
    assert_allclose(est.predict_proba(X, top_k=K), proba, rtol=1e-12, atol=1e-15)
    top = np.argmax(est.predict_gate(X), axis=1)
    assert_allclose(est.predict_proba(X, top_k=1)[:, 1],
                    np.maximum(experts[np.arange(len(y)), top, 1], 2.2e-308)
                    / np.maximum(experts[np.arange(len(y)), top], 2.2e-308).sum(axis=1),
                    rtol=1e-9)
    log_proba = est.predict_log_proba(X)
    assert np.all(np.isfinite(log_proba)) and np.all(log_proba <= 0)
    assert set(est.predict(X)) <= {"a", "b"}
    for out in (est.score_samples(X, y), est.predict_responsibilities(X, y)):
        assert np.all(np.isfinite(out))
    assert "DecisionTreeClassifier(max_depth=3" in est.export_text()
    with pytest.raises(ValueError, match="not defined for expert_estimator"):
        est.bic(X, y)
    assert_allclose(pickle.loads(pickle.dumps(est)).predict_proba(X), proba)


def test_classifier_experts_need_sample_weight_and_probabilities():
    X, y = _rings(100)
    with pytest.raises(ValueError, match="must accept sample_weight.*KNeighborsClassifier"):
        MixtureOfExpertsClassifier(2, expert_estimator=KNeighborsClassifier()).fit(X, y)
    with pytest.raises(ValueError, match="expert_estimator"):
        MixtureOfExpertsClassifier(2, expert_estimator=LinearRegression()).fit(X, y)


def test_the_best_iterate_is_kept_when_em_ends_lower():
    """Tree experts can lower the likelihood: the fit returns the best parameters seen."""
    X, y = _data(300, 4)
    est = MixtureOfExpertsRegressor(2, random_state=0, max_iter=40, tol=0.0,
                                    expert_estimator=DecisionTreeRegressor(max_depth=3))
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    bounds = est.lower_bounds_
    assert bounds.shape == (est.n_iter_ + 1,)
    assert est.lower_bound_ == bounds[-1] == bounds.max()
    # The parameters are those of that bound (up to the tiny gate ridge).
    assert_allclose(est.log_likelihood(X, y), est.lower_bound_, rtol=1e-6)
    # All 40 iterations ran (tol=0): the best came before the last, so EM ended lower
    # and the kept iterate was returned.
    assert est.n_iter_ < 40
