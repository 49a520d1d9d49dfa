"""``MetricSuite``: the protocol metrics of one (prediction, target) batch, per image.

Used by the LightningModule's validation/test steps and by the eval command::

    suite = MetricSuite(protocol="16bit", lpips="auto")
    values = suite(pred, target)   # {"psnr": (B,), "ssim": (B,), "mae": (B,), "lpips": (B,)}
    json.dump({"metrics": suite.describe(), ...}, f)

The protocol (protocol.py) is applied first, then every metric is computed on the same
pair. ``lpips="off"`` leaves the ``lpips`` key out; ``suite.names`` lists the keys given.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
from torch import Tensor

from dpdeblur.metrics.perceptual import LPIPSMetric
from dpdeblur.metrics.pixel import mae, psnr
from dpdeblur.metrics.protocol import DEFAULT_PROTOCOL, PROTOCOLS, apply_protocol, check_protocol
from dpdeblur.metrics.structural import K1, K2, WIN_SIZE, ssim


def _package_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class MetricSuite:
    """PSNR, SSIM, MAE and LPIPS per image under one scoring protocol.

    ``protocol``: ``"16bit"`` (default), ``"8bit_trunc"`` or ``"half_res"``.
    ``lpips``: ``"auto"`` (NaN plus one warning when the AlexNet weights are missing),
    ``"required"`` (raise instead, at construction) or ``"off"``.
    """

    def __init__(self, protocol: str = DEFAULT_PROTOCOL, lpips: str | bool | None = "auto"):
        self.protocol = check_protocol(protocol)
        self.lpips = LPIPSMetric(lpips)

    @property
    def names(self) -> tuple[str, ...]:
        """The keys :meth:`__call__` returns, in order."""
        base = ("psnr", "ssim", "mae")
        return base if self.lpips.mode == "off" else (*base, "lpips")

    def __call__(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Per-image metrics of BxCxHxW ``pred`` and ``target`` in [0,1]: float64 tensors (B,)."""
        with torch.no_grad():
            pred, target = apply_protocol(pred.detach(), target.detach(), self.protocol)
            values = {
                "psnr": psnr(pred, target),
                "ssim": ssim(pred, target),
                "mae": mae(pred, target),
            }
            if self.lpips.mode != "off":
                values["lpips"] = self.lpips(pred, target)
        return values

    def describe(self) -> dict[str, Any]:
        """The scoring settings, JSON-ready, to save beside the numbers (``metrics.json``)."""
        return {
            "protocol": self.protocol,
            "protocol_detail": PROTOCOLS[self.protocol],
            "aggregation": "per image, then the mean over images",
            "psnr": "10*log10(1/MSE), MSE over all pixels and channels, prediction clipped to [0,1]",
            "mae": "mean |pred - target| per channel, then the mean over channels",
            "ssim": {
                "reference": "skimage.metrics.structural_similarity(data_range=1, channel_axis=-1)",
                "window": "uniform",
                "win_size": WIN_SIZE,
                "K1": K1,
                "K2": K2,
                "sample_covariance": True,
                "border_crop": (WIN_SIZE - 1) // 2,
                "filter_border_mode": "reflect (scipy)",
            },
            "lpips": {
                "mode": self.lpips.mode,
                "net": "alex",
                "version": "0.1",
                "normalize": True,
                "available": self.lpips.available,
                "backbone_weights": None
                if self.lpips.mode == "off"
                else str(self.lpips.weights_path),
                "lpips_package": _package_version("lpips"),
            },
        }
