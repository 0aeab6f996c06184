"""Observed information of a fitted mixture of experts, by Louis' identity.

The observed log-likelihood ``l(theta) = sum_i w_i log sum_l g_l(x_i) f_l(y_i | x_i)``
has no simple Hessian, but with the responsibilities ``h_il`` and the
complete-data terms ``c_il = log g_l(x_i) + log f_l(y_i | x_i)`` (Louis 1982)::

    -d2 l = sum_i w_i ( E_h[-d2 c_i] - Cov_h[d c_i] )

The first term is block-diagonal (every gate node, every expert on its own)
and is made of weighted Grams; the second is the weighted covariance, over the
experts, of each sample's complete-data scores. Both are sums over samples,
taken here in blocks of rows, on the host, in the standardised space of the
fit. The information is that of the unpenalised log-likelihood (the ridge
terms are left out, as R's flexmix has none).

Parameter order (the rows of the information):

- every gate node, level by level, and within a node every non-reference child
  j = 1 .. b-1: its coefficients on the gate design (intercept first);
- every expert, leaf by leaf: the family's parameters (``expert_layout``).
"""

import numpy as np
from scipy.special import log_softmax

# Elements of the (rows, leaves, parameters) score block of one pass: 16 MiB.
_BLOCK_ELEMENTS = 1 << 21


def gate_layout(tree, n_gate_coefs):
    """Offset of each gate node's block in the parameter vector, and the gate total.

    Returns
    -------
    offsets : list of ndarray of shape (n_nodes[d],)
    n_gate_params : int
    """
    offsets, start = [], 0
    for nodes, b in zip(tree.n_nodes, tree.branching):
        size = (b - 1) * n_gate_coefs
        offsets.append(start + size * np.arange(nodes))
        start += size * nodes
    return offsets, start


def observed_information(tree, experts, params, X_gate, X_expert, target, weight):
    """Observed information of the unpenalised log-likelihood, standardised space.

    Parameters
    ----------
    tree : GatingTree
    experts : expert family (``GaussianExperts`` or ``CategoricalExperts``)
    params : dict
        Host arrays, as kept by the estimator.
    X_gate, X_expert : ndarray of shape (n_samples, n_gate_coefs / n_expert_coefs)
    target : ndarray of shape (n_samples,)
    weight : ndarray of shape (n_samples,)

    Returns
    -------
    information : ndarray of shape (n_params, n_params)
    """
    n, p_gate = X_gate.shape
    offsets, n_gate = gate_layout(tree, p_gate)
    q = experts.n_leaf_params(X_expert.shape[1])
    n_params = n_gate + tree.n_leaves * q
    information = np.zeros((n_params, n_params))
    rows = max(1, _BLOCK_ELEMENTS // max(1, tree.n_leaves * n_params))
    for start in range(0, n, rows):
        block = slice(start, min(n, start + rows))
        _add_block(information, tree, experts, params, offsets, n_gate, q,
                   X_gate[block], X_expert[block], target[block], weight[block])
    return information


def _add_block(information, tree, experts, params, offsets, n_gate, q, X_gate, X_expert,
               target, weight):
    n, p_gate = X_gate.shape
    L = tree.n_leaves
    log_gates = [log_softmax(np.einsum("ia,vja->ivj", X_gate, coef), axis=2)
                 for coef in params["gates"]]
    log_prior = np.zeros((n, L))
    for d, log_gate in enumerate(log_gates):
        log_prior += log_gate.reshape(n, -1)[:, np.arange(L) // tree.stride[d]]
    gates = [np.exp(log_gate) for log_gate in log_gates]
    log_joint = log_prior + experts.sample_log_prob(params["experts"], X_expert, target)
    resp = np.exp(log_softmax(log_joint, axis=1))
    u = weight[:, None] * resp

    # Complete-data scores of every sample under every expert, (n, L, params).
    scores = np.zeros((n, L, information.shape[0]))
    for d, g in enumerate(gates):
        b = tree.branching[d]
        if b == 1:
            continue
        size = (b - 1) * p_gate
        for leaf in range(L):
            edge = leaf // tree.stride[d]
            node, child = divmod(edge, b)
            residual = -g[:, node, 1:]
            if child > 0:
                residual[:, child - 1] += 1.0
            at = offsets[d][node]
            scores[:, leaf, at:at + size] = (residual[:, :, None] * X_gate[:, None, :]).reshape(
                n, size)
    leaf_scores = experts.sample_scores(params["experts"], X_expert, target)
    for leaf in range(L):
        at = n_gate + leaf * q
        scores[:, leaf, at:at + q] = leaf_scores[:, leaf]

    # - Cov_h of the scores: rows sqrt(w h) (s_l - s_bar).
    centred = scores - np.einsum("il,ilk->ik", resp, scores)[:, None, :]
    centred *= np.sqrt(u)[:, :, None]
    flat = centred.reshape(n * L, -1)
    information -= flat.T @ flat

    # + E_h of the complete-data information, block by block.
    for d, g in enumerate(gates):
        b = tree.branching[d]
        if b == 1:
            continue
        mass = u.reshape(n, tree.n_nodes[d], -1).sum(axis=2)  # weight reaching each node
        free = g[:, :, 1:]
        curvature = -free[:, :, :, None] * free[:, :, None, :]
        curvature[:, :, np.arange(b - 1), np.arange(b - 1)] += free
        size = (b - 1) * p_gate
        for node in range(tree.n_nodes[d]):
            at = offsets[d][node]
            block = np.einsum("i,ijk,ia,ic->jakc", mass[:, node], curvature[:, node],
                              X_gate, X_gate).reshape(size, size)
            information[at:at + size, at:at + size] += block
    leaf_information = experts.complete_information(params["experts"], X_expert, target, u)
    for leaf in range(L):
        at = n_gate + leaf * q
        information[at:at + q, at:at + q] += leaf_information[leaf]


def covariance_from_information(information, rtol=1e-10):
    """Inverse of the information on its identified part, and the unidentified parameters.

    A direction of (numerically) zero information, such as the coefficient of a
    column that is constant in the data, has no finite variance: the parameters
    it involves are reported as unidentified, and the inverse is taken on the
    others (a parameter free of every null direction keeps its exact variance).

    Returns
    -------
    covariance : ndarray of shape (n_params, n_params)
        Zero in the rows and columns of unidentified parameters.
    unidentified : ndarray of shape (n_params,), dtype bool
        Parameters with a component in a direction of information at most
        ``rtol`` times the largest (or negative: not at a maximum).
    """
    information = 0.5 * (information + information.T)
    eigval, eigvec = np.linalg.eigh(information)
    top = max(float(np.abs(eigval).max(initial=0.0)), np.finfo(float).tiny)
    null = eigval <= rtol * top
    unidentified = (np.abs(eigvec[:, null]) > 1e-8).any(axis=1)
    # The pseudo-inverse: exact for every parameter orthogonal to the null space.
    covariance = (eigvec[:, ~null] / eigval[~null]) @ eigvec[:, ~null].T
    covariance[unidentified] = 0.0
    covariance[:, unidentified] = 0.0
    return covariance, unidentified
