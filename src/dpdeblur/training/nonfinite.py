"""A non-finite training loss, on any rank: skip that step everywhere, stop if it persists.

:class:`NonFiniteGuard` looks at each step's loss before the backward pass, on the device
(no host sync there). After the backward pass, when DDP has averaged the gradients, the
ranks agree in one all-reduce whether any of them saw a non-finite loss, and the host reads
that one flag: the only host sync the guard adds, where the step's work has been queued
already. If a loss was non-finite, every rank drops its gradients before the optimiser
step (``zero_grad(set_to_none=True)``: the optimiser then updates no parameter and keeps
its state), so weights and optimiser stay those of the last good step on every rank; the
step still counts (``global_step``, the schedulers). After ``max_consecutive`` such steps in
a row every rank stops at the same step, and ``last.ckpt`` holds the last good weights
(:class:`~dpdeblur.training.callbacks.FinalCheckpoint`); the training task then reports
the step, the rank(s) and the per-term losses (:attr:`NonFiniteGuard.report`).

Why not skip by returning ``None`` from ``training_step``: under DDP Lightning refuses it,
and a rank that skips its backward pass leaves the others waiting in the gradient
all-reduce until the timeout.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from torch import Tensor

from dpdeblur.errors import ConfigError
from dpdeblur.training.callbacks import max_over_ranks


class NonFiniteGuard(Callback):
    """Skip every optimiser step whose loss was non-finite on some rank; stop after
    ``max_consecutive`` of them in a row.

    ``report`` (None until the guard stops a run): the first step of the last streak,
    its epoch, the ranks whose loss was non-finite, each rank's per-term losses there
    (``pl_module.last_terms``, which :class:`~dpdeblur.training.system.DeblurSystem` keeps),
    the streak's length and the skipped steps in all. ``skipped`` counts every skipped
    step of the run.
    """

    def __init__(self, max_consecutive: int = 3):
        if int(max_consecutive) < 1:
            raise ConfigError(
                f"max_consecutive must be at least 1, got {max_consecutive}",
                fix="set callbacks.nonfinite.max_consecutive=3 (1: stop at the first one)",
            )
        self.max_consecutive = int(max_consecutive)
        self.skipped = 0
        self.consecutive = 0
        self.report: dict[str, Any] | None = None
        self._streak: dict[str, Any] | None = None
        self._finite: Tensor | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.skipped, self.consecutive, self.report, self._streak = 0, 0, None, None
        self._finite = None

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor
    ) -> None:
        finite = torch.isfinite(loss.detach()).all()  # stays on the device
        self._finite = finite if self._finite is None else self._finite & finite

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        finite, self._finite = self._finite, None
        if finite is None:
            return
        bad = max_over_ranks(trainer, (~finite).to(torch.int32).reshape(1))
        if not bool(bad.item()):  # the one host read of the step
            self.consecutive, self._streak = 0, None
            return
        optimizer.zero_grad(set_to_none=True)  # no parameter is updated, no state changes
        self.skipped += 1
        self.consecutive += 1
        if self._streak is None:
            self._streak = self._describe(trainer, pl_module, local_finite=bool(finite.item()))
        if self.consecutive >= self.max_consecutive:
            self.report = {**self._streak, "consecutive": self.consecutive, "skipped": self.skipped}
            trainer.should_stop = True

    @staticmethod
    def _describe(
        trainer: L.Trainer, pl_module: L.LightningModule, local_finite: bool
    ) -> dict[str, Any]:
        """This step, and every rank's finiteness and per-term losses (gathered: every rank
        gets here at the same step, since they agreed the step was bad)."""
        terms = getattr(pl_module, "last_terms", None) or {}
        mine = {
            "rank": int(trainer.global_rank),
            "finite": local_finite,
            "terms": {name: float(value) for name, value in terms.items()},
        }
        everyone = [mine]
        if trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            everyone = [None] * trainer.world_size
            dist.all_gather_object(everyone, mine)
        return {
            "step": int(trainer.global_step),
            "epoch": int(trainer.current_epoch),
            "ranks": [item["rank"] for item in everyone if not item["finite"]],
            "terms": {str(item["rank"]): item["terms"] for item in everyone},
        }
