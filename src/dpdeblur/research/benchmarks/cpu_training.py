"""How fast a training step runs on the CPU in each memory layout and precision.

The demo trains on a 2-core CPU for a fixed time, so steps per second decide how good its
model gets (docs/training.md, "Speed on CPUs"). :func:`cpu_training_variants` times one
optimiser step (AdamW, forward + backward + update) of the same model on the same random
batch in four variants: NCHW in float32 (PyTorch's default), NHWC (``channels_last``),
NHWC with bf16 autocast, and that with the fused AdamW update. Each variant gets a fresh
copy of the model, warm-up steps, then the median of the timed steps.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from dpdeblur.hardware import cpu_has_native_bf16, describe_machine
from dpdeblur.nn.layout import to_channels_last
from dpdeblur.research.benchmarks.selection import build_model
from dpdeblur.research.benchmarks.timing import random_pair, training_loss
from dpdeblur.training.config import compose_config


@dataclass(frozen=True)
class CpuVariant:
    """One way to run a CPU training step."""

    name: str
    channels_last: bool
    bf16: bool
    fused: bool


CPU_VARIANTS = (
    CpuVariant("NCHW fp32", channels_last=False, bf16=False, fused=False),
    CpuVariant("NHWC fp32", channels_last=True, bf16=False, fused=False),
    CpuVariant("NHWC bf16-mixed", channels_last=True, bf16=True, fused=False),
    CpuVariant("NHWC bf16-mixed, fused AdamW", channels_last=True, bf16=True, fused=True),
)


def time_cpu_step(
    model: nn.Module,
    variant: CpuVariant,
    batch: int,
    crop: int,
    steps: int = 10,
    warmup: int = 3,
) -> float:
    """Median seconds of one AdamW training step of a copy of ``model`` in ``variant``."""
    model = copy.deepcopy(model).train()
    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    model = to_channels_last(model) if variant.channels_last else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=variant.fused)
    left, right = random_pair(batch, (crop, crop), torch.device("cpu"))
    left, right = (x.contiguous(memory_format=layout) for x in (left, right))
    sample = {"left": left, "right": right, "target": (left + right) / 2}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.bf16):
            output = model(left, right)
        training_loss(output, sample).backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    times = []
    for _ in range(max(1, steps)):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_training_variants(
    build: Callable[[], nn.Module],
    batch: int = 4,
    crop: int = 128,
    steps: int = 10,
    warmup: int = 3,
) -> dict:
    """Time every :data:`CPU_VARIANTS` entry for the model ``build()`` returns.

    Returns ``{"native_bf16", "batch", "crop", "steps", "variants": [{name, channels_last,
    bf16, fused, ms_per_step, speedup}]}``; ``speedup`` is against the first (NCHW fp32).
    """
    torch.manual_seed(0)
    model = build()
    rows = []
    for variant in CPU_VARIANTS:
        seconds = time_cpu_step(model, variant, batch, crop, steps, warmup)
        rows.append({**asdict(variant), "ms_per_step": round(seconds * 1e3, 2)})
    base = rows[0]["ms_per_step"]
    for row in rows:
        row["speedup"] = round(base / row["ms_per_step"], 2)
    return {
        "native_bf16": cpu_has_native_bf16(),
        "batch": batch,
        "crop": crop,
        "steps": steps,
        "variants": rows,
    }


def render_cpu_training(results: dict, title: str) -> str:
    """Markdown table of :func:`cpu_training_variants`' results."""
    bf16 = "with" if results["native_bf16"] else "without"
    lines = [
        f"# {title}",
        "",
        f"One AdamW step, batch {results['batch']}, {results['crop']}x{results['crop']} crops, "
        f"median of {results['steps']} steps; a CPU {bf16} bf16 hardware.",
        "",
        "| variant | ms per step | speed-up |",
        "|---|---:|---:|",
    ]
    for row in results["variants"]:
        lines.append(f"| {row['name']} | {row['ms_per_step']:.1f} | {row['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def demo_model_config() -> dict[str, Any]:
    """The demo experiment's model, as ``conf/experiment/demo.yaml`` composes it."""
    cfg = compose_config("train", ["experiment=demo"], Path("."))
    config = OmegaConf.to_container(cfg.model, resolve=True)
    config.pop("_target_", None)
    return config


def measure_cpu_training(
    model: str | None = None,
    width: float | None = None,
    batch: int = 4,
    crop: int = 128,
    steps: int = 10,
) -> tuple[dict[str, Any], str]:
    """:func:`cpu_training_variants` of registry model ``model`` (default: the demo's, with
    its arguments) at ``width`` when given; the results with the model and machine, and
    their Markdown table."""
    kwargs = demo_model_config() if model is None else {"name": model}
    name = kwargs.pop("name")
    if width is not None:
        kwargs["width"] = width
    results = cpu_training_variants(lambda: build_model(name, **kwargs), batch, crop, steps)
    results.update(model=name, model_args=kwargs, machine=describe_machine("cpu"))
    title = f"CPU training step: {name} {kwargs}" if kwargs else f"CPU training step: {name}"
    return results, render_cpu_training(results, title)
