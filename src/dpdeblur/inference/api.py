"""``dpdeblur.deblur(model, left, right)``: deblur arrays in a notebook.

    import dpdeblur
    from dpdeblur.data.io import read_image
    left, _ = read_image("scene_L.png"); right, _ = read_image("scene_R.png")
    sharp = dpdeblur.deblur("run/last.ckpt", left, right, tile=512)   # HxWx3 float32

Accepted views (both of one kind and shape), and what comes back:

- numpy HxWx3, HxWx1 or HxW: float in [0, 1] -> float32; uint16 / uint8 (scaled by their
  full range) -> the same integer type, rounded;
- torch 3xHxW or Bx3xHxW (or 1xHxW / Bx1xHxW) floats in [0, 1] -> a float tensor of the
  input's shape and dtype on the input's device.

Float views outside [0, 1] (beyond :data:`RANGE_TOLERANCE`: values in 0..255 or 0..65535,
say) and other integer types are refused with a ``ValueError`` that says how to convert
them; they would otherwise come back as a clipped, white image.

The result is clipped to [0, 1]. Pairs are run as they lie; ``rotate="pixel"`` runs a
portrait PIXEL capture in landscape and turns the result back (PIXEL's sensor rows run down
its portrait images). One-channel views give one channel (see
:mod:`dpdeblur.inference.views`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dpdeblur.data.io import quantize, to_float, to_tensor
from dpdeblur.inference.engine import Deblurrer, TileOptions, resolve_device
from dpdeblur.inference.views import as_three_channels, to_model_views
from dpdeblur.models.ensemble import FlipEnsemble
from dpdeblur.models.release_protocol import InputBits, ReleaseProtocol
from dpdeblur.runs.checkpoints import load_model

# How far float views may stray outside [0, 1] (a model's output fed back, rounding).
RANGE_TOLERANCE = 0.01
ROTATIONS = (None, "pixel")
_SCALE_FIX = (
    "divide 8-bit values by 255 and 16-bit values by 65535, or pass the array as uint8 or "
    "uint16 (scaled by its range)"
)


def check_range(name: str, low: float, high: float) -> None:
    """Refuse float pixels outside [0, 1] (beyond :data:`RANGE_TOLERANCE`) or not finite."""
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} holds NaN or infinite values: replace them before deblurring")
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ValueError(
            f"{name} holds float values in [{low:g}, {high:g}] but float views must lie in "
            f"[0, 1]: {_SCALE_FIX}"
        )


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def _deblur_hwc(
    runner: Deblurrer,
    left: np.ndarray,
    right: np.ndarray,
    options: TileOptions,
    pixel_portrait: bool,
    progress: bool,
) -> np.ndarray:
    """Float HxWxC numpy views -> float32 HxWxC result (same C)."""
    left, channels = as_three_channels(left)
    right, _ = as_three_channels(right)
    left, right, view = to_model_views(left, right, pixel_portrait, channels)
    restored, _ = runner(to_tensor(left), to_tensor(right), options, progress)
    image = restored.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return view.restore(image)


def check_views(left: Any, right: Any) -> None:
    """Refuse a pair :func:`deblur` cannot take, with a ``ValueError``/``TypeError`` that
    says what to pass instead: mixed kinds, shapes or types; integer types other than
    uint8/uint16 (numpy) or any integer tensor; float values outside [0, 1]."""
    if isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor):
        if left.shape != right.shape:
            raise ValueError(
                f"left and right differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
            )
        if not left.is_floating_point() or not right.is_floating_point():
            raise ValueError(
                f"expected float tensors in [0, 1], got {left.dtype}: divide 8-bit values by "
                "255 and 16-bit values by 65535 (x.float() / 255)"
            )
        if left.dim() not in (3, 4):
            raise ValueError(f"expected 3xHxW or Bx3xHxW tensors, got shape {tuple(left.shape)}")
        for name, view in (("left", left), ("right", right)):
            low, high = torch.aminmax(view.detach().float())
            check_range(name, float(low), float(high))
        return
    if isinstance(left, np.ndarray) and isinstance(right, np.ndarray):
        if left.shape != right.shape:
            raise ValueError(f"left and right differ in shape: {left.shape} vs {right.shape}")
        if left.dtype != right.dtype:
            raise ValueError(f"left and right differ in dtype: {left.dtype} vs {right.dtype}")
        if left.dtype.kind == "f":
            for name, view in (("left", left), ("right", right)):
                check_range(name, float(view.min()), float(view.max()))
        elif left.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"expected float or unsigned integer pixels (uint8, uint16), got {left.dtype}: "
                "convert with .astype(np.uint16) if the values are 16-bit codes, "
                ".astype(np.uint8) if 8-bit, or pass floats in [0, 1]"
            )
        return
    raise TypeError(
        f"left and right must both be numpy arrays or both torch tensors, got "
        f"{type(left).__name__} and {type(right).__name__}"
    )


def deblur(
    model: nn.Module | str | Path,
    left: Any,
    right: Any,
    *,
    tile: int | None = None,
    overlap: int | None = None,
    max_memory: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    rotate: str | None = None,
    progress: bool = False,
    flip_ensemble: bool = False,
    release_protocol: str | None = None,
    input_bits: int = 16,
) -> Any:
    """Deblur a DP pair with ``model`` at full resolution, tiled when needed.

    Args:
        model: an ``nn.Module`` called as ``model(left, right)``, or a checkpoint path
            (Lightning ``.ckpt``, ``dpdeblur-convert`` output, the authors' ``final.pth``).
        left, right: the two DP views (see the module docstring for the kinds accepted).
        tile: square tile side in pixels; ``None`` tiles only when the image would not fit
            ``max_memory``; ``0`` never tiles.
        overlap: pixels shared by neighbouring tiles; ``None`` picks one (see
            :class:`~dpdeblur.inference.engine.TileOptions`).
        max_memory: budget in bytes for automatic tiling.
        device: where to run; ``None`` keeps the module's device (CUDA when loading a path
            and one is present).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 on GPU only).
        rotate: ``None`` runs the pair as it lies (the DP disparity must run along its
            rows, as in DPDD's images and any crop of them, portrait or not); ``"pixel"``
            says the pair is a PIXEL capture: if portrait, it runs in landscape and the
            result is turned back.
        progress: show a progress bar over tiles.
        flip_ensemble: average the model over the four DP-valid flips of the pair
            (:class:`~dpdeblur.models.ensemble.FlipEnsemble`; four times the compute).
        release_protocol: run the model as its authors' evaluation did
            (:class:`~dpdeblur.models.release_protocol.ReleaseProtocol`): ``"k3dn"``, the
            pair resized to 1152x1792 and the output back (whole images only, so ``tile``
            must be None or 0); ``"dpanet"``, the views read as 8-bit.
        input_bits: 8 feeds the model the views as an 8-bit read of 16-bit data gives them,
            ``floor(v16 / 256) / 255`` (DPANet's release was trained on these); 16 (the
            default) feeds them as they are.

    Returns:
        The restored image, of the same kind as ``left``.

    Raises:
        ValueError: float views outside [0, 1], integer types other than uint8/uint16,
            views that differ in shape or type, or an unknown ``rotate``.
    """
    if rotate not in ROTATIONS:
        raise ValueError(f"unknown rotate={rotate!r}: pass rotate=None or rotate='pixel'")
    pixel_portrait = rotate == "pixel"
    check_views(left, right)  # before loading a checkpoint: a mistake costs nothing
    if isinstance(model, str | Path):
        model, _ = load_model(model)
        target = resolve_device(device)
    else:
        target = _model_device(model) if device is None else resolve_device(device)
    if input_bits != 16:
        model = InputBits(model, input_bits)
    if release_protocol is not None:
        model = ReleaseProtocol(model, release_protocol)
        if model.resizes:
            if tile:
                raise ValueError("a release protocol resizes whole images: pass tile=None or 0")
            tile = 0
    if flip_ensemble:
        model = FlipEnsemble(model)
    runner = Deblurrer(model, target, precision)
    options = TileOptions(tile, overlap, max_memory)
    if isinstance(left, torch.Tensor):
        return _deblur_torch(runner, left, right, options, pixel_portrait, progress)
    out = _deblur_hwc(runner, to_float(left), to_float(right), options, pixel_portrait, progress)
    if left.ndim == 2:
        out = out[:, :, 0]
    if left.dtype in (np.uint8, np.uint16):
        return quantize(out, 8 if left.dtype == np.uint8 else 16)
    return out.astype(np.float32)


def _deblur_torch(
    runner: Deblurrer,
    left: torch.Tensor,
    right: torch.Tensor,
    options: TileOptions,
    pixel_portrait: bool,
    progress: bool,
) -> torch.Tensor:
    batched = left.dim() == 4
    lefts = left if batched else left[None]
    rights = right if batched else right[None]
    outputs = []
    for one_left, one_right in zip(lefts, rights, strict=True):
        hwc = [x.detach().float().cpu().permute(1, 2, 0).numpy() for x in (one_left, one_right)]
        out = _deblur_hwc(runner, hwc[0], hwc[1], options, pixel_portrait, progress)
        outputs.append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1))
    result = torch.stack(outputs) if batched else outputs[0]
    return result.to(device=left.device, dtype=left.dtype)
