# Kuzovkin et al. 2018: DCNN layers vs human intracranial band power. Per model, the Euclidean
# RDM of every layer (pixels first) on the image set; per band x window, the RSA of every probe
# of every subject with every layer and its permutation test; then rho_align / Kendall tau with
# the split-half noise band, the area x layer mapping matrices and figures. The demo's random
# control gtnet_random is gtnet with another seed (kuzovkin_random_net), which extract_features
# loads as a registered checkpoint. Inputs are resolved at start-up (KUZ_FILES).


if KUZ_DEMO:

    rule kuzovkin_demo_data:
        output:
            truth=kuz_truth(),
            stimuli=kuz_stimuli(),
            subjects=kuz_all_subject_files(),
        log:
            log(KUZ, "demo_data.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            demo=cfg(KUZ, "demo"),
            bands=KUZ_FILES["bands"],
            windows=KUZ_FILES["windows"],
            template=kuz_folder_template,
            seed=cfg("seed"),
        script:
            "../scripts/kuzovkin_demo_data.py"


if cfg(KUZ, "enabled"):

    rule kuzovkin_random_net:
        output:
            model=kuz_random_net(),
        log:
            log(KUZ, "random_net.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        params:
            seed=cfg("seed"),
        script:
            "../scripts/kuzovkin_random_net.py"

    rule kuzovkin_stimulus_table:
        input:
            images=kuz_stimuli(),
        output:
            table=results("stimuli", f"{KUZ_STIMSET}.tsv"),
        log:
            log(KUZ, "stimulus_table.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        script:
            "../scripts/kuzovkin_stimulus_table.py"

    rule kuzovkin_layer_rdms:
        input:
            features=features_h5(KUZ_STIMSET),
            stimuli=rules.kuzovkin_stimulus_table.output.table,
        output:
            rdms=kuz_rdms(),
        log:
            log(KUZ, "layer_rdms_{model}.log"),
        benchmark:
            bench(KUZ, "layer_rdms_{model}.tsv")
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            layers=kuz_layers,
            pixels=cfg(KUZ, "pixels", "enabled"),
            pixel_size=cfg(KUZ, "pixels", "size"),
        script:
            "../scripts/kuzovkin_layer_rdms.py"

    rule kuzovkin_probe_tests:
        input:
            subjects=kuz_subject_files,
            rdms=expand(kuz_rdms(), model=KUZ_MODELS),
        output:
            table=kuz_tests(),
        log:
            log(KUZ, "probe_tests_{band}_{window}.log"),
        benchmark:
            bench(KUZ, "probe_tests_{band}_{window}.tsv")
        wildcard_constraints:
            band="|".join(KUZ_FILES["bands"]),
            window="|".join(KUZ_FILES["windows"]),
        conda:
            "../../envs/core.yaml"
        threads: cfg(KUZ, "permutation", "threads")
        resources:
            mem_mb=4000,
            runtime=kuz_permutation_runtime(),
        params:
            subjects=KUZ_FILES["subjects"],
            models=KUZ_MODELS,
            n_stimuli=KUZ_FILES["n_stimuli"],
            permutation=cfg(KUZ, "permutation"),
            seed=cfg("seed"),
        script:
            "../scripts/kuzovkin_probe_tests.py"

    rule kuzovkin_alignment:
        input:
            tests=[kuz_tests(b, w) for b, w in kuz_band_windows()],
        output:
            tests=kuz_table("probe_layer_tests.csv"),
            alignment=kuz_table("alignment.csv"),
            mapping=kuz_table("mapping.csv"),
            fractions=kuz_table("layer_fractions.csv"),
        log:
            log(KUZ, "alignment.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            alignment=cfg(KUZ, "alignment"),
            seed=cfg("seed"),
        script:
            "../scripts/kuzovkin_alignment.py"

    rule plot_kuzovkin_mapping:
        input:
            mapping=rules.kuzovkin_alignment.output.mapping,
        output:
            png=report(
                kuz_figure("mapping_{model}.png"),
                caption="../report/kuzovkin2018_mapping.rst",
                category="Kuzovkin 2018",
                subcategory="Mapping",
                labels={"model": "{model}", "figure": "area x layer"},
            ),
            pdf=kuz_figure("mapping_{model}.pdf"),
        log:
            log(KUZ, "plot_mapping_{model}.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            bands=KUZ_FILES["bands"],
            windows=KUZ_FILES["windows"],
        script:
            "../scripts/plot_kuzovkin_mapping.py"

    rule plot_kuzovkin_alignment:
        input:
            alignment=rules.kuzovkin_alignment.output.alignment,
            fractions=rules.kuzovkin_alignment.output.fractions,
        output:
            rho_png=report(
                kuz_figure("rho_align.png"),
                caption="../report/kuzovkin2018_rho_align.rst",
                category="Kuzovkin 2018",
                subcategory="Alignment",
                labels={"figure": "rho_align"},
            ),
            rho_pdf=kuz_figure("rho_align.pdf"),
            fractions_png=report(
                kuz_figure("layer_fractions.png"),
                caption="../report/kuzovkin2018_layer_fractions.rst",
                category="Kuzovkin 2018",
                subcategory="Alignment",
                labels={"figure": "layer fractions"},
            ),
            fractions_pdf=kuz_figure("layer_fractions.pdf"),
        log:
            log(KUZ, "plot_alignment.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            bands=KUZ_FILES["bands"],
            windows=KUZ_FILES["windows"],
            models=KUZ_MODELS,
        script:
            "../scripts/plot_kuzovkin_alignment.py"
