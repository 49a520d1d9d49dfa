"""Hydra entry points with one-line errors: ``dpdeblur-train`` and ``dpdeblur-eval``.

The configs are found wherever the package is installed (:func:`dpdeblur.training.config.config_dir`);
a user's own folder can be added with ``--config-dir``. User errors (bad data root, unknown
model, unusable checkpoint) print ``error: ...`` and exit 2; in a multirun a failing job is
logged and the sweep goes on (:func:`dpdeblur.training.guard.guarded`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from dpdeblur.errors import DpdeblurError
from dpdeblur.training.config import config_dir, register_resolvers


def user_error(err: BaseException) -> DpdeblurError | None:
    """The DpdeblurError behind ``err`` (Hydra's instantiate wraps exceptions), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, DpdeblurError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def run_hydra(config_name: str, task: Callable[[DictConfig], dict], objective: str) -> None:
    import hydra

    from dpdeblur.training.guard import guarded

    register_resolvers()

    @hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")
    def app(cfg: DictConfig) -> float:
        try:
            result = guarded(task, cfg, Path(cfg.paths.output_dir))
        except Exception as err:
            found = user_error(err)
            if found is None:
                raise
            print(f"error: {found.one_line()}", file=sys.stderr)
            sys.exit(2)
        split, _, key = objective.partition("/")
        value = (result.get(split) or {}).get(key)
        return float(value) if value is not None else math.nan

    app()


def train_main() -> None:
    from dpdeblur.training.train import train

    run_hydra("train", train, "val/psnr")


def eval_main() -> None:
    from dpdeblur.training.evaluate import evaluate

    run_hydra("eval", evaluate, "test/psnr")
