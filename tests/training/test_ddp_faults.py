"""Faults on one DDP rank (issue 18, items 2 and 3): two gloo processes on the CPU.

A non-finite loss: rank 1's targets turn NaN from step 2 on, so only its loss is
non-finite. Every rank must skip those steps, stop together after
``callbacks.nonfinite.max_consecutive`` of them, save ``last.ckpt`` with the last good
weights, and end cleanly: one error line, one ``metrics.json`` (rank 0's), no rank killed by
Lightning's process watcher, no rank left waiting in a collective.

A signal to one rank (a scheduler's SIGTERM reaching rank 0 only): every rank stops after
the same step, ``last.ckpt`` holds it, the run says so once and exits with 143.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent

# 16 synthetic scenes, batch 2 per rank: 4 steps an epoch
TINY_DDP = [
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.devices=2",
    "model.width=0.0625",
    "data.batch_size=2",
    "data.num_workers=0",
    "data.crop_size=32",
    "data.synthetic.train_length=16",
    "data.synthetic.val_length=2",
    "data.synthetic.size=[32,32]",
    "test=false",
    "metrics.lpips=off",
    "metrics.num_panels=0",
    "trainer.log_every_n_steps=1",
    "trainer.max_steps=20",
]


def train_ddp(tmp_path: Path, extra: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    """``dpdeblur-train`` on two CPU ranks with ``extra`` overrides; the result and seconds."""
    env = {
        **os.environ,
        "DPDEBLUR_OUTPUTS": str(tmp_path / "out"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    start = time.monotonic()
    result = subprocess.run(
        [str(BIN / "dpdeblur-train"), *TINY_DDP, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    return result, time.monotonic() - start


@pytest.mark.slow  # two processes: about 15 s on 2 shared cores
def test_a_non_finite_loss_on_one_rank_stops_both_cleanly_at_the_last_good_weights(tmp_path):
    poison = [
        "+callbacks.poison._target_=fault_callbacks.PoisonRank",
        "+callbacks.poison.rank=1",
        "+callbacks.poison.from_step=2",
    ]
    result, seconds = train_ddp(tmp_path, poison)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    # rank 0 says it once; rank 1 waited for rank 0 to exit, so the watcher killed no one
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1, errors
    assert "non-finite loss" in errors[0] and "at step 2" in errors[0] and "on rank 1" in errors[0]
    assert "Forcefully terminating" not in output and "Timeout" not in output
    assert seconds < 300

    (run,) = (tmp_path / "out" / "train" / "runs").iterdir()
    (metrics_path,) = (tmp_path / "out").glob("**/metrics.json")  # rank 0's only
    metrics = json.loads(metrics_path.read_text())
    assert metrics_path.parent == run and metrics["status"] == "failed"
    info = metrics["nonfinite"]
    assert info["step"] == 2 and info["ranks"] == [1] and info["consecutive"] == 3
    # each rank's loss terms at that step: rank 0's finite, rank 1's NaN (null in JSON)
    assert info["terms"]["0"]["psnr"] is not None and info["terms"]["1"]["psnr"] is None

    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert metrics["last_checkpoint"] == str(run / "checkpoints" / "last.ckpt")
    # steps 0 and 1 updated the weights; 2, 3 and 4 were skipped on both ranks; stopped after 4
    assert saved["global_step"] == 5
    (state,) = saved["optimizer_states"]
    assert {int(s["step"]) for s in state["state"].values()} == {2}
    assert all(
        torch.isfinite(v).all() for v in saved["state_dict"].values() if v.is_floating_point()
    )


@pytest.mark.slow  # two processes: about 15 s on 2 shared cores
def test_a_sigterm_to_rank_zero_stops_every_rank_after_the_same_step(tmp_path):
    term = [
        "+callbacks.term._target_=fault_callbacks.SignalOnce",
        "+callbacks.term.signum=SIGTERM",
        "+callbacks.term.step=3",
        "+callbacks.term.rank=0",
    ]
    result, seconds = train_ddp(tmp_path, term)
    output = result.stdout + result.stderr
    assert result.returncode == 143, output[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith(("stopped", "error"))]
    assert len(lines) == 1 and lines[0].startswith("stopped: training stopped by SIGTERM at step 4")
    assert "Forcefully terminating" not in output and seconds < 300
    (run,) = (tmp_path / "out" / "train" / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    # the signal came after step 3's check; the ranks agreed on it after step 4
    assert metrics["status"] == "stopped" and metrics["stopped_by"] == "SIGTERM"
    assert metrics["global_step"] == 4
    saved = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4
