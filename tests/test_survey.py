"""Survey analyses against explicit constructions, statsmodels / scipy, and planted answers."""

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from brainalign.survey import (
    _candidate_breaks,
    _segmented_lstsq,
    _SegmentedFitter,
    _valid_combinations,
    bootstrap_ci,
    breakpoints,
    classical_mds,
    controlled_comparison,
    effective_dimensionality,
    model_rsm_similarity,
    spearman_with,
)
from brainalign.utils import InputError

# ---- effective dimensionality ----------------------------------------------------------


@pytest.mark.parametrize("shape", [(30, 200), (200, 30), (50, 50)])
def test_ed_matches_explicit_eigenvalues(shape):
    rng = np.random.default_rng(0)
    X = rng.standard_normal(shape) @ np.diag(rng.uniform(0.1, 3, shape[1]))
    eig = np.clip(np.linalg.eigvalsh(np.cov(X, rowvar=False)), 0, None)
    expected = eig.sum() ** 2 / np.sum(eig**2)
    assert effective_dimensionality(X) == pytest.approx(expected, rel=1e-10)
    assert effective_dimensionality(X.astype(np.float32)) == pytest.approx(expected, rel=1e-5)
    assert effective_dimensionality(7 * X + 3) == pytest.approx(expected, rel=1e-10)


def test_ed_limits():
    rng = np.random.default_rng(1)
    rank1 = rng.standard_normal((40, 1)) @ rng.standard_normal((1, 25))
    assert effective_dimensionality(rank1) == pytest.approx(1.0)
    iso = rng.standard_normal((20000, 10))
    assert effective_dimensionality(iso) == pytest.approx(10, rel=0.01)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.ones(5), "shape"),
        (np.ones((1, 5)), "shape"),
        (np.ones((4, 3)), "no variance"),
        (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN"),
    ],
)
def test_ed_errors(X, match):
    with pytest.raises(InputError, match=match):
        effective_dimensionality(X)


# ---- model-to-model RSA and MDS --------------------------------------------------------


def _rdms(seed=0, n_models=5, n_pairs=45):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(n_pairs)
    return {f"m{i}": shared * rng.uniform(0, 2) + rng.standard_normal(n_pairs) for i in range(n_models)}


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_model_rsm_similarity_matches_direct(method):
    rdms = _rdms()
    out = model_rsm_similarity(rdms, method=method)
    stack = np.stack(list(rdms.values()))
    expected = np.corrcoef(stack) if method == "pearson" else spearmanr(stack, axis=1).statistic
    assert list(out.index) == list(out.columns) == list(rdms)
    np.testing.assert_allclose(out.to_numpy(), expected, atol=1e-12)
    assert np.array_equal(out.to_numpy(), out.to_numpy().T)


def test_model_rsm_similarity_errors():
    rdms = _rdms()
    with pytest.raises(InputError, match="at least 2"):
        model_rsm_similarity({"a": rdms["m0"]})
    with pytest.raises(InputError, match="'m1' has shape"):
        model_rsm_similarity({"m0": rdms["m0"], "m1": rdms["m1"][:-1]})
    bad = dict(rdms, m2=np.r_[np.nan, rdms["m2"][1:]])
    with pytest.raises(InputError, match="'m2' holds NaN"):
        model_rsm_similarity(bad)
    with pytest.raises(InputError, match="'c' is constant"):
        model_rsm_similarity({"m0": rdms["m0"], "c": np.ones(45)})
    with pytest.raises(ValueError, match="'method'"):
        model_rsm_similarity(rdms, method="kendall")


def test_mds_matches_explicit_torgerson():
    rng = np.random.default_rng(2)
    D = squareform(pdist(rng.standard_normal((12, 5))))
    n = len(D)
    J = np.eye(n) - np.ones((n, n)) / n
    B = -0.5 * J @ (D**2) @ J
    lam, V = np.linalg.eigh(B)
    expected = V[:, ::-1][:, :3] * np.sqrt(lam[::-1][:3])
    got = classical_mds(D, 3)
    for k in range(3):  # eigenvectors have arbitrary sign
        sign = np.sign(got[:, k] @ expected[:, k])
        np.testing.assert_allclose(got[:, k], sign * expected[:, k], atol=1e-10)


@pytest.mark.planted
@pytest.mark.parametrize("dim", [2, 3])
def test_mds_recovers_euclidean_configuration(dim):
    rng = np.random.default_rng(dim)
    X = rng.standard_normal((15, dim)) * [3.0, 2.0, 1.0][:dim]
    Y = classical_mds(squareform(pdist(X)), dim)
    np.testing.assert_allclose(pdist(Y), pdist(X), atol=1e-9)
    Xc = X - X.mean(0)
    np.testing.assert_allclose(Y.mean(0), 0, atol=1e-10)
    R, _ = orthogonal_procrustes(Xc, Y)  # rotation / reflection only
    np.testing.assert_allclose(Xc @ R, Y, atol=1e-9)


def test_mds_dataframe_signs_and_non_euclidean_warning():
    sim = model_rsm_similarity(_rdms(3))
    out = classical_mds(1 - sim)
    assert list(out.index) == list(sim.index) and list(out.columns) == ["dim1", "dim2"]
    for col in out:  # largest-magnitude coordinate positive on each axis
        assert out[col].loc[out[col].abs().idxmax()] > 0
    # a non-Euclidean "distance": 3 points violating the triangle inequality
    D = np.array([[0.0, 1.0, 5.0], [1.0, 0.0, 1.0], [5.0, 1.0, 0.0]])
    with pytest.warns(RuntimeWarning, match="only 1 of the first 2"):
        Y = classical_mds(D, 2)
    assert np.all(Y[:, 1] == 0)


@pytest.mark.parametrize(
    "D, kwargs, match",
    [
        (np.ones((3, 4)), {}, "square"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), {}, "symmetric"),
        (np.array([[1.0, 1.0], [1.0, 1.0]]), {}, "zero diagonal"),
        (squareform(pdist(np.eye(4))), {"n_components": 4}, r"\[1, 3\]"),
    ],
)
def test_mds_errors(D, kwargs, match):
    with pytest.raises(InputError, match=match):
        classical_mds(D, **kwargs)


# ---- controlled comparisons ----------------------------------------------------------


def _scores(seed=0, effect=0.05, n_models=12, model_sd=0.0, noise=0.02):
    """Each model scored in 4 subjects; 'transformer' models are `effect` below 'CNN'."""
    rng = np.random.default_rng(seed)
    subj = {"s1": 0.0, "s2": -0.05, "s5": 0.03, "s7": -0.1}
    rows = []
    for m in range(n_models):
        arch = "CNN" if m % 2 == 0 else "transformer"
        offset = rng.normal(0, model_sd)
        for s, base in subj.items():
            score = 0.6 + base + offset - (effect if arch == "transformer" else 0) + rng.normal(0, noise)
            rows.append({"model": f"m{m}", "subject": s, "arch": arch, "score": score})
    return pd.DataFrame(rows)


def test_ols_matches_statsmodels_directly():
    df = _scores()
    out = controlled_comparison(df, "arch", reference="CNN")
    fit = smf.ols("score ~ C(arch, Treatment(reference='CNN')) + C(subject)", df).fit()
    name = "C(arch, Treatment(reference='CNN'))[T.transformer]"
    row = out.iloc[0]
    assert row["term"] == "arch[transformer]" and row["reference"] == "CNN"
    assert row["test"] == "Wald t (OLS)"
    np.testing.assert_allclose(row["beta"], fit.params[name], rtol=1e-12)
    np.testing.assert_allclose(row["se"], fit.bse[name], rtol=1e-12)
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], fit.conf_int().loc[name], rtol=1e-12)
    np.testing.assert_allclose(row["p"], fit.pvalues[name], rtol=1e-10)
    assert row["df_resid"] == fit.df_resid and row["n_obs"] == 48


@pytest.mark.planted
def test_ols_recovers_planted_effect():
    out = controlled_comparison(_scores(1, effect=0.05, n_models=30), "arch", reference="CNN")
    row = out.iloc[0]
    assert row["ci_low"] < -0.05 < row["ci_high"]
    assert row["beta"] == pytest.approx(-0.05, abs=0.01) and row["p"] < 1e-6
    null = controlled_comparison(_scores(2, effect=0.0, n_models=30), "arch").iloc[0]
    assert null["ci_low"] < 0 < null["ci_high"] and null["p"] > 0.01
    # reference flips the sign
    flipped = controlled_comparison(_scores(1, effect=0.05, n_models=30), "arch", reference="transformer")
    assert flipped.iloc[0]["beta"] == pytest.approx(-row["beta"])


@pytest.mark.filterwarnings("ignore:The MLE may be on the boundary")  # the raw-score reference fit
def test_mixed_model_matches_statsmodels_directly():
    df = _scores(3, model_sd=0.03)
    out = controlled_comparison(df, "arch", model="model", reference="CNN")
    fit = smf.mixedlm("score ~ C(arch, Treatment(reference='CNN')) + C(subject)", df, groups=df["model"]).fit(
        reml=True
    )
    name = "C(arch, Treatment(reference='CNN'))[T.transformer]"
    row = out.iloc[0]
    assert row["test"].startswith("Wald z")
    np.testing.assert_allclose(row["beta"], fit.params[name], rtol=1e-8)
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], fit.conf_int().loc[name], rtol=1e-8)
    np.testing.assert_allclose(row["p"], fit.pvalues[name], rtol=1e-6)
    half = 1.959963984540054 * row["se"]  # Wald z interval
    np.testing.assert_allclose([row["ci_low"], row["ci_high"]], [row["beta"] - half, row["beta"] + half])


@pytest.mark.planted
def test_mixed_model_recovers_planted_effect():
    df = _scores(4, effect=0.04, n_models=40, model_sd=0.03, noise=0.01)
    row = controlled_comparison(df, "arch", model="model", reference="CNN").iloc[0]
    assert row["ci_low"] < -0.04 < row["ci_high"]
    assert row["p"] < 1e-3


def test_three_levels_and_missing_rows():
    df = _scores(5)
    df.loc[df.model == "m0", "arch"] = "mlp"
    df.loc[3, "score"] = np.nan
    out = controlled_comparison(df, "arch", reference="CNN")
    assert list(out["level"]) == ["mlp", "transformer"] and out["n_obs"].iloc[0] == 47


def test_comparison_errors():
    df = _scores()
    with pytest.raises(InputError, match="no column"):
        controlled_comparison(df, "task")
    with pytest.raises(InputError, match="levels are"):
        controlled_comparison(df, "arch", reference="RNN")
    with pytest.raises(InputError, match="at least 2 levels"):
        controlled_comparison(df[df.arch == "CNN"], "arch")


# ---- breakpoints -------------------------------------------------------------------------


def _piecewise(x, psi, slopes, intercept=1.0):
    y = intercept + slopes[0] * x
    for p, (s0, s1) in zip(psi, zip(slopes[:-1], slopes[1:], strict=True), strict=True):
        y = y + (s1 - s0) * np.maximum(x - p, 0)
    return y


def test_grid_sse_matches_brute_force():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 60))
    y = _piecewise(x, [3, 7], [1, -1, 0.5]) + rng.normal(0, 0.1, 60)
    cand = _candidate_breaks(x, 25, 3)
    combos = _valid_combinations(x, cand, 2, 3)
    fitter = _SegmentedFitter(x, cand, combos, 3)
    brute = [_segmented_lstsq(x, y, cand[c])[1] for c in combos]
    np.testing.assert_allclose(fitter.grid_sse(y), brute, rtol=1e-9, atol=1e-12)
    assert fitter.profile_sse(np.array([3.3, 6.1]), y) == pytest.approx(
        _segmented_lstsq(x, y, [3.3, 6.1])[1], rel=1e-10
    )


@pytest.mark.planted
def test_breakpoints_recover_planted_ones():
    rng = np.random.default_rng(1)
    x = np.arange(1.0, 201.0)
    truth = [70.0, 140.0]
    y = _piecewise(x, truth, [-0.001, -0.004, -0.0005]) + rng.normal(0, 0.01, x.size)
    out = breakpoints(y, 2, x=x, n_boot=100)
    np.testing.assert_allclose(out["breakpoints"], truth, atol=3)
    assert np.all(out["ci_low"] <= truth) and np.all(np.asarray(truth) <= out["ci_high"])
    np.testing.assert_allclose(out["slopes"], [-0.001, -0.004, -0.0005], atol=3e-4)
    assert out["sse"] == pytest.approx(np.sum((y - out["fitted"]) ** 2))
    assert out["sse"] < _segmented_lstsq(x, y, [60.0, 150.0])[1]
    assert out["breakpoints_boot"].shape == (100, 2)


def test_breakpoints_of_rank_ordered_scores():
    """Without x the scores are sorted (best first) and regressed on rank."""
    rng = np.random.default_rng(2)
    x = np.arange(1.0, 151.0)
    y = _piecewise(x, [100.0], [-0.0005, -0.005], intercept=0.7) + rng.normal(0, 0.003, x.size)
    out = breakpoints(rng.permutation(y), 1, n_boot=50)
    assert np.all(np.diff(out["y"]) <= 0) and np.array_equal(out["x"], x)
    assert out["breakpoints"][0] == pytest.approx(100, abs=4)
    a = breakpoints(y, 1, n_boot=20, seed=3)
    b = breakpoints(y, 1, n_boot=20, seed=3)
    np.testing.assert_array_equal(a["breakpoints_boot"], b["breakpoints_boot"])


def test_breakpoints_errors():
    with pytest.raises(InputError, match="distinct x"):
        breakpoints(np.arange(7.0), 2)
    with pytest.raises(InputError, match="same"):
        breakpoints(np.arange(20.0), 1, x=np.arange(19.0))
    with pytest.raises(InputError, match="finite"):
        breakpoints(np.r_[np.nan, np.arange(20.0)], 1)
    with pytest.raises(InputError, match="n_breaks"):
        breakpoints(np.arange(20.0), 0)


# ---- Spearman and bootstrap --------------------------------------------------------------


def test_spearman_with_skips_missing():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"score": rng.normal(size=30), "top1": rng.normal(size=30)})
    df.loc[[2, 5], "top1"] = np.nan
    df.loc[7, "score"] = np.nan
    out = spearman_with(df, "top1")
    keep = df.dropna()
    ref = spearmanr(keep["score"], keep["top1"])
    assert out == {
        "rho": pytest.approx(ref.statistic),
        "p": pytest.approx(ref.pvalue),
        "n": 27,
        "n_dropped": 3,
    }
    with pytest.raises(InputError, match="no column 'params'"):
        spearman_with(df, "params")
    with pytest.raises(InputError, match="at least 3"):
        spearman_with(df.iloc[:2], "top1")


def test_bootstrap_ci_plain_matches_manual():
    values = np.array([0.61, 0.64, 0.58, 0.66])
    out = bootstrap_ci(values, n_boot=500, seed=1)
    idx = np.random.default_rng(1).integers(0, 4, size=(500, 4))
    boot = values[idx].mean(axis=1)
    assert out.loc[0, "mean"] == pytest.approx(values.mean())
    np.testing.assert_allclose(out.loc[0, ["ci_low", "ci_high"]], np.quantile(boot, [0.025, 0.975]))
    assert out.loc[0, "n"] == 4


def test_bootstrap_ci_grand_mean_centered():
    rng = np.random.default_rng(2)
    subject_offset = np.array([0.0, -0.1, 0.05, -0.15])[:, None]
    model_means = np.array([0.6, 0.62, 0.5])
    Y = pd.DataFrame(subject_offset + model_means + rng.normal(0, 0.005, (4, 3)), columns=["a", "b", "c"])
    plain = bootstrap_ci(Y, n_boot=2000, seed=0)
    gmc = bootstrap_ci(Y, n_boot=2000, seed=0, grand_mean_centered=True)
    assert list(gmc.index) == ["a", "b", "c"]
    np.testing.assert_allclose(gmc["mean"], plain["mean"])  # normalising keeps the means
    assert np.all(gmc["ci_high"] - gmc["ci_low"] < 0.2 * (plain["ci_high"] - plain["ci_low"]))
    # manual Cousineau normalisation + Morey factor with the same resamples
    Z = Y.to_numpy() - Y.to_numpy().mean(1, keepdims=True) + Y.to_numpy().mean()
    idx = np.random.default_rng(0).integers(0, 4, size=(2000, 4))
    boot = Z.mean(0) + np.sqrt(3 / 2) * (Z[idx].mean(1) - Z.mean(0))
    np.testing.assert_allclose(
        gmc[["ci_low", "ci_high"]].to_numpy().T, np.quantile(boot, [0.025, 0.975], axis=0)
    )


def test_bootstrap_ci_errors():
    with pytest.raises(InputError, match="at least 2 models"):
        bootstrap_ci(np.ones(4), grand_mean_centered=True)
    with pytest.raises(InputError, match="NaN"):
        bootstrap_ci(np.array([[0.1, np.nan], [0.2, 0.3]]))
    with pytest.raises(InputError, match="n_subjects >= 2"):
        bootstrap_ci(np.ones(1))
    with pytest.raises(InputError, match="ci"):
        bootstrap_ci(np.ones(3), ci=95)


def test_no_warnings_from_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        controlled_comparison(_scores(6), "arch")
        controlled_comparison(_scores(3, model_sd=0.03), "arch", model="model")
        breakpoints(np.linspace(1, 0, 40) ** 2, 2, n_boot=5)
