"""The model table (``config/models.csv``): validation, checks and loading.

One row per model::

    model,source,architecture,arch_class,task,training_data,trained,checkpoint,n_params,top1

- ``source``: ``timm``, ``torchvision`` or ``brainalign`` (networks defined in this package).
- ``architecture``: the constructor name. A trained model names its weights with a
  tag, as timm does: ``resnet50.a1_in1k`` (timm pretrained tag) or
  ``resnet50.IMAGENET1K_V1`` (torchvision weights enum member); the tag chooses
  the evaluation transform. Untrained rows give the bare name (``resnet18``).
- ``arch_class``: ``CNN`` or ``transformer``. ``trained``: ``true`` / ``false``.
- ``checkpoint``: a local weights file (``.pth``/``.pt``/``.bin``/``.safetensors``), required
  for and only for trained models. Nothing is ever downloaded: users place the files,
  and relative paths are resolved against ``checkpoint_dir`` (the working directory
  when it is None).
- ``n_params`` (int) and ``top1`` (ImageNet top-1, %) may be empty.

Transforms (SPEC section 1): each model's own evaluation transform (resize, centre
crop, to tensor, normalise). Untrained models skip the normalisation (resize, crop,
to-tensor only), and so does ``gtnet`` (64 px, to tensor). ``cornet_s`` (CORnet-S, trained
or not): resize 256, centre crop 224, to tensor, ImageNet normalisation when trained.
``alexnet8`` (Cichy 2016): resize + centre crop to 227 px, to tensor, ImageNet normalisation
when trained. Weights trained by the workflow are brainalign network files
(:data:`NETWORK_FILE_FORMAT`) that also hold the network's size and input size.
"""

from __future__ import annotations

import csv
import difflib
import inspect
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from ..utils import InputError

__all__ = [
    "SOURCES",
    "ARCH_CLASSES",
    "MODEL_TABLE_COLUMNS",
    "BRAINALIGN_MODELS",
    "read_model_table",
    "check_models",
    "split_available",
    "resolve_checkpoint",
    "load_model",
    "NETWORK_FILE_FORMAT",
]

SOURCES = ("timm", "torchvision", "brainalign")
ARCH_CLASSES = ("CNN", "transformer")
MODEL_TABLE_COLUMNS = (
    "model",
    "source",
    "architecture",
    "arch_class",
    "task",
    "training_data",
    "trained",
    "checkpoint",
    "n_params",
    "top1",
)
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _gtnet_entry():
    from torchvision import transforms

    from .gtnet import GTNET_INPUT_SIZE, gtnet

    def transform_factory():
        return transforms.Compose(
            [
                transforms.Resize(GTNET_INPUT_SIZE),
                transforms.CenterCrop(GTNET_INPUT_SIZE),
                transforms.ToTensor(),
            ]
        )

    # gtnet's weights are fixed by GTNET_SEED: they *are* the demo's ground truth.
    return gtnet, transform_factory


def _cornet_s_entry():
    from .cornet import cornet_s, cornet_s_transform

    # Normalising transform; _load_brainalign drops the normalisation for untrained weights.
    return cornet_s, cornet_s_transform


def _alexnet8_entry():
    from .alexnet8 import alexnet8, alexnet8_transform

    # Width, classes and input size of weights trained by the workflow come from their network
    # file (NETWORK_FILE_FORMAT); without one, the paper's full-size network at 227 px.
    return alexnet8, alexnet8_transform


#: Networks defined in brainalign: name -> function returning (constructor, transform factory).
BRAINALIGN_MODELS: dict[str, Callable] = {
    "gtnet": _gtnet_entry,
    "cornet_s": _cornet_s_entry,
    "alexnet8": _alexnet8_entry,
}
#: ``format`` of a brainalign network file: ``{"format", "architecture", "arch_kwargs",
#: "transform_kwargs", "state_dict"}`` (written by :func:`brainalign.training.save_network`).
#: Loading one builds the network with ``arch_kwargs`` and its transform with ``transform_kwargs``.
NETWORK_FILE_FORMAT = "brainalign-network"


# --------------------------------------------------------------------------- table


def read_model_table(path) -> pd.DataFrame:
    """Read and validate a model table; every problem is reported in one :class:`InputError`.

    Returns a DataFrame with one row per model, in file order: ``trained`` as bool,
    ``checkpoint`` as str ('' for none), ``n_params`` as nullable Int64, ``top1`` float.

    Every row must have as many fields as the header (empty fields are written as empty,
    e.g. ``...,false,,,``): a row cut short, as the last row of a file truncated by an
    interrupted copy, is an error even though its missing fields (checkpoint, n_params,
    top1) could otherwise pass as empty. A missing final newline is fine when the last row
    is complete.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Model table {str(path)!r} not found; expected a CSV with columns "
            f"{', '.join(MODEL_TABLE_COLUMNS)}."
        )
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as err:  # pandas raises several parser error types
        raise InputError(f"Model table {str(path)!r} could not be parsed as CSV: {err}") from err
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in MODEL_TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            f"Model table {str(path)!r} lacks column(s) {missing}; expected columns "
            f"{', '.join(MODEL_TABLE_COLUMNS)}."
        )
    table = table.apply(lambda col: col.str.strip())
    short = _short_rows(path, len(table.columns))
    if short:
        raise InputError(f"Model table {str(path)!r} is invalid:\n  " + "\n  ".join(short))

    problems = []

    def bad(i, column, message):
        # i is the 0-based data row; the CSV line is i + 2 (header is line 1).
        name = table.at[i, "model"] or "?"
        problems.append(f"line {i + 2} (model {name!r}), column {column!r}: {message}")

    seen: dict[str, int] = {}
    trained = []
    for i in range(len(table)):
        row = table.loc[i]
        if not row["model"]:
            bad(i, "model", "empty model name")
        elif row["model"] in seen:
            bad(i, "model", f"duplicate name (first on line {seen[row['model']] + 2})")
        else:
            seen[row["model"]] = i
        if row["source"] not in SOURCES:
            bad(i, "source", f"got {row['source']!r}, expected one of {', '.join(SOURCES)}")
        if not row["architecture"]:
            bad(i, "architecture", "empty architecture")
        if row["arch_class"] not in ARCH_CLASSES:
            bad(
                i,
                "arch_class",
                f"got {row['arch_class']!r}, expected one of {', '.join(ARCH_CLASSES)}",
            )
        flag = row["trained"].lower()
        if flag in _TRUE:
            is_trained = True
        elif flag in _FALSE:
            is_trained = False
        else:
            bad(i, "trained", f"got {row['trained']!r}, expected true or false")
            is_trained = False
        trained.append(is_trained)
        if is_trained and not row["checkpoint"]:
            bad(i, "checkpoint", "a trained model needs a local checkpoint file path")
        if flag in _FALSE and row["checkpoint"]:
            bad(
                i,
                "checkpoint",
                f"an untrained model must have no checkpoint, got {row['checkpoint']!r}",
            )
        if row["n_params"]:
            try:
                int(row["n_params"])
            except ValueError:
                bad(i, "n_params", f"got {row['n_params']!r}, expected an integer or empty")
        if row["top1"]:
            try:
                float(row["top1"])
            except ValueError:
                bad(i, "top1", f"got {row['top1']!r}, expected a number or empty")
    if problems:
        raise InputError(f"Model table {str(path)!r} is invalid:\n  " + "\n  ".join(problems))

    table["trained"] = pd.Series(trained, dtype=bool, index=table.index)
    table["n_params"] = pd.array([int(v) if v else None for v in table["n_params"]], dtype="Int64")
    table["top1"] = pd.to_numeric(table["top1"].replace("", None), errors="coerce").astype(float)
    table.attrs["path"] = str(path)
    return table[
        list(MODEL_TABLE_COLUMNS) + [c for c in table.columns if c not in MODEL_TABLE_COLUMNS]
    ]


def _short_rows(path: Path, n_columns: int) -> list[str]:
    """One message per data row with fewer fields than the header (blank lines skipped)."""
    text = path.read_text(encoding="utf-8", errors="replace")  # pandas read it as UTF-8
    problems = []
    reader = csv.reader(text.splitlines(), skipinitialspace=True)
    next(reader, None)  # the header
    for row in reader:
        if not row or len(row) >= n_columns:
            continue  # blank line, or a complete row (pandas reports rows that are too long)
        line = reader.line_num
        name = row[0].strip() or "?"
        last = line == len(text.splitlines())
        hint = (
            "the file ends inside this row without a final newline, so it was probably cut "
            "off (truncated) while being written or copied"
            if last and not text.endswith("\n")
            else "write empty fields as empty (e.g. ',false,,,'); a cut-off row means the "
            "file may be truncated"
        )
        problems.append(
            f"line {line} (model {name!r}): {len(row)} of {n_columns} fields; expected "
            f"{n_columns} ({hint})"
        )
    return problems


def _as_table(table) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table
    return read_model_table(table)


def resolve_checkpoint(checkpoint: str, checkpoint_dir=None) -> Path:
    """Absolute path of a checkpoint entry (relative entries are under ``checkpoint_dir``)."""
    path = Path(os.path.expanduser(checkpoint))
    if not path.is_absolute():
        path = Path(checkpoint_dir if checkpoint_dir is not None else ".") / path
    return path.absolute()


def _split_tag(architecture: str) -> tuple[str, str | None]:
    base, _, tag = architecture.partition(".")
    return base, (tag or None)


def _architecture_problem(source: str, architecture: str) -> str | None:
    """Why ``architecture`` is not buildable by ``source`` (None if it is)."""
    if source == "brainalign":
        if architecture not in BRAINALIGN_MODELS:
            known = ", ".join(BRAINALIGN_MODELS)
            return f"brainalign has no network {architecture!r} (known: {known})"
    elif source == "timm":
        import timm

        if not timm.is_model(architecture):
            close = difflib.get_close_matches(architecture, timm.list_models(pretrained=True), n=3)
            hint = f" (close: {', '.join(close)})" if close else ""
            return f"timm has no model {architecture!r}{hint}"
        base, tag = _split_tag(architecture)
        if tag is not None and not timm.list_pretrained(architecture):
            tags = [t.partition(".")[2] for t in timm.list_pretrained(base + ".*")]
            return f"timm model {base!r} has no pretrained tag {tag!r} (known: {', '.join(tags)})"
    elif source == "torchvision":
        import torchvision

        base, tag = _split_tag(architecture)
        names = torchvision.models.list_models()
        if base not in names:
            close = difflib.get_close_matches(base, names, n=3)
            hint = f" (close: {', '.join(close)})" if close else ""
            return f"torchvision has no model {base!r}{hint}"
        if tag is not None:
            enum = torchvision.models.get_model_weights(base)
            if tag not in enum.__members__:
                return (
                    f"torchvision model {base!r} has no weights {tag!r} "
                    f"(known: {', '.join(enum.__members__)})"
                )
    return None


def check_models(table, names, checkpoint_dir=None, *, require_checkpoints: bool = True) -> pd.DataFrame:
    """Check that every model in ``names`` can be loaded; raise one :class:`InputError` if not.

    Reports, together: unknown model names (with close matches), architectures
    their library does not know, and (with ``require_checkpoints``) trained models whose
    checkpoint file is missing (with the path looked at). Returns the table rows of ``names``.
    """
    table = _as_table(table)
    if isinstance(names, str):
        names = [names]
    where = table.attrs.get("path", "the model table")
    known = list(table["model"])
    problems = []
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            problems.append(f"unknown model {name!r}{hint}")
            continue
        row = table.loc[table["model"] == name].iloc[0]
        why = _architecture_problem(row["source"], row["architecture"])
        if why:
            problems.append(f"model {name!r}: {why}")
        if row["trained"] and require_checkpoints:
            path = resolve_checkpoint(row["checkpoint"], checkpoint_dir)
            if not path.is_file():
                problems.append(
                    f"model {name!r}: checkpoint file not found: {path} (download the weights "
                    "yourself and place them there; brainalign never downloads)"
                )
    if problems:
        raise InputError(
            f"Cannot load {len(problems)} model(s) listed in {where}:\n  "
            + "\n  ".join(problems)
            + f"\nKnown models: {', '.join(known)}."
        )
    return table.loc[table["model"].isin(list(names))]


def split_available(table, names, checkpoint_dir=None) -> tuple[list[str], dict[str, Path]]:
    """Split ``names`` into models that can be loaded now and trained models whose
    checkpoint file is missing (name -> path looked at), keeping the given order.

    Surveys use this to skip absent checkpoints with a message instead of failing;
    unknown names are left in the first list so that :func:`check_models` reports them.
    """
    table = _as_table(table)
    rows = table.set_index("model")
    available, missing = [], {}
    for name in names:
        if name in rows.index and rows.at[name, "trained"]:
            path = resolve_checkpoint(rows.at[name, "checkpoint"], checkpoint_dir)
            if not path.is_file():
                missing[name] = path
                continue
        available.append(name)
    return available, missing


# --------------------------------------------------------------------------- loading


def load_model(name: str, table, *, seed: int = 0, checkpoint_dir=None, device="cpu", checkpoint=None):
    """Build model ``name`` of ``table`` (DataFrame or CSV path) -> ``(model.eval(), transform)``.

    ``transform`` maps a PIL RGB image to a ``(3, H, W)`` float tensor. Untrained
    timm/torchvision models are initialised under ``torch.manual_seed(seed)``
    (the global RNG state is restored afterwards), and so are untrained brainalign
    networks (``cornet_s``) except ``gtnet``, whose weights are fixed by ``GTNET_SEED``.
    Trained models load their local checkpoint; nothing is downloaded. ``checkpoint``
    (a path) overrides the table's: weights trained by this workflow (e.g. the Cichy 2016
    variants) are loaded from the training rule's output.

    Loaded weights are checked: every tensor the checkpoint gives for a floating-point
    parameter or buffer must itself be floating point (an integer-cast state dict would be
    converted silently), and every floating parameter and buffer of the loaded model must
    be finite. Failures, an empty or unreadable checkpoint and a network file whose
    ``arch_kwargs`` the constructor does not accept raise :class:`InputError` naming the
    file.
    """
    table = _as_table(table)
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise InputError(f"model {name!r}: checkpoint {str(checkpoint)!r} does not exist.")
        check_models(table, [name], None, require_checkpoints=False)
        row = table.loc[table["model"] == name].iloc[0]
    else:
        check_models(table, [name], checkpoint_dir)
        row = table.loc[table["model"] == name].iloc[0]
        checkpoint = resolve_checkpoint(row["checkpoint"], checkpoint_dir) if row["trained"] else None
    loader = _LOADERS[row["source"]]
    model, transform = loader(row["architecture"], checkpoint=checkpoint, seed=int(seed))
    if checkpoint is not None:
        _check_finite_weights(model, checkpoint)
    return model.to(device).eval(), transform


def _check_weight_dtypes(model, state: dict, path) -> None:
    """InputError if a floating parameter/buffer of ``model`` gets a non-floating tensor."""
    own = model.state_dict()
    bad = [
        (k, v.dtype) for k, v in state.items()
        if k in own and own[k].is_floating_point() and isinstance(v, torch.Tensor)
        and not v.is_floating_point()
    ]
    if bad:
        key, dtype = bad[0]
        raise InputError(
            f"Checkpoint {str(path)!r} stores {len(bad)} floating-point parameter(s) or "
            f"buffer(s) as an integer type, e.g. {key!r} as {dtype}; expected a floating "
            "dtype (float32, float16 or bfloat16). Loading would round the weights silently."
        )


def _check_finite_weights(model, path) -> None:
    """InputError if a floating parameter or buffer of the loaded ``model`` is NaN or inf."""
    bad = []
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            n = int((~torch.isfinite(value)).sum())
            if n:
                bad.append((key, n))
    if bad:
        key, n = bad[0]
        raise InputError(
            f"Checkpoint {str(path)!r} gives non-finite weights: {n} NaN or inf value(s) in "
            f"{key} ({len(bad)} tensor(s) affected); expected finite weights (the file may "
            "come from a diverged training run or be corrupt)."
        )


def _load_brainalign(architecture, *, checkpoint, seed):
    constructor, transform_factory = BRAINALIGN_MODELS[architecture]()
    raw = _read_checkpoint_file(checkpoint) if checkpoint is not None else None
    arch_kwargs, transform_kwargs = _network_file_kwargs(raw, checkpoint, architecture)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _call_with_file_kwargs(constructor, arch_kwargs, checkpoint, architecture,
                                       "arch_kwargs")
    transform = _call_with_file_kwargs(transform_factory, transform_kwargs, checkpoint,
                                       architecture, "transform_kwargs")
    if checkpoint is None:
        return model, _without_normalize(transform)
    state = _state_dict_of(raw, checkpoint)
    _check_weight_dtypes(model, state, checkpoint)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(
            f"Checkpoint {str(checkpoint)!r} does not fit brainalign network {architecture!r}: {err}"
        ) from err
    return model, transform


def _call_with_file_kwargs(fn, kwargs: dict, path, architecture: str, what: str):
    """``fn(**kwargs)``; kwargs that ``fn`` does not accept -> InputError naming the file."""
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as err:
        params = inspect.signature(fn).parameters.values()
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise InputError(
            f"Checkpoint {str(path)!r} holds {what} {kwargs} that brainalign network "
            f"{architecture!r} does not accept ({err}); accepted: {', '.join(accepted)}. The "
            "file may come from another brainalign version or another network."
        ) from err
    return fn(**kwargs)


def _load_timm(architecture, *, checkpoint, seed):
    import timm
    from timm.data import create_transform, resolve_data_config

    if checkpoint is not None:
        # Read (and so validate) the file ourselves first: timm's loader raises bare errors
        # (e.g. an empty EOFError for a 0-byte file) and converts integer tensors silently.
        state = _read_state_dict(checkpoint)
        try:
            model = timm.create_model(
                architecture, pretrained=True, pretrained_cfg_overlay=dict(file=str(checkpoint))
            )
        except Exception as err:  # timm raises many types for a file that does not fit
            raise InputError(
                f"Checkpoint {str(checkpoint)!r} does not fit timm model {architecture!r}: "
                f"{type(err).__name__}: {err}"
            ) from err
        _check_weight_dtypes(model, state, checkpoint)
        del state
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = timm.create_model(architecture, pretrained=False)
    transform = create_transform(**resolve_data_config(model=model))
    if checkpoint is None:
        transform = _without_normalize(transform)
    return model, transform


def _load_torchvision(architecture, *, checkpoint, seed):
    import torchvision

    base, tag = _split_tag(architecture)
    if checkpoint is not None:
        model = torchvision.models.get_model(base, weights=None)
        state = _read_state_dict(checkpoint)
        _check_weight_dtypes(model, state, checkpoint)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise InputError(
                f"Checkpoint {str(checkpoint)!r} does not fit torchvision model {base!r}: {err}"
            ) from err
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = torchvision.models.get_model(base, weights=None)
    enum = torchvision.models.get_model_weights(base)
    weights = enum[tag] if tag is not None else enum.DEFAULT
    preset = weights.transforms()  # resize, crop, to tensor, normalise; no download
    if checkpoint is not None:
        return model, preset
    return model, _unnormalised_preset(preset)


_LOADERS = {"timm": _load_timm, "torchvision": _load_torchvision, "brainalign": _load_brainalign}


def _without_normalize(transform):
    """Drop ``Normalize`` steps from a torchvision ``Compose``."""
    from torchvision import transforms

    steps = [t for t in transform.transforms if not isinstance(t, transforms.Normalize)]
    return transforms.Compose(steps)


def _unnormalised_preset(preset):
    """A torchvision ``ImageClassification`` preset without its normalisation step."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(
                preset.resize_size, interpolation=preset.interpolation, antialias=preset.antialias
            ),
            transforms.CenterCrop(preset.crop_size),
            transforms.PILToTensor(),
            transforms.ConvertImageDtype(torch.float),
        ]
    )


def _read_state_dict(path: Path) -> dict:
    """A state dict from a .safetensors or torch file.

    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and a ``module.`` prefix on every key.
    """
    return _state_dict_of(_read_checkpoint_file(path), path)


def _read_checkpoint_file(path: Path):
    """The object stored in a .safetensors or torch file (tensors on the CPU)."""
    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(
            f"Checkpoint {str(path)!r} is empty (0 bytes); expected a state dict saved with "
            "torch.save or safetensors. The download or copy probably failed: fetch it again."
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, pickle with objects, ...
        raise InputError(
            f"Checkpoint {str(path)!r} could not be read as a state dict: "
            f"{type(err).__name__}: {err}"
        ) from err


def _network_file_kwargs(raw, path, architecture) -> tuple[dict, dict]:
    """Constructor and transform arguments of a brainalign network file; ({}, {}) for other files."""
    if not (isinstance(raw, dict) and raw.get("format") == NETWORK_FILE_FORMAT):
        return {}, {}
    if raw.get("architecture") != architecture:
        raise InputError(
            f"Checkpoint {str(path)!r} holds a brainalign {raw.get('architecture')!r} network, "
            f"not {architecture!r}."
        )
    return dict(raw.get("arch_kwargs") or {}), dict(raw.get("transform_kwargs") or {})


def _state_dict_of(state, path: Path) -> dict:
    """The state dict inside a loaded checkpoint object (see :func:`_read_state_dict`)."""
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                state = state[key]
                break
    if not isinstance(state, dict):
        raise InputError(
            f"Checkpoint {str(path)!r} holds a {type(state).__name__}, expected a state dict."
        )
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
