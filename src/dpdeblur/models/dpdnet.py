"""DPDNet (Abuolaim and Brown, "Defocus Deblurring Using Dual-Pixel Data", ECCV 2020).

The first DP deblurring network and the baseline of DPANet's Table I: a U-Net on the two
views stacked as a 6-channel input. As the paper describes it:

- encoder: four blocks of two 3x3 convs + ReLU (64, 128, 256, 512 channels), each followed
  by 2x2 max pooling;
- bottleneck: two 3x3 convs + ReLU at 1024 channels, then dropout (rate 0.4); the
  authors' release also drops out the deepest encoder block's output (before pooling),
  and so do we;
- decoder: four blocks, each a 2x upsampling followed by a 2x2 conv + ReLU that halves the
  channels ("up-convolution"), concatenation with the encoder block's output, and two
  3x3 convs + ReLU;
- head: as released, a 3x3 conv to 3 channels + ReLU, then a 1x1 conv 3 -> 3 with a
  sigmoid (no residual to the input). 31,035,151 parameters at width 1.0, the count of
  the authors' released Keras model (``DPDNet/model.py``, github.com/Abdullah-Abuolaim/
  defocus-deblurring-dual-pixel; neither paper states one): ``tests/models/test_dpdnet_params.py``.

``width`` scales every channel count (1.0 = the paper's), so the same code gives CPU-sized
variants (the demo uses 0.25). ``residual=True`` is our option, not the paper's: the head
(one zero-initialised 1x1 conv, no sigmoid) predicts a correction added to the mean of the
views, so training starts at the blurry input instead of at a constant image; the demo uses
it to learn in minutes on a CPU. ``sharp_gate=True`` (ours too, with ``residual``) scales
that correction by a gate that is zero where the two views agree, i.e. in focus or on flat
regions, where the mean of the views is already sharp
(:class:`~dpdeblur.nn.sharp_gate.ViewDifferenceGate`); ``cost_shifts=d`` adds the views'
horizontal matching costs for shifts ``-d..d`` as input channels
(:mod:`dpdeblur.nn.matching`). Inputs of any size are
reflect-padded to a multiple of 16 and the output is cropped back.

Initialisation is the release's (Keras 2.2.4 as ``DPDNet/model.py`` uses it): ``he_normal``
on every conv but the last, i.e. a normal truncated at two of its standard deviations and
widened by 1 / 0.8796 (the standard deviation of a unit normal truncated to [-2, 2]) so
that the weights' standard deviation is sqrt(2 / fan_in); Keras's default
``glorot_uniform`` on the final 1x1 conv; zero biases (:func:`keras_he_normal_`). The
residual head stays zero. The authors' released weights load with
``load_model("defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5")``
(:mod:`dpdeblur.runs.releases.dpdnet_keras`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dpdeblur.models.padding import check_dp_inputs, crop_to, pad_to_multiple
from dpdeblur.models.receptive_field import Span, conv, module_span, upsample
from dpdeblur.models.registry import ModelInfo, register_model
from dpdeblur.nn.blocks import UpConv
from dpdeblur.nn.matching import horizontal_matching_costs
from dpdeblur.nn.sharp_gate import ViewDifferenceGate

BASE_CHANNELS = (64, 128, 256, 512, 1024)
# The standard deviation of a unit normal truncated to [-2, 2] (scipy.stats.truncnorm(-2, 2)).
TRUNCATED_NORMAL_STD = 0.87962566103423978


def keras_he_normal_(weight: Tensor) -> Tensor:
    """Keras 2.2.4's ``he_normal`` in place: a normal of standard deviation
    ``s = sqrt(2 / fan_in) / 0.8796...`` truncated to [-2 s, 2 s] (TensorFlow's
    ``truncated_normal`` redraws beyond two standard deviations), whose own standard
    deviation is then sqrt(2 / fan_in); ``fan_in`` = input channels x kernel area."""
    fan_in = weight.shape[1] * weight[0, 0].numel()
    std = math.sqrt(2.0 / fan_in) / TRUNCATED_NORMAL_STD
    return nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3 convs with ReLU (one U-Net block)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class DPDNet(nn.Module):
    """DPDNet: ``model(left, right)`` -> restored Bx3xHxW image in [0, 1].

    Args:
        width: multiplier of every channel count (1.0 = 64..1024 as in the paper).
        dropout: dropout rate after the bottleneck (0.4 in the paper).
        residual: output = mean of the views + head (ours; the paper: sigmoid(head)).
        sharp_gate: with ``residual``, scale the correction by a gate that is zero where
            the views agree (:class:`~dpdeblur.nn.sharp_gate.ViewDifferenceGate`; ours).
        cost_shifts: also feed the network the views' horizontal matching costs for shifts
            of up to this many pixels (:mod:`dpdeblur.nn.matching`; ours; 0: none).
    """

    def __init__(
        self,
        width: float = 1.0,
        dropout: float = 0.4,
        residual: bool = False,
        sharp_gate: bool = False,
        cost_shifts: int = 0,
    ):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if sharp_gate and not residual:
            raise ValueError("sharp_gate needs residual=True (it gates the residual correction)")
        channels = [max(1, round(c * width)) for c in BASE_CHANNELS]
        self.gate = ViewDifferenceGate() if sharp_gate else None
        if cost_shifts < 0:
            raise ValueError(f"cost_shifts must be >= 0, got {cost_shifts}")
        self.cost_shifts = int(cost_shifts)
        self.residual = residual
        self.encoder = nn.ModuleList()
        previous = 6 + (2 * self.cost_shifts + 1 if self.cost_shifts else 0)
        for c in channels[:4]:
            self.encoder.append(double_conv(previous, c))
            previous = c
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = double_conv(channels[3], channels[4])
        self.dropout = nn.Dropout(dropout)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for deep, skip in zip(channels[:0:-1], channels[3::-1], strict=True):
            self.up.append(nn.Sequential(UpConv(deep, skip), nn.ReLU(inplace=True)))
            self.decoder.append(double_conv(2 * skip, skip))
        if residual:
            self.head: nn.Module = nn.Conv2d(channels[0], 3, 1)  # zero-initialised below
        else:
            self.head = nn.Sequential(
                nn.Conv2d(channels[0], 3, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(3, 3, 1)
            )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The release's initialisation: ``he_normal`` (:func:`keras_he_normal_`) and zero
        bias on every conv, then ``glorot_uniform`` on the last one (Keras's default, which
        ``model.py`` keeps there); with ``residual``, our head starts at zero instead."""
        convs = [
            m
            for part in (self.encoder, self.bottleneck, self.up, self.decoder, self.head)
            for m in part.modules()
            if isinstance(m, nn.Conv2d)
        ]
        for layer in convs:
            keras_he_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.residual:
            nn.init.zeros_(self.head.weight)
        else:
            nn.init.xavier_uniform_(convs[-1].weight)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        check_dp_inputs(left, right)
        inputs = [left, right]
        if self.cost_shifts:
            inputs.append(horizontal_matching_costs(left, right, self.cost_shifts))
        x, size = pad_to_multiple(torch.cat(inputs, dim=1), self.input_multiple())
        skips = []
        for depth, block in enumerate(self.encoder):
            x = block(x)
            if depth == len(self.encoder) - 1:
                x = self.dropout(x)  # the release drops out the deepest encoder block too
            skips.append(x)
            x = self.pool(x)
        x = self.dropout(self.bottleneck(x))
        for up, block, skip in zip(self.up, self.decoder, reversed(skips), strict=True):
            x = block(torch.cat([skip, up(x)], dim=1))
        if self.residual:
            correction = crop_to(self.head(x), size)
            if self.gate is not None:
                correction = self.gate(left, right) * correction
            return correction + 0.5 * (left + right)
        return crop_to(torch.sigmoid(self.head(x)), size)

    def input_multiple(self) -> int:
        """H and W multiple the forward pads to: one 2x2 pooling per encoder level."""
        return 2 ** len(self.encoder)

    def receptive_field(self) -> Span:
        """Receptive field of the U-Net, read off its layers.

        ``encoder[k]`` / ``decoder`` blocks, a max pool going down, ``up[i]`` = nearest x2
        then a 2x2 conv padded right/bottom going up, then the head. The output depends on
        every path (a level's skip, or one level deeper); their union is returned.
        """
        levels = len(self.encoder)
        pool = module_span(self.pool)

        def encoder_to_input(span: Span, level: int) -> Span:
            for k in range(level, -1, -1):
                span = span.then(module_span(self.encoder[k]))
                if k > 0:
                    span = span.then(pool)
            return span

        def decoder(span: Span, level: int) -> Span:
            index = levels - 1 - level  # up[0] / decoder[0] work at the deepest level
            span = span.then(module_span(self.decoder[index]))
            skip = encoder_to_input(span, level)
            deeper = span.then(module_span(self.up[index])).then(upsample(2))
            if level == levels - 1:  # below it: the bottleneck, after the deepest pool
                deeper = deeper.then(module_span(self.bottleneck)).then(pool)
                deeper = encoder_to_input(deeper, level)
            else:
                deeper = decoder(deeper, level + 1)
            return skip.union(deeper)

        return decoder(module_span(self.head), 0)

    def receptive_field_radius(self) -> int:
        """How far, in pixels, one output pixel reaches into the input views: the U-Net's
        radius, widened by the matching costs (a right-view pixel up to ``cost_shifts``
        away, then a 5x5 box mean) and at least the sharp-region gate's half window."""
        span = self.receptive_field()
        if self.cost_shifts:
            span = span.then(conv(2 * self.cost_shifts + 5, 1, self.cost_shifts + 2))
        margin = span.radius
        if self.gate is not None:
            margin = max(margin, self.gate.window // 2)
        return margin


def dpdnet_info(main_benchmark: bool, weights_format: str | None = None) -> ModelInfo:
    """The facts every DPDNet variant shares."""
    return ModelInfo(
        architecture=DPDNet,
        paper=(
            "Abuolaim and Brown, Defocus Deblurring Using Dual-Pixel Data, ECCV 2020; "
            "github.com/Abdullah-Abuolaim/defocus-deblurring-dual-pixel"
        ),
        size_argument="width",
        size_meaning="multiplier of the paper's channel counts (1.0 = 64..1024)",
        input_multiple=DPDNet.input_multiple,
        margin=DPDNet.receptive_field_radius,
        weights_format=weights_format,
        main_benchmark=main_benchmark,
    )


@register_model(info=dpdnet_info(main_benchmark=True, weights_format="dpdnet-keras-hdf5"))
def dpdnet(**kwargs) -> DPDNet:
    """DPDNet as described in its paper (width 1.0: 64-1024 channels)."""
    return DPDNet(**kwargs)


@register_model(info=dpdnet_info(main_benchmark=False))
def dpdnet_small(**kwargs) -> DPDNet:
    """Ours: DPDNet at a quarter of its channel widths (16-256) with the residual head
    (output = mean of the views + correction), the CPU demo's model."""
    return DPDNet(**{"width": 0.25, "residual": True, **kwargs})
