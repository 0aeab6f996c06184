"""Observed information of a fitted mixture of experts, by Louis' identity.

The observed log-likelihood ``l(theta) = sum_i w_i log sum_l g_l(x_i) f_l(y_i | x_i)``
has no simple Hessian, but with the responsibilities ``h_il`` and the
complete-data terms ``c_il = log g_l(x_i) + log f_l(y_i | x_i)`` (Louis 1982)::

    -d2 l = sum_i w_i ( E_h[-d2 c_i] - Cov_h[d c_i] )

The first term is block-diagonal (every gate node, every expert on its own).
The second has structure too: leaf l's gate score is ``rho_il (x) x_i``, where
``rho_il`` holds, at every gate node on l's path, the child's indicator minus
the gate probabilities (children 1 .. b-1), and its expert score ``b_il`` sits
in leaf l's block alone. So, with ``rho_bar = E_h[rho]``:

- gates: ``sum_i w_i (E_h[-d2 log g] - Cov_h[rho_i]) (x) x_i x_i^T``;
- gate and expert l: ``-sum_i w_i h_il ((rho_il - rho_bar_i) (x) x_i) b_il^T``;
- experts l and m: ``-sum_i w_i (delta_lm h_il - h_il h_im) b_il b_im^T``,

which costs about ``n (gate + expert parameters)^2`` rather than ``n K`` times
that. Everything runs on the host in blocks of rows (the responsibilities from
the CPU backend's E-step, the rest in NumPy), in the standardised space
of the fit, for the unpenalised log-likelihood (the ridge terms are left out,
as R's flexmix has none).

Parameter order (the rows of the information):

- every gate node, level by level, and within a node every non-reference child
  j = 1 .. b-1: its coefficients on the gate design (intercept first);
- every expert, leaf by leaf: the family's parameters (``n_leaf_params``).
"""

import numpy as np

from ._em import Problem

# Elements of the largest per-row temporary of one block of rows: 8 MiB.
_BLOCK_ELEMENTS = 1 << 20


def observed_information(model, params, problem):
    """Observed information of the unpenalised log-likelihood, standardised space.

    Parameters
    ----------
    model : Model
        On the CPU backend; its experts a family with ``sample_scores`` and
        ``complete_information``.
    params : dict
        Host arrays, as kept by the estimator.
    problem : Problem
        Host arrays.

    Returns
    -------
    information : ndarray of shape (n_params, n_params)
    """
    tree, experts = model.tree, model.experts
    n, p_gate = problem.X_gate.shape
    q = experts.n_leaf_params(problem.X_expert.shape[1])
    L = tree.n_leaves
    n_free = sum(nodes * (b - 1) for nodes, b in zip(tree.n_nodes, tree.branching))
    gate = np.zeros((n_free * p_gate,) * 2)
    cross = np.zeros((n_free * p_gate, L * q))
    expert = np.zeros((L * q, L * q))
    widest = max(L * n_free, n_free**2, p_gate**2, n_free * p_gate, L * q, 1)
    rows = max(1, _BLOCK_ELEMENTS // widest)
    for start in range(0, n, rows):
        block = slice(start, min(n, start + rows))
        _add_block(gate, cross, expert, model, params, Problem(
            problem.X_gate[block], problem.X_expert[block], problem.target[block],
            problem.weight[block]))
    return np.block([[gate, cross], [cross.T, expert]])


def _add_block(gate, cross, expert, model, params, block):
    tree, experts = model.tree, model.experts
    X_gate, X_expert, target, weight = block.X_gate, block.X_expert, block.target, block.weight
    n, p_gate = X_gate.shape
    L = tree.n_leaves
    n_free = gate.shape[0] // p_gate
    # The E-step of EM, which also gives each level's gate log-probabilities.
    log_gates = model.gate_log_probs(params["gates"], X_gate)
    _, resp = model.e_step(params, block, gate_log_probs=log_gates, exponentiate=True)
    log_gates = [lg.reshape(n, tree.n_nodes[d], -1) for d, lg in enumerate(log_gates)]
    u = weight[:, None] * resp

    # rho (n, L, free children), and E_h of the complete-data gate information per
    # sample, block-diagonal over the nodes: mass_v (diag(g_v) - g_v g_v^T).
    rho = np.zeros((n, L, n_free))
    curvature = np.zeros((n, n_free, n_free))
    at = 0
    for d, log_gate in enumerate(log_gates):
        b = tree.branching[d]
        if b == 1:
            continue
        free = np.exp(log_gate[:, :, 1:])
        mass = resp.reshape(n, tree.n_nodes[d], -1).sum(axis=2)
        for node in range(tree.n_nodes[d]):
            span = slice(at + node * (b - 1), at + (node + 1) * (b - 1))
            g = free[:, node]
            curvature[:, span, span] = mass[:, node, None, None] * (
                g[:, :, None] * (np.eye(b - 1) - g[:, None, :]))
        for leaf in range(L):
            node, child = divmod(leaf // tree.stride[d], b)
            first = at + node * (b - 1)
            rho[:, leaf, first:first + b - 1] = -free[:, node]
            if child > 0:
                rho[:, leaf, first + child - 1] += 1.0
        at += tree.n_nodes[d] * (b - 1)
    rho -= np.einsum("il,ilg->ig", resp, rho)[:, None, :]  # centred: rho - rho_bar
    curvature -= np.einsum("il,ilg,ilk->igk", resp, rho, rho)
    curvature *= weight[:, None, None]
    outer = (X_gate[:, :, None] * X_gate[:, None, :]).reshape(n, -1)
    gate += (curvature.reshape(n, -1).T @ outer).reshape(n_free, n_free, p_gate, p_gate) \
        .transpose(0, 2, 1, 3).reshape(gate.shape)

    scores = experts.sample_scores(params["experts"], X_expert, target)  # (n, L, q)
    q = scores.shape[2]
    for leaf in range(L):
        weighted = (u[:, leaf, None] * rho[:, leaf])[:, :, None] * X_gate[:, None, :]
        cross[:, leaf * q:(leaf + 1) * q] -= weighted.reshape(n, -1).T @ scores[:, leaf]
    mean_scores = (resp[:, :, None] * scores).reshape(n, L * q)
    expert += (weight[:, None] * mean_scores).T @ mean_scores
    complete = experts.complete_information(params["experts"], X_expert, target, u)
    for leaf in range(L):
        span = slice(leaf * q, (leaf + 1) * q)
        leaf_scores = scores[:, leaf]
        expert[span, span] += complete[leaf] - (u[:, leaf, None] * leaf_scores).T @ leaf_scores


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
