"""Kuzovkin 2018 intracranial files: v5 and v7.3 round trips, MATLAB's HDF5 layout, bad files."""

import h5py
import numpy as np
import pytest
import scipy.io

from brainalign.io.kuzovkin2018 import (
    BANDS,
    REJECTED,
    WINDOWS,
    band_window_folder,
    band_window_folders,
    load_intracranial,
    read_mat_struct,
    subject_files,
)
from brainalign.io.kuzovkin2018_synthetic import (
    random_subject,
    savemat_v73,
    subject_struct,
    write_intracranial_mat,
)
from brainalign.utils import InputError

N = 20  # stimuli in these tests (the paper has 250)
VERSIONS = ("5", "7.3")


def _fields(**kw):
    kw.setdefault("reject_fraction", 0.1)
    return random_subject(6, N, seed=kw.pop("seed", 0), **kw)


# --------------------------------------------------------------- round trips


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("numeric", [False, True])
def test_round_trip(tmp_path, version, numeric):
    fields = _fields(numeric_stimseq=numeric)
    assert np.isnan(fields["data"]).any()
    path = write_intracranial_mat(tmp_path / "AB_01.mat", version=version, **fields)
    sub = load_intracranial(path, n_stimuli=N)
    assert sub.mat_version == version
    assert sub.name == "SUBJ01" and sub.path == path
    np.testing.assert_array_equal(sub.data, fields["data"])  # NaN where rejected, bit-identical elsewhere
    assert sub.data.dtype == np.float64 and sub.data.shape == (N, 6)
    np.testing.assert_array_equal(sub.n_rejected, np.isnan(fields["data"]).sum(axis=0))
    assert sub.stimseq.tolist() == np.asarray(fields["stimseq"]).tolist()
    assert sub.stimseq.dtype.kind == ("i" if numeric else "U")
    assert sub.rod_names.tolist() == list(fields["rod_names"])
    np.testing.assert_array_equal(sub.probe_ids, fields["probe_ids"])
    np.testing.assert_array_equal(sub.mni, fields["mni"])
    np.testing.assert_array_equal(sub.areas, fields["areas"])
    np.testing.assert_array_equal(sub.stimgroups, fields["stimgroups"])


def test_sentinel_in_file_becomes_nan(tmp_path):
    fields = _fields()
    for version in VERSIONS:
        path = write_intracranial_mat(tmp_path / f"v{version}.mat", version=version, **fields)
        raw = read_mat_struct(path)["data"]
        assert np.array_equal(raw == REJECTED, np.isnan(fields["data"]))
        assert not np.isnan(raw).any()
        assert np.array_equal(np.isnan(load_intracranial(path, n_stimuli=N).data), raw == REJECTED)


def test_v5_and_v73_give_the_same_values(tmp_path):
    fields = _fields(seed=3)
    a = read_mat_struct(write_intracranial_mat(tmp_path / "a.mat", version="5", **fields))
    b = read_mat_struct(write_intracranial_mat(tmp_path / "b.mat", version="7.3", **fields))

    def same(x, y):
        if isinstance(x, dict):
            assert list(x) == list(y)
            for k in x:
                same(x[k], y[k])
        elif isinstance(x, np.ndarray) and x.dtype == object:
            assert x.shape == y.shape and y.dtype == object
            for u, v in zip(x.flat, y.flat, strict=True):
                same(u, v)
        else:
            assert type(x) is type(y)
            np.testing.assert_array_equal(x, y)
            if isinstance(x, np.ndarray):
                assert x.shape == y.shape

    same(a, b)
    assert a["stimseq"].shape == (N, 1)  # MATLAB shapes: a column cell, a row cell, N x 3 ...
    assert a["probes"]["rod_names"].shape == (1, 6)
    assert a["probes"]["mni"].shape == (6, 3)


def test_responses_reorders_to_any_stimulus_order(tmp_path):
    fields = _fields()
    sub = load_intracranial(write_intracranial_mat(tmp_path / "s.mat", **fields), n_stimuli=N)
    wanted = sorted(sub.stimseq.tolist())
    out = sub.responses(wanted)
    for k, name in enumerate(wanted):
        row = int(np.flatnonzero(sub.stimseq == name)[0])
        np.testing.assert_array_equal(out[k], sub.data[row])
    with pytest.raises(InputError, match="not a reordering"):
        sub.responses(wanted[:-1] + ["NOPE"])


@pytest.mark.parametrize("version", VERSIONS)
def test_subject_without_probes(tmp_path, version):
    fields = random_subject(0, N, seed=1)
    path = write_intracranial_mat(tmp_path / "e.mat", version=version, **fields)
    sub = load_intracranial(path, n_stimuli=N)
    assert sub.data.shape == (N, 0) and sub.mni.shape == (0, 3)
    assert sub.rod_names.shape == (0,) and sub.areas.shape == (0,)


# --------------------------------------------------------------- MATLAB's v7.3 layout


def test_v73_layout_is_matlabs(tmp_path):
    fields = _fields()
    path = write_intracranial_mat(tmp_path / "s.mat", version="7.3", **fields)
    with open(path, "rb") as fh:
        header = fh.read(128)
    assert header.startswith(b"MATLAB 7.3 MAT-file, Platform: ")
    assert header[124:128] == b"\x00\x02IM"
    assert scipy.io.matlab.matfile_version(str(path)) == (2, 0)
    with h5py.File(path, "r") as f:
        assert f.userblock_size == 512
        assert f["s"].attrs["MATLAB_class"] == b"struct"
        fields_attr = [b"".join(c).decode() for c in f["s"].attrs["MATLAB_fields"]]
        assert fields_attr == ["stimseq", "stimgroups", "probes", "data", "name"]
        data = f["s/data"]
        assert data.shape == (6, N)  # MATLAB's 250 x N, transposed
        assert data.attrs["MATLAB_class"] == b"double" and data.attrs["H5PATH"] == b"/s"
        np.testing.assert_array_equal(data[()].T == REJECTED, np.isnan(fields["data"]))
        assert f["s/probes/mni"].shape == (3, 6)
        name = f["s/name"]
        assert name.dtype == np.uint16 and name.attrs["MATLAB_class"] == b"char"
        assert name.attrs["MATLAB_int_decode"] == 2
        assert "".join(map(chr, name[()].ravel())) == "SUBJ01"
        cell = f["s/stimseq"]
        assert cell.attrs["MATLAB_class"] == b"cell" and cell.shape == (1, N)
        first = f[cell[0, 0]]
        assert first.parent.name == "/#refs#"
        assert "".join(map(chr, first[()].ravel())) == fields["stimseq"][0]
        assert f["#refs#/a"].attrs["MATLAB_class"] == b"canonical empty"


def test_reads_a_hand_built_matlab_file(tmp_path):
    """A v7.3 file built with h5py the way MATLAB lays it out (incl. empty arrays), no writer of ours."""
    path = tmp_path / "hand.mat"
    n, p = 5, 2
    data = np.arange(n * p, dtype=np.float64).reshape(n, p) + 1.0
    data[3, 1] = REJECTED
    with h5py.File(path, "w", userblock_size=512) as f:
        s = f.create_group("s")
        s.attrs["MATLAB_class"] = np.bytes_("struct")
        seq = s.create_dataset("stimseq", data=np.array([[3.0, 1.0, 5.0, 2.0, 4.0]]))  # 5 x 1 column
        seq.attrs["MATLAB_class"] = np.bytes_("double")
        d = s.create_dataset("data", data=data.T)
        d.attrs["MATLAB_class"] = np.bytes_("double")
        pr = s.create_group("probes")
        pr.attrs["MATLAB_class"] = np.bytes_("struct")
        refs = f.create_group("#refs#")
        names = []
        for k, text in enumerate(["OF", "OF"]):
            ds = refs.create_dataset("b" + "c" * k, data=np.array([[ord(c)] for c in text], dtype=np.uint16))
            ds.attrs["MATLAB_class"] = np.bytes_("char")
            ds.attrs["MATLAB_int_decode"] = np.int32(2)
            names.append(ds.ref)
        rods = pr.create_dataset("rod_names", data=np.array([names]).T, dtype=h5py.ref_dtype)  # 1 x 2 cell
        rods.attrs["MATLAB_class"] = np.bytes_("cell")
        for key, value in {"probe_ids": [[1.0, 2.0]], "mni": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
                           "areas": [[18.0], [37.0]]}.items():
            ds = pr.create_dataset(key, data=np.array(value))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
        empty = s.create_dataset("extra", data=np.array([0, 3], dtype=np.uint64))  # zeros(0, 3)
        empty.attrs["MATLAB_class"] = np.bytes_("double")
        empty.attrs["MATLAB_empty"] = np.uint8(1)
    assert read_mat_struct(path)["extra"].shape == (0, 3)
    sub = load_intracranial(path, n_stimuli=n)
    assert sub.stimseq.tolist() == [3, 1, 5, 2, 4]
    np.testing.assert_array_equal(sub.data[:, 0], data[:, 0])
    assert np.isnan(sub.data[3, 1])
    assert sub.rod_names.tolist() == ["OF", "OF"]
    np.testing.assert_array_equal(sub.mni, [[1, 3, 5], [2, 4, 6]])
    np.testing.assert_array_equal(sub.areas, [18, 37])
    assert sub.name == "hand" and sub.stimgroups is None


# --------------------------------------------------------------- malformed files


def _save(path, s, version):
    if version == "5":
        scipy.io.savemat(path, {"s": s}, format="5")
    else:
        savemat_v73(path, {"s": s})


def _without(key):
    def edit(s):
        if "." in key:
            top, sub = key.split(".")
            del s[top][sub]
        else:
            del s[key]
    return edit


def _set(key, value):
    def edit(s):
        if "." in key:
            top, sub = key.split(".")
            s[top][sub] = value(s[top][sub]) if callable(value) else value
        else:
            s[key] = value(s[key]) if callable(value) else value
    return edit


def _cell(items, shape):
    cell = np.empty(len(items), dtype=object)
    cell[:] = items
    return cell.reshape(shape)


MALFORMED = {
    "missing data": (_without("data"), "no field\\(s\\) data"),
    "missing probes": (_without("probes"), "no field\\(s\\) probes"),
    "missing mni": (_without("probes.mni"), "s.probes has no field\\(s\\) mni"),
    "data wrong rows": (_set("data", lambda d: d[:-1]), "s.data has shape \\(19, 6\\)"),
    "data transposed": (_set("data", lambda d: d.T), "looks transposed"),
    "mni wrong shape": (_set("probes.mni", lambda m: m[:, :2]), "s.probes.mni has shape \\(6, 2\\)"),
    "too few rod names": (_set("probes.rod_names", lambda r: r[:, :-1]),
                          "rod_names holds 5 names; expected 6"),
    "areas not integers": (_set("probes.areas", lambda a: a + 0.5), "s.probes.areas holds non-integer"),
    "stimseq repeats": (_set("stimseq", lambda q: _cell(["IMG001"] * 2 + list(q.ravel()[2:]), q.shape)),
                        "repeats image names"),
    "stimseq 0-based": (_set("stimseq", np.arange(N, dtype=float).reshape(N, 1)), "looks 0-based"),
    "stimseq not a permutation": (_set("stimseq", np.full((N, 1), 1.0)), "not a permutation of 1..20"),
    "NaN in data": (_set("data", lambda d: np.where(np.arange(N)[:, None] == 2, np.nan, d)), "NaN or inf"),
    "probes not a struct": (_set("probes", 3.0), "s.probes is not a struct"),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_struct(tmp_path, case, version):
    edit, pattern = MALFORMED[case]
    s = subject_struct(**_fields())
    edit(s)
    path = tmp_path / f"bad_{version}.mat"
    _save(path, s, version)
    with pytest.raises(InputError, match=pattern) as err:
        load_intracranial(path, n_stimuli=N)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_stimulus_count(tmp_path, version):
    path = write_intracranial_mat(tmp_path / "s.mat", version=version, **_fields())
    with pytest.raises(InputError, match="has 20 entries; expected 250") as err:
        load_intracranial(path)  # the paper's 250 images by default
    assert str(path) in str(err.value)
    assert load_intracranial(path, n_stimuli=None).n_stimuli == N


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_file(tmp_path, version):
    path = write_intracranial_mat(tmp_path / "s.mat", version=version, **_fields())
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError, match="cannot read") as err:
        load_intracranial(path, n_stimuli=N)
    assert str(path) in str(err.value)


def test_other_bad_files(tmp_path):
    missing = tmp_path / "nope.mat"
    with pytest.raises(InputError, match="not found") as err:
        load_intracranial(missing)
    assert str(missing) in str(err.value)
    text = tmp_path / "text.mat"
    text.write_text("not a MAT file\n" * 20)
    with pytest.raises(InputError, match="cannot read") as err:
        load_intracranial(text)
    assert str(text) in str(err.value)
    for version in VERSIONS:
        other = tmp_path / f"other_{version}.mat"
        if version == "5":
            scipy.io.savemat(other, {"x": np.ones(3)})
        else:
            savemat_v73(other, {"x": np.ones((1, 3))})
        with pytest.raises(InputError, match="no variable 's'") as err:
            load_intracranial(other)
        assert str(other) in str(err.value)


# --------------------------------------------------------------- folders


def test_band_window_folders(tmp_path):
    assert list(BANDS) == ["theta", "alpha", "beta", "lowgamma", "highgamma"]
    assert BANDS["highgamma"] == (70, 150) and WINDOWS["50-250"] == (50, 250)
    folder = band_window_folder(tmp_path, "highgamma", "50-250")
    assert folder == tmp_path / "meanhighgamma_LFP_5c_artif_bipolar_BA_w50_highgamma_resppositive"
    custom = band_window_folder(tmp_path, "theta", "150-350", "{band}/{start}-{end}ms")
    assert custom == tmp_path / "theta/150-350ms"
    assert len(band_window_folders(tmp_path)) == 15


@pytest.mark.parametrize("band, window, pattern", [
    ("gamma", "50-250", "'band' parameter.*'highgamma'.*but got 'gamma'"),
    ("highgamma", "50-200", "'window' parameter.*'250-450'.*but got '50-200'"),
])
def test_unknown_band_or_window(tmp_path, band, window, pattern):
    with pytest.raises(InputError, match=pattern):
        band_window_folder(tmp_path, band, window)
    with pytest.raises(InputError, match=pattern):
        subject_files(tmp_path, [band], [window])


def test_bad_template(tmp_path):
    with pytest.raises(InputError, match="unknown field"):
        band_window_folder(tmp_path, "beta", "50-250", "{band}_{freq}")


def test_subject_files(tmp_path):
    fields = _fields()
    bands, windows = ["alpha", "highgamma"], ["50-250"]
    for band in bands:
        for name in ("S1", "S2"):
            write_intracranial_mat(band_window_folder(tmp_path, band, "50-250") / f"{name}.mat", **fields)
    files = subject_files(tmp_path, bands, windows)
    assert set(files) == {("alpha", "50-250"), ("highgamma", "50-250")}
    assert sorted(files[("alpha", "50-250")]) == ["S1", "S2"]
    with pytest.raises(InputError, match="not found") as err:
        subject_files(tmp_path, ["beta"], windows)
    assert "meanbeta_LFP" in str(err.value)
    (band_window_folder(tmp_path, "alpha", "50-250") / "S2.mat").unlink()
    with pytest.raises(InputError, match="subjects differ.*missing \\['S2'\\]"):
        subject_files(tmp_path, ["highgamma", "alpha"], windows)
