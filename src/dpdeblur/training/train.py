"""The training task behind ``dpdeblur-train``: fit, choose on validation, test, record.

1. Check the config and the data (:mod:`~dpdeblur.training.preflight`, then the dataset's
   files): a wrong set-up stops here, in one line.
2. Build model, loss, optimiser/scheduler, loggers and callbacks from the config.
3. Fit (``ckpt_path=last`` or ``auto`` resumes at the saved step: optimiser, scheduler,
   callbacks, the data position within the epoch and the random state;
   :mod:`~dpdeblur.training.resume`). ``last.ckpt`` is saved every 30 minutes and holds the
   final step however training stops (:class:`~dpdeblur.training.callbacks.FinalCheckpoint`);
   a signal (SIGTERM, SLURM's requeue signal) ends the task there, and the requeue signal
   is then handed to submitit, which requeues the job. A non-finite loss on any rank skips
   that step on every rank, and stops the run when it persists
   (:class:`~dpdeblur.training.nonfinite.NonFiniteGuard`).
4. Re-validate the best checkpoint (chosen on validation PSNR, never on test) and test it.
5. Write ``metrics.json`` (val/test means, per-scene means, protocol, checkpoints, what the
   run resumed from, status) and print the summary table
   (:mod:`~dpdeblur.training.summary`).

Under DDP every process runs this task; only global rank 0 writes ``config.yaml`` and
``metrics.json`` (a failed run's too: :func:`~dpdeblur.training.guard.guarded`). A strategy
that starts its processes by re-running the command line (Lightning's ``ddp`` on one
machine) is refused inside a multirun, and ``ddp_spawn`` everywhere (:func:`check_launcher`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from dpdeblur.errors import CheckpointError, ConfigError
from dpdeblur.runs.checkpoints import load_model, model_from_config
from dpdeblur.runs.directory import save_config, write_metrics
from dpdeblur.runs.find import best_checkpoint
from dpdeblur.runs.state_dict import load_stage1_state_dict, load_strict
from dpdeblur.training.callbacks import FinalCheckpoint
from dpdeblur.training.console import quiet_console
from dpdeblur.training.guard import (
    TrainingDivergedError,
    TrainingStoppedError,
    finish_wandb,
    is_multirun,
)
from dpdeblur.training.nonfinite import NonFiniteGuard
from dpdeblur.training.preflight import check_config
from dpdeblur.training.resume import auto_checkpoint, last_checkpoint_of, resumable_train_loader
from dpdeblur.training.setup import (
    build_loggers,
    check_checkpoint_model,
    check_data,
    check_model_arguments,
    log_tables,
    model_request,
    model_size,
    readable_data_errors,
    trainer_settings,
)
from dpdeblur.training.summary import format_summary
from dpdeblur.training.system import DeblurSystem, summarise

log = logging.getLogger("dpdeblur")


def init_checkpoint(spec: str, log_dir: Path) -> Path:
    """``init_from``: a checkpoint path, or ``best:<experiment>`` for the best checkpoint of
    the newest finished run of that experiment under ``log_dir`` (chains recipe stages)."""
    if not spec.startswith("best:"):
        return Path(spec).expanduser()
    experiment = spec.split(":", 1)[1]
    found = best_checkpoint([log_dir], experiment_name=experiment)
    if found is None:
        raise CheckpointError(
            f"init_from={spec}: no finished run of experiment '{experiment}' with a best checkpoint",
            Path(log_dir),
            f"run experiment={experiment} first, or pass init_from=/path/to/best.ckpt",
        )
    return found


def hydra_job() -> tuple[list[str] | None, Path | None]:
    """This Hydra job's command-line overrides and, in a multirun, its sweep folder
    (None, None outside a Hydra app)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None, None
    hydra_cfg = HydraConfig.get()
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    return overrides, (Path(hydra_cfg.sweep.dir) if is_multirun() else None)


def resume_from(cfg: DictConfig, output_dir: Path) -> str | None:
    """The checkpoint ``ckpt_path`` asks to resume: ``last`` (must exist), ``auto`` (if there
    is one), a path, or None."""
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(last_checkpoint_of(cfg, output_dir))
    elif ckpt_path == "auto":
        overrides, sweep_dir = hydra_job()
        found = auto_checkpoint(cfg, output_dir, overrides, sweep_dir)
        if found is None:
            log.info("ckpt_path=auto: no last.ckpt of this run yet, starting fresh")
            return None
        ckpt_path = str(found)
    if ckpt_path:
        log.info("resuming from %s", ckpt_path)
    return ckpt_path or None


def build_callbacks(cfg: DictConfig) -> tuple[FinalCheckpoint, NonFiniteGuard, list]:
    """The config's callbacks with :class:`FinalCheckpoint` and :class:`NonFiniteGuard`
    first (their defaults where the config leaves them out): the final save must come before
    other callbacks' ``on_train_end`` (weight averaging swaps the average in there)."""
    callbacks = [instantiate(conf) for conf in (cfg.get("callbacks") or {}).values() if conf]
    final = next((c for c in callbacks if isinstance(c, FinalCheckpoint)), None)
    guard = next((c for c in callbacks if isinstance(c, NonFiniteGuard)), None)
    final, guard = final or FinalCheckpoint(), guard or NonFiniteGuard()
    rest = [c for c in callbacks if c is not final and c is not guard]
    return final, guard, [final, guard, *rest]


def diverged(guard: NonFiniteGuard, last: str | None) -> TrainingDivergedError:
    """The error that reports a run the non-finite guard stopped."""
    info = guard.report or {}
    bad = info.get("ranks") or []
    ranks = f"rank{'s' if len(bad) > 1 else ''} {', '.join(str(r) for r in bad) or '?'}"
    terms = info.get("terms", {})
    shown = terms.get(str((info.get("ranks") or [0])[0]), {})
    return TrainingDivergedError(
        f"training stopped: non-finite loss {shown} at step {info.get('step')} "
        f"(epoch {info.get('epoch')}) on {ranks}, {info.get('consecutive')} steps in a "
        f"row (callbacks.nonfinite.max_consecutive={guard.max_consecutive}), each skipped on "
        f"every rank; last.ckpt holds the last good weights: {last or 'none'}",
        None,
        "lower optimizer.lr or check the data (each rank's loss terms are in metrics.json)",
        details={"nonfinite": info, "last_checkpoint": last},
    )


def initialise(model, cfg: DictConfig) -> str | None:
    """``init_from``: start from another run's weights (fresh optimiser), e.g. recipe stage 2.

    With ``stage2=true`` (K3DN's two-stage recipe) the stage-1 weights lack the stage-2
    blocks (K3DN's sharp-region blocks), and only those blocks are trained afterwards.
    """
    spec = cfg.get("init_from")
    if cfg.get("stage2") and not hasattr(model, "freeze_for_stage2"):
        raise ConfigError(
            f"stage2=true but model '{cfg.model.name}' has no second stage",
            None,
            "use a K3DN model",
        )
    path = None
    if spec:
        path = init_checkpoint(str(spec), Path(cfg.paths.log_dir))
        if cfg.get("stage2"):
            source, _ = load_model(path)
            load_stage1_state_dict(model, source.state_dict(), path)
        else:
            model_config = OmegaConf.to_container(cfg.model, resolve=True)
            check_checkpoint_model(path, model_config, "init_from")
            name, kwargs = model_request(model_config)
            source, _ = load_model(path, name, kwargs)
            load_strict(model, source.state_dict(), path)
        log.info("initialised the model from %s", path)
    if cfg.get("stage2"):
        model.freeze_for_stage2()
    return None if path is None else str(path)


def is_rank_zero() -> bool:
    """Global rank 0, or no distributed run (Lightning reads RANK, LOCAL_RANK, SLURM_PROCID)."""
    return getattr(rank_zero_only, "rank", 0) == 0


def check_launcher(trainer: L.Trainer, multirun: bool) -> None:
    """Refuse the ways of starting DDP processes that this task cannot work with.

    - Inside a Hydra multirun, a strategy that re-runs the command line to start its other
      processes (Lightning's ``ddp`` on one machine without SLURM or torchrun): every new
      process would re-run the whole sweep. On SLURM the ranks are the job's tasks: fine.
    - ``ddp_spawn`` (and ``ddp_fork``) anywhere: validation and test would run in spawned
      processes, and their per-image scores would never reach ``metrics.json``.
    """
    launcher = getattr(trainer.strategy, "launcher", None)
    processes = getattr(trainer.strategy, "num_processes", 1)
    if isinstance(launcher, _MultiProcessingLauncher) and processes > 1:
        raise ConfigError(
            f"trainer strategy with {processes} spawned processes: the validation and test "
            "scores would stay in the spawned processes",
            None,
            "use trainer=ddp (strategy ddp) for one run, hydra/launcher=slurm for a sweep",
        )
    if (
        multirun
        and isinstance(launcher, _SubprocessScriptLauncher)
        and processes > 1
        and not launcher.cluster_environment.creates_processes_externally
    ):
        raise ConfigError(
            f"trainer strategy 'ddp' with {processes} processes re-runs the command line to "
            "start them, which inside a multirun (-m) re-runs the whole sweep",
            None,
            "sweep on SLURM (hydra/launcher=slurm: one job per row, one task per GPU), or run "
            "the rows one at a time without -m (experiment=<table> row=<row>)",
        )


def fit(trainer: L.Trainer, system: DeblurSystem, datamodule, ckpt_path: str | None) -> float:
    """``trainer.fit`` (resuming from ``ckpt_path``); the seconds it took. A SIGTERM ends it
    after a step (Lightning raises ``SIGTERMException`` once ``last.ckpt`` is saved)."""
    start = time.perf_counter()
    with contextlib.suppress(SIGTERMException):
        trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    return time.perf_counter() - start


def stopped(
    final: FinalCheckpoint, trainer: L.Trainer, output_dir: Path, payload: dict[str, Any]
) -> TrainingStoppedError:
    """Record a stop by a signal in ``metrics.json`` (status "stopped") and say how to go on."""
    payload = {**payload, "status": "stopped"}
    if trainer.is_global_zero:
        write_metrics(output_dir, payload)
    last = payload.get("last_checkpoint") or "none"
    signum = signal.Signals[final.stopped_by] if final.stopped_by else signal.SIGTERM
    return TrainingStoppedError(
        f"training stopped by {final.stopped_by} at step {trainer.global_step}; "
        f"last.ckpt holds that step ({last})",
        signum,
        None,
        "resume with the same overrides and ckpt_path=auto",
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    quiet_console()
    check_config(cfg, "train")
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if is_rank_zero():
        save_config(cfg, output_dir)

    datamodule = instantiate(cfg.data)
    check_data(datamodule, ("train", "val", "test") if cfg.test else ("train", "val"))
    resumable_train_loader(datamodule)
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
    check_model_arguments(model_config)
    ckpt_path = resume_from(cfg, output_dir)
    resumed_from = check_checkpoint_model(ckpt_path, model_config) if ckpt_path else None
    model = model_from_config(model_config)
    init_from = initialise(model, cfg)
    scheduler = instantiate(cfg.scheduler) if cfg.get("scheduler") else None
    system = DeblurSystem(
        model,
        loss=instantiate(cfg.loss),
        optimizer=instantiate(cfg.optimizer),
        scheduler=scheduler,
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True),
        model_config=model_config,
        output_dir=str(output_dir),
        scheduler_interval=cfg.get("scheduler_interval", "epoch"),
        channels_last=bool(cfg.get("channels_last", False)),
    )
    final, guard, callbacks = build_callbacks(cfg)
    loggers = build_loggers(cfg)
    trainer: L.Trainer = instantiate(
        trainer_settings(cfg.trainer), callbacks=callbacks, logger=loggers or False
    )
    check_launcher(trainer, is_multirun())

    fit_seconds = None
    if cfg.train:
        with readable_data_errors(datamodule.root):
            fit_seconds = fit(trainer, system, datamodule, ckpt_path)
    checkpoint = trainer.checkpoint_callback
    best = (
        checkpoint.best_model_path
        if checkpoint is not None and checkpoint.best_model_path
        else None
    )
    last_path = FinalCheckpoint.last_path(trainer)
    last = str(last_path) if last_path is not None else None
    if guard.report is not None:
        raise diverged(guard, last)

    payload: dict[str, Any] = {
        "status": "ok",
        "experiment": cfg.experiment_name,
        "run_name": cfg.get("run_name"),
        "model": model_config,
        "params": model_size(model),
        "protocol": system.suite.describe(),
        "seed": cfg.seed,
        "init_from": init_from,
        "resumed_from": resumed_from,
        "best_checkpoint": best,
        "selection": "best validation PSNR"
        if best
        else "final weights (no validation ran during fit)",
        "last_checkpoint": last,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
        "fit_seconds": fit_seconds,
        "stopped_by": final.stopped_by,
        "skipped_steps": guard.skipped,
    }
    if final.stopped_by is not None and final.stopped_by != "SIGINT":
        error = stopped(final, trainer, output_dir, payload)
        try:
            final.pass_on()  # submitit: checkpoint the job and requeue it (rank 0 exits there)
        except Exception as refused:  # submitit: timed out max_num_timeout times already
            raise TrainingStoppedError(
                f"{error.problem}; the job was not requeued ({refused})",
                error.signum,
                None,
                "run the same command again to go on from last.ckpt (ckpt_path=auto), with a "
                "larger hydra.launcher.timeout_min or hydra.launcher.max_num_timeout",
            ) from None
        raise error
    weights = best or (ckpt_path if not cfg.train else None)
    # With weight averaging, a checkpoint's state_dict holds the averaged weights (what
    # dpdeblur-eval loads); the callback would reload the raw ones for the test, so score
    # without it.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]
    with readable_data_errors(datamodule.root):
        trainer.validate(
            system, datamodule=datamodule, ckpt_path=weights, weights_only=False, verbose=False
        )
        payload["val"] = summarise(system.rows["val"])
        if cfg.test:
            trainer.test(
                system, datamodule=datamodule, ckpt_path=weights, weights_only=False, verbose=False
            )
            payload["test"] = summarise(system.rows["test"])
            log_tables(loggers, "test", system.rows["test"])
    if trainer.is_global_zero:
        path = write_metrics(output_dir, payload)
        log.info("metrics: %s", path)
        finish_wandb()  # wandb's own report comes before the summary, not after it
        print(
            format_summary(payload, "dpdeblur-train", str(output_dir), cfg.get("hint")), flush=True
        )
    return payload
