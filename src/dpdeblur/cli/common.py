"""Shared behaviour of the console scripts: one-line errors and non-zero exits."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from dpdeblur.errors import DpdeblurError


def run_cli(main: Callable[[], int | None]) -> int:
    """Run ``main`` and map user errors to ``error: ...`` on stderr and exit status 2.

    Unexpected exceptions still show a traceback: they are bugs, and hiding them would make
    them harder to report. Ctrl-C exits with 130 and no traceback.
    """
    try:
        code = main()
    except DpdeblurError as err:
        print(f"error: {err.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def run_subcommand(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand's ``func(args)`` under :func:`run_cli`."""

    def _run() -> int:
        args = parser.parse_args(argv)
        return args.func(args)

    return run_cli(_run)
