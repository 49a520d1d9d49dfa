import cv2
import numpy as np
import pytest

from dpdeblur.data.datasets import PixelDataset
from dpdeblur.data.io import write_png
from dpdeblur.errors import DataError


def portrait_pair(folder, name, grey=False, left_suffix="_L", right_suffix="_R"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(name))
    for suffix in (left_suffix, right_suffix):
        if grey:
            cv2.imwrite(
                str(folder / f"{name}{suffix}.png"),
                rng.integers(0, 65536, (10, 6)).astype(np.uint16),
            )
        else:
            write_png(
                folder / f"{name}{suffix}.png", rng.integers(0, 65536, (10, 6, 3)).astype(np.uint16)
            )


def test_flat_folder_of_pairs_rotates_portrait_to_landscape(tmp_path):
    portrait_pair(tmp_path, "b")
    portrait_pair(tmp_path, "a")
    dataset = PixelDataset(tmp_path)
    assert dataset.layout == "pairs" and [r.name for r in dataset.records] == ["a", "b"]
    sample = dataset[0]
    assert sample["left"].shape == (3, 6, 10) and "target" not in sample
    kept = PixelDataset(tmp_path, keep_orientation=True)[0]
    assert kept["left"].shape == (3, 10, 6)
    # counter-clockwise: the top row of the landscape image is the last column of the portrait
    assert (sample["left"][:, 0, :] == kept["left"][:, :, -1]).all()


def test_dpdd_style_tree_with_green_only_views(tmp_path):
    portrait_pair(tmp_path / "test_l" / "source", "p1", grey=True, right_suffix="_L")
    portrait_pair(tmp_path / "test_r" / "source", "p1", grey=True, left_suffix="_R")
    with pytest.warns(UserWarning, match="single-channel"):
        dataset = PixelDataset(tmp_path)
        sample = dataset[0]
    assert dataset.layout == "official" and sample["right"].shape == (3, 6, 10)
    assert (sample["left"][0] == sample["left"][1]).all()


def test_unpaired_view_is_named(tmp_path):
    portrait_pair(tmp_path, "a")
    (tmp_path / "a_R.png").unlink()
    with pytest.raises(DataError, match="no _R partner") as err:
        PixelDataset(tmp_path)
    assert "a_R.png" in str(err.value)


def test_folder_without_pairs(tmp_path):
    write_png(tmp_path / "photo.png", np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(DataError, match="no DP pairs"):
        PixelDataset(tmp_path)
