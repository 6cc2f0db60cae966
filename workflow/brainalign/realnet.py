"""ReAlnet-fMRI (Lu & Wang 2025, SPEC section 4): CORnet-S trained to also predict human fMRI.

Model (:class:`ReAlnet`)
    A CORnet-S ``backbone`` plus an alignment head: per visual area an encoder
    ``Linear(flattened area output -> hidden) + ReLU``; the encodings are concatenated
    (4 x 128 = 512) and ``Linear(512 -> n_outputs)`` predicts the subject's fMRI (PCA-1024 of
    the visual-cortex voxels, see :func:`brainalign.io.bdata.pca_visual_cortex`). The flattened
    sizes are read from one dummy forward pass at ``input_size`` (224 px: V1 200704, V2 100352,
    V4 50176, IT 25088), never hard-coded. Area outputs are taken with forward hooks on the
    area modules (their final output, after all recurrent steps).

Loss (:func:`realnet_loss`)
    ``CE(logits, pseudo_labels) + beta * (MSE(fmri_pred, fmri) + contrastive)`` with
    ``contrastive = 1 - mean r(positive pairs) + mean r(negative pairs)``: r between each
    prediction and its own fMRI pattern (positive, B pairs) and every other image's pattern
    (negative, B(B-1) pairs), computed across the n_outputs features. ``r`` is Spearman (the
    paper's text; made differentiable with the soft rank of :func:`soft_rank`) or Pearson (the
    published code). ``beta = 0`` is the paper's Control model: classification loss only.

Training (:func:`train_realnet`)
    Adam, pseudo-labels = argmax of a frozen copy of the pretrained CORnet-S (:func:`make_teacher`,
    :func:`teacher_pseudo_labels`; eval mode, so computing them once equals computing them per
    batch), seeded shuffling, an atomic checkpoint after every epoch and exact resume.

Evaluation
    :func:`layer_rdms` (1 - Pearson RDMs of the area outputs), :func:`rsa_max_over_layers`
    (Spearman with a brain RDM, maximum over layers), :func:`improvement_ratio`,
    :func:`time_resolved_rsa` (one Spearman per EEG time point) and
    :func:`dimension_partial_spearman` (THINGS object dimensions: partial Spearman between a
    layer RDM and each dimension's RDM controlling for the other dimensions).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import nn

from brainalign.models.cornet import CORNET_S_AREAS, CORNET_S_INPUT_SIZE
from brainalign.rdm import compare_rdms, compute_rdm, n_pairs
from brainalign.training import (
    capture_rng_state,
    check_label_range,
    check_resume,
    forked_rng,
    read_checkpoint,
    restore_rng_state,
    save_checkpoint,
    write_loss_log,
)
from brainalign.utils import InputError, check_finite, check_option

__all__ = [
    "ReAlnet",
    "RealnetLoss",
    "realnet_loss",
    "contrastive_term",
    "pairwise_correlations",
    "soft_rank",
    "make_teacher",
    "teacher_pseudo_labels",
    "train_realnet",
    "read_realnet_checkpoint",
    "layer_rdms",
    "rsa_max_over_layers",
    "improvement_ratio",
    "time_resolved_rsa",
    "dimension_rdms",
    "dimension_partial_spearman",
    "CONTRASTIVE_METHODS",
    "LOG_COLUMNS",
]

CONTRASTIVE_METHODS = ("spearman", "pearson")
PARTIAL_METHODS = ("spearman", "pearson")
CHECKPOINT_FORMAT = "brainalign-realnet-checkpoint"
CHECKPOINT_VERSION = 1
#: Columns of the per-epoch training log (tab-separated).
LOG_COLUMNS = ("epoch", "n_samples", "n_batches", "loss_total", "loss_ce", "loss_mse",
               "loss_contrastive", "seconds")
_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


class _Capture:
    """Where the area hooks put their outputs while :meth:`ReAlnet.forward` runs.

    Held by the model and by each hook (not the model itself), so a deep copy of the
    backbone alone (the teacher) does not drag the alignment head along.
    """

    def __init__(self):
        self.active = False
        self.outputs: dict[str, torch.Tensor] = {}


class _AreaHook:
    def __init__(self, capture: _Capture, area: str):
        self.capture = capture
        self.area = area

    def __call__(self, module, inputs, output):
        if self.capture.active:
            self.capture.outputs[self.area] = output


class ReAlnet(nn.Module):
    """CORnet-S with the ReAlnet-fMRI alignment head.

    Parameters
    ----------
    backbone : nn.Module
        Usually :func:`brainalign.models.cornet.cornet_s` with ImageNet weights. It must return
        class logits and have a submodule per entry of ``areas`` (``get_submodule`` names).
    n_outputs : int
        Predicted fMRI features (1024 PCA components in the paper).
    hidden : int
        Units of each area encoder (128).
    areas : sequence of str
        The areas feeding the head, in concatenation order.
    input_size : int
        Image side (px) the head is built for; the flattened area sizes come from one forward
        pass of a zero image of this size through the backbone in eval mode (BatchNorm running
        statistics are not touched). Other sizes then fail with a message naming this one.
    seed : int, optional
        Seeds the head's initialisation without touching torch's global RNG. None: the head
        is drawn from the global RNG (seed it with ``torch.manual_seed`` for reproducibility).

    Attributes
    ----------
    area_sizes : dict area -> int, flattened output size per image at ``input_size``.
    encoders : nn.ModuleDict, one ``Sequential(Linear, ReLU)`` per area (keys: the area names
        with ``.`` replaced by ``_``).
    fmri_head : nn.Linear (hidden * n_areas -> n_outputs).

    ``forward(x)`` returns ``(logits, fmri_pred, area_features)``; ``area_features`` maps each
    area to its (unflattened) output tensor.
    """

    def __init__(
        self,
        backbone: nn.Module,
        n_outputs: int = 1024,
        hidden: int = 128,
        areas: Sequence[str] = CORNET_S_AREAS,
        *,
        input_size: int = CORNET_S_INPUT_SIZE,
        seed: int | None = None,
    ):
        super().__init__()
        areas = (areas,) if isinstance(areas, str) else tuple(areas)
        _check_positive_int("n_outputs", n_outputs)
        _check_positive_int("hidden", hidden)
        _check_positive_int("input_size", input_size)
        if not areas:
            raise InputError("ReAlnet: 'areas' is empty; give at least one, e.g. ('V1', 'V2', 'V4', 'IT').")
        if len(set(areas)) != len(areas):
            raise InputError(f"ReAlnet: 'areas' has duplicates: {areas}.")
        keys = [a.replace(".", "_") for a in areas]
        if len(set(keys)) != len(keys):
            raise InputError(f"ReAlnet: areas {areas} collide once '.' is replaced by '_'.")
        modules = [_area_module(backbone, a) for a in areas]

        self.backbone = backbone
        self.areas = areas
        self.n_outputs = int(n_outputs)
        self.hidden = int(hidden)
        self.input_size = int(input_size)
        self._capture = _Capture()
        self._hook_handles = [m.register_forward_hook(_AreaHook(self._capture, a))
                              for m, a in zip(modules, areas, strict=True)]
        self.area_sizes = self._infer_area_sizes()

        with _seeded(seed):
            self.encoders = nn.ModuleDict(
                {k: nn.Sequential(nn.Linear(self.area_sizes[a], self.hidden), nn.ReLU())
                 for k, a in zip(keys, areas, strict=True)}
            )
            self.fmri_head = nn.Linear(self.hidden * len(areas), self.n_outputs)
        self._keys = dict(zip(areas, keys, strict=True))
        ref = next(backbone.parameters(), None)
        if ref is not None:  # keep the head next to the backbone
            self.encoders.to(device=ref.device, dtype=ref.dtype)
            self.fmri_head.to(device=ref.device, dtype=ref.dtype)

    def _run_backbone(self, x: torch.Tensor):
        cap = self._capture
        cap.outputs, cap.active = {}, True
        try:
            logits = self.backbone(x)
        finally:
            cap.active = False
            feats, cap.outputs = cap.outputs, {}
        missing = [a for a in self.areas if a not in feats]
        if missing:
            raise RuntimeError(f"ReAlnet: areas {missing} did not run in the backbone's forward pass.")
        return logits, {a: feats[a] for a in self.areas}

    def _infer_area_sizes(self) -> dict[str, int]:
        ref = next(self.backbone.parameters(), None)
        device = ref.device if ref is not None else torch.device("cpu")
        dtype = ref.dtype if ref is not None else torch.float32
        was_training = self.backbone.training
        self.backbone.eval()
        try:
            with torch.no_grad():
                x = torch.zeros(1, 3, self.input_size, self.input_size, device=device, dtype=dtype)
                _, feats = self._run_backbone(x)
        except RuntimeError as err:
            raise InputError(
                f"ReAlnet: the backbone failed on a {self.input_size} px image ({err}); "
                "choose an input_size the backbone supports."
            ) from err
        finally:
            self.backbone.train(was_training)
        sizes = {}
        for a, out in feats.items():
            if not isinstance(out, torch.Tensor):
                raise InputError(f"ReAlnet: area {a!r} returns a {type(out).__name__}, not a tensor.")
            sizes[a] = int(out[0].numel())
        return sizes

    def forward(self, x: torch.Tensor):
        logits, feats = self._run_backbone(x)
        encoded = []
        for a in self.areas:
            flat = feats[a].flatten(1)
            if flat.shape[1] != self.area_sizes[a]:
                raise InputError(
                    f"ReAlnet: area {a!r} gives {flat.shape[1]} units per image for inputs of "
                    f"{tuple(x.shape[-2:])} px, but the head was built for {self.input_size} px "
                    f"({self.area_sizes[a]} units); resize the images or build with "
                    f"input_size={x.shape[-1]}."
                )
            encoded.append(self.encoders[self._keys[a]](flat))
        fmri_pred = self.fmri_head(torch.cat(encoded, dim=1))
        return logits, fmri_pred, feats

    def extra_repr(self) -> str:
        sizes = ", ".join(f"{a}={s}" for a, s in self.area_sizes.items())
        return (f"areas: {sizes}; hidden={self.hidden}, n_outputs={self.n_outputs}, "
                f"input_size={self.input_size}")


def _area_module(net: nn.Module, area: str) -> nn.Module:
    try:
        return net.get_submodule(area)
    except AttributeError:
        children = [n for n, _ in net.named_children()]
        raise InputError(
            f"The network has no submodule {area!r}; its children are {children}."
        ) from None


class _seeded:
    """Context: torch's CPU RNG seeded with ``seed`` inside, the global state restored after."""

    def __init__(self, seed):
        self.seed = seed

    def __enter__(self):
        if self.seed is not None:
            self._fork = torch.random.fork_rng(devices=[])
            self._fork.__enter__()
            torch.manual_seed(int(self.seed))

    def __exit__(self, *exc):
        if self.seed is not None:
            return self._fork.__exit__(*exc)
        return False


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name!r} must be a positive integer, got {value!r}.")


# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------


class RealnetLoss(NamedTuple):
    """The loss and its parts; ``total`` carries the graph, the parts are detached 0-d tensors."""

    total: torch.Tensor
    ce: torch.Tensor
    mse: torch.Tensor
    contrastive: torch.Tensor


def soft_rank(x: torch.Tensor, tau: float = 0.1, *, standardize: bool = True) -> torch.Tensor:
    """Differentiable ranks along the last axis (1-based; ties share the average rank).

    ``rank_i = 1/2 + sum_j sigmoid((z_i - z_j) / tau)`` over all j (the j = i term adds 1/2),
    with ``z`` the row standardised to mean 0 and standard deviation 1 when ``standardize``
    (ranks do not change, and ``tau`` is then in units of the row's standard deviation).
    As ``tau -> 0`` each sigmoid becomes the step function (1/2 at 0), so the soft rank tends
    to the average rank of ``scipy.stats.rankdata``. Larger ``tau`` gives smoother ranks and
    denser gradients. Cost: O(d^2) memory per row (a (..., d, d) tensor).
    """
    if not tau > 0 or not math.isfinite(tau):
        raise ValueError(f"soft_rank: tau must be a positive finite number, got {tau!r}.")
    z = x
    if standardize:
        z = x - x.mean(dim=-1, keepdim=True)
        z = z / torch.sqrt(z.pow(2).mean(dim=-1, keepdim=True) + _EPS)
    return 0.5 + torch.sigmoid((z.unsqueeze(-1) - z.unsqueeze(-2)) / tau).sum(dim=-1)


def _hard_rank(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based) along the last axis, the ``tau -> 0`` limit of :func:`soft_rank`."""
    diff = x.unsqueeze(-1) - x.unsqueeze(-2)
    return 0.5 + (diff > 0).sum(-1).to(x.dtype) + 0.5 * (diff == 0).sum(-1).to(x.dtype)


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    xc = x - x.mean(dim=-1, keepdim=True)
    return xc / torch.sqrt(xc.pow(2).sum(dim=-1, keepdim=True) + _EPS)


def pairwise_correlations(pred: torch.Tensor, target: torch.Tensor, method: str = "spearman",
                          tau: float = 0.1) -> torch.Tensor:
    """(B, B) matrix of r(pred_i, target_j) across features; differentiable in ``pred``.

    ``method="pearson"``: Pearson r. ``"spearman"``: Pearson r of ranks: soft ranks
    (:func:`soft_rank`, temperature ``tau``) for ``pred`` always (so a value logged under
    ``no_grad`` equals the trained one), exact average ranks for ``target`` unless it requires
    grad. Constant rows give r = 0.
    """
    check_option("method", method, CONTRASTIVE_METHODS)
    if method == "spearman":
        pred = soft_rank(pred, tau)
        target = soft_rank(target, tau) if target.requires_grad else _hard_rank(target)
    return _unit_rows(pred) @ _unit_rows(target).T


def contrastive_term(pred: torch.Tensor, target: torch.Tensor, method: str = "spearman",
                     tau: float = 0.1) -> torch.Tensor:
    """``1 - mean r(pred_i, target_i) + mean_{i != j} r(pred_i, target_j)`` over the batch.

    A batch of one has no negative pair; its negative term is 0.
    """
    r = pairwise_correlations(pred, target, method, tau)
    b = r.shape[0]
    pos = torch.diagonal(r).mean()
    if b < 2:
        return 1.0 - pos
    neg = (r.sum() - torch.diagonal(r).sum()) / (b * (b - 1))
    return 1.0 - pos + neg


def realnet_loss(
    logits: torch.Tensor,
    pseudo_labels: torch.Tensor,
    fmri_pred: torch.Tensor,
    fmri: torch.Tensor,
    beta: float,
    contrastive: str = "spearman",
    *,
    tau: float = 0.1,
) -> RealnetLoss:
    """ReAlnet-fMRI loss ``CE + beta * (MSE + contrastive)`` (module docstring).

    Parameters
    ----------
    logits : (B, n_classes); pseudo_labels : (B,) int64 class indices
    fmri_pred, fmri : (B, n_outputs)
    beta : float >= 0
        0 gives the Control model: the total is the cross-entropy alone and no gradient
        reaches the fMRI head (MSE and contrastive are still computed, without graph, for logs).
    contrastive : {"spearman", "pearson"}
    tau : float
        Soft-rank temperature for ``"spearman"`` (see :func:`soft_rank`).

    Returns
    -------
    RealnetLoss(total, ce, mse, contrastive)
    """
    check_option("contrastive", contrastive, CONTRASTIVE_METHODS)
    beta = float(beta)
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"realnet_loss: beta must be a finite number >= 0, got {beta!r}.")
    if fmri_pred.shape != fmri.shape or fmri_pred.ndim != 2:
        raise ValueError(
            f"realnet_loss: fmri_pred {tuple(fmri_pred.shape)} and fmri {tuple(fmri.shape)} must both "
            "be (batch, n_outputs)."
        )
    if logits.shape[0] != fmri.shape[0] or pseudo_labels.shape != (logits.shape[0],):
        raise ValueError(
            f"realnet_loss: batch sizes differ: logits {tuple(logits.shape)}, pseudo_labels "
            f"{tuple(pseudo_labels.shape)}, fmri {tuple(fmri.shape)}."
        )
    fmri = fmri.to(fmri_pred.dtype)
    ce = F.cross_entropy(logits, pseudo_labels)
    if beta == 0:
        with torch.no_grad():
            mse = F.mse_loss(fmri_pred, fmri)
            con = contrastive_term(fmri_pred, fmri, contrastive, tau)
        total = ce
    else:
        mse = F.mse_loss(fmri_pred, fmri)
        con = contrastive_term(fmri_pred, fmri, contrastive, tau)
        total = ce + beta * (mse + con)
    return RealnetLoss(total, ce.detach(), mse.detach(), con.detach())


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


class _ImageSource:
    """Images by index from a (N, 3, H, W) array/tensor or a map-style dataset."""

    def __init__(self, images, what: str = "images"):
        if isinstance(images, (torch.Tensor, np.ndarray)):
            t = torch.as_tensor(images)
            if t.ndim != 4 or t.shape[1] != 3:
                raise InputError(f"{what}: expected an array (N, 3, H, W), got shape {tuple(t.shape)}.")
            if not t.is_floating_point():
                raise InputError(f"{what}: expected float images (normalised), got dtype {t.dtype}.")
            self._tensor, self._dataset = t, None
            self.n = int(t.shape[0])
        elif hasattr(images, "__len__") and hasattr(images, "__getitem__"):
            self._tensor, self._dataset = None, images
            self.n = len(images)
        else:
            raise InputError(
                f"{what}: expected an array (N, 3, H, W) or a dataset (len and indexing, items are "
                f"(3, H, W) tensors or tuples starting with one), got {type(images).__name__}."
            )
        if self.n < 1:
            raise InputError(f"{what}: no images.")

    def __len__(self):
        return self.n

    def batch(self, idx: np.ndarray, dtype=torch.float32) -> torch.Tensor:
        if self._tensor is not None:
            return self._tensor[torch.as_tensor(idx, dtype=torch.long)].to(dtype)
        items = []
        for i in idx:
            item = self._dataset[int(i)]
            if isinstance(item, (tuple, list)):
                item = item[0]
            items.append(torch.as_tensor(item))
        return torch.stack(items).to(dtype)


def make_teacher(backbone: nn.Module) -> nn.Module:
    """A frozen copy of ``backbone`` (eval mode, no gradients) for the pseudo-labels.

    Call it on the pretrained network before training changes it.
    """
    if isinstance(backbone, ReAlnet):
        backbone = backbone.backbone
    teacher = copy.deepcopy(backbone)
    teacher.eval()
    teacher.requires_grad_(False)
    return teacher


def _logits_of(out):
    return out[0] if isinstance(out, (tuple, list)) else out


@torch.no_grad()
def teacher_pseudo_labels(teacher: nn.Module, images, *, batch_size: int = 64, device="cpu",
                          progress: bool = False) -> np.ndarray:
    """Argmax class of ``teacher``'s logits for every image, int64 (N,).

    The teacher runs in eval mode (its mode is restored afterwards) and is moved to ``device``.
    """
    _check_positive_int("batch_size", batch_size)
    source = images if isinstance(images, _ImageSource) else _ImageSource(images)
    device = torch.device(device)
    teacher.to(device)
    was_training = teacher.training
    teacher.eval()
    out = np.empty(len(source), dtype=np.int64)
    starts = range(0, len(source), batch_size)
    try:
        for s in _progress(starts, progress, "pseudo-labels"):
            idx = np.arange(s, min(s + batch_size, len(source)))
            logits = _logits_of(teacher(source.batch(idx).to(device)))
            out[idx] = logits.argmax(dim=1).cpu().numpy()
    finally:
        teacher.train(was_training)
    return out


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)


def read_realnet_checkpoint(path) -> dict:
    """Load a :func:`train_realnet` checkpoint (CPU tensors); :class:`InputError` if not one.

    Keys: ``format``, ``format_version``, ``epoch`` (completed epochs), ``model``
    (``ReAlnet.state_dict()``; the CORnet-S part under ``backbone.``), ``optimizer``, ``rng``
    (``torch``, ``cuda`` or None, ``numpy``), ``history`` (per-epoch dicts of
    :data:`LOG_COLUMNS`), ``pseudo_labels`` (int64 tensor), ``config``.
    """
    return read_checkpoint(path, format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                           what="ReAlnet training checkpoint")


def train_realnet(
    model: ReAlnet,
    frozen_teacher: nn.Module | None,
    images_train,
    fmri_train,
    *,
    beta: float,
    epochs: int,
    batch_size: int = 16,
    lr: float = 2e-5,
    contrastive: str = "spearman",
    tau: float = 0.1,
    seed: int,
    checkpoint_path,
    log_path=None,
    device="cpu",
    progress: bool = True,
    pseudo_labels=None,
    drop_last: bool = False,
) -> list[dict]:
    """Train ``model`` (in place) with the ReAlnet-fMRI loss; resumable.

    Parameters
    ----------
    model : ReAlnet
        Moved to ``device``; left in training mode.
    frozen_teacher : nn.Module or None
        The pretrained CORnet-S, frozen (:func:`make_teacher`); pseudo-labels are the argmax of
        its logits in eval mode, computed once before the first epoch and stored in the
        checkpoint. May be None when ``pseudo_labels`` is given or the checkpoint holds them.
        Must not share parameters with ``model``.
    images_train : array or tensor (N, 3, H, W), or a map-style dataset of (3, H, W) tensors
        (items may be tuples whose first element is the image). Already normalised.
    fmri_train : array (N, n_outputs)
        Row i is the fMRI (e.g. PCA components) of image i.
    beta : float >= 0
        Weight of the generation loss; 0 trains the Control model.
    epochs : int
        Total epochs (a resumed run counts the checkpoint's epochs).
    batch_size, lr : the paper's 16 and 2e-5 (Adam).
    contrastive : {"spearman", "pearson"}; tau : soft-rank temperature (see :func:`soft_rank`).
    seed : int
        Seeds the shuffling (numpy) and torch's RNG inside training (forked: the caller's
        global torch RNG is left untouched).
    checkpoint_path : path
        Written atomically after every epoch: model, optimizer, completed epochs, RNG states,
        loss history, pseudo-labels, config (:func:`read_realnet_checkpoint`). If it exists,
        training resumes after its last completed epoch and ends with the same weights as an
        uninterrupted run (same device and threads); its config (beta, lr, batch size, ...,
        number of samples) must match the call's.
    log_path : path, optional
        Tab-separated per-epoch means (weighted by batch size) of the losses
        (:data:`LOG_COLUMNS`), rewritten atomically after every epoch.
    device : str or torch.device
    progress : bool
        A tqdm bar per epoch.
    pseudo_labels : array (N,) of int, optional
        Precomputed teacher labels (skips the teacher).
    drop_last : bool
        Drop the last incomplete batch of every epoch.

    Returns
    -------
    history : list of dict, one per completed epoch (all epochs, including resumed ones).

    Raises
    ------
    InputError
        Mismatched shapes, non-finite fMRI, out-of-range labels, a teacher sharing parameters
        with the model, a checkpoint from another configuration or with more epochs than asked.
    FloatingPointError
        The loss becomes non-finite (names the epoch and batch).
    """
    if not isinstance(model, ReAlnet):
        raise InputError(f"train_realnet: model must be a ReAlnet, got {type(model).__name__}.")
    check_option("contrastive", contrastive, CONTRASTIVE_METHODS)
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"train_realnet: seed must be an int, got {seed!r}.")
    beta, lr, tau = float(beta), float(lr), float(tau)
    if not math.isfinite(beta) or beta < 0:
        raise InputError(f"train_realnet: beta must be a finite number >= 0, got {beta!r}.")
    if not math.isfinite(lr) or lr <= 0:
        raise InputError(f"train_realnet: lr must be a positive number, got {lr!r}.")
    if not math.isfinite(tau) or tau <= 0:
        raise InputError(f"train_realnet: tau must be a positive number, got {tau!r}.")

    source = _ImageSource(images_train, "images_train")
    n = len(source)
    fmri = np.asarray(fmri_train)
    if fmri.ndim != 2 or fmri.shape != (n, model.n_outputs):
        raise InputError(
            f"train_realnet: fmri_train has shape {fmri.shape}; expected ({n}, {model.n_outputs}) "
            f"(one row per image, the model's n_outputs columns)."
        )
    check_finite(fmri, "train_realnet: fmri_train")
    if drop_last and n < batch_size:
        raise InputError(
            f"train_realnet: drop_last with {n} images < batch_size {batch_size} leaves no batch."
        )
    config = {
        "beta": beta, "lr": lr, "batch_size": int(batch_size), "contrastive": contrastive, "tau": tau,
        "seed": int(seed), "n_samples": n, "drop_last": bool(drop_last),
        "n_outputs": model.n_outputs, "areas": list(model.areas),
    }
    checkpoint_path = Path(checkpoint_path)
    ckpt = read_realnet_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
    if ckpt is not None:
        check_resume(ckpt, config, done=int(ckpt.get("epoch", 0)), total=epochs, unit="epochs",
                     path=checkpoint_path, caller="train_realnet")

    # Pseudo-labels: checkpoint > given > teacher.
    n_classes = None
    if ckpt is not None and ckpt.get("pseudo_labels") is not None:
        labels = ckpt["pseudo_labels"].numpy().astype(np.int64)
        if pseudo_labels is not None and not np.array_equal(np.asarray(pseudo_labels), labels):
            raise InputError(
                "train_realnet: the given pseudo_labels differ from those stored in "
                f"{str(checkpoint_path)!r}."
            )
    elif pseudo_labels is not None:
        labels = np.asarray(pseudo_labels)
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise InputError(
                f"train_realnet: pseudo_labels must be {n} integers, got shape {labels.shape} "
                f"dtype {labels.dtype}."
            )
        labels = labels.astype(np.int64)
    else:
        if frozen_teacher is None:
            raise InputError("train_realnet: give frozen_teacher (see make_teacher) or pseudo_labels.")
        own = {id(p) for p in model.parameters()}
        if any(id(p) in own for p in frozen_teacher.parameters()):
            raise InputError(
                "train_realnet: frozen_teacher shares parameters with the model being trained; "
                "pass make_teacher(pretrained_backbone), a separate frozen copy."
            )
        labels = teacher_pseudo_labels(frozen_teacher, source, batch_size=max(batch_size, 32),
                                       device=device, progress=progress)

    device = torch.device(device)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(int(seed))
    history: list[dict] = []
    start = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        history = [dict(row) for row in ckpt["history"]]
        start = int(ckpt["epoch"])

    fmri_t = torch.as_tensor(fmri, dtype=torch.float32)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    dtype = next(model.parameters()).dtype
    with forked_rng(device):
        if ckpt is not None:
            restore_rng_state(ckpt["rng"], device, numpy_rng=rng)
        else:
            torch.manual_seed(int(seed))
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            model.train()
            order = rng.permutation(n)
            stops = range(0, n - batch_size + 1 if drop_last else n, batch_size)
            sums = dict.fromkeys(("total", "ce", "mse", "contrastive"), 0.0)
            seen = n_batches = 0
            for b, s in enumerate(_progress(stops, progress, f"epoch {epoch + 1}/{epochs}")):
                idx = order[s:s + batch_size]
                x = source.batch(idx, dtype).to(device)
                y = labels_t[idx].to(device)
                f = fmri_t[idx].to(device)
                optimizer.zero_grad(set_to_none=True)
                logits, pred, _ = model(x)
                if n_classes is None:
                    n_classes = logits.shape[1]
                    check_label_range(labels, n_classes, "train_realnet: pseudo-labels")
                loss = realnet_loss(logits, y, pred, f, beta, contrastive, tau=tau)
                if not torch.isfinite(loss.total):
                    raise FloatingPointError(
                        f"train_realnet: non-finite loss at epoch {epoch + 1}, batch {b + 1} "
                        f"(ce {loss.ce.item()}, mse {loss.mse.item()}, contrastive "
                        f"{loss.contrastive.item()}); lower lr or beta, or check the inputs."
                    )
                loss.total.backward()
                optimizer.step()
                k = len(idx)
                for name in sums:
                    sums[name] += k * getattr(loss, name).item()
                seen += k
                n_batches += 1
            row = {
                "epoch": epoch + 1, "n_samples": seen, "n_batches": n_batches,
                "loss_total": sums["total"] / seen, "loss_ce": sums["ce"] / seen,
                "loss_mse": sums["mse"] / seen, "loss_contrastive": sums["contrastive"] / seen,
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            save_checkpoint(
                checkpoint_path, format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION,
                epoch=epoch + 1, model=model.state_dict(), optimizer=optimizer.state_dict(),
                rng=capture_rng_state(device, numpy_rng=rng), history=history,
                pseudo_labels=torch.as_tensor(labels, dtype=torch.long), config=config,
            )
            if log_path is not None:
                write_loss_log(log_path, history, LOG_COLUMNS)
    if log_path is not None and not Path(log_path).exists():
        write_loss_log(log_path, history, LOG_COLUMNS)  # a finished checkpoint rerun: still leave the log
    return history


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def layer_rdms(
    model: nn.Module,
    images,
    areas: Sequence[str] | None = None,
    metric: str = "pearson",
    *,
    batch_size: int = 32,
    device="cpu",
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """Condensed RDM (``compute_rdm`` order) of each area's flattened output over ``images``.

    Parameters
    ----------
    model : ReAlnet or a network with the area submodules (e.g. CORnet-S)
        Run in eval mode without gradients (its mode is restored; it is moved to ``device``).
        For a ReAlnet only the backbone runs.
    images : array (N, 3, H, W) or dataset (as :func:`train_realnet`)
    areas : area names (``get_submodule`` paths); default the model's areas (ReAlnet) or
        CORnet-S's V1, V2, V4, IT.
    metric : {"pearson", "spearman", "euclidean"}; the paper uses 1 - Pearson.

    Memory: the features of all images for all areas are held in float32 (at 224 px,
    375,360 floats per image: 300 MB for 200 images).
    """
    check_option("metric", metric, ("pearson", "spearman", "euclidean"))
    _check_positive_int("batch_size", batch_size)
    net = model.backbone if isinstance(model, ReAlnet) else model
    if areas is None:
        areas = model.areas if isinstance(model, ReAlnet) else CORNET_S_AREAS
    areas = (areas,) if isinstance(areas, str) else tuple(areas)
    source = _ImageSource(images)
    if len(source) < 2:
        raise InputError(f"layer_rdms: an RDM needs at least 2 images, got {len(source)}.")
    device = torch.device(device)
    model.to(device)
    dtype = next(net.parameters()).dtype
    feats: dict[str, list[np.ndarray]] = {a: [] for a in areas}
    current: dict[str, torch.Tensor] = {}

    def hook_for(area):
        def hook(module, inputs, output):
            current[area] = output

        return hook

    handles = [_area_module(net, a).register_forward_hook(hook_for(a)) for a in areas]
    was_training = net.training
    net.eval()
    try:
        for s in _progress(range(0, len(source), batch_size), progress, "layer RDMs"):
            idx = np.arange(s, min(s + batch_size, len(source)))
            current.clear()
            net(source.batch(idx, dtype).to(device))
            for a in areas:
                feats[a].append(current[a].flatten(1).float().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    out = {}
    for a in areas:
        X = np.concatenate(feats[a])
        feats[a] = []
        out[a] = compute_rdm(X, metric)
    return out


def rsa_max_over_layers(model_rdms: Mapping[str, np.ndarray], brain_rdm):
    """Spearman between each layer RDM and ``brain_rdm``; the best layer's score.

    Returns
    -------
    score : float, the maximum over layers (NaN if every layer gives NaN)
    best_area : str or None
    per_area : dict area -> Spearman rho
    """
    if not model_rdms:
        raise InputError("rsa_max_over_layers: no model RDMs given.")
    names = list(model_rdms)
    stacked = np.stack([np.asarray(model_rdms[a], dtype=np.float64) for a in names])
    rho = np.atleast_1d(compare_rdms(brain_rdm, stacked, "spearman"))
    per_area = {a: float(r) for a, r in zip(names, rho, strict=True)}
    if np.all(np.isnan(rho)):
        return float("nan"), None, per_area
    k = int(np.nanargmax(rho))
    return float(rho[k]), names[k], per_area


def improvement_ratio(new, base):
    """``(new - base) / base``, elementwise; float for scalar inputs.

    A zero ``base`` gives +-inf or NaN; a negative ``base`` flips the sign's meaning
    (report the raw difference alongside in that case).
    """
    new = np.asarray(new, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (new - base) / base
    return float(r) if r.ndim == 0 else r


def time_resolved_rsa(model_rdm, eeg_rdms, method: str = "spearman") -> np.ndarray:
    """Correlation (Spearman by default) of one model RDM with each time point's EEG RDM.

    ``eeg_rdms`` is (n_times, n_pairs); returns (n_times,).
    """
    eeg = np.asarray(eeg_rdms, dtype=np.float64)
    if eeg.ndim != 2:
        raise InputError(f"time_resolved_rsa: eeg_rdms must be (n_times, n_pairs), got shape {eeg.shape}.")
    return np.atleast_1d(compare_rdms(model_rdm, eeg, method))


def dimension_rdms(dim_values) -> np.ndarray:
    """Per dimension the condensed RDM ``|v_i - v_j|``: (n_pairs, n_dims) from (n_images, n_dims)."""
    V = np.asarray(dim_values, dtype=np.float64)
    if V.ndim != 2 or V.shape[0] < 2:
        raise InputError(f"dimension_rdms: expected (n_images >= 2, n_dims), got shape {V.shape}.")
    check_finite(V, "dimension values")
    i, j = np.triu_indices(V.shape[0], k=1)
    return np.abs(V[i] - V[j])


def dimension_partial_spearman(layer_rdm, dim_values, *, method: str = "spearman"):
    """Partial correlation between a layer RDM and each dimension's RDM, given all others.

    As Lu & Wang (2025) for the 49 THINGS dimensions: per dimension an RDM of absolute
    differences (:func:`dimension_rdms`); all RDMs rank-transformed (``method="spearman"``);
    for dimension d, the partial correlation between the layer RDM and dimension d's RDM
    controlling for the other dimensions' RDMs (= the correlation of their residuals after a
    least-squares fit with intercept on the others). Computed at once from the inverse of the
    correlation matrix; when the covariates are (near) collinear it falls back to explicit
    least squares per dimension. A dimension whose RDM is constant, or fully explained by the
    others, gives NaN.

    Returns
    -------
    rho : (n_dims,) partial correlations
    explained : (n_dims,) ``rho ** 2``, the variance of the layer RDM explained by each dimension
    """
    check_option("method", method, PARTIAL_METHODS)
    y = np.asarray(layer_rdm, dtype=np.float64)
    D = dimension_rdms(dim_values)
    if y.ndim != 1 or y.shape[0] != D.shape[0]:
        n = np.asarray(dim_values).shape[0]
        raise InputError(
            f"dimension_partial_spearman: the layer RDM has shape {y.shape}; {n} images need a "
            f"condensed RDM of {n_pairs(n)} entries."
        )
    check_finite(y, "layer RDM")
    if method == "spearman":
        y = rankdata(y)
        D = rankdata(D, axis=0)
    rho = _partial_correlations(y, D)
    return rho, rho**2


def _partial_correlations(y: np.ndarray, X: np.ndarray, cond_max: float = 1e10) -> np.ndarray:
    """Partial r(y, X[:, d] | X[:, others]) for every column d (intercept included)."""
    k = X.shape[1]
    rho = np.full(k, np.nan)
    Z = np.column_stack([y, X])
    Z = Z - Z.mean(axis=0)
    norms = np.linalg.norm(Z, axis=0)
    scale = np.maximum(np.abs(np.column_stack([y, X])).max(axis=0), 1.0)
    ok = norms > 1e-12 * scale * np.sqrt(Z.shape[0])
    if not ok[0]:
        return rho  # constant layer RDM
    keep = np.flatnonzero(ok[1:])  # constant dimensions lie in the intercept's span: drop them
    if keep.size == 0:
        return rho
    Zk = Z[:, np.r_[0, keep + 1]] / norms[np.r_[0, keep + 1]]
    C = Zk.T @ Zk
    if np.linalg.cond(C) < cond_max:
        P = np.linalg.inv(C)
        d = np.diag(P)
        rho[keep] = -P[0, 1:] / np.sqrt(d[0] * d[1:])
    else:
        rho[keep] = _partial_by_lstsq(Zk[:, 0], Zk[:, 1:])
    return rho


def _partial_by_lstsq(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The same, by least squares per column (centred inputs; robust to collinearity)."""
    k = X.shape[1]
    rho = np.full(k, np.nan)
    ones = np.ones((X.shape[0], 1))
    for d in range(k):
        A = np.column_stack([ones, np.delete(X, d, axis=1)])
        ry = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
        rx = X[:, d] - A @ np.linalg.lstsq(A, X[:, d], rcond=None)[0]
        ny, nx = np.linalg.norm(ry), np.linalg.norm(rx)
        if nx > 1e-8 * np.linalg.norm(X[:, d]) and ny > 1e-8 * np.linalg.norm(y):
            rho[d] = float(ry @ rx / (ny * nx))
    return rho
