"""Kuzovkin 2018 glue: demo writer through the real reader (MATLAB v5 and v7.3), layer RDMs,
table assembly against direct calls of the kernels, config errors naming the key."""

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from brainalign.intracranial import alignment, mapping_matrix, permutation_test, split_half_alignment
from brainalign.io.kuzovkin2018 import band_window_folder, load_intracranial, subject_files
from brainalign.io.kuzovkin2018_synthetic import random_subject, write_intracranial_mat
from brainalign.kuzovkin2018 import (
    DEMO_AREA_STAGES,
    PIXELS,
    alignment_table,
    check_config,
    demo_paths,
    layer_fraction_table,
    layer_rdms,
    mapping_table,
    pixel_rdm,
    probe_layer_table,
    read_layer_rdms,
    write_demo,
    write_layer_rdms,
)
from brainalign.rdm import compute_rdm
from brainalign.utils import InputError

ROOT = Path(__file__).resolve().parents[1]
BANDS, WINDOWS = ["theta", "highgamma"], ["50-250"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("kuz_demo")
    truth = write_demo(root, n_subjects=2, n_images=20, n_categories=5, probes_per_area=1,
                       n_other_probes=2, bands=BANDS, windows=WINDOWS, seed=3)
    return root, truth


def test_demo_round_trip_through_the_reader_in_both_matlab_versions(demo):
    root, truth = demo
    paths = demo_paths(root, subjects=[1, 2], bands=BANDS, windows=WINDOWS, n_stimuli=20)
    assert all(Path(p).is_file() for p in paths["stimuli"]) and Path(paths["truth"]).is_file()
    listed = subject_files(paths["data_root"], BANDS, WINDOWS)
    assert {k: {s: Path(p) for s, p in v.items()} for k, v in listed.items()} == paths["files"]
    names = sorted(Path(p).stem for p in paths["stimuli"])
    versions = set()
    for files in paths["files"].values():
        for subject, path in files.items():
            sub = load_intracranial(path, n_stimuli=20)
            versions.add(sub.mat_version)
            assert sub.mat_version == truth["mat_versions"][subject]
            assert sub.name == subject and sorted(sub.stimseq.tolist()) == names
            assert sub.data.shape == (20, 7)  # 5 visual areas x 1 + 2 others
            assert sub.areas.tolist() == list(DEMO_AREA_STAGES) + [21, 0]
            assert np.isnan(sub.data).any() and not np.isnan(sub.data).all()
            assert sub.n_rejected[-1] >= 10  # the probe with too few valid trials
            assert sorted(set(sub.stimgroups.tolist())) == [10, 20, 30, 40, 50]
    assert versions == {"5", "7.3"}
    # the planted band differs from the noise band; noise is the same construction elsewhere
    hg = load_intracranial(paths["files"][("highgamma", "50-250")]["S01"], n_stimuli=20)
    th = load_intracranial(paths["files"][("theta", "50-250")]["S01"], n_stimuli=20)
    assert np.nanstd(hg.data[:, :5]) > 2 * np.nanstd(th.data[:, :5])


def test_demo_planted_stage_is_read_out(demo):
    """Each visual probe's high-gamma RDM correlates with its planted stage's RDM (20 images)."""
    from PIL import Image

    from brainalign.demo import gtnet_activations

    root, _ = demo
    paths = demo_paths(root, subjects=[1, 2], bands=BANDS, windows=WINDOWS, n_stimuli=20)
    ids = [Path(p).stem for p in paths["stimuli"]]
    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths["stimuli"]])
    acts = gtnet_activations(images, stages=("stage1", "stage5"))
    rdms = np.stack([compute_rdm(acts[s].reshape(20, -1), "euclidean") for s in ("stage1", "stage5")])
    sub = load_intracranial(paths["files"][("highgamma", "50-250")]["S01"], n_stimuli=20)
    rho = permutation_test(sub.responses(ids), rdms, n_permutations=0, min_valid=10).rho
    early, late = sub.areas == 17, sub.areas == 20
    assert rho[early, 0] > rho[early, 1] and rho[late, 1] > rho[late, 0]


def test_pixel_and_layer_rdms(tmp_path):
    from PIL import Image

    from brainalign.models.extraction import extract_features, read_layer
    from brainalign.models.gtnet import gtnet

    rng = np.random.default_rng(0)
    arrays = rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    images = [Image.fromarray(a) for a in arrays]
    px = pixel_rdm(images, 16)
    np.testing.assert_allclose(px, compute_rdm(arrays.reshape(8, -1) / 255.0, "euclidean"))
    from torchvision import transforms

    path = tmp_path / "f.h5"
    extract_features(gtnet(), transforms.Compose([transforms.Resize(64), transforms.ToTensor()]), images,
                     [f"im{k}" for k in range(8)], path, raw_max_units=5000, progress=False,
                     n_components=64)
    out = layer_rdms(path, pixels=px)
    assert out["layers"][0] == PIXELS and out["layers"][1:] == [f"stage{k}" for k in range(1, 6)]
    assert out["metrics"] == ["euclidean", "euclidean_srp", "euclidean_srp", "euclidean", "euclidean",
                              "euclidean"]
    raw = read_layer(path, "stage5")["raw"].astype(np.float64)
    np.testing.assert_allclose(out["rdms"][-1], compute_rdm(raw, "euclidean"))
    write_layer_rdms(tmp_path / "r.h5", out, model="gtnet")
    back = read_layer_rdms(tmp_path / "r.h5")
    assert back["layers"] == out["layers"] and back["stimulus_ids"].tolist() == out["stimulus_ids"].tolist()
    np.testing.assert_array_equal(back["rdms"], out["rdms"])
    assert layer_rdms(path, layers=["stage1", "stage5"])["layers"] == ["stage1", "stage5"]
    with pytest.raises(InputError, match="kuzovkin2018.layers"):
        layer_rdms(path, layers=["stage9"])


# --------------------------------------------------------------- table assembly


N = 24


@pytest.fixture(scope="module")
def tests_table(tmp_path_factory):
    """Three random subjects (v5, v7.3, numeric stimseq), two fake models, alpha 0.5 so that many
    probe-layer pairs are significant."""
    root = tmp_path_factory.mktemp("kuz_tables")
    files = {}
    for k, (version, numeric) in enumerate([("5", False), ("7.3", False), ("5", True)]):
        fields = random_subject(9, N, seed=k, reject_fraction=0.05, numeric_stimseq=numeric,
                                areas=np.array([17, 18, 19, 37, 20, 17, 37, 21, 0]))
        files[f"P{k}"] = write_intracranial_mat(root / f"P{k}.mat", version=version, **fields)
    ids = np.array([f"IMG{k + 1:03d}" for k in range(N)])
    rng = np.random.default_rng(5)
    k = N * (N - 1) // 2
    models = {m: {"stimulus_ids": ids, "layers": [PIXELS, "a", "b"][: n], "rdms": rng.random((n, k)),
                  "metrics": ["euclidean"] * n} for m, n in (("net", 3), ("control", 2))}
    table = probe_layer_table(files, models, band="highgamma", window="50-250", n_stimuli=N,
                              n_permutations=60, alpha=0.5, min_valid=10, seed=7)
    return files, models, ids, table


def test_probe_layer_table_equals_the_kernel(tests_table):
    files, models, ids, table = tests_table
    rdms = np.vstack([models["net"]["rdms"], models["control"]["rdms"]])
    assert len(table) == 3 * 9 * 5
    for subject, path in files.items():
        sub = load_intracranial(path, n_stimuli=N)
        order = ids if sub.stimseq.dtype.kind == "U" else np.arange(1, N + 1).astype(str)
        res = permutation_test(sub.responses(order), rdms, n_permutations=60, alpha=0.5, min_valid=10,
                               seed=7)
        t = table[table["subject"] == subject]
        for col, (model, layer_index) in enumerate([("net", 0), ("net", 1), ("net", 2), ("control", 0),
                                                    ("control", 1)]):
            c = t[(t["model"] == model) & (t["layer_index"] == layer_index)].sort_values("probe")
            np.testing.assert_array_equal(c["rho"].to_numpy(), res.rho[:, col])
            np.testing.assert_array_equal(c["p"].to_numpy(), res.p[:, col])
            np.testing.assert_array_equal(c["significant"].to_numpy(), res.significant[:, col])
            np.testing.assert_array_equal(c["area"].to_numpy(), sub.areas)
            np.testing.assert_array_equal(c["kept"].to_numpy(), res.kept)
    assert table["significant"].sum() > 20


def _per_subject(table, model):
    sig, areas, rho, kept = [], [], [], []
    for _, t in table[table["model"] == model].groupby("subject", sort=True):
        n_l = t["layer_index"].nunique()
        t = t.sort_values(["probe", "layer_index"])
        sig.append(t["significant"].to_numpy(bool).reshape(-1, n_l))
        rho.append(t["rho"].to_numpy(float).reshape(-1, n_l))
        areas.append(t["area"].to_numpy(int)[::n_l])
        kept.append(t["kept"].to_numpy(bool)[::n_l])
    return sig, areas, rho, kept


def test_alignment_mapping_and_fractions_equal_the_kernels(tests_table):
    *_, table = tests_table
    align = alignment_table(table, n_splits=50, seed=2, min_points=5)
    mapping = mapping_table(table)
    fractions = layer_fraction_table(table)
    for model in ("net", "control"):
        sig, areas, rho, kept = _per_subject(table, model)
        a = alignment(np.vstack(sig), np.concatenate(areas))
        row = align[align["model"] == model].iloc[0]
        assert row["n_points"] == a.n_points and row["reliable"] == (a.n_points >= 5)
        np.testing.assert_equal([row["rho_align"], row["tau"], row["rho_p"]], [a.rho, a.tau, a.rho_p])
        half = split_half_alignment(sig, areas, n_splits=50, seed=2)
        assert row["split_half_sd"] == half.rho_sd and row["split_half_mean"] == half.rho_mean
        m = mapping_matrix(np.vstack(sig), np.concatenate(areas), rho=np.vstack(rho),
                           kept=np.concatenate(kept))
        got = mapping[mapping["model"] == model].pivot(index="area_index", columns="layer_index",
                                                       values="fraction").to_numpy()
        np.testing.assert_array_equal(got, m.fraction)
        visual = np.isin(np.concatenate(areas), [17, 18, 19, 37, 20]) & np.concatenate(kept)
        expect = np.vstack(sig)[visual].mean(axis=0)
        f = fractions[fractions["model"] == model].sort_values("layer_index")["fraction"].to_numpy()
        np.testing.assert_allclose(f, expect)


def test_probe_layer_table_refuses_models_with_other_stimuli(tests_table):
    files, models, ids, _ = tests_table
    other = copy.deepcopy(models)
    other["control"]["stimulus_ids"] = ids[::-1]
    with pytest.raises(InputError, match="control"):
        probe_layer_table(files, other, band="highgamma", window="50-250", n_stimuli=N, n_permutations=0)


# --------------------------------------------------------------- config


def _config():
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["kuzovkin2018"])


def test_check_config_demo_paths():
    out = check_config(_config(), demo=True, demo_root="resources/demo/kuzovkin2018")
    assert len(out["subjects"]) == _config()["demo"]["n_subjects"] and out["n_stimuli"] == 100
    assert set(out["files"]) == {(b, w) for b in out["bands"] for w in out["windows"]}


@pytest.mark.parametrize("key, value, message", [
    ("bands", ["gamma"], "kuzovkin2018.bands"),
    ("windows", ["0-200"], "kuzovkin2018.windows"),
    ("root", "elsewhere", "kuzovkin2018.root"),
    ("n_stimuli", 250, "kuzovkin2018.n_stimuli"),
    ("subjects", ["S99"], "kuzovkin2018.subjects"),
    ("subjects", ["S01"], "kuzovkin2018.subjects"),
    ("folder_template", "w{begin}", "kuzovkin2018.folder_template"),
])
def test_bad_config_names_the_key(key, value, message):
    cfg = _config()
    cfg[key] = value
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        check_config(cfg, demo=True, demo_root="resources/demo/kuzovkin2018")


def test_real_data_config(tmp_path):
    cfg = _config()
    cfg.update(root=str(tmp_path / "data"), bands=["highgamma"], windows=["50-250"], n_stimuli=3,
               stimuli={"dir": str(tmp_path / "img"), "pattern": "*.png"})
    with pytest.raises(InputError, match=r"kuzovkin2018\.root"):
        check_config(cfg, demo=False, demo_root=None)
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match=r"kuzovkin2018\.root / \.folder_template"):
        check_config(cfg, demo=False, demo_root=None)
    d = band_window_folder(tmp_path / "data", "highgamma", "50-250")
    d.mkdir()
    for s in ("A", "B"):
        (d / f"{s}.mat").touch()
    with pytest.raises(InputError, match=r"kuzovkin2018\.stimuli\.dir"):
        check_config(cfg, demo=False, demo_root=None)
    (tmp_path / "img").mkdir()
    for name in ("x", "y", "z"):
        (tmp_path / "img" / f"{name}.png").touch()
    out = check_config(cfg, demo=False, demo_root=None)
    assert out["subjects"] == ["A", "B"] and out["n_stimuli"] == 3
    cfg["n_stimuli"] = 4
    with pytest.raises(InputError, match=r"kuzovkin2018\.stimuli\.dir / \.n_stimuli"):
        check_config(cfg, demo=False, demo_root=None)
