"""Rule plot_model_comparison: selected-layer test scores of every model, per ROI."""

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import plot_model_comparison, save_figure

sm = snakemake
with rule_log(sm):
    fig = plot_model_comparison(read_table(sm.input.selected), read_table(sm.input.ceilings))
    save_figure(fig, sm.output.png, sm.output.pdf)
