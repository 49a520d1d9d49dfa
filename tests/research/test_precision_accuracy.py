"""``dpdeblur-bench precision-accuracy``: fp32 vs bf16 autocast training, the decision rule,
and the ``trainer=gpu_bf16`` recipe."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from dpdeblur.cli.bench import main
from dpdeblur.models import create_model
from dpdeblur.research.benchmarks.precision_accuracy import (
    DEFAULT_MODELS,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NONFINITE,
    batch_order,
    largest_relative_gap,
    recipe_parts,
    render_scenes,
    train_arm,
    verdict,
)
from dpdeblur.training.config import config_dir, register_resolvers

VERDICTS = {HOLDS, FAILS, NONFINITE, INCONCLUSIVE}


def test_quick_mode_scores_every_model_in_both_precisions(tmp_path, capsys):
    out = tmp_path / "precision_accuracy.json"
    assert main(["precision-accuracy", "--quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [row["model"] for row in results["models"]] == list(DEFAULT_MODELS)
    assert results["machine"]["cpu"] and isinstance(results["machine"]["native_bf16"], bool)
    assert math.isfinite(results["input_psnr"])
    for row in results["models"]:
        for arm in ("fp32_psnr", "bf16_psnr"):
            assert len(row[arm]) == results["plan"]["seeds"] == 2
            assert all(math.isfinite(v) for v in row[arm]), (row["model"], arm)
        assert row["verdict"] in VERDICTS
        assert [len(c) for c in row["loss_curves"]["bf16"]] == [row["steps"]] * 2
    table = capsys.readouterr().out
    assert all(f"| {name} |" in table for name in DEFAULT_MODELS)


def test_bf16_arm_runs_under_autocast_and_fp32_runs_repeat_exactly():
    scenes = render_scenes(4, 32, "train", seed=0, max_coc_px=4)
    order = batch_order(4, steps=3, batch=2, seed=0)
    loss, optimizer = recipe_parts("charbonnier", lr=1e-3)
    torch.manual_seed(0)
    initial = create_model("dpdnet_small", width=0.125)
    runs = {
        arm: train_arm(initial, scenes, order, loss, optimizer, 1, bf16=arm == "bf16")[0]
        for arm in ("fp32", "fp32 again", "bf16")
    }
    fp32, again, bf16 = (runs[k].state_dict() for k in ("fp32", "fp32 again", "bf16"))
    # Same machine, same thread count, same inputs: the CPU kernels reduce in the same
    # order, so two fp32 runs agree bit for bit (another thread count could change the
    # last bits, and then the trajectories).
    assert all(torch.equal(fp32[k], again[k]) for k in fp32)
    # bf16 autocast rounds the convolutions' inputs, so the trained weights move apart.
    trained = [k for k in fp32 if fp32[k].is_floating_point() and "running" not in k]
    assert any(not torch.equal(fp32[k], bf16[k]) for k in trained)
    assert all(bf16[k].dtype == fp32[k].dtype for k in fp32)  # the weights stay float32
    assert all(torch.equal(v, initial.state_dict()[k]) for k, v in initial.state_dict().items())


@pytest.mark.parametrize(
    ("fp32", "bf16", "nonfinite", "input_psnr", "expected"),
    [
        ([25.0, 25.2, 25.1], [25.05, 25.1, 25.2], 0, 24.0, HOLDS),  # diff +0.02, tolerance 0.2
        ([25.0, 25.05, 25.02], [24.8, 24.85, 24.82], 0, 24.0, FAILS),  # -0.2 vs 0.1
        ([25.0, 25.05, 25.02], [25.2, 25.25, 25.22], 0, 24.0, FAILS),  # two-sided
        ([25.0, 25.4], [24.75, 25.05], 0, 24.0, HOLDS),  # -0.3 within the seed spread 0.4
        ([25.0, 25.2, 25.1], [25.05, 25.1, 25.2], 1, 24.0, NONFINITE),
        ([25.0, 25.2, 25.1], [23.0, 23.1, 23.2], 0, 24.9, INCONCLUSIVE),  # fp32 +0.2 only
        ([25.0, 25.2, 25.1], [23.0, 23.1, 23.2], 2, 24.9, NONFINITE),  # non-finite first
    ],
)
def test_decision_rule(fp32, bf16, nonfinite, input_psnr, expected):
    assert verdict(fp32, bf16, nonfinite, input_psnr) == expected


def test_loss_gap_is_relative_and_infinite_at_a_non_finite_step():
    assert largest_relative_gap([1.0, 0.5], [1.1, 0.5]) == pytest.approx(0.1)
    assert largest_relative_gap([1.0, 0.5], [1.0, math.nan]) == math.inf


def test_a_bad_step_count_is_a_one_line_error(tmp_path, capsys):
    out = str(tmp_path / "x.json")
    assert main(["precision-accuracy", "--steps", "k3dn_tiny=0", "--out", out]) == 2
    assert main(["precision-accuracy", "--models", "dpdnet_small", "--steps", "k3dn_tiny=5"]) == 2
    err = capsys.readouterr().err
    assert "not a positive step count" in err and "--models does not run" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("experiment", ["dpanet_dpdd", "k3dn_dpdd", "restormer_dp_dpdd"])
def test_gpu_bf16_trainer_is_gpu_in_bf16_mixed(experiment, tmp_path):
    register_resolvers()
    common = [f"experiment={experiment}", f"data.root={tmp_path}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        bf16 = compose(config_name="train", overrides=[*common, "trainer=gpu_bf16"])
        gpu = compose(config_name="train", overrides=common)
    assert bf16.trainer.precision == "bf16-mixed" and gpu.trainer.precision == "32-true"
    bf16_rest, gpu_rest = (OmegaConf.to_container(c.trainer) for c in (bf16, gpu))
    del bf16_rest["precision"], gpu_rest["precision"]
    assert bf16_rest == gpu_rest  # everything else is trainer=gpu's
