"""``dpdeblur-bench figures``: PSNR against parameters and MACs, per-image PSNR gains.

    dpdeblur-bench figures --out experiments/results                 # runs under outputs/
    dpdeblur-bench figures --runs outputs/train/multiruns/... --bench experiments/results/bench.json
    dpdeblur-bench figures --gain-runs outputs/eval/runs/2025-...    # gain figure of that run

Reference points are the DPANet paper's Table I (see :mod:`dpdeblur.research.figures.references`);
our points are the scored runs found under ``--runs`` (run directories, or folders searched
for ``metrics.json``; default: the log folder, ``$DPDEBLUR_OUTPUTS`` or ``outputs``, when it
exists). MACs of registry models come from ``--bench`` when it has them, else are counted.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_BENCH = Path("experiments/results/bench.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="PSNR vs parameters/MACs beside the papers, per-image PSNR gains (PNG + PDF)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--runs", nargs="*", type=Path, default=None, metavar="PATH")
    parser.add_argument("--out", type=Path, default=Path("experiments/results"))
    parser.add_argument(
        "--bench",
        type=Path,
        default=None,
        help=f"bench.json for registry models' MACs (default: {DEFAULT_BENCH} if present)",
    )
    parser.add_argument(
        "--references", type=Path, nargs="*", default=[], help="extra YAML reference points"
    )
    parser.add_argument(
        "--gain-runs",
        nargs="*",
        type=Path,
        default=None,
        metavar="PATH",
        help="runs to plot per-image gains of (default: the best-PSNR run with input PSNRs)",
    )
    parser.add_argument(
        "--size", nargs=2, type=int, default=[256, 256], metavar=("H", "W"), help="MACs at"
    )
    parser.add_argument(
        "--no-count", action="store_true", help="never count MACs (plot only sizes known)"
    )
    parser.set_defaults(func=run)


def _default_runs() -> list[Path]:
    """The log folder when it holds runs; else none (reference points only)."""
    from dpdeblur.research.tables.discover import is_run_dir

    log_dir = Path(os.environ.get("DPDEBLUR_OUTPUTS", "outputs"))
    if log_dir.is_dir() and any(is_run_dir(p) for p in (log_dir, *log_dir.glob("**/"))):
        return [log_dir]
    print(f"no runs under {log_dir}: reference points only (pass --runs PATH)")
    return []


def run(args: argparse.Namespace) -> int:
    from dpdeblur.research.figures.build import build_figures
    from dpdeblur.research.figures.references import load_references, published
    from dpdeblur.research.figures.sizes import SizeLookup

    if args.runs is None:
        args.runs = _default_runs()
    bench = args.bench
    if bench is None and DEFAULT_BENCH.is_file():
        bench = DEFAULT_BENCH
    sizes = SizeLookup.from_file(bench, size=tuple(args.size), count=not args.no_count)
    references = published()
    for path in args.references:
        references += load_references(path)
    manifest = build_figures(args.runs, args.out, sizes, references, args.gain_runs)
    print(
        f"{len(manifest['runs'])} runs, {len(manifest['references'])} reference points; wrote "
        + ", ".join(Path(f).name for f in manifest["files"])
    )
    return 0
