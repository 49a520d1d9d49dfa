"""Wall-clock seconds of a model's forward pass, forward+backward pass and training step.

Every measurement runs the model once at a small size first (one-time costs such as
oneDNN primitive creation, lazy allocations and cuDNN autotuning stay out of the figure),
then times ``repeat`` runs and keeps the fastest. Inputs are random DP pairs of the given
size, so the data path is not part of these figures (it has its own benchmark). On a GPU
every timed region ends with ``torch.cuda.synchronize``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from dpdeblur.models.output import DeblurOutput
from dpdeblur.training.losses import CompositeLoss

WARMUP_SIZE = 64
# Crops tried for the training-step measurement, largest first: multiples of 128 down to
# 128, so that K3DN (which pads inputs to multiples of 8 x its 16-pixel window) computes no
# more pixels than it is given (at 192 it would compute 256 and take longer than at 256).
TRAIN_CROPS = (1024, 768, 512, 384, 256, 128, 64, 32)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run: Callable[[], object], device: torch.device, repeat: int = 1) -> float:
    """Fastest of ``repeat`` timed calls of ``run`` (each ended by a device sync)."""
    times = []
    for _ in range(max(1, repeat)):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def random_pair(
    batch: int, size: tuple[int, int], device: torch.device, seed: int = 0
) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    left = torch.rand(batch, 3, *size, generator=generator)
    right = torch.rand(batch, 3, *size, generator=generator)
    return left.to(device), right.to(device)


def autocast_context(device: torch.device, dtype: torch.dtype | None):
    """Autocast to ``dtype`` on ``device``'s type; no autocast for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _warmup_size(size: tuple[int, int]) -> tuple[int, int]:
    return (min(WARMUP_SIZE, size[0]), min(WARMUP_SIZE, size[1]))


def forward_seconds(
    model: nn.Module,
    size: tuple[int, int],
    device: torch.device,
    repeat: int = 1,
    batch: int = 1,
    autocast: torch.dtype | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> float:
    """Seconds of one inference forward pass (eval mode, ``torch.inference_mode``)."""
    model.eval()

    def run_at(shape):
        left, right = random_pair(batch, shape, device)
        left = left.contiguous(memory_format=memory_format)
        right = right.contiguous(memory_format=memory_format)

        def run():
            with torch.inference_mode(), autocast_context(device, autocast):
                model(left, right)

        return run

    run_at(_warmup_size(size))()
    return best_seconds(run_at(size), device, repeat)


def training_loss(output: Tensor | DeblurOutput, batch: dict) -> Tensor:
    """The project's training loss for this kind of output: Charbonnier, plus K3DN's
    0.1 x reblur term when the model returns a reblurred image (conf/loss/k3dn.yaml)."""
    terms = {"charbonnier": 1.0}
    if isinstance(output, DeblurOutput) and (
        output.reblurred is not None or output.reblur_fn is not None
    ):
        terms["reblur"] = 0.1
    total, _ = CompositeLoss(terms)(output, batch)
    return total


def forward_backward_seconds(
    model: nn.Module,
    size: tuple[int, int],
    device: torch.device,
    repeat: int = 1,
    batch: int = 1,
    autocast: torch.dtype | None = None,
) -> float:
    """Seconds of one training-mode forward pass, the loss and its backward pass."""
    model.train()

    def run_at(shape):
        left, right = random_pair(batch, shape, device)
        target = (left + right) / 2

        def run():
            with autocast_context(device, autocast):
                output = model(left, right)
                loss = training_loss(output, {"left": left, "right": right, "target": target})
            loss.backward()
            model.zero_grad(set_to_none=True)

        return run

    run_at(_warmup_size(size))()
    return best_seconds(run_at(size), device, repeat)


@dataclass
class TrainStep:
    """One measured optimiser step: crop, batch, seconds and samples per second."""

    crop: int
    batch: int
    seconds: float
    samples_per_s: float
    default_crop: int
    default_batch: int
    # samples/s at the default crop if time grows with the pixel count (CPU); equal to
    # samples_per_s when the default crop itself was measured.
    samples_per_s_at_default_crop: float
    rule: str

    def to_dict(self) -> dict:
        return asdict(self)


def choose_train_crop(
    seconds_per_pixel: float | None,
    default_crop: int,
    default_batch: int,
    budget_s: float,
    crops: Sequence[int] = TRAIN_CROPS,
) -> tuple[int, int]:
    """The (crop, batch) to time a training step at, within ``budget_s`` seconds.

    The largest crop not above ``default_crop`` whose estimated step (``seconds_per_pixel``
    x crop^2 x batch, from the forward+backward measurement) fits the budget with batch 1,
    then the largest batch up to ``default_batch`` that still fits. Without an estimate
    (``None``, e.g. on a GPU) the default crop and batch.
    """
    if seconds_per_pixel is None:
        return default_crop, default_batch
    candidates = sorted({c for c in crops if c <= default_crop} | {default_crop}, reverse=True)
    crop = candidates[-1]
    for candidate in candidates:
        if seconds_per_pixel * candidate * candidate <= budget_s:
            crop = candidate
            break
    step_one = seconds_per_pixel * crop * crop
    batch = max(1, min(default_batch, math.floor(budget_s / step_one) if step_one > 0 else 1))
    return crop, batch


def train_step(
    model: nn.Module,
    crop: int,
    batch: int,
    device: torch.device,
    default_crop: int,
    default_batch: int,
    steps: int = 1,
    rule: str = "",
    autocast: torch.dtype | None = None,
) -> TrainStep:
    """Time ``steps`` optimiser steps (Adam) on random ``batch`` x 3 x crop x crop pairs."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def run_at(crop_size: int, batch_size: int):
        left, right = random_pair(batch_size, (crop_size, crop_size), device)
        target = (left + right) / 2
        sample = {"left": left, "right": right, "target": target}

        def run():
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(device, autocast):
                loss = training_loss(model(left, right), sample)
            loss.backward()
            optimizer.step()

        return run

    run_at(min(WARMUP_SIZE, crop), 1)()  # optimiser state and one-time costs
    seconds = best_seconds(run_at(crop, batch), device, steps)
    rate = batch / seconds
    return TrainStep(
        crop=crop,
        batch=batch,
        seconds=seconds,
        samples_per_s=rate,
        default_crop=default_crop,
        default_batch=default_batch,
        samples_per_s_at_default_crop=rate * (crop / default_crop) ** 2,
        rule=rule,
    )
