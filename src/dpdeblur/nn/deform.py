"""Modulated deformable convolution (DCNv2, paper ref. [41]) as DPANet uses it (Fig. 5).

DPANet's adapted DCNv2 splits the usual "pack" in two, because the side branch that
predicts the sampling offsets does not look at the features being sampled alone:

- :class:`OffsetMaskHead` is the side branch f_L / f_R of eqs. (8) and (10): conv(s) on the
  concatenation of both views' features (and, in the encoder, the cost volume) predicting
  ``3K = 27`` channels for a 3x3 kernel, split in three chunks ``(o1, o2, m)``;
  ``offset = cat(o1, o2)`` (2K channels, pairs (dy, dx) per tap: the layout
  ``torchvision.ops.deform_conv2d`` expects) and ``mask = sigmoid(m)`` (the modulation
  scalars Delta m^k).
- :class:`ModulatedDeformConv2d` is the deformable conv itself (eqs. (9) and (11)); the
  release shares one between the two encoder views.

Two initialisations of the side branch are offered: ``"release"`` (PyTorch's default conv
init, what the released code does) and ``"paper"`` (Sec. IV-A: offsets 0 and modulation
0.5, i.e. the last conv of the head zeroed).

Two implementations of the same operator compute the conv (``implementation``):
``"torchvision"`` (``torchvision.ops.deform_conv2d``: a CUDA kernel; on the CPU one thread)
and ``"sampled"`` (:func:`dpdeblur.nn.deform_sampled.sampled_deform_conv2d`: bilinear
sampling by ``grid_sample`` and one matrix product, on every core). They agree to 1e-5 in
float32, forward and backward (tests/nn/test_deform_sampled.py). ``"auto"`` picks
``"sampled"`` off CUDA: on the project's 2-core CPU a DPANet forward + backward pass at
256x256 took 0.29x the time with it, the forward pass 0.39x (docs/benchmarks.md,
"Deformable convolution on the CPU"). On CUDA it picks ``"torchvision"`` (its own kernel;
the sampled path has not been timed on a GPU). The weights are the same parameters either
way, so released weights load into both.

Determinism: on CUDA both backward passes accumulate with atomics (torchvision's kernel,
``grid_sample``'s backward), as do the backward passes of bilinear upsampling and adaptive
average pooling in K3DN's disparity branch. ``trainer.deterministic=true`` makes PyTorch
raise on the first of these it knows about, so train with ``trainer.deterministic: warn``:
seeded, deterministic algorithms wherever PyTorch has them, a warning for the rest.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from dpdeblur.nn.deform_sampled import sampled_deform_conv2d

OffsetInit = Literal["release", "paper"]
OFFSET_INITS = ("release", "paper")
DcnImplementation = Literal["auto", "torchvision", "sampled"]
DCN_IMPLEMENTATIONS = ("auto", "torchvision", "sampled")


def resolve_dcn_implementation(implementation: str, device: torch.device) -> str:
    """The implementation ``"auto"`` stands for on ``device``: ``"torchvision"`` on CUDA,
    ``"sampled"`` elsewhere (module docstring); other names are returned as they are."""
    if implementation not in DCN_IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {DCN_IMPLEMENTATIONS}, got {implementation!r}"
        )
    if implementation != "auto":
        return implementation
    return "torchvision" if device.type == "cuda" else "sampled"


class ModulatedDeformConv2d(nn.Module):
    """DCNv2: ``y(p) = sum_k w_k * x(p + p_k + dp_k) * m_k + b`` (eq. (9)), one offset group.

    Weights are uniform in +-1/sqrt(Cin * k * k) and the bias is 0, as in the release.
    ``forward(x, offset, mask)`` takes the offsets (B x 2k^2 x H x W) and the modulation
    scalars (B x k^2 x H x W) from an :class:`OffsetMaskHead`. ``implementation``:
    ``"auto"`` (by the input's device), ``"torchvision"`` or ``"sampled"`` (module
    docstring); it is not part of the state dict.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int | None = None,
        bias: bool = True,
        implementation: DcnImplementation = "auto",
    ):
        super().__init__()
        resolve_dcn_implementation(implementation, torch.device("cpu"))  # validates the name
        self.implementation = implementation
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2 if padding is None else padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    # Column-buffer budget per deform_conv2d call (see _deform) or per sample (sampled).
    max_column_bytes = 1 << 30

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        if resolve_dcn_implementation(self.implementation, x.device) == "sampled":
            # Samples in float32 and multiplies in autocast's dtype (deform_sampled).
            return sampled_deform_conv2d(
                x,
                offset,
                self.weight,
                self.bias,
                padding=self.padding,
                mask=mask,
                max_column_bytes=self.max_column_bytes,
            )
        if x.dtype in (torch.float16, torch.bfloat16) or offset.dtype != x.dtype:
            # As torchvision's own CUDA autocast rule does: run in float32 (its CPU kernel
            # has no bfloat16/float16 version), return in the input's dtype.
            with torch.autocast(x.device.type, enabled=False):
                out = self._deform(x.float(), offset.float(), mask.float())
            return out.to(x.dtype)
        return self._deform(x, offset, mask)

    def _deform(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        weight = self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        # torchvision samples into a (Cin k^2) x (B H W) column buffer before its GEMM: 4.3 GB
        # for 64 channels at 1120x1680. The conv is linear in the input channels and every
        # channel uses the same offsets and mask, so large inputs run in channel chunks and
        # the partial outputs are summed (exact up to float summation order).
        batch, channels, height, width = x.shape
        column_bytes = channels * self.kernel_size**2 * batch * height * width * x.element_size()
        chunks = min(channels, -(-column_bytes // self.max_column_bytes))
        if chunks <= 1:
            return deform_conv2d(x, offset, weight, bias, padding=self.padding, mask=mask)
        step = -(-channels // chunks)
        out = None
        for start in range(0, channels, step):
            part = deform_conv2d(
                x[:, start : start + step],
                offset,
                weight[:, start : start + step],
                bias if start == 0 else None,
                padding=self.padding,
                mask=mask,
            )
            out = part if out is None else out + part
        return out

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"padding={self.padding}, bias={self.bias is not None}, "
            f"implementation={self.implementation!r}"
        )


class OffsetMaskHead(nn.Module):
    """Side branch of the adapted DCNv2 (Fig. 5, eqs. (8), (10)): features -> (offset, mask).

    ``num_convs = 1`` is the release (one 3x3 conv, ``in_channels -> 3 k^2``); ``num_convs =
    3`` is ablation #4 of Table III ("three convolution layers in the side branch"): two 3x3
    convs to ``hidden_channels`` with LeakyReLU(0.1), then the 3x3 conv to ``3 k^2``.
    The layers live in ``body`` (a Sequential), the predicting conv last.
    """

    def __init__(
        self,
        in_channels: int,
        kernel_size: int = 3,
        num_convs: int = 1,
        hidden_channels: int | None = None,
        init: OffsetInit = "release",
    ):
        super().__init__()
        if num_convs < 1:
            raise ValueError(f"num_convs must be >= 1, got {num_convs}")
        if init not in OFFSET_INITS:
            raise ValueError(f"offset init must be one of {OFFSET_INITS}, got {init!r}")
        self.kernel_taps = kernel_size**2
        hidden = hidden_channels or in_channels
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(num_convs - 1):
            layers += [nn.Conv2d(channels, hidden, 3, padding=1), nn.LeakyReLU(0.1)]
            channels = hidden
        layers.append(nn.Conv2d(channels, 3 * self.kernel_taps, 3, padding=1))
        self.body = nn.Sequential(*layers)
        if init == "paper":
            last = self.body[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)  # offsets 0, mask sigmoid(0) = 0.5

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        o1, o2, m = torch.chunk(self.body(features), 3, dim=1)
        return torch.cat((o1, o2), dim=1), torch.sigmoid(m)


def set_dcn_implementation(model: nn.Module, implementation: DcnImplementation) -> int:
    """Switch every :class:`ModulatedDeformConv2d` in ``model`` to ``implementation`` (the
    weights stay as they are); returns how many were switched."""
    resolve_dcn_implementation(implementation, torch.device("cpu"))  # validates the name
    convs = [m for m in model.modules() if isinstance(m, ModulatedDeformConv2d)]
    for conv in convs:
        conv.implementation = implementation
    return len(convs)
