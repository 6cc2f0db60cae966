"""Rule kuzovkin_demo_data: synthetic intracranial subjects (.mat, v5 and v7.3) with a planted answer."""

from pathlib import Path

from _bootstrap import rule_log
from brainalign.kuzovkin2018 import write_demo

sm = snakemake
with rule_log(sm):
    d = sm.params.demo
    truth = write_demo(
        Path(sm.output.truth).parent, n_subjects=d["n_subjects"], n_images=d["n_images"],
        n_categories=d["n_categories"], probes_per_area=d["probes_per_area"],
        n_other_probes=d["n_other_probes"], noise_sd=d["noise_sd"], residual_pcs=d["residual_pcs"],
        reject_fraction=d["reject_fraction"], bands=sm.params.bands, windows=sm.params.windows,
        template=sm.params.template, seed=sm.params.seed,
    )
    print(f"Kuzovkin 2018 demo: subjects {truth['mat_versions']}, {len(truth['images'])} images, "
          f"planted band {truth['planted_band']}, areas {truth['area_stages']}")
