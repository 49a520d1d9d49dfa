"""Plain convolution layers of K3DN's U-Net backbone (spec: k3dn.md, part b).

The structure follows the known third-party inference code: bias-free convolutions with
LeakyReLU(0.2), residual blocks of two 3x3 convs (the second without activation) and stacks
of such blocks at each scale. The paper's own text does not describe the backbone.
"""

from __future__ import annotations

from torch import Tensor, nn

LEAKY_SLOPE = 0.2


def conv_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    act: bool = True,
    transpose: bool = False,
) -> nn.Sequential:
    """Bias-free conv (or transposed conv for x2 upsampling) followed by LeakyReLU(0.2).

    A transposed conv with ``kernel_size=4, stride=2`` doubles H and W exactly; a plain conv
    with stride 2 halves even sizes exactly.
    """
    if transpose:
        conv: nn.Module = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2 - 1,
            bias=False,
        )
    else:
        conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        )
    layers = [conv]
    if act:
        layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """x + conv(act(conv(x))), two bias-free 3x3 convs, width kept."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            conv_act(channels, channels, 3, act=True),
            conv_act(channels, channels, 3, act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def res_stack(channels: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` :class:`ResBlock` in a row (an "EBlock" of the inference code)."""
    return nn.Sequential(*(ResBlock(channels) for _ in range(num_blocks)))
