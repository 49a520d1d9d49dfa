"""The released models' evaluation protocols: 8-bit inputs as DPANet's release read them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from dpdeblur.errors import ConfigError
from dpdeblur.models.release_protocol import (
    RELEASE_PROTOCOLS,
    InputBits,
    ReleaseProtocol,
    check_release_protocol,
    quantise_views,
)


class Recorder(nn.Module):
    """Returns the left view it was fed, and keeps both."""

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        self.seen = (left, right)
        return left


def test_8bit_input_is_what_opencv_default_imread_gives(tmp_path):
    """A 16-bit PNG read at full depth and quantised equals OpenCV's default (8-bit, BGR)
    read of the same file, value for value: the release's input, reproduced exactly."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 65536, size=(17, 23, 3), dtype=np.uint16)
    codes[0, :4, 0] = [0, 255, 256, 65535]  # the edges of the high byte
    path = tmp_path / "view.png"
    assert cv2.imwrite(str(path), codes)
    eight_bit_bgr = cv2.imread(str(path))  # the release's read: default flags
    assert eight_bit_bgr.dtype == np.uint8
    full = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., ::-1]  # ours: 16-bit, RGB
    view = torch.from_numpy((full / 65535.0).astype(np.float32).copy()).permute(2, 0, 1)[None]
    quantised = quantise_views(view, 8)[0].permute(1, 2, 0).numpy()
    expected = (eight_bit_bgr[..., ::-1] / 255.0).astype(np.float32)
    np.testing.assert_array_equal(quantised, expected)


def test_16_bits_change_nothing_and_other_depths_are_refused():
    view = torch.rand(1, 3, 4, 5)
    assert quantise_views(view, 16) is view
    with pytest.raises(ValueError, match="input bits"):
        quantise_views(view, 10)
    with pytest.raises(ValueError, match="input bits"):
        InputBits(Recorder(), 12)


def test_input_bits_wrapper_feeds_both_views_quantised():
    gen = torch.Generator().manual_seed(1)
    left, right = torch.rand(1, 3, 8, 8, generator=gen), torch.rand(1, 3, 8, 8, generator=gen)
    inner = Recorder()
    InputBits(inner, 8)(left, right)
    for fed, view in zip(inner.seen, (left, right), strict=True):
        torch.testing.assert_close(fed, quantise_views(view, 8), rtol=0, atol=0)
        assert not torch.equal(fed, view)
        assert torch.all(torch.remainder(fed.double() * 255, 1).abs() < 1e-4)  # k / 255


def test_dpanet_protocol_quantises_without_resizing_and_scores_truncated():
    protocol = ReleaseProtocol(Recorder(), "dpanet")
    assert not protocol.resizes and protocol.metrics_protocol == "8bit_trunc"
    left = torch.rand(1, 3, 6, 10)
    out = protocol(left, left.flip(-1))
    assert out.shape == left.shape
    torch.testing.assert_close(out, quantise_views(left, 8), rtol=0, atol=0)
    assert ReleaseProtocol(Recorder(), "k3dn").resizes


@pytest.mark.parametrize(
    ("option", "hint"),
    [("release_protocol={}", "release_protocol=k3dn"), ("--release-protocol {}", "--release-")],
)
def test_unknown_protocol_is_one_line_in_the_tools_syntax(option, hint):
    with pytest.raises(ConfigError, match="unknown release protocol 'dpdnet'") as err:
        check_release_protocol("dpdnet", option)
    assert hint in str(err.value) and "\n" not in str(err.value)
    assert check_release_protocol("dpanet", option) is RELEASE_PROTOCOLS["dpanet"]
