"""``dpdeblur-bench cost``: parameters and MACs of registered models, op by op.

    dpdeblur-bench cost --model dpanet --size 256 256
    dpdeblur-bench cost --model all --size 256 256 --json experiments/results/cost.json
    dpdeblur-bench cost --model 'dpanet*' --size 64 64 --width 0.25

Prints a Markdown table: parameters, GMACs per operator class (plain convs, same-padding
convs, deformable convs, correlation, ...), the complete count and the ``thop``-like count
that papers report (see :mod:`dpdeblur.research.benchmarks.macs`).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
from pathlib import Path

import torch

from dpdeblur.errors import DpdeblurError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="parameters and MACs (complete and thop-like) of registered models",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--model",
        nargs="+",
        default=["all"],
        metavar="NAME",
        help="registry names, shell patterns ('dpanet*') or 'all' (default: all)",
    )
    parser.add_argument(
        "--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"), help="input size"
    )
    parser.add_argument(
        "--width",
        type=float,
        default=None,
        help="width override: DPANet's channel multiplier, K3DN's base channels",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also save as JSON")
    parser.set_defaults(func=run)


def _resolve(patterns: list[str], known: list[str]) -> list[str]:
    names: list[str] = []
    for pattern in patterns:
        matched = known if pattern == "all" else fnmatch.filter(known, pattern)
        if not matched:
            raise DpdeblurError(
                f"no registered model matches {pattern!r}",
                fix=f"choose from: {', '.join(known)}",
            )
        names += [n for n in matched if n not in names]
    return names


def run(args: argparse.Namespace) -> int:
    from dpdeblur.models import create_model, list_models
    from dpdeblur.research.benchmarks.macs import count_macs, format_table

    height, width = args.size
    if height < 1 or width < 1:
        raise DpdeblurError(f"--size must be positive, got {height} {width}")
    names = _resolve(args.model, list_models())
    overrides = {} if args.width is None else {"width": args.width}
    reports = []
    for name in names:
        torch.manual_seed(0)
        try:
            model = create_model(name, **overrides)
        except (TypeError, ValueError) as err:
            raise DpdeblurError(
                f"cannot build {name} with {overrides}: {err}",
                fix="--width is DPANet's channel multiplier (e.g. 0.25) and K3DN's base width (e.g. 16)",
            ) from None
        reports.append(count_macs(model, (height, width), name=name))
        del model
    print(format_table(reports))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "size": [height, width],
            "width": args.width,
            "unit": "MACs (multiply-accumulates); FLOPs = 2 x MACs",
            "models": [r.to_dict() for r in reports],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"saved {args.json}")
    return 0
