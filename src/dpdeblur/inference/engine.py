"""Run a model on one DP pair at full resolution, whole or in blended tiles.

:class:`Deblurrer` holds a model on its device with a precision, and restores 3xHxW float
pairs: it plans the tiles (:mod:`dpdeblur.inference.tiling`) from the requested tile size or,
by default, from the memory budget (:mod:`dpdeblur.inference.memory`), runs each tile under
``torch.inference_mode`` and autocast, and blends the tiles' outputs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from dpdeblur.errors import ConfigError, DpdeblurError
from dpdeblur.inference import memory
from dpdeblur.inference.margins import TilingSpec, round_up, tiling_spec
from dpdeblur.inference.tiling import TilePlan, fit_tile
from dpdeblur.models.output import output_image

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceMemoryError(DpdeblurError):
    """A tile (or the whole image) did not fit the device's memory."""


@dataclass(frozen=True)
class TileOptions:
    """How to cut an image into tiles.

    Attributes:
        tile: side of the square tiles in pixels (rounded down to the model's multiple);
            ``None`` tiles only when the whole image would not fit ``max_memory``; ``0``
            never tiles.
        overlap: pixels shared by neighbouring tiles (rounded up to the model's multiple);
            ``None``: the model's exact overlap (tiled == whole image) when it is at most
            half the tile, else a quarter of the tile.
        max_memory: memory budget in bytes for automatic tiling; ``None``: half the
            available RAM (CPU) or 80% of the free GPU memory.
    """

    tile: int | None = None
    overlap: int | None = None
    max_memory: int | None = None


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA when present, else CPU; other names checked for existence."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}", fix="use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("CUDA is not available on this machine", fix="use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"no {device}: this machine has {torch.cuda.device_count()} GPU(s)",
                fix="pick an existing cuda:N",
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("MPS is not available on this machine", fix="use --device cpu")
    return device


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast for ``bf16``/``fp16`` (ops that need float32 inside the models cast back
    themselves: deformable convs, FFTs); nothing for ``fp32``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", fix=f"use one of {PRECISIONS}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError("fp16 autocast needs a GPU", fix="use --precision bf16 or fp32 on CPU")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError("this GPU has no bf16 support", fix="use --precision fp16 or fp32")
    return torch.autocast(device.type, dtype=_AUTOCAST_DTYPES[precision])


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "can't allocate memory" in text or "not enough memory" in text
    )


class Deblurrer:
    """A model ready for inference: ``deblurrer(left, right) -> restored`` (3xHxW floats).

    The model is put in eval mode and moved to ``device``.
    """

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32"):
        autocast_for(device, precision)  # validates the combination early
        self.model = model.eval().to(device)
        self.device = device
        self.precision = precision
        self.spec: TilingSpec = tiling_spec(model)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        """One pass of the model on 1x3xhxw tensors on the device; float32 output."""
        with torch.inference_mode(), autocast_for(self.device, self.precision):
            return output_image(self.model(left, right)).float()

    def bytes_per_pixel(self) -> float:
        return memory.bytes_per_pixel(
            self.model, self.spec, self.device, self.precision, self.forward
        )

    def default_overlap(self, tile: int) -> int:
        exact = self.spec.exact_overlap
        if exact is not None and exact <= tile // 2:
            return exact
        quarter = round_up(tile // 4, self.spec.multiple)
        return quarter if quarter < tile else 0

    def plan(self, height: int, width: int, options: TileOptions) -> TilePlan:
        """The tiles for an ``height x width`` pair under ``options``."""
        multiple = self.spec.multiple
        tile = options.tile
        if tile is not None and tile < 0:
            raise ConfigError(f"tile must be >= 0, got {tile}", fix="pass a size in pixels or 0")
        if tile == 0:
            return TilePlan.whole(height, width)
        if tile is None:
            budget = options.max_memory or memory.default_budget(self.device)
            per_pixel = self.bytes_per_pixel()
            if memory.fits(memory.padded_pixels(height, width, multiple), per_pixel, budget):
                return TilePlan.whole(height, width)
            tile = memory.choose_tile(per_pixel, budget, multiple)
            if tile < 2 * multiple:
                raise ConfigError(
                    f"memory budget {memory.format_bytes(budget)} is too small for this model "
                    f"(about {memory.format_bytes(per_pixel * (2 * multiple) ** 2)} for the "
                    f"smallest tile, {2 * multiple}px)",
                    fix="raise --max-memory or use a smaller model",
                )
        tile = fit_tile(tile, multiple)
        if height <= tile and width <= tile:
            return TilePlan.whole(height, width)
        overlap = self.default_overlap(tile) if options.overlap is None else options.overlap
        if overlap < 0:
            raise ConfigError(f"overlap must be >= 0, got {overlap}", fix="pass pixels >= 0")
        overlap = round_up(overlap, multiple)
        if overlap >= tile:
            raise ConfigError(
                f"overlap {overlap}px (rounded to the model's multiple of {multiple}) is not "
                f"smaller than the tile ({tile}px)",
                fix="pass a smaller --overlap or a larger --tile",
            )
        return TilePlan.grid(height, width, tile, overlap, multiple, self.spec.margin)

    def run_plan(self, left: Tensor, right: Tensor, plan: TilePlan, progress: bool) -> Tensor:
        """Restore a pair (3xHxW CPU floats) tile by tile; blended 3xHxW float32 on the CPU."""
        if len(plan) == 1:
            out = self.forward(left[None].to(self.device), right[None].to(self.device))
            return out[0].cpu()
        height, width = plan.height, plan.width
        total = torch.zeros(3, height, width)
        weight_sum = torch.zeros(height, width)
        bar = tqdm(total=len(plan), desc="tiles", unit="tile", leave=False, disable=not progress)
        with bar:
            for tile in plan:
                rows, cols = slice(tile.top, tile.bottom), slice(tile.left, tile.right)
                out = self.forward(
                    left[None, :, rows, cols].to(self.device),
                    right[None, :, rows, cols].to(self.device),
                )[0].cpu()
                weights = torch.from_numpy(tile.weights)
                total[:, rows, cols] += out * weights
                weight_sum[rows, cols] += weights
                bar.update()
        return total / weight_sum

    def __call__(
        self,
        left: Tensor,
        right: Tensor,
        options: TileOptions | None = None,
        progress: bool = False,
    ) -> tuple[Tensor, TilePlan]:
        """Restore one pair of 3xHxW float tensors; returns the image and the plan used.

        With automatic tiling, running out of memory halves the tile and tries again.
        """
        options = options or TileOptions()
        if left.shape != right.shape or left.dim() != 3 or left.shape[0] != 3:
            raise ValueError(
                f"expected two 3xHxW tensors of one shape, got {tuple(left.shape)} and "
                f"{tuple(right.shape)}"
            )
        left, right = left.float().cpu(), right.float().cpu()
        height, width = left.shape[-2:]
        plan = self.plan(height, width, options)
        while True:
            try:
                return self.run_plan(left, right, plan, progress), plan
            except Exception as err:
                if not _is_out_of_memory(err):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                side = plan.tile or max(height, width)
                smaller = fit_tile(side // 2, self.spec.multiple)
                if options.tile is not None or smaller < 2 * self.spec.multiple:
                    raise DeviceMemoryError(
                        f"out of memory on {self.device} for a "
                        f"{min(side, height)}x{min(side, width)} tile",
                        fix="pass a smaller --tile (or --max-memory for automatic tiling)",
                    ) from None
                plan = self.plan(height, width, TileOptions(smaller, options.overlap))
