"""MEG epochs: FIF and npz readers, synthetic writer round trip, channel checks, Cichy preprocessing."""

import warnings
import zipfile

import mne
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import uniform_filter1d

from brainalign.io.meg import (
    MEGData,
    baseline_mask,
    check_same_channels,
    concatenate_trials,
    preprocess,
    read_meg_array,
    read_meg_epochs,
    smooth_window_samples,
    write_meg_array,
    write_synthetic_epochs,
)
from brainalign.utils import InputError

SFREQ = 1000.0
TIMES = np.arange(-30, 90) / SFREQ  # -30..89 ms at 1 kHz
N_COND, N_TR, N_CH = 4, 5, 6
CONDS = np.array([12, 3, 7, 5])  # deliberately unsorted


N_TIMES = len(TIMES)


def _data(seed=0, shape=(N_COND, N_TR, N_CH, N_TIMES)):
    rng = np.random.default_rng(seed)
    # offsets per trial/channel and different scales per channel, like real sensors
    return (rng.normal(0, 1, shape) + rng.normal(0, 3, shape[:3])[..., None]) * \
        rng.uniform(0.5, 4, shape[2])[:, None]


def _meg(seed=0, dtype=np.float64, times=TIMES, shape=None):
    shape = shape or (N_COND, N_TR, N_CH, len(times))
    return MEGData(_data(seed, shape).astype(dtype), times, [f"MEG{i:04d}" for i in range(shape[2])],
                   np.arange(1, shape[0] + 1))


def _assert_float32_close(actual, expected):
    # FIF stores single precision
    np.testing.assert_allclose(actual, expected, rtol=2e-7, atol=2e-7 * np.abs(expected).max())


@pytest.fixture(scope="module")
def epo(tmp_path_factory):
    path = tmp_path_factory.mktemp("meg") / "sub01-epo.fif"
    data = _data()
    write_synthetic_epochs(path, data, TIMES, conditions=CONDS, seed=3)
    return path, data


# --------------------------------------------------------------------------- FIF round trip


def test_fif_round_trip_sorted_and_requested_order(epo):
    path, data = epo
    meg = read_meg_epochs(path)
    order = np.argsort(CONDS)
    np.testing.assert_array_equal(meg.conditions, CONDS[order])
    _assert_float32_close(meg.data, data[order])
    np.testing.assert_allclose(meg.times, TIMES, atol=1e-12)
    assert meg.sfreq == pytest.approx(SFREQ)
    assert meg.ch_names == [f"MEG{i:04d}" for i in range(1, N_CH + 1)]
    assert meg.data.dtype == np.float64

    again = read_meg_epochs(path, conditions=list(CONDS), dtype=np.float32)
    np.testing.assert_array_equal(again.conditions, CONDS)
    assert again.data.dtype == np.float32
    _assert_float32_close(again.data, data)


def test_fif_trials_are_shuffled_with_seed(epo, tmp_path):
    path, data = epo
    codes = mne.read_epochs(path, verbose=False).events[:, 2]
    assert not np.array_equal(codes, np.repeat(CONDS, N_TR))  # interleaved, not blocked
    assert sorted(np.unique(codes, return_counts=True)[1]) == [N_TR] * N_COND
    other = tmp_path / "x-epo.fif"
    write_synthetic_epochs(other, data, TIMES, conditions=CONDS, seed=3)
    np.testing.assert_array_equal(mne.read_epochs(other, verbose=False).events[:, 2], codes)
    write_synthetic_epochs(other, data, TIMES, conditions=CONDS, seed=4)
    assert not np.array_equal(mne.read_epochs(other, verbose=False).events[:, 2], codes)


def test_fif_conditions_by_event_name(epo):
    path, data = epo
    meg = read_meg_epochs(path, conditions=["7", 12])
    np.testing.assert_array_equal(meg.conditions, [7, 12])
    _assert_float32_close(meg.data, data[[2, 0]])


def test_fif_missing_condition_named(epo):
    path, _ = epo
    with pytest.raises(InputError, match=r"requested conditions \[99, 4\].*\[3, 5, 7, 12\]"):
        read_meg_epochs(path, conditions=[3, 99, 4])
    with pytest.raises(InputError, match="'nope' is not in the file's event_id"):
        read_meg_epochs(path, conditions=["nope"])
    with pytest.raises(InputError, match=r"\[3\] more than once"):
        read_meg_epochs(path, conditions=[3, 5, 3])


def _drop_and_save(src, dst, drop_per_code):
    """Rewrite an epochs file without some trials: {code: [k-th trial of that code, ...]}."""
    ep = mne.read_epochs(src, verbose=False)
    codes = ep.events[:, 2]
    drop = [int(np.flatnonzero(codes == c)[k]) for c, ks in drop_per_code.items() for k in ks]
    ep.drop(drop, verbose=False)
    ep.save(dst, verbose=False)
    return drop


def test_fif_unequal_counts(epo, tmp_path):
    path, data = epo
    dst = tmp_path / "uneq-epo.fif"
    _drop_and_save(path, dst, {7: [0, 3], 3: [1]})  # 7: 3 trials, 3: 4 trials, others 5
    with pytest.raises(InputError, match=r"unequal trial counts \(3 trials: conditions \[7\]; "
                                         r"4 trials: conditions \[3\]; 5 trials: conditions \[5, 12\]\)"
                                         r".*pass n_trials"):
        read_meg_epochs(dst)
    meg = read_meg_epochs(dst, n_trials=3, conditions=[12, 3, 7])
    assert meg.data.shape == (3, 3, N_CH, len(TIMES))
    _assert_float32_close(meg.data[0], data[0, :3])  # 12: first 3 in file order
    _assert_float32_close(meg.data[1], data[1, [0, 2, 3]])  # 3: trial 1 dropped
    _assert_float32_close(meg.data[2], data[2, [1, 2, 4]])  # 7: trials 0 and 3 dropped
    with pytest.raises(InputError, match=r"n_trials=4 but condition\(s\) \[7\] have fewer"):
        read_meg_epochs(dst, n_trials=4)
    # only the requested conditions count
    assert read_meg_epochs(dst, conditions=[5, 12]).data.shape[1] == N_TR
    with pytest.raises(InputError, match="n_trials must be an integer >= 1"):
        read_meg_epochs(dst, n_trials=0)


def test_fif_picks(tmp_path):
    data = _data(shape=(2, 3, 5, len(TIMES)))
    path = tmp_path / "mixed-epo.fif"
    names = ["MEG0111", "EEG001", "MEG0112", "STI101", "MEG0113"]
    write_synthetic_epochs(path, data, TIMES, ch_names=names,
                           ch_types=["mag", "eeg", "grad", "stim", "grad"])
    meg = read_meg_epochs(path)
    assert meg.ch_names == ["MEG0111", "MEG0112", "MEG0113"]
    _assert_float32_close(meg.data, data[:, :, [0, 2, 4]])
    assert read_meg_epochs(path, picks="grad").ch_names == ["MEG0112", "MEG0113"]
    assert read_meg_epochs(path, picks="mag").ch_names == ["MEG0111"]
    assert read_meg_epochs(path, picks="all").ch_names == names
    listed = read_meg_epochs(path, picks=["EEG001", "MEG0113"])
    _assert_float32_close(listed.data, data[:, :, [1, 4]])
    with pytest.raises(InputError, match=r"channels \['MEG9999'\] are not in the file"):
        read_meg_epochs(path, picks=["MEG0111", "MEG9999"])
    with pytest.raises(ValueError, match="Allowed values are 'meg', 'grad', 'mag' and 'all'"):
        read_meg_epochs(path, picks="eeg")

    # bad channels: left out by type picks, kept by 'all'
    ep = mne.read_epochs(path, verbose=False)
    ep.info["bads"] = ["MEG0112"]
    bads = tmp_path / "bads-epo.fif"
    ep.save(bads, verbose=False)
    assert read_meg_epochs(bads).ch_names == ["MEG0111", "MEG0113"]
    assert "MEG0112" in read_meg_epochs(bads, picks="all").ch_names

    eeg_only = tmp_path / "eeg-epo.fif"
    write_synthetic_epochs(eeg_only, data[:, :, :2], TIMES, ch_types="eeg")
    with pytest.raises(InputError, match=r"picks='meg' selects no channel .*\['eeg'\]"):
        read_meg_epochs(eeg_only)


def test_fif_malformed(epo, tmp_path):
    path, _ = epo
    raw = path.read_bytes()
    truncated = tmp_path / "trunc-epo.fif"
    truncated.write_bytes(raw[: len(raw) // 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # MNE warns about the invalid tags first
        with pytest.raises(InputError, match="cannot read as MNE epochs.*truncated"):
            read_meg_epochs(truncated)
    garbage = tmp_path / "garbage-epo.fif"
    garbage.write_bytes(b"not a fif file" * 20)
    with pytest.raises(InputError, match=r"garbage-epo\.fif: cannot read as MNE epochs"):
        read_meg_epochs(garbage)
    with pytest.raises(InputError, match="MEG epochs file not found"):
        read_meg_epochs(tmp_path / "missing-epo.fif")


def test_fif_nan_rejected(tmp_path):
    data = _data(shape=(2, 2, 3, len(TIMES)))
    path = tmp_path / "nan-epo.fif"
    write_synthetic_epochs(path, data, TIMES)
    ep = mne.read_epochs(path, verbose=False)
    values = ep.get_data()
    values[1, 2, 5] = np.nan
    mne.EpochsArray(values, ep.info, ep.events, ep.tmin, ep.event_id, verbose=False).save(
        path, overwrite=True, verbose=False)
    with pytest.raises(InputError, match="nan-epo.fif: epochs data: found 1 non-finite"):
        read_meg_epochs(path)


def test_writer_checks(tmp_path):
    data = _data(shape=(2, 2, 3, len(TIMES)))
    with pytest.raises(InputError, match="must end with '-epo.fif'"):
        write_synthetic_epochs(tmp_path / "sub01_epochs.fif", data, TIMES)
    with pytest.raises(InputError, match="not a whole number of samples"):
        write_synthetic_epochs(tmp_path / "a-epo.fif", data, TIMES + 0.0004)
    with pytest.raises(InputError, match="does not match the step of times"):
        write_synthetic_epochs(tmp_path / "a-epo.fif", data, TIMES, sfreq=500.0)
    with pytest.raises(InputError, match="conditions must be integer event codes"):
        write_synthetic_epochs(tmp_path / "a-epo.fif", data, TIMES, conditions=["a", "b"])
    with pytest.raises(InputError, match="conditions holds duplicates"):
        write_synthetic_epochs(tmp_path / "a-epo.fif", data, TIMES, conditions=[1, 1])
    with pytest.raises(InputError, match="times has 119 samples; data has 120"):
        write_synthetic_epochs(tmp_path / "a-epo.fif", data, TIMES[:-1])
    bad = data.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="data: found 1 non-finite"):
        write_synthetic_epochs(tmp_path / "a-epo.fif", bad, TIMES)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_writer_times_not_starting_at_zero_offset(tmp_path):
    """500 Hz, epoch from -100 ms: times and sfreq survive MNE's first-sample storage."""
    times = np.arange(-50, 100) / 500.0
    data = _data(shape=(2, 3, 3, len(times)))
    path = tmp_path / "s-epo.fif"
    write_synthetic_epochs(path, data, times, conditions=[1, 2])
    meg = read_meg_epochs(path)
    np.testing.assert_allclose(meg.times, times, atol=1e-12)
    assert meg.sfreq == pytest.approx(500.0)


# --------------------------------------------------------------------------- npz


def test_npz_round_trip_and_defaults(tmp_path):
    meg = MEGData(_data(), TIMES, [f"c{i}" for i in range(N_CH)], ["cat", "dog", "car", "cup"])
    write_meg_array(tmp_path / "m.npz", meg)
    back = read_meg_array(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.data, meg.data)
    np.testing.assert_array_equal(back.times, TIMES)
    assert back.ch_names == meg.ch_names
    np.testing.assert_array_equal(back.conditions, meg.conditions)

    np.savez(tmp_path / "plain.npz", data=_data().astype(np.float32), times=TIMES)
    plain = read_meg_array(tmp_path / "plain.npz")
    assert plain.data.dtype == np.float32
    assert plain.ch_names == [f"ch{i:03d}" for i in range(N_CH)]
    np.testing.assert_array_equal(plain.conditions, np.arange(1, N_COND + 1))


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"data": _data()}, r"missing \['times'\], unexpected \[\]"),
        ({"data": _data(), "time": TIMES}, r"missing \['times'\], unexpected \['time'\]"),
        ({"data": _data(), "times": TIMES, "channels": np.array(["a"] * N_CH)},
         r"unexpected \['channels'\]"),
        ({"data": _data()[0], "times": TIMES}, r"'data' has shape \(5, 6, 120\); expected 4-D"),
        ({"data": _data(), "times": TIMES[:-2]}, "'times' has 118 samples; data has 120 time points"),
        ({"data": _data(), "times": TIMES[::-1]}, "strictly increasing and regularly spaced"),
        ({"data": np.where(np.arange(len(TIMES)) == 7, np.nan, _data()), "times": TIMES},
         "'data': found 120 non-finite values"),
        ({"data": _data(), "times": TIMES, "ch_names": np.array(["a", "b"])},
         "'ch_names' has 2 names; data has 6 channels"),
        ({"data": _data(), "times": TIMES, "conditions": np.array([1, 2, 2, 3])},
         "'conditions' holds duplicates"),
        ({"data": _data(), "times": TIMES, "ch_names": np.array(list("abcdef"), dtype=object)},
         "'ch_names' is stored as a pickled object array"),
        ({"data": _data().astype(complex), "times": TIMES}, "'data' has dtype complex128"),
    ],
)
def test_npz_malformed(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(InputError, match=match):
        read_meg_array(path)


def test_npz_not_an_archive(tmp_path):
    np.save(tmp_path / "single.npy", _data())
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(InputError, match="holds a single array; expected an .npz archive"):
        read_meg_array(tmp_path / "single.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(InputError, match=r"text\.npz: cannot read as an \.npz archive"):
        read_meg_array(tmp_path / "text.npz")
    np.savez(tmp_path / "ok.npz", data=_data(), times=TIMES)
    raw = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match=r"cut\.npz: cannot read"):
        read_meg_array(tmp_path / "cut.npz")
    with pytest.raises(InputError, match="MEG array file not found"):
        read_meg_array(tmp_path / "none.npz")
    assert zipfile.is_zipfile(tmp_path / "ok.npz")


# --------------------------------------------------------------------------- combining sessions


def test_check_same_channels_names_the_difference(tmp_path):
    a = _meg()
    b = MEGData(a.data, a.times, ["MEG0000", "MEG0001", "X1", "MEG0003", "MEG0004", "X2"],
                a.conditions)
    check_same_channels(a, a)
    with pytest.raises(InputError, match=r"Channels of s1-epo.fif and s2-epo.fif differ \(only in "
                                         r"s1-epo.fif: \['MEG0002', 'MEG0005'\]; only in s2-epo.fif: "
                                         r"\['X1', 'X2'\]\)"):
        check_same_channels(a, b, what_a="s1-epo.fif", what_b="s2-epo.fif")
    with pytest.raises(InputError, match="different order, first at position 0: 'MEG0001' vs 'MEG0000'"):
        check_same_channels(["MEG0001", "MEG0000"], ["MEG0000", "MEG0001"])

    # two real files with different channel sets
    p1, p2 = tmp_path / "s1-epo.fif", tmp_path / "s2-epo.fif"
    data = _data(shape=(2, 2, 3, len(TIMES)))
    write_synthetic_epochs(p1, data, TIMES, ch_names=["MEG0111", "MEG0112", "MEG0113"])
    write_synthetic_epochs(p2, data, TIMES, ch_names=["MEG0111", "MEG0112", "MEG0121"])
    m1, m2 = read_meg_epochs(p1), read_meg_epochs(p2)
    with pytest.raises(InputError, match=r"only in .*s1-epo.fif: \['MEG0113'\]; only in .*s2-epo.fif: "
                                         r"\['MEG0121'\]"):
        concatenate_trials([m1, m2], names=[str(p1), str(p2)])


def test_concatenate_trials():
    a, b = _meg(0), _meg(1, shape=(N_COND, 2, N_CH, len(TIMES)))
    both = concatenate_trials([a, b])
    assert both.data.shape == (N_COND, N_TR + 2, N_CH, len(TIMES))
    np.testing.assert_array_equal(both.data[:, N_TR:], b.data)
    with pytest.raises(InputError, match="Times of session 0 .* and session 1"):
        concatenate_trials([a, MEGData(a.data, a.times + 0.001, a.ch_names, a.conditions)])
    with pytest.raises(InputError, match="Conditions of session 0"):
        concatenate_trials([a, MEGData(a.data, a.times, a.ch_names, a.conditions[::-1])])


def test_megdata_validates():
    with pytest.raises(InputError, match="MEGData: times must be strictly increasing and regularly"):
        MEGData(_data(), np.r_[TIMES[:-1], 5.0], [f"c{i}" for i in range(N_CH)], np.arange(N_COND))
    with pytest.raises(InputError, match="MEGData: ch_names repeats \\['c'\\]"):
        MEGData(_data(), TIMES, ["c"] * N_CH, np.arange(N_COND))
    with pytest.raises(InputError, match="MEGData: conditions has 3 ids; data has 4"):
        MEGData(_data(), TIMES, [f"c{i}" for i in range(N_CH)], np.arange(3))


# --------------------------------------------------------------------------- preprocessing


def _loop_baseline_mean(x, mask):
    out = x.copy()
    for c in range(x.shape[0]):
        for t in range(x.shape[1]):
            for k in range(x.shape[2]):
                out[c, t, k] = x[c, t, k] - np.mean(x[c, t, k, mask])
    return out


def _loop_shrink_smooth(x, n):
    out = np.empty_like(x)
    n_times = x.shape[-1]
    for i in range(n_times):
        lo, hi = max(0, i - n // 2), min(n_times - 1, i + n - 1 - n // 2)
        out[..., i] = x[..., lo: hi + 1].mean(axis=-1)
    return out


def _loop_channel_std(x, mask):
    out = x.copy()
    for k in range(x.shape[2]):
        values = np.concatenate([x[c, t, k, mask] for c in range(x.shape[0]) for t in range(x.shape[1])])
        out[:, :, k] = x[:, :, k] / np.sqrt(np.mean((values - values.mean()) ** 2))
    return out


def test_baseline_mask_inclusive():
    mask = baseline_mask(TIMES, (-0.01, 0.0))
    np.testing.assert_array_equal(np.flatnonzero(mask), np.arange(20, 31))  # -10..0 ms, 11 samples
    assert baseline_mask(TIMES, (None, 0.0)).sum() == 31
    assert baseline_mask(TIMES, (0.0, None)).sum() == 90
    # float round-off on the ends does not drop samples
    assert baseline_mask(TIMES, (-0.01 + 1e-9, -1e-9)).sum() == 11
    with pytest.raises(InputError, match="holds no sample; the epoch spans -0.03..0.089 s"):
        baseline_mask(TIMES, (-0.2, -0.1))
    with pytest.raises(InputError, match="tmin > tmax"):
        baseline_mask(TIMES, (0.0, -0.01))


def test_window_samples():
    assert smooth_window_samples(20.0, TIMES) == 20
    assert smooth_window_samples(20.0, np.arange(100) / 500.0) == 10
    assert smooth_window_samples(20.0, np.arange(100) / 250.0) == 5
    with pytest.raises(InputError, match="shorter than one sample"):
        smooth_window_samples(0.4, TIMES)
    with pytest.raises(InputError, match="longer than the epoch"):
        smooth_window_samples(200.0, TIMES)


def test_step_baseline_mean_matches_loop():
    meg = _meg()
    out = preprocess(meg, baseline=(-0.02, 0.0), smooth_ms=None, baseline_std_normalize=False)
    expected = _loop_baseline_mean(meg.data, (TIMES >= -0.02 - 1e-9) & (TIMES <= 1e-9))
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_ms", [20.0, 7.0])  # even and odd windows
def test_step_smoothing_matches_scipy_and_loop(n_ms):
    meg = _meg()
    n = int(n_ms)
    off = {"remove_baseline_mean": False, "baseline_std_normalize": False, "smooth_ms": n_ms}
    for mode in ("reflect", "nearest"):
        out = preprocess(meg, smooth_edges=mode, **off)
        np.testing.assert_allclose(out.data, uniform_filter1d(meg.data, n, axis=-1, mode=mode),
                                   rtol=1e-12, atol=1e-12)
    shrink = preprocess(meg, **off).data
    np.testing.assert_allclose(shrink, _loop_shrink_smooth(meg.data, n), rtol=1e-10, atol=1e-10)
    # interior: every edge mode is the plain centred boxcar
    interior = slice(n // 2, len(TIMES) - n)
    np.testing.assert_allclose(shrink[..., interior],
                               uniform_filter1d(meg.data, n, axis=-1)[..., interior], rtol=1e-10, atol=1e-10)


def test_smoothing_even_window_convention():
    """Impulse at sample 40, 4-sample window: outputs 39..42 see it (window [i-2, i+1])."""
    x = np.zeros((1, 1, 1, len(TIMES)))
    x[..., 40] = 1.0
    out = preprocess(MEGData(x, TIMES, ["a"], [1]), smooth_ms=4.0, remove_baseline_mean=False,
                     baseline_std_normalize=False).data[0, 0, 0]
    np.testing.assert_array_equal(np.flatnonzero(out), [39, 40, 41, 42])
    np.testing.assert_allclose(out[39:43], 0.25)


@settings(max_examples=30, deadline=None)
@given(n_times=st.integers(2, 40), n=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_shrink_smoothing_property(n_times, n, seed):
    n = min(n, n_times)
    times = np.arange(n_times) / SFREQ
    x = np.random.default_rng(seed).normal(size=(1, 2, 2, n_times))
    out = preprocess(MEGData(x, times, ["a", "b"], [1]), smooth_ms=float(n),
                     remove_baseline_mean=False, baseline_std_normalize=False).data
    np.testing.assert_allclose(out, _loop_shrink_smooth(x, n), rtol=1e-9, atol=1e-9)


def test_step_std_normalize_matches_loop():
    meg = _meg()
    mask = baseline_mask(TIMES, (-0.03, 0.0))
    out = preprocess(meg, baseline=(-0.03, 0.0), remove_baseline_mean=False, smooth_ms=None)
    np.testing.assert_allclose(out.data, _loop_channel_std(meg.data, mask), rtol=1e-10)
    per_trial = preprocess(meg, baseline=(-0.03, 0.0), remove_baseline_mean=False, smooth_ms=None,
                           baseline_std_scope="trial")
    expected = meg.data.copy()
    for c in range(N_COND):
        for t in range(N_TR):
            for k in range(N_CH):
                expected[c, t, k] /= np.std(meg.data[c, t, k, mask])
    np.testing.assert_allclose(per_trial.data, expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_pipeline_is_the_paper_order(dtype):
    meg = _meg(dtype=dtype)
    before = meg.data.copy()
    out = preprocess(meg)  # defaults: (-0.1, 0) baseline (here the 31 pre-stimulus samples incl. 0)
    mask = baseline_mask(TIMES, (-0.1, 0.0))
    x = meg.data.astype(np.float64)
    expected = _loop_channel_std(_loop_shrink_smooth(_loop_baseline_mean(x, mask), 20), mask)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(out.data, expected, rtol=tol, atol=tol)
    assert out.data.dtype == dtype
    np.testing.assert_array_equal(meg.data, before)  # input untouched
    # the baseline is unit-variance per channel afterwards
    np.testing.assert_allclose(out.data[..., mask].std(axis=(0, 1, 3)), 1.0, rtol=tol)
    # all steps off: identity
    ident = preprocess(meg, remove_baseline_mean=False, smooth_ms=None, baseline_std_normalize=False)
    np.testing.assert_array_equal(ident.data, meg.data)


def test_preprocess_errors():
    meg = _meg()
    flat = meg.data.copy()
    flat[:, :, 2] = 5.0
    with pytest.raises(InputError, match=r"Channels \['MEG0002'\] have zero baseline standard deviation"):
        preprocess(MEGData(flat, TIMES, meg.ch_names, meg.conditions))
    with pytest.raises(InputError, match="channel 'MEG0002', has zero baseline"):
        preprocess(MEGData(flat, TIMES, meg.ch_names, meg.conditions), baseline_std_scope="trial")
    with pytest.raises(InputError, match="holds no sample"):
        preprocess(meg, baseline=(0.5, 0.6))
    # the baseline is not needed when both baseline steps are off
    preprocess(meg, baseline=(0.5, 0.6), remove_baseline_mean=False, baseline_std_normalize=False)
    with pytest.raises(ValueError, match="Allowed values are 'shrink', 'reflect' and 'nearest'"):
        preprocess(meg, smooth_edges="wrap")
    with pytest.raises(ValueError, match="'baseline_std_scope'"):
        preprocess(meg, baseline_std_scope="all")
