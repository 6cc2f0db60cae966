"""Streamed sparse random projection: law of the matrix, distances, determinism, caching."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim

from brainalign.projection import StreamingSRP, jl_min_dim, sparse_random_matrix, srp_density
from brainalign.utils import InputError


def _sklearn_components(k, p, seed):
    srp = SparseRandomProjection(n_components=k, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # p < k in the dense-mask case
        srp.fit(np.zeros((1, p), dtype=np.float32))
    return srp.components_


def _check_law(R, k, p, n_sd=5.0):
    """Entries iid: +-v with probability d/2 each, else 0."""
    d = 1.0 / np.sqrt(p)
    v = np.float32(np.sqrt(1.0 / d) / np.sqrt(k))
    n = k * p
    nnz = R.nnz
    assert abs(nnz - n * d) < n_sd * np.sqrt(n * d * (1 - d)), (nnz, n * d)
    assert set(np.unique(R.data).tolist()) == {float(-v), float(v)}
    n_pos = int(np.sum(R.data > 0))
    assert abs(n_pos - nnz / 2) < n_sd * np.sqrt(nnz / 4)
    # per-row and per-column counts: Binomial(p, d) and Binomial(k, d)
    row_counts = np.diff(R.indptr)
    assert abs(row_counts.mean() - p * d) < n_sd * np.sqrt(p * d * (1 - d) / k)
    # sample variances: relative sd about sqrt(2 / m) for m samples
    assert abs(row_counts.var() / (p * d * (1 - d)) - 1) < n_sd * np.sqrt(2 / k)
    col_counts = np.bincount(R.indices, minlength=p)
    assert abs(col_counts.var() / (k * d * (1 - d)) - 1) < n_sd * np.sqrt(2 / p)
    return row_counts


@pytest.mark.parametrize("k, p", [(400, 40_000), (300, 200)])  # sparse path and dense-mask path
def test_matrix_law_matches_theory_and_sklearn(k, p):
    R = sparse_random_matrix(k, p, seed=1)
    assert R.shape == (k, p) and R.dtype == np.float32
    R.sum_duplicates()
    assert R.has_canonical_format  # no repeated (row, column) pairs
    ours = _check_law(R, k, p)
    S = _sklearn_components(k, p, 1)
    theirs = _check_law(S, k, p)
    assert np.array_equal(np.unique(R.data), np.unique(S.data))  # exactly the same two values
    # row-count distributions agree (two-sample KS)
    from scipy.stats import ks_2samp

    assert ks_2samp(ours, theirs).pvalue > 1e-4


def test_rows_are_duplicate_free_with_many_collisions():
    # density 0.5 on the sparse path forces many re-draws
    R = sparse_random_matrix(200, 30_000, density=0.5, seed=3)
    for i in range(0, 200, 37):
        cols = R.indices[R.indptr[i] : R.indptr[i + 1]]
        assert len(np.unique(cols)) == len(cols)
        assert np.all(np.diff(cols) > 0)
    frac = R.nnz / (200 * 30_000)
    assert abs(frac - 0.5) < 0.002


def test_distance_preservation_comparable_to_sklearn():
    rng = np.random.default_rng(0)
    n, p, eps = 40, 6000, 0.1
    X = rng.standard_normal((n, p)).astype(np.float32) * rng.uniform(0.5, 2, size=(1, p)).astype(
        np.float32
    )
    k = jl_min_dim(n, eps)
    assert k == johnson_lindenstrauss_min_dim(n, eps=eps)
    d0 = pdist(X.astype(np.float64), "sqeuclidean")
    ours = pdist(StreamingSRP(k, seed=0).transform(X).astype(np.float64), "sqeuclidean") / d0
    sk = SparseRandomProjection(k, random_state=0).fit_transform(X).astype(np.float64)
    theirs = pdist(sk, "sqeuclidean") / d0
    for ratio in (ours, theirs):
        lo, hi = np.quantile(ratio, [0.01, 0.99])
        assert 1 - eps < lo and hi < 1 + eps, (lo, hi)
    assert abs(ours.mean() - 1) < 0.02 and abs(theirs.mean() - 1) < 0.02
    assert 0.7 < ours.std() / theirs.std() < 1.4


def test_transform_matches_explicit_product_and_is_row_independent():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((10, 3000)).astype(np.float32)
    srp = StreamingSRP(500, seed=4)
    Y = srp.transform(X)
    assert Y.shape == (10, 500) and Y.dtype == np.float32
    ref = X.astype(np.float64) @ srp.matrix(3000).toarray().astype(np.float64).T
    np.testing.assert_allclose(Y, ref, rtol=1e-4, atol=1e-4)
    assert np.array_equal(srp.transform(X[:3]), Y[:3])
    assert np.array_equal(srp.transform(X[3:10]), Y[3:10])
    assert np.array_equal(srp.transform(torch.from_numpy(X)), Y)
    ones = srp.ones_projection(3000)
    np.testing.assert_allclose(ones, srp.matrix(3000).toarray().sum(axis=1), rtol=1e-5, atol=1e-6)
    # centring identity: SRP(x - c) = SRP(x) - c * R1
    c = X.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(srp.transform(X - c), Y - c * ones, rtol=1e-3, atol=1e-3)


def test_upsampling_small_layers_keeps_k_outputs():
    srp = StreamingSRP(300, seed=0)
    X = np.arange(20, dtype=np.float32).reshape(2, 10)
    assert srp.transform(X).shape == (2, 300)
    R = srp.matrix(10)
    assert R.shape == (300, 10)
    np.testing.assert_allclose(srp.density_for(10), 1 / np.sqrt(10))


def test_determinism_and_width_specific_seeds():
    a, b = StreamingSRP(200, seed=7), StreamingSRP(200, seed=7)
    Ra, Rb = a.matrix(5000), b.matrix(5000)
    assert (Ra != Rb).nnz == 0
    assert (Ra != StreamingSRP(200, seed=8).matrix(5000)).nnz > 0
    R_wider = a.matrix(5001)
    assert (Ra != R_wider[:, :5000]).nnz > 0  # a different width is a different draw


def test_equal_width_layers_share_one_matrix():
    srp = StreamingSRP(100, seed=0)
    assert srp.matrix(2048) is srp.matrix(2048)
    assert len(srp.matrices_) == 1
    X = np.random.default_rng(0).random((4, 2048), dtype=np.float32)
    assert np.array_equal(srp.transform(X), srp.transform(X.copy()))
    srp.clear()
    assert srp.matrices_ == {}


def test_sklearn_backend_is_bit_compatible():
    X = np.random.default_rng(2).standard_normal((6, 4000)).astype(np.float32)
    ref = SparseRandomProjection(n_components=250, random_state=11).fit_transform(X)
    srp = StreamingSRP(250, seed=11, backend="sklearn")
    assert np.array_equal(srp.transform(X), ref)
    # p < k also works for the sklearn backend
    assert srp.transform(X[:, :50]).shape == (6, 250)


def test_bad_options():
    with pytest.raises(ValueError, match="Allowed values are 'brainalign' and 'sklearn'"):
        StreamingSRP(10, backend="numpy")
    with pytest.raises(InputError, match="density"):
        StreamingSRP(10, density=1.5)
    with pytest.raises(InputError, match="seed"):
        StreamingSRP(10, seed=None)
    with pytest.raises(InputError, match="2-D"):
        StreamingSRP(10).transform(np.zeros(5))
    assert srp_density("auto", 100) == 0.1
