"""HME against a flat MoE, tuned CART, stacking and a linear model.

Data (from ``../shared/data`` beside the project, never copied into it):

- kin8nm (DELVE robot-arm kinematics): the fixed 80/20 split of
  ``splits/delve__kin8nm__test_idx.csv``;
- concrete (Yeh 1998): 5-fold cross-validation with the folds of
  ``splits/modeldata__concrete__5fold.csv``;
- Friedman #1 (``sklearn.datasets.make_friedman1``, noise 1, generated here):
  2000 training and 2000 test samples.

Prints the relative error (MSE / Var(y_test)) and the fit time of every model.

Usage::

    python benchmarks/bench_hme.py [--datasets kin8nm concrete friedman1]
"""

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor
from skmoe._compare import make_contenders

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _read_csv(name):
    return np.genfromtxt(DATA / name, delimiter=",", names=True)


def kin8nm():
    table = _read_csv("delve__kin8nm.csv")
    names = table.dtype.names
    X = np.column_stack([table[c] for c in names if c != "y"])
    y = table["y"]
    test = np.loadtxt(DATA / "splits" / "delve__kin8nm__test_idx.csv", skiprows=1, dtype=int)
    mask = np.zeros(len(y), dtype=bool)
    mask[test] = True
    return [(X[~mask], y[~mask], X[mask], y[mask])]


def concrete():
    table = _read_csv("modeldata__concrete.csv")
    names = table.dtype.names
    X = np.column_stack([table[c] for c in names if c != "compressive_strength"])
    y = table["compressive_strength"]
    rows_folds = np.loadtxt(DATA / "splits" / "modeldata__concrete__5fold.csv", skiprows=1,
                            delimiter=",", dtype=int)
    folds = np.empty(len(y), dtype=int)
    folds[rows_folds[:, 0]] = rows_folds[:, 1]
    return [(X[folds != k], y[folds != k], X[folds == k], y[folds == k]) for k in range(5)]


def friedman1():
    X, y = make_friedman1(n_samples=4000, noise=1.0, random_state=0)
    return [(X[:2000], y[:2000], X[2000:], y[2000:])]


DATASETS = {"kin8nm": kin8nm, "concrete": concrete, "friedman1": friedman1}


def contenders():
    """Mixtures (scaled inputs) first, then the baselines of ``skmoe compare``."""
    hme = [
        ("HME branching=(4,4), k-means init",
         HierarchicalMixtureOfExpertsRegressor((4, 4), random_state=0)),
        ("HME branching=(2,2,2,2,2), CART init",
         HierarchicalMixtureOfExpertsRegressor((2, 2, 2, 2, 2), init_params="tree",
                                               random_state=0)),
        ("HME branching=(2,2,2), k-means init",
         HierarchicalMixtureOfExpertsRegressor((2, 2, 2), random_state=0)),
        ("flat MoE, 8 experts", MixtureOfExpertsRegressor(8, random_state=0)),
    ]
    models = [(name, make_pipeline(StandardScaler(), est)) for name, est in hme]
    baselines = [(c.label, c.estimator) for c in
                 make_contenders("regression", models=("cart", "stacking", "linear"))]
    return models + baselines


def run(name, splits):
    rows = []
    for label, model in contenders():
        errors, seconds = [], 0.0
        for X_train, y_train, X_test, y_test in splits:
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_train, y_train)
            seconds += time.perf_counter() - start
            errors.append(np.mean((model.predict(X_test) - y_test) ** 2) / np.var(y_test))
        rows.append((label, float(np.mean(errors)), seconds))
        print(f"  {label:45s} {rows[-1][1]:8.4f} {seconds:9.1f}", flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)
    if not DATA.is_dir() and set(args.datasets) - {"friedman1"}:
        raise SystemExit(f"{DATA} is missing: kin8nm and concrete are read from ../shared/data.")
    print(f"cores: {os.cpu_count()}; relative error = MSE / Var(y_test), mean over folds")
    # Compile the kernels before timing anything.
    X, y = make_friedman1(n_samples=300, random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        HierarchicalMixtureOfExpertsRegressor((2, 2), max_iter=3).fit(X, y)
    for name in args.datasets:
        print(f"\n{name}")
        print(f"  {'model':45s} {'rel.err':>8s} {'fit (s)':>9s}")
        run(name, DATASETS[name]())


if __name__ == "__main__":
    main()
