"""Intracranial band power vs network layers (Kuzovkin et al. 2018, Commun Biol).

Arrays in, arrays out; nothing here reads files (:mod:`brainalign.io.kuzovkin2018` does).

- :func:`probe_rdms`             condensed RDM of every probe's scalar responses, ``|a - b|``
- :func:`probe_layer_rsa`        Spearman(probe RDM, layer RDM) for every probe x layer
- :func:`permutation_test`       the same, plus a permutation p value per probe x layer,
                                 vectorised over all probes and layers of a subject
- :func:`stimulus_permutations`  the seeded permutations :func:`permutation_test` draws
- :func:`alignment`              rho_align (Spearman) and Kendall tau of (layer, area) points
- :func:`mapping_matrix`         significant probes per visual area x layer
- :func:`split_half_alignment`   rho_align of random halves of the subjects (noise estimate)

Rejected trials
    ``responses`` holds NaN for a rejected trial (the files' ``-123456``). A pair of stimuli
    involving a rejected trial of a probe is left out of *that probe's* comparison: from its
    RDM and from the layer RDM entries it is compared with, so each probe's Spearman
    correlation runs over its own valid pairs (ranks are taken within them). A probe with
    fewer than ``min_valid`` valid trials, or with the same response to every valid trial,
    is dropped (NaN scores); the counts are logged and kept on the result.

Permutation test
    The stimulus labels of the layer RDMs are permuted: permutation ``pi`` turns the layer
    RDM ``D`` into ``D[pi[i], pi[j]]`` at pair ``(i, j)``. The same permutations
    (:func:`stimulus_permutations`) serve every probe and layer of the call. The p value of
    probe ``p`` and layer ``l`` is ``(1 + #{perm: rho_perm >= rho_obs}) / (1 + n_perm)``:
    the observed labelling counts as one permutation, so ``p >= 1 / (n_perm + 1)``; values
    within ``1e-12`` of the observed one count as ties, i.e. as at least as large.
    Significant = ``p <= alpha`` (0.001 in the paper) and ``rho > 0``.

    Probes are grouped by their set of rejected trials (all probes without any form one
    group). Each group's RDMs are ranked once; permuting labels only moves the ranked,
    standardised entries, so a group's correlations for a batch of permutations are one
    gather and one matrix product (over all its probes and layers). For a probe with
    rejected trials, ``null="valid"`` (default) permutes its valid stimuli among themselves
    (in the order ``pi`` puts them), which keeps that property; ``null="all"`` applies ``pi``
    to all labels and re-ranks the layer entries met by the valid pairs for every
    permutation (a running count along the layer's sorted order, O(n_pairs) per
    permutation, layer and group). Both equal :func:`scipy.stats.spearmanr` on the valid
    pairs under the same permutations (see ``tests/test_intracranial.py``); without rejected
    trials they are the same test.

Alignment (the paper's "diagonal trend")
    Every significant, positive probe-layer pair of a probe in a visual Brodmann area is one
    point ``(layer index, area index)``: layers in the column order of ``significant``
    (order them by depth: pixels, conv1-5, fc6-8), areas in the order 17, 18, 19, 37, 20
    (:data:`VISUAL_AREAS`). A probe significant for three layers gives three points.
    rho_align is the Spearman correlation of the points, Kendall's tau-b beside it (the
    authors' code computes both). The split-half noise estimate repeats this on random
    halves of the subjects.

Where this differs from the authors' code (``Collusion/`` of their repository), on purpose:
their code set rejected trials to 0 instead of excluding them; correlated whole square RDMs
(both triangles and the diagonal, after a per-column min-max scaling) instead of the upper
triangles; permuted the brain RDM instead of the layer RDM (the same null distribution); and
counted ``p = #{perm >= observed} / n_perm``, which can be 0.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import stats as sp_stats

from brainalign.utils import InputError, check_finite, check_option, make_rng

__all__ = [
    "VISUAL_AREAS",
    "NULLS",
    "probe_rdms",
    "probe_layer_rsa",
    "permutation_test",
    "stimulus_permutations",
    "ProbeLayerTest",
    "alignment_points",
    "alignment",
    "Alignment",
    "mapping_matrix",
    "MappingMatrix",
    "split_half_alignment",
    "SplitHalfAlignment",
]

logger = logging.getLogger(__name__)

#: Visual Brodmann areas in the order of the ventral hierarchy used for rho_align.
VISUAL_AREAS = (17, 18, 19, 37, 20)
#: How probes with rejected trials are permuted (see :func:`permutation_test`).
NULLS = ("valid", "all")
_TIE_TOL = 1e-12  # permuted correlations this close to the observed one count as ties
_BATCH_BYTES = 2**26  # ~64 MiB of float64 per permutation batch (layers x batch x pairs)
_BLAS_MIN_PROBES = 16  # groups with rejected trials this large use BLAS for their products


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name!r} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_responses(responses) -> np.ndarray:
    x = np.asarray(responses)
    if x.dtype.kind not in "biuf":
        raise InputError(f"responses: expected a numeric array, got dtype {x.dtype}.")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InputError(
            f"responses: expected an array (n_stimuli, n_probes) with NaN for rejected trials, "
            f"got shape {x.shape}."
        )
    if x.shape[0] < 3:
        raise InputError(f"responses: at least 3 stimuli are needed, got {x.shape[0]}.")
    x = x.astype(np.float64, copy=False)
    if np.isinf(x).any():
        bad = np.argwhere(np.isinf(x))[0]
        raise InputError(
            f"responses: found {int(np.isinf(x).sum())} infinite values, first at (stimulus, probe) "
            f"{tuple(int(i) for i in bad)}; expected finite values, NaN for rejected trials."
        )
    return x


def _check_layer_rdms(layer_rdms, n_stimuli: int) -> np.ndarray:
    d = np.asarray(layer_rdms)
    if d.dtype.kind not in "biuf":
        raise InputError(f"layer_rdms: expected a numeric array, got dtype {d.dtype}.")
    if d.ndim == 1:
        d = d[None, :]
    k = n_stimuli * (n_stimuli - 1) // 2
    if d.ndim != 2 or d.shape[1] != k or d.shape[0] < 1:
        raise InputError(
            f"layer_rdms: expected condensed RDMs (n_layers, {k}) over the {n_stimuli} stimuli of "
            f"`responses` (scipy pdist order), got shape {d.shape}."
        )
    d = d.astype(np.float64, copy=False)
    check_finite(d, "layer_rdms")
    return d


# ---------------------------------------------------------------------------------------------
# Probe RDMs and ranks
# ---------------------------------------------------------------------------------------------
def probe_rdms(responses) -> np.ndarray:
    """Condensed RDM ``|x_i - x_j|`` of every probe's scalar responses.

    Parameters
    ----------
    responses : array (n_stimuli, n_probes)
        One value per stimulus and probe (band power); NaN marks a rejected trial.

    Returns
    -------
    rdms : array (n_probes, n_stimuli * (n_stimuli - 1) / 2), float64
        scipy ``pdist`` order; NaN at every pair that involves a rejected trial.
    """
    x = _check_responses(responses)
    i, j = np.triu_indices(x.shape[0], k=1)
    return np.abs(x[i] - x[j]).T


def _standardize(a: np.ndarray) -> np.ndarray:
    """Centre and scale the last axis to unit norm (NaN where constant)."""
    a = a - a.mean(axis=-1, keepdims=True)
    norm = np.sqrt(np.einsum("...k,...k->...", a, a))[..., None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, a / np.where(norm > 0, norm, 1.0), np.nan)


@dataclass
class _Group:
    """Probes with the same rejected trials: indices, valid stimuli and pairs, ranked RDMs."""

    probes: np.ndarray  # (n_g,) probe indices
    valid: np.ndarray  # (n_stimuli,) bool, valid trials of the group
    pair_i: np.ndarray  # (n_valid_pairs,) first stimulus of each valid pair (original index)
    pair_j: np.ndarray  # (n_valid_pairs,) second stimulus
    z: np.ndarray  # (n_g, n_valid_pairs) standardised ranks of |x_i - x_j|

    @property
    def complete(self) -> bool:
        return bool(self.valid.all())


def _probe_groups(x: np.ndarray, min_valid: int):
    """Group the usable probes by their rejected trials; return (groups, n_valid, kept, counts)."""
    n, n_probes = x.shape
    valid = ~np.isnan(x)
    n_valid = valid.sum(axis=0)
    kept = n_valid >= min_valid
    n_few = int((~kept).sum())
    n_constant = 0
    groups: list[_Group] = []
    keys: dict[bytes, list[int]] = {}
    for p in np.flatnonzero(kept):
        keys.setdefault(np.packbits(valid[:, p]).tobytes(), []).append(int(p))
    for members in keys.values():
        members = np.asarray(members)
        v = valid[:, members[0]]
        idx = np.flatnonzero(v)
        a, b = np.triu_indices(idx.size, k=1)
        pi, pj = idx[a], idx[b]  # increasing condensed index, like the full pdist order
        rd = np.abs(x[pi][:, members] - x[pj][:, members]).T  # (n_g, n_valid_pairs)
        z = _standardize(sp_stats.rankdata(rd, axis=1))
        constant = np.isnan(z).any(axis=1)
        if constant.any():
            n_constant += int(constant.sum())
            kept[members[constant]] = False
            members, z = members[~constant], z[~constant]
        if members.size:
            groups.append(_Group(members, v, pi, pj, z))
    if n_few:
        logger.warning(
            "dropped %d of %d probes with fewer than %d valid trials (of %d)", n_few, n_probes, min_valid, n
        )
    if n_constant:
        logger.warning("dropped %d of %d probes whose valid responses are all equal", n_constant, n_probes)
    return groups, n_valid, kept, n_few, n_constant


class _Layers:
    """The layer RDMs and the pair bookkeeping shared by all groups (sort orders on demand)."""

    def __init__(self, d: np.ndarray, n: int):
        self.d = d
        self.n = n
        self.n_layers, self.n_pairs = d.shape
        self.i, self.j = np.triu_indices(n, k=1)
        pair_index = np.zeros((n, n), dtype=np.int64)  # condensed index of every pair (i != j)
        pair_index[self.i, self.j] = np.arange(self.n_pairs)
        pair_index[self.j, self.i] = np.arange(self.n_pairs)
        self.pair_index = pair_index
        self._sorted = False

    def prepare_sorted(self) -> None:
        """Sorted order of every layer's pairs, their stimuli and positions, and tie groups."""
        if self._sorted:
            return
        self.order = np.argsort(self.d, axis=1, kind="stable")
        self.sorted_i = self.i[self.order]
        self.sorted_j = self.j[self.order]
        self.position = np.empty_like(self.order)
        np.put_along_axis(self.position, self.order, np.arange(self.n_pairs)[None, :], axis=1)
        self.ties = []  # per layer: None, or (tie group of each sorted position, last position of each)
        for layer in range(self.n_layers):
            s = self.d[layer, self.order[layer]]
            new = np.empty(self.n_pairs, dtype=bool)
            new[0] = True
            new[1:] = s[1:] != s[:-1]
            if new.all():
                self.ties.append(None)
            else:
                ends = np.append(np.flatnonzero(new)[1:] - 1, self.n_pairs - 1)
                self.ties.append((np.cumsum(new) - 1, ends))
        self._sorted = True

    def subset_ranks(self, layer: int, included: np.ndarray):
        """Ranks (1-based, ties averaged) among the included pairs, at every sorted position.

        ``included`` (B, n_pairs) bool in the layer's sorted order; the rank of an included
        pair is the running count of included pairs up to it (over its tie group: the average).
        """
        cum = np.cumsum(included, axis=1, dtype=np.int32)
        ties = self.ties[layer]
        if ties is None:
            return cum
        gid, ends = ties
        cum_end = cum[:, ends]
        before = np.zeros_like(cum_end)
        before[:, 1:] = cum_end[:, :-1]
        return before[:, gid] + (cum_end - before + 1)[:, gid] / 2.0


class _ValidNull:
    """A group's valid stimuli permuted among themselves (``null="valid"``; every complete group).

    The permutation applied to the group is the shared permutation ``pi`` restricted to the
    group's valid stimuli: the ``k``-th valid stimulus is paired with the ``k``-th valid
    stimulus in the order of ``pi`` (``pi`` itself for a group without rejected trials). The
    layer entries over the group's valid pairs are then a fixed set, ranked once; a
    permutation only moves them, so a batch of correlations is one gather and one matrix
    product: on the layer side (the permuted layer vectors) when the group has at least as
    many probes as there are layers, else on the probe side, by
    ``sum_q z(q) zl(pi q) = sum_u z(pi^-1 u) zl(u)``.
    """

    def __init__(self, layers: _Layers, group: _Group):
        self.group = group
        idx = np.flatnonzero(group.valid)
        m = self.m = idx.size
        self.compact = np.full(layers.n, -1, dtype=np.int64)
        self.compact[idx] = np.arange(m)
        self.a, self.b = np.triu_indices(m, k=1)
        if group.complete:
            ranks = sp_stats.rankdata(layers.d, axis=1)
        else:  # ranks over the valid pairs from the sorted order: O(n_pairs) per layer
            layers.prepare_sorted()
            sel = layers.pair_index[group.pair_i, group.pair_j]
            ranks = np.empty((layers.n_layers, sel.size))
            for layer in range(layers.n_layers):
                included = group.valid[layers.sorted_i[layer]] & group.valid[layers.sorted_j[layer]]
                ranks[layer] = layers.subset_ranks(layer, included[None])[0, layers.position[layer][sel]]
        self.zl = _standardize(ranks)  # (L, k_v)
        self.layer_side = group.z.shape[0] >= layers.n_layers
        side = self.zl if self.layer_side else group.z
        square = np.zeros((side.shape[0], m, m))
        square[:, self.a, self.b] = side
        square[:, self.b, self.a] = side
        self.square = square.reshape(side.shape[0], m * m)

    def rho(self, perms: np.ndarray) -> np.ndarray:
        """(n_g, n_layers, B) correlations under the permutations ``perms`` (B, n_stimuli)."""
        g, m, B = self.group, self.m, perms.shape[0]
        if g.complete:
            cp = perms
        else:  # the valid stimuli in the order of each permutation, as compact indices
            cp = self.compact[perms[g.valid[perms]].reshape(B, m)]
        if self.layer_side:
            idx = cp[:, self.a] * m + cp[:, self.b]  # (B, k_v)
            zl = self.square[:, idx]  # (L, B, k_v)
            out = g.z @ zl.reshape(-1, zl.shape[-1]).T  # (n_g, L * B)
            return out.reshape(g.z.shape[0], self.zl.shape[0], B)
        inv = np.empty_like(cp)
        np.put_along_axis(inv, cp, np.arange(m)[None, :], axis=1)
        idx = inv[:, self.a] * m + inv[:, self.b]
        zp = self.square[:, idx]  # (n_g, B, k_v): the probes' ranks, permuted
        out = zp.reshape(-1, zp.shape[-1]) @ self.zl.T  # (n_g * B, L)
        return out.reshape(g.z.shape[0], B, -1).transpose(0, 2, 1)


class _AllNull:
    """All stimulus labels permuted, layer entries re-ranked over the group's valid pairs (``null="all"``).

    Under ``pi`` the layer pairs compared with the group's valid pairs are ``(pi[i], pi[j])``
    for valid ``i, j``: all pairs between layer stimuli outside ``pi[rejected]``, a different
    set for every permutation. Their ranks among themselves come from the running count of
    such pairs along the layer's sorted order: O(n_pairs) per permutation and layer.
    """

    def __init__(self, layers: _Layers, group: _Group):
        layers.prepare_sorted()
        self.layers, self.group = layers, group

    def rho(self, perms: np.ndarray) -> np.ndarray:
        layers, group = self.layers, self.group
        B, n = perms.shape
        k_v = group.pair_i.size
        mean = (k_v + 1) / 2.0
        gidx = layers.pair_index[perms[:, group.pair_i], perms[:, group.pair_j]]  # (B, k_v)
        offsets = (np.arange(B) * layers.n_pairs)[:, None]
        excluded = np.zeros((B, n), dtype=bool)
        excluded[np.arange(B)[:, None], perms[:, ~group.valid]] = True
        z_sum = group.z.sum(axis=1)  # ~0: the probe ranks are centred
        out = np.empty((group.z.shape[0], layers.n_layers, B))
        for layer in range(layers.n_layers):
            included = ~(excluded[:, layers.sorted_i[layer]] | excluded[:, layers.sorted_j[layer]])
            ranks_sorted = layers.subset_ranks(layer, included)
            ranks = np.take(ranks_sorted, layers.position[layer][gidx] + offsets).astype(np.float64)
            if layers.ties[layer] is None:
                norm = np.full(B, np.sqrt(k_v * (k_v * k_v - 1.0) / 12.0))
            else:
                centred = ranks - mean
                norm = np.sqrt(np.einsum("bk,bk->b", centred, centred))
            with np.errstate(invalid="ignore", divide="ignore"):
                if group.z.shape[0] < _BLAS_MIN_PROBES:
                    # einsum's own loop, not BLAS: a product this small is slowed, not sped up, by
                    # BLAS threads (which also keep spinning against the numpy passes around it)
                    dots = np.einsum("pk,bk->pb", group.z, ranks)
                else:
                    dots = group.z @ ranks.T
                out[:, layer, :] = (dots - mean * z_sum[:, None]) / np.where(norm > 0, norm, np.nan)
        return out


# ---------------------------------------------------------------------------------------------
# RSA and permutation test
# ---------------------------------------------------------------------------------------------
def stimulus_permutations(n_stimuli: int, n_permutations: int, seed) -> np.ndarray:
    """The random stimulus permutations :func:`permutation_test` uses, one per row.

    ``rng = make_rng(seed)``; row ``k`` is ``rng.permutation(n_stimuli)`` of the ``k``-th
    draw (all rows drawn before any work, so results do not depend on the batch size).

    Returns
    -------
    perms : array (n_permutations, n_stimuli), int64
    """
    n_stimuli = _check_int("n_stimuli", n_stimuli, 1)
    n_permutations = _check_int("n_permutations", n_permutations, 0)
    rng = make_rng(seed)
    out = np.empty((n_permutations, n_stimuli), dtype=np.int64)
    for k in range(n_permutations):
        out[k] = rng.permutation(n_stimuli)
    return out


@dataclass(frozen=True)
class ProbeLayerTest:
    """Output of :func:`permutation_test` (and :func:`probe_layer_rsa`).

    Attributes
    ----------
    rho : array (n_probes, n_layers)
        Spearman correlation of each probe's RDM with each layer RDM over the probe's valid
        pairs; NaN for dropped probes (and for a constant layer RDM).
    p : array (n_probes, n_layers)
        ``(1 + #{perm rho >= observed}) / (1 + n_permutations)``; NaN where ``rho`` is NaN
        or when no permutations were run.
    significant : bool array (n_probes, n_layers)
        ``p <= alpha`` and ``rho > 0``.
    kept : bool array (n_probes,)
        Probes scored (enough valid trials, not constant).
    n_valid : int array (n_probes,)
        Valid (not rejected) trials of each probe.
    n_permutations, alpha, null : int, float, str
        As passed to :func:`permutation_test`.
    n_dropped_few_trials, n_dropped_constant : int
        Probes dropped for fewer than ``min_valid`` valid trials, or for equal responses.
    """

    rho: np.ndarray
    p: np.ndarray
    significant: np.ndarray
    kept: np.ndarray
    n_valid: np.ndarray
    n_permutations: int
    alpha: float
    null: str
    n_dropped_few_trials: int
    n_dropped_constant: int


def permutation_test(
    responses,
    layer_rdms,
    *,
    n_permutations: int = 10000,
    seed=0,
    min_valid: int = 50,
    alpha: float = 0.001,
    null: str = "valid",
    batch_size: int | None = None,
    n_jobs: int = 1,
    progress: bool = False,
) -> ProbeLayerTest:
    """RSA of every probe with every layer, with a permutation p value (Kuzovkin et al. 2018).

    Parameters
    ----------
    responses : array (n_stimuli, n_probes)
        One subject's band power per stimulus (rows in the stimulus order of the layer RDMs)
        and probe; NaN marks a rejected trial.
    layer_rdms : array (n_layers, n_pairs) or (n_pairs,)
        Condensed layer RDMs over the same stimuli in the same order, layers in depth order.
    n_permutations : int
        Random permutations of the layer RDMs' stimulus labels (the paper: 10,000); 0 gives
        the correlations only (``p`` all NaN, nothing significant).
    seed : int or numpy.random.Generator
        Seeds :func:`stimulus_permutations`; the same seed gives the same permutations for
        every probe, layer, band and network.
    min_valid : int
        Probes with fewer valid trials are dropped (at least 3). The paper gives no number;
        the default, 50 of 250 images (1,225 pairs), is ours.
    alpha : float
        Significance threshold on ``p`` (the paper: 0.001).
    null : {"valid", "all"}
        How a probe with rejected trials is permuted (probes without are permuted by the
        shared permutation itself either way). ``"valid"``: its valid stimuli are permuted
        among themselves, in the order the shared permutation puts them (a Mantel test on the
        valid part of both RDMs: the layer entries compared are always the same ones, ranked
        once). ``"all"``: every stimulus label of the layer RDM is permuted, so the layer
        entries met by the valid pairs change with each permutation and are re-ranked every
        time (about one pass over the pairs per permutation, layer and set of rejected
        trials: several times slower).
    batch_size : int, optional
        Permutations per matrix product; by default about 64 MiB of float64 per batch (and
        per job).
    n_jobs : int
        Threads working on different permutation batches; ``-1`` uses every available core.
        With more than one, BLAS runs single-threaded inside this function. Results do not
        depend on ``n_jobs`` or ``batch_size``.
    progress : bool
        Show a tqdm progress bar (one step per permutation and set of rejected trials).

    Returns
    -------
    ProbeLayerTest
    """
    x = _check_responses(responses)
    n, n_probes = x.shape
    d = _check_layer_rdms(layer_rdms, n)
    n_perm = _check_int("n_permutations", n_permutations, 0)
    min_valid = _check_int("min_valid", min_valid, 3)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not 0 < alpha <= 1:
        raise ValueError(f"'alpha' must be a number in (0, 1], got {alpha!r}.")
    null = check_option("null", null, NULLS)
    layers = _Layers(d, n)
    groups, n_valid, kept, n_few, n_constant = _probe_groups(x, min_valid)
    if batch_size is None:
        batch_size = max(1, _BATCH_BYTES // (8 * layers.n_layers * layers.n_pairs))
    batch_size = _check_int("batch_size", batch_size, 1)
    n_jobs = _n_cores() if n_jobs == -1 else _check_int("n_jobs", n_jobs, 1)

    rho = np.full((n_probes, layers.n_layers), np.nan)
    counts = np.zeros(rho.shape, dtype=np.int64)
    perms = stimulus_permutations(n, n_perm, seed)
    batches = [perms[start : start + batch_size] for start in range(0, n_perm, batch_size)]
    parallel = n_jobs > 1 and len(batches) > 1
    blas = _single_threaded_blas() if parallel else contextlib.nullcontext()
    pool = ThreadPoolExecutor(n_jobs) if parallel else contextlib.nullcontext()
    with _progress_bar(progress, n_perm * len(groups)) as bar, blas, pool as executor:
        for g in groups:  # one group at a time: memory holds one group's prepared layers
            engine = _ValidNull(layers, g) if null == "valid" or g.complete else _AllNull(layers, g)
            observed = engine.rho(np.arange(n)[None, :])[:, :, 0]
            rho[g.probes] = observed
            ref = (observed - _TIE_TOL)[:, :, None]

            def count(batch, engine=engine, ref=ref):
                return (engine.rho(batch) >= ref).sum(axis=2)  # (n_g, L)

            parts = executor.map(count, batches) if parallel else map(count, batches)
            for batch, part in zip(batches, parts, strict=True):
                counts[g.probes] += part
                bar.update(batch.shape[0])
    p = np.full_like(rho, np.nan)
    if n_perm:
        p = (1.0 + counts) / (1.0 + n_perm)
        p[np.isnan(rho)] = np.nan
    with np.errstate(invalid="ignore"):
        significant = (p <= alpha) & (rho > 0)
    return ProbeLayerTest(
        rho=rho, p=p, significant=significant, kept=kept, n_valid=n_valid, n_permutations=n_perm,
        alpha=float(alpha), null=null, n_dropped_few_trials=n_few, n_dropped_constant=n_constant,
    )


def probe_layer_rsa(responses, layer_rdms, *, min_valid: int = 50) -> np.ndarray:
    """Spearman correlation of every probe's RDM with every layer RDM over its valid pairs.

    See :func:`permutation_test` (this is its ``rho`` without permutations).

    Returns
    -------
    rho : array (n_probes, n_layers); NaN for dropped probes.
    """
    return permutation_test(responses, layer_rdms, n_permutations=0, min_valid=min_valid).rho


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController  # a scikit-learn dependency

    return ThreadpoolController()


def _single_threaded_blas():
    """BLAS on one thread while ``n_jobs`` threads work on different permutation batches."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _n_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _progress_bar(enabled: bool, total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc="intracranial permutations", unit="perm")


# ---------------------------------------------------------------------------------------------
# Alignment
# ---------------------------------------------------------------------------------------------
def _check_significant(significant, areas, what: str = "significant"):
    sig = np.asarray(significant)
    if sig.ndim != 2 or sig.dtype.kind not in "bui":
        raise InputError(
            f"{what}: expected a boolean array (n_probes, n_layers), got {sig.dtype} of shape {sig.shape}."
        )
    a = np.asarray(areas)
    if a.ndim != 1 or a.shape[0] != sig.shape[0]:
        raise InputError(
            f"areas: expected one Brodmann area per probe, shape ({sig.shape[0]},), got shape {a.shape}."
        )
    return sig.astype(bool), a


def _area_index(areas: np.ndarray, visual_areas) -> np.ndarray:
    """Position of each probe's area in ``visual_areas`` (-1 if not a visual area)."""
    idx = np.full(areas.shape, -1, dtype=np.int64)
    for k, area in enumerate(visual_areas):
        idx[areas == area] = k
    return idx


def _counts_table(sig: np.ndarray, areas: np.ndarray, visual_areas) -> np.ndarray:
    """(n_areas, n_layers) number of significant probe-layer pairs per visual area."""
    idx = _area_index(areas, visual_areas)
    table = np.zeros((len(visual_areas), sig.shape[1]), dtype=np.int64)
    for k in range(len(visual_areas)):
        table[k] = sig[idx == k].sum(axis=0)
    return table


def alignment_points(significant, areas, visual_areas=VISUAL_AREAS) -> tuple[np.ndarray, np.ndarray]:
    """The (layer index, area index) point of every significant probe-layer pair in a visual area.

    Parameters
    ----------
    significant : bool array (n_probes, n_layers)
        Columns in depth order. Probes of several subjects may be stacked.
    areas : array (n_probes,)
        Brodmann area of each probe.
    visual_areas : sequence of int
        Areas in hierarchy order; the area index is the position in this sequence.

    Returns
    -------
    layer_index, area_index : int arrays (n_points,)
        In probe-major order (probe by probe, layers ascending).
    """
    sig, a = _check_significant(significant, areas)
    idx = _area_index(a, visual_areas)
    probe, layer = np.nonzero(sig & (idx >= 0)[:, None])
    return layer.astype(np.int64), idx[probe]


@dataclass(frozen=True)
class Alignment:
    """Output of :func:`alignment`.

    Attributes
    ----------
    rho, rho_p : float
        Spearman correlation of (layer index, area index) over the points and its p value
        (:func:`scipy.stats.spearmanr`, two-sided); NaN with fewer than 2 distinct points.
    tau, tau_p : float
        Kendall's tau-b and p value (:func:`scipy.stats.kendalltau`).
    n_points : int
        Significant probe-layer pairs in the visual areas.
    counts : int array (n_areas, n_layers)
        The points as a table: rows ``visual_areas``, columns layers.
    """

    rho: float
    rho_p: float
    tau: float
    tau_p: float
    n_points: int
    counts: np.ndarray


def alignment(significant, areas, visual_areas=VISUAL_AREAS) -> Alignment:
    """rho_align: Spearman(layer index, area index) over significant probe-layer pairs.

    Each significant (positive, ``p <= alpha``) probe-layer pair of a probe in one of
    ``visual_areas`` is one point; see :func:`alignment_points`. Stack the probes of all
    subjects (of one band and window) to get the paper's figure.

    Returns
    -------
    Alignment
    """
    sig, a = _check_significant(significant, areas)
    layer, area = alignment_points(sig, a, visual_areas)
    counts = _counts_table(sig, a, visual_areas)
    nan = float("nan")
    if layer.size < 2 or np.ptp(layer) == 0 or np.ptp(area) == 0:
        return Alignment(nan, nan, nan, nan, int(layer.size), counts)
    r = sp_stats.spearmanr(layer, area)
    t = sp_stats.kendalltau(layer, area)
    return Alignment(float(r.statistic), float(r.pvalue), float(t.statistic), float(t.pvalue),
                     int(layer.size), counts)


def _midranks(totals: np.ndarray) -> np.ndarray:
    """Average rank of each category given the number of points in each (ordered) category."""
    before = np.cumsum(totals, axis=-1) - totals
    return before + (totals + 1) / 2.0


def _spearman_from_counts(tables: np.ndarray) -> np.ndarray:
    """Spearman rho of the points counted in ``tables`` (..., n_areas, n_layers).

    Equal to :func:`scipy.stats.spearmanr` on the expanded points: ties get midranks.
    """
    tables = np.asarray(tables, dtype=np.float64)
    n = tables.sum(axis=(-2, -1))
    rows, cols = tables.sum(axis=-1), tables.sum(axis=-2)
    mean = (n + 1) / 2.0
    ra = _midranks(rows) - mean[..., None]
    rl = _midranks(cols) - mean[..., None]
    cov = np.einsum("...a,...al,...l->...", ra, tables, rl)
    var_a = np.einsum("...a,...a->...", rows, ra**2)
    var_l = np.einsum("...l,...l->...", cols, rl**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return cov / np.sqrt(var_a * var_l)


def _kendall_from_counts(tables: np.ndarray) -> np.ndarray:
    """Kendall tau-b of the points counted in ``tables`` (..., n_areas, n_layers)."""
    t = np.asarray(tables, dtype=np.float64)
    # cells strictly below-right / below-left of each cell: concordant / discordant partners
    below = np.flip(np.cumsum(np.flip(t, axis=-2), axis=-2), axis=-2)  # rows >= a
    below = np.concatenate([below[..., 1:, :], np.zeros_like(below[..., :1, :])], axis=-2)  # rows > a
    right = np.flip(np.cumsum(np.flip(below, axis=-1), axis=-1), axis=-1)  # cols >= l
    right = np.concatenate([right[..., 1:], np.zeros_like(right[..., :1])], axis=-1)  # cols > l
    left = np.cumsum(below, axis=-1) - below  # cols < l
    concordant = (t * right).sum(axis=(-2, -1))
    discordant = (t * left).sum(axis=(-2, -1))
    n = t.sum(axis=(-2, -1))
    n0 = n * (n - 1) / 2.0
    rows, cols = t.sum(axis=-1), t.sum(axis=-2)
    n1 = (rows * (rows - 1) / 2.0).sum(axis=-1)
    n2 = (cols * (cols - 1) / 2.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (concordant - discordant) / np.sqrt((n0 - n1) * (n0 - n2))


# ---------------------------------------------------------------------------------------------
# Mapping matrix
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MappingMatrix:
    """Output of :func:`mapping_matrix`: significant probes per area x layer.

    Attributes
    ----------
    areas : tuple of int
        Row labels (Brodmann areas).
    counts : int array (n_areas, n_layers)
        Probes of the area significant for the layer.
    n_probes : int array (n_areas,)
        Probes (kept ones) in the area.
    n_significant_probes : int array (n_areas,)
        Probes of the area significant for at least one layer.
    fraction : array (n_areas, n_layers)
        ``counts / n_probes``; NaN for an area without probes.
    score : array (n_areas, n_layers) or None
        With ``rho``: the authors' heat map, the sum of the significant rho of the area's
        probes for the layer divided by ``n_significant_probes`` (0 where none).
    """

    areas: tuple
    counts: np.ndarray
    n_probes: np.ndarray
    n_significant_probes: np.ndarray
    fraction: np.ndarray
    score: np.ndarray | None


def mapping_matrix(significant, areas, *, rho=None, kept=None, area_list=VISUAL_AREAS) -> MappingMatrix:
    """Fraction of probes significant for each layer, per area (the paper's area x layer map).

    Parameters
    ----------
    significant : bool array (n_probes, n_layers)
        Probes of all subjects stacked; columns in depth order.
    areas : array (n_probes,)
        Brodmann area of each probe.
    rho : array (n_probes, n_layers), optional
        RSA scores, for the authors' ``score`` map.
    kept : bool array (n_probes,), optional
        Probes that were scored; dropped probes do not count in ``n_probes``. Default: all.
    area_list : sequence of int
        Rows of the matrix, in order (default the visual areas 17, 18, 19, 37, 20).

    Returns
    -------
    MappingMatrix
    """
    sig, a = _check_significant(significant, areas)
    keep = np.ones(a.shape, dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    if keep.shape != a.shape:
        raise InputError(f"kept: expected shape {a.shape}, got {keep.shape}.")
    if rho is not None:
        rho = np.asarray(rho, dtype=np.float64)
        if rho.shape != sig.shape:
            raise InputError(f"rho: expected shape {sig.shape} like `significant`, got {rho.shape}.")
    sig = sig & keep[:, None]
    n_areas, n_layers = len(area_list), sig.shape[1]
    counts = np.zeros((n_areas, n_layers), dtype=np.int64)
    n_probes = np.zeros(n_areas, dtype=np.int64)
    n_sig = np.zeros(n_areas, dtype=np.int64)
    score = None if rho is None else np.zeros((n_areas, n_layers))
    for k, area in enumerate(area_list):
        in_area = (a == area) & keep
        counts[k] = sig[in_area].sum(axis=0)
        n_probes[k] = in_area.sum()
        n_sig[k] = sig[in_area].any(axis=1).sum()
        if score is not None and n_sig[k]:
            score[k] = np.where(sig[in_area], rho[in_area], 0.0).sum(axis=0) / n_sig[k]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(n_probes[:, None] > 0, counts / np.maximum(n_probes, 1)[:, None], np.nan)
    return MappingMatrix(tuple(int(x) for x in area_list), counts, n_probes, n_sig, fraction, score)


# ---------------------------------------------------------------------------------------------
# Split-half noise estimate
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SplitHalfAlignment:
    """Output of :func:`split_half_alignment`.

    Attributes
    ----------
    rho, tau : arrays (n_splits, 2)
        rho_align (Spearman) and Kendall tau-b of each half of each split; NaN for a half
        with fewer than 2 distinct points.
    halves : bool array (n_splits, n_subjects)
        True where the subject is in the first half.
    """

    rho: np.ndarray
    tau: np.ndarray
    halves: np.ndarray

    @property
    def rho_mean(self) -> float:
        """Mean rho_align over all halves (NaN halves ignored)."""
        return float(np.nanmean(self.rho)) if np.isfinite(self.rho).any() else float("nan")

    @property
    def rho_sd(self) -> float:
        """Standard deviation of rho_align over all halves: the noise band."""
        return float(np.nanstd(self.rho)) if np.isfinite(self.rho).any() else float("nan")

    @property
    def rho_abs_difference(self) -> np.ndarray:
        """|rho(first half) - rho(second half)| per split."""
        return np.abs(self.rho[:, 0] - self.rho[:, 1])


def split_half_alignment(
    significant: Sequence,
    areas: Sequence,
    *,
    n_splits: int = 1000,
    seed=0,
    visual_areas=VISUAL_AREAS,
    balanced: bool = True,
) -> SplitHalfAlignment:
    """rho_align on random halves of the subjects, repeated: the paper's noise estimate.

    Parameters
    ----------
    significant : sequence of bool arrays (n_probes_s, n_layers), one per subject
    areas : sequence of arrays (n_probes_s,), one per subject
    n_splits : int
        Random splits (the paper: 1000).
    seed : int or numpy.random.Generator
    visual_areas : sequence of int
    balanced : bool
        True (the authors' code): subjects are taken in a random order and each joins the
        half whose per-area counts of visual-area probes it brings closer to the other's
        (ties to the second half), so both halves hold similar numbers of probes per area.
        False: a random permutation of the subjects, the first ``n_subjects // 2`` form the
        first half.

    Returns
    -------
    SplitHalfAlignment
    """
    if len(significant) != len(areas):
        raise InputError(
            f"split_half_alignment: {len(significant)} significance arrays but {len(areas)} area arrays; "
            "expected one of each per subject."
        )
    n_sub = len(significant)
    if n_sub < 2:
        raise InputError(f"split_half_alignment: at least 2 subjects are needed, got {n_sub}.")
    n_splits = _check_int("n_splits", n_splits, 1)
    tables, probe_counts, n_layers = [], [], None
    for s, (sig, a) in enumerate(zip(significant, areas, strict=True)):
        sig, a = _check_significant(sig, a, what=f"significant[{s}]")
        if n_layers is None:
            n_layers = sig.shape[1]
        elif sig.shape[1] != n_layers:
            raise InputError(
                f"significant[{s}]: {sig.shape[1]} layers, but subject 0 has {n_layers}; all subjects "
                "must be scored against the same layers."
            )
        tables.append(_counts_table(sig, a, visual_areas))
        probe_counts.append(np.array([(a == v).sum() for v in visual_areas], dtype=np.int64))
    tables = np.stack(tables)  # (S, A, L)
    probe_counts = np.stack(probe_counts)  # (S, A)
    rng = make_rng(seed)
    halves = np.zeros((n_splits, n_sub), dtype=bool)
    for r in range(n_splits):
        order = rng.permutation(n_sub)
        if balanced:
            one = np.zeros(len(visual_areas), dtype=np.int64)
            two = np.zeros_like(one)
            for s in order:
                to_one = np.abs(one - two + probe_counts[s]).sum() < np.abs(two - one + probe_counts[s]).sum()
                if to_one:
                    one += probe_counts[s]
                    halves[r, s] = True
                else:
                    two += probe_counts[s]
        else:
            halves[r, order[: n_sub // 2]] = True
    first = np.einsum("rs,sal->ral", halves.astype(np.int64), tables)
    second = tables.sum(axis=0)[None] - first
    both = np.stack([first, second], axis=1)  # (R, 2, A, L)
    return SplitHalfAlignment(rho=_spearman_from_counts(both), tau=_kendall_from_counts(both), halves=halves)
