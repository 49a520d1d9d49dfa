"""``dpdeblur-bench profile``: the correlation kernels (and the comparison with the kernels
before the speed work), the training-step table and the data-path profile."""

from __future__ import annotations

import json

import torch

import dpdeblur.nn.correlation as corr_module
from dpdeblur.cli.bench import main
from dpdeblur.research.benchmarks.correlation import (
    whole_batch_correlation_backward,
    whole_batch_correlation_forward,
)


def test_correlation_against_the_whole_batch_kernels(tmp_path, capsys):
    out = tmp_path / "corr.json"
    argv = ["profile", "correlation", "--model", "k3dn_tiny", "--crop", "32", "--batch", "2"]
    code = main([*argv, "--compare-whole-batch", "--repeat", "1", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "whole_batch fwd s" in printed and "current bwd s" in printed
    rows = json.loads(out.read_text())
    assert rows and all(row["identical"] for row in rows)  # the speed work changed no bit
    assert all(row["shape"][0] == 2 for row in rows)
    assert all(row["current_forward_s"] >= 0 and row["whole_batch_backward_s"] >= 0 for row in rows)


def test_whole_batch_kernels_equal_the_operator_over_several_bands(monkeypatch):
    """The comparison is meaningful only if both kernels compute the same function; small
    bands make the current kernel loop per sample and per band."""
    monkeypatch.setattr(corr_module, "_CPU_BAND_BYTES", 64)
    gen = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(3, 4, 9, 11, generator=gen), torch.randn(3, 4, 9, 11, generator=gen)
    grad = torch.randn(3, 25, 9, 11, generator=gen)
    assert torch.equal(
        whole_batch_correlation_forward(x1, x2, 2), corr_module._correlation_forward(x1, x2, 2)
    )
    for ours, theirs in zip(
        whole_batch_correlation_backward(grad, x1, x2, 2),
        corr_module._correlation_backward(grad, x1, x2, 2),
        strict=True,
    ):
        assert torch.equal(ours, theirs)


def test_correlation_profile_without_comparison_has_no_identity_column(capsys):
    argv = ["profile", "correlation", "--model", "k3dn_tiny", "--crop", "32", "--batch", "1"]
    assert main([*argv, "--repeat", "1"]) == 0
    printed = capsys.readouterr().out
    assert "current fwd s" in printed and "whole_batch" not in printed
    assert "identical" not in printed


def test_model_without_correlation_is_an_error(capsys):
    argv = ["profile", "correlation", "--model", "dpdnet", "--width", "0.125", "--crop", "32"]
    assert main(argv) == 2
    assert "has no correlation layer" in capsys.readouterr().err


def test_training_step_table(capsys):
    argv = ["profile", "train-step", "--model", "dpdnet", "--width", "0.125", "--crop", "32"]
    assert main([*argv, "--batch", "1", "--rows", "5"]) == 0
    printed = capsys.readouterr().out
    assert "one Adam step" in printed and "conv" in printed and "Self CPU" in printed


def test_data_path_profile(capsys, monkeypatch):
    monkeypatch.setattr("dpdeblur.research.benchmarks.profile.DPDD_SIZE", (48, 64))
    argv = ["profile", "data", "--images", "1", "--crop", "16", "--samples", "2", "--rows", "3"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "== png: 2 crops of 16" in printed and "== cache: 2 crops of 16" in printed
    assert "function calls" in printed
