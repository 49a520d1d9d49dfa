"""Where ``dpdeblur-deblur`` finds its DP pairs, and reading one pair.

- ``--left L --right R``: one pair, named after ``L`` without its ``_L``
  (:func:`~dpdeblur.data.layout.sample_name`);
- ``--input DIR``: a DPDD tree (official or Restormer layout, one split; detected by its
  combined-view folder), else a PIXEL folder (``{split}_l/source`` + ``{split}_r/source``,
  or ``inputL``/``inputR``), else a flat folder of ``*_L``/``*_R`` pairs (any camera).
  Layout detection and pairing are :mod:`dpdeblur.data.layout`'s; what makes a pair valid
  is :func:`dpdeblur.data.samples.sample_problems`'.

Only a PIXEL folder says its pairs are PIXEL captures (:attr:`FoundPairs.pixel`), whose
portrait images are turned to landscape for the model; a flat folder of pairs does not.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dpdeblur.data.io import read_raw, to_float
from dpdeblur.data.layout import (
    LAYOUTS,
    PIXEL_RELEASE_LAYOUTS,
    DPRecord,
    index_dpdd_split,
    index_pixel,
    resolve_dpdd_root,
    sample_name,
)
from dpdeblur.data.samples import DecodedFile, sample_problems
from dpdeblur.errors import DataError


def pair_record(left: str | Path, right: str | Path) -> DPRecord:
    """The record of one pair given on the command line (files are checked when read)."""
    left, right = Path(left).expanduser(), Path(right).expanduser()
    return DPRecord(name=sample_name(left, "left"), left=left, right=right)


def _dpdd_layout(root: Path, split: str) -> tuple[Path, str] | None:
    """The DPDD root and layout if ``root`` holds a DPDD tree with this split's combined views."""
    try:
        base, layout = resolve_dpdd_root(root)
    except DataError:
        return None
    combined = LAYOUTS[layout](base, split)["combined"]
    return (base, layout) if combined.is_dir() else None


@dataclass(frozen=True)
class FoundPairs:
    """The pairs of an input folder, the layout found (for people), and whether the
    layout is PIXEL's own (its portrait pairs are PIXEL captures)."""

    records: list[DPRecord]
    layout: str
    pixel: bool


def folder_records(root: str | Path, split: str = "test") -> FoundPairs:
    """The pairs of a DPDD, PIXEL or flat folder of pairs, and what was found."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError("input folder does not exist", root, "pass --input DIR of DP pairs")
    dpdd = _dpdd_layout(root, split)
    if dpdd is not None:
        base, layout = dpdd
        return FoundPairs(
            index_dpdd_split(base, split, layout), f"DPDD {layout}, split {split}", False
        )
    records, layout = index_pixel(root, split)
    if layout in PIXEL_RELEASE_LAYOUTS:
        return FoundPairs(records, f"PIXEL {layout}, split {split}", True)
    return FoundPairs(records, "a folder of pairs", False)


@dataclass(frozen=True)
class LoadedPair:
    """A pair read from disk: HxWx3 float32 views in [0, 1] and what the files were."""

    left: np.ndarray
    right: np.ndarray
    bit_depth: int
    channels: int  # 1 when both files are single-channel (PIXEL's green channel)
    target: np.ndarray | None = None


def read_pair(record: DPRecord, with_target: bool = False) -> LoadedPair:
    """Read a record's views (and target if asked and present); sizes must match."""
    paths = {"left": record.left, "right": record.right}
    if with_target and record.target is not None:
        paths["target"] = record.target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # single-channel files: handled, not warned about
        raws = {role: read_raw(path) for role, path in paths.items()}
    files = [
        DecodedFile(role, path, raws[role].pixels.shape[:2], raws[role].bit_depth)
        for role, path in paths.items()
    ]
    problems = sample_problems(files)
    if problems:
        raise problems[0]
    left, right, target = raws["left"], raws["right"], raws.get("target")
    channels = 1 if left.source_channels == 1 and right.source_channels == 1 else 3
    return LoadedPair(
        left=to_float(left.pixels),
        right=to_float(right.pixels),
        bit_depth=min(left.bit_depth, right.bit_depth),
        channels=channels,
        target=None if target is None else to_float(target.pixels),
    )
