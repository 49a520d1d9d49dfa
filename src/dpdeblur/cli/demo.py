"""``dpdeblur-demo`` (``make demo``): the main job on the embedded default, on the CPU.

1. Renders a small synthetic DP dataset of photograph-like scenes (no download;
   docs/synthetic.md), writes it in the official DPDD layout as 16-bit PNG, checks it with
   the code of ``dpdeblur-data check``, and draws a picture of a few samples: left, right,
   combined, sharp target, the views' difference, and the signed defocus (CoC) map. It also
   writes a second test split of another scene family rendered with the other DP kernel
   (hard half-discs instead of soft), to see how the network generalises.
2. Probes the CPU: a few training steps of the demo's network give its seconds per step in
   the chosen precision, and the demo prints the time its budget will take.
3. Trains a small DPDNet (``conf/experiment/demo.yaml``) for a fixed number of optimiser
   steps, so that the result does not depend on the CPU's speed (only the time does), on
   crops of a pool of scenes rendered up front, choosing the best checkpoint on the tree's
   validation split.
4. Scores that checkpoint on both test splits read back from their 16-bit trees, beside the
   blurry input's scores, and writes the panels, ``results.md`` and ``results.json`` with
   the steps, steps/s, CPU, load and the time of each phase (docs/demo.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

# Before torch loads: passive OpenMP waiting keeps 2 shared cores from stalling.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
from lightning.pytorch.callbacks import Callback

from dpdeblur.cli.common import run_cli
from dpdeblur.training.config import PRECISION_ENV, forced_precision

# The least the demo should gain on its test split and on its second test split (docs/demo.md
# measured +3.46 and +2.11 dB); below either, it says so.
USUAL_GAIN_DB = 2.0
USUAL_OTHER_GAIN_DB = 1.0
PROBE_STEPS = (3, 6)  # untimed warm-up steps, then timed steps (their median is reported)
# The demo's pre-trained weights (make demo-pretrain writes them; docs/demo.md) and the
# record of how they were made, beside them.
REPO_ROOT = Path(__file__).resolve().parents[3]
PRETRAINED = REPO_ROOT / "experiments" / "weights" / "demo_dpdnet_small.pt"
# make demo-pretrain: the demo experiment, longer, on other scenes (seed 1: none of them is
# in the demo's tree, which uses seed 0) and a larger pool, at the peak rate of a run from
# scratch; the demo then fine-tunes the result for its own budget.
PRETRAIN_SEED = 1
PRETRAIN_STEPS = 6000
PRETRAIN_OVERRIDES = (
    "optimizer.lr=2e-3",
    "data.synthetic.pool.scenes=1536",
    "callbacks.ema.decay=0.995",
    "callbacks.ema.update_starting_at_step=100",
    "trainer.check_val_every_n_epoch=5",
    "trainer.max_time=null",
)


class StepTimer(Callback):
    """Times a fit's training loop for the demo's report: optimiser steps, seconds in the
    loop, and the part of them spent validating; written as JSON to ``path`` when the fit
    ends (``+callbacks.step_timer={_target_: dpdeblur.cli.demo.StepTimer, path: ...}``)."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.start = time.perf_counter()
        self.validation_start = 0.0
        self.validating = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()
        self.validating = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self.validation_start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            self.validating += time.perf_counter() - self.validation_start

    def on_train_end(self, trainer, pl_module) -> None:
        loop = time.perf_counter() - self.start
        timing = {
            "steps": int(trainer.global_step),
            "loop_seconds": loop,
            "validation_seconds": self.validating,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(timing, indent=2) + "\n")


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


def choose_precision(requested: str | None, native_bf16: bool) -> tuple[str, str]:
    """Lightning's precision for the demo and why: ``requested`` (``--precision``), else
    ``$DPDEBLUR_PRECISION``, else ``auto``: bf16 autocast where the CPU computes bf16 in
    hardware, fp32 elsewhere (emulated bf16 is about 8x slower than fp32 there)."""
    if requested:
        precision = forced_precision(requested, "--precision")
    else:
        precision = forced_precision(os.environ.get(PRECISION_ENV))
    if precision is None:
        if native_bf16:
            return "bf16-mixed", "bf16 autocast (this CPU computes bf16 in hardware)"
        return "32-true", "fp32 (no bf16 hardware in this CPU)"
    if precision == "32-true":
        return precision, "fp32 (forced)"
    if native_bf16:
        return precision, "bf16 autocast (forced)"
    return precision, "bf16 autocast (forced; emulated on this CPU: expect about 8x slower steps)"


def train_overrides(
    size: tuple[int, int],
    seed: int,
    val_images: int,
    pool_scenes: int | None,
    precision: str,
    steps: int | None = None,
    minutes: float | None = None,
    timer_path: Path | None = None,
    init: Path | None = None,
) -> list[str]:
    """The demo experiment fitted to the tree it wrote and to the CPU: training scenes are
    rendered at the tree's image size (scene content scales with the canvas), validation is
    the tree's own validation split (same seed, size and count), the precision is the one
    chosen for this CPU (:func:`choose_precision`), ``steps`` replaces the step budget,
    ``minutes`` the time cap, and ``init`` gives the weights to start from."""
    height, width = size
    overrides = [
        f"seed={seed}",
        f"data.synthetic.seed={seed}",
        f"data.synthetic.size=[{height},{width}]",
        f"data.synthetic.pool.size=[{height},{width}]",
        f"data.synthetic.val_length={val_images}",
        f"data.crop_size={min(128, height, width)}",
        f"trainer.precision={precision}",
    ]
    if pool_scenes is not None:
        overrides.append(f"data.synthetic.pool.scenes={pool_scenes}")
    if steps is not None:
        overrides.append(f"trainer.max_steps={steps}")
    if minutes is not None:
        seconds = max(1, round(minutes * 60))
        overrides.append(f"trainer.max_time=00:00:{seconds // 60:02d}:{seconds % 60:02d}")
    if timer_path is not None:
        overrides.append(f"+callbacks.step_timer._target_={__name__}.StepTimer")
        overrides.append(f"+callbacks.step_timer.path={timer_path}")
    if init is not None:
        overrides.append(f"init_from={init}")
    return overrides


def probe_step_seconds(
    experiment, precision: str, crop: int, samples: list[dict], init: Path | None = None
) -> float:
    """Seconds per optimiser step of the demo's network on this CPU: the median of a few
    steps on crops of rendered ``samples``, from the weights training will start from
    (``init``; else a fresh network), in the experiment's batch size, layout and precision.
    No data loading, validation or weight averaging: the report counts those apart. The
    median keeps a burst of other work on shared cores from skewing it."""
    import torch
    from omegaconf import OmegaConf

    from dpdeblur.runs.checkpoints import load_model, model_from_config

    if init is not None:
        model, _ = load_model(init)
    else:
        model = model_from_config(OmegaConf.to_container(experiment.model, resolve=True))
    channels_last = bool(experiment.get("channels_last", False))
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.float().to(memory_format=memory_format).train()
    fused = bool(experiment.optimizer.get("fused", False))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused)
    batch = int(experiment.data.batch_size)
    left, right, target = (
        torch.stack([samples[i % len(samples)][key][:, :crop, :crop] for i in range(batch)])
        for key in ("left", "right", "target")
    )
    left, right = (t.contiguous(memory_format=memory_format) for t in (left, right))
    warm_up, timed = PROBE_STEPS
    seconds = []
    for step in range(warm_up + timed):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            output = model(left, right)
        loss = torch.nn.functional.mse_loss(output.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step >= warm_up:
            seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def train_model(out: Path, overrides: list[str]) -> dict:
    """Train the demo experiment with ``overrides``; returns ``train()``'s summary."""
    from dpdeblur.training.config import compose_config
    from dpdeblur.training.train import train

    return train(compose_config("train", ["experiment=demo", *overrides], out / "train"))


def pretrained_record(weights: Path) -> dict:
    """How the pre-trained weights were made (the JSON ``make demo-pretrain`` wrote beside
    them), or a one-line error saying how to get them."""
    from dpdeblur.errors import CheckpointError

    record = weights.with_suffix(".json")
    if not weights.is_file() or not record.is_file():
        raise CheckpointError(
            "no pre-trained demo weights (or their record) here",
            weights,
            "run `make demo-pretrain`, or `dpdeblur-demo --from-scratch` to train from zero",
        )
    return json.loads(record.read_text())


def pretrain(
    out: Path, weights: Path, size: tuple[int, int], steps: int, precision: str | None
) -> int:
    """``make demo-pretrain``: train the demo's network for ``steps`` on scenes of seed
    :data:`PRETRAIN_SEED` (never those of the demo's tree), then write its best weights
    (chosen on that seed's validation scenes) in half precision to ``weights`` and, beside
    them, a JSON record of the command, seed, steps, time, CPU and scores."""
    import platform

    import torch
    from omegaconf import OmegaConf

    from dpdeblur.hardware import cpu_has_native_bf16, cpu_name, load_average
    from dpdeblur.runs.checkpoints import load_model, write_weights

    start = time.perf_counter()
    chosen, why = choose_precision(precision, cpu_has_native_bf16())
    overrides = train_overrides(size, PRETRAIN_SEED, 15, None, chosen, steps)
    overrides += list(PRETRAIN_OVERRIDES)
    cpu, load = cpu_name(), load_average()
    print(
        f"pre-training the demo's network for {steps} steps (seed {PRETRAIN_SEED}, {why}) on "
        f"{cpu}, load {load}..."
    )
    trained = train_model(out, overrides)
    best = Path(trained["best_checkpoint"] or trained["last_checkpoint"])
    model, _ = load_model(best)
    config = OmegaConf.to_container(OmegaConf.create(trained["model"]), resolve=True)
    kwargs = {k: v for k, v in config.items() if k not in ("name", "_target_")}
    run_config = OmegaConf.load(out / "train" / "config.yaml")
    seconds = time.perf_counter() - start
    source = f"make demo-pretrain: {steps} steps, seed {PRETRAIN_SEED}, {best.name}"
    write_weights(weights, model.half(), kwargs, source)
    record = {
        "command": "make demo-pretrain (dpdeblur-demo --pretrain)",
        "experiment": "demo",
        "overrides": overrides,
        "data": OmegaConf.to_container(run_config.data.synthetic, resolve=True),
        "seed": PRETRAIN_SEED,
        "steps": int(trained["global_step"]),
        "best_checkpoint": best.name,
        "val": trained.get("val"),
        "minutes": round(seconds / 60, 1),
        "precision": chosen,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": load,
        "load_average_at_end": load_average(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "stored_as": "float16 state dict (dpdeblur-weights file)",
    }
    weights.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {weights} and {weights.with_suffix('.json')} ({seconds / 60:.1f} min)")
    return 0


def protocol_scores(out: Path, weights: Path, data_root: Path, name: str = "eval") -> dict:
    """Per-image means on a tree's test split under the evaluation protocol (dpdeblur-eval),
    run in ``out / name``."""
    from dpdeblur.training.config import compose_config
    from dpdeblur.training.evaluate import evaluate

    overrides = [
        f"ckpt={weights}",
        "data=dpdd",
        f"data.root={data_root}",
        "data.num_workers=0",
        "metrics.lpips=off",
    ]
    return evaluate(compose_config("eval", overrides, out / name))["test"]


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


def tree_cocs(data_root: Path) -> list[np.ndarray]:
    """The signed CoC maps a synthetic tree's test split stores beside its combined view."""
    from dpdeblur.data.writer import split_folders

    folder = split_folders(data_root, "test", "official")["coc"]
    return [np.load(path) for path in sorted(folder.glob("*.npy"))]


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


def phase_table(phases: dict[str, float]) -> str:
    """Markdown: seconds per phase of the run, and the total."""
    lines = ["| phase | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in phases.items()]
    return "\n".join(lines) + "\n"


def other_family(family: str) -> str:
    """The scene family of the second test split: the one the demo does not train on."""
    return "layers" if family == "photo" else "photo"


def other_kernel(kernel: str) -> str:
    """The DP kernel of the second test split: the one the demo does not train on."""
    return "hard" if kernel == "soft" else "soft"


def demo(
    out: Path,
    n: int,
    size: tuple[int, int],
    seed: int,
    minutes: float | None = None,
    pool_scenes: int | None = None,
    steps: int | None = None,
    precision: str | None = None,
    init: Path | None = PRETRAINED,
) -> int:
    from omegaconf import OmegaConf

    from dpdeblur.data.check import check_dataset
    from dpdeblur.data.datasets import DPDDDataset
    from dpdeblur.data.scene_report import coc_histogram, histogram_table
    from dpdeblur.data.synthetic import SyntheticDPDataset
    from dpdeblur.data.writer import write_synthetic_dpdd
    from dpdeblur.training.config import compose_config

    start = time.perf_counter()
    trains = minutes is None or minutes > 0
    record = pretrained_record(init) if init is not None and trains else None
    phases: dict[str, float] = {}
    data_root, other_root = out / "data", out / "data_other"
    for root in (data_root, other_root):
        if root.exists():
            shutil.rmtree(root)
    # The scenes, kernel and blur range the demo experiment trains on (conf/experiment/demo.yaml).
    experiment = compose_config("train", ["experiment=demo"], out / "train")
    synthetic = experiment.data.synthetic
    family, kernel = synthetic.get("scenes", "layers"), synthetic.get("kernel", "soft")
    scene_options = {"max_coc_px": synthetic.max_coc_px, "scenes": family}
    if synthetic.get("kernel_options"):
        scene_options["kernel_options"] = OmegaConf.to_container(synthetic.kernel_options)
    counts = write_synthetic_dpdd(data_root, n, size, seed=seed, kernel=kernel, **scene_options)
    phases["render and write the tree"] = time.perf_counter() - start
    print(
        f"[1/6] wrote a synthetic DPDD tree {counts} of '{family}' scenes, {kernel} DP kernels, "
        f"at {data_root} ({phases['render and write the tree']:.1f}s)"
    )

    report = check_dataset(data_root)
    print("[2/6] " + report.render().replace("\n", "\n      "))
    if not report.ok:
        return 1

    mark = time.perf_counter()
    family2, kernel2 = other_family(family), other_kernel(kernel)
    other_counts = write_synthetic_dpdd(
        other_root,
        n,
        size,
        seed=seed,
        kernel=kernel2,
        splits=["test"],
        max_coc_px=synthetic.max_coc_px,
        scenes=family2,
    )
    phases["render and write the second test split"] = time.perf_counter() - mark
    print(
        f"[3/6] second test split ({other_counts['test']} '{family2}' scenes, {kernel2} DP "
        f"kernels: not what the demo trains on) at {other_root} "
        f"({phases['render and write the second test split']:.1f}s)"
    )

    mark = time.perf_counter()
    test = DPDDDataset(data_root, "test")
    # The tree's test split again (scenes depend on seed, split and index only), for the
    # picture and, after training, each pixel's CoC radius; each scene is rendered once.
    test_scenes = SyntheticDPDataset(
        length=max(4, len(test)),
        size=size,
        seed=seed,
        split="test",
        kernel=kernel,
        **scene_options,
    )
    rendered = [test_scenes[i] for i in range(4)]
    # Check the 16-bit round trip of the written tree against the rendered scenes.
    worst = max(
        float((test[i]["target"] - rendered[i]["target"]).abs().max())
        for i in range(min(len(test), 2))
    )
    path = sample_grid(rendered, out / "samples.png")
    phases["picture"] = time.perf_counter() - mark
    print(
        f"[4/6] picture of {len(rendered)} samples: {path} (16-bit round trip max error {worst:.2e})"
    )
    if not trains:
        print(f"done in {time.perf_counter() - start:.1f}s (training skipped: --minutes 0)")
        return 0

    from dpdeblur.hardware import cpu_has_native_bf16, cpu_name, load_average

    mark = time.perf_counter()
    chosen, why = choose_precision(precision, cpu_has_native_bf16())
    budget = int(steps if steps is not None else experiment.trainer.max_steps)
    crop = min(int(experiment.data.crop_size), *size)
    step_seconds = probe_step_seconds(experiment, chosen, crop, rendered, init)
    phases["probe"] = time.perf_counter() - mark
    pool = synthetic.get("pool")
    pool_count = int(pool_scenes or pool.scenes) if pool else 0
    render_seconds = phases["render and write the tree"] / max(1, sum(counts.values()))
    workers = max(1, int(experiment.data.num_workers))
    # Lightning's loop (data, weight averaging, logging, validation) adds about 30 % to a
    # bare step (docs/training.md: 96.4 ms bare, 125 ms a step in a whole run).
    estimate = budget * step_seconds * 1.3 + pool_count * render_seconds / workers
    cap_seconds = (minutes or 0) * 60 or _seconds(experiment.trainer.get("max_time"))
    cpu = cpu_name()
    print(
        f"[5/6] probe on {cpu} ({os.cpu_count()} cores, load {load_average()}): "
        f"{step_seconds:.3f} s a step in {why}: {budget} steps ~ {budget * step_seconds / 60:.1f} "
        f"min; with the pool of {pool_count} scenes and validation, training ~ "
        f"{estimate / 60:.1f} min"
    )
    if cap_seconds and estimate > cap_seconds:
        print(
            f"      warning: that is more than the {cap_seconds / 60:g}-min cap (--minutes): "
            f"training will stop early and gain less than the usual +{USUAL_GAIN_DB:g} dB; "
            f"--minutes {int(estimate / 60) + 2} lets it finish"
        )
    model = experiment.model
    if record is not None:
        origin = (
            f"pre-trained for {record['steps']} steps by `{record['command']}` (seed "
            f"{record['seed']}, {record['minutes']} min in {record['precision']} on "
            f"{record['cpu']}; {init})"
        )
        print(
            f"[6/6] fine-tuning {model.name} (width {model.get('width', 1.0)}), {origin}, for "
            f"{budget} steps on crops of {pool_count} '{family}' scenes rendered first..."
        )
    else:
        origin = "trained from scratch (no pre-training)"
        print(
            f"[6/6] training {model.name} (width {model.get('width', 1.0)}) from scratch for "
            f"{budget} steps on crops of {pool_count} '{family}' scenes rendered first...\n"
            f"      warning: from scratch, the demo's usual +{USUAL_GAIN_DB:g} dB takes about "
            "2,000 steps (docs/demo.md); the pre-trained weights reach it in the budget"
        )
    timer_path = out / "train_timing.json"
    overrides = train_overrides(
        size, seed, counts["val"], pool_scenes, chosen, budget, minutes, timer_path, init
    )
    mark = time.perf_counter()
    trained = train_model(out, overrides)
    phases["training (pool render, steps, validation, re-validation)"] = time.perf_counter() - mark
    timing = json.loads(timer_path.read_text()) if timer_path.is_file() else {}
    weights = Path(trained["best_checkpoint"] or trained["last_checkpoint"])
    done = int(trained["global_step"])
    loop = timing.get("loop_seconds", 0.0) - timing.get("validation_seconds", 0.0)
    steps_per_second = done / loop if loop > 0 else float("nan")

    mark = time.perf_counter()
    before = protocol_scores(out, init, data_root, "eval_pretrained") if record else None
    protocol = protocol_scores(out, weights, data_root)
    scenes = rendered + [test_scenes[i] for i in range(len(rendered), len(test))]
    input_means, input_rows, model_rows = defocus_scores(
        weights, data_root, scenes, out / "test_panels.png"
    )
    phases["scoring the test split"] = time.perf_counter() - mark
    mark = time.perf_counter()
    other = protocol_scores(out, weights, other_root, "eval_other")
    phases["scoring the second test split"] = time.perf_counter() - mark
    table = results_table(protocol, input_means, input_rows, model_rows)
    gain_path = gain_figure(out / "eval", out)
    gain = protocol["psnr"] - protocol["input_psnr"]
    other_gain = other["psnr"] - other["input_psnr"]
    histograms = {
        f"test split ('{family}', {kernel})": coc_histogram(s["coc"].numpy() for s in scenes),
        f"second test split ('{family2}', {kernel2})": coc_histogram(tree_cocs(other_root)),
    }
    phases["total"] = time.perf_counter() - start
    machine = {"cpu": cpu, "cores": os.cpu_count(), "load_average": load_average()}
    summary = (
        f"{done} of {budget} steps in {loop:.0f} s of training steps ({steps_per_second:.2f} "
        f"steps/s, {why}) on {cpu}, load {machine['load_average']}; the network was {origin}"
    )
    if before is not None:
        summary += (
            f"; the pre-trained weights alone gain {before['psnr'] - before['input_psnr']:+.2f} dB"
            " on the test split"
        )
    headline = (
        f"test split ({int(protocol['images'])} '{family}' scenes, {kernel} kernels): input "
        f"{protocol['input_psnr']:.2f} dB -> model {protocol['psnr']:.2f} dB ({gain:+.2f} dB)\n"
        f"second test split ({int(other['images'])} '{family2}' scenes, {kernel2} kernels): "
        f"input {other['input_psnr']:.2f} dB -> model {other['psnr']:.2f} dB ({other_gain:+.2f} dB)"
    )
    (out / "results.md").write_text(
        f"# dpdeblur demo: held-out synthetic test splits (16-bit PNG)\n\n{summary}\n\n"
        f"{headline.replace(chr(10), '  ' + chr(10))}\n\n"
        "## The test split\n\nPer image: the protocol's means (docs/metrics.md). Rows by blur "
        "radius (|CoC|) pool the pixels of all test images in that band (the first is in "
        "focus).\n\n"
        + table
        + "\n## Share of pixels per blur radius\n\n"
        + histogram_table(histograms)
        + "\n## Time per phase\n\n"
        + phase_table(phases)
    )
    (out / "results.json").write_text(
        json.dumps(
            {
                "steps": done,
                "step_budget": budget,
                "steps_per_second": steps_per_second,
                "probe_seconds_per_step": step_seconds,
                "precision": chosen,
                "machine": machine,
                "pretrained": record,
                "pretrained_alone": before,
                "checkpoint": str(weights),
                "scenes": {"test": [family, kernel], "other": [family2, kernel2]},
                "protocol": protocol,
                "other": other,
                "input": input_means,
                "by_defocus": {"input": input_rows, "model": model_rows},
                "coc_histograms": histograms,
                "phases_seconds": phases,
                "timing": timing,
            },
            indent=2,
        )
    )
    print(f"      {summary}\n      " + headline.replace("\n", "\n      ") + "\n")
    print(table)
    print(histogram_table(histograms))
    print(phase_table(phases))
    if done < budget:
        print(
            f"      warning: the time cap stopped training at step {done} of {budget}; the "
            f"usual result (+{USUAL_GAIN_DB:g} dB or more) needs the whole budget (--minutes)"
        )
    elif gain < USUAL_GAIN_DB:
        changed = [] if record is not None else ["no pre-training"]
        if budget != int(experiment.trainer.max_steps):
            changed.append(f"{budget} steps instead of {experiment.trainer.max_steps}")
        print(
            f"      warning: {gain:+.2f} dB is below the usual +{USUAL_GAIN_DB:g} dB of the demo"
            + (f" ({', '.join(changed)})" if changed else "")
            + " (docs/demo.md)"
        )
    if other_gain < USUAL_OTHER_GAIN_DB and done == budget:
        print(
            f"      warning: {other_gain:+.2f} dB on the second test split is below the usual "
            f"+{USUAL_OTHER_GAIN_DB:g} dB (docs/demo.md)"
        )
    written = [f"table: {out / 'results.md'}", f"test panels: {out / 'test_panels.png'}"]
    if gain_path:
        written.append(f"per-image gains: {gain_path}")
    written += [
        f"run: {out / 'train'} (checkpoints, panels/, metrics.json)",
        f"scores: {out / 'eval'}, {out / 'eval_other'}",
    ]
    print("      " + "; ".join(written))
    print(f"done in {phases['total']:.1f}s")
    return 0


def _seconds(max_time: str | None) -> float:
    """Seconds of a Lightning ``DD:HH:MM:SS`` time limit (0 when there is none)."""
    if not max_time:
        return 0.0
    days, hours, mins, secs = (int(part) for part in str(max_time).split(":"))
    return float(((days * 24 + hours) * 60 + mins) * 60 + secs)


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
        "--steps",
        type=int,
        default=None,
        help="optimiser steps to train (default: the demo experiment's budget)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help="cap on the training time (default: the demo experiment's; 0: data only)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        help=f"auto (default), 32 (force fp32) or bf16; also ${PRECISION_ENV}",
    )
    parser.add_argument(
        "--pool-scenes",
        type=int,
        default=None,
        help="training scenes rendered up front (default: the demo experiment's pool)",
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=PRETRAINED,
        help="pre-trained weights to fine-tune (default: those make demo-pretrain wrote)",
    )
    parser.add_argument(
        "--from-scratch", action="store_true", help="train from zero, without pre-training"
    )
    parser.add_argument(
        "--pretrain",
        action="store_true",
        help=f"make demo-pretrain: train {PRETRAIN_STEPS} steps (or --steps) and write --weights",
    )
    args = parser.parse_args(argv)
    if args.pretrain:
        return run_cli(
            lambda: pretrain(
                Path(args.out),
                args.weights,
                tuple(args.size),
                args.steps or PRETRAIN_STEPS,
                args.precision,
            )
        )
    return run_cli(
        lambda: demo(
            Path(args.out),
            args.n,
            tuple(args.size),
            args.seed,
            args.minutes,
            args.pool_scenes,
            args.steps,
            args.precision,
            None if args.from_scratch else args.weights,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
