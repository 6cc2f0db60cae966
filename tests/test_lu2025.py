"""Lu 2025 workflow library (brainalign.lu2025): demo data in the real formats, read back through
the real loaders, whose planted structure makes fMRI alignment beat Control; input helpers."""

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign.io.bdata import load_bdata_rois, pca_visual_cortex
from brainalign.io.things_eeg2 import load_things_eeg2
from brainalign.lu2025 import (
    build_cornet,
    check_config,
    concept_name,
    find_images,
    improvement_table,
    load_images,
    load_things_dimensions,
    parse_model_name,
    planted_feature,
    rsa_rows,
    stimulus_list,
    things_test_images,
    write_lu2025_demo,
)
from brainalign.rdm import compare_rdms, compute_rdm
from brainalign.realnet import ReAlnet, layer_rdms, make_teacher, train_realnet
from brainalign.utils import InputError

SHEN_TEST = {"natural": "sub-{subject}_NaturalTest.h5", "artificial": "sub-{subject}_Artificial.h5",
             "letter": "sub-{subject}_Letter.h5"}


def _paths(root):
    return {
        "shen_root": root / "shen", "shen_train": "sub-{subject}_Training.h5", "shen_test": SHEN_TEST,
        "horikawa_root": root / "god", "horikawa_file": "Subject{subject}.h5",
        "eeg_root": root / "eeg", "image_dir": root / "images",
        "dims_weights": root / "dims" / "w.txt", "dims_concepts": root / "dims" / "c.tsv",
        "truth": root / "truth.json",
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("lu")
    truth = write_lu2025_demo(_paths(root), shen_subjects=(1,), horikawa_subjects=(2,), eeg_subjects=(1,),
                              n_train=192, n_test=24, n_artificial=4, n_letters=4, n_eeg_images=12,
                              n_eeg_reps=4, seed=0)
    return root, truth


def test_demo_files_read_back_through_the_real_loaders(demo):
    root, truth = demo
    train = load_bdata_rois(root / "shen" / "sub-01_Training.h5", ("ROI_VC", "ROI_V1", "ROI_LOC"))
    assert train["responses"]["ROI_VC"].shape == (192, 7 * 60)
    assert np.all(train["n_repetitions"] == 2)
    paths = find_images(root / "images", train["stimulus_labels"])
    assert all(p.suffix == ".png" for p in paths)
    x = load_images(paths[:3], 32)
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.float32
    ids, labels = stimulus_list(root / "god" / "Subject2.h5", data_type=2)
    _, natural = stimulus_list(root / "shen" / "sub-01_NaturalTest.h5")
    assert list(labels) == list(natural)  # Horikawa's test images are Shen's natural test images
    god = load_bdata_rois(root / "god" / "Subject2.h5", ("ROI_V4", "ROI_LOC"), data_type=2)
    assert god["responses"]["ROI_V4"].shape[0] == 24
    eeg = load_things_eeg2(root / "eeg", 1)
    assert eeg["data"].shape == (12, 17, 20)
    concepts, image_paths, _ = things_test_images(root / "eeg")
    assert len(image_paths) == 12 and all(p.is_file() for p in image_paths)
    dims = load_things_dimensions(root / "dims" / "w.txt", root / "dims" / "c.tsv", concepts)
    assert dims.shape == (12, 49) and np.all(dims >= 0)
    assert truth["teacher"] == "seeded untrained CORnet-S"


@pytest.mark.planted
def test_planted_feature_is_in_the_test_fmri(demo):
    """The test ROI RDMs follow the planted luminance layout (an independent recomputation)."""
    from PIL import Image

    root, _ = demo
    d = load_bdata_rois(root / "shen" / "sub-01_NaturalTest.h5", ("ROI_LOC",))
    paths = find_images(root / "images", d["stimulus_labels"])
    imgs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    lum = imgs.astype(float).mean(-1).reshape(len(imgs), 4, 8, 4, 8).mean(axis=(2, 4)).reshape(len(imgs), -1)
    assert np.allclose(planted_feature(imgs).std(0), 1)
    rho = compare_rdms(compute_rdm(d["responses"]["ROI_LOC"], "pearson"), compute_rdm(lum, "euclidean"),
                       "spearman")
    assert rho > 0.5


ALIGNMENT_SEEDS = tuple(range(10))


def _alignment_scores(tmp_path, seed) -> dict:
    """Best-layer RSA (mean over the five test ROIs) with subject 1's held-out test fMRI of the
    untrained teacher CORnet-S, Control (beta 0) and ReAlnet (beta 40), on the default demo
    settings of config.yaml (tiny CORnet-S, 32 px, 4 epochs, Pearson contrastive term)."""
    rois = ("ROI_V1", "ROI_V2", "ROI_V3", "ROI_hV4", "ROI_LOC")
    write_lu2025_demo(_paths(tmp_path), shen_subjects=(1,), horikawa_subjects=(1,), eeg_subjects=(1,),
                      n_train=128, n_test=24, n_artificial=8, n_letters=4, n_eeg_images=4, n_eeg_reps=2,
                      seed=seed)
    train = load_bdata_rois(tmp_path / "shen" / "sub-01_Training.h5", ("ROI_VC",))
    pcs, _, _ = pca_visual_cortex(train["responses"]["ROI_VC"], None, n_components=32, seed=seed)
    pcs = (pcs / pcs[:, 0].std()).astype(np.float32)
    x = load_images(find_images(tmp_path / "images", train["stimulus_labels"]), 32)
    resp, labels = {r: [] for r in rois}, []
    for f in SHEN_TEST.values():
        d = load_bdata_rois(tmp_path / "shen" / f.format(subject="01"), rois)
        labels += list(d["stimulus_labels"])
        for r in rois:
            resp[r].append(d["responses"][r])
    brain = {r: compute_rdm(np.concatenate(resp[r]), "pearson") for r in rois}
    x_test = load_images(find_images(tmp_path / "images", labels), 32)

    def score(net):
        rdms = layer_rdms(net, x_test)
        return float(np.mean([rsa_rows(rdms, brain[r])[-1]["score"] for r in rois]))

    scores = {}
    for beta in (0, 40):
        net = build_cornet(None, width=0.25, seed=seed, calibration_images=x)
        teacher = make_teacher(net)
        if beta == 0:
            scores["cornet"] = score(teacher)
        model = ReAlnet(net, n_outputs=32, input_size=32, seed=seed + 1)
        train_realnet(model, teacher, x, pcs, beta=beta, epochs=4, lr=1e-3, contrastive="pearson",
                      seed=seed, progress=False, checkpoint_path=tmp_path / f"ckpt_{beta}.pt")
        scores["control" if beta == 0 else "realnet"] = score(model)
    return scores


@pytest.fixture(scope="module")
def alignment_scores(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {s: _alignment_scores(tmp_path_factory.mktemp(f"align{s}"), s) for s in ALIGNMENT_SEEDS}
    finally:
        torch.set_num_threads(threads)


@pytest.mark.planted
def test_fmri_alignment_beats_control_and_cornet_on_held_out_test_fmri(alignment_scores):
    """The issue's key claim at library level: ReAlnet (beta 40) trained on subject 1's training
    fMRI has higher best-layer RSA with subject 1's held-out test fMRI than Control (beta 0) and
    than the untrained teacher CORnet-S, on average over demo seeds 0-9.

    Why the mean over seeds: 32 Adam steps on a tiny net are chaotic, so one seed's score moves
    with floating-point summation order (CPU kernels, thread count), and on some seeds (2, 7)
    the effect is small. Measured over seeds 0-9 in five configurations (torch threads 1 and 2,
    each with native kernels and with ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
    OPENBLAS_CORETYPE=Haswell; threads 1 with torch.use_deterministic_algorithms(True), which
    gave the native numbers exactly):

    configuration         ReAlnet - CORnet-S: min .. max (mean)   ReAlnet - Control
    1 thread, native      +0.04 .. +0.38 (0.19)                   +0.05 .. +0.34 (0.19)
    1 thread, caps        +0.02 .. +0.33 (0.17)                   +0.01 .. +0.34 (0.15)
    2 threads, native     +0.03 .. +0.34 (0.18)                   +0.03 .. +0.36 (0.20)
    2 threads, caps       +0.03 .. +0.39 (0.18)                   -0.02 .. +0.39 (0.17)

    So every configuration's 10-seed mean was >= 0.15 on both contrasts and ReAlnet won on >= 9
    of 10 seeds; the assertions (mean > 0.08, wins on >= 7 of 10) hold with room to spare,
    while a single-seed claim (the old test's) did not: seed 2 fails on other CPUs."""
    d = pd.DataFrame(alignment_scores).T
    vs_control = (d["realnet"] - d["control"]).mean()
    vs_cornet = (d["realnet"] - d["cornet"]).mean()
    assert vs_control > 0.08, d.round(3).to_dict("index")
    assert vs_cornet > 0.08, d.round(3).to_dict("index")
    # ReAlnet wins on most seeds, not only on average
    assert ((d["realnet"] > d["control"]).mean() >= 0.7) and ((d["realnet"] > d["cornet"]).mean() >= 0.7)


def test_build_cornet_calibrates_batchnorm():
    x = np.random.default_rng(0).normal(2.0, 1.0, size=(8, 3, 32, 32)).astype(np.float32)
    net = build_cornet(None, width=0.25, seed=3, calibration_images=x)
    with torch.no_grad():  # oracle: V1's first BatchNorm holds the batch statistics of conv1
        c1 = net.V1.conv1(torch.from_numpy(x))
    torch.testing.assert_close(net.V1.norm1.running_mean, c1.mean(dim=(0, 2, 3)))
    torch.testing.assert_close(net.V1.norm1.running_var, c1.var(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert net.V1.norm1.momentum == 0.1
    same = build_cornet(None, width=0.25, seed=3, calibration_images=x)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), same.state_dict().values(),
                                                 strict=True))
    with pytest.raises(InputError, match="width"):
        build_cornet("some.pth", width=0.5)


def test_find_images_and_dimension_errors(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match="b_1"):
        find_images(tmp_path, ["a", "b_1"])
    with pytest.raises(InputError, match="not found"):
        find_images(tmp_path / "none", ["a"])
    np.savetxt(tmp_path / "w.txt", np.ones((2, 3)))
    (tmp_path / "c.txt").write_text("apple\npear\n")
    assert load_things_dimensions(tmp_path / "w.txt", tmp_path / "c.txt", ["00002_pear"]).shape == (1, 3)
    with pytest.raises(InputError, match="kiwi"):
        load_things_dimensions(tmp_path / "w.txt", tmp_path / "c.txt", ["00001_kiwi"])
    assert concept_name("00001_aircraft_carrier") == "aircraft_carrier"


def test_model_names_and_improvement_table():
    assert parse_model_name("cornet")["model"] == "cornet"
    assert parse_model_name("sub-02_beta-0") == {"model": "control", "model_subject": "02", "beta": 0}
    rows = []
    for name, score in (("cornet", 0.2), ("sub-01_beta-0", 0.25), ("sub-01_beta-40", 0.3)):
        rows.append({"dataset": "shen", "roi": "LOC", "score": score, **parse_model_name(name)})
    imp = improvement_table(pd.DataFrame(rows), ["dataset", "roi"])
    assert len(imp) == 1
    assert imp["ratio_vs_cornet"].iloc[0] == pytest.approx(0.5)
    assert imp["ratio_vs_control"].iloc[0] == pytest.approx(0.2)
    r = rsa_rows({"V1": np.arange(6.0), "IT": -np.arange(6.0)}, np.arange(6.0))
    assert r[-1] == {"layer": "max", "score": pytest.approx(1.0), "best_layer": "V1"}


def test_check_config_errors(tmp_path):
    import yaml

    section = yaml.safe_load(open("config/config.yaml"))["lu2025"]
    check_config(section, demo=True)
    bad = {**section, "training": {**section["training"], "main_beta": 7}}
    with pytest.raises(InputError, match="main_beta"):
        check_config(bad, demo=True)
    real = {**section, "shen": {**section["shen"], "root": str(tmp_path)}}
    with pytest.raises(InputError, match="lu2025.shen.train_file"):
        check_config(real, demo=False)
