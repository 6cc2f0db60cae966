"""Demo data for Arend 2018: synthetic MajajHong2015 assembly + stimulus set + truth.json."""

from pathlib import Path

from _bootstrap import rule_log

with rule_log(snakemake):  # noqa: F821
    from brainalign.arend2018 import write_demo

    sm = snakemake  # noqa: F821
    demo = sm.params.demo
    truth = write_demo(
        Path(sm.output.assembly).parent,
        n_v4=demo["n_v4"], n_it=demo["n_it"], noise_sd=demo["noise_sd"],
        v4_layer=demo["v4_layer"], it_layer=demo["it_layer"],
        objects_per_category=demo["objects_per_category"], images_per_object=demo["images_per_object"],
        image_size=demo["image_size"], seed=sm.params.seed,
    )
    print(f"planted layers {truth['planted_layers']}, {truth['n_stimuli']} stimuli")
