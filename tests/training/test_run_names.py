"""Runs are named by their overrides: sweep folders, metrics.json, the loggers (issue 19)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from dpdeblur.training.config import NAME_LIMIT, compose_config, run_name, swept_keys

BIN = Path(sys.executable).parent


def test_a_name_is_the_overrides_short_and_safe():
    assert run_name(["optimizer.lr=1e-3", "seed=1"]) == "lr-1e-3+seed-1"
    assert run_name(["model=k3dn_tiny", "+model.window_size=8"]) == "model-k3dn_tiny+window_size-8"
    assert run_name(["data.synthetic.size=[192,256]"]) == "size-192_256"
    # paths, excluded keys, Hydra's and the experiment never name a run
    noisy = ["data.root=/data/dpdd", "init_from=runs/a/best.ckpt", "hydra.verbose=true"]
    noisy += ["paths.log_dir=x", "experiment=dpanet_dpdd", "trainer=gpu"]
    assert run_name(noisy, exclude=["trainer"], default="dpanet_dpdd") == "dpanet_dpdd"
    long = run_name([f"model.arg{i}=value{i}" for i in range(20)])
    assert len(long) == NAME_LIMIT and long != run_name(
        [f"model.arg{i}=value{i}" for i in range(19)]
    )


def test_a_path_through_a_named_folder_is_still_a_valid_override():
    name = run_name(["optimizer.lr=1e-3", "model.width=0.125", "+model.sharp_gate=true"])
    path = f"outputs/train/multiruns/2026-01-01_00-00-00_abc123/0_{name}/checkpoints/last.ckpt"
    (override,) = OverridesParser.create().parse_overrides([f"ckpt={path}"])
    assert override.value() == path


def test_composed_configs_carry_the_name(tmp_path):
    cfg = compose_config("train", ["optimizer.lr=1e-3", "data.root=/x"], tmp_path)
    assert cfg.run_name == "lr-1e-3"
    assert compose_config("train", [], tmp_path).run_name == "quickstart"
    wandb = compose_config("train", ["logger=wandb", "seed=3"], tmp_path)
    assert wandb.logger.wandb.name == "seed-3" and wandb.logger.wandb.group == "quickstart"


@pytest.mark.slow
def test_a_sweep_names_its_folders_runs_and_logs_by_the_override(tmp_path):
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(tmp_path)}
    args = [
        str(BIN / "dpdeblur-train"),
        "-m",
        "optimizer.lr=1e-3,2e-3",
        "model=dpanet_tiny",
        "model.width=0.0625",
        "trainer.max_steps=1",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.crop_size=32",
        "data.synthetic.train_length=2",
        "data.synthetic.val_length=1",
        "data.synthetic.size=[32,32]",
        "test=false",
        "metrics.lpips=off",
        "metrics.num_panels=0",
    ]
    result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = tmp_path.glob("train/multiruns/*")
    # (Hydra writes a swept value as it parsed it: 1e-3 becomes 0.001)
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0_lr-0.001", "1_lr-0.002"]
    for job, name in (("0_lr-0.001", "lr-0.001"), ("1_lr-0.002", "lr-0.002")):
        metrics = json.loads((sweep / job / "metrics.json").read_text())
        assert metrics["status"] == "ok" and metrics["run_name"] == name
        hparams = (sweep / job / "csv" / "hparams.yaml").read_text()
        assert f"run_name: {name}" in hparams
        # each job ends with its summary, headed by its name
        assert f"dpdeblur-train quickstart ({name})" in result.stdout


def test_a_sweep_is_named_by_the_keys_it_sweeps():
    args = ["-m", "optimizer.lr=1e-3,2e-3", "seed=range(0,3)", "model=dpdnet_small", "+x=1,2"]
    assert swept_keys(args, ["row"]) == {"optimizer.lr", "seed", "x", "row"}
