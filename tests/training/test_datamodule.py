import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from dpdeblur.data.streams import EpochStreamSampler
from dpdeblur.errors import DataError
from dpdeblur.training.datamodule import DPDataModule

CONF = str((__import__("pathlib").Path(__file__).parents[2] / "conf").resolve())


def test_dpdd_loaders_give_batched_crops_and_whole_test_images(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 5, "val": 2, "test": 2}, size=(24, 40))
    dm = DPDataModule("dpdd", root=str(root), batch_size=2, num_workers=0, crop_size=16)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["left"].shape == (2, 3, 16, 16) and batch["target"].shape == (2, 3, 16, 16)
    assert batch["bit_depth"].tolist() == [16, 16] and len(batch["name"]) == 2
    val = next(iter(dm.val_dataloader()))
    assert val["left"].shape == (1, 3, 24, 40)
    dm.setup("test")
    assert len(dm.test_dataloader()) == 2


def test_val_crop_centre_crops_validation_only(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2, "val": 1}, size=(24, 40))
    dm = DPDataModule("dpdd", root=str(root), num_workers=0, crop_size=16, val_crop=8)
    dm.setup("fit")
    assert next(iter(dm.val_dataloader()))["left"].shape[-2:] == (8, 8)


def test_pixel_is_predict_only(tmp_path):
    dm = DPDataModule("pixel", root=str(tmp_path), num_workers=0)
    with pytest.raises(DataError, match="no ground truth"):
        dm.setup("fit")


def test_missing_root_and_unknown_dataset_are_clear():
    with pytest.raises(DataError, match=r"data\.root is not set"):
        DPDataModule("dpdd")
    with pytest.raises(DataError, match="unknown dataset"):
        DPDataModule("imagenet")


def test_epoch_stream_sampler_moves_on_each_epoch():
    sampler = EpochStreamSampler(3)
    assert list(sampler) == [0, 1, 2]
    sampler.set_epoch(2)
    assert list(sampler) == [6, 7, 8]


@pytest.mark.parametrize("name", ["dpdd", "pixel", "synthetic"])
def test_data_configs_compose_and_instantiate(name, tmp_path):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(
            config_name=f"data/{name}",
            overrides=[f"data.root={tmp_path}"],
        )
    dm = instantiate(cfg.data)
    assert isinstance(dm, DPDataModule) and dm.dataset == name


def test_synthetic_training_stream_renders_new_scenes_each_epoch():
    dm = DPDataModule(
        "synthetic",
        num_workers=0,
        batch_size=2,
        crop_size=32,
        synthetic={
            "train_length": 2,
            "val_length": 1,
            "test_length": 1,
            "size": [32, 32],
            "seed": 3,
        },
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    first = next(iter(loader))["target"]
    again = next(iter(loader))["target"]
    assert torch.equal(first, again)  # same epoch, same scenes: bitwise in one process
    loader.sampler.set_epoch(1)
    assert not torch.equal(first, next(iter(loader))["target"])
    assert next(iter(dm.val_dataloader()))["left"].shape == (1, 3, 32, 32)


def test_train_repeats_multiplies_the_epoch(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 3}, size=(24, 40))
    dm = DPDataModule(
        "dpdd", root=str(root), batch_size=1, num_workers=0, crop_size=16, train_repeats=4
    )
    dm.build("train")
    assert len(dm.train_dataloader()) == 12
