"""``skmoe compare``: mixtures of experts against CART, stacking and a linear model.

The steps, one function each:

- data: :func:`load_builtin` generates a seeded synthetic data set (with the
  generating model as a Bayes reference), :func:`load_csv` reads and checks a
  user's CSV file (pandas if installed, otherwise the :mod:`csv` module);
- models: :func:`make_contenders` builds the five contenders for the task,
  each with its inner grid search;
- evaluation: :func:`cross_validate_contenders` fits and scores every contender
  on the same outer cross-validation folds, printing one progress line per
  model and fold;
- report: :func:`format_header`, :func:`format_table` and :func:`format_notes`
  lay out the text report, :func:`write_plot` the PNG figure;
- :func:`compare` runs them in turn.

Problems with the input data raise :class:`CompareError`, whose message is
meant for the user as it is; the command line (:mod:`skmoe.__main__`) prints it
and exits with status 1.
"""

import csv
import math
import os
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import (
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from ._base import BaseMixtureOfExperts
from ._classification import (
    HierarchicalMixtureOfExpertsClassifier,
    MixtureOfExpertsClassifier,
)
from ._regression import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor
from .datasets import (
    make_heteroscedastic_regression,
    make_piecewise_linear,
    make_piecewise_logistic,
)

# Built-in data sets and the task each one poses.
DATASETS = {
    "piecewise-linear": "regression",
    "heteroscedastic": "regression",
    "piecewise-logistic": "classification",
}
TASKS = ("regression", "classification")
MODELS = ("moe", "hme", "cart", "stacking", "linear")

DEFAULT_N_SAMPLES = 1000
DEFAULT_CV = 5
DEFAULT_PLOT = "skmoe-compare.png"
# Column at which the notes under the table are wrapped.
REPORT_WIDTH = 100

# Candidates of the inner grid searches over the size of the mixtures.
N_EXPERTS_GRID = (2, 4, 8)
BRANCHING_GRID = ((2, 2), (2, 2, 2))
# EM starts of the flat mixtures; the best of them is kept. One start keeps the
# default run short: the inner grid search over n_experts already guards against
# a poor start. The HME starts from a CART tree, which is deterministic, so
# further starts would repeat the same one.
MIXTURE_N_INIT = 1
# Folds of every inner cross-validation: the grid searches and the stack.
INNER_CV = 3
# Hyperparameter grid of the tuned CART (also the tree inside the stack).
CART_GRID = {"max_depth": [2, 4, 6, 8, 12, None], "min_samples_leaf": [1, 5, 20, 50]}
FOREST_N_ESTIMATORS = 100
KNN_N_NEIGHBORS = 10

# A numeric target with more distinct values than this is a regression target.
MAX_INFERRED_CLASSES = 20
# Text feature columns with at most this many distinct values are one-hot encoded.
MAX_ONE_HOT_LEVELS = 10
# Fewest rows a CSV may have, whatever --cv is.
MIN_ROWS = 20

# Cells that mean "missing", as in pandas.read_csv's defaults.
NA_STRINGS = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
})


class CompareError(Exception):
    """A problem with the user's input, with a message meant to be printed as it is."""


# ----------------------------------------------------------------------------
# Data


@dataclass
class Dataset:
    """Features, target and what the report says about them.

    ``name`` is the built-in data set's name or the CSV file's path.
    ``task_reason`` says how the task was set (fixed, inferred or given).
    ``reference`` holds the generating model of a built-in data set, one value
    per sample: ``"mean"`` and ``"log_density"`` (regression) or ``"proba"``
    (classification, columns in the order of the labels 0, 1, ...); None for a
    CSV file.
    """

    name: str
    description: str
    task: str
    task_reason: str
    X: np.ndarray
    y: np.ndarray
    feature_names: list
    notes: list = field(default_factory=list)
    reference: dict = None


def load_builtin(name, n_samples, random_state):
    """Generate the built-in data set ``name`` (a key of :data:`DATASETS`).

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
        reference = {"mean": truth["mean"], "log_density": truth["log_density"]}
    elif name == "heteroscedastic":
        X, y, truth = make_heteroscedastic_regression(
            n_samples, random_state=random_state, return_truth=True
        )
        description = ("make_heteroscedastic_regression(): 2 regimes, gate sigmoid(3 x1), "
                       "noise sd 0.2 and 0.8, 2 irrelevant inputs")
        reference = {"mean": truth["mean"], "log_density": truth["log_density"]}
    elif name == "piecewise-logistic":
        X, y, truth = make_piecewise_logistic(
            n_samples, n_features=5, n_regimes=3, n_classes=3, random_state=random_state,
            return_truth=True,
        )
        description = ("make_piecewise_logistic(n_features=5, n_regimes=3, n_classes=3): "
                       "3 oblique regimes, a multinomial logistic model in each")
        reference = {"proba": truth["proba"]}
    else:
        raise ValueError(f"Unknown data set {name!r}; expected one of {sorted(DATASETS)}.")
    names = [f"x{j + 1}" for j in range(X.shape[1])]
    return Dataset(name, description, DATASETS[name], "fixed by the data set", X, y, names,
                   reference=reference)


def min_rows(cv):
    """Fewest rows for ``cv`` outer folds, each split again into inner folds."""
    return max(MIN_ROWS, 2 * INNER_CV * cv)


def min_class_rows(cv):
    """Fewest rows of one class for stratified outer and inner folds."""
    return max(cv, 2 * INNER_CV)


@dataclass
class _Column:
    """One CSV column: float values (numeric) or stripped strings, and its missing cells."""

    name: str
    values: np.ndarray
    missing: np.ndarray
    numeric: bool


def _pandas():
    """The pandas module, or None if it is not installed."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _read_header(path):
    """Column names of the CSV file ``path`` (first line), checked; raises CompareError."""
    if not os.path.exists(path):
        raise CompareError(f"CSV file not found: {path}")
    if os.path.isdir(path):
        raise CompareError(f"{path} is a directory, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError as exc:
        raise CompareError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except (OSError, csv.Error) as exc:
        raise CompareError(f"cannot read {path}: {exc}")
    if not header:
        raise CompareError(f"{path} is empty: expected a header line with the column names")
    names = [name.strip() for name in header]
    blank = [str(j + 1) for j, name in enumerate(names) if not name]
    if blank:
        raise CompareError(
            f"{path}: column(s) {', '.join(blank)} of the header have no name (an index "
            "column written by pandas? write the file with index=False or name the column)"
        )
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise CompareError(f"{path}: duplicate column names: {', '.join(duplicates)}")
    return names


def _columns_with_pandas(pd, path, names):
    """Read the columns of ``path`` with pandas."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise CompareError(f"cannot parse {path}: {str(exc).strip()}")
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"cannot read {path}: {exc}")
    frame.columns = names
    columns = []
    for name in names:
        series = frame[name]
        missing = series.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(series):
            columns.append(_Column(name, series.to_numpy(dtype=np.float64, na_value=np.nan),
                                   missing, True))
        else:
            values = np.array(["" if m else str(v).strip()
                               for v, m in zip(series.tolist(), missing)], dtype=object)
            columns.append(_Column(name, values, missing, False))
    return columns


def _columns_with_csv(path, names):
    """Read the columns of ``path`` with the csv module (pandas is not installed)."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            next(reader)
            for row in reader:
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines are skipped, as pandas does
                if len(row) != len(names):
                    raise CompareError(
                        f"cannot parse {path}: line {reader.line_num} has {len(row)} fields, "
                        f"the header has {len(names)}"
                    )
                rows.append([cell.strip() for cell in row])
    except UnicodeDecodeError as exc:
        raise CompareError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    except (OSError, csv.Error) as exc:
        raise CompareError(f"cannot read {path}: {exc}")
    columns = []
    for j, name in enumerate(names):
        cells = [row[j] for row in rows]
        missing = np.array([cell in NA_STRINGS for cell in cells], dtype=bool)
        numbers = np.full(len(cells), np.nan)
        numeric = True
        for i, cell in enumerate(cells):
            if missing[i]:
                continue
            try:
                numbers[i] = float(cell)
            except ValueError:
                numeric = False
                break
        if numeric:
            columns.append(_Column(name, numbers, missing, True))
        else:
            values = np.array(["" if m else c for c, m in zip(cells, missing)], dtype=object)
            columns.append(_Column(name, values, missing, False))
    return columns


def _count(n, word):
    """``"1 row"``, ``"2 rows"``."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _numbers_in(values):
    """How many of the strings ``values`` parse as numbers, and one that does not."""
    n_numbers, example = 0, None
    for value in values:
        try:
            float(value)
            n_numbers += 1
        except ValueError:
            if example is None:
                example = value
    return n_numbers, example


def infer_task(column):
    """The task a target column poses, and why.

    Parameters
    ----------
    column : _Column

    Returns
    -------
    task : {"regression", "classification"}
    reason : str
    """
    if not column.numeric:
        return "classification", "inferred: the target is text"
    n_distinct = np.unique(column.values).size
    if n_distinct > MAX_INFERRED_CLASSES:
        return "regression", (f"inferred: numeric target with {n_distinct} distinct values, "
                              f"more than {MAX_INFERRED_CLASSES}")
    return "classification", (f"inferred: target with {n_distinct} distinct values, "
                              f"at most {MAX_INFERRED_CLASSES}")


def _encode_features(columns):
    """Feature matrix from the feature columns, one-hot encoding small text columns.

    Returns
    -------
    X : ndarray of shape (n_rows, n_features)
    names : list of str
    notes : list of str
    """
    blocks, names, notes, refused = [], [], [], []
    n_rows = columns[0].values.shape[0] if columns else 0
    for column in columns:
        if column.numeric:
            blocks.append(column.values[:, None])
            names.append(column.name)
            continue
        levels = sorted(set(column.values.tolist()))
        n_numbers, example = _numbers_in(column.values)
        if n_numbers * 2 > n_rows:
            refused.append(f"'{column.name}' holds numbers except "
                           f"{_count(n_rows - n_numbers, 'cell')} such as {example!r}")
        elif len(levels) > MAX_ONE_HOT_LEVELS:
            refused.append(f"'{column.name}' ({len(levels)} distinct values, "
                           f"e.g. {levels[0]!r})")
        elif len(levels) == 1:
            notes.append(f"text column '{column.name}' dropped: one value, {levels[0]!r}")
        else:
            # The first level is the reference: all indicators 0, so that the
            # indicators and the intercept are not collinear.
            for level in levels[1:]:
                blocks.append((column.values == level).astype(np.float64)[:, None])
                names.append(f"{column.name}={level}")
            notes.append(f"text column '{column.name}' one-hot encoded: "
                         f"{len(levels) - 1} indicators, reference level {levels[0]!r}")
    if refused:
        raise CompareError(
            "text columns cannot be used as features: " + "; ".join(refused) + ". "
            f"Text columns with at most {MAX_ONE_HOT_LEVELS} distinct values are one-hot "
            "encoded; convert, encode or drop the others first"
        )
    if not blocks:
        raise CompareError("no feature columns: the file has only the target column")
    return np.hstack(blocks), names, notes


def load_csv(path, target, task=None, cv=DEFAULT_CV, engine=None):
    """Read and check the CSV file ``path``; column ``target`` is the target.

    Parameters
    ----------
    path : str
        A comma-separated file with a header line of column names.
    target : str
        Name of the target column; every other column is a feature.
    task : {"regression", "classification"} or None, default=None
        None infers it from the target (:func:`infer_task`).
    cv : int, default=5
        Outer folds, for the minimum numbers of rows.
    engine : {"pandas", "csv"} or None, default=None
        Parser; None uses pandas if it is installed.

    Returns
    -------
    dataset : Dataset

    Raises
    ------
    CompareError
        If the file cannot be read or the data cannot be used, with the reason:
        a missing file or target column, too few rows, empty or NaN cells
        (naming the columns), infinite values, text features with more than
        :data:`MAX_ONE_HOT_LEVELS` distinct values, a text target for
        regression, a single class, or a class with too few rows.
    """
    names = _read_header(path)
    if target not in names:
        listed = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        hint = ""
        if len(names) == 1 and any(sep in names[0] for sep in ";\t|"):
            hint = " (the file does not look comma-separated; only commas separate columns)"
        raise CompareError(f"target column '{target}' not found in {path}; "
                           f"its columns are: {listed}{hint}")
    if engine is None:
        engine = "pandas" if _pandas() is not None else "csv"
    if engine == "pandas":
        columns = _columns_with_pandas(_pandas(), path, names)
    else:
        columns = _columns_with_csv(path, names)

    n_rows = columns[0].values.shape[0]
    if n_rows < min_rows(cv):
        raise CompareError(f"too few rows in {path}: {n_rows}; {cv}-fold cross-validation "
                           f"with inner {INNER_CV}-fold grid searches needs at least "
                           f"{min_rows(cv)}")
    with_missing = [f"'{c.name}' ({_count(int(c.missing.sum()), 'row')})"
                    for c in columns if c.missing.any()]
    if with_missing:
        raise CompareError("empty or NaN cells in columns " + ", ".join(with_missing)
                           + "; drop or impute those rows first")
    infinite = [f"'{c.name}'" for c in columns if c.numeric and not np.isfinite(c.values).all()]
    if infinite:
        raise CompareError("infinite values in columns " + ", ".join(infinite))

    target_column = next(c for c in columns if c.name == target)
    if task is None:
        task, reason = infer_task(target_column)
    else:
        reason = "given by --task"
    X, feature_names, notes = _encode_features([c for c in columns if c.name != target])
    y = _check_target(target_column, task, cv)
    return Dataset(path, f"CSV file, target column '{target}'", task, reason, X, y,
                   feature_names, notes=notes)


def _check_target(column, task, cv):
    """The target as an array for ``task``; raises CompareError if it cannot serve."""
    if task == "regression":
        if not column.numeric:
            _, example = _numbers_in(column.values)
            raise CompareError(f"target '{column.name}' is text (e.g. {example!r}); "
                               "regression needs numbers (or use --task classification)")
        if np.ptp(column.values) == 0:
            raise CompareError(f"target '{column.name}' is constant: nothing to predict")
        return column.values
    values = column.values
    if column.numeric and np.all(values == np.round(values)):
        values = values.astype(np.int64)  # integer labels print as 0, 1, not 0.0, 1.0
    classes, counts = np.unique(values, return_counts=True)
    if classes.size < 2:
        raise CompareError(f"target '{column.name}' has a single class, {classes[0]!r}: "
                           "nothing to classify")
    rare = [f"{c!r} ({n})" for c, n in zip(classes.tolist(), counts) if n < min_class_rows(cv)]
    if rare:
        raise CompareError(
            f"target '{column.name}' has classes with too few rows: {', '.join(rare)}; "
            f"stratified {cv}-fold cross-validation with inner {INNER_CV}-fold searches needs "
            f"at least {min_class_rows(cv)} rows per class (merge or drop the rare classes, "
            "or use --task regression for a numeric target)"
        )
    return values


# ----------------------------------------------------------------------------
# Models


@dataclass
class Contender:
    """One model of the comparison.

    ``estimator`` is unfitted and cloned for each fold. ``gaussian`` marks a
    regressor without a predictive density, scored with a Gaussian around its
    predictions whose variance :func:`_residual_variance` estimates.
    """

    key: str
    label: str
    description: str
    estimator: object
    gaussian: bool = False
    notes: list = field(default_factory=list)


def _smallest_inner_train(n_rows, cv):
    """Rows of the smallest training part of an inner fold."""
    outer_train = n_rows - math.ceil(n_rows / cv)
    return outer_train - math.ceil(outer_train / INNER_CV)


def _feasible(candidates, n_leaves, n_coef, n_train):
    """The candidates whose experts have at least as many training rows as coefficients.

    All of them if ``n_train`` is None.

    Returns
    -------
    kept : list
    dropped : list
    """
    if n_train is None:
        return list(candidates), []
    kept = [c for c in candidates if n_leaves(c) * n_coef <= n_train]
    dropped = [c for c in candidates if c not in kept]
    if not kept:  # keep the smallest: skmoe itself needs only 1 or 2 rows per expert
        smallest = min(candidates, key=n_leaves)
        kept, dropped = [smallest], [c for c in candidates if c != smallest]
    return kept, dropped


def _format_grid(values):
    """Grid candidates as a set, ``{2, 4, 8}``."""
    return "{" + ", ".join(str(v) for v in values) + "}"


def make_contenders(task, n_rows=None, n_features=None, n_classes=2, cv=DEFAULT_CV,
                    models=MODELS, n_experts_grid=N_EXPERTS_GRID,
                    branching_grid=BRANCHING_GRID, random_state=0, n_jobs=None):
    """The contenders for ``task``, in the order of the table.

    Parameters
    ----------
    task : {"regression", "classification"}
    n_rows, n_features : int or None, default=None
        Size of the data, to drop grid candidates the inner folds are too small
        for (experts with fewer training rows than coefficients) and to cap
        the neighbours of the kNN inside the stack; None for neither.
    n_classes : int, default=2
        Classes (classification only), for the coefficients of an expert.
    cv : int, default=5
        Outer folds.
    models : sequence of str, default=MODELS
        Keys of the contenders to build, a subset of :data:`MODELS`.
    n_experts_grid : sequence of int, default=N_EXPERTS_GRID
        Candidates for the flat MoE's ``n_experts``.
    branching_grid : sequence of tuple of int, default=BRANCHING_GRID
        Candidates for the HME's ``branching``.
    random_state : int, default=0
        Seeds every randomised model and inner fold.
    n_jobs : int or None, default=None
        Parallel jobs of the grid searches, the stack and the random forest.

    Returns
    -------
    contenders : list of Contender
    """
    regression = task == "regression"
    inner_folds = (KFold if regression else StratifiedKFold)(
        INNER_CV, shuffle=True, random_state=random_state)
    if n_rows is None:
        n_train, n_coef = None, None
    else:
        n_train = _smallest_inner_train(n_rows, cv)
        n_coef = (n_features + 1) * (1 if regression else n_classes - 1)
    search = dict(cv=inner_folds, n_jobs=n_jobs)

    def tuned_cart():
        tree = (DecisionTreeRegressor if regression else DecisionTreeClassifier)(
            random_state=random_state)
        # Regression: scored by the MSE, so that -best_score_ is the chosen
        # tree's held-out MSE (the variance of its Gaussian, see _residual_variance).
        scoring = "neg_mean_squared_error" if regression else None
        return GridSearchCV(tree, CART_GRID, scoring=scoring, **search)

    cart_grid = ", ".join(f"{k} in {_format_grid(v)}" for k, v in CART_GRID.items())
    contenders = []
    if "moe" in models:
        kept, dropped = _feasible(list(n_experts_grid), lambda k: k, n_coef, n_train)
        cls = MixtureOfExpertsRegressor if regression else MixtureOfExpertsClassifier
        base = cls(n_init=MIXTURE_N_INIT, random_state=random_state)
        contender = Contender(
            "moe", "MoE",
            f"{cls.__name__}(n_init={MIXTURE_N_INIT}), n_experts chosen by "
            f"{INNER_CV}-fold GridSearchCV over {_format_grid(kept)}",
            GridSearchCV(base, {"n_experts": kept}, **search),
        )
        if dropped:
            contender.notes.append(f"MoE: n_experts {_format_grid(dropped)} left out of the "
                                   "grid, too few rows for that many experts")
        contenders.append(contender)
    if "hme" in models:
        kept, dropped = _feasible([tuple(b) for b in branching_grid], math.prod, n_coef,
                                  n_train)
        cls = (HierarchicalMixtureOfExpertsRegressor if regression
               else HierarchicalMixtureOfExpertsClassifier)
        base = cls(init_params="tree", random_state=random_state)
        contender = Contender(
            "hme", "HME",
            f"{cls.__name__}(init_params='tree'), branching "
            f"chosen by {INNER_CV}-fold GridSearchCV over {_format_grid(kept)}",
            GridSearchCV(base, {"branching": kept}, **search),
        )
        if dropped:
            contender.notes.append(f"HME: branching {_format_grid(dropped)} left out of the "
                                   "grid, too few rows for that many experts")
        contenders.append(contender)
    if "cart" in models:
        tree = "DecisionTreeRegressor" if regression else "DecisionTreeClassifier"
        contenders.append(Contender(
            "cart", "CART",
            f"{tree} tuned by {INNER_CV}-fold GridSearchCV over {cart_grid}"
            + (" (by MSE)" if regression else " (by accuracy)"),
            tuned_cart(), gaussian=regression,
        ))
    if "stacking" in models:
        # The stack splits each outer training part again, and its tuned tree
        # once more: the kNN must fit in the smallest of those parts.
        n_neighbors = KNN_N_NEIGHBORS if n_train is None else max(1, min(KNN_N_NEIGHBORS,
                                                                           n_train))
        if regression:
            forest = RandomForestRegressor(n_estimators=FOREST_N_ESTIMATORS, n_jobs=n_jobs,
                                           random_state=random_state)
            knn = make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=n_neighbors))
            # store_cv_results keeps the final ridge's leave-one-out errors on the
            # members' out-of-fold predictions: the stack's held-out error.
            final = RidgeCV(store_cv_results=True)
            stack_cls, final_text = StackingRegressor, "RidgeCV"
        else:
            forest = RandomForestClassifier(n_estimators=FOREST_N_ESTIMATORS, n_jobs=n_jobs,
                                            random_state=random_state)
            knn = make_pipeline(StandardScaler(),
                                KNeighborsClassifier(n_neighbors=n_neighbors))
            final = LogisticRegression(max_iter=1000)
            stack_cls, final_text = StackingClassifier, "LogisticRegression"
        stack = stack_cls(
            estimators=[("cart", tuned_cart()), ("forest", forest), ("knn", knn)],
            final_estimator=final, cv=inner_folds, n_jobs=n_jobs,
        )
        contenders.append(Contender(
            "stacking", "stacking",
            f"{stack_cls.__name__}({INNER_CV}-fold) of the tuned CART, "
            f"{type(forest).__name__}(n_estimators={FOREST_N_ESTIMATORS}) and StandardScaler + "
            f"{type(knn[-1]).__name__}(n_neighbors={n_neighbors}), under {final_text}",
            stack, gaussian=regression,
        ))
    if "linear" in models:
        if regression:
            contenders.append(Contender("linear", "linear", "LinearRegression",
                                        LinearRegression(), gaussian=True))
        else:
            contenders.append(Contender(
                "linear", "linear", "StandardScaler + LogisticRegression",
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
            ))
    return contenders


def _residual_variance(contender, fitted, X_train, y_train):
    """Variance of the Gaussian around a regressor's predictions, from its training part.

    In-sample residuals of trees and forests are far smaller than their errors
    on new data, so each model's variance comes from held-out residuals that
    its own fit already computed: the inner-CV MSE of the chosen tree (CART),
    the leave-one-out MSE of the final ridge on the members' out-of-fold
    predictions (stacking), and ``RSS / (n - p - 1)`` (linear regression).

    Returns
    -------
    variance : float
    """
    if contender.key == "cart":
        variance = -fitted.best_score_
    elif contender.key == "stacking":
        final = fitted.final_estimator_
        best = int(np.flatnonzero(np.asarray(final.alphas) == final.alpha_)[0])
        variance = float(np.mean(final.cv_results_[:, best]))
    else:
        residuals = y_train - fitted.predict(X_train)
        dof = max(1, y_train.shape[0] - X_train.shape[1] - 1)
        variance = float(residuals @ residuals) / dof
    # A perfect training fit would give a zero variance and an infinite NLPD.
    return max(variance, 1e-12 * float(np.var(y_train)), np.finfo(float).tiny)


def _describe_choice(fitted):
    """Hyperparameters chosen by the fitted model's grid searches ('' if none)."""
    if isinstance(fitted, GridSearchCV):
        return ", ".join(f"{k}={v}" for k, v in sorted(fitted.best_params_.items()))
    if isinstance(fitted, (StackingRegressor, StackingClassifier)):
        tree = fitted.named_estimators_["cart"]
        return "CART " + _describe_choice(tree)
    return ""


# ----------------------------------------------------------------------------
# Evaluation


@dataclass
class FoldScore:
    """Scores of one model on one outer fold; times are None for the Bayes reference."""

    score: float
    density_score: float
    fit_time: float = None
    predict_time: float = None
    choice: str = ""
    converged: bool = None


@dataclass
class ModelResult:
    """A model's scores over the outer folds."""

    label: str
    description: str
    gaussian: bool = False
    folds: list = field(default_factory=list)

    def summary(self, attribute):
        """Mean and standard deviation (ddof=0, as scikit-learn's cv_results_) over folds."""
        values = np.array([getattr(fold, attribute) for fold in self.folds], dtype=float)
        return float(np.mean(values)), float(np.std(values))

    def choices(self):
        """The chosen hyperparameters, most frequent first, with their fold counts."""
        counts = {}
        for fold in self.folds:
            if fold.choice:
                counts[fold.choice] = counts.get(fold.choice, 0) + 1
        return sorted(counts.items(), key=lambda item: -item[1])


def _metric_names(task):
    """Names of the two score columns of ``task``."""
    return ("relative error", "NLPD") if task == "regression" else ("accuracy", "log-loss")


def _score_fold(contender, fitted, X_train, y_train, X_test, y_test, task):
    """Point and density scores of a fitted model on a test fold, and the predict time.

    Returns
    -------
    score, density_score, predict_time : float
    """
    start = time.perf_counter()
    pred = fitted.predict(X_test)
    predict_time = time.perf_counter() - start
    model = getattr(fitted, "best_estimator_", fitted)
    if task == "regression":
        score = float(np.mean((y_test - pred) ** 2) / np.var(y_test))
        if contender.gaussian:
            variance = _residual_variance(contender, fitted, X_train, y_train)
            nlpd = 0.5 * (np.log(2.0 * np.pi * variance)
                          + np.mean((y_test - pred) ** 2) / variance)
        else:
            nlpd = -np.mean(model.score_samples(X_test, y_test))
        return score, float(nlpd), predict_time
    score = float(np.mean(pred == y_test))
    return score, _log_loss(y_test, fitted.predict_proba(X_test), fitted.classes_), predict_time


def _log_loss(y, proba, classes):
    """Mean negative log-probability of the labels ``y``, in nats.

    Computed here rather than by ``sklearn.metrics.log_loss``, which refuses
    probabilities that rounding puts a few ulps above 1. Probabilities are
    clipped below at the machine epsilon, as scikit-learn does, so that a
    confident miss costs about 36 nats rather than infinity.
    """
    p = proba[np.arange(y.shape[0]), np.searchsorted(classes, y)]
    return float(-np.mean(np.log(np.clip(p, np.finfo(np.float64).eps, 1.0))))


def _reference_fold(dataset, test):
    """Scores of the generating model on a test fold."""
    y_test = dataset.y[test]
    if dataset.task == "regression":
        mean = dataset.reference["mean"][test]
        score = float(np.mean((y_test - mean) ** 2) / np.var(y_test))
        return FoldScore(score, -float(np.mean(dataset.reference["log_density"][test])))
    proba = dataset.reference["proba"][test]
    score = float(np.mean(np.argmax(proba, axis=1) == y_test))
    return FoldScore(score, _log_loss(y_test, proba, np.arange(proba.shape[1])))


def _outer_folds(dataset, cv, random_state):
    """(train, test) indices of the outer folds, stratified for classification."""
    splitter = (KFold if dataset.task == "regression" else StratifiedKFold)(
        cv, shuffle=True, random_state=random_state)
    return list(splitter.split(dataset.X, dataset.y))


def _is_mixture_search(contender):
    """Whether the contender is a grid search over a skmoe mixture."""
    search = contender.estimator
    return (isinstance(search, GridSearchCV)
            and isinstance(search.estimator, BaseMixtureOfExperts))


def _warm_up(contenders, X_train, y_train):
    """Compile the Numba kernels once, so that the timed fits measure EM only.

    The kernels have a serial and a parallel build, chosen by the problem
    size, so each mixture is fitted (one EM iteration) both on a whole outer
    training part with its largest candidate and on the first inner training
    part of its search (stratified for classifiers) with its smallest.
    """
    for contender in filter(_is_mixture_search, contenders):
        search = contender.estimator
        ((name, candidates),) = search.param_grid.items()
        inner_train, _ = next(search.cv.split(X_train, y_train))
        everything = np.arange(X_train.shape[0])
        for value, rows in ((candidates[-1], everything), (candidates[0], inner_train)):
            X, y = X_train[rows], y_train[rows]
            model = clone(search.estimator).set_params(max_iter=1, n_init=1, **{name: value})
            model.fit(X, y)
            model.predict(X)
            if hasattr(model, "predict_proba"):
                model.predict_proba(X)
            else:
                model.score_samples(X, y)


def cross_validate_contenders(dataset, contenders, cv=DEFAULT_CV, random_state=0, log=None):
    """Fit and score every contender on the same outer cross-validation folds.

    Parameters
    ----------
    dataset : Dataset
    contenders : list of Contender
    cv : int, default=5
        Outer folds: KFold (regression) or StratifiedKFold (classification),
        shuffled with ``random_state``.
    random_state : int, default=0
    log : file-like or None, default=None
        Where the progress lines go (one per model and fold); None for none.

    Returns
    -------
    results : list of ModelResult
        One per contender, then the Bayes reference if the data set has one.

    Notes
    -----
    Regression scores the relative error (test MSE / Var(y_test)) and the NLPD
    (mean negative log predictive density of the test targets, in nats:
    ``-mean(score_samples(X, y))`` for the mixtures, a Gaussian around the
    prediction for the others). Classification scores the accuracy and the
    log-loss of ``predict_proba``. EM convergence warnings are silenced: the
    progress line says when the refitted mixture did not converge.
    """
    def say(text):
        if log is not None:
            print(text, file=log, flush=True)

    folds = _outer_folds(dataset, cv, random_state)
    X, y = dataset.X, dataset.y
    names = _metric_names(dataset.task)
    results = [ModelResult(c.label, c.description, c.gaussian) for c in contenders]
    with warnings.catch_warnings():
        # Silenced in the joblib workers of the searches too (scikit-learn passes
        # the filters on); non-convergence is reported from converged_ instead.
        warnings.simplefilter("ignore", ConvergenceWarning)
        train, _ = folds[0]
        if any(map(_is_mixture_search, contenders)):
            say("compiling the Numba kernels (not timed) ...")
            start = time.perf_counter()
            _warm_up(contenders, X[train], y[train])
            say(f"compiled in {time.perf_counter() - start:.1f} s")
        width = max(len(c.label) for c in contenders)
        for k, (train, test) in enumerate(folds):
            for contender, result in zip(contenders, results):
                model = clone(contender.estimator)
                start = time.perf_counter()
                model.fit(X[train], y[train])
                fit_time = time.perf_counter() - start
                score, density, predict_time = _score_fold(
                    contender, model, X[train], y[train], X[test], y[test], dataset.task)
                best = getattr(model, "best_estimator_", model)
                converged = getattr(best, "converged_", None)
                fold = FoldScore(score, density, fit_time, predict_time,
                                 _describe_choice(model), converged)
                result.folds.append(fold)
                line = (f"[fold {k + 1}/{cv}] {contender.label:<{width}}  fit {fit_time:7.2f} s"
                        f"  predict {predict_time:.4f} s  {names[0]} {score:.4f}"
                        f"  {names[1]} {density:.4f}")
                if fold.choice:
                    line += f"  ({fold.choice})"
                if converged is False:
                    line += "  EM did not converge within max_iter"
                say(line)
    if dataset.reference is not None:
        reference = ModelResult("Bayes reference", "the generating model")
        reference.folds = [_reference_fold(dataset, test) for _, test in folds]
        results.append(reference)
    return results


# ----------------------------------------------------------------------------
# Report


def format_header(dataset, cv, random_state):
    """Lines naming the data, the task, the sizes and the cross-validation.

    Parameters
    ----------
    dataset : Dataset
    cv : int
    random_state : int

    Returns
    -------
    header : str
    """
    n, p = dataset.X.shape
    task = dataset.task
    if task == "classification":
        task += f", {np.unique(dataset.y).size} classes"
    splitter = "KFold" if dataset.task == "regression" else "StratifiedKFold"
    lines = [
        f"data: {dataset.name}: {dataset.description}",
        f"task: {task} ({dataset.task_reason})",
        f"{n} rows, {p} features; outer {cv}-fold cross-validation ({splitter}, shuffled, "
        f"random_state={random_state}); inner {INNER_CV}-fold grid searches",
    ]
    lines += [f"note: {note}" for note in dataset.notes]
    return "\n".join(lines)


def _mean_std(result, attribute, decimals):
    """A table cell, ``"mean (std)"`` over the folds, or "-" where there is no value."""
    if getattr(result.folds[0], attribute) is None:
        return "-"
    mean, std = result.summary(attribute)
    return f"{mean:.{decimals}f} ({std:.{decimals}f})"


def format_table(results, task):
    """An aligned table of ``results``: mean (std) over the folds of each column.

    Parameters
    ----------
    results : list of ModelResult
    task : {"regression", "classification"}

    Returns
    -------
    table : str
    """
    names = _metric_names(task)
    header = ["model", names[0], names[1], "fit (s)", "predict (s)"]
    rows = []
    for r in results:
        density = _mean_std(r, "density_score", 4) + ("*" if r.gaussian else " ")
        rows.append([r.label, _mean_std(r, "score", 4), density,
                     _mean_std(r, "fit_time", 2), _mean_std(r, "predict_time", 4)])
    widths = [max(len(row[j]) for row in [header] + rows) for j in range(len(header))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first] + rest)

    return "\n".join([line(header), "  ".join("-" * w for w in widths)]
                     + [line(row) for row in rows])


def format_notes(results, contenders, task, cv):
    """What each model is, what it chose, and what the columns mean.

    Parameters
    ----------
    results : list of ModelResult
    contenders : list of Contender
    task : {"regression", "classification"}
    cv : int

    Returns
    -------
    notes : str
    """
    width = max(len(r.label) for r in results)
    indent = " " * (width + 4)

    def wrapped(first, text):
        return textwrap.wrap(text, REPORT_WIDTH, initial_indent=first,
                             subsequent_indent=indent, break_on_hyphens=False)

    lines = ["models:"]
    for result in results:
        lines += wrapped(f"  {result.label:<{width}}  ", result.description)
        choices = result.choices()
        if choices:
            chosen = "; ".join(f"{choice} ({n}/{cv} folds)" for choice, n in choices)
            lines += wrapped(indent, f"chosen: {chosen}")
        not_converged = sum(fold.converged is False for fold in result.folds)
        if not_converged:
            lines.append(f"{indent}EM did not converge within max_iter in "
                         f"{not_converged}/{cv} folds")
    for contender in contenders:
        for note in contender.notes:
            lines += textwrap.wrap(note, REPORT_WIDTH, initial_indent="  ",
                                   subsequent_indent="    ")
    lines.append(f"columns: mean (standard deviation) over the {cv} outer folds.")
    if task == "regression":
        lines += [
            "  relative error: test MSE / Var(y_test); 0 is perfect, 1 is predicting the mean.",
            "  NLPD: mean negative log predictive density of the test targets, in nats",
            "    (lower is better): -mean(score_samples(X, y)) for the mixtures;",
            "  * = no predictive density: a Gaussian around the prediction whose variance",
            "    comes from held-out residuals within the training part (CART: inner-CV MSE",
            "    of the chosen tree; stacking: leave-one-out MSE of the final RidgeCV on the",
            "    members' out-of-fold predictions; linear: RSS / (n - p - 1)).",
        ]
    else:
        lines += [
            "  accuracy: share of test labels predicted right.",
            "  log-loss: mean negative log-probability of the test labels under",
            "    predict_proba, in nats (lower is better).",
        ]
    lines += ["  fit: seconds, including the inner grid searches (Numba compilation excluded);",
              "  predict: seconds for predict on the test fold."]
    return "\n".join(lines)


def write_plot(path, results, task, title):
    """Write a PNG of each model's scores and fit time, per fold and on average.

    Parameters
    ----------
    path : str
    results : list of ModelResult
    task : {"regression", "classification"}
    title : str

    Returns
    -------
    written : bool
        False if matplotlib is not installed (nothing is written).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    names = _metric_names(task)
    models = [r for r in results if r.folds[0].fit_time is not None]
    reference = [r for r in results if r.folds[0].fit_time is None]
    # The object-oriented API draws without pyplot, so no GUI backend is chosen.
    fig = Figure(figsize=(13, 1.2 + 0.45 * len(models)), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    density_label = names[1] + (" (*: Gaussian around the prediction)"
                                if task == "regression" else "")
    panels = [("score", names[0]), ("density_score", density_label),
              ("fit_time", "fit time (s, log scale)")]
    positions = np.arange(len(models))[::-1]
    for ax, (attribute, xlabel) in zip(axes, panels):
        for pos, result in zip(positions, models):
            values = [getattr(fold, attribute) for fold in result.folds]
            mean, std = result.summary(attribute)
            # On the log-scaled time axis mean - std can be negative: the ticks
            # of the folds show the spread there instead.
            xerr = None if attribute == "fit_time" else std
            ax.errorbar(mean, pos, xerr=xerr, fmt="o", color="C0", capsize=3)
            ax.plot(values, np.full(len(values), pos + 0.15), "|", color="C1", alpha=0.8)
        for result in reference:
            if attribute != "fit_time":
                ax.axvline(result.summary(attribute)[0], color="0.4", linestyle="--",
                           label=result.label)
        if attribute == "fit_time":
            ax.set_xscale("log")
        elif reference:
            ax.legend(loc="best", fontsize="small")
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions)
    axes[0].set_yticklabels([r.label + ("*" if r.gaussian else "") for r in models])
    fig.suptitle(title + "; dots and bars: mean and std over the folds, ticks: each fold")
    fig.savefig(path, dpi=100)
    return True


def compare(dataset="piecewise-linear", n_samples=DEFAULT_N_SAMPLES, csv_path=None,
            target=None, task=None, cv=DEFAULT_CV, models=MODELS,
            n_experts_grid=N_EXPERTS_GRID, branching_grid=BRANCHING_GRID, random_state=0,
            n_jobs=None, plot=DEFAULT_PLOT, quiet=False, out=None, log=None):
    """Run the whole comparison: header, progress, table, notes and plot.

    Parameters
    ----------
    dataset : str, default="piecewise-linear"
        A key of :data:`DATASETS`; ignored when ``csv_path`` is given.
    n_samples : int, default=1000
        Rows of the built-in data set.
    csv_path, target : str or None, default=None
        A CSV file and its target column, instead of a built-in data set.
    task : {"regression", "classification"} or None, default=None
        Forces the task of a CSV file; None infers it.
    cv : int, default=5
        Outer cross-validation folds.
    models : sequence of str, default=MODELS
        Which contenders to run (keys of :data:`MODELS`).
    n_experts_grid, branching_grid : sequence, default=N_EXPERTS_GRID, BRANCHING_GRID
        Grids of the MoE's ``n_experts`` and the HME's ``branching``.
    random_state : int, default=0
        Seeds the data, the folds and the models.
    n_jobs : int or None, default=None
        Parallel jobs of the grid searches, the stack and the forest.
    plot : str or None, default="skmoe-compare.png"
        Where to write the PNG figure; None for no figure.
    quiet : bool, default=False
        No progress lines (messages about the plot are still written).
    out, log : file-like or None, default=None
        The report goes to ``out`` (stdout if None), the progress lines and
        messages to ``log`` (stderr if None).

    Returns
    -------
    results : list of ModelResult

    Raises
    ------
    CompareError
        If the CSV file cannot be read or used, or the plot cannot be written.
    """
    out = sys.stdout if out is None else out
    log = sys.stderr if log is None else log
    if plot is not None:
        directory = os.path.dirname(os.path.abspath(plot))
        if not os.path.isdir(directory):
            raise CompareError(f"cannot write the plot to {plot}: no directory {directory}")
    if csv_path is not None:
        data = load_csv(csv_path, target, task, cv)
    else:
        data = load_builtin(dataset, n_samples, random_state)
    n_classes = None if data.task == "regression" else np.unique(data.y).size
    contenders = make_contenders(
        data.task, data.X.shape[0], data.X.shape[1], n_classes, cv, models,
        n_experts_grid, branching_grid, random_state, n_jobs,
    )
    print(format_header(data, cv, random_state), file=out, flush=True)
    results = cross_validate_contenders(data, contenders, cv, random_state,
                                        None if quiet else log)
    print("", file=out)
    print(format_table(results, data.task), file=out)
    print("", file=out)
    print(format_notes(results, contenders, data.task, cv), file=out, flush=True)
    if plot is not None:
        title = (f"{os.path.basename(data.name)}: {data.X.shape[0]} rows, "
                 f"{cv}-fold cross-validation")
        if write_plot(plot, results, data.task, title):
            print(f"plot: {plot}", file=out, flush=True)
        else:
            print("matplotlib is not installed: no plot written (pip install matplotlib, "
                  "or pass --no-plot)", file=log, flush=True)
    return results
