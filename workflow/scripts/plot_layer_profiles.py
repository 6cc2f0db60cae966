"""Rule plot_layer_profiles: per-layer cRSA/veRSA profiles of one model (planted layer marked in the demo)."""

import json

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import plot_layer_profiles, save_figure

sm = snakemake
with rule_log(sm):
    planted = None
    if sm.input.truth:
        truth = json.loads(open(sm.input.truth).read())
        if sm.wildcards.model == truth["ground_truth_model"]:
            planted = truth["planted_layers"]
    fig = plot_layer_profiles(read_table(sm.input.layers), read_table(sm.input.selected),
                              read_table(sm.input.ceilings), sm.wildcards.model, planted=planted)
    save_figure(fig, sm.output.png, sm.output.pdf)
