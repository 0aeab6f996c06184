"""BaseMixtureOfExperts: the scikit-learn contract shared by every estimator.

It validates data and hyperparameters, standardises the inputs, builds the
gate and expert designs (intercept in column 0), runs the ``n_init`` starts of
EM, keeps the best, handles ``warm_start`` and sets the fitted attributes. The
subclasses supply the target encoding, the expert family and the predictions.

All computation happens on standardised inputs (weighted mean 0 and variance 1
per column, and for regressors the same for y): Gram matrices stay well
conditioned whatever the units, and the ridge terms do not depend on them. The
public coefficients are mapped back to the original units at the end of fit.
"""

import warnings
from abc import ABCMeta, abstractmethod
from numbers import Integral, Real

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, _fit_context, is_regressor
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from ._em import Model, Problem, initialize, run_em
from ._kernels import get_backend
from ._tree import GatingTree

# ``branching`` is checked element-wise in fit (see ``_gating_tree``).
branching_constraint = "array-like"

# Share of the initial responsibility spread evenly over the experts.
_INIT_SOFTENING = 0.5


def _weighted_scaling(X, w):
    """Weighted column means and standard deviations (1 for constant columns)."""
    mean = np.average(X, axis=0, weights=w)
    var = np.average((X - mean) ** 2, axis=0, weights=w)
    scale = np.sqrt(var)
    constant = np.ptp(X[w > 0], axis=0) == 0 if np.any(w > 0) else np.ones(X.shape[1], bool)
    # A constant column becomes exactly 0: the ridge then pins its coefficient.
    mean[constant] = X[np.argmax(w > 0), constant]
    scale[constant | (scale == 0)] = 1.0
    return mean, scale


def _make_design(X, idx, mean, scale):
    """Standardised columns ``idx`` of X after an intercept column."""
    out = np.empty((X.shape[0], idx.size + 1))
    out[:, 0] = 1.0
    out[:, 1:] = (X[:, idx] - mean[idx]) / scale[idx]
    return out


def _make_designs(X, gate_idx, expert_idx, mean, scale):
    """Gate and expert designs; one shared array when they use the same columns."""
    X_gate = _make_design(X, gate_idx, mean, scale)
    if np.array_equal(gate_idx, expert_idx):
        return X_gate, X_gate
    return X_gate, _make_design(X, expert_idx, mean, scale)


def _run_start(estimator, attributes, problem, X_std, seed, params):
    """One start of EM: initialise from ``seed`` (or continue from ``params``) and run.

    A module-level function so that joblib can run the starts in other processes.
    BLAS runs single-threaded here: its threads only contend with Numba's on the
    kernels' tall, thin products.

    Returns
    -------
    params, objectives, converged, n_iter
    """
    with threadpool_limits(limits=1, user_api="blas"):
        model = estimator._model(attributes)
        if params is None:
            resp = estimator._initial_resp(problem, X_std, np.random.RandomState(seed))
            params = initialize(model, problem, resp)
        if estimator.max_iter == 0:
            ll, _ = model.e_step(params, problem)
            run = (params, [ll - model.objective_penalty(params)], False, 0)
        else:
            run = run_em(model, problem, params, max_iter=estimator.max_iter,
                         tol=estimator.tol, verbose=estimator.verbose,
                         verbose_interval=estimator.verbose_interval)[:4]
    if estimator.verbose:
        print(f"Initialization done: penalised log-likelihood {run[1][-1]:.8g}, "
              f"{run[3]} iterations, converged={run[2]}")
    return run


class BaseMixtureOfExperts(BaseEstimator, metaclass=ABCMeta):
    """Base class of the mixture-of-experts estimators (not for direct use)."""

    _parameter_constraints: dict = {
        "gate_features": [None, "array-like"],
        "expert_features": [None, "array-like"],
        "gate_solver": [StrOptions({"auto", "newton", "bohning"})],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "random_from_data", "tree"})],
        "reg_gate": [Interval(Real, 0.0, None, closed="left")],
        "reg_expert": [Interval(Real, 0.0, None, closed="left")],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "backend": [StrOptions({"cpu"})],
        "n_jobs": [Integral, None],
    }

    # ------------------------------------------------------------------
    # Hooks for the subclasses

    @abstractmethod
    def _branching(self):
        """Children per gate at each level, root first."""

    @abstractmethod
    def _encode_target(self, y, sample_weight, reset):
        """Validate y and return the kernel target (standardised y or class indices)."""

    @abstractmethod
    def _make_experts(self, attributes):
        """The expert family of this estimator, given the fitted target attributes."""

    @abstractmethod
    def _kmeans_target(self, target):
        """Target columns appended to the standardised X for k-means initialisation."""

    @abstractmethod
    def _cart(self, max_depth, seed):
        """An unfitted CART tree for the "tree" initialisation."""

    @abstractmethod
    def _min_samples_per_expert(self):
        """Samples with positive weight that one expert needs."""

    def _log_likelihood_offset(self, total_weight):
        """Constant turning a standardised-space log-likelihood into original units."""
        return 0.0

    def _set_expert_attributes(self):
        """Public expert coefficients in original units (subclass)."""

    # ------------------------------------------------------------------
    # Data preparation

    def _resolve_features(self, spec, name):
        n_features = self.n_features_in_
        if spec is None:
            return np.arange(n_features)
        spec = np.asarray(spec)
        if spec.size == 0:
            return np.arange(0)
        if spec.dtype == bool:
            if spec.shape != (n_features,):
                raise ValueError(
                    f"The parameter '{name}' should have the shape of ({n_features},) "
                    f"as a boolean mask, but got {spec.shape}."
                )
            return np.flatnonzero(spec)
        if spec.dtype.kind in "OUS":
            names = getattr(self, "feature_names_in_", None)
            if names is None:
                raise ValueError(
                    f"'{name}' names columns, but X has no feature names; pass a "
                    "DataFrame or give integer column indices."
                )
            lookup = {str(c): i for i, c in enumerate(names)}
            missing = [str(c) for c in spec.ravel() if str(c) not in lookup]
            if missing:
                raise ValueError(f"'{name}' names unknown columns {missing}.")
            return np.array([lookup[str(c)] for c in spec.ravel()], dtype=np.intp)
        if spec.dtype.kind not in "iu" or spec.ndim != 1:
            raise ValueError(
                f"'{name}' should be None, a boolean mask, column names or a 1-d list "
                f"of column indices; got {spec!r}."
            )
        if np.any(spec < 0) or np.any(spec >= n_features) or len(set(spec)) != len(spec):
            raise ValueError(
                f"'{name}' should list distinct column indices in [0, {n_features}); "
                f"got {spec.tolist()}."
            )
        return spec.astype(np.intp)

    def _designs(self, X):
        return _make_designs(X, self._gate_idx, self._expert_idx, self._x_mean, self._x_scale)

    def _gating_tree(self):
        branching = self._branching()
        valid = len(branching) > 0 and all(
            isinstance(b, (Integral, np.integer)) and not isinstance(b, bool) for b in branching
        )
        if valid:
            valid = branching[0] >= 1 if len(branching) == 1 else min(branching) >= 2
        if not valid:
            raise ValueError(
                "branching should be a non-empty sequence of integers >= 2 (children per "
                f"gate at each level, root first), or (K,) with K >= 1; got {branching!r}."
            )
        return GatingTree(branching)

    def _model(self, attributes=None):
        """The EM model; ``attributes`` are fitted ones not yet set on self."""
        return Model(
            kernels=get_backend(self.backend),
            tree=self._gating_tree(),
            experts=self._make_experts(vars(self) if attributes is None else attributes),
            reg_gate=float(self.reg_gate),
            gate_solver=self.gate_solver,
        )

    def _check_n_samples(self, sample_weight, n_leaves):
        n_positive = int(np.count_nonzero(sample_weight))
        needed = n_leaves * self._min_samples_per_expert()
        if n_positive < needed:
            raise ValueError(
                f"Too few samples for {n_leaves} experts: got {n_positive} samples with "
                f"positive weight, need at least {needed} "
                f"({self._min_samples_per_expert()} per expert)."
            )

    def _initial_resp(self, problem, X_std, random_state):
        """Initial responsibilities, shape (n_samples, n_leaves)."""
        n = problem.weight.shape[0]
        K = self._gating_tree().n_leaves
        if self.init_params == "random":
            resp = random_state.uniform(size=(n, K))
            return resp / resp.sum(axis=1, keepdims=True)
        if self.init_params == "tree":
            labels = self._tree_labels(X_std, problem, K, random_state)
        elif self.init_params == "kmeans":
            Z = np.hstack([X_std, self._kmeans_target(problem.target)])
            seed = random_state.randint(np.iinfo(np.int32).max)
            with warnings.catch_warnings():
                # Fewer distinct points than experts: k-means says so, and EM copes.
                warnings.simplefilter("ignore", ConvergenceWarning)
                labels = KMeans(n_clusters=K, n_init=1, random_state=seed).fit(
                    Z, sample_weight=problem.weight
                ).labels_
        else:
            Z = np.hstack([X_std, self._kmeans_target(problem.target)])
            positive = np.flatnonzero(problem.weight > 0)
            centres = Z[random_state.choice(positive, K, replace=positive.size < K)]
            sq_dist = (centres**2).sum(axis=1) - 2.0 * Z @ centres.T
            labels = np.argmin(sq_dist, axis=1)
        # A hard partition, softened: EM can still move samples between experts.
        resp = np.full((n, K), _INIT_SOFTENING / K)
        resp[np.arange(n), labels] += 1.0 - _INIT_SOFTENING
        return resp

    def _tree_labels(self, X_std, problem, n_leaves, random_state):
        """Leaves from a CART tree of the same depth (divide and conquer).

        A balanced binary tree of depth ``D = ceil(log2 K)`` is grown on (X, y);
        a CART leaf whose path from the root reads the bits ``b`` (left = 0),
        padded with zeros to D bits, seeds expert ``floor(b K / 2^D)``, so
        siblings in CART start as neighbours in the gating tree.
        """
        depth = max(1, int(np.ceil(np.log2(n_leaves))))
        cart = self._cart(depth, random_state.randint(np.iinfo(np.int32).max))
        cart.fit(X_std, problem.target, sample_weight=problem.weight)
        left, right = cart.tree_.children_left, cart.tree_.children_right
        path = np.zeros(left.size, dtype=np.int64)
        level = np.zeros(left.size, dtype=np.int64)
        for node in range(left.size):  # parents precede children in CART's numbering
            if left[node] >= 0:
                path[left[node]], path[right[node]] = 2 * path[node], 2 * path[node] + 1
                level[left[node]] = level[right[node]] = level[node] + 1
        slot = path << (depth - level)
        return (slot[cart.apply(X_std)] * n_leaves) >> depth

    # ------------------------------------------------------------------
    # Fitting

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model by EM, keeping the best of ``n_init`` starts.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; None gives every sample weight 1.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        saved = {k: self.__dict__[k] for k in ("n_features_in_", "feature_names_in_")
                 if k in self.__dict__}
        try:
            return self._fit(X, y, sample_weight)
        except BaseException:
            # validate_data has already reset these; a failed fit must not.
            for key in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(key, None)
            self.__dict__.update(saved)
            raise

    def _fit(self, X, y, sample_weight):
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        X, y = validate_data(
            self, X, y, dtype=np.float64, ensure_min_samples=2, reset=do_init,
            y_numeric=is_regressor(self),
        )
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        if not np.any(sample_weight > 0):
            raise ValueError("sample_weight has no positive entry: nothing to fit.")
        state = self._fit_state(X, y, sample_weight, do_init)
        model = self._model(state["attributes"])
        self._check_n_samples(sample_weight, model.tree.n_leaves)
        problem = Problem(*state["designs"], state["target"], sample_weight)
        with threadpool_limits(limits=1, user_api="blas"):
            model.root_gram(problem)  # once, shared by every start

        random_state = check_random_state(self.random_state)
        if do_init:
            # One seed per start, drawn up front: the result does not depend on n_jobs.
            starts = [(seed, None) for seed in
                      random_state.randint(np.iinfo(np.int32).max, size=self.n_init)]
        else:
            starts = [(None, self._params)]
        runs = Parallel(n_jobs=self.n_jobs)(
            delayed(_run_start)(self, state["attributes"], problem, state["X_std"], seed, params)
            for seed, params in starts
        )
        best = None
        for run in runs:  # the first of equal starts wins, whatever the order they finished in
            if best is None or run[1][-1] > best[1][-1]:
                best = run
        params, objectives, converged, n_iter = best
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter or tol.",
                ConvergenceWarning,
            )
        # Only now, with every step done, does the estimator change.
        for key, value in state["attributes"].items():
            setattr(self, key, value)
        self._params = params
        self.n_iter_ = n_iter
        self.converged_ = converged
        offset = self._log_likelihood_offset(float(sample_weight.sum()))
        self.lower_bounds_ = np.asarray(objectives) + offset
        self.lower_bound_ = float(self.lower_bounds_[-1])
        self._set_gate_attributes()
        self._set_expert_attributes()
        return self

    def _fit_state(self, X, y, sample_weight, do_init):
        """Everything fit derives from the data, without touching the estimator."""
        if do_init:
            x_mean, x_scale = _weighted_scaling(X, sample_weight)
            attributes = {
                "_x_mean": x_mean,
                "_x_scale": x_scale,
                "_gate_idx": self._resolve_features(self.gate_features, "gate_features"),
                "_expert_idx": self._resolve_features(self.expert_features, "expert_features"),
            }
        else:
            attributes = {k: getattr(self, k)
                          for k in ("_x_mean", "_x_scale", "_gate_idx", "_expert_idx")}
        target, target_attributes = self._encode_target(y, sample_weight, do_init)
        designs = _make_designs(X, attributes["_gate_idx"], attributes["_expert_idx"],
                                attributes["_x_mean"], attributes["_x_scale"])
        # The initialisations need X standardised; a design that holds every column
        # already is that, after its intercept column, so reuse it rather than copy X.
        every_column = np.arange(X.shape[1])
        for idx, design in zip((attributes["_gate_idx"], attributes["_expert_idx"]), designs):
            if np.array_equal(idx, every_column):
                X_std = design[:, 1:]
                break
        else:
            X_std = (X - attributes["_x_mean"]) / attributes["_x_scale"] if do_init else None
        return {"designs": designs, "target": target, "X_std": X_std,
                "attributes": {**attributes, **target_attributes}}

    def _set_gate_attributes(self):
        tree = self._gating_tree()
        coefs, intercepts = [], []
        idx = self._gate_idx
        for coef in self._params["gates"]:
            slopes = coef[:, :, 1:] / self._x_scale[idx]
            intercepts.append(coef[:, :, 0] - slopes @ self._x_mean[idx])
            coefs.append(slopes)
        if tree.n_levels == 1:
            self.gate_coef_ = coefs[0][0]
            self.gate_intercept_ = intercepts[0][0]
        else:
            self.gate_coef_ = coefs
            self.gate_intercept_ = intercepts

    # ------------------------------------------------------------------
    # Inference shared by every estimator

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def _log_prior(self, X_gate):
        return self._model().log_prior(self._params["gates"], X_gate)

    def predict_gate(self, X):
        """Gate probabilities of every expert for new inputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_experts)
            ``g_l(x)``, the prior weight of expert l at x; rows sum to 1.
        """
        X = self._validate_X(X)
        return np.exp(self._log_prior(self._designs(X)[0]))

    def _problem_for(self, X, y, sample_weight):
        check_is_fitted(self)
        X, y = validate_data(self, X, y, reset=False, dtype=np.float64,
                             y_numeric=is_regressor(self))
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        target, _ = self._encode_target(y, sample_weight, reset=False)
        return Problem(*self._designs(X), target, sample_weight)

    def predict_responsibilities(self, X, y):
        """Posterior probability of each expert given (x, y).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_experts)
            ``P(expert l | x, y)``; rows sum to 1.
        """
        problem = self._problem_for(X, y, None)
        _, log_resp = self._model().e_step(self._params, problem)
        return np.exp(log_resp)

    def score_samples(self, X, y):
        """Log predictive density (or probability) of each sample, ``log p(y_i | x_i)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            For regressors the log-density of y in its own units; for
            classifiers the log-probability of the observed class.
        """
        problem = self._problem_for(X, y, None)
        model = self._model()
        log_joint = model.log_prior(self._params["gates"], problem.X_gate)
        log_lik = np.empty_like(log_joint)
        model.experts.log_prob(model.kernels, self._params["experts"], problem.X_expert,
                               problem.target, log_lik)
        log_joint += log_lik
        return logsumexp(log_joint, axis=1) + self._log_likelihood_offset(1.0)

    def log_likelihood(self, X, y, sample_weight=None):
        """Total (weighted) log-likelihood ``sum_i w_i log p(y_i | x_i)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        log_likelihood : float
            In the units of y, without the ridge penalties.
        """
        return self._fit_summary(X, y, sample_weight)[0]

    def apply(self, X):
        """Leaf each sample is routed to by following the most probable gate child.

        Like :meth:`sklearn.tree.DecisionTreeRegressor.apply`: at every gate,
        from the root down, the sample goes to the child with the highest gate
        probability.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        leaves : ndarray of shape (n_samples,)
            Expert index in ``[0, n_experts)``.
        """
        X = self._validate_X(X)
        model = self._model()
        levels = model.gate_log_probs(self._params["gates"], self._designs(X)[0])
        rows = np.arange(X.shape[0])[:, None]
        node = np.zeros(X.shape[0], dtype=np.intp)
        for b, log_gate in zip(model.tree.branching, levels):
            children = node[:, None] * b + np.arange(b)
            node = node * b + np.argmax(log_gate[rows, children], axis=1)
        return node

    def export_text(self, feature_names=None, n_top=3, decimals=3):
        """Text view of the gating tree and the experts, like ``sklearn.tree.export_text``.

        Each gate lists, for every non-reference child, the ``n_top`` features
        with the largest standardised effect on that child's log-odds against
        child 0; each leaf lists its expert's coefficients.

        Parameters
        ----------
        feature_names : list of str, default=None
            Names of the columns of X; defaults to ``feature_names_in_`` or x0, x1, ...
        n_top : int, default=3
            Features shown per gate child.
        decimals : int, default=3

        Returns
        -------
        report : str
        """
        check_is_fitted(self)
        if feature_names is None:
            feature_names = getattr(self, "feature_names_in_", None)
        if feature_names is None:
            feature_names = [f"x{j}" for j in range(self.n_features_in_)]
        names = np.asarray(feature_names, dtype=object)
        tree = self._gating_tree()
        fmt = f"{{:+.{decimals}g}}"
        gate_names = names[self._gate_idx]

        def gate_line(d, v):
            coef = self._params["gates"][d][v]
            parts = []
            for j in range(1, coef.shape[0]):
                order = np.argsort(-np.abs(coef[j, 1:]))[:n_top]
                slopes = coef[j, 1:] / self._x_scale[self._gate_idx]
                intercept = coef[j, 0] - slopes @ self._x_mean[self._gate_idx]
                terms = " ".join(f"{fmt.format(slopes[k])}*{gate_names[k]}" for k in order)
                parts.append(f"child {j} vs 0: {fmt.format(intercept)} {terms}".rstrip())
            return "gate: " + ("; ".join(parts) if parts else "single child")

        lines = []

        def walk(d, v, indent):
            lines.append(indent + gate_line(d, v))
            for j in range(tree.branching[d]):
                child = v * tree.branching[d] + j
                if d + 1 == tree.n_levels:
                    expert = self._expert_text(child, names, fmt)
                    lines.append(f"{indent}|--- leaf {child}: {expert}")
                else:
                    lines.append(f"{indent}|--- child {j}")
                    walk(d + 1, child, indent + "|   ")

        walk(0, 0, "")
        return "\n".join(lines) + "\n"

    def bic(self, X, y, sample_weight=None):
        """Bayesian information criterion ``-2 LL + k log n`` (lower is better).

        ``k`` counts every free parameter (gates, experts, variances) and ``n``
        is the total sample weight.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        bic : float
        """
        ll, total_weight, _ = self._fit_summary(X, y, sample_weight)
        return -2.0 * ll + self.n_parameters() * np.log(total_weight)

    def aic(self, X, y, sample_weight=None):
        """Akaike information criterion ``-2 LL + 2 k`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        aic : float
        """
        ll, _, _ = self._fit_summary(X, y, sample_weight)
        return -2.0 * ll + 2.0 * self.n_parameters()

    def icl(self, X, y, sample_weight=None):
        """Integrated completed likelihood: BIC plus twice the assignment entropy.

        ``ICL = BIC - 2 sum_i w_i sum_l h_il log h_il`` (Biernacki, Celeux and
        Govaert 2000); it penalises experts whose responsibilities overlap, so it
        prefers well-separated experts (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        icl : float
        """
        ll, total_weight, entropy = self._fit_summary(X, y, sample_weight)
        return -2.0 * ll + self.n_parameters() * np.log(total_weight) + 2.0 * entropy

    def _fit_summary(self, X, y, sample_weight):
        """Log-likelihood, total weight and weighted assignment entropy of (X, y)."""
        problem = self._problem_for(X, y, sample_weight)
        ll, log_resp = self._model().e_step(self._params, problem)
        total_weight = float(problem.weight.sum())
        entropy = -float(problem.weight @ np.sum(np.exp(log_resp) * log_resp, axis=1))
        return ll + self._log_likelihood_offset(total_weight), total_weight, entropy

    def n_parameters(self):
        """Number of free parameters of the fitted model (gates and experts).

        Returns
        -------
        n_params : int
        """
        check_is_fitted(self)
        return self._model().n_params(self._gate_idx.size + 1, self._expert_idx.size + 1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
