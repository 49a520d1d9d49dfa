"""What the train and evaluate tasks both set up: the data check, loggers, the model asked for.

Neither task imports the other; both import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dpdeblur.data.check import check_dataset
from dpdeblur.errors import DataError


def check_data(datamodule, splits: tuple[str, ...]) -> None:
    """Stop before training when a file dataset fails its check (headers only: fast)."""
    if datamodule.dataset != "dpdd":
        return
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
    """The config's loggers (``logger.*``), each given the resolved config as hyperparameters."""
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


def model_request(model_config: Mapping[str, Any] | None) -> tuple[str | None, dict[str, Any]]:
    """``(registry name, constructor arguments)`` of a ``model`` config (``None, {}`` if none)."""
    config = dict(model_config or {})
    config.pop("_target_", None)
    return config.pop("name", None), config


def model_size(model: nn.Module) -> int:
    """The number of parameters."""
    return sum(p.numel() for p in model.parameters())
