"""Single units matched to recorded sites by Pearson correlation (Arend et al. 2018).

For every site (column of ``site_responses``), the paper's *neural correlation* takes the
Pearson r across stimuli of every unit of every layer and keeps the best unit; the model
score is the median of the best r over the sites of a region. :class:`UnitMatcher`
computes it streamed, batch by batch, as the network runs:

- ``update(layer, activations, rows)`` takes a batch ``(B, *shape)`` of one layer's
  activations (conv maps ``(B, C, H, W)``; flattened channel-major, so unit ``u`` is
  ``(c, y, x) = unravel_index(u, (C, H, W))``) for the stimuli ``rows`` (any order,
  uneven batches, each stimulus once per layer);
- it keeps, per layer, the sufficient statistics of each unit and its cross-products with
  the sites: memory is ``n_units x n_sites`` float64 per layer in flight (plus a buffer of
  ``buffer_rows`` rows, 256 by default, that groups small batches into larger matrix
  products), never ``n_stimuli x n_units``;
- when a layer has seen every stimulus it is reduced at once to what the results need
  (per site its top-``top_k`` units and the held-out selections) and its statistics are
  freed, so running the layers of a network in several passes (:func:`plan_passes`) bounds
  the peak memory by the layers of one pass.

Numerical approach (all float64): the site responses are centred once, up front (per
half of the stimuli with the held-out option), ``yc = y - mean(y)``; then

- per unit, mean and sum of squared deviations ``M2`` are merged over batches with Chan
  et al.'s pairwise update (no ``sum(x^2) - n mean^2`` cancellation);
- the co-moment with each site is ``sum_i (x_i - s) yc_i``, equal to
  ``sum_i (x_i - mean x)(y_i - mean y)`` because ``sum_i yc_i = 0``, where the shift ``s``
  is the unit's mean over the first batch it saw (shifted-data algorithm: no large
  cancelling terms when a unit's mean dwarfs its spread);
- ``r = comoment / sqrt(M2_x * sum(yc^2))``. A unit that is exactly constant over the
  stimuli (its minimum equals its maximum: dead ReLUs) has no r; it is never selected.

Held-out selection (``holdout=True``): the stimuli are split once, seeded, into two
halves (within each stratum when ``strata`` is given). Statistics are kept per half;
the in-sample (all stimuli) statistics follow exactly from the two halves' (Chan's
merge of means, ``M2`` and co-moments), so the option doubles the cross-product memory,
nothing else. For each fold the unit is selected on one half and its r reported on the
other; :attr:`MatchResult.heldout_r` is the mean over the two folds.

The best r is the largest *signed* r ("most highly correlated", the paper). Ties go to
the earlier layer (first-update order), then the lower unit index.

Controls (Arend et al. 2018): :func:`random_rotation` (Haar-random R in SO(N)) and
:func:`rotate_channels` (R applied to the channel vector at every spatial location),
:class:`RandomActivations` (N(0, 1) activations with given layer sizes) and
:func:`pixels_layer` (raw pixels as units). :class:`UnitGatherer` collects the
activations of chosen units (a second pass, for matched-population decoding), and
:func:`sample_unmatched_units` draws the random-unit baseline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy.linalg import blas as _blas

from brainalign.utils import InputError, atomic_path, check_finite, make_rng

__all__ = [
    "UnitMatcher",
    "MatchResult",
    "match_units",
    "holdout_split",
    "unit_location",
    "median_by_region",
    "accumulator_bytes",
    "plan_passes",
    "random_rotation",
    "rotate_channels",
    "RandomActivations",
    "pixels_layer",
    "UnitGatherer",
    "sample_unmatched_units",
    "save_match_result",
    "load_match_result",
]

TOP_K = 100
_CHUNK_BYTES = 64 * 2**20  # temporaries of update/finalise are kept below about this size
_ROW_CHUNK = 256  # stimuli per accumulation step (larger batches are split)


# --------------------------------------------------------------------------- helpers


def holdout_split(n_stimuli: int, seed=0, strata=None) -> np.ndarray:
    """Fold (0 or 1) of each stimulus: a seeded random half split.

    Within each stratum (e.g. object or category labels) the stimuli are permuted and
    the first ``floor(m / 2)`` go to fold 0; without ``strata`` the whole set is one
    stratum. Both folds must be non-empty.
    """
    rng = make_rng(seed)
    n = int(n_stimuli)
    folds = np.ones(n, dtype=np.int8)
    if strata is None:
        groups = [np.arange(n)]
    else:
        strata = np.asarray(strata)
        if strata.shape != (n,):
            raise InputError(f"holdout_split: strata has shape {strata.shape}; expected ({n},).")
        groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for g in groups:
        perm = rng.permutation(g)
        folds[perm[: len(g) // 2]] = 0
    if folds.min() == folds.max():
        raise InputError(f"holdout_split: {n} stimuli cannot be split into two non-empty halves.")
    return folds


def unit_location(shape: Sequence[int], unit) -> dict[str, np.ndarray]:
    """Map flat unit indices of a layer of per-stimulus ``shape`` to where they are.

    Units are flattened channel-major (C order of ``shape = (C, ...)``). Returns int64
    arrays ``channel`` (feature map), ``position`` (flat spatial index), ``y`` and ``x``;
    ``y``/``x`` are -1 where the layer has no such axis (``(C,)``: both; ``(C, W)``:
    ``y``; three or more spatial axes: both). Index -1 (no unit) maps to -1 everywhere.
    """
    shape = tuple(int(s) for s in shape) or (1,)
    unit = np.asarray(unit, dtype=np.int64)
    valid = unit >= 0
    u = np.where(valid, unit, 0)
    spatial = int(np.prod(shape[1:], dtype=np.int64))
    channel = u // spatial
    position = u % spatial
    y = np.full_like(u, -1)
    x = np.full_like(u, -1)
    if len(shape) == 2:
        x = position.copy()
    elif len(shape) == 3:
        y, x = position // shape[2], position % shape[2]
    out = {"channel": channel, "position": position, "y": y, "x": x}
    return {k: np.where(valid, v, -1) for k, v in out.items()}


def median_by_region(values, regions) -> dict[str, float]:
    """``{region: median of values over its sites}`` (NaN ignored), regions in first-seen order."""
    values = np.asarray(values, dtype=np.float64)
    regions = np.asarray(regions)
    if values.shape[-1] != regions.shape[0]:
        raise InputError(f"{values.shape[-1]} sites but {regions.shape[0]} region labels.")
    out = {}
    for r in dict.fromkeys(regions.tolist()):
        v = values[..., regions == r]
        out[str(r)] = float(np.nanmedian(v)) if np.isfinite(v).any() else float("nan")
    return out


def accumulator_bytes(
    n_units: int, n_sites: int, holdout: bool = False, buffer_rows: int = 256, itemsize: int = 4
) -> int:
    """Bytes :class:`UnitMatcher` holds for a layer of ``n_units`` while it streams.

    Co-moments ``folds x n_sites`` float64 per unit, five float64 statistics per fold and
    unit, and the row buffer (``buffer_rows`` rows of ``itemsize``-byte activations).
    """
    folds = 2 if holdout else 1
    per_unit = (folds * (int(n_sites) + 4) + 1) * 8 + (int(buffer_rows) if buffer_rows > 1 else 0) * itemsize
    return int(n_units) * per_unit


def plan_passes(
    layer_units: Mapping[str, int],
    n_sites: int,
    budget_bytes: int,
    holdout: bool = False,
    buffer_rows: int = 256,
) -> list[list[str]]:
    """Group layers (in the given order) into passes whose accumulators fit ``budget_bytes``.

    A layer larger than the budget gets a pass of its own. Each pass is one run of the
    network over all stimuli with only those layers fed to the same :class:`UnitMatcher`.
    """
    passes: list[list[str]] = []
    used = 0
    for name, p in layer_units.items():
        b = accumulator_bytes(p, n_sites, holdout, buffer_rows)
        if passes and used + b <= budget_bytes:
            passes[-1].append(name)
            used += b
        else:
            passes.append([name])
            used = b
    return passes


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------- result


@dataclasses.dataclass
class MatchResult:
    """Best-matching units per site (:meth:`UnitMatcher.result`).

    Unit indices are flat, channel-major within their layer; ``*_layer`` are indices into
    ``layers``. Missing entries (fewer valid units than ``top_k``, no valid unit) have
    r = NaN and indices -1.

    Attributes
    ----------
    layers : list of str
        Layer order (first update, unless ``layer_order`` was given).
    layer_shapes : list of tuple
        Per-stimulus shape of each layer.
    depths : ndarray (n_layers,)
        Depth of each layer, 0..1.
    best_r, best_layer, best_unit, best_channel, best_y, best_x, best_depth : (n_sites,)
        The best unit over all layers, in-sample (all stimuli; the paper's metric).
    top_r, top_layer, top_unit, top_channel, top_y, top_x : (n_sites, top_k)
        The top units over all layers, best first (column 0 = best).
    layer_best_r, layer_best_unit : (n_layers, n_sites)
        The best unit within each layer.
    layer_top_r, layer_top_unit : (n_layers, n_sites, top_k)
        The top units within each layer.
    heldout_r : (n_sites,) or None
        Held-out option: r on the other half of the unit selected on one half (over all
        layers), mean over the two folds.
    heldout_r_folds, heldout_select_r, heldout_layer, heldout_unit : (2, n_sites) or None
        Per fold: held-out r, selection-half r, layer and unit selected.
    layer_heldout_r : (n_layers, n_sites) or None
        As ``heldout_r``, selecting within each layer.
    folds : (n_stimuli,) int8 or None
        The split (fold f selects on stimuli with ``folds == f``).
    """

    layers: list
    layer_shapes: list
    depths: np.ndarray
    best_r: np.ndarray
    best_layer: np.ndarray
    best_unit: np.ndarray
    best_channel: np.ndarray
    best_y: np.ndarray
    best_x: np.ndarray
    best_depth: np.ndarray
    top_r: np.ndarray
    top_layer: np.ndarray
    top_unit: np.ndarray
    top_channel: np.ndarray
    top_y: np.ndarray
    top_x: np.ndarray
    layer_best_r: np.ndarray
    layer_best_unit: np.ndarray
    layer_top_r: np.ndarray
    layer_top_unit: np.ndarray
    heldout_r: np.ndarray | None = None
    heldout_r_folds: np.ndarray | None = None
    heldout_select_r: np.ndarray | None = None
    heldout_layer: np.ndarray | None = None
    heldout_unit: np.ndarray | None = None
    layer_heldout_r: np.ndarray | None = None
    folds: np.ndarray | None = None

    def score(self, regions) -> dict[str, float]:
        """Neural correlation: median best r (all layers) per region."""
        return median_by_region(self.best_r, regions)

    def heldout_score(self, regions) -> dict[str, float]:
        """Median held-out r per region (held-out option only)."""
        if self.heldout_r is None:
            raise InputError("This result was computed without holdout=True; no held-out r.")
        return median_by_region(self.heldout_r, regions)

    def layer_scores(self, regions, heldout: bool = False) -> dict[str, np.ndarray]:
        """Per region, the median over sites of the best r within each layer, (n_layers,)."""
        values = self.layer_heldout_r if heldout else self.layer_best_r
        if values is None:
            raise InputError("This result was computed without holdout=True; no held-out r.")
        regions = np.asarray(regions)
        out = {}
        for r in dict.fromkeys(regions.tolist()):
            v = values[:, regions == r]
            out[str(r)] = np.array([np.nanmedian(row) if np.isfinite(row).any() else np.nan for row in v])
        return out

    def best_layers(self, regions, heldout: bool = False) -> dict[str, str]:
        """Per region, the layer with the highest median per-layer best r ("V4-like", "IT-like")."""
        return {r: self.layers[int(np.nanargmax(s))] for r, s in self.layer_scores(regions, heldout).items()}


def save_match_result(path, result: MatchResult) -> Path:
    """Write a :class:`MatchResult` to an ``.npz`` file (atomically, no pickles)."""
    arrays = {}
    for f in dataclasses.fields(result):
        v = getattr(result, f.name)
        if v is None:
            continue
        if f.name == "layers":
            v = np.asarray(v, dtype=str)
        elif f.name == "layer_shapes":
            arrays["layer_shape_ndim"] = np.array([len(s) for s in v], dtype=np.int64)
            v = np.array([d for s in v for d in s], dtype=np.int64)
        arrays[f.name] = np.asarray(v)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)


def load_match_result(path) -> MatchResult:
    """Read a file written by :func:`save_match_result`."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot be read as a unit-matching result ({err}).") from err
    try:
        ndim = data.pop("layer_shape_ndim")
        flat = data["layer_shapes"].tolist()
        splits = np.cumsum(ndim)[:-1]
        data["layer_shapes"] = [tuple(s) for s in np.split(np.asarray(flat, dtype=np.int64), splits)]
        data["layers"] = [str(s) for s in data["layers"]]
        return MatchResult(**data)
    except (KeyError, TypeError) as err:
        raise InputError(f"{path}: not a unit-matching result file ({err}).") from err


# --------------------------------------------------------------------------- matcher


class _Layer:
    """Streaming statistics of one layer (folds f = 0..F-1).

    ``mean`` and ``m2`` are of the shifted values ``x - shift``. The co-moments are kept
    per chunk of units, ``cross[j]`` of shape ``(F, n_sites, c)``, so that each fold's
    block is C-contiguous and BLAS accumulates into it in place.
    """

    def __init__(self, shape, n_stimuli, n_folds, n_sites):
        self.shape = shape
        self.p = int(np.prod(shape, dtype=np.int64))
        self.seen = np.zeros(n_stimuli, dtype=bool)
        self.count = np.zeros(n_folds, dtype=np.int64)
        self.mean = np.zeros((n_folds, self.p))
        self.m2 = np.zeros((n_folds, self.p))
        self.xmin = np.full((n_folds, self.p), np.inf)
        self.xmax = np.full((n_folds, self.p), -np.inf)
        self.shift = None
        step = _unit_chunk(n_sites)
        self.chunks = [(a, min(a + step, self.p)) for a in range(0, self.p, step)]
        self.cross = [np.zeros((n_folds, n_sites, b - a)) for a, b in self.chunks]
        self.buf = None  # rows waiting to be merged (fewer, larger BLAS calls)
        self.buf_rows = None
        self.n_buf = 0


def _unit_chunk(n_sites: int) -> int:
    return max(1, _CHUNK_BYTES // (8 * max(_ROW_CHUNK, n_sites)))


def _accumulate(c, d, yc):
    """``c += (d.T @ yc).T`` in place: c (s, k) C-contiguous, d (m, k), yc (m, s), float64."""
    out = _blas.dgemm(1.0, d.T, yc, beta=1.0, c=c.T, overwrite_c=True)
    if not np.shares_memory(out, c):  # pragma: no cover - scipy copied after all
        c[...] = out.T


class UnitMatcher:
    """Streamed search, for every site, of the best-correlated units of every layer.

    Parameters
    ----------
    site_responses : array (n_stimuli, n_sites)
        Responses of the recorded sites (e.g. repetition-averaged spike counts), finite,
        each site non-constant.
    top_k : int
        Runner-ups kept per site, over all layers and within each layer.
    holdout : bool
        Also select units on one half of the stimuli and report r on the other
        (module docstring).
    holdout_seed : int or numpy.random.Generator
        Seeds the split.
    strata : array (n_stimuli,), optional
        Split within each stratum (e.g. object names), see :func:`holdout_split`.
    layer_depths : mapping layer -> float, optional
        Depth (0..1) of each layer; default: layers in ``layer_order`` (or first-update
        order) spaced linearly from 0 to 1, as in the paper (Fig. S7).
    layer_order : sequence of str, optional
        The order of the layers in the result (every updated layer must be listed).
    buffer_rows : int
        Batches smaller than this are held (in their float dtype) until this many rows of
        the layer have arrived, then merged at once: fewer, larger matrix products, which
        run several times faster than one per small batch, for ``buffer_rows x n_units``
        more memory per layer in flight (see :func:`accumulator_bytes`). 0 or 1: merge
        every batch as it comes.
    """

    def __init__(
        self,
        site_responses,
        *,
        top_k: int = TOP_K,
        holdout: bool = False,
        holdout_seed=0,
        strata=None,
        layer_depths: Mapping[str, float] | None = None,
        layer_order: Sequence[str] | None = None,
        buffer_rows: int = 256,
    ):
        y = check_finite(np.asarray(site_responses, dtype=np.float64), "UnitMatcher: site_responses")
        if y.ndim != 2 or y.shape[0] < 3 or y.shape[1] < 1:
            raise InputError(
                f"UnitMatcher: site_responses must be (n_stimuli >= 3, n_sites >= 1), got {y.shape}."
            )
        flat = np.flatnonzero(y.min(axis=0) == y.max(axis=0))
        if flat.size:
            raise InputError(
                f"UnitMatcher: site(s) {flat[:5].tolist()} respond identically to every stimulus; "
                "their correlation with any unit is undefined."
            )
        if int(top_k) < 1:
            raise InputError(f"UnitMatcher: top_k must be >= 1, got {top_k!r}.")
        self.n_stimuli, self.n_sites = y.shape
        self.top_k = int(top_k)
        self.buffer_rows = int(buffer_rows)
        self.holdout = bool(holdout)
        if self.holdout:
            self.folds = holdout_split(self.n_stimuli, holdout_seed, strata)
        else:
            self.folds = np.zeros(self.n_stimuli, dtype=np.int8)
        self.n_folds = 2 if self.holdout else 1
        self._ymean = np.stack([y[self.folds == f].mean(axis=0) for f in range(self.n_folds)])
        self._yc = y - self._ymean[self.folds]
        self._yss = np.stack([(self._yc[self.folds == f] ** 2).sum(axis=0) for f in range(self.n_folds)])
        if self.holdout:
            bad = np.flatnonzero((self._yss == 0).any(axis=0))
            if bad.size:
                raise InputError(
                    f"UnitMatcher: site(s) {bad[:5].tolist()} are constant on one half of the "
                    "held-out split; use another holdout_seed or more stimuli."
                )
        yc_all = y - y.mean(axis=0)
        self._yss_all = (yc_all**2).sum(axis=0)
        self._layer_depths = dict(layer_depths) if layer_depths is not None else None
        self._layer_order = list(layer_order) if layer_order is not None else None
        self._active: dict[str, _Layer] = {}
        self._done: dict[str, dict] = {}
        self._order: list[str] = []

    # ----------------------------------------------------------------- streaming

    def update(self, layer: str, activations, rows) -> None:
        """Add a batch of one layer's activations.

        Parameters
        ----------
        layer : str
            Layer name.
        activations : array (B, *shape)
            Numpy array or torch tensor; conv maps ``(B, C, H, W)`` channel-major.
        rows : int or array of int (B,)
            The stimuli (rows of ``site_responses``) of the batch: an int ``start`` means
            ``start, ..., start + B - 1``. Every stimulus must come exactly once per layer.
        """
        x = _as_numpy(activations)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim < 2 or x.shape[0] == 0:
            raise InputError(f"Layer {layer!r}: activations must be (batch, ...), got shape {x.shape}.")
        B = x.shape[0]
        shape = tuple(int(s) for s in x.shape[1:])
        if np.ndim(rows) == 0:
            rows = np.arange(int(rows), int(rows) + B)
        rows = np.asarray(rows)
        if rows.shape != (B,) or rows.dtype.kind not in "iu":
            raise InputError(
                f"Layer {layer!r}: rows must be an int or {B} integer stimulus indices, got "
                f"{rows.dtype} array of shape {rows.shape}."
            )
        if rows.min() < 0 or rows.max() >= self.n_stimuli:
            raise InputError(
                f"Layer {layer!r}: stimulus rows {rows.min()}..{rows.max()} out of range 0.."
                f"{self.n_stimuli - 1}."
            )
        if layer in self._done:
            raise InputError(f"Layer {layer!r} already saw all {self.n_stimuli} stimuli; extra batch given.")
        st = self._active.get(layer)
        if st is None and self._layer_order is not None and layer not in self._layer_order:
            raise InputError(f"Layer {layer!r} is not in layer_order {self._layer_order}.")
        if st is not None and shape != st.shape:
            raise InputError(f"Layer {layer!r}: batch of per-stimulus shape {shape}; earlier {st.shape}.")
        uniq, counts = np.unique(rows, return_counts=True)
        again = uniq[counts > 1]
        if not again.size and st is not None:
            again = rows[st.seen[rows]]
        if again.size:
            raise InputError(f"Layer {layer!r}: stimulus row(s) {again[:5].tolist()} given twice.")
        if x.dtype.kind not in "biuf":
            raise InputError(f"Layer {layer!r}: activations of dtype {x.dtype}; expected real numbers.")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise InputError(
                f"Layer {layer!r}: non-finite activations (NaN or inf) for stimulus rows "
                f"{rows.min()}..{rows.max()}."
            )
        if st is None:
            st = self._active[layer] = _Layer(shape, self.n_stimuli, self.n_folds, self.n_sites)
            self._order.append(layer)
        st.seen[rows] = True
        x = x.reshape(B, st.p)
        cap = self.buffer_rows
        if B < cap and x.dtype in (np.float32, np.float64) and (st.buf is None or st.buf.dtype == x.dtype):
            if st.buf is None:
                st.buf = np.empty((cap, st.p), dtype=x.dtype)
                st.buf_rows = np.empty(cap, dtype=np.int64)
            if st.n_buf + B > cap:
                self._flush(st)
            st.buf[st.n_buf : st.n_buf + B] = x
            st.buf_rows[st.n_buf : st.n_buf + B] = rows
            st.n_buf += B
        else:
            self._flush(st)
            self._accumulate_rows(st, x, rows)
        if st.seen.all():
            self._flush(st)
            self._done[layer] = self._finalise(st)
            del self._active[layer]

    def _flush(self, st: _Layer) -> None:
        if st.n_buf:
            self._accumulate_rows(st, st.buf[: st.n_buf], st.buf_rows[: st.n_buf])
            st.n_buf = 0

    def _accumulate_rows(self, st: _Layer, x, rows) -> None:
        """Merge the rows ``x`` (m, p) of stimuli ``rows`` into the layer's statistics."""
        if st.shift is None:  # shifted-data algorithm: the first rows' mean per unit
            st.shift = x.mean(axis=0, dtype=np.float64)
        folds = self.folds[rows]
        for f in range(self.n_folds):
            sel = folds == f
            if not sel.any():
                continue
            xf = x if self.n_folds == 1 else x[sel]
            ycf = self._yc[rows[sel]]
            for r0 in range(0, xf.shape[0], _ROW_CHUNK):
                xr = xf[r0 : r0 + _ROW_CHUNK]
                yr = ycf[r0 : r0 + _ROW_CHUNK]
                m = xr.shape[0]
                n0 = st.count[f]
                tot = n0 + m
                for (a, b), cross in zip(st.chunks, st.cross, strict=True):
                    xs = xr[:, a:b]
                    d = np.subtract(xs, st.shift[a:b], dtype=np.float64)
                    bmean = d.mean(axis=0)
                    delta = bmean - st.mean[f, a:b]
                    st.m2[f, a:b] += ((d - bmean) ** 2).sum(axis=0) + delta**2 * (n0 * m / tot)
                    st.mean[f, a:b] += delta * (m / tot)
                    np.minimum(st.xmin[f, a:b], xs.min(axis=0), out=st.xmin[f, a:b])
                    np.maximum(st.xmax[f, a:b], xs.max(axis=0), out=st.xmax[f, a:b])
                    _accumulate(cross[f], d, yr)
                st.count[f] = tot

    # ----------------------------------------------------------------- reduction

    def _finalise(self, st: _Layer) -> dict:
        k = min(self.top_k, st.p)
        s = self.n_sites
        F = self.n_folds
        top_v = np.full((s, 0), -np.inf)
        top_i = np.zeros((s, 0), dtype=np.int64)
        sel_v = np.full((F, s), -np.inf)
        sel_i = np.full((F, s), -1, dtype=np.int64)
        if F == 2:
            n0, n1 = st.count
            w = n0 * n1 / (n0 + n1)
            dmean = st.mean[0] - st.mean[1]
            dy = self._ymean[0] - self._ymean[1]
            m2_all = st.m2[0] + st.m2[1] + w * dmean**2
        else:
            m2_all = st.m2[0]
        const_all = st.xmin.min(axis=0) == st.xmax.max(axis=0)
        const_fold = st.xmin == st.xmax
        for (a, b), cross in zip(st.chunks, st.cross, strict=True):
            full = cross[0] + cross[1] + w * np.outer(dy, dmean[a:b]) if F == 2 else cross[0]
            r = _corr(full, m2_all[a:b], self._yss_all, const_all[a:b])
            top_v, top_i = _merge_topk(top_v, top_i, r, np.arange(a, b), k)
            if F == 2:
                for f in range(F):
                    rf = _corr(cross[f], st.m2[f, a:b], self._yss[f], const_fold[f, a:b])
                    j = np.argmax(rf, axis=1)
                    v = rf[np.arange(s), j]
                    better = v > sel_v[f]
                    sel_v[f, better] = v[better]
                    sel_i[f, better] = a + j[better]
        order = np.lexsort((top_i, -top_v), axis=1)
        top_v = np.take_along_axis(top_v, order, axis=1)
        top_i = np.take_along_axis(top_i, order, axis=1)
        invalid = ~np.isfinite(top_v)
        top_v[invalid] = np.nan
        top_i[invalid] = -1
        out = {
            "shape": st.shape,
            "top_r": _pad(top_v, self.top_k, np.nan),
            "top_unit": _pad(top_i, self.top_k, -1),
        }
        if F == 2:
            held = np.full((F, s), np.nan)
            for f in range(F):
                g = 1 - f
                ok = sel_i[f] >= 0
                u = sel_i[f, ok]
                sites = np.flatnonzero(ok)
                step = st.chunks[0][1]
                c = np.array([st.cross[i // step][g, j, i % step] for i, j in zip(u, sites, strict=True)])
                with np.errstate(invalid="ignore", divide="ignore"):
                    h = c / np.sqrt(st.m2[g, u] * self._yss[g, sites])
                held[f, ok] = np.where(const_fold[g, u], np.nan, h)
            sel_v[~np.isfinite(sel_v)] = np.nan
            out.update(sel_r=sel_v, sel_unit=sel_i, held_r=held)
        return out

    def result(self) -> MatchResult:
        """Reduce everything seen to a :class:`MatchResult`; every layer must be complete."""
        if self._active:
            missing = {n: int((~st.seen).sum()) for n, st in self._active.items()}
            raise InputError(
                f"UnitMatcher.result: layer(s) not yet fed every stimulus (missing rows per layer: "
                f"{missing})."
            )
        if not self._done:
            raise InputError("UnitMatcher.result: no layer was given.")
        layers = list(self._order)
        if self._layer_order is not None:
            layers = [n for n in self._layer_order if n in self._done]
        L, s, k = len(layers), self.n_sites, self.top_k
        if self._layer_depths is not None:
            absent = [n for n in layers if n not in self._layer_depths]
            if absent:
                raise InputError(f"UnitMatcher: layer_depths lacks layer(s) {absent}.")
            depths = np.array([float(self._layer_depths[n]) for n in layers])
        else:
            depths = np.linspace(0.0, 1.0, L) if L > 1 else np.zeros(1)
        done = [self._done[n] for n in layers]
        shapes = [d["shape"] for d in done]
        layer_top_r = np.stack([d["top_r"] for d in done])  # (L, s, k)
        layer_top_unit = np.stack([d["top_unit"] for d in done])
        # global top-k: the union of the per-layer top-k holds it exactly
        allv = np.where(np.isnan(layer_top_r), -np.inf, layer_top_r).transpose(1, 0, 2).reshape(s, L * k)
        allu = layer_top_unit.transpose(1, 0, 2).reshape(s, L * k)
        alll = np.broadcast_to(np.arange(L)[None, :, None], (s, L, k)).reshape(s, L * k)
        order = np.lexsort((allu, alll, -allv), axis=1)[:, :k]
        top_r = np.take_along_axis(allv, order, axis=1)
        top_unit = np.take_along_axis(allu, order, axis=1)
        top_layer = np.take_along_axis(alll, order, axis=1).copy()
        invalid = ~np.isfinite(top_r)
        top_r[invalid] = np.nan
        top_unit[invalid] = -1
        top_layer[invalid] = -1
        channel, ty, tx = (np.full((s, k), -1, dtype=np.int64) for _ in range(3))
        for li, shape in enumerate(shapes):
            m = top_layer == li
            loc = unit_location(shape, top_unit[m])
            channel[m], ty[m], tx[m] = loc["channel"], loc["y"], loc["x"]
        best_layer = top_layer[:, 0]
        res = MatchResult(
            layers=layers,
            layer_shapes=shapes,
            depths=depths,
            best_r=top_r[:, 0].copy(),
            best_layer=best_layer.copy(),
            best_unit=top_unit[:, 0].copy(),
            best_channel=channel[:, 0].copy(),
            best_y=ty[:, 0].copy(),
            best_x=tx[:, 0].copy(),
            best_depth=np.where(best_layer >= 0, depths[np.maximum(best_layer, 0)], np.nan),
            top_r=top_r,
            top_layer=top_layer,
            top_unit=top_unit,
            top_channel=channel,
            top_y=ty,
            top_x=tx,
            layer_best_r=layer_top_r[:, :, 0].copy(),
            layer_best_unit=layer_top_unit[:, :, 0].copy(),
            layer_top_r=layer_top_r,
            layer_top_unit=layer_top_unit,
        )
        if self.holdout:
            sel_r = np.stack([d["sel_r"] for d in done])  # (L, 2, s)
            sel_unit = np.stack([d["sel_unit"] for d in done])
            held = np.stack([d["held_r"] for d in done])
            filled = np.where(np.isnan(sel_r), -np.inf, sel_r)
            li = np.argmax(filled, axis=0)  # first (earliest) layer on ties, (2, s)
            ok = np.take_along_axis(filled, li[None], axis=0)[0] > -np.inf
            pick = lambda a: np.take_along_axis(a, li[None], axis=0)[0]  # noqa: E731
            res.heldout_r_folds = np.where(ok, pick(held), np.nan)
            res.heldout_select_r = np.where(ok, pick(sel_r), np.nan)
            res.heldout_layer = np.where(ok, li, -1)
            res.heldout_unit = np.where(ok, pick(sel_unit), -1)
            res.heldout_r = res.heldout_r_folds.mean(axis=0)
            res.layer_heldout_r = held.mean(axis=1)
            res.folds = self.folds.copy()
        return res


def _corr(cross, m2, yss, const):
    """r (sites, units) from co-moments (sites, units), unit M2, site sums of squares.

    Constant units and undefined values get -inf (never selected).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cross / np.sqrt(yss)[:, None] / np.sqrt(m2)[None, :]
    r[:, const] = -np.inf
    return np.where(np.isnan(r), -np.inf, r)


def _merge_topk(best_v, best_i, v, idx, k):
    """Keep the k largest of the current top (s, k0) and new candidates (s, c) per row."""
    allv = np.concatenate([best_v, v], axis=1)
    alli = np.concatenate([best_i, np.broadcast_to(idx, v.shape)], axis=1)
    if allv.shape[1] > k:
        part = np.argpartition(-allv, k - 1, axis=1)[:, :k]
        allv = np.take_along_axis(allv, part, axis=1)
        alli = np.take_along_axis(alli, part, axis=1)
    return allv, alli


def _pad(a, k, fill):
    if a.shape[1] >= k:
        return a
    return np.concatenate([a, np.full((a.shape[0], k - a.shape[1]), fill, dtype=a.dtype)], axis=1)


def match_units(site_responses, layers: Mapping[str, np.ndarray], *, batch_size: int | None = None, **kwargs):
    """Run a :class:`UnitMatcher` over whole activation arrays ``{layer: (n_stimuli, *shape)}``.

    ``batch_size`` feeds them in batches (as extraction would); ``kwargs`` go to the matcher.
    """
    m = UnitMatcher(site_responses, **kwargs)
    n = m.n_stimuli
    bs = n if batch_size is None else int(batch_size)
    for name, acts in layers.items():
        acts = _as_numpy(acts)
        if acts.shape[0] != n:
            raise InputError(f"Layer {name!r}: {acts.shape[0]} rows of activations for {n} stimuli.")
        for start in range(0, n, bs):
            m.update(name, acts[start : start + bs], start)
    return m.result()


# --------------------------------------------------------------------------- controls


def random_rotation(n: int, rng) -> np.ndarray:
    """A Haar-random rotation R in SO(n), float64 (Mezzadri 2007, with a det fix).

    ``Q, R = qr(Z)`` for ``Z`` with iid N(0, 1) entries; multiplying each column of
    ``Q`` by the sign of the matching diagonal entry of ``R`` makes ``Q`` Haar in O(n);
    if ``det(Q) = -1`` the first column is negated, which maps the Haar measure of that
    coset onto the Haar measure of SO(n).
    """
    n = int(n)
    if n < 1:
        raise InputError(f"random_rotation: n must be >= 1, got {n}.")
    rng = make_rng(rng)
    z = rng.standard_normal((n, n))
    q, r = np.linalg.qr(z)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q *= d[None, :]
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def rotate_channels(activations, rotation) -> np.ndarray:
    """Apply ``rotation`` (C, C) to the channel vector at every spatial location.

    ``out[b, :, ...] = R @ activations[b, :, ...]`` for activations ``(B, C, ...)``
    (``(B, C)``, ``(B, C, H, W)``, ...). Float input keeps its dtype; other input becomes
    float64.
    """
    x = _as_numpy(activations)
    R = np.asarray(rotation)
    if x.ndim < 2 or R.shape != (x.shape[1], x.shape[1]):
        raise InputError(
            f"rotate_channels: activations {x.shape} need a ({x.shape[1] if x.ndim > 1 else '?'}, same) "
            f"rotation, got {R.shape}."
        )
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    B, C = x.shape[:2]
    flat = x.reshape(B, C, -1).astype(dtype, copy=False)
    return np.matmul(R.astype(dtype), flat).reshape(x.shape)


class RandomActivations:
    """The random-activation control: N(0, 1) activations with given layer sizes.

    The activations of stimulus ``i`` in layer ``j`` come from their own generator,
    seeded by ``(seed, j, i)``, so they do not depend on how stimuli are batched.

    Parameters
    ----------
    layer_shapes : mapping name -> per-stimulus shape
        E.g. the shapes of a real network's layers (``MatchResult.layer_shapes``).
    seed : int
    dtype : numpy dtype
        float32 by default.
    """

    def __init__(self, layer_shapes: Mapping[str, Sequence[int]], seed: int = 0, dtype=np.float32):
        if seed is None or not isinstance(seed, (int, np.integer)):
            raise InputError(f"RandomActivations: seed must be an int, got {seed!r}.")
        self.layer_shapes = {str(k): tuple(int(s) for s in v) for k, v in layer_shapes.items()}
        self.seed = int(seed)
        self.dtype = np.dtype(dtype)
        self._index = {name: j for j, name in enumerate(self.layer_shapes)}

    @property
    def layers(self) -> list[str]:
        return list(self.layer_shapes)

    def batch(self, layer: str, rows) -> np.ndarray:
        """Activations ``(len(rows), *shape)`` of ``layer`` for the stimuli ``rows``."""
        if layer not in self._index:
            raise InputError(f"RandomActivations: unknown layer {layer!r}; layers are {self.layers}.")
        shape = self.layer_shapes[layer]
        j = self._index[layer]
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        out = np.empty((len(rows), *shape), dtype=self.dtype)
        for k, i in enumerate(rows):
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, j, int(i)]))
            out[k] = rng.standard_normal(shape, dtype=np.float32 if self.dtype == np.float32 else np.float64)
        return out


def pixels_layer(images, grayscale: bool = True) -> np.ndarray:
    """Raw pixels as units, ``(B, C, H, W)`` float32 (the paper's "pixels" model).

    ``images``: an array ``(B, H, W)`` or ``(B, H, W, C)``, or a sequence of PIL images of
    one size. With ``grayscale`` colour images are averaged over channels (C = 1), as the
    MajajHong2015 stimuli are grayscale; otherwise channels are kept.
    """
    if not isinstance(images, np.ndarray):
        images = np.stack([np.asarray(im) for im in images])
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, :, :, None]
    if x.ndim != 4:
        raise InputError(f"pixels_layer: images must be (B, H, W) or (B, H, W, C), got {x.shape}.")
    if grayscale and x.shape[3] > 1:
        x = x[..., :3].mean(axis=3, keepdims=True)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# --------------------------------------------------------------------------- decoding inputs


class UnitGatherer:
    """Collect the activations of chosen units, batch by batch (the second pass).

    Column ``i`` of :meth:`result` is unit ``units[i]`` of layer ``layers[i]``, e.g.
    ``layers = np.asarray(result.layers)[result.best_layer]``, ``units = result.best_unit``:
    the matched population, column ``i`` matched to site ``i``.
    """

    def __init__(self, n_stimuli: int, layers: Sequence[str], units: Sequence[int]):
        layers = [str(x) for x in layers]
        units = np.asarray(units, dtype=np.int64)
        if len(layers) != len(units):
            raise InputError(f"UnitGatherer: {len(layers)} layers but {len(units)} units.")
        if (units < 0).any():
            raise InputError("UnitGatherer: unit index -1 (no unit) cannot be gathered.")
        self.n_stimuli = int(n_stimuli)
        self._cols = {}
        for i, (name, u) in enumerate(zip(layers, units, strict=True)):
            self._cols.setdefault(name, ([], []))
            self._cols[name][0].append(i)
            self._cols[name][1].append(int(u))
        self._out = np.full((self.n_stimuli, len(units)), np.nan)
        self._seen = {name: np.zeros(self.n_stimuli, dtype=bool) for name in self._cols}

    @property
    def layers(self) -> list[str]:
        return list(self._cols)

    def update(self, layer: str, activations, rows) -> None:
        """As :meth:`UnitMatcher.update`; layers not asked for are ignored."""
        if layer not in self._cols:
            return
        x = _as_numpy(activations)
        B = x.shape[0]
        x = x.reshape(B, -1)
        rows = np.arange(int(rows), int(rows) + B) if np.ndim(rows) == 0 else np.asarray(rows)
        cols, units = self._cols[layer]
        if max(units) >= x.shape[1]:
            raise InputError(
                f"UnitGatherer: layer {layer!r} has {x.shape[1]} units; asked for unit {max(units)}."
            )
        self._out[np.ix_(rows, cols)] = x[:, units]
        self._seen[layer][rows] = True

    def result(self) -> np.ndarray:
        """The gathered activations ``(n_stimuli, n_columns)``, float64."""
        missing = {n: int((~s).sum()) for n, s in self._seen.items() if not s.all()}
        if missing:
            raise InputError(f"UnitGatherer: stimuli missing for layer(s) {missing}.")
        return self._out.copy()


def sample_unmatched_units(result: MatchResult, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """The random-unit baseline: per site, a random unit of the layer of its matched unit.

    The unit is drawn uniformly among the layer's units other than the matched one.
    Returns ``(layers, units)`` (layer names and flat unit indices per site), for
    :class:`UnitGatherer`.
    """
    rng = make_rng(seed)
    if (result.best_layer < 0).any():
        raise InputError("sample_unmatched_units: some sites have no matched unit.")
    sizes = np.array([int(np.prod(s, dtype=np.int64)) for s in result.layer_shapes])
    p = sizes[result.best_layer]
    if (p < 2).any():
        raise InputError("sample_unmatched_units: a matched unit's layer has a single unit.")
    draw = rng.integers(0, p - 1)
    units = np.where(draw >= result.best_unit, draw + 1, draw)
    return np.asarray(result.layers)[result.best_layer], units

