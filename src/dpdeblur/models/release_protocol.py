"""The released models' own evaluation protocols, as options of every tool.

Where a release fed its network differently from dpdeblur's protocol (16-bit views in R,G,B
at native size, float output), :class:`ReleaseProtocol` wraps any model so that it runs as
its authors' code ran it, and :data:`RELEASE_PROTOCOLS` says how each release scored:

* ``k3dn`` (docs/k3dn.md, "Evaluation protocol"): both 16-bit views are resized from
  1120x1680 to 1152 rows x 1792 columns with OpenCV's bicubic interpolation
  (``INTER_CUBIC``) on the uint16 data, which rounds and saturates to uint16, then divided
  by 65535; the network's clipped output is resized back with PyTorch's bicubic
  interpolation (``align_corners=False``, no antialiasing), shifted by +0.5 and clipped to
  [0, 1]. Our models return ``clip(head) + 0.5``; bicubic weights sum to 1, so resizing that
  and clipping equals the release's resize, +0.5, clip (up to float32 rounding).
* ``dpanet`` (docs/weights.md): the views are read as OpenCV's default 8-bit read gives
  them, ``floor(v16 / 256) / 255`` (:func:`quantise_views`, also the switch
  ``input_bits=8`` on its own), and the prediction is scored truncated to uint8 against the
  8-bit target (the metrics protocol ``8bit_trunc``).

dpdeblur's own protocol never resizes or quantises; these are for parity runs with a
release: ``dpdeblur-eval release_protocol=NAME``, ``dpdeblur-deblur --release-protocol
NAME``, ``deblur(release_protocol=NAME)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.errors import ConfigError
from dpdeblur.models.output import output_image

RELEASE_SIZE = (1152, 1792)  # rows, columns: K3DN's evaluation size
UINT16_MAX = 65535
INPUT_BITS = (8, 16)  # the bit depths the input switch feeds a model


def quantise_views(view: Tensor, bits: int) -> Tensor:
    """Views in [0, 1] (16-bit data / 65535) as a ``bits``-bit read would give them: the
    high ``bits`` bits of ``v16 = round(x * 65535)``, ``floor(v16 / 2**(16 - bits)) /
    (2**bits - 1)``. For 8 bits, OpenCV's default ``imread`` of a 16-bit PNG (its high
    byte); 16 bits changes nothing. Computed in float64, returned in the view's dtype."""
    if bits not in INPUT_BITS:
        raise ValueError(f"input bits must be one of {INPUT_BITS}, got {bits}")
    if bits == 16:
        return view
    v16 = torch.round(view.detach().double().clamp(0.0, 1.0) * UINT16_MAX)
    codes = torch.div(v16, 2 ** (16 - bits), rounding_mode="floor")
    return (codes / (2**bits - 1)).to(view.dtype)


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


@dataclass(frozen=True)
class ReleaseProtocolSpec:
    """How a release evaluated: the size it resized the pair to (``None``: native), the bit
    depth it fed its network (16: full), the metrics protocol it scored with."""

    size: tuple[int, int] | None
    input_bits: int
    metrics_protocol: str
    summary: str


RELEASE_PROTOCOLS: dict[str, ReleaseProtocolSpec] = {
    "k3dn": ReleaseProtocolSpec(
        RELEASE_SIZE, 16, "16bit", "pair resized to 1152x1792 (uint16 bicubic), output back"
    ),
    "dpanet": ReleaseProtocolSpec(
        None, 8, "8bit_trunc", "8-bit views in, prediction truncated to uint8, 8-bit target"
    ),
}


def check_release_protocol(protocol: str, option: str) -> ReleaseProtocolSpec:
    """The spec of ``protocol``, or a one-line :class:`ConfigError` whose fix is written as
    ``option`` formats a name (``"release_protocol={}"``, ``"--release-protocol {}"``)."""
    if protocol in RELEASE_PROTOCOLS:
        return RELEASE_PROTOCOLS[protocol]
    choices = " or ".join(option.format(name) for name in RELEASE_PROTOCOLS)
    raise ConfigError(f"unknown release protocol '{protocol}'", None, f"use {choices}")


class InputBits(nn.Module):
    """``model`` fed views quantised to ``bits`` bits (:func:`quantise_views`), as a release
    that read 16-bit PNGs as 8-bit was fed. Pixel-wise: tiles compute what whole images do."""

    def __init__(self, model: nn.Module, bits: int):
        super().__init__()
        if bits not in INPUT_BITS:
            raise ValueError(f"input bits must be one of {INPUT_BITS}, got {bits}")
        self.model = model
        self.bits = bits

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.model(quantise_views(left, self.bits), quantise_views(right, self.bits))


class ReleaseProtocol(nn.Module):
    """``model`` run as its authors' evaluation ran it (:data:`RELEASE_PROTOCOLS`): views
    quantised to the release's bit depth, the pair resized to the release's size (uint16,
    OpenCV bicubic) and the output resized back (bicubic) and clipped. Whole images only
    when the protocol resizes: tiles would each be resized on their own. The metrics
    protocol it scored with is :attr:`metrics_protocol`; the caller applies it."""

    def __init__(self, model: nn.Module, protocol: str):
        super().__init__()
        if protocol not in RELEASE_PROTOCOLS:
            raise ValueError(
                f"unknown release protocol {protocol!r}; known: {', '.join(RELEASE_PROTOCOLS)}"
            )
        spec = RELEASE_PROTOCOLS[protocol]
        self.model = model
        self.protocol = protocol
        self.size = spec.size
        self.input_bits = spec.input_bits
        self.metrics_protocol = spec.metrics_protocol

    @property
    def resizes(self) -> bool:
        """Whether the protocol resizes the pair (then it cannot run on tiles)."""
        return self.size is not None

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        left = quantise_views(left, self.input_bits)
        right = quantise_views(right, self.input_bits)
        if self.size is None:
            return self.model(left, right)
        return release_protocol(self.model, left, right, self.size)
