"""``last.ckpt`` holds the final step however training stops (issue 19): a step limit inside
an epoch, a time limit, SIGTERM, Ctrl-C, SLURM's requeue signal (issue 18, handed on to
submitit after the save); a resumed run records what it resumed from."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch

from dpdeblur.training.config import compose_config
from dpdeblur.training.guard import TrainingStoppedError
from dpdeblur.training.system import DeblurSystem

# 8 synthetic scenes, batch 2: 4 steps an epoch
SMALL = [
    "model.width=0.0625",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.crop_size=32",
    "data.synthetic.train_length=8",
    "data.synthetic.val_length=1",
    "data.synthetic.size=[32,32]",
    "test=false",
    "metrics.lpips=off",
    "metrics.num_panels=0",
    "trainer.log_every_n_steps=1",
]


def run(tmp_path: Path, name: str, overrides: list[str]) -> dict:
    from dpdeblur.training.train import train

    return train(
        compose_config("train", [*SMALL, *overrides], tmp_path / "train" / "runs" / name, tmp_path)
    )


def saved_step(run_dir: Path) -> int:
    saved = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    return int(saved["global_step"])


@pytest.fixture
def signal_safety():
    """A no-op SIGTERM handler for the test (Lightning chains it to its own), so a signal
    raised in-process can never end the test session."""
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    yield
    signal.signal(signal.SIGTERM, previous)


def raise_at_step(monkeypatch, signum: int, step: int) -> None:
    """Send ``signum`` to this process after training step ``step``."""

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step == step:
            signal.raise_signal(signum)

    monkeypatch.setattr(DeblurSystem, "on_train_batch_end", on_train_batch_end, raising=False)


def test_a_step_limit_inside_an_epoch_saves_that_step_and_resumes_from_it(tmp_path):
    first = run(tmp_path, "a", ["trainer.max_steps=6"])
    runs = tmp_path / "train" / "runs"
    assert first["global_step"] == 6 and saved_step(runs / "a") == 6
    assert first["resumed_from"] is None and first["stopped_by"] is None
    resumed = run(tmp_path, "b", ["trainer.max_steps=8", "ckpt_path=last"])
    assert resumed["resumed_from"]["global_step"] == 6
    assert resumed["resumed_from"]["path"] == str(runs / "a" / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 8 and saved_step(runs / "b") == 8
    recorded = json.loads((runs / "b" / "metrics.json").read_text())
    assert recorded["resumed_from"]["global_step"] == 6


def test_a_time_limit_saves_the_last_step(tmp_path):
    result = run(
        tmp_path,
        "t",
        [
            "trainer.max_steps=-1",
            "trainer.max_time=00:00:00:02",
            "data.synthetic.train_length=100000",
        ],
    )
    assert result["epochs"] <= 1 and result["global_step"] > 0
    assert saved_step(tmp_path / "train" / "runs" / "t") == result["global_step"]


def test_sigterm_stops_after_a_step_saves_it_and_says_so(tmp_path, monkeypatch, signal_safety):
    raise_at_step(monkeypatch, signal.SIGTERM, 3)
    with pytest.raises(TrainingStoppedError, match=r"stopped by SIGTERM at step (\d+)") as err:
        run(tmp_path, "s", ["trainer.max_steps=20"])
    assert err.value.signum == signal.SIGTERM and "ckpt_path=auto" in err.value.one_line()
    run_dir = tmp_path / "train" / "runs" / "s"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["stopped_by"] == "SIGTERM"
    assert 3 <= metrics["global_step"] < 20
    assert saved_step(run_dir) == metrics["global_step"]


def test_ctrl_c_stops_after_the_step_then_scores_the_run(tmp_path, monkeypatch):
    raise_at_step(monkeypatch, signal.SIGINT, 3)
    result = run(tmp_path, "i", ["trainer.max_steps=20"])
    assert result["status"] == "ok" and result["stopped_by"] == "SIGINT"
    assert result["global_step"] == 3 and result["val"]["images"] == 1
    assert saved_step(tmp_path / "train" / "runs" / "i") == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handed back


@pytest.fixture
def requeue_handler():
    """A stand-in for submitit's SIGUSR2 handler (which checkpoints and requeues the job):
    it records its calls."""
    calls: list[int] = []
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR2, previous)


def test_the_requeue_signal_stops_after_the_step_saves_and_hands_the_signal_on(
    tmp_path, monkeypatch, requeue_handler
):
    raise_at_step(monkeypatch, signal.SIGUSR2, 3)
    with pytest.raises(TrainingStoppedError, match=r"stopped by SIGUSR2 at step 3") as err:
        run(tmp_path, "q", ["trainer.max_steps=20"])
    assert err.value.signum == signal.SIGUSR2
    assert requeue_handler == [signal.SIGUSR2]  # after last.ckpt and metrics.json were written
    run_dir = tmp_path / "train" / "runs" / "q"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "stopped" and metrics["stopped_by"] == "SIGUSR2"
    assert saved_step(run_dir) == metrics["global_step"] == 3


def test_sigterm_is_not_a_requeue(tmp_path, monkeypatch, requeue_handler, signal_safety):
    # scancel sends SIGTERM too: the job stops, saved, and is not requeued
    raise_at_step(monkeypatch, signal.SIGTERM, 2)
    with pytest.raises(TrainingStoppedError, match=r"stopped by SIGTERM at step 2"):
        run(tmp_path, "t", ["trainer.max_steps=20"])
    assert requeue_handler == []
