"""The host-side preparation of a fit, apart from the EM iterations.

Times, for a flat MoE regressor at p = 20 and K = 16, the steps every fit
takes before EM starts, on whichever backend: validation, column scaling, the
standardised design, and the initial responsibilities ("random" and
"kmeans"), then a whole fit with ``max_iter=0`` (the above, the root's
Boehning bound, the first M-step and one E-step). On a GPU these steps are
most of a short fit. Each figure is the best of ``--repeats`` runs.

Usage::

    python benchmarks/bench_prepare.py [--samples 1000000 10000000] [--repeats 2]

To compare two versions of skmoe side by side, run the script from each
checkout in turn (``PYTHONPATH=<checkout>``) on an idle machine.
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits

from skmoe import MixtureOfExpertsRegressor
from skmoe._kernels import get_backend

cpu = get_backend("cpu")

P, K = 20, 16


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print("| n | validation s | scaling + design s | random start s | k-means start s "
          "| fit, max_iter=0 (random) s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.samples:
        rng = np.random.default_rng(0)
        X = rng.normal(size=(n, P))
        y = X[:, 0] * np.sign(X[:, 1]) + 0.1 * rng.normal(size=n)
        w = np.ones(n)
        estimator = MixtureOfExpertsRegressor(K, random_state=0, max_iter=0)
        estimator.fit(X[:2000], y[:2000])  # compiles, and sets the fitted state used below
        validation = best_of(args.repeats, lambda: validate_data(
            estimator, X, y, dtype=np.float64, reset=False, y_numeric=True))
        state = estimator._fit_state(X, y, w, True)
        preparation = best_of(args.repeats, lambda: estimator._fit_state(X, y, w, True))
        problem = state["problem"].on_host()
        starts = {}
        for init in ("random", "kmeans"):
            estimator.set_params(init_params=init)
            with threadpool_limits(limits=1, user_api="blas"):  # as in a fit
                starts[init] = best_of(args.repeats, lambda: estimator._initial_resp(
                    cpu, problem, state["X_std"], np.random.RandomState(0)))
        estimator.set_params(init_params="random")
        fit = best_of(args.repeats, lambda: estimator.fit(X, y))
        print(f"| {n:.0e} | {validation:.2f} | {preparation:.2f} | {starts['random']:.2f} "
              f"| {starts['kmeans']:.2f} | {fit:.2f} |", flush=True)


if __name__ == "__main__":
    main()
