"""How fit time and memory scale with n, K and p (flat MoE regressor, CPU).

For each problem size the script times ``fit`` with ``max_iter=0`` (the
initialisation alone) and with ``max_iter=ITER`` and ``tol=0`` (every
iteration runs), and prints the seconds per EM iteration with the gate solver
that ``gate_solver="auto"`` picks, next to the other solver where it is cheap
enough to run. Per iteration, the Gram statistics cost ``K n p^2`` and the
exact Newton gate step ``K^2 n p^2 / 2``; "auto" switches to the Boehning step
above ``NEWTON_MAX_GATE_COEFS`` (320) free gate coefficients per node so that
large K and p do not pay the Newton price.

The last table is memory: the peak of the memory NumPy allocates during ``fit``
(``tracemalloc``, which NumPy reports to), against the size of X, at
n = 1e6, p = 20, K = 16. The target is at most 2 X plus O(n K).

Usage::

    python benchmarks/bench_scaling.py [--quick] [--iterations 5]
"""

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor
from skmoe._config import NEWTON_MAX_GATE_COEFS
from skmoe._gating import resolve_solver

# The sizes scanned: n at p = 10, K = 4; K and p at n = n_fixed; memory at (n, p, K).
FULL = {"n": [1_000, 10_000, 100_000, 1_000_000], "K": [2, 4, 8, 16, 32, 64],
        "p": [2, 5, 10, 20, 50, 100], "n_fixed": 100_000, "memory": (1_000_000, 20, 16)}
QUICK = {"n": [1_000, 10_000, 100_000], "K": [2, 4, 8, 16], "p": [2, 10, 20],
         "n_fixed": 10_000, "memory": (100_000, 20, 16)}


def make_data(n, p, K, seed=0):
    """Gated linear data: a softmax gate on all inputs, one linear expert per gate child."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, p))
    gate = rng.normal(size=(K, p))
    beta = rng.normal(size=(K, p))
    logits = X @ gate.T
    u = rng.uniform(size=(n, 1))
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    z = (np.cumsum(proba, axis=1) < u).sum(axis=1).clip(0, K - 1)
    y = np.einsum("ij,ij->i", X, beta[z]) + 0.3 * rng.normal(size=n)
    return X, y


def seconds_per_iteration(X, y, K, solver, iterations, repeats):
    """Best-of-``repeats`` seconds of the initialisation, and of one iteration after it."""
    def fit(max_iter):
        est = MixtureOfExpertsRegressor(K, gate_solver=solver, max_iter=max_iter, tol=0.0,
                                        random_state=0)
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never converges
                est.fit(X, y)
            best = min(best, time.perf_counter() - start)
        return best

    init = fit(0)
    return init, (fit(iterations) - init) / iterations


def scan(label, sizes, iterations, repeats, solvers_for):
    print(f"\n{label}")
    print("| n | p | K | solver | init s | s / iteration | us / (n K) |")
    print("|---:|---:|---:|---|---:|---:|---:|")
    for n, p, K in sizes:
        X, y = make_data(n, p, K)
        for solver in solvers_for(n, p, K):
            init, per_iter = seconds_per_iteration(X, y, K, solver, iterations, repeats)
            print(f"| {n} | {p} | {K} | {solver} | {init:.3f} | {per_iter:.4f} | "
                  f"{1e6 * per_iter / (n * K):.3f} |", flush=True)


def peak_memory(n, p, K, iterations):
    X, y = make_data(n, p, K)
    est = MixtureOfExpertsRegressor(K, max_iter=iterations, tol=0.0, random_state=0)
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    nK = n * K * 8
    print("\nPeak memory allocated during fit (tracemalloc)")
    print("| n | p | K | X MB | n K float64 MB | peak MB | peak / X | "
          "(peak - 2 X) / (n K float64) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n} | {p} | {K} | {X.nbytes / 1e6:.0f} | {nK / 1e6:.0f} | {peak / 1e6:.0f} | "
          f"{peak / X.nbytes:.2f} | {(peak - 2 * X.nbytes) / nK:.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many fits")
    args = parser.parse_args(argv)
    it, rep = args.iterations, args.repeats
    grid = QUICK if args.quick else FULL
    ns, Ks, ps, n_fixed = grid["n"], grid["K"], grid["p"], grid["n_fixed"]

    def auto_and_newton_if_cheap(n, p, K):
        auto = resolve_solver("auto", K, p + 1, NEWTON_MAX_GATE_COEFS)
        other = "newton" if auto == "bohning" else "bohning"
        # The Newton system has (K-1)(p+1) unknowns: past a few hundred it is
        # the slow path "auto" avoids, and is shown only while it is affordable.
        if other == "newton" and (K - 1) * (p + 1) > 400:
            return [auto]
        return [auto, other]

    scan("Scaling in n (p = 10, K = 4)", [(n, 10, 4) for n in ns], it, rep,
         auto_and_newton_if_cheap)
    scan(f"Scaling in K (n = {n_fixed}, p = 10)", [(n_fixed, 10, K) for K in Ks], it, rep,
         auto_and_newton_if_cheap)
    scan(f"Scaling in p (n = {n_fixed}, K = 4)", [(n_fixed, p, 4) for p in ps], it, rep,
         auto_and_newton_if_cheap)
    peak_memory(*grid["memory"], 2)


if __name__ == "__main__":
    main()
