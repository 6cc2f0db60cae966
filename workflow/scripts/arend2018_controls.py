"""Arend 2018 controls for one model: Haar channel rotations of every conv layer (n runs) and
N(0, 1) activations with the model's layer sizes."""

import pandas as pd
import torch

from _bootstrap import rule_log

with rule_log(snakemake):  # noqa: F821
    from brainalign.arend2018 import control_rows, load_inputs, match_random_activations, match_rotated
    from brainalign.artifacts import write_table
    from brainalign.models.registry import load_model
    from brainalign.unit_matching import load_match_result

    sm = snakemake  # noqa: F821
    p = sm.params
    torch.set_num_threads(sm.threads)
    data, images = load_inputs(sm.input.assembly, sm.input.stimulus_csv, sm.input.image_dir,
                               variation=p.variation, regions=p.regions)
    kw = dict(top_k=p.top_k, holdout=True, holdout_seed=p.seed, strata=data.object_name)
    match = load_match_result(sm.input.match)
    shapes = dict(zip(match.layers, match.layer_shapes, strict=True))
    random = match_random_activations(data.responses, shapes, seed=p.seed, **kw)
    tables = [control_rows("random", [random], data.region)]
    if p.rotation_runs > 0:
        model, transform = load_model(p.model, p.table, seed=p.seed, checkpoint_dir=p.checkpoint_dir,
                                      device=p.device)
        rotated = match_rotated(model, transform, images, data.responses, n_runs=p.rotation_runs, seed=p.seed,
                                layers=p.layers, batch_size=p.batch_size, device=p.device, desc=p.model,
                                memory_budget_bytes=int(p.memory_budget_gb * 2**30), **kw)
        tables.append(control_rows("rotation", rotated, data.region))
    out = pd.concat(tables, ignore_index=True)
    out.insert(0, "model", p.model)
    write_table(out, sm.output.controls)
    print(out.to_string())
