"""MajajHong2015 reader and brainio-convention writer: round trips, averaging, bad files."""

import netCDF4
import numpy as np
import pytest
import xarray as xr
from PIL import Image

from brainalign.io.majajhong2015 import DATA_VARIABLES, load_majajhong2015, load_stimulus_set
from brainalign.io.majajhong2015_synthetic import (
    CATEGORIES,
    make_synthetic_assembly,
    write_assembly,
    write_stimulus_set,
)
from brainalign.utils import InputError

REGIONS = ["V4", "IT", "V4", "IT", "IT"]


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    root = tmp_path_factory.mktemp("mh")
    return write_stimulus_set(root, objects_per_category=2, images_per_object=1, size=24, seed=0)


def _presentations(st, seed=0, n_rep=3):
    """Explicit presentation-level data (repetitions with uncentred noise) and coordinates."""
    rng = np.random.default_rng(seed)
    n_stim = len(st.stimulus_ids)
    idx = rng.permutation(np.repeat(np.arange(n_stim), n_rep))
    resp = rng.normal(size=(len(idx), len(REGIONS), 2)) + 10
    pres = {
        "stimulus_id": st.stimulus_ids[idx],
        "repetition": np.zeros(len(idx), dtype=np.int64),
        "object_name": st.object_name[idx],
        "category_name": st.category_name[idx],
        "variation": st.variation[idx],
    }
    neur = {
        "neuroid_id": np.array([f"Chabo_M_{i}" for i in range(len(REGIONS))]),
        "region": np.array(REGIONS),
        "animal": np.array(["Chabo"] * len(REGIONS)),
        "arr": np.array(["M", "A", "M", "A", "A"]),
    }
    return resp, pres, neur


def _write(path, st, *, mutate=None, **kwargs):
    resp, pres, neur = _presentations(st)
    bins = {"time_bin_start": [0, 70], "time_bin_end": [50, 170]}
    if mutate is not None:
        resp = mutate(resp, pres, neur, bins)
    write_assembly(path, resp, presentation_coords=pres, neuroid_coords=neur, **bins, **kwargs)
    return path


def _expected_means(st, resp, pres, bin_index=1):
    ids = np.unique(st.stimulus_ids)
    return ids, np.stack([resp[pres["stimulus_id"] == s, :, bin_index].mean(axis=0) for s in ids])


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("variable_name", DATA_VARIABLES)
@pytest.mark.parametrize("string_storage", ["vlen", "char", "bytes"])
def test_round_trip_averages_repetitions(tmp_path, stimuli, variable_name, string_storage):
    path = _write(tmp_path / "a.nc", stimuli, variable_name=variable_name, string_storage=string_storage)
    with netCDF4.Dataset(path) as nc:
        assert variable_name in nc.variables
        assert nc.variables[variable_name].dimensions == ("presentation", "neuroid", "time_bin")
        assert "presentation" not in nc.variables  # MultiIndex reset to plain coordinates
        kind = nc.variables["region"].dtype
        assert (kind is str) == (string_storage == "vlen")
    data = load_majajhong2015(path)
    resp, pres, _ = _presentations(stimuli)
    ids, means = _expected_means(stimuli, resp, pres)
    np.testing.assert_array_equal(data.stimulus_ids, ids)
    np.testing.assert_allclose(data.responses, means, rtol=1e-12)
    assert data.responses.dtype == np.float64
    assert np.all(data.n_repetitions == 3)
    order = np.searchsorted(ids, stimuli.stimulus_ids)
    np.testing.assert_array_equal(data.category_name[order], stimuli.category_name)
    np.testing.assert_array_equal(data.object_name[order], stimuli.object_name)
    np.testing.assert_array_equal(data.variation[order], stimuli.variation)
    assert data.variation.dtype == np.int64
    assert list(data.region) == REGIONS and data.neuroid_id[0] == "Chabo_M_0"
    assert data.time_bin == (70, 170)
    assert data.path == str(path)


def test_make_synthetic_assembly_recovers_site_responses(tmp_path, stimuli):
    y = np.random.default_rng(1).normal(size=(len(stimuli.stimulus_ids), len(REGIONS)))
    path = make_synthetic_assembly(
        tmp_path / "s.nc", y, stimuli=stimuli, regions=REGIONS, n_repetitions=4, noise_sd=2.0, seed=3,
        variable_name="__xarray_dataarray_variable__",
    )
    data = load_majajhong2015(path)
    order = np.argsort(stimuli.stimulus_ids)
    np.testing.assert_allclose(data.responses, y[order], atol=1e-12)
    assert np.all(data.n_repetitions == 4)


def test_variation_filter(tmp_path, stimuli):
    path = _write(tmp_path / "a.nc", stimuli)
    all_ = load_majajhong2015(path)
    v6 = load_majajhong2015(path, variation=6)
    assert set(v6.variation.tolist()) == {6} and v6.n_stimuli == np.sum(stimuli.variation == 6)
    v03 = load_majajhong2015(path, variation=[0, 3])
    assert v03.n_stimuli + v6.n_stimuli == all_.n_stimuli
    keep = np.isin(all_.stimulus_ids, v6.stimulus_ids)
    np.testing.assert_allclose(v6.responses, all_.responses[keep])


def test_time_bins_tiling_the_window_are_averaged(tmp_path, stimuli):
    def split_bins(resp, pres, neur, bins):
        bins["time_bin_start"], bins["time_bin_end"] = [0, 70, 120], [50, 120, 170]
        return np.concatenate([resp, resp[:, :, 1:] + 2.0], axis=2)

    path = _write(tmp_path / "a.nc", stimuli, mutate=split_bins)
    data = load_majajhong2015(path)
    resp, pres, _ = _presentations(stimuli)
    _, means = _expected_means(stimuli, resp, pres)
    np.testing.assert_allclose(data.responses, means + 1.0, rtol=1e-12)
    assert data.time_bin == (70, 170)
    with pytest.raises(InputError, match="do not tile"):
        load_majajhong2015(path, time_bin=(60, 170))
    first = load_majajhong2015(path, time_bin=(0, 50))
    np.testing.assert_allclose(first.responses, _expected_means(stimuli, resp, pres, 0)[1], rtol=1e-12)


def test_transposed_dims_legacy_image_id_and_no_time_bin(tmp_path, stimuli):
    path = _write(tmp_path / "a.nc", stimuli)
    ref = load_majajhong2015(path)
    with xr.open_dataset(path) as ds:
        ds = ds.load()
    ds.transpose("neuroid", "time_bin", "presentation").rename({"stimulus_id": "image_id"}).to_netcdf(
        tmp_path / "b.nc", engine="netcdf4"
    )
    other = load_majajhong2015(tmp_path / "b.nc")
    np.testing.assert_allclose(other.responses, ref.responses)
    np.testing.assert_array_equal(other.stimulus_ids, ref.stimulus_ids)
    ds.isel(time_bin=1).drop_vars(["time_bin_start", "time_bin_end"]).to_netcdf(tmp_path / "c.nc")
    windowed = load_majajhong2015(tmp_path / "c.nc")
    np.testing.assert_allclose(windowed.responses, ref.responses)
    assert windowed.time_bin is None


def test_split_by_region(tmp_path, stimuli):
    data = load_majajhong2015(_write(tmp_path / "a.nc", stimuli))
    parts = data.split_by_region()
    assert list(parts) == ["V4", "IT"]
    assert parts["V4"].n_sites == 2 and parts["IT"].n_sites == 3
    np.testing.assert_array_equal(parts["IT"].responses, data.responses[:, [1, 3, 4]])
    assert list(parts["IT"].neuroid_id) == ["Chabo_M_1", "Chabo_M_3", "Chabo_M_4"]
    with pytest.raises(InputError, match="Unknown region"):
        data.select_region("V1")


# --------------------------------------------------------------- malformed files


def _rename_variable(ds):
    return ds.rename({"data": "spikes"})


def _drop_coord(name):
    return lambda ds: ds.drop_vars(name)


def _extra_dim(ds):
    return ds.expand_dims(session=2)


def _rename_dim(ds):
    return ds.rename_dims({"neuroid": "site"})


def _nan(ds):
    ds["data"][3, 1, 1] = np.nan
    return ds


def _region(value):
    def f(ds):
        ds["region"] = ("neuroid", np.array(["V4", value, "V4", "IT", "IT"], dtype=object))
        return ds

    return f


def _inconsistent_category(ds):
    cat = ds["category_name"].values.astype(object)
    sid = ds["stimulus_id"].values
    cat[np.flatnonzero(sid == sid[0])[1]] = "Boats" if cat[0] != "Boats" else "Cars"
    ds["category_name"] = ("presentation", cat)
    return ds


def _duplicate_neuroid(ds):
    ds["neuroid_id"] = ("neuroid", np.array(["a", "b", "c", "a", "e"], dtype=object))
    return ds


MALFORMED = {
    "no data variable": (_rename_variable, {}, "no data variable named 'data' or"),
    "missing region": (_drop_coord("region"), {}, "missing coordinate 'region'"),
    "missing stimulus_id": (_drop_coord("stimulus_id"), {}, r"'stimulus_id' \(or 'image_id'\)"),
    "missing time_bin_end": (_drop_coord("time_bin_end"), {}, "missing coordinate 'time_bin_end'"),
    "extra dimension": (_extra_dim, {}, "has dims"),
    "wrong dimension": (_rename_dim, {}, "has dims"),
    "NaN response": (_nan, {}, "non-finite"),
    "unknown region": (_region("V1"), {}, r"unknown region\(s\) \['V1'\]"),
    "empty variation selection": (None, {"variation": 9}, "no presentation has variation in"),
    "window absent": (None, {"time_bin": (100, 200)}, "no time bin equals"),
    "category differs within a stimulus": (_inconsistent_category, {}, "differs between presentations"),
    "duplicate neuroid ids": (_duplicate_neuroid, {}, "occurs more than once"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_files_raise_input_error_naming_the_file(tmp_path, stimuli, case):
    change, kwargs, match = MALFORMED[case]
    good = _write(tmp_path / "good.nc", stimuli)
    path = good
    if change is not None:
        with xr.open_dataset(good) as ds:
            ds = ds.load()
        path = tmp_path / "bad.nc"
        change(ds).to_netcdf(path, engine="netcdf4")
    with pytest.raises(InputError, match=match) as err:
        load_majajhong2015(path, **kwargs)
    assert str(path) in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.nc"
    junk.write_text("not a netcdf file")
    with pytest.raises(InputError, match="cannot be read") as err:
        load_majajhong2015(junk)
    assert str(junk) in str(err.value)
    with pytest.raises(InputError, match="not found"):
        load_majajhong2015(tmp_path / "absent.nc")


# --------------------------------------------------------------- stimulus set


def test_stimulus_set_images_and_order(stimuli):
    assert len(stimuli.stimulus_ids) == len(CATEGORIES) * 2 * 3
    assert set(stimuli.category_name) == set(CATEGORIES)
    wanted = np.sort(stimuli.stimulus_ids)[::-1][:5]
    paths = load_stimulus_set(stimuli.csv_path, stimuli.image_dir, wanted)
    assert [p.stem for p in paths] == list(wanted)
    img = Image.open(paths[0])
    assert img.mode == "L" and img.size == (24, 24)
    assert len(load_stimulus_set(stimuli.csv_path, stimuli.image_dir)) == len(stimuli.stimulus_ids)


def test_stimulus_set_legacy_columns_and_flat_fallback(tmp_path):
    st = write_stimulus_set(
        tmp_path, objects_per_category=1, images_per_object=1, variations=(0,), size=16, legacy_columns=True
    )
    header = (tmp_path / "stimulus_set.csv").read_text().splitlines()[0]
    assert "image_id" in header and "image_file_name" in header
    csv = tmp_path / "nested.csv"
    text = (tmp_path / "stimulus_set.csv").read_text()
    csv.write_text(text.replace(st.filenames[0], "sub/dir/" + st.filenames[0]))  # as if unzipped flat
    paths = load_stimulus_set(csv, st.image_dir, st.stimulus_ids[:1])
    assert paths[0].name == st.filenames[0] and paths[0].is_file()


def test_stimulus_set_errors(tmp_path, stimuli):
    csv = stimuli.csv_path
    with pytest.raises(InputError, match="not in the stimulus set") as err:
        load_stimulus_set(csv, stimuli.image_dir, ["nope"])
    assert csv in str(err.value)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,file\na,b.png\n")
    with pytest.raises(InputError, match="expected columns"):
        load_stimulus_set(bad, stimuli.image_dir)
    missing = tmp_path / "missing.csv"
    missing.write_text("stimulus_id,filename\na,absent.png\n")
    with pytest.raises(InputError, match="missing under"):
        load_stimulus_set(missing, stimuli.image_dir)
    with pytest.raises(InputError, match="not found"):
        load_stimulus_set(tmp_path / "none.csv", stimuli.image_dir)
    dup = tmp_path / "dup.csv"
    dup.write_text("stimulus_id,filename\na,x.png\na,y.png\n")
    with pytest.raises(InputError, match="more than once"):
        load_stimulus_set(dup, stimuli.image_dir)
