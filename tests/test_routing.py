"""Sparse routing at prediction: ``top_k`` experts per sample.

The reference is NumPy on the public attributes: sort each row's gate
probabilities (ties to the lower index), keep the ``top_k`` largest,
renormalise, and mix the kept experts' predictions.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp, softmax

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe._kernels import get_backend
from skmoe.datasets import make_piecewise_linear, make_piecewise_logistic


def oracle_route(gate, top_k):
    """Kept experts (n, k), their renormalised weights and the dropped mass."""
    order = np.argsort(-gate, axis=1, kind="stable")[:, :top_k]
    kept = np.take_along_axis(gate, order, axis=1)
    left_out = np.ones(gate.shape, dtype=bool)
    np.put_along_axis(left_out, order, False, axis=1)
    # Summed from the dropped terms (not 1 - kept): small masses keep their precision.
    dropped = np.sum(gate, axis=1, where=left_out)
    return order, kept / kept.sum(axis=1, keepdims=True), dropped


@pytest.fixture(scope="module")
def regression_data():
    X, y = make_piecewise_linear(n_samples=2000, n_features=3, n_regimes=4, noise=0.3,
                                 random_state=0)
    return X, y


@pytest.fixture(scope="module")
def classification_data():
    X, y = make_piecewise_logistic(n_samples=1500, n_features=3, n_regimes=4,
                                   random_state=0)
    return X, y


@pytest.fixture(scope="module", params=["moe", "hme"])
def regressor(request, regression_data):
    X, y = regression_data
    if request.param == "moe":
        est = MixtureOfExpertsRegressor(n_experts=4, random_state=0)
    else:
        est = HierarchicalMixtureOfExpertsRegressor(branching=(2, 3), random_state=0)
    return est.fit(X, y)


@pytest.fixture(scope="module", params=["moe", "hme"])
def classifier(request, classification_data):
    X, y = classification_data
    if request.param == "moe":
        est = MixtureOfExpertsClassifier(n_experts=4, random_state=0)
    else:
        est = HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0)
    return est.fit(X, y)


def n_leaves(est):
    return int(np.prod(est._branching()))


# --------------------------------------------------------------------------
# Regressors


def test_top_k_all_experts_is_the_full_prediction(regressor, regression_data):
    X = regression_data[0]
    K = n_leaves(regressor)
    assert_allclose(regressor.predict(X, top_k=K), regressor.predict(X), rtol=1e-12, atol=1e-12)
    full = regressor.predict(X, return_std=True)
    routed = regressor.predict(X, return_std=True, top_k=K)
    assert_allclose(routed, full, rtol=1e-12, atol=1e-12)
    proba, dropped = regressor.predict_gate(X, top_k=K, return_dropped=True)
    assert_allclose(proba, regressor.predict_gate(X), rtol=1e-12, atol=1e-300)
    assert_array_equal(dropped, 0.0)


def test_top_1_is_the_most_probable_expert(regressor, regression_data):
    X = regression_data[0]
    best = np.argmax(regressor.predict_gate(X), axis=1)
    experts = regressor.predict_experts(X)
    y_pred, y_std = regressor.predict(X, return_std=True, top_k=1)
    assert_allclose(y_pred, experts[np.arange(X.shape[0]), best], rtol=1e-12, atol=1e-12)
    assert_allclose(y_std, np.sqrt(regressor.expert_variance_[best]), rtol=1e-12)


def test_top_k_matches_the_numpy_reference(regressor, regression_data):
    X = regression_data[0]
    gate = regressor.predict_gate(X)
    experts = regressor.predict_experts(X)
    for top_k in range(1, n_leaves(regressor) + 1):
        idx, weight, dropped = oracle_route(gate, top_k)
        means = np.take_along_axis(experts, idx, axis=1)
        mean = np.sum(weight * means, axis=1)
        var = np.sum(weight * (regressor.expert_variance_[idx] + (means - mean[:, None]) ** 2),
                     axis=1)
        y_pred, y_std = regressor.predict(X, return_std=True, top_k=top_k)
        assert_allclose(y_pred, mean, rtol=1e-10, atol=1e-10)
        assert_allclose(y_std, np.sqrt(var), rtol=1e-10)
        assert_allclose(regressor.predict(X, top_k=top_k), y_pred, rtol=1e-14, atol=1e-14)

        proba, got_dropped = regressor.predict_gate(X, top_k=top_k, return_dropped=True)
        assert_allclose(got_dropped, dropped, rtol=1e-9, atol=1e-14)
        expected = np.zeros_like(gate)
        np.put_along_axis(expected, idx, weight, axis=1)
        assert_allclose(proba, expected, rtol=1e-12, atol=1e-300)


def test_dropped_mass_and_error_shrink_with_top_k(regressor, regression_data):
    X = regression_data[0]
    full = regressor.predict(X)
    previous_dropped, previous_error = None, None
    for top_k in range(1, n_leaves(regressor) + 1):
        _, dropped = regressor.predict_gate(X, top_k=top_k, return_dropped=True)
        assert np.all((dropped >= 0) & (dropped <= 1))
        if previous_dropped is not None:
            assert np.all(dropped <= previous_dropped)
        # Leaving out experts of total gate mass d moves the mean by at most
        # d times the largest gap between expert predictions.
        experts = regressor.predict_experts(X)
        gap = experts.max(axis=1) - experts.min(axis=1)
        error = np.abs(regressor.predict(X, top_k=top_k) - full)
        assert np.all(error <= dropped / (1 - dropped) * gap + 1e-10)
        if previous_error is not None:
            assert error.mean() <= previous_error + 1e-12
        previous_dropped, previous_error = dropped, error.mean()


def test_predict_gate_without_top_k_drops_nothing(regressor, regression_data):
    X = regression_data[0]
    proba, dropped = regressor.predict_gate(X, return_dropped=True)
    assert_allclose(proba, regressor.predict_gate(X))
    assert_array_equal(dropped, 0.0)


# --------------------------------------------------------------------------
# Classifiers


def oracle_expert_proba(est, X):
    """Each expert's class probabilities, shape (n, K, C)."""
    logits = np.einsum("ia,kca->ikc", X, est.expert_coef_) + est.expert_intercept_
    return softmax(logits, axis=2)


def test_classifier_top_k_matches_the_numpy_reference(classifier, classification_data):
    X = classification_data[0]
    gate = classifier.predict_gate(X)
    experts = oracle_expert_proba(classifier, X)
    K = n_leaves(classifier)
    for top_k in range(1, K + 1):
        idx, weight, _ = oracle_route(gate, top_k)
        kept = np.take_along_axis(experts, idx[:, :, None], axis=1)
        expected = np.sum(weight[:, :, None] * kept, axis=1)
        proba = classifier.predict_proba(X, top_k=top_k)
        assert_allclose(proba, expected, rtol=1e-10, atol=1e-12)
        assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert_array_equal(classifier.predict(X, top_k=top_k),
                           classifier.classes_[np.argmax(proba, axis=1)])
        # Where a probability is below 1e-300, predict_log_proba recomputes it in log space.
        usable = proba > 1e-300
        assert_allclose(classifier.predict_log_proba(X, top_k=top_k)[usable], np.log(proba[usable]),
                        rtol=1e-12)
    assert_allclose(classifier.predict_proba(X, top_k=K), classifier.predict_proba(X),
                    rtol=1e-12, atol=1e-14)
    best = np.argmax(gate, axis=1)
    assert_allclose(classifier.predict_proba(X, top_k=1), experts[np.arange(X.shape[0]), best],
                    rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------
# The routing kernel and bad arguments


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(1, 30), st.integers(1, 9)),
           elements=st.one_of(st.sampled_from([0.0, -1.0, -np.inf]),
                              st.floats(-50, 5, allow_nan=False))),
    st.integers(1, 9),
)
def test_top_k_gate_kernel_matches_numpy(scores, top_k):
    """Random rows with ties and zero probabilities, normalised to log-probabilities."""
    n, K = scores.shape
    top_k = min(top_k, K)
    scores[np.all(scores == -np.inf, axis=1), 0] = 0.0  # every row needs some mass
    log_weight = scores - logsumexp(scores, axis=1, keepdims=True)
    idx = np.empty((n, top_k), dtype=np.int64)
    weight = np.empty((n, top_k))
    dropped = np.empty(n)
    get_backend("cpu").top_k_gate(log_weight, idx, weight, dropped)
    expected_idx, expected_weight, expected_dropped = oracle_route(np.exp(log_weight), top_k)
    assert_array_equal(idx, expected_idx)
    assert_allclose(weight, expected_weight, rtol=1e-12, atol=1e-300)
    assert_allclose(dropped, expected_dropped, rtol=1e-9, atol=1e-14)
    assert np.all((dropped >= 0) & (dropped <= 1))


@pytest.fixture(scope="module")
def small_models(regression_data, classification_data):
    X, y = regression_data
    Xc, yc = classification_data
    return [
        (MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X[:300], y[:300]), X[:5]),
        (HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0)
         .fit(Xc[:300], yc[:300]), Xc[:5]),
    ]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.integers(max_value=0), st.integers(min_value=5), st.floats(),
                 st.just(True), st.just("2"), st.just([1])))
def test_bad_top_k_raises(small_models, top_k):
    for est, X in small_models:
        with pytest.raises(ValueError, match="top_k should be"):
            est.predict(X, top_k=top_k)
        with pytest.raises(ValueError, match="top_k should be"):
            est.predict_gate(X, top_k=top_k)
        if hasattr(est, "predict_proba"):
            with pytest.raises(ValueError, match="top_k should be"):
                est.predict_proba(X, top_k=top_k)


def test_numpy_integer_top_k_is_accepted(small_models):
    est, X = small_models[0]
    assert_allclose(est.predict(X, top_k=np.int64(2)), est.predict(X, top_k=2))
