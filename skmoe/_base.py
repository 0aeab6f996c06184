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

import functools
import warnings
from abc import ABCMeta, abstractmethod
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context, is_regressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)
from threadpoolctl import ThreadpoolController, threadpool_limits

from . import _config
from ._em import Model, Problem, initialize, run_em
from ._experts import _MIN_MASS_SHARE
from ._inference import covariance_from_information, observed_information
from ._kernels import get_backend
from ._kernels._design import (
    all_finite,
    nearest_centres,
    standardised_design,
)
from ._tree import GatingTree

# ``branching`` is checked element-wise in fit (see ``_gating_tree``).
branching_constraint = "array-like"

# Share of the initial responsibility spread evenly over the experts.
_INIT_SOFTENING = 0.5

# Lloyd steps of the k-means start: it only seeds EM, which moves the samples
# between experts anyway, and the late steps move few points (on 20 000 Gaussian
# points k-means takes 126 steps to converge, a third of the fit's time).
_KMEANS_MAX_ITER = 30

# Rows k-means is fitted on at most (a random subset beyond).
_KMEANS_MAX_SAMPLES = 100_000


# Standardised values (inputs, and targets of regressors) are saturated at this
# magnitude: beyond it every product and square in the kernels would risk overflow
# (inf, then NaN in log-sum-exp). It is 1e100 training standard deviations away
# from the training mean, so only extreme extrapolation is affected.
_MAX_STANDARDISED = 1e100


def _validate(estimator, X, y="no_validation", check_finite=True, **kwargs):
    """scikit-learn's ``validate_data``, with X's finiteness checked on the thread pool.

    ``check_finite=False`` leaves that check to the caller (a fit checks the
    copy its backend holds: see :func:`_check_finite`).
    """
    out = validate_data(estimator, X, y, ensure_all_finite=False, **kwargs)
    if check_finite:
        X = out if isinstance(y, str) and y == "no_validation" else out[0]
        _check_finite(estimator, X, all_finite(X))
    return out


def _check_finite(estimator, X, finite):
    """Raise scikit-learn's error for an X found not ``finite`` (it checks X again)."""
    if not finite:
        check_array(X, ensure_all_finite=True, input_name="X", estimator=estimator)


def _check_numeric_columns(X):
    """Raise a ValueError naming the columns of a DataFrame that are not numbers.

    Numeric, boolean and nullable numeric columns pass, and so do object
    columns whose every value converts to a float (scikit-learn's rule);
    categorical columns never do (a category code is not a quantity), nor do
    strings, dates or durations.
    """
    columns, dtypes = getattr(X, "columns", None), getattr(X, "dtypes", None)
    if columns is None or dtypes is None or not hasattr(X, "__getitem__"):
        return
    categorical, other = [], []
    for name, dtype in zip(columns, dtypes):
        kind = getattr(dtype, "kind", "O")
        if str(dtype) == "category":
            categorical.append(str(name))
        elif kind in "MmSUV":
            other.append(str(name))
        elif kind == "O":
            try:
                np.asarray(X[name], dtype=np.float64)
            except (TypeError, ValueError):
                other.append(str(name))
    if categorical or other:
        parts = ([f"categorical {categorical}"] if categorical else []) + (
            [f"non-numeric {other}"] if other else [])
        raise ValueError(
            f"X has {' and '.join(parts)} columns; skmoe models numeric features only. "
            "Encode them first, for example with sklearn.preprocessing.OneHotEncoder in a "
            "sklearn.compose.ColumnTransformer."
        )


def _check_total_weight(sample_weight):
    """Raise a ValueError when the weights' sum overflows to infinity."""
    with np.errstate(over="ignore"):
        total = float(np.sum(sample_weight))
    if not np.isfinite(total):
        raise ValueError(
            "The sum of sample_weight overflows (it is infinite in float64); divide the "
            "weights by a common factor."
        )


def _collapsed_experts(mass):
    """Experts whose responsibility ``mass`` is below the M-step's mass floor.

    These are the experts the M-step no longer re-estimates (``_experts``), so
    their parameters are stale; the estimator prunes them from its predictions.

    Returns
    -------
    collapsed : ndarray of shape (n_collapsed,), dtype intp
        Leaf indices, increasing.
    """
    return np.flatnonzero(mass <= _MIN_MASS_SHARE * float(mass.sum()))


def _congruence(jacobian, covariance):
    """``jacobian @ covariance @ jacobian.T``, overflowing to inf but never to NaN.

    Each row of the Jacobian is scaled to a largest entry of 1 first (an infinite
    entry, from a scale below the float range, becomes its sign), so that the
    product in the middle is finite; the scales multiply back at the end, where
    an exact 0 stays 0.
    """
    magnitude = np.abs(jacobian).max(axis=1, initial=0.0)
    unit = np.zeros_like(jacobian)
    finite = np.isfinite(magnitude) & (magnitude > 0)
    unit[finite] = jacobian[finite] / magnitude[finite, None]
    infinite = np.isinf(magnitude)
    unit[infinite] = np.where(np.isinf(jacobian[infinite]), np.sign(jacobian[infinite]), 0.0)
    middle = unit @ covariance @ unit.T
    with np.errstate(over="ignore", invalid="ignore"):
        out = magnitude[:, None] * middle * magnitude[None, :]
    out[middle == 0] = 0.0
    return out


def _make_design(X, idx, mean, scale, bound=_MAX_STANDARDISED, kernels=None):
    """Standardised columns ``idx`` of X after an intercept column.

    Built where ``kernels`` computes (from the X it holds), on the host by default.
    """
    build = standardised_design if kernels is None else kernels.standardised_design
    return build(X, idx, mean[idx], scale[idx], bound)


def _make_designs(X, gate_idx, expert_idx, mean, scale, bound=_MAX_STANDARDISED, kernels=None):
    """Gate and expert designs; one shared array when they use the same columns."""
    X_gate = _make_design(X, gate_idx, mean, scale, bound, kernels)
    if np.array_equal(gate_idx, expert_idx):
        return X_gate, X_gate
    return X_gate, _make_design(X, expert_idx, mean, scale, bound, kernels)


@functools.cache
def _threadpools():
    """The process's thread pools, found once.

    Each search of the loaded libraries (as ``threadpool_limits`` makes) takes
    about 4 ms, 6 % of a fit at n = 20 000.
    """
    return ThreadpoolController()


def _single_threaded_blas():
    """A context in which BLAS runs on the calling thread only."""
    return _threadpools().limit(limits=1, user_api="blas")


def _run_start(estimator, attributes, problem, X_std, seed, params):
    """One start of EM: initialise from ``seed`` (or continue from ``params``) and run.

    A module-level function so that joblib can run the starts in other processes.
    BLAS runs single-threaded here: its threads only contend with Numba's on the
    kernels' tall, thin products.

    Returns
    -------
    params, objectives, converged, n_iter
    mass : ndarray of shape (n_leaves,)
        Total responsibility of each expert at ``params``.
    """
    with _single_threaded_blas():
        model = estimator._model(attributes)
        if params is None:
            resp = estimator._initial_resp(model.kernels, problem.on_host(), X_std,
                                           np.random.RandomState(seed))
            params = initialize(model, problem, resp)
        if estimator.max_iter == 0:
            ll, resp = model.e_step(params, problem, exponentiate=True)
            run = (params, [ll - model.objective_penalty(params)], False, 0)
        else:
            *run, resp = run_em(model, problem, params, max_iter=estimator.max_iter,
                                tol=estimator.tol, verbose=estimator.verbose,
                                verbose_interval=estimator.verbose_interval)
        # On the device that holds the problem: only K numbers come back.
        mass = model.kernels.weighted_sums(resp, problem.weight)
    if estimator.verbose:
        print(f"Initialization done: penalised log-likelihood {run[1][-1]:.8g}, "
              f"{run[3]} iterations, converged={run[2]}")
    return (*run, mass)


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
        "backend": [StrOptions({"cpu", "cuda"})],
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

    def _check_expert_estimator(self):
        """The checks ``expert_estimator`` must pass before any fitting."""
        if not has_fit_parameter(self.expert_estimator, "sample_weight"):
            raise ValueError(
                f"expert_estimator must accept sample_weight in fit (each expert is refitted "
                f"with its responsibilities as weights); {type(self.expert_estimator).__name__} "
                "does not."
            )
        if self.backend != "cpu":
            raise ValueError(
                'expert_estimator experts are fitted by scikit-learn on the host: use '
                'backend="cpu".'
            )

    def _expert_jacobian(self):
        """One leaf's Jacobian to the user's units, and its parameters' names (subclass)."""
        raise NotImplementedError

    def _expert_standard_errors(self, se):
        """Expert standard errors (leaf-major vector) shaped like the attributes (subclass)."""
        raise NotImplementedError

    def _expert_estimates(self):
        """The experts' fitted parameters, leaf-major, as ``_expert_jacobian`` names them."""
        raise NotImplementedError

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

    def _designs(self, X, kernels=None):
        """X's gate and expert designs, built where ``kernels`` computes (the host by default)."""
        if kernels is not None:
            X = kernels.to_device(X)
        return _make_designs(X, self._gate_idx, self._expert_idx, self._x_mean, self._x_scale,
                             self._input_bound(), kernels)

    def _prediction_kernels(self):
        """The kernels that predictions run on.

        The backend's, unless the experts are scikit-learn estimators: those
        predict from host arrays, so the whole prediction stays on the host.
        """
        check_is_fitted(self)
        if "estimators" in self._params["experts"]:
            return get_backend("cpu")
        return get_backend(self.backend)

    def _in_batches(self, X, predict_rows, n_outputs=1):
        """``predict_rows(kernels, X_rows)`` over X's rows, its results as NumPy arrays.

        X is validated but for its finiteness, which is checked here where the
        prediction kernels hold X (a GPU checks its copy). ``predict_rows``
        receives the rows there and returns arrays there (or a tuple of them),
        with a row per row of ``X_rows``. On a GPU the rows go in batches of
        about ``_config.PREDICT_BATCH_ELEMENTS`` doubles of arrays in all, so
        that the device holds one batch at a time; each batch's results are
        copied straight into their rows of the NumPy results. ``n_outputs``
        is the number of columns of the largest result.
        """
        kernels = self._prediction_kernels()
        n = X.shape[0]
        rows = n
        if kernels.PREDICTS_IN_BATCHES:
            width = (X.shape[1] + self._gate_idx.size + self._expert_idx.size + 2
                     + 4 * self._gating_tree().n_leaves + 2 * n_outputs)
            rows = max(1, _config.PREDICT_BATCH_ELEMENTS // width)
        results = None
        with kernels.device_memory_errors():
            for start in range(0, n, rows):
                X_rows = kernels.to_device(X[start:start + rows])
                _check_finite(self, X[start:start + rows], kernels.all_finite(X_rows))
                batch = predict_rows(kernels, X_rows)
                one = not isinstance(batch, tuple)
                batch = (batch,) if one else batch
                if rows >= n:  # one batch: its arrays, without a copy on the host
                    results = tuple(kernels.to_host(a) for a in batch)
                    continue
                if results is None:
                    results = tuple(np.empty((n, *a.shape[1:]), dtype=a.dtype) for a in batch)
                for a, result in zip(batch, results):
                    kernels.to_host(a, result[start:start + rows])
        return results[0] if one else results

    def _output_scale(self):
        """Factor from the standardised outputs to those in the user's units (subclass)."""
        return 1.0

    def _input_bound(self):
        """Magnitude at which standardised inputs saturate at prediction time.

        ``_MAX_STANDARDISED``, or less where an output in the user's units would
        overflow first: an expert's standardised mean is at most
        ``(1 + ||coef_l||_1)`` times the bound, so outputs stay below an eighth of
        the largest float (never less than 1e3, far outside the training data).
        """
        if "coef" not in self._params["experts"]:
            return _MAX_STANDARDISED  # estimator experts bound their own outputs
        coef = np.delete(self._params["experts"]["coef"],
                         getattr(self, "collapsed_experts_", []), axis=0)
        reach = 1.0 + float(np.max(np.sum(np.abs(coef), axis=-1)))
        # In logs: the ratio itself can overflow for tiny output scales.
        log_room = (np.log(0.125 * np.finfo(np.float64).max) - np.log(reach)
                    - np.log(self._output_scale()))
        return float(np.exp(np.clip(log_room, np.log(1e3), np.log(_MAX_STANDARDISED))))

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

    def _model(self, attributes=None, kernels=None):
        """The EM model; ``attributes`` are fitted ones not yet set on self.

        Its kernels are the backend's unless ``kernels`` are given.
        """
        # The experts first: their errors (an unusable expert_estimator) come before
        # any about the backend.
        experts = self._make_experts(vars(self) if attributes is None else attributes)
        return Model(
            kernels=get_backend(self.backend) if kernels is None else kernels,
            tree=self._gating_tree(),
            experts=experts,
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

    def _initial_resp(self, kernels, problem, X_std, random_state):
        """Initial responsibilities, shape (n_samples, n_leaves), where ``kernels`` computes.

        Only the labels of a hard start (or nothing, for a random one) cross to
        a device, not the (n, K) array.
        """
        n = problem.weight.shape[0]
        K = self._gating_tree().n_leaves
        if self.init_params == "random":
            return kernels.random_responsibilities(
                n, K, random_state.randint(np.iinfo(np.int32).max))
        if self.init_params == "tree":
            labels = self._tree_labels(X_std, problem, K, random_state)
        elif self.init_params == "kmeans":
            labels = self._kmeans_labels(X_std, problem, K, random_state)
        else:
            positive = np.flatnonzero(problem.weight > 0)
            centres = random_state.choice(positive, K, replace=positive.size < K)
            target = self._kmeans_target(problem.target)
            labels = nearest_centres(X_std, target,
                                      np.hstack([X_std[centres], target[centres]]))
        # A hard partition, softened: EM can still move samples between experts.
        return kernels.hard_responsibilities(labels, K, _INIT_SOFTENING)

    def _kmeans_labels(self, X_std, problem, n_clusters, random_state):
        """Clusters of k-means on (X, y), fitted on at most ``_KMEANS_MAX_SAMPLES`` rows.

        Rows of zero weight take no part (k-means' tolerance grows with the
        unweighted variance, so far-away ones would stop it early); they, and
        the rows left out of a subsample, go to the nearest centre. A zero
        weight is therefore the same as a removed row.
        """
        from sklearn.cluster import KMeans  # 0.17 s at import, for this start alone

        seed = random_state.randint(np.iinfo(np.int32).max)
        positive = np.flatnonzero(problem.weight > 0)
        # The centres of k-means move little past tens of thousands of rows, and
        # EM moves the samples between experts anyway; on all of 1e7 rows the
        # start took longer than ten EM iterations on a GPU.
        sample = positive
        if positive.size > _KMEANS_MAX_SAMPLES:
            sample = np.sort(random_state.choice(positive, _KMEANS_MAX_SAMPLES, replace=False))
        target = self._kmeans_target(problem.target)
        Z = np.hstack([X_std[sample], target[sample]])
        # One thread: k-means' OpenMP threads wait on each other at every Lloyd
        # step, which costs more than it saves at these sizes (and much more on
        # a busy machine).
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            # Fewer distinct points than experts: k-means says so, and EM copes.
            warnings.simplefilter("ignore", ConvergenceWarning)
            kmeans = KMeans(n_clusters=n_clusters, n_init=1, max_iter=_KMEANS_MAX_ITER,
                            random_state=seed).fit(Z, sample_weight=problem.weight[sample])
        if sample.size == X_std.shape[0]:
            return kmeans.labels_
        labels = nearest_centres(X_std, target, kmeans.cluster_centers_)
        labels[sample] = kmeans.labels_
        return labels

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
        if not do_init:
            self._check_warm_start()
        _check_numeric_columns(X)
        # X's finiteness is checked where its backend holds it (_fit_state).
        X, y = _validate(self, X, y, check_finite=False, dtype=np.float64, ensure_min_samples=2,
                         reset=do_init, y_numeric=is_regressor(self))
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        if not np.any(sample_weight > 0):
            raise ValueError("sample_weight has no positive entry: nothing to fit.")
        _check_total_weight(sample_weight)
        if self.expert_estimator is not None:
            # Before the backend loads and the data move to it: with a GPU
            # backend and no usable GPU, this is still the error to fix first.
            self._check_expert_estimator()
        with get_backend(self.backend).device_memory_errors():
            return self._fit_on_backend(X, y, sample_weight, do_init)

    def _fit_on_backend(self, X, y, sample_weight, do_init):
        """The fit from validated data, where the backend computes."""
        state = self._fit_state(X, y, sample_weight, do_init)
        model = self._model(state["attributes"])
        self._check_n_samples(sample_weight, model.tree.n_leaves)
        problem = state["problem"]
        with _single_threaded_blas():
            model.root_bound(problem)  # once, shared by every start

        random_state = check_random_state(self.random_state)
        if do_init:
            # One seed per start, drawn up front: the result does not depend on n_jobs.
            starts = [(seed, None) for seed in
                      random_state.randint(np.iinfo(np.int32).max, size=self.n_init)]
        else:
            starts = [(None, self._params)]
        # The starts share one GPU and its copy of the data: with "cuda" they run in turn.
        runs = Parallel(n_jobs=self.n_jobs if self.backend == "cpu" else 1)(
            delayed(_run_start)(self, state["attributes"], problem, state["X_std"], seed, params)
            for seed, params in starts
        )
        best = None
        for run in runs:  # the first of equal starts wins, whatever the order they finished in
            if best is None or run[1][-1] > best[1][-1]:
                best = run
        params, objectives, converged, n_iter, mass = best
        if not converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter or tol.",
                ConvergenceWarning,
            )
        collapsed = _collapsed_experts(mass)
        if collapsed.size:
            warnings.warn(
                f"Experts {collapsed.tolist()} lost all responsibility (less than "
                f"{_MIN_MASS_SHARE:g} of the total sample weight) and were pruned: they take "
                "no part in any prediction (see collapsed_experts_). Fewer experts may do, "
                "or try other starts (n_init, init_params).",
                ConvergenceWarning,
            )
        # Only now, with every step done, does the estimator change.
        for key, value in state["attributes"].items():
            setattr(self, key, value)
        self._params = params
        self.collapsed_experts_ = collapsed
        self.n_iter_ = n_iter
        self.converged_ = converged
        offset = self._log_likelihood_offset(float(sample_weight.sum()))
        self.lower_bounds_ = np.asarray(objectives) + offset
        self.lower_bound_ = float(self.lower_bounds_[-1])
        self._set_gate_attributes()
        self._set_expert_attributes()
        return self

    def _check_warm_start(self):
        """Raise if the previous fit cannot be continued: its shape has changed since."""
        changed = []
        tree = self._gating_tree()
        shapes = [coef.shape[:2] for coef in self._params["gates"]]
        if shapes != [(nodes, b) for nodes, b in zip(tree.n_nodes, tree.branching)]:
            changed.append("the number of experts or the branching")
        for name, idx in (("gate_features", self._gate_idx),
                          ("expert_features", self._expert_idx)):
            if not np.array_equal(self._resolve_features(getattr(self, name), name), idx):
                changed.append(name)
        if ("estimators" in self._params["experts"]) != (
                getattr(self, "expert_estimator", None) is not None):
            changed.append("expert_estimator")
        if changed:
            raise ValueError(
                f"warm_start=True continues the previous fit, but {' and '.join(changed)} "
                "changed since: set warm_start=False to fit from scratch."
            )

    def _fit_state(self, X, y, sample_weight, do_init):
        """Everything fit derives from the data, without touching the estimator.

        On a GPU, X, the target and the weights cross to the device here, once
        for every start; the column scaling and the designs are computed there.
        """
        kernels = get_backend(self.backend)
        X_data = kernels.to_device(X)
        _check_finite(self, X, kernels.all_finite(X_data))
        target, target_attributes = self._encode_target(y, sample_weight, do_init)
        problem = Problem(None, None, target, sample_weight).on(kernels)
        if do_init:
            x_mean, x_scale = kernels.weighted_scaling(X_data, problem.weight)
            attributes = {
                "_x_mean": x_mean,
                "_x_scale": x_scale,
                "_gate_idx": self._resolve_features(self.gate_features, "gate_features"),
                "_expert_idx": self._resolve_features(self.expert_features, "expert_features"),
            }
        else:
            attributes = {k: getattr(self, k)
                          for k in ("_x_mean", "_x_scale", "_gate_idx", "_expert_idx")}
        designs = _make_designs(X_data, attributes["_gate_idx"], attributes["_expert_idx"],
                                attributes["_x_mean"], attributes["_x_scale"], kernels=kernels)
        problem = replace(problem, X_gate=designs[0], X_expert=designs[1])
        # The starts other than "random" need X standardised on the host; a
        # design there that holds every column already is that, after its
        # intercept column, so reuse it rather than copy X.
        X_std = None
        if do_init and self.init_params != "random":
            every_column = np.arange(X.shape[1])
            for idx, design in zip((attributes["_gate_idx"], attributes["_expert_idx"]),
                                   designs):
                if isinstance(design, np.ndarray) and np.array_equal(idx, every_column):
                    X_std = design[:, 1:]
                    break
            else:
                X_std = _make_design(X, every_column, attributes["_x_mean"],
                                     attributes["_x_scale"])[:, 1:]
        return {"problem": problem, "X_std": X_std,
                "attributes": {**attributes, **target_attributes}}

    def _set_gate_attributes(self):
        tree = self._gating_tree()
        coefs, intercepts = [], []
        idx = self._gate_idx
        # ``mean / scale`` rather than ``slopes @ mean``: a slope may overflow to inf
        # (a column of scale 1e-310), the intercept must not become NaN.
        offset = self._x_mean[idx] / self._x_scale[idx]
        for coef in self._params["gates"]:
            with np.errstate(over="ignore"):
                slopes = coef[:, :, 1:] / self._x_scale[idx]
            intercepts.append(coef[:, :, 0] - coef[:, :, 1:] @ offset)
            coefs.append(slopes)
        if tree.n_levels == 1:
            self.gate_coef_ = coefs[0][0]
            self.gate_intercept_ = intercepts[0][0]
        else:
            self.gate_coef_ = coefs
            self.gate_intercept_ = intercepts

    # ------------------------------------------------------------------
    # Inference shared by every estimator

    def _check_score_weight(self, X, sample_weight):
        """Validate the weights given to ``score`` as ``fit`` does.

        scikit-learn's metrics accept negative weights and overflowing sums
        silently; here they raise the errors of ``fit``.
        """
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                                 ensure_non_negative=True)
            _check_total_weight(sample_weight)

    def _validate_X(self, X, check_finite=True):
        """X checked against the fit; ``check_finite=False`` leaves its finiteness to
        :meth:`_in_batches`."""
        check_is_fitted(self)
        _check_numeric_columns(X)
        return _validate(self, X, reset=False, dtype=np.float64, check_finite=check_finite)

    def _log_prior(self, X_gate, kernels):
        """Log prior of every leaf, with the collapsed experts pruned (renormalised).

        Computed where ``kernels`` computes, and left there.
        """
        model = self._model(kernels=kernels)
        log_prior = model.log_prior(self._params["gates"], kernels.to_device(X_gate))
        collapsed = getattr(self, "collapsed_experts_", None)
        if collapsed is not None and collapsed.size:
            kernels.prune_experts(log_prior, collapsed)  # this call's own array
        return log_prior

    def _posterior(self, problem, kernels):
        """Weighted log-likelihood and log-responsibilities under the pruned prior.

        ``Model.e_step`` with ``_log_prior`` in place of the raw gate prior,
        where ``kernels`` compute (and hold ``problem``).
        """
        log_prior, log_resp = self._log_prior_and_likelihood(problem, kernels)
        ll = kernels.posterior(log_prior, log_resp, problem.weight, log_resp)
        return ll, log_resp

    def _log_prior_and_likelihood(self, problem, kernels):
        """``log g_l(x_i)`` (the pruned prior) and ``log p_l(y_i | x_i)``, each (n, n_experts).

        Computed where ``kernels`` compute (and hold ``problem``), and left there.
        """
        log_prior = self._log_prior(problem.X_gate, kernels)
        log_lik = kernels.empty(log_prior.shape)
        self._model().experts.log_prob(kernels, self._params["experts"], problem.X_expert,
                                       problem.target, log_lik)
        return log_prior, log_lik

    def predict_gate(self, X, top_k=None, return_dropped=False):
        """Gate probabilities of every expert for new inputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        top_k : int, default=None
            Sparse routing: keep only each sample's ``top_k`` experts with the
            largest gate probability (ties to the lower index), renormalised to
            sum to 1; the others get 0. None keeps every expert.
        return_dropped : bool, default=False
            Also return the gate probability each sample loses to the routing.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_experts)
            ``g_l(x)``, the prior weight of expert l at x; rows sum to 1.
        dropped : ndarray of shape (n_samples,)
            Only if ``return_dropped``: the total gate probability of the
            experts left out, in [0, 1] (0 when ``top_k`` is None or
            ``n_experts``). The routed predictions of :meth:`predict` and
            ``predict_proba`` with the same ``top_k`` are exact when it is 0.

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe import MixtureOfExpertsRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.uniform(-1, 1, size=(300, 1))
        >>> y = np.abs(X[:, 0]) + 0.05 * rng.normal(size=300)
        >>> moe = MixtureOfExpertsRegressor(n_experts=3, random_state=0).fit(X, y)
        >>> proba, dropped = moe.predict_gate(X, top_k=1, return_dropped=True)
        >>> proba.shape, bool(np.all(proba.max(axis=1) == 1.0))
        ((300, 3), True)
        >>> bool(np.all((0 <= dropped) & (dropped < 1)))
        True
        """
        X = self._validate_X(X, check_finite=False)
        top_k = self._check_top_k(top_k)

        def gate_rows(kernels, X_rows):
            log_prior = self._log_prior(self._designs(X_rows, kernels)[0], kernels)
            if top_k is None:
                return kernels.exp(log_prior, log_prior), np.zeros(X_rows.shape[0])
            idx, weight, dropped = (kernels.to_host(a) for a in self._route(
                log_prior, top_k, kernels, return_dropped=True))
            proba = np.zeros(log_prior.shape)
            np.put_along_axis(proba, idx, weight, axis=1)
            return proba, dropped

        proba, dropped = self._in_batches(X, gate_rows, self._gating_tree().n_leaves)
        return (proba, dropped) if return_dropped else proba

    def _check_top_k(self, top_k):
        """``top_k`` as an int in [1, n_experts], or None (every expert)."""
        n_leaves = self._gating_tree().n_leaves
        if top_k is None:
            return None
        if (not isinstance(top_k, (Integral, np.integer)) or isinstance(top_k, bool)
                or not 1 <= top_k <= n_leaves):
            raise ValueError(
                f"top_k should be None or an integer in [1, n_experts={n_leaves}]; "
                f"got {top_k!r}."
            )
        return int(top_k)

    def _routed_log_weight(self, log_prior, top_k):
        """The log gate weights with only each sample's ``top_k`` experts, renormalised.

        ``log_prior`` itself when ``top_k`` is None; -inf for the experts left out.
        On the host: for experts that are scikit-learn estimators.
        """
        if top_k is None:
            return log_prior
        idx, weight = self._route(log_prior, top_k, get_backend("cpu"))
        routed = np.full_like(log_prior, -np.inf)
        with np.errstate(divide="ignore"):
            np.put_along_axis(routed, idx, np.log(weight), axis=1)
        return routed

    def _route(self, log_prior, top_k, kernels, return_dropped=False):
        """Each sample's ``top_k`` experts and their renormalised weights.

        Returns ``(idx, weight)``, and the dropped gate mass (n_samples,) third
        when ``return_dropped``; predictions skip it, which saves one
        exponential per expert and sample. Computed where ``kernels``
        computes (and ``log_prior`` is).
        """
        n = log_prior.shape[0]
        idx = kernels.empty((n, top_k), dtype=np.int64)
        weight = kernels.empty((n, top_k))
        dropped = kernels.empty(n if return_dropped else 0)
        kernels.top_k_gate(log_prior, idx, weight, dropped)
        return (idx, weight, dropped) if return_dropped else (idx, weight)

    def _problem_for(self, X, y, sample_weight, kernels=None):
        """(X, y, sample_weight) validated and prepared where ``kernels`` compute (the host
        by default): the designs built there, the target and weights copied there."""
        check_is_fitted(self)
        _check_numeric_columns(X)
        X, y = _validate(self, X, y, reset=False, dtype=np.float64,
                         y_numeric=is_regressor(self))
        sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64,
                                             ensure_non_negative=True)
        _check_total_weight(sample_weight)
        target, _ = self._encode_target(y, sample_weight, reset=False)
        if kernels is None:
            return Problem(*self._designs(X), target, sample_weight)
        with kernels.device_memory_errors():
            return Problem(*self._designs(X, kernels), target, sample_weight).on(kernels)

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
        kernels = self._prediction_kernels()
        problem = self._problem_for(X, y, None, kernels)
        with kernels.device_memory_errors():
            _, log_resp = self._posterior(problem, kernels)
            return kernels.to_host(kernels.exp(log_resp, log_resp))

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
        kernels = self._prediction_kernels()
        problem = self._problem_for(X, y, None, kernels)
        with kernels.device_memory_errors():
            log_prior, log_lik = self._log_prior_and_likelihood(problem, kernels)
            log_density = kernels.to_host(
                kernels.log_mix(log_prior, log_lik, kernels.empty(log_prior.shape[0])))
        return log_density + self._log_likelihood_offset(1.0)

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
        X = self._validate_X(X, check_finite=False)
        tree = self._gating_tree()

        def level_rows(kernels, X_rows):
            model = self._model(kernels=kernels)
            return tuple(model.gate_log_probs(self._params["gates"],
                                              self._designs(X_rows, kernels)[0]))

        levels = self._in_batches(X, level_rows, tree.n_leaves)
        alive = np.ones(tree.n_leaves, dtype=bool)
        alive[getattr(self, "collapsed_experts_", [])] = False
        for log_gate in levels:  # a child with only collapsed leaves below is never taken
            log_gate[:, ~alive.reshape(log_gate.shape[1], -1).any(axis=1)] = -np.inf
        rows = np.arange(X.shape[0])[:, None]
        node = np.zeros(X.shape[0], dtype=np.intp)
        for b, log_gate in zip(tree.branching, levels):
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
                with np.errstate(over="ignore"):
                    slopes = coef[j, 1:] / self._x_scale[self._gate_idx]
                offset = self._x_mean[self._gate_idx] / self._x_scale[self._gate_idx]
                intercept = coef[j, 0] - coef[j, 1:] @ offset
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
                    if child in getattr(self, "collapsed_experts_", ()):
                        expert += " (collapsed: pruned from predictions)"
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
        kernels = self._prediction_kernels()
        problem = self._problem_for(X, y, sample_weight, kernels)
        total_weight = float(problem.on_host().weight.sum())
        with kernels.device_memory_errors():
            ll, log_resp = self._posterior(problem, kernels)
            resp = kernels.exp(log_resp, kernels.empty(log_resp.shape))
            # sum_i w_i h_il log h_il for each expert l; a pruned expert's terms are
            # 0 (h = 0, log h = -inf: NaN as a product), so its column is left out.
            with np.errstate(invalid="ignore"):
                terms = kernels.weighted_sums(resp, problem.weight, log_resp)
        alive = np.ones(terms.shape[0], dtype=bool)
        alive[getattr(self, "collapsed_experts_", [])] = False
        entropy = -float(np.sum(terms[alive]))
        return ll + self._log_likelihood_offset(total_weight), total_weight, entropy

    def standard_errors(self, X, y, sample_weight=None):
        """Standard errors of the fitted coefficients, from the observed information.

        The observed information of the log-likelihood of (X, y), the negative
        Hessian ``-d2 sum_i w_i log p(y_i | x_i)`` at the fitted parameters, is
        computed exactly by Louis' identity (the expected complete-data
        information minus the covariance of the complete-data scores under the
        responsibilities) and inverted; pass the training data and weights for
        the usual asymptotic standard errors, as R's ``summary(refit(fit))``
        gives for flexmix. The ridge terms (``reg_gate``, ``reg_expert``) are
        left out of the information. Each gate child's coefficients are
        contrasts with child 0 (the reference, whose coefficients are 0 by
        definition and get standard error 0).

        A coefficient whose direction carries no information, such as that of a
        column constant in the data, is unidentified: its standard error is
        ``inf`` (with a warning), and the others are computed with it held at
        its fitted value. Where the user's units exceed the float range (data
        near 1e300), standard errors and covariances overflow to ``inf``, as the
        coefficients do, never to NaN; where the information itself overflows
        (data near the float range, or very far outside the training data), a
        ValueError says so.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        result : :class:`~sklearn.utils.Bunch`
            ``gate_coef``, ``gate_intercept``, ``expert_coef``,
            ``expert_intercept`` (and for regressors ``expert_variance``):
            standard errors shaped like the fitted attributes of the same
            names; ``covariance``, the covariance matrix of all free
            parameters in the user's units, ordered as ``parameter_names``;
            ``estimates``, the fitted parameters in that order (for tables of
            z values); ``unidentified``, a boolean mask in the same order.

        The experts that collapsed during fit (``collapsed_experts_``) are
        held at their frozen parameters, which are unidentified (``inf``).

        Examples
        --------
        >>> import numpy as np
        >>> from skmoe import MixtureOfExpertsRegressor
        >>> rng = np.random.RandomState(0)
        >>> X = rng.normal(size=(500, 1))
        >>> y = np.where(X[:, 0] > 0, 2 * X[:, 0], -X[:, 0]) + 0.1 * rng.normal(size=500)
        >>> moe = MixtureOfExpertsRegressor(n_experts=2, random_state=0).fit(X, y)
        >>> se = moe.standard_errors(X, y)
        >>> se.expert_coef.shape == moe.expert_coef_.shape, se.covariance.shape
        (True, (8, 8))
        >>> lower = moe.expert_coef_ - 1.96 * se.expert_coef  # 95 % Wald intervals
        """
        problem = self._problem_for(X, y, sample_weight)
        model = self._model()
        if not hasattr(model.experts, "sample_scores"):
            raise ValueError(
                "Standard errors need parametric experts: they are not defined for "
                "expert_estimator experts."
            )
        with np.errstate(all="ignore"):  # an overflow is reported below, as an error
            # On the host whatever the backend: the problem and the parameters are there.
            information = observed_information(replace(model, kernels=get_backend("cpu")),
                                               self._params, problem)
        n_gate = model.tree.n_gate_params(self._gate_idx.size + 1)
        # A collapsed expert's parameters were frozen by EM: held fixed here.
        frozen = np.zeros(information.shape[0], dtype=bool)
        leaf_size = (information.shape[0] - n_gate) // model.tree.n_leaves
        for leaf in getattr(self, "collapsed_experts_", ()):
            frozen[n_gate + leaf * leaf_size:n_gate + (leaf + 1) * leaf_size] = True
        information[frozen] = 0.0
        information[:, frozen] = 0.0
        overflow = ValueError(
            "The observed information overflows the float range on these data (values "
            "near the float range, or very far outside the training data): standard "
            "errors cannot be computed from them.")
        if not np.all(np.isfinite(information)):
            raise overflow
        try:
            covariance, unidentified = covariance_from_information(information)
        except np.linalg.LinAlgError as error:
            raise overflow from error
        jacobian, names = self._parameter_jacobian()
        covariance = _congruence(jacobian, covariance)
        if np.any(np.isnan(covariance)):
            raise overflow
        variance = np.diag(covariance).copy()
        variance[unidentified] = np.inf
        if (unidentified & ~frozen).any():
            shown = [names[i] for i in np.flatnonzero(unidentified & ~frozen)[:5]]
            warnings.warn(
                f"{int((unidentified & ~frozen).sum())} parameters carry no information in "
                f"these data (e.g. {', '.join(shown)}): a constant or collinear column, "
                "experts that duplicate each other, or parameters not at a maximum of the "
                "likelihood. Their standard errors are inf.", UserWarning, stacklevel=2)
        se = np.sqrt(np.maximum(variance, 0.0))
        return Bunch(covariance=covariance, parameter_names=names, unidentified=unidentified,
                     estimates=self._parameter_estimates(),
                     **self._gate_standard_errors(se), **self._expert_standard_errors(se[n_gate:]))

    def _parameter_estimates(self):
        """The fitted free parameters in the user's units, in ``parameter_names`` order."""
        coefs, intercepts = self.gate_coef_, self.gate_intercept_
        if not isinstance(coefs, list):
            coefs, intercepts = [coefs[None]], [intercepts[None]]
        gates = [np.concatenate([intercept[:, 1:, None], coef[:, 1:]], axis=2).ravel()
                 for coef, intercept in zip(coefs, intercepts)]
        return np.concatenate([*gates, self._expert_estimates()])

    def _feature_names(self):
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = [f"x{j}" for j in range(self.n_features_in_)]
        return np.asarray(names, dtype=object)

    def _linear_jacobian(self, idx, factor=1.0):
        """d(intercept, slopes) in the user's units / d(standardised coefficients)."""
        block = np.zeros((idx.size + 1, idx.size + 1))
        with np.errstate(over="ignore", divide="ignore"):  # inf beyond the float range
            # ``mean / scale`` as in the attributes: 0, not NaN, for a zero mean.
            block[0, 1:] = -self._x_mean[idx] / self._x_scale[idx]
            block[np.arange(1, idx.size + 1), np.arange(1, idx.size + 1)] = (
                1.0 / self._x_scale[idx])
            block[0, 0] = 1.0
            return np.float64(factor) * block

    def _parameter_jacobian(self):
        """Jacobian from the standardised free parameters to the user's, and their names."""
        tree = self._gating_tree()
        features = self._feature_names()
        gate_block = self._linear_jacobian(self._gate_idx)
        blocks, names = [], []
        columns = ["intercept", *features[self._gate_idx]]
        for d in range(tree.n_levels):
            where = "gate" if tree.n_levels == 1 else f"gate level {d}"
            for v in range(tree.n_nodes[d]):
                node = "" if tree.n_levels == 1 else f" node {v}"
                for j in range(1, tree.branching[d]):
                    blocks.append(gate_block)
                    names += [f"{where}{node} child {j} {c}" for c in columns]
        expert_block, expert_names = self._expert_jacobian()
        for leaf in range(tree.n_leaves):
            blocks.append(expert_block)
            names += [f"expert {leaf} {name}" for name in expert_names]
        size = sum(block.shape[0] for block in blocks)
        jacobian = np.zeros((size, size))
        at = 0
        for block in blocks:
            jacobian[at:at + block.shape[0], at:at + block.shape[0]] = block
            at += block.shape[0]
        return jacobian, names

    def _gate_standard_errors(self, se):
        """The gate's part of the standard errors, shaped like ``gate_coef_``."""
        tree = self._gating_tree()
        p = self._gate_idx.size + 1
        coefs, intercepts, at = [], [], 0
        for nodes, b in zip(tree.n_nodes, tree.branching):
            level = np.zeros((nodes, b, p))
            level[:, 1:] = se[at:at + nodes * (b - 1) * p].reshape(nodes, b - 1, p)
            at += nodes * (b - 1) * p
            coefs.append(level[:, :, 1:])
            intercepts.append(level[:, :, 0])
        if tree.n_levels == 1:
            return {"gate_coef": coefs[0][0], "gate_intercept": intercepts[0][0]}
        return {"gate_coef": coefs, "gate_intercept": intercepts}

    def n_parameters(self):
        """Number of free parameters of the fitted model (gates and experts).

        Experts pruned at the end of fit (``collapsed_experts_``) do not count,
        nor do the gate rows that lead only to them: the count is that of the
        model the predictions use.

        Returns
        -------
        n_params : int
        """
        check_is_fitted(self)
        model = self._model()
        alive = np.ones(model.tree.n_leaves, dtype=bool)
        alive[getattr(self, "collapsed_experts_", np.empty(0, dtype=int))] = False
        count = model.n_params(self._gate_idx.size + 1, self._expert_idx.size + 1, alive)
        if count is None:
            raise ValueError(
                "The number of parameters, and with it BIC, AIC and ICL, is not defined for "
                "expert_estimator experts (an arbitrary estimator has no parameter count); "
                "compare such models by their cross-validated score."
            )
        return count

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
