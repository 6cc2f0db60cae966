# Cichy et al. 2016: MEG decoding RSA, fMRI ROI and searchlight RSA, statistics and figures,
# and the five AlexNet8 variants of Fig. 5 trained by this workflow (object, scene,
# unecological, noise, untrained) as results/cichy2016/training/<variant>/model.pt, which
# extract_features loads as model alexnet8_<variant> (registered trained checkpoints). A
# training job keeps checkpoint.pt beside it and resumes from it when run again after a kill.
# Inputs are resolved at start-up by brainalign.cichy2016.check_config (CICHY_FILES).


if CICHY_DEMO:

    rule demo_training_sets:
        output:
            object=directory(CICHY_TRAINING["object_dir"]),
            scene=directory(CICHY_TRAINING["scene_dir"]),
        log:
            log("cichy2016", "demo_training_sets.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            images_per_class=CICHY_TRAINING["demo_images_per_class"],
            size=CICHY_TRAINING["image_size"],
            seed=cfg("seed"),
        script:
            "../scripts/demo_training_sets.py"


if CICHY_DEMO:

    rule cichy_demo_data:
        output:
            truth=cichy_truth(),
            stimuli=cichy_stimulus_images(),
            meg=[f for s in CICHY_SUBJECTS for f in cichy_subject_meg(s)],
            fmri=[f for s in CICHY_SUBJECTS for f in cichy_subject_fmri(s)],
        log:
            log(CICHY, "demo_data.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            demo=cfg(CICHY, "demo"),
            subjects=cfg(CICHY, "subjects"),
            seed=cfg("seed"),
        script:
            "../scripts/cichy_demo_data.py"


if cfg(CICHY, "enabled"):

    rule train_cichy_variant:
        input:
            images=cichy_training_input,
        output:
            model=cichy_variant_file("model.pt"),
            loss=cichy_variant_file("loss.tsv"),
        log:
            log("cichy2016", "train_cichy_variant_{variant}.log"),
        benchmark:
            bench("cichy2016", "train_cichy_variant_{variant}.tsv")
        wildcard_constraints:
            variant="object|scene|unecological|noise",
        conda:
            "../../envs/torch.yaml"
        threads: cichy_training_threads()
        resources:
            mem_mb=cichy_training_mem_mb(),
            runtime=cichy_training_runtime(),
            gpu=1,
        params:
            training=CICHY_TRAINING,
            checkpoint=cichy_variant_file("checkpoint.pt"),
            seed=cfg("seed"),
        script:
            "../scripts/train_cichy_variant.py"

    rule init_cichy_untrained:
        input:
            images=CICHY_TRAINING["object_dir"],
        output:
            model=cichy_variant_file("model.pt", "untrained"),
        log:
            log("cichy2016", "init_cichy_untrained.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            training=CICHY_TRAINING,
            seed=cfg("seed"),
        script:
            "../scripts/init_cichy_untrained.py"

    rule cichy_stimulus_table:
        input:
            images=cichy_stimulus_images(),
        output:
            table=results("stimuli", f"{CICHY_STIMSET}.tsv"),
        log:
            log(CICHY, "stimulus_table.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=5,
        script:
            "../scripts/cichy_stimulus_table.py"

    rule cichy_model_rdms:
        input:
            features=features_h5(CICHY_STIMSET),
        output:
            rdms=cichy_rdms(),
        log:
            log(CICHY, "model_rdms_{model}.log"),
        benchmark:
            bench(CICHY, "model_rdms_{model}.tsv")
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            layers=cichy_layers,
            metric=cfg(CICHY, "model_rdm_metric"),
        script:
            "../scripts/cichy_model_rdms.py"

    rule cichy_meg_epochs:
        input:
            epochs=cichy_meg_files,
            stimuli=rules.cichy_stimulus_table.output.table,
        output:
            epochs=epochs_npz("meg"),
        log:
            log(CICHY, "meg_epochs_sub-{subject}.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=16000,
            runtime=30,
        params:
            meg=cfg(CICHY, "meg"),
        script:
            "../scripts/cichy_meg_epochs.py"

    rule cichy_meg_rsa:
        input:
            rdms=cichy_rdms(),
            decoding=expand(decoding_h5("meg", "{s}"), s=CICHY_SUBJECTS),
        output:
            rsa=cichy_table("meg_rsa_{model}.csv"),
            timecourses=cichy_table("meg_timecourses_{model}.csv"),
            peaks=cichy_table("meg_peak_latency_{model}.csv"),
            layer_order=cichy_table("meg_layer_order_{model}.csv"),
        log:
            log(CICHY, "meg_rsa_{model}.log"),
        benchmark:
            bench(CICHY, "meg_rsa_{model}.tsv")
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=60,
        params:
            stats=cfg(CICHY, "stats"),
            subjects=CICHY_SUBJECTS,
            seed=cfg("seed"),
        script:
            "../scripts/cichy_meg_rsa.py"

    rule cichy_variant_stats:
        input:
            rsa=expand(cichy_table("meg_rsa_{model}.csv"), model=CICHY_VARIANTS),
        output:
            table=cichy_table("meg_variants.csv"),
        log:
            log(CICHY, "variant_stats.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            stats=cfg(CICHY, "stats"),
            models=CICHY_VARIANTS,
            seed=cfg("seed"),
        script:
            "../scripts/cichy_variant_stats.py"

    rule cichy_fmri_roi:
        input:
            fmri=cichy_all_fmri_files,
            rdms=expand(cichy_rdms(), model=CICHY_MODELS),
        output:
            roi_rdms=results(CICHY, "fmri", "roi_rdms.h5"),
            similarity=cichy_table("roi_similarity.csv"),
            layers=cichy_table("roi_layers.csv"),
            layer_order=cichy_table("roi_layer_order.csv"),
        log:
            log(CICHY, "fmri_roi.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            files=cichy_fmri_params(),
            fmri=cfg(CICHY, "fmri"),
            stats=cfg(CICHY, "stats"),
            models=CICHY_MODELS,
            seed=cfg("seed"),
        script:
            "../scripts/cichy_fmri_roi.py"

    rule cichy_searchlight:
        input:
            fmri=cichy_fmri_files,
            rdms=expand(cichy_rdms(), model=CICHY_MODELS),
        output:
            maps=expand(
                cichy_searchlight_map(model="{m}"), m=CICHY_MODELS, allow_missing=True
            ),
        log:
            log(CICHY, "searchlight_sub-{subject}.log"),
        benchmark:
            bench(CICHY, "searchlight_sub-{subject}.tsv")
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=120,
        params:
            files=lambda wildcards: CICHY_FILES["subjects"][wildcards.subject]["fmri"],
            fmri=cfg(CICHY, "fmri"),
            models=CICHY_MODELS,
        script:
            "../scripts/cichy_searchlight.py"

    rule cichy_searchlight_group:
        input:
            maps=expand(
                cichy_searchlight_map(subject="{s}"),
                s=CICHY_SUBJECTS,
                allow_missing=True,
            ),
            rdms=cichy_rdms(),
        output:
            mean=results(CICHY, "searchlight", "group_{model}_mean.nii.gz"),
            significant=results(
                CICHY, "searchlight", "group_{model}_significant.nii.gz"
            ),
            peaks=cichy_table("searchlight_peaks_{model}.csv"),
        log:
            log(CICHY, "searchlight_group_{model}.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            stats=cfg(CICHY, "stats"),
            seed=cfg("seed"),
        script:
            "../scripts/cichy_searchlight_group.py"

    rule plot_cichy_meg:
        input:
            timecourses=rules.cichy_meg_rsa.output.timecourses,
            peaks=rules.cichy_meg_rsa.output.peaks,
            layer_order=rules.cichy_meg_rsa.output.layer_order,
            truth=cichy_truth(),
        output:
            timecourses=report(
                cichy_figure("meg_timecourses_{model}.png"),
                caption="../report/cichy_meg_timecourses.rst",
                category="Cichy 2016",
                subcategory="MEG",
                labels={"model": "{model}", "figure": "3a"},
            ),
            timecourses_pdf=cichy_figure("meg_timecourses_{model}.pdf"),
            peaks=report(
                cichy_figure("meg_peak_latency_{model}.png"),
                caption="../report/cichy_meg_peak_latency.rst",
                category="Cichy 2016",
                subcategory="MEG",
                labels={"model": "{model}", "figure": "3b"},
            ),
            peaks_pdf=cichy_figure("meg_peak_latency_{model}.pdf"),
        log:
            log(CICHY, "plot_meg_{model}.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/plot_cichy_meg.py"

    rule plot_cichy_variants:
        input:
            table=rules.cichy_variant_stats.output.table,
        output:
            png=report(
                cichy_figure("meg_variants.png"),
                caption="../report/cichy_meg_variants.rst",
                category="Cichy 2016",
                subcategory="DNN variants",
                labels={"figure": "5b/c"},
            ),
            pdf=cichy_figure("meg_variants.pdf"),
        log:
            log(CICHY, "plot_variants.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/plot_cichy_variants.py"

    rule plot_cichy_roi:
        input:
            layers=rules.cichy_fmri_roi.output.layers,
            layer_order=rules.cichy_fmri_roi.output.layer_order,
            truth=cichy_truth(),
        output:
            png=report(
                cichy_figure("roi_layers.png"),
                caption="../report/cichy_roi_layers.rst",
                category="Cichy 2016",
                subcategory="fMRI",
                labels={"figure": "6a"},
            ),
            pdf=cichy_figure("roi_layers.pdf"),
        log:
            log(CICHY, "plot_roi.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/plot_cichy_roi.py"

    rule plot_cichy_surface:
        input:
            mean=rules.cichy_searchlight_group.output.mean,
            rdms=cichy_rdms(),
        output:
            figures=directory(cichy_figure("searchlight_surface_{model}")),
        log:
            log(CICHY, "plot_surface_{model}.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=20,
        script:
            "../scripts/plot_cichy_surface.py"
