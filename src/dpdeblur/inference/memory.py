"""Memory budget and the tile size that fits it.

A model's activation memory grows with the number of pixels it sees. :func:`bytes_per_pixel`
measures it once per model, device and precision on a small probe image (peak bytes of
the tensors allocated during one forward pass, divided by the probe's pixels) and
:func:`choose_tile` picks the largest tile whose estimate, with a safety factor, stays
within the budget: by default half of the memory the system reports available (CPU) or 80%
of the GPU's free memory.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import weakref
from collections.abc import Callable

import torch
from torch import nn

from dpdeblur.hardware import cpu_peak_bytes, meminfo_bytes
from dpdeblur.inference.margins import TilingSpec, round_down, round_up

PROBE_SIDE = 128  # pixels; rounded up to the model's multiple
SAFETY = 1.3  # estimate x SAFETY must fit the budget
CPU_SHARE = 0.5  # of the available RAM
GPU_SHARE = 0.8  # of the free GPU memory
GIB = 2**30

_measured: weakref.WeakKeyDictionary[nn.Module, dict[tuple[str, str], float]] = (
    weakref.WeakKeyDictionary()
)


def available_bytes(device: torch.device) -> int:
    """Memory free for tensors now: GPU free memory, or the system's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    available = meminfo_bytes("MemAvailable")
    if available is not None:
        return available
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * GIB  # unknown platform: a laptop-sized guess


def default_budget(device: torch.device) -> int:
    share = GPU_SHARE if device.type == "cuda" else CPU_SHARE
    return int(available_bytes(device) * share)


def _peak_during(run, device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    with _native_stderr_silenced():
        return cpu_peak_bytes(run)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide what the profiler's C++ side prints on file descriptor 2 (start/stop notices)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def bytes_per_pixel(
    model: nn.Module,
    spec: TilingSpec,
    device: torch.device,
    precision: str,
    forward: Callable[[torch.Tensor, torch.Tensor], object],
) -> float:
    """Peak activation bytes per input pixel of ``forward(left, right)``, cached per model,
    device and precision.

    ``forward`` runs the model as inference does (precision, no grad) on 1x3xHxW tensors
    already on ``device``.
    """
    key = (str(device), precision)
    cached = _measured.setdefault(model, {})
    if key not in cached:
        side = round_up(PROBE_SIDE, spec.multiple)
        probe = torch.rand(2, 1, 3, side, side, generator=torch.Generator().manual_seed(0))
        left, right = probe[0].to(device), probe[1].to(device)
        cached[key] = _peak_during(lambda: forward(left, right), device) / (side * side)
    return cached[key]


def padded_pixels(height: int, width: int, multiple: int) -> int:
    return round_up(height, multiple) * round_up(width, multiple)


def fits(pixels: int, per_pixel: float, budget: int) -> bool:
    return pixels * per_pixel * SAFETY <= budget


def choose_tile(per_pixel: float, budget: int, multiple: int) -> int:
    """The largest square tile (a multiple of ``multiple``) whose estimate fits ``budget``."""
    side = math.isqrt(max(0, int(budget / (SAFETY * max(per_pixel, 1e-9)))))
    return round_down(side, multiple)


def format_bytes(count: float) -> str:
    return f"{count / GIB:.2f} GiB" if count >= GIB / 10 else f"{count / 2**20:.0f} MiB"
