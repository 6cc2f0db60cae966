"""Arend 2018: best-matching unit per site for one model (streamed), and the matched and
random-baseline units' activations for decoding (a second pass)."""

import numpy as np
import torch

from _bootstrap import rule_log

with rule_log(snakemake):  # noqa: F821
    from brainalign.arend2018 import gather_units, load_inputs, match_model
    from brainalign.models.registry import load_model
    from brainalign.unit_matching import sample_unmatched_units, save_match_result
    from brainalign.utils import atomic_path

    sm = snakemake  # noqa: F821
    p = sm.params
    torch.set_num_threads(sm.threads)
    data, images = load_inputs(sm.input.assembly, sm.input.stimulus_csv, sm.input.image_dir,
                               variation=p.variation, regions=p.regions)
    model, transform = load_model(p.model, p.table, seed=p.seed, checkpoint_dir=p.checkpoint_dir,
                                  device=p.device)
    common = dict(layers=p.layers, batch_size=p.batch_size, device=p.device, desc=p.model)
    result = match_model(model, transform, images, data.responses,
                         memory_budget_bytes=int(p.memory_budget_gb * 2**30), top_k=p.top_k,
                         holdout=True, holdout_seed=p.seed, strata=data.object_name, **common)
    save_match_result(sm.output.match, result)
    print("score", result.score(data.region), "held-out", result.heldout_score(data.region))
    matched = (np.asarray(result.layers)[result.best_layer], result.best_unit)
    baseline = sample_unmatched_units(result, seed=p.seed)
    units = gather_units(model, transform, images, {"matched": matched, "baseline": baseline}, **common)
    with atomic_path(sm.output.units) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, matched=units["matched"], baseline=units["baseline"],
                 baseline_layers=np.asarray(baseline[0], dtype=str), baseline_units=baseline[1])
