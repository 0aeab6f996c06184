"""Hierarchical mixtures of experts: the flat case, recovery, routing, workflows."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmoe import (
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)

from ._helpers import assert_em_never_decreases


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# A depth-2 binary HME: gate weights (intercept, x1, x2) of child 1 against child 0.
ROOT = np.array([0.0, 3.0, 0.0])
LEVEL1 = np.array([[0.0, 0.0, 3.0], [1.0, 0.0, -3.0]])
EXPERTS = np.array([[2.0, 1.0, 0.0], [-2.0, 0.0, 2.0], [1.0, -2.0, 0.0], [-1.0, 1.0, 1.0]])
NOISE = 0.2


def _hme_data(n, seed):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 2))
    design = np.column_stack([np.ones(n), X])
    top = (rng.uniform(size=n) < _sigmoid(design @ ROOT)).astype(int)
    below = rng.uniform(size=n) < _sigmoid(np.einsum("ij,ij->i", design, LEVEL1[top]))
    leaf = 2 * top + below
    y = np.einsum("ij,ij->i", design, EXPERTS[leaf]) + NOISE * rng.normal(size=n)
    return X, y, design


def _true_log_likelihood(design, y):
    g_root = _sigmoid(design @ ROOT)
    g_left, g_right = _sigmoid(design @ LEVEL1[0]), _sigmoid(design @ LEVEL1[1])
    prior = np.column_stack([(1 - g_root) * (1 - g_left), (1 - g_root) * g_left,
                             g_root * (1 - g_right), g_root * g_right])
    dens = np.exp(-0.5 * (y[:, None] - design @ EXPERTS.T) ** 2 / NOISE**2)
    return np.sum(np.log(np.sum(prior * dens, axis=1) / np.sqrt(2 * np.pi * NOISE**2)))


def test_depth_two_hme_is_recovered():
    X, y, design = _hme_data(8000, seed=0)
    hme = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), n_init=4, tol=1e-8,
                                                max_iter=3000, random_state=0).fit(X, y)
    assert hme.log_likelihood(X, y) >= _true_log_likelihood(design, y)
    fitted = np.column_stack([hme.expert_intercept_, hme.expert_coef_])
    perm = min(itertools.permutations(range(4)),
               key=lambda p: np.abs(fitted - EXPERTS[list(p)]).sum())
    scale = np.abs(EXPERTS).max()
    assert_allclose(fitted, EXPERTS[list(perm)], atol=0.1 * scale)
    # Fitted leaf l is true leaf perm[l]: siblings must map to siblings.
    assert perm[0] // 2 == perm[1] // 2 and perm[2] // 2 == perm[3] // 2
    root_sign = 1.0 if perm[0] // 2 == 0 else -1.0
    root = np.r_[hme.gate_intercept_[0][0, 1], hme.gate_coef_[0][0, 1]]
    assert_allclose(root_sign * root, ROOT, atol=0.1 * 3.0)
    for node in range(2):
        true_node = perm[2 * node] // 2
        sign = 1.0 if perm[2 * node] < perm[2 * node + 1] else -1.0
        gate = np.r_[hme.gate_intercept_[1][node, 1], hme.gate_coef_[1][node, 1]]
        assert_allclose(sign * gate, LEVEL1[true_node], atol=0.1 * 3.0)


@pytest.mark.parametrize("init", ["kmeans", "random", "random_from_data", "tree"])
@pytest.mark.parametrize("solver", ["newton", "bohning"])
def test_single_level_hme_is_the_flat_mixture(init, solver):
    X, y, _ = _hme_data(500, seed=1)
    params = dict(init_params=init, gate_solver=solver, n_init=2, random_state=3)
    hme = HierarchicalMixtureOfExpertsRegressor(branching=(3,), **params).fit(X, y)
    moe = MixtureOfExpertsRegressor(n_experts=3, **params).fit(X, y)
    assert_allclose(hme.lower_bound_, moe.lower_bound_, rtol=1e-10)
    assert_allclose(hme.predict(X), moe.predict(X), rtol=1e-10)
    labels = (y > 0).astype(int)
    hme_c = HierarchicalMixtureOfExpertsClassifier(branching=(2,), **params).fit(X, labels)
    moe_c = MixtureOfExpertsClassifier(n_experts=2, **params).fit(X, labels)
    assert_allclose(hme_c.lower_bound_, moe_c.lower_bound_, rtol=1e-10)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    branching=st.sampled_from([(2, 2), (3, 2), (2, 2, 2), (2, 3)]),
    solver=st.sampled_from(["newton", "bohning", "auto"]),
    reg=st.sampled_from([0.0, 1e-6, 0.3]),
    weighted=st.booleans(),
    classifier=st.booleans(),
    init=st.sampled_from(["kmeans", "random", "random_from_data", "tree"]),
)
def test_hme_log_likelihood_never_decreases(seed, branching, solver, reg, weighted, classifier,
                                            init):
    X, y, _ = _hme_data(160, seed)
    rng = np.random.RandomState(seed)
    w = rng.uniform(0.0, 3.0, size=len(y)) if weighted else None
    if classifier:
        y = np.digitize(y, [-1.0, 1.0])
        est = HierarchicalMixtureOfExpertsClassifier(branching, reg_expert=reg)
    else:
        est = HierarchicalMixtureOfExpertsRegressor(branching, reg_expert=reg)
    assert_em_never_decreases(est, X, y, w, max_iter=25, gate_solver=solver, reg_gate=reg,
                              init_params=init, random_state=seed)


def test_routing_and_path_probabilities():
    X, y, _ = _hme_data(1000, seed=2)
    hme = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), n_init=2,
                                                random_state=0).fit(X, y)
    path = hme.predict_gate(X)
    assert path.shape == (1000, 4)
    assert_allclose(path.sum(axis=1), 1.0, rtol=1e-12)
    leaves = hme.apply(X)
    # Greedy descent: the chosen leaf's sibling pair carries the larger root mass.
    pair_mass = path.reshape(1000, 2, 2).sum(axis=2)
    assert_array_equal(leaves // 2, np.argmax(pair_mass, axis=1))
    within = path.reshape(1000, 2, 2)[np.arange(1000), leaves // 2]
    assert_array_equal(leaves % 2, np.argmax(within, axis=1))
    flat = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    assert_array_equal(flat.apply(X), np.argmax(flat.predict_gate(X), axis=1))


def test_export_text_lists_gates_and_leaves():
    X, y, _ = _hme_data(600, seed=3)
    hme = HierarchicalMixtureOfExpertsRegressor(branching=(2, 2), random_state=0).fit(X, y)
    text = hme.export_text(feature_names=["speed", "angle"], n_top=1)
    lines = text.splitlines()
    assert sum(line.lstrip("| ").startswith("gate:") for line in lines) == 3
    assert sum("leaf" in line for line in lines) == 4
    assert "variance" in text and ("speed" in text or "angle" in text)
    clf = HierarchicalMixtureOfExpertsClassifier(branching=(2,), random_state=0).fit(
        X, np.where(y > 0, "up", "down"))
    assert "log-odds up vs down" in clf.export_text()


def test_grid_search_over_branching_in_a_pipeline():
    X, y, _ = _hme_data(600, seed=4)
    pipe = make_pipeline(StandardScaler(), HierarchicalMixtureOfExpertsRegressor(random_state=0))
    search = GridSearchCV(pipe, {"hierarchicalmixtureofexpertsregressor__branching":
                                 [(2,), (2, 2)]}, cv=3).fit(X, y)
    assert search.best_params_["hierarchicalmixtureofexpertsregressor__branching"] == (2, 2)
    flat_score, deep_score = search.cv_results_["mean_test_score"]
    assert deep_score > flat_score


def test_randomized_search_over_experts_and_classifier_branching():
    """RandomizedSearchCV draws n_experts from a distribution and branching from a list."""
    from scipy.stats import randint

    from skmoe.datasets import make_piecewise_linear, make_piecewise_logistic

    X, y = make_piecewise_linear(n_samples=600, n_features=2, n_regimes=3, random_state=0)
    search = RandomizedSearchCV(
        make_pipeline(StandardScaler(), MixtureOfExpertsRegressor(random_state=0)),
        {"mixtureofexpertsregressor__n_experts": randint(1, 6)}, n_iter=4, cv=3,
        random_state=0,
    ).fit(X, y)
    tried = search.cv_results_["param_mixtureofexpertsregressor__n_experts"]
    best = search.best_params_["mixtureofexpertsregressor__n_experts"]
    assert best >= 3 and search.best_score_ > 0.9, (list(tried), search.best_score_)

    X, y = make_piecewise_logistic(n_samples=600, random_state=0)
    search = RandomizedSearchCV(
        make_pipeline(StandardScaler(),
                      HierarchicalMixtureOfExpertsClassifier(init_params="tree", random_state=0)),
        {"hierarchicalmixtureofexpertsclassifier__branching": [(1,), (2,), (2, 2)]},
        n_iter=3, cv=3, random_state=0,
    ).fit(X, y)
    scores = dict(zip(map(tuple, search.cv_results_[
        "param_hierarchicalmixtureofexpertsclassifier__branching"]),
        search.cv_results_["mean_test_score"]))
    # score is the accuracy; one expert is a single logistic model.
    assert scores[(2, 2)] > scores[(1,)]
    assert isinstance(search.best_estimator_[-1], HierarchicalMixtureOfExpertsClassifier)


@pytest.mark.parametrize("branching", [(), (1, 2), (2, 0), (2.5,), [True, 2], ("a",)])
def test_invalid_branching(branching):
    X, y, _ = _hme_data(100, seed=0)
    with pytest.raises(ValueError, match="branching should be a non-empty sequence"):
        HierarchicalMixtureOfExpertsRegressor(branching=branching).fit(X, y)
