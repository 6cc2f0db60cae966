"""Natural Scenes Dataset (NSD): read the shared images' responses of one subject.

:func:`load_nsd_subject` reads the real NSD files, laid out as on the NSD bucket
(``nsd_root`` is the folder that holds ``nsddata/`` and ``nsddata_betas/``)::

    nsddata/experiments/nsd/nsd_expdesign.mat        masterordering, subjectim, sharedix
    nsddata/experiments/nsd/nsd_stim_info_merged.csv cross-checked against the .mat
    nsddata/ppdata/subjNN/func1pt8mm/roi/{nsdgeneral,streams,floc-faces,floc-bodies,
                                          floc-places,floc-words}.nii.gz
    nsddata/ppdata/subjNN/func1pt8mm/floc_{faces,bodies,places,words}tval.nii.gz
    nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/
        betas_sessionSS.hdf5     /betas int16 (trials, Z, Y, X), % signal change x 300
        ncsnr.nii.gz             (the real NSD location; nsddata/ppdata/subjNN/func1pt8mm/
                                  ncsnr.nii.gz is accepted too)

and selects voxels as Conwell et al. (2024) do (SPEC section 1):

- ``OTC`` = ncsnr > ``ncsnr_threshold`` AND [ (nsdgeneral == 1 AND streams in
  ``otc_streams``) OR (voxel in one of ``floc_rois`` AND that domain's floc t >
  ``floc_t_threshold``) ];
- ``EVC`` = ncsnr > ``ncsnr_threshold`` AND streams == early.

Each session is read trial block by trial block, and only inside the bounding box of
the selected voxels, so memory stays bounded by one session x selected voxels.

:func:`write_synthetic_nsd` writes the same layout from planted responses, for tests and
the demo; :func:`load_nsd_subject` reads the planted voxels back exactly.
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import scipy.io
from tqdm.auto import tqdm

from brainalign.utils import InputError, atomic_path, check_option, make_rng

__all__ = [
    "NSD_ROI_LABELS",
    "NSD_N_IMAGES",
    "NSDSubject",
    "load_nsd_subject",
    "write_synthetic_nsd",
    "nsd_paths",
    "shared_image_ids",
    "nsd_root_from_design",
]

#: Integer labels of the NSD ROI volumes (func1pt8mm/roi/<file>.nii.gz); -1 = outside brain,
#: 0 = in the brain but in none of the file's ROIs.
NSD_ROI_LABELS: dict[str, dict[str, int]] = {
    "nsdgeneral": {"nsdgeneral": 1},
    "streams": {
        "early": 1,
        "midventral": 2,
        "midlateral": 3,
        "midparietal": 4,
        "ventral": 5,
        "lateral": 6,
        "parietal": 7,
    },
    "floc-faces": {"OFA": 1, "FFA-1": 2, "FFA-2": 3, "mTL-faces": 4, "aTL-faces": 5},
    "floc-bodies": {"EBA": 1, "FBA-1": 2, "FBA-2": 3, "mTL-bodies": 4},
    "floc-places": {"OPA": 1, "PPA": 2, "RSC": 3},
    "floc-words": {"OWFA": 1, "VWFA-1": 2, "VWFA-2": 3, "mfs-words": 4, "mTL-words": 5},
}

#: Number of images in the NSD stimulus set (73k ids run 0..72999).
NSD_N_IMAGES = 73000
_N_10K = 10000  # columns of subjectim: each subject's 10,000 images
_N_SUBJECTS = 8
_BETA_SCALE = 300.0  # int16 betas = percent signal change x 300
_ROI_NAMES = ("OTC", "EVC")
_BETAS_DIR = "betas_fithrf_GLMdenoise_RR"
_READ_BUDGET_BYTES = 128 * 2**20  # bytes of int16 read from HDF5 at a time

# floc ROI name -> (roi file, label, domain of the t map floc_<domain>tval.nii.gz)
_FLOC_ROIS: dict[str, tuple[str, int, str]] = {
    name: (file, label, file.split("-", 1)[1])
    for file, table in NSD_ROI_LABELS.items()
    if file.startswith("floc-")
    for name, label in table.items()
}


@dataclass
class NSDSubject:
    """The shared images' responses of one NSD subject, per ROI.

    Attributes
    ----------
    subject : int
        NSD subject number (1..8).
    image_ids : ndarray of int64, shape (n_images,)
        0-based 73k ids of the shared images, ascending; row i of every array is image i.
    responses : dict of str -> ndarray of float32, shape (n_images, n_voxels)
        Responses averaged over the ``n_reps`` repetitions (z-scored per session first
        when ``zscore_sessions``; percent signal change otherwise).
    repetitions : dict of str -> ndarray of float32, shape (n_reps, n_images, n_voxels)
        The single-trial responses, repetition r = the image's r-th presentation in time.
    voxel_ijk : dict of str -> ndarray of int64, shape (n_voxels, 3)
        Voxel indices in NIfTI (X, Y, Z) order; voxels are in C order of the volume.
    ncsnr : dict of str -> ndarray of float32, shape (n_voxels,)
        NSD's noise-ceiling SNR of each selected voxel.
    """

    subject: int
    image_ids: np.ndarray
    responses: dict[str, np.ndarray]
    repetitions: dict[str, np.ndarray]
    voxel_ijk: dict[str, np.ndarray]
    ncsnr: dict[str, np.ndarray]


# --------------------------------------------------------------------------- paths


def nsd_paths(nsd_root, subject: int) -> dict[str, Path]:
    """Paths of the files of one subject under ``nsd_root`` (existing or not).

    Keys: ``design``, ``stim_info``, ``stimuli``, ``betas_dir``, ``ncsnr``,
    ``ncsnr_alt``, ``roi/<file>`` for every ROI file, ``tval/<domain>`` for every
    floc domain. Session files are ``betas_dir / f"betas_session{ss:02d}.hdf5"``.
    """
    root = Path(nsd_root)
    subj = f"subj{subject:02d}"
    exp = root / "nsddata" / "experiments" / "nsd"
    func = root / "nsddata" / "ppdata" / subj / "func1pt8mm"
    betas = root / "nsddata_betas" / "ppdata" / subj / "func1pt8mm" / _BETAS_DIR
    paths = {
        "design": exp / "nsd_expdesign.mat",
        "stim_info": exp / "nsd_stim_info_merged.csv",
        "stimuli": root / "nsddata_stimuli" / "stimuli" / "nsd" / "nsd_stimuli.hdf5",
        "betas_dir": betas,
        "ncsnr": betas / "ncsnr.nii.gz",
        "ncsnr_alt": func / "ncsnr.nii.gz",
    }
    for file in NSD_ROI_LABELS:
        paths[f"roi/{file}"] = func / "roi" / f"{file}.nii.gz"
    for domain in ("faces", "bodies", "places", "words"):
        paths[f"tval/{domain}"] = func / f"floc_{domain}tval.nii.gz"
    return paths


def nsd_root_from_design(design_path) -> Path:
    """The NSD root of a ``nsddata/experiments/nsd/nsd_expdesign.mat`` path (rules pass the file)."""
    design_path = Path(design_path)
    if design_path.parts[-4:-1] != ("nsddata", "experiments", "nsd"):
        raise InputError(f"{design_path} is not at nsddata/experiments/nsd/ under an NSD root.")
    return design_path.parents[3]


def shared_image_ids(nsd_root, subject: int = 1) -> np.ndarray:
    """The shared images' 73k ids (0-based, ascending): the stimulus order of every artifact.

    Read from the design file (the first ``n_shared`` columns of ``subjectim``, checked
    against ``sharedix``); the order matches :attr:`NSDSubject.image_ids`.
    """
    design = _read_design(nsd_paths(nsd_root, subject)["design"], subject)
    return np.sort(design["subjectim"][: int(design["n_shared"])].astype(np.int64) - 1)


def _session_path(betas_dir: Path, session: int) -> Path:
    return betas_dir / f"betas_session{session:02d}.hdf5"


# --------------------------------------------------------------------------- reader


def load_nsd_subject(
    nsd_root,
    subject: int,
    *,
    rois: Sequence[str] = ("OTC", "EVC"),
    ncsnr_threshold: float = 0.2,
    otc_streams: Sequence[str] = ("midventral", "midlateral", "ventral", "lateral"),
    floc_rois: Sequence[str] = (
        "OFA", "FFA-1", "FFA-2", "EBA", "FBA-1", "FBA-2", "OPA", "PPA", "OWFA", "VWFA-1",
        "VWFA-2",
    ),
    floc_t_threshold: float = 1.0,
    zscore_sessions: bool = True,
    n_reps: int = 3,
    progress: bool = True,
) -> NSDSubject:
    """Read the shared images' responses of one NSD subject in the OTC and/or EVC ROI.

    Parameters
    ----------
    nsd_root : path
        Folder holding ``nsddata/`` and ``nsddata_betas/`` (see the module docstring).
    subject : int
        NSD subject, 1..8.
    rois : sequence of {'OTC', 'EVC'}
        ROIs to return (see the module docstring for the selection rules).
    ncsnr_threshold : float
        Keep voxels with ncsnr strictly above this (not NaN). A voxel whose ncsnr is NaN
        (no estimate) is never kept; an infinite ncsnr where an ROI could select a voxel
        is an error.
    otc_streams : sequence of str
        ``streams`` ROIs (names in ``NSD_ROI_LABELS['streams']``) that, inside nsdgeneral,
        belong to OTC.
    floc_rois : sequence of str
        floc category ROIs whose voxels with t > ``floc_t_threshold`` (t of the ROI's own
        domain) belong to OTC. Empty: no floc voxels.
    floc_t_threshold : float
        Threshold on the floc t maps (strictly above; not NaN). The t maps must be finite
        at the voxels of the requested floc ROIs whose ncsnr passes ``ncsnr_threshold``.
    zscore_sessions : bool
        z-score each voxel across all trials of each session before averaging
        repetitions (as Conwell et al.'s code); otherwise return percent signal change.
    n_reps : int
        Repetitions averaged per image: the first ``n_reps`` presentations in time. An
        image shown fewer times is an error.
    progress : bool
        Show a progress bar over sessions.

    Returns
    -------
    NSDSubject

    Raises
    ------
    InputError
        Missing or malformed file (a complex volume included), design and stimulus
        table that disagree, an image with fewer than ``n_reps`` presentations, a NaN
        threshold, an infinite ncsnr where an ROI could select a voxel, a NaN/inf floc t
        inside a requested floc ROI, non-finite responses of a selected voxel, or an ROI
        that selects no voxel.
    """
    rois = _check_rois(rois)
    subject = _check_subject(subject)
    otc_streams = (otc_streams,) if isinstance(otc_streams, str) else tuple(otc_streams)
    floc_rois = (floc_rois,) if isinstance(floc_rois, str) else tuple(floc_rois)
    for name in otc_streams:
        check_option("otc_streams", name, NSD_ROI_LABELS["streams"])
    for name in floc_rois:
        check_option("floc_rois", name, _FLOC_ROIS)
    n_reps = _check_int("n_reps", n_reps, 1)
    ncsnr_threshold = _check_threshold("ncsnr_threshold", ncsnr_threshold)
    floc_t_threshold = _check_threshold("floc_t_threshold", floc_t_threshold)

    paths = nsd_paths(nsd_root, subject)
    # 1. Design: which trials show which shared image (cheap, all checked up front).
    design = _read_design(paths["design"], subject)
    stim_info = _read_stim_info(paths["stim_info"], subject)
    image_ids, trials = _shared_trials(design, stim_info, subject, n_reps, paths)

    # 2. Session files: existence, dataset name, dtype and shape, before any long read.
    first = _session_path(paths["betas_dir"], 1)
    trials_per_session, volume_zyx = _betas_geometry(first)
    sessions = np.unique(trials // trials_per_session) + 1  # 1-based session numbers
    for session in sessions:
        _check_session(
            _session_path(paths["betas_dir"], int(session)), trials_per_session, volume_zyx
        )
    shape_xyz = tuple(reversed(volume_zyx))

    # 3. Voxel selection from the ROI, t and ncsnr volumes.
    ncsnr_path = paths["ncsnr"] if paths["ncsnr"].exists() else paths["ncsnr_alt"]
    if not ncsnr_path.exists():
        raise InputError(
            f"NSD ncsnr volume not found: expected {paths['ncsnr']} (or {paths['ncsnr_alt']})."
        )
    ncsnr_vol = _read_volume(ncsnr_path, shape_xyz, first)
    masks = _select_voxels(
        paths, rois, ncsnr_vol, shape_xyz, first,
        ncsnr_threshold=ncsnr_threshold, otc_streams=otc_streams, floc_rois=floc_rois,
        floc_t_threshold=floc_t_threshold, ncsnr_path=ncsnr_path,
    )
    for roi, mask in masks.items():
        if not mask.any():
            raise InputError(
                f"ROI {roi!r} of NSD subject {subject} selects zero voxels (ncsnr_threshold="
                f"{ncsnr_threshold}, floc_t_threshold={floc_t_threshold}, otc_streams="
                f"{list(otc_streams)}, floc_rois={list(floc_rois)}; ncsnr from {ncsnr_path}). "
                "Lower the thresholds or check the ROI files."
            )

    # 4. Read the union of the selected voxels, session by session.
    union = np.zeros(shape_xyz, dtype=bool)
    for mask in masks.values():
        union |= mask
    union_ijk = np.argwhere(union)  # (n_union, 3), C order of the (X, Y, Z) volume
    reps = _read_repetitions(
        paths["betas_dir"], sessions, trials, trials_per_session, union_ijk,
        zscore=zscore_sessions, progress=progress, subject=subject,
    )

    # 5. Split the union back into ROIs.
    union_index = np.full(shape_xyz, -1, dtype=np.int64)
    union_index[tuple(union_ijk.T)] = np.arange(len(union_ijk))
    out = NSDSubject(subject, image_ids, {}, {}, {}, {})
    for roi, mask in masks.items():
        ijk = np.argwhere(mask)
        cols = union_index[tuple(ijk.T)]
        roi_reps = np.ascontiguousarray(reps[:, :, cols])
        out.repetitions[roi] = roi_reps
        out.responses[roi] = roi_reps.mean(axis=0, dtype=np.float64).astype(np.float32)
        out.voxel_ijk[roi] = ijk.astype(np.int64)
        out.ncsnr[roi] = ncsnr_vol[mask].astype(np.float32)
    return out


def _check_rois(rois) -> tuple[str, ...]:
    if isinstance(rois, str):
        rois = (rois,)
    rois = tuple(rois)
    if not rois:
        raise InputError("rois is empty; expected one or more of 'OTC' and 'EVC'.")
    for roi in rois:
        check_option("rois", roi, _ROI_NAMES)
    if len(set(rois)) != len(rois):
        raise InputError(f"rois lists an ROI twice: {list(rois)}.")
    return rois


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_threshold(name: str, value) -> float:
    """A threshold as float; NaN would silently select no voxel (every comparison is False)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(
            f"{name} (config key nsd.{name}) must be a number, got {value!r}."
        )
    value = float(value)
    if math.isnan(value):
        raise InputError(
            f"{name} (config key nsd.{name}) is NaN; expected a number (voxels strictly "
            "above it are kept)."
        )
    return value


def _check_subject(subject) -> int:
    if isinstance(subject, bool) or not isinstance(subject, (int, np.integer)):
        raise InputError(f"NSD subject must be an integer 1..8, got {subject!r}.")
    subject = int(subject)
    if not 1 <= subject <= _N_SUBJECTS:
        raise InputError(f"NSD subject must be 1..8, got {subject}.")
    return subject


def _as_index_array(value, path: Path, key: str, shape_desc: str) -> np.ndarray:
    """Integer array from a .mat variable that may be stored as double."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise InputError(f"{path}: variable {key!r} must be a numeric {shape_desc} array.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InputError(f"{path}: variable {key!r} must hold whole numbers (1-based ids).")
    return arr.astype(np.int64)


def _read_design(path: Path, subject: int) -> dict[str, np.ndarray]:
    """masterordering (n_trials,) 10k ids, subjectim (8, 10000) and sharedix, all 1-based."""
    if not path.exists():
        raise InputError(f"NSD design file not found: {path}.")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types for a bad file
        raise InputError(f"{path}: cannot read as a MATLAB .mat file ({err}).") from err
    for key in ("masterordering", "subjectim", "sharedix"):
        if key not in mat:
            raise InputError(
                f"{path}: variable {key!r} is missing; expected masterordering (1, n_trials), "
                "subjectim (8, 10000) and sharedix (1, n_shared)."
            )
    order = _as_index_array(mat["masterordering"], path, "masterordering", "(1, n_trials)")
    subjectim = _as_index_array(mat["subjectim"], path, "subjectim", "(8, 10000)")
    sharedix = _as_index_array(mat["sharedix"], path, "sharedix", "(1, n_shared)")
    if order.ndim != 2 or order.shape[0] != 1:
        raise InputError(f"{path}: masterordering has shape {order.shape}; expected (1, n_trials).")
    if subjectim.ndim != 2 or subjectim.shape[1] != _N_10K or subjectim.shape[0] < subject:
        raise InputError(
            f"{path}: subjectim has shape {subjectim.shape}; expected (8, {_N_10K}) "
            f"(at least {subject} rows for subject {subject})."
        )
    if sharedix.ndim != 2 or sharedix.shape[0] != 1 or sharedix.shape[1] > _N_10K:
        raise InputError(f"{path}: sharedix has shape {sharedix.shape}; expected (1, n_shared).")
    order = order[0]
    sharedix = sharedix[0]
    if order.min() < 1 or order.max() > _N_10K:
        raise InputError(f"{path}: masterordering must hold 1-based 10k ids in 1..{_N_10K}.")
    row = subjectim[subject - 1]
    if row.min() < 1 or row.max() > NSD_N_IMAGES:
        raise InputError(f"{path}: subjectim must hold 1-based 73k ids in 1..{NSD_N_IMAGES}.")
    n_shared = len(sharedix)
    if not np.array_equal(np.sort(row[:n_shared]), np.sort(sharedix)):
        raise InputError(
            f"{path}: the first {n_shared} columns of subjectim row {subject} are not the "
            "images listed in sharedix; expected the shared images in both."
        )
    return {"order": order, "subjectim": row, "n_shared": np.int64(n_shared)}


def _read_stim_info(path: Path, subject: int) -> pd.DataFrame:
    """nsdId and the subject's 1-based trial numbers (columns rep0..), 0 = not shown."""
    if not path.exists():
        raise InputError(f"NSD stimulus table not found: {path}.")
    try:
        table = pd.read_csv(path, index_col=0)
    except Exception as err:
        raise InputError(f"{path}: cannot read as CSV ({err}).") from err
    pattern = re.compile(rf"^subject{subject}_rep(\d+)$")
    rep_cols = sorted(
        (c for c in table.columns if pattern.match(str(c))),
        key=lambda c: int(pattern.match(str(c)).group(1)),
    )
    if "nsdId" not in table.columns or not rep_cols:
        raise InputError(
            f"{path}: expected columns 'nsdId' and 'subject{subject}_rep0', "
            f"'subject{subject}_rep1', ... (1-based trial numbers, 0 = not shown); "
            f"found {list(table.columns)[:12]}."
        )
    out = table[["nsdId", *rep_cols]]
    if "shared1000" in table.columns:
        out = out.assign(shared1000=table["shared1000"].astype(bool))
    if out.isna().any().any():
        raise InputError(f"{path}: missing values in 'nsdId' or the subject{subject}_rep columns.")
    if out["nsdId"].duplicated().any():
        dup = int(out["nsdId"][out["nsdId"].duplicated()].iloc[0])
        raise InputError(f"{path}: nsdId {dup} appears on more than one row; expected unique ids.")
    return out.rename(columns={c: f"rep{i}" for i, c in enumerate(rep_cols)})


def _shared_trials(design, stim_info: pd.DataFrame, subject: int, n_reps: int, paths):
    """Shared image ids (ascending) and their trials: (n_reps, n_images) 0-based, global."""
    order, row, n_shared = design["order"], design["subjectim"], int(design["n_shared"])
    rep_cols = [c for c in stim_info.columns if c.startswith("rep")]
    trial_table = stim_info[rep_cols].to_numpy(dtype=np.int64)
    n_done = int(trial_table.max()) if trial_table.size else 0
    if n_done < 1:
        raise InputError(
            f"{paths['stim_info']}: subject {subject} has no trials (all "
            f"subject{subject}_rep columns are 0)."
        )
    if n_done > len(order):
        raise InputError(
            f"{paths['stim_info']}: subject {subject} has trial {n_done}, but masterordering "
            f"in {paths['design']} lists only {len(order)} trials."
        )
    order = order[:n_done]
    shared_t = np.flatnonzero(order <= n_shared)  # 0-based global trial numbers
    trial_ids = row[order[shared_t] - 1] - 1  # 0-based 73k ids
    image_ids = np.sort(row[:n_shared] - 1).astype(np.int64)
    img = np.searchsorted(image_ids, trial_ids)
    # presentations of each image, in time: rank of each trial among its image's trials
    by_image = np.lexsort((shared_t, img))
    img_sorted = img[by_image]
    counts = np.bincount(img_sorted, minlength=len(image_ids))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(img_sorted)) - starts[img_sorted]

    # Cross-check against the stimulus table: same trials for every shared image.
    max_reps = int(counts.max()) if len(counts) else 0
    design_trials = np.zeros((len(image_ids), max(max_reps, len(rep_cols))), dtype=np.int64)
    design_trials[img_sorted, rank] = shared_t[by_image] + 1
    table = stim_info.set_index("nsdId")
    missing = np.setdiff1d(image_ids, table.index.to_numpy())
    if len(missing):
        raise InputError(
            f"{paths['stim_info']}: no row for shared image nsdId {int(missing[0])} "
            f"({len(missing)} shared images of {paths['design']} missing)."
        )
    rows = table.loc[image_ids]
    big = np.iinfo(np.int64).max  # sort the shown trials ascending, the zeros last
    csv_trials = rows[rep_cols].to_numpy(dtype=np.int64)
    csv_trials = np.sort(np.where(csv_trials > 0, csv_trials, big), axis=1)
    csv_trials[csv_trials == big] = 0
    width = design_trials.shape[1]
    padded = np.zeros((len(image_ids), width), dtype=np.int64)
    padded[:, : csv_trials.shape[1]] = csv_trials
    bad = np.flatnonzero(np.any(padded != design_trials, axis=1))
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{paths['stim_info']} and {paths['design']} disagree for subject {subject}: "
            f"shared image nsdId {int(image_ids[i])} is shown on trials "
            f"{[int(t) for t in padded[i] if t]} per the table but on trials "
            f"{[int(t) for t in design_trials[i] if t]} per masterordering/subjectim "
            f"({len(bad)} images disagree)."
        )
    if "shared1000" in rows.columns and not rows["shared1000"].all():
        nid = int(rows.index[~rows["shared1000"].to_numpy()][0])
        raise InputError(
            f"{paths['stim_info']}: nsdId {nid} is a shared image in {paths['design']} "
            "but its shared1000 column is False."
        )

    few = np.flatnonzero(counts < n_reps)
    if len(few):
        i = int(few[0])
        raise InputError(
            f"NSD subject {subject}: shared image nsdId {int(image_ids[i])} was presented "
            f"{int(counts[i])} times in the subject's {n_done} trials, fewer than n_reps="
            f"{n_reps} ({len(few)} of {len(image_ids)} shared images have fewer; counts "
            f"range {int(counts.min())}..{int(counts.max())}). Lower n_reps."
        )
    trials = np.empty((n_reps, len(image_ids)), dtype=np.int64)
    keep = rank < n_reps
    trials[rank[keep], img_sorted[keep]] = shared_t[by_image][keep]
    return image_ids, trials


def _open_betas(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(f"NSD betas session file not found: {path}.")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: cannot open as HDF5 ({err}).") from err


def _betas_geometry(path: Path) -> tuple[int, tuple[int, int, int]]:
    """(trials per session, (Z, Y, X)) from one session file."""
    with _open_betas(path) as f:
        ds = f.get("betas")
        if not isinstance(ds, h5py.Dataset):
            raise InputError(
                f"{path}: dataset '/betas' not found; expected int16 (trials, Z, Y, X) "
                f"(found {list(f.keys())})."
            )
        if ds.ndim != 4 or ds.dtype != np.int16:
            raise InputError(
                f"{path}: '/betas' is {ds.dtype} with shape {ds.shape}; expected int16 with "
                "shape (trials, Z, Y, X), e.g. (750, 83, 104, 81)."
            )
        return int(ds.shape[0]), tuple(int(s) for s in ds.shape[1:])


def _check_session(path: Path, trials_per_session: int, volume_zyx) -> None:
    n, zyx = _betas_geometry(path)
    expected = (trials_per_session, *volume_zyx)
    if (n, *zyx) != expected:
        raise InputError(
            f"{path}: '/betas' has shape {(n, *zyx)}; expected {expected} like session 1 "
            "(every session must have the same number of trials and the same volume)."
        )


def _read_volume(path: Path, shape_xyz, betas_path: Path) -> np.ndarray:
    if not path.exists():
        raise InputError(f"NSD volume not found: {path}.")
    try:
        data = np.asanyarray(nib.load(path).dataobj)
    except Exception as err:
        raise InputError(f"{path}: cannot read as NIfTI ({err}).") from err
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise InputError(
            f"{path}: volume is {data.dtype}; expected real numbers (integer labels or float "
            "values), not complex or other types."
        )
    if data.shape != tuple(shape_xyz):
        raise InputError(
            f"{path}: volume has shape {data.shape}; expected {tuple(shape_xyz)} (X, Y, Z), "
            f"the volume of the betas in {betas_path}."
        )
    return data


def _labels(path: Path, shape_xyz, betas_path: Path) -> np.ndarray:
    data = _read_volume(path, shape_xyz, betas_path)
    if data.dtype.kind == "f":
        data = np.rint(np.nan_to_num(data, nan=-1.0))
    return data.astype(np.int64)


def _select_voxels(paths, rois, ncsnr_vol, shape_xyz, betas_path, *, ncsnr_threshold,
                   otc_streams, floc_rois, floc_t_threshold, ncsnr_path) -> dict[str, np.ndarray]:
    """Boolean (X, Y, Z) mask per ROI.

    NaN ncsnr means "no estimate": such a voxel never passes the threshold. An infinite
    ncsnr at a voxel an ROI could select, or a NaN/inf floc t at a voxel of a requested
    floc ROI (with ncsnr above the threshold), is an :class:`InputError`: either would
    silently add or drop voxels.
    """
    ncsnr = np.asarray(ncsnr_vol, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        good = ncsnr > ncsnr_threshold  # NaN -> False (documented above)
    streams = _labels(paths["roi/streams"], shape_xyz, betas_path)
    masks = {}
    for roi in rois:
        if roi == "EVC":
            where = streams == NSD_ROI_LABELS["streams"]["early"]
            _check_ncsnr_finite(ncsnr, where, roi, ncsnr_path)
            masks[roi] = good & where
            continue
        general = _labels(paths["roi/nsdgeneral"], shape_xyz, betas_path)
        codes = [NSD_ROI_LABELS["streams"][s] for s in otc_streams]
        otc = (general == NSD_ROI_LABELS["nsdgeneral"]["nsdgeneral"]) & np.isin(streams, codes)
        files: dict[str, list[int]] = {}  # roi file -> labels wanted from it
        for name in floc_rois:
            file, label, _ = _FLOC_ROIS[name]
            files.setdefault(file, []).append(label)
        for file, labels in files.items():
            domain = file.split("-", 1)[1]  # floc-faces -> floc_facestval.nii.gz
            roi_vol = _labels(paths[f"roi/{file}"], shape_xyz, betas_path)
            tval = np.asarray(
                _read_volume(paths[f"tval/{domain}"], shape_xyz, betas_path), dtype=np.float64
            )
            in_floc = np.isin(roi_vol, labels)
            bad = in_floc & ~np.isfinite(tval) & good
            if bad.any():
                names = [n for n in floc_rois if _FLOC_ROIS[n][0] == file]
                first = tuple(int(c) for c in np.argwhere(bad)[0])
                raise InputError(
                    f"{paths[f'tval/{domain}']}: the floc t map is NaN or inf at "
                    f"{int(bad.sum())} voxel(s) of the floc ROIs {names} (from "
                    f"{paths[f'roi/{file}']}) whose ncsnr exceeds ncsnr_threshold="
                    f"{ncsnr_threshold}, first at (X, Y, Z) = {first}; expected finite t "
                    "values there (the voxels would be dropped from OTC silently). Check the "
                    "file, or leave these floc ROIs out of floc_rois."
                )
            otc |= in_floc & (tval > floc_t_threshold)
        _check_ncsnr_finite(ncsnr, otc, roi, ncsnr_path)
        masks[roi] = good & otc
    return masks


def _check_ncsnr_finite(ncsnr: np.ndarray, where: np.ndarray, roi: str, path: Path) -> None:
    """InputError if ncsnr is +-inf at a voxel of ``where`` (the ROI's location)."""
    bad = where & np.isinf(ncsnr)
    if bad.any():
        first = tuple(int(c) for c in np.argwhere(bad)[0])
        raise InputError(
            f"{path}: ncsnr is inf at {int(bad.sum())} voxel(s) that ROI {roi!r} could select, "
            f"first at (X, Y, Z) = {first}; expected finite ncsnr (NaN = no estimate is "
            "allowed and never selected)."
        )


def _read_repetitions(betas_dir, sessions, trials, trials_per_session, ijk, *, zscore,
                      progress, subject) -> np.ndarray:
    """(n_reps, n_images, n_voxels) float32 responses of the voxels at ``ijk`` (X, Y, Z)."""
    n_reps, n_images = trials.shape
    out = np.empty((n_reps, n_images, len(ijk)), dtype=np.float32)
    lo = ijk.min(axis=0)
    hi = ijk.max(axis=0) + 1
    # h5py order is (trial, Z, Y, X): voxel (i, j, k) sits at [:, k, j, i]
    local = (ijk[:, 2] - lo[2], ijk[:, 1] - lo[1], ijk[:, 0] - lo[0])
    box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
    bytes_per_trial = 2 * int(np.prod(hi - lo))
    block = max(1, _READ_BUDGET_BYTES // bytes_per_trial)
    session_of = trials // trials_per_session
    bar = tqdm(sessions, desc=f"NSD subj{subject:02d} sessions", unit="session",
               disable=not progress)
    for session in bar:
        path = _session_path(betas_dir, int(session))
        here = session_of == session - 1  # (n_reps, n_images) trials in this session
        rows = trials[here] % trials_per_session
        # z-scoring needs every trial of the session; otherwise only the span of ours
        start, stop = (0, trials_per_session) if zscore else (int(rows.min()), int(rows.max()) + 1)
        data = np.empty((stop - start, len(ijk)), dtype=np.float64)
        with _open_betas(path) as f:
            ds = f["betas"]
            for t0 in range(start, stop, block):
                t1 = min(stop, t0 + block)
                chunk = ds[(slice(t0, t1), *box)]  # (b, Z', Y', X') int16
                data[t0 - start : t1 - start] = chunk[(slice(None), *local)]
        if zscore:
            mean = data.mean(axis=0)
            sd = data.std(axis=0)
            flat = np.flatnonzero(~(sd > 0))
            if len(flat):
                v = int(flat[0])
                raise InputError(
                    f"{path}: voxel (X, Y, Z) = {tuple(int(c) for c in ijk[v])} is constant "
                    f"over the session's {trials_per_session} trials, so its z-scored response "
                    f"is NaN ({len(flat)} selected voxels affected); expected varying betas, "
                    "or set zscore_sessions=False."
                )
            data = (data - mean) / sd
        else:
            data /= _BETA_SCALE
        out[here] = data[rows - start]
    if not np.all(np.isfinite(out)):
        raise InputError(f"NSD subject {subject}: non-finite responses in selected voxels.")
    return out


# --------------------------------------------------------------------------- writer

# Filler voxels the loader must NOT select with its default options:
# (name, nsdgeneral, streams, floc file, floc label, t range, has signal)
_FILLERS = (
    ("noise_ventral", 1, 5, None, 0, None, False),      # OTC location, ncsnr below threshold
    ("noise_early", 1, 1, None, 0, None, False),        # EVC location, ncsnr below threshold
    ("parietal", 1, 7, None, 0, None, True),            # streams parietal
    ("midparietal", 1, 4, None, 0, None, True),         # streams midparietal
    ("ffa_low_t", 0, 0, "floc-faces", 2, (0.0, 0.9), True),   # floc ROI with t < 1
    ("rsc", 0, 0, "floc-places", 3, (2.0, 6.0), True),         # RSC is not an OTC floc ROI
    ("mtl_faces", 0, 0, "floc-faces", 4, (2.0, 6.0), True),    # nor is mTL-faces
    ("ventral_outside", 0, 5, None, 0, None, True),     # streams ventral, outside nsdgeneral
)
# Planted OTC voxels outside nsdgeneral/streams, selected through a floc ROI with t > 1.
_PLANTED_FLOC = (("floc-faces", 2), ("floc-bodies", 1), ("floc-places", 2), ("floc-words", 2))
_PLANTED_STREAMS = (5, 6, 2, 3)  # ventral, lateral, midventral, midlateral
_NCSNR_PLANTED_MIN = 0.5  # planted and signal-filler voxels: ncsnr >= this
_NCSNR_NOISE_MAX = 0.1  # noise-only fillers: ncsnr <= this


def write_synthetic_nsd(
    root,
    *,
    image_ids,
    responses: Mapping[int, Mapping[str, np.ndarray]],
    images: np.ndarray | None = None,
    trials_per_session: int | None = None,
    seed=0,
    n_filler_voxels: int = 200,
) -> None:
    """Write a small NSD in the real layout, with planted responses, under ``root``.

    Parameters
    ----------
    root : path
        Becomes ``nsd_root`` for :func:`load_nsd_subject`.
    image_ids : array of int, shape (n_images,)
        Distinct 0-based 73k ids: the shared images.
    responses : dict of int -> dict of str -> ndarray, shape (n_reps, n_images, n_voxels)
        Per subject (1..8) and ROI ('EVC' and/or 'OTC'), percent signal change of each
        planted voxel on each presentation; axis 1 follows ``image_ids``. ``n_reps`` and
        ``n_images`` are the same for every subject and ROI; values must fit int16 after
        x300 (|x| <= 109).
    images : uint8 array (n_images, H, W, 3), optional
        Written to ``nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5`` ``imgBrick`` (73000,
        H, W, 3), chunked per image so only the given rows take space.
    trials_per_session : int, optional
        Default ``ceil(n_images * n_reps / 2)`` (two sessions). When it does not divide
        the number of shared trials, the design gets extra non-shared trials (each a
        different non-shared image, shown once, noise responses) so every session is full.
    seed : int
        Seed of the trial order, the voxel positions, the non-shared ids and the fillers.
    n_filler_voxels : int
        Voxels per subject that the default selection must reject, cycling over: noise
        only in OTC and EVC locations (ncsnr <= 0.1), streams parietal and midparietal,
        FFA-1 with t < 1, RSC and mTL-faces with t > 1, streams ventral outside nsdgeneral.

    Notes
    -----
    Layout: the design (``masterordering`` over all trials in a seeded random order,
    ``subjectim`` (8, 10000) with columns 0..n_images-1 = sorted shared ids + 1,
    ``sharedix`` (1, n_images)), ``nsd_stim_info_merged.csv`` (rows for the shared images
    and each subject's extra images), betas per session, the ROI and floc t volumes and
    ``ncsnr.nii.gz`` (in the betas folder, as on the NSD bucket) per subject. The design
    is common to all subjects (as in NSD); subjects absent from ``responses`` have no
    trials in the csv and no files. Planted voxels sit at random positions; each ROI's
    voxels are placed in the C order of the (X, Y, Z) volume so the loader returns them
    in the planted column order. EVC voxels: streams early, nsdgeneral 1. OTC voxels: 4
    in 5 in nsdgeneral with streams ventral/lateral/midventral/midlateral, 1 in 5 outside
    nsdgeneral/streams in FFA-1/EBA/PPA/VWFA-1 with t in [2, 6]. ncsnr follows NSD's
    definition on the session-z-scored written betas, then is raised to >= 0.5 for
    planted and signal-filler voxels and lowered to <= 0.1 for noise-only fillers, so any
    threshold in (0.1, 0.5) separates them.
    """
    rng = make_rng(seed)
    root = Path(root)
    ids = _check_image_ids(image_ids)
    n_images = len(ids)
    planted, n_reps = _check_planted(responses, n_images)
    n_filler_voxels = _check_int("n_filler_voxels", n_filler_voxels, 0)
    n_shared_trials = n_images * n_reps
    if trials_per_session is None:
        trials_per_session = max(1, math.ceil(n_shared_trials / 2))
    tps = _check_int("trials_per_session", trials_per_session, 1)
    n_sessions = math.ceil(n_shared_trials / tps)
    n_trials = n_sessions * tps
    n_extra = n_trials - n_shared_trials
    if n_images + n_extra > _N_10K or 8 * n_extra + _N_10K > NSD_N_IMAGES:
        raise InputError(
            f"trials_per_session={tps} needs {n_extra} non-shared trials beside "
            f"{n_images} shared images, more than the design can hold; pick a divisor of "
            f"{n_shared_trials} or a smaller value."
        )
    order_sorted = np.argsort(ids)
    sorted_ids = ids[order_sorted]

    # ---- design: masterordering, subjectim, sharedix
    ten_k = np.concatenate([np.repeat(np.arange(1, n_images + 1), n_reps),
                            np.arange(n_images + 1, n_images + n_extra + 1)])
    master = rng.permutation(ten_k)  # 1-based 10k id per trial
    pool = rng.permutation(np.setdiff1d(np.arange(NSD_N_IMAGES), sorted_ids))
    extra_ids = pool[: 8 * n_extra].reshape(8, n_extra)  # distinct across subjects
    rest = pool[8 * n_extra:]
    subjectim = np.empty((_N_SUBJECTS, _N_10K), dtype=np.int64)
    for s in range(_N_SUBJECTS):
        others = rng.choice(rest, _N_10K - n_images - n_extra, replace=False)
        subjectim[s] = np.concatenate([sorted_ids, extra_ids[s], others]) + 1
    paths = nsd_paths(root, 1)
    with atomic_path(paths["design"]) as tmp:
        scipy.io.savemat(tmp, {
            "masterordering": master[None, :].astype(np.float64),
            "subjectim": subjectim.astype(np.float64),
            "sharedix": (sorted_ids + 1)[None, :].astype(np.float64),
        })

    # trial -> (image index in sorted order, repetition) for shared trials
    is_shared = master <= n_images
    trial_img = np.where(is_shared, master - 1, -1)
    trial_rep = np.full(n_trials, -1)
    for i in range(n_images):
        t = np.flatnonzero(trial_img == i)
        trial_rep[t] = np.arange(len(t))

    _write_stim_info(paths["stim_info"], sorted_ids, subjectim, master, n_images, n_reps,
                     sorted(planted))

    for subject in sorted(planted):
        rois = {roi: arr[:, order_sorted, :] for roi, arr in planted[subject].items()}
        _write_subject(root, subject, rois, trial_img, trial_rep, tps, n_sessions,
                       n_filler_voxels, rng)

    if images is not None:
        _write_stimuli(paths["stimuli"], images, ids)


def _check_image_ids(image_ids) -> np.ndarray:
    ids = np.asarray(image_ids)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise InputError(
            f"image_ids must be a non-empty 1-D integer array of 73k ids, got dtype "
            f"{ids.dtype} and shape {ids.shape}."
        )
    ids = ids.astype(np.int64)
    if ids.min() < 0 or ids.max() >= NSD_N_IMAGES:
        raise InputError(f"image_ids must lie in 0..{NSD_N_IMAGES - 1} (0-based 73k ids).")
    if len(np.unique(ids)) != len(ids):
        raise InputError("image_ids holds duplicates; expected distinct 73k ids.")
    if len(ids) > _N_10K:
        raise InputError(f"image_ids has {len(ids)} images; at most {_N_10K} can be shared.")
    return ids


def _check_planted(responses, n_images) -> tuple[dict[int, dict[str, np.ndarray]], int]:
    if not isinstance(responses, Mapping) or not responses:
        raise InputError("responses must be a non-empty dict {subject: {roi: array}}.")
    planted: dict[int, dict[str, np.ndarray]] = {}
    n_reps = None
    for subject, per_roi in responses.items():
        subject = _check_subject(subject)
        if not isinstance(per_roi, Mapping) or not per_roi:
            raise InputError(f"responses[{subject}] must be a non-empty dict {{roi: array}}.")
        planted[subject] = {}
        for roi, arr in per_roi.items():
            check_option("responses roi", roi, _ROI_NAMES)
            arr = np.asarray(arr, dtype=np.float64)
            where = f"responses[{subject}][{roi!r}]"
            if arr.ndim != 3 or arr.shape[1] != n_images or arr.shape[2] < 1:
                raise InputError(
                    f"{where} has shape {arr.shape}; expected (n_reps, {n_images}, n_voxels)."
                )
            if n_reps is None:
                n_reps = arr.shape[0]
            if arr.shape[0] != n_reps or n_reps < 1:
                raise InputError(
                    f"{where} has {arr.shape[0]} repetitions, but another array has {n_reps}; "
                    "NSD has one design for all subjects, so n_reps must be the same."
                )
            if not np.all(np.isfinite(arr)):
                raise InputError(f"{where} holds NaN or inf; expected finite % signal change.")
            if np.abs(np.rint(arr * _BETA_SCALE)).max() > np.iinfo(np.int16).max:
                raise InputError(
                    f"{where} exceeds the int16 range of NSD betas (|x| * 300 <= 32767, "
                    "i.e. |x| <= 109 % signal change)."
                )
            planted[subject][roi] = arr
    return planted, int(n_reps)


def _write_stim_info(path, sorted_ids, subjectim, master, n_images, n_reps, subjects) -> None:
    n_extra = int((master > n_images).sum())
    rows = {}  # nsdId -> row dict
    for nid in sorted_ids:
        rows[int(nid)] = {"cocoId": 100000 + int(nid), "nsdId": int(nid), "shared1000": True}
    for s in subjects:
        for col in range(n_images, n_images + n_extra):
            nid = int(subjectim[s - 1, col] - 1)
            rows[nid] = {"cocoId": 100000 + nid, "nsdId": nid, "shared1000": False}
    table = pd.DataFrame(sorted(rows.values(), key=lambda r: r["nsdId"]))
    n_cols = max(n_reps, 1)
    index = {nid: i for i, nid in enumerate(table["nsdId"])}
    for s in range(1, _N_SUBJECTS + 1):
        shown = np.zeros((len(table), n_cols), dtype=np.int64)
        seen = np.zeros(len(table), dtype=np.int64)
        if s in subjects:
            for t, ten_k in enumerate(master):
                r = index[int(subjectim[s - 1, ten_k - 1] - 1)]
                shown[r, seen[r]] = t + 1
                seen[r] += 1
        table[f"subject{s}"] = seen > 0
        for r in range(n_cols):
            table[f"subject{s}_rep{r}"] = shown[:, r]
    with atomic_path(path) as tmp:
        table.to_csv(tmp)


def _save_nifti(path: Path, data: np.ndarray) -> None:
    img = nib.Nifti1Image(data, np.diag([1.8, 1.8, 1.8, 1.0]))
    with atomic_path(path) as tmp, gzip.open(tmp, "wb") as f:
        f.write(img.to_bytes())


def _write_subject(root, subject, rois, trial_img, trial_rep, tps, n_sessions, n_fill, rng):
    """Betas, ROI/t volumes and ncsnr of one subject."""
    paths = nsd_paths(root, subject)
    n_trials = len(trial_img)
    n_evc = rois["EVC"].shape[2] if "EVC" in rois else 0
    n_otc = rois["OTC"].shape[2] if "OTC" in rois else 0
    n_brain = n_evc + n_otc + n_fill
    side = max(2, math.ceil((2 * n_brain) ** (1 / 3)))
    shape = (side + 2, side + 1, side)  # (X, Y, Z), all different to catch transposes
    pos = rng.choice(int(np.prod(shape)), n_brain, replace=False)
    evc_pos = np.sort(pos[:n_evc])
    otc_pos = np.sort(pos[n_evc:n_evc + n_otc])
    fill_pos = pos[n_evc + n_otc:]
    pos = np.concatenate([evc_pos, otc_pos, fill_pos])  # column order of the values below

    general = np.full(shape, -1, dtype=np.int32)
    streams = np.full(shape, -1, dtype=np.int32)
    floc = {f: np.full(shape, -1, dtype=np.int32) for f in NSD_ROI_LABELS if f.startswith("floc")}
    tval = {f: np.zeros(shape, dtype=np.float32) for f in floc}
    brain = np.zeros(shape, dtype=bool)
    brain.flat[pos] = True
    for vol in (general, streams, *floc.values()):
        vol[brain] = 0
    for f in tval:  # brain voxels outside every planted floc ROI: t in [-2, 0.9]
        tval[f][brain] = rng.uniform(-2.0, 0.9, int(brain.sum()))

    general.flat[evc_pos] = 1
    streams.flat[evc_pos] = NSD_ROI_LABELS["streams"]["early"]
    n_floc = max(1, n_otc // 5) if n_otc >= 2 else 0
    floc_cols = np.sort(rng.choice(n_otc, n_floc, replace=False)) if n_floc else np.array([], int)
    is_floc = np.zeros(n_otc, dtype=bool)
    is_floc[floc_cols] = True
    for c, p in enumerate(otc_pos[~is_floc]):
        general.flat[p] = 1
        streams.flat[p] = _PLANTED_STREAMS[c % len(_PLANTED_STREAMS)]
    for c, p in enumerate(otc_pos[is_floc]):
        file, label = _PLANTED_FLOC[c % len(_PLANTED_FLOC)]
        floc[file].flat[p] = label
        tval[file].flat[p] = rng.uniform(2.0, 6.0)
    kinds = np.arange(n_fill) % len(_FILLERS)
    for p, kind in zip(fill_pos, kinds, strict=True):
        _, gen, stream, file, label, trange, _ = _FILLERS[kind]
        general.flat[p] = gen
        streams.flat[p] = stream
        if file is not None:
            floc[file].flat[p] = label
            tval[file].flat[p] = rng.uniform(*trange)

    # ---- per-trial values (n_trials, n_brain) in % signal change
    values = np.empty((n_trials, n_brain), dtype=np.float64)
    shared = trial_img >= 0
    col = 0
    for roi in ("EVC", "OTC"):
        if roi not in rois:
            continue
        arr = rois[roi]
        v = arr.shape[2]
        values[shared, col:col + v] = arr[trial_rep[shared], trial_img[shared]]
        n_other = int((~shared).sum())
        if n_other:
            values[~shared, col:col + v] = rng.normal(
                arr.mean(axis=(0, 1)), arr.std(axis=(0, 1)) + 0.1, size=(n_other, v)
            )
        col += v
    signal_kind = np.array([_FILLERS[k][6] for k in kinds], dtype=bool)
    n_images = int(trial_img.max()) + 1
    signal = rng.normal(0.0, 2.0, size=(n_images, n_fill))
    noise = rng.normal(0.0, 1.0, size=(n_trials, n_fill))
    fill_vals = noise
    fill_vals[shared] += np.where(signal_kind, signal[trial_img[shared]], 0.0)
    values[:, col:] = fill_vals
    betas = np.rint(values * _BETA_SCALE).astype(np.int16)  # range checked for planted data

    # ---- ncsnr (NSD definition) on session-z-scored betas
    z = betas.astype(np.float64).reshape(n_sessions, tps, n_brain)
    sd = z.std(axis=1, keepdims=True)
    z = ((z - z.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)).reshape(n_trials, -1)
    n_reps = int(trial_rep.max()) + 1
    if n_reps >= 2:
        reps = np.empty((n_reps, n_images, n_brain))
        reps[trial_rep[shared], trial_img[shared]] = z[shared]
        noise_sd = np.sqrt(reps.var(axis=0, ddof=1).mean(axis=0))
        signal_sd = np.sqrt(np.maximum(0.0, 1.0 - noise_sd**2))
        ncsnr = signal_sd / np.maximum(noise_sd, 1e-12)
    else:  # one presentation: no noise estimate, use the floors below
        ncsnr = np.zeros(n_brain)
    is_noise = np.zeros(n_brain, dtype=bool)
    is_noise[n_evc + n_otc:] = ~signal_kind
    ncsnr = np.where(is_noise, np.minimum(ncsnr, _NCSNR_NOISE_MAX),
                     np.maximum(ncsnr, _NCSNR_PLANTED_MIN))
    ncsnr_vol = np.zeros(shape, dtype=np.float32)
    ncsnr_vol.flat[pos] = ncsnr

    # ---- write
    X, Y, Z = shape
    pos_xyz = np.unravel_index(pos, shape)
    for s in range(n_sessions):
        vol = np.zeros((tps, Z, Y, X), dtype=np.int16)
        vol[:, pos_xyz[2], pos_xyz[1], pos_xyz[0]] = betas[s * tps:(s + 1) * tps]
        with atomic_path(_session_path(paths["betas_dir"], s + 1)) as tmp:
            with h5py.File(tmp, "w") as f:
                f.create_dataset("betas", data=vol, chunks=(1, Z, Y, X))
    _save_nifti(paths["ncsnr"], ncsnr_vol)
    _save_nifti(paths["roi/nsdgeneral"], general)
    _save_nifti(paths["roi/streams"], streams)
    for file in floc:
        _save_nifti(paths[f"roi/{file}"], floc[file])
        domain = file.split("-", 1)[1]
        _save_nifti(paths[f"tval/{domain}"], tval[file])


def _write_stimuli(path: Path, images, ids: np.ndarray) -> None:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != len(ids) \
            or images.shape[3] != 3:
        raise InputError(
            f"images must be uint8 with shape ({len(ids)}, H, W, 3), got {images.dtype} "
            f"{images.shape}."
        )
    _, H, W, _ = images.shape
    order = np.argsort(ids)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        ds = f.create_dataset("imgBrick", shape=(NSD_N_IMAGES, H, W, 3), dtype=np.uint8,
                              chunks=(1, H, W, 3), fillvalue=0)
        ds[ids[order]] = images[order]
