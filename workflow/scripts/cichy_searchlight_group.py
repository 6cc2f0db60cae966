"""Rule cichy_searchlight_group: mean searchlight maps, cluster-corrected significance, peak per layer."""

import nibabel as nib
import numpy as np

from _bootstrap import rule_log
from brainalign.artifacts import write_table
from brainalign.cichy2016 import SUMMARY, read_model_rdms, searchlight_group
from brainalign.searchlight import save_map

sm = snakemake
with rule_log(sm):
    rdms = read_model_rdms(sm.input.rdms)
    layers = list(rdms["layers"]) + ([SUMMARY] if rdms["summary"] is not None else [])
    imgs = [nib.load(p) for p in sm.input.maps]
    affine = imgs[0].affine
    maps = np.stack([np.moveaxis(np.asarray(img.get_fdata()), -1, 0) for img in imgs])
    st = sm.params.stats
    mean, significant, peaks = searchlight_group(
        maps, affine, layers, model=sm.wildcards.model, n_permutations=st["n_permutations"],
        cluster_p=st["cluster_p"], cluster_forming_p=st["cluster_forming_p"],
        cluster_statistic=st["cluster_statistic"], seed=sm.params.seed,
    )
    save_map(mean, affine, sm.output.mean)
    save_map(significant.astype(np.float32), affine, sm.output.significant)
    write_table(peaks, sm.output.peaks)
    print(peaks.to_string())
