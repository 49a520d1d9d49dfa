"""Input checks and size handling shared by the dual-pixel models.

Every model takes a pair of views ``(left, right)`` of shape Bx3xHxW and accepts any H, W:
encoder-decoder networks need H and W divisible by their total stride, so the pair is
reflect-padded up to that multiple on the bottom/right and the output is cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _values_checked_for_free(x: Tensor) -> bool:
    """Whether reading ``x``'s values costs no device sync and breaks no traced graph: a
    CPU tensor, outside ``torch.compile`` and ``torch.jit`` tracing."""
    return (
        x.device.type == "cpu" and not torch.compiler.is_compiling() and not torch.jit.is_tracing()
    )


def check_dp_inputs(left: Tensor, right: Tensor, values: bool | None = None) -> None:
    """Raise a ``ValueError`` naming the problem if ``(left, right)`` is not a valid DP pair.

    A valid pair is two floating-point tensors of the same shape Bx3xHxW with finite values.
    The shape and dtype checks read metadata only. The finiteness check reads every value,
    which on an accelerator is a host sync (it would stall every training step and break
    CUDA graphs and full-graph ``torch.compile``), so by default (``values=None``) it runs
    only where it is free: CPU tensors, outside ``torch.compile`` and ``torch.jit``
    tracing. ``values=True`` forces it, ``values=False`` skips it. For GPU tensors the API
    boundary refuses NaN instead: ``dpdeblur.inference`` checks each image's views once,
    before it is deblurred (tiles and training steps are not checked again).
    """
    for name, x in (("left", left), ("right", right)):
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} view must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"{name} view must be a 4-D tensor Bx3xHxW, got shape {tuple(x.shape)}"
            )
        if x.shape[1] != 3:
            raise ValueError(
                f"{name} view must have 3 channels (RGB), got {x.shape[1]} in shape "
                f"{tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{name} view must be a floating-point tensor, got {x.dtype}")
    if left.shape != right.shape:
        raise ValueError(
            f"left and right views differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
        )
    for name, x in (("left", left), ("right", right)):
        check = _values_checked_for_free(x) if values is None else values
        if check and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} view contains non-finite values (NaN or Inf)")


def pad_to_multiple(
    x: Tensor, multiple: int, mode: str = "reflect"
) -> tuple[Tensor, tuple[int, int]]:
    """Pad the bottom/right of a BxCxHxW tensor so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original ``(H, W)`` for :func:`crop_to`. Reflect padding
    needs the pad to be smaller than the side; for tiny inputs it is applied repeatedly (each
    pass at most ``side - 1``) so any size works.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    pad_h = (-h) % multiple
    pad_w = (-w) % multiple
    if mode != "reflect":
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        return x, (h, w)
    while pad_h or pad_w:
        step_h = min(pad_h, x.shape[-2] - 1)
        step_w = min(pad_w, x.shape[-1] - 1)
        if step_h == 0 and step_w == 0:  # a side of 1 pixel cannot be reflected
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
            break
        x = F.pad(x, (0, step_w, 0, step_h), mode="reflect")
        pad_h -= step_h
        pad_w -= step_w
    return x, (h, w)


def crop_to(x: Tensor, hw: tuple[int, int]) -> Tensor:
    """Crop a padded tensor back to its top-left ``(H, W)``."""
    h, w = hw
    return x[..., :h, :w]
