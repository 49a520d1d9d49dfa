"""Memory layout of a network's weights: NHWC (``channels_last``) where it applies.

``model.to(memory_format=torch.channels_last)`` converts every 4-D *and 5-D* tensor and
raises on the 5-D ones ("required rank 4 tensor to use channels_last format"): K3DN's
disparity branch has Conv3d weights (:mod:`dpdeblur.nn.disparity`), so every K3DN model
failed. :func:`to_channels_last` converts the 4-D parameters and buffers (Conv2d and
ConvTranspose2d weights) and leaves every other tensor as it is; Conv3d keeps its default
layout, and K3DN's 6-D kernel spectra are read whatever their strides
(:meth:`dpdeblur.nn.kernel_set.SymmetricKernelSet.spectrum`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _nhwc_if_4d(tensor: Tensor) -> Tensor:
    if tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def to_channels_last(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D parameters and buffers in ``channels_last`` layout, in place
    (the same parameter objects, as ``Module.to`` keeps them); returns ``model``."""
    return model._apply(_nhwc_if_4d)
