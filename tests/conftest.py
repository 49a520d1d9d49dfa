"""Shared fixtures: tiny DP datasets written by the tests themselves (never downloaded)."""

from __future__ import annotations

import os

# Before torch is imported: OpenMP threads that spin while waiting stall badly when the two
# cores are shared (other test workers, data-loader workers); sleeping waits do not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from dpdeblur.data.writer import write_split


def random_sample(rng: np.random.Generator, size: tuple[int, int], bits: int = 16) -> dict:
    """A sample of random integer images at full bit depth (distinct per role)."""
    dtype, top = (np.uint16, 65535) if bits == 16 else (np.uint8, 255)
    return {
        role: rng.integers(0, top + 1, size=(*size, 3), dtype=np.int64).astype(dtype)
        for role in ("left", "right", "combined", "target")
    }


@pytest.fixture
def make_dpdd_tree(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, list[dict]]]]:
    """Factory: write a small DPDD tree and return (root, written samples per split)."""

    def make(
        layout: str = "official",
        counts: dict[str, int] | None = None,
        size: tuple[int, int] = (12, 20),
        bits: int = 16,
        seed: int = 0,
        name: str = "dpdd",
    ) -> tuple[Path, dict[str, list[dict]]]:
        rng = np.random.default_rng(seed)
        root = tmp_path / name
        written = {}
        for split, count in (counts or {"train": 3, "val": 2, "test": 2}).items():
            samples = [random_sample(rng, size, bits) for _ in range(count)]
            write_split(root, split, samples, layout=layout, bits=bits, prefix="IMG")
            written[split] = samples
        return root, written

    return make
