"""``DPDataModule``: the Lightning face of the data layer, train/val/test/predict loaders for DPDD, PIXEL and synthetic DP data.

Configured from ``conf/data/{dpdd,pixel,synthetic}.yaml``. Training on DPDD crops and flips
(see :func:`dpdeblur.data.transforms.train_transforms`); validation and test score whole
images (``val_crop`` may centre-crop validation for quick feedback; test never crops).
Synthetic training data is streamed: every epoch renders new scenes (the sampler's epoch
enters each scene's seed), while the synthetic val/test splits are fixed. DPDD's training
crops are a stream too (:class:`~dpdeblur.data.streams.RandomCrops`): each crop and the
epoch's order follow from ``crop_seed``, the epoch and the index, not from a worker's
random state, so any number of workers and a resumed run cut the same crops.

Feeding a GPU from DPDD (docs/data.md, "Feeding a GPU"):

- the decoded-image cache is on by default (``cache_dir: auto``, see
  :func:`dpdeblur.data.cache.default_cache_dir`): each PNG is decoded once, then crops are
  read from uint16 memory maps;
- DPDD and PIXEL samples travel as uint16 tensors (half the bytes of float32 through the
  workers' shared memory and to the GPU) and :meth:`DPDataModule.on_after_batch_transfer`
  divides them by 65535 on the device;
- workers write their batches into shared-memory buffers they keep, each written again
  once the training process has freed the batch in it
  (:mod:`dpdeblur.data.batch_buffers`);
- ``num_workers``, ``pin_memory`` and ``persistent_workers`` default to ``auto``:
  :func:`auto_workers` workers per process, memory pinned when training on CUDA, and
  training workers kept alive across epochs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from dpdeblur.data.batch_buffers import BUFFERS_KEY
from dpdeblur.data.cache import default_cache_dir
from dpdeblur.data.datasets import TRAIN_ROLES, DPDDDataset, DPFileDataset, PixelDataset
from dpdeblur.data.layout import resolve_dpdd_root
from dpdeblur.data.pool import ScenePool, render_pool
from dpdeblur.data.streams import EpochStream, EpochStreamSampler, RandomCrops
from dpdeblur.data.synthetic import SyntheticDPDataset
from dpdeblur.data.transforms import (
    CenterCrop,
    Compose,
    collate_samples,
    images_to_float,
    train_transforms,
)
from dpdeblur.errors import DataError

log = logging.getLogger("dpdeblur")

DATASETS = ("dpdd", "pixel", "synthetic")
AUTO = "auto"
# Workers per training process that ``num_workers: auto`` never exceeds: from the cache a
# worker delivers over 100 DPDD crops per second (docs/benchmarks.md), ten times what a
# training step on one GPU takes; more only hold memory.
MAX_AUTO_WORKERS = 8


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers(processes_per_node: int = 1, cores: int | None = None) -> int:
    """Data-loader workers per training process for ``num_workers: auto``.

    The usable cores (:func:`usable_cores`) are shared among the node's training processes
    (DDP ranks); each process keeps one core for itself (it drives the GPU and, with pinned
    memory, copies batches into page-locked memory) and gets the rest as workers, at most
    :data:`MAX_AUTO_WORKERS`. Two cores and one process: 1 worker; 16 cores and one GPU: 8;
    16 cores and 8 ranks: 1 each; one core per process: 0 (loading in the process itself).
    """
    cores = usable_cores() if cores is None else cores
    per_process = cores // max(1, processes_per_node)
    return max(0, min(MAX_AUTO_WORKERS, per_process - 1))


def _auto_or(value: Any, kind: type, name: str) -> Any:
    """``value`` if it is ``"auto"`` or of ``kind``; else a one-line config error."""
    if value == AUTO or (isinstance(value, kind) and not isinstance(value, str)):
        return value
    raise DataError(
        f"data.{name} must be {'a number' if kind is int else 'true or false'} or auto, "
        f"got {value!r}",
        None,
        f"set data.{name}=auto",
    )


class DPDataModule(L.LightningDataModule):
    """Loaders for one DP dataset.

    Args:
        dataset: "dpdd", "pixel" (predict only: no target) or "synthetic".
        root: dataset root for dpdd/pixel (``dd_dp_dataset_png`` or a Restormer-style tree).
        batch_size: training batch (val/test use batch 1: images of a split may differ in
            size).
        num_workers: loader processes; ``"auto"``: :func:`auto_workers`.
        pin_memory: page-locked batches for faster copies to the GPU; ``"auto"``: when the
            trainer runs on CUDA (or, with no trainer attached, when CUDA is available).
        persistent_workers: keep loader workers alive across epochs: ``true`` every loader's,
            ``"auto"`` the training loader's (validation loaders start theirs each pass).
        crop_size: training crop; ``resize=(min, max)`` adds DPANet's random resize + re-crop.
        train_repeats: random crops per training image per epoch (DPDD).
        vflip, hflip_swap: flip probabilities (a horizontal flip swaps the DP views).
        rot90: non-physical 90-degree rotations (off by default).
        val_crop: centre-crop validation images to this size (None: whole images).
        allow_8bit: accept 8-bit files in DPDD with a warning instead of an error.
        cache_dir: decode images once into uint16 ``.npy`` memory maps there; ``"auto"``:
            :func:`~dpdeblur.data.cache.default_cache_dir` for DPDD, none for PIXEL (each
            image is read once); ``None``: decode the files every time.
        keep_orientation: PIXEL only; keep portrait captures as they are.
        synthetic: options of :class:`dpdeblur.data.synthetic.SyntheticDPDataset` plus
            ``train_length``/``val_length``/``test_length``.
        crop_seed: seed of the DPDD/PIXEL training crops and their order
            (:class:`~dpdeblur.data.streams.RandomCrops`); ``None``: torch's seed when the
            module is made (``seed_everything(cfg.seed)`` in training), so a run and its
            resumption cut the same crops.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        root: str | None = None,
        batch_size: int = 4,
        num_workers: int | str = AUTO,
        pin_memory: bool | str = AUTO,
        persistent_workers: bool | str = AUTO,
        crop_size: int | None = 256,
        resize: Sequence[int] | None = None,
        train_repeats: int = 1,
        vflip: float = 0.5,
        hflip_swap: float = 0.5,
        rot90: bool = False,
        val_crop: int | None = None,
        allow_8bit: bool = False,
        cache_dir: str | None = AUTO,
        keep_orientation: bool = False,
        synthetic: dict[str, Any] | None = None,
        crop_seed: int | None = None,
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
        self.num_workers = _auto_or(num_workers, int, "num_workers")
        self.pin_memory = _auto_or(pin_memory, bool, "pin_memory")
        self.persistent_workers = _auto_or(persistent_workers, bool, "persistent_workers")
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
        self.crop_seed = torch.initial_seed() if crop_seed is None else int(crop_seed)
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
            render_pool(scenes, self.workers()),
            length,
            crop,
            seed=scenes.seed,
            vflip=self.vflip,
            hflip_swap=self.hflip_swap,
        )

    # -- loader settings and the cache -----------------------------------------------------
    def workers(self) -> int:
        """``num_workers``, with ``"auto"`` resolved for the attached trainer's processes."""
        if self.num_workers != AUTO:
            return int(self.num_workers)
        trainer = self.trainer
        return auto_workers(trainer.num_devices if trainer is not None else 1)

    def pinned(self) -> bool:
        """``pin_memory``, with ``"auto"`` resolved: pinned when training on CUDA."""
        if self.pin_memory != AUTO:
            return bool(self.pin_memory)
        trainer = self.trainer
        if trainer is not None:
            return trainer.strategy.root_device.type == "cuda"
        return torch.cuda.is_available()

    def cache_folder(self) -> Path | None:
        """The decoded-image cache's folder (``cache_dir`` with ``"auto"`` resolved)."""
        if self.cache_dir is None:
            return None
        if self.cache_dir != AUTO:
            return Path(self.cache_dir).expanduser()
        if self.dataset != "dpdd":
            return None
        return default_cache_dir(resolve_dpdd_root(self.root)[0])

    def _announce_cache(self, dataset: DPFileDataset, split: str) -> None:
        """Check the cache's disk has room for the entries still to build, and say so."""
        if dataset.cache is None:
            return
        files = dataset.files()
        missing, needed = dataset.cache.require_space(files)
        log.info(
            "%s: decoded-image cache %s (%d of %d files cached%s)",
            split,
            dataset.cache.folder,
            len(files) - missing,
            len(files),
            f"; the first epoch decodes the rest, {needed / 2**30:.1f} GiB" if missing else "",
        )

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint16 images -> float32 in [0, 1] on the device (:func:`images_to_float`), then
        the precision plugin's input conversion, which Lightning applied before the transfer
        while they were integers (``bf16-true``, ``64-true``)."""
        if not isinstance(batch, dict):
            return batch
        converted = images_to_float(batch)
        trainer = self.trainer
        if trainer is not None and any(converted[k] is not batch[k] for k in batch):
            converted = trainer.precision_plugin.convert_input(converted)
        converted.pop(BUFFERS_KEY, None)  # the workers' buffer lease, of no use from here
        return converted

    # -- datasets (DPDD, PIXEL) ------------------------------------------------------------
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
        dataset = DPDDDataset(
            self.root,
            split,
            transform,
            allow_8bit=self.allow_8bit,
            cache_dir=self.cache_folder(),
            roles=roles,
            integer_images=True,
        )
        self._announce_cache(dataset, split)
        return dataset

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
                self.root,
                keep_orientation=self.keep_orientation,
                cache_dir=self.cache_folder(),
                integer_images=True,
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
        workers = self.workers() if workers is None else workers
        return DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=shuffle if sampler is None else False,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.pinned(),
            persistent_workers=persistent and workers > 0,
            drop_last=False,
            collate_fn=collate_samples,
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
        # Every crop a function of (crop_seed, epoch, index), the order of (crop_seed,
        # epoch): the same in any worker and after a resume mid-epoch.
        crops = RandomCrops(dataset, self.train_repeats, self.crop_seed)
        persistent = self.persistent_workers in (True, AUTO)
        return self._loader(
            crops,
            self.batch_size,
            False,
            EpochStreamSampler(len(crops), shuffle=True, seed=self.crop_seed),
            persistent=persistent,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.build("val"), 1, False, persistent=self.persistent_workers is True)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.build("test"), 1, False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.build("predict"), 1, False)
