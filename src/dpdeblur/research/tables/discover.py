"""Finding run directories and reading what each one left behind.

A run directory (docs/training.md, "What a run leaves behind") holds ``config.yaml`` (the
resolved config, written first) and, once the run ends, ``metrics.json`` (``status`` ok or
failed). Paths given by the user may be run directories, multirun directories (numbered job
folders) or any folder above them: every run directory below is found. A directory with a
config but no ``metrics.json`` is a run still going, or one that was killed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dpdeblur.errors import DpdeblurError

# Folders inside a run directory that never hold runs.
_SKIP = {"checkpoints", "panels", "csv", "tensorboard", "wandb"}


@dataclass(frozen=True)
class RunRecord:
    """One run directory: its config, its ``metrics.json`` (None while unfinished)."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    mtime: float

    @property
    def status(self) -> str:
        """``ok``, ``failed``, or ``incomplete`` (no ``metrics.json``: running or killed)."""
        if self.metrics is None:
            return "incomplete"
        return "ok" if self.metrics.get("status") == "ok" else "failed"

    @property
    def seed(self) -> Any:
        seed = self.config.get("seed")
        return seed if seed is not None else (self.metrics or {}).get("seed")

    @property
    def error(self) -> str | None:
        return (self.metrics or {}).get("error")

    @property
    def protocol(self) -> str | None:
        found = dig((self.metrics or {}), "protocol.protocol")
        return found if found is not None else dig(self.config, "metrics.protocol")

    def get(self, key: str) -> Any:
        """A dotted key from ``config.yaml``, else from ``metrics.json``."""
        value = dig(self.config, key)
        return value if value is not None else dig(self.metrics or {}, key)


def dig(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def is_run_dir(path: Path) -> bool:
    return (
        (path / "config.yaml").is_file()
        or (path / "metrics.json").is_file()
        or (path / ".hydra" / "config.yaml").is_file()
    )


def _walk(root: Path) -> Iterable[Path]:
    for current, dirs, _files in os.walk(root):
        here = Path(current)
        if is_run_dir(here):
            dirs[:] = []  # a run directory holds no further runs
            yield here
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIP)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DpdeblurError(
            f"unreadable run config ({type(err).__name__})",
            path,
            "delete the run directory or re-run it",
        ) from err
    return loaded if isinstance(loaded, dict) else {}


def read_run(path: Path) -> RunRecord:
    """The record of one run directory (a clear error for an unreadable file in it)."""
    config_path = path / "config.yaml"
    if not config_path.is_file():
        config_path = path / ".hydra" / "config.yaml"  # the job died before our code ran
    config = _read_yaml(config_path) if config_path.is_file() else {}
    metrics_path = path / "metrics.json"
    metrics = None
    if metrics_path.is_file():
        try:
            metrics = json.loads(metrics_path.read_text())
        except (OSError, ValueError) as err:
            raise DpdeblurError(
                f"unreadable metrics.json ({type(err).__name__}: {err})",
                metrics_path,
                "delete the run directory or re-run it",
            ) from err
    stamp = metrics_path if metrics is not None else config_path
    mtime = stamp.stat().st_mtime if stamp.is_file() else path.stat().st_mtime
    return RunRecord(path=path, config=config, metrics=metrics, mtime=mtime)


def find_runs(paths: Iterable[str | Path]) -> list[RunRecord]:
    """Every run directory at or below ``paths``; an error for a path that holds none."""
    runs: dict[Path, RunRecord] = {}
    for given in paths:
        root = Path(given).expanduser()
        if not root.exists():
            raise DpdeblurError(
                "no such directory", root, "pass run or multirun directories (or outputs/)"
            )
        found = list(_walk(root))
        if not found:
            raise DpdeblurError(
                "no run directories here (none holds config.yaml or metrics.json)",
                root,
                "pass run or multirun directories, e.g. outputs/train/multiruns/<sweep>",
            )
        for path in found:
            runs.setdefault(path.resolve(), read_run(path))
    return sorted(runs.values(), key=lambda r: str(r.path))
