"""channels_last for the 4-D weights only (K3DN's Conv3d weights cannot take it)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dpdeblur.nn.layout import to_channels_last


def _mixed_model() -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv3d(4, 4, 3), nn.Linear(4, 2))
    model.register_buffer("kernel_2d", torch.randn(2, 3, 4, 5))
    model.spectrum = nn.Parameter(torch.randn(1, 4, 1, 5, 3, 2))
    return model


def test_only_4d_tensors_are_converted_in_place():
    model = _mixed_model()
    conv3d_weight = model[1].weight.detach().clone()
    parameters = list(model.parameters())
    assert to_channels_last(model) is model
    assert list(model.parameters()) == parameters  # the same objects
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not model[0].weight.is_contiguous()
    assert model.kernel_2d.is_contiguous(memory_format=torch.channels_last)
    assert model[1].weight.is_contiguous()
    torch.testing.assert_close(model[1].weight, conv3d_weight)
    assert model.spectrum.is_contiguous() and model[2].weight.is_contiguous()


def test_module_to_channels_last_refuses_5d_weights():
    """Why the helper exists: ``Module.to`` converts 5-D tensors too, and fails on them."""
    with pytest.raises(RuntimeError, match="rank 4"):
        _mixed_model().to(memory_format=torch.channels_last)
