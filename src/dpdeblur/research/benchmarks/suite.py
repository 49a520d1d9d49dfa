"""``dpdeblur-bench all``: the plan (which model gets which measurement) and its run.

Every selected registry model gets its parameters and its MACs at 256x256 (complete and op
by op, :mod:`dpdeblur.research.benchmarks.macs`). The main models (the papers' networks at full width:
``dpanet``, ``k3dn``, ``k3dn_light``, ``k3dn_tiny``, ``restormer_dp``, and the ``dpdnet``
baseline; ``ModelInfo.main_benchmark`` in the registry) also get:

- inference forward seconds and forward+backward seconds at 256x256 (training mode, with
  the project's loss);
- full-resolution (1120x1680) inference seconds and peak memory;
- training samples/s: optimiser steps at the default crop and batch of
  ``conf/data/dpdd.yaml`` (512, 4) where that fits the step budget; on the CPU the largest
  crop, then batch, whose step estimated from the forward+backward time per pixel fits
  ``train_budget_s`` is measured instead, and the rate at the default crop is extrapolated
  by pixel count;
- on a GPU: bf16/fp16 autocast, ``channels_last`` and ``torch.compile`` variants, and the
  operators that stay in float32 under autocast.

The ablation variants differ from their main model in a few layers, which their MACs
show; timing them too would double the run on a 2-core CPU (docs/benchmarks.md, "What
``make bench`` measures"), so they are timed only when named with
``--main-models``. Then the data path: training crops from PNG vs the ``.npy`` cache
(:mod:`dpdeblur.research.benchmarks.data`).

Results go to ``bench.json`` (rewritten after every model, so an interrupted run keeps
what it measured) and ``bench.md``; both say which machine, settings and load they came
from.
"""

from __future__ import annotations

import datetime
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from dpdeblur.hardware import describe_machine, load_average
from dpdeblur.models import list_models
from dpdeblur.research.benchmarks import timing
from dpdeblur.research.benchmarks.data import measure_data_path
from dpdeblur.research.benchmarks.fullres import measure_full_resolution
from dpdeblur.research.benchmarks.macs import count_macs, count_params
from dpdeblur.research.benchmarks.precision import gpu_variants
from dpdeblur.research.benchmarks.report import render_markdown
from dpdeblur.research.benchmarks.selection import build_model
from dpdeblur.training.config import config_dir

# The registry marks the main set (ModelInfo.main_benchmark): the papers' networks.
MAIN_MODELS = tuple(list_models(main_benchmark=True))
SECTIONS = ("cost", "forward", "backward", "fullres", "train", "gpu", "data")


def default_training_shape() -> tuple[int, int]:
    """(crop, batch) of DPDD training in ``conf/data/dpdd.yaml``."""
    data = OmegaConf.load(config_dir() / "data" / "dpdd.yaml")
    return int(data.crop_size), int(data.batch_size)


@dataclass
class DataPlan:
    """Settings of the data-path measurement (see :mod:`dpdeblur.research.benchmarks.data`)."""

    images: int = 6
    size: tuple[int, int] = (1120, 1680)
    crop: int = 512
    samples: int = 48
    workers: int = 2


@dataclass
class BenchPlan:
    """What ``dpdeblur-bench all`` measures, and at which sizes."""

    models: list[str]
    main_models: list[str]
    device: str = "cpu"
    size: tuple[int, int] = (256, 256)
    full_res_size: tuple[int, int] = (1120, 1680)
    repeat: int = 1
    train_budget_s: float = 8.0
    train_steps: int = 1
    default_crop: int = 512
    default_batch: int = 4
    threads: int | None = None
    sections: tuple[str, ...] = SECTIONS
    quick: bool = False
    data: DataPlan = field(default_factory=DataPlan)

    @classmethod
    def build(
        cls,
        models: list[str],
        main_models: list[str] | None = None,
        quick: bool = False,
        **overrides,
    ) -> BenchPlan:
        """A plan for ``models``; ``quick`` shrinks every size (for tests and smoke runs)."""
        crop, batch = default_training_shape()
        main = [m for m in (MAIN_MODELS if main_models is None else main_models) if m in models]
        settings: dict = {"default_crop": crop, "default_batch": batch}
        if quick:
            settings.update(
                size=(64, 64),
                full_res_size=(96, 144),
                train_budget_s=1.0,
                data=DataPlan(images=2, size=(96, 144), crop=32, samples=4, workers=0),
            )
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(models=list(models), main_models=main, quick=quick, **settings)

    def describe(self) -> dict:
        described = asdict(self)
        described["size"] = list(self.size)
        described["full_res_size"] = list(self.full_res_size)
        return described


def _write(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "bench.md").write_text(render_markdown(results))


class _Sections:
    """Wall seconds spent per section, summed over models."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds = seconds

    def run(self, name: str, measure: Callable[[], object]):
        start = time.perf_counter()
        try:
            return measure()
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def measure_model(name: str, plan: BenchPlan, sections: _Sections, log=print) -> dict:
    """Every measurement ``plan`` asks of one model (see the module docstring)."""
    device = torch.device(plan.device)
    main = name in plan.main_models
    entry: dict = {"model": name, "main": main, "load_average": {"start": load_average()}}
    started = time.perf_counter()
    model = build_model(name).to(device)
    entry["params"] = count_params(model)
    if "cost" in plan.sections:
        report = sections.run("cost", lambda: count_macs(model, plan.size, name=name))
        entry.update({k: v for k, v in report.to_dict().items() if k != "model"})
    if main and "forward" in plan.sections:
        entry["forward_s"] = sections.run(
            "forward", lambda: timing.forward_seconds(model, plan.size, device, plan.repeat)
        )
        log(f"  {name}: forward {entry['forward_s']:.2f} s at {plan.size[0]}x{plan.size[1]}")
    if main and "backward" in plan.sections:
        entry["forward_backward_s"] = sections.run(
            "backward",
            lambda: timing.forward_backward_seconds(model, plan.size, device, plan.repeat),
        )
        log(f"  {name}: forward+backward {entry['forward_backward_s']:.2f} s")
    if main and "train" in plan.sections:
        entry["train"] = sections.run("train", lambda: _train(model, entry, plan, device))
        log(
            f"  {name}: training {entry['train']['samples_per_s']:.3f} samples/s "
            f"(crop {entry['train']['crop']}, batch {entry['train']['batch']})"
        )
    if main and "gpu" in plan.sections and device.type == "cuda":
        entry["gpu_variants"] = sections.run(
            "gpu", lambda: gpu_variants(model, plan.size, device, plan.repeat)
        )
    model = None  # free the weights before the full-resolution run
    if main and "fullres" in plan.sections:
        entry["full_res"] = sections.run(
            "fullres",
            lambda: measure_full_resolution(
                name, plan.full_res_size, device, plan.repeat, plan.threads
            ),
        )
        log(
            f"  {name}: full resolution {entry['full_res']['seconds']:.1f} s, "
            f"peak {entry['full_res']['peak_mib']:.0f} MiB"
        )
    entry["seconds"] = time.perf_counter() - started
    entry["load_average"]["end"] = load_average()
    return entry


def _train(model, entry: dict, plan: BenchPlan, device: torch.device) -> dict:
    if device.type == "cuda":
        return _train_gpu(model, plan, device).to_dict()
    if "forward_backward_s" in entry:
        per_pixel = entry["forward_backward_s"] / (plan.size[0] * plan.size[1])
        basis = "forward+backward"
    else:
        per_pixel = 3 * entry.get("forward_s", math.inf) / (plan.size[0] * plan.size[1])
        basis = "3 x forward"
    crop, batch = timing.choose_train_crop(
        per_pixel, plan.default_crop, plan.default_batch, plan.train_budget_s
    )
    rule = (
        f"largest crop <= {plan.default_crop}, then batch <= {plan.default_batch}, whose step "
        f"estimated from the {basis} time per pixel fits {plan.train_budget_s:g} s"
    )
    step = timing.train_step(
        model,
        crop,
        batch,
        device,
        plan.default_crop,
        plan.default_batch,
        plan.train_steps,
        rule,
    )
    return step.to_dict()


def _train_gpu(model, plan: BenchPlan, device: torch.device):
    """The default crop and batch; on out-of-memory, half the crop (down to 64)."""
    crop = plan.default_crop
    while True:
        try:
            rule = "default crop and batch" if crop == plan.default_crop else "halved on OOM"
            return timing.train_step(
                model,
                crop,
                plan.default_batch,
                device,
                plan.default_crop,
                plan.default_batch,
                plan.train_steps,
                rule,
            )
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if crop <= 64:
                raise
            crop //= 2


def run_bench(plan: BenchPlan, out_dir: Path, log=print) -> dict:
    """Measure everything ``plan`` asks for; write ``bench.json`` and ``bench.md``."""
    started = time.perf_counter()
    if plan.threads:
        torch.set_num_threads(plan.threads)
    results: dict = {
        "command": " ".join(["dpdeblur-bench", *sys.argv[1:]])
        if Path(sys.argv[0]).name == "dpdeblur-bench"
        else None,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": describe_machine(plan.device),
        "settings": plan.describe(),
        "load_average": {"start": load_average()},
        "models": [],
        "data": None,
        "section_seconds": {},
    }
    sections = _Sections(results["section_seconds"])
    for name in plan.models:
        log(f"{name} ({'main model' if name in plan.main_models else 'parameters and MACs'})")
        results["models"].append(measure_model(name, plan, sections, log))
        _write(results, out_dir)
    if "data" in plan.sections:
        log("data path: PNG vs .npy cache")
        d = plan.data
        results["data"] = sections.run(
            "data",
            lambda: measure_data_path(
                None, d.images, d.size, d.crop, d.samples, d.workers, log=log
            ),
        )
    results["load_average"]["end"] = load_average()
    results["total_s"] = time.perf_counter() - started
    _write(results, out_dir)
    return results
