"""What makes a DP sample valid, and which way up its views go to a model.

A sample is the files of one scene: the left and right DP views, and the combined view and
the all-in-focus target where the data has them. Every reader of samples (the datasets,
``dpdeblur-data check``, ``dpdeblur-deblur``) decodes the files (a file that cannot be
decoded is a :class:`~dpdeblur.errors.ImageReadError` of :func:`dpdeblur.data.io.read_raw`)
and asks :func:`sample_problems` what else is wrong: a file of lower bit depth than the data
promises (16 for DPDD) or files of different sizes.

Orientation: DP disparity runs along the sensor's rows. A portrait capture (height > width),
as PIXEL's, is turned 90 degrees counter-clockwise to landscape (as PIXEL is usually shown)
before a model sees it, and a result is turned back to lie on its input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpdeblur.errors import BitDepthError, DataError


@dataclass(frozen=True)
class DecodedFile:
    """What a sample check needs to know of one decoded file of a sample."""

    role: str  # "left", "right", "combined" or "target"
    path: Path
    size: tuple[int, int]  # (height, width)
    bit_depth: int


def bit_depth_error(
    path: Path, bit_depth: int, min_bits: int | None, how_to_accept: str
) -> BitDepthError | None:
    """The error of a file with fewer bits than ``min_bits`` (``None``: any depth is fine).

    ``how_to_accept`` finishes the fix, e.g. ``"pass --allow-8bit to accept them"``.
    """
    if min_bits is None or bit_depth >= min_bits:
        return None
    return BitDepthError(
        f"{bit_depth}-bit image where {min_bits}-bit is expected",
        path,
        f"use the original {min_bits}-bit files, or {how_to_accept}",
    )


def sample_problems(
    files: Sequence[DecodedFile], min_bits: int | None = None, how_to_accept: str = ""
) -> list[DataError]:
    """Everything wrong with a sample's decoded files, file by file in the given order:
    a bit depth below ``min_bits`` (a :class:`BitDepthError`, see :func:`bit_depth_error`),
    then a size that differs from the first file's (a :class:`DataError`).

    The caller decides what to do: raise the first, report them all, or turn bit-depth
    errors into warnings where lower depths are allowed.
    """
    problems: list[DataError] = []
    for file in files:
        shortfall = bit_depth_error(file.path, file.bit_depth, min_bits, how_to_accept)
        if shortfall is not None:
            problems.append(shortfall)
        first = files[0]
        if file.size != first.size:
            (height, width), (first_height, first_width) = file.size, first.size
            problems.append(
                DataError(
                    f"{file.role} image is {width}x{height} but the {first.role} image is "
                    f"{first_width}x{first_height} (WxH)",
                    file.path,
                    "all views and the target of a sample must have the same size",
                )
            )
    return problems


def is_portrait(image: np.ndarray) -> bool:
    """Whether an HxW... image is taller than it is wide."""
    return image.shape[0] > image.shape[1]


def portrait_to_landscape(image: np.ndarray) -> np.ndarray:
    """Turn an HxW... image 90 degrees counter-clockwise (a view, not a copy)."""
    return np.rot90(image, 1)


def landscape_to_portrait(image: np.ndarray) -> np.ndarray:
    """Undo :func:`portrait_to_landscape`: turn 90 degrees clockwise (a view, not a copy)."""
    return np.rot90(image, -1)
