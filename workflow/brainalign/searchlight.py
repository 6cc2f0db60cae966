"""Volumetric searchlight RSA, vectorised over searchlight centres.

Cichy et al. (2016, Sci Rep) compare DNN layer RDMs with one fMRI RDM per searchlight:
"activation pattern vectors were formed separately for each voxel by using t-values within
each corresponding searchlight", dissimilarity 1 - Spearman (or 1 - Pearson), then
Spearman between the searchlight RDM and the model RDM assigned to the centre voxel. The
paper's main analysis is a surface searchlight (disks of vertices "less than 9 mm away");
its supplementary volumetric searchlight (fixed-radius sphere) is what this module computes.

Sphere
    A voxel belongs to the sphere of a centre if its distance to the centre is strictly
    less than the radius (the paper's "less than 9 mm" and rsatoolbox's
    ``get_volume_searchlight`` rule; ``inclusive=True`` takes ``<=``). The radius is in
    voxels (``radius_vox``, index distance) or in mm (``radius_mm``, distance through the
    affine's linear part, so anisotropic and oblique grids are handled). The sphere is
    intersected with the mask: only mask voxels enter a pattern. Every mask voxel is a
    centre unless ``min_mask_fraction`` drops it: the fraction of the sphere's in-volume
    voxels that lie in the mask must be ``>= min_mask_fraction`` (rsatoolbox's
    ``threshold``; with ``min_mask_fraction=1.0`` only centres whose whole sphere lies in
    the mask are kept, rsatoolbox's default).

Engine
    :func:`searchlight_spheres` precomputes, for every centre, the rows of its sphere's
    voxels in a padded table (one vectorised look-up in a padded copy of the mask, no
    per-centre Python). :func:`iter_searchlight_rdms` then works through the centres in
    batches: it gathers the patterns ``(batch, n_sphere_max, n_conditions)`` (padding rows
    are zero), centres each condition on the mean of the sphere's real voxels, scales it to
    unit norm, forms all the batch's Gram matrices with one stacked ``matmul`` and takes
    their upper triangles (scipy ``pdist`` order). Spearman RDMs rank within each sphere
    first; Spearman comparisons rank each RDM with one ``np.sort`` of packed keys (average
    ranks through :func:`scipy.stats.rankdata` only for rows with ties). BLAS runs on one
    thread per batch (the matrices are small). Memory: the mask's patterns once
    (n_mask_voxels x n_conditions float64), plus per batch ``batch_size * n_conditions *
    (n_sphere_max + n_conditions)`` float64 values.

Results equal an explicit per-centre loop over :func:`scipy.spatial.distance.pdist`
and rsatoolbox's ``get_volume_searchlight`` + ``get_searchlight_RDMs`` to ~1e-15 (tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from brainalign.io.fmri import check_finite_in_mask, write_nifti
from brainalign.rdm import COMPARE_METHODS, RDM_METRICS, n_pairs
from brainalign.utils import InputError, atomic_path, check_option

__all__ = [
    "Spheres",
    "sphere_offsets",
    "searchlight_spheres",
    "iter_searchlight_rdms",
    "searchlight_rdms",
    "searchlight_rsa",
    "save_map",
    "plot_surface_map",
]

_REL_TOL = 1e-9  # relative tolerance on squared distances at the sphere's border
_CHUNK_CENTRES = 16384  # centres per chunk while building the neighbour table


@dataclass(frozen=True)
class Spheres:
    """Searchlight spheres of every centre of a mask.

    Attributes
    ----------
    shape : tuple (X, Y, Z)
        Grid of the mask and of the volumes.
    centres : ndarray of int64, shape (n_centres, 3)
        Voxel coordinates of the centres, in C order of the mask (``np.argwhere``).
    voxels : ndarray of int64, shape (n_voxels,)
        Flat (C-order) indices of all mask voxels; the rows of the pattern table.
    neighbours : ndarray of int32, shape (n_centres, max_size)
        Row ``i`` lists positions in ``voxels`` of the voxels of centre ``i``'s sphere,
        ascending, padded at the end with ``n_voxels`` (a sentinel).
    sizes : ndarray of int64, shape (n_centres,)
        Number of voxels in each sphere (its non-padding entries).
    offsets : ndarray of int64, shape (n_offsets, 3)
        Integer voxel offsets of the full sphere.
    """

    shape: tuple
    centres: np.ndarray
    voxels: np.ndarray
    neighbours: np.ndarray
    sizes: np.ndarray
    offsets: np.ndarray

    @property
    def n_centres(self) -> int:
        return len(self.centres)

    @property
    def centre_indices(self) -> np.ndarray:
        """Flat (C-order) indices of the centres, shape (n_centres,)."""
        if self.n_centres == 0:
            return np.zeros(0, dtype=np.int64)
        return np.ravel_multi_index(tuple(self.centres.T), self.shape)

    def sphere(self, i: int) -> np.ndarray:
        """Flat (C-order) volume indices of the voxels of centre ``i``'s sphere, ascending."""
        return self.voxels[self.neighbours[i, : self.sizes[i]]]


# --------------------------------------------------------------------------- spheres


def _check_radius(radius_vox, radius_mm, affine) -> tuple[float, np.ndarray]:
    """Return (radius, 3x3 linear map from voxel offsets to distance units)."""
    if (radius_vox is None) == (radius_mm is None):
        raise ValueError(
            "Give exactly one of radius_vox (in voxels) and radius_mm (in mm, needs affine); "
            f"got radius_vox={radius_vox!r}, radius_mm={radius_mm!r}."
        )
    radius = radius_vox if radius_mm is None else radius_mm
    name = "radius_vox" if radius_mm is None else "radius_mm"
    if isinstance(radius, bool) or not np.isscalar(radius) or not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {radius!r}.")
    if radius_mm is None:
        return float(radius), np.eye(3)
    if affine is None:
        raise ValueError("radius_mm needs the volumes' affine (4x4) to turn voxels into mm.")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}.")
    linear = affine[:3, :3]
    if np.linalg.matrix_rank(linear) < 3:
        raise ValueError("affine is singular: its 3x3 part does not map voxels to mm.")
    return float(radius), linear


def sphere_offsets(radius_vox=None, radius_mm=None, affine=None, *, inclusive: bool = False) -> np.ndarray:
    """Integer voxel offsets of a searchlight sphere, shape (n_offsets, 3).

    An offset ``d`` is in the sphere if ``|A d| < radius`` (``<=`` with ``inclusive``),
    where ``A`` is the identity for ``radius_vox`` and the affine's 3x3 part for
    ``radius_mm``. Sorted by distance, then lexicographically; ``(0, 0, 0)`` first.
    """
    radius, linear = _check_radius(radius_vox, radius_mm, affine)
    smallest = np.linalg.svd(linear, compute_uv=False).min()
    ext = int(np.floor(radius / smallest)) + 1
    grid = np.mgrid[-ext : ext + 1, -ext : ext + 1, -ext : ext + 1].reshape(3, -1).T
    d2 = np.einsum("ij,ij->i", grid @ linear.T, grid @ linear.T)
    r2 = radius * radius
    keep = d2 <= r2 * (1 + _REL_TOL) if inclusive else d2 < r2 * (1 - _REL_TOL)
    grid, d2 = grid[keep], d2[keep]
    order = np.lexsort((grid[:, 2], grid[:, 1], grid[:, 0], np.round(d2, 9)))
    return grid[order].astype(np.int64)


def _check_mask(mask, shape=None) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"The mask must be a 3-D array (X, Y, Z), got shape {mask.shape}.")
    if shape is not None and mask.shape != tuple(shape):
        raise InputError(
            f"The mask has shape {mask.shape} but the volumes' grid is {tuple(shape)}; both must "
            "be on the same grid (see brainalign.io.fmri.load_mask, resample=True)."
        )
    if mask.dtype.kind == "f" and not np.all(np.isfinite(mask)):
        raise InputError("The mask holds NaN or inf; expected 0/1 (or boolean) values.")
    mask = mask != 0
    if not mask.any():
        raise InputError("The mask is empty: no voxel is non-zero.")
    return mask


def searchlight_spheres(
    mask,
    *,
    radius_vox: float | None = None,
    radius_mm: float | None = None,
    affine=None,
    inclusive: bool = False,
    min_mask_fraction: float = 0.0,
) -> Spheres:
    """Precompute the searchlight sphere (intersected with ``mask``) of every mask voxel.

    Parameters
    ----------
    mask : array (X, Y, Z)
        Non-zero = in the mask. Centres and sphere voxels are mask voxels.
    radius_vox, radius_mm : float
        Exactly one: the radius in voxels, or in mm through ``affine``.
    affine : array (4, 4), optional
        Needed with ``radius_mm``.
    inclusive : bool
        ``False`` (default): distance < radius; ``True``: distance <= radius.
    min_mask_fraction : float in [0, 1]
        Keep a centre only if (sphere voxels in the mask) / (sphere voxels inside the
        volume) >= this; rsatoolbox's ``threshold``. 0 keeps every mask voxel.

    Returns
    -------
    Spheres
    """
    mask = _check_mask(mask)
    if not 0.0 <= float(min_mask_fraction) <= 1.0:
        raise ValueError(f"min_mask_fraction must be in [0, 1], got {min_mask_fraction!r}.")
    offsets = sphere_offsets(radius_vox, radius_mm, affine, inclusive=inclusive)
    shape = mask.shape
    pad = np.abs(offsets).max(axis=0)
    padded_shape = tuple(int(s + 2 * p) for s, p in zip(shape, pad, strict=True))
    interior = tuple(slice(int(p), int(p + s)) for s, p in zip(shape, pad, strict=True))

    voxels = np.flatnonzero(mask)
    n_vox = len(voxels)
    lookup = np.full(padded_shape, n_vox, dtype=np.int32)  # sentinel outside the mask
    lookup[interior][mask] = np.arange(n_vox, dtype=np.int32)
    lookup = lookup.ravel()
    strides = np.array([padded_shape[1] * padded_shape[2], padded_shape[2], 1], dtype=np.int64)
    off_flat = offsets @ strides
    coords = np.argwhere(mask)  # C order, like rsatoolbox's np.nonzero
    centre_flat = (coords + pad) @ strides
    if min_mask_fraction > 0:
        inside = np.zeros(padded_shape, dtype=np.int32)
        inside[interior] = 1
        inside = inside.ravel()

    rows, sizes, keep = [], [], []
    for start in range(0, len(coords), _CHUNK_CENTRES):
        idx = centre_flat[start : start + _CHUNK_CENTRES, None] + off_flat[None, :]
        nb = np.sort(lookup[idx], axis=1)  # real voxels first, ascending; sentinel last
        size = np.count_nonzero(nb < n_vox, axis=1)
        if min_mask_fraction > 0:
            n_inside = inside[idx].sum(axis=1)
            ok = size / n_inside >= min_mask_fraction
        else:
            ok = np.ones(len(nb), dtype=bool)
        rows.append(nb[ok])
        sizes.append(size[ok])
        keep.append(ok)
    keep = np.concatenate(keep)
    sizes = np.concatenate(sizes).astype(np.int64)
    max_size = int(sizes.max()) if len(sizes) else 0
    neighbours = np.concatenate(rows)[:, :max_size] if len(sizes) else np.zeros((0, 0), np.int32)
    return Spheres(
        shape=tuple(int(s) for s in shape),
        centres=coords[keep].astype(np.int64),
        voxels=voxels.astype(np.int64),
        neighbours=np.ascontiguousarray(neighbours),
        sizes=sizes,
        offsets=offsets,
    )


# --------------------------------------------------------------------------- ranking


_SIGN_BIT = np.uint64(1 << 63)
_LOW_63 = np.uint64((1 << 63) - 1)
_INF_KEY = np.uint64(0xFFF0000000000000)  # order key of +inf (see _rank_rows)
_RANK_BLOCK = 65536  # values ranked per block in _rank_rows


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, float64) along the last axis of a 2-D float array.

    Exactly :func:`scipy.stats.rankdata` (``method='average'``, NaN rows all NaN), but
    faster than an ``argsort``: each value's float64 bits are mapped to an order-preserving
    unsigned key whose lowest ``ceil(log2(m))`` bits are replaced by the column index; one
    ``np.sort`` of these keys gives the permutation. A row in which two truncated keys
    collide (true ties, or values closer than ~1e-12 relative) is re-ranked with
    ``rankdata``; equal ``+inf`` entries (padding, ranked last and discarded by the caller)
    do not count as collisions: no finite key shares their truncated bits. Rows are
    processed in blocks of ~64k values, which keeps the temporaries in cache (3x faster).
    """
    n, m = a.shape
    ranks = np.empty((n, m), dtype=np.float64)
    if n == 0 or m == 0:
        return ranks
    nb = max(1, int(m - 1).bit_length())
    low = np.uint64((1 << nb) - 1)
    inf_hi = _INF_KEY >> np.uint64(nb)
    columns = np.arange(m, dtype=np.uint64)
    step = max(1, _RANK_BLOCK // m)
    values = np.tile(np.arange(1.0, m + 1.0), step)
    for start in range(0, n, step):
        block = a[start : start + step]
        rows = len(block)
        key = (block + 0.0).view(np.uint64)  # a fresh copy; + 0.0 turns -0.0 into +0.0
        # negatives: flip every bit (reverses their order, below positives); else the sign bit
        flip = key >> np.uint64(63)
        flip *= _LOW_63
        flip |= _SIGN_BIT
        key ^= flip
        key &= ~low
        key |= columns
        key.sort(axis=1)
        hi = key >> np.uint64(nb)
        collide = ((hi[:, 1:] == hi[:, :-1]) & (hi[:, 1:] != inf_hi)).any(axis=1)
        perm = (key & low).astype(np.intp)
        perm += (np.arange(rows, dtype=np.intp) * m)[:, None]
        out = ranks[start : start + rows]
        out.ravel()[perm.ravel()] = values[: rows * m]
        nan_rows = np.isnan(block).any(axis=1)
        redo = np.flatnonzero(collide & ~nan_rows)
        if len(redo):
            out[redo] = rankdata(block[redo], axis=1)
        out[nan_rows] = np.nan
    return ranks


# --------------------------------------------------------------------------- engine

_BLAS_CONTROLLER = []  # lazily created threadpoolctl controller (creating one costs ~ms)


def _single_thread_blas():
    """Context limiting BLAS to one thread: the batch's Gram matrices are small
    (n_conditions x n_sphere) and multi-threaded BLAS only adds synchronisation (on a
    busy 2-core machine it was 20x slower). No-op without threadpoolctl."""
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _BLAS_CONTROLLER.append(None)
        else:
            _BLAS_CONTROLLER.append(ThreadpoolController())
    controller = _BLAS_CONTROLLER[0]
    if controller is None:  # pragma: no cover
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")



def _pattern_table(volumes: np.ndarray, spheres: Spheres) -> np.ndarray:
    """(n_voxels + 1, n_conditions) float64 patterns of the mask voxels, last row zeros."""
    n_cond = volumes.shape[0]
    table = np.zeros((len(spheres.voxels) + 1, n_cond), dtype=np.float64)
    table[:-1] = volumes.reshape(n_cond, -1)[:, spheres.voxels].T
    return table


def _batch_rdms(table, nbr, sizes, metric, upper_flat, upper_i, upper_j) -> np.ndarray:
    """Condensed RDMs (b, n_pairs) of one batch of spheres; see the module docstring."""
    sentinel = table.shape[0] - 1
    valid = nbr != sentinel  # (b, k)
    P = table[nbr]  # (b, k, c); padding rows are zero
    if metric == "spearman":
        ranked = np.where(valid[:, None, :], P.transpose(0, 2, 1), np.inf)  # (b, c, k)
        b, c, k = ranked.shape
        ranked = _rank_rows(ranked.reshape(b * c, k)).reshape(b, c, k)
        ranked *= valid[:, None, :]
        P = ranked.transpose(0, 2, 1)  # view (b, k, c)
    if metric == "euclidean":
        P -= P.mean(axis=2, keepdims=True)  # per voxel over conditions: distances unchanged
    else:
        P -= (P.sum(axis=1) / sizes[:, None])[:, None, :]
        if not valid.all():  # padding rows became -mean: zero them again
            P *= valid[:, :, None]
        norm = np.sqrt(np.einsum("bkc,bkc->bc", P, P))
        with np.errstate(invalid="ignore", divide="ignore"):  # constant rows -> NaN, as pdist
            P /= norm[:, None, :]
    G = np.matmul(P.transpose(0, 2, 1), P)  # (b, c, c) Gram matrices
    g = np.take(G.reshape(len(G), -1), upper_flat, axis=1)  # (b, n_pairs), pdist order
    if metric == "euclidean":
        sq = np.diagonal(G, axis1=1, axis2=2)
        d2 = sq[:, upper_i] + sq[:, upper_j] - 2.0 * g
        np.maximum(d2, 0.0, out=d2)
        return np.sqrt(d2, out=d2)
    np.subtract(1.0, g, out=g)
    return g


def _check_volumes(volumes) -> np.ndarray:
    data = getattr(volumes, "data", volumes)  # ConditionVolumes or array
    data = np.asarray(data)
    if data.ndim != 4:
        raise InputError(
            f"volumes must be a 4-D array (n_conditions, X, Y, Z), got shape {data.shape}."
        )
    if data.shape[0] < 2:
        raise InputError(f"An RDM needs at least 2 conditions, got {data.shape[0]}.")
    if data.dtype.kind not in "iuf":
        raise InputError(f"volumes must hold real numbers, got dtype {data.dtype}.")
    return data


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def iter_searchlight_rdms(
    volumes, spheres: Spheres, *, metric: str = "pearson", batch_size: int = 32
) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield ``(centre_slice, rdms)`` batch by batch: the engine under the public functions.

    ``rdms`` (len(centre_slice), n_pairs) float64 are the condensed RDMs of the centres
    ``spheres.centres[centre_slice]``. Only one batch is held at a time, so a whole-brain
    searchlight runs in bounded memory.

    Parameters
    ----------
    volumes : array (n_conditions, X, Y, Z) or ConditionVolumes
    spheres : Spheres
        From :func:`searchlight_spheres` on the same grid.
    metric : {"pearson", "spearman", "euclidean"}
        As :func:`brainalign.rdm.compute_rdm` on the sphere's patterns.
    batch_size : int
        Centres per batch (16-64 are equally fast with 118 conditions; larger batches
        fall out of cache).
    """
    check_option("metric", metric, RDM_METRICS)
    batch_size = _check_batch_size(batch_size)
    data = _check_volumes(volumes)
    if data.shape[1:] != tuple(spheres.shape):
        raise InputError(
            f"volumes have grid {data.shape[1:]} but the spheres were built on {tuple(spheres.shape)}."
        )
    check_finite_in_mask(data, spheres.voxels, "searchlight volumes")
    return _iter_rdms(_pattern_table(data, spheres), spheres, metric, batch_size)


def _iter_rdms(table, spheres, metric, batch_size):
    n_cond = table.shape[1]
    upper_i, upper_j = np.triu_indices(n_cond, k=1)
    upper_flat = upper_i * n_cond + upper_j
    for start in range(0, spheres.n_centres, batch_size):
        sl = slice(start, min(start + batch_size, spheres.n_centres))
        sizes = spheres.sizes[sl]
        nbr = spheres.neighbours[sl, : int(sizes.max())]
        with _single_thread_blas():
            rdms = _batch_rdms(table, nbr, sizes, metric, upper_flat, upper_i, upper_j)
        yield sl, rdms


def searchlight_rdms(
    volumes,
    mask,
    *,
    radius_vox: float | None = None,
    radius_mm: float | None = None,
    affine=None,
    metric: str = "pearson",
    inclusive: bool = False,
    min_mask_fraction: float = 0.0,
    batch_size: int = 32,
) -> tuple[np.ndarray, np.ndarray]:
    """Condensed RDM of every searchlight centre of ``mask``.

    Parameters
    ----------
    volumes : array (n_conditions, X, Y, Z) or ConditionVolumes
        Condition-wise t-values (or betas); must be finite inside the mask.
    mask : array (X, Y, Z)
        Non-zero = in the mask.
    radius_vox, radius_mm, affine, inclusive, min_mask_fraction
        Sphere definition, see :func:`searchlight_spheres`.
    metric : {"pearson", "spearman", "euclidean"}
        Dissimilarity within each sphere (1 - correlation for the first two).
    batch_size : int
        Centres per batch.

    Returns
    -------
    rdms : ndarray (n_centres, n_conditions * (n_conditions - 1) / 2) float64
        scipy ``pdist`` order; NaN entries where a condition is constant in the sphere
        (e.g. a one-voxel sphere). Holds everything: 8 * n_centres * n_pairs bytes (a
        50,000-voxel brain with 118 conditions needs 2.8 GB); use :func:`searchlight_rsa`
        or :func:`iter_searchlight_rdms` to stream instead.
    centres : ndarray (n_centres, 3) int64
        Voxel coordinates of the centres, C order of the mask.
    """
    data = _check_volumes(volumes)
    mask = _check_mask(mask, data.shape[1:])
    spheres = searchlight_spheres(
        mask, radius_vox=radius_vox, radius_mm=radius_mm, affine=affine, inclusive=inclusive,
        min_mask_fraction=min_mask_fraction,
    )
    out = np.empty((spheres.n_centres, n_pairs(data.shape[0])), dtype=np.float64)
    for sl, rdms in iter_searchlight_rdms(data, spheres, metric=metric, batch_size=batch_size):
        out[sl] = rdms
    return out, spheres.centres


def _standardise_rows(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):  # constant rows -> NaN
        return x / norm


def _check_model_rdms(model_rdms, n_cond: int) -> np.ndarray:
    models = np.asarray(model_rdms, dtype=np.float64)
    if models.ndim == 1:
        models = models[None, :]
    expected = n_pairs(n_cond)
    if models.ndim != 2 or models.shape[1] != expected:
        raise InputError(
            f"model_rdms has shape {np.shape(model_rdms)}; expected condensed RDMs of length "
            f"{expected} (= {n_cond} conditions), shape ({expected},) or (n_models, {expected}) "
            "(scipy.spatial.distance.squareform turns a square RDM into a condensed one)."
        )
    if not np.all(np.isfinite(models)):
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(models))[:, 0]})
        raise InputError(f"model_rdms: model(s) {bad} hold NaN or inf; expected finite RDMs.")
    return models


def searchlight_rsa(
    volumes,
    mask,
    model_rdms,
    *,
    radius_vox: float | None = None,
    radius_mm: float | None = None,
    affine=None,
    metric: str = "pearson",
    compare: str = "spearman",
    inclusive: bool = False,
    min_mask_fraction: float = 0.0,
    batch_size: int = 32,
) -> np.ndarray:
    """Similarity map between each searchlight's RDM and each model RDM.

    The searchlight RDMs are streamed batch by batch and compared at once, so memory does
    not grow with the number of centres.

    Parameters
    ----------
    volumes : array (n_conditions, X, Y, Z) or ConditionVolumes
    mask : array (X, Y, Z)
    model_rdms : array (n_pairs,) or (n_models, n_pairs)
        Condensed model RDMs (scipy ``pdist`` order) over the same conditions.
    radius_vox, radius_mm, affine, inclusive, min_mask_fraction
        Sphere definition, see :func:`searchlight_spheres`.
    metric : {"pearson", "spearman", "euclidean"}
        Dissimilarity within each sphere. Cichy et al. use 1 - Spearman for their ROI RDMs
        and searchlights (pass ``metric="spearman"``); 1 - Pearson is the default here as
        in most searchlight toolboxes.
    compare : {"spearman", "pearson"}
        Correlation between the searchlight RDM and a model RDM, exactly as
        :func:`brainalign.rdm.compare_rdms` (Cichy et al.: Spearman).
    batch_size : int
        Centres per batch.

    Returns
    -------
    maps : ndarray (n_models, X, Y, Z) float64
        Value at each centre; NaN outside the mask, at centres dropped by
        ``min_mask_fraction`` and where an RDM is undefined or constant. A single 1-D model
        RDM still gives ``n_models = 1``.
    """
    check_option("compare", compare, COMPARE_METHODS)
    check_option("metric", metric, RDM_METRICS)
    data = _check_volumes(volumes)
    mask = _check_mask(mask, data.shape[1:])
    models = _check_model_rdms(model_rdms, data.shape[0])
    if compare == "spearman":
        models = rankdata(models, axis=1)
    models = _standardise_rows(models)  # (n_models, n_pairs)
    spheres = searchlight_spheres(
        mask, radius_vox=radius_vox, radius_mm=radius_mm, affine=affine, inclusive=inclusive,
        min_mask_fraction=min_mask_fraction,
    )
    values = np.empty((spheres.n_centres, len(models)), dtype=np.float64)
    with _single_thread_blas():
        for sl, rdms in iter_searchlight_rdms(data, spheres, metric=metric, batch_size=batch_size):
            if compare == "spearman":
                rdms = _rank_rows(rdms)
            values[sl] = _standardise_rows(rdms) @ models.T
    maps = np.full((len(models), *mask.shape), np.nan, dtype=np.float64)
    maps.reshape(len(models), -1)[:, spheres.centre_indices] = values.T
    return maps


# --------------------------------------------------------------------------- output


def save_map(map_, affine, path) -> Path:
    """Write a map (X, Y, Z) or maps (n_maps, X, Y, Z) as a NIfTI file, atomically.

    Several maps go to one 4-D file with the maps on the last axis (NIfTI convention);
    NaN (outside the mask) is kept. ``path`` must end in ``.nii`` or ``.nii.gz``. The
    array's float dtype is kept (integers are written as float64). Returns ``path``.
    """


    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"save_map: {path} must end in '.nii' or '.nii.gz'.")
    data = np.asarray(map_)
    if data.ndim not in (3, 4):
        raise ValueError(f"save_map: expected a map (X, Y, Z) or maps (n, X, Y, Z), got {data.shape}.")
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    if data.ndim == 4:
        data = np.moveaxis(data, 0, -1)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"save_map: affine must be 4x4, got shape {affine.shape}.")
    write_nifti(path, data, affine)
    return path


def _local_fsaverage5():
    """nilearn's packaged fsaverage5 meshes, or an error (brainalign never downloads)."""
    try:
        import nilearn
        from nilearn import datasets
    except ImportError as err:  # pragma: no cover - nilearn is a dependency
        raise RuntimeError("plot_surface_map needs nilearn.") from err
    folder = Path(nilearn.__file__).parent / "datasets" / "data" / "fsaverage5"
    needed = [f"{kind}_{hemi}.gii.gz" for kind in ("pial", "infl", "sulc") for hemi in ("left", "right")]
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        raise RuntimeError(
            f"nilearn {nilearn.__version__} has no local fsaverage5 surfaces ({folder} lacks "
            f"{missing}); brainalign never downloads data, so surface maps cannot be drawn. "
            "Use a volume plot (nilearn.plotting.plot_stat_map) instead."
        )
    return datasets.fetch_surf_fsaverage("fsaverage5")


def plot_surface_map(
    stat_map,
    affine=None,
    *,
    hemi: str = "left",
    view: str = "lateral",
    threshold: float | None = None,
    title: str | None = None,
    output_file=None,
):
    """Draw a volumetric map on nilearn's local fsaverage5 surface (matplotlib).

    Parameters
    ----------
    stat_map : path, nibabel image, or array (X, Y, Z)
        One map (e.g. ``maps[k]`` from :func:`searchlight_rsa`) in MNI space: fsaverage
        is a template, so a map in a subject's native space lands on the wrong vertices.
    affine : array (4, 4), optional
        Required when ``stat_map`` is an array.
    hemi : {"left", "right"}
    view : {"lateral", "medial", "dorsal", "ventral", "anterior", "posterior"}
    threshold, title
        Passed to :func:`nilearn.plotting.plot_surf_stat_map`.
    output_file : path, optional
        Save the figure there (atomically; format from the extension).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    RuntimeError
        nilearn ships no local fsaverage5 (this function never downloads).

    NaN (outside the mask) is drawn as 0, below any positive threshold.
    """
    import nibabel as nib

    check_option("hemi", hemi, ("left", "right"))
    check_option("view", view, ("lateral", "medial", "dorsal", "ventral", "anterior", "posterior"))
    fsaverage = _local_fsaverage5()
    from nilearn import plotting, surface

    if isinstance(stat_map, str | Path):
        img = nib.load(str(stat_map))
    elif isinstance(stat_map, nib.spatialimages.SpatialImage):
        img = stat_map
    else:
        if affine is None:
            raise ValueError("plot_surface_map: an array map needs its affine.")
        img = nib.Nifti1Image(np.asarray(stat_map, dtype=np.float64), np.asarray(affine, float))
    data = np.asarray(img.get_fdata(), dtype=np.float64)
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise ValueError(f"plot_surface_map: expected one 3-D map, got shape {data.shape}.")
    img = nib.Nifti1Image(np.nan_to_num(data, nan=0.0), img.affine)
    texture = surface.vol_to_surf(img, fsaverage[f"pial_{hemi}"])
    fig = plotting.plot_surf_stat_map(
        fsaverage[f"infl_{hemi}"], texture, hemi=hemi, view=view, bg_map=fsaverage[f"sulc_{hemi}"],
        threshold=threshold, title=title, engine="matplotlib",
    )
    if output_file is not None:
        with atomic_path(output_file) as tmp:
            fig.savefig(tmp)
    return fig
