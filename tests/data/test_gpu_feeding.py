"""Feeding a GPU from DPDD: uint16 samples converted on the device, bit for bit as on the
CPU; the loader settings chosen from the machine's cores; the cache on by default."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch.utils.data import DataLoader, default_collate

from dpdeblur.data.datasets import DPDDDataset
from dpdeblur.data.streams import RandomCrops
from dpdeblur.data.transforms import (
    CenterCrop,
    Compose,
    RandomResize,
    ToTensor,
    chw_uint16,
    collate_samples,
    images_to_float,
)
from dpdeblur.errors import DataError
from dpdeblur.training import datamodule as datamodule_module
from dpdeblur.training.datamodule import DPDataModule, auto_workers

CONF = str((__import__("pathlib").Path(__file__).parents[2] / "conf").resolve())
IMAGES = ("left", "right", "combined", "target")


def test_integer_samples_become_the_float_samples_bit_for_bit(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2, "test": 1})
    crop = Compose([CenterCrop(8)])
    floats = DPDDDataset(root, "train", crop)
    integers = DPDDDataset(root, "train", crop, integer_images=True)
    items = [integers[i] for i in range(2)]
    assert all(item[role].dtype == torch.uint16 for item in items for role in IMAGES)
    batch = images_to_float(default_collate(items))
    expected = default_collate([floats[i] for i in range(2)])
    for role in IMAGES:
        assert batch[role].dtype == torch.float32 and torch.equal(batch[role], expected[role])
    assert batch["name"] == expected["name"] and torch.equal(
        batch["bit_depth"], expected["bit_depth"]
    )


def test_8bit_files_are_widened_so_that_their_floats_do_not_change(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 1}, bits=8)
    with pytest.warns(UserWarning, match="8-bit"):
        integer = DPDDDataset(root, "train", allow_8bit=True, integer_images=True)[0]
    with pytest.warns(UserWarning, match="8-bit"):
        floats = DPDDDataset(root, "train", allow_8bit=True)[0]
    assert integer["bit_depth"] == 8 and integer["left"].dtype == torch.uint16
    assert torch.equal(images_to_float(integer)["left"], floats["left"])


def test_every_uint16_value_converts_as_the_cpu_path_does():
    values = np.arange(65536, dtype=np.uint16).reshape(-1, 64, 1).repeat(3, axis=2)
    flipped = values[::-1, ::-1]
    converted = images_to_float({"left": chw_uint16(flipped), "name": "x"})
    assert converted["name"] == "x"
    assert torch.equal(converted["left"], ToTensor()({"left": flipped})["left"])
    with pytest.raises(TypeError, match="uint16"):
        images_to_float({"left": torch.zeros(3, 2, 2, dtype=torch.int32)})


def test_float_images_pass_through_unchanged():
    sample = ToTensor(integers=True)({"left": np.full((4, 4, 3), 0.5, np.float32)})
    assert sample["left"].dtype == torch.float32
    assert images_to_float(sample)["left"] is sample["left"]


def test_datamodule_converts_after_the_transfer_and_applies_the_precision(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 3}, size=(24, 40))
    dm = DPDataModule(
        "dpdd", root=str(root), batch_size=3, num_workers=0, crop_size=16, cache_dir=None
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["left"].dtype == torch.uint16 and batch["left"].shape == (3, 3, 16, 16)
    converted = dm.on_after_batch_transfer(batch, 0)
    assert converted["left"].dtype == torch.float32 and converted["left"].max() <= 1
    assert dm.on_after_batch_transfer([1, 2], 0) == [1, 2]

    def to_bf16(data):
        return {
            k: v.bfloat16() if torch.is_tensor(v) and v.is_floating_point() else v
            for k, v in data.items()
        }

    dm.trainer = SimpleNamespace(precision_plugin=SimpleNamespace(convert_input=to_bf16))
    assert dm.on_after_batch_transfer(batch, 0)["target"].dtype == torch.bfloat16


def test_a_worker_loader_delivers_the_same_pixels(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree(counts={"train": 2}, size=(16, 24))
    dataset = DPDDDataset(
        root, "train", Compose([CenterCrop(8)]), cache_dir=tmp_path / "c", integer_images=True
    )
    loader = DataLoader(dataset, batch_size=2, num_workers=1, persistent_workers=True)
    batch = next(iter(loader))
    expected = default_collate(
        [DPDDDataset(root, "train", Compose([CenterCrop(8)]))[i] for i in range(2)]
    )
    assert batch["left"].dtype == torch.uint16
    assert torch.equal(images_to_float(batch)["target"], expected["target"])


@pytest.mark.parametrize(
    ("cores", "processes", "workers"),
    [(2, 1, 1), (1, 1, 0), (16, 1, 8), (64, 1, 8), (16, 8, 1), (16, 4, 3), (4, 8, 0)],
)
def test_auto_workers_share_the_cores_and_keep_one_per_process(cores, processes, workers):
    assert auto_workers(processes, cores=cores) == workers


def test_auto_settings_follow_the_machine_and_the_trainer(make_dpdd_tree, monkeypatch):
    root, _ = make_dpdd_tree(counts={"train": 1})
    monkeypatch.setattr(datamodule_module, "usable_cores", lambda: 9)
    dm = DPDataModule("dpdd", root=str(root))
    assert (dm.num_workers, dm.pin_memory, dm.persistent_workers) == ("auto",) * 3
    assert dm.workers() == 8
    assert dm.pinned() == torch.cuda.is_available()
    trainer = SimpleNamespace(
        num_devices=4, strategy=SimpleNamespace(root_device=torch.device("cuda", 0))
    )
    dm.trainer = trainer
    assert dm.workers() == 1 and dm.pinned()
    trainer.strategy.root_device = torch.device("cpu")
    assert not dm.pinned()
    fixed = DPDataModule("dpdd", root=str(root), num_workers=3, pin_memory=False)
    fixed.trainer = trainer
    assert fixed.workers() == 3 and not fixed.pinned()


def test_training_workers_persist_by_default_and_validation_workers_do_not(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2, "val": 1}, size=(24, 40))
    dm = DPDataModule("dpdd", root=str(root), num_workers=1, crop_size=16, cache_dir=None)
    dm.setup("fit")
    assert dm.train_dataloader().persistent_workers
    assert not dm.val_dataloader().persistent_workers
    off = DPDataModule(
        "dpdd",
        root=str(root),
        num_workers=1,
        crop_size=16,
        cache_dir=None,
        persistent_workers=False,
    )
    off.setup("fit")
    assert not off.train_dataloader().persistent_workers


@pytest.mark.parametrize(
    ("option", "value"), [("num_workers", "many"), ("pin_memory", "yes"), ("persistent_workers", 2)]
)
def test_loader_settings_other_than_auto_must_have_their_type(option, value, tmp_path):
    with pytest.raises(DataError, match=f"data.{option} must be"):
        DPDataModule("dpdd", root=str(tmp_path), **{option: value})


def test_the_dpdd_recipe_caches_and_chooses_its_loader_settings(make_dpdd_tree, monkeypatch):
    monkeypatch.delenv("DPDEBLUR_CACHE_DIR", raising=False)
    root, _ = make_dpdd_tree(counts={"train": 2, "val": 1})
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="data/dpdd", overrides=[f"data.root={root}", "data.crop_size=8"])
    dm = instantiate(cfg.data)
    assert (dm.cache_dir, dm.num_workers, dm.pin_memory) == ("auto", "auto", "auto")
    assert dm.cache_folder() == root / ".dpdeblur_cache"
    dm.setup("fit")
    dm.build("train")[0]
    assert len(list((root / ".dpdeblur_cache" / "train").glob("*.npy"))) == 3  # L, R, target


def test_pixel_is_not_cached_unless_asked(tmp_path):
    assert DPDataModule("pixel", root=str(tmp_path)).cache_folder() is None
    asked = DPDataModule("pixel", root=str(tmp_path), cache_dir=str(tmp_path / "c"))
    assert asked.cache_folder() == tmp_path / "c"


def test_a_batch_is_written_once_and_collated_without_a_copy(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 3}, size=(16, 24))
    crop = Compose([CenterCrop(8)])
    dataset = DPDDDataset(root, "train", crop, integer_images=True)
    items = dataset.__getitems__([2, 0, 1])
    batch = collate_samples(items)
    assert batch["left"].data_ptr() == items[0]["left"].data_ptr()  # the rows' own tensor
    expected = default_collate([dataset[i] for i in (2, 0, 1)])
    for role in IMAGES:
        assert batch[role].dtype == torch.uint16 and torch.equal(batch[role], expected[role])
    assert batch["name"] == expected["name"]
    assert torch.equal(default_collate(items)["left"], batch["left"])  # a plain collate copies
    repeated = RandomCrops(dataset, 2).__getitems__([5, 3])  # images 2 and 0
    assert torch.equal(collate_samples(repeated)["target"], expected["target"][:2])


def test_batches_of_float_images_are_made_sample_by_sample(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2}, size=(16, 24))
    resized = Compose([RandomResize(10, 10)])
    items = DPDDDataset(root, "train", resized, integer_images=True).__getitems__([0, 1])
    assert items[0]["left"].dtype == torch.float32 and items[0]["left"]._base is None
    assert collate_samples(items)["left"].shape == (2, 3, 10, 10)


def test_the_training_loader_collates_in_workers_without_copies(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree(counts={"train": 4}, size=(16, 24))
    dm = DPDataModule(
        "dpdd", root=str(root), batch_size=4, num_workers=1, crop_size=8, vflip=0, hflip_swap=0
    )
    loader = dm.train_dataloader()
    assert loader.collate_fn is collate_samples
    batch = next(iter(loader))
    assert batch["left"].dtype == torch.uint16 and batch["left"].shape == (4, 3, 8, 8)
    converted = dm.on_after_batch_transfer(batch, 0)
    assert converted["left"].dtype == torch.float32
