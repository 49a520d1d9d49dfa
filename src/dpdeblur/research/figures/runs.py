"""Scored runs as figure inputs: final PSNR, model config, dataset and per-image rows.

Run directories are found and read by :mod:`dpdeblur.research.tables.discover` (the same discovery
``dpdeblur-table`` uses). From each finished run the figures take ``metrics.json``'s means
(``test``, else ``val``), ``params`` and ``model`` (the constructor config), the dataset
from ``config.yaml``, and ``{split}_images.csv`` (one row per image: ``name, split, scene,
psnr, ..., input_psnr``; see :func:`dpdeblur.training.system.write_rows`).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

from dpdeblur.errors import DpdeblurError
from dpdeblur.research.tables.discover import RunRecord, find_runs


@dataclass
class ScoredRun:
    """What the figures need from one scored run directory."""

    path: Path
    label: str
    split: str  # the split the PSNR is from: test when scored, else val
    psnr: float
    params: int | None
    model_config: dict | None
    psnr_by_scene: dict[str, float] = field(default_factory=dict)
    dataset: str | None = None  # data.dataset of config.yaml (dpdd, synthetic, ...)

    @property
    def model_name(self) -> str | None:
        return None if not self.model_config else self.model_config.get("name")

    def images_csv(self) -> Path:
        return self.path / f"{self.split}_images.csv"


def scored(record: RunRecord) -> ScoredRun | None:
    """The run's final PSNR and what goes with it; ``None`` if it has none (unfinished,
    failed or unscored)."""
    metrics = record.metrics or {}
    for split in ("test", "val"):
        means = metrics.get(split) or {}
        value = means.get("psnr")
        if not (isinstance(value, int | float) and math.isfinite(value)):
            continue
        model = metrics.get("model") or record.config.get("model")
        params = metrics.get("params")
        return ScoredRun(
            path=record.path,
            label=str(metrics.get("run_name") or metrics.get("experiment") or record.path.name),
            split=split,
            psnr=float(value),
            params=int(params) if isinstance(params, int | float) else None,
            model_config=dict(model) if isinstance(model, dict) else None,
            psnr_by_scene={
                key[len("psnr_") :]: float(v)
                for key, v in means.items()
                if key.startswith("psnr_") and isinstance(v, int | float)
            },
            dataset=record.get("data.dataset"),
        )
    return None


def scored_runs(paths: list[str | Path]) -> tuple[list[ScoredRun], list[Path]]:
    """Scored runs under ``paths`` (run directories or folders above them), and the run
    directories left out because they hold no PSNR (so callers can say so). Labels shared
    by several runs get the directory name appended."""
    runs: list[ScoredRun] = []
    unscored: list[Path] = []
    for record in find_runs(paths):
        run = scored(record)
        if run is None:
            unscored.append(record.path)
        else:
            runs.append(run)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    for run in runs:
        if counts[run.label] > 1:
            run.label = f"{run.label} ({run.path.name})"
    return runs, unscored


def read_image_rows(path: str | Path) -> list[dict]:
    """Rows of a ``{split}_images.csv``: numbers as floats (``nan`` where empty)."""
    path = Path(path)
    if not path.is_file():
        raise DpdeblurError(
            "per-image rows not found", path, "score the run first (dpdeblur-eval writes them)"
        )
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed: dict = {}
            for key, value in row.items():
                if key in ("name", "split", "scene"):
                    parsed[key] = value or ""
                    continue
                try:
                    parsed[key] = float(value) if value not in ("", None) else math.nan
                except ValueError:
                    parsed[key] = math.nan
            rows.append(parsed)
    if not rows:
        raise DpdeblurError("no per-image rows", path, "score the run again")
    if "psnr" not in rows[0]:
        raise DpdeblurError("no psnr column", path, "score the run again with dpdeblur-eval")
    return rows
