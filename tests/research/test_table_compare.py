"""``dpdeblur-table`` on any runs: a sweep compared without a table file, seeds together;
deltas to a paper only beside the paper's data (issue 19)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dpdeblur.cli.table import main as table_main
from dpdeblur.data.layout import SYNTHETIC_MARKER
from dpdeblur.research.tables import collect_rows, compare_table, group_runs
from dpdeblur.runs.find import find_runs

LOSSES = {"charbonnier": {"charbonnier": 1.0}, "mse": {"mse": 1.0}}


def make_job(
    sweep: Path,
    num: int,
    overrides: list[str],
    config: dict,
    test: dict | None,
    seed: int,
    status: str = "ok",
) -> Path:
    """A multirun job folder as dpdeblur-train leaves it: the resolved ``config.yaml`` (with
    the values that name the job's own folder), ``metrics.json`` and Hydra's
    ``.hydra/overrides.yaml``."""
    job = sweep / f"{num}_{'+'.join(o.replace('=', '-') for o in overrides)}"
    (job / ".hydra").mkdir(parents=True)
    resolved = {
        "task_name": "train",
        "experiment_name": "train",
        "run_name": "+".join(o.replace("=", "-") for o in overrides),
        "seed": seed,
        "data": {
            "dataset": "synthetic",
            "root": None,
            "num_workers": 0,
            "synthetic": {"size": [32, 32], "seed": seed},  # follows the seed
        },
        "trainer": {"max_epochs": 1, "default_root_dir": str(job)},
        "callbacks": {"model_checkpoint": {"dirpath": str(job / "checkpoints")}},
        "paths": {"log_dir": str(sweep.parent), "output_dir": str(job)},
        **config,
    }
    (job / "config.yaml").write_text(yaml.safe_dump(resolved))
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    payload = {"status": status, "seed": seed, "protocol": {"protocol": "16bit"}}
    if status == "ok":
        payload |= {"test": test, "val": test, "run_name": resolved["run_name"]}
    else:
        payload["error"] = "TrainingDivergedError: non-finite loss"
    (job / "metrics.json").write_text(json.dumps(payload))
    return job


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """``dpdeblur-train -m loss=charbonnier,mse seed=0,1``: four jobs, two settings."""
    sweep = tmp_path / "multiruns" / "2026-01-01_00-00-00_ab12cd"
    scores = {
        ("charbonnier", 0): {"psnr": 25.0, "ssim": 0.80, "mae": 0.040, "images": 8.0},
        ("charbonnier", 1): {"psnr": 27.0, "ssim": 0.82, "mae": 0.036, "images": 8.0},
        ("mse", 0): {"psnr": 24.0, "ssim": 0.78, "mae": 0.044, "images": 8.0},
        ("mse", 1): {"psnr": 24.5, "ssim": 0.79, "mae": 0.042, "images": 8.0},
    }
    for num, ((loss, seed), test) in enumerate(scores.items()):
        config = {"model": {"name": "dpanet_tiny"}, "loss": {"terms": LOSSES[loss]}}
        make_job(sweep, num, [f"loss={loss}", f"seed={seed}"], config, test, seed)
    return sweep


EXPECTED_MD = """\
### 4 runs in 2 setting(s), grouped by what differs

Ours: the test split of each run's best-on-validation checkpoint; one row per setting, named by the overrides that differ; +- is the standard deviation over seeds (n).

| Setting | Status | n | PSNR | SSIM | MAE | Protocol | Data | Note |
|---|---|---:|---:|---:|---:|---|---|---|
| loss=charbonnier | ok | 2 | 26.00 ± 1.41 | 0.810 ± 0.014 | 0.038 ± 0.003 | 16bit | synthetic | – |
| loss=mse | ok | 2 | 24.25 ± 0.35 | 0.785 ± 0.007 | 0.043 ± 0.001 | 16bit | synthetic | – |
"""


def test_a_two_value_sweep_renders_without_a_table_file(sweep, capsys):
    assert table_main([str(sweep.parent)]) == 0  # the folder above the sweep works too
    captured = capsys.readouterr()
    assert captured.out == EXPECTED_MD and captured.err == ""


def test_seeds_collapse_to_mean_and_std_and_the_csv_has_no_paper_columns(sweep, capsys):
    _, rows = compare_table(find_runs([sweep]))
    assert [r["label"] for r in rows] == ["loss=charbonnier", "loss=mse"]
    first = rows[0]
    assert first["n"] == 2 and first["seeds"] == "0;1" and first["status"] == "ok"
    assert first["psnr"] == pytest.approx(26.0) and first["psnr_std"] == pytest.approx(2**0.5)
    assert not [k for k in first if "paper" in k or k.endswith("_delta")]
    assert table_main([str(sweep), "--format", "csv"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.startswith("table,row,label,status,n,seeds,") and "paper" not in header
    assert len(lines) == 2 and lines[1].startswith("comparison,1,loss=mse,ok,2,0;1,")
    assert table_main([str(sweep), "--format", "tex"]) == 0
    tex = capsys.readouterr().out
    assert "loss=mse & ok & 2 & 24.25 $\\pm$ 0.35" in tex and "paper" not in tex


def test_the_newest_finished_run_per_seed_counts_and_failures_stay(sweep, tmp_path):
    config = {"model": {"name": "dpanet_tiny"}, "loss": {"terms": {"l1": 1.0}}}
    make_job(sweep, 4, ["loss=l1", "seed=0"], config, None, 0, status="failed")
    rows = {r["label"]: r for r in compare_table(find_runs([sweep]))[1]}
    assert rows["loss=l1"]["status"] == "failed" and rows["loss=l1"]["n"] == 0
    assert "non-finite" in rows["loss=l1"]["error"]
    assert rows["loss=mse"]["n"] == 2


def test_runs_of_different_sweeps_are_labelled_by_the_config_keys_that_differ(sweep, tmp_path):
    other = tmp_path / "multiruns" / "2026-01-02_00-00-00_ef34ab"
    config = {"model": {"name": "dpanet_tiny"}, "loss": {"terms": {"charbonnier": 1.0}}}
    # the same setting as loss=charbonnier, made without that override: one group
    make_job(other, 0, ["seed=2"], config, {"psnr": 26.0, "ssim": 0.81, "mae": 0.04}, 2)
    wider = {"model": {"name": "dpanet_tiny", "width": 0.5}, "loss": config["loss"]}
    make_job(other, 1, ["seed=0"], wider, {"psnr": 28.0, "ssim": 0.85, "mae": 0.03}, 0)
    groups = group_runs(find_runs([sweep.parent]))
    assert [len(g.runs) for g in groups] == [3, 2, 1]
    assert [g.label for g in groups] == [
        "loss.terms.charbonnier=1.0, loss.terms.mse=null, model.width=null",
        "loss.terms.charbonnier=null, loss.terms.mse=1.0, model.width=null",
        "loss.terms.charbonnier=1.0, loss.terms.mse=null, model.width=0.5",
    ]


def paper_table(tmp_path: Path) -> Path:
    spec = {
        "name": "toy",
        "title": "Toy table",
        "source": {"paper": "A. Author", "table": "1", "protocol": "16-bit"},
        "metrics": ["psnr"],
        "rows": [{"id": "a", "label": "Row A", "reference": {"psnr": 25.0}}],
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def table_run(root: Path, name: str, dataset: str, data_root: Path | None) -> None:
    run = root / name
    run.mkdir(parents=True)
    config = {
        "task_name": "train",
        "table": "toy",
        "row": "a",
        "seed": 0,
        "data": {"dataset": dataset, "root": None if data_root is None else str(data_root)},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    payload = {"status": "ok", "seed": 0, "protocol": {"protocol": "16bit"}}
    (run / "metrics.json").write_text(json.dumps(payload | {"test": {"psnr": 26.0}}))


@pytest.mark.parametrize(
    ("dataset", "synthetic_tree", "delta", "note"),
    [
        ("dpdd", False, 1.0, None),
        ("synthetic", False, None, "no delta: synthetic data, the paper's is dpdd"),
        ("dpdd", True, None, "no delta: a synthetic tree in DPDD's layout (dpdeblur-data synth)"),
    ],
)
def test_deltas_to_the_paper_only_beside_the_papers_data(
    tmp_path, dataset, synthetic_tree, delta, note
):
    data_root = tmp_path / "dd_dp_dataset_png"
    data_root.mkdir()
    if synthetic_tree:
        (data_root / SYNTHETIC_MARKER).write_text("{}")
    table_run(tmp_path / "runs", "0", dataset, data_root)
    (row,) = collect_rows([tmp_path / "runs"], paper_table(tmp_path))
    assert row["psnr"] == 26.0 and row["psnr_paper"] == 25.0  # the paper's number stays
    assert row["psnr_delta"] == delta and row["note"] == note


def test_paper_tables_stay_and_other_runs_are_compared_beside_them(sweep, tmp_path, capsys):
    spec = paper_table(tmp_path)
    table_run(sweep.parent, "paper-run", "dpdd", None)
    assert table_main([str(sweep.parent), "--table", str(spec)]) == 0
    only = capsys.readouterr().out
    assert only.startswith("### Toy table") and "| Row A | ok | 1 | 26.00 | 25.00 | +1.00 |" in only
    assert "grouped by what differs" not in only
    assert table_main([str(sweep.parent), "--compare"]) == 0
    assert "5 runs in 3 setting(s)" in capsys.readouterr().out


def test_a_paper_table_that_none_of_the_runs_fill_says_how_to_compare_them(sweep, capsys):
    assert table_main([str(sweep), "--table", "dpanet-4"]) == 0
    out = capsys.readouterr().out
    assert out.count("| not run |") == 6
    assert "None of the 4 runs given is a row of this table" in out
    assert "without --table" in out


def one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_table_mistakes_are_one_line_in_the_tools_flags(sweep, tmp_path, capsys):
    assert table_main([str(sweep), "--table", "dpanet-4", "--compare"]) == 2
    assert "pass --table NAME" in one_error_line(capsys.readouterr().err)
    table_run(sweep.parent, "paper-run", "dpdd", None)
    assert table_main([str(sweep.parent), "--format", "csv"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "several tables (toy, comparison)" in line and "--compare" in line
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert table_main([str(sweep), "--out", str(blocker / "t.md")]) == 2
    assert "pass a writable --out path" in one_error_line(capsys.readouterr().err)
