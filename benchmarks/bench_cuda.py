"""The CUDA backend on a real GPU: checks against the CPU backend, then timings.

One script, so that one run on a (scarce) GPU machine checks and times
everything:

1. every CUDA kernel against the CPU backend on random data, and the ordered
   reductions bit for bit under three block sizes;
2. end-to-end fits (MoE and HME, regressor and classifier) with
   ``backend="cuda"`` against ``backend="cpu"`` from the same initialisation:
   final log-likelihood to 1e-8 relative, predictions to 1e-6;
3. one EM iteration (E-step and M-step, Boehning gate steps) at n=1e6, p=20,
   K=16 by phase, on the GPU and on the CPU backend;
4. a full fit at n=1e7 with each backend (``init_params="random"``, a fixed
   number of iterations so that both do the same work), and the fit's column
   scaling and design built on the host or on the device;
5. the fitted model's predictions at n=1e7 (mean, standard deviation, sparse
   route, gate, quantiles) and scores (log-densities, responsibilities, BIC)
   with each backend, and their differences.

Usage::

    PYTHONPATH=. python benchmarks/bench_cuda.py [--quick] [--fit-samples 10000000]
                                                 [--fit-iter 20] [--skip-fit] [--sweeps]

The tables are printed last; with ``$OUT`` set, they also go to
``$OUT/bench_cuda.txt``.
"""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _config,
)
from skmoe._em import _ROOT_BOHNING_STEPS, Model, Problem, Workspace
from skmoe._experts import GaussianExperts
from skmoe._gating import bohning_bound, softmax_m_step
from skmoe._kernels import get_backend
from skmoe._tree import GatingTree

LINES = []


def say(line=""):
    print(line, flush=True)
    LINES.append(line)


def rel(a, b):
    """Largest elementwise |a - b| over the largest |b| (1 if b is all zero)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(float(np.max(np.abs(b))), 1e-300) if b.size else 1.0
    return float(np.max(np.abs(a - b))) / scale if b.size else 0.0


def check_kernels(cpu, gpu, rng, n=20_000, p=7, K=6):
    """Each kernel on the GPU against the CPU backend; worst relative difference."""
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    w = rng.uniform(0.0, 2.0, size=n)
    resp = rng.dirichlet(np.ones(K), size=n)
    rows = []

    def run(name, fn):
        got, expected = fn(gpu), fn(cpu)
        if not isinstance(got, tuple):
            got, expected = (got,), (expected,)
        worst = max(rel(a, b) for a, b in zip(got, expected) if b is not None)
        rows.append((name, worst))

    coef = rng.normal(size=(2, 3, p))
    run("affine_log_softmax", lambda k: k.affine_log_softmax(X, coef, np.empty((n, 6))))
    c2, var = rng.normal(size=(K, p)), rng.uniform(0.1, 2.0, K)
    run("gaussian_log_prob", lambda k: k.gaussian_log_prob(X, y, c2, var, np.empty((n, K))))
    c3 = rng.normal(size=(K, 4, p))
    y_idx = rng.randint(4, size=n).astype(np.int64)
    run("categorical_log_prob",
        lambda k: k.categorical_log_prob(X, c3, y_idx, np.empty((n, K))))
    lp, ll = np.log(resp), rng.normal(size=resp.shape)
    run("posterior", lambda k: (k.posterior(lp, ll, w, out := np.empty_like(ll)), out))
    g1 = rng.normal(size=(1, K, p))
    lg = np.log(resp)
    Xe = np.ascontiguousarray(X[:, :4])
    c4 = rng.normal(size=(K, 4))
    for label, gate, design, ec in [("gate coef", g1, X, c2), ("gate known", None, X, c2),
                                    ("two designs", g1, Xe, c4)]:
        run(f"gaussian_posterior, {label}", lambda k, g=gate, d=design, e=ec: (
            k.gaussian_posterior(X, g, d, y, e, var, w, gl := lg.copy(),
                                 out := np.empty((n, K)), True), out, gl))
        # The same pass with the gate's gradient (the first gate step's).
        run(f"gaussian_posterior, gate gradient, {label}",
            lambda k, g=gate, d=design, e=ec: (lambda ll, grad: (ll, k.to_host(grad), out))(
                *k.gaussian_posterior(X, g, d, y, e, var, w, None if g is not None else lg,
                                      out := np.empty((n, K)), True, gate_gradient=True)))
    run("weighted_grams", lambda k: k.weighted_grams(X, resp * w[:, None]))
    run("wls_stats", lambda k: k.wls_stats(X, y, resp, w))
    gc = rng.normal(size=(2, 3, p))
    gc[:, 0] = 0.0
    mass = rng.uniform(size=(n, 2))
    targets = (rng.dirichlet(np.ones(3), size=(n, 2)) * mass[:, :, None]).reshape(n, 6)
    for curvature in [None, "gradient", "bohning", "newton"]:
        run(f"softmax_stats {curvature}",
            lambda k, c=curvature: k.softmax_stats(X, gc, w, mass, targets, None, c))
    run("softmax_stats one-hot newton",
        lambda k: k.softmax_stats(X, c3, w, resp, None, y_idx, "newton"))
    run("mix", lambda k: k.mix(lp, ll, np.empty(n)))
    run("linear_predictor", lambda k: k.linear_predictor(X, c2, np.empty((n, K))))
    run("prune_experts", lambda k: np.exp(k.to_host(  # exp: the pruned -inf are 0
        k.prune_experts(lp.copy(), np.array([1, K - 2])))))
    for top_k in (1, 3):
        run(f"top_k_gate, k={top_k}", lambda k, t=top_k: k.top_k_gate(
            lp, np.empty((n, t), dtype=np.int64), np.empty((n, t)), np.empty(n)))
    route = cpu.top_k_gate(lp, np.empty((n, 2), dtype=np.int64), np.empty((n, 2)), np.empty(0))
    run("gaussian_mix_moments",
        lambda k: k.gaussian_mix_moments(lp, ll, var, np.empty(n), np.empty(n)))
    run("gaussian_mix_sparse", lambda k: k.gaussian_mix_sparse(
        X, c2, var, route[0], route[1], np.empty(n), np.empty(n)))
    run("mix_categorical_sparse", lambda k: k.mix_categorical_sparse(
        X, c3, route[0], route[1], np.empty((n, 4))))
    levels_q = np.array([0.05, 0.5, 0.9])
    from scipy.special import ndtri

    run("gaussian_mix_quantiles", lambda k: k.gaussian_mix_quantiles(
        lp, ll, var, ndtri(levels_q), levels_q, np.empty((n, 3))))
    run("mix_categorical", lambda k: k.mix_categorical(X, c3, lp, np.empty((n, 4))))
    levels = [np.log(rng.dirichlet(np.ones(2), size=n)),
              np.log(rng.dirichlet(np.ones(2), size=(n, 2)).reshape(n, 4))]
    run("leaf_log_prior", lambda k: k.to_host(k.leaf_log_prior(
        [k.to_device(a) for a in levels], k.empty((n, 4)))))
    run("level_targets", lambda k: tuple(k.to_host(a) for a in k.level_targets(
        k.to_device(resp[:, :4] / resp[:, :4].sum(1, keepdims=True)), 2, 2, False)))
    raw = np.column_stack([rng.normal(size=n), 1e300 * rng.uniform(-1, 1, size=n),
                           np.full(n, 3.5), 5e307 + 1e306 * rng.uniform(size=n)])
    run("weighted_scaling", lambda k: k.weighted_scaling(raw, w))
    cols = np.array([3, 0, 1])
    centre, spread = cpu.weighted_scaling(raw, w)
    run("standardised_design", lambda k: k.to_host(k.standardised_design(
        raw, cols, centre[cols], spread[cols], 30.0)))

    # Ordered reductions: the block size must not change a single bit.
    bits = []
    for threads in (32, 128, 256):
        _config.THREADS_PER_BLOCK = threads
        bits.append((gpu.wls_stats(X, y, resp, w), gpu.softmax_stats(
            X, gc, w, mass, targets, None, "bohning"), gpu.posterior(lp, ll, w, np.empty_like(ll)),
            gpu.gaussian_posterior(X, g1, X, y, c2, var, w, np.empty((n, K)),
                                   np.empty((n, K))),
            gpu.to_host(gpu.gaussian_posterior(X, g1, X, y, c2, var, w, None, np.empty((n, K)),
                                               True, gate_gradient=True)[1])))
    _config.THREADS_PER_BLOCK = 128
    same = all(np.array_equal(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
               for other in bits[1:] for x, o in zip(bits[0], other)
               for a, b in zip(x if isinstance(x, tuple) else (x,),
                               o if isinstance(o, tuple) else (o,)))
    return rows, same


def check_fits(rng, n=20_000, max_iter=40):
    """backend="cuda" against backend="cpu" from the same initialisation."""
    X = rng.normal(size=(n, 4))
    y = np.where(X[:, 0] > 0, 1 + 2 * X[:, 1], -1 - X[:, 2]) + 0.3 * rng.normal(size=n)
    yc = (X[:, 0] * X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    y3 = np.digitize(X[:, 0] + X[:, 1] + 0.3 * rng.normal(size=n), [-0.7, 0.7])
    cases = [
        ("MoE regressor K=4", MixtureOfExpertsRegressor(4), y),
        ("MoE regressor K=8 bohning", MixtureOfExpertsRegressor(8, gate_solver="bohning"), y),
        ("HME regressor (2,2)", HierarchicalMixtureOfExpertsRegressor((2, 2)), y),
        ("HME regressor (2,2,2) tree", HierarchicalMixtureOfExpertsRegressor(
            (2, 2, 2), init_params="tree"), y),
        ("MoE classifier K=3", MixtureOfExpertsClassifier(3), yc),
        ("MoE classifier K=2, 3 classes", MixtureOfExpertsClassifier(2), y3),
        ("HME classifier (2,2)", HierarchicalMixtureOfExpertsClassifier((2, 2)), yc),
    ]
    rows = []
    for name, est, target in cases:
        est.set_params(max_iter=max_iter, tol=0.0, random_state=0)
        fitted = {}
        for backend in ("cpu", "cuda"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                model = est.set_params(backend=backend).fit(X, target)
                seconds = time.perf_counter() - start
            fitted[backend] = (model.lower_bound_, predictions(model, X), seconds,
                               scores(model, X, target))
        (ll_c, pred_c, t_c, ss_c), (ll_g, pred_g, t_g, ss_g) = fitted["cpu"], fitted["cuda"]
        rows.append((name, abs(ll_g - ll_c) / abs(ll_c),
                     max(rel(a, b) for a, b in zip(pred_g, pred_c)),
                     max(rel(a, b) for a, b in zip(ss_g, ss_c)), t_c, t_g))
    return rows


def scores(model, X, y):
    """The scoring methods' numbers: log-densities, responsibilities, criteria."""
    w = np.linspace(0.5, 2.0, X.shape[0])
    return [model.score_samples(X, y), model.predict_responsibilities(X, y),
            np.array([model.log_likelihood(X, y, w), model.bic(X, y), model.icl(X, y, w)])]


def predictions(model, X):
    """Every prediction method's numbers (the sparse routes included), as a list."""
    results = [model.predict_gate(X), *model.predict_gate(X, top_k=2, return_dropped=True)]
    if hasattr(model, "predict_proba"):
        return results + [model.predict_proba(X), model.predict_proba(X, top_k=2),
                          model.predict_log_proba(X)]
    return results + [*model.predict(X, return_std=True), model.predict(X, top_k=1),
                      *model.predict(X, return_std=True, top_k=2),
                      model.predict_quantiles(X, (0.05, 0.5, 0.9)), model.predict_experts(X)]


def time_predictions(model, X, y, repeats=2):
    """Prediction methods on large X with backend 'cuda' and 'cpu': best seconds, differences.

    The same fitted model predicts with either backend (``backend`` is read at
    each call). Quantiles run on the first tenth of the rows.
    """
    rows = {}
    tenth = X[: max(1, X.shape[0] // 10)]
    calls = [
        ("predict", lambda: model.predict(X)),
        ("predict(return_std=True)", lambda: model.predict(X, return_std=True)),
        ("predict(top_k=2)", lambda: model.predict(X, top_k=2)),
        ("predict_gate", lambda: model.predict_gate(X)),
        (f"predict_quantiles (3 levels, n={tenth.shape[0]})",
         lambda: model.predict_quantiles(tenth, (0.1, 0.5, 0.9))),
        ("score_samples(X, y)", lambda: model.score_samples(X, y)),
        ("predict_responsibilities(X, y)", lambda: model.predict_responsibilities(X, y)),
        ("bic(X, y)", lambda: np.array([model.bic(X, y)])),
    ]
    from skmoe._base import _validate

    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        _validate(model, X, reset=False, dtype=np.float64)
        seconds.append(time.perf_counter() - start)
    rows["(input validation alone, on the host)"] = (min(seconds), min(seconds), 0.0)
    for label, call in calls:
        best, results = {}, {}
        for backend in ("cuda", "cpu"):
            model.set_params(backend=backend)
            seconds = []
            for _ in range(repeats):
                start = time.perf_counter()
                results[backend] = call()
                seconds.append(time.perf_counter() - start)
            best[backend] = min(seconds)
        got, expected = results["cuda"], results["cpu"]
        if not isinstance(got, tuple):
            got, expected = (got,), (expected,)
        rows[label] = (best["cuda"], best["cpu"],
                       max(rel(a, b) for a, b in zip(got, expected)))
    model.set_params(backend="cuda")
    return rows


def time_it(fn, sync, repeats):
    """Median and best wall time of ``repeats`` calls (device synchronised)."""
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(np.min(times))


def iteration(backend, n, p, K, repeats, rng):
    """Phases of one EM iteration (flat MoE, Boehning gate steps) on one backend."""
    kernels = get_backend(backend)
    sync = kernels.cuda.synchronize if backend == "cuda" else (lambda: None)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p))])
    y = rng.normal(size=n)
    w = np.ones(n)
    model = Model(kernels=kernels, tree=GatingTree((K,)), experts=GaussianExperts(1e-6, 1e-6),
                  reg_gate=1e-6, gate_solver="bohning")
    problem = Problem(X, X, y, w).on(kernels)
    params = {"gates": [rng.normal(scale=0.1, size=(1, K, p + 1))],
              "experts": {"coef": rng.normal(size=(K, p + 1)), "var": np.ones(K)}}
    params["gates"][0][:, 0] = 0.0
    Xd, yd, wd = problem.X_gate, problem.target, problem.weight
    with threadpool_limits(limits=1, user_api="blas"):
        root_bound = bohning_bound(kernels, Xd, wd)
        _, log_resp = model.e_step(params, problem)  # compile
        resp = kernels.exp(log_resp, log_resp)
        model.m_step(params, problem, resp, root_bound=root_bound)
        targets, _ = model.tree.level_targets(resp, 0, kernels)
        # As in run_em, the E-steps write into the arrays of one workspace.
        workspace = Workspace(kernels)
        out = {}
        out["E-step (gate, experts, posterior)"] = time_it(
            lambda: model.e_step(params, problem, keep_root=True, exponentiate=True,
                                 workspace=workspace), sync, repeats)
        out["expert statistics (wls_stats)"] = time_it(
            lambda: kernels.wls_stats(Xd, yd, resp, wd), sync, repeats)
        out["expert M-step (statistics and solves)"] = time_it(
            lambda: model.experts.m_step(kernels, params["experts"], Xd, yd, resp, wd),
            sync, repeats)
        out["one gate gradient pass"] = time_it(
            lambda: kernels.softmax_stats(Xd, params["gates"][0], wd, None, targets, None,
                                          "gradient"), sync, repeats)
        out[f"gate M-step ({_ROOT_BOHNING_STEPS} Boehning steps)"] = time_it(
            lambda: softmax_m_step(kernels, Xd, params["gates"][0], wd, targets=targets,
                                   reg=1e-6, solver="bohning", n_steps=_ROOT_BOHNING_STEPS,
                                   root_bound=root_bound), sync, repeats)

        def one_iteration():
            # As run_em takes it: the E-step exponentiates, computes the root's
            # gradient for the M-step's first Boehning step in its pass, and its
            # log-likelihood is read once the M-step is queued.
            ll, r, root = model.e_step(params, problem, keep_root=True, exponentiate=True,
                                       workspace=workspace, deferred=True)
            model.m_step(params, problem, r, root_bound=root_bound, root_start=root)
            ll()

        out["one EM iteration (E + M)"] = time_it(one_iteration, sync, repeats)

        def one_iteration_new_arrays():
            ll, r, root = model.e_step(params, problem, keep_root=True, exponentiate=True,
                                       deferred=True)
            model.m_step(params, problem, r, root_bound=root_bound, root_start=root)
            ll()

        out["the same, new E-step arrays each time"] = time_it(one_iteration_new_arrays, sync,
                                                               repeats)
    return out


def captured_launch(gpu, name, call, factory=False):
    """A function that repeats the launch of ``gpu.<name>`` that ``call()`` makes, alone.

    The kernel (or, with ``factory``, every kernel the factory ``gpu.<name>``
    returns) is wrapped while ``call`` runs, so the configuration and the
    arguments are the public function's own, never a copy that goes stale.
    """
    original = getattr(gpu, name)
    seen = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, config):
            def launch(*args):
                seen.append((self.kernel, config, args))
                return self.kernel[config](*args)
            return launch

    setattr(gpu, name, (lambda *a: Recorder(original(*a))) if factory else Recorder(original))
    try:
        call()
    finally:
        setattr(gpu, name, original)
    kernel, config, args = seen[0]
    return lambda: kernel[config](*args)


def profile(n, p, K, repeats, rng, sweeps=False):
    """Each GPU kernel and the host's share at n, p, K; device arrays preallocated.

    With ``sweeps``, also the tuning constants' other values (the Gram's mma shapes,
    register caps, chunk and block sizes), each compiled anew.
    """
    gpu = get_backend("cuda")
    cuda = gpu.cuda
    sync = cuda.synchronize
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p))])
    Xd, yd, wd = gpu.to_device(X), gpu.to_device(rng.normal(size=n)), gpu.to_device(np.ones(n))
    gate = rng.normal(scale=0.1, size=(1, K, p + 1))
    gate[:, 0] = 0.0
    coef, var = rng.normal(size=(K, p + 1)), np.ones(K)
    log_prior, log_lik = gpu.empty((n, K)), gpu.empty((n, K))
    small = gpu.to_device(np.zeros(1))
    rows = {}
    rows["allocate an (n, K) device array"] = time_it(lambda: gpu.empty((n, K)), sync, repeats)
    rows["copy 8 bytes to the host"] = time_it(lambda: small.copy_to_host(), sync, repeats)
    rows["copy the gate coefficients to the device"] = time_it(
        lambda: gpu.to_device(gate), sync, repeats)
    rows["affine_log_softmax"] = time_it(
        lambda: gpu.affine_log_softmax(Xd, gate, log_prior), sync, repeats)
    rows["gaussian_log_prob"] = time_it(
        lambda: gpu.gaussian_log_prob(Xd, yd, coef, var, log_lik), sync, repeats)
    gpu.gaussian_log_prob(Xd, yd, coef, var, log_lik)
    rows["posterior (with its ordered sum)"] = time_it(
        lambda: gpu.posterior(log_prior, log_lik, wd, gpu.empty((n, K))), sync, repeats)
    rows["total (ordered sum of n values)"] = time_it(lambda: gpu.total(wd), sync, repeats)
    log_gate, fused_out = gpu.empty((n, K)), gpu.empty((n, K))

    def fused_e_step():
        return gpu.gaussian_posterior(Xd, gate, Xd, yd, coef, var, wd, log_gate, fused_out,
                                      True)

    def unfused_e_step():
        gpu.affine_log_softmax(Xd, gate, log_prior)
        gpu.gaussian_log_prob(Xd, yd, coef, var, log_lik)
        return gpu.posterior(log_prior, log_lik, wd, gpu.empty((n, K)), True)

    def fused_e_step_gradient():
        return gpu.gaussian_posterior(Xd, gate, Xd, yd, coef, var, wd, None, fused_out, True,
                                      gate_gradient=True)

    rows["E-step fused (gaussian_posterior)"] = time_it(fused_e_step, sync, repeats)
    rows["E-step fused, with the gate gradient"] = time_it(fused_e_step_gradient, sync,
                                                           repeats)
    rows["E-step in three kernels (affine, gaussian, posterior)"] = time_it(
        unfused_e_step, sync, repeats)
    resp = gpu.empty((n, K))
    gpu.posterior(log_prior, log_lik, wd, resp)
    gpu.exp(resp, resp)
    rows["exp (n, K) in place"] = time_it(lambda: gpu.exp(log_lik, log_lik), sync, repeats)
    rows["wls_stats"] = time_it(lambda: gpu.wls_stats(Xd, yd, resp, wd), sync, repeats)
    rows["softmax_stats gradient"] = time_it(
        lambda: gpu.softmax_stats(Xd, gate, wd, None, resp, None, "gradient"), sync, repeats)
    # GPU time alone (CUDA events) against wall time with the host's share.
    def gpu_ms(fn, reps=10):
        fn()
        start, stop = cuda.event(), cuda.event()
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        return start.elapsed_time(stop) / reps / 1e3

    # The kernels alone, launched exactly as the public functions launch them.
    gauss_raw = captured_launch(gpu, "_linear_experts_kernel",
                                lambda: gpu.gaussian_log_prob(Xd, yd, coef, var, log_lik))
    affine_raw = captured_launch(gpu, "_affine_log_softmax_kernel",
                                 lambda: gpu.affine_log_softmax(Xd, gate, log_prior))
    gram_raw = captured_launch(gpu, "_gram_kernel", lambda: gpu.wls_stats(Xd, yd, resp, wd),
                               factory=True)
    softmax_raw = captured_launch(
        gpu, "_softmax_kernel",
        lambda: gpu.softmax_stats(Xd, gate, wd, None, resp, None, "gradient"), factory=True)
    softmax_kernel = gpu._softmax_kernel(1, K, p + 1)
    e_step_raw = captured_launch(gpu, "_e_step_kernel", fused_e_step, factory=True)
    e_step_gradient_raw = captured_launch(gpu, "_e_step_kernel", fused_e_step_gradient,
                                          factory=True)

    for label, fn in [
        ("Gaussian kernel alone", gauss_raw),
        ("affine_log_softmax", lambda: gpu.affine_log_softmax(Xd, gate, log_prior)),
        ("gaussian_log_prob", lambda: gpu.gaussian_log_prob(Xd, yd, coef, var, log_lik)),
        ("wls_stats", lambda: gpu.wls_stats(Xd, yd, resp, wd)),
        ("softmax_stats gradient",
         lambda: gpu.softmax_stats(Xd, gate, wd, None, resp, None, "gradient")),
        ("empty kernel launch", lambda: gpu._exp_kernel[1, 32](small, log_prior.reshape(n * K))),
        ("empty kernel launch, direct",
         lambda: gpu._launch(gpu._exp_kernel, 1, 32, small, log_prior.reshape(n * K))),
        ("affine kernel alone", affine_raw),
        ("Gram kernel alone (wls)", gram_raw),
        ("softmax kernel alone (gradient)", softmax_raw),
        ("fused E-step kernel alone", e_step_raw),
        ("fused E-step kernel with the gate gradient alone", e_step_gradient_raw),
        ("cuda.synchronize", sync),
    ]:
        try:
            seconds = gpu_ms(fn)
        except Exception as exc:  # an experiment that does not build is reported, not fatal
            print(f"{label}: {type(exc).__name__}: {exc}", flush=True)
            continue
        rows[f"  {label}: events, stream back to back"] = (seconds, seconds)
    # Registers, local (spilled) and shared memory per thread of the hot kernels.
    built = {"_softmax_kernel": softmax_kernel,
             "_e_step_kernel": gpu._e_step_kernel(K, p + 1, p + 1, False, True),
             "_gram_kernel": gpu._gram_kernel(K, p + 1, True),
             "_sum_chunks_kernel": gpu._sum_chunks_kernel(gpu._SUM_COLS, gpu._SUM_LANES)}
    for kname in ("_affine_log_softmax_kernel", "_linear_experts_kernel", "_posterior_kernel",
                  "_gram_kernel", "_softmax_kernel", "_e_step_kernel", "_sum_chunks_kernel"):
        kernel = built[kname] if kname in built else getattr(gpu, kname)
        try:
            regs = kernel.get_regs_per_thread()
            local = kernel.get_local_mem_per_thread()
            print(f"{kname}: registers {regs}, local bytes {local}", flush=True)
        except Exception as exc:  # the simulator has no resource report
            print(f"{kname}: no resource report ({exc})", flush=True)
    if sweeps:
        # The Gram kernel's mma.sync shapes (the default last) and accumulator tiles a warp.
        defaults = gpu._MMA_SHAPE, gpu._GRAM_TILES
        for shape, tiles in [((8, 4), (5, 2)), ((16, 4), (3, 2)), ((16, 16), (3, 2)),
                             ((16, 8), (1, 2)), defaults]:
            gpu._MMA_SHAPE, gpu._GRAM_TILES = shape, tiles
            rows[f"  wls_stats, mma m{shape[0]}n8k{shape[1]}, {tiles} tiles a warp"] = time_it(
                lambda: gpu.wls_stats(Xd, yd, resp, wd), sync, repeats)
        gpu._MMA_SHAPE, gpu._GRAM_TILES = defaults
        # The fused E-step under register caps (the compiler's choice first).
        default_cap = gpu._E_STEP_MAX_REGISTERS
        for cap in (None, 64, 96, 128):
            gpu._E_STEP_MAX_REGISTERS = cap
            rows[f"  E-step fused, register cap {cap}"] = time_it(fused_e_step, sync, repeats)
        gpu._E_STEP_MAX_REGISTERS = default_cap
        # The two reductions under other chunk sizes and block sizes (the defaults first).
        defaults = (_config.CUDA_CHUNK_SIZE, _config.THREADS_PER_BLOCK)
        for chunk, threads in [(256, 128), (4096, 128), (1024, 64), (1024, 256)]:
            _config.CUDA_CHUNK_SIZE, _config.THREADS_PER_BLOCK = chunk, threads
            rows[f"  wls_stats, chunk {chunk}, {threads} threads"] = time_it(
                lambda: gpu.wls_stats(Xd, yd, resp, wd), sync, max(3, repeats // 4))
            rows[f"  softmax_stats gradient, chunk {chunk}, {threads} threads"] = time_it(
                lambda: gpu.softmax_stats(Xd, gate, wd, None, resp, None, "gradient"), sync,
                max(3, repeats // 4))
        _config.CUDA_CHUNK_SIZE, _config.THREADS_PER_BLOCK = defaults
    partial = gpu.to_device(rng.normal(size=(n // _config.CUDA_CHUNK_SIZE,
                                              K * (p + 3) * (p + 4) // 2)))
    rows["ordered sum of the Gram partials alone"] = time_it(
        lambda: gpu._sum_chunks(partial), sync, repeats)
    root_bound = bohning_bound(gpu, Xd, wd)
    cpu = get_backend("cpu")
    tiny = np.full((2, K), 1.0 / K)
    with threadpool_limits(limits=1, user_api="blas"):
        rows["host part of 5 Boehning steps"] = time_it(lambda: softmax_m_step(
            cpu, X[:2], gate, np.ones(2), targets=tiny, reg=1e-6, solver="bohning", n_steps=5,
            root_bound=root_bound), sync, repeats)
        experts = GaussianExperts(1e-6, 1e-6)
        rows["host part of the expert M-step"] = time_it(lambda: experts.m_step(
            cpu, {"coef": coef, "var": var}, X[:2], np.zeros(2), tiny, np.ones(2)),
            sync, repeats)
    return rows


def preparation(X, w, repeats=3):
    """A fit's finiteness check, column scaling and design, with the copy: host vs device.

    Before, these ran on the host and the design was copied over; now X is
    copied and they run on the device. Best of ``repeats``.
    """
    cpu, gpu = get_backend("cpu"), get_backend("cuda")
    every = np.arange(X.shape[1])
    rows = {}

    def on_host():
        cpu.all_finite(X)
        mean, scale = cpu.weighted_scaling(X, w)
        return gpu.to_device(cpu.standardised_design(X, every, mean, scale, 1e3))

    def on_device():
        X_data, w_data = gpu.to_device(X), gpu.to_device(w)
        gpu.all_finite(X_data)
        mean, scale = gpu.weighted_scaling(X_data, w_data)
        return gpu.standardised_design(X_data, every, mean, scale, 1e3)

    def device_kernels(X_data, w_data):
        gpu.all_finite(X_data)
        mean, scale = gpu.weighted_scaling(X_data, w_data)
        return gpu.standardised_design(X_data, every, mean, scale, 1e3)

    sync = gpu.cuda.synchronize
    rows["host check, scaling and design, then the design copied"] = time_it(on_host, sync, repeats)
    rows["X copied, check, scaling and design on the device"] = time_it(on_device, sync, repeats)
    X_data, w_data = gpu.to_device(X), gpu.to_device(w)
    rows["   of which the kernels"] = time_it(
        lambda: device_kernels(X_data, w_data), sync, repeats)
    # The two scalings agree to rounding, so the designs do too (not bit for bit).
    return rows, rel(gpu.to_host(on_device()), gpu.to_host(on_host()))


def full_fit(backend, X, y, max_iter):
    est = MixtureOfExpertsRegressor(16, init_params="random", max_iter=max_iter, tol=0.0,
                                    gate_solver="bohning", random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - start
    return seconds, est


def profile_fit(X, y, max_iter, top=30):
    """The GPU fit under cProfile: the functions that take the most time, with callees."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(full_fit, "cuda", X, y, max_iter)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    print(text.getvalue(), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--iter-samples", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--fit-samples", type=int, default=10_000_000)
    parser.add_argument("--fit-iter", type=int, default=20)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--profile-fit", action="store_true",
                        help="also print a cProfile of the GPU fit")
    parser.add_argument("--skip-cpu-iteration", action="store_true")
    parser.add_argument("--sweeps", action="store_true",
                        help="also time the tuning constants' other values")
    parser.add_argument("--skip-checks", action="store_true",
                        help="timings only (no kernel and fit checks)")
    args = parser.parse_args(argv)
    if args.quick:
        args.iter_samples, args.fit_samples, args.repeats = 50_000, 200_000, 3
    rng = np.random.RandomState(0)
    cpu, gpu = get_backend("cpu"), get_backend("cuda")
    import numba

    name = getattr(gpu.cuda.get_current_device(), "name", "CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else name
    header = (f"device: {name}; numpy {np.__version__}, numba {numba.__version__}, "
              f"cuda module {gpu.cuda.__name__} ({getattr(gpu.cuda, 'implementation', '?')}), "
              f"python {platform.python_version()}, {os.cpu_count()} CPUs; "
              f"np.row_stack shim applied: {gpu.NUMPY_SHIM_APPLIED}")
    print(header, flush=True)

    kernel_rows, same_bits, fit_rows = [], True, []
    if not args.skip_checks:
        start = time.perf_counter()
        kernel_rows, same_bits = check_kernels(cpu, gpu, rng)
        print(f"kernel checks (compilation included): {time.perf_counter() - start:.1f} s",
              flush=True)
        fit_rows = check_fits(rng)
        print("fit checks done", flush=True)

    n, p, K = args.iter_samples, 20, 16
    kernel_times = profile(n, p, K, args.repeats, rng, args.sweeps)
    gpu_iter = iteration("cuda", n, p, K, args.repeats, rng)
    cpu_iter = (None if args.skip_cpu_iteration
                else iteration("cpu", n, p, K, max(2, args.repeats // 10), rng))
    print("iteration timings done", flush=True)

    fit = None
    if not args.skip_fit:
        N = args.fit_samples
        X = rng.normal(size=(N, p))
        y = X[:, 0] * np.sign(X[:, 1]) + 0.1 * rng.normal(size=N)
        prep_rows, prep_diff = preparation(X, np.ones(N))
        print("preparation timings done", flush=True)
        t_gpu, est_gpu = full_fit("cuda", X, y, args.fit_iter)
        t_gpu2, _ = full_fit("cuda", X, y, args.fit_iter)
        print(f"GPU fit done: {t_gpu:.1f} s, again {t_gpu2:.1f} s", flush=True)
        # What a fit costs before EM's first iteration (validation, designs, start).
        t_gpu0, _ = full_fit("cuda", X, y, 0)
        if args.profile_fit:
            profile_fit(X, y, args.fit_iter)
        t_cpu, est_cpu = full_fit("cpu", X, y, args.fit_iter)
        t_cpu0, _ = full_fit("cpu", X, y, 0)
        predict_rows = time_predictions(est_gpu, X, y)
        print("prediction timings done", flush=True)
        fit = (N, t_cpu, min(t_gpu, t_gpu2), est_cpu.lower_bound_, est_gpu.lower_bound_,
               t_cpu0, t_gpu0, prep_rows, prep_diff, predict_rows)

    say(header)
    say()
    say("1. CUDA kernels against the CPU backend (n=20000, p=7, K=6)")
    say(f"{'kernel':36s} {'max rel diff':>13s}")
    for kname, worst in kernel_rows:
        say(f"{kname:36s} {worst:13.2e}")
    say(f"ordered reductions identical for 32, 128 and 256 threads per block: {same_bits}")
    say()
    say("2. Fits, backend='cuda' vs 'cpu', same initialisation (n=20000, p=4, 40 iterations)")
    say(f"{'estimator':32s} {'LL rel diff':>12s} {'pred diff':>10s} {'scores diff':>12s} "
        f"{'cpu s':>7s} {'cuda s':>7s}")
    for row in fit_rows:
        say(f"{row[0]:32s} {row[1]:12.2e} {row[2]:10.2e} {row[3]:12.2e} {row[4]:7.2f} "
            f"{row[5]:7.2f}")
    ok = all(r[1] <= 1e-8 and r[2] <= 1e-6 for r in fit_rows)
    if fit:
        ok = ok and all(diff <= 1e-6 for _, _, diff in fit[-1].values())
    say(f"all within LL 1e-8 and predictions 1e-6: {ok}")
    say()
    say(f"3. One EM iteration, n={n}, p={p} (+ intercept), K={K}, Boehning gate; "
        f"median (best) of {args.repeats} on the GPU")
    say(f"{'phase':44s} {'GPU ms':>16s} {'CPU ms':>10s}")
    for phase, (median, best) in gpu_iter.items():
        cpu_ms = f"{cpu_iter[phase][0] * 1e3:10.1f}" if cpu_iter else f"{'-':>10s}"
        say(f"{phase:44s} {median * 1e3:8.3f} ({best * 1e3:6.3f}) {cpu_ms}")
    say()
    say(f"   GPU kernels at n={n}, p={p} (+ intercept), K={K}: median (best) ms")
    for kname, (median, best) in kernel_times.items():
        say(f"   {kname:42s} {median * 1e3:8.3f} ({best * 1e3:6.3f})")
    if cpu_iter:
        total = "one EM iteration (E + M)"
        say(f"iteration speed-up GPU over CPU: {cpu_iter[total][0] / gpu_iter[total][0]:.0f}x")
    if fit:
        N, t_cpu, t_gpu, ll_cpu, ll_gpu, t_cpu0, t_gpu0, prep_rows, prep_diff, predict_rows = fit
        say()
        say(f"4. Full fit, n={N}, p={p}, K=16, init_params='random', {args.fit_iter} "
            f"iterations (tol=0), Boehning gate")
        say(f"backend='cpu' ({os.cpu_count()} CPUs): {t_cpu:8.2f} s   "
            f"backend='cuda': {t_gpu:8.2f} s   speed-up {t_cpu / t_gpu:.1f}x   "
            f"LL rel diff {abs(ll_gpu - ll_cpu) / abs(ll_cpu):.1e}")
        say(f"of which before the first iteration (a fit with max_iter=0): cpu {t_cpu0:.2f} s, "
            f"cuda {t_gpu0:.2f} s")
        say(f"   the finiteness check, scaling and design at n={N}, p={p}, best of 3 (s):")
        for phase, (median, best) in prep_rows.items():
            say(f"   {phase:52s} {best:7.3f}")
        say(f"   designs' largest difference, relative: {prep_diff:.1e}")
        say()
        say(f"5. Predictions and scores of the fitted model on its n={N} training data, best of 2 "
            f"(seconds, input validation and copies included)")
        say(f"{'method':44s} {'cuda s':>8s} {'cpu s':>8s} {'speed-up':>9s} {'rel diff':>9s}")
        for label, (t_g, t_c, diff) in predict_rows.items():
            say(f"{label:44s} {t_g:8.3f} {t_c:8.3f} {t_c / t_g:8.1f}x {diff:9.1e}")
    out = os.environ.get("OUT")
    if out:
        with open(os.path.join(out, "bench_cuda.txt"), "w") as fh:
            fh.write("\n".join(LINES) + "\n")
    return 0 if ok and same_bits else 1


if __name__ == "__main__":
    sys.exit(main())
