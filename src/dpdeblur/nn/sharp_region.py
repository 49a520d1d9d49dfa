"""K3DN's sharp-region preservation block, one per decoder fusion.

What is whose (docs/k3dn.md):

* The paper's (Sec. 1, module iii): find in-focus regions, which have zero disparity
  between the views, by mining similarities between features before and after the deblur
  module, and preserve their features so that deblurring adds no noise there.
* The public K3DN code's (computed exactly here with ``gate="linear"``): ``X = [old,
  new]`` (the encoder skip first, then the upsampled decoder features), ``C_s`` channels;
  ``Q = conv_q(X)``, ``Kk = conv_k(X)`` (3x3 convs with bias); the 9x9 local correlation
  ``A[(dy+4) 9 + (dx+4)] = mean_c Q[c, y, x] Kk[c, y+dy, x+dx]`` (zero outside the image,
  81 channels, :func:`dpdeblur.nn.correlation.correlation`); ``G = conv_v(A)`` with no
  squashing; ``out = conv_o(X * G) + X``, where ``conv_o`` is conv, four residual blocks,
  conv (3x3, with bias). Trained in a second stage with the rest of the network frozen.
* Ours: ``gate="sigmoid"`` squashes ``G`` into a soft mask in (0, 1) (the earlier
  dpdeblur block); ``identity_init`` (default on) starts the last conv at zero, so a fresh
  block is the identity and stage 2 starts exactly from the stage-1 network (the release
  only says its initialisation is PyTorch's default).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dpdeblur.nn.correlation import correlation
from dpdeblur.nn.k3dn_layers import EBlock

GATES = ("linear", "sigmoid")


class SharpRegionPreservation(nn.Module):
    """Fuse skip and decoder features, gated by their local self-correlation.

    Args:
        skip_channels: channels of the encoder skip (before the deblur stage).
        up_channels: channels of the upsampled decoder features (after it).
        num_res: residual blocks inside ``conv_o``.
        max_displacement: half-size ``d`` of the (2d+1)x(2d+1) correlation window.
        gate: ``"linear"`` (release) or ``"sigmoid"`` (ours).
        identity_init: zero the last conv at initialisation (ours).

    ``forward(skip, up)`` returns ``skip_channels + up_channels`` channels, as a plain
    concatenation would.
    """

    def __init__(
        self,
        skip_channels: int,
        up_channels: int,
        num_res: int = 4,
        max_displacement: int = 4,
        gate: str = "linear",
        identity_init: bool = True,
    ):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"gate must be one of {GATES}, got {gate!r}")
        channels = skip_channels + up_channels
        window = (2 * max_displacement + 1) ** 2
        self.max_displacement = max_displacement
        self.gate = gate
        self.conv_q = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_k = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_v = nn.Conv2d(window, channels, 3, padding=1)
        self.conv_o = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            EBlock(channels, num_res),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        if identity_init:
            nn.init.zeros_(self.conv_o[-1].weight)
            nn.init.zeros_(self.conv_o[-1].bias)

    def forward(self, skip: Tensor, up: Tensor) -> Tensor:
        x = torch.cat([skip, up], dim=1)
        similarity = correlation(self.conv_q(x), self.conv_k(x), self.max_displacement)
        gate = self.conv_v(similarity)
        if self.gate == "sigmoid":
            gate = torch.sigmoid(gate)
        return x + self.conv_o(x * gate)
