"""Scored runs as figure inputs, and the labels the figures give them.

Runs are found and read by :mod:`dpdeblur.runs.find` and :mod:`dpdeblur.runs.records` (the
same search ``dpdeblur-table`` uses). A run is plotted when it has a final PSNR
(:attr:`~dpdeblur.runs.records.RunRecord.scored_split`: ``test`` when scored, else ``val``);
the figures take its means, ``params`` and ``model`` (the constructor config) from
``metrics.json``, the dataset from ``config.yaml``, and its per-image rows from
``{split}_images.csv``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from dpdeblur.runs.find import find_runs
from dpdeblur.runs.records import RunRecord


def scored_runs(paths: Iterable[str | Path]) -> tuple[list[RunRecord], list[Path]]:
    """Runs under ``paths`` (run directories or folders above them) that have a final PSNR,
    and the run directories left out because they have none (so callers can say so)."""
    runs = find_runs(paths)
    return [r for r in runs if r.scored_split], [r.path for r in runs if not r.scored_split]


def figure_labels(runs: Iterable[RunRecord]) -> dict[Path, str]:
    """Each run's label; labels shared by several runs get the directory name appended."""
    runs = list(runs)
    counts = Counter(run.label for run in runs)
    return {
        run.path: run.label if counts[run.label] == 1 else f"{run.label} ({run.path.name})"
        for run in runs
    }
