"""Protocol-exact metrics (docs/metrics.md): PSNR, SSIM (uniform 7x7, as skimage), MAE,
LPIPS (AlexNet v0.1), per image, under a named scoring protocol.

``psnr``, ``ssim``, ``mae`` take BxCxHxW float images in [0,1] and return (B,) float64;
:class:`MetricSuite` bundles them with LPIPS and a protocol; see ``docs/metrics.md``.
"""

from dpdeblur.metrics._checks import MetricError
from dpdeblur.metrics.by_defocus import DEFAULT_EDGES, DefocusBandScores
from dpdeblur.metrics.perceptual import (
    ALEXNET_FILE,
    LPIPS_MODES,
    LPIPSMetric,
    LPIPSUnavailableError,
    LPIPSUnavailableWarning,
    alexnet_weights_path,
)
from dpdeblur.metrics.pixel import mae, mse, psnr
from dpdeblur.metrics.protocol import (
    DEFAULT_PROTOCOL,
    PROTOCOLS,
    apply_protocol,
    half_resolution,
    read_as_8bit,
    truncate_to_8bit,
)
from dpdeblur.metrics.structural import ssim, ssim_map, uniform_filter
from dpdeblur.metrics.suite import MetricSuite

__all__ = [
    "ALEXNET_FILE",
    "DEFAULT_EDGES",
    "DEFAULT_PROTOCOL",
    "LPIPS_MODES",
    "PROTOCOLS",
    "DefocusBandScores",
    "LPIPSMetric",
    "LPIPSUnavailableError",
    "LPIPSUnavailableWarning",
    "MetricError",
    "MetricSuite",
    "alexnet_weights_path",
    "apply_protocol",
    "half_resolution",
    "mae",
    "mse",
    "psnr",
    "read_as_8bit",
    "ssim",
    "ssim_map",
    "truncate_to_8bit",
    "uniform_filter",
]
