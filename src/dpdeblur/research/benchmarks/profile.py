"""Where the time goes, before any speed work: a training step and the data path.

:func:`profile_train_step`: a ``torch.profiler`` table of one Adam step (after a warm-up
step), operators sorted by their own time. :func:`profile_data_path`: ``cProfile`` of
training-crop fetches from DPDD-sized PNGs and from the ``.npy`` cache. The correlation
layer's own profile is :mod:`dpdeblur.research.benchmarks.correlation`.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from dpdeblur.data.datasets import TRAIN_ROLES, DPDDDataset
from dpdeblur.data.transforms import train_transforms
from dpdeblur.research.benchmarks.data import DPDD_SIZE, write_photo_tree
from dpdeblur.research.benchmarks.timing import random_pair, training_loss


def profile_train_step(model: nn.Module, batch: int, crop: int, rows: int = 20) -> str:
    """The profiler's operator table of one Adam step on ``batch`` random crops, headed by
    the step's seconds under the profiler."""
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    left, right = random_pair(batch, (crop, crop), torch.device("cpu"))
    sample = {"left": left, "right": right, "target": (left + right) / 2}

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        training_loss(model(left, right), sample).backward()
        optimizer.step()

    step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    seconds = time.perf_counter() - start
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
    return (
        f"one Adam step, batch {batch} x {crop}x{crop}, {torch.get_num_threads()} threads: "
        f"{seconds:.1f} s under the profiler\n\n{table}"
    )


def profile_data_path(images: int, crop: int, samples: int, rows: int = 20) -> str:
    """``cProfile`` tables of ``samples`` crop fetches from PNGs and from the cache, over
    ``images`` DPDD-sized photo-like samples written to a temporary folder."""
    sections = []
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        root = scratch / "dpdd"
        write_photo_tree(root, images, DPDD_SIZE)
        transform = train_transforms(crop_size=crop)
        variants = {
            "png": DPDDDataset(root, "train", transform, roles=TRAIN_ROLES),
            "cache": DPDDDataset(
                root, "train", transform, cache_dir=scratch / "cache", roles=TRAIN_ROLES
            ),
        }
        for i in range(len(variants["cache"])):
            variants["cache"].load_arrays(i)  # build the cache entries before profiling
        for label, dataset in variants.items():
            profiler = cProfile.Profile()
            start = time.perf_counter()
            profiler.enable()
            for i in range(samples):
                dataset[i % len(dataset)]
            profiler.disable()
            seconds = time.perf_counter() - start
            text = io.StringIO()
            pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(rows)
            sections.append(f"== {label}: {samples} crops of {crop} in {seconds:.2f} s")
            sections.append(
                "\n".join(line for line in text.getvalue().splitlines() if line.strip())
            )
    return "\n".join(sections)
