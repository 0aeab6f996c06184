"""M-step of weighted softmax regressions: the gates, and multinomial experts.

A node v with b children is a multinomial logistic regression on soft counts
``T_ij``. Child 0 is the reference (its coefficients stay 0), so a node has
``(b - 1) * p`` free coefficients. Both solvers take monotone steps on the
penalised objective ``sum_i w_i sum_j T_ij log g_ij - reg/2 ||V||^2`` (slopes
only), so EM's log-likelihood never decreases:

- ``"newton"``: the exact Fisher information, with per-node step halving until
  the penalised objective does not decrease;
- ``"bohning"``: Boehning's bound ``1/2 (I - 11^T/b) (x) sum_i w_i s_i x_i x_i^T``
  on the curvature, a quadratic minoriser, so a step is monotone without
  evaluating the objective. With ``A`` the bound plus the ridge and ``d = A^-1 g``
  the minoriser's maximiser, the step ``alpha d`` gains at least
  ``(alpha - alpha^2 / 2) g^T d >= 0`` for any ``alpha`` in ``[0, 2]``; the steps
  taken are over-relaxed (``alpha = _BOHNING_RELAXATION``). At the root ``s_i = 1``
  and the bound is fixed for the whole fit, so the caller may pass it in once.
"""

from typing import NamedTuple

import numpy as np

from ._linalg import cho_solve, cholesky, solve_psd

_MAX_HALVINGS = 40

# Length of a Boehning step in units of the minoriser's maximiser. Any value in
# (0, 2) is monotone (module docstring); the bound overstates the curvature (up
# to b/2 times where the gate spreads its mass over many children), so longer
# steps go further. With 5 root steps per M-step, 1.8 took 1.1 to 1.8 times
# fewer EM iterations than 1.0 in 11 of 12 shapes (K = 2 to 32) that ended at the
# same optimum (bench_solvers.py); 1.9 and 2.0 gained little more, and a value
# near 2 is slow where the bound is tight (the error shrinks by |1 - alpha| per
# step along a direction whose curvature equals the bound).
_BOHNING_RELAXATION = 1.8


def resolve_solver(solver, n_children, n_coefs, max_newton_coefs):
    """Pick the solver for a node shape: Newton up to ``max_newton_coefs`` when "auto"."""
    if solver != "auto":
        return solver
    return "newton" if (n_children - 1) * n_coefs <= max_newton_coefs else "bohning"


def penalty(coef, reg):
    """Ridge penalty per node, ``reg/2`` times the squared non-intercept coefficients.

    Parameters
    ----------
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
    reg : float

    Returns
    -------
    ndarray of shape (n_nodes,)
    """
    return 0.5 * reg * np.sum(coef[:, 1:, 1:] ** 2, axis=(1, 2))


class RootBound:
    """The root gate's fixed Boehning bound, and its factorised system.

    At the root every sample has mass 1, so the bound ``sum_i w_i x_i x_i^T`` and
    the system ``A = kron(S, G) + I (x) D`` (``S = (I - 11^T/b) / 2``, ``G`` the
    bound, ``D`` the ridge on the slopes) are the same at every step of every
    iteration and every start of a fit: the Gram is computed once (one pass
    over X) and the system factorised once per shape.

    ``S`` has two eigenvalues: ``1/2`` on the vectors orthogonal to ``1`` and
    ``1/(2b)`` on ``1``. So ``A = P (x) M1 + Q (x) M2`` with ``Q = 11^T/(b-1)``,
    ``P = I - Q``, ``M1 = G/2 + D`` and ``M2 = G/(2b) + D``, and its inverse is
    ``P (x) M1^-1 + Q (x) M2^-1``: a step solves two p x p systems, not one of
    (b-1) p x (b-1) p (their Cholesky factors are kept), or applies the two
    inverses (:meth:`inverse_maps`).

    Attributes
    ----------
    gram : ndarray of shape (1, n_coefs, n_coefs)
    """

    def __init__(self, gram):
        self.gram = gram
        self._factors = {}
        self._maps = {}

    def _factor_pair(self, n_children, ridge):
        """The Cholesky factors of ``M1`` and ``M2`` (each None where it fails)."""
        key = (n_children, ridge.tobytes())
        if key not in self._factors:
            gram = self.gram[0]
            self._factors[key] = [cholesky(gram * scale + np.diag(ridge))
                                  for scale in (0.5, 0.5 / n_children)]
        return self._factors[key]

    def inverse_maps(self, n_children, ridge):
        """``M1^-1`` and ``M2^-1``, or None where a factor fails.

        The step is then linear in the rows ``r`` of the right-hand side:
        ``(r - mean(r)) M1^-1 + mean(r) M2^-1``, which a backend can apply where
        its gradient is, with no solve (``root_bohning_steps``).

        Returns
        -------
        maps : tuple of two ndarrays of shape (n_coefs, n_coefs), or None
        """
        key = (n_children, ridge.tobytes())
        if key not in self._maps:
            factors = self._factor_pair(n_children, ridge)
            maps = None
            if all(f is not None for f in factors):
                eye = np.eye(len(ridge))
                maps = tuple(cho_solve(f, eye) for f in factors)
                if not all(np.all(np.isfinite(m)) for m in maps):
                    maps = None
            self._maps[key] = maps
        return self._maps[key]

    def solve(self, n_children, ridge, rhs):
        """``A^-1 rhs`` for the rows ``rhs`` of shape (n_children - 1, n_coefs).

        ``ridge`` is the ridge's diagonal ``D`` (n_coefs,). Where a factor
        fails (a singular bound, which only a ridge of zero allows), the
        whole system is solved with :func:`solve_psd`'s jitter instead.
        """
        spread, mean = self._factor_pair(n_children, ridge)
        centre = rhs.mean(axis=0)
        if spread is not None and mean is not None:
            x = cho_solve(spread, (rhs - centre).T).T + cho_solve(mean, centre)
            if np.all(np.isfinite(x)):
                return x
        shape = 0.5 * (np.eye(n_children - 1) - 1.0 / n_children)
        A = np.kron(shape, self.gram[0]) + np.diag(np.tile(ridge, n_children - 1))
        return solve_psd(A, rhs.ravel()).reshape(rhs.shape)


class RootStart(NamedTuple):
    """What an E-step leaves for the root gate's first Boehning step of the next M-step.

    The root's gradient at the current coefficients where the E-step's pass
    computed it (``gaussian_posterior``), else the root's log-probabilities
    there, from which the step computes it without the logits.
    """

    log_proba: object = None
    gradient: object = None


def bohning_bound(kernels, X, w):
    """The root's fixed Boehning bound ``sum_i w_i x_i x_i^T``, as a :class:`RootBound`."""
    return RootBound(kernels.weighted_grams(X, kernels.as_column(w)))


def softmax_m_step(
    kernels, X, coef, w, *, mass=None, targets=None, y_idx=None, reg=0.0,
    solver="newton", n_steps=1, root_bound=None, log_proba=None, gradient=None,
    return_log_proba=False, meanwhile=None,
):
    """Take ``n_steps`` monotone steps on N weighted softmax regressions.

    Parameters
    ----------
    kernels : module
        The backend.
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
        Current coefficients (not modified).
    w : ndarray of shape (n_samples,)
    mass, targets, y_idx : see ``softmax_stats`` of the backend.
    reg : float
    solver : {"newton", "bohning"}
    n_steps : int
    root_bound : RootBound or None
        Fixed Boehning bound of a root gate; None to compute it from ``mass``.
        With its inverse maps (any bound that factorises), the backend's
        ``root_bohning_steps`` takes all the steps.
    log_proba : array of shape (n_samples, n_children) or None
        The root's log gate probabilities at ``coef`` (from the E-step). With
        ``root_bound``, the first step takes its gradient from them, without
        the logits, where the backend has a ``softmax_gradient`` of its own.
    gradient : array of shape (1, n_children, n_coefs) or None
        The root's gradient at ``coef`` (from the E-step's pass). With
        ``root_bound``, the first step takes it, with no pass over the data.
    return_log_proba : bool
        Also return the log-probabilities at the new coefficients where the
        steps computed them (Newton steps on soft counts: the last objective
        check), for the next E-step to reuse; else None.
    meanwhile : callable or None
        Host work called once: while the backend takes the last step's pass
        over the data (``start_softmax_stats``: a GPU's kernel runs meanwhile),
        or at the end where no step takes one.

    Returns
    -------
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
    new_log_proba : array of shape (n_samples, n_nodes * n_children) or None
        Only with ``return_log_proba``.
    """
    n_nodes, b, p = coef.shape
    new_log_proba = None
    if b == 1:
        if meanwhile is not None:
            meanwhile()
        return (coef, new_log_proba) if return_log_proba else coef
    mask = np.ones(p)
    mask[0] = 0.0
    reg_diag = reg * np.tile(mask, b - 1)
    if solver == "bohning":
        shape = 0.5 * (np.eye(b - 1) - 1.0 / b)
    root = root_bound if solver == "bohning" and root_bound else None
    maps = None if root is None else root.inverse_maps(b, reg * mask)
    if maps is not None and n_nodes == 1 and n_steps > 0:
        # The bound is fixed: every step is the gradient through one linear map,
        # so the backend takes all of them where the data are.
        coef = kernels.root_bohning_steps(
            X, coef, w, targets, log_proba, maps, reg, n_steps, _BOHNING_RELAXATION,
            meanwhile, gradient)
        return (coef, new_log_proba) if return_log_proba else coef
    at_proba = kernels.softmax_gradient
    if root is None or log_proba is None or n_nodes != 1:
        at_proba = None
    if root is None or n_nodes != 1:
        gradient = None
    for step in range(n_steps):
        if solver == "bohning":
            curvature = "gradient" if root is not None else "bohning"
        else:
            curvature = "newton"
        if step == 0 and gradient is not None:
            objective, grad, curv = None, kernels.to_host(gradient), None
        elif step == 0 and at_proba is not None:
            objective, grad, curv = None, at_proba(X, log_proba, w, targets), None
        else:
            finish = kernels.start_softmax_stats(X, coef, w, mass, targets, y_idx, curvature)
            if step == n_steps - 1 and meanwhile is not None:
                meanwhile()
                meanwhile = None
            objective, grad, curv = finish()
        delta = np.zeros_like(coef)
        for v in range(n_nodes):
            rhs = grad[v, 1:] - reg * mask * coef[v, 1:]
            if root is not None:
                delta[v, 1:] = root.solve(b, reg * mask, rhs)
                continue
            rhs = rhs.ravel()
            if solver == "bohning":
                A = np.kron(shape, curv[v])
            else:
                A = curv[v][p:, p:].copy()
            A[np.diag_indices_from(A)] += reg_diag
            delta[v, 1:] = solve_psd(A, rhs).reshape(b - 1, p)
        if solver == "bohning":
            coef = coef + _BOHNING_RELAXATION * delta
            new_log_proba = None
        else:
            coef, new_log_proba = _halve_until_better(
                kernels, X, coef, delta, w, mass, targets, y_idx, reg,
                objective - penalty(coef, reg))
    if meanwhile is not None:
        meanwhile()
    return (coef, new_log_proba) if return_log_proba else coef


def _halve_until_better(kernels, X, coef, delta, w, mass, targets, y_idx, reg, start_value):
    """Per node, the longest step ``2^-k delta`` that does not lower the objective.

    Returns the new coefficients and, for soft counts (gates), the
    log-probabilities at them, or None where they were not computed (multinomial
    experts, or a node that found no better step). The objective of soft counts
    is ``sum_i w_i sum_j T_ij log g_ij`` from the level's log-softmax, which the
    next E-step can then reuse instead of computing it again.
    """
    n_nodes, b, _ = coef.shape
    step = np.ones(n_nodes)
    pending = np.ones(n_nodes, dtype=bool)
    result = coef.copy()
    log_proba = None if targets is None else kernels.empty((X.shape[0], n_nodes * b))
    for _ in range(_MAX_HALVINGS):
        trial = coef + step[:, None, None] * delta
        trial[~pending] = result[~pending]
        if log_proba is None:
            objective, _, _ = kernels.softmax_stats(X, trial, w, mass, targets, y_idx, None)
        else:
            kernels.affine_log_softmax(X, trial, log_proba)
            objective = kernels.weighted_sums(log_proba, w, targets).reshape(n_nodes, b).sum(1)
        value = objective - penalty(trial, reg)
        accept = pending & (value >= start_value)
        result[accept] = trial[accept]
        pending &= ~accept
        if not pending.any():
            # Every node is at this round's trial (the accepted ones were copied in).
            return result, log_proba
        step[pending] *= 0.5
    return result, None
