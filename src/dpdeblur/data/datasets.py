"""DPDD and PIXEL as torch datasets of sample dicts (docs/data.md, "Samples").

A sample is a dict: ``left``, ``right`` (3xHxW float32 in [0, 1]), ``combined`` and
``target`` where the data has them, ``name``, ``bit_depth`` (the lowest of the sample's
files: 16 for DPDD), and ``scene`` ("indoor"/"outdoor") on DPDD's 76-image test split.
With ``integer_images=True`` (the training loaders of
:class:`~dpdeblur.training.datamodule.DPDataModule`) the images are the files' raw values
as 3xHxW uint16 tensors instead, turned into the same float32 values on the GPU by
:func:`~dpdeblur.data.transforms.images_to_float`.

Every file of a sample is checked when the sample is read
(:func:`~dpdeblur.data.samples.sample_problems`): a missing or corrupt file, views of
different sizes, or an 8-bit file where 16 bits are expected raise a one-line
:class:`~dpdeblur.errors.DataError` naming the file. Nothing is skipped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dpdeblur.data.batch_buffers import BUFFERS_KEY, SharedBatchBuffers
from dpdeblur.data.cache import ArrayCache
from dpdeblur.data.io import read_raw
from dpdeblur.data.layout import DPRecord, index_dpdd_split, index_pixel, resolve_dpdd_root
from dpdeblur.data.samples import DecodedFile, is_portrait, portrait_to_landscape, sample_problems
from dpdeblur.data.transforms import ToTensor, chw_uint16, image_keys, is_integer_image
from dpdeblur.errors import BitDepthError

# The files a DPDD training sample reads: the model's inputs and the loss's target. The
# combined view serves only the input PSNR of val/test rows, so training skips decoding it.
TRAIN_ROLES = ("left", "right", "target")


def _transform_rng() -> np.random.Generator:
    """A generator drawn from torch's RNG: reproducible under ``seed_everything`` and
    different in every data-loader worker and epoch."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


class DPFileDataset(Dataset):
    """Samples from a list of :class:`DPRecord` (files on disk), checked when they are read.

    Args:
        records: one record per sample.
        transform: ``transform(sample, rng) -> sample`` on HxWxC arrays (see transforms.py).
        min_bits: lowest accepted bit depth (16 for DPDD); ``None`` accepts anything.
        allow_lower_bits: turn a bit-depth shortfall into a warning instead of an error.
        cache_dir: decode each file once into a uint16 ``.npy`` memory map there.
        rotate_portrait: turn portrait images to landscape
            (:func:`~dpdeblur.data.samples.portrait_to_landscape`).
        roles: read only these of a record's files (e.g. training never reads the combined
            view, which no loss uses: a quarter of the decoding saved); ``None`` reads all.
        integer_images: return uint8/uint16 files as uint16 tensors, unscaled (see
            :class:`~dpdeblur.data.transforms.ToTensor`); float files stay float32.
    """

    def __init__(
        self,
        records: list[DPRecord],
        transform: Callable | None = None,
        min_bits: int | None = None,
        allow_lower_bits: bool = False,
        cache_dir: str | Path | None = None,
        rotate_portrait: bool = False,
        roles: Sequence[str] | None = None,
        integer_images: bool = False,
    ):
        self.records = records
        self.roles = None if roles is None else tuple(roles)
        self.transform = transform
        self.min_bits = min_bits
        self.allow_lower_bits = allow_lower_bits
        self.cache = ArrayCache(cache_dir) if cache_dir else None
        self.rotate_portrait = rotate_portrait
        self.integer_images = integer_images
        self._to_tensor = ToTensor(integers=integer_images)
        # shared batch buffers only where batches of integers are made in workers
        self.buffers = SharedBatchBuffers() if integer_images else None
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.records)

    def files(self) -> list[Path]:
        """Every file the dataset reads: the roles it reads of every record."""
        return [
            path
            for record in self.records
            for role, path in record.files().items()
            if self.roles is None or role in self.roles
        ]

    def _read(self, path: Path) -> tuple[np.ndarray, int]:
        if self.cache is not None:
            return self.cache.load(path)
        raw = read_raw(path)
        return raw.pixels, raw.bit_depth

    def _check(self, files: list[DecodedFile]) -> None:
        """Raise the sample's first problem; a bit-depth shortfall where lower depths are
        allowed is a warning instead (once per file)."""
        problems = sample_problems(
            files, self.min_bits, how_to_accept="set data.allow_8bit=true to accept them"
        )
        for problem in problems:
            if not (self.allow_lower_bits and isinstance(problem, BitDepthError)):
                raise problem
            if problem.path not in self._warned:
                self._warned.add(problem.path)
                warnings.warn(
                    f"{problem.path}: {problem.problem}; scores will not match 16-bit results",
                    stacklevel=3,
                )

    def load_arrays(self, index: int) -> dict:
        """The sample's raw HxWx3 arrays (integer, possibly memory-mapped) and metadata."""
        record = self.records[index]
        sample: dict = {"name": record.name}
        files = []
        for role, path in record.files().items():
            if self.roles is not None and role not in self.roles:
                continue
            pixels, bits = self._read(path)
            files.append(DecodedFile(role, path, pixels.shape[:2], bits))
            if self.rotate_portrait and is_portrait(pixels):
                pixels = portrait_to_landscape(pixels)
            sample[role] = pixels
        self._check(files)
        sample["bit_depth"] = min(file.bit_depth for file in files)
        if record.scene is not None:
            sample["scene"] = record.scene
        return sample

    def transformed_arrays(self, index: int, rng: np.random.Generator | None = None) -> dict:
        """:meth:`load_arrays` after the transform: HxWx3 arrays, not yet tensors.

        ``rng`` draws the transform's random choices (crop position, flips); by default a
        generator drawn from torch's random state (:func:`_transform_rng`).
        """
        sample = self.load_arrays(index)
        if self.transform is not None:
            sample = self.transform(sample, rng if rng is not None else _transform_rng())
        return sample

    def __getitem__(self, index: int) -> dict:
        return self._to_tensor(self.transformed_arrays(index))

    def __getitems__(self, indices: Sequence[int]) -> list[dict]:
        """The samples of a batch (a DataLoader calls this with a batch's indices); see
        :meth:`batch`."""
        return self.batch(indices)

    def batch(
        self, indices: Sequence[int], rngs: Sequence[np.random.Generator] | None = None
    ) -> list[dict]:
        """The samples ``indices``, transformed with ``rngs`` (one generator per sample;
        by default each drawn from torch's random state).

        With ``integer_images`` every image is copied once, from its (memory-mapped) crop
        straight into its row of one uint16 batch tensor per view; the samples' images are
        those rows, which :func:`~dpdeblur.data.transforms.collate_samples` hands on as the
        batch tensor without a second copy (``default_collate`` copies them as usual). In a
        data-loader worker the batch tensors are shared memory: one of the worker's buffers
        whose last batch is gone from the training process where there is one
        (:class:`~dpdeblur.data.batch_buffers.SharedBatchBuffers`; the samples then carry
        its lease under :data:`~dpdeblur.data.batch_buffers.BUFFERS_KEY`). A batch whose
        images are not all integers of one size is made sample by sample.
        """
        if rngs is None:
            rngs = [None] * len(indices)
        samples = [self.transformed_arrays(i, rng) for i, rng in zip(indices, rngs, strict=True)]
        keys = image_keys(samples[0]) if samples else []
        if not self.integer_images or not all(
            is_integer_image(s.get(key)) and s[key].shape == samples[0][key].shape
            for s in samples
            for key in keys
        ):
            return [self._to_tensor(s) for s in samples]
        shapes = {}
        for key in keys:
            height, width, channels = samples[0][key].shape
            shapes[key] = (len(samples), channels, height, width)
        batches, lease = self.buffers.batch_tensors(shapes)
        for key, batch in batches.items():
            rows = batch.numpy()
            for i, sample in enumerate(samples):
                chw_uint16(sample[key], out=rows[i])
                sample[key] = batch[i]
        if lease is not None:
            for sample in samples:
                sample[BUFFERS_KEY] = lease
        return samples


class DPDDDataset(DPFileDataset):
    """One split of DPDD, in either layout (detected; see :mod:`dpdeblur.data.layout`).

    ``allow_8bit`` accepts 8-bit files with a warning (DPDD is 16-bit; an 8-bit copy is a
    different protocol, and the recorded ``bit_depth`` says so).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        allow_8bit: bool = False,
        cache_dir: str | Path | None = None,
        roles: Sequence[str] | None = None,
        integer_images: bool = False,
    ):
        self.root, self.layout = resolve_dpdd_root(root)
        self.split = split
        records = index_dpdd_split(self.root, split, self.layout)
        cache = Path(cache_dir) / split if cache_dir else None
        super().__init__(
            records,
            transform,
            min_bits=16,
            allow_lower_bits=allow_8bit,
            cache_dir=cache,
            roles=roles,
            integer_images=integer_images,
        )


class PixelDataset(DPFileDataset):
    """PIXEL (Google Pixel 4 DP captures): left/right only, no target, no combined view.

    Portrait captures are rotated 90 degrees counter-clockwise to landscape unless
    ``keep_orientation``. The release carries one green channel; single-channel files are
    expanded to three equal channels by :func:`dpdeblur.data.io.read_raw` (with a warning).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "test",
        transform: Callable | None = None,
        keep_orientation: bool = False,
        cache_dir: str | Path | None = None,
        integer_images: bool = False,
    ):
        self.root = Path(root)
        records, self.layout = index_pixel(root, split)
        super().__init__(
            records,
            transform,
            cache_dir=cache_dir,
            rotate_portrait=not keep_orientation,
            integer_images=integer_images,
        )
