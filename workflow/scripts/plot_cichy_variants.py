"""Rule plot_cichy_variants: Fig. 5b/c, whole-network RSA time courses of the DNN variants."""

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import plot_variant_timecourses, save_figure

sm = snakemake
with rule_log(sm):
    save_figure(plot_variant_timecourses(read_table(sm.input.table)), sm.output.png, sm.output.pdf)
