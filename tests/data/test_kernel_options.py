"""Soft DP kernels of varied shapes: ``ramp_width`` and per-scene ``kernel_options`` ranges."""

from __future__ import annotations

import numpy as np
import pytest

from dpdeblur.data.optics import dp_disparity_px, dp_kernels
from dpdeblur.data.synthetic import SceneSettings, draw_kernel_options, render_sample


def test_a_narrower_ramp_splits_the_views_more_sharply():
    default = dp_kernels(5.0, "soft")
    same = dp_kernels(5.0, "soft", ramp_width=1.0)
    assert all(np.array_equal(a, b) for a, b in zip(default, same, strict=True))
    ratios = [dp_disparity_px(6.0, "soft", ramp_width=w) / 12.0 for w in (1.0, 0.6, 0.2)]
    assert ratios[0] == pytest.approx(0.189, abs=0.005)  # docs/synthetic.md, "DP kernels"
    assert ratios[0] < ratios[1] < ratios[2] < dp_disparity_px(6.0, "hard") / 12.0
    left, right = dp_kernels(-4.0, "soft", ramp_width=0.3)
    assert np.array_equal(right, left[:, ::-1]) and left.sum() == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="ramp_width"):
        dp_kernels(3.0, "soft", ramp_width=0.0)


def test_kernel_option_ranges_are_drawn_per_scene():
    settings = SceneSettings(kernel_options={"sigma_frac": [0.05, 0.2], "ramp_width": 0.5})
    assert settings.kernel_options == {"sigma_frac": (0.05, 0.2), "ramp_width": 0.5}
    drawn = [
        draw_kernel_options(np.random.default_rng(i), settings.kernel_options) for i in range(20)
    ]
    assert all(0.05 <= d["sigma_frac"] <= 0.2 and d["ramp_width"] == 0.5 for d in drawn)
    assert len({d["sigma_frac"] for d in drawn}) == 20
    rng = np.random.default_rng(3)
    assert draw_kernel_options(rng, {"ramp_width": 0.5}) == {"ramp_width": 0.5}
    assert rng.random() == np.random.default_rng(3).random()  # fixed options draw nothing
    with pytest.raises(ValueError, match=r"kernel_options\.sigma_frac"):
        SceneSettings(kernel_options={"sigma_frac": [0.2, 0.05]})


def test_a_sample_records_the_kernel_shape_it_was_rendered_with():
    options = {"sigma_frac": [0.05, 0.2], "ramp_width": [0.2, 1.0]}
    first = render_sample([4, 2], (32, 40), kernel_options=options)
    again = render_sample([4, 2], (32, 40), kernel_options=options)
    drawn = first["meta"]["kernel_options"]
    assert 0.2 <= drawn["ramp_width"] <= 1.0 and drawn == again["meta"]["kernel_options"]
    assert np.array_equal(first["left"], again["left"])  # one machine: bit for bit
