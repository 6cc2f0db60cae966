"""RDMs and RDM comparison against scipy (and rsatoolbox where installed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, rankdata, spearmanr

from brainalign.rdm import (
    compare_rdms,
    compute_rdm,
    condensed_to_square,
    n_pairs,
    pearson_rdm_from_projection,
)


@pytest.fixture
def patterns():
    rng = np.random.default_rng(0)
    return rng.standard_normal((23, 57))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pearson_matches_scipy(patterns, dtype):
    X = patterns.astype(dtype)
    expected = pdist(X.astype(np.float64), metric="correlation")
    np.testing.assert_allclose(compute_rdm(X, "pearson"), expected, rtol=1e-10, atol=1e-12)


def test_spearman_matches_scipy(patterns):
    X = np.round(patterns, 1)  # ties
    expected = pdist(rankdata(X, axis=1), metric="correlation")
    np.testing.assert_allclose(compute_rdm(X, "spearman"), expected, atol=1e-12)
    # and against scipy.stats.spearmanr for one pair
    r = spearmanr(X[3], X[7]).statistic
    sq = condensed_to_square(compute_rdm(X, "spearman"))
    assert sq[3, 7] == pytest.approx(1 - r, abs=1e-12)


def test_euclidean_matches_scipy(patterns):
    np.testing.assert_allclose(
        compute_rdm(patterns * 100, "euclidean"), pdist(patterns * 100), rtol=1e-9
    )


def test_compare_matches_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, n_pairs(30)))
    assert compare_rdms(a, b, "pearson") == pytest.approx(pearsonr(a, b).statistic, abs=1e-12)
    assert compare_rdms(a, b, "spearman") == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    many = rng.standard_normal((5, a.size))
    batch = compare_rdms(a, many, "spearman")
    assert batch.shape == (5,)
    for k in range(5):
        assert batch[k] == pytest.approx(spearmanr(a, many[k]).statistic, abs=1e-12)


def test_matches_rsatoolbox(patterns):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    data = rsatoolbox.data.Dataset(patterns)
    ref = rsatoolbox.rdm.calc_rdm(data, method="correlation").get_vectors()[0]
    np.testing.assert_allclose(compute_rdm(patterns, "pearson"), ref, atol=1e-10)


def test_unknown_options_list_allowed_values(patterns):
    with pytest.raises(ValueError, match=r"'metric'.*'pearson', 'spearman' and 'euclidean'.*'cosine'"):
        compute_rdm(patterns, "cosine")
    with pytest.raises(ValueError, match=r"'method'.*'kendall'"):
        compare_rdms(np.ones(3), np.ones(3), "kendall")


def test_bad_inputs():
    with pytest.raises(ValueError, match="non-finite"):
        compute_rdm(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="shape"):
        compute_rdm(np.ones(5))
    with pytest.raises(ValueError, match="lengths differ"):
        compare_rdms(np.ones(3), np.ones(6))


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.float64, st.tuples(st.integers(3, 9), st.integers(3, 12)),
           elements=st.floats(-1e3, 1e3, allow_nan=False)),
    st.sampled_from(["pearson", "spearman", "euclidean"]),
)
def test_properties(X, metric):
    rdm = compute_rdm(X, metric)
    n = X.shape[0]
    assert rdm.shape == (n_pairs(n),)
    finite = rdm[np.isfinite(rdm)]
    assert np.all(finite >= -1e-9)
    if metric != "euclidean":
        assert np.all(finite <= 2 + 1e-9)
    # permuting conditions permutes the square matrix
    perm = np.arange(n)[::-1]
    sq = condensed_to_square(rdm)
    sq_perm = condensed_to_square(compute_rdm(X[perm], metric))
    np.testing.assert_allclose(sq_perm, sq[np.ix_(perm, perm)], atol=1e-6, equal_nan=True)


def test_correlation_rdms_invariant_to_row_affine(patterns):
    scaled = patterns * 3.5 + 7.0
    np.testing.assert_allclose(compute_rdm(scaled), compute_rdm(patterns), atol=1e-10)


def test_pearson_rdm_from_projection_approximates_exact():
    rng = np.random.default_rng(2)
    n, p, k = 40, 3000, 2000
    # structured rows (shared latent factors) with large per-row offsets, as ReLU layers have
    X = rng.standard_normal((n, 5)) @ rng.standard_normal((5, p)) + rng.standard_normal((n, p))
    X += rng.gamma(2.0, size=(n, 1)) * 3
    R = rng.standard_normal((k, p)) / np.sqrt(k)
    srp = X @ R.T
    est = pearson_rdm_from_projection(srp, X.mean(axis=1), R @ np.ones(p))
    exact = compute_rdm(X, "pearson")
    assert np.max(np.abs(est - exact)) < 0.1  # JL-level distortion
    assert compare_rdms(est, exact) > 0.95
    # without the centering correction the estimate is far worse
    naive = compute_rdm(srp, "pearson")
    assert np.max(np.abs(naive - exact)) > np.max(np.abs(est - exact))


def test_condensed_roundtrip(patterns):
    rdm = compute_rdm(patterns)
    sq = condensed_to_square(rdm)
    assert np.allclose(sq, sq.T)
    i, j = np.triu_indices(len(patterns), 1)
    np.testing.assert_array_equal(sq[i, j], rdm)
    with pytest.raises(ValueError, match="condensed"):
        condensed_to_square(np.ones(4))


def test_bad_input_is_input_error(patterns):
    from brainalign.utils import InputError

    with pytest.raises(InputError, match=r"'metric'.*'cosine'"):
        compute_rdm(patterns, "cosine")
    with pytest.raises(InputError, match=r"shape \(n_conditions, n_features\)"):
        compute_rdm(np.ones(5))
    with pytest.raises(InputError, match="at least 2 conditions"):
        compute_rdm(np.ones((1, 5)))
    with pytest.raises(InputError, match="must be one condensed RDM"):
        compare_rdms(np.ones((3, 1)), np.ones(3))
    with pytest.raises(InputError, match="lengths differ"):
        compare_rdms(np.ones(3), np.ones(6))
    with pytest.raises(InputError, match="not a condensed RDM length"):
        condensed_to_square(np.ones(4))
