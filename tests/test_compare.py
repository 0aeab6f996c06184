"""Tests of the ``skmoe compare`` command."""

import re
import subprocess
import sys

import numpy as np
import pytest

from skmoe import _compare
from skmoe.__main__ import main
from skmoe.datasets import make_piecewise_linear, make_piecewise_logistic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODEL_LABELS = ["MoE", "HME", "CART", "stacking", "linear"]
# Small grids and 2 folds keep each end-to-end run to a few seconds.
FAST = ["--cv", "2", "--n-experts", "2", "--branching", "2x2"]
NUMBER = r"(-?\d+\.\d+) \((\d+\.\d+)\)"


def _table(text):
    """Map each table row's label to its mean and std per column, from the report."""
    rows = {}
    for line in text.splitlines():
        match = re.match(rf"^(\S.*?)\s{{2,}}{NUMBER}\s+{NUMBER}\*?\s+(.*)$", line)
        if match:
            values = [float(v) for v in match.groups()[1:5]]
            rows[match.group(1)] = {"score": values[0], "score_std": values[1],
                                    "density": values[2], "density_std": values[3],
                                    "rest": match.group(6)}
    return rows


def _header_line(text):
    (line,) = [line for line in text.splitlines() if line.startswith("model ")]
    return line.split()


def _progress_lines(err):
    return [line for line in err.splitlines() if line.startswith("[fold ")]


def _without_times(text):
    """The report with the fit and predict columns of the table dropped."""
    return [re.sub(rf"\s+({NUMBER}|-)\s+({NUMBER}|-)$", "", line) for line in text.splitlines()]


def _write_csv(path, columns, rows):
    lines = [",".join(columns)] + [",".join(str(cell) for cell in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def regression_csv(tmp_path):
    """Two oblique linear regimes, plus a text column of three levels."""
    X, y = make_piecewise_linear(120, n_features=2, n_regimes=2, noise=0.1, random_state=0)
    colour = np.array(["red", "green", "blue"])[np.arange(120) % 3]
    rows = [(f"{a:.6f}", f"{b:.6f}", c, f"{t:.6f}") for (a, b), c, t in zip(X, colour, y)]
    return _write_csv(tmp_path / "regimes.csv", ["x1", "x2", "colour", "y"], rows)


@pytest.fixture
def classification_csv(tmp_path):
    """Two classes with text labels."""
    X, y = make_piecewise_logistic(120, n_features=3, n_regimes=2, random_state=1)
    labels = np.array(["no", "yes"])[y]
    rows = [(*(f"{v:.6f}" for v in x), label) for x, label in zip(X, labels)]
    return _write_csv(tmp_path / "classes.csv", ["a", "b", "c", "label"], rows)


def test_regression_csv_end_to_end(regression_csv, tmp_path, capsys):
    png = tmp_path / "plot.png"
    status = main(["compare", "--csv", regression_csv, "--target", "y", "--plot", str(png)]
                  + FAST)
    captured = capsys.readouterr()
    assert status == 0, captured.err
    out = captured.out
    assert out.startswith(f"data: {regression_csv}: CSV file, target column 'y'")
    assert "task: regression (inferred: numeric target with 120 distinct values" in out
    assert "text column 'colour' one-hot encoded: 2 indicators, reference level 'blue'" in out
    assert "120 rows, 4 features; outer 2-fold" in out
    assert _header_line(out) == ["model", "relative", "error", "NLPD", "fit", "(s)",
                                 "predict", "(s)"]
    rows = _table(out)
    assert list(rows) == MODEL_LABELS  # no Bayes reference for a CSV file
    # Two linear regimes: the mixtures fit them, the linear model cannot.
    assert rows["MoE"]["score"] < 0.5 * rows["linear"]["score"]
    assert rows["MoE"]["density"] < rows["linear"]["density"]
    for label in ("CART", "stacking", "linear"):
        assert re.search(rf"^{label}\s.*\)\*\s", out, re.M), label  # Gaussian density marked
    assert "chosen: n_experts=2 (2/2 folds)" in out
    assert f"plot: {png}" in out
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    progress = _progress_lines(captured.err)
    assert len(progress) == 2 * len(MODEL_LABELS)
    assert progress[0].startswith("[fold 1/2] MoE ")
    assert "[fold" not in out


def test_classification_csv_end_to_end(classification_csv, tmp_path, capsys):
    png = tmp_path / "plot.png"
    # A one-level HME (branching (2,)) keeps the run short: hierarchical
    # classifiers on a few dozen rows take hundreds of EM iterations.
    status = main(["compare", "--csv", classification_csv, "--target", "label",
                   "--plot", str(png), "--cv", "2", "--n-experts", "2", "--branching", "2"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    out = captured.out
    assert "task: classification, 2 classes (inferred: the target is text)" in out
    assert _header_line(out) == ["model", "accuracy", "log-loss", "fit", "(s)",
                                 "predict", "(s)"]
    rows = _table(out)
    assert list(rows) == MODEL_LABELS
    for row in rows.values():
        assert 0.5 < row["score"] <= 1.0
        assert 0.0 < row["density"]
    assert "*" not in out.split("models:")[0]  # every classifier has predict_proba
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert len(_progress_lines(captured.err)) == 2 * len(MODEL_LABELS)


def test_builtin_heteroscedastic_density_and_determinism(capsys):
    args = ["compare", "--dataset", "heteroscedastic", "--n-samples", "400", "--cv", "2",
            "--models", "moe,cart,linear", "--n-experts", "2", "--no-plot", "--quiet"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert first.err == ""  # --quiet: no progress lines
    assert first.out.startswith("data: heteroscedastic")
    rows = _table(first.out)
    assert list(rows) == ["MoE", "CART", "linear", "Bayes reference"]
    # The mixture models the noise: its NLPD beats each Gaussian around a prediction.
    for label in ("CART", "linear"):
        assert rows["MoE"]["density"] < rows[label]["density"]
    assert rows["Bayes reference"]["density"] < rows["CART"]["density"]
    assert re.search(r"^Bayes reference\s.*\s-\s+-$", first.out, re.M)
    assert "plot:" not in first.out
    assert main(args) == 0
    assert _without_times(capsys.readouterr().out) == _without_times(first.out)


def test_builtin_classification_reference(capsys):
    assert main(["compare", "--dataset", "piecewise-logistic", "--n-samples", "400",
                 "--cv", "2", "--models", "linear", "--no-plot", "--quiet"]) == 0
    rows = _table(capsys.readouterr().out)
    assert list(rows) == ["linear", "Bayes reference"]
    # The generating model's probabilities beat a single logistic regression.
    assert rows["Bayes reference"]["density"] < rows["linear"]["density"]


def test_progress_lines_and_quiet(regression_csv, capsys):
    args = ["compare", "--csv", regression_csv, "--target", "y", "--models", "cart,linear",
            "--no-plot", "--cv", "3"]
    assert main(args) == 0
    progress = _progress_lines(capsys.readouterr().err)
    assert [line.split()[:3] for line in progress] == [
        ["[fold", f"{k}/3]", label] for k in (1, 2, 3) for label in ("CART", "linear")
    ]
    assert all(re.search(r"fit +\d+\.\d+ s .*relative error \d\.\d+ +NLPD", line)
               for line in progress)
    assert main(args + ["--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_plot_without_matplotlib(regression_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    png = tmp_path / "plot.png"
    assert main(["compare", "--csv", regression_csv, "--target", "y", "--models", "linear",
                 "--cv", "2", "--plot", str(png), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "matplotlib is not installed: no plot written" in captured.err
    assert "Traceback" not in captured.err
    assert "linear" in _table(captured.out)
    assert not png.exists()


def _numbers(n, seed=0):
    return np.random.RandomState(seed).normal(size=n).round(4)


def _bad_csvs(tmp_path):
    """(name, argv after --csv FILE, expected message) of each unusable CSV."""
    x = _numbers(40)
    numeric = [(f"{a}", f"{b}") for a, b in zip(x, _numbers(40, 1))]
    cases = {}

    def case(name, columns, rows, target, message, extra=()):
        path = _write_csv(tmp_path / f"{name}.csv", columns, rows)
        cases[name] = ([path, "--target", target, *extra], message)

    case("missing-target", ["x", "y"], numeric, "z",
         "target column 'z' not found in .*; its columns are: x, y")
    case("semicolons", ["x;y"], [(f"{a};{b}",) for a, b in numeric], "y",
         "does not look comma-separated")
    case("nan-and-empty", ["x", "w", "y"],
         [(a, "" if i == 3 else b, "nan" if i in (5, 7) else b)
          for i, (a, b) in enumerate(numeric)], "y",
         r"empty or NaN cells in columns 'w' \(1 row\), 'y' \(2 rows\)")
    case("text-column", ["x", "city", "y"],
         [(a, f"city{i}", b) for i, (a, b) in enumerate(numeric)], "y",
         r"text columns cannot be used as features: 'city' \(40 distinct values")
    case("bad-number", ["x", "y"], [("?" if i == 4 else a, b)
                                    for i, (a, b) in enumerate(numeric)], "y",
         "'x' holds numbers except 1 cell such as '\\?'")
    case("too-few-rows", ["x", "y"], numeric[:12], "y",
         r"too few rows in .*: 12; 5-fold cross-validation .* needs at least 30")
    case("single-class", ["x", "label"], [(a, "yes") for a, _ in numeric], "label",
         "target 'label' has a single class, 'yes'")
    case("rare-class", ["x", "label"], [(a, "b" if i < 3 else "a")
                                        for i, (a, _) in enumerate(numeric)], "label",
         r"classes with too few rows: 'b' \(3\); .* at least 6 rows per class")
    case("text-target-regression", ["x", "label"], [(a, "ab"[i % 2])
                                                    for i, (a, _) in enumerate(numeric)],
         "label", "target 'label' is text .*regression needs numbers",
         extra=["--task", "regression"])
    case("constant-target", ["x", "y"], [(a, 1.5) for a, _ in numeric], "y",
         "target 'y' is constant", extra=["--task", "regression"])
    case("infinite", ["x", "y"], [("inf" if i == 0 else a, b)
                                  for i, (a, b) in enumerate(numeric)], "y",
         "infinite values in columns 'x'")
    case("only-target", ["y"], [(b,) for _, b in numeric], "y", "no feature columns")
    case("blank-name", ["", "x", "y"], [(i, a, b) for i, (a, b) in enumerate(numeric)], "y",
         "column.s. 1 of the header have no name")
    case("duplicate-names", ["x", "x", "y"], [(a, a, b) for a, b in numeric], "y",
         "duplicate column names: x")
    case("ragged", ["x", "y"], numeric[:20] + [("1", "2", "3")] + numeric[20:], "y",
         "cannot parse .*")
    (tmp_path / "empty.csv").write_text("")
    cases["empty"] = ([str(tmp_path / "empty.csv"), "--target", "y"], "is empty")
    cases["missing-file"] = ([str(tmp_path / "nope.csv"), "--target", "y"],
                             "CSV file not found: .*nope.csv")
    return cases


BAD_CSV_NAMES = ["missing-target", "semicolons", "nan-and-empty", "text-column", "bad-number",
                 "too-few-rows", "single-class", "rare-class", "text-target-regression",
                 "constant-target", "infinite", "only-target", "blank-name",
                 "duplicate-names", "ragged", "empty", "missing-file"]


@pytest.mark.parametrize("engine", ["pandas", "csv"])
@pytest.mark.parametrize("name", BAD_CSV_NAMES)
def test_bad_csv_message_and_exit_status(name, engine, tmp_path, monkeypatch, capsys):
    if engine == "csv":  # as if pandas were not installed
        monkeypatch.setattr(_compare, "_pandas", lambda: None)
    argv, message = _bad_csvs(tmp_path)[name]
    assert main(["compare", "--csv", *argv, "--no-plot"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("skmoe compare: error: ")
    assert re.search(message, line), line


def test_plot_directory_missing(tmp_path, capsys):
    png = tmp_path / "no" / "such" / "plot.png"
    assert main(["compare", "--models", "linear", "--plot", str(png)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"skmoe compare: error: cannot write the plot to {png}")
    assert captured.out == ""  # refused before any fitting


def test_bad_csv_from_the_shell(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "skmoe", "compare", "--csv", str(tmp_path / "nope.csv"),
         "--target", "y"], capture_output=True, text=True,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("skmoe compare: error: CSV file not found")
    assert "Traceback" not in result.stderr


def test_csv_engines_agree(regression_csv):
    with_pandas = _compare.load_csv(regression_csv, "y", engine="pandas")
    with_csv = _compare.load_csv(regression_csv, "y", engine="csv")
    assert with_pandas.feature_names == with_csv.feature_names == [
        "x1", "x2", "colour=green", "colour=red"]
    np.testing.assert_array_equal(with_pandas.X, with_csv.X)
    np.testing.assert_array_equal(with_pandas.y, with_csv.y)
    assert with_csv.X[:3, 2:].tolist() == [[0, 1], [1, 0], [0, 0]]  # red, green, blue


def test_task_inference_and_override(tmp_path):
    x = _numbers(60)
    binary = _write_csv(tmp_path / "binary.csv", ["x", "y"],
                        [(a, float(i % 2)) for i, a in enumerate(x)])
    data = _compare.load_csv(binary, "y")
    assert data.task == "classification"
    assert data.y.dtype.kind == "i" and set(data.y.tolist()) == {0, 1}
    assert "at most 20" in data.task_reason
    forced = _compare.load_csv(binary, "y", task="regression")
    assert forced.task == "regression" and forced.task_reason == "given by --task"
    counts = _write_csv(tmp_path / "counts.csv", ["x", "y"],
                        [(a, i % 30) for i, a in enumerate(x)])
    assert _compare.load_csv(counts, "y").task == "regression"


def test_grid_candidates_too_large_for_the_data_are_left_out():
    contenders = _compare.make_contenders("regression", n_rows=60, n_features=4, cv=2,
                                          models=("moe", "hme"))
    moe, hme = contenders
    # Smallest inner training part: 30 outer rows, 20 inner rows; 5 coefficients per expert.
    assert moe.estimator.param_grid == {"n_experts": [2, 4]}
    assert hme.estimator.param_grid == {"branching": [(2, 2)]}
    assert moe.notes == ["MoE: n_experts {8} left out of the grid, too few rows for that "
                         "many experts"]


@pytest.mark.parametrize(
    "argv",
    [["compare", "--n-samples", "10"], ["compare", "--dataset", "nope"],
     ["compare", "--cv", "1"], ["compare", "--n-experts", "0"],
     ["compare", "--branching", "1x2"], ["compare", "--models", "moe,forest"],
     ["compare", "--csv", "data.csv"], ["compare", "--target", "y"],
     ["compare", "--task", "regression"],
     ["compare", "--csv", "data.csv", "--target", "y", "--n-samples", "500"],
     ["compare", "--csv", "data.csv", "--dataset", "heteroscedastic", "--target", "y"],
     ["compare", "--plot", "a.png", "--no-plot"], []],
)
def test_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as excinfo:
        main(argv)
    assert excinfo.value.code == 2


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "skmoe", "compare", "--help"],
        capture_output=True, text=True, check=True,
    )
    for member in ("MixtureOfExpertsRegressor", "HierarchicalMixtureOfExperts",
                   "DecisionTree", "RandomForest", "KNeighbors", "RidgeCV",
                   "LogisticRegression", "LinearRegression", "--csv", "--target", "--task",
                   "--cv", "--n-jobs", "--quiet", "--plot", "one-hot", "Exit status"):
        assert member in result.stdout, member
