# Helpers, start-up checks and registration for workflow/rules/conwell2024.smk (functions and
# checks only: snakemake --lint keeps rules and functions in separate files).

from brainalign.checks import check_nsd_root  # noqa: E402
from brainalign.io.nsd import nsd_paths  # noqa: E402

CONWELL = "conwell2024"
NSD_STIMSET = "nsd_shared"
NSD_ROOT = Path(cfg("nsd", "root"))
NSD_DESIGN = str(nsd_paths(NSD_ROOT, 1)["design"])
NSD_SUBJECTS = [f"{s:02d}" for s in cfg("nsd", "subjects")]


def brain_h5(subject="{subject}"):
    return results("brain", "nsd", f"subj{subject}.h5")


def scores_parquet(model="{model}"):
    return results(CONWELL, "scores", f"{model}.parquet")


def demo_truth():
    return str(NSD_ROOT / "truth.json") if cfg("demo", "enabled") else []


def conwell_outputs():
    outs = [
        results(CONWELL, "tables", "selected_layers.csv"),
        results(CONWELL, "figures", "model_comparison.png"),
    ]
    outs += [results(CONWELL, "figures", f"layer_profiles_{m}.png") for m in MODELS]
    if cfg("survey", "enabled"):
        outs += [
            results(CONWELL, "figures", f"survey_{name}.png")
            for name in ("architecture", "task", "diet", "ranking", "model_similarity")
        ]
    return outs


if cfg(CONWELL, "enabled"):
    # start-up checks: fail before any job runs, naming the config key
    check_nsd_root(
        NSD_ROOT, demo=cfg("demo", "enabled"), subjects=cfg("nsd", "subjects")
    )
    if cfg("demo", "enabled"):
        missing = set(cfg("nsd", "subjects")) - set(cfg("demo", "subjects"))
        if missing:
            raise ValueError(
                f"config key nsd.subjects lists {sorted(missing)}, which demo.subjects does not generate."
            )
    register_paper(CONWELL, conwell_outputs, stimset_inputs={NSD_STIMSET: NSD_DESIGN})
