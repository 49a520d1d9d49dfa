"""``dpdeblur-bench cpu-train``: a CPU training step in NCHW/NHWC, fp32/bf16, fused or not.

    dpdeblur-bench cpu-train --out experiments/results          # the demo's model
    dpdeblur-bench cpu-train --model dpanet --width 0.25 --crop 128 --batch 2

Writes ``bench_cpu_train.json`` and ``bench_cpu_train.md`` into ``--out`` and prints the
table (docs/training.md, "Speed on CPUs").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dpdeblur.errors import DpdeblurError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cpu-train",
        help="CPU training step: NCHW vs NHWC, fp32 vs bf16, fused AdamW",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--model", default=None, help="registry name (default: the demo's)")
    parser.add_argument("--width", type=float, default=None, help="width override")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    parser.set_defaults(func=run)


def demo_model_config() -> dict:
    """The demo experiment's model, as ``conf/experiment/demo.yaml`` composes it."""
    from omegaconf import OmegaConf

    from dpdeblur.training.config import compose_config

    cfg = compose_config("train", ["experiment=demo"], Path("."))
    config = OmegaConf.to_container(cfg.model, resolve=True)
    config.pop("_target_", None)
    return config


def _builder(args):
    from dpdeblur.models import create_model, is_model

    kwargs = demo_model_config() if args.model is None else {"name": args.model}
    name = kwargs.pop("name")
    if not is_model(name):
        raise DpdeblurError(f"unknown model {name!r}", fix="see dpdeblur-bench cost --model all")
    if args.width is not None:
        kwargs["width"] = args.width
    return name, kwargs, lambda: create_model(name, **kwargs)


def run(args) -> int:
    from dpdeblur.hardware import describe_machine
    from dpdeblur.research.benchmarks.cpu_training import cpu_training_variants, render_cpu_training

    name, kwargs, build = _builder(args)
    results = cpu_training_variants(build, args.batch, args.crop, args.steps)
    results.update(model=name, model_args=kwargs, machine=describe_machine("cpu"))
    title = f"CPU training step: {name} {kwargs}" if kwargs else f"CPU training step: {name}"
    table = render_cpu_training(results, title)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_cpu_train.json").write_text(json.dumps(results, indent=2))
    (args.out / "bench_cpu_train.md").write_text(table)
    print(table)
    print(f"wrote {args.out / 'bench_cpu_train.json'} and bench_cpu_train.md")
    return 0
