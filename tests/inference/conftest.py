"""What the inference tests share: a small DPDNet and random DP view pairs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from dpdeblur.models import create_model


@pytest.fixture(scope="module")
def model():
    """An eighth-width DPDNet, seeded, in eval mode (a few milliseconds per small pair)."""
    torch.manual_seed(0)
    return create_model("dpdnet", width=0.125).eval()


@pytest.fixture(scope="session")
def random_pair() -> Callable[[int, int, int], tuple[np.ndarray, np.ndarray]]:
    """``random_pair(seed, height, width)``: left and right HxWx3 float32 views in [0, 1)."""

    def make(seed: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        shape = (height, width, 3)
        return rng.random(shape, dtype=np.float32), rng.random(shape, dtype=np.float32)

    return make
