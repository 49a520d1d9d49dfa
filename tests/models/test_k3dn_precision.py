"""K3DN in the layouts and precisions of training at scale: channels_last weights and
views, bfloat16 autocast (forward and the reverse path)."""

from __future__ import annotations

import torch

from dpdeblur.models import create_model
from dpdeblur.nn.layout import to_channels_last

SMALL = {
    "base_channels": 8,
    "num_res": 1,
    "disparity_dim": 16,
    "disparity_channels": 4,
    "sharp_region_res": 1,
    "window_size": 9,
}


def _pair(size: int = 72, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, size, size, generator=gen), torch.rand(1, 3, size, size, generator=gen)


def _reblur_loss(model, left, right):
    output = model(left, right)
    reblurred = output.reblur_fn((left + right) / 2)
    return output.image.mean() + reblurred.mean(), output.image


def test_channels_last_k3dn_trains_and_matches_the_default_layout():
    """``to_channels_last`` (4-D weights only; the Conv3d weights stay as they are) and
    NHWC views: forward, reverse path and backward run and agree with NCHW."""
    torch.manual_seed(0)
    model = create_model("k3dn_tiny", **SMALL)
    nhwc = to_channels_last(create_model("k3dn_tiny", **SMALL))
    nhwc.load_state_dict(model.state_dict())
    left, right = _pair()
    loss, image = _reblur_loss(model, left, right)
    loss.backward()
    views = [v.contiguous(memory_format=torch.channels_last) for v in (left, right)]
    loss_nhwc, image_nhwc = _reblur_loss(nhwc, *views)
    loss_nhwc.backward()
    torch.testing.assert_close(image_nhwc, image, atol=1e-4, rtol=1e-4)
    for (name, p), q in zip(model.named_parameters(), nhwc.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-3, msg=name)


def test_bfloat16_autocast_forward_and_reverse_path():
    torch.manual_seed(0)
    model = create_model("k3dn_tiny", **SMALL)
    left, right = _pair()
    with torch.no_grad():
        reference_image = model(left, right).image
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, image = _reblur_loss(model, left, right)
    loss.backward()
    assert torch.isfinite(loss)
    assert (image.float() - reference_image).abs().max() < 0.05
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
