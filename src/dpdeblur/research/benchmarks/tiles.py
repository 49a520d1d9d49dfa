"""Full-resolution deblurring on the CPU, whole and tiled: seconds and peak memory.

Each setting (a tile side, or 0 for the whole image; the overlap is the deblurrer's
default) runs in a fresh process of its own (:mod:`dpdeblur.research.benchmarks.process`),
so peaks do not mix: one pass of :class:`dpdeblur.inference.engine.Deblurrer` over a random
DP pair (tiling, the model's padding, blending included). Reported per setting: wall
seconds; the peak bytes held by tensors allocated during the pass
(:func:`dpdeblur.hardware.cpu_peak_bytes`: activations, per-tile copies and the blend
buffers); and the resident set size before the pass (Python, torch, the weights and the
input pair), to which the pass adds at most that peak. The pass runs once, under the
profiler (its bookkeeping costs a few percent of the time; it also keeps its event records
in memory, which is why the process's own peak RSS is not reported: it would grow with the
number of tiles for reasons of the measurement).
"""

from __future__ import annotations

import json
import time
from typing import Any

import torch

from dpdeblur.hardware import cpu_peak_bytes, describe_machine, load_average
from dpdeblur.inference.engine import Deblurrer, TileOptions
from dpdeblur.research.benchmarks.process import rss_mib, run_in_fresh_process
from dpdeblur.research.benchmarks.selection import build_model

# Idle OpenMP threads sleep instead of spinning, so the profiler's thread is not starved.
FRESH_PROCESS_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _one_minute_load() -> float | None:
    load = load_average()
    return round(load[0], 1) if load else None


def measure_tile_setting(
    model: str, width: float | None, size: tuple[int, int], tile: int, threads: int
) -> dict[str, Any]:
    """One deblurring pass of ``model`` over a random ``size`` pair in this process, with
    tiles of side ``tile`` (0: the whole image)."""
    torch.set_num_threads(threads)
    runner = Deblurrer(build_model(model, width), torch.device("cpu"))
    height, width_px = size
    generator = torch.Generator().manual_seed(1)
    left = torch.rand(3, height, width_px, generator=generator)
    right = torch.rand(3, height, width_px, generator=generator)
    plan = runner.plan(height, width_px, TileOptions(tile=tile))
    seconds: list[float] = []

    def one_pass() -> None:
        start = time.perf_counter()
        runner.run_plan(left, right, plan, progress=False)
        seconds.append(time.perf_counter() - start)

    rss_before = rss_mib()
    peak = cpu_peak_bytes(one_pass)
    return {
        "tile": tile or None,
        "overlap": plan.overlap if len(plan) > 1 else None,
        "tiles": len(plan),
        "plan": plan.describe(),
        "seconds": round(seconds[0], 2),
        "peak_tensor_mib": round(peak / 2**20, 1),
        "rss_before_mib": round(rss_before, 1),
    }


def measure_tiles(
    model: str,
    width: float | None,
    size: tuple[int, int],
    tiles: list[int],
    threads: int = 2,
    log=print,
) -> dict[str, Any]:
    """Every tile setting of ``tiles``, each in a fresh process (see the module docstring)."""
    settings = []
    for tile in tiles:
        load_start = _one_minute_load()
        result = run_in_fresh_process(
            measure_tile_setting,
            model,
            width,
            tuple(size),
            tile,
            threads,
            env=FRESH_PROCESS_ENV,
            what=f"deblurring with tile {tile}",
        )
        result["load_1min_start_end"] = [load_start, _one_minute_load()]
        settings.append(result)
        log(json.dumps(result))
    return {
        "model": model,
        "width": width,
        "size": list(size),
        "threads": threads,
        "settings": settings,
        "machine": describe_machine("cpu"),
    }
