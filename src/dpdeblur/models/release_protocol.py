"""The K3DN release's evaluation protocol: resize the pair to 1152x1792 and the output back.

The public K3DN code evaluates DPDD this way (docs/k3dn.md, "Evaluation protocol"): both
16-bit views are resized from 1120x1680 to 1152 rows x 1792 columns with OpenCV's bicubic
interpolation (``INTER_CUBIC``) on the uint16 data, which rounds and saturates to uint16,
then divided by 65535; the network's clipped output is resized back with PyTorch's bicubic
interpolation (``align_corners=False``, no antialiasing), shifted by +0.5 and clipped to
[0, 1]. dpdeblur's own protocol never resizes (K3DN reflect-pads to its window grid); this
module is the option for parity runs with the release: :class:`ReleaseProtocol` wraps any
model so that ``dpdeblur-eval release_protocol=k3dn`` and ``dpdeblur-deblur
--release-protocol k3dn`` score and restore exactly as the release did.

Our models return ``clip(head) + 0.5``; bicubic weights sum to 1, so resizing that and
clipping equals the release's resize, +0.5, clip (up to float32 rounding).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.models.output import output_image

RELEASE_SIZE = (1152, 1792)  # rows, columns
UINT16_MAX = 65535


def resize_uint16_views(view: Tensor, size: tuple[int, int] = RELEASE_SIZE) -> Tensor:
    """B x 3 x H x W views in [0, 1] (16-bit data / 65535) resized as the release does:
    quantised to uint16, OpenCV bicubic to ``size`` (rounded, saturated), / 65535."""
    height, width = size
    codes = np.rint(view.detach().cpu().double().clamp(0, 1).numpy() * UINT16_MAX)
    codes = codes.astype(np.uint16)
    out = np.empty((*codes.shape[:2], height, width), dtype=np.float64)
    for b in range(codes.shape[0]):
        hwc = np.ascontiguousarray(codes[b].transpose(1, 2, 0))
        resized = cv2.resize(hwc, (width, height), interpolation=cv2.INTER_CUBIC)
        out[b] = resized.reshape(height, width, -1).transpose(2, 0, 1) / UINT16_MAX
    return torch.from_numpy(out).to(dtype=torch.float32, device=view.device)


def resize_back(image: Tensor, size: tuple[int, int]) -> Tensor:
    """PyTorch bicubic (``align_corners=False``, no antialiasing) back to ``size``."""
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=False)


def release_protocol(
    model: nn.Module, left: Tensor, right: Tensor, size: tuple[int, int] = RELEASE_SIZE
) -> Tensor:
    """Deblur a pair under the release's protocol: the restored B x 3 x H x W in [0, 1]."""
    original = tuple(left.shape[-2:])
    output = model(resize_uint16_views(left, size), resize_uint16_views(right, size))
    return resize_back(output_image(output), original).clamp(0.0, 1.0)


# Each released model whose authors evaluated at another size: the size they resized to.
RELEASE_PROTOCOLS = {"k3dn": RELEASE_SIZE}


class ReleaseProtocol(nn.Module):
    """``model`` run as its authors' evaluation ran it: the pair resized to the release's
    size (uint16, OpenCV bicubic), the output resized back (bicubic) and clipped. Whole
    images only: tiles would each be resized on their own."""

    def __init__(self, model: nn.Module, protocol: str):
        super().__init__()
        if protocol not in RELEASE_PROTOCOLS:
            raise ValueError(
                f"unknown release protocol {protocol!r}; known: {', '.join(RELEASE_PROTOCOLS)}"
            )
        self.model = model
        self.protocol = protocol
        self.size = RELEASE_PROTOCOLS[protocol]

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return release_protocol(self.model, left, right, self.size)
