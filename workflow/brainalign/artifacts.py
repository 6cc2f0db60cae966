"""The workflow's own artifacts: brain-response files and tidy tables.

Feature files are written and read by :mod:`brainalign.models.extraction`; this
module holds the other two artifact kinds (ARCHITECTURE.md "Data flow"):

``brain/{dataset}/{subject}.h5``::

    attrs: dataset, subject
    /stimulus_ids           (n,) utf-8 strings — the order every array below follows
    /rois/<roi>/responses   (n, n_voxels) float32, averaged over repetitions
    /rois/<roi>/voxel_ijk   (n_voxels, 3) int (optional)
    /rois/<roi> attrs       ceiling (GSN-like), ceiling_split_half, reliability, n_reps,
                            ceiling_method

``{paper}/scores/{model}_selected_rdms.h5``::

    attrs: model
    /subj<subject>/<roi>/<metric>   condensed test-image RDM of the layer selected on
                                    train (attr ``layer``); cRSA: the layer's RDM,
                                    veRSA: the RDM of the predicted responses

``decoding/{dataset}/sub-{subject}.h5``::

    attrs: dataset, subject, classifier, trials_per_group, n_permutations, seed
    /accuracy       (n_times, n_pairs) float32, pairwise decoding accuracy (chance 0.5) in
                    condensed (pdist) pair order: the time-resolved RDMs of Cichy et al. 2016
    /times          (n_times,) seconds
    /conditions     (n_conditions,) utf-8 condition ids, the order of the pairs

Tables are written atomically (parquet or csv chosen by the suffix).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from brainalign.utils import InputError, atomic_path

__all__ = [
    "write_brain",
    "read_brain",
    "write_selected_rdms",
    "read_selected_rdms",
    "write_decoding_rdms",
    "read_decoding_rdms",
    "write_table",
    "read_table",
    "as_str_ids",
]

_STR = h5py.string_dtype("utf-8")


def as_str_ids(ids) -> np.ndarray:
    """Stimulus ids as an array of python strings (the artifacts' common id type)."""
    return np.asarray([i.decode() if isinstance(i, bytes) else str(i) for i in np.asarray(ids).ravel()],
                      dtype=object)


def write_brain(path, *, dataset: str, subject: str, stimulus_ids, rois: dict[str, dict]) -> None:
    """Write one subject's ROI responses.

    ``rois`` maps roi -> dict with ``responses`` (n, v) and optional ``voxel_ijk``,
    ``ceiling``, ``ceiling_split_half``, ``reliability``, ``n_reps``, ``ceiling_method``.
    """
    ids = as_str_ids(stimulus_ids)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["dataset"] = dataset
        f.attrs["subject"] = str(subject)
        f.create_dataset("stimulus_ids", data=ids, dtype=_STR)
        for roi, d in rois.items():
            resp = np.asarray(d["responses"], dtype=np.float32)
            if resp.shape[0] != len(ids):
                raise InputError(f"ROI {roi}: {resp.shape[0]} response rows but {len(ids)} stimulus ids.")
            g = f.create_group(f"rois/{roi}")
            g.create_dataset("responses", data=resp)
            if d.get("voxel_ijk") is not None:
                g.create_dataset("voxel_ijk", data=np.asarray(d["voxel_ijk"]))
            for key in ("ceiling", "ceiling_split_half", "reliability", "n_reps", "ceiling_method"):
                if d.get(key) is not None:
                    g.attrs[key] = d[key]


def read_brain(path, rois=None) -> dict:
    """Read a brain artifact: dict(dataset, subject, stimulus_ids, rois={roi: {...}})."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Brain artifact {path} does not exist.")
    out = {"rois": {}}
    with h5py.File(path, "r") as f:
        out["dataset"] = f.attrs["dataset"]
        out["subject"] = f.attrs["subject"]
        out["stimulus_ids"] = as_str_ids(f["stimulus_ids"][()])
        available = list(f["rois"].keys())
        for roi in available if rois is None else rois:
            if roi not in available:
                raise InputError(f"{path}: no ROI {roi!r}; it has {available}.")
            g = f["rois"][roi]
            d = {"responses": g["responses"][()]}
            if "voxel_ijk" in g:
                d["voxel_ijk"] = g["voxel_ijk"][()]
            d.update({k: g.attrs[k] for k in g.attrs})
            out["rois"][roi] = d
    return out


def write_selected_rdms(path, model: str, selected: dict) -> None:
    """Write ``{(subject, roi, metric): (layer, rdm)}`` of one model."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["model"] = model
        for (subject, roi, metric), (layer, rdm) in selected.items():
            d = f.create_dataset(f"subj{subject}/{roi}/{metric}", data=np.asarray(rdm, np.float32))
            d.attrs["layer"] = layer


def read_selected_rdms(path) -> tuple[str, dict]:
    """Read a selected-RDM file -> (model, {(subject, roi, metric): rdm})."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Selected-RDM file {path} does not exist.")
    out = {}
    with h5py.File(path, "r") as f:
        for subj in f:
            for roi in f[subj]:
                for metric in f[subj][roi]:
                    out[(subj.removeprefix("subj"), roi, metric)] = f[subj][roi][metric][()]
        return str(f.attrs["model"]), out


def write_decoding_rdms(path, *, dataset: str, subject: str, accuracy, times, conditions,
                        **attrs) -> None:
    """Write one subject's time-resolved decoding RDMs (see the module docstring)."""
    acc = np.asarray(accuracy, dtype=np.float32)
    times = np.asarray(times, dtype=np.float64)
    conds = as_str_ids(conditions)
    n_pairs = len(conds) * (len(conds) - 1) // 2
    if acc.shape != (len(times), n_pairs):
        raise InputError(f"decoding RDMs have shape {acc.shape}; expected ({len(times)}, {n_pairs}) "
                         f"for {len(times)} time points and {len(conds)} conditions.")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["dataset"] = dataset
        f.attrs["subject"] = str(subject)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.create_dataset("accuracy", data=acc)
        f.create_dataset("times", data=times)
        f.create_dataset("conditions", data=conds, dtype=_STR)


def read_decoding_rdms(path) -> dict:
    """Read a decoding-RDM file -> dict(accuracy, times, conditions, attrs...)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Decoding-RDM file {path} does not exist.")
    with h5py.File(path, "r") as f:
        out = {k: f.attrs[k] for k in f.attrs}
        out["accuracy"] = f["accuracy"][()]
        out["times"] = f["times"][()]
        out["conditions"] = as_str_ids(f["conditions"][()])
    return out


def write_table(df: pd.DataFrame, path) -> None:
    """Write a tidy table atomically; parquet for ``.parquet``, tsv for ``.tsv``, csv otherwise."""
    suffix = Path(path).suffix
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")


def read_table(path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise InputError(f"Table {path} does not exist.")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
