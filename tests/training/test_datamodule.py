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


def test_a_shuffled_epoch_stream_is_a_permutation_of_its_seed_and_epoch():
    sampler = EpochStreamSampler(10, shuffle=True, seed=4)
    first = list(sampler)
    torch.rand(10)  # the process's random state plays no part
    assert list(sampler) == first and sorted(first) == list(range(10)) and first != sorted(first)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(10, 20)) and [i - 10 for i in second] != first
    assert list(EpochStreamSampler(10, shuffle=True, seed=5)) != first


def _crop_batches(root, workers: int, epochs: int = 2, **options) -> list[dict]:
    torch.manual_seed(123)  # crop_seed: torch's seed when the module is made
    dm = DPDataModule(
        "dpdd", root=str(root), batch_size=2, num_workers=workers, crop_size=8, **options
    )
    loader = dm.train_dataloader()
    batches = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        batches += list(loader)
    return batches


def test_dpdd_crops_are_the_same_with_any_number_of_workers(make_dpdd_tree):
    # Each crop and flip is drawn from (crop_seed, epoch, index), never from a worker's
    # random state; the pixels are copied, not computed, so equality is exact.
    root, _ = make_dpdd_tree(counts={"train": 3}, size=(20, 28))
    direct = _crop_batches(root, 0, train_repeats=2)
    assert len(direct) == 6  # 3 images x 2 crops each, batch 2, two epochs
    for workers in (1, 2):
        loaded = _crop_batches(root, workers, train_repeats=2)
        assert [b["name"] for b in loaded] == [b["name"] for b in direct]
        for ours, theirs in zip(loaded, direct, strict=True):
            for key in ("left", "right", "target"):
                assert torch.equal(ours[key], theirs[key])
    # another epoch cuts other crops; another seed too
    first, second = direct[:3], direct[3:]
    assert any(not torch.equal(a["left"], b["left"]) for a, b in zip(first, second, strict=True))
    reseeded = _crop_batches(root, 0, train_repeats=2, crop_seed=7)
    assert any(not torch.equal(a["left"], b["left"]) for a, b in zip(direct, reseeded, strict=True))


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
