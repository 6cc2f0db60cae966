"""Arend 2018 matched-population decoding (i)-(iii) with the random-unit baseline, one model."""

import numpy as np

from _bootstrap import rule_log

with rule_log(snakemake):  # noqa: F821
    from brainalign.arend2018 import decode_model
    from brainalign.artifacts import write_table
    from brainalign.io.majajhong2015 import load_majajhong2015

    sm = snakemake  # noqa: F821
    p = sm.params
    data = load_majajhong2015(sm.input.assembly, variation=p.variation)
    keep = np.isin(data.region, list(p.regions))
    with np.load(sm.input.units) as z:
        matched, baseline = z["matched"], z["baseline"]
    dec = p.decoding
    out = decode_model(matched, baseline, data.responses[:, keep], data.category_name, data.region[keep],
                       n_runs_within=dec["n_runs_within"], n_runs_across=dec["n_runs_across"],
                       C_grid=dec["c_grid"], n_cv_splits=dec["n_cv_splits"], classifier=dec["classifier"],
                       seed=p.seed)
    out.insert(0, "model", p.model)
    write_table(out, sm.output.decoding)
    print(out.to_string())
