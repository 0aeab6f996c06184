"""EM engine and estimator invariants: oracle step, monotone likelihood, bookkeeping."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression

from skmoe import (
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
)
from skmoe._em import Model, Problem, Workspace, run_em
from skmoe._experts import GaussianExperts
from skmoe._gating import (
    _BOHNING_RELAXATION,
    RootBound,
    bohning_bound,
    penalty,
    softmax_m_step,
)
from skmoe._kernels import get_backend
from skmoe._linalg import solve_psd
from skmoe._tree import GatingTree

from . import reference as ref
from ._helpers import assert_em_never_decreases


def _gated_data(n=300, seed=0, n_features=2):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    first = rng.uniform(size=n) < 1.0 / (1.0 + np.exp(-3.0 * X[:, 0]))
    y = np.where(first, 1.0 + 2.0 * X[:, 0], -1.0 - 2.0 * X[:, 0]) + 0.5 * rng.normal(size=n)
    return X, y


def _labels(X, seed=0):
    rng = np.random.RandomState(seed)
    first = rng.uniform(size=len(X)) < 1.0 / (1.0 + np.exp(-3.0 * X[:, 0]))
    logit = np.where(first, 1.0 + 3.0 * X[:, -1], -1.0 - 3.0 * X[:, -1])
    return (rng.uniform(size=len(X)) < 1.0 / (1.0 + np.exp(-logit))).astype(int)


def test_one_em_step_matches_reference():
    rng = np.random.RandomState(0)
    n, K = 200, 3
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, 2))])
    y = rng.normal(size=n) + X[:, 1]
    w = rng.uniform(0.5, 1.5, size=n)
    gate = rng.normal(scale=0.5, size=(K, 3))
    gate[0] = 0.0
    coef = rng.normal(size=(K, 3))
    var = rng.uniform(0.5, 2.0, size=K)
    model = Model(kernels=get_backend("cpu"), tree=GatingTree((K,)),
                  experts=GaussianExperts(0.0, 1e-12), reg_gate=0.0, gate_solver="newton")
    problem = Problem(X, X, y, w)
    params = {"gates": [gate[None]], "experts": {"coef": coef, "var": var}}
    ll, log_resp = model.e_step(params, problem)
    new = model.m_step(params, problem, np.exp(log_resp))
    ll_ref, gate_ref, coef_ref, var_ref = ref.gaussian_moe_em_step(X, y, w, gate, coef, var)
    assert_allclose(ll, ll_ref, rtol=1e-12)
    assert_allclose(new["experts"]["coef"], coef_ref, rtol=1e-9)
    assert_allclose(new["experts"]["var"], var_ref, rtol=1e-9)
    assert_allclose(new["gates"][0][0], gate_ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("at_root", [True, False])
def test_bohning_step_is_relaxed_minoriser_step_and_monotone(at_root):
    """A Boehning step is 1.8 times the oracle's minoriser maximiser and gains objective."""
    rng = np.random.RandomState(3)
    n, p, b, reg = 200, 3, 4, 0.1
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    w = rng.uniform(0.5, 1.5, size=n)
    mass = None if at_root else rng.uniform(0.2, 1.0, size=(n, 1))
    targets = rng.dirichlet(np.ones(b), size=n) * (1.0 if at_root else mass)
    coef = rng.normal(scale=0.3, size=(1, b, p))
    coef[:, 0] = 0.0
    kernels = get_backend("cpu")
    root_bound = bohning_bound(kernels, X, w) if at_root else None
    got = softmax_m_step(kernels, X, coef, w, mass=mass, targets=targets, reg=reg,
                         solver="bohning", root_bound=root_bound)
    objective, grad, _, gram = ref.softmax_stats(X, coef, w, mass, targets)
    mask = np.r_[0.0, np.ones(p - 1)]
    A = np.kron(0.5 * (np.eye(b - 1) - 1.0 / b), gram[0]) + np.diag(reg * np.tile(mask, b - 1))
    rhs = (grad[0, 1:] - reg * mask * coef[0, 1:]).ravel()
    maximiser = np.linalg.solve(A, rhs).reshape(b - 1, p)
    assert_allclose(got[0, 1:] - coef[0, 1:], _BOHNING_RELAXATION * maximiser, rtol=1e-9)
    assert_array_equal(got[0, 0], 0.0)
    before = objective[0] - penalty(coef, reg)[0]
    after = ref.softmax_stats(X, got, w, mass, targets)[0][0] - penalty(got, reg)[0]
    # The minoriser guarantees (f - f^2/2) rhs.A^-1.rhs at the factor f.
    f = _BOHNING_RELAXATION
    assert after - before >= (f - f * f / 2) * rhs @ maximiser.ravel() * (1 - 1e-9) > 0


def _gate_problem(seed, n, p, b):
    """A design with an intercept, weights, soft counts and a root gate's coefficients."""
    rng = np.random.RandomState(seed)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    w = rng.uniform(0.5, 1.5, size=n)
    targets = rng.dirichlet(np.ones(b), size=n)
    coef = rng.normal(scale=0.3, size=(1, b, p))
    coef[:, 0] = 0.0
    return X, w, targets, coef


@pytest.mark.parametrize("solver, n_steps, b, at_root", [
    ("bohning", 5, 3, True), ("bohning", 1, 3, True), ("bohning", 2, 3, False),
    ("newton", 2, 3, False), ("newton", 1, 1, False)])
def test_gate_step_calls_meanwhile_once_and_gives_the_same_step(solver, n_steps, b, at_root):
    """``meanwhile`` runs once on every path (steps from the E-step's probabilities,
    Newton halving, a single child) and changes nothing in the step."""
    X, w, targets, coef = _gate_problem(1, 120, 3, b)
    kernels = get_backend("cpu")
    root_bound = bohning_bound(kernels, X, w) if at_root else None
    log_proba = None
    if at_root:
        logits = X @ coef[0].T
        log_proba = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    calls = []
    got = softmax_m_step(kernels, X, coef, w, targets=targets, reg=0.1, solver=solver,
                         n_steps=n_steps, root_bound=root_bound, log_proba=log_proba,
                         meanwhile=lambda: calls.append(1))
    assert calls == [1]
    expected = softmax_m_step(kernels, X, coef, w, targets=targets, reg=0.1, solver=solver,
                              n_steps=n_steps, root_bound=root_bound, log_proba=log_proba)
    assert_array_equal(got, expected)


@pytest.mark.parametrize("b", [2, 3, 5, 16])
def test_root_bound_solves_the_kronecker_system(b):
    """The two p x p solves of RootBound give the (b-1) p system's solution; a
    singular bound (duplicate columns, no ridge) falls back to solve_psd."""
    rng = np.random.RandomState(b)
    p = 4
    X = np.hstack([np.ones((50, 1)), rng.normal(size=(50, p - 1))])
    ridge = np.r_[0.0, np.full(p - 1, 0.3)]
    shape = 0.5 * (np.eye(b - 1) - 1.0 / b)
    for design, ridge in [(X, ridge), (np.hstack([X, X[:, 1:2]]), np.zeros(p + 1))]:
        gram = (design.T @ design)[None]
        A = np.kron(shape, gram[0]) + np.diag(np.tile(ridge, b - 1))
        rows = rng.normal(size=(b - 1, design.shape[1]))
        got = RootBound(gram).solve(b, ridge, rows)
        assert np.all(np.isfinite(got))
        if np.any(ridge):
            assert_allclose(got.ravel(), np.linalg.solve(A, rows.ravel()), rtol=1e-10)
        else:
            assert_array_equal(got.ravel(), solve_psd(A, rows.ravel()))


@pytest.mark.parametrize("b", [2, 3, 16])
def test_root_bound_inverse_maps_apply_the_solve(b):
    """``(r - mean r) M1^-1 + mean r M2^-1`` is the Kronecker system's solution; a
    singular bound has no maps, and the gate step then solves with jitter."""
    rng = np.random.RandomState(b)
    p = 4
    X = np.hstack([np.ones((50, 1)), rng.normal(size=(50, p - 1))])
    ridge = np.r_[0.0, np.full(p - 1, 0.3)]
    gram = (X.T @ X)[None]
    A = np.kron(0.5 * (np.eye(b - 1) - 1.0 / b), gram[0]) + np.diag(np.tile(ridge, b - 1))
    rows = rng.normal(size=(b - 1, p))
    spread, mean = RootBound(gram).inverse_maps(b, ridge)
    centre = rows.mean(axis=0)
    got = (rows - centre) @ spread + centre @ mean
    assert_allclose(got.ravel(), np.linalg.solve(A, rows.ravel()), rtol=1e-10)
    twin = np.hstack([X, X[:, 1:2]])
    assert RootBound((twin.T @ twin)[None]).inverse_maps(b, np.zeros(p + 1)) is None


def test_root_steps_through_the_maps_are_the_solved_steps():
    """Five root steps through ``root_bohning_steps`` (the inverse maps) equal five
    steps solved by ``RootBound.solve``; without maps (a singular bound) the step
    is still taken, by the solve with jitter."""
    p, b, reg = 3, 4, 0.2
    X, w, targets, coef = _gate_problem(5, 150, p, b)
    kernels = get_backend("cpu")
    bound = bohning_bound(kernels, X, w)
    got = softmax_m_step(kernels, X, coef, w, targets=targets, reg=reg, solver="bohning",
                         n_steps=5, root_bound=bound)
    ridge = reg * np.r_[0.0, np.ones(p - 1)]
    expected = coef
    for _ in range(5):
        _, grad, _ = kernels.softmax_stats(X, expected, w, None, targets, None, "gradient")
        expected = expected.copy()
        expected[0, 1:] += _BOHNING_RELAXATION * bound.solve(
            b, ridge, grad[0, 1:] - ridge * expected[0, 1:])
    assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    twin = np.hstack([X, X[:, 1:2]])
    singular = bohning_bound(kernels, twin, w)
    assert singular.inverse_maps(b, np.zeros(p + 1)) is None
    start = np.zeros((1, b, p + 1))
    step = softmax_m_step(kernels, twin, start, w, targets=targets, solver="bohning",
                          root_bound=singular)
    assert np.all(np.isfinite(step)) and np.any(step != 0.0)


def _random_model(branching, gate_solver, seed, n=300, p=3):
    """A model on the CPU backend, a problem of n rows and random parameters for both."""
    rng = np.random.RandomState(seed)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n) + X[:, 1]
    w = rng.uniform(0.5, 1.5, size=n)
    tree = GatingTree(branching)
    model = Model(kernels=get_backend("cpu"), tree=tree, experts=GaussianExperts(0.0, 1e-12),
                  reg_gate=1e-3, gate_solver=gate_solver)
    params = {"gates": [rng.normal(scale=0.5, size=(tree.n_nodes[d], b, p))
                        for d, b in enumerate(branching)],
              "experts": {"coef": rng.normal(size=(tree.n_leaves, p)),
                          "var": rng.uniform(0.5, 2.0, size=tree.n_leaves)}}
    return model, Problem(X, X, y, w), params


@pytest.mark.parametrize("branching", [(4,), (3, 2)])
def test_newton_step_hands_its_log_probabilities_to_the_e_step(branching):
    """The gate log-probabilities the M-step returns are those at its new coefficients."""
    model, problem, params = _random_model(branching, "newton", 2)
    kernels, X = model.kernels, problem.X_gate
    _, log_resp = model.e_step(params, problem)
    resp = np.exp(log_resp)
    new, log_probs = model.m_step(params, problem, resp, return_log_probs=True)
    assert_allclose(new["gates"][0], model.m_step(params, problem, resp)["gates"][0])
    assert all(lp is not None for lp in log_probs)
    for coef, log_proba in zip(new["gates"], log_probs):
        expected = kernels.affine_log_softmax(X, coef, np.empty(log_proba.shape))
        assert_array_equal(log_proba, expected)
    ll, log_resp = model.e_step(new, problem, gate_log_probs=log_probs)
    ll_fresh, log_resp_fresh = model.e_step(new, problem)
    assert ll == ll_fresh
    assert_array_equal(log_resp, log_resp_fresh)


class _ThreeKernelExperts(GaussianExperts):
    """Gaussian experts without the fused flat E-step: the generic three-kernel path."""

    def __getattribute__(self, name):
        if name == "flat_posterior":
            raise AttributeError(name)
        return super().__getattribute__(name)


@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize("exponentiate", [False, True])
def test_flat_e_step_equals_the_three_kernel_path(known, exponentiate):
    """One gate and Gaussian experts take ``gaussian_posterior``: the same numbers, bit for bit."""
    model, problem, params = _random_model((4,), "bohning", 3)
    generic = Model(kernels=model.kernels, tree=model.tree,
                    experts=_ThreeKernelExperts(model.experts.reg, model.experts.min_variance),
                    reg_gate=model.reg_gate, gate_solver=model.gate_solver)
    assert not hasattr(generic.experts, "flat_posterior")
    levels = model.gate_log_probs(params["gates"], problem.X_gate) if known else None
    fused = model.e_step(params, problem, keep_root=True, gate_log_probs=levels,
                         exponentiate=exponentiate)
    plain = generic.e_step(params, problem, keep_root=True, gate_log_probs=levels,
                           exponentiate=exponentiate)
    assert fused[0] == plain[0]
    assert_array_equal(fused[1], plain[1])
    assert plain[2].gradient is None
    if exponentiate:
        # The fused pass hands the M-step the root's gradient at the responsibilities.
        assert fused[2].log_proba is None
        expected = model.kernels.softmax_gradient(problem.X_gate, plain[2].log_proba,
                                                  problem.weight, plain[1])
        assert_array_equal(fused[2].gradient, expected)
    else:
        assert fused[2].gradient is None
        assert_array_equal(fused[2].log_proba, plain[2].log_proba)


@pytest.mark.parametrize("branching, solver", [((4,), "bohning"), ((4,), "newton"),
                                               ((3, 2), "bohning")])
def test_em_in_a_workspace_is_em_in_new_arrays(branching, solver, monkeypatch):
    """Reusing the E-step's arrays changes no number, and the arrays are reused."""
    model, problem, params = _random_model(branching, solver, 5)
    reused = run_em(model, problem, params, max_iter=6, tol=0.0)
    workspace = Workspace(model.kernels)
    first = model.e_step(params, problem, keep_root=True, workspace=workspace)
    again = model.e_step(params, problem, keep_root=True, workspace=workspace)
    assert again[1] is first[1] and again[2].log_proba is first[2].log_proba
    monkeypatch.setattr(Workspace, "empty", lambda self, name, shape: self.kernels.empty(shape))
    fresh = run_em(model, problem, params, max_iter=6, tol=0.0)
    assert reused[1] == fresh[1]
    for got, expected in zip(reused[0]["gates"], fresh[0]["gates"]):
        assert_array_equal(got, expected)
    assert_array_equal(reused[0]["experts"]["coef"], fresh[0]["experts"]["coef"])
    assert_array_equal(reused[4], fresh[4])


@pytest.mark.parametrize("branching, solver", [((4,), "bohning"), ((3, 2), "newton")])
@pytest.mark.parametrize("max_iter, tol", [(6, 0.0), (50, 1e-3)], ids=["max_iter", "converged"])
def test_em_that_queues_the_next_m_step_first_is_the_same_em(branching, solver, max_iter, tol,
                                                             monkeypatch):
    """Where the log-likelihood arrives late (a GPU), run_em takes the next M-step
    before it reads it, and drops that step at convergence: the fit, the
    objectives, the iteration count and the responsibilities are unchanged."""
    model, problem, params = _random_model(branching, solver, 5)
    plain = run_em(model, problem, params, max_iter=max_iter, tol=tol)
    calls = []
    m_step = type(model).m_step
    monkeypatch.setattr(type(model), "m_step",
                        lambda self, *args, **kw: calls.append(1) or m_step(self, *args, **kw))
    monkeypatch.setattr(model.kernels, "LOG_LIKELIHOOD_ARRIVES_LATE", True)
    ahead = run_em(model, problem, params, max_iter=max_iter, tol=tol)
    assert ahead[1] == plain[1] and ahead[2:4] == plain[2:4]
    if tol:
        assert plain[2] and plain[3] < max_iter  # converged: a step was dropped
    # One M-step an iteration, and one more, dropped, where EM converged.
    assert len(calls) == plain[3] + plain[2]
    for got, expected in zip(ahead[0]["gates"], plain[0]["gates"]):
        assert_array_equal(got, expected)
    assert_array_equal(ahead[0]["experts"]["coef"], plain[0]["experts"]["coef"])
    assert_array_equal(ahead[4], plain[4])


@pytest.mark.parametrize("branching", [(4,), (3, 2)])
def test_deferred_log_likelihood_is_the_log_likelihood(branching):
    """``e_step(deferred=True)`` gives a function returning the same number."""
    model, problem, params = _random_model(branching, "bohning", 2)
    ll, resp = model.e_step(params, problem, exponentiate=True)
    later, resp_later = model.e_step(params, problem, exponentiate=True, deferred=True)
    assert later() == ll
    assert_array_equal(resp_later, resp)


@pytest.mark.parametrize("branching", [(4,), (3, 2)])
@pytest.mark.parametrize("exponentiate", [False, True])
def test_root_step_from_the_e_step_is_the_same_step(branching, exponentiate):
    """The first root Boehning step from what the E-step leaves (the root's
    log-probabilities, or with one gate and the responsibilities its gradient)
    is the same step."""
    model, problem, params = _random_model(branching, "bohning", 1)
    root_bound = model.root_bound(problem)
    ll, resp, root = model.e_step(params, problem, keep_root=True, exponentiate=exponentiate)
    if exponentiate and len(branching) == 1:
        assert root.log_proba is None
        assert root.gradient.shape == (1, branching[0], problem.X_gate.shape[1])
    else:
        assert root.gradient is None
        assert root.log_proba.shape == (problem.X_gate.shape[0], branching[0])
    assert ll == model.e_step(params, problem)[0]
    if not exponentiate:
        resp = np.exp(resp)
    plain = model.m_step(params, problem, resp, root_bound=root_bound)
    fast = model.m_step(params, problem, resp, root_bound=root_bound, root_start=root)
    for got, expected in zip(fast["gates"], plain["gates"]):
        assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    n_samples=st.integers(30, 150),
    n_features=st.integers(1, 3),
    n_experts=st.integers(1, 4),
    solver=st.sampled_from(["newton", "bohning"]),
    reg=st.sampled_from([0.0, 1e-6, 0.3]),
    weighted=st.booleans(),
    classifier=st.booleans(),
    init=st.sampled_from(["kmeans", "random", "random_from_data"]),
)
def test_log_likelihood_never_decreases(seed, n_samples, n_features, n_experts, solver, reg,
                                        weighted, classifier, init):
    rng = np.random.RandomState(seed)
    X, y = _gated_data(n_samples, seed, n_features)
    X = X * rng.uniform(0.1, 10.0, size=n_features) + rng.normal(size=n_features)
    w = rng.uniform(0.0, 3.0, size=n_samples) if weighted else None
    if classifier:
        y = _labels(X, seed)
        if np.unique(y).size < 2:
            y[:2] = [0, 1]
        est = MixtureOfExpertsClassifier(n_experts, reg_expert=reg)
    else:
        est = MixtureOfExpertsRegressor(n_experts, reg_expert=reg)
    assert_em_never_decreases(est, X, y, w, max_iter=30, gate_solver=solver, reg_gate=reg,
                              init_params=init, random_state=seed)


@pytest.mark.parametrize("Estimator", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier])
def test_warm_start_continues(Estimator):
    X, y = _gated_data()
    if Estimator is MixtureOfExpertsClassifier:
        y = _labels(X)
    two = Estimator(2, max_iter=2, tol=0.0, random_state=1)
    one = clone(two).set_params(max_iter=1, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        two.fit(X, y)
        one.fit(X, y)
        one.fit(X, y)
    assert_allclose(one.lower_bound_, two.lower_bound_, rtol=1e-12)
    assert_allclose(one.gate_coef_, two.gate_coef_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("change, message", [
    ({"n_experts": 3}, "the number of experts or the branching"),
    ({"gate_features": [0]}, "gate_features"),
    ({"expert_features": [1]}, "expert_features"),
    ({"expert_estimator": LinearRegression()}, "expert_estimator"),
])
def test_warm_start_refuses_a_changed_shape(change, message):
    """Continuing a fit whose shape changed is a clear error, not a crash or a silent refit."""
    X, y = _gated_data()
    est = MixtureOfExpertsRegressor(2, max_iter=2, random_state=0, warm_start=True)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    before = est.gate_coef_.copy()
    with pytest.raises(ValueError, match=f"warm_start=True continues.*{message}"):
        est.set_params(**change).fit(X, y)
    assert_allclose(est.gate_coef_, before)  # the failed fit changed nothing


def test_max_iter_zero_returns_initialisation():
    X, y = _gated_data()
    est = MixtureOfExpertsRegressor(2, max_iter=0, random_state=0).fit(X, y)
    assert est.n_iter_ == 0 and not est.converged_
    assert est.lower_bounds_.shape == (1,)
    longer = clone(est).set_params(max_iter=50).fit(X, y)
    assert_allclose(longer.lower_bounds_[0], est.lower_bound_, rtol=1e-12)


def test_more_starts_never_worse():
    X, y = _gated_data(seed=3)
    one = MixtureOfExpertsRegressor(3, random_state=0).fit(X, y)
    many = MixtureOfExpertsRegressor(3, n_init=5, random_state=0).fit(X, y)
    assert many.lower_bound_ >= one.lower_bound_ - 1e-9


def test_single_expert_is_weighted_least_squares():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3)) * [1.0, 100.0, 0.01]
    y = X @ [1.0, -0.02, 30.0] + 5.0 + rng.normal(size=100)
    w = rng.uniform(0.1, 2.0, size=100)
    est = MixtureOfExpertsRegressor(1, reg_expert=0.0).fit(X, y, sample_weight=w)
    ols = LinearRegression().fit(X, y, sample_weight=w)
    assert_allclose(est.expert_coef_[0], ols.coef_, rtol=1e-8)
    assert_allclose(est.expert_intercept_[0], ols.intercept_, rtol=1e-8)
    rss = np.sum(w * (y - ols.predict(X)) ** 2) / w.sum()
    assert_allclose(est.expert_variance_[0], rss, rtol=1e-8)
    assert_allclose(est.predict(X), ols.predict(X), rtol=1e-8)
    residual = y - ols.predict(X)
    expected_ll = np.sum(w * (-0.5 * np.log(2 * np.pi * rss) - 0.5 * residual**2 / rss))
    assert_allclose(est.log_likelihood(X, y, sample_weight=w), expected_ll, rtol=1e-10)


def test_probabilities_sum_to_one_and_likelihood_matches_bound():
    X, y = _gated_data()
    est = MixtureOfExpertsRegressor(3, reg_gate=0.0, reg_expert=0.0, random_state=0).fit(X, y)
    assert_allclose(est.predict_gate(X).sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(est.predict_responsibilities(X, y).sum(axis=1), 1.0, rtol=1e-12)
    # Without ridge the bound is the log-likelihood of the final parameters.
    assert_allclose(est.log_likelihood(X, y), est.lower_bound_, rtol=1e-12)
    # E[y|x] is the gate-weighted mean of the experts' predictions.
    assert_allclose(est.predict(X), np.sum(est.predict_gate(X) * est.predict_experts(X), axis=1))


def test_likelihood_weights_equal_repetition():
    X, y = _gated_data()
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y)
    w = np.arange(len(y)) % 3
    repeated = np.repeat(np.arange(len(y)), w)
    assert_allclose(est.log_likelihood(X, y, sample_weight=w),
                    est.log_likelihood(X[repeated], y[repeated]), rtol=1e-12)


def test_intercept_only_gate_is_a_mixture_of_regressions():
    X, y = _gated_data()
    est = MixtureOfExpertsRegressor(2, gate_features=[], random_state=0).fit(X, y)
    assert est.gate_coef_.shape == (2, 0)
    gate = est.predict_gate(X)
    assert_allclose(gate, np.broadcast_to(gate[0], gate.shape), rtol=1e-12)


def test_separate_gate_and_expert_covariates_by_name():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"z": rng.normal(size=400), "x": rng.normal(size=400)})
    first = frame.z > 0
    y = np.where(first, 2.0 * frame.x, -2.0 * frame.x) + 0.1 * rng.normal(size=400)
    est = MixtureOfExpertsRegressor(2, gate_features=["z"], expert_features=["x"], n_init=3,
                                    random_state=0).fit(frame, y)
    assert est.gate_coef_.shape == (2, 1) and est.expert_coef_.shape == (2, 1)
    assert_allclose(np.sort(est.expert_coef_.ravel()), [-2.0, 2.0], atol=0.1)
    mask = MixtureOfExpertsRegressor(2, gate_features=[True, False], expert_features=[1],
                                     n_init=3, random_state=0).fit(frame.values, y)
    assert_allclose(mask.lower_bound_, est.lower_bound_, rtol=1e-10)


def test_gate_solvers_agree_at_convergence():
    X, y = _gated_data(seed=5)
    fits = [MixtureOfExpertsRegressor(2, gate_solver=s, tol=1e-12, max_iter=5000,
                                      random_state=0).fit(X, y) for s in ["newton", "bohning"]]
    assert_allclose(fits[0].lower_bound_, fits[1].lower_bound_, rtol=1e-7)
    assert_allclose(fits[0].predict(X), fits[1].predict(X), rtol=1e-4, atol=1e-4)


def test_classifier_labels_and_probabilities():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 2))
    y = np.array(["low", "mid", "high"])[np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.5, 0.5])]
    clf = MixtureOfExpertsClassifier(2, random_state=0).fit(X, y)
    assert_array_equal(clf.classes_, ["high", "low", "mid"])
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 3)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y) > 0.9
    assert set(clf.predict(X)) <= set(y)
    assert clf.expert_coef_.shape == (2, 3, 2)


def test_convergence_warning_and_verbose(capsys):
    X, y = _gated_data()
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        MixtureOfExpertsRegressor(2, max_iter=2, tol=0.0, verbose=2, verbose_interval=1,
                                  random_state=0).fit(X, y)
    out = capsys.readouterr().out
    assert re.search(r"Iteration 2\s+mean log-likelihood", out)
    assert "Initialization done" in out


def test_same_random_state_same_fit():
    X, y = _gated_data()
    a = MixtureOfExpertsRegressor(3, n_init=2, random_state=7).fit(X, y)
    b = MixtureOfExpertsRegressor(3, n_init=2, random_state=7).fit(X, y)
    assert_array_equal(a.lower_bounds_, b.lower_bounds_)
    assert_array_equal(a.predict(X), b.predict(X))


def test_n_parameters():
    X, y = _gated_data(n_features=3)
    est = MixtureOfExpertsRegressor(3, gate_features=[0], random_state=0).fit(X, y)
    # gate: 2 free rows of (1 + 1); experts: 3 x (1 + 3 coefficients + variance)
    assert est.n_parameters() == 2 * 2 + 3 * 5


@pytest.mark.parametrize("collapsed", [[1], [0]])
def test_n_parameters_leaves_out_pruned_experts(collapsed):
    X, y = _gated_data(n_features=3)
    est = MixtureOfExpertsRegressor(3, gate_features=[0], random_state=0).fit(X, y)
    est.collapsed_experts_ = np.array(collapsed)
    # Two experts left: one free gate row (whichever child was the reference).
    assert est.n_parameters() == 1 * 2 + 2 * 5
    hme = HierarchicalMixtureOfExpertsRegressor((2, 2), gate_features=[0], max_iter=5,
                                                random_state=0)
    with pytest.warns(ConvergenceWarning):
        hme.fit(X, y)
    hme.collapsed_experts_ = np.array([2, 3])  # the root's child 1, whole
    # The root keeps one child (no free row), its left gate both (one row).
    assert hme.n_parameters() == 1 * 2 + 2 * 5
    hme.collapsed_experts_ = np.array([3])
    assert hme.n_parameters() == 2 * 2 + 3 * 5


def test_dataframe_in_every_method_without_warnings():
    """Non-regression: methods taking (X, y) validated X twice and warned on DataFrames."""
    import warnings

    X, y = _gated_data()
    frame = pd.DataFrame(X, columns=["a", "b"])
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(frame, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(frame)
        est.predict_gate(frame)
        est.predict_responsibilities(frame, y)
        est.log_likelihood(frame, y)
    assert_array_equal(est.feature_names_in_, ["a", "b"])


def test_information_criteria():
    X, y = _gated_data()
    w = np.random.RandomState(0).uniform(0.5, 1.5, size=len(y))
    est = MixtureOfExpertsRegressor(2, random_state=0).fit(X, y, sample_weight=w)
    ll, k, n = est.log_likelihood(X, y, w), est.n_parameters(), w.sum()
    assert_allclose(est.bic(X, y, w), -2 * ll + k * np.log(n), rtol=1e-12)
    assert_allclose(est.aic(X, y, w), -2 * ll + 2 * k, rtol=1e-12)
    resp = est.predict_responsibilities(X, y)
    entropy = -np.sum(w[:, None] * resp * np.log(resp))
    assert_allclose(est.icl(X, y, w), est.bic(X, y, w) + 2 * entropy, rtol=1e-10)
    assert est.icl(X, y, w) >= est.bic(X, y, w)


@pytest.mark.parametrize("Estimator, target", [
    (MixtureOfExpertsRegressor, "y"), (MixtureOfExpertsClassifier, "labels"),
])
def test_pickle_and_joblib_round_trips_predict_identically(Estimator, target, tmp_path):
    import pickle

    import joblib

    X, y = _gated_data()
    y = _labels(X) if target == "labels" else y
    est = Estimator(3, random_state=0).fit(X, y)
    method = "predict_proba" if target == "labels" else "predict"
    expected = getattr(est, method)(X)
    again = pickle.loads(pickle.dumps(est))
    assert_array_equal(getattr(again, method)(X), expected)
    joblib.dump(est, tmp_path / "model.joblib")
    assert_array_equal(getattr(joblib.load(tmp_path / "model.joblib"), method)(X), expected)


@pytest.mark.parametrize("Estimator", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier])
def test_parallel_starts_give_the_same_fit(Estimator):
    X, y = _gated_data()
    if Estimator is MixtureOfExpertsClassifier:
        y = _labels(X)
    serial = Estimator(3, n_init=4, random_state=0, n_jobs=1).fit(X, y)
    parallel = Estimator(3, n_init=4, random_state=0, n_jobs=2).fit(X, y)
    assert_array_equal(serial.lower_bounds_, parallel.lower_bounds_)
    assert_array_equal(serial.gate_coef_, parallel.gate_coef_)
