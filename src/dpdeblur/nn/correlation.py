"""Correlation layer (cost volume) of FlowNet/PWC-Net, as DPANet uses it (spec: dpanet.md).

For every displacement (dy, dx) with |dy|, |dx| <= d, output channel ``(dy + d) * (2d + 1)
+ (dx + d)`` holds the channel mean of ``x1 * shift(x2, dy, dx)``, where the second input is
zero padded by ``d``. With ``d = 4`` that is a 9x9 window and 81 channels, the release's
layout (kernel 1, stride 1). K3DN's sharp-region preservation uses the same 9x9 local
correlation between query and key projections.

Pure PyTorch, differentiable, device-agnostic and autocast-friendly. It never holds the
(2d+1)^2 shifted copies of ``x2`` at once: each displacement reads a view of one padded
copy, and the product is reduced to one channel before the next is formed, so the extra
memory beyond the output is one padded copy of ``x2`` plus one product, O(C x H x W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def correlation(x1: Tensor, x2: Tensor, max_displacement: int = 4) -> Tensor:
    """Cost volume of ``x1`` against ``x2`` over a (2d+1)x(2d+1) window of displacements.

    Args:
        x1, x2: B x C x H x W feature maps of the same shape.
        max_displacement: d; the window is (2d+1)^2 displacements.

    Returns:
        B x (2d+1)^2 x H x W, channel (dy + d) * (2d + 1) + (dx + d) for ``x2`` displaced by
        (dy, dx), each entry the mean over channels of the product.
    """
    if x1.shape != x2.shape:
        raise ValueError(f"correlation inputs differ in shape: {tuple(x1.shape)} vs {tuple(x2.shape)}")
    d = int(max_displacement)
    _, channels, height, width = x1.shape
    # Under autocast the product runs in the autocast dtype; the accumulation stays stable
    # because each entry is a mean over C channels of one product.
    x2_padded = F.pad(x2, (d, d, d, d))
    planes = []
    for dy in range(2 * d + 1):
        rows = x2_padded[:, :, dy : dy + height]
        for dx in range(2 * d + 1):
            planes.append((x1 * rows[:, :, :, dx : dx + width]).sum(dim=1) / channels)
    return torch.stack(planes, dim=1)


class Correlation(nn.Module):
    """Module wrapper of :func:`correlation` (no parameters)."""

    def __init__(self, max_displacement: int = 4):
        super().__init__()
        self.max_displacement = max_displacement

    @property
    def out_channels(self) -> int:
        return (2 * self.max_displacement + 1) ** 2

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return correlation(x1, x2, self.max_displacement)

    def extra_repr(self) -> str:
        return f"max_displacement={self.max_displacement}"
