"""The ``skmoe`` command line (also ``python -m skmoe``).

Subcommands:

``compare``
    Compare mixtures of experts with a tuned CART, stacking and a linear
    model by cross-validation, on a built-in data set or a CSV file, and
    print a table and write a PNG plot of the scores and times.
"""

import argparse
import math
import sys

from . import __version__

_COMPARE_DESCRIPTION = """\
Compare, by outer K-fold cross-validation (--cv, default 5), five models on a
built-in synthetic data set or on your CSV file, and print each one's mean and
standard deviation over the folds of:

  regression      relative error (test MSE / Var(y_test)), NLPD (mean negative
                  log predictive density of the test targets, nats), fit time
                  (including the inner grid searches) and predict time;
  classification  accuracy, log-loss (of predict_proba), fit and predict time.

The models (every grid search is 3-fold, inside each outer training part):

  MoE       MixtureOfExpertsRegressor / MixtureOfExpertsClassifier(n_init=1),
            n_experts chosen by GridSearchCV over --n-experts (default 2,4,8);
  HME       HierarchicalMixtureOfExperts{Regressor,Classifier}(init_params=
            'tree', a deterministic start from a CART tree), branching chosen
            by GridSearchCV over --branching (default 2x2,2x2x2);
  CART      DecisionTree{Regressor,Classifier} tuned by GridSearchCV over
            max_depth in {2, 4, 6, 8, 12, None} and min_samples_leaf in
            {1, 5, 20, 50} (regression by MSE, classification by accuracy);
  stacking  Stacking{Regressor,Classifier} (3-fold) of three members: the
            tuned CART above, RandomForest{Regressor,Classifier}
            (n_estimators=100) and StandardScaler + KNeighbors{Regressor,
            Classifier}(n_neighbors=10, fewer on tiny data); final estimator
            RidgeCV (regression) or LogisticRegression (classification);
  linear    LinearRegression, or StandardScaler + LogisticRegression.

Grid candidates whose experts would have fewer training rows than
coefficients are left out (the report says so). The mixtures give their own
predictive density (score_samples). CART, stacking and linear regression have
none: they are scored with a Gaussian around their prediction (marked * in
the table) whose variance comes from held-out residuals within the training
part: the inner-CV MSE of the chosen tree, the leave-one-out MSE of the
stack's final RidgeCV on its members' out-of-fold predictions, and RSS/(n-p-1)
for the linear model. Built-in data sets add the generating model's own
scores as the Bayes reference:

  piecewise-linear    make_piecewise_linear(n_features=5, n_regimes=4,
                      noise=0.5): X uniform on [-1, 1]^5, 4 regimes cut by
                      oblique hyperplanes, a linear function in each
                      (Bayes relative error about 0.017); regression;
  heteroscedastic     make_heteroscedastic_regression: x1, x2, x3 ~ N(0, 1);
                      with probability sigmoid(3 x1), y = 1 + 2 x1 + 0.2 e,
                      otherwise y = -x1^2 + 0.8 e; regression;
  piecewise-logistic  make_piecewise_logistic(n_features=5, n_regimes=3,
                      n_classes=3): 3 oblique regimes, a multinomial logistic
                      model in each; classification.

CSV files (--csv FILE --target COLUMN): comma-separated, a header line of
column names, every column but the target is a feature. The task is inferred
from the target unless --task is given: a numeric target with more than 20
distinct values is a regression target, anything else (text, or at most 20
distinct values) is a classification target. Text feature columns with at
most 10 distinct values are one-hot encoded (the first value in sorted order
is the reference level); other text columns are refused. Read with pandas if
it is installed, otherwise with the csv module. These are refused with a
message: a missing file or target column, empty or NaN cells (the columns are
named), infinite values, text columns with more than 10 distinct values or
numbers with a few text cells (such as '?'), a text target for regression, a
constant target, a single class, fewer than max(20, 6 x cv) rows, and classes
with fewer than max(cv, 6) rows.

Progress lines (one per model and fold) go to stderr, silenced by --quiet; the
report goes to stdout; the plot (three panels: the two scores and the fit
time, per fold and on average) to --plot (needs matplotlib; without it the
plot is skipped with a message). Numba compiles the kernels once, before the
timed fits. Apart from the times the output is deterministic.

Exit status: 0 on success, 1 if the data cannot be used (the message says
why), 2 for a malformed command line.
"""


def _build_parser():
    """The argument parser of the ``skmoe`` command and its subcommands."""
    from ._compare import (
        BRANCHING_GRID,
        DATASETS,
        DEFAULT_CV,
        DEFAULT_N_SAMPLES,
        DEFAULT_PLOT,
        MODELS,
        N_EXPERTS_GRID,
    )

    parser = argparse.ArgumentParser(
        prog="skmoe",
        description="Classical mixtures of experts with a scikit-learn API.",
    )
    parser.add_argument("--version", action="version", version=f"skmoe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    compare = commands.add_parser(
        "compare",
        help="compare mixtures of experts with CART, stacking and a linear model",
        description=_COMPARE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = compare.add_argument_group("data")
    source = data.add_mutually_exclusive_group()
    source.add_argument(
        "--dataset", choices=list(DATASETS), default="piecewise-linear",
        help="built-in data set (default: %(default)s)",
    )
    source.add_argument("--csv", metavar="FILE", help="compare on this CSV file instead")
    data.add_argument("--target", metavar="COLUMN",
                      help="the target column of the CSV file (required with --csv)")
    data.add_argument(
        "--task", choices=["regression", "classification"],
        help="task of the CSV file (default: inferred from the target)",
    )
    data.add_argument(
        "--n-samples", type=_at_least(100), default=None,
        help=f"rows of the built-in data set; at least 100 (default: {DEFAULT_N_SAMPLES})",
    )
    evaluation = compare.add_argument_group("evaluation")
    evaluation.add_argument(
        "--cv", type=_at_least(2), default=DEFAULT_CV,
        help="outer cross-validation folds (default: %(default)s)",
    )
    evaluation.add_argument(
        "--models", type=_model_list(MODELS), default=MODELS,
        help=f"comma-separated subset of {','.join(MODELS)} (default: all)",
    )
    evaluation.add_argument(
        "--n-experts", type=_int_list, default=N_EXPERTS_GRID, metavar="K,K,...",
        help="candidates for the MoE's n_experts (default: "
             f"{','.join(map(str, N_EXPERTS_GRID))})",
    )
    evaluation.add_argument(
        "--branching", type=_branching_list, default=BRANCHING_GRID, metavar="BxB,...",
        help="candidates for the HME's branching, children per gate from the root, "
             "e.g. 2x2 for two levels of binary gates (default: "
             f"{','.join('x'.join(map(str, b)) for b in BRANCHING_GRID)})",
    )
    evaluation.add_argument(
        "--random-state", type=int, default=0,
        help="seed of the data, the folds and every model (default: %(default)s)",
    )
    evaluation.add_argument(
        "--n-jobs", type=int, default=None,
        help="parallel jobs of the grid searches, the stack and the forest through "
             "joblib; -1 uses every core (default: 1; the mixtures' Numba kernels use "
             "every core anyway, and each worker process compiles them again inside "
             "the timed fits)",
    )
    output = compare.add_argument_group("output")
    plot = output.add_mutually_exclusive_group()
    plot.add_argument("--plot", metavar="FILE", default=DEFAULT_PLOT,
                      help="PNG file of the plot (default: %(default)s)")
    plot.add_argument("--no-plot", action="store_true", help="write no plot")
    output.add_argument("--quiet", action="store_true",
                        help="no progress lines on stderr")
    return parser


def _at_least(minimum):
    """An argparse ``type`` parsing an integer >= ``minimum``."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected at least {minimum}, got {text}")
        return value
    return parse


def _int_list(text):
    """Parse ``"2,4,8"`` into ``(2, 4, 8)``, each at least 1 (an argparse ``type``)."""
    parse = _at_least(1)
    values = tuple(parse(part) for part in text.split(","))
    return tuple(sorted(set(values)))


def _branching_list(text):
    """Parse ``"2x2,2x2x2"`` into ``((2, 2), (2, 2, 2))`` (an argparse ``type``)."""
    parse = _at_least(2)
    values = []
    for part in text.split(","):
        branching = tuple(parse(b) for b in part.lower().split("x"))
        if branching not in values:
            values.append(branching)
    # Smallest first: equal inner scores then choose the smaller tree.
    return tuple(sorted(values, key=lambda b: (math.prod(b), b)))


def _model_list(choices):
    """An argparse ``type`` parsing a comma-separated subset of ``choices``, in their order."""
    def parse(text):
        names = [name.strip().lower() for name in text.split(",")]
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown model(s) {', '.join(unknown)}; choose from {','.join(choices)}")
        return tuple(name for name in choices if name in names)
    return parse


def main(argv=None):
    """Run the ``skmoe`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        The exit status: 0 on success, 1 if the data cannot be used.
        A malformed command line exits with status 2 (argparse).
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command == "compare":
        from ._compare import DEFAULT_N_SAMPLES, CompareError, compare

        if args.csv is not None and args.target is None:
            parser.error("--csv needs --target COLUMN")
        if args.csv is None and (args.target is not None or args.task is not None):
            parser.error("--target and --task apply to a CSV file (--csv FILE)")
        if args.csv is not None and args.n_samples is not None:
            parser.error("--n-samples applies to the built-in data sets, not to --csv")
        try:
            compare(
                dataset=args.dataset,
                n_samples=DEFAULT_N_SAMPLES if args.n_samples is None else args.n_samples,
                csv_path=args.csv,
                target=args.target,
                task=args.task,
                cv=args.cv,
                models=args.models,
                n_experts_grid=args.n_experts,
                branching_grid=args.branching,
                random_state=args.random_state,
                n_jobs=args.n_jobs,
                plot=None if args.no_plot else args.plot,
                quiet=args.quiet,
            )
        except CompareError as exc:
            print(f"skmoe compare: error: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("skmoe compare: interrupted", file=sys.stderr)
            return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
