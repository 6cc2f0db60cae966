"""Group statistics for time-resolved and space-resolved RSA (Cichy et al. 2016).

Thin public functions over a few private engines:

- :func:`time_resolved_rsa`      model RDM vs one RDM per time point (vectorised)
- :func:`sign_permutation_test`  random-effects sign-flip test over subjects, per element
- :func:`cluster_test`           cluster-extent correction via
  :func:`mne.stats.permutation_cluster_1samp_test`, Bonferroni over layers/models
- :func:`fdr`                    Benjamini-Hochberg via :func:`mne.stats.fdr_correction`
- :func:`peak_latency`, :func:`bootstrap_peak_latency`, :func:`bootstrap_difference`
                                 peak latencies and percentile-bootstrap CIs over subjects
- :func:`layer_order_correlation` Spearman(layer number, value) per subject, sign-permutation p
- :func:`summary_rdm`            whole-network RDM (per-layer PCA, concatenate, 1 - Spearman)

Engines: :func:`_sign_flip_counts` (every sign-permutation p value in this module),
:func:`_bootstrap_weights` (every bootstrap over subjects). All randomness goes through
``seed`` (an int or a :class:`numpy.random.Generator`, see :func:`brainalign.utils.make_rng`).

Sign-permutation p values count the observed labelling as one of the permutations, as MNE
does, so they are never 0: ``p >= 1 / n_permutations`` (``1 / 2**n_subjects`` when exact).
"""

from __future__ import annotations

import inspect
import itertools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy import stats as sp_stats

from brainalign.rdm import compare_rdms, compute_rdm
from brainalign.utils import InputError, check_finite, check_option, make_rng

__all__ = [
    "time_resolved_rsa",
    "sign_permutation_test",
    "cluster_test",
    "cluster_forming_threshold",
    "ClusterResult",
    "fdr",
    "peak_latency",
    "bootstrap_peak_latency",
    "bootstrap_difference",
    "BootstrapResult",
    "layer_order_correlation",
    "LayerOrderResult",
    "summary_rdm",
]

TAILS = (-1, 0, 1)
CLUSTER_STATISTICS = ("extent", "mass")
FDR_METHODS = ("indep", "negcorr")
_BATCH_ELEMENTS = 2**23  # (permutations or bootstraps) x elements per product: 64 MiB float64


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------
def _as_float_array(x, what: str, min_ndim: int = 1, max_ndim: int | None = None) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise InputError(f"{what}: expected a numeric array, got dtype {x.dtype}.")
    if x.ndim < min_ndim or (max_ndim is not None and x.ndim > max_ndim):
        want = f"{min_ndim}" if max_ndim == min_ndim else f"{min_ndim} to {max_ndim or 'any'}"
        raise InputError(f"{what}: expected an array with {want} dimensions, got shape {x.shape}.")
    if x.size == 0:
        raise InputError(f"{what}: got an empty array of shape {x.shape}.")
    check_finite(x, what)
    return x.astype(np.float64, copy=False)


def _check_n_subjects(x: np.ndarray, what: str, minimum: int = 2) -> int:
    n = x.shape[0]
    if n < minimum:
        raise InputError(
            f"{what}: the first axis holds subjects and needs at least {minimum}, got {n} (shape {x.shape})."
        )
    return n


def _check_count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name!r} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_probability(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise InputError(f"{name!r} must be a number in (0, 1), got {value!r}.")
    if not 0.0 < float(value) < 1.0:
        raise InputError(f"{name!r} must be in (0, 1), got {value!r}.")
    return float(value)


def _check_tail(tail) -> int:
    if isinstance(tail, bool):
        tail = repr(tail)  # fails the check below with a clear message
    return int(check_option("tail", tail, TAILS))


# ---------------------------------------------------------------------------------------------
# Time-resolved RSA
# ---------------------------------------------------------------------------------------------
def time_resolved_rsa(model_rdm, meg_rdms, method: str = "spearman") -> np.ndarray:
    """Similarity of one model RDM with an RDM per time point (Cichy 2016: Spearman).

    Parameters
    ----------
    model_rdm : array (n_pairs,)
        Condensed model RDM (:func:`brainalign.rdm.compute_rdm` order).
    meg_rdms : array (n_times, n_pairs) or (..., n_times, n_pairs)
        One condensed brain RDM per time point (any leading axes, e.g. subjects).
    method : {"spearman", "pearson"}

    Returns
    -------
    r : array (n_times,) or (..., n_times)
        Correlation at each time point; NaN where a brain RDM is constant.
    """
    check_option("method", method, ("spearman", "pearson"))
    model_rdm = _as_float_array(model_rdm, "time_resolved_rsa: model_rdm", 1, 1)
    meg_rdms = _as_float_array(meg_rdms, "time_resolved_rsa: meg_rdms", 2)
    if meg_rdms.shape[-1] != model_rdm.shape[0]:
        raise InputError(
            f"time_resolved_rsa: the model RDM has {model_rdm.shape[0]} pairs but meg_rdms has "
            f"shape {meg_rdms.shape}; the last axis must hold the same condensed pairs."
        )
    if model_rdm.shape[0] < 3:
        raise InputError(
            f"time_resolved_rsa: a correlation needs at least 3 pairs, got {model_rdm.shape[0]}."
        )
    lead = meg_rdms.shape[:-1]
    r = compare_rdms(model_rdm, meg_rdms.reshape(-1, meg_rdms.shape[-1]), method)
    return np.asarray(r).reshape(lead)


# ---------------------------------------------------------------------------------------------
# Sign-permutation engine and test
# ---------------------------------------------------------------------------------------------
def _sign_matrix(n_subjects: int, n_permutations: int, seed) -> np.ndarray:
    """Sign vectors (n_perm, n_subjects), first row the identity (all +1).

    Exact: all ``2**n_subjects`` sign vectors when that is <= ``n_permutations``.
    Otherwise the identity plus ``n_permutations - 1`` vectors drawn with replacement,
    ``rng.integers(0, 2, (n_permutations - 1, n_subjects)) * 2 - 1``.
    """
    if 2**n_subjects <= n_permutations:
        signs = np.array(list(itertools.product((1, -1), repeat=n_subjects)), dtype=np.float64)
        return signs  # row 0 is all +1
    rng = make_rng(seed)
    drawn = rng.integers(0, 2, size=(n_permutations - 1, n_subjects)) * 2 - 1
    return np.vstack([np.ones((1, n_subjects)), drawn]).astype(np.float64)


def _sign_flip_counts(x2d: np.ndarray, n_permutations: int, seed, tail: int):
    """Engine: observed mean and sign-flip p value per column of ``x2d`` (n_subjects, n_el).

    The statistic is the mean over subjects. Under sign flips the sum of squares is fixed,
    so the one-sample t statistic is a monotone function of the mean and gives the same p.
    """
    n_subjects, n_el = x2d.shape
    signs = _sign_matrix(n_subjects, n_permutations, seed)
    n_perm = signs.shape[0]
    observed = x2d.mean(axis=0)
    # tolerance for sums evaluated in a different order (ties of exact enumeration)
    tol = 1e-12 * np.maximum(np.abs(x2d).sum(axis=0) / n_subjects, 1e-300)
    if tail == 1:
        ref = observed - tol
    elif tail == -1:
        ref = observed + tol
    else:
        ref = np.abs(observed) - tol
    counts = np.zeros(n_el, dtype=np.int64)
    batch = max(1, _BATCH_ELEMENTS // max(n_el, 1))
    for start in range(0, n_perm, batch):
        null = signs[start : start + batch] @ x2d / n_subjects  # (batch, n_el)
        if tail == 1:
            counts += (null >= ref).sum(axis=0)
        elif tail == -1:
            counts += (null <= ref).sum(axis=0)
        else:
            counts += (np.abs(null) >= ref).sum(axis=0)
    return observed, counts / n_perm


def sign_permutation_test(x, n_permutations: int = 10000, seed=0, tail: int = 1):
    """Random-effects sign-permutation test over subjects, one p value per element.

    Each subject's data are multiplied by +1 or -1 (the same sign for all of that subject's
    elements); the statistic is the mean over subjects (equivalent to the one-sample t, see
    :func:`_sign_flip_counts`). p values are uncorrected (no max-statistic): correct them
    with :func:`cluster_test` or :func:`fdr`.

    Parameters
    ----------
    x : array (n_subjects, ...)
        E.g. (n_subjects, n_times) RSA time courses, or (n_subjects,) per-subject values.
    n_permutations : int
        Exact enumeration of all ``2**n_subjects`` sign vectors when that is <= this number;
        otherwise the observed labelling plus ``n_permutations - 1`` random sign vectors
        drawn with replacement.
    seed : int | numpy.random.Generator
        Used only for the random (non-exact) case.
    tail : {1, -1, 0}
        1: H1 mean > 0; -1: mean < 0; 0: two-sided (|mean|).

    Returns
    -------
    p : array (...) or float
        Fraction of permutations (observed included) at least as extreme as the observed mean.
    """
    tail = _check_tail(tail)
    n_permutations = _check_count(n_permutations, "n_permutations")
    x = _as_float_array(x, "sign_permutation_test: x", 1)
    _check_n_subjects(x, "sign_permutation_test: x")
    _, p = _sign_flip_counts(x.reshape(x.shape[0], -1), n_permutations, seed, tail)
    p = p.reshape(x.shape[1:])
    return float(p) if p.ndim == 0 else p


# ---------------------------------------------------------------------------------------------
# Cluster correction (MNE)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterResult:
    """Output of :func:`cluster_test`.

    Attributes
    ----------
    mask : bool array (x.shape[1:])
        Elements in any cluster with ``p < alpha`` (the Bonferroni-corrected cluster p).
    t_obs : array (x.shape[1:])
        One-sample t statistic per element.
    clusters : list of bool arrays (x.shape[1:])
        Every supra-threshold cluster, significant or not; empty (and ``h0`` empty) when no
        element passes the cluster-forming threshold.
    cluster_p_values : array (n_clusters,)
    h0 : array (n_permutations,)
        Max cluster statistic of each permutation (MNE's ``H0``).
    threshold : float
        The cluster-forming t threshold.
    alpha : float
        The cluster p threshold after Bonferroni (``cluster_p / bonferroni``).
    """

    mask: np.ndarray
    t_obs: np.ndarray
    clusters: list
    cluster_p_values: np.ndarray
    h0: np.ndarray
    threshold: float
    alpha: float


def cluster_forming_threshold(n_subjects: int, cluster_forming_p: float = 0.05, tail: int = 1) -> float:
    """t threshold of a one-sample t test with ``n_subjects - 1`` degrees of freedom.

    tail 1: ``t.ppf(1 - p)``; tail -1: ``t.ppf(p)`` (negative); tail 0: ``t.ppf(1 - p / 2)``
    (MNE then thresholds ``|t|``).
    """
    tail = _check_tail(tail)
    p = _check_probability(cluster_forming_p, "cluster_forming_p")
    n_subjects = _check_count(n_subjects, "n_subjects", 2)
    df = n_subjects - 1
    if tail == 1:
        return float(sp_stats.t.ppf(1.0 - p, df))
    if tail == -1:
        return float(sp_stats.t.ppf(p, df))
    return float(sp_stats.t.ppf(1.0 - p / 2.0, df))


def cluster_test(
    x,
    n_permutations: int = 10000,
    cluster_p: float = 0.05,
    cluster_forming_p: float = 0.05,
    tail: int = 1,
    bonferroni: int = 1,
    seed=0,
    adjacency=None,
    statistic: str = "extent",
    n_jobs=None,
    verbose=None,
) -> ClusterResult:
    """Cluster-corrected one-sample sign-permutation test (Cichy 2016), via MNE.

    Elements whose one-sample t exceeds the threshold for ``cluster_forming_p`` (one-sided by
    default) form clusters; each cluster's statistic is compared with the permutation
    distribution of the maximum cluster statistic under random sign flips of subjects
    (:func:`mne.stats.permutation_cluster_1samp_test`). A cluster is significant when its p
    is below ``cluster_p / bonferroni`` (Bonferroni over layers, models or hemispheres).

    Parameters
    ----------
    x : array (n_subjects, n_times), (n_subjects, X, Y, Z) or (n_subjects, n_elements)
        Time courses or maps per subject (e.g. RSA minus 0, or a difference of two models).
        Without ``adjacency`` the elements form a regular lattice (neighbours in time, or
        face-neighbours in the volume).
    n_permutations : int
        MNE enumerates all sign flips exactly when ``2**(n_subjects - (tail == 0))`` is
        <= this number.
    cluster_p : float
        Cluster p threshold before Bonferroni.
    cluster_forming_p : float
        Per-element p threshold that defines clusters (see :func:`cluster_forming_threshold`).
    tail : {1, -1, 0}
    bonferroni : int
        Number of tests (layers, models ...) the cluster p threshold is divided by.
    seed : int | numpy.random.Generator
        Passed to MNE as ``rng`` (MNE >= 1.13) or ``seed`` (older MNE).
    adjacency : scipy.sparse matrix (n_elements, n_elements) | None
        Custom adjacency (e.g. searchlight neighbours in a brain mask); needs 2-D ``x``.
    statistic : {"extent", "mass"}
        "extent": number of elements (each element weighted equally, as in the paper;
        MNE ``t_power=0``); "mass": sum of t (MNE ``t_power=1``).
    n_jobs, verbose
        Passed to MNE.

    Returns
    -------
    ClusterResult
    """
    tail = _check_tail(tail)
    check_option("statistic", statistic, CLUSTER_STATISTICS)
    n_permutations = _check_count(n_permutations, "n_permutations")
    bonferroni = _check_count(bonferroni, "bonferroni")
    cluster_p = _check_probability(cluster_p, "cluster_p")
    x = _as_float_array(x, "cluster_test: x", 2)
    n_subjects = _check_n_subjects(x, "cluster_test: x", minimum=3)
    if adjacency is None:
        if x.ndim not in (2, 4):
            raise InputError(
                "cluster_test: x must be (n_subjects, n_times) or (n_subjects, X, Y, Z), got "
                f"shape {x.shape}."
            )
    else:
        if not sparse.issparse(adjacency):
            raise InputError(f"cluster_test: adjacency must be a scipy.sparse matrix, got {type(adjacency)}.")
        if x.ndim != 2 or adjacency.shape != (x.shape[1], x.shape[1]):
            raise InputError(
                f"cluster_test: with an adjacency of shape {adjacency.shape}, x must be "
                f"(n_subjects, {adjacency.shape[0]}); got shape {x.shape}."
            )
    threshold = cluster_forming_threshold(n_subjects, cluster_forming_p, tail)
    return _cluster_engine(
        x,
        threshold=threshold,
        n_permutations=n_permutations,
        tail=tail,
        alpha=cluster_p / bonferroni,
        seed=seed,
        adjacency=adjacency,
        t_power=0 if statistic == "extent" else 1,
        n_jobs=n_jobs,
        verbose=verbose,
    )


def _cluster_engine(
    x, threshold, n_permutations, tail, alpha, seed, adjacency, t_power, n_jobs, verbose
) -> ClusterResult:
    from mne.stats import permutation_cluster_1samp_test

    # MNE >= 1.13 takes ``rng`` (an int seeds numpy.random.default_rng); older MNE ``seed``
    # (an int seeds a legacy RandomState), so the same int gives other draws there.
    rng_arg = "rng" if "rng" in inspect.signature(permutation_cluster_1samp_test).parameters else "seed"
    with warnings.catch_warnings():  # an empty result says it: no supra-threshold element
        warnings.filterwarnings("ignore", message="No clusters found", category=RuntimeWarning)
        t_obs, clusters, cluster_pv, h0 = permutation_cluster_1samp_test(
            x,
            threshold=threshold,
            n_permutations=n_permutations,
            tail=tail,
            adjacency=adjacency,
            n_jobs=n_jobs,
            t_power=t_power,
            out_type="mask",
            verbose=verbose,
            **{rng_arg: seed},
        )
    shape = x.shape[1:]
    masks = []
    for c in clusters:  # bool masks, or slices for 1-D data without adjacency
        m = np.zeros(shape, dtype=bool)
        m[c] = True
        masks.append(m)
    clusters = masks
    cluster_pv = np.asarray(cluster_pv, dtype=np.float64)
    mask = np.zeros(x.shape[1:], dtype=bool)
    for c, p in zip(clusters, cluster_pv, strict=True):
        if p < alpha:
            mask |= c
    return ClusterResult(
        mask=mask,
        t_obs=np.asarray(t_obs).reshape(x.shape[1:]),
        clusters=clusters,
        cluster_p_values=cluster_pv,
        h0=np.asarray(h0),
        threshold=float(threshold),
        alpha=float(alpha),
    )


# ---------------------------------------------------------------------------------------------
# FDR
# ---------------------------------------------------------------------------------------------
def fdr(pvals, alpha: float = 0.05, method: str = "indep"):
    """Benjamini-Hochberg FDR over all elements of ``pvals`` (any shape).

    Parameters
    ----------
    pvals : array
    alpha : float
    method : {"indep", "negcorr"}
        "indep": Benjamini-Hochberg; "negcorr": Benjamini-Yekutieli.

    Returns
    -------
    reject : bool array (pvals.shape)
    pvals_corrected : array (pvals.shape)
    """
    from mne.stats import fdr_correction

    check_option("method", method, FDR_METHODS)
    alpha = _check_probability(alpha, "alpha")
    p = _as_float_array(pvals, "fdr: pvals", 0)
    if np.any((p < 0) | (p > 1)):
        raise InputError(f"fdr: p values must lie in [0, 1]; got min {p.min()}, max {p.max()}.")
    shape = p.shape
    reject, corrected = fdr_correction(p.ravel(), alpha=alpha, method=method)
    return np.asarray(reject, dtype=bool).reshape(shape), np.asarray(corrected).reshape(shape)


# ---------------------------------------------------------------------------------------------
# Peak latencies and bootstrap over subjects
# ---------------------------------------------------------------------------------------------
def _check_times(times, n_times: int, tmin, tmax, what: str) -> np.ndarray:
    times = _as_float_array(times, f"{what}: times", 1, 1)
    if times.shape[0] != n_times:
        raise InputError(
            f"{what}: times has {times.shape[0]} entries but the time courses have {n_times} "
            "time points (last axis)."
        )
    if times.shape[0] > 1 and np.any(np.diff(times) <= 0):
        raise InputError(f"{what}: times must be strictly increasing.")
    window = np.ones(n_times, dtype=bool)
    if tmin is not None:
        window &= times >= tmin
    if tmax is not None:
        window &= times <= tmax
    if not window.any():
        raise InputError(
            f"{what}: no time point in the window [{tmin}, {tmax}] (times span {times[0]} to {times[-1]})."
        )
    return window


def _peak(courses: np.ndarray, times: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Time of the maximum along the last axis within ``window`` (first one on ties)."""
    idx = np.flatnonzero(window)
    return times[idx[np.argmax(courses[..., idx], axis=-1)]]


def peak_latency(timecourses, times, tmin=None, tmax=None):
    """Time of the maximum of each time course (first maximum on ties).

    Parameters
    ----------
    timecourses : array (..., n_times)
        E.g. (n_subjects, n_times) -> one peak per subject; pass ``x.mean(0)`` for the peak
        of the group-mean time course.
    times : array (n_times,)
        Strictly increasing.
    tmin, tmax : float | None
        Search window (inclusive); default the whole epoch.

    Returns
    -------
    latency : array (...) or float
    """
    x = _as_float_array(timecourses, "peak_latency: timecourses", 1)
    window = _check_times(times, x.shape[-1], tmin, tmax, "peak_latency")
    out = _peak(x, np.asarray(times, dtype=np.float64), window)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class BootstrapResult:
    """Output of :func:`bootstrap_peak_latency` and :func:`bootstrap_difference`.

    Attributes
    ----------
    estimate : float
        Statistic on the original sample (peak of the subject-mean time course, or the
        difference of two such peaks).
    sem : float
        Standard deviation of the bootstrap distribution (the paper's standard error).
    ci : tuple (low, high)
        Percentile bootstrap confidence interval.
    distribution : array (n_bootstrap,)
    p : float | None
        Two-sided percentile-bootstrap p for a zero difference
        (``min(1, 2 * min(mean(d <= 0), mean(d >= 0)))``); None for a single peak.
    """

    estimate: float
    sem: float
    ci: tuple
    distribution: np.ndarray
    p: float | None = None


def _bootstrap_weights(n_subjects: int, n_bootstrap: int, seed):
    """Engine: yield (n_batch, n_subjects) weight matrices of bootstrap samples.

    Sample b draws subjects ``rng.integers(0, n_subjects, size=(n_bootstrap, n_subjects))[b]``
    (one call, so results do not depend on batching); its weights are the draw counts divided
    by ``n_subjects``, so ``weights @ x`` is the mean over the resampled subjects.
    """
    rng = make_rng(seed)
    draws = rng.integers(0, n_subjects, size=(n_bootstrap, n_subjects))
    weights = np.zeros((n_bootstrap, n_subjects))
    np.add.at(weights, (np.repeat(np.arange(n_bootstrap), n_subjects), draws.ravel()), 1.0)
    return weights / n_subjects


def _percentile_ci(dist: np.ndarray, ci: float) -> tuple:
    lo, hi = np.percentile(dist, [50 * (1 - ci), 50 * (1 + ci)])
    return float(lo), float(hi)


def _check_bootstrap_args(n_bootstrap, ci):
    n_bootstrap = _check_count(n_bootstrap, "n_bootstrap", 2)
    ci = _check_probability(ci, "ci")
    return n_bootstrap, ci


def _bootstrap_peaks(courses: np.ndarray, times, window, n_bootstrap, seed) -> np.ndarray:
    """Peaks of the bootstrap-mean time courses; courses (n_series, n_subjects, n_times)."""
    weights = _bootstrap_weights(courses.shape[1], n_bootstrap, seed)
    n_times = courses.shape[2]
    batch = max(1, _BATCH_ELEMENTS // n_times)
    out = np.empty((courses.shape[0], n_bootstrap))
    for start in range(0, n_bootstrap, batch):
        w = weights[start : start + batch]
        for s, c in enumerate(courses):
            out[s, start : start + batch] = _peak(w @ c, times, window)
    return out


def bootstrap_peak_latency(
    timecourses, times, n_bootstrap: int = 10000, ci: float = 0.95, seed=0, tmin=None, tmax=None
) -> BootstrapResult:
    """Peak latency of the subject-mean time course with a bootstrap over subjects.

    Each bootstrap sample resamples subjects with replacement, averages their time courses
    and takes the peak of that mean (Cichy 2016; 1,000 samples for SEMs in the methods,
    10,000 in Fig. 3).

    Parameters
    ----------
    timecourses : array (n_subjects, n_times)
    times : array (n_times,)
    n_bootstrap : int
    ci : float
        Coverage of the percentile interval.
    seed : int | numpy.random.Generator
    tmin, tmax : float | None
        Peak search window.

    Returns
    -------
    BootstrapResult (``p`` is None)
    """
    n_bootstrap, ci = _check_bootstrap_args(n_bootstrap, ci)
    x = _as_float_array(timecourses, "bootstrap_peak_latency: timecourses", 2, 2)
    _check_n_subjects(x, "bootstrap_peak_latency: timecourses")
    window = _check_times(times, x.shape[1], tmin, tmax, "bootstrap_peak_latency")
    times = np.asarray(times, dtype=np.float64)
    dist = _bootstrap_peaks(x[None], times, window, n_bootstrap, seed)[0]
    return BootstrapResult(
        estimate=float(_peak(x.mean(axis=0), times, window)),
        sem=float(dist.std(ddof=1)),
        ci=_percentile_ci(dist, ci),
        distribution=dist,
    )


def bootstrap_difference(
    timecourses_a,
    timecourses_b,
    times,
    n_bootstrap: int = 10000,
    ci: float = 0.95,
    seed=0,
    tmin=None,
    tmax=None,
) -> BootstrapResult:
    """Difference of peak latencies, ``peak(a) - peak(b)``, with a paired bootstrap.

    The same resampled subjects are used for ``a`` and ``b`` (e.g. two layers of one model
    compared with the same subjects' MEG). ``p`` is the two-sided percentile-bootstrap p for
    no difference; ties (a difference of exactly 0) count on both sides, so it is conservative.

    Parameters
    ----------
    timecourses_a, timecourses_b : array (n_subjects, n_times)
        Same subjects in the same order.
    times, n_bootstrap, ci, seed, tmin, tmax
        As in :func:`bootstrap_peak_latency`.

    Returns
    -------
    BootstrapResult
    """
    n_bootstrap, ci = _check_bootstrap_args(n_bootstrap, ci)
    a = _as_float_array(timecourses_a, "bootstrap_difference: timecourses_a", 2, 2)
    b = _as_float_array(timecourses_b, "bootstrap_difference: timecourses_b", 2, 2)
    if a.shape != b.shape:
        raise InputError(
            f"bootstrap_difference: timecourses_a {a.shape} and timecourses_b {b.shape} must have "
            "the same shape (same subjects, same time points)."
        )
    _check_n_subjects(a, "bootstrap_difference: timecourses_a")
    window = _check_times(times, a.shape[1], tmin, tmax, "bootstrap_difference")
    times = np.asarray(times, dtype=np.float64)
    peaks = _bootstrap_peaks(np.stack([a, b]), times, window, n_bootstrap, seed)
    dist = peaks[0] - peaks[1]
    estimate = _peak(a.mean(axis=0), times, window) - _peak(b.mean(axis=0), times, window)
    p = min(1.0, 2.0 * min(np.mean(dist <= 0), np.mean(dist >= 0)))
    return BootstrapResult(
        estimate=float(estimate),
        sem=float(dist.std(ddof=1)),
        ci=_percentile_ci(dist, ci),
        distribution=dist,
        p=float(p),
    )


# ---------------------------------------------------------------------------------------------
# Layer order
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerOrderResult:
    """Output of :func:`layer_order_correlation`.

    Attributes
    ----------
    r : float
        Mean over subjects of the per-subject Spearman R.
    r_subjects : array (n_subjects,)
        Per-subject Spearman(layer number, value); 0 where a subject's values are all equal.
    p : float
        Sign-permutation p of the mean R over subjects.
    """

    r: float
    r_subjects: np.ndarray
    p: float


def _rowwise_spearman(order: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Spearman R of ``order`` (n_layers,) with every row of ``values`` (average ranks)."""
    ro = sp_stats.rankdata(order)
    ro = ro - ro.mean()
    rv = sp_stats.rankdata(values, axis=1)
    rv = rv - rv.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(rv, axis=1) * np.linalg.norm(ro)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rv @ ro) / denom


def layer_order_correlation(
    peak_latencies, layer_numbers=None, n_permutations: int = 10000, seed=0, tail: int = 0
) -> LayerOrderResult:
    """Hierarchy test: Spearman(layer number, value) per subject, sign-permutation p.

    Our reading of Cichy et al. 2016 (Fig. 3b: "n = 15, R = 0.35, P = 0.0007, sign
    permutation test"; Fig. 6b for ROI similarity vs layer): for each subject, Spearman R
    between layer number and that subject's per-layer value (peak latency of the model-MEG
    time course, or model-ROI similarity); R reported = mean over subjects; p = sign-permutation
    test of the per-subject R over subjects (:func:`sign_permutation_test`, two-sided by
    default since the paper reports negative R as significant too). A difference of R between
    two models (the paper's Delta R) is ``sign_permutation_test(res_a.r_subjects -
    res_b.r_subjects, tail=0)``. A subject whose values are all equal has no defined R; it
    enters as R = 0 (no ordering evidence) with a warning.

    Parameters
    ----------
    peak_latencies : array (n_subjects, n_layers)
        Per-subject, per-layer values (peak latencies, or ROI similarities).
    layer_numbers : array (n_layers,) | None
        Layer order; default ``1..n_layers``.
    n_permutations, seed, tail
        As in :func:`sign_permutation_test`.

    Returns
    -------
    LayerOrderResult
    """
    tail = _check_tail(tail)
    n_permutations = _check_count(n_permutations, "n_permutations")
    x = _as_float_array(peak_latencies, "layer_order_correlation: peak_latencies", 2, 2)
    _check_n_subjects(x, "layer_order_correlation: peak_latencies")
    n_layers = x.shape[1]
    if n_layers < 3:
        raise InputError(
            f"layer_order_correlation: need at least 3 layers for a rank correlation, got {n_layers}."
        )
    if layer_numbers is None:
        layer_numbers = np.arange(1, n_layers + 1, dtype=np.float64)
    layer_numbers = _as_float_array(layer_numbers, "layer_order_correlation: layer_numbers", 1, 1)
    if layer_numbers.shape[0] != n_layers:
        raise InputError(
            f"layer_order_correlation: layer_numbers has {layer_numbers.shape[0]} entries but "
            f"peak_latencies has {n_layers} layers (columns)."
        )
    if np.ptp(layer_numbers) == 0:
        raise InputError("layer_order_correlation: layer_numbers are all equal.")
    r = _rowwise_spearman(layer_numbers, x)
    flat = ~np.isfinite(r)
    if flat.any():
        warnings.warn(
            f"layer_order_correlation: subjects {np.flatnonzero(flat).tolist()} have equal values "
            "for every layer; their Spearman R is undefined and set to 0.",
            RuntimeWarning,
            stacklevel=2,
        )
        r = np.where(flat, 0.0, r)
    _, p = _sign_flip_counts(r[:, None], n_permutations, seed, tail)
    return LayerOrderResult(r=float(r.mean()), r_subjects=r, p=float(p[0]))


# ---------------------------------------------------------------------------------------------
# Whole-network RDM
# ---------------------------------------------------------------------------------------------
def _pca_scores(X: np.ndarray, n_components: int, chunk: int = 8192) -> np.ndarray:
    """PCA scores (n_conditions, n_components) from the Gram matrix of the centred rows.

    The Gram matrix is accumulated over feature chunks in float64, so wide float32 layers are
    never copied whole. Sign convention: the entry of largest magnitude in each component is
    positive (independent of the linear-algebra library).
    """
    n = X.shape[0]
    gram = np.zeros((n, n))
    for start in range(0, X.shape[1], chunk):
        c = np.asarray(X[:, start : start + chunk], dtype=np.float64)
        c = c - c.mean(axis=0)
        gram += c @ c.T
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1][:n_components]
    scores = evecs[:, order] * np.sqrt(np.maximum(evals[order], 0.0))
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    flip[flip == 0] = 1.0
    return scores * flip


def summary_rdm(layer_features, n_components=None) -> np.ndarray:
    """Whole-network RDM (Cichy 2016): per-layer PCA, concatenate, 1 - Spearman.

    Each layer's activations (n_conditions, n_features) are reduced by PCA to
    ``n_conditions - 1`` components (117 for 118 images; fewer when a layer has fewer
    features), so every layer contributes the same number of dimensions irrespective of its
    width; the scores of all layers are concatenated (8 x 117 = 936 dims in the paper) and the
    RDM is 1 - Spearman between conditions (:func:`brainalign.rdm.compute_rdm`).

    PCA scores are unscaled (component variances kept). Their signs are arbitrary in PCA and
    do change a Spearman correlation across dimensions; we fix them by making the
    largest-magnitude score of each component positive. Components with (near-)zero variance
    (rank-deficient layers) carry numerical noise into the ranks.

    Parameters
    ----------
    layer_features : list of arrays (n_conditions, n_features_l)
        Same conditions, same order, in every layer.
    n_components : int | None
        Components per layer; default ``n_conditions - 1``. Capped at a layer's feature count.

    Returns
    -------
    rdm : array (n_conditions * (n_conditions - 1) / 2,)
    """
    if isinstance(layer_features, np.ndarray) or not hasattr(layer_features, "__len__"):
        raise InputError(
            "summary_rdm: layer_features must be a list of (n_conditions, n_features) arrays, "
            f"got {type(layer_features).__name__}."
        )
    if len(layer_features) == 0:
        raise InputError("summary_rdm: layer_features is empty; pass at least one layer.")
    layers = []
    for i, f in enumerate(layer_features):
        f = np.asarray(f)
        if f.ndim != 2 or f.dtype.kind not in "biuf":
            raise InputError(
                f"summary_rdm: layer {i} must be a numeric (n_conditions, n_features) array, got "
                f"shape {f.shape} dtype {f.dtype}."
            )
        check_finite(f, f"summary_rdm: layer {i}")
        layers.append(f)
    n = layers[0].shape[0]
    bad = [i for i, f in enumerate(layers) if f.shape[0] != n]
    if bad:
        raise InputError(
            f"summary_rdm: every layer must have the same conditions; layer 0 has {n} rows but "
            f"layer(s) {bad} have {[layers[i].shape[0] for i in bad]}."
        )
    if n < 3:
        raise InputError(f"summary_rdm: need at least 3 conditions, got {n}.")
    if n_components is None:
        n_components = n - 1
    n_components = _check_count(n_components, "n_components")
    if n_components > n - 1:
        raise InputError(f"'n_components' must be <= n_conditions - 1 = {n - 1}, got {n_components}.")
    scores = [_pca_scores(f, min(n_components, f.shape[1])) for f in layers]
    return compute_rdm(np.concatenate(scores, axis=1), "spearman")
