"""Rule survey_conwell: survey statistics across models (brainalign.survey.survey_tables)."""

import json

import h5py

from _bootstrap import rule_log
from brainalign.artifacts import read_selected_rdms, read_table, write_table
from brainalign.models.registry import read_model_table
from brainalign.survey import survey_tables
from brainalign.utils import atomic_path

sm = snakemake
with rule_log(sm):
    opts = sm.params.survey
    selected_rdms = dict(read_selected_rdms(path) for path in sm.input.rdms)
    tables = survey_tables(read_table(sm.input.selected), read_table(sm.input.layers),
                           read_model_table(sm.input.models), selected_rdms, roi=opts["roi"],
                           n_breaks=opts["n_breaks"], seed=sm.params.seed)
    for key in ("models", "per_subject", "comparisons", "breakpoints", "correlations"):
        write_table(tables[key], sm.output[key])
    with atomic_path(sm.output.similarity) as tmp, h5py.File(tmp, "w") as f:
        for key, df in tables.items():
            if key.startswith(("similarity_", "mds_")):
                g = f.create_group(key)
                g.create_dataset("values", data=df.to_numpy())
                g.attrs["index"] = [str(i) for i in df.index]
                g.attrs["columns"] = [str(c) for c in df.columns]
        f.attrs["breaks"] = json.dumps(
            None if tables["_breaks"] is None
            else {k: [float(v) for v in tables["_breaks"][k]] for k in ("breakpoints", "x", "fitted")}
        )
    print(tables["models"].to_string())
    print(tables["comparisons"].to_string())
