"""Modulated deformable convolution (DCNv2) as bilinear sampling of the taps and one matrix
product: the same operator as ``torchvision.ops.deform_conv2d(..., mask=...)``, on torch's
own multi-threaded kernels.

For output pixel ``p`` and kernel tap ``k`` (``K = kh kw`` taps, row-major), DCNv2 reads the
input at ``p_0 + p_k + dp_k(p)``, where ``p_0 = p * stride - padding``, ``p_k`` is the tap's
place in the (dilated) kernel and ``dp_k = (offset[2k], offset[2k + 1])`` = (dy, dx) its
learnt offset, bilinearly interpolated with zeros outside the image, scales it by the
modulation ``m_k(p) = mask[k]`` and sums ``y(p) = b + sum_k sum_c w[:, c, k] m_k(p)
x_c(p_0 + p_k + dp_k(p))`` (paper ref. [41], eq. (9) of DPANet).

Here the taps are sampled by ``F.grid_sample`` (bilinear, zero padding, which weights the
four neighbours exactly as torchvision's kernel does, corners outside the image counting
zero), one "image" per tap: the input of one sample, expanded (not copied) K times, against
the K tap grids. That gives the K x C x (Ho Wo) column matrix, which is scaled by the mask
and multiplied by the weight reordered to O x (K C). ``grid_sample``'s CPU kernels share
out the images of a batch between threads (never the pixels of one image), so the K tap
images are what lets both passes use the cores (up to K = 9 threads); torchvision's CPU
kernel (im2col, col2im and the offset gradient) runs on one.

The backward pass recomputes the columns instead of saving them (as torchvision does), so
training holds no more than the inputs. The operator is registered as
``dpdeblur::deform_conv2d`` (one operator for FLOP counters and ``torch.compile``); it is
not twice differentiable (nor is torchvision's). The input, the grid and the mask are sampled in
float32 (float64 inputs stay float64): sampling positions in bfloat16 would be off by up
to a pixel at 256. The matrix products run in autocast's dtype when autocast is on (else
the input's), and the output has that dtype. Large inputs are sampled in channel chunks of
at most ``max_column_bytes`` of columns (the operator is linear in the input channels).

One offset group and one weight group (DPANet's case) are supported. On CUDA, the backward
pass of ``grid_sample`` accumulates with atomics, like torchvision's kernel: neither is
deterministic (``trainer.deterministic: warn``, see :mod:`dpdeblur.nn.deform`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from dpdeblur.nn.precision import autocast_dtype, autocast_off, wide_dtype

DEFAULT_MAX_COLUMN_BYTES = 1 << 30


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def sampling_grid(
    offset: Tensor,
    input_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> Tensor:
    """``grid_sample`` coordinates (x, y), ``align_corners=False``, of every tap: B x K x Ho
    x Wo x 2, in ``offset``'s dtype, from offsets B x 2K x Ho x Wo ((dy, dx) per tap)."""
    batch, _, out_h, out_w = offset.shape
    kh, kw = kernel_size
    height, width = input_size
    options = {"device": offset.device, "dtype": offset.dtype}
    pairs = offset.reshape(batch, kh * kw, 2, out_h, out_w)
    tap_y = (torch.arange(kh, **options) * dilation[0]).repeat_interleave(kw)
    tap_x = (torch.arange(kw, **options) * dilation[1]).repeat(kh)
    row = torch.arange(out_h, **options) * stride[0] - padding[0]
    col = torch.arange(out_w, **options) * stride[1] - padding[1]
    y = pairs[:, :, 0] + (row[None, :, None] + tap_y[:, None, None])
    x = pairs[:, :, 1] + (col[None, None, :] + tap_x[:, None, None])
    return torch.stack(((2 * x + 1) / width - 1, (2 * y + 1) / height - 1), dim=-1)


def _sample(x: Tensor, grid: Tensor) -> Tensor:
    """Columns K x C x Ho x Wo of one sample ``x`` (1 x C x H x W) at ``grid`` (K x Ho x Wo
    x 2): the sample expanded to K images, one per tap."""
    taps = grid.shape[0]
    expanded = x.expand(taps, *x.shape[1:])
    return F.grid_sample(expanded, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _channel_chunks(channels: int, taps: int, pixels: int, element: int, budget: int):
    """(start, stop) input-channel ranges whose columns fit ``budget`` bytes each."""
    per_channel = max(1, taps * pixels * element)
    step = max(1, min(channels, budget // per_channel))
    for start in range(0, channels, step):
        yield start, min(channels, start + step)


def _tap_major(weight: Tensor) -> Tensor:
    """O x C x kh x kw -> O x K x C (the columns' order: tap-major)."""
    out_channels, channels = weight.shape[:2]
    return weight.reshape(out_channels, channels, -1).transpose(1, 2)


def _prepare(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor, geometry: tuple):
    """What the forward and backward passes both start from: the sizes, the sampling
    dtype (float32 at least), the taps' sampling grid, the input and the modulation in
    that dtype, and the bytes of one sampled element."""
    stride, padding, dilation = geometry
    batch, channels, height, width = x.shape
    kh, kw = weight.shape[-2:]
    taps, pixels = kh * kw, offset.shape[-2] * offset.shape[-1]
    dtype = wide_dtype(x.dtype)
    grid = sampling_grid(offset.to(dtype), (height, width), (kh, kw), stride, padding, dilation)
    xs, modulation = x.to(dtype), mask.to(dtype).reshape(batch, taps, 1, pixels)
    element = torch.finfo(dtype).bits // 8
    return batch, channels, taps, pixels, dtype, grid, xs, modulation, element


def _forward(x, offset, mask, weight, bias, geometry, compute_dtype, max_column_bytes):
    batch, channels, taps, pixels, _, grid, xs, modulation, element = _prepare(
        x, offset, mask, weight, geometry
    )
    out_channels = weight.shape[0]
    out_h, out_w = offset.shape[-2:]
    taps_weight = _tap_major(weight).to(compute_dtype)
    out = x.new_empty(batch, out_channels, pixels, dtype=compute_dtype)
    for b in range(batch):
        chunks = _channel_chunks(channels, taps, pixels, element, max_column_bytes)
        for first, (start, stop) in enumerate(chunks):
            columns = _sample(xs[b : b + 1, start:stop], grid[b]).reshape(taps, stop - start, -1)
            columns.mul_(modulation[b])
            columns = columns.reshape(-1, pixels).to(compute_dtype)
            part = taps_weight[:, :, start:stop].reshape(out_channels, -1)
            if first == 0:
                torch.mm(part, columns, out=out[b])
            else:
                out[b].addmm_(part, columns)
    if bias is not None:
        out += bias.to(compute_dtype)[:, None]
    return out.reshape(batch, out_channels, out_h, out_w)


def _backward(grad, x, offset, mask, weight, bias_dtype, geometry, compute, budget, needs):
    needs_x, needs_offset, needs_mask, needs_weight, needs_bias = needs
    batch, channels, taps, pixels, dtype, grid, xs, modulation, element = _prepare(
        x, offset, mask, weight, geometry
    )
    height, width = x.shape[-2:]
    out_channels = weight.shape[0]
    taps_weight = _tap_major(weight).to(compute)
    grad = grad.to(compute).reshape(batch, out_channels, pixels)
    sampling = needs_x or needs_offset
    grad_x = torch.zeros_like(xs) if needs_x else None
    grad_grid = torch.zeros_like(grid) if needs_offset else None
    grad_mask = xs.new_zeros(batch, taps, pixels) if needs_mask else None
    grad_weight = xs.new_zeros(out_channels, taps, channels) if needs_weight else None
    for b in range(batch):
        for start, stop in _channel_chunks(channels, taps, pixels, element, budget):
            with torch.enable_grad():
                leaf = xs[b : b + 1, start:stop].detach().requires_grad_(needs_x)
                where = grid[b].detach().requires_grad_(needs_offset)
                columns = _sample(leaf, where)
            raw = columns.detach().reshape(taps, stop - start, pixels)
            part = taps_weight[:, :, start:stop].reshape(out_channels, -1)
            grad_columns = torch.mm(part.t(), grad[b]).to(dtype).reshape(raw.shape)
            if needs_mask:
                grad_mask[b] += (grad_columns * raw).sum(1)
            if needs_weight:
                # In place: grid_sample's backward keeps its inputs, not these columns.
                masked = raw.mul_(modulation[b]).reshape(-1, pixels).to(compute)
                product = torch.mm(grad[b], masked.t()).to(dtype)
                grad_weight[:, :, start:stop] += product.reshape(out_channels, taps, -1)
            if not sampling:
                continue
            grad_columns.mul_(modulation[b])
            inputs = [t for t, need in ((leaf, needs_x), (where, needs_offset)) if need]
            results = iter(torch.autograd.grad(columns, inputs, grad_columns.view_as(columns)))
            if needs_x:
                grad_x[b, start:stop] = next(results)[0]
            if needs_offset:
                grad_grid[b] += next(results)
    grad_offset = None
    if needs_offset:
        dy = grad_grid[..., 1] * (2.0 / height)
        dx = grad_grid[..., 0] * (2.0 / width)
        grad_offset = torch.stack((dy, dx), dim=2).reshape(offset.shape).to(offset.dtype)
    return (
        None if grad_x is None else grad_x.to(x.dtype),
        grad_offset,
        None if grad_mask is None else grad_mask.reshape(mask.shape).to(mask.dtype),
        None
        if grad_weight is None
        else grad_weight.transpose(1, 2).reshape(weight.shape).to(weight.dtype),
        grad.sum((0, 2), dtype=dtype).to(bias_dtype)
        if bias_dtype is not None and needs_bias
        else None,
    )


# -- the operator ------------------------------------------------------------------------
# Registered with ``torch.library``, as the correlation is: one operator for per-operator
# tools (FLOP counters, autocast audits) and an opaque node with a shape function for
# ``torch.compile``.


@torch.library.custom_op("dpdeblur::deform_conv2d", mutates_args=())
def _deform_conv2d_op(
    x: Tensor,
    offset: Tensor,
    mask: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    compute_dtype: torch.dtype,
    max_column_bytes: int,
) -> Tensor:
    geometry = (tuple(stride), tuple(padding), tuple(dilation))
    with autocast_off(x.device.type), torch.no_grad():
        return _forward(x, offset, mask, weight, bias, geometry, compute_dtype, max_column_bytes)


@_deform_conv2d_op.register_fake
def _(x, offset, mask, weight, bias, stride, padding, dilation, compute_dtype, max_column_bytes):
    batch, _, out_h, out_w = offset.shape
    return x.new_empty(batch, weight.shape[0], out_h, out_w, dtype=compute_dtype)


def _setup_context(ctx, inputs, output) -> None:
    x, offset, mask, weight, bias, stride, padding, dilation, compute_dtype, budget = inputs
    ctx.save_for_backward(x, offset, mask, weight)
    ctx.bias_dtype = None if bias is None else bias.dtype
    ctx.geometry = (tuple(stride), tuple(padding), tuple(dilation))
    ctx.compute_dtype = compute_dtype
    ctx.max_column_bytes = budget


def _backward_op(ctx, grad: Tensor):
    x, offset, mask, weight = ctx.saved_tensors
    with autocast_off(x.device.type), torch.no_grad():
        grads = _backward(
            grad,
            x,
            offset,
            mask,
            weight,
            ctx.bias_dtype,
            ctx.geometry,
            ctx.compute_dtype,
            ctx.max_column_bytes,
            ctx.needs_input_grad[:5],
        )
    return (*grads, None, None, None, None, None)


_deform_conv2d_op.register_autograd(_backward_op, setup_context=_setup_context)


def _deform_conv2d_flops(
    x_shape, offset_shape, mask_shape, weight_shape, *args, out_shape=None, **kwargs
) -> int:
    """FLOPs (2 x MACs) for ``torch.utils.flop_counter``: the conv of the sampled values,
    as for torchvision's operator (the sampling itself is not counted)."""
    _, channels, kh, kw = weight_shape
    return 2 * math.prod(out_shape) * channels * kh * kw


register_flop_formula(torch.ops.dpdeblur.deform_conv2d)(_deform_conv2d_flops)


def sampled_deform_conv2d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    mask: Tensor | None = None,
    max_column_bytes: int = DEFAULT_MAX_COLUMN_BYTES,
) -> Tensor:
    """``torchvision.ops.deform_conv2d`` (same arguments and layouts) by bilinear sampling
    and one matrix product; see the module docstring.

    Args:
        input: B x C x H x W.
        offset: B x 2K x Ho x Wo, (dy, dx) per tap; one offset group.
        weight: O x C x kh x kw (one group).
        bias: O, or ``None``.
        mask: B x K x Ho x Wo modulation scalars (``None``: all 1, DCNv1).
        max_column_bytes: largest column matrix sampled at once (per sample).

    Returns:
        B x O x Ho x Wo, in autocast's dtype under autocast, else the input's.
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if input.dim() != 4 or offset.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"deformable conv needs 4-D input, offset and weight, got {tuple(input.shape)}, "
            f"{tuple(offset.shape)} and {tuple(weight.shape)}"
        )
    batch, channels, height, width = input.shape
    kh, kw = weight.shape[-2:]
    taps = kh * kw
    if weight.shape[1] != channels:
        raise ValueError(
            f"weight {tuple(weight.shape)} needs {weight.shape[1]} input channels, got "
            f"{channels} (grouped deformable convs are not supported here)"
        )
    out_h = (height + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (width + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if tuple(offset.shape) != (batch, 2 * taps, out_h, out_w):
        raise ValueError(
            f"offset must be {(batch, 2 * taps, out_h, out_w)} (one offset group), got "
            f"{tuple(offset.shape)}"
        )
    if mask is None:
        mask = offset.new_ones(batch, taps, out_h, out_w)
    elif tuple(mask.shape) != (batch, taps, out_h, out_w):
        raise ValueError(f"mask must be {(batch, taps, out_h, out_w)}, got {tuple(mask.shape)}")
    return _deform_conv2d_op(
        input,
        offset,
        mask,
        weight,
        bias,
        list(stride),
        list(padding),
        list(dilation),
        autocast_dtype(input),
        int(max_column_bytes),
    )
