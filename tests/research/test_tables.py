"""Paper tables: reference data, row configs, run matching and rendering (issue: paper tables)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dpdeblur.cli.table import main as table_main
from dpdeblur.errors import ConfigError, DpdeblurError
from dpdeblur.research.tables import collect_rows, list_tables, load_table
from dpdeblur.research.tables.collect import columns
from dpdeblur.research.tables.reference import canonical_name
from dpdeblur.training.config import compose_config, config_dir, register_resolvers

CONF = config_dir()


def make_run(
    root: Path,
    name: str,
    row: str,
    seed: int = 0,
    status: str = "ok",
    test: dict | None = None,
    table: str = "toy",
    protocol: str = "16bit",
    mtime: float | None = None,
) -> Path:
    """A run directory as dpdeblur-train leaves it: config.yaml, and metrics.json when done."""
    run = root / name
    run.mkdir(parents=True)
    config = {
        "task_name": "train",
        "table": table,
        "row": row,
        "seed": seed,
        "data": {"dataset": "dpdd", "root": "/data/dd_dp_dataset_png"},
        "metrics": {"protocol": protocol},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    if status == "ok":
        payload = {"status": "ok", "protocol": {"protocol": protocol}, "seed": seed, "test": test}
    elif status == "failed":
        payload = {"status": "failed", "error": "DataError: x.png: truncated -- re-extract"}
    else:
        payload = None  # still running, or killed
    if payload is not None:
        (run / "metrics.json").write_text(json.dumps(payload))
    if mtime is not None:
        for path in run.iterdir():
            os.utime(path, (mtime, mtime))
    return run


TOY_TABLE = {
    "name": "toy",
    "title": "Toy table",
    "source": {"paper": "A. Author: A Paper", "table": "9", "protocol": "16-bit"},
    "metrics": ["psnr", "ssim"],
    "rows": [
        {"id": "a", "label": "Row A", "reference": {"psnr": 25.0, "ssim": 0.8}},
        {"id": "b", "label": "Row B #2", "reference": {"psnr": 26.0, "ssim": 0.81}},
        {"id": "c", "label": "Row C", "reference": {"psnr": 27.0, "ssim": 0.82}},
        {"id": "d", "label": "Other method", "run": None, "reference": {"psnr": 24.0}},
        {"id": "e", "label": "Row E", "reference": None, "reference_note": "not transcribed"},
    ],
}


@pytest.fixture
def toy(tmp_path: Path) -> tuple[Path, Path]:
    """A toy table file and a multirun: A with two seeds (indoor/outdoor means), B failed,
    C never run, D a reference-only method, E unfinished."""
    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump(TOY_TABLE, sort_keys=False))
    sweep = tmp_path / "sweep"
    scores = {"psnr": 25.5, "ssim": 0.8, "images": 4.0, "psnr_indoor": 27.0, "psnr_outdoor": 24.0}
    make_run(sweep, "0", "a", seed=0, test=scores)
    make_run(sweep, "1", "a", seed=1, test={**scores, "psnr": 26.5, "ssim": 0.9})
    make_run(sweep, "2", "b", status="failed")
    make_run(sweep, "3", "e", status="incomplete")
    return spec, sweep


EXPECTED_MD = """\
### Toy table

Paper: A. Author: A Paper, Table 9.
Ours: the test split of each run's best-on-validation checkpoint; delta = ours - paper; +- is the standard deviation over seeds (n).

| Row | Status | n | PSNR | paper | Δ | SSIM | paper | Δ | PSNR indoor | PSNR outdoor | SSIM indoor | SSIM outdoor | Protocol | Data | Note |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|
| Row A | ok | 2 | 26.00 ± 0.71 | 25.00 | +1.00 | 0.850 ± 0.071 | 0.800 | +0.050 | 27.00 | 24.00 | – | – | 16bit | dpdd:dd_dp_dataset_png | – |
| Row B #2 | failed | 0 | – | 26.00 | – | – | 0.810 | – | – | – | – | – | 16bit | dpdd:dd_dp_dataset_png | DataError: x.png: truncated -- re-extract |
| Row C | not run | 0 | – | 27.00 | – | – | 0.820 | – | – | – | – | – | – | – | – |
| Other method | not implemented | 0 | – | 24.00 | – | – | – | – | – | – | – | – | – | – | – |
| Row E | incomplete | 0 | – | not transcribed | – | – | not transcribed | – | – | – | – | – | 16bit | dpdd:dd_dp_dataset_png | – |
"""

EXPECTED_CSV = """\
table,row,label,status,n,seeds,images,protocol,data,paper,paper_table,paper_row,paper_protocol,paper_note,psnr,psnr_std,psnr_paper,psnr_delta,ssim,ssim_std,ssim_paper,ssim_delta,psnr_indoor,psnr_outdoor,ssim_indoor,ssim_outdoor,note,error,runs
toy,a,Row A,ok,2,0;1,4,16bit,dpdd:dd_dp_dataset_png,A. Author: A Paper,9,,16-bit,,26.0,0.707107,25.0,1.0,0.85,0.070711,0.8,0.05,27.0,24.0,,,,,<sweep>/0;<sweep>/1
toy,b,Row B #2,failed,0,,,16bit,dpdd:dd_dp_dataset_png,A. Author: A Paper,9,,16-bit,,,,26.0,,,,0.81,,,,,,,DataError: x.png: truncated -- re-extract,<sweep>/2
toy,c,Row C,not run,0,,,,,A. Author: A Paper,9,,16-bit,,,,27.0,,,,0.82,,,,,,,,
toy,d,Other method,not implemented,0,,,,,A. Author: A Paper,9,,16-bit,,,,24.0,,,,,,,,,,,,
toy,e,Row E,incomplete,0,,,16bit,dpdd:dd_dp_dataset_png,A. Author: A Paper,9,,16-bit,not transcribed,,,,,,,,,,,,,,,<sweep>/3
"""

EXPECTED_TEX = r"""% Toy table
% Paper: A. Author: A Paper, Table 9.
% Ours: the test split of each run's best-on-validation checkpoint; delta = ours - paper; +- is the standard deviation over seeds (n).
\begin{tabular}{llrrrrrrrrrrr}
\toprule
Row & Status & $n$ & \multicolumn{3}{c}{PSNR} & \multicolumn{3}{c}{SSIM} & \multicolumn{2}{c}{PSNR} & \multicolumn{2}{c}{SSIM} \\
 &  &  & ours & paper & $\Delta$ & ours & paper & $\Delta$ & indoor & outdoor & indoor & outdoor \\
\midrule
Row A & ok & 2 & 26.00 $\pm$ 0.71 & 25.00 & $+1.00$ & 0.850 $\pm$ 0.071 & 0.800 & $+0.050$ & 27.00 & 24.00 & -- & -- \\
Row B \#2 & failed & 0 & -- & 26.00 & -- & -- & 0.810 & -- & -- & -- & -- & -- \\
Row C & not run & 0 & -- & 27.00 & -- & -- & 0.820 & -- & -- & -- & -- & -- \\
Other method & not implemented & 0 & -- & 24.00 & -- & -- & -- & -- & -- & -- & -- & -- \\
Row E & incomplete & 0 & -- & not transcribed & -- & -- & not transcribed & -- & -- & -- & -- & -- \\
\bottomrule
\end{tabular}
% b: failed: DataError: x.png: truncated -- re-extract
"""


@pytest.mark.parametrize(
    ("fmt", "expected"), [("md", EXPECTED_MD), ("csv", EXPECTED_CSV), ("tex", EXPECTED_TEX)]
)
def test_failed_and_missing_rows_render_as_such_in_every_format(toy, capsys, fmt, expected):
    spec, sweep = toy
    assert table_main([str(sweep), "--table", str(spec), "--format", fmt]) == 0
    out = capsys.readouterr().out.replace(str(sweep.resolve()), "<sweep>")
    assert out == expected


def test_the_table_is_found_from_the_runs_and_written_to_a_file(toy, tmp_path, monkeypatch):
    spec, _ = toy
    monkeypatch.setenv("DPDEBLUR_TABLES", str(spec.parent))
    out = tmp_path / "t" / "toy.md"
    assert table_main([str(tmp_path), "--out", str(out)]) == 0  # the folder above the sweep
    assert out.read_text() == EXPECTED_MD


def test_bad_paths_and_names_are_one_line_errors(tmp_path, capsys):
    assert table_main([str(tmp_path / "missing")]) == 2
    assert "no such directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert table_main([str(tmp_path / "empty"), "--table", "dpanet-4"]) == 2
    assert "no run directories here" in capsys.readouterr().err
    make_run(tmp_path / "runs", "0", "dpanet", test={"psnr": 1.0})
    assert table_main([str(tmp_path / "runs"), "--table", "dpanet-9"]) == 2
    err = capsys.readouterr().err
    assert "unknown table 'dpanet-9'" in err and "dpanet_table4" in err
    (tmp_path / "runs" / "0" / "metrics.json").write_text("{not json")
    assert table_main([str(tmp_path / "runs"), "--table", "dpanet-4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "metrics.json: unreadable metrics.json" in err


def test_newest_finished_run_per_seed_counts_and_protocols_are_kept_apart(tmp_path):
    spec = tmp_path / "toy.yaml"
    spec.write_text(yaml.safe_dump(TOY_TABLE))
    runs = tmp_path / "runs"
    make_run(runs, "old", "a", seed=0, test={"psnr": 20.0, "ssim": 0.5}, mtime=1000)
    make_run(runs, "new", "a", seed=0, test={"psnr": 22.0, "ssim": 0.6}, mtime=2000)
    make_run(runs, "retry-failed", "a", seed=0, status="failed", mtime=3000)
    make_run(runs, "8bit", "b", seed=0, test={"psnr": 30.0, "ssim": 0.9}, protocol="8bit_trunc")
    make_run(runs, "16bit", "b", seed=1, test={"psnr": 28.0, "ssim": 0.9})
    make_run(runs, "other-task", "c", test={"psnr": 1.0, "ssim": 0.1})
    other = yaml.safe_load((runs / "other-task" / "config.yaml").read_text())
    (runs / "other-task" / "config.yaml").write_text(yaml.safe_dump({**other, "task_name": "eval"}))

    rows = {r["row"]: r for r in collect_rows([runs], spec)}
    # seed 0 of A: the newer finished run, not the older one, not the later failed retry
    assert rows["a"]["status"] == "ok" and rows["a"]["psnr"] == 22.0 and rows["a"]["n"] == 1
    assert rows["a"]["psnr_delta"] == pytest.approx(-3.0) and rows["a"]["psnr_std"] is None
    assert rows["b"]["note"] == "mixed protocols" and rows["b"]["protocol"] == "16bit, 8bit_trunc"
    assert rows["c"]["status"] == "not run"  # an eval run does not fill a training row
    only16 = {r["row"]: r for r in collect_rows([runs], spec, protocol="16bit")}
    assert only16["b"]["psnr"] == 28.0 and only16["b"]["note"] is None
    assert list(rows["a"]) == columns(load_table(spec), [])


def test_reference_tables_hold_the_papers_numbers_and_name_real_rows():
    assert {
        "dpanet_table1",
        "dpanet_table2",
        "dpanet_table3",
        "dpanet_table4",
        "k3dn_ablation",
    } <= set(list_tables())
    t4 = load_table("dpanet-4")
    assert [r.id for r in t4.rows] == [
        "dpanet_baseline",
        "dpanet_no_eam",
        "dpanet_no_cv",
        "dpanet_cv_only",
        "dpanet_no_dam",
        "dpanet",
    ]
    assert t4.row("dpanet_baseline").reference == {
        "psnr": 25.90,
        "ssim": 0.803,
        "mae": 0.038,
        "lpips": 0.227,
    }
    assert load_table("dpanet-3").row("dpanet").reference["lpips"] == 0.162
    assert load_table("dpanet-1").row("dpdnet").reference == {
        "psnr": 25.13,
        "ssim": 0.786,
        "mae": 0.041,
        "lpips": 0.226,
    }
    assert load_table("dpanet-2").row("dpanet").reference == {"psnr": 27.63, "ssim": 0.868}
    k3dn = load_table("k3dn-ablation")
    assert all(r.reference is None and r.reference_note == "not transcribed" for r in k3dn.rows)
    for name in list_tables():
        spec = load_table(name)
        assert spec.source.get("paper") and spec.source.get("table") and spec.source.get("protocol")
        for row in spec.rows:
            if row.implemented and spec.kind == "train":
                assert (CONF / "row" / f"{row.run}.yaml").is_file(), (name, row.id)


@pytest.mark.parametrize(
    "name", ["dpanet_table1", "dpanet_table3", "dpanet_table4", "k3dn_ablation"]
)
def test_each_table_sweep_enumerates_exactly_its_rows(name, tmp_path):
    spec = load_table(name)
    register_resolvers()  # the sweep reads its rows from the table file
    experiment = OmegaConf.load(CONF / "experiment" / f"{spec.experiment}.yaml")
    params = experiment.hydra.sweeper.params
    assert params.row.split(",") == [r.run for r in spec.rows if r.implemented]
    assert str(params.seed) == "0"
    for row in spec.rows:
        if not row.implemented:
            continue
        cfg = compose_config("train", [f"experiment={spec.experiment}", f"row={row.run}"], tmp_path)
        assert cfg.row == row.run and cfg.table == name and cfg.experiment_name == row.run
        assert cfg.data.dataset == "dpdd"


def test_a_row_is_the_same_recipe_in_every_table(tmp_path):
    def recipe(overrides):
        cfg = OmegaConf.to_container(compose_config("train", overrides, tmp_path), resolve=True)
        return {k: cfg[k] for k in ("model", "loss", "optimizer", "scheduler", "data", "trainer")}

    dpanet = recipe(["experiment=dpanet_dpdd"])
    for table in ("dpanet_table1", "dpanet_table3", "dpanet_table4"):
        assert recipe([f"experiment={table}", "row=dpanet"]) == dpanet
    k3dn = recipe(["experiment=k3dn_dpdd", "model=k3dn"])
    for table in ("dpanet_table1", "k3dn_ablation"):
        assert recipe([f"experiment={table}", "row=k3dn"]) == k3dn
    mse = recipe(["experiment=dpanet_table3", "row=dpanet_mse"])
    assert mse["loss"]["terms"] == {"mse": 1.0} and mse["model"] == dpanet["model"]
    no_reblur = recipe(["experiment=k3dn_ablation", "row=k3dn_no_reblur"])
    assert no_reblur["loss"]["terms"] == {"charbonnier": 1.0} and not no_reblur["model"]["reblur"]
    dpdnet = recipe(["experiment=dpanet_table1", "row=dpdnet"])
    assert dpdnet["loss"]["terms"] == {"mse": 1.0} and dpdnet["scheduler"]["milestones"] == [
        60,
        120,
        180,
    ]
    # widths per model family; a plain model.width still wins
    small = recipe(["experiment=dpanet_table1", "row=k3dn", "base_channels.k3dn=8"])
    assert small["model"]["base_channels"] == 8
    assert recipe(["experiment=dpanet_table4", "model.width=0.5"])["model"]["width"] == 0.5


def test_table_names_have_short_forms():
    assert canonical_name("dpanet-4") == "dpanet_table4"
    assert canonical_name("DPANet_Table1") == "dpanet_table1"
    assert canonical_name("k3dn-ablation") == "k3dn_ablation"
    with pytest.raises(ConfigError, match="no row 'nope'"):
        load_table("dpanet-4").row("nope")


def test_a_table_file_without_rows_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntitle: Bad\nmetrics: [psnr]\n")
    with pytest.raises(DpdeblurError, match="lacks rows"):
        load_table(bad)
