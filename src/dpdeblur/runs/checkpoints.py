"""Rebuild a model from any checkpoint this package can meet.

Three kinds are read:
- our Lightning checkpoints (``*.ckpt``): the model's config is stored in
  ``hyper_parameters["model_config"]`` and its weights under ``state_dict["model.*"]``;
- converted release weights from ``dpdeblur-convert`` (``format: dpdeblur-weights``), which
  name the registry model and its constructor arguments;
- a plain state dict, when the caller says which model it belongs to.

Every failure is a one-line :class:`~dpdeblur.errors.CheckpointError`: missing file,
unreadable file, a checkpoint that names no model, weights of another model (the missing
and unexpected keys are named).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dpdeblur.errors import CheckpointError, ConfigError


def read_checkpoint(path: str | Path) -> dict:
    """``torch.load`` a checkpoint on the CPU with one-line errors."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path, "check the path (ckpt=...)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        pass
    try:
        # Lightning checkpoints may hold objects the restricted loader refuses.
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise CheckpointError(
            f"not a readable checkpoint ({type(err).__name__})",
            path,
            "the file is corrupt or not a torch checkpoint",
        ) from None


def model_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Build a model from a stored config: ``{_target_, name, **kwargs}`` or ``{name, **kwargs}``."""
    from dpdeblur.models import create_model

    config = dict(config)
    config.pop("_target_", None)
    name = config.pop("name", None)
    if name is None:
        raise ConfigError("model config has no 'name'", None, "pass model=<registry name>")
    try:
        return create_model(name, **config)
    except KeyError as err:
        raise ConfigError(str(err.args[0]), None, "pick a model name from the list") from None


def _load_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, model_name: str
) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        parts = []
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if keys:
                parts.append(
                    f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                )
        raise CheckpointError(
            f"weights do not fit model '{model_name}': " + "; ".join(parts),
            path,
            "is this a checkpoint of another model or width? pass the matching model=...",
        )
    model.load_state_dict(state, strict=True)


def load_model(
    path: str | Path, model_config: Mapping[str, Any] | None = None
) -> tuple[nn.Module, dict]:
    """The model stored in ``path`` (eval mode) and a dict describing where it came from."""
    path = Path(path).expanduser()
    checkpoint = read_checkpoint(path)
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            "checkpoint is not a dict of weights", path, "pass a .ckpt or a dpdeblur-convert output"
        )
    if checkpoint.get("format") == "dpdeblur-weights":
        config = {"name": checkpoint["model"], **dict(checkpoint.get("model_kwargs") or {})}
        state = checkpoint["state_dict"]
        kind = "converted"
    elif "state_dict" in checkpoint and "hyper_parameters" in checkpoint:
        stored = checkpoint["hyper_parameters"].get("model_config")
        config = dict(model_config or stored or {})
        if not config:
            raise CheckpointError(
                "Lightning checkpoint does not name its model", path, "pass model=<registry name>"
            )
        state = {
            k[len("model.") :]: v
            for k, v in checkpoint["state_dict"].items()
            if k.startswith("model.")
        }
        kind = "lightning"
    elif all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        if not model_config:
            raise CheckpointError(
                "plain state dict names no model", path, "pass model=<registry name>"
            )
        config, state, kind = dict(model_config), checkpoint, "state_dict"
    else:
        raise CheckpointError(
            "unrecognised checkpoint layout (keys: " + ", ".join(list(checkpoint)[:5]) + ")",
            path,
            "for the authors' final.pth run dpdeblur-convert first",
        )
    model = model_from_config(config)
    _load_strict(model, state, path, str(config.get("name")))
    model.eval()
    info = {
        "path": str(path),
        "kind": kind,
        "model_config": {k: v for k, v in config.items() if k != "_target_"},
    }
    if kind == "lightning":
        info.update(epoch=checkpoint.get("epoch"), global_step=checkpoint.get("global_step"))
    return model, info
