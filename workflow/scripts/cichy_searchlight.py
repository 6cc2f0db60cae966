"""Rule cichy_searchlight: volumetric searchlight RSA of one subject, one NIfTI map per layer and model."""

import json

import numpy as np

from _bootstrap import rule_log
from brainalign.cichy2016 import SUMMARY, load_fmri, read_model_rdms
from brainalign.searchlight import save_map, searchlight_rsa

sm = snakemake
with rule_log(sm):
    opts = sm.params.fmri
    all_rdms = [read_model_rdms(p) for p in sm.input.rdms]
    volumes, _, _, mask = load_fmri(sm.params.files, len(all_rdms[0]["stimulus_ids"]),
                                    resample=opts["resample"])
    for model, rdms, out in zip(sm.params.models, all_rdms, sm.output.maps, strict=True):
        names, models = list(rdms["layers"]), rdms["rdms"]
        if rdms["summary"] is not None:
            names.append(SUMMARY)
            models = np.vstack([models, rdms["summary"][None]])
        maps = searchlight_rsa(volumes, mask, models, radius_mm=opts["searchlight_radius_mm"],
                               affine=volumes.affine, metric="spearman", compare="spearman")
        save_map(maps, volumes.affine, out)
        print(f"sub-{sm.wildcards.subject} {model}: {int(mask.sum())} centres, maps {json.dumps(names)}")
