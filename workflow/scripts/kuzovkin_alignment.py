"""Rule kuzovkin_alignment: all probe-layer tests in one table; rho_align / tau with the split-half
noise band, the area x layer mapping matrices and the per-layer fractions of significant probes."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import write_table
from brainalign.kuzovkin2018 import alignment_table, layer_fraction_table, mapping_table

sm = snakemake
with rule_log(sm):
    table = pd.concat([pd.read_csv(p, dtype={"window": str, "subject": str}) for p in sm.input.tests],
                      ignore_index=True)
    write_table(table, sm.output.tests)
    a = sm.params.alignment
    align = alignment_table(table, n_splits=a["n_splits"], seed=sm.params.seed, min_points=a["min_points"])
    write_table(align, sm.output.alignment)
    write_table(mapping_table(table), sm.output.mapping)
    write_table(layer_fraction_table(table), sm.output.fractions)
    print(align[["band", "window", "model", "n_points", "rho_align", "tau", "split_half_sd"]].to_string())
