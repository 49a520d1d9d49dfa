"""Build every figure from run directories, the papers' reference points and ``bench.json``.

Writes into ``out_dir``: ``psnr_vs_params`` and ``psnr_vs_macs`` (PNG and PDF), one
``per_image_gain_<run>`` figure per chosen run, and ``figures.json`` listing every plotted
point with its numbers and source, so a figure can be checked without reading pixels.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from pathlib import Path

from dpdeblur.errors import DpdeblurError
from dpdeblur.research.figures.plots import Point, per_image_gain, psnr_vs_size, save
from dpdeblur.research.figures.references import ReferencePoint, published
from dpdeblur.research.figures.runs import figure_labels, scored_runs
from dpdeblur.research.figures.sizes import SizeLookup
from dpdeblur.runs.records import RunRecord


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def _has_input_psnr(run: RunRecord) -> bool:
    if not run.images_csv(run.scored_split).is_file():
        return False
    rows = run.image_rows(run.scored_split)
    return any(math.isfinite(r.get("input_psnr", math.nan)) for r in rows)


def build_figures(
    run_paths: list[Path],
    out_dir: Path,
    sizes: SizeLookup,
    references: list[ReferencePoint] | None = None,
    gain_runs: list[Path] | None = None,
    log=print,
) -> dict:
    """Make the figures (see the module docstring) and return the manifest."""
    references = published() if references is None else list(references)
    runs, unscored = scored_runs(run_paths) if run_paths else ([], [])
    for path in unscored:
        log(f"left out {path}: no test or val PSNR (unfinished, failed or unscored)")
    manifest: dict = {
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "macs_size": list(sizes.size),
        "references": [],
        "runs": [],
        "left_out": [str(p) for p in unscored],
        "files": [],
    }
    points = {"params": [], "macs": []}
    for ref in references:
        params, macs = ref.params, ref.macs
        if ref.registry_model and (params is None or macs is None):
            measured_params, measured_macs = sizes.of_registry(ref.registry_model)
            params = params if params is not None else measured_params
            macs = macs if macs is not None else measured_macs
        manifest["references"].append(
            {
                "method": ref.method,
                "psnr": ref.psnr,
                "params": params,
                "macs": macs,
                "source": ref.source,
                "size_from": ref.registry_model,
            }
        )
        points["params"].append(Point(ref.method, ref.psnr, params, "reference"))
        points["macs"].append(Point(ref.method, ref.psnr, macs, "reference"))
    labels = figure_labels(runs)
    for run in runs:
        split, model = run.scored_split, run.model_config
        psnr, dataset = float(run.means(split)["psnr"]), run.get("data.dataset")
        params, macs = run.params, None
        if model:
            counted_params, macs = sizes.of_config(model)
            params = params if params is not None else counted_params
        manifest["runs"].append(
            {
                "label": labels[run.path],
                "path": str(run.path),
                "split": split,
                "psnr": psnr,
                "psnr_by_scene": run.scene_means(split),
                "dataset": dataset,
                "params": params,
                "macs": macs,
                "model": model.get("name") if model else None,
            }
        )
        label = labels[run.path]
        if split != "test":
            label += f" ({split})"
        if dataset and dataset != "dpdd":
            label += f" [{dataset}]"  # not comparable with DPDD scores
        points["params"].append(Point(label, psnr, params, "run"))
        if macs is not None:
            points["macs"].append(Point(label, psnr, macs, "run"))
    for axis, stem, what in (
        ("params", "psnr_vs_params", "parameters"),
        ("macs", "psnr_vs_macs", "MACs"),
    ):
        title = f"PSNR against {what}: published results (DPDD test) and our runs"
        files = save(psnr_vs_size(points[axis], axis, title), out_dir, stem)
        manifest["files"] += [str(f) for f in files]
    if gain_runs is None:
        candidates = [r for r in runs if _has_input_psnr(r)]
        chosen = (
            [max(candidates, key=lambda r: r.means(r.scored_split)["psnr"])] if candidates else []
        )
        if not candidates:
            log("no run with per-image rows and input PSNR: no per-image gain figure")
    else:
        chosen, unscored_gain = scored_runs(gain_runs)
        labels.update(figure_labels(chosen))
        if unscored_gain:
            raise DpdeblurError(
                "no test or val PSNR in this run", unscored_gain[0], "score the run first"
            )
    for run in chosen:
        split, label = run.scored_split, labels[run.path]
        rows = run.image_rows(split)
        if not any(math.isfinite(r.get("input_psnr", math.nan)) for r in rows):
            raise DpdeblurError(
                "no input PSNR in the per-image rows (the data has no combined view)",
                run.images_csv(split),
                "the gain figure needs data with a combined view, such as DPDD",
            )
        figure = per_image_gain(label, split, rows)
        files = save(figure, out_dir, f"per_image_gain_{_slug(label)}")
        manifest["files"] += [str(f) for f in files]
    (out_dir / "figures.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
