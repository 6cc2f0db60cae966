"""Rule plot_cichy_surface: group searchlight maps on nilearn's local fsaverage5, one png per layer."""

from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np

from _bootstrap import rule_log
from brainalign.cichy2016 import SUMMARY, read_model_rdms
from brainalign.searchlight import plot_surface_map

sm = snakemake
with rule_log(sm):
    rdms = read_model_rdms(sm.input.rdms)
    layers = list(rdms["layers"]) + ([SUMMARY] if rdms["summary"] is not None else [])
    img = nib.load(sm.input.mean)
    maps = np.moveaxis(np.asarray(img.get_fdata()), -1, 0)
    out = Path(sm.output.figures)
    out.mkdir(parents=True, exist_ok=True)
    for layer, m in zip(layers, maps, strict=True):
        for hemi in ("left", "right"):
            fig = plot_surface_map(m, img.affine, hemi=hemi, title=f"{sm.wildcards.model} {layer} ({hemi})",
                                   output_file=out / f"{layer.replace('/', '_')}_{hemi}.png")
            plt.close(fig)
