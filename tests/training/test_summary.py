"""The console summary a train or eval run ends with (issue 19)."""

from __future__ import annotations

import math

from dpdeblur.training.summary import format_summary, score_table


def means(psnr: float, source: float, images: int, scenes: bool = False) -> dict:
    out = {
        "psnr": psnr,
        "ssim": 0.8,
        "mae": 0.03,
        "lpips": math.nan,
        "input_psnr": source,
        "input_ssim": 0.7,
        "input_mae": 0.04,
        "input_lpips": math.nan,
        "images": float(images),
    }
    if scenes:
        base = dict(out)
        for scene, shift in (("indoor", 1.0), ("outdoor", -1.0)):
            out.update({f"{k}_{scene}": v for k, v in base.items() if k != "images"})
            out[f"psnr_{scene}"] = psnr + shift
            out[f"images_{scene}"] = images / 2
    return out


def payload(**extra) -> dict:
    return {
        "status": "ok",
        "experiment": "quickstart",
        "run_name": "lr-1e-3",
        "model": {"name": "dpdnet_small", "width": 0.25},
        "params": 1_940_000,
        "protocol": {"protocol": "16bit", "lpips": {"mode": "auto"}},
        "global_step": 600,
        "fit_seconds": 151.2,
        "val": means(25.5, 23.5, 8),
        "test": means(26.0, 24.0, 76, scenes=True),
        "best_checkpoint": "/runs/x/checkpoints/best-epoch005-psnr25.500.ckpt",
        "last_checkpoint": "/runs/x/checkpoints/last.ckpt",
        **extra,
    }


def test_the_table_has_model_and_input_means_per_split_and_scene():
    lines = score_table({"val": payload()["val"], "test": payload()["test"]})
    assert lines[0].split()[:4] == ["split", "scenes", "images", "PSNR"]
    assert "LPIPS" not in lines[0]  # NaN everywhere: no column
    val, test, indoor, outdoor = lines[1:]
    assert val.split()[:5] == ["val", "all", "8", "25.50", "(23.50)"] and val.endswith("+2.00")
    assert test.split()[:3] == ["test", "all", "76"] and "0.8000 (0.7000)" in test
    assert indoor.split()[:5] == ["test", "indoor", "38", "27.00", "(24.00)"]
    assert outdoor.endswith("+1.00")


def test_the_summary_names_the_run_the_files_and_what_next():
    text = format_summary(payload(), "dpdeblur-train", "/runs/x", "experiment=dpanet_dpdd")
    first = text.splitlines()[0]
    assert first == (
        "dpdeblur-train quickstart (lr-1e-3): dpdnet_small, 1.94M parameters, "
        "600 steps in 2 min 31 s"
    )
    assert "LPIPS unavailable" in text  # said once, in one line
    for line in ("run dir    /runs/x", "metrics    /runs/x/metrics.json", "last ckpt  /runs/x/"):
        assert line in text
    assert "best ckpt  /runs/x/checkpoints/best-epoch005" in text
    assert text.splitlines()[-1] == "  next: experiment=dpanet_dpdd"


def test_lpips_shows_when_it_was_computed_and_stops_are_said():
    scored = payload(stopped_by="SIGINT", resumed_from={"path": "a.ckpt", "global_step": 400})
    scored["val"] = {**scored["val"], "lpips": 0.2, "input_lpips": 0.3}
    text = format_summary(scored, "dpdeblur-train", "/runs/x")
    assert "LPIPS (input)" in text and "0.2000 (0.3000)" in text
    assert "LPIPS unavailable" not in text and "next:" not in text
    assert "(stopped by SIGINT), resumed from step 400" in text.splitlines()[0]


def test_an_eval_summary_names_the_checkpoint():
    scored = {
        "experiment": "eval",
        "run_name": "eval",
        "model": {"name": "dpanet"},
        "checkpoint": {"path": "/w/best.ckpt", "kind": "lightning", "global_step": 1200},
        "test": means(26.0, 24.0, 76),
    }
    text = format_summary(scored, "dpdeblur-eval", "/runs/e")
    assert text.splitlines()[0] == "dpdeblur-eval: dpanet, lightning checkpoint at step 1,200"
    assert "checkpoint  /w/best.ckpt" in text and "best ckpt" not in text
