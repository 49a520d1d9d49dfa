"""Channel weights and invertible channel mixing of K3DN's deblur blocks (docs/k3dn.md).

* The public K3DN code's (computed exactly here):
  - Channel weights from a window's interacted disparity vector ``e`` (length D): an
    equalised linear layer, ``z = W e / sqrt(D) + b``, then ``a = softmax(z)`` over the C
    channels (the weights sum to 1). Initialisation ``W ~ N(0, 1)``, ``b = 1``.
  - A Glow invertible 1x1 convolution (Kingma and Dhariwal, 2018, Sec. 3.2) in LU form:
    ``M = P L U`` with the fixed permutation ``P`` (buffer ``p``), ``L = I +`` the
    strictly lower part of ``lower``, ``U =`` the strictly upper part of ``upper`` ``+
    diag(sign_s * exp(log_s))`` (``sign_s`` a buffer). Initialised from the Q of a QR
    decomposition of a Gaussian matrix, factorised with partial pivoting. The inverse is
    ``U^-1 L^-1 P^-1`` from general matrix inverses.
  - Forward, the weights scale the *input* channels of ``M``: ``M (a * x)``. Reverse, the
    reciprocal weights ``1 / (a + 1e-8)``, clipped to ``[0, truncate]`` (truncate = 100,
    non-finite set to 0) and divided by their L2 norm (+1e-8) over channels, scale the
    *output* channels of ``M^-1``: ``a_hat * (M^-1 y)``.
* Ours: ``weights="bounded"``, the earlier dpdeblur weights ``C softmax(b tanh(z / b))``
  (mean 1 over channels, logits bounded by ``b = logit_bound``), with a plain (not
  equalised) linear layer; the reverse then divides by them exactly.
* Precision (ours): ``M`` and ``M^-1`` are built, and applied, in float32 with autocast
  off. In bfloat16 the two matrices are no longer inverses of each other (``|M M^-1 - I|``
  of order 1e-2 instead of 1e-6 for 64 channels), so the reverse path would stop undoing
  the forward mixing.
  The mixing's output has the dtype autocast would have given the 1x1 conv.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn.precision import autocast_dtype, autocast_off, wide_dtype

WEIGHT_MODES = ("softmax", "bounded")
REVERSE_TRUNCATE = 100.0
_EPS = 1e-8


class EqualLinear(nn.Module):
    """Linear layer whose weight is scaled by ``1/sqrt(in_features)`` at use (StyleGAN2's
    equalised learning rate, multiplier 1); ``weight ~ N(0, 1)``, bias ``bias_init``."""

    def __init__(self, in_features: int, out_features: int, bias_init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class ModulatedInvertibleConv1x1(nn.Module):
    """The channel weights of a window and the invertible 1x1 mixing ``M`` they feed.

    Args:
        channels: C.
        style_dim: length D of the (interacted) disparity vectors.
        weights: ``"softmax"`` (the release's) or ``"bounded"`` (ours, see the module doc).
        logit_bound: ``b`` of the bounded weights.
    """

    def __init__(
        self,
        channels: int,
        style_dim: int,
        weights: str = "softmax",
        logit_bound: float = 3.0,
    ):
        super().__init__()
        if weights not in WEIGHT_MODES:
            raise ValueError(f"weights must be one of {WEIGHT_MODES}, got {weights!r}")
        if logit_bound <= 0:
            raise ValueError(f"logit_bound must be positive, got {logit_bound}")
        self.channels = channels
        self.weight_mode = weights
        self.logit_bound = logit_bound
        rotation = torch.linalg.qr(torch.randn(channels, channels))[0]
        perm, lower, upper = torch.linalg.lu(rotation)
        diag = torch.diagonal(upper)
        # Registration order = the release's state-dict order: lower, log_s, upper, p, sign_s.
        self.lower = nn.Parameter(lower)
        self.log_s = nn.Parameter(torch.log(diag.abs()))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.register_buffer("p", perm)
        self.register_buffer("sign_s", torch.sign(diag))
        self.register_buffer("lower_mask", torch.tril(torch.ones_like(lower), -1), persistent=False)
        self.register_buffer("eye", torch.eye(channels), persistent=False)
        if weights == "softmax":
            self.modulation: nn.Module = EqualLinear(style_dim, channels, bias_init=1.0)
        else:
            self.modulation = nn.Linear(style_dim, channels)

    # -- the weights -------------------------------------------------------------------
    def channel_weights(self, style: Tensor) -> Tensor:
        """N x D interacted disparity vectors -> N x C positive channel weights."""
        logits = self.modulation(style)
        if self.weight_mode == "softmax":
            return torch.softmax(logits, dim=-1)
        bound = self.logit_bound
        return self.channels * torch.softmax(bound * torch.tanh(logits / bound), dim=-1)

    def reverse_weights(self, weights: Tensor) -> Tensor:
        """The weights the reverse direction applies after ``M^-1``."""
        if self.weight_mode == "bounded":
            return 1.0 / weights
        inverse = (1.0 / (weights + _EPS)).clamp(0.0, REVERSE_TRUNCATE)
        inverse = torch.where(torch.isfinite(inverse), inverse, torch.zeros_like(inverse))
        return inverse / torch.sqrt(inverse.pow(2).sum(dim=-1, keepdim=True) + _EPS)

    # -- the mixing --------------------------------------------------------------------
    def factors(self) -> tuple[Tensor, Tensor]:
        """``L`` (unit lower triangular) and ``U`` (upper triangular)."""
        lower = self.lower * self.lower_mask + self.eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return lower, upper

    def matrix(self, inverse: bool = False) -> Tensor:
        """The C x C mixing matrix ``M = P L U``, or ``U^-1 L^-1 P^-1``; float32 (or wider)
        with autocast off, whatever the ambient autocast."""
        with autocast_off(self.lower.device.type):
            lower, upper = (t.to(wide_dtype(t.dtype)) for t in self.factors())
            perm = self.p.to(lower.dtype)
            if not inverse:
                return perm @ lower @ upper
            return torch.linalg.inv(upper) @ torch.linalg.inv(lower) @ torch.linalg.inv(perm)

    @staticmethod
    def _mix(x: Tensor, matrix: Tensor) -> Tensor:
        """The 1x1 conv with ``matrix``, in float32 (or wider) with autocast off; returned
        in the dtype autocast would give it."""
        dtype = autocast_dtype(x)
        with autocast_off(x.device.type):
            wide = torch.promote_types(wide_dtype(x.dtype), matrix.dtype)
            return F.conv2d(x.to(wide), matrix.to(wide)[:, :, None, None]).to(dtype)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        """``M (a * x)`` on N x C x h x w windows, ``weights`` N x C."""
        return self._mix(x * weights[:, :, None, None], self.matrix())

    def inverse(self, y: Tensor, weights: Tensor) -> Tensor:
        """``a_hat * (M^-1 y)``, with ``a_hat`` from :meth:`reverse_weights`."""
        unmixed = self._mix(y, self.matrix(inverse=True))
        return unmixed * self.reverse_weights(weights)[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, weights={self.weight_mode!r}"
