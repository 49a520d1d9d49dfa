"""``restormer_dp`` is the network of Restormer's dual-pixel release: its 495 state-dict
entries (names, shapes, dtypes, order; tests/fixtures/restormer_dp_keys.tsv), its
parameter count, and its numeric fingerprint under rule D (deterministic weights and input;
the reference output was computed in float64, tests/fixtures/restormer_dp_ruleD_output_f64.npy;
here float32, compared within 2e-4)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dpdeblur.models import create_model, model_info
from dpdeblur.models.restormer import ChannelLayerNorm, Restormer

FIXTURES = Path(__file__).parents[1] / "fixtures"
KEYS_TSV = FIXTURES / "restormer_dp_keys.tsv"
REFERENCE = FIXTURES / "restormer_dp_ruleD_output_f64.npy"
TOL = 2e-4  # float32 against the float64 reference (the stated float32 noise: 3.8e-5)
SIZE = 64


def release_entries() -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, dtype) of the release's state dict, in file order."""
    rows = []
    for line in KEYS_TSV.read_text().splitlines()[1:]:
        key, shape, dtype, _ = line.split("\t")
        rows.append((key, tuple(int(n) for n in shape.split("x")), dtype))
    return rows


# -- rule D -------------------------------------------------------------------------------
def rule_d_value(index: int, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Tensor ``index`` of the state dict under rule D (float64)."""
    u = np.random.RandomState(index).uniform(-1.0, 1.0, size=math.prod(shape)).reshape(shape)
    if len(shape) == 4:
        return u * math.sqrt(3 / (shape[1] * shape[2] * shape[3]))
    if key.endswith("attn.temperature"):
        return 1.5 + u
    if key.endswith("body.weight"):
        return 1 + 0.1 * u
    if key.endswith("body.bias"):
        return 0.1 * u
    raise AssertionError(f"rule D has no case for {key}")


def rule_d_state_dict() -> dict[str, torch.Tensor]:
    return {
        key: torch.from_numpy(rule_d_value(i, key, shape)).float()
        for i, (key, shape, _) in enumerate(release_entries())
    }


def rule_d_input() -> np.ndarray:
    """1 x 6 x 64 x 64: channels 0..2 the left view (RGB), 3..5 the right view, float64."""
    c = np.arange(6.0)[:, None, None]
    h = np.arange(float(SIZE))[None, :, None]
    w = np.arange(float(SIZE))[None, None, :]
    return (0.5 + 0.4 * np.sin(0.37 * h + 0.23 * w + 0.9 * c))[None]


# Module outputs of rule D (float64 reference): mean, unbiased std, first element.
ACTIVATIONS = {
    "patch_embed": (0.05250621, 0.52380089, 0.16920623),
    "encoder_level1": (0.11807873, 1.81537116, -0.30511471),
    "down1_2": (-0.41787646, 1.79334049, 0.01503409),
    "encoder_level3": (-0.32853708, 2.73564874, 3.28157275),
    "latent": (0.02675089, 3.11174121, 2.39926994),
    "up4_3": (-0.15943687, 2.89624420, -0.04096604),
    "decoder_level2": (0.12684673, 3.23472514, -0.47256031),
    "decoder_level1": (-0.01675461, 3.01649319, -0.47118034),
    "refinement": (0.00584519, 3.31066546, -1.77326470),
    "skip_conv": (-0.02673448, 0.48189481, -0.37275841),
}
OUTPUT_VALUES = {
    (0, 0, 0, 0): -0.8536077187,
    (0, 1, 10, 20): 0.4607088512,
    (0, 2, 31, 31): -4.3119134400,
    (0, 0, 63, 63): -0.7345213813,
    (0, 1, 5, 60): -0.9927954923,
}


@pytest.fixture(scope="module")
def release_model() -> Restormer:
    model = create_model("restormer_dp").eval()
    model.load_state_dict(rule_d_state_dict(), strict=True)
    return model


@pytest.fixture(scope="module")
def fingerprint(release_model):
    """The float32 output and the module outputs of rule D, computed once."""
    x = torch.from_numpy(rule_d_input()).float()
    seen = {}
    handles = [
        getattr(release_model, name).register_forward_hook(
            lambda module, inputs, output, name=name: seen.__setitem__(name, output.double())
        )
        for name in ACTIVATIONS
    ]
    try:
        with torch.no_grad():
            output = release_model(x[:, :3], x[:, 3:]).double()
    finally:
        for handle in handles:
            handle.remove()
    return output, seen


# -- layout -------------------------------------------------------------------------------
def test_state_dict_is_the_release_layout():
    own = create_model("restormer_dp").state_dict()
    entries = release_entries()
    assert len(entries) == 495
    assert list(own) == [key for key, _, _ in entries]
    for key, shape, dtype in entries:
        assert tuple(own[key].shape) == shape, key
        assert str(own[key].dtype) == f"torch.{dtype}", key


def test_parameter_count_is_the_release_one():
    model = create_model("restormer_dp")
    assert sum(p.numel() for p in model.parameters()) == 26_132_548
    assert not list(model.buffers())
    per_module = {
        name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()
    }
    assert per_module["latent"] == 14_370_448
    assert per_module["decoder_level1"] == per_module["refinement"] == 471_484
    assert per_module["skip_conv"] == 4_608 and per_module["up4_3"] == 2_654_208


def test_registry_facts():
    info = model_info("restormer_dp")
    assert info.architecture is Restormer and info.weights_format == "restormer-dp-pth"
    assert info.size_argument == "dim" and info.main_benchmark
    assert info.margin is None and "global" in info.global_context
    assert info.input_multiple(create_model("restormer_dp_tiny")) == 8


# -- rule D -------------------------------------------------------------------------------
def test_rule_d_input_checks():
    x = rule_d_input()
    assert x.shape == (1, 6, SIZE, SIZE)
    assert abs(x.mean() - 0.4996697446) < 1e-10
    assert x[0, 0, 0, 0] == 0.5 and abs(x[0, 3, 10, 20] - 0.1000039174) < 1e-10


def test_fingerprint_statistics(fingerprint):
    y = fingerprint[0]
    assert y.shape == (1, 3, SIZE, SIZE)
    assert abs(y.mean().item() - 1.4978050654) < TOL
    assert abs(y.std().item() - 3.3987046780) < TOL
    assert abs(y.min().item() + 10.3637221818) < TOL and abs(y.max().item() - 13.6550770196) < TOL
    channel_means = y.mean(dim=(0, 2, 3)).tolist()
    for got, expected in zip(
        channel_means, (2.6360017930, 2.8706636734, -1.0132502701), strict=True
    ):
        assert abs(got - expected) < TOL
    for index, expected in OUTPUT_VALUES.items():
        assert abs(y[index].item() - expected) < TOL, index


def test_fingerprint_matches_the_full_reference_output(fingerprint):
    reference = torch.from_numpy(np.load(REFERENCE))
    assert reference.shape == (1, 3, SIZE, SIZE)
    difference = (fingerprint[0] - reference).abs().max().item()
    assert difference < TOL, difference


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_fingerprint_module_outputs(fingerprint, name):
    value = fingerprint[1][name]
    mean, std, first = ACTIVATIONS[name]
    assert abs(value.mean().item() - mean) < TOL
    assert abs(value.std().item() - std) < TOL
    assert abs(value.flatten()[0].item() - first) < TOL


# -- sizes and options --------------------------------------------------------------------
@pytest.mark.parametrize("size", [(37, 53), (64, 41)])
def test_odd_sizes_are_reflect_padded_to_a_multiple_of_8_and_cropped_back(release_model, size):
    height, width = size
    generator = torch.Generator().manual_seed(3)
    left, right = (torch.rand(1, 3, height, width, generator=generator) for _ in range(2))
    padded = F.pad(torch.cat([left, right], 1), (0, -width % 8, 0, -height % 8), mode="reflect")
    with torch.no_grad():
        out = release_model(left, right)
        expected = release_model.restore(padded)[..., :height, :width]
    assert out.shape == (1, 3, height, width)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_layer_norms_follow_their_definitions():
    x = torch.randn(2, 8, 5, 3, dtype=torch.float64)
    with_bias = ChannelLayerNorm(8).double()
    bias_free = ChannelLayerNorm(8, "bias_free").double()
    for norm in (with_bias, bias_free):
        torch.nn.init.uniform_(norm.body.weight, 0.5, 1.5)
    torch.nn.init.uniform_(with_bias.body.bias, -0.5, 0.5)
    mean = x.mean(1, keepdim=True)
    var = x.var(1, keepdim=True, unbiased=False)
    weight = with_bias.body.weight.view(1, 8, 1, 1)
    bias = with_bias.body.bias.view(1, 8, 1, 1)
    torch.testing.assert_close(with_bias(x), (x - mean) / torch.sqrt(var + 1e-5) * weight + bias)
    scale = bias_free.body.weight.view(1, 8, 1, 1)
    torch.testing.assert_close(bias_free(x), x / torch.sqrt(var + 1e-5) * scale)
    assert list(bias_free.state_dict()) == ["body.weight"]


def test_bias_options_change_only_the_stated_layers():
    model = Restormer(dim=8, num_blocks=(1, 1, 1, 1), num_refinement_blocks=1, bias=True)
    biased = {k.rsplit(".", 1)[0] for k in model.state_dict() if k.endswith(".bias")}
    assert "patch_embed.proj" not in biased and "down1_2.body.0" not in biased
    assert "up2_1.body.0" not in biased
    assert {"skip_conv", "output", "reduce_chan_level3", "latent.0.attn.qkv"} <= biased


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dim": 47}, "dim"),
        ({"dim": 8, "heads": (1, 2, 4)}, "one entry per level"),
        ({"dim": 8, "heads": (1, 3, 4, 8)}, "heads"),
        ({"dim": 8, "layer_norm": "rms"}, "layer_norm"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Restormer(**kwargs)


def test_tiny_variant_runs():
    model = create_model("restormer_dp_tiny").eval()
    assert sum(p.numel() for p in model.parameters()) == 1_145_387
    with torch.no_grad():
        out = model(torch.rand(1, 3, 20, 28), torch.rand(1, 3, 20, 28))
    assert out.shape == (1, 3, 20, 28) and torch.isfinite(out).all()
