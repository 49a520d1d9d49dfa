"""Restormer for dual-pixel defocus deblurring (Zamir, Arora, Khan, Hayat, Khan, Yang,
"Restormer: Efficient Transformer for High-Resolution Image Restoration", CVPR 2022,
arXiv 2111.09881; github.com/swz30/Restormer), in its dual-pixel configuration.

The network of Fig. 2, with the authors' dual-pixel settings (``restormer_dp``,
26,132,548 parameters; their released ``dual_pixel_defocus_deblurring.pth`` loads
strictly: the same 495 keys, shapes and order):

- Input: the two views stacked as 6 channels, ``[L (RGB), R (RGB)]``, left first, values
  in [0, 1] (the release's training and test convention).
- Shallow features: a 3x3 conv to C = ``dim`` = 48 channels (``patch_embed``).
- A 4-level encoder-decoder of Transformer blocks (:class:`TransformerBlock`: MDTA, Sec.
  3.1, then GDFN, Sec. 3.2, each after a channel LayerNorm and with a residual) with
  4, 6, 6, 8 blocks and 1, 2, 4, 8 heads at C, 2C, 4C, 8C channels. Going down, a 3x3 conv
  halves the channels and pixel-unshuffle trades 2x2 pixels for 4x the channels
  (:class:`Downsample`); going up, a 3x3 conv doubles them and pixel-shuffle does the
  reverse (:class:`Upsample`). Decoder levels 3 and 2 concatenate ``[upsampled, encoder
  skip]`` and reduce the channels with a 1x1 conv; level 1 keeps the 2C channels of the
  concatenation (no reduction) with one head.
- Refinement: 4 more blocks at 2C channels and full resolution.
- The dual-pixel skip: a 1x1 conv (C -> 2C) of the shallow features is added to the
  refined features; a 3x3 conv gives the 3-channel image. There is no residual to an input
  view in the dual-pixel configuration (the single-image Restormer adds its input image).

Any H, W: the pair is reflect-padded on the bottom/right to a multiple of 8 (three 2x
downsamplings) and the output cropped back, as the authors' demo and validation do (their
DPDD test images need no padding). The output is not clamped; scoring clamps it to [0, 1]
as the release's test does. ``restormer_dp_tiny`` is ours (a CPU-sized variant).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.models.padding import check_dp_inputs, crop_to, pad_to_multiple
from dpdeblur.models.registry import ModelInfo, register_model

LAYER_NORMS = ("with_bias", "bias_free")
LEVELS = 4  # encoder levels; three 2x downsamplings between them
NORM_EPS = 1e-5


class _BiasFreeBody(nn.Module):
    """Scale-only normalisation over the last axis: ``x / sqrt(var + eps) * weight``, with
    the variance taken about the mean but the mean not subtracted."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        variance = x.var(dim=-1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(variance + NORM_EPS) * self.weight


class ChannelLayerNorm(nn.Module):
    """Layer normalisation over the channels of every pixel of a BxCxHxW tensor.

    ``"with_bias"``: the standard layer norm over C (biased variance, eps 1e-5, weight and
    bias); ``"bias_free"``: the mean is not subtracted and there is no bias. The learnable
    tensors live in ``body`` (``body.weight``, ``body.bias``), the release's names.
    """

    def __init__(self, channels: int, kind: str = "with_bias"):
        super().__init__()
        if kind not in LAYER_NORMS:
            raise ValueError(f"layer_norm must be one of {LAYER_NORMS}, got {kind!r}")
        self.body: nn.Module = (
            nn.LayerNorm(channels, eps=NORM_EPS) if kind == "with_bias" else _BiasFreeBody(channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class MDTA(nn.Module):
    """Multi-Dconv head Transposed Attention (Sec. 3.1).

    Q, K, V come from a 1x1 conv (C -> 3C) followed by a depthwise 3x3 conv, split in that
    order. Each is cut into ``heads`` groups of C/heads channels (head-outer channel order)
    with the pixels flattened; Q and K are L2-normalised over the pixels. The attention map
    is the (C/heads) x (C/heads) product Q K^T of each head, scaled by the head's learnable
    ``temperature`` (multiplied; the paper writes a division by alpha) and softmax-normalised
    over the key channels; it mixes V's channels. A 1x1 conv projects the result. The map is
    computed over every pixel of the image: global context, linear in H x W.
    """

    def __init__(self, channels: int, heads: int, bias: bool = False):
        super().__init__()
        if channels % heads:
            raise ValueError(f"{channels} channels do not split into {heads} heads")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(
            3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=bias
        )
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        shape = (batch, self.heads, channels // self.heads, height * width)
        q, k, v = (t.reshape(shape) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attention = (q @ k.transpose(-2, -1) * self.temperature).softmax(dim=-1)
        out = (attention @ v).reshape(batch, channels, height, width)
        return self.project_out(out)


class GDFN(nn.Module):
    """Gated-Dconv Feed-forward Network (Sec. 3.2).

    A 1x1 conv expands C to 2H channels (H = int(C x ``expansion``), truncated), a
    depthwise 3x3 conv follows; the first H channels, through GELU (exact, erf form), gate
    the last H by an elementwise product; a 1x1 conv maps H back to C.
    """

    def __init__(self, channels: int, expansion: float = 2.66, bias: bool = False):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class TransformerBlock(nn.Module):
    """One Transformer block of Fig. 2: ``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``."""

    def __init__(
        self,
        channels: int,
        heads: int,
        expansion: float = 2.66,
        bias: bool = False,
        layer_norm: str = "with_bias",
    ):
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels, layer_norm)
        self.attn = MDTA(channels, heads, bias)
        self.norm2 = ChannelLayerNorm(channels, layer_norm)
        self.ffn = GDFN(channels, expansion, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class PatchEmbed(nn.Module):
    """Shallow feature extraction: a 3x3 conv (no bias) from the input to C channels."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, channels, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """n -> 2n channels at half resolution: a 3x3 conv to n/2, then pixel-unshuffle by 2
    (channel ``4c + 2i + j`` holds pixel ``(2y + i, 2x + j)`` of channel c)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """n -> n/2 channels at double resolution: a 3x3 conv to 2n, then pixel-shuffle by 2."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False), nn.PixelShuffle(2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def _stage(
    count: int, channels: int, heads: int, expansion: float, bias: bool, layer_norm: str
) -> nn.Sequential:
    return nn.Sequential(
        *(TransformerBlock(channels, heads, expansion, bias, layer_norm) for _ in range(count))
    )


class Restormer(nn.Module):
    """Restormer on a DP pair: ``model(left, right)`` -> restored Bx3xHxW image.

    Args:
        dim: channels C of the first level (48; 2C, 4C, 8C below it).
        num_blocks: Transformer blocks of levels 1..4 (4, 6, 6, 8); the decoder levels 3..1
            repeat those of the encoder levels.
        num_refinement_blocks: blocks of the refinement stage (4).
        heads: attention heads of levels 1..4 (1, 2, 4, 8); decoder level 1 and the
            refinement use ``heads[0]``.
        ffn_expansion_factor: GDFN's hidden width over its input width (2.66).
        bias: biases in the blocks' convs, the 1x1 reductions, the DP skip and the output
            conv (the release: none; the patch embedding and the resampling convs never
            have one).
        layer_norm: ``"with_bias"`` (the release) or ``"bias_free"``.
    """

    def __init__(
        self,
        dim: int = 48,
        num_blocks: Sequence[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: Sequence[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        layer_norm: str = "with_bias",
    ):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
            raise ValueError(
                f"dim is Restormer's channel count of the first level (48 in the paper), a "
                f"positive even integer, got {dim!r}"
            )
        if len(num_blocks) != LEVELS or len(heads) != LEVELS:
            raise ValueError(
                f"num_blocks and heads need one entry per level ({LEVELS}), got "
                f"{list(num_blocks)} and {list(heads)}"
            )
        if layer_norm not in LAYER_NORMS:
            raise ValueError(f"layer_norm must be one of {LAYER_NORMS}, got {layer_norm!r}")
        c = dim
        options = (ffn_expansion_factor, bias, layer_norm)

        # Registration order = the release's state-dict order.
        self.patch_embed = PatchEmbed(6, c)
        self.encoder_level1 = _stage(num_blocks[0], c, heads[0], *options)
        self.down1_2 = Downsample(c)
        self.encoder_level2 = _stage(num_blocks[1], 2 * c, heads[1], *options)
        self.down2_3 = Downsample(2 * c)
        self.encoder_level3 = _stage(num_blocks[2], 4 * c, heads[2], *options)
        self.down3_4 = Downsample(4 * c)
        self.latent = _stage(num_blocks[3], 8 * c, heads[3], *options)
        self.up4_3 = Upsample(8 * c)
        self.reduce_chan_level3 = nn.Conv2d(8 * c, 4 * c, 1, bias=bias)
        self.decoder_level3 = _stage(num_blocks[2], 4 * c, heads[2], *options)
        self.up3_2 = Upsample(4 * c)
        self.reduce_chan_level2 = nn.Conv2d(4 * c, 2 * c, 1, bias=bias)
        self.decoder_level2 = _stage(num_blocks[1], 2 * c, heads[1], *options)
        self.up2_1 = Upsample(2 * c)
        self.decoder_level1 = _stage(num_blocks[0], 2 * c, heads[0], *options)
        self.refinement = _stage(num_refinement_blocks, 2 * c, heads[0], *options)
        self.skip_conv = nn.Conv2d(c, 2 * c, 1, bias=bias)
        self.output = nn.Conv2d(2 * c, 3, 3, padding=1, bias=bias)

    def input_multiple(self) -> int:
        """H and W multiple the forward pads to: three 2x pixel-unshuffles."""
        return 2 ** (LEVELS - 1)

    def restore(self, x: Tensor) -> Tensor:
        """The network on a 6-channel input ``[L, R]`` whose H and W are multiples of 8."""
        shallow = self.patch_embed(x)
        e1 = self.encoder_level1(shallow)
        e2 = self.encoder_level2(self.down1_2(e1))
        e3 = self.encoder_level3(self.down2_3(e2))
        z = self.latent(self.down3_4(e3))
        d3 = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(z), e3], 1)))
        d2 = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(d3), e2], 1)))
        d1 = self.decoder_level1(torch.cat([self.up2_1(d2), e1], 1))
        refined = self.refinement(d1) + self.skip_conv(shallow)
        return self.output(refined)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """Deblur a DP pair (Bx3xHxW each, RGB in [0, 1], any H, W)."""
        check_dp_inputs(left, right)
        x, size = pad_to_multiple(torch.cat([left, right], dim=1), self.input_multiple())
        return crop_to(self.restore(x), size)


def restormer_info(main_benchmark: bool = False, weights_format: str | None = None) -> ModelInfo:
    """The facts every Restormer variant shares."""
    return ModelInfo(
        architecture=Restormer,
        paper="Zamir et al., Restormer: Efficient Transformer for High-Resolution Image "
        "Restoration, CVPR 2022 (arXiv 2111.09881); github.com/swz30/Restormer",
        size_argument="dim",
        size_meaning="channel count of the first level (48 in the paper; 2x, 4x, 8x below it)",
        input_multiple=Restormer.input_multiple,
        margin=None,
        global_context="global context: every MDTA attention map is a channel-to-channel "
        "product over all pixels of the (padded) image, so each output pixel depends on the "
        "whole input",
        weights_format=weights_format,
        main_benchmark=main_benchmark,
    )


@register_model(info=restormer_info(main_benchmark=True, weights_format="restormer-dp-pth"))
def restormer_dp(**kwargs) -> Restormer:
    """Restormer in the authors' dual-pixel configuration (26,132,548 parameters; their
    released dual_pixel_defocus_deblurring.pth loads strictly)."""
    return Restormer(**kwargs)


@register_model(info=restormer_info())
def restormer_dp_tiny(**kwargs) -> Restormer:
    """Ours: ``restormer_dp`` at C = 16 with 1, 2, 2, 2 blocks per level and 1 refinement
    block (1,145,387 parameters; the CPU size)."""
    defaults = {"dim": 16, "num_blocks": (1, 2, 2, 2), "num_refinement_blocks": 1}
    return Restormer(**{**defaults, **kwargs})
