"""Full-resolution inference (a DPDD image, 1120x1680): seconds and peak memory.

On the CPU the measurement runs in a fresh process
(:func:`~dpdeblur.research.benchmarks.process.run_in_fresh_process`), so its peak resident
set (``ru_maxrss``, the process's high-water mark) belongs to this model alone: it includes
Python, torch and the weights, which the result also gives separately as the resident set
just before the forward pass. On a GPU it runs in this process, and the peak is
``torch.cuda.max_memory_allocated`` over the forward pass (weights included).

The timed pass is the first at full size (a forward at 64x64 runs before it); with
``repeat`` N the fastest of N. ``dpdeblur-bench all`` measures the main models this way,
``dpdeblur-bench fullres`` one model (any width, or trained or converted weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dpdeblur.research.benchmarks.macs import count_params
from dpdeblur.research.benchmarks.process import peak_rss_mib, rss_mib, run_in_fresh_process
from dpdeblur.research.benchmarks.selection import build_model
from dpdeblur.research.benchmarks.timing import forward_seconds
from dpdeblur.runs.checkpoints import load_model

DPDD_FULL_SIZE = (1120, 1680)


def measure_here(
    name: str,
    size: tuple[int, int],
    device: torch.device,
    repeat: int = 1,
    autocast: torch.dtype | None = None,
    width: float | None = None,
    weights: Path | None = None,
) -> dict[str, Any]:
    """Build ``name`` (at ``width``; or load the model in ``weights``, any checkpoint that
    names its model) and time its forward pass at ``size`` in this process."""
    model = build_model(name, width) if weights is None else load_model(weights)[0]
    model = model.to(device)
    result: dict[str, Any] = {
        "size": list(size),
        "repeat": repeat,
        "threads": torch.get_num_threads(),
        "params": count_params(model),
    }
    if autocast is not None:
        result["autocast"] = str(autocast).replace("torch.", "")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        result["seconds"] = forward_seconds(model, size, device, repeat, autocast=autocast)
        result["peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        result["peak_kind"] = "torch.cuda.max_memory_allocated (weights included)"
    else:
        result["rss_before_forward_mib"] = round(rss_mib(), 1)
        result["seconds"] = forward_seconds(model, size, device, repeat, autocast=autocast)
        result["peak_mib"] = round(peak_rss_mib(), 1)
        result["peak_kind"] = "peak RSS of the process (Python, torch and weights included)"
    return result


def _measure_with_threads(
    name: str,
    size: tuple[int, int],
    threads: int | None,
    repeat: int,
    width: float | None,
    weights: Path | None,
) -> dict[str, Any]:
    """:func:`measure_here` on the CPU with ``threads`` torch threads (the fresh process's
    entry point)."""
    if threads:
        torch.set_num_threads(threads)
    return measure_here(name, size, torch.device("cpu"), repeat, width=width, weights=weights)


def measure_in_fresh_process(
    name: str,
    size: tuple[int, int],
    threads: int | None = None,
    repeat: int = 1,
    width: float | None = None,
    weights: Path | None = None,
) -> dict[str, Any]:
    """CPU measurement of ``name`` in a fresh process (see the module docstring)."""
    return run_in_fresh_process(
        _measure_with_threads,
        name,
        tuple(size),
        threads,
        repeat,
        width,
        weights,
        what=f"full-resolution run of {name}",
    )


def measure_full_resolution(
    name: str,
    size: tuple[int, int],
    device: torch.device,
    repeat: int = 1,
    threads: int | None = None,
    width: float | None = None,
    weights: Path | None = None,
) -> dict[str, Any]:
    """Seconds and peak memory of one forward pass at ``size``: on the CPU in a fresh
    process; on a GPU here, also under bf16 autocast (an error recorded, not raised)."""
    if device.type != "cuda":
        return measure_in_fresh_process(name, size, threads, repeat, width, weights)
    result = measure_here(name, size, device, repeat, width=width, weights=weights)
    try:
        result["autocast_bf16"] = measure_here(
            name, size, device, repeat, torch.bfloat16, width, weights
        )
    except Exception as err:  # a failing variant is a result, not a crash
        result["autocast_bf16"] = {"error": f"{type(err).__name__}: {err}"[:300]}
    return result
