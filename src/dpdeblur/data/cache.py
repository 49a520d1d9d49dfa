"""A cache of decoded images as raw ``.npy`` arrays, read back as memory maps.

Decoding a 1680x1120 16-bit PNG costs tens of milliseconds; a 512x512 training crop of a
memory-mapped uint16 array reads only the rows it needs. The cache keeps the file's own
integer type (uint16 for DPDD, uint8 for 8-bit data), so nothing is lost or rescaled.

Entries are built once, the first time a file is read (by whichever data-loader worker
reads it first), and checked every time they are read:

- an entry is keyed by the source's resolved path and by its size, modification and
  change times and inode: editing or replacing a source file (an atomic rename is a new
  inode) makes a new entry, never a stale read, and writing it removes the source's older
  entries;
- an entry that cannot be read back as an H x W x 3 image array (truncated, overwritten)
  is rebuilt once from its source.

Each process keeps the memory maps it opened (up to :data:`OPEN_MAPS`): mapping a file
anew for every crop would fault in every page the crop touches again, which doubled the
cost of a 512x512 crop (docs/benchmarks.md, "Data path"). Mapped pages belong to the page
cache (shared between the data-loader workers, dropped under memory pressure).

Entries are written under a temporary name and renamed
(:func:`dpdeblur.data.files.atomic_file`, with the user's umask), so concurrent data-loader
workers never read half a file. A cached DPDD takes about 19 GB (11.3 MB per 1680x1120
16-bit image; 1,650 files in its three splits, training reading 1,050 of them);
:meth:`ArrayCache.require_space` refuses to start one on a disk that cannot hold it. Where the cache goes by default: :func:`default_cache_dir`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from dpdeblur.data.check import png_header
from dpdeblur.data.files import atomic_file
from dpdeblur.data.io import bit_depth_of, read_raw
from dpdeblur.errors import DataError

CACHE_ENV = "DPDEBLUR_CACHE_DIR"
CACHE_FOLDER = ".dpdeblur_cache"
# Free space kept beyond the cache's estimated size when a cache is started.
SPARE_BYTES = 1 << 30
# Memory maps a process keeps open (the oldest is closed beyond): all of DPDD's 1,650 files.
OPEN_MAPS = 2048
_IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def default_cache_dir(root: str | Path) -> Path:
    """Where the cache of the dataset at ``root`` goes when ``data.cache_dir=auto``.

    ``$DPDEBLUR_CACHE_DIR`` when it is set; else a hidden folder ``.dpdeblur_cache`` in the
    dataset root when it is writable (the disk that holds the dataset usually has room for
    its decoded copy, and the cache goes when the dataset goes); else
    ``$XDG_CACHE_HOME/dpdeblur`` (``~/.cache/dpdeblur``). Entries are keyed by each file's
    resolved path, so datasets can share a folder.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = Path(root).expanduser()
    if root.is_dir() and os.access(root, os.W_OK | os.X_OK):
        return root / CACHE_FOLDER
    user_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(user_cache) / "dpdeblur"


def decoded_bytes(source: Path) -> int | None:
    """Bytes of the decoded H x W x 3 array of a PNG (from its header); ``None`` for other
    formats or unreadable headers."""
    if source.suffix.lower() != ".png":
        return None
    try:
        height, width, bits = png_header(source)
    except (DataError, OSError):
        return None
    return height * width * 3 * (2 if bits == 16 else 1)


def _identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, modification time) of a file; ``None`` when it is gone. An entry
    changed in place since it was mapped (never by this cache, which replaces files) is
    read again rather than trusted."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class ArrayCache:
    """Decoded-image cache in ``folder`` (created on first write)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).expanduser()
        self._maps: dict[Path, tuple[tuple[int, int, int], np.ndarray]] = {}

    def __getstate__(self) -> dict:
        # A data-loader worker started by pickling (spawn) opens its own maps.
        return {**self.__dict__, "_maps": {}}

    def _prefix(self, source: Path) -> str:
        """The part of an entry's name that names its source file, whatever its version."""
        digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:12]
        return f"{source.stem}.{digest}"

    def entry_path(self, source: Path) -> Path:
        """The entry of the current version of ``source``."""
        stat = source.stat()
        version = f"{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}|{stat.st_ino}"
        digest = hashlib.sha1(version.encode()).hexdigest()[:12]
        return self.folder / f"{self._prefix(source)}.{digest}.npy"

    def load(self, source: str | Path) -> tuple[np.ndarray, int]:
        """Raw RGB pixels of ``source`` (a read-only memory map) and their bit depth."""
        source = Path(source)
        if not source.is_file():
            raise DataError("image file not found", source, "check the dataset root")
        entry = self.entry_path(source)
        kept = self._maps.pop(entry, None)
        if kept is not None and kept[0] == _identity(entry):
            self._maps[entry] = kept
            return kept[1], bit_depth_of(kept[1].dtype)
        if not entry.is_file():
            self._write(source, entry)
        pixels = self._read(entry)
        if pixels is None:  # damaged entry: rebuild it once from the source
            entry.unlink(missing_ok=True)
            self._write(source, entry)
            pixels = self._read(entry)
            if pixels is None:
                raise DataError(
                    "the image cache entry cannot be read back after rewriting it",
                    entry,
                    "check the disk, or set data.cache_dir=null",
                )
        if len(self._maps) >= OPEN_MAPS:
            del self._maps[next(iter(self._maps))]
        self._maps[entry] = (_identity(entry), pixels)
        return pixels, bit_depth_of(pixels.dtype)

    @staticmethod
    def _read(entry: Path) -> np.ndarray | None:
        """The entry as a memory map, or ``None`` when it is not a whole image array."""
        try:
            pixels = np.load(entry, mmap_mode="r")
        except (ValueError, OSError, EOFError):
            return None
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype not in _IMAGE_DTYPES:
            return None
        return pixels

    def _write(self, source: Path, entry: Path) -> None:
        pixels = read_raw(source).pixels
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_file(entry) as handle:
                np.save(handle, np.ascontiguousarray(pixels))
        except OSError as err:
            raise DataError(
                f"cannot write the image cache ({err.strerror})",
                self.folder,
                "choose a writable data.cache_dir with room for it, or set it to null",
            ) from None
        for old in self.folder.glob(f"{self._prefix(source)}.*.npy"):
            if old != entry:  # an earlier version of the source: never read again
                old.unlink(missing_ok=True)

    def missing(self, sources: Iterable[Path]) -> list[Path]:
        """The sources without an entry for their current version."""
        return [s for s in sources if s.is_file() and not self.entry_path(s).is_file()]

    def require_space(self, sources: Iterable[Path]) -> tuple[int, int]:
        """Check that the folder's disk can hold the entries still to build for ``sources``
        (their sizes read from PNG headers) plus 1 GiB; return how many files are still to
        decode and their decoded bytes.

        Raises a :class:`DataError` naming the folder when it cannot, before any entry is
        written, rather than filling the disk halfway through an epoch.
        """
        missing = self.missing(sources)
        needed = sum(decoded_bytes(s) or 0 for s in missing)
        if needed == 0:
            return len(missing), 0
        existing = self.folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if free < needed + SPARE_BYTES:
            raise DataError(
                f"the decoded-image cache needs {needed / 2**30:.1f} GiB more but the disk "
                f"has {free / 2**30:.1f} GiB free",
                self.folder,
                "set data.cache_dir (or DPDEBLUR_CACHE_DIR) to a folder on a larger disk, or "
                "data.cache_dir=null to decode the PNGs every time (slower)",
            )
        return len(missing), needed
