"""K3DN building blocks: the spectral kernel set (the release's transform, crop, mirror and
normalisation; the backend-independent symmetrisation), the inverse-filter option's Fourier
filters, the channel weights and invertible mixing, the deblur block (per-window
correlation, reverse form), the one-sided cost volume and the sharp-region block."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dpdeblur.nn.disparity import DisparityBranch, cost_volume, volume_shifts
from dpdeblur.nn.invertible import ModulatedInvertibleConv1x1
from dpdeblur.nn.kernel_deblur import DisparityAwareDeblurBlock
from dpdeblur.nn.kernel_set import (
    SymmetricKernelSet,
    floor_magnitude,
    fourier_deblur,
    fourier_reblur,
    hermitian_columns,
    kernel_transfer,
)
from dpdeblur.nn.sharp_region import SharpRegionPreservation


def _kernel_set(symmetric: bool = True, num_kernels: int = 6) -> SymmetricKernelSet:
    torch.manual_seed(0)
    return SymmetricKernelSet(num_kernels, 9, 10, symmetric=symmetric)


# -- kernel set -----------------------------------------------------------------------------
def test_kernels_follow_the_written_out_transform_crop_mirror_and_norm():
    """R[r, s] = 1/100 sum_v alpha_v Re(Z[r, v] e^{2 pi i v s / 10}), Z the complex inverse
    DFT along u (no 1/10); K[r, s] = R[r, 4 - |s - 4|]; K / sqrt(sum K^2 + 1e-8)."""
    kernel_set = _kernel_set(num_kernels=3)
    spectrum = kernel_set.spectrum().to(torch.complex128)
    u = torch.arange(10, dtype=torch.float64)
    phase_u = torch.exp(2j * math.pi * u[:, None] * u[None, :] / 10)  # [r, u]
    z = torch.einsum("ru,cuv->crv", phase_u, spectrum)
    alpha = torch.tensor([1, 2, 2, 2, 2, 1], dtype=torch.float64)
    v = torch.arange(6, dtype=torch.float64)
    phase_v = torch.exp(2j * math.pi * v[:, None] * u[None, :] / 10)  # [v, s]
    r = torch.einsum("crv,vs->crs", z * alpha, phase_v).real / 100
    k = r[:, :9][..., [4 - abs(s - 4) for s in range(9)]]
    k = k / torch.sqrt(k.pow(2).sum(dim=(-2, -1), keepdim=True) + 1e-8)
    torch.testing.assert_close(kernel_set.kernels().double(), k, atol=1e-6, rtol=0)


def test_hermitian_symmetrisation_leaves_the_cpu_transform_unchanged():
    spectrum = _kernel_set().spectrum()
    assert not torch.allclose(hermitian_columns(spectrum), spectrum)  # not Hermitian before
    raw = torch.fft.irfft2(spectrum, s=(10, 10))
    torch.testing.assert_close(torch.fft.irfft2(hermitian_columns(spectrum), s=(10, 10)), raw)
    symmetric = hermitian_columns(spectrum)
    torch.testing.assert_close(hermitian_columns(symmetric), symmetric)


def test_symmetric_kernels_are_exact_horizontal_mirrors_and_free_ones_are_not():
    kernels = _kernel_set(symmetric=True).kernels()
    assert kernels.shape == (6, 9, 9)
    assert (kernels - kernels.flip(-1)).abs().max().item() == 0.0
    assert (kernels - kernels.flip(-2)).abs().max().item() > 1e-3
    free = _kernel_set(symmetric=False).kernels()
    assert (free - free.flip(-1)).abs().amax(dim=(-2, -1)).min().item() > 1e-3


def test_kernels_are_normalised_and_the_reciprocal_kernel_differs():
    kernel_set = _kernel_set()
    torch.testing.assert_close(kernel_set.kernels().pow(2).sum(dim=(-2, -1)), torch.ones(6))
    reverse = kernel_set.kernels(reciprocal=True)
    torch.testing.assert_close(reverse.pow(2).sum(dim=(-2, -1)), torch.ones(6))
    assert (reverse - reverse.flip(-1)).abs().max().item() == 0.0
    assert not torch.allclose(reverse, kernel_set.kernels(), atol=1e-2)


def test_free_taps_are_the_left_half_when_symmetric():
    assert SymmetricKernelSet(3, 9, 10).taps == 45
    assert SymmetricKernelSet(3, 9, 10).free_taps().shape == (3, 45)
    assert SymmetricKernelSet(3, 9, 10, symmetric=False).free_taps().shape == (3, 81)
    assert SymmetricKernelSet(192).weight.shape == (1, 192, 1, 10, 6, 2)


def test_kernel_set_rejects_bad_sizes():
    with pytest.raises(ValueError, match="odd"):
        SymmetricKernelSet(2, kernel_size=8)
    with pytest.raises(ValueError, match="spectrum_size"):
        SymmetricKernelSet(2, kernel_size=9, spectrum_size=7)
    with pytest.raises(ValueError, match="grid"):
        kernel_transfer(torch.zeros(1, 9, 9), 8, 16)


def test_kernel_gradient_reaches_the_stored_spectrum():
    kernel_set = _kernel_set()
    (kernel_set.kernels() * torch.randn(6, 9, 9)).sum().backward()
    assert kernel_set.weight.grad is not None and kernel_set.weight.grad.abs().sum() > 0


def test_spectrum_reads_a_parameter_of_any_strides():
    """A parameter placed in a flat buffer at an odd offset (FSDP/DDP buckets, a converted
    checkpoint; ``view_as_complex`` refused it) or re-strided: the spectrum is the same."""
    kernel_set = _kernel_set()
    expected = kernel_set.kernels()
    weight = kernel_set.weight.detach().clone()
    flat = torch.zeros(weight.numel() + 1)
    flat[1:] = weight.flatten()
    kernel_set.weight.data = flat[1:].view(weight.shape)
    assert kernel_set.weight.storage_offset() % 2 == 1
    torch.testing.assert_close(kernel_set.kernels(), expected)
    kernel_set.weight.data = weight.movedim(-1, 0).contiguous().movedim(0, -1)
    assert kernel_set.weight.stride(-1) != 1
    torch.testing.assert_close(kernel_set.kernels(), expected)


# -- Fourier filters of the inverse-filter option -------------------------------------------
@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_reblur_after_deblur_is_the_identity(floor):
    kernel_set = _kernel_set(num_kernels=5)
    transfer = kernel_transfer(kernel_set.kernels().detach(), 20, 28, floor)
    x = torch.randn(2, 5, 20, 28)
    restored = fourier_reblur(fourier_deblur(x, transfer), transfer)
    torch.testing.assert_close(restored, x, atol=1e-3, rtol=1e-3)
    assert (fourier_deblur(x, transfer) - x).abs().max() > 1e-2


def test_fourier_reblur_is_the_circular_correlation_with_the_kernel():
    kernels = _kernel_set(num_kernels=3).kernels().detach()
    x = torch.randn(1, 3, 16, 20)
    ours = fourier_reblur(x, kernel_transfer(kernels, 16, 20))
    direct = F.conv2d(F.pad(x, (4, 4, 4, 4), mode="circular"), kernels[:, None], groups=3)
    torch.testing.assert_close(ours, direct, atol=1e-5, rtol=1e-5)


def test_floor_magnitude_raises_small_values_and_keeps_phase():
    values = torch.tensor([2 + 0j, 0.3j, 0.01 - 0.01j, 0j, -0.05 + 0j], dtype=torch.complex64)
    floored = floor_magnitude(values, 0.1)
    assert floored[0] == values[0] and floored[1] == values[1]
    torch.testing.assert_close(floored.abs()[2:], torch.full((3,), 0.1))
    torch.testing.assert_close(torch.angle(floored[2]), torch.angle(values[2]))
    torch.testing.assert_close(floored[4], torch.tensor(-0.1 + 0j))
    torch.testing.assert_close(floored[3], torch.tensor(0.1 + 0j))
    assert torch.equal(floor_magnitude(values, 0.0), values)


# -- channel weights and invertible mixing --------------------------------------------------
def test_mixing_inverse_undoes_forward_and_starts_as_a_rotation():
    torch.manual_seed(5)
    mix = ModulatedInvertibleConv1x1(12, style_dim=6)
    matrix = mix.matrix()
    torch.testing.assert_close(matrix @ matrix.T, torch.eye(12), atol=1e-5, rtol=0)
    with torch.no_grad():
        mix.lower.normal_(std=0.3)
        mix.upper.normal_(std=0.3)
        mix.log_s.normal_(std=0.3)
    torch.testing.assert_close(
        mix.matrix(inverse=True) @ mix.matrix(), torch.eye(12), atol=1e-5, rtol=0
    )
    names = [name for name, _ in mix.state_dict().items()]
    assert names == [
        "lower",
        "log_s",
        "upper",
        "p",
        "sign_s",
        "modulation.weight",
        "modulation.bias",
    ]


def test_softmax_weights_sum_to_one_and_reverse_weights_are_unit_norm():
    torch.manual_seed(6)
    mix = ModulatedInvertibleConv1x1(10, style_dim=16)
    weights = mix.channel_weights(torch.randn(3, 16))
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    reverse = mix.reverse_weights(weights)
    torch.testing.assert_close(reverse.norm(dim=-1), torch.ones(3))
    assert reverse.max() <= 1.0
    # where 1/a <= 100 the reverse undoes the forward up to one factor per window
    x = torch.randn(3, 10, 4, 5)
    flat = torch.full((3, 10), 0.1)
    back = mix.inverse(mix(x, flat), flat)
    torch.testing.assert_close(back * math.sqrt(10) * 10, x, atol=1e-4, rtol=1e-4)


def test_bounded_weights_are_mean_one_and_invert_exactly():
    torch.manual_seed(6)
    mix = ModulatedInvertibleConv1x1(10, style_dim=8, weights="bounded", logit_bound=1.5)
    weights = mix.channel_weights(50 * torch.randn(4, 8))
    torch.testing.assert_close(weights.mean(-1), torch.ones(4))
    assert weights.min() >= math.exp(-3.0) - 1e-6 and weights.max() <= math.exp(3.0) + 1e-6
    x = torch.randn(4, 10, 3, 3)
    torch.testing.assert_close(mix.inverse(mix(x, weights), weights), x, atol=1e-4, rtol=1e-4)


# -- deblur block ---------------------------------------------------------------------------
def _block(channels: int = 8, **kwargs) -> DisparityAwareDeblurBlock:
    torch.manual_seed(7)
    block = DisparityAwareDeblurBlock(channels, style_dim=6, **kwargs)
    with torch.no_grad():
        block.inter.to_w.normal_()
    return block


def test_block_is_the_release_formula_with_zero_window_borders():
    block = _block()
    x, style = torch.randn(3, 8, 18, 14), torch.randn(3, 6)
    kernels = block.conv1.kernels()
    weights = block.channel_weights(style)
    filtered = torch.zeros_like(x)
    padded = F.pad(x, (4, 4, 4, 4))
    for r in range(9):
        for s in range(9):
            filtered += kernels[:, r, s][None, :, None, None] * padded[..., r : r + 18, s : s + 14]
    inner = weights[:, :, None, None] * F.leaky_relu(filtered, 0.2)
    mixed = torch.einsum("oc,nchw->nohw", block.conv2.matrix(), inner)
    torch.testing.assert_close(block(x, style), F.leaky_relu(mixed, 0.2) + x, atol=1e-5, rtol=0)


def test_block_windows_are_independent():
    block = _block()
    x, style = torch.randn(2, 8, 18, 14), torch.randn(2, 6)
    changed = style.clone()
    changed[1] += 1.0
    y, z = block(x, style), block(x, changed)
    assert torch.equal(y[0], z[0]) and not torch.allclose(y[1], z[1])


@pytest.mark.parametrize("deblur", ["correlation", "inverse_filter"])
def test_block_reverse_keeps_shape_and_differs_by_kernel(deblur):
    block = _block(deblur=deblur, residual_gain=0.5 if deblur == "inverse_filter" else None)
    x, style = torch.randn(2, 8, 18, 14), torch.randn(2, 6)
    back = block.reverse(block(x, style), style)
    assert back.shape == x.shape and torch.isfinite(back).all()
    if deblur == "correlation":
        assert not torch.allclose(back, block.reverse(block(x, style), style, kernel="forward"))
    with pytest.raises(ValueError, match="kernel"):
        block.reverse(x, style, kernel="inverse")


# -- disparity branch -----------------------------------------------------------------------
def test_cost_volume_is_one_sided_with_zeros_where_uncovered():
    torch.manual_seed(8)
    left, right = torch.randn(1, 4, 5, 12), torch.randn(1, 4, 5, 12)
    volume = cost_volume(left, right, volume_shifts("one_sided", 3))
    assert volume.shape == (1, 8, 4, 5, 12)
    for shift in range(4):
        plane = volume[:, :, shift]
        torch.testing.assert_close(plane[:, :4, :, shift:], left[..., shift:])
        torch.testing.assert_close(plane[:, 4:, :, shift:], right[..., : 12 - shift])
        assert plane[..., :shift].abs().max() == 0 if shift else True
    assert volume_shifts("two_sided", 3) == list(range(-3, 4))
    assert volume_shifts("concat", 3) == [0]


@pytest.mark.parametrize("volume", ["one_sided", "two_sided", "concat"])
def test_disparity_vectors_one_per_window(volume):
    torch.manual_seed(9)
    branch = DisparityBranch(out_dim=12, channels=4, volume=volume).eval()
    left, right = torch.rand(2, 3, 64, 96) - 0.5, torch.rand(2, 3, 64, 96) - 0.5
    vectors = branch(left, right, (2, 3), (4, 4))
    assert vectors.shape == (12, 12)
    assert not torch.allclose(vectors, branch(right, left, (2, 3), (4, 4)))


def test_release_windows_need_the_release_grid():
    branch = DisparityBranch(out_dim=8, channels=4).eval()
    views = torch.zeros(1, 3, 288, 448)
    assert branch(views, views, (2, 4), (18, 14)).shape == (8, 8)
    with pytest.raises(ValueError, match="288"):
        branch(views, views, (2, 3), (18, 14))


# -- sharp-region preservation --------------------------------------------------------------
def test_sharp_region_block_starts_as_concatenation_then_learns():
    torch.manual_seed(10)
    block = SharpRegionPreservation(3, 5, num_res=1)
    skip, up = torch.randn(2, 3, 12, 12), torch.randn(2, 5, 12, 12)
    concatenated = torch.cat([skip, up], dim=1)
    assert torch.equal(block(skip, up), concatenated)
    block(skip, up).square().sum().backward()
    assert block.conv_o[-1].weight.grad.abs().sum() > 0
    assert not torch.equal(
        SharpRegionPreservation(3, 5, 1, identity_init=False)(skip, up), concatenated
    )


def test_sharp_region_gate_is_linear_in_the_correlation_unless_sigmoid():
    torch.manual_seed(11)
    block = SharpRegionPreservation(2, 2, num_res=1, max_displacement=2, identity_init=False)
    assert block.conv_v.in_channels == 25
    skip, up = torch.randn(1, 2, 10, 10), torch.randn(1, 2, 10, 10)
    base = block(skip, up)
    with torch.no_grad():
        block.conv_k.weight.mul_(2.0)  # the key only matters through the correlation
    assert not torch.allclose(block(skip, up), base)
    with pytest.raises(ValueError, match="gate"):
        SharpRegionPreservation(2, 2, gate="tanh")
