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


def test_demo_trains_and_prints_its_table_by_defocus_strength(tmp_path, capsys):
    """The whole demo on a seconds-long budget: training, protocol scores, scores by defocus."""
    out = tmp_path / "demo"
    args = ["--out", str(out), "--n", "7", "--size", "48", "64", "--minutes", "0.1"]
    args += ["--pool-scenes", "4"]
    assert demo_main(args) == 0
    printed = capsys.readouterr().out
    assert "per image (protocol)" in printed and "blur radius < 1 px" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] > 0 and Path(results["checkpoint"]).is_file()
    protocol = results["protocol"]
    assert protocol["images"] == 1  # 7 scenes -> 5/1/1
    # The blurry input's per-image PSNR computed by the demo agrees with the protocol's.
    assert results["input"]["psnr"] == pytest.approx(protocol["input_psnr"], abs=1e-6)
    bands = results["by_defocus"]["model"]
    assert [b["band"] for b in bands][-1] == "all pixels"
    assert sum(b["fraction"] for b in bands[:-1]) == pytest.approx(1.0)
    table = (out / "results.md").read_text()
    assert table.count("\n| ") >= 6  # protocol row, four bands, all pixels
    assert (out / "test_panels.png").is_file() and (out / "samples.png").is_file()
    assert (out / "per_image_gain.png").stat().st_size > 5_000


def test_demo_trains_in_fp32_on_cpus_without_bf16_hardware():
    from dpdeblur.cli.demo import train_overrides
    from dpdeblur.hardware import cpu_has_native_bf16

    assert cpu_has_native_bf16({"avx512f", "amx_bf16"}) and cpu_has_native_bf16({"bf16", "asimd"})
    assert not cpu_has_native_bf16({"avx2", "avx512f", "avx512bw"})  # oneDNN would emulate it
    emulated = train_overrides((48, 64), 0, 3, None, native_bf16=False)
    assert "trainer.precision=32-true" in emulated
    native = train_overrides((48, 64), 0, 3, 4, native_bf16=True)
    assert not any(o.startswith("trainer.precision") for o in native)
    assert "data.synthetic.pool.scenes=4" in native and "data.crop_size=48" in native
