"""Writing a run directory: the resolved config and ``metrics.json``.

Each run (and each multirun job) has its own directory (``conf/hydra/default.yaml``) that
holds ``config.yaml`` (resolved), ``metrics.json`` (final means, protocol, status),
``{val,test}_images.csv`` (one row per image), ``checkpoints/`` and ``panels/``. Tables are
built from these files, never from a dashboard; :mod:`dpdeblur.runs.records` reads them
back and :mod:`dpdeblur.runs.find` searches for them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def save_config(cfg: DictConfig, output_dir: Path) -> Path:
    """Write the resolved config as ``output_dir/config.yaml`` (a run's first file)."""
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
    """Write ``output_dir/metrics.json`` (non-finite numbers as null)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(_finite(payload), indent=2, sort_keys=True) + "\n")
    return path
