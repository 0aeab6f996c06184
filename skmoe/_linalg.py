"""Small dense solves on the host, shared by every backend.

The systems are tiny (p x p or (b-1) p x (b-1) p) and solved several times per
EM iteration, so LAPACK's ``potrf``/``potrs`` are called directly: the same
routines and numbers as ``scipy.linalg.cho_factor``/``cho_solve``, without
their per-call checks and conversions, which cost more than the solve itself.
"""

import numpy as np
from scipy import linalg

_POTRF, _POTRS = linalg.get_lapack_funcs(("potrf", "potrs"), (np.zeros(0),))


def cholesky(A):
    """Upper Cholesky factor of a symmetric ``A``, or None if it is not positive definite.

    Parameters
    ----------
    A : ndarray of shape (d, d)
        Only its upper triangle is read.

    Returns
    -------
    factor : ndarray of shape (d, d) or None
        For :func:`cho_solve`; its strict lower triangle is left undefined.
    """
    factor, info = _POTRF(A, lower=False, overwrite_a=False, clean=False)
    return factor if info == 0 else None


def cho_solve(factor, b):
    """Solve ``A x = b`` from the factor of :func:`cholesky`.

    Parameters
    ----------
    factor : ndarray of shape (d, d)
    b : ndarray of shape (d,) or (d, m)

    Returns
    -------
    x : ndarray of the shape of b
    """
    x, _ = _POTRS(factor, b, lower=False, overwrite_b=False)
    return x


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
    jitter = 0.0
    for _ in range(12):
        factor = cholesky(A + jitter * np.eye(A.shape[0]) if jitter else A)
        x = None if factor is None else cho_solve(factor, b)
        if x is not None and np.all(np.isfinite(x)):
            return x
        if jitter:
            jitter *= 100.0
        else:
            jitter = max(float(np.mean(np.abs(np.diag(A)))), np.finfo(float).tiny) * 1e-12
    return np.linalg.lstsq(A, b, rcond=None)[0]
