# Conwell 2024 survey analyses across models (enabled by survey.enabled).


if cfg("survey", "enabled"):

    rule survey_conwell:
        input:
            selected=rules.aggregate_conwell.output.selected,
            layers=rules.aggregate_conwell.output.layers,
            models=cfg("models", "table"),
            rdms=expand(
                results(PAPER, "scores", "{model}_selected_rdms.h5"), model=MODELS
            ),
        output:
            models=results(PAPER, "tables", "survey_models.csv"),
            per_subject=results(PAPER, "tables", "survey_per_subject.csv"),
            comparisons=results(PAPER, "tables", "survey_comparisons.csv"),
            breakpoints=results(PAPER, "tables", "survey_breakpoints.csv"),
            correlations=results(PAPER, "tables", "survey_correlations.csv"),
            similarity=results(PAPER, "tables", "survey_model_similarity.h5"),
        log:
            log(PAPER, "survey.log"),
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
                results(PAPER, "figures", "survey_architecture.png"),
                caption="../report/survey_architecture.rst",
                category="Conwell 2024",
                subcategory="Survey",
            ),
            task=report(
                results(PAPER, "figures", "survey_task.png"),
                caption="../report/survey_task.rst",
                category="Conwell 2024",
                subcategory="Survey",
            ),
            diet=report(
                results(PAPER, "figures", "survey_diet.png"),
                caption="../report/survey_diet.rst",
                category="Conwell 2024",
                subcategory="Survey",
            ),
            ranking=report(
                results(PAPER, "figures", "survey_ranking.png"),
                caption="../report/survey_ranking.rst",
                category="Conwell 2024",
                subcategory="Survey",
            ),
            similarity=report(
                results(PAPER, "figures", "survey_model_similarity.png"),
                caption="../report/survey_model_similarity.rst",
                category="Conwell 2024",
                subcategory="Survey",
            ),
        log:
            log(PAPER, "plot_survey.log"),
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
