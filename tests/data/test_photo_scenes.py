"""The ``photo`` scene family (docs/synthetic.md, "Scene families") and slanted layers."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dpdeblur.data.optics import ThinLensCamera
from dpdeblur.data.photo_scenes import SUBJECT_MAX_COC_PX, coc_limits, photo_layers
from dpdeblur.data.scene_report import COC_EDGES, coc_histogram, histogram_table
from dpdeblur.data.scenes import Layer, TextureBank
from dpdeblur.data.synthetic import SyntheticDPDataset, render_layers, render_sample

CAMERA = ThinLensCamera()  # 50 mm f/4 focused at 2 m


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    return TextureBank()


def scene(seed: int, bank: TextureBank, shape=(72, 96), max_coc_px: float = 8.0) -> list[Layer]:
    return photo_layers(np.random.default_rng(seed), shape, CAMERA, max_coc_px, bank=bank)


def coc_of(layer: Layer) -> np.ndarray:
    depth = layer.depth if layer.depth_map is None else layer.depth_map
    return np.asarray(CAMERA.coc_radius_px(np.asarray(depth, np.float64)))


def test_photo_scenes_are_built_like_photographs(bank):
    """A far background, a ground receding towards the top, subjects near the focal plane,
    occluders in front; depths inside the range, radii inside the limit."""
    near, far = coc_limits(CAMERA, 8.0, (0.5, 100.0))
    seen = {"ground": 0, "subject": 0, "occluder": 0}
    for seed in range(24):
        layers = scene(seed, bank)
        depths = [layer.depth for layer in layers]
        assert depths == sorted(depths, reverse=True)  # far to near
        assert layers[0].name.startswith("background/") and (layers[0].alpha == 1).all()
        for layer in layers:
            coc = coc_of(layer)
            assert near - 1e-6 <= coc.min() and coc.max() <= far + 1e-6
            kind = layer.name.split("/")[0]
            seen[kind] = seen.get(kind, 0) + 1
            if kind == "subject":
                assert abs(float(coc)) <= SUBJECT_MAX_COC_PX + 1e-6
            if kind == "occluder":
                assert float(coc) < 0  # in front of the focal plane
            if kind == "ground":
                # Depth grows towards the top: row by row, never nearer than the row below,
                # and the horizon is far behind the bottom row.
                assert layer.depth_map is not None
                column = layer.depth_map[:, 0]
                assert (np.diff(column) <= 0).all() and column[0] > column[-1]
                assert coc.max() > coc.min() + 0.5
                assert (layer.depth_map == layer.depth_map[:, :1]).all()  # level rows
                assert layers[0].depth >= layer.depth  # the background stays behind it
    assert seen["subject"] >= 24 and seen["ground"] >= 12 and seen["occluder"] >= 4


def test_photographs_dominate_the_textures(bank):
    names = [layer.name for seed in range(16) for layer in scene(seed, bank)]
    share = sum("photo:" in name for name in names) / len(names)
    assert 0.6 <= share < 1.0  # 80 % drawn; procedural ones remain, a minority


def test_photo_scene_renders_deterministically_whatever_the_thread_count(bank):
    """Bit for bit on one machine (docs/data.md): OpenCV and torch thread counts and
    DataLoader workers change nothing."""
    dataset = SyntheticDPDataset(length=3, size=(40, 56), seed=5, split="test", scenes="photo")
    threads = cv2.getNumThreads(), torch.get_num_threads()
    try:
        cv2.setNumThreads(1)
        torch.set_num_threads(1)
        single = [dataset[i] for i in range(3)]
        cv2.setNumThreads(4)
        torch.set_num_threads(4)
        multi = [dataset[i] for i in range(3)]
    finally:
        cv2.setNumThreads(threads[0])
        torch.set_num_threads(threads[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = DataLoader(dataset, batch_size=3, num_workers=2, shuffle=False)
        (batch,) = list(loader)
    for key in ("left", "right", "combined", "target", "coc", "depth"):
        expected = torch.stack([sample[key] for sample in single])
        assert torch.equal(torch.stack([sample[key] for sample in multi]), expected)
        assert torch.equal(batch[key], expected)
    assert not torch.equal(single[0]["target"], single[1]["target"])


def test_photo_samples_keep_the_render_invariants(bank):
    sample = render_sample([3, 1], (48, 64), bank=bank, scenes="photo", max_coc_px=6.0)
    assert sample["meta"]["scenes"] == "photo"
    assert np.allclose(sample["combined"], (sample["left"] + sample["right"]) / 2, atol=1e-6)
    assert np.abs(sample["coc"]).max() <= 6.0 + 1e-4
    meta = sample["meta"]
    camera = ThinLensCamera(f_number=meta["f_number"], focus_distance_m=meta["focus_distance_m"])
    coc = camera.coc_radius_px(sample["depth"].astype(np.float64))
    assert np.allclose(sample["coc"], coc, atol=1e-4)


def test_layers_family_stays_the_default_and_is_unchanged(bank):
    default = render_sample([7], (32, 40), bank=bank)
    named = render_sample([7], (32, 40), bank=bank, scenes="layers")
    assert default["meta"]["scenes"] == "layers"
    for key in ("left", "right", "target", "coc"):
        assert np.array_equal(default[key], named[key])
    with pytest.raises(ValueError, match="scene family"):
        SyntheticDPDataset(length=1, scenes="portrait")


# -- slanted layers ---------------------------------------------------------------------


def textured(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.1, 0.9, (*shape, 3)).astype(np.float32)


def test_a_constant_depth_map_renders_as_a_fronto_parallel_layer():
    shape = (40, 48)
    depth = float(CAMERA.depth_for_coc(3.0))  # a blur level: no blending
    texture, alpha = textured(shape), np.ones(shape, np.float32)
    flat = render_layers([Layer(texture, alpha, depth)], CAMERA, "soft")
    mapped = Layer(texture, alpha, depth, depth_map=np.full(shape, depth, np.float32))
    slanted = render_layers([mapped], CAMERA, "soft")
    for key in ("left", "right", "target"):
        np.testing.assert_allclose(getattr(slanted, key), getattr(flat, key), atol=2e-6)


def test_a_ground_plane_is_sharp_where_it_crosses_the_focal_plane():
    """Radius linear in the row, from -4 px at the bottom to +6 px at the top: the views
    agree on the rows in focus and differ above and below them."""
    shape = (120, 64)
    rows = np.linspace(6.0, -4.0, shape[0])  # radius per row, top to bottom
    depth_map = np.repeat(CAMERA.depth_for_coc(rows)[:, None], shape[1], 1).astype(np.float32)
    layer = Layer(
        textured(shape, 1), np.ones(shape, np.float32), float(depth_map.max()), depth_map=depth_map
    )
    render = render_layers([layer], CAMERA, "hard", margin=0)
    difference = np.abs(render.left - render.right).mean(axis=(1, 2))
    # Rows within 0.1 px of focus blend at most 10 % of the 1 px kernels into the in-focus
    # delta; from 1 px on, each row's views differ several times more.
    assert difference[np.abs(rows) < 0.1].max() < 0.005
    assert difference[np.abs(rows) >= 1.0].min() > 0.012
    assert np.allclose(render.coc, rows[:, None], atol=1e-3)


def test_coc_histogram_counts_shares_of_pixels():
    shares = coc_histogram([np.array([[0.2, -0.7], [1.5, 9.0]]), np.array([[-3.2]])])
    assert len(shares) == len(COC_EDGES) - 1 and sum(shares) == pytest.approx(1.0)
    assert shares[0] == pytest.approx(0.2) and shares[-1] == pytest.approx(0.2)
    table = histogram_table({"two maps": shares})
    assert table.startswith("| |CoC| (px) | 0-0.5 |") and "| two maps | 20% |" in table
