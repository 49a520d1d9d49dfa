"""Tile grids and blending weights for running a model on an image piece by piece.

Along each axis, tiles of at most ``tile`` pixels start at multiples of the model's
``multiple`` and neighbours share at least ``overlap`` pixels (:func:`plan_axis`). Inside
each shared band the two tiles cross-fade (:func:`axis_weights`):

    tile i:     1 ... 1 | 1 ... 1 (guard) | raised-cosine fall | 0 ... 0 (guard)
    tile i+1:   0 ... 0 (guard)  | raised-cosine rise | 1 ... 1 (guard)

The guard keeps a tile's weight at exactly 0 within ``guard`` pixels of its inner edge,
where its output is spoilt by the edge; away from the bands every weight is exactly 1. With
the model's receptive-field margin as the guard (possible when ``overlap >= 2 * margin``)
every pixel is taken only from tiles that compute it exactly as the whole image would, so
tiled and whole-image outputs agree up to float rounding. Without a known margin the guard
is a quarter of the band and the cross-fade the middle half, which hides seams.

The 2-D weight of a tile is the outer product of its row and column weights; the blend
divides the weighted sum by the summed weights.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dpdeblur.inference.margins import round_down, round_up


def plan_axis(length: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the tiles covering ``0 .. length`` along one axis.

    Starts are multiples of ``multiple``; every tile but the last is ``tile`` long and the
    last ends at ``length`` (no longer than ``tile``); neighbours share at least
    ``overlap`` pixels; the starts are spread as evenly as the grid allows. ``tile`` and
    ``overlap`` must be multiples of ``multiple`` with ``overlap < tile``.
    """
    if tile % multiple or overlap % multiple:
        raise ValueError(f"tile {tile} and overlap {overlap} must be multiples of {multiple}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got {overlap} for tile {tile}")
    if length <= tile:
        return [(0, length)]
    last = round_up(length - tile, multiple)  # start of the last tile, in grid units below
    units, step = last // multiple, (tile - overlap) // multiple
    steps = -(-units // step)
    starts = [multiple * (k * units // steps) for k in range(steps + 1)]
    return [(start, min(start + tile, length)) for start in starts]


def _ramp(length: int) -> np.ndarray:
    """Raised-cosine rise from 0 to 1 over ``length`` pixels (sampled at pixel centres)."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / max(length, 1)
    return np.sin(0.5 * np.pi * t) ** 2


def band_guard(band: int, margin: int | None) -> int:
    """Pixels at each end of a shared band where only one of the two tiles counts."""
    if margin is not None and 2 * margin <= band:
        return margin
    return band // 4


def axis_weights(spans: list[tuple[int, int]], margin: int | None) -> list[np.ndarray]:
    """One weight vector per span of :func:`plan_axis` (see the module docstring)."""
    weights = [np.ones(stop - start, np.float64) for start, stop in spans]
    for i in range(len(spans) - 1):
        (start_a, stop_a), (start_b, _) = spans[i], spans[i + 1]
        band = stop_a - start_b
        guard = band_guard(band, margin)
        rise = np.zeros(band)
        rise[band - guard :] = 1.0
        rise[guard : band - guard] = _ramp(band - 2 * guard)
        weights[i + 1][:band] *= rise
        weights[i][start_b - start_a :] *= 1.0 - rise
    return weights


@dataclass(frozen=True)
class Tile:
    """One tile: rows ``top .. bottom`` and columns ``left .. right`` of the image."""

    top: int
    bottom: int
    left: int
    right: int
    row_weights: np.ndarray
    col_weights: np.ndarray

    @property
    def weights(self) -> np.ndarray:
        """The tile's 2-D blending weights, ``(bottom - top) x (right - left)``."""
        return np.outer(self.row_weights, self.col_weights).astype(np.float32)


@dataclass(frozen=True)
class TilePlan:
    """A grid of tiles over an ``height x width`` image (one tile = no tiling)."""

    height: int
    width: int
    tile: int | None
    overlap: int
    margin: int | None
    rows: tuple[tuple[int, int], ...]
    cols: tuple[tuple[int, int], ...]

    @classmethod
    def whole(cls, height: int, width: int) -> TilePlan:
        return cls(height, width, None, 0, None, ((0, height),), ((0, width),))

    @classmethod
    def grid(
        cls,
        height: int,
        width: int,
        tile: int,
        overlap: int,
        multiple: int,
        margin: int | None = None,
    ) -> TilePlan:
        rows = plan_axis(height, tile, overlap, multiple)
        cols = plan_axis(width, tile, overlap, multiple)
        return cls(height, width, tile, overlap, margin, tuple(rows), tuple(cols))

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)

    @property
    def exact(self) -> bool:
        """Whether every shared band leaves room for the margin on both sides."""
        if len(self) == 1:
            return True
        if self.margin is None:
            return False
        bands = [
            a[1] - b[0] for spans in (self.rows, self.cols) for a, b in itertools.pairwise(spans)
        ]
        return all(band >= 2 * self.margin for band in bands)

    def __iter__(self) -> Iterator[Tile]:
        row_w = axis_weights(list(self.rows), self.margin)
        col_w = axis_weights(list(self.cols), self.margin)
        for (top, bottom), wy in zip(self.rows, row_w, strict=True):
            for (left, right), wx in zip(self.cols, col_w, strict=True):
                yield Tile(top, bottom, left, right, wy, wx)

    def describe(self) -> str:
        if len(self) == 1:
            return "whole image"
        exact = "exact" if self.exact else "approximate"
        return (
            f"{len(self.rows)}x{len(self.cols)} tiles of {self.tile}px, "
            f"overlap {self.overlap}px ({exact})"
        )


def fit_tile(tile: int, multiple: int) -> int:
    """``tile`` rounded down to the grid (at least one grid step)."""
    return max(multiple, round_down(tile, multiple))
