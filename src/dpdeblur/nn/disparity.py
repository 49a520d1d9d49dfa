"""K3DN's disparity feature estimator: one disparity vector per window of the 1/8 map.

What is whose (spec: k3dn.md):

* The paper's (Sec. 1, module i): a disparity feature map estimated from the DP pair,
  learnt without disparity supervision, queries the kernel set.
* The known inference code's structure (a trimmed copy of DDDNet's stereo network): a
  2D feature net shared by both views, run on 4x average-pooled views with a stride-2
  layer (so features at 1/8 of the input) and pooled context branches; a concatenation
  cost volume over horizontal shifts; 3D convs (two with stride 2) over the volume; the
  result pooled to one vector per window and embedded by a linear layer + LeakyReLU.
* Ours:
  - The cost volume spans shifts ``-max_shift .. +max_shift`` (the inference code uses
    ``0 .. 3`` only): in DP data the sign of the disparity tells a point in front of the
    focal plane from one behind it, so both signs are needed.
  - The disparity axis is collapsed by a mean after the 3D convs (the inference code
    relies on its 4 shifts reducing to 1 by the strides); no batch norm (crops of
    batch 4 and eval-mode drift make it a liability); adaptive average pooling onto the
    window grid, so any window size works.
  - :class:`ConcatViewFeatures`, the ablation "plain concatenation": the same kind of
    network run on the two views concatenated (6 channels), without a cost volume.
  - He initialisation for LeakyReLU (:func:`he_init_`) of every conv: with PyTorch's
    default init each of the ~13 bias-free layers shrinks the signal's variance about
    threefold, so at initialisation the window vectors differed by ~1e-6 against their
    embedding bias of ~0.05 -- every window got the same kernel weights and the
    gradients reaching the cost volume vanished.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn.k3dn_layers import LEAKY_SLOPE, conv_act

VIEW_POOL = 4  # the views are average-pooled by 4 before the feature net


def horizontal_cost_volume(left: Tensor, right: Tensor, max_shift: int) -> Tensor:
    """Concatenation cost volume over horizontal shifts of both signs.

    Args:
        left, right: B x C x H x W features of the two views.
        max_shift: D; shifts ``d = -D .. D``.

    Returns:
        B x 2C x (2D + 1) x H x W; plane ``d + D`` holds ``left`` and ``right`` moved right
        by ``d`` pixels (column ``x`` holds ``right[..., x - d]``, zeros where that falls
        outside), so a feature of ``left`` at ``x`` meets the one of ``right`` at ``x - d``.
    """
    if left.shape != right.shape:
        raise ValueError(
            f"view features differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
        )
    width = left.shape[-1]
    planes = []
    for shift in range(-max_shift, max_shift + 1):
        if shift >= 0:
            moved = F.pad(right[..., : width - shift], (shift, 0))
        else:
            moved = F.pad(right[..., -shift:], (0, -shift))
        planes.append(torch.cat([left, moved], dim=1))
    return torch.stack(planes, dim=2)


def _conv3d_act(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.LeakyReLU(LEAKY_SLOPE),
    )


class ViewFeatures(nn.Module):
    """2D feature net: 1/4-resolution views in, ``channels`` features at 1/8 out.

    Three 3x3 convs (the third dilated by 2), a stride-2 conv, then two pooled context
    branches (windows of 8 and 4 feature pixels) fused with the features by a 3x3 and a
    1x1 conv.
    """

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        c = channels
        self.body = nn.Sequential(
            conv_act(in_channels, c),
            conv_act(c, 2 * c),
            nn.Conv2d(2 * c, 4 * c, 3, padding=2, dilation=2, bias=False),
            nn.LeakyReLU(LEAKY_SLOPE),
            conv_act(4 * c, 4 * c, stride=2),
        )
        self.context_pools = (8, 4)
        self.context = nn.ModuleList(conv_act(4 * c, c, 1) for _ in self.context_pools)
        self.fuse = nn.Sequential(conv_act(6 * c, 3 * c), conv_act(3 * c, c, 1, act=False))

    def forward(self, x: Tensor) -> Tensor:
        x = self.body(x)
        size = x.shape[-2:]
        branches = [x]
        for pool, conv in zip(self.context_pools, self.context, strict=True):
            pooled = F.avg_pool2d(x, pool, ceil_mode=True)
            branches.append(F.interpolate(conv(pooled), size=size, mode="bilinear"))
        return self.fuse(torch.cat(branches, dim=1))


def _matching_stack(conv: Callable[..., nn.Module], in_channels: int, f: int) -> nn.Sequential:
    """Five convs ``in -> f -> 3f/2 (stride 2) -> 3f/2 -> 2f (stride 2) -> 2f`` (2D or 3D)."""
    g = 3 * f // 2
    return nn.Sequential(
        conv(in_channels, f),
        conv(f, g, stride=2),
        conv(g, g),
        conv(g, 2 * f, stride=2),
        conv(2 * f, 2 * f),
    )


def _embedding(f: int, out_dim: int) -> nn.Sequential:
    """Linear ``2f -> out_dim`` + LeakyReLU, applied to each window's pooled features."""
    return nn.Sequential(nn.Linear(2 * f, out_dim), nn.LeakyReLU(LEAKY_SLOPE))


def he_init_(module: nn.Module) -> nn.Module:
    """He (Kaiming) normal init, fan-in, for LeakyReLU(0.2), of every 2D/3D conv in ``module``:
    keeps the signal's variance through the stack of bias-free conv + LeakyReLU layers."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Conv3d):
            nn.init.kaiming_normal_(layer.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def _pool_to_windows(features: Tensor, grid: tuple[int, int], embed: nn.Module) -> Tensor:
    """Average ``features`` over each window of the grid and embed: B x gh x gw x dim."""
    pooled = F.adaptive_avg_pool2d(features, grid)
    return embed(pooled.permute(0, 2, 3, 1))


class DisparityFeatureEstimator(nn.Module):
    """Disparity vectors per window from a DP pair, via a two-signed horizontal cost volume.

    Args:
        out_dim: size of each window's disparity vector.
        channels: width ``f`` of the view features; the 3D convs use ``f, 3f/2, 2f``.
        max_shift: shifts ``-max_shift .. max_shift`` at 1/8 resolution.
    """

    def __init__(self, out_dim: int = 256, channels: int = 32, max_shift: int = 3):
        super().__init__()
        if max_shift < 1:
            raise ValueError(f"max_shift must be >= 1, got {max_shift}")
        self.max_shift = max_shift
        self.features = ViewFeatures(3, channels)
        self.matching = _matching_stack(_conv3d_act, 2 * channels, channels)
        self.embed = _embedding(channels, out_dim)
        he_init_(self)

    def forward(self, left: Tensor, right: Tensor, grid: tuple[int, int]) -> Tensor:
        """Views B x 3 x H x W in [0, 1] (H, W multiples of 8) -> B x gh x gw x out_dim."""
        left = self.features(F.avg_pool2d(left, VIEW_POOL))
        right = self.features(F.avg_pool2d(right, VIEW_POOL))
        volume = self.matching(horizontal_cost_volume(left, right, self.max_shift))
        return _pool_to_windows(volume.mean(dim=2), grid, self.embed)


class ConcatViewFeatures(nn.Module):
    """Ablation: per-window vectors from the two views concatenated, no cost volume.

    Same interface and a similar plan as :class:`DisparityFeatureEstimator`, with 2D convs
    in place of the 3D ones.
    """

    def __init__(self, out_dim: int = 256, channels: int = 32):
        super().__init__()
        self.features = ViewFeatures(6, channels)
        self.matching = _matching_stack(conv_act, channels, channels)
        self.embed = _embedding(channels, out_dim)
        he_init_(self)

    def forward(self, left: Tensor, right: Tensor, grid: tuple[int, int]) -> Tensor:
        views = F.avg_pool2d(torch.cat([left, right], dim=1), VIEW_POOL)
        return _pool_to_windows(self.matching(self.features(views)), grid, self.embed)
