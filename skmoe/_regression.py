"""Mixture-of-experts regressors with Gaussian linear experts."""

from numbers import Integral, Real

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.tree import DecisionTreeRegressor
from sklearn.utils._param_validation import Interval

from ._base import BaseMixtureOfExperts, branching_constraint
from ._experts import GaussianExperts


class _GaussianExpertsRegressor(RegressorMixin, BaseMixtureOfExperts):
    """Gaussian linear experts: target scaling, predictions and attributes."""

    _parameter_constraints: dict = {
        **BaseMixtureOfExperts._parameter_constraints,
        "min_variance": [Interval(Real, 0.0, None, closed="neither")],
    }

    def _encode_target(self, y, sample_weight, reset):
        if reset:
            mean = float(np.average(y, weights=sample_weight))
            scale = float(np.sqrt(np.average((y - mean) ** 2, weights=sample_weight)))
            if not scale > 0:
                scale = 1.0
            attributes = {"_y_mean": mean, "_y_scale": scale}
        else:
            attributes = {"_y_mean": self._y_mean, "_y_scale": self._y_scale}
        target = (y - attributes["_y_mean"]) / attributes["_y_scale"]
        return np.ascontiguousarray(target), attributes

    def _make_experts(self, attributes):
        return GaussianExperts(float(self.reg_expert), float(self.min_variance))

    def _kmeans_target(self, target):
        return target[:, None]

    def _cart(self, max_depth, seed):
        return DecisionTreeRegressor(max_depth=max_depth, random_state=seed)

    def _min_samples_per_expert(self):
        return 2

    def _log_likelihood_offset(self, total_weight):
        # The density of y is that of the standardised target over the scale.
        return -total_weight * np.log(self._y_scale)

    def _set_expert_attributes(self):
        coef = self._params["experts"]["coef"]
        idx = self._expert_idx
        slopes = coef[:, 1:] * self._y_scale / self._x_scale[idx]
        self.expert_coef_ = slopes
        intercept = self._y_mean + self._y_scale * coef[:, 0]
        self.expert_intercept_ = intercept - slopes @ self._x_mean[idx]
        self.expert_variance_ = self._params["experts"]["var"] * self._y_scale**2

    def _expert_text(self, leaf, names, fmt):
        terms = " ".join(f"{fmt.format(c)}*{name}"
                         for c, name in zip(self.expert_coef_[leaf], names[self._expert_idx]))
        return (f"y = {fmt.format(self.expert_intercept_[leaf])} {terms}".rstrip()
                + f", variance {self.expert_variance_[leaf]:.{3}g}")

    def _expert_means(self, X_expert):
        return X_expert @ self._params["experts"]["coef"].T

    def predict(self, X):
        """Predict the conditional mean ``E[y | x] = sum_l g_l(x) beta_l^T x``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        X = self._validate_X(X)
        X_gate, X_expert = self._designs(X)
        out = np.empty(X.shape[0])
        self._model().kernels.mix(self._log_prior(X_gate), self._expert_means(X_expert), out)
        return self._y_mean + self._y_scale * out

    def predict_experts(self, X):
        """Each expert's prediction ``beta_l^T x``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_experts : ndarray of shape (n_samples, n_experts)
        """
        X = self._validate_X(X)
        return self._y_mean + self._y_scale * self._expert_means(self._designs(X)[1])


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
        Gate M-step: damped Newton (IRLS with step halving), or a step on
        Boehning's fixed curvature bound (cheaper per iteration for many
        experts). "auto" uses Newton when the gate has at most 64 free
        coefficients.
    max_iter : int, default=500
        Maximum EM iterations per start.
    tol : float, default=1e-6
        Convergence threshold on the change of the mean (per unit weight)
        penalised log-likelihood.
    n_init : int, default=1
        Number of starts; the one with the highest log-likelihood is kept.
    init_params : {"kmeans", "random", "random_from_data", "tree"}, default="kmeans"
        Initial responsibilities: k-means on the standardised (X, y); random;
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
    warm_start : bool, default=False
        If True, ``fit`` continues from the previous solution (one start).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation.
    verbose : int, default=0
        1 prints each start's result; 2 also prints every ``verbose_interval``
        iterations.
    verbose_interval : int, default=10
        Iterations between progress lines.
    backend : {"cpu"}, default="cpu"
        Where the kernels run.
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
    expert_intercept_ : ndarray of shape (n_experts,)
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

    See Also
    --------
    MixtureOfExpertsClassifier : The same model with multinomial logistic experts.

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
init_params, reg_gate, reg_expert, min_variance, warm_start, random_state, \
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
    expert_variance_ : ndarray of shape (n_experts,)
    n_iter_, converged_, lower_bound_, lower_bounds_, n_features_in_, \
feature_names_in_
        As for :class:`MixtureOfExpertsRegressor`.

    See Also
    --------
    MixtureOfExpertsRegressor : The flat (one-gate) model.
    HierarchicalMixtureOfExpertsClassifier : The same tree with logistic experts.

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
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.backend = backend
        self.n_jobs = n_jobs

    def _branching(self):
        return tuple(self.branching)
