# Arend et al. 2018: single DNN units matched to macaque V4/IT sites (MajajHong2015), the
# pixels / random-activation / channel-rotation controls and matched-population decoding.
# Numerics: brainalign.unit_matching, brainalign.population_decoding, brainalign.arend2018.


if AREND_DEMO:

    rule arend2018_demo_data:
        output:
            assembly=AREND_PATHS["assembly"],
            stimulus_csv=AREND_PATHS["stimulus_csv"],
            image_dir=directory(AREND_PATHS["image_dir"]),
            truth=AREND_PATHS["truth"],
        log:
            log(AREND, "demo_data.log"),
        conda:
            "../../envs/arend2018.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            demo=cfg(AREND, "demo"),
            seed=cfg("seed"),
        script:
            "../scripts/arend2018_demo_data.py"


if cfg(AREND, "enabled"):

    rule arend2018_match:
        input:
            **arend_inputs(),
        output:
            match=arend_results("matching", "{model}.npz"),
            units=arend_results("matching", "{model}_units.npz"),
        log:
            log(AREND, "match_{model}.log"),
        benchmark:
            bench(AREND, "match_{model}.tsv")
        conda:
            "../../envs/arend2018.yaml"
        threads: 1
        resources:
            mem_mb=lambda wc: int(cfg(AREND, "memory_budget_gb") * 1024) + 4000,
            runtime=240,
            gpu=arend_gpus(),
        params:
            **arend_common_params(),
            model="{model}",
            table=cfg("models", "table"),
            checkpoint_dir=cfg("models", "checkpoint_dir"),
            device=cfg(AREND, "device"),
            layers=cfg(AREND, "layers"),
            batch_size=cfg(AREND, "batch_size"),
            memory_budget_gb=cfg(AREND, "memory_budget_gb"),
        script:
            "../scripts/arend2018_match.py"

    rule arend2018_controls:
        input:
            **arend_inputs(),
            match=rules.arend2018_match.output.match,
        output:
            controls=arend_results("controls", "{model}.csv"),
        log:
            log(AREND, "controls_{model}.log"),
        benchmark:
            bench(AREND, "controls_{model}.tsv")
        conda:
            "../../envs/arend2018.yaml"
        threads: 1
        resources:
            mem_mb=lambda wc: int(cfg(AREND, "memory_budget_gb") * 1024) + 4000,
            runtime=480,
            gpu=arend_gpus(),
        params:
            **arend_common_params(),
            model="{model}",
            table=cfg("models", "table"),
            checkpoint_dir=cfg("models", "checkpoint_dir"),
            device=cfg(AREND, "device"),
            layers=cfg(AREND, "layers"),
            batch_size=cfg(AREND, "batch_size"),
            memory_budget_gb=cfg(AREND, "memory_budget_gb"),
            rotation_runs=lambda wc: arend_rotation_runs(wc.model),
        script:
            "../scripts/arend2018_controls.py"

    rule arend2018_pixels:
        input:
            **arend_inputs(),
        output:
            controls=arend_results("controls", "pixels.csv"),
        log:
            log(AREND, "pixels.log"),
        conda:
            "../../envs/arend2018.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            **arend_common_params(),
        script:
            "../scripts/arend2018_pixels.py"

    rule arend2018_decoding:
        input:
            assembly=AREND_PATHS["assembly"],
            units=rules.arend2018_match.output.units,
        output:
            decoding=arend_results("decoding", "{model}.csv"),
        log:
            log(AREND, "decoding_{model}.log"),
        benchmark:
            bench(AREND, "decoding_{model}.tsv")
        conda:
            "../../envs/arend2018.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=120,
        params:
            **arend_common_params(),
            model="{model}",
            decoding=cfg(AREND, "decoding"),
        script:
            "../scripts/arend2018_decoding.py"

    rule arend2018_tables:
        input:
            assembly=AREND_PATHS["assembly"],
            match=expand(rules.arend2018_match.output.match, model=AREND_MODELS),
            controls=expand(
                rules.arend2018_controls.output.controls, model=AREND_MODELS
            ),
            pixels=rules.arend2018_pixels.output.controls,
            decoding=expand(
                rules.arend2018_decoding.output.decoding, model=AREND_MODELS
            ),
        output:
            scores=arend_results("tables", "scores.csv"),
            layers=arend_results("tables", "layer_scores.csv"),
            units=arend_results("tables", "best_units.csv"),
            decoding=arend_results("tables", "decoding.csv"),
        log:
            log(AREND, "tables.log"),
        conda:
            "../../envs/arend2018.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            **arend_common_params(),
            models=AREND_MODELS,
        script:
            "../scripts/arend2018_tables.py"

    rule arend2018_figures:
        input:
            scores=rules.arend2018_tables.output.scores,
            layers=rules.arend2018_tables.output.layers,
            units=rules.arend2018_tables.output.units,
            decoding=rules.arend2018_tables.output.decoding,
        output:
            correlation=report(
                arend_results("figures", "correlation.png"),
                caption="../report/arend2018_correlation.rst",
                category="Arend 2018",
                subcategory="Neural correlation",
            ),
            layers=report(
                arend_results("figures", "layers.png"),
                caption="../report/arend2018_layers.rst",
                category="Arend 2018",
                subcategory="Per-layer curves",
            ),
            decoding=report(
                arend_results("figures", "decoding.png"),
                caption="../report/arend2018_decoding.rst",
                category="Arend 2018",
                subcategory="Matched-population decoding",
            ),
            depth=report(
                arend_results("figures", "depth.png"),
                caption="../report/arend2018_depth.rst",
                category="Arend 2018",
                subcategory="Depth of the best units",
            ),
            pdfs=[arend_results("figures", f"{f}.pdf") for f in AREND_FIGURES],
        log:
            log(AREND, "figures.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/plot_arend2018.py"
