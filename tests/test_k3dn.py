"""K3DN: registry names, any-size forward/backward, kernel symmetry, the reblur path,
eval-mode independence from it, input checks, the two-stage hooks, sizes and configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dpdeblur.errors import CheckpointError
from dpdeblur.models import create_model, list_models
from dpdeblur.models.k3dn import K3DN
from dpdeblur.models.output import DeblurOutput
from dpdeblur.training.losses import CompositeLoss

NAMES = ["k3dn", "k3dn_concat", "k3dn_light", "k3dn_no_srp", "k3dn_no_sym", "k3dn_tiny"]
SIZES = ["k3dn", "k3dn_light", "k3dn_tiny"]
CONF = Path(__file__).parents[1] / "conf" / "model"
# Small overrides that keep every structural flag of a registry name but make it cheap.
SMALL = {"width": 8, "disparity_dim": 16, "disparity_channels": 4, "sharp_region_res": 1}
# Spec k3dn.md (b): parameter counts of the third-party inference code's network_L.
SPEC_PARAMS = {"k3dn": 16_099_350, "k3dn_no_srp": 10_556_754}


def _pair(height: int, width: int, batch: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (
        torch.rand(batch, 3, height, width, generator=gen),
        torch.rand(batch, 3, height, width, generator=gen),
    )


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _forward_backward(model: K3DN, height: int, width: int) -> None:
    model.train()
    left, right = _pair(height, width)
    out = model(left, right)
    assert isinstance(out, DeblurOutput)
    assert out.image.shape == (1, 3, height, width)
    assert out.reblurred is not None and out.reblurred.shape == (1, 3, height, width)
    (out.image.mean() + out.reblurred.mean()).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_every_registry_name_is_there():
    assert list_models("k3dn*") == NAMES
    assert create_model("k3dn_tiny").registry_name == "k3dn_tiny"


@pytest.mark.parametrize("name", NAMES)
def test_registry_variants_run_forward_and_backward_at_any_size(name):
    torch.manual_seed(0)
    model = create_model(name, **SMALL)
    for height, width in ((64, 64), (70, 90)):
        model.zero_grad()
        _forward_backward(model, height, width)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_registry_defaults_run_forward_and_backward_at_any_size(name):
    torch.manual_seed(0)
    model = create_model(name)
    for height, width in ((64, 64), (70, 90)):
        model.zero_grad()
        _forward_backward(model, height, width)


def test_ablation_flags_change_what_they_name():
    base, concat = create_model("k3dn", **SMALL), create_model("k3dn_concat", **SMALL)
    assert base.srp is not None and create_model("k3dn_no_srp", **SMALL).srp is None
    assert type(base.disparity).__name__ == "DisparityFeatureEstimator"
    assert type(concat.disparity).__name__ == "ConcatViewFeatures"
    assert not create_model("k3dn_no_sym", **SMALL).deblur[0].kernel_set.symmetric
    assert create_model("k3dn", kernel_set_size=4, **SMALL).deblur[0].kernel_set.num_kernels == 4


@pytest.mark.parametrize("name", [*SIZES, "k3dn_no_srp", "k3dn_concat"])
def test_every_kernel_is_an_exact_horizontal_mirror(name):
    torch.manual_seed(0)
    kernels = create_model(name).kernels()
    assert len(kernels) == 8
    for block_kernels in kernels:
        assert block_kernels.shape[-2:] == (9, 9)
        assert (block_kernels - block_kernels.flip(-1)).abs().max().item() == 0.0


def test_kernels_stay_mirrors_after_training_steps_and_free_kernels_do_not():
    torch.manual_seed(0)
    left, right = _pair(64, 64)
    for name, mirrored in (("k3dn", True), ("k3dn_no_sym", False)):
        model = create_model(name, **SMALL)
        optimizer = torch.optim.SGD(model.parameters(), lr=10.0)
        for _ in range(2):
            out = model(left, right)
            optimizer.zero_grad()
            (out.image.square().mean() + out.reblurred.square().mean()).backward()
            optimizer.step()
        gaps = [(k - k.flip(-1)).abs().max().item() for k in model.kernels()]
        assert (max(gaps) == 0.0) == mirrored


def test_deblur_cores_compose_with_their_reverses_to_the_identity():
    """Same kernels, same weights: the deblur stage's invertible parts undo each other.

    In float64: eight deblurs in a row amplify some frequencies up to (1/floor)^8 = 1e8,
    more than float32 can carry back (one block in float32: test_kernel_set.py).
    """
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).double()
    left, right = (view.double() for view in _pair(128, 256))
    features = torch.randn(1, 4 * SMALL["width"], 16, 32, dtype=torch.float64)
    style = model.disparity(left, right, (1, 2))
    x = features
    for block in model.deblur:
        x = block.core(x, style)
    assert (x - features).abs().max() > 1e-2
    for block in reversed(model.deblur):
        x = block.core_inverse(x, style)
    torch.testing.assert_close(x, features, atol=1e-4, rtol=0)


def test_eval_output_does_not_depend_on_the_reblur_branch(monkeypatch):
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL)
    left, right = _pair(70, 90)
    with torch.no_grad():
        train_out = model.train()(left, right)
        assert train_out.reblurred is not None
        calls = []
        monkeypatch.setattr(model, "reblur_features", lambda *a: calls.append(a))
        eval_out = model.eval()(left, right)
    assert not calls and eval_out.reblurred is None
    torch.testing.assert_close(eval_out.image, train_out.image, atol=0, rtol=0)


def test_reblur_off_skips_the_reverse_path_in_training():
    model = create_model("k3dn_tiny", reblur=False, **SMALL).train()
    assert model(*_pair(64, 64)).reblurred is None


def test_reblurred_image_differs_from_the_restored_one():
    torch.manual_seed(0)
    model = create_model("k3dn", residual_gain=1.0, **SMALL).train()
    with torch.no_grad():
        out = model(*_pair(64, 64))
    assert (out.reblurred - out.image).abs().max() > 1e-4


def test_padding_is_reflect_to_the_window_grid_and_cropped_back():
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).eval()
    left, right = _pair(70, 90)
    multiple = 8 * model.window_size
    assert multiple == 128
    pad = (0, 128 - 90, 0, 128 - 70)
    with torch.no_grad():
        direct = model(left, right).image
        padded = model(F.pad(left, pad, mode="reflect"), F.pad(right, pad, mode="reflect")).image
    torch.testing.assert_close(direct, padded[..., :70, :90])


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 40), "differ in shape"),
        (torch.rand(1, 4, 32, 32), torch.rand(1, 4, 32, 32), "3 channels"),
        (torch.full((1, 3, 32, 32), float("nan")), torch.rand(1, 3, 32, 32), "non-finite"),
        (torch.rand(1, 3, 32, 32), torch.full((1, 3, 32, 32), float("inf")), "non-finite"),
    ],
)
def test_bad_input_is_a_clear_value_error(left, right, message):
    with pytest.raises(ValueError, match=message):
        create_model("k3dn_tiny", **SMALL)(left, right)


def test_constructor_rejects_bad_arguments():
    with pytest.raises(ValueError, match="window_size"):
        K3DN(width=8, window_size=8, kernel_size=9)
    with pytest.raises(ValueError, match="disparity"):
        K3DN(width=8, disparity="stereo")
    with pytest.raises(ValueError, match="base channel count"):
        K3DN(width=0.25)  # not a channel multiplier


def test_stage_two_loads_stage_one_and_trains_only_sharp_region_blocks():
    torch.manual_seed(0)
    stage1 = create_model("k3dn_no_srp", **SMALL).eval()
    stage2 = create_model("k3dn", **SMALL)
    stage2.load_stage1_state_dict(stage1.state_dict())
    stage2.eval()
    left, right = _pair(64, 64)
    with torch.no_grad():  # fresh sharp-region blocks are the identity
        torch.testing.assert_close(stage2(left, right).image, stage1(left, right).image)

    stage2.freeze_for_stage2().train()
    trainable = {n for n, p in stage2.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("srp.") for n in trainable)
    assert trainable == {n for n, _ in stage2.srp.named_parameters(prefix="srp")}
    frozen = {n: p.detach().clone() for n, p in stage2.named_parameters() if not p.requires_grad}
    optimizer = torch.optim.Adam([p for p in stage2.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        out = stage2(left, right)
        loss, _ = CompositeLoss({"charbonnier": 1.0, "reblur": 0.1})(
            out, {"left": left, "right": right, "target": left}
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, param in stage2.named_parameters():
        if name in frozen:
            assert torch.equal(param, frozen[name]), name
    with torch.no_grad():
        assert not torch.allclose(stage2.eval()(left, right).image, stage1(left, right).image)


def test_stage_one_checkpoint_of_another_configuration_is_refused():
    stage2 = create_model("k3dn", **SMALL)
    with pytest.raises(CheckpointError, match="stage-1"):
        stage2.load_stage1_state_dict(
            create_model("k3dn_no_srp", **{**SMALL, "width": 16}).state_dict()
        )
    with pytest.raises(CheckpointError):
        stage2.load_stage1_state_dict({"bogus": torch.zeros(1)})
    with pytest.raises(ValueError, match="sharp_region"):
        create_model("k3dn_no_srp", **SMALL).freeze_for_stage2()


@pytest.mark.parametrize("name", sorted(SPEC_PARAMS))
def test_width_48_parameter_counts_are_within_ten_percent_of_the_spec(name):
    count = _params(create_model(name))
    assert abs(count - SPEC_PARAMS[name]) / SPEC_PARAMS[name] < 0.10, count


def test_sizes_grow_with_width():
    counts = [_params(create_model(name)) for name in ("k3dn_tiny", "k3dn_light", "k3dn")]
    assert counts == sorted(counts) and counts[0] < counts[2] / 4


@pytest.mark.parametrize("name", NAMES)
def test_model_configs_instantiate_the_registry_defaults(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    assert cfg._target_ == "dpdeblur.models.create_model" and cfg.name == name
    model = instantiate(cfg)
    assert model.registry_name == name
    assert model.config == create_model(name).config


def _synthetic_dp_batch(gen: torch.Generator, batch: int, size: int) -> dict[str, torch.Tensor]:
    """Smooth random textures blurred by a horizontal box, the views shifted apart."""
    coarse = torch.rand(batch, 3, size // 6, size // 6, generator=gen)
    sharp = F.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)
    box = torch.full((3, 1, 1, 7), 1 / 7)
    blurred = F.conv2d(F.pad(sharp, (3, 3, 0, 0), mode="replicate"), box, groups=3)
    left, right = torch.roll(blurred, 2, dims=-1), torch.roll(blurred, -2, dims=-1)
    return {"left": left, "right": right, "target": sharp}


@pytest.mark.slow
def test_short_training_run_lowers_the_loss_and_the_reblur_term():
    """k3dn_tiny, Adam, Charbonnier + 0.1 x reblur, a few dozen steps on synthetic pairs.

    The window is 9 (not 16) so that 72x72 crops need no padding: the same network, cheaper.
    """
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = create_model("k3dn_tiny", window_size=9).train()
    loss = CompositeLoss({"charbonnier": 1.0, "reblur": 0.1})
    held_out = _synthetic_dp_batch(gen, 2, 72)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            _, terms = loss(model(held_out["left"], held_out["right"]), held_out)
        return {name: value.item() for name, value in terms.items()}

    before = evaluate()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(24):
        batch = _synthetic_dp_batch(gen, 2, 72)
        total, _ = loss(model(batch["left"], batch["right"]), batch)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    after = evaluate()
    assert after["charbonnier"] < 0.5 * before["charbonnier"], (before, after)
    assert after["reblur"] < 0.5 * before["reblur"], (before, after)


@pytest.mark.parametrize("cost_volume", [True, False])
def test_window_vectors_differ_between_windows_at_initialisation(cost_volume):
    """He init keeps the signal through the bias-free stack: windows of a textured pair get
    distinct disparity vectors (with PyTorch's default init they differed by ~1e-6)."""
    from dpdeblur.nn.disparity import ConcatViewFeatures, DisparityFeatureEstimator

    torch.manual_seed(0)
    if cost_volume:
        net = DisparityFeatureEstimator(out_dim=32, channels=8)
    else:
        net = ConcatViewFeatures(out_dim=32, channels=8)
    left = torch.rand(1, 3, 128, 192)
    vectors = net(left, torch.roll(left, 2, dims=-1), (4, 6))
    spread = vectors.std(dim=(1, 2)).mean()
    assert spread > 0.1 * vectors.abs().mean()
