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
