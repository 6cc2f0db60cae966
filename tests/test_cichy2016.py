"""brainalign.cichy2016: the demo generator (read back through the real loaders), start-up config
checks, model RDMs against scipy, and the group statistics on planted data."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import rankdata, spearmanr

from brainalign.cichy2016 import (
    SUMMARY,
    check_config,
    demo_paths,
    load_fmri,
    load_meg,
    meg_group_stats,
    meg_rsa,
    model_rdms,
    read_model_rdms,
    roi_layer_stats,
    roi_similarities,
    searchlight_group,
    select_layers,
    variant_differences,
    write_demo,
    write_model_rdms,
)
from brainalign.utils import InputError

SUBJECTS = (1, 2)
N_COND = 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("cichy_demo")
    truth = write_demo(root, subjects=SUBJECTS, n_conditions=N_COND, n_trials=6, n_channels=9,
                       n_times=30, fmri_shape=(12, 8, 8), seed=3)
    return root, truth


def test_demo_round_trips_through_the_real_loaders(demo):
    from PIL import Image

    from brainalign.io.meg import read_meg_epochs

    root, truth = demo
    paths = demo_paths(root, SUBJECTS, N_COND)
    assert json.loads(paths["truth"].read_text()) == truth
    assert truth["conditions"] == list(range(1, N_COND + 1))
    assert truth["meg_peak_latency_s"] == {"stage1": 0.1, "stage5": 0.16}
    assert [np.asarray(Image.open(p)).shape for p in paths["stimuli"]] == [(64, 64, 3)] * N_COND
    for s in ("01", "02"):
        raw = read_meg_epochs(paths["meg"][s])
        assert raw.data.shape == (N_COND, 6, 9, 30)
        assert raw.conditions.tolist() == truth["conditions"]
        assert raw.times[0] == pytest.approx(-0.1) and raw.sfreq == pytest.approx(200.0)
        meg = load_meg([paths["meg"][s]], truth["conditions"], smooth_ms=20)
        assert meg.data.shape == raw.data.shape
        base = meg.data[..., meg.times <= 0]
        assert np.allclose(base.std(axis=(0, 1, 3)), 1.0)  # per-channel baseline std normalised
        files = {k: [str(v)] for k, v in paths["fmri"][s].items() if k in ("volumes", "localizer")}
        files.update(rois={r: str(paths["fmri"][s][r]) for r in ("V1", "IT")}, mask=[])
        volumes, masks, localizer, sl_mask = load_fmri(files, N_COND)
        assert volumes.data.shape == (N_COND, 12, 8, 8) and sl_mask.all()
        for roi, stage in truth["roi_stages"].items():  # each ROI is centred on its planted peak
            centre = np.argwhere(masks[roi]).mean(axis=0)
            assert np.allclose(centre, truth["searchlight_peak_voxel"][stage], atol=0.1)  # edges clip
            peak = np.unravel_index(np.argmax(np.where(masks[roi], localizer, -np.inf)), localizer.shape)
            assert np.linalg.norm(np.subtract(peak, truth["searchlight_peak_voxel"][stage])) <= 2
    with pytest.raises(InputError, match="condition volumes"):
        load_fmri(files, N_COND + 1)


@pytest.mark.planted
def test_demo_meg_reads_out_the_planted_stages(tmp_path):
    """Oracle: at low noise, the condition-mean sensor patterns at 100 / 160 ms give RDMs that match
    the planted stage (Spearman RDMs of gtnet activations computed independently here)."""
    from PIL import Image

    from brainalign.demo import gtnet_activations
    from brainalign.io.meg import read_meg_epochs

    truth = write_demo(tmp_path, subjects=(1,), n_conditions=N_COND, n_trials=4, n_channels=40, n_times=60,
                       meg_noise_sd=0.05, fmri_shape=(8, 8, 8), seed=1)
    paths = demo_paths(tmp_path, (1,), N_COND)
    images = np.stack([np.asarray(Image.open(p)) for p in paths["stimuli"]])
    acts = gtnet_activations(images, stages=("stage1", "stage5"))
    stage_rdm = {s: pdist(rankdata(a.reshape(N_COND, -1), axis=1), "correlation") for s, a in acts.items()}
    meg = read_meg_epochs(paths["meg"]["01"])
    evoked = meg.data.mean(axis=1)  # (conditions, channels, times)
    for stage, latency in truth["meg_peak_latency_s"].items():
        t = int(np.argmin(np.abs(meg.times - latency)))
        r = spearmanr(pdist(evoked[:, :, t]), stage_rdm[stage])[0]
        assert r > 0.3, (stage, r)


def _config(**changes):
    import yaml

    cfg = yaml.safe_load(open("config/config.yaml"))["cichy2016"]
    for key, value in changes.items():
        section, _, leaf = key.rpartition(".")
        (cfg[section] if section else cfg)[leaf] = value
    return cfg


def test_check_config_resolves_paths_and_names_bad_keys(tmp_path):
    out = check_config(_config(), demo=True, demo_root="resources/demo/cichy2016")
    assert len(out["stimuli"]) == 32 and out["n_conditions"] == 32
    assert out["subjects"]["03"]["meg"] == ["resources/demo/cichy2016/meg/sub-03-epo.fif"]
    with pytest.raises(InputError, match="cichy2016.meg.epochs.*demo"):
        check_config(_config(**{"meg.epochs": "x/sub-{subject}-epo.fif"}), demo=True,
                     demo_root="resources/demo/cichy2016")
    with pytest.raises(InputError, match="cichy2016.stimuli.dir"):
        check_config(_config(**{"stimuli.dir": str(tmp_path)}), demo=False, demo_root="x")
    for i in range(3):
        (tmp_path / f"im{i}.png").touch()
    base = {"stimuli.dir": str(tmp_path)}
    with pytest.raises(InputError, match="cichy2016.meg.epochs.*-epo.fif"):
        check_config(_config(**base, **{"meg.epochs": "a/sub-{subject}.fif"}), demo=False, demo_root="x")
    with pytest.raises(InputError, match=r"cichy2016.fmri.localizer.*no \{subject\}"):
        check_config(_config(**base, **{"fmri.localizer": "loc.nii"}), demo=False, demo_root="x")
    with pytest.raises(InputError, match=r"cichy2016.fmri.rois.V1.*\{subject\}"):
        check_config(_config(**base, **{"fmri.rois": {"V1": "{subj}/V1.nii"}}), demo=False, demo_root="x")
    out = check_config(_config(**base, **{"fmri.volumes": "s{subject}/t_{condition:03d}.nii"}), demo=False,
                       demo_root="x")
    assert out["subjects"]["02"]["fmri"]["volumes"] == ["s02/t_001.nii", "s02/t_002.nii", "s02/t_003.nii"]


def test_select_layers():
    names = ["a.0", "a.1", "b.0"]
    assert select_layers(names, "all") == names
    assert select_layers(names, "re:^a") == ["a.0", "a.1"]
    assert select_layers(names, ["b.0", "a.0"]) == ["a.0", "b.0"]  # execution order kept
    with pytest.raises(InputError, match="cichy2016.layers.*zz"):
        select_layers(names, ["zz"])


@pytest.fixture(scope="module")
def features(demo, tmp_path_factory):
    from brainalign.models.extraction import extract_features
    from brainalign.models.registry import load_model, read_model_table
    from brainalign.stimuli import ImageFiles

    root, _ = demo
    model, transform = load_model("gtnet", read_model_table("config/models.csv"), seed=0)
    path = tmp_path_factory.mktemp("feat") / "gtnet.h5"
    ids = np.arange(1, N_COND + 1)
    extract_features(model, transform, ImageFiles(demo_paths(root, SUBJECTS, N_COND)["stimuli"]), ids, path,
                     layers="all", batch_size=4, n_components=64, srp_seed=0, raw_max_units=4096)
    return path


def test_model_rdms_match_scipy(features, tmp_path):
    from brainalign.models.extraction import read_layer
    from brainalign.stats import summary_rdm

    rdms = model_rdms(features)
    assert rdms["layers"] == ["stage1", "stage2", "stage3", "stage4", "stage5"]
    assert rdms["metrics"] == ["pearson_srp", "pearson_srp", "spearman", "spearman", "spearman"]
    for k, name in enumerate(rdms["layers"]):
        d = read_layer(features, name)
        if d["raw"] is not None:  # oracle: 1 - scipy Spearman between stimuli
            rho = spearmanr(d["raw"], axis=1)[0]
            expected = 1 - rho[np.triu_indices(N_COND, 1)]
            np.testing.assert_allclose(rdms["rdms"][k], expected, atol=1e-6)
    np.testing.assert_allclose(
        rdms["summary"],
        summary_rdm([read_layer(features, n)["raw"] if read_layer(features, n)["raw"] is not None
                     else read_layer(features, n)["srp"] for n in rdms["layers"]]))
    write_model_rdms(tmp_path / "r.h5", rdms, model="gtnet")
    back = read_model_rdms(tmp_path / "r.h5")
    assert back["layers"] == rdms["layers"] and back["metrics"] == rdms["metrics"]
    np.testing.assert_array_equal(back["rdms"], rdms["rdms"])
    assert back["stimulus_ids"].tolist() == [str(i) for i in range(1, N_COND + 1)]
    only = model_rdms(features, layers=["stage5"], summary=False)
    assert only["layers"] == ["stage5"] and only["summary"] is None


def _planted_rsa(n_sub=8, seed=0):
    """Decoding RDMs whose time course follows layer A at 100 ms and layer B at 160 ms."""
    rng = np.random.default_rng(seed)
    n_pairs = 28
    times = np.arange(-20, 50) / 200
    a, b = rng.random(n_pairs), rng.random(n_pairs)
    rdms = {"stimulus_ids": np.array([str(i) for i in range(1, 9)]), "layers": ["A", "mid", "B"],
            "rdms": np.stack([a, (a + b) / 2, b]), "summary": a + b, "metrics": ["spearman"] * 3}
    env = lambda c: np.exp(-0.5 * ((times - c) / 0.02) ** 2)  # noqa: E731
    frames = []
    for s in range(n_sub):
        acc = 0.5 + 0.2 * (np.outer(env(0.10), a) + np.outer(env(0.16), b)) + 0.02 * rng.standard_normal(
            (len(times), n_pairs))
        dec = {"accuracy": acc, "times": times, "conditions": rdms["stimulus_ids"]}
        frames.append(meg_rsa(rdms, dec, model="toy", subject=f"{s + 1:02d}"))
    return rdms, pd.concat(frames, ignore_index=True), times


@pytest.mark.planted
def test_meg_rsa_and_group_stats_recover_planted_latencies():
    rdms, rsa, times = _planted_rsa()
    one = rsa[(rsa["subject"] == "01") & (rsa["layer"] == "A")]
    assert len(one) == len(times) and set(rsa["layer"]) == {"A", "mid", "B", SUMMARY}
    courses, peaks, order = meg_group_stats(rsa, n_permutations=256, n_bootstrap=100,
                                            cluster_statistic="mass", seed=1)
    peaks = peaks.set_index("layer")
    assert peaks.loc["A", "peak_latency"] == pytest.approx(0.10, abs=0.011)
    assert peaks.loc["B", "peak_latency"] == pytest.approx(0.16, abs=0.011)
    assert peaks.loc["A", "ci_low"] <= peaks.loc["A", "peak_latency"] <= peaks.loc["A", "ci_high"]
    assert order.iloc[0]["spearman_r"] > 0.5 and order.iloc[0]["p"] < 0.05
    sig = courses[courses["layer"] == "A"].set_index("time")["significant"]
    assert sig.loc[0.10] and not sig[sig.index < 0].any()
    r01 = one.set_index("time")["r"]  # oracle: scipy Spearman at one time point
    assert np.isfinite(courses["mean"]).all() and np.isfinite(r01.loc[0.1])
    bad = {"accuracy": np.zeros((3, 28)), "times": times[:3], "conditions": np.arange(2, 10).astype(str)}
    with pytest.raises(InputError, match="differ"):
        meg_rsa(rdms, bad, model="toy", subject="01")


def test_variant_differences():
    _, rsa, _ = _planted_rsa()
    other = rsa.copy()
    other["model"] = "weak"
    other["r"] = other["r"] * 0.3
    table = variant_differences(pd.concat([rsa, other]), reference="toy", n_permutations=256,
                                cluster_statistic="mass", seed=0)
    weak = table[table["model"] == "weak"].set_index("time")
    assert weak.loc[0.10, "diff_mean"] > 0 and weak.loc[0.10, "diff_significant"]
    assert table[table["model"] == "toy"]["diff_mean"].isna().all()


def test_roi_layer_stats_against_numpy():
    rng = np.random.default_rng(0)
    roi = {"V1": rng.random(28), "IT": rng.random(28)}
    rdms = {"layers": ["l1", "l2", "l3"], "rdms": np.stack([roi["V1"], rng.random(28), roi["IT"]]),
            "summary": None}
    sims, noisy = [], []
    for s in range(6):
        noisy.append({k: v + 0.3 * rng.standard_normal(28) for k, v in roi.items()})
        sims.append(roi_similarities(noisy[-1], rdms, model="m", subject=f"{s:02d}"))
    sim = pd.concat(sims, ignore_index=True)
    one = sim[(sim["subject"] == "00") & (sim["roi"] == "IT") & (sim["layer"] == "l2")]["r"].iloc[0]
    assert one == pytest.approx(spearmanr(noisy[0]["IT"], rdms["rdms"][1])[0])  # oracle: scipy
    bars, order = roi_layer_stats(sim, n_permutations=100, seed=0)
    mean = sim.groupby(["roi", "layer"])["r"].mean()
    for _, row in bars.iterrows():
        assert row["mean"] == pytest.approx(mean[(row["roi"], row["layer"])])
    assert (bars["p_fdr"] >= bars["p"] - 1e-12).all()
    order = order.set_index("roi")
    assert order.loc["V1", "spearman_r"] < 0 < order.loc["IT", "spearman_r"]


@pytest.mark.planted
def test_searchlight_group_finds_planted_peak():
    rng = np.random.default_rng(0)
    shape = (10, 9, 8)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), axis=-1)
    bump = np.exp(-((grid - (3, 4, 5)) ** 2).sum(-1) / 4.0)
    maps = 0.5 * bump[None, None] + 0.05 * rng.standard_normal((8, 2, *shape))
    maps[:, :, 0] = np.nan  # outside the mask
    mean, significant, peaks = searchlight_group(maps, np.eye(4), ["x", "y"], model="m", n_permutations=256,
                                                 cluster_statistic="mass", seed=0)
    assert peaks[["i", "j", "k"]].to_numpy().tolist() == [[3, 4, 5], [3, 4, 5]]
    assert significant[0][3, 4, 5] and not significant[:, 0].any() and np.isnan(mean[:, 0]).all()
