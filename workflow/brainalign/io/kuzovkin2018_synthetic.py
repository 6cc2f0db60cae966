"""Write Kuzovkin et al. (2018) subject files, as MATLAB v5/v7 or v7.3 ``.mat``, for tests and the demo.

:func:`write_intracranial_mat` writes the struct ``s`` that
:func:`brainalign.io.kuzovkin2018.load_intracranial` reads, in the layout of the authors'
files (``s.stimseq`` a 250 x 1 cell of image names, ``s.probes.rod_names`` a 1 x N cell,
``s.probes.probe_ids`` N x 1, ``s.probes.mni`` N x 3, ``s.probes.areas`` 1 x N, ``s.data``
250 x N with ``-123456`` for rejected trials).

- version ``"5"``: :func:`scipy.io.savemat` (v5 format with zlib compression, what MATLAB's
  default ``save`` (``-v7``) writes).
- version ``"7.3"``: HDF5 in MATLAB's own layout (:func:`savemat_v73`): a 512-byte user
  block starting ``MATLAB 7.3 MAT-file``; every array transposed (MATLAB is column-major);
  ``MATLAB_class`` on every object; char arrays as uint16 with ``MATLAB_int_decode = 2``;
  structs as groups with ``MATLAB_fields``; cells as datasets of object references into
  ``/#refs#`` (whose ``a`` is MATLAB's "canonical empty"); empty arrays as their dimensions
  (uint64) with ``MATLAB_empty = 1``; ``H5PATH`` on every object inside a group.

:func:`random_subject` makes the fields of a random subject (tests).
"""

from __future__ import annotations

import datetime
import string
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from brainalign.io.kuzovkin2018 import N_STIMULI, REJECTED
from brainalign.utils import atomic_path, check_option, make_rng

__all__ = [
    "MAT_VERSIONS",
    "write_intracranial_mat",
    "subject_struct",
    "savemat_v73",
    "random_subject",
]

MAT_VERSIONS = ("5", "7.3")
_CLASS_OF_DTYPE = {
    np.dtype(np.float64): "double", np.dtype(np.float32): "single", np.dtype(np.int8): "int8",
    np.dtype(np.uint8): "uint8", np.dtype(np.int16): "int16", np.dtype(np.uint16): "uint16",
    np.dtype(np.int32): "int32", np.dtype(np.uint32): "uint32", np.dtype(np.int64): "int64",
    np.dtype(np.uint64): "uint64",
}


def subject_struct(
    *,
    data,
    stimseq,
    rod_names: Sequence[str],
    probe_ids,
    mni,
    areas,
    name: str | None = None,
    stimgroups=None,
) -> dict:
    """The struct ``s`` as nested Python values in MATLAB's shapes (see the module docstring).

    ``data`` (n_stimuli, n_probes) may hold NaN for rejected trials: they become ``-123456``.
    ``stimseq``: image names (a cell) or 1-based image numbers (a column).
    """
    data = np.array(data, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"data must be (n_stimuli, n_probes), got shape {data.shape}.")
    n, n_probes = data.shape
    data[np.isnan(data)] = REJECTED
    stimseq = np.asarray(stimseq)
    if stimseq.size != n:
        raise ValueError(f"stimseq has {stimseq.size} entries but data has {n} rows.")
    if stimseq.dtype.kind in "biuf":
        seq = stimseq.astype(np.float64).reshape(n, 1)
    else:
        seq = _cell([str(v) for v in stimseq.reshape(-1)], (n, 1))
    if len(rod_names) != n_probes:
        raise ValueError(f"{len(rod_names)} rod names for {n_probes} probes.")
    probes = {
        "rod_names": _cell([str(r) for r in rod_names], (1, n_probes)),
        "probe_ids": np.asarray(probe_ids, dtype=np.float64).reshape(n_probes, 1),
        "mni": np.asarray(mni, dtype=np.float64).reshape(n_probes, 3),
        "areas": np.asarray(areas, dtype=np.float64).reshape(1, n_probes),
    }
    s = {"stimseq": seq}
    if stimgroups is not None:
        s["stimgroups"] = np.asarray(stimgroups, dtype=np.float64).reshape(n, 1)
    s["probes"] = probes
    s["data"] = data
    if name is not None:
        s["name"] = str(name)
    return s


def write_intracranial_mat(path, *, version: str = "5", **fields) -> Path:
    """Write one subject's file (``s`` from :func:`subject_struct` with ``fields``), atomically.

    Parameters
    ----------
    path : str or Path
    version : {"5", "7.3"}
    **fields
        ``data``, ``stimseq``, ``rod_names``, ``probe_ids``, ``mni``, ``areas`` and optionally
        ``name``, ``stimgroups``: see :func:`subject_struct`.
    """
    version = check_option("version", version, MAT_VERSIONS)
    s = subject_struct(**fields)
    path = Path(path)
    with atomic_path(path) as tmp:
        if version == "5":
            with open(tmp, "wb") as fh:
                scipy.io.savemat(fh, {"s": s}, format="5", do_compression=True, oned_as="column")
        else:
            savemat_v73(tmp, {"s": s})
    return path


def random_subject(
    n_probes: int = 8,
    n_stimuli: int = N_STIMULI,
    *,
    seed=0,
    reject_fraction: float = 0.0,
    areas=None,
    numeric_stimseq: bool = False,
    name: str = "SUBJ01",
) -> dict:
    """Fields of a random subject for :func:`write_intracranial_mat` (tests).

    Band power is lognormal around 1 (a ratio to baseline); ``reject_fraction`` of the trials
    of every probe are rejected (NaN). ``stimseq`` is a random order of the images ``IMG001``,
    ... (or of 1..n with ``numeric_stimseq``), ``stimgroups`` 5 categories coded 10..50.
    """
    rng = make_rng(seed)
    data = np.exp(0.3 * rng.standard_normal((n_stimuli, n_probes)))
    if reject_fraction > 0:
        data[rng.random(data.shape) < reject_fraction] = np.nan
    order = rng.permutation(n_stimuli)
    if numeric_stimseq:
        stimseq = order + 1
    else:
        stimseq = np.array([f"IMG{k + 1:03d}" for k in order])
    n_rods = max(1, n_probes // 3 + 1)
    rods = [string.ascii_uppercase[k % 26] + ("P" if k >= 26 else "") for k in range(n_rods)]
    rod_names = [rods[p // 3] for p in range(n_probes)]
    probe_ids = np.array([p % 3 + 1 for p in range(n_probes)])
    mni = np.round(rng.uniform(-60, 60, (n_probes, 3)), 2)
    if areas is None:
        areas = rng.choice(np.array([17, 18, 19, 37, 20, 21, 0]), size=n_probes)
    stimgroups = 10 * (order * 5 // n_stimuli + 1)
    return {
        "data": data, "stimseq": stimseq, "rod_names": rod_names, "probe_ids": probe_ids, "mni": mni,
        "areas": np.asarray(areas), "name": name, "stimgroups": stimgroups,
    }


def _cell(items: list, shape: tuple) -> np.ndarray:
    """A numpy object array (a MATLAB cell) of ``items`` in ``shape``."""
    cell = np.empty(len(items), dtype=object)
    cell[:] = items
    return cell.reshape(shape)


# --------------------------------------------------------------------------- MATLAB v7.3


def savemat_v73(path, variables: Mapping, created: datetime.datetime | None = None) -> None:
    """Write ``variables`` as a MATLAB v7.3 MAT-file (HDF5 in MATLAB's layout).

    Values: dict -> struct; numpy object array -> cell (MATLAB shape); str -> char row;
    numeric or bool arrays -> numeric or logical arrays (MATLAB shape, at least 2-D); Python
    int/float -> 1 x 1 double.
    """
    path = Path(path)
    with h5py.File(path, "w", userblock_size=512, libver="earliest") as f:
        writer = _V73Writer(f)
        for name, value in variables.items():
            writer.write(f, name, value)
    created = created or datetime.datetime.now(datetime.timezone.utc)
    text = (f"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: {created:%a %b %d %H:%M:%S %Y} "
            "HDF5 schema 1.00 .")
    header = text.encode("ascii").ljust(116, b" ")[:116]
    header += b"\x00" * 8  # subsystem data offset: none
    header += b"\x00\x02" + b"IM"  # version 0x0200, endian indicator as MATLAB writes them
    with open(path, "r+b") as fh:
        fh.write(header)


def _set_str_attr(obj, name: str, value: str) -> None:
    """A fixed-length, null-terminated ASCII string attribute, as MATLAB writes them."""
    raw = value.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(max(1, len(raw)))
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    if h5py.h5a.exists(obj.id, name.encode()):
        h5py.h5a.delete(obj.id, name.encode())
    attr = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    attr.write(np.array(raw or b"\x00", dtype=f"S{max(1, len(raw))}"), mtype=tid)


class _V73Writer:
    def __init__(self, f: h5py.File):
        self.f = f
        self.refs = None
        self.n_refs = 0

    def _refs_group(self) -> h5py.Group:
        if self.refs is None:
            self.refs = self.f.create_group("#refs#")
            empty = self.refs.create_dataset("a", data=np.zeros(2, dtype=np.uint64))
            _set_str_attr(empty, "MATLAB_class", "canonical empty")
            empty.attrs.create("MATLAB_empty", np.uint8(1))
            self.n_refs = 1
        return self.refs

    def _next_ref_name(self) -> str:
        letters = string.ascii_lowercase + string.ascii_uppercase
        k, name = self.n_refs, ""
        while True:
            name = letters[k % len(letters)] + name
            k //= len(letters)
            if k == 0:
                break
        self.n_refs += 1
        return name

    def write(self, group, name: str, value):
        obj = self._write(group, name, value)
        if group.name != "/":
            _set_str_attr(obj, "H5PATH", group.name)
        return obj

    def _write(self, group, name: str, value):
        if isinstance(value, dict):
            g = group.create_group(name)
            _set_str_attr(g, "MATLAB_class", "struct")
            fields = np.empty(len(value), dtype=h5py.vlen_dtype(np.dtype("S1")))
            for k, field in enumerate(value):
                fields[k] = np.array([c.encode("ascii") for c in field], dtype="S1")
            g.attrs.create("MATLAB_fields", fields, dtype=h5py.vlen_dtype(np.dtype("S1")))
            for field, v in value.items():
                self.write(g, field, v)
            return g
        if isinstance(value, str):
            if not value:
                return self._empty(group, name, (0, 0), "char")
            codes = np.array([[ord(c) for c in value]], dtype=np.uint16)  # MATLAB 1 x n
            ds = group.create_dataset(name, data=codes.T)
            _set_str_attr(ds, "MATLAB_class", "char")
            ds.attrs.create("MATLAB_int_decode", np.int32(2))
            return ds
        if isinstance(value, (bool, int, float, np.integer, np.floating)):
            value = np.array([[value]], dtype=np.bool_ if isinstance(value, bool) else np.float64)
        value = np.asarray(value)
        if value.ndim < 2:
            value = value.reshape(1, -1)
        if value.dtype == object:
            if value.size == 0:
                return self._empty(group, name, value.shape, "cell")
            refs_group = self._refs_group()
            refs = np.empty(value.shape, dtype=h5py.ref_dtype)
            for index in np.ndindex(value.shape):
                element = self._write(refs_group, self._next_ref_name(), value[index])
                _set_str_attr(element, "H5PATH", refs_group.name)
                refs[index] = element.ref
            ds = group.create_dataset(name, data=refs.T, dtype=h5py.ref_dtype)
            _set_str_attr(ds, "MATLAB_class", "cell")
            return ds
        if value.dtype == np.bool_:
            if value.size == 0:
                return self._empty(group, name, value.shape, "logical")
            ds = group.create_dataset(name, data=value.T.astype(np.uint8))
            _set_str_attr(ds, "MATLAB_class", "logical")
            ds.attrs.create("MATLAB_int_decode", np.int32(1))
            return ds
        cls = _CLASS_OF_DTYPE.get(value.dtype)
        if cls is None:
            raise TypeError(f"{name}: cannot write dtype {value.dtype} as a MATLAB array.")
        if value.size == 0:
            return self._empty(group, name, value.shape, cls)
        ds = group.create_dataset(name, data=value.T)
        _set_str_attr(ds, "MATLAB_class", cls)
        return ds

    def _empty(self, group, name: str, shape, cls: str):
        ds = group.create_dataset(name, data=np.array(shape, dtype=np.uint64))  # MATLAB dims
        _set_str_attr(ds, "MATLAB_class", cls)
        ds.attrs.create("MATLAB_empty", np.uint8(1))
        return ds
