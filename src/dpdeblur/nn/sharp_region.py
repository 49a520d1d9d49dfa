"""K3DN's sharp-region preservation block, one per decoder fusion.

What is whose (spec: k3dn.md):

* The paper's (Sec. 1, module iii): find in-focus regions, which have zero disparity
  between the views, by mining similarities between features before and after the deblur
  module, and preserve their features so that deblurring adds no noise there.
* The known inference code's structure: at each decoder fusion the skip features (before
  the deblur) and the upsampled decoder features (after it) are concatenated; a 9x9 local
  correlation between a query and a key projection (3x3 convs) of them gives 81 channels,
  which a 3x3 conv turns into a per-channel map that gates the features; the gated
  features go through conv, res blocks, conv, and are added back (residual). Trained in a
  second stage with the rest of the network frozen.
* Ours: the correlation is :func:`dpdeblur.nn.correlation.correlation` (channel mean, zero
  padding); the gate is squashed by a sigmoid, so it is a soft mask in (0, 1); the last
  conv starts at zero, so a fresh block is the identity and stage 2 starts exactly from
  the stage-1 network.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dpdeblur.nn.correlation import correlation
from dpdeblur.nn.k3dn_layers import res_stack


class SharpRegionPreservation(nn.Module):
    """Fuse skip and decoder features, gated by their local self-correlation.

    Args:
        skip_channels: channels of the encoder skip (before the deblur stage).
        up_channels: channels of the upsampled decoder features (after it).
        num_res: res blocks in the fusion branch.
        max_displacement: half-size ``d`` of the (2d+1)x(2d+1) correlation window.

    ``forward(skip, up)`` returns ``skip_channels + up_channels`` channels, as a plain
    concatenation would.
    """

    def __init__(
        self, skip_channels: int, up_channels: int, num_res: int = 4, max_displacement: int = 4
    ):
        super().__init__()
        channels = skip_channels + up_channels
        window = (2 * max_displacement + 1) ** 2
        self.max_displacement = max_displacement
        self.query = nn.Conv2d(channels, channels, 3, padding=1)
        self.key = nn.Conv2d(channels, channels, 3, padding=1)
        self.gate = nn.Conv2d(window, channels, 3, padding=1)
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            res_stack(channels, num_res),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        nn.init.zeros_(self.fuse[-1].weight)
        nn.init.zeros_(self.fuse[-1].bias)

    def forward(self, skip: Tensor, up: Tensor) -> Tensor:
        x = torch.cat([skip, up], dim=1)
        similarity = correlation(self.query(x), self.key(x), self.max_displacement)
        gate = torch.sigmoid(self.gate(similarity))
        return x + self.fuse(x * gate)
