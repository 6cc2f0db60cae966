"""Volumetric searchlight RSA: spheres, RDMs against brute force and rsatoolbox, maps."""

import contextlib
import io
import itertools

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import pdist
from scipy.stats import rankdata

from brainalign.io.fmri import ConditionVolumes
from brainalign.rdm import compare_rdms, compute_rdm
from brainalign.searchlight import (
    _rank_rows,
    iter_searchlight_rdms,
    plot_surface_map,
    save_map,
    searchlight_rdms,
    searchlight_rsa,
    searchlight_spheres,
    sphere_offsets,
)
from brainalign.utils import InputError

TOL = 1e-10


def _random_data(seed=0, shape=(9, 10, 8), n_cond=12, p_mask=0.7):
    rng = np.random.default_rng(seed)
    volumes = rng.standard_normal((n_cond, *shape))
    mask = rng.random(shape) < p_mask
    return volumes, mask


def _brute_spheres(mask, radius, linear=None, inclusive=False):
    """Per-centre sphere by brute force over all mask voxels: list of flat indices."""
    linear = np.eye(3) if linear is None else linear
    coords = np.argwhere(mask)
    out = []
    for c in coords:
        d2 = (((coords - c) @ linear.T) ** 2).sum(axis=1)
        inside = d2 <= radius**2 + 1e-9 if inclusive else d2 < radius**2 - 1e-9
        out.append(np.sort(np.ravel_multi_index(tuple(coords[inside].T), mask.shape)))
    return coords, out


def _loop_rdms(volumes, spheres, metric):
    flat = volumes.reshape(volumes.shape[0], -1)
    out = []
    for sphere in spheres:
        X = flat[:, sphere]
        if metric == "pearson":
            out.append(pdist(X, "correlation"))
        elif metric == "spearman":
            out.append(pdist(rankdata(X, axis=1), "correlation"))
        else:
            out.append(pdist(X, "euclidean"))
    return np.array(out)


def _assert_rdms_equal(got, want):
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.max(np.abs(got[ok] - want[ok]), initial=0.0) < TOL


# --------------------------------------------------------------------------- spheres


def test_sphere_offsets_counts_match_definitions():
    assert len(sphere_offsets(radius_vox=3)) == 93  # d^2 <= 8: rsatoolbox's radius-3 sphere
    assert len(sphere_offsets(radius_vox=3, inclusive=True)) == 123
    assert len(sphere_offsets(radius_vox=1)) == 1  # strict: only the centre
    assert len(sphere_offsets(radius_vox=1, inclusive=True)) == 7
    off = sphere_offsets(radius_vox=2.5)
    np.testing.assert_array_equal(off[0], [0, 0, 0])
    assert np.all((off**2).sum(axis=1) < 6.25)


def test_sphere_offsets_in_mm_with_anisotropic_oblique_affine():
    rot = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    linear = rot @ np.diag([2.0, 2.5, 3.0])
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = [-40, 12, 7]
    off = sphere_offsets(radius_mm=6.0, affine=affine)
    grid = np.array(list(itertools.product(range(-5, 6), repeat=3)))
    d = np.linalg.norm(grid @ linear.T, axis=1)
    want = {tuple(g) for g in grid[d < 6.0 - 1e-9]}
    assert {tuple(o) for o in off} == want


@pytest.mark.parametrize("radius, inclusive", [(2.0, False), (2.0, True), (2.7, False)])
def test_spheres_equal_brute_force(radius, inclusive):
    _, mask = _random_data(1)
    spheres = searchlight_spheres(mask, radius_vox=radius, inclusive=inclusive)
    coords, brute = _brute_spheres(mask, radius, inclusive=inclusive)
    np.testing.assert_array_equal(spheres.centres, coords)
    for i, want in enumerate(brute):
        np.testing.assert_array_equal(spheres.sphere(i), want)
    assert spheres.neighbours.shape[1] == spheres.sizes.max()


def test_min_mask_fraction_drops_boundary_centres():
    _, mask = _random_data(2)
    full = searchlight_spheres(mask, radius_vox=2)
    some = searchlight_spheres(mask, radius_vox=2, min_mask_fraction=0.8)
    assert 0 < some.n_centres < full.n_centres
    offsets = sphere_offsets(radius_vox=2)
    shape = np.array(mask.shape)
    kept = {tuple(c) for c in some.centres}
    for c in full.centres:
        pts = c + offsets
        pts = pts[np.all((pts >= 0) & (pts < shape), axis=1)]
        frac = mask[tuple(pts.T)].mean()
        assert (tuple(c) in kept) == (frac >= 0.8)


# --------------------------------------------------------------------------- RDMs


@pytest.mark.parametrize("metric", ["pearson", "spearman", "euclidean"])
@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_rdms_equal_per_centre_pdist_loop(metric, batch_size):
    volumes, mask = _random_data(3)
    rdms, centres = searchlight_rdms(volumes, mask, radius_vox=2.5, metric=metric, batch_size=batch_size)
    coords, brute = _brute_spheres(mask, 2.5)
    np.testing.assert_array_equal(centres, coords)
    _assert_rdms_equal(rdms, _loop_rdms(volumes, brute, metric))


def test_rdms_in_mm_and_single_voxel_spheres_are_nan():
    volumes, mask = _random_data(4)
    affine = np.diag([2.0, 3.0, 2.5, 1.0])
    rdms, centres = searchlight_rdms(volumes, mask, radius_mm=3.1, affine=affine)
    _, brute = _brute_spheres(mask, 3.1, linear=affine[:3, :3])
    want = _loop_rdms(volumes, brute, "pearson")
    _assert_rdms_equal(rdms, want)
    sizes = np.array([len(b) for b in brute])
    assert np.all(np.isnan(rdms[sizes == 1]))


def test_rdms_agree_with_compute_rdm_and_accept_float32_and_condition_volumes():
    volumes, mask = _random_data(5)
    cv = ConditionVolumes(volumes.astype(np.float32), np.eye(4), np.arange(len(volumes)))
    rdms, centres = searchlight_rdms(cv, mask, radius_vox=2, metric="spearman")
    assert rdms.dtype == np.float64
    spheres = searchlight_spheres(mask, radius_vox=2)
    flat = cv.data.reshape(len(volumes), -1)
    for i in np.flatnonzero(spheres.sizes >= 2)[:40]:
        want = compute_rdm(flat[:, spheres.sphere(i)], "spearman")
        assert np.max(np.abs(rdms[i] - want)) < TOL


def test_spearman_rdms_with_tied_values_equal_loop():
    volumes, mask = _random_data(15)
    volumes = np.round(volumes)  # many ties within each sphere
    rdms, _ = searchlight_rdms(volumes, mask, radius_vox=2.5, metric="spearman", batch_size=10)
    _, brute = _brute_spheres(mask, 2.5)
    _assert_rdms_equal(rdms, _loop_rdms(volumes, brute, "spearman"))


def test_iter_batches_are_bounded_and_cover_every_centre():
    volumes, mask = _random_data(6)
    spheres = searchlight_spheres(mask, radius_vox=2)
    seen = []
    for sl, rdms in iter_searchlight_rdms(volumes, spheres, batch_size=16):
        assert len(rdms) == sl.stop - sl.start <= 16
        seen.extend(range(sl.start, sl.stop))
    assert seen == list(range(spheres.n_centres))


def _rsatoolbox_rdms(volumes, mask, radius, threshold, truncate):
    sl_mod = pytest.importorskip("rsatoolbox.util.searchlight")
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        centers, neighbors = sl_mod.get_volume_searchlight(
            mask, radius=radius, threshold=threshold, truncate_at_boundary=truncate
        )
        rdms = sl_mod.get_searchlight_RDMs(
            volumes.reshape(len(volumes), -1), centers, neighbors, np.arange(len(volumes)),
            method="correlation", verbose=False,
        )
    return np.asarray(centers), neighbors, rdms.dissimilarities


@pytest.mark.parametrize(
    "truncate, threshold, fraction",
    [(False, 1.0, 1.0),  # rsatoolbox's default: whole sphere in the mask
     (True, 0.5, 0.0)],  # truncated spheres keep every centre: sphere & mask, like ours
)
def test_rdms_equal_rsatoolbox_volume_searchlight(truncate, threshold, fraction):
    rng = np.random.default_rng(7)
    shape = (11, 12, 10)
    grid = np.indices(shape) - np.array([5, 5.5, 4.5])[:, None, None, None]
    mask = ((grid**2).sum(axis=0) < 4.6**2) & (rng.random(shape) < (0.97 if truncate else 1.0))
    volumes = rng.standard_normal((15, *shape))
    centers, neighbors, want = _rsatoolbox_rdms(volumes, mask, 3, threshold, truncate)
    rdms, centres = searchlight_rdms(volumes, mask, radius_vox=3, min_mask_fraction=fraction)
    spheres = searchlight_spheres(mask, radius_vox=3, min_mask_fraction=fraction)
    assert len(centers) >= 15
    np.testing.assert_array_equal(np.ravel_multi_index(tuple(centres.T), shape), centers)
    for i, nb in enumerate(neighbors):
        np.testing.assert_array_equal(np.sort(nb), spheres.sphere(i))
    _assert_rdms_equal(rdms, want)


def test_centre_selection_equals_rsatoolbox_threshold():
    sl_mod = pytest.importorskip("rsatoolbox.util.searchlight")
    rng = np.random.default_rng(8)
    mask = rng.random((9, 9, 9)) < 0.8
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        centers, _ = sl_mod.get_volume_searchlight(mask, radius=2, threshold=0.7)
    spheres = searchlight_spheres(mask, radius_vox=2, min_mask_fraction=0.7)
    np.testing.assert_array_equal(spheres.centre_indices, centers)


# --------------------------------------------------------------------------- RSA maps


@pytest.mark.parametrize("compare", ["spearman", "pearson"])
def test_rsa_map_equals_compare_rdms_per_centre(compare):
    volumes, mask = _random_data(9)
    rng = np.random.default_rng(9)
    models = rng.random((3, 66))
    models[1, :10] = models[1, 10:20]  # ties in a model RDM
    maps = searchlight_rsa(volumes, mask, models, radius_vox=2.5, compare=compare, batch_size=13)
    assert maps.shape == (3, *mask.shape)
    assert np.all(np.isnan(maps[:, ~mask]))
    rdms, centres = searchlight_rdms(volumes, mask, radius_vox=2.5)
    for (x, y, z), rdm in zip(centres, rdms, strict=True):
        want = compare_rdms(rdm, models, method=compare)
        if np.any(np.isnan(rdm)):
            assert np.all(np.isnan(maps[:, x, y, z]))
        else:
            assert np.max(np.abs(maps[:, x, y, z] - want)) < TOL


def test_rsa_single_model_and_dropped_centres():
    volumes, mask = _random_data(10)
    model = np.random.default_rng(10).random(66)
    maps = searchlight_rsa(volumes, mask, model, radius_vox=2, min_mask_fraction=0.9)
    kept = searchlight_spheres(mask, radius_vox=2, min_mask_fraction=0.9)
    assert maps.shape == (1, *mask.shape)
    finite = np.isfinite(maps[0])
    assert finite.sum() == kept.n_centres
    assert np.all(finite.ravel()[kept.centre_indices])


@pytest.mark.planted
def test_planted_model_rdm_peaks_in_its_sphere():
    rng = np.random.default_rng(11)
    shape, n_cond, centre = (14, 14, 14), 16, np.array([9, 5, 7])
    category = np.repeat([0, 1, 2, 3], 4)
    model = pdist(np.eye(4)[category], "euclidean")  # 0 within a category, sqrt(2) between
    volumes = rng.standard_normal((n_cond, *shape))
    coords = np.argwhere(np.ones(shape, bool))
    region = coords[np.linalg.norm(coords - centre, axis=1) < 2.5]
    prototypes = rng.standard_normal((4, len(region)))
    volumes[:, region[:, 0], region[:, 1], region[:, 2]] += 2.0 * prototypes[category]
    mask = np.zeros(shape, bool)
    mask[1:-1, 1:-1, 1:-1] = True
    maps = searchlight_rsa(volumes, mask, model, radius_vox=2, metric="spearman")[0]
    peak = np.array(np.unravel_index(np.nanargmax(maps), shape))
    assert np.linalg.norm(peak - centre) < 2.5
    inside = np.zeros(shape, bool)
    inside[tuple(region.T)] = True
    assert np.nanmean(maps[inside & mask]) > 0.5 > np.nanmax(maps[mask & ~inside & (
        np.linalg.norm(np.indices(shape) - centre[:, None, None, None], axis=0) > 5)])


# --------------------------------------------------------------------------- ranking


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 40)),
              elements=st.one_of(st.sampled_from([0.0, -0.0, 1.0, -2.5, np.nan, 1e300]),
                                 st.floats(-1e6, 1e6, allow_nan=False))))
def test_rank_rows_equals_rankdata(a):
    np.testing.assert_array_equal(_rank_rows(a), rankdata(a, axis=1))


def test_rank_rows_blocks_and_padding():
    rng = np.random.default_rng(12)
    a = rng.standard_normal((70, 2000))  # several blocks
    np.testing.assert_array_equal(_rank_rows(a), rankdata(a, axis=1))
    a[:, 1500:] = np.inf  # padding: real entries keep their ranks
    np.testing.assert_array_equal(_rank_rows(a)[:, :1500], rankdata(a[:, :1500], axis=1))


# --------------------------------------------------------------------------- errors


def test_errors_are_clear():
    volumes, mask = _random_data(13)
    with pytest.raises(ValueError, match="exactly one of radius_vox"):
        searchlight_rdms(volumes, mask)
    with pytest.raises(ValueError, match="exactly one of radius_vox"):
        searchlight_rdms(volumes, mask, radius_vox=2, radius_mm=4, affine=np.eye(4))
    with pytest.raises(ValueError, match="needs the volumes' affine"):
        searchlight_rdms(volumes, mask, radius_mm=4)
    with pytest.raises(ValueError, match="positive finite"):
        searchlight_rdms(volumes, mask, radius_vox=0)
    with pytest.raises(ValueError, match="Allowed values are 'pearson', 'spearman' and 'euclidean'"):
        searchlight_rdms(volumes, mask, radius_vox=2, metric="cosine")
    with pytest.raises(ValueError, match="'compare' parameter"):
        searchlight_rsa(volumes, mask, np.zeros(66), radius_vox=2, compare="kendall")
    with pytest.raises(InputError, match="grid"):
        searchlight_rdms(volumes, mask[:-1], radius_vox=2)
    with pytest.raises(InputError, match="empty"):
        searchlight_rdms(volumes, np.zeros_like(mask), radius_vox=2)
    with pytest.raises(InputError, match="length 66"):
        searchlight_rsa(volumes, mask, np.zeros(65), radius_vox=2)
    with pytest.raises(InputError, match="NaN or inf"):
        searchlight_rsa(volumes, mask, np.full(66, np.nan), radius_vox=2)
    with pytest.raises(ValueError, match="batch_size"):
        searchlight_rdms(volumes, mask, radius_vox=2, batch_size=0)
    with pytest.raises(InputError, match="spheres were built on"):  # raised at the call
        iter_searchlight_rdms(volumes[:, :-1], searchlight_spheres(mask, radius_vox=2))
    bad = volumes.copy()
    x, y, z = np.argwhere(mask)[5]
    bad[3, x, y, z] = np.nan
    with pytest.raises(InputError, match=r"1 voxel\(s\) inside the mask hold NaN"):
        searchlight_rdms(bad, mask, radius_vox=2)
    outside = volumes.copy()
    outside[:, ~mask] = np.nan  # NaN outside the mask (SPM) is fine
    rdms, _ = searchlight_rdms(outside, mask, radius_vox=2)
    np.testing.assert_array_equal(rdms, searchlight_rdms(volumes, mask, radius_vox=2)[0])


# --------------------------------------------------------------------------- output


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_save_map_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(14)
    maps = rng.standard_normal((3, 4, 5, 6))
    maps[:, 0] = np.nan
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    path = save_map(maps, affine, tmp_path / f"maps{suffix}")
    img = nib.load(path)
    assert img.shape == (4, 5, 6, 3)
    np.testing.assert_array_equal(np.moveaxis(img.get_fdata(), -1, 0), maps)
    np.testing.assert_allclose(img.affine, affine)
    one = nib.load(save_map(maps[1].astype(np.float32), affine, tmp_path / f"one{suffix}"))
    assert one.shape == (4, 5, 6) and one.get_data_dtype() == np.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"maps{suffix}", f"one{suffix}"])
    with pytest.raises(ValueError, match=r"must end in '.nii'"):
        save_map(maps, affine, tmp_path / "maps.npy")


def test_plot_surface_map_errors_without_local_fsaverage(monkeypatch, tmp_path):
    nilearn = pytest.importorskip("nilearn")
    monkeypatch.setattr(nilearn, "__file__", str(tmp_path / "nilearn" / "__init__.py"))
    with pytest.raises(RuntimeError, match="no local fsaverage5.*never downloads"):
        plot_surface_map(np.zeros((4, 4, 4)), np.eye(4))


def test_plot_surface_map_on_local_fsaverage5(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from brainalign.searchlight import _local_fsaverage5

    try:
        _local_fsaverage5()
    except RuntimeError as err:
        pytest.skip(f"nilearn ships no local fsaverage5 here: {err}")
    # a coarse MNI-space map: positive in the left occipital lobe
    affine = np.array([[8.0, 0, 0, -80], [0, 8, 0, -112], [0, 0, 8, -56], [0, 0, 0, 1]])
    data = np.zeros((21, 25, 19))
    data[:10, :6, 5:14] = 0.5
    out = tmp_path / "surface.png"
    fig = plot_surface_map(data, affine, hemi="left", view="lateral", threshold=0.1, output_file=out)
    assert out.is_file() and out.stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close(fig)
