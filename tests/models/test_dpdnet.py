import pytest
import torch

from dpdeblur.models import create_model


def test_paper_width_has_the_releases_31_04m_parameters():
    model = create_model("dpdnet")
    assert sum(p.numel() for p in model.parameters()) == 31_035_151


@pytest.mark.parametrize("size", [(64, 64), (70, 90)])
def test_small_width_runs_forward_and_backward_at_any_size(size):
    model = create_model("dpdnet", width=0.125)
    left, right = torch.rand(2, 3, *size), torch.rand(2, 3, *size)
    out = model(left, right)
    assert out.shape == (2, 3, *size) and out.min() >= 0 and out.max() <= 1
    out.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_views_are_both_used():
    # Seeded: at random init the paper's 3-channel ReLU before the sigmoid can be dead for
    # every pixel of a small input, which made the output constant (and the test flaky).
    torch.manual_seed(0)
    model = create_model("dpdnet", width=0.125).eval()
    left, right = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert not torch.allclose(model(left, right), model(right, left))


def test_bad_input_is_a_clear_value_error():
    model = create_model("dpdnet", width=0.125)
    with pytest.raises(ValueError, match="differ in shape"):
        model(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40))
    with pytest.raises(ValueError, match="3 channels"):
        model(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))


def test_residual_variant_starts_at_the_mean_of_the_views():
    model = create_model("dpdnet", width=0.125, residual=True).eval()
    left, right = torch.rand(1, 3, 40, 56), torch.rand(1, 3, 40, 56)
    torch.testing.assert_close(model(left, right), (left + right) / 2)
