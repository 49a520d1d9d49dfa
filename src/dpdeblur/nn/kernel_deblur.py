"""K3DN's disparity-aware deblur block ("PSF block"), on windows of the 1/8 feature map.

What is whose (docs/k3dn.md):

* The paper's (Sec. 1, module i): a disparity feature map *queries* a trainable kernel set
  to form the kernel that best describes the local blur; module ii (reblurring
  regularisation) reuses the kernel in reverse during training.
* The public K3DN code's (computed exactly here with the defaults). Per window ``n`` of
  ``h x w`` feature pixels, with its disparity vector ``d_n`` (length D) and the block's
  kernels ``K`` (one per channel, :class:`~dpdeblur.nn.kernel_set.SymmetricKernelSet`,
  key ``conv1``):
  - interaction (``inter``): ``g_c = sum_{r, s <= k//2} T[c, r, s] K_c[r, s]`` over the
    free (left) taps of the normalised kernel, ``e_n = lrelu(W_o ((W_r d_n + b_r) * g) +
    b_o) + d_n``;
  - channel weights ``a_n = softmax(W_m e_n / sqrt(D) + b_m)`` and the mixing ``M``
    (``conv2``, :class:`~dpdeblur.nn.invertible.ModulatedInvertibleConv1x1`);
  - forward: ``y = lrelu(M (a_n * lrelu(DW_K(x)))) + x``, where ``DW_K`` is the 9x9
    depthwise cross-correlation with ``K`` itself, zero padding at the window's borders;
  - reverse: ``y = lrelu(DW_K'(lrelu(a_hat_n * (M^-1 x)))) + x``, with the kernel ``K'`` of
    the reciprocal spectrum (``reverse_kernel="reciprocal"``, the training-mode module)
    or ``K`` itself (``"forward"``, what the released inference switch leaves); the
    interaction reads ``K`` in both directions. It is not the inverse of the forward block.
* Ours (options): ``deblur="inverse_filter"`` replaces ``DW_K`` by the division of each
  window's spectrum by the kernel's transfer function, floored at ``spectrum_floor``
  (circular window borders), and the reverse's ``DW_K'`` by the multiplication with it;
  ``residual_gain`` adds a learnable gain ``g`` on the residual branch (ReZero-style);
  ``weights="bounded"`` (see :mod:`dpdeblur.nn.invertible`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn.invertible import ModulatedInvertibleConv1x1
from dpdeblur.nn.k3dn_layers import LEAKY_SLOPE
from dpdeblur.nn.kernel_set import (
    SymmetricKernelSet,
    fourier_deblur,
    fourier_reblur,
    kernel_transfer,
)

DEBLUR_MODES = ("correlation", "inverse_filter")
REVERSE_KERNELS = ("reciprocal", "forward")


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, LEAKY_SLOPE)


class KernelInteraction(nn.Module):
    """``e = lrelu(W_o ((W_r d + b_r) * g) + b_o) + d`` with ``g_c = <T_c, free taps of K_c>``.

    ``to_w`` (1 x C x 1 x k x taps-per-row) is the release's shape.
    """

    def __init__(self, channels: int, style_dim: int, kernel_size: int, row_taps: int):
        super().__init__()
        self.channels, self.kernel_size, self.row_taps = channels, kernel_size, row_taps
        self.to_w = nn.Parameter(torch.zeros(1, channels, 1, kernel_size, row_taps))
        self.to_r = nn.Linear(style_dim, channels)
        self.out = nn.Linear(channels, style_dim)
        for layer in (self.to_r, self.out):
            nn.init.trunc_normal_(layer.weight, std=0.001)
            nn.init.zeros_(layer.bias)

    def forward(self, style: Tensor, kernels: Tensor) -> Tensor:
        """``style``: N x D disparity vectors; ``kernels``: C x k x k -> N x D."""
        taps = self.to_w.view(self.channels, self.kernel_size, self.row_taps)
        descriptor = (taps * kernels[..., : self.row_taps]).sum(dim=(-2, -1))
        return _lrelu(self.out(self.to_r(style) * descriptor)) + style


class DisparityAwareDeblurBlock(nn.Module):
    """One K3DN deblur block on N x C x h x w windows, one disparity vector per window.

    ``forward(x, style)`` deblurs, ``reverse(x, style)`` is the reverse form (reblur path).

    Args:
        channels: C.
        style_dim: D.
        kernel_size: odd size ``k`` of the kernels (9).
        spectrum_size: grid ``F`` of the stored spectra (10).
        symmetric: mirror-symmetric kernels (the DP constraint).
        weights: ``"softmax"`` (release) or ``"bounded"`` (ours).
        deblur: ``"correlation"`` (release) or ``"inverse_filter"`` (ours).
        spectrum_floor: floor of the transfer magnitude for ``"inverse_filter"``.
        residual_gain: ``None`` (release) or the initial value of a learnable residual gain.
        logit_bound: bound of the ``"bounded"`` weights' logits.
    """

    def __init__(
        self,
        channels: int,
        style_dim: int,
        kernel_size: int = 9,
        spectrum_size: int = 10,
        symmetric: bool = True,
        weights: str = "softmax",
        deblur: str = "correlation",
        spectrum_floor: float = 0.1,
        residual_gain: float | None = None,
        logit_bound: float = 3.0,
    ):
        super().__init__()
        if deblur not in DEBLUR_MODES:
            raise ValueError(f"deblur must be one of {DEBLUR_MODES}, got {deblur!r}")
        self.channels = channels
        self.deblur_mode = deblur
        self.spectrum_floor = spectrum_floor
        self.conv1 = SymmetricKernelSet(channels, kernel_size, spectrum_size, symmetric)
        self.conv2 = ModulatedInvertibleConv1x1(channels, style_dim, weights, logit_bound)
        row_taps = kernel_size // 2 + 1 if symmetric else kernel_size
        self.inter = KernelInteraction(channels, style_dim, kernel_size, row_taps)
        if residual_gain is not None:
            self.gain = nn.Parameter(torch.tensor(float(residual_gain)))
        else:
            self.gain = None

    @property
    def kernel_set(self) -> SymmetricKernelSet:
        return self.conv1

    def channel_weights(self, style: Tensor, kernels: Tensor | None = None) -> Tensor:
        """N x C weights of each window from its disparity vector (via the interaction)."""
        if kernels is None:
            kernels = self.conv1.kernels()
        return self.conv2.channel_weights(self.inter(style, kernels))

    def _filter(self, x: Tensor, kernels: Tensor, inverse: bool) -> Tensor:
        if self.deblur_mode == "correlation":
            weight = kernels.to(x.dtype)[:, None]
            return F.conv2d(x, weight, padding=kernels.shape[-1] // 2, groups=self.channels)
        transfer = kernel_transfer(kernels, x.shape[-2], x.shape[-1], self.spectrum_floor)
        return fourier_deblur(x, transfer) if inverse else fourier_reblur(x, transfer)

    def _residual(self, x: Tensor, branch: Tensor) -> Tensor:
        return x + (branch if self.gain is None else self.gain * branch)

    def _check(self, x: Tensor, style: Tensor) -> None:
        if x.dim() != 4 or style.dim() != 2 or x.shape[0] != style.shape[0]:
            raise ValueError(
                f"a deblur block needs N x C x h x w windows and N x D vectors, got "
                f"{tuple(x.shape)} and {tuple(style.shape)}"
            )

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """Deblur: ``lrelu(M (a * lrelu(DW_K(x)))) + x``."""
        self._check(x, style)
        kernels = self.conv1.kernels()
        weights = self.channel_weights(style, kernels)
        filtered = _lrelu(self._filter(x, kernels, inverse=True))
        return self._residual(x, _lrelu(self.conv2(filtered, weights.to(x.dtype))))

    def reverse(self, x: Tensor, style: Tensor, kernel: str = "reciprocal") -> Tensor:
        """Reverse form: ``lrelu(DW_K'(lrelu(a_hat * (M^-1 x)))) + x`` (``K`` with
        ``kernel="forward"``)."""
        if kernel not in REVERSE_KERNELS:
            raise ValueError(f"kernel must be one of {REVERSE_KERNELS}, got {kernel!r}")
        self._check(x, style)
        kernels = self.conv1.kernels()
        weights = self.channel_weights(style, kernels)
        unmixed = _lrelu(self.conv2.inverse(x, weights.to(x.dtype)))
        if self.deblur_mode == "inverse_filter":
            return self._residual(x, _lrelu(self._filter(unmixed, kernels, inverse=False)))
        reverse_kernels = kernels if kernel == "forward" else self.conv1.kernels(reciprocal=True)
        return self._residual(x, _lrelu(self._filter(unmixed, reverse_kernels, inverse=False)))
