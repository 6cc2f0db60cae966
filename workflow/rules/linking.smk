# cRSA / veRSA / voxel-wise encoding (Conwell et al. 2024) and the tidy score tables.


rule score_conwell:
    input:
        features=features_h5(STIMSET),
        brain=expand(brain_h5(), subject=SUBJECTS),
    output:
        scores=scores_parquet(),
        voxel_r=results(PAPER, "scores", "{model}_voxel_r.h5"),
        selected_rdms=results(PAPER, "scores", "{model}_selected_rdms.h5"),
    log:
        log(PAPER, "score", "{model}.log"),
    benchmark:
        bench(PAPER, "score", "{model}.tsv")
    conda:
        "../../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        linking=cfg("conwell2024"),
    script:
        "../scripts/score_conwell.py"


rule aggregate_conwell:
    input:
        scores=expand(scores_parquet(), model=MODELS),
        brain=expand(brain_h5(), subject=SUBJECTS),
        models=cfg("models", "table"),
    output:
        layers=results(PAPER, "tables", "layer_scores.csv"),
        selected=results(PAPER, "tables", "selected_layers.csv"),
        ceilings=results(PAPER, "tables", "noise_ceilings.csv"),
    log:
        log(PAPER, "aggregate.log"),
    conda:
        "../../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/aggregate_conwell.py"
