"""Rule lu2025_layer_rdms: V1/V2/V4/IT RDMs (1 - Pearson) of one model on every test set.

Model "cornet" is the pretrained CORnet-S (the teacher); "sub-XX_beta-B" a trained one.
Stimulus sets: shen (all Shen test sets, in config order), horikawa (GOD test images),
things_eeg2 (THINGS-EEG2 test images, in metadata order = the decoding conditions).
"""

from pathlib import Path

import numpy as np
import torch

from _bootstrap import rule_log
from brainalign.lu2025 import (
    build_cornet,
    find_images,
    load_backbone,
    load_images,
    resolve_device,
    shen_test_stimuli,
    stimulus_list,
    things_test_images,
    write_layer_rdms,
)
from brainalign.realnet import layer_rdms

sm = snakemake
with rule_log(sm):
    lu = sm.params.lu
    torch.set_num_threads(sm.threads)
    size = lu["model"]["image_size"]
    image_dir = lu["shen"]["image_dir"]
    if sm.wildcards.net == "cornet":
        ckpt = lu["model"]["checkpoint"]
        calib = None
        if not ckpt:  # the same calibrated untrained network the training rules start from
            calib = load_images(find_images(image_dir, np.load(sm.input.calibration)["labels"]), size)
        net = build_cornet(ckpt, width=lu["model"]["width"], seed=sm.params.seed, calibration_images=calib)
    else:
        net = load_backbone(sm.input.model, width=lu["model"]["width"])
    stimsets = {}
    labels, _ = shen_test_stimuli(dict(zip(lu["shen"]["test_files"], sm.input.shen, strict=True)))
    stimsets["shen"] = (labels, find_images(image_dir, labels, what="lu2025.shen.image_dir"))
    if lu["horikawa"]["enabled"]:
        _, labels = stimulus_list(sm.input.horikawa[0], data_type=lu["horikawa"]["data_type"])
        stimsets["horikawa"] = (labels, find_images(image_dir, labels, what="lu2025.shen.image_dir"))
    if lu["things_eeg2"]["enabled"]:
        concepts, paths, _ = things_test_images(Path(sm.input.eeg_metadata).parent)
        stimsets["things_eeg2"] = (concepts, paths)
    device = resolve_device(lu["evaluation"]["device"])
    rdms = {}
    for name, (labels, paths) in stimsets.items():
        x = load_images(paths, size)
        rdms[name] = layer_rdms(net, x, batch_size=lu["evaluation"]["batch_size"], device=device)
        print(f"{sm.wildcards.net} {name}: {len(labels)} images, layers {list(rdms[name])}")
    write_layer_rdms(sm.output.rdms, rdms, {k: v[0] for k, v in stimsets.items()}, model=sm.wildcards.net)
