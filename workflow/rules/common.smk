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


PAPER_TARGETS = {"conwell2024": conwell_outputs}


def all_outputs():
    return [
        path
        for paper, targets in PAPER_TARGETS.items()
        if cfg(paper, "enabled")
        for path in targets()
    ]
