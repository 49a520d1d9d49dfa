"""The DP input check costs no host sync: values are read only where that is free."""

from __future__ import annotations

import pytest
import torch

from dpdeblur.models.padding import check_dp_inputs


def _pair(device: str = "cpu"):
    return torch.rand(1, 3, 8, 8, device=device), torch.rand(1, 3, 8, 8, device=device)


def test_values_of_cpu_tensors_are_checked():
    left, right = _pair()
    right[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="right view contains non-finite"):
        check_dp_inputs(left, right)
    check_dp_inputs(left, right, values=False)  # skipped on request


def test_values_of_device_tensors_are_not_read_by_default():
    """Tensors off the CPU (``meta`` stands in for an accelerator here: reading its values
    raises) are checked by shape and dtype only, unless ``values=True``."""
    left, right = _pair("meta")
    check_dp_inputs(left, right)
    with pytest.raises(ValueError, match="3 channels"):
        check_dp_inputs(left[:, :2], right[:, :2])
    with pytest.raises(RuntimeError, match="meta"):  # the value was read
        check_dp_inputs(left, right, values=True)


def test_no_graph_break_under_full_graph_compile():
    """Inside ``torch.compile(fullgraph=True)`` the value check (a data-dependent branch)
    is left out instead of breaking the graph."""

    def checked(left, right):
        check_dp_inputs(left, right)
        return left + right

    compiled = torch.compile(checked, fullgraph=True, backend="eager")
    left, right = _pair()
    torch.testing.assert_close(compiled(left, right), left + right)
