"""Synthetic DP rendering, scenes and the on-the-fly dataset (protocol.md, "DP image formation")."""

from __future__ import annotations

import pickle
import warnings

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dpdeblur.data.optics import ThinLensCamera, dp_disparity_px, dp_kernels
from dpdeblur.data.scenes import (
    Layer,
    TextureBank,
    random_layers,
    random_mask,
    random_texture,
)
from dpdeblur.data.synthetic import (
    SceneSettings,
    SensorNoise,
    SyntheticDPDataset,
    convolve_psf,
    fft_size,
    render_layers,
    render_sample,
    sample_camera,
    sample_depths,
)

CAMERA = ThinLensCamera()  # 50 mm f/4 focused at 2 m; |r| = 15 px at infinity


def depth_with_coc(radius_px: float) -> float:
    return float(CAMERA.depth_for_coc(radius_px))


def flat_layer(value, shape, depth, alpha=None) -> Layer:
    texture = np.empty((*shape, 3), np.float32)
    texture[:] = value
    alpha = np.ones(shape, np.float32) if alpha is None else alpha.astype(np.float32)
    return Layer(texture=texture, alpha=alpha, depth=depth)


def noise_layer(rng, shape, depth, alpha=None) -> Layer:
    texture = rng.uniform(0.1, 0.9, size=(*shape, 3)).astype(np.float32)
    alpha = np.ones(shape, np.float32) if alpha is None else alpha
    return Layer(texture=texture, alpha=alpha, depth=depth)


def square_mask(shape, top, bottom, left, right) -> np.ndarray:
    mask = np.zeros(shape, np.float32)
    mask[top:bottom, left:right] = 1.0
    return mask


def horizontal_shift(left: np.ndarray, right: np.ndarray, max_shift: int = 12) -> float:
    """Shift s (px, sub-pixel) that best aligns ``left`` with ``right`` moved right by s."""
    left = left.mean(axis=2) - left.mean()
    right = right.mean(axis=2) - right.mean()
    width = left.shape[1]
    inner = slice(max_shift + 1, width - max_shift - 1)
    errors = []
    for s in range(-max_shift, max_shift + 1):
        shifted = right[:, inner.start - s : inner.stop - s]
        errors.append(np.mean((left[:, inner] - shifted) ** 2))
    errors = np.array(errors)
    best = int(np.argmin(errors))
    offset = 0.0
    if 0 < best < len(errors) - 1:
        e0, e1, e2 = errors[best - 1 : best + 2]
        offset = 0.5 * (e0 - e2) / (e0 - 2 * e1 + e2)
    return best - max_shift + offset


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    return TextureBank()


# -- the renderer -----------------------------------------------------------------------


def test_convolve_psf_draws_the_psf_around_a_point():
    image = np.zeros((21, 21, 1), np.float32)
    image[10, 10] = 1.0
    psf = np.zeros((5, 5), np.float32)
    psf[2, 3] = 0.7  # light lands one pixel to the right of the point
    psf[1, 2] = 0.3  # and one pixel above it
    out = convolve_psf(image, psf)
    assert out[10, 11] == pytest.approx(0.7) and out[9, 10] == pytest.approx(0.3)
    assert out.sum() == pytest.approx(1.0)


def test_fft_size_is_the_next_5_smooth_number():
    assert [fft_size(n) for n in (1, 7, 11, 97, 128, 146)] == [1, 8, 12, 100, 128, 150]


def test_convolve_psfs_on_an_awkward_size_is_a_linear_convolution_with_mirrored_borders():
    """146 = 2 x 73: the FFT runs on a 150-pixel grid; the result must not change."""
    rng = np.random.default_rng(0)
    image = rng.random((146, 142, 3), dtype=np.float32)
    psf = rng.random((9, 9)).astype(np.float32)
    psf /= psf.sum()
    expected = cv2.filter2D(image, -1, psf[::-1, ::-1], borderType=cv2.BORDER_REFLECT_101)
    assert np.allclose(convolve_psf(image, psf), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_point_behind_focus_images_right_of_itself_in_the_left_view(kind):
    shape = (61, 61)
    point = flat_layer(0.0, shape, depth_with_coc(8.0))
    point.texture[30, 30] = 1.0
    render = render_layers([point], CAMERA, kind)
    columns = np.arange(shape[1])
    left_x = (render.left[..., 0].sum(axis=0) * columns).sum() / render.left[..., 0].sum()
    right_x = (render.right[..., 0].sum(axis=0) * columns).sum() / render.right[..., 0].sum()
    assert left_x > 31 and right_x < 29  # DPANet Fig. 2: left view = right half-disc
    assert render.left[..., 0].sum() == pytest.approx(0.5, rel=1e-4)
    front = flat_layer(0.0, shape, depth_with_coc(-8.0))
    front.texture[30, 30] = 1.0
    render = render_layers([front], CAMERA, kind)
    left_x = (render.left[..., 0].sum(axis=0) * columns).sum() / render.left[..., 0].sum()
    assert left_x < 29  # in front of the focal plane the views swap


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_rendered_views_shift_apart_with_a_sign_set_by_the_focal_plane(kind):
    rng = np.random.default_rng(2)
    texture = noise_layer(rng, (64, 96), 1.0).texture
    shifts = {}
    for radius in (-7.0, -3.0, 0.0, 3.0, 7.0):
        layer = Layer(texture, np.ones((64, 96), np.float32), depth_with_coc(radius))
        render = render_layers([layer], CAMERA, kind)
        shifts[radius] = horizontal_shift(render.left, render.right)
        expected = dp_disparity_px(radius, kind)  # kernel centroids
        assert shifts[radius] == pytest.approx(expected, abs=0.25 * abs(expected) + 0.3)
    assert abs(shifts[0.0]) < 0.05
    assert shifts[3.0] > 0.5 and shifts[7.0] > shifts[3.0]  # behind: left view to the right
    assert shifts[-3.0] < -0.5 and shifts[-7.0] < shifts[-3.0]  # in front: to the left


def test_in_focus_scene_gives_identical_views_equal_to_half_the_target():
    rng = np.random.default_rng(3)
    shape = (48, 64)
    focus = CAMERA.focus_distance_m
    layers = [noise_layer(rng, shape, focus)]
    for _ in range(3):
        mask, _ = random_mask(rng, shape)
        layers.append(noise_layer(rng, shape, focus, alpha=mask))
    for kind in ("hard", "soft"):
        render = render_layers(layers, CAMERA, kind)
        # Bitwise on any CPU: in-focus layers skip the FFT, and scaling by 0.5 or 2 is exact.
        assert np.array_equal(render.left, render.right)
        assert np.array_equal(render.left, render.target / 2)
        assert np.array_equal(render.combined, render.target)
        sample = render.to_sample()
        assert np.array_equal(sample["left"], sample["target"])


def test_left_plus_right_is_the_combined_image():
    rng = np.random.default_rng(4)
    shape = (64, 64)
    layers = [noise_layer(rng, shape, depth_with_coc(9.0))]
    layers.append(noise_layer(rng, shape, depth_with_coc(-5.0), alpha=random_mask(rng, shape)[0]))
    render = render_layers(layers, CAMERA, "hard")
    assert np.array_equal(render.left + render.right, render.combined)  # the same float32 sum
    assert not np.allclose(render.left, render.right, atol=1e-3)  # views do differ
    sample = render.to_sample()
    assert np.allclose((sample["left"] + sample["right"]) / 2, sample["combined"], atol=1e-6)


@pytest.mark.parametrize("kind", ["hard", "soft"])
def test_combined_image_of_one_plane_is_the_full_defocus_blur(kind):
    rng = np.random.default_rng(5)
    layer = noise_layer(rng, (64, 64), depth_with_coc(-6.5))
    render = render_layers([layer], CAMERA, kind)
    left_psf, right_psf = dp_kernels(CAMERA.coc_radius_px(layer.depth), kind)
    full = convolve_psf(layer.texture, left_psf + right_psf)
    assert np.allclose(render.combined, full, atol=2e-6)
    assert render.combined.mean() == pytest.approx(render.target.mean(), rel=2e-3)


def test_blurred_near_layer_bleeds_over_a_sharp_background():
    shape = (64, 64)
    background = flat_layer(0.0, shape, CAMERA.focus_distance_m)  # black, in focus
    near = flat_layer(1.0, shape, depth_with_coc(-6.0), square_mask(shape, 16, 48, 16, 48))
    render = render_layers([background, near], CAMERA, "hard")
    combined = render.combined[..., 0]
    assert combined[32, 13] > 0.05 and combined[32, 50] > 0.05  # light outside the edge
    assert combined[32, 8] < 1e-6 and combined[4, 4] < 1e-6  # beyond the blur radius: none
    assert render.target[32, 13, 0] == 0.0  # the sharp target keeps the edge
    # the near layer covers the background in both views: white at the square's centre
    assert render.left[32, 32, 0] == pytest.approx(0.5, abs=1e-6)


def test_sharp_near_layer_hides_the_blurred_background():
    shape = (64, 64)
    background = flat_layer(1.0, shape, depth_with_coc(10.0))  # white, very blurred
    near = flat_layer(0.0, shape, CAMERA.focus_distance_m, square_mask(shape, 16, 48, 16, 48))
    render = render_layers([background, near], CAMERA, "soft")
    inside = render.combined[16:48, 16:48]
    assert np.all(inside == 0.0)  # no background light crosses an in-focus occluder
    assert render.combined[32, 10, 0] > 0.3  # outside, the background is visible


def test_depth_and_coc_maps_show_the_visible_surface():
    shape = (32, 32)
    far, near_depth = 6.0, 1.4
    background = flat_layer(0.5, shape, far)
    near = flat_layer(0.5, shape, near_depth, square_mask(shape, 8, 24, 8, 24))
    render = render_layers([near, background], CAMERA, "hard")  # any order in
    assert render.depth[16, 16] == pytest.approx(near_depth) and render.depth[2, 2] == far
    assert render.coc[16, 16] == pytest.approx(CAMERA.coc_radius_px(near_depth), rel=1e-6)
    assert render.coc[16, 16] < 0 < render.coc[2, 2]


def test_render_layers_checks_its_input():
    layer = flat_layer(0.5, (8, 8), 3.0)
    with pytest.raises(ValueError):
        render_layers([], CAMERA)
    with pytest.raises(ValueError):
        render_layers([layer], CAMERA, "box")
    with pytest.raises(ValueError):
        render_layers([layer, flat_layer(0.5, (8, 9), 2.0)], CAMERA)
    with pytest.raises(ValueError):
        render_layers([layer], CAMERA, noise=SensorNoise(shot=0.01))  # noise needs an rng


def test_sensor_noise_is_poisson_gaussian_on_the_views():
    shape = (128, 128)
    layer = flat_layer(0.4, shape, CAMERA.focus_distance_m)
    noise = SensorNoise(shot=0.01, read=0.02)
    render = render_layers([layer], CAMERA, noise=noise, rng=np.random.default_rng(0))
    left = 2 * render.left
    assert np.var(left) == pytest.approx(0.01 * 0.4 + 0.02**2, rel=0.1)
    assert np.mean(left) == pytest.approx(0.4, abs=3e-3)
    assert not np.array_equal(render.left, render.right)  # independent per photodiode
    assert np.array_equal(render.combined, render.left + render.right)  # the same float32 sum
    assert np.all(render.target == np.float32(0.4))  # the target stays clean


# -- scenes -----------------------------------------------------------------------------


def test_bundled_photographs_load_offline(bank):
    assert len(bank.photos) >= 5
    for image in bank.photos.values():
        assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
        assert image.min() >= 0.0 and image.max() <= 1.0


def test_missing_photographs_fall_back_to_procedural_textures(tmp_path):
    empty = TextureBank(folder=tmp_path)
    with pytest.warns(UserWarning, match="procedural"):
        assert empty.photos == {}
    texture, name = random_texture(np.random.default_rng(0), (40, 50), empty, photo_prob=1.0)
    assert not name.startswith("photo") and texture.shape == (40, 50, 3)


def test_texture_bank_pickles_without_its_pixels(bank):
    assert bank.photos
    clone = pickle.loads(pickle.dumps(bank))
    assert clone._photos is None
    assert len(pickle.dumps(bank)) < 1000


def test_random_layers_are_far_to_near_over_an_opaque_background(bank):
    rng = np.random.default_rng(7)
    shape = (48, 56)
    layers = random_layers(rng, shape, [1.5, 9.0, 3.0, 2.2], bank, photo_prob=0.5)
    assert [layer.depth for layer in layers] == [9.0, 3.0, 2.2, 1.5]
    assert np.all(layers[0].alpha == 1.0)
    for layer in layers:
        assert layer.texture.shape == (*shape, 3) and layer.texture.dtype == np.float32
        assert layer.texture.min() >= 0.0 and layer.texture.max() <= 1.0
        assert layer.alpha.shape == shape and 0.0 <= layer.alpha.min() <= layer.alpha.max() <= 1.0
    names = set()
    for seed in range(40):
        texture_rng = np.random.default_rng(seed)
        names.add(random_texture(texture_rng, (32, 32), bank)[1].split(":")[0])
    assert "photo" in names and len(names) >= 4  # photos and several procedural kinds


def test_masks_have_antialiased_edges_and_cover_part_of_the_frame():
    fractions = []
    for seed in range(12):
        mask, kind = random_mask(np.random.default_rng(seed), (96, 96))
        fractions.append(mask.mean())
        if mask.max() == 1.0:
            edge = (mask > 0) & (mask < 1)
            assert edge.any(), kind
    assert 0.05 < np.median(fractions) < 0.8


def test_scene_depths_keep_the_blur_within_bounds():
    settings = SceneSettings(max_coc_px=12.0)
    rng = np.random.default_rng(0)
    radii = []
    for _ in range(200):
        camera = sample_camera(rng, settings)
        assert 1.2 <= camera.focus_distance_m <= 4.0 and 2.8 <= camera.f_number <= 5.6
        depths = sample_depths(rng, camera, 4, settings)
        assert all(0.5 <= d <= 100.0 for d in depths)
        radii += [camera.coc_radius_px(d) for d in depths]
    radii = np.array(radii)
    assert np.abs(radii).max() <= 12.0 + 1e-9
    assert (radii < -3).any() and (radii > 3).any() and (radii == 0).any()


# -- samples and the dataset ------------------------------------------------------------


def test_render_sample_keys_shapes_and_units(bank):
    sample = render_sample(11, (40, 56), bank=bank)
    for key in ("left", "right", "combined", "target"):
        assert sample[key].shape == (40, 56, 3) and sample[key].dtype == np.float32
        assert sample[key].min() >= 0.0 and sample[key].max() <= 1.0
    assert sample["depth"].shape == (40, 56, 1) and sample["coc"].shape == (40, 56, 1)
    assert np.allclose(sample["combined"], (sample["left"] + sample["right"]) / 2, atol=1e-6)
    photon = sample["photon"]
    assert np.array_equal(photon.left + photon.right, photon.combined)  # the same float32 sum
    meta = sample["meta"]
    camera = ThinLensCamera(f_number=meta["f_number"], focus_distance_m=meta["focus_distance_m"])
    coc = camera.coc_radius_px(sample["depth"].astype(np.float64))
    assert np.allclose(sample["coc"], coc, atol=1e-4)
    assert set(np.unique(sample["depth"])) <= {np.float32(d) for d in meta["depths_m"]}


def test_render_sample_is_deterministic_for_a_seed(bank):
    first = render_sample([1, 2, 3], (32, 32), bank=bank, kernel="hard")
    again = render_sample([1, 2, 3], (32, 32), bank=bank, kernel="hard")
    other = render_sample([1, 2, 4], (32, 32), bank=bank, kernel="hard")
    for key in ("left", "right", "combined", "target", "coc"):
        assert np.array_equal(first[key], again[key])  # one machine: bit for bit (docs/data.md)
    assert not np.array_equal(first["target"], other["target"])


def test_defocused_samples_have_distinct_views(bank):
    sample = render_sample(0, (64, 64), bank=bank, in_focus_prob=0.0)
    assert np.abs(sample["coc"]).max() > 1.0
    assert np.abs(sample["left"] - sample["right"]).max() > 0.02
    assert np.abs(sample["combined"] - sample["target"]).mean() > 1e-3


def test_dataset_sample_dict():
    dataset = SyntheticDPDataset(length=3, size=(24, 40), seed=5, split="val", kernel="hard")
    sample = dataset[1]
    assert len(dataset) == 3
    for key in ("left", "right", "combined", "target"):
        assert sample[key].shape == (3, 24, 40) and sample[key].dtype == torch.float32
        assert float(sample[key].min()) >= 0.0 and float(sample[key].max()) <= 1.0
    assert sample["depth"].shape == (1, 24, 40) and sample["coc"].shape == (1, 24, 40)
    assert float(sample["depth"].min()) > 0
    assert sample["name"] == "synth_val_00001" and sample["bit_depth"] == 32
    assert torch.allclose(sample["combined"], (sample["left"] + sample["right"]) / 2, atol=1e-6)
    assert torch.equal(dataset[-2]["target"], sample["target"])  # the same render, twice
    with pytest.raises(IndexError):
        dataset[3]


def test_dataset_is_deterministic_and_seed_and_split_matter():
    make = lambda **kw: SyntheticDPDataset(**{"length": 2, "size": (24, 24), **kw})  # noqa: E731
    a, b = make(seed=1)[0], make(seed=1)[0]
    for key in ("left", "right", "combined", "target", "depth", "coc"):
        assert torch.equal(a[key], b[key])  # one machine: bit for bit (docs/data.md)
    assert not torch.equal(a["target"], make(seed=2)[0]["target"])
    assert not torch.equal(a["target"], make(seed=1, split="test")[0]["target"])
    assert not torch.equal(a["target"], make(seed=1)[1]["target"])


def test_set_epoch_renews_training_scenes_only():
    train = SyntheticDPDataset(length=2, size=(24, 24), seed=0, split="train")
    first = train[0]["target"]
    train.set_epoch(1)
    assert not torch.equal(first, train[0]["target"])
    train.set_epoch(0)
    assert torch.equal(first, train[0]["target"])
    val = SyntheticDPDataset(length=2, size=(24, 24), seed=0, split="val")
    fixed = val[0]["target"]
    val.set_epoch(3)
    assert val.epoch == 0 and torch.equal(fixed, val[0]["target"])


def test_dataset_options_from_plain_config_values():
    # as Hydra would pass them: lists and plain mappings
    dataset = SyntheticDPDataset(
        length=1,
        size=[16, 20],
        camera={"focal_length_mm": 35.0, "f_number": 2.0, "focus_distance_m": 1.5},
        focus_range_m=None,
        f_number_range=None,
        num_layers=[1, 1],
        noise={"shot": 0.001, "read": 0.001},
    )
    assert dataset.settings.camera.focal_length_mm == 35.0
    assert dataset.settings.noise == SensorNoise(0.001, 0.001)
    assert dataset[0]["left"].shape == (3, 16, 20)
    with pytest.raises(ValueError):
        SyntheticDPDataset(length=1, kernel="gaussian")
    with pytest.raises(ValueError):
        SyntheticDPDataset(length=1, focus_range_m=(0.2, 3.0))  # outside depth_range_m


def test_dataset_pickles_and_gives_the_same_samples():
    dataset = SyntheticDPDataset(length=2, size=(16, 16), seed=9)
    expected = dataset[1]["left"]
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[1]["left"], expected)


def test_dataloader_workers_reproduce_direct_indexing():
    dataset = SyntheticDPDataset(length=4, size=(24, 32), seed=3, split="train")
    dataset.set_epoch(2)
    direct = [dataset[i] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
        batches = list(loader)
    names = [name for batch in batches for name in batch["name"]]
    assert names == [f"synth_train_{i:05d}" for i in range(4)]
    # Workers run torch with 1 thread, this process with more. Bitwise holds on any CPU: the
    # renderer uses no thread-partitioned arithmetic (SciPy FFTs on one thread; OpenCV
    # splits by rows). Torch's FFT, used before, differed by up to 3e-7 (docs/data.md).
    for key in ("left", "right", "combined", "target", "coc"):
        stacked = torch.cat([batch[key] for batch in batches])
        assert torch.equal(stacked, torch.stack([sample[key] for sample in direct]))
