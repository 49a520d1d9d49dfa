"""Index plumbing for training streams, plain torch: an endless synthetic stream whose
epoch enters each scene's seed, and random crops of a finite dataset whose seed, epoch
and index decide each crop."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset, Sampler

from dpdeblur.data.datasets import DPFileDataset


class EpochStream(Dataset):
    """Index ``epoch * n + i`` of the stream is sample ``i`` of epoch ``epoch`` of ``base``.

    ``base`` must offer ``set_epoch(epoch)``; with :class:`EpochStreamSampler` every epoch
    yields ``n`` fresh samples, reproducible for a seed, in any data-loader worker.
    """

    def __init__(self, base: Dataset):
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        epoch, i = divmod(int(index), len(self.base))
        self.base.set_epoch(epoch)
        return self.base[i]


class RandomCrops(Dataset):
    """Random training crops of a finite dataset as an epoch stream: each epoch ``times``
    passes over ``base`` (fresh crops each pass), every crop a function of the seed, the
    epoch and its index.

    Index ``epoch * len(self) + j`` is image ``j % len(base)`` (pass ``j // len(base)``),
    transformed with the generator of ``(seed, epoch, j)``: the same crop and flips in any
    data-loader worker, with any number of workers, and after a resume mid-epoch (the
    workers' own random states are never saved). :class:`EpochStreamSampler` yields the
    indices (shuffled for training). ``base`` is a
    :class:`~dpdeblur.data.datasets.DPFileDataset` (its ``transform`` draws from the
    generator it is given; its ``batch`` makes a batch at once).

    DPANet's release pre-cut each training image into overlapping 512 patches (about 28
    per DPDD image); ``times`` random crops per image give an epoch the same number of
    steps.
    """

    def __init__(self, base: DPFileDataset, times: int = 1, seed: int = 0):
        self.base = base
        self.times = max(1, int(times))
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.base) * self.times

    def locate(self, index: int) -> tuple[int, np.random.Generator]:
        """Stream index -> (image index of ``base``, the generator of its crop)."""
        epoch, position = divmod(int(index), len(self))
        rng = np.random.default_rng([self.seed, epoch, position])
        return position % len(self.base), rng

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """A batch at once (:meth:`~dpdeblur.data.datasets.DPFileDataset.batch`)."""
        images, rngs = zip(*(self.locate(i) for i in indices), strict=True)
        return self.base.batch(list(images), list(rngs))


class EpochStreamSampler(Sampler[int]):
    """Yields ``epoch * n + i`` for the ``n`` indices ``i`` of an epoch, in order or
    shuffled (a permutation drawn from ``(seed, epoch)``: the same order on every rank and
    after a resume, whatever the process's random state); Lightning calls ``set_epoch``
    each epoch."""

    def __init__(self, length: int, shuffle: bool = False, seed: int = 0):
        self.length = length
        self.shuffle = shuffle
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.length
        if not self.shuffle:
            return iter(range(start, start + self.length))
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        return iter((start + order).tolist())
