"""Streamed feature extraction: every layer of a network, projected batch by batch.

:func:`extract_features` runs a network over a stimulus set once and writes, for
every distinct computational submodule ("layer", SPEC section 1: every leaf
module that runs; a leaf called several times per forward pass gives one layer
per call), its sparse random projection (veRSA step 1) to an HDF5 file. Each
batch's output is flattened and projected *inside the forward hook*, so

- the full ``(n, p)`` feature matrix of a layer never exists (peak memory does
  not grow with layer width or stimulus count), and
- later in-place operations (``ReLU(inplace=True)``) cannot corrupt a layer's features.

Per stimulus and layer it also keeps the row mean and the L2 norm of the
centred row (enough to recover the projection of row-centred features, and
correlation-based statistics), and the raw rows of layers with at most
``raw_max_units`` units.

Layers whose output is identical to an earlier layer's (``Identity``,
``Dropout`` in eval mode, ``Flatten``) are dropped, keeping the first; equality
is decided exactly on (number of units, projected rows, row statistics, raw rows
when kept) -- the flattened features, so a ``Flatten`` after a feature map is a
duplicate too -- which identical outputs always share because layers of equal
width share one projection matrix. A SHA-256 digest of those bytes is kept per
layer and compared after every batch; a layer that has equalled an earlier one
so far writes nothing, and copies that layer's rows if it later diverges.

HDF5 schema (``extract_features`` writes it atomically)::

    /                       attrs: format ("brainalign-features"), format_version (1),
                                   model, n_stimuli, n_components, eps, srp_seed,
                                   srp_backend, srp_density ("auto"),
                                   layer_order (kept layer names, execution order),
                                   duplicate_layers, duplicate_of (dropped layer -> kept twin),
                                   stimulus_id_kind ("int" or "str")
    /stimulus_ids           (n,) utf-8 strings (int ids are stored as their decimal
                            strings; read_feature_ids turns them back into int64)
    /layers/<name>/         attrs: name, index (0..), depth (index / (n_kept - 1)),
                                   n_units (p), shape (per-stimulus output shape)
        srp                 (n, k) float32   X @ R.T
        row_mean            (n,)   float64   mean over the p units
        row_norm            (n,)   float64   ||x - row_mean||_2
        ones_proj           (k,)   float32   R @ 1: SRP(x - row_mean) = srp - row_mean * ones_proj
        raw                 (n, p) float32   only if p <= raw_max_units

``<name>`` is the module name from ``model.named_modules()`` (``"model"`` when the
network itself is a leaf); the j-th extra call (j >= 1) of the same module is ``<name>:<j>``.
"""

from __future__ import annotations

import hashlib
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm.auto import tqdm

from ..projection import BACKENDS, StreamingSRP, jl_min_dim
from ..utils import InputError, atomic_path, check_option

__all__ = [
    "extract_features",
    "list_layers",
    "match_layers",
    "read_feature_ids",
    "read_feature_attrs",
    "feature_layers",
    "read_layer",
]

FORMAT = "brainalign-features"
FORMAT_VERSION = 1
_ROOT_NAME = "model"


# --------------------------------------------------------------------------- layers


def list_layers(model: torch.nn.Module) -> list[str]:
    """Names of the leaf modules (no children) of ``model``, in ``named_modules()`` order."""
    return [
        name or _ROOT_NAME for name, m in model.named_modules() if next(m.children(), None) is None
    ]


def match_layers(model: torch.nn.Module, layers="all") -> list[str]:
    """Resolve a layer selection: ``"all"``, a list of leaf names or ``"re:<regex>"`` (re.search).

    Returns the selected leaf names in ``named_modules()`` order.
    """
    valid = list_layers(model)
    if isinstance(layers, str):
        if layers == "all":
            return valid
        if layers.startswith("re:"):
            try:
                pattern = re.compile(layers[3:])
            except re.error as err:
                raise InputError(f"Invalid layer regex {layers!r}: {err}") from err
            chosen = [n for n in valid if pattern.search(n)]
            if not chosen:
                raise InputError(
                    f"Layer regex {layers!r} matches no leaf module; valid layer names are "
                    f"{_listing(valid)}."
                )
            return chosen
        layers = [layers]
    layers = list(layers)
    unknown = [n for n in layers if n not in valid]
    if unknown:
        import difflib

        hints = []
        for n in unknown:
            close = difflib.get_close_matches(str(n), valid, n=3)
            hints.append(
                f"{n!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
            )
        raise InputError(
            f"Invalid value for the 'layers' parameter: unknown layer(s) {', '.join(hints)}. "
            f"Allowed values are 'all', 're:<regex>' or a list of {_listing(valid)}."
        )
    return [n for n in valid if n in set(layers)]


def _listing(names: Sequence[str], limit: int = 60) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _first_tensor(output):
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        for item in output:
            t = _first_tensor(item)
            if t is not None:
                return t
    return None


# --------------------------------------------------------------------------- extraction


def extract_features(
    model: torch.nn.Module,
    transform,
    images,
    ids,
    out_path,
    *,
    layers="all",
    batch_size: int = 32,
    n_components="auto",
    eps: float = 0.1,
    srp_seed: int = 0,
    srp_backend: str = "brainalign",
    raw_max_units: int = 4096,
    drop_duplicates: bool = True,
    device="cpu",
    progress: bool = True,
    model_name: str = "",
) -> list[str]:
    """Extract the projected features of every layer of ``model`` into the HDF5 file ``out_path``.

    Parameters
    ----------
    model : torch.nn.Module
        The network (put in eval mode; inference under ``torch.no_grad``).
    transform : callable
        PIL image -> ``(3, H, W)`` tensor (from :func:`brainalign.models.load_model`).
    images : sequence of PIL images
        Anything with ``len`` and integer indexing; read one batch at a time.
    ids : sequence of str or int, shape (n,)
        Stimulus ids, stored with the features.
    out_path : path
        The HDF5 file to write (schema in the module docstring).
    layers : "all", list of str, or "re:<regex>"
        Leaf modules to record (see :func:`match_layers`).
    batch_size : int
        Images per forward pass.
    n_components : "auto" or int
        SRP dimension; "auto" = ``johnson_lindenstrauss_min_dim(n, eps)``.
    eps, srp_seed, srp_backend
        See :class:`brainalign.projection.StreamingSRP`.
    raw_max_units : int
        Keep the raw rows of layers with at most this many units.
    drop_duplicates : bool
        Drop layers whose output equals an earlier layer's.
    device : str or torch.device
        Where the network runs; projection happens on the CPU.
    progress : bool
        Show a tqdm bar over batches on stderr.
    model_name : str
        Stored as the ``model`` attribute.

    Returns
    -------
    list of str
        The kept layers, in execution order.
    """
    n = len(images)
    ids = list(ids)
    if len(ids) != n:
        raise InputError(
            f"extract_features: {n} images but {len(ids)} stimulus ids; expected one id per image."
        )
    if n == 0:
        raise InputError("extract_features: no images given.")
    id_kind = (
        "int"
        if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids)
        else "str"
    )
    id_strings = [str(i) for i in ids]
    if len(set(id_strings)) != n:
        dup = next(s for s in id_strings if id_strings.count(s) > 1)
        raise InputError(
            f"extract_features: stimulus ids must be unique, {dup!r} occurs more than once."
        )
    if int(batch_size) < 1:
        raise InputError(f"extract_features: batch_size must be >= 1, got {batch_size!r}.")
    check_option("srp_backend", srp_backend, BACKENDS)
    if n_components == "auto":
        k = jl_min_dim(n, eps)
    elif isinstance(n_components, (int, np.integer)) and n_components >= 1:
        k = int(n_components)
    else:
        raise InputError(
            "extract_features: n_components must be 'auto' or a positive int, "
            f"got {n_components!r}."
        )

    wanted = set(match_layers(model, layers))
    srp = StreamingSRP(k, density="auto", seed=int(srp_seed), backend=srp_backend)
    model.to(device).eval()

    with atomic_path(out_path) as tmp, h5py.File(tmp, "w") as h5:
        h5.create_dataset(
            "stimulus_ids", data=np.array(id_strings, dtype=object), dtype=h5py.string_dtype()
        )
        writer = _LayerWriter(
            h5, n=n, srp=srp, raw_max_units=int(raw_max_units), drop_duplicates=drop_duplicates
        )
        handles = []
        try:
            for name, module in model.named_modules():
                name = name or _ROOT_NAME
                if name in wanted and next(module.children(), None) is None:
                    handles.append(module.register_forward_hook(writer.hook_for(name)))
            starts = range(0, n, int(batch_size))
            bar = tqdm(
                starts,
                desc=f"features {model_name}".strip(),
                unit="batch",
                file=sys.stderr,
                disable=not progress,
            )
            with torch.no_grad():
                for start in bar:
                    stop = min(start + int(batch_size), n)
                    x = _load_batch(images, transform, start, stop).to(device)
                    writer.begin_batch(start, stop - start)
                    model(x)
                    writer.end_batch()
        finally:
            for h in handles:
                h.remove()
        kept = writer.finish()
        explicit = not (isinstance(layers, str) and (layers == "all" or layers.startswith("re:")))
        never_ran = [name for name in sorted(wanted) if name not in writer.ran]
        if explicit and never_ran:
            warnings.warn(
                f"extract_features: requested layer(s) {never_ran} of model {model_name!r} never "
                "ran; they are not in the output.",
                stacklevel=2,
            )
        if not kept:
            raise InputError(
                f"extract_features: none of the selected layers of model {model_name!r} ran or "
                "gave a batch-major tensor output; nothing to write."
            )
        h5.attrs.update(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "model": str(model_name),
                "n_stimuli": n,
                "n_components": k,
                "eps": float(eps),
                "srp_seed": int(srp_seed),
                "srp_backend": srp_backend,
                "srp_density": "auto",
                "layer_order": _str_array(kept),
                "duplicate_layers": _str_array(writer.duplicates),
                "duplicate_of": _str_array(writer.duplicates.values()),
                "stimulus_id_kind": id_kind,
            }
        )
    return kept


def _load_batch(images, transform, start: int, stop: int) -> torch.Tensor:
    tensors = []
    for i in range(start, stop):
        img = images[i]
        if hasattr(img, "mode") and img.mode != "RGB":
            img = img.convert("RGB")
        t = transform(img)
        if not isinstance(t, torch.Tensor):
            raise InputError(
                f"The transform returned a {type(t).__name__} for image {i}; expected a tensor."
            )
        tensors.append(t)
    try:
        return torch.stack(tensors)
    except RuntimeError as err:
        raise InputError(
            f"Images {start}..{stop - 1} give tensors of different shapes after the transform "
            f"({sorted({tuple(t.shape) for t in tensors})}); the transform must crop to a "
            "fixed size."
        ) from err


class _Layer:
    __slots__ = ("name", "shape", "p", "hasher", "stored", "follows", "raw")

    def __init__(self, name, shape, raw_max_units):
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.p = int(np.prod(self.shape, dtype=np.int64))
        self.hasher = hashlib.sha256(
            str(self.p).encode()
        )  # width, not shape: Flatten is a duplicate
        self.stored = False
        self.follows = None  # the earlier layer it has equalled so far (never stored while set)
        self.raw = self.p <= raw_max_units


class _LayerWriter:
    """Receives hooked outputs, projects them and writes them (or skips exact duplicates)."""

    def __init__(self, h5, *, n, srp, raw_max_units, drop_duplicates):
        self.h5 = h5
        self.n = n
        self.srp = srp
        self.raw_max_units = raw_max_units
        self.drop_duplicates = drop_duplicates
        self.layers: dict[str, _Layer] = {}  # insertion order = execution order (first batch)
        self.first_batch = True
        self.duplicates: dict[str, str] = {}
        self.skipped: set[str] = set()
        self.ran: set[str] = set()  # module names whose hook fired
        self.group = h5.create_group("layers")

    def hook_for(self, name):
        def hook(module, inputs, output):
            count = self.calls.get(name, 0)
            self.calls[name] = count + 1
            self.ran.add(name)
            self._record(name if count == 0 else f"{name}:{count}", output)

        return hook

    def begin_batch(self, start, size):
        self.start, self.size = start, size
        self.calls: dict[str, int] = {}
        self.seen: list[str] = []
        self.digests: dict[bytes, str] = {}

    def end_batch(self):
        if not self.first_batch and self.seen != [k for k in self.layers]:
            raise InputError(
                f"The layers that ran for stimuli {self.start}..{self.start + self.size - 1} "
                "differ from those of the first batch (data-dependent control flow); streamed "
                "extraction needs the same layers to run for every batch."
            )
        self.first_batch = False

    def _record(self, key, output):
        t = _first_tensor(output)
        B = self.size
        if t is None or t.ndim == 0 or t.shape[0] != B or t.numel() == 0:
            if key not in self.skipped:
                self.skipped.add(key)
                warnings.warn(
                    f"Layer {key!r}: no batch-major tensor output; it is not recorded.",
                    stacklevel=2,
                )
            return
        layer = self.layers.get(key)
        if layer is None:
            if not self.first_batch:
                raise InputError(
                    f"Layer {key!r} ran only from stimulus {self.start} on; "
                    "streamed extraction needs the same layers in every batch."
                )
            layer = self.layers[key] = _Layer(key, t.shape[1:], self.raw_max_units)
        elif tuple(t.shape[1:]) != layer.shape:
            raise InputError(
                f"Layer {key!r} changed its output shape from {layer.shape} to "
                f"{tuple(t.shape[1:])} at stimulus {self.start}; images must share one size."
            )
        self.seen.append(key)

        flat = t.detach().reshape(B, -1).to("cpu", torch.float32)
        srp_rows = self.srp.transform(flat)  # (B, k) float32, computed before any in-place op
        x = flat.numpy()
        row_mean = np.empty(B)
        row_norm = np.empty(B)
        for b in range(B):  # one row at a time: float64 temporaries stay small
            r = x[b].astype(np.float64)
            row_mean[b] = r.mean()
            r -= row_mean[b]
            row_norm[b] = np.sqrt(np.sum(r * r))
        raw = np.array(x, dtype=np.float32, copy=True) if layer.raw else None

        leader = key
        if self.drop_duplicates:
            for arr in (srp_rows, row_mean, row_norm) + ((raw,) if raw is not None else ()):
                layer.hasher.update(arr.tobytes())
            leader = self.digests.setdefault(layer.hasher.digest(), key)
        if leader != key:
            layer.follows = leader
            return
        if not layer.stored:
            self._create(layer)
        self._write(layer, srp_rows, row_mean, row_norm, raw)

    def _create(self, layer: _Layer):
        g = self.group.create_group(layer.name)
        g.attrs.update(
            {"name": layer.name, "n_units": layer.p, "shape": np.array(layer.shape, dtype=np.int64)}
        )
        k = self.srp.n_components
        g.create_dataset("srp", shape=(self.n, k), dtype=np.float32)
        g.create_dataset("row_mean", shape=(self.n,), dtype=np.float64)
        g.create_dataset("row_norm", shape=(self.n,), dtype=np.float64)
        g.create_dataset("ones_proj", data=self.srp.ones_projection(layer.p))
        if layer.raw:
            g.create_dataset("raw", shape=(self.n, layer.p), dtype=np.float32)
        if layer.follows is not None and self.start > 0:
            # It equalled `follows` on every earlier batch: those rows are that layer's rows.
            src = self.group[layer.follows]
            for ds in ("srp", "row_mean", "row_norm", "raw"):
                if ds in g:
                    g[ds][: self.start] = src[ds][: self.start]
        layer.follows = None
        layer.stored = True

    def _write(self, layer, srp_rows, row_mean, row_norm, raw):
        g = self.group[layer.name]
        rows = slice(self.start, self.start + self.size)
        g["srp"][rows] = srp_rows
        g["row_mean"][rows] = row_mean
        g["row_norm"][rows] = row_norm
        if raw is not None:
            g["raw"][rows] = raw

    def finish(self) -> list[str]:
        kept = [name for name, layer in self.layers.items() if layer.stored]
        self.duplicates = {
            name: layer.follows for name, layer in self.layers.items() if not layer.stored
        }
        last = max(len(kept) - 1, 1)
        for index, name in enumerate(kept):
            self.group[name].attrs.update({"index": index, "depth": index / last})
        return kept


# --------------------------------------------------------------------------- readers


def _open(path) -> h5py.File:
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"Feature file {str(path)!r} not found; expected an HDF5 file written by "
            "brainalign.models.extract_features."
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"Feature file {str(path)!r} is not a readable HDF5 file: {err}") from err
    if h5.attrs.get("format") != FORMAT or "layers" not in h5 or "stimulus_ids" not in h5:
        h5.close()
        raise InputError(
            f"Feature file {str(path)!r} is not a brainalign feature file "
            f"(expected root attribute format={FORMAT!r}, /layers and /stimulus_ids)."
        )
    return h5


def _as_list(value) -> list[str]:
    """A string-array attribute as a list of str."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value)]


def _str_array(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=h5py.string_dtype())


def read_feature_attrs(path) -> dict:
    """Root attributes of a feature file (``layer_order`` etc. as Python lists)."""
    with _open(path) as h5:
        attrs = {}
        for key, value in h5.attrs.items():
            if key in ("layer_order", "duplicate_layers", "duplicate_of"):
                attrs[key] = _as_list(value)
            elif isinstance(value, np.generic):
                attrs[key] = value.item()
            else:
                attrs[key] = value
        return attrs


def read_feature_ids(path) -> np.ndarray:
    """The stimulus ids of a feature file: int64 if they were ints, else str."""
    with _open(path) as h5:
        ids = h5["stimulus_ids"].asstr()[()]
        kind = h5.attrs.get("stimulus_id_kind", "str")
    ids = np.asarray(ids, dtype=str)
    return ids.astype(np.int64) if kind == "int" else ids


def feature_layers(path) -> list[tuple[str, float, int]]:
    """``(name, depth, n_units)`` of every layer of a feature file, in execution order."""
    with _open(path) as h5:
        out = []
        for name in _as_list(h5.attrs["layer_order"]):
            a = h5["layers"][name].attrs
            out.append((name, float(a["depth"]), int(a["n_units"])))
        return out


def read_layer(path, name: str) -> dict:
    """One layer of a feature file: ``srp, row_mean, row_norm, ones_proj, raw (or None), depth,
    n_units, index, shape``."""
    with _open(path) as h5:
        layers = _as_list(h5.attrs["layer_order"])
        if name not in layers:
            dropped = dict(
                zip(
                    _as_list(h5.attrs.get("duplicate_layers", [])),
                    _as_list(h5.attrs.get("duplicate_of", [])),
                    strict=False,
                )
            )
            extra = (
                f" It was dropped as a duplicate of {dropped[name]!r}." if name in dropped else ""
            )
            raise InputError(
                f"Feature file {str(path)!r} has no layer {name!r}.{extra} "
                f"Layers: {_listing(layers)}."
            )
        g = h5["layers"][name]
        return {
            "srp": g["srp"][()],
            "row_mean": g["row_mean"][()],
            "row_norm": g["row_norm"][()],
            "ones_proj": g["ones_proj"][()],
            "raw": g["raw"][()] if "raw" in g else None,
            "depth": float(g.attrs["depth"]),
            "n_units": int(g.attrs["n_units"]),
            "index": int(g.attrs["index"]),
            "shape": tuple(int(s) for s in g.attrs["shape"]),
        }
