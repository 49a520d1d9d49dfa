"""GPU variants of the timings, and the operators that stay in float32 under autocast.

On a GPU, :func:`gpu_variants` times a model's forward (and forward+backward) pass under
bf16 and fp16 autocast, in ``channels_last`` memory format, and compiled with
``torch.compile``; each variant that fails records its error instead of stopping the run.

:func:`fp32_compute_ops` answers "what does autocast not cover?": it runs one forward pass
under autocast with a ``TorchDispatchMode`` that sees every operator after autocast has
cast its inputs, and lists the compute-heavy operators (convolutions, matrix products,
FFTs, ``torchvision::deform_conv2d``, ``dpdeblur::correlation``) whose floating-point
inputs were all float32. torchvision's deformable conv is one by design: our
:class:`~dpdeblur.nn.deform.ModulatedDeformConv2d` runs it in float32 as torchvision's own
autocast rule does. The logic runs on any device (CPU autocast with bfloat16 in the tests);
the GPU numbers themselves have not been measured on this project's CPU-only machine.
"""

from __future__ import annotations

import time
from collections import Counter

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from dpdeblur.nn.layout import to_channels_last
from dpdeblur.research.benchmarks.timing import (
    best_seconds,
    forward_backward_seconds,
    forward_seconds,
    random_pair,
    synchronize,
)

# Operator names (namespace::name) that carry the MACs of these networks.
COMPUTE_OPS = frozenset(
    {
        "aten::convolution",
        "aten::_convolution",
        "aten::cudnn_convolution",
        "aten::mkldnn_convolution",
        "aten::convolution_backward",
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::baddbmm",
        "aten::linear",
        "aten::matmul",
        "aten::_fft_r2c",
        "aten::_fft_c2r",
        "aten::_fft_c2c",
        "torchvision::deform_conv2d",
        "dpdeblur::correlation",
    }
)

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class OperatorDtypes(TorchDispatchMode):
    """Counts, per operator name, the dtypes of its floating-point tensor inputs."""

    def __init__(self):
        super().__init__()
        self.calls: Counter[tuple[str, str]] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat, _ = tree_flatten((args, kwargs or {}))
        dtypes = sorted({str(t.dtype).replace("torch.", "") for t in flat if _is_float_tensor(t)})
        if dtypes:
            self.calls[(func._schema.name, "+".join(dtypes))] += 1
        return func(*args, **(kwargs or {}))


def _is_float_tensor(value) -> bool:
    return isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex())


def fp32_compute_ops(
    model: nn.Module, size: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> dict[str, int]:
    """Compute-heavy operators that ran with float32 inputs only, under ``dtype`` autocast,
    in one eval-mode forward pass: ``{operator name: calls}``."""
    model.eval()
    left, right = random_pair(1, size, device)
    recorder = OperatorDtypes()
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype), recorder:
        model(left, right)
    found: Counter[str] = Counter()
    for (name, dtypes), count in recorder.calls.items():
        if name in COMPUTE_OPS and dtypes in ("float32", "complex64", "complex64+float32"):
            found[name] += count
    return dict(sorted(found.items()))


def _attempt(results: dict, key: str, measure) -> None:
    """Store ``measure()`` under ``key``, or the error it raised (a variant may fail)."""
    try:
        results[key] = measure()
    except Exception as err:  # a failing variant is a result, not a crash
        results[key] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}


def compiled_forward(model: nn.Module, size: tuple[int, int], device: torch.device) -> dict:
    """``torch.compile`` (default mode): seconds of the first call (compilation included)
    and of a later call."""
    compiled = torch.compile(model)
    model.eval()
    left, right = random_pair(1, size, device)

    def run():
        with torch.inference_mode():
            compiled(left, right)

    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    first = time.perf_counter() - start
    return {"first_call_s": first, "forward_s": best_seconds(run, device, 2)}


def gpu_variants(
    model: nn.Module,
    size: tuple[int, int],
    device: torch.device,
    repeat: int = 1,
    variants: tuple[str, ...] = (
        "autocast_bf16",
        "autocast_fp16",
        "channels_last",
        "channels_last_bf16",
        "compile",
    ),
) -> dict:
    """Forward (and forward+backward) seconds of each variant, plus the float32 operators
    under each autocast dtype. Runs on any device; meant for GPUs."""
    results: dict = {}
    for variant in variants:
        if variant.startswith("autocast_"):
            dtype = AUTOCAST_DTYPES[variant.split("_", 1)[1]]
            _attempt(
                results,
                variant,
                lambda dtype=dtype: {
                    "forward_s": forward_seconds(model, size, device, repeat, autocast=dtype),
                    "forward_backward_s": forward_backward_seconds(
                        model, size, device, repeat, autocast=dtype
                    ),
                    "fp32_ops": fp32_compute_ops(model, size, device, dtype),
                },
            )
        elif variant.startswith("channels_last"):
            dtype = torch.bfloat16 if variant.endswith("_bf16") else None

            def measure(dtype=dtype):
                to_channels_last(model)
                try:
                    return {
                        "forward_s": forward_seconds(
                            model,
                            size,
                            device,
                            repeat,
                            autocast=dtype,
                            memory_format=torch.channels_last,
                        )
                    }
                finally:
                    model.to(memory_format=torch.contiguous_format)

            _attempt(results, variant, measure)
        elif variant == "compile":
            _attempt(results, variant, lambda: compiled_forward(model, size, device))
        else:
            raise ValueError(f"unknown variant {variant!r}")
    return results
