"""Image panels: a result beside its inputs, as one 8-bit picture for people to look at.

One renderer draws every panel: the validation panels of a training run
(``panels/val_epochNNN.png``, one row per sample), the demo's test panels, and
``dpdeblur-deblur --panel`` (``<name>_panel.png``). A row is built by
:func:`comparison_row` (left | right | output | target | error) and rows are drawn by
:func:`render_panel`: images side by side on white, :data:`PANEL_GAP` pixels apart, rows one
under another.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor

from dpdeblur.data.io import as_hwc, quantize, write_png

PANEL_GAP = 8  # white pixels between a panel's images and between its rows
ERROR_GAIN = 4.0  # |output - target| is shown this many times brighter

Image = np.ndarray | Tensor  # HxWxC (C = 1 or 3) float in [0, 1], or a 3xHxW tensor


def comparison_row(
    left: Image,
    right: Image,
    output: Image,
    target: Image | None = None,
    show_error: bool = True,
) -> list[np.ndarray]:
    """A panel row as HxWxC float arrays: left | right | output, then, where a target is
    given, target and (if ``show_error``) ``|output - target| x ERROR_GAIN``."""
    row = [as_hwc(image) for image in (left, right, output)]
    if target is not None:
        row.append(as_hwc(target))
        if show_error:
            row.append(np.clip(np.abs(row[2] - row[3]) * ERROR_GAIN, 0.0, 1.0))
    return row


def render_panel(rows: Sequence[Sequence[Image]]) -> np.ndarray:
    """``rows`` of images as one uint8 HxWx3 picture on white.

    A row's images stand side by side and rows one under another, each row padded on the
    right to the widest; :data:`PANEL_GAP` white pixels separate images and rows. Values are
    clipped to [0, 1]; one-channel images are shown grey.
    """
    lines = [_with_gaps([_as_rgb(image) for image in row], axis=1) for row in rows]
    width = max(line.shape[1] for line in lines)
    padded = [_pad_right(line, width) for line in lines]
    return quantize(_with_gaps(padded, axis=0), 8)


def save_panel(panel: np.ndarray, path: Path) -> Path:
    """Write a :func:`render_panel` picture as an 8-bit PNG (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path, panel, bits=8)


def _as_rgb(image: Image) -> np.ndarray:
    pixels = np.clip(as_hwc(image), 0.0, 1.0).astype(np.float32)
    return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def _pad_right(image: np.ndarray, width: int) -> np.ndarray:
    white = np.ones((image.shape[0], width - image.shape[1], 3), np.float32)
    return np.concatenate([image, white], axis=1)


def _with_gaps(images: list[np.ndarray], axis: int) -> np.ndarray:
    """Images joined along ``axis`` (1: side by side, 0: one under another) with white gaps."""
    parts = []
    for image in images:
        gap_shape = list(image.shape)
        gap_shape[axis] = PANEL_GAP
        parts += [image, np.ones(gap_shape, np.float32)]
    return np.concatenate(parts[:-1], axis=axis)
