"""Faults the tests inject into ``dpdeblur-train`` runs started as subprocesses.

A test puts this folder on ``PYTHONPATH`` and adds a callback by override, e.g.
``+callbacks.poison._target_=fault_callbacks.PoisonRank``; DDP ranks that Lightning starts
by re-running the command line inherit both.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback


class PoisonRank(Callback):
    """From training step ``from_step`` on, rank ``rank``'s targets are NaN, so that rank's
    loss is non-finite while the other ranks' are not."""

    def __init__(self, rank: int = 1, from_step: int = 2):
        self.rank = rank
        self.from_step = from_step

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_rank == self.rank and trainer.global_step >= self.from_step:
            batch["target"].fill_(float("nan"))


class SignalOnce(Callback):
    """Send ``signum`` (a name: SIGTERM, SIGUSR2, SIGKILL) to this process after training
    step ``step``, on rank ``rank`` only; with ``marker``, once: the file records the
    signal, so the same command started again trains through."""

    def __init__(self, signum: str = "SIGTERM", step: int = 3, rank: int = 0, marker: str = ""):
        self.signum = signal.Signals[signum]
        self.step = step
        self.rank = rank
        self.marker = Path(marker) if marker else None

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_rank != self.rank or trainer.global_step != self.step:
            return
        if self.marker is not None:
            if self.marker.exists():
                return
            self.marker.write_text(f"{self.signum.name} after step {self.step}\n")
        os.kill(os.getpid(), self.signum)
