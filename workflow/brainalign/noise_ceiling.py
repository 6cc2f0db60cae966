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
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from brainalign.utils import InputError, check_option

__all__ = ["split_half_ceiling", "spearman_brown"]

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
