# brainalign: compare deep networks with brains.
# Entry point: `snakemake --cores N` (demo config by default), `--profile profiles/slurm` on a cluster.
# Shared stages and one file per paper live in workflow/rules/*.smk; numerical code in workflow/brainalign (the library).

from snakemake.utils import min_version, validate

min_version("8.20")


report: "workflow/report/workflow.rst"


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
# shared stages, which any paper asks for through register_paper (common.smk)
include: "workflow/rules/features.smk"
include: "workflow/rules/decoding_helpers.smk"
include: "workflow/rules/decoding.smk"
# per paper: <paper>_helpers.smk (path helpers, start-up checks, register_paper) and
# <paper>.smk (its rules, guarded on <paper>.enabled); see docs/adding-a-paper.md
include: "workflow/rules/conwell2024_helpers.smk"
include: "workflow/rules/conwell2024.smk"
include: "workflow/rules/cichy2016_helpers.smk"
include: "workflow/rules/cichy2016.smk"
include: "workflow/rules/lu2025_helpers.smk"
include: "workflow/rules/lu2025.smk"
include: "workflow/rules/arend2018_helpers.smk"
include: "workflow/rules/arend2018.smk"
include: "workflow/rules/kuzovkin2018_helpers.smk"
include: "workflow/rules/kuzovkin2018.smk"


rule all:
    default_target: True
    input:
        all_outputs(),
