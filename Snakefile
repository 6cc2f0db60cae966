# brainalign: compare deep networks with brains.
# Entry point: `snakemake --cores N` (demo config by default), `--profile profiles/slurm` on a cluster.
# Stages live in workflow/rules/*.smk; numerical code in workflow/brainalign (the library).

from snakemake.utils import min_version, validate

min_version("8.20")


report: "workflow/report/workflow.rst"


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/stimuli.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/brain.smk"
include: "workflow/rules/linking.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/survey.smk"
include: "workflow/rules/decoding.smk"
include: "workflow/rules/cichy2016.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/lu2025.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
