"""How far one output pixel of a model reaches into its input: the margin tiling needs.

Tiled inference gives the whole-image result exactly when, for every pixel a tile
contributes, everything that pixel depends on lies inside the tile and is computed as in
the whole image. Two conditions make that so:

- *alignment*: tile origins are multiples of the model's stride product (its padding
  multiple), so every pooling / strided window sits where it sits in the whole image, and
  a tile that ends at the image's bottom/right edge gets the same reflect padding;
- *margin*: a tile's output is used only at least ``margin`` pixels away from its inner
  edges, where ``margin`` is the radius of the model's receptive field (zero padding at a
  tile edge changes exactly the outputs whose receptive field crosses it).

The receptive field is computed by interval arithmetic (:class:`Span`) over the model's
layers, not measured; ``tests/test_tiling.py`` checks it against the model by perturbing
one input pixel. Models with global context have no finite margin (``margin=None``):
DPANet, whose deepest decoder step centre-crops the upsampled bottleneck (so a pixel at
row ``y`` reads bottleneck features from near row ``y/2 + H/4`` of whatever it is run on),
and K3DN, whose deblur blocks deconvolve the whole 1/8 feature map in the Fourier domain.
Their tiled output is an approximation whose quality grows with the tile and the overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from torch import nn


@dataclass(frozen=True)
class Span:
    """1-D receptive field: output position ``o`` reads inputs ``scale*o + lo .. scale*o + hi``.

    Composed from the output towards the input with :meth:`then`.
    """

    scale: Fraction = Fraction(1)
    lo: Fraction = Fraction(0)
    hi: Fraction = Fraction(0)

    def then(self, layer: Span) -> Span:
        """This span followed (one step nearer the input) by ``layer``'s."""
        return Span(
            layer.scale * self.scale,
            layer.scale * self.lo + layer.lo,
            layer.scale * self.hi + layer.hi,
        )

    def through(self, *layers: Span) -> Span:
        span = self
        for layer in layers:
            span = span.then(layer)
        return span

    def union(self, other: Span) -> Span:
        if self.scale != other.scale:
            raise ValueError("spans of different scales cannot be united")
        return Span(self.scale, min(self.lo, other.lo), max(self.hi, other.hi))

    @property
    def radius(self) -> int:
        """Farthest input pixel from the output pixel, either side (for ``scale == 1``)."""
        return math.ceil(max(-self.lo, self.hi, Fraction(0)))


def conv(kernel: int, stride: int = 1, pad_before: int | None = None) -> Span:
    """A convolution or pooling window: output ``o`` reads ``stride*o - pad .. + kernel - 1``."""
    pad = kernel // 2 if pad_before is None else pad_before
    return Span(Fraction(stride), Fraction(-pad), Fraction(kernel - 1 - pad))


def upsample(factor: int) -> Span:
    """Nearest-neighbour (or pixel-shuffle) upsampling: ``o`` reads ``floor(o / factor)``."""
    return Span(Fraction(1, factor), Fraction(-(factor - 1), factor), Fraction(0))


@dataclass(frozen=True)
class TilingSpec:
    """What tiling needs to know about a model.

    Attributes:
        multiple: tile origins (and inner tile sizes) are multiples of this.
        margin: receptive-field radius in pixels; ``None`` when the model has global context.
        reason: one line on where the figures come from.
    """

    multiple: int
    margin: int | None
    reason: str

    @property
    def exact_overlap(self) -> int | None:
        """Smallest overlap (a multiple of ``multiple``) that reproduces the whole image."""
        if self.margin is None:
            return None
        return round_up(2 * self.margin, self.multiple)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    return value // multiple * multiple


def layer_span(layer: nn.Module) -> Span:
    """Span of one conv or pooling layer (square kernels; dilation counted)."""
    from dpdeblur.nn.blocks import SamePadConv2d, same_padding

    def first(value) -> int:
        return int(value[0] if isinstance(value, tuple | list) else value)

    kernel, stride = first(layer.kernel_size), first(layer.stride)
    dilation = first(getattr(layer, "dilation", 1))
    extent = dilation * (kernel - 1) + 1
    if isinstance(layer, SamePadConv2d):
        pad = same_padding(kernel, dilation)[0]
    else:
        pad = first(layer.padding)
    return conv(extent, stride, pad)


def module_span(module: nn.Module) -> Span:
    """Span of a feed-forward stack: its convs and pools composed in registration order
    (activations and dropout are pointwise and do not widen it)."""
    layers = [
        m
        for m in module.modules()
        if isinstance(m, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d) and not list(m.children())
    ]
    span = Span()
    for layer in reversed(layers):
        span = span.then(layer_span(layer))
    return span


def unet_span(model: nn.Module) -> Span:
    """Receptive field of DPDNet's U-Net, read off its layers.

    ``encoder[k]`` / ``decoder`` blocks, a max pool going down, ``up[i]`` = nearest x2 then
    a 2x2 conv padded right/bottom going up, then the head. The output depends on every
    path (a level's skip, or one level deeper); their union is returned.
    """
    levels = len(model.encoder)
    pool = module_span(model.pool)

    def encoder_to_input(span: Span, level: int) -> Span:
        for k in range(level, -1, -1):
            span = span.then(module_span(model.encoder[k]))
            if k > 0:
                span = span.then(pool)
        return span

    def decoder(span: Span, level: int) -> Span:
        index = levels - 1 - level  # up[0] / decoder[0] work at the deepest level
        span = span.then(module_span(model.decoder[index]))
        skip = encoder_to_input(span, level)
        deeper = span.then(module_span(model.up[index])).then(upsample(2))
        if level == levels - 1:  # below it: the bottleneck, after the deepest pool
            deeper = deeper.then(module_span(model.bottleneck)).then(pool)
            deeper = encoder_to_input(deeper, level)
        else:
            deeper = decoder(deeper, level + 1)
        return skip.union(deeper)

    return decoder(module_span(model.head), 0)


def _dpdnet_spec(model: nn.Module) -> TilingSpec:
    span = unet_span(model)
    shifts = int(getattr(model, "cost_shifts", 0))
    if shifts:  # matching costs: a right-view pixel up to `shifts` away, then a 5x5 box mean
        span = span.then(conv(2 * shifts + 5, 1, shifts + 2))
    stride = 2 ** len(model.encoder)
    margin = span.radius
    gate = getattr(model, "gate", None)
    if gate is not None:  # the sharp-region gate reads a window of the views' difference
        margin = max(margin, gate.window // 2)
    return TilingSpec(
        multiple=stride,
        margin=margin,
        reason=f"U-Net receptive field from its layers ({len(model.encoder)} levels)",
    )


def _dpanet_spec(model: nn.Module) -> TilingSpec:
    return TilingSpec(
        multiple=int(model.pad_multiple),
        margin=None,
        reason="the deepest decoder step centre-crops the upsampled bottleneck: global context",
    )


def _k3dn_spec(model: nn.Module) -> TilingSpec:
    from dpdeblur.models.k3dn import STRIDE

    return TilingSpec(
        multiple=STRIDE * int(model.window_size),
        margin=None,
        reason="Fourier deconvolution of the whole 1/8 feature map: global context",
    )


def tiling_spec(model: nn.Module) -> TilingSpec:
    """The :class:`TilingSpec` of a registry model (or a conservative one for others)."""
    kind = type(model).__name__
    if kind == "FlipEnsemble":  # flips change neither the receptive field nor the alignment
        return tiling_spec(model.model)
    if kind == "DPDNet":
        return _dpdnet_spec(model)
    if kind == "DPANet":
        return _dpanet_spec(model)
    if kind == "K3DN":
        return _k3dn_spec(model)
    return TilingSpec(
        multiple=int(getattr(model, "pad_multiple", 16)),
        margin=None,
        reason=f"unknown architecture {kind}: no margin known, alignment to 16 assumed",
    )
