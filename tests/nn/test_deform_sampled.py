"""The sampled deformable conv: torchvision's operator to 1e-5, forward and every gradient."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import deform_conv2d

from dpdeblur.nn.deform import ModulatedDeformConv2d, resolve_dcn_implementation
from dpdeblur.nn.deform_sampled import sampled_deform_conv2d

NAMES = ("input", "offset", "mask", "weight", "bias")
# (kernel, stride, padding, dilation, input size)
GEOMETRIES = [
    ((3, 3), 1, 1, 1, (12, 14)),  # DPANet's
    ((3, 3), 2, 0, 2, (13, 11)),
    ((3, 5), 1, (1, 2), 1, (9, 10)),
]


def random_case(kernel, stride, padding, dilation, size, batch=2, channels=5, out=7, seed=0):
    """Inputs, with offsets of -6 to +6 pixels (many taps land outside the image) whose
    fractional part is in [0.05, 0.95] (no tap on an integer position, where the bilinear
    derivative jumps), and modulation in (0, 1)."""
    gen = torch.Generator().manual_seed(seed)
    kh, kw = kernel
    pad = (padding, padding) if isinstance(padding, int) else padding
    out_h = (size[0] + 2 * pad[0] - dilation * (kh - 1) - 1) // stride + 1
    out_w = (size[1] + 2 * pad[1] - dilation * (kw - 1) - 1) // stride + 1
    x = torch.randn(batch, channels, *size, generator=gen)
    offset_shape = (batch, 2 * kh * kw, out_h, out_w)
    whole = torch.randint(-6, 6, offset_shape, generator=gen).float()
    offset = whole + 0.05 + 0.9 * torch.rand(offset_shape, generator=gen)
    mask = torch.rand(batch, kh * kw, out_h, out_w, generator=gen)
    weight = torch.randn(out, channels, kh, kw, generator=gen)
    bias = torch.randn(out, generator=gen)
    return [t.requires_grad_() for t in (x, offset, mask, weight, bias)]


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "size"), GEOMETRIES)
def test_equals_torchvision_forward_and_backward(kernel, stride, padding, dilation, size):
    x, offset, mask, weight, bias = case = random_case(kernel, stride, padding, dilation, size)
    positions = offset.detach()
    assert (positions.frac().abs() >= 0.04).all() and (positions.abs() > 5).any()
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "mask": mask}
    expected = deform_conv2d(x, offset, weight, bias, **kwargs)
    got = sampled_deform_conv2d(x, offset, weight, bias, **kwargs)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    grad_out = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    expected_grads = torch.autograd.grad(expected, case, grad_out)
    got_grads = torch.autograd.grad(got, case, grad_out)
    for name, g, e in zip(NAMES, got_grads, expected_grads, strict=True):
        # 1e-5 of the gradient's scale: each entry sums up to hundreds of float32 products
        # (|grad| up to about 60 here), and either implementation is a few 1e-5 from the
        # float64 result; in float64 they agree to 1e-10 (the next test).
        scale = float(e.abs().max())
        torch.testing.assert_close(g, e, atol=1e-5 * scale, rtol=1e-5, msg=f"{name} gradient")


@pytest.mark.parametrize(("kernel", "stride", "padding", "dilation", "size"), GEOMETRIES)
def test_equals_torchvision_in_float64(kernel, stride, padding, dilation, size):
    """The same arithmetic: in float64 forward and gradients agree to rounding."""
    case = [
        t.detach().double().requires_grad_()
        for t in random_case(kernel, stride, padding, dilation, size)
    ]
    x, offset, mask, weight, bias = case
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "mask": mask}
    expected = deform_conv2d(x, offset, weight, bias, **kwargs)
    got = sampled_deform_conv2d(x, offset, weight, bias, **kwargs)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-10)
    grad_out = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1)).double()
    for g, e in zip(
        torch.autograd.grad(got, case, grad_out),
        torch.autograd.grad(expected, case, grad_out),
        strict=True,
    ):
        torch.testing.assert_close(g, e, atol=1e-10, rtol=1e-10)


def test_taps_outside_the_image_read_zero():
    x, offset, mask, weight, bias = random_case((3, 3), 1, 1, 1, (6, 6))
    far = torch.full_like(offset, 50.0)
    out = sampled_deform_conv2d(x, far, weight, bias, padding=1, mask=mask)
    torch.testing.assert_close(out, bias.detach()[None, :, None, None].expand_as(out))


def test_gradcheck_double():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 2, 5, 6, dtype=torch.float64, generator=gen)
    offset = (torch.rand(1, 18, 5, 6, dtype=torch.float64, generator=gen) - 0.5) * 5
    mask = torch.rand(1, 9, 5, 6, dtype=torch.float64, generator=gen)
    weight = torch.randn(3, 2, 3, 3, dtype=torch.float64, generator=gen)
    bias = torch.randn(3, dtype=torch.float64, generator=gen)
    inputs = [t.requires_grad_() for t in (x, offset, mask, weight, bias)]

    def run(x, offset, mask, weight, bias):
        return sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

    assert torch.autograd.gradcheck(run, inputs)


def test_channel_chunks_give_the_same_result():
    x, offset, mask, weight, bias = case = random_case((3, 3), 1, 1, 1, (9, 8), channels=10)
    whole = sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    budget = 3 * 9 * 9 * 8 * 4  # three channels' columns: four chunks
    chunked = sampled_deform_conv2d(
        x, offset, weight, bias, padding=1, mask=mask, max_column_bytes=budget
    )
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    grad_out = torch.randn(whole.shape, generator=torch.Generator().manual_seed(1))
    for g, e in zip(
        torch.autograd.grad(chunked, case, grad_out),
        torch.autograd.grad(whole, case, grad_out),
        strict=True,
    ):
        torch.testing.assert_close(g, e, atol=1e-5 * float(e.abs().max()), rtol=1e-5)


def test_only_some_inputs_need_gradients():
    x, offset, mask, weight, bias = random_case((3, 3), 1, 1, 1, (6, 7))
    expected = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    got = sampled_deform_conv2d(x.detach(), offset.detach(), weight, None, padding=1, mask=mask)
    (grad_w,) = torch.autograd.grad((expected - bias[:, None, None]).sum(), [weight])
    (got_w,) = torch.autograd.grad(got.sum(), [weight])
    torch.testing.assert_close(got_w, grad_w, atol=1e-5, rtol=1e-5)


def test_no_mask_is_a_unit_mask():
    x, offset, mask, weight, bias = random_case((3, 3), 1, 1, 1, (6, 7))
    ones = torch.ones_like(mask)
    torch.testing.assert_close(
        sampled_deform_conv2d(x, offset, weight, bias, padding=1),
        sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=ones),
    )


def test_channels_last_input():
    x, offset, mask, weight, bias = random_case((3, 3), 1, 1, 1, (8, 9))
    nhwc = x.detach().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(
        sampled_deform_conv2d(nhwc, offset, weight, bias, padding=1, mask=mask),
        deform_conv2d(x, offset, weight, bias, padding=1, mask=mask),
        atol=1e-5,
        rtol=1e-5,
    )


def test_bfloat16_autocast_multiplies_in_bfloat16_and_samples_in_float32():
    x, offset, mask, weight, bias = case = random_case((3, 3), 1, 1, 1, (10, 12))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    assert out.dtype == torch.bfloat16
    reference = deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    scale = reference.abs().max()
    assert (out.float() - reference).abs().max() < 0.02 * scale  # bf16 products only
    grads = torch.autograd.grad(out.float().sum(), case)
    expected = torch.autograd.grad(reference.sum(), case)
    for name, g, e, t in zip(NAMES, grads, expected, case, strict=True):
        assert g.dtype == t.dtype, name
        assert (g - e).abs().max() < 0.03 * e.abs().max(), name


def test_bad_shapes_are_refused():
    x, offset, mask, weight, bias = random_case((3, 3), 1, 1, 1, (6, 6))
    with pytest.raises(ValueError, match="one offset group"):
        sampled_deform_conv2d(x, torch.cat([offset, offset], 1), weight, bias, padding=1)
    with pytest.raises(ValueError, match="grouped"):
        sampled_deform_conv2d(x, offset, weight[:, :2], bias, padding=1, mask=mask)
    with pytest.raises(ValueError, match="mask"):
        sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask[:, :4])


def test_auto_is_sampled_on_the_cpu_and_torchvision_on_cuda():
    assert resolve_dcn_implementation("auto", torch.device("cpu")) == "sampled"
    assert resolve_dcn_implementation("auto", torch.device("cuda")) == "torchvision"
    assert resolve_dcn_implementation("torchvision", torch.device("cpu")) == "torchvision"
    with pytest.raises(ValueError, match="implementation"):
        ModulatedDeformConv2d(4, 4, implementation="cuda")


def test_module_implementations_agree_and_share_one_state_dict():
    torch.manual_seed(2)
    sampled = ModulatedDeformConv2d(6, 5, implementation="sampled")
    reference = ModulatedDeformConv2d(6, 5, implementation="torchvision")
    reference.load_state_dict(sampled.state_dict())
    assert sampled.state_dict().keys() == {"weight", "bias"}
    x, offset, mask, *_ = random_case((3, 3), 1, 1, 1, (7, 9), channels=6)
    torch.testing.assert_close(
        sampled(x, offset, mask), reference(x, offset, mask), atol=1e-5, rtol=1e-5
    )


def test_one_operator_for_flop_counters_and_compile():
    """``dpdeblur::deform_conv2d``: FLOP counters see the conv's MACs (out x C x k^2, as for
    torchvision's op), and ``torch.compile`` takes it whole (no graph break)."""
    x, offset, mask, weight, bias = (t.detach() for t in random_case((3, 3), 1, 1, 1, (6, 7)))
    counter = FlopCounterMode(display=False)
    with counter:
        out = sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)
    assert counter.get_total_flops() == 2 * out.numel() * 5 * 9

    def run(x, offset, mask):
        return sampled_deform_conv2d(x, offset, weight, bias, padding=1, mask=mask)

    compiled = torch.compile(run, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, offset, mask), out)
