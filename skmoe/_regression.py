"""Mixture-of-experts regressors with Gaussian linear experts."""

from numbers import Integral, Real

import numpy as np
from scipy.special import ndtri
from sklearn.base import RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval

from ._base import _MAX_STANDARDISED, BaseMixtureOfExperts, branching_constraint
from ._experts import EstimatorExperts, GaussianExperts
from ._kernels._design import standardise, weighted_scaling


class _GaussianExpertsRegressor(RegressorMixin, BaseMixtureOfExperts):
    """Gaussian linear experts: target scaling, predictions and attributes."""

    _parameter_constraints: dict = {
        **BaseMixtureOfExperts._parameter_constraints,
        # Below eps**2 a floor is finer than float64 resolves a standardised target.
        "min_variance": [Interval(Real, np.finfo(np.float64).eps ** 2, None, closed="left")],
        "expert_estimator": [None, HasMethods(["fit", "predict"])],
    }

    def _encode_target(self, y, sample_weight, reset):
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"{type(self).__name__} needs a numeric target y; got dtype {y.dtype}. "
                "For class labels use a MixtureOfExpertsClassifier."
            )
        if reset:
            mean, scale = weighted_scaling(
                np.ascontiguousarray(y, dtype=np.float64).reshape(-1, 1), sample_weight)
            attributes = {"_y_mean": float(mean[0]), "_y_scale": float(scale[0])}
        else:
            attributes = {"_y_mean": self._y_mean, "_y_scale": self._y_scale}
        target = standardise(y, attributes["_y_mean"], attributes["_y_scale"], _MAX_STANDARDISED)
        return target, attributes

    def _output_scale(self):
        return self._y_scale

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2 of :meth:`predict`, as in scikit-learn.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights, validated as in ``fit``.

        Returns
        -------
        score : float
        """
        self._check_score_weight(X, sample_weight)
        return super().score(X, y, sample_weight=sample_weight)

    def _make_experts(self, attributes):
        if self.expert_estimator is None:
            return GaussianExperts(float(self.reg_expert), float(self.min_variance))
        self._check_expert_estimator()
        idx = attributes["_expert_idx"]
        return EstimatorExperts(self.expert_estimator, float(self.min_variance),
                                attributes["_x_mean"][idx], attributes["_x_scale"][idx],
                                attributes["_y_mean"], attributes["_y_scale"])

    def _kmeans_target(self, target):
        return target[:, None]

    def _cart(self, max_depth, seed):
        # Imported here: only init_params='tree' needs it, and it costs 0.15 s at import.
        from sklearn.tree import DecisionTreeRegressor

        return DecisionTreeRegressor(max_depth=max_depth, random_state=seed)

    def _min_samples_per_expert(self):
        return 2

    def _log_likelihood_offset(self, total_weight):
        # The density of y is that of the standardised target over the scale.
        return -total_weight * np.log(self._y_scale)

    def _set_expert_attributes(self):
        experts = self._params["experts"]
        y_scale = np.float64(self._y_scale)
        # A refit with the other kind of expert leaves no attribute of the last one.
        for name in ("experts_", "expert_coef_", "expert_intercept_"):
            self.__dict__.pop(name, None)
        with np.errstate(over="ignore"):  # inf, not NaN, beyond the float range
            self.expert_variance_ = experts["var"] * y_scale**2
            if "estimators" in experts:
                self.experts_ = list(experts["estimators"])
                return
            coef = experts["coef"]
            idx = self._expert_idx
            self.expert_coef_ = coef[:, 1:] * y_scale / self._x_scale[idx]
            offset = coef[:, 0] - coef[:, 1:] @ (self._x_mean[idx] / self._x_scale[idx])
            self.expert_intercept_ = self._y_mean + y_scale * offset

    def _expert_jacobian(self):
        # intercept = y_mean + y_scale * (c_0 - sum_k c_k mean_k / scale_k), and so on.
        p = self._expert_idx.size + 1
        block = np.zeros((p + 1, p + 1))
        block[:p, :p] = self._linear_jacobian(self._expert_idx, self._y_scale)
        with np.errstate(over="ignore"):  # inf beyond the float range
            block[p, p] = np.float64(self._y_scale) ** 2
        names = ["intercept", *self._feature_names()[self._expert_idx], "variance"]
        return block, names

    def _expert_estimates(self):
        return np.column_stack([self.expert_intercept_, self.expert_coef_,
                                self.expert_variance_]).ravel()

    def _expert_standard_errors(self, se):
        per_leaf = se.reshape(-1, self._expert_idx.size + 2)
        return {"expert_coef": per_leaf[:, 1:-1], "expert_intercept": per_leaf[:, 0],
                "expert_variance": per_leaf[:, -1]}

    def _expert_text(self, leaf, names, fmt):
        if "estimators" in self._params["experts"]:
            return f"{self.experts_[leaf]!r}, variance {self.expert_variance_[leaf]:.3g}"
        terms = " ".join(f"{fmt.format(c)}*{name}"
                         for c, name in zip(self.expert_coef_[leaf], names[self._expert_idx]))
        return (f"y = {fmt.format(self.expert_intercept_[leaf])} {terms}".rstrip()
                + f", variance {self.expert_variance_[leaf]:.{3}g}")

    def _expert_means(self, X_expert, kernels):
        """The experts' standardised means (n_samples, n_experts), where ``kernels`` computes."""
        experts = self._params["experts"]
        if "estimators" in experts:
            return self._model().experts.means(experts, X_expert)
        out = kernels.empty((X_expert.shape[0], experts["coef"].shape[0]))
        return kernels.linear_predictor(X_expert, experts["coef"], out)

    def predict(self, X, return_std=False, *, top_k=None):
        """Predict the conditional mean ``E[y | x] = sum_l g_l(x) beta_l^T x``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the predictive standard deviation, from the law of
            total variance ``Var[y | x] = sum_l g_l(x) (var_l + (mu_l(x) -
            E[y | x])^2)`` (the convention of
            :class:`~sklearn.gaussian_process.GaussianProcessRegressor`).
        top_k : int, default=None
            Sparse routing: each sample uses only its ``top_k`` experts with
            the largest gate probability, renormalised (for the mean and the
            standard deviation), and only their means are computed. None uses
            every expert. The gate mass this drops is given by
            ``predict_gate(X, top_k=top_k, return_dropped=True)``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        y_std : ndarray of shape (n_samples,)
            Only if ``return_std``.
        """
        X = self._validate_X(X, check_finite=False)
        top_k = self._check_top_k(top_k)
        experts = self._params["experts"]

        def moment_rows(kernels, X_rows):
            X_gate, X_expert = self._designs(X_rows, kernels)
            log_prior = self._log_prior(X_gate, kernels)
            mean = kernels.empty(X_rows.shape[0])
            var = kernels.empty(X_rows.shape[0])
            if top_k is not None and "estimators" in experts:
                # Every expert predicts (an estimator has no cheaper route); the
                # mixture keeps the routed ones.
                kernels.gaussian_mix_moments(self._routed_log_weight(log_prior, top_k),
                                             self._expert_means(X_expert, kernels),
                                             experts["var"], mean, var)
            elif top_k is not None:
                idx, weight = self._route(log_prior, top_k, kernels)
                kernels.gaussian_mix_sparse(X_expert, experts["coef"], experts["var"], idx,
                                            weight, mean, var)
            elif return_std:
                kernels.gaussian_mix_moments(log_prior, self._expert_means(X_expert, kernels),
                                             experts["var"], mean, var)
            else:
                return kernels.mix(log_prior, self._expert_means(X_expert, kernels), mean)
            return mean, var

        moments = self._in_batches(X, moment_rows)
        if return_std:
            # The mean and variance of a top_k route are computed together.
            mean, var = moments
            return self._y_mean + self._y_scale * mean, self._y_scale * np.sqrt(var)
        return self._y_mean + self._y_scale * (moments if top_k is None else moments[0])

    def predict_quantiles(self, X, quantiles=(0.05, 0.5, 0.95)):
        """Quantiles of the predictive distribution ``p(y | x)``.

        The q-quantile solves ``sum_l g_l(x) Phi((y - mu_l(x)) / sigma_l) = q``,
        found for every sample at once by a safeguarded Newton iteration inside
        the bracket of the experts' own q-quantiles, to about 1e-12 relative.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        quantiles : float or array-like of float, default=(0.05, 0.5, 0.95)
            Levels, each strictly between 0 and 1.

        Returns
        -------
        y_quantiles : ndarray of shape (n_samples, n_quantiles)
            Column j is the ``quantiles[j]``-quantile, in the units of y.

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe import MixtureOfExpertsRegressor
        >>> from skmoe.datasets import make_heteroscedastic_regression
        >>> X, y = make_heteroscedastic_regression(n_samples=1000, random_state=0)
        >>> moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> q = moe.predict_quantiles(X[:5], quantiles=[0.1, 0.5, 0.9])
        >>> q.shape, bool(np.all(np.diff(q, axis=1) > 0))
        ((5, 3), True)
        """
        try:
            levels = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
        except (TypeError, ValueError):
            levels = np.array([np.nan])
        if levels.ndim != 1 or levels.size == 0 or not np.all((levels > 0) & (levels < 1)):
            raise ValueError(
                "quantiles should be a float or a non-empty 1-d array-like of floats "
                f"strictly between 0 and 1; got {quantiles!r}."
            )
        X = self._validate_X(X, check_finite=False)

        def quantile_rows(kernels, X_rows):
            X_gate, X_expert = self._designs(X_rows, kernels)
            out = kernels.empty((X_rows.shape[0], levels.size))
            kernels.gaussian_mix_quantiles(
                self._log_prior(X_gate, kernels), self._expert_means(X_expert, kernels),
                self._params["experts"]["var"], ndtri(levels), levels, out,
            )
            return out

        return self._y_mean + self._y_scale * self._in_batches(X, quantile_rows, levels.size)

    def predict_interval(self, X, coverage=0.9):
        """Central prediction interval of ``p(y | x)`` with the given coverage.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        coverage : float, default=0.9
            Probability of the interval, strictly between 0 and 1; its bounds
            are the ``(1 - coverage) / 2`` and ``(1 + coverage) / 2`` quantiles.

        Returns
        -------
        interval : ndarray of shape (n_samples, 2)
            Lower and upper bounds, in the units of y.

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe import MixtureOfExpertsRegressor
        >>> from skmoe.datasets import make_heteroscedastic_regression
        >>> X, y = make_heteroscedastic_regression(n_samples=2000, random_state=0)
        >>> moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
        >>> X_new, y_new = make_heteroscedastic_regression(n_samples=2000, random_state=1)
        >>> low, high = moe.predict_interval(X_new, coverage=0.9).T
        >>> bool(0.87 < np.mean((low <= y_new) & (y_new <= high)) < 0.93)
        True
        """
        if not (isinstance(coverage, (Real, np.floating)) and not isinstance(coverage, bool)
                and 0.0 < coverage < 1.0):
            raise ValueError(
                f"coverage should be a float strictly between 0 and 1; got {coverage!r}."
            )
        tail = 0.5 * (1.0 - float(coverage))
        return self.predict_quantiles(X, quantiles=(tail, 1.0 - tail))

    def sample(self, X, n_samples=1, random_state=None):
        """Draw targets from the predictive distribution ``p(y | x)``.

        For each draw an expert is picked with the gate probabilities, then y
        from that expert's Gaussian. All randomness comes from ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        n_samples : int, default=1
            Draws per row of X.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; an int gives the same draws on every call.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples)
            Column j is the j-th draw for every row of X (the layout of
            :meth:`sklearn.gaussian_process.GaussianProcessRegressor.sample_y`).

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe import MixtureOfExpertsRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.uniform(-1, 1, size=(300, 1))
        >>> y = X[:, 0] + 0.1 * rng.normal(size=300)
        >>> moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> draws = moe.sample(X[:4], n_samples=3, random_state=0)
        >>> draws.shape
        (4, 3)
        >>> bool(np.array_equal(draws, moe.sample(X[:4], n_samples=3, random_state=0)))
        True
        """
        if (not isinstance(n_samples, (Integral, np.integer)) or isinstance(n_samples, bool)
                or n_samples < 1):
            raise ValueError(f"n_samples should be a positive integer; got {n_samples!r}.")
        rng = check_random_state(random_state)
        X = self._validate_X(X, check_finite=False)

        def mixture_rows(kernels, X_rows):
            X_gate, X_expert = self._designs(X_rows, kernels)
            log_prior = self._log_prior(X_gate, kernels)
            return kernels.exp(log_prior, log_prior), self._expert_means(X_expert, kernels)

        gate, means = self._in_batches(X, mixture_rows, self._gating_tree().n_leaves)
        n, K = means.shape
        cumulative = np.cumsum(gate, axis=1)
        u = rng.uniform(size=(n, n_samples)) * cumulative[:, -1:]
        # Expert j is drawn when cumulative[j - 1] <= u < cumulative[j]; counting the
        # first K - 1 boundaries below u gives j and never exceeds K - 1.
        expert = np.zeros((n, n_samples), dtype=np.intp)
        for j in range(K - 1):
            expert += cumulative[:, j : j + 1] <= u
        sd = np.sqrt(self._params["experts"]["var"])
        draws = (np.take_along_axis(means, expert, axis=1)
                 + sd[expert] * rng.standard_normal(size=(n, n_samples)))
        return self._y_mean + self._y_scale * draws

    def predict_experts(self, X):
        """Each expert's prediction ``beta_l^T x``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_experts : ndarray of shape (n_samples, n_experts)
        """
        X = self._validate_X(X, check_finite=False)

        def expert_rows(kernels, X_rows):
            return self._expert_means(self._designs(X_rows, kernels)[1], kernels)

        means = self._in_batches(X, expert_rows, self._gating_tree().n_leaves)
        return self._y_mean + self._y_scale * means


class MixtureOfExpertsRegressor(_GaussianExpertsRegressor):
    """Mixture of Gaussian linear experts with a softmax gate, fitted by EM.

    The conditional density is ``p(y | x) = sum_l g_l(x) N(y; beta_l . x, var_l)``
    with a softmax gate ``g(x) = softmax(V x)`` (Jordan & Jacobs 1994). The gate
    and the experts are fitted jointly by expectation maximisation; every
    iteration does not decrease the (penalised) log-likelihood.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts K.
    gate_features : array-like of int, str or bool, default=None
        Columns of X the gate sees: None for all, a list of indices or column
        names, or a boolean mask. An empty list gives an intercept-only gate:
        a mixture of linear regressions (flexmix's ``y ~ x | 1``).
    expert_features : array-like of int, str or bool, default=None
        Columns of X the experts regress on, as for ``gate_features``.
    gate_solver : {"auto", "newton", "bohning"}, default="auto"
        Gate M-step: damped Newton (IRLS with step halving), or steps on
        Boehning's fixed curvature bound (cheaper per iteration for many
        experts, but more iterations). "auto" uses Newton when the gate has at
        most 320 free coefficients ((n_experts - 1) * (n_gate_features + 1)),
        the shapes where it measured faster per fit.
    max_iter : int, default=500
        Maximum EM iterations per start.
    tol : float, default=1e-6
        Convergence threshold on the change of the mean (per unit weight)
        penalised log-likelihood.
    n_init : int, default=1
        Number of starts; the one with the highest log-likelihood is kept.
    init_params : {"kmeans", "random", "random_from_data", "tree"}, default="kmeans"
        Initial responsibilities: k-means on the standardised (X, y) (on
        100 000 samples at most, the others going to the nearest centre); random;
        each sample to the nearest of K random samples in the standardised
        (X, y) ("random_from_data", a random partition, diverse across
        ``n_init`` starts); or the leaves of a CART tree of the same depth
        ("tree"). Hard partitions are softened (half the mass spread evenly).
    reg_gate : float, default=1e-6
        Ridge penalty on the gate slopes (standardised inputs).
    reg_expert : float, default=1e-6
        Ridge penalty on the expert slopes (standardised inputs and target),
        scaled by each expert's inverse variance.
    min_variance : float, default=1e-6
        Floor on each expert's variance, as a fraction of the variance of y;
        it keeps the likelihood bounded when an expert fits a few points exactly.
        At least ``np.finfo(float).eps ** 2`` (about 4.9e-32).
    expert_estimator : scikit-learn regressor, default=None
        None: linear experts. Otherwise any regressor whose ``fit`` takes
        ``sample_weight`` (a tree, a boosted model, ``LinearRegression``...):
        each expert is a clone, refitted in every M-step with the samples'
        responsibilities as weights, on the expert columns and y in the
        user's units; y is Gaussian around its prediction with a variance per
        expert. The fitted clones are ``experts_``. ``reg_expert`` does not
        apply; the log-likelihood never decreases only for estimators that fit
        weighted least squares exactly; ``n_parameters``, the information
        criteria and ``standard_errors`` are not defined; CPU backend only.
        Where EM ends below the best log-likelihood it saw, the fit keeps
        that iterate (``lower_bounds_`` and ``n_iter_`` end there).
    warm_start : bool, default=False
        If True, ``fit`` continues from the previous solution (one start); the
        number of experts, the features and ``expert_estimator`` must be those of
        that fit (else fit raises a ValueError).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation.
    verbose : int, default=0
        1 prints each start's result; 2 also prints every ``verbose_interval``
        iterations.
    verbose_interval : int, default=10
        Iterations between progress lines.
    backend : {"cpu", "cuda"}, default="cpu"
        Where the kernels run: "cpu" (Numba, all cores) or "cuda" (an NVIDIA
        GPU through numba-cuda; ``pip install "skmoe[cuda]"``). With "cuda" the
        data move to the GPU once per fit and EM runs there; the model is the
        same as with "cpu" to rounding. Without a usable GPU, fit raises an
        error saying what is missing. The starts of ``n_init`` then share
        the GPU and run one after the other, whatever ``n_jobs``.
    n_jobs : int, default=None
        Starts (``n_init``) run in parallel through joblib; None means 1 unless
        in a ``joblib.parallel_backend`` context, -1 means all processors. Each
        start has its own seed drawn from ``random_state``, so the result is the
        same for every ``n_jobs``.

    Attributes
    ----------
    gate_coef_ : ndarray of shape (n_experts, n_gate_features)
        Gate slopes in the units of X; expert 0 is the reference (row of zeros).
    gate_intercept_ : ndarray of shape (n_experts,)
    expert_coef_ : ndarray of shape (n_experts, n_expert_features)
        Linear experts only (``expert_estimator=None``).
    expert_intercept_ : ndarray of shape (n_experts,)
    experts_ : list of estimators
        The fitted clones of ``expert_estimator``, when given (instead of
        ``expert_coef_`` and ``expert_intercept_``).
    expert_variance_ : ndarray of shape (n_experts,)
        Noise variance of each expert, in the units of y squared.
    n_iter_ : int
        EM iterations of the best start.
    converged_ : bool
    lower_bound_ : float
        Total log-likelihood of the training data at the end of fit, minus the
        (tiny by default) ridge penalties.
    lower_bounds_ : ndarray of shape (`n_iter_` + 1,)
        The same after the initialisation and after every iteration.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined only when X has string column names.
    collapsed_experts_ : ndarray of shape (n_collapsed,)
        Experts pruned because they lost all responsibility (see Notes);
        usually empty.

    See Also
    --------
    MixtureOfExpertsClassifier : The same model with multinomial logistic experts.

    Notes
    -----
    An expert whose responsibility falls below 1e-10 of the total sample weight
    has collapsed. EM stops re-estimating it, so every iteration still does not
    decrease the log-likelihood; at the end of ``fit`` it is pruned with a
    ``ConvergenceWarning``: every prediction gives it gate probability 0 and
    renormalises the others, so its stale parameters never affect a prediction
    (``predict_experts`` and the coefficient attributes still show them). Pruning
    lowers the training log-likelihood by at most about the collapsed
    responsibility mass, and may raise it. ``collapsed_experts_`` lists them.

    Every prediction is finite for finite input: inputs are standardised and
    saturate at 1e100 training standard deviations (fewer where an output in the
    units of y would overflow first). See :doc:`/guarantees`.

    References
    ----------
    Jordan, M. I. and Jacobs, R. A. (1994). Hierarchical mixtures of experts and
    the EM algorithm. Neural Computation, 6(2), 181-214.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import MixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(400, 1))
    >>> y = np.where(X[:, 0] > 0, 1 + 2 * X[:, 0], -1 - X[:, 0])
    >>> y = y + 0.05 * rng.normal(size=400)
    >>> moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
    >>> bool(moe.score(X, y) > 0.99)
    True
    >>> np.round(np.sort(moe.expert_coef_.ravel()), 1)
    array([-1.,  2.])

    The predictive distribution: standard deviation, a 90 % interval and draws.

    >>> y_pred, y_std = moe.predict(X[:3], return_std=True)
    >>> bool(np.all((0.03 < y_std) & (y_std < 0.07)))
    True
    >>> moe.predict_interval(X[:3], coverage=0.9).shape
    (3, 2)
    >>> moe.sample(X[:3], n_samples=10, random_state=0).shape
    (3, 10)
    """

    _parameter_constraints: dict = {
        **_GaussianExpertsRegressor._parameter_constraints,
        "n_experts": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        n_experts=2,
        *,
        gate_features=None,
        expert_features=None,
        gate_solver="auto",
        max_iter=500,
        tol=1e-6,
        n_init=1,
        init_params="kmeans",
        reg_gate=1e-6,
        reg_expert=1e-6,
        min_variance=1e-6,
        expert_estimator=None,
        warm_start=False,
        random_state=None,
        verbose=0,
        verbose_interval=10,
        backend="cpu",
        n_jobs=None,
    ):
        self.n_experts = n_experts
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.gate_solver = gate_solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.reg_gate = reg_gate
        self.reg_expert = reg_expert
        self.min_variance = min_variance
        self.expert_estimator = expert_estimator
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.backend = backend
        self.n_jobs = n_jobs

    def _branching(self):
        return (self.n_experts,)


class HierarchicalMixtureOfExpertsRegressor(_GaussianExpertsRegressor):
    """Hierarchical mixture of Gaussian linear experts (HME), fitted by EM.

    A balanced tree of softmax gates routes each input softly to the leaves;
    every leaf is a Gaussian linear expert ``N(y; beta_l . x, var_l)``. The
    prior of a leaf is the product of the gate probabilities along its path
    (Jordan & Jacobs 1994). All gates of a level are updated from one pass over
    the data; with ``branching=(K,)`` the model is
    :class:`MixtureOfExpertsRegressor` with K experts, fitted identically.

    Parameters
    ----------
    branching : tuple of int, default=(2, 2)
        Children per gate at each level, root first: ``(2, 2, 2)`` is a binary
        tree of depth 3 with 8 experts, ``(4, 4)`` has 16.
    gate_features, expert_features, gate_solver, max_iter, tol, n_init, \
init_params, reg_gate, reg_expert, min_variance, expert_estimator, warm_start, random_state, \
verbose, verbose_interval, backend, n_jobs
        As for :class:`MixtureOfExpertsRegressor`; ``init_params="tree"``
        seeds the responsibilities from a CART tree of the same depth.

    Attributes
    ----------
    gate_coef_ : list of ndarray of shape (n_nodes, n_children, n_gate_features)
        Gate slopes of each level, root first; child 0 of each gate is its
        reference (zeros).
    gate_intercept_ : list of ndarray of shape (n_nodes, n_children)
    expert_coef_ : ndarray of shape (n_experts, n_expert_features)
        Leaf experts in tree order (leaf l sits below gate child
        ``l // prod(branching[d+1:]) % branching[d]`` at level d).
    expert_intercept_ : ndarray of shape (n_experts,)
    experts_ : list of estimators
        With ``expert_estimator``, in tree order.
    expert_variance_ : ndarray of shape (n_experts,)
    n_iter_, converged_, lower_bound_, lower_bounds_, n_features_in_, \
feature_names_in_, collapsed_experts_
        As for :class:`MixtureOfExpertsRegressor`.

    See Also
    --------
    MixtureOfExpertsRegressor : The flat (one-gate) model.
    HierarchicalMixtureOfExpertsClassifier : The same tree with logistic experts.

    Notes
    -----
    An expert whose responsibility falls below 1e-10 of the total sample weight
    has collapsed. EM stops re-estimating it, so every iteration still does not
    decrease the log-likelihood; at the end of ``fit`` it is pruned with a
    ``ConvergenceWarning``: every prediction gives it gate probability 0 and
    renormalises the others, so its stale parameters never affect a prediction
    (``predict_experts`` and the coefficient attributes still show them). Pruning
    lowers the training log-likelihood by at most about the collapsed
    responsibility mass, and may raise it. ``collapsed_experts_`` lists them.

    Every prediction is finite for finite input: inputs are standardised and
    saturate at 1e100 training standard deviations (fewer where an output in the
    units of y would overflow first). See :doc:`/guarantees`.

    References
    ----------
    Jordan, M. I. and Jacobs, R. A. (1994). Hierarchical mixtures of experts and
    the EM algorithm. Neural Computation, 6(2), 181-214.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import HierarchicalMixtureOfExpertsRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.uniform(-1, 1, size=(800, 2))
    >>> y = np.abs(X[:, 0]) + np.abs(X[:, 1]) + 0.05 * rng.normal(size=800)
    >>> hme = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), n_init=2,
    ...                                             random_state=0).fit(X, y)
    >>> bool(hme.score(X, y) > 0.95)
    True
    >>> hme.predict_gate(X).shape
    (800, 4)

    Sparse routing: each sample uses only its two most probable experts.

    >>> y_routed = hme.predict(X, top_k=2)
    >>> _, dropped = hme.predict_gate(X, top_k=2, return_dropped=True)
    >>> bool(np.all((0 <= dropped) & (dropped <= 1)))
    True
    """

    _parameter_constraints: dict = {
        **_GaussianExpertsRegressor._parameter_constraints,
        "branching": [branching_constraint],
    }

    def __init__(
        self,
        branching=(2, 2),
        *,
        gate_features=None,
        expert_features=None,
        gate_solver="auto",
        max_iter=500,
        tol=1e-6,
        n_init=1,
        init_params="kmeans",
        reg_gate=1e-6,
        reg_expert=1e-6,
        min_variance=1e-6,
        expert_estimator=None,
        warm_start=False,
        random_state=None,
        verbose=0,
        verbose_interval=10,
        backend="cpu",
        n_jobs=None,
    ):
        self.branching = branching
        self.gate_features = gate_features
        self.expert_features = expert_features
        self.gate_solver = gate_solver
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.init_params = init_params
        self.reg_gate = reg_gate
        self.reg_expert = reg_expert
        self.min_variance = min_variance
        self.expert_estimator = expert_estimator
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.backend = backend
        self.n_jobs = n_jobs

    def _branching(self):
        return tuple(self.branching)
