"""``dpdeblur-deblur``: deblur DP pairs at full resolution with a trained or released model.

    dpdeblur-deblur --ckpt run/last.ckpt --left scene_L.png --right scene_R.png -o sharp.png
    dpdeblur-deblur --ckpt dpanet_release.pt --input dd_dp_dataset_png -o out/ --panel
    dpdeblur-deblur --ckpt final.pth --input pixel/ -o out/ --tile 512 --overlap 128

Every pair is written as a 16-bit PNG (``--bits 8`` for 8-bit) named after the pair. A pair
that cannot be read or written is reported on one line and skipped, the others are done,
and the run ends with a summary and exit status 2. Pairs run as they lie, except those of
a PIXEL folder (or any, with ``--pixel-portrait``): portrait PIXEL captures run in
landscape and are turned back. See docs/deblur.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Before torch loads: passive OpenMP waiting keeps shared cores from stalling.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dpdeblur.cli.common import run_cli
from dpdeblur.errors import CheckpointError, ConfigError, DataError, DpdeblurError

# Hints of the shared checkpoint loader written for the Hydra tools, in this tool's flags.
_FLAG_SYNTAX = {
    "ckpt=...": "--ckpt PATH",
    "model=<registry name>": "--model NAME",
    "pass the matching model": "pass the --model NAME (and --model-arg KEY=VALUE) it was "
    "trained with",
}


def _gib(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of GiB: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the memory budget must be positive")
    return int(value * 2**30)


def _model_arg(text: str) -> tuple[str, object]:
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpdeblur-deblur",
        description="Deblur DP pairs at full resolution with a trained or released model.",
        epilog="Details, tiling margins per model and measured memory: docs/deblur.md",
    )
    source = parser.add_argument_group("input (one pair, or a folder)")
    source.add_argument("--left", type=Path, metavar="L", help="left DP view of one pair")
    source.add_argument("--right", type=Path, metavar="R", help="right DP view of one pair")
    source.add_argument(
        "--input",
        type=Path,
        metavar="DIR",
        help="a DPDD tree, a PIXEL folder ({split}_l/source, inputL), or a folder of "
        "*_L.png / *_R.png pairs",
    )
    source.add_argument("--split", default="test", help="split of a DPDD/PIXEL tree (test)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--ckpt",
        type=Path,
        required=True,
        metavar="PATH",
        help="Lightning .ckpt, dpdeblur-convert output, state dict, or DPANet's final.pth",
    )
    model.add_argument(
        "--model",
        metavar="NAME",
        help="registry name; needed for a plain state dict, checked otherwise",
    )
    model.add_argument(
        "--model-arg",
        type=_model_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="constructor argument for --model (repeatable), e.g. width=0.25",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("deblurred"),
        metavar="PATH_OR_DIR",
        help="folder (default: deblurred/), or x.png for one pair",
    )
    output.add_argument("--bits", type=int, choices=(8, 16), default=16, help="PNG bit depth")
    output.add_argument(
        "--panel", action="store_true", help="also write <name>_panel.png: left | right | output"
    )
    orientation = output.add_mutually_exclusive_group()
    orientation.add_argument(
        "--pixel-portrait",
        action="store_true",
        help="the pairs are PIXEL captures: run portrait ones in landscape and turn the "
        "result back (default only for a PIXEL folder: {split}_l/source, inputL)",
    )
    orientation.add_argument(
        "--keep-orientation",
        action="store_true",
        help="run every pair as it lies, a PIXEL folder's too",
    )
    run = parser.add_argument_group("running")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (auto)")
    run.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast dtype"
    )
    run.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="SIZE",
        help="square tiles of SIZE px; 0 never tiles (default: tile only if needed)",
    )
    run.add_argument(
        "--overlap", type=int, default=None, metavar="PX", help="pixels shared by neighbour tiles"
    )
    run.add_argument(
        "--max-memory",
        type=_gib,
        default=None,
        metavar="GIB",
        help="memory budget for automatic tiling (default: half the free RAM / 80%% of GPU)",
    )
    run.add_argument(
        "--flip-ensemble",
        action="store_true",
        help="average over the 4 DP-valid flips of each pair (4x the time; docs/deblur.md)",
    )
    run.add_argument(
        "--release-protocol",
        default=None,
        metavar="NAME",
        help="run the model as its authors' evaluation did (k3dn: resize to 1152x1792 and "
        "back, whole images, never tiled; dpanet: 8-bit views; docs/weights.md)",
    )
    run.add_argument(
        "--input-bits",
        type=int,
        choices=(8, 16),
        default=16,
        help="8: feed the model the views as an 8-bit read gives them, floor(v16/256)/255, "
        "as DPANet's release was trained (16: as they are)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _records(args: argparse.Namespace):
    from dpdeblur.inference.sources import FoundPairs, folder_records, pair_record

    if args.input is not None:
        if args.left is not None or args.right is not None:
            raise ConfigError("pass either --input or --left/--right, not both")
        return folder_records(args.input, args.split)
    if args.left is None or args.right is None:
        raise ConfigError("no input", fix="pass --left L --right R, or --input DIR")
    record = pair_record(args.left, args.right)
    for path in (record.left, record.right):
        if not path.is_file():
            raise DataError("image file not found", path, "check the --left/--right paths")
    return FoundPairs([record], "one pair", pixel=False)


def _load_model(args: argparse.Namespace, kwargs: dict):
    """The checkpoint's model, with the loader's errors in this tool's flags."""
    from dpdeblur.runs.checkpoints import load_model

    ckpt = args.ckpt.expanduser()
    if not ckpt.is_file():
        what = "is a folder, not a checkpoint file" if ckpt.is_dir() else "checkpoint not found"
        raise CheckpointError(what, ckpt, "check the --ckpt path")
    try:
        return load_model(ckpt, args.model, kwargs)
    except CheckpointError as err:
        fix = err.fix
        for hydra, flag in _FLAG_SYNTAX.items():
            fix = fix.replace(hydra, flag) if fix else fix
        raise CheckpointError(err.problem, err.path, fix) from None


def _deblur_one(record, runner, options, args, folder, file, pixel: bool) -> str:
    """Read, restore and write one pair; returns a short note on the tiling used."""
    from dpdeblur.data.io import to_tensor
    from dpdeblur.inference.outputs import result_path, write_result
    from dpdeblur.inference.sources import read_pair
    from dpdeblur.inference.views import to_model_views

    pair = read_pair(record, with_target=args.panel)
    left, right, view = to_model_views(pair.left, pair.right, pixel, pair.channels)
    restored, plan = runner(to_tensor(left), to_tensor(right), options, not args.quiet)
    image = view.restore(restored.clamp(0.0, 1.0).permute(1, 2, 0).numpy())
    panel = None
    if args.panel:
        panel = [pair.left, pair.right, image]
        if pair.target is not None and pair.target.shape[:2] == image.shape[:2]:
            panel.append(pair.target)
    write_result(result_path(folder, file, record.name), image, args.bits, panel)
    return ("rotated, " if view.rotated else "") + plan.describe()


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from dpdeblur.inference.engine import Deblurrer, TileOptions, resolve_device
    from dpdeblur.inference.outputs import prepare_output
    from dpdeblur.models.ensemble import FlipEnsemble
    from dpdeblur.models.release_protocol import InputBits, ReleaseProtocol, check_release_protocol
    from dpdeblur.runs.checkpoints import describe

    if args.release_protocol is not None:
        protocol = check_release_protocol(args.release_protocol, "--release-protocol {}")
        if args.tile and protocol.size is not None:
            raise ConfigError(
                "--release-protocol resizes whole images and cannot be tiled",
                fix="drop --tile (or pass --tile 0)",
            )
    found = _records(args)
    records = found.records
    pixel = (found.pixel or args.pixel_portrait) and not args.keep_orientation
    folder, file = prepare_output(args.output, pairs=len(records))
    device = resolve_device(args.device)
    kwargs = dict(args.model_arg)
    if kwargs and args.model is None:
        raise ConfigError("--model-arg needs --model", fix="pass --model NAME")
    model, info = _load_model(args, kwargs)
    if args.input_bits != 16:
        model = InputBits(model, args.input_bits)
    if args.release_protocol is not None:
        model = ReleaseProtocol(model, args.release_protocol)
        args.tile = 0 if model.resizes else args.tile
    if args.flip_ensemble:
        model = FlipEnsemble(model)
    runner = Deblurrer(model, device, args.precision)
    options = TileOptions(args.tile, args.overlap, args.max_memory)
    runner.plan(1 << 16, 1 << 16, options)  # bad --tile/--overlap/--max-memory: fail once, now
    print(
        f"{len(records)} pair(s) ({found.layout}"
        + ("; portrait PIXEL captures run in landscape" if pixel else "")
        + f"); {describe(info)}; {device}, {args.precision}"
        + (", flip ensemble x4" if args.flip_ensemble else "")
        + (f", {args.release_protocol} release protocol" if args.release_protocol else "")
        + (f", {args.input_bits}-bit input" if args.input_bits != 16 else "")
    )

    failures: list[tuple[str, str]] = []
    notes: dict[str, int] = {}
    start = time.perf_counter()
    bar = tqdm(records, desc="pairs", unit="pair", disable=args.quiet or len(records) == 1)
    for record in bar:
        try:
            note = _deblur_one(record, runner, options, args, folder, file, pixel)
        except DpdeblurError as err:
            failures.append((record.name, err.one_line()))
            tqdm.write(f"error: {err.one_line()}", file=sys.stderr)
            continue
        notes[note] = notes.get(note, 0) + 1
    seconds = time.perf_counter() - start
    done = len(records) - len(failures)
    how = "; ".join(f"{n} x {note}" for note, n in notes.items())
    if done or len(records) > 1:
        detail = f" ({how})" if how else ""
        print(f"wrote {done} of {len(records)} in {seconds:.1f} s to {file or folder}{detail}")
    if failures:
        if len(records) > 1:
            print(f"{len(failures)} failed:", file=sys.stderr)
            for name, line in failures:
                print(f"  {name}: {line}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    return run_cli(lambda: _run(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
