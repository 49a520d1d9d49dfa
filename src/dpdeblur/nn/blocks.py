"""Convolutional building blocks of DPANet (docs/dpanet.md, "Building blocks").

- :class:`SamePadConv2d`: the release's "same" padded convolution (TensorFlow-style: the
  total padding ``k - 1`` is split with the extra pixel at the right/bottom), used for the
  first conv of every conv block, the cost-volume embedding, the decoder's 2x2 up-conv and
  the output head. Kept as its own type because the paper's FLOP figure (counted with
  ``thop``) skips it, and :mod:`dpdeblur.research.benchmarks.macs` reproduces that count.
- :class:`ResBlock`: conv3x3 -> ReLU -> conv3x3 plus identity, no normalisation (EDVR's
  ``ResidualBlock_noBN``), initialised kaiming-normal (fan_in) scaled by 0.1, bias 0.
- :class:`ConvBlock`: the feature extractor / fusion block of Sec. III-C ("one
  convolutional layer and two ResBlocks"): same-padded conv3x3 + ReLU, then 2 ResBlocks.
- :class:`UpConv`: the decoder's upsampling (Sec. III-C.2, nearest-neighbour x2) followed by
  the release's 2x2 same-padded conv that halves the channels, no activation.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def same_padding(kernel_size: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zero padding that keeps the size of a stride-1 conv ("same").

    The total ``dilation * (kernel_size - 1)`` is split with the odd pixel after, as
    TensorFlow's ``SAME`` does: (1, 1) for 3x3, (0, 1) for 2x2, (0, 0) for 1x1.
    """
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


class SamePadConv2d(nn.Conv2d):
    """Stride-1 conv with "same" zero padding, initialised as in the release.

    Symmetric padding goes to the convolution itself; only even kernels (the decoder's 2x2)
    pad explicitly, one pixel right and bottom. Weights: kaiming normal (fan_out, ReLU);
    bias: PyTorch's default, as the release leaves it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True):
        before, after = same_padding(kernel_size)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            padding=before if before == after else 0,
            bias=bias,
        )
        self._explicit_pad = None if before == after else (before, after, before, after)
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        if self._explicit_pad is not None:
            x = F.pad(x, self._explicit_pad)
        return super().forward(x)


class ResBlock(nn.Module):
    """Residual block without normalisation: ``x + conv2(relu(conv1(x)))`` (EDVR)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class ConvBlock(nn.Module):
    """Feature extractor F_E / fusion block F_D (Sec. III-C): conv3x3 + ReLU, 2 ResBlocks."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = SamePadConv2d(in_channels, out_channels, 3)
        self.res = nn.Sequential(ResBlock(out_channels), ResBlock(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.res(F.relu(self.conv(x)))


class UpConv(nn.Module):
    """Decoder upsampling: nearest x2, then a 2x2 same-padded conv ``C -> C // 2``."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__()
        self.conv = SamePadConv2d(in_channels, out_channels or in_channels // 2, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def match_size(x: Tensor, reference: Tensor) -> Tensor:
    """Zero-pad (or, for negative differences, crop) ``x`` centred to ``reference``'s H, W.

    The release's decoder does this after every upsampling; in its first step the upsampled
    bottleneck is twice the skip's size and this crops the centre.
    """
    diff_y = reference.shape[-2] - x.shape[-2]
    diff_x = reference.shape[-1] - x.shape[-1]
    if diff_y == 0 and diff_x == 0:
        return x
    return F.pad(x, (diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2))
