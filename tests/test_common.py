"""scikit-learn's estimator checks on every public estimator."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import is_classifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)

ESTIMATORS = [
    MixtureOfExpertsRegressor(n_experts=2, random_state=0, max_iter=50),
    MixtureOfExpertsClassifier(n_experts=2, random_state=0, max_iter=50),
    HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), random_state=0, max_iter=50),
    HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0, max_iter=50),
    # CART seeding treats a weight of 2 exactly as a repeated row, so these
    # pass the weight-equivalence check that k-means seeding cannot (below).
    MixtureOfExpertsClassifier(n_experts=2, random_state=0, max_iter=50, init_params="tree"),
    HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0, max_iter=50,
                                           init_params="tree"),
    # scikit-learn estimators as experts: the clones take part in every check.
    MixtureOfExpertsRegressor(n_experts=2, random_state=0, max_iter=20,
                              expert_estimator=DecisionTreeRegressor(max_depth=2,
                                                                     random_state=0)),
    MixtureOfExpertsClassifier(n_experts=2, random_state=0, max_iter=20,
                               expert_estimator=DecisionTreeClassifier(max_depth=2,
                                                                       random_state=0)),
]


_NEEDS_Y = (
    "score_samples(X, y) is the log predictive density of y given x, so it needs y; the "
    "check calls score_samples(X). The same invariance is tested for every method, "
    "score_samples(X, y) included, in test_methods_are_sample_order_and_subset_invariant."
)


def _expected_failed_checks(estimator):
    expected = {
        "check_methods_sample_order_invariance": _NEEDS_Y,
        "check_methods_subset_invariance": _NEEDS_Y,
    }
    if getattr(estimator, "expert_estimator", None) is not None:
        return {
            **expected,
            "check_sample_weight_equivalence_on_dense_data": (
                "A decision tree's splits jump with its weights: a weight of 2 and a "
                "repeated row give responsibilities equal to rounding, and a rounding-level "
                "difference in the weighted sums of a near-tie flips a split of an expert. "
                "With LinearRegression experts, which are continuous in their weights, "
                "the check passes (tests/test_estimator_experts.py)."
            ),
        }
    classifiers = (MixtureOfExpertsClassifier, HierarchicalMixtureOfExpertsClassifier)
    if isinstance(estimator, classifiers) and estimator.init_params == "kmeans":
        return {
            **expected,
            "check_sample_weight_equivalence_on_dense_data": (
                "k-means++ seeding draws its centres from different arrays for weighted "
                "and repeated rows, so EM starts elsewhere; the check's 3-class data are "
                "separable, the likelihood keeps rising along several directions, and "
                "fits from different starts differ in their probabilities at about 1e-4. "
                "With init_params='tree' the fits are identical (tested)."
            )
        }
    return expected


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS[:4], ids=lambda e: type(e).__name__)
def test_methods_are_sample_order_and_subset_invariant(estimator):
    """What scikit-learn's two invariance checks test, with score_samples given y."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3))
    y = X[:, 0] + np.where(X[:, 1] > 0, 1.0, -1.0) + 0.1 * rng.normal(size=120)
    if is_classifier(estimator):
        y = (y > 0).astype(int)
    estimator.fit(X, y)
    methods = {name: getattr(estimator, name) for name in
               ("predict", "predict_proba", "predict_gate", "apply") if hasattr(estimator, name)}
    methods["score_samples"] = lambda X_, idx: estimator.score_samples(X_, y[idx])
    order = rng.permutation(X.shape[0])
    subset = np.arange(0, X.shape[0], 3)
    for name, method in methods.items():
        call = method if name == "score_samples" else (lambda X_, idx, m=method: m(X_))
        full = call(X, np.arange(X.shape[0]))
        assert_allclose(call(X[order], order), full[order], rtol=1e-12, atol=1e-12,
                        err_msg=name)
        assert_allclose(call(X[subset], subset), full[subset], rtol=1e-12, atol=1e-12,
                        err_msg=name)
