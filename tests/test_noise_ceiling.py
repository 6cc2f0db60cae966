"""Split-half / Spearman-Brown RSM noise ceiling against an explicit loop and a simulation."""

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from brainalign.noise_ceiling import spearman_brown, split_half_ceiling
from brainalign.utils import InputError


def _signal_plus_noise(seed, *, n=40, p=120, k=3, sigma=1.0, n_factors=5):
    """Noiseless responses S with a strong RSM structure, and k noisy repetitions."""
    rng = np.random.default_rng(seed)
    S = rng.standard_normal((n, n_factors)) @ rng.standard_normal((n_factors, p))
    S = S / np.sqrt(n_factors) + 0.5 * rng.standard_normal((n, p))
    reps = S[None] + sigma * rng.standard_normal((k, n, p))
    return S, reps


def _loop_ceiling(reps, rdm_metric, compare):
    """Brute force: scipy RDM per repetition, scipy correlation per pair, Spearman-Brown."""
    if rdm_metric == "pearson":
        rdms = [pdist(r, metric="correlation") for r in reps]
    else:
        rdms = []
        for r in reps:
            rho = spearmanr(r, axis=1).statistic  # images x images
            rdms.append(1 - rho[np.triu_indices(len(r), 1)])
    corr = pearsonr if compare == "pearson" else spearmanr
    r1 = np.mean([corr(a, b).statistic for a, b in combinations(rdms, 2)])
    k = len(reps)
    r_k = k * r1 / (1 + (k - 1) * r1)
    return r1, r_k, np.sqrt(max(r_k, 0.0))


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("rdm_metric", ["pearson", "spearman"])
@pytest.mark.parametrize("compare", ["pearson", "spearman"])
def test_matches_explicit_loop(k, rdm_metric, compare):
    # Spearman RSMs take discrete values; with many voxels exact ties (which float
    # rounding could break differently in the two implementations) are improbable.
    p = 31 if rdm_metric == "pearson" else 400
    _, reps = _signal_plus_noise(k, n=17, p=p, k=k, sigma=1.5)
    out = split_half_ceiling(reps, rdm_metric=rdm_metric, compare=compare)
    r1, r_k, ceiling = _loop_ceiling(reps, rdm_metric, compare)
    assert out["n_reps"] == k
    np.testing.assert_allclose(out["r1"], r1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["reliability"], r_k, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["ceiling"], ceiling, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.5])
def test_ceiling_matches_simulated_truth(sigma):
    """Ceiling ~ correlation of the averaged-data RSM with the noiseless RSM."""
    iu = np.triu_indices(50, 1)
    ceilings, truths = [], []
    for seed in range(12):
        S, reps = _signal_plus_noise(seed, n=50, p=150, k=3, sigma=sigma)
        ceilings.append(split_half_ceiling(reps)["ceiling"])
        truth = np.corrcoef(np.corrcoef(reps.mean(0))[iu], np.corrcoef(S)[iu])[0, 1]
        truths.append(truth)
    # Spearman-Brown on RSMs is first order in the noise: it errs on the low side as
    # noise grows (see the module docstring); within 0.03 in this regime.
    assert abs(np.mean(ceilings) - np.mean(truths)) < 0.03
    assert np.mean(ceilings) <= np.mean(truths) + 0.005


def test_noiseless_and_pure_noise():
    S, _ = _signal_plus_noise(0)
    out = split_half_ceiling(np.stack([S, S, S]))
    assert out["r1"] == pytest.approx(1.0)
    assert out["ceiling"] == pytest.approx(1.0)
    noise = np.random.default_rng(1).standard_normal((3, 60, 200))
    out = split_half_ceiling(noise)
    assert abs(out["r1"]) < 0.05
    assert 0.0 <= out["ceiling"] < 0.4


def test_invariant_to_image_offsets_and_scale():
    _, reps = _signal_plus_noise(3, k=4)
    rng = np.random.default_rng(0)
    shifted = reps * rng.uniform(0.5, 2, (4, 1, 1)) + rng.normal(size=(4, reps.shape[1], 1))
    a = split_half_ceiling(reps)
    b = split_half_ceiling(shifted)
    np.testing.assert_allclose(b["ceiling"], a["ceiling"], rtol=1e-10)


def test_float32_input():
    _, reps = _signal_plus_noise(4)
    a = split_half_ceiling(reps)
    b = split_half_ceiling(reps.astype(np.float32))
    np.testing.assert_allclose(b["reliability"], a["reliability"], atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(r1=st.floats(0.01, 0.99), k=st.integers(2, 10))
def test_spearman_brown_properties(r1, k):
    r_k = spearman_brown(r1, k)
    assert r1 <= r_k <= 1.0
    assert spearman_brown(r1, k + 1) >= r_k
    assert spearman_brown(r1, 1) == pytest.approx(r1)


def test_spearman_brown_undefined_for_very_negative_r1():
    assert np.isnan(spearman_brown(-0.5, 3))
    assert spearman_brown(0.5, 3) == pytest.approx(0.75)


def test_negative_reliability_gives_zero_ceiling():
    # pure noise: r1 scatters around 0; take the first seed where it is negative
    for seed in range(50):
        out = split_half_ceiling(np.random.default_rng(seed).standard_normal((2, 8, 20)))
        if out["r1"] < 0:
            break
    assert out["r1"] < 0
    assert out["reliability"] == pytest.approx(2 * out["r1"] / (1 + out["r1"]))
    assert out["ceiling"] == 0.0


@pytest.mark.parametrize(
    "reps, match",
    [
        (np.zeros((1, 5, 4)), r"n_reps >= 2"),
        (np.zeros((3, 2, 4)), r"n_images >= 3"),
        (np.zeros((5, 4)), r"expected \(n_reps"),
    ],
)
def test_bad_shapes(reps, match):
    with pytest.raises(InputError, match=match):
        split_half_ceiling(reps)


def test_nan_and_constant_image():
    _, reps = _signal_plus_noise(0)
    bad = reps.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        split_half_ceiling(bad)
    bad = reps.copy()
    bad[2, 7] = 4.0
    with pytest.raises(InputError, match=r"index \(2, 7\) is constant"):
        split_half_ceiling(bad)


def test_bad_options():
    _, reps = _signal_plus_noise(0)
    with pytest.raises(ValueError, match="'rdm_metric'.*'pearson' and 'spearman'.*'cosine'"):
        split_half_ceiling(reps, rdm_metric="cosine")
    with pytest.raises(ValueError, match="'compare'"):
        split_half_ceiling(reps, compare="kendall")
