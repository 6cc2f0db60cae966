"""Rule lu2025_figures: the Lu 2025 figures (brainalign.plots_lu2025)."""

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots_lu2025 import plot_lu_dimensions, plot_lu_eeg, plot_lu_losses, plot_lu_rsa, save_figure

sm = snakemake
with rule_log(sm):
    out = sm.output
    scores = read_table(sm.input.scores)
    save_figure(plot_lu_losses(read_table(sm.input.losses)), out.losses, out.losses.replace(".png", ".pdf"))
    save_figure(plot_lu_rsa(scores, "shen", "Shen test set, within subject"), out.shen,
                out.shen.replace(".png", ".pdf"))
    save_figure(plot_lu_rsa(scores, "horikawa", "Horikawa test set, across subjects"), out.horikawa,
                out.horikawa.replace(".png", ".pdf"))
    save_figure(plot_lu_eeg(read_table(sm.input.eeg)), out.eeg, out.eeg.replace(".png", ".pdf"))
    save_figure(plot_lu_dimensions(read_table(sm.input.dimensions), sm.params.main_beta), out.dimensions,
                out.dimensions.replace(".png", ".pdf"))
