"""Run every gallery example (examples/plot_*.py) as a script, in process.

The examples need matplotlib (in the ``test`` and ``docs`` extras); without it they are skipped,
saying so. The Agg backend is forced so that no window opens and ``plt.show()``
returns at once.
"""

import os
import runpy
import warnings
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("plot_*.py"))


@pytest.fixture
def agg_backend(monkeypatch):
    """Select matplotlib's non-interactive Agg backend and close figures afterwards."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    pytest.importorskip(
        "matplotlib", reason="the examples need matplotlib (in the 'test' and 'docs' extras)"
    )
    import matplotlib
    import matplotlib.pyplot as plt

    matplotlib.use("Agg", force=True)
    yield
    plt.close("all")


def test_examples_found():
    """The gallery is not empty (a wrong path would skip every example silently)."""
    assert EXAMPLES, f"no examples/plot_*.py under {EXAMPLES_DIR}"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, agg_backend, monkeypatch):
    """The example runs to the end without errors or warnings of its own."""
    monkeypatch.chdir(path.parent)
    with warnings.catch_warnings():
        # An example should not need to hide anything from its reader.
        warnings.simplefilter("error", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
        runpy.run_path(os.fspath(path), run_name="__main__")
