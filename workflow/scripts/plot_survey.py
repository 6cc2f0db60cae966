"""Rule plot_survey: architecture comparison, ranking with breakpoints, model-to-model RSA."""

import json

import h5py
import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import (
    plot_architecture_comparison,
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
    save_figure(plot_architecture_comparison(per_subject, ceilings, roi=opts["roi"],
                                             n_boot=opts["n_bootstrap"], seed=sm.params.seed),
                sm.output.architecture)
    save_figure(plot_survey_ranking(models, breaks, roi=opts["roi"]), sm.output.ranking)
    similarity = {k.removeprefix("similarity_"): v for k, v in frames.items() if k.startswith("similarity_")}
    mds = {k.removeprefix("mds_"): v for k, v in frames.items() if k.startswith("mds_")}
    save_figure(plot_model_similarity(similarity, mds, models), sm.output.similarity)
