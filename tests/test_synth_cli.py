"""`dpdeblur-data synth` trees read back bit-exactly through the DPDD dataset; `dpdeblur-demo`."""

import numpy as np
import pytest

from dpdeblur.cli.data import main as data_main
from dpdeblur.cli.demo import main as demo_main
from dpdeblur.data.datasets import DPDDDataset
from dpdeblur.data.io import quantize
from dpdeblur.data.synthetic import SyntheticDPDataset


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
