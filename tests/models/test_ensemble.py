"""The DP flip self-ensemble: the right flips, undone on the output, averaged."""

import numpy as np
import pytest
import torch
from torch import nn

import dpdeblur
from dpdeblur.inference.margins import tiling_spec
from dpdeblur.models import create_model
from dpdeblur.models.ensemble import DP_FLIPS, FlipEnsemble, flip_pair, unflip_image


class LeftView(nn.Module):
    """Returns the left view: its ensemble shows which view each flip feeds as 'left'."""

    def forward(self, left, right):
        return left


@pytest.fixture(scope="module")
def dpdnet():
    torch.manual_seed(0)
    model = create_model("dpdnet", width=0.0625, residual=True, dropout=0.0).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)  # the zero-initialised head of a
    torch.nn.init.normal_(model.head.bias, std=0.1)  # fresh net would make out = mean
    return model


def test_mirroring_swaps_the_views_and_each_flip_undoes_itself():
    left, right = torch.rand(1, 3, 6, 8), torch.rand(1, 3, 6, 8)
    new_left, new_right = flip_pair(left, right, vertical=False, mirror=True)
    assert torch.equal(new_left, right.flip(-1)) and torch.equal(new_right, left.flip(-1))
    for vertical, mirror in DP_FLIPS:
        flipped, _ = flip_pair(left, right, vertical, mirror)
        source = right if mirror else left
        assert torch.equal(unflip_image(flipped, vertical, mirror), source)


def test_the_ensemble_of_the_left_view_is_the_mean_of_both_views():
    left, right = torch.rand(2, 3, 5, 7), torch.rand(2, 3, 5, 7)
    out = FlipEnsemble(LeftView())(left, right)
    torch.testing.assert_close(out, 0.5 * (left + right))
    # the vertical half alone keeps the left view: up-down flips do not swap
    torch.testing.assert_close(FlipEnsemble(LeftView(), DP_FLIPS[:2])(left, right), left)
    with pytest.raises(ValueError, match="at least one"):
        FlipEnsemble(LeftView(), ())


def test_ensemble_is_flip_equivariant_where_the_network_is_not(dpdnet):
    torch.manual_seed(1)
    left, right = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 48)
    ensemble = FlipEnsemble(dpdnet)
    with torch.no_grad():
        out = ensemble(left, right)
        mirrored = ensemble(*flip_pair(left, right, vertical=False, mirror=True))
        upside_down = ensemble(*flip_pair(left, right, vertical=True, mirror=False))
        single = dpdnet(left, right)
        single_mirrored = dpdnet(*flip_pair(left, right, vertical=False, mirror=True))
    torch.testing.assert_close(mirrored, out.flip(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(upside_down, out.flip(-2), atol=1e-6, rtol=0)
    assert (single_mirrored - single.flip(-1)).abs().max() > 1e-4  # a random net is not
    assert set(dict(ensemble.state_dict())) == {f"model.{k}" for k in dpdnet.state_dict()}


def test_tiling_sees_through_the_ensemble_and_the_api_runs_it(dpdnet):
    assert tiling_spec(FlipEnsemble(dpdnet)) == tiling_spec(dpdnet)
    rng = np.random.default_rng(0)
    left, right = (
        rng.random((40, 56, 3), dtype=np.float32),
        rng.random((40, 56, 3), dtype=np.float32),
    )
    ensembled = dpdeblur.deblur(dpdnet, left, right, flip_ensemble=True)
    single = dpdeblur.deblur(dpdnet, left, right)
    mirrored = dpdeblur.deblur(dpdnet, right[:, ::-1], left[:, ::-1], flip_ensemble=True)
    np.testing.assert_allclose(mirrored[:, ::-1], ensembled, atol=1e-5)
    assert np.abs(ensembled - single).max() > 1e-4
