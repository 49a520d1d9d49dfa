"""Precision rules shared by the building blocks under autocast.

Some computations lose too much in half precision: sums over hundreds of terms (the
correlation's channels and displacements), matrix products that must stay inverses of
each other (K3DN's invertible 1x1 conv), sampling positions (the deformable conv). They
switch autocast off around themselves (:func:`autocast_off`), compute in float32 (float64
inputs stay float64: :func:`wide_dtype`) and hand their result on in the dtype autocast
would have given it (:func:`autocast_dtype`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

HALF_DTYPES = (torch.float16, torch.bfloat16)


def wide_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16 and bfloat16, the dtype itself otherwise."""
    return torch.float32 if dtype in HALF_DTYPES else dtype


def autocast_dtype(x: Tensor) -> torch.dtype:
    """The dtype an autocast-eligible op (a conv, a matrix product) would give ``x``: the
    autocast dtype when autocast is on for ``x``'s device and ``x`` is not float64, else
    ``x``'s own."""
    device_type = x.device.type
    if (
        x.dtype != torch.float64
        and torch.amp.is_autocast_available(device_type)
        and torch.is_autocast_enabled(device_type)
    ):
        return torch.get_autocast_dtype(device_type)
    return x.dtype


def autocast_off(device_type: str) -> contextlib.AbstractContextManager:
    """A context with autocast off on ``device_type`` (nothing where it has no autocast)."""
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
