"""The public K3DN code's checkpoint (``best.pt`` of its sharp-region fine-tune): detecting
it and checking it onto ``create_model("k3dn")``.

The file is a bare state dict (no ``model`` / ``state_dict`` wrapper, no ``module.``
prefix) of 288 entries: 236 parameters and 52 buffers (the running statistics and
``num_batches_tracked`` of the disparity branch's 12 BatchNorms, and each deblur block's
permutation ``p`` and signs ``sign_s``). ``k3dn``'s state dict has exactly these keys, in
the same order and with the same shapes (docs/k3dn.md lists them), so every entry maps onto
the key of the same name with its shape unchanged; floating tensors are cast to float32.
A file with a missing, an extra or a mis-shaped entry is refused, naming the key.

Detection: a bare state dict is taken as this release when it covers the release's keys
(all but at most a few, to name what is wrong) with their shapes. A plain state dict of a
network with exactly the release's layout (``k3dn`` itself, or ``k3dn_concat``, whose
weights have the same shapes) therefore reads as the release and loads into ``k3dn``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path

import torch
from torch import Tensor, nn

from dpdeblur.errors import CheckpointError
from dpdeblur.models import create_model
from dpdeblur.runs.state_dict import check_fits

NAME = "k3dn-release-pt"
MODEL = "k3dn"
RELEASE_ENTRIES = 288
_TOLERATED = 4  # entries that may be off for a file still to be recognised (then refused)


@cache
def release_layout() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Key -> (shape, dtype) of the release, in file order (``k3dn``'s own state dict)."""
    state = create_model(MODEL).state_dict()
    return {key: (tuple(value.shape), value.dtype) for key, value in state.items()}


def _bare_state_dict(payload: object) -> bool:
    return (
        isinstance(payload, Mapping)
        and bool(payload)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in payload.items())
    )


def detect(payload: object) -> bool:
    """Whether a checkpoint read from disk is laid out as the release's ``best.pt``."""
    if not _bare_state_dict(payload) or "deblur.0.conv1.weight" not in payload:
        return False
    layout = release_layout()
    missing = sum(key not in payload for key in layout)
    extra = sum(key not in layout for key in payload)
    reshaped = sum(
        tuple(value.shape) != layout[key][0] for key, value in payload.items() if key in layout
    )
    return missing <= _TOLERATED and extra <= _TOLERATED and reshaped <= _TOLERATED


def convert(payload: object, model: nn.Module, path: str | Path | None = None) -> dict[str, Tensor]:
    """The release's tensors under ``model``'s keys (the same names), checked to cover the
    model exactly; raises :class:`CheckpointError` naming a missing, extra or mis-shaped
    entry."""
    if not _bare_state_dict(payload):
        raise CheckpointError(
            "not a bare state dict of named tensors", path, "is this K3DN's released best.pt?"
        )
    layout = release_layout()
    converted: dict[str, Tensor] = {}
    for key, value in payload.items():
        if key in layout and value.is_floating_point():
            value = value.to(torch.float32)
        converted[key] = value
    check_fits(
        model,
        converted,
        path,
        "checkpoint does not map completely onto K3DN",
        "is this the K3DN release's best.pt (288 entries), and not another model's?",
    )
    return converted
