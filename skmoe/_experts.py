"""Expert families: log-densities, M-steps, penalties and parameter counts.

Each family works in the standardised space of the estimator (intercept in
column 0 of the design). Parameters are plain dicts of arrays, so they pickle
and move between backends unchanged.
"""

import numpy as np
from scipy.special import log_softmax
from sklearn.base import clone

from ._config import NEWTON_MAX_EXPERT_COEFS
from ._gating import penalty as softmax_penalty
from ._gating import resolve_solver, softmax_m_step
from ._linalg import solve_psd

# An expert with less than this share of the total weight keeps its parameters:
# its statistics are too thin to re-estimate from (the M-step stays monotone,
# since that expert's part of Q is then unchanged).
_MIN_MASS_SHARE = 1e-10


class GaussianExperts:
    """Gaussian linear experts ``y ~ N(beta_l . x, var_l)``.

    The ridge term is ``reg / (2 var_l) ||beta_l||^2`` (slopes only): a Gaussian
    prior scaled by the noise, which keeps the joint maximiser of the expert's Q
    in closed form (ridge coefficients, then the variance), so the M-step is
    exact and monotone. The variance is floored at ``min_variance``.
    """

    monotone = True  # the M-step never lowers the objective

    def __init__(self, reg, min_variance):
        self.reg = reg
        self.min_variance = min_variance

    def n_params(self, n_leaves, n_coefs):
        return n_leaves * (n_coefs + 1)

    def initial(self, n_leaves, n_coefs):
        return {"coef": np.zeros((n_leaves, n_coefs)), "var": np.ones(n_leaves)}

    def log_prob(self, kernels, params, X, y, out):
        return kernels.gaussian_log_prob(X, y, params["coef"], params["var"], out)

    def flat_posterior(self, kernels, params, X_gate, gate_coef, X, y, w, log_gate, out,
                       exponentiate, deferred=False, gate_gradient=False):
        """The whole E-step under one gate, fused where the backend can (``gaussian_posterior``)."""
        return kernels.gaussian_posterior(X_gate, gate_coef, X, y, params["coef"],
                                          params["var"], w, log_gate, out, exponentiate,
                                          deferred, gate_gradient)

    def penalty(self, params):
        slopes = params["coef"][:, 1:]
        return float(np.sum(0.5 * self.reg * np.sum(slopes**2, axis=1) / params["var"]))

    def m_step(self, kernels, params, X, y, resp, w, n_steps=1):
        return self.start_m_step(kernels, params, X, y, resp, w, n_steps)()

    def start_m_step(self, kernels, params, X, y, resp, w, n_steps=1):
        """Start the M-step; returns the function that ends it and gives the parameters.

        The statistics are computed while the caller goes on where the backend
        can (``start_wls_stats``: on a GPU, beside the gate's steps); the
        solves wait for them.
        """
        finish_stats = kernels.start_wls_stats(X, y, resp, w)
        return lambda: self._solve(params, *finish_stats())

    def _solve(self, params, gram, xty, yty, mass):
        """Each expert's ridge coefficients and variance from its statistics."""
        n_leaves, p = params["coef"].shape
        coef = params["coef"].copy()
        var = params["var"].copy()
        reg_diag = np.full(p, self.reg)
        reg_diag[0] = 0.0
        min_mass = _MIN_MASS_SHARE * max(float(mass.sum()), np.finfo(float).tiny)
        for k in range(n_leaves):
            if mass[k] <= min_mass:
                continue
            A = gram[k] + np.diag(reg_diag)
            beta = solve_psd(A, xty[k])
            rss = yty[k] - 2.0 * beta @ xty[k] + beta @ gram[k] @ beta
            rss = max(rss, 0.0) + self.reg * float(beta[1:] @ beta[1:])
            coef[k] = beta
            var[k] = max(rss / mass[k], self.min_variance)
        return {"coef": coef, "var": var}

    # Observed information (``_inference``): host NumPy on a block of rows. Each
    # leaf's parameters are its coefficients, then its variance.

    def n_leaf_params(self, n_coefs):
        return n_coefs + 1

    def sample_scores(self, params, X, y):
        """Gradient of each sample's log-density under each leaf, (n, leaves, params)."""
        var = params["var"]
        resid = y[:, None] - X @ params["coef"].T
        coef_score = (resid / var)[:, :, None] * X[:, None, :]
        var_score = -0.5 / var + 0.5 * resid**2 / var**2
        return np.concatenate([coef_score, var_score[:, :, None]], axis=2)

    def complete_information(self, params, X, y, weight):
        """``sum_i weight_il (-d2 log f_l(y_i | x_i))`` per leaf, (leaves, params, params)."""
        var = params["var"]
        resid = y[:, None] - X @ params["coef"].T
        p = X.shape[1]
        out = np.empty((var.size, p + 1, p + 1))
        out[:, :p, :p] = np.einsum("il,ia,ib->lab", weight, X, X) / var[:, None, None]
        cross = np.einsum("il,ia->la", weight * resid, X) / var[:, None] ** 2
        out[:, :p, p] = out[:, p, :p] = cross
        out[:, p, p] = (np.sum(weight * resid**2, axis=0) / var**3
                        - 0.5 * np.sum(weight, axis=0) / var**2)
        return out


class _ClonedExperts:
    """Experts that are clones of a scikit-learn estimator, refitted in every M-step.

    Leaf l's clone (with ``random_state=l`` where the estimator leaves it None)
    is refitted with ``sample_weight = w * h_l`` on the expert columns in the
    user's units (recovered from the standardised design), so
    that the fitted clones work on the user's data. EM's log-likelihood then
    never decreases only when the weighted fit maximises the weighted
    likelihood of the expert's model; a greedy or penalised fit, such as a tree
    of bounded depth, can lower it. An arbitrary estimator has no parameter
    count (``n_params`` is None).
    """

    monotone = False  # a clone's fit need not maximise its weighted likelihood

    def __init__(self, estimator, x_mean, x_scale):
        self.estimator = estimator
        self.x_mean, self.x_scale = x_mean, x_scale

    def n_params(self, n_leaves, n_coefs):
        return None

    def initial(self, n_leaves, n_coefs):
        return {"estimators": [None] * n_leaves}

    def penalty(self, params):
        return 0.0

    def user_inputs(self, X):
        """The expert columns in the user's units, from the standardised design."""
        return X[:, 1:] * self.x_scale + self.x_mean

    def refit(self, params, inputs, target, resp, w):
        """Each clone refitted on its weights (kept below the mass floor); and the weights."""
        estimators = list(params["estimators"])
        weights = resp * w[:, None]
        mass = weights.sum(axis=0)
        min_mass = _MIN_MASS_SHARE * max(float(mass.sum()), np.finfo(float).tiny)
        for k in range(len(estimators)):
            if mass[k] > min_mass or estimators[k] is None:
                estimators[k] = self._clone(k).fit(inputs, target, sample_weight=weights[:, k])
        return estimators, weights, mass

    def _clone(self, leaf):
        """A clone whose unset ``random_state`` parameters are the leaf's index.

        A seeded fit of the mixture is then reproducible even with, say, a tree
        whose random_state was left None.
        """
        expert = clone(self.estimator)
        unset = {name: leaf for name, value in expert.get_params().items()
                 if name.split("__")[-1] == "random_state" and value is None}
        return expert.set_params(**unset)


class EstimatorExperts(_ClonedExperts):
    """A scikit-learn regressor as each expert: y Gaussian around its prediction.

    The clones fit y in the user's units; each expert's variance is its
    weighted mean squared residual, floored at ``min_variance``.
    """

    def __init__(self, estimator, min_variance, x_mean, x_scale, y_mean, y_scale):
        super().__init__(estimator, x_mean, x_scale)
        self.min_variance = min_variance
        self.y_mean, self.y_scale = y_mean, y_scale

    def initial(self, n_leaves, n_coefs):
        return {**super().initial(n_leaves, n_coefs), "var": np.ones(n_leaves)}

    def means(self, params, X):
        """Each expert's prediction in the standardised units of y, (n, leaves)."""
        inputs = self.user_inputs(X)
        means = np.column_stack([(est.predict(inputs) - self.y_mean) / self.y_scale
                                 for est in params["estimators"]])
        # Outputs stay within an eighth of the float range in the user's units too.
        bound = 0.125 * np.finfo(np.float64).max / max(self.y_scale, 1.0)
        return np.clip(means, -bound, bound)

    def log_prob(self, kernels, params, X, y, out):
        resid = y[:, None] - self.means(params, X)
        out[:] = -0.5 * np.log(2.0 * np.pi * params["var"]) - 0.5 * resid**2 / params["var"]
        return out

    def m_step(self, kernels, params, X, y, resp, w, n_steps=1):
        estimators, weights, mass = self.refit(params, self.user_inputs(X),
                                               y * self.y_scale + self.y_mean, resp, w)
        resid = y[:, None] - self.means({"estimators": estimators}, X)
        var = np.maximum(np.sum(weights * resid**2, axis=0)
                         / np.maximum(mass, np.finfo(float).tiny), self.min_variance)
        return {"estimators": estimators, "var": var}


class EstimatorClassExperts(_ClonedExperts):
    """A scikit-learn classifier as each expert, through its ``predict_proba``.

    The clones fit the class indices; a probability below the smallest normal
    float counts as that float, so every log-likelihood stays finite.
    """

    def __init__(self, estimator, n_classes, x_mean, x_scale):
        super().__init__(estimator, x_mean, x_scale)
        self.n_classes = n_classes

    def log_proba(self, params, X):
        """``log P_l(c | x)``, shape (n, leaves, classes)."""
        inputs = self.user_inputs(X)
        out = np.full((X.shape[0], len(params["estimators"]), self.n_classes),
                      np.log(np.finfo(float).tiny))
        for k, est in enumerate(params["estimators"]):
            # A clone knows the classes its weighted fit saw (the indices of classes_).
            proba = np.maximum(est.predict_proba(inputs), np.finfo(float).tiny)
            out[:, k, np.asarray(est.classes_, dtype=np.intp)] = np.log(proba)
        return out

    def log_prob(self, kernels, params, X, y_idx, out):
        out[:] = np.take_along_axis(self.log_proba(params, X), y_idx[:, None, None], axis=2)[
            :, :, 0]
        return out

    def m_step(self, kernels, params, X, y_idx, resp, w, n_steps=1):
        estimators, _, _ = self.refit(params, self.user_inputs(X), y_idx, resp, w)
        return {"estimators": estimators}


class CategoricalExperts:
    """Multinomial logistic experts ``P_l(y = c | x) = softmax_c(B_l x)``.

    Class 0 is the reference (its row of ``B_l`` stays 0). The M-step is one or
    more monotone Newton/Boehning steps per EM iteration (ECM), solved for all
    experts from one pass over the data.
    """

    monotone = True

    def __init__(self, reg, n_classes, solver="auto"):
        self.reg = reg
        self.n_classes = n_classes
        self.solver = solver

    def n_params(self, n_leaves, n_coefs):
        return n_leaves * (self.n_classes - 1) * n_coefs

    def initial(self, n_leaves, n_coefs):
        return {"coef": np.zeros((n_leaves, self.n_classes, n_coefs))}

    def log_prob(self, kernels, params, X, y_idx, out):
        return kernels.categorical_log_prob(X, params["coef"], y_idx, out)

    def penalty(self, params):
        return float(np.sum(softmax_penalty(params["coef"], self.reg)))

    def m_step(self, kernels, params, X, y_idx, resp, w, n_steps=1):
        solver = resolve_solver(self.solver, self.n_classes, X.shape[1], NEWTON_MAX_EXPERT_COEFS)
        coef = softmax_m_step(
            kernels, X, params["coef"], w, mass=resp, y_idx=y_idx, reg=self.reg,
            solver=solver, n_steps=n_steps,
        )
        # As for Gaussian experts, one below the mass floor keeps its parameters (each
        # expert's step is monotone on its own part of Q, so keeping one stays monotone).
        mass = kernels.weighted_sums(resp, w)
        frozen = mass <= _MIN_MASS_SHARE * max(float(mass.sum()), np.finfo(float).tiny)
        if frozen.any():
            coef = np.where(frozen[:, None, None], params["coef"], coef)
        return {"coef": coef}

    # Observed information (``_inference``): host NumPy on a block of rows. Each
    # leaf's parameters are the coefficients of classes 1 .. c-1, class-major.

    def n_leaf_params(self, n_coefs):
        return (self.n_classes - 1) * n_coefs

    def _log_proba(self, params, X):
        return log_softmax(np.einsum("ia,lca->ilc", X, params["coef"]), axis=2)

    def sample_scores(self, params, X, y_idx):
        """Gradient of each sample's log-probability under each leaf, (n, leaves, params)."""
        resid = -np.exp(self._log_proba(params, X))
        resid[np.arange(X.shape[0]), :, y_idx] += 1.0
        n, L, _ = resid.shape
        return (resid[:, :, 1:, None] * X[:, None, None, :]).reshape(n, L, -1)

    def complete_information(self, params, X, y_idx, weight):
        """``sum_i weight_il (-d2 log P_l(y_i | x_i))`` per leaf, (leaves, params, params)."""
        free = np.exp(self._log_proba(params, X))[:, :, 1:]
        curvature = -free[:, :, :, None] * free[:, :, None, :]
        c = free.shape[2]
        curvature[:, :, np.arange(c), np.arange(c)] += free
        q = c * X.shape[1]
        return np.einsum("il,iljk,ia,ib->ljakb", weight, curvature, X, X).reshape(-1, q, q)
