"""Scale-out: DDP on CPU processes, the multirun guard, wandb between jobs, the SLURM launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.errors import ConfigError
from dpdeblur.training.config import config_dir, register_resolvers
from dpdeblur.training.guard import guarded
from dpdeblur.training.train import check_launcher, is_rank_zero

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_two_cpu_processes_train_two_steps_and_write_one_metrics_json(tmp_path):
    tree = tmp_path / "dpdd"
    write_synthetic_dpdd(tree, n=10, size=(48, 48), seed=0)  # 6 train, 2 val, 2 test
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(tmp_path / "out")}
    args = [
        str(BIN / "dpdeblur-train"),
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data=dpdd",
        f"data.root={tree}",
        "data.crop_size=32",
        "data.batch_size=2",  # 3 training scenes per rank: two steps
        "data.num_workers=0",
        "model=dpanet_tiny",
        "model.width=0.0625",
        "trainer.max_epochs=1",
        "logger=csv",
        "metrics.lpips=off",
        "metrics.num_panels=1",
    ]
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in result.stderr + result.stdout
    (metrics_path,) = (tmp_path / "out").glob("**/metrics.json")  # one run, one file
    (run,) = (tmp_path / "out" / "train" / "runs").iterdir()  # rank 1 reused rank 0's folder
    assert metrics_path.parent == run and (run / "train_ddp_process_1.log").exists()
    metrics = json.loads(metrics_path.read_text())
    assert metrics["status"] == "ok" and metrics["global_step"] == 2
    # validation and test gathered both ranks' images: every image scored once
    assert metrics["val"]["images"] == 2 and metrics["test"]["images"] == 2


def trainer(**kwargs) -> L.Trainer:
    return L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, **kwargs)


def test_ddp_that_re_runs_the_command_line_is_refused_inside_a_multirun():
    ddp = trainer(accelerator="cpu", devices=2, strategy="ddp")
    with pytest.raises(ConfigError, match=r"re-runs the whole sweep.*hydra/launcher=slurm"):
        check_launcher(ddp, multirun=True)
    check_launcher(ddp, multirun=False)  # a single run may re-launch itself
    check_launcher(trainer(accelerator="cpu", devices=1), multirun=True)
    spawn = trainer(accelerator="cpu", devices=2, strategy="ddp_spawn")
    for multirun in (False, True):  # its scores would stay in the spawned processes
        with pytest.raises(ConfigError, match=r"spawned processes.*use trainer=ddp"):
            check_launcher(spawn, multirun=multirun)


def test_only_rank_zero_writes_run_files(monkeypatch):
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    assert not is_rank_zero()
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
    assert is_rank_zero()


def test_every_multirun_job_closes_its_wandb_run(tmp_path, monkeypatch):
    finished = []
    fake = types.SimpleNamespace(run=object(), finish=lambda: finished.append(True))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr("dpdeblur.training.guard.is_multirun", lambda: True)
    cfg = OmegaConf.create({"experiment_name": "x"})
    assert guarded(lambda c: {"status": "ok"}, cfg, tmp_path)["status"] == "ok"

    def failing(c):
        raise RuntimeError("boom")

    assert guarded(failing, cfg, tmp_path)["status"] == "failed"  # the sweep goes on
    assert finished == [True, True]


def test_slurm_launcher_asks_one_task_per_gpu():
    register_resolvers()
    overrides = [
        "experiment=dpanet_table4",
        "hydra/launcher=slurm",
        "trainer=ddp",
        "trainer.devices=4",
        "trainer.num_nodes=2",
    ]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["gpus_per_node"] == launcher["tasks_per_node"] == 4
    assert launcher["nodes"] == 2
