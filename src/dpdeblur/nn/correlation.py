"""Correlation layer (cost volume) of FlowNet/PWC-Net, as DPANet uses it (eq. (7); docs/dpanet.md).

For every displacement (dy, dx) with |dy|, |dx| <= d, output channel ``(dy + d) * (2d + 1)
+ (dx + d)`` holds the channel mean of ``x1 * shift(x2, dy, dx)``, where the second input is
zero padded by ``d``. With ``d = 4`` that is a 9x9 window and 81 channels, the release's
layout (kernel 1, stride 1). K3DN's sharp-region preservation uses the same 9x9 local
correlation between query and key projections.

Pure PyTorch, differentiable, device-agnostic and autocast-friendly. It never holds the
(2d+1)^2 shifted copies of ``x2`` at once: each displacement reads a view of one padded
copy, and the product is reduced to one output plane (written in place into the
preallocated output) before the next is formed, so the extra memory beyond the output is
one padded copy of ``x2`` plus one product, O(C x H x W). The backward pass loops the same
way.

The computation is registered as the operator ``dpdeblur::correlation`` (``torch.library``)
so that tools that work per operator, such as :mod:`dpdeblur.research.benchmarks.macs`'s MAC count with
``torch.utils.flop_counter``, see it as one op instead of 81 anonymous products.

On CUDA, with Triton installed, the operator and its backward pass run the Triton kernels
of :mod:`dpdeblur.nn.correlation_triton` (float32, float16 and bfloat16 inputs; float32
sums, as here); float64, the CPU, and a backward pass that records a graph for double
backward use the torch loops below. Triton is optional: without it CUDA uses the loops too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn import correlation_triton
from dpdeblur.nn.precision import wide_dtype

# On the CPU the loops run one sample at a time (unless the whole batch fits one band) over
# bands of rows, each about this many bytes of one sample's input, so that the 81 products of a band are formed while its rows
# are still in cache (docs/benchmarks.md, "Speed work", has the figures), into one product buffer
# reused for every displacement (no allocation per product). Accelerators take the whole
# batch and map in one band.
_CPU_BAND_BYTES = 6 * 2**20


def _row_bands(x: Tensor):
    """(start, stop) row ranges covering the height of ``x`` (B x C x H x W)."""
    _, channels, height, width = x.shape
    if x.device.type == "cpu":
        band = max(1, _CPU_BAND_BYTES // max(1, channels * width * x.element_size()))
    else:
        band = height
    for start in range(0, height, band):
        yield start, min(height, start + band)


def _sample_slices(x: Tensor) -> list[slice]:
    """Batch slices the loops take at once: on the CPU one sample each, unless the whole
    batch fits one band (then fewer, larger operations win); elsewhere the whole batch."""
    if x.device.type == "cpu" and x.numel() * x.element_size() > _CPU_BAND_BYTES:
        return [slice(b, b + 1) for b in range(x.shape[0])]
    return [slice(None)]


def _correlation_forward(x1: Tensor, x2: Tensor, d: int) -> Tensor:
    batch, channels, height, width = x1.shape
    size = 2 * d + 1
    acc_dtype = wide_dtype(x1.dtype)
    exact = acc_dtype == x1.dtype
    x2_padded = F.pad(x2, (d, d, d, d))
    out = x1.new_empty(batch, size * size, height, width)
    product = None
    for sample in _sample_slices(x1):
        for y0, y1 in _row_bands(x1):
            # Half precision: the band's inputs in float32 (copies), its planes summed and
            # divided in float32, rounded once into ``out``.
            x1_band = x1[sample, :, y0:y1].to(acc_dtype)
            padded_rows = x2_padded[sample, :, y0 : y1 + 2 * d].to(acc_dtype)
            if exact:
                target = out[sample, :, y0:y1]
            else:
                target = x1_band.new_empty(x1_band.shape[0], size * size, y1 - y0, width)
            if product is None or product.shape != x1_band.shape:
                product = torch.empty_like(x1_band)
            for oy in range(size):
                rows = padded_rows[:, :, oy : oy + y1 - y0]
                for ox in range(size):
                    torch.mul(x1_band, rows[:, :, :, ox : ox + width], out=product)
                    torch.sum(product, dim=1, out=target[:, oy * size + ox])
            if not exact:
                out[sample, :, y0:y1] = target.div_(channels)
    return out.div_(channels) if exact else out


def _correlation_backward(grad: Tensor, x1: Tensor, x2: Tensor, d: int) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`_correlation_forward`, one band and displacement at a time.

    ``dL/dx1 = sum_k g_k * shift_k(x2) / C`` and ``dL/dx2`` scatters ``g_k * x1 / C`` back to
    the displaced window; written in differentiable ops, so double backward works too.
    Buffers are reused between displacements only when no graph is being recorded (a
    reused buffer would overwrite values that double backward needs). Half-precision
    inputs accumulate the 81 displacements in float32 (as the forward sums), divide there
    and are rounded once.
    """
    _, channels, height, width = x1.shape
    size = 2 * d + 1
    acc_dtype = wide_dtype(x1.dtype)
    exact = acc_dtype == x1.dtype
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in (grad, x1, x2))
    x2_padded = F.pad(x2, (d, d, d, d))
    grad_x1 = torch.empty_like(x1)
    grad_x2_padded = torch.zeros_like(x2_padded, dtype=acc_dtype)
    g = None
    for sample in _sample_slices(x1):
        for y0, y1 in _row_bands(x1):
            x1_band = x1[sample, :, y0:y1].to(acc_dtype)
            padded_rows = x2_padded[sample, :, y0 : y1 + 2 * d].to(acc_dtype)
            if recording or not exact:
                acc = torch.zeros_like(x1_band)
            else:
                acc = grad_x1[sample, :, y0:y1]
                acc.zero_()
            for oy in range(size):
                for ox in range(size):
                    # Broadcasting g over channels inside addcmul_ is slower on the CPU than
                    # one band-sized expanded copy (docs/benchmarks.md, "Speed work").
                    plane = grad[sample, oy * size + ox, y0:y1].unsqueeze(1).expand_as(x1_band)
                    if recording or g is None or g.shape != x1_band.shape:
                        g = plane.to(acc_dtype, memory_format=torch.contiguous_format, copy=True)
                    else:
                        g.copy_(plane)
                    columns = slice(ox, ox + width)
                    acc.addcmul_(g, padded_rows[:, :, oy : oy + y1 - y0, columns])
                    window = (sample, slice(None), slice(y0 + oy, y1 + oy), columns)
                    grad_x2_padded[window].addcmul_(g, x1_band)
            if not exact:
                grad_x1[sample, :, y0:y1] = acc.div_(channels)
            elif recording:
                grad_x1[sample, :, y0:y1] = acc
    grad_x2 = grad_x2_padded.div_(channels)[:, :, d : d + height, d : d + width]
    if not exact:
        return grad_x1, grad_x2.to(x2.dtype)
    return grad_x1.div_(channels), grad_x2


@torch.library.custom_op("dpdeblur::correlation", mutates_args=())
def _correlation_op(x1: Tensor, x2: Tensor, max_displacement: int) -> Tensor:
    return _correlation_forward(x1, x2, max_displacement)


@_correlation_op.register_kernel("cuda")
def _correlation_cuda(x1: Tensor, x2: Tensor, max_displacement: int) -> Tensor:
    """The CUDA implementation: the Triton kernel where it applies, else the loops."""
    if correlation_triton.supports(x1):
        return correlation_triton.correlation_forward(x1, x2, max_displacement)
    return _correlation_forward(x1, x2, max_displacement)


@_correlation_op.register_fake
def _(x1: Tensor, x2: Tensor, max_displacement: int) -> Tensor:
    batch, _, height, width = x1.shape
    return x1.new_empty(batch, (2 * max_displacement + 1) ** 2, height, width)


def _setup_context(ctx, inputs, output) -> None:
    x1, x2, max_displacement = inputs
    ctx.save_for_backward(x1, x2)
    ctx.max_displacement = max_displacement


def _backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
    x1, x2 = ctx.saved_tensors
    if correlation_triton.supports(x1) and not torch.is_grad_enabled():
        # The Triton kernels are not differentiable: double backward takes the loops.
        grad_x1, grad_x2 = correlation_triton.correlation_backward(
            grad, x1, x2, ctx.max_displacement
        )
    else:
        grad_x1, grad_x2 = _correlation_backward(grad, x1, x2, ctx.max_displacement)
    return (
        grad_x1 if ctx.needs_input_grad[0] else None,
        grad_x2 if ctx.needs_input_grad[1] else None,
        None,
    )


_correlation_op.register_autograd(_backward, setup_context=_setup_context)


def correlation(x1: Tensor, x2: Tensor, max_displacement: int = 4) -> Tensor:
    """Cost volume of ``x1`` against ``x2`` over a (2d+1)x(2d+1) window of displacements.

    Args:
        x1, x2: B x C x H x W feature maps of the same shape (mixed float dtypes, as under
            autocast, are promoted to the wider one).
        max_displacement: d; the window is (2d+1)^2 displacements.

    Returns:
        B x (2d+1)^2 x H x W, channel (dy + d) * (2d + 1) + (dx + d) for ``x2`` displaced by
        (dy, dx), each entry the mean over channels of the product.
    """
    if x1.dim() != 4 or x1.shape != x2.shape:
        raise ValueError(
            f"correlation needs two B x C x H x W inputs of the same shape, got "
            f"{tuple(x1.shape)} and {tuple(x2.shape)}"
        )
    d = int(max_displacement)
    if d < 0:
        raise ValueError(f"max_displacement must be >= 0, got {max_displacement}")
    if x1.dtype != x2.dtype:
        dtype = torch.promote_types(x1.dtype, x2.dtype)
        x1, x2 = x1.to(dtype), x2.to(dtype)
    return _correlation_op(x1, x2, d)


class Correlation(nn.Module):
    """Module wrapper of :func:`correlation` (no parameters)."""

    def __init__(self, max_displacement: int = 4):
        super().__init__()
        self.max_displacement = max_displacement

    @property
    def out_channels(self) -> int:
        return (2 * self.max_displacement + 1) ** 2

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        return correlation(x1, x2, self.max_displacement)

    def extra_repr(self) -> str:
        return f"max_displacement={self.max_displacement}"
