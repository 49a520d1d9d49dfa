"""The contract every registered model keeps, checked for each name of ``list_models()``.

Its facts (``ModelInfo``) are present and complete; any H x W comes back at that size, as
the output type the facts state; the DP flip self-ensemble is flip-equivariant; tiles
reproduce the whole image wherever the facts give a finite margin; and a saved state dict
loads strictly into ``create_model(name, **kwargs)`` with the same output.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from dpdeblur.inference.engine import Deblurrer, TileOptions
from dpdeblur.models import ModelInfo, create_model, list_models, model_info, register_model
from dpdeblur.models.dpanet import DPANet
from dpdeblur.models.dpdnet import DPDNet
from dpdeblur.models.ensemble import FlipEnsemble, flip_pair
from dpdeblur.models.k3dn import K3DN
from dpdeblur.models.output import DeblurOutput, output_image
from dpdeblur.models.restormer import Restormer

NAMES = list_models()

# The cheapest constructor overrides per architecture, so that every name runs in well
# under a second. A new architecture adds its own here (the first test says so).
SMALL: dict[type[nn.Module], dict] = {
    DPANet: {"width": 0.0625},
    DPDNet: {"width": 0.0625},
    K3DN: {
        "base_channels": 4,
        "num_res": 1,
        "num_deblur_blocks": 1,
        "kernel_size": 5,
        "spectrum_size": 6,
        "window_size": 8,
        "disparity_dim": 8,
        "disparity_channels": 4,
        "sharp_region_res": 1,
    },
    Restormer: {"dim": 8, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1},
}
ODD_SIZES = ((37, 53), (64, 40))


def small_model(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(name, **SMALL[model_info(name).architecture]).eval()


def random_pair(height: int, width: int, seed: int = 1) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.rand(1, 3, height, width, generator=generator),
        torch.rand(1, 3, height, width, generator=generator),
    )


def test_every_name_is_covered():
    assert len(NAMES) >= 18 and {"dpanet", "dpanet_tiny", "dpdnet", "k3dn"} <= set(NAMES)
    for name in NAMES:
        assert model_info(name).architecture in SMALL, f"add cheap overrides for {name}"


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_present_and_complete(name):
    info = model_info(name)
    assert isinstance(info, ModelInfo)
    assert info.paper and info.size_meaning
    assert info.size_argument in inspect.signature(info.architecture).parameters
    assert info.output in (Tensor, DeblurOutput)
    assert (info.margin is None) == bool(info.global_context)
    assert info.weights_format is None or isinstance(info.weights_format, str)
    assert isinstance(info.main_benchmark, bool)
    model = small_model(name)
    assert type(model) is info.architecture and model.registry_name == name
    multiple = info.input_multiple(model)
    assert isinstance(multiple, int) and multiple >= 1
    if info.margin is not None:
        margin = info.margin(model)
        assert isinstance(margin, int) and margin >= 0


def test_main_benchmark_set_and_released_weights():
    assert list_models(main_benchmark=True) == [
        "dpanet",
        "dpdnet",
        "k3dn",
        "k3dn_light",
        "k3dn_tiny",
        "restormer_dp",
    ]
    assert model_info("dpanet").weights_format == "dpanet-final-pth"
    assert model_info("dpanet_tiny").weights_format is None


def test_registering_without_metadata_fails():
    def undocumented(**kwargs) -> nn.Module:
        return nn.Identity()

    with pytest.raises(TypeError, match="ModelInfo"):
        register_model(undocumented)
    with pytest.raises(TypeError, match="ModelInfo"):
        register_model()(undocumented)
    assert "undocumented" not in list_models()


def test_metadata_states_a_margin_or_why_there_is_none():
    facts = dict(
        architecture=DPDNet,
        paper="p",
        size_argument="width",
        size_meaning="m",
        input_multiple=DPDNet.input_multiple,
    )
    with pytest.raises(ValueError, match="global_context"):
        ModelInfo(**facts, margin=None)
    with pytest.raises(ValueError, match="global_context"):
        ModelInfo(**facts, margin=DPDNet.receptive_field_radius, global_context="both")
    with pytest.raises(ValueError, match="output"):
        ModelInfo(**facts, margin=DPDNet.receptive_field_radius, output=dict)


@pytest.mark.parametrize("name", NAMES)
def test_any_size_comes_back_at_that_size_as_the_stated_type(name):
    model = small_model(name)
    expected = model_info(name).output
    for height, width in ODD_SIZES:
        left, right = random_pair(height, width)
        with torch.no_grad():
            out = model(left, right)
        assert isinstance(out, expected), type(out)
        image = output_image(out)
        assert isinstance(image, Tensor) and image.shape == (1, 3, height, width)
        assert torch.isfinite(image).all()


@pytest.mark.parametrize("name", NAMES)
def test_flip_ensemble_is_flip_equivariant(name):
    """Mirroring (with the views swapped) or flipping the pair up-down flips the ensemble's
    output the same way, up to float summation order."""
    ensemble = FlipEnsemble(small_model(name))
    left, right = random_pair(*ODD_SIZES[0])
    with torch.no_grad():
        out = ensemble(left, right)
        mirrored = ensemble(*flip_pair(left, right, vertical=False, mirror=True))
        upside_down = ensemble(*flip_pair(left, right, vertical=True, mirror=False))
    assert out.shape == (1, 3, *ODD_SIZES[0])
    torch.testing.assert_close(mirrored, out.flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(upside_down, out.flip(-2), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_tiles_reproduce_the_whole_image_where_the_margin_is_finite(name):
    info = model_info(name)
    if info.margin is None:
        pytest.skip(f"global context, tiles are approximate: {info.global_context}")
    runner = Deblurrer(small_model(name), torch.device("cpu"))
    overlap = runner.spec.exact_overlap
    tile = overlap + 4 * runner.spec.multiple
    left, right = (x[0] for x in random_pair(tile // 2 + overlap, tile + overlap // 2))
    whole, _ = runner(left, right, TileOptions(tile=0))
    tiled, plan = runner(left, right, TileOptions(tile=tile, overlap=overlap))
    assert len(plan) > 1 and plan.exact
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip(name, tmp_path: Path):
    kwargs = SMALL[model_info(name).architecture]
    model = small_model(name, seed=0)
    path = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)  # another initialisation: only the loaded weights can agree
    rebuilt = create_model(name, **kwargs).eval()
    rebuilt.load_state_dict(torch.load(path, weights_only=True), strict=True)
    left, right = random_pair(*ODD_SIZES[1])
    with torch.no_grad():
        expected, got = output_image(model(left, right)), output_image(rebuilt(left, right))
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
