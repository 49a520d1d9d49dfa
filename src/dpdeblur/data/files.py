"""Atomic file writes that respect the user's umask.

A file written here appears whole or not at all: its bytes go to a hidden temporary name
in the destination folder, which is then renamed over the destination (``os.replace``, atomic
on one file system), and a failure removes the temporary file. The temporary file is
created with ``os.open(..., 0o666)``, so the kernel applies the umask exactly as for a plain
``open(path, "w")`` (0644 under umask 022): ``tempfile.mkstemp`` would make every file 0600
whatever the umask, unreadable to the group that shares a dataset or a run folder.

Image files (:func:`dpdeblur.data.io.write_png`), the decoded-image cache, datasets written
by ``dpdeblur-data synth`` and the tables of ``dpdeblur-table --out`` are all written here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# Tries at a fresh temporary name before giving up (each name has 32 random bits).
_NAME_TRIES = 16


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path`` (mode 0o666 less the umask) and its name."""
    for _ in range(_NAME_TRIES):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """Open a binary handle whose contents replace ``path`` when the block ends normally.

    The folder must exist. On an exception (including one raised by the caller) the
    temporary file is removed, ``path`` is left as it was, and the exception propagates.
    """
    path = Path(path)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`); returns the path."""
    path = Path(path)
    with atomic_file(path) as handle:
        handle.write(data)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_file`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))
