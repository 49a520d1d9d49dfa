"""Thin-lens CoC and DP kernels (protocol.md, "DP image formation"; DPANet eq. 2, Fig. 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpdeblur.data.optics import (
    ThinLensCamera,
    dp_disparity_px,
    dp_kernels,
    kernel_centroid,
)

RADII = [0.0, 0.3, 0.5, 0.51, 0.75, 1.0, 1.5, 2.0, 2.7, 3.0, 4.4, 6.0, 9.5, 13.0, 16.0, 21.3]
KINDS = ["hard", "soft"]


def embed(kernel: np.ndarray, size: int) -> np.ndarray:
    """A kernel zero-padded to size x size, centres aligned."""
    out = np.zeros((size, size), np.float64)
    pad = (size - kernel.shape[0]) // 2
    out[pad : pad + kernel.shape[0], pad : pad + kernel.shape[1]] = kernel
    return out


# -- thin lens --------------------------------------------------------------------------


def test_coc_formula_matches_thin_lens_equation():
    camera = ThinLensCamera(
        focal_length_mm=35.0, f_number=2.0, focus_distance_m=1.5, pixel_pitch_um=5.0
    )
    a, focal, s = 35.0 / 2.0, 35.0, 1500.0
    for depth_m in (0.4, 1.0, 1.5, 3.0, 50.0):
        expected_mm = a * focal / (2 * (s - focal)) * (1 - s / (depth_m * 1000.0))
        assert camera.coc_radius_px(depth_m) == pytest.approx(expected_mm / 5e-3, rel=1e-12)


def test_coc_sign_front_and_behind_focus():
    camera = ThinLensCamera()
    assert camera.coc_radius_px(camera.focus_distance_m) == pytest.approx(0.0, abs=1e-12)
    assert camera.coc_radius_px(10.0) > 0  # behind the focal plane
    assert camera.coc_radius_px(1.0) < 0  # in front
    depths = np.linspace(0.6, 50.0, 200)
    assert np.all(np.diff(camera.coc_radius_px(depths)) > 0)  # grows with depth


def test_default_camera_gives_blur_of_a_few_to_fifteen_pixels():
    camera = ThinLensCamera()
    assert camera.coc_scale_px == pytest.approx(14.95, abs=0.01)  # background at infinity
    assert camera.coc_radius_px(3.0) == pytest.approx(4.98, abs=0.01)
    assert camera.coc_radius_px(1.2) == pytest.approx(-9.97, abs=0.01)


def test_depth_for_coc_inverts_coc_radius():
    camera = ThinLensCamera(f_number=2.8, focus_distance_m=3.0)
    depths = np.array([0.7, 1.0, 2.9, 3.0, 8.0, 40.0])
    assert np.allclose(camera.depth_for_coc(camera.coc_radius_px(depths)), depths, rtol=1e-10)
    assert math.isinf(camera.depth_for_coc(camera.coc_scale_px + 1.0))


def test_camera_rejects_bad_parameters():
    with pytest.raises(ValueError):
        ThinLensCamera(focus_distance_m=0.04)  # closer than the focal length
    with pytest.raises(ValueError):
        ThinLensCamera(f_number=0.0)
    with pytest.raises(ValueError):
        ThinLensCamera().coc_radius_px(0.0)


# -- DP kernels -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_kernels_are_exact_mirrors_each_holding_half_the_light(kind):
    for magnitude in RADII:
        for radius in (magnitude, -magnitude):
            left, right = dp_kernels(radius, kind)
            assert left.dtype == np.float32 and left.shape == right.shape
            assert left.shape[0] % 2 == 1 and left.shape[0] == left.shape[1]
            assert np.array_equal(right, left[:, ::-1]), (kind, radius)
            assert left.sum(dtype=np.float64) == pytest.approx(0.5, abs=1e-6)
            assert right.sum(dtype=np.float64) == pytest.approx(0.5, abs=1e-6)
            assert left.min() >= 0.0
            full = left.astype(np.float64) + right
            assert np.allclose(full, full[::-1, :], atol=1e-7)  # the full kernel is round
            assert np.allclose(full, full[:, ::-1], atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
def test_in_focus_kernels_are_a_half_delta(kind):
    for radius in (0.0, 0.2, -0.4, 0.5, -0.5):
        left, right = dp_kernels(radius, kind)
        assert left.shape == (1, 1) and left[0, 0] == 0.5 and right[0, 0] == 0.5


def test_hard_kernels_are_half_discs_on_the_side_of_fig2():
    left, right = dp_kernels(6.0, "hard")  # behind focus: left view = RIGHT half-disc
    centre = left.shape[1] // 2
    assert np.all(left[:, :centre] == 0) and left[:, centre + 1 :].sum() > 0.4
    assert np.all(right[:, centre + 1 :] == 0)
    # the centre column is shared equally by the two views
    assert np.array_equal(left[:, centre], right[:, centre])
    front_left, front_right = dp_kernels(-6.0, "hard")  # in front: the two swap
    # bitwise: both signs mirror one computation of the |r| kernel
    assert np.array_equal(front_left, right) and np.array_equal(front_right, left)


def test_hard_kernel_interior_is_flat_with_antialiased_rim():
    left, _ = dp_kernels(8.0, "hard")
    centre = left.shape[0] // 2
    interior = left[centre - 3 : centre + 4, centre + 1 : centre + 4]
    assert np.allclose(interior, interior.max())
    rim_values = left[(left > 0) & (left < 0.999 * interior.max())]
    assert rim_values.size > 0  # fractional coverage on the edge


@pytest.mark.parametrize("kind", KINDS)
def test_kernels_change_continuously_with_radius(kind):
    # anti-aliased rims: a small change of radius makes a proportionally small change
    for radius in (0.5, 0.9, 1.5, 3.2, 7.5, -4.6, 12.0):
        for step in (1e-3, 1e-5):
            a = dp_kernels(radius, kind)[0]
            b = dp_kernels(radius + step * np.sign(radius), kind)[0]
            size = max(a.shape[0], b.shape[0])
            assert np.abs(embed(a, size) - embed(b, size)).max() < 5 * step, (radius, step)


def test_hard_disparity_is_042_times_the_blur_diameter():
    # half-disc centroid 4r/(3 pi) each side: separation 8r/(3 pi) = 0.4244 x diameter 2r
    for radius in np.linspace(2.0, 20.0, 19):
        shift = dp_disparity_px(radius, "hard")
        assert shift / (2 * radius) == pytest.approx(8 / (3 * math.pi) / 2, rel=0.02)
        assert dp_disparity_px(-radius, "hard") == pytest.approx(-shift, abs=1e-9)
    assert 8 / (3 * math.pi) / 2 == pytest.approx(0.4244, abs=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_disparity_sign_flips_across_the_focal_plane(kind):
    camera = ThinLensCamera()
    behind = dp_disparity_px(camera.coc_radius_px(6.0), kind)
    front = dp_disparity_px(camera.coc_radius_px(1.3), kind)
    assert behind > 0.5 and front < -0.5  # left view right of right view behind focus
    assert dp_disparity_px(camera.coc_radius_px(camera.focus_distance_m), kind) == 0.0


def test_soft_disparity_grows_with_radius_and_is_smaller_than_hard():
    radii = np.linspace(1.0, 18.0, 12)
    shifts = np.array([dp_disparity_px(r, "soft") for r in radii])
    assert np.all(np.diff(shifts) > 0)
    hard = np.array([dp_disparity_px(r, "hard") for r in radii])
    assert np.all(shifts < hard)
    ratio = shifts[2:] / (2 * radii[2:])
    assert np.all((ratio > 0.1) & (ratio < 0.3))  # a ramp: about |r| / 2 apart, not 0.85 |r|


def test_soft_kernel_peaks_inside_and_has_no_hard_cut():
    left, _ = dp_kernels(10.0, "soft")
    centre = left.shape[1] // 2
    # a linear ramp: weight grows to the right inside the disc
    row = left[centre, centre - 6 : centre + 5].astype(np.float64)
    assert np.all(np.diff(row) > 0)
    # the left half still receives light (ramp, not a hard half-disc)
    assert left[:, :centre].sum() > 0.05
    centroid_x, centroid_y = kernel_centroid(left)
    assert centroid_x > 0 and centroid_y == pytest.approx(0.0, abs=1e-6)


def test_dp_kernels_rejects_bad_input():
    with pytest.raises(ValueError):
        dp_kernels(3.0, "gaussian")
    with pytest.raises(ValueError):
        dp_kernels(float("nan"))
