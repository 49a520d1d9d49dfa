"""The evaluation task behind ``dpdeblur-eval``: score a checkpoint on a split.

Accepts every checkpoint :func:`dpdeblur.runs.checkpoints.load_model` reads (ours,
``dpdeblur-convert`` outputs, the authors' released files, a state dict with ``model``);
writes ``metrics.json`` and ``{split}_images.csv`` into the run directory, exactly as
training does, so tables read both alike, and prints the same summary table. A checkpoint
that names its model needs no ``model``; ``+model=<name>`` that disagrees with it is
refused in one line naming the checkpoint's model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dpdeblur.errors import CheckpointError, ConfigError
from dpdeblur.metrics.protocol import DEFAULT_PROTOCOL
from dpdeblur.models.ensemble import FlipEnsemble
from dpdeblur.models.release_protocol import (
    INPUT_BITS,
    InputBits,
    ReleaseProtocol,
    check_release_protocol,
)
from dpdeblur.runs.checkpoints import AUTO_MODEL, load_model
from dpdeblur.runs.directory import save_config, write_metrics
from dpdeblur.training.console import quiet_console
from dpdeblur.training.guard import finish_wandb
from dpdeblur.training.preflight import check_config
from dpdeblur.training.setup import (
    build_loggers,
    check_checkpoint_model,
    check_data,
    check_model_arguments,
    hydra_hint,
    log_tables,
    model_request,
    model_size,
    readable_data_errors,
    trainer_settings,
)
from dpdeblur.training.summary import format_summary
from dpdeblur.training.system import DeblurSystem, summarise

log = logging.getLogger("dpdeblur")


def load_checkpoint(cfg: DictConfig):
    """The model of ``cfg.ckpt`` (``cfg.model`` only for a checkpoint that names none), with
    its errors' hints in override syntax."""
    model_config = OmegaConf.to_container(cfg.model, resolve=True) if cfg.get("model") else None
    if model_config and model_config.get("name") == AUTO_MODEL:  # model=auto: the file says
        model_config = None
    if model_config:
        check_model_arguments(model_config)
        check_checkpoint_model(cfg.ckpt, model_config, "ckpt", model_override="+model=")
    name, kwargs = model_request(model_config)
    try:
        return load_model(cfg.ckpt, name, kwargs)
    except CheckpointError as err:
        raise CheckpointError(
            err.problem, err.path, hydra_hint(err.fix or "", model_override="+model=") or None
        ) from None


def release_options(cfg: DictConfig, model: nn.Module) -> tuple[nn.Module, dict[str, Any]]:
    """``model`` wrapped for ``input_bits`` and ``release_protocol``, and the metrics config
    to score with: a release protocol that scored otherwise (DPANet's ``8bit_trunc``)
    replaces the default ``16bit`` metrics protocol; an explicit other one is kept."""
    metrics = OmegaConf.to_container(cfg.metrics, resolve=True)
    bits = int(cfg.get("input_bits") or 16)
    if bits not in INPUT_BITS:
        raise ConfigError(
            f"input_bits={bits} is not a bit depth we feed", None, "use input_bits=8 or 16"
        )
    if bits != 16:
        model = InputBits(model, bits)
    name = cfg.get("release_protocol")
    if name is not None:
        spec = check_release_protocol(name, "release_protocol={}")
        model = ReleaseProtocol(model, name)
        if metrics.get("protocol", DEFAULT_PROTOCOL) == DEFAULT_PROTOCOL:
            metrics["protocol"] = spec.metrics_protocol
    return model, metrics


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    quiet_console()
    check_config(cfg, "eval")
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    save_config(cfg, output_dir)
    split = cfg.get("split", "test")
    if split not in ("val", "test"):
        raise ConfigError(f"split={split} is not scored", None, "use split=test or split=val")

    model, info = load_checkpoint(cfg)
    model, metrics_config = release_options(cfg, model)
    flip_ensemble = bool(cfg.get("flip_ensemble", False))
    if flip_ensemble:
        model = FlipEnsemble(model)
    datamodule = instantiate(cfg.data)
    check_data(datamodule, (split,))
    system = DeblurSystem(
        model,
        metrics=metrics_config,
        model_config=info["model_config"],
        output_dir=str(output_dir),
    )
    loggers = build_loggers(cfg)
    trainer: L.Trainer = instantiate(
        trainer_settings(cfg.trainer), logger=loggers or False, callbacks=[]
    )
    with readable_data_errors(datamodule.root):
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
        "release_protocol": cfg.get("release_protocol"),
        "input_bits": int(cfg.get("input_bits") or 16),
        split: summarise(system.rows[split]),
    }
    path = write_metrics(output_dir, payload)
    log.info("metrics: %s", path)
    finish_wandb()  # wandb's own report comes before the summary, not after it
    print(format_summary(payload, "dpdeblur-eval", str(output_dir)), flush=True)
    return payload
