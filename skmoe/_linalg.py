"""Small dense solves on the host, shared by every backend."""

import numpy as np
from scipy import linalg


def solve_psd(A, b):
    """Solve ``A x = b`` for a symmetric positive semi-definite ``A``.

    A singular or indefinite ``A`` (a collapsed expert, a constant column, a
    saturated gate) gets a growing multiple of its mean diagonal added until the
    Cholesky factorisation succeeds, so the result is always finite.

    Parameters
    ----------
    A : ndarray of shape (d, d)
    b : ndarray of shape (d,) or (d, m)

    Returns
    -------
    x : ndarray of the shape of b
    """
    scale = max(float(np.mean(np.abs(np.diag(A)))), np.finfo(float).tiny)
    jitter = 0.0
    for _ in range(12):
        try:
            factor = linalg.cho_factor(A + jitter * np.eye(A.shape[0]), check_finite=False)
            x = linalg.cho_solve(factor, b, check_finite=False)
        except linalg.LinAlgError:
            x = None
        if x is not None and np.all(np.isfinite(x)):
            return x
        jitter = scale * 1e-12 if jitter == 0.0 else jitter * 100.0
    return np.linalg.lstsq(A, b, rcond=None)[0]
