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

The result is clipped to [0, 1]. Portrait views are rotated to landscape for the model and
back (``rotate_portrait``); one-channel views give one channel (see
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
from dpdeblur.models.release_protocol import ReleaseProtocol
from dpdeblur.runs.checkpoints import load_model


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def _deblur_hwc(
    runner: Deblurrer,
    left: np.ndarray,
    right: np.ndarray,
    options: TileOptions,
    rotate_portrait: bool,
    progress: bool,
) -> np.ndarray:
    """Float HxWxC numpy views -> float32 HxWxC result (same C)."""
    left, channels = as_three_channels(left)
    right, _ = as_three_channels(right)
    left, right, view = to_model_views(left, right, rotate_portrait, channels)
    restored, _ = runner(to_tensor(left), to_tensor(right), options, progress)
    image = restored.clamp(0.0, 1.0).permute(1, 2, 0).numpy()
    return view.restore(image)


def _numpy_pair(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if left.shape != right.shape:
        raise ValueError(f"left and right differ in shape: {left.shape} vs {right.shape}")
    if left.dtype != right.dtype:
        raise ValueError(f"left and right differ in dtype: {left.dtype} vs {right.dtype}")
    if left.dtype.kind not in "fu":
        raise ValueError(f"expected float or unsigned integer pixels, got {left.dtype}")
    return to_float(left), to_float(right)


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
    rotate_portrait: bool = True,
    progress: bool = False,
    flip_ensemble: bool = False,
    release_protocol: str | None = None,
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
        rotate_portrait: run portrait pairs in landscape (the DP disparity is horizontal).
        progress: show a progress bar over tiles.
        flip_ensemble: average the model over the four DP-valid flips of the pair
            (:class:`~dpdeblur.models.ensemble.FlipEnsemble`; four times the compute).
        release_protocol: ``"k3dn"`` runs the model as K3DN's release evaluated it
            (:class:`~dpdeblur.models.release_protocol.ReleaseProtocol`: the pair resized to
            1152x1792 and the output back); whole images only, so ``tile`` must be None or 0.

    Returns:
        The restored image, of the same kind as ``left``.
    """
    if isinstance(model, str | Path):
        model, _ = load_model(model)
        target = resolve_device(device)
    else:
        target = _model_device(model) if device is None else resolve_device(device)
    if release_protocol is not None:
        if tile:
            raise ValueError("a release protocol resizes whole images: pass tile=None or 0")
        model, tile = ReleaseProtocol(model, release_protocol), 0
    if flip_ensemble:
        model = FlipEnsemble(model)
    runner = Deblurrer(model, target, precision)
    options = TileOptions(tile, overlap, max_memory)
    if isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor):
        return _deblur_torch(runner, left, right, options, rotate_portrait, progress)
    if isinstance(left, np.ndarray) and isinstance(right, np.ndarray):
        lf, rf = _numpy_pair(left, right)
        out = _deblur_hwc(runner, lf, rf, options, rotate_portrait, progress)
        if left.ndim == 2:
            out = out[:, :, 0]
        if left.dtype in (np.uint8, np.uint16):
            return quantize(out, 8 if left.dtype == np.uint8 else 16)
        return out.astype(np.float32)
    raise TypeError(
        f"left and right must both be numpy arrays or both torch tensors, got "
        f"{type(left).__name__} and {type(right).__name__}"
    )


def _deblur_torch(
    runner: Deblurrer,
    left: torch.Tensor,
    right: torch.Tensor,
    options: TileOptions,
    rotate_portrait: bool,
    progress: bool,
) -> torch.Tensor:
    if left.shape != right.shape:
        raise ValueError(
            f"left and right differ in shape: {tuple(left.shape)} vs {tuple(right.shape)}"
        )
    if not left.is_floating_point() or not right.is_floating_point():
        raise ValueError(f"expected float tensors in [0, 1], got {left.dtype}")
    batched = left.dim() == 4
    if not batched and left.dim() != 3:
        raise ValueError(f"expected 3xHxW or Bx3xHxW tensors, got shape {tuple(left.shape)}")
    lefts = left if batched else left[None]
    rights = right if batched else right[None]
    outputs = []
    for one_left, one_right in zip(lefts, rights, strict=True):
        hwc = [x.detach().float().cpu().permute(1, 2, 0).numpy() for x in (one_left, one_right)]
        out = _deblur_hwc(runner, hwc[0], hwc[1], options, rotate_portrait, progress)
        outputs.append(torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1))
    result = torch.stack(outputs) if batched else outputs[0]
    return result.to(device=left.device, dtype=left.dtype)
