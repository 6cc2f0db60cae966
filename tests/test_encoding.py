"""RidgeGCV and pearson_columns against scikit-learn, scipy and brute-force leave-one-out.

Tolerances per dtype: RidgeGCV computes in float64 like scikit-learn and casts at the
end, so float64 results agree to ~1e-12 relative and float32 ones to a few float32 ulps.
Brute-force LOO refits with a different solver (Cholesky), hence the looser 1e-8.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import pearsonr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge, RidgeCV

from brainalign.encoding import RidgeGCV, pearson_columns
from brainalign.utils import InputError

# (rtol, atol relative to the array's largest magnitude) per dtype
TOL = {np.float64: (1e-9, 1e-11), np.float32: (2e-5, 2e-6)}
# vs a brute-force refit with another solver: float32 outputs are float64 results cast
BRUTE_TOL = {np.float64: (1e-8, 1e-10), np.float32: (2e-6, 2e-6)}

SHAPES = {"gram (n < p)": (30, 80), "square (n = p)": (40, 40), "cov (n > p)": (80, 30)}
ALPHAS = np.logspace(-2, 4, 9)


def make_problem(n, p, t=12, dtype=np.float64, seed=0):
    """Y = X W + noise + offset, with per-target signal strength so the alphas differ."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p)) @ np.diag(rng.uniform(0.2, 3.0, p)) + rng.normal(0, 2, p)
    W = rng.standard_normal((p, t)) * rng.uniform(0.0, 0.4, t)
    Y = X @ W + rng.standard_normal((n, t)) + rng.normal(0, 5, t)
    return X.astype(dtype), Y.astype(dtype)


def close(actual, desired, tol):
    rtol, atol = tol
    desired = np.asarray(desired)
    assert_allclose(actual, desired, rtol=rtol, atol=atol * max(np.abs(desired).max(), 1e-300))


def brute_force_loo(X, Y, alpha, fit_intercept):
    """LOO predictions by refitting scikit-learn's Ridge n times (alpha per target ok)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    out = np.empty_like(Y)
    for i in range(X.shape[0]):
        keep = np.arange(X.shape[0]) != i
        model = Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="cholesky")
        out[i] = model.fit(X[keep], Y[keep]).predict(X[i : i + 1])[0]
    return out


# ------------------------------------------------------------------ scikit-learn RidgeCV


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha_per_target", [True, False])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_mse_matches_sklearn_ridgecv(shape, alpha_per_target, fit_intercept, dtype):
    X, Y = make_problem(*shape, dtype=dtype)
    kwargs = dict(alpha_per_target=alpha_per_target, fit_intercept=fit_intercept)
    ref = RidgeCV(alphas=ALPHAS, **kwargs).fit(X, Y)
    ours = RidgeGCV(ALPHAS, scoring="mse", **kwargs).fit(X, Y)

    assert_array_equal(ours.alpha_, ref.alpha_)
    if alpha_per_target:
        assert len(np.unique(ours.alpha_)) >= 3  # the comparison is not trivial
        close(ours.best_score_, ref.best_score_, TOL[np.float64])
    else:
        assert np.isscalar(ours.alpha_)
        close(ours.best_score_.mean(), ref.best_score_, TOL[np.float64])
    assert ours.coef_.shape == ref.coef_.shape == (Y.shape[1], X.shape[1])
    assert ours.coef_.dtype == ours.intercept_.dtype == ours.loo_predictions_.dtype == dtype
    close(ours.coef_, ref.coef_, TOL[dtype])
    close(ours.intercept_, ref.intercept_, TOL[dtype])
    if not fit_intercept:
        assert_array_equal(ours.intercept_, 0)


@pytest.mark.parametrize("shape", [(25, 60), (60, 25)], ids=["gram", "cov"])
def test_1d_y_matches_sklearn_and_2d_column(shape):
    X, Y = make_problem(*shape, t=1)
    ref = RidgeCV(alphas=ALPHAS).fit(X, Y[:, 0])
    ours = RidgeGCV(ALPHAS, scoring="mse").fit(X, Y[:, 0])
    assert isinstance(ours.alpha_, float) and ours.alpha_ == ref.alpha_
    assert ours.coef_.shape == (X.shape[1],) and np.ndim(ours.intercept_) == 0
    assert ours.loo_predictions_.shape == (X.shape[0],) and ours.cv_scores_.shape == (len(ALPHAS),)
    assert ours.predict(X).shape == (X.shape[0],)
    close(ours.coef_, ref.coef_, TOL[np.float64])
    close(ours.intercept_, ref.intercept_, TOL[np.float64])
    # a single-column 2-D Y keeps 2-D outputs and the same numbers
    two_d = RidgeGCV(ALPHAS, scoring="mse").fit(X, Y)
    assert two_d.alpha_.shape == (1,) and two_d.coef_.shape == (1, X.shape[1])
    assert_array_equal(two_d.coef_[0], ours.coef_)
    assert_array_equal(two_d.loo_predictions_[:, 0], ours.loo_predictions_)


# ------------------------------------------------------------------ brute-force LOO


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("shape", [(14, 30), (30, 6)], ids=["gram", "cov"])
def test_loo_predictions_match_explicit_refits(shape, fit_intercept, dtype):
    X, Y = make_problem(*shape, t=5, dtype=dtype, seed=1)
    alphas = np.logspace(-1, 3, 5)
    model = RidgeGCV(alphas, scoring="mse", fit_intercept=fit_intercept).fit(X, Y)
    expected = brute_force_loo(X, Y, model.alpha_, fit_intercept)
    assert model.loo_predictions_.dtype == dtype
    close(model.loo_predictions_, expected, BRUTE_TOL[dtype])
    # the mse score is the mean squared LOO error
    close(model.best_score_, -np.mean((Y - expected) ** 2, axis=0), BRUTE_TOL[np.float64])


@pytest.mark.parametrize("alpha_per_target", [True, False])
@pytest.mark.parametrize("shape", [(14, 30), (30, 6)], ids=["gram", "cov"])
def test_pearson_selection_matches_brute_force(shape, alpha_per_target):
    X, Y = make_problem(*shape, t=6, seed=2)
    alphas = np.logspace(-1, 4, 6)
    # brute force: LOO predictions for every alpha, scipy's r, first argmax
    r = np.array(
        [
            [pearsonr(loo[:, j], Y[:, j])[0] for j in range(Y.shape[1])]
            for loo in (brute_force_loo(X, Y, a, True) for a in alphas)
        ]
    )  # (n_alphas, n_targets)
    model = RidgeGCV(alphas, scoring="pearson", alpha_per_target=alpha_per_target).fit(X, Y)
    close(model.cv_scores_, r, (1e-8, 1e-10))
    if alpha_per_target:
        expected_alpha = alphas[np.argmax(r, axis=0)]
        assert len(np.unique(expected_alpha)) >= 2
        assert_array_equal(model.alpha_, expected_alpha)
        close(model.best_score_, r.max(axis=0), (1e-8, 1e-10))
    else:
        assert model.alpha_ == alphas[np.argmax(r.mean(axis=1))]
    expected_loo = brute_force_loo(X, Y, np.broadcast_to(model.alpha_, Y.shape[1]), True)
    close(model.loo_predictions_, expected_loo, BRUTE_TOL[np.float64])


def test_pearson_constant_target_scores_zero_and_ties_go_to_first_alpha():
    X, Y = make_problem(20, 40, t=3, seed=3)
    Y[:, 1] = 0.1  # constant target: LOO predictions are constant, r undefined
    alphas = [100.0, 1.0, 10.0]  # unsorted: a tie must pick the first listed
    model = RidgeGCV(alphas, scoring="pearson").fit(X, Y)
    assert_array_equal(model.cv_scores_[:, 1], 0.0)
    assert model.alpha_[1] == 100.0
    assert model.best_score_[1] == 0.0
    assert_allclose(model.loo_predictions_[:, 1], 0.1, rtol=1e-15)
    assert np.all(np.abs(model.cv_scores_[:, [0, 2]]) > 0)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(3, 24),
    p=st.integers(1, 24),
    t=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    fit_intercept=st.booleans(),
)
def test_random_shapes_match_sklearn_and_brute_force(n, p, t, seed, fit_intercept):
    X, Y = make_problem(n, p, t=t, seed=seed)
    ref = RidgeCV(alphas=ALPHAS, alpha_per_target=True, fit_intercept=fit_intercept).fit(X, Y)
    ours = RidgeGCV(ALPHAS, scoring="mse", fit_intercept=fit_intercept).fit(X, Y)
    assert_array_equal(ours.alpha_, np.broadcast_to(ref.alpha_, (t,)))
    close(ours.coef_, ref.coef_.reshape(t, p), TOL[np.float64])
    close(ours.loo_predictions_, brute_force_loo(X, Y, ours.alpha_, fit_intercept), (1e-7, 1e-9))


# ------------------------------------------------------------------ batching, predict, API


@pytest.mark.parametrize("scoring", ["mse", "pearson"])
@pytest.mark.parametrize("alpha_per_target", [True, False])
@pytest.mark.parametrize("shape", [(30, 80), (80, 30)], ids=["gram", "cov"])
def test_batched_targets_give_the_same_results(shape, alpha_per_target, scoring):
    X, Y = make_problem(*shape, t=10, seed=4)
    kwargs = dict(scoring=scoring, alpha_per_target=alpha_per_target)
    whole = RidgeGCV(ALPHAS, **kwargs).fit(X, Y)
    for batch in (1, 3, 10, 64):
        part = RidgeGCV(ALPHAS, n_targets_batch=batch, **kwargs).fit(X, Y)
        assert_array_equal(part.alpha_, whole.alpha_)
        # BLAS may sum in another order for another batch width (gemv for one column):
        # equal up to round-off, far below any difference a batching bug would make
        for name in ("coef_", "intercept_", "loo_predictions_", "best_score_", "cv_scores_"):
            close(getattr(part, name), getattr(whole, name), (1e-10, 1e-12))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("shape", "t"),
    [((30, 80), 4), ((80, 30), 4), ((20, 200), 40)],
    ids=["gram", "cov", "gram-dual"],
)
def test_predict_is_coef_and_intercept(shape, t, dtype):
    X, Y = make_problem(*shape, t=t, dtype=dtype, seed=5)
    X_new = make_problem(*shape, t=1, dtype=dtype, seed=6)[0][:7]
    model = RidgeGCV(ALPHAS).fit(X, Y)
    before = model.predict(X_new)  # the dual form while coef_ was never needed (gram-dual)
    expected = X_new.astype(np.float64) @ model.coef_.T.astype(np.float64) + model.intercept_
    assert before.dtype == dtype and before.shape == (7, t)
    close(before, expected, TOL[dtype])
    close(model.predict(X_new), expected, TOL[dtype])


def test_integer_input_gives_float64():
    X, Y = make_problem(20, 30, t=2, seed=7)
    model = RidgeGCV(ALPHAS).fit(np.round(X * 10).astype(np.int32), np.round(Y).astype(np.int64))
    assert model.coef_.dtype == model.loo_predictions_.dtype == np.float64


def test_sklearn_estimator_conventions():
    alphas = np.array([1.0, 10.0])
    model = RidgeGCV(alphas, scoring="mse", n_targets_batch=5)
    assert model.get_params()["alphas"] is alphas  # stored unchanged
    assert clone(model).get_params()["n_targets_batch"] == 5
    assert not hasattr(model, "coef_")
    X, Y = make_problem(20, 30, t=3, seed=8)
    model.fit(X, Y)
    assert model.get_params()["alphas"] is alphas and model.n_features_in_ == 30
    refit = model.fit(X[:, :10], Y)  # refitting replaces the old (lazy) coefficients
    assert refit is model and model.coef_.shape == (3, 10)
    assert model.score(X[:, :10], Y) > 0  # RegressorMixin R^2 on the training data
    with pytest.raises(TypeError):
        RidgeGCV(alphas, "mse")  # keyword-only after alphas


# ------------------------------------------------------------------ errors


def put(a, index, value):
    a = a.copy()
    a[index] = value
    return a


@pytest.mark.parametrize(
    ("params", "X_Y", "error", "match"),
    [
        ({}, lambda X, Y: (X, Y[:-1]), InputError, "same number of rows.*X has 20 and Y has 19"),
        ({}, lambda X, Y: (X[0], Y), InputError, "X must be a 2-D array"),
        ({}, lambda X, Y: (X, Y[..., None]), InputError, "Y must be 1-D .* or 2-D"),
        ({}, lambda X, Y: (put(X, (3, 4), np.nan), Y), InputError, r"^X: found 1 .*\(3, 4\)"),
        ({}, lambda X, Y: (X, put(Y, (0, 1), np.inf)), InputError, r"^Y: found 1 .*\(0, 1\)"),
        ({}, lambda X, Y: (X, Y[:, :0]), InputError, "Y has no targets"),
        ({}, lambda X, Y: (X[:1], Y[:1]), InputError, "at least 2 samples"),
        ({"alphas": [1.0, 0.0]}, None, ValueError, r"alphas must be positive.*got \[0.0\]"),
        ({"alphas": [1, -3, np.nan]}, None, ValueError, r"alphas must be positive.*\[-3.0, nan\]"),
        ({"alphas": []}, None, ValueError, "non-empty"),
        ({"n_targets_batch": 0}, None, ValueError, "n_targets_batch must be a positive int"),
        (
            {"scoring": "r2"},
            None,
            ValueError,
            "Invalid value for the 'scoring' parameter. Allowed values are 'pearson' and 'mse', "
            "but got 'r2' instead.",
        ),
    ],
)
def test_fit_errors(params, X_Y, error, match):
    X, Y = make_problem(20, 30, t=3, seed=9)
    X, Y = (X, Y) if X_Y is None else X_Y(X, Y)
    with pytest.raises(error, match=match):
        RidgeGCV(**params).fit(X, Y)


def test_predict_errors():
    X, Y = make_problem(20, 30, t=3, seed=10)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        RidgeGCV().predict(X)
    model = RidgeGCV().fit(X, Y)
    with pytest.raises(InputError, match="X has 29 features, but RidgeGCV was fitted with 30"):
        model.predict(X[:, 1:])
    with pytest.raises(InputError, match="^X: found"):
        model.predict(np.full_like(X, np.nan))


# ------------------------------------------------------------------ pearson_columns


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pearson_columns_matches_scipy(dtype):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((50, 6))
    b = 0.5 * a + rng.standard_normal((50, 6)) + 100.0  # a large offset must not matter
    r = pearson_columns(a.astype(dtype), b.astype(dtype))
    expected = [pearsonr(a[:, j].astype(dtype), b[:, j].astype(dtype))[0] for j in range(6)]
    assert r.dtype == dtype and r.shape == (6,)
    close(r, expected, {np.float64: (1e-12, 1e-14), np.float32: (1e-6, 1e-7)}[dtype])
    assert pearson_columns(a[:, 0], -a[:, 0]) == pytest.approx(-1.0, abs=1e-15)
    assert pearson_columns(a[:, 0], a[:, 0]).shape == ()


def test_pearson_columns_constant_column_is_nan():
    a = np.array([[1.0, 0.3], [2.0, 0.3], [4.0, 0.3]])
    r = pearson_columns(a, a[:, ::-1])
    assert np.isnan(r).all()
    r = pearson_columns(a, np.column_stack([a[:, 0], [1.0, 0.0, 2.0]]))
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])


def test_pearson_columns_errors():
    with pytest.raises(InputError, match=r"same shape; got \(3, 2\) and \(3, 1\)"):
        pearson_columns(np.ones((3, 2)), np.ones((3, 1)))
    with pytest.raises(InputError, match="n_samples >= 2"):
        pearson_columns(np.ones((1, 2)), np.ones((1, 2)))
