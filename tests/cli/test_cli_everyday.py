"""The everyday mistakes of issue 19, through the tools: one ``error:`` line in the tool's
own syntax, a non-zero exit, no traceback; and portrait pairs rotated only for PIXEL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import dpdeblur
from dpdeblur.cli.data import main as data_main
from dpdeblur.cli.deblur import main as deblur_main
from dpdeblur.data.io import read_raw, write_png
from dpdeblur.models import create_model

WIDTH = 0.125


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """A DPDNet's converted weights; a K3DN's plain state dict; a Lightning checkpoint that
    does not name its model."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    state = create_model("dpdnet", width=WIDTH).state_dict()
    paths = {
        "dpdnet": folder / "dpdnet.pt",
        "k3dn": folder / "k3dn_plain.pt",
        "nameless": folder / "nameless.ckpt",
    }
    torch.save(
        {"format": "dpdeblur-weights", "version": 1, "model": "dpdnet"}
        | {"model_kwargs": {"width": WIDTH}, "state_dict": state},
        paths["dpdnet"],
    )
    torch.save(create_model("k3dn_tiny").state_dict(), paths["k3dn"])
    torch.save(
        {"state_dict": {f"model.{k}": v for k, v in state.items()}, "hyper_parameters": {}},
        paths["nameless"],
    )
    return paths


def write_pair(folder: Path, name: str, size: tuple[int, int], seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for view in ("L", "R"):
        path = folder / f"{name}_{view}.png"
        write_png(path, rng.integers(0, 65536, size=(*size, 3), dtype=np.uint16))
        paths.append(path)
    return paths


def deblur(args: list, capsys) -> tuple[int, str, str]:
    code = deblur_main([str(a) for a in [*args, "--quiet"]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def check(args: list, capsys) -> tuple[int, str, str]:
    code = data_main(["check", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(code: int, err: str) -> str:
    assert code != 0
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# -- orientation: PIXEL captures only ------------------------------------------------------


def test_a_portrait_canon_crop_is_not_rotated(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path / "crops", "canon", size=(56, 32))  # taller than wide
    write_pair(tmp_path / "crops", "other", size=(40, 24), seed=1)
    code, out, err = deblur(["--ckpt", weights["dpdnet"], "--input", tmp_path / "crops"], capsys)
    assert code == 0, err
    assert "a folder of pairs" in out and "rotated" not in out and "PIXEL" not in out
    pixels = [read_raw(p).pixels for p in (left, right)]
    as_lies = dpdeblur.deblur(str(weights["dpdnet"]), *pixels)
    written = read_raw(Path("deblurred") / "canon.png").pixels
    np.testing.assert_array_equal(written, as_lies)  # one process, uint16 codes: bitwise
    turned = dpdeblur.deblur(str(weights["dpdnet"]), *pixels, rotate="pixel")
    assert not np.array_equal(written, turned)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default -o deblurred/ lands here


def pixel_folder(root: Path) -> list[list[Path]]:
    """PIXEL's release layout: test_l/source/*_L.png, test_r/source/*_R.png; portrait."""
    pairs = []
    for i in range(2):
        left, right = write_pair(root / "tmp", f"P{i}", size=(48, 32), seed=i)
        moved = []
        for view, path in (("l", left), ("r", right)):
            (root / f"test_{view}" / "source").mkdir(parents=True, exist_ok=True)
            moved.append(path.rename(root / f"test_{view}" / "source" / path.name))
        pairs.append(moved)
    (root / "tmp").rmdir()
    return pairs


def test_a_pixel_folder_is_rotated_and_rotated_back(tmp_path, weights, capsys):
    pairs = pixel_folder(tmp_path / "pixel")
    code, out, err = deblur(
        ["--ckpt", weights["dpdnet"], "--input", tmp_path / "pixel", "-o", "out"], capsys
    )
    assert code == 0, err
    assert "PIXEL official" in out and "portrait PIXEL captures run in landscape" in out
    assert "2 x rotated" in out
    for i, (left, right) in enumerate(pairs):
        pixels = [read_raw(p).pixels for p in (left, right)]
        written = read_raw(Path("out") / f"P{i}.png").pixels
        assert written.shape[:2] == (48, 32)  # back in the input's orientation
        turned = dpdeblur.deblur(str(weights["dpdnet"]), *pixels, rotate="pixel")
        np.testing.assert_array_equal(written, turned)
    code, out, _ = deblur(
        ["--ckpt", weights["dpdnet"], "--input", tmp_path / "pixel", "--keep-orientation"], capsys
    )
    assert code == 0 and "rotated" not in out


def test_pixel_portrait_flag_rotates_any_pair(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "p", size=(48, 32))
    args = ["--ckpt", weights["dpdnet"], "--left", left, "--right", right, "-o", "x.png"]
    code, out, err = deblur([*args, "--pixel-portrait"], capsys)
    assert code == 0 and "1 x rotated" in out, err
    with pytest.raises(SystemExit) as exit_:  # argparse's own usage error
        deblur([*args, "--pixel-portrait", "--keep-orientation"], capsys)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "not allowed with argument --pixel-portrait" in err


# -- hints in the tool's own syntax --------------------------------------------------------


def test_a_missing_checkpoint_names_the_ckpt_flag(tmp_path, capsys):
    left, right = write_pair(tmp_path, "a", size=(24, 32))
    code, _, err = deblur(["--ckpt", "nowhere.pt", "--left", left, "--right", right], capsys)
    line = one_error_line(code, err)
    assert "nowhere.pt: checkpoint not found -- check the --ckpt path" in line
    assert "ckpt=" not in line


def test_a_nameless_lightning_checkpoint_asks_for_the_model_flag(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "a", size=(24, 32))
    code, _, err = deblur(["--ckpt", weights["nameless"], "--left", left, "--right", right], capsys)
    line = one_error_line(code, err)
    assert "does not name its model -- pass --model NAME" in line and "model=" not in line


def test_several_pairs_to_one_png_asks_for_a_folder_for_o(tmp_path, weights, capsys):
    write_pair(tmp_path / "pairs", "a", size=(24, 32))
    write_pair(tmp_path / "pairs", "b", size=(24, 32))
    code, _, err = deblur(
        ["--ckpt", weights["dpdnet"], "--input", tmp_path / "pairs", "-o", "x.png"], capsys
    )
    line = one_error_line(code, err)
    assert "-o names one .png file but the input has 2 pairs" in line
    assert "pass a folder for -o (e.g. -o x/)" in line and "--input" not in line
    assert not Path("x.png").exists() and not Path("x").exists()


def test_another_models_checkpoint_is_one_short_line(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "a", size=(24, 32))
    pair = ["--left", left, "--right", right]
    code, _, err = deblur(
        ["--ckpt", weights["k3dn"], "--model", "dpdnet", "--model-arg", f"width={WIDTH}", *pair],
        capsys,
    )
    line = one_error_line(code, err)
    assert len(err) < 500, err
    assert "weights do not fit model 'dpdnet' (no key in common" in line
    missing = line.split("missing keys (")[1].split(")")[0]
    assert missing.count(",") == 1 and " and " in missing  # two names, then a count
    assert "unexpected keys (" in line
    # a checkpoint that names its model says which
    code, _, err = deblur(["--ckpt", weights["dpdnet"], "--model", "k3dn_tiny", *pair], capsys)
    line = one_error_line(code, err)
    assert "holds model 'dpdnet', not 'k3dn_tiny' -- drop --model or pass --model dpdnet" in line
    assert not list(Path("deblurred").glob("*.png"))


# -- dpdeblur-data check ---------------------------------------------------------------------


def test_a_mistyped_root_is_not_reported_as_pixel(tmp_path, capsys):
    code, out, err = check([tmp_path / "dd_dp_datset_png"], capsys)
    line = one_error_line(code, err)
    assert "dataset root does not exist" in line and "PIXEL root" not in line
    assert "DPDD official" in line and "DPDD restormer" in line and "PIXEL (" in line
    assert "error:" not in out
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("no images here")
    code, _, err = check([tmp_path / "photos"], capsys)
    line = one_error_line(code, err)
    assert "matches no known dataset layout -- point to a folder in one of: DPDD official" in line


def test_a_problem_of_many_files_is_one_line_once(make_dpdd_tree, capsys):
    root, _ = make_dpdd_tree(counts={"train": 20, "val": 2, "test": 2}, bits=8)
    code, out, err = check([root, "--split", "train"], capsys)
    line = one_error_line(code, err)
    assert "8-bit image where 16-bit is expected: 80 files under" in line
    assert line.count(".png") == 3 and ", ..." in line and "--allow-8bit" in line
    assert "error:" not in out and out.strip().endswith("1 problem(s) found (80 in all)")
    assert len((out + err).splitlines()) < 8
