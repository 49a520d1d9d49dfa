"""``dpdeblur-table RUNS... [--table NAME] [--format md|csv|tex]``: paper tables from runs.

Reads run directories (a run, a multirun with numbered jobs, or any folder above them such
as ``outputs/``), matches the runs to the rows of a paper's table and prints ours beside the
paper's numbers with the differences. Without ``--table`` it renders every table the runs
were made for (their ``table`` config key). Rows not run, failed or unfinished are shown as
such. docs/reproduce.md has the tables, the matching rule and the CSV columns.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dpdeblur.cli.common import run_cli
from dpdeblur.research.tables.render import render_tables


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpdeblur-table",
        description="Render a paper's table from run directories, beside the paper's numbers.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run, multirun or output folders")
    parser.add_argument(
        "--table",
        action="append",
        help="table name (dpanet-1..4, k3dn-ablation, or a YAML path); repeatable; "
        "default: the tables the runs were made for",
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
        text = render_tables(args.runs, args.table, args.format, args.split, args.protocol)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text)
            print(f"wrote {args.out}")
        else:
            print(text, end="")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    raise SystemExit(main())
