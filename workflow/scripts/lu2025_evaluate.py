"""Rule lu2025_evaluate: RSA of CORnet, Control and ReAlnet with Shen (within subject), Horikawa
(across subjects) and THINGS-EEG2 (time-resolved), improvement ratios, THINGS dimensions."""

import numpy as np
import pandas as pd

from _bootstrap import rule_log
from brainalign.artifacts import read_decoding_rdms, write_table
from brainalign.io.bdata import load_bdata_rois
from brainalign.lu2025 import (
    brain_rdms,
    improvement_table,
    input_paths,
    load_things_dimensions,
    parse_model_name,
    read_layer_rdms,
    rsa_rows,
)
from brainalign.rdm import compute_rdm
from brainalign.realnet import dimension_partial_spearman, time_resolved_rsa
from brainalign.utils import InputError


def roi_name(key):
    return key.removeprefix("ROI_").replace("hV4", "V4")


sm = snakemake
with rule_log(sm):
    lu = sm.params.lu
    paths = input_paths(lu)
    models = {m: read_layer_rdms(f) for m, f in zip(sm.params.models, sm.input.rdms, strict=True)}
    info = {m: parse_model_name(m) for m in models}
    rows = []

    # Shen test set, within subject: all test sets together, ROIs 1 - Pearson
    rois = lu["shen"]["rois"]
    for sub, files in paths["shen_test"].items():
        resp, labels = {r: [] for r in rois}, []
        for path in files.values():
            d = load_bdata_rois(path, rois)
            labels += list(d["stimulus_labels"])
            for r in rois:
                resp[r].append(d["responses"][r])
        order = models["cornet"][1]["shen"]
        pos = {lab: i for i, lab in enumerate(labels)}
        if set(order) - set(pos):
            raise InputError(f"{list(files.values())}: the Shen test stimuli differ from subject 1's.")
        idx = np.array([pos[lab] for lab in order])
        for r in rois:
            brain = compute_rdm(np.concatenate(resp[r], axis=0)[idx], "pearson")
            for m, (rdms, _) in models.items():
                if info[m]["model_subject"] not in ("", sub):
                    continue  # within subject: a ReAlnet only meets its own subject's test data
                for row in rsa_rows(rdms["shen"], brain):
                    rows.append({"dataset": "shen", "brain_subject": sub, "roi": roi_name(r),
                                 "net": m, **info[m], **row})
        print(f"Shen sub-{sub}: {len(order)} test images, ROIs {rois}")

    # Horikawa test set, across subjects
    hk = lu["horikawa"]
    for sub, path in paths["horikawa"].items():
        brain = brain_rdms(path, hk["rois"], data_type=hk["data_type"], order=models["cornet"][1]["horikawa"])
        for r, rdm in brain.items():
            for m, (rdms, _) in models.items():
                for row in rsa_rows(rdms["horikawa"], rdm):
                    rows.append({"dataset": "horikawa", "brain_subject": sub, "roi": roi_name(r),
                                 "net": m, **info[m], **row})
        print(f"Horikawa subject {sub}: ROIs {hk['rois']}")
    scores = pd.DataFrame(rows)
    write_table(scores, sm.output.scores)

    # THINGS-EEG2: Spearman of each layer RDM with the decoding RDM at each time point
    eeg_rows = []
    for sub, path in zip(sm.params.eeg_subjects, sm.input.eeg, strict=True):
        dec = read_decoding_rdms(path)
        order = models["cornet"][1]["things_eeg2"]
        if list(dec["conditions"]) != list(order):
            raise InputError(f"{path}: decoding conditions differ from the THINGS-EEG2 test images.")
        for m, (rdms, _) in models.items():
            per_layer = {a: time_resolved_rsa(rdm, dec["accuracy"]) for a, rdm in rdms["things_eeg2"].items()}
            per_layer["max"] = np.nanmax(np.stack(list(per_layer.values())), axis=0)
            for layer, curve in per_layer.items():
                for t, v in zip(dec["times"], curve, strict=True):
                    eeg_rows.append({"dataset": "things_eeg2", "brain_subject": sub, "net": m, **info[m],
                                     "layer": layer, "time": float(t), "score": float(v)})
        print(f"THINGS-EEG2 sub-{sub}: {len(order)} images, {len(dec['times'])} time points")
    eeg = pd.DataFrame(eeg_rows, columns=["dataset", "brain_subject", "net", "model", "model_subject",
                                          "beta", "layer", "time", "score"])
    write_table(eeg, sm.output.eeg)

    # improvement ratios: best layer per ROI (fMRI), mean over the window (EEG)
    best = scores[scores["layer"] == "max"]
    parts = [improvement_table(best, ["dataset", "roi"])] if len(best) else []
    if len(eeg):
        e = eeg[eeg["layer"] == "max"].assign(roi="time-mean")
        parts.append(improvement_table(e, ["dataset", "roi"]))
    write_table(pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(), sm.output.improvement)

    # THINGS dimensions: partial Spearman of the IT RDM with each dimension's RDM
    dim_rows = []
    if sm.input.dims:
        concepts = models["cornet"][1]["things_eeg2"]
        values = load_things_dimensions(sm.input.dims[0], sm.input.dims[1], concepts)
        base = None
        for m, (rdms, _) in models.items():
            rho, explained = dimension_partial_spearman(rdms["things_eeg2"]["IT"], values)
            if m == "cornet":
                base = explained
            for k, (r, e) in enumerate(zip(rho, explained, strict=True)):
                dim_rows.append({"net": m, **info[m], "dimension": k + 1, "partial_rho": r, "explained": e})
        dims = pd.DataFrame(dim_rows)
        dims["diff_vs_cornet"] = dims["explained"] - np.tile(base, len(models))
    else:
        dims = pd.DataFrame(columns=["net", "model", "model_subject", "beta", "dimension", "partial_rho",
                                     "explained", "diff_vs_cornet"])
    write_table(dims, sm.output.dimensions)

    # training losses of every model
    losses = []
    for path in sm.input.losses:
        name = path.split("/")[-1].removesuffix("_losses.tsv")
        losses.append(pd.read_csv(path, sep="\t").assign(net=name, **parse_model_name(name)))
    write_table(pd.concat(losses, ignore_index=True), sm.output.losses)
    summary = best.groupby(["dataset", "model"])["score"].mean()
    print("mean best-layer RSA:\n" + summary.to_string())
