"""Rebuild a model from any checkpoint this package can meet, and write converted weights.

:func:`load_model` reads every kind:

- our Lightning checkpoints (``*.ckpt``): the model's config is stored in
  ``hyper_parameters["model_config"]`` and its weights under ``state_dict["model.*"]``;
- ``dpdeblur-weights`` files (written by :func:`write_weights`, e.g. ``dpdeblur-convert``),
  which name the registry model and its constructor arguments::

      {"format": "dpdeblur-weights", "version": 1, "model": "dpanet", "model_kwargs": {},
       "state_dict": {...}, "source": "final.pth"}

- the authors' released files (DPANet's ``final.pth``), recognised by their layout and
  converted in memory by their format module in :mod:`dpdeblur.runs.releases`;
- a plain state dict, when the caller names its model.

Weights are checked against the model by :func:`dpdeblur.runs.state_dict.load_strict`.
Every failure is a one-line :class:`~dpdeblur.errors.CheckpointError`: missing file,
unreadable file, a checkpoint that names no model, weights of another model (the missing,
unexpected and wrong-shape keys are named).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dpdeblur.errors import CheckpointError, ConfigError
from dpdeblur.models import create_model
from dpdeblur.runs.releases import FORMATS, detect_release, release_for_model
from dpdeblur.runs.releases.dpdnet_keras import is_hdf5, read_keras_hdf5
from dpdeblur.runs.state_dict import load_strict, model_name

WEIGHTS_FORMAT = "dpdeblur-weights"
WEIGHTS_VERSION = 1
AUTO_MODEL = "auto"  # --model auto / model=auto: the model the checkpoint names or is


def read_checkpoint(path: str | Path, mmap: bool = False) -> Any:
    """``torch.load`` a checkpoint on the CPU with one-line errors (an HDF5 file: Keras's
    weights, read by :func:`~dpdeblur.runs.releases.dpdnet_keras.read_keras_hdf5`).

    The restricted loader (``weights_only``) first, then the full one (Lightning
    checkpoints may hold objects the restricted loader refuses). ``mmap``: map the tensors
    instead of reading them (a large file costs little when only its metadata is wanted);
    a file torch cannot map (the legacy format) is read whole.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError("checkpoint not found", path, "check the path (ckpt=...)")
    if is_hdf5(path):  # a Keras file (DPDNet's release): h5py reads it, torch cannot
        return read_keras_hdf5(path)
    attempts = [{"weights_only": True}, {"weights_only": False}]
    if mmap:
        attempts = [{**options, "mmap": True} for options in attempts] + attempts
    for options in attempts[:-1]:
        try:
            return torch.load(path, map_location="cpu", **options)
        except Exception:
            pass
    try:
        return torch.load(path, map_location="cpu", **attempts[-1])
    except Exception as err:
        raise CheckpointError(
            f"not a readable checkpoint ({type(err).__name__})",
            path,
            "the file is corrupt or not a torch checkpoint",
        ) from None


def model_from_config(config: Mapping[str, Any]) -> nn.Module:
    """Build a model from a stored config: ``{name, **constructor arguments}``."""
    config = dict(config)
    config.pop("_target_", None)
    name = config.pop("name", None)
    if name is None:
        raise ConfigError("model config has no 'name'", None, "pass model=<registry name>")
    try:
        return create_model(name, **config)
    except KeyError as err:
        raise ConfigError(str(err.args[0]), None, "pick a model name from the list") from None


def write_weights(
    out: str | Path, model: nn.Module, model_kwargs: Mapping[str, Any], source: str
) -> Path:
    """Save ``model``'s weights as a ``dpdeblur-weights`` file that :func:`load_model` reads
    (plain tensors and names: loadable with ``weights_only=True``)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": WEIGHTS_FORMAT,
            "version": WEIGHTS_VERSION,
            "model": model_name(model),
            "model_kwargs": dict(model_kwargs),
            "state_dict": model.state_dict(),
            "source": source,
        },
        out,
    )
    return out


def convert_release(model: str, src: str | Path, out: str | Path) -> Path:
    """``dpdeblur-convert``: the authors' released file for ``model`` as a
    ``dpdeblur-weights`` file at ``out``, written only for a complete conversion."""
    fmt = release_for_model(model)
    net = create_model(fmt.MODEL)
    load_strict(net, fmt.convert(read_checkpoint(src), net, src), src)
    return write_weights(out, net, {}, Path(src).name)


def _lightning_weights(checkpoint: Mapping) -> dict[str, torch.Tensor]:
    prefix = "model."
    return {
        k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)
    }


def _is_state_dict(payload: Mapping) -> bool:
    return bool(payload) and all(isinstance(v, torch.Tensor) for v in payload.values())


def load_model(
    path_or_payload: str | Path | Mapping,
    model: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The model in a checkpoint (eval mode, CPU) and a dict describing where it came from.

    Args:
        path_or_payload: a checkpoint file, or what ``torch.load`` read from one.
        model: registry name. Needed for a plain state dict; for a checkpoint that names
            its model it must agree with it. ``None`` or ``"auto"``: the checkpoint's own
            (released files are recognised by their layout and converted in memory).
        model_kwargs: constructor arguments. For a plain state dict, those it was trained
            with; for a checkpoint that names its model, they replace the stored ones.

    Returns:
        ``(model, info)`` with ``info = {"path", "kind", "model_config", ...}``; ``kind`` is
        ``lightning`` (with ``epoch`` and ``global_step``), ``converted``, ``release`` (with
        ``release_format``) or ``state_dict``.
    """
    if model == AUTO_MODEL:
        model = None
    if isinstance(path_or_payload, Mapping):
        path, payload = None, path_or_payload
    else:
        path = Path(path_or_payload).expanduser()
        payload = read_checkpoint(path)
    kwargs = dict(model_kwargs or {})
    if not isinstance(payload, Mapping):
        raise CheckpointError(
            "checkpoint is not a dict of weights", path, "pass a .ckpt or a dpdeblur-convert output"
        )
    info: dict[str, Any] = {"path": None if path is None else str(path)}
    release = detect_release(payload)
    if payload.get("format") == WEIGHTS_FORMAT:
        stored = {"name": payload["model"], **dict(payload.get("model_kwargs") or {})}
        state = payload["state_dict"]
        info["kind"] = "converted"
    elif "state_dict" in payload and "hyper_parameters" in payload:
        stored = dict(payload["hyper_parameters"].get("model_config") or {})
        if not stored and model is None:
            raise CheckpointError(
                "Lightning checkpoint does not name its model", path, "pass model=<registry name>"
            )
        stored = stored or {"name": model}
        state = _lightning_weights(payload)
        info.update(
            kind="lightning", epoch=payload.get("epoch"), global_step=payload.get("global_step")
        )
    elif release is not None:
        if model not in (None, release.MODEL):
            raise CheckpointError(
                f"this is {release.MODEL}'s released checkpoint ({release.NAME}), "
                f"not a '{model}' one",
                path,
                f"drop --model or pass --model {release.MODEL}",
            )
        stored, state = {"name": release.MODEL}, None
        info.update(kind="release", release_format=release.NAME)
    elif _is_state_dict(payload):
        if model is None:
            raise CheckpointError(
                "a plain state dict does not name its model",
                path,
                "pass --model NAME (and --model-arg KEY=VALUE for its constructor arguments)",
            )
        stored, state = {"name": model}, payload
        info["kind"] = "state_dict"
    else:
        formats = ", ".join(fmt.NAME for fmt in FORMATS)
        raise CheckpointError(
            "unrecognised checkpoint layout (keys: " + ", ".join(map(str, list(payload)[:5])) + ")",
            path,
            "pass a Lightning .ckpt, a dpdeblur-convert output, a state dict with its model, "
            f"or a released file ({formats})",
        )
    stored.pop("_target_", None)
    name = stored.get("name")
    if model is not None and name != model:
        raise CheckpointError(
            f"checkpoint holds model '{name}', not '{model}'",
            path,
            f"drop --model or pass --model {name}",
        )
    config = {"name": name, **kwargs} if kwargs else stored
    net = model_from_config(config)
    if state is None:  # a released file: renamed onto the model by its format
        state = release.convert(payload, net, path)
    load_strict(net, state, path)
    info["model_config"] = config
    return net.eval(), info


def describe(info: Mapping[str, Any]) -> str:
    """``dpdnet(width=0.25) from run/last.ckpt (lightning)``: one line on a loaded model."""
    config = dict(info["model_config"])
    name = config.pop("name", "?")
    args = ", ".join(f"{k}={v}" for k, v in config.items())
    source = info.get("path") or "a checkpoint in memory"
    return f"{name}({args}) from {source} ({info['kind']})"
