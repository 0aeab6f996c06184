"""skmoe: classical mixtures of experts with a scikit-learn API, fitted by EM."""

from ._classification import (
    HierarchicalMixtureOfExpertsClassifier,
    MixtureOfExpertsClassifier,
)
from ._regression import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor

__version__ = "0.1.0"

__all__ = [
    "HierarchicalMixtureOfExpertsClassifier",
    "HierarchicalMixtureOfExpertsRegressor",
    "MixtureOfExpertsClassifier",
    "MixtureOfExpertsRegressor",
    "__version__",
]
