"""Scores per band of defocus strength (dpdeblur.metrics.by_defocus)."""

import math

import pytest
import torch

from dpdeblur.metrics import DefocusBandScores, MetricError, psnr


def _scene(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, 24, 32, generator=g)
    # Signed CoC: left half in focus (|r| < 1), right half strongly defocused (behind and in front).
    coc = torch.zeros(2, 1, 24, 32)
    coc[..., 16:] = 6.0
    coc[1, :, :, 24:] = -7.0
    return target, coc


def test_identical_images_are_perfect_and_empty_bands_are_nan():
    target, coc = _scene()
    scores = DefocusBandScores()
    scores.update(target.clone(), target, coc)
    rows = {r["band"]: r for r in scores.rows()}
    assert rows["blur radius < 1 px"]["psnr"] == math.inf
    assert rows["blur radius < 1 px"]["mae"] == 0.0
    assert rows["blur radius < 1 px"]["ssim"] == pytest.approx(1.0)
    assert (
        math.isnan(rows["blur radius 1-3 px"]["psnr"])
        and rows["blur radius 1-3 px"]["fraction"] == 0
    )
    assert rows["blur radius < 1 px"]["fraction"] == pytest.approx(0.5)
    assert rows["blur radius >= 5 px"]["fraction"] == pytest.approx(0.5)
    assert sum(r["fraction"] for r in scores.rows() if r["band"] != "all pixels") == pytest.approx(
        1
    )


def test_error_only_in_defocused_pixels_lands_in_that_band_by_absolute_radius():
    target, coc = _scene()
    pred = target.clone()
    pred[..., 16:] = (pred[..., 16:] + 0.1).clamp(0, 1)
    scores = DefocusBandScores()
    scores.update(pred, target, coc)
    rows = {r["band"]: r for r in scores.rows()}
    assert rows["blur radius < 1 px"]["psnr"] == math.inf
    strong = rows["blur radius >= 5 px"]
    expected = (pred[..., 16:] - target[..., 16:]).double().square().mean()
    assert strong["psnr"] == pytest.approx(float(-10 * torch.log10(expected)), abs=1e-9)
    assert strong["mae"] == pytest.approx(
        float((pred - target)[..., 16:].double().abs().mean()), abs=1e-9
    )
    assert strong["ssim"] < 1.0


def test_one_band_over_all_pixels_of_one_image_equals_the_image_psnr():
    target, coc = _scene(1)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    scores = DefocusBandScores(edges=(0.0, math.inf))
    scores.update(pred[:1], target[:1], coc[:1])
    band, everything = scores.rows()
    assert band["psnr"] == pytest.approx(float(psnr(pred[:1], target[:1])[0]), abs=1e-9)
    assert everything["psnr"] == pytest.approx(band["psnr"])


def test_updates_pool_pixels_across_batches():
    target, coc = _scene(2)
    pred = (target + 0.03 * torch.randn_like(target)).clamp(0, 1)
    together, apart = DefocusBandScores(), DefocusBandScores()
    together.update(pred, target, coc)
    apart.update(pred[:1], target[:1], coc[:1])
    apart.update(pred[1:], target[1:], coc[1:, 0])  # BxHxW CoC is accepted too
    for a, b in zip(together.rows(), apart.rows(), strict=True):
        assert a["band"] == b["band"]
        for key in ("fraction", "psnr", "ssim", "mae"):
            assert a[key] == pytest.approx(b[key], nan_ok=True)


def test_bad_edges_and_mismatched_coc_are_refused():
    with pytest.raises(MetricError, match="increase"):
        DefocusBandScores(edges=(0.0, 3.0, 1.0))
    target, coc = _scene()
    with pytest.raises(MetricError, match="CoC map"):
        DefocusBandScores().update(target, target, coc[..., :8])
