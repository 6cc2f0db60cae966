"""cRSA / veRSA / layer selection against explicit scipy + scikit-learn computations."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV

from brainalign.linking import (
    ALPHA_GRIDS,
    BrainTarget,
    LayerFeatures,
    alpha_grid,
    crsa,
    score_layers,
    select_layers,
    split_train_test,
    versa,
)
from brainalign.utils import InputError


def _layer(name, X, index=0, keep_raw=True, k=None, rng=None):
    """A LayerFeatures with a dense Gaussian projection standing in for the SRP."""
    rng = np.random.default_rng(index) if rng is None else rng
    k = X.shape[1] if k is None else k
    R = rng.standard_normal((k, X.shape[1])) / np.sqrt(k)
    return LayerFeatures(name=name, depth=float(index), index=index, n_units=X.shape[1],
                         srp=(X @ R.T).astype(np.float32), row_mean=X.mean(axis=1),
                         ones_proj=R @ np.ones(X.shape[1]), raw=X if keep_raw else None)


def _planted(n=120, v=40, noise=0.5, seed=0):
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((n, 30)) for _ in range(3)]
    W = rng.standard_normal((30, v))
    Y = layers[1] @ W + noise * rng.standard_normal((n, v)) * np.std(layers[1] @ W)
    return layers, Y


def test_split_even_odd():
    train, test = split_train_test(7)
    np.testing.assert_array_equal(train, [0, 2, 4, 6])
    np.testing.assert_array_equal(test, [1, 3, 5])
    a, b = split_train_test(6, "first_half")
    np.testing.assert_array_equal(a, [0, 1, 2])
    with pytest.raises(ValueError, match="'split'.*'random'"):
        split_train_test(6, "random")


def test_alpha_grids():
    np.testing.assert_allclose(alpha_grid("paper"), np.logspace(1, 7, 7))
    np.testing.assert_allclose(alpha_grid("code"), np.logspace(-1, 5, 7))
    np.testing.assert_allclose(alpha_grid([1, 2]), [1.0, 2.0])
    with pytest.raises(InputError, match="alphas"):
        alpha_grid([1, -2])
    assert ALPHA_GRIDS["paper"][0] == 10.0


def test_crsa_matches_explicit():
    layers, Y = _planted()
    train, test = split_train_test(len(Y))
    target = BrainTarget("1", "OTC", Y)
    target.rdm_train, target.rdm_test = pdist(Y[train], "correlation"), pdist(Y[test], "correlation")
    layer = _layer("l1", layers[1])
    tr, te = crsa(layer, target, train, test)
    assert tr == pytest.approx(pearsonr(pdist(layers[1][train], "correlation"), target.rdm_train)[0])
    assert te == pytest.approx(pearsonr(pdist(layers[1][test], "correlation"), target.rdm_test)[0])


def test_crsa_on_wide_layer_uses_centred_projection():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4)) @ rng.standard_normal((4, 5000)) + rng.gamma(2, size=(60, 1)) * 5
    exact = _layer("raw", X, keep_raw=True, k=3000)
    approx = _layer("srp", X, keep_raw=False, k=3000)
    idx = np.arange(60)
    r = pearsonr(exact.pearson_rdm(idx), approx.pearson_rdm(idx))[0]
    assert r > 0.99


def test_versa_matches_sklearn_ridgecv():
    layers, Y = _planted()
    train, test = split_train_test(len(Y))
    target = BrainTarget("1", "OTC", Y)
    target.rdm_train, target.rdm_test = pdist(Y[train], "correlation"), pdist(Y[test], "correlation")
    X = layers[1]
    alphas = np.logspace(-2, 4, 7)
    (res,) = versa(X, [target], train, test, alphas=alphas, scoring="mse")
    ref = RidgeCV(alphas=alphas, alpha_per_target=True).fit(X[train], Y[train])
    pred = ref.predict(X[test])
    expected = pearsonr(pdist(pred, "correlation"), target.rdm_test)[0]
    assert res["versa_test"] == pytest.approx(expected, abs=1e-6)
    voxel_r = [pearsonr(pred[:, j], Y[test][:, j])[0] for j in range(Y.shape[1])]
    np.testing.assert_allclose(res["voxel_r_test"], voxel_r, atol=1e-5)
    assert res["encoding_test"] == pytest.approx(np.mean(voxel_r), abs=1e-5)


@pytest.mark.planted
def test_score_layers_recovers_planted_layer_and_splits_targets():
    layers, Y = _planted(noise=0.8)
    targets = [BrainTarget("1", "OTC", Y[:, :20]), BrainTarget("2", "OTC", Y[:, 20:])]
    feats = [_layer(f"layer{i}", X, index=i) for i, X in enumerate(layers)]
    scores, voxel_r, chosen = score_layers("m", feats, targets, alphas=np.logspace(-2, 4, 7))
    assert set(scores["metric"]) == {"crsa", "versa", "encoding_r"}
    assert len(scores) == 3 * 2 * 3 * 2  # layers x targets x metrics x splits
    selected = select_layers(scores, pd.DataFrame({"subject": ["1", "2"], "roi": ["OTC", "OTC"],
                                                   "ceiling": [0.9, 0.8]}))
    assert (selected["selected_layer"] == "layer1").all()
    row = selected.iloc[0]
    assert row["explainable_variance"] == pytest.approx(row["score"] ** 2 / row["ceiling"] ** 2)
    assert voxel_r[("1", "OTC")]["layer1"].shape == (20,)
    # fitting both subjects jointly equals fitting each alone
    # the kept test RDMs are those of the selected layers
    layer, rdm = chosen[("1", "OTC", "crsa")]
    assert layer == "layer1"
    np.testing.assert_allclose(rdm, pdist(layers[1][split_train_test(len(Y))[1]], "correlation"))
    assert chosen[("2", "OTC", "versa")][0] == "layer1"
    assert scores["effective_dim"].between(1, 30).all()
    alone, _, _ = score_layers("m", feats, [BrainTarget("2", "OTC", Y[:, 20:])],
                               alphas=np.logspace(-2, 4, 7))
    joint = scores[scores["subject"] == "2"].reset_index(drop=True)
    np.testing.assert_allclose(joint["score"], alone["score"], atol=1e-6)


def test_constant_layer_is_never_selected():
    layers, Y = _planted()
    feats = [_layer("const", np.zeros_like(layers[0]), index=0), _layer("good", layers[1], index=1)]
    scores, _, chosen = score_layers("m", feats, [BrainTarget("1", "OTC", Y)], alphas=np.logspace(-2, 4, 7))
    assert {layer for layer, _ in chosen.values()} == {"good"}
    assert scores.loc[scores["layer"] == "const", "score"].isna().all()
    assert (select_layers(scores)["selected_layer"] == "good").all()


def test_loo_train_rsm_leak_and_kfold_remedy():
    """A feature space unrelated to the brain: LOO train predictions leak -y_i, k-fold does not."""
    rng = np.random.default_rng(5)
    n, v = 200, 60
    Y = rng.standard_normal((n, 4)) @ rng.standard_normal((4, v)) + 0.3 * rng.standard_normal((n, v))
    Y += rng.uniform(2, 8, size=v)  # voxel baselines, as in % signal change
    null = rng.standard_normal((n, 50))
    target = BrainTarget("1", "OTC", Y)
    train, test = split_train_test(n)
    target.rdm_train, target.rdm_test = pdist(Y[train], "correlation"), pdist(Y[test], "correlation")
    kw = {"alphas": np.logspace(6, 9, 4)}  # heavy regularisation: the fit explains ~nothing
    (loo,) = versa(null, [target], train, test, train_predictions="loo", **kw)
    (kfold,) = versa(null, [target], train, test, train_predictions="kfold", **kw)
    assert loo["versa_train"] > 0.7  # spurious: the leak, invisible to a correlation RSM
    assert abs(kfold["versa_train"]) < 0.3
    assert abs(loo["versa_test"]) < 0.3


def test_mismatched_targets_fail_clearly():
    layers, Y = _planted()
    with pytest.raises(InputError, match="stimuli"):
        score_layers("m", [_layer("a", layers[0])], [BrainTarget("1", "OTC", Y),
                                                        BrainTarget("2", "OTC", Y[:-1])])
    with pytest.raises(ValueError, match="non-finite"):
        bad = Y.copy()
        bad[3, 3] = np.nan
        score_layers("m", [_layer("a", layers[0])], [BrainTarget("1", "OTC", bad)])
