"""K3DN's invertible 1x1 conv under autocast: M and M^-1 stay inverses of each other."""

from __future__ import annotations

import torch

from dpdeblur.nn.invertible import ModulatedInvertibleConv1x1


def _mixing(channels: int = 64) -> ModulatedInvertibleConv1x1:
    torch.manual_seed(0)
    return ModulatedInvertibleConv1x1(channels, 8, weights="bounded")


def test_matrices_are_float32_inverses_under_bfloat16_autocast():
    mixing = _mixing()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        forward, inverse = mixing.matrix(), mixing.matrix(inverse=True)
    assert forward.dtype == inverse.dtype == torch.float32
    identity = torch.eye(mixing.channels)
    assert (forward @ inverse - identity).abs().max() < 1e-5
    torch.testing.assert_close(forward, mixing.matrix())  # as without autocast


def test_reverse_undoes_the_mixing_under_bfloat16_autocast():
    """``inverse(forward(x))`` = x up to the bfloat16 rounding of the activations alone
    (0.4% rms here): with M and M^-1 rounded to bfloat16 it was 4%."""
    mixing = _mixing()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, mixing.channels, 5, 5, generator=gen)
    weights = mixing.channel_weights(torch.randn(4, 8, generator=gen))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixing(x.bfloat16(), weights)
        back = mixing.inverse(y, weights)
    assert y.dtype == torch.bfloat16  # what autocast gives a 1x1 conv
    # The exact reverse of the rounded mixed activations: what rounding alone leaves.
    exact = mixing.inverse(y.float(), weights)
    rms = x.pow(2).mean().sqrt()
    assert (back.float() - exact).pow(2).mean().sqrt() < 4e-3 * rms
    assert (back.float() - x).pow(2).mean().sqrt() < 1e-2 * rms


def test_float64_stays_float64():
    mixing = _mixing(6).double()
    x = torch.randn(2, 6, 3, 3, dtype=torch.float64)
    weights = torch.rand(2, 6, dtype=torch.float64) + 0.5
    back = mixing.inverse(mixing(x, weights), weights)
    assert back.dtype == torch.float64
    torch.testing.assert_close(back, x, atol=1e-10, rtol=1e-10)
