"""How far one output pixel of a network reaches into its input, by interval arithmetic.

A :class:`Span` says which input positions an output position reads, and composes layer
by layer from the output towards the input. Models with a finite receptive field compute
their radius with it (e.g. :meth:`dpdeblur.models.dpdnet.DPDNet.receptive_field_radius`);
that radius is the margin tiled inference needs (:mod:`dpdeblur.inference.margins`).
The figures are computed from the layers, not measured; ``tests/inference/test_tiling.py`` checks
them against the model by perturbing one input column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from torch import nn

from dpdeblur.nn.blocks import SamePadConv2d, same_padding


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
        """This span followed by each of ``layers`` in turn (output to input)."""
        span = self
        for layer in layers:
            span = span.then(layer)
        return span

    def union(self, other: Span) -> Span:
        """The inputs read by either of two paths of the same scale."""
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


def layer_span(layer: nn.Module) -> Span:
    """Span of one conv or pooling layer (square kernels; dilation counted)."""

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
