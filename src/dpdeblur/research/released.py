"""A paper's table scored from the authors' released weights: no training, minutes.

``reproduce_released("dpanet-1", weights_dir, data_root)`` (``make reproduce-table
TABLE=dpanet-1 WEIGHTS=DIR DATA=...``) finds every released checkpoint in ``weights_dir``
(any file name: each file's layout says which release it is,
:func:`dpdeblur.runs.releases.detect_release`), scores each on the DPDD test split under
dpdeblur's protocol (16-bit views, native size, float predictions) and, where its authors
scored differently, under their own protocol too (:data:`~dpdeblur.models.release_protocol.
RELEASE_PROTOCOLS`: DPANet's 8-bit reads and uint8 truncation, K3DN's resizing), and renders
the table beside the paper's numbers. A row whose release has no file in ``weights_dir``
stays in the table as "not found", naming the file to get; methods with no public weights
keep the paper's numbers only.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from dpdeblur.errors import CheckpointError, DataError
from dpdeblur.models.release_protocol import RELEASE_PROTOCOLS
from dpdeblur.research.reproduce import write_table_files
from dpdeblur.research.tables import RowSpec, TableSpec, collect_table, load_table
from dpdeblur.research.tables.collect import STATUS_OK
from dpdeblur.runs.checkpoints import read_checkpoint
from dpdeblur.runs.find import find_runs
from dpdeblur.runs.releases import detect_release
from dpdeblur.runs.releases.catalogue import CATALOGUE, ReleaseInfo
from dpdeblur.training.config import compose_config
from dpdeblur.training.evaluate import evaluate

STATUS_NOT_FOUND = "not found"
WEIGHT_SUFFIXES = (".pth", ".pt", ".pkl", ".ckpt", ".hdf5", ".h5", ".tar")
# The protocols a released row is scored under: dpdeblur's, and the release's own.
OURS, THEIRS = "dpdeblur", "release"


def find_release_files(weights_dir: Path) -> dict[str, Path]:
    """Release format name -> the first file (in path order) under ``weights_dir`` laid out
    as that release. Files of no known release are skipped; an unreadable one too."""
    if not weights_dir.is_dir():
        raise DataError(
            "no such folder of released weights", weights_dir, "pass WEIGHTS=/path/to/dir"
        )
    found: dict[str, Path] = {}
    for path in sorted(p for p in weights_dir.rglob("*") if p.is_file()):
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            continue
        try:
            fmt = detect_release(read_checkpoint(path))
        except CheckpointError:
            continue
        if fmt is not None:
            found.setdefault(fmt.NAME, path)
    return found


def _release_of_row(row: RowSpec) -> ReleaseInfo | None:
    return next((info for info in CATALOGUE.values() if info.row == row.id), None)


def released_rows(spec: TableSpec) -> list[tuple[RowSpec, ReleaseInfo | None, str | None]]:
    """The rows of the released-weights table: ``(row, release, protocol kind)``.

    A row with a release becomes one row per protocol (dpdeblur's; the release's own if it
    differs), matched by the ``released_row`` and ``released_protocol`` keys its evaluation
    carries; a row without one keeps only the paper's numbers."""
    out: list[tuple[RowSpec, ReleaseInfo | None, str | None]] = []
    for row in spec.rows:
        info = _release_of_row(row)
        if info is None:
            out.append((replace(row, run=None), None, None))
            continue
        kinds = [OURS] + ([THEIRS] if info.protocol else [])
        for kind in kinds:
            label = f"{info.name}, released weights: " + (
                "16-bit (ours)" if kind == OURS else f"its protocol ({info.protocol})"
            )
            out.append(
                (
                    replace(
                        row,
                        id=f"{row.id}-{kind}",
                        label=label,
                        run=info.format,
                        match={"released_row": row.id, "released_protocol": kind},
                    ),
                    info,
                    kind,
                )
            )
    return out


def eval_overrides(
    info: ReleaseInfo, kind: str, path: Path, data_root: Path, row_id: str
) -> list[str]:
    """``dpdeblur-eval`` overrides that score ``path`` under protocol ``kind``."""
    overrides = [
        f"ckpt={path}",
        "data=dpdd",
        f"data.root={data_root}",
        f"+released_row={row_id}",
        f"+released_protocol={kind}",
    ]
    if kind == THEIRS and info.protocol:
        overrides += [
            f"release_protocol={info.protocol}",
            f"metrics.protocol={RELEASE_PROTOCOLS[info.protocol].metrics_protocol}",
        ]
    return overrides


def reproduce_released(
    table: str,
    weights_dir: Path,
    data_root: Path,
    out_dir: Path,
    runs_dir: Path,
    extra: list[str] | tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Score every release found in ``weights_dir`` on ``data_root``'s test split and write
    ``<table>-released.{md,csv,tex}`` into ``out_dir``; returns the rows and the files."""
    spec = load_table(table)
    if not Path(data_root).is_dir():
        raise DataError("no such dataset folder", data_root, "pass DATA=/path/to/dd_dp_dataset_png")
    files = find_release_files(Path(weights_dir))
    rows = released_rows(spec)
    sweep_dir = runs_dir / f"{spec.name}-released" / time.strftime("%Y-%m-%d_%H-%M-%S")
    for row, info, kind in rows:
        if info is None or kind is None or info.format not in files:
            continue
        base = row.id.rsplit("-", 1)[0]
        overrides = eval_overrides(info, kind, files[info.format], Path(data_root), base)
        run_dir = sweep_dir / row.id
        print(f"+ dpdeblur-eval {' '.join(overrides + list(extra))}", flush=True)
        evaluate(compose_config("eval", overrides + list(extra), run_dir))
    derived = replace(
        spec,
        name=f"{spec.name}-released",
        title=f"{spec.title} (released weights)",
        rows=tuple(row for row, _, _ in rows),
    )
    collected = collect_table(find_runs([sweep_dir]) if sweep_dir.is_dir() else [], derived)
    for (_row, info, _), out in zip(rows, collected, strict=True):
        if info is not None and info.format not in files and out["status"] != STATUS_OK:
            out["status"] = STATUS_NOT_FOUND
            out["note"] = f"no {info.file_name} ({info.format}) in {weights_dir}"
        elif info is None:
            out["note"] = "no public weights"
    comment = f"make reproduce-table WEIGHTS={weights_dir}; runs: {sweep_dir}"
    written = write_table_files(collected, derived, out_dir, derived.name, comment)
    return collected, written
