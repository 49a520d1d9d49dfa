"""``dpdeblur-bench data``: training-crop throughput of the data path, PNG vs ``.npy`` cache.

Writes a DPDD-sized tree (1120x1680 16-bit PNG, photographic content with sensor-like
noise in the low bits, so PNG compression behaves as on real DPDD files) unless
``--root`` names a real one, then times 512x512 training crops (crop + flips + to tensor)
of the views a training step reads (left, right, target; the combined view is skipped as
in training) (a) by decoding the PNGs and (b) from the uint16 memory-map cache, in one
process and through a DataLoader with workers. Results go to stdout and, with ``--out``,
JSON; ``dpdeblur-bench all`` runs the same measurement (:func:`measure_data_path`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from dpdeblur.data.datasets import DPDDDataset
from dpdeblur.data.transforms import train_transforms
from dpdeblur.data.writer import write_split


def photo_like_sample(rng: np.random.Generator, size: tuple[int, int]) -> dict:
    """Full-size 16-bit images made from a real photograph (scikit-image ships it)."""
    import cv2
    from skimage import data as skdata

    base = skdata.astronaut().astype(np.float32) / 255.0
    height, width = size
    image = cv2.resize(base, (width, height), interpolation=cv2.INTER_CUBIC)
    sample = {}
    for role in ("left", "right", "combined", "target"):
        noisy = image * rng.uniform(0.9, 1.0) + rng.normal(0, 0.004, image.shape).astype(np.float32)
        sample[role] = np.clip(noisy, 0, 1)
    return sample


def make_tree(root: Path, count: int, size: tuple[int, int], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    write_split(root, "train", (photo_like_sample(rng, size) for _ in range(count)), bits=16)


def time_dataset(dataset: DPDDDataset, samples: int) -> float:
    """Samples per second fetching ``samples`` items in this process."""
    start = time.perf_counter()
    for i in range(samples):
        dataset[i % len(dataset)]
    return samples / (time.perf_counter() - start)


def time_loader(dataset: DPDDDataset, samples: int, workers: int, batch_size: int = 4) -> float:
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
    size: tuple[int, int] = (1120, 1680),
    crop: int = 512,
    samples: int = 48,
    workers: int = 2,
) -> dict:
    """Samples/s of training crops from PNGs and from the cache (see the module docstring).

    Samples read the files a training step reads (``TRAIN_ROLES``: left, right, target).
    """
    from dpdeblur.data.datamodule import TRAIN_ROLES
    from dpdeblur.hardware import describe_machine, load_average

    load_start = load_average()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        generated = root is None
        if root is None:
            root = scratch / "dpdd"
            print(f"writing {images} DPDD-sized samples ({size[1]}x{size[0]}, 16-bit PNG)...")
            make_tree(root, images, tuple(size))
        transform = train_transforms(crop_size=crop)
        png = DPDDDataset(root, "train", transform, roles=TRAIN_ROLES)
        cache_dir = scratch / "cache"
        cached = DPDDDataset(root, "train", transform, cache_dir=cache_dir, roles=TRAIN_ROLES)
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
            "png_samples_per_s": time_dataset(png, samples),
            "cache_samples_per_s": time_dataset(cached, samples),
            "cache_build_s": build_s,
            "png_loader_samples_per_s": time_loader(png, samples, workers),
            "cache_loader_samples_per_s": time_loader(cached, samples, workers),
            "loader_workers": workers,
        }
    results["cache_speedup"] = results["cache_samples_per_s"] / results["png_samples_per_s"]
    results["cache_loader_speedup"] = (
        results["cache_loader_samples_per_s"] / results["png_loader_samples_per_s"]
    )
    results["load_average"] = {"start": load_start, "end": load_average()}
    return results


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    results = measure_data_path(
        Path(args.root) if args.root else None,
        args.images,
        tuple(args.size),
        args.crop,
        args.samples,
        args.workers,
    )
    for key, value in results.items():
        print(f"{key:28s} {value:.2f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="data-loader samples/s: PNG decoding vs the .npy cache"
    )
    parser.add_argument(
        "--root", help="a real DPDD root to time (default: write a DPDD-sized tree)"
    )
    parser.add_argument(
        "--images", type=int, default=6, help="images to write when --root is not given"
    )
    parser.add_argument("--size", type=int, nargs=2, default=(1120, 1680), metavar=("H", "W"))
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--samples", type=int, default=48, help="crops to time per variant")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.set_defaults(func=run)
