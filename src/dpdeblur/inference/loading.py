"""The model to deblur with, from any checkpoint the package reads.

- our Lightning checkpoints and ``dpdeblur-convert`` outputs name their model: ``model``
  may be left out, and when given it must agree;
- a plain state dict needs ``model`` (and the constructor arguments it was trained with);
- the authors' released DPANet ``final.pth`` is converted in memory, as
  ``dpdeblur-convert dpanet`` would.

Reading and strict loading are :mod:`dpdeblur.runs.checkpoints`'s; every failure is a one-line
:class:`~dpdeblur.errors.CheckpointError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from dpdeblur.errors import CheckpointError
from dpdeblur.runs.checkpoints import load_model, read_checkpoint


def _release_dpanet(payload: Mapping, path: Path) -> nn.Module:
    """DPANet with the authors' weights from their ``final.pth`` (already read)."""
    from dpdeblur.models import create_model
    from dpdeblur.runs.releases.dpanet import convert_dpanet_state_dict, strip_prefix

    model = create_model("dpanet")
    state = convert_dpanet_state_dict(strip_prefix(payload["G_state_dict"]), model, path)
    model.load_state_dict(state, strict=True)
    return model.eval()


def _names_its_model(checkpoint: Mapping) -> bool:
    if checkpoint.get("format") == "dpdeblur-weights":
        return True
    hyper = checkpoint.get("hyper_parameters")
    return isinstance(hyper, Mapping) and bool(hyper.get("model_config"))


def _is_plain_state_dict(checkpoint: object) -> bool:
    import torch

    return (
        isinstance(checkpoint, Mapping)
        and bool(checkpoint)
        and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
    )


def load_for_inference(
    ckpt: str | Path,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict]:
    """The model in ``ckpt`` (eval mode, CPU) and a description of where it came from.

    ``model`` and ``model_kwargs`` build the model for a plain state dict; for a checkpoint
    that names its model, ``model`` must agree with it and ``model_kwargs`` (if any)
    replace the stored constructor arguments.
    """
    path = Path(ckpt).expanduser()
    checkpoint = read_checkpoint(path)
    if isinstance(checkpoint, Mapping) and "G_state_dict" in checkpoint:
        if model not in (None, "dpanet"):
            raise CheckpointError(
                f"this is DPANet's released checkpoint, not a '{model}' one",
                path,
                "drop --model or pass --model dpanet",
            )
        net = _release_dpanet(checkpoint, path)
        return net, {"path": str(path), "kind": "release", "model_config": {"name": "dpanet"}}
    if model is None and _is_plain_state_dict(checkpoint):
        raise CheckpointError(
            "a plain state dict does not name its model",
            path,
            "pass --model NAME (and --model-arg KEY=VALUE for its constructor arguments)",
        )
    config = None
    if model is not None:
        named = isinstance(checkpoint, Mapping) and _names_its_model(checkpoint)
        if not named or model_kwargs:
            config = {"name": model, **dict(model_kwargs or {})}
    del checkpoint
    net, info = load_model(path, config)
    stored = info["model_config"].get("name")
    if model is not None and stored != model:
        raise CheckpointError(
            f"checkpoint holds model '{stored}', not '{model}'",
            path,
            f"drop --model or pass --model {stored}",
        )
    return net, info


def describe(info: Mapping[str, Any]) -> str:
    """``dpdnet(width=0.25) from run/last.ckpt (lightning)``."""
    config = dict(info["model_config"])
    name = config.pop("name", "?")
    args = ", ".join(f"{k}={v}" for k, v in config.items())
    return f"{name}({args}) from {info['path']} ({info['kind']})"
