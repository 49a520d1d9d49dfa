"""``dpdeblur-demo`` (``make demo``): the main job on the embedded default, on the CPU.

1. Renders a small synthetic DP dataset (no download), writes it in the official DPDD
   layout as 16-bit PNG, checks it with the code of ``dpdeblur-data check``, and draws a
   picture of a few samples: left, right, combined, sharp target, the views' difference,
   and the signed defocus (CoC) map given by the scene's depth and the thin-lens camera.
2. Trains a small DPDNet (``conf/experiment/demo.yaml``) for a few minutes on crops of a pool
   of synthetic scenes rendered up front at the tree's image size, choosing the best
   checkpoint on the tree's validation split.
3. Scores that checkpoint on the held-out test split read back from the 16-bit tree, beside
   the blurry input's scores, and writes the panels and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

# Before torch loads: passive OpenMP waiting keeps 2 shared cores from stalling.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from dpdeblur.cli.common import run_cli


def sample_grid(samples: list[dict], path: Path) -> Path:
    """A picture with one row per sample: L, R, combined, sharp, |L - R|, defocus map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ("left", "right", "combined", "target", "|left - right|", "signed defocus (px)")
    fig, axes = plt.subplots(
        len(samples), len(columns), figsize=(2.6 * len(columns), 2.6 * len(samples))
    )
    axes = np.atleast_2d(axes)
    limit = max(float(s["coc"].abs().max()) for s in samples) or 1.0
    for row, sample in enumerate(samples):
        views = {
            k: sample[k].permute(1, 2, 0).numpy() for k in ("left", "right", "combined", "target")
        }
        difference = np.abs(views["left"] - views["right"]).mean(axis=2)
        panels = [*views.values(), difference, sample["coc"][0].numpy()]
        for col, (ax, panel) in enumerate(zip(axes[row], panels, strict=True)):
            if col == 4:
                ax.imshow(panel, cmap="magma", vmin=0, vmax=max(float(panel.max()), 1e-6))
            elif col == 5:
                image = ax.imshow(panel, cmap="coolwarm", vmin=-limit, vmax=limit)
                fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
            else:
                ax.imshow(np.clip(panel, 0, 1))
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col], fontsize=9)
        axes[row][0].set_ylabel(sample["name"], fontsize=8)
    fig.suptitle(
        "Synthetic dual-pixel scenes: red = behind the focal plane, blue = in front", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def train_overrides(
    size: tuple[int, int],
    seed: int,
    val_images: int,
    pool_scenes: int | None,
    native_bf16: bool = True,
) -> list[str]:
    """The demo experiment fitted to the tree it wrote and to the CPU: training scenes are
    rendered at the tree's image size (scene content scales with the canvas), validation is
    the tree's own validation split (same seed, size and count), and training falls back
    from bf16 autocast to fp32 on CPUs that would only emulate bf16."""
    height, width = size
    overrides = [
        f"seed={seed}",
        f"data.synthetic.seed={seed}",
        f"data.synthetic.size=[{height},{width}]",
        f"data.synthetic.pool.size=[{height},{width}]",
        f"data.synthetic.val_length={val_images}",
        f"data.crop_size={min(128, height, width)}",
    ]
    if pool_scenes is not None:
        overrides.append(f"data.synthetic.pool.scenes={pool_scenes}")
    if not native_bf16:
        overrides.append("trainer.precision=32-true")
    return overrides


def train_model(out: Path, minutes: float, overrides: list[str]) -> dict:
    """Train the demo experiment for ``minutes``; returns ``train()``'s summary."""
    from dpdeblur.training.config import compose_config
    from dpdeblur.training.train import train

    seconds = int(minutes * 60)
    budget = f"00:00:{seconds // 60:02d}:{seconds % 60:02d}"
    return train(
        compose_config(
            "train", ["experiment=demo", f"trainer.max_time={budget}", *overrides], out / "train"
        )
    )


def protocol_scores(out: Path, weights: Path, data_root: Path) -> dict:
    """Per-image means on the tree's test split under the evaluation protocol (dpdeblur-eval)."""
    from dpdeblur.training.config import compose_config
    from dpdeblur.training.evaluate import evaluate

    overrides = [
        f"ckpt={weights}",
        "data=dpdd",
        f"data.root={data_root}",
        "data.num_workers=0",
        "metrics.lpips=off",
    ]
    return evaluate(compose_config("eval", overrides, out / "eval"))["test"]


def defocus_scores(
    weights: Path, data_root: Path, scenes, panel_path: Path
) -> tuple[dict, list[dict], list[dict]]:
    """The blurry input's per-image means, and pooled input and model scores per |CoC| band,
    on the test split read back from disk.

    ``scenes`` re-renders the same test scenes (deterministic for the seed) to get each
    pixel's signed CoC radius, which the written tree does not store. Also draws a panel of
    left, right, output, target and error for every test image.
    """
    import torch
    from tqdm import tqdm

    from dpdeblur.data.datasets import DPDDDataset
    from dpdeblur.data.panels import comparison_row, render_panel, save_panel
    from dpdeblur.metrics import DefocusBandScores, mae, psnr, ssim
    from dpdeblur.models.output import output_image
    from dpdeblur.runs.checkpoints import load_model

    model, _ = load_model(weights)
    test = DPDDDataset(data_root, "test")
    model_bands, input_bands = DefocusBandScores(), DefocusBandScores()
    panels = []
    per_image = {"psnr": [], "ssim": [], "mae": []}
    for i in tqdm(range(len(test)), desc="scoring by defocus", unit="image"):
        sample = test[i]
        coc = scenes[i]["coc"][None]
        target = sample["target"][None]
        with torch.no_grad():
            restored = output_image(model(sample["left"][None], sample["right"][None]))
        restored = restored.clamp(0, 1)
        model_bands.update(restored, target, coc)
        blurry = sample["combined"][None].clamp(0, 1)
        input_bands.update(blurry, target, coc)
        for name, metric in (("psnr", psnr), ("ssim", ssim), ("mae", mae)):
            per_image[name].append(float(metric(blurry, target)[0]))
        panels.append(comparison_row(sample["left"], sample["right"], restored[0], target[0]))
    save_panel(render_panel(panels), panel_path)
    input_means = {name: sum(values) / len(values) for name, values in per_image.items()}
    return input_means, input_bands.rows(), model_bands.rows()


def gain_figure(eval_dir: Path, out: Path) -> Path | None:
    """Bars of each test image's PSNR gain over its blurry input, sorted (docs/benchmarks.md)."""
    from dpdeblur.research.figures.plots import per_image_gain, save
    from dpdeblur.research.figures.runs import scored_runs

    runs, _ = scored_runs([eval_dir])
    if not runs:
        return None
    split = runs[0].scored_split
    label = "demo, held-out synthetic test split"
    return save(per_image_gain(label, split, runs[0].image_rows(split)), out, "per_image_gain")[0]


def results_table(
    protocol: dict, input_means: dict, input_rows: list[dict], model_rows: list[dict]
) -> str:
    """Markdown: the protocol's per-image means, then pooled scores per defocus band."""
    header = (
        "| pixels | share | input PSNR | model PSNR | gain (dB) "
        "| input SSIM | model SSIM | input MAE | model MAE |"
    )
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines.append(
        f"| per image (protocol) | 100% | {protocol['input_psnr']:.2f} | {protocol['psnr']:.2f} "
        f"| {protocol['psnr'] - protocol['input_psnr']:+.2f} | {input_means['ssim']:.4f} "
        f"| {protocol['ssim']:.4f} | {input_means['mae']:.4f} | {protocol['mae']:.4f} |"
    )
    for before, after in zip(input_rows, model_rows, strict=True):
        if before["fraction"] == 0:
            lines.append(f"| {before['band']} | 0% | | | | | | | |")
            continue
        lines.append(
            f"| {before['band']} | {before['fraction']:.0%} | {before['psnr']:.2f} "
            f"| {after['psnr']:.2f} | {after['psnr'] - before['psnr']:+.2f} "
            f"| {before['ssim']:.4f} | {after['ssim']:.4f} | {before['mae']:.4f} "
            f"| {after['mae']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def demo(
    out: Path,
    n: int,
    size: tuple[int, int],
    seed: int,
    minutes: float,
    pool_scenes: int | None = None,
) -> int:
    from dpdeblur.data.check import check_dataset
    from dpdeblur.data.datasets import DPDDDataset
    from dpdeblur.data.synthetic import SyntheticDPDataset
    from dpdeblur.data.writer import write_synthetic_dpdd
    from dpdeblur.training.config import compose_config

    start = time.perf_counter()
    data_root = out / "data"
    if data_root.exists():
        import shutil

        shutil.rmtree(data_root)
    # The same blur range as the demo experiment trains on (conf/experiment/demo.yaml).
    experiment = compose_config("train", ["experiment=demo"], out / "train")
    max_coc_px = experiment.data.synthetic.max_coc_px
    counts = write_synthetic_dpdd(data_root, n, size, seed=seed, max_coc_px=max_coc_px)
    print(
        f"[1/4] wrote a synthetic DPDD tree {counts} at {data_root} ({time.perf_counter() - start:.1f}s)"
    )

    report = check_dataset(data_root)
    print("[2/4] " + report.render().replace("\n", "\n      "))
    if not report.ok:
        return 1

    test = DPDDDataset(data_root, "test")
    # The tree's test split again (scenes depend on seed, split and index only), for the
    # picture and, after training, each pixel's CoC radius; each scene is rendered once.
    test_scenes = SyntheticDPDataset(
        length=max(4, len(test)), size=size, seed=seed, split="test", max_coc_px=max_coc_px
    )
    rendered = [test_scenes[i] for i in range(4)]
    # Check the 16-bit round trip of the written tree against the rendered scenes.
    worst = max(
        float((test[i]["target"] - rendered[i]["target"]).abs().max())
        for i in range(min(len(test), 2))
    )
    path = sample_grid(rendered, out / "samples.png")
    print(
        f"[3/4] picture of {len(rendered)} samples: {path} (16-bit round trip max error {worst:.2e})"
    )
    if minutes <= 0:
        print(f"done in {time.perf_counter() - start:.1f}s (training skipped: --minutes 0)")
        return 0

    from dpdeblur.hardware import cpu_has_native_bf16

    model = experiment.model
    native_bf16 = cpu_has_native_bf16()
    precision = experiment.trainer.precision if native_bf16 else "32-true (no bf16 in this CPU)"
    pool = experiment.data.synthetic.get("pool")
    scenes_note = (
        f"crops of {pool_scenes or pool.scenes} synthetic scenes rendered first"
        if pool
        else "streamed synthetic scenes"
    )
    print(
        f"[4/4] training {model.name} (width {model.get('width', 1.0)}, {experiment.loss.terms}) "
        f"on {scenes_note} for {minutes:g} min (CPU, {precision})..."
    )
    overrides = train_overrides(size, seed, counts["val"], pool_scenes, native_bf16)
    trained = train_model(out, minutes, overrides)
    weights = Path(trained["best_checkpoint"] or trained["last_checkpoint"])
    protocol = protocol_scores(out, weights, data_root)
    scenes = rendered + [test_scenes[i] for i in range(len(rendered), len(test))]
    input_means, input_rows, model_rows = defocus_scores(
        weights, data_root, scenes, out / "test_panels.png"
    )
    table = results_table(protocol, input_means, input_rows, model_rows)
    gain_path = gain_figure(out / "eval", out)
    (out / "results.md").write_text(
        f"# dpdeblur demo: held-out synthetic test split ({int(protocol['images'])} images, "
        f"16-bit PNG, {trained['global_step']} training steps)\n\n"
        "Per image: the protocol's means (docs/metrics.md). Rows by blur radius (|CoC|) pool "
        "the pixels of all test images in that band (the first is in focus).\n\n" + table
    )
    (out / "results.json").write_text(
        json.dumps(
            {
                "steps": trained["global_step"],
                "checkpoint": str(weights),
                "protocol": protocol,
                "input": input_means,
                "by_defocus": {"input": input_rows, "model": model_rows},
            },
            indent=2,
        )
    )
    gain = protocol["psnr"] - protocol["input_psnr"]
    print(
        f"      {trained['global_step']} steps; held-out synthetic test split "
        f"({int(protocol['images'])} images, 16-bit PNG): input PSNR "
        f"{protocol['input_psnr']:.2f} dB -> model {protocol['psnr']:.2f} dB ({gain:+.2f} dB)\n"
    )
    print(table)
    written = [f"table: {out / 'results.md'}", f"test panels: {out / 'test_panels.png'}"]
    if gain_path:
        written.append(f"per-image gains: {gain_path}")
    written += [
        f"run: {out / 'train'} (checkpoints, panels/, metrics.json)",
        f"scores: {out / 'eval'}",
    ]
    print("      " + "; ".join(written))
    print(f"done in {time.perf_counter() - start:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpdeblur-demo", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default="outputs/demo", help="output folder (default outputs/demo)"
    )
    parser.add_argument(
        "--n", type=int, default=100, help="synthetic scenes to write (split 70/15/15)"
    )
    parser.add_argument("--size", type=int, nargs=2, default=(192, 256), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--minutes", type=float, default=7.0, help="training time budget (0: data only)"
    )
    parser.add_argument(
        "--pool-scenes",
        type=int,
        default=None,
        help="training scenes rendered up front (default: the demo experiment's pool)",
    )
    args = parser.parse_args(argv)
    return run_cli(
        lambda: demo(
            Path(args.out), args.n, tuple(args.size), args.seed, args.minutes, args.pool_scenes
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
