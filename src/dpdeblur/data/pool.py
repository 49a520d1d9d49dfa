"""A pool of pre-rendered synthetic training scenes, cut into fresh random crops every epoch.

Streaming (:class:`~dpdeblur.data.synthetic.SyntheticDPDataset` rendering new scenes every
epoch) costs CPU time for every sample (docs/benchmarks.md, "Synthetic data"). On a
2-core machine the renderer takes CPU time from the training step; on a GPU it cannot keep
up with the network at all. :class:`ScenePool` renders ``scenes`` scenes once, in parallel worker
processes, keeps them in memory as 16-bit pixels (the precision of DPDD and of the trees
:func:`~dpdeblur.data.writer.write_synthetic_dpdd` writes), and serves each training sample
as a random crop with random DP-valid flips (vertical flip; horizontal flip with the views
swapped, :mod:`dpdeblur.data.transforms`). Every epoch draws new crops: sample ``i`` of
epoch ``e`` is a pure function of ``(seed, e, i)``.

The trade: fewer distinct scenes (a pool of 1,024 against one new scene per sample) for no
rendering during training. docs/synthetic.md ("A pool of scenes") gives the measurements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dpdeblur.data.io import as_hwc, quantize
from dpdeblur.data.transforms import ToTensor, train_transforms

# What a pooled scene keeps: the views and images as uint16, the signed CoC map as float16
# (depth is left out: nothing trains on it).
POOL_IMAGE_KEYS = ("left", "right", "combined", "target")
POOL_MAP_KEYS = ("coc",)


def _pooled(sample: dict[str, Any]) -> dict[str, Any]:
    """A rendered sample (CxHxW tensors) as the pool keeps it (HxWxC arrays): images rounded
    to 16 bits as a 16-bit PNG stores them, maps in float16."""
    kept: dict[str, Any] = {
        key: np.ascontiguousarray(quantize(as_hwc(sample[key]), 16)) for key in POOL_IMAGE_KEYS
    }
    for key in POOL_MAP_KEYS:
        kept[key] = np.ascontiguousarray(as_hwc(sample[key]), np.float16)
    kept["name"] = sample["name"]
    return kept


def render_pool(scenes: Dataset, workers: int = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Every sample of ``scenes`` rendered once (``workers`` processes), in 16-bit form."""
    loader = DataLoader(scenes, batch_size=None, shuffle=False, num_workers=workers)
    rendered = loader if not progress else tqdm(loader, desc="rendering scene pool", unit="scene")
    return [_pooled(sample) for sample in rendered]


class ScenePool(Dataset):
    """``length`` training samples per epoch, cut from pre-rendered scenes.

    Args:
        scenes: the rendered scenes (:func:`render_pool`), all of one size.
        length: samples per epoch.
        crop_size: side of the square training crop (at most the scenes' size).
        seed: with the epoch and the index, fixes each sample's scene, crop and flips.
        vflip, hflip_swap: flip probabilities (a horizontal flip swaps the DP views).
    """

    def __init__(
        self,
        scenes: Sequence[dict[str, Any]],
        length: int,
        crop_size: int,
        seed: int = 0,
        vflip: float = 0.5,
        hflip_swap: float = 0.5,
    ):
        if not scenes:
            raise ValueError("a scene pool needs at least one scene")
        height, width = scenes[0]["target"].shape[:2]
        if crop_size > min(height, width):
            raise ValueError(
                f"crop_size {crop_size} is larger than the pooled scenes ({height}x{width}); "
                "render the pool larger (data.synthetic.pool.size) or crop smaller"
            )
        self.scenes = list(scenes)
        self.length = int(length)
        self.seed = int(seed)
        self.epoch = 0
        self.transform = train_transforms(crop_size, vflip, hflip_swap)
        self.to_tensor = ToTensor()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        scene = self.scenes[int(rng.integers(0, len(self.scenes)))]
        sample = self.to_tensor(self.transform(dict(scene), rng))
        sample["name"] = f"{scene['name']}_e{self.epoch}_{index:05d}"
        sample["bit_depth"] = 16
        return sample
