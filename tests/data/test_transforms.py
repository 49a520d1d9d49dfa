import numpy as np
import pytest
import torch

from dpdeblur.data.transforms import (
    CenterCrop,
    PairedRandomCrop,
    RandomHorizontalFlipSwap,
    RandomResize,
    RandomRot90,
    RandomVerticalFlip,
    ToTensor,
    train_transforms,
)


def coded_sample(height=20, width=30):
    """Images whose pixels encode their (role, y, x), so any misalignment shows."""
    y, x = np.mgrid[0:height, 0:width]
    sample = {"name": "s", "bit_depth": 16}
    for code, role in enumerate(("left", "right", "combined", "target")):
        sample[role] = np.stack([y, x, np.full_like(y, code)], axis=2).astype(np.uint16)
    sample["coc"] = (x[..., None] - 5.0).astype(np.float32)
    return sample


def test_paired_crop_takes_the_same_window_everywhere():
    rng = np.random.default_rng(0)
    for _ in range(10):
        out = PairedRandomCrop(8)(coded_sample(), rng)
        top, left = out["left"][0, 0, 0], out["left"][0, 0, 1]
        for role in ("right", "combined", "target"):
            np.testing.assert_array_equal(out[role][..., :2], out["left"][..., :2])
            assert out[role].shape == (8, 8, 3)
        assert out["coc"][0, 0, 0] == left - 5.0 and out["left"][7, 7, 0] == top + 7


def test_crop_larger_than_image_is_a_clear_error():
    with pytest.raises(ValueError, match="larger than the image"):
        PairedRandomCrop(64)(coded_sample(), np.random.default_rng(0))


def test_horizontal_flip_mirrors_and_swaps_the_views():
    sample = coded_sample()
    out = RandomHorizontalFlipSwap(p=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["left"], sample["right"][:, ::-1])
    np.testing.assert_array_equal(out["right"], sample["left"][:, ::-1])
    np.testing.assert_array_equal(out["target"], sample["target"][:, ::-1])
    np.testing.assert_array_equal(out["coc"], sample["coc"][:, ::-1])  # sign kept


def test_vertical_flip_keeps_the_views():
    sample = coded_sample()
    out = RandomVerticalFlip(p=1.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["left"], sample["left"][::-1])
    np.testing.assert_array_equal(out["right"], sample["right"][::-1])


def test_flip_probability_zero_is_identity():
    sample = coded_sample()
    rng = np.random.default_rng(0)
    assert RandomHorizontalFlipSwap(0.0)(sample, rng) is sample
    assert RandomVerticalFlip(0.0)(sample, rng) is sample


def test_random_resize_gives_square_sizes_on_the_grid():
    rng = np.random.default_rng(0)
    sizes = set()
    for _ in range(20):
        out = RandomResize(16, 24)(coded_sample(), rng)
        n = out["left"].shape[0]
        sizes.add(n)
        assert out["left"].shape == (n, n, 3) and out["coc"].shape == (n, n, 1)
        assert out["left"].dtype == np.float32
    assert sizes <= set(range(16, 25, 2)) and len(sizes) > 1


def test_rot90_is_off_by_default_and_rotates_when_enabled():
    sample = coded_sample(20, 20)
    assert RandomRot90()(sample, np.random.default_rng(0)) is sample
    rng = np.random.default_rng(3)
    shapes = {RandomRot90(enabled=True)(coded_sample(20, 30), rng)["left"].shape for _ in range(12)}
    assert shapes == {(20, 30, 3), (30, 20, 3)}


def test_to_tensor_scales_by_bit_depth_and_goes_channels_first():
    sample = coded_sample()
    out = ToTensor()(CenterCrop(10)(sample))
    assert out["left"].shape == (3, 10, 10) and out["left"].dtype == torch.float32
    assert out["left"][1, 0, 0].item() == pytest.approx(10 / 65535)  # x of the centre crop
    assert out["coc"].shape == (1, 10, 10)


def test_dpanet_recipe_pipeline_shapes():
    pipeline = train_transforms(crop_size=12, resize=(12, 16), vflip=0.5, hflip_swap=0.0)
    out = pipeline(coded_sample(), np.random.default_rng(0))
    assert out["left"].shape == (12, 12, 3)
