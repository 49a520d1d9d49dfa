"""Full-resolution DPANet inference on the CPU: seconds and peak resident memory.

    python experiments/benchmarks/bench_dpanet_fullres.py                       # dpanet, 1120x1680
    python experiments/benchmarks/bench_dpanet_fullres.py --size 560 840 --threads 2 --json out.json
    python experiments/benchmarks/bench_dpanet_fullres.py --weights dpanet.pt  # converted release weights

One forward pass of a random DP pair under ``torch.inference_mode`` (the model's own input
checks, padding and crop included). Peak RSS is the process's high-water mark
(``ru_maxrss``), so it includes Python, torch and the model's weights (256 MB at width 1).
The run is repeated ``--repeat`` times and the fastest time is reported.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch


def rss_mib() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="dpanet")
    parser.add_argument("--size", nargs=2, type=int, default=[1120, 1680], metavar=("H", "W"))
    parser.add_argument("--width", type=float, default=None)
    parser.add_argument("--weights", type=Path, default=None, help="dpdeblur weights file")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    from dpdeblur.runs.releases.dpanet import load_converted
    from dpdeblur.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.weights is not None:
        model = load_converted(args.weights)
    else:
        kwargs = {} if args.width is None else {"width": args.width}
        model = create_model(args.model, **kwargs)
    model.eval()
    height, width = args.size
    left = torch.rand(1, 3, height, width)
    right = torch.rand(1, 3, height, width)
    rss_before = rss_mib()

    times = []
    with torch.inference_mode():
        for _ in range(args.repeat):
            start = time.perf_counter()
            out = model(left, right)
            times.append(time.perf_counter() - start)
            del out
    result = {
        "model": args.model if args.weights is None else str(args.weights),
        "size": [height, width],
        "width": args.width,
        "threads": torch.get_num_threads(),
        "seconds": min(times),
        "seconds_all": times,
        "rss_before_forward_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
