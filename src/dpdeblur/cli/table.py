"""``dpdeblur-table RUNS... [--table NAME] [--compare] [--format md|csv|tex]``: tables of runs.

Reads run directories (a run, a multirun with numbered jobs, or any folder above them such
as ``outputs/``). Any runs, any sweep: runs made for no paper table are compared with each
other, one row per setting, named by the overrides that differ between the rows, with the
mean and standard deviation over seeds (``dpdeblur-train -m loss=charbonnier,mse seed=0,1``
gives two rows of n=2). Runs made for a paper's table (their ``table`` config key) are
matched to its rows and printed beside the paper's numbers, with the differences where
the data is the paper's. ``--table NAME`` renders that paper table only; ``--compare``
compares every run, paper rows included. Rows not run, failed or unfinished are shown as
such. docs/reproduce.md has the tables, the matching and grouping rules and the CSV columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dpdeblur.cli.common import run_cli
from dpdeblur.data.files import write_text_atomic
from dpdeblur.errors import ConfigError, DpdeblurError
from dpdeblur.research.tables.render import render_tables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpdeblur-table",
        description="Tables of runs: any runs compared by the settings that differ (mean +- "
        "std over seeds), and runs of a paper's table beside the paper's numbers.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run, multirun or output folders")
    parser.add_argument(
        "--table",
        action="append",
        help="paper table name (dpanet-1..4, k3dn-ablation, or a YAML path); repeatable; "
        "default: the tables the runs were made for, and a comparison of the others",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="compare every run by the settings that differ, paper-table runs included",
    )
    parser.add_argument("--format", choices=("md", "csv", "tex"), default="md")
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument(
        "--protocol", help="only runs scored with this protocol (16bit, 8bit_trunc, half_res)"
    )
    parser.add_argument("--out", type=Path, help="write here instead of printing")
    return parser


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        args = build_parser().parse_args(argv)
        if args.table and args.compare:
            raise ConfigError(
                "--table and --compare exclude each other",
                fix="pass --table NAME for a paper's table, or --compare for all runs",
            )
        text = render_tables(
            args.runs, args.table, args.format, args.split, args.protocol, compare=args.compare
        )
        if args.out:
            try:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(args.out, text)
            except OSError as err:
                raise DpdeblurError(
                    f"cannot write the table ({err.strerror or type(err).__name__})",
                    args.out,
                    "pass a writable --out path",
                ) from None
            print(f"wrote {args.out}")
        else:
            print(text, end="")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    raise SystemExit(main())
