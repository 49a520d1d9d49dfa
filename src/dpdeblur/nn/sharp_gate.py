"""A gate that keeps sharp regions untouched: zero where the two DP views agree (ours).

In focus, both half-aperture kernels are the same delta, so the left and right views are
identical there (DPANet Sec. III-A, Fig. 2); they are also identical on flat regions at
any blur. In both cases the mean of the views already is the sharp image, and any
correction a network adds there is error. K3DN's sharp-region preservation
(docs/k3dn.md) finds in-focus regions from the views' zero disparity with a learnt module; this
gate is the parameter-light version of the same idea for residual heads:

    g(x) = 1 - exp(-D(x) / tau),   D = max over a k x k window of mean_c |L - R|

``tau`` is learnt (as ``log tau``). The window lets the gate open across a blurred edge,
whose correction spreads as far as the views' difference does. With sensor noise the views
never agree exactly and the gate opens everywhere: the model is then a plain residual one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ViewDifferenceGate(nn.Module):
    """``g(L, R)`` in [0, 1), Bx1xHxW: 0 where the views agree over a ``window`` square.

    Args:
        window: odd side of the max filter over the views' difference.
        tau: initial scale of the difference (the gate is 63% open at ``D = tau``).
    """

    def __init__(self, window: int = 5, tau: float = 0.005):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be odd and positive, got {window}")
        self.window = window
        self.log_tau = nn.Parameter(torch.tensor(math.log(tau)))

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        difference = (left - right).abs().mean(1, keepdim=True)
        spread = F.max_pool2d(difference, self.window, stride=1, padding=self.window // 2)
        return 1.0 - torch.exp(-spread / self.log_tau.exp())
