"""Rule plot_cichy_roi: Fig. 6a, ROI x layer similarity bars."""

import json

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import plot_roi_layers, save_figure

sm = snakemake
with rule_log(sm):
    planted = None
    if sm.input.truth:
        with open(sm.input.truth) as f:
            planted = json.load(f)["roi_stages"]
    fig = plot_roi_layers(read_table(sm.input.layers), read_table(sm.input.layer_order), planted)
    save_figure(fig, sm.output.png, sm.output.pdf)
