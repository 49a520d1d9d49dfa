"""Peak memory and time of the correlation layer against its output and input sizes.

    python experiments/benchmarks/bench_correlation.py                      # C=64, 256x256, CPU
    python experiments/benchmarks/bench_correlation.py --channels 64 --size 1120 1680 --json out.json
    python experiments/benchmarks/bench_correlation.py --device cuda

The op's peak is the inputs plus the most memory it held allocated at once beyond them:
on the CPU from the allocation events of ``torch.profiler`` (``profile_memory=True``; the
resident set is too coarse, as the C library keeps freed blocks), on CUDA from
``torch.cuda.max_memory_allocated``. The forward output counts; in the forward+backward
pass the gradients of the inputs count too. The acceptance bound is peak <= 2 x (output +
inputs) for the forward pass. ``stacked`` is the obvious alternative that materialises all (2d+1)^2 shifted
copies of the second input at once, for contrast.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from dpdeblur.hardware import cpu_peak_bytes


def stacked_correlation(x1: torch.Tensor, x2: torch.Tensor, d: int = 4) -> torch.Tensor:
    """All shifted copies at once: (2d+1)^2 x C x H x W extra memory."""
    _, channels, height, width = x1.shape
    padded = F.pad(x2, (d, d, d, d))
    size = 2 * d + 1
    shifted = torch.stack(
        [
            padded[:, :, oy : oy + height, ox : ox + width]
            for oy in range(size)
            for ox in range(size)
        ],
        dim=1,
    )
    return (x1.unsqueeze(1) * shifted).sum(2) / channels


def measure(impl: str, channels: int, height: int, width: int, device: str, backward: bool):
    from dpdeblur.nn.correlation import correlation

    fn = correlation if impl == "dpdeblur" else stacked_correlation
    torch.manual_seed(0)
    x1 = torch.randn(1, channels, height, width, device=device, requires_grad=backward)
    x2 = torch.randn(1, channels, height, width, device=device, requires_grad=backward)
    input_bytes = 2 * x1.numel() * x1.element_size()
    output_bytes = 81 * height * width * x1.element_size()

    def run():
        with torch.set_grad_enabled(backward):
            out = fn(x1, x2)
            if backward:
                out.sum().backward()
        return out

    run()  # warm-up
    x1.grad = x2.grad = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        extra = torch.cuda.max_memory_allocated() - base
    else:
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        x1.grad = x2.grad = None
        extra = cpu_peak_bytes(run)
    peak = input_bytes + extra
    return {
        "impl": impl,
        "pass": "forward+backward" if backward else "forward",
        "device": device,
        "channels": channels,
        "size": [height, width],
        "seconds": round(seconds, 3),
        "input_mib": round(input_bytes / 2**20, 1),
        "output_mib": round(output_bytes / 2**20, 1),
        "peak_mib": round(peak / 2**20, 1),
        "peak_over_output_plus_inputs": round(peak / (output_bytes + input_bytes), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--impls", nargs="+", default=["dpdeblur", "stacked"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    height, width = args.size

    results = [
        measure(impl, args.channels, height, width, args.device, backward)
        for impl in args.impls
        for backward in (False, True)
    ]
    header = (
        "| impl | pass | seconds | inputs MiB | output MiB | peak MiB | peak / (output + inputs) |"
    )
    print(f"correlation, C={args.channels}, {height}x{width}, d=4, {args.device}\n")
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['impl']} | {r['pass']} | {r['seconds']} | {r['input_mib']} | "
            f"{r['output_mib']} | {r['peak_mib']} | {r['peak_over_output_plus_inputs']} |"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
