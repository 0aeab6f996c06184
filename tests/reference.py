"""Slow, obviously correct NumPy/SciPy versions of every kernel and of one EM step.

Nothing here shares code with skmoe: loops over samples and experts, SciPy's
``logsumexp``/``log_softmax``/``norm.logpdf``, and explicit outer products.
"""

import numpy as np
from scipy import stats
from scipy.special import log_softmax, logsumexp


def affine_log_softmax(X, coef):
    n_nodes, b, p = coef.shape
    out = np.empty((X.shape[0], n_nodes * b))
    for v in range(n_nodes):
        out[:, v * b : (v + 1) * b] = log_softmax(X @ coef[v].T, axis=1)
    return out


def gaussian_log_prob(X, y, coef, var):
    out = np.empty((X.shape[0], coef.shape[0]))
    for k in range(coef.shape[0]):
        out[:, k] = stats.norm.logpdf(y, loc=X @ coef[k], scale=np.sqrt(var[k]))
    return out


def categorical_log_prob(X, coef, y_idx):
    n = X.shape[0]
    out = np.empty((n, coef.shape[0]))
    for k in range(coef.shape[0]):
        log_p = log_softmax(X @ coef[k].T, axis=1)
        out[:, k] = log_p[np.arange(n), y_idx]
    return out


def posterior(log_prior, log_lik, w):
    joint = log_prior + log_lik
    norm = logsumexp(joint, axis=1)
    return joint - norm[:, None], float(np.sum(w * norm))


def weighted_grams(X, weights):
    n, p = X.shape
    out = np.zeros((weights.shape[1], p, p))
    for m in range(weights.shape[1]):
        for i in range(n):
            out[m] += weights[i, m] * np.outer(X[i], X[i])
    return out


def wls_stats(X, y, resp, w):
    wr = resp * w[:, None]
    gram = weighted_grams(X, wr)
    xty = np.array([(wr[:, k] * y) @ X for k in range(resp.shape[1])])
    yty = np.array([np.sum(wr[:, k] * y * y) for k in range(resp.shape[1])])
    return gram, xty, yty, wr.sum(axis=0)


def softmax_stats(X, coef, w, mass, targets):
    """Objective, gradient, Fisher information and Boehning Gram, sample by sample."""
    n, p = X.shape
    n_nodes, b, _ = coef.shape
    if mass is None:
        mass = np.ones((n, n_nodes))
    objective = np.zeros(n_nodes)
    grad = np.zeros((n_nodes, b, p))
    fisher = np.zeros((n_nodes, b * p, b * p))
    gram = np.zeros((n_nodes, p, p))
    for v in range(n_nodes):
        for i in range(n):
            log_g = log_softmax(coef[v] @ X[i])
            g = np.exp(log_g)
            T = targets[i, v * b : (v + 1) * b]
            objective[v] += w[i] * T @ log_g
            grad[v] += w[i] * np.outer(T - mass[i, v] * g, X[i])
            curvature = np.kron(np.diag(g) - np.outer(g, g), np.outer(X[i], X[i]))
            fisher[v] += w[i] * mass[i, v] * curvature
            gram[v] += w[i] * mass[i, v] * np.outer(X[i], X[i])
    return objective, grad, fisher, gram


def mix(log_weight, values):
    return np.sum(np.exp(log_weight) * values, axis=1)


def mix_categorical(X, coef, log_prior):
    out = np.zeros((X.shape[0], coef.shape[1]))
    for k in range(coef.shape[0]):
        out += np.exp(log_prior[:, [k]]) * np.exp(log_softmax(X @ coef[k].T, axis=1))
    return out


def gaussian_moe_em_step(X, y, w, gate_coef, expert_coef, expert_var):
    """One EM iteration of a flat Gaussian MoE without ridge, full Newton gate step.

    Returns the log-likelihood before the step and the new parameters, with the
    gate's Newton step taken in full (the engine halves it only when the full
    step lowers the gate objective, which the caller's data must avoid).
    """
    K, p = expert_coef.shape
    log_prior = log_softmax(X @ gate_coef.T, axis=1)
    log_lik = gaussian_log_prob(X, y, expert_coef, expert_var)
    log_resp, ll = posterior(log_prior, log_lik, w)
    resp = np.exp(log_resp)
    new_coef = np.empty_like(expert_coef)
    new_var = np.empty_like(expert_var)
    for k in range(K):
        sw = np.sqrt(w * resp[:, k])
        beta = np.linalg.lstsq(X * sw[:, None], y * sw, rcond=None)[0]
        new_coef[k] = beta
        new_var[k] = np.sum(w * resp[:, k] * (y - X @ beta) ** 2) / np.sum(w * resp[:, k])
    _, grad, fisher, _ = softmax_stats(X, gate_coef[None], w, None, resp)
    # Child 0 is the reference: solve on the other children's coefficients.
    step = np.linalg.solve(fisher[0][p:, p:], grad[0, 1:].ravel())
    new_gate = gate_coef.copy()
    new_gate[1:] += step.reshape(K - 1, p)
    return ll, new_gate, new_coef, new_var


def _lowbias32(x):
    """Wellons' lowbias32 hash, on Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def uniform_draw(seed, index):
    """Counter-based draw ``index`` of ``seed``: a key from the seed and the index's
    high word, then the draw's high and low 32 bits from its low word."""
    key = _lowbias32(seed ^ _lowbias32(index >> 32))
    high = _lowbias32((index & 0xFFFFFFFF) ^ key)
    low = _lowbias32(high ^ key ^ 0x9E3779B9)
    return (((high << 21) | (low >> 11)) + 0.5) / 2.0**53


def random_responsibilities(n, K, seed):
    """The random start: draw ``i K + k`` at (i, k), rows normalised."""
    resp = np.array([[uniform_draw(seed, i * K + k) for k in range(K)] for i in range(n)])
    return resp / resp.sum(axis=1, keepdims=True)


def weighted_scaling(X, w):
    """Weighted column means and standard deviations over rows of positive weight.

    Columns are divided by their largest magnitude first (so that extreme
    values neither overflow nor underflow); constant columns get the mean of
    their value and a scale of 1.
    """
    X, w = X[w > 0], w[w > 0]
    max_abs = np.abs(X).max(axis=0)
    max_abs[max_abs == 0] = 1.0
    unit = X / max_abs
    unit_mean = np.average(unit, axis=0, weights=w)
    unit_var = np.average((unit - unit_mean) ** 2, axis=0, weights=w)
    mean, scale = unit_mean * max_abs, np.sqrt(unit_var) * max_abs
    constant = np.ptp(X, axis=0) == 0
    mean[constant] = X[0, constant]
    scale[constant | ~(scale > 0) | ~np.isfinite(scale)] = 1.0
    return mean, scale


def standardised_design(X, idx, mean, scale, bound):
    """An intercept column, then ``(X[:, idx] - mean) / scale`` clipped to ``+-bound``.

    In exact arithmetic by way of ``fractions`` when the float difference
    overflows, so that no overflow rule is shared with the kernel.
    """
    from fractions import Fraction

    out = np.empty((X.shape[0], idx.size + 1))
    out[:, 0] = 1.0
    for i in range(X.shape[0]):
        for j, column in enumerate(idx):
            with np.errstate(over="ignore"):
                value = (X[i, column] - mean[j]) / scale[j]
            if not np.isfinite(value):
                exact = (Fraction(X[i, column]) - Fraction(mean[j])) / Fraction(scale[j])
                value = bound if exact > 0 else -bound
                value = float(exact) if abs(exact) <= bound else value
            out[i, j + 1] = min(max(value, -bound), bound)
    return out


# --------------------------------------------------------------------------
# Standard errors: the Hessian of the observed log-likelihood by finite differences


def mixture_log_likelihood(theta, names, X, y, w, classes=None):
    """``sum_i w_i log p(y_i | x_i)`` of a flat or hierarchical MoE in the user's units.

    ``theta`` holds the free parameters named as by ``standard_errors``
    (``"gate[ level d node v] child j <column>"``, ``"expert l [class c ]<column>"``,
    ``"expert l variance"``), columns ``intercept`` or a feature name ``x<j>``;
    every gate's child 0 and every classifier expert's first class are 0. The
    likelihood is written from these names alone, independently of skmoe.
    """
    gates, experts = {}, {}
    for value, name in zip(theta, names):
        words = name.split()
        column = 0 if words[-1] == "intercept" else (
            None if words[-1] == "variance" else 1 + int(words[-1][1:]))
        if words[0] == "gate":
            level = int(words[2]) if words[1] == "level" else 0
            node = int(words[words.index("node") + 1]) if "node" in words else 0
            child = int(words[words.index("child") + 1])
            gates.setdefault((level, node), {}).setdefault(child, {})[column] = value
        else:
            leaf = int(words[1])
            key = words[3] if words[2] == "class" else "y"
            experts.setdefault(leaf, {}).setdefault(key, {})[column] = value
    Xd = np.hstack([np.ones((X.shape[0], 1)), X])

    def linear(coefs):
        beta = np.zeros(Xd.shape[1])
        for column, value in coefs.items():
            beta[column] = value
        return Xd @ beta

    n_levels = 1 + max(level for level, _ in gates) if gates else 1
    branching = []
    for level in range(n_levels):
        children = [1 + max(c) for (lv, _), c in gates.items() if lv == level]
        branching.append(max(children, default=1))  # one expert: no gate parameters
    n_leaves = int(np.prod(branching))
    log_prior = np.zeros((X.shape[0], n_leaves))
    for leaf in range(n_leaves):
        node = 0
        rest = leaf
        for level, b in enumerate(branching):
            stride = int(np.prod(branching[level + 1:]))
            child = rest // stride
            rest %= stride
            rows = gates.get((level, node), {})
            logits = np.column_stack([np.zeros(X.shape[0])]
                                     + [linear(rows[j]) for j in range(1, b)])
            log_prior[:, leaf] += logsumexp(logits[:, [child]], axis=1) - logsumexp(logits,
                                                                                   axis=1)
            node = node * b + child
    log_lik = np.empty_like(log_prior)
    for leaf in range(n_leaves):
        if classes is None:
            coefs = dict(experts[leaf]["y"])
            var = coefs.pop(None)
            r = y - linear(coefs)
            log_lik[:, leaf] = -0.5 * np.log(2 * np.pi * var) - 0.5 * r**2 / var
        else:
            logits = np.column_stack([np.zeros(X.shape[0])] + [
                linear(experts[leaf][str(c)]) for c in classes[1:]])
            log_p = logits - logsumexp(logits, axis=1, keepdims=True)
            log_lik[:, leaf] = log_p[np.arange(X.shape[0]), np.searchsorted(classes, y)]
    return float(w @ logsumexp(log_prior + log_lik, axis=1))


def finite_difference_hessian(theta, names, X, y, w, classes=None, step=1e-4):
    """Central-difference Hessian of ``mixture_log_likelihood`` at ``theta``."""
    theta = np.asarray(theta, dtype=float)
    D = theta.size
    h = step * np.maximum(1.0, np.abs(theta))

    def f(delta):
        return mixture_log_likelihood(theta + delta, names, X, y, w, classes)

    H = np.empty((D, D))
    for a in range(D):
        for b in range(a, D):
            ea = np.zeros(D)
            eb = np.zeros(D)
            ea[a] = h[a]
            eb[b] = h[b]
            H[a, b] = H[b, a] = (f(ea + eb) - f(ea - eb) - f(eb - ea) + f(-ea - eb)) / (
                4 * h[a] * h[b])
    return H
