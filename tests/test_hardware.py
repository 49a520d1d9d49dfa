"""Machine facts read from /proc/meminfo, by one reader."""

import os

import pytest
import torch

from dpdeblur import hardware
from dpdeblur.inference.memory import available_bytes

MEMINFO = "MemTotal:       16384000 kB\nMemFree:         1000 kB\nMemAvailable:    2048000 kB\n"


@pytest.fixture
def meminfo(tmp_path, monkeypatch):
    path = tmp_path / "meminfo"
    path.write_text(MEMINFO)
    monkeypatch.setattr(hardware, "MEMINFO_PATH", str(path))
    return path


def test_meminfo_fields_in_bytes(meminfo):
    assert hardware.meminfo_bytes("MemAvailable") == 2048000 * 1024
    assert hardware.meminfo_bytes("MemFree") == 1000 * 1024
    assert hardware.meminfo_bytes("Mem") is None  # a prefix is not a field
    assert hardware.memory_gib() == round(16384000 / 2**20, 1)


def test_available_bytes_on_the_cpu_reads_memavailable(meminfo):
    assert available_bytes(torch.device("cpu")) == 2048000 * 1024


def test_without_meminfo(tmp_path, monkeypatch):
    monkeypatch.setattr(hardware, "MEMINFO_PATH", str(tmp_path / "missing"))
    assert hardware.meminfo_bytes("MemTotal") is None and hardware.memory_gib() is None
    if hasattr(os, "sysconf"):
        assert available_bytes(torch.device("cpu")) > 0  # the system's own count instead
