"""Reliability-based noise ceilings of a brain RSM.

:func:`split_half_ceiling` is the split-half / Spearman-Brown ceiling that SPEC section 1
names as the minimum (it is *not* the GSN ceiling of Conwell et al. 2024, which models
signal and noise covariances generatively):

1. one RSM per single repetition (correlation between images across voxels; the RSM is
   1 - the correlation RDM, so correlating RSMs or RDMs gives the same number);
2. ``r1`` = mean correlation between the upper triangles of the RSMs of every pair of
   repetitions (the reliability of a single-repetition RSM);
3. Spearman-Brown to the average of ``k = n_reps`` repetitions:
   ``r_k = k r1 / (1 + (k - 1) r1)``;
4. ``ceiling = sqrt(max(r_k, 0))``: the largest correlation a model RSM can be expected
   to reach with the RSM of the repetition-averaged responses (a perfect model correlates
   with it as the square root of its reliability).

Step 3 treats the averaged-response RSM as the average of ``k`` single-repetition RSMs,
which holds to first order in the noise; the simulation test checks it against the
correlation of a noisy averaged RSM with the noiseless one.

:func:`gsn_ceiling` is the generative (signal + noise) ceiling that SPEC section 1 names as
the goal. It is **our own implementation in the spirit of GSN** (Kay, Prince et al.,
"Disentangling signal and noise in neural responses through generative modeling", the
method behind Conwell et al. 2024's ceilings), not the ``gsn`` package; see its docstring
for the model, the assumptions and where it differs.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
from scipy.linalg import helmert
from scipy.optimize import brentq
from scipy.stats import rankdata

from brainalign.rdm import compare_rdms
from brainalign.utils import InputError, check_option, make_rng

__all__ = ["split_half_ceiling", "spearman_brown", "gsn_ceiling"]

_METHODS = ("pearson", "spearman")


def spearman_brown(r1, k):
    """Reliability of the mean of ``k`` measurements whose pairwise reliability is ``r1``.

    ``k r1 / (1 + (k - 1) r1)``; NaN where the denominator is not positive (``r1 <=
    -1 / (k - 1)``), where the formula has no meaning.
    """
    r1 = np.asarray(r1, dtype=np.float64)
    denom = 1.0 + (k - 1.0) * r1
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, k * r1 / denom, np.nan)
    return out[()] if out.ndim == 0 else out


def split_half_ceiling(reps, *, rdm_metric: str = "pearson", compare: str = "pearson") -> dict:
    """Split-half (Spearman-Brown) noise ceiling of the RSM of repetition-averaged data.

    Parameters
    ----------
    reps : array, shape (n_reps, n_images, n_voxels)
        Single-repetition responses; ``n_reps >= 2``, ``n_images >= 3``, ``n_voxels >= 2``.
    rdm_metric : {'pearson', 'spearman'}
        Correlation between images across voxels that defines each RSM.
    compare : {'pearson', 'spearman'}
        Correlation between the RSMs' upper triangles.

    Returns
    -------
    dict
        ``reliability`` (``r_k``, Spearman-Brown reliability of the ``n_reps``-average RSM;
        NaN when ``r1 <= -1 / (n_reps - 1)``), ``ceiling`` (``sqrt(max(r_k, 0))``, 0 when
        ``r_k`` is NaN), ``n_reps``, and ``r1`` (mean pairwise single-repetition
        reliability).

    Raises
    ------
    InputError
        Wrong shape, non-finite values, or an image whose response is constant across
        voxels in some repetition (its correlations are undefined).
    """
    check_option("rdm_metric", rdm_metric, _METHODS)
    check_option("compare", compare, _METHODS)
    reps = _check_reps(reps)
    k = reps.shape[0]

    rsm = _upper_triangles(_rsms(reps, rdm_metric))  # (k, n_pairs)
    corr = _row_correlations(rsm, compare, what="single-repetition RSM")  # (k, k)
    r1 = float(corr[np.triu_indices(k, 1)].mean())
    r_k = float(spearman_brown(r1, k))
    ceiling = float(np.sqrt(max(r_k, 0.0))) if np.isfinite(r_k) else 0.0
    return {"reliability": r_k, "ceiling": ceiling, "n_reps": k, "r1": r1}


def _standardize_rows(x: np.ndarray, what: str) -> np.ndarray:
    """Center and scale the last axis to unit norm; error on a constant row."""
    scale = np.abs(x).max(axis=-1)
    x = x - x.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.einsum("...i,...i->...", x, x))
    flat = ~(norm > 1e-10 * scale * np.sqrt(x.shape[-1]))  # constant up to rounding
    if np.any(flat):
        where = tuple(int(i) for i in np.argwhere(flat)[0])
        raise InputError(
            f"{what} at index {where} is constant, so its correlations are undefined; "
            "expected varying values."
        )
    return x / norm[..., None]


def _rsms(reps: np.ndarray, metric: str) -> np.ndarray:
    """(k, n, n) correlation between images across voxels, one matrix per repetition."""
    if metric == "spearman":
        reps = rankdata(reps, axis=-1)
    z = _standardize_rows(reps, "the response of (repetition, image)")
    return np.einsum("kiv,kjv->kij", z, z)


def _upper_triangles(mats: np.ndarray) -> np.ndarray:
    """(k, n, n) -> (k, n (n - 1) / 2), scipy ``pdist`` (row-major upper) order."""
    i, j = np.triu_indices(mats.shape[-1], 1)
    return mats[:, i, j]


def _row_correlations(x: np.ndarray, method: str, what: str) -> np.ndarray:
    """(k, m) -> (k, k) Pearson (or Spearman) correlations between rows."""
    if method == "spearman":
        x = rankdata(x, axis=-1)
    z = _standardize_rows(x, what)
    return z @ z.T


# --------------------------------------------------------------------------------------
# GSN-like ceiling: generative model of signal and noise, Monte Carlo
# --------------------------------------------------------------------------------------

_GSN_RDM_METRICS = ("pearson",)
_GSN_MAX_SPLITS = 30  # random halvings of the repetitions used for the empirical reliability


def gsn_ceiling(
    reps,
    *,
    n_sims: int = 20,
    seed=0,
    rdm_metric: str = "pearson",
    compare: str = "pearson",
) -> dict:
    """RSM noise ceiling from a generative model of signal and noise ("GSN-like").

    This is **our implementation in the spirit of GSN** (Kay, Prince et al. 2024,
    "Disentangling signal and noise in neural responses through generative modeling"; the
    ceiling of Conwell et al. 2024), written from the paper's description. It is *not*
    the ``gsn`` package and its numbers will differ somewhat from it (see "Differences").

    Model. Single-trial responses are ``y_ri = s_i + e_ri`` (repetition r, image i, a
    vector over voxels) with signal ``s_i ~ N(mu, C_s)`` drawn independently per image and
    noise ``e_ri ~ N(0, C_n)`` drawn independently per trial; both Gaussian, and the same
    ``mu``, ``C_s`` and ``C_n`` for every image (noise does not depend on the image).

    Estimation.

    1. ``C_n`` = mean over images of the within-image covariance across repetitions
       (``ddof = 1``), i.e. the pooled trial-to-trial covariance with ``n (k - 1)``
       degrees of freedom.
    2. ``mu`` = mean over images of the repetition-averaged patterns;
       ``C_s`` = covariance over images of the repetition-averaged patterns (``ddof = 1``)
       minus ``C_n / k``, made positive semi-definite by clipping its negative eigenvalues
       to 0.
    3. Post-hoc scaling: ``C_s`` is multiplied by ``scale``, chosen (root finding on a
       smooth Monte Carlo curve with common random numbers) so that the simulated
       split-half reliability of the RSM equals the observed one. The split is
       ``h = n_reps // 2`` repetitions against ``h`` other repetitions (1 vs 1 for 3
       repetitions, where it equals ``split_half_ceiling``'s ``r1``); the observed value
       is the mean over all such splits (at most 30, chosen at random when there are
       more); the simulated one draws signal for ``n_images`` images and two independent
       noise averages of ``h`` trials.

    Ceiling. In each of ``n_sims`` simulations, noiseless patterns for ``n_images`` images
    are drawn from ``N(mu, scale C_s)`` and noisy measurements averaged over ``n_reps``
    trials are added noise ``N(0, C_n / n_reps)``; the sample is the correlation
    (``compare``) between the RSM of the noiseless patterns and that of the noisy average.
    ``ceiling`` = mean over simulations, ``ceiling_sd`` = their standard deviation.

    Speed. The RSM (Pearson correlation across voxels) depends on the patterns only
    through inner products of voxel-centred patterns, and every estimate above lies in
    the span of the ``n_reps * n_images`` centred single-trial patterns. All work is
    therefore done exactly (no approximation) in coordinates of that span, of dimension
    ``m <= min(n_voxels, n_reps * n_images)``: one Gram matrix of the data and its
    Cholesky factor, one eigendecomposition of the ``n_images (n_reps - 1)`` square noise
    Gram matrix and one of the ``m x m`` signal covariance; each simulation then draws
    signal and noise in their eigenbases and costs a few ``n_images``-square products.
    Memory: about ``5 * 8 * n_images**2 / 2 * n_sims`` bytes for the stored simulations
    (100 MB for 500 images and 20 simulations).

    Accuracy (simulations with known Gaussian signal and noise; truth = mean correlation
    of the noiseless RSM with the RSM of the noisy average over many draws). 120 images x
    400 voxels (``tests/test_gsn.py``): 0.988 vs 0.989 true, and 0.537 vs 0.538 at high
    noise, where :func:`split_half_ceiling` gives 0.980 and 0.391. 500 images x 8000
    voxels, factor + isotropic signal and noise: 0.946 / 0.807 / 0.625 / 0.371 vs 0.951 /
    0.820 / 0.638 / 0.354 true (split-half 0.886 / 0.663 / 0.458 / 0.243); with isotropic
    signal and noise only, 0.981 vs 0.966 (split-half 0.956). Given the true covariances
    the Monte Carlo reproduces the truth (tested); the remaining error (-0.013 to +0.017
    above) comes from estimating ``C_s`` and ``C_n`` from ``n_images`` images (rank at
    most ``n_images - 1`` with more voxels than images; GSN's shrinkage is meant to help
    there). When the single-repetition RSM reliability is near 0 (below ~0.02) the
    estimate is unreliable and biased upwards (0.21 vs 0.14 true at reliability 0.006):
    check ``reliability`` before trusting a low ceiling.

    Differences from the GSN package: no covariance shrinkage (GSN can shrink its
    covariance estimates, with the level chosen by cross-validated likelihood); the
    scale is found by root finding on the mean simulated reliability rather than on a
    grid (``0:0.1:2``) scored by R^2; the simulations use ``n_images`` images (GSN's
    default simulates 50 conditions); the ceiling is the mean over simulations (GSN
    reports the median); only the Pearson RSM is supported.

    Parameters
    ----------
    reps : array, shape (n_reps, n_images, n_voxels)
        Single-repetition responses; ``n_reps >= 2``, ``n_images >= 3``, ``n_voxels >= 2``.
    n_sims : int
        Monte Carlo simulations (the same draws serve the scale fit and the ceiling).
    seed : int or numpy Generator
        Seeds the splits and the simulations; the result is a function of ``(reps, seed)``.
    rdm_metric : {'pearson'}
        RSM = Pearson correlation between images across voxels. Rank-based RSMs are not
        offered: they need every simulated pattern in voxel space (far slower).
    compare : {'pearson', 'spearman'}
        Correlation between the RSMs' upper triangles.

    Returns
    -------
    dict
        ``ceiling``, ``ceiling_sd``, ``reliability`` (observed split-half RSM
        reliability), ``simulated_reliability`` (at the fitted scale; matches
        ``reliability`` unless the scale hit a bound), ``scale``, ``method`` (``"gsn-like"``),
        ``n_reps``, ``split_trials`` (``h``), ``n_sims`` and ``signal_rank`` (rank of the
        clipped signal covariance, at most ``n_images - 1``).

    Raises
    ------
    InputError
        Wrong shape, non-finite values, or an image whose response is constant across
        voxels in some repetition.
    """
    check_option("rdm_metric", rdm_metric, _GSN_RDM_METRICS)
    check_option("compare", compare, _METHODS)
    if isinstance(n_sims, bool) or not isinstance(n_sims, (int, np.integer)) or n_sims < 2:
        raise ValueError(f"n_sims must be an integer >= 2, got {n_sims!r}.")
    reps = _check_reps(reps)
    rng = make_rng(seed)
    k, n, _ = reps.shape
    h = k // 2

    xbar, resid, single = _gsn_coordinates(reps)  # inner products of voxel-centred data
    reliability = _gsn_observed_reliability(single, h, compare, rng)
    del single
    model = _gsn_fit(xbar, resid, k)
    out = {
        "method": "gsn-like",
        "reliability": reliability,
        "n_reps": k,
        "split_trials": h,
        "n_sims": int(n_sims),
        "signal_rank": int(model["signal_sd"].size),
    }
    if model["noiseless"]:  # identical repetitions: the average is the signal
        out.update(ceiling=1.0, ceiling_sd=0.0, simulated_reliability=1.0, scale=1.0)
        return out
    if model["signal_sd"].size == 0:  # no signal variance left after removing noise
        out.update(ceiling=0.0, ceiling_sd=0.0, simulated_reliability=0.0, scale=0.0)
        return out

    sims = [_GsnSimulation(model, n, h, k, rng) for _ in range(n_sims)]

    def excess(scale):
        return np.mean([s.split_reliability(scale, compare) for s in sims]) - reliability

    scale = _solve_scale(excess)
    ceilings = np.array([s.ceiling(scale, compare) for s in sims])
    out.update(
        ceiling=float(ceilings.mean()),
        ceiling_sd=float(ceilings.std(ddof=1)),
        simulated_reliability=float(excess(scale) + reliability),
        scale=float(scale),
    )
    return out


def _check_reps(reps) -> np.ndarray:
    reps = np.asarray(reps)
    if reps.ndim != 3 or reps.shape[0] < 2 or reps.shape[1] < 3 or reps.shape[2] < 2:
        raise InputError(
            f"reps has shape {reps.shape}; expected (n_reps >= 2, n_images >= 3, "
            "n_voxels >= 2)."
        )
    if reps.dtype.kind not in "iuf":
        raise InputError(f"reps has dtype {reps.dtype}; expected real numbers.")
    reps = reps.astype(np.float64)
    if not np.all(np.isfinite(reps)):
        raise InputError("reps holds NaN or inf; expected finite responses.")
    return reps


def _gsn_coordinates(reps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact low-dimensional coordinates of the voxel-centred data.

    Rows: the repetition averages ``xbar`` (n) and, per image, ``k - 1`` orthonormal
    (Helmert) contrasts of its repetitions, ``resid`` ((k - 1) n), so that
    ``resid^T resid = sum_i sum_r (y_ri - ybar_i)(y_ri - ybar_i)^T``. Coordinates keep
    every inner product (``X X^T = D D^T`` for the centred rows ``D``), hence every
    covariance estimate, Gaussian draw and Pearson RSM computed on them equals its
    voxel-space counterpart (the voxel-space objects are ``V (.) V^T`` for an orthonormal
    basis ``V`` of the span). When ``n_voxels`` exceeds ``n_reps * n_images`` the
    coordinates are the Cholesky factor of the rows' Gram matrix (dimension
    ``n_reps * n_images``); otherwise the centred voxels themselves.

    Returns ``xbar`` (n, m), ``resid`` ((k - 1) n, m) and the single repetitions
    ``single`` (k, n, m).
    """
    k, n, v = reps.shape
    scale = np.abs(reps).max(axis=2)
    D = reps - reps.mean(axis=2, keepdims=True)  # (k, n, v) centred across voxels
    sq_norm = np.einsum("rij,rij->ri", D, D)
    flat = ~(sq_norm > (1e-10 * scale) ** 2 * v)
    if np.any(flat):
        where = tuple(int(i) for i in np.argwhere(flat)[0])
        raise InputError(
            f"the response of (repetition, image) at index {where} is constant across "
            "voxels, so its correlations are undefined; expected varying values."
        )
    H = helmert(k, full=False)  # (k - 1, k) orthonormal rows orthogonal to 1
    rows = np.concatenate([D.mean(axis=0), np.tensordot(H, D, axes=(1, 0)).reshape(-1, v)])
    del D
    if v > k * n + 1:
        gram = rows @ rows.T  # (kn, kn)
        try:
            X = np.linalg.cholesky(gram)
        except np.linalg.LinAlgError:  # rank-deficient data (e.g. identical repetitions)
            w, U = np.linalg.eigh(gram)
            keep = w > w[-1] * 1e-12
            X = U[:, keep] * np.sqrt(w[keep])
    else:
        X = rows
    xbar, resid = X[:n], X[n:]
    single = xbar[None] + np.tensordot(H.T, resid.reshape(k - 1, n, -1), axes=(1, 0))
    return xbar, resid, single


def _cosine_rsm(x: np.ndarray) -> np.ndarray:
    """Condensed RSM (pdist order) of rows that are already voxel-centred."""
    g = x @ x.T
    d = np.sqrt(np.diag(g))
    i, j = np.triu_indices(x.shape[0], 1)
    return g[i, j] / (d[i] * d[j])


def _compare(a: np.ndarray, b: np.ndarray, method: str) -> float:
    """Correlation of two condensed RSMs; 0 where undefined (a constant RSM), as GSN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        r = compare_rdms(a, b, method)
    return float(r) if np.isfinite(r) else 0.0


def _gsn_observed_reliability(single: np.ndarray, h: int, compare: str, rng) -> float:
    """Mean RSM correlation between disjoint averages of ``h`` repetitions."""
    k = single.shape[0]
    splits = []
    for first in combinations(range(k), h):
        rest = [r for r in range(k) if r not in first]
        for second in combinations(rest, h):
            if first < second:  # each unordered pair of halves once
                splits.append((first, second))
    if len(splits) > _GSN_MAX_SPLITS:
        pick = rng.choice(len(splits), _GSN_MAX_SPLITS, replace=False)
        splits = [splits[i] for i in np.sort(pick)]
    cache = {}

    def rsm(trials):
        if trials not in cache:
            cache[trials] = _cosine_rsm(single[list(trials)].mean(axis=0))
        return cache[trials]

    return float(np.mean([_compare(rsm(a), rsm(b), compare) for a, b in splits]))


def _gsn_fit(xbar: np.ndarray, resid: np.ndarray, k: int) -> dict:
    """Signal and noise distributions, factored for fast simulation.

    ``C_n = resid^T resid / (n (k - 1))`` is kept as its eigenpairs (``noise_sd``, and
    ``noise_vecs`` (m, r_n) obtained from the smaller Gram ``resid resid^T``);
    ``C_s = xbar_c^T xbar_c / (n - 1) - C_n / k`` with its negative eigenvalues clipped,
    as ``signal_sd`` (r_s,) and orthonormal ``signal_vecs`` (m, r_s). ``noiseless`` is
    True when the repetitions are identical.
    """
    n, m = xbar.shape
    dof = n * (k - 1)
    mu = xbar.mean(axis=0)
    noiseless = bool(np.linalg.norm(resid) <= 1e-10 * np.linalg.norm(xbar))
    lam_n, U = np.linalg.eigh(resid @ resid.T / dof)  # nonzero eigenvalues of C_n
    keep = lam_n > max(lam_n[-1], 0.0) * 1e-10
    lam_n, U = lam_n[keep][::-1], U[:, keep][:, ::-1]
    noise_vecs = resid.T @ (U / np.sqrt(lam_n * dof))  # (m, r_n) orthonormal
    xc = xbar - mu
    cov_s = xc.T @ xc / (n - 1)
    cov_s -= (noise_vecs * (lam_n / k)) @ noise_vecs.T  # C_d - C_n / k
    lam_s, V = np.linalg.eigh(cov_s)
    keep = lam_s > max(lam_s[-1], 0.0) * 1e-10  # clip negative eigenvalues to 0
    model = _gsn_model(mu, V[:, keep], np.sqrt(lam_s[keep]), noise_vecs, np.sqrt(lam_n))
    model["noiseless"] = noiseless
    return model


def _gsn_model(mu, signal_vecs, signal_sd, noise_vecs, noise_sd) -> dict:
    """What :class:`_GsnSimulation` needs: the mean, and each covariance as orthonormal
    eigenvectors (columns) and standard deviations, all in one coordinate system."""
    return {
        "mu_signal": signal_vecs.T @ mu,  # mu in the signal and noise bases
        "mu_noise": noise_vecs.T @ mu,
        "mu_sq": float(mu @ mu),
        "signal_sd": signal_sd,
        "noise_sd": noise_sd,
        "signal_noise": signal_vecs.T @ noise_vecs,  # (r_s, r_n) overlap of the two bases
        "signal_vecs": signal_vecs,
        "noise_vecs": noise_vecs,
        "mu": mu,
    }


class _GsnSimulation:
    """One Monte Carlo draw, stored as the Gram pieces needed at any signal scale.

    Patterns are ``mu + sqrt(scale) S + c E`` (S signal, E noise); their Gram matrix is a
    fixed combination of ``mu.mu``, ``S mu``, ``E mu``, ``S S^T``, ``S E^T + E S^T`` and
    ``E E^T``, kept as (diagonal, condensed upper triangle) so that evaluating a scale
    costs O(n^2) and no matrix product. Signal and noise are drawn in their own
    eigenbases (``S = z V^T``, ``E = w Q^T`` with ``z``, ``w`` scaled standard normals),
    so the pieces need only the overlap ``V^T Q`` and never an m-dimensional pattern.
    """

    def __init__(self, model: dict, n: int, h: int, k: int, rng):
        z = rng.standard_normal((n, model["signal_sd"].size)) * model["signal_sd"]
        self._i, self._j = np.triu_indices(n, 1)
        self.c_avg = np.sqrt(h / k)  # noise of an h-trial average -> of a k-trial average
        self.mm = model["mu_sq"]
        self.s_mu = z @ model["mu_signal"]
        self.ss = self._pack(z @ z.T)
        z_in_noise = z @ model["signal_noise"]  # S expressed in the noise basis
        self.e_mu, self.se, self.ee = [], [], []
        for _ in range(2):  # two independent h-trial noise averages, N(0, C_n / h)
            w = rng.standard_normal((n, model["noise_sd"].size)) * (model["noise_sd"] / np.sqrt(h))
            se = z_in_noise @ w.T
            self.e_mu.append(w @ model["mu_noise"])
            self.se.append(self._pack(se + se.T))
            self.ee.append(self._pack(w @ w.T))

    def _pack(self, g):
        return np.diag(g).copy(), g[self._i, self._j]

    def _rsm(self, scale: float, half: int | None, c: float = 1.0) -> np.ndarray:
        a = np.sqrt(scale)
        i, j = self._i, self._j
        diag = self.mm + 2 * a * self.s_mu + scale * self.ss[0]
        off = self.mm + a * (self.s_mu[i] + self.s_mu[j]) + scale * self.ss[1]
        if half is not None:
            e_mu, se, ee = self.e_mu[half], self.se[half], self.ee[half]
            diag = diag + 2 * c * e_mu + a * c * se[0] + c * c * ee[0]
            off = off + c * (e_mu[i] + e_mu[j]) + a * c * se[1] + c * c * ee[1]
        with np.errstate(invalid="ignore", divide="ignore"):
            d = np.sqrt(np.clip(diag, 0.0, None))
            return off / (d[i] * d[j])

    def split_reliability(self, scale: float, compare: str) -> float:
        return _compare(self._rsm(scale, 0), self._rsm(scale, 1), compare)

    def ceiling(self, scale: float, compare: str) -> float:
        return _compare(self._rsm(scale, None), self._rsm(scale, 0, self.c_avg), compare)


def _solve_scale(excess, hi: float = 1.0, max_hi: float = 1e6) -> float:
    """Root of the increasing function ``excess`` on [0, inf), clamped to [0, max_hi].

    0 when even no signal is as reliable as the data (then the ceiling is 0).
    """
    if excess(0.0) >= 0:
        return 0.0
    while (value := excess(hi)) < 0:
        if hi >= max_hi:
            warnings.warn(
                f"gsn_ceiling: the simulated split-half reliability stays below the observed "
                f"one up to a signal scale of {max_hi:g}; using that scale.",
                RuntimeWarning,
                stacklevel=3,
            )
            return hi
        hi *= 4.0
    if value == 0:
        return hi
    return brentq(excess, 0.0, hi, xtol=1e-8, rtol=1e-5)
