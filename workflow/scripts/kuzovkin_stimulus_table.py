"""Rule kuzovkin_stimulus_table: the Kuzovkin image set, ids = file stems (the names in s.stimseq)."""

from pathlib import Path

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import write_table

sm = snakemake
with rule_log(sm):
    images = sorted(str(p) for p in sm.input.images)
    ids = [Path(p).stem for p in images]
    if len(set(ids)) != len(ids):
        raise ValueError("stimulus images with the same name (stem): ids must be unique")
    write_table(pd.DataFrame({"stimulus_id": ids, "source": images}), sm.output.table)
    print(f"{len(images)} stimuli")
