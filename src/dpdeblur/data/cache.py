"""A cache of decoded images as raw ``.npy`` arrays, read back as memory maps.

Decoding a 1680x1120 16-bit PNG costs tens of milliseconds; a 512x512 training crop of a
memory-mapped uint16 array reads only the rows it needs. The cache keeps the file's own
integer type (uint16 for DPDD, uint8 for 8-bit data), so nothing is lost or rescaled.

Entries are keyed by the source's resolved path, size and modification time: editing or
replacing a source file makes a new entry, never a stale read. Entries are written under
a temporary name and renamed (:func:`dpdeblur.data.files.atomic_file`, with the user's
umask), so concurrent data-loader workers never read half a file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from dpdeblur.data.files import atomic_file
from dpdeblur.data.io import bit_depth_of, read_raw
from dpdeblur.errors import DataError


class ArrayCache:
    """Decoded-image cache in ``folder`` (created on first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()

    def entry_path(self, source: Path) -> Path:
        stat = source.stat()
        key = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        return self.folder / f"{source.stem}.{digest}.npy"

    def load(self, source: str | Path) -> tuple[np.ndarray, int]:
        """Raw RGB pixels of ``source`` (a read-only memory map) and their bit depth."""
        source = Path(source)
        if not source.is_file():
            raise DataError("image file not found", source, "check the dataset root")
        entry = self.entry_path(source)
        if not entry.is_file():
            self._write(entry, read_raw(source).pixels)
        try:
            pixels = np.load(entry, mmap_mode="r")
        except (ValueError, OSError):
            entry.unlink(missing_ok=True)  # damaged entry: rebuild it once from the source
            self._write(entry, read_raw(source).pixels)
            pixels = np.load(entry, mmap_mode="r")
        return pixels, bit_depth_of(pixels.dtype)

    def _write(self, entry: Path, pixels: np.ndarray) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(entry) as handle:
                np.save(handle, np.ascontiguousarray(pixels))
        except OSError as err:
            raise DataError(
                f"cannot write the image cache ({err.strerror})",
                self.folder,
                "choose a writable data.cache_dir or set it to null",
            ) from None
