"""Scale-out: DDP on CPU processes, the multirun guard, wandb between jobs, the SLURM launcher."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.errors import ConfigError
from dpdeblur.training.config import config_dir, register_resolvers
from dpdeblur.training.guard import guarded
from dpdeblur.training.system import DeblurSystem
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


class ViewMean(nn.Module):
    """A one-parameter "model" (module level: the spawned processes unpickle it)."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.9))

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        return self.gain * (left + right) / 2


class NoisyImages(Dataset):
    """``n`` samples, each its own target with noisy views, named ``img00``, ``img01``, ..."""

    def __init__(self, n: int, size: tuple[int, int] = (16, 16)):
        self.n, self.size = n, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict:
        generator = torch.Generator().manual_seed(index)
        target = torch.rand(3, *self.size, generator=generator)
        noise = 0.05 * (index + 1)
        left, right = (
            (target + noise * torch.randn(3, *self.size, generator=generator)).clamp(0, 1)
            for _ in range(2)
        )
        return {
            "left": left,
            "right": right,
            "combined": (left + right) / 2,
            "target": target,
            "name": f"img{index:02d}",
            "bit_depth": 16,
            "scene": "indoor" if index % 2 else "outdoor",
        }


@pytest.mark.slow  # two spawned processes: about 20 s on 2 cores
def test_rows_and_means_over_two_ranks_equal_one_process_with_an_odd_image_count(tmp_path):
    # 5 images on 2 ranks: DistributedSampler pads rank 1 with img00 again (0,2,4 | 1,3,0).
    # Every image must count once, so the means equal those of one process.
    def score(devices: int) -> tuple[dict[str, float], list[dict[str, str]]]:
        out = tmp_path / f"devices{devices}"
        system = DeblurSystem(ViewMean(), metrics={"lpips": "off"}, output_dir=str(out))
        strategy = "ddp_spawn" if devices > 1 else "auto"
        runner = trainer(accelerator="cpu", devices=devices, strategy=strategy)
        (means,) = runner.test(system, DataLoader(NoisyImages(5), batch_size=2))
        with open(out / "test_images.csv") as handle:
            return means, list(csv.DictReader(handle))

    one_means, one_rows = score(1)
    two_means, two_rows = score(2)
    assert one_means["test/images"] == two_means["test/images"] == 5
    assert [row["name"] for row in two_rows] == [f"img{i:02d}" for i in range(5)]
    assert two_means.keys() == one_means.keys()
    for key, value in one_means.items():  # the ranks may run other thread counts
        assert two_means[key] == pytest.approx(value, rel=1e-6), key
    for one, two in zip(one_rows, two_rows, strict=True):
        assert float(two["psnr"]) == pytest.approx(float(one["psnr"]), rel=1e-6)
    # the padded duplicate would have pulled the mean towards img00, the least noisy image
    # (Lightning logs float32: hence 1e-6)
    psnrs = [float(row["psnr"]) for row in one_rows]
    assert one_means["test/psnr"] == pytest.approx(sum(psnrs) / 5, rel=1e-6)
    assert one_means["test/psnr"] < (sum(psnrs) + psnrs[0]) / 6


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
