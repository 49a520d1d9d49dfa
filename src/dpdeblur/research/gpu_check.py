"""``make gpu-check``: what can only be checked on a GPU, in one run of at most 8 minutes.

``dpdeblur-bench gpu-check --out experiments/results/gpu_check.json`` (``make gpu-check``)
runs, on one CUDA device:

1. ``cuda_tests``: the test suite's CUDA tests (``pytest -k "cuda or gpu" tests``, run from
   the repository root; on a GPU they run instead of skipping);
2. ``numerics``: the GPU's results against float64 on the CPU, in float32 and in bfloat16
   (bf16 inputs under bf16 autocast, float32 parameters, as ``bf16-mixed`` training runs
   them), for the correlation (the Triton kernels and the torch loops), the deformable
   conv (torchvision's kernel and the sampled one), K3DN's Fourier deblur and reblur
   (kernel set, transfer functions, FFT filtering) and its invertible 1x1 conv (forward and
   inverse): the output and the gradient of every input and parameter. Inputs are rounded
   to bf16 first, so both precisions and the reference see the same values; the error is
   ``max |result - reference| / max |reference|`` per tensor, against :data:`TOLERANCES`
   (TF32 is off for these). Also the uint16 -> float conversion of DPDD batches on the
   device (:func:`~dpdeblur.data.transforms.images_to_float`), which must be bit-exact;
3. ``train_steps``: one DPANet and one K3DN Adam step at 512x512, batch 4, fp32 and bf16
   autocast: ms per step (median of the timed steps after warm-up), samples/s, peak memory
   (``torch.cuda.max_memory_allocated``), and the correlation's and the deformable conv's
   share of the step's GPU time (``torch.profiler``: the operators and their backward
   nodes, children included, over all kernel time);
4. ``train_cli``: a 2-step ``dpdeblur-train`` on a small written DPDD tree (uint16 batches
   through the cache, pinned memory and ``auto`` workers) with ``trainer=gpu``, and with
   ``trainer=ddp trainer.devices=1``;
5. ``inference``: a 1120x1680 forward pass of DPANet and of K3DN (seconds, peak memory).

Results go to a JSON file as they come (an interrupted run keeps what it measured). A part
that fails is recorded with its error and the rest goes on; the exit status is 1 when a
check failed. Without CUDA only the numerics run, on the CPU at small sizes (bf16 through
CPU autocast), everything else is recorded as ``"skipped: no CUDA"``, and the exit status is
0 when they pass (``tests/research/test_gpu_check.py``).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

import dpdeblur.nn.correlation as correlation_module
from dpdeblur.data.transforms import ToTensor, chw_uint16, images_to_float
from dpdeblur.data.writer import write_split
from dpdeblur.hardware import describe_machine, load_average
from dpdeblur.nn import correlation_triton
from dpdeblur.nn.deform import ModulatedDeformConv2d
from dpdeblur.nn.invertible import ModulatedInvertibleConv1x1
from dpdeblur.nn.kernel_set import (
    SymmetricKernelSet,
    floor_magnitude,
    fourier_deblur,
    fourier_reblur,
    kernel_transfer,
    spectrum_to_kernels,
)
from dpdeblur.research.benchmarks.fullres import measure_here
from dpdeblur.research.benchmarks.selection import build_model
from dpdeblur.research.benchmarks.timing import random_pair, synchronize, training_loss

SKIPPED_NO_CUDA = "skipped: no CUDA"
# Largest accepted max |result - float64| / max |float64| per tensor, by compute dtype:
# float32 sums of a few hundred terms (1e-4), bf16 inputs and products under autocast with
# float32 sums (3e-2: bf16 keeps 8 bits, 4e-3 relative). The Fourier deblur's float32 bound
# is 1e-3: it divides by transfer values down to the floor 0.1, so the kernels' gradient
# (through 1 / T, i.e. 1 / T^2) carries up to 100x the rounding of its inputs.
TOLERANCES = {"float32": 1e-4, "bfloat16": 3e-2}
FOURIER_TOLERANCES = {"float32": 1e-3, "bfloat16": 3e-2}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CUDA_TEST_SELECTION = "cuda or gpu"
# Profiler event names (their GPU time includes their kernels) of the two operators whose
# share of a training step is reported.
SHARE_EVENTS = {
    "correlation": (
        "dpdeblur::correlation",
        "GeneratedBackwardFor_dpdeblur_correlation_defaultBackward",
    ),
    "dcn": (
        "torchvision::deform_conv2d",
        "torchvision::_deform_conv2d_backward",
        "dpdeblur::deform_conv2d",
        "GeneratedBackwardFor_dpdeblur_deform_conv2d_defaultBackward",
    ),
}


@dataclass
class GpuCheckPlan:
    """Sizes and limits of one run (:meth:`for_device` gives the defaults)."""

    device: str
    numerics_size: tuple[int, int] = (48, 80)
    numerics_channels: int = 32
    numerics_batch: int = 2
    train_models: tuple[str, ...] = ("dpanet", "k3dn")
    train_crop: int = 512
    train_batch: int = 4
    warmup_steps: int = 2
    timed_steps: int = 5
    inference_models: tuple[str, ...] = ("dpanet", "k3dn")
    inference_size: tuple[int, int] = (1120, 1680)
    tests_dir: Path = Path("tests")
    budget_s: float = 480.0
    sections: tuple[str, ...] = ("cuda_tests", "numerics", "train_steps", "train_cli", "inference")

    @classmethod
    def for_device(cls, device: str | None = None) -> GpuCheckPlan:
        """The full check on CUDA; on the CPU the numerics at small sizes."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda"):
            return cls(device=device)
        return cls(device=device, numerics_size=(12, 20), numerics_channels=8, numerics_batch=1)


# -- numerics ------------------------------------------------------------------------------


def _bf16_exact(shape: tuple[int, ...], generator: torch.Generator, scale: float = 1.0) -> Tensor:
    """Random float64 values that bf16 represents exactly (so every precision sees them)."""
    return (
        (torch.randn(shape, generator=generator, dtype=torch.float64) * scale).bfloat16().double()
    )


def _relative_error(result: Tensor, reference: Tensor) -> float:
    scale = reference.abs().max().item()
    error = (result.detach().double().cpu() - reference).abs().max().item()
    return error / scale if scale > 0 else error


@dataclass
class NumericsCase:
    """One operator: ``run(inputs, module) -> outputs`` on float inputs that require grad."""

    op: str
    impl: str
    inputs: dict[str, Tensor]  # float64, bf16-exact
    make_module: Callable[[], nn.Module] | None
    run: Callable[[dict[str, Tensor], nn.Module | None], tuple[Tensor, ...]]
    grads_of: tuple[str, ...] = ()  # the inputs whose gradients are compared
    # The float64 reference when ``run`` itself computes in float32 whatever its inputs.
    reference: Callable[[dict[str, Tensor], nn.Module | None], tuple[Tensor, ...]] | None = None
    tolerances: dict[str, float] = field(default_factory=lambda: dict(TOLERANCES))


def _evaluate(
    case: NumericsCase, device: torch.device, dtype: torch.dtype | None, seed: int = 1
) -> dict[str, Tensor]:
    """Outputs and gradients of ``case`` with inputs of ``dtype`` on ``device`` under
    autocast (bf16), or in float64 on the CPU (``dtype=None``: the reference)."""
    module = None
    if case.make_module is not None:
        torch.manual_seed(0)
        module = case.make_module()
        module = module.double() if dtype is None else module.float()
        module = module.to(device)
    inputs = {}
    for name, value in case.inputs.items():
        inputs[name] = value.to(device, torch.float64 if dtype is None else dtype, copy=True)
        if name in case.grads_of:
            inputs[name].requires_grad_(True)
    amp = contextlib.nullcontext()
    if dtype == torch.bfloat16:
        amp = torch.autocast(device.type, dtype=torch.bfloat16)
    run = case.reference if dtype is None and case.reference is not None else case.run
    with amp:
        outputs = run(inputs, module)
    generator = torch.Generator().manual_seed(seed)
    grads = [_bf16_exact(tuple(o.shape), generator).to(device, o.dtype) for o in outputs]
    torch.autograd.backward(list(outputs), grads)
    results = {f"output {i}": o.detach() for i, o in enumerate(outputs)}
    results.update({f"grad {n}": inputs[n].grad for n in case.grads_of})
    if module is not None:
        results.update(
            {f"grad {n}": p.grad for n, p in module.named_parameters() if p.grad is not None}
        )
    return results


def numerics_cases(
    batch: int, channels: int, size: tuple[int, int], on_cuda: bool
) -> list[NumericsCase]:
    """The operators :func:`check_numerics` compares (see the module docstring)."""
    gen = torch.Generator().manual_seed(0)
    height, width = size
    shape = (batch, channels, height, width)
    x1, x2 = _bf16_exact(shape, gen), _bf16_exact(shape, gen)
    cases = []
    impls = ["op"] + (["torch loops"] if on_cuda else [])
    for impl in impls:

        def run_correlation(inputs, _module, loops=impl == "torch loops"):
            if not loops:
                return (correlation_module.correlation(inputs["x1"], inputs["x2"], 4),)
            return (_LoopCorrelation.apply(inputs["x1"], inputs["x2"]),)

        label = impl
        if impl == "op":
            label = "triton" if on_cuda and correlation_triton.triton_available() else "torch loops"
        cases.append(
            NumericsCase(
                "correlation",
                label,
                {"x1": x1, "x2": x2},
                None,
                run_correlation,
                grads_of=("x1", "x2"),
            )
        )
    # Offsets a whole number of pixels plus 0.2-0.8: bilinear sampling has kinks at whole
    # pixels, where float32 and float64 positions may fall on different sides.
    whole = torch.randint(-3, 3, (batch, 18, height, width), generator=gen)
    offset = whole + 0.2 + 0.6 * torch.rand(whole.shape, generator=gen, dtype=torch.float64)
    offset = offset.bfloat16().double()
    mask = torch.sigmoid(_bf16_exact((batch, 9, height, width), gen)).bfloat16().double()
    for impl in ("torchvision", "sampled"):

        def make_dcn(impl=impl):
            return ModulatedDeformConv2d(channels, channels, implementation=impl)

        def run_dcn(inputs, module):
            return (module(inputs["x"], inputs["offset"], inputs["mask"]),)

        cases.append(
            NumericsCase(
                "deformable conv",
                impl,
                {"x": x1, "offset": offset, "mask": mask},
                make_dcn,
                run_dcn,
                grads_of=("x", "offset", "mask"),
            )
        )

    def run_fourier(inputs, module):
        transfer = kernel_transfer(module.kernels(), height, width, floor=0.1)
        return fourier_deblur(inputs["x"], transfer), fourier_reblur(inputs["x"], transfer)

    def fourier_float64(inputs, module):
        # kernel_set computes in float32 whatever its inputs: the same formulas in float64.
        pairs = module.weight[0, :, 0]
        spectrum = torch.complex(pairs[..., 0], pairs[..., 1])
        kernels = spectrum_to_kernels(spectrum, module.kernel_size, module.symmetric)
        k = kernels.shape[-1]
        canvas = F.pad(kernels.flip(-2, -1), (0, width - k, 0, height - k))
        canvas = torch.roll(canvas, shifts=(-(k // 2), -(k // 2)), dims=(-2, -1))
        transfer = floor_magnitude(torch.fft.rfft2(canvas), 0.1)
        features = torch.fft.rfft2(inputs["x"])
        return (
            torch.fft.irfft2(features * transfer.reciprocal(), s=(height, width)),
            torch.fft.irfft2(features * transfer, s=(height, width)),
        )

    cases.append(
        NumericsCase(
            "fft deblur/reblur",
            "torch.fft",
            {"x": x1},
            lambda: SymmetricKernelSet(channels),
            run_fourier,
            grads_of=("x",),
            reference=fourier_float64,
            tolerances=dict(FOURIER_TOLERANCES),
        )
    )
    style = _bf16_exact((batch, 16), gen)

    def run_invertible(inputs, module):
        weights = module.channel_weights(inputs["style"])
        return module(inputs["x"], weights), module.inverse(inputs["x"], weights)

    cases.append(
        NumericsCase(
            "invertible 1x1 conv",
            "forward+inverse",
            {"x": x1, "style": style},
            lambda: ModulatedInvertibleConv1x1(channels, 16),
            run_invertible,
            grads_of=("x", "style"),
        )
    )
    return cases


class _LoopCorrelation(torch.autograd.Function):
    """The correlation's torch loops on any device (the CUDA op runs the Triton kernels)."""

    @staticmethod
    def forward(ctx, x1: Tensor, x2: Tensor) -> Tensor:
        ctx.save_for_backward(x1, x2)
        return correlation_module._correlation_forward(x1, x2, 4)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        x1, x2 = ctx.saved_tensors
        return correlation_module._correlation_backward(grad, x1, x2, 4)


@contextlib.contextmanager
def _exact_float32() -> Iterator[None]:
    """TF32 off for matmuls and cuDNN convolutions (restored afterwards)."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def check_uint16_conversion(device: torch.device) -> dict[str, Any]:
    """Every uint16 value converted on ``device`` against the CPU's float32 division."""
    values = np.arange(65536, dtype=np.uint16).reshape(-1, 256, 1).repeat(3, axis=2)
    expected = ToTensor()({"left": values})["left"]
    converted = images_to_float({"left": chw_uint16(values).to(device)})["left"].cpu()
    mismatches = int((converted != expected).sum())
    return {
        "op": "uint16 -> float32 (images_to_float)",
        "impl": str(device),
        "dtype": "float32",
        "quantity": "all 65536 values",
        "mismatches": mismatches,
        "tolerance": 0,
        "ok": mismatches == 0,
    }


def check_numerics(plan: GpuCheckPlan, log: Callable[[str], None] = print) -> list[dict]:
    """Rows of ``{op, impl, dtype, quantity, rel_error, tolerance, ok}`` (module doc)."""
    device = torch.device(plan.device)
    on_cuda = device.type == "cuda"
    rows = [check_uint16_conversion(device)]
    cases = numerics_cases(plan.numerics_batch, plan.numerics_channels, plan.numerics_size, on_cuda)
    with _exact_float32():
        for case in cases:
            log(f"numerics: {case.op} ({case.impl})")
            try:
                reference = _evaluate(case, torch.device("cpu"), None)
            except Exception as err:  # recorded; the check goes on
                rows.append({"op": case.op, "impl": case.impl, "error": _error(err), "ok": False})
                continue
            for dtype_name, dtype in DTYPES.items():
                try:
                    results = _evaluate(case, device, dtype)
                except Exception as err:
                    rows.append(
                        {
                            "op": case.op,
                            "impl": case.impl,
                            "dtype": dtype_name,
                            "error": _error(err),
                            "ok": False,
                        }
                    )
                    continue
                for quantity, value in results.items():
                    error = _relative_error(value, reference[quantity])
                    tolerance = case.tolerances[dtype_name]
                    rows.append(
                        {
                            "op": case.op,
                            "impl": case.impl,
                            "dtype": dtype_name,
                            "quantity": quantity,
                            "rel_error": error,
                            "tolerance": tolerance,
                            "ok": math.isfinite(error) and error <= tolerance,
                        }
                    )
    return rows


# -- training steps -----------------------------------------------------------------------


def _profile_shares(run: Callable[[], None], device: torch.device) -> dict[str, Any]:
    """Share of the GPU time of one ``run()`` spent in each of :data:`SHARE_EVENTS`."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities) as prof:
        run()
        synchronize(device)
    events = prof.key_averages()
    # All kernel time, as torch.profiler's tables sum it: the device-side events only (the
    # operators' device time is their kernels' again).
    total = sum(
        e.self_device_time_total
        for e in events
        if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False)
    )
    shares: dict[str, Any] = {"gpu_ms": total / 1e3}
    for name, keys in SHARE_EVENTS.items():
        time_us = sum(e.device_time_total for e in events if e.key in keys)
        shares[f"{name}_share"] = time_us / total if total else None
        shares[f"{name}_events"] = sorted({e.key for e in events if e.key in keys})
    return shares


def measure_train_step(
    name: str, crop: int, batch: int, device: torch.device, precision: str, warmup: int, steps: int
) -> dict[str, Any]:
    """One model's Adam steps on random pairs (see the module docstring, part 3); on the
    CPU (tests) without the peak memory and the GPU time."""
    model = build_model(name).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    left, right = random_pair(batch, (crop, crop), device)
    sample = {"left": left, "right": right, "target": (left + right) / 2}
    amp = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if precision == "bf16-mixed"
        else contextlib.nullcontext()
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss = training_loss(model(left, right), sample)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    synchronize(device)
    on_cuda = device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    result = {
        "model": name,
        "precision": precision,
        "crop": crop,
        "batch": batch,
        "ms_per_step": seconds * 1e3,
        "ms_per_step_all": [t * 1e3 for t in times],
        "samples_per_s": batch / seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else None,
    }
    result.update(_profile_shares(step, device))
    return result


# -- dpdeblur-train -------------------------------------------------------------------------


def write_tiny_dpdd(root: Path, size: tuple[int, int] = (64, 96), seed: int = 0) -> None:
    """A DPDD tree of random 16-bit images: 5 train, 1 val and 1 test sample."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", 5), ("val", 1), ("test", 1)):
        samples = [
            {
                role: rng.integers(0, 65536, (*size, 3)).astype(np.uint16)
                for role in ("left", "right", "combined", "target")
            }
            for _ in range(count)
        ]
        write_split(root, split, samples, bits=16)


TRAIN_OVERRIDES = (
    "data=dpdd",
    "model=dpanet_tiny",
    "model.width=0.125",
    "trainer.max_epochs=1",
    "trainer.max_steps=2",
    "trainer.log_every_n_steps=1",
    "data.batch_size=3",
    "data.crop_size=32",
    "metrics.lpips=off",
    "metrics.num_panels=1",
    "logger=csv",
)


def _train_command() -> list[str]:
    script = Path(sys.executable).parent / "dpdeblur-train"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from dpdeblur.cli.hydra_app import train_main; train_main()"]


def run_train_cli(trainer: list[str], scratch: Path, timeout_s: float) -> dict[str, Any]:
    """A 2-step ``dpdeblur-train`` with ``trainer`` overrides on a tiny DPDD tree."""
    root = scratch / "dpdd"
    if not root.exists():
        write_tiny_dpdd(root)
    outputs = scratch / f"outputs-{'-'.join(trainer).replace('=', '_').replace('.', '_')}"
    command = [*_train_command(), f"data.root={root}", *TRAIN_OVERRIDES, *trainer]
    env = {**os.environ, "DPDEBLUR_OUTPUTS": str(outputs)}
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=max(1.0, timeout_s)
        )
    except subprocess.TimeoutExpired:
        return {"overrides": trainer, "ok": False, "error": f"timed out after {timeout_s:.0f} s"}
    seconds = time.perf_counter() - start
    metrics_files = sorted(outputs.glob("train/runs/*/metrics.json"))
    metrics = json.loads(metrics_files[0].read_text()) if metrics_files else {}
    ok = done.returncode == 0 and metrics.get("global_step") == 2
    result = {
        "overrides": trainer,
        "ok": ok,
        "returncode": done.returncode,
        "seconds": seconds,
        "global_step": metrics.get("global_step"),
        "test_psnr": (metrics.get("test") or {}).get("psnr"),
    }
    if not ok:
        result["output_tail"] = (done.stdout + done.stderr)[-3000:]
    return result


# -- CUDA tests -----------------------------------------------------------------------------


def run_cuda_tests(tests_dir: Path, timeout_s: float) -> dict[str, Any]:
    """``pytest -k "cuda or gpu"`` over ``tests_dir`` in a subprocess; the summary counts."""
    if not tests_dir.is_dir():
        return {
            "ok": True,
            "skipped": f"skipped: no {tests_dir}/ here (run from the repository root)",
        }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        "-k",
        CUDA_TEST_SELECTION,
        str(tests_dir),
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=max(1.0, timeout_s))
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f} s", "command": command}
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    counts = {
        k: int(n)
        for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", summary)
    }
    result = {
        "command": " ".join(command),
        "selection": CUDA_TEST_SELECTION,
        "returncode": done.returncode,
        "seconds": time.perf_counter() - start,
        "summary": summary,
        **counts,
        "ok": done.returncode == 0,
    }
    if done.returncode != 0:
        result["output_tail"] = (done.stdout + done.stderr)[-4000:]
    return result


# -- the run --------------------------------------------------------------------------------


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:500]


@dataclass
class _Run:
    """The results so far, written to ``out`` after every part."""

    plan: GpuCheckPlan
    out: Path | None
    log: Callable[[str], None]
    started: float = field(default_factory=time.perf_counter)
    results: dict[str, Any] = field(default_factory=dict)

    def remaining(self) -> float:
        return self.plan.budget_s - (time.perf_counter() - self.started)

    def save(self) -> None:
        self.results["total_s"] = time.perf_counter() - self.started
        if self.out is not None:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def part(self, name: str, value: Any) -> None:
        self.results["sections"][name] = value
        self.save()


def _train_steps(run: _Run, device: torch.device) -> list[dict]:
    plan, steps = run.plan, []
    for name in plan.train_models:
        for precision in ("32-true", "bf16-mixed"):
            if run.remaining() < 60:
                steps.append({"model": name, "precision": precision, "skipped": "time budget"})
                continue
            run.log(f"training step: {name} {precision}")
            try:
                step = measure_train_step(
                    name,
                    plan.train_crop,
                    plan.train_batch,
                    device,
                    precision,
                    plan.warmup_steps,
                    plan.timed_steps,
                )
                step["ok"] = True
            except Exception as err:  # recorded; the check goes on
                step = {"model": name, "precision": precision, "error": _error(err), "ok": False}
            torch.cuda.empty_cache()
            steps.append(step)
            run.part("train_steps", steps)
    return steps


def _train_cli(run: _Run) -> list[dict]:
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for trainer in (["trainer=gpu"], ["trainer=ddp", "trainer.devices=1"]):
            run.log(f"dpdeblur-train {' '.join(trainer)} (2 steps)")
            runs.append(run_train_cli(trainer, Path(scratch), min(150.0, run.remaining())))
            run.part("train_cli", runs)
    return runs


def _inference(run: _Run, device: torch.device) -> list[dict]:
    plan, passes = run.plan, []
    for name in plan.inference_models:
        if run.remaining() < 30:
            passes.append({"model": name, "skipped": "time budget"})
            continue
        run.log(f"inference: {name} at {plan.inference_size[0]}x{plan.inference_size[1]}")
        try:
            result = {"model": name, **measure_here(name, plan.inference_size, device), "ok": True}
        except Exception as err:  # recorded; the check goes on
            result = {"model": name, "error": _error(err), "ok": False}
        torch.cuda.empty_cache()
        passes.append(result)
        run.part("inference", passes)
    return passes


def run_gpu_check(
    plan: GpuCheckPlan, out: Path | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Run ``plan`` (see the module docstring); the results, with ``"ok"`` overall and one
    line per failed check under ``"failures"``."""
    device = torch.device(plan.device)
    on_cuda = device.type == "cuda"
    run = _Run(plan, out, log)
    run.results = {
        "what": "make gpu-check: CUDA tests, GPU-vs-float64 numerics, training steps, "
        "dpdeblur-train on trainer=gpu and ddp, full-resolution inference",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": describe_machine(device),
        "cuda": on_cuda,
        "plan": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(plan).items()},
        "tolerances": {
            "default": TOLERANCES,
            "fft deblur/reblur": FOURIER_TOLERANCES,
            "uint16 -> float32": 0,
            "metric": "max |result - float64| / max |float64| per tensor, TF32 off",
        },
        "triton": correlation_triton.triton_available(),
        "load_average": {"start": load_average()},
        "sections": {},
    }
    parts: dict[str, Callable[[], Any]] = {
        "cuda_tests": lambda: run_cuda_tests(plan.tests_dir, min(200.0, run.remaining())),
        "numerics": lambda: check_numerics(plan, log),
        "train_steps": lambda: _train_steps(run, device),
        "train_cli": lambda: _train_cli(run),
        "inference": lambda: _inference(run, device),
    }
    for name in plan.sections:
        if name != "numerics" and not on_cuda:
            run.part(name, SKIPPED_NO_CUDA)
            continue
        log(f"{name}...")
        run.part(name, parts[name]())
    run.results["load_average"]["end"] = load_average()
    run.results["failures"] = _failures(run.results["sections"])
    run.results["ok"] = not run.results["failures"]
    run.save()
    return run.results


def _failures(sections: dict[str, Any]) -> list[str]:
    """One line per failed check."""
    failures = []
    for name, value in sections.items():
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict) and not item.get("ok", True):
                what = ", ".join(
                    str(item[k])
                    for k in ("model", "precision", "op", "impl", "dtype", "quantity", "overrides")
                    if k in item
                )
                detail = item.get("error") or (
                    f"error {item['rel_error']:.2e} > {item['tolerance']:.0e}"
                    if "rel_error" in item
                    else ""
                )
                failures.append(f"{name}: {what} {detail}".strip())
    return failures
