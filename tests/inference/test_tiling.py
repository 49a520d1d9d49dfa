"""Tiled inference: tile grids, blending weights, receptive-field margins, and agreement of
tiled with whole-image outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from dpdeblur.errors import ConfigError
from dpdeblur.inference.engine import Deblurrer, DeviceMemoryError, TileOptions
from dpdeblur.inference.margins import tiling_spec
from dpdeblur.inference.tiling import TilePlan, axis_weights, band_guard, plan_axis
from dpdeblur.models import create_model
from dpdeblur.models.receptive_field import Span, conv, upsample


def dpdnet_with_reach(
    width: float = 0.125, seed: int = 0, residual: bool = True, **options
) -> nn.Module:
    """A small DPDNet whose output really depends on far context.

    PyTorch's default conv init shrinks the signal at every layer, so a fresh U-Net's
    deep paths contribute almost nothing and tiling errors would hide below any
    tolerance; variance-preserving (He) init keeps every path alive. The residual head
    (views' mean + a 1x1 conv) passes that on; the paper's head (3x3 conv to 3 channels,
    ReLU, sigmoid) mostly outputs 0.5 at such an init.
    """
    torch.manual_seed(seed)
    model = create_model("dpdnet", width=width, residual=residual, **options)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    return model.eval()


def random_pair(height: int, width: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, height, width, generator=generator), torch.rand(
        3, height, width, generator=generator
    )


# -- tile grids and weights ----------------------------------------------------------


@pytest.mark.parametrize("multiple", [8, 16, 128])
def test_tile_grid_covers_the_axis_on_the_model_grid(multiple):
    for tile, overlap, length in itertools.product(
        range(2 * multiple, 9 * multiple, 3 * multiple),
        range(0, 4 * multiple, multiple),
        range(multiple, 1500, 37),
    ):
        if overlap >= tile:
            continue
        spans = plan_axis(length, tile, overlap, multiple)
        assert spans[0][0] == 0 and spans[-1][1] == length
        for start, stop in spans:
            assert start % multiple == 0 and 0 < stop - start <= tile
        for (_, stop_a), (start_b, _) in itertools.pairwise(spans):
            assert stop_a - start_b >= overlap  # neighbours share at least the overlap
        assert all(b - a == tile for a, b in spans[:-1])  # only the last may be shorter


def test_plan_axis_rejects_off_grid_sizes():
    with pytest.raises(ValueError, match="multiples"):
        plan_axis(100, 50, 16, 16)
    with pytest.raises(ValueError, match="overlap"):
        plan_axis(100, 32, 32, 16)


@pytest.mark.parametrize("margin", [None, 0, 20, 40])
def test_weights_are_one_outside_bands_and_zero_in_guards(margin):
    spans = plan_axis(1000, 256, 96, 16)
    weights = axis_weights(spans, margin)
    total = np.zeros(1000)
    for (start, stop), w in zip(spans, weights, strict=True):
        total[start:stop] += w
        assert w.min() >= 0 and w.max() <= 1
    np.testing.assert_allclose(total, 1.0, atol=1e-12)  # a partition of unity
    for i, ((_, stop_a), (start_b, _)) in enumerate(itertools.pairwise(spans)):
        guard = band_guard(stop_a - start_b, margin)
        # Tile i+1 is exactly 0 in its first `guard` pixels, tile i in its last `guard`.
        head, tail = weights[i + 1][:guard], weights[i][len(weights[i]) - guard :]
        assert np.all(head == 0) and np.all(tail == 0)
    # Away from every band a tile's weight is exactly 1.
    first = weights[0]
    assert np.all(first[: spans[1][0]] == 1.0)


def test_guard_is_the_margin_when_the_band_allows_it():
    assert band_guard(256, 122) == 122
    assert band_guard(200, 122) == 50  # too narrow for exactness: a quarter each side
    assert band_guard(200, None) == 50


# -- receptive-field margins -----------------------------------------------------------


def test_span_arithmetic():
    three_convs = Span().through(conv(3), conv(3), conv(3))
    assert (three_convs.lo, three_convs.hi, three_convs.radius) == (-3, 3, 3)
    pooled = Span().through(conv(3), conv(2, 2, 0), conv(3))  # conv, pool, conv
    assert (pooled.scale, pooled.lo, pooled.hi) == (2, -3, 4)
    up = Span().through(upsample(2), conv(3))
    assert up.scale == 0.5 and up.lo == -1.5 and up.hi == 1


def input_reach(model: nn.Module) -> tuple[int, int]:
    """How far (left, right) a perturbed input column changes the output, over all 16
    alignments to the pooling grid (a whole column, so rows play no part)."""
    left, right = (x[None] for x in random_pair(48, 704))
    reach_lo = reach_hi = 0
    with torch.no_grad():
        base = model(left, right)
        for column in range(352, 368):
            bumped = left.clone()
            bumped[..., column] += 3.0
            changed = (model(bumped, right) - base).abs().amax(dim=(0, 1, 2)) > 0
            columns = changed.nonzero().flatten()
            reach_lo = min(reach_lo, int(columns.min()) - column)
            reach_hi = max(reach_hi, int(columns.max()) - column)
    return reach_lo, reach_hi


def test_dpdnet_margin_is_its_exact_reach():
    """Perturbing one input column changes exactly the outputs the computed span says:
    output o reads inputs o + lo .. o + hi, so input p reaches outputs p - hi .. p - lo."""
    model = dpdnet_with_reach()
    span = model.receptive_field()
    spec = tiling_spec(model)
    assert spec.multiple == 16 and spec.margin == span.radius == 122
    assert input_reach(model) == (-span.hi, -span.lo)


def test_dpdnet_sharp_gate_keeps_the_margin_and_the_reach():
    """The gate reads the views' difference 2 px away, well inside the U-Net's reach."""
    model = dpdnet_with_reach(sharp_gate=True)
    margin = tiling_spec(model).margin
    assert margin == model.receptive_field().radius == 122
    reach_lo, reach_hi = input_reach(model)
    assert -margin <= reach_lo and reach_hi <= margin


def test_dpdnet_matching_costs_widen_the_margin_and_bound_the_reach():
    """Costs read the right view up to 4 px away, then a 5x5 mean: 6 px more margin."""
    model = dpdnet_with_reach(cost_shifts=4, sharp_gate=True)
    margin = tiling_spec(model).margin
    assert margin == model.receptive_field().radius + 6
    reach_lo, reach_hi = input_reach(model)
    assert -margin <= reach_lo and reach_hi <= margin


def test_dpdnet_paper_head_margin_bounds_its_reach():
    """The paper's head adds a 3x3 conv (margin 123); its reach stays within the span."""
    model = dpdnet_with_reach(residual=False)
    span = model.receptive_field()
    assert tiling_spec(model).margin == span.radius == 123
    reach_lo, reach_hi = input_reach(model)
    # Within the span; not necessarily tight: the sigmoid can flatten the far changes
    # below float32 resolution, and whether it does depends on the conv algorithm chosen.
    assert -span.hi <= reach_lo and reach_hi <= -span.lo


def test_global_context_models_have_no_margin():
    dpanet = tiling_spec(create_model("dpanet", width=0.125))
    k3dn = tiling_spec(create_model("k3dn_tiny"))
    assert (dpanet.multiple, dpanet.margin, dpanet.exact_overlap) == (8, None, None)
    assert (k3dn.multiple, k3dn.margin) == (2016, None)  # lcm of its 288 x 224 grid
    assert "global" in dpanet.reason or "centre-crops" in dpanet.reason
    assert "global context" in k3dn.reason


def test_input_multiple_follows_the_constructor_arguments():
    assert tiling_spec(create_model("dpanet_m5", width=0.125)).multiple == 16
    assert tiling_spec(create_model("k3dn_tiny", window_size=9)).multiple == 72


def test_a_model_the_registry_did_not_build_is_refused():
    """No silent guess of an alignment for an unknown architecture."""

    class Unknown(nn.Module):
        def forward(self, left, right):
            return left

    with pytest.raises(ConfigError, match="model registry"):
        tiling_spec(Unknown())
    with pytest.raises(ConfigError, match="model registry"):
        Deblurrer(Unknown(), torch.device("cpu"))


# -- tiled == whole ------------------------------------------------------------------------


def test_tiled_matches_whole_image_at_the_exact_overlap():
    """Acceptance: 256x384 pair, small-width DPDNet, overlap = 2 x margin (256 px)."""
    runner = Deblurrer(dpdnet_with_reach(), torch.device("cpu"))
    left, right = random_pair(256, 384)
    whole, whole_plan = runner(left, right, TileOptions(tile=0))
    overlap = runner.spec.exact_overlap
    tiled, plan = runner(left, right, TileOptions(tile=320, overlap=overlap))
    assert len(whole_plan) == 1 and len(plan) == 2 and plan.exact
    assert (tiled - whole).abs().max() < 1e-3
    # The same grid with a band too narrow for the margin is visibly wrong, so the
    # agreement above is the margin's doing.
    rough, rough_plan = runner(left, right, TileOptions(tile=256, overlap=128))
    assert len(rough_plan) == 2 and not rough_plan.exact
    assert (rough - whole).abs().max() > 1e-2


def test_tiled_matches_whole_image_on_a_2d_grid():
    runner = Deblurrer(dpdnet_with_reach(seed=3), torch.device("cpu"))
    left, right = random_pair(448, 576, seed=4)
    whole, _ = runner(left, right, TileOptions(tile=0))
    tiled, plan = runner(left, right, TileOptions(tile=384, overlap=256))
    assert (len(plan.rows), len(plan.cols)) == (2, 3) and plan.overlap == 256 and plan.exact
    assert (tiled - whole).abs().max() < 1e-4
    # bitwise: the same convolutions on the same input, in one process and thread count
    assert torch.equal(runner(left, right, TileOptions(tile=0))[0], whole)


def test_whole_image_plan_is_the_model_itself():
    model = dpdnet_with_reach()
    runner = Deblurrer(model, torch.device("cpu"))
    left, right = random_pair(40, 72)
    out, plan = runner(left, right)
    assert len(plan) == 1
    with torch.no_grad():  # the same model call on the same input: bitwise in one process
        assert torch.equal(out, model(left[None], right[None])[0])


# -- choosing the plan -------------------------------------------------------------------


def test_automatic_tiling_follows_the_memory_budget():
    runner = Deblurrer(create_model("dpdnet", width=0.125), torch.device("cpu"))
    per_pixel = runner.bytes_per_pixel()
    assert per_pixel > 0
    whole_bytes = 512 * 768 * per_pixel
    assert len(runner.plan(512, 768, TileOptions(max_memory=int(4 * whole_bytes)))) == 1
    big = runner.plan(512, 768, TileOptions(max_memory=int(whole_bytes / 3)))
    small = runner.plan(512, 768, TileOptions(max_memory=int(whole_bytes / 12)))
    assert 1 < len(big) < len(small)
    assert small.tile < big.tile < 512
    for plan in (big, small):  # each tile's estimate fits the budget
        assert plan.tile % 16 == 0
    with pytest.raises(ConfigError, match="too small"):
        runner.plan(512, 768, TileOptions(max_memory=1000))


def test_plan_options_are_checked():
    runner = Deblurrer(create_model("dpdnet", width=0.125), torch.device("cpu"))
    assert len(runner.plan(300, 300, TileOptions(tile=0))) == 1
    assert len(runner.plan(300, 300, TileOptions(tile=512))) == 1  # fits in one tile
    assert runner.plan(300, 700, TileOptions(tile=512)).overlap == 256  # exact: 2 x 122
    assert runner.plan(300, 700, TileOptions(tile=384)).overlap == 96  # a quarter tile
    plan = runner.plan(300, 700, TileOptions(tile=250, overlap=20))
    assert (plan.tile, plan.overlap) == (240, 32)  # rounded to the model's 16-pixel grid
    with pytest.raises(ConfigError, match="not smaller than the tile"):
        runner.plan(300, 700, TileOptions(tile=128, overlap=128))
    with pytest.raises(ConfigError, match="tile must be"):
        runner.plan(300, 700, TileOptions(tile=-1))


def test_plan_describes_itself():
    plan = TilePlan.grid(256, 384, 320, 256, 16, margin=122)
    assert plan.describe() == "1x2 tiles of 320px, overlap 256px (exact)"
    assert TilePlan.whole(10, 10).describe() == "whole image"


def test_running_out_of_memory_halves_automatic_tiles(monkeypatch):
    runner = Deblurrer(create_model("dpdnet", width=0.125), torch.device("cpu"))
    runner.bytes_per_pixel()  # measured (and cached) before memory "runs short"
    forward = runner.forward
    sizes = []

    def small_memory(left, right):  # pretend anything above 64x64 does not fit
        sizes.append(tuple(left.shape[-2:]))
        if left.shape[-2] * left.shape[-1] > 64 * 64:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(left, right)

    monkeypatch.setattr(runner, "forward", small_memory)
    left, right = random_pair(100, 150)
    out, plan = runner(left, right, TileOptions(max_memory=2**40))
    assert out.shape == (3, 100, 150) and plan.tile == 64
    assert sizes[0] == (100, 150)  # tried whole first, then halved until it fit
    with pytest.raises(DeviceMemoryError, match="smaller --tile"):
        runner(left, right, TileOptions(tile=96))  # an explicit tile is not changed
