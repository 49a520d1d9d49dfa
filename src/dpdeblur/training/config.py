"""Where the Hydra configs live, and the resolvers they use.

The configs ship inside the wheel as ``dpdeblur/conf`` (pyproject's force-include); in an
editable install or a source checkout they are the repository's ``conf/``. Either way the
console scripts find them without path tricks, and a user's own folder can be added with
Hydra's ``--config-dir``.

The papers' tables (``experiments/tables/*.yaml``, shipped as ``dpdeblur/experiments/tables``)
are found the same way; a table sweep reads its rows from its table file through the
``${dpdeblur_table_rows:<table>}`` resolver, so a row is listed once, in the table.

A run is named by its command-line overrides (:func:`run_name`, the ``${dpdeblur_run_name:}``
resolver behind ``run_name``): wandb runs, sweep job folders and ``metrics.json`` carry it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from dpdeblur.errors import ConfigError

TABLES_ENV = "DPDEBLUR_TABLES"


def config_dir() -> Path:
    """Absolute path of the packaged configs, else the source checkout's ``conf/``."""
    packaged = Path(__file__).resolve().parents[1] / "conf"
    if (packaged / "train.yaml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[3] / "conf"
    if (checkout / "train.yaml").is_file():
        return checkout
    raise FileNotFoundError(
        f"dpdeblur's Hydra configs were found neither at {packaged} nor at {checkout}; reinstall the package"
    )


def tables_dir() -> Path:
    """``$DPDEBLUR_TABLES``, else the tables shipped in the package, else the checkout's
    ``experiments/tables``."""
    env = os.environ.get(TABLES_ENV)
    if env:
        return Path(env).expanduser()
    here = Path(__file__).resolve()
    for candidate in (
        here.parents[1] / "experiments" / "tables",  # a wheel that ships them
        here.parents[3] / "experiments" / "tables",  # a source checkout / editable install
    ):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        "the reference tables (experiments/tables/*.yaml) were not found",
        None,
        f"set {TABLES_ENV}=/path/to/dpdeblur/experiments/tables",
    )


def table_row_runs(table: str) -> list[str]:
    """The runs a table's sweep trains, in the table's order: each row's ``run``
    (``conf/row/<run>.yaml``; the row's ``id`` unless stated), leaving out rows with
    ``run: null`` (methods not implemented here). ``table`` is the file's stem."""
    path = tables_dir() / f"{table}.yaml"
    try:
        rows = (yaml.safe_load(path.read_text()) or {}).get("rows") or []
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"unreadable table file ({err})", path, "fix the YAML") from err
    runs = [row.get("run", row.get("id")) for row in rows if isinstance(row, dict)]
    return list(dict.fromkeys(str(run) for run in runs if run is not None))


_UID = secrets.token_hex(3)

NAME_LIMIT = 60
# Overrides that never name a run: where things are, how they are logged, Hydra's own.
NOISY_PREFIXES = ("hydra.", "hydra/", "paths.")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+@%-]+")


def run_name(overrides: Iterable[str], exclude: Iterable[str] = (), default: str = "run") -> str:
    """A short, filesystem-safe name from command-line overrides, ``default`` if none is left.

    Each override ``a.b.key=value`` becomes ``key-value`` (its last key), in the order given,
    joined by ``+``: ``optimizer.lr=1e-3 seed=1`` names ``lr-1e-3+seed-1``. Left out: the keys
    in ``exclude`` (``hydra.job.config.override_dirname.exclude_keys``), Hydra's and the
    paths' keys, ``experiment`` (the run's group) and values that are paths. The name holds
    no ``=``, ``,`` or ``/``, so a path through it is still a valid Hydra override value;
    past ``NAME_LIMIT`` characters it is cut and ends in a hash of the whole.
    """
    excluded = set(exclude) | {"experiment"}
    items = []
    for override in overrides:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+~")
        if not sep or key in excluded or key.startswith(NOISY_PREFIXES):
            continue
        if "/" in value or value.startswith("~"):
            continue
        value = _UNSAFE.sub("_", value.strip("[]{}()'\" ").replace(",", "_")).strip("_")
        items.append(f"{key.replace('/', '.').rsplit('.', 1)[-1]}-{value}")
    name = "+".join(items)
    if len(name) > NAME_LIMIT:
        digest = hashlib.sha1(name.encode()).hexdigest()[:6]
        name = f"{name[: NAME_LIMIT - 7]}-{digest}"
    return name or _UNSAFE.sub("_", str(default))


def swept_keys(args: Iterable[str], params: Iterable[str] = ()) -> set[str]:
    """The keys a multirun sweeps: those of ``args`` (a command line) with several values
    (``lr=1e-3,2e-3``, ``range(...)``), and ``params`` (``hydra.sweeper.params``)."""
    keys = {str(k).lstrip("+~") for k in params}
    parser = OverridesParser.create()
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            (override,) = parser.parse_overrides([arg])
        except Exception:
            continue
        if override.is_sweep_override():
            keys.add(override.key_or_group)
    return keys


def _hydra_run_name(default: str) -> str:
    """``${dpdeblur_run_name:<default>}``: :func:`run_name` of this Hydra job's overrides;
    in a multirun, of the swept ones only when they are known (the command line of this
    process, ``hydra.sweeper.params``), so jobs read ``0_lr-1e-3``, ``1_lr-2e-3``.
    ``default`` outside a Hydra app."""
    if not HydraConfig.initialized():
        return str(default)
    hydra_cfg = HydraConfig.get()
    exclude = hydra_cfg.job.config.override_dirname.exclude_keys
    overrides = [str(o) for o in hydra_cfg.overrides.task]
    if hydra_cfg.mode == RunMode.MULTIRUN:
        params = (hydra_cfg.sweeper.get("params") or {}).keys()
        swept = swept_keys(sys.argv[1:], params)
        overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] or overrides
    return run_name(overrides, exclude, default)


PRECISION_ENV = "DPDEBLUR_PRECISION"
# The precisions a user may force (``--precision`` of dpdeblur-demo, ``$DPDEBLUR_PRECISION``),
# as Lightning spells them; ``auto`` (or nothing) leaves the choice to the CPU test.
FORCED_PRECISIONS = {
    "32": "32-true",
    "fp32": "32-true",
    "32-true": "32-true",
    "bf16": "bf16-mixed",
    "bf16-mixed": "bf16-mixed",
}


def forced_precision(value: str | None, source: str = PRECISION_ENV) -> str | None:
    """The Lightning precision that ``value`` forces, ``None`` for ``auto``, empty or unset.

    ``value`` is a user's choice (``$DPDEBLUR_PRECISION``, the demo's ``--precision``),
    case and surrounding spaces ignored: ``32``, ``fp32`` or ``32-true`` force fp32, ``bf16``
    or ``bf16-mixed`` force bf16 autocast. Anything else raises a one-line
    :class:`ConfigError` naming ``source`` (the variable or flag the value came from) and
    the accepted values. Shared by the demo and :func:`fast_precision`, so both read the
    variable alike.
    """
    choice = (value or "auto").strip().lower()
    if choice == "auto":
        return None
    if choice not in FORCED_PRECISIONS:
        accepted = ", ".join(["auto", *FORCED_PRECISIONS])
        raise ConfigError(
            f"{source}={choice} is not a precision (one of {accepted})",
            None,
            f"use {source}=32 to force fp32, {source}=bf16 for bf16 autocast, or {source}=auto",
        )
    return FORCED_PRECISIONS[choice]


def fast_precision(accelerator: str = "cpu") -> str:
    """``${dpdeblur_fast_precision:<accelerator>}``: the precision ``$DPDEBLUR_PRECISION``
    forces (:func:`forced_precision`: ``32`` gives ``32-true``, ``bf16`` gives
    ``bf16-mixed``, on any accelerator), else ``bf16-mixed`` on a CPU that computes bf16 in
    hardware (AVX512-BF16, AMX, Arm BF16: about 1.6x faster steps there), else ``32-true``
    (emulated bf16 is slower; on a GPU choose it yourself)."""
    forced = forced_precision(os.environ.get(PRECISION_ENV))
    if forced is not None:
        return forced
    if str(accelerator) != "cpu":
        return "32-true"
    from dpdeblur.hardware import cpu_has_native_bf16  # imports torch: only when resolved

    return "bf16-mixed" if cpu_has_native_bf16() else "32-true"


# Accelerators whose SLURM jobs ask one GPU per rank. "auto" is assumed to mean GPUs: on a
# node with GPUs Lightning's auto picks them, and a job that asked none would get no GPU for
# auto to pick; a sweep meant for CPUs says so with trainer.accelerator=cpu.
SLURM_GPU_ACCELERATORS = ("gpu", "cuda", "auto")


def slurm_gpus_per_node(accelerator: str, devices: Any) -> Any:
    """``${dpdeblur_slurm_gpus:<accelerator>,<devices>}``: the GPUs a SLURM job asks per node
    (``hydra.launcher.gpus_per_node`` of ``conf/hydra/launcher/slurm.yaml``).

    ``devices`` (``trainer.devices``) for the GPU accelerators (:data:`SLURM_GPU_ACCELERATORS`,
    ``auto`` included), unchanged so that :func:`~dpdeblur.training.launch_checks.check_slurm`
    can refuse ``-1`` or ``auto`` with its fix. ``None`` for ``cpu``: submitit leaves unset
    parameters out of the sbatch file, so the job asks no GPUs at all (a ``0`` would still be
    written, as ``--gpus-per-node=0``, which a partition without GPUs may refuse).
    Other accelerators get ``devices`` too; ``check_slurm`` refuses them before submitting.
    """
    return None if str(accelerator).lower() == "cpu" else devices


def register_resolvers() -> None:
    """``${dpdeblur_uid:}``: a short random id fixed per process, so two runs started in
    the same second never share a run directory. ``${dpdeblur_table_rows:<table>}``: the
    rows of ``experiments/tables/<table>.yaml`` as one comma-separated string, the form of
    a Hydra sweep (``hydra.sweeper.params.row``). ``${dpdeblur_run_name:<default>}``: the
    job's name from its overrides (:func:`run_name`). ``${dpdeblur_fast_precision:cpu}``:
    :func:`fast_precision`. ``${dpdeblur_slurm_gpus:<accelerator>,<devices>}``: the GPUs a
    SLURM job asks per node (:func:`slurm_gpus_per_node`)."""
    if not OmegaConf.has_resolver("dpdeblur_slurm_gpus"):
        OmegaConf.register_new_resolver("dpdeblur_slurm_gpus", slurm_gpus_per_node)
    if not OmegaConf.has_resolver("dpdeblur_fast_precision"):
        OmegaConf.register_new_resolver("dpdeblur_fast_precision", fast_precision)
    if not OmegaConf.has_resolver("dpdeblur_run_name"):
        OmegaConf.register_new_resolver("dpdeblur_run_name", _hydra_run_name)
    if not OmegaConf.has_resolver("dpdeblur_uid"):
        OmegaConf.register_new_resolver("dpdeblur_uid", lambda: _UID)
    if not OmegaConf.has_resolver("dpdeblur_table_rows"):
        OmegaConf.register_new_resolver(
            "dpdeblur_table_rows", lambda table: ",".join(table_row_runs(str(table)))
        )


def compose_config(
    config_name: str, overrides: list[str], output_dir: Path, log_dir: Path | None = None
):
    """A config composed in-process (no Hydra app, e.g. the demo and tests) with its run
    folder and its name set, since ``${hydra:runtime.output_dir}`` and the job's overrides
    exist only inside a Hydra app."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    exclude = list(cfg.hydra.job.config.override_dirname.exclude_keys)
    with open_dict(cfg):
        del cfg["hydra"]
        cfg.paths.output_dir = str(output_dir)
        cfg.paths.log_dir = str(log_dir or Path(output_dir).parent)
        if "run_name" in cfg:
            cfg.run_name = run_name(overrides, exclude, cfg.experiment_name)
    return cfg
