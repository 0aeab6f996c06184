"""The guarantees of docs/guarantees.rst, for every public estimator.

- a fit that raises, or is interrupted from inside EM, leaves a fitted estimator as it was;
- the same ``random_state`` gives bit-identical fits from run to run and for any ``n_jobs``;
- pickle and joblib round trips give identical answers from every method;
- EM never lowers the objective, also on degenerate problems (the ordinary property
  tests are in test_em.py and test_hme.py);
- the page lists exactly the bad inputs and degenerate cases the suite tries.
"""

import pickle
import re
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

import skmoe._base
from skmoe._kernels import get_backend

from . import test_degenerate, test_validation
from ._helpers import assert_em_never_decreases
from .test_validation import CLASSIFIERS, ESTIMATORS, METHOD_INPUTS, _call

DOC = Path(__file__).resolve().parents[1] / "docs" / "guarantees.rst"


def _make(Estimator, **params):
    shape = ({"branching": (2, 2)} if Estimator.__name__.startswith("Hierarchical")
             else {"n_experts": 3})
    return Estimator(random_state=0, **{**shape, **params})


def _data(Estimator, n=150, n_features=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    y = np.where(X[:, 0] > 0, 1 + 2 * X[:, -1], -1 - X[:, -1]) + 0.3 * rng.normal(size=n)
    if Estimator in CLASSIFIERS:
        y = np.digitize(y, [-1.0, 1.0])
    return X, y


def _state(est):
    """Every attribute that fit sets (public and private), copied."""
    return {k: pickle.loads(pickle.dumps(v)) for k, v in vars(est).items()
            if k.endswith("_") or k.startswith("_")}


def _assert_identical(a, b, path="state"):
    """Recursively equal: same keys, lengths, dtypes and bits (NaN equal to NaN)."""
    assert type(a) is type(b), path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_identical(a[key], b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (u, v) in enumerate(zip(a, b)):
            _assert_identical(u, v, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert_array_equal(a, b, err_msg=path, strict=True)
    else:
        assert a == b or (a != a and b != b), path


def _assert_same_state(a, b):
    _assert_identical(a, b)


def _answers(est, X, y):
    """The output of every data method (pseudo-random ones seeded)."""
    out = {}
    for method, inputs in METHOD_INPUTS.items():
        if hasattr(est, method):
            if method == "sample":
                out[method] = est.sample(X, n_samples=2, random_state=0)
            else:
                out[method] = _call(est, method, X, y, None)
    out["export_text"] = est.export_text()
    return out


def _assert_same_answers(a, b):
    _assert_identical(a, b, "answers")


# ----------------------------------------------------------------------------------
# A fit that fails or is interrupted changes nothing


class _Interrupt:
    """Wrap ``fn`` so that its ``when``-th call raises ``error`` instead of running."""

    def __init__(self, fn, when, error):
        self.fn, self.when, self.error, self.calls = fn, when, error, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.when:
            raise self.error
        return self.fn(*args, **kwargs)


def _fitted(Estimator, **params):
    X, y = _data(Estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _make(Estimator, max_iter=30, **params).fit(X, y), X, y


@pytest.mark.parametrize("where", ["run_em", "kernel"])
@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_interrupted_fit_changes_nothing(Estimator, warm_start, where, monkeypatch):
    est, X, y = _fitted(Estimator, n_init=3, warm_start=warm_start)
    state, answers = _state(est), _answers(est, X, y)
    # New data with another number of features: validate_data has reset
    # n_features_in_ before EM starts (unless warm starting, which keeps it).
    X_new, y_new = _data(Estimator, n_features=2 if warm_start else 3, seed=1)
    if where == "run_em":  # the third start (or the warm start's only run's first call)
        spy = _Interrupt(skmoe._base.run_em, 1 if warm_start else 3, KeyboardInterrupt())
        monkeypatch.setattr(skmoe._base, "run_em", spy)
    else:  # deep inside EM: the third E-step's posterior kernel
        kernels = get_backend("cpu")
        spy = _Interrupt(kernels.posterior, 3, KeyboardInterrupt())
        monkeypatch.setattr(kernels, "posterior", spy)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X_new, y_new)
    assert spy.calls == spy.when
    monkeypatch.undo()
    _assert_same_state(_state(est), state)
    _assert_same_answers(_answers(est, X, y), answers)
    # And it is still usable: it can be fitted again.
    est.set_params(warm_start=False).fit(X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_failed_fit_changes_nothing(Estimator):
    est, X, y = _fitted(Estimator)
    state, answers = _state(est), _answers(est, X, y)
    bad = X.copy()
    bad[0, 0] = np.nan
    three_columns = np.random.RandomState(1).normal(size=(60, 3))
    # Each fails after validate_data has read the new X (and reset n_features_in_).
    for args in [(bad, y), (three_columns[:2], y[:2]), (X[:1], y[:1]),
                 (X, y, np.zeros(len(y))), (three_columns[:3], y[:2])]:
        with pytest.raises(ValueError):
            est.fit(*args)
        _assert_same_state(_state(est), state)
    _assert_same_answers(_answers(est, X, y), answers)


# ----------------------------------------------------------------------------------
# Determinism and round trips


@pytest.mark.parametrize("init", ["kmeans", "random", "random_from_data", "tree"])
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_same_random_state_same_fit(Estimator, init):
    X, y = _data(Estimator)
    runs = []
    for n_jobs in (None, None, 2):  # twice in a row, then the starts in two processes
        est, _, _ = _fitted(Estimator, n_init=2, init_params=init, n_jobs=n_jobs)
        runs.append((_state(est), _answers(est, X, y)))
    for state, answers in runs[1:]:
        _assert_same_state(state, runs[0][0])
        _assert_same_answers(answers, runs[0][1])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_pickle_and_joblib_round_trips(Estimator, tmp_path):
    est, X, y = _fitted(Estimator)
    expected = _answers(est, X, y)
    again = pickle.loads(pickle.dumps(est))
    _assert_same_answers(_answers(again, X, y), expected)
    joblib.dump(est, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    _assert_same_answers(_answers(loaded, X, y), expected)
    _assert_same_state(_state(loaded), _state(est))


# ----------------------------------------------------------------------------------
# Monotone EM on degenerate problems


def _degenerate_problem(kind, Estimator, seed):
    X, y = _data(Estimator, n=80, seed=seed)
    w = None
    if kind == "repeated points":
        X = np.vstack([X, np.zeros((8, 2))])
        y = np.r_[y, np.full(8, y[0])]
    elif kind == "constant and duplicated columns":
        X = np.column_stack([X, np.full(len(y), 5.0), X[:, 0]])
    elif kind == "scale 1e200":
        X = X * 1e200
        y = y * 1e200 if Estimator not in CLASSIFIERS else y
    elif kind == "scale 1e-200":
        X = X * 1e-200
        y = y * 1e-200 if Estimator not in CLASSIFIERS else y
    elif kind == "zero and extreme weights":
        w = np.random.RandomState(seed).choice([0.0, 1e-100, 1.0, 1e100], size=len(y))
        w[:12] = 1.0
    elif kind == "few samples":
        X, y = X[:12], y[:12]
    if Estimator in CLASSIFIERS and np.unique(y).size < 2:
        y = y.copy()
        y[:2] = [0, 1]
    return X, y, w


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["repeated points", "constant and duplicated columns", "scale 1e200",
                          "scale 1e-200", "zero and extreme weights", "few samples"]),
    Estimator=st.sampled_from(ESTIMATORS),
    solver=st.sampled_from(["newton", "bohning"]),
    init=st.sampled_from(["kmeans", "random", "random_from_data", "tree"]),
    seed=st.integers(0, 2**16),
)
def test_em_never_decreases_on_degenerate_problems(kind, Estimator, solver, init, seed):
    X, y, w = _degenerate_problem(kind, Estimator, seed)
    est = _make(Estimator, reg_gate=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert_em_never_decreases(est, X, y, w, max_iter=20, gate_solver=solver,
                                  init_params=init, random_state=seed)


# ----------------------------------------------------------------------------------
# docs/guarantees.rst lists the registries


def _doc_tables():
    """``{table name: [(first cell, second cell), ...]}`` of the page's list-tables."""
    tables, name, rows = {}, None, None
    for line in DOC.read_text().splitlines():
        if line.startswith(".. list-table::"):
            name, rows = None, []
        elif rows is not None and line.strip().startswith(":name:"):
            name = line.split(":name:")[1].strip()
            tables[name] = rows
        elif rows is not None and line.startswith("   * - "):
            rows.append([line[len("   * - "):].strip()])
        elif rows is not None and line.startswith("     - ") and rows:
            rows[-1].append(line[len("     - "):].strip())
        elif rows is not None and line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
    return {k: [tuple(r) for r in v[1:]] for k, v in tables.items()}  # without headers


def _behaviour(case):
    return case.error.__name__ if case.error is not None else "Supported"


@pytest.mark.parametrize("table, registry", [
    ("fit-inputs", lambda: {c.name: _behaviour(c) for c in test_validation.FIT_CASES}),
    ("method-inputs", lambda: {c.name: _behaviour(c) for c in test_validation.METHOD_CASES}),
    ("hyperparameters", lambda: {
        name: case[1].__name__ for cases in (test_validation.PARAM_CASES,
                                             test_validation.REGRESSOR_PARAM_CASES,
                                             test_validation.HME_PARAM_CASES)
        for name, case in cases.items()}),
    ("degenerate-cases", lambda: dict.fromkeys(test_degenerate.registry_names(), "")),
])
def test_doc_lists_the_registries(table, registry):
    rows = _doc_tables()[table]
    documented = {re.sub(r"``", "", row[0]): row[1] for row in rows}
    expected = registry()
    assert sorted(documented) == sorted(expected)
    for name, behaviour in expected.items():
        # The behaviour column starts with the error class, or says it is supported.
        assert documented[name].startswith(behaviour), (name, documented[name])


def test_registry_totals():
    """The number of distinct bad inputs and degenerate cases tried (reported in the docs)."""
    names = test_validation.registry_names()
    total = sum(len(v) for v in names.values()) + len(test_degenerate.registry_names())
    match = re.search(r"The suite tries (\d+) distinct", DOC.read_text())
    assert match is not None and int(match.group(1)) == total, total
