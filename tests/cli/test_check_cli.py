"""`dpdeblur-data check`: a summary per split, one line per problem, non-zero exit."""

import numpy as np
import pytest

from dpdeblur.cli.data import main
from dpdeblur.data.io import write_png


def run(capsys, *args):
    code = main(["check", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("layout", ["official", "restormer"])
def test_good_tree_passes_and_is_summarised(make_dpdd_tree, capsys, layout):
    root, _ = make_dpdd_tree(layout=layout)
    code, out, err = run(capsys, root)
    assert code == 0, err
    assert f"layout: {layout}" in out
    assert "train: 3 samples; sizes 20x12 (3); 16-bit (12)" in out
    assert "test: 2 samples" in out and out.strip().endswith("OK")


def _break(root, case):
    if case == "missing split":
        import shutil

        shutil.rmtree(root / "val_l")
        return "val_l"
    if case == "count mismatch":
        sorted((root / "train_r" / "source").iterdir())[0].unlink()
        return "different file counts"
    if case == "size mismatch":
        path = sorted((root / "train_r" / "source").iterdir())[0]
        write_png(path, np.zeros((8, 8, 3), np.uint16))
        return path.name
    if case == "8-bit":
        path = sorted((root / "test_c" / "target").iterdir())[0]
        write_png(path, np.zeros((12, 20, 3), np.uint8))
        return path.name
    if case == "corrupt":
        path = sorted((root / "val_c" / "source").iterdir())[0]
        path.write_bytes(path.read_bytes()[:50])
        return path.name
    if case == "empty":
        folder = root / "test_l" / "source"
        for path in folder.iterdir():
            path.unlink()
        return "empty left folder"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["missing split", "count mismatch", "size mismatch", "8-bit", "corrupt", "empty"]
)
def test_each_problem_gives_one_line_and_nonzero_exit(make_dpdd_tree, capsys, case):
    root, _ = make_dpdd_tree()
    expected = _break(root, case)
    code, _, err = run(capsys, root)
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert expected in lines[0]


def test_8bit_is_a_warning_when_allowed(make_dpdd_tree, capsys):
    root, _ = make_dpdd_tree()
    _break(root, "8-bit")
    code, out, _ = run(capsys, root, "--allow-8bit")
    assert code == 0 and "warning:" in out


def test_not_a_dataset(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    code, _, err = run(capsys, tmp_path / "x", "--kind", "dpdd")
    assert code != 0 and "not a DPDD dataset" in err


def test_quick_mode_reads_headers(make_dpdd_tree, capsys):
    root, _ = make_dpdd_tree()
    code, out, _ = run(capsys, root, "--quick")
    assert code == 0 and "16-bit" in out
