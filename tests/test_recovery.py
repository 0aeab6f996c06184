"""Known-parameter recovery: data drawn from a known MoE are fitted back."""

import numpy as np
import pytest

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _match(gate_slope, expert_params):
    """Order the fitted experts as (expert 1, expert 2) of the generator.

    Expert 1 is the one whose gate probability rises with x1; the fitted gate
    has expert 0 as its reference, so the sign of row 1's slope tells which.
    """
    return expert_params[::-1] if gate_slope > 0 else expert_params


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("gate_solver", ["newton", "bohning"])
def test_regressor_recovers_gate_and_experts(seed, gate_solver):
    rng = np.random.RandomState(seed)
    n = 2000
    X = rng.normal(size=(n, 2))
    first = rng.uniform(size=n) < _sigmoid(3.0 * X[:, 0])
    noise = rng.normal(scale=0.5, size=n)  # N(0, 0.25)
    y = np.where(first, 1 + 2 * X[:, 0] - X[:, 1], -1 - 2 * X[:, 0] + X[:, 1]) + noise
    est = MixtureOfExpertsRegressor(2, gate_solver=gate_solver, n_init=3, tol=1e-8,
                                    max_iter=2000, random_state=seed).fit(X, y)
    slope = est.gate_coef_[1]
    assert abs(abs(slope[0]) - 3.0) <= 0.1 * 3.0, slope
    assert abs(slope[1]) < 0.3, slope
    fitted = _match(slope[0], np.column_stack([est.expert_intercept_, est.expert_coef_]))
    truth = np.array([[1.0, 2.0, -1.0], [-1.0, -2.0, 1.0]])
    np.testing.assert_allclose(fitted, truth, rtol=0.05)
    np.testing.assert_allclose(est.expert_variance_, 0.25, rtol=0.1)


def test_classifier_recovers_gate_and_experts():
    rng = np.random.RandomState(0)
    n = 100_000
    X = rng.normal(size=(n, 2))
    first = rng.uniform(size=n) < _sigmoid(3.0 * X[:, 0])
    truth = np.array([[1.0, 0.0, 4.0], [-1.0, 2.0, -3.0]])  # intercept, x1, x2
    design = np.column_stack([np.ones(n), X])
    logit = np.where(first, design @ truth[0], design @ truth[1])
    y = np.where(rng.uniform(size=n) < _sigmoid(logit), "yes", "no")
    clf = MixtureOfExpertsClassifier(2, n_init=2, reg_expert=0.0, random_state=0).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"]
    slope = clf.gate_coef_[1]
    assert abs(abs(slope[0]) - 3.0) <= 0.1 * 3.0, slope
    # Class "no" is each expert's reference, so row 1 holds the logit of "yes".
    params = np.column_stack([clf.expert_intercept_[:, 1], clf.expert_coef_[:, 1]])
    fitted = _match(slope[0], params)
    error = np.linalg.norm(fitted - truth, axis=1) / np.linalg.norm(truth, axis=1)
    assert np.all(error < 0.05), error
