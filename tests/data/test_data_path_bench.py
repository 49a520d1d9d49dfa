"""The data-path benchmark on a tiny tree: every variant measured, the loader through
DPDataModule's training settings, CPU time per sample from the workers."""

from __future__ import annotations

import sys

from dpdeblur.research.benchmarks.data import measure_data_path


def test_data_benchmark_measures_every_variant_side_by_side():
    results = measure_data_path(
        None, images=2, size=(48, 64), crop=16, samples=16, workers=1, log=lambda _: None, rounds=2
    )
    rates = [
        "png_samples_per_s",
        "png_loader_samples_per_s",
        "cache_samples_per_s",
        "cache_loader_samples_per_s",
        "cache_float_samples_per_s",
        "cache_float_loader_samples_per_s",
    ]
    assert all(results[key] > 0 for key in rates)
    assert len(results["per_round"]) == 2 and len(results["loader_first_batch_s"]) == 2
    fractions = sorted(r["loader_fraction"] for r in results["per_round"])
    assert fractions[0] <= results["loader_fraction"] <= fractions[-1]
    assert results["loader_workers"] == 1 and "persistent workers" in results["loader"]
    assert results["cache_cpu_ms_per_sample"] > 0
    if sys.platform.startswith("linux"):
        assert results["cache_worker_cpu_ms_per_sample"] >= 0
    assert results["machine"]["cpu"] and "combined" not in results["what"]
