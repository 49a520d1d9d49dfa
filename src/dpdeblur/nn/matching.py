"""Horizontal matching costs between the two DP views, as extra network input (ours).

The DP disparity is horizontal and grows with the blur (DPANet Sec. III-A: the views'
kernels are the two halves of the CoC disc), so how well the left view matches the right
view shifted by ``s`` pixels tells the local blur size. A network can learn to find that
from the raw views, but it takes many steps; handing it the costs directly, as stereo and
DP networks do with cost volumes (DPANet's correlation, eq. 7), makes the blur size
readable from the first layer. For shifts ``s = -d .. d``:

    C_s(x) = box_w( mean_c | L(x) - R(x + s) | )

``box_w`` is a ``w x w`` mean (edges: the mean over the pixels inside). The costs need no
gradient (they depend on the inputs only) and cost ``2d + 1`` passes over the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def horizontal_matching_costs(
    left: Tensor, right: Tensor, max_shift: int, window: int = 5
) -> Tensor:
    """Bx(2 max_shift + 1)xHxW mean absolute differences of ``left`` and shifted ``right``.

    Channel ``s + max_shift`` compares ``left(x)`` with ``right(x + s)``; the right view is
    edge-replicated beyond its borders.
    """
    if max_shift < 0 or window < 1 or window % 2 == 0:
        raise ValueError(f"need max_shift >= 0 and an odd window, got {max_shift}, {window}")
    width = left.shape[-1]
    padded = F.pad(right, (max_shift, max_shift, 0, 0), mode="replicate")
    costs = torch.cat(
        [
            (left - padded[..., shift : shift + width]).abs().mean(1, keepdim=True)
            for shift in range(2 * max_shift + 1)
        ],
        dim=1,
    )
    return F.avg_pool2d(costs, window, stride=1, padding=window // 2, count_include_pad=False)
