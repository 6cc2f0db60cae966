# Shared helpers: config lookup, path helpers, the model table, and the paper registry.
# Functions only (no rules). Every paper's rule file (workflow/rules/<paper>.smk) calls
# register_paper() once, when its config section is enabled: that names the paper's final
# targets (the default target collects them) and asks the shared stages for what it needs -
#   trained_checkpoints  model name -> checkpoint this workflow trains; extract_features
#                        (features.smk) waits for the training job and loads that file
#   stimset_inputs       stimulus set -> files extract_features reads besides the table
#   decoding             M/EEG dataset -> config section holding its `decoding` options
#                        (decoding_rdms, decoding.smk)
# docs/adding-a-paper.md walks through adding a paper.

import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from brainalign.models.registry import (  # noqa: E402
    check_models,
    read_model_table,
    split_available,
)

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


# --- start-up checks of the model table: fail before any job runs, naming the config key ---
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


def results(*parts):
    """Path under results/."""
    return str(Path(RESULTS, *parts))


def log(*parts):
    return results("logs", *parts)


def bench(*parts):
    return results("benchmarks", *parts)


def features_h5(stimset="{stimset}", model="{model}"):
    return results("features", stimset, f"{model}.h5")


# --- the paper registry ----------------------------------------------------------------
PAPER_TARGETS = {}  # paper -> function returning its final target paths
TRAINED_CHECKPOINTS = {}  # model name -> checkpoint path trained by this workflow
STIMSET_INPUTS = {}  # stimulus set -> extra input files of extract_features
DECODING_SECTION = {}  # M/EEG dataset -> config section with its decoding options


def register_paper(
    name, outputs, *, trained_checkpoints=None, stimset_inputs=None, decoding=None
):
    """Register an enabled paper (see the header of this file); call once per paper."""
    if name in PAPER_TARGETS:
        raise ValueError(f"paper {name!r} is registered twice")
    PAPER_TARGETS[name] = outputs
    for registry, entries in (
        (TRAINED_CHECKPOINTS, trained_checkpoints),
        (STIMSET_INPUTS, stimset_inputs),
        (DECODING_SECTION, decoding),
    ):
        for key, value in (entries or {}).items():
            if key in registry and registry[key] != value:
                raise ValueError(
                    f"paper {name!r} registers {key!r}, which another paper registered differently"
                )
            registry[key] = value


def all_outputs():
    """The final targets of every registered (enabled) paper: rule all's input."""
    return [path for outputs in PAPER_TARGETS.values() for path in outputs()]


def workflow_checkpoint(wildcards):
    return TRAINED_CHECKPOINTS.get(wildcards.model, [])


def stimset_inputs(wildcards):
    return STIMSET_INPUTS.get(wildcards.stimset, [])


def extraction_resources():
    return 1 if str(cfg("extraction", "device")).startswith("cuda") else 0
