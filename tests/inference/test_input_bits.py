"""8-bit inputs (DPANet's release) through the Python API and dpdeblur-deblur."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dpdeblur
from dpdeblur.inference.margins import tiling_spec
from dpdeblur.models.release_protocol import InputBits, ReleaseProtocol, quantise_views


@pytest.fixture(scope="module")
def pair(random_pair):
    return random_pair(3, 32, 48)


def _quantised(view: np.ndarray) -> np.ndarray:
    tensor = torch.from_numpy(view).permute(2, 0, 1)[None]
    return quantise_views(tensor, 8)[0].permute(1, 2, 0).numpy()


def test_input_bits_8_is_the_model_fed_8bit_views(model, pair):
    left, right = pair
    out = dpdeblur.deblur(model, left, right, input_bits=8, tile=0)
    expected = dpdeblur.deblur(model, _quantised(left), _quantised(right), tile=0)
    # the same ops on the same values in one process
    np.testing.assert_array_equal(out, expected)
    assert np.abs(out - dpdeblur.deblur(model, left, right, tile=0)).max() > 0


def test_the_dpanet_protocol_is_8bit_input_and_may_tile(model, pair):
    left, right = pair
    out = dpdeblur.deblur(model, left, right, release_protocol="dpanet", tile=0)
    np.testing.assert_array_equal(out, dpdeblur.deblur(model, left, right, input_bits=8, tile=0))
    # pixel-wise quantisation keeps the model's own tiling figures
    assert tiling_spec(ReleaseProtocol(model, "dpanet")) == tiling_spec(model)
    assert tiling_spec(InputBits(model, 8)) == tiling_spec(model)
    tiled = dpdeblur.deblur(model, left, right, release_protocol="dpanet", tile=32, overlap=16)
    assert tiled.shape == left.shape
    with pytest.raises(ValueError, match="input bits"):
        dpdeblur.deblur(model, left, right, input_bits=12)
