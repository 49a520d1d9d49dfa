"""``dpdeblur-bench fullres``, ``deblur-tiles`` and ``correlation-memory``: the memory
benchmarks, each on tiny sizes."""

from __future__ import annotations

import json

from dpdeblur.cli.bench import main
from dpdeblur.models import create_model
from dpdeblur.research.benchmarks.macs import count_params
from dpdeblur.research.benchmarks.process import peak_rss_mib, rss_mib, run_in_fresh_process


def test_correlation_memory_operator_stays_within_its_bound(tmp_path, capsys):
    out = tmp_path / "correlation.json"
    argv = ["correlation-memory", "--channels", "8", "--size", "64", "64"]
    assert main([*argv, "--json", str(out)]) == 0, capsys.readouterr().err
    rows = {(r["impl"], r["pass"]): r for r in json.loads(out.read_text())}
    assert set(rows) == {
        (impl, kind) for impl in ("dpdeblur", "stacked") for kind in ("forward", "forward+backward")
    }
    ours, stacked = rows["dpdeblur", "forward"], rows["stacked", "forward"]
    assert ours["output_mib"] == round(81 * 64 * 64 * 4 / 2**20, 1)
    assert ours["peak_over_output_plus_inputs"] <= 2  # the operator's memory promise
    assert stacked["peak_mib"] > 2 * ours["peak_mib"]  # 81 shifted copies at once
    assert "| stacked | forward+backward |" in capsys.readouterr().out


def test_fullres_runs_in_a_fresh_process(tmp_path, capsys):
    out = tmp_path / "fullres.json"
    argv = ["fullres", "--model", "dpdnet", "--width", "0.0625", "--size", "48", "64"]
    assert main([*argv, "--threads", "1", "--json", str(out)]) == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["model"] == "dpdnet" and result["width"] == 0.0625
    assert result["size"] == [48, 64] and result["threads"] == 1 and result["seconds"] > 0
    assert result["params"] == count_params(create_model("dpdnet", width=0.0625))
    assert result["peak_mib"] >= result["rss_before_forward_mib"] > 0


def test_fullres_unknown_model_is_a_one_line_error(capsys):
    assert main(["fullres", "--model", "nope", "--size", "16", "16"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "unknown model 'nope'" in err
    assert len(err.strip().splitlines()) == 1


def test_deblur_tiles_whole_and_tiled(tmp_path, capsys):
    out = tmp_path / "tiles.json"
    argv = ["deblur-tiles", "--model", "dpdnet", "--width", "0.0625", "--size", "64", "96"]
    code = main([*argv, "--tiles", "0", "32", "--threads", "1", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["model"] == "dpdnet" and result["size"] == [64, 96]
    whole, tiled = result["settings"]
    assert whole["tiles"] == 1 and whole["tile"] is None and whole["overlap"] is None
    assert tiled["tile"] == 32 and tiled["tiles"] > 1 and tiled["overlap"] is not None
    for setting in (whole, tiled):
        assert setting["seconds"] > 0 and setting["peak_tensor_mib"] > 0
        assert setting["rss_before_mib"] > 0 and len(setting["load_1min_start_end"]) == 2


def _allocate_and_report(mib: int) -> tuple[float, float]:
    block = bytearray(mib * 2**20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page
    return rss_mib(), peak_rss_mib()


def test_fresh_process_has_its_own_memory():
    here = peak_rss_mib()
    rss, peak = run_in_fresh_process(_allocate_and_report, 64)
    assert peak >= rss >= 64  # the child's own allocation
    assert peak_rss_mib() < here + 32  # and none of it in this process
