"""DeblurSystem pieces that need no Trainer: summaries, CSV rows, optimiser wiring."""

import csv
import functools
import math

import pytest
import torch

from dpdeblur.training.losses import CompositeLoss
from dpdeblur.training.system import DeblurSystem, gather_rows, summarise, write_rows


def rows():
    return [
        {"name": "b", "scene": "indoor", "psnr": 20.0, "ssim": 0.5, "mae": 0.1, "input_psnr": 18.0},
        {
            "name": "a",
            "scene": "outdoor",
            "psnr": 30.0,
            "ssim": 0.9,
            "mae": 0.02,
            "input_psnr": 25.0,
        },
        {
            "name": "c",
            "scene": "outdoor",
            "psnr": 26.0,
            "ssim": 0.7,
            "mae": 0.04,
            "input_psnr": 22.0,
        },
    ]


def test_summary_has_means_overall_and_per_scene():
    means = summarise(rows())
    assert means["psnr"] == pytest.approx(76 / 3) and means["images"] == 3
    assert means["psnr_indoor"] == 20.0 and means["psnr_outdoor"] == 28.0
    assert means["input_psnr_outdoor"] == 23.5
    assert summarise([]) == {}


def test_rows_are_sorted_and_deduplicated_then_written(tmp_path):
    gathered = gather_rows([*rows(), rows()[0]])
    assert [r["name"] for r in gathered] == ["a", "b", "c"]
    path = tmp_path / "test_images.csv"
    write_rows(path, [{**r, "split": "test"} for r in gathered])
    with open(path) as handle:
        read = list(csv.DictReader(handle))
    assert [r["name"] for r in read] == ["a", "b", "c"] and float(read[1]["psnr"]) == 20.0


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_scheduler_interval_reaches_lightning(interval):
    system = DeblurSystem(
        torch.nn.Conv2d(3, 3, 1),
        loss=CompositeLoss({"l1": 1.0}),
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
        scheduler=functools.partial(torch.optim.lr_scheduler.StepLR, step_size=1),
        scheduler_interval=interval,
    )
    config = system.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == interval
    with pytest.raises(ValueError, match="scheduler_interval"):
        DeblurSystem(torch.nn.Identity(), scheduler_interval="batch")


def test_only_trainable_parameters_reach_the_optimiser():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Conv2d(3, 3, 1))
    model[0].requires_grad_(False)
    system = DeblurSystem(model, optimizer=functools.partial(torch.optim.SGD, lr=0.1))
    optimizer = system.configure_optimizers()
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == 12
    assert not math.isnan(optimizer.param_groups[0]["lr"])


def test_channels_last_changes_the_layout_not_the_numbers():
    from dpdeblur.models import create_model

    torch.manual_seed(0)
    model = create_model("dpdnet", width=0.0625, residual=True, dropout=0.0, cost_shifts=2)
    torch.nn.init.normal_(model.head.weight, std=0.1)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    left, right = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        expected = model(left, right)
        system = DeblurSystem(model, channels_last=True).eval()
        out = system(left, right)
    conv = next(p for p in model.parameters() if p.dim() == 4 and p.shape[-1] == 3)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # checkpoints hold the same values whatever the layout, and load into an NCHW model
    fresh = create_model("dpdnet", width=0.0625, residual=True, dropout=0.0, cost_shifts=2)
    fresh.load_state_dict(system.model.state_dict())
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, reference[key], atol=0, rtol=0)


def test_validation_panels_show_the_first_image_of_each_batch(tmp_path):
    from dpdeblur.data.io import read_raw
    from dpdeblur.data.panels import PANEL_GAP

    class MeanOfViews(torch.nn.Module):
        def forward(self, left, right):
            return (left + right) / 2

    metrics = {"num_panels": 2, "lpips": "off"}
    system = DeblurSystem(MeanOfViews(), metrics=metrics, output_dir=tmp_path).eval()
    for index in range(3):
        batch = {
            "left": torch.rand(2, 3, 8, 12),
            "right": torch.rand(2, 3, 8, 12),
            "target": torch.rand(2, 3, 8, 12),
            "name": [f"a{index}", f"b{index}"],
            "bit_depth": torch.tensor([16, 16]),
        }
        with torch.no_grad():
            system.validation_step(batch, index)
    assert len(system.panels) == 2 and len(system.panels[0]) == 5  # l, r, output, target, error
    system._log_panels()
    panel = read_raw(tmp_path / "panels" / "val_epoch000.png")
    assert panel.bit_depth == 8
    assert panel.pixels.shape == (2 * 8 + PANEL_GAP, 5 * 12 + 4 * PANEL_GAP, 3)
