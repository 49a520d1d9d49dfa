"""The evaluation task behind ``dpdeblur-eval``: score a checkpoint on a split.

Accepts every checkpoint :func:`dpdeblur.runs.checkpoints.load_model` reads (ours,
``dpdeblur-convert`` outputs, the authors' released files, a state dict with ``model``);
writes ``metrics.json`` and ``{split}_images.csv`` into the run directory, exactly as
training does, so tables read both alike.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from dpdeblur.errors import ConfigError
from dpdeblur.models.ensemble import FlipEnsemble
from dpdeblur.models.release_protocol import RELEASE_PROTOCOLS, ReleaseProtocol
from dpdeblur.runs.checkpoints import load_model
from dpdeblur.runs.directory import save_config, write_metrics
from dpdeblur.training.setup import build_loggers, check_data, log_tables, model_request, model_size
from dpdeblur.training.system import DeblurSystem, summarise

log = logging.getLogger("dpdeblur")


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True)
    save_config(cfg, output_dir)
    split = cfg.get("split", "test")
    if split not in ("val", "test"):
        raise ConfigError(f"split={split} is not scored", None, "use split=test or split=val")

    name, kwargs = model_request(
        OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") else None
    )
    model, info = load_model(cfg.ckpt, name, kwargs)
    release_protocol = cfg.get("release_protocol")
    if release_protocol is not None:
        if release_protocol not in RELEASE_PROTOCOLS:
            raise ConfigError(
                f"unknown release_protocol={release_protocol}",
                None,
                f"use one of {', '.join(RELEASE_PROTOCOLS)}, or release_protocol=null",
            )
        model = ReleaseProtocol(model, release_protocol)
    flip_ensemble = bool(cfg.get("flip_ensemble", False))
    if flip_ensemble:
        model = FlipEnsemble(model)
    datamodule = instantiate(cfg.data)
    check_data(datamodule, (split,))
    system = DeblurSystem(
        model,
        metrics=OmegaConf.to_container(cfg.metrics, resolve=True),
        model_config=info["model_config"],
        output_dir=str(output_dir),
    )
    loggers = build_loggers(cfg)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=[])
    if split == "test":
        trainer.test(system, datamodule=datamodule, verbose=False)
    else:
        trainer.validate(system, datamodule=datamodule, verbose=False)
    log_tables(loggers, split, system.rows[split])
    payload = {
        "status": "ok",
        "experiment": cfg.experiment_name,
        "run_name": cfg.get("run_name"),
        "checkpoint": info,
        "model": info["model_config"],
        "params": model_size(model),
        "protocol": system.suite.describe(),
        "flip_ensemble": flip_ensemble,
        "release_protocol": release_protocol,
        split: summarise(system.rows[split]),
    }
    path = write_metrics(output_dir, payload)
    log.info("metrics: %s", path)
    return payload
