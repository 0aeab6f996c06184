"""Every CPU kernel against the slow oracle in tests/reference.py."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal

from skmoe import _config
from skmoe._kernels import _fastexp as fastexp
from skmoe._kernels import _pool, get_backend

from . import reference as ref

cpu = get_backend("cpu")


@pytest.fixture(autouse=True, params=["one-group", "tiny-groups", "tiny-groups-parallel"])
def chunking(request, monkeypatch):
    """Run each test with the real chunking (one group of rows) and with groups,
    chunks and blocks of a few rows, on the caller's thread and on the pool."""
    if "tiny" in request.param:
        monkeypatch.setattr(_config, "CHUNK_SIZE", 7)
        monkeypatch.setattr(_config, "GROUP_CHUNKS", 2)
        monkeypatch.setattr(_config, "BLOCK_ELEMENTS", 40)
        monkeypatch.setattr(_config, "MIN_BLOCK_ROWS", 3)
        monkeypatch.setattr(_config, "PARALLEL_MIN_GROUPS", 2)
    parallel = "parallel" in request.param
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS) if parallel else 1)
    # The prediction helpers' parallel builds, even on small data.
    monkeypatch.setattr(_config, "PARALLEL_MIN_WORK", 0 if parallel else 1 << 18)
    yield
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def _problem(seed, n=53, p=4, K=3):
    rng = np.random.RandomState(seed)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    w = rng.uniform(0.0, 2.0, size=n)
    w[::9] = 0.0
    resp = rng.dirichlet(np.ones(K), size=n)
    return rng, X, y, w, resp


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n_nodes, b", [(1, 2), (1, 5), (3, 2), (2, 3)])
def test_affine_log_softmax(seed, n_nodes, b):
    rng, X, *_ = _problem(seed)
    coef = rng.normal(scale=3.0, size=(n_nodes, b, X.shape[1]))
    out = np.empty((X.shape[0], n_nodes * b))
    cpu.affine_log_softmax(X, coef, out)
    assert_allclose(out, ref.affine_log_softmax(X, coef), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_gaussian_log_prob(seed):
    rng, X, y, *_ = _problem(seed)
    coef = rng.normal(size=(4, X.shape[1]))
    var = rng.uniform(0.01, 3.0, size=4)
    out = np.empty((X.shape[0], 4))
    cpu.gaussian_log_prob(X, y, coef, var, out)
    assert_allclose(out, ref.gaussian_log_prob(X, y, coef, var), rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n_classes", [2, 4])
def test_categorical_log_prob(seed, n_classes):
    rng, X, *_ = _problem(seed)
    coef = rng.normal(scale=2.0, size=(3, n_classes, X.shape[1]))
    y_idx = rng.randint(n_classes, size=X.shape[0]).astype(np.int64)
    out = np.empty((X.shape[0], 3))
    cpu.categorical_log_prob(X, coef, y_idx, out)
    assert_allclose(out, ref.categorical_log_prob(X, coef, y_idx), rtol=1e-12, atol=1e-12)


finite = st.floats(-700, 50, allow_nan=False)


@settings(max_examples=40, deadline=None)
@given(
    log_prior=arrays(np.float64, (17, 3), elements=finite),
    log_lik=arrays(np.float64, (17, 3), elements=finite),
    w=arrays(np.float64, (17,), elements=st.floats(0, 10)),
)
def test_posterior(log_prior, log_lik, w):
    out = np.empty_like(log_lik)
    ll = cpu.posterior(log_prior, log_lik, w, out)
    expected_resp, expected_ll = ref.posterior(log_prior, log_lik, w)
    assert_allclose(out, expected_resp, rtol=1e-10, atol=1e-10)
    assert_allclose(np.exp(out).sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(ll, expected_ll, rtol=1e-10, atol=1e-9)
    # exponentiate: the responsibilities, the same numbers through the same exp.
    resp = np.empty_like(log_lik)
    assert cpu.posterior(log_prior, log_lik, w, resp, exponentiate=True) == ll
    assert_array_equal(resp, cpu.exp(out, np.empty_like(out)))


@pytest.mark.parametrize("gate_known", [False, True])
@pytest.mark.parametrize("exponentiate", [False, True])
def test_gaussian_posterior(gate_known, exponentiate):
    """The flat E-step: the oracle's gate, experts and posterior in turn."""
    rng, X, y, w, _ = _problem(5)
    Xe = X[:, :3].copy()
    gate = rng.normal(scale=2.0, size=(1, 4, X.shape[1]))
    coef = rng.normal(size=(4, 3))
    var = rng.uniform(0.05, 2.0, size=4)
    log_gate = ref.affine_log_softmax(X, gate)
    expected, expected_ll = ref.posterior(log_gate, ref.gaussian_log_prob(Xe, y, coef, var), w)
    given = log_gate.copy() if gate_known else np.full_like(log_gate, np.nan)
    out = np.empty_like(log_gate)
    ll = cpu.gaussian_posterior(X, None if gate_known else gate, Xe, y, coef, var, w, given,
                                out, exponentiate)
    assert_allclose(given, log_gate, rtol=1e-12, atol=1e-12)
    assert_allclose(out, np.exp(expected) if exponentiate else expected, rtol=1e-10,
                    atol=1e-12)
    assert_allclose(ll, expected_ll, rtol=1e-12)


@pytest.mark.parametrize("gate_known", [False, True])
def test_gaussian_posterior_with_the_gate_gradient(gate_known):
    """With ``gate_gradient``, also the oracle's softmax gradient at the
    responsibilities; ``log_gate`` is not needed where the gate is given."""
    rng, X, y, w, _ = _problem(6)
    gate = rng.normal(scale=2.0, size=(1, 4, X.shape[1]))
    coef = rng.normal(size=(4, X.shape[1]))
    var = rng.uniform(0.05, 2.0, size=4)
    log_gate = ref.affine_log_softmax(X, gate)
    log_resp, expected_ll = ref.posterior(log_gate, ref.gaussian_log_prob(X, y, coef, var), w)
    _, expected, _, _ = ref.softmax_stats(X, gate, w, None, np.exp(log_resp))
    out = np.empty_like(log_gate)
    ll, grad = cpu.gaussian_posterior(X, None if gate_known else gate, X, y, coef, var, w,
                                      log_gate.copy() if gate_known else None, out, True,
                                      gate_gradient=True)
    assert_allclose(ll, expected_ll, rtol=1e-12)
    assert_allclose(out, np.exp(log_resp), rtol=1e-10, atol=1e-12)
    assert grad.shape == (1, 4, X.shape[1])
    assert_allclose(grad, expected, rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="exponentiate=True"):
        cpu.gaussian_posterior(X, gate, X, y, coef, var, w, None, out, gate_gradient=True)


def test_posterior_in_place():
    """``out`` may alias ``log_lik`` (the engine relies on it)."""
    rng, X, y, w, resp = _problem(0)
    log_prior = np.log(resp)
    log_lik = rng.normal(size=resp.shape)
    expected, expected_ll = ref.posterior(log_prior, log_lik, w)
    ll = cpu.posterior(log_prior, log_lik, w, log_lik)
    assert_allclose(log_lik, expected, rtol=1e-12, atol=1e-12)
    assert_allclose(ll, expected_ll, rtol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_grams_and_wls_stats(seed):
    rng, X, y, w, resp = _problem(seed)
    assert_allclose(cpu.weighted_grams(X, resp * w[:, None]),
                    ref.weighted_grams(X, resp * w[:, None]), rtol=1e-12, atol=1e-12)
    for got, expected in zip(cpu.wls_stats(X, y, resp, w), ref.wls_stats(X, y, resp, w)):
        assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_started_wls_stats_are_wls_stats():
    _, X, y, w, resp = _problem(0)
    for got, expected in zip(cpu.start_wls_stats(X, y, resp, w)(), cpu.wls_stats(X, y, resp, w)):
        assert_array_equal(got, expected)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("n_nodes, b", [(1, 3), (2, 2), (2, 4)])
@pytest.mark.parametrize("root", [True, False])
def test_softmax_stats_dense_targets(seed, n_nodes, b, root):
    rng, X, y, w, _ = _problem(seed)
    n = X.shape[0]
    coef = rng.normal(size=(n_nodes, b, X.shape[1]))
    coef[:, 0] = 0.0
    mass = None if root else rng.uniform(0.0, 1.0, size=(n, n_nodes))
    shares = rng.dirichlet(np.ones(b), size=(n, n_nodes))
    scale = np.ones((n, n_nodes)) if mass is None else mass
    targets = (shares * scale[:, :, None]).reshape(n, n_nodes * b)
    objective, grad, fisher, gram = ref.softmax_stats(X, coef, w, mass, targets)
    got = cpu.softmax_stats(X, coef, w, mass, targets, None, None)
    assert_allclose(got[0], objective, rtol=1e-12)
    got = cpu.softmax_stats(X, coef, w, mass, targets, None, "gradient")
    assert_allclose(got[1], grad, rtol=1e-10, atol=1e-10)
    got = cpu.softmax_stats(X, coef, w, mass, targets, None, "bohning")
    assert_allclose(got[1], grad, rtol=1e-10, atol=1e-10)
    assert_allclose(got[2], gram, rtol=1e-12, atol=1e-12)
    got = cpu.softmax_stats(X, coef, w, mass, targets, None, "newton")
    assert_allclose(got[2], fisher, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("b", [2, 5])
def test_softmax_gradient_from_log_proba(seed, b):
    rng, X, y, w, _ = _problem(seed)
    n = X.shape[0]
    coef = rng.normal(size=(1, b, X.shape[1]))
    coef[:, 0] = 0.0
    targets = rng.dirichlet(np.ones(b), size=n)
    log_proba = cpu.affine_log_softmax(X, coef, np.empty((n, b)))
    _, grad, _, _ = ref.softmax_stats(X, coef, w, None, targets)
    got = cpu.softmax_gradient(X, log_proba, w, targets)
    assert got.shape == (1, b, X.shape[1])
    assert_allclose(got, grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_sums_with_a_factor_is_the_softmax_objective(seed):
    """Soft counts times log-probabilities, weighted and summed: the oracle's objective."""
    rng, X, y, w, _ = _problem(seed)
    n, n_nodes, b = X.shape[0], 2, 3
    coef = rng.normal(size=(n_nodes, b, X.shape[1]))
    targets = rng.dirichlet(np.ones(b), size=(n, n_nodes)).reshape(n, n_nodes * b)
    log_proba = cpu.affine_log_softmax(X, coef, np.empty((n, n_nodes * b)))
    got = cpu.weighted_sums(log_proba, w, targets)
    assert_allclose(got, np.array([np.sum(w * log_proba[:, j] * targets[:, j])
                                   for j in range(n_nodes * b)]), rtol=1e-12)
    objective = ref.softmax_stats(X, coef, w, None, targets)[0]
    assert_allclose(got.reshape(n_nodes, b).sum(1), objective, rtol=1e-10)
    assert_allclose(cpu.weighted_sums(log_proba, w), w @ log_proba, rtol=1e-12)


def test_softmax_stats_one_hot_targets():
    """Multinomial experts: mass on the observed class equals dense targets."""
    rng, X, y, w, resp = _problem(4)
    n, K, c = X.shape[0], resp.shape[1], 3
    coef = rng.normal(size=(K, c, X.shape[1]))
    y_idx = rng.randint(c, size=n).astype(np.int64)
    dense = np.zeros((n, K, c))
    dense[np.arange(n), :, y_idx] = resp
    dense = dense.reshape(n, K * c)
    for curvature in [None, "gradient", "bohning", "newton"]:
        got = cpu.softmax_stats(X, coef, w, resp, None, y_idx, curvature)
        expected = cpu.softmax_stats(X, coef, w, resp, dense, None, curvature)
        for a, b in zip(got, expected):
            if a is not None:
                assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_mix(seed):
    rng, X, y, w, resp = _problem(seed)
    values = rng.normal(size=resp.shape)
    out = np.empty(X.shape[0])
    cpu.mix(np.log(resp), values, out)
    assert_allclose(out, ref.mix(np.log(resp), values), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    log_weight=arrays(np.float64, (13, 4),
                      elements=st.one_of(st.just(-np.inf), st.floats(-700, 0))),
    log_values=arrays(np.float64, (13, 4), elements=st.floats(-800, 700)),
)
def test_log_mix(log_weight, log_values):
    """The log mixture of each row (a row of log predictive densities): scipy's
    logsumexp, -inf where every weight is 0, never an overflow."""
    from scipy.special import logsumexp

    out = cpu.log_mix(log_weight, log_values, np.empty(13))
    expected = logsumexp(log_weight + log_values, axis=1)
    assert_array_equal(np.isneginf(out), np.isneginf(expected))
    finite = np.isfinite(expected)
    assert_allclose(out[finite], expected[finite], rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("seed", range(3))
def test_mix_categorical(seed):
    rng, X, y, w, resp = _problem(seed)
    coef = rng.normal(size=(resp.shape[1], 4, X.shape[1]))
    out = np.empty((X.shape[0], 4))
    cpu.mix_categorical(X, coef, np.log(resp), out)
    assert_allclose(out, ref.mix_categorical(X, coef, np.log(resp)), rtol=1e-12)
    assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)


def test_unknown_backend():
    with pytest.raises(ValueError, match="Unknown backend 'tpu'"):
        get_backend("tpu")


def _elementwise(fn):
    """A compiled loop applying the scalar Numba function ``fn`` to every element."""

    @numba.njit
    def loop(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])

    return loop


_exp_loop = _elementwise(fastexp.exp)
_log_loop = _elementwise(fastexp.log)


def test_fast_exp_within_one_ulp():
    """The vectorisable exp of the CPU kernels against NumPy's, edges included."""
    rng = np.random.RandomState(0)
    # [-708, -700]: results just above the subnormals, where 2^k must scale once.
    x = np.concatenate([rng.uniform(-760.0, 720.0, 20000), np.linspace(-40.0, 0.0, 4001),
                        rng.uniform(-708.0, -700.0, 20000),
                        [0.0, -0.0, 1e-300, -1e-300, fastexp.MIN_ARG, fastexp.MAX_ARG, 709.5,
                         np.inf, -np.inf, np.nan]])
    out = np.empty_like(x)
    _exp_loop(x, out)
    with np.errstate(over="ignore"):
        expected = np.exp(x)
    normal = (x >= fastexp.MIN_ARG) & (x <= fastexp.MAX_ARG)
    ulps = np.abs(out[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= 1.0
    assert np.all(out[x < fastexp.MIN_ARG] == 0.0)
    assert np.all(out[x > fastexp.MAX_ARG] == np.inf)
    assert np.isnan(out[np.isnan(x)]).all()


def test_fast_log_within_one_ulp():
    """The vectorisable log of the CPU kernels against NumPy's, edges included."""
    rng = np.random.RandomState(0)
    tiny = np.finfo(float).tiny
    x = np.concatenate([np.exp(rng.uniform(-745.0, 709.7, 20000)), rng.uniform(0.5, 2.0, 20000),
                        rng.uniform(1.0, 64.0, 20000), 1.0 + rng.uniform(-1e-6, 1e-6, 2000),
                        rng.uniform(0.0, tiny, 1000),
                        [1.0, 2.0, 0.5, np.sqrt(2.0), 5e-324, tiny, np.finfo(float).max]])
    out = np.empty_like(x)
    _log_loop(x, out)
    expected = np.log(x)
    ulps = np.abs(out - expected) / np.spacing(np.abs(expected))
    assert ulps.max() <= 1.0
    assert out[x == 1.0].tolist() == [0.0] * int(np.sum(x == 1.0))
    special = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan])
    out = np.empty_like(special)
    _log_loop(special, out)
    assert out[:2].tolist() == [-np.inf, -np.inf] and out[4] == np.inf
    assert np.isnan(out[[2, 3, 5]]).all()


def test_exp_kernel_in_place():
    rng, X, y, w, resp = _problem(1)
    log_resp = np.log(resp)
    expected = np.exp(log_resp)
    out = cpu.exp(log_resp, log_resp)
    assert out is log_resp
    assert_allclose(out, expected, rtol=4e-16, atol=0)


@pytest.mark.parametrize("tasks_per_thread", [1, 3, 1000])
@pytest.mark.parametrize("n", [1, 7, 100])
def test_pool_runs_every_group_once_in_group_order(n, tasks_per_thread, monkeypatch):
    """Tasks of consecutive groups on 4 threads: each group once, results in group order."""
    monkeypatch.setattr(_config, "CHUNK_SIZE", 3)
    monkeypatch.setattr(_config, "GROUP_CHUNKS", 1)
    monkeypatch.setattr(_config, "PARALLEL_MIN_GROUPS", 2)
    monkeypatch.setattr(_config, "POOL_TASKS_PER_THREAD", tasks_per_thread)
    monkeypatch.setattr(_pool.numba, "get_num_threads", lambda: 4)
    calls = []
    results = list(_pool._map_groups(n, lambda start, stop: calls.append(start) or (start, stop)))
    expected = [(start, min(n, start + 3)) for start in range(0, n, 3)]
    assert results == expected
    assert sorted(calls) == [start for start, _ in expected]
    sums = _pool._sum_groups(n, lambda start, stop: (np.arange(start, stop).sum(keepdims=True),))
    assert sums[0][0] == n * (n - 1) // 2
