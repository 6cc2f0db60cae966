"""Rule demo_data: write the synthetic NSD-format demo dataset (brainalign.demo.write_demo)."""

from _bootstrap import rule_log
from brainalign.demo import write_demo
from brainalign.io.nsd import nsd_root_from_design

with rule_log(snakemake):
    demo = snakemake.params.demo
    truth = write_demo(
        nsd_root_from_design(snakemake.output.design),
        n_images=demo["n_images"],
        n_categories=demo["n_categories"],
        subjects=demo["subjects"],
        n_reps=demo["n_reps"],
        n_voxels=demo["n_voxels"],
        noise_sd=demo["noise_sd"],
        planted_layers=demo["planted_layers"],
        seed=snakemake.params.seed,
    )
    print(f"demo written: {len(truth['image_ids'])} images, subjects {truth['subjects']}, "
          f"planted {truth['planted_layers']}")
