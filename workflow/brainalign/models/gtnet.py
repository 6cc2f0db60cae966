"""The demo's ground-truth network: a small, seeded CNN whose stages are single modules.

The embedded demo plants synthetic "EVC" voxels as a noisy linear read-out of
``stage1`` and "OTC" voxels as a read-out of ``stage5``; the workflow must then
find those two layers again. Each stage is one leaf module (no children), so
feature extraction sees exactly one layer per stage and the planted answer is
unambiguous.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GroundTruthNet", "gtnet", "GTNET_SEED", "GTNET_INPUT_SIZE"]

GTNET_SEED = 20240607
GTNET_INPUT_SIZE = 64


class ConvStage(nn.Module):
    """conv (stride 2) + bias + ReLU, held as plain parameters so the stage is one leaf."""

    def __init__(self, c_in: int, c_out: int, kernel: int, generator: torch.Generator):
        super().__init__()
        fan_in = c_in * kernel * kernel
        w = torch.randn(c_out, c_in, kernel, kernel, generator=generator) * (2.0 / fan_in) ** 0.5
        # Each filter is made zero-mean so it responds to structure, not to overall brightness.
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(0.05 * torch.randn(c_out, generator=generator))
        self.padding = kernel // 2

    def forward(self, x):
        return F.relu(F.conv2d(x, self.weight, self.bias, stride=2, padding=self.padding))


class PoolLinearStage(nn.Module):
    """Global average pool + linear + ReLU (one leaf)."""

    def __init__(self, c_in: int, c_out: int, generator: torch.Generator):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, generator=generator) * (2.0 / c_in) ** 0.5)
        self.bias = nn.Parameter(0.05 * torch.randn(c_out, generator=generator))

    def forward(self, x):
        x = x.mean(dim=(2, 3))
        x = (x - x.mean(dim=1, keepdim=True)) / (x.std(dim=1, keepdim=True) + 1e-6)
        return F.relu(F.linear(x, self.weight, self.bias))


class GroundTruthNet(nn.Module):
    """Five stages: 16x32x32, 32x16x16, 64x8x8, 128x4x4 feature maps, then 64 pooled units."""

    def __init__(self, seed: int = GTNET_SEED):
        super().__init__()
        g = torch.Generator().manual_seed(int(seed))
        self.stage1 = ConvStage(3, 16, 5, g)
        self.stage2 = ConvStage(16, 32, 3, g)
        self.stage3 = ConvStage(32, 64, 3, g)
        self.stage4 = ConvStage(64, 128, 3, g)
        self.stage5 = PoolLinearStage(128, 64, g)

    def forward(self, x):
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        return self.stage5(x)


def gtnet(seed: int = GTNET_SEED, **_ignored) -> GroundTruthNet:
    """Build the ground-truth network (weights fully determined by ``seed``)."""
    return GroundTruthNet(seed=seed).eval()
