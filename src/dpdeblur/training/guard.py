"""The task wrapper of every Hydra job: in a multirun a failing job is recorded and the
sweep goes on; a single run lets the error reach the command line. Under DDP every rank
runs the task and only global rank 0 writes ``metrics.json``."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from dpdeblur.errors import DpdeblurError
from dpdeblur.runs.directory import write_metrics

log = logging.getLogger("dpdeblur")


class TrainingDivergedError(DpdeblurError):
    """The training loss stayed non-finite; the run stopped at the last good weights.

    ``details`` (the step, ranks and per-term losses, ``last.ckpt``) go into ``metrics.json``.
    """

    def __init__(self, problem: str, path=None, fix: str | None = None, details=None):
        self.details = dict(details or {})
        super().__init__(problem, path, fix)


class TrainingStoppedError(DpdeblurError):
    """A signal (SIGTERM) stopped training after a step; ``last.ckpt`` holds that step.

    Not a failure of the job but the end of the process: in a multirun it stops the sweep
    too, and the command line exits with ``128 + signum`` (143 for SIGTERM).
    """

    def __init__(self, problem: str, signum: int, path=None, fix: str | None = None):
        self.signum = int(signum)
        super().__init__(problem, path, fix)


def is_multirun() -> bool:
    try:
        return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    except Exception:
        return False


def global_rank() -> int:
    """This process's global rank: Lightning's once it has started (``rank_zero_only.rank``),
    before that the launcher's environment (``RANK``, ``LOCAL_RANK``, ``SLURM_PROCID``, the
    order Lightning reads them in); 0 for a run without DDP."""
    module = sys.modules.get("lightning.fabric.utilities.rank_zero")
    rank = getattr(getattr(module, "rank_zero_only", None), "rank", None)
    if rank is not None:
        return int(rank)
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 0


def finish_wandb() -> None:
    """Close a wandb run if one is open (each multirun job must start its own)."""
    if "wandb" not in sys.modules:  # seconds to import; a run that logged to it has it
        return
    try:
        import wandb  # already imported: costs nothing here

        if wandb.run is not None:
            wandb.finish()
    except Exception:
        pass


def guarded(task: Callable[[DictConfig], dict], cfg: DictConfig, output_dir: Path) -> dict:
    """Run ``task``; in a multirun, a failing job is logged (metrics.json status "failed",
    written by global rank 0 only) and the sweep goes on; in a single run the error
    propagates to the CLI. A signal's stop (:class:`TrainingStoppedError`) ends the sweep
    too: the run recorded it already."""
    try:
        return task(cfg)
    except TrainingStoppedError:
        raise
    except Exception as err:
        message = (
            err.one_line() if isinstance(err, DpdeblurError) else f"{type(err).__name__}: {err}"
        )
        if global_rank() == 0:
            record = {
                "status": "failed",
                "error": message,
                "experiment": cfg.get("experiment_name"),
            }
            record.update(getattr(err, "details", None) or {})
            write_metrics(output_dir, record)
        if not is_multirun():
            raise
        log.error("job failed, the sweep goes on: %s\n%s", message, traceback.format_exc())
        return {"status": "failed", "error": message}
    finally:
        finish_wandb()
