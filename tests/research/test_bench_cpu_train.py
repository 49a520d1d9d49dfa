"""``dpdeblur-bench cpu-train``: every layout/precision variant timed, written and printed."""

from __future__ import annotations

import json

import torch

from dpdeblur.cli.bench import main
from dpdeblur.models import create_model
from dpdeblur.research.benchmarks.cpu_training import CPU_VARIANTS, time_cpu_step
from dpdeblur.research.benchmarks.timing import training_loss
from dpdeblur.training.losses import CompositeLoss


def test_all_variants_are_timed_and_written(tmp_path, capsys):
    argv = ["cpu-train", "--width", "0.0625", "--crop", "32", "--batch", "1", "--steps", "1"]
    assert main([*argv, "--out", str(tmp_path)]) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "bench_cpu_train.json").read_text())
    assert [row["name"] for row in results["variants"]] == [v.name for v in CPU_VARIANTS]
    assert all(row["ms_per_step"] > 0 for row in results["variants"])
    assert results["variants"][0]["speedup"] == 1.0
    assert results["model"] == "dpdnet_small" and results["model_args"]["cost_shifts"] == 4
    assert results["model_args"]["width"] == 0.0625 and isinstance(results["native_bf16"], bool)
    table = (tmp_path / "bench_cpu_train.md").read_text()
    assert "| NHWC bf16-mixed, fused AdamW |" in table and table in capsys.readouterr().out


def test_timing_leaves_the_callers_model_alone():
    model = create_model("dpdnet", width=0.0625, residual=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    time_cpu_step(model, CPU_VARIANTS[-1], batch=1, crop=32, steps=1, warmup=1)
    for key, value in model.state_dict().items():
        assert value.is_contiguous() and torch.equal(value, before[key])  # a copy trained


def test_unknown_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["cpu-train", "--model", "nope", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "Traceback" not in err


def test_the_timed_training_loss_is_k3dns_with_its_reblur_term():
    # K3DN gives a reblur function, not a reblurred image: the timed loss must still add
    # 0.1 x the reblur term (conf/loss/k3dn.yaml), as training does.
    torch.manual_seed(0)
    model = create_model("k3dn_tiny", window_size=8).train()
    left, right, target = torch.rand(3, 1, 3, 32, 32).unbind(0)
    batch = {"left": left, "right": right, "target": target}
    with torch.no_grad():
        output = model(left, right)
        timed = training_loss(output, batch)
        plain, _ = CompositeLoss({"charbonnier": 1.0})(output, batch)
        with_reblur, _ = CompositeLoss({"charbonnier": 1.0, "reblur": 0.1})(output, batch)
    assert torch.equal(timed, with_reblur) and not torch.equal(timed, plain)
