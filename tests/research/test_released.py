"""Table I from released weights: every row rendered, both protocols, absent files "not found"."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from dpdeblur.cli.reproduce import main as reproduce_main
from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.models import create_model
from dpdeblur.research.released import (
    STATUS_NOT_FOUND,
    find_release_files,
    released_rows,
)
from dpdeblur.research.tables import load_table
from dpdeblur.runs.releases.dpanet import bake_rgb_order, dpanet_key_map

KEYS_TSV = Path(__file__).parents[1] / "fixtures" / "dpanet_release_keys.tsv"


def write_dpanet_release(path: Path) -> None:
    """A final.pth in the release's layout (its key names, B,G,R weights) from a random
    ``dpanet``: converting it gives that model back."""
    keys = [
        line.split("\t")[0][len("module.") :]
        for line in KEYS_TSV.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    mapping, unmapped = dpanet_key_map(keys)
    assert not unmapped
    torch.manual_seed(0)
    ours = bake_rgb_order(create_model("dpanet").state_dict())
    torch.save({"G_state_dict": {f"module.{k}": ours[v] for k, v in mapping.items()}}, path)


@pytest.fixture(scope="module")
def setting(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("released")
    data = root / "dpdd"
    write_synthetic_dpdd(data, n=10, size=(64, 64), seed=0)
    weights = root / "weights"
    (weights / "sub").mkdir(parents=True)
    write_dpanet_release(weights / "sub" / "renamed_by_the_user.pth")
    torch.save({"something": torch.zeros(2)}, weights / "not_a_release.pt")
    (weights / "notes.txt").write_text("not weights")
    return data, weights


def test_release_files_are_found_by_layout_not_by_name(setting):
    _, weights = setting
    found = find_release_files(weights)
    assert found == {"dpanet-final-pth": weights / "sub" / "renamed_by_the_user.pth"}


def test_rows_with_a_release_get_one_row_per_protocol():
    rows = released_rows(load_table("dpanet-1"))
    ids = [row.id for row, _, _ in rows]
    assert "dpanet-dpdeblur" in ids and "dpanet-release" in ids  # 8-bit protocol differs
    assert "dpdnet-dpdeblur" in ids and "dpdnet-release" not in ids  # same as ours on DPDD
    assert "k3dn-release" in ids  # resizing protocol
    no_weights = [row for row, info, _ in rows if info is None]
    assert {row.id for row in no_weights} == {"rdpd_plus", "bambnet"}
    assert all(not row.implemented for row in no_weights)


def test_table_i_renders_every_row_from_released_weights(setting, tmp_path, capsys):
    data, weights = setting
    code = reproduce_main(
        [
            "--table",
            "dpanet-1",
            "--weights",
            str(weights),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "results"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--",
            "data.num_workers=0",
            "metrics.lpips=off",
            "metrics.num_panels=0",
        ]
    )
    assert code == 0
    with open(tmp_path / "results" / "dpanet_table1-released.csv", newline="") as fh:
        rows = {row["row"]: row for row in csv.DictReader(fh)}
    assert rows["dpanet-dpdeblur"]["status"] == "ok"
    assert rows["dpanet-release"]["status"] == "ok"
    assert rows["dpanet-dpdeblur"]["protocol"] == "16bit"
    assert rows["dpanet-release"]["protocol"] == "8bit_trunc"
    assert float(rows["dpanet-dpdeblur"]["psnr_paper"]) == pytest.approx(26.80)
    # 8-bit inputs and truncated predictions score the same weights differently
    assert rows["dpanet-dpdeblur"]["psnr"] != rows["dpanet-release"]["psnr"]
    for absent in ("dpdnet-dpdeblur", "k3dn-dpdeblur", "k3dn-release", "restormer-dpdeblur"):
        assert rows[absent]["status"] == STATUS_NOT_FOUND
        assert "weights" in rows[absent]["note"]
    assert rows["rdpd_plus"]["note"] == "no public weights"
    markdown = (tmp_path / "results" / "dpanet_table1-released.md").read_text()
    assert markdown.count("not found") == 4
    assert "DPANet, released weights: its protocol (dpanet)" in markdown


def test_missing_data_is_one_line(setting, capsys):
    _, weights = setting
    code = reproduce_main(["--table", "dpanet-1", "--weights", str(weights)])
    assert code != 0
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "DATA=" in err
