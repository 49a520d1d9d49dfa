"""Transforms that act on a whole DP sample dict at once (docs/data.md, "Transforms").

Every image-like entry (``left``, ``right``, ``combined``, ``target`` and the synthetic
``coc``/``depth`` maps) gets the same crop, resize and flip, so the views stay registered
with each other and with the target. Arrays are HxWxC numpy, integer (raw, possibly a
memory map: cropping first reads only the crop) or float32; :class:`ToTensor` ends a
pipeline, with float32 tensors in [0, 1] or, for training loaders
(``ToTensor(integers=True)``), the raw integers as uint16 tensors: half the bytes of
float32 to pass between processes and to the GPU, where :func:`images_to_float` divides
them by 65535 after the transfer (``DPDataModule.on_after_batch_transfer``), bit for bit
what the CPU conversion gives. :func:`collate_samples` collates samples whose images a
dataset already wrote into one batch tensor without copying them again.

DP physics: a horizontal mirror turns the left half-aperture into the right one, so a
horizontal flip must also swap ``left`` and ``right`` (:class:`RandomHorizontalFlipSwap`).
Vertical flips keep the views. A 90-degree rotation makes the disparity vertical, which no
DP sensor produces: :class:`RandomRot90` exists for experiments and is off by default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import default_collate

from dpdeblur.data.io import to_float

IMAGE_KEYS = ("left", "right", "combined", "target", "coc", "depth")
Sample = dict


def image_keys(sample: Sample) -> list[str]:
    return [k for k in IMAGE_KEYS if k in sample and sample[k] is not None]


def sample_size(sample: Sample) -> tuple[int, int]:
    """(H, W) of the sample's images (all of them share it)."""
    first = sample[image_keys(sample)[0]]
    return int(first.shape[0]), int(first.shape[1])


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Callable[[Sample, np.random.Generator], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = rng if rng is not None else np.random.default_rng()
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class PairedRandomCrop:
    """The same random ``size`` x ``size`` window (or HxW) from every image of the sample."""

    def __init__(self, size: int | Sequence[int]):
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        height, width = sample_size(sample)
        crop_h, crop_w = self.size
        if crop_h > height or crop_w > width:
            raise ValueError(
                f"{sample.get('name', 'sample')}: crop {crop_h}x{crop_w} is larger than the image {height}x{width}"
            )
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        out = dict(sample)
        for key in image_keys(sample):
            out[key] = sample[key][top : top + crop_h, left : left + crop_w]
        return out

    def __repr__(self) -> str:
        return f"PairedRandomCrop({self.size})"


class CenterCrop:
    """The central window of every image (deterministic; for validation previews)."""

    def __init__(self, size: int | Sequence[int]):
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        height, width = sample_size(sample)
        crop_h, crop_w = min(self.size[0], height), min(self.size[1], width)
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        out = dict(sample)
        for key in image_keys(sample):
            out[key] = sample[key][top : top + crop_h, left : left + crop_w]
        return out


class RandomResize:
    """Resize every image to n x n, n drawn from {min_size, min_size + step, ..., max_size}.

    The DPANet release's augmentation (dpanet.md): 512x512 patches resized to n in
    {512, 514, ..., 638}, then a random 512 crop. Bilinear, on float32 values.
    """

    def __init__(self, min_size: int, max_size: int, step: int = 2):
        self.sizes = list(range(min_size, max_size + 1, step))

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        n = int(self.sizes[int(rng.integers(0, len(self.sizes)))])
        out = dict(sample)
        for key in image_keys(sample):
            image = to_float(np.asarray(sample[key]))
            resized = cv2.resize(image, (n, n), interpolation=cv2.INTER_LINEAR)
            out[key] = resized.reshape(n, n, image.shape[2])
        return out


class RandomFlip:
    """Flip every image of a sample with probability ``p``; subclasses say which axis."""

    def __init__(self, p: float = 0.5):
        self.p = p

    def flip(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        out = dict(sample)
        for key in image_keys(sample):
            out[key] = self.flip(sample[key])
        return self.relabel(out)

    def relabel(self, sample: Sample) -> Sample:
        """What the flip means for the views' names (nothing, unless overridden)."""
        return sample


class RandomVerticalFlip(RandomFlip):
    """Flip every image upside down with probability ``p`` (physical for DP: views kept)."""

    def flip(self, image: np.ndarray) -> np.ndarray:
        return image[::-1]


class RandomHorizontalFlipSwap(RandomFlip):
    """Mirror every image left-right with probability ``p`` and swap the two DP views.

    A mirror turns the left half-aperture into the right one, so the mirrored left view is
    the new right view. The signed defocus map keeps its sign (depth does not change).
    """

    def flip(self, image: np.ndarray) -> np.ndarray:
        return image[:, ::-1]

    def relabel(self, sample: Sample) -> Sample:
        sample["left"], sample["right"] = sample["right"], sample["left"]
        return sample


class RandomRot90:
    """Rotate every image by a random multiple of 90 degrees. NOT physical for DP data.

    A rotation turns the horizontal DP disparity vertical; no DP sensor does that. Off by
    default (``enabled=False`` makes it a no-op) and offered only for ablations.
    """

    def __init__(self, enabled: bool = False):
        self.enabled = enabled

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if not self.enabled:
            return sample
        turns = int(rng.integers(0, 4))
        out = dict(sample)
        for key in image_keys(sample):
            out[key] = np.rot90(sample[key], turns)
        return out


# Full range of the integer pixel types, as :func:`dpdeblur.data.io.to_float` scales them.
_FULL_RANGE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


def chw_float(value: np.ndarray) -> torch.Tensor:
    """An HxWxC array (any strides, e.g. a flipped memory-map crop) as a CxHxW float32 tensor.

    uint8/uint16 pixels are divided by their full range in float32, as ``to_float`` does,
    but in one pass that reads the crop and writes the transposed floats (faster than
    converting, scaling and transposing in three, docs/benchmarks.md "Speed work"; the
    values are bit-identical).
    """
    value = np.asarray(value)
    full_range = _FULL_RANGE.get(value.dtype)
    if full_range is None:
        image = (
            to_float(value) if value.dtype.kind in "ui" else value.astype(np.float32, copy=False)
        )
        return torch.from_numpy(np.ascontiguousarray(np.transpose(image, (2, 0, 1))))
    out = np.empty((value.shape[2], value.shape[0], value.shape[1]), dtype=np.float32)
    np.divide(np.transpose(value, (2, 0, 1)), np.float32(full_range), out=out, dtype=np.float32)
    return torch.from_numpy(out)


def is_integer_image(value) -> bool:
    """Whether ``value`` is a uint8/uint16 array that :func:`chw_uint16` takes."""
    return isinstance(value, np.ndarray) and value.dtype in _FULL_RANGE


def chw_uint16(value: np.ndarray, out: np.ndarray | None = None) -> torch.Tensor | None:
    """An HxWxC integer array (any strides) as a CxHxW uint16 tensor, unscaled; uint8 is
    widened to the 16-bit range (``v * 257``: ``v * 257 / 65535 == v / 255`` exactly, so
    :func:`images_to_float` gives the float32 values :func:`chw_float` would).

    With ``out`` (a CxHxW uint16 array, e.g. a row of a batch tensor) the pixels are
    written there and ``None`` is returned.
    """
    value = np.asarray(value)
    if value.dtype not in _FULL_RANGE:
        raise TypeError(f"chw_uint16 takes uint8 or uint16 pixels, not {value.dtype}")
    target = np.empty((value.shape[2], value.shape[0], value.shape[1]), np.uint16)
    target = target if out is None else out
    if value.dtype == np.uint8:
        np.multiply(np.transpose(value, (2, 0, 1)), np.uint16(257), out=target, dtype=np.uint16)
    else:
        np.copyto(target, np.transpose(value, (2, 0, 1)))
    return torch.from_numpy(target) if out is None else None


def collate_samples(samples: list[Sample]) -> Sample:
    """``default_collate``, except that image tensors which already are the rows of one
    batch tensor (as :meth:`DPFileDataset.batch <dpdeblur.data.datasets.DPFileDataset.batch>`
    makes them) are passed on as that tensor, not copied again."""
    if not samples:
        return default_collate(samples)
    batched = {}
    for key in image_keys(samples[0]):
        base = getattr(samples[0][key], "_base", None)
        if (
            isinstance(base, torch.Tensor)
            and base.dim() == 4
            and base.shape[0] == len(samples)
            and all(
                isinstance(s.get(key), torch.Tensor)
                and s[key]._base is base
                and s[key].data_ptr() == base[i].data_ptr()
                and s[key].shape == base.shape[1:]
                for i, s in enumerate(samples)
            )
        ):
            batched[key] = base
    rest = default_collate([{k: v for k, v in s.items() if k not in batched} for s in samples])
    return {**rest, **batched}


class ToTensor:
    """HxWxC arrays -> CxHxW tensors: float32 in [0, 1] (integers scaled by their full
    range), or with ``integers=True`` uint8/uint16 pixels as uint16 tensors (unscaled; see
    :func:`chw_uint16`) and float pixels as float32."""

    def __init__(self, integers: bool = False):
        self.integers = integers

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        out = dict(sample)
        for key in image_keys(sample):
            value = sample[key]
            if isinstance(value, torch.Tensor):
                continue
            if self.integers and np.asarray(value).dtype in _FULL_RANGE:
                out[key] = chw_uint16(value)
            else:
                out[key] = chw_float(value)
        return out


def images_to_float(sample: Sample) -> Sample:
    """The uint16 image tensors of a sample or a collated batch as float32 in [0, 1],
    converted on the device they are on; float images and other entries unchanged.

    The division is by a tensor of the same device, not a Python scalar: CUDA divides by a
    scalar as a multiplication by its reciprocal, one rounding more, so this way every
    value matches :func:`chw_float`'s float32 division bit for bit.
    """
    out = dict(sample)
    for key in image_keys(sample):
        value = sample[key]
        if not isinstance(value, torch.Tensor) or value.is_floating_point():
            continue
        if value.dtype != torch.uint16:
            raise TypeError(f"{key}: integer images must be uint16 tensors, not {value.dtype}")
        full_range = torch.full((), 65535.0, dtype=torch.float32, device=value.device)
        out[key] = value.to(torch.float32).div_(full_range)
    return out


def train_transforms(
    crop_size: int | None = 256,
    vflip: float = 0.5,
    hflip_swap: float = 0.5,
    resize: Sequence[int] | None = None,
    rot90: bool = False,
) -> Compose:
    """The standard training pipeline: crop, optional random resize and re-crop, flips.

    ``resize=(min, max)`` reproduces DPANet's recipe: crop, resize to n x n, crop again.
    """
    steps: list = []
    if crop_size:
        steps.append(PairedRandomCrop(crop_size))
        if resize:
            steps += [RandomResize(int(resize[0]), int(resize[1])), PairedRandomCrop(crop_size)]
    if vflip:
        steps.append(RandomVerticalFlip(vflip))
    if hflip_swap:
        steps.append(RandomHorizontalFlipSwap(hflip_swap))
    if rot90:
        steps.append(RandomRot90(enabled=True))
    return Compose(steps)
