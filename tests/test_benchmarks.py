"""The benchmark scripts still run, on tiny sizes (their numbers are not checked).

A benchmark that no longer runs is found only when someone needs its table:
``bench_scaling.py`` broke that way once, on a changed internal signature. Each
script's ``main`` runs here in process with its smallest arguments, or with
its size constants patched small. ``bench_hme.py`` (the shared data sets),
``bench_startup.py`` (fresh interpreters and a cold Numba cache) and
``bench_cuda.py`` (a GPU, or the simulator that ``tests/test_cuda.py`` sets up)
are only imported.
"""

import importlib
import sys
import warnings
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

RUNS = {
    "bench_fit": ["--quick", "--no-r", "--repeat", "1"],
    "bench_iteration": ["--n-samples", "3000", "--n-features", "3", "--n-experts", "3",
                        "--repeats", "1"],
    "bench_prepare": ["--samples", "3000", "--repeats", "1"],
    "bench_routing": ["--n-samples", "2000", "--experts", "4", "--top-k", "1",
                      "--n-train", "1000", "--max-iter", "2", "--repeats", "1"],
    "bench_solvers": ["--quick"],
    "bench_scaling": ["--quick", "--iterations", "1", "--repeats", "1"],
    "bench_inference": ["--repeat", "1"],
    "bench_row_groups": ["--repeat", "1"],
}
# Constants that set a script's sizes, patched small for the run.
TINY = {
    "bench_solvers": {"QUICK_CASES": [(1_500, 3, 3)]},
    "bench_scaling": {"QUICK": {"n": [1_000], "K": [2, 3], "p": [2], "n_fixed": 1_000,
                                "memory": (1_000, 3, 2)}},
    "bench_inference": {"SHAPES": ((1_500, 2, 3),)},
    "bench_row_groups": {"SIZES": (2_000,)},
}
IMPORT_ONLY = ["bench_hme", "bench_startup"]


@pytest.fixture
def benchmarks_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))


def test_every_script_is_covered():
    scripts = {path.stem for path in BENCHMARKS.glob("bench_*.py")}
    assert scripts == set(RUNS) | set(IMPORT_ONLY) | {"bench_cuda"}


@pytest.mark.parametrize("name", list(RUNS))
def test_benchmark_runs(name, benchmarks_on_path, monkeypatch, capsys):
    module = importlib.import_module(name)
    for constant, value in TINY.get(name, {}).items():
        monkeypatch.setattr(module, constant, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module.main(RUNS[name])
    assert len(capsys.readouterr().out.splitlines()) >= 3  # a table was printed


@pytest.mark.parametrize("name", IMPORT_ONLY)
def test_benchmark_imports(name, benchmarks_on_path):
    assert callable(importlib.import_module(name).main)
    sys.modules.pop(name, None)
