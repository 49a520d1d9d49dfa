"""K3DN's disparity-aware deblur block ("PSF block") and the query of the kernel set.

What is whose (spec: k3dn.md):

* The paper's (Sec. 1, module i): a disparity feature map *queries* a trainable kernel set
  to form the blur kernel that best describes the local, spatially varying blur; the
  deblur follows the blur model in the Fourier domain. Module ii (reblurring
  regularisation) reuses the kernel to reblur the restored estimate during training.
* The known inference code's structure: blocks at 1/8 resolution on windows of the feature
  map; each block owns one kernel per channel; per window, the disparity vector interacts
  with the kernels (a learned read-out of the kernel taps) and gives a softmax over
  channels, the kernel weights ``s``; an invertible 1x1 conv ``M`` mixes the channels. One
  block: ``y = act(M (s * act(k * x))) + x``; the reverse uses the inverse kernel, the
  inverse weights and ``M^-1``. (We call ``x -> M (s * act(k * x))`` the block's core.)
* Ours:
  - ``k * x`` is the Fourier deblur of :mod:`dpdeblur.nn.kernel_set` on the whole feature
    map (the kernels are shared by all windows; only the weights vary per window).
  - The kernel set has ``kernel_set_size`` kernels (default: one per channel, as the
    inference code); channel ``c`` uses kernel ``c mod kernel_set_size``.
  - The weights are ``s = C softmax(b tanh(z / b))`` per window: a softmax over channels
    rescaled to mean 1, with logits bounded by ``b`` so that ``1 / s`` (the reverse path's
    inverse weights) stays within ``[e^-2b, e^2b]``.
  - Each block's residual branch is scaled by a learnable gain ``g`` (ReZero-style,
    initialised to ``residual_gain`` = 0.1), shared by both directions: with mean-1
    weights and no gain, eight residual blocks grew the features' scale about 400-fold at
    initialisation (the inference code damps instead by the softmax's 1/C).
  - The reverse block is ``y + g act(core^-1(y))`` with the exact inverse of the core
    ``core(x) = M (s * act(deblur(x)))``: ``core^-1(y) = reblur(act^-1(M^-1 y / s))``. So
    :meth:`DisparityAwareDeblurBlock.core_inverse` undoes
    :meth:`DisparityAwareDeblurBlock.core` exactly (same kernel, same weights); the
    residual blocks as a whole are not inverses of each other (neither are they in the
    inference code), which keeps the reblur loss from being trivially satisfied.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn.invertible import InvertibleConv1x1, leaky_relu_inverse
from dpdeblur.nn.k3dn_layers import LEAKY_SLOPE
from dpdeblur.nn.kernel_set import (
    SymmetricKernelSet,
    fourier_deblur,
    fourier_reblur,
    kernel_transfer,
)


class KernelQuery(nn.Module):
    """Disparity vector x kernel set -> per-window channel (kernel) weights.

    The kernel taps are read out into one descriptor per channel, ``d_c = <a_c, k_c>``;
    the disparity vector ``r`` is updated by its interaction with them,
    ``r' = r + act(W_o (W_r r * d))``, and ``s = C softmax(b tanh(W_s r' / b))``.
    """

    def __init__(self, channels: int, style_dim: int, taps: int, logit_bound: float = 3.0):
        super().__init__()
        if logit_bound <= 0:
            raise ValueError(f"logit_bound must be positive, got {logit_bound}")
        self.channels = channels
        self.logit_bound = logit_bound
        self.tap_readout = nn.Parameter(torch.zeros(channels, taps))
        self.to_channels = nn.Linear(style_dim, channels)
        self.to_style = nn.Linear(channels, style_dim)
        self.to_logits = nn.Linear(style_dim, channels)

    def forward(self, style: Tensor, taps: Tensor) -> Tensor:
        """``style``: ... x style_dim disparity vectors; ``taps``: C x taps kernel taps.

        Returns ... x C positive weights with mean 1 over channels.
        """
        descriptor = (self.tap_readout * taps).sum(dim=-1)
        interaction = self.to_style(self.to_channels(style) * descriptor)
        style = style + F.leaky_relu(interaction, LEAKY_SLOPE)
        bound = self.logit_bound
        logits = bound * torch.tanh(self.to_logits(style) / bound)
        return self.channels * torch.softmax(logits, dim=-1)


class DisparityAwareDeblurBlock(nn.Module):
    """One K3DN deblur block on B x C x H x W features with per-window disparity vectors.

    ``forward(x, style)`` deblurs, ``reverse(y, style)`` reblurs; ``style`` is
    B x gh x gw x style_dim, one vector per window of a ``gh x gw`` grid that tiles the map.
    """

    def __init__(
        self,
        channels: int,
        style_dim: int,
        kernel_set_size: int | None = None,
        kernel_size: int = 9,
        spectrum_size: int = 10,
        symmetric: bool = True,
        spectrum_floor: float = 0.1,
        logit_bound: float = 3.0,
        residual_gain: float = 0.1,
    ):
        super().__init__()
        num_kernels = channels if kernel_set_size is None else kernel_set_size
        self.channels = channels
        self.spectrum_floor = spectrum_floor
        self.kernel_set = SymmetricKernelSet(num_kernels, kernel_size, spectrum_size, symmetric)
        self.query = KernelQuery(channels, style_dim, self.kernel_set.taps, logit_bound)
        self.mix = InvertibleConv1x1(channels)
        self.gain = nn.Parameter(torch.tensor(float(residual_gain)))
        self.register_buffer(
            "channel_kernel", torch.arange(channels) % num_kernels, persistent=False
        )

    def operators(self, x: Tensor, style: Tensor) -> tuple[Tensor, Tensor]:
        """The per-channel kernel transfer (C x H x W//2+1) and weight map (B x C x H x W)."""
        height, width = x.shape[-2:]
        grid_h, grid_w = style.shape[1:3]
        if height % grid_h or width % grid_w:
            raise ValueError(
                f"a {grid_h}x{grid_w} window grid does not tile a {height}x{width} feature map"
            )
        kernels = self.kernel_set.kernels()
        transfer = kernel_transfer(kernels, height, width, self.spectrum_floor)
        transfer = transfer[self.channel_kernel]
        taps = self.kernel_set.free_taps(kernels)[self.channel_kernel]
        weights = self.query(style, taps).permute(0, 3, 1, 2)  # B x C x gh x gw
        weights = weights.repeat_interleave(height // grid_h, dim=2)
        weights = weights.repeat_interleave(width // grid_w, dim=3)
        return transfer, weights.to(x.dtype)

    def core(self, x: Tensor, style: Tensor) -> Tensor:
        """``M (s * act(deblur(x)))``: the invertible part of the deblur block."""
        transfer, weights = self.operators(x, style)
        deblurred = F.leaky_relu(fourier_deblur(x, transfer), LEAKY_SLOPE)
        return self.mix(weights * deblurred)

    def core_inverse(self, y: Tensor, style: Tensor) -> Tensor:
        """``reblur(act^-1(M^-1 y / s))``: the exact inverse of :meth:`core`."""
        transfer, weights = self.operators(y, style)
        unmixed = self.mix(y, inverse=True) / weights
        return fourier_reblur(leaky_relu_inverse(unmixed, LEAKY_SLOPE), transfer)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        """Deblur: ``x + g act(core(x))``."""
        return x + self.gain * F.leaky_relu(self.core(x, style), LEAKY_SLOPE)

    def reverse(self, y: Tensor, style: Tensor) -> Tensor:
        """Reblur (training only): ``y + g act(core^-1(y))``, same kernels and weights."""
        return y + self.gain * F.leaky_relu(self.core_inverse(y, style), LEAKY_SLOPE)
