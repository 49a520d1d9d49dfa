"""``bench.md``: the Markdown summary of a ``bench.json`` written by ``dpdeblur-bench all``."""

from __future__ import annotations

from dpdeblur.hardware import machine_line
from dpdeblur.research.benchmarks.macs import CostReport, format_table

DASH = "-"


def _num(value, digits: int = 2, scale: float = 1.0) -> str:
    if value is None:
        return DASH
    return f"{value / scale:.{digits}f}"


def _seconds(value) -> str:
    if value is None:
        return DASH
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _load(load: dict | None) -> str:
    if not load or not load.get("start"):
        return "unknown"
    start, end = load.get("start") or [None], load.get("end") or [None]
    return f"{start[0]} -> {end[0] if end[0] is not None else '?'}"


def _size(size) -> str:
    return "x".join(str(s) for s in size)


def header(results: dict) -> list[str]:
    settings = results["settings"]
    machine = results["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{results.get('command') or 'dpdeblur-bench all'}` on {results['created']}"
        + (" (`--quick`: shrunken sizes, not for quoting)" if settings.get("quick") else "")
        + ".",
        "",
        f"- Machine: {machine_line(machine)}; device `{machine['device']}`.",
        f"- Load average (1 min) at start -> end: {_load(results.get('load_average'))} "
        f"(other jobs on the same cores slow every figure).",
        f"- Sizes: {_size(settings['size'])} pairs (batch 1) for MACs and timings; "
        f"full resolution {_size(settings['full_res_size'])}; fastest of {settings['repeat']} "
        "timed run(s) after a 64x64 warm-up; random weights and inputs.",
    ]
    if results.get("total_s") is not None:
        lines.append(f"- Total wall time: {results['total_s']:.0f} s.")
    return lines


def model_table(results: dict) -> list[str]:
    size = _size(results["settings"]["size"])
    lines = [
        "",
        "## Models",
        "",
        f"| model | params (M) | complete GMACs | thop-like GMACs | forward s ({size}) | "
        f"fwd+bwd s ({size}) | full-res s | full-res peak GiB | train samples/s (crop x batch) "
        "| est. samples/s at default crop |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in results["models"]:
        full = entry.get("full_res") or {}
        train = entry.get("train") or {}
        train_cell = (
            f"{train['samples_per_s']:.3f} ({train['crop']} x {train['batch']})" if train else DASH
        )
        lines.append(
            "| "
            + " | ".join(
                [
                    entry["model"],
                    _num(entry.get("params"), 2, 1e6),
                    _num(entry.get("complete_macs"), 2, 1e9),
                    _num(entry.get("thop_macs"), 2, 1e9),
                    _seconds(entry.get("forward_s")),
                    _seconds(entry.get("forward_backward_s")),
                    _seconds(full.get("seconds")),
                    _num(full.get("peak_mib"), 2, 1024),
                    train_cell,
                    _num(train.get("samples_per_s_at_default_crop"), 4) if train else DASH,
                ]
            )
            + " |"
        )
    return lines


def notes(results: dict) -> list[str]:
    settings = results["settings"]
    trains = [e["train"] for e in results["models"] if e.get("train")]
    lines = [
        "",
        "What the columns are:",
        "",
        "- MACs: multiply-accumulates of one forward pass (FLOPs = 2 x MACs); 'complete' counts "
        "every conv, deformable conv and correlation, 'thop-like' only what the thop package "
        "counts (how the DPANet paper's 213.77G arises); see docs/dpanet.md.",
        "- forward: eval mode under `torch.inference_mode`; fwd+bwd: training mode, the "
        "project's loss (Charbonnier, + 0.1 x reblur for K3DN) and its backward pass.",
    ]
    full = next((e["full_res"] for e in results["models"] if e.get("full_res")), None)
    if full:
        lines.append(f"- full-res peak: {full.get('peak_kind', 'peak memory')}.")
    if trains:
        lines.append(
            f"- train: Adam steps on random pairs (no data loading), default crop "
            f"{settings['default_crop']} and batch {settings['default_batch']} "
            f"(conf/data/dpdd.yaml); measured at: {trains[0]['rule']}. The estimate at the "
            "default crop scales the measured rate by pixel count (CPU time grows with it)."
        )
    lines.append(
        "- The ablation variants get parameters and MACs only (their layers differ from the "
        "main model's in a few places); `dpdeblur-bench all --main-models NAME ...` times any "
        "of them too."
    )
    return lines


def cost_table(results: dict) -> list[str]:
    reports = [
        CostReport(
            model=e["model"],
            size=tuple(e["size"]),
            params=e["params"],
            macs=e["macs"],
            thop_macs=e.get("thop_macs", 0),
        )
        for e in results["models"]
        if e.get("macs") is not None
    ]
    if not reports:
        return []
    return ["", "## MACs op by op", "", format_table(reports)]


def gpu_tables(results: dict) -> list[str]:
    rows = []
    for entry in results["models"]:
        for variant, value in (entry.get("gpu_variants") or {}).items():
            if "error" in value:
                rows.append(f"| {entry['model']} | {variant} | failed: {value['error']} | | |")
                continue
            fp32 = value.get("fp32_ops")
            fp32_cell = DASH if fp32 is None else (", ".join(fp32) or "none")
            forward = value.get("forward_s")
            rows.append(
                f"| {entry['model']} | {variant} | {_seconds(forward)} | "
                f"{_seconds(value.get('forward_backward_s'))} | {fp32_cell} |"
            )
    if not rows:
        return []
    return [
        "",
        "## GPU variants",
        "",
        "Compile: forward seconds after compilation (first call in bench.json). fp32 ops: "
        "compute-heavy operators that ran with float32 inputs under autocast.",
        "",
        "| model | variant | forward s | fwd+bwd s | operators left in fp32 |",
        "|---|---|---:|---:|---|",
        *rows,
    ]


def data_table(results: dict) -> list[str]:
    data = results.get("data")
    if not data:
        return []
    return [
        "",
        "## Data path",
        "",
        f"{data['what']}; {data['images']} images, {data['samples']} samples per variant, "
        f"load average {_load(data.get('load_average'))}.",
        "",
        f"| path | samples/s, one process | samples/s, DataLoader ({data['loader_workers']} workers) |",
        "|---|---:|---:|",
        f"| decode PNG each time | {data['png_samples_per_s']:.1f} | "
        f"{data['png_loader_samples_per_s']:.1f} |",
        f"| uint16 `.npy` memory-map cache | {data['cache_samples_per_s']:.1f} | "
        f"{data['cache_loader_samples_per_s']:.1f} |",
        f"| speed-up | {data['cache_speedup']:.1f}x | {data['cache_loader_speedup']:.1f}x |",
        "",
        f"Building the cache took {data['cache_build_s']:.1f} s.",
    ]


def section_line(results: dict) -> list[str]:
    seconds = results.get("section_seconds") or {}
    if not seconds:
        return []
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    return ["", f"Wall time per section: {parts}."]


def render_markdown(results: dict) -> str:
    lines = header(results) + model_table(results) + notes(results)
    lines += cost_table(results) + gpu_tables(results) + data_table(results)
    lines += section_line(results)
    return "\n".join(lines) + "\n"
