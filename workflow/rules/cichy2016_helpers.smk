# Helpers, start-up checks and registration for workflow/rules/cichy2016.smk (functions and
# checks only: snakemake --lint keeps rules and functions in separate files).

from brainalign.cichy2016 import check_config as check_cichy_config  # noqa: E402
from brainalign.training import check_training_folders  # noqa: E402

CICHY = "cichy2016"
CICHY_STIMSET = "cichy2016"
CICHY_DEMO_ROOT = "resources/demo/cichy2016"
CICHY_SUBJECTS = [f"{s:02d}" for s in cfg(CICHY, "subjects")]
CICHY_MODELS = list(cfg(CICHY, "models"))
# DNN variants of Fig. 5, trained by the rules in cichy2016.smk as alexnet8_<variant>
CICHY_VARIANTS = [
    f"alexnet8_{v}" for v in config[CICHY].get("training", {}).get("variants", [])
]
CICHY_MEG_MODELS = CICHY_MODELS + [m for m in CICHY_VARIANTS if m not in CICHY_MODELS]
CICHY_DEMO = cfg("demo", "enabled") and cfg(CICHY, "enabled")
CICHY_FILES = {}  # subject -> input paths (see brainalign.cichy2016.check_config)


def cichy_stimulus_images():
    return CICHY_FILES["stimuli"]


def cichy_subject_meg(subject):
    return CICHY_FILES["subjects"][subject]["meg"]


def cichy_meg_files(wildcards):
    return cichy_subject_meg(wildcards.subject)


def cichy_subject_fmri(subject):
    """Volumes, ROI masks, localiser and searchlight mask of one subject, flat."""
    f = CICHY_FILES["subjects"][subject]["fmri"]
    return f["volumes"] + list(f["rois"].values()) + f["localizer"] + f["mask"]


def cichy_fmri_files(wildcards):
    return cichy_subject_fmri(wildcards.subject)


def cichy_all_fmri_files(wildcards):
    return [path for s in CICHY_SUBJECTS for path in cichy_subject_fmri(s)]


def cichy_fmri_params():
    return {s: CICHY_FILES["subjects"][s]["fmri"] for s in CICHY_SUBJECTS}


def cichy_truth():
    return str(Path(CICHY_DEMO_ROOT, "truth.json")) if CICHY_DEMO else []


def cichy_layers(wildcards):
    return cfg(CICHY, "layers").get(wildcards.model, "all")


def cichy_rdms(model="{model}"):
    return results(CICHY, "rdms", f"{model}.h5")


def cichy_table(name):
    return results(CICHY, "tables", name)


def cichy_figure(name):
    return results(CICHY, "figures", name)


def cichy_searchlight_map(subject="{subject}", model="{model}"):
    return results(CICHY, "searchlight", f"sub-{subject}_{model}.nii.gz")


def cichy_outputs():
    outs = []
    if cfg(CICHY, "meg", "enabled"):
        for m in CICHY_MODELS:
            outs += [
                cichy_figure(f"meg_timecourses_{m}.png"),
                cichy_figure(f"meg_peak_latency_{m}.png"),
            ]
        if CICHY_VARIANTS:
            outs.append(cichy_figure("meg_variants.png"))
    if cfg(CICHY, "fmri", "enabled"):
        outs.append(cichy_figure("roi_layers.png"))
        if cfg(CICHY, "fmri", "searchlight"):
            outs += [cichy_table(f"searchlight_peaks_{m}.csv") for m in CICHY_MODELS]
            if cfg(CICHY, "fmri", "surface_maps"):
                outs += [cichy_figure(f"searchlight_surface_{m}") for m in CICHY_MODELS]
    return outs


CICHY_TRAINING = cfg("cichy2016", "training")


def cichy_variant_file(name, variant="{variant}"):
    """results/cichy2016/training/<variant>/<name> (model.pt, loss.tsv, checkpoint.pt)."""
    return results("cichy2016", "training", variant, name)


def cichy_training_input(wildcards):
    """The image folder a variant trains on (none for noise, generated on the fly)."""
    if wildcards.variant in ("object", "unecological"):
        return CICHY_TRAINING["object_dir"]
    if wildcards.variant == "scene":
        return CICHY_TRAINING["scene_dir"]
    return []


def cichy_training_threads():
    """One thread for the demo's tiny networks (more only adds thread overhead), else room for
    the data-loading workers."""
    if CICHY_TRAINING["width"] < 0.5:
        return 1
    return max(2, CICHY_TRAINING["num_workers"])


def cichy_training_runtime():
    """Minutes: about 1 per 300 iterations of the full network on a GPU, at least 15."""
    return max(15, CICHY_TRAINING["iterations"] // 300)


def cichy_training_mem_mb():
    return 16000 if CICHY_TRAINING["width"] >= 0.5 else 4000


def cichy_trained_checkpoints():
    return {
        f"alexnet8_{v}": cichy_variant_file("model.pt", v)
        for v in CICHY_TRAINING["variants"]
    }


if cfg(CICHY, "enabled"):
    # start-up checks: fail before any job runs, naming the config key
    if not cfg("demo", "enabled"):
        check_training_folders(
            CICHY_TRAINING["variants"],
            object_dir=CICHY_TRAINING["object_dir"],
            scene_dir=CICHY_TRAINING["scene_dir"],
        )
    check_models(
        MODEL_TABLE,
        [m for m in CICHY_MEG_MODELS if m not in cichy_trained_checkpoints()],
        checkpoint_dir=cfg("models", "checkpoint_dir"),
    )
    CICHY_FILES = check_cichy_config(
        config[CICHY], demo=CICHY_DEMO, demo_root=CICHY_DEMO_ROOT
    )
    register_paper(
        CICHY,
        cichy_outputs,
        trained_checkpoints=cichy_trained_checkpoints(),
        decoding={"meg": CICHY},
    )
