"""Training callbacks of our own (Lightning's are used directly from the configs).

:class:`TimeBudgetLRDecay` anneals the learning rate over the last part of a wall-clock
budget (``trainer.max_time``). A run limited by time rather than steps (the CPU demo) does
not know in advance how many steps it will get, so a step-based schedule would end too
early on a fast machine or never decay on a slow one; this one always finishes at the
budget's end.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, Timer

from dpdeblur.errors import ConfigError


def budget_lr_factor(fraction: float, start_fraction: float, final_factor: float) -> float:
    """1 until ``start_fraction`` of the budget has passed, then linear to ``final_factor``."""
    if fraction <= start_fraction:
        return 1.0
    progress = min(1.0, (fraction - start_fraction) / max(1e-9, 1.0 - start_fraction))
    return 1.0 + (final_factor - 1.0) * progress


class TimeBudgetLRDecay(Callback):
    """Multiply every parameter group's learning rate by :func:`budget_lr_factor` of the
    fraction of ``trainer.max_time`` spent training, before each training batch.

    Args:
        start_fraction: share of the budget at constant learning rate.
        final_factor: learning-rate multiplier reached when the budget runs out.
    """

    def __init__(self, start_fraction: float = 0.75, final_factor: float = 0.05):
        if not 0.0 <= start_fraction < 1.0:
            raise ConfigError(f"start_fraction must be in [0, 1), got {start_fraction}")
        if not 0.0 <= final_factor <= 1.0:
            raise ConfigError(f"final_factor must be in [0, 1], got {final_factor}")
        self.start_fraction = start_fraction
        self.final_factor = final_factor
        self.base_lrs: list[list[float]] | None = None

    @staticmethod
    def _timer(trainer: L.Trainer) -> Timer:
        for callback in trainer.callbacks:
            if isinstance(callback, Timer):
                return callback
        raise ConfigError(
            "TimeBudgetLRDecay needs a time budget",
            fix="set trainer.max_time (e.g. 00:00:07:00) or drop callbacks.lr_time_decay",
        )

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._timer(trainer)
        if self.base_lrs is None:  # a resumed run keeps the base rates it saved
            self.base_lrs = [[g["lr"] for g in opt.param_groups] for opt in trainer.optimizers]

    def fraction_spent(self, trainer: L.Trainer) -> float:
        timer = self._timer(trainer)
        elapsed = timer.time_elapsed("train")
        remaining = timer.time_remaining("train")
        if remaining is None:
            return 0.0
        return elapsed / max(1e-9, elapsed + remaining)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        factor = budget_lr_factor(
            self.fraction_spent(trainer), self.start_fraction, self.final_factor
        )
        for optimizer, bases in zip(trainer.optimizers, self.base_lrs or [], strict=False):
            for group, base in zip(optimizer.param_groups, bases, strict=True):
                group["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        return {"base_lrs": self.base_lrs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_lrs = state_dict.get("base_lrs")
