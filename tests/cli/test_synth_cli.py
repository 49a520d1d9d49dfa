"""`dpdeblur-data synth` trees read back bit-exactly through the DPDD dataset; `dpdeblur-demo`."""

import json
from pathlib import Path

import numpy as np
import pytest

from dpdeblur.cli.data import main as data_main
from dpdeblur.cli.demo import main as demo_main
from dpdeblur.data.datasets import DPDDDataset
from dpdeblur.data.io import quantize
from dpdeblur.data.synthetic import SyntheticDPDataset
from dpdeblur.models import create_model
from dpdeblur.runs.checkpoints import write_weights


@pytest.mark.parametrize("layout", ["official", "restormer"])
def test_synth_tree_round_trips_bit_exactly(tmp_path, capsys, layout):
    out = tmp_path / "synth"
    args = [
        "synth",
        "--out",
        str(out),
        "--n",
        "7",
        "--size",
        "24",
        "32",
        "--seed",
        "5",
        "--layout",
        layout,
    ]
    assert data_main(args) == 0
    assert "train: wrote 5 samples" in capsys.readouterr().out
    for split, count in {"train": 5, "val": 1, "test": 1}.items():
        dataset = DPDDDataset(out, split)
        assert dataset.layout == layout and len(dataset) == count
        rendered = SyntheticDPDataset(length=count, size=(24, 32), seed=5, split=split)
        for i, record in enumerate(dataset.records):
            assert record.target.stem != record.name  # names differ, as in DPDD
            sample, truth = dataset[i], rendered[i]
            assert sample["bit_depth"] == 16
            # uint16 codes; the CLI rendered the same scenes in this process, bit for bit.
            for role in ("left", "right", "combined", "target"):
                read = np.round(sample[role].numpy() * 65535).astype(np.uint16)
                np.testing.assert_array_equal(read, quantize(truth[role].numpy(), 16))
    assert data_main(["check", str(out)]) == 0


def test_synth_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("x")
    assert data_main(["synth", "--out", str(tmp_path), "--n", "3"]) == 2
    assert "not empty" in capsys.readouterr().err


def test_demo_writes_its_picture(tmp_path, capsys):
    assert (
        demo_main(["--out", str(tmp_path), "--n", "4", "--size", "32", "48", "--minutes", "0"]) == 0
    )
    picture = tmp_path / "samples.png"
    assert picture.is_file() and picture.stat().st_size > 10_000
    assert "OK" in capsys.readouterr().out


def tiny_pretrained(folder: Path) -> Path:
    """A stand-in for make demo-pretrain's output: fresh demo weights and their record."""
    kwargs = {"width": 0.25, "sharp_gate": True, "cost_shifts": 4}
    weights = write_weights(
        folder / "demo.pt", create_model("dpdnet_small", **kwargs), kwargs, "test"
    )
    record = {"command": "test", "seed": 1, "steps": 0, "minutes": 0, "precision": "32-true"}
    weights.with_suffix(".json").write_text(json.dumps({**record, "cpu": "test CPU"}))
    return weights


def test_demo_fine_tunes_and_scores_both_test_splits(tmp_path, capsys):
    """The whole demo on a few steps: fine-tuning, protocol scores on both splits, scores by
    defocus, |CoC| histograms, phase times."""
    out = tmp_path / "demo"
    args = ["--out", str(out), "--n", "7", "--size", "48", "64", "--steps", "3"]
    args += ["--pool-scenes", "4", "--precision", "32", "--weights", str(tiny_pretrained(tmp_path))]
    assert demo_main(args) == 0
    printed = capsys.readouterr().out
    assert "per image (protocol)" in printed and "blur radius < 1 px" in printed
    assert "pre-trained for 0 steps" in printed and "second test split" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 3 and Path(results["checkpoint"]).is_file()
    assert results["precision"] == "32-true" and results["steps_per_second"] > 0
    protocol, other = results["protocol"], results["other"]
    assert protocol["images"] == 1 and other["images"] == 1  # 7 scenes -> 5/1/1
    assert results["scenes"] == {"test": ["photo", "soft"], "other": ["layers", "hard"]}
    assert not (out / "data_other" / "train_c").exists()  # the second tree: a test split only
    assert results["pretrained_alone"]["input_psnr"] == pytest.approx(protocol["input_psnr"])
    # The blurry input's per-image PSNR computed by the demo agrees with the protocol's.
    assert results["input"]["psnr"] == pytest.approx(protocol["input_psnr"], abs=1e-6)
    bands = results["by_defocus"]["model"]
    assert [b["band"] for b in bands][-1] == "all pixels"
    assert sum(b["fraction"] for b in bands[:-1]) == pytest.approx(1.0)
    for shares in results["coc_histograms"].values():
        assert sum(shares) == pytest.approx(1.0)
    assert set(results["phases_seconds"]) >= {"probe", "scoring the second test split", "total"}
    table = (out / "results.md").read_text()
    assert table.count("\n| ") >= 6  # protocol row, four bands, all pixels
    assert (out / "test_panels.png").is_file() and (out / "samples.png").is_file()
    assert (out / "per_image_gain.png").stat().st_size > 5_000


def test_demo_without_pretrained_weights_says_how_to_get_them(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--n", "4", "--weights", str(tmp_path / "none.pt")]
    assert demo_main(args) == 2
    error = capsys.readouterr().err
    assert "make demo-pretrain" in error and "--from-scratch" in error
    assert not (tmp_path / "data").exists()  # refused before any rendering
