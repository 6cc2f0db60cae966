"""Rule cichy_fmri_roi: ROI RDMs (top localiser voxels, 1 - Spearman), ROI x layer RSA and statistics."""

import h5py
import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import write_table
from brainalign.cichy2016 import load_fmri, read_model_rdms, roi_layer_stats, roi_similarities
from brainalign.io.fmri import roi_rdm
from brainalign.utils import atomic_path

sm = snakemake
with rule_log(sm):
    opts, st = sm.params.fmri, sm.params.stats
    models = {m: read_model_rdms(p) for m, p in zip(sm.params.models, sm.input.rdms, strict=True)}
    n_cond = len(next(iter(models.values()))["stimulus_ids"])
    sims, roi_rdms = [], {}
    for subject, files in sm.params.files.items():
        volumes, masks, localizer, _ = load_fmri(files, n_cond, resample=opts["resample"])
        roi_rdms[subject] = {roi: roi_rdm(volumes, mask, localizer, opts["n_voxels"], metric="spearman")
                             for roi, mask in masks.items()}
        for model, rdms in models.items():
            sims.append(roi_similarities(roi_rdms[subject], rdms, model=model, subject=subject))
        print(f"sub-{subject}: ROIs {list(masks)}")
    sim = pd.concat(sims, ignore_index=True)
    bars, order = roi_layer_stats(sim, n_permutations=st["n_permutations"], fdr_alpha=st["fdr_alpha"],
                                  seed=sm.params.seed)
    with atomic_path(sm.output.roi_rdms) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["metric"] = "spearman"
        f.attrs["n_voxels"] = opts["n_voxels"]
        for subject, per_roi in roi_rdms.items():
            for roi, rdm in per_roi.items():
                f.create_dataset(f"sub-{subject}/{roi}", data=rdm)
    write_table(sim, sm.output.similarity)
    write_table(bars, sm.output.layers)
    write_table(order, sm.output.layer_order)
    print(order.to_string())
