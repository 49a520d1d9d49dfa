"""The figures: PSNR against parameters and MACs (as DPANet's Fig. 9 and K3DN's Fig. 1
draw them), and per-image PSNR gains of one run. Matplotlib's object API (no pyplot, no
display needed); each figure is saved as PNG (150 dpi) and PDF."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

SCENE_COLOURS = {"indoor": "tab:orange", "outdoor": "tab:blue", "": "tab:gray"}
AXES = {
    "params": ("parameters (millions)", 1e6),
    "macs": ("GMACs per 256x256 pair (complete count)", 1e9),
}


@dataclass
class Point:
    """One marker: a label, PSNR and size (None: size unknown)."""

    label: str
    psnr: float
    x: float | None
    kind: str  # "reference" or "run"


def save(figure: Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    figure.savefig(paths[0], dpi=150, bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight")
    return paths


def psnr_vs_size(points: list[Point], axis: str, title: str) -> Figure:
    """Scatter of PSNR against size (log axis): references as squares, our runs as dots;
    references without a size as dotted horizontal lines."""
    xlabel, scale = AXES[axis]
    figure = Figure(figsize=(7, 4.5))
    ax = figure.add_subplot()
    placed = [p for p in points if p.x is not None and p.x > 0]
    for kind, marker, colour in (("reference", "s", "tab:red"), ("run", "o", "tab:blue")):
        group = [p for p in placed if p.kind == kind]
        if group:
            ax.scatter(
                [p.x / scale for p in group],
                [p.psnr for p in group],
                marker=marker,
                s=45,
                color=colour,
                label="published (DPDD test)" if kind == "reference" else "our runs",
                zorder=3,
            )
        for p in group:
            ax.annotate(
                p.label,
                (p.x / scale, p.psnr),
                textcoords="offset points",
                xytext=(5, 4),
                fontsize=8,
            )
    ax.set_xscale("log")
    for p in points:
        if p.x is None:
            ax.axhline(p.psnr, color="tab:red", linestyle=":", linewidth=1, zorder=1)
            ax.annotate(
                f"{p.label} (size not given)",
                (0.01, p.psnr),
                xycoords=("axes fraction", "data"),
                textcoords="offset points",
                xytext=(0, 2),
                fontsize=7,
                color="tab:red",
            )
    psnrs = [p.psnr for p in points]
    if psnrs:
        ax.set_ylim(min(psnrs) - 0.5, max(psnrs) + 0.5)
    if placed:
        xs = [p.x / scale for p in placed]
        ax.set_xlim(min(xs) / 2, max(xs) * 2.5)
        # Plain numbers at 1, 2, 5 x 10^k over a narrow range, at powers of ten otherwise.
        narrow = math.log10(max(xs) / min(xs)) < 2.5
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if placed:
        ax.legend(loc="lower right", fontsize=8)
    return figure


def per_image_gain(label: str, split: str, rows: list[dict]) -> Figure:
    """Bars of ``psnr - input_psnr`` per image of run ``label``'s ``split`` (its per-image
    rows), sorted, coloured indoor/outdoor, with the mean gain overall and per scene."""
    scored = [r for r in rows if math.isfinite(r.get("input_psnr", math.nan))]
    scored.sort(key=lambda r: r["psnr"] - r["input_psnr"], reverse=True)
    gains = [r["psnr"] - r["input_psnr"] for r in scored]
    scenes = [r.get("scene", "") or "" for r in scored]
    figure = Figure(figsize=(max(6.0, 0.09 * len(gains) + 3), 4))
    ax = figure.add_subplot()
    ax.bar(
        range(len(gains)),
        gains,
        color=[SCENE_COLOURS.get(s, "tab:gray") for s in scenes],
        width=0.85,
    )
    ax.axhline(0, color="black", linewidth=0.8)
    mean = sum(gains) / len(gains)
    ax.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:+.2f} dB")
    handles = []
    for scene in sorted(set(scenes)):
        colour = SCENE_COLOURS.get(scene, "tab:gray")
        subset = [g for g, s in zip(gains, scenes, strict=True) if s == scene]
        handles.append(Patch(color=colour, label=f"{scene or 'unlabelled'} ({len(subset)})"))
        if scene:
            ax.axhline(
                sum(subset) / len(subset),
                color=colour,
                linestyle=":",
                linewidth=1.2,
                label=f"{scene} mean {sum(subset) / len(subset):+.2f} dB",
            )
    ax.set_xlabel(f"image ({split} split), sorted by gain")
    ax.set_ylabel("PSNR gain over the blurry input (dB)")
    ax.set_title(f"{label}: per-image PSNR gain ({len(gains)} images)", fontsize=10)
    ax.set_xlim(-1, len(gains))
    lines, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*lines, *handles], fontsize=8, loc="upper right")
    ax.grid(True, axis="y", alpha=0.3)
    return figure
