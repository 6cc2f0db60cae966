"""NSD reader and synthetic writer: planted round trip, a brute-force reference, bad inputs."""

import shutil

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import scipy.io
from scipy.stats import zscore

from brainalign.io import nsd
from brainalign.io.nsd import NSD_N_IMAGES, load_nsd_subject, nsd_paths, write_synthetic_nsd
from brainalign.utils import InputError

N_IMAGES, N_REPS = 24, 3
SUBJECTS = {1: {"EVC": 9, "OTC": 16}, 5: {"EVC": 5, "OTC": 11}}


def _planted(seed=0, n_images=N_IMAGES, n_reps=N_REPS, subjects=SUBJECTS):
    rng = np.random.default_rng(seed)
    ids = rng.choice(NSD_N_IMAGES, n_images, replace=False)  # unsorted on purpose
    responses = {
        s: {
            roi: rng.normal(0, 2, (n_images, v)) + rng.normal(0, 0.7, (n_reps, n_images, v))
            for roi, v in rois.items()
        }
        for s, rois in subjects.items()
    }
    return ids, responses


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """72 shared trials in 2 full sessions of 36 (no extra trials)."""
    root = tmp_path_factory.mktemp("nsd")
    ids, responses = _planted()
    images = np.random.default_rng(1).integers(0, 256, (N_IMAGES, 6, 5, 3), dtype=np.uint8)
    write_synthetic_nsd(root, image_ids=ids, responses=responses, images=images, n_filler_voxels=40)
    return root, ids, responses, images


@pytest.fixture(scope="module")
def padded(tmp_path_factory):
    """72 shared trials in 3 sessions of 25: 3 extra non-shared trials fill the last one."""
    root = tmp_path_factory.mktemp("nsd_padded")
    ids, responses = _planted(seed=3)
    write_synthetic_nsd(root, image_ids=ids, responses=responses, trials_per_session=25,
                        seed=7, n_filler_voxels=40)
    return root, ids, responses


def _fresh(tmp_path, **kwargs):
    ids, responses = _planted(seed=11, subjects={1: {"EVC": 4, "OTC": 6}})
    write_synthetic_nsd(tmp_path, image_ids=ids, responses=responses, n_filler_voxels=16, **kwargs)
    return tmp_path, ids, responses


def _load(root, subject=1, **kwargs):
    return load_nsd_subject(root, subject, progress=False, **kwargs)


# --------------------------------------------------------------- brute-force reference

STREAMS = {"early": 1, "midventral": 2, "midlateral": 3, "midparietal": 4, "ventral": 5,
           "lateral": 6, "parietal": 7}
FLOC = {"OFA": ("faces", 1), "FFA-1": ("faces", 2), "FFA-2": ("faces", 3),
        "mTL-faces": ("faces", 4), "EBA": ("bodies", 1), "FBA-1": ("bodies", 2),
        "FBA-2": ("bodies", 3), "OPA": ("places", 1), "PPA": ("places", 2),
        "RSC": ("places", 3), "OWFA": ("words", 1), "VWFA-1": ("words", 2),
        "VWFA-2": ("words", 3)}
DEFAULT_FLOC = ("OFA", "FFA-1", "FFA-2", "EBA", "FBA-1", "FBA-2", "OPA", "PPA", "OWFA",
                "VWFA-1", "VWFA-2")


def _reference(root, subject, *, ncsnr_threshold=0.2,
               otc_streams=("midventral", "midlateral", "ventral", "lateral"),
               floc_rois=DEFAULT_FLOC, floc_t_threshold=1.0, zscore_sessions=True, n_reps=3):
    """Whole arrays, explicit loops, written from SPEC without the module's helpers."""
    func = root / "nsddata" / "ppdata" / f"subj{subject:02d}" / "func1pt8mm"
    betas_dir = (root / "nsddata_betas" / "ppdata" / f"subj{subject:02d}" / "func1pt8mm"
                 / "betas_fithrf_GLMdenoise_RR")

    def vol(path):
        return np.asarray(nib.load(path).get_fdata())

    ncsnr = vol(betas_dir / "ncsnr.nii.gz")
    general = vol(func / "roi" / "nsdgeneral.nii.gz")
    streams = vol(func / "roi" / "streams.nii.gz")
    otc = (general == 1) & np.isin(streams, [STREAMS[s] for s in otc_streams])
    for name in floc_rois:
        domain, label = FLOC[name]
        roi = vol(func / "roi" / f"floc-{domain}.nii.gz")
        t = vol(func / f"floc_{domain}tval.nii.gz")
        otc |= (roi == label) & (t > floc_t_threshold)
    masks = {"OTC": (ncsnr > ncsnr_threshold) & otc,
             "EVC": (ncsnr > ncsnr_threshold) & (streams == 1)}

    sessions = []
    for path in sorted(betas_dir.glob("betas_session*.hdf5")):
        with h5py.File(path, "r") as f:
            b = f["betas"][:].transpose(3, 2, 1, 0).astype(np.float64)  # (X, Y, Z, trials)
        sessions.append(zscore(b, axis=-1) if zscore_sessions else b / 300)
    data = np.concatenate(sessions, axis=-1)

    mat = scipy.io.loadmat(root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
    order = mat["masterordering"][0].astype(int)
    subjectim = mat["subjectim"].astype(int)
    n_shared = mat["sharedix"].shape[1]
    trials = {}
    for t in range(data.shape[-1]):
        if order[t] <= n_shared:
            trials.setdefault(subjectim[subject - 1, order[t] - 1] - 1, []).append(t)
    image_ids = np.array(sorted(trials))
    out = {}
    for roi, mask in masks.items():
        ijk = np.argwhere(mask)
        reps = np.empty((n_reps, len(image_ids), len(ijk)))
        for i, img in enumerate(image_ids):
            for r, t in enumerate(trials[img][:n_reps]):
                reps[r, i] = data[ijk[:, 0], ijk[:, 1], ijk[:, 2], t]
        out[roi] = (ijk, reps)
    return image_ids, out


# --------------------------------------------------------------- round trips


@pytest.mark.planted
@pytest.mark.parametrize("subject", sorted(SUBJECTS))
def test_planted_round_trip_percent_signal_change(dataset, subject):
    root, ids, responses, _ = dataset
    sub = _load(root, subject, zscore_sessions=False)
    order = np.argsort(ids)
    np.testing.assert_array_equal(sub.image_ids, ids[order])
    assert sub.image_ids.dtype == np.int64
    for roi, planted in responses[subject].items():
        planted = planted[:, order]
        assert sub.repetitions[roi].shape == planted.shape
        assert sub.repetitions[roi].dtype == np.float32
        assert sub.responses[roi].dtype == np.float32
        # int16 quantisation: each value within half a step of 1/300
        np.testing.assert_allclose(sub.repetitions[roi], planted, atol=1 / 600 + 1e-6, rtol=0)
        np.testing.assert_allclose(sub.responses[roi], planted.mean(0), atol=1 / 600 + 1e-6,
                                   rtol=0)
        assert sub.voxel_ijk[roi].shape == (planted.shape[2], 3)
        assert np.all(sub.ncsnr[roi] > 0.2)


@pytest.mark.planted
def test_planted_round_trip_zscored(dataset):
    """zscore_sessions=True equals the per-session z-scored (quantised) planted data."""
    root, ids, responses, _ = dataset
    mat = scipy.io.loadmat(nsd_paths(root, 1)["design"])
    order10k = mat["masterordering"][0].astype(int)  # 10k id = image rank in sorted ids
    tps = N_IMAGES * N_REPS // 2
    for subject in SUBJECTS:
        sub = _load(root, subject)
        for roi, planted in responses[subject].items():
            planted = np.rint(planted[:, np.argsort(ids)] * 300) / 300
            # trial matrix in time order, then z-score within each session
            seen = np.zeros(N_IMAGES, dtype=int)
            trial_rep = np.empty(len(order10k), dtype=int)
            for t, m in enumerate(order10k):
                trial_rep[t] = seen[m - 1]
                seen[m - 1] += 1
            trials = planted[trial_rep, order10k - 1]  # (n_trials, v)
            z = np.concatenate([zscore(trials[s:s + tps], axis=0)
                                for s in range(0, len(trials), tps)])
            expected = np.empty_like(planted)
            expected[trial_rep, order10k - 1] = z
            np.testing.assert_allclose(sub.repetitions[roi], expected, atol=2e-5)
            np.testing.assert_allclose(sub.responses[roi], expected.mean(0), atol=2e-5)


def test_padded_sessions_round_trip(padded):
    """Extra non-shared trials (a last session filled up) are skipped by the reader."""
    root, ids, responses = padded
    mat = scipy.io.loadmat(nsd_paths(root, 1)["design"])
    assert mat["masterordering"].shape == (1, 75)
    assert (mat["masterordering"] > N_IMAGES).sum() == 3
    for subject in SUBJECTS:
        sub = _load(root, subject, zscore_sessions=False)
        for roi, planted in responses[subject].items():
            np.testing.assert_allclose(sub.repetitions[roi], planted[:, np.argsort(ids)],
                                       atol=1 / 600 + 1e-6, rtol=0)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"zscore_sessions": False},
        {"otc_streams": ("ventral",)},
        {"floc_rois": ()},
        {"floc_t_threshold": 0.0},
        {"floc_rois": DEFAULT_FLOC + ("RSC", "mTL-faces")},
        {"ncsnr_threshold": 0.05},  # lets noise-only fillers (ncsnr 0.1) in
        {"n_reps": 2},
    ],
    ids=lambda o: ",".join(o) or "defaults",
)
def test_matches_brute_force_reference(padded, options):
    root, _, _ = padded
    ref_ids, ref = _reference(root, 5, **options)
    sub = _load(root, 5, **options)
    np.testing.assert_array_equal(sub.image_ids, ref_ids)
    for roi, (ijk, reps) in ref.items():
        np.testing.assert_array_equal(sub.voxel_ijk[roi], ijk)
        np.testing.assert_allclose(sub.repetitions[roi], reps, atol=2e-5)
        np.testing.assert_allclose(sub.responses[roi], reps.mean(0), atol=2e-5)


def test_selection_variants_change_the_voxels(padded):
    root, _, responses = padded
    default = _load(root, 1, zscore_sessions=False)
    n_otc = responses[1]["OTC"].shape[2]
    assert default.responses["OTC"].shape[1] == n_otc
    # some planted OTC voxels lie outside nsdgeneral: they come in through a floc ROI
    general = np.asarray(nib.load(nsd_paths(root, 1)["roi/nsdgeneral"]).dataobj)
    outside = general[tuple(default.voxel_ijk["OTC"].T)] != 1
    assert 0 < outside.sum() < n_otc
    no_floc = _load(root, 1, zscore_sessions=False, floc_rois=())
    assert no_floc.responses["OTC"].shape[1] == n_otc - outside.sum()
    more = _load(root, 1, zscore_sessions=False, floc_rois=DEFAULT_FLOC + ("RSC",))
    assert more.responses["OTC"].shape[1] > n_otc
    only = _load(root, 1, rois=("EVC",), zscore_sessions=False)
    assert set(only.responses) == {"EVC"}
    np.testing.assert_array_equal(only.responses["EVC"], default.responses["EVC"])


def test_small_read_blocks_give_the_same_answer(padded, monkeypatch):
    root, _, _ = padded
    expected = _load(root, 1)
    monkeypatch.setattr(nsd, "_READ_BUDGET_BYTES", 1)  # one trial per HDF5 read
    got = _load(root, 1)
    for roi in expected.responses:
        np.testing.assert_array_equal(got.repetitions[roi], expected.repetitions[roi])


def test_progress_bar(padded, capsys):
    root, _, _ = padded
    load_nsd_subject(root, 1, progress=True)
    assert "sessions" in capsys.readouterr().err


def test_ncsnr_in_func_folder_is_accepted(tmp_path):
    root, _, _ = _fresh(tmp_path)
    paths = nsd_paths(root, 1)
    expected = _load(root)
    shutil.move(paths["ncsnr"], paths["ncsnr_alt"])
    got = _load(root)
    np.testing.assert_array_equal(got.responses["OTC"], expected.responses["OTC"])


# --------------------------------------------------------------- the files written


def test_design_and_table_layout(dataset):
    root, ids, _, _ = dataset
    paths = nsd_paths(root, 1)
    mat = scipy.io.loadmat(paths["design"])
    assert mat["subjectim"].shape == (8, 10000)
    assert mat["sharedix"].shape == (1, N_IMAGES)
    sorted_ids = np.sort(ids)
    np.testing.assert_array_equal(mat["sharedix"][0], sorted_ids + 1)
    for row in mat["subjectim"].astype(int):
        np.testing.assert_array_equal(row[:N_IMAGES], sorted_ids + 1)
        assert len(np.unique(row)) == 10000
    order = mat["masterordering"][0].astype(int)
    assert np.array_equal(np.bincount(order)[1:], np.full(N_IMAGES, N_REPS))
    table = pd.read_csv(paths["stim_info"], index_col=0)
    assert list(table["nsdId"]) == list(sorted_ids)
    assert table["shared1000"].all()
    for s in range(1, 9):
        cols = [f"subject{s}_rep{r}" for r in range(N_REPS)]
        trials = table[cols].to_numpy()
        if s in SUBJECTS:  # trial numbers agree with the design
            for nid, row in zip(table["nsdId"], trials, strict=True):
                shown = order[row - 1]
                assert np.all(mat["subjectim"][s - 1, shown - 1] - 1 == nid)
        else:
            assert not trials.any()


def test_betas_file_layout(dataset):
    root, _, _, _ = dataset
    paths = nsd_paths(root, 1)
    streams = nib.load(paths["roi/streams"])
    X, Y, Z = streams.shape
    assert len({X, Y, Z}) == 3
    for s in (1, 2):
        with h5py.File(paths["betas_dir"] / f"betas_session{s:02d}.hdf5", "r") as f:
            assert f["betas"].dtype == np.int16
            assert f["betas"].shape == (N_IMAGES * N_REPS // 2, Z, Y, X)
    assert not (paths["betas_dir"] / "betas_session03.hdf5").exists()
    labels = np.asarray(streams.dataobj)
    assert set(np.unique(labels)) <= {-1, 0, 1, 2, 3, 4, 5, 6, 7}
    assert {4, 7} <= set(np.unique(labels))  # parietal fillers are present


def test_stimuli_file(dataset):
    root, ids, _, images = dataset
    with h5py.File(nsd_paths(root, 1)["stimuli"], "r") as f:
        brick = f["imgBrick"]
        assert brick.shape == (NSD_N_IMAGES, 6, 5, 3)
        assert brick.dtype == np.uint8
        assert brick.chunks == (1, 6, 5, 3)
        for i in (0, 5, N_IMAGES - 1):
            np.testing.assert_array_equal(brick[ids[i]], images[i])
        other = np.setdiff1d(np.arange(100), ids)[0]
        assert not brick[other].any()
    assert nsd_paths(root, 1)["stimuli"].stat().st_size < 1_000_000  # unwritten rows are free


def test_writer_is_seeded(tmp_path):
    ids, responses = _planted(seed=2, subjects={2: {"OTC": 5}})
    for name in ("a", "b"):
        write_synthetic_nsd(tmp_path / name, image_ids=ids, responses=responses, seed=4,
                            n_filler_voxels=8)
    a = scipy.io.loadmat(nsd_paths(tmp_path / "a", 2)["design"])
    b = scipy.io.loadmat(nsd_paths(tmp_path / "b", 2)["design"])
    np.testing.assert_array_equal(a["masterordering"], b["masterordering"])
    sub = _load(tmp_path / "a", 2, rois=("OTC",))
    assert sub.responses["OTC"].shape == (N_IMAGES, 5)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"image_ids": np.array([1, 1, 2])}, "duplicates"),
        ({"image_ids": np.array([1, 2, 73000])}, "0..72999"),
        ({"responses": {1: {"V1": np.zeros((3, 3, 2))}}}, "'V1'"),
        ({"responses": {1: {"OTC": np.zeros((3, 4, 2))}}}, r"expected \(n_reps, 3, n_voxels\)"),
        ({"responses": {1: {"OTC": np.full((3, 3, 2), 200.0)}}}, "int16"),
        ({"responses": {1: {"OTC": np.zeros((3, 3, 2)), "EVC": np.zeros((2, 3, 2))}}},
         "repetitions"),
        ({"responses": {9: {"OTC": np.zeros((3, 3, 2))}}}, "1..8"),
        ({"images": np.zeros((3, 4, 4, 3), dtype=np.float32)}, "uint8"),
    ],
)
def test_writer_rejects_bad_input(tmp_path, change, match):
    kwargs = {"image_ids": np.array([5, 1, 9]),
              "responses": {1: {"OTC": np.ones((3, 3, 2))}}}
    kwargs.update(change)
    with pytest.raises((InputError, ValueError), match=match):
        write_synthetic_nsd(tmp_path, **kwargs)


# --------------------------------------------------------------- malformed input


def test_missing_session_file(tmp_path):
    root, _, _ = _fresh(tmp_path)
    (nsd_paths(root, 1)["betas_dir"] / "betas_session02.hdf5").unlink()
    with pytest.raises(InputError, match="betas_session02.hdf5"):
        _load(root)


def _rewrite_session(root, session, fn):
    path = nsd_paths(root, 1)["betas_dir"] / f"betas_session{session:02d}.hdf5"
    with h5py.File(path, "r") as f:
        data = f["betas"][:]
    name, data = fn(data)
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=data)
    return path


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda d: ("data", d), r"betas_session01.hdf5: dataset '/betas' not found"),
        (lambda d: ("betas", d.astype(np.float32)), r"betas_session01.hdf5.*expected int16"),
        (lambda d: ("betas", d[..., 0]), r"betas_session01.hdf5.*shape \(trials, Z, Y, X\)"),
    ],
    ids=["name", "dtype", "ndim"],
)
def test_malformed_betas(tmp_path, fn, match):
    root, _, _ = _fresh(tmp_path)
    _rewrite_session(root, 1, fn)
    with pytest.raises(InputError, match=match):
        _load(root)


def test_sessions_of_different_length(tmp_path):
    root, _, _ = _fresh(tmp_path)
    _rewrite_session(root, 2, lambda d: ("betas", d[:-1]))
    with pytest.raises(InputError, match=r"betas_session02.hdf5.*every session must have"):
        _load(root)


def test_roi_volume_shape_mismatch(tmp_path):
    root, _, _ = _fresh(tmp_path)
    path = nsd_paths(root, 1)["roi/streams"]
    img = nib.load(path)
    data = np.asarray(img.dataobj)[:-1]
    nib.save(nib.Nifti1Image(data, img.affine), path)
    with pytest.raises(InputError, match=r"streams.nii.gz: volume has shape .*expected"):
        _load(root)


def test_ncsnr_shape_mismatch(tmp_path):
    root, _, _ = _fresh(tmp_path)
    path = nsd_paths(root, 1)["ncsnr"]
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4)), path)
    with pytest.raises(InputError, match=r"ncsnr.nii.gz: volume has shape \(2, 2, 2\)"):
        _load(root)


def test_missing_volume(tmp_path):
    root, _, _ = _fresh(tmp_path)
    nsd_paths(root, 1)["tval/words"].unlink()
    with pytest.raises(InputError, match="floc_wordstval.nii.gz"):
        _load(root)
    _load(root, floc_rois=("FFA-1", "EBA", "PPA"))  # words not needed: fine


def test_table_disagrees_with_design(tmp_path):
    root, ids, _ = _fresh(tmp_path)
    path = nsd_paths(root, 1)["stim_info"]
    table = pd.read_csv(path, index_col=0)
    a, b = table.index[:2]
    table.loc[[a, b], "subject1_rep0"] = table.loc[[b, a], "subject1_rep0"].to_numpy()
    table.to_csv(path)
    nid = int(table.loc[a, "nsdId"])
    with pytest.raises(InputError, match=rf"disagree for subject 1: shared image nsdId {nid}"):
        _load(root)


def test_table_missing_a_shared_image(tmp_path):
    root, ids, _ = _fresh(tmp_path)
    path = nsd_paths(root, 1)["stim_info"]
    table = pd.read_csv(path, index_col=0)
    table.iloc[1:].to_csv(path)
    with pytest.raises(InputError, match=rf"no row for shared image nsdId {np.sort(ids)[0]}"):
        _load(root)


def test_table_shared_flag(tmp_path):
    root, _, _ = _fresh(tmp_path)
    path = nsd_paths(root, 1)["stim_info"]
    table = pd.read_csv(path, index_col=0)
    table.loc[table.index[3], "shared1000"] = False
    table.to_csv(path)
    with pytest.raises(InputError, match="shared1000 column is False"):
        _load(root)


def test_design_missing_variable(tmp_path):
    root, _, _ = _fresh(tmp_path)
    path = nsd_paths(root, 1)["design"]
    mat = scipy.io.loadmat(path)
    scipy.io.savemat(path, {"masterordering": mat["masterordering"], "subjectim": mat["subjectim"]})
    with pytest.raises(InputError, match=r"nsd_expdesign.mat: variable 'sharedix' is missing"):
        _load(root)


def test_missing_design_file(tmp_path):
    with pytest.raises(InputError, match="nsd_expdesign.mat"):
        _load(tmp_path)


def test_constant_voxel_is_nan_after_zscoring(tmp_path):
    root, _, _ = _fresh(tmp_path)
    i, j, k = _load(root).voxel_ijk["OTC"][2]

    def flatten_voxel(d):
        d = d.copy()
        d[:, k, j, i] = 17
        return "betas", d

    _rewrite_session(root, 1, flatten_voxel)
    with pytest.raises(InputError, match=rf"voxel \(X, Y, Z\) = \({i}, {j}, {k}\) is constant"):
        _load(root)
    _load(root, zscore_sessions=False)  # no z-scoring, no NaN


def test_roi_with_zero_voxels(tmp_path):
    root, _, _ = _fresh(tmp_path)
    with pytest.raises(InputError, match=r"ROI 'OTC' .* selects zero voxels \(ncsnr_threshold=50"):
        _load(root, ncsnr_threshold=50)


def test_too_few_presentations(tmp_path):
    root, ids, _ = _fresh(tmp_path)
    first = np.sort(ids)[0]
    with pytest.raises(InputError, match=rf"nsdId {first} was presented 3 times.*n_reps=4"):
        _load(root, n_reps=4)


def test_subject_without_trials(tmp_path):
    root, _, _ = _fresh(tmp_path)
    with pytest.raises(InputError, match="subject 3 has no trials"):
        _load(root, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rois": ("OTC", "V1")}, r"'rois'.*'OTC' and 'EVC', but got 'V1'"),
        ({"otc_streams": ("ventral", "dorsal")}, r"'otc_streams'.*'dorsal'"),
        ({"floc_rois": ("FFA",)}, r"'floc_rois'.*'FFA'"),
    ],
)
def test_bad_options(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        _load(tmp_path, **kwargs)


@pytest.mark.parametrize("subject", [0, 9, "1", 1.0])
def test_bad_subject(tmp_path, subject):
    with pytest.raises(InputError, match="subject"):
        _load(tmp_path, subject)


# --------------------------------------------------------------- silent wrong data (issue 17)


def _edit_volume(path, fn):
    img = nib.load(path)
    data = fn(np.asarray(img.dataobj).copy())
    nib.save(nib.Nifti1Image(data, img.affine), path)


def test_ncsnr_inf_at_a_candidate_voxel(tmp_path):
    root, _, _ = _fresh(tmp_path)
    i, j, k = _load(root).voxel_ijk["OTC"][1]

    def put_inf(d):
        d[i, j, k] = np.inf
        return d

    _edit_volume(nsd_paths(root, 1)["ncsnr"], put_inf)
    with pytest.raises(InputError, match=rf"ncsnr.nii.gz: ncsnr is inf at 1 voxel.*ROI 'OTC'.*"
                                         rf"first at \(X, Y, Z\) = \({i}, {j}, {k}\).*expected finite"):
        _load(root)
    _load(root, rois=("EVC",))  # the inf voxel is not an EVC location: EVC is unaffected


def test_ncsnr_nan_voxels_are_not_selected(tmp_path):
    """Documented: NaN ncsnr means 'no estimate' and never passes the threshold."""
    root, _, _ = _fresh(tmp_path)
    before = _load(root)
    drop = before.voxel_ijk["EVC"][0]

    def put_nan(d):
        d[tuple(drop)] = np.nan
        return d

    _edit_volume(nsd_paths(root, 1)["ncsnr"], put_nan)
    after = _load(root)
    np.testing.assert_array_equal(after.voxel_ijk["EVC"], before.voxel_ijk["EVC"][1:])
    np.testing.assert_array_equal(after.responses["OTC"], before.responses["OTC"])


def test_floc_t_map_all_nan(tmp_path):
    root, _, _ = _fresh(tmp_path)
    _edit_volume(nsd_paths(root, 1)["tval/faces"], lambda d: np.full_like(d, np.nan))
    with pytest.raises(InputError, match=r"floc_facestval.nii.gz: the floc t map is NaN or inf at "
                                         r"\d+ voxel.*floc ROIs .*FFA-1.*expected finite t"):
        _load(root)
    _load(root, rois=("EVC",))  # EVC does not use the floc maps
    _load(root, floc_rois=("EBA", "PPA", "VWFA-1"))  # nor does OTC without face ROIs


@pytest.mark.parametrize("key", ["ncsnr_threshold", "floc_t_threshold"])
def test_nan_threshold(tmp_path, key):
    with pytest.raises(InputError, match=rf"{key} \(config key nsd.{key}\) is NaN; expected a number"):
        _load(tmp_path, **{key: float("nan")})


def test_complex_volume(tmp_path):
    root, _, _ = _fresh(tmp_path)
    _edit_volume(nsd_paths(root, 1)["ncsnr"], lambda d: d.astype(np.complex64))
    with pytest.raises(InputError, match=r"ncsnr.nii.gz: volume is complex64; expected real"):
        _load(root)
