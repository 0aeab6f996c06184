"""``skmoe compare``: a mixture of experts against standard regressors.

One function per step: :func:`load_dataset` builds a seeded synthetic data set,
:func:`make_models` the contenders, :func:`run_compare` fits and scores them on
an 80/20 split, and :func:`format_report` lays the results out as a table. The
command-line parsing lives in :mod:`skmoe.__main__`.
"""

import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.ensemble import RandomForestRegressor, StackingRegressor
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from ._regression import MixtureOfExpertsRegressor
from .datasets import make_heteroscedastic_regression, make_piecewise_linear

DATASETS = ("piecewise-linear", "heteroscedastic")

# Experts used when --n-experts is not given: the number of regimes that
# generated the data set.
DEFAULT_N_EXPERTS = {"piecewise-linear": 4, "heteroscedastic": 2}

# Candidates of the optional inner grid search over the number of experts.
N_EXPERTS_GRID = (2, 4, 8)

# Hyperparameter grid of the tuned CART (also the tree inside the stack).
CART_GRID = {"max_depth": [4, 6, 8, 10, 12, None], "min_samples_leaf": [1, 5, 20, 50]}

TEST_SIZE = 0.2


@dataclass
class Dataset:
    """A data set and the true conditional mean of y, used as the Bayes reference."""

    name: str
    description: str
    X: np.ndarray
    y: np.ndarray
    mean: np.ndarray


@dataclass
class Result:
    """Held-out scores of one model; times are None for the Bayes reference."""

    label: str
    relative_error: float
    fit_time: float = None
    predict_time: float = None


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
        description = ("piecewise-linear regimes (make_piecewise_linear: 5 inputs, "
                       "4 oblique regimes, noise 0.5)")
    elif name == "heteroscedastic":
        X, y, truth = make_heteroscedastic_regression(
            n_samples, random_state=random_state, return_truth=True
        )
        description = ("heteroscedastic two-regime mixture (make_heteroscedastic_regression: "
                       "gate sigmoid(3 x1), 2 irrelevant inputs)")
    else:
        raise ValueError(f"Unknown data set {name!r}; expected one of {DATASETS}.")
    return Dataset(name, description, X, y, truth["mean"])


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


def _warm_up(X, y, n_experts, random_state):
    """Compile the Numba kernels once, so that the timed fit measures EM only."""
    n = min(X.shape[0], max(50, 10 * n_experts))
    with warnings.catch_warnings():
        # Two iterations do not converge, and are not meant to.
        warnings.simplefilter("ignore", ConvergenceWarning)
        MixtureOfExpertsRegressor(n_experts=n_experts, max_iter=2, tol=0.0,
                                  random_state=random_state).fit(X[:n], y[:n])


@dataclass
class Split:
    """The 80/20 split of a data set, with the true conditional mean on the test part."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    mean_test: np.ndarray


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
    X_train, X_test, y_train, y_test, _, mean_test = train_test_split(
        dataset.X, dataset.y, dataset.mean, test_size=TEST_SIZE, random_state=random_state
    )
    return Split(X_train, X_test, y_train, y_test, mean_test)


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
        One per model, then the Bayes reference (the true conditional mean).
    """
    log = sys.stderr if log is None else log
    var_test = float(np.var(split.y_test))
    print("compiling the Numba kernels (not timed) ...", file=log, flush=True)
    _warm_up(split.X_train, split.y_train, n_experts, random_state)

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
        error = float(np.mean((split.y_test - pred) ** 2)) / var_test
        results.append(Result(label, error, fit_time, predict_time))
    bayes = float(np.mean((split.y_test - split.mean_test) ** 2)) / var_test
    results.append(Result("Bayes reference (true E[y|x])", bayes))
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
        f"data set: {dataset.name}: {dataset.description}",
        f"samples: {n_train + n_test} ({n_train} train, {n_test} test), "
        f"{dataset.X.shape[1]} features, random_state={random_state}",
        f"mixture of experts: {n_experts} experts",
    ])


def format_table(results):
    """An aligned table of ``results``, with a line explaining the columns.

    Parameters
    ----------
    results : list of Result

    Returns
    -------
    table : str
    """
    header = ["model", "relative error", "fit (s)", "predict (s)"]
    rows = [
        [r.label, f"{r.relative_error:.4f}",
         "-" if r.fit_time is None else f"{r.fit_time:.2f}",
         "-" if r.predict_time is None else f"{r.predict_time:.3f}"]
        for r in results
    ]
    widths = [max(len(row[j]) for row in [header] + rows) for j in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest)

    lines = [
        "relative error = test MSE / Var(y_test); fit time includes any tuning "
        "(Numba compilation excluded)",
        line(header),
        "  ".join("-" * w for w in widths),
    ]
    lines += [line(row) for row in rows]
    return "\n".join(lines)


def compare(dataset="piecewise-linear", n_samples=10000, random_state=0, n_experts=None,
            select_experts=False, n_jobs=None, out=None, log=None):
    """Run the whole comparison, printing the header first and the table last.

    Parameters
    ----------
    dataset : {"piecewise-linear", "heteroscedastic"}, default="piecewise-linear"
    n_samples : int, default=10000
    random_state : int, default=0
        Seeds the data, the split and the models.
    n_experts : int or None, default=None
        None takes :data:`DEFAULT_N_EXPERTS` of the data set.
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
    if n_experts is None:
        n_experts = DEFAULT_N_EXPERTS[dataset]
    data = load_dataset(dataset, n_samples, random_state)
    split = split_dataset(data, random_state)
    print(format_header(data, split, random_state, n_experts), file=out, flush=True)
    results = run_compare(split, n_experts, random_state, select_experts, n_jobs, log)
    print("", file=out)
    print(format_table(results), file=out, flush=True)
    return results
