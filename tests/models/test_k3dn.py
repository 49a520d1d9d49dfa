"""K3DN: registry names, any-size forward/backward, kernel symmetry, the reverse (reblur)
path, eval-mode independence from it, padding to the window grid, input checks, the
two-stage hooks and sizes. The release's layout and fingerprint: test_k3dn_release.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dpdeblur.errors import CheckpointError
from dpdeblur.models import create_model, list_models
from dpdeblur.models.k3dn import K3DN
from dpdeblur.models.output import DeblurOutput
from dpdeblur.runs.state_dict import load_stage1_state_dict
from dpdeblur.training.losses import CompositeLoss, reblur_term

NAMES = [
    "k3dn",
    "k3dn_concat",
    "k3dn_fourier",
    "k3dn_light",
    "k3dn_no_srp",
    "k3dn_no_sym",
    "k3dn_tiny",
]
SIZES = ["k3dn", "k3dn_light", "k3dn_tiny"]
# Small overrides that keep every structural flag of a registry name but make it cheap
# (square 9x9 windows: the pair pads to a multiple of 72 instead of 288 x 224).
SMALL = {
    "base_channels": 8,
    "num_res": 1,
    "disparity_dim": 16,
    "disparity_channels": 4,
    "sharp_region_res": 1,
    "window_size": 9,
}
# The public K3DN code's network (docs/k3dn.md): parameter counts.
RELEASE_PARAMS = {"k3dn": 16_099_350, "k3dn_no_srp": 10_556_754}


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
    reblurred = out.reblur_fn(left)  # the reverse path on an all-in-focus image
    assert reblurred.shape == (1, 3, height, width)
    (out.image.mean() + reblurred.mean()).backward()
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
    for height, width in ((37, 53), (70, 90)):
        model.zero_grad()
        _forward_backward(model, height, width)


# Each size argument and each kind of deblur block at its registry defaults, at one odd size
# (both sizes pad to the same 288x448, so a second one would repeat the same work); the
# test above runs every registry name at two odd sizes with small overrides. The ablations
# differ from `k3dn` only in flags that test exercises.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["k3dn", "k3dn_light", "k3dn_tiny", "k3dn_fourier"])
def test_registry_defaults_run_forward_and_backward_at_any_size(name):
    torch.manual_seed(0)
    _forward_backward(create_model(name), 37, 53)


def test_ablation_flags_change_what_they_name():
    base, concat = create_model("k3dn", **SMALL), create_model("k3dn_concat", **SMALL)
    assert base.srp is not None and create_model("k3dn_no_srp", **SMALL).srp is None
    assert base.disp.shifts == [0, 1, 2, 3] and concat.disp.shifts == [0]
    assert create_model("k3dn", disparity="two_sided", **SMALL).disp.shifts == list(range(-3, 4))
    assert not create_model("k3dn_no_sym", **SMALL).deblur[0].conv1.symmetric
    # the concatenation ablation keeps every weight of the cost-volume network
    assert {k: v.shape for k, v in base.state_dict().items()} == {
        k: v.shape for k, v in concat.state_dict().items()
    }


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
            (out.image.square().mean() + out.reblur_fn(left).square().mean()).backward()
            optimizer.step()
        gaps = [(k - k.flip(-1)).abs().max().item() for k in model.kernels()]
        assert (max(gaps) == 0.0) == mirrored


def test_reverse_image_runs_the_blocks_in_reverse_form_with_the_pairs_vectors():
    """The reblur path: the image encoded, blocks 0..7 reversed with the blurry pair's
    disparity vectors, decoded with the image's own skips."""
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).eval()
    left, right = _pair(72, 144)  # a padded size: a 1 x 2 window grid
    with torch.no_grad():
        vectors = model.disparity_vectors(left - 0.5, right - 0.5)
        assert vectors.shape == (2, 16)
        reblurred = model.reverse_image(left, vectors)
        assert reblurred.shape == left.shape
        other = model.reverse_image(left, vectors + torch.randn_like(vectors))
        assert not torch.allclose(reblurred, other)  # the vectors matter
        forward_kernel = model.reverse_image(left, vectors, kernel="forward")
        assert not torch.allclose(reblurred, forward_kernel)


def test_eval_output_does_not_depend_on_the_reblur_branch(monkeypatch):
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL)
    left, right = _pair(70, 90)
    with torch.no_grad():
        train_out = model.train()(left, right)
        assert train_out.reblur_fn is not None
        reference = model.eval()(left, right).image
        calls = []
        monkeypatch.setattr(model, "reverse_image", lambda *a: calls.append(a))
        eval_out = model.eval()(left, right)
    assert not calls and eval_out.reblur_fn is None and eval_out.reblurred is None
    torch.testing.assert_close(eval_out.image, reference, atol=0, rtol=0)


def test_reblur_off_skips_the_reverse_path_in_training():
    model = create_model("k3dn_tiny", reblur=False, **SMALL).train()
    assert model(*_pair(64, 64)).reblur_fn is None


def test_reblurred_image_differs_from_the_restored_one():
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).train()
    with torch.no_grad():
        out = model(*_pair(64, 64))
    assert (out.reblur_fn(out.image) - out.image).abs().max() > 1e-4


def test_padding_is_reflect_to_the_window_grid_and_cropped_back():
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).eval()
    left, right = _pair(70, 90)
    assert model.padding_multiple() == (72, 72) and model.padded_size(70, 90) == (72, 144)
    pad = (0, 144 - 90, 0, 72 - 70)
    with torch.no_grad():
        direct = model(left, right).image
        padded = model(F.pad(left, pad, mode="reflect"), F.pad(right, pad, mode="reflect")).image
    torch.testing.assert_close(direct, padded[..., :70, :90])


def test_release_windows_pad_to_the_release_grid():
    model = create_model("k3dn")
    assert model.window_size == (18, 14) and model.padding_multiple() == (288, 224)
    assert model.padded_size(1120, 1680) == (1152, 1792)
    assert model.padded_size(37, 53) == (288, 448)  # W at least 448 (the 32-pixel pool)
    assert model.window_grid(1152, 1792) == (8, 16)
    assert model.input_multiple() == 2016  # square tiles: a multiple of both


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
        K3DN(base_channels=8, window_size=8, kernel_size=9, deblur="inverse_filter")
    with pytest.raises(ValueError, match="reverse_kernel"):
        K3DN(base_channels=8, reverse_kernel="inverse")
    with pytest.raises(ValueError, match="disparity"):
        K3DN(base_channels=8, disparity="stereo")
    with pytest.raises(ValueError, match="base channel count"):
        K3DN(base_channels=0.25)  # not a channel multiplier


def test_stage_two_loads_stage_one_and_trains_only_sharp_region_blocks():
    torch.manual_seed(0)
    stage1 = create_model("k3dn_no_srp", **SMALL).eval()
    stage2 = create_model("k3dn", **SMALL)
    load_stage1_state_dict(stage2, stage1.state_dict())
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
            assert torch.equal(param, frozen[name]), name  # never written: a copy
    with torch.no_grad():
        assert not torch.allclose(stage2.eval()(left, right).image, stage1(left, right).image)


def test_stage_one_checkpoint_of_another_configuration_is_refused():
    stage2 = create_model("k3dn", **SMALL)
    with pytest.raises(CheckpointError, match="stage-1"):
        load_stage1_state_dict(
            stage2, create_model("k3dn_no_srp", **{**SMALL, "base_channels": 16}).state_dict()
        )
    with pytest.raises(CheckpointError):
        load_stage1_state_dict(stage2, {"bogus": torch.zeros(1)})
    with pytest.raises(ValueError, match="sharp_region"):
        create_model("k3dn_no_srp", **SMALL).freeze_for_stage2()


@pytest.mark.parametrize("name", sorted(RELEASE_PARAMS))
def test_48_base_channel_parameter_counts_are_the_releases(name):
    assert _params(create_model(name)) == RELEASE_PARAMS[name]


def test_sizes_grow_with_base_channels():
    counts = [_params(create_model(name)) for name in ("k3dn_tiny", "k3dn_light", "k3dn")]
    assert counts == sorted(counts) and counts[0] < counts[2] / 4


def _synthetic_dp_batch(gen: torch.Generator, batch: int, size: int) -> dict[str, torch.Tensor]:
    """Smooth random textures blurred by a horizontal box, the views shifted apart."""
    coarse = torch.rand(batch, 3, size // 6, size // 6, generator=gen)
    sharp = F.interpolate(coarse, size=(size, size), mode="bicubic").clamp(0, 1)
    box = torch.full((3, 1, 1, 7), 1 / 7)
    blurred = F.conv2d(F.pad(sharp, (3, 3, 0, 0), mode="replicate"), box, groups=3)
    left, right = torch.roll(blurred, 2, dims=-1), torch.roll(blurred, -2, dims=-1)
    return {"left": left, "right": right, "target": sharp}


def _batch(height: int = 64, width: int = 64) -> dict[str, torch.Tensor]:
    left, right = _pair(height, width)
    return {"left": left, "right": right, "target": (left + right) / 2 + 0.1}


@pytest.mark.parametrize("image", ["target", "estimate"])
def test_reblur_term_gradient_reaches_the_kernel_spectra(image):
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).train()
    batch = _batch()
    out = model(batch["left"], batch["right"])
    reblur_term(out, batch, image=image).backward()
    for block in model.deblur:
        assert block.conv1.weight.grad is not None and block.conv1.weight.grad.abs().sum() > 0


def test_reblur_through_blocks_keeps_the_decoder_out_of_the_reblur_gradient():
    torch.manual_seed(0)
    batch = _batch()
    for through, decoder_learns in (("all", True), ("blocks", False)):
        model = create_model("k3dn", reblur_through=through, **SMALL).train()
        reblur_term(model(batch["left"], batch["right"]), batch).backward()
        assert model.deblur[0].conv1.weight.grad.abs().sum() > 0
        assert model.disp.fc[0].weight.grad.abs().sum() > 0
        decoder = [p.grad for p in [*model.Decoder.parameters(), *model.out.parameters()]]
        touched = any(g is not None and g.abs().sum() > 0 for g in decoder)
        assert touched == decoder_learns


def test_reblur_term_reblurs_the_ground_truth_with_the_pairs_vectors():
    """Module (ii): the all-in-focus image is encoded with its own skips; only the disparity
    vectors come from the blurry pair."""
    torch.manual_seed(0)
    model = create_model("k3dn", **SMALL).train()
    batch = _batch()
    out = model(batch["left"], batch["right"])
    with torch.no_grad():
        expected = model.reverse_image(batch["target"], out.extras["disparity"])
        torch.testing.assert_close(out.reblur_fn(batch["target"]), expected)
        value = reblur_term(out, batch)
        torch.testing.assert_close(value, F.l1_loss(expected, (batch["left"] + batch["right"]) / 2))
        views = reblur_term(out, batch, target="views")
        torch.testing.assert_close(
            views, (F.l1_loss(expected, batch["left"]) + F.l1_loss(expected, batch["right"])) / 2
        )


def _identity_kernels(model: K3DN, monkeypatch) -> None:
    """Every block's kernels (forward and reciprocal) replaced by the centred delta."""
    for block in model.deblur:
        k = block.conv1.kernel_size
        delta = torch.zeros(block.channels, k, k)
        delta[:, k // 2, k // 2] = 1.0
        monkeypatch.setattr(block.conv1, "kernels", lambda reciprocal=False, d=delta: d)


def test_reblur_term_trains_the_kernels_and_identity_kernels_raise_it(monkeypatch):
    """Only the spectra are optimised on the reblur term (ground truth through the reverse
    path): the term falls, and identity kernels in place of the learnt ones give a higher
    term, so it is the kernels that model the blur (the decoder, frozen here, cannot copy
    the blurry input: it decodes the sharp image's own skips). The effect is small in the
    release's reverse form (docs/k3dn.md, "The reblur term")."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = create_model("k3dn_tiny", window_size=9).train()
    batch = _synthetic_dp_batch(gen, 2, 72)
    spectra = [block.conv1.weight for block in model.deblur]
    model.requires_grad_(False)
    for spectrum in spectra:
        spectrum.requires_grad_(True)
    optimizer = torch.optim.Adam(spectra, lr=0.05)

    def term() -> torch.Tensor:
        return reblur_term(model(batch["left"], batch["right"]), batch)

    with torch.no_grad():
        initial = term().item()
    for _ in range(30):
        value = term()
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        learnt = term().item()
        _identity_kernels(model, monkeypatch)
        identity = term().item()
    assert learnt < initial - 5e-6, (initial, learnt)
    assert identity > learnt + 5e-6, (identity, learnt)


@pytest.mark.slow
def test_short_training_run_lowers_the_loss_and_the_reblur_term():
    """k3dn_tiny, Adam, Charbonnier + 0.1 x reblur, a few dozen steps on synthetic pairs.

    The loss is conf/loss/k3dn.yaml's (the reblur term on the ground truth). Square 9x9
    windows (an option of ours) let 72x72 crops run unpadded; the release's 18x14 windows
    would pad them to 288x448.
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


@pytest.mark.parametrize("disparity", ["cost_volume", "concat"])
def test_window_vectors_differ_between_windows_at_initialisation(disparity):
    """Kaiming init and the BatchNorms keep the signal: windows of a textured pair get
    distinct disparity vectors."""
    torch.manual_seed(0)
    model = create_model("k3dn", **{**SMALL, "disparity_dim": 32, "disparity": disparity})
    left = torch.rand(1, 3, 144, 216) - 0.5
    vectors = model.train().disparity_vectors(left, torch.roll(left, 2, dims=-1))
    assert vectors.shape == (6, 32)
    spread = vectors.std(dim=0).mean()
    assert spread > 0.1 * vectors.abs().mean()
