"""Start-up: import skmoe and fit a small model, with a cold and a warm Numba cache.

Each run is a fresh Python process that imports skmoe, fits
``MixtureOfExpertsRegressor(n_experts=2)`` on 500 x 3 data and predicts. The
first run uses an empty Numba cache directory (``NUMBA_CACHE_DIR``), so every
kernel compiles; the next runs find the cache warm.

Usage::

    python benchmarks/bench_startup.py [--warm-runs 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

_SCRIPT = """
import json, time
start = time.perf_counter()
import numpy as np
from skmoe import MixtureOfExpertsRegressor
imported = time.perf_counter()
rng = np.random.RandomState(0)
X = rng.normal(size=(500, 3))
y = np.where(X[:, 0] > 0, X[:, 1], -X[:, 2]) + 0.1 * rng.normal(size=500)
MixtureOfExpertsRegressor(2, random_state=0).fit(X, y).predict(X)
done = time.perf_counter()
print(json.dumps([imported - start, done - imported]))
"""


def run(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args(argv)
    print("| Numba cache | import s | first fit + predict s | total s |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache_dir:
        for label in ["cold"] + ["warm"] * args.warm_runs:
            imported, fitted = run(cache_dir)
            print(f"| {label} | {imported:.2f} | {fitted:.2f} | {imported + fitted:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
