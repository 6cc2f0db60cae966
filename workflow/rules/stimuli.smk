# The ordered stimulus list: the contract between brain and model arrays.


rule stimulus_table:
    input:
        design=NSD_DESIGN,
    output:
        table=results("stimuli", f"{STIMSET}.tsv"),
    log:
        log("stimulus_table.log"),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/stimulus_table.py"
