"""Rule aggregate_conwell: all models' layer scores, the selected layers and the noise ceilings."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import read_brain, read_table, write_table
from brainalign.linking import select_layers
from brainalign.models.registry import read_model_table

sm = snakemake
with rule_log(sm):
    layers = pd.concat([read_table(p) for p in sm.input.scores], ignore_index=True)
    ceilings = []
    for path in sm.input.brain:
        brain = read_brain(path)
        for roi, d in brain["rois"].items():
            ceilings.append({"subject": brain["subject"], "roi": roi, "ceiling": d["ceiling"],
                             "ceiling_split_half": d.get("ceiling_split_half"),
                             "reliability": d["reliability"], "n_voxels": d["responses"].shape[1],
                             "method": d.get("ceiling_method", "")})
    ceilings = pd.DataFrame(ceilings)
    meta = read_model_table(sm.input.models).rename(columns={"architecture": "model_architecture"})
    meta_cols = ["model", "source", "model_architecture", "arch_class", "task", "training_data", "trained"]
    selected = select_layers(layers, ceilings).merge(meta[meta_cols], on="model", how="left")
    write_table(layers, sm.output.layers)
    write_table(selected, sm.output.selected)
    write_table(ceilings, sm.output.ceilings)
    print(selected[selected.metric != "encoding_r"].to_string())
