"""Hydra entry points with one-line errors: ``dpdeblur-train`` and ``dpdeblur-eval``.

The configs are found wherever the package is installed (:func:`dpdeblur.training.config.config_dir`);
a user's own folder can be added with ``--config-dir``. Nothing heavy is imported before
Hydra has composed the config: Lightning and torch load only when a task runs, so
``--help``, ``--cfg job`` and a mistake in the config answer in a second or two.

Every user error is one line, ``error: what -- the fix`` with the fix in override syntax,
and exit status 2: a config Hydra cannot compose (an unknown group option or key, an
override it cannot parse; :func:`dpdeblur.training.config_errors.hydra_error`), a set-up
the checks refuse before the task starts (:mod:`dpdeblur.training.preflight`), and the
task's own errors (bad data root, unknown model, unusable checkpoint). In a multirun a
failing job is logged and the sweep goes on (:func:`dpdeblur.training.guard.guarded`). A
run stopped by SIGTERM says so in one line and exits with 143 (its ``last.ckpt`` holds
the step it stopped at); Ctrl-C outside training exits with 130, without a traceback. A
multirun whose launcher settings cannot work (:mod:`dpdeblur.training.launch_checks`) is
refused the same way before anything is submitted.

Under DDP on one machine Lightning starts ranks 1.. by re-running the command line; such a
rank that ends in an error waits for rank 0 to exit first (Lightning's watcher in rank 0
kills every process once a rank exits with an error, which would cut rank 0 short of its
``metrics.json`` and its own message), and leaves the errors every rank reports alike
(a diverged or stopped run) for rank 0 to print.
``HYDRA_FULL_ERROR=1`` shows Hydra's full reports instead.
"""

from __future__ import annotations

import math
import os
import sys
import time
from importlib import import_module
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from dpdeblur.errors import DpdeblurError
from dpdeblur.training.config import config_dir, register_resolvers
from dpdeblur.training.config_errors import hydra_error, hydra_hint
from dpdeblur.training.guard import (
    TrainingDivergedError,
    TrainingStoppedError,
    global_rank,
    guarded,
)
from dpdeblur.training.launch_checks import LaunchRefused
from dpdeblur.training.preflight import check_config

# config name -> (task module, task function, the metric a sweep optimises)
TASKS = {
    "train": ("dpdeblur.training.train", "train", "val/psnr"),
    "eval": ("dpdeblur.training.evaluate", "evaluate", "test/psnr"),
}
FULL_ERROR = "HYDRA_FULL_ERROR"
# How Lightning names the ranks it starts by re-running the command line under Hydra
# (hydra.job.name=train_ddp_process_<local rank>), and how long such a rank waits for rank 0.
RELAUNCHED = "train_ddp_process_"
WAIT_FOR_RANK_ZERO_S = 30.0
PARENT_PID = os.getppid()


def user_error(err: BaseException) -> DpdeblurError | None:
    """The DpdeblurError behind ``err`` (Hydra's instantiate wraps exceptions), if any."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, DpdeblurError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def relaunched_rank() -> bool:
    """Whether this process is a DDP rank Lightning started by re-running the command line
    (its parent process is rank 0)."""
    try:
        return HydraConfig.initialized() and HydraConfig.get().job.name.startswith(RELAUNCHED)
    except Exception:
        return False


def wait_for_parent(timeout: float = WAIT_FOR_RANK_ZERO_S) -> None:
    """Return once the process that started this one has exited (or after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while os.getppid() == PARENT_PID and time.monotonic() < deadline:
        time.sleep(0.1)


def fail(err: DpdeblurError, config_name: str) -> NoReturn:
    """Print ``err`` as one line in this tool's syntax and exit: 2, or 128 + the signal
    for a run a signal stopped. A rank Lightning started prints only its own errors and
    exits after rank 0."""
    model_override = "+model=" if config_name == "eval" else "model="
    line = hydra_hint(err.one_line(), model_override)
    status = 128 + err.signum if isinstance(err, TrainingStoppedError) else 2
    if relaunched_rank():
        if not isinstance(err, TrainingDivergedError | TrainingStoppedError):
            print(f"error (rank {global_rank()}): {line}", file=sys.stderr, flush=True)
        wait_for_parent()
        sys.exit(status)
    if isinstance(err, TrainingStoppedError):
        print(f"stopped: {line}", file=sys.stderr)
        sys.exit(status)
    print(f"error: {line}", file=sys.stderr)
    sys.exit(status)


def run_task(cfg: DictConfig, config_name: str) -> dict:
    """The preflight checks, then the task (importing Lightning only now)."""
    check_config(cfg, config_name)
    module, function, _ = TASKS[config_name]
    return getattr(import_module(module), function)(cfg)


def run_hydra(config_name: str) -> None:
    register_resolvers()
    # Hydra reports a composition error in many lines and exits 1 unless HYDRA_FULL_ERROR
    # is set, in which case it raises: set it (unless the user did) to catch and shorten
    # them, and unset it once the job starts (a bug in a task keeps Hydra's report, and
    # processes the task starts, such as DDP ranks, do not inherit it).
    ours = FULL_ERROR not in os.environ
    if ours:
        os.environ[FULL_ERROR] = "1"

    @hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")
    def app(cfg: DictConfig) -> float:
        if ours:
            os.environ.pop(FULL_ERROR, None)
        try:
            result = guarded(lambda c: run_task(c, config_name), cfg, Path(cfg.paths.output_dir))
        except Exception as err:
            found = user_error(err)
            if found is None and isinstance(err, HydraException | OmegaConfBaseException):
                found = hydra_error(err, config_name, sys.argv[1:])
            if found is None:
                raise
            fail(found, config_name)
        split, _, key = TASKS[config_name][2].partition("/")
        value = (result.get(split) or {}).get(key)
        return float(value) if value is not None else math.nan

    try:
        app()
    except LaunchRefused as refused:  # launch_checks, before a multirun submits anything
        fail(refused.error, config_name)
    except (HydraException, OmegaConfBaseException) as err:
        found = hydra_error(err, config_name, sys.argv[1:]) if ours else None
        if found is None:
            raise
        fail(found, config_name)
    except KeyboardInterrupt:  # a second Ctrl-C while training, or one outside training
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        if ours:
            os.environ.pop(FULL_ERROR, None)


def train_main() -> None:
    run_hydra("train")


def eval_main() -> None:
    run_hydra("eval")
