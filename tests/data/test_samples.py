"""What makes a DP sample valid, how view files are named, and which way up views go."""

from pathlib import Path

import numpy as np
import pytest

from dpdeblur.data.layout import sample_name, split_view_suffix
from dpdeblur.data.samples import (
    DecodedFile,
    bit_depth_error,
    is_portrait,
    landscape_to_portrait,
    portrait_to_landscape,
    sample_problems,
)
from dpdeblur.errors import BitDepthError, DataError


def decoded(role: str, size=(12, 20), bits: int = 16) -> DecodedFile:
    return DecodedFile(role, Path(f"/data/{role}/scene.png"), size, bits)


def test_a_good_sample_has_no_problems():
    files = [decoded(role) for role in ("left", "right", "combined", "target")]
    assert sample_problems(files, min_bits=16, how_to_accept="x") == []


def test_a_lower_bit_depth_is_a_bit_depth_error_with_the_fix():
    files = [decoded("left"), decoded("right", bits=8)]
    (problem,) = sample_problems(files, min_bits=16, how_to_accept="pass --allow-8bit")
    assert isinstance(problem, BitDepthError)
    assert problem.path == files[1].path
    assert str(problem) == (
        "/data/right/scene.png: 8-bit image where 16-bit is expected -- "
        "use the original 16-bit files, or pass --allow-8bit"
    )
    assert sample_problems(files) == []  # no min_bits: any depth is fine


def test_a_size_mismatch_names_both_files_in_wxh():
    files = [decoded("left"), decoded("right"), decoded("target", size=(8, 10))]
    (problem,) = sample_problems(files)
    assert type(problem) is DataError and problem.path == files[2].path
    # the roles, not the first file's name: the same mismatch reads the same in every sample
    assert problem.problem == "target image is 10x8 but the left image is 20x12 (WxH)"
    assert "same size" in str(problem)


def test_problems_come_file_by_file():
    files = [decoded("left"), decoded("right", size=(8, 8), bits=8), decoded("target", bits=8)]
    problems = sample_problems(files, min_bits=16, how_to_accept="x")
    assert [(type(p), p.path.parent.name) for p in problems] == [
        (BitDepthError, "right"),
        (DataError, "right"),
        (BitDepthError, "target"),
    ]


def test_bit_depth_error_only_below_the_minimum():
    path = Path("a.png")
    assert bit_depth_error(path, 16, 16, "x") is None
    assert bit_depth_error(path, 8, None, "x") is None
    assert isinstance(bit_depth_error(path, 8, 16, "x"), BitDepthError)


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("scene_L", ("scene", "left")),
        ("scene_r", ("scene", "right")),
        ("a_b_R", ("a_b", "right")),
        ("scene", ("scene", None)),
        ("scene_X", ("scene_X", None)),
        ("_L", ("_L", None)),
    ],
)
def test_split_view_suffix(stem, expected):
    assert split_view_suffix(stem) == expected


def test_sample_name_strips_only_the_views_own_suffix():
    assert sample_name(Path("x/scene_L.png"), "left") == "scene"
    assert sample_name(Path("x/scene_l.png"), "left") == "scene"
    assert sample_name(Path("x/scene_R.png"), "left") == "scene_R"
    assert sample_name(Path("x/scene.png"), "right") == "scene"


def test_portrait_goes_counter_clockwise_to_landscape_and_back():
    portrait = np.arange(4 * 3 * 2).reshape(4, 3, 2)
    assert is_portrait(portrait) and not is_portrait(portrait.transpose(1, 0, 2))
    landscape = portrait_to_landscape(portrait)
    assert landscape.shape == (3, 4, 2)
    # counter-clockwise: the landscape's top row is the portrait's last column
    np.testing.assert_array_equal(landscape[0], portrait[:, -1])
    np.testing.assert_array_equal(landscape_to_portrait(landscape), portrait)
