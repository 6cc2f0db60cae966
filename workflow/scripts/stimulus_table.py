"""Rule stimulus_table: the ordered NSD shared-image ids (ascending 73k ids) as a tsv."""

import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import write_table
from brainalign.io.nsd import nsd_root_from_design, shared_image_ids

with rule_log(snakemake):
    ids = shared_image_ids(nsd_root_from_design(snakemake.input.design))
    write_table(pd.DataFrame({"stimulus_id": ids, "source": "nsd"}), snakemake.output.table)
    print(f"{len(ids)} stimuli")
