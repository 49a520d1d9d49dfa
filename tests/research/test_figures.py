"""``dpdeblur-bench figures`` on fabricated run directories: files, plotted numbers, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.image
import pytest

from dpdeblur.cli.bench import main
from dpdeblur.research.figures.runs import figure_labels, scored_runs
from dpdeblur.runs.records import read_image_rows

FIELDS = ("name", "split", "scene", "psnr", "ssim", "input_psnr")


def make_run(
    root: Path,
    name: str,
    psnr: float | None,
    width: float,
    split: str = "test",
    rows: list[tuple[str, float, float]] | None = None,
    run_name: str | None = None,
    dataset: str = "dpdd",
) -> Path:
    """A run directory as training/evaluation writes it (metrics.json, config.yaml, CSV)."""
    run = root / name
    run.mkdir(parents=True)
    model = {"_target_": "dpdeblur.models.create_model", "name": "dpdnet", "width": width}
    metrics = {
        "status": "ok" if psnr is not None else "failed",
        "run_name": run_name or name,
        "model": model,
    }
    if psnr is not None:
        metrics[split] = {"psnr": psnr, "psnr_indoor": psnr + 1, "psnr_outdoor": psnr - 1}
        metrics["params"] = 1000
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.yaml").write_text(
        f"run_name: {name}\ndata:\n  dataset: {dataset}\nmodel:\n  name: dpdnet\n  width: {width}\n"
    )
    if rows is not None:
        with open(run / f"{split}_images.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            writer.writeheader()
            for i, (scene, out_psnr, in_psnr) in enumerate(rows):
                writer.writerow(
                    {
                        "name": f"img{i:02d}",
                        "split": split,
                        "scene": scene,
                        "psnr": out_psnr,
                        "ssim": 0.8,
                        "input_psnr": in_psnr,
                    }
                )
    return run


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "outputs"
    rows = [
        ("indoor", 28.0, 25.0),
        ("outdoor", 23.0, 22.5),
        ("indoor", 30.0, 26.0),
        ("outdoor", 21.0, 21.5),
        ("indoor", 27.0, 24.0),
        ("outdoor", 24.0, 22.0),
    ]
    make_run(root / "train" / "runs", "small", 24.5, 0.125, rows=rows)
    make_run(root / "train" / "runs", "wider", 24.9, 0.25, split="val", dataset="synthetic")
    make_run(root / "train" / "runs", "crashed", None, 0.125)
    return root


@pytest.fixture
def bench_json(tmp_path: Path) -> Path:
    """Sizes of the registry models the references name, so nothing large is counted."""
    path = tmp_path / "bench.json"
    models = [
        {"model": "dpanet", "size": [256, 256], "params": 63983859, "complete_macs": 318e9},
        {"model": "dpdnet", "size": [256, 256], "params": 31033603, "complete_macs": 120e9},
    ]
    path.write_text(json.dumps({"models": models}))
    return path


def test_figures_from_runs(tmp_path, runs_root, bench_json, capsys):
    out = tmp_path / "figures"
    code = main(
        ["figures", "--runs", str(runs_root), "--bench", str(bench_json), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    for stem in ("psnr_vs_params", "psnr_vs_macs", "per_image_gain_small"):
        png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
        assert pdf.read_bytes().startswith(b"%PDF")
        pixels = matplotlib.image.imread(png)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300  # a real figure, not a stub
        assert pixels[..., :3].std() > 0.05  # something is drawn on it
    manifest = json.loads((out / "figures.json").read_text())
    runs = {r["label"]: r for r in manifest["runs"]}
    assert set(runs) == {"small", "wider"}
    assert runs["wider"]["split"] == "val" and runs["small"]["split"] == "test"
    assert runs["wider"]["dataset"] == "synthetic" and runs["small"]["dataset"] == "dpdd"
    # MACs counted on the models the runs describe: twice the width, about 4x the MACs.
    assert 3 < runs["wider"]["macs"] / runs["small"]["macs"] < 4.5
    refs = {r["method"]: r for r in manifest["references"]}
    assert refs["DPANet"]["psnr"] == 26.80 and refs["DPANet"]["macs"] == 318e9
    assert refs["DPDNet"]["params"] == 31033603  # measured on our DPDNet, from bench.json
    assert refs["DPANet"]["size_from"] == "dpanet" and refs["BaMBNet"]["size_from"] is None
    assert refs["Restormer"]["params"] is None  # size not given: drawn as a line
    assert any(path.endswith("crashed") for path in manifest["left_out"])
    assert "left out" in capsys.readouterr().out


def test_gain_figure_needs_input_psnr(tmp_path, runs_root, bench_json, capsys):
    run = runs_root / "train" / "runs" / "small"
    csv_path = run / "test_images.csv"
    rows = read_image_rows(csv_path)
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**{k: row[k] for k in FIELDS}, "input_psnr": ""})
    code = main(
        [
            "figures",
            "--runs",
            str(run),
            "--gain-runs",
            str(run),
            "--bench",
            str(bench_json),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "no input PSNR" in err and "test_images.csv" in err and len(err.strip().splitlines()) == 1
    )


def test_missing_run_folder_is_a_one_line_error(tmp_path, capsys):
    code = main(["figures", "--runs", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err


def test_duplicate_labels_get_the_directory_name(tmp_path):
    make_run(tmp_path, "2025-01-01_aaa", 24.0, 0.125, run_name="dpdnet")
    make_run(tmp_path, "2025-01-02_bbb", 25.0, 0.125, run_name="dpdnet")
    runs, unscored = scored_runs([tmp_path])
    assert not unscored
    assert list(figure_labels(runs).values()) == [
        "dpdnet (2025-01-01_aaa)",
        "dpdnet (2025-01-02_bbb)",
    ]
