"""What the train and evaluate tasks both set up: the data check, loggers, the model asked
for, and the checks that refuse a wrong set-up in one line, in the tools' override syntax
(the data and checkpoint layers, shared with the argparse tools, write ``--allow-8bit`` and
``--model``; here the hints say ``data.allow_8bit=true`` and ``model=``).

Neither task imports the other; both import this module.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import torch
import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from dpdeblur.data.check import check_dataset
from dpdeblur.errors import CheckpointError, ConfigError, DataError, DpdeblurError
from dpdeblur.models import is_model, model_info
from dpdeblur.runs.checkpoints import read_checkpoint
from dpdeblur.training.config import config_dir
from dpdeblur.training.config_errors import hydra_hint

_CROP = re.compile(r"crop (\d+)x(\d+) is larger than the image (\d+)x(\d+)")
_WORKER = "in DataLoader worker process"
_RAISED = re.compile(r"\b[\w.]*(?:Error|Exception): ")


def check_data(datamodule, splits: tuple[str, ...]) -> None:
    """Stop before training when a file dataset fails its check (headers only: fast), or
    when its training images are smaller than the training crop."""
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
        raise DataError(hydra_hint(f"dataset check failed: {report.problems[0]}{more}"))
    crop = datamodule.crop_size
    if not crop or datamodule.resize or "train" not in splits:
        return
    sizes = [size for split in report.splits if split.split == "train" for size in split.sizes]
    if sizes:
        height, width = min(sizes, key=min)
        if crop > min(height, width):
            raise ConfigError(
                f"crop {crop}x{crop} is larger than the training images {height}x{width}",
                datamodule.root,
                f"set data.crop_size={min(height, width)} or less",
            )


@contextmanager
def readable_data_errors(root: str | Path | None = None) -> Iterator[None]:
    """Errors raised while loading batches, in one line: a data-layer error from a loader
    worker loses the worker's traceback, and a crop larger than an image says which key
    to set (``data.crop_size``)."""
    try:
        yield
    except DpdeblurError as err:
        message = str(err)
        if _WORKER not in message:
            raise
        # the original exception's own message: after its qualified name, at the end
        text = hydra_hint(_RAISED.split(message)[-1].strip())
        try:
            clean = type(err)(text)
        except Exception:
            clean = DpdeblurError(text)
        raise clean from None
    except ValueError as err:
        found = _CROP.search(str(err))
        if found is None:
            raise
        crop_h, crop_w, height, width = (int(v) for v in found.groups())
        raise ConfigError(
            f"crop {crop_h}x{crop_w} is larger than the image {height}x{width}",
            root,
            f"set data.crop_size={min(height, width)} or less",
        ) from None


def check_model_arguments(model_config: Mapping[str, Any]) -> None:
    """Refuse a model argument the model's constructor does not take (``+model.offst_init``)."""
    config = dict(model_config)
    config.pop("_target_", None)
    name = config.pop("name", None)
    if name is None or not is_model(name):
        return  # model_from_config says what is wrong, with the known names
    parameters = inspect.signature(model_info(name).architecture).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    known = [k for k in parameters if k != "self"]
    for key in config:
        if key not in parameters:
            near = get_close_matches(key, known, n=1)
            hint = f"did you mean model.{near[0]}? " if near else ""
            raise ConfigError(
                f"model '{name}' has no argument '{key}'",
                None,
                f"{hint}its arguments: {', '.join(known)}",
            )


def _value(value: Any) -> str:
    """A config value as an override writes it (``true``, ``0.125``, ``[1,2]``)."""
    return json.dumps(value, separators=(",", ":")).strip('"')


def describe_model(config: Mapping[str, Any]) -> str:
    """``dpdnet_small(width=0.125)``."""
    config = dict(config)
    name = config.pop("name", "?")
    args = ", ".join(f"{k}={_value(v)}" for k, v in config.items())
    return f"{name}({args})" if args else str(name)


def model_overrides(stored: Mapping[str, Any], model_override: str = "model=") -> str:
    """The overrides that select the model ``stored`` describes: its config file
    (``model=<name>``) plus the arguments that differ from it."""
    stored = dict(stored)
    name = str(stored.pop("name", "?"))
    path = config_dir() / "model" / f"{name}.yaml"
    base: dict = {}
    if path.is_file():
        base = dict(yaml.safe_load(path.read_text()) or {})
        base.pop("name", None)
        items = [f"{model_override}{name}"]
    else:
        items = [f"{model_override.rstrip('=')}.name={name}".lstrip("+")]
    for key, value in stored.items():
        if base.get(key) != value:
            items.append(f"{'' if key in base else '+'}model.{key}={_value(value)}")
    items += [f"~model.{key}" for key in base if key not in stored]
    return " ".join(items)


def stored_model(path: str | Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """The model config a checkpoint names (None if it names none) and where it stopped
    (``global_step``, ``epoch``): read memory-mapped, so a large file costs little."""
    payload = read_checkpoint(path, mmap=True)
    if not isinstance(payload, Mapping):
        return None, {}
    where = {k: payload.get(k) for k in ("global_step", "epoch") if k in payload}
    if isinstance(payload.get("hyper_parameters"), Mapping):
        config = payload["hyper_parameters"].get("model_config")
        return (dict(config) if config else None), where
    if payload.get("format") == "dpdeblur-weights":
        return {"name": payload.get("model"), **dict(payload.get("model_kwargs") or {})}, where
    return None, where


def same_model(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two model configs build the same network: the same name, and every argument
    equal, an argument one of them leaves out counting as its constructor default."""
    if first.get("name") != second.get("name"):
        return False
    defaults: dict[str, Any] = {}
    if is_model(str(first.get("name"))):
        parameters = inspect.signature(model_info(str(first["name"])).architecture).parameters
        defaults = {k: p.default for k, p in parameters.items() if p.default is not p.empty}
    missing = object()
    for key in (set(first) | set(second)) - {"name"}:
        one = first.get(key, defaults.get(key, missing))
        other = second.get(key, defaults.get(key, missing))
        if one is missing or other is missing or one != other:
            return False
    return True


def check_checkpoint_model(
    path: str | Path,
    model_config: Mapping[str, Any] | None,
    what: str = "ckpt_path",
    model_override: str = "model=",
) -> dict[str, Any]:
    """Refuse a checkpoint of another model (or size) than ``model_config`` in one line
    that names the checkpoint's model and the overrides that select it; returns where the
    checkpoint stopped (``{"path", "global_step", "epoch"}``)."""
    stored, where = stored_model(path)
    info = {"path": str(path), **where}
    if stored is None or model_config is None:
        return info
    stored.pop("_target_", None)
    current = dict(model_config)
    current.pop("_target_", None)
    if not same_model(stored, current):
        raise CheckpointError(
            f"this checkpoint is a {describe_model(stored)} checkpoint, not a "
            f"{describe_model(current)} one",
            path,
            f"pass {model_overrides(stored, model_override)} or another {what}",
        )
    return info


def trainer_settings(trainer: DictConfig) -> dict[str, Any]:
    """The ``trainer`` config as ``lightning.Trainer`` takes it, once our own key in it is
    applied: ``float32_matmul_precision`` (``torch.set_float32_matmul_precision``; "high"
    lets float32 matrix products use TF32 on Ampere and later GPUs: ``trainer=gpu`` and
    ``trainer=ddp`` set it). Applied for GPU accelerators only, so that a CPU check of a
    GPU trainer (``trainer=ddp trainer.accelerator=cpu``) computes as the CPU trainer does."""
    settings = OmegaConf.to_container(trainer, resolve=True)
    precision = settings.pop("float32_matmul_precision", None)
    if precision and str(settings.get("accelerator", "cpu")) != "cpu":
        torch.set_float32_matmul_precision(str(precision))
    return settings


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
