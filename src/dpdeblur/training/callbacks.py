"""Training callbacks of our own (Lightning's are used directly from the configs).

:class:`TimeBudgetLRDecay` anneals the learning rate over the last part of a wall-clock
budget (``trainer.max_time``). A run limited by time rather than steps (the CPU demo) does
not know in advance how many steps it will get, so a step-based schedule would end too
early on a fast machine or never decay on a slow one; this one always finishes at the
budget's end.

:class:`FinalCheckpoint` makes ``last.ckpt`` hold the final state however training stops:
at an epoch's end, inside one (``trainer.max_steps``, ``trainer.max_time``, a non-finite
loss), or on SIGTERM or Ctrl-C, which it turns into a stop after the current step.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.utilities.exceptions import SIGTERMException

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


class FinalCheckpoint(Callback):
    """Write ``last.ckpt`` at the final step when the run's ``ModelCheckpoint`` has not.

    Lightning's ``ModelCheckpoint(save_last=True)`` saves ``last.ckpt`` at an epoch's end or
    after a validation, so a run that stops inside an epoch left it steps behind and
    ``ckpt_path=last`` resumed from there. This callback saves it again when training ends
    past the last save. Signals become clean stops:

    - SIGTERM (a scheduler's kill, ``kill PID``): Lightning notes it; the run stops after the
      current step, this saves, and Lightning raises ``SIGTERMException`` out of ``fit``.
    - Ctrl-C (SIGINT), the first: the run stops after the current step and this saves; the
      second interrupts at once (Lightning's handling; ``last.ckpt`` stays at the last save).
      Single-process runs only: in DDP every rank must stop at the same step.

    ``stopped_by`` names the signal that stopped the run (None otherwise).
    """

    def __init__(self) -> None:
        self.stopped_by: str | None = None
        self._trainer: L.Trainer | None = None
        self._previous_sigint: Any = None

    # -- signals ---------------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self.stopped_by is not None or self._trainer is None:
            self._restore_sigint()
            raise KeyboardInterrupt
        self.stopped_by = "SIGINT"
        self._trainer.should_stop = True
        print("\nCtrl-C: stopping after this step and saving last.ckpt (Ctrl-C again: stop now)")

    def _restore_sigint(self) -> None:
        if (
            self._previous_sigint is not None
            and threading.current_thread() is threading.main_thread()
        ):
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stopped_by = None
        self._trainer = trainer
        if trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if getattr(trainer, "received_sigterm", False) and self.stopped_by is None:
            self.stopped_by = "SIGTERM"
            trainer.should_stop = True

    # -- the final save --------------------------------------------------------------------
    @staticmethod
    def last_path(trainer: L.Trainer) -> Path | None:
        """Where the run's ``ModelCheckpoint`` writes ``last.ckpt`` (None: it writes none)."""
        checkpoint = trainer.checkpoint_callback
        if not isinstance(checkpoint, ModelCheckpoint) or not checkpoint.save_last:
            return None
        if not checkpoint.dirpath:
            return None
        name = checkpoint.CHECKPOINT_NAME_LAST + checkpoint.FILE_EXTENSION
        return Path(checkpoint.dirpath) / name

    def save_last(self, trainer: L.Trainer) -> None:
        path = self.last_path(trainer)
        if path is None or trainer.global_step == 0:
            return
        saved_at = getattr(trainer.checkpoint_callback, "_last_global_step_saved", None)
        if saved_at == trainer.global_step and path.is_file():
            return  # ModelCheckpoint saved at this very step
        trainer.save_checkpoint(path)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_sigint()
        self.save_last(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_sigint()
        if isinstance(exception, SIGTERMException):  # raised between steps: a clean state
            self.stopped_by = self.stopped_by or "SIGTERM"
            self.save_last(trainer)
