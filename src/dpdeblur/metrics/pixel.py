"""Pixel-wise fidelity: PSNR and MAE per image (docs/metrics.md, "Definitions").

Both take BxCxHxW float images in [0,1], clip the prediction to [0,1] (never quantise it),
and return one value per image, shape (B,), in float64 (sums over a 1680x1120 image lose
digits in float32). They are evaluation metrics: no gradients flow through them.

* ``psnr = 10 log10(1 / MSE)``, MSE over every pixel and channel of the image, peak 1.
  Identical images give ``+inf`` (as skimage's ``peak_signal_noise_ratio`` does).
* ``mae`` = mean absolute error per channel, then the mean over channels (equal pixel
  counts make that the mean over every element).
"""

from __future__ import annotations

import torch
from torch import Tensor

from dpdeblur.metrics._checks import accumulation_dtype, check_pair


def _difference(pred: Tensor, target: Tensor, name: str) -> Tensor:
    check_pair(pred, target, name)
    dtype = accumulation_dtype(pred.device)
    return pred.clamp(0.0, 1.0).to(dtype) - target.to(dtype)


@torch.no_grad()
def mse(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per image over all pixels and channels, shape (B,)."""
    diff = _difference(pred, target, "mse")
    return diff.square().flatten(1).mean(dim=1)


@torch.no_grad()
def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB per image, shape (B,)."""
    return 10.0 * torch.log10(data_range**2 / mse(pred, target))


@torch.no_grad()
def mae(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per channel, averaged over channels, per image, shape (B,)."""
    diff = _difference(pred, target, "mae")
    return diff.abs().mean(dim=(2, 3)).mean(dim=1)
