"""Rule plot_kuzovkin_mapping: the area x layer mapping matrices of one model, per band x window."""

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots_kuzovkin2018 import plot_mapping_grid, save_figure

sm = snakemake
with rule_log(sm):
    mapping = read_table(sm.input.mapping)
    mapping["window"] = mapping["window"].astype(str)
    fig = plot_mapping_grid(mapping, model=sm.wildcards.model, bands=sm.params.bands,
                            windows=sm.params.windows)
    save_figure(fig, sm.output.png, sm.output.pdf)
