"""Mixture-of-experts classifiers with multinomial logistic experts."""

from numbers import Integral

import numpy as np
from scipy.special import log_softmax, logsumexp
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.multiclass import check_classification_targets

from ._base import BaseMixtureOfExperts, branching_constraint
from ._experts import CategoricalExperts, EstimatorClassExperts
from ._kernels import get_backend

# Rows per block in ``_log_mix_categorical``: its temporaries are (rows, K, c).
_LOG_MIX_ROWS = 4096

# Below this probability ``predict_log_proba`` works in log space (near the
# subnormal range the logarithm of a probability loses its precision).
_LOG_SPACE_BELOW = 1e-300


def _log_mix_categorical(X, coef, log_weight):
    """Log class probabilities ``log sum_l exp(log_weight_l) softmax(B_l x)``, by row blocks.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_classes, n_coefs)
    log_weight : ndarray of shape (n_samples, n_leaves)
        Log gate weights; -inf for an expert left out.

    Returns
    -------
    log_proba : ndarray of shape (n_samples, n_classes)
    """
    K, n_classes, p = coef.shape
    flat = coef.reshape(K * n_classes, p)
    out = np.empty((X.shape[0], n_classes))
    for start in range(0, X.shape[0], _LOG_MIX_ROWS):
        stop = min(start + _LOG_MIX_ROWS, X.shape[0])
        log_proba = log_softmax((X[start:stop] @ flat.T).reshape(-1, K, n_classes), axis=2)
        out[start:stop] = logsumexp(log_proba + log_weight[start:stop, :, None], axis=1)
    return out


class _CategoricalExpertsClassifier(ClassifierMixin, BaseMixtureOfExperts):
    """Multinomial logistic experts: labels, probabilities and attributes."""

    def _encode_target(self, y, sample_weight, reset):
        if y.dtype == object and len({isinstance(label, str) for label in y}) > 1:
            # scikit-learn only says "Unknown label type: unknown" here.
            kinds = sorted({type(label).__name__ for label in y})
            raise ValueError(
                f"y mixes labels of types {kinds}; give every label the same type "
                "(all strings or all numbers)."
            )
        check_classification_targets(y)
        if reset:
            classes = np.unique(y)
            if classes.size < 2:
                label = classes[0].item() if hasattr(classes[0], "item") else classes[0]
                raise ValueError(
                    f"The classifier needs samples of at least 2 classes in the data, "
                    f"but the data contains only one class: {label!r}."
                )
            attributes = {"classes_": classes}
        else:
            classes = self.classes_
            attributes = {"classes_": classes}
            unseen = np.setdiff1d(np.unique(y), classes)
            if unseen.size:
                raise ValueError(f"y contains labels not seen during fit: {unseen.tolist()}.")
        y_idx = np.searchsorted(classes, y).astype(np.int64)
        return y_idx, attributes

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of :meth:`predict`, as in scikit-learn.

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
        n_classes = len(attributes["classes_"])
        if self.expert_estimator is None:
            return CategoricalExperts(float(self.reg_expert), n_classes, self.gate_solver)
        self._check_expert_estimator()
        idx = attributes["_expert_idx"]
        return EstimatorClassExperts(self.expert_estimator, n_classes,
                                     attributes["_x_mean"][idx], attributes["_x_scale"][idx])

    def _log_mix(self, X_expert, log_weight):
        """``log sum_l exp(log_weight_l) P_l(c | x)``, shape (n_samples, n_classes)."""
        experts = self._params["experts"]
        if "estimators" in experts:
            log_proba = self._model().experts.log_proba(experts, X_expert)
            return logsumexp(log_proba + log_weight[:, :, None], axis=1)
        return _log_mix_categorical(X_expert, experts["coef"], log_weight)

    def _kmeans_target(self, target):
        return np.eye(int(target.max()) + 1)[target]

    def _cart(self, max_depth, seed):
        # Imported here: only init_params='tree' needs it, and it costs 0.15 s at import.
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=max_depth, random_state=seed)

    def _min_samples_per_expert(self):
        return 1

    def _set_expert_attributes(self):
        # A refit with the other kind of expert leaves no attribute of the last one.
        for name in ("experts_", "expert_coef_", "expert_intercept_"):
            self.__dict__.pop(name, None)
        if "estimators" in self._params["experts"]:
            self.experts_ = list(self._params["experts"]["estimators"])
            return
        coef = self._params["experts"]["coef"]
        idx = self._expert_idx
        with np.errstate(over="ignore"):  # inf, not NaN, beyond the float range
            slopes = coef[:, :, 1:] / self._x_scale[idx]
        self.expert_coef_ = slopes
        self.expert_intercept_ = coef[:, :, 0] - coef[:, :, 1:] @ (self._x_mean[idx]
                                                                   / self._x_scale[idx])

    def _expert_jacobian(self):
        linear = self._linear_jacobian(self._expert_idx)
        n_free = len(self.classes_) - 1
        columns = ["intercept", *self._feature_names()[self._expert_idx]]
        names = [f"class {self.classes_[k]!s} {c}" for k in range(1, n_free + 1)
                 for c in columns]
        return np.kron(np.eye(n_free), linear), names

    def _expert_estimates(self):
        return np.concatenate([self.expert_intercept_[:, 1:, None], self.expert_coef_[:, 1:]],
                              axis=2).ravel()

    def _expert_standard_errors(self, se):
        p = self._expert_idx.size + 1
        per_leaf = np.zeros((se.size // ((len(self.classes_) - 1) * p), len(self.classes_), p))
        per_leaf[:, 1:] = se.reshape(per_leaf.shape[0], -1, p)
        return {"expert_coef": per_leaf[:, :, 1:], "expert_intercept": per_leaf[:, :, 0]}

    def _expert_text(self, leaf, names, fmt):
        if "estimators" in self._params["experts"]:
            return repr(self.experts_[leaf])
        rows = []
        for k in range(1, len(self.classes_)):
            terms = " ".join(f"{fmt.format(c)}*{name}" for c, name in
                             zip(self.expert_coef_[leaf, k], names[self._expert_idx]))
            rows.append(f"log-odds {self.classes_[k]!s} vs {self.classes_[0]!s} = "
                        f"{fmt.format(self.expert_intercept_[leaf, k])} {terms}".rstrip())
        return "; ".join(rows)

    def predict_proba(self, X, *, top_k=None):
        """Class probabilities ``sum_l g_l(x) softmax(B_l x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        top_k : int, default=None
            Sparse routing: each sample uses only its ``top_k`` experts with
            the largest gate probability, renormalised, and only their logits
            are computed. None uses every expert. The gate mass this drops is
            given by ``predict_gate(X, top_k=top_k, return_dropped=True)``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; rows sum to 1.
        """
        X = self._validate_X(X, check_finite=False)
        top_k = self._check_top_k(top_k)
        experts = self._params["experts"]

        def proba_rows(kernels, X_rows):
            X_gate, X_expert = self._designs(X_rows, kernels)
            log_prior = self._log_prior(X_gate, kernels)
            if "estimators" in experts:
                # Every expert predicts (an estimator has no cheaper route).
                return np.exp(self._log_mix(X_expert, self._routed_log_weight(log_prior, top_k)))
            out = kernels.empty((X_rows.shape[0], len(self.classes_)))
            if top_k is None:
                kernels.mix_categorical(X_expert, experts["coef"], log_prior, out)
            else:
                idx, weight = self._route(log_prior, top_k, kernels)
                kernels.mix_categorical_sparse(X_expert, experts["coef"], idx, weight, out)
            return out

        out = self._in_batches(X, proba_rows, len(self.classes_))
        # A sum of exponentials is off 1 by a few ulp; scikit-learn's metrics
        # (log_loss) reject probabilities above 1, so renormalise.
        np.clip(out, 0.0, 1.0, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def predict_log_proba(self, X, *, top_k=None):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        top_k : int, default=None
            As for :meth:`predict_proba`.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Finite: rows with a probability below 1e-300 (where its logarithm
            would lose precision, or be -inf after underflow) are recomputed in
            log space.
        """
        proba = self.predict_proba(X, top_k=top_k)
        with np.errstate(divide="ignore"):
            log_proba = np.log(proba)
        rows = np.flatnonzero(np.any(proba < _LOG_SPACE_BELOW, axis=1))
        if rows.size:
            # On the host: only these rows, through the logarithms of every term.
            X_gate, X_expert = self._designs(self._validate_X(X)[rows])
            log_weight = self._routed_log_weight(
                self._log_prior(X_gate, get_backend("cpu")), top_k)
            log_proba[rows] = self._log_mix(X_expert, log_weight)
        return log_proba

    def predict(self, X, *, top_k=None):
        """Most probable class.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        top_k : int, default=None
            As for :meth:`predict_proba`.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        proba = self.predict_proba(X, top_k=top_k)
        return self.classes_[np.argmax(proba, axis=1)]


class MixtureOfExpertsClassifier(_CategoricalExpertsClassifier):
    """Mixture of multinomial logistic experts with a softmax gate, fitted by EM.

    ``P(y = c | x) = sum_l g_l(x) softmax_c(B_l x)``: each expert is a
    (binary or multiclass) logistic regression and the gate a softmax over the
    experts (Jordan & Jacobs 1994). Gate and experts are fitted jointly by EM;
    each M-step takes monotone Newton or Boehning steps, so the log-likelihood
    never decreases.

    Parameters
    ----------
    n_experts : int, default=2
        Number of experts K.
    gate_features : array-like of int, str or bool, default=None
        Columns of X the gate sees: None for all, indices, names or a boolean
        mask; an empty list gives an intercept-only gate.
    expert_features : array-like of int, str or bool, default=None
        Columns of X the experts use, as for ``gate_features``.
    gate_solver : {"auto", "newton", "bohning"}, default="auto"
        Solver of the gate's and the experts' softmax steps; "auto" uses Newton
        for at most 320 free coefficients per gate node and 64 per expert, and
        Boehning above.
    max_iter : int, default=500
        Maximum EM iterations per start.
    tol : float, default=1e-6
        Convergence threshold on the change of the mean penalised log-likelihood.
    n_init : int, default=1
        Number of starts; the best is kept.
    init_params : {"kmeans", "random", "random_from_data", "tree"}, default="kmeans"
        Initial responsibilities: k-means on the standardised X and the one-hot
        labels (on 100 000 samples at most, the others going to the nearest
        centre); random; each sample to the nearest of K random samples
        ("random_from_data"); or the leaves of a CART tree of the same depth
        ("tree"). Hard partitions are softened (half the mass spread evenly).
    reg_gate : float, default=1e-6
        Ridge penalty on the gate slopes (standardised inputs).
    reg_expert : float, default=1e-4
        Ridge penalty on the experts' slopes; it keeps them finite when an
        expert's classes are separable.
    expert_estimator : scikit-learn classifier, default=None
        None: multinomial logistic experts. Otherwise any classifier with
        ``predict_proba`` whose ``fit`` takes ``sample_weight`` (a tree, a
        boosted model...): each expert is a clone, refitted in every M-step
        with the samples' responsibilities as weights, on the expert columns in
        the user's units and the class indices (``classes_`` positions). The
        fitted clones are ``experts_``. ``reg_expert`` does not apply; the
        log-likelihood may decrease (the clones' fits are not exact weighted
        likelihood maximisers in general); ``n_parameters``, the information
        criteria and ``standard_errors`` are not defined; CPU backend only.
        Where EM ends below the best log-likelihood it saw, the fit keeps
        that iterate (``lower_bounds_`` and ``n_iter_`` end there).
    warm_start : bool, default=False
        If True, ``fit`` continues from the previous solution (one start); the
        number of experts, the features and ``expert_estimator`` must be those of
        that fit (else fit raises a ValueError).
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    verbose_interval : int, default=10
    backend : {"cpu", "cuda"}, default="cpu"
        Where the kernels run: "cpu" (Numba, all cores) or "cuda" (an NVIDIA
        GPU through numba-cuda; ``pip install "skmoe[cuda]"``). With "cuda" the
        data move to the GPU once per fit and EM runs there; the model is the
        same as with "cpu" to rounding. Without a usable GPU, fit raises an
        error saying what is missing. The starts of ``n_init`` then share
        the GPU and run one after the other, whatever ``n_jobs``.
    n_jobs : int, default=None
        Starts (``n_init``) run in parallel through joblib; the result is the
        same for every ``n_jobs``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    gate_coef_ : ndarray of shape (n_experts, n_gate_features)
        Gate slopes; expert 0 is the reference.
    gate_intercept_ : ndarray of shape (n_experts,)
    expert_coef_ : ndarray of shape (n_experts, n_classes, n_expert_features)
        Class 0 is each expert's reference class (zeros). Logistic experts
        only (``expert_estimator=None``).
    expert_intercept_ : ndarray of shape (n_experts, n_classes)
    experts_ : list of estimators
        The fitted clones of ``expert_estimator``, when given (instead of
        ``expert_coef_`` and ``expert_intercept_``); they predict class
        indices, positions in ``classes_``.
    n_iter_ : int
    converged_ : bool
    lower_bound_ : float
        Total log-likelihood of the training labels minus the ridge penalties.
    lower_bounds_ : ndarray of shape (`n_iter_` + 1,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
    collapsed_experts_ : ndarray of shape (n_collapsed,)
        Experts pruned because they lost all responsibility (see Notes);
        usually empty.

    See Also
    --------
    MixtureOfExpertsRegressor : Gaussian linear experts.

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
    saturate at 1e100 training standard deviations (fewer where an output would
    overflow first). See :doc:`/guarantees`.

    References
    ----------
    Jordan, M. I. and Jacobs, R. A. (1994). Hierarchical mixtures of experts and
    the EM algorithm. Neural Computation, 6(2), 181-214.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import MixtureOfExpertsClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(600, 2))
    >>> y = np.where(X[:, 0] > 0, X[:, 1] > 0, X[:, 1] < 0)
    >>> clf = MixtureOfExpertsClassifier(n_experts=2, n_init=3, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.95)
    True
    """

    _parameter_constraints: dict = {
        **_CategoricalExpertsClassifier._parameter_constraints,
        "expert_estimator": [None, HasMethods(["fit", "predict_proba"])],
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
        reg_expert=1e-4,
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
        self.expert_estimator = expert_estimator
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.backend = backend
        self.n_jobs = n_jobs

    def _branching(self):
        return (self.n_experts,)


class HierarchicalMixtureOfExpertsClassifier(_CategoricalExpertsClassifier):
    """Hierarchical mixture of multinomial logistic experts (HME), fitted by EM.

    A balanced tree of softmax gates routes each input softly to leaf experts,
    each a (binary or multiclass) logistic regression; the prior of a leaf is
    the product of the gate probabilities along its path (Jordan & Jacobs
    1994). With ``branching=(K,)`` it is :class:`MixtureOfExpertsClassifier`.

    Parameters
    ----------
    branching : tuple of int, default=(2, 2)
        Children per gate at each level, root first.
    gate_features, expert_features, gate_solver, max_iter, tol, n_init, \
init_params, reg_gate, reg_expert, expert_estimator, warm_start, random_state, verbose, \
verbose_interval, backend, n_jobs
        As for :class:`MixtureOfExpertsClassifier`; ``init_params="tree"``
        seeds the responsibilities from a CART tree of the same depth.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    gate_coef_ : list of ndarray of shape (n_nodes, n_children, n_gate_features)
        Gate slopes of each level, root first; child 0 is each gate's reference.
    gate_intercept_ : list of ndarray of shape (n_nodes, n_children)
    expert_coef_ : ndarray of shape (n_experts, n_classes, n_expert_features)
    expert_intercept_ : ndarray of shape (n_experts, n_classes)
    experts_ : list of estimators
        With ``expert_estimator``, in tree order.
    n_iter_, converged_, lower_bound_, lower_bounds_, n_features_in_, \
feature_names_in_, collapsed_experts_
        As for :class:`MixtureOfExpertsClassifier`.

    See Also
    --------
    MixtureOfExpertsClassifier : The flat (one-gate) model.
    HierarchicalMixtureOfExpertsRegressor : The same tree with Gaussian experts.

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
    saturate at 1e100 training standard deviations (fewer where an output would
    overflow first). See :doc:`/guarantees`.

    References
    ----------
    Jordan, M. I. and Jacobs, R. A. (1994). Hierarchical mixtures of experts and
    the EM algorithm. Neural Computation, 6(2), 181-214.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe import HierarchicalMixtureOfExpertsClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(600, 2))
    >>> y = (X[:, 0] * X[:, 1] > 0).astype(int)
    >>> clf = HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), init_params="tree",
    ...                                              random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9)
    True
    """

    _parameter_constraints: dict = {
        **_CategoricalExpertsClassifier._parameter_constraints,
        "expert_estimator": [None, HasMethods(["fit", "predict_proba"])],
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
        reg_expert=1e-4,
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
        self.expert_estimator = expert_estimator
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.backend = backend
        self.n_jobs = n_jobs

    def _branching(self):
        return tuple(self.branching)
