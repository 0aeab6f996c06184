"""Cost of ``standard_errors`` against the fit it follows (flat MoE regressor, CPU).

For each shape the script fits ``MixtureOfExpertsRegressor(K, max_iter=20)`` on
the gated data of ``bench_fit.py`` and times ``fit`` and then
``standard_errors(X, y)`` on the same data (best of ``--repeat``). The
observed information costs about ``n D^2`` for D free parameters (gate plus
experts), the exact Newton gate step's order, computed in NumPy on the host.

Usage::

    python benchmarks/bench_inference.py [--repeat 3]
"""

import argparse
import os
import sys
import warnings

from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fit import make_gated_data  # noqa: E402
from bench_prepare import best_of  # noqa: E402

SHAPES = ((20_000, 4, 10), (100_000, 4, 10), (20_000, 16, 10), (20_000, 4, 50),
          (100_000, 16, 20))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print("| n | K | p | parameters | fit s (20 iterations) | standard_errors s | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, K, p in SHAPES:
        X, y = make_gated_data(n, n_features=p, n_experts=K)
        est = MixtureOfExpertsRegressor(K, random_state=0, max_iter=20)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)  # compile
            fit = best_of(args.repeat, lambda: est.fit(X, y))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # unidentified parameters, if any
            stderr = best_of(args.repeat, lambda: est.standard_errors(X, y))
        print(f"| {n} | {K} | {p} | {est.n_parameters()} | {fit:.3f} | {stderr:.3f} | "
              f"{stderr / fit:.2f} |")


if __name__ == "__main__":
    main()
