"""Macaque V4/IT array recordings (Majaj, Hong et al. 2015; Brain-Score "MajajHong2015").

Reads the neural assembly as brainio writes it (SPEC "Data formats") and the matching
brainio stimulus set (CSV + image folder). Arend et al. (2018) use 2560 grayscale images
(8 categories x 8 objects), spike counts 70-170 ms after stimulus onset averaged over
repetitions, 88 V4 and 168 IT sites: :func:`load_majajhong2015`'s defaults.

Assembly file (netCDF-4, read with xarray)::

    data variable   ``data`` (current brainio: ``to_dataset(name="data")``)
                    or ``__xarray_dataarray_variable__`` (older files: an unnamed DataArray)
    dims            presentation x neuroid x time_bin, in any order (a file without a
                    ``time_bin`` dimension is taken as already windowed)
    presentation    stimulus_id (legacy files: image_id), object_name, category_name,
                    variation (``repetition`` may be present; it is not needed:
                    presentations are grouped by stimulus_id)
    neuroid         neuroid_id, region ('V4' or 'IT'), animal, arr
    time_bin        time_bin_start, time_bin_end (ms)

brainio resets its MultiIndexes before writing, so every coordinate is a plain variable
along its dimension. String coordinates are read whatever way they are stored
(variable-length strings, char arrays with or without ``_Encoding``; bytes are decoded
as UTF-8).

Processing, in this order:

1. the time window ``time_bin = (start, end)`` is taken: the bin with exactly these
   edges, or else the mean over bins that tile the window exactly (contiguous,
   non-overlapping, first start = ``start``, last end = ``end``);
2. presentations are filtered by ``variation`` (optional);
3. repetitions are averaged per ``stimulus_id``. **Stimulus order**: the returned rows
   are sorted by ``stimulus_id`` as strings (``numpy.unique`` order), whatever the
   presentation order of the file, so two files with the same stimuli give the same
   rows. Stimulus-level coordinates (category, object, variation) must be constant
   within a stimulus id.

Sites (neuroids) stay in file order. :meth:`MajajHong2015.select_region` and
:meth:`MajajHong2015.split_by_region` split them by region. Every malformed input raises
:class:`~brainalign.utils.InputError` naming the file and what was expected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from brainalign.utils import InputError

__all__ = [
    "REGIONS",
    "DATA_VARIABLES",
    "TIME_BIN",
    "MajajHong2015",
    "load_majajhong2015",
    "load_stimulus_set",
]

#: The two regions of the assembly, in the paper's order.
REGIONS = ("V4", "IT")
#: Names of the data variable: brainio's current name first, older files' second.
DATA_VARIABLES = ("data", "__xarray_dataarray_variable__")
#: The paper's spike-count window (ms after stimulus onset).
TIME_BIN = (70, 170)
_DIMS = ("presentation", "neuroid", "time_bin")
_PRESENTATION_COORDS = ("stimulus_id", "object_name", "category_name", "variation")
_NEUROID_COORDS = ("neuroid_id", "region", "animal", "arr")
_LEGACY_ALIASES = {"stimulus_id": ("image_id",)}


@dataclasses.dataclass(frozen=True)
class MajajHong2015:
    """Repetition-averaged responses of the recorded sites to each stimulus.

    Attributes
    ----------
    responses : ndarray (n_stimuli, n_sites), float64
        Mean response over repetitions (and over time bins when several tile the window).
    stimulus_ids : ndarray (n_stimuli,) of str
        Sorted as strings (the row order, see the module docstring).
    category_name, object_name : ndarray (n_stimuli,) of str
    variation : ndarray (n_stimuli,)
        int64 when the file stores numbers (0, 3, 6 in the real data), else str.
    n_repetitions : ndarray (n_stimuli,), int64
        Presentations averaged into each row.
    neuroid_id, region, animal, arr : ndarray (n_sites,) of str
        Per site, in file order.
    time_bin : tuple of int or None
        The window read, ``None`` when the file has no ``time_bin`` dimension.
    path : str
        The file read.
    """

    responses: np.ndarray
    stimulus_ids: np.ndarray
    category_name: np.ndarray
    object_name: np.ndarray
    variation: np.ndarray
    n_repetitions: np.ndarray
    neuroid_id: np.ndarray
    region: np.ndarray
    animal: np.ndarray
    arr: np.ndarray
    time_bin: tuple | None
    path: str

    @property
    def n_stimuli(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_sites(self) -> int:
        return int(self.responses.shape[1])

    def select_region(self, region: str) -> MajajHong2015:
        """The same data restricted to the sites of ``region`` (file order kept)."""
        if region not in REGIONS:
            raise InputError(f"Unknown region {region!r}; expected one of {list(REGIONS)}.")
        keep = self.region == region
        if not keep.any():
            raise InputError(f"{self.path}: no site of region {region!r} in the selection.")
        return dataclasses.replace(
            self,
            responses=self.responses[:, keep],
            neuroid_id=self.neuroid_id[keep],
            region=self.region[keep],
            animal=self.animal[keep],
            arr=self.arr[keep],
        )

    def split_by_region(self) -> dict[str, MajajHong2015]:
        """``{region: data}`` for each region present, in :data:`REGIONS` order."""
        return {r: self.select_region(r) for r in REGIONS if np.any(self.region == r)}


# --------------------------------------------------------------------------- assembly


def load_majajhong2015(path, *, variation=None, time_bin=TIME_BIN) -> MajajHong2015:
    """Read a MajajHong2015 assembly (netCDF-4 written by brainio) and average repetitions.

    Parameters
    ----------
    path : path
        The ``.nc`` file (e.g. ``assy_dicarlo_MajajHong2015_public.nc``).
    variation : None, int, str or sequence of them
        Keep only presentations whose ``variation`` is one of these (the real data have
        0, 3 and 6); ``None`` keeps all.
    time_bin : (start, end)
        Window in ms (see the module docstring). Ignored, with no check, for a file
        without a ``time_bin`` dimension.

    Returns
    -------
    MajajHong2015
        Stimuli sorted by ``stimulus_id`` (as strings), sites in file order.
    """
    import xarray as xr

    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError(f"{where}: MajajHong2015 assembly not found; expected a netCDF-4 file.")
    try:
        ds = xr.open_dataset(path, engine="netcdf4")
    except Exception as err:  # netCDF4 raises OSError, xarray ValueError: any is a bad file
        raise InputError(
            f"{where}: cannot be read as a netCDF-4 file by xarray ({type(err).__name__}: {err})."
        ) from err
    with ds:
        name = next((v for v in DATA_VARIABLES if v in ds.data_vars), None)
        if name is None:
            raise InputError(
                f"{where}: no data variable named {' or '.join(map(repr, DATA_VARIABLES))}; "
                f"found {sorted(map(str, ds.data_vars))}."
            )
        da = ds[name]
        dims = tuple(str(d) for d in da.dims)
        expected = set(_DIMS) if "time_bin" in dims else set(_DIMS[:2])
        if len(dims) != len(set(dims)) or set(dims) != expected:
            raise InputError(
                f"{where}: data variable {name!r} has dims {dims}; expected "
                "('presentation', 'neuroid', 'time_bin') in any order (time_bin optional)."
            )
        pres = {c: _coord(da, c, "presentation", where) for c in _PRESENTATION_COORDS}
        neur = {c: _coord(da, c, "neuroid", where) for c in _NEUROID_COORDS}

        window = None
        if "time_bin" in dims:
            starts = _coord(da, "time_bin_start", "time_bin", where).astype(np.float64)
            ends = _coord(da, "time_bin_end", "time_bin", where).astype(np.float64)
            bins, window = _window_bins(starts, ends, time_bin, where)
            da = da.isel(time_bin=bins)
            da = da.transpose("presentation", "neuroid", "time_bin")
        else:
            da = da.transpose("presentation", "neuroid")

        keep = np.ones(da.sizes["presentation"], dtype=bool)
        if variation is not None:
            wanted = [variation] if np.ndim(variation) == 0 else list(variation)
            keep = np.isin(pres["variation"], _normalise_values(np.asarray(wanted)))
            if not keep.any():
                present = np.unique(pres["variation"]).tolist()
                raise InputError(
                    f"{where}: no presentation has variation in {wanted}; the file has {present}."
                )
        idx = np.flatnonzero(keep)
        values = np.asarray(da.isel(presentation=idx).values, dtype=np.float64)
    if values.ndim == 3:
        values = values.mean(axis=2)
    if values.size == 0:
        raise InputError(f"{where}: the selection is empty (shape {values.shape}).")
    _check_finite(values, where)

    region = neur["region"]
    unknown = sorted(set(region.tolist()) - set(REGIONS))
    if unknown:
        raise InputError(f"{where}: unknown region(s) {unknown}; expected only {list(REGIONS)}.")
    nid = neur["neuroid_id"]
    if len(np.unique(nid)) != len(nid):
        dup = next(x for x in nid if np.count_nonzero(nid == x) > 1)
        raise InputError(f"{where}: neuroid_id {dup!r} occurs more than once; ids must be unique.")

    sid = pres["stimulus_id"][idx]
    stim, first, inverse, counts = np.unique(sid, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    means = np.add.reduceat(values[order], starts, axis=0) / counts[:, None]
    meta = {}
    for c in ("category_name", "object_name", "variation"):
        v = pres[c][idx]
        per_stim = v[first]
        bad = np.flatnonzero(per_stim[inverse] != v)
        if bad.size:
            s = sid[bad[0]]
            raise InputError(
                f"{where}: coordinate {c!r} differs between presentations of stimulus {s!r} "
                f"({sorted(set(v[sid == s].tolist()))}); expected one value per stimulus_id."
            )
        meta[c] = per_stim
    return MajajHong2015(
        responses=means,
        stimulus_ids=stim,
        category_name=meta["category_name"],
        object_name=meta["object_name"],
        variation=meta["variation"],
        n_repetitions=counts.astype(np.int64),
        neuroid_id=nid,
        region=region,
        animal=neur["animal"],
        arr=neur["arr"],
        time_bin=window,
        path=where,
    )


def _coord(da, name, dim, where, required=True):
    """The values of coordinate ``name`` along ``dim`` (legacy aliases accepted), normalised."""
    for candidate in (name, *_LEGACY_ALIASES.get(name, ())):
        if candidate in da.coords:
            c = da.coords[candidate]
            if c.dims != (dim,):
                raise InputError(
                    f"{where}: coordinate {candidate!r} lies along {c.dims}; expected ({dim!r},)."
                )
            return _normalise_values(np.asarray(c.values))
    if not required:
        return None
    alias = f" (or {', '.join(map(repr, _LEGACY_ALIASES[name]))})" if name in _LEGACY_ALIASES else ""
    raise InputError(
        f"{where}: missing coordinate {name!r}{alias} along dimension {dim!r}; "
        f"the file has {sorted(map(str, da.coords))}."
    )


def _normalise_values(values: np.ndarray) -> np.ndarray:
    """Bytes -> str, object strings -> str, integral floats -> int64."""
    if values.dtype.kind == "S":
        return np.char.decode(values, "utf-8").astype(str)
    if values.dtype.kind == "O":
        items = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values.tolist()]
        if all(isinstance(v, str) for v in items):
            return np.asarray(items, dtype=str)
        values = np.asarray(items)
    if values.dtype.kind == "f" and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    return values


def _window_bins(starts, ends, time_bin, where):
    try:
        t0, t1 = (float(t) for t in time_bin)
    except (TypeError, ValueError) as err:
        raise InputError(f"time_bin must be a (start, end) pair in ms, got {time_bin!r}.") from err
    listed = [(float(s), float(e)) for s, e in zip(starts, ends, strict=True)]
    exact = [i for i, (s, e) in enumerate(listed) if s == t0 and e == t1]
    if exact:
        return [exact[0]], (int(t0) if t0.is_integer() else t0, int(t1) if t1.is_integer() else t1)
    inside = sorted((i for i, (s, e) in enumerate(listed) if s >= t0 and e <= t1), key=lambda i: listed[i])
    tiles = bool(inside) and listed[inside[0]][0] == t0 and listed[inside[-1]][1] == t1
    tiles = tiles and all(listed[a][1] == listed[b][0] for a, b in zip(inside, inside[1:], strict=False))
    if not tiles:
        raise InputError(
            f"{where}: no time bin equals the window {time_bin!r} ms and the bins inside it do "
            f"not tile it; the file's bins are {[(_num(s), _num(e)) for s, e in listed]}."
        )
    return inside, (_num(t0), _num(t1))


def _num(x: float):
    return int(x) if float(x).is_integer() else float(x)


def _check_finite(values, where):
    bad = ~np.isfinite(values)
    if bad.any():
        p, n = np.argwhere(bad)[0]
        raise InputError(
            f"{where}: {int(bad.sum())} non-finite (NaN or inf) responses after selection and "
            f"time-window averaging, first at presentation {int(p)} of the selection, neuroid "
            f"{int(n)}; expected finite numbers."
        )


# --------------------------------------------------------------------------- stimulus set


def load_stimulus_set(csv_path, image_dir, stimulus_ids: Sequence | None = None) -> list[Path]:
    """Paths of the stimulus images, in the order of ``stimulus_ids``.

    Parameters
    ----------
    csv_path : path
        A brainio stimulus-set CSV: a ``stimulus_id`` column (legacy: ``image_id``) and a
        file-name column, ``filename`` (legacy: ``image_file_name``), relative to
        ``image_dir`` (if that file is missing, its base name directly under ``image_dir``
        is tried, as when a zip with sub-folders was unpacked flat). Other columns are
        ignored.
    image_dir : path
        The folder the stimulus zip was unpacked into.
    stimulus_ids : sequence, optional
        The order wanted (e.g. :attr:`MajajHong2015.stimulus_ids`); default: CSV order.

    Returns
    -------
    list of pathlib.Path
        One existing image file per requested id.
    """
    import pandas as pd

    csv_path = Path(csv_path)
    image_dir = Path(image_dir)
    where = str(csv_path)
    if not csv_path.is_file():
        raise InputError(f"{where}: stimulus-set CSV not found.")
    if not image_dir.is_dir():
        raise InputError(f"{image_dir}: stimulus image folder not found (for {where}).")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise InputError(f"{where}: cannot be read as a CSV file ({err}).") from err
    id_col = next((c for c in ("stimulus_id", "image_id") if c in table.columns), None)
    file_col = next((c for c in ("filename", "image_file_name") if c in table.columns), None)
    if id_col is None or file_col is None:
        raise InputError(
            f"{where}: expected columns 'stimulus_id' (or 'image_id') and 'filename' (or "
            f"'image_file_name'); found {list(table.columns)}."
        )
    ids = table[id_col].to_numpy(dtype=str)
    files = table[file_col].to_numpy(dtype=str)
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise InputError(f"{where}: stimulus id {uniq[counts > 1][0]!r} occurs more than once.")
    lookup = dict(zip(ids.tolist(), files.tolist(), strict=True))
    wanted = ids.tolist() if stimulus_ids is None else [str(s) for s in stimulus_ids]
    missing = [s for s in wanted if s not in lookup]
    if missing:
        raise InputError(
            f"{where}: {len(missing)} requested stimulus id(s) are not in the stimulus set, "
            f"e.g. {missing[:3]}."
        )
    paths, absent = [], []
    for s in wanted:
        p = image_dir / lookup[s]
        if not p.is_file():
            flat = image_dir / Path(lookup[s]).name
            p = flat if flat.is_file() else p
        if not p.is_file():
            absent.append(str(p))
        paths.append(p)
    if absent:
        raise InputError(
            f"{where}: {len(absent)} image file(s) listed for the requested stimuli are missing "
            f"under {image_dir}, e.g. {absent[:3]}."
        )
    return paths
