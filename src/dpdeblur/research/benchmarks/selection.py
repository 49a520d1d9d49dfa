"""Which models and device a benchmark runs on, with one-line errors for bad choices."""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from dpdeblur.errors import DpdeblurError
from dpdeblur.models import create_model, is_model, list_models

WIDTH_HINT = "--width is DPANet's channel multiplier (e.g. 0.25) and K3DN's base width (e.g. 16)"


def resolve_model_names(patterns: list[str], known: list[str] | None = None) -> list[str]:
    """Registry names matching ``patterns`` (names, shell patterns or ``all``), in order,
    each once."""
    known = list_models() if known is None else known
    names: list[str] = []
    for pattern in patterns:
        matched = known if pattern == "all" else fnmatch.filter(known, pattern)
        if not matched:
            raise DpdeblurError(
                f"no registered model matches {pattern!r}",
                fix=f"choose from: {', '.join(known)}",
            )
        names += [n for n in matched if n not in names]
    return names


def build_model(name: str, width: float | None = None, **kwargs) -> nn.Module:
    """``create_model(name, **kwargs)`` (plus ``width`` when given) with seed 0."""
    if not is_model(name):
        raise DpdeblurError(f"unknown model {name!r}", fix="see dpdeblur-bench cost --model all")
    if width is not None:
        kwargs["width"] = width
    torch.manual_seed(0)
    try:
        return create_model(name, **kwargs)
    except (TypeError, ValueError) as err:
        raise DpdeblurError(f"cannot build {name} with {kwargs}: {err}", fix=WIDTH_HINT) from None


def resolve_device(name: str) -> str:
    """``cpu``, ``cuda[:N]``, or for ``auto`` cuda when a GPU is visible, else cpu."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DpdeblurError(
            f"--device {name}: no CUDA device is visible", fix="use --device cpu (or auto)"
        )
    if name != "cpu" and not name.startswith("cuda"):
        raise DpdeblurError(f"--device {name} is not supported", fix="use cpu, cuda or auto")
    return name
