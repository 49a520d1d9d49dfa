"""``dpdeblur.deblur`` for notebooks: kinds of input and output, orientation, channels,
checkpoints, precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dpdeblur
from dpdeblur.errors import CheckpointError, ConfigError
from dpdeblur.inference.engine import resolve_device


@pytest.fixture(scope="module")
def pair(random_pair):
    return random_pair(0, 40, 72)


def direct(model, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The model called by hand on HxWx3 arrays.

    The tests compare it with ``dpdeblur.deblur`` bit for bit: one process, one thread count,
    the same model on the same values (the model pads its input to a contiguous tensor, so
    both reach the same convolution kernels); rotations are permutations.
    """
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        return model(to(left), to(right))[0].permute(1, 2, 0).clamp(0, 1).numpy()


def test_numpy_float_in_float_out(model, pair):
    out = dpdeblur.deblur(model, *pair)
    assert out.shape == (40, 72, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, direct(model, *pair))


@pytest.mark.parametrize(("dtype", "top"), [(np.uint16, 65535), (np.uint8, 255)])
def test_integer_views_come_back_in_their_type(model, pair, dtype, top):
    left, right = (np.round(x * top).astype(dtype) for x in pair)
    out = dpdeblur.deblur(model, left, right)
    assert out.dtype == dtype and out.shape == (40, 72, 3)
    expected = direct(model, (left / top).astype(np.float32), (right / top).astype(np.float32))
    assert np.abs(out / top - expected).max() <= 0.5 / top + 1e-6


def test_torch_in_torch_out(model, pair):
    left, right = (torch.from_numpy(x).permute(2, 0, 1) for x in pair)
    out = dpdeblur.deblur(model, left, right)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 40, 72)
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), direct(model, *pair))
    batch = dpdeblur.deblur(model, torch.stack([left, left]).double(), torch.stack([right] * 2))
    assert batch.shape == (2, 3, 40, 72) and batch.dtype == torch.float64
    assert torch.allclose(batch[1].float(), out)


def test_portrait_pixel_pairs_run_in_landscape_and_come_back_upright(model, pair):
    left, right = (np.ascontiguousarray(np.rot90(x, -1)) for x in pair)  # 72x40 portrait
    out = dpdeblur.deblur(model, left, right, rotate="pixel")
    assert out.shape == (72, 40, 3)
    landscape = direct(model, np.rot90(left, 1), np.rot90(right, 1))
    np.testing.assert_array_equal(out, np.rot90(landscape, -1))
    as_stored = dpdeblur.deblur(model, left, right)  # the default: any pair as it lies
    np.testing.assert_array_equal(as_stored, direct(model, left, right))


def test_one_channel_views_give_one_channel(model, pair):
    green_l, green_r = pair[0][:, :, 1], pair[1][:, :, 1]
    out = dpdeblur.deblur(model, green_l, green_r)
    assert out.shape == (40, 72)
    grey = direct(model, np.repeat(green_l[:, :, None], 3, 2), np.repeat(green_r[:, :, None], 3, 2))
    np.testing.assert_allclose(out, grey.mean(axis=2), atol=1e-6)
    tensor = dpdeblur.deblur(
        model, torch.from_numpy(green_l)[None], torch.from_numpy(green_r)[None]
    )
    assert tensor.shape == (1, 40, 72)


def test_tiles_through_the_api(model, pair):
    out = dpdeblur.deblur(model, *pair, tile=32, overlap=16)
    assert out.shape == (40, 72, 3)
    # Tiles (32 px, overlap 16) far smaller than the model's 123-px margin: close, not exact
    # (exactness with full margins is the tiling engine's test). Random he_normal weights on
    # noise: mean difference 0.012, max 0.11, against an output spread (std) of 0.21.
    difference = np.abs(out - direct(model, *pair))
    assert difference.mean() < 0.03 and difference.max() < 0.25
    assert difference.max() > 0  # it did run in tiles


def test_a_checkpoint_path_is_loaded(tmp_path, model, pair):
    path = tmp_path / "weights.pt"
    torch.save(
        {
            "format": "dpdeblur-weights",
            "version": 1,
            "model": "dpdnet",
            "model_kwargs": {"width": 0.125},
            "state_dict": model.state_dict(),
        },
        path,
    )
    np.testing.assert_array_equal(dpdeblur.deblur(str(path), *pair), direct(model, *pair))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        dpdeblur.deblur(tmp_path / "missing.pt", *pair)


def test_bf16_autocast_on_cpu_is_close_and_fp16_is_refused(model, pair):
    out = dpdeblur.deblur(model, *pair, precision="bf16")
    assert out.dtype == np.float32
    assert np.abs(out - direct(model, *pair)).max() < 0.03
    with pytest.raises(ConfigError, match="fp16 autocast needs a GPU"):
        dpdeblur.deblur(model, *pair, precision="fp16", device="cpu")
    with pytest.raises(ConfigError, match="unknown precision"):
        dpdeblur.deblur(model, *pair, precision="fp8")


def test_bad_arguments_are_named(model, pair):
    with pytest.raises(ValueError, match="differ in shape"):
        dpdeblur.deblur(model, pair[0], pair[1][:20])
    with pytest.raises(TypeError, match="numpy arrays or both torch tensors"):
        dpdeblur.deblur(model, pair[0], torch.zeros(3, 40, 72))
    with pytest.raises(ValueError, match="float or unsigned"):
        dpdeblur.deblur(model, pair[0].astype(np.int32), pair[1].astype(np.int32))
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_release_protocol_resizes_the_whole_pair_and_is_never_tiled(model, pair):
    from dpdeblur.inference.margins import tiling_spec
    from dpdeblur.models.release_protocol import ReleaseProtocol, release_protocol

    wrapped = ReleaseProtocol(model, "k3dn")
    spec = tiling_spec(wrapped)
    assert spec.margin is None and "never tiled" in spec.reason
    left, right = pair
    out = dpdeblur.deblur(model, left, right, release_protocol="k3dn")
    assert out.shape == left.shape
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    with torch.no_grad():
        expected = release_protocol(model, to(left), to(right))[0].permute(1, 2, 0).numpy()
    # the same ops on the same values in one process; tolerance only for the float32 trip
    np.testing.assert_allclose(out, expected, atol=1e-6)
    plain = dpdeblur.deblur(model, left, right)
    assert np.abs(out - plain).max() > 1e-3  # resizing to 1152x1792 and back changes it
    with pytest.raises(ValueError, match="whole images"):
        dpdeblur.deblur(model, left, right, release_protocol="k3dn", tile=32)
    with pytest.raises(ValueError, match="unknown release protocol"):
        dpdeblur.deblur(model, left, right, release_protocol="nope")
