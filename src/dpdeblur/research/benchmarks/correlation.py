"""The correlation layer (:mod:`dpdeblur.nn.correlation`): its time inside a model, and its
peak memory against its input and output sizes.

:func:`time_correlation_kernels` times the forward and backward functions of
:mod:`dpdeblur.nn.correlation` (``_correlation_forward``/``_correlation_backward``, the
kernels behind the ``dpdeblur::correlation`` operator) at every shape a model's forward pass
gives them (:func:`correlation_shapes`). With ``compare_whole_batch`` it also times
:func:`whole_batch_correlation_forward`/``_backward``, the implementation before the speed
work (each band of rows of the whole batch at once, a fresh product per displacement), and
checks that both give bit-identical outputs and gradients. With one thread the seconds are
process CPU time, which other jobs on shared cores disturb least.

:func:`measure_correlation_memory` gives the peak memory and seconds of one call (forward,
or forward+backward) of the operator or of :func:`stacked_correlation`, the obvious
alternative that materialises all (2d+1)^2 shifted copies of the second input at once. The
peak is the inputs plus the most memory held allocated at once beyond them: on the CPU from
the allocation events of ``torch.profiler`` (the resident set is too coarse, as the C
library keeps freed blocks), on CUDA from ``torch.cuda.max_memory_allocated``. The forward
output counts; in the forward+backward pass the gradients of the inputs count too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import dpdeblur.nn.correlation as correlation_module
from dpdeblur.hardware import cpu_peak_bytes
from dpdeblur.nn.correlation import correlation
from dpdeblur.research.benchmarks.timing import random_pair

# (input shape B x C x H x W, max displacement) of one correlation call.
CorrelationShape = tuple[tuple[int, ...], int]


def correlation_shapes(model: nn.Module, batch: int, crop: int) -> list[CorrelationShape]:
    """Input shape and displacement of every correlation in one eval-mode forward pass of
    ``model`` on ``batch`` random ``crop`` x ``crop`` pairs."""
    shapes: list[CorrelationShape] = []
    original = correlation_module._correlation_forward

    def spy(x1: Tensor, x2: Tensor, d: int) -> Tensor:
        shapes.append((tuple(x1.shape), d))
        return original(x1, x2, d)

    correlation_module._correlation_forward = spy
    try:
        left, right = random_pair(batch, (crop, crop), torch.device("cpu"))
        with torch.no_grad():
            model.eval()(left, right)
    finally:
        correlation_module._correlation_forward = original
    return shapes


def whole_batch_correlation_forward(x1: Tensor, x2: Tensor, d: int) -> Tensor:
    """The forward kernel before the speed work: each band of rows of the whole batch at
    once, a fresh product per displacement (the bands are the operator's own)."""
    batch, channels, height, width = x1.shape
    size = 2 * d + 1
    x2_padded = F.pad(x2, (d, d, d, d))
    out = x1.new_empty(batch, size * size, height, width)
    for y0, y1 in correlation_module._row_bands(x1):
        x1_band = x1[:, :, y0:y1]
        for oy in range(size):
            rows = x2_padded[:, :, y0 + oy : y1 + oy]
            for ox in range(size):
                plane = out[:, oy * size + ox, y0:y1]
                torch.sum(x1_band * rows[:, :, :, ox : ox + width], dim=1, out=plane)
    return out.div_(channels)


def whole_batch_correlation_backward(
    grad: Tensor, x1: Tensor, x2: Tensor, d: int
) -> tuple[Tensor, Tensor]:
    """The backward kernel before the speed work (see
    :func:`whole_batch_correlation_forward`): gradients of ``x1`` and ``x2``."""
    _, channels, height, width = x1.shape
    size = 2 * d + 1
    x2_padded = F.pad(x2, (d, d, d, d))
    grad_x1 = torch.empty_like(x1)
    grad_x2_padded = torch.zeros_like(x2_padded)
    for y0, y1 in correlation_module._row_bands(x1):
        x1_band = x1[:, :, y0:y1]
        acc = torch.zeros_like(x1_band)
        for oy in range(size):
            for ox in range(size):
                g = grad[:, oy * size + ox, y0:y1].unsqueeze(1).expand_as(x1_band).contiguous()
                window = (slice(None), slice(None), slice(y0 + oy, y1 + oy), slice(ox, ox + width))
                acc.addcmul_(g, x2_padded[window])
                grad_x2_padded[window].addcmul_(g, x1_band)
        grad_x1[:, :, y0:y1] = acc
    grad_x2_padded.div_(channels)
    return grad_x1.div_(channels), grad_x2_padded[:, :, d : d + height, d : d + width]


def time_correlation_kernels(
    shapes: list[CorrelationShape],
    repeat: int = 2,
    compare_whole_batch: bool = False,
) -> list[dict[str, Any]]:
    """Forward and backward seconds (fastest of ``repeat``) of the correlation kernels at
    each of ``shapes``, on random inputs; one row per shape with ``current_forward_s``,
    ``current_backward_s`` and, when comparing, ``whole_batch_forward_s``,
    ``whole_batch_backward_s`` and ``identical`` (outputs and both gradients equal bit for
    bit). Seconds are process CPU time on one torch thread, wall time otherwise."""
    clock = time.process_time if torch.get_num_threads() == 1 else time.perf_counter
    kernels: dict[str, tuple[Callable, Callable]] = {
        "current": (
            correlation_module._correlation_forward,
            correlation_module._correlation_backward,
        )
    }
    if compare_whole_batch:
        kernels = {
            "whole_batch": (whole_batch_correlation_forward, whole_batch_correlation_backward),
            **kernels,
        }

    def best(fn: Callable, *inputs: Tensor | int) -> float:
        times = []
        for _ in range(max(1, repeat)):
            start = clock()
            fn(*inputs)
            times.append(clock() - start)
        return min(times)

    rows = []
    for shape, d in shapes:
        generator = torch.Generator().manual_seed(0)
        x1, x2 = torch.randn(shape, generator=generator), torch.randn(shape, generator=generator)
        row: dict[str, Any] = {"shape": list(shape), "max_displacement": d}
        results = {}
        for label, (forward, backward) in kernels.items():
            out = forward(x1, x2, d)
            grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
            results[label] = (out, *backward(grad, x1, x2, d))
            row[f"{label}_forward_s"] = best(forward, x1, x2, d)
            row[f"{label}_backward_s"] = best(backward, grad, x1, x2, d)
        if compare_whole_batch:
            row["identical"] = all(
                torch.equal(a, b)
                for a, b in zip(results["whole_batch"], results["current"], strict=True)
            )
        rows.append(row)
    return rows


def format_kernel_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`time_correlation_kernels`' rows."""
    labels = [label for label in ("whole_batch", "current") if f"{label}_forward_s" in rows[0]]
    compared = "identical" in rows[0]
    head = " | ".join(f"{label} fwd s | {label} bwd s" for label in labels)
    lines = [
        f"| input B x C x H x W | {head} |" + (" identical |" if compared else ""),
        "|---|" + "---:|" * (2 * len(labels)) + ("---|" if compared else ""),
    ]
    for row in rows:
        cells = " | ".join(
            f"{row[f'{label}_forward_s']:.3f} | {row[f'{label}_backward_s']:.3f}"
            for label in labels
        )
        extra = f" {row['identical']} |" if compared else ""
        lines.append(f"| {' x '.join(map(str, row['shape']))} | {cells} |{extra}")
    return "\n".join(lines)


def stacked_correlation(x1: Tensor, x2: Tensor, d: int = 4) -> Tensor:
    """Correlation with all (2d+1)^2 shifted copies of ``x2`` at once: (2d+1)^2 x C x H x W
    extra memory (the contrast to the operator)."""
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


CORRELATION_IMPLEMENTATIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "dpdeblur": correlation,
    "stacked": stacked_correlation,
}


def measure_correlation_memory(
    implementation: str,
    channels: int,
    size: tuple[int, int],
    device: str = "cpu",
    backward: bool = False,
) -> dict[str, Any]:
    """Seconds and peak memory of one call of ``implementation`` (a key of
    :data:`CORRELATION_IMPLEMENTATIONS`) on 1 x ``channels`` x H x W inputs, d = 4, after a
    warm-up call (see the module docstring for what the peak includes)."""
    function = CORRELATION_IMPLEMENTATIONS[implementation]
    height, width = size
    torch.manual_seed(0)
    x1 = torch.randn(1, channels, height, width, device=device, requires_grad=backward)
    x2 = torch.randn(1, channels, height, width, device=device, requires_grad=backward)
    input_bytes = 2 * x1.numel() * x1.element_size()
    output_bytes = 81 * height * width * x1.element_size()

    def run() -> Tensor:
        with torch.set_grad_enabled(backward):
            out = function(x1, x2)
            if backward:
                out.sum().backward()
        return out

    run()  # warm-up
    x1.grad = x2.grad = None
    if device.startswith("cuda"):
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
        "impl": implementation,
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


def format_memory_table(results: list[dict[str, Any]]) -> str:
    """A Markdown table of :func:`measure_correlation_memory` results."""
    lines = [
        "| impl | pass | seconds | inputs MiB | output MiB | peak MiB | peak / (output + inputs) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['impl']} | {r['pass']} | {r['seconds']} | {r['input_mib']} | "
            f"{r['output_mib']} | {r['peak_mib']} | {r['peak_over_output_plus_inputs']} |"
        )
    return "\n".join(lines)
