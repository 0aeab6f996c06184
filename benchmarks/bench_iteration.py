"""One EM iteration of a flat MoE regressor against the hardware floor.

Times each phase of one iteration (Boehning gate step) on the CPU backend, as
``run_em`` runs it (the first root step from the E-step's log-probabilities), and
prints it beside the floor measured in the same run: the K weighted Gram
matrices, ``K n (p+1)^2`` FLOPs at this machine's DGEMM rate, plus the E-step's
``2 n K`` exponentials at NumPy's ``exp`` rate.

Usage::

    python benchmarks/bench_iteration.py [--n-samples 1000000] [--n-features 20]
                                         [--n-experts 16] [--repeats 3]
"""

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from skmoe._em import _ROOT_BOHNING_STEPS, Model, Problem, Workspace
from skmoe._experts import GaussianExperts
from skmoe._gating import bohning_bound, softmax_m_step
from skmoe._kernels import get_backend
from skmoe._tree import GatingTree


def best_time(fn, repeats):
    """Best wall time of ``repeats`` calls, and the last result."""
    best, result = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def floors(n, p, K, repeats):
    """Seconds of the Gram FLOPs at the DGEMM rate and of 2 n K exponentials."""
    a = np.random.RandomState(0).normal(size=(2000, 2000))
    seconds, _ = best_time(lambda: a @ a, repeats)
    dgemm_rate = 2 * 2000**3 / seconds
    z = np.random.RandomState(1).normal(size=min(n * K, 4_000_000))
    exp_seconds, _ = best_time(lambda: np.exp(z), repeats)
    exp_rate = z.size / exp_seconds
    gram = K * n * p**2 / dgemm_rate
    exps = 2 * n * K / exp_rate
    return dgemm_rate, exp_rate, gram, exps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=20)
    parser.add_argument("--n-experts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    n, K = args.n_samples, args.n_experts
    p = args.n_features + 1
    rng = np.random.RandomState(0)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    w = np.ones(n)
    kernels = get_backend("cpu")
    model = Model(kernels=kernels, tree=GatingTree((K,)), experts=GaussianExperts(1e-6, 1e-6),
                  reg_gate=1e-6, gate_solver="bohning")
    problem = Problem(X, X, y, w)
    params = {"gates": [rng.normal(scale=0.1, size=(1, K, p))],
              "experts": {"coef": rng.normal(size=(K, p)), "var": np.ones(K)}}
    params["gates"][0][:, 0] = 0.0

    dgemm_rate, exp_rate, gram_floor, exp_floor = floors(n, p, K, args.repeats)
    with threadpool_limits(limits=1, user_api="blas"):
        root_bound = bohning_bound(kernels, X, w)
        model.e_step(params, problem)  # compile
        # As run_em: the E-step writes the responsibilities into its workspace
        # and computes the root's gradient for the M-step's first step.
        workspace = Workspace(kernels)
        e_step, (_, resp, root) = best_time(
            lambda: model.e_step(params, problem, keep_root=True, exponentiate=True,
                                 workspace=workspace), args.repeats)
        root_log_proba = model.gate_log_probs(params["gates"], X)[0]
        experts, _ = best_time(lambda: kernels.wls_stats(X, y, resp, w), args.repeats)
        m_experts, _ = best_time(lambda: model.experts.m_step(
            kernels, params["experts"], X, y, resp, w), args.repeats)
        targets, _ = model.tree.level_targets(resp, 0)
        gate_stats, _ = best_time(lambda: kernels.softmax_stats(
            X, params["gates"][0], w, None, targets, None, "gradient"), args.repeats)
        gate_from_proba, _ = best_time(
            lambda: kernels.softmax_gradient(X, root_log_proba, w, targets), args.repeats)
        gate_step, _ = best_time(lambda: softmax_m_step(
            kernels, X, params["gates"][0], w, targets=targets, reg=1e-6, solver="bohning",
            n_steps=_ROOT_BOHNING_STEPS, root_bound=root_bound, gradient=root.gradient),
            args.repeats)
        m_step, _ = best_time(lambda: model.m_step(params, problem, resp, root_bound=root_bound,
                                                   root_start=root),
                              args.repeats)
    iteration = e_step + m_step
    floor = gram_floor + exp_floor
    print(f"n={n}, p={p - 1} (+ intercept), K={K}, gate step: Boehning; best of {args.repeats}")
    print(f"DGEMM rate {dgemm_rate / 1e9:.1f} GFLOP/s, NumPy exp {exp_rate / 1e6:.0f} M/s")
    print(f"{'phase':44s} {'seconds':>9s}")
    for label, seconds in [
        ("E-step (gate, experts, resp., gate gradient)", e_step),
        ("expert M-step (statistics and solves)", m_experts),
        ("  of which statistics (wls_stats)", experts),
        (f"gate M-step ({_ROOT_BOHNING_STEPS} root steps, 1st from E-step)", gate_step),
        ("  of which one gradient pass", gate_stats),
        ("  one gradient pass from log-probabilities", gate_from_proba),
        ("one EM iteration (E + M)", iteration),
        ("floor: K Grams at DGEMM rate", gram_floor),
        ("floor: 2 n K exp at NumPy rate", exp_floor),
        ("floor: total", floor),
    ]:
        print(f"{label:44s} {seconds:9.3f}")
    print(f"iteration / floor: {iteration / floor:.2f}")


if __name__ == "__main__":
    main()
