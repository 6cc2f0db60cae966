"""The 8-layer AlexNet-style network of Cichy et al. 2016 (SPEC section 2).

Krizhevsky et al.'s architecture as trained in Caffe (CaffeNet order, which the paper
describes): layers 1 and 2 are convolution (+ ReLU), max pooling (ceil mode, as Caffe) and local
response normalisation; layers 3-5 a convolution (+ ReLU) only; layers 6-8 fully connected.
Each layer is **one leaf module** named ``conv1`` .. ``conv5``, ``fc6`` .. ``fc8``, whose
output is the layer's last processing stage (the paper's model output per layer), so
feature extraction with ``layers: all`` sees exactly these eight layers, in order:

========  ============================================================================================
conv1     conv 11x11 stride 4, 96 maps -> ReLU -> max pool 3/2 -> LRN (5, 1e-4, 0.75)
conv2     conv 5x5 pad 2, 256 maps, 2 groups -> ReLU -> max pool 3/2 -> LRN
conv3     conv 3x3 pad 1, 384 maps -> ReLU
conv4     conv 3x3 pad 1, 384 maps, 2 groups -> ReLU
conv5     conv 3x3 pad 1, 256 maps, 2 groups -> ReLU
fc6       max pool 3/2 -> adaptive average pool to ``pool_size`` -> 4096 -> ReLU -> dropout
fc7       4096 -> ReLU -> dropout
fc8       ``n_classes`` (logits)
========  ============================================================================================

``width`` scales every channel count and fc width (the demo trains ``width=0.125`` at
64 px); the adaptive pool before ``fc6`` makes any input size >= 39 px work (at the paper's
227 px it is the identity). Weights start from He et al.'s normal initialisation (sd
sqrt(2 / fan_in), zero biases; Caffe's AlexNet used hand-set Gaussians), drawn under ``seed``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AlexNet8",
    "alexnet8",
    "alexnet8_transform",
    "ALEXNET8_LAYERS",
    "ALEXNET8_INPUT_SIZE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

#: Layer names in processing order.
ALEXNET8_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
#: Caffe's AlexNet crop size.
ALEXNET8_INPUT_SIZE = 227
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MIN_INPUT = 39  # smallest input conv1 + the three max pools (ceil mode, as Caffe) accept


def _he_init(weight: torch.Tensor, bias: torch.Tensor, fan_in: int) -> None:
    """He et al.'s normal init for ReLU layers (sd sqrt(2 / fan_in)), zero biases: the signal
    keeps its scale through the eight layers, so small networks start learning at once."""
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / fan_in))
        bias.zero_()


class ConvLayer(nn.Module):
    """Convolution + ReLU, optionally max pool 3/2 and local response normalisation (one leaf)."""

    def __init__(self, c_in, c_out, kernel, *, stride=1, padding=0, groups=1, pool_norm=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in // groups, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(c_out))
        _he_init(self.weight, self.bias, (c_in // groups) * kernel * kernel)
        self.stride, self.padding, self.groups, self.pool_norm = stride, padding, groups, pool_norm

    def forward(self, x):
        x = F.relu(F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups))
        if self.pool_norm:
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            x = F.local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=1.0)
        return x

    def extra_repr(self):
        c_out, c_in, k, _ = self.weight.shape
        return (f"{c_in * self.groups}, {c_out}, kernel={k}, stride={self.stride}, "
                f"padding={self.padding}, groups={self.groups}, pool_norm={self.pool_norm}")


class FCLayer(nn.Module):
    """(Max pool 3/2 + adaptive average pool + flatten) -> linear -> (ReLU + dropout); one leaf."""

    def __init__(self, n_in, n_out, *, relu=True, dropout=0.0, pool_size=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_out, n_in))
        self.bias = nn.Parameter(torch.empty(n_out))
        _he_init(self.weight, self.bias, n_in)
        self.relu, self.dropout, self.pool_size = relu, float(dropout), pool_size

    def forward(self, x):
        if self.pool_size is not None:
            x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            x = F.adaptive_avg_pool2d(x, self.pool_size).flatten(1)
        x = F.linear(x, self.weight, self.bias)
        if self.relu:
            x = F.relu(x)
        if self.dropout:
            x = F.dropout(x, self.dropout, self.training)
        return x

    def extra_repr(self):
        return (f"{self.weight.shape[1]}, {self.weight.shape[0]}, relu={self.relu}, "
                f"dropout={self.dropout}, pool_size={self.pool_size}")


def _channels(n: int, width: float, groups: int) -> int:
    """``n * width`` rounded to a positive multiple of ``groups``."""
    return max(groups, int(round(n * width / groups)) * groups)


class AlexNet8(nn.Module):
    """Eight leaf layers ``conv1`` .. ``fc8``; ``forward`` returns the ``fc8`` logits."""

    def __init__(self, n_classes: int = 1000, *, width: float = 1.0, pool_size: int = 6,
                 groups: int = 2, dropout: float = 0.5):
        super().__init__()
        if isinstance(n_classes, bool) or int(n_classes) != n_classes or n_classes < 2:
            raise ValueError(f"AlexNet8: n_classes must be an integer >= 2, got {n_classes!r}.")
        if not (isinstance(width, (int, float)) and width > 0):
            raise ValueError(f"AlexNet8: width must be a positive number, got {width!r}.")
        if int(pool_size) < 1 or int(groups) < 1:
            raise ValueError(f"AlexNet8: pool_size and groups must be >= 1, got {pool_size}, {groups}.")
        c1, c2, c3, c4, c5 = (_channels(c, width, groups) for c in (96, 256, 384, 384, 256))
        hidden = max(2, int(round(4096 * width)))
        self.n_classes, self.width, self.pool_size = int(n_classes), float(width), int(pool_size)
        self.groups, self.dropout = int(groups), float(dropout)
        self.conv1 = ConvLayer(3, c1, 11, stride=4, pool_norm=True)
        self.conv2 = ConvLayer(c1, c2, 5, padding=2, groups=groups, pool_norm=True)
        self.conv3 = ConvLayer(c2, c3, 3, padding=1)
        self.conv4 = ConvLayer(c3, c4, 3, padding=1, groups=groups)
        self.conv5 = ConvLayer(c4, c5, 3, padding=1, groups=groups)
        self.fc6 = FCLayer(c5 * pool_size * pool_size, hidden, dropout=dropout, pool_size=pool_size)
        self.fc7 = FCLayer(hidden, hidden, dropout=dropout)
        self.fc8 = FCLayer(hidden, self.n_classes, relu=False)

    def forward(self, x):
        if x.shape[-1] < _MIN_INPUT or x.shape[-2] < _MIN_INPUT:
            raise ValueError(
                f"AlexNet8 needs inputs of at least {_MIN_INPUT} x {_MIN_INPUT} px, got "
                f"{tuple(x.shape[-2:])}."
            )
        for name in ALEXNET8_LAYERS:
            x = getattr(self, name)(x)
        return x

    @property
    def arch_kwargs(self) -> dict:
        """Constructor arguments that rebuild this network (stored with trained weights)."""
        return {"n_classes": self.n_classes, "width": self.width, "pool_size": self.pool_size,
                "groups": self.groups, "dropout": self.dropout}


def alexnet8(n_classes: int = 1000, *, width: float = 1.0, pool_size: int = 6, groups: int = 2,
             dropout: float = 0.5, seed: int | None = None) -> AlexNet8:
    """Build :class:`AlexNet8`; with ``seed``, its initial weights are drawn from a forked torch
    RNG seeded with it (the caller's global RNG is left untouched); without, from the global RNG."""
    kwargs = dict(width=width, pool_size=pool_size, groups=groups, dropout=dropout)
    if seed is None:
        return AlexNet8(n_classes, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return AlexNet8(n_classes, **kwargs)


def alexnet8_transform(input_size: int = ALEXNET8_INPUT_SIZE, normalize: bool = True):
    """PIL image -> ``(3, input_size, input_size)``: resize, centre crop, to tensor, and
    (``normalize``) the ImageNet normalisation (Caffe subtracted the mean image instead)."""
    from torchvision import transforms

    steps = [transforms.Resize(int(input_size)), transforms.CenterCrop(int(input_size)),
             transforms.ToTensor()]
    if normalize:
        steps.append(transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return transforms.Compose(steps)
