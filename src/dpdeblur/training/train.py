"""The training task behind ``dpdeblur-train``: fit, choose on validation, test, record.

1. Check the data (a wrong root or a broken dataset stops here, with the check's line).
2. Build model, loss, optimiser/scheduler, loggers and callbacks from the config.
3. Fit (``ckpt_path=last`` resumes exactly: epoch, step, optimiser, scheduler, callbacks).
4. Re-validate the best checkpoint (chosen on validation PSNR, never on test) and test it.
5. Write ``metrics.json`` (val/test means, per-scene means, protocol, checkpoint, status).

Under DDP every process runs this task; only global rank 0 writes ``config.yaml`` and
``metrics.json``. A strategy that starts its processes by re-running the command line
(Lightning's ``ddp`` on one machine) is refused inside a multirun, and ``ddp_spawn``
everywhere (:func:`check_launcher`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import WeightAveraging
from omegaconf import DictConfig, OmegaConf

from dpdeblur.errors import ConfigError, DataError
from dpdeblur.runs.checkpoints import load_model, model_from_config
from dpdeblur.runs.directory import (
    find_last_checkpoint,
    resolve_init_checkpoint,
    save_config,
    write_metrics,
)
from dpdeblur.training.guard import TrainingDivergedError, is_multirun
from dpdeblur.training.system import DeblurSystem, summarise

log = logging.getLogger("dpdeblur")


def check_data(datamodule, splits: tuple[str, ...]) -> None:
    """Stop before training when a file dataset fails its check (headers only: fast)."""
    if datamodule.dataset != "dpdd":
        return
    from dpdeblur.data.check import check_dataset

    report = check_dataset(
        datamodule.root, kind="dpdd", splits=splits, allow_8bit=datamodule.allow_8bit, quick=True
    )
    if not report.ok:
        more = (
            f" (and {len(report.problems) - 1} more; run dpdeblur-data check)"
            if len(report.problems) > 1
            else ""
        )
        raise DataError(f"dataset check failed: {report.problems[0]}{more}")


def build_loggers(cfg: DictConfig) -> list:
    loggers = [instantiate(conf) for conf in (cfg.get("logger") or {}).values() if conf]
    hparams = OmegaConf.to_container(cfg, resolve=True)
    for logger in loggers:
        logger.log_hyperparams(hparams)
    return loggers


def log_tables(loggers: list, split: str, rows: list[dict]) -> None:
    """The per-image table to loggers that take tables (wandb)."""
    if not rows:
        return
    columns = list(rows[0])
    for logger in loggers:
        log_table = getattr(logger, "log_table", None)
        if callable(log_table):
            log_table(
                key=f"{split}/images",
                columns=columns,
                data=[[row[c] for c in columns] for row in rows],
            )


def initialise(model, cfg: DictConfig) -> str | None:
    """``init_from``: start from another run's weights (fresh optimiser), e.g. recipe stage 2.

    With ``stage2=true`` (K3DN's two-stage recipe) the stage-1 weights may lack the
    sharp-region blocks, and only those blocks are trained afterwards.
    """
    spec = cfg.get("init_from")
    if cfg.get("stage2") and not hasattr(model, "freeze_for_stage2"):
        raise ConfigError(
            f"stage2=true but model '{cfg.model.name}' has no second stage",
            None,
            "use a K3DN model",
        )
    if spec:
        path = resolve_init_checkpoint(str(spec), Path(cfg.paths.log_dir))
        if cfg.get("stage2"):
            source, _ = load_model(path)
            model.load_stage1_state_dict(source.state_dict())
        else:
            source, _ = load_model(path, OmegaConf.to_container(cfg.model, resolve=True))
            model.load_state_dict(source.state_dict())
        log.info("initialised the model from %s", path)
    if cfg.get("stage2"):
        model.freeze_for_stage2()
    return str(path) if spec else None


def is_rank_zero() -> bool:
    """Global rank 0, or no distributed run (Lightning reads RANK, LOCAL_RANK, SLURM_PROCID)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def check_launcher(trainer: L.Trainer, multirun: bool) -> None:
    """Refuse the ways of starting DDP processes that this task cannot work with.

    - Inside a Hydra multirun, a strategy that re-runs the command line to start its other
      processes (Lightning's ``ddp`` on one machine without SLURM or torchrun): every new
      process would re-run the whole sweep. On SLURM the ranks are the job's tasks: fine.
    - ``ddp_spawn`` (and ``ddp_fork``) anywhere: validation and test would run in spawned
      processes, and their per-image scores would never reach ``metrics.json``.
    """
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    from lightning.pytorch.strategies.launchers.subprocess_script import (
        _SubprocessScriptLauncher,
    )

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


def model_size(model) -> int:
    return sum(p.numel() for p in model.parameters())


def train(cfg: DictConfig) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    if is_rank_zero():
        save_config(cfg, output_dir)

    datamodule = instantiate(cfg.data)
    check_data(datamodule, ("train", "val", "test") if cfg.test else ("train", "val"))
    model_config = OmegaConf.to_container(cfg.model, resolve=True)
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
    callbacks = [instantiate(conf) for conf in (cfg.get("callbacks") or {}).values() if conf]
    loggers = build_loggers(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    check_launcher(trainer, is_multirun())

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path == "last":
        ckpt_path = str(
            find_last_checkpoint(
                output_dir, Path(cfg.paths.log_dir), cfg.task_name, cfg.experiment_name
            )
        )
        log.info("resuming from %s", ckpt_path)

    if cfg.train:
        trainer.fit(system, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)
    checkpoint = trainer.checkpoint_callback
    best = (
        checkpoint.best_model_path
        if checkpoint is not None and checkpoint.best_model_path
        else None
    )
    last = (
        str(Path(checkpoint.dirpath) / "last.ckpt")
        if checkpoint is not None and checkpoint.dirpath
        else None
    )
    if system.nonfinite is not None:
        info = system.nonfinite
        raise TrainingDivergedError(
            f"training stopped: non-finite loss {info['terms']} at step {info['step']} (epoch {info['epoch']}); "
            f"last good checkpoint: {last or 'none'}",
            None,
            "lower the learning rate or check the data (see the per-term losses in the logs)",
        )

    payload: dict[str, Any] = {
        "status": "ok",
        "experiment": cfg.experiment_name,
        "run_name": cfg.get("run_name"),
        "model": model_config,
        "params": model_size(model),
        "protocol": system.suite.describe(),
        "seed": cfg.seed,
        "init_from": init_from,
        "best_checkpoint": best,
        "selection": "best validation PSNR"
        if best
        else "final weights (no validation ran during fit)",
        "last_checkpoint": last,
        "epochs": trainer.current_epoch,
        "global_step": trainer.global_step,
    }
    weights = best or (ckpt_path if not cfg.train else None)
    # With weight averaging, a checkpoint's state_dict holds the averaged weights (what
    # dpdeblur-eval loads); the callback would reload the raw ones for the test, so score
    # without it.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging)]
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
    return payload
