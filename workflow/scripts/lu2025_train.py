"""Rule lu2025_train: one ReAlnet-fMRI (beta > 0) or Control (beta = 0) per subject.

CORnet-S (the local checkpoint, or a seeded untrained one with BatchNorm statistics set on the
training images) is copied as the frozen teacher; brainalign.realnet.train_realnet checkpoints
every epoch (resumes after a kill) and logs the losses.
"""

import os

import numpy as np
import torch

from _bootstrap import rule_log
from brainalign.lu2025 import build_cornet, find_images, load_images, resolve_device, save_backbone
from brainalign.realnet import ReAlnet, make_teacher, train_realnet

sm = snakemake
with rule_log(sm):
    p = sm.params
    model_cfg, tr = p.model, p.training
    torch.set_num_threads(sm.threads)
    beta = int(sm.wildcards.beta)
    d = np.load(sm.input.pcs)
    pcs, labels = d["pcs"], d["labels"]
    images = load_images(find_images(p.image_dir, labels, what="lu2025.shen.image_dir"),
                         model_cfg["image_size"])
    device = resolve_device(tr["device"])
    print(f"sub-{sm.wildcards.subject} beta={beta}: {len(images)} images at {images.shape[-1]} px, "
          f"{pcs.shape[1]} fMRI components, device {device}")
    backbone = build_cornet(model_cfg["checkpoint"], width=model_cfg["width"], seed=p.seed,
                            calibration_images=None if model_cfg["checkpoint"] else images)
    teacher = make_teacher(backbone)
    net = ReAlnet(backbone, n_outputs=pcs.shape[1], hidden=model_cfg["hidden"],
                  input_size=model_cfg["image_size"], seed=p.seed + 1)
    history = train_realnet(
        net, teacher, images, pcs, beta=beta, epochs=tr["epochs"], batch_size=tr["batch_size"],
        lr=tr["lr"], contrastive=tr["contrastive"], tau=tr["tau"], seed=p.seed,
        checkpoint_path=p.resume, log_path=sm.output.losses, device=device, progress=True,
    )
    for row in history:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
    save_backbone(sm.output.model, net.backbone, width=model_cfg["width"], beta=beta,
                  subject=sm.wildcards.subject, image_size=model_cfg["image_size"])
    os.remove(p.resume)
