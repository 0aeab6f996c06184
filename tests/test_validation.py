"""Bad input: every public estimator and method gives a clear error, or works.

Each distinct bad input is one named entry of a registry: ``FIT_CASES`` (data given to
``fit``), ``METHOD_CASES`` (data given to a fitted estimator's methods) and
``PARAM_CASES`` (hyperparameters). Parametrised tests run every entry on every
estimator and method it applies to; an entry either names the error and the words of its
message, or says that the input is supported and checks the result.
``test_registry_sizes`` keeps the counts from shrinking, and ``tests/test_guarantees.py``
checks that ``docs/guarantees.rst`` lists the same names.
"""

import functools
import re
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import DataConversionWarning, NotFittedError
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
REGRESSORS = (MixtureOfExpertsRegressor, HierarchicalMixtureOfExpertsRegressor)
N = 60

# Every public method that takes data, and what it takes: X only, (X, y) or (X, y, w).
METHOD_INPUTS = {
    "predict": "X", "predict_proba": "X", "predict_log_proba": "X", "predict_gate": "X",
    "predict_experts": "X", "apply": "X", "predict_quantiles": "X",
    "predict_interval": "X", "sample": "X",
    "predict_responsibilities": "Xy", "score_samples": "Xy",
    "score": "Xyw", "log_likelihood": "Xyw", "bic": "Xyw", "aic": "Xyw", "icl": "Xyw",
    "standard_errors": "Xyw",
}
# Public methods that take no data (or are scikit-learn's own machinery).
NO_DATA_METHODS = {"fit", "get_params", "set_params", "get_metadata_routing", "export_text",
                   "n_parameters"}


def _data(Estimator, n=N, n_features=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    if Estimator in CLASSIFIERS:
        y = (X[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    else:
        y = X[:, 0] + 0.1 * rng.normal(size=n)
    return X, y


def _small(Estimator, **params):
    """A small, fast, seeded instance (3 experts for either shape)."""
    hierarchical = Estimator.__name__.startswith("Hierarchical")
    shape = {"branching": (3,)} if hierarchical else {"n_experts": 3}
    return Estimator(max_iter=20, random_state=0, **{**shape, **params})


@functools.lru_cache(maxsize=None)
def _fitted(Estimator):
    """One fitted estimator per class, shared by the method cases (never modified)."""
    X, y = _data(Estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _small(Estimator).fit(X, y)


def _call(est, method, X, y, w):
    inputs = METHOD_INPUTS[method]
    if inputs == "X":
        return getattr(est, method)(X)
    if inputs == "Xy":
        return getattr(est, method)(X, y)
    out = getattr(est, method)(X, y, sample_weight=w)
    # Of the standard errors, the covariance: finite, where an unidentified
    # parameter's standard error is inf by design (with a warning).
    return out.covariance if method == "standard_errors" else out


def _assert_finite_outputs(est, X, y=None):
    """Every data method of a fitted estimator gives finite values of the right shape."""
    for method, inputs in METHOD_INPUTS.items():
        if not hasattr(est, method) or (inputs != "X" and y is None):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # feature-name notices
            out = _call(est, method, X, y, None)
        out = np.asarray(out)
        if method == "predict" and est.__class__ in CLASSIFIERS:
            assert set(out) <= set(est.classes_)
            continue
        assert np.all(np.isfinite(out.astype(float))), method


@dataclass(frozen=True)
class Case:
    """One distinct bad input.

    ``mutate(X, y, w, Estimator)`` returns the inputs to use. ``error`` and ``match``
    give the expected exception and a regex of its message; ``error=None`` means the
    input is supported and ``check(est, X, y, w)`` verifies the result.
    """

    name: str
    mutate: Callable
    error: type = None
    match: str = None
    check: Callable = None
    applies: Callable = lambda Estimator: True
    # Method cases: the input they change ("X": every method; "y" or "w": the methods
    # taking it), and optionally an explicit list of methods.
    target: str = "X"
    methods: tuple = None


def _with(X=None, y=None, w=None):
    """A mutation that replaces some of (X, y, w) by functions of the originals."""
    def mutate(X0, y0, w0, Estimator):
        return (X(X0, y0, Estimator) if X else X0, y(X0, y0, Estimator) if y else y0,
                w(X0, y0, Estimator) if w else w0)
    return mutate


def _set(array, index, value, dtype=float):
    out = np.array(array, dtype=dtype)
    out[index] = value
    return out


def _frame(X, **extra):
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1]})
    for name, column in extra.items():
        frame[name] = column
    return frame


is_classifier = CLASSIFIERS.__contains__
is_regressor = REGRESSORS.__contains__

# ----------------------------------------------------------------------------------
# Data given to fit

_NAN_X = ValueError, "Input X contains NaN"
_INF_X = ValueError, "Input X contains infinity"
_NON_NUMERIC = ValueError, r"X has (categorical|non-numeric) \[.*\] columns; skmoe models numeric"


def _same_as_plain_fit(est, X, y, w):
    """A supported input gives the predictions of the plain float array."""
    X0, y0 = _data(est.__class__)
    plain = _small(est.__class__).fit(X0, y0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # fitted with feature names
        assert_allclose(est.predict_gate(X0), plain.predict_gate(X0), rtol=1e-10, atol=1e-12)


def _labels_round_trip(labels):
    """Check that fitted classes are the sorted distinct labels and predictions use them."""
    def check(est, X, y, w):
        assert_array_equal(est.classes_, np.unique(labels))
        assert est.classes_.dtype == np.asarray(labels).dtype
        predicted = est.predict(X)
        assert predicted.dtype == est.classes_.dtype
        assert set(predicted) <= set(labels)
        assert est.score(X, y) > 0.8
        # Relabelling is a bijection: same probabilities as with labels 0..c-1.
        codes = np.searchsorted(np.unique(labels), y)
        plain = _small(est.__class__).fit(X, codes)
        assert_allclose(est.predict_proba(X), plain.predict_proba(X), rtol=1e-10, atol=1e-12)
    return check


def _relabel(labels):
    """Labels ``labels[k]``: of the base classes, or (three) of thresholds on column 0."""
    return _with(y=lambda X, y, E: np.asarray(labels)[(X[:, 0] > -0.5).astype(int)
                                                       + (X[:, 0] > 0.5).astype(int)]
                 if len(labels) == 3 else np.asarray(labels)[y])


def _finite_fit(est, X, y, w):
    assert np.isfinite(est.lower_bound_)
    _assert_finite_outputs(est, np.asarray(X, dtype=float), y)


def _zero_weights_are_dropped(est, X, y, w):
    """Rows of zero weight change nothing in an evaluation, and the fit stays finite."""
    kept = w > 0
    assert_allclose(est.log_likelihood(X, y, sample_weight=w),
                    est.log_likelihood(X[kept], y[kept]), rtol=1e-12)
    _finite_fit(est, X[kept], y[kept], None)


def _column_vector_y(est, X, y, w):
    X0, y0 = _data(est.__class__)
    plain = _small(est.__class__).fit(X0, y0)
    assert_allclose(est.predict_gate(X0), plain.predict_gate(X0), rtol=1e-12)


FIT_CASES = [
    Case("NaN in X", _with(X=lambda X, y, E: _set(X, (5, 1), np.nan)), *_NAN_X),
    Case("+inf in X", _with(X=lambda X, y, E: _set(X, (7, 0), np.inf)), *_INF_X),
    Case("-inf in X", _with(X=lambda X, y, E: _set(X, (9, 1), -np.inf)), *_INF_X),
    Case("X of magnitude 1e300", _with(X=lambda X, y, E: X * 1e300), check=_finite_fit),
    Case("NaN in y", _with(y=lambda X, y, E: _set(y, 3, np.nan)), ValueError,
         "Input y contains NaN"),
    Case("inf in y", _with(y=lambda X, y, E: _set(y, 3, np.inf)), ValueError,
         "Input y contains infinity"),
    Case("y is None", _with(y=lambda X, y, E: None), ValueError,
         "requires y to be passed, but the target y is None"),
    Case("1-d X", _with(X=lambda X, y, E: X[:, 0]), ValueError, "Expected 2D array"),
    Case("3-d X", _with(X=lambda X, y, E: X[:, :, None]), ValueError,
         "Found array with dim 3"),
    Case("X with no columns", _with(X=lambda X, y, E: X[:, :0]), ValueError,
         r"0 feature\(s\) .* while a minimum of 1 is required"),
    Case("empty input", _with(X=lambda X, y, E: X[:0], y=lambda X, y, E: y[:0]), ValueError,
         "Found array with 0 sample"),
    Case("one sample", _with(X=lambda X, y, E: X[:1], y=lambda X, y, E: y[:1]), ValueError,
         "minimum of 2 is required"),
    Case("X and y of different lengths", _with(y=lambda X, y, E: y[:-1]), ValueError,
         "inconsistent numbers of samples"),
    Case("multi-output y", _with(y=lambda X, y, E: np.column_stack([y, y])), ValueError,
         "y should be a 1d array"),
    Case("column-vector y of shape (n, 1)", _with(y=lambda X, y, E: y[:, None]),
         check=_column_vector_y),
    Case("sparse X (CSR)", _with(X=lambda X, y, E: sp.csr_matrix(X)), TypeError,
         "Sparse data was passed"),
    Case("sparse X (CSC)", _with(X=lambda X, y, E: sp.csc_matrix(X)), TypeError,
         "Sparse data was passed"),
    Case("complex X", _with(X=lambda X, y, E: X + 1j), ValueError, "Complex data not supported"),
    Case("array of strings as X", _with(X=lambda X, y, E: X.astype(str).astype(object)
                                        + "x"), ValueError, "could not convert string to float"),
    Case("DataFrame with a categorical column",
         _with(X=lambda X, y, E: _frame(X, c=pd.Categorical(np.where(y > 0, "u", "v")))),
         *_NON_NUMERIC),
    Case("DataFrame with a categorical column of numbers",
         _with(X=lambda X, y, E: _frame(X, c=pd.Categorical((y > 0).astype(int)))),
         *_NON_NUMERIC),
    Case("DataFrame with an object column of strings",
         _with(X=lambda X, y, E: _frame(X, c=np.where(y > 0, "u", "v").astype(object))),
         *_NON_NUMERIC),
    Case("DataFrame with a pandas string column",
         _with(X=lambda X, y, E: _frame(X, c=pd.array(np.where(y > 0, "u", "v"),
                                                      dtype="string"))),
         *_NON_NUMERIC),
    Case("DataFrame with a datetime column",
         _with(X=lambda X, y, E: _frame(X, c=pd.date_range("2000", periods=len(X)))),
         *_NON_NUMERIC),
    Case("DataFrame with a missing value in a nullable integer column",
         _with(X=lambda X, y, E: _frame(X, c=pd.array([1] * (len(X) - 1) + [None],
                                                      dtype="Int64"))), *_NAN_X),
    Case("DataFrame with an object column of numbers",
         _with(X=lambda X, y, E: _frame(X).astype({"b": object})), check=_same_as_plain_fit),
    Case("DataFrame with nullable Float64 columns",
         _with(X=lambda X, y, E: _frame(X).astype("Float64")), check=_same_as_plain_fit),
    Case("list of lists", _with(X=lambda X, y, E: X.tolist()), check=_same_as_plain_fit),
    Case("float32 X", _with(X=lambda X, y, E: X.astype(np.float32)), check=_finite_fit),
    Case("integer X", _with(X=lambda X, y, E: np.round(4 * X).astype(np.int64)),
         check=_finite_fit),
    Case("boolean X column", _with(X=lambda X, y, E: np.column_stack([X, X[:, 0] > 0])),
         check=_finite_fit),
    Case("too few samples for the experts",
         _with(X=lambda X, y, E: X[:5 if is_regressor(E) else 2],
               y=lambda X, y, E: y[:5] if is_regressor(E) else np.array([0, 1])),
         ValueError, r"Too few samples for 3 experts: got (5|2) samples with positive weight"),
    Case("too few samples of positive weight",
         _with(w=lambda X, y, E: _set(np.zeros(len(y)), [0, 30], 1.0)), ValueError,
         r"Too few samples for 3 experts: got 2 samples with positive weight"),
    Case("exactly the samples the experts need",
         _with(X=lambda X, y, E: X[np.r_[0:6, 30:32]][:6 if is_regressor(E) else 3],
               y=lambda X, y, E: (y[np.r_[0:6]] if is_regressor(E) else np.array([0, 1, 0]))),
         check=_finite_fit),
    Case("fewer samples than parameters",
         _with(X=lambda X, y, E: np.random.RandomState(3).normal(size=(8, 20)),
               y=lambda X, y, E: y[:8] if is_regressor(E) else np.array([0, 1] * 4)),
         check=_finite_fit),
    Case("single class", _with(y=lambda X, y, E: np.full(len(y), "a")), ValueError,
         "only one class: 'a'", applies=is_classifier),
    Case("continuous target for a classifier", _with(y=lambda X, y, E: X[:, 1]), ValueError,
         "Unknown label type: continuous", applies=is_classifier),
    Case("labels of mixed types",
         _with(y=lambda X, y, E: np.array(["a", 1], dtype=object)[y]), ValueError,
         r"y mixes labels of types \['int', 'str'\]", applies=is_classifier),
    Case("string labels", _relabel(["no", "yes"]), check=_labels_round_trip(["no", "yes"]),
         applies=is_classifier),
    Case("boolean labels", _relabel(np.array([False, True])),
         check=_labels_round_trip(np.array([False, True])), applies=is_classifier),
    Case("negative integer labels", _relabel([-7, -2, 3]),
         check=_labels_round_trip(np.array([-7, -2, 3])), applies=is_classifier),
    Case("non-contiguous integer labels", _relabel([0, 5, 17]),
         check=_labels_round_trip(np.array([0, 5, 17])), applies=is_classifier),
    Case("integral float labels", _relabel(np.array([1.0, 2.0])),
         check=_labels_round_trip(np.array([1.0, 2.0])), applies=is_classifier),
    Case("a class present only at zero weight",
         _with(y=lambda X, y, E: _set(y, 0, 2, dtype=int),
               w=lambda X, y, E: _set(np.ones(len(y)), 0, 0.0)),
         check=lambda est, X, y, w: (assert_array_equal(est.classes_, [0, 1, 2]),
                                     _finite_fit(est, X, y, w)), applies=is_classifier),
    Case("string target for a regressor", _with(y=lambda X, y, E: np.where(y > 0, "u", "v")),
         ValueError, "needs a numeric target y; got dtype <U1", applies=is_regressor),
    Case("boolean target for a regressor", _with(y=lambda X, y, E: y > 0), check=_finite_fit,
         applies=is_regressor),
    Case("negative sample_weight", _with(w=lambda X, y, E: _set(np.ones(len(y)), 4, -1.0)),
         ValueError, "Negative values in data passed to `sample_weight`"),
    Case("NaN in sample_weight", _with(w=lambda X, y, E: _set(np.ones(len(y)), 4, np.nan)),
         ValueError, "sample_weight contains NaN"),
    Case("inf in sample_weight", _with(w=lambda X, y, E: _set(np.ones(len(y)), 4, np.inf)),
         ValueError, "sample_weight contains infinity"),
    Case("all-zero sample_weight", _with(w=lambda X, y, E: np.zeros(len(y))), ValueError,
         "(sample_weight has no positive entry|at least one non-zero)"),
    Case("sample_weight of the wrong length", _with(w=lambda X, y, E: np.ones(len(y) - 1)),
         ValueError, r"sample_weight.shape == \(59,\)"),
    Case("2-d sample_weight", _with(w=lambda X, y, E: np.ones((len(y), 1))), ValueError,
         "Sample weights must be 1D array or scalar"),
    Case("sample_weight of strings", _with(w=lambda X, y, E: np.full(len(y), "a")),
         ValueError, "could not convert string to float"),
    Case("sample_weight whose sum overflows",
         _with(w=lambda X, y, E: np.full(len(y), 1e307)), ValueError,
         "The sum of sample_weight overflows"),
    Case("some zero sample_weight", _with(w=lambda X, y, E: (np.arange(len(y)) % 3 > 0)
                                          .astype(float)), check=_zero_weights_are_dropped),
    Case("scalar sample_weight", _with(w=lambda X, y, E: 2.5), check=_finite_fit),
    Case("tiny sample_weight (1e-300)", _with(w=lambda X, y, E: np.full(len(y), 1e-300)),
         check=_finite_fit),
]


def _fit_params():
    for case in FIT_CASES:
        for Estimator in ESTIMATORS:
            if case.applies(Estimator):
                yield pytest.param(case, Estimator, id=f"{case.name}-{Estimator.__name__}")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("case, Estimator", list(_fit_params()))
def test_fit_input(case, Estimator):
    X, y = _data(Estimator)
    X, y, w = case.mutate(X, y, None, Estimator)
    est = _small(Estimator)
    if case.error is not None:
        with pytest.raises(case.error, match=case.match):
            est.fit(X, y, sample_weight=w)
        assert not hasattr(est, "n_features_in_")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataConversionWarning)
        est.fit(X, y, sample_weight=w)
    case.check(est, X, y, w)


# ----------------------------------------------------------------------------------
# Data given to a fitted estimator's methods


def _unseen_label(X, y, Estimator):
    return _set(y, 2, 7, dtype=int)


def _one_row_works(est, method, X, y, w):
    out = np.asarray(_call(est, method, X, y, w))
    assert out.shape[:1] in [(1,), ()]
    if method != "predict" or not is_classifier(est.__class__):
        assert np.all(np.isfinite(out.astype(float)))


def _numbers_as_objects_work(est, method, X, y, w):
    expected = _call(est, method, np.asarray(X, dtype=float), y, w)
    assert_array_equal(np.asarray(_call(est, method, X, y, w)), np.asarray(expected))


def _evaluation_ignores_zero_weights(est, method, X, y, w):
    kept = w > 0
    if method == "score":  # a weighted mean: the same with or without those rows
        assert_allclose(est.score(X, y, w), est.score(X[kept], y[kept]), rtol=1e-12)
    else:
        assert_allclose(_call(est, method, X, y, w),
                        _call(est, method, X[kept], y[kept], None), rtol=1e-12)


METHOD_CASES = [
    Case("NaN in X", _with(X=lambda X, y, E: _set(X, (2, 0), np.nan)), *_NAN_X),
    Case("+inf in X", _with(X=lambda X, y, E: _set(X, (2, 1), np.inf)), *_INF_X),
    Case("-inf in X", _with(X=lambda X, y, E: _set(X, (2, 1), -np.inf)), *_INF_X),
    Case("1-d X", _with(X=lambda X, y, E: X[0]), ValueError, "Expected 2D array"),
    Case("3-d X", _with(X=lambda X, y, E: X[:, :, None]), ValueError, "Found array with dim 3"),
    Case("empty X", _with(X=lambda X, y, E: X[:0], y=lambda X, y, E: y[:0],
                          w=lambda X, y, E: np.ones(0)), ValueError,
         "Found array with 0 sample"),
    Case("different number of features than in fit",
         _with(X=lambda X, y, E: np.column_stack([X, X[:, 0]])), ValueError,
         "X has 3 features, but .* is expecting 2 features"),
    Case("sparse X", _with(X=lambda X, y, E: sp.csr_matrix(X)), TypeError,
         "Sparse data was passed"),
    Case("complex X", _with(X=lambda X, y, E: X + 1j), ValueError, "Complex data not supported"),
    Case("DataFrame with a categorical column",
         _with(X=lambda X, y, E: _frame(X).astype({"b": "category"})), *_NON_NUMERIC),
    Case("DataFrame with an object column of strings",
         _with(X=lambda X, y, E: _frame(X).astype({"b": str}).astype({"b": object})
               .assign(b=lambda f: f.b + "x")), *_NON_NUMERIC),
    Case("object array of numbers", _with(X=lambda X, y, E: X.astype(object)),
         check=_numbers_as_objects_work),
    Case("one sample", _with(X=lambda X, y, E: X[:1], y=lambda X, y, E: y[:1],
                             w=lambda X, y, E: np.ones(1)), check=_one_row_works,
         # scikit-learn's R^2 is undefined (NaN, with a warning) for one sample.
         methods=tuple(m for m in METHOD_INPUTS if m != "score")),
    Case("NaN in y", _with(y=lambda X, y, E: _set(y, 4, np.nan)), ValueError,
         "(Input )?(y |y_true )?contains NaN", target="y"),
    Case("inf in y", _with(y=lambda X, y, E: _set(y, 4, np.inf)), ValueError,
         "(Input )?(y |y_true )?contains (infinity|NaN)", target="y"),
    Case("X and y of different lengths", _with(y=lambda X, y, E: y[:-1]), ValueError,
         "inconsistent numbers of samples", target="y"),
    Case("multi-output y", _with(y=lambda X, y, E: np.column_stack([y, y])), ValueError,
         "(y should be a 1d array|different number of output|can't handle a mix)",
         target="y"),
    Case("label not seen in fit", _with(y=_unseen_label), ValueError,
         re.escape("labels not seen during fit: [7]"), applies=is_classifier, target="y",
         # score is accuracy: an unseen label is simply a wrong prediction there.
         methods=("predict_responsibilities", "score_samples", "log_likelihood", "bic",
                  "aic", "icl", "standard_errors")),
    Case("string target for a regressor", _with(y=lambda X, y, E: np.full(len(y), "u")),
         ValueError, "(needs a numeric target y|could not convert string to float)",
         applies=is_regressor, target="y"),
    Case("negative sample_weight", _with(w=lambda X, y, E: _set(np.ones(len(y)), 1, -2.0)),
         ValueError, "Negative values in data passed to `sample_weight`", target="w"),
    Case("NaN in sample_weight", _with(w=lambda X, y, E: _set(np.ones(len(y)), 1, np.nan)),
         ValueError, "sample_weight contains NaN", target="w"),
    Case("all-zero sample_weight", _with(w=lambda X, y, E: np.zeros(len(y))), ValueError,
         "at least one non-zero", target="w"),
    Case("sample_weight of the wrong length", _with(w=lambda X, y, E: np.ones(len(y) + 1)),
         ValueError, r"(sample_weight.shape ==|inconsistent numbers of samples)", target="w"),
    Case("sample_weight whose sum overflows", _with(w=lambda X, y, E: np.full(len(y), 1e307)),
         ValueError, "The sum of sample_weight overflows", target="w"),
    Case("some zero sample_weight", _with(w=lambda X, y, E: (np.arange(len(y)) % 4 > 0)
                                          .astype(float)),
         check=_evaluation_ignores_zero_weights, target="w"),
]


def _method_params():
    for case in METHOD_CASES:
        for Estimator in ESTIMATORS:
            if not case.applies(Estimator):
                continue
            for method, inputs in METHOD_INPUTS.items():
                if not hasattr(Estimator, method) or case.target not in inputs.lower():
                    continue
                if case.methods is not None and method not in case.methods:
                    continue
                yield pytest.param(case, Estimator, method,
                                   id=f"{case.name}-{Estimator.__name__}-{method}")


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("case, Estimator, method", list(_method_params()))
def test_method_input(case, Estimator, method):
    est = _fitted(Estimator)
    X, y = _data(Estimator, seed=1)
    X, y, w = case.mutate(X, y, np.ones(len(y)), Estimator)
    if case.error is not None:
        with pytest.raises(case.error, match=case.match):
            _call(est, method, X, y, w)
        return
    case.check(est, method, X, y, w)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_every_data_method_is_covered(Estimator):
    """A new public method taking data must join ``METHOD_INPUTS`` (and the cases)."""
    est = _fitted(Estimator)
    public = {name for name in dir(est) if not name.startswith("_")
              and callable(getattr(est, name)) and not re.fullmatch(r"set_\w+_request", name)}
    assert public - NO_DATA_METHODS <= set(METHOD_INPUTS), public - NO_DATA_METHODS


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_methods_before_fit(Estimator):
    X, y = _data(Estimator)
    est = _small(Estimator)
    for method in METHOD_INPUTS:
        if hasattr(est, method):
            with pytest.raises(NotFittedError, match="not fitted yet"):
                _call(est, method, X, y, None)


def test_feature_names_must_match():
    X, y = _data(MixtureOfExpertsRegressor)
    est = _small(MixtureOfExpertsRegressor).fit(_frame(X), y)
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(_frame(X).rename(columns={"b": "c"}))
    with pytest.raises(ValueError, match="feature names should match"):
        est.log_likelihood(_frame(X)[["b", "a"]], y)


# ----------------------------------------------------------------------------------
# Hyperparameters

PARAM_CASES = {
    # name: (parameters, error class, message regex); "n_experts" becomes "branching"
    # for the hierarchical estimators.
    "n_experts = 0": ({"n_experts": 0}, InvalidParameterError, "'n_experts' parameter"),
    "n_experts = 1.5": ({"n_experts": 1.5}, InvalidParameterError, "'n_experts' parameter"),
    "n_experts a string": ({"n_experts": "2"}, InvalidParameterError, "'n_experts' parameter"),
    "tol < 0": ({"tol": -1.0}, InvalidParameterError, "'tol' parameter"),
    "tol NaN": ({"tol": np.nan}, InvalidParameterError, "'tol' parameter"),
    "max_iter < 0": ({"max_iter": -1}, InvalidParameterError, "'max_iter' parameter"),
    "max_iter not an integer": ({"max_iter": 2.5}, InvalidParameterError,
                                "'max_iter' parameter"),
    "n_init = 0": ({"n_init": 0}, InvalidParameterError, "'n_init' parameter"),
    "unknown gate_solver": ({"gate_solver": "lbfgs"}, InvalidParameterError,
                            "'gate_solver' parameter"),
    "unknown init_params": ({"init_params": "k-means++"}, InvalidParameterError,
                            "'init_params' parameter"),
    "reg_gate < 0": ({"reg_gate": -1e-3}, InvalidParameterError, "'reg_gate' parameter"),
    "reg_gate infinite": ({"reg_gate": np.inf}, InvalidParameterError, "'reg_gate' parameter"),
    "reg_expert < 0": ({"reg_expert": -1.0}, InvalidParameterError, "'reg_expert' parameter"),
    "reg_expert NaN": ({"reg_expert": np.nan}, InvalidParameterError,
                       "'reg_expert' parameter"),
    "unknown backend": ({"backend": "tpu"}, InvalidParameterError, "'backend' parameter"),
    "verbose_interval = 0": ({"verbose_interval": 0}, InvalidParameterError,
                             "'verbose_interval' parameter"),
    "warm_start not a boolean": ({"warm_start": "yes"}, InvalidParameterError,
                                 "'warm_start' parameter"),
    "random_state a string": ({"random_state": "seed"}, InvalidParameterError,
                              "'random_state' parameter"),
    "n_jobs a string": ({"n_jobs": "all"}, InvalidParameterError, "'n_jobs' parameter"),
    "n_jobs a float": ({"n_jobs": 1.5}, InvalidParameterError, "'n_jobs' parameter"),
    "gate_features index out of range": ({"gate_features": [2]}, ValueError,
                                         r"distinct column indices in \[0, 2\)"),
    "gate_features repeated index": ({"gate_features": [0, 0]}, ValueError,
                                     "distinct column indices"),
    "gate_features negative index": ({"gate_features": [-1]}, ValueError,
                                     "distinct column indices"),
    "gate_features mask of the wrong length": ({"gate_features": [True]}, ValueError,
                                               r"shape of \(2,\) as a boolean mask"),
    "gate_features floats": ({"gate_features": [0.5]}, ValueError,
                             "should be None, a boolean mask"),
    "gate_features names without a DataFrame": ({"gate_features": ["a"]}, ValueError,
                                                "names columns, but X has no feature names"),
    "expert_features index out of range": ({"expert_features": [5]}, ValueError,
                                           "distinct column indices"),
    "expert_features 2-d": ({"expert_features": [[0, 1]]}, ValueError,
                            "should be None, a boolean mask"),
}
REGRESSOR_PARAM_CASES = {
    "min_variance = 0": ({"min_variance": 0.0}, InvalidParameterError,
                         "'min_variance' parameter"),
    "min_variance below eps**2": ({"min_variance": 1e-40}, InvalidParameterError,
                                  "'min_variance' parameter"),
    "min_variance infinite": ({"min_variance": np.inf}, InvalidParameterError,
                              "'min_variance' parameter"),
}
HME_PARAM_CASES = {
    "branching empty": ({"branching": ()}, ValueError, "branching should be a non-empty"),
    "branching with a 1 below the root": ({"branching": (1, 2)}, ValueError,
                                          "branching should be a non-empty"),
    "branching with a 0": ({"branching": (2, 0)}, ValueError,
                           "branching should be a non-empty"),
    "branching with a float": ({"branching": (2.5,)}, ValueError,
                               "branching should be a non-empty"),
    "branching with a boolean": ({"branching": [True, 2]}, ValueError,
                                 "branching should be a non-empty"),
    "branching a string": ({"branching": "ab"}, InvalidParameterError,
                           "'branching' parameter"),
    "branching an integer": ({"branching": 4}, InvalidParameterError,
                             "'branching' parameter"),
}


def _param_params():
    for name, (params, error, match) in PARAM_CASES.items():
        for Estimator in ESTIMATORS:
            if "n_experts" in params and Estimator.__name__.startswith("Hierarchical"):
                params_e = {"branching": params["n_experts"]}
                match_e = (match.replace("n_experts", "branching")
                           if error is InvalidParameterError else match)
                if params["n_experts"] == 0:  # a sequence is expected: 0 is not one
                    match_e = "'branching' parameter"
                yield pytest.param(params_e, error, match_e, Estimator,
                                   id=f"{name}-{Estimator.__name__}")
            else:
                yield pytest.param(params, error, match, Estimator,
                                   id=f"{name}-{Estimator.__name__}")
    for name, (params, error, match) in REGRESSOR_PARAM_CASES.items():
        for Estimator in REGRESSORS:
            yield pytest.param(params, error, match, Estimator, id=f"{name}-{Estimator.__name__}")
    for name, (params, error, match) in HME_PARAM_CASES.items():
        for Estimator in (HierarchicalMixtureOfExpertsRegressor,
                          HierarchicalMixtureOfExpertsClassifier):
            yield pytest.param(params, error, match, Estimator, id=f"{name}-{Estimator.__name__}")


@pytest.mark.parametrize("params, error, match, Estimator", list(_param_params()))
def test_invalid_hyperparameters(params, error, match, Estimator):
    X, y = _data(Estimator)
    with pytest.raises(error, match=match):
        Estimator(**params).fit(X, y)


def test_unknown_column_name():
    X, y = _data(MixtureOfExpertsRegressor)
    with pytest.raises(ValueError, match=re.escape("unknown columns ['c']")):
        MixtureOfExpertsRegressor(gate_features=["c"]).fit(_frame(X), y)


# ----------------------------------------------------------------------------------
# Random bad inputs (hypothesis)

_ESTIMATOR_INDEX = st.integers(0, len(ESTIMATORS) - 1)


@settings(max_examples=25, deadline=None)
@given(
    which=st.sampled_from(["X", "y", "X_predict"]),
    value=st.sampled_from([np.nan, np.inf, -np.inf]),
    position=st.integers(0, N - 1),
    column=st.integers(0, 1),
    estimator=_ESTIMATOR_INDEX,
)
def test_non_finite_value_anywhere_is_rejected(which, value, position, column, estimator):
    Estimator = ESTIMATORS[estimator]
    X, y = _data(Estimator)
    if which == "X_predict":
        X = _set(X, (position, column), value)
        with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
            _fitted(Estimator).predict(X)
        return
    if which == "X":
        X = _set(X, (position, column), value)
        pattern = "Input X contains (NaN|infinity)"
    else:
        y = _set(y, position, value)
        pattern = "Input y contains (NaN|infinity)|Unknown label type"
    with pytest.raises(ValueError, match=pattern):
        _small(Estimator).fit(X, y)


@settings(max_examples=25, deadline=None)
@given(n_features=st.integers(1, 6).filter(lambda p: p != 2), n_rows=st.integers(1, 5),
       estimator=_ESTIMATOR_INDEX, method=st.sampled_from(sorted(METHOD_INPUTS)))
def test_wrong_number_of_features_is_rejected(n_features, n_rows, estimator, method):
    Estimator = ESTIMATORS[estimator]
    est = _fitted(Estimator)
    if not hasattr(est, method):
        return
    X = np.zeros((n_rows, n_features))
    y = np.zeros(n_rows, dtype=int)
    with pytest.raises(ValueError, match=f"X has {n_features} features, but .* expecting 2"):
        _call(est, method, X, y, np.ones(n_rows))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    weights=st.lists(st.floats(0.0, 1e3), min_size=N, max_size=N),
    bad=st.sampled_from([None, -1.0, -1e-300, np.nan, np.inf]),
    position=st.integers(0, N - 1),
    estimator=_ESTIMATOR_INDEX,
)
def test_random_sample_weights(weights, bad, position, estimator):
    """Any non-negative finite weights with enough positive entries fit; any bad entry raises."""
    Estimator = ESTIMATORS[estimator]
    X, y = _data(Estimator)
    w = np.array(weights)
    est = _small(Estimator)
    if bad is not None:
        w[position] = bad
        with pytest.raises(ValueError, match="sample_weight|Negative values"):
            est.fit(X, y, sample_weight=w)
        return
    needed = 3 * (2 if Estimator in REGRESSORS else 1)
    kept = w > 0
    if np.count_nonzero(kept) < needed:
        with pytest.raises(ValueError,
                           match="Too few samples|no positive entry|at least one non-zero"):
            est.fit(X, y, sample_weight=w)
        return
    if Estimator in CLASSIFIERS and np.unique(y[kept]).size < 2:
        y = y.copy()
        y[np.flatnonzero(kept)[0]] = 1 - y[np.flatnonzero(kept)[0]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, sample_weight=w)
    assert np.all(np.isfinite(est.lower_bounds_))
    _assert_finite_outputs(est, X, y)


# ----------------------------------------------------------------------------------
# The registry's size

# Distinct bad inputs tried; raise a floor when cases are added, never lower it.
FLOORS = {"fit": 57, "method": 25, "hyperparameter": 38}


def registry_names():
    """Names of every registered bad input, by registry (read by test_guarantees)."""
    return {
        "fit": [case.name for case in FIT_CASES],
        "method": [case.name for case in METHOD_CASES],
        "hyperparameter": (list(PARAM_CASES) + list(REGRESSOR_PARAM_CASES)
                           + list(HME_PARAM_CASES)),
    }


def test_registry_sizes():
    names = registry_names()
    for registry, floor in FLOORS.items():
        assert len(set(names[registry])) == len(names[registry]), registry  # no duplicates
        assert len(names[registry]) >= floor, (registry, len(names[registry]))
