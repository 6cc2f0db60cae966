# Brain responses: NSD betas -> per-subject ROI responses (+ noise ceilings).


rule nsd_brain:
    input:
        design=NSD_DESIGN,
    output:
        brain=brain_h5(),
    log:
        log("nsd_brain", "subj{subject}.log"),
    benchmark:
        bench("nsd_brain", "subj{subject}.tsv")
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        nsd=cfg("nsd"),
        split=cfg("conwell2024", "split"),
        seed=cfg("seed"),
    script:
        "../scripts/nsd_brain.py"
