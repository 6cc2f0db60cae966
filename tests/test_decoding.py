"""Pairwise decoding RDMs: the batched exact SVM against scikit-learn's SVC, fit by fit.

The reference is ``SVC(kernel="linear", C=1)`` (LibSVM) trained on the *same* pseudo-trials
(``_pairwise_decoding_pseudo`` takes them explicitly). LibSVM stops at a KKT violation of
1e-3 while ours is solved exactly, so decision values differ by up to ~1e-3 of the margin
and a prediction may differ when a test point lies that close to the boundary: the
requirement is identical predictions in >= 99.9 % of fits, and decision values within a
tolerance scaled to LibSVM's stopping rule.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import pdist
from sklearn.covariance import ledoit_wolf
from sklearn.svm import SVC

from brainalign import _svm
from brainalign.decoding import (
    CLASSIFIERS,
    _backend,
    _Engine,
    _pairwise_decoding_pseudo,
    _pseudo_trials,
    _shuffles,
    pairwise_decoding_rdm,
)
from brainalign.rdm import condensed_to_square, n_pairs
from brainalign.utils import InputError

AGREEMENT = 0.999


def svc_reference(pseudo, return_bounded=False):
    """SVC's decision values (T, P, 2), sign > 0 = the pair's first condition.

    With ``return_bounded``, also a mask (T, P) of fits where every multiplier is within
    1e-9 of 0 or C: the optimal intercept is then an interval, and LibSVM's pick depends
    on rounding (a multiplier of ``1 - 1e-16`` counts as free and moves b to an end).
    """
    C, L, _, T = pseudo.shape
    rows, cols = np.triu_indices(C, k=1)
    y = np.r_[np.zeros(L - 1), np.ones(L - 1)]
    dec = np.empty((T, rows.size, 2))
    bounded = np.zeros((T, rows.size), dtype=bool)
    for t in range(T):
        for p, (a, c) in enumerate(zip(rows, cols, strict=True)):
            X = np.r_[pseudo[a, : L - 1, :, t], pseudo[c, : L - 1, :, t]].astype(np.float64)
            test = np.stack([pseudo[a, L - 1, :, t], pseudo[c, L - 1, :, t]]).astype(np.float64)
            svc = SVC(kernel="linear", C=1).fit(X, y)
            dec[t, p] = -svc.decision_function(test)
            alpha = np.abs(svc.dual_coef_)
            bounded[t, p] = ((alpha > 1 - 1e-9) | (alpha < 1e-9)).all()
    return (dec, bounded) if return_bounded else dec


def predictions(dec):
    """LibSVM's rule: decision > 0 -> first condition (0), else second (1)."""
    return np.where(dec > 0, 0, 1)


def accuracy(dec):
    """Fraction of the two test pseudo-trials classified correctly."""
    return 0.5 * ((dec[..., 0] > 0).astype(float) + (dec[..., 1] <= 0).astype(float))


def check_against_svc(pseudo, **kwargs):
    ours = _pairwise_decoding_pseudo(pseudo, return_decision=True, **kwargs)
    ref = svc_reference(pseudo)
    same = (predictions(ours) == predictions(ref)).all(axis=-1)
    assert same.mean() >= AGREEMENT, f"{(~same).sum()} of {same.size} fits disagree"
    # decision values: LibSVM's own error is ~tol * (scale of the decision function)
    scale = np.abs(ref).max(axis=-1, keepdims=True) + 1.0
    assert np.abs(ours - ref).max() <= (5e-3 * scale).max()
    return ours, ref


def meg_like(n_cond=8, n_trials=30, n_chan=306, n_times=8, strength=0.35, seed=0, dtype=np.float64):
    """Mixed sensors (60 sources), a common evoked response, condition patterns in
    clusters switched on after 'stimulus onset', source and sensor noise: baseline time
    points are at chance, peak ones separable for most pairs, some pairs stay hard."""
    rng = np.random.default_rng(seed)
    n_src = 60
    mix = rng.standard_normal((n_chan, n_src)) / np.sqrt(n_src)
    t = np.linspace(-0.1, 0.6, n_times)
    env = np.where(t > 0, (t / 0.12) * np.exp(1 - t / 0.12), 0.0)
    centers = rng.standard_normal((max(2, n_cond // 4), n_src))
    patterns = centers[rng.integers(len(centers), size=n_cond)] + 0.7 * rng.standard_normal((n_cond, n_src))
    gain = strength * rng.uniform(0.3, 1.5, n_cond)
    src = (3.0 * rng.standard_normal(n_src) + gain[:, None] * patterns)[:, None, :, None] * env
    x = np.einsum("ds,cnst->cndt", mix, src + rng.standard_normal((n_cond, n_trials, n_src, n_times)))
    return (x + rng.standard_normal(x.shape)).astype(dtype)


def pseudo_from(data, k=5):
    C, N = data.shape[:2]
    L = N // k
    return data[:, : L * k].reshape(C, L, k, *data.shape[2:]).mean(axis=2)


# ----------------------------------------------------------------------------- SVM vs SVC
@pytest.mark.parametrize(
    ("n_chan", "shift", "scale"),
    [(306, 0.0, 1.0), (40, 0.3, 1.0), (12, 0.8, 1.0), (306, 0.0, 30.0), (20, 0.2, 0.03)],
    ids=["noise-306ch", "weak-40ch", "separable-12ch", "large-scale", "C-binds"],
)
def test_svm_matches_svc_on_random_data(n_chan, shift, scale):
    rng = np.random.default_rng(n_chan)
    pseudo = rng.standard_normal((8, 6, n_chan, 5))
    pseudo[::2] += shift * rng.standard_normal((4, 1, n_chan, 1)) * np.sqrt(n_chan / 10)
    check_against_svc(scale * pseudo)


@pytest.mark.parametrize("strength", [0.3, 1.0])
def test_svm_matches_svc_on_meg_like_data(strength):
    data = meg_like(n_cond=12, n_times=12, strength=strength, seed=1)
    engine_stats = {}
    ours, ref = check_against_svc(pseudo_from(data), _stats=engine_stats)  # 792 fits
    acc = accuracy(ours)
    assert acc[:2].mean() < 0.65 and acc[4].mean() > 0.8  # chance at baseline, signal at peak
    # both the all-free fast path and the active-set rounds were exercised
    assert 0 < engine_stats["all_free"] < engine_stats["problems"]


def test_two_pseudo_trials_one_training_point_per_class():
    rng = np.random.default_rng(13)
    check_against_svc(rng.standard_normal((5, 2, 30, 3)))


def test_svm_fallbacks_match_svc():
    """Few channels and overlapping classes: singular K, multipliers at C, cycling
    active sets -> SMO + exact polishing; still LibSVM's solutions."""
    rng = np.random.default_rng(7)
    pseudo = rng.standard_normal((6, 6, 3, 4))
    pseudo[:3] += 0.4
    stats = {}
    check_against_svc(pseudo, _stats=stats)
    assert stats["smo"] > 0


def test_svm_no_free_support_vector_uses_libsvm_midpoint():
    """Tiny scale: every multiplier at C, LibSVM's SMO is then exact; b is the midpoint."""
    rng = np.random.default_rng(3)
    pseudo = 1e-3 * rng.standard_normal((4, 6, 30, 3))
    ours = _pairwise_decoding_pseudo(pseudo, return_decision=True)
    assert_allclose(ours, svc_reference(pseudo), rtol=1e-6, atol=1e-9)


def test_constant_data_is_a_tie_like_libsvm():
    pseudo = np.ones((3, 4, 5, 2))
    ours = _pairwise_decoding_pseudo(pseudo, return_decision=True)
    assert_array_equal(predictions(ours), predictions(svc_reference(pseudo)))  # second condition
    assert_array_equal(_pairwise_decoding_pseudo(pseudo), 0.5)


def test_float32_and_torch_backends_agree():
    pseudo = pseudo_from(meg_like(n_cond=4, n_times=4, seed=2))
    ref = _pairwise_decoding_pseudo(pseudo, return_decision=True)
    torch_dec = _pairwise_decoding_pseudo(pseudo, return_decision=True, _torch_cpu=True)
    assert_allclose(torch_dec, ref, rtol=1e-8, atol=1e-10)
    f32 = _pairwise_decoding_pseudo(pseudo.astype(np.float32), return_decision=True)
    assert (predictions(f32) == predictions(ref)).mean() >= AGREEMENT
    assert_allclose(f32, ref, atol=1e-3 * np.abs(ref).max())
    # the fallbacks (active sets, SMO) and the other classifiers on torch too
    low_dim = np.random.default_rng(7).standard_normal((4, 6, 3, 2))
    low_dim[:2] += 0.4
    for classifier in CLASSIFIERS:
        assert_allclose(
            _pairwise_decoding_pseudo(low_dim, classifier=classifier, return_decision=True, _torch_cpu=True),
            _pairwise_decoding_pseudo(low_dim, classifier=classifier, return_decision=True),
            rtol=1e-8, atol=1e-10,
        )


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    n_chan=st.integers(2, 60),
    log_scale=st.floats(-2.5, 1.5),
    shift=st.floats(0.0, 2.0),
    seed=st.integers(0, 2**16),
)
def test_svm_matches_svc_property(n_chan, log_scale, shift, seed):
    rng = np.random.default_rng(seed)
    pseudo = rng.standard_normal((3, 6, n_chan, 2))
    pseudo[0] += shift
    pseudo *= 10.0**log_scale
    ours = _pairwise_decoding_pseudo(pseudo, return_decision=True)
    ref, bounded = svc_reference(pseudo, return_bounded=True)
    scale = np.abs(ref).max() + 1.0
    near = np.abs(ref) < 5e-3 * scale  # LibSVM's tolerance: the sign may legitimately differ
    assert ((predictions(ours) == predictions(ref)) | near | bounded[..., None]).all()
    assert (np.abs(ours - ref)[~bounded] <= 5e-3 * scale).all()


# ----------------------------------------------------------------------------- other classifiers
def test_lda_matches_feature_space_ledoit_wolf():
    rng = np.random.default_rng(5)
    pseudo = rng.standard_normal((4, 6, 25, 3))
    pseudo[1] += 0.5
    ours = _pairwise_decoding_pseudo(pseudo, classifier="lda", return_decision=True)
    C, L = pseudo.shape[:2]
    for t in range(pseudo.shape[-1]):
        for p, (a, c) in enumerate(zip(*np.triu_indices(C, k=1), strict=True)):
            A, B = pseudo[a, : L - 1, :, t], pseudo[c, : L - 1, :, t]
            resid = np.r_[A - A.mean(0), B - B.mean(0)]
            cov = ledoit_wolf(resid, assume_centered=True)[0]
            w = np.linalg.solve(cov, A.mean(0) - B.mean(0))
            mid = 0.5 * (A.mean(0) + B.mean(0))
            f = [w @ (pseudo[a, L - 1, :, t] - mid), w @ (pseudo[c, L - 1, :, t] - mid)]
            # ours drops the positive factor 1 / (shrinkage * mu): compare up to scale
            np.testing.assert_allclose(ours[t, p] / np.abs(ours[t, p]).max(), f / np.abs(f).max(),
                                       rtol=1e-7, atol=1e-9)
            assert np.sign(ours[t, p]).tolist() == np.sign(f).tolist()


def test_correlation_classifier_matches_corrcoef():
    rng = np.random.default_rng(6)
    pseudo = rng.standard_normal((4, 5, 30, 2)) + rng.standard_normal((4, 1, 30, 1))
    acc = _pairwise_decoding_pseudo(pseudo, classifier="correlation")
    C, L = pseudo.shape[:2]
    for t in range(2):
        for p, (a, c) in enumerate(zip(*np.triu_indices(C, k=1), strict=True)):
            ma, mc = pseudo[a, : L - 1, :, t].mean(0), pseudo[c, : L - 1, :, t].mean(0)
            r = lambda x, m: np.corrcoef(x, m)[0, 1]  # noqa: E731
            ta, tc = pseudo[a, L - 1, :, t], pseudo[c, L - 1, :, t]
            expected = 0.5 * (int(r(ta, ma) > r(ta, mc)) + int(r(tc, ma) <= r(tc, mc)))
            assert acc[t, p] == expected


# ----------------------------------------------------------------------------- public function
def test_public_function_equals_svc_on_its_own_pseudo_trials():
    data = meg_like(n_cond=5, n_trials=23, n_chan=50, n_times=4, seed=4)
    k, n_perm, seed = 5, 3, 11
    acc = pairwise_decoding_rdm(data, trials_per_group=k, n_permutations=n_perm, seed=seed)
    # redraw the function's shuffles, then SVC on each permutation's pseudo-trials
    orders = _shuffles(np.random.default_rng(seed), n_perm, 5, 23)
    be = _backend("cpu")
    ref = sum(accuracy(svc_reference(_pseudo_trials(be, data, orders[p], k, 23 // k))) for p in range(n_perm))
    assert acc.shape == (4, n_pairs(5))
    assert np.mean(np.isclose(acc, ref / n_perm)) >= 0.99


def test_pseudo_trials_average_k_distinct_trials_and_drop_leftovers():
    orders = _shuffles(np.random.default_rng(0), 2, 3, 13)
    trials = np.broadcast_to(np.eye(13), (3, 13, 13))  # trial i = e_i: shows which are used
    for order in orders:
        weights = _pseudo_trials(_backend("cpu"), trials, order, 4, 3)  # (C, L, 13)
        assert_allclose(weights.sum(axis=-1), 1.0)
        assert ((weights > 0).sum(axis=-1) == 4).all()
        used = (weights > 0).sum(axis=-2)  # each trial in at most one pseudo-trial, 12 of 13
        assert used.max() == 1 and (used.sum(axis=-1) == 12).all()
        assert_array_equal(used[np.arange(3), order[:, -1]], 0)  # the last one of the shuffle
        assert_allclose(weights[:, 1], trials[0][order[:, 4:8]].mean(axis=1))


def test_seed_reproducible_and_independent_of_batching_and_threads():
    data = meg_like(n_cond=6, n_trials=20, n_chan=30, n_times=5, seed=8)
    a = pairwise_decoding_rdm(data, n_permutations=4, seed=1)
    b = pairwise_decoding_rdm(data, n_permutations=4, seed=1, pair_batch=4, n_jobs=2)
    c = pairwise_decoding_rdm(data, n_permutations=4, seed=np.random.default_rng(1))
    d = pairwise_decoding_rdm(data, n_permutations=4, seed=2)
    assert_array_equal(a, b)
    assert_array_equal(a, c)
    assert not np.array_equal(a, d)
    assert ((a >= 0) & (a <= 1)).all()


@pytest.mark.planted
def test_condensed_order_and_planted_structure():
    """Conditions 0 and 1 share a pattern, 2 differs: pair (0, 1) at chance, (0, 2) and
    (1, 2) decodable; positions follow pdist / condensed_to_square."""
    rng = np.random.default_rng(9)
    pattern = rng.standard_normal((3, 40, 1))
    pattern[1] = pattern[0]
    data = 2.0 * pattern[:, None] + rng.standard_normal((3, 20, 40, 3))
    acc = pairwise_decoding_rdm(data, n_permutations=5, trials_per_group=4)
    square = condensed_to_square(acc[0])
    assert square[0, 1] < 0.8 and square[0, 2] == 1.0 and square[1, 2] == 1.0
    # pdist order: (0, 1), (0, 2), (1, 2); the identical pair has distance 0
    assert acc.mean(0).argmin() == pdist(pattern[:, :, 0]).argmin() == 0


@pytest.mark.parametrize("classifier", ["svm", "lda", "correlation"])
def test_classifiers_give_chance_on_noise_and_signal_on_signal(classifier):
    data = meg_like(n_cond=5, n_trials=20, n_chan=40, n_times=6, strength=1.0, seed=3)
    acc = pairwise_decoding_rdm(data, n_permutations=3, classifier=classifier, trials_per_group=4)
    assert 0.3 < acc[0].mean() < 0.7  # before "stimulus onset"
    assert acc[2].mean() > 0.75  # near the peak


def test_list_input_float32_and_progress(capsys):
    data = meg_like(n_cond=3, n_trials=10, n_chan=8, n_times=3, seed=5, dtype=np.float32)
    acc = pairwise_decoding_rdm(list(data), n_permutations=2, trials_per_group=2, progress=True)
    assert acc.shape == (3, 3) and acc.dtype == np.float64
    assert "pairwise decoding" in capsys.readouterr().err


# ----------------------------------------------------------------------------- errors
def test_errors_are_clear():
    data = np.zeros((3, 10, 4, 2))
    with pytest.raises(InputError, match=r"different shapes.*condition 1: \(9, 4, 2\)"):
        pairwise_decoding_rdm([data[0], data[1, :9], data[2]])
    bad = data.copy()
    bad[1, 2, 3, 1] = np.nan
    with pytest.raises(InputError, match=r"condition 1: found 1 non-finite.*\(2, 3, 1\)"):
        pairwise_decoding_rdm(bad)
    with pytest.raises(InputError, match="trials_per_group=11 with 10 trials.*<= 5"):
        pairwise_decoding_rdm(data, trials_per_group=11)
    with pytest.raises(InputError, match="trials_per_group=6 with 10 trials per condition gives 1 pseudo"):
        pairwise_decoding_rdm(data, trials_per_group=6)
    with pytest.raises(InputError, match=r"shape \(n_conditions, n_trials, n_channels, n_times\)"):
        pairwise_decoding_rdm(data[0])
    with pytest.raises(InputError, match="at least 2 conditions"):
        pairwise_decoding_rdm(data[:1])
    with pytest.raises(ValueError, match="Allowed values are 'svm', 'lda' and 'correlation', but got 'knn'"):
        pairwise_decoding_rdm(data, classifier="knn")
    with pytest.raises(ValueError, match="n_permutations must be an integer >= 1"):
        pairwise_decoding_rdm(data, n_permutations=0)
    with pytest.raises(ValueError, match="pair_batch must be an integer >= 1"):
        pairwise_decoding_rdm(data, pair_batch=0)
    with pytest.raises(ValueError, match="Invalid device 'gpu0'"):
        pairwise_decoding_rdm(data, device="gpu0")
    with pytest.raises(ValueError, match="n_jobs must be an integer >= 1"):
        pairwise_decoding_rdm(data, n_jobs=0)
    with pytest.raises(ValueError, match="seed is required"):
        pairwise_decoding_rdm(data, seed=None)


def test_engine_batches_cover_every_pair_once():
    eng = _Engine(_backend("cpu"), 9, 3, 4, "svm", 10)
    covered = np.concatenate([np.arange(n_pairs(9))[s] for s in eng.pair_slices])
    assert_array_equal(covered, np.arange(n_pairs(9)))
    assert eng.t_batch == 1
    assert _Engine(_backend("cpu"), 3, 3, 4, "svm", 10).t_batch == 3  # few pairs: times batched


def test_svm_fit_kkt_on_random_batch():
    """The exact solver's output satisfies the KKT conditions to a tight tolerance."""
    be = _svm.Backend("cpu")
    rng = np.random.default_rng(12)
    X = rng.standard_normal((200, 10, 6))
    X[:, :5] += 0.7
    K = np.ascontiguousarray(np.einsum("bid,bjd->ijb", X, X))
    y = np.r_[np.ones(5), -np.ones(5)][:, None]
    beta, b = _svm.svm_fit(be, K, y, 1.0)
    alpha = y * beta
    assert (alpha >= -1e-9).all() and (alpha <= 1 + 1e-9).all()
    assert_allclose(beta.sum(axis=0), 0.0, atol=1e-9)
    g = y * (np.einsum("ijb,jb->ib", K, beta) + b) - 1.0
    tol = 1e-6
    assert (g[alpha < tol] >= -tol).all()
    assert (g[alpha > 1 - tol] <= tol).all()
    free = (alpha > tol) & (alpha < 1 - tol)
    assert np.abs(g[free]).max() < tol


def test_bad_options_are_input_errors():
    data = np.zeros((3, 10, 4, 2))
    with pytest.raises(InputError, match="but got 'knn'"):
        pairwise_decoding_rdm(data, classifier="knn")
    with pytest.raises(InputError, match="n_permutations must be an integer >= 1"):
        pairwise_decoding_rdm(data, n_permutations=0)
    with pytest.raises(InputError, match="Invalid device 'gpu0'"):
        pairwise_decoding_rdm(data, device="gpu0")
    with pytest.raises(InputError, match="device must be a string"):
        _backend(0)
