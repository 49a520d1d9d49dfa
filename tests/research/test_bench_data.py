import json

from dpdeblur.cli.bench import main


def test_bench_data_runs_small_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "data",
            "--images",
            "2",
            "--size",
            "48",
            "64",
            "--crop",
            "32",
            "--samples",
            "4",
            "--workers",
            "0",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())
    assert results["png_samples_per_s"] > 0 and results["cache_samples_per_s"] > 0
    assert "cache_speedup" in results and "machine" in results
