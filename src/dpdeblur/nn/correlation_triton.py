"""Triton kernels of the correlation layer (:mod:`dpdeblur.nn.correlation`): the cost volume
and both input gradients, the CUDA implementation of ``dpdeblur::correlation``.

For displacement ``k = (dy + d)(2d + 1) + (dx + d)``, ``out[b, k, y, x] = (1/C) sum_c
x1[b, c, y, x] x2[b, c, y + dy, x + dx]`` (zero outside the image). One program computes
one displacement for a run of ``BLOCK_W`` pixels of one row, summing the channels in
blocks of ``BLOCK_C``. The gradients are gathers, never scatters, so no atomics are needed
and they are deterministic:

- ``dL/dx1[b, c, y, x] = (1/C) sum_k g[b, k, y, x] x2[b, c, y + dy, x + dx]``;
- ``dL/dx2[b, c, y, x] = (1/C) sum_k g[b, k, y - dy, x - dx] x1[b, c, y - dy, x - dx]``;

one program per (row, run of pixels, block of channels), looping over the displacements.
Inputs of any float dtype are read as they are and every sum runs in float32 (fp16 and
bf16 inputs included), rounded once into the output's dtype, as the torch loops do.
float64 is not handled here (the loops keep it exact).

Importing this module never imports Triton: the kernels are compiled on first use
(:func:`kernels`), so the package works without Triton and the tests can run them under
``TRITON_INTERPRET=1`` on the CPU (``tests/nn/test_correlation_triton.py``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from types import SimpleNamespace

import torch
from torch import Tensor

DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Pixels per program along a row, and channels per block.
BLOCK_W = 64
BLOCK_C = 32


@functools.cache
def triton_available() -> bool:
    """Whether Triton can be imported (it is optional)."""
    return importlib.util.find_spec("triton") is not None


def supports(x: Tensor) -> bool:
    """Whether the kernels handle ``x``: a CUDA tensor of a float dtype other than
    float64, with Triton installed."""
    return x.is_cuda and x.dtype in DTYPES and triton_available()


def kernels() -> SimpleNamespace:
    """The compiled kernels (``forward``, ``backward``), built on first use; interpreted
    when ``TRITON_INTERPRET=1`` (read then, so each mode gets its own build)."""
    import triton

    return _build(bool(triton.knobs.runtime.interpret))


@functools.cache
def _build(interpret: bool) -> SimpleNamespace:
    import triton
    import triton.language as tl

    @triton.jit
    def correlation_forward_kernel(
        x1,
        x2,
        out,
        channels,
        height,
        width,
        d: tl.constexpr,
        block_w: tl.constexpr,
        block_c: tl.constexpr,
    ):
        size: tl.constexpr = 2 * d + 1
        row = tl.program_id(0).to(tl.int64)  # b * H + y
        k = tl.program_id(2)
        b = row // height
        y = row % height
        dy = k // size - d
        dx = k % size - d
        xs = tl.program_id(1) * block_w + tl.arange(0, block_w)
        inside = xs < width
        xs2 = xs + dx
        y2 = y + dy
        inside2 = inside & (xs2 >= 0) & (xs2 < width) & (y2 >= 0) & (y2 < height)
        plane = height * width
        base = b * channels * plane
        acc = tl.zeros([block_w], dtype=tl.float32)
        for c0 in range(0, channels, block_c):
            cs = c0 + tl.arange(0, block_c)
            rows = base + cs[:, None].to(tl.int64) * plane
            keep = cs[:, None] < channels
            a = tl.load(x1 + rows + y * width + xs[None, :], mask=keep & inside[None, :], other=0.0)
            v = tl.load(
                x2 + rows + y2 * width + xs2[None, :], mask=keep & inside2[None, :], other=0.0
            )
            acc += tl.sum(a.to(tl.float32) * v.to(tl.float32), axis=0)
        acc = acc / channels
        target = ((b * size * size + k) * height + y) * width + xs
        tl.store(out + target, acc.to(out.dtype.element_ty), mask=inside)

    @triton.jit
    def correlation_backward_kernel(
        grad,
        source,
        out,
        channels,
        height,
        width,
        d: tl.constexpr,
        second: tl.constexpr,
        block_w: tl.constexpr,
        block_c: tl.constexpr,
    ):
        # second = False: dL/dx1 from x2 read at (y + dy, x + dx) and g at (y, x).
        # second = True:  dL/dx2 from x1 and g both read at (y - dy, x - dx).
        size: tl.constexpr = 2 * d + 1
        row = tl.program_id(0).to(tl.int64)
        b = row // height
        y = row % height
        xs = tl.program_id(1) * block_w + tl.arange(0, block_w)
        cs = tl.program_id(2) * block_c + tl.arange(0, block_c)
        inside = xs < width
        keep = cs[:, None] < channels
        plane = height * width
        rows = b * channels * plane + cs[:, None].to(tl.int64) * plane
        grad_base = b * size * size * plane
        acc = tl.zeros([block_c, block_w], dtype=tl.float32)
        for k in range(0, size * size):
            dy = k // size - d
            dx = k % size - d
            if second:
                ys = y - dy
                xs_k = xs - dx
                ys_g = ys
                xs_g = xs_k
            else:
                ys = y + dy
                xs_k = xs + dx
                ys_g = y
                xs_g = xs
            valid = inside & (xs_k >= 0) & (xs_k < width) & (ys >= 0) & (ys < height)
            g = tl.load(grad + grad_base + k * plane + ys_g * width + xs_g, mask=valid, other=0.0)
            v = tl.load(
                source + rows + ys * width + xs_k[None, :], mask=keep & valid[None, :], other=0.0
            )
            acc += g.to(tl.float32)[None, :] * v.to(tl.float32)
        acc = acc / channels
        tl.store(
            out + rows + y * width + xs[None, :],
            acc.to(out.dtype.element_ty),
            mask=keep & inside[None, :],
        )

    return SimpleNamespace(forward=correlation_forward_kernel, backward=correlation_backward_kernel)


def _check(*tensors: Tensor) -> contextlib.AbstractContextManager:
    """Refuse what the kernels cannot take; the context that makes the inputs' GPU the
    current one (Triton launches on the current device)."""
    first = tensors[0]
    for t in tensors:
        if t.dtype not in DTYPES:
            raise TypeError(f"the Triton correlation takes {DTYPES}, not {t.dtype}")
        if t.device != first.device:
            raise ValueError("the Triton correlation needs its inputs on one device")
    return torch.cuda.device(first.device) if first.is_cuda else contextlib.nullcontext()


def correlation_forward(x1: Tensor, x2: Tensor, max_displacement: int) -> Tensor:
    """The cost volume, B x (2d+1)^2 x H x W in the inputs' dtype (see the module doc)."""
    device = _check(x1, x2)
    x1, x2 = x1.contiguous(), x2.contiguous()
    batch, channels, height, width = x1.shape
    size = 2 * max_displacement + 1
    out = torch.empty(batch, size * size, height, width, dtype=x1.dtype, device=x1.device)
    if out.numel() == 0:
        return out.zero_()
    grid = (batch * height, -(-width // BLOCK_W), size * size)
    with device:
        kernels().forward[grid](
            x1,
            x2,
            out,
            channels,
            height,
            width,
            d=max_displacement,
            block_w=BLOCK_W,
            block_c=BLOCK_C,
        )
    return out


def correlation_backward(
    grad: Tensor, x1: Tensor, x2: Tensor, max_displacement: int
) -> tuple[Tensor, Tensor]:
    """``(dL/dx1, dL/dx2)`` of :func:`correlation_forward` for the output gradient
    ``grad``, in the inputs' dtypes (see the module doc)."""
    device = _check(grad, x1, x2)
    grad, x1, x2 = grad.contiguous(), x1.contiguous(), x2.contiguous()
    batch, channels, height, width = x1.shape
    if x1.numel() == 0:
        return torch.zeros_like(x1), torch.zeros_like(x2)
    grid = (batch * height, -(-width // BLOCK_W), -(-channels // BLOCK_C))
    grads = []
    for second, source in ((False, x2), (True, x1)):
        out = torch.empty_like(source, memory_format=torch.contiguous_format)
        with device:
            kernels().backward[grid](
                grad,
                source,
                out,
                channels,
                height,
                width,
                d=max_displacement,
                second=second,
                block_w=BLOCK_W,
                block_c=BLOCK_C,
            )
        grads.append(out)
    return grads[0], grads[1]
