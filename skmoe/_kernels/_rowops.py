"""Per-row maths shared by every backend: plain Python, compiled by each.

``cpu.py`` compiles these with ``numba.njit(inline="always")``, ``cuda.py`` with
``cuda.jit(device=True)``; they use only ``math``, loops and NumPy's unsigned
integer constants, allocate nothing and write only to what they are given.
"""

import math

import numpy as np


def logsumexp_span(row, start, count):
    """``log sum_j exp(row[start + j])`` for ``j < count``, without overflow."""
    top = row[start]
    for j in range(1, count):
        if row[start + j] > top:
            top = row[start + j]
    total = 0.0
    for j in range(count):
        total += math.exp(row[start + j] - top)
    return top + math.log(total)


# Wellons' "lowbias32" integer hash. Products stay below 2**64 (a 32-bit value
# times a 32-bit constant), so no backend ever overflows, the CUDA simulator's
# NumPy scalars included.
_LOW32 = np.uint64(0xFFFFFFFF)
_MUL1 = np.uint64(0x7FEB352D)
_MUL2 = np.uint64(0x846CA68B)
_SHIFT15 = np.uint64(15)
_SHIFT16 = np.uint64(16)
_SHIFT21 = np.uint64(21)
_SHIFT32 = np.uint64(32)
_SHIFT11 = np.uint64(11)
_STREAM = np.uint64(0x9E3779B9)


def uniform(seed, index):
    """A uniform draw in (0, 1) for ``(seed, index)``: counter-based, so any
    thread of any backend computes draw ``index`` alone and gets the same bits.

    ``seed`` (below 2**32) and ``index`` are unsigned 64-bit integers. Four
    rounds of the hash, each on the last one's result mixed with a new input
    (the backends compile this function alone, so the hash is not a call):
    the index's high word, then the seed (giving the key), the index's low
    word (the high 32 bits of the draw), then a stream constant (the low ones).
    """
    x = index >> _SHIFT32
    key = x
    high = x
    for step in range(4):
        if step == 1:
            x ^= seed
        elif step == 2:
            key = x
            x = (index & _LOW32) ^ key
        elif step == 3:
            high = x
            x ^= key ^ _STREAM
        x ^= x >> _SHIFT16
        x = (x * _MUL1) & _LOW32
        x ^= x >> _SHIFT15
        x = (x * _MUL2) & _LOW32
        x ^= x >> _SHIFT16
    # 53 random bits, centred in their interval: never 0, never 1.
    return (float((high << _SHIFT21) | (x >> _SHIFT11)) + 0.5) * 1.1102230246251565e-16


# --------------------------------------------------------------------------
# Predictive distributions and sparse routing: row ``i`` of each kernel. Each
# backend runs them over the rows (``prange`` on the CPU, a thread a row on a
# GPU); they read only row ``i`` of their inputs and write only row ``i``.

# Newton steps and bisections per quantile: bisection alone halves the bracket
# each step, and the bracket starts at most a few component widths wide, so 200
# steps reach any tolerance above the spacing of float64.
QUANTILE_MAX_STEPS = 200

# Relative tolerance of the quantiles, on the scale of the bracket and the
# narrowest component.
QUANTILE_RTOL = 1e-14


def log_mix_row(i, log_weight, log_values, out):
    """``out[i] = log sum_l exp(log_weight[i, l] + log_values[i, l])``, without overflow."""
    K = log_weight.shape[1]
    top = -math.inf
    for leaf in range(K):
        top = max(top, log_weight[i, leaf] + log_values[i, leaf])
    if top == -math.inf:
        out[i] = top  # every term is 0
        return
    total = 0.0
    for leaf in range(K):
        total += math.exp(log_weight[i, leaf] + log_values[i, leaf] - top)
    out[i] = top + math.log(total)


def top_k_row(i, log_weight, idx, weight, dropped):
    """The k largest log-weights of row i, renormalised, and the mass left out."""
    K = log_weight.shape[1]
    k = idx.shape[1]
    # Insertion into the descending list weight[i, :count]; an equal value never
    # displaces one already kept, so ties go to the lower expert index.
    count = 0
    for leaf in range(K):
        v = log_weight[i, leaf]
        if count == k and not v > weight[i, k - 1]:
            continue
        pos = count if count < k else k - 1
        while pos > 0 and v > weight[i, pos - 1]:
            weight[i, pos] = weight[i, pos - 1]
            idx[i, pos] = idx[i, pos - 1]
            pos -= 1
        weight[i, pos] = v
        idx[i, pos] = leaf
        if count < k:
            count += 1
    if dropped.shape[0] > 0:
        last_value = weight[i, k - 1]
        last_index = idx[i, k - 1]
        # The mass left out is summed from its own terms, not as 1 - kept, so
        # that a tiny dropped mass keeps its relative precision.
        left_out = 0.0
        for leaf in range(K):
            v = log_weight[i, leaf]
            if v < last_value or (v == last_value and leaf > last_index):
                left_out += math.exp(v)
        dropped[i] = left_out
    top = weight[i, 0]
    kept = 0.0
    for j in range(k):
        weight[i, j] = math.exp(weight[i, j] - top)
        kept += weight[i, j]
    for j in range(k):
        weight[i, j] /= kept


def gaussian_mix_moments_row(i, log_weight, means, var, mean_out, var_out):
    """Mean and variance of row i's Gaussian mixture (law of total variance)."""
    # West's weighted update: no E[y^2] - E[y]^2 cancellation.
    total = 0.0
    mean = 0.0
    spread = 0.0
    within = 0.0
    for leaf in range(means.shape[1]):
        w = math.exp(log_weight[i, leaf])
        if w == 0.0:
            continue
        total += w
        delta = means[i, leaf] - mean
        mean += (w / total) * delta
        spread += w * delta * (means[i, leaf] - mean)
        within += w * var[leaf]
    mean_out[i] = mean
    var_out[i] = (within + spread) / total


def gaussian_mix_sparse_row(i, X, coef, var, idx, weight, mean_out, var_out):
    """Mixture mean and variance over row i's selected experts only."""
    total = 0.0
    mean = 0.0
    spread = 0.0
    within = 0.0
    for j in range(idx.shape[1]):
        w = weight[i, j]
        if w == 0.0:
            continue
        leaf = idx[i, j]
        mu = 0.0
        for a in range(X.shape[1]):
            mu += coef[leaf, a] * X[i, a]
        total += w
        delta = mu - mean
        mean += (w / total) * delta
        spread += w * delta * (mu - mean)
        within += w * var[leaf]
    mean_out[i] = mean
    var_out[i] = (within + spread) / total


def mix_categorical_sparse_row(i, X, coef, idx, weight, z, out):
    """``out[i] = sum_j weight[i, j] softmax(coef[idx[i, j]] x_i)``; ``z`` holds n_classes."""
    n_classes = coef.shape[1]
    for m in range(n_classes):
        out[i, m] = 0.0
    for j in range(idx.shape[1]):
        w = weight[i, j]
        if w == 0.0:
            continue
        leaf = idx[i, j]
        top = -math.inf
        for m in range(n_classes):
            acc = 0.0
            for a in range(X.shape[1]):
                acc += coef[leaf, m, a] * X[i, a]
            z[m] = acc
            top = max(top, acc)
        # The softmax from the shifted exponentials, each computed once.
        total = 0.0
        for m in range(n_classes):
            z[m] = math.exp(z[m] - top)
            total += z[m]
        for m in range(n_classes):
            out[i, m] += w * (z[m] / total)


def gaussian_mix_quantiles_row(i, log_weight, means, sd, z, quantiles, out):
    """Quantiles of row i's Gaussian mixture by safeguarded Newton (rtsafe)."""
    K = means.shape[1]
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    inv_sqrt2pi = 1.0 / math.sqrt(2.0 * math.pi)
    for m in range(quantiles.shape[0]):
        # Below the median solve F(y) = q, above it S(y) = 1 - q: each tail
        # probability is then computed without cancellation.
        upper = quantiles[m] > 0.5
        target = 1.0 - quantiles[m] if upper else quantiles[m]
        # Every component's CDF is <= q at the smallest component quantile and
        # >= q at the largest, so the mixture's q-quantile lies between them.
        lo = math.inf
        hi = -math.inf
        sd_min = math.inf
        for leaf in range(K):
            if log_weight[i, leaf] == -math.inf:
                continue
            y_l = means[i, leaf] + sd[leaf] * z[m]
            lo = min(lo, y_l)
            hi = max(hi, y_l)
            sd_min = min(sd_min, sd[leaf])
        if not hi > lo:
            out[i, m] = lo  # one component (or all alike): its quantile is exact
            continue
        xtol = QUANTILE_RTOL * (abs(lo) + abs(hi) + sd_min)
        x = 0.5 * (lo + hi)
        step_old = hi - lo
        step = step_old
        for _ in range(QUANTILE_MAX_STEPS):
            tail = 0.0
            density = 0.0
            for leaf in range(K):
                w = math.exp(log_weight[i, leaf])
                if w == 0.0:
                    continue
                t = (x - means[i, leaf]) / sd[leaf]
                tail += w * 0.5 * math.erfc((t if upper else -t) * inv_sqrt2)
                density += w * inv_sqrt2pi * math.exp(-0.5 * t * t) / sd[leaf]
            f = target - tail if upper else tail - target  # increasing in x
            if f == 0.0:
                break
            if f < 0.0:
                lo = x
            else:
                hi = x
            # Newton when it stays inside the bracket and shrinks the step fast
            # enough (Numerical Recipes' rtsafe); bisection otherwise.
            newton_x = x - f / density if density > 0.0 else math.nan
            if (not (lo < newton_x < hi)) or abs(2.0 * f) > abs(step_old * density):
                step_old = step
                step = 0.5 * (hi - lo)
                x = lo + step
            else:
                step_old = step
                step = x - newton_x
                x = newton_x
            if abs(step) < xtol or hi - lo < xtol:
                break
        out[i, m] = x
