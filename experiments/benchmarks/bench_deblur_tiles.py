"""Full-resolution deblurring on the CPU, whole and tiled: seconds and peak memory.

    python experiments/benchmarks/bench_deblur_tiles.py          # dpanet width 0.5, 1120x1680
    python experiments/benchmarks/bench_deblur_tiles.py --width 1 --tiles 0 512
    python experiments/benchmarks/bench_deblur_tiles.py --size 256 384 --width 0.125 --json /tmp/x.json

Each setting (``--tiles``: 0 = the whole image, else the tile side; the overlap is the
deblurrer's default) runs in its own subprocess, so peaks do not mix: one pass of
:class:`dpdeblur.inference.engine.Deblurrer` over a random DP pair (tiling, the model's
padding, blending included). Reported per setting: wall seconds; the peak bytes held by
tensors allocated during the pass (``dpdeblur.hardware.cpu_peak_bytes``: activations,
per-tile copies and the blend buffers); and the resident set size before the pass
(Python, torch, the weights and the input pair), to which the pass adds at most that peak.
The pass runs once, under the profiler (its bookkeeping costs a few percent of the time;
it also keeps its event records in memory, which is why the process's own peak RSS is
not reported: it would grow with the number of tiles for reasons of the measurement).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

RESULT = Path(__file__).resolve().parents[1] / "results" / "deblur_tiles_cpu.json"


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def worker(args: argparse.Namespace) -> dict:
    """One setting, in this process; returns its measurements."""
    import torch

    from dpdeblur.inference.engine import Deblurrer, TileOptions
    from dpdeblur.models import create_model
    from dpdeblur.hardware import cpu_peak_bytes

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model, width=args.width)
    runner = Deblurrer(model, torch.device("cpu"))
    height, width = args.size
    generator = torch.Generator().manual_seed(1)
    left = torch.rand(3, height, width, generator=generator)
    right = torch.rand(3, height, width, generator=generator)
    plan = runner.plan(height, width, TileOptions(tile=args.tile))
    seconds = []

    def one_pass() -> None:
        start = time.perf_counter()
        runner.run_plan(left, right, plan, progress=False)
        seconds.append(time.perf_counter() - start)

    rss_before = rss_mib()
    peak = cpu_peak_bytes(one_pass)
    return {
        "tile": args.tile or None,
        "overlap": plan.overlap if len(plan) > 1 else None,
        "tiles": len(plan),
        "plan": plan.describe(),
        "seconds": round(seconds[0], 2),
        "peak_tensor_mib": round(peak / 2**20, 1),
        "rss_before_mib": round(rss_before, 1),
    }


def run_setting(args: argparse.Namespace, tile: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--tile",
        str(tile),
        "--model",
        args.model,
        "--width",
        str(args.width),
        "--size",
        *map(str, args.size),
        "--threads",
        str(args.threads),
    ]
    load_start = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"setting tile={tile} failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["load_1min_start_end"] = [round(load_start, 1), round(os.getloadavg()[0], 1)]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dpanet")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--size", nargs=2, type=int, default=[1120, 1680], metavar=("H", "W"))
    parser.add_argument("--tiles", nargs="+", type=int, default=[0, 512, 256])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=RESULT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tile", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    import torch

    settings = []
    for tile in args.tiles:
        settings.append(run_setting(args, tile))
        print(json.dumps(settings[-1]), flush=True)
    result = {
        "model": args.model,
        "width": args.width,
        "size": args.size,
        "threads": args.threads,
        "settings": settings,
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "command": "python experiments/benchmarks/bench_deblur_tiles.py " + " ".join(sys.argv[1:]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
