"""scikit-learn's estimator checks on every public estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)

ESTIMATORS = [
    MixtureOfExpertsRegressor(n_experts=2, random_state=0, max_iter=50),
    MixtureOfExpertsClassifier(n_experts=2, random_state=0, max_iter=50),
    HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), random_state=0, max_iter=50),
    HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0, max_iter=50),
    # CART seeding treats a weight of 2 exactly as a repeated row, so these
    # pass the weight-equivalence check that k-means seeding cannot (below).
    MixtureOfExpertsClassifier(n_experts=2, random_state=0, max_iter=50, init_params="tree"),
    HierarchicalMixtureOfExpertsClassifier(branching=(2, 2), random_state=0, max_iter=50,
                                           init_params="tree"),
]


def _expected_failed_checks(estimator):
    classifiers = (MixtureOfExpertsClassifier, HierarchicalMixtureOfExpertsClassifier)
    if isinstance(estimator, classifiers) and estimator.init_params == "kmeans":
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "k-means++ seeding draws its centres from different arrays for weighted "
                "and repeated rows, so EM starts elsewhere; the check's 3-class data are "
                "separable, the likelihood keeps rising along several directions, and "
                "fits from different starts differ in their probabilities at about 1e-4. "
                "With init_params='tree' the fits are identical (tested)."
            )
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
