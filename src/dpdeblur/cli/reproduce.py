"""``dpdeblur-reproduce``: run a paper table's sweep and render it beside the paper.

dpdeblur-reproduce --table dpanet-4 --data /data/dd_dp_dataset_png [--seeds 0,1,2] [-- OVERRIDES]
dpdeblur-reproduce --table dpanet-4 --scale smoke      # the same sweep, tiny, on the CPU
dpdeblur-reproduce --table dpanet-4 --estimate         # GPU hours per row
dpdeblur-reproduce --table dpanet-1 --weights DIR --data DPDD  # released weights, no training

``make reproduce-table`` runs it. The planning and running live in
:mod:`dpdeblur.research.reproduce`; docs/reproduce.md has the tables and the recipes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dpdeblur.cli.common import run_cli
from dpdeblur.errors import DpdeblurError
from dpdeblur.research.released import reproduce_released
from dpdeblur.research.reproduce import RESULTS_DIR, SCALES, estimate, reproduce, unfilled


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpdeblur-reproduce",
        description="Run a paper table's sweep and render it beside the paper's numbers.",
    )
    parser.add_argument("--table", required=True, help="dpanet-1..4 or k3dn-ablation")
    parser.add_argument("--data", type=Path, help="DPDD root (dd_dp_dataset_png)")
    parser.add_argument(
        "--weights",
        type=Path,
        help="a folder of the authors' released checkpoints: score them, train nothing",
    )
    parser.add_argument("--scale", choices=SCALES, default="full")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where the table goes")
    parser.add_argument("--runs-dir", type=Path, help="where the runs go (outputs/reproduce)")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    parser.add_argument("--rows", help="comma-separated rows to run (default: all)")
    parser.add_argument("--estimate", action="store_true", help="print GPU hours per row")
    parser.add_argument(
        "--tflops", type=float, default=100.0, help="sustained training TFLOP/s (--estimate)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="more Hydra overrides for every job (after --)"
    )
    return parser


def print_estimate(table: str, tflops: float) -> None:
    for item in estimate(table, tflops):
        print(
            f"{item['row']:<18} {item['model']:<16} {item['gmacs_per_crop']:8.0f} GMACs/crop "
            f"x {item['samples']:>9,} samples: {item['gpu_hours']:6.1f} GPU h "
            f"at {tflops:g} TFLOP/s"
        )


def reproduce_table(args: argparse.Namespace) -> int:
    """Run the sweep, write the table; an error when a row we can run is not filled."""
    rows, written = reproduce(
        args.table,
        args.data,
        args.scale,
        args.out,
        args.runs_dir,
        args.seeds,
        args.rows,
        args.overrides,
    )
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    missing = unfilled(rows)
    if missing:
        summary = ", ".join(f"{r['row']} ({r['status']})" for r in missing)
        raise DpdeblurError(
            f"{len(missing)} of {len(rows)} rows are not filled: {summary}",
            written["md"],
            "see the table's Note column and each job's metrics.json",
        )
    return 0


def reproduce_from_weights(args: argparse.Namespace) -> int:
    """Score the released checkpoints in ``--weights`` and write the table; rows whose
    file is absent are "not found" in it, not an error."""
    if args.data is None:
        raise DpdeblurError(
            "scoring released weights needs the DPDD test split",
            args.weights,
            "pass DATA=/path/to/dd_dp_dataset_png (--data)",
        )
    runs_dir = args.runs_dir or Path(os.environ.get("DPDEBLUR_OUTPUTS", "outputs")) / "reproduce"
    rows, written = reproduce_released(
        args.table, args.weights, args.data, args.out, runs_dir, args.overrides
    )
    print(f"wrote {', '.join(str(p) for p in written.values())}")
    for row in rows:
        print(f"  {row['label']}: {row['status']}" + (f" ({row['note']})" if row["note"] else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    def run() -> int:
        args = build_parser().parse_args(argv)
        if args.estimate:
            print_estimate(args.table, args.tflops)
            return 0
        if args.weights is not None:
            return reproduce_from_weights(args)
        return reproduce_table(args)

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
