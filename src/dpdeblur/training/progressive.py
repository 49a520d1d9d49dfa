"""Progressive patch sizes (Restormer's "progressive learning"): small crops in large
batches early in training, larger crops in smaller batches later.

The schedule is a list of stages ``[steps, patch, batch]``: ``steps`` optimiser steps on
``patch`` x ``patch`` crops in batches of ``batch`` (per process, like ``data.batch_size``);
the last stage also covers any steps past the schedule's total. The data loader keeps
delivering crops of ``data.crop_size`` in batches of ``data.batch_size``, the largest of
the schedule; before each training step :class:`ProgressivePatches` keeps the stage's
number of samples and cuts a random ``patch`` x ``patch`` window from each of them, the
same window from every image of a sample (views, combined image, target, maps), so the
views stay registered with each other and with the target.

The stage is a function of ``trainer.global_step`` alone and the windows come from a
generator seeded by the step, so a resumed run continues the schedule exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from dpdeblur.errors import ConfigError

_SEED_MODULUS = 2**63 - 1
FIX = "give callbacks.progressive_patches.stages as [[steps, patch, batch], ...]"


@dataclass(frozen=True)
class Stage:
    """``steps`` optimiser steps on ``patch`` x ``patch`` crops in batches of ``batch``."""

    steps: int
    patch: int
    batch: int


def parse_stages(stages: Sequence[Sequence[int]]) -> list[Stage]:
    """The schedule as :class:`Stage` s; a malformed one raises a one-line ConfigError."""
    if not stages:
        raise ConfigError("the progressive schedule has no stages", None, FIX)
    parsed = []
    for index, stage in enumerate(stages):
        values = list(stage)
        if len(values) != 3 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
        ):
            raise ConfigError(
                f"progressive stage {index} is {values}, not three positive integers", None, FIX
            )
        parsed.append(Stage(*values))
    return parsed


def stage_at(stages: Sequence[Stage], step: int) -> Stage:
    """The stage optimiser step ``step`` (counted from 0) belongs to."""
    end = 0
    for stage in stages:
        end += stage.steps
        if step < end:
            return stage
    return stages[-1]


def _first_image(batch: dict[str, Any]) -> Tensor:
    for value in batch.values():
        if isinstance(value, Tensor) and value.dim() == 4:
            return value
    raise ConfigError("progressive patches need batches with BxCxHxW images (left, right, target)")


def shrink_batch(
    batch: dict[str, Any], size: int, patch: int, generator: torch.Generator
) -> dict[str, Any]:
    """Keep ``size`` random samples of a collated batch (all of them if it has fewer) and
    cut one random ``patch`` x ``patch`` window per sample from every BxCxHxW entry, in
    place; per-sample entries (names, bit depths) follow the samples kept."""
    first = _first_image(batch)
    total, height, width = int(first.shape[0]), int(first.shape[-2]), int(first.shape[-1])
    if patch > min(height, width):
        raise ConfigError(
            f"progressive patch {patch} is larger than the loaded crops ({height}x{width})",
            None,
            f"set data.crop_size to at least {patch} (the schedule's largest patch)",
        )
    keep = torch.randperm(total, generator=generator)[: min(size, total)].sort().values
    tops = torch.randint(0, height - patch + 1, (len(keep),), generator=generator).tolist()
    lefts = torch.randint(0, width - patch + 1, (len(keep),), generator=generator).tolist()
    picked = keep.tolist()
    for key, value in batch.items():
        is_image = isinstance(value, Tensor) and value.dim() == 4
        if is_image and value.shape[0] == total and value.shape[-2:] == first.shape[-2:]:
            batch[key] = torch.stack(
                [
                    value[i, :, top : top + patch, left : left + patch]
                    for i, top, left in zip(picked, tops, lefts, strict=True)
                ]
            )
        elif isinstance(value, Tensor) and value.dim() >= 1 and value.shape[0] == total:
            batch[key] = value[keep.to(value.device)]
        elif isinstance(value, list | tuple) and len(value) == total:
            batch[key] = type(value)(value[i] for i in picked)
    return batch


class ProgressivePatches(Callback):
    """Train on the stage's patch size and batch size of the schedule at every step.

    Args:
        stages: ``[[steps, patch, batch], ...]`` in training order.
        seed: seed of the windows and samples kept (mixed with the step and the rank).
    """

    def __init__(self, stages: Sequence[Sequence[int]], seed: int = 0):
        self.stages = parse_stages(stages)
        self.seed = int(seed)

    @property
    def largest(self) -> tuple[int, int]:
        """(patch, batch): what the loader must deliver at least."""
        return max(s.patch for s in self.stages), max(s.batch for s in self.stages)

    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Refuse, before the first step, a loader whose crops or batches are too small."""
        data = getattr(trainer, "datamodule", None)
        crop, size = getattr(data, "crop_size", None), getattr(data, "batch_size", None)
        patch, batch = self.largest
        if crop is not None and crop < patch:
            raise ConfigError(
                f"data.crop_size {crop} is smaller than the schedule's largest patch {patch}",
                None,
                f"set data.crop_size={patch}",
            )
        if size is not None and size < batch:
            raise ConfigError(
                f"data.batch_size {size} is smaller than the schedule's largest batch {batch}",
                None,
                f"set data.batch_size={batch}",
            )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not isinstance(batch, dict):
            raise ConfigError("progressive patches need dict batches (the DP data module's)")
        step = int(trainer.global_step)
        stage = stage_at(self.stages, step)
        rank = int(getattr(trainer, "global_rank", 0))
        seed = self.seed
        for part in (rank, step, int(batch_idx)):
            seed = (seed * 1_000_003 + part) % _SEED_MODULUS
        shrink_batch(batch, stage.batch, stage.patch, torch.Generator().manual_seed(seed))
