"""Scoring protocols seen in published rows (docs/metrics.md, "Protocol variants"), applied
before scoring.

``apply_protocol(pred, target, protocol)`` clips the prediction to [0,1] and then turns the
pair into what the protocol scores; every metric of a :class:`~dpdeblur.metrics.MetricSuite`
(PSNR, SSIM, MAE, LPIPS) is computed on the result.

* ``"16bit"`` (default): float prediction, float target at full bit depth (``v16 / 65535``
  for DPDD). Nothing else is done.
* ``"8bit_trunc"`` (DPANet's release): the prediction becomes ``uint8(x * 255)``, i.e.
  ``floor(clip(x, 0, 1) * 255)`` with the product taken in the prediction's own dtype (as
  numpy does on a float32 array); the target becomes what OpenCV's default 8-bit
  ``imread`` returns for the 16-bit PNG, the high byte ``floor(v16 / 256)`` with
  ``v16 = round(t * 65535)`` recovered from the float target. An 8-bit target
  (``t = v8 / 255``) passes through unchanged (``v16 = 257 v8``, whose high byte is v8).
  Both are then scored as ``value / 255`` in float64 (the same as skimage on uint8 with
  data range 255: PSNR and SSIM are unchanged by a common scale).
* ``"half_res"`` (DDDNet's): both images resized to half size, ``(H // 2, W // 2)``
  (1680x1120 DPDD frames become 840x560), by area averaging
  (``F.interpolate(mode="area")``): an exact 2x2 box mean for even sizes, adaptive average
  pooling otherwise. Values stay floats; nothing is quantised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dpdeblur.metrics._checks import MetricError, accumulation_dtype, check_choice, check_pair

PROTOCOLS: dict[str, str] = {
    "16bit": "float prediction clipped to [0,1] vs float target at full bit depth",
    "8bit_trunc": (
        "prediction floor(clip(x,0,1)*255)/255 (uint8 truncation); target high byte "
        "floor(round(t*65535)/256)/255 (OpenCV's 8-bit read of the 16-bit PNG)"
    ),
    "half_res": (
        "both images area-resized to (H//2, W//2) (840x560 on DPDD) with "
        "F.interpolate(mode='area'), prediction clipped first, no quantisation"
    ),
}
DEFAULT_PROTOCOL = "16bit"


def check_protocol(protocol: str) -> str:
    """The protocol's canonical name, or a one-line error listing the valid ones."""
    return check_choice(protocol, PROTOCOLS, "metrics protocol", "metrics.protocol=16bit")


def truncate_to_8bit(pred: Tensor) -> Tensor:
    """``uint8(clip(x, 0, 1) * 255) / 255``: the release's truncation.

    The product and the floor are taken in the prediction's dtype (as numpy's cast of a
    float32 array does); the result ``k / 255`` is float64 (exact to 1e-16, not float32's 1e-8).
    """
    v8 = torch.floor(pred.clamp(0.0, 1.0) * 255.0)
    return v8.to(accumulation_dtype(pred.device)) / 255.0


def read_as_8bit(target: Tensor) -> Tensor:
    """The high byte of the 16-bit value, ``floor(v16 / 256) / 255``, as OpenCV's 8-bit read.

    ``v16 = round(t * 65535)`` in float64; the result is float64 like :func:`truncate_to_8bit`.
    """
    dtype = accumulation_dtype(target.device)
    v16 = torch.round(target.to(dtype).clamp(0.0, 1.0) * 65535.0)
    v8 = torch.div(v16, 256, rounding_mode="floor")
    return v8 / 255.0


def half_resolution(image: Tensor) -> Tensor:
    """Area resize to ``(H // 2, W // 2)``."""
    height, width = image.shape[-2:]
    if height < 2 or width < 2:
        raise MetricError(f"half_res protocol needs images of at least 2x2, got {height}x{width}")
    return F.interpolate(image, size=(height // 2, width // 2), mode="area")


def apply_protocol(
    pred: Tensor, target: Tensor, protocol: str = DEFAULT_PROTOCOL
) -> tuple[Tensor, Tensor]:
    """The (prediction, target) pair the protocol scores, prediction clipped to [0,1]."""
    protocol = check_protocol(protocol)
    check_pair(pred, target, f"protocol {protocol}")
    if protocol == "8bit_trunc":
        return truncate_to_8bit(pred), read_as_8bit(target)
    pred = pred.clamp(0.0, 1.0)
    if protocol == "half_res":
        return half_resolution(pred), half_resolution(target)
    return pred, target
