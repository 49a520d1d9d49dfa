"""Progressive patch sizes: the stage of each step, the sub-batch and the paired windows,
the checks, that the training step sees the shrunk batch, and the restormer_dp row's
schedule."""

from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader, Dataset

from dpdeblur.errors import ConfigError
from dpdeblur.training.config import compose_config
from dpdeblur.training.progressive import (
    ProgressivePatches,
    Stage,
    parse_stages,
    shrink_batch,
    stage_at,
)

PAPER_STAGES = [
    [92000, 128, 64],
    [64000, 160, 40],
    [48000, 192, 32],
    [36000, 256, 16],
    [36000, 320, 8],
    [24000, 384, 8],
]


def dp_batch(size: int = 6, side: int = 16) -> dict:
    """A collated batch whose pixels encode (sample, y, x); right = left + 1, target = left + 2."""
    sample = torch.arange(size).view(size, 1, 1, 1) * 10_000.0
    y = torch.arange(side).view(1, 1, side, 1) * 100.0
    x = torch.arange(side).view(1, 1, 1, side) * 1.0
    left = (sample + y + x).expand(size, 3, side, side).clone()
    return {
        "left": left,
        "right": left + 1,
        "target": left + 2,
        "coc": left[:, :1] + 3,
        "name": [f"img{i}" for i in range(size)],
        "bit_depth": torch.full((size,), 16),
    }


def test_stage_of_each_step():
    stages = parse_stages(PAPER_STAGES)
    assert sum(s.steps for s in stages) == 300_000
    assert stage_at(stages, 0) == Stage(92000, 128, 64)
    assert stage_at(stages, 91_999).patch == 128 and stage_at(stages, 92_000).patch == 160
    assert stage_at(stages, 275_999).patch == 320 and stage_at(stages, 276_000).patch == 384
    assert stage_at(stages, 10**6) == stages[-1]  # past the schedule: its last stage


@pytest.mark.parametrize("stages", [[], [[10, 128]], [[10, 0, 4]], [[10, 128, 2.5]]])
def test_malformed_schedules_are_refused(stages):
    with pytest.raises(ConfigError, match="stage"):
        parse_stages(stages)


def test_shrink_keeps_samples_and_cuts_one_window_per_sample_from_every_image():
    batch = shrink_batch(dp_batch(), 3, 8, torch.Generator().manual_seed(0))
    assert batch["left"].shape == batch["target"].shape == (3, 3, 8, 8)
    assert batch["coc"].shape == (3, 1, 8, 8)
    torch.testing.assert_close(batch["right"] - batch["left"], torch.ones(3, 3, 8, 8))
    torch.testing.assert_close(batch["target"] - batch["left"], torch.full((3, 3, 8, 8), 2.0))
    torch.testing.assert_close(batch["coc"] - batch["left"][:, :1], torch.full((3, 1, 8, 8), 3.0))
    samples = (batch["left"][:, 0, 0, 0] // 10_000).long().tolist()
    assert batch["name"] == [f"img{i}" for i in samples] and len(set(samples)) == 3
    assert batch["bit_depth"].tolist() == [16, 16, 16]
    for window in batch["left"][:, 0]:  # a contiguous window of the original pixels
        rows, cols = (window % 10_000) // 100, window % 100
        assert torch.equal(rows - rows[0, 0], torch.arange(8).view(8, 1).expand(8, 8))
        assert torch.equal(cols - cols[0, 0], torch.arange(8).view(1, 8).expand(8, 8))


def test_a_short_batch_keeps_all_its_samples_and_a_full_patch_is_the_crop():
    batch = shrink_batch(dp_batch(size=2), 8, 16, torch.Generator().manual_seed(0))
    assert batch["left"].shape == (2, 3, 16, 16) and batch["name"] == ["img0", "img1"]
    with pytest.raises(ConfigError, match=r"data\.crop_size"):
        shrink_batch(dp_batch(), 2, 32, torch.Generator())


def test_callback_follows_the_steps_and_repeats_itself():
    callback = ProgressivePatches([[2, 8, 4], [2, 12, 2]], seed=5)
    shapes, firsts = [], []
    for step in (0, 1, 2, 9):
        trainer = SimpleNamespace(global_step=step, global_rank=0)
        batch = dp_batch()
        callback.on_train_batch_start(trainer, None, batch, 0)
        shapes.append(tuple(batch["left"].shape))
        firsts.append(batch["left"].clone())
    assert shapes == [(4, 3, 8, 8), (4, 3, 8, 8), (2, 3, 12, 12), (2, 3, 12, 12)]
    again = dp_batch()
    callback.on_train_batch_start(SimpleNamespace(global_step=0, global_rank=0), None, again, 0)
    assert torch.equal(again["left"], firsts[0])  # a function of the step: resumes exactly


def test_loader_too_small_for_the_schedule_is_refused_before_training():
    callback = ProgressivePatches([[2, 8, 4], [2, 12, 2]])
    trainer = SimpleNamespace(datamodule=SimpleNamespace(crop_size=10, batch_size=4))
    with pytest.raises(ConfigError, match=r"data\.crop_size=12"):
        callback.on_train_start(trainer, None)
    trainer.datamodule = SimpleNamespace(crop_size=12, batch_size=3)
    with pytest.raises(ConfigError, match=r"data\.batch_size=4"):
        callback.on_train_start(trainer, None)
    trainer.datamodule = SimpleNamespace(crop_size=None, batch_size=4)  # whole images
    callback.on_train_start(trainer, None)


class _Pairs(Dataset):
    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> dict:
        image = torch.full((3, 16, 16), float(index))
        return {"left": image, "right": image, "target": image, "name": f"img{index}"}


class _Recorder(L.LightningModule):
    """Records the shape of every batch its training step receives."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.shapes: list[tuple[int, ...]] = []

    def training_step(self, batch, batch_idx):
        self.shapes.append(tuple(batch["left"].shape))
        return (batch["left"].mean() - self.weight).abs()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_training_step_receives_the_shrunk_batch(tmp_path):
    module = _Recorder()
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=4,
        callbacks=[ProgressivePatches([[1, 8, 2], [2, 12, 3], [1, 16, 4]])],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(_Pairs(), batch_size=4))
    assert module.shapes == [(2, 3, 8, 8), (3, 3, 12, 12), (3, 3, 12, 12), (4, 3, 16, 16)]


def test_restormer_dp_row_trains_with_the_papers_schedule(tmp_path):
    cfg = compose_config("train", ["experiment=restormer_dp_dpdd", "data.root=/x"], tmp_path)
    callback = instantiate(cfg.callbacks.progressive_patches)
    assert [[s.steps, s.patch, s.batch] for s in callback.stages] == PAPER_STAGES
    assert callback.total_steps() == cfg.trainer.max_steps == 300_000
    assert callback.largest == (cfg.data.crop_size, cfg.data.batch_size) == (384, 64)
    assert cfg.model.name == "restormer_dp" and dict(cfg.loss.terms) == {"l1": 1.0}
    assert cfg.optimizer._target_ == "torch.optim.AdamW" and cfg.optimizer.lr == 3e-4
    assert cfg.scheduler.T_max == 300_000 and cfg.scheduler.eta_min == 1e-6
    assert cfg.scheduler_interval == "step"
