"""The ``skmoe`` command line (also ``python -m skmoe``).

Subcommands:

``compare``
    Fit a mixture of experts and standard regressors on a built-in synthetic
    data set and print their held-out relative errors and timings.
"""

import argparse
import sys

from . import __version__

_COMPARE_DESCRIPTION = """\
Fit these models on an 80/20 split of a built-in synthetic data set and print
a table of the held-out relative error (test MSE / Var(y_test)), the mean
negative log predictive density (NLPD, nats), the fit time (including any
hyperparameter tuning) and the predict time:

  MoE        MixtureOfExpertsRegressor(n_experts=N, n_init=3): Gaussian linear
             experts and a softmax gate, fitted by EM;
  CART       DecisionTreeRegressor tuned by GridSearchCV (3-fold) over
             max_depth in {4, 6, 8, 10, 12, None} and min_samples_leaf in
             {1, 5, 20, 50};
  stacking   StackingRegressor (3-fold) of the tuned CART above,
             RandomForestRegressor(n_estimators=100) and
             StandardScaler + KNeighborsRegressor(n_neighbors=10), with RidgeCV
             as the final estimator;
  linear     LinearRegression.

Models without a predictive density are given the Gaussian N(prediction, s^2)
with s^2 their test MSE, the best constant variance (marked *; it flatters
them). The last line is the Bayes reference: the generating model's own
conditional mean and density. Data sets:

  piecewise-linear  make_piecewise_linear: X uniform on [-1, 1]^5, 4 regimes
                    cut by oblique hyperplanes, a linear function in each,
                    Gaussian noise 0.5 (Bayes relative error about 0.017);
  heteroscedastic   make_heteroscedastic_regression: x1, x2, x3 ~ N(0, 1);
                    with probability sigmoid(3 x1), y = 1 + 2 x1 + 0.2 e,
                    otherwise y = -x1^2 + 0.8 e.

Progress lines go to stderr, the report to stdout. Numba compiles the kernels
once before the timed fits. Apart from the times the output is deterministic.
"""


def _build_parser():
    """The argument parser of the ``skmoe`` command and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="skmoe",
        description="Classical mixtures of experts with a scikit-learn API.",
    )
    parser.add_argument("--version", action="version", version=f"skmoe {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    compare = commands.add_parser(
        "compare",
        help="compare a mixture of experts with CART, stacking and a linear model",
        description=_COMPARE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument(
        "--dataset", choices=["piecewise-linear", "heteroscedastic"],
        default="piecewise-linear", help="built-in data set (default: %(default)s)",
    )
    compare.add_argument(
        "--n-samples", type=_sample_count, default=10000,
        help="samples generated, before the 80/20 split; at least 100 "
             "(default: %(default)s)",
    )
    compare.add_argument(
        "--random-state", type=int, default=0,
        help="seed of the data, the split and every model (default: %(default)s)",
    )
    compare.add_argument(
        "--n-experts", type=_positive_int, default=4,
        help="experts of the MoE (default: %(default)s)",
    )
    compare.add_argument(
        "--select-experts", action="store_true",
        help="also fit a MoE whose n_experts is chosen by GridSearchCV (3-fold) over "
             "{2, 4, 8}; several times slower",
    )
    compare.add_argument(
        "--n-jobs", type=int, default=-1,
        help="parallel jobs of the random forest; -1 uses every core (default: %(default)s)",
    )
    return parser


def _positive_int(text):
    """Parse an integer >= 1 (an argparse ``type``)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _sample_count(text):
    """Parse a number of samples, at least 100 (an argparse ``type``)."""
    value = int(text)
    if value < 100:
        raise argparse.ArgumentTypeError(f"expected at least 100 samples, got {text}")
    return value


def main(argv=None):
    """Run the ``skmoe`` command line.

    Parameters
    ----------
    argv : list of str or None, default=None
        Arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        The exit status, 0 on success.
    """
    args = _build_parser().parse_args(argv)
    if args.command == "compare":
        from ._compare import compare

        compare(
            dataset=args.dataset,
            n_samples=args.n_samples,
            random_state=args.random_state,
            n_experts=args.n_experts,
            select_experts=args.select_experts,
            n_jobs=args.n_jobs,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
