# Shared helpers: config lookup, path helpers and the start-up checks.
# Functions only (no rules), so that every stage file stays declarative.

import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from brainalign.models.registry import (  # noqa: E402
    check_models,
    read_model_table,
    split_available,
)
from brainalign.checks import check_nsd_root  # noqa: E402
from brainalign.io.nsd import nsd_paths  # noqa: E402

PAPER = "conwell2024"
STIMSET = "nsd_shared"
RESULTS = "results"


wildcard_constraints:
    model=r"[A-Za-z0-9_.\-]+",
    subject=r"\d\d",
    stimset=r"[A-Za-z0-9_\-]+",


def cfg(*keys):
    """Config value at a key path, e.g. cfg("nsd", "root"); the schema supplies defaults."""
    node = config
    for i, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            raise KeyError(f"config key {'.'.join(keys[: i + 1])!r} is missing")
        node = node[key]
    return node


NSD_ROOT = Path(cfg("nsd", "root"))
NSD_DESIGN = str(nsd_paths(NSD_ROOT, 1)["design"])
SUBJECTS = [f"{s:02d}" for s in cfg("nsd", "subjects")]
# --- start-up checks: fail before any job runs, naming the config key -------------------
MODEL_TABLE = read_model_table(cfg("models", "table"))
MODELS = list(cfg("models", "use"))
if cfg("models", "skip_missing_checkpoints"):
    MODELS, _missing = split_available(
        MODEL_TABLE, MODELS, checkpoint_dir=cfg("models", "checkpoint_dir")
    )
    for _name, _path in _missing.items():
        print(
            f"brainalign: skipping model {_name}: checkpoint {_path} not found",
            file=sys.stderr,
        )
    if not MODELS:
        raise ValueError(
            "config key models.use: every listed model was skipped for a missing checkpoint."
        )
check_models(MODEL_TABLE, MODELS, checkpoint_dir=cfg("models", "checkpoint_dir"))
if cfg("conwell2024", "enabled"):
    check_nsd_root(
        NSD_ROOT, demo=cfg("demo", "enabled"), subjects=cfg("nsd", "subjects")
    )
if cfg("demo", "enabled") and cfg("conwell2024", "enabled"):
    missing = set(cfg("nsd", "subjects")) - set(cfg("demo", "subjects"))
    if missing:
        raise ValueError(
            f"config key nsd.subjects lists {sorted(missing)}, which demo.subjects does not generate."
        )


def results(*parts):
    """Path under results/."""
    return str(Path(RESULTS, *parts))


def log(*parts):
    return results("logs", *parts)


def bench(*parts):
    return results("benchmarks", *parts)


def features_h5(stimset="{stimset}", model="{model}"):
    return results("features", stimset, f"{model}.h5")


def brain_h5(subject="{subject}"):
    return results("brain", "nsd", f"subj{subject}.h5")


def scores_parquet(model="{model}"):
    return results(PAPER, "scores", f"{model}.parquet")


def demo_truth():
    return str(NSD_ROOT / "truth.json") if cfg("demo", "enabled") else []


def stimset_design(wildcards):
    """The NSD design file for the NSD stimulus set (its images come from NSD), else nothing."""
    return NSD_DESIGN if wildcards.stimset == STIMSET else []


# Models whose weights this workflow trains itself: model name -> checkpoint path.
# extract_features then waits for the training job and loads that checkpoint.
TRAINED_CHECKPOINTS = {}


def workflow_checkpoint(wildcards):
    return TRAINED_CHECKPOINTS.get(wildcards.model, [])


# --- Cichy 2016 DNN variants (training.smk): model alexnet8_<variant> ----------------------
from brainalign.training import check_training_folders  # noqa: E402

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


if cfg("cichy2016", "enabled"):
    TRAINED_CHECKPOINTS.update(
        {
            f"alexnet8_{v}": cichy_variant_file("model.pt", v)
            for v in CICHY_TRAINING["variants"]
        }
    )
    if not cfg("demo", "enabled"):
        check_training_folders(
            CICHY_TRAINING["variants"],
            object_dir=CICHY_TRAINING["object_dir"],
            scene_dir=CICHY_TRAINING["scene_dir"],
        )


def extraction_resources():
    return 1 if str(cfg("extraction", "device")).startswith("cuda") else 0


# --- decoding (decoding.smk) ----------------------------------------------------------
# M/EEG dataset -> config section with its `decoding` options (decoding_rdms)
DECODING_SECTION = {"meg": "cichy2016", "things_eeg2": "lu2025"}


def decoding_opts(wildcards):
    return cfg(DECODING_SECTION[wildcards.dataset], "decoding")


def decoding_gpus(wildcards):
    device = str(cfg(DECODING_SECTION[wildcards.dataset], "decoding", "device"))
    return 1 if device.startswith("cuda") else 0


def epochs_npz(dataset="{dataset}", subject="{subject}"):
    return results("brain", dataset, f"sub-{subject}_epochs.npz")


def decoding_h5(dataset="{dataset}", subject="{subject}"):
    return results("decoding", dataset, f"sub-{subject}.h5")


# --- Cichy et al. 2016 (cichy2016.smk) ---------------------------------------------------
from brainalign.cichy2016 import check_config as check_cichy_config  # noqa: E402
from brainalign.cichy2016 import demo_paths as cichy_demo_paths  # noqa: E402

CICHY = "cichy2016"
CICHY_STIMSET = "cichy2016"
CICHY_DEMO_ROOT = "resources/demo/cichy2016"
CICHY_SUBJECTS = [f"{s:02d}" for s in cfg(CICHY, "subjects")]
CICHY_MODELS = list(cfg(CICHY, "models"))
# DNN variants of Fig. 5, trained by training.smk as alexnet8_<variant>
CICHY_VARIANTS = [
    f"alexnet8_{v}" for v in config[CICHY].get("training", {}).get("variants", [])
]
CICHY_MEG_MODELS = CICHY_MODELS + [m for m in CICHY_VARIANTS if m not in CICHY_MODELS]
CICHY_DEMO = cfg("demo", "enabled") and cfg(CICHY, "enabled")
CICHY_FILES = {}  # subject -> input paths (see brainalign.cichy2016.check_config)
if cfg(CICHY, "enabled"):
    check_models(
        MODEL_TABLE,
        [m for m in CICHY_MEG_MODELS if m not in TRAINED_CHECKPOINTS],
        checkpoint_dir=cfg("models", "checkpoint_dir"),
    )
    CICHY_FILES = check_cichy_config(
        config[CICHY], demo=CICHY_DEMO, demo_root=CICHY_DEMO_ROOT
    )


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


# --- Lu & Wang 2025 (lu2025.smk) ---------------------------------------------------------
from brainalign.lu2025 import check_config as check_lu2025_config  # noqa: E402
from brainalign.lu2025 import input_paths as lu2025_input_paths  # noqa: E402

LU = "lu2025"
LU_DEMO = cfg("demo", "enabled") and cfg(LU, "enabled")
# every input file of the paper (and the demo's truth record), from the config
LU_PATHS = lu2025_input_paths(config[LU])
if cfg(LU, "enabled"):
    check_lu2025_config(config[LU], demo=LU_DEMO)
LU_SUBJECTS = [f"{s:02d}" for s in cfg(LU, "shen", "subjects")]
LU_BETAS = sorted({0} | {int(b) for b in cfg(LU, "training", "betas")})
LU_MODELS = ["cornet"] + [f"sub-{s}_beta-{b}" for s in LU_SUBJECTS for b in LU_BETAS]
LU_EEG = cfg(LU, "things_eeg2", "enabled")
LU_EEG_SUBJECTS = [f"{s:02d}" for s in cfg(LU, "things_eeg2", "subjects")]
LU_FIGURES = ["training_losses", "shen_rsa", "horikawa_rsa", "eeg_rsa", "dimensions"]


def lu_results(*parts):
    return results(LU, *parts)


def lu_model_file(net="{net}"):
    return lu_results("models", f"{net}.pt")


def lu_train_pcs(subject="{subject}"):
    return lu_results("brain", f"shen_sub-{subject}_train_pcs.npz")


def lu_model_input(wildcards):
    """A trained model's weights; the pretrained CORnet-S ("cornet") needs none."""
    return [] if wildcards.net == "cornet" else lu_model_file(wildcards.net)


def lu_device(section):
    return str(cfg(LU, section, "device"))


def lu_gpus(section):
    return 0 if lu_device(section) == "cpu" else 1


def lu_threads():
    """One thread for the demo's tiny CORnet-S (a second only adds thread overhead: about 10x
    the CPU time of one under load), else 2."""
    return 1 if float(cfg(LU, "model", "width")) < 0.5 else 2


def lu_figure_enabled(name):
    if name == "horikawa_rsa":
        return cfg(LU, "horikawa", "enabled")
    if name == "eeg_rsa":
        return LU_EEG
    if name == "dimensions":
        return LU_EEG and cfg(LU, "dimensions", "enabled")
    return True


def lu_eval_inputs(wildcards):
    """Every file the evaluation reads: brain data, decoding RDMs, dimension table."""
    ins = {
        "shen": [p for s in LU_SUBJECTS for p in LU_PATHS["shen_test"][s].values()],
        "horikawa": list(LU_PATHS["horikawa"].values()),
        "eeg": (
            [decoding_h5("things_eeg2", s) for s in LU_EEG_SUBJECTS] if LU_EEG else []
        ),
        "dims": [],
    }
    if LU_EEG and cfg(LU, "dimensions", "enabled"):
        ins["dims"] = [LU_PATHS["dims_weights"], LU_PATHS["dims_concepts"]]
    return ins


def lu2025_outputs():
    outs = [
        lu_results("tables", f"{t}.csv")
        for t in ("rsa_scores", "improvement", "training_losses")
    ]
    if LU_EEG:
        outs.append(lu_results("tables", "eeg_rsa.csv"))
    outs += [
        lu_results("figures", f"{f}.png") for f in LU_FIGURES if lu_figure_enabled(f)
    ]
    return outs


# --- final outputs per paper: the default target collects every enabled paper ---------
def conwell_outputs():
    outs = [
        results(PAPER, "tables", "selected_layers.csv"),
        results(PAPER, "figures", "model_comparison.png"),
    ]
    outs += [results(PAPER, "figures", f"layer_profiles_{m}.png") for m in MODELS]
    if cfg("survey", "enabled"):
        outs += [
            results(PAPER, "figures", f"survey_{name}.png")
            for name in ("architecture", "task", "diet", "ranking", "model_similarity")
        ]
    return outs


PAPER_TARGETS = {
    "conwell2024": conwell_outputs,
    "cichy2016": cichy_outputs,
    "lu2025": lu2025_outputs,
}


def all_outputs():
    return [
        path
        for paper, targets in PAPER_TARGETS.items()
        if cfg(paper, "enabled")
        for path in targets()
    ]
