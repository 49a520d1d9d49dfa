"""make reproduce-table SCALE=smoke: every row of a paper table trains and lands in its table.

The smoke sweeps run ``dpdeblur-reproduce`` (what ``make reproduce-table`` runs) on a
synthetic DPDD tree: one ``dpdeblur-train -m`` process per table, Hydra's basic
launcher running the rows one after the other, two training steps per row at a sixteenth
of the widths, 64x64 scenes, 2 validation and 2 test images.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dpdeblur.cli.reproduce import main
from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.errors import DataError
from dpdeblur.research.reproduce import SMOKE_SCENES, SMOKE_SIZE, plan
from dpdeblur.research.tables import load_table

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("smoke") / "synthetic_dpdd"
    write_synthetic_dpdd(root, n=SMOKE_SCENES, size=SMOKE_SIZE, seed=0)
    return root


def run_smoke(table: str, data: Path, tmp_path: Path) -> tuple[list[dict], str, Path]:
    out = tmp_path / "results"
    code = main(
        [
            "--table",
            table,
            "--scale",
            "smoke",
            "--data",
            str(data),
            "--out",
            str(out),
            "--runs-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert code == 0
    name = load_table(table).name
    rows = list(csv.DictReader(io.StringIO((out / f"{name}-smoke.csv").read_text())))
    markdown = (out / f"{name}-smoke.md").read_text()
    assert (out / f"{name}-smoke.tex").read_text().count("\\\\") == len(rows) + 2
    return rows, markdown, tmp_path / "runs"


def check_filled(rows: list[dict], table: str) -> None:
    spec = load_table(table)
    assert [r["row"] for r in rows] == [r.id for r in spec.rows]
    for row, ref in zip(rows, spec.rows, strict=True):
        if not ref.implemented:
            assert row["status"] == "not implemented" and not row["psnr"]
            continue
        assert row["status"] == "ok", row
        assert row["n"] == "1" and row["images"] == "2" and row["protocol"] == "16bit"
        assert row["data"] == "dpdd:synthetic_dpdd"
        for metric in ("psnr", "ssim", "mae"):
            assert math.isfinite(float(row[metric])), (row["row"], metric)
            if ref.reference:
                assert float(row[f"{metric}_paper"]) == ref.reference[metric]
                # synthetic scenes in DPDD's layout: no difference to the paper's DPDD numbers
                assert row[f"{metric}_delta"] == "" and "no delta: a synthetic tree" in row["note"]


def run_config(runs: Path, row: str) -> dict:
    for path in runs.glob("*/*/*/config.yaml"):
        config = yaml.safe_load(path.read_text())
        if config.get("row") == row:
            return config
    raise AssertionError(f"no run of row {row}")


@pytest.mark.slow
def test_table_iv_smoke_sweep_fills_all_six_rows(smoke_data, tmp_path):
    rows, markdown, runs = run_smoke("dpanet-4", smoke_data, tmp_path)
    check_filled(rows, "dpanet-4")
    assert len(rows) == 6
    assert "| Baseline (w/o EAM, w/o DAM) | ok | 1 |" in markdown and "| 25.90 |" in markdown
    # the rows ran different models, one job folder each, at the smoke widths
    names = {run_config(runs, r["row"])["model"]["name"] for r in rows}
    assert names == {r["row"] for r in rows}
    assert {run_config(runs, r["row"])["model"]["width"] for r in rows} == {0.0625}
    assert len(list(runs.glob("dpanet_table4/*/[0-9]_*/metrics.json"))) == 6


@pytest.mark.slow
def test_table_iii_smoke_sweep_fills_all_five_rows(smoke_data, tmp_path):
    rows, _, runs = run_smoke("dpanet-3", smoke_data, tmp_path)
    check_filled(rows, "dpanet-3")
    assert len(rows) == 5
    assert run_config(runs, "dpanet_mse")["loss"]["terms"] == {"mse": 1.0}
    assert run_config(runs, "dpanet")["loss"]["terms"] == {"charbonnier": 1.0}
    by_row = {r["row"]: r for r in rows}
    assert by_row["dpanet_mse"]["psnr"] != by_row["dpanet"]["psnr"]  # the loss made a difference


@pytest.mark.slow
def test_table_i_smoke_sweep_trains_dpdnet_dpanet_and_k3dn(smoke_data, tmp_path):
    rows, markdown, runs = run_smoke("dpanet-1", smoke_data, tmp_path)
    check_filled(rows, "dpanet-1")
    assert [r["row"] for r in rows if r["status"] == "ok"] == ["dpdnet", "dpanet", "k3dn"]
    assert run_config(runs, "dpdnet")["model"]["width"] == 0.0625
    assert run_config(runs, "k3dn")["model"]["base_channels"] == 8
    assert "not in this table" in markdown  # K3DN is not in DPANet's Table I


def test_smoke_plan_is_one_sweep_over_the_tables_rows(tmp_path):
    the_plan = plan("dpanet-4", None, "smoke", tmp_path)
    (command,) = the_plan.commands
    assert command[1:3] == ["-m", "experiment=dpanet_table4"]
    assert f"data.root={tmp_path / 'synthetic_dpdd'}" in command
    assert "widths.dpanet=0.0625" in command and "trainer=cpu" in command
    assert f"hydra.sweep.dir={the_plan.sweep_dir}" in command
    assert the_plan.sweep_dir.parent == tmp_path / "dpanet_table4"
    seeds = plan("dpanet-4", tmp_path, "full", tmp_path, seeds="0,1", extra=["trainer=ddp"])
    (command,) = seeds.commands
    assert "seed=0,1" in command and command[-1] == "trainer=ddp" and "trainer=cpu" not in command


def test_table_ii_plan_trains_the_dpanet_row_then_scores_it_at_half_resolution(tmp_path):
    train, evaluate = plan("dpanet-2", None, "smoke", tmp_path).commands
    assert "row=dpanet" in train and "experiment=dpanet_table4" in train
    assert Path(evaluate[0]).name == "dpdeblur-eval" and "metrics.protocol=half_res" in evaluate


def test_full_scale_without_data_says_what_to_pass(tmp_path, monkeypatch):
    monkeypatch.delenv("DPDD_ROOT", raising=False)
    with pytest.raises(DataError, match="DATA=/path/to/dd_dp_dataset_png"):
        plan("dpanet-4", None, "full", tmp_path)
    with pytest.raises(DataError, match="no such dataset folder"):
        plan("dpanet-4", tmp_path / "missing", "full", tmp_path)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_target_runs_the_reproduce_script():
    result = subprocess.run(
        ["make", "-n", "reproduce-table", "TABLE=dpanet-4", "SCALE=smoke", "SEEDS=0,1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "dpdeblur-reproduce --table dpanet-4 --scale smoke" in result.stdout
    assert "--seeds 0,1" in result.stdout


def test_cli_reports_an_unknown_table_in_one_line(capsys):
    assert main(["--table", "dpanet-9", "--scale", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1
    assert "unknown table 'dpanet-9'" in err and "dpanet_table4" in err
