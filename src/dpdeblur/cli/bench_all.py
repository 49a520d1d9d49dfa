"""``dpdeblur-bench all``: every benchmark in one run (``make bench``).

    dpdeblur-bench all --out experiments/results                  # what make bench runs
    dpdeblur-bench all --models 'k3dn*' dpdnet --skip fullres data
    dpdeblur-bench all --quick --models dpdnet --out /tmp/bench   # shrunken sizes, seconds

Writes ``bench.json`` and ``bench.md`` into ``--out``: per registry model, parameters and
MACs (complete and op by op) at 256x256; for the main models also forward and
forward+backward seconds at 256x256, full-resolution (1120x1680) inference seconds and peak
memory, and training samples/s; then the data loader's samples/s (PNG vs ``.npy`` cache). On a
GPU (``--device cuda``, the default when one is visible) the main models also get bf16/fp16
autocast, ``channels_last`` and ``torch.compile`` variants. :mod:`dpdeblur.research.benchmarks.suite`
says exactly what is measured and why.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dpdeblur.errors import DpdeblurError


def register(subparsers: argparse._SubParsersAction) -> None:
    from dpdeblur.research.benchmarks.suite import MAIN_MODELS, SECTIONS

    parser = subparsers.add_parser(
        "all",
        help="every benchmark: cost, timings, full resolution, training, data (make bench)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--out", type=Path, default=Path("experiments/results"), help="folder for bench.json/.md"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help="registry names, shell patterns or 'all' (default: all)",
    )
    parser.add_argument(
        "--main-models",
        nargs="*",
        default=list(MAIN_MODELS),
        metavar="NAME",
        help="models that also get backward, full-res and training figures "
        f"(default: {' '.join(MAIN_MODELS)})",
    )
    parser.add_argument("--quick", action="store_true", help="shrink every size (smoke test)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if visible)")
    parser.add_argument("--size", nargs=2, type=int, default=None, metavar=("H", "W"))
    parser.add_argument("--full-res-size", nargs=2, type=int, default=None, metavar=("H", "W"))
    parser.add_argument("--repeat", type=int, default=None, help="timed runs (fastest kept)")
    parser.add_argument(
        "--train-budget",
        type=float,
        default=None,
        metavar="S",
        help="CPU: largest estimated training step to time, in seconds (default 8)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=SECTIONS,
        metavar="SECTION",
        help=", ".join(SECTIONS),
    )
    parser.set_defaults(func=run)


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DpdeblurError(
            f"--device {name}: no CUDA device is visible", fix="use --device cpu (or auto)"
        )
    if name != "cpu" and not name.startswith("cuda"):
        raise DpdeblurError(f"--device {name} is not supported", fix="use cpu, cuda or auto")
    return name


def run(args: argparse.Namespace) -> int:
    from dpdeblur.cli.bench_cost import _resolve
    from dpdeblur.models import list_models
    from dpdeblur.research.benchmarks.suite import SECTIONS, BenchPlan, run_bench

    known = list_models()
    models = _resolve(args.models, known)
    main_models = _resolve(args.main_models, known)
    for size in (args.size, args.full_res_size):
        if size is not None and min(size) < 1:
            raise DpdeblurError(f"sizes must be positive, got {size[0]} {size[1]}")
    plan = BenchPlan.build(
        models,
        main_models,
        quick=args.quick,
        device=_device(args.device),
        size=tuple(args.size) if args.size else None,
        full_res_size=tuple(args.full_res_size) if args.full_res_size else None,
        repeat=args.repeat,
        train_budget_s=args.train_budget,
        threads=args.threads,
        sections=tuple(s for s in SECTIONS if s not in args.skip),
    )
    results = run_bench(plan, args.out)
    print(
        f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'} in {results['total_s']:.0f} s"
    )
    return 0
