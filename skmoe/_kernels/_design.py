"""Column scaling and standardised designs on the host: the preparation of a fit.

``weighted_scaling`` and ``standardised_design`` are the CPU backend's (a GPU
backend has its own, on the data it holds); :func:`scaling_from_moments`
combines the row groups' moments of either. Each function makes one or two
passes over X in row groups on the thread pool, with serial ``nogil`` Numba
per group, instead of the half-dozen NumPy passes and X-sized temporaries
the same arithmetic takes with whole-array operations (at n = 1e7 that
preparation took longer than the EM iterations on a GPU). Sums are combined
in group order, so the results do not depend on the number of threads.
"""

import math

import numpy as np
from numba import njit

from .. import _config
from ._pool import _map_groups

# No C-callable (cfunc) wrapper: nothing calls these through a pointer (see cpu.py).
_jit = njit(cache=_config.NUMBA_CACHE, nogil=True, no_cfunc_wrapper=True)

# Rows per block when rows are assigned to their nearest centre.
BLOCK_ROWS = 2048


@_jit
def _finite_rows(X, start, stop):
    for i in range(start, stop):
        for j in range(X.shape[1]):
            if not math.isfinite(X[i, j]):
                return False
    return True


def all_finite(X):
    """Whether every entry of a 2-D float array is finite, in one pass on the thread pool.

    scikit-learn's check is a NumPy sum on one thread: at n = 1e7, p = 20 it
    took 0.10 s of a fit's preparation on a 2-core Xeon.
    """
    return all(_map_groups(X.shape[0], lambda start, stop: _finite_rows(X, start, stop)))


@_jit
def _group_moments(X, w, start, stop, high, low, unit_mean, unit_m2):
    """One row group's range, weight, mean and squared deviations, one read from memory.

    Rows of positive weight only. The moments are of ``X / max_abs`` with the
    group's own largest magnitude per column (1 where it is 0): the rows are
    read three times, but the second and third reads find them in cache.
    Returns the group's weight.
    """
    p = X.shape[1]
    weight = 0.0
    for i in range(start, stop):
        if w[i] > 0:
            weight += w[i]
            for j in range(p):
                value = X[i, j]
                high[j] = max(high[j], value)
                low[j] = min(low[j], value)
    if weight == 0.0:
        return weight
    max_abs = np.empty(p)
    for j in range(p):
        max_abs[j] = max(high[j], -low[j])
        if max_abs[j] == 0.0:
            max_abs[j] = 1.0
    for i in range(start, stop):
        if w[i] > 0:
            for j in range(p):
                unit_mean[j] += w[i] * (X[i, j] / max_abs[j])
    for j in range(p):
        unit_mean[j] /= weight
    for i in range(start, stop):
        # A row of zero weight may lie beyond max_abs: its square could overflow.
        if w[i] > 0:
            for j in range(p):
                deviation = X[i, j] / max_abs[j] - unit_mean[j]
                unit_m2[j] += w[i] * deviation * deviation
    return weight


@_jit
def _standardised_rows(X, idx, mean, scale, bound, start, stop, out):
    # An intercept column first when ``out`` has one more column than ``idx``.
    first = out.shape[1] - idx.size
    for i in range(start, stop):
        if first:
            out[i, 0] = 1.0
        for j in range(idx.size):
            value = X[i, idx[j]]
            result = (value - mean[j]) / scale[j]
            if not math.isfinite(result):
                # The difference overflowed (values near 1e308): halve first.
                result = (0.5 * value - 0.5 * mean[j]) / (0.5 * scale[j])
            out[i, j + first] = min(max(result, -bound), bound)


def _standardised(X, idx, mean, scale, bound, intercept):
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    out = np.empty((X.shape[0], idx.size + intercept))
    mean = np.ascontiguousarray(mean, dtype=np.float64)
    scale = np.ascontiguousarray(scale, dtype=np.float64)
    list(_map_groups(X.shape[0], lambda start, stop: _standardised_rows(
        X, idx, mean, scale, float(bound), start, stop, out)))
    return out


def group_moments(X, w):
    """Each row group's weight, range and moments, in units of its own largest values.

    The groups of :mod:`._pool`, on its thread pool; only rows of
    positive weight count.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite values.
    w : ndarray of shape (n_samples,)
        Non-negative weights.

    Returns
    -------
    weight : ndarray of shape (n_groups,)
    high, low, unit_mean, unit_m2 : ndarray of shape (n_groups, n_features)
        Each group's largest and smallest values, and its weighted mean and
        sum of squared deviations of ``X / max(high, -low)`` (divided by 1
        where that is 0); zeros and infinities for a group of no weight.
    """
    p = X.shape[1]

    def group(start, stop):
        high, low = np.full(p, -np.inf), np.full(p, np.inf)
        unit_mean, unit_m2 = np.zeros(p), np.zeros(p)
        weight = _group_moments(X, w, start, stop, high, low, unit_mean, unit_m2)
        return weight, high, low, unit_mean, unit_m2

    parts = list(_map_groups(X.shape[0], group))
    return (np.array([part[0] for part in parts]),
            *(np.array([part[k] for part in parts]).reshape(len(parts), p) for k in range(1, 5)))


def scaling_from_moments(weight, high, low, unit_mean, unit_m2, first_row):
    """Column means and standard deviations from the moments of row groups.

    The groups are combined by Chan, Golub and LeVeque's update, each in the
    units of the common largest values; groups of no weight are left out.

    Parameters
    ----------
    weight, high, low, unit_mean, unit_m2 : ndarray
        As :func:`group_moments` returns them; at least one weight positive.
    first_row : ndarray of shape (n_features,)
        The first row of positive weight: the value of a constant column.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
    """
    keep = weight > 0
    weight, high, low = weight[keep][:, None], high[keep], low[keep]
    unit_mean, unit_m2 = unit_mean[keep], unit_m2[keep]
    column_high, column_low = high.max(axis=0), low.min(axis=0)
    max_abs = np.maximum(column_high, -column_low)
    max_abs[max_abs == 0] = 1.0
    total = weight.sum()
    # Each group's units in the common ones: the ratio is at most 1, and 0
    # where the group's values are all 0 (its moments are 0 then).
    ratio = np.maximum(high, -low) / max_abs
    group_mean = unit_mean * ratio
    # Sums over axis 0 add the groups in group order.
    mean = (weight * group_mean).sum(axis=0) / total
    shift = group_mean - mean
    m2 = (unit_m2 * ratio * ratio + weight * shift * shift).sum(axis=0)
    scale = np.sqrt(m2 / total) * max_abs
    mean *= max_abs
    constant = column_high == column_low
    # A constant column becomes exactly 0: the ridge then pins its coefficient.
    mean[constant] = first_row[constant]
    scale[constant | ~(scale > 0) | ~np.isfinite(scale)] = 1.0
    return mean, scale


def weighted_scaling(X, w):
    """Weighted column means and standard deviations (1 for constant columns).

    Only rows of positive weight count. Each column is divided (not multiplied
    by a reciprocal, which overflows for subnormal columns) by its largest
    absolute value before any sum, so that neither the weighted sum nor the
    squared deviations overflow (values near 1e308) or underflow (near 1e-300).
    Each row group takes its mean and squared deviations in two passes over
    its rows (which stay in cache), in units of its own largest values; the
    groups are then combined (:func:`scaling_from_moments`), so X is read from
    memory once and the result does not depend on the number of threads.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite values.
    w : ndarray of shape (n_samples,)
        Non-negative weights, at least one positive, with a finite sum.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
    """
    return scaling_from_moments(*group_moments(X, w), X[np.flatnonzero(w > 0)[0]])


def standardised_design(X, idx, mean, scale, bound):
    """An intercept column, then ``(X[:, idx] - mean) / scale`` saturated at ``+-bound``.

    For finite X the result is finite: a difference that overflows is
    recomputed from halved operands, and larger magnitudes are clipped.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    idx : ndarray of shape (n_columns,), dtype intp
    mean, scale : ndarray of shape (n_columns,)
        For the columns ``idx``; ``scale`` is positive.
    bound : float

    Returns
    -------
    design : ndarray of shape (n_samples, n_columns + 1)
    """
    return _standardised(X, idx, mean, scale, bound, intercept=True)


def standardise(values, mean, scale, bound):
    """``(values - mean) / scale`` saturated at ``+-bound``, as one design column.

    One pass on the thread pool (NumPy's whole-array version took four, and
    three temporaries of the size of ``values``).

    Parameters
    ----------
    values : ndarray of shape (n_samples,)
        Finite values.
    mean, scale : float
        ``scale`` is positive.
    bound : float

    Returns
    -------
    standardised : ndarray of shape (n_samples,)
    """
    values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1, 1)
    return _standardised(values, [0], [mean], [scale], bound, intercept=False)[:, 0]


def nearest_centres(X, target, centres):
    """Index of the nearest centre in (X, target) space of every row.

    Row groups run on the thread pool, in blocks of ``BLOCK_ROWS`` rows that
    stay in cache (one small GEMM each); no (n, n_columns) copy of the data
    is made.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    target : ndarray of shape (n_samples, n_target_columns)
    centres : ndarray of shape (n_centres, n_features + n_target_columns)

    Returns
    -------
    labels : ndarray of shape (n_samples,), dtype intp
    """
    labels = np.empty(X.shape[0], dtype=np.intp)
    half_sq_norm = 0.5 * (centres**2).sum(axis=1)

    def label_rows(start, stop):
        for first in range(start, stop, BLOCK_ROWS):
            rows = slice(first, min(stop, first + BLOCK_ROWS))
            Z = np.hstack([X[rows], target[rows]])
            labels[rows] = np.argmin(half_sq_norm - Z @ centres.T, axis=1)

    list(_map_groups(X.shape[0], label_rows))
    return labels
