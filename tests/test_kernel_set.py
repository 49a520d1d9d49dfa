"""K3DN building blocks: kernel set and Fourier deblur/reblur, invertible mixing, the
kernel query and deblur block, the two-signed cost volume, sharp-region preservation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dpdeblur.nn.disparity import (
    ConcatViewFeatures,
    DisparityFeatureEstimator,
    horizontal_cost_volume,
)
from dpdeblur.nn.invertible import InvertibleConv1x1, leaky_relu_inverse
from dpdeblur.nn.kernel_deblur import DisparityAwareDeblurBlock, KernelQuery
from dpdeblur.nn.kernel_set import (
    SymmetricKernelSet,
    floor_magnitude,
    fourier_deblur,
    fourier_reblur,
    kernel_transfer,
)
from dpdeblur.nn.sharp_region import SharpRegionPreservation


def _scrambled_set(symmetric: bool, num_kernels: int = 6) -> SymmetricKernelSet:
    """A kernel set with random spectra (far from its near-delta initialisation)."""
    kernel_set = SymmetricKernelSet(num_kernels, 9, 10, symmetric=symmetric)
    with torch.no_grad():
        kernel_set.spectrum.normal_()
    return kernel_set


# -- kernel set -----------------------------------------------------------------------------
def test_symmetric_kernels_are_exact_horizontal_mirrors():
    torch.manual_seed(0)
    kernels = _scrambled_set(symmetric=True).kernels()
    assert kernels.shape == (6, 9, 9)
    assert (kernels - kernels.flip(-1)).abs().max().item() == 0.0
    # not trivially so: the kernels are not vertically symmetric, nor constant
    assert (kernels - kernels.flip(-2)).abs().max().item() > 1e-3


def test_free_kernels_are_not_mirrors():
    torch.manual_seed(0)
    kernels = _scrambled_set(symmetric=False).kernels()
    assert (kernels - kernels.flip(-1)).abs().amax(dim=(-2, -1)).min().item() > 1e-3


def test_kernels_are_l2_normalised_and_start_near_a_centred_delta():
    torch.manual_seed(0)
    kernels = SymmetricKernelSet(4, 9, 10).kernels()
    torch.testing.assert_close(kernels.pow(2).sum(dim=(-2, -1)), torch.ones(4))
    assert (kernels[:, 4, 4] > 0.9).all()
    assert kernels.abs().flatten(1).topk(2).values[:, 1].max() < 0.3


def test_free_taps_are_the_half_kernel_when_symmetric():
    kernel_set = SymmetricKernelSet(3, 9, 10, symmetric=True)
    assert kernel_set.taps == 45
    assert kernel_set.free_taps().shape == (3, 45)
    assert SymmetricKernelSet(3, 9, 10, symmetric=False).free_taps().shape == (3, 81)


def test_kernel_set_rejects_bad_sizes():
    with pytest.raises(ValueError, match="odd"):
        SymmetricKernelSet(2, kernel_size=8)
    with pytest.raises(ValueError, match="spectrum_size"):
        SymmetricKernelSet(2, kernel_size=9, spectrum_size=7)
    with pytest.raises(ValueError, match="grid"):
        kernel_transfer(torch.zeros(1, 9, 9), 8, 16)


def test_kernel_gradient_reaches_the_stored_spectrum():
    kernel_set = _scrambled_set(symmetric=True)
    x = torch.randn(1, 6, 12, 16)
    fourier_deblur(x, kernel_set.transfer(12, 16, floor=0.1)).square().sum().backward()
    assert kernel_set.spectrum.grad is not None
    assert kernel_set.spectrum.grad.abs().sum() > 0


# -- Fourier deblur / reblur ----------------------------------------------------------------
@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_reblur_after_deblur_is_the_identity(floor):
    torch.manual_seed(1)
    kernel_set = SymmetricKernelSet(5, 9, 10, init_noise=0.2)  # well conditioned
    transfer = kernel_set.transfer(20, 28, floor)
    x = torch.randn(2, 5, 20, 28)
    restored = fourier_reblur(fourier_deblur(x, transfer), transfer)
    torch.testing.assert_close(restored, x, atol=1e-4, rtol=0)
    assert (fourier_deblur(x, transfer) - x).abs().max() > 1e-2  # the filter does something


def test_reblur_is_circular_convolution_with_the_kernel():
    torch.manual_seed(2)
    kernel_set = _scrambled_set(symmetric=True, num_kernels=3)
    kernels = kernel_set.kernels()
    x = torch.randn(1, 3, 16, 20)
    ours = fourier_reblur(x, kernel_set.transfer(16, 20, floor=0.0))
    padded = F.pad(x, (4, 4, 4, 4), mode="circular")
    # conv2d correlates; convolution flips the kernel (only vertically matters here)
    direct = F.conv2d(padded, kernels.flip(-2, -1)[:, None], groups=3)
    torch.testing.assert_close(ours, direct, atol=1e-5, rtol=1e-5)


def test_symmetric_kernels_make_the_deblur_commute_with_a_horizontal_flip():
    torch.manual_seed(3)
    x = torch.randn(1, 6, 16, 24)
    for symmetric, commutes in ((True, True), (False, False)):
        transfer = _scrambled_set(symmetric).transfer(16, 24, floor=0.1)
        gap = (fourier_deblur(x.flip(-1), transfer) - fourier_deblur(x, transfer).flip(-1)).abs()
        assert (gap.max().item() < 1e-4) == commutes


def test_floor_magnitude_raises_small_values_and_keeps_phase():
    values = torch.tensor([2 + 0j, 0.3j, 0.01 - 0.01j, 0j, -0.05 + 0j], dtype=torch.complex64)
    floored = floor_magnitude(values, 0.1)
    assert floored[0] == values[0] and floored[1] == values[1]  # above the floor: unchanged
    torch.testing.assert_close(floored.abs()[2:], torch.full((3,), 0.1))
    torch.testing.assert_close(torch.angle(floored[2]), torch.angle(values[2]))
    torch.testing.assert_close(floored[4], torch.tensor(-0.1 + 0j))
    torch.testing.assert_close(floored[3], torch.tensor(0.1 + 0j))
    assert torch.equal(floor_magnitude(values, 0.0), values)


def test_floored_deblur_gain_is_bounded():
    torch.manual_seed(4)
    transfer = _scrambled_set(symmetric=True).transfer(32, 32, floor=0.1)
    assert transfer.abs().min() >= 0.1 - 1e-6
    impulse = torch.zeros(1, 6, 32, 32)
    impulse[..., 0, 0] = 1.0
    response = fourier_deblur(impulse, transfer)
    assert response.pow(2).sum(dim=(-2, -1)).sqrt().max() <= 10.0 + 1e-3  # ||h|| <= 1/floor


# -- invertible channel mixing --------------------------------------------------------------
def test_invertible_conv_inverse_undoes_forward():
    torch.manual_seed(5)
    mix = InvertibleConv1x1(12)
    with torch.no_grad():  # move away from the rotation it starts as
        mix.lower.normal_(std=0.3)
        mix.upper.normal_(std=0.3)
        mix.log_s.normal_(std=0.3)
    weight = mix.weight()
    torch.testing.assert_close(mix.weight(inverse=True) @ weight, torch.eye(12), atol=1e-5, rtol=0)
    x = torch.randn(2, 12, 5, 7)
    torch.testing.assert_close(mix(mix(x), inverse=True), x, atol=1e-5, rtol=0)
    assert mix(x).sub(x).abs().max() > 0.1


def test_invertible_conv_starts_as_a_rotation_and_counts_glow_parameters():
    mix = InvertibleConv1x1(8)
    weight = mix.weight()
    torch.testing.assert_close(weight @ weight.T, torch.eye(8), atol=1e-5, rtol=0)
    assert sum(p.numel() for p in mix.parameters()) == 2 * 8 * 8 + 8


def test_leaky_relu_inverse():
    x = torch.linspace(-3, 3, 61)
    torch.testing.assert_close(leaky_relu_inverse(F.leaky_relu(x, 0.2), 0.2), x)


# -- kernel query and deblur block ----------------------------------------------------------
def test_query_weights_are_positive_mean_one_and_bounded():
    torch.manual_seed(6)
    query = KernelQuery(channels=10, style_dim=8, taps=45, logit_bound=1.5)
    style = 50 * torch.randn(3, 2, 2, 8)  # extreme vectors: the bound must hold
    weights = query(style, torch.randn(10, 45))
    assert weights.shape == (3, 2, 2, 10)
    torch.testing.assert_close(weights.mean(-1), torch.ones(3, 2, 2))
    assert weights.min() >= math.exp(-3.0) - 1e-6 and weights.max() <= math.exp(3.0) + 1e-6


def _block(channels: int = 8, **kwargs) -> DisparityAwareDeblurBlock:
    torch.manual_seed(7)
    block = DisparityAwareDeblurBlock(channels, style_dim=6, **kwargs)
    with torch.no_grad():
        block.query.tap_readout.normal_()
        block.kernel_set.spectrum.add_(0.2 * torch.randn_like(block.kernel_set.spectrum))
    return block


@pytest.mark.parametrize("symmetric", [True, False])
def test_block_core_inverse_undoes_core(symmetric):
    block = _block(symmetric=symmetric)
    x = torch.randn(2, 8, 18, 24)
    style = torch.randn(2, 2, 2, 6)
    y = block.core(x, style)
    assert (y - x).abs().max() > 1e-2
    torch.testing.assert_close(block.core_inverse(y, style), x, atol=1e-4, rtol=0)


def test_block_weights_act_per_window():
    block = _block()
    x = torch.randn(1, 8, 16, 24)
    style = torch.randn(1, 2, 3, 6)
    changed = style.clone()
    changed[0, 1, 2] += 1.0  # window in grid row 1, column 2: rows 8..15, columns 16..23
    diff = (block.core(x, style) - block.core(x, changed)).abs().amax(dim=(0, 1))
    assert diff[8:, 16:].min() > 0
    diff[8:, 16:] = 0
    assert diff.max() == 0


def test_block_reverse_is_not_the_deblur_inverse_but_keeps_shape():
    block = _block()
    x = torch.randn(1, 8, 16, 16)
    style = torch.randn(1, 1, 1, 6)
    y = block(x, style)
    back = block.reverse(y, style)
    assert back.shape == x.shape and torch.isfinite(back).all()


def test_block_shares_a_smaller_kernel_set_across_channels():
    block = _block(channels=8, kernel_set_size=2)
    assert block.kernel_set.num_kernels == 2
    transfer, _ = block.operators(torch.zeros(1, 8, 16, 16), torch.zeros(1, 1, 1, 6))
    torch.testing.assert_close(transfer[0], transfer[2])
    assert not torch.allclose(transfer[0], transfer[1])


def test_block_rejects_a_grid_that_does_not_tile():
    with pytest.raises(ValueError, match="tile"):
        _block().core(torch.zeros(1, 8, 16, 16), torch.zeros(1, 3, 1, 6))


# -- disparity features ---------------------------------------------------------------------
def test_cost_volume_covers_both_signs_with_documented_convention():
    torch.manual_seed(8)
    left = torch.randn(1, 4, 5, 12)
    for shift in (-2, 1, 3):
        # right sees left's content moved left by `shift`: right[x] = left[x + shift]
        right = torch.roll(left, shifts=-shift, dims=-1)
        volume = horizontal_cost_volume(left, right, max_shift=3)
        assert volume.shape == (1, 8, 7, 5, 12)
        plane = volume[:, 4:, shift + 3]
        valid = slice(max(shift, 0), 12 + min(shift, 0))
        torch.testing.assert_close(plane[..., valid], left[..., valid])
        torch.testing.assert_close(volume[:, :4, shift + 3], left)
        others = [d for d in range(-3, 4) if d != shift]
        for d in others:
            assert not torch.allclose(volume[:, 4:, d + 3][..., 3:9], left[..., 3:9])


@pytest.mark.parametrize("estimator_cls", [DisparityFeatureEstimator, ConcatViewFeatures])
def test_disparity_vectors_one_per_window(estimator_cls):
    torch.manual_seed(9)
    estimator = estimator_cls(out_dim=12, channels=4)
    left, right = torch.rand(2, 3, 64, 96), torch.rand(2, 3, 64, 96)
    vectors = estimator(left, right, (2, 3))
    assert vectors.shape == (2, 2, 3, 12)
    swapped = estimator(right, left, (2, 3))
    assert not torch.allclose(vectors, swapped)  # views are not interchangeable


# -- sharp-region preservation --------------------------------------------------------------
def test_sharp_region_block_starts_as_concatenation_then_learns():
    torch.manual_seed(10)
    block = SharpRegionPreservation(3, 5, num_res=1)
    skip, up = torch.randn(2, 3, 12, 12), torch.randn(2, 5, 12, 12)
    concatenated = torch.cat([skip, up], dim=1)
    assert torch.equal(block(skip, up), concatenated)
    block(skip, up).square().sum().backward()
    assert block.fuse[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        block.fuse[-1].weight.normal_(std=0.1)
    assert not torch.allclose(block(skip, up), concatenated)


def test_sharp_region_gate_reads_the_local_correlation():
    torch.manual_seed(11)
    block = SharpRegionPreservation(2, 2, num_res=1, max_displacement=2)
    assert block.gate.in_channels == 25
    with torch.no_grad():
        block.fuse[-1].weight.normal_(std=0.1)
    skip, up = torch.randn(1, 2, 10, 10), torch.randn(1, 2, 10, 10)
    base = block(skip, up)
    with torch.no_grad():
        block.key.weight.mul_(2.0)  # the key only matters through the correlation
    assert not torch.allclose(block(skip, up), base)
