"""skmoe: classical mixtures of experts with a scikit-learn API, fitted by EM."""

from ._classification import MixtureOfExpertsClassifier
from ._regression import MixtureOfExpertsRegressor

__version__ = "0.1.0"

__all__ = ["MixtureOfExpertsClassifier", "MixtureOfExpertsRegressor", "__version__"]
