"""K3DN's disparity branch: one disparity vector per window of the 1/8 feature map.

What is whose (docs/k3dn.md):

* The paper's (Sec. 1, module i): a disparity feature map estimated from the DP pair,
  learnt without disparity supervision, queries the kernel set.
* The public K3DN code's (computed exactly here with the defaults; a trimmed DDDNet
  stereo network; ``f`` = 32 in the release, every BatchNorm followed by ReLU):
  - per view (shared weights, on the views shifted by -0.5), average-pooled by 4:
    ``start`` conv 3->f, conv f->2f; ``layer1`` conv 2f->4f dilation 4, conv 4f->4f
    stride 2 dilation 8 (padding 8): F at 1/8; two context branches on F (average pool
    32 and 16, a 1x1 conv *with padding 1*, BN, ReLU, bilinear resize back with
    ``align_corners=True``); ``end`` conv [b32, b16, F] 6f->3f with BN, then a 1x1 conv
    3f->f without BN or activation;
  - a concatenation cost volume over 4 horizontal shifts ``0..3``: plane ``s`` holds
    ``[f_L(x), f_R(x - s)]`` for ``x >= s``; the release leaves the columns ``x < s``
    unwritten (uninitialised memory), here they are zeros (:func:`cost_volume`);
  - five Conv3d + BN3d + ReLU (2f->f, f->3f/2 stride 2, 3f/2->3f/2, 3f/2->2f stride 2,
    2f->2f), the disparity axis (4 -> 2 -> 1) dropped;
  - "pad_scale": a nearest resize (PyTorch's legacy nearest) to ``(H/32 + H//288,
    W/32 + W//224)`` and an average pool (5, 4): one cell per 18x14 window of the 1/8
    map for ``H = 288a``, ``W = 224b``; then ``Linear(2f, D)`` and LeakyReLU per cell.
  - Initialisation: Kaiming normal (fan_out, ReLU) for the 2D convs, defaults otherwise.
* Ours:
  - ``volume="two_sided"``: shifts ``-max_shift .. max_shift`` (the sign of the DP
    disparity tells a point in front of the focal plane from one behind it), the
    disparity axis then averaged; ``volume="concat"`` (the ablation "concatenation instead
    of the cost volume"): the single plane ``[f_L, f_R]``, no shifts, the rest unchanged.
  - Windows other than 18x14 (our smaller test and variant settings) pool the matching
    output onto the window grid adaptively instead of by "pad_scale"; the context pools
    are clipped to the size of F where the release would fail (maps under 32 pixels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn.k3dn_layers import LEAKY_SLOPE

VIEW_POOL = 4  # the views are average-pooled by 4 before the feature net
RELEASE_WINDOW = (18, 14)  # window (rows, columns at 1/8) of the release's "pad_scale"
VOLUMES = ("one_sided", "two_sided", "concat")


def volume_shifts(volume: str, max_shift: int) -> list[int]:
    """The horizontal shifts of each cost-volume plane."""
    if volume not in VOLUMES:
        raise ValueError(f"volume must be one of {VOLUMES}, got {volume!r}")
    if volume == "concat":
        return [0]
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    low = -max_shift if volume == "two_sided" else 0
    return list(range(low, max_shift + 1))


def cost_volume(left: Tensor, right: Tensor, shifts: Sequence[int]) -> Tensor:
    """Concatenation cost volume, B x 2C x len(shifts) x H x W.

    Plane ``i`` holds ``left`` and ``right`` moved right by ``s = shifts[i]`` pixels:
    column ``x`` holds ``[left[..., x], right[..., x - s]]``, so a feature of ``left`` at
    ``x`` meets the one of ``right`` at ``x - s``; where ``x - s`` falls outside, both
    halves are zero (PSMNet's practice, and the release's volume with its unwritten
    columns taken as zeros).
    """
    if left.shape != right.shape:
        raise ValueError(
            f"view features differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
        )
    width = left.shape[-1]
    planes = []
    for shift in shifts:
        if shift >= 0:
            kept = torch.cat([left[..., shift:], right[..., : width - shift]], dim=1)
            planes.append(F.pad(kept, (shift, 0)))
        else:
            kept = torch.cat([left[..., :shift], right[..., -shift:]], dim=1)
            planes.append(F.pad(kept, (0, -shift)))
    return torch.stack(planes, dim=2)


class ConvBN(nn.Module):
    """Bias-free conv (2D or 3D), then BatchNorm and ReLU (or nothing, with ``bn=False``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        bn: bool = True,
        dims: int = 2,
    ):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d
        self.conv = conv(
            in_channels, out_channels, kernel_size, stride, padding, dilation, bias=False
        )
        self.bn = norm(out_channels) if bn else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return x if self.bn is None else torch.relu(self.bn(x))


class ContextPool(nn.Module):
    """Average pool with kernel = stride = ``size``, clipped to the map (ours, see above)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        size = min(self.size, x.shape[-2], x.shape[-1])
        return F.avg_pool2d(x, size, size)

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _context_branch(channels: int, out_channels: int, pool: int) -> nn.Sequential:
    return nn.Sequential(
        ContextPool(pool),
        nn.Sequential(
            nn.Conv2d(channels, out_channels, 1, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(),
        ),
    )


class ViewFeatures(nn.Module):
    """2D feature net: a 1/4-pooled view in, ``f`` features at 1/8 out (see module doc)."""

    def __init__(self, in_channels: int = 3, channels: int = 32, context_pools=(32, 16)):
        super().__init__()
        f = channels
        self.start = nn.Sequential(ConvBN(in_channels, f), ConvBN(f, 2 * f))
        self.layer1 = nn.Sequential(
            ConvBN(2 * f, 4 * f, padding=4, dilation=4),
            ConvBN(4 * f, 4 * f, stride=2, padding=8, dilation=8),
        )
        self.branch1 = _context_branch(4 * f, f, context_pools[0])
        self.branch3 = _context_branch(4 * f, f, context_pools[1])
        self.end = nn.Sequential(
            ConvBN(6 * f, 3 * f), ConvBN(3 * f, f, kernel_size=1, padding=0, bn=False)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer1(self.start(x))
        size = x.shape[-2:]
        branches = [
            F.interpolate(branch(x), size=size, mode="bilinear", align_corners=True)
            for branch in (self.branch1, self.branch3)
        ]
        return self.end(torch.cat([*branches, x], dim=1))


class Matching(nn.Module):
    """Five Conv3d + BN3d + ReLU over the cost volume (two with stride 2)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        f, g = channels, 3 * channels // 2
        self.start = nn.Sequential(
            ConvBN(2 * f, f, dims=3), ConvBN(f, g, stride=2, dims=3), ConvBN(g, g, dims=3)
        )
        self.conv1a = nn.Sequential(
            ConvBN(g, 2 * f, stride=2, dims=3), ConvBN(2 * f, 2 * f, dims=3)
        )

    def forward(self, volume: Tensor) -> Tensor:
        return self.conv1a(self.start(volume))


class DisparityBranch(nn.Module):
    """Disparity vectors, one per window, from the shifted DP views (``disp`` of K3DN).

    Args:
        out_dim: D, the length of each window's vector (256).
        channels: ``f`` (32).
        volume: ``"one_sided"`` (release), ``"two_sided"`` or ``"concat"`` (ours).
        max_shift: largest shift of the cost volume at 1/8 (3).
        context_pools: the context branches' pool sizes at 1/8 (32, 16).
    """

    def __init__(
        self,
        out_dim: int = 256,
        channels: int = 32,
        volume: str = "one_sided",
        max_shift: int = 3,
        context_pools: Sequence[int] = (32, 16),
    ):
        super().__init__()
        self.shifts = volume_shifts(volume, max_shift)
        self.volume = volume
        self.feature = ViewFeatures(3, channels, tuple(context_pools))
        self.matching = Matching(channels)
        self.fc = nn.Sequential(nn.Linear(2 * channels, out_dim), nn.LeakyReLU(LEAKY_SLOPE))
        for layer in self.feature.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")

    def matching_features(self, left: Tensor, right: Tensor) -> Tensor:
        """The matching output with the disparity axis dropped, B x 2f x H/32 x W/32."""
        left = self.feature(F.avg_pool2d(left, VIEW_POOL))
        right = self.feature(F.avg_pool2d(right, VIEW_POOL))
        matched = self.matching(cost_volume(left, right, self.shifts))
        return matched[:, :, 0] if matched.shape[2] == 1 else matched.mean(dim=2)

    def forward(self, left: Tensor, right: Tensor, grid: tuple[int, int], window) -> Tensor:
        """Shifted views B x 3 x H x W -> (B gh gw) x D, window ``n = b gh gw + i gw + j``.

        ``grid``: the window grid (gh, gw) of the 1/8 map; ``window``: its window size.
        """
        height, width = left.shape[-2:]
        matched = self.matching_features(left, right)
        if tuple(window) == RELEASE_WINDOW:
            size = (matched.shape[-2] + height // 288, matched.shape[-1] + width // 224)
            cells = F.avg_pool2d(F.interpolate(matched, size=size, mode="nearest"), (5, 4))
        else:
            cells = F.adaptive_avg_pool2d(matched, grid)
        if tuple(cells.shape[-2:]) != tuple(grid):
            raise ValueError(
                f"the disparity branch gives a {cells.shape[-2]}x{cells.shape[-1]} grid for a "
                f"{height}x{width} pair, the windows a {grid[0]}x{grid[1]} one: with 18x14 "
                f"windows H must be a multiple of 288 and W of 224 (at least 448)"
            )
        return self.fc(cells.permute(0, 2, 3, 1).flatten(0, 2))
