"""Horizontal matching costs of the DP views (DPDNet's optional cost input)."""

import pytest
import torch

from dpdeblur.models import create_model
from dpdeblur.nn.matching import horizontal_matching_costs


def test_cost_is_zero_at_the_shift_that_aligns_the_views():
    left = torch.rand(2, 3, 24, 40)
    for disparity in (-3, -1, 0, 2):
        right = torch.roll(left, disparity, dims=3)  # right(x) = left(x - disparity)
        costs = horizontal_matching_costs(left, right, max_shift=3, window=3)
        assert costs.shape == (2, 7, 24, 40)
        inner = costs[..., 6:-6]  # away from the roll's wrap-around and the box's edge
        assert torch.all(inner.argmin(dim=1) == disparity + 3)
        assert torch.all(inner[:, disparity + 3] < 1e-6)


def test_costs_are_box_means_of_channel_mean_absolute_differences():
    left, right = torch.rand(1, 3, 9, 11), torch.rand(1, 3, 9, 11)
    costs = horizontal_matching_costs(left, right, max_shift=1, window=3)
    plain = (left[..., 4:7, 4:7] - right[..., 4:7, 4:7]).abs().mean()  # shift 0 at (5, 5)
    assert costs[0, 1, 5, 5] == pytest.approx(float(plain), rel=1e-5)
    shifted = (left[..., 4:7, 4:7] - right[..., 4:7, 5:8]).abs().mean()  # shift +1
    assert costs[0, 2, 5, 5] == pytest.approx(float(shifted), rel=1e-5)
    corner = (left[..., :2, :2] - right[..., :2, :2]).abs().mean()  # box clipped at the edge
    assert costs[0, 1, 0, 0] == pytest.approx(float(corner), rel=1e-5)
    with pytest.raises(ValueError, match="odd window"):
        horizontal_matching_costs(left, right, 1, window=4)


def test_dpdnet_takes_the_costs_as_extra_input_channels():
    model = create_model("dpdnet", width=0.0625, residual=True, cost_shifts=2, dropout=0.0)
    assert model.encoder[0][0].in_channels == 6 + 5
    left, right = torch.rand(1, 3, 20, 28), torch.rand(1, 3, 20, 28)
    # zero-initialised head: its output is exactly 0, so bitwise on any CPU
    assert torch.equal(model(left, right), 0.5 * (left + right))
    assert model.cost_shifts == 2
