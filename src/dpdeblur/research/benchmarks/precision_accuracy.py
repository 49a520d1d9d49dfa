"""Whether bf16 mixed precision holds a network's accuracy: the same training run in fp32
and under bf16 autocast, both scored in fp32.

For every model and training seed s, :func:`train_arm` trains one initialisation (the
registry model built from seed s) on one sequence of batches of synthetic DP scenes
(:class:`~dpdeblur.data.synthetic.SyntheticDPDataset`, rendered once; the order drawn from
seed s) twice: in float32, and with the forward pass and the loss under
``torch.autocast(device, torch.bfloat16)``, which is what Lightning's
``precision=bf16-mixed`` does (weights, gradients and the optimiser stay float32). The loss
is the recipes' (Charbonnier, ``conf/loss/charbonnier.yaml``; K3DN adds 0.1 x its reblur
term, ``conf/loss/k3dn.yaml``, which runs its reverse path and so W^-1 of the invertible
1x1 convs), the optimiser AdamW as ``conf/optimizer/adamw.yaml`` sets it, at a constant
learning rate after a linear warm-up. A step whose loss or gradient is not finite is
counted and not applied. Both trained networks are then scored in float32, eval mode, on
fixed held-out scenes of the test split: the mean per-image PSNR of the all-in-focus
estimate against the sharp target, beside the PSNR of the blurry input (the combined
image, the mean of the views).

Decision (:func:`verdict`): bf16 holds a model's accuracy when no bf16 step was non-finite
and the mean over seeds of (bf16 PSNR - fp32 PSNR) lies within max(0.1 dB, the fp32 seed
spread), the spread being the range (max - min) of the fp32 PSNRs over the seeds: a
difference no larger than what another seed makes in fp32 itself. The rule is two-sided
(bf16 clearly better is also a change). It only means something where training deblurs:
a model whose fp32 runs do not end :data:`LEARNED_MARGIN_DB` above the input's PSNR gets
"inconclusive" instead. Also recorded: per step, the largest relative gap between the
two arms' losses, and each arm's seconds per step.

What it does not show: it is a proxy for the GPU recipes, run where it runs (on the CPU,
CPU autocast casts a slightly different op set than CUDA autocast), at small crops, few
steps and tiny widths; ``make gpu-check`` is the GPU confirmation.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from dpdeblur.data.synthetic import SyntheticDPDataset
from dpdeblur.hardware import cpu_has_native_bf16, describe_machine, load_average, machine_line
from dpdeblur.metrics import psnr
from dpdeblur.models import create_model, model_info
from dpdeblur.models.k3dn import FEATURE_STRIDE, K3DN
from dpdeblur.models.output import output_image
from dpdeblur.research.benchmarks.timing import autocast_context
from dpdeblur.training.config import compose_config
from dpdeblur.training.losses import CompositeLoss

# One small registered variant per family, each with its numerically sensitive ops:
# DPANet (correlation, deformable convs), K3DN (FFT kernel deblur, invertible 1x1 convs,
# 3-D disparity net), DPDNet, Restormer (attention, layer norms).
DEFAULT_MODELS = ("dpanet_tiny", "k3dn_tiny", "dpdnet_small", "restormer_dp_tiny")
# The full run's budget, under 15 minutes on 2 cores of an Intel Xeon with AMX: the
# quarter-width DPDNet steps fast enough to learn past the input; K3DN (with its reblur
# term's reverse path) and DPANet step 15-20x slower than it.
DEFAULT_MODEL_STEPS = (("dpdnet_small", 800), ("k3dn_tiny", 60), ("dpanet_tiny", 30))
MIN_TOLERANCE_DB = 0.1  # the smallest PSNR difference the rule calls a change
LEARNED_MARGIN_DB = 0.3  # fp32 must end this far above the input for a verdict
SCENE_KEYS = ("left", "right", "target", "combined")

HOLDS = "holds"
FAILS = "does not hold"
NONFINITE = "non-finite"
INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class AccuracyPlan:
    """What :func:`measure_precision_accuracy` trains and scores.

    Attributes:
        models: registry names.
        steps: optimiser steps per run.
        model_steps: ``(name, steps)`` pairs for models that get another number of steps
            (a slow network gets fewer where the whole run has a time budget).
        seeds: training seeds 0 .. seeds-1 (initialisation and batch order).
        crop: side of the square training and test scenes, in pixels.
        batch: scenes per step.
        lr: AdamW's learning rate after the warm-up.
        warmup: steps of linear warm-up (from lr / warmup); a run of fewer than 4 x warmup
            steps warms up over its first quarter.
        train_scenes: training scenes rendered once; every seed draws its batches from them.
        test_scenes: held-out scenes (test split) every run is scored on.
        max_coc_px: largest blur radius of the scenes, in pixels.
        data_seed: the synthetic dataset's seed (the same scenes for every run).
        device: ``cpu`` or ``cuda[:N]``.
    """

    models: tuple[str, ...] = DEFAULT_MODELS
    steps: int = 120
    model_steps: tuple[tuple[str, int], ...] = DEFAULT_MODEL_STEPS
    seeds: int = 3
    crop: int = 64
    batch: int = 4
    lr: float = 1e-3
    warmup: int = 50
    train_scenes: int = 512
    test_scenes: int = 16
    max_coc_px: float = 8.0
    data_seed: int = 0
    device: str = "cpu"

    def steps_for(self, name: str) -> int:
        """Optimiser steps of model ``name``'s runs."""
        return dict(self.model_steps).get(name, self.steps)

    def quick(self) -> AccuracyPlan:
        """A smoke-test plan: a few steps at 32x32 on a handful of scenes."""
        return replace(
            self,
            steps=2,
            model_steps=(),
            seeds=2,
            crop=32,
            batch=2,
            warmup=1,
            train_scenes=8,
            test_scenes=2,
        )


# -- data ------------------------------------------------------------------------------


def render_scenes(
    count: int, size: int, split: str, seed: int, max_coc_px: float
) -> dict[str, Tensor]:
    """``count`` synthetic DP scenes of ``size`` x ``size`` pixels, stacked:
    ``{left, right, target, combined}``, each count x 3 x size x size float32."""
    dataset = SyntheticDPDataset(
        length=count, size=(size, size), seed=seed, split=split, max_coc_px=max_coc_px
    )
    samples = [dataset[i] for i in range(count)]
    return {key: torch.stack([s[key] for s in samples]) for key in SCENE_KEYS}


def batch_order(scenes: int, steps: int, batch: int, seed: int) -> Tensor:
    """steps x batch scene indices: successive random permutations of the scenes."""
    generator = torch.Generator().manual_seed(seed)
    epochs = -(-steps * batch // scenes)
    order = torch.cat([torch.randperm(scenes, generator=generator) for _ in range(epochs)])
    return order[: steps * batch].reshape(steps, batch)


# -- the recipe's parts ------------------------------------------------------------------


def model_arguments(name: str, crop: int) -> dict[str, Any]:
    """Constructor overrides for training at ``crop``: K3DN gets square windows of
    crop / 8 feature pixels, so it pads a crop to the crop itself (with the release's
    windows it pads any crop to at least 288 x 448)."""
    if issubclass(model_info(name).architecture, K3DN):
        return {"window_size": crop // FEATURE_STRIDE}
    return {}


def loss_name(name: str) -> str:
    """The recipe's loss config: ``k3dn`` (Charbonnier + 0.1 x reblur) for K3DN models,
    ``charbonnier`` otherwise."""
    return "k3dn" if issubclass(model_info(name).architecture, K3DN) else "charbonnier"


def recipe_parts(
    loss: str, lr: float
) -> tuple[CompositeLoss, Callable[..., torch.optim.Optimizer]]:
    """The loss ``conf/loss/<loss>.yaml`` builds and ``conf/optimizer/adamw.yaml``'s
    optimiser at ``lr`` (call it with the parameters)."""
    cfg = compose_config("train", [f"loss={loss}", "optimizer=adamw"], Path("."))
    return instantiate(cfg.loss), instantiate(cfg.optimizer, lr=lr)


# -- one run -----------------------------------------------------------------------------


@dataclass
class ArmRun:
    """One training run: its loss per step, the steps not applied, seconds per step."""

    losses: list[float]
    nonfinite_steps: int
    seconds_per_step: float
    psnr: float | None = None


def train_arm(
    initial: nn.Module,
    scenes: dict[str, Tensor],
    order: Tensor,
    loss: CompositeLoss,
    optimizer: Callable[..., torch.optim.Optimizer],
    warmup: int,
    bf16: bool,
    seed: int = 0,
) -> tuple[nn.Module, ArmRun]:
    """Train a copy of ``initial`` on ``scenes[order[step]]`` for each step, under bf16
    autocast when ``bf16``; the trained copy and the run. ``scenes`` and ``initial`` are on
    the device to train on."""
    model = copy.deepcopy(initial).train()
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer(params)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
    torch.manual_seed(seed)  # any randomness inside the model draws the same in both arms
    losses: list[float] = []
    nonfinite = 0
    start = time.perf_counter()
    for indices in order:
        batch = {key: scenes[key][indices.to(device)] for key in ("left", "right", "target")}
        opt.zero_grad(set_to_none=True)
        with autocast_context(device, torch.bfloat16 if bf16 else None):
            total, _ = loss(model(batch["left"], batch["right"]), batch)
        total.backward()
        grads = [p.grad for p in params if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(grads)
        if torch.isfinite(total) and torch.isfinite(grad_norm):
            opt.step()
        else:
            nonfinite += 1
        schedule.step()
        losses.append(float(total.detach()))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / max(1, len(order))
    return model, ArmRun(losses, nonfinite, seconds)


@torch.inference_mode()
def score(model: nn.Module, scenes: dict[str, Tensor], batch: int) -> list[float]:
    """Per-image PSNR (dB) of ``model``'s estimates of ``scenes``, in fp32, eval mode."""
    model.eval()
    values: list[float] = []
    for start in range(0, len(scenes["left"]), batch):
        window = slice(start, start + batch)
        estimate = output_image(model(scenes["left"][window], scenes["right"][window]))
        values += psnr(estimate.float(), scenes["target"][window]).tolist()
    return values


# -- the comparison ----------------------------------------------------------------------


def largest_relative_gap(reference: Sequence[float], other: Sequence[float]) -> float:
    """max over steps of |other - reference| / |reference| (inf where one is not finite)."""
    gaps = []
    for ref, value in zip(reference, other, strict=True):
        finite = math.isfinite(ref) and math.isfinite(value)
        gaps.append(abs(value - ref) / max(abs(ref), 1e-12) if finite else math.inf)
    return max(gaps, default=0.0)


def tolerance_db(fp32_psnrs: Sequence[float]) -> float:
    """max(0.1 dB, the range of the fp32 PSNRs over the seeds)."""
    return max(MIN_TOLERANCE_DB, max(fp32_psnrs) - min(fp32_psnrs))


def verdict(
    fp32_psnrs: Sequence[float],
    bf16_psnrs: Sequence[float],
    bf16_nonfinite_steps: int,
    input_psnr: float,
) -> str:
    """:data:`NONFINITE` if a bf16 step was not finite; :data:`INCONCLUSIVE` if the fp32
    runs end less than :data:`LEARNED_MARGIN_DB` above the input's PSNR on average;
    otherwise :data:`HOLDS` when the mean of the per-seed differences (bf16 - fp32) lies
    within :func:`tolerance_db`, else :data:`FAILS`."""
    if bf16_nonfinite_steps > 0:
        return NONFINITE
    if statistics.fmean(fp32_psnrs) < input_psnr + LEARNED_MARGIN_DB:
        return INCONCLUSIVE
    diff = statistics.fmean(b - f for f, b in zip(fp32_psnrs, bf16_psnrs, strict=True))
    return HOLDS if abs(diff) <= tolerance_db(fp32_psnrs) else FAILS


def _summary(runs: dict[str, list[ArmRun]], input_psnr: float) -> dict[str, Any]:
    """The per-model comparison of the fp32 and bf16 runs, seed by seed."""
    fp32 = [run.psnr for run in runs["fp32"]]
    bf16 = [run.psnr for run in runs["bf16"]]
    diffs = [b - f for f, b in zip(fp32, bf16, strict=True)]
    gaps = [
        largest_relative_gap(f.losses, b.losses)
        for f, b in zip(runs["fp32"], runs["bf16"], strict=True)
    ]
    return {
        "fp32_psnr": fp32,
        "bf16_psnr": bf16,
        "bf16_minus_fp32_db": diffs,
        "mean_diff_db": statistics.fmean(diffs),
        "fp32_spread_db": max(fp32) - min(fp32),
        "bf16_spread_db": max(bf16) - min(bf16),
        "tolerance_db": tolerance_db(fp32),
        "fp32_gain_db": statistics.fmean(fp32) - input_psnr,
        "max_loss_gap": max(gaps),
        "nonfinite_steps": {arm: sum(r.nonfinite_steps for r in runs[arm]) for arm in runs},
        "s_per_step": {
            arm: statistics.fmean(r.seconds_per_step for r in runs[arm]) for arm in runs
        },
        "verdict": verdict(fp32, bf16, sum(r.nonfinite_steps for r in runs["bf16"]), input_psnr),
    }


def compare_model(
    name: str,
    plan: AccuracyPlan,
    train: dict[str, Tensor],
    test: dict[str, Tensor],
    input_psnr: float,
) -> dict[str, Any]:
    """Every seed's fp32 and bf16 runs of registry model ``name``, scored, and their
    :func:`_summary`; loss curves kept at 100 or so steps."""
    start = time.perf_counter()
    device = torch.device(plan.device)
    steps = plan.steps_for(name)
    warmup = min(plan.warmup, max(1, steps // 4))
    loss_every = max(1, steps // 100)
    kwargs = model_arguments(name, plan.crop)
    loss_config = loss_name(name)
    loss, optimizer = recipe_parts(loss_config, plan.lr)
    runs: dict[str, list[ArmRun]] = {"fp32": [], "bf16": []}
    params = 0
    for seed in range(plan.seeds):
        torch.manual_seed(seed)
        initial = create_model(name, **kwargs).to(device)
        params = sum(p.numel() for p in initial.parameters())
        order = batch_order(plan.train_scenes, steps, plan.batch, seed)
        for arm in runs:
            model, run = train_arm(
                initial, train, order, loss, optimizer, warmup, arm == "bf16", seed
            )
            run.psnr = statistics.fmean(score(model, test, plan.batch))
            runs[arm].append(run)
    return {
        "model": name,
        "model_args": kwargs,
        "params": params,
        "steps": steps,
        "warmup": warmup,
        "loss": loss_config,
        **_summary(runs, input_psnr),
        "loss_curves": {
            arm: [[round(v, 6) for v in run.losses[::loss_every]] for run in arm_runs]
            for arm, arm_runs in runs.items()
        },
        "loss_every": loss_every,
        "seconds": time.perf_counter() - start,
    }


def measure_precision_accuracy(
    plan: AccuracyPlan, on_model: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """:func:`compare_model` for every model of ``plan`` on one rendered data set, with the
    plan, the input's PSNR, the rule, the machine and the load; ``on_model`` is called with
    the results so far after each model."""
    start = time.perf_counter()
    device = torch.device(plan.device)
    load_before = load_average()
    train = render_scenes(plan.train_scenes, plan.crop, "train", plan.data_seed, plan.max_coc_px)
    test = render_scenes(plan.test_scenes, plan.crop, "test", plan.data_seed, plan.max_coc_px)
    input_psnr = statistics.fmean(psnr(test["combined"], test["target"]).tolist())
    train, test = ({k: v.to(device) for k, v in scenes.items()} for scenes in (train, test))
    results: dict[str, Any] = {
        "plan": asdict(plan),
        "autocast": f"torch.autocast({device.type!r}, dtype=torch.bfloat16)",
        "optimizer": "AdamW (conf/optimizer/adamw.yaml), linear warm-up, then constant lr",
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "input_psnr": input_psnr,
        "rule": (
            f"holds: no non-finite bf16 step and |mean(bf16 - fp32 PSNR)| <= "
            f"max({MIN_TOLERANCE_DB} dB, fp32 seed range); inconclusive: fp32 mean PSNR "
            f"< input PSNR + {LEARNED_MARGIN_DB} dB"
        ),
        "models": [],
        "machine": {**describe_machine(device), "native_bf16": cpu_has_native_bf16()},
        "load_before": load_before,
    }
    for name in plan.models:
        results["models"].append(compare_model(name, plan, train, test, input_psnr))
        results.update(load_after=load_average(), total_s=time.perf_counter() - start)
        if on_model is not None:
            on_model(results)
    return results


# -- report ------------------------------------------------------------------------------


def _dbs(values: Iterable[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def render_precision_accuracy(results: dict[str, Any]) -> str:
    """Markdown table of :func:`measure_precision_accuracy`'s results."""
    plan = results["plan"]
    lines = [
        "# bf16 accuracy: fp32 vs bf16 autocast training, scored in fp32",
        "",
        f"{machine_line(results['machine'])}; native bf16: {results['machine']['native_bf16']}. "
        f"{plan['steps']} AdamW steps (lr {plan['lr']:g}, {plan['warmup']}-step warm-up), "
        f"batch {plan['batch']} of {plan['crop']}x{plan['crop']} synthetic scenes "
        f"(blur radius <= {plan['max_coc_px']:g} px, {plan['train_scenes']} scenes), "
        f"seeds 0-{plan['seeds'] - 1}; PSNR on {plan['test_scenes']} held-out scenes, "
        f"blurry input {results['input_psnr']:.2f} dB. Load average "
        f"{results['load_before']} before, {results.get('load_after')} after; "
        f"{results.get('total_s', 0):.0f} s.",
        "",
        "| model | fp32 PSNR (per seed) | bf16 PSNR (per seed) | bf16 - fp32 (mean) | "
        "fp32 spread | tolerance | fp32 gain over input | max loss gap | non-finite "
        "(fp32, bf16) | s/step (fp32, bf16) | verdict |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for row in results["models"]:
        steps = row["s_per_step"]
        bad = row["nonfinite_steps"]
        lines.append(
            f"| {row['model']} | {_dbs(row['fp32_psnr'])} | {_dbs(row['bf16_psnr'])} | "
            f"{row['mean_diff_db']:+.3f} dB | {row['fp32_spread_db']:.3f} dB | "
            f"{row['tolerance_db']:.3f} dB | {row['fp32_gain_db']:+.2f} dB | "
            f"{100 * row['max_loss_gap']:.1f}% | {bad['fp32']}, {bad['bf16']} | "
            f"{steps['fp32']:.3f}, {steps['bf16']:.3f} | {row['verdict']} |"
        )
    lines += ["", f"Rule: {results['rule']}."]
    return "\n".join(lines) + "\n"
