"""MEG epochs: read them as one array per subject/session and preprocess them as Cichy et al.

Every reader returns an :class:`MEGData`: ``data`` of shape
``(n_conditions, n_trials, n_channels, n_times)`` plus ``times`` (s), ``ch_names`` and the
condition ids, in the order of axis 0. Two file formats are read (SPEC, "Data formats", MEG):

- :func:`read_meg_epochs`: an MNE epochs file ``*-epo.fif`` (read with
  :func:`mne.read_epochs`); the condition of a trial is its event code ``events[:, 2]``;
- :func:`read_meg_array`: a plain ``.npz`` with ``data``, ``times`` and optionally
  ``ch_names`` and ``conditions`` (written by :func:`write_meg_array`).

:func:`preprocess` applies the three steps of Cichy et al. (2016, Sci Rep, "MEG
acquisition": "removed baseline mean, smoothed data with a 20 ms sliding window and
normalized each channel with its baseline standard deviation"), each one switchable.
:func:`check_same_channels` and :func:`concatenate_trials` combine sessions safely.

:func:`write_synthetic_epochs` writes a real ``-epo.fif`` (via :class:`mne.EpochsArray`)
from a 4-D array, with the trials in a seeded random order, for tests and the demo;
:func:`read_meg_epochs` reads the array back (to float32 precision: FIF stores single).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter1d

from brainalign.utils import InputError, atomic_path, check_finite, check_option, make_rng

__all__ = [
    "MEGData",
    "read_meg_epochs",
    "read_meg_array",
    "write_meg_array",
    "write_synthetic_epochs",
    "check_same_channels",
    "concatenate_trials",
    "preprocess",
    "baseline_mask",
    "smooth_window_samples",
]

_NPZ_REQUIRED = ("data", "times")
_NPZ_OPTIONAL = ("ch_names", "conditions")
_PICKS = ("meg", "grad", "mag", "all")
_WRITE_CH_TYPES = ("grad", "mag", "eeg", "eog", "ecg", "misc", "stim")
_NEUROMAG_TRIPLET = ("grad", "grad", "mag")  # 204 planar gradiometers + 102 magnetometers
_SMOOTH_EDGES = ("shrink", "reflect", "nearest")
_STD_SCOPES = ("channel", "trial")
_TIME_TOL = 1e-3  # tolerance on time stamps, as a fraction of the sampling step
_MAX_SYNTHETIC_BYTES = 1_900_000_000  # MNE splits FIF files above 2 GB; keep one file
_EPO_SUFFIX = "-epo.fif"


@dataclass
class MEGData:
    """Epoched MEG of one subject (or session), grouped by condition.

    Attributes
    ----------
    data : ndarray of float, shape (n_conditions, n_trials, n_channels, n_times)
        ``data[c, t]`` is trial ``t`` of condition ``conditions[c]`` (trials in file order).
        Units as in the file (MNE: T for magnetometers, T/m for gradiometers).
    times : ndarray of float64, shape (n_times,)
        Time of each sample in seconds relative to stimulus onset; regularly spaced.
    ch_names : list of str, length n_channels
    conditions : ndarray, shape (n_conditions,)
        Condition id of each row of ``data`` (event codes for FIF files).

    The constructor checks that the shapes agree, that ids and names are unique and that
    ``times`` is regularly sampled (:class:`InputError` otherwise); it does not scan
    ``data`` for NaN (the readers do).
    """

    data: np.ndarray
    times: np.ndarray
    ch_names: list[str]
    conditions: np.ndarray

    def __post_init__(self):
        data = np.asarray(self.data)
        if data.ndim != 4:
            raise InputError(
                f"MEGData: data has shape {data.shape}; expected 4-D "
                "(n_conditions, n_trials, n_channels, n_times)."
            )
        if data.dtype.kind not in "iuf":
            raise InputError(f"MEGData: data has dtype {data.dtype}; expected real numbers.")
        if data.dtype.kind != "f":
            data = data.astype(np.float64)
        self.data = data
        self.times = _check_times(self.times, data.shape[3], "MEGData: times")
        self.ch_names = _check_ch_names(self.ch_names, data.shape[2], "MEGData: ch_names")
        self.conditions = _check_conditions(self.conditions, data.shape[0], "MEGData: conditions")

    @property
    def sfreq(self) -> float:
        """Sampling rate in Hz, from ``times``."""
        return 1.0 / _time_step(self.times)


# --------------------------------------------------------------------------- FIF reader


def read_meg_epochs(
    path,
    *,
    conditions: Sequence | None = None,
    n_trials: int | None = None,
    picks: str | Sequence[str] = "meg",
    dtype=np.float64,
) -> MEGData:
    """Read an MNE epochs file (``*-epo.fif``) as trials grouped by condition.

    Parameters
    ----------
    path : path
        The ``-epo.fif`` file, read with ``mne.read_epochs(path, preload=True)``
        (stored SSP projectors are applied, MNE's default).
    conditions : sequence of int or str, optional
        Condition ids (event codes, ``events[:, 2]``) to return, in this order; a str is
        looked up in the file's ``event_id``. Default: every code in the file, ascending.
        Use it to leave out catch trials (e.g. Cichy's paper-clip images).
    n_trials : int, optional
        Use the first ``n_trials`` trials of each condition in file order. Default: all
        trials, which must then be equally many in every condition.
    picks : {'meg', 'grad', 'mag', 'all'} or sequence of str
        ``'meg'`` (default): gradiometers and magnetometers; ``'grad'``/``'mag'``: one
        sensor type; in these three, channels marked bad in ``info['bads']`` are left out
        (MNE's convention). ``'all'``: every channel, bad or not. A sequence: exactly these
        channel names, in this order. Channels are otherwise in file order.
    dtype : numpy float dtype
        dtype of the returned ``data`` (MNE holds float64; float32 halves the copy).

    Returns
    -------
    MEGData
        ``conditions`` as int64 event codes.

    Notes
    -----
    MNE holds the whole file in float64 while the array is filled condition by condition:
    Cichy's 118 conditions x 30 trials x 306 channels x 1101 samples take 9.5 GB in MNE
    plus the returned copy (4.8 GB as float32).

    Raises
    ------
    InputError
        Missing or unreadable file; requested conditions not in the file; unequal trial
        counts (without ``n_trials``) or a condition with fewer than ``n_trials`` trials;
        unknown channel names; no channel picked; NaN or inf in the picked data.
    """
    import mne

    path = Path(path)
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise InputError(f"dtype must be a float dtype, got {dtype}.")
    if n_trials is not None:
        n_trials = _check_positive_int("n_trials", n_trials)
    if not path.is_file():
        raise InputError(f"MEG epochs file not found: {path}; expected an MNE *-epo.fif file.")
    try:
        epochs = mne.read_epochs(path, preload=True, verbose=False)
    except Exception as err:  # MNE raises many types on corrupt files
        raise InputError(
            f"{path}: cannot read as MNE epochs (*-epo.fif) ({type(err).__name__}: {err}); "
            "the file may be truncated or not an epochs file."
        ) from err

    codes = np.asarray(epochs.events[:, 2], dtype=np.int64)
    present = np.unique(codes)
    if conditions is None:
        wanted = present
    else:
        wanted = _resolve_conditions(conditions, epochs.event_id, path)
        missing = [int(c) for c in wanted if c not in present]
        if missing:
            raise InputError(
                f"{path}: requested conditions {missing} have no trials in the file; its "
                f"conditions (events[:, 2]) are {_short_list(present.tolist())}."
            )
    trial_idx = _trials_per_condition(codes, wanted, n_trials, path)
    pick_idx = _pick_channels(epochs.info, picks, path)

    n_cond, n_tr = len(wanted), len(trial_idx[0])
    out = np.empty((n_cond, n_tr, len(pick_idx), len(epochs.times)), dtype=dtype)
    for c, idx in enumerate(trial_idx):  # one condition at a time: one extra copy at most
        out[c] = epochs.get_data(picks=pick_idx, item=idx, copy=False)
    check_finite(out, f"{path}: epochs data")
    return MEGData(
        data=out,
        times=np.asarray(epochs.times, dtype=np.float64),
        ch_names=[epochs.ch_names[i] for i in pick_idx],
        conditions=wanted.astype(np.int64),
    )


def _resolve_conditions(conditions, event_id: dict, path: Path) -> np.ndarray:
    if isinstance(conditions, (str, int, np.integer)):
        conditions = [conditions]
    out = []
    for c in conditions:
        if isinstance(c, str):
            if c not in event_id:
                raise InputError(
                    f"{path}: condition name {c!r} is not in the file's event_id "
                    f"({_short_list(sorted(event_id))}); pass event codes or one of these names."
                )
            out.append(int(event_id[c]))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            out.append(int(c))
        else:
            raise InputError(f"conditions must hold int event codes or event names, got {c!r}.")
    if not out:
        raise InputError("conditions is empty; expected one or more condition ids.")
    dup = sorted({c for c in out if out.count(c) > 1})
    if dup:
        raise InputError(f"conditions lists {dup} more than once; expected distinct ids.")
    return np.asarray(out, dtype=np.int64)


def _trials_per_condition(codes, wanted, n_trials, path) -> list[np.ndarray]:
    idx = [np.flatnonzero(codes == c) for c in wanted]
    counts = {int(c): len(i) for c, i in zip(wanted, idx, strict=True)}
    if n_trials is None:
        if len(set(counts.values())) > 1:
            raise InputError(
                f"{path}: conditions have unequal trial counts ({_count_summary(counts)}); "
                "pass n_trials to use the first n_trials trials of each condition in file order."
            )
        return idx
    short = {c: n for c, n in counts.items() if n < n_trials}
    if short:
        raise InputError(
            f"{path}: n_trials={n_trials} but condition(s) {_short_list(list(short))} have "
            f"fewer trials ({_count_summary(short)})."
        )
    return [i[:n_trials] for i in idx]


def _count_summary(counts: dict[int, int]) -> str:
    by_count: dict[int, list[int]] = {}
    for c, n in counts.items():
        by_count.setdefault(n, []).append(c)
    parts = [f"{n} trials: conditions {_short_list(cs)}" for n, cs in sorted(by_count.items())]
    return "; ".join(parts)


def _pick_channels(info, picks, path: Path) -> list[int]:
    import mne

    if isinstance(picks, str):
        check_option("picks", picks, _PICKS)
        if picks == "all":
            idx = list(range(len(info["ch_names"])))
        else:
            meg = True if picks == "meg" else picks
            idx = [int(i) for i in mne.pick_types(info, meg=meg, exclude="bads")]
        if not idx:
            raise InputError(
                f"{path}: picks={picks!r} selects no channel (channel types in the file: "
                f"{sorted(set(info.get_channel_types()))}); use picks='all' or a list of names."
            )
        return idx
    names = list(picks)
    if not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"picks must be 'meg', 'grad', 'mag', 'all' or a list of channel names, "
                         f"got {picks!r}.")
    if len(set(names)) != len(names):
        raise InputError(f"picks lists a channel more than once: {names}.")
    where = {n: i for i, n in enumerate(info["ch_names"])}
    unknown = [n for n in names if n not in where]
    if unknown:
        raise InputError(f"{path}: channels {_short_list(unknown)} are not in the file.")
    return [where[n] for n in names]


# --------------------------------------------------------------------------- npz reader/writer


def read_meg_array(path) -> MEGData:
    """Read MEG epochs from a plain ``.npz`` file.

    Keys: ``data`` (n_conditions, n_trials, n_channels, n_times), real numbers;
    ``times`` (n_times,) seconds, regularly spaced; optional ``ch_names`` (n_channels,)
    string array (default ``'ch000'``, ``'ch001'``, ...) and ``conditions``
    (n_conditions,) distinct ints or strings (default ``1..n_conditions``, like event
    codes). No other key is allowed (a typo would otherwise silently fall back to the
    defaults). Loaded with ``allow_pickle=False``.

    Raises
    ------
    InputError
        Missing file, not an npz, missing or unknown keys, wrong ndim or lengths, NaN or
        inf in ``data`` or ``times``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"MEG array file not found: {path}; expected an .npz file.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:  # not a zip/npy, truncated, ...
        raise InputError(f"{path}: cannot read as an .npz archive ({type(err).__name__}: {err}).") \
            from err
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: holds a single array; expected an .npz archive with keys "
                         "'data' and 'times', optionally 'ch_names' and 'conditions'.")
    with loaded as npz:
        keys = set(npz.files)
        missing = [k for k in _NPZ_REQUIRED if k not in keys]
        unknown = sorted(keys - set(_NPZ_REQUIRED + _NPZ_OPTIONAL))
        if missing or unknown:
            raise InputError(
                f"{path}: keys {sorted(keys)}; missing {missing}, unexpected {unknown}. "
                "Expected 'data' and 'times', optionally 'ch_names' and 'conditions'."
            )
        arrays = {k: _npz_get(npz, k, path) for k in npz.files}

    data = arrays["data"]
    if data.ndim != 4:
        raise InputError(
            f"{path}: 'data' has shape {data.shape}; expected 4-D "
            "(n_conditions, n_trials, n_channels, n_times)."
        )
    if data.dtype.kind not in "iuf":
        raise InputError(f"{path}: 'data' has dtype {data.dtype}; expected real numbers.")
    check_finite(data, f"{path}: 'data'")
    n_cond, _, n_ch, n_times = data.shape
    times = _check_times(arrays["times"], n_times, f"{path}: 'times'")
    ch_names = arrays.get("ch_names")
    if ch_names is None:
        ch_names = [f"ch{i:03d}" for i in range(n_ch)]
    conditions = arrays.get("conditions")
    if conditions is None:
        conditions = np.arange(1, n_cond + 1)
    return MEGData(
        data=data,
        times=times,
        ch_names=_check_ch_names(ch_names, n_ch, f"{path}: 'ch_names'"),
        conditions=_check_conditions(conditions, n_cond, f"{path}: 'conditions'"),
    )


def _npz_get(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as err:  # object arrays with allow_pickle=False
        raise InputError(
            f"{path}: {key!r} is stored as a pickled object array ({err}); store strings as a "
            "numpy string array, e.g. np.array(names, dtype=str)."
        ) from err
    except Exception as err:  # corrupt member
        raise InputError(f"{path}: cannot read {key!r} ({type(err).__name__}: {err}).") from err


def write_meg_array(path, meg: MEGData) -> None:
    """Write ``meg`` as the ``.npz`` that :func:`read_meg_array` reads (uncompressed)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise InputError(f"{path}: MEG array files must end with .npz.")
    with atomic_path(path) as tmp:
        np.savez(tmp, data=meg.data, times=meg.times, ch_names=np.asarray(meg.ch_names, dtype=str),
                 conditions=np.asarray(meg.conditions))


# --------------------------------------------------------------------------- synthetic FIF writer


def write_synthetic_epochs(
    path,
    data,
    times,
    *,
    ch_names: Sequence[str] | None = None,
    conditions: Sequence[int] | None = None,
    sfreq: float | None = None,
    ch_types: str | Sequence[str] | None = None,
    seed=0,
) -> None:
    """Write a real MNE ``-epo.fif`` holding ``data``, trials in a seeded random order.

    Parameters
    ----------
    path : path
        Must end with ``-epo.fif`` (MNE's naming convention).
    data : array, shape (n_conditions, n_trials, n_channels, n_times)
        Finite real numbers (stored as float32, FIF's default "single" format).
    times : array, shape (n_times,)
        Seconds, regularly spaced, with ``times[0]`` a whole number of samples (MNE stores
        the first sample's index, so other offsets could not be read back).
    ch_names : sequence of str, optional
        Default ``'MEG0001'``, ``'MEG0002'``, ...
    conditions : sequence of int, optional
        Distinct event codes written to ``events[:, 2]``; default ``1..n_conditions``.
    sfreq : float, optional
        Sampling rate; default ``1 / step of times``. Must agree with ``times``.
    ch_types : str or sequence of str, optional
        Channel types for :func:`mne.create_info`; default the Neuromag triplet pattern
        ``grad, grad, mag`` repeated (306 channels -> 204 grad + 102 mag).
    seed : int
        Seed of the trial order.

    Notes
    -----
    The trials of all conditions are interleaved in a seeded random order; within a
    condition they keep their order, so that :func:`read_meg_epochs` (which groups trials
    by condition in file order) returns ``data``. Events sit at increasing samples, one
    epoch length apart.
    """
    import mne

    path = Path(path)
    if not path.name.endswith(_EPO_SUFFIX):
        raise InputError(f"{path}: MNE epochs files must end with {_EPO_SUFFIX!r}.")
    data = np.asarray(data)
    if data.ndim != 4 or data.dtype.kind not in "iuf" or data.size == 0:
        raise InputError(
            f"data must be a non-empty real 4-D array (n_conditions, n_trials, n_channels, "
            f"n_times), got dtype {data.dtype} and shape {data.shape}."
        )
    check_finite(data, "data")
    if data.size * 4 > _MAX_SYNTHETIC_BYTES:
        raise InputError(f"data takes {data.size * 4} bytes as float32; synthetic files are kept "
                         f"under {_MAX_SYNTHETIC_BYTES} bytes so MNE does not split them.")
    n_cond, n_tr, n_ch, n_times = data.shape
    times = _check_times(times, n_times, "times")
    step = _time_step(times)
    if sfreq is None:
        sfreq = 1.0 / step
    sfreq = float(sfreq)
    if not sfreq > 0 or abs(sfreq * step - 1.0) > _TIME_TOL:
        raise InputError(f"sfreq={sfreq} does not match the step of times ({step} s).")
    first = times[0] * sfreq
    if abs(first - round(first)) > _TIME_TOL:
        raise InputError(
            f"times[0]={times[0]} s is not a whole number of samples at {sfreq} Hz; MNE would "
            "shift it. Use times = k / sfreq + arange(n_times) / sfreq for an integer k."
        )
    if ch_names is None:
        ch_names = [f"MEG{i + 1:04d}" for i in range(n_ch)]
    ch_names = _check_ch_names(ch_names, n_ch, "ch_names")
    if conditions is None:
        conditions = np.arange(1, n_cond + 1)
    conditions = _check_conditions(conditions, n_cond, "conditions")
    if conditions.dtype.kind not in "iu":
        raise InputError(f"conditions must be integer event codes, got dtype {conditions.dtype}.")
    if ch_types is None:
        ch_types = [_NEUROMAG_TRIPLET[i % 3] for i in range(n_ch)]
    elif isinstance(ch_types, str):
        ch_types = [ch_types] * n_ch
    ch_types = list(ch_types)
    if len(ch_types) != n_ch:
        raise InputError(f"ch_types has {len(ch_types)} entries; expected {n_ch} (one per channel).")
    for t in ch_types:
        check_option("ch_types", t, _WRITE_CH_TYPES)

    # Interleave conditions at random; keep each condition's trials in order.
    rng = make_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(n_cond), n_tr))
    slot = np.argsort(labels, kind="stable")  # slot[c * n_tr + t] = file position of (c, t)
    file_data = np.empty((n_cond * n_tr, n_ch, n_times), dtype=np.float64)
    file_data[slot] = data.reshape(n_cond * n_tr, n_ch, n_times)
    events = np.column_stack([
        (np.arange(n_cond * n_tr) + 1) * n_times,
        np.zeros(n_cond * n_tr, dtype=np.int64),
        conditions[labels],
    ]).astype(np.int64)
    info = mne.create_info(ch_names, sfreq, ch_types, verbose=False)
    epochs = mne.EpochsArray(
        file_data, info, events, tmin=float(round(first)) / sfreq,
        event_id={str(int(c)): int(c) for c in conditions}, baseline=None, verbose=False,
    )
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the temporary name does not end with -epo.fif; the final one does (checked above)
        warnings.filterwarnings("ignore", message=".*does not conform to MNE naming", category=RuntimeWarning)
        epochs.save(tmp, overwrite=True, verbose=False)


# --------------------------------------------------------------------------- combining


def check_same_channels(a, b, *, what_a: str = "first", what_b: str = "second") -> None:
    """Raise :class:`InputError` unless ``a`` and ``b`` have the same channels in the same order.

    ``a`` and ``b`` are :class:`MEGData` or sequences of channel names; ``what_a`` and
    ``what_b`` name them in the message (e.g. the file paths). The message lists the
    channels found in only one of them, or the first position where the order differs.
    """
    names_a = list(a.ch_names if isinstance(a, MEGData) else a)
    names_b = list(b.ch_names if isinstance(b, MEGData) else b)
    if names_a == names_b:
        return
    only_a = [n for n in names_a if n not in set(names_b)]
    only_b = [n for n in names_b if n not in set(names_a)]
    if only_a or only_b:
        detail = (f"only in {what_a}: {_short_list(only_a)}; only in {what_b}: {_short_list(only_b)}")
    elif len(names_a) != len(names_b):
        detail = f"{len(names_a)} vs {len(names_b)} channels (a name is repeated)"
    else:
        i = next(k for k, (x, y) in enumerate(zip(names_a, names_b, strict=True)) if x != y)
        detail = (f"same channels in a different order, first at position {i}: "
                  f"{names_a[i]!r} vs {names_b[i]!r}")
    raise InputError(
        f"Channels of {what_a} and {what_b} differ ({detail}); sessions can only be combined "
        "when they hold the same channels in the same order (pick them with picks=[...])."
    )


def concatenate_trials(megs: Sequence[MEGData], *, names: Sequence[str] | None = None) -> MEGData:
    """Stack the trials of several sessions (axis 1) after checking that they match.

    Every session must have the same channels (:func:`check_same_channels`), the same
    times (to 1/1000 of a sample) and the same conditions in the same order.
    ``names`` (e.g. file paths) label the sessions in error messages.
    """
    megs = list(megs)
    if not megs:
        raise InputError("concatenate_trials got no sessions.")
    names = [f"session {i}" for i in range(len(megs))] if names is None else list(names)
    if len(names) != len(megs):
        raise InputError(f"names has {len(names)} entries for {len(megs)} sessions.")
    ref = megs[0]
    step = _time_step(ref.times)
    for meg, name in zip(megs[1:], names[1:], strict=True):
        check_same_channels(ref, meg, what_a=names[0], what_b=name)
        if meg.times.shape != ref.times.shape or np.max(np.abs(meg.times - ref.times)) > _TIME_TOL * step:
            raise InputError(
                f"Times of {names[0]} ({len(ref.times)} samples from {ref.times[0]} s) and {name} "
                f"({len(meg.times)} samples from {meg.times[0]} s) differ; expected the same epochs."
            )
        if not np.array_equal(np.asarray(meg.conditions).astype(str), np.asarray(ref.conditions).astype(str)):
            raise InputError(
                f"Conditions of {names[0]} ({_short_list(list(ref.conditions))}) and {name} "
                f"({_short_list(list(meg.conditions))}) differ; read both with the same conditions=[...]."
            )
    data = np.concatenate([m.data for m in megs], axis=1)
    return MEGData(data, ref.times.copy(), list(ref.ch_names), np.asarray(ref.conditions).copy())


# --------------------------------------------------------------------------- preprocessing


def preprocess(
    meg: MEGData,
    *,
    baseline: tuple[float | None, float | None] = (-0.1, 0.0),
    remove_baseline_mean: bool = True,
    smooth_ms: float | None = 20.0,
    baseline_std_normalize: bool = True,
    smooth_edges: str = "shrink",
    baseline_std_scope: str = "channel",
) -> MEGData:
    """Cichy et al. (2016) MEG preprocessing: baseline mean, 20 ms smoothing, baseline std.

    The paper ("MEG acquisition"): "We extracted each trial with a 100 ms baseline and
    1,000 ms post-stimulus recordings, removed baseline mean, smoothed data with a 20 ms
    sliding window and normalized each channel with its baseline standard deviation."
    The steps run in that order, each one switchable:

    1. ``remove_baseline_mean``: from each trial and channel, subtract the mean of its
       samples inside ``baseline``.
    2. ``smooth_ms``: a centred boxcar (moving average) of ``round(smooth_ms * sfreq /
       1000)`` samples along time (:func:`smooth_window_samples`), same length out as in;
       ``None`` or 0 switches it off. For an even length ``n`` the window of sample ``i``
       is ``[i - n/2, i + n/2 - 1]`` (scipy.ndimage's convention: half a sample early, 0.5 ms
       at 1 kHz; 20 ms at 1 kHz is 20 samples, as the paper says). Edges (``smooth_edges``):
       ``'shrink'`` (default) averages only the samples of the window that exist, so the
       first and last ~n/2 samples are means of fewer samples and no value is invented
       (MATLAB ``movmean``'s default); ``'reflect'`` / ``'nearest'`` pad as
       :func:`scipy.ndimage.uniform_filter1d` does.
    3. ``baseline_std_normalize``: divide each channel by its baseline standard deviation,
       computed on the data as they are at this step (after 1 and 2). With
       ``baseline_std_scope='channel'`` (default) one std per channel, over the baseline
       samples of all trials of all conditions pooled (``np.std``, ddof=0, around the
       pooled mean): the paper normalises "each channel" by "its" baseline std, i.e. one
       number per channel. This is a per-channel rescaling, which puts magnetometers (T)
       and gradiometers (T/m) on a common noise scale for the decoder, and it leaves the
       relative amplitudes of trials intact; a std from one trial's 100 baseline samples
       (about 5 independent values after 20 ms smoothing) would be noisy. ``'trial'``:
       one std per trial and channel over that trial's baseline samples, i.e. Brainstorm's
       per-file baseline z-score, the other reading of the paper.

    Parameters
    ----------
    meg : MEGData
    baseline : (tmin, tmax) in seconds
        Baseline window, inclusive at both ends (MNE's convention: ``(-0.1, 0.0)`` includes
        the 0 s sample), up to 1/1000 of a sample; ``None`` = start/end of the epoch. Only
        used by steps 1 and 3.
    remove_baseline_mean, baseline_std_normalize : bool
    smooth_ms : float or None
    smooth_edges : {'shrink', 'reflect', 'nearest'}
    baseline_std_scope : {'channel', 'trial'}

    Returns
    -------
    MEGData
        New data (``meg`` is not modified), same dtype as ``meg.data``; times, channel names
        and conditions copied.

    Raises
    ------
    InputError
        Empty baseline window, smoothing window shorter than a sample or longer than the
        epoch, zero baseline std (a flat channel).
    """
    check_option("smooth_edges", smooth_edges, _SMOOTH_EDGES)
    check_option("baseline_std_scope", baseline_std_scope, _STD_SCOPES)
    out = np.array(meg.data, copy=True)  # float (MEGData guarantees it), caller's dtype
    n_cond = out.shape[0]
    mask = None
    if remove_baseline_mean or baseline_std_normalize:
        mask = baseline_mask(meg.times, baseline)

    if remove_baseline_mean:
        for c in range(n_cond):  # per condition: temporaries stay one condition large
            mean = out[c][..., mask].mean(axis=-1, keepdims=True, dtype=np.float64)
            out[c] -= mean.astype(out.dtype)

    if smooth_ms:
        n = smooth_window_samples(smooth_ms, meg.times)
        if n > 1:
            for c in range(n_cond):
                out[c] = _boxcar(out[c], n, smooth_edges)

    if baseline_std_normalize:
        if baseline_std_scope == "channel":
            # (n_channels,) over conditions x trials x baseline samples
            base = out[..., mask]
            std = base.std(axis=(0, 1, 3), dtype=np.float64)
            flat = [meg.ch_names[k] for k in np.flatnonzero(~(std > 0))]
            if flat:
                raise InputError(
                    f"Channels {_short_list(flat)} have zero baseline standard deviation "
                    "(flat); drop them (picks=[...]) or set baseline_std_normalize=False."
                )
            out /= std.astype(out.dtype)[None, None, :, None]
        else:
            for c in range(n_cond):
                std = out[c][..., mask].std(axis=-1, keepdims=True, dtype=np.float64)
                if not np.all(std > 0):
                    t, k = np.argwhere(~(std[..., 0] > 0))[0]
                    raise InputError(
                        f"Trial {t} of condition {meg.conditions[c]!r}, channel "
                        f"{meg.ch_names[k]!r}, has zero baseline standard deviation (flat)."
                    )
                out[c] /= std.astype(out.dtype)
    return MEGData(out, meg.times.copy(), list(meg.ch_names), np.asarray(meg.conditions).copy())


def baseline_mask(times, baseline) -> np.ndarray:
    """Boolean mask of the samples of ``times`` in ``baseline = (tmin, tmax)``, inclusive.

    ``None`` stands for the first/last sample. The ends are widened by 1/1000 of a sample
    so that float round-off does not drop the end samples.
    """
    times = np.asarray(times, dtype=np.float64)
    try:
        bmin, bmax = baseline
    except (TypeError, ValueError) as err:
        raise InputError(f"baseline must be a pair (tmin, tmax) in seconds, got {baseline!r}.") from err
    tol = _TIME_TOL * _time_step(times)
    lo = -np.inf if bmin is None else float(bmin) - tol
    hi = np.inf if bmax is None else float(bmax) + tol
    if lo > hi:
        raise InputError(f"baseline={baseline!r} has tmin > tmax.")
    mask = (times >= lo) & (times <= hi)
    if not mask.any():
        raise InputError(
            f"baseline={baseline!r} holds no sample; the epoch spans {times[0]:g}..{times[-1]:g} s."
        )
    return mask


def smooth_window_samples(smooth_ms: float, times) -> int:
    """Length in samples of a ``smooth_ms`` window: ``round(smooth_ms / 1000 * sfreq)``."""
    sfreq = 1.0 / _time_step(np.asarray(times, dtype=np.float64))
    smooth_ms = float(smooth_ms)
    n = int(round(smooth_ms * 1e-3 * sfreq))
    if smooth_ms < 0 or n < 1:
        raise InputError(
            f"smooth_ms={smooth_ms} is shorter than one sample at {sfreq:g} Hz; use 0 or None "
            "to switch smoothing off."
        )
    if n > len(times):
        raise InputError(
            f"smooth_ms={smooth_ms} is {n} samples, longer than the epoch ({len(times)} samples)."
        )
    return n


def _boxcar(x: np.ndarray, n: int, edges: str) -> np.ndarray:
    """Centred moving average of length ``n`` along the last axis (see :func:`preprocess`)."""
    if edges != "shrink":
        return uniform_filter1d(x, n, axis=-1, mode=edges)
    # zero padding gives sum(existing) / n; rescale by n / (number of existing samples)
    summed = uniform_filter1d(x, n, axis=-1, mode="constant", cval=0.0)
    counts = np.rint(uniform_filter1d(np.ones(x.shape[-1]), n, mode="constant", cval=0.0) * n)
    return summed * (n / counts).astype(x.dtype)


# --------------------------------------------------------------------------- checks


def _time_step(times: np.ndarray) -> float:
    return float(times[-1] - times[0]) / (len(times) - 1)


def _check_times(times, n_times: int, what: str) -> np.ndarray:
    times = np.asarray(times)
    if times.ndim != 1 or times.dtype.kind not in "iuf":
        raise InputError(f"{what} must be a 1-D array of seconds, got dtype {times.dtype} and "
                         f"shape {times.shape}.")
    times = times.astype(np.float64)
    if len(times) != n_times:
        raise InputError(f"{what} has {len(times)} samples; data has {n_times} time points.")
    if n_times < 2:
        raise InputError(f"{what} has {n_times} sample(s); expected at least 2 (a sampling rate).")
    check_finite(times, what)
    step = _time_step(times)
    if not step > 0 or np.max(np.abs(np.diff(times) - step)) > _TIME_TOL * step:
        raise InputError(f"{what} must be strictly increasing and regularly spaced (one sampling rate).")
    return times


def _check_ch_names(ch_names, n_ch: int, what: str) -> list[str]:
    arr = np.asarray(ch_names)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "US"):
        raise InputError(f"{what} must be a 1-D list of strings, got dtype {arr.dtype} and "
                         f"shape {arr.shape}.")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in arr.tolist()]
    if len(names) != n_ch:
        raise InputError(f"{what} has {len(names)} names; data has {n_ch} channels.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{what} repeats {_short_list(dup)}; expected distinct channel names.")
    return names


def _check_conditions(conditions, n_cond: int, what: str) -> np.ndarray:
    arr = np.asarray(conditions)
    if arr.ndim != 1 or arr.dtype.kind not in "iuUS":
        raise InputError(f"{what} must be a 1-D array of int or str ids, got dtype {arr.dtype} and "
                         f"shape {arr.shape}.")
    if len(arr) != n_cond:
        raise InputError(f"{what} has {len(arr)} ids; data has {n_cond} conditions.")
    if len(np.unique(arr)) != len(arr):
        raise InputError(f"{what} holds duplicates; expected distinct condition ids.")
    return arr.astype(np.int64) if arr.dtype.kind in "iu" else arr


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def _short_list(items, limit: int = 10) -> str:
    items = [int(i) if isinstance(i, np.integer) else i for i in items]
    if len(items) <= limit:
        return str(items)
    return f"{items[:limit]}... ({len(items)} in all)"
