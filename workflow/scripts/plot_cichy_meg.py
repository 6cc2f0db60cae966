"""Rule plot_cichy_meg: Fig. 3a (RSA time course per layer) and Fig. 3b (peak latency vs layer)."""

import json

from _bootstrap import rule_log
from brainalign.artifacts import read_table
from brainalign.plots import plot_peak_latencies, plot_rsa_timecourses, save_figure

sm = snakemake
with rule_log(sm):
    planted = None
    if sm.input.truth:
        with open(sm.input.truth) as f:
            truth = json.load(f)
        if sm.wildcards.model == truth["ground_truth_model"]:
            planted = truth["meg_peak_latency_s"]
    courses = read_table(sm.input.timecourses)
    save_figure(plot_rsa_timecourses(courses, planted), sm.output.timecourses, sm.output.timecourses_pdf)
    peaks, order = read_table(sm.input.peaks), read_table(sm.input.layer_order)
    save_figure(plot_peak_latencies(peaks, order, planted), sm.output.peaks, sm.output.peaks_pdf)
