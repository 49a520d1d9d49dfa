"""Restormer's released dual-pixel weights: detecting the file and checking it onto
``create_model("restormer_dp")``.

The file is ``dual_pixel_defocus_deblurring.pth``, published by the Restormer authors
(github.com/swz30/Restormer) in the Google Drive folder that ``Defocus_Deblurring/README.md``
and ``Defocus_Deblurring/pretrained_models/README.md`` link (the same folder holds
``single_image_defocus_deblurring.pth``, the 3-channel single-image model, which does not
load into ``restormer_dp``). It is a ``torch.save`` of BasicSR's format: a dict whose
``params`` entry is the state dict of the bare network (no ``module.`` prefix), 495
float32 tensors, 26,132,548 parameters, with exactly ``restormer_dp``'s keys, shapes and
order; the file reads with ``torch.load(..., weights_only=True)``. BasicSR may also store a
``params_ema`` entry; the authors' test script loads ``params``, and so do we (a file with
only ``params_ema`` loads that).

The network was trained and tested on DPDD's 16-bit PNGs scaled by 1/65535, RGB, as the
6-channel input ``[left view, right view]`` (left first): what ``model(left, right)``
stacks. The licence of the weights is not recorded here; see the authors' repository.

A file with a missing, an extra or a mis-shaped entry is refused with one line naming the
keys (:func:`dpdeblur.runs.state_dict.check_fits`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from dpdeblur.errors import CheckpointError
from dpdeblur.runs.state_dict import check_fits

NAME = "restormer-dp-pth"
MODEL = "restormer_dp"
ENTRIES = ("params", "params_ema")  # BasicSR's entries, in the order they are preferred
_MARKER = "patch_embed.proj.weight"  # the first tensor of every Restormer
SINGLE_IMAGE_INPUT_CHANNELS = 3  # single_image_defocus_deblurring.pth


def _weights(payload: object) -> tuple[str, Mapping] | None:
    """The preferred BasicSR entry of a read file and its state dict, if it has one."""
    if not isinstance(payload, Mapping):
        return None
    for entry in ENTRIES:
        state = payload.get(entry)
        if isinstance(state, Mapping) and state:
            return entry, state
    return None


def detect(payload: object) -> bool:
    """Whether a checkpoint read from disk is laid out as a Restormer release (BasicSR's
    ``{"params": state_dict}`` of a network whose first tensor is Restormer's)."""
    found = _weights(payload)
    return found is not None and isinstance(found[1].get(_MARKER), Tensor)


def convert(payload: object, model: nn.Module, path: str | Path | None = None) -> dict[str, Tensor]:
    """The release's tensors under ``model``'s keys (the same names, floats as float32),
    checked to cover the model exactly; raises :class:`CheckpointError` naming a missing,
    extra or mis-shaped entry."""
    found = _weights(payload)
    if found is None:
        raise CheckpointError(
            f"no weights found (expected a dict with one of {', '.join(ENTRIES)})",
            path,
            "is this Restormer's dual_pixel_defocus_deblurring.pth?",
        )
    entry, state = found
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(
            f"'{entry}' holds {len(bad)} entries that are not named tensors (first: {bad[0]!r})",
            path,
            "is this Restormer's dual_pixel_defocus_deblurring.pth?",
        )
    converted = {
        key: value.to(torch.float32) if value.is_floating_point() else value
        for key, value in state.items()
    }
    first = converted.get(_MARKER)
    single_image = (
        first is not None and first.dim() == 4 and first.shape[1] == SINGLE_IMAGE_INPUT_CHANNELS
    )
    check_fits(
        model,
        converted,
        path,
        f"'{entry}' does not map completely onto Restormer (dual-pixel)",
        "this is the single-image model (3-channel input); use dual_pixel_defocus_deblurring.pth"
        if single_image
        else "is this Restormer's dual_pixel_defocus_deblurring.pth, and not another model's?",
    )
    return converted
