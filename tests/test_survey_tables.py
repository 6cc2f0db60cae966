"""survey_tables: the workflow's survey summary built from tidy selected-layer tables."""

import numpy as np
import pandas as pd
import pytest

from brainalign.survey import (
    classical_mds,
    controlled_comparison,
    diet_pairs,
    model_rsm_similarity,
    survey_tables,
)


@pytest.fixture
def survey():
    rng = np.random.default_rng(0)
    models = [f"cnn{i}" for i in range(7)] + [f"vit{i}" for i in range(6)]
    meta = pd.DataFrame({"model": models, "arch_class": ["CNN"] * 7 + ["transformer"] * 6,
                         "trained": [False] * 13, "n_params": rng.integers(1e6, 1e8, 13),
                         "top1": np.nan})
    rows, layers, rdms = [], [], {}
    base = rng.standard_normal(45)
    for k, m in enumerate(models):
        effect = 0.1 if m.startswith("cnn") else 0.0
        rdms[m] = {}
        for s in ("01", "02", "03"):
            for metric, level in (("crsa", 0.4), ("versa", 0.7)):
                rows.append({"model": m, "subject": s, "roi": "OTC", "metric": metric, "selected_layer": "l1",
                             "score": level + effect + 0.01 * rng.standard_normal() - 0.005 * k,
                             "ceiling": 0.9, "explainable_variance": 0.5})
                rdms[m][(s, "OTC", metric)] = base + 0.5 * rng.standard_normal(45)
        layers.append({"model": m, "layer": "l1", "effective_dim": 3.0 + k})
    return pd.DataFrame(rows), pd.DataFrame(layers), meta, rdms


def test_survey_tables(survey):
    selected, layers, meta, rdms = survey
    out = survey_tables(selected, layers, meta, rdms, roi="OTC", n_breaks=2)
    models = out["models"].set_index("model")
    assert len(models) == 13
    expected = selected[selected.metric == "versa"].groupby("model")["score"].mean()
    np.testing.assert_allclose(models.loc[expected.index, "versa"], expected)
    assert models.loc["cnn3", "effective_dim"] == 6.0
    assert models["rank"].min() == 1 and models["rank"].max() == 13
    # the controlled comparison is statsmodels' OLS on the same rows
    comp = out["comparisons"]
    row = comp[(comp.metric == "versa") & (comp.factor == "arch_class")].iloc[0]
    per = out["per_subject"]
    direct = controlled_comparison(per[per.metric == "versa"], "arch_class")
    assert row["beta"] == pytest.approx(direct["beta"].iloc[0])
    assert row["beta"] < -0.05  # transformers planted 0.1 lower
    assert len(out["breakpoints"]) == 2
    assert set(out["correlations"]["property"]) == {"n_params", "effective_dim"}
    sim = out["similarity_versa"]
    mean_rdms = {m: np.mean([v for (_, _, me), v in d.items() if me == "versa"], axis=0)
                 for m, d in rdms.items()}
    pd.testing.assert_frame_equal(sim, model_rsm_similarity(mean_rdms))
    pd.testing.assert_frame_equal(out["mds_versa"], classical_mds(1.0 - sim, n_components=2))


def test_survey_tables_small_survey_skips_what_it_cannot_estimate(survey):
    selected, layers, meta, rdms = survey
    keep = ["cnn0", "cnn1", "vit0"]
    out = survey_tables(selected[selected.model.isin(keep)], layers, meta,
                        {m: rdms[m] for m in keep}, roi="OTC")
    assert out["comparisons"].empty  # one transformer only
    assert out["breakpoints"].empty and out["_breaks"] is None
    assert "similarity_crsa" in out


def test_survey_tables_leaves_out_constant_rdms(survey):
    """An untrained network whose selected layer maps every image alike: warned, left out."""
    selected, layers, meta, rdms = survey
    rdms = {m: dict(d) for m, d in rdms.items()}
    for key in rdms["vit5"]:
        rdms["vit5"][key] = np.full(45, 0.3)
    with pytest.warns(UserWarning, match="vit5.*constant"):
        out = survey_tables(selected, layers, meta, rdms, roi="OTC")
    assert "vit5" not in out["similarity_versa"].index
    assert len(out["mds_crsa"]) == 12 and len(out["models"]) == 13


def test_survey_tables_all_untrained_with_full_metadata(survey):
    """A survey of random networks only (survey-demo): no task or diet comparison, no error."""
    selected, layers, meta, rdms = survey
    meta = meta.assign(architecture=[f"arch{i}" for i in range(13)], training_data="none", task="none")
    out = survey_tables(selected, layers, meta, rdms, roi="OTC")
    assert set(out["comparisons"]["factor"]) == {"arch_class"}
    assert diet_pairs(out["per_subject"]).empty


def test_survey_tables_unknown_roi(survey):
    selected, layers, meta, rdms = survey
    with pytest.raises(ValueError, match="EVC"):
        survey_tables(selected, layers, meta, rdms, roi="EVC")


def test_survey_tables_task_and_diet_comparisons(survey):
    """Task and diet are compared among trained models; 1K vs 21K also paired by architecture."""
    selected, layers, meta, rdms = survey
    meta = meta.copy()
    meta["trained"] = [True] * 12 + [False]
    meta["task"] = ["classification"] * 6 + ["self-supervised"] * 6 + ["none"]
    meta["architecture"] = [f"arch{i % 4}.{'in1k' if i < 4 else 'in21k'}" for i in range(8)] + \
        [f"other{i}" for i in range(5)]
    meta["training_data"] = (["ImageNet-1K"] * 4 + ["ImageNet-21K + ImageNet-1K"] * 4
                             + ["LAION-2B"] * 4 + ["none"])
    sel = selected.copy()
    bump = sel["model"].map(dict(zip(meta["model"], [0.0] * 4 + [0.05] * 4 + [0.0] * 5, strict=True)))
    sel["score"] = sel["score"] + bump
    out = survey_tables(sel, layers, meta, rdms, roi="OTC", n_breaks=2)
    comp = out["comparisons"]
    # `trained` is not compared: a single random model
    assert set(comp["factor"]) == {"arch_class", "task", "training_data", "diet (paired)"}
    task = comp[(comp.factor == "task") & (comp.metric == "versa")]
    assert task["n_obs"].iloc[0] == 12 * 3  # the random model is left out
    paired = comp[(comp.factor == "diet (paired)") & (comp.metric == "versa")].iloc[0]
    assert paired["reference"] == "ImageNet-1K" and paired["level"] == "ImageNet-21K"
    assert paired["n_obs"] == 8 * 3 and "MixedLM" in paired["test"]
    # balanced pairs: the mixed-model effect is the mean within-architecture difference
    v = sel[sel.metric == "versa"].groupby("model")["score"].mean()
    diffs = [v[f"cnn{i + 4}" if i < 3 else "vit0"] - v[f"cnn{i}"] for i in range(4)]
    assert paired["beta"] == pytest.approx(np.mean(diffs), abs=1e-6)


@pytest.mark.parametrize("n_models", [0, 1])
def test_model_similarity_figure_with_fewer_than_two_models(n_models, capsys):
    """A one-model survey (issue 17's degenerate run) gets a figure that says what it needs
    instead of a crash in plt.subplots(0, 2)."""
    from brainalign.plots import plot_model_similarity

    names = [f"m{i}" for i in range(n_models)]
    sim = {"crsa": pd.DataFrame(np.eye(n_models), index=names, columns=names)} if n_models else {}
    mds = {"crsa": pd.DataFrame(np.zeros((n_models, 2)), index=names)} if n_models else {}
    meta = pd.DataFrame({"model": names, "arch_class": ["CNN"] * n_models})
    fig = plot_model_similarity(sim, mds, meta)
    assert "needs >= 2 models" in fig.axes[0].texts[0].get_text().replace("\n", " ")
    assert "skipped" in capsys.readouterr().out
