"""Rule train_cichy_variant: train one Cichy 2016 DNN variant (AlexNet8); resumes after a kill."""

import torch

from _bootstrap import rule_log
from brainalign.training import train_cichy_variant

sm = snakemake
with rule_log(sm):
    torch.set_num_threads(sm.threads)
    opts = sm.params.training
    history = train_cichy_variant(
        sm.wildcards.variant,
        model_path=sm.output.model, checkpoint_path=sm.params.checkpoint, log_path=sm.output.loss,
        object_dir=opts["object_dir"], scene_dir=opts["scene_dir"], noise=opts["noise"],
        iterations=opts["iterations"], lr=opts["lr"], lr_steps=opts["lr_steps"],
        batch_size=opts["batch_size"], image_size=opts["image_size"], width=opts["width"],
        checkpoint_every=opts["checkpoint_every"], log_every=opts["log_every"],
        device=opts["device"], num_workers=opts["num_workers"], seed=sm.params.seed,
    )
    last = history[-1]
    print(f"{sm.wildcards.variant}: iteration {last['iteration']}, loss {last['loss']:.4f}, "
          f"batch accuracy {last['accuracy']:.3f}")
