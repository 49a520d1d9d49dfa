"""``dpdeblur-convert MODEL SRC OUT``: load an author-released checkpoint into our model.

    dpdeblur-convert dpanet final.pth weights/dpanet_release.pt

The release's keys are renamed to this package's modules; a checkpoint that does not map
completely is refused with the missing and unexpected keys named (see dpdeblur.runs.releases.dpanet).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dpdeblur.cli.common import run_cli


def build_parser() -> argparse.ArgumentParser:
    from dpdeblur.runs.releases.dpanet import CONVERTERS

    parser = argparse.ArgumentParser(prog="dpdeblur-convert", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(CONVERTERS), help="which release")
    parser.add_argument("src", type=Path, help="the released checkpoint (e.g. final.pth)")
    parser.add_argument("out", type=Path, help="where to write the converted weights (.pt)")
    return parser


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        from dpdeblur.runs.releases.dpanet import CONVERTERS

        args = build_parser().parse_args(argv)
        out = CONVERTERS[args.model](args.src, args.out)
        print(f"converted {args.src} -> {out} ({args.model})")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    raise SystemExit(main())
