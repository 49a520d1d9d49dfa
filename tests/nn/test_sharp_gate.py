"""The view-difference gate: closed where the DP views agree, open where they differ."""

import pytest
import torch

from dpdeblur.models import create_model
from dpdeblur.nn.sharp_gate import ViewDifferenceGate


def test_gate_is_closed_where_views_agree_and_opens_within_a_window_of_a_difference():
    gate = ViewDifferenceGate(window=5, tau=0.01)
    left = torch.rand(1, 3, 20, 20)
    right = left.clone()
    right[:, 0, 10, 10] += 0.1  # the views differ at one pixel, in red only: D = 0.1 / 3
    g = gate(left, right)[0, 0]
    expected = 1 - torch.exp(torch.tensor(-0.1 / 3 / 0.01)).item()
    assert g[10, 10].item() == pytest.approx(expected, rel=1e-4)
    assert torch.all(g[8:13, 8:13] == g[10, 10])  # the 5x5 window around the difference
    assert g[7, 10] == 0 and g[10, 13] == 0 and g[0, 0] == 0
    g.sum().backward()
    assert gate.log_tau.grad is not None and gate.log_tau.grad != 0
    with pytest.raises(ValueError, match="odd"):
        ViewDifferenceGate(window=4)


def test_gated_dpdnet_returns_the_views_mean_exactly_where_they_agree():
    model = create_model("dpdnet", width=0.0625, residual=True, sharp_gate=True, dropout=0.0)
    torch.nn.init.normal_(model.head.weight, std=0.1)  # a trained-looking, non-zero head
    torch.nn.init.normal_(model.head.bias, std=0.1)
    image = torch.rand(1, 3, 24, 24)
    right = image.clone()
    right[:, :, :, 16:] = torch.rand(1, 3, 24, 8)  # the views differ on the right third only
    out = model(image, right)
    mean = 0.5 * (image + right)
    # > 2 px from any difference the gate is exactly 0 (1 - exp(0)): out is mean + 0, bitwise
    assert torch.equal(out[..., :13], mean[..., :13])
    assert not torch.allclose(out[..., 16:], mean[..., 16:])
    with pytest.raises(ValueError, match="residual"):
        create_model("dpdnet", width=0.0625, sharp_gate=True)
