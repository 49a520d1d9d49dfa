"""The bench's figures: PSNR against parameters and MACs, per-image PSNR gains.

Reference points are the DPANet paper's Table I (:mod:`dpdeblur.research.figures.references`);
our points are the scored runs found under the given paths (run directories, or folders
searched for ``metrics.json``; by default the log folder, ``$DPDEBLUR_OUTPUTS`` or
``outputs``, when it holds runs). MACs of registry models come from a ``bench.json`` when it
has them, else are counted. :mod:`dpdeblur.research.figures` draws them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dpdeblur.research.figures.build import build_figures
from dpdeblur.research.figures.references import load_references, published
from dpdeblur.research.figures.sizes import SizeLookup
from dpdeblur.runs.find import is_run_dir

DEFAULT_BENCH = Path("experiments/results/bench.json")


def default_runs(log=print) -> list[Path]:
    """The log folder when it holds runs; else none (reference points only)."""
    log_dir = Path(os.environ.get("DPDEBLUR_OUTPUTS", "outputs"))
    if log_dir.is_dir() and any(is_run_dir(p) for p in (log_dir, *log_dir.glob("**/"))):
        return [log_dir]
    log(f"no runs under {log_dir}: reference points only (pass --runs PATH)")
    return []


def draw_bench_figures(
    out_dir: Path,
    runs: list[Path] | None = None,
    bench: Path | None = None,
    references: Sequence[Path] = (),
    gain_runs: list[Path] | None = None,
    size: tuple[int, int] = (256, 256),
    count: bool = True,
) -> dict[str, Any]:
    """Draw the figures into ``out_dir``; returns their manifest (``figures.json``).

    ``runs``: default :func:`default_runs`; ``bench``: default :data:`DEFAULT_BENCH` when it
    exists; ``references``: extra YAML reference points; ``count``: count MACs that
    ``bench`` lacks, at ``size``.
    """
    if runs is None:
        runs = default_runs()
    if bench is None and DEFAULT_BENCH.is_file():
        bench = DEFAULT_BENCH
    sizes = SizeLookup.from_file(bench, size=tuple(size), count=count)
    points = published()
    for path in references:
        points += load_references(path)
    return build_figures(runs, out_dir, sizes, points, gain_runs)
