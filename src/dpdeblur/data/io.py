"""Image I/O at full bit depth (docs/evaluation.md, "Reading pixels").

DPDD ships 16-bit sRGB PNGs. Two silent traps lose the low byte: OpenCV's ``imread``
without flags (8 bits, BGR) and imageio's default Pillow backend (reads a 16-bit RGB PNG
as 8-bit and cannot write one). Everything here goes through OpenCV with
``IMREAD_UNCHANGED`` and swaps BGR to RGB, so a uint16 file becomes ``value / 65535`` and a
uint8 file ``value / 255``, and the bit depth travels with the pixels.

Arrays are HxWx3 (channels last, RGB) in numpy; :func:`to_tensor` gives 3xHxW torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dpdeblur.data.files import write_bytes_atomic
from dpdeblur.data.samples import bit_depth_error
from dpdeblur.errors import DataError, ImageReadError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")

# cv2 would otherwise spawn threads of its own in every data-loader worker.
cv2.setNumThreads(0)


@dataclass(frozen=True)
class RawImage:
    """Decoded pixels before scaling: HxWx3 RGB, uint8 or uint16 (or float32 for TIFF)."""

    pixels: np.ndarray
    bit_depth: int
    source_channels: int


def bit_depth_of(dtype: np.dtype) -> int:
    """Bits per sample of an integer dtype (8, 16); 32 for floating point."""
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 8
    if dtype == np.uint16:
        return 16
    if dtype.kind == "f":
        return 32
    raise ValueError(f"unsupported pixel type {dtype}")


def read_raw(path: str | Path) -> RawImage:
    """Decode an image file without scaling: RGB channel order, full bit depth.

    Grey or single-channel files are expanded to three equal channels (with a warning, as
    PIXEL's green-only views are); an alpha channel is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("image file not found", path, "check the path or re-download the dataset")
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.size == 0:
        raise ImageReadError(
            "cannot decode image (corrupt, truncated or not an image)",
            path,
            "re-download or re-export this file",
        )
    source_channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if source_channels == 1:
        warnings.warn(
            f"{path}: single-channel image expanded to 3 identical channels", stacklevel=2
        )
        pixels = np.repeat(pixels, 3, axis=2)
    elif source_channels == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)
    elif source_channels == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    else:
        raise ImageReadError(
            f"unsupported channel count {source_channels}", path, "expected grey, RGB or RGBA"
        )
    try:
        depth = bit_depth_of(pixels.dtype)
    except ValueError as err:
        raise ImageReadError(str(err), path, "expected 8- or 16-bit PNG/TIFF") from None
    return RawImage(np.ascontiguousarray(pixels), depth, source_channels)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """Scale integer pixels to float32 in [0, 1] by their full range (uint16 / 65535)."""
    if pixels.dtype == np.uint16:
        return pixels.astype(np.float32) / 65535.0
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return np.clip(pixels.astype(np.float32), 0.0, 1.0)


def read_image(path: str | Path, min_bits: int | None = None) -> tuple[np.ndarray, int]:
    """Read ``path`` as float32 HxWx3 RGB in [0, 1] and return it with its bit depth.

    ``min_bits=16`` turns an 8-bit file into a :class:`BitDepthError` (DPDD is 16-bit; an
    8-bit copy has lost information and would silently change every score).
    """
    raw = read_raw(path)
    shortfall = bit_depth_error(Path(path), raw.bit_depth, min_bits, "read without min_bits")
    if shortfall is not None:
        raise shortfall
    return to_float(raw.pixels), raw.bit_depth


def quantize(image: np.ndarray, bits: int) -> np.ndarray:
    """Round a float image in [0, 1] to uint8 or uint16 (values outside are clipped)."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, not {bits}")
    top = 255 if bits == 8 else 65535
    dtype = np.uint8 if bits == 8 else np.uint16
    return np.round(np.clip(image, 0.0, 1.0) * top).astype(dtype)


def as_hwc(image) -> np.ndarray:
    """Accept HxWx3 numpy or 3xHxW torch/numpy and return an HxWxC numpy array."""
    if hasattr(image, "detach"):
        image = image.detach().float().cpu().numpy()
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3):
        image = np.transpose(image, (1, 2, 0))
    return image


def write_png(path: str | Path, image, bits: int = 16) -> Path:
    """Write a float image in [0, 1] (HxWx3, or 3xHxW tensor) as an 8- or 16-bit RGB PNG.

    Integer arrays (uint8/uint16) are written as they are. The file appears atomically, with
    the user's umask (:func:`dpdeblur.data.files.write_bytes_atomic`): a failure never
    leaves a partial PNG behind.
    """
    path = Path(path)
    pixels = as_hwc(image)
    if pixels.dtype not in (np.uint8, np.uint16):
        pixels = quantize(pixels, bits)
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not path.parent.is_dir():
        raise DataError("output folder does not exist", path.parent, "create it first")
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise DataError("PNG encoding failed", path)
    try:
        write_bytes_atomic(path, encoded.tobytes())
    except OSError as err:
        raise DataError(
            f"cannot write ({err.strerror})", path, "check permissions and free space"
        ) from None
    return path


def to_tensor(image: np.ndarray):
    """HxWx3 float32 numpy -> 3xHxW float32 torch tensor (no copy of the values' scale)."""
    import torch  # here only: `dpdeblur-data check` reads images and starts without torch

    return torch.from_numpy(np.ascontiguousarray(np.transpose(image, (2, 0, 1))))


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (PNG/TIFF), sorted by name; hidden files are ignored."""
    folder = Path(folder)
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
