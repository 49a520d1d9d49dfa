"""``make gpu-check`` on a machine without CUDA: the numerics run on the CPU at small sizes,
the rest is recorded as skipped, and the exit status says whether a check failed. Its
parts that need no GPU (the pytest run, the 2-step dpdeblur-train) are run on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dpdeblur.cli.bench import main as bench_main
from dpdeblur.research import gpu_check
from dpdeblur.research.gpu_check import (
    SKIPPED_NO_CUDA,
    GpuCheckPlan,
    measure_train_step,
    run_cuda_tests,
    run_train_cli,
)

pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the CPU-only mode (make gpu-check runs the rest)"
)


def test_without_cuda_the_numerics_run_on_the_cpu_and_the_rest_is_skipped(tmp_path, capsys):
    out = tmp_path / "gpu_check.json"
    assert bench_main(["gpu-check", "--out", str(out), "--device", "cpu"]) == 0
    assert "ok" in capsys.readouterr().out
    results = json.loads(out.read_text())
    assert results["cuda"] is False and results["ok"] and results["failures"] == []
    assert results["machine"]["cpu"] and results["machine"]["device"] == "cpu"
    sections = results["sections"]
    for name in ("cuda_tests", "train_steps", "train_cli", "inference"):
        assert sections[name] == SKIPPED_NO_CUDA
    rows = sections["numerics"]
    ops = {row["op"] for row in rows}
    assert {"correlation", "deformable conv", "fft deblur/reblur", "invertible 1x1 conv"} <= ops
    assert any(row["op"].startswith("uint16") and row["mismatches"] == 0 for row in rows)
    compared = [row for row in rows if "rel_error" in row]
    assert {row["dtype"] for row in compared} == {"float32", "bfloat16"}
    assert all(row["ok"] and row["rel_error"] <= row["tolerance"] for row in compared)
    # every gradient is compared: inputs and parameters
    dcn = {row["quantity"] for row in compared if row["op"] == "deformable conv"}
    assert {"grad x", "grad offset", "grad mask", "grad weight"} <= dcn


def test_a_failed_check_is_listed_and_fails_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "TOLERANCES", {"float32": 0.0, "bfloat16": 0.0})
    out = tmp_path / "gpu_check.json"
    assert bench_main(["gpu-check", "--out", str(out), "--device", "cpu"]) == 1
    assert "FAILED numerics: correlation" in capsys.readouterr().err
    results = json.loads(out.read_text())
    assert not results["ok"] and any("bfloat16" in line for line in results["failures"])


def test_cpu_plan_is_small_and_cuda_plan_is_the_full_check():
    cpu, cuda = GpuCheckPlan.for_device("cpu"), GpuCheckPlan(device="cuda")
    assert cpu.numerics_size[0] * cpu.numerics_size[1] < 400
    assert (cuda.train_crop, cuda.train_batch, cuda.inference_size) == (512, 4, (1120, 1680))
    assert cuda.budget_s <= 480


def test_the_device_test_run_reports_its_counts(tmp_path):
    # The name holds neither "cuda" nor "gpu": pytest -k also matches the names of the
    # folders above a test, and tmp_path is named after this function.
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_fake.py").write_text(
        "def test_on_cuda():\n    pass\n\ndef test_gpu_two():\n    pass\n\n"
        "def test_elsewhere():\n    raise AssertionError\n"
    )
    result = run_cuda_tests(tests, timeout_s=120)
    assert result["ok"] and result["passed"] == 2 and result["deselected"] == 1
    missing = run_cuda_tests(tmp_path / "nowhere", timeout_s=10)
    assert missing["ok"] and "skipped" in missing["skipped"]


def test_two_step_training_command_runs_on_a_tiny_dpdd_tree(tmp_path):
    """The command make gpu-check runs with trainer=gpu and trainer=ddp, on the CPU."""
    result = run_train_cli(["trainer=cpu"], tmp_path, timeout_s=300)
    assert result["ok"], result.get("output_tail")
    assert result["global_step"] == 2 and result["test_psnr"] > 0
    assert list(Path(tmp_path, "dpdd", ".dpdeblur_cache", "train").glob("*.npy"))


def test_training_step_measurement_finds_the_correlation_and_dcn_events():
    step = measure_train_step("dpanet_tiny", 32, 1, torch.device("cpu"), "32-true", 1, 1)
    assert step["ms_per_step"] > 0 and step["samples_per_s"] > 0
    assert step["peak_memory_gib"] is None  # CUDA only
    assert "dpdeblur::correlation" in step["correlation_events"]
    assert "GeneratedBackwardFor_dpdeblur_correlation_defaultBackward" in step["correlation_events"]
    assert step["dcn_events"]  # the sampled DCN off CUDA: its operator and backward node
