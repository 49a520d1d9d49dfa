"""``dpdeblur-deblur`` end to end on small files: a pair, a DPDD tree, a PIXEL folder, and
every kind of bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dpdeblur.cli.deblur import main
from dpdeblur.data.io import read_raw, write_png
from dpdeblur.models import create_model

WIDTH = 0.125


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """Checkpoints of one small DPDNet: converted weights, a Lightning-style .ckpt, a plain
    state dict; and a corrupt file."""
    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    state = create_model("dpdnet", width=WIDTH).state_dict()
    paths = {k: folder / n for k, n in [("converted", "w.pt"), ("lightning", "last.ckpt")]}
    paths |= {"plain": folder / "plain.pt", "corrupt": folder / "corrupt.pt"}
    torch.save(
        {"format": "dpdeblur-weights", "version": 1, "model": "dpdnet"}
        | {"model_kwargs": {"width": WIDTH}, "state_dict": state},
        paths["converted"],
    )
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "hyper_parameters": {"model_config": {"name": "dpdnet", "width": WIDTH}},
            "epoch": 1,
        },
        paths["lightning"],
    )
    torch.save(state, paths["plain"])
    paths["corrupt"].write_bytes(b"not a checkpoint at all")
    return paths


def write_pair(folder: Path, name: str, size=(40, 56), grey=False, seed=0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for view in ("L", "R"):
        pixels = rng.integers(0, 65536, size=(*size, 3), dtype=np.uint16)
        path = folder / f"{name}_{view}.png"
        if grey:
            cv2.imwrite(str(path), pixels[:, :, 1])
        else:
            write_png(path, pixels)
        paths.append(path)
    return paths[0], paths[1]


def run(args: list, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in [*args, "--quiet"]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pair_args(ckpt: Path, left: Path, right: Path, out: Path, *more) -> list:
    return ["--ckpt", ckpt, "--left", left, "--right", right, "-o", out, *more]


def pngs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".png")


# -- the three kinds of input -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["converted", "lightning"])
def test_one_pair_to_a_16_bit_png(tmp_path, weights, capsys, kind):
    left, right = write_pair(tmp_path / "in", "scene", size=(40, 56))
    out = tmp_path / "sharp.png"
    code, stdout, err = run(
        ["--ckpt", weights[kind], "--left", left, "--right", right, "-o", out], capsys
    )
    assert code == 0, err
    raw = read_raw(out)
    assert raw.pixels.shape == (40, 56, 3) and raw.bit_depth == 16
    assert "dpdnet(width=0.125)" in stdout and "wrote 1 of 1" in stdout
    assert pngs(tmp_path) == ["sharp.png"]  # no temporary files left


def test_a_pair_matches_the_python_api(tmp_path, weights, capsys):
    import dpdeblur

    left, right = write_pair(tmp_path, "scene", size=(40, 56), seed=3)
    code, _, err = run(
        pair_args(weights["converted"], left, right, tmp_path / "o", "--tile", 32, "--overlap", 16),
        capsys,
    )
    assert code == 0, err
    expected = dpdeblur.deblur(
        str(weights["converted"]),
        read_raw(left).pixels,
        read_raw(right).pixels,
        tile=32,
        overlap=16,
    )
    # uint16 codes from the same model run on the same values in this process: bitwise
    np.testing.assert_array_equal(read_raw(tmp_path / "o" / "scene.png").pixels, expected)


def test_flip_ensemble_option_matches_the_python_api(tmp_path, weights, capsys):
    import dpdeblur

    left, right = write_pair(tmp_path, "scene", size=(40, 56), seed=4)
    code, out, err = run(
        pair_args(weights["converted"], left, right, tmp_path / "o", "--flip-ensemble"), capsys
    )
    assert code == 0, err
    assert "flip ensemble x4" in out
    pixels = [read_raw(path).pixels for path in (left, right)]
    expected = dpdeblur.deblur(str(weights["converted"]), *pixels, flip_ensemble=True)
    single = dpdeblur.deblur(str(weights["converted"]), *pixels)
    written = read_raw(tmp_path / "o" / "scene.png").pixels
    np.testing.assert_array_equal(written, expected)  # as above: one process, uint16 codes
    assert not np.array_equal(written, single)


@pytest.mark.parametrize("layout", ["official", "restormer"])
def test_dpdd_tree_with_panels_and_8_bits(tmp_path, weights, make_dpdd_tree, capsys, layout):
    root, _ = make_dpdd_tree(layout=layout, counts={"test": 3, "val": 1}, size=(24, 40))
    out = tmp_path / "out"
    code, stdout, err = run(
        ["--ckpt", weights["converted"], "--input", root, "-o", out, "--bits", 8, "--panel"], capsys
    )
    assert code == 0, err
    assert "DPDD" in stdout and "wrote 3 of 3" in stdout
    names = pngs(out)
    results = [n for n in names if not n.endswith("_panel.png")]
    assert len(results) == 3 and len(names) == 6  # the test split only, one panel each
    for name in results:
        raw = read_raw(out / name)
        assert raw.pixels.shape == (24, 40, 3) and raw.bit_depth == 8
        panel = read_raw(out / name.replace(".png", "_panel.png"))
        assert panel.pixels.shape == (24, 4 * 40 + 3 * 8, 3)  # left, right, output, target


@pytest.mark.filterwarnings("ignore:.*single-channel image expanded")
def test_pixel_folder_keeps_orientation_and_green_channel(tmp_path, weights, capsys):
    root = tmp_path / "pixel"
    for i in range(2):  # PIXEL's release: test_l/source, test_r/source; portrait, green only
        left, right = write_pair(tmp_path / "tmp", f"P{i}", size=(64, 40), grey=True, seed=i)
        for view, path in (("l", left), ("r", right)):
            (root / f"test_{view}" / "source").mkdir(parents=True, exist_ok=True)
            path.rename(root / f"test_{view}" / "source" / path.name)
    write_pair(root / "flat", "colour", size=(40, 56))  # not part of this layout
    out = tmp_path / "out"
    code, stdout, err = run(["--ckpt", weights["converted"], "--input", root, "-o", out], capsys)
    assert code == 0, err
    assert "PIXEL official" in stdout and "2 x rotated, whole image" in stdout
    assert pngs(out) == ["P0.png", "P1.png"]
    for name in pngs(out):
        raw = read_raw(out / name)
        assert raw.source_channels == 1 and raw.bit_depth == 16
        assert raw.pixels.shape[:2] == (64, 40)  # written as the input lies: portrait


def test_flat_folder_of_pairs_tiled(tmp_path, weights, capsys):
    for i, size in enumerate([(40, 56), (72, 48), (33, 70)]):
        write_pair(tmp_path / "pairs", f"img{i}", size=size, seed=i)
    out = tmp_path / "out"
    code, stdout, err = run(
        ["--ckpt", weights["converted"], "--input", tmp_path / "pairs", "-o", out, "--tile", 32],
        capsys,
    )
    assert code == 0, err
    assert "tiles of 32px" in stdout
    assert [read_raw(out / n).pixels.shape[:2] for n in pngs(out)] == [(40, 56), (72, 48), (33, 70)]


def test_help_runs_from_the_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "dpdeblur.cli.deblur", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for flag in ("--left", "--input", "--ckpt", "--model", "--bits", "--tile", "--overlap"):
        assert flag in result.stdout


# -- bad input: one line, non-zero exit, nothing partial ------------------------------------


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_missing_file(tmp_path, weights, capsys):
    left, _ = write_pair(tmp_path, "a")
    code, _, err = run(
        pair_args(weights["converted"], left, tmp_path / "b_R.png", tmp_path / "o"),
        capsys,
    )
    assert code == 2 and "b_R.png: image file not found" in one_error_line(err)
    assert not (tmp_path / "o").exists() or pngs(tmp_path / "o") == []


def test_size_mismatch_and_unreadable_image_in_a_folder(tmp_path, weights, capsys):
    folder = tmp_path / "pairs"
    write_pair(folder, "good1")
    write_pair(folder, "good2", seed=2)
    write_pair(folder, "mismatch")
    write_png(folder / "mismatch_R.png", np.zeros((41, 56, 3), np.uint16))
    write_pair(folder, "broken")
    (folder / "broken_L.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    code, stdout, err = run(["--ckpt", weights["converted"], "--input", folder, "-o", out], capsys)
    assert code == 2
    assert pngs(out) == ["good1.png", "good2.png"]  # the others done, nothing for the bad
    assert "wrote 2 of 4" in stdout
    assert "2 failed:" in err
    assert "broken: " in err and "broken_L.png: cannot decode image" in err
    assert "mismatch: " in err and "same size" in err
    assert not list(out.glob(".*"))  # no temporary files


def test_single_unreadable_image(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "x")
    left.write_text("not a png")
    code, _, err = run(
        pair_args(weights["converted"], left, right, tmp_path / "o.png"),
        capsys,
    )
    assert code == 2 and "x_L.png: cannot decode image" in one_error_line(err)
    assert not (tmp_path / "o.png").exists()


def test_checkpoint_of_another_model(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "a")
    base = ["--left", left, "--right", right, "-o", tmp_path / "o"]
    code, _, err = run(["--ckpt", weights["converted"], "--model", "k3dn_tiny", *base], capsys)
    assert code == 2 and "holds model 'dpdnet', not 'k3dn_tiny'" in one_error_line(err)
    code, _, err = run(
        ["--ckpt", weights["plain"], "--model", "dpanet", "--model-arg", "width=0.125", *base],
        capsys,
    )
    assert code == 2 and "weights do not fit model 'dpanet'" in one_error_line(err)
    code, _, err = run(["--ckpt", weights["plain"], *base], capsys)
    assert code == 2 and "pass --model NAME" in one_error_line(err)
    code, _, err = run(
        ["--ckpt", weights["plain"], "--model", "dpdnet", "--model-arg", f"width={WIDTH}", *base],
        capsys,
    )
    assert code == 0, err
    assert pngs(tmp_path / "o") == ["a.png"]


def test_corrupt_checkpoint(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "a")
    code, _, err = run(
        pair_args(weights["corrupt"], left, right, tmp_path / "o"),
        capsys,
    )
    assert code == 2 and "corrupt.pt: not a readable checkpoint" in one_error_line(err)
    assert pngs(tmp_path / "o") == []


def test_output_not_writable(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "a")
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    for out in (blocker, blocker / "sub" / "x.png"):
        code, _, err = run(pair_args(weights["converted"], left, right, out), capsys)
        assert code == 2 and "a_file" in one_error_line(err)
    assert blocker.read_text() == "in the way"


def test_a_failed_write_leaves_no_file(tmp_path, weights, capsys, monkeypatch):
    """The panel fails after the result was written: the result goes too."""
    import dpdeblur.inference.outputs as outputs
    from dpdeblur.errors import DataError

    left, right = write_pair(tmp_path, "a")

    def failing_panel(*args, **kwargs):
        raise DataError("disk full", tmp_path / "o" / "a_panel.png")

    monkeypatch.setattr(outputs, "save_panel", failing_panel)
    code, _, err = run(
        pair_args(weights["converted"], left, right, tmp_path / "o", "--panel"),
        capsys,
    )
    assert code == 2 and "disk full" in one_error_line(err)
    assert pngs(tmp_path / "o") == []


def test_usage_errors(tmp_path, weights, capsys):
    left, right = write_pair(tmp_path, "a")
    code, _, err = run(["--ckpt", weights["converted"]], capsys)
    assert code == 2 and "no input" in one_error_line(err)
    code, _, err = run(
        ["--ckpt", weights["converted"], "--input", tmp_path, "--left", left], capsys
    )
    assert code == 2 and "either --input or --left/--right" in one_error_line(err)
    code, _, err = run(["--ckpt", weights["converted"], "--input", tmp_path / "nowhere"], capsys)
    assert code == 2 and "input folder does not exist" in one_error_line(err)
    code, _, err = run(
        pair_args(weights["converted"], left, right, tmp_path / "o", "--precision", "fp16"),
        capsys,
    )
    assert code == 2 and "fp16 autocast needs a GPU" in one_error_line(err)
    write_pair(tmp_path / "many", "p1")
    write_pair(tmp_path / "many", "p2")
    folder_args = ["--ckpt", weights["converted"], "--input", tmp_path / "many"]
    code, _, err = run([*folder_args, "-o", tmp_path / "o", "--tile", 64, "--overlap", 64], capsys)
    assert code == 2 and "not smaller than the tile" in one_error_line(err)  # once, not per pair


def test_release_protocol_option_matches_the_python_api(tmp_path, weights, capsys):
    import dpdeblur

    left, right = write_pair(tmp_path, "scene", size=(40, 56), seed=5)
    args = pair_args(
        weights["converted"], left, right, tmp_path / "o", "--release-protocol", "k3dn"
    )
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "k3dn release protocol" in out
    pixels = [read_raw(path).pixels for path in (left, right)]
    expected = dpdeblur.deblur(str(weights["converted"]), *pixels, release_protocol="k3dn")
    # uint16 codes from the same ops on the same values in one process: bitwise
    np.testing.assert_array_equal(read_raw(tmp_path / "o" / "scene.png").pixels, expected)


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["--release-protocol", "dpdnet"], "--release-protocol k3dn"),
        (["--release-protocol", "k3dn", "--tile", "64"], "drop --tile"),
    ],
)
def test_release_protocol_mistakes_get_one_line(tmp_path, weights, capsys, more, message):
    left, right = write_pair(tmp_path, "scene", size=(40, 56))
    code, _, err = run(pair_args(weights["converted"], left, right, tmp_path / "o", *more), capsys)
    assert code == 2 and err.count("error:") == 1 and message in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_input_bits_option_matches_the_python_api(tmp_path, weights, capsys):
    import dpdeblur

    left, right = write_pair(tmp_path, "scene", size=(40, 56), seed=6)
    args = pair_args(weights["converted"], left, right, tmp_path / "o", "--input-bits", "8")
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "8-bit input" in out
    pixels = [read_raw(path).pixels for path in (left, right)]
    expected = dpdeblur.deblur(str(weights["converted"]), *pixels, input_bits=8)
    # uint16 codes from the same ops on the same values in one process: bitwise
    np.testing.assert_array_equal(read_raw(tmp_path / "o" / "scene.png").pixels, expected)
    plain = dpdeblur.deblur(str(weights["converted"]), *pixels)
    assert not np.array_equal(plain, expected)
