"""Arend 2018 pixels control: the grayscale pixels of the stimulus images as units."""

from _bootstrap import rule_log

with rule_log(snakemake):  # noqa: F821
    from brainalign.arend2018 import control_rows, load_inputs, match_pixels
    from brainalign.artifacts import write_table

    sm = snakemake  # noqa: F821
    p = sm.params
    data, images = load_inputs(sm.input.assembly, sm.input.stimulus_csv, sm.input.image_dir,
                               variation=p.variation, regions=p.regions)
    result = match_pixels(images, data.responses, top_k=p.top_k, holdout=True, holdout_seed=p.seed,
                          strata=data.object_name)
    out = control_rows("pixels", [result], data.region)
    write_table(out, sm.output.controls)
    print(out.to_string())
