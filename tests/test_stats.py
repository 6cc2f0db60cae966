"""Group statistics (brainalign.stats) against explicit loops, scipy.stats and MNE directly."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mne.stats import fdr_correction, permutation_cluster_1samp_test
from scipy import sparse
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr
from scipy.stats import t as t_dist
from sklearn.decomposition import PCA

import brainalign.stats as stats_module
from brainalign.rdm import n_pairs
from brainalign.stats import (
    bootstrap_difference,
    bootstrap_peak_latency,
    cluster_forming_threshold,
    cluster_test,
    fdr,
    layer_order_correlation,
    peak_latency,
    sign_permutation_test,
    summary_rdm,
    time_resolved_rsa,
)
from brainalign.utils import InputError


# ------------------------------------------------------------------------------ oracles
def brute_sign_p(x, tail):
    """Exact sign-permutation p by looping over all 2**n sign vectors (mean statistic)."""
    n = x.shape[0]
    obs = x.mean(axis=0)
    count = np.zeros(x.shape[1:])
    total = 0
    for signs in itertools.product((1.0, -1.0), repeat=n):
        s = np.asarray(signs).reshape((n,) + (1,) * (x.ndim - 1))
        perm = (s * x).mean(axis=0)
        if tail == 1:
            count += perm >= obs - 1e-12
        elif tail == -1:
            count += perm <= obs + 1e-12
        else:
            count += np.abs(perm) >= np.abs(obs) - 1e-12
        total += 1
    return count / total


def bootstrap_draws(n_subjects, n_bootstrap, seed):
    """The documented draw of brainalign.stats bootstrap samples."""
    return np.random.default_rng(seed).integers(0, n_subjects, size=(n_bootstrap, n_subjects))


def planted_timecourses(rng, n_subjects=12, n_times=60, window=(25, 35), effect=1.0):
    x = rng.standard_normal((n_subjects, n_times))
    x[:, window[0] : window[1]] += effect
    return x


# ------------------------------------------------------------------------------ time-resolved RSA
@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_time_resolved_rsa_matches_scipy(method):
    rng = np.random.default_rng(0)
    m = n_pairs(12)
    model = rng.standard_normal(m)
    meg = rng.standard_normal((20, m)) + 0.3 * model
    meg[3] = np.round(meg[3], 0)  # ties
    r = time_resolved_rsa(model, meg, method)
    f = spearmanr if method == "spearman" else pearsonr
    expected = [f(model, meg[t]).statistic for t in range(20)]
    assert r.shape == (20,)
    np.testing.assert_allclose(r, expected, atol=1e-12)
    # extra leading axis (subjects) keeps its shape
    r3 = time_resolved_rsa(model, np.stack([meg, meg[::-1]]), method)
    np.testing.assert_allclose(r3[1], r[::-1], atol=1e-12)


def test_time_resolved_rsa_validates():
    with pytest.raises(InputError, match="same condensed pairs"):
        time_resolved_rsa(np.ones(10), np.ones((5, 9)))
    with pytest.raises(InputError, match="non-finite"):
        time_resolved_rsa(np.arange(10.0), np.full((5, 10), np.nan))
    with pytest.raises(ValueError, match="Allowed values are 'spearman' and 'pearson'"):
        time_resolved_rsa(np.arange(10.0), np.ones((5, 10)), method="kendall")
    with pytest.raises(InputError, match="dimensions"):
        time_resolved_rsa(np.arange(10.0), np.ones(10))


# ------------------------------------------------------------------------------ sign permutation
@pytest.mark.parametrize("tail", [1, -1, 0])
def test_sign_permutation_exact_matches_brute_force(tail):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 4, 3)) + 0.5
    x[:, 0, 0] = [1, 1, 2, -1, 3, 0.5, 2]  # integer-ish values produce ties
    p = sign_permutation_test(x, n_permutations=2**7, tail=tail)
    np.testing.assert_allclose(p, brute_sign_p(x, tail), atol=1e-12)
    assert p.shape == (4, 3)
    # the one-sample t gives the same ordering under sign flips
    assert np.all(p >= 1 / 2**7)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 6),
    k=st.integers(1, 4),
    tail=st.sampled_from([-1, 0, 1]),
    seed=st.integers(0, 10_000),
)
def test_sign_permutation_exact_property(n, k, tail, seed):
    x = np.random.default_rng(seed).standard_normal((n, k)).round(1)
    np.testing.assert_allclose(
        sign_permutation_test(x, n_permutations=10_000, tail=tail), brute_sign_p(x, tail), atol=1e-12
    )


def test_sign_permutation_random_close_to_exact():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((14, 6)) + np.linspace(0, 0.8, 6)
    exact = brute_sign_p(x, 1)  # 16384 sign vectors
    n_perm = 4000  # < 2**14: random draws
    p = sign_permutation_test(x, n_permutations=n_perm, seed=3, tail=1)
    se = np.sqrt(exact * (1 - exact) / n_perm) + 1 / n_perm
    assert np.all(np.abs(p - exact) < 5 * se)
    # seeded: same seed same p, and p never below 1 / n_permutations
    np.testing.assert_array_equal(p, sign_permutation_test(x, n_permutations=n_perm, seed=3))
    assert p.min() >= 1 / n_perm
    # random-mode p equals an explicit loop over the documented draw
    signs = np.random.default_rng(3).integers(0, 2, size=(n_perm - 1, 14)) * 2 - 1
    signs = np.vstack([np.ones(14), signs])
    obs = x.mean(0)
    loop = np.array([[np.mean(s * x[:, j]) >= obs[j] - 1e-12 for j in range(6)] for s in signs]).mean(0)
    np.testing.assert_allclose(p, loop, atol=1e-12)


def test_batching_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((12, 30))
    times = np.arange(30.0)
    p_ref = sign_permutation_test(x, n_permutations=500, seed=1)
    b_ref = bootstrap_peak_latency(x, times, n_bootstrap=300, seed=1).distribution
    monkeypatch.setattr(stats_module, "_BATCH_ELEMENTS", 70)  # a few rows per batch
    np.testing.assert_array_equal(sign_permutation_test(x, n_permutations=500, seed=1), p_ref)
    np.testing.assert_array_equal(
        bootstrap_peak_latency(x, times, n_bootstrap=300, seed=1).distribution, b_ref
    )


def test_sign_permutation_scalar_and_tails():
    x = np.array([0.3, 0.1, 0.4, 0.2, 0.5])
    p = sign_permutation_test(x, n_permutations=100)
    assert isinstance(p, float) and p == pytest.approx(1 / 32)
    assert sign_permutation_test(-x, tail=-1) == pytest.approx(p)
    assert sign_permutation_test(x, tail=0) == pytest.approx(2 / 32)


def test_sign_permutation_validates():
    with pytest.raises(ValueError, match="Allowed values are -1, 0 and 1, but got 2"):
        sign_permutation_test(np.ones((5, 3)), tail=2)
    with pytest.raises(InputError, match="at least 2"):
        sign_permutation_test(np.ones((1, 3)))
    with pytest.raises(ValueError, match="n_permutations"):
        sign_permutation_test(np.ones((5, 3)), n_permutations=0)
    with pytest.raises(InputError, match="non-finite"):
        sign_permutation_test(np.array([[1.0, np.nan], [2.0, 3.0]]))


# ------------------------------------------------------------------------------ cluster test
def test_cluster_threshold_matches_t_distribution():
    assert cluster_forming_threshold(15, 0.05, 1) == pytest.approx(t_dist.ppf(0.95, 14))
    assert cluster_forming_threshold(15, 0.05, -1) == pytest.approx(-t_dist.ppf(0.95, 14))
    assert cluster_forming_threshold(15, 0.05, 0) == pytest.approx(t_dist.ppf(0.975, 14))


@pytest.mark.parametrize("statistic,t_power", [("extent", 0), ("mass", 1)])
@pytest.mark.parametrize("tail", [1, 0])
def test_cluster_test_matches_mne(statistic, t_power, tail):
    rng = np.random.default_rng(4)
    x = planted_timecourses(rng, n_subjects=15, effect=0.8)
    res = cluster_test(x, n_permutations=300, tail=tail, seed=5, statistic=statistic, verbose=False)
    thr = t_dist.ppf(0.95, 14) if tail == 1 else t_dist.ppf(0.975, 14)
    t_obs, clusters, pv, h0 = permutation_cluster_1samp_test(
        x,
        threshold=thr,
        n_permutations=300,
        tail=tail,
        t_power=t_power,
        out_type="mask",
        rng=5,
        verbose=False,
    )
    mne_masks = []
    for c in clusters:  # MNE gives slices for 1-D data
        m = np.zeros(60, bool)
        m[c] = True
        mne_masks.append(m)
    np.testing.assert_allclose(res.t_obs, t_obs)
    np.testing.assert_allclose(res.cluster_p_values, pv)
    np.testing.assert_allclose(res.h0, h0)
    assert len(res.clusters) == len(clusters)
    for a, b in zip(res.clusters, mne_masks, strict=True):
        np.testing.assert_array_equal(a, b)
    expected_mask = np.zeros(60, bool)
    for c, p in zip(mne_masks, pv, strict=True):
        if p < 0.05:
            expected_mask |= c
    np.testing.assert_array_equal(res.mask, expected_mask)


@pytest.mark.planted
def test_cluster_test_detects_planted_window():
    rng = np.random.default_rng(6)
    x = planted_timecourses(rng, n_subjects=15, n_times=80, window=(30, 45), effect=1.2)
    res = cluster_test(x, n_permutations=500, seed=0, verbose=False)
    assert res.mask[32:43].all()
    assert not res.mask[:25].any() and not res.mask[50:].any()
    assert res.alpha == 0.05 and res.threshold == pytest.approx(t_dist.ppf(0.95, 14))


def test_cluster_test_noise_rarely_significant():
    hits = 0
    for seed in range(20):
        x = np.random.default_rng(100 + seed).standard_normal((12, 50))
        res = cluster_test(x, n_permutations=200, seed=seed, verbose=False)
        hits += bool(res.mask.any())
    assert hits <= 4  # expected 1 of 20 at alpha 0.05
    empty = cluster_test(np.random.default_rng(0).standard_normal((12, 5)) - 5, n_permutations=50)
    assert empty.clusters == [] and not empty.mask.any() and empty.cluster_p_values.size == 0


def test_cluster_test_bonferroni_divides_cluster_p():
    rng = np.random.default_rng(7)
    x = planted_timecourses(rng, n_subjects=12, effect=0.7)
    res1 = cluster_test(x, n_permutations=300, seed=1, verbose=False)
    res8 = cluster_test(x, n_permutations=300, seed=1, bonferroni=8, verbose=False)
    np.testing.assert_allclose(res1.cluster_p_values, res8.cluster_p_values)
    assert res8.alpha == pytest.approx(0.05 / 8)
    expected = np.zeros(60, bool)
    for c, p in zip(res8.clusters, res8.cluster_p_values, strict=True):
        if p < 0.05 / 8:
            expected |= c
    np.testing.assert_array_equal(res8.mask, expected)


def test_cluster_test_volume_and_adjacency():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((12, 6, 6, 5))
    x[:, 1:4, 1:4, 1:3] += 1.5
    res = cluster_test(x, n_permutations=200, seed=2, verbose=False)
    assert res.mask.shape == (6, 6, 5)
    assert res.mask[1:4, 1:4, 1:3].all()
    # a chain adjacency over the flattened 1-D case gives the same result as the lattice
    y = planted_timecourses(rng, n_subjects=12, n_times=40, window=(10, 20))
    chain = sparse.diags([np.ones(39), np.ones(39)], [-1, 1], format="coo")
    a = cluster_test(y, n_permutations=200, seed=3, adjacency=chain, verbose=False)
    b = cluster_test(y, n_permutations=200, seed=3, verbose=False)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_allclose(a.cluster_p_values, b.cluster_p_values)


def test_cluster_test_validates():
    x = np.zeros((10, 20))
    with pytest.raises(ValueError, match="Allowed values are 'extent' and 'mass'"):
        cluster_test(x, statistic="size")
    with pytest.raises(ValueError, match="'cluster_forming_p' must be in"):
        cluster_test(x, cluster_forming_p=1.5)
    with pytest.raises(ValueError, match="'bonferroni' must be an integer"):
        cluster_test(x, bonferroni=0)
    with pytest.raises(InputError, match="X, Y, Z"):
        cluster_test(np.zeros((10, 3, 3)))
    with pytest.raises(InputError, match="scipy.sparse"):
        cluster_test(x, adjacency=np.eye(20))
    with pytest.raises(InputError, match=r"\(n_subjects, 19\)"):
        cluster_test(x, adjacency=sparse.eye(19))


# ------------------------------------------------------------------------------ FDR
def test_fdr_matches_mne_and_bh_loop():
    rng = np.random.default_rng(9)
    p = np.concatenate([rng.uniform(0, 0.01, 10), rng.uniform(0, 1, 40)]).reshape(5, 10)
    reject, corrected = fdr(p, alpha=0.05)
    r_mne, c_mne = fdr_correction(p, alpha=0.05)
    np.testing.assert_array_equal(reject, r_mne)
    np.testing.assert_allclose(corrected, c_mne)
    # Benjamini-Hochberg by hand: largest k with p_(k) <= k alpha / m
    flat = np.sort(p.ravel())
    m = flat.size
    ok = np.flatnonzero(flat <= np.arange(1, m + 1) * 0.05 / m)
    n_reject = ok[-1] + 1 if ok.size else 0
    assert reject.sum() == n_reject
    assert reject.shape == (5, 10)


def test_fdr_validates():
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        fdr(np.array([0.1, 1.2]))
    with pytest.raises(ValueError, match="Allowed values are 'indep' and 'negcorr'"):
        fdr(np.array([0.1]), method="bonferroni")


# ------------------------------------------------------------------------------ peak latency
def test_peak_latency_matches_loop():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((9, 50))
    times = np.linspace(-0.1, 0.39, 50)
    lat = peak_latency(x, times)
    np.testing.assert_allclose(lat, [times[np.argmax(row)] for row in x])
    win = (times >= 0.05) & (times <= 0.2)
    lat_w = peak_latency(x, times, tmin=0.05, tmax=0.2)
    np.testing.assert_allclose(lat_w, [times[win][np.argmax(row[win])] for row in x])
    assert isinstance(peak_latency(x.mean(0), times), float)


def test_peak_latency_validates():
    times = np.arange(10.0)
    with pytest.raises(InputError, match="10 entries but the time courses have 9"):
        peak_latency(np.ones((3, 9)), times)
    with pytest.raises(InputError, match="strictly increasing"):
        peak_latency(np.ones((3, 10)), times[::-1])
    with pytest.raises(InputError, match="no time point in the window"):
        peak_latency(np.ones((3, 10)), times, tmin=20)


def test_bootstrap_peak_latency_matches_loop():
    rng = np.random.default_rng(11)
    times = np.arange(-50, 250, 5.0)
    x = rng.standard_normal((10, times.size)) + 2 * np.exp(-((times - 120) ** 2) / 800)
    res = bootstrap_peak_latency(x, times, n_bootstrap=500, seed=4)
    draws = bootstrap_draws(10, 500, 4)
    loop = np.array([times[np.argmax(x[d].mean(0))] for d in draws])
    np.testing.assert_allclose(res.distribution, loop)
    assert res.estimate == times[np.argmax(x.mean(0))]
    assert res.sem == pytest.approx(loop.std(ddof=1))
    assert res.ci == pytest.approx(tuple(np.percentile(loop, [2.5, 97.5])))
    assert res.ci[0] <= 120 <= res.ci[1]
    assert res.p is None


def test_bootstrap_difference_matches_loop():
    rng = np.random.default_rng(12)
    times = np.arange(0, 300, 4.0)
    a = rng.standard_normal((11, times.size)) + 2 * np.exp(-((times - 100) ** 2) / 600)
    b = rng.standard_normal((11, times.size)) + 2 * np.exp(-((times - 160) ** 2) / 600)
    res = bootstrap_difference(a, b, times, n_bootstrap=400, seed=5, ci=0.9)
    loop = np.array(
        [times[np.argmax(a[d].mean(0))] - times[np.argmax(b[d].mean(0))] for d in bootstrap_draws(11, 400, 5)]
    )
    np.testing.assert_allclose(res.distribution, loop)
    assert res.estimate == times[np.argmax(a.mean(0))] - times[np.argmax(b.mean(0))]
    assert res.ci == pytest.approx(tuple(np.percentile(loop, [5, 95])))
    assert res.p == pytest.approx(min(1, 2 * min(np.mean(loop <= 0), np.mean(loop >= 0))))
    assert res.ci[1] < 0 and res.p < 0.05


def test_bootstrap_validates():
    times = np.arange(10.0)
    with pytest.raises(InputError, match="same shape"):
        bootstrap_difference(np.ones((4, 10)), np.ones((5, 10)), times)
    with pytest.raises(ValueError, match="'ci' must be in"):
        bootstrap_peak_latency(np.ones((4, 10)), times, ci=95)
    with pytest.raises(ValueError, match="n_bootstrap"):
        bootstrap_peak_latency(np.ones((4, 10)), times, n_bootstrap=1)
    with pytest.raises(InputError, match="2 dimensions"):
        bootstrap_peak_latency(np.ones(10), times)


# ------------------------------------------------------------------------------ layer order
def test_layer_order_correlation_matches_scipy_and_brute_force():
    rng = np.random.default_rng(13)
    n_subjects, n_layers = 9, 8
    lat = 100 + 5 * np.arange(n_layers) + rng.normal(0, 12, (n_subjects, n_layers))
    lat[0, :4] = lat[0, 0]  # ties within a subject
    res = layer_order_correlation(lat, n_permutations=10_000)
    layers = np.arange(1, n_layers + 1)
    r_loop = np.array([spearmanr(layers, row).statistic for row in lat])
    np.testing.assert_allclose(res.r_subjects, r_loop, atol=1e-12)
    assert res.r == pytest.approx(r_loop.mean())
    assert res.p == pytest.approx(brute_sign_p(r_loop[:, None], tail=0)[0])
    assert res.r > 0.3 and res.p < 0.01
    # reversed layer order flips the sign, custom layer numbers are ranked
    rev = layer_order_correlation(lat, layer_numbers=layers[::-1] * 10.0)
    assert rev.r == pytest.approx(-res.r) and rev.p == pytest.approx(res.p)


def test_layer_order_correlation_constant_subject_warns():
    lat = np.array([[1.0, 2, 3, 4], [5, 5, 5, 5], [1, 3, 2, 4]])
    with pytest.warns(RuntimeWarning, match=r"subjects \[1\]"):
        res = layer_order_correlation(lat)
    assert res.r_subjects[1] == 0.0


def test_layer_order_correlation_validates():
    with pytest.raises(InputError, match="at least 3 layers"):
        layer_order_correlation(np.ones((5, 2)))
    with pytest.raises(InputError, match="layer_numbers has 3 entries"):
        layer_order_correlation(np.ones((5, 4)), layer_numbers=[1, 2, 3])
    with pytest.raises(ValueError, match="Allowed values are -1, 0 and 1"):
        layer_order_correlation(np.ones((5, 4)), tail="two-sided")


# ------------------------------------------------------------------------------ summary RDM
def test_summary_rdm_matches_sklearn_pca_and_scipy():
    rng = np.random.default_rng(14)
    n = 12
    layers = [
        rng.standard_normal((n, 300)).astype(np.float32),
        rng.standard_normal((n, 40)) * 10,
        rng.standard_normal((n, 5)),  # fewer features than n - 1: keeps all 5 components
    ]
    expected_parts = []
    for f in layers:
        k = min(n - 1, f.shape[1])
        scores = PCA(n_components=k, svd_solver="full").fit_transform(f.astype(np.float64))
        # our documented sign convention: largest-magnitude score of each component positive
        scores *= np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(k)])
        expected_parts.append(scores)
    Z = np.concatenate(expected_parts, axis=1)
    assert Z.shape == (n, 11 + 11 + 5)
    expected = np.array([1 - spearmanr(Z[i], Z[j]).statistic for i, j in itertools.combinations(range(n), 2)])
    rdm = summary_rdm(layers)
    np.testing.assert_allclose(rdm, expected, atol=1e-6)
    assert rdm.shape == (n_pairs(n),)
    # fewer components per layer
    rdm3 = summary_rdm(layers, n_components=3)
    Z3 = np.concatenate([p[:, :3] for p in expected_parts], axis=1)
    np.testing.assert_allclose(rdm3, pdist(np.argsort(np.argsort(Z3, 1), 1), "correlation"), atol=1e-6)


def test_summary_rdm_validates():
    with pytest.raises(InputError, match="same conditions"):
        summary_rdm([np.ones((5, 3)), np.ones((6, 3))])
    with pytest.raises(InputError, match="empty"):
        summary_rdm([])
    with pytest.raises(InputError, match="list of"):
        summary_rdm(np.ones((5, 3)))
    with pytest.raises(ValueError, match="n_components"):
        summary_rdm([np.ones((5, 3))], n_components=5)


def test_bad_options_are_input_errors():
    with pytest.raises(InputError, match="Allowed values are -1, 0 and 1, but got 2"):
        sign_permutation_test(np.ones((5, 3)), tail=2)
    with pytest.raises(InputError, match="'n_permutations' must be an integer >= 1"):
        sign_permutation_test(np.ones((5, 3)), n_permutations=0)
    with pytest.raises(InputError, match="'alpha' must be in \\(0, 1\\)"):
        fdr(np.array([0.1, 0.2]), alpha=1.5)
    with pytest.raises(InputError, match="'alpha' must be a number in \\(0, 1\\)"):
        fdr(np.array([0.1, 0.2]), alpha="0.05")
    with pytest.raises(InputError, match="'n_components' must be <= n_conditions - 1"):
        summary_rdm([np.random.default_rng(0).normal(size=(5, 3))], n_components=5)
