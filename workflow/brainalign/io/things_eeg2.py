"""THINGS-EEG2 (Gifford et al. 2022): the preprocessed EEG of one subject.

Layout under ``data_root`` (the folder the OSF downloads are unpacked into)::

    image_metadata.npy        pickled dict: train_img_files, train_img_concepts,
                              test_img_files, test_img_concepts (lists of str; entry i
                              describes image i of that split)
    training_images/<concept>/<file>   e.g. 00001_aardvark/aardvark_01b.jpg
    test_images/<concept>/<file>       e.g. 00001_aircraft_carrier/aircraft_carrier_06s.jpg
    preprocessed_data/sub-XX/preprocessed_eeg_training.npy
    preprocessed_data/sub-XX/preprocessed_eeg_test.npy
        pickled dict: preprocessed_eeg_data float64 (n_images, n_reps, 17, 100)
                      -- test (200, 80, 17, 100), training (16540, 4, 17, 100) --
                      ch_names (17 str), times float (100,) = -0.2, -0.19, ..., 0.79 s

Row i of ``preprocessed_eeg_data`` is image i of the split's metadata lists.

Safety: the ``.npy`` files are pickles, and ``np.load(..., allow_pickle=True)`` would run
any code a pickle names. They are read with a restricted unpickler
(:func:`brainalign.io._safe_pickle.load_npy_pickle`) that builds only dicts, lists, str,
numbers and numpy arrays and refuses every other global with
:class:`~brainalign.utils.InputError` before anything runs. In addition, only files whose
resolved path (symlinks and ``..`` followed) lies inside the resolved ``data_root`` are
opened. Keep ``data_root`` read-only to untrusted users.

Lu & Wang (2025) use the test split, the 17 occipito-parietal channels, 0-200 ms (20 samples
at 100 Hz) and the average of the 80 trials of each image: :func:`load_things_eeg2`'s defaults.
:func:`write_synthetic_things_eeg2` writes the same layout for tests and the demo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from brainalign.io._safe_pickle import load_npy_pickle
from brainalign.utils import InputError, atomic_path, check_option

__all__ = [
    "THINGS_EEG2_CHANNELS",
    "THINGS_EEG2_TIMES",
    "SPLITS",
    "load_things_eeg2",
    "load_image_metadata",
    "load_pickled_dict",
    "things_eeg2_paths",
    "write_synthetic_things_eeg2",
]

#: The 17 occipital and parietal channels of the preprocessed release, in file order.
THINGS_EEG2_CHANNELS = (
    "Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4",
    "PO8", "P6", "P2",
)
#: Epoch times of the preprocessed release: 100 samples at 100 Hz from -0.2 s.
THINGS_EEG2_TIMES = np.round(np.arange(-20, 80) * 0.01, 2)
#: Split names as in the file names; the metadata prefixes are "train" and "test".
SPLITS = ("training", "test")
_META_PREFIX = {"training": "train", "test": "test"}
_DATA_KEYS = ("preprocessed_eeg_data", "ch_names", "times")
_META_KEYS = ("train_img_files", "train_img_concepts", "test_img_files", "test_img_concepts")
_TIME_EPS = 1e-6  # s: tolerance of the window edges (samples are 10 ms apart)


# --------------------------------------------------------------------------- paths


def things_eeg2_paths(data_root, subject=None) -> dict[str, Path]:
    """Paths of the release under ``data_root`` (existing or not).

    Keys: ``metadata``, ``images/training``, ``images/test`` and, with ``subject``,
    ``eeg/training`` and ``eeg/test``.
    """
    root = Path(data_root)
    paths = {
        "metadata": root / "image_metadata.npy",
        "images/training": root / "training_images",
        "images/test": root / "test_images",
    }
    if subject is not None:
        sub = root / "preprocessed_data" / _subject_dir(subject)
        for split in SPLITS:
            paths[f"eeg/{split}"] = sub / f"preprocessed_eeg_{split}.npy"
    return paths


def _subject_dir(subject) -> str:
    """1 or "sub-01" -> "sub-01"."""
    if isinstance(subject, str | np.str_):
        match = re.fullmatch(r"sub-(\d+)", str(subject))
        if match is None:
            raise InputError(f"subject {subject!r}: expected an int >= 1 or a name like 'sub-01'.")
        subject = int(match.group(1))
    if isinstance(subject, bool) or not isinstance(subject, int | np.integer) or subject < 1:
        raise InputError(f"subject {subject!r}: expected an int >= 1 or a name like 'sub-01'.")
    return f"sub-{int(subject):02d}"


# --------------------------------------------------------------------------- safe loading


def load_pickled_dict(path, data_root, required=()) -> dict:
    """The dict pickled in a ``.npy`` file inside ``data_root``, read without running code.

    Same result as ``np.load(path, allow_pickle=True).item()``, but the pickle is read by
    :func:`~brainalign.io._safe_pickle.load_npy_pickle`, which refuses any global other
    than the builtins and numpy array/dtype constructors the release needs. ``path`` and
    ``data_root`` are resolved (symlinks and ``..`` followed) first; a file that resolves
    outside ``data_root`` is refused too. Every key in ``required`` must be present.

    Raises
    ------
    InputError
        ``data_root`` missing, ``path`` outside it or missing, not a ``.npy`` file, a
        pickle naming a refused global (e.g. ``posix.system``), not a pickled dict, or a
        required key missing.
    """
    root = Path(data_root)
    if not root.is_dir():
        raise InputError(f"THINGS-EEG2 data_root not found or not a folder: {root}.")
    root = root.resolve(strict=True)
    path = Path(path)
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise InputError(
            f"{path} resolves to {resolved}, outside the configured THINGS-EEG2 data_root "
            f"{root}; refusing to unpickle it (pickled .npy files run code when loaded). "
            "Copy the file under data_root instead of linking to it."
        )
    if not resolved.is_file():
        raise InputError(f"THINGS-EEG2 file not found: {path}.")
    try:
        obj = load_npy_pickle(resolved, name=path)
    except InputError:  # a refused global: the message names the file and the global
        raise
    except Exception as err:  # any failure means "not a readable .npy"
        raise InputError(f"{path}: cannot read as a .npy file ({err}).") from err
    if not isinstance(obj, np.ndarray) or obj.shape != () or obj.dtype != object \
            or not isinstance(obj.item(), dict):
        what = type(obj).__name__ if not isinstance(obj, np.ndarray) else \
            f"array of {obj.dtype} with shape {obj.shape}"
        raise InputError(f"{path}: holds a {what}; expected a pickled dict (a 0-d object array).")
    out = obj.item()
    missing = [k for k in required if k not in out]
    if missing:
        raise InputError(
            f"{path}: missing keys {', '.join(missing)}; expected {', '.join(required)} "
            f"(found {', '.join(map(str, out))})."
        )
    return out


# --------------------------------------------------------------------------- metadata


def load_image_metadata(data_root) -> dict[str, np.ndarray]:
    """The image lists of ``<data_root>/image_metadata.npy``.

    Returns
    -------
    dict with ``train_img_files``, ``train_img_concepts``, ``test_img_files``,
    ``test_img_concepts``: str arrays; entry i of a split describes image i of that split
    (its file is ``<split>_images/<concept>/<file>``).

    Raises
    ------
    InputError
        See :func:`load_pickled_dict`; a list that is not 1-D str, files and concepts of
        different lengths, or a file name listed twice within a split.
    """
    path = things_eeg2_paths(data_root)["metadata"]
    meta = load_pickled_dict(path, data_root, required=_META_KEYS)
    out = {}
    for key in _META_KEYS:
        arr = np.asarray(meta[key])
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "UO"):
            raise InputError(f"{path}: {key!r} is {arr.dtype} {arr.shape}; expected a list of str.")
        out[key] = arr.astype(str)
    for prefix in ("train", "test"):
        n_files, n_concepts = len(out[f"{prefix}_img_files"]), len(out[f"{prefix}_img_concepts"])
        if n_files != n_concepts:
            raise InputError(
                f"{path}: {prefix}_img_files has {n_files} entries but {prefix}_img_concepts "
                f"has {n_concepts}; expected one concept per image."
            )
        dup = _first_duplicate(out[f"{prefix}_img_files"])
        if dup is not None:
            name, i, j = dup
            raise InputError(
                f"{path}: {prefix}_img_files holds {name!r} twice (entries {i} and {j}); "
                "expected one distinct file per image (THINGS file names are unique)."
            )
    return out


def _first_duplicate(names: np.ndarray) -> tuple[str, int, int] | None:
    """(name, first position, second position) of the first repeated name, or None."""
    seen: dict[str, int] = {}
    for j, name in enumerate(names.tolist()):
        if name in seen:
            return name, seen[name], j
        seen[name] = j
    return None


# --------------------------------------------------------------------------- reader


def load_things_eeg2(
    data_root,
    subject,
    *,
    split: str = "test",
    channels: Sequence[str] | None = None,
    tmin: float = 0.0,
    tmax: float = 0.2,
    average_trials: bool = True,
) -> dict:
    """Preprocessed EEG of one THINGS-EEG2 subject, cut to channels and a time window.

    Parameters
    ----------
    data_root : path
        Folder holding ``image_metadata.npy`` and ``preprocessed_data/`` (module docstring).
    subject : int or str
        1..10 or ``"sub-01"``.
    split : {'test', 'training'}
    channels : sequence of str, optional
        Channel names to keep, in the order given; None keeps every channel in file order.
    tmin, tmax : float
        Window in seconds, start inclusive and end exclusive: samples with
        ``tmin <= t < tmax`` (edges within 1 us count as equal). The defaults give the 20
        samples 0.00..0.19 s. ``tmin`` must not precede the first sample and ``tmax`` must
        not pass one sample step after the last.
    average_trials : bool
        True: mean over the repetitions of each image.

    Returns
    -------
    dict with
        ``data`` float64 (n_images, n_channels, n_times), or (n_images, n_reps,
        n_channels, n_times) with ``average_trials=False``;
        ``times`` float64 (n_times,); ``ch_names`` str (n_channels,);
        ``image_files``, ``concepts``, ``image_paths`` str (n_images,) -- row i = image i;
        ``subject`` ("sub-XX"), ``split``.

    Raises
    ------
    InputError
        Missing or unsafe files (see :func:`load_pickled_dict`), missing keys, a data array
        that is not 4-D or disagrees with ``ch_names``, ``times`` or the metadata's image
        count, duplicate channel names or image file names, unknown channel names (the
        message lists the valid ones), a window outside ``times`` or empty, NaN/inf in the
        selected data.
    """
    check_option("split", split, SPLITS)
    tmin, tmax = float(tmin), float(tmax)
    paths = things_eeg2_paths(data_root, subject)
    meta = load_image_metadata(data_root)
    prefix = _META_PREFIX[split]
    files = meta[f"{prefix}_img_files"]
    concepts = meta[f"{prefix}_img_concepts"]

    path = paths[f"eeg/{split}"]
    raw = load_pickled_dict(path, data_root, required=_DATA_KEYS)
    data = np.asarray(raw["preprocessed_eeg_data"])
    ch_names = np.asarray(raw["ch_names"]).astype(str)
    times = np.asarray(raw["times"], dtype=np.float64)
    if data.ndim != 4 or data.dtype.kind not in "fiu":
        raise InputError(
            f"{path}: preprocessed_eeg_data is {data.dtype} with shape {data.shape}; expected a "
            "float array (n_images, n_reps, n_channels, n_times), e.g. test (200, 80, 17, 100)."
        )
    n_images, _, n_ch, n_t = data.shape
    if ch_names.shape != (n_ch,) or times.shape != (n_t,):
        raise InputError(
            f"{path}: ch_names has shape {ch_names.shape} and times {times.shape}, but "
            f"preprocessed_eeg_data {data.shape} has {n_ch} channels and {n_t} time points."
        )
    dup = _first_duplicate(ch_names)
    if dup is not None:
        name, i, j = dup
        raise InputError(
            f"{path}: ch_names holds {name!r} twice (positions {i} and {j}); expected distinct "
            "channel names (selecting a channel by name would be ambiguous)."
        )
    if n_images != len(files):
        raise InputError(
            f"{path}: preprocessed_eeg_data has {n_images} images but "
            f"{paths['metadata']} lists {len(files)} {prefix}_img_files; expected one row per "
            "image of the split."
        )
    if n_t > 1 and not np.all(np.diff(times) > 0):
        raise InputError(f"{path}: times must increase strictly.")

    ch_idx = _channel_index(channels, ch_names, path)
    t_idx = _time_index(times, tmin, tmax, path)
    out = data[:, :, ch_idx][..., t_idx].astype(np.float64, copy=False)
    if not np.all(np.isfinite(out)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise InputError(
            f"{path}: {int((~np.isfinite(out)).sum())} non-finite values (NaN or inf) in the "
            f"selected channels and window, first at (image, rep, channel, time) = {bad}; "
            "expected finite EEG."
        )
    if average_trials:
        out = out.mean(axis=1)
    image_dir = paths[f"images/{split}"]
    return {
        "data": out,
        "times": times[t_idx],
        "ch_names": ch_names[ch_idx],
        "image_files": files,
        "concepts": concepts,
        "image_paths": np.array([str(image_dir / c / f) for c, f in zip(concepts, files,
                                                                          strict=True)]),
        "subject": _subject_dir(subject),
        "split": split,
    }


def _channel_index(channels, ch_names: np.ndarray, path: Path) -> np.ndarray:
    if channels is None:
        return np.arange(len(ch_names))
    channels = [channels] if isinstance(channels, str) else list(channels)
    if not channels:
        raise InputError("channels is empty; expected channel names or None for all.")
    lookup = {name: i for i, name in enumerate(ch_names)}
    unknown = [c for c in channels if c not in lookup]
    if unknown:
        raise InputError(
            f"{path}: unknown channel names {unknown}; valid names are {', '.join(ch_names)}."
        )
    if len(set(channels)) != len(channels):
        raise InputError(f"channels {channels} holds duplicates; expected distinct names.")
    return np.array([lookup[c] for c in channels], dtype=np.int64)


def _time_index(times: np.ndarray, tmin: float, tmax: float, path: Path) -> np.ndarray:
    if not (np.isfinite(tmin) and np.isfinite(tmax)) or tmin >= tmax:
        raise InputError(f"Time window [{tmin}, {tmax}) is empty; expected tmin < tmax.")
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    first, end = float(times[0]), float(times[-1]) + step
    if tmin < first - _TIME_EPS or tmax > end + _TIME_EPS:
        raise InputError(
            f"{path}: time window [{tmin}, {tmax}) s lies outside the epoch; times run "
            f"{first:g}..{float(times[-1]):g} s, so tmin >= {first:g} and tmax <= {end:g}."
        )
    idx = np.flatnonzero((times >= tmin - _TIME_EPS) & (times < tmax - _TIME_EPS))
    if idx.size == 0:
        raise InputError(
            f"{path}: time window [{tmin}, {tmax}) s holds no sample (samples every "
            f"{step:g} s); widen it."
        )
    return idx


# --------------------------------------------------------------------------- writer


def write_synthetic_things_eeg2(
    data_root,
    *,
    data_by_subject: Mapping,
    ch_names: Sequence[str] = THINGS_EEG2_CHANNELS,
    times=None,
    image_files: Mapping[str, Sequence[str]] | None = None,
    concepts: Mapping[str, Sequence[str]] | None = None,
    n_images_other_split: int = 4,
    images: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write the THINGS-EEG2 layout (module docstring) from planted EEG.

    Parameters
    ----------
    data_root : path
        Output folder.
    data_by_subject : dict subject -> array or dict split -> array
        Subject (int or "sub-XX") -> float (n_images, n_reps, n_channels, n_times) for the
        test split, or a dict ``{"test": ..., "training": ...}``. Every subject must have
        the same image count per split.
    ch_names : sequence of str
        Channel names (default: the 17 of the release).
    times : array (n_times,), optional
        Default :data:`THINGS_EEG2_TIMES` (-0.2..0.79 s).
    image_files, concepts : dict split -> list of str, optional
        Metadata lists; default ``"{i+1:05d}_concept{i+1:05d}"`` concepts with files
        ``"concept{i+1:05d}_01s.jpg"`` (test) or ``"..._01b.jpg"`` (training).
    n_images_other_split : int
        Metadata entries generated for a split no subject has data for.
    images : dict split -> uint8 array (n_images, H, W, 3), optional
        Write the images as JPEG files at ``<split>_images/<concept>/<file>``.
    """
    root = Path(data_root)
    per_subject = _check_data(data_by_subject)
    ch_names = [str(c) for c in ch_names]
    times = THINGS_EEG2_TIMES.copy() if times is None else np.asarray(times, dtype=np.float64)
    n_images = {}
    for sub, arrays in per_subject.items():
        for split, arr in arrays.items():
            if arr.shape[2:] != (len(ch_names), len(times)):
                raise InputError(
                    f"data_by_subject[{sub!r}][{split!r}] has shape {arr.shape}; expected "
                    f"(n_images, n_reps, {len(ch_names)}, {len(times)}) to match ch_names and times."
                )
            if n_images.setdefault(split, arr.shape[0]) != arr.shape[0]:
                raise InputError(
                    f"data_by_subject[{sub!r}][{split!r}] has {arr.shape[0]} images but another "
                    f"subject has {n_images[split]}; a split has one image list for all subjects."
                )

    meta = {}
    for split in SPLITS:
        prefix = _META_PREFIX[split]
        n = n_images.get(split, int(n_images_other_split))
        tag = "s" if split == "test" else "b"
        default_concepts = [f"{i + 1:05d}_concept{i + 1:05d}" for i in range(n)]
        default_files = [f"concept{i + 1:05d}_01{tag}.jpg" for i in range(n)]
        files = list((image_files or {}).get(split, default_files))
        conc = list((concepts or {}).get(split, default_concepts))
        if len(files) != n or len(conc) != n:
            raise InputError(
                f"image_files/concepts for {split!r} have {len(files)}/{len(conc)} entries; "
                f"expected {n}, the image count of the data."
            )
        meta[f"{prefix}_img_files"] = [str(f) for f in files]
        meta[f"{prefix}_img_concepts"] = [str(c) for c in conc]
    _save_pickled(things_eeg2_paths(root)["metadata"], meta)

    for sub, arrays in per_subject.items():
        paths = things_eeg2_paths(root, sub)
        for split, arr in arrays.items():
            _save_pickled(paths[f"eeg/{split}"], {
                "preprocessed_eeg_data": arr,
                "ch_names": list(ch_names),
                "times": times,
            })

    for split, imgs in (images or {}).items():
        _write_images(things_eeg2_paths(root)[f"images/{split}"], imgs, meta, split)


def _check_data(data_by_subject) -> dict[str, dict[str, np.ndarray]]:
    if not isinstance(data_by_subject, Mapping) or not data_by_subject:
        raise InputError("data_by_subject must be a non-empty dict {subject: array}.")
    out: dict[str, dict[str, np.ndarray]] = {}
    for sub, value in data_by_subject.items():
        name = _subject_dir(sub)
        arrays = dict(value) if isinstance(value, Mapping) else {"test": value}
        out[name] = {}
        for split, arr in arrays.items():
            check_option("split", split, SPLITS)
            arr = np.asarray(arr, dtype=np.float64)
            if arr.ndim != 4 or min(arr.shape) < 1:
                raise InputError(
                    f"data_by_subject[{sub!r}][{split!r}] has shape {arr.shape}; expected "
                    "(n_images, n_reps, n_channels, n_times)."
                )
            out[name][split] = arr
    return out


def _save_pickled(path: Path, obj: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.array(obj, dtype=object), allow_pickle=True)


def _write_images(folder: Path, imgs, meta: dict, split: str) -> None:
    from PIL import Image

    prefix = _META_PREFIX[split]
    files, concepts = meta[f"{prefix}_img_files"], meta[f"{prefix}_img_concepts"]
    imgs = np.asarray(imgs)
    if imgs.dtype != np.uint8 or imgs.ndim != 4 or imgs.shape[0] != len(files) or imgs.shape[3] != 3:
        raise InputError(
            f"images[{split!r}] must be uint8 with shape ({len(files)}, H, W, 3), got "
            f"{imgs.dtype} {imgs.shape}."
        )
    for img, concept, file in zip(imgs, concepts, files, strict=True):
        with atomic_path(folder / concept / file) as tmp:
            Image.fromarray(img).save(tmp, format="JPEG", quality=95)
