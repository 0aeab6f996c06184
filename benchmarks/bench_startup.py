"""Start-up: import skmoe and fit a small model, with a cold and a warm Numba cache.

Each run is a fresh Python process that imports skmoe, fits
``MixtureOfExpertsRegressor(n_experts=2)`` on 500 x 3 data and predicts. The
first run uses an empty Numba cache directory (``NUMBA_CACHE_DIR``), so every
kernel compiles; the next runs find the cache warm. A last line times what the
dependencies alone cost in a fresh process (the floor of a warm start).
skmoe's sources are byte-compiled first, as installing the package does, so
that no run spends time compiling them (an editable install would, at every
import, where ``PYTHONDONTWRITEBYTECODE`` is set: about 0.05 s).

Usage::

    python benchmarks/bench_startup.py [--warm-runs 3]
"""

import argparse
import compileall
import importlib.util
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


# What skmoe's dependencies alone cost in a fresh process: the imports a first fit
# needs (scikit-learn's base and k-means, Numba) and Numba's first call of a cached
# function (which sets up its typing and target contexts).
_DEPENDENCIES = """
import json, time
start = time.perf_counter()
import numpy as np
import sklearn.base
import sklearn.cluster
import numba
imported = time.perf_counter()
numba.njit(cache=True)(lambda x: x + 1.0)(1.0)
done = time.perf_counter()
print(json.dumps([imported - start, done - imported]))
"""


def run(cache_dir, script=_SCRIPT):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    # From a file: Numba caches only functions whose source file it can find.
    path = os.path.join(cache_dir, "startup_script.py")
    with open(path, "w") as f:
        f.write(script)
    out = subprocess.run([sys.executable, path], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def byte_compile_skmoe():
    """Write the ``.pyc`` files of the skmoe that the runs import."""
    for path in importlib.util.find_spec("skmoe").submodule_search_locations:
        compileall.compile_dir(path, quiet=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    args = parser.parse_args(argv)
    byte_compile_skmoe()
    print("| Numba cache | import s | first fit + predict s | total s |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as cache_dir:
        for label in ["cold"] + ["warm"] * args.warm_runs:
            imported, fitted = run(cache_dir)
            print(f"| {label} | {imported:.2f} | {fitted:.2f} | {imported + fitted:.2f} |",
                  flush=True)
        run(cache_dir, _DEPENDENCIES)  # warms the cache of the one-line function
        imported, called = run(cache_dir, _DEPENDENCIES)
        print(f"| dependencies alone, warm (scikit-learn, Numba, one cached call) "
              f"| {imported:.2f} | {called:.2f} | {imported + called:.2f} |")


if __name__ == "__main__":
    main()
