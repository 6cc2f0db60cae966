"""BData reader and writer: planted round trips, brute-force references, PCA on train only, bad files."""

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA

from brainalign.io.bdata import (
    load_bdata_rois,
    pca_visual_cortex,
    read_bdata,
    stimulus_id_to_name,
    write_synthetic_bdata,
)
from brainalign.utils import InputError

N_STIM, N_REPS = 9, 4
SIZES = {"ROI_V1": 7, "ROI_V2": 5, "ROI_V3": 4, "ROI_hV4": 3, "ROI_LOC": 6, "ROI_FFA": 2,
         "ROI_PPA": 3}


def _ids(rng, n=N_STIM):
    wnid = rng.choice(np.arange(1_000_000, 9_999_999), n, replace=False)
    image = rng.integers(1, 99_999, n)
    return wnid + image / 1e6  # unsorted on purpose


def _planted(seed=0, n_stim=N_STIM, n_reps=N_REPS, sizes=SIZES):
    rng = np.random.default_rng(seed)
    ids = _ids(rng, n_stim)
    trials = {roi: rng.normal(0, 1, (n_stim, 1, v)) + rng.normal(0, 0.5, (n_stim, n_reps, v))
              for roi, v in sizes.items()}
    return ids, trials


@pytest.fixture(scope="module")
def shen(tmp_path_factory):
    path = tmp_path_factory.mktemp("bdata") / "sub-01_perceptionNaturalImageTest_original_VC.h5"
    ids, trials = _planted()
    write_synthetic_bdata(path, responses_by_roi=trials, stimulus_ids=ids, n_reps=N_REPS, seed=3)
    return path, ids, trials


def _raw(path):
    """Everything in the file, read with bare h5py (no module helpers)."""
    with h5py.File(path, "r") as f:
        keys = [k.decode() for k in f["metadata/key"][()]]
        value = f["metadata/value"][()]
        data = f["dataset"][()]
        vmap = {k: {float(n): d[()].decode() for n, d in g.items()} for k, g in f["vmap"].items()}
    return keys, value, data, vmap


# --------------------------------------------------------------- file layout


def test_layout_matches_the_bdata_format(shen):
    path, ids, trials = shen
    with h5py.File(path, "r") as f:
        assert set(f.keys()) == {"dataset", "metadata", "vmap"}
        assert f["dataset"].dtype == np.float64 and f["dataset"].ndim == 2
        assert f["metadata/key"].dtype.kind == "S" and f["metadata/description"].dtype.kind == "S"
        assert f["metadata/value"].shape == (len(f["metadata/key"]), f["dataset"].shape[1])
        assert f["dataset"].shape[0] == N_STIM * N_REPS
    keys, value, data, vmap = _raw(path)
    expected = {"VoxelData", "ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_LOC", "ROI_FFA",
                "ROI_PPA", "ROI_LVC", "ROI_HVC", "ROI_VC", "Run", "Block", "stimulus_name"}
    assert expected <= set(keys)
    row = {k: value[i] for i, k in enumerate(keys)}
    vox = row["VoxelData"] == 1
    assert vox.sum() == sum(SIZES.values())
    # ROI rows: 1 on members, 0 on other voxels, NaN on non-voxel columns
    for roi in SIZES:
        assert np.all(np.isnan(row[roi][~vox])) and set(np.unique(row[roi][vox])) == {0.0, 1.0}
    lvc = sum(row[r] == 1 for r in ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4")).astype(bool)
    hvc = sum(row[r] == 1 for r in ("ROI_LOC", "ROI_FFA", "ROI_PPA")).astype(bool)
    np.testing.assert_array_equal(row["ROI_LVC"] == 1, lvc)
    np.testing.assert_array_equal(row["ROI_HVC"] == 1, hvc)
    np.testing.assert_array_equal(row["ROI_VC"] == 1, vox)
    for key in ("Run", "Block", "stimulus_name"):
        assert np.nansum(row[key]) == 1 and np.sum(np.isnan(row[key])) == len(row[key]) - 1
    # vmap: /vmap/stimulus_name/<float> -> WNID name
    assert vmap["stimulus_name"] == {float(i): stimulus_id_to_name(i) for i in ids}
    # rows: run r shows every stimulus once
    run = data[:, row["Run"] == 1][:, 0]
    label = data[:, row["stimulus_name"] == 1][:, 0]
    for r in range(1, N_REPS + 1):
        assert sorted(label[run == r]) == sorted(ids)


def test_stimulus_id_to_name():
    assert stimulus_id_to_name(1443537.022563) == "n01443537_22563"
    assert stimulus_id_to_name(1518878.005958) == "n01518878_5958"
    assert stimulus_id_to_name(12.0) == "12"


# --------------------------------------------------------------- BData object


def test_select_get_keys_against_raw_columns(shen):
    path, ids, trials = shen
    keys, value, data, _ = _raw(path)
    bd = read_bdata(path)
    assert bd.keys() == keys
    assert bd.shape == data.shape
    for i, key in enumerate(keys):
        if np.any(value[i] == 1):
            np.testing.assert_array_equal(bd.select(key), data[:, value[i] == 1])
    run = bd.get("Run")
    assert run.shape == (data.shape[0],)
    np.testing.assert_array_equal(run, data[:, value[keys.index("Run")] == 1][:, 0])
    assert bd.description("ROI_V1").startswith("1 = ")
    np.testing.assert_array_equal(bd.labels("stimulus_name"),
                                  [stimulus_id_to_name(x) for x in bd.get("stimulus_name")])
    rows = np.array([1, 4, 5, 20])
    np.testing.assert_array_equal(bd.select("ROI_V2", rows=rows), bd.select("ROI_V2")[rows])


def test_select_reads_in_blocks(shen, monkeypatch):
    from brainalign.io import bdata

    path, _, _ = shen
    full = read_bdata(path).select("ROI_VC")
    monkeypatch.setattr(bdata, "_READ_BUDGET_BYTES", 8 * 40)  # one row per block
    np.testing.assert_array_equal(read_bdata(path).select("ROI_VC"), full)
    rows = np.array([0, 7, 8, 30])
    np.testing.assert_array_equal(read_bdata(path).select("ROI_VC", rows=rows), full[rows])


def test_get_refuses_a_column_set(shen):
    with pytest.raises(InputError, match="marks 7 columns; get"):
        read_bdata(shen[0]).get("ROI_V1")


# --------------------------------------------------------------- load_bdata_rois


def _reference(path, rois, label_key="stimulus_name"):
    """Per-stimulus means by an explicit loop over trials."""
    keys, value, data, _ = _raw(path)
    label = data[:, value[keys.index(label_key)] == 1][:, 0]
    ids = sorted(set(label))
    out = {}
    for roi in rois:
        cols = value[keys.index(roi)] == 1
        out[roi] = np.array([np.mean([data[t, cols] for t in range(len(label)) if label[t] == s],
                                     axis=0) for s in ids])
    return np.array(ids), out


def test_round_trip_average_matches_loop_and_plant(shen):
    path, ids, trials = shen
    rois = ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_LOC", "ROI_VC")
    res = load_bdata_rois(path, rois)
    ref_ids, ref = _reference(path, rois)
    order = np.argsort(ids)
    np.testing.assert_array_equal(res["stimulus_ids"], ref_ids)
    np.testing.assert_array_equal(res["stimulus_ids"], ids[order])
    np.testing.assert_array_equal(res["stimulus_labels"], [stimulus_id_to_name(i) for i in ids[order]])
    np.testing.assert_array_equal(res["n_repetitions"], np.full(N_STIM, N_REPS))
    assert res["label_key"] == "stimulus_name"
    for roi in rois:
        np.testing.assert_allclose(res["responses"][roi], ref[roi], rtol=1e-12, atol=1e-12)
    for roi in ("ROI_V1", "ROI_LOC"):
        np.testing.assert_allclose(res["responses"][roi], trials[roi].mean(axis=1)[order],
                                   rtol=1e-12, atol=1e-12)


def test_round_trip_without_averaging_keeps_time_order(shen):
    path, ids, trials = shen
    res = load_bdata_rois(path, ("ROI_V1", "ROI_PPA"), average_repetitions=False)
    order = np.argsort(ids)
    for roi in ("ROI_V1", "ROI_PPA"):
        assert res["responses"][roi].shape == (N_STIM, N_REPS, SIZES[roi])
        np.testing.assert_array_equal(res["responses"][roi], trials[roi][order])


def test_blocked_average_equals_unblocked(shen, monkeypatch):
    from brainalign.io import bdata

    path, _, _ = shen
    full = load_bdata_rois(path, ("ROI_VC",))["responses"]["ROI_VC"]
    monkeypatch.setattr(bdata, "_READ_BUDGET_BYTES", 8 * 40 * 3)
    np.testing.assert_allclose(load_bdata_rois(path, ("ROI_VC",))["responses"]["ROI_VC"], full,
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(n_stim=st.integers(1, 6), n_reps=st.integers(1, 4), seed=st.integers(0, 2**16),
       sizes=st.dictionaries(st.sampled_from(["ROI_V1", "ROI_V3", "ROI_LOC", "ROI_PPA"]),
                             st.integers(1, 5), min_size=1))
def test_round_trip_property(n_stim, n_reps, seed, sizes):
    ids, trials = _planted(seed, n_stim, n_reps, sizes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.h5"
        write_synthetic_bdata(path, responses_by_roi=trials, stimulus_ids=ids, n_reps=n_reps,
                              seed=seed)
        avg = load_bdata_rois(path, tuple(sizes) + ("ROI_VC",))
        raw = load_bdata_rois(path, tuple(sizes), average_repetitions=False)
    order = np.argsort(ids)
    np.testing.assert_array_equal(avg["stimulus_ids"], ids[order])
    for roi in sizes:
        np.testing.assert_array_equal(raw["responses"][roi], trials[roi][order])
        np.testing.assert_allclose(avg["responses"][roi], trials[roi].mean(axis=1)[order],
                                   rtol=1e-12, atol=1e-12)
    assert avg["responses"]["ROI_VC"].shape == (n_stim, sum(sizes.values()))


def test_god_layout_stimulus_id_datatype_no_vmap(tmp_path):
    rng = np.random.default_rng(5)
    ids = _ids(rng, 6)
    resp = {"ROI_V1": rng.normal(size=(6, 4)), "ROI_V4": rng.normal(size=(6, 3))}
    dtype = np.array([1, 2, 1, 2, 2, 1])
    path = tmp_path / "Subject1.h5"
    write_synthetic_bdata(path, responses_by_roi=resp, stimulus_ids=ids, n_reps=3, noise_sd=0.3,
                          seed=1, label_key="stimulus_id", write_vmap=False, data_type=dtype)
    bd = read_bdata(path)
    assert "ROI_V4" in bd.keys() and "ROI_hV4" not in bd.keys() and bd.vmap("stimulus_id") == {}
    res = load_bdata_rois(path, ("ROI_V1", "ROI_V4"), data_type=2)  # auto-detects stimulus_id
    assert res["label_key"] == "stimulus_id"
    test_ids = np.sort(ids[dtype == 2])
    np.testing.assert_array_equal(res["stimulus_ids"], test_ids)
    np.testing.assert_array_equal(res["stimulus_labels"], [stimulus_id_to_name(i) for i in test_ids])
    # explicit loop over the DataType == 2 trials
    label, types, v1 = bd.get("stimulus_id"), bd.get("DataType"), bd.select("ROI_V1")
    ref = np.array([v1[(label == s) & (types == 2)].mean(axis=0) for s in test_ids])
    np.testing.assert_allclose(res["responses"]["ROI_V1"], ref, rtol=1e-12, atol=1e-12)
    planted = resp["ROI_V1"][[list(ids).index(s) for s in test_ids]]
    assert np.abs(res["responses"]["ROI_V1"] - planted).max() < 1.0  # mean of 3, noise sd 0.3


# --------------------------------------------------------------- PCA


def test_pca_is_fit_on_train_only():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(40, 25)) @ rng.normal(size=(25, 25))
    test = rng.normal(size=(10, 25)) * 5 + 3
    tr, te, pca = pca_visual_cortex(train, test, n_components=8, seed=0)
    ref = PCA(n_components=8, svd_solver="full").fit(train)
    np.testing.assert_allclose(np.abs(pca.components_), np.abs(ref.components_), atol=1e-10)
    np.testing.assert_allclose(pca.mean_, ref.mean_)
    np.testing.assert_allclose(tr, ref.transform(train), atol=1e-9)
    np.testing.assert_allclose(te, ref.transform(test), atol=1e-9)
    # different test data: identical fit
    _, te2, pca2 = pca_visual_cortex(train, rng.normal(size=(10, 25)) * 100, n_components=8, seed=0)
    np.testing.assert_array_equal(pca2.components_, pca.components_)
    np.testing.assert_array_equal(pca2.mean_, pca.mean_)
    # not what a fit on train + test would give
    both = PCA(n_components=8, svd_solver="full").fit(np.vstack([train, test]))
    assert not np.allclose(np.abs(both.components_), np.abs(pca.components_), atol=1e-3)


def test_pca_caps_components_with_warning():
    rng = np.random.default_rng(1)
    train, test = rng.normal(size=(12, 30)), rng.normal(size=(4, 30))
    with pytest.warns(UserWarning, match="exceeds min"):
        tr, te, pca = pca_visual_cortex(train, test, n_components=1024, seed=0)
    assert tr.shape == (12, 12) and te.shape == (4, 12)


def test_pca_randomized_solver_is_seeded():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(60, 80))
    a = pca_visual_cortex(train, None, n_components=5, seed=4, svd_solver="randomized")
    b = pca_visual_cortex(train, None, n_components=5, seed=4, svd_solver="randomized")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] is None


def test_pca_bad_inputs():
    rng = np.random.default_rng(3)
    with pytest.raises(InputError, match="test_responses has 4 voxels"):
        pca_visual_cortex(rng.normal(size=(5, 3)), rng.normal(size=(2, 4)), seed=0)
    bad = rng.normal(size=(5, 3))
    bad[1, 1] = np.nan
    with pytest.raises(InputError, match="train_responses: found 1 non-finite"):
        pca_visual_cortex(bad, None, seed=0)
    with pytest.raises(InputError, match="expected a numeric 2-D array"):
        pca_visual_cortex(np.zeros(5), None, seed=0)


# --------------------------------------------------------------- malformed files


def _write(path, **over):
    """A small valid file, with datasets replaced or dropped (value None) by ``over``."""
    rng = np.random.default_rng(0)
    parts = {
        "dataset": rng.normal(size=(4, 3)),
        "metadata/key": np.array([b"VoxelData", b"ROI_V1", b"stimulus_name"]),
        "metadata/description": np.array([b"1 = VoxelData", b"1 = ROI_V1", b"1 = stimulus_name"]),
        "metadata/value": np.array([[1, 1, np.nan], [1, 0, np.nan], [np.nan, np.nan, 1]]),
    }
    parts["dataset"][:, 2] = [1.5, 2.5, 1.5, 2.5]
    parts.update(over)
    with h5py.File(path, "w") as f:
        for name, data in parts.items():
            if data is not None:
                f.create_dataset(name, data=data)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="BData file not found"):
        read_bdata(tmp_path / "nope.h5")


def test_not_hdf5(tmp_path):
    p = tmp_path / "x.h5"
    p.write_text("hello")
    with pytest.raises(InputError, match="cannot open as HDF5"):
        read_bdata(p)


def test_missing_dataset(tmp_path):
    with pytest.raises(InputError, match="expected a 2-D float dataset '/dataset'"):
        read_bdata(_write(tmp_path / "x.h5", dataset=None))


def test_missing_metadata(tmp_path):
    with pytest.raises(InputError, match=r"missing \['value'\]"):
        read_bdata(_write(tmp_path / "x.h5", **{"metadata/value": None}))


def test_value_width_mismatch(tmp_path):
    p = _write(tmp_path / "x.h5", **{"metadata/value": np.ones((3, 5))})
    with pytest.raises(InputError, match=r"has shape \(3, 5\); expected \(n_keys, n_columns\) = \(3, 3\)"):
        read_bdata(p)


def test_description_count_mismatch(tmp_path):
    p = _write(tmp_path / "x.h5", **{"metadata/description": np.array([b"a", b"b"])})
    with pytest.raises(InputError, match="one description per key"):
        read_bdata(p)


def test_unknown_key_lists_available(tmp_path):
    p = _write(tmp_path / "x.h5")
    with pytest.raises(InputError, match="'ROI_V9' not found; available keys are VoxelData, ROI_V1, "
                                         "stimulus_name"):
        load_bdata_rois(p, ("ROI_V9",))


def test_roi_with_zero_columns(shen):
    path, _, _ = shen
    tmp = path.parent / "no_v1.h5"
    ids, trials = _planted(sizes={"ROI_V2": 3})
    write_synthetic_bdata(tmp, responses_by_roi=trials, stimulus_ids=ids, n_reps=N_REPS)
    with pytest.raises(InputError, match="'ROI_V1' marks no column"):
        load_bdata_rois(tmp, ("ROI_V1",))


def test_nan_in_selected_data(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 3))
    data[:, 2] = [1.5, 2.5, 1.5, 2.5]
    data[2, 0] = np.nan
    p = _write(tmp_path / "x.h5", dataset=data)
    with pytest.raises(InputError, match="'ROI_V1': found 1 non-finite values .* row 2"):
        load_bdata_rois(p, ("ROI_V1",))
    with pytest.raises(InputError, match="non-finite"):
        read_bdata(p).select("VoxelData")


def test_label_key_missing(tmp_path):
    p = _write(tmp_path / "x.h5", **{
        "metadata/key": np.array([b"VoxelData", b"ROI_V1", b"Label"]),
    })
    with pytest.raises(InputError, match="no stimulus label key found; expected one of "
                                         "stimulus_name, stimulus_id"):
        load_bdata_rois(p, ("ROI_V1",))
    with pytest.raises(InputError, match="'stimulus_id' not found"):
        load_bdata_rois(p, ("ROI_V1",), label_key="stimulus_id")
    assert load_bdata_rois(p, ("ROI_V1",), label_key="Label")["stimulus_ids"].tolist() == [1.5, 2.5]


def test_nan_labels(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 3))
    data[:, 2] = [1.5, np.nan, 1.5, 2.5]
    with pytest.raises(InputError, match="'stimulus_name' is NaN or inf on 1 trials, first on row 1"):
        load_bdata_rois(_write(tmp_path / "x.h5", dataset=data), ("ROI_V1",))


def test_vmap_missing_label(tmp_path):
    p = _write(tmp_path / "x.h5")
    with h5py.File(p, "a") as f:
        f.create_dataset("vmap/stimulus_name/1.5", data="n00000001_500000")
    with pytest.raises(InputError, match="value 2.5 of 'stimulus_name' has no label"):
        load_bdata_rois(p, ("ROI_V1",))


def test_unequal_repetitions_without_averaging(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 3))
    data[:, 2] = [1.5, 2.5, 1.5, 1.5]
    p = _write(tmp_path / "x.h5", dataset=data)
    res = load_bdata_rois(p, ("ROI_V1",), n_repetitions="any")  # explicit opt-in
    np.testing.assert_array_equal(res["n_repetitions"], [3, 1])
    with pytest.raises(InputError, match="unequal repetition counts"):
        load_bdata_rois(p, ("ROI_V1",), average_repetitions=False, n_repetitions="any")


def test_data_type_filter_errors(shen):
    with pytest.raises(InputError, match="'DataType' not found"):
        load_bdata_rois(shen[0], ("ROI_V1",), data_type=2)


def test_legacy_group_names_are_read(tmp_path):
    p = _write(tmp_path / "x.h5")
    with h5py.File(p, "a") as f:
        f.move("dataset", "dataSet")
        f.move("metadata", "metaData")
    res = load_bdata_rois(p, ("ROI_V1",))
    assert res["responses"]["ROI_V1"].shape == (2, 1)


def test_writer_rejects_bad_input(tmp_path):
    ids = np.array([1.1, 2.2])
    with pytest.raises(InputError, match="not a plantable ROI"):
        write_synthetic_bdata(tmp_path / "x.h5", responses_by_roi={"ROI_VC": np.ones((2, 3))},
                              stimulus_ids=ids, n_reps=2)
    with pytest.raises(InputError, match=r"expected \(2, n_voxels\) or \(2, 2, n_voxels\)"):
        write_synthetic_bdata(tmp_path / "x.h5", responses_by_roi={"ROI_V1": np.ones((3, 3))},
                              stimulus_ids=ids, n_reps=2)
    with pytest.raises(InputError, match="duplicates"):
        write_synthetic_bdata(tmp_path / "x.h5", responses_by_roi={"ROI_V1": np.ones((2, 3))},
                              stimulus_ids=[1.0, 1.0], n_reps=2)
    assert not (tmp_path / "x.h5").exists()


# --------------------------------------------------------------- silent wrong data (issue 17)


def test_two_stimuli_sharing_one_id_is_an_error(shen, tmp_path):
    """Stimulus B's trials carry A's id: A would be averaged over 2 x N_REPS trials."""
    path, ids, _ = shen
    bad = tmp_path / "shared_id.h5"
    bad.write_bytes(path.read_bytes())
    with h5py.File(bad, "a") as f:
        keys = [k.decode() for k in f["metadata/key"][()]]
        col = int(np.flatnonzero(f["metadata/value"][keys.index("stimulus_name")] == 1)[0])
        data = f["dataset"][()]
        data[data[:, col] == ids[1], col] = ids[0]
        f["dataset"][...] = data
        del f["vmap/stimulus_name/" + str(float(ids[1]))]
    name = stimulus_id_to_name(ids[0])
    with pytest.raises(InputError, match=rf"shared_id.h5: stimuli have unequal repetition counts: "
                                         rf"'{name}' has {2 * N_REPS} trials.*expected {N_REPS}.*"
                                         "share one 'stimulus_name' value"):
        load_bdata_rois(bad, ("ROI_V1",))
    with pytest.raises(InputError, match=rf"1 of {N_STIM - 1} stimuli do not have the expected "
                                         rf"n_repetitions={N_REPS} trials: '{name}' has {2 * N_REPS}"):
        load_bdata_rois(bad, ("ROI_V1",), n_repetitions=N_REPS)
    res = load_bdata_rois(bad, ("ROI_V1",), n_repetitions="any")
    assert res["n_repetitions"].max() == 2 * N_REPS


def test_expected_repetition_count(shen):
    path, _, _ = shen
    res = load_bdata_rois(path, ("ROI_V1",), n_repetitions=N_REPS)
    np.testing.assert_array_equal(res["n_repetitions"], np.full(N_STIM, N_REPS))
    with pytest.raises(InputError, match=rf"sub-01_.*\.h5: {N_STIM} of {N_STIM} stimuli do not "
                                         rf"have the expected n_repetitions={N_REPS + 1} trials"):
        load_bdata_rois(path, ("ROI_V1",), n_repetitions=N_REPS + 1)
    for bad in (0, 1.5, "all", True):
        with pytest.raises(InputError, match="n_repetitions must be"):
            load_bdata_rois(path, ("ROI_V1",), n_repetitions=bad)


def test_repetition_counts_may_differ_between_data_types(tmp_path):
    """GOD: training images are shown once, test images many times; counts are per DataType."""
    labels = [1.5, 2.5, 3.5, 3.5, 3.5, 4.5, 4.5, 4.5]
    types = [1, 1, 2, 2, 2, 2, 2, 2]
    data = np.random.default_rng(0).normal(size=(8, 4))
    data[:, 2], data[:, 3] = labels, types
    nan = np.nan
    p = _write(tmp_path / "Subject1.h5", dataset=data, **{
        "metadata/key": np.array([b"VoxelData", b"ROI_V1", b"stimulus_id", b"DataType"]),
        "metadata/description": np.array([b"v", b"r", b"s", b"d"]),
        "metadata/value": np.array([[1, 1, nan, nan], [1, 0, nan, nan], [nan, nan, 1, nan],
                                    [nan, nan, nan, 1]]),
    })
    res = load_bdata_rois(p, ("ROI_V1",))
    np.testing.assert_array_equal(res["n_repetitions"], [1, 1, 3, 3])
    with h5py.File(p, "a") as f:
        d = f["dataset"][()]
        d[2, 2] = 4.5  # a test trial of 3.5 now carries 4.5's id
        f["dataset"][...] = d
    with pytest.raises(InputError, match="unequal repetition counts among DataType 2"):
        load_bdata_rois(p, ("ROI_V1",))
    assert load_bdata_rois(p, ("ROI_V1",), data_type=1)["n_repetitions"].tolist() == [1, 1]


def test_two_ids_with_the_same_vmap_label(tmp_path):
    p = _write(tmp_path / "x.h5")
    with h5py.File(p, "a") as f:
        f.create_dataset("vmap/stimulus_name/1.5", data="n00000001_500000")
        f.create_dataset("vmap/stimulus_name/2.5", data="n00000001_500000")
    with pytest.raises(InputError, match=r"x.h5: values 1.5 and 2.5 of 'stimulus_name' have the "
                                         r"same label 'n00000001_500000' in /vmap/stimulus_name"):
        load_bdata_rois(p, ("ROI_V1",))


def test_metadata_value_stored_as_strings(tmp_path):
    value = np.array([[b"1", b"1", b"nan"], [b"1", b"0", b"nan"], [b"nan", b"nan", b"1"]])
    p = _write(tmp_path / "x.h5", **{"metadata/value": value})
    with pytest.raises(InputError, match=r"x.h5: /metadata/value is \|S3 with shape \(3, 3\); "
                                         r"expected a float matrix \(n_keys, n_columns\)"):
        read_bdata(p)
