"""Protocol metrics against their reference implementations (protocol.md, "Metrics").

SSIM is checked against ``skimage.metrics.structural_similarity`` itself, PSNR against
skimage's ``peak_signal_noise_ratio``, the protocol variants against numpy (and OpenCV's real
8-bit read of a 16-bit PNG), LPIPS's offline behaviour with an empty torch hub folder and its
working path with a fake AlexNet checkpoint written here. Nothing is downloaded: the download
functions of torch hub are replaced by ones that fail the test.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision
from scipy.ndimage import uniform_filter as scipy_uniform_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from dpdeblur.errors import DpdeblurError
from dpdeblur.metrics import (
    ALEXNET_FILE,
    LPIPSMetric,
    LPIPSUnavailableError,
    LPIPSUnavailableWarning,
    MetricError,
    MetricSuite,
    alexnet_weights_path,
    apply_protocol,
    half_resolution,
    mae,
    psnr,
    read_as_8bit,
    ssim,
    ssim_map,
    truncate_to_8bit,
    uniform_filter,
)
from dpdeblur.metrics.structural import reflect_indices

# ---------------------------------------------------------------- images made here


def to_numpy(image: torch.Tensor) -> np.ndarray:
    """CxHxW tensor -> HxWxC float64 array (skimage's layout)."""
    return image.detach().cpu().double().permute(1, 2, 0).numpy()


def from_numpy(image: np.ndarray) -> torch.Tensor:
    """HxWxC array -> 1xCxHxW float64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].double()


def random_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    target = rng.random((*size, 3))
    pred = np.clip(target + 0.15 * rng.standard_normal(target.shape), 0, 1)
    return pred, target


def gradient_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Smooth ramps and a slow sinusoid: tiny local variances, where float32 cancels badly."""
    h, w = size
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    target = np.stack([xx, yy, 0.5 + 0.4 * np.sin(2 * np.pi * (xx + yy))], axis=-1)
    pred = np.clip(0.97 * target + 0.01 + 0.002 * rng.standard_normal(target.shape), 0, 1)
    return pred, target


def edge_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Blocks and steps; the prediction is shifted one pixel and slightly dimmed."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    blocks = ((yy // 5 + xx // 7) % 2).astype(np.float64)
    step = (xx > w // 3).astype(np.float64)
    target = np.stack([blocks, step, 0.2 + 0.6 * blocks * step], axis=-1)
    pred = np.roll(target, 1, axis=1) * 0.9 + 0.05 * rng.random(target.shape)
    return np.clip(pred, 0, 1), target


def photo_pair(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """A crop of skimage's astronaut photo (shipped with skimage, no download)."""
    try:
        from skimage import data

        photo = data.astronaut().astype(np.float64) / 255.0
    except Exception as error:  # pragma: no cover - depends on the skimage install
        pytest.skip(f"skimage.data.astronaut not available offline: {error}")
    h, w = size
    target = photo[100 : 100 + h, 50 : 50 + w]
    blurred = scipy_uniform_filter(target, size=(3, 3, 1))
    pred = np.clip(blurred + 0.01 * rng.standard_normal(target.shape), 0, 1)
    return pred, target


PAIRS = {"random": random_pair, "gradient": gradient_pair, "edges": edge_pair, "photo": photo_pair}
SIZES = [(37, 53), (64, 65), (301, 399)]


def skimage_ssim(pred: np.ndarray, target: np.ndarray) -> float:
    return structural_similarity(pred, target, data_range=1, channel_axis=-1)


# ---------------------------------------------------------------- SSIM


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", sorted(PAIRS))
def test_ssim_matches_skimage(kind: str, size: tuple[int, int]) -> None:
    rng = np.random.default_rng(hash((kind, size)) % 2**32)
    pred, target = PAIRS[kind](rng, size)
    ours = ssim(from_numpy(pred), from_numpy(target))
    assert ours.shape == (1,)
    assert ours.dtype == torch.float64
    assert abs(ours.item() - skimage_ssim(pred, target)) < 1e-10


def test_ssim_float32_input_matches_skimage_float64() -> None:
    """Our float64 accumulation makes float32 input agree with skimage's float64 result."""
    pred, target = gradient_pair(np.random.default_rng(1), (301, 399))
    pred32, target32 = pred.astype(np.float32), target.astype(np.float32)
    ours = ssim(from_numpy(pred32).float(), from_numpy(target32).float()).item()
    reference = skimage_ssim(pred32.astype(np.float64), target32.astype(np.float64))
    assert abs(ours - reference) < 1e-8


def test_ssim_full_map_matches_skimage_including_borders() -> None:
    """The full map, borders too, uses scipy's 'reflect' extension (smallest size 7x9)."""
    rng = np.random.default_rng(2)
    for size in [(7, 9), (37, 53)]:
        pred, target = random_pair(rng, size)
        _, reference = structural_similarity(pred, target, data_range=1, channel_axis=-1, full=True)
        ours = to_numpy(ssim_map(from_numpy(pred), from_numpy(target))[0])
        np.testing.assert_allclose(ours, reference, atol=1e-12)


def test_ssim_identical_images_is_one() -> None:
    _, target = photo_pair(np.random.default_rng(3), (64, 65))
    image = from_numpy(target)
    assert ssim(image, image).item() == pytest.approx(1.0, abs=1e-12)


def test_ssim_per_image_in_a_batch() -> None:
    """A batch gives each image its own SSIM; changing one image leaves the others alone."""
    rng = np.random.default_rng(4)
    pairs = [random_pair(rng, (37, 53)), edge_pair(rng, (37, 53)), gradient_pair(rng, (37, 53))]
    pred = torch.cat([from_numpy(p) for p, _ in pairs])
    target = torch.cat([from_numpy(t) for _, t in pairs])
    batch = ssim(pred, target)
    assert batch.shape == (3,)
    for value, (p, t) in zip(batch.tolist(), pairs, strict=True):
        assert value == pytest.approx(skimage_ssim(p, t), abs=1e-10)
    changed = pred.clone()
    changed[1] = 1.0 - changed[1]
    again = ssim(changed, target)
    assert again[0] == batch[0] and again[2] == batch[2]
    assert abs(again[1] - batch[1]) > 0.1


def test_ssim_clips_prediction() -> None:
    rng = np.random.default_rng(5)
    target = rng.random((37, 53, 3))
    pred = target + 0.3 * rng.standard_normal(target.shape)  # well outside [0, 1]
    expected = skimage_ssim(np.clip(pred, 0, 1), target)
    assert ssim(from_numpy(pred), from_numpy(target)).item() == pytest.approx(expected, abs=1e-10)


def test_ssim_rejects_bad_input() -> None:
    with pytest.raises(MetricError, match="at least 7x7"):
        ssim(torch.rand(1, 3, 6, 30), torch.rand(1, 3, 6, 30))
    with pytest.raises(MetricError, match="differ in shape"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
    with pytest.raises(MetricError, match="BxCxHxW"):
        ssim(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


@pytest.mark.parametrize("size", [3, 5, 7])
@pytest.mark.parametrize("shape", [(3, 4), (7, 7), (8, 11), (20, 13)])
def test_uniform_filter_matches_scipy_reflect(size: int, shape: tuple[int, int]) -> None:
    """Including images narrower than the window (the extension folds more than once)."""
    image = np.random.default_rng(6).random(shape)
    ours = uniform_filter(torch.from_numpy(image)[None, None], size)[0, 0].numpy()
    np.testing.assert_allclose(ours, scipy_uniform_filter(image, size=size), atol=1e-14)


def test_reflect_indices_repeat_the_edge_sample() -> None:
    assert reflect_indices(4, 3).tolist() == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    assert reflect_indices(2, 3).tolist() == [1, 1, 0, 0, 1, 1, 0, 0]


# ---------------------------------------------------------------- PSNR and MAE


def test_psnr_and_mae_match_their_definitions() -> None:
    rng = np.random.default_rng(7)
    pairs = [random_pair(rng, (37, 53)), photo_pair(rng, (37, 53))]
    pred = torch.cat([from_numpy(p) for p, _ in pairs])
    target = torch.cat([from_numpy(t) for _, t in pairs])
    pred[0, 0, 0, 0] = 1.7  # clipped to 1 before scoring
    pred[1, 2, 5, 5] = -0.4  # clipped to 0
    ours_psnr, ours_mae = psnr(pred, target), mae(pred, target)
    assert ours_psnr.shape == ours_mae.shape == (2,)
    for i in range(2):
        p = np.clip(to_numpy(pred[i]), 0, 1)
        t = to_numpy(target[i])
        assert ours_psnr[i].item() == pytest.approx(10 * math.log10(1 / np.mean((p - t) ** 2)))
        assert ours_psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1))
        per_channel = np.abs(p - t).mean(axis=(0, 1))
        assert ours_mae[i].item() == pytest.approx(per_channel.mean(), abs=1e-14)
        assert ours_mae[i].item() == pytest.approx(np.abs(p - t).mean(), abs=1e-14)


def test_psnr_of_identical_images_is_infinite() -> None:
    image = torch.rand(1, 3, 8, 8)
    assert math.isinf(psnr(image, image).item())
    assert mae(image, image).item() == 0.0


def test_psnr_accumulates_in_float64() -> None:
    """A uniform error of 1e-3 on a full-size float32 frame: 60 dB to many digits."""
    target = torch.full((1, 3, 1120, 1680), 0.5)
    pred = target + 1e-3
    expected = 10 * math.log10(1 / float(np.float32(0.501) - np.float32(0.5)) ** 2)
    assert psnr(pred, target).item() == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- protocol variants


def test_8bit_truncation_matches_numpy_uint8_cast() -> None:
    rng = np.random.default_rng(8)
    pred = (rng.random((1, 3, 16, 16)) * 1.2 - 0.1).astype(np.float32)
    pred[0, 0, 0, :4] = [0.2, 1 / 255, 254.999 / 255, 1.0]  # products near integers
    expected = (np.clip(pred, 0, 1) * 255).astype(np.uint8)  # the release's uint8(x*255)
    ours = truncate_to_8bit(torch.from_numpy(pred))
    np.testing.assert_array_equal(torch.round(ours * 255).numpy().astype(np.uint8), expected)


def test_8bit_target_is_opencv_8bit_read_of_16bit_png(tmp_path: Path) -> None:
    """Our target rounding equals cv2.imread's default (8-bit) read of the 16-bit file."""
    rng = np.random.default_rng(9)
    v16 = rng.integers(0, 65536, size=(20, 30, 3), dtype=np.int64).astype(np.uint16)
    v16[0, :6, 0] = [0, 255, 256, 65279, 65280, 65535]
    path = tmp_path / "target.png"
    cv2.imwrite(str(path), v16)
    opencv_8bit = cv2.imread(str(path))  # default flag: 8 bits (same channel order as written)
    float_target = torch.from_numpy((v16.astype(np.float32) / 65535).transpose(2, 0, 1))[None]
    ours = read_as_8bit(float_target)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(np.round(ours * 255).astype(np.uint8), opencv_8bit)
    # An 8-bit target (v8 / 255) is left as it is.
    v8 = torch.arange(256, dtype=torch.float64).reshape(1, 1, 16, 16).expand(1, 3, 16, 16) / 255
    assert torch.equal(read_as_8bit(v8.float()), v8)  # integer codes / 255 in float64 both


def test_8bit_trunc_suite_scores_the_quantised_pair() -> None:
    rng = np.random.default_rng(10)
    target16 = rng.integers(0, 65536, size=(40, 44, 3)).astype(np.float32) / 65535
    pred = np.clip(target16 + 0.05 * rng.standard_normal(target16.shape), -0.1, 1.1)
    pred = pred.astype(np.float32)
    pred_u8 = (np.clip(pred, 0, 1) * 255).astype(np.uint8)
    target_u8 = (np.round(target16.astype(np.float64) * 65535).astype(np.int64) >> 8).astype(
        np.uint8
    )
    suite = MetricSuite(protocol="8bit_trunc", lpips="off")
    values = suite(from_numpy(pred).float(), from_numpy(target16).float())
    expected_ssim = structural_similarity(pred_u8, target_u8, data_range=255, channel_axis=-1)
    expected_psnr = peak_signal_noise_ratio(target_u8, pred_u8, data_range=255)
    expected_mae = np.abs(pred_u8.astype(np.float64) - target_u8).mean() / 255
    assert values["ssim"].item() == pytest.approx(expected_ssim, abs=1e-9)
    assert values["psnr"].item() == pytest.approx(expected_psnr, abs=1e-9)
    assert values["mae"].item() == pytest.approx(expected_mae, abs=1e-9)
    float_psnr = psnr(from_numpy(pred), from_numpy(target16)).item()
    assert values["psnr"].item() != pytest.approx(float_psnr, abs=1e-3)


def numpy_area_resize(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Adaptive average pooling (torch's 'area'): window [floor(i H/h), ceil((i+1) H/h))."""
    h, w = image.shape[:2]
    out = np.empty((out_h, out_w, image.shape[2]))
    for i in range(out_h):
        r0, r1 = (i * h) // out_h, -(-((i + 1) * h) // out_h)
        for j in range(out_w):
            c0, c1 = (j * w) // out_w, -(-((j + 1) * w) // out_w)
            out[i, j] = image[r0:r1, c0:c1].mean(axis=(0, 1))
    return out


def test_half_res_is_a_2x2_box_mean_and_the_dpdd_size() -> None:
    rng = np.random.default_rng(11)
    image = rng.random((20, 30, 3))
    box = image.reshape(10, 2, 15, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(to_numpy(half_resolution(from_numpy(image))[0]), box, atol=1e-14)
    assert half_resolution(torch.zeros(1, 3, 1120, 1680)).shape == (1, 3, 560, 840)


def test_half_res_odd_sizes_use_area_pooling() -> None:
    image = np.random.default_rng(12).random((37, 53, 3))
    expected = numpy_area_resize(image, 18, 26)
    np.testing.assert_allclose(to_numpy(half_resolution(from_numpy(image))[0]), expected)


def test_half_res_suite_scores_the_resized_pair() -> None:
    rng = np.random.default_rng(13)
    pred, target = edge_pair(rng, (64, 66))
    pred[0, 0] = 1.5  # clipped before resizing
    box = lambda a: a.reshape(32, 2, 33, 2, 3).mean(axis=(1, 3))  # noqa: E731
    small_pred, small_target = box(np.clip(pred, 0, 1)), box(target)
    values = MetricSuite(protocol="half_res", lpips="off")(from_numpy(pred), from_numpy(target))
    assert values["ssim"].item() == pytest.approx(skimage_ssim(small_pred, small_target), abs=1e-10)
    assert values["psnr"].item() == pytest.approx(
        peak_signal_noise_ratio(small_target, small_pred, data_range=1)
    )
    assert values["mae"].item() == pytest.approx(np.abs(small_pred - small_target).mean())


def test_16bit_suite_equals_the_functions_and_describes_itself() -> None:
    rng = np.random.default_rng(14)
    pred, target = random_pair(rng, (37, 53))
    p = from_numpy(pred).float().requires_grad_(True)
    t = from_numpy(target).float()
    suite = MetricSuite(lpips="off")
    values = suite(p, t)
    assert suite.names == ("psnr", "ssim", "mae") == tuple(values)
    assert values["psnr"] == psnr(p, t) and values["ssim"] == ssim(p, t)
    assert values["mae"] == mae(p, t)
    assert all(v.dtype == torch.float64 and not v.requires_grad for v in values.values())
    described = json.loads(json.dumps(suite.describe()))
    assert described["protocol"] == "16bit"
    assert described["ssim"]["win_size"] == 7 and described["ssim"]["sample_covariance"]
    assert described["lpips"]["mode"] == "off" and described["lpips"]["available"] is False
    pred_cf, target_cf = apply_protocol(p, t, "16bit")
    assert torch.equal(pred_cf, p.clamp(0, 1)) and target_cf is t  # the same clamp


def test_bad_protocol_and_lpips_mode_are_one_line_errors() -> None:
    with pytest.raises(MetricError, match="unknown metrics protocol") as error:
        MetricSuite(protocol="12bit")
    assert isinstance(error.value, DpdeblurError) and "\n" not in str(error.value)
    assert "16bit, 8bit_trunc, half_res" in str(error.value)
    with pytest.raises(MetricError, match="unknown LPIPS mode"):
        MetricSuite(lpips="sometimes")
    # YAML reads bare off/on as booleans.
    assert MetricSuite(lpips=False).lpips.mode == "off"
    assert MetricSuite(lpips=None).lpips.mode == "off"
    assert MetricSuite(protocol="8BIT_TRUNC", lpips=" Off ").protocol == "8bit_trunc"


# ---------------------------------------------------------------- LPIPS


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub folder, and any attempt to download fails the test."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(hub))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    return hub


def fake_alexnet_features(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors shaped as torchvision's AlexNet ``features`` (no classifier: small)."""
    generator = torch.Generator().manual_seed(seed)
    model = torchvision.models.alexnet(weights=None)
    return {
        key: torch.randn(value.shape, generator=generator) * 0.05
        for key, value in model.state_dict().items()
        if key.startswith("features.")
    }


@pytest.fixture
def fake_weights(hub_dir: Path) -> dict[str, torch.Tensor]:
    state = fake_alexnet_features()
    path = hub_dir / "checkpoints" / ALEXNET_FILE
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return state


def image_batch(seed: int, size: tuple[int, int] = (48, 64)) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, *size, generator=generator)
    pred = (target + 0.2 * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    return pred, target


def test_lpips_offline_is_nan_with_exactly_one_warning(hub_dir: Path) -> None:
    suite = MetricSuite(lpips="auto")
    pred, target = image_batch(0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # our once-only logic, not Python's filter, is tested
        results = [suite(pred, target) for _ in range(4)]
    assert len(caught) == 1
    assert issubclass(caught[0].category, LPIPSUnavailableWarning)
    message = str(caught[0].message)
    expected = hub_dir / "checkpoints" / ALEXNET_FILE
    assert ALEXNET_FILE in message and str(expected) in message and "\n" not in message
    for values in results:
        assert values["lpips"].shape == (2,) and torch.isnan(values["lpips"]).all()
        assert torch.isfinite(values["psnr"]).all()  # the other metrics are unaffected
    assert suite.describe()["lpips"]["available"] is False
    assert alexnet_weights_path() == expected


def test_lpips_required_offline_raises_one_line_error(hub_dir: Path) -> None:
    with pytest.raises(LPIPSUnavailableError) as error:
        MetricSuite(lpips="required")
    assert isinstance(error.value, DpdeblurError)
    text = str(error.value)
    assert str(hub_dir / "checkpoints" / ALEXNET_FILE) in text and "\n" not in text


def test_lpips_unreadable_file(hub_dir: Path) -> None:
    path = hub_dir / "checkpoints" / ALEXNET_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(LPIPSUnavailableError, match="cannot read AlexNet weights"):
        LPIPSMetric("required")
    metric = LPIPSMetric("auto")
    with pytest.warns(LPIPSUnavailableWarning, match="cannot read"):
        assert torch.isnan(metric(*image_batch(1))).all()
    assert not metric.available


def test_lpips_off_never_looks_for_weights(hub_dir: Path) -> None:
    suite = MetricSuite(lpips="off")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = suite(*image_batch(2))
    assert "lpips" not in values
    assert suite.describe()["lpips"]["backbone_weights"] is None


def test_lpips_with_weights_is_finite_and_zero_for_identical_images(
    fake_weights: dict[str, torch.Tensor],
) -> None:
    suite = MetricSuite(lpips="required")
    pred, target = image_batch(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = suite(pred, target)
        same = suite(target, target)
    assert values["lpips"].shape == (2,) and values["lpips"].dtype == torch.float64
    assert torch.isfinite(values["lpips"]).all() and (values["lpips"] > 0).all()
    assert same["lpips"].abs().max().item() < 1e-6
    assert suite.describe()["lpips"]["available"] is True


def test_lpips_loads_the_backbone_and_linear_layers_as_lpips_does(
    fake_weights: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same values as the lpips package building its own AlexNet from the same weights.

    The reference goes through lpips' own slicing of ``tv.alexnet().features``; torchvision's
    constructor is replaced by one that loads the fake features instead of downloading.
    """
    import lpips

    build_alexnet = torchvision.models.alexnet

    def alexnet_with_fake_features(*args, **kwargs):
        model = build_alexnet(weights=None)
        missing, unexpected = model.load_state_dict(fake_weights, strict=False)
        assert not unexpected and all(key.startswith("classifier.") for key in missing)
        return model

    pred, target = image_batch(4)
    ours = LPIPSMetric("required")(pred, target)
    monkeypatch.setattr(torchvision.models, "alexnet", alexnet_with_fake_features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference_model = lpips.LPIPS(net="alex", version="0.1", verbose=False)
    with torch.no_grad():
        reference = reference_model(pred, target, normalize=True).flatten().double()
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-7)


def test_lpips_wrong_checkpoint_is_named(hub_dir: Path) -> None:
    path = hub_dir / "checkpoints" / ALEXNET_FILE
    path.parent.mkdir(parents=True)
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(LPIPSUnavailableError, match="not a torchvision AlexNet checkpoint"):
        LPIPSMetric("required")


# ---------------------------------------------------------------- CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_suite_on_cuda_matches_cpu(fake_weights: dict[str, torch.Tensor]) -> None:
    pred, target = image_batch(5, size=(301, 399))
    suite = MetricSuite(lpips="required")
    on_cpu = suite(pred, target)
    on_gpu = suite(pred.cuda(), target.cuda())
    for name in ("psnr", "ssim", "mae"):
        assert on_gpu[name].device.type == "cuda"
        torch.testing.assert_close(on_gpu[name].cpu(), on_cpu[name], rtol=0, atol=1e-10)
    torch.testing.assert_close(on_gpu["lpips"].cpu(), on_cpu["lpips"], rtol=1e-3, atol=1e-4)
    for protocol in ("8bit_trunc", "half_res"):
        gpu = MetricSuite(protocol=protocol, lpips="off")(pred.cuda(), target.cuda())
        cpu = MetricSuite(protocol=protocol, lpips="off")(pred, target)
        for name in gpu:
            torch.testing.assert_close(gpu[name].cpu(), cpu[name], rtol=0, atol=1e-8)
