# Helpers, start-up checks and registration for workflow/rules/lu2025.smk (functions and
# checks only: snakemake --lint keeps rules and functions in separate files).

from brainalign.lu2025 import check_config as check_lu2025_config  # noqa: E402
from brainalign.lu2025 import input_paths as lu2025_input_paths  # noqa: E402

LU = "lu2025"
LU_DEMO = cfg("demo", "enabled") and cfg(LU, "enabled")
# every input file of the paper (and the demo's truth record), from the config
LU_PATHS = lu2025_input_paths(config[LU])
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


if cfg(LU, "enabled"):
    # start-up checks: fail before any job runs, naming the config key
    check_lu2025_config(config[LU], demo=LU_DEMO)
    register_paper(LU, lu2025_outputs, decoding={"things_eeg2": LU})
