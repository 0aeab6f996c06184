"""Standard errors: the observed information against finite differences and closed forms."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe._inference import observed_information

from .reference import finite_difference_hessian


def _theta(est):
    """The fitted free parameters in the user's units, in ``parameter_names`` order."""
    values = []
    gate_coef, gate_intercept = est.gate_coef_, est.gate_intercept_
    if not isinstance(gate_coef, list):
        gate_coef, gate_intercept = [gate_coef[None]], [gate_intercept[None]]
    for coef, intercept in zip(gate_coef, gate_intercept):
        for v in range(coef.shape[0]):
            for j in range(1, coef.shape[1]):
                values += [intercept[v, j], *coef[v, j]]
    for leaf in range(est.expert_coef_.shape[0]):
        if hasattr(est, "expert_variance_"):
            values += [est.expert_intercept_[leaf], *est.expert_coef_[leaf],
                       est.expert_variance_[leaf]]
        else:
            for c in range(1, len(est.classes_)):
                values += [est.expert_intercept_[leaf, c], *est.expert_coef_[leaf, c]]
    return np.array(values)


def _smooth_regression(n, seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    gate = 1.0 / (1.0 + np.exp(-1.5 * X[:, 0]))
    expert = rng.uniform(size=n) < gate
    y = np.where(expert, 1.0 + 2.0 * X[:, 1], -1.0 - X[:, 1] + 0.5 * X[:, 0])
    y += np.where(expert, 0.4, 0.7) * rng.normal(size=n)
    return X, y


def _fit(est, X, y, w=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, sample_weight=w)


# name: (estimator, classifier)
CASES = {
    "flat regressor": (lambda: MixtureOfExpertsRegressor(2, random_state=0, reg_gate=0.0,
                                                        reg_expert=0.0), False),
    "flat regressor, feature subsets": (lambda: MixtureOfExpertsRegressor(
        2, random_state=0, gate_features=[0], expert_features=[1], reg_gate=0.0,
        reg_expert=0.0), False),
    "HME regressor": (lambda: HierarchicalMixtureOfExpertsRegressor(
        branching=(2, 2), random_state=0, reg_gate=0.0, reg_expert=0.0, max_iter=300), False),
    "flat classifier, 3 classes": (lambda: MixtureOfExpertsClassifier(
        2, random_state=0, reg_gate=0.0, reg_expert=0.0), True),
    # Without a ridge, four experts for three classes on 300 samples separate (their
    # coefficients diverge). Louis' identity holds at any parameters, not only at
    # the unpenalised maximum, so the check stands with one.
    "HME classifier": (lambda: HierarchicalMixtureOfExpertsClassifier(
        branching=(2, 2), random_state=0, reg_gate=0.01, reg_expert=0.01), True),
}


@pytest.mark.parametrize("case", CASES)
def test_information_and_covariance_match_finite_differences(case):
    make, classifier = CASES[case]
    X, y = _smooth_regression(300, 0)
    if classifier:
        y = np.digitize(y, [-0.5, 1.0])
    w = np.random.RandomState(1).uniform(0.5, 2.0, size=y.size)
    est = _fit(make(), X, y, w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every parameter is identified here
        result = est.standard_errors(X, y, sample_weight=w)
    # The information of the standardised fit is J^T (-H) J for the user's units' H.
    hessian = _information_against_finite_differences(est, X, y, w)
    assert not result.unidentified.any()
    reference = np.linalg.inv(-hessian)
    scale = np.sqrt(np.outer(np.diag(reference), np.diag(reference)))
    np.testing.assert_allclose(result.covariance / scale, reference / scale, atol=2e-4)
    # The standard errors are the covariance's diagonal, shaped like the attributes.
    se = np.sqrt(np.diag(result.covariance))
    np.testing.assert_allclose(_theta_shaped(est, result), se, rtol=1e-12)
    np.testing.assert_array_equal(result.estimates, _theta(est))


def _information_against_finite_differences(est, X, y, w):
    """Assert ``observed_information`` equals ``J^T (-H) J`` for the user-units Hessian H."""
    names = est._parameter_jacobian()[1]
    hessian = finite_difference_hessian(_theta(est), names, X, y, w,
                                        classes=getattr(est, "classes_", None))
    problem = est._problem_for(X, y, w)
    model = est._model()
    information = observed_information(model, est._params, problem)
    jacobian, _ = est._parameter_jacobian()
    expected = -jacobian.T @ hessian @ jacobian
    scale = np.sqrt(np.outer(np.abs(np.diag(expected)), np.abs(np.diag(expected)))) + 1e-12
    # Central differences of the log-likelihood are good to about 1e-6 of the
    # information's largest entries, which a direction of tiny curvature (a
    # scaled diagonal of 0.003 against 14, hypothesis' seed 1309) inherits.
    difference_error = 1e-6 * np.abs(expected).max()
    excess = np.abs(information - expected) - (1e-4 * scale + difference_error)
    assert excess.max() <= 0, (np.unravel_index(excess.argmax(), excess.shape),
                               information, expected)
    return hessian


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    n_samples=st.integers(40, 120),
    n_features=st.integers(1, 2),
    shape=st.sampled_from([(1,), (2,), (3,), (2, 2)]),
    classifier=st.booleans(),
    weighted=st.booleans(),
    max_iter=st.integers(0, 5),
)
@example(seed=1309, n_samples=76, n_features=2, shape=(2, 2), classifier=False,
         weighted=False, max_iter=0)  # a direction of tiny curvature
def test_louis_identity_holds_at_any_parameters(seed, n_samples, n_features, shape, classifier,
                                                weighted, max_iter):
    """Louis' identity is exact away from a maximum too: unconverged fits, any shape."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, n_features)) * rng.uniform(0.5, 3.0, size=n_features)
    y = X[:, 0] * np.sign(X[:, -1]) + 0.5 * rng.normal(size=n_samples)
    w = rng.uniform(0.2, 3.0, size=n_samples) if weighted else None
    common = {"random_state": seed, "max_iter": max_iter, "reg_gate": 0.1, "reg_expert": 0.1}
    if classifier:
        y = np.digitize(y, [-0.5, 0.5])
        if np.unique(y).size < 2:
            y[:2] = [0, 1]
        est = (HierarchicalMixtureOfExpertsClassifier(branching=shape, **common) if len(shape) > 1
               else MixtureOfExpertsClassifier(shape[0], **common))
    else:
        est = (HierarchicalMixtureOfExpertsRegressor(branching=shape, **common) if len(shape) > 1
               else MixtureOfExpertsRegressor(shape[0], **common))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, sample_weight=w)
    _information_against_finite_differences(est, X, y, np.ones(n_samples) if w is None else w)


def _theta_shaped(est, result):
    """The Bunch's standard-error arrays flattened in ``parameter_names`` order."""
    class View:
        pass

    view = View()
    view.gate_coef_, view.gate_intercept_ = result.gate_coef, result.gate_intercept
    view.expert_coef_, view.expert_intercept_ = result.expert_coef, result.expert_intercept
    if hasattr(est, "classes_"):
        view.classes_ = est.classes_
    else:
        view.expert_variance_ = result.expert_variance
    return _theta(view)


def test_one_expert_gives_the_least_squares_standard_errors():
    """K = 1 is linear regression: sigma^2 (X^T W X)^-1 with the MLE variance, and 2 sigma^4 / n."""
    rng = np.random.RandomState(3)
    X = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    y = X @ [1.0, -0.2, 3.0] + 0.5 + rng.normal(size=200)
    est = MixtureOfExpertsRegressor(1, reg_expert=0.0).fit(X, y)
    result = est.standard_errors(X, y)
    Xd = np.hstack([np.ones((200, 1)), X])
    beta, *_ = np.linalg.lstsq(Xd, y, rcond=None)
    sigma2 = np.mean((y - Xd @ beta) ** 2)
    cov = sigma2 * np.linalg.inv(Xd.T @ Xd)
    np.testing.assert_allclose(result.expert_intercept, [np.sqrt(cov[0, 0])], rtol=1e-8)
    np.testing.assert_allclose(result.expert_coef[0], np.sqrt(np.diag(cov)[1:]), rtol=1e-8)
    np.testing.assert_allclose(result.expert_variance, [sigma2 * np.sqrt(2.0 / 200)], rtol=1e-8)
    assert result.gate_coef.shape == (1, 3) and not result.gate_coef.any()


def test_weights_count_as_repeated_samples():
    X, y = _smooth_regression(150, 4)
    est = _fit(MixtureOfExpertsRegressor(2, random_state=0), X, y, np.full(150, 2.0))
    weighted = est.standard_errors(X, y, sample_weight=np.full(150, 2.0))
    repeated = est.standard_errors(np.vstack([X, X]), np.concatenate([y, y]))
    np.testing.assert_allclose(weighted.covariance, repeated.covariance, rtol=1e-9, atol=1e-14)


def test_reference_children_are_exact_zeros():
    X, y = _smooth_regression(200, 5)
    est = _fit(MixtureOfExpertsRegressor(3, random_state=0), X, y)
    result = est.standard_errors(X, y)
    assert result.gate_coef.shape == est.gate_coef_.shape
    assert not result.gate_coef[0].any() and result.gate_intercept[0] == 0.0
    assert np.all(result.gate_coef[1:] > 0)
    assert len(result.parameter_names) == result.covariance.shape[0] == est.n_parameters()


def test_constant_column_is_unidentified_and_leaves_the_rest_exact():
    X, y = _smooth_regression(300, 6)
    est = _fit(MixtureOfExpertsRegressor(2, random_state=0, reg_gate=0.0), X, y)
    X_const = np.hstack([X, np.full((300, 1), 7.0)])
    est_const = _fit(MixtureOfExpertsRegressor(2, random_state=0, reg_gate=0.0), X_const, y)
    with pytest.warns(UserWarning, match="carry no information"):
        result = est_const.standard_errors(X_const, y)
    assert np.all(np.isinf(result.gate_coef[1:, 2])) and np.all(np.isinf(result.expert_coef[:, 2]))
    plain = est.standard_errors(X, y)
    # The constant column's coefficients are 0 in the fit, so the model is the same.
    np.testing.assert_allclose(result.gate_coef[:, :2], plain.gate_coef, rtol=1e-5)
    np.testing.assert_allclose(result.expert_coef[:, :2], plain.expert_coef, rtol=1e-5)
    np.testing.assert_allclose(result.expert_intercept, plain.expert_intercept, rtol=1e-5)


def test_collapsed_experts_are_held_fixed():
    """A collapsed expert's frozen parameters get inf; the rest is conditional on them."""
    X, y = _smooth_regression(300, 7)
    est = _fit(MixtureOfExpertsRegressor(2, random_state=0), X, y)
    full = est.standard_errors(X, y)
    est.collapsed_experts_ = np.array([1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # frozen parameters are expected, not warned about
        held = est.standard_errors(X, y)
    assert np.all(np.isinf(held.expert_coef[1])) and np.isinf(held.expert_variance[1])
    assert np.all(np.isfinite(held.expert_coef[0])) and np.all(np.isfinite(held.gate_coef))
    # Holding a parameter fixed can only shrink the others' variances.
    assert np.all(held.expert_coef[0] <= full.expert_coef[0] * (1 + 1e-12))
    assert np.all(held.gate_coef <= full.gate_coef * (1 + 1e-12))


def test_overflowing_information_is_a_clear_error():
    """A row far outside the training data, weighted in: no float holds the information."""
    X, y = _smooth_regression(200, 8)
    est = _fit(MixtureOfExpertsRegressor(2, random_state=0), X, y)
    X_far = np.vstack([X, [[1e300, 1e300]]])
    with pytest.raises(ValueError, match="information overflows"):
        est.standard_errors(X_far, np.append(y, 1e300))
