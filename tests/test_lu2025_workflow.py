"""Lu 2025 in the default demo run: fMRI alignment raises held-out RSA over Control; outputs exist."""

import pandas as pd
import pytest
from conftest import skip_unless_ran

pytestmark = pytest.mark.slow
TABLES = ("rsa_scores", "improvement", "training_losses", "eeg_rsa", "dimensions")
FIGURES = ("training_losses", "shen_rsa", "horikawa_rsa", "eeg_rsa", "dimensions")


@pytest.mark.planted
def test_realnet_beats_control_on_held_out_test_fmri(demo_run):
    """The issue's key acceptance test: per subject, the ReAlnet trained on that subject's training
    fMRI has higher best-layer RSA with the subject's held-out Shen test fMRI than its Control.

    Measured on the default demo (mean over ROIs, ReAlnet - Control): subject 1 +0.20, subject 2
    +0.27 with native kernels; +0.20 and +0.28 with ONEDNN_MAX_CPU_ISA=SSE41
    MKL_ENABLE_INSTRUCTIONS=SSE4_2 OPENBLAS_CORETYPE=Haswell; the 0.03 margin is far below both.
    Single seeds can be close (see test_lu2025.py), so this rests on the demo's fixed seed only
    as far as those measurements go; .ci/run checks it in both configurations."""
    skip_unless_ran(demo_run, "lu2025")
    scores = pd.read_csv(demo_run / "results/lu2025/tables/rsa_scores.csv", dtype={"model_subject": str,
                                                                                    "brain_subject": str})
    best = scores[(scores["dataset"] == "shen") & (scores["layer"] == "max")]
    per_subject = best.groupby(["model_subject", "model"])["score"].mean().unstack()
    assert len(per_subject) >= 1
    for sub, row in per_subject.iterrows():
        assert sub != "", "CORnet rows must not be grouped as a subject"
        assert row["realnet"] > row["control"] + 0.03, per_subject
    # within subject: trained models only meet their own subject's test data
    trained = best[best["model"] != "cornet"]
    assert (trained["model_subject"] == trained["brain_subject"]).all()


def test_lu2025_tables_and_figures_exist(demo_run):
    skip_unless_ran(demo_run, "lu2025")
    res = demo_run / "results/lu2025"
    for t in TABLES:
        assert (res / "tables" / f"{t}.csv").stat().st_size > 0, t
    for f in FIGURES:
        assert (res / "figures" / f"{f}.png").stat().st_size > 10_000, f
        assert (res / "figures" / f"{f}.pdf").exists(), f
    imp = pd.read_csv(res / "tables/improvement.csv")
    assert {"ratio_vs_cornet", "ratio_vs_control"} <= set(imp.columns)
    assert set(imp["dataset"]) >= {"shen", "horikawa", "things_eeg2"}
    losses = pd.read_csv(res / "tables/training_losses.csv")
    assert set(losses["model"]) == {"control", "realnet"}
    realnet = losses[losses["model"] == "realnet"].sort_values("epoch")
    for _, g in realnet.groupby("model_subject"):  # the fMRI loss is being learned
        assert g["loss_mse"].iloc[-1] < g["loss_mse"].iloc[0]
    dims = pd.read_csv(res / "tables/dimensions.csv")
    assert dims["dimension"].max() == 49
    eeg = pd.read_csv(res / "tables/eeg_rsa.csv")
    assert eeg["time"].nunique() == 20
