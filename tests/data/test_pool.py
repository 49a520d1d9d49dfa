"""The pre-rendered scene pool: 16-bit storage, fresh crops per epoch, DP-valid flips."""

import numpy as np
import pytest
import torch

from dpdeblur.data.pool import ScenePool, render_pool
from dpdeblur.data.synthetic import SyntheticDPDataset
from dpdeblur.errors import DataError
from dpdeblur.training.datamodule import DPDataModule


@pytest.fixture(scope="module")
def scenes():
    return SyntheticDPDataset(length=3, size=(40, 48), seed=5, max_coc_px=6)


@pytest.fixture(scope="module")
def rendered(scenes):
    return render_pool(scenes, workers=0, progress=False)


def test_pool_keeps_each_scene_at_16_bit_precision(scenes, rendered):
    assert len(rendered) == 3
    for index, pooled in enumerate(rendered):
        original = scenes[index]
        assert pooled["left"].dtype == np.uint16 and pooled["left"].shape == (40, 48, 3)
        for key in ("left", "right", "combined", "target"):
            restored = torch.from_numpy(pooled[key].transpose(2, 0, 1).astype(np.float32) / 65535)
            assert (restored - original[key].clamp(0, 1)).abs().max() <= 0.5 / 65535 + 1e-7
        assert np.allclose(pooled["coc"][:, :, 0], original["coc"][0].numpy(), atol=1e-2)


def test_crops_are_reproducible_within_an_epoch_and_new_across_epochs(rendered):
    pool = ScenePool(rendered, length=4, crop_size=24, seed=1)
    first = [pool[i]["target"] for i in range(4)]
    assert all(t.shape == (3, 24, 24) and t.dtype == torch.float32 for t in first)
    # bitwise: crops of the stored uint16 pixels, each divided by 65535
    assert all(torch.equal(a, pool[i]["target"]) for i, a in enumerate(first))
    pool.set_epoch(1)
    assert not all(torch.equal(a, pool[i]["target"]) for i, a in enumerate(first))
    with pytest.raises(IndexError):
        pool[4]


def _flips_that_explain(sample: dict, scene: dict, crop: int) -> tuple[bool, bool] | None:
    """(vflip, hflip) such that ``sample`` is a crop of ``scene`` so flipped, or None."""
    full = {
        k: torch.from_numpy(scene[k].transpose(2, 0, 1).astype(np.float32) / 65535)
        for k in ("left", "right", "target")
    }
    height, width = full["target"].shape[1:]
    for vflip in (False, True):
        for hflip in (False, True):
            views = {k: v.flip(1) if vflip else v for k, v in full.items()}
            if hflip:  # a mirror turns the left half-aperture into the right one
                views = {k: v.flip(2) for k, v in views.items()}
                views["left"], views["right"] = views["right"], views["left"]
            for top in range(height - crop + 1):
                for left in range(width - crop + 1):
                    if all(
                        torch.equal(v[:, top : top + crop, left : left + crop], sample[k])
                        for k, v in views.items()
                    ):
                        return vflip, hflip
    return None


def test_a_sample_is_a_crop_of_a_pooled_scene_and_a_mirror_swaps_the_views(rendered):
    pool = ScenePool(rendered, length=48, crop_size=40, seed=2)
    seen = set()
    for index in range(48):
        sample = pool[index]
        scene = next(s for s in rendered if sample["name"].startswith(s["name"] + "_"))
        flips = _flips_that_explain(sample, scene, 40)
        assert flips is not None, f"sample {index} is no (flipped) crop of {scene['name']}"
        seen.add(flips)
    assert seen == {(False, False), (False, True), (True, False), (True, True)}


def test_crop_larger_than_the_pool_is_an_error(rendered):
    with pytest.raises(ValueError, match="larger than the pooled scenes"):
        ScenePool(rendered, length=1, crop_size=64)


def test_datamodule_trains_from_a_pool_without_workers_and_checks_its_keys():
    options = {"train_length": 6, "val_length": 1, "test_length": 1, "size": [32, 32]}
    dm = DPDataModule(
        "synthetic",
        num_workers=0,
        batch_size=3,
        crop_size=32,
        synthetic={**options, "pool": {"scenes": 2, "size": [40, 40]}},
    )
    dm.setup("fit")
    assert isinstance(dm.build("train"), ScenePool)
    loader = dm.train_dataloader()
    assert loader.num_workers == 0
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["left"].shape == (3, 3, 32, 32)
    assert next(iter(dm.val_dataloader()))["left"].shape == (1, 3, 32, 32)

    bad = DPDataModule("synthetic", num_workers=0, synthetic={**options, "pool": {"count": 2}})
    with pytest.raises(DataError, match="pool"):
        bad.setup("fit")
