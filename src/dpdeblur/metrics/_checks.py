"""Shared input checks for the metric functions, and the dtype they accumulate in."""

from __future__ import annotations

import torch
from torch import Tensor

from dpdeblur.errors import DpdeblurError


class MetricError(DpdeblurError, ValueError):
    """A metric is misconfigured (unknown protocol or LPIPS mode) or given unusable images."""


def check_choice(value: object, choices: tuple[str, ...], what: str, example: str) -> str:
    """``value``'s canonical (lower-case) name among ``choices``, or a one-line error that
    lists them and shows ``example`` (the config override that sets it)."""
    name = str(value).strip().lower()
    if name not in choices:
        raise MetricError(
            f"unknown {what} {value!r}", fix=f"use one of {', '.join(choices)} (e.g. {example})"
        )
    return name


def check_pair(pred: Tensor, target: Tensor, name: str) -> None:
    """Both images are floating-point BxCxHxW tensors of the same shape."""
    if pred.ndim != 4 or target.ndim != 4:
        raise MetricError(
            f"{name} expects BxCxHxW images, got shapes {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if pred.shape != target.shape:
        raise MetricError(
            f"{name}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in "
            "shape; score at native resolution (pad and crop back, never resize)"
        )
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise MetricError(
            f"{name} expects floating-point images in [0,1], got {pred.dtype} and {target.dtype}"
        )


def accumulation_dtype(device: torch.device) -> torch.dtype:
    """float64 wherever the device has it (everything but Apple's MPS), else float32."""
    return torch.float32 if device.type == "mps" else torch.float64
