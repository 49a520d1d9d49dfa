"""``dpdeblur.deblur``: input ranges refused with the fix; rotation only for PIXEL captures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dpdeblur


@pytest.fixture(scope="module")
def pair(random_pair):
    return random_pair(1, 24, 40)


def test_floats_in_0_255_are_refused_with_the_fix(model, pair):
    left, right = (x * 255 for x in pair)
    with pytest.raises(ValueError, match=r"left holds float values in \[.*, 25.\..*\]") as err:
        dpdeblur.deblur(model, left, right)
    assert "divide 8-bit values by 255" in str(err.value) and "uint8" in str(err.value)
    tensors = [torch.from_numpy(x).permute(2, 0, 1) * 65535 for x in pair]
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]: divide"):
        dpdeblur.deblur(model, *tensors)
    with pytest.raises(ValueError, match=r"x.float\(\) / 255"):
        dpdeblur.deblur(model, *(torch.zeros(3, 8, 8, dtype=torch.uint8),) * 2)
    nan = pair[0].copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        dpdeblur.deblur(model, nan, pair[1])


def test_a_small_excursion_is_tolerated_and_integers_are_scaled_by_their_type(model, pair):
    left, right = pair
    nudged = dpdeblur.deblur(model, left * 1.005, right)  # e.g. a model's output fed back
    assert nudged.shape == left.shape
    codes = [np.round(x * 255).astype(np.uint8) for x in pair]
    assert dpdeblur.deblur(model, *codes).dtype == np.uint8
    with pytest.raises(ValueError, match=r"astype\(np.uint16\)"):
        dpdeblur.deblur(model, *(c.astype(np.uint32) for c in codes))


def test_a_checkpoint_path_is_not_loaded_for_a_bad_pair(tmp_path, pair):
    missing = tmp_path / "never_read.pt"
    with pytest.raises(ValueError, match="must lie in"):
        dpdeblur.deblur(missing, pair[0] * 255, pair[1] * 255)  # refused before the load


def test_portrait_pairs_run_as_they_lie_unless_they_are_pixel_captures(model, pair):
    left, right = (np.ascontiguousarray(np.rot90(x, -1)) for x in pair)  # a 24x40 crop, turned
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        as_lies = model(to(left), to(right))[0].permute(1, 2, 0).clamp(0, 1).numpy()
        turned = model(to(np.rot90(left, 1)), to(np.rot90(right, 1)))[0]
    turned = np.rot90(turned.permute(1, 2, 0).clamp(0, 1).numpy(), -1)
    np.testing.assert_array_equal(dpdeblur.deblur(model, left, right), as_lies)
    np.testing.assert_array_equal(dpdeblur.deblur(model, left, right, rotate="pixel"), turned)
    with pytest.raises(ValueError, match="rotate=None or rotate='pixel'"):
        dpdeblur.deblur(model, left, right, rotate="portrait")
