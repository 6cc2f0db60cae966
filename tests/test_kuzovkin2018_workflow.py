"""Kuzovkin 2018 on the default demo: the planted band and the trained-vs-random contrast."""

import json

import pandas as pd
import pytest
from conftest import skip_unless_ran

pytestmark = pytest.mark.slow

RESULTS = "results/kuzovkin2018"


def _alignment(wd):
    return pd.read_csv(wd / RESULTS / "tables" / "alignment.csv", dtype={"window": str})


def test_outputs_exist(demo_run):
    wd = demo_run
    skip_unless_ran(wd, "kuzovkin2018")
    for name in ("rho_align", "layer_fractions", "mapping_gtnet", "mapping_gtnet_random"):
        for ext in ("png", "pdf"):
            assert (wd / RESULTS / "figures" / f"{name}.{ext}").stat().st_size > 0
    tests = pd.read_csv(wd / RESULTS / "tables" / "probe_layer_tests.csv", dtype={"window": str})
    truth = json.loads((wd / "resources/demo/kuzovkin2018/truth.json").read_text())
    assert set(tests["subject"]) == set(truth["subjects"])
    assert set(truth["mat_versions"].values()) == {"5", "7.3"}
    assert (~tests["kept"]).any()  # the demo's probe with 80 % rejected trials is dropped
    mapping = pd.read_csv(wd / RESULTS / "tables" / "mapping.csv", dtype={"window": str})
    assert mapping["fraction"].between(0, 1).all()


@pytest.mark.planted
def test_high_gamma_is_the_most_aligned_band(demo_run):
    """For gtnet, in every window, high gamma has the most significant points, is the only band
    with a reliable rho_align (at least alignment.min_points = 10 points) and its rho_align is
    positive. Measured on full demo runs (seeds 0 and 1, the latter under the CPU caps
    ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 OPENBLAS_CORETYPE=Haswell): high gamma
    237-263 points per window, every other band x window at most 7 (chance: about 1.4 expected
    at alpha 0.002); high-gamma rho_align per window 0.09-0.29 (split-half sd 0.03-0.10)."""
    wd = demo_run
    skip_unless_ran(wd, "kuzovkin2018")
    a = _alignment(wd)
    g = a[a["model"] == "gtnet"]
    for window, t in g.groupby("window"):
        best = t.sort_values("n_points").iloc[-1]
        assert best["band"] == "highgamma", (window, t[["band", "n_points"]].to_dict("records"))
        reliable = t[t["reliable"]]
        assert reliable["band"].tolist() == ["highgamma"], (window, reliable.to_dict("records"))
        assert best["rho_align"] > 0


@pytest.mark.planted
def test_trained_net_is_aligned_and_random_net_much_less(demo_run):
    """High-gamma rho_align averaged over the three windows. Measured: full demo seed 0 gtnet
    0.287 vs gtnet_random 0.032; seed 1 under the CPU caps (see above) 0.142 vs -0.045; the
    high-gamma tests re-run on other noise draws of seeds 0-2: gtnet 0.29 / 0.20 / 0.33,
    gtnet_random 0.06 / 0.02 / 0.12. So gtnet minus gtnet_random is 0.18-0.26 and the ratio at
    most 0.37. Asserted: gtnet > 0.05, gtnet_random < gtnet - 0.08 and < 0.6 x gtnet (floating-
    point summation order moves rho_align by ~1e-15)."""
    wd = demo_run
    skip_unless_ran(wd, "kuzovkin2018")
    a = _alignment(wd)
    hg = a[a["band"] == "highgamma"].groupby("model")["rho_align"].mean()
    assert hg["gtnet"] > 0.05, hg.to_dict()
    assert hg["gtnet_random"] < hg["gtnet"] - 0.08, hg.to_dict()
    assert hg["gtnet_random"] < 0.6 * hg["gtnet"], hg.to_dict()
