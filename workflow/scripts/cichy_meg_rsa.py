"""Rule cichy_meg_rsa: model-MEG RSA per subject and layer, then peak latencies and cluster tests."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import read_decoding_rdms, write_table
from brainalign.cichy2016 import meg_group_stats, meg_rsa, read_model_rdms

sm = snakemake
with rule_log(sm):
    model = sm.wildcards.model
    rdms = read_model_rdms(sm.input.rdms)
    rsa = pd.concat([
        meg_rsa(rdms, read_decoding_rdms(path), model=model, subject=subject, where=path)
        for subject, path in zip(sm.params.subjects, sm.input.decoding, strict=True)
    ], ignore_index=True)
    st = sm.params.stats
    courses, peaks, order = meg_group_stats(
        rsa, n_permutations=st["n_permutations"], n_bootstrap=st["n_bootstrap"], ci=st["ci"],
        cluster_p=st["cluster_p"], cluster_forming_p=st["cluster_forming_p"],
        cluster_statistic=st["cluster_statistic"],
        peak_tmin=st["peak_tmin"], peak_tmax=st["peak_tmax"], seed=sm.params.seed,
    )
    write_table(rsa, sm.output.rsa)
    write_table(courses, sm.output.timecourses)
    write_table(peaks, sm.output.peaks)
    write_table(order, sm.output.layer_order)
    print(peaks.to_string())
    print(order.to_string())
