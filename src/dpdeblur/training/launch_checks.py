"""Launcher settings checked before a multirun submits anything.

:class:`LaunchCheck` is a Hydra callback (``hydra.callbacks.launch_check`` in
``conf/train.yaml`` and ``conf/eval.yaml``): Hydra calls it with the composed config
before the sweeper or the launcher starts, so a SLURM sweep whose jobs could not run is
refused in one line on the submitting machine, instead of failing in every job hours later
in the queue. For ``hydra/launcher=slurm`` (:func:`check_slurm`):

- ``trainer.devices`` is a number of devices per node (-1, "all visible", cannot be asked
  of SLURM: sbatch would get ``--gpus-per-node=-1`` or ``--ntasks-per-node=-1``);
- GPUs per node follow the trainer's accelerator
  (:func:`~dpdeblur.training.config.slurm_gpus_per_node`): ``trainer.devices`` for
  ``gpu``, ``cuda`` and ``auto``, none for ``cpu`` (a CPU trainer, one process or CPU DDP,
  must not hold GPUs it never uses); other accelerators are refused;
- one task per device and the node count of the trainer: Lightning runs one DDP rank per
  SLURM task and refuses a job whose tasks per node differ from ``trainer.devices``;
- training resumes after a requeue (``ckpt_path=auto``): the launcher requeues a job on
  its time limit and on preemption, and a job started again without it would train from
  scratch (``null``, a path) or fail at its first start (``last``).

Hydra turns an ``Exception`` raised in a callback into a warning and goes on, so the
callback raises :class:`LaunchRefused` (a ``BaseException`` carrying the one-line
:class:`~dpdeblur.errors.ConfigError`), which ``dpdeblur-train`` and ``dpdeblur-eval`` print
and exit with. Nothing here imports torch or Lightning (Hydra builds its callbacks for
every run).
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from dpdeblur.errors import ConfigError
from dpdeblur.training.config import SLURM_GPU_ACCELERATORS

SLURM_LAUNCHER = "SlurmLauncher"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def check_slurm(cfg: DictConfig) -> None:
    """Refuse SLURM launcher settings that cannot work (no-op for other launchers)."""
    launcher = OmegaConf.select(cfg, "hydra.launcher") or {}
    if not str(launcher.get("_target_", "")).endswith(SLURM_LAUNCHER):
        return
    trainer = cfg.get("trainer") or {}
    devices, nodes = trainer.get("devices", 1), _int(trainer.get("num_nodes", 1)) or 1
    accelerator = str(trainer.get("accelerator", "cpu")).lower()
    if accelerator not in (*SLURM_GPU_ACCELERATORS, "cpu"):
        raise ConfigError(
            f"trainer.accelerator={accelerator} on SLURM: a job asks GPUs (gpu, cuda, auto) "
            "or only CPUs (cpu)",
            None,
            "set trainer.accelerator to gpu or cpu, or use another launcher",
        )
    on_cpu = accelerator == "cpu"
    count = _int(devices)
    if count is None or count < 1:
        asked = "a number of processes" if on_cpu else "a number of GPUs"
        flag = "--ntasks-per-node" if on_cpu else "--gpus-per-node"
        example = "trainer.accelerator=cpu trainer.devices=4" if on_cpu else "trainer.devices=4"
        raise ConfigError(
            f"trainer.devices={devices} cannot be asked of SLURM (a job asks {asked} per node; "
            f"sbatch would get {flag}={devices})",
            None,
            f"set trainer.devices to the {'ranks' if on_cpu else 'GPUs'} per node, e.g. "
            f"trainer=ddp {example}",
        )
    tasks = _int(OmegaConf.select(cfg, "hydra.launcher.tasks_per_node"))
    gpus = _int(OmegaConf.select(cfg, "hydra.launcher.gpus_per_node"))
    if on_cpu and gpus:
        raise ConfigError(
            f"hydra.launcher.gpus_per_node={gpus} but trainer.accelerator=cpu: the job would "
            "hold GPUs it never uses",
            None,
            "drop hydra.launcher.gpus_per_node (a CPU trainer asks none), or train on them "
            "with trainer.accelerator=gpu",
        )
    if not on_cpu and gpus != count:
        raise ConfigError(
            f"hydra.launcher.gpus_per_node={gpus} but trainer.devices={count}",
            None,
            f"drop hydra.launcher.gpus_per_node (it follows trainer.devices), or set it to {count}",
        )
    if tasks != count:
        raise ConfigError(
            f"hydra.launcher.tasks_per_node={tasks} but trainer.devices={count}: Lightning runs "
            "one DDP rank per SLURM task",
            None,
            f"drop hydra.launcher.tasks_per_node (it follows trainer.devices), or set it to {count}",
        )
    launcher_nodes = _int(OmegaConf.select(cfg, "hydra.launcher.nodes"))
    if launcher_nodes != nodes:
        raise ConfigError(
            f"hydra.launcher.nodes={launcher_nodes} but trainer.num_nodes={nodes}",
            None,
            f"drop hydra.launcher.nodes (it follows trainer.num_nodes), or set it to {nodes}",
        )
    ckpt_path = cfg.get("ckpt_path", "auto")
    if cfg.get("train", False) and ckpt_path != "auto":
        again = "fail (no last.ckpt yet)" if ckpt_path == "last" else "train from the start again"
        shown = "null" if ckpt_path is None else ckpt_path
        raise ConfigError(
            f"ckpt_path={shown} on SLURM: the launcher requeues a job on its time limit "
            f"and on preemption, and the job would then {again}",
            None,
            "add ckpt_path=auto (resume the job's own last.ckpt when there is one, else start "
            "fresh); start from other weights with init_from=PATH",
        )


class LaunchRefused(BaseException):
    """A multirun refused before it started; ``error`` says why and what to do."""

    def __init__(self, error: ConfigError):
        self.error = error
        super().__init__(error.one_line())


class LaunchCheck(Callback):
    """Hydra callback: :func:`check_slurm` before a multirun starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_slurm(config)
        except ConfigError as err:
            raise LaunchRefused(err) from None
