"""Index plumbing for training streams, plain torch: an endless synthetic stream whose
epoch enters each scene's seed, and repeated random crops of a finite dataset."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import Dataset, Sampler


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


class Repeat(Dataset):
    """``times`` passes over ``base`` per epoch (fresh random crops each pass).

    DPANet's release pre-cut each training image into overlapping 512 patches (about 28
    per DPDD image); repeating random crops gives an epoch the same number of steps.
    """

    def __init__(self, base: Dataset, times: int):
        self.base = base
        self.times = max(1, int(times))

    def __len__(self) -> int:
        return len(self.base) * self.times

    def __getitem__(self, index: int) -> dict:
        return self.base[index % len(self.base)]

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch at once where ``base`` makes batches itself (``DPFileDataset``)."""
        wrapped = [int(i) % len(self.base) for i in indices]
        if hasattr(self.base, "__getitems__"):
            return self.base.__getitems__(wrapped)
        return [self.base[i] for i in wrapped]


class EpochStreamSampler(Sampler[int]):
    """Yields ``epoch * n + i`` for i in 0..n-1; Lightning calls ``set_epoch`` each epoch."""

    def __init__(self, length: int):
        self.length = length
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[int]:
        start = self.epoch * self.length
        return iter(range(start, start + self.length))
