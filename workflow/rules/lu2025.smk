# Lu & Wang 2025 (ReAlnet-fMRI): CORnet-S aligned to fMRI, Shen/Horikawa/THINGS-EEG2 evaluation.
# Numerics: brainalign.lu2025 and brainalign.realnet. THINGS-EEG2 decoding RDMs come from the
# shared decoding_rdms rule (decoding.smk), registered below.


if LU_DEMO:

    rule lu2025_demo_data:
        output:
            truth=LU_PATHS["truth"],
            shen_train=list(LU_PATHS["shen_train"].values()),
            shen_test=[p for d in LU_PATHS["shen_test"].values() for p in d.values()],
            horikawa=list(LU_PATHS["horikawa"].values()),
            eeg=list(LU_PATHS["eeg"].values()),
            eeg_metadata=LU_PATHS["eeg_metadata"],
            dims=[LU_PATHS["dims_weights"], LU_PATHS["dims_concepts"]],
        log:
            log(LU, "demo_data.log"),
        conda:
            "../../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            lu=config[LU],
            seed=cfg("seed"),
        script:
            "../scripts/lu2025_demo_data.py"


if cfg(LU, "enabled"):

    rule lu2025_shen_pcs:
        input:
            train=lambda wc: LU_PATHS["shen_train"][wc.subject],
        output:
            pcs=lu_train_pcs(),
        log:
            log(LU, "shen_pcs_sub-{subject}.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            vc_roi=cfg(LU, "shen", "vc_roi"),
            n_components=cfg(LU, "training", "pca_components"),
            unit_scale=cfg(LU, "training", "pca_unit_scale"),
            seed=cfg("seed"),
        script:
            "../scripts/lu2025_shen_pcs.py"

    rule lu2025_train:
        input:
            pcs=lu_train_pcs(),
        output:
            model=lu_results("models", "sub-{subject}_beta-{beta}.pt"),
            losses=lu_results("training", "sub-{subject}_beta-{beta}_losses.tsv"),
        log:
            log(LU, "train_sub-{subject}_beta-{beta}.log"),
        benchmark:
            bench(LU, "train_sub-{subject}_beta-{beta}.tsv")
        wildcard_constraints:
            beta=r"\d+",
        conda:
            "../../envs/torch.yaml"
        threads: lu_threads()
        resources:
            mem_mb=16000,
            runtime=240,
            gpu=1,
        params:
            image_dir=cfg(LU, "shen", "image_dir"),
            model=cfg(LU, "model"),
            training=cfg(LU, "training"),
            # resume state: written every epoch, removed once the model is saved
            resume=lu_results("training", "sub-{subject}_beta-{beta}_resume.pt"),
            seed=cfg("seed"),
        script:
            "../scripts/lu2025_train.py"

    rule lu2025_layer_rdms:
        input:
            model=lu_model_input,
            calibration=lu_train_pcs(LU_SUBJECTS[0]),
            shen=list(LU_PATHS["shen_test"][LU_SUBJECTS[0]].values()),
            horikawa=list(LU_PATHS["horikawa"].values())[:1],
            eeg_metadata=LU_PATHS["eeg_metadata"] if LU_EEG else [],
        output:
            rdms=lu_results("rdms", "{net}.h5"),
        log:
            log(LU, "layer_rdms_{net}.log"),
        benchmark:
            bench(LU, "layer_rdms_{net}.tsv")
        wildcard_constraints:
            net=r"cornet|sub-\d\d_beta-\d+",
        conda:
            "../../envs/torch.yaml"
        threads: lu_threads()
        resources:
            mem_mb=8000,
            runtime=30,
            gpu=lu_gpus("evaluation"),
        params:
            lu=config[LU],
            seed=cfg("seed"),
        script:
            "../scripts/lu2025_layer_rdms.py"

    rule lu2025_eeg_epochs:
        input:
            eeg=lambda wc: LU_PATHS["eeg"][wc.subject],
            metadata=LU_PATHS["eeg_metadata"],
        output:
            epochs=epochs_npz("things_eeg2"),
        log:
            log(LU, "eeg_epochs_sub-{subject}.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=10,
        params:
            eeg=cfg(LU, "things_eeg2"),
        script:
            "../scripts/lu2025_eeg_epochs.py"

    rule lu2025_evaluate:
        input:
            unpack(lu_eval_inputs),
            rdms=expand(lu_results("rdms", "{net}.h5"), net=LU_MODELS),
            losses=expand(
                lu_results("training", "sub-{subject}_beta-{beta}_losses.tsv"),
                subject=LU_SUBJECTS,
                beta=LU_BETAS,
            ),
        output:
            scores=lu_results("tables", "rsa_scores.csv"),
            improvement=lu_results("tables", "improvement.csv"),
            losses=lu_results("tables", "training_losses.csv"),
            eeg=lu_results("tables", "eeg_rsa.csv"),
            dimensions=lu_results("tables", "dimensions.csv"),
        log:
            log(LU, "evaluate.log"),
        conda:
            "../../envs/core.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            lu=config[LU],
            models=LU_MODELS,
            eeg_subjects=LU_EEG_SUBJECTS,
        script:
            "../scripts/lu2025_evaluate.py"

    rule lu2025_figures:
        input:
            scores=rules.lu2025_evaluate.output.scores,
            losses=rules.lu2025_evaluate.output.losses,
            eeg=rules.lu2025_evaluate.output.eeg,
            dimensions=rules.lu2025_evaluate.output.dimensions,
        output:
            losses=report(
                lu_results("figures", "training_losses.png"),
                caption="../report/lu2025_training_losses.rst",
                category="Lu 2025",
                subcategory="Training",
            ),
            shen=report(
                lu_results("figures", "shen_rsa.png"),
                caption="../report/lu2025_shen_rsa.rst",
                category="Lu 2025",
                subcategory="Within-subject fMRI",
            ),
            horikawa=report(
                lu_results("figures", "horikawa_rsa.png"),
                caption="../report/lu2025_horikawa_rsa.rst",
                category="Lu 2025",
                subcategory="Across-subject fMRI",
            ),
            eeg=report(
                lu_results("figures", "eeg_rsa.png"),
                caption="../report/lu2025_eeg_rsa.rst",
                category="Lu 2025",
                subcategory="EEG",
            ),
            dimensions=report(
                lu_results("figures", "dimensions.png"),
                caption="../report/lu2025_dimensions.rst",
                category="Lu 2025",
                subcategory="Object dimensions",
            ),
        log:
            log(LU, "figures.log"),
        conda:
            "../../envs/plots.yaml"
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            main_beta=cfg(LU, "training", "main_beta"),
        script:
            "../scripts/plot_lu2025.py"
