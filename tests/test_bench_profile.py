"""``dpdeblur-bench profile``: the correlation comparison and the training-step table."""

from __future__ import annotations

import json
from pathlib import Path

import dpdeblur.nn.correlation as corr_module
from dpdeblur.cli.bench import main


def test_correlation_against_a_reference_copy(tmp_path, capsys):
    reference = tmp_path / "correlation_before.py"
    reference.write_text(Path(corr_module.__file__).read_text())
    out = tmp_path / "corr.json"
    argv = ["profile", "correlation", "--model", "k3dn_tiny", "--crop", "32", "--batch", "2"]
    code = main([*argv, "--reference", str(reference), "--repeat", "1", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "reference fwd s" in printed and "current bwd s" in printed
    rows = json.loads(out.read_text())
    assert rows and all(row["identical"] for row in rows)  # the same code: equal bit for bit
    assert all(row["shape"][0] == 2 for row in rows)


def test_reference_without_the_functions_is_a_one_line_error(tmp_path, capsys):
    reference = tmp_path / "other.py"
    reference.write_text("x = 1\n")
    argv = ["profile", "correlation", "--model", "k3dn_tiny", "--crop", "32", "--batch", "1"]
    assert main([*argv, "--reference", str(reference)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "other.py" in err and "_correlation_forward" in err


def test_model_without_correlation_is_an_error(capsys):
    argv = ["profile", "correlation", "--model", "dpdnet", "--width", "0.125", "--crop", "32"]
    assert main(argv) == 2
    assert "has no correlation layer" in capsys.readouterr().err


def test_training_step_table(capsys):
    argv = ["profile", "train-step", "--model", "dpdnet", "--width", "0.125", "--crop", "32"]
    assert main([*argv, "--batch", "1", "--rows", "5"]) == 0
    printed = capsys.readouterr().out
    assert "one Adam step" in printed and "conv" in printed and "Self CPU" in printed
