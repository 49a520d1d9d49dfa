"""The front door for released weights: ``dpdeblur-weights list/check`` and ``--model auto``
on a file of each release format, and one line for a file of none."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import dpdeblur
from dpdeblur.cli.weights import main as weights_main
from dpdeblur.models import create_model
from dpdeblur.runs.checkpoints import load_model
from dpdeblur.runs.releases import FORMATS
from dpdeblur.runs.releases.catalogue import CATALOGUE
from dpdeblur.runs.releases.dpanet import bake_rgb_order, dpanet_key_map

TESTS = Path(__file__).parents[1]


def _keras_writer():
    """The Keras 2.2.4 layout writer of the DPDNet converter's tests."""
    path = TESTS / "runs" / "test_release_dpdnet_keras.py"
    spec = importlib.util.spec_from_file_location("keras_release_writer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_keras_file


def _dpanet_release(path: Path) -> None:
    rows = (TESTS / "fixtures" / "dpanet_release_keys.tsv").read_text().splitlines()
    keys = [r.split("\t")[0][len("module.") :] for r in rows if r.strip() and r[0] != "#"]
    mapping, _ = dpanet_key_map(keys)
    ours = bake_rgb_order(create_model("dpanet").state_dict())
    torch.save({"G_state_dict": {f"module.{k}": ours[v] for k, v in mapping.items()}}, path)


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> dict[str, Path]:
    """One file per release format, in that release's layout."""
    root = tmp_path_factory.mktemp("releases")
    torch.manual_seed(0)
    files = {
        "dpanet-final-pth": root / "final.pth",
        "k3dn-release-pt": root / "best.pt",
        "restormer-dp-pth": root / "dual_pixel_defocus_deblurring.pth",
        "dpdnet-keras-hdf5": root / "defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5",
    }
    _dpanet_release(files["dpanet-final-pth"])
    torch.save(create_model("k3dn").state_dict(), files["k3dn-release-pt"])
    torch.save({"params": create_model("restormer_dp").state_dict()}, files["restormer-dp-pth"])
    _keras_writer()(files["dpdnet-keras-hdf5"])
    return files


def test_every_format_is_in_the_catalogue_with_its_true_size():
    assert {fmt.NAME for fmt in FORMATS} == set(CATALOGUE)
    for fmt in FORMATS:
        info = CATALOGUE[fmt.NAME]
        assert info.model == fmt.MODEL
        model = create_model(info.model)
        assert sum(p.numel() for p in model.parameters()) == info.parameters, fmt.NAME


def test_list_names_every_release(capsys):
    assert weights_main(["list"]) == 0
    out = capsys.readouterr().out
    for info in CATALOGUE.values():
        assert info.file_name in out and info.format in out and f"{info.parameters:,}" in out


@pytest.mark.parametrize(
    "fmt", ["dpanet-final-pth", "k3dn-release-pt", "restormer-dp-pth", "dpdnet-keras-hdf5"]
)
def test_check_says_which_release_a_file_is(releases, fmt, capsys):
    assert weights_main(["check", str(releases[fmt])]) == 0
    out = capsys.readouterr().out
    assert f"({fmt})" in out and f"loads into {CATALOGUE[fmt].model}" in out


def test_check_says_why_a_file_is_none(tmp_path, capsys):
    ours = tmp_path / "converted.pt"
    torch.save({"format": "dpdeblur-weights", "model": "dpdnet", "state_dict": {}}, ours)
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, other)
    assert weights_main(["check", str(ours), str(other)]) == 1
    captured = capsys.readouterr()
    assert "dpdeblur weights file of dpdnet" in captured.out
    assert "matches no known release (first keys: encoder.weight)" in captured.out
    assert captured.err.count("error:") == 1 and "Traceback" not in captured.err


def test_check_of_a_missing_or_corrupt_file_is_one_line(tmp_path, capsys):
    assert weights_main(["check", str(tmp_path / "absent.pth")]) == 2
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    assert weights_main(["check", str(corrupt)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 2 and "Traceback" not in err


@pytest.mark.parametrize(
    "fmt", ["dpanet-final-pth", "k3dn-release-pt", "restormer-dp-pth", "dpdnet-keras-hdf5"]
)
def test_model_auto_loads_any_release_as_it_is(releases, fmt):
    model, info = load_model(releases[fmt], "auto")
    assert info["kind"] == "release" and info["release_format"] == fmt
    assert model.registry_name == CATALOGUE[fmt].model
    rng = np.random.default_rng(0)
    left = rng.random((24, 40, 3), dtype=np.float32)
    out = dpdeblur.deblur(releases[fmt], left, np.roll(left, 1, axis=1), tile=0)
    assert out.shape == left.shape and np.isfinite(out).all()
