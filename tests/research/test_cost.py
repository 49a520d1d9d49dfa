"""Parameter and MAC accounting: registered formulas, categories, the paper's figures."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dpdeblur.cli.bench import main as bench_main
from dpdeblur.models import create_model
from dpdeblur.nn.blocks import SamePadConv2d
from dpdeblur.nn.correlation import correlation
from dpdeblur.nn.deform import ModulatedDeformConv2d, OffsetMaskHead
from dpdeblur.research.benchmarks.macs import count_macs, count_params, format_table


class Toy(nn.Module):
    """One op of each kind on the two views, with known MACs."""

    def __init__(self):
        super().__init__()
        self.plain = nn.Conv2d(3, 4, 3, padding=1)
        self.same = SamePadConv2d(3, 4, 2)
        self.head = OffsetMaskHead(8)
        self.deform = ModulatedDeformConv2d(4, 5, 3)

    def forward(self, left, right):
        a, b = self.plain(left), self.same(right)
        offset, mask = self.head(torch.cat([a, b], 1))
        return self.deform(a, offset, mask), correlation(a, b, 2)


def test_formulas_for_each_kind_of_op():
    h, w = 6, 10
    report = count_macs(Toy(), (h, w))
    pixels = h * w
    plain = pixels * 4 * 3 * 9 + pixels * 27 * 8 * 9  # nn.Conv2d + the offset head's conv
    assert report.macs["conv"] == plain
    assert report.macs["same-pad conv"] == pixels * 4 * 3 * 4
    assert report.macs["deformable conv"] == pixels * 5 * 4 * 9
    assert report.macs["correlation"] == pixels * 25 * 4
    assert report.complete_macs == sum(report.macs.values())
    assert report.thop_macs == plain  # thop skips the subclass, the DCN and the correlation
    assert report.params == count_params(Toy())


def test_batch_scales_linearly():
    one = count_macs(Toy(), (4, 4))
    two = count_macs(Toy(), (4, 4), batch=2)
    assert two.complete_macs == 2 * one.complete_macs


def test_functional_convs_outside_modules_are_counted():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(2, 3, 1, 1))

        def forward(self, left, right):
            return torch.nn.functional.conv2d(left + right, self.weight)

    report = count_macs(Functional(), (5, 5))
    assert report.macs == {"conv (functional)": 25 * 2 * 3}
    assert report.thop_macs == 0


def test_release_counts_match_the_spec():
    """At 64x64 every count is 1/16 of 256x256: the spec's 213.7/65.2/38.7/0.9 = 318.5 G."""
    report = count_macs(create_model("dpanet"), (64, 64))
    at_256 = {k: 16 * v / 1e9 for k, v in report.macs.items()}
    assert at_256["conv"] == pytest.approx(213.7, abs=0.05)
    assert at_256["same-pad conv"] == pytest.approx(65.2, abs=0.05)
    assert at_256["deformable conv"] == pytest.approx(38.7, abs=0.05)
    assert at_256["correlation"] == pytest.approx(0.9, abs=0.05)
    assert 16 * report.complete_macs / 1e9 == pytest.approx(318.5, abs=0.05)
    # The paper's 213.77 G is the thop-like count (to 0.03 %).
    assert 16 * report.thop_macs / 1e9 == pytest.approx(213.77, rel=5e-4)
    assert report.params == 63_983_859


def test_baseline_thop_count_matches_the_paper():
    report = count_macs(create_model("dpanet_baseline"), (64, 64))
    assert 16 * report.thop_macs / 1e9 == pytest.approx(190.82, rel=5e-4)
    assert "deformable conv" not in report.macs and "correlation" not in report.macs


def test_table_lists_models_and_totals():
    reports = [
        count_macs(create_model(n, width=0.125), (16, 16), name=n)
        for n in ("dpanet", "dpanet_baseline")
    ]
    table = format_table(reports)
    lines = table.splitlines()
    assert "16x16" in lines[0]
    assert "complete GMACs" in lines[2] and "thop-like GMACs" in lines[2]
    assert lines[4].startswith("| dpanet |") and lines[5].startswith("| dpanet_baseline |")


def test_bench_cost_cli(tmp_path, capsys):
    out = tmp_path / "cost.json"
    argv = ["cost", "--model", "dpanet", "dpanet_no_*", "--size", "16", "24", "--width", "0.125"]
    assert bench_main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| dpanet_no_share |" in printed and "| dpanet_no_dam |" in printed
    payload = json.loads(out.read_text())
    assert payload["size"] == [16, 24]
    names = [m["model"] for m in payload["models"]]
    assert names[0] == "dpanet" and len(names) == 6
    first = payload["models"][0]
    assert first["complete_macs"] == sum(first["macs"].values())
    assert first["params"] == count_params(create_model("dpanet", width=0.125))


def test_bench_cost_unknown_model(capsys):
    assert bench_main(["cost", "--model", "nope", "--size", "8", "8"]) == 2
    assert "no registered model matches 'nope'" in capsys.readouterr().err
