import os

import numpy as np

from dpdeblur.data.cache import ArrayCache
from dpdeblur.data.datasets import DPDDDataset
from dpdeblur.data.io import write_png


def test_cache_returns_identical_pixels_as_a_memory_map(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 65536, (10, 12, 3)).astype(np.uint16)
    source = write_png(tmp_path / "a.png", pixels)
    cache = ArrayCache(tmp_path / "cache")
    first, bits = cache.load(source)
    assert bits == 16 and isinstance(first, np.memmap)
    np.testing.assert_array_equal(first, pixels)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
    again, _ = cache.load(source)
    np.testing.assert_array_equal(again, pixels)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_changed_source_gets_a_new_entry(tmp_path):
    source = write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    cache.load(source)
    write_png(source, np.full((4, 4, 3), 7, np.uint16))
    os.utime(source, ns=(1, 10**18))
    pixels, _ = cache.load(source)
    assert (pixels == 7).all()


def test_damaged_entry_is_rebuilt(tmp_path):
    source = write_png(tmp_path / "a.png", np.full((4, 4, 3), 3, np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    cache.load(source)
    entry = next((tmp_path / "cache").glob("*.npy"))
    entry.write_bytes(b"garbage")
    pixels, _ = cache.load(source)
    assert (pixels == 3).all()


def test_dataset_with_cache_equals_dataset_without(make_dpdd_tree, tmp_path):
    root, _ = make_dpdd_tree(counts={"train": 2})
    plain = DPDDDataset(root, "train")
    cached = DPDDDataset(root, "train", cache_dir=tmp_path / "c")
    for i in range(2):
        a, b = plain[i], cached[i]
        for role in ("left", "right", "combined", "target"):
            assert (a[role] == b[role]).all()
    assert len(list((tmp_path / "c" / "train").glob("*.npy"))) == 8
