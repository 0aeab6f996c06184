"""Whole fits with each gate solver: what ``gate_solver="auto"`` is chosen on.

For each shape (n, p, K) of the synthetic gated data of ``bench_fit.py``, fits
``MixtureOfExpertsRegressor(K, n_init=1, random_state=0, max_iter=1000)`` (k-means
start, default ``tol``) with Newton gate steps, with Boehning steps as skmoe takes
them (over-relaxed, 1.8 times the minoriser's maximiser) and with plain Boehning
steps (factor 1, patched for this comparison only), and prints iterations,
seconds and the final penalised log-likelihood (``lower_bound_``, with the
default ridge of 1e-6) of each. One fit per cell after a
compiling warm-up; "auto" picks Newton up to ``_config.NEWTON_MAX_GATE_COEFS``
free gate coefficients, (K - 1)(p + 1).

Usage::

    python benchmarks/bench_solvers.py [--quick]
"""

import argparse
import os
import sys
import time
import warnings

from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor, _config, _gating
from skmoe._gating import resolve_solver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fit import make_gated_data  # noqa: E402

CASES = [(20_000, 10, 2), (20_000, 10, 4), (50_000, 10, 4), (20_000, 3, 8), (50_000, 10, 8),
         (20_000, 40, 4), (20_000, 80, 4), (20_000, 5, 16), (20_000, 10, 16), (20_000, 20, 16),
         (50_000, 20, 16), (20_000, 40, 8), (20_000, 5, 32), (20_000, 10, 32), (20_000, 20, 32)]
QUICK_CASES = [(5_000, 5, 4), (5_000, 10, 16)]


def fit(X, y, n_experts, solver, relaxation):
    """Seconds, iterations and log-likelihood of one fit."""
    saved = _gating._BOHNING_RELAXATION
    _gating._BOHNING_RELAXATION = relaxation
    try:
        est = MixtureOfExpertsRegressor(n_experts, n_init=1, random_state=0, max_iter=1000,
                                        gate_solver=solver)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            est.fit(X, y)
            seconds = time.perf_counter() - start
    finally:
        _gating._BOHNING_RELAXATION = saved
    return seconds, est.n_iter_, est.lower_bound_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small shapes (a smoke run)")
    args = parser.parse_args(argv)
    cases = QUICK_CASES if args.quick else CASES
    X, y = make_gated_data(2_000, n_features=3, n_experts=2)
    for solver in ["newton", "bohning"]:  # compile
        fit(X, y, 2, solver, 1.0)
    print(f"auto: Newton up to {_config.NEWTON_MAX_GATE_COEFS} free gate coefficients; "
          f"Boehning steps over-relaxed by {_gating._BOHNING_RELAXATION}")
    print("| n | p | K | coefs | auto | Newton iter | s | log-lik | Boehning iter | s | log-lik "
          "| plain Boehning iter | s | log-lik | Newton s / Boehning s |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, p, K in cases:
        X, y = make_gated_data(n, n_features=p, n_experts=K)
        coefs = (K - 1) * (p + 1)
        auto = resolve_solver("auto", K, p + 1, _config.NEWTON_MAX_GATE_COEFS)
        newton = fit(X, y, K, "newton", _gating._BOHNING_RELAXATION)
        relaxed = fit(X, y, K, "bohning", _gating._BOHNING_RELAXATION)
        plain = fit(X, y, K, "bohning", 1.0)
        cells = [f"{n:,}", p, K, coefs, auto]
        for seconds, n_iter, loglik in [newton, relaxed, plain]:
            cells += [n_iter, f"{seconds:.2f}", f"{loglik:.2f}"]
        cells.append(f"{newton[0] / relaxed[0]:.2f}")
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
