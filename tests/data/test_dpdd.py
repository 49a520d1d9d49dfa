import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dpdeblur.data.datasets import DPDDDataset
from dpdeblur.data.io import write_png
from dpdeblur.data.layout import DPDD_INDOOR_POSITIONS, dpdd_scene_labels, resolve_dpdd_root
from dpdeblur.errors import BitDepthError, DataError, ImageReadError


@pytest.mark.parametrize("layout", ["official", "restormer"])
def test_both_layouts_are_detected_and_read_bit_exactly(make_dpdd_tree, layout):
    root, written = make_dpdd_tree(layout=layout)
    assert resolve_dpdd_root(root) == (root, layout)
    for split, samples in written.items():
        dataset = DPDDDataset(root, split)
        assert dataset.layout == layout and len(dataset) == len(samples)
        for i, expected in enumerate(samples):
            sample = dataset[i]
            assert sample["bit_depth"] == 16
            for role in ("left", "right", "combined", "target"):
                assert sample[role].dtype == torch.float32 and sample[role].shape == (3, 12, 20)
                back = np.round(sample[role].permute(1, 2, 0).numpy() * 65535).astype(np.uint16)
                np.testing.assert_array_equal(back, expected[role])


def test_parent_of_the_tree_is_accepted(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree(name="dd_dp_dataset_png")
    assert resolve_dpdd_root(tmp_path)[0] == root


def test_pairing_uses_sorted_order_though_target_names_differ(make_dpdd_tree):
    root, _written = make_dpdd_tree(counts={"train": 4})
    sources = sorted(p.stem for p in (root / "train_c" / "source").iterdir())
    targets = sorted(p.stem for p in (root / "train_c" / "target").iterdir())
    assert not set(sources) & set(targets)  # names differ, as in DPDD
    dataset = DPDDDataset(root, "train")
    for i, record in enumerate(dataset.records):
        assert record.name == sources[i] and record.target.stem == targets[i]
        assert record.left.name == f"{sources[i]}_L.png"


def test_test_split_of_76_carries_indoor_outdoor(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"test": 76}, size=(4, 4))
    dataset = DPDDDataset(root, "test")
    labels = [r.scene for r in dataset.records]
    assert labels.count("indoor") == 37 and labels.count("outdoor") == 39
    assert labels[8] == "indoor" and labels[7] == "outdoor" and labels[75] == "indoor"
    assert dataset[16]["scene"] == "indoor"
    assert len(DPDD_INDOOR_POSITIONS) == 37
    assert dpdd_scene_labels(5) == [None] * 5


def test_missing_split_folder(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2})
    with pytest.raises(DataError, match=r"missing .* folder of split 'val'") as err:
        DPDDDataset(root, "val")
    assert "val_" in str(err.value)


def test_count_mismatch_between_views(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 3})
    next((root / "train_r" / "source").iterdir()).unlink()
    with pytest.raises(DataError, match="different file counts") as err:
        DPDDDataset(root, "train")
    assert "right 2" in str(err.value)


def test_left_right_size_mismatch_names_the_file(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2})
    right = sorted((root / "train_r" / "source").iterdir())[1]
    write_png(right, np.zeros((10, 20, 3), np.uint16))
    dataset = DPDDDataset(root, "train")
    dataset[0]
    with pytest.raises(DataError, match="same size") as err:
        dataset[1]
    assert right.name in str(err.value)


def test_8bit_file_in_16bit_dataset_is_an_error_or_a_warning(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2})
    left = sorted((root / "train_l" / "source").iterdir())[0]
    write_png(left, np.zeros((12, 20, 3), np.uint8))
    with pytest.raises(BitDepthError, match="8-bit image where 16-bit") as err:
        DPDDDataset(root, "train")[0]
    assert left.name in str(err.value) and "allow_8bit" in str(err.value)
    with pytest.warns(UserWarning, match="8-bit"):
        sample = DPDDDataset(root, "train", allow_8bit=True)[0]
    assert sample["bit_depth"] == 8


def test_corrupt_png(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2})
    target = sorted((root / "train_c" / "target").iterdir())[0]
    target.write_bytes(target.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="cannot decode") as err:
        DPDDDataset(root, "train")[0]
    assert target.name in str(err.value)


def test_empty_folder(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2})
    folder = root / "train_c" / "target"
    shutil.rmtree(folder)
    folder.mkdir()
    with pytest.raises(DataError, match="empty target folder"):
        DPDDDataset(root, "train")


def test_path_that_is_not_a_dataset(tmp_path: Path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="not a DPDD dataset"):
        DPDDDataset(tmp_path / "photos", "train")
    with pytest.raises(DataError, match="does not exist"):
        DPDDDataset(tmp_path / "nowhere", "train")


def test_misnamed_view_is_caught(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2})
    left = sorted((root / "train_l" / "source").iterdir())[1]
    left.rename(left.with_name("ZZZ_L.png"))
    with pytest.raises(DataError, match="does not match combined"):
        DPDDDataset(root, "train")
