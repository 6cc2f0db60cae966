# Figures of the Conwell 2024 analysis, with captions for `snakemake --report`.


rule plot_layer_profiles:
    input:
        layers=rules.aggregate_conwell.output.layers,
        selected=rules.aggregate_conwell.output.selected,
        ceilings=rules.aggregate_conwell.output.ceilings,
        truth=demo_truth(),
    output:
        png=report(
            results(PAPER, "figures", "layer_profiles_{model}.png"),
            caption="../report/layer_profiles.rst",
            category="Conwell 2024",
            subcategory="Layer profiles",
            labels={"model": "{model}"},
        ),
        pdf=results(PAPER, "figures", "layer_profiles_{model}.pdf"),
    log:
        log(PAPER, "plot_layer_profiles_{model}.log"),
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_layer_profiles.py"


rule plot_model_comparison:
    input:
        selected=rules.aggregate_conwell.output.selected,
        ceilings=rules.aggregate_conwell.output.ceilings,
    output:
        png=report(
            results(PAPER, "figures", "model_comparison.png"),
            caption="../report/model_comparison.rst",
            category="Conwell 2024",
            subcategory="Model comparison",
        ),
        pdf=results(PAPER, "figures", "model_comparison.pdf"),
    log:
        log(PAPER, "plot_model_comparison.log"),
    conda:
        "../../envs/plots.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/plot_model_comparison.py"
