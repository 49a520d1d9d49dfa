"""The notebooks in notebooks/ run top to bottom on the CPU and are stored without outputs.

Each notebook runs in a fresh kernel of this interpreter (a kernelspec written for the test,
so a ``python3`` kernelspec elsewhere on the machine cannot pick another Python), in a
temporary working directory, with the figures it writes checked afterwards.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.models import create_model

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ("01_dp_data_tour", "02_inside_the_networks", "03_results")
KERNEL = "dpdeblur-test"
CELL_TIMEOUT_S = 300
# Settings the notebooks read; cleared so a developer's environment cannot change a run.
NOTEBOOK_ENV = (
    "DPDD_ROOT",
    "DPDEBLUR_CKPT",
    "DPDEBLUR_K3DN_CKPT",
    "DPDEBLUR_NB_OUT",
    "DPDEBLUR_NB_STEPS",
    "DPDEBLUR_OUTPUTS",
    "DPDEBLUR_RUNS",
)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory, and a kernelspec that runs this interpreter's ipykernel."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "dpdeblur test", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no user profile/startup
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    # Figures as inline PNG outputs (headless), whatever MPLBACKEND the caller has.
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in NOTEBOOK_ENV:
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    return work


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def execute(nb: nbformat.NotebookNode, workdir: Path) -> nbformat.NotebookNode:
    """Run every cell; a failing cell raises CellExecutionError with its traceback."""
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    return nb


def printed(nb: nbformat.NotebookNode) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "stream"
    )


def count_images(nb: nbformat.NotebookNode) -> int:
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def figures(workdir: Path, name: str) -> Path:
    return workdir / "outputs" / "notebooks" / name


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stored_without_outputs(name):
    nb = read(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, "a notebook without code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, cell.source[:80]
        assert "execution" not in cell.metadata, cell.source[:80]  # no run timings either


def test_data_tour_skips_dpdd_with_a_message_when_it_is_absent(workdir):
    nb = read("01_dp_data_tour")
    setup = nb.cells[1]
    dpdd = [cell for cell in nb.cells if "DPDDDataset" in cell.source]
    assert "DPDD_ROOT" in setup.source and len(dpdd) == 1
    nb.cells = [setup, dpdd[0]]  # the DPDD cell needs nothing else when there is no data
    text = printed(execute(nb, workdir))
    assert "DPDD_ROOT is not set: skipping the DPDD sample" in text
    assert not (figures(workdir, "01_dp_data_tour") / "dpdd_sample.png").exists()


@pytest.mark.slow
def test_data_tour_runs_and_measures_disparity_against_defocus(workdir, tmp_path, monkeypatch):
    root = tmp_path / "dpdd"
    write_synthetic_dpdd(root, n=7, size=(64, 96), seed=2)  # a DPDD-layout tree, 1 test image
    monkeypatch.setenv("DPDD_ROOT", str(root))
    nb = execute(read("01_dp_data_tour"), workdir)

    out = figures(workdir, "01_dp_data_tour")
    for png in ("views.png", "kernels.png", "disparity_vs_defocus.png", "dpdd_sample.png"):
        assert (out / png).stat().st_size > 1000, png
    assert count_images(nb) == 4
    text = printed(nb)
    assert f"python: {sys.executable}" in text
    assert "right kernel == mirrored left kernel: True" in text
    assert "DPDD sample: SYNTE" in text  # the test image of the tree was read and shown

    fit = json.loads((out / "disparity_fit.json").read_text())
    for kind in ("hard", "soft"):
        f = fit[kind]
        # The correlation peak of one textured plane follows the kernels' cross-correlation
        # peak (what correlation finds) within 0.3 px over CoC radii -8..8.
        assert f["planes_max_abs_error_px"] < 0.3, kind
        assert f["planes_ratio"] == pytest.approx(f["xcorr_peak_ratio"], rel=0.05), kind
        assert f["scenes_patches"] >= 100 and f["scenes_median_abs_error_px"] < 0.5, kind
    # Hard half-discs: the 8 / (3 pi) / 2 = 0.4244 of the theory, to a few percent.
    assert fit["hard"]["centroid_ratio"] == pytest.approx(0.4244, abs=0.003)
    assert fit["hard"]["planes_ratio"] == pytest.approx(0.4244, rel=0.06)


@pytest.mark.slow
def test_inside_the_networks_hooks_a_checkpoint_and_a_model_trained_there(
    workdir, tmp_path, monkeypatch
):
    # DPANet from a checkpoint (the converted-weights format), K3DN trained in the notebook.
    dpanet = create_model("dpanet", width=0.0625)
    checkpoint = tmp_path / "dpanet.pt"
    torch.save(
        {
            "format": "dpdeblur-weights",
            "model": "dpanet",
            "model_kwargs": {"width": 0.0625},
            "state_dict": dpanet.state_dict(),
        },
        checkpoint,
    )
    monkeypatch.setenv("DPDEBLUR_CKPT", str(checkpoint))
    monkeypatch.setenv("DPDEBLUR_NB_STEPS", "4")
    nb = execute(read("02_inside_the_networks"), workdir)

    out = figures(workdir, "02_inside_the_networks")
    for png in (
        "scene.png",
        "dpanet_aligned_features.png",
        "dpanet_offsets.png",
        "k3dn_kernels.png",
        "k3dn_window_weights.png",
    ):
        assert (out / png).stat().st_size > 1000, png
    text = printed(nb)
    assert f"DPANet (420,279 parameters): loaded converted checkpoint {checkpoint}" in text
    assert "K3DN (2,010,246 parameters): no checkpoint given: trained here for 2 steps" in text

    stats = json.loads((out / "inside_stats.json").read_text())
    assert stats["DPANet"]["origin"] == "checkpoint"
    assert stats["K3DN"]["origin"] == "trained_here"
    offsets = stats["DPANet"]["offsets"]
    # Four EAMs and four DAMs, each with finite statistics of its offsets and modulation.
    assert sorted(offsets) == [f"DAM{i}" for i in range(1, 5)] + [f"EAM{i}" for i in range(1, 5)]
    assert [offsets[f"EAM{i}"]["scale"] for i in range(1, 5)] == [1, 2, 4, 8]
    for row in offsets.values():
        assert 0 < row["mean_modulation"] < 1 and row["mean_abs_dx"] >= 0
    differences = stats["DPANet"]["relative_lr_difference"]
    assert len(differences) == 10 and all(0 <= v < 1 for v in differences.values())
    assert stats["K3DN"]["kernel_asymmetry"] == 0.0  # the DP symmetry holds exactly
    assert stats["K3DN"]["window_grid"] == [3, 4]  # 216x288 in windows of 72 px
    assert len(stats["K3DN"]["weight_spread_per_block"]) == 8


@pytest.mark.slow
def test_results_makes_two_runs_and_shows_their_table_and_worst_images(workdir):
    nb = execute(read("03_results"), workdir)

    out = figures(workdir, "03_results")
    table = (out / "results.md").read_text().splitlines()
    assert len(table) == 4  # header, rule, one row per run
    assert "dpdnet_small x0.0625" in table[2] and "dpdnet_small x0.125" in table[3]
    assert all("| ok |" in row and "| 5 |" in row for row in table[2:])
    assert (out / "curves_and_scores.png").stat().st_size > 1000
    worst_pngs = sorted(out.glob("worst_images_*.png"))
    assert len(worst_pngs) == 2
    worst = json.loads((out / "worst_images.json").read_text())
    assert sorted(worst) == ["0_width-0.0625", "1_width-0.125"]  # jobs named by overrides
    for rows in worst.values():
        assert len(rows) == 3
        assert [r["psnr"] for r in rows] == sorted(r["psnr"] for r in rows)
        for r in rows:  # re-rendered from the best checkpoint: the CSV's score again
            assert r["recomputed"] == pytest.approx(r["psnr"], abs=1e-3)
    assert count_images(nb) >= 4  # curves, a validation panel, two worst-image grids
    assert f"python: {sys.executable}" in printed(nb)
    assert os.path.isdir(out / "runs" / "train" / "multiruns")
