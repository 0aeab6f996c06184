"""Assertions shared by several test modules."""

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning


def assert_em_never_decreases(est, X, y, sample_weight, max_iter, **params):
    """Fit ``max_iter`` EM iterations (no early stop) and check ``lower_bounds_`` never drops."""
    est.set_params(max_iter=max_iter, tol=0.0, **params)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y, sample_weight=sample_weight)
    bounds = est.lower_bounds_
    assert np.all(np.isfinite(bounds))
    slack = 1e-9 * (1.0 + np.abs(bounds[:-1]))
    assert np.all(np.diff(bounds) >= -slack), np.diff(bounds).min()


def every_prediction(est, X, y):
    """Every prediction and scoring method's results on (X, y), by name (the sparse
    routes included)."""
    w = np.linspace(0.5, 2.0, X.shape[0])
    results = {
        "gate": est.predict_gate(X),
        "gate_top2": est.predict_gate(X, top_k=2, return_dropped=True),
        "apply": est.apply(X),
        "score_samples": est.score_samples(X, y),
        "resp": est.predict_responsibilities(X, y),
        "scores": np.array([est.log_likelihood(X, y, w), est.bic(X, y), est.icl(X, y, w)]),
    }
    if hasattr(est, "predict_proba"):
        results.update(
            proba=est.predict_proba(X),
            proba_top1=est.predict_proba(X, top_k=1),
            proba_top2=est.predict_proba(X, top_k=2),
            log_proba=est.predict_log_proba(X),
            labels=est.predict(X),
        )
    else:
        results.update(
            mean=est.predict(X),
            mean_std=est.predict(X, return_std=True),
            mean_top1=est.predict(X, top_k=1),
            mean_std_top2=est.predict(X, return_std=True, top_k=2),
            quantiles=est.predict_quantiles(X, quantiles=(0.05, 0.5, 0.9)),
            experts=est.predict_experts(X),
            sample=est.sample(X, n_samples=3, random_state=0),
        )
    return results


def assert_same_predictions(got, expected, rtol):
    """Two results of ``every_prediction``: labels and leaves equal, numbers to ``rtol``."""
    assert got.keys() == expected.keys()
    for key in expected:
        a, b = got[key], expected[key]
        for x, y in zip(*((a, b) if isinstance(a, tuple) else ((a,), (b,)))):
            if x.dtype.kind in "iuUO":
                np.testing.assert_array_equal(x, y, err_msg=key)
            else:
                np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * 1e-2, err_msg=key)
