"""Rule plot_survey: architecture, task and diet comparisons, ranking with breakpoints,
model-to-model RSA (Conwell 2024 Figs. 2-6)."""

import json

import h5py
import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import (
    plot_group_comparison,
    plot_model_similarity,
    plot_survey_ranking,
    save_figure,
)

sm = snakemake
with rule_log(sm):
    opts = sm.params.survey
    models = read_table(sm.input.models)
    per_subject = read_table(sm.input.per_subject)
    ceilings = read_table(sm.input.ceilings)
    frames = {}
    with h5py.File(sm.input.similarity, "r") as f:
        breaks = json.loads(f.attrs["breaks"])
        for key in f:
            g = f[key]
            frames[key] = pd.DataFrame(g["values"][()], index=list(g.attrs["index"]),
                                       columns=list(g.attrs["columns"]))
    kw = dict(roi=opts["roi"], n_boot=opts["n_bootstrap"], seed=sm.params.seed)
    save_figure(plot_group_comparison(per_subject, ceilings, group="arch_class",
                                      title="Architecture comparison", **kw), sm.output.architecture)
    # task and input diet are compared among trained models (random ones have neither)
    trained = per_subject[per_subject["trained"].astype(bool)]
    pool, note = (trained, "trained models") if trained["model"].nunique() >= 2 else \
        (per_subject, "all models: fewer than 2 trained")
    for group, title, out in (("task", "Task comparison", sm.output.task),
                              ("training_data", "Input diet comparison", sm.output.diet)):
        save_figure(plot_group_comparison(pool, ceilings, group=group, title=f"{title}, {note}", **kw), out)
    save_figure(plot_survey_ranking(models, breaks, roi=opts["roi"]), sm.output.ranking)
    similarity = {k.removeprefix("similarity_"): v for k, v in frames.items() if k.startswith("similarity_")}
    mds = {k.removeprefix("mds_"): v for k, v in frames.items() if k.startswith("mds_")}
    save_figure(plot_model_similarity(similarity, mds, models), sm.output.similarity)
