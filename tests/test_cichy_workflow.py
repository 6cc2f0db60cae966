"""Cichy 2016 in the default demo: the planted MEG latencies and searchlight peaks are recovered.

Slow: these tests take the session-wide ``demo_run`` (the whole default demo, once). For
development: ``BRAINALIGN_DEMO_PAPERS=cichy2016 python -m pytest tests/test_cichy_workflow.py -m slow``.
"""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from conftest import skip_unless_ran

pytestmark = pytest.mark.slow
TABLES = "results/cichy2016/tables"


def _truth(wd):
    return json.loads((wd / "resources/demo/cichy2016/truth.json").read_text())


@pytest.mark.planted
def test_planted_meg_latencies_are_recovered(demo_run):
    skip_unless_ran(demo_run, "cichy2016")
    truth = _truth(demo_run)
    model = truth["ground_truth_model"]
    peaks = pd.read_csv(demo_run / TABLES / f"meg_peak_latency_{model}.csv").set_index("layer")
    planted = truth["meg_peak_latency_s"]
    assert set(planted) == {"stage1", "stage5"}
    for layer, latency in planted.items():  # within 15 ms (3 samples at 200 Hz) of the planted peak
        assert abs(peaks.loc[layer, "peak_latency"] - latency) <= 0.015, peaks
        assert peaks.loc[layer, "ci_low"] - 0.01 <= latency <= peaks.loc[layer, "ci_high"] + 0.01, peaks
    assert peaks.loc["stage1", "peak_latency"] < peaks.loc["stage5", "peak_latency"]
    order = pd.read_csv(demo_run / TABLES / f"meg_layer_order_{model}.csv").iloc[0]
    assert order["spearman_r"] > 0.3 and order["p"] < 0.05, order
    courses = pd.read_csv(demo_run / TABLES / f"meg_timecourses_{model}.csv")
    for layer, latency in planted.items():  # cluster-corrected significance at the planted peak
        c = courses[courses["layer"] == layer]
        at_peak = c.iloc[(c["time"] - latency).abs().argmin()]
        assert at_peak["significant"], c
        assert not c[c["time"] < 0]["significant"].any()  # nothing before stimulus onset


@pytest.mark.planted
def test_planted_searchlight_peaks_are_recovered(demo_run):
    skip_unless_ran(demo_run, "cichy2016")
    truth = _truth(demo_run)
    model = truth["ground_truth_model"]
    peaks = pd.read_csv(demo_run / TABLES / f"searchlight_peaks_{model}.csv").set_index("layer")
    for stage, voxel in truth["searchlight_peak_voxel"].items():
        found = peaks.loc[stage, ["i", "j", "k"]].to_numpy(dtype=float)
        assert np.linalg.norm(found - np.asarray(voxel)) <= 2.0, (stage, found, voxel)
        assert peaks.loc[stage, "n_significant_voxels"] > 0
    mean = nib.load(demo_run / f"results/cichy2016/searchlight/group_{model}_mean.nii.gz")
    assert mean.shape[-1] == len(peaks)  # one map per layer (and the whole-network RDM)


def test_roi_tables_and_figures_exist(demo_run):
    skip_unless_ran(demo_run, "cichy2016")
    truth = _truth(demo_run)
    model = truth["ground_truth_model"]
    bars = pd.read_csv(demo_run / TABLES / "roi_layers.csv")
    assert set(bars["roi"]) == set(truth["roi_stages"])
    v1 = bars[(bars["model"] == model) & (bars["roi"] == "V1") & ~bars["is_summary"]]
    assert v1.set_index("layer")["mean"].idxmax() in ("stage1", "stage2")  # early ROI: early layers
    assert bars["significant"].any()
    figures = demo_run / "results/cichy2016/figures"
    for name in (f"meg_timecourses_{model}", f"meg_peak_latency_{model}", "roi_layers"):
        for ext in ("png", "pdf"):
            assert (figures / f"{name}.{ext}").stat().st_size > 10_000, name
    variants = yaml_variants(demo_run)
    if variants:
        assert (figures / "meg_variants.png").stat().st_size > 10_000
        table = pd.read_csv(demo_run / TABLES / "meg_variants.csv")
        assert set(table["model"]) == {f"alexnet8_{v}" for v in variants}


def yaml_variants(wd):
    import yaml

    cfg = yaml.safe_load((wd / "config/config.yaml").read_text())
    return cfg["cichy2016"].get("training", {}).get("variants", [])
