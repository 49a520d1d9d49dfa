"""Correlation layer: values against a naive loop, channel order, gradients, autocast."""

from __future__ import annotations

import pytest
import torch

import dpdeblur.nn.correlation as corr_module
from dpdeblur.hardware import cpu_peak_bytes
from dpdeblur.nn.correlation import Correlation, correlation


def naive_correlation(x1: torch.Tensor, x2: torch.Tensor, d: int) -> torch.Tensor:
    """Entry by entry: channel (dy+d)*(2d+1)+(dx+d) = mean_c x1[c,y,x] * x2[c,y+dy,x+dx]."""
    batch, channels, height, width = x1.shape
    size = 2 * d + 1
    out = torch.zeros(batch, size * size, height, width, dtype=x1.dtype)
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            k = (dy + d) * size + (dx + d)
            for y in range(height):
                for x in range(width):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < height and 0 <= xx < width:
                        out[:, k, y, x] = (x1[:, :, y, x] * x2[:, :, yy, xx]).sum(1) / channels
    return out


@pytest.fixture
def small_bands(monkeypatch):
    """Force bands of a couple of rows so the banded loops are exercised on tiny inputs."""
    monkeypatch.setattr(corr_module, "_CPU_BAND_BYTES", 64)


@pytest.mark.parametrize("d", [4, 2, 0])
def test_matches_naive_loop(d):
    gen = torch.Generator().manual_seed(d)
    x1 = torch.randn(2, 5, 11, 13, generator=gen)
    x2 = torch.randn(2, 5, 11, 13, generator=gen)
    out = correlation(x1, x2, d)
    assert out.shape == (2, (2 * d + 1) ** 2, 11, 13)
    torch.testing.assert_close(out, naive_correlation(x1, x2, d), atol=1e-5, rtol=1e-5)


def test_banded_loop_matches_naive(small_bands):
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(1, 3, 10, 7, generator=gen)
    x2 = torch.randn(1, 3, 10, 7, generator=gen)
    assert len(list(corr_module._row_bands(x1))) > 3
    torch.testing.assert_close(
        correlation(x1, x2, 4), naive_correlation(x1, x2, 4), atol=1e-5, rtol=1e-5
    )


def test_channel_order_is_dy_major():
    """A single bright pixel in x2 at (y+dy, x+dx) lights channel (dy+4)*9 + (dx+4) at (y, x)."""
    x1 = torch.zeros(1, 2, 12, 12)
    x1[:, :, 6, 5] = 1.0
    x2 = torch.zeros(1, 2, 12, 12)
    dy, dx = -3, 2
    x2[:, :, 6 + dy, 5 + dx] = 4.0
    out = correlation(x1, x2, 4)
    k = (dy + 4) * 9 + (dx + 4)
    assert out[0, k, 6, 5] == pytest.approx(4.0)  # mean over 2 channels of 1 * 4
    assert torch.count_nonzero(out) == 1


def test_zero_padding_at_borders():
    x = torch.ones(1, 3, 6, 6)
    out = correlation(x, x, 4)
    # Top-left pixel, displacement (-1, -1) reads outside the image: zero.
    assert out[0, 3 * 9 + 3, 0, 0] == 0
    assert out[0, 4 * 9 + 4, 0, 0] == pytest.approx(1.0)


def test_gradcheck_double():
    gen = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, 2, 6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    x2 = torch.randn(2, 2, 6, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, 2), (x1, x2))


def test_gradcheck_double_banded(small_bands):
    gen = torch.Generator().manual_seed(6)
    x1 = torch.randn(1, 2, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    x2 = torch.randn(1, 2, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert len(list(corr_module._row_bands(x1))) > 1
    assert torch.autograd.gradcheck(lambda a, b: correlation(a, b, 1), (x1, x2))


def test_gradgradcheck_double():
    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(1, 2, 5, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    x2 = torch.randn(1, 2, 5, 5, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: correlation(a, b, 1), (x1, x2))


def test_gradient_of_one_input_only():
    x1 = torch.randn(1, 3, 6, 6, requires_grad=True)
    x2 = torch.randn(1, 3, 6, 6)
    correlation(x1, x2).sum().backward()
    assert x1.grad is not None and torch.isfinite(x1.grad).all()


def test_autocast_bfloat16_close_to_float32():
    gen = torch.Generator().manual_seed(4)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(1, 3, 16, 16, generator=gen)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = conv(x)
        out = correlation(features, features)
    assert features.dtype == torch.bfloat16
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    reference = correlation(features.float(), features.float())
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)


def test_mixed_dtypes_are_promoted():
    x1 = torch.randn(1, 2, 5, 5)
    out = correlation(x1, x1.double())
    assert out.dtype == torch.float64


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        correlation(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))


def test_module_wrapper():
    layer = Correlation(max_displacement=3)
    assert layer.out_channels == 49
    x = torch.randn(1, 2, 8, 8)
    torch.testing.assert_close(layer(x, x), correlation(x, x, 3))


def test_is_one_operator_for_dispatch():
    """Registered as ``dpdeblur::correlation``, so per-op tools (FLOP counters) see it."""
    x = torch.randn(1, 2, 5, 5)
    torch.testing.assert_close(torch.ops.dpdeblur.correlation(x, x, 2), correlation(x, x, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(5)
    x1 = torch.randn(2, 8, 20, 24, generator=gen)
    x2 = torch.randn(2, 8, 20, 24, generator=gen)
    out = correlation(x1.cuda(), x2.cuda()).cpu()
    torch.testing.assert_close(out, correlation(x1, x2), atol=1e-5, rtol=1e-5)


def test_never_holds_the_shifted_copies_at_once():
    """Extra memory beyond the output is O(C x H x W): a padded copy and one product, not 81."""
    x1 = torch.randn(1, 32, 40, 48)
    x2 = torch.randn(1, 32, 40, 48)
    one_map = x1.numel() * x1.element_size()
    output = 81 * 40 * 48 * 4
    extra = cpu_peak_bytes(lambda: correlation(x1, x2)) - output
    assert extra < 3 * one_map  # the 81 shifted copies would be 81 * one_map


def test_float16_sum_over_channels_does_not_overflow():
    """Features of 16 over 256 channels: the channel sum (65,536) is above float16's largest
    value (65,504), the mean (256) is not; the sum runs in float32."""
    x = torch.full((1, 256, 6, 6), 16.0, dtype=torch.float16)
    out = correlation(x, x)
    assert out.dtype == torch.float16
    assert out[0, 40, 3, 3] == 256.0 and torch.isfinite(out).all()


@pytest.mark.parametrize("bands", [False, True])
def test_bfloat16_forward_and_backward_are_rounded_once(bands, monkeypatch):
    """In bfloat16 every output and gradient entry is within one rounding (2^-8, relative)
    of the exact value for the same bfloat16 inputs: the 81 displacements and the
    channels are summed in float32, not in bfloat16."""
    if bands:
        monkeypatch.setattr(corr_module, "_CPU_BAND_BYTES", 64)
    gen = torch.Generator().manual_seed(7)
    x1, x2 = (torch.randn(1, 32, 12, 12, generator=gen).bfloat16() for _ in range(2))
    grad = torch.randn(1, 81, 12, 12, generator=gen).bfloat16()
    exact_inputs = [x1.double().requires_grad_(), x2.double().requires_grad_()]
    exact_out = correlation(*exact_inputs)
    exact_grads = torch.autograd.grad(exact_out, exact_inputs, grad.double())
    inputs = [x1.clone().requires_grad_(), x2.clone().requires_grad_()]
    out = correlation(*inputs)
    grads = torch.autograd.grad(out, inputs, grad)
    for got, exact in zip((out, *grads), (exact_out, *exact_grads), strict=True):
        assert got.dtype == torch.bfloat16
        error = (got.double() - exact.detach()).abs()
        assert (error <= exact.detach().abs() * 2**-8 + 1e-30).all()
