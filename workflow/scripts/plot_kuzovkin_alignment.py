"""Rule plot_kuzovkin_alignment: rho_align per band x window (trained vs random, split-half noise
band) and the per-layer fraction of significant probes."""

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots_kuzovkin2018 import plot_layer_fractions, plot_rho_align, save_figure

sm = snakemake
with rule_log(sm):
    bands, windows, models = sm.params.bands, sm.params.windows, sm.params.models
    alignment = read_table(sm.input.alignment)
    alignment["window"] = alignment["window"].astype(str)
    save_figure(plot_rho_align(alignment, bands=bands, windows=windows, models=models),
                sm.output.rho_png, sm.output.rho_pdf)
    fractions = read_table(sm.input.fractions)
    fractions["window"] = fractions["window"].astype(str)
    save_figure(plot_layer_fractions(fractions, bands=bands, windows=windows, models=models),
                sm.output.fractions_png, sm.output.fractions_pdf)
