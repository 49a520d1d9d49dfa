"""``dpdeblur-weights``: the public dual-pixel deblurring releases, and what a file is.

    dpdeblur-weights list                 # every known release: file, source, format, ...
    dpdeblur-weights check FILE [FILE..]  # which release each file is, or why it is none

A file ``check`` recognises loads as it is everywhere a checkpoint is taken
(``dpdeblur-deblur --ckpt FILE``, ``dpdeblur-eval ckpt=FILE``, ``dpdeblur.deblur(FILE, ...)``):
it is converted in memory. docs/weights.md has the long form of the list.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dpdeblur.cli.common import run_subcommand
from dpdeblur.errors import CheckpointError
from dpdeblur.runs.checkpoints import WEIGHTS_FORMAT, load_model, read_checkpoint
from dpdeblur.runs.releases import FORMATS, detect_release
from dpdeblur.runs.releases.catalogue import CATALOGUE, ReleaseInfo


def _protocol(info: ReleaseInfo) -> str:
    if info.protocol is None:
        return "dpdeblur's own (16-bit, native size)"
    return f"its own: release_protocol={info.protocol}"


def list_releases(args: argparse.Namespace) -> int:
    """Print every release format this package reads, with what is known about it."""
    known = {fmt.NAME for fmt in FORMATS}
    for info in CATALOGUE.values():
        if info.format not in known:
            continue
        print(f"{info.title}")
        print(f"  file:       {info.file_name}")
        print(f"  from:       {info.source}")
        print(f"  format:     {info.format}: {info.layout}")
        print(f"  model:      {info.model}, {info.parameters:,} parameters")
        print(f"  input:      {info.colour}; {info.bits}-bit views")
        print(f"  protocol:   {_protocol(info)}")
        print(f"  licence:    {info.licence}")
        if info.notes:
            print(f"  note:       {info.notes}")
    return 0


def _not_a_release(payload: object) -> str:
    """Why a checkpoint read from disk is none of the releases."""
    if not isinstance(payload, Mapping):
        return f"a {type(payload).__name__}, not a dict of weights"
    if payload.get("format") == WEIGHTS_FORMAT:
        source = payload.get("source")
        origin = f", converted from {source}" if source else ""
        return f"a dpdeblur weights file of {payload.get('model')}{origin}, not a release"
    if "state_dict" in payload and "hyper_parameters" in payload:
        config = (payload.get("hyper_parameters") or {}).get("model_config") or {}
        return f"a dpdeblur training checkpoint of {config.get('name', 'an unnamed model')}"
    keys = ", ".join(map(str, list(payload)[:3]))
    return f"its layout matches no known release (first keys: {keys})"


def check_file(path: Path) -> bool:
    """Print which release ``path`` is (True), or why it is none (False)."""
    payload: Any = read_checkpoint(path)
    fmt = detect_release(payload)
    if fmt is None:
        print(f"{path}: not a release: {_not_a_release(payload)}")
        return False
    model, _ = load_model(payload, fmt.MODEL)  # a strict conversion, or a one-line error
    count = sum(p.numel() for p in model.parameters())
    info = CATALOGUE.get(fmt.NAME)
    title = info.title if info else fmt.NAME
    print(f"{path}: {title} ({fmt.NAME}), loads into {fmt.MODEL} with {count:,} parameters")
    if info is not None:
        print(f"  authors' input: {info.colour}; {info.bits}-bit; protocol: {_protocol(info)}")
    print(f"  use it as it is: dpdeblur-deblur --ckpt {path} ... | dpdeblur-eval ckpt={path}")
    return True


def check(args: argparse.Namespace) -> int:
    results = []
    for path in args.files:
        if not Path(path).is_file():
            raise CheckpointError("no such file", path, "check the path")
        results.append(check_file(Path(path)))
    if not all(results):
        names = ", ".join(fmt.NAME for fmt in FORMATS)
        print(
            f"error: {results.count(False)} file(s) are none of the known releases ({names})",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpdeblur-weights", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every known release: file, source, format, protocol")
    listing.set_defaults(func=list_releases)
    checking = sub.add_parser("check", help="which release a file is, or why it is none")
    checking.add_argument("files", nargs="+", type=Path, metavar="FILE")
    checking.set_defaults(func=check)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_subcommand(build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
