# Streamed feature extraction: every layer projected batch by batch (sparse random projection).


rule extract_features:
    input:
        stimuli=results("stimuli", "{stimset}.tsv"),
        extra=stimset_inputs,
        models=cfg("models", "table"),
        checkpoint=workflow_checkpoint,
    output:
        features=features_h5(),
    log:
        log("extract_features", "{stimset}", "{model}.log"),
    benchmark:
        bench("extract_features", "{stimset}", "{model}.tsv")
    conda:
        "../../envs/torch.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=extraction_resources(),
    params:
        extraction=cfg("extraction"),
        checkpoint_dir=cfg("models", "checkpoint_dir"),
        seed=cfg("seed"),
    script:
        "../scripts/extract_features.py"
