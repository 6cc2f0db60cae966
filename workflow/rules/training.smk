# Training the DNN variants of Cichy et al. 2016 (object, scene, unecological, noise, untrained).
# Outputs results/cichy2016/training/<variant>/model.pt, a brainalign network file that
# extract_features loads as model alexnet8_<variant> (TRAINED_CHECKPOINTS in common.smk).
# A training job keeps checkpoint.pt beside it and resumes from it when run again after a kill.


if cfg("demo", "enabled") and cfg("cichy2016", "enabled"):

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
