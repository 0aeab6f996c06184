"""The CUDA backend under Numba's CUDA simulator, against the oracle and the CPU backend.

CI has no GPU, so every CUDA kernel runs here in the simulator
(``NUMBA_ENABLE_CUDASIM=1``, set below before ``numba.cuda`` is first imported) on
tiny data, with the launch geometry patched small: a few threads per block,
chunks of a few rows and shared-memory tiles of a row or two, so that several
blocks, chunk edges and tile edges are exercised. The real GPU is checked by
``benchmarks/bench_cuda.py``.
"""

import contextlib
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning


def _enable_simulator():
    """Switch Numba to its CUDA simulator before anything imports ``numba.cuda``."""
    from numba.core import config

    if "numba.cuda" in sys.modules and not config.ENABLE_CUDASIM:
        raise RuntimeError(
            "numba.cuda was imported before tests/test_cuda.py could enable the CUDA "
            "simulator; run it with NUMBA_ENABLE_CUDASIM=1."
        )
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    config.reload_config()


_enable_simulator()

from skmoe import (  # noqa: E402
    HierarchicalMixtureOfExpertsClassifier,
    HierarchicalMixtureOfExpertsRegressor,
    MixtureOfExpertsClassifier,
    MixtureOfExpertsRegressor,
    _config,
)
from skmoe._kernels import cuda as gpu  # noqa: E402
from skmoe._kernels import get_backend  # noqa: E402

from . import reference as ref  # noqa: E402

cpu = get_backend("cpu")


@pytest.fixture(autouse=True, params=[(8, 7, 40), (3, 5, 12)], ids=["8threads", "3threads"])
def small_geometry(request, monkeypatch):
    """Threads per block, rows per chunk and shared-memory doubles, all small.

    The chunk sums run on blocks of 3 outputs x 2 lanes, so that a block's
    edge and the lanes' strides are exercised too.
    """
    threads, chunk, shared = request.param
    monkeypatch.setattr(_config, "THREADS_PER_BLOCK", threads)
    monkeypatch.setattr(_config, "CUDA_CHUNK_SIZE", chunk)
    monkeypatch.setattr(gpu, "_SHARED_DOUBLES", shared)
    monkeypatch.setattr(gpu, "_SUM_COLS", 3)
    monkeypatch.setattr(gpu, "_SUM_LANES", 2)


def _problem(seed, n=23, p=4, K=3):
    rng = np.random.RandomState(seed)
    X = np.hstack([np.ones((n, 1)), rng.normal(size=(n, p - 1))])
    y = rng.normal(size=n)
    w = rng.uniform(0.0, 2.0, size=n)
    w[::9] = 0.0
    resp = rng.dirichlet(np.ones(K), size=n)
    return rng, X, y, w, resp


def test_simulator_is_on():
    assert gpu.cuda.__name__.startswith("numba")
    assert get_backend("cuda") is gpu


@pytest.mark.parametrize("n_nodes, b", [(1, 3), (2, 2)])
def test_affine_log_softmax(n_nodes, b):
    rng, X, *_ = _problem(0)
    coef = rng.normal(scale=3.0, size=(n_nodes, b, X.shape[1]))
    out = np.empty((X.shape[0], n_nodes * b))
    gpu.affine_log_softmax(X, coef, out)
    assert_allclose(out, ref.affine_log_softmax(X, coef), rtol=1e-12, atol=1e-12)


def test_gaussian_log_prob_device_arrays():
    """Device inputs and a device output give what NumPy ones give."""
    rng, X, y, *_ = _problem(1)
    coef = rng.normal(size=(4, X.shape[1]))
    var = rng.uniform(0.01, 3.0, size=4)
    out = gpu.empty((X.shape[0], 4))
    gpu.gaussian_log_prob(gpu.to_device(X), gpu.to_device(y), coef, var, out)
    assert_allclose(gpu.to_host(out), ref.gaussian_log_prob(X, y, coef, var), rtol=1e-12)


@pytest.mark.parametrize("n_classes", [2, 4])
def test_categorical_log_prob(n_classes):
    rng, X, *_ = _problem(2)
    coef = rng.normal(scale=2.0, size=(3, n_classes, X.shape[1]))
    y_idx = rng.randint(n_classes, size=X.shape[0]).astype(np.int64)
    out = np.empty((X.shape[0], 3))
    gpu.categorical_log_prob(X, coef, y_idx, out)
    assert_allclose(out, ref.categorical_log_prob(X, coef, y_idx), rtol=1e-12, atol=1e-12)


def test_posterior_in_place_and_extremes():
    """``out`` may alias ``log_lik``; -inf and large magnitudes stay finite where they should."""
    rng, X, y, w, resp = _problem(3)
    log_prior = np.log(resp)
    log_prior[4, 1] = -np.inf
    log_lik = rng.normal(scale=300.0, size=resp.shape)
    expected, expected_ll = ref.posterior(log_prior, log_lik, w)
    resp = np.empty_like(log_lik)
    ll_exp = gpu.posterior(log_prior, log_lik, w, resp, exponentiate=True)
    ll = gpu.posterior(log_prior, log_lik, w, log_lik)
    assert_allclose(log_lik, expected, rtol=1e-12, atol=1e-12)
    assert_allclose(ll, expected_ll, rtol=1e-12)
    assert ll_exp == ll
    assert_allclose(resp, np.exp(expected), rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("gate_known", [False, True], ids=["gate-coef", "gate-known"])
@pytest.mark.parametrize("designs", ["one", "two"])
@pytest.mark.parametrize("shared_coefs", [1024, 8], ids=["coefs-shared", "coefs-global"])
def test_gaussian_posterior(gate_known, designs, shared_coefs, monkeypatch):
    """The fused flat E-step against the oracle and the CPU backend, on device arrays."""
    monkeypatch.setattr(gpu, "_SHARED_COEFS", shared_coefs)
    rng, X, y, w, _ = _problem(6)
    Xe = X if designs == "one" else X[:, :3].copy()
    K = 4
    gate = rng.normal(scale=2.0, size=(1, K, X.shape[1]))
    coef = rng.normal(size=(K, Xe.shape[1]))
    var = rng.uniform(0.05, 2.0, size=K)
    log_gate = ref.affine_log_softmax(X, gate)
    expected, expected_ll = ref.posterior(log_gate, ref.gaussian_log_prob(Xe, y, coef, var), w)
    Xd = gpu.to_device(X)
    Xed = Xd if designs == "one" else gpu.to_device(Xe)
    for exponentiate in (False, True):
        d_gate = gpu.to_device(log_gate) if gate_known else gpu.empty(log_gate.shape)
        out = gpu.empty(log_gate.shape)
        ll = gpu.gaussian_posterior(Xd, None if gate_known else gate, Xed, gpu.to_device(y),
                                    coef, var, gpu.to_device(w), d_gate, out, exponentiate)
        assert_allclose(gpu.to_host(d_gate), log_gate, rtol=1e-12, atol=1e-12)
        assert_allclose(gpu.to_host(out), np.exp(expected) if exponentiate else expected,
                        rtol=1e-10, atol=1e-12)
        assert_allclose(ll, expected_ll, rtol=1e-12)
        cpu_out, cpu_gate = np.empty_like(expected), log_gate.copy()
        cpu_ll = cpu.gaussian_posterior(X, None if gate_known else gate, Xe, y, coef, var, w,
                                        cpu_gate, cpu_out, exponentiate)
        assert_allclose(gpu.to_host(out), cpu_out, rtol=1e-13, atol=1e-15)
        assert_allclose(ll, cpu_ll, rtol=1e-14)


@pytest.mark.parametrize("gate_known", [False, True], ids=["gate-coef", "gate-known"])
@pytest.mark.parametrize("K, designs", [(4, "one"), (6, "two")])
def test_gaussian_posterior_with_the_gate_gradient(gate_known, K, designs, monkeypatch):
    """The fused E-step's gate gradient (the first gate step's, in the same pass:
    residuals beside the design, padded edges, row groups) against the oracle and
    the CPU backend; the root's steps start from it on the device and through the
    host."""
    rng, X, y, w, _ = _problem(9)
    Xe = X if designs == "one" else X[:, :3].copy()
    gate = rng.normal(scale=2.0, size=(1, K, X.shape[1]))
    gate[:, 0] = 0.0
    coef = rng.normal(size=(K, Xe.shape[1]))
    var = rng.uniform(0.05, 2.0, size=K)
    log_gate = ref.affine_log_softmax(X, gate)
    log_resp, expected_ll = ref.posterior(log_gate, ref.gaussian_log_prob(Xe, y, coef, var), w)
    resp = np.exp(log_resp)
    _, expected, _, _ = ref.softmax_stats(X, gate, w, None, resp)
    Xd, yd, wd = gpu.to_device(X), gpu.to_device(y), gpu.to_device(w)
    Xed = Xd if designs == "one" else gpu.to_device(Xe)
    out = gpu.empty(log_gate.shape)
    ll, grad = gpu.gaussian_posterior(
        Xd, None if gate_known else gate, Xed, yd, coef, var, wd,
        gpu.to_device(log_gate) if gate_known else None, out, True, gate_gradient=True)
    assert_allclose(gpu.to_host(out), resp, rtol=1e-10, atol=1e-12)
    assert_allclose(ll, expected_ll, rtol=1e-12)
    assert grad.shape == (1, K, X.shape[1])
    assert_allclose(gpu.to_host(grad), expected, rtol=1e-11, atol=1e-11)
    cpu_ll, cpu_grad = cpu.gaussian_posterior(
        X, None if gate_known else gate, Xe, y, coef, var, w,
        log_gate.copy() if gate_known else None, np.empty_like(resp), True, gate_gradient=True)
    assert_allclose(ll, cpu_ll, rtol=1e-14)
    assert_allclose(gpu.to_host(grad), cpu_grad, rtol=1e-12, atol=1e-13)
    p = X.shape[1]
    maps = (rng.normal(size=(p, p)) * 0.1, rng.normal(size=(p, p)) * 0.1)
    steps = cpu.root_bohning_steps(X, gate, w, resp, None, maps, 0.3, 2, 1.8)
    for shared in (gpu._SHARED_DOUBLES, 6144):  # through the host, then on the device
        monkeypatch.setattr(gpu, "_SHARED_DOUBLES", shared)
        got = gpu.root_bohning_steps(Xd, gate, wd, out, None, maps, 0.3, 2, 1.8, gradient=grad)
        assert_allclose(got, steps, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("n_columns", [3, 17])
@pytest.mark.parametrize("shape, tiles, warps", [
    ((8, 4), (1, 1), 2), ((16, 4), (3, 2), 8), ((16, 8), (3, 1), 1), ((16, 16), (1, 2), 8)])
def test_grams_in_tensor_core_tiles(n_columns, shape, tiles, warps, monkeypatch):
    """The Gram's mma.sync steps (emulated) of every shape: entries in tiles of m
    and columns in tiles of 8 (the last ones padded), tasks split between warps
    and between a chunk's blocks, and chunks that end inside a k-step."""
    monkeypatch.setattr(gpu, "_MMA_SHAPE", shape)
    monkeypatch.setattr(gpu, "_GRAM_TILES", tiles)
    monkeypatch.setattr(gpu, "_GRAM_WARPS", warps)
    rng, X, y, w, _ = _problem(7)
    weights = rng.uniform(size=(X.shape[0], n_columns))
    assert_allclose(gpu.weighted_grams(X, weights), ref.weighted_grams(X, weights),
                    rtol=1e-12, atol=1e-12)
    resp = weights / weights.sum(axis=1, keepdims=True)
    for got, expected in zip(gpu.wls_stats(X, y, resp, w), ref.wls_stats(X, y, resp, w)):
        assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_gram_layout_covers_every_tile_once():
    """Tasks of entry tiles x column tiles cover the tiles, and warps the tasks."""
    for M in (1, 8, 9, 16, 17, 64):
        for d in (1, 2, 6, 23, 40):
            for m, tiles, warps in [(8, (1, 1), 2), (16, (3, 2), 8), (16, (3, 1), 1),
                                    (16, (1, 2), 8)]:
                (n_entries, entry_tiles, column_tiles, entry_tasks, column_tasks,
                 n_warps, blocks) = gpu._gram_layout(M, d, m, tiles, warps)
                assert n_entries == d * (d + 1) // 2
                assert entry_tiles <= tiles[0] and column_tiles <= tiles[1]
                assert entry_tasks * entry_tiles * m >= n_entries
                assert (entry_tasks - 1) * entry_tiles * m < n_entries
                assert column_tasks * column_tiles * 8 >= M
                assert (column_tasks - 1) * column_tiles * 8 < M
                assert 1 <= n_warps <= warps
                assert blocks * n_warps >= entry_tasks * column_tasks


def test_weighted_grams_and_wls_stats():
    rng, X, y, w, resp = _problem(4)
    weights = resp * w[:, None]
    assert_allclose(gpu.weighted_grams(X, weights), ref.weighted_grams(X, weights),
                    rtol=1e-12, atol=1e-12)
    for got, expected in zip(gpu.wls_stats(X, y, resp, w), ref.wls_stats(X, y, resp, w)):
        assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_deferred_log_likelihoods_outlast_later_kernels():
    """A deferred E-step log-likelihood read after other kernels' sums (an M-step's)
    is the E-step's: its buffer is its own until the next E-step."""
    rng, X, y, w, _ = _problem(8)
    K = 3
    gate = rng.normal(size=(1, K, X.shape[1]))
    coef, var = rng.normal(size=(K, X.shape[1])), rng.uniform(0.5, 2.0, size=K)
    Xd, yd, wd = gpu.to_device(X), gpu.to_device(y), gpu.to_device(w)
    log_gate, out = gpu.empty((X.shape[0], K)), gpu.empty((X.shape[0], K))
    fused = gpu.gaussian_posterior(Xd, gate, Xd, yd, coef, var, wd, log_gate, out, True)
    log_lik = rng.normal(size=(X.shape[0], K))
    plain = gpu.posterior(gpu.to_host(log_gate), log_lik, w, np.empty_like(log_lik))
    later_fused = gpu.gaussian_posterior(Xd, gate, Xd, yd, coef, var, wd, log_gate, out, True,
                                         deferred=True)
    later_plain = gpu.posterior(gpu.to_host(log_gate), log_lik, w, np.empty_like(log_lik),
                                deferred=True)
    gpu.wls_stats(Xd, yd, out, wd)
    gpu.softmax_stats(Xd, gate, wd, None, out, None, "gradient")
    gpu.total(wd)
    assert later_fused() == fused
    assert later_plain() == plain


def test_started_wls_stats_run_beside_the_default_stream():
    """start_wls_stats gives wls_stats's numbers, from device inputs and host inputs,
    while other kernels run on the default stream before it ends; its buffers are
    its own."""
    rng, X, y, w, resp = _problem(5)
    Xd, yd, wd, rd = (gpu.to_device(a) for a in (X, y, w, resp))
    finish = gpu.start_wls_stats(Xd, yd, rd, wd)
    other = gpu.wls_stats(X, np.zeros_like(y), np.ones_like(resp), w)  # on the default stream
    for got, expected in zip(finish(), ref.wls_stats(X, y, resp, w)):
        assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert_allclose(other[3], np.full(resp.shape[1], w.sum()), rtol=1e-12)
    for got, expected in zip(gpu.start_wls_stats(X, y, resp, w)(), gpu.wls_stats(X, y, resp, w)):
        assert_array_equal(got, expected)


def test_direct_launch_packs_arguments_as_numba_cuda_does():
    """The simulator launches through the dispatcher; the packing the direct launches
    use on a GPU is numba-cuda 0.30's ``_Kernel._prepare_args``: an array as meminfo,
    parent, size, item size, data pointer, shape and strides; scalars as C values of
    their type; anything else is left to the dispatcher."""
    import ctypes
    import types as pytypes

    from numba.core import types

    assert gpu._LAUNCHER is None  # the simulator has no compiled functions to launch
    array = pytypes.SimpleNamespace(
        size=6, dtype=np.dtype(np.float64), shape=(2, 3), strides=(24, 8),
        device_ctypes_pointer=ctypes.c_void_p(4096))
    def pack(ty, value):
        out = []
        gpu._arg_packer(ty)(value, out)
        return out

    assert pack(types.Array(types.float64, 2, "C"), array) == [0, 0, 6, 8, 4096, 2, 3, 24, 8]
    (flag,) = pack(types.boolean, np.True_)
    assert flag is True
    (count,) = pack(types.int64, 7)
    assert isinstance(count, ctypes.c_int64) and count.value == 7
    (half,) = pack(types.float64, 0.5)
    assert isinstance(half, ctypes.c_double) and half.value == 0.5
    assert gpu._arg_packer(types.complex128) is None


def test_weighted_grams_wide():
    """More features than one 4 x 4 tile row and more columns than a block's items."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(17, 9))
    weights = rng.uniform(size=(17, 5))
    assert_allclose(gpu.weighted_grams(X, weights), ref.weighted_grams(X, weights),
                    rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_nodes, b, root", [(1, 3, True), (2, 2, False), (2, 3, False)])
def test_softmax_stats_dense_targets(n_nodes, b, root):
    rng, X, y, w, _ = _problem(6)
    n = X.shape[0]
    coef = rng.normal(size=(n_nodes, b, X.shape[1]))
    coef[:, 0] = 0.0
    mass = None if root else rng.uniform(0.0, 1.0, size=(n, n_nodes))
    shares = rng.dirichlet(np.ones(b), size=(n, n_nodes))
    scale = np.ones((n, n_nodes)) if mass is None else mass
    targets = (shares * scale[:, :, None]).reshape(n, n_nodes * b)
    objective, grad, fisher, gram = ref.softmax_stats(X, coef, w, mass, targets)
    got = gpu.softmax_stats(X, coef, w, mass, targets, None, None)
    assert_allclose(got[0], objective, rtol=1e-12)
    assert got[1] is None and got[2] is None
    got = gpu.softmax_stats(X, coef, w, mass, targets, None, "gradient")
    assert_allclose(got[1], grad, rtol=1e-10, atol=1e-10)
    got = gpu.softmax_stats(X, coef, w, mass, targets, None, "bohning")
    assert_allclose(got[1], grad, rtol=1e-10, atol=1e-10)
    assert_allclose(got[2], gram, rtol=1e-12, atol=1e-12)
    got = gpu.softmax_stats(X, coef, w, mass, targets, None, "newton")
    assert_allclose(got[2], fisher, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shared_coefs", [0, 1024], ids=["coef_in_global", "coef_in_shared"])
def test_softmax_gradient_and_coefficient_memory(monkeypatch, shared_coefs):
    """The gradient from the E-step's log-probabilities, and from coefficients read
    through shared or global memory: the CPU backend's numbers."""
    monkeypatch.setattr(gpu, "_SHARED_COEFS", shared_coefs)
    rng, X, y, w, resp = _problem(11, K=5)
    log_proba = np.log(rng.dirichlet(np.ones(5), size=X.shape[0]))
    assert_allclose(gpu.softmax_gradient(X, log_proba, w, resp),
                    cpu.softmax_gradient(X, log_proba, w, resp), rtol=1e-12, atol=1e-12)
    coef = rng.normal(size=(1, 5, X.shape[1]))
    got = gpu.softmax_stats(X, coef, w, None, resp, None, "gradient")
    expected = cpu.softmax_stats(X, coef, w, None, resp, None, "gradient")
    assert_allclose(got[0], expected[0], rtol=1e-12)
    assert_allclose(got[1], expected[1], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("on_device", [True, False], ids=["device", "host"])
@pytest.mark.parametrize("from_log_proba", [False, True])
def test_root_bohning_steps_on_the_device(from_log_proba, on_device, monkeypatch):
    """The root's steps queued on the device (pass, chunk sums, one-block update,
    for each step), or through the host where the maps do not fit a block's
    shared memory: the CPU backend's coefficients, ``meanwhile`` called once."""
    if on_device:
        monkeypatch.setattr(gpu, "_SHARED_DOUBLES", 6144)
    rng, X, y, w, resp = _problem(12, K=5)
    coef = rng.normal(scale=0.3, size=(1, 5, X.shape[1]))
    coef[:, 0] = 0.0
    logits = X @ coef[0].T
    log_proba = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_proba = log_proba if from_log_proba else None
    p = X.shape[1]
    maps = (rng.normal(size=(p, p)) * 0.1, rng.normal(size=(p, p)) * 0.1)
    calls = []
    got = gpu.root_bohning_steps(X, coef, w, resp, log_proba, maps, 0.3, 3, 1.8,
                                 lambda: calls.append(1))
    expected = cpu.root_bohning_steps(X, coef, w, resp, log_proba, maps, 0.3, 3, 1.8)
    assert calls == [1]
    assert_allclose(got, expected, rtol=1e-11, atol=1e-12)
    assert_array_equal(got[0, 0], coef[0, 0])


def test_softmax_stats_one_hot_targets():
    """Multinomial experts: the class mass on ``y_idx``, as the CPU backend computes it."""
    rng, X, y, w, resp = _problem(7)
    coef = rng.normal(size=(resp.shape[1], 3, X.shape[1]))
    y_idx = rng.randint(3, size=X.shape[0]).astype(np.int64)
    for curvature in [None, "gradient", "bohning", "newton"]:
        got = gpu.softmax_stats(X, coef, w, resp, None, y_idx, curvature)
        expected = cpu.softmax_stats(X, coef, w, resp, None, y_idx, curvature)
        for a, b in zip(got, expected):
            if b is None:
                assert a is None
            else:
                assert_allclose(a, b, rtol=1e-11, atol=1e-11)


def test_starts_are_the_cpu_starts():
    """The random start drawn on the GPU, and a softened hard start built there from the
    labels: the CPU backend's arrays, bit for bit."""
    got = gpu.to_host(gpu.random_responsibilities(29, 5, 123))
    assert_array_equal(got, cpu.random_responsibilities(29, 5, 123))
    assert_array_equal(got, ref.random_responsibilities(29, 5, 123))
    labels = np.random.RandomState(0).randint(5, size=29)
    assert_array_equal(gpu.to_host(gpu.hard_responsibilities(labels, 5, 0.5)),
                       cpu.hard_responsibilities(labels, 5, 0.5))


def test_mix_and_mix_categorical():
    rng, X, y, w, resp = _problem(8)
    values = rng.normal(size=resp.shape)
    out = np.empty(X.shape[0])
    gpu.mix(np.log(resp), values, out)
    assert_allclose(out, ref.mix(np.log(resp), values), rtol=1e-12)
    coef = rng.normal(size=(resp.shape[1], 4, X.shape[1]))
    out = np.empty((X.shape[0], 4))
    gpu.mix_categorical(X, coef, np.log(resp), out)
    assert_allclose(out, ref.mix_categorical(X, coef, np.log(resp)), rtol=1e-12)


def test_plumbing_matches_cpu():
    """Tree plumbing, exp and the ordered sums: the CPU backend's results."""
    rng = np.random.RandomState(9)
    n = 19
    resp = rng.dirichlet(np.ones(8), size=n)
    w = rng.uniform(size=n)
    levels = [np.log(rng.dirichlet(np.ones(2), size=n)),
              np.log(rng.dirichlet(np.ones(2), size=(n, 2)).reshape(n, 4))]
    out = gpu.leaf_log_prior([gpu.to_device(a) for a in levels], gpu.empty((n, 8)))
    assert_allclose(gpu.to_host(out), cpu.leaf_log_prior(levels, np.empty((n, 8))), rtol=1e-15)
    for n_nodes, b, root in [(1, 2, True), (2, 2, False), (4, 2, False), (1, 8, True)]:
        got = gpu.level_targets(gpu.to_device(resp), n_nodes, b, root)
        expected = cpu.level_targets(resp, n_nodes, b, root)
        assert_allclose(gpu.to_host(got[0]), expected[0], rtol=1e-15)
        assert (got[1] is None) == (expected[1] is None)
        if expected[1] is not None:
            assert_allclose(gpu.to_host(got[1]), expected[1], rtol=1e-15)
    d_resp = gpu.to_device(np.log(resp))
    assert_allclose(gpu.to_host(gpu.exp(d_resp, d_resp)), resp, rtol=1e-15)
    assert_allclose(gpu.total(gpu.to_device(w)), w.sum(), rtol=1e-14)
    assert_allclose(gpu.weighted_sums(gpu.to_device(resp), gpu.to_device(w)), w @ resp,
                    rtol=1e-14)
    factor = np.log(resp)
    assert_allclose(gpu.weighted_sums(gpu.to_device(resp), gpu.to_device(w),
                                      gpu.to_device(factor)), w @ (resp * factor), rtol=1e-14)
    assert gpu.to_host(gpu.as_column(gpu.to_device(w))).shape == (n, 1)


@pytest.mark.parametrize("small_geometry", [(8, 7, 40)], indirect=True)
def test_reductions_do_not_depend_on_block_size(monkeypatch, small_geometry):
    """Every ordered sum is the same to the last bit for any threads per block."""
    rng, X, y, w, resp = _problem(10, n=31)
    coef = rng.normal(size=(1, 3, X.shape[1]))
    lp, ll = np.log(resp), rng.normal(size=resp.shape)
    results = []
    for threads in (1, 4, 32):
        monkeypatch.setattr(_config, "THREADS_PER_BLOCK", threads)
        results.append((
            *gpu.wls_stats(X, y, resp, w),
            *gpu.softmax_stats(X, coef, w, None, resp, None, "bohning"),
            gpu.posterior(lp, ll, w, np.empty_like(ll)),
        ))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_array_equal(a, b)


@pytest.mark.parametrize("n_chunks", [1, 5, 16, 17, 40])
def test_chunk_sums_in_lane_order(n_chunks):
    """Chunk partials are summed lane by lane (chunks l, l + L, ...), then over lanes."""
    rng = np.random.RandomState(n_chunks)
    # Magnitudes far apart, so that another order would round differently.
    partial = rng.normal(size=(n_chunks, 7)) * 10.0 ** rng.randint(-8, 9, size=(n_chunks, 7))
    lanes = gpu._SUM_LANES
    expected = np.zeros(7)
    for lane in range(lanes):
        lane_sum = np.zeros(7)
        for c in range(lane, n_chunks, lanes):
            lane_sum += partial[c]
        expected += lane_sum
    assert_array_equal(gpu._sum_chunks(gpu.to_device(partial)), expected)


def _columns_for_scaling(rng, n):
    """Ordinary, huge, tiny, constant and near-overflow columns."""
    return np.column_stack([
        rng.normal(size=n),
        1e300 * rng.uniform(-1, 1, size=n),
        1e-300 * rng.normal(size=n),
        np.full(n, 3.5),
        5e307 + 1e306 * rng.uniform(size=n),
    ])


def test_weighted_scaling_on_the_device():
    """Chunk moments on the GPU, combined on the host: the oracle's and the CPU's numbers."""
    rng = np.random.RandomState(5)
    n = 61
    X = _columns_for_scaling(rng, n)
    w = rng.uniform(0.0, 2.0, size=n)
    w[:15] = 0.0  # whole chunks of no weight, and a first row of weight after them
    X[3, 0] = 1e200  # a row of no weight counts in no statistic
    mean, scale = gpu.weighted_scaling(gpu.to_device(X), gpu.to_device(w))
    expected_mean, expected_scale = ref.weighted_scaling(X, w)
    assert_allclose(mean, expected_mean, rtol=1e-12, atol=0)
    assert_allclose(scale, expected_scale, rtol=1e-12, atol=0)
    cpu_mean, cpu_scale = cpu.weighted_scaling(X, w)
    assert_allclose(mean, cpu_mean, rtol=1e-14, atol=0)
    assert_allclose(scale, cpu_scale, rtol=1e-14, atol=0)
    assert mean[3] == 3.5 and scale[3] == 1.0


@pytest.mark.parametrize("blocks", [1, 4096])
def test_all_finite_on_the_device(blocks, monkeypatch):
    """Any NaN or inf anywhere is found, by a grid of one block or of many."""
    monkeypatch.setattr(gpu, "_FINITE_BLOCKS", blocks)
    X = np.random.RandomState(7).normal(size=(13, 3))
    assert gpu.all_finite(gpu.to_device(X)) and gpu.all_finite(np.empty((0, 3)))
    for bad in (np.nan, np.inf, -np.inf):
        for at in [(0, 0), (12, 2), (6, 1)]:
            Y = X.copy()
            Y[at] = bad
            assert not gpu.all_finite(gpu.to_device(Y))


def test_standardised_design_on_the_device_is_the_cpus_bit_for_bit():
    rng = np.random.RandomState(6)
    X = _columns_for_scaling(rng, 19)
    mean, scale = cpu.weighted_scaling(X, np.ones(19))
    X[4, 4] = -1.7e308  # the difference from the mean overflows: halved first
    X[5, 0] = 1e6  # saturated at the bound
    idx = np.array([4, 0, 2, 4])
    with warnings.catch_warnings():  # the simulator's threads compute in NumPy scalars
        warnings.simplefilter("ignore", RuntimeWarning)
        design = gpu.standardised_design(gpu.to_device(X), idx, mean[idx], scale[idx], 50.0)
    expected = cpu.standardised_design(X, idx, mean[idx], scale[idx], 50.0)
    assert np.all(np.isfinite(expected)) and np.abs(expected[:, 1:]).max() == 50.0
    assert_array_equal(gpu.to_host(design), expected)


@pytest.mark.parametrize("lockable", [True, False])
def test_large_copies_lock_the_host_memory_in_place(lockable, monkeypatch):
    """Past _LOCK_BYTES the host array is page-locked for its copy, either way, or
    copied as it is."""
    locked = []

    @contextlib.contextmanager
    def pinned(a):
        if not lockable:
            raise gpu._DRIVER_ERROR("memory that cannot be locked")
        locked.append(a.nbytes)
        yield

    monkeypatch.setattr(gpu.cuda, "pinned", pinned)
    monkeypatch.setattr(gpu, "_LOCK_BYTES", 800)
    small, large = np.arange(99.0), np.arange(100.0).reshape(50, 2)
    assert_array_equal(gpu.to_host(gpu.to_device(small)), small)
    assert_array_equal(gpu.to_host(gpu.to_device(large)), large)
    assert_array_equal(gpu.to_host(gpu._dev(large)), large)
    rows = np.zeros((60, 2))
    gpu.to_host(gpu.to_device(large), out=rows[5:55])
    assert_array_equal(rows[5:55], large)
    assert locked == ([800] * 6 if lockable else [])


def test_every_cpu_kernel_has_a_cuda_build():
    """The two backends have one interface: every public function of the CPU backend
    has its own CUDA build, the predictive and routing kernels included."""
    import inspect

    names = [name for name, fn in inspect.getmembers(cpu, inspect.isfunction)
             if not name.startswith("_") and fn.__module__.startswith("skmoe._kernels")]
    assert {"top_k_gate", "gaussian_mix_quantiles", "linear_predictor"} <= set(names)
    for name in names:
        assert getattr(gpu, name).__module__ == gpu.__name__, name


def _log_gate(rng, n, K):
    """Normalised log gate weights with ties, a -inf and a row of one expert."""
    scores = rng.normal(size=(n, K))
    scores[1, :] = 0.0  # every expert tied
    scores[2, 1] = scores[2, 2]
    scores[3, 0] = -np.inf
    scores[4, 1:] = -np.inf
    return scores - np.log(np.sum(np.exp(scores), axis=1, keepdims=True))


@pytest.mark.parametrize("on_device", [True, False], ids=["device", "host"])
@pytest.mark.parametrize("top_k", [1, 3])
def test_routing_and_sparse_mixtures(top_k, on_device):
    """``top_k_gate``, ``gaussian_mix_sparse`` and ``mix_categorical_sparse``: the CPU's."""
    rng, X, y, w, resp = _problem(21, n=19, K=5)
    log_weight = _log_gate(rng, X.shape[0], 5)
    put = gpu.to_device if on_device else np.asarray
    n = X.shape[0]
    expected = [np.empty((n, top_k), dtype=np.int64), np.empty((n, top_k)), np.empty(n)]
    cpu.top_k_gate(log_weight, *expected)
    routed = [put(np.empty_like(a)) for a in expected]
    gpu.top_k_gate(put(log_weight), *routed)
    assert_array_equal(gpu.to_host(routed[0]), expected[0])
    assert_allclose(gpu.to_host(routed[1]), expected[1], rtol=1e-14)
    assert_allclose(gpu.to_host(routed[2]), expected[2], rtol=1e-12, atol=1e-300)
    without_dropped = [put(np.empty_like(a)) for a in expected[:2]]
    gpu.top_k_gate(put(log_weight), *without_dropped, put(np.empty(0)))
    assert_array_equal(gpu.to_host(without_dropped[1]), gpu.to_host(routed[1]))

    idx, weight = expected[:2]
    coef, var = rng.normal(size=(5, X.shape[1])), rng.uniform(0.5, 2.0, size=5)
    means = [np.empty(n), np.empty(n)]
    cpu.gaussian_mix_sparse(X, coef, var, idx, weight, *means)
    got = [put(np.empty(n)), put(np.empty(n))]
    gpu.gaussian_mix_sparse(put(X), coef, var, put(idx), put(weight), *got)
    for a, b in zip(got, means):
        assert_allclose(gpu.to_host(a), b, rtol=1e-13)

    class_coef = rng.normal(size=(5, 3, X.shape[1]))
    gate = np.zeros((n, 5))
    np.put_along_axis(gate, idx, weight, axis=1)
    with np.errstate(divide="ignore"):
        oracle = ref.mix_categorical(X, class_coef, np.log(gate))
    out = put(np.empty((n, 3)))
    gpu.mix_categorical_sparse(put(X), class_coef, put(idx), put(weight), out)
    assert_allclose(gpu.to_host(out), oracle, rtol=1e-13)
    cpu_out = cpu.mix_categorical_sparse(X, class_coef, idx, weight, np.empty((n, 3)))
    assert_allclose(cpu_out, oracle, rtol=1e-13)


@pytest.mark.parametrize("on_device", [True, False], ids=["device", "host"])
def test_predictive_moments_quantiles_and_means(on_device):
    """``linear_predictor``, ``gaussian_mix_moments``, ``gaussian_mix_quantiles``,
    ``log_mix`` and ``prune_experts`` on the device: the CPU backend's results (the
    oracle's mixture)."""
    rng, X, y, w, resp = _problem(22, n=17, K=4)
    put = gpu.to_device if on_device else np.asarray
    n = X.shape[0]
    coef, var = rng.normal(size=(4, X.shape[1])), rng.uniform(0.2, 3.0, size=4)
    means = gpu.linear_predictor(put(X), coef, put(np.empty((n, 4))))
    assert_allclose(gpu.to_host(means), X @ coef.T, rtol=1e-13, atol=1e-15)
    means = gpu.to_host(means)

    log_weight = _log_gate(rng, n, 4)
    moments = [put(np.empty(n)), put(np.empty(n))]
    gpu.gaussian_mix_moments(put(log_weight), put(means), var, *moments)
    gate = np.exp(log_weight)
    mean = np.sum(gate * means, axis=1)
    assert_allclose(gpu.to_host(moments[0]), mean, rtol=1e-12, atol=1e-14)
    assert_allclose(gpu.to_host(moments[1]),
                    np.sum(gate * (var + (means - mean[:, None]) ** 2), axis=1), rtol=1e-12)

    levels = np.array([0.01, 0.3, 0.5, 0.95])
    from scipy.special import ndtri
    from scipy.stats import norm

    quantiles = put(np.empty((n, levels.size)))
    gpu.gaussian_mix_quantiles(put(log_weight), put(means), var, ndtri(levels), levels,
                               quantiles)
    expected = cpu.gaussian_mix_quantiles(log_weight, means, var, ndtri(levels), levels,
                                          np.empty((n, levels.size)))
    assert_allclose(gpu.to_host(quantiles), expected, rtol=1e-12, atol=1e-12)
    # The oracle: the mixture's CDF at each quantile is its level.
    cdf = np.sum(gate[:, None, :] * norm.cdf((expected[:, :, None] - means[:, None, :])
                                             / np.sqrt(var)), axis=2)
    assert_allclose(cdf, np.broadcast_to(levels, cdf.shape), atol=1e-10)

    log_density = gpu.log_mix(put(log_weight), put(means), put(np.empty(n)))
    assert_allclose(gpu.to_host(log_density), cpu.log_mix(log_weight, means, np.empty(n)),
                    rtol=1e-14)

    pruned = put(log_weight.copy())
    pruned = gpu.prune_experts(pruned, np.array([1, 3]))
    expected = cpu.prune_experts(log_weight.copy(), np.array([1, 3]))
    assert_allclose(gpu.to_host(pruned), expected, rtol=1e-14)
    assert np.all(np.isneginf(expected[:, [1, 3]]))
    assert_allclose(np.exp(expected).sum(axis=1), 1.0, rtol=1e-14)


# --------------------------------------------------------------------------
# End to end: backend="cuda" against backend="cpu" from the same start

_rng = np.random.RandomState(0)
_X = _rng.normal(size=(28, 2))
_y = np.where(_X[:, 0] > 0, _X[:, 1], -_X[:, 1]) + 0.1 * _rng.normal(size=28)
_y2 = (_X[:, 0] * _X[:, 1] > 0).astype(int)
_y3 = np.digitize(_X[:, 0] + _X[:, 1], [-0.5, 0.5])


# Several blocks and chunks, but tiles of many rows: the simulator runs each
# thread in Python, and a barrier per row would make the fits slow.
@pytest.mark.parametrize("small_geometry", [(16, 9, 400)], indirect=True)
@pytest.mark.parametrize("estimator, target", [
    (MixtureOfExpertsRegressor(2, max_iter=3), _y),
    (HierarchicalMixtureOfExpertsRegressor((2, 2), max_iter=2, gate_solver="bohning"), _y),
    (MixtureOfExpertsClassifier(2, max_iter=1), _y3),
    (HierarchicalMixtureOfExpertsClassifier((2, 2), max_iter=1, init_params="tree"), _y2),
    (MixtureOfExpertsRegressor(2, max_iter=2, gate_features=[1]), _y),
], ids=["moe-reg", "hme-reg-bohning", "moe-clf-3-classes", "hme-clf", "moe-two-designs"])
def test_fit_matches_cpu(estimator, target, small_geometry):
    weights = np.random.RandomState(1).uniform(0.5, 2.0, size=_X.shape[0])
    fitted = {}
    for backend in ("cpu", "cuda"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted[backend] = estimator.set_params(backend=backend, random_state=0,
                                                   tol=0.0).fit(_X, target, weights)
        est = fitted[backend]
        fitted[backend] = {
            "lower_bounds": est.lower_bounds_,
            "predict": est.predict_proba(_X) if hasattr(est, "predict_proba")
            else est.predict(_X),
            "score_samples": est.score_samples(_X, target),
            "resp": est.predict_responsibilities(_X, target),
            "apply": est.apply(_X),
            "gate": est.predict_gate(_X),
            "bic": est.bic(_X, target),
        }
        with warnings.catch_warnings():
            # After a few iterations some directions may be flat: inf, on both backends.
            warnings.simplefilter("ignore", UserWarning)
            fitted[backend]["stderr"] = est.standard_errors(_X, target).expert_coef
    a, b = fitted["cpu"], fitted["cuda"]
    assert_allclose(b["lower_bounds"], a["lower_bounds"], rtol=1e-9)
    for key in ("predict", "score_samples", "resp", "gate", "bic", "stderr"):
        assert_allclose(b[key], a[key], rtol=1e-8, atol=1e-10, err_msg=key)
    assert_array_equal(b["apply"], a["apply"])


# Predictions on the device: the CPU's kernels and host designs must not run.
_HOST_ONLY = ("linear_predictor", "mix", "mix_categorical", "top_k_gate", "prune_experts",
              "gaussian_mix_moments", "gaussian_mix_sparse", "mix_categorical_sparse",
              "gaussian_mix_quantiles", "affine_log_softmax", "leaf_log_prior", "log_mix",
              "posterior", "gaussian_log_prob", "categorical_log_prob", "exp",
              "weighted_sums")


# The simulator's threads multiply a pruned expert's 0 by its -inf (in the entropy of
# icl, whose column is then left out) outside the caller's np.errstate; a GPU is silent.
@pytest.mark.filterwarnings("ignore:invalid value encountered in scalar multiply")
@pytest.mark.parametrize("small_geometry", [(16, 9, 400)], indirect=True)
@pytest.mark.parametrize("batch_elements", [1 << 26, 400], ids=["one-batch", "batches"])
@pytest.mark.parametrize("estimator, target, pruned", [
    (MixtureOfExpertsRegressor(3, max_iter=4), _y, []),
    (HierarchicalMixtureOfExpertsRegressor((2, 2), max_iter=3, gate_features=[1]), _y, [1]),
    (MixtureOfExpertsClassifier(3, max_iter=2), _y3, [2]),
    (HierarchicalMixtureOfExpertsClassifier((2, 2), max_iter=2), _y2, []),
], ids=["moe-reg", "hme-reg-pruned", "moe-clf-pruned", "hme-clf"])
def test_predictions_on_the_device_are_the_cpus(estimator, target, pruned, batch_elements,
                                                 small_geometry, monkeypatch):
    """One fitted model predicting and scoring with backend="cpu" and with
    backend="cuda": the same numbers, with the designs, gate, routes, mixtures,
    log-densities and responsibilities all computed on the device (the host's kernels
    are switched off), in one batch of rows or in several."""
    import skmoe._base

    from ._helpers import assert_same_predictions, every_prediction

    monkeypatch.setattr(_config, "PREDICT_BATCH_ELEMENTS", batch_elements)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = estimator.set_params(backend="cpu", random_state=0).fit(_X, target)
    est.collapsed_experts_ = np.array(pruned, dtype=np.intp)
    X_new = np.random.RandomState(5).normal(size=(31, 2))
    y_new = np.resize(target, 31)
    expected = every_prediction(est, X_new, y_new)

    def host_only(*args, **kwargs):
        raise AssertionError("a prediction with backend='cuda' ran a host kernel")

    for name in _HOST_ONLY:
        monkeypatch.setattr(cpu, name, host_only)
    monkeypatch.setattr(skmoe._base, "standardised_design", host_only)
    assert_same_predictions(every_prediction(est.set_params(backend="cuda"), X_new, y_new),
                            expected, rtol=1e-11)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fit_on_the_device_rejects_non_finite_x(bad):
    """The device checks the X it holds; the error is scikit-learn's, and nothing is fitted."""
    X = _X.copy()
    X[17, 1] = bad
    est = MixtureOfExpertsRegressor(2, max_iter=1, backend="cuda")
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        est.fit(X, _y)
    assert not hasattr(est, "converged_") and not hasattr(est, "n_features_in_")
    # Predictions check the copy of each batch on the device too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(_X, _y)
    with pytest.raises(ValueError, match="Input X contains (NaN|infinity)"):
        est.predict(X)


def test_running_out_of_gpu_memory_says_what_to_do(monkeypatch):
    """The driver's out-of-memory error becomes a MemoryError, in a fit (which keeps the
    fitted model) and in a prediction."""
    est = MixtureOfExpertsRegressor(2, max_iter=1, backend="cuda", random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = est.fit(_X, _y).lower_bounds_.copy()

    def out_of_memory(*args):
        raise gpu._DRIVER_ERROR("Call to cuMemAlloc results in CUDA_ERROR_OUT_OF_MEMORY")

    monkeypatch.setattr(gpu, "weighted_scaling", out_of_memory)
    with pytest.raises(MemoryError, match='GPU ran out of memory.*backend="cpu"') as info:
        est.fit(_X, _y)
    assert isinstance(info.value.__cause__, gpu._DRIVER_ERROR)
    assert_array_equal(est.lower_bounds_, fitted)

    monkeypatch.setattr(gpu, "linear_predictor", out_of_memory)
    with pytest.raises(MemoryError, match="GPU ran out of memory.*a prediction holds"):
        est.predict(_X)

    def other_error(*args):
        raise gpu._DRIVER_ERROR("Call to cuLaunchKernel results in CUDA_ERROR_LAUNCH_FAILED")

    monkeypatch.setattr(gpu, "weighted_scaling", other_error)
    with pytest.raises(gpu._DRIVER_ERROR, match="LAUNCH_FAILED"):
        est.fit(_X, _y)


@pytest.mark.parametrize("small_geometry", [(16, 9, 400)], indirect=True)
def test_n_jobs_runs_starts_in_turn(small_geometry):
    """With "cuda" the starts share the device: n_jobs=2 runs them in turn, same result."""
    est = MixtureOfExpertsRegressor(2, n_init=2, max_iter=0, random_state=0, backend="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = est.set_params(n_jobs=1).fit(_X, _y).lower_bounds_
        two = est.set_params(n_jobs=2).fit(_X, _y).lower_bounds_
    assert_array_equal(one, two)


# --------------------------------------------------------------------------
# Toolchain: the NumPy 2.5 shim, the errors, and the lazy import


def _run(code, **env):
    """Run ``code`` in a fresh interpreter (its own Numba configuration)."""
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=environ, timeout=300)


@pytest.mark.parametrize("small_geometry", [(8, 7, 40)], indirect=True)
def test_numpy_row_stack_shim(small_geometry):
    """numba-cuda's array typing needs ``np.row_stack``, gone in NumPy 2.5; the shim restores it.

    NumPy 2.5 is simulated by deleting the alias. Without the shim, loading the
    module that fails at the first launch raises; with it, it loads.
    """
    import importlib.util

    assert importlib.util.find_spec("numba_cuda") is not None, (
        "numba-cuda is not installed: it is in the test extra (pip install '.[test]')")
    # SciPy and scikit-learn are imported first: they copy NumPy's namespace,
    # which on NumPy < 2.5 still lists the name.
    template = """
        import numpy as np
        import sklearn.utils
        if "row_stack" in vars(np):
            del np.row_stack  # what NumPy 2.5 did
        {shim}
        import numba.cuda.np.arrayobj
        print("loaded", np.row_stack is np.vstack)
    """
    broken = _run(template.format(shim=""), NUMBA_ENABLE_CUDASIM="1")
    assert broken.returncode != 0
    assert "row_stack" in broken.stderr
    fixed = _run(template.format(
        shim="import skmoe._kernels.cuda as k; assert k.NUMPY_SHIM_APPLIED"),
        NUMBA_ENABLE_CUDASIM="1")
    assert fixed.returncode == 0, fixed.stderr
    assert "loaded True" in fixed.stdout
    # Once NumPy has the alias (its own, or the shim's), the shim does nothing.
    assert gpu._numpy_compat() is False


@pytest.mark.parametrize("small_geometry", [(8, 7, 40)], indirect=True)
def test_errors_say_what_is_missing(small_geometry):
    """No GPU: a RuntimeError at fit; no numba-cuda: an ImportError naming the extra."""
    fit = """
        import numpy as np, sys
        {setup}
        import skmoe
        from skmoe import MixtureOfExpertsRegressor
        assert sys.modules.get("numba.cuda") is None  # importing skmoe does not import CUDA
        X = np.random.RandomState(0).normal(size=(20, 2))
        est = MixtureOfExpertsRegressor(backend="cuda")
        try:
            est.fit(X, X[:, 0])
        except Exception as exc:
            print(type(exc).__name__, exc)
    """
    no_gpu = _run(fit.format(setup=""), CUDA_VISIBLE_DEVICES="")
    assert no_gpu.returncode == 0, no_gpu.stderr
    assert no_gpu.stdout.startswith("RuntimeError"), no_gpu.stdout
    assert "No usable CUDA GPU" in no_gpu.stdout and "skmoe[cuda]" in no_gpu.stdout
    missing = _run(fit.format(
        setup='sys.modules["numba.cuda"] = None; sys.modules["numba_cuda_mlir"] = None'))
    assert missing.returncode == 0, missing.stderr
    assert missing.stdout.startswith("ImportError"), missing.stdout
    assert "skmoe[cuda]" in missing.stdout


def test_unknown_backend_is_rejected():
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="backend"):
        MixtureOfExpertsRegressor(backend="tpu").fit(_X, _y)
