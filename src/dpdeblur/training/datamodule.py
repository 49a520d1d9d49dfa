"""``DPDataModule``: the Lightning face of the data layer, train/val/test/predict loaders for DPDD, PIXEL and synthetic DP data.

Configured from ``conf/data/{dpdd,pixel,synthetic}.yaml``. Training on DPDD crops and flips
(see :func:`dpdeblur.data.transforms.train_transforms`); validation and test score whole
images (``val_crop`` may centre-crop validation for quick feedback; test never crops).
Synthetic training data is streamed: every epoch renders new scenes (the sampler's epoch
enters each scene's seed), while the synthetic val/test splits are fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from dpdeblur.data.datasets import TRAIN_ROLES, DPDDDataset, PixelDataset
from dpdeblur.data.pool import ScenePool, render_pool
from dpdeblur.data.streams import EpochStream, EpochStreamSampler, Repeat
from dpdeblur.data.synthetic import SyntheticDPDataset
from dpdeblur.data.transforms import CenterCrop, Compose, train_transforms
from dpdeblur.errors import DataError

DATASETS = ("dpdd", "pixel", "synthetic")


class DPDataModule(L.LightningDataModule):
    """Loaders for one DP dataset.

    Args:
        dataset: "dpdd", "pixel" (predict only: no target) or "synthetic".
        root: dataset root for dpdd/pixel (``dd_dp_dataset_png`` or a Restormer-style tree).
        batch_size, num_workers, pin_memory: loader settings (val/test use batch 1: images
            of a split may differ in size).
        crop_size: training crop; ``resize=(min, max)`` adds DPANet's random resize + re-crop.
        train_repeats: random crops per training image per epoch (DPDD).
        vflip, hflip_swap: flip probabilities (a horizontal flip swaps the DP views).
        rot90: non-physical 90-degree rotations (off by default).
        val_crop: centre-crop validation images to this size (None: whole images).
        allow_8bit: accept 8-bit files in DPDD with a warning instead of an error.
        cache_dir: decode images once into uint16 ``.npy`` memory maps there.
        keep_orientation: PIXEL only; keep portrait captures as they are.
        synthetic: options of :class:`dpdeblur.data.synthetic.SyntheticDPDataset` plus
            ``train_length``/``val_length``/``test_length``.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | None = None,
        batch_size: int = 4,
        num_workers: int = 2,
        pin_memory: bool = False,
        crop_size: int | None = 256,
        resize: Sequence[int] | None = None,
        train_repeats: int = 1,
        vflip: float = 0.5,
        hflip_swap: float = 0.5,
        rot90: bool = False,
        val_crop: int | None = None,
        allow_8bit: bool = False,
        cache_dir: str | None = None,
        keep_orientation: bool = False,
        synthetic: dict[str, Any] | None = None,
    ):
        super().__init__()
        if dataset not in DATASETS:
            raise DataError(
                f"unknown dataset {dataset!r}", None, f"use one of {', '.join(DATASETS)}"
            )
        if dataset != "synthetic" and not root:
            raise DataError(
                f"data.root is not set for dataset '{dataset}'",
                None,
                "pass data.root=/path/to/data",
            )
        self.dataset = dataset
        self.root = None if root is None else Path(root).expanduser()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.crop_size = crop_size
        self.resize = resize
        self.train_repeats = train_repeats
        self.vflip = vflip
        self.hflip_swap = hflip_swap
        self.rot90 = rot90
        self.val_crop = val_crop
        self.allow_8bit = allow_8bit
        self.cache_dir = cache_dir
        self.keep_orientation = keep_orientation
        self.synthetic = dict(synthetic or {})
        self.datasets: dict[str, Dataset] = {}

    # -- datasets ---------------------------------------------------------------------
    def _synthetic(self, split: str) -> Dataset:
        options = dict(self.synthetic)
        lengths = {
            s: options.pop(f"{s}_length", default)
            for s, default in (("train", 1000), ("val", 8), ("test", 8))
        }
        pool = options.pop("pool", None)
        if "size" not in options and self.crop_size:
            options["size"] = (self.crop_size, self.crop_size)
        if "size" in options:
            options["size"] = tuple(options["size"])
        if split == "train" and pool:
            return self._scene_pool(pool, lengths["train"], options)
        return SyntheticDPDataset(length=lengths[split], split=split, **options)

    def _scene_pool(self, pool: dict[str, Any], length: int, options: dict[str, Any]) -> Dataset:
        """``synthetic.pool = {scenes: N, size: [H, W]}``: N training scenes rendered once
        (with ``num_workers`` processes) and cut into fresh crops every epoch."""
        unknown = sorted(set(pool) - {"scenes", "size"})
        if unknown or "scenes" not in pool:
            raise DataError(
                f"data.synthetic.pool has keys {sorted(pool)}",
                None,
                "give it `scenes` (how many to render) and optionally `size` ([H, W])",
            )
        options = dict(options)
        if pool.get("size"):
            options["size"] = tuple(pool["size"])
        crop = self.crop_size or min(options.get("size", (256, 256)))
        scenes = SyntheticDPDataset(length=int(pool["scenes"]), split="train", **options)
        return ScenePool(
            render_pool(scenes, self.num_workers),
            length,
            crop,
            seed=scenes.seed,
            vflip=self.vflip,
            hflip_swap=self.hflip_swap,
        )

    def _dpdd(self, split: str) -> Dataset:
        transform = None
        roles = None
        if split == "train":
            transform = train_transforms(
                self.crop_size, self.vflip, self.hflip_swap, self.resize, self.rot90
            )
            roles = TRAIN_ROLES
        elif split == "val" and self.val_crop:
            transform = Compose([CenterCrop(self.val_crop)])
        return DPDDDataset(
            self.root,
            split,
            transform,
            allow_8bit=self.allow_8bit,
            cache_dir=self.cache_dir,
            roles=roles,
        )

    def build(self, split: str) -> Dataset:
        """The dataset of ``split`` (train, val, test or predict), built once."""
        if split in self.datasets:
            return self.datasets[split]
        if self.dataset == "synthetic":
            dataset = self._synthetic("test" if split == "predict" else split)
        elif self.dataset == "dpdd":
            dataset = self._dpdd("test" if split == "predict" else split)
        elif split == "predict":
            dataset = PixelDataset(
                self.root, keep_orientation=self.keep_orientation, cache_dir=self.cache_dir
            )
        else:
            raise DataError(
                f"PIXEL has no ground truth, so it has no '{split}' split",
                self.root,
                "use PIXEL for prediction (dpdeblur-deblur / trainer.predict) only",
            )
        self.datasets[split] = dataset
        return dataset

    def setup(self, stage: str | None = None) -> None:
        wanted = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("predict",),
            None: ("train", "val", "test"),
        }[stage]
        for split in wanted:
            self.build(split)

    # -- loaders ----------------------------------------------------------------------
    def _loader(
        self,
        dataset: Dataset,
        batch_size: int,
        shuffle: bool,
        sampler=None,
        workers: int | None = None,
        persistent: bool = False,
    ) -> DataLoader:
        workers = self.num_workers if workers is None else workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pin_memory,
            persistent_workers=persistent and workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.build("train")
        if self.dataset == "synthetic":
            # Rendering workers live across epochs (no restart, photos loaded once); a
            # pre-rendered pool only crops and flips, which the main process does for free.
            pooled = isinstance(dataset, ScenePool)
            return self._loader(
                EpochStream(dataset),
                self.batch_size,
                False,
                EpochStreamSampler(len(dataset)),
                workers=0 if pooled else None,
                persistent=not pooled,
            )
        if self.train_repeats > 1:
            dataset = Repeat(dataset, self.train_repeats)
        return self._loader(dataset, self.batch_size, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.build("val"), 1, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.build("test"), 1, False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.build("predict"), 1, False)
