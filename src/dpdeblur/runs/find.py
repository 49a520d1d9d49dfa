"""Finding runs: every run directory below some folders, and earlier runs' checkpoints.

Paths given by the user may be run directories, multirun directories (numbered job
folders) or any folder above them: :func:`find_runs` finds every run directory below
(one that holds ``config.yaml``, ``metrics.json`` or ``.hydra/config.yaml``) and reads it
(:func:`dpdeblur.runs.records.read_run`). The checkpoint searches are built on it:

- :func:`last_checkpoint` (``ckpt_path=last``): a run's own ``last.ckpt``, else the newest
  one of an earlier run of the same experiment;
- :func:`best_checkpoint` (``init_from=best:<experiment>``, the reproduce planner): the
  best checkpoint of the newest finished run whose config matches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dpdeblur.errors import DpdeblurError
from dpdeblur.runs.records import RunRecord, read_run

# Folders inside a run directory that never hold runs.
NOT_RUN_FOLDERS = {"checkpoints", "panels", "csv", "tensorboard", "wandb"}


def is_run_dir(path: Path) -> bool:
    return (
        (path / "config.yaml").is_file()
        or (path / "metrics.json").is_file()
        or (path / ".hydra" / "config.yaml").is_file()
    )


def _run_dirs(root: Path) -> Iterator[Path]:
    for current, dirs, _files in os.walk(root):
        here = Path(current)
        if is_run_dir(here):
            dirs[:] = []  # a run directory holds no further runs
            yield here
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in NOT_RUN_FOLDERS)


def find_runs(roots: Iterable[str | Path], strict: bool = True) -> list[RunRecord]:
    """Every run directory at or below ``roots``, sorted by path.

    ``strict``: a root that does not exist or holds no run, or a run whose files cannot be
    read, is an error (what a user's ``--runs`` deserves); otherwise they are skipped (what
    a search for an earlier checkpoint wants).
    """
    runs: dict[Path, RunRecord] = {}
    for given in roots:
        root = Path(given).expanduser()
        if not root.exists():
            if not strict:
                continue
            raise DpdeblurError(
                "no such directory", root, "pass run or multirun directories (or outputs/)"
            )
        found = list(_run_dirs(root))
        if not found and strict:
            raise DpdeblurError(
                "no run directories here (none holds config.yaml or metrics.json)",
                root,
                "pass run or multirun directories, e.g. outputs/train/multiruns/<sweep>",
            )
        for path in found:
            if path.resolve() in runs:
                continue
            try:
                runs[path.resolve()] = read_run(path)
            except DpdeblurError:
                if strict:
                    raise
    return sorted(runs.values(), key=lambda r: str(r.path))


def last_checkpoint(run_dir: Path, roots: Iterable[str | Path], experiment: str) -> Path | None:
    """``run_dir``'s own ``checkpoints/last.ckpt``, else the newest ``last.ckpt`` of a run
    of ``experiment`` (its ``experiment_name``) below ``roots``; None if there is none."""
    own = Path(run_dir) / "checkpoints" / "last.ckpt"
    if own.is_file():
        return own
    found = [
        run.path / "checkpoints" / "last.ckpt"
        for run in find_runs(roots, strict=False)
        if run.get("experiment_name") == experiment
    ]
    found = [ckpt for ckpt in found if ckpt.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def best_checkpoint(roots: Iterable[str | Path], **match: Any) -> Path | None:
    """The best checkpoint of the newest finished run below ``roots`` whose dotted keys
    (``config.yaml``, else ``metrics.json``) equal ``match``, e.g.
    ``best_checkpoint([log_dir], experiment_name="dpanet_dpdd")``; None if there is none."""
    found = [
        (run.mtime, run.best_checkpoint)
        for run in find_runs(roots, strict=False)
        if run.best_checkpoint is not None
        and all(run.get(key) == value for key, value in match.items())
    ]
    return max(found)[1] if found else None
