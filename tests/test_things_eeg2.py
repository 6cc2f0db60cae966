"""THINGS-EEG2 reader and writer: round trips, explicit indexing, pickle safety, bad files."""

import io
import os
import pickle

import numpy as np
import pytest

from brainalign.io._safe_pickle import ALLOWED_GLOBALS, RestrictedUnpickler, load_npy_pickle
from brainalign.io.things_eeg2 import (
    THINGS_EEG2_CHANNELS,
    THINGS_EEG2_TIMES,
    load_image_metadata,
    load_pickled_dict,
    load_things_eeg2,
    things_eeg2_paths,
    write_synthetic_things_eeg2,
)
from brainalign.utils import InputError

N_IMG, N_REPS, N_TRAIN = 6, 5, 8


def _eeg(seed, n_img=N_IMG, n_reps=N_REPS):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_img, 1, 17, 100)) + rng.normal(0, 0.3, size=(n_img, n_reps, 17, 100))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("things_eeg2")
    data = {1: {"test": _eeg(0), "training": _eeg(1, N_TRAIN, 2)}, "sub-03": _eeg(2)}
    write_synthetic_things_eeg2(root, data_by_subject=data)
    return root, data


def _fresh(tmp_path, data=None, **kwargs):
    data = {1: _eeg(5)} if data is None else data
    write_synthetic_things_eeg2(tmp_path, data_by_subject=data, **kwargs)
    return tmp_path


def _overwrite(path, obj):
    with open(path, "wb") as f:
        np.save(f, np.array(obj, dtype=object), allow_pickle=True)


# --------------------------------------------------------------- layout and round trip


def test_layout_matches_the_release(release):
    root, data = release
    for sub in ("sub-01", "sub-03"):
        raw = np.load(root / "preprocessed_data" / sub / "preprocessed_eeg_test.npy",
                      allow_pickle=True).item()
        assert set(raw) == {"preprocessed_eeg_data", "ch_names", "times"}
        assert raw["preprocessed_eeg_data"].dtype == np.float64
        assert raw["preprocessed_eeg_data"].shape == (N_IMG, N_REPS, 17, 100)
        assert list(raw["ch_names"]) == list(THINGS_EEG2_CHANNELS)
        np.testing.assert_allclose(raw["times"], np.arange(-0.2, 0.795, 0.01), atol=1e-9)
    assert not (root / "preprocessed_data" / "sub-03" / "preprocessed_eeg_training.npy").exists()
    meta = np.load(root / "image_metadata.npy", allow_pickle=True).item()
    assert set(meta) == {"train_img_files", "train_img_concepts", "test_img_files",
                         "test_img_concepts"}
    assert len(meta["test_img_files"]) == N_IMG and len(meta["train_img_files"]) == N_TRAIN
    assert meta["test_img_concepts"][0] == "00001_concept00001"


def test_round_trip_default_window_and_averaging(release):
    root, data = release
    res = load_things_eeg2(root, 1)
    planted = data[1]["test"]
    # defaults: all 17 channels, 0 <= t < 0.2 s -> samples 20..39, trials averaged
    expected = np.empty((N_IMG, 17, 20))
    for i in range(N_IMG):
        for c in range(17):
            for k, t in enumerate(range(20, 40)):
                expected[i, c, k] = sum(planted[i, r, c, t] for r in range(N_REPS)) / N_REPS
    np.testing.assert_allclose(res["data"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res["times"], np.arange(20) * 0.01, atol=1e-9)
    assert list(res["ch_names"]) == list(THINGS_EEG2_CHANNELS)
    meta = load_image_metadata(root)
    np.testing.assert_array_equal(res["image_files"], meta["test_img_files"])
    np.testing.assert_array_equal(res["concepts"], meta["test_img_concepts"])
    assert res["image_paths"][2] == str(root / "test_images" / meta["test_img_concepts"][2]
                                        / meta["test_img_files"][2])
    assert res["subject"] == "sub-01" and res["split"] == "test"


def test_channel_and_time_selection_against_explicit_indexing(release):
    root, data = release
    chans = ["Oz", "P7", "PO8"]
    res = load_things_eeg2(root, "sub-03", channels=chans, tmin=-0.05, tmax=0.31,
                           average_trials=False)
    idx = [THINGS_EEG2_CHANNELS.index(c) for c in chans]
    t = np.flatnonzero((THINGS_EEG2_TIMES >= -0.05 - 1e-9) & (THINGS_EEG2_TIMES < 0.31 - 1e-9))
    assert t[0] == 15 and t[-1] == 50
    np.testing.assert_array_equal(res["data"], data["sub-03"][:, :, idx][:, :, :, t])
    assert list(res["ch_names"]) == chans
    np.testing.assert_allclose(res["times"], THINGS_EEG2_TIMES[t])


def test_whole_epoch_and_training_split(release):
    root, data = release
    res = load_things_eeg2(root, 1, split="training", tmin=-0.2, tmax=0.8)
    np.testing.assert_allclose(res["data"], data[1]["training"].mean(axis=1), rtol=1e-12)
    assert res["data"].shape == (N_TRAIN, 17, 100)
    assert len(res["image_files"]) == N_TRAIN and res["image_paths"][0].startswith(
        str(root / "training_images"))


def test_window_edges_tolerate_float_times(tmp_path):
    times = np.arange(-20, 80) * 0.01  # not rounded: 0.19999999999999998 and friends
    root = _fresh(tmp_path, times=times)
    res = load_things_eeg2(root, 1, tmin=0.0, tmax=0.2)
    assert res["data"].shape == (N_IMG, 17, 20)
    np.testing.assert_array_equal(res["times"], times[20:40])


def test_custom_metadata_and_images(tmp_path):
    pytest.importorskip("PIL")
    files = {"test": [f"thing{i}_01s.jpg" for i in range(3)]}
    concepts = {"test": [f"{i + 1:05d}_thing{i}" for i in range(3)]}
    imgs = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    root = _fresh(tmp_path, data={2: _eeg(1, 3, 2)}, image_files=files, concepts=concepts,
                  images={"test": imgs})
    res = load_things_eeg2(root, 2)
    assert list(res["image_files"]) == files["test"]
    assert all(os.path.isfile(p) for p in res["image_paths"])


# --------------------------------------------------------------- pickle safety


def test_symlinked_subject_outside_root_is_refused(tmp_path):
    root = _fresh(tmp_path / "root")
    outside = _fresh(tmp_path / "elsewhere", data={2: _eeg(9)})
    (root / "preprocessed_data" / "sub-02").symlink_to(outside / "preprocessed_data" / "sub-02")
    with pytest.raises(InputError, match="outside the configured THINGS-EEG2 data_root"):
        load_things_eeg2(root, 2)


def test_symlinked_file_outside_root_is_refused(tmp_path):
    root = _fresh(tmp_path / "root")
    evil = tmp_path / "evil.npy"
    _overwrite(evil, {"x": 1})
    target = things_eeg2_paths(root, 1)["eeg/test"]
    target.unlink()
    target.symlink_to(evil)
    with pytest.raises(InputError, match="refusing to unpickle"):
        load_things_eeg2(root, 1)
    meta = things_eeg2_paths(root)["metadata"]
    meta.unlink()
    meta.symlink_to(evil)
    with pytest.raises(InputError, match="outside the configured"):
        load_image_metadata(root)


def test_dotdot_path_outside_root_is_refused(tmp_path):
    root = _fresh(tmp_path / "root")
    evil = tmp_path / "evil.npy"
    _overwrite(evil, {"x": 1})
    with pytest.raises(InputError, match="outside the configured"):
        load_pickled_dict(root / ".." / "evil.npy", root)
    # a '..' that stays inside the root is fine
    inside = root / "preprocessed_data" / ".." / "image_metadata.npy"
    assert "test_img_files" in load_pickled_dict(inside, root)


def test_symlink_inside_root_is_allowed(tmp_path):
    root = _fresh(tmp_path / "root")
    (root / "preprocessed_data" / "sub-07").symlink_to(root / "preprocessed_data" / "sub-01")
    np.testing.assert_array_equal(load_things_eeg2(root, 7)["data"], load_things_eeg2(root, 1)["data"])


class _Shell:
    """Unpickles by running a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _write_marker(path):
    with open(path, "w") as f:
        f.write("pwned")


class _PythonCall:
    """Unpickles by calling a module-level Python function."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


@pytest.mark.parametrize("payload, refused", [
    (_Shell, f"{os.system.__module__}.system"),
    (_PythonCall, f"{__name__}._write_marker"),
])
def test_malicious_pickles_are_refused_and_nothing_runs(tmp_path, payload, refused):
    root = _fresh(tmp_path / "root")
    marker = tmp_path / "pwned"
    eeg = things_eeg2_paths(root, 1)["eeg/test"]
    raw = np.load(eeg, allow_pickle=True).item()
    _overwrite(eeg, {**raw, "times": payload(marker)})
    with pytest.raises(InputError, match=rf"preprocessed_eeg_test\.npy: refused to load global "
                                         rf"'{refused}'"):
        load_things_eeg2(root, 1)
    assert not marker.exists()

    meta = things_eeg2_paths(root)["metadata"]
    m = np.load(meta, allow_pickle=True).item()
    _overwrite(meta, {**m, "test_img_files": payload(marker)})
    for load in (lambda: load_things_eeg2(root, 1), lambda: load_image_metadata(root)):
        with pytest.raises(InputError, match=rf"image_metadata\.npy: refused to load global "
                                             rf"'{refused}'"):
            load()
    assert not marker.exists()


def _deep_equal(a, b):
    """Same types, keys, dtypes, shapes and values, recursively."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _deep_equal(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _deep_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.flags.f_contiguous == b.flags.f_contiguous
        if a.dtype == object:
            for x, y in zip(a.ravel(), b.ravel(), strict=True):
                _deep_equal(x, y)
        else:
            np.testing.assert_array_equal(a, b)
    else:
        assert a == b


def _benign():
    rng = np.random.default_rng(0)
    return {
        "preprocessed_eeg_data": rng.normal(size=(3, 2, 4, 5)),
        "times": np.round(np.arange(-20, 80) * 0.01, 2),
        "ch_names": ["Pz", "P3", "Oz"],
        "files": np.array(["aardvark_01b.jpg", "zebra_12s.jpg"]),
        "bytes_names": np.array([b"a", b"bc"]),
        "fortran": np.asfortranarray(rng.normal(size=(3, 4))),
        "ints": np.arange(6, dtype=np.int16).reshape(2, 3),
        "scalars": [np.float64(0.5), np.int64(3), np.str_("x"), 1, 2.5, True, None, 1 + 2j],
        "nested": {"tuple": (1, "a"), "set": {1, 2}, "frozen": frozenset("ab"), "b": b"\x00\xff"},
        "objects": np.array([1, "a", None], dtype=object),
        "empty": np.empty((0, 17)),
    }


def test_restricted_loader_matches_np_load(tmp_path):
    path = tmp_path / "benign.npy"
    _overwrite(path, _benign())
    _deep_equal(load_npy_pickle(path).item(), np.load(path, allow_pickle=True).item())
    # every pickle protocol np.save or pickle.dump may have used
    for protocol in (2, 3, 4, 5):
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False,
                                                     "shape": ()})
            pickle.dump(np.array(_benign(), dtype=object), f, protocol=protocol)
        _deep_equal(load_npy_pickle(path).item(), np.load(path, allow_pickle=True).item())
    # protocol 2's _codecs.encode is resolved to a latin-1-only stand-in
    unpickler = RestrictedUnpickler(io.BytesIO(b"c_codecs\nencode\n(Vx\nVrot13\ntR."), path)
    with pytest.raises(pickle.UnpicklingError, match="only _codecs.encode"):
        unpickler.load()
    # plain arrays load with allow_pickle=False
    np.save(path, np.arange(12.0).reshape(3, 4))
    _deep_equal(load_npy_pickle(path), np.load(path))


def test_restricted_loader_reads_numpy1_pickles(tmp_path):
    """numpy 1.x writes ``numpy.core.multiarray``, numpy 2.x ``numpy._core.multiarray``."""
    allowed = {m for m, _ in ALLOWED_GLOBALS}
    assert {"numpy.core.multiarray", "numpy._core.multiarray"} <= allowed
    obj = np.array(_benign(), dtype=object)
    payload = pickle.dumps(obj, protocol=3)  # text GLOBAL opcodes: "cmodule\nname\n"
    for new, old in ((b"cnumpy.core.", b"cnumpy._core."), (b"cnumpy._core.", b"cnumpy.core.")):
        payload = payload.replace(old, new)
        assert new in payload and old not in payload
        path = tmp_path / "np1.npy"
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False,
                                                     "shape": ()})
            f.write(payload)
        _deep_equal(load_npy_pickle(path).item(), _benign())
    # a release-shaped file still loads through the public reader
    root = _fresh(tmp_path / "root")
    eeg = things_eeg2_paths(root, 1)["eeg/test"]
    expected = load_things_eeg2(root, 1)
    raw = pickle.dumps(np.array(np.load(eeg, allow_pickle=True).item(), dtype=object), protocol=3)
    with open(eeg, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(raw.replace(b"cnumpy._core.", b"cnumpy.core."))
    np.testing.assert_array_equal(load_things_eeg2(root, 1)["data"], expected["data"])


def test_bad_subject_names(tmp_path):
    root = _fresh(tmp_path)
    for bad in ("sub-01/../../x", "../sub-01", 0, True, 1.5):
        with pytest.raises(InputError, match="expected an int >= 1 or a name like 'sub-01'"):
            load_things_eeg2(root, bad)


# --------------------------------------------------------------- malformed input


def test_missing_root_and_files(tmp_path):
    with pytest.raises(InputError, match="data_root not found"):
        load_things_eeg2(tmp_path / "nope", 1)
    root = _fresh(tmp_path / "root")
    with pytest.raises(InputError, match="file not found: .*sub-04/preprocessed_eeg_test.npy"):
        load_things_eeg2(root, 4)
    things_eeg2_paths(root)["metadata"].unlink()
    with pytest.raises(InputError, match="file not found: .*image_metadata.npy"):
        load_things_eeg2(root, 1)


def test_wrong_keys(tmp_path):
    root = _fresh(tmp_path)
    path = things_eeg2_paths(root, 1)["eeg/test"]
    raw = np.load(path, allow_pickle=True).item()
    _overwrite(path, {"eeg": raw["preprocessed_eeg_data"], "ch_names": raw["ch_names"]})
    with pytest.raises(InputError, match="missing keys preprocessed_eeg_data, times"):
        load_things_eeg2(root, 1)
    meta = things_eeg2_paths(root)["metadata"]
    _overwrite(meta, {"test_img_files": ["a.jpg"]})
    with pytest.raises(InputError, match="missing keys train_img_files, train_img_concepts, "
                                         "test_img_concepts"):
        load_image_metadata(root)


def test_not_a_pickled_dict(tmp_path):
    root = _fresh(tmp_path)
    path = things_eeg2_paths(root, 1)["eeg/test"]
    np.save(path, np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"array of float64 with shape \(3, 4\); expected a pickled dict"):
        load_things_eeg2(root, 1)
    path.write_bytes(b"garbage")
    with pytest.raises(InputError, match="cannot read as a .npy file"):
        load_things_eeg2(root, 1)


def test_shape_mismatches(tmp_path):
    root = _fresh(tmp_path)
    path = things_eeg2_paths(root, 1)["eeg/test"]
    raw = np.load(path, allow_pickle=True).item()
    _overwrite(path, {**raw, "preprocessed_eeg_data": raw["preprocessed_eeg_data"][:4]})
    with pytest.raises(InputError, match="has 4 images but .* lists 6 test_img_files"):
        load_things_eeg2(root, 1)
    _overwrite(path, {**raw, "preprocessed_eeg_data": raw["preprocessed_eeg_data"][:, 0]})
    with pytest.raises(InputError, match=r"expected a float array \(n_images, n_reps, n_channels"):
        load_things_eeg2(root, 1)
    _overwrite(path, {**raw, "ch_names": raw["ch_names"][:16]})
    with pytest.raises(InputError, match=r"ch_names has shape \(16,\)"):
        load_things_eeg2(root, 1)
    _overwrite(path, {**raw, "times": raw["times"][:99]})
    with pytest.raises(InputError, match=r"times \(99,\)"):
        load_things_eeg2(root, 1)
    meta = things_eeg2_paths(root)["metadata"]
    m = np.load(meta, allow_pickle=True).item()
    _overwrite(meta, {**m, "test_img_concepts": m["test_img_concepts"][:5]})
    with pytest.raises(InputError, match="test_img_files has 6 entries but test_img_concepts has 5"):
        load_image_metadata(root)


def test_unknown_channels_list_valid_names(release):
    root, _ = release
    with pytest.raises(InputError, match=r"unknown channel names \['Cz'\]; valid names are Pz, P3, P7"):
        load_things_eeg2(root, 1, channels=["Oz", "Cz"])
    with pytest.raises(InputError, match="duplicates"):
        load_things_eeg2(root, 1, channels=["Oz", "Oz"])


@pytest.mark.parametrize("tmin, tmax, match", [
    (-0.3, 0.1, "outside the epoch"),
    (0.0, 0.9, "outside the epoch"),
    (0.2, 0.1, "is empty"),
    (0.1, 0.1, "is empty"),
    (0.101, 0.105, "holds no sample"),
])
def test_bad_time_windows(release, tmin, tmax, match):
    with pytest.raises(InputError, match=match):
        load_things_eeg2(release[0], 1, tmin=tmin, tmax=tmax)


def test_nan_in_selected_data(tmp_path):
    eeg = _eeg(3)
    eeg[2, 1, 4, 25] = np.nan  # inside the default window
    eeg[0, 0, 0, 0] = np.nan  # outside it (t = -0.2 s)
    root = _fresh(tmp_path, data={1: eeg})
    with pytest.raises(InputError, match=r"1 non-finite values .* first at \(image, rep, channel, "
                                         r"time\) = \(2, 1, 4, 5\)"):
        load_things_eeg2(root, 1)
    # the NaN outside the window/channels is not read
    res = load_things_eeg2(root, 1, channels=["P3"], tmin=0.3, tmax=0.4)
    assert np.all(np.isfinite(res["data"]))


def test_bad_split_option(release):
    with pytest.raises(ValueError, match="Allowed values are 'training' and 'test'"):
        load_things_eeg2(release[0], 1, split="train")


def test_writer_rejects_bad_input(tmp_path):
    with pytest.raises(InputError, match=r"expected \(n_images, n_reps, 17, 100\)"):
        write_synthetic_things_eeg2(tmp_path, data_by_subject={1: np.zeros((2, 2, 16, 100))})
    with pytest.raises(InputError, match="another subject has"):
        write_synthetic_things_eeg2(tmp_path, data_by_subject={1: _eeg(0, 3), 2: _eeg(0, 4)})
    with pytest.raises(InputError, match="expected 6, the image count"):
        write_synthetic_things_eeg2(tmp_path, data_by_subject={1: _eeg(0)},
                                    image_files={"test": ["a.jpg"]})


# --------------------------------------------------------------- silent wrong data (issue 17)


def test_duplicate_channel_names(tmp_path):
    root = _fresh(tmp_path)
    ch = list(THINGS_EEG2_CHANNELS)
    ch[5] = "Pz"  # two columns named Pz: channels=['Pz'] would pick one silently
    path = things_eeg2_paths(root, 1)["eeg/test"]
    raw = np.load(path, allow_pickle=True).item()
    _overwrite(path, {**raw, "ch_names": ch})
    with pytest.raises(InputError, match=r"preprocessed_eeg_test.npy: ch_names holds 'Pz' twice "
                                         r"\(positions 0 and 5\); expected distinct"):
        load_things_eeg2(root, 1, channels=["Pz"])
    with pytest.raises(InputError, match="ch_names holds 'Pz' twice"):
        load_things_eeg2(root, 1)


@pytest.mark.parametrize("split, prefix", [("test", "test"), ("training", "train")])
def test_duplicate_image_file_names(tmp_path, split, prefix):
    files = [f"img{i}.jpg" for i in range(N_IMG)]
    files[4] = files[1]
    root = _fresh(tmp_path, data={1: {"test": _eeg(5), "training": _eeg(6)}},
                  image_files={split: files})
    with pytest.raises(InputError, match=rf"image_metadata.npy: {prefix}_img_files holds "
                                         r"'img1.jpg' twice \(entries 1 and 4\); expected one "
                                         "distinct file per image"):
        load_things_eeg2(root, 1)
