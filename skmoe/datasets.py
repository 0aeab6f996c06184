"""Seeded synthetic data sets on which a mixture of experts is the right model.

Each generator draws its parameters first and the samples second from one
``RandomState``, so the same ``random_state`` gives the same underlying
function whatever ``n_samples`` is. With ``return_truth=True`` a generator also
returns what produced the data (the regime of each sample and the true
conditional mean or class probabilities), from which the Bayes error follows.

The two piecewise generators are built on *oblique regimes*: the input cube
is cut into ``n_regimes`` cones by the argmax of ``n_regimes`` linear scores
``w_k . x`` with random unit directions ``w_k``. A softmax gate with large
slopes approaches such an argmax, so a mixture of linear (or logistic) experts
can fit these data up to the noise, while axis-aligned trees need many steps
to follow each oblique boundary.
"""

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "make_heteroscedastic_regression",
    "make_piecewise_linear",
    "make_piecewise_logistic",
]

# Variance of the piecewise-linear regression function E[y | x] over the input
# cube. The randomly drawn slopes and intercepts are rescaled together to it,
# so that Var(y) = 14.75 + noise^2 whatever the seed: 15 at noise 0.5, where
# the Bayes relative error noise^2 / Var(y) is 1/60, about 0.017.
_SIGNAL_VARIANCE = 14.75
# The rescaling measures the variance on this many uniform points, drawn from
# the same RandomState before the samples (so it does not depend on n_samples).
_N_REFERENCE = 1 << 16

# Scales of the logistic experts' logits: slopes N(0, 3^2), intercepts N(0, 1).
_LOGISTIC_SLOPE_SCALE = 3.0
_LOGISTIC_INTERCEPT_SCALE = 1.0


def _check_positive_int(value, name, minimum=1):
    """Return ``value`` as an int, or raise ValueError if it is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _oblique_directions(rng, n_features, n_regimes):
    """Random unit directions of the regime scores.

    Unit vectors all lie on the sphere, so none is in the convex hull of the
    others: every regime's cone is non-empty.

    Returns
    -------
    directions : ndarray of shape (n_regimes, n_features)
    """
    directions = rng.normal(size=(n_regimes, n_features))
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def _normal_log_pdf(y, mean, sd):
    """Log density of N(mean, sd^2) at y, elementwise."""
    return -0.5 * (np.log(2.0 * np.pi * sd**2) + ((y - mean) / sd) ** 2)


def _regimes(X, directions):
    """Index of the largest score ``w_k . x`` of each row, shape (n_samples,)."""
    return np.argmax(X @ directions.T, axis=1)


def make_piecewise_linear(
    n_samples=2000,
    n_features=5,
    n_regimes=4,
    noise=0.5,
    random_state=None,
    *,
    return_truth=False,
):
    """Generate a regression problem with hard oblique regimes and linear pieces.

    Inputs are uniform on ``[-1, 1]^n_features``. The regime of ``x`` is the
    argmax of ``n_regimes`` scores ``w_k . x`` with random unit directions
    ``w_k``, and within regime ``k`` the target is linear:
    ``y = a_k + b_k . x + noise * e`` with ``e ~ N(0, 1)``. This is a
    hard-gated mixture of linear experts; the Bayes mean squared error is
    ``noise**2``.

    The slopes ``b_k`` and intercepts ``a_k`` are drawn from a standard normal
    and multiplied by one common factor, chosen so that the variance of
    ``E[y | x]`` over the input cube is 14.75 (measured on 65536 reference
    points). So ``Var(y)`` is about ``14.75 + noise**2`` whatever the seed: 15
    at ``noise=0.5``, where the Bayes relative error ``noise**2 / Var(y)`` is
    1/60, about 0.017.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of samples.
    n_features : int, default=5
        Number of inputs, all of which matter.
    n_regimes : int, default=4
        Number of regimes (linear pieces).
    noise : float, default=0.5
        Standard deviation of the Gaussian noise.
    random_state : int, RandomState instance or None, default=None
        Seeds the parameters and the samples.
    return_truth : bool, default=False
        If True, also return a dict describing the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Targets.
    truth : dict
        Only if ``return_truth`` is True, with keys ``"regime"`` (int ndarray
        of shape (n_samples,)), ``"mean"`` (``E[y | x]``, shape (n_samples,)),
        ``"variance"`` (``Var(y | x)``, shape (n_samples,)), ``"log_density"``
        (``log p(y_i | x_i)`` of each drawn target under the generating model,
        shape (n_samples,); inf if ``noise`` is 0), ``"directions"``
        (shape (n_regimes, n_features)), ``"coef"`` (shape (n_regimes,
        n_features)) and ``"intercept"`` (shape (n_regimes,)).

    See Also
    --------
    make_piecewise_logistic : The same regimes with a logistic expert each.
    make_heteroscedastic_regression : Soft regimes with different noise levels.

    Examples
    --------
    >>> from skmoe.datasets import make_piecewise_linear
    >>> X, y = make_piecewise_linear(n_samples=100, random_state=0)
    >>> X.shape, y.shape
    ((100, 5), (100,))
    >>> X, y, truth = make_piecewise_linear(n_samples=100, random_state=0, return_truth=True)
    >>> sorted(truth)
    ['coef', 'directions', 'intercept', 'log_density', 'mean', 'regime', 'variance']
    """
    n_samples = _check_positive_int(n_samples, "n_samples")
    n_features = _check_positive_int(n_features, "n_features")
    n_regimes = _check_positive_int(n_regimes, "n_regimes")
    if not noise >= 0:
        raise ValueError(f"noise must be non-negative, got {noise!r}.")
    rng = check_random_state(random_state)

    directions = _oblique_directions(rng, n_features, n_regimes)
    coef = rng.normal(size=(n_regimes, n_features))
    intercept = rng.normal(size=n_regimes)
    X_ref = rng.uniform(-1.0, 1.0, size=(_N_REFERENCE, n_features))
    ref_regime = _regimes(X_ref, directions)
    ref_mean = intercept[ref_regime] + np.einsum("ij,ij->i", X_ref, coef[ref_regime])
    scale = np.sqrt(_SIGNAL_VARIANCE / ref_mean.var())
    coef *= scale
    intercept *= scale

    X = rng.uniform(-1.0, 1.0, size=(n_samples, n_features))
    regime = _regimes(X, directions)
    mean = intercept[regime] + np.einsum("ij,ij->i", X, coef[regime])
    y = mean + noise * rng.normal(size=n_samples)
    if not return_truth:
        return X, y
    if noise > 0:
        log_density = _normal_log_pdf(y, mean, noise)
    else:
        log_density = np.full(n_samples, np.inf)
    truth = {
        "regime": regime,
        "mean": mean,
        "variance": np.full(n_samples, float(noise) ** 2),
        "log_density": log_density,
        "directions": directions,
        "coef": coef,
        "intercept": intercept,
    }
    return X, y, truth


def make_heteroscedastic_regression(n_samples=2000, random_state=None, *, return_truth=False):
    """Generate a two-regime regression with a soft gate and unequal noise.

    Three inputs ``x1, x2, x3 ~ N(0, 1)``; only ``x1`` (the first column)
    matters. With probability ``sigmoid(3 x1)`` the sample is in the first
    regime, ``y = 1 + 2 x1 + 0.2 e``; otherwise in the second,
    ``y = -x1**2 + 0.8 e``, with ``e ~ N(0, 1)``. The conditional density is a
    two-expert mixture whose noise level changes with x, so a model of the mean
    alone (with one Gaussian noise level) describes it poorly.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of samples.
    random_state : int, RandomState instance or None, default=None
        Seeds the samples.
    return_truth : bool, default=False
        If True, also return a dict describing the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, 3)
        Inputs; ``x1`` is column 0, the two others are irrelevant.
    y : ndarray of shape (n_samples,)
        Targets.
    truth : dict
        Only if ``return_truth`` is True, with keys ``"regime"`` (0 for the
        linear regime, 1 for the quadratic one; int ndarray of shape
        (n_samples,)), ``"gate"`` (``P(regime 0 | x)``), ``"mean"``
        (``E[y | x]``), ``"variance"`` (``Var(y | x)``, by the law of total
        variance) and ``"log_density"`` (``log p(y_i | x_i)`` of each drawn
        target under the generating mixture), each of shape (n_samples,).

    See Also
    --------
    make_piecewise_linear : Hard regimes with linear pieces.

    Examples
    --------
    >>> from skmoe.datasets import make_heteroscedastic_regression
    >>> X, y = make_heteroscedastic_regression(n_samples=50, random_state=0)
    >>> X.shape, y.shape
    ((50, 3), (50,))
    """
    n_samples = _check_positive_int(n_samples, "n_samples")
    rng = check_random_state(random_state)

    X = rng.normal(size=(n_samples, 3))
    x1 = X[:, 0]
    gate = 1.0 / (1.0 + np.exp(-3.0 * x1))
    regime = (rng.uniform(size=n_samples) >= gate).astype(np.intp)
    e = rng.normal(size=n_samples)
    mean0, sd0 = 1.0 + 2.0 * x1, 0.2
    mean1, sd1 = -(x1**2), 0.8
    y = np.where(regime == 0, mean0 + sd0 * e, mean1 + sd1 * e)
    if not return_truth:
        return X, y
    mean = gate * mean0 + (1.0 - gate) * mean1
    variance = (gate * (sd0**2 + mean0**2) + (1.0 - gate) * (sd1**2 + mean1**2)) - mean**2
    log_density = np.logaddexp(
        np.log(gate) + _normal_log_pdf(y, mean0, sd0),
        np.log1p(-gate) + _normal_log_pdf(y, mean1, sd1),
    )
    truth = {"regime": regime, "gate": gate, "mean": mean, "variance": variance,
             "log_density": log_density}
    return X, y, truth


def make_piecewise_logistic(
    n_samples=2000,
    n_features=5,
    n_regimes=3,
    n_classes=2,
    random_state=None,
    *,
    return_truth=False,
):
    """Generate a classification problem with oblique regimes and logistic experts.

    Inputs are uniform on ``[-1, 1]^n_features`` and the regimes are those of
    :func:`make_piecewise_linear` (the argmax of random oblique scores). Each
    regime ``k`` has its own multinomial logistic model,
    ``P(y = c | x) = softmax_c(A_k + B_k x)`` with ``B_k ~ N(0, 3^2)`` and
    ``A_k ~ N(0, 1)`` entrywise, and each label is drawn from the model of its
    sample's regime.

    Parameters
    ----------
    n_samples : int, default=2000
        Number of samples.
    n_features : int, default=5
        Number of inputs.
    n_regimes : int, default=3
        Number of regimes (experts).
    n_classes : int, default=2
        Number of classes, labelled ``0, ..., n_classes - 1``.
    random_state : int, RandomState instance or None, default=None
        Seeds the parameters and the samples.
    return_truth : bool, default=False
        If True, also return a dict describing the generating model.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    y : ndarray of shape (n_samples,)
        Integer class labels.
    truth : dict
        Only if ``return_truth`` is True, with keys ``"regime"`` (int ndarray
        of shape (n_samples,)), ``"proba"`` (the true ``P(y | x)``, shape
        (n_samples, n_classes)), ``"directions"`` (shape (n_regimes,
        n_features)), ``"coef"`` (shape (n_regimes, n_classes, n_features)) and
        ``"intercept"`` (shape (n_regimes, n_classes)).

    See Also
    --------
    make_piecewise_linear : The same regimes with linear regression experts.

    Examples
    --------
    >>> import numpy as np
    >>> from skmoe.datasets import make_piecewise_logistic
    >>> X, y = make_piecewise_logistic(n_samples=100, n_classes=3, random_state=0)
    >>> X.shape, np.unique(y).tolist()
    ((100, 5), [0, 1, 2])
    """
    n_samples = _check_positive_int(n_samples, "n_samples")
    n_features = _check_positive_int(n_features, "n_features")
    n_regimes = _check_positive_int(n_regimes, "n_regimes")
    n_classes = _check_positive_int(n_classes, "n_classes", minimum=2)
    rng = check_random_state(random_state)

    directions = _oblique_directions(rng, n_features, n_regimes)
    coef = _LOGISTIC_SLOPE_SCALE * rng.normal(size=(n_regimes, n_classes, n_features))
    intercept = _LOGISTIC_INTERCEPT_SCALE * rng.normal(size=(n_regimes, n_classes))

    X = rng.uniform(-1.0, 1.0, size=(n_samples, n_features))
    regime = _regimes(X, directions)
    logits = intercept[regime] + np.einsum("ij,icj->ic", X, coef[regime])
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    # Inverse-CDF sampling, one uniform per sample; the min guards against a
    # cumulative sum that rounds to just below 1.
    cumulative = np.cumsum(proba, axis=1)
    u = rng.uniform(size=(n_samples, 1))
    y = np.minimum((u > cumulative).sum(axis=1), n_classes - 1)
    if not return_truth:
        return X, y
    truth = {
        "regime": regime,
        "proba": proba,
        "directions": directions,
        "coef": coef,
        "intercept": intercept,
    }
    return X, y, truth
