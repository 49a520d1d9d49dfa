"""K3DN's trainable kernel set, stored as spectra, and the Fourier deblur / reblur it drives.

What is whose (spec: k3dn.md):

* The paper's (Sec. 1, "disparity-aware deblur module"): a *trainable kernel set* whose
  kernels obey the DP horizontal-symmetry constraint, and deblurring by "a simple Fourier
  transform" that follows the blur model; reblurring reuses the same kernel by convolution.
* The known inference code's structure: each kernel is stored as a complex spectrum of size
  ``F x (F//2 + 1)`` (F = 10); the spatial kernel is its inverse real FFT, cropped to the
  left half ``k x (k//2 + 1)`` (k = 9, centre column included) and completed by mirroring,
  so ``k(x, y) = k(-x, y)`` holds bit for bit; kernels are L2-normalised; the inverse
  operator comes from a reciprocal spectrum; kernels act on features, not pixels.
* Ours:
  - The deblur is done in the Fourier domain on the whole feature map (circular
    boundary): the transfer function ``K`` of the centred spatial kernel on the map's grid
    is computed exactly, and the deblur divides by it. The inference code instead crops the
    reciprocal of the 10x6 stored spectrum to a 9x9 kernel, which is not the inverse of
    the forward kernel.
  - Where ``|K|`` is below ``floor`` its magnitude is raised to ``floor`` (phase kept): a
    thresholded inverse filter whose gain is at most ``1 / floor``. The reblur multiplies
    by the same floored ``K``, so ``reblur(deblur(x)) == x`` up to rounding, for any
    features, and where ``|K| >= floor`` the reblur is exactly the convolution with the
    kernel. Floored magnitudes keep ``K(u, v) == K(-u, v)``, so symmetry survives.
  - Initialisation: each kernel starts as a centred delta plus small Gaussian noise (the
    deblur starts near the identity), stored as its spectrum.
  - ``symmetric=False`` (the ablation "no kernel symmetry") crops the full ``k x k`` window
    instead of mirroring: free kernels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

_TINY = 1e-12


class SymmetricKernelSet(nn.Module):
    """A set of ``num_kernels`` trainable ``k x k`` blur kernels, each stored as a spectrum.

    Args:
        num_kernels: size of the kernel set.
        kernel_size: odd spatial size ``k`` of each kernel.
        spectrum_size: size ``F >= k`` of the stored spectrum's spatial grid.
        symmetric: mirror the left half so each kernel is its own horizontal mirror.
        init_noise: standard deviation of the noise added to the delta at initialisation.
    """

    def __init__(
        self,
        num_kernels: int,
        kernel_size: int = 9,
        spectrum_size: int = 10,
        symmetric: bool = True,
        init_noise: float = 0.05,
    ):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        if spectrum_size < kernel_size:
            raise ValueError(
                f"spectrum_size ({spectrum_size}) must be at least kernel_size ({kernel_size})"
            )
        if num_kernels < 1:
            raise ValueError(f"num_kernels must be positive, got {num_kernels}")
        self.num_kernels = num_kernels
        self.kernel_size = kernel_size
        self.spectrum_size = spectrum_size
        self.symmetric = symmetric
        self.offset = (spectrum_size - kernel_size) // 2  # top-left corner of the crop
        centre = self.offset + kernel_size // 2
        spatial = init_noise * torch.randn(num_kernels, spectrum_size, spectrum_size)
        spatial[:, centre, centre] += 1.0
        spectrum = torch.fft.rfft2(spatial)
        # Stored as (real, imag) pairs: N x F x (F//2 + 1) x 2.
        self.spectrum = nn.Parameter(torch.view_as_real(spectrum).contiguous())

    @property
    def taps(self) -> int:
        """Free taps per kernel: the left half with the centre column, or all of it."""
        k = self.kernel_size
        return k * (k // 2 + 1) if self.symmetric else k * k

    def kernels(self) -> Tensor:
        """The spatial kernels, N x k x k, L2-normalised (exact mirrors when symmetric)."""
        size = self.spectrum_size
        spatial = torch.fft.irfft2(torch.view_as_complex(self.spectrum), s=(size, size))
        o, k = self.offset, self.kernel_size
        rows = spatial[:, o : o + k]
        if self.symmetric:
            half = rows[..., o : o + k // 2 + 1]  # columns -k//2 .. 0 (centre included)
            kernels = torch.cat([half, half[..., :-1].flip(-1)], dim=-1)
        else:
            kernels = rows[..., o : o + k]
        norm = torch.rsqrt(kernels.pow(2).sum(dim=(-2, -1), keepdim=True) + _TINY)
        return kernels * norm

    def free_taps(self, kernels: Tensor | None = None) -> Tensor:
        """The independent taps of each kernel, N x taps (the query reads these).

        ``kernels``: the output of :meth:`kernels`, if already at hand.
        """
        if kernels is None:
            kernels = self.kernels()
        if self.symmetric:
            kernels = kernels[..., : self.kernel_size // 2 + 1]
        return kernels.flatten(1)

    def transfer(self, height: int, width: int, floor: float = 0.0) -> Tensor:
        """Transfer functions of the centred kernels on an ``height x width`` grid.

        Returns a complex N x height x (width // 2 + 1) tensor (``rfft2`` layout), the
        magnitude floored at ``floor`` (see :func:`floor_magnitude`).
        """
        return kernel_transfer(self.kernels(), height, width, floor)

    def extra_repr(self) -> str:
        return (
            f"num_kernels={self.num_kernels}, kernel_size={self.kernel_size}, "
            f"spectrum_size={self.spectrum_size}, symmetric={self.symmetric}"
        )


def kernel_transfer(kernels: Tensor, height: int, width: int, floor: float = 0.0) -> Tensor:
    """``rfft2`` of ``kernels`` (N x k x k) centred at the origin of an H x W circular grid."""
    k = kernels.shape[-1]
    if height < k or width < k:
        raise ValueError(f"a {k}x{k} kernel needs a grid of at least {k}x{k}, got {height}x{width}")
    canvas = torch.nn.functional.pad(_fft_ready(kernels), (0, width - k, 0, height - k))
    canvas = torch.roll(canvas, shifts=(-(k // 2), -(k // 2)), dims=(-2, -1))
    return floor_magnitude(torch.fft.rfft2(canvas), floor)


def _fft_ready(x: Tensor) -> Tensor:
    """``x`` in float32 if it is in a half-precision type (FFTs of any size need it)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def floor_magnitude(transfer: Tensor, floor: float) -> Tensor:
    """Raise ``|transfer|`` to at least ``floor``, keeping the phase (unchanged above it)."""
    if floor <= 0:
        return transfer
    magnitude = transfer.abs()
    raised = transfer * (magnitude.clamp_min(floor) / magnitude.clamp_min(_TINY))
    # An exact zero has no phase: use the positive real axis.
    return torch.where(magnitude < _TINY, torch.full_like(raised, floor), raised)


def fourier_filter(x: Tensor, transfer: Tensor) -> Tensor:
    """Circular filtering of B x C x H x W features by per-channel ``transfer`` (C x H x W//2+1).

    Half precision (autocast) is computed in float32; the result has the input's dtype.
    """
    height, width = x.shape[-2:]
    spectrum = torch.fft.rfft2(_fft_ready(x))
    return torch.fft.irfft2(spectrum * transfer, s=(height, width)).to(x.dtype)


def fourier_deblur(x: Tensor, transfer: Tensor) -> Tensor:
    """Inverse filtering: divide the features' spectrum by the (floored) kernel transfer."""
    return fourier_filter(x, transfer.reciprocal())


def fourier_reblur(x: Tensor, transfer: Tensor) -> Tensor:
    """Convolution with the kernel: multiply the features' spectrum by its transfer."""
    return fourier_filter(x, transfer)
