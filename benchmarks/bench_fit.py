"""Fit time of MixtureOfExpertsRegressor, and the same fit in R's flexmix.

Synthetic gated data: p = 10 standard normal features, a softmax gate on all of
them, K = 4 Gaussian linear experts. For each n the script fits
``MixtureOfExpertsRegressor(n_experts=4, n_init=1, random_state=0)`` (default
``tol``, k-means initialisation) with each gate solver and prints the fit time,
the final log-likelihood, the EM iterations and the seconds per iteration.

When ``Rscript`` and the flexmix package are available, the n = 20 000 and
n = 50 000 data sets (by default) are written to a temporary CSV and fitted with::

    flexmix(y ~ ., data = d, k = 4, model = FLXMRglm(),
            concomitant = FLXPmultinom(~ x1 + ... + x10), cluster = <init>)

one start, default ``control`` (``iter.max = 200``, ``tolerance = 1e-6`` on the
relative change of the log-likelihood, ``minprior = 0.05``), timed inside R with
``system.time`` around the ``flexmix`` call only. The initial partition is, by
default, k-means (``kmeans(scale(d), 4, nstart = 1)`` on the standardised
(X, y), after ``set.seed(0)``), the same kind of start as skmoe's default
``init_params="kmeans"``; ``--flexmix-init random`` instead leaves ``cluster``
unset, so flexmix draws a random hard assignment itself.

Usage::

    python benchmarks/bench_fit.py            # n = 20k, 50k, 100k; flexmix at 20k, 50k
    python benchmarks/bench_fit.py --quick    # n = 2k, 5k: a smoke run of a few seconds
    python benchmarks/bench_fit.py --no-r     # skmoe only
    python benchmarks/bench_fit.py --repeat 1 # one skmoe fit per case (default: best of 3)

The machine is described at the top of the output (CPU model, cores, Numba and
BLAS threads, load average before and after): timings from a loaded machine
are not comparable with those from an idle one.
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import skmoe
from skmoe import MixtureOfExpertsRegressor

N_FEATURES = 10
N_EXPERTS = 4
NOISE = 0.5
SOLVERS = ("newton", "bohning")


# --------------------------------------------------------------------------
# Data


def make_gated_data(n_samples, n_features=N_FEATURES, n_experts=N_EXPERTS, seed=0):
    """Draw (X, y) from a mixture of linear experts with a softmax gate.

    X ~ N(0, I_p); the gate is softmax(V x + a) with V ~ N(0, 1) entries and
    a = 0; expert l is y = b_l + beta_l . x + 0.5 e with beta_l ~ N(0, 1),
    intercepts b_l spread over [-3, 3]. The parameters depend on ``seed`` only,
    not on ``n_samples``; the samples are drawn from a stream seeded by both.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    """
    params = np.random.RandomState(seed)
    gate = params.normal(size=(n_experts, n_features))
    beta = params.normal(size=(n_experts, n_features))
    intercept = np.linspace(-3.0, 3.0, n_experts)
    rng = np.random.RandomState([seed, n_samples])
    X = rng.normal(size=(n_samples, n_features))
    scores = X @ gate.T
    scores -= scores.max(axis=1, keepdims=True)
    prob = np.exp(scores)
    prob /= prob.sum(axis=1, keepdims=True)
    regime = (prob.cumsum(axis=1) > rng.uniform(size=(n_samples, 1))).argmax(axis=1)
    y = intercept[regime] + np.einsum("ij,ij->i", X, beta[regime])
    y += NOISE * rng.normal(size=n_samples)
    return X, y


# --------------------------------------------------------------------------
# skmoe


def _estimator(solver, **kwargs):
    return MixtureOfExpertsRegressor(
        n_experts=N_EXPERTS, n_init=1, random_state=0, gate_solver=solver, **kwargs
    )


def warm_up():
    """Compile every Numba kernel a fit uses (both solvers), on throw-away data.

    Two sizes: skmoe runs a serial build of its row kernels on small problems
    and a parallel build on large ones, and each is compiled on first use.
    """
    start = time.perf_counter()
    with warnings.catch_warnings():
        # A few iterations compile everything; they are not meant to converge.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for n in (2_000, 30_000):
            X, y = make_gated_data(n, seed=1)
            for solver in SOLVERS:
                _estimator(solver, max_iter=5).fit(X, y)
    return time.perf_counter() - start


def time_skmoe(X, y, solver, repeat=3):
    """Best of ``repeat`` fits: fit seconds, init seconds, LL, iterations, converged.

    The initialisation alone (validation, k-means, the first M-step and E-step)
    is what a fit with ``max_iter=0`` does, so it is timed that way. Every fit is
    seeded, so the repeats do the same work; the minimum is the least disturbed
    by other processes (as ``timeit`` does).
    """
    init_seconds, seconds = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        _estimator(solver, max_iter=0).fit(X, y)
        init_seconds.append(time.perf_counter() - start)
        start = time.perf_counter()
        moe = _estimator(solver).fit(X, y)
        seconds.append(time.perf_counter() - start)
    return {
        "seconds": min(seconds),
        "init_seconds": min(init_seconds),
        # The plain log-likelihood (no ridge term), comparable with flexmix's logLik.
        "loglik": moe.log_likelihood(X, y),
        "n_iter": moe.n_iter_,
        "converged": moe.converged_,
        "n_params": moe.n_parameters(),
    }


# --------------------------------------------------------------------------
# flexmix

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressPackageStartupMessages(library(flexmix))
d <- read.csv(args[1])
init <- args[2]
set.seed(0)
gate <- as.formula(paste("~", paste(setdiff(names(d), "y"), collapse = " + ")))
if (init == "kmeans") {
    cluster <- kmeans(scale(d), centers = 4, nstart = 1)$cluster
    tm <- system.time(m <- flexmix(y ~ ., data = d, k = 4, cluster = cluster,
                                   model = FLXMRglm(),
                                   concomitant = FLXPmultinom(gate)))
} else {
    tm <- system.time(m <- flexmix(y ~ ., data = d, k = 4, model = FLXMRglm(),
                                   concomitant = FLXPmultinom(gate)))
}
ll <- logLik(m)
cat(sprintf("RESULT %.6f %.10f %d %d %d %d\n", tm[["elapsed"]], as.numeric(ll),
            m@iter, as.integer(m@converged), m@k, attr(ll, "df")))
"""


def flexmix_status():
    """Return (True, version) if Rscript and flexmix are usable, else (False, why)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return False, "Rscript is not on the PATH"
    try:
        out = subprocess.run(
            [rscript, "-e", 'cat(as.character(packageVersion("flexmix")))'],
            capture_output=True, text=True, timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"Rscript could not be run ({exc})"
    if out.returncode != 0:
        return False, "the R package flexmix is not installed (install.packages('flexmix'))"
    r_version = subprocess.run(
        [rscript, "-e", "cat(R.version$major, R.version$minor, sep='.')"],
        capture_output=True, text=True, timeout=120,
    ).stdout.strip()
    return True, f"flexmix {out.stdout.strip()}, R {r_version}"


def time_flexmix(X, y, init, workdir):
    """Fit flexmix in a fresh Rscript; times and results are taken inside R."""
    path = os.path.join(workdir, f"gated_{X.shape[0]}.csv")
    header = ",".join(["y"] + [f"x{j + 1}" for j in range(X.shape[1])])
    np.savetxt(path, np.column_stack([y, X]), delimiter=",", header=header,
               comments="", fmt="%.17g")
    script = os.path.join(workdir, "fit_flexmix.R")
    with open(script, "w") as f:
        f.write(R_SCRIPT)
    out = subprocess.run(["Rscript", script, path, init], capture_output=True, text=True)
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
    if out.returncode != 0 or not line:
        raise RuntimeError(f"flexmix failed:\n{out.stdout}\n{out.stderr}")
    seconds, loglik, n_iter, converged, k, df = line[-1].split()[1:]
    return {"seconds": float(seconds), "loglik": float(loglik), "n_iter": int(n_iter),
            "converged": bool(int(converged)), "k": int(k), "df": int(df)}


# --------------------------------------------------------------------------
# Report


def machine_lines():
    """Lines describing the machine and the software versions."""
    cpu = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(s.split(":", 1)[1].strip() for s in out.splitlines()
                   if s.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    import numba
    import sklearn
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} ({i['num_threads']} threads)"
                     for i in threadpool_info() if i.get("user_api") == "blas") or "none"
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
            cwd=os.path.dirname(os.path.abspath(__file__)),
        ).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    return [
        f"date: {datetime.date.today().isoformat()}, skmoe commit {commit}",
        f"machine: {cpu}, {os.cpu_count()} logical CPUs; {platform.platform()}",
        f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}"
        f" ({numba.get_num_threads()} threads, threading layer {_threading_layer()}), "
        f"scikit-learn {sklearn.__version__}, skmoe {skmoe.__version__}",
        f"BLAS: {blas}",
    ]


def _threading_layer():
    """Numba's threading layer, once a parallel kernel has chosen it."""
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        return "not yet chosen"


def load_line(label):
    """Report the 1- and 5-minute load averages (a busy machine gives slower timings)."""
    one, five, _ = os.getloadavg()
    return f"load average {label}: {one:.2f} (1 min), {five:.2f} (5 min)"


def print_table(header, rows):
    """Print ``rows`` under ``header`` in right-aligned columns."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    print(fmt.format(*header))
    print(fmt.format(*("-" * w for w in widths)))
    for row in rows:
        print(fmt.format(*row))


def main(argv=None):
    """Parse the options, run the fits and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small n (2 000 and 5 000) for a smoke run")
    parser.add_argument("--no-r", action="store_true", help="skip the flexmix comparison")
    parser.add_argument("--repeat", type=int, default=3,
                        help="skmoe fits per case, the fastest is reported (default: 3); "
                             "flexmix runs once")
    parser.add_argument("--flexmix-init", choices=("kmeans", "random"), default="kmeans",
                        help="flexmix's initial partition (default: kmeans)")
    args = parser.parse_args(argv)

    if args.quick:
        sizes, r_sizes = (2_000, 5_000), (2_000, 5_000)
    else:
        sizes, r_sizes = (20_000, 50_000, 100_000), (20_000, 50_000)

    print("skmoe fit benchmark: MixtureOfExpertsRegressor, synthetic gated data")
    print(f"p={N_FEATURES} standard normal features, softmax gate on all of them, "
          f"K={N_EXPERTS} Gaussian linear experts (noise sd {NOISE})")
    print("skmoe: n_init=1, init_params='kmeans', tol=1e-6 (default), random_state=0")
    print(" ".join(["command: python"] + [os.path.relpath(sys.argv[0])] + sys.argv[1:]))
    print(load_line("at start"))
    warm_seconds = warm_up()
    for line in machine_lines():
        print(line)
    print(f"Numba warm-up (short fits per solver at n=2000 and n=30000, not timed below): "
          f"{warm_seconds:.1f} s")
    print()

    data = {n: make_gated_data(n) for n in sizes}
    results = {}
    rows = []
    for n in sizes:
        X, y = data[n]
        for solver in SOLVERS:
            r = time_skmoe(X, y, solver, repeat=max(args.repeat, 1))
            results[n, solver] = r
            # Never below zero, even if the fastest init came from a luckier moment.
            per_iter = max(r["seconds"] - r["init_seconds"], 0.0) / max(r["n_iter"], 1)
            rows.append([f"{n:,}", solver, f"{r['seconds']:.2f}", f"{r['init_seconds']:.2f}",
                         r["n_iter"], f"{1e3 * per_iter:.1f}", f"{r['loglik']:.3f}",
                         "yes" if r["converged"] else "no"])
    print(f"skmoe, best of {max(args.repeat, 1)} (fit = init + EM; "
          f"ms/iter = (fit - init) / iterations)")
    print_table(["n", "gate", "fit s", "init s", "iter", "ms/iter", "log-likelihood", "conv"],
                rows)
    print()

    if args.no_r:
        print("flexmix comparison skipped: --no-r was given.")
    else:
        available, info = flexmix_status()
        if not available:
            print(f"flexmix comparison skipped: {info}.")
        else:
            print(f"flexmix ({info}): flexmix(y ~ ., k=4, model=FLXMRglm(), "
                  f"concomitant=FLXPmultinom(~ x1 + ... + x10)), one start, default control, "
                  f"initial partition: "
                  + ("kmeans(scale(d), 4, nstart=1) after set.seed(0)"
                     if args.flexmix_init == "kmeans"
                     else "flexmix's own random assignment after set.seed(0)"))
            rows = []
            with tempfile.TemporaryDirectory(prefix="skmoe_bench_") as workdir:
                for n in r_sizes:
                    f = time_flexmix(*data[n], args.flexmix_init, workdir)
                    for solver in SOLVERS:
                        s = results[n, solver]
                        rows.append([
                            f"{n:,}", solver, f"{s['seconds']:.2f}", f"{s['loglik']:.3f}",
                            s["n_iter"], f"{f['seconds']:.2f}", f"{f['loglik']:.3f}",
                            f"{f['n_iter']}{'' if f['converged'] else '*'}", f["k"],
                            f"{f['seconds'] / s['seconds']:.1f}x",
                            f"{s['loglik'] - f['loglik']:+.3f}",
                        ])
            print_table(["n", "gate", "skmoe s", "skmoe LL", "iter", "flexmix s",
                         "flexmix LL", "iter", "k", "speed-up", "LL diff"], rows)
            print("speed-up = flexmix seconds / skmoe seconds; LL diff = skmoe - flexmix; "
                  "k = components flexmix kept; * = flexmix hit iter.max")
    print()
    print(load_line("at end"))


if __name__ == "__main__":
    main()
