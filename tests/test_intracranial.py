"""Kuzovkin 2018 kernel: probe RSA and permutation p values vs a scipy loop, alignment, maps, split halves."""

import logging

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import pdist, squareform

from brainalign.intracranial import (
    VISUAL_AREAS,
    _kendall_from_counts,
    _spearman_from_counts,
    alignment,
    alignment_points,
    mapping_matrix,
    permutation_test,
    probe_layer_rsa,
    probe_rdms,
    split_half_alignment,
    stimulus_permutations,
)
from brainalign.utils import InputError


def _data(n=12, n_probes=6, n_layers=3, seed=0, rejected=True, ties=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_probes))
    if rejected:
        x[[1, 4], 1] = np.nan  # probes 1 and 2 share a pattern of rejected trials
        x[[1, 4], 2] = np.nan
        x[7, 3] = np.nan
    if ties:
        x[:, 4] = np.round(x[:, 4])  # ties in a probe's RDM
    layers = np.stack([pdist(rng.standard_normal((n, 4))) for _ in range(n_layers)])
    if ties:
        layers[-1] = np.round(layers[-1])  # ties in a layer RDM
    return x, layers


def _probe_permutation(pi, valid, null):
    """The permutation a probe with valid trials ``valid`` gets from the shared permutation ``pi``."""
    if null == "all" or valid.all():
        return pi
    own = np.arange(len(pi))
    own[np.flatnonzero(valid)] = [s for s in pi if valid[s]]  # valid stimuli in pi's order
    return own


def _brute_force(x, layers, perms, null="valid"):
    """scipy.stats.spearmanr probe by probe, layer by layer, permutation by permutation."""
    n = x.shape[0]
    i, j = np.triu_indices(n, k=1)
    rho = np.zeros((x.shape[1], layers.shape[0]))
    p = np.zeros_like(rho)
    for probe in range(x.shape[1]):
        rdm = np.abs(x[i, probe] - x[j, probe])
        ok = ~np.isnan(rdm)  # pairs without a rejected trial
        valid = ~np.isnan(x[:, probe])
        for layer in range(layers.shape[0]):
            square = squareform(layers[layer])
            obs = stats.spearmanr(rdm[ok], layers[layer][ok]).statistic
            null_rho = []
            for pi in perms:
                own = _probe_permutation(pi, valid, null)
                null_rho.append(stats.spearmanr(rdm[ok], square[np.ix_(own, own)][i, j][ok]).statistic)
            rho[probe, layer] = obs
            p[probe, layer] = (1 + np.sum(np.array(null_rho) >= obs - 1e-12)) / (1 + len(perms))
    return rho, p


# --------------------------------------------------------------- RDMs and RSA


def test_probe_rdms_are_pdist_with_nan_pairs():
    x, _ = _data()
    rdms = probe_rdms(x)
    for probe in range(x.shape[1]):
        expected = pdist(np.nan_to_num(x[:, [probe]], nan=0.0))
        bad = np.isnan(x[:, probe])
        pair_bad = pdist(bad[:, None].astype(float), lambda a, b: a[0] or b[0]).astype(bool)
        assert np.array_equal(np.isnan(rdms[probe]), pair_bad)
        np.testing.assert_allclose(rdms[probe][~pair_bad], expected[~pair_bad])


@pytest.mark.parametrize("rejected, null", [(False, "valid"), (True, "valid"), (True, "all")])
def test_p_values_and_rho_equal_a_scipy_loop(rejected, null):
    x, layers = _data(rejected=rejected)
    n_perm, seed = 150, 7
    result = permutation_test(x, layers, n_permutations=n_perm, seed=seed, min_valid=5, null=null)
    rho, p = _brute_force(x, layers, stimulus_permutations(x.shape[0], n_perm, seed), null)
    np.testing.assert_allclose(result.rho, rho, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.p, p)
    assert result.kept.all() and result.n_permutations == n_perm
    np.testing.assert_array_equal(result.n_valid, (~np.isnan(x)).sum(axis=0))
    np.testing.assert_array_equal(result.significant, (p <= 0.001) & (rho > 0))


def test_significance_threshold_and_p_convention():
    x, layers = _data(rejected=True)
    result = permutation_test(x, layers, n_permutations=40, seed=1, min_valid=5, alpha=0.2)
    assert (result.p >= 1 / 41).all() and (result.p <= 1).all()
    np.testing.assert_allclose(result.p * 41, np.round(result.p * 41))
    np.testing.assert_array_equal(result.significant, (result.p <= 0.2) & (result.rho > 0))


def test_planted_probe_is_significant_and_positive():
    rng = np.random.default_rng(3)
    n = 30
    feats = rng.standard_normal((n, 1))
    layers = np.stack([pdist(feats), pdist(rng.standard_normal((n, 5)))])
    x = np.column_stack([feats[:, 0] + 0.05 * rng.standard_normal(n), rng.standard_normal(n)])
    x[[2, 9], 0] = np.nan
    result = permutation_test(x, layers, n_permutations=999, seed=0, min_valid=10)
    assert result.significant[0, 0] and result.p[0, 0] == 1 / 1000
    assert not result.significant[1].any() and not result.significant[0, 1]


def test_results_do_not_depend_on_the_batch_size_or_jobs():
    x, layers = _data(n=10, rejected=True)
    for null in ("valid", "all"):
        runs = [permutation_test(x, layers, n_permutations=37, seed=5, min_valid=5, null=null, batch_size=b,
                                 n_jobs=j) for b, j in ((1, 1), (6, 1), (None, 1), (4, 2), (1, -1))]
        for other in runs[1:]:
            np.testing.assert_array_equal(other.p, runs[0].p)
            np.testing.assert_array_equal(other.rho, runs[0].rho)


def test_probe_side_and_layer_side_products_agree():
    """Groups with fewer probes than layers permute the probe ranks, larger ones the layers."""
    x, layers = _data(n=11, n_probes=5, n_layers=4, rejected=False, ties=False)
    few = permutation_test(x[:, :2], layers, n_permutations=30, seed=2, min_valid=5)  # 2 probes < 4 layers
    many = permutation_test(x, layers, n_permutations=30, seed=2, min_valid=5)  # 5 probes >= 4 layers
    np.testing.assert_allclose(few.rho, many.rho[:2], atol=1e-12)
    np.testing.assert_array_equal(few.p, many.p[:2])


def test_nulls_agree_without_rejected_trials():
    x, layers = _data(rejected=False)
    a = permutation_test(x, layers, n_permutations=40, seed=3, min_valid=5, null="valid")
    b = permutation_test(x, layers, n_permutations=40, seed=3, min_valid=5, null="all")
    np.testing.assert_allclose(a.rho, b.rho, atol=1e-12)
    np.testing.assert_array_equal(a.p, b.p)
    with pytest.raises(ValueError, match="'null' parameter"):
        permutation_test(x, layers, null="some")


def test_permutations_are_seeded_permutations():
    a = stimulus_permutations(9, 20, 4)
    assert a.shape == (20, 9)
    assert (np.sort(a, axis=1) == np.arange(9)).all()
    np.testing.assert_array_equal(a, stimulus_permutations(9, 20, np.random.default_rng(4)))
    assert not np.array_equal(a, stimulus_permutations(9, 20, 5))
    with pytest.raises(ValueError, match="seed is required"):
        stimulus_permutations(9, 20, None)


def test_probe_layer_rsa_is_the_observed_rho():
    x, layers = _data()
    rho = probe_layer_rsa(x, layers, min_valid=5)
    np.testing.assert_array_equal(rho, permutation_test(x, layers, n_permutations=3, min_valid=5).rho)
    no_perm = permutation_test(x, layers, n_permutations=0, min_valid=5)
    assert np.isnan(no_perm.p).all() and not no_perm.significant.any()


def test_probes_with_too_few_trials_or_constant_are_dropped(caplog):
    x, layers = _data(rejected=True)
    x[:8, 0] = np.nan  # 4 valid trials left
    x[:, 5] = 2.0  # constant responses: no ranking possible
    with caplog.at_level(logging.WARNING, logger="brainalign.intracranial"):
        result = permutation_test(x, layers, n_permutations=20, min_valid=5)
    assert result.n_dropped_few_trials == 1 and result.n_dropped_constant == 1
    np.testing.assert_array_equal(result.kept, [False, True, True, True, True, False])
    assert np.isnan(result.rho[[0, 5]]).all() and np.isnan(result.p[[0, 5]]).all()
    assert not result.significant[[0, 5]].any()
    assert "dropped 1 of 6 probes with fewer than 5 valid trials" in caplog.text
    assert "dropped 1 of 6 probes whose valid responses are all equal" in caplog.text


def test_constant_layer_gives_nan_not_significance():
    x, layers = _data(rejected=True)
    layers[1] = 0.5
    result = permutation_test(x, layers, n_permutations=20, min_valid=5)
    assert np.isnan(result.rho[:, 1]).all() and np.isnan(result.p[:, 1]).all()
    assert not result.significant[:, 1].any() and np.isfinite(result.rho[:, [0, 2]]).all()


def test_bad_inputs():
    x, layers = _data()
    with pytest.raises(InputError, match="condensed RDMs \\(n_layers, 66\\)"):
        permutation_test(x, layers[:, :-1])
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(InputError, match="infinite"):
        permutation_test(bad, layers)
    with pytest.raises(InputError, match="layer_rdms"):
        permutation_test(x, np.where(np.arange(66) == 3, np.nan, layers))
    with pytest.raises(ValueError, match="min_valid"):
        permutation_test(x, layers, min_valid=2)
    with pytest.raises(ValueError, match="alpha"):
        permutation_test(x, layers, alpha=0)


# --------------------------------------------------------------- alignment


def _significance(seed=0, n_probes=40, n_layers=9):
    rng = np.random.default_rng(seed)
    areas = rng.choice(np.array([17, 18, 19, 37, 20, 21, 0]), size=n_probes)
    sig = rng.random((n_probes, n_layers)) < 0.2
    return sig, areas


def test_alignment_points_by_explicit_loop():
    sig, areas = _significance()
    layer_idx, area_idx = alignment_points(sig, areas)
    expected = [(layer, VISUAL_AREAS.index(areas[p]))
                for p in range(sig.shape[0]) if areas[p] in VISUAL_AREAS
                for layer in range(sig.shape[1]) if sig[p, layer]]
    assert list(zip(layer_idx.tolist(), area_idx.tolist(), strict=True)) == expected


def test_alignment_equals_scipy_on_an_explicit_list_of_pairs():
    # each significant probe-layer pair is one point (layer index, area index)
    pairs = [(0, 0), (1, 0), (1, 1), (2, 1), (2, 2), (3, 2), (5, 3), (6, 3), (8, 4), (7, 4), (1, 4), (0, 2)]
    sig = np.zeros((len(pairs), 9), dtype=bool)
    areas = np.zeros(len(pairs), dtype=int)
    for k, (layer, area) in enumerate(pairs):  # one probe per point, in the area at that index
        sig[k, layer] = True
        areas[k] = VISUAL_AREAS[area]
    result = alignment(sig, areas)
    layer, area = np.array(pairs).T
    rho = stats.spearmanr(layer, area)
    tau = stats.kendalltau(layer, area)
    assert result.rho == pytest.approx(rho.statistic, abs=1e-12)
    assert result.rho_p == pytest.approx(rho.pvalue, rel=1e-9)
    assert result.tau == pytest.approx(tau.statistic, abs=1e-12)
    assert result.tau_p == pytest.approx(tau.pvalue, rel=1e-9)
    assert result.n_points == len(pairs)
    assert result.counts.sum() == len(pairs) and result.counts[4, 8] == 1


def test_alignment_of_random_significance_matches_scipy_and_counts():
    sig, areas = _significance(seed=2)
    result = alignment(sig, areas)
    layer, area = alignment_points(sig, areas)
    assert result.rho == pytest.approx(stats.spearmanr(layer, area).statistic, abs=1e-12)
    assert result.tau == pytest.approx(stats.kendalltau(layer, area).statistic, abs=1e-12)
    # the table engines used for split halves give the same numbers
    assert _spearman_from_counts(result.counts) == pytest.approx(result.rho, abs=1e-12)
    assert _kendall_from_counts(result.counts) == pytest.approx(result.tau, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_table_engines_equal_scipy(seed):
    rng = np.random.default_rng(seed)
    table = rng.integers(0, 4, (5, 9)) * (rng.random((5, 9)) < 0.6)
    area, layer = np.nonzero(table)
    reps = table[area, layer]
    a, l_ = np.repeat(area, reps), np.repeat(layer, reps)
    assert _spearman_from_counts(table) == pytest.approx(stats.spearmanr(l_, a).statistic, abs=1e-12)
    assert _kendall_from_counts(table) == pytest.approx(stats.kendalltau(l_, a).statistic, abs=1e-12)


def test_alignment_without_enough_points_is_nan():
    sig = np.zeros((3, 9), dtype=bool)
    sig[0, 2] = True
    result = alignment(sig, np.array([17, 18, 5]))
    assert np.isnan(result.rho) and np.isnan(result.tau) and result.n_points == 1


# --------------------------------------------------------------- mapping matrix


def test_mapping_matrix_by_explicit_loop():
    sig, areas = _significance(seed=4)
    rng = np.random.default_rng(0)
    rho = rng.uniform(0.01, 0.5, sig.shape)
    kept = rng.random(sig.shape[0]) > 0.1
    result = mapping_matrix(sig, areas, rho=rho, kept=kept)
    assert result.areas == VISUAL_AREAS
    for k, area in enumerate(VISUAL_AREAS):
        probes = [p for p in range(sig.shape[0]) if areas[p] == area and kept[p]]
        assert result.n_probes[k] == len(probes)
        n_sig = sum(1 for p in probes if sig[p].any())
        assert result.n_significant_probes[k] == n_sig
        for layer in range(sig.shape[1]):
            count = sum(1 for p in probes if sig[p, layer])
            assert result.counts[k, layer] == count
            if probes:
                assert result.fraction[k, layer] == pytest.approx(count / len(probes))
            else:
                assert np.isnan(result.fraction[k, layer])
            total = sum(rho[p, layer] for p in probes if sig[p, layer])
            assert result.score[k, layer] == pytest.approx(total / n_sig if n_sig else 0.0)
    assert mapping_matrix(sig, areas).score is None


# --------------------------------------------------------------- split halves


def _subjects(n_subjects=7, seed=0):
    sigs, areas = [], []
    for s in range(n_subjects):
        sig, a = _significance(seed=10 + s, n_probes=8 + s)
        sigs.append(sig)
        areas.append(a)
    return sigs, areas


@pytest.mark.parametrize("balanced", [True, False])
def test_split_half_rho_equals_scipy_per_half(balanced):
    sigs, areas = _subjects()
    result = split_half_alignment(sigs, areas, n_splits=25, seed=3, balanced=balanced)
    assert result.rho.shape == (25, 2) and result.halves.shape == (25, 7)
    if not balanced:
        assert (result.halves.sum(axis=1) == 3).all()
    for r in range(25):
        for h, members in enumerate((result.halves[r], ~result.halves[r])):
            sig = np.concatenate([sigs[s] for s in np.flatnonzero(members)])
            a = np.concatenate([areas[s] for s in np.flatnonzero(members)])
            layer, area = alignment_points(sig, a)
            if layer.size < 2:
                assert np.isnan(result.rho[r, h])
                continue
            assert result.rho[r, h] == pytest.approx(stats.spearmanr(layer, area).statistic, abs=1e-12)
            assert result.tau[r, h] == pytest.approx(stats.kendalltau(layer, area).statistic, abs=1e-12)
    again = split_half_alignment(sigs, areas, n_splits=25, seed=3, balanced=balanced)
    np.testing.assert_array_equal(again.halves, result.halves)
    assert np.isfinite(result.rho_sd) and result.rho_abs_difference.shape == (25,)


def test_balanced_split_follows_the_authors_greedy_rule():
    sigs, areas = _subjects(n_subjects=6)
    result = split_half_alignment(sigs, areas, n_splits=10, seed=1)
    counts = np.array([[np.sum(a == v) for v in VISUAL_AREAS] for a in areas])
    rng = np.random.default_rng(1)
    for r in range(10):
        order = rng.permutation(6)
        one, two = np.zeros(5, int), np.zeros(5, int)
        for s in order:
            if np.abs(one - two + counts[s]).sum() < np.abs(two - one + counts[s]).sum():
                one += counts[s]
                assert result.halves[r, s]
            else:
                two += counts[s]
                assert not result.halves[r, s]


def test_split_half_needs_two_subjects():
    sigs, areas = _subjects(1)
    with pytest.raises(InputError, match="at least 2 subjects"):
        split_half_alignment(sigs, areas)
    sigs, areas = _subjects(2)
    with pytest.raises(InputError, match="same layers"):
        split_half_alignment([sigs[0], sigs[1][:, :5]], areas)
