# Conwell et al. 2024: cRSA / veRSA / voxel-wise encoding on NSD, the survey statistics and
# figures. NSD inputs (or the embedded NSD-format demo), the shared-image stimulus set, brain
# responses per subject, scores per model, tables, figures; numerics in brainalign.linking,
# brainalign.survey and brainalign.io.nsd.


if cfg(CONWELL, "enabled"):

    if cfg("demo", "enabled"):

        rule demo_data:
            output:
                design=NSD_DESIGN,
                truth=str(NSD_ROOT / "truth.json"),
            log:
                log("demo_data.log"),
            conda:
                "../../envs/torch.yaml"
            threads: 1
            resources:
                mem_mb=2000,
                runtime=10,
            params:
                demo=cfg("demo"),
                seed=cfg("seed"),
            script:
                "../scripts/demo_data.py"

    rule stimulus_table:
        input:
            design=NSD_DESIGN,
        output:
            table=results("stimuli", f"{NSD_STIMSET}.tsv"),
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

    rule score_conwell:
        input:
            features=features_h5(NSD_STIMSET),
            brain=expand(brain_h5(), subject=NSD_SUBJECTS),
        output:
            scores=scores_parquet(),
            voxel_r=results(CONWELL, "scores", "{model}_voxel_r.h5"),
            selected_rdms=results(CONWELL, "scores", "{model}_selected_rdms.h5"),
        log:
            log(CONWELL, "score", "{model}.log"),
        benchmark:
            bench(CONWELL, "score", "{model}.tsv")
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
            brain=expand(brain_h5(), subject=NSD_SUBJECTS),
            models=cfg("models", "table"),
        output:
            layers=results(CONWELL, "tables", "layer_scores.csv"),
            selected=results(CONWELL, "tables", "selected_layers.csv"),
            ceilings=results(CONWELL, "tables", "noise_ceilings.csv"),
        log:
            log(CONWELL, "aggregate.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/aggregate_conwell.py"

    rule plot_layer_profiles:
        input:
            layers=rules.aggregate_conwell.output.layers,
            selected=rules.aggregate_conwell.output.selected,
            ceilings=rules.aggregate_conwell.output.ceilings,
            truth=demo_truth(),
        output:
            png=report(
                results(CONWELL, "figures", "layer_profiles_{model}.png"),
                caption="../report/layer_profiles.rst",
                category="Conwell 2024",
                subcategory="Layer profiles",
                labels={"model": "{model}"},
            ),
            pdf=results(CONWELL, "figures", "layer_profiles_{model}.pdf"),
        log:
            log(CONWELL, "plot_layer_profiles_{model}.log"),
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
                results(CONWELL, "figures", "model_comparison.png"),
                caption="../report/model_comparison.rst",
                category="Conwell 2024",
                subcategory="Model comparison",
            ),
            pdf=results(CONWELL, "figures", "model_comparison.pdf"),
        log:
            log(CONWELL, "plot_model_comparison.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/plot_model_comparison.py"

    if cfg("survey", "enabled"):

        rule survey_conwell:
            input:
                selected=rules.aggregate_conwell.output.selected,
                layers=rules.aggregate_conwell.output.layers,
                models=cfg("models", "table"),
                rdms=expand(
                    results(CONWELL, "scores", "{model}_selected_rdms.h5"),
                    model=MODELS,
                ),
            output:
                models=results(CONWELL, "tables", "survey_models.csv"),
                per_subject=results(CONWELL, "tables", "survey_per_subject.csv"),
                comparisons=results(CONWELL, "tables", "survey_comparisons.csv"),
                breakpoints=results(CONWELL, "tables", "survey_breakpoints.csv"),
                correlations=results(CONWELL, "tables", "survey_correlations.csv"),
                similarity=results(CONWELL, "tables", "survey_model_similarity.h5"),
            log:
                log(CONWELL, "survey.log"),
            conda:
                "../../envs/core.yaml"
            threads: 1
            resources:
                mem_mb=4000,
                runtime=30,
            params:
                survey=cfg("survey"),
                seed=cfg("seed"),
            script:
                "../scripts/survey_conwell.py"

        rule plot_survey:
            input:
                models=rules.survey_conwell.output.models,
                per_subject=rules.survey_conwell.output.per_subject,
                similarity=rules.survey_conwell.output.similarity,
                ceilings=rules.aggregate_conwell.output.ceilings,
            output:
                architecture=report(
                    results(CONWELL, "figures", "survey_architecture.png"),
                    caption="../report/survey_architecture.rst",
                    category="Conwell 2024",
                    subcategory="Survey",
                ),
                task=report(
                    results(CONWELL, "figures", "survey_task.png"),
                    caption="../report/survey_task.rst",
                    category="Conwell 2024",
                    subcategory="Survey",
                ),
                diet=report(
                    results(CONWELL, "figures", "survey_diet.png"),
                    caption="../report/survey_diet.rst",
                    category="Conwell 2024",
                    subcategory="Survey",
                ),
                ranking=report(
                    results(CONWELL, "figures", "survey_ranking.png"),
                    caption="../report/survey_ranking.rst",
                    category="Conwell 2024",
                    subcategory="Survey",
                ),
                similarity=report(
                    results(CONWELL, "figures", "survey_model_similarity.png"),
                    caption="../report/survey_model_similarity.rst",
                    category="Conwell 2024",
                    subcategory="Survey",
                ),
            log:
                log(CONWELL, "plot_survey.log"),
            conda:
                "../../envs/plots.yaml"
            threads: 1
            resources:
                mem_mb=2000,
                runtime=10,
            params:
                survey=cfg("survey"),
                seed=cfg("seed"),
            script:
                "../scripts/plot_survey.py"
