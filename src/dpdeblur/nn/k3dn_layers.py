"""Plain convolution layers of K3DN's U-Net backbone (docs/k3dn.md, "The network").

The structure is the public K3DN code's: bias-free convolutions followed by LeakyReLU(0.2)
(:class:`BasicConv`), residual blocks of two 3x3 convs with nothing applied after the sum
(:class:`ResBlock`) and four of them at each scale (:class:`EBlock`). The attribute names
(``main``, ``layers``) are those of its checkpoint, so that the released state dict's keys
are this module tree's keys. The paper's own text does not describe the backbone.
"""

from __future__ import annotations

from torch import Tensor, nn

LEAKY_SLOPE = 0.2


class BasicConv(nn.Module):
    """Bias-free conv (or transposed conv for x2 upsampling), then LeakyReLU(0.2) if ``act``.

    A plain conv pads by ``kernel_size // 2`` (stride 2 halves even sizes exactly); a
    transposed conv with ``kernel_size=4, stride=2`` pads by 1 and doubles H and W exactly.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: bool = True,
        transpose: bool = False,
    ):
        super().__init__()
        if transpose:
            conv: nn.Module = nn.ConvTranspose2d(
                in_channels, out_channels, kernel_size, stride, kernel_size // 2 - 1, bias=False
            )
        else:
            conv = nn.Conv2d(
                in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False
            )
        layers = [conv, nn.LeakyReLU(LEAKY_SLOPE)] if act else [conv]
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class ResBlock(nn.Module):
    """``x + conv2(lrelu(conv1(x)))``: two bias-free 3x3 convs, channels kept (DPANet's
    residual block, with bias and ReLU, is :class:`dpdeblur.nn.blocks.ResBlock`)."""

    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(channels, channels, 3, act=True),
            BasicConv(channels, channels, 3, act=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main(x)


class EBlock(nn.Module):
    """``num_blocks`` :class:`ResBlock` in a row (one encoder or decoder level)."""

    def __init__(self, channels: int, num_blocks: int = 4):
        super().__init__()
        self.layers = nn.Sequential(*(ResBlock(channels) for _ in range(num_blocks)))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
