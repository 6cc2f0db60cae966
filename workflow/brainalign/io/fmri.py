"""Condition-wise fMRI volumes (t-values or betas), ROI masks, ROI patterns and ROI RDMs.

Cichy et al. (2016, Sci Rep, "fMRI analysis") estimate one GLM parameter per image
condition, turn each into a t-value against the implicit baseline, and also compute the
grand-average t of all conditions vs baseline. Their ROI RDMs ("Multivariate analysis of
fMRI data") take, within each anatomical ROI, "the 100 most strongly activated voxels in
the grand-average contrast", form 118 t-value patterns of length 100 and compute
1 - Spearman between every pair. This module reads those files and computes those RDMs:

- :func:`load_condition_volumes`: one 3-D NIfTI per condition (e.g. SPM ``spmT_0001.nii``
  ...), or one 4-D NIfTI with the conditions on the last axis -> :class:`ConditionVolumes`
  ``data`` (n_conditions, X, Y, Z) float64 plus ``affine``;
- :func:`load_mask` / :func:`load_localizer`: a ROI mask or a localiser map (e.g. the
  grand-average t) checked to lie on the volumes' grid (or resampled onto it on request);
- :func:`roi_patterns` -> (n_conditions, n_voxels) of the ``n_voxels`` most responsive
  mask voxels; :func:`roi_rdm` -> their condensed RDM (:func:`brainalign.rdm.compute_rdm`);
- :func:`write_synthetic_condition_volumes`: the same files from arrays, for tests and the
  demo; :func:`load_condition_volumes` reads them back exactly.

NaN is allowed in the files (SPM writes NaN outside its analysis mask); every function
that uses voxels raises :class:`~brainalign.utils.InputError` if a voxel it needs is NaN.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brainalign.rdm import compute_rdm
from brainalign.utils import InputError, atomic_path

__all__ = [
    "ConditionVolumes",
    "load_condition_volumes",
    "load_mask",
    "load_localizer",
    "roi_patterns",
    "roi_rdm",
    "check_finite_in_mask",
    "write_synthetic_condition_volumes",
]

_AFFINE_ATOL = 1e-4  # mm; affines closer than this are the same grid


@dataclass
class ConditionVolumes:
    """Condition-wise volumes of one subject (or session).

    Attributes
    ----------
    data : ndarray float64, shape (n_conditions, X, Y, Z)
        ``data[c]`` is the map of condition ``conditions[c]``; may hold NaN (see module doc).
    affine : ndarray float64, shape (4, 4)
        Voxel -> world (mm) transform shared by all conditions.
    conditions : ndarray, shape (n_conditions,)
        Condition id of each map (file names without extension, or 0..n-1 for a 4-D file,
        unless given).
    sources : list of str
        The file(s) read; ``sources[0]`` names the grid in error messages.
    """

    data: np.ndarray
    affine: np.ndarray
    conditions: np.ndarray
    sources: list[str] = field(default_factory=list)

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.ndim != 4:
            raise InputError(
                f"ConditionVolumes: data has shape {data.shape}; expected (n_conditions, X, Y, Z)."
            )
        self.data = data
        self.affine = _check_affine(self.affine, "ConditionVolumes")
        conditions = np.asarray(self.conditions)
        if conditions.shape != (data.shape[0],):
            raise InputError(
                f"ConditionVolumes: {conditions.shape[0] if conditions.ndim else 0} condition ids "
                f"for {data.shape[0]} maps."
            )
        if len(np.unique(conditions)) != len(conditions):
            raise InputError("ConditionVolumes: condition ids are not unique.")
        self.conditions = conditions

    @property
    def shape(self) -> tuple[int, int, int]:
        """The grid (X, Y, Z)."""
        return tuple(int(s) for s in self.data.shape[1:])

    @property
    def name(self) -> str:
        return self.sources[0] if self.sources else "the condition volumes"


def _check_affine(affine, what: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise InputError(f"{what}: the affine must be a finite 4x4 matrix, got shape {affine.shape}.")
    return affine


def _nifti_stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii", ".img", ".hdr", ".mgz", ".mgh"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _load_image(path, what: str):
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found: {path}; expected a NIfTI file (.nii or .nii.gz).")
    try:
        img = nib.load(str(path))
        dtype = np.dtype(img.get_data_dtype())
    except Exception as err:  # nibabel raises many types on corrupt files
        raise _unreadable(path, what, err) from err
    if dtype.kind not in "biuf":
        raise InputError(
            f"{path}: {what} is {dtype}; expected real values (integer or float voxels). A "
            "complex or RGB image would lose its imaginary part or channels when read as float."
        )
    try:
        data = np.asarray(img.get_fdata(dtype=np.float64))
    except Exception as err:
        raise _unreadable(path, what, err) from err
    return img, data


def _unreadable(path, what: str, err: Exception) -> InputError:
    return InputError(
        f"{path}: cannot read {what} as NIfTI ({type(err).__name__}: {err}); the file may be "
        "empty, truncated or not an image."
    )


def _check_complete(path: Path, img, what: str) -> None:
    """InputError unless the file holds all of the image's voxels (header read, data not).

    Uncompressed files are checked by size; compressed ones are decompressed in blocks
    (bounded memory) up to the end of the stream.
    """
    from nibabel.openers import ImageOpener

    proxy = img.dataobj
    if not hasattr(proxy, "offset"):  # not a file-backed array proxy: nothing to compare
        return
    expected = int(proxy.offset) + int(np.prod(proxy.shape)) * np.dtype(img.get_data_dtype()).itemsize
    try:
        if path.suffix.lower() not in ImageOpener.compress_ext_map:
            size = path.stat().st_size
        else:
            size = 0
            with ImageOpener(path, "rb") as f:
                while block := f.read(16 * 2**20):
                    size += len(block)
    except Exception as err:  # a truncated gzip stream raises EOFError
        raise _unreadable(path, what, err) from err
    if size < expected:
        raise InputError(
            f"{path}: cannot read {what} as NIfTI: the file holds {size} bytes but its header "
            f"describes {expected} (shape {tuple(proxy.shape)}); the file is truncated."
        )


def _squeeze_3d(data: np.ndarray, path, what: str) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path}: {what} has shape {data.shape}; expected a 3-D volume (X, Y, Z).")
    return data


def _same_grid(shape_a, affine_a, shape_b, affine_b) -> bool:
    return tuple(shape_a) == tuple(shape_b) and np.allclose(affine_a, affine_b, rtol=0, atol=_AFFINE_ATOL)


def _grid_error(what: str, path, shape, affine, ref_name, ref_shape, ref_affine, hint: str) -> InputError:
    return InputError(
        f"{what} {path} (shape {tuple(shape)}, affine {np.round(affine, 4).tolist()}) is not on the "
        f"grid of {ref_name} (shape {tuple(ref_shape)}, affine {np.round(ref_affine, 4).tolist()}). "
        + hint
    )


def load_condition_volumes(paths, *, conditions: Sequence | None = None) -> ConditionVolumes:
    """Read condition-wise t-value (or beta) maps.

    Parameters
    ----------
    paths : path, or sequence of paths
        One path: a 4-D NIfTI with the conditions on the last axis (a 3-D file is one
        condition). A sequence: one 3-D NIfTI per condition, in condition order; all must
        share shape and affine (within 1e-4 mm).
    conditions : sequence, optional
        Condition ids, one per map. Default: the file names without extension for 3-D
        files, 0..n-1 for a 4-D file.

    Returns
    -------
    ConditionVolumes
        ``data`` (n_conditions, X, Y, Z) float64 (scaling ``scl_slope``/``scl_inter``
        applied). NaN voxels are kept.

    Raises
    ------
    InputError
        Missing or unreadable file; a complex (or otherwise non-real) image; a file of the
        wrong dimensionality; files whose shapes or affines differ (both files named); the
        wrong number of condition ids.
    """
    if isinstance(paths, str | Path):
        path = Path(paths)
        img, data = _load_image(path, "condition volume file")
        if data.ndim == 3:
            data = data[..., None]
        while data.ndim > 4 and data.shape[3] == 1:
            data = data[:, :, :, 0]
        if data.ndim != 4:
            raise InputError(
                f"{path}: shape {data.shape}; expected a 4-D file (X, Y, Z, n_conditions) or a "
                "sequence of 3-D files, one per condition."
            )
        volumes = np.ascontiguousarray(np.moveaxis(data, -1, 0))
        ids = np.arange(volumes.shape[0]) if conditions is None else np.asarray(conditions)
        return ConditionVolumes(volumes, img.affine, ids, [str(path)])

    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("load_condition_volumes: no files given.")
    if conditions is not None and len(conditions) != len(paths):
        raise InputError(f"{len(conditions)} condition ids given for {len(paths)} files.")
    first_img, first = _load_image(paths[0], "condition volume")
    first = _squeeze_3d(first, paths[0], "a condition volume")
    volumes = np.empty((len(paths), *first.shape), dtype=np.float64)
    volumes[0] = first
    for c, path in enumerate(paths[1:], start=1):
        img, data = _load_image(path, "condition volume")
        data = _squeeze_3d(data, path, "a condition volume")
        if not _same_grid(data.shape, img.affine, first.shape, first_img.affine):
            raise _grid_error(
                "Condition volume", path, data.shape, img.affine, paths[0], first.shape,
                first_img.affine, "All condition volumes must share one grid.",
            )
        volumes[c] = data
    ids = np.array([_nifti_stem(p) for p in paths]) if conditions is None else np.asarray(conditions)
    return ConditionVolumes(volumes, first_img.affine, ids, [str(p) for p in paths])


def _reference_grid(reference) -> tuple[tuple, np.ndarray, str]:
    """(shape, affine, name) of a ConditionVolumes, NIfTI path, or nibabel image."""
    import nibabel as nib

    if isinstance(reference, ConditionVolumes):
        return reference.shape, reference.affine, reference.name
    if isinstance(reference, str | Path):
        path = Path(reference)
        if not path.is_file():
            raise InputError(f"Reference image not found: {reference}.")
        try:
            img = nib.load(str(path))
        except Exception as err:  # nibabel raises many types on empty or corrupt files
            raise _unreadable(path, "the reference image", err) from err
        _check_complete(path, img, "the reference image")
        return tuple(img.shape[:3]), img.affine, str(reference)
    if isinstance(reference, nib.spatialimages.SpatialImage):
        return tuple(reference.shape[:3]), reference.affine, "the reference image"
    raise TypeError(
        "reference must be ConditionVolumes, a NIfTI path or a nibabel image, got "
        f"{type(reference).__name__}."
    )


def _load_on_grid(path, reference, *, resample: bool, interpolation: str, what: str) -> np.ndarray:
    import nibabel as nib

    ref_shape, ref_affine, ref_name = _reference_grid(reference)
    img, data = _load_image(path, what)
    data = _squeeze_3d(data, path, what)
    if _same_grid(data.shape, img.affine, ref_shape, ref_affine):
        return data
    if not resample:
        raise _grid_error(
            what[0].upper() + what[1:], path, data.shape, img.affine, ref_name, ref_shape, ref_affine,
            f"Pass resample=True to resample it ({interpolation} interpolation) or resample it "
            "beforehand.",
        )
    from nilearn.image import resample_img

    img3 = nib.Nifti1Image(data, img.affine)
    out = resample_img(
        img3, target_affine=ref_affine, target_shape=ref_shape, interpolation=interpolation,
        force_resample=True, copy_header=True,
    )
    return np.asarray(out.get_fdata(), dtype=np.float64)


def load_mask(path, reference, *, resample: bool = False, threshold: float = 0.0) -> np.ndarray:
    """Read a ROI mask on the grid of ``reference``; voxels with value > ``threshold``.

    Parameters
    ----------
    path : path
        3-D NIfTI (a probabilistic mask is thresholded; NaN is outside).
    reference : ConditionVolumes, path or nibabel image
        The grid the mask must lie on.
    resample : bool
        If the grids differ: ``False`` (default) raises :class:`InputError` naming both
        files; ``True`` resamples the mask (nearest neighbour, nilearn) onto the grid.
    threshold : float
        Voxels strictly above it are in the mask.

    Returns
    -------
    ndarray of bool, shape (X, Y, Z)

    Raises
    ------
    InputError
        Missing, empty, truncated or complex mask or reference file (a reference path is
        read to its end to be sure it is whole); grids that differ without ``resample``;
        an empty mask.
    """
    data = _load_on_grid(path, reference, resample=resample, interpolation="nearest", what="ROI mask")
    with np.errstate(invalid="ignore"):
        mask = np.nan_to_num(data, nan=-np.inf) > threshold
    if not mask.any():
        raise InputError(f"ROI mask {path}: no voxel above {threshold}; the mask is empty.")
    return mask


def load_localizer(path, reference, *, resample: bool = False) -> np.ndarray:
    """Read a localiser map (e.g. the all-conditions-vs-baseline t) on ``reference``'s grid.

    Same grid rule as :func:`load_mask` (``resample=True``: continuous interpolation).
    Returns float64 (X, Y, Z); NaN kept.
    """
    return _load_on_grid(path, reference, resample=resample, interpolation="continuous",
                         what="localiser map")


def check_finite_in_mask(volumes: np.ndarray, voxels: np.ndarray, what: str) -> None:
    """Raise :class:`InputError` if any condition is NaN/inf at one of the flat ``voxels``."""
    flat = np.asarray(volumes).reshape(volumes.shape[0], -1)
    vals = flat[:, voxels]
    if vals.dtype.kind == "f" and not np.all(np.isfinite(vals)):
        bad_cond, bad_vox = np.nonzero(~np.isfinite(vals))
        n_vox = len(np.unique(bad_vox))
        first = tuple(int(i) for i in np.unravel_index(int(voxels[bad_vox[0]]), volumes.shape[1:]))
        raise InputError(
            f"{what}: {n_vox} voxel(s) inside the mask hold NaN or inf (first: voxel {first}, "
            f"condition index {int(bad_cond[0])}); drop them from the mask, e.g. "
            "mask &= np.isfinite(volumes).all(axis=0)."
        )


def _volumes_array(volumes) -> np.ndarray:
    data = np.asarray(getattr(volumes, "data", volumes))
    if data.ndim != 4:
        raise InputError(f"volumes must be (n_conditions, X, Y, Z), got shape {data.shape}.")
    return data


def roi_patterns(
    volumes,
    mask,
    localizer=None,
    n_voxels: int | None = 100,
    *,
    return_indices: bool = False,
):
    """Condition patterns of the ``n_voxels`` most responsive voxels of a ROI.

    Parameters
    ----------
    volumes : ConditionVolumes or array (n_conditions, X, Y, Z)
    mask : array (X, Y, Z)
        Non-zero = in the ROI (e.g. from :func:`load_mask`).
    localizer : array (X, Y, Z), optional
        Responsiveness of each voxel; the largest (signed) values are chosen, as Cichy et
        al.'s "100 most strongly activated voxels in the grand-average contrast of visual
        stimulation vs. baseline". Default: the mean of the condition maps, a stand-in for
        that contrast when it was not saved.
    n_voxels : int or None
        How many voxels (default 100, the paper's). ``None``: every mask voxel.
    return_indices : bool
        Also return the flat (C-order) indices of the chosen voxels.

    Returns
    -------
    patterns : ndarray (n_conditions, n_voxels) float64
        Columns in ascending voxel order. Ties in the localiser are broken by voxel index
        (lower flat index first).
    indices : ndarray (n_voxels,) int64, only with ``return_indices``

    Raises
    ------
    InputError
        Grid mismatch; fewer mask voxels than ``n_voxels``; NaN in the localiser or in a
        chosen voxel.
    """
    data = _volumes_array(volumes)
    mask = np.asarray(mask)
    if mask.shape != data.shape[1:]:
        raise InputError(f"The mask has shape {mask.shape}; the volumes' grid is {data.shape[1:]}.")
    idx = np.flatnonzero(np.nan_to_num(mask) != 0)
    if n_voxels is None:
        n_voxels = len(idx)
    if isinstance(n_voxels, bool) or not isinstance(n_voxels, int | np.integer) or n_voxels < 1:
        raise ValueError(f"n_voxels must be a positive integer or None, got {n_voxels!r}.")
    if len(idx) < n_voxels:
        raise InputError(
            f"The ROI mask has {len(idx)} voxels, fewer than n_voxels={n_voxels}; use a larger "
            "ROI or a smaller n_voxels."
        )
    if localizer is None:
        check_finite_in_mask(data, idx, "roi_patterns: condition volumes")
        scores = data.reshape(data.shape[0], -1)[:, idx].mean(axis=0)
    else:
        localizer = np.asarray(localizer, dtype=np.float64)
        if localizer.shape != data.shape[1:]:
            raise InputError(
                f"The localiser map has shape {localizer.shape}; the volumes' grid is {data.shape[1:]}."
            )
        scores = localizer.ravel()[idx]
        if not np.all(np.isfinite(scores)):
            raise InputError(
                f"The localiser map holds NaN or inf at {int(np.sum(~np.isfinite(scores)))} mask "
                "voxel(s); drop them from the mask."
            )
    order = np.argsort(-scores, kind="stable")  # stable: ties keep ascending voxel index
    chosen = np.sort(idx[order[:n_voxels]])
    check_finite_in_mask(data, chosen, "roi_patterns: condition volumes")
    patterns = data.reshape(data.shape[0], -1)[:, chosen].astype(np.float64)
    return (patterns, chosen.astype(np.int64)) if return_indices else patterns


def roi_rdm(volumes, mask, localizer=None, n_voxels: int | None = 100, *, metric: str = "spearman"):
    """Condensed RDM (scipy ``pdist`` order) of a ROI's :func:`roi_patterns`.

    ``metric`` as :func:`brainalign.rdm.compute_rdm`; default 1 - Spearman (Cichy et al.).
    """
    return compute_rdm(roi_patterns(volumes, mask, localizer, n_voxels), metric)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write ``data`` as a NIfTI (``.nii`` or ``.nii.gz``) atomically, units mm."""
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(data), affine)
    img.header.set_xyzt_units("mm")
    payload = img.to_bytes()
    with atomic_path(path) as tmp:
        if path.name.endswith(".gz"):
            with gzip.open(tmp, "wb") as f:
                f.write(payload)
        else:
            tmp.write_bytes(payload)


def write_synthetic_condition_volumes(
    directory,
    volumes,
    affine,
    *,
    four_d: bool = False,
    conditions: Sequence | None = None,
    mask=None,
    localizer=None,
) -> dict:
    """Write condition maps (and optionally a mask and a localiser) as NIfTI, atomically.

    Parameters
    ----------
    directory : path
        Created if needed.
    volumes : array (n_conditions, X, Y, Z)
        Written in their float dtype (integers as float64), so they read back exactly.
    affine : array (4, 4)
    four_d : bool
        ``False``: one 3-D file per condition, ``cond-<id>.nii.gz``; ``True``: one 4-D
        ``conditions.nii.gz`` (X, Y, Z, n_conditions).
    conditions : sequence, optional
        Ids used in the 3-D file names; default zero-padded indices 000, 001, ...
    mask, localizer : array (X, Y, Z), optional
        Written as ``mask.nii.gz`` (uint8) and ``localizer.nii.gz``.

    Returns
    -------
    dict
        ``volumes``: list of paths (3-D) or one path (4-D), in condition order, ready for
        :func:`load_condition_volumes`; ``mask`` and ``localizer``: path or None.
    """
    directory = Path(directory)
    volumes = np.asarray(volumes)
    if volumes.ndim != 4:
        raise InputError(f"volumes must be (n_conditions, X, Y, Z), got shape {volumes.shape}.")
    if volumes.dtype.kind != "f":
        volumes = volumes.astype(np.float64)
    affine = _check_affine(affine, "write_synthetic_condition_volumes")
    n_cond = volumes.shape[0]
    if conditions is None:
        width = max(3, len(str(n_cond - 1)))
        conditions = [f"{c:0{width}d}" for c in range(n_cond)]
    if len(conditions) != n_cond:
        raise InputError(f"{len(conditions)} condition ids for {n_cond} volumes.")
    directory.mkdir(parents=True, exist_ok=True)
    out: dict = {"mask": None, "localizer": None}
    if four_d:
        out["volumes"] = directory / "conditions.nii.gz"
        write_nifti(out["volumes"], np.moveaxis(volumes, 0, -1), affine)
    else:
        out["volumes"] = [directory / f"cond-{cid}.nii.gz" for cid in conditions]
        for path, vol in zip(out["volumes"], volumes, strict=True):
            write_nifti(path, vol, affine)
    for key, arr, dtype in (("mask", mask, np.uint8), ("localizer", localizer, None)):
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.shape != volumes.shape[1:]:
            raise InputError(f"{key} has shape {arr.shape}; the volumes' grid is {volumes.shape[1:]}.")
        arr = (arr != 0).astype(np.uint8) if dtype is np.uint8 else arr.astype(np.float64)
        out[key] = directory / f"{key}.nii.gz"
        write_nifti(out[key], arr, affine)
    return out
