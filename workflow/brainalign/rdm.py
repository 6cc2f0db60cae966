"""Representational dissimilarity matrices (RDMs) and their comparison.

All RDMs are *condensed*: the upper triangle without the diagonal, in the order of
:func:`scipy.spatial.distance.pdist` (row-major over ``i < j``). One dispatcher
per concept, one plainly named function per method:

- :func:`compute_rdm` -> :func:`pearson_rdm`, :func:`spearman_rdm`, :func:`euclidean_rdm`
- :func:`compare_rdms` -> Pearson or Spearman correlation of condensed RDMs
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from brainalign.utils import InputError, check_finite, check_option

__all__ = [
    "compute_rdm",
    "compare_rdms",
    "pearson_rdm",
    "spearman_rdm",
    "euclidean_rdm",
    "pearson_rdm_from_projection",
    "condensed_to_square",
    "n_pairs",
]

RDM_METRICS = ("pearson", "spearman", "euclidean")
COMPARE_METHODS = ("pearson", "spearman")


def n_pairs(n: int) -> int:
    """Length of a condensed RDM over ``n`` conditions."""
    return n * (n - 1) // 2


def _upper(square: np.ndarray) -> np.ndarray:
    i, j = np.triu_indices(square.shape[0], k=1)
    return square[i, j]


def _check_patterns(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"Expected patterns of shape (n_conditions, n_features), got {X.shape}.")
    if X.shape[0] < 2:
        raise InputError(f"An RDM needs at least 2 conditions, got {X.shape[0]}.")
    check_finite(X, "RDM input patterns")
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    return X


def _correlation_distance(X: np.ndarray) -> np.ndarray:
    """1 - Pearson r between rows, computed in float64 from one Gram matrix."""
    Z = X.astype(np.float64, copy=True)
    Z -= Z.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Z, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        Z /= norms[:, None]
    with np.errstate(invalid="ignore"):  # constant rows give NaN, as pdist does
        r = _upper(Z @ Z.T)
    return 1.0 - r


def pearson_rdm(X) -> np.ndarray:
    """1 - Pearson correlation between the rows (conditions) of ``X``.

    Rows with zero variance give NaN entries, as :func:`scipy.spatial.distance.pdist`
    with ``metric="correlation"`` does.
    """
    return _correlation_distance(_check_patterns(X))


def spearman_rdm(X) -> np.ndarray:
    """1 - Spearman rank correlation between the rows of ``X`` (average ranks for ties)."""
    X = _check_patterns(X)
    return _correlation_distance(rankdata(X, axis=1))


def euclidean_rdm(X) -> np.ndarray:
    """Euclidean distance between the rows of ``X``."""
    X = _check_patterns(X).astype(np.float64, copy=False)
    sq = np.einsum("ij,ij->i", X, X)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    d2 = _upper(d2)
    np.maximum(d2, 0.0, out=d2)
    return np.sqrt(d2)


_RDM_FUNCTIONS = {"pearson": pearson_rdm, "spearman": spearman_rdm, "euclidean": euclidean_rdm}


def compute_rdm(X, metric: str = "pearson") -> np.ndarray:
    """Condensed RDM (scipy ``pdist`` order) of the patterns ``X`` (n_conditions, n_features).

    Parameters
    ----------
    X : array (n_conditions, n_features)
    metric : {"pearson", "spearman", "euclidean"}
        ``pearson`` and ``spearman`` give 1 - correlation between conditions.

    Returns
    -------
    rdm : array (n_conditions * (n_conditions - 1) / 2,) float64
    """
    check_option("metric", metric, RDM_METRICS)
    return _RDM_FUNCTIONS[metric](X)


def pearson_rdm_from_projection(srp, row_mean, ones_proj) -> np.ndarray:
    """Pearson RDM of wide features estimated from their sparse random projection.

    ``srp`` = X R^T for raw features X (n, p); ``row_mean`` the per-row means of X and
    ``ones_proj`` = R 1. Since R is linear, the projection of the row-centered features
    is ``srp - row_mean[:, None] * ones_proj``; the correlation between two rows is
    estimated by the cosine of their projected centered vectors, which the
    Johnson-Lindenstrauss lemma keeps within the projection's distortion ``eps``.
    Used for cRSA on layers too wide to keep raw.
    """
    srp = np.asarray(srp, dtype=np.float64)
    Zc = srp - np.asarray(row_mean, dtype=np.float64)[:, None] * np.asarray(ones_proj, np.float64)
    check_finite(Zc, "projected features")
    norms = np.linalg.norm(Zc, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        Zc /= norms[:, None]
    return 1.0 - _upper(Zc @ Zc.T)


def _standardize_last(a: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    norm = np.linalg.norm(a, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return a / norm


def compare_rdms(a, b, method: str = "pearson"):
    """Correlate condensed RDMs.

    Parameters
    ----------
    a : array (n_pairs,)
    b : array (n_pairs,) or (n_rdms, n_pairs)
        Several RDMs in ``b`` are compared with ``a`` in one vectorised call.
    method : {"pearson", "spearman"}

    Returns
    -------
    float, or array (n_rdms,) when ``b`` is 2-D. NaN where an RDM is constant.
    """
    check_option("method", method, COMPARE_METHODS)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1:
        raise InputError(f"compare_rdms: `a` must be one condensed RDM (1-D), got shape {a.shape}.")
    if b.shape[-1] != a.shape[0] or b.ndim > 2:
        raise InputError(
            f"compare_rdms: RDM lengths differ: a has {a.shape[0]} pairs, b has shape {b.shape}."
        )
    if method == "spearman":
        a = rankdata(a)
        b = rankdata(b, axis=-1)
    r = _standardize_last(b) @ _standardize_last(a)
    return float(r) if np.ndim(r) == 0 else r


def condensed_to_square(rdm, diagonal: float = 0.0) -> np.ndarray:
    """Square symmetric matrix from a condensed RDM (diagonal filled with ``diagonal``)."""
    rdm = np.asarray(rdm)
    m = rdm.shape[0]
    n = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
    if n * (n - 1) // 2 != m:
        raise InputError(f"Length {m} is not a condensed RDM length n(n-1)/2.")
    square = np.full((n, n), diagonal, dtype=np.result_type(rdm.dtype, np.float64))
    i, j = np.triu_indices(n, k=1)
    square[i, j] = rdm
    square[j, i] = rdm
    return square
