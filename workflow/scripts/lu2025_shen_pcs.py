"""Rule lu2025_shen_pcs: a subject's training fMRI (visual cortex) -> PCA components."""

import numpy as np

from _bootstrap import rule_log
from brainalign.io.bdata import load_bdata_rois, pca_visual_cortex
from brainalign.utils import atomic_path

sm = snakemake
with rule_log(sm):
    p = sm.params
    train = load_bdata_rois(sm.input.train, (p.vc_roi,))
    vc = train["responses"][p.vc_roi]
    print(f"{sm.input.train}: {vc.shape[0]} stimuli x {vc.shape[1]} {p.vc_roi} voxels, "
          f"{int(train['n_repetitions'].mean())} trials each on average")
    pcs, _, pca = pca_visual_cortex(vc, None, n_components=p.n_components, seed=p.seed)
    scale = float(pcs[:, 0].std()) if p.unit_scale else 1.0
    pcs = pcs / scale
    print(f"{pcs.shape[1]} components, {pca.explained_variance_ratio_.sum():.3f} of the variance; "
          f"scale 1/{scale:.4g}")
    with atomic_path(sm.output.pcs) as tmp:
        np.savez(tmp, pcs=pcs.astype(np.float32), labels=train["stimulus_labels"],
                 stimulus_ids=train["stimulus_ids"], explained=pca.explained_variance_ratio_,
                 scale=scale)
