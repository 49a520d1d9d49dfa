"""Training callbacks of our own (Lightning's are used directly from the configs).

:class:`TimeBudgetLRDecay` anneals the learning rate over the last part of a wall-clock
budget (``trainer.max_time``). A run limited by time rather than steps (the CPU demo) does
not know in advance how many steps it will get, so a step-based schedule would end too
early on a fast machine or never decay on a slow one; this one always finishes at the
budget's end.

:class:`FinalCheckpoint` keeps ``last.ckpt`` recent (every 30 minutes by default) and makes
it hold the final state however training stops: at an epoch's end, inside one
(``trainer.max_steps``, ``trainer.max_time``, a non-finite loss), or on SIGTERM, SLURM's
requeue signal or Ctrl-C, which it turns into a stop after the current step on every rank.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, Timer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor

from dpdeblur.errors import ConfigError
from dpdeblur.training.resume import rng_state, set_rng_state

REQUEUE_SIGNAL_ENV = "SUBMITIT_PREEMPT_SIGNAL"  # submitit's setting of the signal's name


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


def requeue_signal() -> signal.Signals:
    """The signal SLURM sends before a job's time limit (``--signal``), which asks for a
    requeue: submitit's, ``SIGUSR2`` unless ``$SUBMITIT_PREEMPT_SIGNAL`` names another."""
    name = os.environ.get(REQUEUE_SIGNAL_ENV, "USR2").upper().removeprefix("SIG")
    try:
        return signal.Signals[f"SIG{name}"]
    except KeyError:
        return signal.SIGUSR2


def max_over_ranks(trainer: L.Trainer, values: Tensor) -> Tensor:
    """The elementwise maximum of ``values`` over every rank (one all-reduce; the values
    themselves in a single process). Every rank must call it at the same point."""
    if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


class FinalCheckpoint(Callback):
    """``last.ckpt`` holds a recent state however training stops, and every rank stops at
    the same step.

    Saves, through the run's ``ModelCheckpoint`` (``save_last``): every ``every_minutes`` of
    training and every ``every_n_steps`` optimiser steps (either may be None), so that a
    kill without warning (SIGKILL, a lost node) loses at most that much; and when training
    ends, at an epoch's end or inside one (``trainer.max_steps``, ``trainer.max_time``, the
    non-finite guard), past Lightning's own last save. The checkpoint also carries the
    random generators' states (:func:`dpdeblur.training.resume.rng_state`), which a resumed
    run restores before its first step.

    Signals ask for a stop after the current step:

    - SIGTERM (a scheduler's kill, ``kill PID``, ``scancel``);
    - the requeue signal (:func:`requeue_signal`, SIGUSR2: SLURM sends it
      ``hydra.launcher.signal_delay_s`` before the time limit, and on preemption where the
      cluster is set up so); :meth:`pass_on` then hands it to the handler that had it before
      training (submitit's, which requeues the job);
    - Ctrl-C (SIGINT), single-process runs only: the second one interrupts at once.

    In a single process the stop comes after the step the signal arrived in. Under DDP the
    ranks agree after each step (one all-reduce of two numbers: the signal any rank got,
    and whether the time for a periodic save has come), so a signal to any rank stops every
    rank after the same step, and the periodic saves happen at the same step on every rank.

    ``stopped_by`` names the signal that stopped the run (None otherwise).
    """

    def __init__(self, every_minutes: float | None = 30.0, every_n_steps: int | None = None):
        if every_minutes is not None and every_minutes <= 0:
            raise ConfigError(
                f"every_minutes must be positive, got {every_minutes}",
                fix="set callbacks.final_checkpoint.every_minutes=30 (or null: no timed saves)",
            )
        if every_n_steps is not None and every_n_steps < 1:
            raise ConfigError(
                f"every_n_steps must be at least 1, got {every_n_steps}",
                fix="set callbacks.final_checkpoint.every_n_steps=1000 (or null)",
            )
        self.every_minutes = every_minutes
        self.every_n_steps = every_n_steps
        self.stopped_by: str | None = None
        self.requested: signal.Signals | None = None  # a signal this process received
        self._trainer: L.Trainer | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._requeue_handler: Any = None
        self._saved_step: int | None = None
        self._last_save = time.monotonic()
        self._rng_to_restore: dict[str, Any] | None = None

    # -- signals ---------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.requested is not None:
            self._restore_handlers()
            raise KeyboardInterrupt
        if self.requested is not None:
            return
        self.requested = signal.Signals(signum)
        if signum == signal.SIGINT:
            print(
                "\nCtrl-C: stopping after this step and saving last.ckpt (Ctrl-C again: stop now)"
            )
        trainer = self._trainer
        if trainer is not None and trainer.world_size == 1:  # no other rank to agree with
            self._stop(trainer, self.requested.name)

    def _install_handlers(self, trainer: L.Trainer) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        wanted = [signal.SIGTERM, requeue_signal()]
        if trainer.world_size == 1:
            wanted.append(signal.SIGINT)
        for signum in wanted:
            self._previous[signum] = signal.signal(signum, self._on_signal)
        self._requeue_handler = self._previous.get(requeue_signal())

    def _restore_handlers(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in self._previous.items():
                if handler is not None:
                    signal.signal(signum, handler)
        self._previous = {}

    def _stop(self, trainer: L.Trainer, by: str) -> None:
        if self.stopped_by is None:
            self.stopped_by = by
        trainer.should_stop = True

    def pass_on(self) -> None:
        """After a stop by the requeue signal: call the handler that had it before training
        (submitit's checkpoints the job, requeues it and, on rank 0, exits the process)."""
        signum = requeue_signal()
        handler = self._requeue_handler
        if self.stopped_by != signum.name or not callable(handler):
            return
        if handler in (signal.default_int_handler, self._on_signal):
            return
        handler(signum, None)

    # -- training --------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stopped_by = None
        self.requested = None
        self._trainer = trainer
        self._last_save = time.monotonic()
        self._install_handlers(trainer)
        if self._rng_to_restore is not None:  # resumed: after the loaders' iterators drew
            set_rng_state(self._rng_to_restore)
            self._rng_to_restore = None

    def _time_due(self) -> bool:
        if self.every_minutes is None:
            return False
        return time.monotonic() - self._last_save >= 60.0 * self.every_minutes

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        signum, timed = int(self.requested or 0), self._time_due()
        if trainer.world_size > 1:
            local = torch.tensor([signum, int(timed)], device=pl_module.device)
            signum, timed = (int(v) for v in max_over_ranks(trainer, local).tolist())
        if signum:
            self._stop(trainer, signal.Signals(signum).name)
            return  # on_train_end saves
        steps = self.every_n_steps is not None and trainer.global_step % self.every_n_steps == 0
        if timed or steps:
            self.save_last(trainer)

    # -- saving ----------------------------------------------------------------------------
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
        """Write ``last.ckpt`` at this step unless it holds it already (on every rank: the
        save is collective; the decision uses only state every rank shares)."""
        path = self.last_path(trainer)
        if path is None or trainer.global_step == 0:
            return
        saved_at = getattr(trainer.checkpoint_callback, "_last_global_step_saved", None)
        if trainer.global_step in (saved_at, self._saved_step):
            return  # saved at this very step already
        trainer.save_checkpoint(path)
        # ModelCheckpoint's own, from now on: it overwrites it rather than write last-v1.ckpt
        trainer.checkpoint_callback.last_model_path = str(path)
        self._saved_step = trainer.global_step
        self._last_save = time.monotonic()

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng_to_restore = state_dict.get("rng")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        self.save_last(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()
        if isinstance(exception, SIGTERMException):  # raised between steps: a clean state
            self.stopped_by = self.stopped_by or "SIGTERM"
            self.save_last(trainer)
