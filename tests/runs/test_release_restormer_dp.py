"""Loading Restormer's released dual_pixel_defocus_deblurring.pth: a file in the release's
exact layout ({"params": state_dict}, the 495 keys of tests/fixtures/restormer_dp_keys.tsv,
a distinct value per tensor) converts strictly and loads with no model named; a missing,
an extra and a mis-shaped entry are each refused in one line that names the key."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pytest
import torch

from dpdeblur.errors import CheckpointError
from dpdeblur.models import create_model
from dpdeblur.runs.checkpoints import convert_release, load_model
from dpdeblur.runs.releases import FORMATS, detect_release, release_for_model, release_models
from dpdeblur.runs.releases import restormer_dp as release

KEYS_TSV = Path(__file__).parents[1] / "fixtures" / "restormer_dp_keys.tsv"


def release_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in KEYS_TSV.read_text().splitlines()[1:]:
        key, shape, _, _ = line.split("\t")
        rows.append((key, tuple(int(n) for n in shape.split("x"))))
    return rows


@functools.cache
def _tensors() -> dict[str, torch.Tensor]:
    """Tensor i holds i + a ramp in [0, 0.5): every tensor and every entry distinct."""
    state = {}
    for i, (key, shape) in enumerate(release_keys()):
        n = math.prod(shape)
        state[key] = (i + torch.arange(n, dtype=torch.float64) / (2 * n)).float().view(shape)
    return state


def fake_params() -> dict[str, torch.Tensor]:
    """A new dict of the (shared, never modified) release tensors: tests may edit it."""
    return dict(_tensors())


@pytest.fixture(scope="module")
def release_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("release") / "dual_pixel_defocus_deblurring.pth"
    torch.save({"params": fake_params()}, path)
    return path


@pytest.fixture(scope="module")
def model():
    return create_model("restormer_dp")


def one_line_error(payload: object, model) -> str:
    with pytest.raises(CheckpointError) as caught:
        release.convert(payload, model, "dual_pixel_defocus_deblurring.pth")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_format_is_listed_and_names_its_model():
    assert release in FORMATS and release.NAME == "restormer-dp-pth"
    assert release.MODEL == "restormer_dp" and release_for_model("restormer_dp") is release
    assert "restormer_dp" in release_models()


def test_release_file_loads_with_no_model_named(release_file):
    net, info = load_model(release_file)
    assert info["kind"] == "release" and info["release_format"] == "restormer-dp-pth"
    assert info["model_config"] == {"name": "restormer_dp"}
    assert net.registry_name == "restormer_dp" and not net.training
    own = net.state_dict()
    assert list(own) == [key for key, _ in release_keys()]
    for key, value in _tensors().items():
        assert torch.equal(own[key], value), key


def test_detection():
    assert release.detect({"params": fake_params()})
    assert release.detect({"params_ema": fake_params()})
    assert detect_release({"params": fake_params()}) is release
    assert not release.detect(fake_params())  # a bare state dict names no model
    assert not release.detect({"params": {"conv.weight": torch.zeros(1)}})  # another BasicSR net
    assert not release.detect({"state_dict": fake_params(), "hyper_parameters": {}})
    assert not release.detect({"G_state_dict": fake_params()})


def test_params_is_preferred_over_params_ema(model):
    ema = {k: v + 1 for k, v in list(_tensors().items())[:3]} | dict(list(_tensors().items())[3:])
    converted = release.convert({"params_ema": ema, "params": fake_params()}, model)
    first = release_keys()[0][0]
    assert torch.equal(converted[first], _tensors()[first])
    converted = release.convert({"params_ema": ema}, model)  # only params_ema: that one
    assert torch.equal(converted[first], ema[first])


def test_missing_entry_is_named(model):
    params = fake_params()
    del params["refinement.2.attn.temperature"]
    message = one_line_error({"params": params}, model)
    assert "1 missing keys (refinement.2.attn.temperature)" in message
    assert message.startswith("dual_pixel_defocus_deblurring.pth:")


def test_extra_entry_is_named(model):
    params = fake_params()
    params["refinement.4.attn.temperature"] = torch.ones(1, 1, 1)
    message = one_line_error({"params": params}, model)
    assert "1 unexpected keys (refinement.4.attn.temperature)" in message


def test_misshaped_entry_is_named(model):
    params = fake_params()
    params["skip_conv.weight"] = torch.zeros(96, 48, 3, 3)
    message = one_line_error({"params": params}, model)
    assert "skip_conv.weight (96, 48, 3, 3) vs (96, 48, 1, 1)" in message


def test_module_prefix_is_not_guessed_away(model):
    params = {f"module.{k}": v for k, v in fake_params().items()}
    message = one_line_error({"params": params}, model)
    assert "495 missing keys" in message and "495 unexpected keys (module." in message


def test_single_image_weights_are_refused_with_the_right_file_named(model):
    params = fake_params()
    params["patch_embed.proj.weight"] = torch.zeros(48, 3, 3, 3)
    del params["skip_conv.weight"]
    message = one_line_error({"params": params}, model)
    assert "skip_conv.weight" in message and "single-image" in message


def test_payload_without_weights_is_refused(model):
    assert "expected a dict with one of params, params_ema" in one_line_error({"x": 1}, model)
    message = one_line_error({"params": {"patch_embed.proj.weight": "not a tensor"}}, model)
    assert "not named tensors" in message


def test_conversion_writes_weights_that_load_back(release_file, tmp_path):
    out = convert_release("restormer_dp", release_file, tmp_path / "restormer_dp.pt")
    net, info = load_model(out)
    assert info["kind"] == "converted" and net.registry_name == "restormer_dp"
    first = release_keys()[0][0]
    assert torch.equal(net.state_dict()[first], _tensors()[first])
