"""Rule cichy_stimulus_table: the Cichy image set as conditions 1..n (file-name order)."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import write_table

sm = snakemake
with rule_log(sm):
    images = list(sm.input.images)
    write_table(pd.DataFrame({"stimulus_id": range(1, len(images) + 1), "source": images}),
                sm.output.table)
    print(f"{len(images)} stimuli")
