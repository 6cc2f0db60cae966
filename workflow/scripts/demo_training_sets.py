"""Rule demo_training_sets: the demo's procedural object and scene training folders (PNG)."""

from _bootstrap import rule_log
from brainalign.training import write_demo_training_sets

sm = snakemake
with rule_log(sm):
    counts = write_demo_training_sets(
        sm.output.object, sm.output.scene, images_per_class=sm.params.images_per_class,
        size=sm.params.size, seed=sm.params.seed,
    )
    for name, classes in counts.items():
        print(f"{name}: {len(classes)} classes x {sm.params.images_per_class} images")
