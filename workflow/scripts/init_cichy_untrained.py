"""Rule init_cichy_untrained: the untrained Cichy 2016 variant, AlexNet8 at its seeded init."""

from _bootstrap import rule_log
from brainalign.training import ImageFolder, init_untrained_variant

sm = snakemake
with rule_log(sm):
    opts = sm.params.training
    # as many outputs as the object network, whose starting point this is
    n_classes = ImageFolder(sm.input.images, key="cichy2016.training.object_dir").n_classes
    init_untrained_variant(sm.output.model, n_classes=n_classes, width=opts["width"],
                           image_size=opts["image_size"], seed=sm.params.seed)
    print(f"untrained: AlexNet8 width {opts['width']}, {n_classes} classes, seed {sm.params.seed}")
