"""``dpdeblur-bench all`` (make bench): a quick run end to end, the plan's rules, the GPU
path's logic on the CPU, and the Markdown report."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dpdeblur.cli.bench import main
from dpdeblur.models import create_model
from dpdeblur.nn.correlation import correlation
from dpdeblur.nn.deform import ModulatedDeformConv2d, OffsetMaskHead
from dpdeblur.research.benchmarks.macs import count_params
from dpdeblur.research.benchmarks.precision import fp32_compute_ops, gpu_variants
from dpdeblur.research.benchmarks.report import render_markdown
from dpdeblur.research.benchmarks.suite import MAIN_MODELS, BenchPlan
from dpdeblur.research.benchmarks.timing import choose_train_crop


def test_quick_run_writes_every_figure(tmp_path, capsys):
    out = tmp_path / "results"
    code = main(
        [
            "all",
            "--quick",
            "--models",
            "dpdnet",
            "k3dn_tiny",
            "--main-models",
            "dpdnet",
            "--size",
            "32",
            "32",
            "--full-res-size",
            "48",
            "64",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "bench.json").read_text())
    assert results["settings"]["quick"] and results["settings"]["size"] == [32, 32]
    assert results["machine"]["cpu_cores"] >= 1 and results["machine"]["torch"] == torch.__version__
    assert len(results["load_average"]["start"]) == 3 and len(results["load_average"]["end"]) == 3
    dpdnet, tiny = results["models"]
    assert dpdnet["model"] == "dpdnet" and dpdnet["main"] and not tiny["main"]
    dpdnet_params = count_params(create_model("dpdnet"))
    assert dpdnet["params"] == dpdnet_params
    assert dpdnet["complete_macs"] == sum(dpdnet["macs"].values()) > dpdnet["thop_macs"] > 0
    assert dpdnet["forward_s"] > 0 and dpdnet["forward_backward_s"] > 0
    full = dpdnet["full_res"]
    assert full["size"] == [48, 64] and full["seconds"] > 0
    assert full["peak_mib"] >= full["rss_before_forward_mib"] > 0
    train = dpdnet["train"]
    assert train["default_crop"] == 512 and train["default_batch"] == 4
    assert 0 < train["crop"] <= 512 and 1 <= train["batch"] <= 4 and train["samples_per_s"] > 0
    assert train["samples_per_s_at_default_crop"] == pytest.approx(
        train["samples_per_s"] * (train["crop"] / 512) ** 2
    )
    # Not a main model: parameters and MACs only.
    assert tiny["params"] > 0 and tiny["complete_macs"] > 0
    assert not {"forward_s", "forward_backward_s", "full_res", "train"} & set(tiny)
    data = results["data"]
    assert data["png_samples_per_s"] > 0 and data["cache_samples_per_s"] > 0
    assert "combined" not in data["what"]  # training reads left, right and target only
    markdown = (out / "bench.md").read_text()
    assert f"| dpdnet | {dpdnet_params / 1e6:.2f} |" in markdown and "| k3dn_tiny |" in markdown
    assert "Machine:" in markdown and "Load average" in markdown and "--quick" in markdown
    assert "## Data path" in markdown and "## MACs op by op" in markdown


def test_skipped_sections_are_left_out(tmp_path):
    out = tmp_path / "r"
    skip = ["forward", "backward", "fullres", "train", "gpu", "data"]
    assert main(["all", "--quick", "--models", "dpdnet", "--skip", *skip, "--out", str(out)]) == 0
    entry = json.loads((out / "bench.json").read_text())["models"][0]
    assert entry["complete_macs"] > 0
    assert not {"forward_s", "forward_backward_s", "full_res", "train"} & set(entry)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--models", "nosuchnet"], "no registered model matches 'nosuchnet'"),
        (["--device", "tpu"], "--device tpu is not supported"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, argv, message):
    assert main(["all", "--quick", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and len(err.splitlines()) == 1


def test_cuda_request_without_a_gpu_is_an_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert main(["all", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device is visible" in capsys.readouterr().err


def test_plan_defaults_and_quick_sizes():
    plan = BenchPlan.build(["dpanet", "dpanet_no_cv", "k3dn_tiny"])
    assert plan.main_models == ["dpanet", "k3dn_tiny"]  # the main models among those chosen
    assert plan.size == (256, 256) and plan.full_res_size == (1120, 1680)
    assert (plan.default_crop, plan.default_batch) == (512, 4)  # conf/data/dpdd.yaml
    assert plan.train_budget_s == 8.0
    quick = BenchPlan.build(["dpdnet"], quick=True, size=(40, 40))
    assert quick.size == (40, 40) and quick.full_res_size[0] < 1120 and quick.data.images <= 2
    assert set(MAIN_MODELS) == {
        "dpanet",
        "dpdnet",
        "k3dn",
        "k3dn_light",
        "k3dn_tiny",
        "restormer_dp",
    }


def test_training_crop_rule():
    per_pixel_dpanet = 53.0 / (256 * 256)  # DPANet: 53 s forward+backward at 256x256 (CPU)
    assert choose_train_crop(per_pixel_dpanet, 512, 4, 15.0) == (128, 1)
    assert choose_train_crop(per_pixel_dpanet, 512, 4, 8.0) == (64, 2)  # make bench's budget
    assert choose_train_crop(1e-9, 512, 4, 15.0) == (512, 4)  # fast: default crop and batch
    crop, batch = choose_train_crop(4.0 / (256 * 256), 512, 4, 15.0)
    assert (crop, batch) == (384, 1)  # 512 would take 16 s
    assert choose_train_crop(1.0, 512, 4, 15.0) == (32, 1)  # nothing fits: the smallest
    assert choose_train_crop(None, 512, 4, 15.0) == (512, 4)  # GPU: the default


class TinyDeformNet(nn.Module):
    """Conv -> deformable conv -> correlation: one of each operator autocast treats apart."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(6, 8, 3, padding=1)
        self.offsets = OffsetMaskHead(8)
        # torchvision's op: the one autocast leaves in fp32 (the sampled one runs in bf16)
        self.deform = ModulatedDeformConv2d(8, 8, implementation="torchvision")
        self.head = nn.Conv2d(8 + 9, 3, 3, padding=1)

    def forward(self, left, right):
        x = self.features(torch.cat([left, right], 1))
        offset, mask = self.offsets(x)
        x = self.deform(x, offset, mask)
        return self.head(torch.cat([x, correlation(x, x, 1)], 1))


def test_fp32_operators_under_autocast_are_found():
    found = fp32_compute_ops(TinyDeformNet(), (16, 16), torch.device("cpu"), torch.bfloat16)
    # torchvision's deformable conv has no bf16 kernel: our module runs it in float32.
    assert found == {"torchvision::deform_conv2d": 1}


def test_gpu_variants_run_on_the_cpu_and_record_failures():
    results = gpu_variants(
        TinyDeformNet(), (16, 16), torch.device("cpu"), variants=("autocast_bf16", "channels_last")
    )
    assert results["autocast_bf16"]["forward_s"] > 0
    assert results["autocast_bf16"]["forward_backward_s"] > 0
    assert results["autocast_bf16"]["fp32_ops"] == {"torchvision::deform_conv2d": 1}
    assert results["channels_last"]["forward_s"] > 0

    class Broken(nn.Module):
        def forward(self, left, right):
            raise RuntimeError("no kernel for this dtype\nsecond line")

    failed = gpu_variants(Broken(), (8, 8), torch.device("cpu"), variants=("autocast_fp16",))
    assert failed["autocast_fp16"] == {"error": "RuntimeError: no kernel for this dtype"}
    with pytest.raises(ValueError, match="unknown variant"):
        gpu_variants(TinyDeformNet(), (8, 8), torch.device("cpu"), variants=("fp8",))


def test_markdown_report_of_a_gpu_run():
    results = {
        "command": "dpdeblur-bench all",
        "created": "2025-01-01T00:00:00",
        "machine": {
            "cpu": "x",
            "cpu_cores": 8,
            "torch_threads": 8,
            "memory_gib": 64,
            "torch": "2.x",
            "torchvision": "0.x",
            "device": "cuda",
            "gpu": "H100",
            "gpu_memory_gib": 80,
        },
        "settings": {
            "size": [256, 256],
            "full_res_size": [1120, 1680],
            "repeat": 1,
            "quick": False,
            "default_crop": 512,
            "default_batch": 4,
        },
        "load_average": {"start": [0.5, 0.4, 0.3], "end": [1.0, 0.5, 0.3]},
        "models": [
            {
                "model": "dpanet",
                "main": True,
                "params": 63983859,
                "size": [256, 256],
                "macs": {"conv": 2e11},
                "complete_macs": 2e11,
                "thop_macs": 2e11,
                "forward_s": 0.05,
                "forward_backward_s": 0.2,
                "full_res": {"seconds": 0.9, "peak_mib": 9000.0, "peak_kind": "cuda"},
                "train": {
                    "crop": 512,
                    "batch": 4,
                    "samples_per_s": 12.0,
                    "samples_per_s_at_default_crop": 12.0,
                    "rule": "default crop and batch",
                },
                "gpu_variants": {
                    "autocast_bf16": {
                        "forward_s": 0.03,
                        "forward_backward_s": 0.1,
                        "fp32_ops": {"torchvision::deform_conv2d": 9},
                    },
                    "compile": {"error": "BackendCompilerFailed: no triton"},
                },
            },
        ],
        "data": None,
        "total_s": 120.0,
    }
    markdown = render_markdown(results)
    assert "H100 (80 GiB)" in markdown and "0.5 -> 1.0" in markdown
    assert (
        "| dpanet | 63.98 | 200.00 | 200.00 | 0.05 | 0.20 | 0.90 | 8.79 | 12.000 (512 x 4) |"
        in markdown
    )
    assert "| dpanet | autocast_bf16 | 0.03 | 0.10 | torchvision::deform_conv2d |" in markdown
    assert "failed: BackendCompilerFailed: no triton" in markdown
