"""DPANet's deformable convolutions: torchvision's kernel against the sampled one.

:func:`measure_dcn` builds one DPANet (random weights, seed 0) and times, on the same
model and the same random pair, a forward pass (``torch.inference_mode``) and a
training-mode forward + Charbonnier loss + backward pass with each implementation of
:class:`~dpdeblur.nn.deform.ModulatedDeformConv2d`, switched in place. The implementations
alternate ``repeat`` times in one process (so other jobs on shared cores slow both alike)
and the fastest run of each is kept, after one warm-up pass of each at 64x64. The two
outputs and input gradients are compared as well: the figures are for the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from dpdeblur.hardware import describe_machine, load_average, machine_line
from dpdeblur.nn.deform import set_dcn_implementation
from dpdeblur.research.benchmarks.selection import build_model
from dpdeblur.research.benchmarks.timing import random_pair, training_loss

IMPLEMENTATIONS = ("torchvision", "sampled")
WARMUP_SIZE = (64, 64)


def _timed(run: Callable[[], Tensor]) -> tuple[Tensor, float]:
    """``run()``'s result and its wall-clock seconds."""
    start = time.perf_counter()
    result = run()
    return result, time.perf_counter() - start


def _forward(model: nn.Module, left: Tensor, right: Tensor) -> Tensor:
    model.eval()
    with torch.inference_mode():
        return model(left, right)


def _forward_backward(model: nn.Module, left: Tensor, right: Tensor) -> Tensor:
    """One training-mode pass; returns the left view's gradient (for the comparison)."""
    model.train()
    left = left.clone().requires_grad_()
    target = (left.detach() + right) / 2
    output = model(left, right)
    training_loss(output, {"left": left, "right": right, "target": target}).backward()
    model.zero_grad(set_to_none=True)
    return left.grad


def dcn_timings(
    model: nn.Module,
    size: tuple[int, int],
    batch: int = 1,
    repeat: int = 2,
    implementations: Sequence[str] = IMPLEMENTATIONS,
) -> dict:
    """Fastest forward and forward+backward seconds of ``model`` with each implementation.

    Returns ``{"rows": [{implementation, forward_s, forward_backward_s}], "ratios":
    {implementation: {forward, forward_backward}} (against the first), "max_abs_diff":
    {output, input_grad} (each implementation against the first)}``.
    """
    left, right = random_pair(batch, size, torch.device("cpu"))
    small = random_pair(1, WARMUP_SIZE, torch.device("cpu"))
    times: dict[str, dict[str, list[float]]] = {}
    results: dict[str, tuple[Tensor, Tensor]] = {}
    for name in implementations:
        set_dcn_implementation(model, name)
        _forward(model, *small)
        _forward_backward(model, *small)
        times[name] = {"forward_s": [], "forward_backward_s": []}
    for _ in range(max(1, repeat)):
        for name in implementations:
            set_dcn_implementation(model, name)
            out, seconds = _timed(lambda: _forward(model, left, right))
            times[name]["forward_s"].append(seconds)
            grad, seconds = _timed(lambda: _forward_backward(model, left, right))
            times[name]["forward_backward_s"].append(seconds)
            results[name] = (out, grad)
    rows = [
        {"implementation": name, **{key: round(min(v), 3) for key, v in times[name].items()}}
        for name in implementations
    ]
    base = rows[0]
    ratios = {
        row["implementation"]: {
            "forward": round(row["forward_s"] / base["forward_s"], 3),
            "forward_backward": round(row["forward_backward_s"] / base["forward_backward_s"], 3),
        }
        for row in rows
    }
    reference = results[implementations[0]]
    diffs = {
        name: {
            "output": float((out - reference[0]).abs().max()),
            "input_grad": float((grad - reference[1]).abs().max()),
        }
        for name, (out, grad) in results.items()
    }
    return {"rows": rows, "ratios": ratios, "max_abs_diff": diffs}


def measure_dcn(
    model: str = "dpanet",
    width: float | None = None,
    size: tuple[int, int] = (256, 256),
    batch: int = 1,
    repeat: int = 2,
    threads: int | None = None,
) -> dict:
    """:func:`dcn_timings` of registry model ``model`` (a DPANet) with the machine it ran on
    and the load averages before and after."""
    if threads:
        torch.set_num_threads(threads)
    network = build_model(model, width)
    load_before = load_average()
    results = dcn_timings(network, size, batch, repeat)
    return {
        "model": model,
        "width": width,
        "size": list(size),
        "batch": batch,
        "repeat": repeat,
        **results,
        "load_before": load_before,
        "load_after": load_average(),
        "machine": describe_machine("cpu"),
    }


def render_dcn(results: dict) -> str:
    """Markdown table of :func:`measure_dcn`'s results."""
    height, width = results["size"]
    model = results["model"] + (f" width {results['width']}" if results["width"] else "")
    lines = [
        f"# Deformable convolution: {model}, batch {results['batch']} x {height}x{width}",
        "",
        f"{machine_line(results['machine'])}. Fastest of {results['repeat']} alternated runs "
        f"in one process; load average {results['load_before']} before, "
        f"{results['load_after']} after.",
        "",
        "| implementation | forward | ratio | forward + backward | ratio | max abs diff "
        "(output, input grad) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in results["rows"]:
        name = row["implementation"]
        ratio = results["ratios"][name]
        diff = results["max_abs_diff"][name]
        lines.append(
            f"| {name} | {row['forward_s']:.2f} s | {ratio['forward']:.2f}x | "
            f"{row['forward_backward_s']:.2f} s | {ratio['forward_backward']:.2f}x | "
            f"{diff['output']:.1e}, {diff['input_grad']:.1e} |"
        )
    return "\n".join(lines) + "\n"
