"""Preemption without warning (issue 18, item 3): a run killed with SIGKILL mid-epoch and
started again with the same command (``ckpt_path=auto``) ends where an uninterrupted run
ends: the same weights and optimiser state, bit for bit, and the same ``metrics.json``.

Exact equality needs every piece of state back: the step, optimiser and schedulers
(Lightning's checkpoint), the position within the epoch (``ResumableDataLoader``: the
synthetic stream's samples are a function of epoch and index) and the random state
(dropout; ``FinalCheckpoint`` saves it with ``last.ckpt``). Both runs are fresh processes
with the same thread count on the same machine, so the arithmetic is the same too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent

# 16 samples, batch 2: 8 steps an epoch; 12 steps in all; last.ckpt every 2 steps. One
# data-loader worker (persistent, as in the quick start) renders the synthetic scenes or
# cuts the DPDD crops (8 images, 2 crops each).
DATA = {
    "synthetic": [
        "data.synthetic.train_length=16",
        "data.synthetic.val_length=2",
        "data.synthetic.size=[32,32]",
    ],
    "dpdd": ["data=dpdd", "data.train_repeats=2", "data.cache_dir=null"],
}
COMMAND = [
    "model.width=0.0625",
    "data.batch_size=2",
    "data.num_workers=1",
    "data.crop_size=32",
    "test=false",
    "metrics.lpips=off",
    "metrics.num_panels=0",
    "trainer.log_every_n_steps=1",
    "trainer.max_steps=12",
    "callbacks.final_checkpoint.every_n_steps=2",
    "ckpt_path=auto",
]
DIFFERS = ("fit_seconds", "resumed_from", "best_checkpoint", "last_checkpoint")


def train(outputs: Path, extra: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DPDEBLUR_OUTPUTS": str(outputs),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [str(BIN / "dpdeblur-train"), *COMMAND, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=outputs.parent,
    )


def runs(outputs: Path) -> list[Path]:
    return sorted((outputs / "train" / "runs").iterdir())


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.slow  # three runs of a few seconds each, plus start-up
@pytest.mark.parametrize("data", sorted(DATA))
def test_a_run_killed_mid_epoch_resumes_to_the_weights_of_an_uninterrupted_run(
    tmp_path, data, make_dpdd_tree
):
    options = list(DATA[data])
    if data == "dpdd":  # random crops of 8 images (the crops' seed, epoch and index decide them)
        root, _ = make_dpdd_tree(counts={"train": 8, "val": 2}, size=(40, 48))
        options.append(f"data.root={root}")

    def kill(marker: Path) -> list[str]:
        """The kill after step 5, unless ``marker`` exists (the same run name either way)."""
        return [
            *options,
            "+callbacks.kill._target_=fault_callbacks.SignalOnce",
            "+callbacks.kill.signum=SIGKILL",
            "+callbacks.kill.step=5",
            f"+callbacks.kill.marker={marker}",
        ]

    (tmp_path / "never").write_text("")
    straight = train(tmp_path / "straight", kill(tmp_path / "never"))
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = train(tmp_path / "resumed", kill(tmp_path / "killed"))
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL after step 5
    (first,) = runs(tmp_path / "resumed")
    saved = load(first / "checkpoints" / "last.ckpt")
    assert saved["global_step"] == 4 and saved["epoch"] == 0  # the periodic save, mid-epoch
    assert not (first / "metrics.json").exists()

    again = train(tmp_path / "resumed", kill(tmp_path / "killed"))  # the same command
    assert again.returncode == 0, again.stderr[-3000:]
    _, second = runs(tmp_path / "resumed")
    (reference,) = runs(tmp_path / "straight")

    expected, got = (json.loads((r / "metrics.json").read_text()) for r in (reference, second))
    assert got["resumed_from"] == {
        "path": str(first / "checkpoints" / "last.ckpt"),
        "global_step": 4,
        "epoch": 0,
    }
    assert got.keys() == expected.keys()
    for key in expected.keys() - set(DIFFERS):
        assert got[key] == expected[key], key
    assert got["global_step"] == 12 and got["val"]["images"] == 2

    one, two = (load(r / "checkpoints" / "last.ckpt") for r in (reference, second))
    assert one["global_step"] == two["global_step"] == 12
    for name, tensor in one["state_dict"].items():
        assert torch.equal(tensor, two["state_dict"][name]), name
    (state_one,), (state_two,) = one["optimizer_states"], two["optimizer_states"]
    for index, moments in state_one["state"].items():
        for key, value in moments.items():
            assert torch.equal(value, state_two["state"][index][key]), (index, key)
