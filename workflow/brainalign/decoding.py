"""Time-resolved MEG RDMs by pairwise decoding of conditions (Cichy et al. 2016).

:func:`pairwise_decoding_rdm` turns epochs ``(n_conditions, n_trials, n_channels,
n_times)`` into one condensed RDM of decoding accuracies per time point, shape
``(n_times, n_pairs)``, pairs in :func:`scipy.spatial.distance.pdist` order (row-major
over ``i < j``, as everywhere in :mod:`brainalign.rdm`).

The scheme is the paper's (Methods, "Multivariate analysis of MEG data"). For each of
``n_permutations`` permutations:

1. each condition's trials are shuffled (seeded) and averaged in consecutive groups of
   ``k = trials_per_group`` into ``L = n_trials // k`` pseudo-trials; the
   ``n_trials - L k`` trials left over at the end of the shuffle are not used in that
   permutation;
2. for every pair of conditions and every time point, a linear SVM (LibSVM's C-SVC,
   ``C = 1``, i.e. scikit-learn's ``SVC(kernel="linear", C=1)``) is trained on the first
   ``L - 1`` pseudo-trials of each condition and tested on the *last* one of each (after
   the shuffle, as in the authors' code);
3. the accuracy is the fraction of the two test pseudo-trials classified correctly.

The RDM is the mean accuracy over permutations (0.5 is chance; a fraction, not percent).

Nothing is fitted in a Python loop: for each permutation and time point the Gram matrix
of all pseudo-trials is one matrix product, and the dual SVM problems of all pairs (of
several time points when there are few pairs) are solved at once, exactly, by
:mod:`brainalign._svm` (a tie ``f(x) == 0`` goes to the pair's second condition, as in
LibSVM). The SVM is translation invariant, so the mean pseudo-trial of each time point
(the evoked response common to all conditions) is removed first: same solution, better
conditioned Gram matrices. Two cheaper classifiers are offered; they are *not* the
paper's method and give different accuracies: ``"lda"`` (LDA with Ledoit-Wolf shrinkage
of the pooled within-class covariance) and ``"correlation"`` (nearest class mean by
Pearson correlation across channels).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from brainalign import _svm
from brainalign.utils import InputError, check_finite, check_option, make_rng

__all__ = ["pairwise_decoding_rdm", "CLASSIFIERS"]

CLASSIFIERS = ("svm", "lda", "correlation")
SVM_C = 1.0  # LibSVM's default cost
# Time points are taken from the data in chunks of at most this many elements
# (C x n_trials x n_channels x chunk; 4 MB in float32) -- small enough to stay in cache
# while every permutation averages its pseudo-trials from it.
_CHUNK_ELEMENTS = 2**20


def pairwise_decoding_rdm(
    data,
    *,
    trials_per_group: int = 5,
    n_permutations: int = 100,
    classifier: str = "svm",
    seed=0,
    device: str = "cpu",
    progress: bool = False,
    pair_batch: int = 8192,
    n_jobs: int = 1,
) -> np.ndarray:
    """Decoding-accuracy RDMs over time from MEG epochs (Cichy et al. 2016, Sci Rep).

    Parameters
    ----------
    data : array (n_conditions, n_trials, n_channels, n_times), or a sequence of
        ``n_conditions`` arrays (n_trials, n_channels, n_times) of equal shape.
        Real, finite. float32 input computes the pseudo-trials and Gram matrices in
        float32 (faster; the SVMs are always solved in float64); anything else in float64.
    trials_per_group : int
        ``k``, trials averaged into one pseudo-trial; ``L = n_trials // k`` pseudo-trials
        per condition must be at least 2 (one to train, one to test). Trials left over at
        the end of each shuffle are dropped for that permutation.
    n_permutations : int
        Random groupings of trials into pseudo-trials; accuracies are averaged over them.
    classifier : {"svm", "lda", "correlation"}
        ``"svm"`` is the paper's (LibSVM linear C-SVC, C = 1). ``"lda"`` and
        ``"correlation"`` are cheaper alternatives that differ from the paper.
    seed : int or numpy.random.Generator
        Seeds the shuffles, all drawn before any work: the same seed gives identical
        results, whatever ``pair_batch`` and ``n_jobs`` (and, up to rounding, ``device``).
    device : str
        ``"cpu"`` computes with numpy; any other torch device (``"cuda"``, ``"cuda:1"``)
        with torch on that device (it must support float64).
    progress : bool
        Show a tqdm progress bar (one step per permutation and chunk of time points).
    pair_batch : int
        Number of pair-by-time-point problems solved together; bounds the memory of the
        solver (a few kB per problem: about 30 MB peak per job for 118 conditions at the
        default). With fewer pairs than this, several time points are solved together.
    n_jobs : int
        Threads (numpy backend only) working on different permutations; ``-1`` uses every
        available core. BLAS runs single-threaded inside this function (its products are
        small): ``n_jobs`` is the way to use several cores.

    Returns
    -------
    accuracies : ndarray (n_times, n_pairs), float64
        Mean decoding accuracy (fraction correct, chance 0.5) per time point and pair of
        conditions ``i < j`` in condensed (``pdist``) order.
    """
    data = _check_data(data)
    n_cond, n_trials, n_chan, n_times = data.shape
    k = _check_int("trials_per_group", trials_per_group, 1)
    n_pseudo = n_trials // k
    if n_pseudo < 2:
        raise InputError(
            f"trials_per_group={k} with {n_trials} trials per condition gives "
            f"{n_pseudo} pseudo-trial(s); at least 2 are needed (one to train, one to test). "
            f"Use trials_per_group <= {n_trials // 2}."
        )
    n_perm = _check_int("n_permutations", n_permutations, 1)
    classifier = check_option("classifier", classifier, CLASSIFIERS)
    pair_batch = _check_int("pair_batch", pair_batch, 1)
    n_jobs = _n_cores() if n_jobs == -1 else _check_int("n_jobs", n_jobs, 1)
    be = _backend(device)
    orders = be.asarray(_shuffles(make_rng(seed), n_perm, n_cond, n_trials), "int64")
    dtype = "float32" if data.dtype == np.float32 else "float64"

    engine = _Engine(be, n_cond, n_pseudo, n_chan, classifier, pair_batch)
    chunk = min(n_times, max(engine.t_batch, _CHUNK_ELEMENTS // (n_cond * n_trials * n_chan)))
    starts = range(0, n_times, chunk)
    acc = be.zeros((n_times, engine.n_pairs))

    def one_permutation(trials, p):
        pseudo = _pseudo_trials(be, trials, orders[p], k, n_pseudo)
        part = be.zeros((trials.shape[2], engine.n_pairs))
        for t, pairs, f in engine.decisions(pseudo):
            part[t, pairs] += _accuracy(be, f)
        return part

    parallel = n_jobs > 1 and not be.is_torch
    bar = _progress_bar(progress, len(starts) * n_perm)
    pool_or_none = ThreadPoolExecutor(n_jobs) if parallel else contextlib.nullcontext()
    with _single_threaded_blas(be), pool_or_none as pool:
        try:
            for t0 in starts:
                t1 = min(t0 + chunk, n_times)
                trials = be.asarray(np.ascontiguousarray(data[..., t0:t1].transpose(0, 1, 3, 2)), dtype)
                parts = (pool.map(lambda p, tr=trials: one_permutation(tr, p), range(n_perm)) if parallel
                         else (one_permutation(trials, p) for p in range(n_perm)))
                for part in parts:
                    acc[t0:t1] += part
                    bar.update(1)
        finally:
            bar.close()
    return be.to_numpy(acc / n_perm)


def _shuffles(rng: np.random.Generator, n_perm: int, n_cond: int, n_trials: int) -> np.ndarray:
    """(n_perm, C, n_trials): the trial order of every condition in every permutation."""
    return rng.permuted(np.broadcast_to(np.arange(n_trials), (n_perm, n_cond, n_trials)), axis=-1)


def _pseudo_trials(be, trials, order, k: int, n_pseudo: int):
    """Pseudo-trials (C, L, ...) from ``trials`` (C, n_trials, ...) and one ``order`` (C, n_trials).

    Pseudo-trial ``l`` of condition ``c`` is the mean of trials ``order[c, l k .. l k + k - 1]``;
    the trials after ``order[c, L k - 1]`` are not used.
    """
    rows = be.arange(trials.shape[0])[:, None]
    used = order[:, : n_pseudo * k]
    total = be.copy(trials[rows, used[:, 0::k]])
    for r in range(1, k):
        total += trials[rows, used[:, r::k]]
    return total * (1.0 / k)


def _pairwise_decoding_pseudo(
    pseudo,
    *,
    classifier: str = "svm",
    pair_batch: int = 8192,
    device: str = "cpu",
    return_decision: bool = False,
    _torch_cpu: bool = False,
    _stats: dict | None = None,
) -> np.ndarray:
    """One permutation on explicit pseudo-trials (for tests against scikit-learn).

    ``pseudo`` has shape (n_conditions, L, n_channels, n_times); pseudo-trial ``L - 1`` of
    each condition is the test one. Returns accuracies (n_times, n_pairs) in {0, .5, 1},
    or with ``return_decision`` the decision values (n_times, n_pairs, 2) of the two test
    pseudo-trials (first and second condition of the pair): ``f > 0`` predicts the pair's
    first condition, so ``f`` is minus scikit-learn's ``decision_function`` for labels
    ``0`` (first condition) and ``1``. ``_stats`` (a dict) receives the SVM solver's
    counts of problems per path.
    """
    pseudo = np.asarray(pseudo)
    n_cond, n_pseudo, n_chan, n_times = pseudo.shape
    be = _backend(device, torch_cpu=_torch_cpu)
    dtype = "float32" if pseudo.dtype == np.float32 else "float64"
    engine = _Engine(be, n_cond, n_pseudo, n_chan, check_option("classifier", classifier, CLASSIFIERS),
                     pair_batch)
    p = be.asarray(np.ascontiguousarray(pseudo.transpose(0, 1, 3, 2)), dtype)
    out = be.zeros((n_times, engine.n_pairs, 2) if return_decision else (n_times, engine.n_pairs))
    with _single_threaded_blas(be):
        results = engine.decisions(p)
    for t, pairs, f in results:
        if return_decision:
            out[t, pairs] = be.permute(f, (2, 1, 0))
        else:
            out[t, pairs] = _accuracy(be, f)
    if _stats is not None:
        _stats.update(engine.stats)
    return be.to_numpy(out)


class _Engine:
    """Gram matrices of pseudo-trials -> per-pair problems -> test decision values.

    For each time point the pseudo-trials are stacked ``l``-major (row ``l * C + a`` is
    pseudo-trial ``l`` of condition ``a``) and their Gram matrix is one matrix product.
    Each classifier reads its problems from it through one gather (``take``) with flat
    indices precomputed per batch of pairs: the problem of pair ``(a, c)`` at entry
    ``(l a, l' c)`` reads ``G[l * C + a, l' * C + c]``; consecutive pairs read consecutive
    addresses. A compact copy of the within-condition blocks and the constants 1 and -1
    (the rows of the SVM's bordered matrix that are not inner products) follow the Gram
    matrices in the same flat buffer. Safe to share between threads.
    """

    def __init__(self, be, n_cond, n_pseudo, n_chan, classifier, pair_batch):
        self.be, self.C, self.L, self.d = be, n_cond, n_pseudo, n_chan
        self.classifier = classifier
        rows, cols = np.triu_indices(n_cond, k=1)  # pdist order
        self.pair_rows, self.pair_cols = rows, cols
        self.n_pairs = rows.size
        per = min(pair_batch, self.n_pairs)
        self.pair_slices = [slice(s, min(s + per, self.n_pairs)) for s in range(0, self.n_pairs, per)]
        self.t_batch = max(1, pair_batch // per)
        m = n_pseudo - 1
        self.entries = _svm.svm_layout(m) if classifier == "svm" else _svm.k12_layout(m)
        self.shape = (len(self.entries),) if classifier == "svm" else (2 * n_pseudo, 2 * n_pseudo)
        self._indices: dict[tuple[int, int], object] = {}
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {}

    def decisions(self, pseudo):
        """List of ``(time slice, pair slice, f)``, ``f`` (2, n_pairs_in_slice, n_times_in_slice).

        ``pseudo``: (C, L, n_times, n_channels) on the backend. The problems the SVM's fast
        path leaves are solved together at the end.
        """
        if self.classifier == "correlation":  # Pearson: centre each pattern across channels
            pseudo = pseudo - pseudo.mean(axis=-1)[..., None]
        else:  # SVM and LDA are translation invariant: remove the common (evoked) pattern
            pseudo = pseudo - pseudo.mean(axis=(0, 1))
        n_times = pseudo.shape[2]
        results, pending, stats = [], [], {}
        for t0 in range(0, n_times, self.t_batch):
            self._times(pseudo, t0, min(t0 + self.t_batch, n_times), results, pending, stats)
        _svm.svm_finish(self.be, pending, self.L - 1, SVM_C, stats)
        with self._lock:
            for key, val in stats.items():
                self.stats[key] = self.stats.get(key, 0) + val
        return [(t, pairs, f.reshape(2, pairs.stop - pairs.start, t.stop - t.start))
                for t, pairs, f in results]

    def _times(self, pseudo, t0: int, t1: int, results: list, pending: list, stats: dict):
        """Decision values for time points ``t0 .. t1 - 1`` of (centred) ``pseudo``."""
        be, C, L = self.be, self.C, self.L
        tc = t1 - t0
        P = be.permute(pseudo[:, :, t0:t1], (2, 1, 0, 3)).reshape(tc, L * C, self.d)
        n_g = tc * (L * C) ** 2
        flat = be.empty(n_g + C * tc * L * L + 2)
        G = flat[:n_g].reshape(tc, L * C, L * C)
        for i in range(tc):
            G[i] = P[i] @ P[i].T  # a symmetric product (syrk)
        G5 = G.reshape(tc, L, C, L, C)
        flat[n_g:-2] = G5[:, :, be.arange(C), :, be.arange(C)].reshape(-1)  # (C, tc, L, L) blocks
        flat[-2:] = be.asarray([1.0, -1.0], "float64")
        m = L - 1
        for k, pairs in enumerate(self.pair_slices):
            X = be.take_flat(flat, self._index(k, tc))
            if self.classifier == "svm":
                f = _svm.svm_decision(be, X, m, SVM_C, stats=stats, pending=pending)
            elif self.classifier == "lda":
                f = _svm.lda_decision(be, X, m, self.d)
            else:
                f = _svm.correlation_decision(be, X, m)
            results.append((slice(t0, t1), pairs, f))

    def _index(self, k: int, tc: int):
        """Flat indices (*shape, n_pairs_k * tc) of batch ``k``'s problems into ``flat``:
        the Gram matrices (tc, L C, L C), the within-condition blocks (C, tc, L, L), 1, -1."""
        key = (k, tc)
        with self._lock:
            if key not in self._indices:
                self._indices[key] = self.be.asarray(self._build_index(k, tc))
            return self._indices[key]

    def _build_index(self, k: int, tc: int) -> np.ndarray:
        C, L = self.C, self.L
        n_g = tc * (C * L) ** 2
        one = n_g + tc * C * L * L
        sl = self.pair_slices[k]
        a, c = self.pair_rows[sl][:, None], self.pair_cols[sl][:, None]  # (P, 1)
        t = np.arange(tc)[None, :]
        # index = base(entry) + term(pair, time); the term depends on which of the pair's
        # conditions the row and the column belong to
        terms = np.stack([
            (t * L * C + a) * (C * L) + c,  # row in a, column in c (the Gram matrices)
            (t * L * C + c) * (C * L) + a,  # row in c, column in a
            (a * tc + t) * L * L + n_g,  # both in a (the within-condition blocks)
            (c * tc + t) * L * L + n_g,  # both in c
            np.zeros_like(a + t),  # constants
        ])
        base = np.zeros(len(self.entries), dtype=np.int64)
        which = np.zeros(len(self.entries), dtype=np.int64)
        for e, (rp, cp) in enumerate(self.entries):
            if isinstance(rp, str):  # "one", or "y" = +1 / -1 by the column's side
                base[e], which[e] = one + (rp == "y" and cp[0] == 1), 4
            elif rp[0] != cp[0]:
                base[e], which[e] = rp[1] * C * (C * L) + cp[1] * C, rp[0]
            else:
                base[e], which[e] = rp[1] * L + cp[1], 2 + rp[0]
        idx = base[:, None, None] + terms[which]
        return idx.reshape(*self.shape, -1)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    return ThreadpoolController()  # scans the loaded libraries once (milliseconds)


def _single_threaded_blas(be):
    """BLAS on one thread (numpy backend): the products here are small, multithreaded BLAS
    spends more time synchronising than computing, and ``n_jobs`` parallelises instead."""
    if be.is_torch:
        return contextlib.nullcontext()
    return _blas_controller().limit(limits=1, user_api="blas")


def _accuracy(be, f):
    """(2, Pb, Tc) decision values -> (Tc, Pb) fraction correct; ties go to the second class."""
    correct = be.astype(f[0] > 0, "float64") + be.astype(f[1] <= 0, "float64")
    return 0.5 * correct.T


def _n_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_data(data) -> np.ndarray:
    """Validate epochs into one real array (C, n_trials, n_channels, n_times)."""
    if isinstance(data, Sequence) and not isinstance(data, np.ndarray):
        parts = [np.asarray(d) for d in data]
        shapes = [p.shape for p in parts]
        if len(set(shapes)) > 1:
            listed = ", ".join(f"condition {i}: {s}" for i, s in enumerate(shapes[:6]))
            raise InputError(
                f"pairwise_decoding_rdm: the conditions have different shapes ({listed}"
                f"{', ...' if len(shapes) > 6 else ''}); every condition needs the same "
                "(n_trials, n_channels, n_times). Subsample trials to the smallest count "
                "first (e.g. the first min(n_trials) of each)."
            )
        data = np.stack(parts) if parts else np.empty((0, 0, 0, 0))
    data = np.asarray(data)
    if data.ndim != 4:
        raise InputError(
            f"pairwise_decoding_rdm: expected data of shape (n_conditions, n_trials, "
            f"n_channels, n_times), got an array of shape {data.shape}."
        )
    if data.shape[0] < 2 or min(data.shape[1:]) < 1:
        raise InputError(
            f"pairwise_decoding_rdm: need at least 2 conditions and non-empty trials, "
            f"channels and times, got shape {data.shape}."
        )
    if data.dtype.kind not in "fiub":
        raise InputError(f"pairwise_decoding_rdm: data must be real numbers, got dtype {data.dtype}.")
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    for c in range(data.shape[0]):  # one condition at a time: no data-sized temporary
        check_finite(data[c], f"pairwise_decoding_rdm data, condition {c}")
    return data


def _backend(device: str, *, torch_cpu: bool = False) -> _svm.Backend:
    if not isinstance(device, str):
        raise InputError(f"device must be a string such as 'cpu' or 'cuda', got {device!r}.")
    if device == "cpu":
        return _svm.Backend("cpu", torch_cpu=torch_cpu)
    try:
        import torch

        dev = torch.device(device)
    except (ImportError, RuntimeError) as err:
        raise InputError(f"Invalid device {device!r}: 'cpu' (numpy) or a torch device such as "
                         f"'cuda' is expected ({err}).") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r} was requested but torch sees no CUDA device; use 'cpu'.")
    return _svm.Backend(device)


def _progress_bar(enabled: bool, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="pairwise decoding", unit="step")
