"""SSIM exactly as ``skimage.metrics.structural_similarity(a, b, data_range=1, channel_axis=-1)``.

Wang et al. (2004), in the variant scikit-image computes by default (and the protocol
prescribes, docs/metrics.md "Definitions"); torchmetrics' Gaussian 11x11 SSIM gives other
numbers.
Per channel:

1. Local statistics with a 7x7 **uniform** window (``scipy.ndimage.uniform_filter``, whose
   default border mode ``'reflect'`` repeats the edge sample: ``d c b a | a b c d | d c b a``):
   means ``ux, uy`` and raw moments ``uxx, uyy, uxy``.
2. Sample (co)variances: ``vx = N/(N-1) (uxx - ux^2)`` with N = 49 (skimage's
   ``use_sample_covariance=True``), likewise ``vy`` and ``vxy``.
3. The SSIM map ``((2 ux uy + C1)(2 vxy + C2)) / ((ux^2 + uy^2 + C1)(vx + vy + C2))`` with
   ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``, R = data range = 1.
4. The mean of the map with a ``(7 - 1) // 2 = 3`` pixel border dropped.

The image's SSIM is the mean over channels. Everything is batched tensor code (CPU or GPU)
and runs in float64 by default: the ``uxx - ux^2`` differences cancel badly in float32 on
smooth regions, and skimage itself computes in float64 for float64 input. It is an
evaluation metric, computed without gradients (in place, to save memory), not a loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dpdeblur.metrics._checks import MetricError, accumulation_dtype, check_pair

WIN_SIZE = 7
K1 = 0.01
K2 = 0.03


def reflect_indices(n: int, pad: int, device: torch.device | None = None) -> Tensor:
    """Indices that extend ``range(n)`` by ``pad`` on each side as scipy's mode ``'reflect'``.

    The edge sample is repeated (half-sample symmetric, numpy's ``'symmetric'``), which is
    not torch's ``F.pad(mode='reflect')`` (that one is scipy's ``'mirror'``). Works for any
    ``pad``, also wider than the image (the extension is periodic with period ``2n``).
    """
    idx = torch.remainder(torch.arange(-pad, n + pad, device=device), 2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def uniform_filter(x: Tensor, size: int = WIN_SIZE, valid: bool = False) -> Tensor:
    """``scipy.ndimage.uniform_filter(x, size)`` over the last two axes (odd ``size``).

    Box mean over a ``size x size`` window centred on each pixel, borders extended by
    scipy's ``'reflect'``. ``valid=True`` gives only the
    pixels whose window lies inside the image (``size // 2`` fewer on each side), which
    need no border extension at all.
    """
    if size % 2 != 1:
        raise MetricError(f"uniform window size must be odd, got {size}")
    pad = size // 2
    height, width = x.shape[-2:]
    lead = x.shape[:-2]
    x = x.reshape(-1, 1, height, width)
    if not valid:
        x = x.index_select(-1, reflect_indices(width, pad, x.device))
        x = x.index_select(-2, reflect_indices(height, pad, x.device))
    # One 2-D box pooling: faster on CPU than two 1-D passes, and exact to ~1e-16 in float64.
    x = F.avg_pool2d(x, kernel_size=size, stride=1)
    return x.reshape(*lead, *x.shape[-2:])


def _ssim_from_moments(
    ux: Tensor,
    uy: Tensor,
    uxx: Tensor,
    uyy: Tensor,
    uxy: Tensor,
    cov_norm: float,
    c1: float,
    c2: float,
) -> Tensor:
    """Step 3 from the local moments, in place (the moments are consumed).

    ``vx + vy`` is formed as ``cov_norm (uxx + uyy - ux^2 - uy^2)`` and ``vxy`` as
    ``cov_norm (uxy - ux uy)``: skimage's terms regrouped (differences ~1e-16).
    """
    ux_uy = ux * uy
    means_sq = torch.addcmul(ux * ux, uy, uy)  # ux^2 + uy^2
    numerator = uxy.sub_(ux_uy).mul_(2 * cov_norm).add_(c2)  # 2 vxy + C2
    numerator.mul_(ux_uy.mul_(2).add_(c1))  # (2 ux uy + C1)(2 vxy + C2)
    denominator = uxx.add_(uyy).sub_(means_sq).mul_(cov_norm).add_(c2)  # vx + vy + C2
    denominator.mul_(means_sq.add_(c1))  # (ux^2 + uy^2 + C1)(vx + vy + C2)
    return numerator.div_(denominator)


@torch.no_grad()
def ssim_map(
    pred: Tensor,
    target: Tensor,
    win_size: int = WIN_SIZE,
    data_range: float = 1.0,
    dtype: torch.dtype | None = None,
    full: bool = True,
) -> Tensor:
    """The per-pixel SSIM map of each channel, BxCxHxW (steps 1-3 of the module docstring).

    ``pred`` is used as given (the caller clips it); ``dtype`` is the accumulation type,
    float64 unless the device lacks it. ``full=False`` returns only the interior the mean
    keeps, ``(H - win_size + 1) x (W - win_size + 1)``: the windows there never reach past
    the image, so the border extension cannot change them, and skipping it is faster.
    """
    check_pair(pred, target, "ssim")
    height, width = pred.shape[-2:]
    if min(height, width) < win_size:
        raise MetricError(
            f"ssim needs images of at least {win_size}x{win_size} pixels, got {height}x{width}"
        )
    dtype = dtype or accumulation_dtype(pred.device)
    x = pred.to(dtype)
    y = target.to(dtype)
    n = win_size * win_size
    cov_norm = n / (n - 1)  # sample covariance, skimage's use_sample_covariance=True
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    maps = []
    # One channel at a time bounds the peak memory (five float64 planes per channel).
    for c in range(x.shape[1]):
        xc, yc = x[:, c], y[:, c]
        planes = torch.empty((x.shape[0], 5, height, width), dtype=dtype, device=x.device)
        planes[:, 0] = xc
        planes[:, 1] = yc
        torch.mul(xc, xc, out=planes[:, 2])
        torch.mul(yc, yc, out=planes[:, 3])
        torch.mul(xc, yc, out=planes[:, 4])
        ux, uy, uxx, uyy, uxy = uniform_filter(planes, win_size, valid=not full).unbind(dim=1)
        maps.append(_ssim_from_moments(ux, uy, uxx, uyy, uxy, cov_norm, c1, c2))
    return torch.stack(maps, dim=1)


@torch.no_grad()
def ssim(
    pred: Tensor,
    target: Tensor,
    win_size: int = WIN_SIZE,
    data_range: float = 1.0,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Mean SSIM per image, shape (B,), as skimage's ``structural_similarity`` with
    ``data_range=1, channel_axis=-1`` and its defaults; ``pred`` is clipped to [0,1] first.
    """
    check_pair(pred, target, "ssim")
    # The (win_size - 1) // 2 border skimage crops is exactly what the valid map leaves out.
    s = ssim_map(pred.clamp(0.0, 1.0), target, win_size, data_range, dtype, full=False)
    return s.mean(dim=(2, 3)).mean(dim=1)
