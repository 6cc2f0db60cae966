"""Survey-level analyses of Conwell et al. 2024 (SPEC section 1, "Other analyses").

Plain functions, numpy / pandas in and out:

- :func:`effective_dimensionality`  ED = (sum eig)^2 / sum(eig^2) of a covariance
- :func:`model_rsm_similarity`      model-to-model correlation of condensed RDMs
- :func:`classical_mds`             Torgerson (classical) multidimensional scaling
- :func:`controlled_comparison`     ``score ~ factor + subject`` (OLS) or with ``(1 | model)``
- :func:`breakpoints`               continuous piecewise-linear fit of rank-ordered scores
- :func:`spearman_with`             Spearman correlation of scores with a model property
- :func:`bootstrap_ci`              per-model bootstrap CIs across subjects, optionally
  grand-mean-centred (Cousineau-Morey) as in the paper's figures

The paper fit its linear models in R (``stats::lm``, ``lme4::lmer``, CIs and p-values from
``parameters``) and its breakpoints with R ``segmented``; the notes on each function say
where this Python version follows them and where it differs.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from brainalign.rdm import compare_rdms
from brainalign.utils import InputError, check_option, make_rng

__all__ = [
    "effective_dimensionality",
    "model_rsm_similarity",
    "classical_mds",
    "controlled_comparison",
    "diet_pairs",
    "breakpoints",
    "spearman_with",
    "bootstrap_ci",
    "survey_tables",
]


# --------------------------------------------------------------------------------------
# Effective dimensionality
# --------------------------------------------------------------------------------------


def effective_dimensionality(X) -> float:
    """Effective dimensionality (Del Giudice 2021) of the features ``X``.

    ``ED = (sum_i l_i)^2 / sum_i l_i^2`` over the eigenvalues ``l_i`` of the covariance of
    ``X`` (columns centred). Computed without an eigendecomposition, through the smaller
    side: ``sum l = ||Xc||_F^2`` and ``sum l^2 = ||Xc^T Xc||_F^2 = ||Xc Xc^T||_F^2``
    (the feature covariance and the sample Gram matrix share their nonzero eigenvalues).
    The normalisation of the covariance cancels. ED lies in ``[1, rank]``.

    Parameters
    ----------
    X : array (n_samples, n_features)
        E.g. the sparse-random-projection features of the selected layer (SPEC: ED is
        computed on the SRP features).

    Raises
    ------
    InputError
        Not 2-D, fewer than 2 samples, non-finite values, or no variance at all.
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        raise InputError(f"X has shape {X.shape}; expected (n_samples >= 2, n_features >= 1).")
    if X.dtype.kind not in "iuf":
        raise InputError(f"X has dtype {X.dtype}; expected real numbers.")
    X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise InputError("X holds NaN or inf; expected finite features.")
    Xc = X - X.mean(axis=0)
    n, p = Xc.shape
    gram = Xc @ Xc.T if n <= p else Xc.T @ Xc  # the smaller of the two
    total = np.trace(gram)
    if not total > 0:
        raise InputError("X has no variance (every feature is constant); ED is undefined.")
    return float(total**2 / np.sum(gram * gram))


# --------------------------------------------------------------------------------------
# Model-to-model RSA and classical MDS
# --------------------------------------------------------------------------------------


def model_rsm_similarity(rdms: dict, *, method: str = "pearson") -> pd.DataFrame:
    """Square model-by-model correlation between condensed RDMs (or RSMs).

    Parameters
    ----------
    rdms : dict name -> condensed RDM
        All of the same length (scipy ``pdist`` order), e.g. the selected layer of each
        model on the same stimuli. Correlating RDMs (1 - r) or RSMs (r) gives the same
        number.
    method : {'pearson', 'spearman'}
        Second-order correlation; the paper uses Pearson.

    Returns
    -------
    DataFrame, index and columns = the names in ``rdms`` order, ones on the diagonal.
    Use ``1 - result`` as the dissimilarity for :func:`classical_mds`.
    """
    check_option("method", method, ("pearson", "spearman"))
    if not isinstance(rdms, dict) or len(rdms) < 2:
        raise InputError("rdms must be a dict of at least 2 name -> condensed RDM.")
    names = list(rdms)
    mats = [np.asarray(rdms[name], dtype=np.float64) for name in names]
    for name, rdm in zip(names, mats, strict=True):
        if rdm.ndim != 1 or rdm.shape != mats[0].shape:
            raise InputError(
                f"RDM {name!r} has shape {rdm.shape}; expected a condensed RDM of the same "
                f"length as {names[0]!r} {mats[0].shape}."
            )
        if not np.all(np.isfinite(rdm)):
            raise InputError(f"RDM {name!r} holds NaN or inf; expected finite values.")
        if rdm.size < 2 or np.ptp(rdm) == 0:
            raise InputError(f"RDM {name!r} is constant, so its correlations are undefined.")
    stack = np.stack(mats)
    out = np.empty((len(names), len(names)))
    for a in range(len(names)):
        out[a] = compare_rdms(stack[a], stack, method)
    out = (out + out.T) / 2  # exact symmetry
    np.fill_diagonal(out, 1.0)
    return pd.DataFrame(out, index=names, columns=names)


def classical_mds(dissimilarity, n_components: int = 2):
    """Classical (Torgerson) multidimensional scaling, as R's ``cmdscale``.

    ``B = -1/2 J D^2 J`` (``J`` the centring matrix, ``D^2`` the squared
    dissimilarities); the coordinates are the top ``n_components`` eigenvectors of ``B``
    scaled by the square roots of their eigenvalues. For Euclidean distances this recovers
    the configuration up to rotation, reflection and translation (centred at 0).

    The sign of each axis is fixed so that its largest-magnitude coordinate is positive
    (eigenvectors have arbitrary sign). Axes whose eigenvalue is not positive (a
    non-Euclidean dissimilarity) are returned as zeros, with a warning, as ``cmdscale``
    warns.

    Parameters
    ----------
    dissimilarity : array or DataFrame (n, n)
        Symmetric, zero diagonal, finite; e.g. ``1 - model_rsm_similarity(...)``.
    n_components : int
        ``1 <= n_components < n``.

    Returns
    -------
    array (n, n_components), or a DataFrame with the input's index and columns
    ``dim1, dim2, ...`` when a DataFrame is given.
    """
    index = dissimilarity.index if isinstance(dissimilarity, pd.DataFrame) else None
    D = np.asarray(dissimilarity, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[0] < 2:
        raise InputError(f"dissimilarity has shape {D.shape}; expected a square (n, n), n >= 2.")
    n = D.shape[0]
    if not np.all(np.isfinite(D)):
        raise InputError("dissimilarity holds NaN or inf; expected finite values.")
    tol = 1e-8 * max(np.abs(D).max(), 1.0)
    if np.abs(D - D.T).max() > tol or np.abs(np.diag(D)).max() > tol:
        raise InputError("dissimilarity must be symmetric with a zero diagonal.")
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)):
        raise InputError(f"n_components must be an integer, got {n_components!r}.")
    if not 1 <= n_components < n:
        raise InputError(f"n_components must be in [1, {n - 1}] for {n} items, got {n_components}.")
    D2 = ((D + D.T) / 2) ** 2
    B = -0.5 * (D2 - D2.mean(axis=0) - D2.mean(axis=1)[:, None] + D2.mean())  # -1/2 J D2 J
    lam, V = np.linalg.eigh(B)
    lam, V = lam[::-1][:n_components], V[:, ::-1][:, :n_components]
    positive = lam > 1e-10 * max(lam[0], 0.0) if lam[0] > 0 else np.zeros(n_components, bool)
    if not np.all(positive):
        warnings.warn(
            f"classical_mds: only {int(positive.sum())} of the first {n_components} "
            "eigenvalues are > 0; the other axes are set to 0.",
            RuntimeWarning,
            stacklevel=2,
        )
    coords = V * np.sqrt(np.where(positive, lam, 0.0))
    flip = np.sign(coords[np.argmax(np.abs(coords), axis=0), np.arange(n_components)])
    coords = coords * np.where(flip == 0, 1.0, flip)
    if index is None:
        return coords
    return pd.DataFrame(coords, index=index, columns=[f"dim{i + 1}" for i in range(n_components)])


# --------------------------------------------------------------------------------------
# Controlled comparisons (linear models)
# --------------------------------------------------------------------------------------


def controlled_comparison(
    df: pd.DataFrame,
    factor: str,
    *,
    score: str = "score",
    subject: str = "subject",
    model: str | None = None,
    reference=None,
    ci: float = 0.95,
) -> pd.DataFrame:
    """Effect of ``factor`` on brain-predictivity scores, controlling for subject.

    Without ``model``: OLS ``score ~ C(factor, Treatment(reference)) + C(subject)``
    (the paper's ``lm(Score ~ Factor + SubjectID)``), Wald t confidence intervals and
    p-values on the residual degrees of freedom (what R ``parameters`` reports for
    ``lm``). With ``model``: a linear mixed model with the same fixed effects and a random
    intercept per model (``lmer(Score ~ Factor + SubjectID + (1|ModelID))``, used for the
    ImageNet-1K vs -21K pairs), fit by REML with statsmodels ``MixedLM`` (on the
    standardised score, effects scaled back: the same numbers, better conditioned); Wald z
    intervals and p-values (normal approximation, as ``parameters`` does for ``lmer`` by
    default). Rows with a missing value in a used column are dropped (``n_obs`` says how
    many remain).

    Parameters
    ----------
    df : DataFrame
        One row per (model, subject) score.
    factor : str
        Column with the manipulated property (e.g. architecture class).
    score, subject : str
        Columns with the score and the subject id (subject is a fixed effect).
    model : str, optional
        Column with the model id, for the random intercept.
    reference : optional
        Reference level of ``factor`` (e.g. ``"CNN"``); default the first level in sorted
        order (patsy's default).
    ci : float
        Confidence level.

    Returns
    -------
    DataFrame, one row per non-reference level of ``factor``: ``term``, ``level``,
    ``reference``, ``beta`` (difference from the reference), ``se``, ``stat`` (t or z),
    ``ci_low``, ``ci_high``, ``p``, ``test`` (``"Wald t (OLS)"`` or
    ``"Wald z (MixedLM, REML)"``), ``df_resid`` (NaN for the mixed model), ``n_obs``.
    """
    import statsmodels.formula.api as smf

    if not isinstance(df, pd.DataFrame):
        raise InputError(f"df must be a pandas DataFrame, got {type(df).__name__}.")
    if not 0 < ci < 1:
        raise InputError(f"ci must be in (0, 1), got {ci!r}.")
    columns = [score, factor, subject] + ([model] if model is not None else [])
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InputError(f"df has no column(s) {missing}; it has {list(df.columns)}.")
    if len(set(columns)) != len(columns):
        raise InputError(f"score, factor, subject and model must be different columns: {columns}.")
    data = df[columns].dropna().copy()
    data.columns = ["score_", "factor_", "subject_"] + (["model_"] if model is not None else [])
    if not pd.api.types.is_numeric_dtype(data["score_"]):
        raise InputError(f"column {score!r} must be numeric, got {df[score].dtype}.")
    levels = [v.item() if isinstance(v, np.generic) else v for v in data["factor_"].unique()]
    try:
        levels = sorted(levels)  # patsy's order
    except TypeError:  # mixed types
        levels = sorted(levels, key=str)
    if isinstance(reference, np.generic):
        reference = reference.item()
    if len(levels) < 2:
        raise InputError(f"factor {factor!r} needs at least 2 levels, got {levels}.")
    if reference is None:
        reference = levels[0]
    elif reference not in levels:
        raise InputError(f"reference {reference!r} is not a level of {factor!r}; levels are {levels}.")
    n_subjects = data["subject_"].nunique()
    subject_term = " + C(subject_)" if n_subjects > 1 else ""
    formula = f"score_ ~ C(factor_, Treatment(reference={reference!r})){subject_term}"

    unit = 1.0
    if model is None:
        fit = smf.ols(formula, data).fit()
        test, df_resid = "Wald t (OLS)", float(fit.df_resid)
    else:
        # Scores in r units vary by ~0.01: fitting them raw leaves statsmodels' optimiser
        # with a badly scaled variance component ("MLE may be on the boundary"). The model
        # is equivariant, so fit the standardised score and scale the effects back.
        unit = float(data["score_"].std()) or 1.0
        data["score_"] = (data["score_"] - data["score_"].mean()) / unit
        fit = smf.mixedlm(formula, data, groups=data["model_"]).fit(reml=True)
        test, df_resid = "Wald z (MixedLM, REML)", np.nan
    conf = fit.conf_int(alpha=1 - ci) * unit
    rows = []
    for level in levels:
        if level == reference:
            continue
        name = f"C(factor_, Treatment(reference={reference!r}))[T.{level}]"
        if name not in fit.params.index:
            raise InputError(f"level {level!r} of {factor!r} could not be estimated (no data?).")
        rows.append(
            {
                "term": f"{factor}[{level}]",
                "level": level,
                "reference": reference,
                "beta": float(fit.params[name]) * unit,
                "se": float(fit.bse[name]) * unit,
                "stat": float(fit.tvalues[name]),
                "ci_low": float(conf.loc[name, 0]),
                "ci_high": float(conf.loc[name, 1]),
                "p": float(fit.pvalues[name]),
                "test": test,
                "df_resid": df_resid,
                "n_obs": int(fit.nobs),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Breakpoints of rank-ordered scores (segmented regression)
# --------------------------------------------------------------------------------------


def breakpoints(
    y,
    n_breaks: int = 2,
    *,
    x=None,
    n_boot: int = 200,
    ci: float = 0.95,
    seed=0,
    n_grid: int = 60,
    min_points: int = 3,
) -> dict:
    """Continuous piecewise-linear ("segmented") regression with ``n_breaks`` breakpoints.

    Model: ``y = b0 + b1 x + sum_k d_k max(x - psi_k, 0)``, continuous at each
    breakpoint ``psi_k``. The breakpoints minimise the sum of squared errors (SSE):

    1. grid search: every combination of ``n_breaks`` candidate positions among (at most
       ``n_grid``) quantiles of the interior ``x`` values, each segment keeping at least
       ``min_points`` observations; the SSE of every combination comes from one Gram
       matrix of the candidate hinge columns (exact least squares, no per-combination
       refit);
    2. refinement: Nelder-Mead on the profile SSE (coefficients re-solved for each
       ``psi``) from the best grid point, breakpoints continuous.

    Confidence intervals: residual bootstrap (``y* = fitted + resampled residuals``, the
    whole two-step fit repeated ``n_boot`` times), percentile intervals. This is **not**
    R ``segmented``'s method (the paper used ``confint(..., method = "gradient")``, a
    smoothed-score interval, Muggeo 2017), and the intervals will not match the paper's
    (not compared: no R here). Unlike a local (gradient) interval, the bootstrap also
    reflects a flat or multi-modal SSE surface, so it can be wider and asymmetric. The
    fit itself (least squares, continuous broken line) is the model ``segmented`` fits;
    ``segmented`` reaches it by iterative linearisation from starting values, this by an
    exhaustive grid, so it does not depend on starting values.

    Parameters
    ----------
    y : array (n,)
        Scores. Without ``x`` they are sorted in decreasing order and ``x = 1..n`` is the
        rank (rank 1 = best), as in the paper's "score by model rank".
    n_breaks : int
        Number of breakpoints (the paper: 2).
    x : array (n,), optional
        Explicit predictor; then ``y`` is used as given (no sorting).
    n_boot : int
        Bootstrap refits for the CIs (0 for none: CIs are NaN).
    ci : float
        Confidence level.
    seed : int or Generator
        Seeds the bootstrap.
    n_grid : int
        Maximum number of candidate positions per breakpoint in the grid search.
    min_points : int
        Minimum observations in each segment.

    Returns
    -------
    dict with ``breakpoints`` (n_breaks,), ``ci_low``, ``ci_high`` (n_breaks,),
    ``slopes`` (n_breaks + 1, slope of each segment), ``intercept`` (``b0``), ``sse``,
    ``fitted`` (n,), ``x``, ``y`` (as used, i.e. sorted when ``x`` was not given),
    ``breakpoints_boot`` (n_boot, n_breaks).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 1:
        raise InputError(f"y must be 1-D, got shape {y.shape}.")
    if x is None:
        y = np.sort(y)[::-1]
        x = np.arange(1, y.size + 1, dtype=np.float64)
    else:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != y.shape:
            raise InputError(f"x has shape {x.shape} but y has {y.shape}; expected the same.")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise InputError("x and y must be finite (drop NaN scores first).")
    for name, value, low in (("n_breaks", n_breaks, 1), ("min_points", min_points, 2), ("n_grid", n_grid, 2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise InputError(f"n_boot must be an integer >= 0, got {n_boot!r}.")
    if not 0 < ci < 1:
        raise InputError(f"ci must be in (0, 1), got {ci!r}.")
    order = np.argsort(x, kind="stable")
    xs = x[order]
    n_needed = (n_breaks + 1) * min_points
    if np.unique(xs).size < n_needed:
        raise InputError(
            f"{n_breaks} breakpoints with >= {min_points} points per segment need at least "
            f"{n_needed} distinct x values, got {np.unique(xs).size}."
        )
    candidates = _candidate_breaks(xs, n_grid, min_points)
    combos = _valid_combinations(xs, candidates, n_breaks, min_points)
    if combos.size == 0:
        raise InputError("no breakpoint combination leaves enough points in every segment.")

    fitter = _SegmentedFitter(x, candidates, combos, min_points)
    psi = fitter.fit(y)
    coef, sse = _segmented_lstsq(x, y, psi)
    fitted = _design(x, psi) @ coef

    rng = make_rng(seed)
    resid = y - fitted
    boot = np.full((n_boot, n_breaks), np.nan)
    for b in range(n_boot):
        y_star = fitted + rng.choice(resid, size=resid.size, replace=True)
        boot[b] = fitter.fit(y_star)
    alpha = (1 - ci) / 2
    if n_boot:
        ci_low, ci_high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    else:
        ci_low = ci_high = np.full(n_breaks, np.nan)
    return {
        "breakpoints": psi,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "slopes": np.cumsum(coef[1:]),
        "intercept": float(coef[0]),
        "sse": float(sse),
        "fitted": fitted,
        "x": x,
        "y": y,
        "breakpoints_boot": boot,
    }


def _design(x: np.ndarray, psi) -> np.ndarray:
    """Columns 1, x, (x - psi_k)_+ for each breakpoint."""
    return np.column_stack([np.ones_like(x), x] + [np.maximum(x - p, 0.0) for p in psi])


def _segmented_lstsq(x, y, psi):
    coef, *_ = np.linalg.lstsq(_design(x, psi), y, rcond=None)
    r = y - _design(x, psi) @ coef
    return coef, float(r @ r)


def _candidate_breaks(xs: np.ndarray, n_grid: int, min_points: int) -> np.ndarray:
    """At most ``n_grid`` candidate positions between the ``min_points``-th x values from each end."""
    inner = np.unique(xs[min_points - 1 : xs.size - min_points + 1])
    if inner.size > n_grid:
        inner = np.unique(np.quantile(inner, np.linspace(0, 1, n_grid)))
    return inner


def _valid_combinations(xs, candidates, n_breaks, min_points) -> np.ndarray:
    """Index rows into ``candidates`` (increasing) leaving >= ``min_points`` points per segment."""
    combos = np.array(list(combinations(range(candidates.size), n_breaks)), dtype=np.intp)
    if combos.size == 0:
        return combos.reshape(0, n_breaks)
    psi = candidates[combos]
    edges = np.column_stack([np.full(len(psi), -np.inf), psi, np.full(len(psi), np.inf)])
    # points in (edge_k, edge_k+1]
    counts = np.diff(np.searchsorted(xs, edges, side="right"), axis=1)
    return combos[np.all(counts >= min_points, axis=1)]


class _SegmentedFitter:
    """Breakpoint search for a fixed ``x``: grid over candidate combinations, then refinement.

    With ``P`` the projection off ``[1, x]``, the SSE of the design ``[1, x, H]`` is
    ``|Py|^2 - (H^T P y)^T (H^T P H)^+ (H^T P y)``. The hinge columns ``H`` of every grid
    combination are columns of one matrix of all candidate hinges, so the inverses of
    ``H^T P H`` are computed once for all combinations (they do not depend on ``y``), and
    each fit (or bootstrap refit) costs one product with ``y`` plus the refinement.
    """

    def __init__(self, x, candidates, combos, min_points):
        self.x, self.candidates, self.combos = x, candidates, combos
        self.xs = np.sort(x)
        self.lo, self.hi = self.xs[min_points - 1], self.xs[-min_points]
        self.min_points = min_points
        self.q, _ = np.linalg.qr(np.column_stack([np.ones_like(x), x]))
        self.h_r = self._residualize(np.maximum(x[None, :] - candidates[:, None], 0.0))  # (g, n)
        gram = self.h_r @ self.h_r.T
        self.inv_sub = np.linalg.pinv(gram[combos[:, :, None], combos[:, None, :]])  # (c, K, K)
        self.step = np.diff(candidates).min() if candidates.size > 1 else 1.0

    def _residualize(self, rows):
        return rows - (rows @ self.q) @ self.q.T

    def grid_sse(self, y) -> np.ndarray:
        y_r = self._residualize(y)
        rhs = (self.h_r @ y_r)[self.combos]  # (c, K)
        return y_r @ y_r - np.einsum("ck,ckl,cl->c", rhs, self.inv_sub, rhs)

    def profile_sse(self, psi, y) -> float:
        psi = np.sort(psi)
        if psi[0] < self.lo or psi[-1] > self.hi:
            return np.inf
        edges = np.concatenate([[-np.inf], psi, [np.inf]])
        if np.any(np.diff(np.searchsorted(self.xs, edges, side="right")) < self.min_points):
            return np.inf
        y_r = self._residualize(y)
        h_r = self._residualize(np.maximum(self.x[None, :] - psi[:, None], 0.0))
        rhs = h_r @ y_r
        return float(y_r @ y_r - rhs @ np.linalg.pinv(h_r @ h_r.T) @ rhs)

    def fit(self, y) -> np.ndarray:
        start = self.candidates[self.combos[int(np.argmin(self.grid_sse(y)))]]
        simplex = np.vstack([start] + [start + self.step * row for row in np.eye(start.size)])
        res = optimize.minimize(
            self.profile_sse,
            start,
            args=(y,),
            method="Nelder-Mead",
            options={
                "initial_simplex": simplex,
                "xatol": 1e-6 * max(np.ptp(self.x), 1.0),
                "fatol": 1e-12 * max(float(y @ y), 1e-300),
            },
        )
        return np.sort(res.x) if res.fun <= self.profile_sse(start, y) else start


# --------------------------------------------------------------------------------------
# Correlations with model properties, bootstrap CIs
# --------------------------------------------------------------------------------------


def spearman_with(df: pd.DataFrame, column: str, *, score: str = "score") -> dict:
    """Spearman correlation between ``score`` and a model property ``column``.

    E.g. top-1 accuracy or parameter count (SPEC). Rows where either value is missing
    are skipped. Returns ``rho``, ``p`` (two-sided, :func:`scipy.stats.spearmanr`), ``n``
    (rows used) and ``n_dropped``.
    """
    if not isinstance(df, pd.DataFrame):
        raise InputError(f"df must be a pandas DataFrame, got {type(df).__name__}.")
    for c in (column, score):
        if c not in df.columns:
            raise InputError(f"df has no column {c!r}; it has {list(df.columns)}.")
    a = pd.to_numeric(df[score], errors="coerce")
    b = pd.to_numeric(df[column], errors="coerce")
    keep = a.notna() & b.notna()
    n = int(keep.sum())
    if n < 3:
        raise InputError(f"spearman_with needs at least 3 rows with both {score!r} and {column!r}, got {n}.")
    res = stats.spearmanr(a[keep], b[keep])
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": n, "n_dropped": int(len(df) - n)}


def bootstrap_ci(
    values,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed=0,
    grand_mean_centered: bool = False,
) -> pd.DataFrame:
    """Percentile bootstrap CIs of the mean across subjects, one row per model.

    Parameters
    ----------
    values : array or DataFrame, (n_subjects,) or (n_subjects, n_models)
        Scores; rows = subjects (resampled with replacement, whole rows at once so that
        the models stay paired), columns = models. No missing values.
    n_boot, ci, seed
        Bootstrap samples, confidence level, seed.
    grand_mean_centered : bool
        Within-subject ("grand-mean-centred") intervals, our reading of the paper's
        figure CIs (its reference 137: Morey 2008, the correction to Cousineau 2005):

        1. Cousineau normalisation: every score becomes
           ``y[s, m] - mean_m y[s, :] + mean_{s,m} y`` (each subject's mean across
           models replaced by the grand mean), which removes between-subject offsets
           (subject 1 being better fit overall) that are not informative about model
           differences;
        2. bootstrap over subjects of the per-model means of the normalised scores;
        3. Morey's correction: the bootstrap deviations from the mean are scaled by
           ``sqrt(M / (M - 1))`` (M = number of models), since normalising shrinks the
           variance by ``(M - 1) / M``.

        Needs a 2-D input with at least 2 models. The mean is unchanged by the
        normalisation; only the interval narrows.

    Returns
    -------
    DataFrame with ``mean``, ``ci_low``, ``ci_high``, ``n`` (subjects); index = the
    input's columns (a DataFrame), ``0..n_models-1`` (a 2-D array) or ``[0]`` (1-D).

    Notes
    -----
    With few subjects (NSD: 4) a bootstrap has few distinct resamples (35 for 4) and
    percentile intervals are coarse; they are descriptive, as in the paper's figures.
    """
    columns = values.columns if isinstance(values, pd.DataFrame) else None
    Y = np.asarray(values, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] < 2:
        raise InputError(f"values has shape {np.shape(values)}; expected (n_subjects >= 2[, n_models]).")
    if not np.all(np.isfinite(Y)):
        raise InputError("values holds NaN or inf; every subject needs a score for every model.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise InputError(f"n_boot must be an integer >= 1, got {n_boot!r}.")
    if not 0 < ci < 1:
        raise InputError(f"ci must be in (0, 1), got {ci!r}.")
    n_sub, n_mod = Y.shape
    factor = 1.0
    if grand_mean_centered:
        if n_mod < 2:
            raise InputError("grand_mean_centered needs 2-D values with at least 2 models (columns).")
        Y = Y - Y.mean(axis=1, keepdims=True) + Y.mean()
        factor = np.sqrt(n_mod / (n_mod - 1))
    mean = Y.mean(axis=0)
    rng = make_rng(seed)
    idx = rng.integers(0, n_sub, size=(n_boot, n_sub))
    boot = Y[idx].mean(axis=1)  # (n_boot, n_models)
    boot = mean + factor * (boot - mean)
    alpha = (1 - ci) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=0)
    index = columns if columns is not None else pd.RangeIndex(n_mod)
    return pd.DataFrame({"mean": mean, "ci_low": low, "ci_high": high, "n": n_sub}, index=index)


# --------------------------------------------------------------------------------------
# The survey tables the workflow writes (from the per-model selected-layer results)
# --------------------------------------------------------------------------------------

META_COLUMNS = ("arch_class", "task", "training_data", "trained", "source", "architecture", "n_params",
                "top1")
# Factor -> models it is compared over: architecture class and training across all models;
# task and input diet among trained models only (random models have neither), as in the paper.
COMPARISONS = {"arch_class": "all", "trained": "all", "task": "trained", "training_data": "trained"}


def diet_pairs(per: pd.DataFrame) -> pd.DataFrame:
    """Rows of trained ImageNet-1K / ImageNet-21K models whose architecture has both diets.

    Adds ``diet`` (``ImageNet-1K`` or ``ImageNet-21K``; 21K pre-training with or without 1K
    fine-tuning counts as 21K) and ``arch_base`` (the architecture without its weight tag),
    the grouping of the paired mixed model (the paper's ImageNet-1K vs -21K comparison).
    """
    if not {"training_data", "architecture", "trained"} <= set(per.columns):
        return per.iloc[:0].assign(diet=[], arch_base=[])
    d = per[per["trained"].astype(bool)].copy()
    data = d["training_data"].astype(str)
    d["diet"] = np.where(data == "ImageNet-1K", "ImageNet-1K",
                         np.where(data.str.startswith("ImageNet-21K"), "ImageNet-21K", ""))
    d = d[d["diet"] != ""]
    d["arch_base"] = [name.split(".", 1)[0] for name in d["architecture"].astype(str)]
    both = d.groupby("arch_base")["diet"].nunique()
    return d[d["arch_base"].isin(both[both == 2].index)]


def survey_tables(selected: pd.DataFrame, layers: pd.DataFrame, meta: pd.DataFrame,
                  selected_rdms: dict, *, roi: str = "OTC", n_breaks: int = 2, seed=0) -> dict:
    """All survey analyses of one ROI, as tidy tables.

    Parameters
    ----------
    selected : the workflow's ``selected_layers`` table (model, subject, roi, metric,
        selected_layer, score, ceiling, explainable_variance, ...).
    layers : the per-layer scores (for the ``effective_dim`` of each layer).
    meta : the model table (``config/models.csv``).
    selected_rdms : model -> {(subject, roi, metric): test RDM of the selected layer}.

    Returns
    -------
    dict of DataFrames: ``per_subject`` (model x subject x metric scores with metadata),
    ``models`` (one row per model: mean cRSA / veRSA, explainable variance, effective
    dimensionality of the veRSA-selected layer, veRSA rank, metadata), ``comparisons``
    (controlled comparisons ``score ~ factor + subject`` of :data:`COMPARISONS` over the
    levels that have >= 2 models, when there are two such levels; and the paired ImageNet-1K
    vs -21K mixed model of :func:`diet_pairs`), ``breakpoints`` (segmented
    regression of the rank-ordered veRSA scores; empty with fewer than 4 models per
    segment), ``correlations`` (Spearman of veRSA with parameters, top-1, ED),
    ``similarity_<metric>`` (model-to-model RSM similarity of the selected layers,
    RDMs averaged over subjects) and ``mds_<metric>`` (classical MDS, 2-D).
    """
    meta = meta[["model", *[c for c in META_COLUMNS if c in meta.columns]]]
    per = selected[(selected["roi"] == roi) & selected["metric"].isin(["crsa", "versa"])]
    if per.empty:
        raise InputError(f"No cRSA/veRSA scores for ROI {roi!r} in the selected-layer table.")
    per = per.drop(columns=[c for c in META_COLUMNS if c in per.columns]).merge(meta, on="model", how="left")
    ed = layers.drop_duplicates(["model", "layer"]).set_index(["model", "layer"])["effective_dim"]
    out = {"per_subject": per}

    wide = per.pivot_table(index="model", columns="metric", values="score", aggfunc="mean")
    ev = per.pivot_table(index="model", columns="metric", values="explainable_variance", aggfunc="mean")
    models = wide.join(ev.add_prefix("ev_"))
    v = per[per["metric"] == "versa"]
    models["effective_dim"] = [
        np.nanmean([ed.get((m, layer), np.nan) for layer in v.loc[v["model"] == m, "selected_layer"]])
        if (v["model"] == m).any() else np.nan
        for m in models.index
    ]
    models = models.reset_index().merge(meta, on="model", how="left")
    if "versa" in models:
        models["rank"] = models["versa"].rank(ascending=False, method="first")
    out["models"] = models

    comparisons = []
    for factor, over in COMPARISONS.items():
        if factor not in models:
            continue
        pool = per if over == "all" else per[per["trained"].astype(bool)]
        counts = pool.groupby(factor)["model"].nunique()
        counts = counts[counts >= 2]  # levels with a single model cannot be told from that model
        if len(counts) < 2:
            continue
        pool = pool[pool[factor].isin(counts.index)]
        for metric in ("crsa", "versa"):
            res = controlled_comparison(pool[pool["metric"] == metric], factor, score="score",
                                        subject="subject")
            comparisons.append(res.assign(metric=metric, factor=factor, models=over, roi=roi))
    pairs = diet_pairs(per)
    if pairs["arch_base"].nunique() >= 2:
        for metric in ("crsa", "versa"):
            res = controlled_comparison(pairs[pairs["metric"] == metric], "diet", score="score",
                                        subject="subject", model="arch_base", reference="ImageNet-1K")
            comparisons.append(res.assign(metric=metric, factor="diet (paired)",
                                          models="trained, paired by architecture", roi=roi))
    out["comparisons"] = pd.concat(comparisons, ignore_index=True) if comparisons else pd.DataFrame()

    ranked = models.dropna(subset=["versa"]).sort_values("versa", ascending=False)
    if len(ranked) >= 4 * (n_breaks + 1):
        br = breakpoints(ranked["versa"].to_numpy(), n_breaks,
                         x=np.arange(1, len(ranked) + 1, dtype=float), seed=seed)
        out["breakpoints"] = pd.DataFrame({"breakpoint": np.atleast_1d(br["breakpoints"]),
                                           "ci_low": br["ci_low"], "ci_high": br["ci_high"],
                                           "roi": roi, "n_models": len(ranked)})
        out["_breaks"] = {"breakpoints": br["breakpoints"], "x": np.arange(1, len(ranked) + 1),
                          "fitted": br["fitted"]}
    else:
        out["breakpoints"] = pd.DataFrame(columns=["breakpoint", "ci_low", "ci_high", "roi", "n_models"])
        out["_breaks"] = None

    correlations = []
    for column in ("n_params", "top1", "effective_dim"):
        if column in models and models[column].notna().sum() >= 3 and "versa" in models:
            r = spearman_with(models, column, score="versa")
            correlations.append({"property": column, "roi": roi, **r})
    out["correlations"] = pd.DataFrame(correlations)

    for metric in ("crsa", "versa"):
        rdms = {}
        for model, per_key in selected_rdms.items():
            stack = [rdm for (subject, r, m), rdm in per_key.items() if r == roi and m == metric]
            if stack:
                rdm = np.mean(stack, axis=0)
                if not np.all(np.isfinite(rdm)) or np.ptp(rdm) == 0:
                    # e.g. an untrained network whose selected layer maps every image alike
                    warnings.warn(f"{model}: the selected-layer {metric} RDM in {roi} is constant or "
                                  "non-finite; left out of the model-to-model similarity and MDS.",
                                  stacklevel=2)
                    continue
                rdms[model] = rdm
        if len(rdms) >= 3:
            sim = model_rsm_similarity(rdms)
            out[f"similarity_{metric}"] = sim
            out[f"mds_{metric}"] = classical_mds(1.0 - sim, n_components=2)
    return out
