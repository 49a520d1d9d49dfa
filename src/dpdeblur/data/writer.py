"""Write DP samples to disk as a DPDD tree (either layout), 16-bit PNG by default.

Used by ``dpdeblur-data synth`` to turn synthetic scenes into a dataset that every tool
reads exactly as it reads the real DPDD. As in DPDD, the target's file name differs from
the source's (the target is "the neighbouring frame"): source ``<prefix>NNNNN`` with an odd
number, target the even number before it, so separate sorting pairs them correctly.
Synthetic ground truth that DPDD lacks (the signed defocus map) goes beside the combined
view as ``.npy`` and is ignored by the DPDD reader. Every file appears atomically, with the
user's umask (:mod:`dpdeblur.data.files`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dpdeblur.data.files import atomic_file, write_text_atomic
from dpdeblur.data.io import as_hwc, write_png
from dpdeblur.data.layout import SYNTHETIC_MARKER, VIEW_SUFFIXES
from dpdeblur.data.synthetic import SyntheticDPDataset
from dpdeblur.errors import DataError


def split_folders(root: Path, split: str, layout: str) -> dict[str, Path]:
    if layout == "official":
        return {
            "combined": root / f"{split}_c" / "source",
            "target": root / f"{split}_c" / "target",
            "left": root / f"{split}_l" / "source",
            "right": root / f"{split}_r" / "source",
            "coc": root / f"{split}_c" / "defocus",
        }
    if layout == "restormer":
        base = root / split / "DPDD"
        return {
            "combined": base / "inputC",
            "target": base / "target",
            "left": base / "inputL",
            "right": base / "inputR",
            "coc": base / "defocus",
        }
    raise ValueError(f"unknown layout {layout!r}; use 'official' or 'restormer'")


def frame_names(prefix: str, index: int) -> tuple[str, str]:
    """(source name, target name) of sample ``index``: consecutive frame numbers."""
    return f"{prefix}{2 * index + 1:05d}", f"{prefix}{2 * index:05d}"


def write_split(
    root: str | Path,
    split: str,
    samples: Iterable[dict],
    layout: str = "official",
    bits: int = 16,
    prefix: str = "SYN",
) -> int:
    """Write ``samples`` (dicts with left/right/combined/target images) as one split.

    Returns the number of samples written.
    """
    folders = split_folders(Path(root), split, layout)
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    view_suffix = VIEW_SUFFIXES if layout == "official" else {"left": "", "right": ""}
    count = 0
    for index, sample in enumerate(samples):
        source, target = frame_names(prefix, index)
        write_png(folders["combined"] / f"{source}.png", sample["combined"], bits)
        write_png(folders["left"] / f"{source}{view_suffix['left']}.png", sample["left"], bits)
        write_png(folders["right"] / f"{source}{view_suffix['right']}.png", sample["right"], bits)
        write_png(folders["target"] / f"{target}.png", sample["target"], bits)
        if sample.get("coc") is not None:
            with atomic_file(folders["coc"] / f"{source}.npy") as handle:
                np.save(handle, as_hwc(sample["coc"])[..., 0].astype(np.float32))
        count += 1
    return count


def split_counts(n: int) -> dict[str, int]:
    """Train/val/test sizes for ``n`` samples: 70/15/15, at least one each."""
    if n < 3:
        raise DataError(f"{n} samples cannot fill three splits", None, "use --n 3 or more")
    val = max(1, round(0.15 * n))
    test = max(1, round(0.15 * n))
    return {"train": n - val - test, "val": val, "test": test}


def write_synthetic_dpdd(
    root: str | Path,
    n: int,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    layout: str = "official",
    kernel: str = "soft",
    splits: Iterable[str] | None = None,
    **options,
) -> dict[str, int]:
    """Render ``n`` synthetic DP scenes and write them as a DPDD tree (16-bit PNG).

    Splits are 70/15/15 of ``n``; ``splits`` writes only those named (e.g. ``["test"]``:
    a second test set). Each split's scenes are deterministic for ``seed``. ``options``
    go to :class:`~dpdeblur.data.synthetic.SyntheticDPDataset` (e.g. ``max_coc_px``,
    ``scenes``).
    The root gets :data:`~dpdeblur.data.layout.SYNTHETIC_MARKER` (how the tree was made),
    so that scores on it are never set beside a paper's DPDD numbers.
    Returns the count written per split.
    """
    counts = {}
    chosen = None if splits is None else set(splits)
    for split, count in split_counts(n).items():
        if chosen is not None and split not in chosen:
            continue
        dataset = SyntheticDPDataset(
            length=count, size=size, seed=seed, split=split, kernel=kernel, **options
        )
        samples = (dataset[i] for i in range(count))
        counts[split] = write_split(
            root, split, samples, layout=layout, bits=16, prefix=f"SYN{split[:2].upper()}"
        )
    made = {"written_by": "dpdeblur-data synth", "size": list(size), "seed": seed}
    made |= {"layout": layout, "kernel": kernel, "counts": counts}
    made |= {k: v for k, v in options.items() if isinstance(v, int | float | str | bool)}
    write_text_atomic(Path(root) / SYNTHETIC_MARKER, json.dumps(made, indent=2) + "\n")
    return counts
