"""Settings for training at scale (issue 18): SLURM launcher checks before submission, the
GPU trainers' flags, and Table II's evaluation on the training row's device."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dpdeblur.errors import ConfigError
from dpdeblur.research.reproduce import _resolve_best, plan
from dpdeblur.training.config import compose_config, config_dir, register_resolvers
from dpdeblur.training.launch_checks import check_slurm
from dpdeblur.training.preflight import check_trainer_flags
from dpdeblur.training.setup import trainer_settings

BIN = Path(sys.executable).parent
TABLE = ["experiment=dpanet_table4", "data.root=/data", "hydra/launcher=slurm"]


def compose_hydra(config: str, overrides: list[str]):
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config, overrides=overrides, return_hydra_config=True)


def test_a_slurm_sweep_that_can_run_passes():
    check_slurm(compose_hydra("train", [*TABLE, "trainer=ddp", "trainer.devices=4"]))
    check_slurm(compose_hydra("train", [*TABLE]))  # trainer=gpu: one GPU, one task
    check_slurm(compose_hydra("train", ["trainer=ddp"]))  # no SLURM: -1 is fine locally
    launcher = compose_hydra("train", TABLE).hydra.launcher
    assert launcher.max_num_timeout > 0 and launcher.timeout_min <= 1440


@pytest.mark.parametrize(
    ("overrides", "problem", "fix"),
    [
        (["trainer=ddp"], r"trainer.devices=-1 cannot be asked of SLURM", r"trainer.devices=4"),
        (
            ["trainer=ddp", "trainer.devices=4", "hydra.launcher.tasks_per_node=1"],
            r"tasks_per_node=1 but trainer.devices=4",
            r"drop hydra.launcher.tasks_per_node",
        ),
        (
            ["trainer=ddp", "trainer.devices=4", "hydra.launcher.gpus_per_node=8"],
            r"gpus_per_node=8 but trainer.devices=4",
            r"drop hydra.launcher.gpus_per_node",
        ),
        (["ckpt_path=null"], r"ckpt_path=null on SLURM", r"add ckpt_path=auto"),
        (["ckpt_path=last"], r"fail \(no last.ckpt yet\)", r"add ckpt_path=auto"),
    ],
)
def test_a_slurm_sweep_that_cannot_run_is_refused_with_the_fix(overrides, problem, fix):
    with pytest.raises(ConfigError, match=problem) as err:
        check_slurm(compose_hydra("train", [*TABLE, *overrides]))
    assert fix in str(err.value)


def sbatch_flags(launcher, folder: Path) -> list[str]:
    """The ``#SBATCH`` lines submitit writes for a resolved launcher's resources."""
    slurm = pytest.importorskip("submitit.slurm.slurm")
    text = slurm._make_sbatch_string(
        command="true",
        folder=folder,
        gpus_per_node=launcher.gpus_per_node,
        ntasks_per_node=launcher.tasks_per_node,
        nodes=launcher.nodes,
    )
    return [line for line in text.splitlines() if line.startswith("#SBATCH")]


@pytest.mark.parametrize(
    ("overrides", "gpus", "tasks"),
    [
        (["trainer=cpu"], None, 1),
        (["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=4"], None, 4),
        (["trainer=ddp", "trainer.devices=4"], 4, 4),
        (["trainer=ddp", "trainer.accelerator=auto", "trainer.devices=2"], 2, 2),  # auto: GPUs
    ],
)
def test_the_slurm_launcher_asks_gpus_only_for_gpu_trainers(tmp_path, overrides, gpus, tasks):
    cfg = compose_hydra("train", [*TABLE, *overrides])
    check_slurm(cfg)
    launcher = OmegaConf.to_object(cfg.hydra.launcher)  # resolved, as the launcher gets it
    assert launcher.gpus_per_node == gpus and launcher.tasks_per_node == tasks
    flags = sbatch_flags(launcher, tmp_path)
    assert f"#SBATCH --ntasks-per-node={tasks}" in flags
    gpu_flags = [flag for flag in flags if flag.startswith("#SBATCH --gpus-per-node")]
    assert gpu_flags == ([] if gpus is None else [f"#SBATCH --gpus-per-node={gpus}"])


@pytest.mark.parametrize(
    ("overrides", "problem", "fix"),
    [
        (
            ["trainer=ddp", "trainer.accelerator=cpu"],
            r"trainer.devices=-1 cannot be asked of SLURM .*--ntasks-per-node=-1",
            "trainer.accelerator=cpu trainer.devices=4",
        ),
        (["trainer=cpu", "trainer.devices=auto"], r"trainer.devices=auto cannot", "ranks"),
        (
            ["trainer=cpu", "hydra.launcher.gpus_per_node=2"],
            r"gpus_per_node=2 but trainer.accelerator=cpu",
            "drop hydra.launcher.gpus_per_node",
        ),
        (["trainer=gpu", "trainer.accelerator=tpu"], r"accelerator=tpu on SLURM", "gpu or cpu"),
    ],
)
def test_a_cpu_slurm_sweep_that_cannot_run_is_refused(overrides, problem, fix):
    with pytest.raises(ConfigError, match=problem) as err:
        check_slurm(compose_hydra("train", [*TABLE, *overrides]))
    assert fix in str(err.value)


def test_the_cli_refuses_before_submitting_anything(tmp_path):
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(tmp_path)}
    start = time.monotonic()
    result = subprocess.run(
        [str(BIN / "dpdeblur-train"), "-m", *TABLE, "trainer=ddp"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: trainer.devices=-1 cannot be asked of SLURM")
    assert not list(tmp_path.rglob(".submitit")) and time.monotonic() - start < 60


def test_gpu_trainers_are_fast_and_refuse_deterministic_true():
    for trainer in ("gpu", "ddp"):
        cfg = compose_config("train", [f"trainer={trainer}"], Path("."))
        assert cfg.trainer.benchmark is True and cfg.trainer.deterministic is False
        assert cfg.trainer.float32_matmul_precision == "high"
        check_trainer_flags(cfg)
        cfg.trainer.deterministic = "warn"
        check_trainer_flags(cfg)
        cfg.trainer.deterministic = True
        with pytest.raises(ConfigError, match=r"first backward") as err:
            check_trainer_flags(cfg)
        assert "trainer.deterministic=warn trainer.benchmark=false" in str(err.value)
    cpu = compose_config("train", ["trainer.deterministic=true"], Path("."))
    check_trainer_flags(cpu)  # the CPU has deterministic kernels


def test_tf32_matmuls_are_set_for_gpu_trainers_only():
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        ddp_on_cpu = compose_config("train", ["trainer=ddp", "trainer.accelerator=cpu"], Path("."))
        settings = trainer_settings(ddp_on_cpu.trainer)
        assert "float32_matmul_precision" not in settings and settings["benchmark"] is True
        assert torch.get_float32_matmul_precision() == "highest"
        trainer_settings(compose_config("train", ["trainer=gpu"], Path(".")).trainer)
        assert torch.get_float32_matmul_precision() == "high"
    finally:
        torch.set_float32_matmul_precision(before)


def test_table_ii_scores_on_the_training_rows_device_with_the_extra_overrides(tmp_path):
    extra = [
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "trainer=ddp",
        "trainer.devices=4",
        "optimizer.lr=1e-4",
        "metrics.lpips=off",
    ]
    train, evaluate = plan("dpanet-2", tmp_path, "full", tmp_path / "runs", extra=extra).commands
    sweep = next(a for a in train if a.startswith("hydra.sweep.dir=")).split("=", 1)[1]
    # with a launcher among the overrides both steps go through it (-m), not this machine
    assert train[1] == "-m" and "trainer=ddp" in train and "optimizer.lr=1e-4" in train
    assert sweep.endswith("/train")
    assert evaluate[1] == "-m" and evaluate[-1].endswith("/eval")
    assert "trainer=gpu" in evaluate and "metrics.protocol=half_res" in evaluate
    assert {"hydra/launcher=slurm", "hydra.launcher.partition=gpu", "metrics.lpips=off"} <= set(
        evaluate
    )
    assert not {"trainer=ddp", "trainer.devices=4", "optimizer.lr=1e-4"} & set(evaluate)

    # no launcher: one run each on this machine; the table's row trains on a GPU
    train, evaluate = plan("dpanet-2", tmp_path, "full", tmp_path / "runs").commands
    assert "-m" not in train and "-m" not in evaluate and "trainer=gpu" in evaluate
    assert any(a.startswith("hydra.run.dir=") for a in evaluate)
    # a finished row that trained on the CPU is scored there
    run = tmp_path / "runs" / "done"
    best = run / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"")
    (run / "config.yaml").write_text(
        yaml.safe_dump({"row": "dpanet", "task_name": "train", "trainer": {"accelerator": "cpu"}})
    )
    (run / "metrics.json").write_text(f'{{"status": "ok", "best_checkpoint": "{best}"}}')
    (evaluate,) = plan("dpanet-2", tmp_path, "full", tmp_path / "runs").commands
    assert f"ckpt={best}" in evaluate and "trainer=cpu" in evaluate
    # the smoke scale scores on the CPU
    _, evaluate = plan("dpanet-2", None, "smoke", tmp_path / "smoke").commands
    assert "trainer=cpu" in evaluate


def test_the_best_checkpoint_is_found_below_a_one_job_sweep_folder(tmp_path):
    run = tmp_path / "train" / "0_row-dpanet"
    best = run / "checkpoints" / "best.ckpt"
    best.parent.mkdir(parents=True)
    best.write_bytes(b"")
    (run / "config.yaml").write_text(yaml.safe_dump({"task_name": "train", "row": "dpanet"}))
    (run / "metrics.json").write_text(f'{{"status": "ok", "best_checkpoint": "{best}"}}')
    assert _resolve_best(["x", f"ckpt=@best:{tmp_path / 'train'}"]) == ["x", f"ckpt={best}"]


def test_eval_config_takes_the_launch_check_and_no_resume_key():
    cfg = compose_hydra("eval", ["ckpt=x", "hydra/launcher=slurm"])
    assert OmegaConf.select(cfg, "hydra.callbacks.launch_check") is not None
    check_slurm(cfg)  # evaluation has nothing to resume
