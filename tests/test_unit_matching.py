"""Streamed best-unit search (Arend et al. 2018) against brute-force np.corrcoef; controls."""

import numpy as np
import pytest
from scipy import stats

from brainalign import unit_matching
from brainalign.unit_matching import (
    MatchResult,
    RandomActivations,
    UnitGatherer,
    UnitMatcher,
    accumulator_bytes,
    holdout_split,
    load_match_result,
    match_units,
    median_by_region,
    pixels_layer,
    plan_passes,
    random_rotation,
    rotate_channels,
    sample_unmatched_units,
    save_match_result,
    unit_location,
)
from brainalign.utils import InputError

N, S = 61, 7
SHAPES = {"conv1": (3, 4, 5), "fc": (11,), "seq": (2, 6), "conv2": (4, 2, 3)}


def _data(seed=0, n=N, s=S, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, s)) * rng.uniform(0.5, 20, size=s) + rng.uniform(-50, 50, size=s)
    layers = {}
    for j, (name, shape) in enumerate(shapes.items()):
        # large offsets and small spreads on some layers: the streamed statistics must not cancel
        x = rng.normal(size=(n, *shape)) * 10.0 ** (j - 2) + 1000.0 * (j % 2)
        layers[name] = x.astype(np.float32) if j == 1 else x
    return y, layers


def _stream(matcher, layers, seed=1):
    """Feed every layer in a random stimulus order, uneven batches, layers interleaved."""
    rng = np.random.default_rng(seed)
    n = next(iter(layers.values())).shape[0]
    order = rng.permutation(n)
    cuts = np.sort(rng.choice(np.arange(1, n), size=6, replace=False))
    batches = np.split(order, cuts)
    for rows in batches:
        for name, x in layers.items():
            matcher.update(name, x[rows], rows)
    return matcher.result()


def _brute(y, layers):
    """Per layer, r (p, s) from np.corrcoef over the materialised matrix; NaN -> -inf."""
    out = []
    for x in layers.values():
        flat = x.reshape(x.shape[0], -1).astype(np.float64)
        p = flat.shape[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.corrcoef(flat.T, y.T)[:p, p:]
        out.append(np.where(np.isnan(r), -np.inf, r))
    return out


def _brute_top(rs, k):
    """Global top-k per site as (r, layer, unit), ordered by -r, layer, unit."""
    r = np.concatenate(rs)
    layer = np.concatenate([np.full(x.shape[0], j) for j, x in enumerate(rs)])
    unit = np.concatenate([np.arange(x.shape[0]) for x in rs])
    tops = []
    for site in range(r.shape[1]):
        o = np.lexsort((unit, layer, -r[:, site]))[:k]
        tops.append((r[o, site], layer[o], unit[o]))
    return tops


# --------------------------------------------------------------- streamed search vs brute force


@pytest.mark.parametrize("buffer_rows", [0, 8, 256])
@pytest.mark.parametrize("small_chunks", [False, True])
@pytest.mark.parametrize("holdout", [False, True])
def test_streamed_search_equals_brute_force(holdout, small_chunks, buffer_rows, monkeypatch):
    if small_chunks:  # several unit chunks per layer and row chunks per batch
        monkeypatch.setattr(unit_matching, "_CHUNK_BYTES", 8 * S * 7)
        monkeypatch.setattr(unit_matching, "_ROW_CHUNK", 5)
        assert unit_matching._unit_chunk(S) == 7
    y, layers = _data()
    k = 9
    matcher = UnitMatcher(y, top_k=k, holdout=holdout, holdout_seed=3, buffer_rows=buffer_rows)
    res = _stream(matcher, layers)
    rs = _brute(y, layers)
    assert res.layers == list(SHAPES)
    assert res.layer_shapes == list(SHAPES.values())
    tops = _brute_top(rs, k)
    for site, (r, layer, unit) in enumerate(tops):
        np.testing.assert_allclose(res.top_r[site], r, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(res.top_layer[site], layer)
        np.testing.assert_array_equal(res.top_unit[site], unit)
        for j in range(k):
            loc = np.unravel_index(unit[j], list(SHAPES.values())[layer[j]])
            assert res.top_channel[site, j] == loc[0]
            shape = list(SHAPES.values())[layer[j]]
            if len(shape) == 3:
                assert (res.top_y[site, j], res.top_x[site, j]) == (loc[1], loc[2])
            elif len(shape) == 2:
                assert (res.top_y[site, j], res.top_x[site, j]) == (-1, loc[1])
            else:
                assert (res.top_y[site, j], res.top_x[site, j]) == (-1, -1)
    np.testing.assert_allclose(res.best_r, [t[0][0] for t in tops], atol=1e-10)
    np.testing.assert_array_equal(res.best_layer, [t[1][0] for t in tops])
    np.testing.assert_array_equal(res.best_unit, [t[2][0] for t in tops])
    np.testing.assert_allclose(res.best_depth, np.linspace(0, 1, 4)[res.best_layer])
    for j, r in enumerate(rs):
        np.testing.assert_allclose(res.layer_best_r[j], r.max(axis=0), atol=1e-10)
        np.testing.assert_array_equal(res.layer_best_unit[j], r.argmax(axis=0))
        kk = min(k, r.shape[0])
        expect = -np.sort(-r, axis=0)[:kk].T
        np.testing.assert_allclose(res.layer_top_r[j][:, :kk], expect, atol=1e-10)
        np.testing.assert_array_equal(res.layer_top_unit[j][:, :kk], np.argsort(-r, axis=0)[:kk].T)


def test_batching_and_order_do_not_matter():
    y, layers = _data(1)
    a = _stream(UnitMatcher(y, top_k=5), layers, seed=2)
    b = match_units(y, layers, top_k=5)  # one batch per layer, in order
    np.testing.assert_allclose(a.top_r, b.top_r, atol=1e-12)
    np.testing.assert_array_equal(a.top_unit, b.top_unit)


def test_constant_units_are_never_selected_and_short_layers_are_padded():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(30, 3))
    x = rng.normal(size=(30, 4))
    x[:, 1] = 0.1  # a dead unit; its float64 mean is not exactly 0.1
    x[:, 3] = 0.0
    res = match_units(y, {"tiny": x}, top_k=5, batch_size=7)
    assert set(res.top_unit[:, :2].ravel()) <= {0, 2}
    assert np.all(res.top_unit[:, 2:] == -1) and np.all(np.isnan(res.top_r[:, 2:]))
    r = np.corrcoef(x[:, [0, 2]].T, y.T)[:2, 2:]
    np.testing.assert_allclose(res.best_r, r.max(axis=0), atol=1e-12)


def test_planted_units_are_found():
    rng = np.random.default_rng(5)
    n = 200
    layers = {
        "early": rng.gamma(2.0, size=(n, 8, 6, 6)).astype(np.float32),
        "late": rng.normal(size=(n, 32, 2, 2)).astype(np.float32),
    }
    planted = [("early", (3, 1, 4)), ("early", (7, 5, 0)), ("late", (30, 1, 1)), ("late", (0, 0, 1))]
    y = np.stack(
        [layers[name][(slice(None), *loc)] for name, loc in planted], axis=1
    ) * 4.0 + 0.2 * rng.normal(size=(n, len(planted)))
    res = match_units(y, layers, batch_size=32)
    for site, (name, loc) in enumerate(planted):
        assert res.layers[res.best_layer[site]] == name
        assert (res.best_channel[site], res.best_y[site], res.best_x[site]) == loc
        assert res.best_r[site] > 0.95
    scores = res.score(["V4", "V4", "IT", "IT"])
    assert scores["V4"] > 0.95 and scores["IT"] > 0.95
    assert res.best_layers(["V4", "V4", "IT", "IT"]) == {"V4": "early", "IT": "late"}


def test_heldout_selection_matches_explicit_computation():
    y, layers = _data(6)
    res = _stream(UnitMatcher(y, top_k=3, holdout=True, holdout_seed=11), layers)
    folds = res.folds
    np.testing.assert_array_equal(folds, holdout_split(N, 11))
    assert abs(int((folds == 0).sum()) - N / 2) <= 1
    per_layer = {f: _brute(y[folds == f], {k: v[folds == f] for k, v in layers.items()}) for f in (0, 1)}
    allr = {f: np.concatenate(per_layer[f]) for f in (0, 1)}
    sizes = [int(np.prod(s)) for s in SHAPES.values()]
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for f in (0, 1):
        g = 1 - f
        pick = allr[f].argmax(axis=0)
        sites = np.arange(S)
        np.testing.assert_allclose(res.heldout_select_r[f], allr[f][pick, sites], atol=1e-10)
        np.testing.assert_allclose(res.heldout_r_folds[f], allr[g][pick, sites], atol=1e-10)
        layer = np.searchsorted(starts, pick, side="right") - 1
        np.testing.assert_array_equal(res.heldout_layer[f], layer)
        np.testing.assert_array_equal(res.heldout_unit[f], pick - starts[layer])
    np.testing.assert_allclose(res.heldout_r, res.heldout_r_folds.mean(axis=0))
    for j in range(len(SHAPES)):
        held = [per_layer[1 - f][j][per_layer[f][j].argmax(axis=0), np.arange(S)] for f in (0, 1)]
        np.testing.assert_allclose(res.layer_heldout_r[j], np.mean(held, axis=0), atol=1e-10)
    # the in-sample maximum is biased upward relative to the held-out r
    assert np.median(res.best_r) > np.median(res.heldout_r)
    assert set(res.heldout_score(["V4"] * 3 + ["IT"] * 4)) == {"V4", "IT"}


def test_holdout_split_is_seeded_and_stratified():
    strata = np.repeat(np.arange(8), 10)
    a = holdout_split(80, 0, strata)
    np.testing.assert_array_equal(a, holdout_split(80, 0, strata))
    assert not np.array_equal(a, holdout_split(80, 1, strata))
    assert all((a[strata == s] == 0).sum() == 5 for s in range(8))


def test_scores_and_regions():
    res = match_units(*_data(7)[:1], _data(7)[1], top_k=2)
    regions = np.array(["V4", "IT", "V4", "IT", "IT", "V4", "V4"])
    sc = res.score(regions)
    assert sc["V4"] == pytest.approx(np.median(res.best_r[regions == "V4"]))
    ls = res.layer_scores(regions)
    assert ls["IT"].shape == (len(SHAPES),)
    assert ls["IT"][2] == pytest.approx(np.median(res.layer_best_r[2, regions == "IT"]))
    assert res.best_layers(regions)["V4"] == res.layers[int(np.argmax(ls["V4"]))]
    assert median_by_region([1.0, np.nan, 3.0], ["a", "a", "b"]) == {"a": 1.0, "b": 3.0}
    with pytest.raises(InputError, match="holdout"):
        res.heldout_score(regions)


def test_layer_depths_and_order():
    y, layers = _data(8)
    depths = {"conv1": 0.0, "fc": 0.9, "seq": 0.2, "conv2": 0.5}
    order = ["conv1", "seq", "conv2", "fc"]
    res = match_units(y, layers, layer_depths=depths, layer_order=order, top_k=2)
    assert res.layers == order
    np.testing.assert_allclose(res.depths, [0.0, 0.2, 0.5, 0.9])
    np.testing.assert_allclose(res.best_depth, res.depths[res.best_layer])


def test_save_and_load_round_trip(tmp_path):
    y, layers = _data(9)
    res = match_units(y, layers, top_k=4, holdout=True)
    path = save_match_result(tmp_path / "m.npz", res)
    back = load_match_result(path)
    assert isinstance(back, MatchResult)
    assert back.layers == res.layers and back.layer_shapes == res.layer_shapes
    for name in ("top_r", "top_unit", "heldout_r", "layer_top_r", "folds", "best_depth"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name))
    (tmp_path / "bad.npz").write_text("nope")
    with pytest.raises(InputError, match="bad.npz"):
        load_match_result(tmp_path / "bad.npz")


def test_unit_location():
    loc = unit_location((4, 3, 5), [0, 17, 59, -1])
    assert loc["channel"].tolist() == [0, 1, 3, -1]
    assert loc["y"].tolist() == [0, 0, 2, -1] and loc["x"].tolist() == [0, 2, 4, -1]
    assert unit_location((6,), [5])["channel"].tolist() == [5]
    assert unit_location((2, 3, 2, 2), [23])["position"].tolist() == [11]


def test_memory_plan():
    assert accumulator_bytes(1000, 10, buffer_rows=0) == 1000 * 15 * 8
    assert accumulator_bytes(1000, 10, holdout=True, buffer_rows=0) == 1000 * 29 * 8
    assert accumulator_bytes(1000, 10, buffer_rows=256) == 1000 * (15 * 8 + 256 * 4)
    plan = plan_passes({"a": 100, "b": 100, "c": 1000, "d": 10}, 10, budget_bytes=30_000, buffer_rows=0)
    assert plan == [["a", "b"], ["c"], ["d"]]


@pytest.mark.parametrize(
    "action, match",
    [
        (lambda m, x: m.update("a", x[:5], [0, 1, 2, 3, 3]), "given twice"),
        (lambda m, x: (m.update("a", x[:5], 0), m.update("a", x[:5], 4)), "given twice"),
        (lambda m, x: (m.update("a", x[:5], 0), m.update("a", x[5:10, :3], 5)), "shape"),
        (lambda m, x: m.update("a", np.where(np.arange(12) == 2, np.nan, x[:5]), 0), "non-finite"),
        (lambda m, x: m.update("a", x[:5], 28), "out of range"),
        (lambda m, x: (m.update("a", x[:5], 0), m.result()), "missing rows"),
        (lambda m, x: m.result(), "no layer"),
    ],
)
def test_streaming_errors(action, match):
    rng = np.random.default_rng(0)
    m = UnitMatcher(rng.normal(size=(30, 2)))
    with pytest.raises(InputError, match=match):
        action(m, rng.normal(size=(30, 12)))


def test_bad_site_responses():
    y = np.random.default_rng(0).normal(size=(20, 3))
    y[:, 1] = 4.0
    with pytest.raises(InputError, match=r"site\(s\) \[1\]"):
        UnitMatcher(y)
    y[0, 1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        UnitMatcher(y)


def test_torch_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    y, layers = _data(10)
    a = match_units(y, layers, top_k=3)
    b = match_units(y, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in layers.items()}, top_k=3)
    np.testing.assert_allclose(a.top_r, b.top_r, atol=1e-12)


# --------------------------------------------------------------- controls


@pytest.mark.parametrize("n", [1, 2, 3, 8, 64])
def test_rotation_is_special_orthogonal(n):
    rng = np.random.default_rng(n)
    for _ in range(5):
        R = random_rotation(n, rng)
        np.testing.assert_allclose(R @ R.T, np.eye(n), atol=1e-10)
        assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-10)


def _uncorrected_qr(n, rng):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q


def test_rotation_is_haar():
    n, m = 5, 3000
    rng = np.random.default_rng(2024)
    Rs = np.stack([random_rotation(n, rng) for _ in range(m)])
    # R[0, 0] is the first coordinate of a uniform point on S^(n-1): (u + 1) / 2 ~ Beta((n-1)/2, (n-1)/2)
    marginal = stats.beta((n - 1) / 2, (n - 1) / 2, loc=-1, scale=2)
    for entry in [(0, 0), (2, 3), (4, 1)]:
        assert stats.kstest(Rs[:, entry[0], entry[1]], marginal.cdf).pvalue > 1e-3
    trace = np.trace(Rs, axis1=1, axis2=2)
    assert abs(trace.mean()) < 4 * trace.std() / np.sqrt(m)  # E[tr R] = 0
    assert trace.var() == pytest.approx(1.0, rel=0.15)  # E[tr(R)^2] = 1 on SO(n), n >= 3
    ref = stats.special_ortho_group.rvs(n, size=m, random_state=7)
    assert stats.ks_2samp(trace, np.trace(ref, axis1=1, axis2=2)).pvalue > 1e-3
    # the test has power: QR without the sign correction is not Haar
    bad = np.stack([_uncorrected_qr(n, rng) for _ in range(m)])
    assert stats.kstest(bad[:, 0, 0], marginal.cdf).pvalue < 1e-10


def test_rotation_is_seeded():
    np.testing.assert_array_equal(random_rotation(6, 3), random_rotation(6, 3))
    assert not np.allclose(random_rotation(6, 3), random_rotation(6, 4))


def test_rotate_channels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 3, 5)).astype(np.float32)
    R = random_rotation(6, rng)
    out = rotate_channels(x, R)
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, np.einsum("ij,bjhw->bihw", R, x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(x, axis=1), rtol=1e-5)
    x2 = rng.normal(size=(4, 6))
    np.testing.assert_allclose(rotate_channels(x2, R), x2 @ R.T, atol=1e-12)
    np.testing.assert_array_equal(rotate_channels(x2, np.eye(6)), x2)
    with pytest.raises(InputError, match="rotation"):
        rotate_channels(x, np.eye(5))


def test_rotation_lowers_neural_correlation_of_planted_units():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 16, 3, 3))
    y = x[:, [2, 5, 9], 1, 1] + 0.1 * rng.normal(size=(300, 3))
    plain = match_units(y, {"l": x}).best_r
    rotated = match_units(y, {"l": rotate_channels(x, random_rotation(16, 0))}).best_r
    assert plain.min() > 0.99 and rotated.max() < 0.9


def test_random_activations_are_batch_invariant_and_standard_normal():
    gen = RandomActivations({"a": (3, 4, 4), "b": (10,)}, seed=5)
    whole = gen.batch("a", np.arange(50))
    parts = np.concatenate([gen.batch("a", np.arange(0, 17)), gen.batch("a", np.arange(17, 50))])
    np.testing.assert_array_equal(whole, parts)
    assert whole.dtype == np.float32 and whole.shape == (50, 3, 4, 4)
    assert abs(whole.mean()) < 0.05 and whole.std() == pytest.approx(1, abs=0.05)
    other_seed = RandomActivations({"a": (3,), "b": (10,)}, 6)
    assert not np.array_equal(gen.batch("b", [0]), other_seed.batch("b", [0]))
    with pytest.raises(InputError, match="unknown layer"):
        gen.batch("c", [0])


def test_random_control_scores_near_zero():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(400, 5))
    gen = RandomActivations({"a": (4, 2, 2)}, seed=0)
    res = match_units(y, {"a": gen.batch("a", np.arange(400))})
    assert np.all(np.abs(res.best_r) < 0.25)


def test_pixels_layer():
    imgs = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    px = pixels_layer(imgs)
    assert px.shape == (2, 1, 3, 4) and px.dtype == np.float32
    np.testing.assert_allclose(px[:, 0], imgs.mean(axis=3))
    assert pixels_layer(imgs, grayscale=False).shape == (2, 3, 3, 4)
    assert pixels_layer(imgs[..., 0]).shape == (2, 1, 3, 4)


def test_gatherer_and_unmatched_baseline():
    y, layers = _data(12)
    res = match_units(y, layers, top_k=2)
    names = np.asarray(res.layers)[res.best_layer]
    g = UnitGatherer(N, names, res.best_unit)
    rng = np.random.default_rng(0)
    for rows in np.array_split(rng.permutation(N), 4):
        for name, x in layers.items():
            g.update(name, x[rows], rows)
    got = g.result()
    expect = np.stack([layers[n].reshape(N, -1)[:, u] for n, u in zip(names, res.best_unit, strict=True)], 1)
    np.testing.assert_array_equal(got, expect)
    for i in range(S):  # each matched unit correlates with its site at best_r
        assert np.corrcoef(got[:, i], y[:, i])[0, 1] == pytest.approx(res.best_r[i], abs=1e-6)
    bl, bu = sample_unmatched_units(res, seed=0)
    assert list(bl) == list(names) and np.all(bu != res.best_unit)
    sizes = {n: int(np.prod(s)) for n, s in zip(res.layers, res.layer_shapes, strict=True)}
    assert all(0 <= u < sizes[n] for n, u in zip(bl, bu, strict=True))
    np.testing.assert_array_equal(bu, sample_unmatched_units(res, seed=0)[1])
    with pytest.raises(InputError, match="missing"):
        UnitGatherer(N, names, res.best_unit).result()


def test_large_offsets_do_not_cancel():
    """Units with mean 1e6 and spread 1e-3 (a naive sum-of-squares formula loses every digit)."""
    rng = np.random.default_rng(13)
    y = rng.normal(size=(80, 3)) + 1e4
    z = rng.normal(size=(80, 5))
    x = 1e6 + 1e-3 * (z + y[:, [0]] @ np.ones((1, 5)) * np.array([0, 0.5, 1, 2, 4]))
    m = UnitMatcher(y, top_k=5, holdout=True)
    for i in range(80):  # one stimulus per batch
        m.update("l", x[i : i + 1], i)
    res = m.result()
    expect = np.corrcoef((x - 1e6).T, y.T)[:5, 5:]
    np.testing.assert_allclose(res.layer_top_r[0], -np.sort(-expect, axis=0).T, atol=1e-9)


def test_mixed_batch_dtypes_in_one_layer():
    rng = np.random.default_rng(14)
    y = rng.normal(size=(40, 3))
    x = rng.integers(-5, 5, size=(40, 6)).astype(np.float64)
    m = UnitMatcher(y, top_k=2, buffer_rows=16)
    m.update("l", x[:5].astype(np.float32), 0)
    m.update("l", x[5:9], 5)  # float64 after float32: the buffer is flushed
    m.update("l", x[9:30].astype(np.int16), np.arange(9, 30))
    m.update("l", x[30:].astype(np.float32), 30)
    r = np.corrcoef(x.T, y.T)[:6, 6:]
    np.testing.assert_allclose(m.result().layer_best_r[0], r.max(axis=0), atol=1e-12)
