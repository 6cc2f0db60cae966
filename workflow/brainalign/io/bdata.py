"""Kamitani-lab BData files (Shen et al. 2019, Horikawa & Kamitani 2017): a reader of our own.

The fMRI data of Shen et al. (2019, "deep image reconstruction";
``sub-0N_perceptionNaturalImage{Training,Test}_original_VC.h5``) and of Horikawa &
Kamitani (2017, "generic object decoding", GOD; ``Subject1.h5`` .. ``Subject5.h5``) are
BData HDF5 files, the format of the lab's ``bdpy`` package. This module reads them with
h5py alone (no ``bdpy`` dependency). Layout::

    /dataset               float (n_samples, n_columns): one row per trial (fMRI volume
                           average of one stimulus block), columns = voxels and per-trial
                           variables side by side
    /metadata/key          (n_keys,) byte strings, e.g. b"VoxelData", b"ROI_V1", b"Run"
    /metadata/description  (n_keys,) byte strings, e.g. b"1 = ROI_V1"
    /metadata/value        float (n_keys, n_columns): row k describes every column for key k
    /vmap/<key>/<value>    optional scalar strings: the label of the float ``value`` of the
                           single-column variable ``key`` (e.g. /vmap/stimulus_name/
                           1443537.022563 -> "n01443537_22563")

Older files spell ``/dataSet`` and ``/metaData``; both are accepted.

Metadata semantics. For a *column-set* key (``VoxelData``, ``ROI_V1``, ``ROI_VC``, ...)
value 1 marks the columns that belong to the key (0 or NaN: not). For a *variable* key
(``Run``, ``Block``, ``DataType``, ``stimulus_name``, ``stimulus_id``) value 1 marks the one
column that holds the variable; the variable's values are the rows of that column. Other
rows (``voxel_x``, ...) carry per-column numbers (NaN = n/a). :meth:`BData.select` returns
the columns whose metadata value equals 1, as ``bdpy``'s ``select('<key> = 1')`` does.

ROI keys: Shen ``ROI_V1, ROI_V2, ROI_V3, ROI_hV4, ROI_LOC, ROI_FFA, ROI_PPA, ROI_LVC
(V1-hV4), ROI_HVC (LOC, FFA, PPA and around), ROI_VC (everything)``; GOD spells V4
``ROI_V4``. Stimulus labels: ``stimulus_name`` (Shen) or ``stimulus_id`` (GOD), a float
``WNID.imageID`` (ImageNet ``n01443537_22563`` is stored as ``1443537.022563``); GOD also
has ``DataType`` (1 = training, 2 = test perception, 3 = test imagery).

:func:`load_bdata_rois` averages each ROI's responses over the repetitions of each stimulus,
reading the file block by block so memory stays bounded by the output;
:func:`pca_visual_cortex` reduces visual-cortex responses with a PCA fitted on the training
set only (Lu & Wang 2025, SPEC section 4). :func:`write_synthetic_bdata` writes the same
layout from planted responses for tests and the demo.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse
from sklearn.decomposition import PCA

from brainalign.utils import InputError, atomic_path, check_finite, make_rng

__all__ = [
    "BData",
    "read_bdata",
    "load_bdata_rois",
    "pca_visual_cortex",
    "write_synthetic_bdata",
    "stimulus_id_to_name",
    "SHEN_ROIS",
    "LABEL_KEYS",
]

#: The ROIs Lu & Wang (2025) compare with the model layers (GOD files spell V4 ``ROI_V4``).
SHEN_ROIS = ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_LOC")
#: Label keys tried, in this order, when ``label_key`` is None.
LABEL_KEYS = ("stimulus_name", "stimulus_id")

_READ_BUDGET_BYTES = 64 * 2**20  # bytes of /dataset read at a time
# ROIs the synthetic writer plants (disjoint voxel sets) and the unions it derives.
_LOWER_ROIS = ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_V4")
_HIGHER_ROIS = ("ROI_LOC", "ROI_FFA", "ROI_PPA")
_DATA_TYPES = {1: "training", 2: "test perception", 3: "test imagery"}


# --------------------------------------------------------------------------- reader


class BData:
    """One BData HDF5 file: metadata in memory, ``/dataset`` read on demand.

    Build it with :func:`read_bdata`. The metadata (keys, descriptions, value matrix) and
    the value-label maps are read and checked once; data columns are read lazily, block of
    rows by block of rows, so selecting one ROI of a large file does not load the others.

    Attributes
    ----------
    path : Path
        The file.
    shape : tuple of int
        ``(n_samples, n_columns)`` of ``/dataset``.
    """

    def __init__(self, path, *, _keys, _descriptions, _values, _vmap, _dataset_name, _shape):
        self.path = Path(path)
        self.shape = _shape
        self._keys = list(_keys)
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._descriptions = list(_descriptions)
        self._values = _values
        self._vmap = _vmap
        self._dataset_name = _dataset_name

    def __repr__(self) -> str:
        return f"BData({str(self.path)!r}, shape={self.shape}, keys={len(self._keys)})"

    # ---------------------------------------------------------------- metadata

    def keys(self) -> list[str]:
        """Metadata keys in file order."""
        return list(self._keys)

    def description(self, key: str) -> str:
        """The metadata description of ``key``."""
        return self._descriptions[self._key_index(key)]

    def metadata(self, key: str) -> np.ndarray:
        """The metadata value row of ``key``: float (n_columns,), NaN = n/a."""
        return self._values[self._key_index(key)].copy()

    def columns(self, key: str) -> np.ndarray:
        """0-based indices (ascending) of the columns whose metadata value for ``key`` is 1.

        Raises :class:`InputError` for an unknown key or a key that marks no column.
        """
        cols = np.flatnonzero(self._values[self._key_index(key)] == 1)  # NaN -> False
        if cols.size == 0:
            raise InputError(
                f"{self.path}: metadata key {key!r} marks no column (no value 1 in "
                "/metadata/value); expected at least one column, e.g. the voxels of an ROI."
            )
        return cols

    def vmap(self, key: str) -> dict[float, str]:
        """Value -> label map of ``key`` from ``/vmap/<key>``; empty when the file has none."""
        self._key_index(key)
        return dict(self._vmap.get(key, {}))

    # ---------------------------------------------------------------- data

    def select(self, key: str, *, rows=None, check_finite: bool = True) -> np.ndarray:
        """The columns of ``key`` (metadata value == 1) as float64 (n_rows, n_cols).

        Parameters
        ----------
        key : str
            A metadata key, e.g. ``"ROI_V1"``, ``"ROI_VC"``, ``"VoxelData"``.
        rows : array of bool or int, optional
            Rows to keep (boolean mask of length n_samples or indices); all by default.
        check_finite : bool
            Raise :class:`InputError` if the selected values hold NaN or inf.
        """
        cols = self.columns(key)
        rows = self._row_index(rows)
        out = np.empty((len(rows), len(cols)), dtype=np.float64)
        done = 0
        for start, stop, block in self._iter_blocks(rows):
            take = rows[(rows >= start) & (rows < stop)] - start
            out[done:done + len(take)] = block[np.ix_(take, cols)]
            done += len(take)
        if check_finite:
            _check_finite_columns(out, f"{self.path}: {key!r}", rows)
        return out

    def get(self, key: str, *, rows=None, check_finite: bool = True) -> np.ndarray:
        """A single-column variable (``Run``, ``Block``, ``DataType``, ``stimulus_name``, ...).

        Returns float64 (n_rows,). Raises :class:`InputError` when ``key`` marks more than
        one column (use :meth:`select` for column sets such as ROIs).
        """
        cols = self.columns(key)
        if len(cols) != 1:
            raise InputError(
                f"{self.path}: metadata key {key!r} marks {len(cols)} columns; get() expects a "
                "single-column variable such as Run, Block or stimulus_name (use select() for "
                "column sets such as ROIs)."
            )
        return self.select(key, rows=rows, check_finite=check_finite)[:, 0]

    def labels(self, key: str, *, rows=None) -> np.ndarray:
        """The labels (str) of a single-column variable through its ``/vmap``.

        Values without a vmap entry are an error; a key without a vmap gives the
        :func:`stimulus_id_to_name` form of each value.
        """
        values = self.get(key, rows=rows)
        unique, inverse = np.unique(values, return_inverse=True)
        return _labels_of(unique, self._vmap.get(key), key, self.path)[inverse]

    # ---------------------------------------------------------------- internals

    def _key_index(self, key: str) -> int:
        if key not in self._index:
            raise InputError(
                f"{self.path}: metadata key {key!r} not found; available keys are "
                f"{', '.join(self._keys)}."
            )
        return self._index[key]

    def _row_index(self, rows) -> np.ndarray:
        n = self.shape[0]
        if rows is None:
            return np.arange(n)
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (n,):
                raise InputError(
                    f"{self.path}: row mask has shape {rows.shape}; expected ({n},)."
                )
            return np.flatnonzero(rows)
        rows = rows.astype(np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() >= n or np.any(np.diff(rows) <= 0)):
            raise InputError(
                f"{self.path}: row indices must be ascending, distinct and within 0..{n - 1}."
            )
        return rows

    def _iter_blocks(self, rows: np.ndarray):
        """Yield (start, stop, full rows start:stop) covering ``rows`` (sorted indices)."""
        if rows.size == 0:
            return
        n_cols = max(1, self.shape[1])
        step = max(1, _READ_BUDGET_BYTES // (8 * n_cols))
        with _open(self.path) as f:
            ds = f[self._dataset_name]
            start = int(rows[0])
            last = int(rows[-1]) + 1
            while start < last:
                stop = min(start + step, last)
                yield start, stop, np.asarray(ds[start:stop], dtype=np.float64)
                nxt = rows[rows >= stop]
                start = int(nxt[0]) if nxt.size else last


def read_bdata(path) -> BData:
    """Open a BData HDF5 file; read and check its metadata (see the module docstring).

    Raises
    ------
    InputError
        Missing file, not HDF5, no ``/dataset`` (or ``/dataSet``) 2-D array, no
        ``/metadata/{key,description,value}``, a value matrix that is not numeric or whose
        shape is not (n_keys, n_columns of /dataset), duplicate keys, or a malformed
        ``/vmap``.
    """
    path = Path(path)
    with _open(path) as f:
        ds_name = next((n for n in ("dataset", "dataSet") if n in f), None)
        if ds_name is None or not isinstance(f[ds_name], h5py.Dataset) or f[ds_name].ndim != 2:
            raise InputError(
                f"{path}: expected a 2-D float dataset '/dataset' (n_samples, n_columns); "
                f"found top-level entries {sorted(f.keys())}."
            )
        shape = tuple(int(s) for s in f[ds_name].shape)
        md_name = next((n for n in ("metadata", "metaData")
                        if isinstance(f.get(n), h5py.Group)), None)
        missing = [] if md_name is None else [
            n for n in ("key", "description", "value")
            if not isinstance(f[md_name].get(n), h5py.Dataset)
        ]
        if md_name is None or missing:
            raise InputError(
                f"{path}: expected datasets /metadata/key, /metadata/description and "
                f"/metadata/value; missing {missing or 'the /metadata group'}."
            )
        md = f[md_name]
        keys = _strings(md["key"], path, "/metadata/key")
        descriptions = _strings(md["description"], path, "/metadata/description")
        if md["value"].dtype.kind not in "fiub":
            raise InputError(
                f"{path}: /metadata/value is {md['value'].dtype} with shape "
                f"{md['value'].shape}; expected a float matrix (n_keys, n_columns) with 1 "
                "marking each key's columns and NaN for n/a."
            )
        values = np.asarray(md["value"], dtype=np.float64)
        vmap = _read_vmap(f, path)

    if len(descriptions) != len(keys):
        raise InputError(
            f"{path}: /metadata/description has {len(descriptions)} entries but "
            f"/metadata/key has {len(keys)}; expected one description per key."
        )
    if values.ndim != 2 or values.shape != (len(keys), shape[1]):
        raise InputError(
            f"{path}: /metadata/value has shape {values.shape}; expected (n_keys, n_columns) "
            f"= ({len(keys)}, {shape[1]}), one row per key and one column per /{ds_name} column."
        )
    seen: set[str] = set()
    dups = [k for k in keys if k in seen or seen.add(k)]
    if dups:
        raise InputError(f"{path}: metadata key {dups[0]!r} appears more than once.")
    unknown = sorted(set(vmap) - set(keys))
    if unknown:
        raise InputError(
            f"{path}: /vmap/{unknown[0]} has no metadata key of that name; available keys are "
            f"{', '.join(keys)}."
        )
    return BData(path, _keys=keys, _descriptions=descriptions, _values=values, _vmap=vmap,
                 _dataset_name=ds_name, _shape=shape)


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(f"BData file not found: {path}.")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: cannot open as HDF5 ({err}).") from err


def _decode(x) -> str:
    if isinstance(x, bytes | np.bytes_):
        return bytes(x).decode("utf-8")
    return str(x)


def _strings(ds: h5py.Dataset, path: Path, where: str) -> list[str]:
    arr = np.asarray(ds[()])
    if arr.ndim == 2 and 1 in arr.shape:  # MATLAB-written files: (1, n) or (n, 1)
        arr = arr.ravel()
    if arr.ndim != 1 or arr.dtype.kind not in "SUO":
        raise InputError(
            f"{path}: {where} is {arr.dtype} with shape {arr.shape}; expected a 1-D array of "
            "(byte) strings."
        )
    return [_decode(x).strip() for x in arr]


def _read_vmap(f: h5py.File, path: Path) -> dict[str, dict[float, str]]:
    group = f.get("vmap")
    if group is None:
        return {}
    out: dict[str, dict[float, str]] = {}
    for key, sub in group.items():
        if not isinstance(sub, h5py.Group):
            raise InputError(f"{path}: /vmap/{key} is not a group of value -> label datasets.")
        table = {}
        for name, ds in sub.items():
            try:
                value = float(name)
            except ValueError as err:
                raise InputError(
                    f"{path}: /vmap/{key}/{name}: expected the dataset name to be the float "
                    "value it labels, e.g. /vmap/stimulus_name/1443537.022563."
                ) from err
            label = np.asarray(ds[()])
            table[value] = _decode(label.ravel()[0] if label.ndim else label[()])
        out[key] = table
    return out


def _check_finite_columns(arr: np.ndarray, what: str, rows: np.ndarray) -> None:
    if np.all(np.isfinite(arr)):
        return
    bad = np.argwhere(~np.isfinite(arr))
    r, c = (int(i) for i in bad[0])
    raise InputError(
        f"{what}: found {len(bad)} non-finite values (NaN or inf) in the selected data, first "
        f"at row {int(rows[r])} (selected column {c}); expected finite numbers."
    )


# --------------------------------------------------------------------------- labels


def stimulus_id_to_name(value: float) -> str:
    """``1443537.022563`` -> ``"n01443537_22563"`` (ImageNet WNID.imageID, as in GOD/Shen).

    A value without a fractional part is written as a plain integer (``12.0`` -> ``"12"``).
    """
    value = float(value)
    wnid = math.floor(value)
    image = round((value - wnid) * 1e6)
    if image == 0 and value == wnid:
        return str(wnid)
    if image >= 1_000_000:  # rounding carried into the integer part
        wnid, image = wnid + 1, image - 1_000_000
    return f"n{wnid:08d}_{image}"


def _labels_of(values: np.ndarray, table, key: str, path) -> np.ndarray:
    if not table:
        return np.array([stimulus_id_to_name(v) for v in values], dtype=str)
    missing = [float(v) for v in values if float(v) not in table]
    if missing:
        raise InputError(
            f"{path}: value {missing[0]!r} of {key!r} has no label in /vmap/{key} "
            f"({len(missing)} values unlabelled)."
        )
    labels = np.array([table[float(v)] for v in values], dtype=str)
    first: dict[str, float] = {}
    for v, label in zip(values, labels.tolist(), strict=True):
        if label in first:
            raise InputError(
                f"{path}: values {first[label]!r} and {float(v)!r} of {key!r} have the same "
                f"label {label!r} in /vmap/{key}; expected one distinct label per stimulus "
                "(two stimuli would be indistinguishable by label)."
            )
        first[label] = float(v)
    return labels


# --------------------------------------------------------------------------- high level


def load_bdata_rois(
    path,
    rois: Sequence[str] = SHEN_ROIS,
    *,
    label_key: str | None = None,
    average_repetitions: bool = True,
    data_type: int | None = None,
    n_repetitions: int | str | None = None,
) -> dict:
    """Per-ROI responses of each stimulus of one BData file, averaged over repetitions.

    Parameters
    ----------
    path : path
        A BData HDF5 file, e.g. ``sub-01_perceptionNaturalImageTraining_original_VC.h5``.
    rois : sequence of str
        Metadata keys of the ROIs, e.g. ``("ROI_V1", ..., "ROI_LOC")`` or ``("ROI_VC",)``.
        GOD files spell V4 ``ROI_V4``: keys are used exactly as given.
    label_key : str, optional
        The single-column variable naming each trial's stimulus. None: ``stimulus_name``
        if present, else ``stimulus_id``.
    average_repetitions : bool
        True: average each stimulus's trials, responses (n_stimuli, n_voxels).
        False: keep them, responses (n_stimuli, n_reps, n_voxels), repetition r = the
        stimulus's r-th trial in file (time) order; every stimulus must have the same
        number of trials.
    data_type : int, optional
        Keep only trials whose ``DataType`` equals this (GOD: 1 training, 2 test perception,
        3 test imagery). None: all trials.
    n_repetitions : int, 'any' or None
        The trial count every stimulus must have. None (default): every stimulus must have
        the same count as the others (within each ``DataType`` when the file has one and
        ``data_type`` is None, since GOD shows training images once and test images many
        times). An int: exactly that count (Shen training 5, Shen test 24, GOD test
        perception 35). ``'any'``: no check (stimuli are averaged over however many trials
        they have). A stimulus with more trials than the others usually means two stimuli
        share one label value, which would silently average two images into one.

    Returns
    -------
    dict with
        ``stimulus_ids`` float64 (n_stimuli,): the label values, unique, ascending; row i of
        every response array is stimulus i.
        ``stimulus_labels`` str (n_stimuli,): their ``/vmap`` labels when the file has a vmap
        for ``label_key``, otherwise :func:`stimulus_id_to_name` of the value
        (``1443537.022563`` -> ``"n01443537_22563"``).
        ``n_repetitions`` int64 (n_stimuli,): trials averaged per stimulus.
        ``responses`` dict roi -> float64 array (see ``average_repetitions``), voxels in
        file column order.
        ``label_key`` str; ``path`` str.

    Raises
    ------
    InputError
        Every error of :func:`read_bdata`; an unknown ROI or label key (the message lists
        the available keys), an ROI with no column, a label key that is not a single
        column, NaN labels, two label values with one ``/vmap`` label, NaN/inf in the
        selected responses, no ``DataType`` when ``data_type`` is given, no trial left,
        repetition counts that differ from ``n_repetitions`` (see there), unequal
        repetition counts with ``average_repetitions=False``.
    """
    if n_repetitions is not None and n_repetitions != "any" and (
        isinstance(n_repetitions, bool) or not isinstance(n_repetitions, int | np.integer)
        or n_repetitions < 1
    ):
        raise InputError(
            f"n_repetitions must be an integer >= 1, 'any' or None, got {n_repetitions!r}."
        )
    bd = read_bdata(path)
    rois = (rois,) if isinstance(rois, str) else tuple(rois)
    if not rois:
        raise InputError("rois is empty; expected at least one ROI key such as 'ROI_V1'.")
    if label_key is None:
        label_key = next((k for k in LABEL_KEYS if k in bd.keys()), None)
        if label_key is None:
            raise InputError(
                f"{bd.path}: no stimulus label key found; expected one of "
                f"{', '.join(LABEL_KEYS)} (or pass label_key). Available keys are "
                f"{', '.join(bd.keys())}."
            )

    rows = None
    if data_type is not None:
        types = bd.get("DataType")
        rows = np.flatnonzero(types == float(data_type))
        if rows.size == 0:
            raise InputError(
                f"{bd.path}: no trial has DataType == {data_type} (values present: "
                f"{sorted({int(t) for t in np.unique(types)})})."
            )
    rows = bd._row_index(rows)
    labels = bd.get(label_key, rows=rows, check_finite=False)
    if not np.all(np.isfinite(labels)):
        i = int(np.flatnonzero(~np.isfinite(labels))[0])
        raise InputError(
            f"{bd.path}: label key {label_key!r} is NaN or inf on {int((~np.isfinite(labels)).sum())} "
            f"trials, first on row {int(rows[i])}; expected a stimulus id on every trial."
        )
    if rows.size == 0:
        raise InputError(f"{bd.path}: /dataset has no rows.")
    ids, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True,
                                            return_counts=True)
    names = _labels_of(ids, bd._vmap.get(label_key), label_key, bd.path)
    if n_repetitions != "any":
        groups = None
        if data_type is None and "DataType" in bd.keys():
            groups = bd.get("DataType", rows=rows, check_finite=False)[first]
        _check_repetitions(bd.path, counts, names, n_repetitions, groups, label_key)
    cols = {roi: bd.columns(roi) for roi in rois}

    n_stim = len(ids)
    if average_repetitions:
        out = {roi: np.zeros((n_stim, len(c))) for roi, c in cols.items()}
    else:
        if counts.min() != counts.max():
            i, j = int(np.argmin(counts)), int(np.argmax(counts))
            raise InputError(
                f"{bd.path}: stimuli have unequal repetition counts ({str(names[i])!r}: "
                f"{int(counts[i])}, {str(names[j])!r}: {int(counts[j])}); average_repetitions=False "
                "needs the same count for every stimulus."
            )
        n_reps = int(counts[0])
        out = {roi: np.zeros((n_stim, n_reps, len(c))) for roi, c in cols.items()}
        order = np.argsort(inverse, kind="stable")  # trials grouped by stimulus, time order
        rank = np.empty(len(rows), dtype=np.int64)
        rank[order] = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)

    done = 0
    for start, stop, block in bd._iter_blocks(rows):
        in_block = rows[(rows >= start) & (rows < stop)]
        take = in_block - start
        inv = inverse[done:done + len(take)]
        if average_repetitions:
            indicator = scipy.sparse.csr_matrix(
                (np.ones(len(take)), (inv, np.arange(len(take)))), shape=(n_stim, len(take))
            )
        for roi, c in cols.items():
            vals = block[np.ix_(take, c)]
            _check_finite_columns(vals, f"{bd.path}: {roi!r}", in_block)
            if average_repetitions:
                out[roi] += indicator @ vals
            else:
                out[roi][inv, rank[done:done + len(take)]] = vals
        done += len(take)
    if average_repetitions:
        for roi in out:
            out[roi] /= counts[:, None]
    return {
        "stimulus_ids": ids.astype(np.float64),
        "stimulus_labels": names,
        "n_repetitions": counts.astype(np.int64),
        "responses": out,
        "label_key": label_key,
        "path": str(bd.path),
    }


def _check_repetitions(path, counts, names, expected, groups, label_key) -> None:
    """InputError unless every stimulus has ``expected`` trials (None: the same count,
    within each DataType group when ``groups`` is given)."""
    if expected is not None:
        off = np.flatnonzero(counts != expected)
        if len(off):
            i = int(off[0])
            raise InputError(
                f"{path}: {len(off)} of {len(counts)} stimuli do not have the expected "
                f"n_repetitions={int(expected)} trials: {str(names[i])!r} has "
                f"{int(counts[i])} (counts range {int(counts.min())}..{int(counts.max())})."
            )
        return
    if groups is None:
        groups = np.zeros(len(counts))
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        c = counts[members]
        if c.min() == c.max():
            continue
        values, n = np.unique(c, return_counts=True)
        mode = int(values[np.argmax(n)])  # the most common count (the smallest on ties)
        odd = members[c != mode]
        i = int(odd[np.argmax(np.abs(counts[odd] - mode))])
        where = f" among DataType {g:g}" if len(np.unique(groups)) > 1 or g != 0 else ""
        raise InputError(
            f"{path}: stimuli have unequal repetition counts{where}: {str(names[i])!r} has "
            f"{int(counts[i])} trials but most stimuli have {mode} ({len(odd)} of "
            f"{len(members)} stimuli differ; counts range {int(c.min())}..{int(c.max())}); "
            f"expected {mode} trials for every stimulus. A stimulus with extra trials usually "
            f"means two stimuli share one {label_key!r} value. Pass n_repetitions='any' to "
            "average unequal counts anyway, or n_repetitions=<count> to state the count."
        )


def pca_visual_cortex(
    train_responses,
    test_responses,
    *,
    n_components: int = 1024,
    seed,
    svd_solver: str = "full",
):
    """Reduce visual-cortex responses with a PCA fitted on the training set only.

    As Lu & Wang (2025): a subject's VC voxels (e.g. ``ROI_VC`` of the Shen training file,
    averaged over repetitions) -> ``n_components`` principal components; the test set is
    projected with the training fit and never influences it.

    Parameters
    ----------
    train_responses : array (n_train, n_voxels)
    test_responses : array (n_test, n_voxels) or None
    n_components : int
        Capped (with a warning) at min(n_train, n_voxels).
    seed : int or numpy Generator
        Passed to scikit-learn as ``random_state`` (used by the randomized solvers only).
    svd_solver : str
        scikit-learn's ``svd_solver``; ``"full"`` (default) is exact and deterministic.

    Returns
    -------
    train_pcs : array (n_train, k)
    test_pcs : array (n_test, k) or None
    pca : sklearn.decomposition.PCA
        The fitted model (``components_``, ``mean_``, ``explained_variance_ratio_``).
    """
    train = _check_2d(train_responses, "train_responses")
    test = None if test_responses is None else _check_2d(test_responses, "test_responses")
    if test is not None and test.shape[1] != train.shape[1]:
        raise InputError(
            f"test_responses has {test.shape[1]} voxels but train_responses has "
            f"{train.shape[1]}; both must hold the same voxels in the same order."
        )
    n_components = int(n_components)
    if n_components < 1:
        raise InputError(f"n_components must be >= 1, got {n_components}.")
    cap = min(train.shape)
    if n_components > cap:
        warnings.warn(
            f"n_components={n_components} exceeds min(n_train, n_voxels) = "
            f"min{train.shape}; using {cap} components.",
            UserWarning,
            stacklevel=2,
        )
        n_components = cap
    random_state = seed if isinstance(seed, int | np.integer) else int(
        make_rng(seed).integers(2**31 - 1)
    )
    pca = PCA(n_components=n_components, svd_solver=svd_solver, random_state=int(random_state))
    train_pcs = pca.fit_transform(train)
    test_pcs = None if test is None else pca.transform(test)
    return train_pcs, test_pcs, pca


def _check_2d(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or min(x.shape) < 1 or x.dtype.kind not in "fiu":
        raise InputError(
            f"{what} is {x.dtype} with shape {x.shape}; expected a numeric 2-D array "
            "(n_stimuli, n_voxels)."
        )
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    return check_finite(x, what)


# --------------------------------------------------------------------------- writer


def write_synthetic_bdata(
    path,
    *,
    responses_by_roi: Mapping[str, np.ndarray],
    stimulus_ids,
    n_reps: int,
    noise_sd: float = 0.0,
    seed=0,
    label_key: str = "stimulus_name",
    write_vmap: bool = True,
    data_type=None,
) -> None:
    """Write a BData HDF5 file in the Shen/GOD layout from planted responses.

    Parameters
    ----------
    path : path
        Output file (written atomically).
    responses_by_roi : dict str -> array
        Responses of disjoint voxel sets, keyed by ROI: any of ``ROI_V1, ROI_V2, ROI_V3,
        ROI_hV4`` (or GOD's ``ROI_V4``), ``ROI_LOC, ROI_FFA, ROI_PPA``. Each array is
        (n_stimuli, n_voxels) -- every trial = that row (+ noise) -- or
        (n_stimuli, n_reps, n_voxels) -- trial r of stimulus i = ``[i, r]``.
    stimulus_ids : array of float (n_stimuli,)
        Distinct label values (ImageNet ``WNID.imageID`` floats), row i = stimulus i.
    n_reps : int
        Trials per stimulus.
    noise_sd : float
        Gaussian noise added to 2-D responses on every trial (0: trials equal the row).
    seed : int
        Trial order, voxel column positions, coordinates and noise.
    label_key : str
        ``"stimulus_name"`` (Shen) or ``"stimulus_id"`` (GOD).
    write_vmap : bool
        Write ``/vmap/<label_key>/<id>`` = :func:`stimulus_id_to_name` (id).
    data_type : int or array of int (n_stimuli,), optional
        Write a ``DataType`` column (GOD), per stimulus.

    Layout: columns = all voxels (ROIs interleaved at seeded random positions, each ROI's
    voxels in planted order), then ``Run``, ``Block``, [``DataType``], ``<label_key>``.
    Metadata keys: ``VoxelData``, ``voxel_x/y/z`` (coordinates), ``ROI_V1, ROI_V2, ROI_V3,
    ROI_hV4`` (``ROI_V4`` instead when planted), ``ROI_LOC, ROI_FFA, ROI_PPA, ROI_LVC,
    ROI_HVC, ROI_VC``, ``Run``, ``Block``, [``DataType``], ``<label_key>``; ROI rows hold 1
    on the ROI's voxels, 0 on other voxels and NaN on non-voxel columns (an ROI that was
    not planted therefore marks no column). ``ROI_LVC`` = the planted V1-V4, ``ROI_HVC`` =
    the planted LOC/FFA/PPA, ``ROI_VC`` = every voxel. Rows: repetition r is one run
    (``Run`` = r + 1) showing every stimulus once in a seeded random order (``Block`` = 1-based
    position in the run), so a stimulus's r-th trial in time is its repetition r.
    """
    rng = make_rng(seed)
    ids = np.asarray(stimulus_ids, dtype=np.float64)
    if ids.ndim != 1 or ids.size == 0 or not np.all(np.isfinite(ids)):
        raise InputError("stimulus_ids must be a non-empty 1-D array of finite floats.")
    if len(np.unique(ids)) != len(ids):
        raise InputError("stimulus_ids holds duplicates; expected one distinct id per stimulus.")
    n_stim = len(ids)
    n_reps = int(n_reps)
    if n_reps < 1:
        raise InputError(f"n_reps must be >= 1, got {n_reps}.")
    planted = _check_planted(responses_by_roi, n_stim, n_reps)
    if label_key not in LABEL_KEYS:
        raise InputError(f"label_key must be one of {', '.join(LABEL_KEYS)}, got {label_key!r}.")
    if data_type is not None:
        data_type = np.broadcast_to(np.asarray(data_type, dtype=np.float64), (n_stim,))
        if not set(np.unique(data_type)) <= set(_DATA_TYPES):
            raise InputError(f"data_type values must be in {sorted(_DATA_TYPES)}.")

    # ---- trial order: one run per repetition, every stimulus once per run
    perms = np.stack([rng.permutation(n_stim) for _ in range(n_reps)])  # (n_reps, n_stim)
    trial_stim = perms.ravel()
    trial_rep = np.repeat(np.arange(n_reps), n_stim)
    n_trials = len(trial_stim)

    # ---- voxel columns: ROIs interleaved at random positions, planted order kept
    sizes = {roi: arr.shape[-1] for roi, arr in planted.items()}
    n_vox = sum(sizes.values())
    position = rng.permutation(n_vox)
    roi_cols: dict[str, np.ndarray] = {}
    at = 0
    for roi, v in sizes.items():
        roi_cols[roi] = np.sort(position[at:at + v])
        at += v
    data = np.empty((n_trials, n_vox + 3 + (data_type is not None)), dtype=np.float64)
    for roi, arr in planted.items():
        if arr.ndim == 3:
            vals = arr[trial_stim, trial_rep]
        else:
            vals = arr[trial_stim] + noise_sd * rng.normal(size=(n_trials, arr.shape[1]))
        data[:, roi_cols[roi]] = vals
    extra = [("Run", trial_rep + 1.0, "1 = Run (run number)"),
             ("Block", np.tile(np.arange(1.0, n_stim + 1), n_reps),
              "1 = Block (block number in the run)")]
    if data_type is not None:
        extra.append(("DataType", data_type[trial_stim],
                      "1 = DataType (1 = training, 2 = test perception, 3 = test imagery)"))
    extra.append((label_key, ids[trial_stim],
                  f"1 = {label_key} (WNID.imageID as a float; labels in /vmap)"))
    for j, (_, values, _) in enumerate(extra):
        data[:, n_vox + j] = values

    # ---- metadata
    n_cols = data.shape[1]
    voxel = np.full(n_cols, np.nan)
    voxel[:n_vox] = 0.0

    def roi_row(members) -> np.ndarray:
        row = voxel.copy()
        for m in members:
            if m in roi_cols:
                row[roi_cols[m]] = 1.0
        return row

    v4 = "ROI_V4" if "ROI_V4" in planted else "ROI_hV4"
    lower = ("ROI_V1", "ROI_V2", "ROI_V3", v4)
    keys, desc, rows = [], [], []

    def add(key, description, row):
        keys.append(key)
        desc.append(description)
        rows.append(row)

    all_vox = voxel.copy()
    all_vox[:n_vox] = 1.0
    add("VoxelData", "1 = VoxelData", np.where(np.isnan(voxel), np.nan, 1.0))
    side = math.ceil(n_vox ** (1 / 3)) + 1
    xyz = np.unravel_index(rng.choice(side**3, n_vox, replace=False), (side,) * 3)
    for axis, name in enumerate(("voxel_x", "voxel_y", "voxel_z")):
        row = np.full(n_cols, np.nan)
        row[:n_vox] = 3.0 * xyz[axis]  # mm, distinct voxel positions in a cube
        add(name, f"Voxel {name[-1]} coordinate (mm)", row)
    for roi in (*lower, *_HIGHER_ROIS):
        add(roi, f"1 = {roi}", roi_row([roi]))
    add("ROI_LVC", "1 = ROI_LVC (V1-V4)", roi_row(lower))
    add("ROI_HVC", "1 = ROI_HVC (LOC, FFA, PPA)", roi_row(_HIGHER_ROIS))
    add("ROI_VC", "1 = ROI_VC (LVC and HVC)", all_vox)
    for j, (key, _, description) in enumerate(extra):
        row = np.full(n_cols, np.nan)
        row[n_vox + j] = 1.0
        add(key, description, row)

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("dataset", data=data)
        f.create_group("metadata")
        f.create_dataset("metadata/key", data=np.array([k.encode() for k in keys]))
        f.create_dataset("metadata/description", data=np.array([d.encode() for d in desc]))
        f.create_dataset("metadata/value", data=np.stack(rows))
        group = f.create_group("vmap")
        if write_vmap:
            sub = group.create_group(label_key)
            for value in ids:
                sub.create_dataset(str(float(value)), data=stimulus_id_to_name(value))


def _check_planted(responses_by_roi, n_stim: int, n_reps: int) -> dict[str, np.ndarray]:
    if not isinstance(responses_by_roi, Mapping) or not responses_by_roi:
        raise InputError("responses_by_roi must be a non-empty dict {roi: array}.")
    allowed = (*_LOWER_ROIS, *_HIGHER_ROIS)
    if "ROI_V4" in responses_by_roi and "ROI_hV4" in responses_by_roi:
        raise InputError("responses_by_roi has both ROI_V4 and ROI_hV4; plant one (GOD: ROI_V4).")
    planted = {}
    for roi, arr in responses_by_roi.items():
        if roi not in allowed:
            raise InputError(
                f"responses_by_roi key {roi!r} is not a plantable ROI; expected one of "
                f"{', '.join(allowed)} (LVC, HVC and VC are derived)."
            )
        arr = np.asarray(arr, dtype=np.float64)
        ok = (arr.ndim == 2 and arr.shape[0] == n_stim) or (
            arr.ndim == 3 and arr.shape[:2] == (n_stim, n_reps)
        )
        if not ok or arr.shape[-1] < 1:
            raise InputError(
                f"responses_by_roi[{roi!r}] has shape {arr.shape}; expected ({n_stim}, "
                f"n_voxels) or ({n_stim}, {n_reps}, n_voxels)."
            )
        check_finite(arr, f"responses_by_roi[{roi!r}]")
        planted[roi] = arr
    return planted
