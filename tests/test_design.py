"""The host-side preparation of a fit: column scaling, designs, the k-means start."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from skmoe import MixtureOfExpertsClassifier, MixtureOfExpertsRegressor, _base, _config
from skmoe._kernels import _rowops, cpu
from skmoe._kernels._design import (
    all_finite,
    nearest_centres,
    standardise,
    standardised_design,
    weighted_scaling,
)

from . import reference


@pytest.fixture(params=["one group", "many groups on the pool"])
def grouping(request, monkeypatch):
    if request.param != "one group":
        monkeypatch.setattr(_config, "CHUNK_SIZE", 5)
        monkeypatch.setattr(_config, "GROUP_CHUNKS", 2)
        monkeypatch.setattr(_config, "PARALLEL_MIN_GROUPS", 2)
    return request.param


def _columns_of_every_kind(rng, n):
    return np.column_stack([
        rng.normal(size=n),
        1e300 * rng.uniform(-1, 1, size=n),
        1e-300 * rng.normal(size=n),
        np.full(n, 3.5),  # constant
        5e307 + 1e306 * rng.uniform(size=n),
        rng.integers(0, 2, size=n).astype(float),
    ])


def test_weighted_scaling_matches_the_numpy_oracle(grouping):
    rng = np.random.default_rng(0)
    X = _columns_of_every_kind(rng, 203)
    w = rng.uniform(size=203)
    w[::7] = 0.0
    X[::7, 0] = 1e200  # rows of zero weight count in no statistic
    mean, scale = weighted_scaling(X, w)
    expected_mean, expected_scale = reference.weighted_scaling(X, w)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=0)
    np.testing.assert_allclose(scale, expected_scale, rtol=1e-12, atol=0)
    assert mean[3] == 3.5 and scale[3] == 1.0


def test_weighted_scaling_does_not_depend_on_the_grouping(monkeypatch):
    rng = np.random.default_rng(1)
    X, w = rng.normal(size=(500, 4)), rng.uniform(size=500)
    serial = weighted_scaling(X, w)
    monkeypatch.setattr(_config, "CHUNK_SIZE", 5)
    monkeypatch.setattr(_config, "GROUP_CHUNKS", 2)
    pooled_one = weighted_scaling(X, w)
    monkeypatch.setattr(_config, "PARALLEL_MIN_GROUPS", 2)
    pooled_two = weighted_scaling(X, w)
    np.testing.assert_allclose(serial, pooled_one, rtol=1e-14)
    # The same groups summed in the same order, on one thread or on the pool.
    np.testing.assert_array_equal(pooled_one, pooled_two)


@pytest.mark.parametrize("order", ["C", "F"])
def test_all_finite_finds_any_nan_or_inf(grouping, order):
    """The fit's finiteness check: every row group, every column, both memory orders."""
    rng = np.random.default_rng(3)
    X = _columns_of_every_kind(rng, 37)
    assert all_finite(np.asarray(X, order=order))
    for value in (np.nan, np.inf, -np.inf):
        for i, j in [(0, 0), (36, 5), (17, 2)]:
            bad = np.array(X, order=order)
            bad[i, j] = value
            assert not all_finite(bad)
    assert all_finite(np.empty((0, 3)))


@pytest.mark.parametrize("order", ["C", "F"])
def test_design_matches_the_numpy_oracle(grouping, order):
    rng = np.random.default_rng(2)
    X = np.asarray(_columns_of_every_kind(rng, 97), order=order)
    X[0, 4], X[1, 4] = -1.7e308, 1.7e308  # differences that overflow
    idx = np.array([4, 0, 2, 1])  # a subset, out of order
    mean = np.array([1e308, 0.5, 0.0, -2.0])
    scale = np.array([1e-10, 2.0, 1e-310, 1e300])
    design = standardised_design(X, idx, mean, scale, 1e100)
    expected = reference.standardised_design(X, idx, mean, scale, 1e100)
    np.testing.assert_array_equal(design[:, 0], 1.0)
    np.testing.assert_allclose(design, expected, rtol=1e-15, atol=0)
    assert np.all(np.abs(design) <= 1e100)


@pytest.mark.parametrize("column", [0, 1, 4])
def test_standardised_values_are_a_design_column(grouping, column):
    """The target's one-pass standardisation: the oracle's, saturation and overflow included."""
    rng = np.random.default_rng(3)
    X = _columns_of_every_kind(rng, 61)
    X[0, 4], X[1, 4] = -1.7e308, 1.7e308
    mean, scale = {0: (0.5, 1e-200), 1: (-3e307, 2.0), 4: (1e308, 1e-10)}[column]
    values = X[:, column]  # a strided column: copied contiguous first
    got = standardise(values, mean, scale, 1e100)
    expected = reference.standardised_design(X, np.array([column]), np.array([mean]),
                                             np.array([scale]), 1e100)[:, 1]
    assert got.shape == (61,) and got.flags.c_contiguous
    np.testing.assert_allclose(got, expected, rtol=1e-15, atol=0)
    assert np.all(np.abs(got) <= 1e100) and np.abs(got).max() == 1e100


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 4)),
              elements=st.floats(-1e308, 1e308)))
def test_scaling_then_design_is_finite_for_any_finite_data(X):
    w = np.ones(X.shape[0])
    mean, scale = weighted_scaling(X, w)
    assert np.all(np.isfinite(mean)) and np.all(scale > 0) and np.all(np.isfinite(scale))
    design = standardised_design(X, np.arange(X.shape[1]), mean, scale, 1e100)
    assert np.all(np.isfinite(design))
    np.testing.assert_allclose(
        design, reference.standardised_design(X, np.arange(X.shape[1]), mean, scale, 1e100),
        rtol=1e-14, atol=1e-300)


def test_nearest_centres_match_brute_force(grouping, monkeypatch):
    monkeypatch.setattr("skmoe._kernels._design.BLOCK_ROWS", 3)
    rng = np.random.default_rng(3)
    X, target = rng.normal(size=(101, 3)), rng.normal(size=(101, 2))
    centres = rng.normal(size=(5, 5))
    Z = np.hstack([X, target])
    expected = np.argmin(((Z[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(nearest_centres(X, target, centres), expected)


def _two_regimes(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.where(X[:, 0] > 0, 2.0 * X[:, 1], -X[:, 1]) + 0.1 * rng.normal(size=n)
    return X, y


def test_kmeans_on_a_subsample_labels_every_row_by_its_nearest_centre(monkeypatch):
    monkeypatch.setattr(_base, "_KMEANS_MAX_SAMPLES", 60)
    X, y = _two_regimes(300)
    estimator = MixtureOfExpertsRegressor(3, random_state=0)
    problem = _base.Problem(np.ones((300, 1)), np.ones((300, 1)), (y - y.mean()) / y.std(),
                            np.ones(300))
    X_std = (X - X.mean(axis=0)) / X.std(axis=0)
    seen = {}
    real_kmeans = __import__("sklearn.cluster", fromlist=["KMeans"]).KMeans

    class Recording(real_kmeans):
        def fit(self, Z, y=None, sample_weight=None):
            seen["rows"] = Z.shape[0]
            seen["kmeans"] = super().fit(Z, sample_weight=sample_weight)
            return seen["kmeans"]

    monkeypatch.setattr("sklearn.cluster.KMeans", Recording)
    labels = estimator._kmeans_labels(X_std, problem, 3, np.random.RandomState(0))
    assert seen["rows"] == 60
    centres = seen["kmeans"].cluster_centers_
    Z = np.column_stack([X_std, problem.target])
    nearest = np.argmin(((Z[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(labels, nearest)


@pytest.mark.parametrize("Estimator", [MixtureOfExpertsRegressor, MixtureOfExpertsClassifier])
def test_fit_from_a_subsampled_kmeans_start(monkeypatch, Estimator):
    monkeypatch.setattr(_base, "_KMEANS_MAX_SAMPLES", 80)
    X, y = _two_regimes(600)
    if Estimator is MixtureOfExpertsClassifier:
        y = (y > 0).astype(int) + (y > 1.5)
    first = Estimator(2, random_state=0).fit(X, y)
    again = Estimator(2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(first.predict(X), again.predict(X))
    assert first.score(X, y) > (0.95 if Estimator is MixtureOfExpertsRegressor else 0.8)


def test_blas_runs_single_threaded_during_em(monkeypatch):
    from threadpoolctl import threadpool_info

    from skmoe._kernels import cpu

    seen = []
    real = cpu.wls_stats

    def recording(*args):
        seen.extend(pool["num_threads"] for pool in threadpool_info()
                    if pool["user_api"] == "blas")
        return real(*args)

    monkeypatch.setattr(cpu, "wls_stats", recording)
    X, y = _two_regimes(300)
    MixtureOfExpertsRegressor(2, random_state=0, max_iter=3).fit(X, y)
    assert seen and set(seen) == {1}


def test_kmeans_start_runs_single_threaded(monkeypatch):
    """k-means' OpenMP and BLAS pools are limited to one thread during the start."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_info

    seen = []
    real = KMeans.fit

    def recording(self, *args, **kwargs):
        seen.extend((pool["user_api"], pool["num_threads"]) for pool in threadpool_info())
        return real(self, *args, **kwargs)

    monkeypatch.setattr(KMeans, "fit", recording)
    X, y = _two_regimes(300)
    MixtureOfExpertsRegressor(2, random_state=0, max_iter=3).fit(X, y)
    assert {api for api, _ in seen} >= {"openmp", "blas"}
    assert {threads for _, threads in seen} == {1}


def test_random_responsibilities_are_counter_based_uniforms(monkeypatch):
    monkeypatch.setattr(_config, "CHUNK_SIZE", 5)
    monkeypatch.setattr(_config, "GROUP_CHUNKS", 2)
    serial = cpu.random_responsibilities(37, 4, 11)
    monkeypatch.setattr(_config, "PARALLEL_MIN_GROUPS", 2)
    pooled = cpu.random_responsibilities(37, 4, 11)
    # The same draws whether the groups run on one thread or on the pool.
    np.testing.assert_array_equal(serial, pooled)
    np.testing.assert_array_equal(pooled, reference.random_responsibilities(37, 4, 11))
    np.testing.assert_allclose(pooled.sum(axis=1), 1.0, rtol=1e-14)
    assert not np.array_equal(pooled, cpu.random_responsibilities(37, 4, 12))


@pytest.mark.parametrize("index", [0, 1, 2**32 - 1, 2**32, 2**40 + 12345, 2**64 - 1])
@pytest.mark.parametrize("seed", [0, 7, 2**31 - 2])
def test_compiled_draw_is_the_reference_draw(seed, index):
    expected = reference.uniform_draw(seed, index)
    assert cpu._rowops_uniform(np.uint64(seed), np.uint64(index)) == expected
    assert _rowops.uniform(np.uint64(seed), np.uint64(index)) == expected


def test_random_draws_are_uniform():
    """Kolmogorov-Smirnov against U(0, 1), and no correlation between neighbours."""
    raw = np.array([_rowops.uniform(np.uint64(3), np.uint64(i)) for i in range(20000)])
    np.testing.assert_allclose(cpu.random_responsibilities(1, 20000, 3)[0], raw / raw.sum(),
                               rtol=1e-12)
    assert stats.kstest(raw, "uniform").pvalue > 1e-3
    assert abs(np.corrcoef(raw[:-1], raw[1:])[0, 1]) < 0.03
