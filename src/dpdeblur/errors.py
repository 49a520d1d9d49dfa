"""Errors meant for users: one line that says what went wrong, where, and what to do.

Library code raises these with enough context (the file, the problem, the fix); the
command-line tools print ``str(error)`` as a single line and exit non-zero, never a
traceback (see :func:`dpdeblur.cli.common.run_cli`).
"""

from __future__ import annotations

from pathlib import Path


class DpdeblurError(Exception):
    """Base class for every error a user should read as one line."""

    def __init__(self, problem: str, path: str | Path | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else Path(path)
        self.fix = fix
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [f"{self.path}: {self.problem}" if self.path is not None else self.problem]
        if self.fix:
            parts.append(self.fix)
        return " -- ".join(parts).replace("\n", " ")


class DataError(DpdeblurError):
    """A dataset root, split or image file is missing, malformed or inconsistent."""


class ImageReadError(DataError):
    """An image file cannot be decoded (corrupt, truncated, not an image)."""


class BitDepthError(DataError):
    """An image has a lower bit depth than the dataset promises (e.g. 8-bit in DPDD)."""


class CheckpointError(DpdeblurError):
    """A checkpoint is missing, corrupt, or belongs to another model."""


class ConfigError(DpdeblurError):
    """A configuration names something that does not exist (model, loss term, option)."""
