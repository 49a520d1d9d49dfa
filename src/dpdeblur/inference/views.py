"""How a DP pair is shown to a model and how its result is given back (PIXEL conventions).

- Orientation: DP disparity runs along the sensor's rows. PIXEL's captures are stored
  portrait (height > width), with the sensor's rows running down the image: such a pair is
  turned to landscape before the model and the result turned back so that it lies on the
  input, by the functions :class:`~dpdeblur.data.datasets.PixelDataset` uses
  (:mod:`dpdeblur.data.samples`). Only where the caller says the pair is PIXEL's: a portrait
  crop of a landscape camera's image (DPDD's Canon) has its disparity along its rows
  already, and turning it would make the disparity vertical.
- Channels: a single-channel view (PIXEL's green channel) goes to the model as three equal
  channels, and the result is given back as one channel, the mean of the three.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpdeblur.data.samples import is_portrait, landscape_to_portrait, portrait_to_landscape


@dataclass(frozen=True)
class ViewFormat:
    """What was done to a pair on its way in, to undo on the way out."""

    rotated: bool
    channels: int

    def restore(self, image: np.ndarray) -> np.ndarray:
        """The model's HxWx3 result in the input's orientation and channel count."""
        if self.rotated:
            image = landscape_to_portrait(image)
        if self.channels == 1:
            image = image.mean(axis=2, keepdims=True)
        return np.ascontiguousarray(image)


def as_three_channels(image: np.ndarray) -> tuple[np.ndarray, int]:
    """HxW, HxWx1 or HxWx3 -> HxWx3 and the original channel count (1 or 3)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ValueError(f"expected an HxW, HxWx1 or HxWx3 image, got shape {image.shape}")
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    return image, channels


def to_model_views(
    left: np.ndarray, right: np.ndarray, pixel_portrait: bool = False, channels: int = 3
) -> tuple[np.ndarray, np.ndarray, ViewFormat]:
    """HxWx3 views as the model takes them: turned landscape when ``pixel_portrait`` (the
    pair is a PIXEL capture) and they are portrait; otherwise as they are.

    ``channels`` is the input's channel count, recorded for :meth:`ViewFormat.restore`.
    """
    rotate = pixel_portrait and is_portrait(left)
    if rotate:
        left, right = portrait_to_landscape(left), portrait_to_landscape(right)
    return left, right, ViewFormat(rotated=rotate, channels=channels)
