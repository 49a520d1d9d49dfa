"""Reading one run directory: :class:`RunRecord`.

A run directory holds ``config.yaml`` (the resolved config, written first) and, once the
run ends, ``metrics.json`` (``status`` ok or failed; the ``val``/``test`` means, ``params``,
``model``, ``best_checkpoint``, ...) and ``{split}_images.csv`` (one row per image:
``name, split, scene, psnr, ..., input_psnr``). A directory with a config but no
``metrics.json`` is a run still going, or one that was killed. Hydra adds
``.hydra/overrides.yaml``, the command-line overrides of the job (``loss=mse``, ``seed=1``):
what a sweep varied. Tables, figures and the searches for earlier checkpoints all read runs
through :func:`read_run`.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dpdeblur.errors import DpdeblurError

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_INCOMPLETE = "incomplete"

# Text columns of ``{split}_images.csv``; every other column is a number.
TEXT_COLUMNS = ("name", "split", "scene")


def dig(tree: Any, key: str) -> Any:
    """The value at a dotted ``key`` of nested dicts, ``None`` if any part is absent."""
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RunRecord:
    """One run directory: its config, its ``metrics.json`` (None while unfinished), and
    its per-image rows (read on demand by :meth:`image_rows`)."""

    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    mtime: float  # of metrics.json once finished, else of config.yaml
    overrides: tuple[str, ...] = ()  # .hydra/overrides.yaml, as typed (``loss=mse``)

    @property
    def status(self) -> str:
        """``ok``, ``failed``, or ``incomplete`` (no ``metrics.json``: running or killed)."""
        if self.metrics is None:
            return STATUS_INCOMPLETE
        return STATUS_OK if self.metrics.get("status") == STATUS_OK else STATUS_FAILED

    @property
    def seed(self) -> Any:
        seed = self.config.get("seed")
        return seed if seed is not None else (self.metrics or {}).get("seed")

    @property
    def error(self) -> str | None:
        return (self.metrics or {}).get("error")

    @property
    def protocol(self) -> str | None:
        found = dig(self.metrics or {}, "protocol.protocol")
        return found if found is not None else dig(self.config, "metrics.protocol")

    def get(self, key: str) -> Any:
        """A dotted key from ``config.yaml``, else from ``metrics.json``."""
        value = dig(self.config, key)
        return value if value is not None else dig(self.metrics or {}, key)

    @property
    def label(self) -> str:
        """The run's name for people: ``run_name``, else the experiment, else the folder."""
        metrics = self.metrics or {}
        return str(metrics.get("run_name") or metrics.get("experiment") or self.path.name)

    def means(self, split: str) -> dict[str, Any]:
        """The split's means from ``metrics.json`` (``psnr``, ``psnr_indoor``, ...)."""
        return dict((self.metrics or {}).get(split) or {})

    def scene_means(self, split: str, metric: str = "psnr") -> dict[str, float]:
        """Per-scene means of ``metric`` in ``split`` (``{"indoor": ..., "outdoor": ...}``)."""
        prefix = f"{metric}_"
        return {
            key[len(prefix) :]: float(value)
            for key, value in self.means(split).items()
            if key.startswith(prefix) and _finite(value)
        }

    @property
    def scored_split(self) -> str | None:
        """``test`` when the run has a finite test PSNR, else ``val`` likewise, else None."""
        return next((s for s in ("test", "val") if _finite(self.means(s).get("psnr"))), None)

    @property
    def params(self) -> int | None:
        params = (self.metrics or {}).get("params")
        return int(params) if _finite(params) else None

    @property
    def model_config(self) -> dict[str, Any] | None:
        """The model's constructor config (``{name, **kwargs}``) the run recorded."""
        model = (self.metrics or {}).get("model") or self.config.get("model")
        return dict(model) if isinstance(model, dict) else None

    @property
    def best_checkpoint(self) -> Path | None:
        """The checkpoint chosen on validation, when the run finished and it still exists."""
        best = (self.metrics or {}).get("best_checkpoint")
        if self.status != STATUS_OK or not best or not Path(best).is_file():
            return None
        return Path(best)

    def images_csv(self, split: str) -> Path:
        return self.path / f"{split}_images.csv"

    def image_rows(self, split: str) -> list[dict[str, Any]]:
        """The split's per-image rows (:func:`read_image_rows`)."""
        return read_image_rows(self.images_csv(split))


def read_image_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``{split}_images.csv``: numbers as floats (``nan`` where empty)."""
    path = Path(path)
    if not path.is_file():
        raise DpdeblurError(
            "per-image rows not found", path, "score the run first (dpdeblur-eval writes them)"
        )
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            parsed: dict[str, Any] = {}
            for key, value in row.items():
                if key in TEXT_COLUMNS:
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


def read_run(path: str | Path) -> RunRecord:
    """The record of one run directory (a clear error for an unreadable file in it)."""
    path = Path(path)
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
    return RunRecord(
        path=path, config=config, metrics=metrics, mtime=mtime, overrides=_read_overrides(path)
    )


def _read_overrides(path: Path) -> tuple[str, ...]:
    """The job's command-line overrides from ``.hydra/overrides.yaml`` (none if absent)."""
    overrides_path = path / ".hydra" / "overrides.yaml"
    if not overrides_path.is_file():
        return ()
    try:
        loaded = yaml.safe_load(overrides_path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DpdeblurError(
            f"unreadable Hydra overrides ({type(err).__name__})",
            overrides_path,
            "delete the run directory or re-run it",
        ) from err
    return tuple(str(item) for item in loaded) if isinstance(loaded, list) else ()
