"""Ridge encoding models with exact leave-one-out alpha selection (:class:`RidgeGCV`).

:class:`RidgeGCV` fits one ridge regression per target (voxel, electrode) and picks each
target's alpha by exact leave-one-out (LOO) cross-validation, from ONE eigendecomposition
shared by all alphas and all targets (see :mod:`brainalign._ridge_solvers` for the
algebra). With ``scoring="mse"`` it selects the same alphas and returns the same
coefficients as ``sklearn.linear_model.RidgeCV(alphas, alpha_per_target=True)`` in its
default GCV mode, several times faster on wide designs because it never forms a
coefficient matrix per alpha. It also keeps the LOO predictions at the chosen alphas,
which the workflow needs to build a predicted train RSM.

:func:`pearson_columns` is the plain per-column Pearson r used for voxel-wise encoding
scores.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import NotFittedError

from brainalign import _ridge_solvers as solvers
from brainalign.utils import InputError, check_finite, check_option

__all__ = ["RidgeGCV", "pearson_columns"]

_DEFAULT_ALPHAS = np.logspace(1, 7, 7)


# ----------------------------------------------------------------------------- scores


def _centre_columns(a: np.ndarray) -> np.ndarray:
    """float64 copy of ``a`` minus its column means; constant columns become exactly 0.

    Without the explicit zeroing a constant column would keep round-off residue
    (the mean of n equal floats is not always that float) and give a meaningless r.
    """
    a = np.array(a, dtype=np.float64)
    a -= a.mean(axis=0)
    constant = np.ptp(a, axis=0) == 0
    a[:, constant] = 0.0
    return a


def pearson_columns(a, b) -> np.ndarray:
    """Pearson r between matching columns of two (n_samples, n_columns) arrays.

    Vectorised over columns; 1-D inputs give a 0-d result. Computed in float64 and
    returned in the inputs' floating dtype (float32 only if both are float32).
    A column with zero variance in ``a`` or ``b`` has no defined r and gives NaN (as
    :func:`scipy.stats.pearsonr` and :func:`numpy.corrcoef`); NaN in the input
    propagates to that column's r.

    Examples
    --------
    >>> a = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    >>> pearson_columns(a, a * [1, -1]).tolist()
    [1.0, -1.0]
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise InputError(
            f"pearson_columns: a and b must have the same shape; got {a.shape} and {b.shape}."
        )
    if a.ndim not in (1, 2) or a.shape[0] < 2:
        raise InputError(
            f"pearson_columns: expected arrays of shape (n_samples >= 2, n_columns) or "
            f"(n_samples,); got shape {a.shape}."
        )
    one_d = a.ndim == 1
    if one_d:
        a, b = a[:, None], b[:, None]
    r, defined = _pearson_defined(_centre_columns(a), _centre_columns(b))
    r = np.where(defined, r, np.nan).astype(_float_dtype(a.dtype, b.dtype), copy=False)
    return r.reshape(()) if one_d else r


def _pearson_defined(ac: np.ndarray, bc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r of already centred columns, and where it is defined (both variances > 0)."""
    ss = np.einsum("ij,ij->j", ac, ac) * np.einsum("ij,ij->j", bc, bc)
    defined = ss > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.einsum("ij,ij->j", ac, bc) / np.sqrt(ss)
    return np.clip(np.where(defined, r, 0.0), -1.0, 1.0), defined


# LOO scorers: (centred y, LOO errors) -> score per target, higher is better. They may
# overwrite ``errors`` (a work buffer).


def _score_mse(y_scored: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Negative mean squared LOO error per target (as scikit-learn's RidgeCV)."""
    return -np.einsum("ij,ij->j", errors, errors) / errors.shape[0]


def _score_pearson(y_scored: np.ndarray, errors: np.ndarray) -> np.ndarray:
    """Pearson r of LOO predictions ``y - errors`` with ``y``; undefined r scores 0."""
    predictions = np.subtract(y_scored, errors, out=errors)
    predictions -= predictions.mean(axis=0)
    return _pearson_defined(y_scored, predictions)[0]


_SCORERS = {"pearson": _score_pearson, "mse": _score_mse}


# ----------------------------------------------------------------------------- checks


def _float_dtype(*dtypes) -> np.dtype:
    """float32 or float64: the floating dtype that keeps the caller's precision."""
    dtype = np.result_type(*dtypes)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def _check_alphas(alphas) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(alphas, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"alphas must be a non-empty 1-D sequence of positive numbers; got {alphas!r}."
        )
    if not np.all(np.isfinite(arr) & (arr > 0)):
        bad = arr[~(np.isfinite(arr) & (arr > 0))]
        raise ValueError(
            f"alphas must be positive and finite (ridge needs alpha > 0 for exact LOO); "
            f"got {bad.tolist()} in alphas={arr.tolist()}."
        )
    return arr


def _check_batch(n_targets_batch) -> int | None:
    if n_targets_batch is None:
        return None
    batch = n_targets_batch
    is_int = isinstance(batch, (int, np.integer)) and not isinstance(batch, bool)
    if not is_int or n_targets_batch < 1:
        raise ValueError(
            f"n_targets_batch must be a positive int or None; got {n_targets_batch!r}."
        )
    return int(n_targets_batch)


def _check_x(X, what: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(
            f"{what} must be a 2-D array (n_samples, n_features); got shape {X.shape}."
        )
    if X.dtype.kind not in "biuf":
        raise InputError(f"{what} must hold real numbers; got dtype {X.dtype}.")
    return check_finite(X, what)


# ----------------------------------------------------------------------------- estimator


class RidgeGCV(RegressorMixin, BaseEstimator):
    """Ridge regression per target with exact leave-one-out alpha selection.

    Parameters
    ----------
    alphas : array-like of positive floats, default ``np.logspace(1, 7, 7)``
        The grid searched for every target.
    scoring : {"pearson", "mse"}, default "pearson"
        LOO criterion maximised. ``"pearson"``: Pearson r between the exact LOO
        predictions and y. Where r is undefined (the target or its LOO predictions
        are constant) it is scored 0, i.e. "no linear association".
        ``"mse"``: negative mean squared LOO error, which reproduces scikit-learn's
        ``RidgeCV`` (default GCV mode) alpha for alpha.
    alpha_per_target : bool, default True
        Pick an alpha per target; if False, one alpha maximising the score averaged
        over targets.
    fit_intercept : bool, default True
        Fit an unpenalised intercept (X and Y centred, leverage corrected, exactly as
        scikit-learn's GCV).
    n_targets_batch : int or None, default None
        Targets processed per batch (None: all at once). Working memory beyond the
        inputs and outputs is about ``6 * n_samples * n_targets_batch`` float64 values;
        results do not depend on it.

    Attributes
    ----------
    alpha_ : ndarray (n_targets,) of float64, or float
        Chosen alpha per target; a float when ``alpha_per_target=False`` or Y is 1-D.
        Values are exactly elements of ``alphas``. Ties go to the first alpha in
        ``alphas`` order (the smallest for an ascending grid), as in scikit-learn.
    coef_ : ndarray (n_targets, n_features), or (n_features,) for 1-D Y
        When ``n_samples <= n_features`` it is computed on first access (from the
        dual coefficients, in batches) and cached; :meth:`predict` does not need it.
    intercept_ : ndarray (n_targets,), or float for 1-D Y
    best_score_ : ndarray (n_targets,), or float for 1-D Y
        LOO score of each target at its chosen alpha (per target also when
        ``alpha_per_target=False``; the selection criterion is its mean).
    cv_scores_ : ndarray (n_alphas, n_targets), or (n_alphas,) for 1-D Y
        LOO score of every alpha for every target.
    loo_predictions_ : ndarray (n_samples, n_targets), or (n_samples,) for 1-D Y
        Exact LOO predictions at each target's chosen alpha, in Y's units
        (intercept included): row i is predicted by the model fitted without row i.
    n_features_in_ : int

    ``coef_``, ``intercept_``, ``loo_predictions_`` and :meth:`predict` keep the
    caller's floating dtype (float32 if X and Y are float32, else float64); internally
    everything is computed in float64 as scikit-learn does, and the scores stay
    float64 (as scikit-learn's ``best_score_``).
    Unlike scikit-learn, a 2-D Y with a single column keeps 2-D outputs, so a target
    batch of size one does not change shapes.

    Notes
    -----
    With ``n_samples <= n_features`` the Gram matrix ``Xc Xc'`` is eigendecomposed,
    otherwise ``Xc' Xc``. Per alpha only (n_samples, n_targets) arrays are formed;
    coefficients exist only at the chosen alphas. Flops for the Gram route:
    ``n^2 p + n^3 + (n_alphas + 2) n^2 t`` for fit, ``+ n p t`` for ``coef_``. The
    fitted estimator keeps the centred training X (n_samples, n_features) and the dual
    coefficients (n_samples, n_targets) for the Gram route. See
    :mod:`brainalign._ridge_solvers` for the algebra.
    """

    def __init__(
        self,
        alphas=_DEFAULT_ALPHAS,
        *,
        scoring="pearson",
        alpha_per_target=True,
        fit_intercept=True,
        n_targets_batch=None,
    ):
        self.alphas = alphas
        self.scoring = scoring
        self.alpha_per_target = alpha_per_target
        self.fit_intercept = fit_intercept
        self.n_targets_batch = n_targets_batch

    def fit(self, X, Y):
        """Fit one ridge per column of Y, alphas chosen by exact LOO.

        Parameters
        ----------
        X : array (n_samples, n_features)
        Y : array (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self
        """
        alphas = _check_alphas(self.alphas)
        check_option("scoring", self.scoring, _SCORERS)
        batch = _check_batch(self.n_targets_batch)
        X = _check_x(X)
        Y = np.asarray(Y)
        if Y.ndim not in (1, 2):
            raise InputError(
                f"Y must be 1-D (n_samples,) or 2-D (n_samples, n_targets); got shape {Y.shape}."
            )
        if Y.dtype.kind not in "biuf":
            raise InputError(f"Y must hold real numbers; got dtype {Y.dtype}.")
        if Y.shape[0] != X.shape[0]:
            raise InputError(
                f"X and Y must have the same number of rows (samples); X has {X.shape[0]} "
                f"and Y has {Y.shape[0]}."
            )
        if X.shape[0] < 2:
            raise InputError(f"Leave-one-out needs at least 2 samples; X has {X.shape[0]}.")
        check_finite(Y, "Y")
        if Y.ndim == 2 and Y.shape[1] == 0:
            raise InputError("Y has no targets (0 columns).")
        for stale in ("_coef", "_dual_coef", "_xc"):
            self.__dict__.pop(stale, None)
        self._one_d = Y.ndim == 1
        self._out_dtype = _float_dtype(X.dtype, Y.dtype)
        self._fit(X, Y[:, None] if self._one_d else Y, alphas, batch)
        if self._one_d:
            self.intercept_ = self.intercept_[0]
            self.best_score_ = float(self.best_score_[0])
            self.cv_scores_ = self.cv_scores_[:, 0]
            self.loo_predictions_ = self.loo_predictions_[:, 0]
            self.alpha_ = float(np.atleast_1d(self.alpha_)[0])
        return self

    def _fit(self, X, Y, alphas, batch):
        n_samples, n_features = X.shape
        n_targets = Y.shape[1]
        out_dtype = self._out_dtype
        X = np.asarray(X, dtype=np.float64)
        x_offset = X.mean(axis=0) if self.fit_intercept else np.zeros(n_features)
        xc = X - x_offset if self.fit_intercept else X
        route = "gram" if n_samples <= n_features else "cov"
        basis = solvers.SOLVERS[route](xc, alphas, self.fit_intercept)
        score = _SCORERS[self.scoring]

        step = n_targets if batch is None else batch
        chunks = [slice(s, min(s + step, n_targets)) for s in range(0, n_targets, step)]
        cv_scores = np.empty((len(alphas), n_targets))
        alpha_index = np.empty(n_targets, dtype=np.intp)
        intercept = np.empty(n_targets, dtype=out_dtype)
        loo_predictions = np.empty((n_samples, n_targets), dtype=out_dtype)
        if route == "gram":  # coef_ is materialised lazily from c = G^-1 y
            dual_coef = np.empty((n_samples, n_targets))
        else:  # n_features < n_samples: coef is cheaper than the search, build it now
            coef = np.empty((n_targets, n_features), dtype=out_dtype)

        def prepare(sl):
            y = np.array(Y[:, sl], dtype=np.float64)  # (n, tb)
            y_offset = y.mean(axis=0) if self.fit_intercept else np.zeros(y.shape[1])
            y_scored = _centre_columns(y)  # LOO predictions are scored against this
            yc = y_scored if self.fit_intercept else y
            return yc, y_offset, y_scored, solvers.project(basis, yc)

        def search(sl, prepared):
            yc, _, y_scored, projected = prepared
            work = (np.empty_like(projected), np.empty_like(yc))  # reused for every alpha
            for a in range(len(alphas)):
                errors = solvers.loo_errors(basis, yc, projected, a, work)
                cv_scores[a, sl] = score(y_scored, errors)

        def solve(sl, prepared):
            yc, y_offset, _, projected = prepared
            errors, dual = solvers.loo_solution(basis, yc, projected, alpha_index[sl])
            intercept[sl] = y_offset - solvers.coef_dot(basis, dual, x_offset)
            loo_predictions[:, sl] = yc - errors + y_offset
            if route == "gram":
                dual_coef[:, sl] = dual
            else:
                coef[sl] = solvers.coefficients(route, basis.coef_map, dual)

        if self.alpha_per_target:
            for sl in chunks:
                prepared = prepare(sl)
                search(sl, prepared)
                alpha_index[sl] = _first_argmax(cv_scores[:, sl])
                solve(sl, prepared)
        else:
            prepared = None
            for sl in chunks:
                prepared = prepare(sl)
                search(sl, prepared)
            alpha_index[:] = _first_argmax(cv_scores.mean(axis=1, keepdims=True))[0]
            for sl in chunks:
                solve(sl, prepared if len(chunks) == 1 else prepare(sl))

        if route == "gram":
            self._dual_coef, self._xc = dual_coef, xc
        else:
            self._coef = coef
        self._batch = step
        if self.alpha_per_target:
            self.alpha_ = alphas[alpha_index]
        else:
            self.alpha_ = float(alphas[alpha_index[0]])
        self.best_score_ = cv_scores[alpha_index, np.arange(n_targets)]
        self.cv_scores_ = cv_scores
        self.intercept_ = intercept
        self.loo_predictions_ = loo_predictions
        self.n_features_in_ = n_features

    @property
    def coef_(self):
        if "_coef" not in self.__dict__:
            if "_dual_coef" not in self.__dict__:
                raise AttributeError("'RidgeGCV' object has no attribute 'coef_' (not fitted yet).")
            self._coef = self._materialise_coef()
        return self._coef[0] if self._one_d else self._coef

    def _materialise_coef(self) -> np.ndarray:
        """coef = (Xc' c)' in target batches, written straight into the output."""
        dual, xc = self._dual_coef, self._xc
        n_targets = dual.shape[1]
        coef = np.empty((n_targets, xc.shape[1]), dtype=self._out_dtype)
        step = min(self._batch, _COEF_BATCH)
        for start in range(0, n_targets, step):
            sl = slice(start, min(start + step, n_targets))
            if coef.dtype == np.float64:
                solvers.coefficients("gram", xc, dual[:, sl], out=coef[sl])
            else:
                coef[sl] = solvers.coefficients("gram", xc, dual[:, sl])
        return coef

    def predict(self, X):
        """Predictions ``X @ coef_.T + intercept_``, shape (n, n_targets) or (n,) for 1-D Y.

        For the Gram route, while ``coef_`` has not been needed and the dual form is
        cheaper, this computes ``(X Xc') c + intercept_`` instead (same values up to
        round-off, without materialising ``coef_``).
        """
        if "alpha_" not in self.__dict__:
            raise NotFittedError("This RidgeGCV instance is not fitted yet; call fit(X, Y) first.")
        X = _check_x(X)
        if X.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X.shape[1]} features, but RidgeGCV was fitted with {self.n_features_in_}."
            )
        out_dtype = np.result_type(_float_dtype(X.dtype), self._out_dtype)
        if "_coef" not in self.__dict__:
            n_samples, n_targets = self._dual_coef.shape
            if n_samples * (self.n_features_in_ + n_targets) < self.n_features_in_ * n_targets:
                kernel = np.asarray(X, dtype=np.float64) @ self._xc.T       # (m, n)
                out = kernel @ self._dual_coef + self.intercept_             # (m, t)
                return (out[:, 0] if self._one_d else out).astype(out_dtype, copy=False)
        X = X if X.dtype.kind == "f" else X.astype(np.float64)
        return (X @ self.coef_.T + self.intercept_).astype(out_dtype, copy=False)


_COEF_BATCH = 2048  # targets per block when materialising coef_ (bounds the float64 temporary)


def _first_argmax(scores: np.ndarray) -> np.ndarray:
    """Index of the best alpha per column; NaN never wins, ties go to the first index."""
    return np.argmax(np.where(np.isnan(scores), -np.inf, scores), axis=0)
