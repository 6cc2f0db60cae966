"""Kuzovkin et al. (2018): one subject's intracranial band power, from its MATLAB file.

The authors' pipeline (``Intracranial/`` of their repository) saves one ``.mat`` file per
subject holding a struct ``s``::

    s.stimseq      250 x 1 cell of image names ('AA42', 'V12', ...) in presentation order
                   (or 250 numbers, a permutation of 1..250)
    s.stimgroups   250 x 1 category codes (10, 20, 30, 40, 50), optional
    s.name         subject name (char), optional
    s.probes       struct: rod_names (1 x N cell of char), probe_ids (N x 1),
                   mni (N x 3, MNI coordinates), areas (N values, Brodmann area; 0 = none)
    s.data         250 x N baseline-normalised mean band power; -123456 = rejected trial

one folder per frequency band x time window (:data:`BANDS`, :data:`WINDOWS`,
:func:`band_window_folder`). Both MATLAB v5/v7 files (read with :func:`scipy.io.loadmat`)
and v7.3 files (HDF5, read with h5py; MATLAB stores arrays transposed, chars as uint16 and
cells as object references into ``/#refs#``) are read into the same
:class:`IntracranialSubject`.

Row order: ``data`` keeps the file's order, row ``i`` being the responses to image
``stimseq[i]``. :meth:`IntracranialSubject.responses` reorders the rows to any stimulus
order (e.g. the model's), so that brain and layer RDMs share one stimulus order.

Writers of the same files (synthetic data for tests and the demo) are in
:mod:`brainalign.io.kuzovkin2018_synthetic`.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io

from brainalign.utils import InputError, check_option

__all__ = [
    "BANDS",
    "WINDOWS",
    "FOLDER_TEMPLATE",
    "REJECTED",
    "N_STIMULI",
    "IntracranialSubject",
    "load_intracranial",
    "read_mat_struct",
    "band_window_folder",
    "band_window_folders",
    "subject_files",
]

#: Frequency bands (Hz, inclusive) of the paper, by the names its folders use.
BANDS = {
    "theta": (5, 8),
    "alpha": (9, 14),
    "beta": (15, 30),
    "lowgamma": (30, 70),
    "highgamma": (70, 150),
}
#: Time windows after stimulus onset (ms) of the paper, by name.
WINDOWS = {
    "50-250": (50, 250),
    "150-350": (150, 350),
    "250-450": (250, 450),
}
#: Folder of one band x window under the data root: the authors' folder names
#: (``meanhighgamma_LFP_5c_artif_bipolar_BA_w50_highgamma_resppositive``). Fields:
#: ``{band}``, ``{window}`` (e.g. ``50-250``), ``{start}``, ``{end}`` (ms).
FOLDER_TEMPLATE = "mean{band}_LFP_5c_artif_bipolar_BA_w{start}_{band}_resppositive"
#: Value of a rejected trial in ``s.data`` (the authors' "poison pill").
REJECTED = -123456.0
#: Images per subject in the paper (5 categories x 50).
N_STIMULI = 250

_PROBE_FIELDS = ("rod_names", "probe_ids", "mni", "areas")
_REQUIRED = ("stimseq", "probes", "data")
_NUMERIC_CLASSES = {
    "double": np.float64, "single": np.float32, "int8": np.int8, "uint8": np.uint8,
    "int16": np.int16, "uint16": np.uint16, "int32": np.int32, "uint32": np.uint32,
    "int64": np.int64, "uint64": np.uint64,
}


# --------------------------------------------------------------------------- folders


def _check_name(kind: str, value, allowed: dict) -> str:
    try:
        return check_option(kind, value, allowed)
    except ValueError as err:
        raise InputError(str(err)) from None


def band_window_folder(root, band: str, window: str, template: str = FOLDER_TEMPLATE) -> Path:
    """Folder of one band x window under ``root`` (existing or not).

    Raises
    ------
    InputError
        Unknown band or window (the message lists the allowed names), or a ``template``
        with a field other than ``{band}``, ``{window}``, ``{start}``, ``{end}``.
    """
    band = _check_name("band", band, BANDS)
    window = _check_name("window", window, WINDOWS)
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = sorted(fields - {"band", "window", "start", "end"})
    if unknown or not template:
        raise InputError(
            f"folder template {template!r}: unknown field(s) {unknown}; expected a non-empty "
            "template using {band}, {window}, {start} and {end} only."
        )
    start, end = WINDOWS[window]
    return Path(root) / template.format(band=band, window=window, start=start, end=end)


def band_window_folders(root, bands: Iterable[str] | None = None, windows: Iterable[str] | None = None,
                        template: str = FOLDER_TEMPLATE) -> dict[tuple[str, str], Path]:
    """``{(band, window): folder}`` for the given (default: all) bands and windows."""
    bands = list(BANDS) if bands is None else list(bands)
    windows = list(WINDOWS) if windows is None else list(windows)
    return {(b, w): band_window_folder(root, b, w, template) for b in bands for w in windows}


def subject_files(root, bands: Iterable[str] | None = None, windows: Iterable[str] | None = None,
                  template: str = FOLDER_TEMPLATE) -> dict[tuple[str, str], dict[str, Path]]:
    """The subject files of every band x window folder: ``{(band, window): {subject: path}}``.

    A subject is a ``*.mat`` file of the folder, named by its stem. Every folder must exist,
    hold at least one file, and hold the same subjects as the others.

    Raises
    ------
    InputError
        Unknown band or window, a missing or empty folder, or folders with different subjects.
    """
    folders = band_window_folders(root, bands, windows, template)
    out: dict[tuple[str, str], dict[str, Path]] = {}
    reference = None
    for key, folder in folders.items():
        if not folder.is_dir():
            raise InputError(
                f"Intracranial folder for band {key[0]!r}, window {key[1]!r} not found: {folder} "
                f"(from the template {template!r})."
            )
        files = {p.stem: p for p in sorted(folder.glob("*.mat"))}
        if not files:
            raise InputError(f"{folder}: no .mat files; expected one MATLAB file per subject.")
        if reference is None:
            reference = (key, set(files))
        elif set(files) != reference[1]:
            missing = sorted(reference[1] - set(files))
            extra = sorted(set(files) - reference[1])
            raise InputError(
                f"{folder}: subjects differ from those of band {reference[0][0]!r}, window "
                f"{reference[0][1]!r}: missing {missing}, extra {extra}; every band x window folder "
                "must hold the same subjects."
            )
        out[key] = files
    return out


# --------------------------------------------------------------------------- reading .mat


def read_mat_struct(path, name: str = "s") -> dict:
    """Variable ``name`` of a MATLAB file (v5/v7 or v7.3) as nested Python values.

    Structs become dicts, cells numpy object arrays in MATLAB's shape, char arrays ``str``
    (a multi-row char matrix an array of its rows), numeric and logical arrays numpy
    arrays in MATLAB's shape (at least 2-D: a MATLAB 1 x N vector is (1, N)); v7.3 files
    give the same values as v5 files.

    Raises
    ------
    InputError
        Missing or unreadable file, no variable ``name``, or a MATLAB class this reader
        does not handle (struct arrays, sparse, objects, function handles).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Intracranial file not found: {path}; expected a MATLAB .mat file.")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except Exception as err:
        raise InputError(f"{path}: cannot open ({type(err).__name__}: {err}).") from err
    if is_hdf5:
        return _read_v73(path, name)
    return _read_v5(path, name)


def _read_v5(path: Path, name: str):
    try:
        mat = scipy.io.loadmat(path, squeeze_me=False, struct_as_record=True, chars_as_strings=True,
                               appendmat=False)
    except Exception as err:  # truncated, not a MAT file, unsupported version ...
        raise InputError(
            f"{path}: cannot read as a MATLAB v5/v7 file ({type(err).__name__}: {err}); expected a .mat "
            "file saved by MATLAB (v7.3 files are read through HDF5)."
        ) from err
    if name not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise InputError(f"{path}: no variable {name!r} (found {found}); expected the struct {name!r}.")
    return _from_v5(mat[name], path, name)


def _from_v5(value, path: Path, where: str):
    """loadmat's value (struct_as_record=True, squeeze_me=False) -> dict / str / array."""
    if isinstance(value, np.ndarray) and value.dtype.names is not None:
        if value.size != 1:
            raise InputError(
                f"{path}: {where} is a {value.shape} struct array; expected a single (1 x 1) struct."
            )
        record = value.reshape(-1)[0]
        return {f: _from_v5(record[f], path, f"{where}.{f}") for f in value.dtype.names}
    if isinstance(value, np.ndarray) and value.dtype == object:
        out = np.empty(value.shape, dtype=object)
        for index in np.ndindex(value.shape):
            out[index] = _from_v5(value[index], path, f"{where}{{{index}}}")
        return out
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        rows = [str(r) for r in value.reshape(-1)]
        if len(rows) == 0:
            return ""
        return rows[0] if len(rows) == 1 else np.array(rows)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise InputError(
                f"{path}: {where} has MATLAB type {value.dtype}, which this reader does not handle."
            )
        return value
    raise InputError(
        f"{path}: {where} is a {type(value).__name__}, which this reader does not handle (sparse, "
        "objects and function handles are not expected in these files)."
    )


def _read_v73(path: Path, name: str):
    try:
        with h5py.File(path, "r") as f:
            if name not in f:
                found = sorted(k for k in f if not k.startswith("#"))
                raise InputError(
                    f"{path}: no variable {name!r} (found {found}); expected the struct {name!r}."
                )
            return _from_h5(f, f[name], path, name)
    except InputError:
        raise
    except Exception as err:  # truncated, broken references, not MATLAB's layout ...
        raise InputError(
            f"{path}: cannot read as a MATLAB v7.3 (HDF5) file ({type(err).__name__}: {err})."
        ) from err


def _h5_class(obj) -> str:
    cls = obj.attrs.get("MATLAB_class")
    if cls is None:
        return ""
    if isinstance(cls, np.ndarray):
        cls = cls.reshape(-1)[0]
    return cls.decode("ascii") if isinstance(cls, bytes) else str(cls)


def _from_h5(f, obj, path: Path, where: str):
    """One MATLAB v7.3 object -> the value :func:`_from_v5` gives for the v5 file."""
    cls = _h5_class(obj)
    if isinstance(obj, h5py.Group):
        if cls not in ("struct", ""):
            raise InputError(f"{path}: {where} is a MATLAB {cls!r} object; expected a struct.")
        fields = obj.attrs.get("MATLAB_fields")
        if fields is not None:
            names = [b"".join(np.asarray(c).tolist()).decode("ascii") for c in fields]
        else:
            names = [k for k in obj if not k.startswith("#")]
        return {k: _from_h5(f, obj[k], path, f"{where}.{k}") for k in names if k in obj}
    if int(np.asarray(obj.attrs.get("MATLAB_empty", 0)).reshape(-1)[0]):
        dims = np.asarray(obj[()]).reshape(-1)
        shape = tuple(int(v) for v in dims) if dims.size >= 2 else (0, 0)
        if cls == "char":
            return ""
        if cls == "cell":
            return np.empty(shape, dtype=object)
        if cls == "struct":
            raise InputError(f"{path}: {where} is an empty struct array; expected a 1 x 1 struct.")
        return np.zeros(shape, dtype=_NUMERIC_CLASSES.get(cls, np.float64))
    if cls == "struct":
        raise InputError(f"{path}: {where} is a struct array; expected a single (1 x 1) struct.")
    data = obj[()]
    if cls == "cell":
        refs = np.asarray(data)
        out = np.empty(refs.shape, dtype=object)
        for index in np.ndindex(refs.shape):
            out[index] = _from_h5(f, f[refs[index]], path, f"{where}{{{index[::-1]}}}")
        return out.T
    if cls == "char":
        codes = np.asarray(data).T  # MATLAB (rows, columns)
        rows = ["".join(map(chr, r)) for r in np.atleast_2d(codes)]
        return rows[0] if len(rows) == 1 else np.array(rows)
    if cls == "logical":
        return np.asarray(data).T.astype(bool)
    if cls in _NUMERIC_CLASSES or cls == "":
        arr = np.asarray(data)
        if arr.dtype.kind not in "biuf":
            raise InputError(
                f"{path}: {where} has HDF5 type {arr.dtype} (MATLAB class {cls or 'unknown'!r}); "
                "expected real numbers."
            )
        return arr.T
    raise InputError(f"{path}: {where} has MATLAB class {cls!r}, which this reader does not handle.")


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class IntracranialSubject:
    """One subject of one band x window file.

    Attributes
    ----------
    name : str
        ``s.name``, or the file's stem when absent.
    path : Path
    data : array (n_stimuli, n_probes) float64
        Band power; NaN for a rejected trial (``-123456`` in the file). Rows in the file's
        order: row ``i`` is image ``stimseq[i]``.
    stimseq : array (n_stimuli,)
        Image names (str) or image numbers (int, 1-based), as in the file.
    stimgroups : int array (n_stimuli,) or None
        Category code of each row, when the file has ``s.stimgroups``.
    rod_names : str array (n_probes,)
    probe_ids : int array (n_probes,)
    mni : array (n_probes, 3) float64
    areas : int array (n_probes,)
        Brodmann area (0 = none).
    mat_version : {"5", "7.3"}
    """

    name: str
    path: Path
    data: np.ndarray
    stimseq: np.ndarray
    stimgroups: np.ndarray | None
    rod_names: np.ndarray
    probe_ids: np.ndarray
    mni: np.ndarray
    areas: np.ndarray
    mat_version: str

    @property
    def n_stimuli(self) -> int:
        return int(self.data.shape[0])

    @property
    def n_probes(self) -> int:
        return int(self.data.shape[1])

    @property
    def n_rejected(self) -> np.ndarray:
        """Rejected trials per probe."""
        return np.isnan(self.data).sum(axis=0)

    def responses(self, stimulus_ids) -> np.ndarray:
        """``data`` with rows in the order of ``stimulus_ids`` (compared as strings).

        Raises
        ------
        InputError
            ``stimulus_ids`` is not the same set of images as ``stimseq``.
        """
        ids = np.asarray(stimulus_ids).astype(str).reshape(-1)
        mine = self.stimseq.astype(str)
        where = {s: i for i, s in enumerate(mine)}
        missing = [s for s in ids if s not in where]
        if missing or ids.size != mine.size or np.unique(ids).size != ids.size:
            extra = sorted(set(mine) - set(ids))
            raise InputError(
                f"{self.path}: the requested stimulus order ({ids.size} ids) is not a reordering of the "
                f"file's {mine.size} images in s.stimseq: not in the file {missing[:5]}, not requested "
                f"{extra[:5]}."
            )
        return self.data[[where[s] for s in ids]]


def load_intracranial(path, n_stimuli: int | None = N_STIMULI) -> IntracranialSubject:
    """Read one subject's band-power file (MATLAB v5/v7 or v7.3) and check it.

    Parameters
    ----------
    path : str or Path
        The subject's ``.mat`` file with the struct ``s`` (see the module docstring).
    n_stimuli : int or None
        Images expected in ``s.stimseq`` (the paper: 250); None accepts any number >= 3.

    Returns
    -------
    IntracranialSubject
        ``data`` in the file's row order (``stimseq``), ``-123456`` replaced by NaN.

    Raises
    ------
    InputError
        Naming the file and field: missing file or field, unreadable or truncated file,
        wrong shapes, ``stimseq`` not ``n_stimuli`` distinct images (names, or a permutation of
        1..n), NaN or inf in ``data`` (rejected trials must be -123456), non-integer areas or
        probe ids, non-finite MNI coordinates.
    """
    path = Path(path)
    s = read_mat_struct(path, "s")
    version = "7.3" if h5py.is_hdf5(path) else "5"
    if not isinstance(s, dict):
        raise InputError(f"{path}: variable 's' is not a struct; expected a struct with fields "
                         f"{', '.join(_REQUIRED)}.")
    _require(s, _REQUIRED, path, "s")
    probes = s["probes"]
    if not isinstance(probes, dict):
        raise InputError(f"{path}: s.probes is not a struct; expected a struct with fields "
                         f"{', '.join(_PROBE_FIELDS)}.")
    _require(probes, _PROBE_FIELDS, path, "s.probes")

    stimseq = _stimseq(s["stimseq"], path, n_stimuli)
    n = stimseq.size
    data = _numeric(s["data"], path, "s.data")
    if data.ndim != 2 or data.shape[0] != n:
        hint = " (it looks transposed)" if data.ndim == 2 and data.shape[1] == n else ""
        raise InputError(
            f"{path}: s.data has shape {data.shape}{hint}; expected (n_stimuli, n_probes) with "
            f"n_stimuli = {n} (the length of s.stimseq)."
        )
    n_probes = data.shape[1]
    data = data.astype(np.float64)
    rejected = data == REJECTED
    bad = ~np.isfinite(data)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(
            f"{path}: s.data holds {int(bad.sum())} NaN or inf values, first at (stimulus, probe) "
            f"{first} (0-based); expected finite band power, with {REJECTED:.0f} for a rejected trial."
        )
    data[rejected] = np.nan

    rod_names = _strings(probes["rod_names"], path, "s.probes.rod_names", n_probes)
    probe_ids = _integers(_vector(probes["probe_ids"], path, "s.probes.probe_ids", n_probes),
                          path, "s.probes.probe_ids")
    areas = _integers(_vector(probes["areas"], path, "s.probes.areas", n_probes), path, "s.probes.areas")
    mni = _numeric(probes["mni"], path, "s.probes.mni")
    if n_probes == 0 and mni.size == 0:
        mni = np.zeros((0, 3))
    if mni.shape != (n_probes, 3):
        raise InputError(
            f"{path}: s.probes.mni has shape {mni.shape}; expected (n_probes, 3) = ({n_probes}, 3), "
            "one MNI coordinate triple per column of s.data."
        )
    mni = mni.astype(np.float64)
    if not np.isfinite(mni).all():
        raise InputError(f"{path}: s.probes.mni holds NaN or inf; expected finite MNI coordinates.")

    stimgroups = None
    if "stimgroups" in s:
        stimgroups = _integers(_vector(s["stimgroups"], path, "s.stimgroups", n), path, "s.stimgroups")
    name = s.get("name", path.stem)
    if not isinstance(name, str) or not name:
        name = path.stem
    return IntracranialSubject(
        name=name, path=path, data=data, stimseq=stimseq, stimgroups=stimgroups, rod_names=rod_names,
        probe_ids=probe_ids, mni=mni, areas=areas, mat_version=version,
    )


def _require(struct: dict, fields, path: Path, what: str) -> None:
    missing = [k for k in fields if k not in struct]
    if missing:
        raise InputError(
            f"{path}: {what} has no field(s) {', '.join(missing)}; expected {', '.join(fields)} "
            f"(found {', '.join(struct) or 'none'})."
        )


def _numeric(value, path: Path, what: str) -> np.ndarray:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "biuf":
        kind = type(value).__name__ if not isinstance(value, np.ndarray) else f"{value.dtype} array"
        raise InputError(f"{path}: {what} is a {kind}; expected a numeric array.")
    return value


def _vector(value, path: Path, what: str, length: int) -> np.ndarray:
    """A MATLAB vector (1 x n, n x 1, or empty when ``length`` is 0) -> 1-D numeric array."""
    value = _numeric(value, path, what)
    if length == 0 and value.size == 0:
        return value.reshape(0)
    if value.size != length or sum(d != 1 for d in value.shape) > 1:
        raise InputError(f"{path}: {what} has shape {value.shape}; expected a vector of {length} values.")
    return value.reshape(-1)


def _integers(value: np.ndarray, path: Path, what: str) -> np.ndarray:
    v = value.astype(np.float64)
    if not np.isfinite(v).all() or not np.array_equal(v, np.round(v)):
        bad = v[~np.isfinite(v) | (v != np.round(v))][:3]
        raise InputError(f"{path}: {what} holds non-integer values (e.g. {bad.tolist()}); expected integers.")
    return v.astype(np.int64)


def _strings(value, path: Path, what: str, length: int) -> np.ndarray:
    """A cell of char (any vector shape) or a char matrix -> 1-D str array of ``length``."""
    if isinstance(value, str):
        items = [value] if value else []
    elif isinstance(value, np.ndarray) and value.dtype == object:
        if sum(d != 1 for d in value.shape) > 1 and value.size:
            raise InputError(
                f"{path}: {what} is a {value.shape} cell; expected a cell vector of {length} names."
            )
        items = list(value.reshape(-1))
        for k, item in enumerate(items):
            if not isinstance(item, str):
                raise InputError(
                    f"{path}: {what}{{{k + 1}}} is a {type(item).__name__}; expected a char array (a name)."
                )
    elif isinstance(value, np.ndarray) and value.dtype.kind == "U":
        items = [r.rstrip() for r in value.reshape(-1)]
    elif isinstance(value, np.ndarray) and value.size == 0 and length == 0:
        items = []
    else:
        kind = type(value).__name__ if not isinstance(value, np.ndarray) else f"{value.dtype} array"
        raise InputError(f"{path}: {what} is a {kind}; expected a cell array of {length} names.")
    if len(items) != length:
        raise InputError(f"{path}: {what} holds {len(items)} names; expected {length}.")
    return np.array(items, dtype=str).reshape(length)


def _stimseq(value, path: Path, n_stimuli: int | None) -> np.ndarray:
    what = "s.stimseq"
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        if sum(d != 1 for d in value.shape) > 1:
            raise InputError(f"{path}: {what} has shape {value.shape}; expected a vector of image numbers.")
        seq = _integers(value.reshape(-1), path, what)
        n = seq.size
        if n_stimuli is not None and n != n_stimuli:
            raise InputError(f"{path}: {what} has {n} entries; expected {n_stimuli} (one per image).")
        if not np.array_equal(np.sort(seq), np.arange(1, n + 1)):
            hint = " (it looks 0-based; MATLAB numbers start at 1)" if np.array_equal(
                np.sort(seq), np.arange(n)) else ""
            raise InputError(
                f"{path}: {what} is not a permutation of 1..{n}{hint}; expected each image number once."
            )
    else:
        n_guess = n_stimuli if n_stimuli is not None else (
            value.size if isinstance(value, np.ndarray) else 1)
        seq = _strings(value, path, what, _cell_length(value, n_guess))
        n = seq.size
        if n_stimuli is not None and n != n_stimuli:
            raise InputError(f"{path}: {what} has {n} entries; expected {n_stimuli} (one per image).")
        names, counts = np.unique(seq, return_counts=True)
        if (counts > 1).any() or (seq == "").any():
            dup = names[counts > 1][:5].tolist()
            raise InputError(
                f"{path}: {what} repeats image names {dup} or has empty names; expected {n} distinct images."
            )
    if n < 3:
        raise InputError(f"{path}: {what} has {n} entries; at least 3 images are needed.")
    return seq


def _cell_length(value, default: int) -> int:
    if isinstance(value, np.ndarray) and value.dtype == object:
        return value.size
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        return value.size
    return default
