"""Training-crop throughput of the data path: decoding PNGs vs the uint16 ``.npy`` cache.

:func:`measure_data_path` writes a DPDD-sized tree (1120x1680 16-bit PNG, photographic
content with sensor-like noise in the low bits, so PNG compression behaves as on real DPDD
files) unless it is given a real one, then times training crops (crop + flips + to tensor)
of the views a training step reads (left, right, target; the combined view is skipped as in
training) (a) by decoding the PNGs and (b) from the uint16 memory-map cache, in one process
and through a DataLoader with workers. ``dpdeblur-bench data`` runs it alone (``make
bench-data``), ``dpdeblur-bench all`` as its last section.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from skimage import data as skimage_data
from torch.utils.data import DataLoader

from dpdeblur.data.datasets import TRAIN_ROLES, DPDDDataset
from dpdeblur.data.transforms import train_transforms
from dpdeblur.data.writer import write_split
from dpdeblur.hardware import describe_machine, load_average

DPDD_SIZE = (1120, 1680)


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


def dataset_samples_per_s(dataset: DPDDDataset, samples: int) -> float:
    """Samples per second fetching ``samples`` items in this process."""
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - start)


def loader_samples_per_s(
    dataset: DPDDDataset, samples: int, workers: int, batch_size: int = 4
) -> float:
    """Samples per second through a shuffling DataLoader with ``workers`` processes."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers)
    seen = 0
    start = time.perf_counter()
    while seen < samples:
        for batch in loader:
            seen += batch["left"].shape[0]
            if seen >= samples:
                break
    return seen / (time.perf_counter() - start)


def measure_data_path(
    root: Path | None,
    images: int = 6,
    size: tuple[int, int] = DPDD_SIZE,
    crop: int = 512,
    samples: int = 48,
    workers: int = 2,
    log=print,
) -> dict:
    """Samples/s of training crops from PNGs and from the cache (see the module docstring).

    ``root``: a real DPDD root, or ``None`` to write ``images`` photo-like samples of
    ``size`` into a temporary folder.
    """
    load_start = load_average()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        generated = root is None
        if root is None:
            root = scratch / "dpdd"
            log(f"writing {images} DPDD-sized samples ({size[1]}x{size[0]}, 16-bit PNG)...")
            write_photo_tree(root, images, tuple(size))
        transform = train_transforms(crop_size=crop)
        png = DPDDDataset(root, "train", transform, roles=TRAIN_ROLES)
        cached = DPDDDataset(
            root, "train", transform, cache_dir=scratch / "cache", roles=TRAIN_ROLES
        )
        start = time.perf_counter()
        for i in range(len(cached)):
            cached.load_arrays(i)
        build_s = time.perf_counter() - start

        results = {
            "what": f"{crop}x{crop} training crops (crop + flips + to tensor; views read: "
            f"{', '.join(TRAIN_ROLES)}) from DPDD-sized 16-bit PNGs",
            "machine": describe_machine("cpu"),
            "images": len(png),
            "root": "generated (photograph + sensor-like noise)" if generated else str(root),
            "image_size": list(size) if generated else None,
            "crop": crop,
            "samples": samples,
            "png_samples_per_s": dataset_samples_per_s(png, samples),
            "cache_samples_per_s": dataset_samples_per_s(cached, samples),
            "cache_build_s": build_s,
            "png_loader_samples_per_s": loader_samples_per_s(png, samples, workers),
            "cache_loader_samples_per_s": loader_samples_per_s(cached, samples, workers),
            "loader_workers": workers,
        }
    results["cache_speedup"] = results["cache_samples_per_s"] / results["png_samples_per_s"]
    results["cache_loader_speedup"] = (
        results["cache_loader_samples_per_s"] / results["png_loader_samples_per_s"]
    )
    results["load_average"] = {"start": load_start, "end": load_average()}
    return results
