"""Exact leave-one-out (LOO) ridge solvers behind :class:`brainalign.encoding.RidgeGCV`.

One eigendecomposition of the (centred) design serves every alpha and every target:

- ``"gram"`` (``n_samples <= n_features``): ``K = Xc Xc' = Q diag(L) Q'``. With
  ``G = K + alpha I`` the dual coefficients are ``c = G^-1 y = Q (Q' y / (L + alpha))``,
  the LOO errors ``c / d`` with ``d = diag(G^-1)``, and ``coef = Xc' c``.
- ``"cov"`` (``n_samples > n_features``): ``C = Xc' Xc = V diag(L) V'``. With
  ``B = Xc V`` the fitted values are ``B (B' y / (L + alpha))``, the LOO errors
  ``(y - fitted) / (1 - diag(hat))`` and ``coef = V (B' y / (L + alpha))``.

Both are the formulas of scikit-learn's ``_RidgeGCV`` (Rifkin & Lippert 2007) written in
the eigenbasis, so nothing per alpha is bigger than ``(n_samples, n_targets)``. The
intercept is left unpenalised as scikit-learn does it: X and y are centred and the
leverage gets the correction ``d -= (G^-1 1) / n`` (``1/n`` for the centred design).

Everything here computes in float64 and takes already validated, centred arrays; the
estimator in :mod:`brainalign.encoding` validates input, batches targets and picks alphas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "LooBasis",
    "SOLVERS",
    "project",
    "loo_errors",
    "loo_solution",
    "coefficients",
    "coef_dot",
]


@dataclass(frozen=True)
class LooBasis:
    """What one decomposition leaves behind for every alpha of the grid.

    Attributes
    ----------
    route : ``"gram"`` or ``"cov"``.
    basis : (n_samples, r) ``Q`` for gram, ``Xc V`` for cov; targets are projected on it.
    filters : (r, n_alphas) ``1 / (L + alpha)`` for every eigenvalue and alpha.
    denominators : (n_samples, n_alphas) the LOO leverage term per sample and alpha:
        ``d = diag(G^-1)`` (gram) or ``alpha d = 1 - diag(hat)`` (cov), intercept
        correction included.
    coef_map : (n_samples, n_features) ``Xc`` for gram, (n_features, r) ``V`` for cov.
    """

    route: str
    basis: np.ndarray
    filters: np.ndarray
    denominators: np.ndarray
    coef_map: np.ndarray


def _eigh_psd(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigendecomposition of a PSD matrix; round-off negatives are clipped to 0."""
    eigvals, eigvecs = np.linalg.eigh(matrix)
    return np.maximum(eigvals, 0.0), eigvecs


def decompose_gram(xc: np.ndarray, alphas: np.ndarray, fit_intercept: bool) -> LooBasis:
    """Gram route (n_samples <= n_features): eigendecomposition of ``Xc Xc'``."""
    n_samples = xc.shape[0]
    eigvals, q = _eigh_psd(xc @ xc.T)                     # (n,), (n, n)
    filters = 1.0 / (eigvals[:, None] + alphas[None, :])  # (n, A) = 1 / (L + alpha)
    denominators = (q * q) @ filters                      # (n, A) = diag(G^-1)
    if fit_intercept:
        qt_ones = q.sum(axis=0)                           # Q' 1
        denominators -= (q @ (filters * qt_ones[:, None])) / n_samples  # (G^-1 1) / n
    return LooBasis("gram", q, filters, denominators, xc)


def decompose_cov(xc: np.ndarray, alphas: np.ndarray, fit_intercept: bool) -> LooBasis:
    """Covariance route (n_samples > n_features): eigendecomposition of ``Xc' Xc``."""
    n_samples = xc.shape[0]
    eigvals, v = _eigh_psd(xc.T @ xc)                     # (p,), (p, p)
    b = xc @ v                                            # (n, p)
    filters = 1.0 / (eigvals[:, None] + alphas[None, :])  # (p, A)
    denominators = 1.0 - (b * b) @ filters                # (n, A) = 1 - diag(hat)
    if fit_intercept:
        bt_ones = b.sum(axis=0)                           # B' 1 (zero up to round-off)
        hat_ones = b @ (filters * bt_ones[:, None])       # (n, A) = hat 1
        denominators -= (1.0 - hat_ones) / n_samples
    return LooBasis("cov", b, filters, denominators, v)


SOLVERS = {"gram": decompose_gram, "cov": decompose_cov}


def project(basis: LooBasis, yc: np.ndarray) -> np.ndarray:
    """Targets in the eigenbasis: ``basis' yc``, shape (r, n_targets)."""
    return basis.basis.T @ yc


def _grid_columns(basis: LooBasis, alpha_index: int | np.ndarray):
    """Filters (r, 1 or t) and LOO denominators (n, 1 or t) for one alpha or one per target."""
    if np.ndim(alpha_index) == 0:
        # one alpha for all targets: (r, 1) and (n, 1) broadcast over targets
        return basis.filters[:, alpha_index, None], basis.denominators[:, alpha_index, None]
    return basis.filters[:, alpha_index], basis.denominators[:, alpha_index]


def loo_errors(
    basis: LooBasis,
    yc: np.ndarray,
    projected: np.ndarray,
    alpha_index: int,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Exact LOO errors ``y_i - yhat_{-i}``, (n_samples, n_targets), at grid alpha ``alpha_index``.

    ``work``: optional float64 buffers of shapes (r, n_targets) and (n_samples, n_targets)
    reused across alphas (the errors are written into the second one), which saves
    allocating and page-faulting three (n, t) arrays per alpha.
    """
    filt, den = _grid_columns(basis, alpha_index)
    z_out, n_out = (None, None) if work is None else work
    z = np.multiply(filt, projected, out=z_out)             # (r, t)
    if basis.route == "gram":
        c = np.matmul(basis.basis, z, out=n_out)             # (n, t) = G^-1 y
        return np.divide(c, den, out=c)
    fitted = np.matmul(basis.basis, z, out=n_out)            # (n, t) = hat y
    residual = np.subtract(yc, fitted, out=fitted)
    return np.divide(residual, den, out=residual)


def loo_solution(
    basis: LooBasis, yc: np.ndarray, projected: np.ndarray, alpha_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """LOO errors and dual coefficients with one grid alpha per target.

    ``alpha_index``: int array (n_targets,). Returns ``(errors, dual)``: errors
    (n_samples, n_targets) and the coefficients in the eigenbasis that
    :func:`coefficients` turns into ``coef`` (gram: ``c = G^-1 y``, (n, t);
    cov: ``Z = B' y / (L + alpha)``, (p, t)).
    """
    filt, den = _grid_columns(basis, alpha_index)
    z = filt * projected                                     # (r, t)
    if basis.route == "gram":
        c = basis.basis @ z                                  # (n, t) = G^-1 y
        return c / den, c
    fitted = basis.basis @ z                                 # (n, t) = hat y
    return (yc - fitted) / den, z


def coefficients(route: str, coef_map: np.ndarray, dual: np.ndarray, out=None) -> np.ndarray:
    """Primal weights, shape (n_targets, n_features), from :func:`loo_solution`'s dual.

    ``route`` and ``coef_map`` are those of the :class:`LooBasis` (the estimator keeps
    only these after fit); ``out`` (float64, C-contiguous) receives the result without
    a temporary.
    """
    if route == "gram":
        return np.matmul(dual.T, coef_map, out=out)          # (t, n) @ (n, p): (Xc' c)'
    return np.matmul(dual.T, coef_map.T, out=out)            # (t, p) @ (p, p): (V Z)'


def coef_dot(basis: LooBasis, dual: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``coef @ x`` for a feature vector x, shape (n_targets,), without forming coef."""
    if basis.route == "gram":
        return dual.T @ (basis.coef_map @ x)                 # c' (Xc x)
    return dual.T @ (basis.coef_map.T @ x)                   # Z' (V' x)
