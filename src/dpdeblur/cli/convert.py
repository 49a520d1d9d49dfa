"""``dpdeblur-convert MODEL SRC OUT``: the authors' released weights as a dpdeblur weights file.

    dpdeblur-convert dpanet final.pth weights/dpanet_release.pt
    dpdeblur-convert k3dn best.pt weights/k3dn_release.pt
    dpdeblur-convert dpdnet defocus_deblurring_dp_l5_s512_f0.7_d0.4.hdf5 weights/dpdnet.pt
    dpdeblur-convert restormer_dp dual_pixel_defocus_deblurring.pth weights/restormer_dp.pt

The release's keys are renamed to this package's modules; a checkpoint that does not map
completely is refused with the missing and unexpected keys named (see
:mod:`dpdeblur.runs.releases`). ``dpdeblur-deblur`` and ``dpdeblur-eval`` also read the
released files directly, converting them in memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dpdeblur.cli.common import run_cli
from dpdeblur.runs.checkpoints import convert_release
from dpdeblur.runs.releases import release_models


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpdeblur-convert", description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=release_models(), help="which release")
    parser.add_argument(
        "src",
        type=Path,
        help="the released checkpoint (final.pth, best.pt, *.hdf5, *.pth: dpdeblur-weights list)",
    )
    parser.add_argument("out", type=Path, help="where to write the converted weights (.pt)")
    return parser


def main(argv: list[str] | None = None) -> int:
    def _run() -> int:
        args = build_parser().parse_args(argv)
        out = convert_release(args.model, args.src, args.out)
        print(f"converted {args.src} -> {out} ({args.model})")
        return 0

    return run_cli(_run)


if __name__ == "__main__":
    raise SystemExit(main())
