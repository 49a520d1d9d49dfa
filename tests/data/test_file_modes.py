"""Files the package writes get the user's umask (0644 under 022), atomic writes kept."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from dpdeblur.data.cache import ArrayCache
from dpdeblur.data.files import atomic_file, write_text_atomic
from dpdeblur.data.io import write_png
from dpdeblur.data.layout import SYNTHETIC_MARKER
from dpdeblur.data.writer import write_synthetic_dpdd
from dpdeblur.runs.directory import write_metrics


@pytest.fixture
def umask() -> Iterator[Callable[[int], int]]:
    """Set the process umask for the test; the old one comes back afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_png_a_dataset_and_a_json_file_are_0644_under_umask_022(tmp_path, umask):
    png = write_png(tmp_path / "a.png", np.zeros((4, 6, 3), np.uint16))
    counts = write_synthetic_dpdd(tmp_path / "synth", n=3, size=(16, 16), seed=0)
    assert counts == {"train": 1, "val": 1, "test": 1}
    dataset_files = [p for p in (tmp_path / "synth").rglob("*") if p.is_file()]
    suffixes = {p.suffix for p in dataset_files}
    assert {".png", ".npy", ".json"} <= suffixes  # images, defocus maps, the marker
    table = write_text_atomic(tmp_path / "table.json", '{"psnr": 26.0}\n')
    metrics = write_metrics(tmp_path / "run", {"status": "ok"})
    for path in [png, table, metrics, *dataset_files]:
        assert mode(path) == 0o644, path
    assert (tmp_path / "synth" / SYNTHETIC_MARKER).is_file()
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # no temporary files left


def test_the_cache_and_a_stricter_umask(tmp_path, umask):
    source = write_png(tmp_path / "src.png", np.full((4, 6, 3), 7, np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    pixels, bits = cache.load(source)
    assert bits == 16 and int(pixels[0, 0, 0]) == 7
    assert mode(cache.entry_path(source)) == 0o644
    umask(0o077)
    assert mode(write_png(tmp_path / "private.png", np.zeros((2, 2, 3), np.uint8))) == 0o600


def test_an_atomic_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path, umask):
    path = write_text_atomic(tmp_path / "t.md", "old\n")
    with pytest.raises(RuntimeError), atomic_file(path) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["t.md"]
