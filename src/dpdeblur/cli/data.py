"""``dpdeblur-data``: dataset tools.

dpdeblur-data check ROOT [--kind auto|dpdd|pixel] [--split S ...] [--quick] [--allow-8bit]
dpdeblur-data synth --out DIR [--n N] [--size H W] [--seed S] [--layout official|restormer]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpdeblur.cli.common import run_subcommand
from dpdeblur.data.check import check_dataset
from dpdeblur.errors import DataError


def _check(args: argparse.Namespace) -> int:
    report = check_dataset(
        args.root,
        kind=args.kind,
        splits=tuple(args.split) if args.split else None,
        allow_8bit=args.allow_8bit,
        quick=args.quick,
        workers=args.workers,
    )
    print(report.render(problems=False))
    for problem in report.problems:  # once each, files with the same problem on one line
        print(f"error: {problem}", file=sys.stderr)
    return 0 if report.ok else 1


def _synth(args: argparse.Namespace) -> int:
    # Imported here for start-up time: the renderer needs torch, `check` and `--help` do not.
    from dpdeblur.data.writer import write_synthetic_dpdd

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise DataError("output folder is not empty", out, "choose a new --out or pass --overwrite")
    counts = write_synthetic_dpdd(
        out, args.n, tuple(args.size), seed=args.seed, layout=args.layout, kernel=args.kernel
    )
    height, width = args.size
    for split, count in counts.items():
        print(f"{split}: wrote {count} samples ({width}x{height}, 16-bit PNG)")
    print(f"layout: {args.layout} under {out}; check it with: dpdeblur-data check {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpdeblur-data", description="Dataset tools for dual-pixel deblurring."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    check = sub.add_parser("check", help="validate a DPDD or PIXEL root and summarise it")
    check.add_argument("root", help="dataset root (e.g. .../dd_dp_dataset_png)")
    check.add_argument("--kind", choices=("auto", "dpdd", "pixel"), default="auto")
    check.add_argument("--split", action="append", help="check only this split (repeatable)")
    check.add_argument(
        "--quick", action="store_true", help="read PNG headers only (no corruption check)"
    )
    check.add_argument(
        "--allow-8bit", action="store_true", help="8-bit files in DPDD are warnings, not errors"
    )
    check.add_argument("--workers", type=int, default=2, help="decoding threads")
    check.set_defaults(func=_check)

    synth = sub.add_parser(
        "synth", help="write a synthetic DP dataset in the DPDD layout (16-bit PNG)"
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument(
        "--n", type=int, default=40, help="samples in all, split 70/15/15 (default 40)"
    )
    synth.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--layout", choices=("official", "restormer"), default="official")
    synth.add_argument("--kernel", choices=("soft", "hard"), default="soft", help="DP kernel model")
    synth.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    synth.set_defaults(func=_synth)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
