"""The table every ``dpdeblur-train`` and ``dpdeblur-eval`` run ends with, on the console.

One line per split (and per scene label, indoor/outdoor, where the data has them): the
number of images and each metric's mean beside the blurry input's (the mean of the two
views, scored under the same protocol), then the PSNR gain; then where the run's files
are and, where the config gives one, what to run next. Built from the task's
``metrics.json`` payload only, so it says exactly what the file says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

METRICS = (("psnr", "PSNR", "{:.2f}"), ("ssim", "SSIM", "{:.4f}"), ("mae", "MAE", "{:.4f}"))
LPIPS = ("lpips", "LPIPS", "{:.4f}")


def _number(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value


def _pair(means: Mapping[str, Any], key: str, fmt: str, suffix: str) -> str:
    model = _number(means.get(f"{key}{suffix}"))
    source = _number(means.get(f"input_{key}{suffix}"))
    text = fmt.format(model) if math.isfinite(model) else "-"
    if math.isfinite(source):
        text += f" ({fmt.format(source)})"
    return text


def _gain(means: Mapping[str, Any], suffix: str) -> str:
    gain = _number(means.get(f"psnr{suffix}")) - _number(means.get(f"input_psnr{suffix}"))
    return f"{gain:+.2f}" if math.isfinite(gain) else "-"


def _scenes(means: Mapping[str, Any]) -> list[str]:
    return sorted(
        key[len("images_") :]
        for key in means
        if key.startswith("images_") and means[key] is not None
    )


def has_lpips(splits: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(math.isfinite(_number(m.get("lpips"))) for m in splits.values())


def score_table(splits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``split, scenes, images, PSNR (input), SSIM (input), MAE (input)[, LPIPS (input)],
    gain`` lines for each split's means (:func:`dpdeblur.training.system.summarise`)."""
    metrics = METRICS + ((LPIPS,) if has_lpips(splits) else ())
    header = ["split", "scenes", "images", *(f"{label} (input)" for _, label, _ in metrics)]
    rows = [[*header, "PSNR gain"]]
    for split, means in splits.items():
        if not means:
            continue
        for scene in ["", *_scenes(means)]:
            suffix = f"_{scene}" if scene else ""
            count = _number(means.get(f"images{suffix}"))
            rows.append(
                [
                    split,
                    scene or "all",
                    str(int(count)) if math.isfinite(count) else "-",
                    *(_pair(means, key, fmt, suffix) for key, _, fmt in metrics),
                    _gain(means, suffix),
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def headline(payload: Mapping[str, Any], tool: str) -> str:
    """``dpdeblur-train quickstart (lr-0.001): dpdnet_small, 1.94M parameters, 600 steps in 2 min 31 s``."""
    model = payload.get("model") or {}
    name = payload.get("run_name")
    experiment = payload.get("experiment") or ""
    title = tool if tool.endswith(f"-{experiment}") else f"{tool} {experiment}"
    title += f" ({name})" if name and name != experiment else ""
    parts = [str(model.get("name", "?"))]
    params = payload.get("params")
    if params:
        parts.append(f"{params / 1e6:.2f}M parameters")
    checkpoint = payload.get("checkpoint")
    if isinstance(checkpoint, Mapping) and checkpoint.get("kind"):
        step = checkpoint.get("global_step")
        at = f" at step {step:,}" if isinstance(step, int) else ""
        parts.append(f"{checkpoint['kind']} checkpoint{at}")
    if "global_step" in payload:
        steps = f"{payload['global_step']:,} steps"
        if payload.get("fit_seconds") is not None:
            steps += f" in {_duration(payload['fit_seconds'])}"
        if payload.get("stopped_by"):
            steps += f" (stopped by {payload['stopped_by']})"
        parts.append(steps)
    resumed = payload.get("resumed_from")
    if resumed:
        parts.append(f"resumed from step {resumed.get('global_step')}")
    return f"{title}: " + ", ".join(parts)


def format_summary(
    payload: Mapping[str, Any], tool: str, run_dir: str, hint: str | None = None
) -> str:
    """The whole summary: headline, score table, notes, files, and the ``hint`` line."""
    splits = {s: payload[s] for s in ("val", "test") if payload.get(s)}
    lines = [headline(payload, tool)]
    if splits:
        lines += ["  " + line for line in score_table(splits)]
        lines.append("  (input) is the blurry input, the mean of the two views, scored alike")
    else:
        lines.append("  no split was scored")
    protocol = (payload.get("protocol") or {}).get("protocol")
    if protocol and protocol != "16bit":
        lines.append(f"  scored under the {protocol} protocol (metrics.protocol)")
    lpips_mode = ((payload.get("protocol") or {}).get("lpips") or {}).get("mode")
    if splits and lpips_mode not in (None, "off") and not has_lpips(splits):
        lines.append(
            "  LPIPS unavailable: its AlexNet weights are not installed (docs/metrics.md); "
            "metrics.lpips=off drops it"
        )
    files = [("run dir", run_dir), ("metrics", f"{run_dir}/metrics.json")]
    checkpoint = payload.get("checkpoint")
    if isinstance(checkpoint, Mapping) and checkpoint.get("path"):
        files.append(("checkpoint", str(checkpoint["path"])))
    for key, label in (("best_checkpoint", "best ckpt"), ("last_checkpoint", "last ckpt")):
        if payload.get(key):
            files.append((label, str(payload[key])))
    width = max(len(label) for label, _ in files)
    lines += [f"  {label.ljust(width)}  {path}" for label, path in files]
    if hint:
        lines.append(f"  next: {hint}")
    return "\n".join(lines)
