"""Arend 2018 tables: scores with controls, per-layer best r, best units, decoding."""

import numpy as np
import pandas as pd

from _bootstrap import rule_log

with rule_log(snakemake):  # noqa: F821
    from brainalign.arend2018 import layer_table, scores_table, units_table
    from brainalign.artifacts import write_table
    from brainalign.io.majajhong2015 import load_majajhong2015
    from brainalign.unit_matching import load_match_result

    sm = snakemake  # noqa: F821
    p = sm.params
    data = load_majajhong2015(sm.input.assembly, variation=p.variation)
    keep = np.isin(data.region, list(p.regions))
    regions, ids = data.region[keep], data.neuroid_id[keep]
    pixels = pd.read_csv(sm.input.pixels)
    scores, layers, units = [], [], []
    for model, match_path, controls_path in zip(p.models, sm.input.match, sm.input.controls, strict=True):
        result = load_match_result(match_path)
        controls = pd.concat([pd.read_csv(controls_path).drop(columns="model"), pixels], ignore_index=True)
        scores.append(scores_table(model, result, regions, controls))
        layers.append(layer_table(model, result, regions))
        units.append(units_table(model, result, regions, ids))
    decoding = pd.concat([pd.read_csv(f) for f in sm.input.decoding], ignore_index=True)
    write_table(pd.concat(scores, ignore_index=True), sm.output.scores)
    write_table(pd.concat(layers, ignore_index=True), sm.output.layers)
    write_table(pd.concat(units, ignore_index=True), sm.output.units)
    write_table(decoding, sm.output.decoding)
