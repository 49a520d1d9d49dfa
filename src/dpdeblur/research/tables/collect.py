"""Runs matched to a table's rows and reduced to one plain dict per row.

A run fills a row when every ``match`` key of the row equals the run's value (dotted keys
of ``config.yaml``, else of ``metrics.json``); by default ``row`` (the ``conf/row`` name the
run was made with) and ``task_name: train``. So the DPANet row of Tables I, III and IV is
one run, whichever sweep made it. Per seed the newest finished run counts (a failed try
that was re-run does not hide the success); over seeds the row gets the mean and the
sample standard deviation. Rows with no run, only failed runs, or unfinished runs stay in
the table with that status: nothing is dropped.

A row's difference to the paper (``*_delta``) is given only where its runs were scored on
the paper's data (:func:`comparable`): the table's dataset (``source.dataset``, DPDD by
default), not synthetic scenes, and not a tree written by ``dpdeblur-data synth``, whose
layout is DPDD's. Otherwise the paper's number stays and the note says why there is no
difference.

The dicts are the table's CSV rows (columns in docs/reproduce.md): notebooks and figures
read them with :func:`collect_rows` instead of parsing rendered tables.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dpdeblur.data.layout import is_synthetic_tree
from dpdeblur.research.tables.reference import RowSpec, TableSpec, load_table
from dpdeblur.runs.find import find_runs
from dpdeblur.runs.records import STATUS_FAILED, STATUS_INCOMPLETE, STATUS_OK, RunRecord

STATUS_NOT_RUN = "not run"
STATUS_NOT_IMPLEMENTED = "not implemented"


def matches(run: RunRecord, row: RowSpec) -> bool:
    return row.implemented and all(
        _same(run.get(key), expected) for key, expected in row.match.items()
    )


def _same(value: Any, expected: Any) -> bool:
    if value is None:
        return expected is None
    return str(value) == str(expected)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _newest_per_seed(runs: list[RunRecord]) -> tuple[list[RunRecord], list[RunRecord]]:
    """(finished runs, one per seed; runs of seeds that have no finished run)."""
    by_seed: dict[str, list[RunRecord]] = {}
    for run in runs:
        by_seed.setdefault(str(run.seed), []).append(run)
    done, other = [], []
    for seed_runs in by_seed.values():
        seed_runs.sort(key=lambda r: r.mtime)
        finished = [r for r in seed_runs if r.status == STATUS_OK]
        if finished:
            done.append(finished[-1])
        else:
            other.append(seed_runs[-1])
    key = lambda r: (str(r.seed), str(r.path))  # noqa: E731
    return sorted(done, key=key), sorted(other, key=key)


def scenes_of(runs: Iterable[RunRecord], split: str, metrics: Iterable[str]) -> list[str]:
    """Scene labels (``indoor``, ``outdoor``) with per-scene means in any run's split."""
    metrics = tuple(metrics)
    found = set()
    for run in runs:
        for key in (run.metrics or {}).get(split) or {}:
            for metric in metrics:
                if key.startswith(metric + "_"):
                    found.add(key[len(metric) + 1 :])
    return sorted(found)


def metric_columns(metrics: Iterable[str], scenes: Iterable[str]) -> list[str]:
    """The CSV columns of the numbers, in order (docs/reproduce.md)."""
    metrics, scenes = tuple(metrics), tuple(scenes)
    columns = []
    for metric in metrics:
        columns += [metric, f"{metric}_std", f"{metric}_paper", f"{metric}_delta"]
    for metric in metrics:
        columns += [f"{metric}_{scene}" for scene in scenes]
    return columns


INFO_COLUMNS = (
    "table",
    "row",
    "label",
    "status",
    "n",
    "seeds",
    "images",
    "protocol",
    "data",
    "paper",
    "paper_table",
    "paper_row",
    "paper_protocol",
    "paper_note",
)
TAIL_COLUMNS = ("note", "error", "runs")


def columns(table: TableSpec, scenes: Iterable[str]) -> list[str]:
    return [*INFO_COLUMNS, *metric_columns(table.metrics, scenes), *TAIL_COLUMNS]


def _data_label(run: RunRecord) -> str:
    dataset = run.get("data.dataset") or "?"
    root = run.get("data.root")
    return f"{dataset}:{Path(str(root)).name}" if root else str(dataset)


def comparable(runs: Iterable[RunRecord], table: TableSpec) -> str | None:
    """``None`` when every run was scored on the table's dataset, else why not (a note)."""
    datasets = {str(r.get("data.dataset") or "?") for r in runs}
    if datasets - {table.dataset}:
        found = ", ".join(sorted(datasets - {table.dataset}))
        return f"no delta: {found} data, the paper's is {table.dataset}"
    if any(is_synthetic_tree(r.get("data.root")) for r in runs):
        return "no delta: a synthetic tree in DPDD's layout (dpdeblur-data synth)"
    return None


def row_dict(
    table: TableSpec, row: RowSpec, runs: list[RunRecord], split: str, scenes: list[str]
) -> dict[str, Any]:
    """One row of ``table`` from the runs that match it (the CSV columns of docs/reproduce.md)."""
    done, unfinished = _newest_per_seed(runs)
    out: dict[str, Any] = dict.fromkeys(columns(table, scenes))
    out.update(
        table=table.name,
        row=row.id,
        label=row.label,
        paper=table.source.get("paper"),
        paper_table=table.source.get("table"),
        paper_row=row.paper_row,
        paper_protocol=table.source.get("protocol"),
        n=len(done),
        seeds=";".join(str(r.seed) for r in done),
        runs=";".join(str(r.path) for r in (done or unfinished)),
    )
    notes = []
    if done:
        out["status"] = STATUS_OK
    elif not row.implemented:
        out["status"] = STATUS_NOT_IMPLEMENTED
    elif not unfinished:
        out["status"] = STATUS_NOT_RUN
    elif any(r.status == STATUS_INCOMPLETE for r in unfinished):
        out["status"] = STATUS_INCOMPLETE
    else:
        out["status"] = STATUS_FAILED
    failed = [r for r in unfinished if r.status == STATUS_FAILED]
    if failed:
        out["error"] = failed[-1].error or "failed (no message)"
    if done and failed:
        notes.append(f"{len(failed)} seed(s) failed")
    if done and len(failed) < len(unfinished):
        notes.append(f"{len(unfinished) - len(failed)} seed(s) unfinished")

    blocks = [(r.metrics or {}).get(split) or {} for r in done]
    if done and not any(blocks):
        notes.append(f"no {split} scores (test=false?)")
    for key in metric_columns(table.metrics, scenes):
        if key.endswith(("_std", "_paper", "_delta")):
            continue
        values = [v for v in (_number(b.get(key)) for b in blocks) if v is not None]
        if values:
            out[key] = statistics.fmean(values)
            if key in table.metrics and len(values) > 1:
                out[f"{key}_std"] = statistics.stdev(values)
    not_comparable = comparable(done, table) if done and row.reference else None
    if not_comparable:
        notes.append(not_comparable)
    for metric in table.metrics:
        paper = (row.reference or {}).get(metric)
        out[f"{metric}_paper"] = paper
        if paper is not None and out[metric] is not None and not not_comparable:
            out[f"{metric}_delta"] = out[metric] - paper
    if row.reference is None:
        out["paper_note"] = row.reference_note or "no reference"

    pick = done or unfinished
    if pick:
        protocols = sorted({str(r.protocol) for r in pick if r.protocol})
        out["protocol"] = ", ".join(protocols) or None
        if len(protocols) > 1:
            notes.append("mixed protocols")
        out["data"] = ", ".join(sorted({_data_label(r) for r in pick}))
        images = sorted({int(b["images"]) for b in blocks if _number(b.get("images"))})
        out["images"] = ";".join(str(i) for i in images) or None
    out["note"] = "; ".join(notes) or None
    return out


def collect_table(
    runs: Iterable[RunRecord], table: TableSpec, split: str = "test", protocol: str | None = None
) -> list[dict[str, Any]]:
    """One dict per row of ``table`` (every row, in the paper's order) from ``runs``."""
    runs = [r for r in runs if protocol is None or r.protocol in (None, protocol)]
    per_row = {row.id: [r for r in runs if matches(r, row)] for row in table.rows}
    matched = [r for rs in per_row.values() for r in rs]
    scenes = scenes_of(matched, split, table.metrics)
    return [row_dict(table, row, per_row[row.id], split, scenes) for row in table.rows]


def collect_rows(
    run_dirs: Iterable[str | Path],
    table: str | TableSpec,
    split: str = "test",
    protocol: str | None = None,
) -> list[dict[str, Any]]:
    """The rows of ``table`` (a name such as ``dpanet-4``, or a spec) filled from the runs
    at or below ``run_dirs``: plain dicts with the CSV columns of docs/reproduce.md.

    ``protocol`` keeps only runs scored with that protocol (``16bit``, ``8bit_trunc``, ...).
    """
    spec = table if isinstance(table, TableSpec) else load_table(table)
    return collect_table(find_runs(run_dirs), spec, split=split, protocol=protocol)


def tables_of(runs: Iterable[RunRecord]) -> list[str]:
    """The tables the runs were made for (their ``table`` config key), in name order."""
    return sorted({str(r.config["table"]) for r in runs if r.config.get("table")})
