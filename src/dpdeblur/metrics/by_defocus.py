"""Scores by defocus strength: PSNR, SSIM and MAE over the pixels of each blur band.

Synthetic scenes know the signed circle-of-confusion (CoC) radius of every pixel (depth
through the thin lens, ``docs/synthetic.md``), so a restoration can be scored per band of
``|CoC|`` rather than per image: pixels in focus should come out untouched, and the
strongly defocused ones show how much a network really restores. Bands pool the pixels of
all images (PSNR of the pooled squared error, mean SSIM-map value, mean absolute error),
so they are not the per-image means of the protocol (``docs/metrics.md``); the row
``all pixels`` is the pooled score over every pixel for comparison.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import torch
from torch import Tensor

from dpdeblur.metrics._checks import MetricError, check_pair
from dpdeblur.metrics.structural import ssim_map

# CoC radius band edges in pixels: in focus (< 1 px), mild, moderate, strong defocus.
DEFAULT_EDGES: tuple[float, ...] = (0.0, 1.0, 3.0, 5.0, math.inf)


def band_label(low: float, high: float) -> str:
    """``'blur radius < 1 px'``, ``'blur radius 1-3 px'``, ``'blur radius >= 5 px'`` for the
    band ``low <= |CoC| < high``."""
    if low <= 0:
        return f"blur radius < {high:g} px"
    if math.isinf(high):
        return f"blur radius >= {low:g} px"
    return f"blur radius {low:g}-{high:g} px"


@dataclass
class _Sums:
    pixels: int = 0
    squared_error: float = 0.0
    absolute_error: float = 0.0
    ssim: float = 0.0


@dataclass
class DefocusBandScores:
    """Accumulates pooled scores per ``|CoC|`` band over any number of image batches.

    ``update(pred, target, coc)`` takes Bx3xHxW images in [0, 1] and the Bx1xHxW (or BxHxW)
    signed CoC radius in pixels; ``rows()`` returns one dict per band plus ``all pixels``:
    ``band``, ``fraction`` (of all pixels), ``psnr``, ``ssim``, ``mae`` (NaN for an empty band).
    """

    edges: Sequence[float] = DEFAULT_EDGES
    _sums: dict[str, _Sums] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        edges = [float(e) for e in self.edges]
        if len(edges) < 2 or any(b <= a for a, b in pairwise(edges)):
            raise MetricError(f"band edges must increase, got {list(self.edges)}")
        self.edges = tuple(edges)
        self._bands = [(band_label(a, b), a, b) for a, b in pairwise(edges)]
        self._sums = {label: _Sums() for label, _, _ in self._bands}
        self._sums["all pixels"] = _Sums()

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor, coc: Tensor) -> None:
        check_pair(pred, target, "scores by defocus")
        if coc.dim() == 3:
            coc = coc.unsqueeze(1)
        if coc.shape[0] != pred.shape[0] or coc.shape[-2:] != pred.shape[-2:]:
            raise MetricError(
                f"CoC map of shape {tuple(coc.shape)} does not match images {tuple(pred.shape)}"
            )
        pred = pred.clamp(0.0, 1.0).double()
        target = target.double()
        # Per pixel, summed over channels: squared error, absolute error, SSIM (full map with
        # skimage's border handling, so every pixel has a value).
        squared = (pred - target).square().sum(dim=1)
        absolute = (pred - target).abs().sum(dim=1)
        structural = ssim_map(pred, target, full=True).sum(dim=1)
        radius = coc[:, 0].abs().to(squared.device)
        channels = pred.shape[1]
        everything = torch.ones_like(radius, dtype=torch.bool)
        masks = [(label, (radius >= a) & (radius < b)) for label, a, b in self._bands]
        for label, mask in [*masks, ("all pixels", everything)]:
            sums = self._sums[label]
            n = int(mask.sum())
            sums.pixels += n
            sums.squared_error += float(squared[mask].sum()) / channels
            sums.absolute_error += float(absolute[mask].sum()) / channels
            sums.ssim += float(structural[mask].sum()) / channels

    def rows(self) -> list[dict[str, float | str]]:
        total = self._sums["all pixels"].pixels
        out = []
        for label in [*(b[0] for b in self._bands), "all pixels"]:
            sums = self._sums[label]
            if sums.pixels == 0:
                psnr = ssim = mae = math.nan
            else:
                mse = sums.squared_error / sums.pixels
                psnr = math.inf if mse == 0 else -10.0 * math.log10(mse)
                ssim = sums.ssim / sums.pixels
                mae = sums.absolute_error / sums.pixels
            fraction = sums.pixels / total if total else math.nan
            out.append(
                {"band": label, "fraction": fraction, "psnr": psnr, "ssim": ssim, "mae": mae}
            )
        return out
