"""One EM run of a (hierarchical) mixture of experts, and its building blocks.

The estimators prepare the data (designs with an intercept column, standardised
target, weights), choose the backend and the families, and call
:func:`run_em` once per start. Everything here works for any gating tree; a
flat mixture is the tree with one gate.
"""

import functools
from dataclasses import dataclass

import numpy as np

from ._config import NEWTON_MAX_GATE_COEFS
from ._gating import RootStart, bohning_bound, penalty, resolve_solver, softmax_m_step

# Gate and multinomial-expert steps taken when the first M-step starts from
# zero coefficients (one step from zero is a poor start for a softmax).
_INIT_STEPS = 3

# Boehning steps per M-step at the root: its bound is fixed, so a step costs one
# gradient pass, and one step per iteration leaves EM crawling (measured at
# n=20000, K=4, p=10: 222 iterations with 1 step, 64 with 5, 20 for Newton).
_ROOT_BOHNING_STEPS = 5


@dataclass
class Problem:
    """The prepared data of one fit.

    Attributes
    ----------
    X_gate : ndarray of shape (n_samples, n_gate_coefs)
    X_expert : ndarray of shape (n_samples, n_expert_coefs)
    target : ndarray of shape (n_samples,)
        Standardised y (float64) or class indices (int64).
    weight : ndarray of shape (n_samples,)
    root_bound : RootBound or None
        The root gate's fixed Boehning bound, once computed (``Model.root_bound``).
    host : Problem or None
        The same problem in NumPy arrays when this one lives on a device
        (see :meth:`on`), its designs None where they were built on the
        device; None when this one is on the host.
    """

    X_gate: np.ndarray
    X_expert: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    root_bound: object = None
    host: "Problem" = None

    def on(self, kernels):
        """This problem with its arrays where ``kernels`` computes (itself on the CPU).

        The large arrays cross to a device once here, for the whole fit; a
        design shared by the gate and the experts crosses once, and arrays
        already there (or None) stay as they are.
        """
        X_gate = None if self.X_gate is None else kernels.to_device(self.X_gate)
        X_expert = X_gate if self.X_expert is self.X_gate else kernels.to_device(self.X_expert)
        target, weight = kernels.to_device(self.target), kernels.to_device(self.weight)
        if all(a is b for a, b in zip((X_gate, X_expert, target, weight),
                                      (self.X_gate, self.X_expert, self.target, self.weight))):
            return self
        return Problem(X_gate, X_expert, target, weight, self.root_bound, host=self.on_host())

    def on_host(self):
        """The problem in NumPy arrays (itself when it is on the host)."""
        return self if self.host is None else self.host


class Workspace:
    """The arrays of one EM run's E-steps (a row per sample), reused from one to the next.

    An E-step's results are read by the next M-step only, so the E-step after
    it may write over them. Fresh arrays would cost, every iteration, a device
    allocation on a GPU (which waits for the device) and the page faults of
    new memory on the host.
    """

    def __init__(self, kernels):
        self.kernels = kernels
        self._arrays = {}

    def empty(self, name, shape):
        """The array kept under ``name``, or a new one where its shape differs."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape:
            array = self._arrays[name] = self.kernels.empty(shape)
        return array


@dataclass
class Model:
    """What a fit is made of, apart from the data and the parameters."""

    kernels: object
    tree: object
    experts: object
    reg_gate: float
    gate_solver: str

    def level_solver(self, d, n_coefs):
        return resolve_solver(self.gate_solver, self.tree.branching[d], n_coefs,
                              NEWTON_MAX_GATE_COEFS)

    def _empty(self, workspace, name, shape):
        """A work array: the workspace's, or a new one without a workspace."""
        if workspace is None:
            return self.kernels.empty(shape)
        return workspace.empty(name, shape)

    def gate_log_probs(self, gates, X_gate, known=None, workspace=None):
        """Log gate probabilities of every level, (n_samples, n_nodes * n_children) each.

        ``known``: per level, the log-probabilities at ``gates[d]`` already
        computed (by the M-step), or None to compute them.
        """
        n = X_gate.shape[0]
        out = []
        for d, coef in enumerate(gates):
            if known is not None and known[d] is not None:
                out.append(known[d])
                continue
            buf = self._empty(workspace, f"log_gate_{d}",
                              (n, self.tree.n_nodes[d] * self.tree.branching[d]))
            out.append(self.kernels.affine_log_softmax(X_gate, coef, buf))
        return out

    def log_prior(self, gates, X_gate):
        """Log prior of every leaf, shape (n_samples, n_leaves)."""
        return self._leaf_log_prior(self.gate_log_probs(gates, X_gate))

    def _leaf_log_prior(self, levels, workspace=None):
        if len(levels) == 1:
            return levels[0]
        out = self._empty(workspace, "log_prior", (levels[0].shape[0], self.tree.n_leaves))
        return self.tree.leaf_log_prior(levels, out, self.kernels)

    def objective_penalty(self, params):
        gate_pen = sum(float(np.sum(penalty(c, self.reg_gate))) for c in params["gates"])
        return gate_pen + self.experts.penalty(params["experts"])

    def e_step(self, params, problem, keep_root=False, gate_log_probs=None,
               exponentiate=False, workspace=None, deferred=False):
        """Return the weighted log-likelihood and the log-responsibilities.

        With ``keep_root``, also a :class:`RootStart` for the next M-step's
        first root step: the root gate's gradient where the E-step's pass
        computes it (one gate, experts with ``flat_posterior``, the
        responsibilities exponentiated), else its log-probabilities, shape
        (n_samples, branching[0]).
        ``gate_log_probs``: per level, the gate's log-probabilities at
        ``params["gates"]`` where the M-step left them, else None. With
        ``exponentiate``, the responsibilities instead of their logarithms.
        ``workspace``: a :class:`Workspace` whose arrays the results go into
        (valid until its next E-step), or None for new arrays. With
        ``deferred``, the log-likelihood is a function that gives it (a GPU
        computes it while the host goes on).
        """
        shape = (problem.X_gate.shape[0], self.tree.n_leaves)
        if self.tree.n_levels == 1 and hasattr(self.experts, "flat_posterior"):
            # One gate: experts that have it take the E-step in one pass.
            known = None if gate_log_probs is None else gate_log_probs[0]
            # The root's first gate step needs its gradient only: where the pass
            # computes it, the log-probabilities are not kept.
            gradient = keep_root and exponentiate
            log_gate = known
            if known is None and not gradient:
                log_gate = self._empty(workspace, "log_gate_0", shape)
            log_resp = self._empty(workspace, "log_resp", shape)
            ll = self.experts.flat_posterior(
                self.kernels, params["experts"], problem.X_gate,
                params["gates"][0] if known is None else None, problem.X_expert,
                problem.target, problem.weight, log_gate, log_resp, exponentiate, deferred,
                gate_gradient=gradient)
            if gradient:
                ll, gradient = ll
                return ll, log_resp, RootStart(gradient=gradient)
            levels = [log_gate]
        else:
            levels = self.gate_log_probs(params["gates"], problem.X_gate, gate_log_probs,
                                         workspace)
            log_prior = self._leaf_log_prior(levels, workspace)
            log_resp = self._empty(workspace, "log_resp", shape)
            self.experts.log_prob(
                self.kernels, params["experts"], problem.X_expert, problem.target, log_resp
            )
            ll = self.kernels.posterior(log_prior, log_resp, problem.weight, log_resp,
                                        exponentiate, deferred)
        if keep_root:
            return ll, log_resp, RootStart(log_proba=levels[0])
        return ll, log_resp

    def m_step(self, params, problem, resp, n_steps=1, root_bound=None, root_start=None,
               return_log_probs=False):
        """Experts exactly (or by monotone steps), and every gate level.

        ``root_start``: the :class:`RootStart` of :meth:`e_step` at
        ``params["gates"][0]``, or None. With
        ``return_log_probs``, also each level's log-probabilities at its new
        coefficients where the gate step computed them (else None), for
        :meth:`e_step`'s ``gate_log_probs``.
        """
        # Experts that can start their M-step end it during the last gate
        # step: a GPU computes their statistics in the gaps between the gate's
        # steps, and takes the last gate pass while the host solves for them.
        expert_args = (self.kernels, params["experts"], problem.X_expert, problem.target, resp,
                       problem.weight, n_steps)
        start = getattr(self.experts, "start_m_step", None)
        ended = []
        if start is None:
            ended.append(self.experts.m_step(*expert_args))
            end_experts = None
        else:
            finish_experts = start(*expert_args)

            def end_experts():
                ended.append(finish_experts())

        gates, log_probs = [], []
        last = len(params["gates"]) - 1
        p = problem.X_gate.shape[1]
        for d, coef in enumerate(params["gates"]):
            targets, mass = self.tree.level_targets(resp, d, self.kernels)
            solver = self.level_solver(d, p)
            steps = n_steps
            if solver == "bohning" and d == 0:
                steps = max(n_steps, _ROOT_BOHNING_STEPS)
            coef, log_proba = softmax_m_step(
                self.kernels, problem.X_gate, coef, problem.weight, mass=mass,
                targets=targets, reg=self.reg_gate, solver=solver,
                n_steps=steps, root_bound=root_bound if d == 0 else None,
                log_proba=root_start.log_proba if d == 0 and root_start else None,
                gradient=root_start.gradient if d == 0 and root_start else None,
                return_log_proba=True,
                meanwhile=end_experts if d == last else None,
            )
            gates.append(coef)
            log_probs.append(log_proba)
        if not ended:  # no gate level
            end_experts()
        params = {"gates": gates, "experts": ended[0]}
        return (params, log_probs) if return_log_probs else params

    def initial_params(self, n_gate_coefs, n_expert_coefs):
        tree = self.tree
        gates = [np.zeros((tree.n_nodes[d], tree.branching[d], n_gate_coefs))
                 for d in range(tree.n_levels)]
        return {"gates": gates,
                "experts": self.experts.initial(tree.n_leaves, n_expert_coefs)}

    def root_bound(self, problem):
        """The fixed Boehning bound of the root gate, when the root uses it.

        Computed once per problem (one pass over X) and kept on it, for every
        start and every iteration.
        """
        if self.level_solver(0, problem.X_gate.shape[1]) != "bohning":
            return None
        if problem.root_bound is None:
            problem.root_bound = bohning_bound(self.kernels, problem.X_gate, problem.weight)
        return problem.root_bound

    def n_params(self, n_gate_coefs, n_expert_coefs, alive=None):
        """Free parameters, or None where the experts have no count (estimator experts).

        ``alive``: boolean mask of the experts kept (None: all); pruned experts,
        and the gate rows that lead only to them, do not count.
        """
        n_alive = self.tree.n_leaves if alive is None else int(np.count_nonzero(alive))
        experts = self.experts.n_params(n_alive, n_expert_coefs)
        if experts is None:
            return None
        return self.tree.n_gate_params(n_gate_coefs, alive) + experts


def initialize(model, problem, resp):
    """Parameters from initial responsibilities: one M-step from zero coefficients."""
    params = model.initial_params(problem.X_gate.shape[1], problem.X_expert.shape[1])
    resp = model.kernels.to_device(resp)
    return model.m_step(params, problem, resp, n_steps=_INIT_STEPS,
                        root_bound=model.root_bound(problem))


def run_em(model, problem, params, *, max_iter, tol, verbose=0, verbose_interval=10):
    """Run EM from ``params`` until the mean penalised log-likelihood settles.

    Parameters
    ----------
    model : Model
    problem : Problem
    params : dict
    max_iter : int
    tol : float
        Convergence when the change of the penalised log-likelihood per unit
        of weight is below ``tol``.
    verbose, verbose_interval : int

    Returns
    -------
    params : dict
    objectives : list of float
        Penalised log-likelihood after each E-step, the start included.
    converged : bool
    n_iter : int
    resp : array of shape (n_samples, n_leaves)
        Responsibilities at the final parameters, on the backend's device.

    With experts whose M-step is not monotone (``experts.monotone`` False), the
    parameters of the highest objective seen are returned, with the objectives
    and the iteration count up to them, where EM ended lower.
    """
    kernels = model.kernels
    total_weight = kernels.total(problem.weight)
    root_bound = model.root_bound(problem)
    # The E-step leaves the next M-step's first root Boehning step its start.
    keep_root = root_bound is not None
    workspace = Workspace(kernels)
    # Where the E-step's log-likelihood arrives late (a GPU), the next M-step
    # is queued before it is read: the device goes from one to the other with
    # no wait for the host. At convergence that M-step is dropped unused.
    ahead = kernels.LOG_LIKELIHOOD_ARRIVES_LATE
    e_step = functools.partial(model.e_step, problem=problem, keep_root=keep_root,
                               exponentiate=True, workspace=workspace, deferred=True)
    m_step = functools.partial(model.m_step, problem=problem, root_bound=root_bound,
                               return_log_probs=True)
    pending = e_step(params)
    objectives = []
    # Experts whose M-step may lower the objective (fitted estimators): the best
    # iterate is kept, and returned if EM ends below it.
    best = None
    converged = False
    n_iter = 0
    while True:
        ll, resp, *root = pending
        root = root[0] if root else None
        step = None
        if ahead and n_iter < max_iter:
            step = m_step(params, resp=resp, root_start=root)
        objectives.append(ll() - model.objective_penalty(params))
        if not model.experts.monotone and (best is None or objectives[-1] > objectives[best[2]]):
            best = (params, kernels.to_host(resp).copy(), n_iter)
        if n_iter:
            change = (objectives[-1] - objectives[-2]) / total_weight
            if verbose >= 2 and n_iter % verbose_interval == 0:
                print(f"  Iteration {n_iter}\t mean log-likelihood "
                      f"{objectives[-1] / total_weight:.8g}\t change {change:.3g}")
            if abs(change) < tol:
                converged = True
                break
        if n_iter == max_iter:
            break
        if step is None:
            step = m_step(params, resp=resp, root_start=root)
        params, log_probs = step
        n_iter += 1
        pending = e_step(params, gate_log_probs=log_probs)
    if best is not None and objectives[best[2]] > objectives[-1]:
        params, resp, n_iter = best
        objectives = objectives[:n_iter + 1]
    return params, objectives, converged, n_iter, resp
