# Helpers, start-up checks and registration for workflow/rules/arend2018.smk (functions and
# checks only: snakemake --lint keeps rules and functions in separate files).

from brainalign.arend2018 import check_config as check_arend2018_config  # noqa: E402
from brainalign.arend2018 import input_paths as arend2018_input_paths  # noqa: E402

AREND = "arend2018"
AREND_DEMO = cfg("demo", "enabled") and cfg(AREND, "enabled")
AREND_PATHS = arend2018_input_paths(config[AREND])
AREND_FIGURES = ["correlation", "layers", "decoding", "depth"]


def arend_models():
    """The section's models; with skip_missing_checkpoints, those whose checkpoint exists."""
    names = list(cfg(AREND, "models"))
    if cfg(AREND, "skip_missing_checkpoints"):
        names, missing = split_available(
            MODEL_TABLE, names, checkpoint_dir=cfg("models", "checkpoint_dir")
        )
        for name, path in missing.items():
            print(
                f"brainalign: arend2018 skips model {name}: checkpoint {path} not found",
                file=sys.stderr,
            )
        if not names:
            raise ValueError(
                "config key arend2018.models: every listed model was skipped for a missing checkpoint."
            )
    check_models(MODEL_TABLE, names, checkpoint_dir=cfg("models", "checkpoint_dir"))
    return names


def arend_results(*parts):
    return results(AREND, *parts)


def arend_inputs():
    """The assembly, stimulus-set CSV and image folder every job reads."""
    return {
        "assembly": AREND_PATHS["assembly"],
        "stimulus_csv": AREND_PATHS["stimulus_csv"],
        "image_dir": AREND_PATHS["image_dir"],
    }


def arend_common_params():
    return {
        "variation": cfg(AREND, "variation"),
        "regions": list(cfg(AREND, "regions")),
        "seed": cfg("seed"),
        "top_k": cfg(AREND, "top_k"),
    }


def arend_rotation_runs(model):
    """Rotation runs of a model: 0 unless it is among controls.rotation_models (null = all)."""
    chosen = cfg(AREND, "controls", "rotation_models")
    if chosen is not None and model not in chosen:
        return 0
    return cfg(AREND, "controls", "rotation_runs")


def arend_gpus():
    return 1 if str(cfg(AREND, "device")).startswith("cuda") else 0


def arend2018_outputs():
    outs = [
        arend_results("tables", f"{t}.csv")
        for t in ("scores", "layer_scores", "best_units", "decoding")
    ]
    outs += [arend_results("figures", f"{f}.png") for f in AREND_FIGURES]
    outs += [arend_results("figures", f"{f}.pdf") for f in AREND_FIGURES]
    return outs


if cfg(AREND, "enabled"):
    # start-up checks: fail before any job runs, naming the config key
    check_arend2018_config(config[AREND], demo=AREND_DEMO)
    AREND_MODELS = arend_models()
    register_paper(AREND, arend2018_outputs)
