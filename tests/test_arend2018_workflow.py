"""Arend 2018 on the demo: the planted V4/IT layers and units are found; controls behave.

Measured with the library calls the rules make, on the default demo (192 stimuli, 20 V4 + 30
IT sites, site noise 0.5, expected best r 1 / sqrt(1.25) = 0.894, 3 rotation runs), seeds 0-4
with 1 thread, and seeds 0-2 with 2 threads under ONEDNN_MAX_CPU_ISA=SSE41
MKL_ENABLE_INSTRUCTIONS=SSE4_2 OPENBLAS_CORETYPE=Haswell (identical to 1e-7): see each test's
docstring for the spread of the asserted quantity.
"""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import skip_unless_ran

from brainalign.unit_matching import load_match_result

pytestmark = pytest.mark.slow
PAPER = "arend2018"


def _read(wd):
    skip_unless_ran(wd, PAPER)
    res = wd / "results" / PAPER
    return (pd.read_csv(res / "tables" / "scores.csv"), pd.read_csv(res / "tables" / "layer_scores.csv"),
            json.loads((wd / "resources" / "demo" / PAPER / "truth.json").read_text()))


@pytest.mark.planted
def test_planted_layers_found(demo_run):
    """gtnet's V4-like layer (per-layer argmax, in-sample and held-out) is the planted stage1,
    its IT-like layer the planted stage4: the planted layer's median best r is 0.888-0.901 in
    every measured run, the runner-up layer's 0.62-0.70 (V4) and 0.45-0.55 (IT)."""
    scores, _, truth = _read(demo_run)
    g = scores[scores["model"] == "gtnet"].set_index("region")
    for region in ("V4", "IT"):
        assert g.loc[region, "best_layer"] == truth["planted_layers"][region]
        assert g.loc[region, "best_layer_heldout"] == truth["planted_layers"][region]
    assert g.loc["V4", "best_layer_depth"] < g.loc["IT", "best_layer_depth"]


@pytest.mark.planted
def test_planted_units_recovered(demo_run):
    """Fraction of sites whose best unit (in-sample, over all layers) is exactly the planted
    unit: 0.98-1.00 over the measured runs (asserted >= 0.8); the planted layer: 1.00 (asserted
    >= 0.9); median best r 0.891-0.899 against the 0.894 the noise allows."""
    skip_unless_ran(demo_run, PAPER)
    _, _, truth = _read(demo_run)
    result = load_match_result(demo_run / "results" / PAPER / "matching" / "gtnet.npz")
    layers = np.asarray(result.layers)[result.best_layer]
    planted_layer = np.array([s["layer"] for s in truth["sites"]])
    planted_unit = np.array([s["unit"] for s in truth["sites"]])
    same_unit = (layers == planted_layer) & (result.best_unit == planted_unit)
    assert np.mean(layers == planted_layer) >= 0.9
    assert np.mean(same_unit) >= 0.8
    # the best r sits near the r the noise allows (0.894)
    assert abs(np.median(result.best_r) - truth["expected_r"]) < 0.05


@pytest.mark.planted
def test_controls(demo_run):
    """Rotation lowers gtnet's score (mean of 3 runs, in-sample: V4 drops by 0.17-0.26, IT by
    0.35-0.41; asserted > 0.08); random activations score near zero held-out (|median r| <=
    0.05 measured, asserted < 0.12); their in-sample maximum over gtnet's ~30k units is
    0.286-0.298 with 192 stimuli, the size of the largest of that many null correlations
    (asserted < 0.4 and well below the model's)."""
    scores, _, _ = _read(demo_run)
    g = scores[scores["model"] == "gtnet"].set_index("region")
    for region in ("V4", "IT"):
        assert g.loc[region, "rotation_r"] < g.loc[region, "median_r"] - 0.08
        assert abs(g.loc[region, "random_r_heldout"]) < 0.12
        assert g.loc[region, "random_r"] < 0.4
        assert g.loc[region, "random_r"] < g.loc[region, "median_r"] - 0.4


def test_outputs_present(demo_run):
    """Every table and figure exists; decoding has every condition with chance 0.125."""
    skip_unless_ran(demo_run, PAPER)
    res = demo_run / "results" / PAPER
    for f in ("correlation", "layers", "decoding", "depth"):
        for ext in ("png", "pdf"):
            assert (res / "figures" / f"{f}.{ext}").stat().st_size > 0
    dec = pd.read_csv(res / "tables" / "decoding.csv")
    assert {"neural", "model", "model_to_neural", "neural_to_model", "baseline"} <= set(dec["condition"])
    assert (dec["chance"] == 0.125).all()
    layers = pd.read_csv(res / "tables" / "layer_scores.csv")
    assert set(layers["model"]) == {"gtnet", "alexnet_random"}
