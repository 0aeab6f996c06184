"""Sparse routing at prediction: every expert against each sample's top-k.

A mixture of experts is fitted briefly (``--max-iter`` EM iterations from a
CART start) on ``make_piecewise_linear`` data with as many regimes as experts,
and its held-out R^2 printed; then ``predict(X)`` and ``predict(X, top_k=k)``
are timed on a larger held-out set. The gate is computed for every expert in
both cases (a sample's top k are not known before its gate is); the routed
prediction computes only the k selected experts' means, so the gate's share of
the time bounds the speed-up.

The dropped mass depends on how sharp the fitted gate is: a short fit leaves
it softer than a converged one would.

Prints, per (K, top_k): the best-of-``--repeats`` wall times (interleaved),
the speed-up, the mean and largest dropped gate mass, and the difference from
the full prediction (RMS relative to the standard deviation of the prediction,
and the largest absolute difference).

Usage::

    python benchmarks/bench_routing.py [--n-samples 200000] [--n-features 20]
        [--experts 16 64] [--top-k 1 2 4] [--repeats 7]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_piecewise_linear


def best_times(fns, repeats):
    """Best wall time of each function over ``repeats`` rounds, after a warm-up call.

    The calls are interleaved round by round, so that a change in the load of
    the machine affects every function alike.
    """
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def fit_model(X, y, n_experts, max_iter):
    """A short fit from a CART start: the timings do not depend on convergence."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MixtureOfExpertsRegressor(n_experts=n_experts, max_iter=max_iter,
                                         init_params="tree", gate_solver="bohning",
                                         random_state=0).fit(X, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=200_000, help="rows predicted")
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--experts", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--top-k", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--n-train", type=int, default=20_000, help="rows of the short fit")
    parser.add_argument("--max-iter", type=int, default=30, help="EM iterations of the fit")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    print(f"predict on n={args.n_samples}, p={args.n_features}; "
          f"fit: n={args.n_train}, {args.max_iter} EM iterations; best of {args.repeats}")
    header = (f"{'K':>4} {'R2':>5} {'top_k':>5} {'all ms':>8} {'top-k ms':>9} "
              f"{'speed-up':>8} {'dropped mean':>13} {'dropped max':>12} "
              f"{'rel. RMS diff':>13} {'max |diff|':>11}")
    print(header)
    print("-" * len(header))
    for n_experts in args.experts:
        # One draw of the generator (its regimes are random), split into fit and test rows.
        X, y = make_piecewise_linear(n_samples=args.n_train + args.n_samples,
                                     n_features=args.n_features, n_regimes=n_experts,
                                     noise=0.5, random_state=0)
        model = fit_model(X[: args.n_train], y[: args.n_train], n_experts, args.max_iter)
        X = X[args.n_train :]
        r2 = model.score(X, y[args.n_train :])
        full = model.predict(X)
        top_ks = [k for k in args.top_k if k <= n_experts]
        fns = {"all": lambda: model.predict(X)}
        for top_k in top_ks:
            fns[top_k] = lambda top_k=top_k: model.predict(X, top_k=top_k)
        times = best_times(fns, args.repeats)
        t_all = times["all"]
        for top_k in top_ks:
            t_top = times[top_k]
            routed = model.predict(X, top_k=top_k)
            _, dropped = model.predict_gate(X, top_k=top_k, return_dropped=True)
            diff = routed - full
            rel_rms = np.sqrt(np.mean(diff**2)) / np.std(full)
            print(f"{n_experts:>4} {r2:>5.2f} {top_k:>5} {1e3 * t_all:>8.1f} "
                  f"{1e3 * t_top:>9.1f} {t_all / t_top:>8.2f} {dropped.mean():>13.2e} "
                  f"{dropped.max():>12.2e} {rel_rms:>13.2e} {np.abs(diff).max():>11.2e}")


if __name__ == "__main__":
    main()
