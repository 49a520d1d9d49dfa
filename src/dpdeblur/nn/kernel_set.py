"""K3DN's trainable kernel set, stored as half spectra, and the Fourier filters of our
inverse-filter option.

What is whose (docs/k3dn.md):

* The paper's (Sec. 1, "disparity-aware deblur module"): a *trainable kernel set* whose
  kernels obey the DP horizontal-symmetry constraint.
* The public K3DN code's (computed exactly here, :class:`SymmetricKernelSet`): each
  channel's kernel is stored as a complex half spectrum ``W`` of ``F x (F/2 + 1)``
  frequencies (F = 10), a parameter of shape ``1 x C x 1 x F x (F/2 + 1) x 2`` (real,
  imaginary). The spatial kernel is its inverse real 2-D DFT on an ``F x F`` grid
  (factor ``1/F^2``); rows ``0 .. k-1`` and columns ``0 .. k//2`` are kept (k = 9) and
  columns ``k//2 - 1 .. 0`` appended, ``K[r, s] = R[r, k//2 - |s - k//2|]``, so every
  kernel is an exact horizontal mirror of itself; it is not re-centred. The kernel is then
  divided by ``sqrt(sum K^2 + 1e-8)``. The reverse direction's kernel ``K'`` comes the
  same way from the reciprocal spectrum ``1 / (W + 1e-8)`` (non-finite entries set to 0);
  it is not the inverse filter of ``K``.
* Ours:
  - Backend independence: the stored spectra need not be Hermitian along the vertical
    frequency in the columns ``v = 0`` and ``v = F/2``; PyTorch's CPU inverse transform
    ignores the anti-Hermitian part there, cuFFT may not. Before the transform those two
    columns are replaced by their Hermitian part, ``(W[u, v] + conj(W[-u, v])) / 2``,
    which leaves the CPU result unchanged and makes every backend agree.
  - ``symmetric=False`` (the ablation "no kernel symmetry") keeps the full ``k x k``
    corner of the inverse transform instead of mirroring: free kernels.
  - :func:`kernel_transfer`, :func:`fourier_deblur`, :func:`fourier_reblur`: the
    inverse-filter deblur option (``K3DN(deblur="inverse_filter")``): divide each window's
    spectrum by the kernel's transfer function, its magnitude floored (phase kept).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

KERNEL_EPS = 1e-8  # added to the squared norm, and to the spectrum before the reciprocal
_TINY = 1e-12


def hermitian_columns(spectrum: Tensor) -> Tensor:
    """``spectrum`` (... x F x (F/2+1), complex) with its columns ``v = 0`` and, for even F,
    ``v = F/2`` replaced by their Hermitian part along the first axis."""
    size = spectrum.shape[-2]
    flipped = torch.roll(spectrum.flip(-2), 1, dims=-2).conj()  # W[(-u) mod F, v]
    hermitian = (spectrum + flipped) / 2
    columns = [0] + ([size // 2] if size % 2 == 0 else [])
    last = spectrum.shape[-1] - 1
    keep = torch.ones(spectrum.shape[-1], dtype=torch.bool, device=spectrum.device)
    for v in columns:
        if v <= last:
            keep[v] = False
    return torch.where(keep, spectrum, hermitian)


def spectrum_to_kernels(spectrum: Tensor, kernel_size: int, symmetric: bool = True) -> Tensor:
    """Normalised spatial kernels (N x k x k) of complex half spectra (N x F x (F/2+1))."""
    size = spectrum.shape[-2]
    spatial = torch.fft.irfft2(hermitian_columns(spectrum), s=(size, size))
    k, half = kernel_size, kernel_size // 2
    if symmetric:
        columns = [half - abs(s - half) for s in range(k)]
        kernels = spatial[:, :k][..., columns]
    else:
        kernels = spatial[:, :k, :k]
    return kernels / torch.sqrt(kernels.pow(2).sum(dim=(-2, -1), keepdim=True) + KERNEL_EPS)


class SymmetricKernelSet(nn.Module):
    """``num_kernels`` trainable ``k x k`` kernels, each stored as a complex half spectrum.

    Args:
        num_kernels: size of the kernel set (one per feature channel in K3DN).
        kernel_size: odd spatial size ``k`` of each kernel.
        spectrum_size: size ``F >= k`` of the stored spectrum's grid.
        symmetric: mirror the left half so each kernel is its own horizontal mirror.

    The parameter ``weight`` (1 x N x 1 x F x (F/2+1) x 2) is the release's
    ``deblur.<l>.conv1.weight``; it starts N(0, 1), as there.
    """

    def __init__(
        self,
        num_kernels: int,
        kernel_size: int = 9,
        spectrum_size: int = 10,
        symmetric: bool = True,
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
        shape = (1, num_kernels, 1, spectrum_size, spectrum_size // 2 + 1, 2)
        self.weight = nn.Parameter(torch.randn(shape))

    @property
    def taps(self) -> int:
        """Free taps per kernel: the left half with the centre column, or all of it."""
        k = self.kernel_size
        return k * (k // 2 + 1) if self.symmetric else k * k

    def spectrum(self) -> Tensor:
        """The stored half spectra as a complex N x F x (F/2+1) tensor (float32).

        Built from the real and imaginary planes (a copy) rather than viewed with
        ``view_as_complex``, which needs a unit last stride and an even storage offset:
        a parameter re-strided or placed at an odd offset of a flat buffer (FSDP/DDP
        buckets, a converted checkpoint) would fail there.
        """
        pairs = self.weight[0, :, 0].float()
        return torch.complex(pairs[..., 0], pairs[..., 1])

    def kernels(self, reciprocal: bool = False) -> Tensor:
        """The spatial kernels ``K`` (or ``K'`` with ``reciprocal``), N x k x k."""
        spectrum = self.spectrum()
        if reciprocal:
            spectrum = 1.0 / (spectrum + KERNEL_EPS)
            spectrum = torch.where(torch.isnan(spectrum), torch.zeros_like(spectrum), spectrum)
        return spectrum_to_kernels(spectrum, self.kernel_size, self.symmetric)

    def free_taps(self, kernels: Tensor | None = None) -> Tensor:
        """The independent taps of each kernel, N x taps (the interaction reads these)."""
        if kernels is None:
            kernels = self.kernels()
        if self.symmetric:
            kernels = kernels[..., : self.kernel_size // 2 + 1]
        return kernels.flatten(1)

    def extra_repr(self) -> str:
        return (
            f"num_kernels={self.num_kernels}, kernel_size={self.kernel_size}, "
            f"spectrum_size={self.spectrum_size}, symmetric={self.symmetric}"
        )


def kernel_transfer(kernels: Tensor, height: int, width: int, floor: float = 0.0) -> Tensor:
    """Transfer functions (``rfft2`` layout, complex N x H x (W//2+1)) of the filters the
    depthwise cross-correlation with ``kernels`` (N x k x k, centre tap ``k//2``) applies
    on an ``height x width`` circular grid, magnitude floored at ``floor``."""
    k = kernels.shape[-1]
    if height < k or width < k:
        raise ValueError(f"a {k}x{k} kernel needs a grid of at least {k}x{k}, got {height}x{width}")
    flipped = kernels.float().flip(-2, -1)  # correlation = convolution with the flip
    canvas = torch.nn.functional.pad(flipped, (0, width - k, 0, height - k))
    canvas = torch.roll(canvas, shifts=(-(k // 2), -(k // 2)), dims=(-2, -1))
    return floor_magnitude(torch.fft.rfft2(canvas), floor)


def floor_magnitude(transfer: Tensor, floor: float) -> Tensor:
    """Raise ``|transfer|`` to at least ``floor``, keeping the phase (unchanged above it)."""
    if floor <= 0:
        return transfer
    magnitude = transfer.abs()
    raised = transfer * (magnitude.clamp_min(floor) / magnitude.clamp_min(_TINY))
    # An exact zero has no phase: use the positive real axis.
    return torch.where(magnitude < _TINY, torch.full_like(raised, floor), raised)


def fourier_filter(x: Tensor, transfer: Tensor) -> Tensor:
    """Circular filtering of N x C x H x W features by per-channel ``transfer``.

    Half precision (autocast) is computed in float32; the result has the input's dtype.
    """
    height, width = x.shape[-2:]
    spectrum = torch.fft.rfft2(x.float())
    return torch.fft.irfft2(spectrum * transfer, s=(height, width)).to(x.dtype)


def fourier_deblur(x: Tensor, transfer: Tensor) -> Tensor:
    """Inverse filtering: divide the features' spectrum by the (floored) kernel transfer."""
    return fourier_filter(x, transfer.reciprocal())


def fourier_reblur(x: Tensor, transfer: Tensor) -> Tensor:
    """Filtering by the kernel itself: multiply the features' spectrum by its transfer."""
    return fourier_filter(x, transfer)
