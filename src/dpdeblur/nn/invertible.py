"""Invertible channel mixing for K3DN's deblur blocks (spec: k3dn.md, part b).

* The known inference code's structure: a Glow-style invertible 1x1 convolution (Kingma
  and Dhariwal, 2018, Sec. 3.2) in LU form, ``W = P L (U + diag(sign(s) exp(log|s|)))``
  with a fixed permutation ``P``, unit lower-triangular ``L`` and strictly upper ``U``,
  initialised from a random rotation. The reblur path uses ``W^-1``.
* Ours: ``W^-1`` is formed from triangular solves, ``U^-1 L^-1 P^T``, and
  :func:`leaky_relu_inverse` undoes the deblur block's LeakyReLU, so the deblur core and
  its reverse compose to the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InvertibleConv1x1(nn.Module):
    """Glow's invertible 1x1 convolution with an LU-decomposed weight.

    ``forward(x)`` applies ``W``; ``forward(x, inverse=True)`` applies ``W^-1``.
    """

    def __init__(self, channels: int):
        super().__init__()
        rotation = torch.linalg.qr(torch.randn(channels, channels))[0]
        perm, lower, upper = torch.linalg.lu(rotation)
        diag = torch.diagonal(upper)
        self.channels = channels
        self.register_buffer("perm", perm)
        self.register_buffer("sign_s", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones_like(lower), -1), persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def _factors(self) -> tuple[Tensor, Tensor]:
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def weight(self, inverse: bool = False) -> Tensor:
        """The C x C mixing matrix ``W`` or its inverse."""
        lower, upper = self._factors()
        if not inverse:
            return self.perm @ lower @ upper
        lower_inv = torch.linalg.solve_triangular(lower, self.eye, upper=False, unitriangular=True)
        upper_inv = torch.linalg.solve_triangular(upper, self.eye, upper=True)
        return upper_inv @ lower_inv @ self.perm.T

    def forward(self, x: Tensor, inverse: bool = False) -> Tensor:
        weight = self.weight(inverse).to(x.dtype)
        return F.conv2d(x, weight[:, :, None, None])

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


def leaky_relu_inverse(y: Tensor, negative_slope: float) -> Tensor:
    """The inverse of ``leaky_relu(x, negative_slope)`` for a positive slope."""
    return torch.where(y >= 0, y, y / negative_slope)
