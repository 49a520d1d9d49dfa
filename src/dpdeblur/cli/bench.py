"""``dpdeblur-bench``: cost accounting and benchmarks, one subcommand each.

Subcommands live in their own modules, each exposing ``register(subparsers)`` that adds its
parser and sets ``func(args) -> int``; they are imported here so ``--help`` lists them all.
"""

from __future__ import annotations

import argparse
import importlib

from dpdeblur.cli.common import run_subcommand

SUBCOMMAND_MODULES = (
    "dpdeblur.cli.bench_cost",  # dpdeblur-bench cost --model NAME --size H W
    "dpdeblur.cli.bench_data",  # dpdeblur-bench data: loader samples/s, PNG vs cache
    "dpdeblur.cli.bench_all",  # dpdeblur-bench all: everything above + timings (make bench)
    "dpdeblur.cli.bench_figures",  # dpdeblur-bench figures: PSNR vs size, per-image gains
    "dpdeblur.cli.bench_profile",  # dpdeblur-bench profile: where a step's time goes
    "dpdeblur.cli.bench_cpu_train",  # dpdeblur-bench cpu-train: layout x precision on the CPU
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpdeblur-bench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name == module_name:
                continue  # subcommand not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
