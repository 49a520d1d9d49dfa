"""Pyramid pre-deblur: DPANet's initial feature extractor F_E^0 (Sec. III-C.1, ref. [39]).

EDVR's "Predeblur_ResNet_Pyramid" with ``nf`` channels, shared by the two views:

    L1 = lrelu(conv3x3(x))                  (H)
    L2 = lrelu(conv3x3 stride 2 (L1))       (H/2)
    L3 = lrelu(conv3x3 stride 2 (L2))       (H/4)
    L2 = ResBlock(L2) + up2(ResBlock(L3))
    L1 = ResBlock(ResBlock(L1)) + up2(ResBlock(L2))
    out = ResBlock^3(L1)

``up2`` is bilinear (align_corners=False) to the finer level's size (exactly x2 when the
sizes are even, as they are inside DPANet). ResBlocks: 5 at L1, 2 at L2, 1 at L3.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dpdeblur.nn.blocks import ResBlock


class PyramidPredeblur(nn.Module):
    """Three-level pyramid feature extractor (EDVR pre-deblur), ``3 -> nf`` channels."""

    def __init__(self, nf: int = 64, in_channels: int = 3):
        super().__init__()
        self.conv_first = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.down_l2 = nn.Conv2d(nf, nf, 3, stride=2, padding=1)
        self.down_l3 = nn.Conv2d(nf, nf, 3, stride=2, padding=1)
        # rb_l1[0:2] before the merge at L1, rb_l1[2:5] after; rb_l2[0] before, [1] after.
        self.rb_l1 = nn.ModuleList(ResBlock(nf) for _ in range(5))
        self.rb_l2 = nn.ModuleList(ResBlock(nf) for _ in range(2))
        self.rb_l3 = nn.ModuleList([ResBlock(nf)])

    @staticmethod
    def _up(x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        l1 = F.leaky_relu(self.conv_first(x), 0.1)
        l2 = F.leaky_relu(self.down_l2(l1), 0.1)
        l3 = F.leaky_relu(self.down_l3(l2), 0.1)
        l2 = self.rb_l2[0](l2) + self._up(self.rb_l3[0](l3), l2)
        del l3
        l1 = self.rb_l1[1](self.rb_l1[0](l1)) + self._up(self.rb_l2[1](l2), l1)
        del l2
        for block in self.rb_l1[2:]:
            l1 = block(l1)
        return l1
