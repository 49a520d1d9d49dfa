"""Modulated deformable conv and its offset/mask head."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dpdeblur.nn.deform import ModulatedDeformConv2d, OffsetMaskHead


def test_zero_offsets_and_unit_mask_equal_plain_conv():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv2d(4, 6, 3)
    with torch.no_grad():
        dcn.bias.normal_()
    x = torch.randn(2, 4, 9, 11)
    offset = torch.zeros(2, 18, 9, 11)
    mask = torch.ones(2, 9, 9, 11)
    expected = F.conv2d(x, dcn.weight, dcn.bias, padding=1)
    torch.testing.assert_close(dcn(x, offset, mask), expected, atol=1e-5, rtol=1e-5)


def test_offset_channel_order_is_dy_dx_pairs():
    """Offsets of (dy=0, dx=+1) at every tap equal a conv of the input shifted left by one."""
    torch.manual_seed(1)
    dcn = ModulatedDeformConv2d(3, 5, 3)
    x = torch.randn(1, 3, 8, 10)
    offset = torch.zeros(1, 18, 8, 10)
    offset[:, 1::2] = 1.0  # odd channels are dx
    mask = torch.ones(1, 9, 8, 10)
    # Tap k of output p reads x(p + p_k + (0, 1)): a valid conv over x zero padded by one
    # pixel, read one column further right.
    padded = F.pad(x, (1, 2, 1, 1))[..., 1:]
    expected = F.conv2d(padded, dcn.weight, dcn.bias)
    torch.testing.assert_close(dcn(x, offset, mask), expected, atol=1e-5, rtol=1e-5)


def test_mask_scales_the_sampled_values():
    torch.manual_seed(2)
    dcn = ModulatedDeformConv2d(2, 3, 3, bias=False)
    x = torch.randn(1, 2, 6, 6)
    offset = torch.zeros(1, 18, 6, 6)
    half = dcn(x, offset, torch.full((1, 9, 6, 6), 0.5))
    full = dcn(x, offset, torch.ones(1, 9, 6, 6))
    torch.testing.assert_close(half, 0.5 * full, atol=1e-6, rtol=1e-5)


def test_release_init_of_deform_weights():
    dcn = ModulatedDeformConv2d(16, 8, 3)
    bound = 1 / (16 * 9) ** 0.5
    assert dcn.weight.abs().max() <= bound
    assert torch.count_nonzero(dcn.bias) == 0


def test_head_splits_27_channels_into_offsets_and_sigmoid_mask():
    head = OffsetMaskHead(4, num_convs=1)
    conv = head.body[-1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.arange(27, dtype=torch.float32) - 13)
    offset, mask = head(torch.randn(2, 4, 5, 7))
    assert offset.shape == (2, 18, 5, 7) and mask.shape == (2, 9, 5, 7)
    bias = conv.bias.detach()
    torch.testing.assert_close(offset[0, :, 0, 0], bias[:18])  # cat(o1, o2)
    torch.testing.assert_close(mask[0, :, 0, 0], torch.sigmoid(bias[18:]))


def test_paper_init_gives_zero_offsets_and_half_mask():
    head = OffsetMaskHead(6, init="paper")
    offset, mask = head(torch.randn(1, 6, 5, 5))
    assert torch.count_nonzero(offset) == 0
    torch.testing.assert_close(mask, torch.full_like(mask, 0.5))


def test_release_init_is_pytorch_default():
    torch.manual_seed(3)
    head = OffsetMaskHead(6, init="release")
    offset, mask = head(torch.randn(1, 6, 5, 5))
    assert offset.abs().sum() > 0
    assert not torch.allclose(mask, torch.full_like(mask, 0.5))


def test_three_conv_head_for_ablation_4():
    head = OffsetMaskHead(12, num_convs=3, hidden_channels=5)
    convs = [m for m in head.body if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(12, 5), (5, 5), (5, 27)]
    offset, mask = head(torch.randn(1, 12, 6, 6))
    assert offset.shape[1] == 18 and mask.shape[1] == 9


def test_bad_head_arguments():
    with pytest.raises(ValueError, match="init"):
        OffsetMaskHead(4, init="zeros")
    with pytest.raises(ValueError, match="num_convs"):
        OffsetMaskHead(4, num_convs=0)


def test_gradients_reach_offsets_and_weights():
    torch.manual_seed(4)
    head = OffsetMaskHead(8)
    dcn = ModulatedDeformConv2d(4, 4, 3)
    features = torch.randn(1, 8, 7, 7)
    x = torch.randn(1, 4, 7, 7)
    offset, mask = head(features)
    dcn(x, offset, mask).square().mean().backward()
    for p in (*head.parameters(), *dcn.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("implementation", ["torchvision", "sampled"])
def test_channel_chunks_give_the_same_result(implementation):
    """Large inputs run in input-channel chunks (memory); the sum equals one call."""
    torch.manual_seed(5)
    dcn = ModulatedDeformConv2d(10, 6, 3, implementation=implementation)
    head = OffsetMaskHead(10)
    x = torch.randn(2, 10, 9, 11, requires_grad=True)
    offset, mask = head(x)
    whole = dcn(x, offset, mask)
    dcn.max_column_bytes = 2 * 9 * 9 * 11 * 4 * 3  # three channels' columns: four chunks
    chunked = dcn(x, offset, mask)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=1e-5)
    (grad_whole,) = torch.autograd.grad(whole.square().sum(), x, retain_graph=True)
    (grad_chunked,) = torch.autograd.grad(chunked.square().sum(), x)
    torch.testing.assert_close(grad_chunked, grad_whole, atol=1e-4, rtol=1e-4)


def test_autocast_bfloat16_runs_in_float32_and_returns_bfloat16():
    """torchvision's kernel (no bfloat16 version on the CPU); the sampled path's autocast
    test is in test_deform_sampled.py."""
    torch.manual_seed(6)
    dcn = ModulatedDeformConv2d(4, 4, 3, implementation="torchvision")
    head = OffsetMaskHead(4)
    x = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = torch.nn.functional.conv2d(x, torch.eye(4).view(4, 4, 1, 1))
        offset, mask = head(features)
        out = dcn(features, offset, mask)
    assert features.dtype == torch.bfloat16 and out.dtype == torch.bfloat16
    reference = dcn(features.float(), offset.float(), mask.float())
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0.05)
    out.float().sum().backward()
    assert dcn.weight.grad is not None and head.body[0].weight.grad is not None
