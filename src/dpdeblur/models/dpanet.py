"""DPANet: Dual-Pixel Alignment Network (Li et al., "Learning Dual-Pixel Alignment for Defocus
Deblurring", arXiv 2204.12105), as its authors released it (details in docs/dpanet.md).

Fig. 3 of the paper; the release's layout at ``width=1``:

- F_E^0, the pyramid pre-deblur (:class:`~dpdeblur.nn.predeblur.PyramidPredeblur`, 64
  channels), shared by the left and right views; ``cv0 = lrelu(corr(E_L^0, E_R^0))``.
- Encoder levels i = 1..4 at H, H/2, H/4, H/8 with 64, 128, 256, 512 channels
  (:class:`EncoderLevel`): max-pool (not at level 1) the two views and the incoming cost
  volume, shared feature extractor F_E^i (:class:`~dpdeblur.nn.blocks.ConvBlock`), then the
  EAM A_E^i (Sec. III-D.1, Fig. 4a): cost-volume embedding (1x1 conv, ReLU, 1x1 conv, ReLU),
  an offset/mask head per view on ``cat[E_L, E_R, V]`` (eq. (8)), and one modulated
  deformable conv shared by the views (eq. (9)). After levels 1-3 the aligned features give
  the next cost volume (eq. (7)).
- F_E^M: a plain shared conv block at H/8 ("encoder_5" in the release: no pooling, no EAM).
- Decoder levels j = 4..1 (:class:`DecoderLevel`): nearest x2 + 2x2 conv halving the
  channels, centre pad/crop to the skip's size, the DAM A_D^j (Sec. III-D.2, Fig. 4b):
  left then right skip aligned by their own deformable convs, offsets from
  ``cat[skip_L, skip_R, up]`` (eqs. (10), (11); the right head sees the already aligned
  left skip), then the fusion block F_D^j on ``cat[skip_L, skip_R, up]`` (eq. (12)).
- Head: conv3x3, ReLU, conv3x3 to RGB, sigmoid (no residual to the input).

Constructor flags express the ablations of Tables III and IV; the registry names at the
bottom fix one table row each (see :data:`VARIANTS`). Where the paper leaves a choice open,
the docstring of the flag says what was chosen and why (also in docs/dpanet.md).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.models.padding import check_dp_inputs, crop_to, pad_to_multiple
from dpdeblur.models.registry import ModelInfo, register_model
from dpdeblur.nn.blocks import ConvBlock, SamePadConv2d, UpConv, match_size
from dpdeblur.nn.correlation import correlation
from dpdeblur.nn.deform import (
    DCN_IMPLEMENTATIONS,
    OFFSET_INITS,
    DcnImplementation,
    ModulatedDeformConv2d,
    OffsetInit,
    OffsetMaskHead,
)
from dpdeblur.nn.predeblur import PyramidPredeblur

EamOffsets = Literal["both", "features", "cost_volume"]
EAM_OFFSETS = ("both", "features", "cost_volume")


def _offset_input_channels(channels: int, offsets_from: EamOffsets) -> int:
    return {"both": 3 * channels, "features": 2 * channels, "cost_volume": channels}[offsets_from]


class EncoderLevel(nn.Module):
    """Encoder block i: feature extractor F_E^i and alignment module A_E^i (eq. (3)).

    With ``eam=False`` (ablations #5 and the baseline) the deformable conv is replaced by a
    plain 3x3 conv of the same shape and there is no cost volume and no offset branch.
    ``offsets_from`` selects the side-branch input: ``"both"`` = ``cat[E_L, E_R, V]`` (the
    release), ``"features"`` = ``cat[E_L, E_R]`` (#6, no cost volume), ``"cost_volume"`` =
    the embedded cost volume alone (#7). ``share=False`` gives the right view its own
    feature extractor and deformable conv (#1). ``dcn_implementation``: see
    :class:`~dpdeblur.nn.deform.ModulatedDeformConv2d`.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        pool: bool,
        share: bool = True,
        eam: bool = True,
        offsets_from: EamOffsets = "both",
        offset_convs: int = 1,
        offset_init: OffsetInit = "release",
        cost_volume_channels: int = 81,
        dcn_implementation: DcnImplementation = "auto",
    ):
        super().__init__()
        self.pool = pool
        self.eam = eam
        self.offsets_from = offsets_from
        self.block = ConvBlock(in_channels, channels)
        self.block_r = None if share else ConvBlock(in_channels, channels)
        self.uses_cost_volume = eam and offsets_from != "features"
        self.cv_embed = None
        if self.uses_cost_volume:
            self.cv_embed = nn.Sequential(
                SamePadConv2d(cost_volume_channels, channels, 1),
                nn.ReLU(inplace=True),
                SamePadConv2d(channels, channels, 1),
                nn.ReLU(inplace=True),
            )
        self.offset_l = self.offset_r = None
        if eam:
            head_in = _offset_input_channels(channels, offsets_from)
            self.offset_l = OffsetMaskHead(head_in, 3, offset_convs, channels, offset_init)
            self.offset_r = OffsetMaskHead(head_in, 3, offset_convs, channels, offset_init)
            dcn = {"implementation": dcn_implementation}
            self.align = ModulatedDeformConv2d(channels, channels, 3, **dcn)
            self.align_r = None if share else ModulatedDeformConv2d(channels, channels, 3, **dcn)
        else:
            self.align = SamePadConv2d(channels, channels, 3)
            self.align_r = None if share else SamePadConv2d(channels, channels, 3)

    def forward(
        self, left: Tensor, right: Tensor, cost_volume: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        if self.pool:
            left, right = F.max_pool2d(left, 2), F.max_pool2d(right, 2)
            if cost_volume is not None:
                cost_volume = F.max_pool2d(cost_volume, 2)
        left = self.block(left)
        right = (self.block if self.block_r is None else self.block_r)(right)
        align_r = self.align if self.align_r is None else self.align_r
        if not self.eam:
            return self.align(left), align_r(right)
        if self.offsets_from == "features":
            hints = torch.cat([left, right], dim=1)
        else:
            if cost_volume is None:
                raise ValueError("this encoder level needs the cost volume of the level above")
            embedded = self.cv_embed(cost_volume)
            hints = (
                embedded
                if self.offsets_from == "cost_volume"
                else torch.cat([left, right, embedded], dim=1)
            )
        offset_l, mask_l = self.offset_l(hints)
        offset_r, mask_r = self.offset_r(hints)
        del hints
        return self.align(left, offset_l, mask_l), align_r(right, offset_r, mask_r)


class DecoderLevel(nn.Module):
    """Decoder block j: upsampling, alignment module A_D^j and fusion block F_D^j (eqs. (4),
    (5), (10)-(12)).

    ``in_channels`` come from the level below (twice ``channels``); the output has
    ``channels``. With ``dam=False`` (#8 and the baseline) each skip goes through a plain
    3x3 conv in place of its deformable conv, with no offset branch.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        dam: bool = True,
        offset_convs: int = 1,
        offset_init: OffsetInit = "release",
        dcn_implementation: DcnImplementation = "auto",
    ):
        super().__init__()
        self.dam = dam
        self.upsample = UpConv(in_channels, channels)
        self.offset_l = self.offset_r = None
        if dam:
            self.offset_l = OffsetMaskHead(3 * channels, 3, offset_convs, channels, offset_init)
            self.offset_r = OffsetMaskHead(3 * channels, 3, offset_convs, channels, offset_init)
            dcn = {"implementation": dcn_implementation}
            self.align_l = ModulatedDeformConv2d(channels, channels, 3, **dcn)
            self.align_r = ModulatedDeformConv2d(channels, channels, 3, **dcn)
        else:
            self.align_l = SamePadConv2d(channels, channels, 3)
            self.align_r = SamePadConv2d(channels, channels, 3)
        self.fuse = ConvBlock(3 * channels, channels)

    def forward(self, x: Tensor, skip_l: Tensor, skip_r: Tensor) -> Tensor:
        up = match_size(self.upsample(x), skip_l)
        if self.dam:
            # Sequential, as released: the right head sees the aligned left skip.
            offset, mask = self.offset_l(torch.cat([skip_l, skip_r, up], dim=1))
            skip_l = self.align_l(skip_l, offset, mask)
            offset, mask = self.offset_r(torch.cat([skip_l, skip_r, up], dim=1))
            skip_r = self.align_r(skip_r, offset, mask)
        else:
            skip_l, skip_r = self.align_l(skip_l), self.align_r(skip_r)
        return self.fuse(torch.cat([skip_l, skip_r, up], dim=1))


class DPANet(nn.Module):
    """Dual-Pixel Alignment Network; ``model(left, right)`` -> restored image in [0, 1].

    Args:
        width: multiplier of every channel count (1.0 = the release: 64 channels at full
            resolution, doubling per scale). Small widths keep the same code fast on a CPU.
        num_scales: spatial scales of the encoder/decoder. 4 is the release (H .. H/8);
            5 is the paper text's M = 5 read as five scales (H .. H/16, channels doubling
            to 1024 at width 1).
        share_encoder: one set of encoder weights for both views (the paper's choice);
            False is Table III #1 ("two individual encoders": pre-deblur, feature
            extractors, encoder deformable convs and the last encoder block per view).
        predeblur: use the pyramid pre-deblur F_E^0; False is Table III #2 (E^0 = the
            input views, so the first cost volume correlates RGB pixels).
        eam: encoder alignment modules; False is Table IV #5.
        dam: decoder alignment modules; False is Table IV #8. Both False is the Table IV
            baseline (60.76M parameters, as the paper states).
        eam_offsets: side-branch input of the EAM: "both" (release), "features" (#6),
            "cost_volume" (#7).
        offset_convs: convs in every offset branch, 1 (release) or 3 (Table III #4).
        offset_init: "release" (PyTorch default init of the offset convs) or "paper"
            (Sec. IV-A: offsets 0, modulation 0.5).
        max_displacement: d of the correlation window ((2d+1)^2 channels); 4 in the release.
        dcn_implementation: how every deformable conv is computed: ``"auto"`` (by the
            input's device: ``"sampled"`` on the CPU, ``"torchvision"`` on CUDA),
            ``"torchvision"`` or ``"sampled"`` (:mod:`dpdeblur.nn.deform`). Not part of the
            weights: released weights load whichever is chosen.
    """

    def __init__(
        self,
        width: float = 1.0,
        num_scales: int = 4,
        share_encoder: bool = True,
        predeblur: bool = True,
        eam: bool = True,
        dam: bool = True,
        eam_offsets: EamOffsets = "both",
        offset_convs: int = 1,
        offset_init: OffsetInit = "release",
        max_displacement: int = 4,
        dcn_implementation: DcnImplementation = "auto",
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if num_scales < 2:
            raise ValueError(f"num_scales must be >= 2, got {num_scales}")
        if eam_offsets not in EAM_OFFSETS:
            raise ValueError(f"eam_offsets must be one of {EAM_OFFSETS}, got {eam_offsets!r}")
        if offset_init not in OFFSET_INITS:
            raise ValueError(f"offset_init must be one of {OFFSET_INITS}, got {offset_init!r}")
        if max_displacement < 0:
            raise ValueError(f"max_displacement must be >= 0, got {max_displacement}")
        if dcn_implementation not in DCN_IMPLEMENTATIONS:
            raise ValueError(
                f"dcn_implementation must be one of {DCN_IMPLEMENTATIONS}, got "
                f"{dcn_implementation!r}"
            )
        base = max(1, round(64 * width))
        self.channels = [base * 2**i for i in range(num_scales)]
        self.max_displacement = max_displacement

        self.predeblur = PyramidPredeblur(base) if predeblur else None
        self.predeblur_r = PyramidPredeblur(base) if predeblur and not share_encoder else None
        stem = base if predeblur else 3
        level_kwargs = dict(
            share=share_encoder,
            eam=eam,
            offsets_from=eam_offsets,
            offset_convs=offset_convs,
            offset_init=offset_init,
            cost_volume_channels=(2 * max_displacement + 1) ** 2,
            dcn_implementation=dcn_implementation,
        )
        self.encoder = nn.ModuleList(
            EncoderLevel(stem if i == 0 else self.channels[i - 1], c, pool=i > 0, **level_kwargs)
            for i, c in enumerate(self.channels)
        )
        top = self.channels[-1]
        self.bottleneck = ConvBlock(top, top)
        self.bottleneck_r = None if share_encoder else ConvBlock(top, top)
        # decoder[i] works at scale i; it runs from the deepest level up.
        self.decoder = nn.ModuleList(
            DecoderLevel(
                2 * c,
                c,
                dam=dam,
                offset_convs=offset_convs,
                offset_init=offset_init,
                dcn_implementation=dcn_implementation,
            )
            for c in self.channels
        )
        self.head = nn.Sequential(
            SamePadConv2d(base, base, 3), nn.ReLU(inplace=True), SamePadConv2d(base, 3, 3)
        )

    def _cost_volume(self, left: Tensor, right: Tensor) -> Tensor:
        """Eq. (7) followed by LeakyReLU(0.1), as every use in the release."""
        return F.leaky_relu(correlation(left, right, self.max_displacement), 0.1)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        check_dp_inputs(left, right)
        multiple = self.input_multiple()
        left, size = pad_to_multiple(left, multiple)
        right, _ = pad_to_multiple(right, multiple)
        return crop_to(self._forward_padded(left, right), size)

    def input_multiple(self) -> int:
        """H and W multiple the forward reflect-pads to: pooling ``num_scales - 1`` times,
        and the pre-deblur's two stride-2 convs, need sizes divisible by it."""
        return max(2 ** (len(self.channels) - 1), 4 if self.predeblur is not None else 1)

    def _forward_padded(self, left: Tensor, right: Tensor) -> Tensor:
        if self.predeblur is not None:
            predeblur_r = self.predeblur if self.predeblur_r is None else self.predeblur_r
            left, right = self.predeblur(left), predeblur_r(right)
        levels = list(self.encoder)
        cost_volume = self._cost_volume(left, right) if levels[0].uses_cost_volume else None
        skips = []
        for i, level in enumerate(levels):
            left, right = level(left, right, cost_volume)
            skips.append((left, right))
            next_needs = i + 1 < len(levels) and levels[i + 1].uses_cost_volume
            cost_volume = self._cost_volume(left, right) if next_needs else None
        left = self.bottleneck(left)
        right = (self.bottleneck if self.bottleneck_r is None else self.bottleneck_r)(right)
        x = torch.cat([left, right], dim=1)
        del left, right
        for level in reversed(self.decoder):
            skip_l, skip_r = skips.pop()
            x = level(x, skip_l, skip_r)
        return torch.sigmoid(self.head(x))


# Registry names -> (table row, constructor flags). #3 of Table III (MSE loss) is a loss
# config, not a model.
VARIANTS: dict[str, tuple[str, dict]] = {
    "dpanet": ("DPANet (release; Tables I, III, IV)", {}),
    "dpanet_no_share": ("Table III #1: no weight sharing", {"share_encoder": False}),
    "dpanet_no_pyramid": ("Table III #2: no pyramid pre-deblur", {"predeblur": False}),
    "dpanet_dcn3": ("Table III #4: three convs in every offset branch", {"offset_convs": 3}),
    "dpanet_baseline": ("Table IV baseline: no EAM, no DAM", {"eam": False, "dam": False}),
    "dpanet_no_eam": ("Table IV #5: no EAM", {"eam": False}),
    "dpanet_no_cv": ("Table IV #6: offsets from features only", {"eam_offsets": "features"}),
    "dpanet_cv_only": (
        "Table IV #7: offsets from the cost volume only",
        {"eam_offsets": "cost_volume"},
    ),
    "dpanet_no_dam": ("Table IV #8: no DAM", {"dam": False}),
    "dpanet_m5": ("paper text: M = 5 scales", {"num_scales": 5}),
    "dpanet_tiny": ("the release's architecture at a quarter of its widths", {"width": 0.25}),
}


def _build(name: str, kwargs: dict) -> DPANet:
    return DPANet(**{**VARIANTS[name][1], **kwargs})


def dpanet_info(main_benchmark: bool = False, weights_format: str | None = None) -> ModelInfo:
    """The facts every DPANet variant shares."""
    return ModelInfo(
        architecture=DPANet,
        paper="Li et al., Learning Dual-Pixel Alignment for Defocus Deblurring, arXiv 2204.12105",
        size_argument="width",
        size_meaning="multiplier of the release's channel counts (1.0 = 64 at full "
        "resolution, doubling per scale)",
        input_multiple=DPANet.input_multiple,
        margin=None,
        global_context="the deepest decoder step centre-crops the upsampled bottleneck, so "
        "a pixel reads bottleneck features from near the middle of whatever it is run on",
        weights_format=weights_format,
        main_benchmark=main_benchmark,
    )


@register_model(info=dpanet_info(main_benchmark=True, weights_format="dpanet-final-pth"))
def dpanet(**kwargs) -> DPANet:
    """DPANet as released (63,983,859 parameters at width 1)."""
    return _build("dpanet", kwargs)


@register_model(info=dpanet_info())
def dpanet_no_share(**kwargs) -> DPANet:
    """Table III #1: separate encoder weights for the left and right views."""
    return _build("dpanet_no_share", kwargs)


@register_model(info=dpanet_info())
def dpanet_no_pyramid(**kwargs) -> DPANet:
    """Table III #2: no pyramid pre-deblur; the encoder starts from the input views."""
    return _build("dpanet_no_pyramid", kwargs)


@register_model(info=dpanet_info())
def dpanet_dcn3(**kwargs) -> DPANet:
    """Table III #4: three convs in the side branch of every deformable conv."""
    return _build("dpanet_dcn3", kwargs)


@register_model(info=dpanet_info())
def dpanet_baseline(**kwargs) -> DPANet:
    """Table IV baseline: no EAM and no DAM (plain 3x3 convs in place of deformable ones)."""
    return _build("dpanet_baseline", kwargs)


@register_model(info=dpanet_info())
def dpanet_no_eam(**kwargs) -> DPANet:
    """Table IV #5: no encoder alignment modules."""
    return _build("dpanet_no_eam", kwargs)


@register_model(info=dpanet_info())
def dpanet_no_cv(**kwargs) -> DPANet:
    """Table IV #6: no correlation; offsets from the two views' features only."""
    return _build("dpanet_no_cv", kwargs)


@register_model(info=dpanet_info())
def dpanet_cv_only(**kwargs) -> DPANet:
    """Table IV #7: offsets estimated from the (embedded) cost volume only."""
    return _build("dpanet_cv_only", kwargs)


@register_model(info=dpanet_info())
def dpanet_no_dam(**kwargs) -> DPANet:
    """Table IV #8: no decoder alignment modules."""
    return _build("dpanet_no_dam", kwargs)


@register_model(info=dpanet_info())
def dpanet_m5(**kwargs) -> DPANet:
    """The paper text's M = 5, read as five spatial scales (H .. H/16)."""
    return _build("dpanet_m5", kwargs)


@register_model(info=dpanet_info())
def dpanet_tiny(**kwargs) -> DPANet:
    """The release's architecture at a quarter of its channel widths (CPU tests, demo)."""
    return _build("dpanet_tiny", kwargs)
