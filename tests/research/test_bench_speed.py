"""The speed work behind the benchmarks keeps results identical: the one-pass tensor
conversion, training samples that skip the unused combined view, and the correlation's
per-sample bands with reused buffers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dpdeblur.nn.correlation as corr_module
from dpdeblur.data.datasets import TRAIN_ROLES, DPDDDataset
from dpdeblur.data.io import to_float
from dpdeblur.data.layout import index_dpdd_split, resolve_dpdd_root
from dpdeblur.data.transforms import ToTensor, chw_float
from dpdeblur.errors import ImageReadError
from dpdeblur.nn.correlation import correlation
from dpdeblur.training.datamodule import DPDataModule


def reference_chw(value: np.ndarray) -> torch.Tensor:
    """The conversion as it was: scale to float, then transpose into a contiguous copy."""
    image = to_float(value) if value.dtype.kind in "ui" else value.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(np.transpose(image, (2, 0, 1))))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_chw_float_is_bit_identical_for_every_value(dtype):
    top = np.iinfo(dtype).max
    values = np.arange(top + 1, dtype=dtype)
    image = np.stack([values, values[::-1], values], axis=-1).reshape(-1, 64, 3)
    flipped = image[::-1, ::-1]  # a flipped memory-map crop has negative strides
    for array in (image, flipped, image[3:17, 5:40]):
        out = chw_float(array)
        assert out.dtype == torch.float32 and out.is_contiguous()
        # bitwise on any CPU: each value is one correctly rounded float32 division
        assert torch.equal(out, reference_chw(array))


def test_chw_float_keeps_float_and_other_integer_paths():
    rng = np.random.default_rng(0)
    floats = rng.random((5, 7, 3), dtype=np.float32)
    assert torch.equal(chw_float(floats[:, ::-1]), reference_chw(floats[:, ::-1]))  # copies
    ints = rng.integers(-5, 5, (4, 4, 3)).astype(np.int32)
    assert torch.equal(chw_float(ints), reference_chw(ints))
    sample = ToTensor()({"left": floats, "right": ints, "name": "x"})
    assert sample["left"].shape == (3, 5, 7) and sample["name"] == "x"


def test_training_samples_skip_the_combined_view(make_dpdd_tree):
    root, _ = make_dpdd_tree(counts={"train": 2, "val": 1}, size=(12, 20))
    resolved, layout = resolve_dpdd_root(root)
    record = index_dpdd_split(resolved, "train", layout)[0]
    record.combined.write_bytes(b"not a png")  # never read by training
    sample = DPDDDataset(root, "train", roles=TRAIN_ROLES)[0]
    assert set(TRAIN_ROLES) <= set(sample) and "combined" not in sample
    with pytest.raises(ImageReadError, match="cannot decode"):
        DPDDDataset(root, "train")[0]  # every view, as validation and test read them
    dm = DPDataModule("dpdd", root=str(root), num_workers=0, crop_size=8)
    assert dm.build("train").roles == TRAIN_ROLES and dm.build("val").roles is None
    assert "combined" in dm.build("val")[0]  # the input PSNR of val/test rows needs it


@pytest.fixture
def small_bands(monkeypatch):
    monkeypatch.setattr(corr_module, "_CPU_BAND_BYTES", 64)


@pytest.mark.parametrize("band_bytes", [64, 1 << 20])
def test_correlation_batch_is_bit_identical_to_one_sample_at_a_time(monkeypatch, band_bytes):
    """Small bands: per-sample loops over several bands; large: the whole batch at once."""
    monkeypatch.setattr(corr_module, "_CPU_BAND_BYTES", band_bytes)
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(3, 4, 9, 11, generator=gen)
    x2 = torch.randn(3, 4, 9, 11, generator=gen)
    assert len(corr_module._sample_slices(x1)) == (3 if band_bytes == 64 else 1)
    together = correlation(x1, x2, 2)
    # Bitwise: each output is the same 4-channel sum in the same order; inputs this small
    # stay below torch's parallel grain size, so no thread count splits a reduction.
    for b in range(3):
        assert torch.equal(together[b : b + 1], correlation(x1[b : b + 1], x2[b : b + 1], 2))


def test_correlation_backward_reusing_buffers_equals_the_recorded_one(small_bands):
    gen = torch.Generator().manual_seed(1)
    x1 = torch.randn(2, 3, 7, 6, generator=gen, requires_grad=True)
    x2 = torch.randn(2, 3, 7, 6, generator=gen, requires_grad=True)
    grad = torch.randn(2, 25, 7, 6, generator=gen)
    plain = torch.autograd.grad(correlation(x1, x2, 2), (x1, x2), grad)
    recorded = torch.autograd.grad(correlation(x1, x2, 2), (x1, x2), grad, create_graph=True)
    for a, b in zip(plain, recorded, strict=True):
        assert torch.equal(a, b.detach())  # same ops in the same order; only buffers differ


def test_correlation_double_backward_with_batch_and_bands(small_bands):
    gen = torch.Generator().manual_seed(2)
    x1 = torch.randn(2, 2, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    x2 = torch.randn(2, 2, 5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: correlation(a, b, 1), (x1, x2))
