"""What a resumed run needs, piece by piece (issue 18, item 3): the checkpoint ``ckpt_path=auto``
picks, the data position a ``ResumableDataLoader`` keeps, the random state, and the lightning
version whose DDP sampler wrapper passes the epoch on. ``test_resume_kill.py`` puts them
together end to end."""

from __future__ import annotations

import io
import os
import random
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.fabric.utilities.distributed import DistributedSamplerWrapper
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, IterableDataset

from dpdeblur.data.streams import EpochStreamSampler
from dpdeblur.training.datamodule import DPDataModule
from dpdeblur.training.resume import (
    ResumableDataLoader,
    auto_checkpoint,
    make_resumable,
    rng_state,
    set_rng_state,
)


def fake_run(
    path: Path, experiment: str = "x", name: str = "lr-1", overrides=("optimizer.lr=1",), age=0
) -> Path:
    """A run directory with a config, Hydra's overrides and a last.ckpt ``age`` s old."""
    (path / ".hydra").mkdir(parents=True)
    (path / "config.yaml").write_text(
        yaml.safe_dump({"experiment_name": experiment, "run_name": name, "task_name": "train"})
    )
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    checkpoint = path / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"")
    stamp = checkpoint.stat().st_mtime - age
    os.utime(checkpoint, (stamp, stamp))
    return checkpoint


def test_auto_resumes_its_own_checkpoint_else_the_same_commands_else_nothing(tmp_path):
    cfg = OmegaConf.create(
        {
            "paths": {"log_dir": str(tmp_path)},
            "task_name": "train",
            "experiment_name": "x",
            "run_name": "lr-1",
        }
    )
    runs = tmp_path / "train" / "runs"
    mine = runs / "now"
    command = ["optimizer.lr=1", "ckpt_path=auto"]
    assert auto_checkpoint(cfg, mine, command) is None  # nothing yet: a fresh start

    older = fake_run(runs / "a", age=100)
    newer = fake_run(runs / "b", overrides=("optimizer.lr=1", "ckpt_path=last"), age=50)
    fake_run(runs / "c", name="lr-2", overrides=("optimizer.lr=2",))  # another run name
    fake_run(runs / "d", overrides=("optimizer.lr=1", "seed=3"))  # other overrides
    fake_run(runs / "e", experiment="y")  # another experiment
    assert auto_checkpoint(cfg, mine, command) == newer  # ckpt_path is not compared
    os.utime(older)  # now the newest
    assert auto_checkpoint(cfg, mine, command) == older
    # outside a Hydra app (no overrides known) the names decide: d would do as well
    assert auto_checkpoint(cfg, mine, None) == older

    # another job of this very sweep never counts; the job's own folder always does
    sweep = tmp_path / "train" / "multiruns" / "s"
    sibling = fake_run(sweep / "0_lr-1")
    for stale in (older, newer, runs / "d" / "checkpoints" / "last.ckpt"):
        stale.unlink()
    assert auto_checkpoint(cfg, sweep / "1_lr-1", command, sweep) is None
    assert auto_checkpoint(cfg, sweep / "1_lr-1", command, None) == sibling
    own = fake_run(sweep / "1_lr-1", age=1000)
    assert auto_checkpoint(cfg, sweep / "1_lr-1", command, sweep) == own


def stream_loader(workers: int) -> DataLoader:
    """Epoch e yields 10 * e + 0..9 in batches of 2 (the synthetic stream's indexing)."""
    return DataLoader(
        list(range(100)),
        batch_size=2,
        sampler=EpochStreamSampler(10),
        num_workers=workers,
        persistent_workers=workers > 0,
    )


@pytest.mark.parametrize("workers", [0, 1])
def test_a_resumable_loader_starts_again_after_the_batches_training_consumed(workers):
    first = make_resumable(stream_loader(workers))
    assert isinstance(first, ResumableDataLoader)
    first.sampler.set_epoch(3)
    iterator = iter(first)
    seen = [next(iterator).tolist() for _ in range(2)]
    assert seen == [[30, 31], [32, 33]]
    state = first.state_dict()
    assert state["epoch"] == 3 and state["batches"] == 2 and state["rng"] is not None

    again = make_resumable(stream_loader(workers))
    again.load_state_dict(state)  # the sampler is at epoch 0 until this
    assert again.sampler.epoch == 3 and len(again) == 5
    rest = [batch.tolist() for batch in again]  # nothing of batches 0-1 is loaded
    assert rest == [[34, 35], [36, 37], [38, 39]]
    assert (again.state_dict()["epoch"], again.state_dict()["batches"]) == (3, 5)
    again.sampler.set_epoch(4)  # the next epoch starts at its beginning
    assert [batch.tolist() for batch in again] == [[40 + i, 41 + i] for i in range(0, 10, 2)]

    done = make_resumable(stream_loader(workers))
    done.load_state_dict({"epoch": 3, "batches": 5})  # saved at the epoch's end
    assert done.sampler.epoch == 4 and next(iter(done)).tolist() == [40, 41]


def test_only_plain_loaders_of_map_datasets_become_resumable():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(4))

    class Custom(DataLoader):
        pass

    assert type(make_resumable(DataLoader(Stream()))) is DataLoader
    assert type(make_resumable(Custom(list(range(4))))) is Custom


def test_the_random_state_round_trips_through_a_weights_only_checkpoint():
    state = rng_state()
    buffer = io.BytesIO()
    torch.save({"rng": state}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)["rng"]
    draws = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(loaded)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0])
    assert np.array_equal(draws[1], again[1]) and draws[2] == again[2]


def test_lightning_is_one_whose_ddp_sampler_wrapper_passes_the_epoch_on():
    # lightning 2.6.0's DistributedSamplerWrapper did not forward set_epoch (fixed in 2.6.1,
    # Lightning-AI/pytorch-lightning#21454): under DDP the synthetic stream would repeat its
    # first epoch on every rank. pyproject.toml asks for lightning>=2.6.1.
    assert tuple(int(p) for p in version("lightning").split(".")[:3]) >= (2, 6, 1)
    wrapper = DistributedSamplerWrapper(
        EpochStreamSampler(8), num_replicas=2, rank=1, shuffle=False
    )
    wrapper.set_epoch(3)
    assert list(wrapper) == [25, 27, 29, 31]
    pin = next(
        line
        for line in (Path(__file__).parents[2] / "pyproject.toml").read_text().splitlines()
        if line.strip().startswith('"lightning')
    )
    assert '"lightning>=2.6.1"' in pin


@pytest.mark.parametrize("workers", [0, 1])
def test_a_shuffled_epoch_goes_on_in_the_same_order(workers):
    def shuffled() -> DataLoader:
        return make_resumable(
            DataLoader(list(range(20)), batch_size=2, shuffle=True, num_workers=workers)
        )

    torch.manual_seed(0)
    first = shuffled()
    batches = [batch.tolist() for batch in first]
    torch.manual_seed(0)
    interrupted = shuffled()
    iterator = iter(interrupted)
    assert [next(iterator).tolist() for _ in range(3)] == batches[:3]
    state = interrupted.state_dict()
    torch.rand(100)  # the resumed process's random state is another
    again = shuffled()
    again.load_state_dict(state)
    assert [batch.tolist() for batch in again] == batches[3:]


def test_dpdd_crops_go_on_the_same_after_a_resume_with_workers(make_dpdd_tree):
    # The crops are drawn from (crop_seed, epoch, index), not from the workers' random
    # states, which no checkpoint holds: the resumed epoch cuts the crops it would have.
    root, _ = make_dpdd_tree(counts={"train": 4}, size=(20, 28))

    def loader() -> ResumableDataLoader:
        dm = DPDataModule(
            "dpdd", root=str(root), batch_size=2, num_workers=1, crop_size=8, train_repeats=2
        )
        dm.crop_seed = 11  # both processes were seeded alike
        return make_resumable(dm.train_dataloader())

    first = loader()
    first._set_sampler_epoch(1)
    batches = list(first)
    assert len(batches) == 4
    interrupted = loader()
    interrupted._set_sampler_epoch(1)
    iterator = iter(interrupted)
    next(iterator)
    state = interrupted.state_dict()
    del iterator, interrupted
    torch.rand(100)  # the resumed process's random state is another
    again = loader()
    again.load_state_dict(state)
    resumed = list(again)
    assert [b["name"] for b in resumed] == [b["name"] for b in batches[1:]]
    for ours, theirs in zip(resumed, batches[1:], strict=True):
        for key in ("left", "right", "target"):
            assert torch.equal(ours[key], theirs[key])
