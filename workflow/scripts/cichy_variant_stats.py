"""Rule cichy_variant_stats: whole-network RSA time courses of the DNN variants and their differences."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import read_table, write_table
from brainalign.cichy2016 import variant_differences

sm = snakemake
with rule_log(sm):
    rsa = pd.concat([read_table(p) for p in sm.input.rsa], ignore_index=True)
    rsa["subject"] = rsa["subject"].astype(str)
    models = list(sm.params.models)
    reference = "alexnet8_object" if "alexnet8_object" in models else models[0]
    st = sm.params.stats
    table = variant_differences(rsa, reference=reference, n_permutations=st["n_permutations"],
                                cluster_p=st["cluster_p"], cluster_forming_p=st["cluster_forming_p"],
                                cluster_statistic=st["cluster_statistic"],
                                seed=sm.params.seed)
    table["reference"] = reference
    write_table(table, sm.output.table)
