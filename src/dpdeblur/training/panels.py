"""Image panels for validation: left, right, output, target and |error|, one row per sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from dpdeblur.data.io import write_png


def panel_sample(left: Tensor, right: Tensor, output: Tensor, target: Tensor) -> dict:
    """The first image of each Bx3xHxW tensor as HxWx3 float arrays, keyed for
    :func:`panel_row`."""
    images = {"left": left, "right": right, "output": output, "target": target}
    return {
        key: tensor[0].detach().float().cpu().permute(1, 2, 0).numpy()
        for key, tensor in images.items()
    }


def panel_row(sample: dict[str, np.ndarray]) -> np.ndarray:
    """HxWx3 images side by side: left | right | output | target | |output - target| x 4."""
    error = np.clip(np.abs(sample["output"] - sample["target"]) * 4.0, 0, 1)
    tiles = [sample["left"], sample["right"], sample["output"], sample["target"], error]
    gap = np.ones((tiles[0].shape[0], 4, 3), np.float32)
    parts = []
    for tile in tiles:
        parts += [np.clip(tile, 0, 1).astype(np.float32), gap]
    return np.concatenate(parts[:-1], axis=1)


def panel_grid(samples: list[dict[str, np.ndarray]]) -> np.ndarray:
    """Rows of :func:`panel_row`, padded to a common width, as uint8 HxWx3."""
    rows = [panel_row(s) for s in samples]
    width = max(r.shape[1] for r in rows)
    padded = []
    for row in rows:
        pad = np.ones((row.shape[0], width - row.shape[1], 3), np.float32)
        padded += [np.concatenate([row, pad], axis=1), np.ones((4, width, 3), np.float32)]
    grid = np.concatenate(padded[:-1], axis=0)
    return np.round(grid * 255).astype(np.uint8)


def save_panel(grid: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_png(path, grid, bits=8)
