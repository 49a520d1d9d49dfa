"""Training-crop throughput of the data path: decoding PNGs vs the uint16 ``.npy`` cache,
in one process and through DataLoader workers.

:func:`measure_data_path` writes a DPDD-sized tree (1120x1680 16-bit PNG, photographic
content with sensor-like noise in the low bits, so PNG compression behaves as on real DPDD
files) unless it is given a real one, then times training crops (crop + flips + to tensor)
of the views a training step reads (left, right, target; the combined view is skipped as in
training):

- the training path as :class:`~dpdeblur.training.datamodule.DPDataModule` builds it:
  uint16 tensors (converted to float on the GPU after the transfer), from the cache and
  from the PNGs, one sample at a time in this process (``dataset[i]``) and through its
  training loader (batch 4, ``workers`` persistent workers, memory not pinned: there is no
  GPU here; the rate after the first batch, i.e. without the workers' start). The few
  written images are repeated (``train_repeats``) so that an epoch holds all the timed
  samples, as DPDD's 350 images do: with six images an epoch would end every six samples.
  Each batch is dropped on arrival, as a training step drops it after the copy to the GPU,
  so the workers write into their shared-memory buffers again
  (:mod:`~dpdeblur.data.batch_buffers`);
- the float32 path as it was before (samples converted to float32 in the workers), from
  the cache, the same two ways.

The cache variants run ``rounds`` times, alternated in this one process, and each rate is
the median of its rounds (each round's figures are kept too): on a shared machine other
jobs move every figure, and alternating exposes all variants to the same load.
``loader_fraction`` is the loader's rate over the in-process rate of the same (uint16)
path. The CPU milliseconds per sample (this thread's in one process; the workers' own,
from ``/proc``, through the loader) do not depend on how many cores other jobs leave
free: their ratio is what the trip between processes costs. ``dpdeblur-bench data`` runs it alone (``make bench-data``), ``dpdeblur-bench all`` as
its last section.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skimage_data
from torch.utils.data import DataLoader, Dataset

from dpdeblur.data.datasets import TRAIN_ROLES, DPDDDataset
from dpdeblur.data.streams import RandomCrops
from dpdeblur.data.transforms import train_transforms
from dpdeblur.data.writer import write_split
from dpdeblur.hardware import describe_machine, load_average
from dpdeblur.training.datamodule import DPDataModule

DPDD_SIZE = (1120, 1680)
BATCH_SIZE = 4


def photo_like_sample(rng: np.random.Generator, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Full-size float images of the four views, made from a real photograph (scikit-image
    ships it) with per-view gain and sensor-like noise."""
    base = skimage_data.astronaut().astype(np.float32) / 255.0
    height, width = size
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    sample = {}
    for role in ("left", "right", "combined", "target"):
        noisy = image * rng.uniform(0.9, 1.0) + rng.normal(0, 0.004, image.shape).astype(np.float32)
        sample[role] = np.clip(noisy, 0, 1)
    return sample


def write_photo_tree(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    """A DPDD training split of ``count`` photo-like 16-bit samples under ``root``."""
    rng = np.random.default_rng(seed)
    write_split(root, "train", (photo_like_sample(rng, size) for _ in range(count)), bits=16)


def dataset_samples_per_s(dataset: Dataset, samples: int) -> float:
    """Samples per second fetching ``samples`` items in this process."""
    return dataset_rate_and_cpu(dataset, samples)[0]


def dataset_rate_and_cpu(dataset: Dataset, samples: int) -> tuple[float, float]:
    """(samples per second, CPU milliseconds per sample) fetching ``samples`` items in
    this thread."""
    start, cpu = time.perf_counter(), time.thread_time()
    for i in range(samples):
        dataset[i % len(dataset)]
    cpu_ms = (time.thread_time() - cpu) * 1e3 / samples
    return samples / (time.perf_counter() - start), cpu_ms


def children_cpu_seconds() -> float | None:
    """User + system CPU seconds of this process's live children (data-loader workers),
    from ``/proc`` (Linux); ``None`` elsewhere."""
    total = 0
    try:
        children = set()
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as handle:
                children.update(handle.read().split())
        for pid in children:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None
    return total / os.sysconf("SC_CLK_TCK")


def _batches(loader: DataLoader) -> Iterator[dict]:
    """The loader's batches, epoch after epoch (persistent workers carry over)."""
    while True:
        yield from loader


def loader_samples_per_s(loader: DataLoader, samples: int) -> tuple[float, float]:
    """(samples per second after the first batch, seconds to the first batch) of
    ``loader``: the first batch includes starting the workers, which persistent workers
    pay once per training run."""
    rate, first_s, _ = loader_rate_and_cpu(loader, samples)
    return rate, first_s


def loader_rate_and_cpu(loader: DataLoader, samples: int) -> tuple[float, float, float | None]:
    """:func:`loader_samples_per_s` and the workers' CPU milliseconds per sample delivered
    (``None`` without workers or without ``/proc``)."""
    batches = _batches(loader)
    start = time.perf_counter()
    next(batches)
    first_s = time.perf_counter() - start
    seen = 0
    start, cpu = time.perf_counter(), children_cpu_seconds()
    while seen < samples:
        seen += next(batches)["left"].shape[0]
    rate = seen / (time.perf_counter() - start)
    cpu_end = children_cpu_seconds()
    if loader.num_workers == 0 or cpu is None or cpu_end is None:
        return rate, first_s, None
    return rate, first_s, (cpu_end - cpu) * 1e3 / seen


def training_loader(dataset: Dataset, workers: int) -> DataLoader:
    """A loader with :class:`DPDataModule`'s training settings on a machine without a GPU."""
    return DataLoader(
        dataset,
        batch_size=BATCH_SIZE,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=False,
    )


def _median_rounds(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}


def measure_data_path(
    root: Path | None,
    images: int = 6,
    size: tuple[int, int] = DPDD_SIZE,
    crop: int = 512,
    samples: int = 192,
    workers: int = 2,
    log: Callable[[str], None] = print,
    png_samples: int | None = None,
    rounds: int = 3,
) -> dict:
    """Samples/s of training crops from PNGs and from the cache (see the module docstring).

    ``root``: a real DPDD root, or ``None`` to write ``images`` photo-like samples of
    ``size`` into a temporary folder. ``samples``: crops per cache variant and round;
    ``png_samples`` (default ``samples // 8``, at least 4): crops per PNG variant, timed
    once (decoding is 50x slower).
    """
    png_samples = png_samples or max(4, samples // 8)
    load_start = load_average()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        generated = root is None
        if root is None:
            root = scratch / "dpdd"
            log(f"writing {images} DPDD-sized samples ({size[1]}x{size[0]}, 16-bit PNG)...")
            write_photo_tree(root, images, tuple(size))

        # an epoch long enough for a round and what the workers fetch ahead
        ahead = 2 * BATCH_SIZE * max(1, workers)
        count = len(DPDDDataset(root, "train"))
        repeats = max(1, math.ceil((max(samples, png_samples) + ahead) / count))

        def datamodule(cache_dir: Path | None) -> DPDataModule:
            return DPDataModule(
                "dpdd",
                root=str(root),
                batch_size=BATCH_SIZE,
                num_workers=workers,
                pin_memory=False,
                crop_size=crop,
                cache_dir=None if cache_dir is None else str(cache_dir),
                train_repeats=repeats,
            )

        cached_dm = datamodule(scratch / "cache")
        cached = cached_dm.build("train")
        start = time.perf_counter()
        for i in range(len(cached)):
            cached.load_arrays(i)
        build_s = time.perf_counter() - start
        floats = DPDDDataset(
            root,
            "train",
            train_transforms(crop_size=crop),
            cache_dir=scratch / "cache",
            roles=TRAIN_ROLES,
        )
        cached_loader = cached_dm.train_dataloader()
        float_loader = training_loader(RandomCrops(floats, repeats), workers)
        per_round = []
        first_batch_s = []
        for index in range(rounds):
            log(f"cache variants, round {index + 1} of {rounds}...")
            figures: dict[str, float] = {}
            for label, dataset, loader in (
                ("cache", cached, cached_loader),
                ("cache_float", floats, float_loader),
            ):
                rate, cpu_ms = dataset_rate_and_cpu(dataset, samples)
                loader_rate, first, worker_ms = loader_rate_and_cpu(loader, samples)
                figures[f"{label}_samples_per_s"] = rate
                figures[f"{label}_loader_samples_per_s"] = loader_rate
                figures[f"{label}_cpu_ms_per_sample"] = cpu_ms
                if worker_ms is not None:
                    figures[f"{label}_worker_cpu_ms_per_sample"] = worker_ms
                if label == "cache":
                    first_batch_s.append(first)
            figures["loader_fraction"] = (
                figures["cache_loader_samples_per_s"] / figures["cache_samples_per_s"]
            )
            per_round.append(figures)
        del cached_loader, float_loader  # stops the persistent workers

        log("PNG variants...")
        png_dm = datamodule(None)
        png = png_dm.build("train")
        png_rate = dataset_samples_per_s(png, png_samples)
        png_loader_rate, _ = loader_samples_per_s(png_dm.train_dataloader(), png_samples)

    results = {
        "what": f"{crop}x{crop} training crops (crop + flips + to tensor; views read: "
        f"{', '.join(TRAIN_ROLES)}) from DPDD-sized 16-bit PNGs, as uint16 tensors "
        f"(DPDataModule's training path) and, for comparison, as float32 tensors (before)",
        "machine": describe_machine("cpu"),
        "images": len(png),
        "root": "generated (photograph + sensor-like noise)" if generated else str(root),
        "image_size": list(size) if generated else None,
        "crop": crop,
        "batch_size": BATCH_SIZE,
        "samples": samples,
        "png_samples": png_samples,
        "rounds": rounds,
        "loader": "DPDataModule.train_dataloader(): shuffled, persistent workers, not pinned; "
        "rate after the first batch",
        "loader_workers": workers,
        "epoch_samples": len(png) * repeats,
        "png_samples_per_s": png_rate,
        "png_loader_samples_per_s": png_loader_rate,
        **_median_rounds(per_round),
        "per_round": per_round,
        "loader_first_batch_s": first_batch_s,
        "cache_build_s": build_s,
    }
    results["cache_speedup"] = results["cache_samples_per_s"] / results["png_samples_per_s"]
    results["cache_loader_speedup"] = (
        results["cache_loader_samples_per_s"] / results["png_loader_samples_per_s"]
    )
    results["load_average"] = {"start": load_start, "end": load_average()}
    return results
