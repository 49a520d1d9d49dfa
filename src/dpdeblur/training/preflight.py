"""Checks on a composed config before a task starts: mistakes refused in one line.

Each check reads the config (and, for ``trainer=gpu``, asks torch whether there is a GPU);
none imports Lightning, so ``dpdeblur-train`` and ``dpdeblur-eval`` refuse a wrong set-up
within a second or two instead of after Lightning has started, or instead of silently
training on something else (``data.root`` without ``data=dpdd``). Checks that need the
data's files (image sizes, bit depths) run in :func:`dpdeblur.training.setup.check_data`.
"""

from __future__ import annotations

import difflib
import importlib.util
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

from dpdeblur.errors import ConfigError
from dpdeblur.training.config import config_dir

GPU_ACCELERATORS = ("gpu", "cuda")


def check_config(cfg: DictConfig, task: str = "train") -> None:
    """Every check below, cheapest first; raises :class:`ConfigError` at the first mistake."""
    check_missing(cfg, task)
    check_added_keys(cfg, task)
    check_data_options(cfg)
    check_loggers(cfg)
    check_trainer_flags(cfg)
    check_accelerator(cfg)


def missing_keys(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Keys whose value is ``???``, as dotted paths; interpolations are not resolved (a
    resolver may be slow: ``${dpdeblur_fast_precision:}`` imports torch)."""
    found = []
    for key in cfg:
        path = f"{prefix}{key}"
        if OmegaConf.is_interpolation(cfg, str(key)):
            continue
        if OmegaConf.is_missing(cfg, str(key)):
            found.append(path)
            continue
        child = cfg[key]
        if isinstance(child, DictConfig):
            found += missing_keys(child, f"{path}.")
    return found


def check_missing(cfg: DictConfig, task: str) -> None:
    """Mandatory values (``???``) left unset, e.g. ``dpdeblur-eval`` without ``ckpt=``."""
    missing = sorted(missing_keys(cfg))
    if not missing:
        return
    key = missing[0]
    if key == "ckpt":
        raise ConfigError(
            f"dpdeblur-{task} needs a checkpoint to score (ckpt= is not set)",
            None,
            "pass ckpt=/path/to/best.ckpt (a run's checkpoints/best-*.ckpt, or a "
            "dpdeblur-convert output)",
        )
    raise ConfigError(f"{key} is not set", None, f"pass {key}=<value>")


def known_top_level_keys(config_name: str) -> set[str]:
    """Top-level keys a task reads: the primary config's, the config groups, and those that
    experiment and table-row files (``@package _global_``) set."""
    root = config_dir()
    keys = {p.name for p in root.iterdir() if p.is_dir()}
    files = [
        root / f"{config_name}.yaml",
        *root.glob("experiment/*.yaml"),
        *root.glob("row/*.yaml"),
    ]
    for path in files:
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(loaded, dict):
            keys.update(str(k) for k in loaded)
    return keys - {"defaults"}


def check_added_keys(cfg: DictConfig, task: str) -> None:
    """``+foo=1`` adds a top-level key nothing reads (a typo Hydra accepts silently).

    Only keys added with a single ``+`` at the top level are checked; ``+model.<arg>=...``
    and ``+callbacks.<name>...`` add to a node that exists, and a model's arguments are
    checked against its constructor (:func:`dpdeblur.training.setup.check_model_arguments`).
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    added = [
        str(o)
        for o in HydraConfig.get().overrides.task
        if str(o).startswith("+") and not str(o).startswith("++")
    ]
    if not added:
        return
    known = known_top_level_keys(task)
    for override in added:
        key = override[1:].split("=", 1)[0]
        top = key.split(".", 1)[0].split("/", 1)[0].split("@", 1)[0]
        if top in known:
            continue
        close = difflib.get_close_matches(top, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"{override} adds a key '{top}' that dpdeblur-{task} never reads",
            None,
            f"{hint}check the spelling; dpdeblur-{task} --cfg job shows every key",
        )


def _size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    value = list(value) if not isinstance(value, int) else [value, value]
    return int(value[0]), int(value[-1])


def check_data_options(cfg: DictConfig) -> None:
    """``data.root`` given to synthetic data (ignored: refuse), and a synthetic training crop
    larger than the scenes rendered for it."""
    data = cfg.get("data")
    if not data or data.get("dataset") != "synthetic":
        return
    root = data.get("root")
    if root:
        raise ConfigError(
            f"data.root={root} is set, but data=synthetic renders its scenes and reads no files",
            None,
            f"pass data=dpdd data.root={root} to train on DPDD (or drop data.root)",
        )
    crop = data.get("crop_size")
    synthetic = data.get("synthetic") or {}
    pool = synthetic.get("pool") or {}
    size = _size(pool.get("size")) or _size(synthetic.get("size"))
    if crop and size and int(crop) > min(size):
        where = "data.synthetic.pool.size" if pool.get("size") else "data.synthetic.size"
        raise ConfigError(
            f"crop {crop}x{crop} is larger than the synthetic training scenes {size[0]}x{size[1]} ({where})",
            None,
            f"set data.crop_size={min(size)} or less, or {where}=[{crop},{crop}]",
        )


LOGGER_PACKAGES = {
    "TensorBoardLogger": ("tensorboard", ("tensorboard", "tensorboardX")),
    "wandb": ("wandb", ("wandb",)),
}


def check_loggers(cfg: DictConfig) -> None:
    """A logger whose package is not installed (``logger=tensorboard`` needs tensorboard)."""
    for name, conf in (cfg.get("logger") or {}).items():
        target = str((conf or {}).get("_target_", ""))
        for marker, (package, modules) in LOGGER_PACKAGES.items():
            if marker in target and not any(importlib.util.find_spec(m) for m in modules):
                raise ConfigError(
                    f"logger={name} needs the {package} package, which is not installed",
                    None,
                    f"pip install {package}, or use logger=csv (the default)",
                )


MATMUL_PRECISIONS = ("highest", "high", "medium")


def check_trainer_flags(cfg: DictConfig) -> None:
    """``trainer.deterministic=true`` on a GPU (CUDA has no deterministic backward pass for
    bilinear upsampling, adaptive average pooling, ``grid_sample`` or the deformable
    convolution's atomic adds, so the first backward pass raises), and an unknown
    ``trainer.float32_matmul_precision``."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "cpu"))
    if accelerator in GPU_ACCELERATORS and trainer.get("deterministic") is True:
        raise ConfigError(
            "trainer.deterministic=true on a GPU raises at the first backward pass (bilinear "
            "upsampling, adaptive average pooling, grid_sample and DCN have no deterministic "
            "CUDA backward)",
            None,
            "use trainer.deterministic=warn trainer.benchmark=false (deterministic kernels "
            "where CUDA has them, a warning where it has not)",
        )
    precision = trainer.get("float32_matmul_precision")
    if precision is not None and precision not in MATMUL_PRECISIONS:
        raise ConfigError(
            f"trainer.float32_matmul_precision={precision} is not a precision torch knows",
            None,
            f"use one of {', '.join(MATMUL_PRECISIONS)} (high: TF32 on GPUs), or null",
        )


def check_accelerator(cfg: DictConfig) -> None:
    """``trainer=gpu`` (or ``ddp``) on a machine without a usable CUDA GPU, or more GPUs
    than it has."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "cpu"))
    if accelerator not in GPU_ACCELERATORS:
        return
    import torch  # only for a GPU run: a second of start-up the CPU runs do not pay

    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator} but this machine has no usable CUDA GPU "
            "(torch.cuda.is_available() is False)",
            None,
            "use trainer=cpu (the default) here, or run on a machine with a GPU",
        )
    devices = trainer.get("devices", 1)
    if isinstance(devices, int) and devices > available:
        raise ConfigError(
            f"trainer.devices={devices} but this machine has {available} GPU(s)",
            None,
            f"set trainer.devices={available} (or -1: all of them)",
        )
