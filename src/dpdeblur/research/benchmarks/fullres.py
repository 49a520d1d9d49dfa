"""Full-resolution inference (a DPDD image, 1120x1680): seconds and peak memory.

On the CPU the measurement runs in a fresh Python process, so its peak resident set
(``ru_maxrss``, the process's high-water mark) belongs to this model alone: it includes
Python, torch and the weights, which the result also gives separately as the resident set
just before the forward pass. On a GPU it runs in this process, and the peak is
``torch.cuda.max_memory_allocated`` over the forward pass (weights included).

    python -m dpdeblur.research.benchmarks.fullres --model dpanet --size 1120 1680 --threads 2

prints one JSON object. The timed pass is the first at full size (a forward at 64x64 runs
before it); with ``--repeat N`` the fastest of N.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

from dpdeblur.errors import DpdeblurError
from dpdeblur.research.benchmarks.timing import forward_seconds


def rss_mib() -> float:
    """Current resident set size in MiB (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    """This process's resident-set high-water mark in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_here(
    name: str,
    size: tuple[int, int],
    device: torch.device,
    repeat: int = 1,
    autocast: torch.dtype | None = None,
) -> dict:
    """Build ``name`` and time its forward pass at ``size`` in this process."""
    from dpdeblur.models import create_model

    torch.manual_seed(0)
    model = create_model(name).to(device)
    result: dict = {"size": list(size), "repeat": repeat, "threads": torch.get_num_threads()}
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


def measure_in_subprocess(
    name: str, size: tuple[int, int], threads: int | None = None, repeat: int = 1
) -> dict:
    """CPU measurement of ``name`` in a fresh process (see the module docstring)."""
    command = [sys.executable, "-m", "dpdeblur.research.benchmarks.fullres", "--model", name]
    command += ["--size", str(size[0]), str(size[1]), "--repeat", str(repeat)]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DpdeblurError(f"full-resolution run of {name} failed: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--size", nargs=2, type=int, default=[1120, 1680], metavar=("H", "W"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = measure_here(args.model, tuple(args.size), torch.device(args.device), args.repeat)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
