"""Tests of the ``skmoe compare`` command."""

import re
import subprocess
import sys

import pytest

from skmoe.__main__ import main

LABELS = ["MoE (n_experts=4, n_init=3)", "CART (tuned, 3-fold CV)",
          "stacking (tree, forest, kNN -> RidgeCV)", "linear regression", "Bayes reference"]


def _table(text):
    """Map each table row's label to its (relative error, NLPD) from the report."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^(\S.*?)\s{2,}(\d+\.\d{4})\s+(\d+\.\d{4})\*?\s", line + " ")
        if match:
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    return rows


def _row(rows, prefix):
    (value,) = [v for label, v in rows.items() if label.startswith(prefix)]
    return value


def _without_times(text):
    """The report with the last two columns (fit and predict times) of each row dropped."""
    return [line.rsplit(None, 2)[0] if re.search(r"\d\s*$|-\s*$", line) else line
            for line in text.splitlines()]


def test_compare_piecewise_linear(capsys):
    assert main(["compare", "--n-samples", "600", "--n-jobs", "1"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    # The data set and the sizes come first, then the table.
    assert out.splitlines()[0].startswith("data set: piecewise-linear")
    assert "600 (480 train, 120 test)" in out
    rows = _table(out)
    assert len(rows) == len(LABELS)
    for label in LABELS:
        _row(rows, label)
    moe, linear = _row(rows, "MoE")[0], _row(rows, "linear")[0]
    bayes = _row(rows, "Bayes")[0]
    assert moe < 0.25 * linear
    assert moe < _row(rows, "CART")[0]
    assert bayes < 0.05
    # Progress goes to stderr, never into the report.
    assert "fitting CART" in captured.err
    assert "fitting" not in out


def test_compare_heteroscedastic_is_deterministic(capsys):
    args = ["compare", "--dataset", "heteroscedastic", "--n-samples", "300",
            "--n-experts", "2", "--random-state", "1", "--n-jobs", "1"]
    main(args)
    first = capsys.readouterr().out
    main(args)
    second = capsys.readouterr().out
    assert first.splitlines()[0].startswith("data set: heteroscedastic")
    rows = _table(first)
    assert _row(rows, "MoE (n_experts=2, n_init=3)")
    # The mixture models the noise: its NLPD beats every Gaussian baseline.
    moe_nlpd = _row(rows, "MoE")[1]
    for label in ("CART", "stacking", "linear"):
        assert moe_nlpd < _row(rows, label)[1]
    assert _without_times(first) == _without_times(second)


@pytest.mark.parametrize(
    "argv",
    [["compare", "--n-samples", "10"], ["compare", "--dataset", "nope"],
     ["compare", "--n-experts", "0"], []],
)
def test_compare_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "skmoe", "compare", "--help"],
        capture_output=True, text=True, check=True,
    )
    for member in ("DecisionTreeRegressor", "RandomForestRegressor", "KNeighborsRegressor",
                   "RidgeCV", "LinearRegression", "MixtureOfExpertsRegressor"):
        assert member in result.stdout
