"""The reproduce planner: run a paper table's sweep, then render it beside the paper.

``dpdeblur-reproduce`` (``make reproduce-table``) drives it: ``reproduce("dpanet-4", data)`` runs
``dpdeblur-train -m experiment=dpanet_table4`` (one job per row and seed, in the sweep
folder ``<runs-dir>/<table>/<time>``) and writes the table as Markdown, CSV and LaTeX into
``experiments/results/``. ``scale="smoke"`` runs the same sweep on a synthetic DPDD tree it
writes (64x64 scenes; 6 train, 2 val, 2 test), every model at a sixteenth of its width
(K3DN at 8 channels), two training steps per row, on the CPU: the end-to-end check that
every row is wired. Table II has no sweep of its own: it scores the best checkpoint of a
finished ``dpanet`` row at half resolution (training one first if none is found), on the
device the row trained on (``trainer=gpu`` for a GPU row, or where CUDA is available), with
the extra overrides that ``dpdeblur-eval`` takes; with a launcher among them
(``hydra/launcher=slurm``) both steps are submitted through it (``-m``) instead of running
on this machine.

``estimate`` gives the expected GPU hours per row instead (docs/reproduce.md: MACs
counted here, the recipe's sample count, an assumed sustained throughput).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from omegaconf import OmegaConf

from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.errors import ConfigError, DataError, DpdeblurError
from dpdeblur.research.benchmarks.macs import count_macs
from dpdeblur.research.tables import TableSpec, collect_table, load_table, render
from dpdeblur.research.tables.collect import STATUS_NOT_IMPLEMENTED, STATUS_OK
from dpdeblur.runs.checkpoints import model_from_config
from dpdeblur.runs.find import best_checkpoint, find_runs
from dpdeblur.training.config import compose_config

SCALES = ("full", "smoke")
RESULTS_DIR = Path("experiments/results")

# Smoke scale: the same sweep, tiny. Sizes are per model family (conf/experiment tables'
# `widths` and `base_channels`): DPANet's and DPDNet's width multiplier, K3DN's base
# channel count.
SMOKE_SCENES = 10  # 70/15/15 -> 6 train, 2 val, 2 test
SMOKE_SIZE = (64, 64)
SMOKE_OVERRIDES = (
    "widths.dpanet=0.0625",
    "widths.dpdnet=0.0625",
    "base_channels.k3dn=8",
    "data.crop_size=64",
    "data.batch_size=3",  # 6 training scenes: two steps
    "data.resize=null",
    "data.train_repeats=1",
    "data.num_workers=0",
    "data.cache_dir=null",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "trainer.max_time=null",
    "trainer.log_every_n_steps=1",
    "optimizer.lr=1e-3",  # so that two steps tell the rows apart
    "logger=csv",
    "metrics.lpips=off",
    "metrics.num_panels=1",
)
SMOKE_EVAL_OVERRIDES = ("data.num_workers=0", "metrics.lpips=off", "metrics.num_panels=0")
GPU_ACCELERATORS = ("gpu", "cuda")
LAUNCHER_OVERRIDES = ("hydra/launcher=", "hydra.launcher.")
# Keys of the extra overrides that Table II's evaluation leaves out: it chooses its trainer
# (eval_trainer), and the checkpoint names its model.
NOT_FOR_EVAL = ("trainer", "model")


@dataclass(frozen=True)
class Plan:
    """What one reproduction runs: the commands, the sweep folder, where the table goes."""

    table: TableSpec
    scale: str
    sweep_dir: Path
    commands: list[list[str]]
    data_root: Path | None


def script(name: str) -> str:
    """A console script of this installation (beside the interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise DpdeblurError(
        f"the console script {name} is not installed", None, "pip install -e . in this environment"
    )


def write_smoke_data(root: Path) -> Path:
    """A synthetic DPDD tree for the smoke scale (kept when it already exists)."""
    if not (root / "test_c").is_dir():
        write_synthetic_dpdd(root, n=SMOKE_SCENES, size=SMOKE_SIZE, seed=0)
    return root


def scale_overrides(scale: str) -> list[str]:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale '{scale}'", None, f"use one of {', '.join(SCALES)}")
    return list(SMOKE_OVERRIDES) if scale == "smoke" else []


def sweep_command(
    table: TableSpec,
    data_root: Path | None,
    sweep_dir: Path,
    scale: str = "full",
    seeds: str | None = None,
    rows: str | None = None,
    extra: Sequence[str] = (),
) -> list[str]:
    """``dpdeblur-train -m experiment=<table> ...``: one job per row (and seed)."""
    if not table.experiment:
        raise ConfigError(f"table '{table.name}' has no sweep of its own", table.path, None)
    command = [script("dpdeblur-train"), "-m", f"experiment={table.experiment}"]
    if data_root is not None:
        command.append(f"data.root={data_root}")
    command += scale_overrides(scale)
    if seeds:
        command.append(f"seed={seeds}")
    if rows:
        command.append(f"row={rows}")
    command += [f"hydra.sweep.dir={sweep_dir}", *extra]
    return command


def override_key(override: str) -> str:
    """The top-level key or group an override sets: ``trainer`` for ``trainer.devices=4``,
    ``hydra`` for ``hydra/launcher=slurm``."""
    key = override.lstrip("+~").split("=", 1)[0]
    return key.replace("/", ".").split(".", 1)[0].split("@", 1)[0]


def eval_overrides(extra: Sequence[str]) -> list[str]:
    """The extra overrides that ``dpdeblur-eval`` takes (keys of ``conf/eval.yaml`` and
    Hydra's), less the trainer's and the model's (:data:`NOT_FOR_EVAL`)."""
    keys = set(compose_config("eval", [], Path(".")).keys()) | {"hydra"}
    return [o for o in extra if override_key(o) in keys - set(NOT_FOR_EVAL)]


def trained_on_gpu(run_dir: Path) -> bool | None:
    """Whether the run in ``run_dir`` trained on a GPU (its ``config.yaml``), None if unknown."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    accelerator = ((yaml.safe_load(path.read_text()) or {}).get("trainer") or {}).get("accelerator")
    return None if accelerator is None else str(accelerator) in GPU_ACCELERATORS


def eval_trainer(
    scale: str, checkpoint: Path | None, experiment: str, row: str, extra: Sequence[str]
) -> str:
    """Table II's evaluation runs on the device of the row it scores: ``trainer=cpu`` at smoke
    scale; else ``trainer=gpu`` (one GPU: 76 test images need no DDP) when that row trained on
    a GPU (the found run's config, or the trainer the row's training command composes), or,
    where that is unknown, when this machine has CUDA; else ``trainer=cpu``."""
    if scale == "smoke":
        return "trainer=cpu"
    on_gpu = trained_on_gpu(checkpoint.parent.parent) if checkpoint is not None else None
    if on_gpu is None and checkpoint is None:
        chosen = [o for o in extra if override_key(o) == "trainer"]
        cfg = compose_config(
            "train", [f"experiment={experiment}", f"row={row}", *chosen], Path(".")
        )
        on_gpu = str(cfg.trainer.accelerator) in GPU_ACCELERATORS
    if on_gpu is None:
        on_gpu = torch.cuda.is_available()
    return "trainer=gpu" if on_gpu else "trainer=cpu"


def run_or_sweep(command: list[str], run_dir: Path, extra: Sequence[str]) -> list[str]:
    """``command`` as one run in ``run_dir``, or, when ``extra`` picks a launcher (SLURM), as
    a one-job multirun in that folder, so that the launcher runs it."""
    if any(o.startswith(LAUNCHER_OVERRIDES) for o in extra):
        return [command[0], "-m", *command[1:], f"hydra.sweep.dir={run_dir}"]
    return [*command, f"hydra.run.dir={run_dir}"]


def eval_commands(
    table: TableSpec,
    data_root: Path | None,
    sweep_dir: Path,
    runs_dir: Path,
    scale: str,
    extra: Sequence[str] = (),
) -> list[list[str]]:
    """Table II: (train the source row if needed, then) score its best checkpoint."""
    recipe = table.recipe
    row, experiment = recipe.get("train_row"), recipe.get("train_experiment")
    if not row or not experiment:
        raise ConfigError(
            f"table '{table.name}' lacks recipe.train_row/train_experiment", table.path, None
        )
    commands = []
    checkpoint = (
        None if scale == "smoke" else best_checkpoint([runs_dir], row=row, task_name="train")
    )
    train_dir = sweep_dir / "train"
    if checkpoint is None:
        train = [script("dpdeblur-train"), f"experiment={experiment}", f"row={row}"]
        if data_root is not None:
            train.append(f"data.root={data_root}")
        train += [*scale_overrides(scale), *extra]
        commands.append(run_or_sweep(train, train_dir, extra))
    ckpt = str(checkpoint) if checkpoint else f"@best:{train_dir}"
    evaluate = [script("dpdeblur-eval"), f"ckpt={ckpt}", "data=dpdd"]
    if data_root is not None:
        evaluate.append(f"data.root={data_root}")
    evaluate += list(recipe.get("eval_overrides") or [])
    evaluate.append(eval_trainer(scale, checkpoint, experiment, row, extra))
    evaluate += list(SMOKE_EVAL_OVERRIDES) if scale == "smoke" else []
    evaluate += eval_overrides(extra)
    commands.append(run_or_sweep(evaluate, sweep_dir / "eval", extra))
    return commands


def plan(
    table: str,
    data: Path | None,
    scale: str,
    runs_dir: Path,
    seeds: str | None = None,
    rows: str | None = None,
    extra: Sequence[str] = (),
) -> Plan:
    spec = load_table(table)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    sweep_dir = runs_dir / spec.name / (f"{stamp}-smoke" if scale == "smoke" else stamp)
    if scale == "smoke" and data is None:
        data = runs_dir / "synthetic_dpdd"
    elif data is None:
        env = os.environ.get("DPDD_ROOT")
        if not env:
            raise DataError(
                f"table '{spec.name}' trains on DPDD and no dataset was given",
                None,
                "pass DATA=/path/to/dd_dp_dataset_png (or SCALE=smoke for the synthetic check)",
            )
        data = Path(env)
    if scale == "full" and not data.is_dir():
        raise DataError("no such dataset folder", data, "pass DATA=/path/to/dd_dp_dataset_png")
    if spec.kind == "eval":
        commands = eval_commands(spec, data, sweep_dir, runs_dir, scale, extra)
    else:
        commands = [sweep_command(spec, data, sweep_dir, scale, seeds, rows, extra)]
    return Plan(spec, scale, sweep_dir, commands, data)


def _resolve_best(command: list[str]) -> list[str]:
    """Replace ``ckpt=@best:<folder>`` by the best checkpoint of the training run in that
    folder (a run directory, or a one-job sweep folder), known once it has trained."""
    out = []
    for arg in command:
        if arg.startswith("ckpt=@best:"):
            run_dir = Path(arg.split(":", 1)[1])
            checkpoint = best_checkpoint([run_dir], task_name="train")
            if checkpoint is None:
                raise DpdeblurError(
                    "the training run before the evaluation did not finish",
                    run_dir,
                    "see its metrics.json and log",
                )
            arg = f"ckpt={checkpoint}"
        out.append(arg)
    return out


def execute(the_plan: Plan) -> None:
    """Run the plan's commands (each job's failure is recorded in its run directory)."""
    if the_plan.data_root is not None and the_plan.scale == "smoke":
        write_smoke_data(the_plan.data_root)
    the_plan.sweep_dir.mkdir(parents=True, exist_ok=True)
    for command in the_plan.commands:
        command = _resolve_best(command)
        print("+ " + " ".join(command), flush=True)
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            raise DpdeblurError(
                f"{Path(command[0]).name} exited with status {result.returncode}",
                the_plan.sweep_dir,
                "read the error above; each job's metrics.json says why it failed",
            )


def write_results(
    spec: TableSpec, sweep_dir: Path, out_dir: Path, scale: str
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Render the table of the runs under ``sweep_dir`` as .md, .csv and .tex in ``out_dir``."""
    rows = collect_table(find_runs([sweep_dir]), spec)
    stem = spec.name + ("-smoke" if scale == "smoke" else "")
    comment = f"make reproduce-table; runs: {sweep_dir}"
    return rows, write_table_files(rows, spec, out_dir, stem, comment)


def write_table_files(
    rows: list[dict[str, Any]], spec: TableSpec, out_dir: Path, stem: str, comment: str
) -> dict[str, Path]:
    """``rows`` rendered as ``<stem>.md``, ``.csv`` and ``.tex`` in ``out_dir``, the
    Markdown headed by ``comment`` (how it was made); returns format -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for fmt in ("md", "csv", "tex"):
        path = out_dir / f"{stem}.{fmt}"
        text = render(rows, spec, fmt)
        if fmt == "md":
            text = f"<!-- {comment} -->\n{text}"
        path.write_text(text)
        written[fmt] = path
    return written


def unfilled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows we can run that have no finished run (reference-only rows are not counted)."""
    return [r for r in rows if r["status"] not in (STATUS_OK, STATUS_NOT_IMPLEMENTED)]


def reproduce(
    table: str,
    data: Path | None = None,
    scale: str = "full",
    out_dir: Path = RESULTS_DIR,
    runs_dir: Path | None = None,
    seeds: str | None = None,
    rows: str | None = None,
    extra: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Run a table's sweep and render it; returns the row dicts and the written files."""
    runs_dir = runs_dir or Path(os.environ.get("DPDEBLUR_OUTPUTS", "outputs")) / "reproduce"
    the_plan = plan(table, data, scale, runs_dir, seeds, rows, extra)
    execute(the_plan)
    return write_results(the_plan.table, the_plan.sweep_dir, out_dir, scale)


# -- cost estimate --------------------------------------------------------------------------

DPDD_TRAIN, DPDD_VAL, DPDD_SIZE = 350, 74, (1120, 1680)


def estimate_row(
    spec: TableSpec, row_id: str, tflops: float, count_size: int = 128
) -> dict[str, Any]:
    """GPU hours of one row: MACs counted on the CPU at ``count_size``^2 and scaled to the
    crop and to a DPDD validation image, times the recipe's samples, at ``tflops``."""
    row = spec.row(row_id)
    experiment = spec.experiment or spec.recipe.get("train_experiment")
    cfg = compose_config("train", [f"experiment={experiment}", f"row={row.run}"], Path("."))
    model = model_from_config(OmegaConf.to_container(cfg.model, resolve=True))
    with torch.no_grad():
        macs = count_macs(model, (count_size, count_size)).complete_macs / count_size**2
    crop, epochs = int(cfg.data.crop_size), int(cfg.trainer.max_epochs)
    samples = epochs * DPDD_TRAIN * int(cfg.data.train_repeats)
    train_flops = 3 * 2 * macs * crop**2 * samples  # forward + backward ~ 3 forwards
    validations = epochs // int(cfg.trainer.check_val_every_n_epoch)
    val_flops = 2 * macs * DPDD_SIZE[0] * DPDD_SIZE[1] * DPDD_VAL * validations
    hours = (train_flops + val_flops) / (tflops * 1e12) / 3600
    return {
        "row": row.id,
        "model": str(cfg.model.name),
        "gmacs_per_crop": macs * crop**2 / 1e9,
        "crop": crop,
        "samples": samples,
        "epochs": epochs,
        "gpu_hours": hours,
    }


def estimate(table: str, tflops: float) -> list[dict[str, Any]]:
    """:func:`estimate_row` for every row of ``table`` that we can train."""
    spec = load_table(table)
    return [estimate_row(spec, r.id, tflops) for r in spec.rows if r.implemented]
