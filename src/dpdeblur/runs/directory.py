"""Run directories: the resolved config, ``metrics.json``, and finding earlier runs' checkpoints.

Each run (and each multirun job) has its own directory (``conf/hydra/default.yaml``) that
holds ``config.yaml`` (resolved), ``metrics.json`` (final means, protocol, status),
``{val,test}_images.csv`` (one row per image), ``checkpoints/`` and ``panels/``. Tables are
built from these files, never from a dashboard.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dpdeblur.errors import CheckpointError


def save_config(cfg: DictConfig, output_dir: Path) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "config.yaml"
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return path


def _finite(value: Any) -> Any:
    """JSON has no NaN: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_metrics(output_dir: Path, payload: dict[str, Any]) -> Path:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(_finite(payload), indent=2, sort_keys=True) + "\n")
    return path


def find_last_checkpoint(
    output_dir: Path, log_dir: Path, task_name: str, experiment_name: str
) -> Path:
    """``ckpt_path=last``: this run directory's ``last.ckpt``, else the newest ``last.ckpt``
    of an earlier run of the same experiment under ``log_dir/task_name``."""
    own = output_dir / "checkpoints" / "last.ckpt"
    if own.is_file():
        return own
    candidates = []
    for ckpt in Path(log_dir, task_name).glob("**/checkpoints/last.ckpt"):
        config = ckpt.parent.parent / "config.yaml"
        if config.is_file() and OmegaConf.load(config).get("experiment_name") == experiment_name:
            candidates.append(ckpt)
    if not candidates:
        raise CheckpointError(
            f"ckpt_path=last but no last.ckpt of experiment '{experiment_name}' exists",
            Path(log_dir, task_name),
            "train first, or pass ckpt_path=/path/to/last.ckpt",
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def resolve_init_checkpoint(spec: str, log_dir: Path) -> Path:
    """``init_from``: a checkpoint path, or ``best:<experiment>`` for the best checkpoint of
    the newest successful run of that experiment under ``log_dir`` (chains recipe stages)."""
    if not spec.startswith("best:"):
        return Path(spec).expanduser()
    experiment = spec.split(":", 1)[1]
    found = []
    for metrics in Path(log_dir).glob("**/metrics.json"):
        try:
            payload = json.loads(metrics.read_text())
        except (OSError, ValueError):
            continue
        best = payload.get("best_checkpoint")
        if (
            payload.get("experiment") == experiment
            and payload.get("status") == "ok"
            and best
            and Path(best).is_file()
        ):
            found.append((metrics.stat().st_mtime, Path(best)))
    if not found:
        raise CheckpointError(
            f"init_from={spec}: no finished run of experiment '{experiment}' with a best checkpoint",
            Path(log_dir),
            f"run experiment={experiment} first, or pass init_from=/path/to/best.ckpt",
        )
    return max(found)[1]
