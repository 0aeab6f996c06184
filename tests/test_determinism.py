"""Results do not depend on the number of threads (ordered chunk reductions)."""

import json
import os
import subprocess
import sys

import numpy as np

_SCRIPT = """
import json, sys
import numpy as np
from skmoe import _config, MixtureOfExpertsClassifier, MixtureOfExpertsRegressor
_config.CHUNK_SIZE = 64            # several chunks and groups per reduction
_config.MIN_BLOCK_ROWS = 16        # several blocks per group
_config.PARALLEL_MIN_GROUPS = 2    # the thread pool, even on small data
rng = np.random.RandomState(0)
X = rng.normal(size=(1000, 3))
y = np.where(X[:, 0] > 0, 1 + 2 * X[:, 1], -1 - X[:, 2]) + 0.3 * rng.normal(size=1000)
labels = (y > 0).astype(int)
out = {}
for solver in ["newton", "bohning"]:
    reg = MixtureOfExpertsRegressor(3, gate_solver=solver, max_iter=30, random_state=0).fit(X, y)
    clf = MixtureOfExpertsClassifier(2, gate_solver=solver, max_iter=30, random_state=0)
    clf.fit(X, labels)
    out[solver] = [reg.lower_bounds_.tolist(), reg.predict(X).tolist(),
                   clf.lower_bounds_.tolist(), clf.predict_proba(X).ravel().tolist()]
json.dump(out, sys.stdout)
"""


def _run(n_threads):
    env = {**os.environ, "NUMBA_NUM_THREADS": str(n_threads), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout)


def test_one_and_two_threads_give_identical_fits():
    one, two = _run(1), _run(2)
    for solver in one:
        for a, b in zip(one[solver], two[solver]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
