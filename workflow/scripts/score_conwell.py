"""Rule score_conwell: cRSA, veRSA and encoding r of every layer of one model, all subjects."""

import h5py
from tqdm import tqdm

from _bootstrap import rule_log
from brainalign.artifacts import read_brain, write_selected_rdms, write_table
from brainalign.linking import BrainTarget, LayerFeatures, alpha_grid, score_layers
from brainalign.models.extraction import feature_layers, read_feature_ids, read_layer
from brainalign.utils import atomic_path, check_ids_match

sm = snakemake
with rule_log(sm):
    opts = sm.params.linking
    feature_ids = read_feature_ids(sm.input.features)
    targets = []
    for path in sm.input.brain:
        brain = read_brain(path)
        check_ids_match(brain["stimulus_ids"], feature_ids, path, sm.input.features)
        for roi, d in brain["rois"].items():
            targets.append(BrainTarget(subject=brain["subject"], roi=roi,
                                       responses=d["responses"], ceiling=d.get("ceiling")))
    layer_info = feature_layers(sm.input.features)

    def layers():
        for index, (name, depth, n_units) in enumerate(layer_info):
            d = read_layer(sm.input.features, name)
            yield LayerFeatures(name=name, depth=depth, index=index, n_units=n_units,
                                srp=d["srp"], row_mean=d["row_mean"], ones_proj=d["ones_proj"],
                                raw=d["raw"])

    with tqdm(total=len(layer_info), desc=f"{sm.wildcards.model}: layers") as bar:
        scores, voxel_r, selected_rdms = score_layers(
            sm.wildcards.model, layers(), targets, split=opts["split"],
            alphas=alpha_grid(opts["alphas"]), scoring=opts["scoring"], compare=opts["compare"],
            standardize=opts["standardize_features"], n_targets_batch=opts["n_targets_batch"],
            metrics=tuple(opts["metrics"]), train_predictions=opts["train_predictions"],
            n_folds=opts["n_folds"], progress=bar,
        )
    write_table(scores, sm.output.scores)
    with atomic_path(sm.output.voxel_r) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["model"] = sm.wildcards.model
        f.attrs["layer_order"] = [name for name, _, _ in layer_info]
        for (subject, roi), per_layer in voxel_r.items():
            for layer, r in per_layer.items():
                f.create_dataset(f"subj{subject}/{roi}/{layer}", data=r)
    write_selected_rdms(sm.output.selected_rdms, sm.wildcards.model, selected_rdms)
