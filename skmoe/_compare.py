"""``skmoe compare``: a mixture of experts against standard regressors.

One function per step: :func:`load_dataset` builds a seeded synthetic data set,
:func:`split_dataset` splits it 80/20, :func:`make_models` builds the
contenders, :func:`run_compare` fits and scores them, :func:`format_header` and
:func:`format_table` lay out the report, and :func:`compare` runs them in turn.
The command-line parsing lives in :mod:`skmoe.__main__`.
"""

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestRegressor, StackingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from ._regression import MixtureOfExpertsRegressor
from .datasets import make_heteroscedastic_regression, make_piecewise_linear

DATASETS = ("piecewise-linear", "heteroscedastic")

# Candidates of the optional inner grid search over the number of experts.
N_EXPERTS_GRID = (2, 4, 8)

# Hyperparameter grid of the tuned CART (also the tree inside the stack).
CART_GRID = {"max_depth": [4, 6, 8, 10, 12, None], "min_samples_leaf": [1, 5, 20, 50]}

TEST_SIZE = 0.2


@dataclass
class Dataset:
    """A data set, with the truth of the generating model as the Bayes reference.

    ``mean`` is ``E[y | x]`` and ``log_density`` is ``log p(y_i | x_i)`` under
    the generating model, one per sample.
    """

    name: str
    description: str
    X: np.ndarray
    y: np.ndarray
    mean: np.ndarray
    log_density: np.ndarray


@dataclass
class Result:
    """Held-out scores of one model; times are None for the Bayes reference.

    ``nlpd_is_gaussian`` marks a model without a predictive density, scored
    with a Gaussian around its predictions (see :func:`run_compare`).
    """

    label: str
    relative_error: float
    nlpd: float
    nlpd_is_gaussian: bool = False
    fit_time: float = None
    predict_time: float = None


@dataclass
class Split:
    """The 80/20 split of a data set, with the truth on the test part."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    mean_test: np.ndarray
    log_density_test: np.ndarray


def load_dataset(name, n_samples, random_state):
    """Generate data set ``name`` (one of :data:`DATASETS`).

    Parameters
    ----------
    name : str
    n_samples : int
    random_state : int

    Returns
    -------
    dataset : Dataset
    """
    if name == "piecewise-linear":
        X, y, truth = make_piecewise_linear(
            n_samples, n_features=5, n_regimes=4, noise=0.5, random_state=random_state,
            return_truth=True,
        )
        description = ("make_piecewise_linear(n_features=5, n_regimes=4, noise=0.5): "
                       "4 oblique regimes, a linear function in each")
    elif name == "heteroscedastic":
        X, y, truth = make_heteroscedastic_regression(
            n_samples, random_state=random_state, return_truth=True
        )
        description = ("make_heteroscedastic_regression(): 2 regimes, gate sigmoid(3 x1), "
                       "noise sd 0.2 and 0.8, 2 irrelevant inputs")
    else:
        raise ValueError(f"Unknown data set {name!r}; expected one of {DATASETS}.")
    return Dataset(name, description, X, y, truth["mean"], truth["log_density"])


def _tuned_tree(random_state):
    return GridSearchCV(DecisionTreeRegressor(random_state=random_state), CART_GRID, cv=3)


def make_models(n_experts, random_state, select_experts=False, n_jobs=None):
    """The contenders, in the order of the table.

    Parameters
    ----------
    n_experts : int
        Experts of the mixture of experts.
    random_state : int
        Seeds every randomised model.
    select_experts : bool, default=False
        Also fit a mixture whose number of experts is chosen by a 3-fold grid
        search over :data:`N_EXPERTS_GRID`.
    n_jobs : int or None, default=None
        Parallel jobs of the random forest (the only model that uses joblib
        here; the mixture of experts runs its Numba kernels on every core).

    Returns
    -------
    models : list of (str, estimator)
        Label and unfitted estimator of each model.
    """
    models = [
        (f"MoE (n_experts={n_experts}, n_init=3)",
         MixtureOfExpertsRegressor(n_experts=n_experts, n_init=3, random_state=random_state)),
    ]
    if select_experts:
        models.append((
            "MoE (n_experts by 3-fold CV)",
            GridSearchCV(
                MixtureOfExpertsRegressor(n_init=3, random_state=random_state),
                {"n_experts": list(N_EXPERTS_GRID)}, cv=3,
            ),
        ))
    stack = StackingRegressor(
        estimators=[
            ("tree", _tuned_tree(random_state)),
            ("forest", RandomForestRegressor(n_estimators=100, n_jobs=n_jobs,
                                             random_state=random_state)),
            ("knn", make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=10))),
        ],
        final_estimator=RidgeCV(),
        # 3 folds rather than 5: the tuned tree inside is itself a 3-fold grid search,
        # and the stack is refitted once per fold plus once on all the data.
        cv=3,
    )
    models += [
        ("CART (tuned, 3-fold CV)", _tuned_tree(random_state)),
        ("stacking (tree, forest, kNN -> RidgeCV)", stack),
        ("linear regression", LinearRegression()),
    ]
    return models


def _describe_fitted(estimator):
    """Hyperparameters chosen by a fitted grid search, for the table ('' otherwise)."""
    if not isinstance(estimator, GridSearchCV):
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(estimator.best_params_.items()))


def _warm_up(split, n_experts, random_state):
    """Compile the Numba kernels once, so that the timed fit measures EM only.

    The kernels have a serial and a parallel build, chosen by the problem size,
    so the warm-up runs on the arrays of the timed fit and predictions.
    """
    with warnings.catch_warnings():
        # One iteration does not converge, and is not meant to.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = MixtureOfExpertsRegressor(n_experts=n_experts, max_iter=1,
                                          random_state=random_state)
        model.fit(split.X_train, split.y_train)
    model.predict(split.X_test)
    model.log_likelihood(split.X_test, split.y_test)


def split_dataset(dataset, random_state):
    """Split ``dataset`` 80/20 with ``train_test_split``.

    Parameters
    ----------
    dataset : Dataset
    random_state : int

    Returns
    -------
    split : Split
    """
    parts = train_test_split(dataset.X, dataset.y, dataset.mean, dataset.log_density,
                             test_size=TEST_SIZE, random_state=random_state)
    X_train, X_test, y_train, y_test, _, mean_test, _, log_density_test = parts
    return Split(X_train, X_test, y_train, y_test, mean_test, log_density_test)


def run_compare(split, n_experts, random_state, select_experts=False, n_jobs=None, log=None):
    """Fit every model on the training part and score it on the test part.

    Parameters
    ----------
    split : Split
    n_experts : int
    random_state : int
        Seeds the models.
    select_experts : bool, default=False
        See :func:`make_models`.
    n_jobs : int or None, default=None
        See :func:`make_models`.
    log : file-like or None, default=None
        Progress lines go there (``sys.stderr`` if None).

    Returns
    -------
    results : list of Result
        One per model, then the Bayes reference (the true conditional mean
        and density).

    Notes
    -----
    The relative error is the test MSE over ``Var(y_test)``. The NLPD is the
    mean negative log predictive density of the test targets, in nats. A
    mixture of experts has a predictive density; for the other models it is
    that of ``N(prediction, s^2)`` with ``s^2`` their test MSE, the constant
    variance that minimises their test NLPD: a score that flatters them.
    """
    log = sys.stderr if log is None else log
    var_test = float(np.var(split.y_test))
    print("compiling the Numba kernels (not timed) ...", file=log, flush=True)
    _warm_up(split, n_experts, random_state)

    results = []
    for label, model in make_models(n_experts, random_state, select_experts, n_jobs):
        print(f"fitting {label} ...", file=log, flush=True)
        start = time.perf_counter()
        model.fit(split.X_train, split.y_train)
        fit_time = time.perf_counter() - start
        start = time.perf_counter()
        pred = model.predict(split.X_test)
        predict_time = time.perf_counter() - start
        chosen = _describe_fitted(model)
        if chosen:
            label = f"{label}: {chosen}"
        mse = float(np.mean((split.y_test - pred) ** 2))
        fitted = getattr(model, "best_estimator_", model)
        if hasattr(fitted, "log_likelihood"):
            nlpd = -fitted.log_likelihood(split.X_test, split.y_test) / split.y_test.size
            gaussian = False
        else:
            nlpd = 0.5 * (np.log(2.0 * np.pi * mse) + 1.0)
            gaussian = True
        results.append(Result(label, mse / var_test, float(nlpd), gaussian,
                              fit_time, predict_time))
    bayes = float(np.mean((split.y_test - split.mean_test) ** 2)) / var_test
    bayes_nlpd = -float(np.mean(split.log_density_test))
    results.append(Result("Bayes reference (the generating model)", bayes, bayes_nlpd))
    return results


def format_header(dataset, split, random_state, n_experts):
    """Lines naming the data set, its sizes and the split.

    Parameters
    ----------
    dataset : Dataset
    split : Split
    random_state : int
    n_experts : int

    Returns
    -------
    header : str
    """
    n_train, n_test = split.X_train.shape[0], split.X_test.shape[0]
    return "\n".join([
        f"data set: {dataset.name} = {dataset.description}",
        f"samples: {n_train + n_test} ({n_train} train, {n_test} test), "
        f"{dataset.X.shape[1]} features, random_state={random_state}",
        f"mixture of experts: {n_experts} experts",
    ])


def format_table(results):
    """An aligned table of ``results``, with notes explaining the columns.

    Parameters
    ----------
    results : list of Result

    Returns
    -------
    table : str
    """
    header = ["model", "relative error", "NLPD", "fit (s)", "predict (s)"]
    rows = [
        [r.label, f"{r.relative_error:.4f}",
         f"{r.nlpd:.4f}" + ("*" if r.nlpd_is_gaussian else " "),
         "-" if r.fit_time is None else f"{r.fit_time:.2f}",
         "-" if r.predict_time is None else f"{r.predict_time:.3f}"]
        for r in results
    ]
    widths = [max(len(row[j]) for row in [header] + rows) for j in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest)

    lines = [line(header), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in rows]
    lines += [
        "",
        "relative error: test MSE / Var(y_test).",
        "NLPD: mean negative log predictive density of the test targets, in nats;",
        "  * = no predictive density: a Gaussian around the prediction with the test MSE",
        "  as variance (the best constant variance, which flatters the model).",
        "fit: seconds, including any tuning (Numba compilation excluded); predict: seconds.",
    ]
    return "\n".join(lines)


def compare(dataset="piecewise-linear", n_samples=10000, random_state=0, n_experts=4,
            select_experts=False, n_jobs=None, out=None, log=None):
    """Run the whole comparison, printing the header first and the table last.

    Parameters
    ----------
    dataset : {"piecewise-linear", "heteroscedastic"}, default="piecewise-linear"
    n_samples : int, default=10000
    random_state : int, default=0
        Seeds the data, the split and the models.
    n_experts : int, default=4
    select_experts : bool, default=False
        See :func:`make_models`.
    n_jobs : int or None, default=None
        See :func:`make_models`.
    out, log : file-like or None, default=None
        Where the report and the progress lines go (stdout and stderr if None).

    Returns
    -------
    results : list of Result
    """
    out = sys.stdout if out is None else out
    data = load_dataset(dataset, n_samples, random_state)
    split = split_dataset(data, random_state)
    print(format_header(data, split, random_state, n_experts), file=out, flush=True)
    results = run_compare(split, n_experts, random_state, select_experts, n_jobs, log)
    print("", file=out)
    print(format_table(results), file=out, flush=True)
    return results
