"""Pictures and blur statistics of the synthetic scene families (docs/synthetic.md).

``python -m dpdeblur.data.scene_report --out docs`` renders a few scenes of each family
(``layers``, ``photo``) and writes one picture per family, ``synthetic_<family>.png``: a
row per scene with the sharp target, the blurry combined view, the views' difference and
the blur radius map (|CoC|, dark = in focus, bright = ``max_coc_px``). It then prints, as
a Markdown table, the histogram of the pixels' |CoC| over more scenes of each family
(:func:`coc_histogram`). The demo prints the same histogram for its own test splits.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from dpdeblur.data.panels import render_panel, save_panel
from dpdeblur.data.scenes import SCENE_FAMILIES
from dpdeblur.data.synthetic import SyntheticDPDataset

# Bin edges of the |CoC| histograms, pixels: in focus (< 0.5), then 1 px bins to 6, then 6-8
# and beyond.
COC_EDGES = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, float("inf"))


def coc_histogram(cocs: Iterable[np.ndarray], edges: Sequence[float] = COC_EDGES) -> list[float]:
    """The share of pixels in each |CoC| bin ``[edges[i], edges[i+1])`` over all maps."""
    counts = np.zeros(len(edges) - 1, np.int64)
    for coc in cocs:
        counts += np.histogram(np.abs(np.asarray(coc, np.float64)), bins=np.asarray(edges))[0]
    total = max(int(counts.sum()), 1)
    return [float(c) / total for c in counts]


def bin_labels(edges: Sequence[float] = COC_EDGES) -> list[str]:
    """``0-0.5``, ``0.5-1``, ..., ``>= 8`` for the histogram's columns."""
    labels = [f"{low:g}-{high:g}" for low, high in itertools.pairwise(edges[:-1])]
    return [*labels, f">= {edges[-2]:g}"]


def histogram_table(rows: dict[str, Sequence[float]], edges: Sequence[float] = COC_EDGES) -> str:
    """Markdown: one row per name, the share of pixels per |CoC| bin (percent)."""
    header = "| |CoC| (px) | " + " | ".join(bin_labels(edges)) + " |"
    lines = [header, "|---|" + "---:|" * (len(edges) - 1)]
    for name, shares in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * s:.0f}%" for s in shares) + " |")
    return "\n".join(lines) + "\n"


def coc_picture(coc: np.ndarray, max_coc_px: float) -> np.ndarray:
    """|CoC| as an HxWx3 float image in [0, 1] (viridis: dark in focus, yellow at the max)."""
    level = np.clip(np.abs(np.asarray(coc, np.float32)) / max_coc_px, 0.0, 1.0)
    coloured = cv2.applyColorMap(np.round(level * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)
    return coloured[:, :, ::-1].astype(np.float32) / 255.0


def family_picture(dataset: SyntheticDPDataset, count: int, path: Path, shrink: int = 2) -> Path:
    """Rows of target | combined | |left - right| (x4) | |CoC| for ``count`` scenes, each
    image shrunk ``shrink`` times (pixel areas averaged) to keep the file small."""
    rows = []
    max_coc = dataset.settings.max_coc_px
    for index in range(count):
        sample = dataset.render(index)
        difference = np.clip(4.0 * np.abs(sample["left"] - sample["right"]), 0.0, 1.0)
        images = [sample["target"], sample["combined"], difference]
        images.append(coc_picture(sample["coc"], max_coc))
        height, width = images[0].shape[0] // shrink, images[0].shape[1] // shrink
        rows.append([cv2.resize(i, (width, height), interpolation=cv2.INTER_AREA) for i in images])
    save_panel(render_panel(rows), path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dpdeblur.data.scene_report", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", default="docs", help="folder for the pictures (default docs)")
    parser.add_argument("--pictures", type=int, default=3, help="scenes per picture")
    parser.add_argument("--stats", type=int, default=60, help="scenes per histogram")
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--max-coc", type=float, default=8.0, help="largest blur radius, px")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = {}
    for family in SCENE_FAMILIES:
        dataset = SyntheticDPDataset(
            length=max(args.pictures, args.stats),
            size=args.size,
            seed=args.seed,
            split="report",
            max_coc_px=args.max_coc,
            scenes=family,
        )
        path = family_picture(dataset, args.pictures, Path(args.out) / f"synthetic_{family}.png")
        print(f"wrote {path}")
        cocs = (dataset.render(i)["coc"] for i in range(args.stats))
        rows[f"{family} ({args.stats} scenes)"] = coc_histogram(cocs)
    print(histogram_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
