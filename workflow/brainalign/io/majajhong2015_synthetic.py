"""Synthetic MajajHong2015 files in brainio's format, for tests and the demo.

brainio's own writer cannot run beside numpy 2 (brainscore-brainio 1.1.0 uses
``np.unicode_``, and its ``write_netcdf`` then fails on object coordinates with current
xarray), so :func:`write_assembly` follows its conventions with xarray directly:

- presentation and neuroid coordinates are built as pandas MultiIndexes (as a brainio
  ``DataAssembly`` holds them) and reset to plain coordinates before writing
  (``reset_index``), time-bin edges are plain coordinates along ``time_bin``;
- netCDF-4 through the ``netcdf4`` engine; ``variable_name="data"`` writes
  ``to_dataset(name="data")`` with zlib level 1 (brainio's ``compress=True``),
  ``variable_name="__xarray_dataarray_variable__"`` writes the unnamed DataArray, as
  older files are;
- string coordinates are stored as ``string_storage`` says: ``"vlen"`` (netCDF
  variable-length strings: xarray's default, and what object-dtype coordinates give),
  ``"char"`` (fixed-width char arrays with ``_Encoding = "utf-8"``, decoded to str by
  xarray) or ``"bytes"`` (char arrays without ``_Encoding``, read back as bytes).

:func:`write_stimulus_set` writes a brainio stimulus-set CSV and grayscale PNG images of
8 categories x ``objects_per_category`` objects (a category is a family of shapes, an
object one shape; ``variation`` 0/3/6 sets how much position, size and rotation jitter,
on a smooth random background). :func:`make_synthetic_assembly` turns per-stimulus site
responses into presentations (repetitions with noise, shuffled, a distractor time bin)
and writes them with :func:`write_assembly`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from brainalign.io.majajhong2015 import DATA_VARIABLES, TIME_BIN
from brainalign.utils import InputError, atomic_path, check_option, make_rng

__all__ = [
    "CATEGORIES",
    "STRING_STORAGE",
    "SyntheticStimuli",
    "write_assembly",
    "write_stimulus_set",
    "make_synthetic_assembly",
]

#: The eight categories of the HvM stimulus set (Majaj, Hong et al. 2015).
CATEGORIES = ("Animals", "Boats", "Cars", "Chairs", "Faces", "Fruits", "Planes", "Tables")
STRING_STORAGE = ("vlen", "char", "bytes")
_JITTER = {0: 0.0, 3: 0.5, 6: 1.0}  # fraction of the maximal jitter per variation level


# --------------------------------------------------------------------------- assembly


def write_assembly(
    path,
    responses,
    *,
    presentation_coords: Mapping[str, Sequence],
    neuroid_coords: Mapping[str, Sequence],
    time_bin_start: Sequence = (TIME_BIN[0],),
    time_bin_end: Sequence = (TIME_BIN[1],),
    variable_name: str = "data",
    string_storage: str = "vlen",
    compress: bool = True,
) -> Path:
    """Write a presentation x neuroid x time_bin assembly as brainio does (atomically).

    Parameters
    ----------
    path : path
        The ``.nc`` file to write.
    responses : array (n_presentations, n_neuroids, n_time_bins)
    presentation_coords, neuroid_coords : mapping name -> 1-D sequence
        Coordinates along ``presentation`` and ``neuroid`` (e.g. ``stimulus_id``,
        ``repetition``, ... and ``neuroid_id``, ``region``, ...).
    time_bin_start, time_bin_end : sequence of numbers, length n_time_bins
    variable_name : {"data", "__xarray_dataarray_variable__"}
    string_storage : {"vlen", "char", "bytes"}
        How string coordinates are stored (module docstring).
    compress : bool
        zlib level 1 on every variable (only with ``variable_name="data"``, as brainio).

    Returns
    -------
    pathlib.Path
    """
    import pandas as pd
    import xarray as xr

    check_option("variable_name", variable_name, DATA_VARIABLES)
    check_option("string_storage", string_storage, STRING_STORAGE)
    responses = np.asarray(responses, dtype=np.float64)
    if responses.ndim != 3:
        raise InputError(
            f"write_assembly: responses must be (presentations, neuroids, time bins), got shape "
            f"{responses.shape}."
        )
    n_pres, n_neur, n_bins = responses.shape

    def _multi(coords, n, dim):
        arrays, names = [], []
        for name, values in coords.items():
            values = np.asarray(values)
            if values.shape != (n,):
                raise InputError(
                    f"write_assembly: coordinate {name!r} has shape {values.shape}; expected ({n},) "
                    f"along {dim!r}."
                )
            arrays.append(values.astype(object) if values.dtype.kind == "U" else values)
            names.append(name)
        return xr.Coordinates.from_pandas_multiindex(pd.MultiIndex.from_arrays(arrays, names=names), dim)

    coords = {
        **_multi(presentation_coords, n_pres, "presentation"),
        **_multi(neuroid_coords, n_neur, "neuroid"),
        "time_bin_start": ("time_bin", np.asarray(time_bin_start)),
        "time_bin_end": ("time_bin", np.asarray(time_bin_end)),
    }
    if len(time_bin_start) != n_bins or len(time_bin_end) != n_bins:
        raise InputError(f"write_assembly: {n_bins} time bins but {len(time_bin_start)} edges given.")
    da = xr.DataArray(responses, dims=("presentation", "neuroid", "time_bin"), coords=coords)
    da = da.reset_index(list(da.indexes))  # brainio: netCDF cannot hold a MultiIndex
    encoding = {}
    for name, c in da.coords.items():
        if c.dtype.kind in "OU":
            if string_storage == "bytes":
                da = da.assign_coords({name: (c.dims, np.char.encode(c.values.astype(str), "utf-8"))})
            elif string_storage == "char":
                encoding[name] = {"dtype": "S1"}
    if variable_name == "data":
        obj = da.to_dataset(name="data")
        if compress:
            for var in obj.variables:
                encoding.setdefault(var, {}).update(zlib=True, complevel=1)
    else:
        obj = da
    with atomic_path(path) as tmp:
        obj.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    return Path(path)


def make_synthetic_assembly(
    path,
    site_responses,
    *,
    stimuli: SyntheticStimuli | Mapping,
    regions: Sequence[str],
    n_repetitions: int = 2,
    noise_sd: float = 0.0,
    seed=0,
    distractor_bin: bool = True,
    neuroid_ids: Sequence[str] | None = None,
    **writer_kwargs,
) -> Path:
    """Write per-stimulus site responses as a MajajHong2015-format assembly.

    Every stimulus is presented ``n_repetitions`` times; presentation ``k`` of a stimulus
    carries ``site_responses + noise_sd * e_k`` with the noise centred over the
    repetitions of that stimulus, so the repetition average is exactly ``site_responses``
    (up to rounding). Presentations are shuffled (seeded). With ``distractor_bin`` a
    second time bin (0-50 ms) holds unrelated values, so reading the wrong bin is caught.

    Parameters
    ----------
    path : path
    site_responses : array (n_stimuli, n_sites)
    stimuli : SyntheticStimuli or mapping
        ``stimulus_ids``, ``category_name``, ``object_name``, ``variation`` per stimulus.
    regions : sequence of str, length n_sites
    n_repetitions : int
    noise_sd : float
    seed : int or numpy.random.Generator
    distractor_bin : bool
    neuroid_ids : sequence of str, optional
        Default ``"<animal>_<arr>_<i>"``.
    **writer_kwargs
        ``variable_name``, ``string_storage``, ``compress`` of :func:`write_assembly`.
    """
    rng = make_rng(seed)
    y = np.asarray(site_responses, dtype=np.float64)
    st = dataclasses.asdict(stimuli) if isinstance(stimuli, SyntheticStimuli) else dict(stimuli)
    n_stim, n_sites = y.shape
    regions = np.asarray(regions, dtype=str)
    if regions.shape != (n_sites,):
        raise InputError(f"make_synthetic_assembly: {n_sites} sites but {regions.shape} regions given.")
    r = int(n_repetitions)
    noise = rng.standard_normal((n_stim, r, n_sites)) * float(noise_sd)
    if r > 1:
        noise -= noise.mean(axis=1, keepdims=True)
    pres = (y[:, None, :] + noise).reshape(n_stim * r, n_sites)
    stim_index = np.repeat(np.arange(n_stim), r)
    rep = np.tile(np.arange(r), n_stim)
    order = rng.permutation(n_stim * r)
    pres, stim_index, rep = pres[order], stim_index[order], rep[order]
    data = pres[:, :, None]
    starts, ends = [TIME_BIN[0]], [TIME_BIN[1]]
    if distractor_bin:
        data = np.concatenate([rng.standard_normal(data.shape) * 10 + 100, data], axis=2)
        starts, ends = [0, *starts], [50, *ends]
    animal = np.where(np.arange(n_sites) % 2 == 0, "Chabo", "Tito")
    arr = np.where(regions == "V4", "M", "A")
    if neuroid_ids is None:
        neuroid_ids = [f"{a}_{b}_{i}" for i, (a, b) in enumerate(zip(animal, arr, strict=True))]
    presentation_coords = {
        "stimulus_id": np.asarray(st["stimulus_ids"], dtype=str)[stim_index],
        "repetition": rep,
        "object_name": np.asarray(st["object_name"], dtype=str)[stim_index],
        "category_name": np.asarray(st["category_name"], dtype=str)[stim_index],
        "variation": np.asarray(st["variation"])[stim_index],
    }
    neuroid_coords = {
        "neuroid_id": np.asarray(neuroid_ids, dtype=str),
        "region": regions,
        "animal": animal,
        "arr": arr,
    }
    return write_assembly(
        path,
        data,
        presentation_coords=presentation_coords,
        neuroid_coords=neuroid_coords,
        time_bin_start=starts,
        time_bin_end=ends,
        **writer_kwargs,
    )


# --------------------------------------------------------------------------- stimuli


@dataclasses.dataclass(frozen=True)
class SyntheticStimuli:
    """What :func:`write_stimulus_set` wrote; per-stimulus arrays in CSV (= generation) order."""

    stimulus_ids: np.ndarray
    category_name: np.ndarray
    object_name: np.ndarray
    variation: np.ndarray
    filenames: np.ndarray
    csv_path: str
    image_dir: str


def write_stimulus_set(
    out_dir,
    *,
    objects_per_category: int = 8,
    images_per_object: int = 4,
    variations: Sequence[int] = (0, 3, 6),
    size: int = 64,
    seed=0,
    legacy_columns: bool = False,
) -> SyntheticStimuli:
    """Write ``<out_dir>/stimulus_set.csv`` and ``<out_dir>/images/<stimulus_id>.png``.

    Each of the 8 :data:`CATEGORIES` x ``objects_per_category`` objects is drawn
    ``images_per_object`` times at each level of ``variations`` (grayscale, ``size`` x
    ``size`` px). Stimulus ids are 40-hex-digit SHA-1 strings, as in the real set.

    Parameters
    ----------
    out_dir : path
    objects_per_category, images_per_object : int
    variations : sequence of int
        Levels among 0, 3, 6 (no, medium, high jitter of position, scale and rotation).
    size : int
        Image side in pixels.
    seed : int or numpy.random.Generator
    legacy_columns : bool
        Write ``image_id`` / ``image_file_name`` (older brainio) instead of
        ``stimulus_id`` / ``filename``.

    Returns
    -------
    SyntheticStimuli
    """
    import pandas as pd
    from PIL import Image

    rng = make_rng(seed)
    bad = [v for v in variations if v not in _JITTER]
    if bad:
        raise InputError(f"write_stimulus_set: variations must be among {sorted(_JITTER)}, got {bad}.")
    out_dir = Path(out_dir)
    image_dir = out_dir / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    i = 0
    for c, category in enumerate(CATEGORIES):
        for o in range(int(objects_per_category)):
            for v in variations:
                for _ in range(int(images_per_object)):
                    sid = hashlib.sha1(f"brainalign-majajhong-{i}-{c}-{o}-{v}".encode()).hexdigest()
                    img = _draw(c, o, _JITTER[int(v)], int(size), rng)
                    fname = f"{sid}.png"
                    with atomic_path(image_dir / fname) as tmp:
                        Image.fromarray(img, mode="L").save(tmp, format="PNG")
                    rows.append((sid, category, f"{category.lower()}_{o}", int(v), fname))
                    i += 1
    columns = ["stimulus_id", "category_name", "object_name", "variation", "filename"]
    table = pd.DataFrame(rows, columns=columns)
    if legacy_columns:
        table = table.rename(columns={"stimulus_id": "image_id", "filename": "image_file_name"})
    csv_path = out_dir / "stimulus_set.csv"
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    cols = list(zip(*rows, strict=True))
    return SyntheticStimuli(
        stimulus_ids=np.asarray(cols[0], dtype=str),
        category_name=np.asarray(cols[1], dtype=str),
        object_name=np.asarray(cols[2], dtype=str),
        variation=np.asarray(cols[3], dtype=np.int64),
        filenames=np.asarray(cols[4], dtype=str),
        csv_path=str(csv_path),
        image_dir=str(image_dir),
    )


def _draw(category: int, obj: int, jitter: float, size: int, rng) -> np.ndarray:
    """One grayscale image: a category-specific polygon on a smooth random background."""
    from PIL import Image, ImageDraw

    coarse = rng.uniform(60, 160, size=(6, 6))
    bg = np.asarray(Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BILINEAR))
    img = Image.fromarray(bg.copy())
    # shape: category sets vertex count and star depth, object the radial modulation
    n_vert = 3 + category
    t = np.linspace(0, 2 * np.pi, 4 * n_vert, endpoint=False)
    radius = 1.0 - 0.45 * (np.arange(t.size) % 2) * ((category % 3) / 2)
    radius = radius * (1 + 0.25 * np.sin((obj + 1) * t + obj))
    scale = size * 0.3 * (1 + jitter * rng.uniform(-0.3, 0.3))
    angle = jitter * rng.uniform(-np.pi, np.pi)
    cx, cy = size / 2 + jitter * rng.uniform(-0.2, 0.2, size=2) * size
    pts = [
        (cx + scale * r * np.cos(a + angle), cy + scale * r * np.sin(a + angle))
        for r, a in zip(radius, t, strict=True)
    ]
    shade = 20 + 215 * ((category * 8 + obj) % 11) / 10
    ImageDraw.Draw(img).polygon(pts, fill=int(shade))
    return np.asarray(img, dtype=np.uint8)
