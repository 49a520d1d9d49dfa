"""The decoded-image cache: where it goes by default, how a changed source replaces its
entry, the disk-space check, and memory maps kept per process."""

from __future__ import annotations

import pickle
from collections import namedtuple

import numpy as np
import pytest

from dpdeblur.data import cache as cache_module
from dpdeblur.data.cache import CACHE_FOLDER, ArrayCache, decoded_bytes, default_cache_dir
from dpdeblur.data.io import write_png
from dpdeblur.errors import DataError


def test_default_folder_env_then_dataset_root_then_user_cache(tmp_path, monkeypatch):
    root = tmp_path / "dpdd"
    root.mkdir()
    monkeypatch.setenv("DPDEBLUR_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir(root) == tmp_path / "env"
    monkeypatch.delenv("DPDEBLUR_CACHE_DIR")
    assert default_cache_dir(root) == root / CACHE_FOLDER
    monkeypatch.setattr(cache_module.os, "access", lambda path, mode: False)  # read-only root
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir(root) == tmp_path / "xdg" / "dpdeblur"


def test_a_changed_source_replaces_its_entry(tmp_path):
    source = write_png(tmp_path / "a.png", np.full((4, 6, 3), 5, np.uint16))
    other = write_png(tmp_path / "sub.png", np.full((4, 6, 3), 9, np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    cache.load(source)
    cache.load(other)
    first = set((tmp_path / "cache").glob("a.*.npy"))
    write_png(source, np.full((4, 6, 3), 7, np.uint16))  # same size, atomically replaced
    pixels, bits = cache.load(source)
    assert bits == 16 and (pixels == 7).all()
    entries = set((tmp_path / "cache").glob("*.npy"))
    assert len(entries) == 2 and not first & entries  # the old version is gone, sub.png kept
    assert (ArrayCache(tmp_path / "cache").load(other)[0] == 9).all()


def test_same_file_names_in_different_folders_do_not_collide(tmp_path):
    (tmp_path / "left").mkdir()
    (tmp_path / "right").mkdir()
    left = write_png(tmp_path / "left" / "x.png", np.full((2, 2, 3), 1, np.uint16))
    right = write_png(tmp_path / "right" / "x.png", np.full((2, 2, 3), 2, np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    assert (cache.load(left)[0] == 1).all() and (cache.load(right)[0] == 2).all()
    assert (cache.load(left)[0] == 1).all()


def test_an_entry_that_is_not_an_image_array_is_rebuilt(tmp_path):
    source = write_png(tmp_path / "a.png", np.full((4, 4, 3), 3, np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    entry = cache.entry_path(source)
    entry.parent.mkdir()
    np.save(entry, np.zeros(5))  # a whole .npy file, but not an H x W x 3 image
    assert (cache.load(source)[0] == 3).all()


def test_maps_are_kept_per_process_and_not_pickled(tmp_path):
    source = write_png(tmp_path / "a.png", np.full((4, 4, 3), 3, np.uint16))
    cache = ArrayCache(tmp_path / "cache")
    first, _ = cache.load(source)
    again, _ = cache.load(source)
    assert again is first
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._maps == {} and (copy.load(source)[0] == 3).all()


def test_missing_entries_and_their_size_from_png_headers(tmp_path):
    sources = [write_png(tmp_path / f"{i}.png", np.zeros((10, 20, 3), np.uint16)) for i in range(3)]
    eight = write_png(tmp_path / "eight.png", np.zeros((10, 20, 3), np.uint8))
    assert decoded_bytes(sources[0]) == 10 * 20 * 3 * 2 and decoded_bytes(eight) == 600
    cache = ArrayCache(tmp_path / "cache")
    cache.load(sources[0])
    assert cache.missing(sources) == sources[1:]
    assert cache.require_space(sources) == (2, 2 * 1200)


def test_a_disk_too_small_for_the_cache_is_refused_before_writing(tmp_path, monkeypatch):
    sources = [write_png(tmp_path / "a.png", np.zeros((10, 20, 3), np.uint16))]
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: usage(1, 1, 1000))
    cache = ArrayCache(tmp_path / "deep" / "cache")
    with pytest.raises(DataError, match=r"needs 0\.0 GiB more .* data\.cache_dir=null"):
        cache.require_space(sources)
    assert not (tmp_path / "deep").exists()


def test_unwritable_cache_folder_is_one_clear_error(tmp_path):
    source = write_png(tmp_path / "a.png", np.zeros((2, 2, 3), np.uint16))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = ArrayCache(blocker / "cache")  # not even root can write under a file
    with pytest.raises(DataError, match="cannot write the image cache"):
        cache.load(source)
