"""CPU kernels: Numba for the row operations and the statistics, BLAS for the E-step products.

Every kernel assumes validated, C-contiguous float64 inputs (int64 for class
indices) and preallocated outputs where it names one.

Rows are processed in groups of ``GROUP_CHUNKS * CHUNK_SIZE`` rows, run by a
pool of ``numba.get_num_threads()`` threads; inside a group, serial Numba code
(compiled ``nogil``) does the row work on tiles of rows small enough to stay in
cache. Reductions keep one partial per group (per chunk for the
log-likelihood) and sum them in group order: the partition depends on the
problem size only, so results do not depend on the number of threads.

Row kernels work column-wise on transposed tiles (``_TILE`` rows): with a few
columns per row, a row-wise loop does not vectorise, while a loop over the
rows of one column does, exponentials and logarithms included (the
vectorisable ``exp`` and ``log`` of :mod:`._fastexp`).

The Gram-type statistics (the experts' weighted normal equations and the
gates' Newton/Boehning curvature) are sums over rows of
``u_im vech(z_i z_i^T)``: each symmetric pair counted once, all statistics
from one pass over X, no (n, K, p) temporary. They run in Numba, one call per
group of rows (a GEMM per block cost more in calls and in packing at small
n and K than it saved), with reassociated sums that LLVM splits into SIMD lanes.
"""

import contextlib
import functools
import math

import numpy as np
from numba import njit, prange
from scipy.special import logsumexp

from .. import _config
from . import _bohning, _rowops

# The preparation of a fit runs on the host's thread pool (explicit re-exports).
from ._design import all_finite as all_finite
from ._design import standardised_design as standardised_design
from ._design import weighted_scaling as weighted_scaling
from ._fastexp import exp as _exp
from ._fastexp import log as _log
from ._pool import _map_groups, _sum_groups

# Numba wraps every compiled function for calls from Python and for calls through
# a C pointer (cfunc), lowers, optimises and machine-codes both wrappers in the
# function's own library, and links them into every caller (about a tenth of a
# cold start). No kernel is called through a C pointer, and the helpers
# (``_helper*``) are called only from other kernels.
_KERNEL = dict(cache=_config.NUMBA_CACHE, nogil=True, no_cfunc_wrapper=True)
_HELPER = dict(cache=_config.NUMBA_CACHE, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# Sums of products only (Grams, gradients), never log-space: reassociation lets
# LLVM split each sum over rows into SIMD lanes. The order is then fixed by the
# compiled loop, not by the threads, so results stay reproducible.
_SUMS = {"reassoc", "contract"}
_jit = njit(error_model="numpy", **_KERNEL)
_jit_sums = njit(fastmath=_SUMS, **_KERNEL)
_helper = njit(error_model="numpy", **_HELPER)
_helper_sums = njit(fastmath=_SUMS, **_HELPER)
# The per-row maths of ``_rowops``, inlined into the kernels that call it.
_inline = njit(inline="always", cache=_config.NUMBA_CACHE)
_rowops_logsumexp_span = _inline(_rowops.logsumexp_span)
_rowops_uniform = _inline(_rowops.uniform)
_EMPTY_2D = np.zeros((0, 0))
_EMPTY_IDX = np.zeros(0, dtype=np.int64)
_EMPTY_1D = np.zeros(0)

# Predictions run in one batch of rows: their arrays are the host's, and no
# larger than their results (see ``BaseMixtureOfExperts._in_batches``).
PREDICTS_IN_BATCHES = False

# The E-steps' log-likelihoods are ready when they return: EM reads each one
# before it takes the next M-step (see ``run_em``).
LOG_LIKELIHOOD_ARRIVES_LATE = False

# --------------------------------------------------------------------------
# Row kernels outside EM


class _RowKernel:
    """One source compiled serially and in parallel (umap's pattern).

    For row kernels outside the EM loop (prediction helpers), which run on the
    caller's thread: small problems run the cached serial build, large ones
    Numba's parallel build. Both split the rows the same way.
    """

    def __init__(self, fn):
        self.serial = njit(cache=_config.NUMBA_CACHE, no_cfunc_wrapper=True)(fn)
        # Never cached: a cached parallel build fixes the thread count (pynndescent #175).
        self.parallel = njit(parallel=True, cache=False, no_cfunc_wrapper=True)(fn)
        self.__doc__ = fn.__doc__

    def __call__(self, work, *args):
        """Run on ``args``; ``work`` (about the number of inner-loop steps) picks the build."""
        build = self.parallel if work >= _config.PARALLEL_MIN_WORK else self.serial
        return build(*args)


def _blocks(start, stop, width):
    """Row blocks of a group, about ``BLOCK_ELEMENTS`` elements of ``width`` each."""
    rows = max(_config.MIN_BLOCK_ROWS, _config.BLOCK_ELEMENTS // max(width, 1))
    return [(s, min(stop, s + rows)) for s in range(start, stop, rows)], rows


def _n_vech(p):
    return p * (p + 1) // 2


@functools.lru_cache(maxsize=64)
def _vech_index(p):
    """(p, p) positions of ``(a, b)`` in the row-major upper triangle (``vech``)."""
    index = np.empty((p, p), dtype=np.int64)
    upper, lower = np.triu_indices(p)
    index[upper, lower] = index[lower, upper] = np.arange(upper.size)
    return index


def _unvech(vech, p):
    """Symmetric (..., p, p) matrices from their upper triangles in row-major order."""
    return vech[..., _vech_index(p)]


# --------------------------------------------------------------------------
# Row operations (Numba, serial, nogil)


# Rows of a transposed tile in the column-wise row kernels: a (K, TILE) tile and
# its per-row buffers stay in L1 for any K below a few dozen.
_TILE = 256


@_helper
def _logsumexp_columns(tile, count, rows, top, total, lse):
    """``lse[i] = log sum_j exp(tile[j, i])`` for ``j < count``, ``i < rows``.

    Column-wise, on a tile of rows transposed: every loop runs over the rows
    of one column and vectorises (with the vectorisable exp and log), where a
    row-wise loop over a handful of columns would not. The sum over ``j`` is
    element-wise, in column order, as a row-wise sum would be.
    """
    first = tile[0]
    for i in range(rows):
        top[i] = first[i]
    for j in range(1, count):
        column = tile[j]
        for i in range(rows):
            top[i] = max(top[i], column[i])
    for i in range(rows):
        total[i] = 0.0
    for j in range(count):
        column = tile[j]
        for i in range(rows):
            total[i] += _exp(column[i] - top[i])
    for i in range(rows):
        lse[i] = top[i] + _log(total[i])


@_jit
def _log_softmax_groups(Z, n_children):
    """Log-softmax over consecutive groups of ``n_children`` columns, in place."""
    n, m = Z.shape
    tile = np.empty((n_children, _TILE))
    top, total, lse = np.empty(_TILE), np.empty(_TILE), np.empty(_TILE)
    for start in range(0, n, _TILE):
        rows = min(_TILE, n - start)
        for base in range(0, m, n_children):
            _transpose_block(Z, start, rows, base, n_children, tile)
            _logsumexp_columns(tile, n_children, rows, top, total, lse)
            _store_shifted(tile, lse, rows, n_children, Z, start, base)


@_jit
def _affine_log_softmax_rows(X, flat, n_children, out):
    """``out[i, v*b + j] = log softmax_j(flat[v*b + j] . x_i)``, tile by tile.

    The logits column-major (:func:`_tile_logits`, faster than a GEMM on these
    tall, narrow shapes), the log-normaliser per node, then back to rows.
    """
    n, p = X.shape
    width = flat.shape[0]
    xt = np.empty((p, _TILE))
    zt = np.empty((width, _TILE))
    top, total, lse = np.empty(_TILE), np.empty(_TILE), np.empty(_TILE)
    for start in range(0, n, _TILE):
        rows = min(_TILE, n - start)
        _transpose_block(X, start, rows, np.int64(0), X.shape[1], xt)
        _tile_logits(flat, xt, rows, zt)
        for base in range(0, width, n_children):
            tile = zt[base:base + n_children]
            _logsumexp_columns(tile, n_children, rows, top, total, lse)
            _store_shifted(tile, lse, rows, n_children, out, start, base)


@_jit
def _gaussian_from_mean(mean, y, var):
    """Turn expert means into Gaussian log-densities of y, in place."""
    n, K = mean.shape
    log_norm = np.empty(K)
    inv_var = np.empty(K)
    for k in range(K):
        log_norm[k] = -0.5 * math.log(2.0 * math.pi * var[k])
        inv_var[k] = 1.0 / var[k]
    for i in range(n):
        for k in range(K):
            r = y[i] - mean[i, k]
            mean[i, k] = log_norm[k] - 0.5 * r * r * inv_var[k]


@_jit
def _categorical_from_logits(Z, y_idx, n_classes, out):
    """``out[i, l] = log softmax(Z[i, l*c:(l+1)*c])[y_idx[i]]``."""
    n, K = out.shape
    tile = np.empty((n_classes, _TILE))
    top, total, lse = np.empty(_TILE), np.empty(_TILE), np.empty(_TILE)
    for start in range(0, n, _TILE):
        rows = min(_TILE, n - start)
        for k in range(K):
            base = k * n_classes
            for i in range(rows):
                for c in range(n_classes):
                    tile[c, i] = Z[start + i, base + c]
            _logsumexp_columns(tile, n_classes, rows, top, total, lse)
            for i in range(rows):
                out[start + i, k] = Z[start + i, base + y_idx[start + i]] - lse[i]


@_jit
def _posterior_rows(log_prior, log_lik, w, out, chunk_size, exponentiate):
    """Log-responsibilities (or, with ``exponentiate``, responsibilities) in ``out``.

    Returns the weighted log-normaliser per chunk.
    """
    n, K = out.shape
    n_chunks = (n + chunk_size - 1) // chunk_size
    partial = np.zeros(n_chunks)
    tile = np.empty((K, _TILE))
    top, total, lse = np.empty(_TILE), np.empty(_TILE), np.empty(_TILE)
    no_shift = np.zeros(_TILE)
    for c in range(n_chunks):
        acc = 0.0
        stop = min(n, (c + 1) * chunk_size)
        for start in range(c * chunk_size, stop, _TILE):
            rows = min(_TILE, stop - start)
            for i in range(rows):
                for k in range(K):
                    tile[k, i] = log_prior[start + i, k] + log_lik[start + i, k]
            _logsumexp_columns(tile, K, rows, top, total, lse)
            if exponentiate:
                # In the tile, column by column (vectorised), before the store.
                for k in range(K):
                    column = tile[k]
                    for i in range(rows):
                        column[i] = _exp(column[i] - lse[i])
                _store_shifted(tile, no_shift, rows, K, out, start, np.int64(0))
            else:
                _store_shifted(tile, lse, rows, K, out, start, np.int64(0))
            # In row order: the chunk's sum does not depend on the tiling.
            for i in range(rows):
                acc += w[start + i] * lse[i]
        partial[c] = acc
    return partial


# Callers give column 0 as ``np.int64(0)``: Numba types a literal 0 as
# ``Literal[int](0)`` and compiles every helper it reaches once more for it.
@_helper
def _transpose_block(A, start, rows, col, width, out):
    """``out[a, i] = A[start + i, col + a]`` for ``i < rows``, ``a < width``.

    Four rows per pass over the columns: each store stream of ``out`` then
    takes four adjacent values (twice as fast as one row at a time).
    """
    i = 0
    while i + 4 <= rows:
        r0, r1, r2, r3 = A[start + i], A[start + i + 1], A[start + i + 2], A[start + i + 3]
        for a in range(width):
            o = out[a]
            o[i] = r0[col + a]
            o[i + 1] = r1[col + a]
            o[i + 2] = r2[col + a]
            o[i + 3] = r3[col + a]
        i += 4
    for k in range(i, rows):
        for a in range(width):
            out[a, k] = A[start + k, col + a]


@_helper
def _store_shifted(tile, shift, rows, width, out, start, col):
    """``out[start + i, col + a] = tile[a, i] - shift[i]``: a tile back to rows, four at a time."""
    i = 0
    while i + 4 <= rows:
        r0, r1, r2, r3 = out[start + i], out[start + i + 1], out[start + i + 2], out[start + i + 3]
        s0, s1, s2, s3 = shift[i], shift[i + 1], shift[i + 2], shift[i + 3]
        for a in range(width):
            t = tile[a]
            r0[col + a] = t[i] - s0
            r1[col + a] = t[i + 1] - s1
            r2[col + a] = t[i + 2] - s2
            r3[col + a] = t[i + 3] - s3
        i += 4
    for k in range(i, rows):
        for a in range(width):
            out[start + k, col + a] = tile[a, k] - shift[k]


@_helper_sums
def _add_dots(u, v, right, rows, out_u, out_v):
    """``out_u[a] += sum_{i < rows} u[i] right[a, i]``, the same for ``v``, every row a.

    Two left vectors against four rows of ``right`` per pass (eight sums): the
    loop is bound by loads, and each load then serves two or four sums.
    """
    n_right = right.shape[0]
    a = 0
    while a + 4 <= n_right:
        r0, r1, r2, r3 = right[a], right[a + 1], right[a + 2], right[a + 3]
        u0 = u1 = u2 = u3 = v0 = v1 = v2 = v3 = 0.0
        for i in range(rows):
            u0 += u[i] * r0[i]
            u1 += u[i] * r1[i]
            u2 += u[i] * r2[i]
            u3 += u[i] * r3[i]
            v0 += v[i] * r0[i]
            v1 += v[i] * r1[i]
            v2 += v[i] * r2[i]
            v3 += v[i] * r3[i]
        out_u[a] += u0
        out_u[a + 1] += u1
        out_u[a + 2] += u2
        out_u[a + 3] += u3
        out_v[a] += v0
        out_v[a + 1] += v1
        out_v[a + 2] += v2
        out_v[a + 3] += v3
        a += 4
    for c in range(a, n_right):
        rc = right[c]
        uc = vc = 0.0
        for i in range(rows):
            uc += u[i] * rc[i]
            vc += v[i] * rc[i]
        out_u[c] += uc
        out_v[c] += vc


@_helper_sums
def _tile_dots(left, right, rows, out):
    """``out[j, a] += sum_{i < rows} left[j, i] * right[a, i]``: ``left right^T`` on a tile."""
    n_left = left.shape[0]
    spare = np.empty(right.shape[0])  # an odd last row is paired with itself, into this
    for j in range(0, n_left, 2):
        if j + 1 < n_left:
            _add_dots(left[j], left[j + 1], right, rows, out[j], out[j + 1])
        else:
            _add_dots(left[j], left[j], right, rows, out[j], spare)


@_helper_sums
def _tile_grams(zt, width, weights_t, rows, prod, out):
    """``out[c, m] += sum_{i < rows} weights_t[m, i] z_ia z_ib`` for the pairs c = (a <= b).

    ``zt`` holds ``z_i`` column-major, (width, tile); the pairs run over the
    upper triangle in row-major order (``vech``), their product columns formed
    two at a time in ``prod`` (2, tile) and weighted by every column of
    weights at once.
    """
    n_pairs = width * (width + 1) // 2
    spare = np.empty(weights_t.shape[0])
    a = b = 0
    for c in range(0, n_pairs, 2):
        for slot in range(2):
            if c + slot < n_pairs:
                za, zb, target = zt[a], zt[b], prod[slot]
                for i in range(rows):
                    target[i] = za[i] * zb[i]
                b += 1
                if b == width:
                    a += 1
                    b = a
        if c + 1 < n_pairs:
            _add_dots(prod[0], prod[1], weights_t, rows, out[c], out[c + 1])
        else:
            _add_dots(prod[0], prod[0], weights_t, rows, out[c], spare)


@_jit_sums
def _gram_rows(X, y, weights, w, gram, mass):
    """``gram[c, m] += sum_i u_im vech(z_i z_i^T)[c]`` and ``mass[m] += sum_i u_im``.

    ``z_i = (x_i, y_i)`` (``x_i`` alone when y has no entries) and
    ``u = weights``, or ``weights * w[:, None]`` when w has entries; tile by
    tile, transposed so that every loop runs over contiguous rows.
    """
    n, p = X.shape
    width = p + (1 if y.shape[0] > 0 else 0)
    M = weights.shape[1]
    has_w = w.shape[0] > 0
    zt = np.empty((width, _TILE))
    ut = np.empty((M, _TILE))
    prod = np.empty((2, _TILE))
    for start in range(0, n, _TILE):
        rows = min(_TILE, n - start)
        _transpose_block(X, start, rows, np.int64(0), X.shape[1], zt)
        if width > p:
            for i in range(rows):
                zt[p, i] = y[start + i]
        _transpose_block(weights, start, rows, np.int64(0), weights.shape[1], ut)
        if has_w:
            for m in range(M):
                um = ut[m]
                for i in range(rows):
                    um[i] *= w[start + i]
        for m in range(M):
            um = ut[m]
            s = 0.0
            for i in range(rows):
                s += um[i]
            mass[m] += s
        _tile_grams(zt, width, ut, rows, prod, gram)


@_jit
def _exp_rows(a, out):
    """``out = exp(a)`` elementwise, with the vectorisable exp (C-contiguous rows).

    One flat loop: a loop over a few columns per row would not vectorise. In
    place it reads and writes one array: ``out[i] = exp(a[i])`` with ``a`` and
    ``out`` overlapping fails LLVM's overlap check and runs the scalar loop.
    """
    flat_out = out.reshape(out.size)
    if a.ctypes.data == out.ctypes.data:
        for i in range(flat_out.size):
            flat_out[i] = _exp(flat_out[i])
    else:
        flat_a = a.reshape(a.size)
        for i in range(flat_a.size):
            flat_out[i] = _exp(flat_a[i])


@_jit
def _mix_rows(log_weight, values, out):
    """``out[i] = sum_l exp(log_weight[i, l]) * values[i, l]``."""
    n, K = values.shape
    for i in range(n):
        acc = 0.0
        for k in range(K):
            acc += _exp(log_weight[i, k]) * values[i, k]
        out[i] = acc


@_jit
def _mix_categorical_rows(log_prior, log_proba, n_classes, out):
    """``out[i, c] = sum_l exp(log_prior[i, l] + log_proba[i, l*C + c])``."""
    n, K = log_prior.shape
    for i in range(n):
        for c in range(n_classes):
            out[i, c] = 0.0
        for k in range(K):
            base = k * n_classes
            for c in range(n_classes):
                out[i, c] += _exp(log_prior[i, k] + log_proba[i, base + c])


@_helper
def _softmax_columns(ZT, n, start, w, mass, targets, y_idx, n_children, want_grad, pairs_t,
                     objective, scratch):
    """Objective, residuals and Fisher weights of N softmax regressions on a tile.

    Column-major: ``ZT`` holds the logits transposed, (n_nodes * b, n_rows), so
    that every loop runs over contiguous rows and vectorises, and the sums over
    the children of a node are element-wise. Its first ``n`` columns are rows
    ``start + i`` of ``w``, ``mass``, ``targets`` and ``y_idx``. ``ZT``
    receives the gradient residuals ``w_i (T_ij - s_i g_ij)`` when
    ``want_grad``; ``pairs_t`` with rows receives, per node and child pair
    1 <= j <= k (row-major; child 0's pairs follow from these, see
    :func:`_fisher_blocks`), the Fisher weights
    ``w_i s_i (delta_jk g_ij - g_ij g_ik)``. ``mass`` with no rows means
    1 (the root); ``targets`` with no rows means the mass sits on class
    ``y_idx``. ``objective`` accumulates per node, in row order. ``scratch``,
    (7 + 2b, tile), holds the per-row temporaries (allocated once per group).
    """
    m = ZT.shape[0]
    b = n_children
    has_mass = mass.shape[0] > 0
    has_targets = targets.shape[0] > 0
    want_pairs = pairs_t.shape[0] > 0
    want_probs = want_grad or want_pairs
    n_pairs = (b - 1) * b // 2
    top, total, log_total, scaled = scratch[0], scratch[1], scratch[2], scratch[3]
    node_mass, t, gain, g = scratch[4], scratch[5], scratch[6], scratch[7:7 + b]
    targets_t = scratch[7 + b:7 + 2 * b]
    for v in range(m // b):
        base = v * b
        first = ZT[base]
        for i in range(n):
            top[i] = first[i]
        for j in range(1, b):
            row = ZT[base + j]
            for i in range(n):
                top[i] = max(top[i], row[i])
        for i in range(n):
            total[i] = 0.0
        for j in range(b):
            row = ZT[base + j]
            gj = g[j]
            for i in range(n):
                row[i] -= top[i]
                gj[i] = _exp(row[i])
                total[i] += gj[i]
        for i in range(n):
            log_total[i] = _log(total[i])
        if want_probs:
            # One division per row; the children's probabilities then multiply.
            for i in range(n):
                total[i] = 1.0 / total[i]
        if has_targets:
            # The node's soft counts, column-major (strided reads once, not b times).
            _transpose_block(targets, start, n, base, b, targets_t)
        # Branches outside the loops: a select between a load and a constant
        # inside one keeps it (and the log with it) from vectorising. The
        # objective alone needs neither the probabilities nor the mass.
        if has_mass:
            for i in range(n):
                node_mass[i] = mass[start + i, v]
        else:
            for i in range(n):
                node_mass[i] = 1.0
        if want_probs:
            for i in range(n):
                scaled[i] = w[start + i] * node_mass[i]
        for i in range(n):
            gain[i] = 0.0
        for j in range(b):
            row = ZT[base + j]
            gj = g[j]
            # The soft counts first, then branch-free arithmetic.
            tj = targets_t[j]
            if not has_targets:
                tj = t
                for i in range(n):
                    t[i] = node_mass[i] if y_idx[start + i] == j else 0.0
            if want_grad:
                # One pass: objective, probabilities and residuals.
                for i in range(n):
                    wt = w[start + i] * tj[i]
                    gain[i] += wt * (row[i] - log_total[i])
                    gj[i] *= total[i]
                    row[i] = wt - scaled[i] * gj[i]
                continue
            for i in range(n):
                gain[i] += w[start + i] * tj[i] * (row[i] - log_total[i])
            if want_probs:
                for i in range(n):
                    gj[i] *= total[i]
        acc = 0.0
        for i in range(n):
            acc += gain[i]
        objective[v] += acc
        if want_pairs:
            col = v * n_pairs
            for j in range(1, b):
                for k in range(j, b):
                    out = pairs_t[col]
                    gj = g[j]
                    gk = g[k]
                    if k == j:
                        for i in range(n):
                            out[i] = scaled[i] * gj[i] * (1.0 - gj[i])
                    else:
                        for i in range(n):
                            out[i] = -scaled[i] * gj[i] * gk[i]
                    col += 1


@_helper
def _tile_logits(flat, xt, rows, zt):
    """``zt[j, i] = sum_a flat[j, a] xt[a, i]`` for ``i < rows``: the logits of a tile.

    Four columns of x per pass over ``zt[j]``: the loop is bound by the loads
    and stores of ``zt[j]``, and each then serves four products.
    """
    width, p = flat.shape
    for j in range(width):
        zj = zt[j]
        for i in range(rows):
            zj[i] = 0.0
        a = 0
        while a + 4 <= p:
            c0, c1, c2, c3 = flat[j, a], flat[j, a + 1], flat[j, a + 2], flat[j, a + 3]
            x0, x1, x2, x3 = xt[a], xt[a + 1], xt[a + 2], xt[a + 3]
            for i in range(rows):
                zj[i] += c0 * x0[i] + c1 * x1[i] + c2 * x2[i] + c3 * x3[i]
            a += 4
        for c in range(a, p):
            coef = flat[j, c]
            xc = xt[c]
            for i in range(rows):
                zj[i] += coef * xc[i]


@_jit
def _softmax_rows(X, flat, w, mass, targets, y_idx, n_children, want_grad, want_pairs,
                  objective, grad, fisher):
    """Softmax-regression statistics over all rows of X, tile by tile.

    Per tile: the logits ``flat x_i`` column-major, then :func:`_softmax_columns`,
    then ``grad += residuals x^T`` and, with ``want_pairs``,
    ``fisher[c, pair] += sum_i weight_pair,i vech(x_i x_i^T)[c]`` (all modified
    in place). One call per group of rows: no per-block Python.
    """
    n, p = X.shape
    width = flat.shape[0]
    n_pairs = (width // n_children) * ((n_children - 1) * n_children // 2)
    xt = np.empty((p, _TILE))
    zt = np.empty((width, _TILE))
    pairs_t = np.empty((n_pairs if want_pairs else 0, _TILE))
    prod = np.empty((2, _TILE))
    scratch = np.empty((7 + 2 * n_children, _TILE))
    for start in range(0, n, _TILE):
        rows = min(_TILE, n - start)
        _transpose_block(X, start, rows, np.int64(0), X.shape[1], xt)
        _tile_logits(flat, xt, rows, zt)
        _softmax_columns(zt, rows, start, w, mass, targets, y_idx, n_children, want_grad,
                         pairs_t, objective, scratch)
        if want_grad:
            _tile_dots(zt, xt, rows, grad)
        if want_pairs:
            _tile_grams(xt, p, pairs_t, rows, prod, fisher)


@_jit
def _softmax_gradient_rows(X, log_proba, w, targets, grad):
    """``grad += sum_i w_i (T_ij - g_ij) x_i^T`` from the log-probabilities, tile by tile.

    One node with mass 1 (the root): the residuals of :func:`_softmax_columns`
    without the logits, their maximum and the log-normaliser.
    """
    n, p = X.shape
    b = log_proba.shape[1]
    xt = np.empty((p, _TILE))
    resid = np.empty((b, _TILE))
    targets_t = np.empty((b, _TILE))
    for start in range(0, n, _TILE):
        rows = min(_TILE, n - start)
        _transpose_block(X, start, rows, np.int64(0), X.shape[1], xt)
        _transpose_block(log_proba, start, rows, np.int64(0), b, resid)
        _transpose_block(targets, start, rows, np.int64(0), b, targets_t)
        for j in range(b):
            row = resid[j]
            tj = targets_t[j]
            for i in range(rows):
                row[i] = w[start + i] * tj[i] - w[start + i] * _exp(row[i])
        _tile_dots(resid, xt, rows, grad)


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
    flat = np.ascontiguousarray(coef.reshape(n_nodes * n_children, p))

    def group(start, stop):
        _affine_log_softmax_rows(X[start:stop], flat, n_children, out[start:stop])

    list(_map_groups(X.shape[0], group))
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
    def group(start, stop):
        np.dot(X[start:stop], coef.T, out=out[start:stop])
        _gaussian_from_mean(out[start:stop], y[start:stop], var)

    list(_map_groups(X.shape[0], group))
    return out


def categorical_log_prob(X, coef, y_idx, out):
    """Multinomial-logistic experts' ``log P_l(y_i | x_i)``, blocked over rows.

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

    def group(start, stop):
        blocks, rows = _blocks(start, stop, K * n_classes)
        logits = np.empty((rows, K * n_classes))
        for s, e in blocks:
            z = logits[: e - s]
            np.dot(X[s:e], flat.T, out=z)
            _categorical_from_logits(z, y_idx[s:e], n_classes, out[s:e])

    list(_map_groups(X.shape[0], group))
    return out


def posterior(log_prior, log_lik, w, out, exponentiate=False, deferred=False):
    """Log-responsibilities and the weighted log-likelihood in one pass.

    Parameters
    ----------
    log_prior, log_lik : ndarray of shape (n_samples, n_leaves)
    w : ndarray of shape (n_samples,)
    out : ndarray of shape (n_samples, n_leaves)
        Log-responsibilities (modified in place; may alias ``log_lik``).
    exponentiate : bool, default=False
        Write the responsibilities instead, ``exp`` of the same numbers: EM's
        M-step takes them, and a separate pass over ``out`` would cost as much
        memory traffic as this one.
    deferred : bool, default=False
        Return a function that gives the log-likelihood, so that the caller
        can queue more work before it waits for it (on a GPU). Here it is
        computed at once.

    Returns
    -------
    log_likelihood : float, or a function giving it with ``deferred``
        ``sum_i w_i log sum_l exp(log_prior + log_lik)``.
    """
    def group(start, stop):
        return _posterior_rows(log_prior[start:stop], log_lik[start:stop], w[start:stop],
                               out[start:stop], _config.CHUNK_SIZE, exponentiate)

    partial = list(_map_groups(out.shape[0], group))
    ll = float(np.sum(np.concatenate(partial))) if partial else 0.0
    return (lambda: ll) if deferred else ll


def gaussian_posterior(X_gate, gate_coef, X_expert, y, coef, var, w, log_gate, out,
                       exponentiate=False, deferred=False, gate_gradient=False):
    """The E-step of a flat mixture of Gaussian linear experts.

    ``affine_log_softmax`` (unless the gate's log-probabilities are given),
    ``gaussian_log_prob``, ``posterior`` and, with ``gate_gradient``,
    ``softmax_gradient`` at the responsibilities in turn; a backend may fuse
    them into one pass (the CUDA backend does).

    Parameters
    ----------
    X_gate : ndarray of shape (n_samples, n_gate_coefs)
    gate_coef : ndarray of shape (1, n_experts, n_gate_coefs) or None
        The gate; None when ``log_gate`` holds its log-probabilities already.
    X_expert : ndarray of shape (n_samples, n_expert_coefs)
    y : ndarray of shape (n_samples,)
    coef : ndarray of shape (n_experts, n_expert_coefs)
    var : ndarray of shape (n_experts,)
    w : ndarray of shape (n_samples,)
    log_gate : ndarray of shape (n_samples, n_experts) or None
        The gate's log-probabilities: read when ``gate_coef`` is None, else
        written, unless ``gate_gradient`` (then it may be None).
    out : ndarray of shape (n_samples, n_experts)
        Log-responsibilities, or with ``exponentiate`` the responsibilities
        (modified in place).
    exponentiate, deferred : bool, default=False
        As :func:`posterior`.
    gate_gradient : bool, default=False
        Also return the gate's gradient at the responsibilities (with
        ``exponentiate`` only).

    Returns
    -------
    log_likelihood : float, or a function giving it with ``deferred``
        ``sum_i w_i log sum_l exp(log_gate + log_lik)``.
    gradient : ndarray of shape (1, n_experts, n_gate_coefs)
        Only with ``gate_gradient``: ``sum_i w_i (h_ik - g_ik) x_i``, the first
        gate step's gradient (``softmax_gradient``).
    """
    if gate_gradient and not exponentiate:
        raise ValueError("the gate's gradient is taken at the responsibilities: "
                         "exponentiate=True")
    if log_gate is None:
        log_gate = np.empty(out.shape)
    if gate_coef is not None:
        affine_log_softmax(X_gate, gate_coef, log_gate)
    gaussian_log_prob(X_expert, y, coef, var, out)
    ll = posterior(log_gate, out, w, out, exponentiate, deferred)
    if gate_gradient:
        return ll, softmax_gradient(X_gate, log_gate, w, out)
    return ll


def _vech_gram(X, y, weights, w=None):
    """``sum_i u_im vech(z_i z_i^T)`` per column m, and ``sum_i u_im``.

    ``z_i = (x_i, y_i)`` (``x_i`` alone when y has no entries) and
    ``u = weights``, or ``weights * w[:, None]`` formed tile by tile.
    """
    n, p = X.shape
    q = _n_vech(p + (y.shape[0] > 0))
    M = weights.shape[1]
    w_ = _EMPTY_1D if w is None else w

    def group(start, stop):
        gram = np.zeros((q, M))
        mass = np.zeros(M)
        _gram_rows(X[start:stop], y[start:stop], weights[start:stop], w_[start:stop], gram, mass)
        return gram, mass

    parts = _sum_groups(n, group)
    if parts is None:
        return np.zeros((M, q)), np.zeros(M)
    return parts[0].T, parts[1]


def weighted_grams(X, weights):
    """``sum_i weights[i, m] x_i x_i^T`` for every column m, in one pass over X.

    Run BLAS single-threaded around it (the fit does): the kernel runs its own
    threads over groups of rows, and BLAS threads would only contend with them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    weights : ndarray of shape (n_samples, n_stats)

    Returns
    -------
    grams : ndarray of shape (n_stats, n_coefs, n_coefs)
    """
    return _unvech(_vech_gram(X, _EMPTY_1D, weights)[0], X.shape[1])


def wls_stats(X, y, resp, w):
    """All experts' weighted least-squares statistics, from one GEMM per block.

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
    p = X.shape[1]
    # The Gram of z = (x, y) holds X^T X, X^T y and y^T y at once.
    vech, mass = _vech_gram(X, y, resp, w)
    index = _vech_index(p + 1)
    return vech[:, index[:p, :p]], vech[:, index[:p, p]], vech[:, index[p, p]], mass


def start_wls_stats(X, y, resp, w):
    """:func:`wls_stats`, as the CUDA backend's overlapping form has it: here computed now.

    Returns
    -------
    finish : callable
        ``finish()`` returns what :func:`wls_stats` returns.
    """
    stats = wls_stats(X, y, resp, w)
    return lambda: stats


def start_softmax_stats(X, coef, w, mass, targets, y_idx, curvature):
    """:func:`softmax_stats`, as the CUDA backend's overlapping form has it: here computed now.

    Returns
    -------
    finish : callable
        ``finish()`` returns what :func:`softmax_stats` returns.
    """
    stats = softmax_stats(X, coef, w, mass, targets, y_idx, curvature)
    return lambda: stats


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
    width = n_nodes * b
    flat = coef.reshape(width, p)
    want_grad = curvature is not None
    newton = curvature == "newton"
    n_pairs = n_nodes * (b - 1) * b // 2
    q = _n_vech(p)
    mass_ = _EMPTY_2D if mass is None else mass
    targets_ = _EMPTY_2D if targets is None else targets
    y_idx_ = _EMPTY_IDX if y_idx is None else y_idx

    def group(start, stop):
        objective = np.zeros(n_nodes)
        grad = np.zeros((width, p) if want_grad else (0, 0))
        fisher = np.zeros((q, n_pairs) if newton else (0, 0))
        _softmax_rows(X[start:stop], flat, w[start:stop], mass_[start:stop],
                      targets_[start:stop], y_idx_[start:stop], b, want_grad, newton,
                      objective, grad, fisher)
        return objective, grad, fisher

    parts = _map_groups(n, group)
    objective, grad, fisher = np.zeros(n_nodes), None, None
    for part_objective, part_grad, part_fisher in parts:
        objective += part_objective
        if want_grad:
            grad = part_grad if grad is None else grad + part_grad
        if newton:
            fisher = part_fisher if fisher is None else fisher + part_fisher
    if not want_grad:
        return objective, None, None
    grad = np.zeros((width, p)) if grad is None else grad
    grad = grad.reshape(n_nodes, b, p)
    if curvature == "gradient":
        return objective, grad, None
    if curvature == "bohning":
        ws = np.broadcast_to(w[:, None], (n, n_nodes)) if mass is None else mass * w[:, None]
        return objective, grad, weighted_grams(X, np.ascontiguousarray(ws))
    fisher = np.zeros((n_pairs, q)) if fisher is None else fisher.T
    return objective, grad, _fisher_blocks(fisher.reshape(n_nodes, -1, q), b, p)


def softmax_gradient(X, log_proba, w, targets):
    """Gradient of the root's weighted softmax regression at known probabilities.

    The first Boehning step of an M-step starts where the E-step computed the
    root's log-probabilities; from them the gradient needs no logits.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    log_proba : ndarray of shape (n_samples, n_children)
        Log gate probabilities of the root at the current coefficients.
    w : ndarray of shape (n_samples,)
    targets : ndarray of shape (n_samples, n_children)

    Returns
    -------
    grad : ndarray of shape (1, n_children, n_coefs)
        ``sum_i w_i (T_ij - g_ij) x_i``, as from ``softmax_stats``.
    """
    n, p = X.shape
    b = log_proba.shape[1]

    def group(start, stop):
        grad = np.zeros((b, p))
        _softmax_gradient_rows(X[start:stop], log_proba[start:stop], w[start:stop],
                               targets[start:stop], grad)
        return grad

    grad = None
    for part in _map_groups(n, group):
        grad = part if grad is None else grad + part
    grad = np.zeros((b, p)) if grad is None else grad
    return grad.reshape(1, b, p)


def root_bohning_steps(X, coef, w, targets, log_proba, maps, reg, n_steps, relaxation,
                       meanwhile=None, gradient=None):
    """Boehning steps on the root gate, whose bound (and so its inverse) is fixed.

    Each step takes the gradient ``g`` at the current coefficients, the
    right-hand side ``r = g - reg * V`` of the slopes' rows 1..b-1 (``V``: the
    coefficients without intercepts), and moves those rows by
    ``relaxation * ((r - mean(r)) M1^-1 + mean(r) M2^-1)``, the bound's system
    solved through its two inverses (``RootBound.inverse_maps``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (1, n_children, n_coefs)
        Not modified; child 0 is the reference.
    w : ndarray of shape (n_samples,)
    targets : ndarray of shape (n_samples, n_children)
    log_proba : ndarray of shape (n_samples, n_children) or None
        The log-probabilities at ``coef``: the first step's gradient comes from
        them (``softmax_gradient``) instead of the logits.
    maps : tuple of two ndarrays of shape (n_coefs, n_coefs)
        ``M1^-1`` and ``M2^-1``.
    reg : float
    n_steps : int
    relaxation : float
    meanwhile : callable or None
        Host work, called once after the steps are under way (here: at the
        end; a GPU computes meanwhile).
    gradient : ndarray of shape (1, n_children, n_coefs) or None
        The gradient at ``coef`` (``gaussian_posterior``'s): the first step
        takes it, with no pass over the data.

    Returns
    -------
    coef : ndarray of shape (1, n_children, n_coefs)
    """
    return _bohning.steps_on_host(softmax_gradient, softmax_stats, X, coef, w, targets,
                                  log_proba, maps, reg, n_steps, relaxation, meanwhile,
                                  gradient)


def _fisher_blocks(pairs, b, p):
    """The nodes' full Fisher information from its blocks between children 1..b-1.

    The weights ``delta_jk g_j - g_j g_k`` of child j sum to 0 over k (the
    probabilities sum to 1), so child 0's blocks are sums of the others:
    ``F_j0 = -sum_{k>=1} F_jk`` and ``F_00 = sum_{j,k>=1} F_jk``. Computing
    only the others saves ``b`` of the ``b(b+1)/2`` weighted Grams.

    Parameters
    ----------
    pairs : ndarray of shape (n_nodes, (b-1) b / 2, p (p+1) / 2)
        ``vech(F_jk)`` for ``1 <= j <= k < b``, row-major.
    b, p : int

    Returns
    -------
    curv : ndarray of shape (n_nodes, b p, b p)
    """
    combine, index = _fisher_layout(b, p)
    full = np.matmul(combine, pairs)  # vech(F_jk) for all 0 <= j <= k < b
    return full.reshape(pairs.shape[0], -1)[:, index]


@functools.lru_cache(maxsize=64)
def _fisher_layout(b, p):
    """How :func:`_fisher_blocks` assembles the Fisher information of b children.

    Returns
    -------
    combine : ndarray of shape (b (b+1) / 2, (b-1) b / 2)
        ``vech(F_jk)`` for all ``j <= k`` as signed sums of those with ``j >= 1``.
    index : ndarray of shape (b p, b p)
        Position of each entry of the (b p, b p) matrix in the stacked
        ``vech(F_jk)``, all ``j <= k`` (row-major), each of ``p (p+1) / 2``.
    """
    pair = _vech_index(b)  # child pair (j, k) -> its position among all pairs
    free = _vech_index(b - 1) if b > 1 else np.zeros((0, 0), dtype=np.int64)
    combine = np.zeros((b * (b + 1) // 2, (b - 1) * b // 2))
    for j in range(1, b):
        for k in range(j, b):
            combine[pair[j, k], free[j - 1, k - 1]] = 1.0
        for k in range(1, b):
            combine[pair[0, j], free[j - 1, k - 1]] -= 1.0
            combine[pair[0, 0], free[j - 1, k - 1]] += 1.0
    q = p * (p + 1) // 2
    block = pair[np.arange(b * p)[:, None] // p, np.arange(b * p)[None, :] // p]
    entry = _vech_index(p)[np.arange(b * p)[:, None] % p, np.arange(b * p)[None, :] % p]
    return combine, block * q + entry


def linear_predictor(X, coef, out):
    """Every linear expert's prediction, ``out[i, l] = coef[l] . X[i]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_coefs)
    out : ndarray of shape (n_samples, n_leaves)
        Modified in place.
    """
    np.dot(X, coef.T, out=out)
    return out


def log_mix(log_weight, log_values, out):
    """``out[i] = log sum_l exp(log_weight[i, l] + log_values[i, l])``: a log mixture.

    With the log gate weights and the experts' log-densities of y, each row's
    log predictive density.

    Parameters
    ----------
    log_weight, log_values : ndarray of shape (n_samples, n_leaves)
    out : ndarray of shape (n_samples,)
        Modified in place.
    """
    _log_mix(log_weight.size, log_weight, log_values, out)
    return out


def prune_experts(log_weight, experts):
    """Leave ``experts`` out of log gate weights: theirs -inf, each row renormalised.

    Parameters
    ----------
    log_weight : ndarray of shape (n_samples, n_leaves)
        Modified in place.
    experts : ndarray of shape (n_pruned,), dtype intp
        Not every expert.
    """
    log_weight[:, experts] = -np.inf
    log_weight -= logsumexp(log_weight, axis=1, keepdims=True)
    return log_weight


def mix(log_weight, values, out):
    """``out[i] = sum_l exp(log_weight[i, l]) * values[i, l]``.

    Parameters
    ----------
    log_weight, values : ndarray of shape (n_samples, n_leaves)
    out : ndarray of shape (n_samples,)
        Modified in place.
    """
    def group(start, stop):
        _mix_rows(log_weight[start:stop], values[start:stop], out[start:stop])

    list(_map_groups(values.shape[0], group))
    return out


def mix_categorical(X, coef, log_prior, out):
    """Mixture class probabilities ``sum_l g_l(x) softmax(B_l x)``, blocked over rows.

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

    def group(start, stop):
        blocks, rows = _blocks(start, stop, K * n_classes)
        log_proba = np.empty((rows, K * n_classes))
        for s, e in blocks:
            z = log_proba[: e - s]
            np.dot(X[s:e], flat.T, out=z)
            _log_softmax_groups(z, n_classes)
            _mix_categorical_rows(log_prior[s:e], z, n_classes, out[s:e])

    list(_map_groups(X.shape[0], group))
    return out

# --------------------------------------------------------------------------
# Predictive distributions and sparse routing (issue 5): the rows of
# ``_rowops``, run over the rows of the input.

_log_mix_row = _inline(_rowops.log_mix_row)
_top_k_row = _inline(_rowops.top_k_row)
_gaussian_mix_moments_row = _inline(_rowops.gaussian_mix_moments_row)
_gaussian_mix_sparse_row = _inline(_rowops.gaussian_mix_sparse_row)
_mix_categorical_sparse_row = _inline(_rowops.mix_categorical_sparse_row)
_gaussian_mix_quantiles_row = _inline(_rowops.gaussian_mix_quantiles_row)


def _log_mix_source(log_weight, log_values, out):
    for i in prange(log_weight.shape[0]):
        _log_mix_row(i, log_weight, log_values, out)


_log_mix = _RowKernel(_log_mix_source)


def _top_k_rows_source(log_weight, idx, weight, dropped):
    for i in prange(log_weight.shape[0]):
        _top_k_row(i, log_weight, idx, weight, dropped)


_top_k_rows = _RowKernel(_top_k_rows_source)


def _gaussian_mix_moments_source(log_weight, means, var, mean_out, var_out):
    for i in prange(means.shape[0]):
        _gaussian_mix_moments_row(i, log_weight, means, var, mean_out, var_out)


_gaussian_mix_moments = _RowKernel(_gaussian_mix_moments_source)


def _gaussian_mix_sparse_source(X, coef, var, idx, weight, mean_out, var_out):
    for i in prange(X.shape[0]):
        _gaussian_mix_sparse_row(i, X, coef, var, idx, weight, mean_out, var_out)


_gaussian_mix_sparse = _RowKernel(_gaussian_mix_sparse_source)


def _mix_categorical_sparse_source(X, coef, idx, weight, chunk_size, out):
    n = X.shape[0]
    n_chunks = (n + chunk_size - 1) // chunk_size
    for c in prange(n_chunks):
        z = np.empty(coef.shape[1])  # one logit buffer per chunk, not per row
        for i in range(c * chunk_size, min(n, (c + 1) * chunk_size)):
            _mix_categorical_sparse_row(i, X, coef, idx, weight, z, out)


_mix_categorical_sparse = _RowKernel(_mix_categorical_sparse_source)


def _gaussian_mix_quantiles_source(log_weight, means, sd, z, quantiles, out):
    for i in prange(means.shape[0]):
        _gaussian_mix_quantiles_row(i, log_weight, means, sd, z, quantiles, out)


_gaussian_mix_quantiles = _RowKernel(_gaussian_mix_quantiles_source)


def top_k_gate(log_weight, idx, weight, dropped):
    """Each row's ``k`` largest gate weights, renormalised, and the gate mass dropped.

    ``k`` is ``idx.shape[1]``. Experts come in decreasing order of weight; ties
    go to the lower expert index, so ``k = 1`` selects ``argmax``.

    Parameters
    ----------
    log_weight : ndarray of shape (n_samples, n_leaves)
        Log gate probabilities (each row's exponentials sum to 1).
    idx : ndarray of shape (n_samples, k), dtype int64
        Selected experts (modified in place).
    weight : ndarray of shape (n_samples, k)
        Their gate probabilities renormalised to sum to 1 (modified in place).
    dropped : ndarray of shape (n_samples,) or (0,)
        Gate probability of the experts left out (modified in place). An
        empty array skips it, and with it one exponential per expert and row.
    """
    _top_k_rows(log_weight.size, log_weight, idx, weight, dropped)
    return idx, weight, dropped


def gaussian_mix_moments(log_weight, means, var, mean_out, var_out):
    """Mean and variance of ``sum_l w_l N(means[:, l], var_l)`` for every row.

    The variance is ``sum_l w_l (var_l + (mu_l - mu)^2)`` (law of total
    variance), accumulated by West's weighted update, so it is never negative.

    Parameters
    ----------
    log_weight, means : ndarray of shape (n_samples, n_leaves)
    var : ndarray of shape (n_leaves,)
    mean_out, var_out : ndarray of shape (n_samples,)
        Modified in place.
    """
    _gaussian_mix_moments(means.size, log_weight, means, var, mean_out, var_out)
    return mean_out, var_out


def gaussian_mix_sparse(X, coef, var, idx, weight, mean_out, var_out):
    """Mean and variance of the mixture of each row's selected Gaussian experts.

    Only the selected experts' means ``coef[idx[i, j]] . x_i`` are computed:
    ``n k p`` multiply-adds instead of ``n K p``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_coefs)
    var : ndarray of shape (n_leaves,)
    idx : ndarray of shape (n_samples, k), dtype int64
    weight : ndarray of shape (n_samples, k)
        Weights of the selected experts (rows sum to 1).
    mean_out, var_out : ndarray of shape (n_samples,)
        Modified in place.
    """
    _gaussian_mix_sparse(idx.size * X.shape[1], X, coef, var, idx, weight, mean_out, var_out)
    return mean_out, var_out


def mix_categorical_sparse(X, coef, idx, weight, out):
    """Class probabilities of the mixture of each row's selected logistic experts.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_classes, n_coefs)
    idx : ndarray of shape (n_samples, k), dtype int64
    weight : ndarray of shape (n_samples, k)
        Weights of the selected experts (rows sum to 1).
    out : ndarray of shape (n_samples, n_classes)
        Modified in place.
    """
    work = idx.size * coef.shape[1] * X.shape[1]
    _mix_categorical_sparse(work, X, coef, idx, weight, _config.CHUNK_SIZE, out)
    return out


def gaussian_mix_quantiles(log_weight, means, var, z, quantiles, out):
    """Quantiles of ``sum_l w_l N(means[:, l], var_l)`` for every row.

    A safeguarded Newton iteration inside the bracket spanned by the
    components' own quantiles ``means + sqrt(var) z`` (bisection when Newton
    would leave it or stalls), to about 1e-14 of the bracket's scale.

    Parameters
    ----------
    log_weight, means : ndarray of shape (n_samples, n_leaves)
    var : ndarray of shape (n_leaves,)
    z : ndarray of shape (n_quantiles,)
        Standard normal quantiles of ``quantiles``.
    quantiles : ndarray of shape (n_quantiles,)
        Levels in (0, 1).
    out : ndarray of shape (n_samples, n_quantiles)
        Modified in place.
    """
    work = means.size * quantiles.shape[0] * 64
    _gaussian_mix_quantiles(work, log_weight, means, np.sqrt(var), z, quantiles, out)
    return out


# --------------------------------------------------------------------------
# Array plumbing: the EM layer allocates, exponentiates and reshapes (n, K)
# arrays only through these, so the same code runs on every backend. On the
# CPU they are plain NumPy, with nothing added to the old inline code.


@_jit
def _random_rows(seed, start, stop, out):
    """Rows ``start:stop`` of :func:`random_responsibilities`."""
    useed = np.uint64(seed)
    K = out.shape[1]
    for i in range(start, stop):
        total = 0.0
        for k in range(K):
            out[i, k] = _rowops_uniform(useed, np.uint64(i * K + k))
            total += out[i, k]
        for k in range(K):
            out[i, k] /= total


def random_responsibilities(n_samples, n_columns, seed):
    """Uniform random rows normalised to sum to 1 (the random start of EM).

    Draw ``(i, k)`` is the counter-based ``_rowops.uniform(seed, i * n_columns +
    k)``: it depends on the seed and its position only, so every backend and
    every thread count gives the same bits, and a GPU draws its start where it
    computes instead of receiving an (n, K) array.

    Parameters
    ----------
    n_samples, n_columns : int
    seed : int
        Below 2**32.

    Returns
    -------
    resp : ndarray of shape (n_samples, n_columns)
    """
    resp = np.empty((n_samples, n_columns))
    list(_map_groups(n_samples, lambda start, stop: _random_rows(seed, start, stop, resp)))
    return resp


def hard_responsibilities(labels, n_columns, softening):
    """A hard partition softened: ``1 - softening + softening / K`` on each row's label,
    ``softening / K`` elsewhere.

    Parameters
    ----------
    labels : ndarray of shape (n_samples,), dtype int
        In ``[0, n_columns)``.
    n_columns : int
    softening : float

    Returns
    -------
    resp : ndarray of shape (n_samples, n_columns)
    """
    resp = np.full((labels.shape[0], n_columns), softening / n_columns)
    resp[np.arange(labels.shape[0]), labels] += 1.0 - softening
    return resp


def device_memory_errors():
    """A context for a fit's work on the device: none here (NumPy raises MemoryError itself).

    Returns
    -------
    context manager
    """
    return contextlib.nullcontext()


def to_device(a):
    """``a`` where this backend's kernels read it: on the CPU, ``a`` itself.

    Parameters
    ----------
    a : ndarray

    Returns
    -------
    ndarray
    """
    return a


def to_host(a, out=None):
    """``a`` as a NumPy array (no copy on the CPU), or copied into ``out``.

    Parameters
    ----------
    a : ndarray
    out : ndarray of a's shape, default=None

    Returns
    -------
    ndarray
    """
    if out is None:
        return np.asarray(a)
    out[...] = a
    return out


def empty(shape, dtype=np.float64):
    """An uninitialised array of ``shape``.

    Parameters
    ----------
    shape : tuple of int
    dtype : dtype, default=np.float64

    Returns
    -------
    ndarray of shape ``shape``
    """
    return np.empty(shape, dtype=dtype)


def exp(a, out):
    """Elementwise ``exp(a)`` into ``out`` (which may be ``a``), over row groups.

    Parameters
    ----------
    a, out : ndarray of shape (n_samples, n_columns)
        ``out`` is modified in place.

    Returns
    -------
    out : ndarray
    """
    def group(start, stop):
        _exp_rows(a[start:stop], out[start:stop])

    list(_map_groups(a.shape[0], group))
    return out


def as_column(w):
    """``w`` of shape (n_samples,) seen as one weight column, shape (n_samples, 1).

    Parameters
    ----------
    w : ndarray of shape (n_samples,)

    Returns
    -------
    ndarray of shape (n_samples, 1)
    """
    return w[:, None]


def total(w):
    """``sum_i w_i`` as a float.

    Parameters
    ----------
    w : ndarray of shape (n_samples,)

    Returns
    -------
    float
    """
    return float(np.sum(w))


def leaf_log_prior(level_log_gates, out):
    """Sum the log gate probabilities of every level along each leaf's path.

    Level d has ``m_d`` edges; leaf l sits below edge ``l // (n_leaves // m_d)``.

    Parameters
    ----------
    level_log_gates : list of ndarray of shape (n_samples, m_d)
    out : ndarray of shape (n_samples, n_leaves)
        Modified in place.

    Returns
    -------
    out : ndarray
    """
    n, n_leaves = out.shape
    out[:] = 0.0
    for log_gate in level_log_gates:
        n_edges = log_gate.shape[1]
        view = out.reshape(n, n_edges, n_leaves // n_edges)
        view += log_gate[:, :, None]
    return out


def level_targets(resp, n_nodes, n_children, root):
    """Posterior targets and mass of the gates of one level.

    Parameters
    ----------
    resp : ndarray of shape (n_samples, n_leaves)
    n_nodes, n_children : int
        Gates of the level and children per gate.
    root : bool
        The root's mass is 1 and is not returned.

    Returns
    -------
    targets : ndarray of shape (n_samples, n_nodes * n_children)
        Responsibility summed over the leaves below each edge.
    mass : ndarray of shape (n_samples, n_nodes) or None
        Responsibility reaching each gate; None at the root.
    """
    n, n_leaves = resp.shape
    n_edges = n_nodes * n_children
    stride = n_leaves // n_edges
    targets = resp if stride == 1 else resp.reshape(n, n_edges, stride).sum(axis=2)
    if root:
        return np.ascontiguousarray(targets), None
    mass = targets.reshape(n, n_nodes, n_children).sum(axis=2)
    return np.ascontiguousarray(targets), mass


def weighted_sums(values, w, factor=None):
    """``sum_i w_i values[i, l]`` (times ``factor[i, l]`` if given) for every column l.

    Parameters
    ----------
    values : ndarray of shape (n_samples, n_columns)
    w : ndarray of shape (n_samples,)
    factor : ndarray of shape (n_samples, n_columns) or None

    Returns
    -------
    ndarray of shape (n_columns,)
    """
    return w @ (values if factor is None else values * factor)
