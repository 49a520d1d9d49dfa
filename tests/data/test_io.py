from pathlib import Path

import cv2
import numpy as np
import pytest

from dpdeblur.data.io import read_image, read_raw, write_png
from dpdeblur.errors import BitDepthError, DataError, ImageReadError


def test_16bit_png_round_trip_is_exact(tmp_path: Path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 65536, size=(9, 13, 3), dtype=np.int64).astype(np.uint16)
    path = write_png(tmp_path / "a.png", pixels)
    raw = read_raw(path)
    assert raw.bit_depth == 16 and raw.pixels.dtype == np.uint16
    np.testing.assert_array_equal(raw.pixels, pixels)
    image, bits = read_image(path)
    assert bits == 16 and image.dtype == np.float32
    np.testing.assert_allclose(image, pixels / 65535.0, atol=1e-7)


def test_channel_order_is_rgb(tmp_path: Path):
    pixels = np.zeros((4, 4, 3), np.uint16)
    pixels[..., 0] = 60000  # red
    path = write_png(tmp_path / "red.png", pixels)
    # OpenCV stores BGR: the file's first channel as cv2 sees it must be blue = 0.
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[0, 0, 2] == 60000
    image, _ = read_image(path)
    assert image[0, 0, 0] == pytest.approx(60000 / 65535) and image[0, 0, 2] == 0


def test_low_byte_is_kept_unlike_an_8bit_reader(tmp_path: Path):
    # Values that differ only in the low byte: an 8-bit reader would merge them.
    pixels = np.array([[[256, 257, 511]]], np.uint16).repeat(2, 0).repeat(2, 1)
    path = write_png(tmp_path / "low.png", pixels)
    image, _ = read_image(path)
    assert len(np.unique(image[0, 0])) == 3
    eight = cv2.imread(str(path))  # the silent trap: default flags give 8 bits
    assert eight.dtype == np.uint8


def test_float_writer_quantises_16_and_8_bit(tmp_path: Path):
    image = np.linspace(0, 1, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    back16, bits16 = read_image(write_png(tmp_path / "f16.png", image, bits=16))
    back8, bits8 = read_image(write_png(tmp_path / "f8.png", image, bits=8))
    assert (bits16, bits8) == (16, 8)
    assert np.abs(back16 - image).max() <= 0.5 / 65535 + 1e-7
    assert np.abs(back8 - image).max() <= 0.5 / 255 + 1e-7


def test_tensor_chw_input_is_written_as_hwc(tmp_path: Path):
    torch = pytest.importorskip("torch")
    tensor = torch.rand(3, 6, 7)
    image, _ = read_image(write_png(tmp_path / "t.png", tensor))
    assert image.shape == (6, 7, 3)
    np.testing.assert_allclose(image, tensor.permute(1, 2, 0).numpy(), atol=1 / 65535)


def test_grey_image_is_expanded_with_a_warning(tmp_path: Path):
    grey = (np.arange(20, dtype=np.uint16) * 3000).reshape(4, 5)
    path = tmp_path / "grey.png"
    cv2.imwrite(str(path), grey)
    with pytest.warns(UserWarning, match="single-channel"):
        raw = read_raw(path)
    assert raw.pixels.shape == (4, 5, 3) and raw.source_channels == 1 and raw.bit_depth == 16
    assert (raw.pixels[..., 0] == raw.pixels[..., 2]).all()


def test_tiff_16bit_is_read(tmp_path: Path):
    pixels = np.random.default_rng(1).integers(0, 65536, (5, 6, 3)).astype(np.uint16)
    path = tmp_path / "a.tiff"
    cv2.imwrite(str(path), pixels[..., ::-1])
    raw = read_raw(path)
    np.testing.assert_array_equal(raw.pixels, pixels)


def test_corrupt_and_missing_files_give_one_line_errors(tmp_path: Path):
    good = write_png(tmp_path / "good.png", np.zeros((32, 32, 3), np.uint16))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ImageReadError) as err:
        read_raw(corrupt)
    assert str(corrupt) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="not found"):
        read_raw(tmp_path / "nope.png")


def test_min_bits_rejects_8bit(tmp_path: Path):
    path = write_png(tmp_path / "eight.png", np.zeros((3, 3, 3), np.uint8))
    with pytest.raises(BitDepthError, match="8-bit"):
        read_image(path, min_bits=16)


def test_failed_write_leaves_no_partial_file(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        write_png(tmp_path / "missing_dir" / "a.png", np.zeros((2, 2, 3), np.float32))
    assert not list(tmp_path.rglob("*.png"))
