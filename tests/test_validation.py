"""Bad input gets a clear scikit-learn-style error and changes nothing."""

import re

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from sklearn.utils._param_validation import InvalidParameterError

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)

ESTIMATORS = [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier,
              HierarchicalMixtureOfExpertsRegressor, HierarchicalMixtureOfExpertsClassifier]
CLASSIFIERS = (MixtureOfExpertsClassifier, HierarchicalMixtureOfExpertsClassifier)


def _data(Estimator, n=60, n_features=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    if Estimator in CLASSIFIERS:
        y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    else:
        y = X[:, 0] + 0.1 * rng.normal(size=n)
    return X, y


@settings(max_examples=20, deadline=None)
@given(
    which=st.sampled_from(["X", "y", "X_predict"]),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    position=st.integers(0, 59),
    estimator=st.integers(0, len(ESTIMATORS) - 1),
)
def test_non_finite_input_is_rejected(which, value, position, estimator):
    Estimator = ESTIMATORS[estimator]
    X, y = _data(Estimator)
    est = Estimator(max_iter=5, random_state=0)
    if which == "X_predict":
        est.fit(X, y)
        X = X.copy()
        X[position, 1] = value
        with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
            est.predict(X)
        return
    if which == "X":
        X = X.copy()
        X[position, 0] = value
        pattern = "Input X contains (NaN|infinity)"
    else:
        y = y.astype(float)
        y[position] = value
        pattern = "Input y contains (NaN|infinity)|Unknown label type"
    with pytest.raises(ValueError, match=pattern):
        est.fit(X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_wrong_shapes(Estimator):
    X, y = _data(Estimator)
    est = Estimator(max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="Expected 2D array"):
        est.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="Found array with 0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="minimum of 2 is required"):
        est.fit(X[:1], y[:1])
    with pytest.raises(ValueError, match="y should be a 1d array"):
        est.fit(X, np.column_stack([y, y]))
    est.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 2 features"):
        est.predict(np.ones((4, 3)))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_sparse_input_is_rejected(Estimator):
    X, y = _data(Estimator)
    with pytest.raises(TypeError, match="Sparse data was passed"):
        Estimator(max_iter=5).fit(sp.csr_matrix(X), y)


@pytest.mark.parametrize("Estimator, n_ok", [
    (MixtureOfExpertsRegressor, 6), (MixtureOfExpertsClassifier, 3),
    (HierarchicalMixtureOfExpertsRegressor, 6), (HierarchicalMixtureOfExpertsClassifier, 3),
])
def test_too_few_samples_for_the_experts(Estimator, n_ok):
    X, y = _data(Estimator, n=40)
    y = y.copy()
    if Estimator in CLASSIFIERS:
        y[: n_ok - 1] = [0, 1][: n_ok - 1] + [0] * max(0, n_ok - 3)
    shape = (3,) if Estimator.__name__.startswith("Hierarchical") else 3
    message = re.escape(f"Too few samples for 3 experts: got {n_ok - 1} samples")
    with pytest.raises(ValueError, match=message):
        Estimator(shape).fit(X[: n_ok - 1], y[: n_ok - 1])
    weights = np.zeros(40)
    weights[: n_ok - 1] = 1.0
    with pytest.raises(ValueError, match=message):
        Estimator(shape).fit(X, y, sample_weight=weights)
    Estimator(shape, max_iter=5, random_state=0).fit(X[:n_ok], y[:n_ok])


@pytest.mark.parametrize("Classifier", CLASSIFIERS)
def test_single_class(Classifier):
    X, _ = _data(Classifier)
    with pytest.raises(ValueError, match="only one class: 'a'"):
        Classifier().fit(X, np.full(len(X), "a"))


def test_continuous_labels_and_unseen_labels():
    X, y = _data(MixtureOfExpertsRegressor)
    with pytest.raises(ValueError, match="Unknown label type"):
        MixtureOfExpertsClassifier().fit(X, y)
    Xc, yc = _data(MixtureOfExpertsClassifier)
    clf = MixtureOfExpertsClassifier(max_iter=5, random_state=0).fit(Xc, yc)
    with pytest.raises(ValueError, match=re.escape("labels not seen during fit: [7]")):
        clf.predict_responsibilities(Xc[:3], [0, 1, 7])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "weights, error, pattern",
    [
        (lambda n: -np.ones(n), ValueError, "Negative values in data passed to `sample_weight`"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "contains NaN"),
        (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, "contains infinity"),
        (lambda n: np.zeros(n), ValueError,
         "(sample_weight has no positive entry|at least one non-zero)"),
        (lambda n: np.ones(n - 1), ValueError, r"sample_weight.shape == \(59,\)"),
    ],
)
def test_bad_sample_weight(Estimator, weights, error, pattern):
    X, y = _data(Estimator)
    with pytest.raises(error, match=pattern):
        Estimator(max_iter=5).fit(X, y, sample_weight=weights(len(y)))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "params",
    [
        {"n_experts": 0}, {"n_experts": 1.5}, {"tol": -1.0}, {"max_iter": -1}, {"n_init": 0},
        {"gate_solver": "lbfgs"}, {"init_params": "k-means++"}, {"reg_gate": -1e-3},
        {"reg_expert": -1.0}, {"backend": "tpu"}, {"verbose_interval": 0},
        {"warm_start": "yes"}, {"random_state": "seed"},
    ],
)
def test_invalid_hyperparameters(Estimator, params):
    X, y = _data(Estimator)
    if "n_experts" in params and Estimator.__name__.startswith("Hierarchical"):
        params = {"branching": params["n_experts"]}
    with pytest.raises(InvalidParameterError, match=f"The '{next(iter(params))}' parameter"):
        Estimator(**params).fit(X, y)


def test_invalid_min_variance():
    X, y = _data(MixtureOfExpertsRegressor)
    with pytest.raises(InvalidParameterError, match="'min_variance' parameter"):
        MixtureOfExpertsRegressor(min_variance=0.0).fit(X, y)


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ([2], r"distinct column indices in \[0, 2\)"),
        ([0, 0], "distinct column indices"),
        ([-1], "distinct column indices"),
        ([True], r"shape of \(2,\) as a boolean mask"),
        ([0.5], "should be None, a boolean mask"),
        (["a"], "names columns, but X has no feature names"),
    ],
)
def test_invalid_feature_selection(spec, pattern):
    X, y = _data(MixtureOfExpertsRegressor)
    with pytest.raises(ValueError, match=pattern):
        MixtureOfExpertsRegressor(gate_features=spec).fit(X, y)
    with pytest.raises(ValueError, match=pattern):
        MixtureOfExpertsRegressor(expert_features=spec).fit(X, y)


def test_unknown_column_name():
    X, y = _data(MixtureOfExpertsRegressor)
    frame = pd.DataFrame(X, columns=["a", "b"])
    with pytest.raises(ValueError, match=re.escape("unknown columns ['c']")):
        MixtureOfExpertsRegressor(gate_features=["c"]).fit(frame, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_failed_fit_leaves_fitted_estimator_unchanged(Estimator):
    X, y = _data(Estimator)
    est = Estimator(max_iter=20, random_state=0).fit(X, y)
    before = est.predict(X)
    state = {k: v for k, v in vars(est).items() if k.endswith("_")}
    bad = X.copy()
    bad[0, 0] = np.nan
    # Each of these fails after validate_data has read the new X.
    three_columns = np.random.RandomState(1).normal(size=(60, 3))
    for args in [(bad, y), (three_columns[:3], y[:3]),
                 (X[:1], y[:1])]:
        with pytest.raises(ValueError):
            est.fit(*args)
        assert est.n_features_in_ == 2
        assert_array_equal(est.predict(X), before)
    for key, value in state.items():
        if isinstance(value, list):  # an HME's gates, one array per level
            for got, expected in zip(getattr(est, key), value, strict=True):
                assert_array_equal(got, expected)
        else:
            assert_array_equal(getattr(est, key), value)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_predict_before_fit(Estimator):
    X, _ = _data(Estimator)
    with pytest.raises(Exception, match="not fitted yet"):
        Estimator().predict(X)
