"""CORnet-S (Kubilius et al. 2019), the base network of ReAlnet-fMRI (SPEC section 4).

Four visual areas and a decoder, as the published model (dicarlolab/CORnet)::

    V1       conv 7x7/2 (3->64) + BN + ReLU + maxpool 3x3/2 + conv 3x3 (64->64) + BN + ReLU
    V2       CORblock_S(64, 128, times=2)    56x56 -> 28x28
    V4       CORblock_S(128, 256, times=4)   28x28 -> 14x14
    IT       CORblock_S(256, 512, times=2)   14x14 -> 7x7
    decoder  global average pool + flatten + linear 512->1000

A ``CORblock_S(c_in, c, times)`` maps its input to ``c`` channels (``conv_input``, 1x1)
and then runs the same bottleneck ``times`` times (weights shared across steps, one set
of BatchNorms per step)::

    x = conv_input(inp)
    for t in range(times):
        skip = norm_skip(skip(x)) if t == 0 else x               # 1x1 stride 2 at t = 0
        x = relu(norm1_t(conv1(x)))                                # 1x1, c -> 4c
        x = relu(norm2_t(conv2(x, stride=2 if t == 0 else 1)))     # 3x3, 4c -> 4c
        x = relu(norm3_t(conv3(x)) + skip)                         # 1x1, 4c -> c
        out = output(x)                                            # Identity

Module and parameter names are the published ones, so the published state dict
(``cornet_s-1d3f7974.pth``: ``{"state_dict": {"module.V1.conv1.weight": ...}}``) loads
strictly. Two departures from the published code change no weights and no outputs:
``conv2`` takes its stride as a call argument instead of having its ``stride``
attribute rewritten on every step, and the ReLUs and the residual sum are not in place.

Flattened outputs at 224 px: V1 200704 (64x56x56), V2 100352 (128x28x28),
V4 50176 (256x14x14), IT 25088 (512x7x7). 53,416,616 parameters.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import InputError

__all__ = [
    "CORblock_S",
    "CORnetS",
    "cornet_s",
    "load_cornet_s_weights",
    "cornet_s_transform",
    "CORNET_S_AREAS",
    "CORNET_S_INPUT_SIZE",
    "CORNET_S_RESIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

#: The visual areas, in processing order (children of :class:`CORnetS` before ``decoder``).
CORNET_S_AREAS = ("V1", "V2", "V4", "IT")
CORNET_S_INPUT_SIZE = 224
CORNET_S_RESIZE = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _StepConv2d(nn.Conv2d):
    """A ``Conv2d`` whose stride can be chosen per call (CORblock_S uses 2 at t = 0, then 1)."""

    def forward(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        if stride is None:
            return super().forward(x)
        return F.conv2d(x, self.weight, self.bias, stride, self.padding, self.dilation, self.groups)


class CORblock_S(nn.Module):
    """The recurrent bottleneck block of CORnet-S (V2, V4, IT); see the module docstring.

    Named as in the published code.
    """

    scale = 4  # bottleneck expansion

    def __init__(self, in_channels: int, out_channels: int, times: int = 1):
        super().__init__()
        if int(times) < 1:
            raise ValueError(f"CORblock_S: times must be >= 1, got {times!r}.")
        self.times = int(times)
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU()
        self.conv2 = _StepConv2d(wide, wide, kernel_size=3, stride=1, padding=1, bias=False)
        self.nonlin2 = nn.ReLU()
        self.conv3 = nn.Conv2d(wide, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU()
        self.output = nn.Identity()  # the block's output after every step, for hooks
        # One set of BatchNorms per time step (registered after the convs, as published).
        for t in range(self.times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        for t in range(self.times):
            skip = self.norm_skip(self.skip(x)) if t == 0 else x
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x, stride=2 if t == 0 else 1)))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.output(self.nonlin3(x + skip))
        return x


class CORnetS(nn.Sequential):
    """CORnet-S: children ``V1``, ``V2``, ``V4``, ``IT``, ``decoder``; returns ImageNet logits.

    ``width`` scales every area's channel count (64, 128, 256, 512 at the published 1.0;
    ``round(c * width)``, at least 1). Only width 1.0 matches the published weights; narrower
    networks (e.g. 0.25, 16x fewer parameters) serve fast CPU demos and tests.
    """

    def __init__(self, n_classes: int = 1000, width: float = 1.0):
        width = float(width)
        if not width > 0 or not math.isfinite(width):
            raise InputError(f"CORnet-S width must be a positive number, got {width!r}.")
        c1, c2, c4, c_it = (max(1, round(c * width)) for c in (64, 128, 256, 512))
        self.width = width
        v1 = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(3, c1, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm1", nn.BatchNorm2d(c1)),
                    ("nonlin1", nn.ReLU()),
                    ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                    ("conv2", nn.Conv2d(c1, c1, kernel_size=3, stride=1, padding=1, bias=False)),
                    ("norm2", nn.BatchNorm2d(c1)),
                    ("nonlin2", nn.ReLU()),
                    ("output", nn.Identity()),
                ]
            )
        )
        decoder = nn.Sequential(
            OrderedDict(
                [
                    ("avgpool", nn.AdaptiveAvgPool2d(1)),
                    ("flatten", nn.Flatten()),
                    ("linear", nn.Linear(c_it, n_classes)),
                    ("output", nn.Identity()),
                ]
            )
        )
        super().__init__(
            OrderedDict(
                [
                    ("V1", v1),
                    ("V2", CORblock_S(c1, c2, times=2)),
                    ("V4", CORblock_S(c2, c4, times=4)),
                    ("IT", CORblock_S(c4, c_it, times=2)),
                    ("decoder", decoder),
                ]
            )
        )
        self._init_weights()

    def _init_weights(self):
        # The published initialisation: convs N(0, 2 / (k * k * c_out)), BatchNorm 1 / 0,
        # the linear layer keeps PyTorch's default (as in the published training).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def cornet_s(weights=None, *, width: float = 1.0) -> CORnetS:
    """Build CORnet-S; ``weights`` is None (untrained) or a checkpoint path / state dict.

    ``width`` scales the channel counts (see :class:`CORnetS`); published weights need 1.0.

    Untrained weights come from the global torch RNG: seed it (``torch.manual_seed``)
    for reproducible networks. A checkpoint may be the published file (state dict
    under ``"state_dict"``, keys prefixed ``module.``) or a bare state dict; it must
    fit exactly (see :func:`load_cornet_s_weights`). The model is returned in
    training mode, as torch constructors do: call ``.eval()`` before extracting features.
    """
    model = CORnetS(width=width)
    if weights is not None:
        load_cornet_s_weights(model, weights)
    return model


def load_cornet_s_weights(model: nn.Module, weights) -> nn.Module:
    """Load a CORnet-S checkpoint (path or state dict) into ``model``, strictly; returns ``model``.

    Accepts a bare state dict or one nested under ``"state_dict"``; a leading ``module.``
    (``DataParallel``) is stripped from every key. Missing ``num_batches_tracked``
    buffers (checkpoints from PyTorch < 0.4.1) are tolerated. Any other missing,
    unexpected or wrongly shaped entry raises :class:`InputError` naming the file
    and the first offending keys; the model is then left untouched.
    """
    if isinstance(weights, Mapping):
        where, obj = "the given state dict", weights
    else:
        path = Path(os.path.expanduser(os.fspath(weights)))
        where = f"CORnet-S weights file {str(path)!r}"
        if not path.is_file():
            raise InputError(
                f"{where} not found; expected a PyTorch checkpoint holding a CORnet-S state dict "
                "(e.g. the published cornet_s-1d3f7974.pth; brainalign never downloads)."
            )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated file, pickle with objects, not a torch file, ...
            raise InputError(f"{where} could not be read as a state dict: {err}") from err
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(
            f"{where} holds a {type(obj).__name__} that is not a state dict; expected a mapping "
            "of parameter names to tensors, bare or under the key 'state_dict'."
        )
    # A new plain dict (no version metadata), so BatchNorm fills a missing num_batches_tracked.
    state = {str(k).removeprefix("module."): v for k, v in obj.items()}

    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrongly shaped", wrong_shape)):
        if keys:
            problems.append(f"{len(keys)} {what} key(s), first: {', '.join(keys[:5])}")
    if problems:
        raise InputError(
            f"{where} does not fit CORnet-S: {'; '.join(problems)}. Expected the published "
            "CORnet-S state dict (keys such as 'V1.conv1.weight', 'V2.norm1_0.running_mean', "
            "'decoder.linear.weight', optionally prefixed 'module.')."
        )
    model.load_state_dict(state, strict=True)
    return model


def cornet_s_transform(normalize: bool = True):
    """PIL image -> ``(3, 224, 224)`` tensor: resize 256, centre crop 224, to tensor, and
    (``normalize=True``, for trained weights) the ImageNet normalisation."""
    from torchvision import transforms

    steps = [
        transforms.Resize(CORNET_S_RESIZE),
        transforms.CenterCrop(CORNET_S_INPUT_SIZE),
        transforms.ToTensor(),
    ]
    if normalize:
        steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return transforms.Compose(steps)
