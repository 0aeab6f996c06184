"""Small fits on the caller's thread or on the thread pool: where the pool starts to pay.

The CPU kernels split the rows into groups of ``CHUNK_SIZE * GROUP_CHUNKS`` rows
and hand them to Numba's threads only from ``_config.PARALLEL_MIN_GROUPS`` groups
on. For each n this script fits ``MixtureOfExpertsRegressor(4, n_init=1,
random_state=0)`` on the gated data of ``bench_fit.py`` (p = 10) with every
group on the caller's thread and with the pool from two groups on (the
threshold patched for the comparison), best of ``--repeat`` fits each. The
results are the same bit for bit (the groups do not depend on the threads);
only the time differs.

Usage::

    python benchmarks/bench_row_groups.py [--repeat 5]
"""

import argparse
import os
import sys
import time
import warnings

import numba
from sklearn.exceptions import ConvergenceWarning

from skmoe import MixtureOfExpertsRegressor, _config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fit import make_gated_data  # noqa: E402

SIZES = (20_000, 35_000, 50_000, 60_000, 100_000, 150_000)


def best_fit(X, y, min_groups, repeat):
    """Best seconds of ``repeat`` fits with the pool from ``min_groups`` groups on."""
    saved = _config.PARALLEL_MIN_GROUPS
    _config.PARALLEL_MIN_GROUPS = min_groups
    try:
        est = MixtureOfExpertsRegressor(4, n_init=1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)  # compile
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                est.fit(X, y)
                times.append(time.perf_counter() - start)
    finally:
        _config.PARALLEL_MIN_GROUPS = saved
    return min(times), est.lower_bound_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rows = _config.CHUNK_SIZE * _config.GROUP_CHUNKS
    print(f"{numba.get_num_threads()} Numba threads; {rows} rows per group; "
          f"PARALLEL_MIN_GROUPS = {_config.PARALLEL_MIN_GROUPS}")
    print("| n | groups | one thread s | pool s | one thread / pool | same result |")
    print("|---:|---:|---:|---:|---:|---|")
    for n in SIZES:
        X, y = make_gated_data(n)
        serial, ll_serial = best_fit(X, y, 1 << 30, args.repeat)
        pooled, ll_pooled = best_fit(X, y, 2, args.repeat)
        print(f"| {n:,} | {-(-n // rows)} | {serial:.3f} | {pooled:.3f} | "
              f"{serial / pooled:.2f} | {ll_serial == ll_pooled} |", flush=True)


if __name__ == "__main__":
    main()
