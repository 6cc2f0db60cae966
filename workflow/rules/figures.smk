# Figures of the Conwell 2024 analysis, with captions for `snakemake --report`.


def conwell_outputs():
    outs = [
        results(PAPER, "tables", "selected_layers.csv"),
        results(PAPER, "figures", "model_comparison.png"),
    ]
    outs += [results(PAPER, "figures", f"layer_profiles_{m}.png") for m in MODELS]
    if cfg("survey", "enabled"):
        outs += [
            results(PAPER, "figures", f"survey_{name}.png")
            for name in ("architecture", "ranking", "model_similarity")
        ]
    return outs


PAPER_TARGETS["conwell2024"] = conwell_outputs


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
