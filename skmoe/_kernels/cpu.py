"""CPU kernels: Numba for the exp/log-heavy row operations, BLAS for the Grams.

Every kernel assumes validated, C-contiguous float64 inputs (int64 for class
indices) and preallocated outputs where it names one. Reductions over samples go
through fixed-size chunks whose layout depends on the problem size only, and the
per-chunk partials are summed in chunk order, so results do not depend on the
number of threads.

The Gram-type statistics (the experts' weighted normal equations and the gates'
Newton/Boehning curvature) are DGEMM-bound: a Numba kernel scales one
cache-sized block of rows for all K statistics at once (a row-wise Khatri-Rao
product) and one BLAS call multiplies it by the block of X. That is one pass
over X for all K experts, with no (n, K, p) temporary.
"""

import math

import numpy as np
from numba import njit, prange

from .. import _config
from . import _rowops

_logsumexp_span = njit(inline="always", cache=_config.NUMBA_CACHE)(_rowops.logsumexp_span)

# --------------------------------------------------------------------------
# Row operations (Numba)


class _RowKernel:
    """One source compiled serially and in parallel (umap's pattern).

    Small problems run the serial build: a parallel launch costs more than the
    work, and a cached serial build starts fast. Both builds split the rows the
    same way, so they give identical results.
    """

    def __init__(self, fn):
        self.serial = njit(cache=_config.NUMBA_CACHE)(fn)
        # Never cached: a cached parallel build fixes the thread count (pynndescent #175).
        self.parallel = njit(parallel=True, cache=False)(fn)
        self.__doc__ = fn.__doc__

    def __call__(self, work, *args):
        """Run on ``args``; ``work`` (about the number of inner-loop steps) picks the build."""
        build = self.parallel if work >= _config.PARALLEL_MIN_WORK else self.serial
        return build(*args)


def _log_softmax_groups_source(Z, n_children):
    """Log-softmax over consecutive groups of ``n_children`` columns, in place."""
    n, m = Z.shape
    n_groups = m // n_children
    for i in prange(n):
        for g in range(n_groups):
            base = g * n_children
            lse = _logsumexp_span(Z[i], base, n_children)
            for j in range(n_children):
                Z[i, base + j] -= lse


_log_softmax_groups = _RowKernel(_log_softmax_groups_source)


def _gaussian_from_mean_source(mean, y, var):
    """Turn expert means into Gaussian log-densities of y, in place."""
    n, K = mean.shape
    log_norm = np.empty(K)
    inv_var = np.empty(K)
    for k in range(K):
        log_norm[k] = -0.5 * math.log(2.0 * math.pi * var[k])
        inv_var[k] = 1.0 / var[k]
    for i in prange(n):
        for k in range(K):
            r = y[i] - mean[i, k]
            mean[i, k] = log_norm[k] - 0.5 * r * r * inv_var[k]


_gaussian_from_mean = _RowKernel(_gaussian_from_mean_source)


def _categorical_from_logits_source(Z, y_idx, n_classes, out):
    """``out[i, l] = log softmax(Z[i, l*c:(l+1)*c])[y_idx[i]]``."""
    n, K = out.shape
    for i in prange(n):
        for k in range(K):
            base = k * n_classes
            out[i, k] = Z[i, base + y_idx[i]] - _logsumexp_span(Z[i], base, n_classes)


_categorical_from_logits = _RowKernel(_categorical_from_logits_source)


def _posterior_chunks_source(log_prior, log_lik, w, out, chunk_size):
    """Log-responsibilities in ``out``; returns the weighted log-normaliser per chunk."""
    n, K = out.shape
    n_chunks = (n + chunk_size - 1) // chunk_size
    partial = np.zeros(n_chunks)
    for c in prange(n_chunks):
        start = c * chunk_size
        stop = min(n, start + chunk_size)
        acc = 0.0
        for i in range(start, stop):
            for k in range(K):
                out[i, k] = log_prior[i, k] + log_lik[i, k]
            lse = _logsumexp_span(out[i], 0, K)
            for k in range(K):
                out[i, k] -= lse
            acc += w[i] * lse
        partial[c] = acc
    return partial


_posterior_chunks = _RowKernel(_posterior_chunks_source)


def _scale_block_source(X, weights, start, stop, block):
    """``block[i - start, l*p + a] = weights[i, l] * X[i, a]`` for rows start..stop."""
    p = X.shape[1]
    M = weights.shape[1]
    for i in prange(start, stop):
        r = i - start
        for m in range(M):
            wm = weights[i, m]
            base = m * p
            for a in range(p):
                block[r, base + a] = wm * X[i, a]


_scale_block = _RowKernel(_scale_block_source)


def _mix_rows_source(log_weight, values, out):
    """``out[i] = sum_l exp(log_weight[i, l]) * values[i, l]``."""
    n, K = values.shape
    for i in prange(n):
        acc = 0.0
        for k in range(K):
            acc += math.exp(log_weight[i, k]) * values[i, k]
        out[i] = acc


_mix_rows = _RowKernel(_mix_rows_source)


def _mix_categorical_rows_source(log_prior, log_proba, n_classes, out):
    """``out[i, c] = sum_l exp(log_prior[i, l] + log_proba[i, l*C + c])``."""
    n, K = log_prior.shape
    for i in prange(n):
        for c in range(n_classes):
            out[i, c] = 0.0
        for k in range(K):
            base = k * n_classes
            for c in range(n_classes):
                out[i, c] += math.exp(log_prior[i, k] + log_proba[i, base + c])


_mix_categorical_rows = _RowKernel(_mix_categorical_rows_source)


def _softmax_rows_source(X, coef, w, mass, targets, y_idx, chunk_size, want_grad,
                         obj_part, grad_part, proba):
    """Per-chunk objective and gradient of N softmax regressions, fused in one pass.

    ``mass`` with no rows means 1 (the root); ``targets`` with no rows means the
    mass sits on class ``y_idx``; ``proba`` with rows receives the probabilities.
    """
    n, p = X.shape
    n_nodes, b, _ = coef.shape
    has_mass = mass.shape[0] > 0
    has_targets = targets.shape[0] > 0
    keep_proba = proba.shape[0] > 0
    n_chunks = obj_part.shape[0]
    for c in prange(n_chunks):
        z = np.empty(b)
        start = c * chunk_size
        stop = min(n, start + chunk_size)
        for i in range(start, stop):
            for v in range(n_nodes):
                s = mass[i, v] if has_mass else 1.0
                for j in range(b):
                    acc = 0.0
                    for a in range(p):
                        acc += coef[v, j, a] * X[i, a]
                    z[j] = acc
                lse = _logsumexp_span(z, 0, b)
                for j in range(b):
                    log_g = z[j] - lse
                    if has_targets:
                        t = targets[i, v * b + j]
                    else:
                        t = s if y_idx[i] == j else 0.0
                    obj_part[c, v] += w[i] * t * log_g
                    if want_grad:
                        g = math.exp(log_g)
                        if keep_proba:
                            proba[i, v * b + j] = g
                        r = w[i] * (t - s * g)
                        for a in range(p):
                            grad_part[c, v, j, a] += r * X[i, a]


_softmax_rows = _RowKernel(_softmax_rows_source)
_EMPTY_2D = np.zeros((0, 0))
_EMPTY_IDX = np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------
# Kernel interface


def affine_log_softmax(X, coef, out):
    """Log-softmax of ``X @ coef[v].T`` for every node v of one gating level.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
    out : ndarray of shape (n_samples, n_nodes * n_children)
        Log gate probabilities, node-major (modified in place).
    """
    n_nodes, n_children, p = coef.shape
    np.dot(X, coef.reshape(n_nodes * n_children, p).T, out=out)
    _log_softmax_groups(out.size, out, n_children)
    return out


def gaussian_log_prob(X, y, coef, var, out):
    """Gaussian linear experts' log-densities ``log N(y_i; coef_l . x_i, var_l)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    y : ndarray of shape (n_samples,)
    coef : ndarray of shape (n_leaves, n_coefs)
    var : ndarray of shape (n_leaves,)
    out : ndarray of shape (n_samples, n_leaves)
        Modified in place.
    """
    np.dot(X, coef.T, out=out)
    _gaussian_from_mean(out.size, out, y, var)
    return out


def _row_blocks(n, width):
    """Row ranges of the blocks used for a kernel whose rows are ``width`` wide.

    About ``BLOCK_ELEMENTS`` elements a block, so that it stays in cache, but never
    fewer than half a chunk of rows, so that each BLAS call has work enough.
    """
    rows = max(_config.CHUNK_SIZE // 2, _config.BLOCK_ELEMENTS // max(width, 1), 1)
    rows = min(n, rows)
    return [(start, min(n, start + rows)) for start in range(0, n, rows)]


def categorical_log_prob(X, coef, y_idx, out):
    """Multinomial-logistic experts' ``log P_l(y_i | x_i)``, chunked over rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_classes, n_coefs)
    y_idx : ndarray of shape (n_samples,), dtype int64
    out : ndarray of shape (n_samples, n_leaves)
        Modified in place.
    """
    K, n_classes, p = coef.shape
    flat = coef.reshape(K * n_classes, p)
    for start, stop in _row_blocks(X.shape[0], K * n_classes):
        logits = X[start:stop] @ flat.T
        _categorical_from_logits(logits.size, logits, y_idx[start:stop], n_classes,
                                 out[start:stop])
    return out


def posterior(log_prior, log_lik, w, out):
    """Log-responsibilities and the weighted log-likelihood in one pass.

    Parameters
    ----------
    log_prior, log_lik : ndarray of shape (n_samples, n_leaves)
    w : ndarray of shape (n_samples,)
    out : ndarray of shape (n_samples, n_leaves)
        Log-responsibilities (modified in place; may alias ``log_lik``).

    Returns
    -------
    log_likelihood : float
        ``sum_i w_i log sum_l exp(log_prior + log_lik)``.
    """
    partial = _posterior_chunks(out.size, log_prior, log_lik, w, out, _config.CHUNK_SIZE)
    return float(np.sum(partial))


def weighted_grams(X, weights):
    """``sum_i weights[i, m] x_i x_i^T`` for every column m, in one pass over X.

    The products are DGEMM-bound; run BLAS single-threaded around it (the fit
    does): its threads only contend with Numba's on these blocks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    weights : ndarray of shape (n_samples, n_stats)

    Returns
    -------
    grams : ndarray of shape (n_stats, n_coefs, n_coefs)
    """
    n, p = X.shape
    M = weights.shape[1]
    grams = np.zeros((M * p, p))
    blocks = _row_blocks(n, M * p)
    buf = np.empty((blocks[0][1] - blocks[0][0], M * p)) if blocks else None
    # One GEMM per block of rows for all M statistics: the block of scaled rows
    # (a row-wise Khatri-Rao product, built by Numba) times the block of X.
    for start, stop in blocks:
        block = buf[: stop - start]
        _scale_block(block.size, X, weights, start, stop, block)
        grams += block.T @ X[start:stop]
    return grams.reshape(M, p, p)


def khatri_rao_gram(X, weights, group=None):
    """``sum_i (u_i (x) x_i)(u_i (x) x_i)^T`` per group of weight columns, in one pass over X.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    weights : ndarray of shape (n_samples, n_groups * group)
        ``u_i`` of group v is ``weights[i, v*group:(v+1)*group]``.
    group : int, default=None
        Columns per group; None for a single group of all columns.

    Returns
    -------
    grams : ndarray of shape (n_groups, group * n_coefs, group * n_coefs)
    """
    n, p = X.shape
    M = weights.shape[1]
    group = M if group is None else group
    n_groups = M // group
    width = group * p
    grams = np.zeros((n_groups, width, width))
    blocks = _row_blocks(n, M * p)
    buf = np.empty((blocks[0][1] - blocks[0][0], M * p)) if blocks else None
    for start, stop in blocks:
        block = buf[: stop - start]
        _scale_block(block.size, X, weights, start, stop, block)
        for v in range(n_groups):
            cols = block[:, v * width : (v + 1) * width]
            grams[v] += cols.T @ cols
    return grams


def wls_stats(X, y, resp, w):
    """All experts' weighted least-squares statistics.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    y : ndarray of shape (n_samples,)
    resp : ndarray of shape (n_samples, n_leaves)
    w : ndarray of shape (n_samples,)

    Returns
    -------
    gram : ndarray of shape (n_leaves, n_coefs, n_coefs)
        ``sum_i w_i h_il x_i x_i^T``.
    xty : ndarray of shape (n_leaves, n_coefs)
    yty : ndarray of shape (n_leaves,)
    mass : ndarray of shape (n_leaves,)
        ``sum_i w_i h_il``.
    """
    wr = resp * w[:, None]
    gram = weighted_grams(X, wr)
    wry = wr * y[:, None]
    xty = wry.T @ X
    yty = wry.T @ y
    mass = wr.sum(axis=0)
    return gram, xty, yty, mass


def softmax_stats(X, coef, w, mass, targets, y_idx, curvature):
    """Objective, gradient and curvature of a set of weighted softmax regressions.

    Node v has children j; its soft counts are ``targets[:, v*b + j]`` or, for
    multinomial experts, ``mass[:, v]`` placed on the class ``y_idx``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
    w : ndarray of shape (n_samples,)
    mass : ndarray of shape (n_samples, n_nodes) or None
        Posterior mass reaching each node; None means 1 (the root).
    targets : ndarray of shape (n_samples, n_nodes * n_children) or None
    y_idx : ndarray of shape (n_samples,) or None
        Used when ``targets`` is None.
    curvature : {None, "gradient", "bohning", "newton"}
        None: objective only; "gradient": objective and gradient.

    Returns
    -------
    objective : ndarray of shape (n_nodes,)
        ``sum_i w_i sum_j T_ij log g_ij``.
    grad : ndarray of shape (n_nodes, n_children, n_coefs) or None
    curv : ndarray or None
        "bohning": (n_nodes, n_coefs, n_coefs), ``sum_i w_i s_iv x_i x_i^T``;
        "newton": (n_nodes, b*n_coefs, b*n_coefs), the Fisher information.
    """
    n, p = X.shape
    n_nodes, b, _ = coef.shape
    n_chunks = (n + _config.CHUNK_SIZE - 1) // _config.CHUNK_SIZE
    want_grad = curvature is not None
    obj_part = np.zeros((n_chunks, n_nodes))
    grad_part = np.zeros((n_chunks if want_grad else 0, n_nodes, b, p))
    proba = np.empty((n, n_nodes * b) if curvature == "newton" else (0, 0))
    _softmax_rows(
        n * n_nodes * b * p, X, coef, w,
        _EMPTY_2D if mass is None else mass,
        _EMPTY_2D if targets is None else targets,
        _EMPTY_IDX if y_idx is None else y_idx,
        _config.CHUNK_SIZE, want_grad, obj_part, grad_part, proba,
    )
    objective = obj_part.sum(axis=0)
    if not want_grad:
        return objective, None, None
    grad = grad_part.sum(axis=0)
    if curvature == "gradient":
        return objective, grad, None
    ws = np.ascontiguousarray(
        np.broadcast_to(w[:, None], (n, n_nodes)) if mass is None else mass * w[:, None]
    )
    if curvature == "bohning":
        return objective, grad, weighted_grams(X, ws)
    # Fisher information of node v:
    # blockdiag_j(sum w s g_j x x^T) - sum w s (g (x) x)(g (x) x)^T, all nodes in one pass.
    curv = -khatri_rao_gram(X, proba * np.repeat(np.sqrt(ws), b, axis=1), group=b)
    diag = weighted_grams(X, proba * np.repeat(ws, b, axis=1)).reshape(n_nodes, b, p, p)
    for j in range(b):
        curv[:, j * p : (j + 1) * p, j * p : (j + 1) * p] += diag[:, j]
    return objective, grad, curv


def mix(log_weight, values, out):
    """``out[i] = sum_l exp(log_weight[i, l]) * values[i, l]``.

    Parameters
    ----------
    log_weight, values : ndarray of shape (n_samples, n_leaves)
    out : ndarray of shape (n_samples,)
        Modified in place.
    """
    _mix_rows(values.size, log_weight, values, out)
    return out


def mix_categorical(X, coef, log_prior, out):
    """Mixture class probabilities ``sum_l g_l(x) softmax(B_l x)``, chunked over rows.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_classes, n_coefs)
    log_prior : ndarray of shape (n_samples, n_leaves)
    out : ndarray of shape (n_samples, n_classes)
        Modified in place.
    """
    K, n_classes, p = coef.shape
    flat = coef.reshape(K * n_classes, p)
    for start, stop in _row_blocks(X.shape[0], K * n_classes):
        log_proba = X[start:stop] @ flat.T
        _log_softmax_groups(log_proba.size, log_proba, n_classes)
        _mix_categorical_rows(log_proba.size, log_prior[start:stop], log_proba, n_classes,
                              out[start:stop])
    return out
