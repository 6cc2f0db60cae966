"""fMRI condition volumes, masks, ROI patterns and ROI RDMs (brainalign.io.fmri)."""

import nibabel as nib
import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

from brainalign.io.fmri import (
    ConditionVolumes,
    load_condition_volumes,
    load_localizer,
    load_mask,
    roi_patterns,
    roi_rdm,
    write_synthetic_condition_volumes,
)
from brainalign.rdm import compute_rdm
from brainalign.utils import InputError

AFFINE = np.array([[3.0, 0, 0, -90], [0, 3, 0, -120], [0, 0, 3.6, -60], [0, 0, 0, 1]])


def _volumes(seed=0, n_cond=6, shape=(7, 8, 5), dtype=np.float64):
    return np.random.default_rng(seed).standard_normal((n_cond, *shape)).astype(dtype)


def _save(path, data, affine=AFFINE):
    nib.save(nib.Nifti1Image(np.asarray(data), affine), str(path))
    return path


# --------------------------------------------------------------------------- reading


@pytest.mark.parametrize("four_d", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_write_then_load_round_trip(tmp_path, four_d, dtype):
    vols = _volumes(dtype=dtype)
    mask = np.zeros(vols.shape[1:], bool)
    mask[2:5, 2:6, 1:4] = True
    loc = vols.mean(axis=0)
    paths = write_synthetic_condition_volumes(tmp_path, vols, AFFINE, four_d=four_d, mask=mask,
                                              localizer=loc)
    cv = load_condition_volumes(paths["volumes"])
    assert isinstance(cv, ConditionVolumes)
    assert cv.data.dtype == np.float64 and cv.data.shape == vols.shape
    np.testing.assert_array_equal(cv.data, vols.astype(np.float64))
    np.testing.assert_allclose(cv.affine, AFFINE)
    if four_d:
        np.testing.assert_array_equal(cv.conditions, np.arange(6))
    else:
        assert list(cv.conditions) == [f"cond-{c:03d}" for c in range(6)]
    np.testing.assert_array_equal(load_mask(paths["mask"], cv), mask)
    np.testing.assert_allclose(load_localizer(paths["localizer"], cv), loc, rtol=1e-7)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_condition_ids_and_trailing_singleton_axis(tmp_path):
    vols = _volumes(1, n_cond=3)
    paths = [_save(tmp_path / f"spmT_{c:04d}.nii", vols[c][..., None]) for c in range(3)]
    cv = load_condition_volumes(paths)
    assert list(cv.conditions) == ["spmT_0000", "spmT_0001", "spmT_0002"]
    np.testing.assert_array_equal(cv.data, vols)
    cv = load_condition_volumes(paths, conditions=["a", "b", "c"])
    assert list(cv.conditions) == ["a", "b", "c"]
    with pytest.raises(InputError, match="2 condition ids given for 3 files"):
        load_condition_volumes(paths, conditions=["a", "b"])


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(InputError, match=r"condition volume file not found: .*nope\.nii\.gz"):
        load_condition_volumes(tmp_path / "nope.nii.gz")
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"not a nifti file")
    with pytest.raises(InputError, match=r"bad\.nii\.gz: cannot read condition volume as NIfTI"):
        load_condition_volumes([bad])
    with pytest.raises(InputError, match="no files given"):
        load_condition_volumes([])


def test_shape_or_affine_mismatch_names_both_files(tmp_path):
    vols = _volumes(2, n_cond=2)
    a = _save(tmp_path / "a.nii.gz", vols[0])
    b = _save(tmp_path / "b.nii.gz", vols[1][:-1])
    with pytest.raises(InputError, match=r"b\.nii\.gz \(shape \(6, 8, 5\).*grid of .*a\.nii\.gz"):
        load_condition_volumes([a, b])
    shifted = AFFINE.copy()
    shifted[0, 3] += 3
    c = _save(tmp_path / "c.nii.gz", vols[1], shifted)
    with pytest.raises(InputError, match=r"c\.nii\.gz .*not on the grid of .*a\.nii\.gz"):
        load_condition_volumes([a, c])
    four = _save(tmp_path / "four.nii.gz", np.moveaxis(vols, 0, -1))
    with pytest.raises(InputError, match="expected a 3-D volume"):
        load_condition_volumes([a, four])


# --------------------------------------------------------------------------- masks


def test_mask_on_another_grid_errors_or_is_resampled(tmp_path):
    vols = _volumes(3)
    paths = write_synthetic_condition_volumes(tmp_path / "v", vols, AFFINE)
    cv = load_condition_volumes(paths["volumes"])
    # the same space on a grid one voxel larger on every side
    big = np.zeros((9, 10, 7))
    big[3:6, 2:7, 2:5] = 1
    big_affine = AFFINE.copy()
    big_affine[:3, 3] -= np.diag(AFFINE)[:3]
    roi = _save(tmp_path / "roi.nii.gz", big, big_affine)
    with pytest.raises(InputError, match=r"ROI mask .*roi\.nii\.gz .*not on the grid of .*cond-000"
                                         r"\.nii\.gz.*resample=True"):
        load_mask(roi, cv)
    mask = load_mask(roi, cv, resample=True)
    np.testing.assert_array_equal(mask, big[1:-1, 1:-1, 1:-1] > 0)
    # a reference given as a path works the same
    np.testing.assert_array_equal(load_mask(roi, paths["volumes"][0], resample=True), mask)


def test_mask_threshold_nan_and_empty(tmp_path):
    prob = np.zeros((7, 8, 5))
    prob[1, 1, 1], prob[2, 2, 2], prob[3, 3, 3] = 0.2, 0.9, np.nan
    ref = _save(tmp_path / "ref.nii.gz", np.zeros((7, 8, 5)))
    path = _save(tmp_path / "prob.nii.gz", prob)
    assert load_mask(path, ref).sum() == 2
    assert np.argwhere(load_mask(path, ref, threshold=0.5)).tolist() == [[2, 2, 2]]
    with pytest.raises(InputError, match="empty"):
        load_mask(path, ref, threshold=1.0)
    with pytest.raises(InputError, match="ROI mask not found"):
        load_mask(tmp_path / "missing.nii.gz", ref)


# --------------------------------------------------------------------------- ROI patterns


def test_roi_patterns_take_most_responsive_voxels_ties_by_index():
    vols = _volumes(4, n_cond=5, shape=(4, 4, 4))
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, :] = True  # 16 voxels
    loc = np.zeros((4, 4, 4))
    loc[0, 0, 0] = 100.0  # outside the mask: never chosen
    loc[2, 2, 3] = 5.0
    loc[1, 1, 0] = 5.0
    loc[1, 2, 1] = 3.0
    loc[2, 1, 2] = 1.0  # ties at 0 among the other 12 mask voxels: lowest index first
    patterns, idx = roi_patterns(vols, mask, loc, n_voxels=6, return_indices=True)
    chosen = [(2, 2, 3), (1, 1, 0), (1, 2, 1), (2, 1, 2), (1, 1, 1), (1, 1, 2)]
    want = np.sort(np.ravel_multi_index(tuple(np.array(chosen).T), (4, 4, 4)))
    np.testing.assert_array_equal(idx, want)
    np.testing.assert_array_equal(patterns, vols.reshape(5, -1)[:, want])
    # default localiser: the mean over conditions
    _, idx_mean = roi_patterns(vols, mask, None, n_voxels=4, return_indices=True)
    score = vols.mean(axis=0).ravel()
    mask_idx = np.flatnonzero(mask)
    np.testing.assert_array_equal(idx_mean, np.sort(mask_idx[np.argsort(-score[mask_idx])[:4]]))
    assert roi_patterns(vols, mask, loc, n_voxels=None).shape == (5, 16)


def test_roi_patterns_errors():
    vols = _volumes(5, n_cond=4, shape=(5, 5, 5))
    mask = np.zeros((5, 5, 5), bool)
    mask[1:4, 1:4, 1:4] = True  # 27 voxels
    with pytest.raises(InputError, match="has 27 voxels, fewer than n_voxels=100"):
        roi_patterns(vols, mask)
    with pytest.raises(InputError, match="mask has shape"):
        roi_patterns(vols, mask[:-1], n_voxels=5)
    loc = np.zeros((5, 5, 5))
    loc[2, 2, 2] = np.nan
    with pytest.raises(InputError, match="localiser map holds NaN"):
        roi_patterns(vols, mask, loc, n_voxels=5)
    bad = vols.copy()
    bad[:, 0, 0, 0] = np.nan  # outside the mask: fine
    roi_patterns(bad, mask, np.ones((5, 5, 5)), n_voxels=5)
    bad[2, 1, 1, 1] = np.nan  # a chosen voxel (ties -> lowest index first)
    with pytest.raises(InputError, match=r"NaN or inf \(first: voxel \(1, 1, 1\), condition index 2\)"):
        roi_patterns(bad, mask, np.ones((5, 5, 5)), n_voxels=5)
    with pytest.raises(ValueError, match="n_voxels must be a positive integer"):
        roi_patterns(vols, mask, n_voxels=0)


def test_roi_rdm_is_one_minus_spearman_of_the_chosen_voxels(tmp_path):
    vols = _volumes(6, n_cond=10, shape=(8, 8, 6))
    mask = np.zeros((8, 8, 6), bool)
    mask[1:7, 1:7, 1:5] = True  # 144 voxels
    loc = np.random.default_rng(6).standard_normal((8, 8, 6))
    paths = write_synthetic_condition_volumes(tmp_path, vols, AFFINE, mask=mask, localizer=loc)
    cv = load_condition_volumes(paths["volumes"])
    rdm = roi_rdm(cv, load_mask(paths["mask"], cv), load_localizer(paths["localizer"], cv))
    patterns = roi_patterns(vols, mask, loc)
    assert patterns.shape == (10, 100)
    np.testing.assert_allclose(rdm, pdist(rankdata(patterns, axis=1), "correlation"), atol=1e-12)
    np.testing.assert_allclose(roi_rdm(vols, mask, loc, metric="pearson"),
                               compute_rdm(patterns, "pearson"), atol=1e-12)


def test_condition_volumes_checks():
    with pytest.raises(InputError, match="expected \\(n_conditions, X, Y, Z\\)"):
        ConditionVolumes(np.zeros((3, 4, 5)), np.eye(4), np.arange(3))
    with pytest.raises(InputError, match="not unique"):
        ConditionVolumes(np.zeros((2, 3, 3, 3)), np.eye(4), np.array([1, 1]))
    with pytest.raises(InputError, match="4x4"):
        ConditionVolumes(np.zeros((2, 3, 3, 3)), np.eye(3), np.array([1, 2]))


# --------------------------------------------------------------------------- issue 17


def test_complex_volume_is_refused(tmp_path):
    vols = _volumes(4, n_cond=2)
    real = _save(tmp_path / "real.nii.gz", vols[0])
    cplx = _save(tmp_path / "cplx.nii.gz", (vols[1] + 1j * vols[0]).astype(np.complex64))
    with pytest.raises(InputError, match=r"cplx\.nii\.gz: condition volume is complex64; expected "
                                         "real values"):
        load_condition_volumes([real, cplx])
    with pytest.raises(InputError, match=r"cplx\.nii\.gz: ROI mask is complex64"):
        load_mask(cplx, real)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("how", ["empty", "half"])
def test_empty_or_truncated_reference(tmp_path, suffix, how):
    vols = _volumes(5, n_cond=1)
    mask = _save(tmp_path / "mask.nii.gz", (vols[0] > 0).astype(np.uint8))
    ref = _save(tmp_path / f"ref{suffix}", vols[0])
    full = ref.read_bytes()
    ref.write_bytes(b"" if how == "empty" else full[: len(full) // 2])
    with pytest.raises(InputError, match=rf"ref{suffix.replace('.', '[.]')}: cannot read the "
                                         "reference image as NIfTI"):
        load_mask(mask, ref)
    with pytest.raises(InputError, match="cannot read the reference image"):
        load_localizer(mask, ref)
