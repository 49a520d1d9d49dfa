"""The machine a figure or a run came from: CPU model and features, memory, library
versions, load; and the peak tensor memory of a piece of work on the CPU."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable

import numpy as np
import torch
import torchvision
from torch.profiler import ProfilerActivity, profile

MEMINFO_PATH = "/proc/meminfo"  # Linux's memory counters, in kB


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (Unix); other jobs on shared cores slow a run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return []


def _cpuinfo(*keys: str) -> str | None:
    """The value of the first ``/proc/cpuinfo`` line starting with one of ``keys`` (Linux)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith(keys):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``/proc/cpuinfo`` on Linux; empty elsewhere)."""
    return set((_cpuinfo("flags", "features") or "").split())


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16 on x86, BF16 on
    Arm). There, ``precision=bf16-mixed`` training is much faster than fp32 (docs/benchmarks.md,
    "CPU training step"); elsewhere oneDNN emulates it, slower."""
    flags = cpu_flags() if flags is None else flags
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def meminfo_bytes(field: str) -> int | None:
    """A ``/proc/meminfo`` field (``MemTotal``, ``MemAvailable``...) in bytes; ``None`` where
    there is no such file or field (not Linux)."""
    try:
        with open(MEMINFO_PATH) as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024  # the file counts kB
    except OSError:
        pass
    return None


def memory_gib() -> float | None:
    """Physical memory in GiB (Linux ``/proc/meminfo``)."""
    total = meminfo_bytes("MemTotal")
    return None if total is None else round(total / 2**30, 1)


def describe_machine(device: torch.device | str = "cpu") -> dict:
    """CPU, cores, torch threads, memory, library versions and the accelerator if used."""
    device = torch.device(device)
    info = {
        "cpu": cpu_name(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


def machine_line(machine: dict) -> str:
    """One line for a report: CPU, cores/threads, accelerator, torch."""
    parts = [
        f"{machine['cpu']}, {machine['cpu_cores']} cores ({machine['torch_threads']} torch threads)"
    ]
    if machine.get("gpu"):
        parts.append(f"{machine['gpu']} ({machine.get('gpu_memory_gib')} GiB)")
    if machine.get("memory_gib"):
        parts.append(f"{machine['memory_gib']} GiB RAM")
    parts.append(f"torch {machine['torch']}, torchvision {machine['torchvision']}")
    return "; ".join(parts)


def cpu_peak_bytes(run: Callable[[], object]) -> int:
    """Most bytes held at once by tensors allocated while ``run()`` executes (CPU), from
    ``torch.profiler``'s allocation events."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    live = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        live += event.nbytes()
        peak = max(peak, live)
    return peak
