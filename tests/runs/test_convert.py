"""Loading DPANet's released checkpoint: a fake final.pth built from the release's key list."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from dpdeblur.cli.convert import main as convert_main
from dpdeblur.errors import CheckpointError
from dpdeblur.models import create_model
from dpdeblur.runs.checkpoints import convert_release, load_model, read_checkpoint
from dpdeblur.runs.releases.dpanet import COLOUR_AXES, dpanet_key_map, release_state_dict
from dpdeblur.runs.releases.dpanet import convert as convert_dpanet_state_dict

# The spec's list of the release's 212 keys and shapes (spec: dpanet_release_keys.tsv).
KEYS_TSV = Path(__file__).parents[1] / "fixtures" / "dpanet_release_keys.tsv"


def release_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in KEYS_TSV.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape = line.split("\t")
        rows.append((key, tuple(int(s) for s in shape.split("x"))))
    return rows


@functools.cache
def _fake_release_tensors() -> dict[str, torch.Tensor]:
    state = {}
    for i, (key, shape) in enumerate(release_keys()):
        n = 1
        for s in shape:
            n *= s
        ramp = torch.arange(n, dtype=torch.float64) / (2 * n)
        state[key] = (i + ramp).to(torch.float32).view(shape)
    return state


def fake_release_state_dict() -> dict[str, torch.Tensor]:
    """Tensors of the release's shapes; tensor i holds i + a ramp in [0, 0.5): all distinct.

    A new dict each call (tests edit it); the tensors are built once and never modified.
    """
    return dict(_fake_release_tensors())


@pytest.fixture(scope="module")
def release_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("release") / "final.pth"
    torch.save({"G_state_dict": fake_release_state_dict(), "epoch": 150}, path)
    return path


@pytest.fixture(scope="module")
def full_model():
    return create_model("dpanet")


def test_key_list_has_212_tensors():
    rows = release_keys()
    assert len(rows) == 212
    assert all(key.startswith("module.") for key, _ in rows)


def test_every_release_key_maps_to_a_distinct_model_key(full_model):
    keys = [k[len("module.") :] for k, _ in release_keys()]
    mapping, unmapped = dpanet_key_map(keys)
    assert unmapped == []
    assert sorted(mapping.values()) == sorted(full_model.state_dict())


@pytest.mark.parametrize(
    ("release", "ours"),
    [
        ("predeblur.RB_L1_3.conv2.weight", "predeblur.rb_l1.2.conv2.weight"),
        ("predeblur.RB_L3_1.conv1.bias", "predeblur.rb_l3.0.conv1.bias"),
        ("predeblur.deblur_L3_conv.weight", "predeblur.down_l3.weight"),
        ("encoder.encoder1.block.block.conv_block.0.weight", "encoder.0.block.conv.weight"),
        ("encoder.encoder3.block.block.RB_2.conv1.weight", "encoder.2.block.res.1.conv1.weight"),
        ("encoder.encoder2.offset_r.offset_conv.weight", "encoder.1.offset_r.body.0.weight"),
        ("encoder.encoder4.flow_conv.2.bias", "encoder.3.cv_embed.2.bias"),
        ("encoder.encoder2.deform.weight", "encoder.1.align.weight"),
        ("encoder_5.block.RB_1.conv2.bias", "bottleneck.res.0.conv2.bias"),
        ("encoder_5.block.conv_block.0.weight", "bottleneck.conv.weight"),
        ("up4.upsample.up.1.weight", "decoder.3.upsample.conv.weight"),
        ("up1.offset_l.weight", "decoder.0.offset_l.body.0.weight"),
        ("up3.deform_r.bias", "decoder.2.align_r.bias"),
        ("up2.cv.conv_block.0.weight", "decoder.1.fuse.conv.weight"),
        ("up4.cv.RB_2.conv2.weight", "decoder.3.fuse.res.1.conv2.weight"),
        ("out.2.weight", "head.2.weight"),
    ],
)
def test_keys_land_in_their_place(release, ours):
    assert dpanet_key_map([release]) == ({release: ours}, [])


def test_converted_tensors_survive_the_round_trip(release_file, tmp_path):
    out = convert_release("dpanet", release_file, tmp_path / "dpanet.pt")
    model, _ = load_model(out)
    assert model.registry_name == "dpanet"
    ours = model.state_dict()
    original = fake_release_state_dict()
    mapping, _ = dpanet_key_map([k[len("module.") :] for k in original])
    for key, tensor in original.items():
        our_key = mapping[key[len("module.") :]]
        if our_key in COLOUR_AXES:  # B,G,R -> R,G,B: the colour axis reversed
            tensor = tensor.flip(COLOUR_AXES[our_key])
        torch.testing.assert_close(ours[our_key], tensor, rtol=0, atol=0)


def test_colour_order_is_baked_into_exactly_two_layers(full_model):
    """The first conv's input channels and the last conv's output channels are reversed;
    every other tensor is the release's as it is."""
    state = {k[len("module.") :]: v for k, v in fake_release_state_dict().items()}
    converted = convert_dpanet_state_dict(state, full_model)
    mapping, _ = dpanet_key_map(list(state))
    flipped = {mapping[k] for k, v in state.items() if not torch.equal(converted[mapping[k]], v)}
    assert flipped == set(COLOUR_AXES)


def test_cli_converts(release_file, tmp_path, capsys):
    out = tmp_path / "sub" / "dpanet.pt"
    assert convert_main(["dpanet", str(release_file), str(out)]) == 0
    assert out.is_file()
    payload = torch.load(out, weights_only=True)
    assert payload["format"] == "dpdeblur-weights" and payload["model"] == "dpanet"
    assert "converted" in capsys.readouterr().out


def test_bare_state_dict_without_module_prefix_is_accepted(tmp_path):
    state = {k[len("module.") :]: v for k, v in fake_release_state_dict().items()}
    path = tmp_path / "bare.pth"
    torch.save(state, path)
    assert set(release_state_dict(read_checkpoint(path), path)) == set(state)


def test_missing_key_is_named(full_model):
    state = {k[len("module.") :]: v for k, v in fake_release_state_dict().items()}
    del state["up2.deform_l.bias"]
    with pytest.raises(CheckpointError, match=r"1 missing keys \(decoder\.1\.align_l\.bias\)"):
        convert_dpanet_state_dict(state, full_model)


def test_unexpected_key_is_named(full_model):
    state = {k[len("module.") :]: v for k, v in fake_release_state_dict().items()}
    state["encoder.encoder1.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(encoder\.encoder1\.extra"):
        convert_dpanet_state_dict(state, full_model)


def test_wrong_shape_is_refused(full_model):
    state = {k[len("module.") :]: v for k, v in fake_release_state_dict().items()}
    state["out.2.weight"] = torch.zeros(3, 32, 3, 3)
    with pytest.raises(CheckpointError, match=r"wrong shape \(head\.2\.weight"):
        convert_dpanet_state_dict(state, full_model)


def test_another_models_checkpoint_is_refused(tmp_path, capsys):
    other = create_model("dpanet_baseline", width=0.125).state_dict()
    path = tmp_path / "other.pth"
    torch.save({"G_state_dict": {f"module.{k}": v for k, v in other.items()}}, path)
    assert convert_main(["dpanet", str(path), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert "missing keys" in err and "unexpected keys" in err and str(path) in err
    assert not (tmp_path / "out.pt").exists()


def test_corrupt_file_is_refused(tmp_path, capsys):
    path = tmp_path / "final.pth"
    path.write_bytes(b"\x80\x02 this is not a checkpoint" * 10)
    assert convert_main(["dpanet", str(path), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and str(path) in err


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")


def test_checkpoint_without_state_dict_is_refused(tmp_path):
    path = tmp_path / "final.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="not named tensors"):
        release_state_dict(read_checkpoint(path), path)


def test_load_model_refuses_other_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": 1}, path)
    with pytest.raises(CheckpointError, match="unrecognised checkpoint layout"):
        load_model(path)


# --- the release's forward pass, written from the spec on the release's own key names -----


def release_forward(sd: dict[str, torch.Tensor], left: torch.Tensor, right: torch.Tensor):
    """The released network as a function of its state dict (keys without ``module.``)."""
    import torch.nn.functional as F
    from torchvision.ops import deform_conv2d

    from dpdeblur.nn.correlation import correlation

    def conv(x, name, stride=1, padding=1):
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], stride, padding)

    def same(x, name):  # TensorFlow-style "same": the odd pixel of padding right/bottom
        k = sd[f"{name}.weight"].shape[-1]
        x = F.pad(x, ((k - 1) // 2, k // 2, (k - 1) // 2, k // 2))
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"])

    def rb(x, name):
        return x + conv(F.relu(conv(x, f"{name}.conv1")), f"{name}.conv2")

    def conv_block(x, name):
        x = F.relu(same(x, f"{name}.conv_block.0"))
        return rb(rb(x, f"{name}.RB_1"), f"{name}.RB_2")

    def lrelu(x):
        return F.leaky_relu(x, 0.1)

    def up2(x):
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    def predeblur(x):
        p = "predeblur"
        l1 = lrelu(conv(x, f"{p}.conv_first"))
        l2 = lrelu(conv(l1, f"{p}.deblur_L2_conv", stride=2))
        l3 = lrelu(conv(l2, f"{p}.deblur_L3_conv", stride=2))
        l2 = rb(l2, f"{p}.RB_L2_1") + up2(rb(l3, f"{p}.RB_L3_1"))
        l1 = rb(rb(l1, f"{p}.RB_L1_1"), f"{p}.RB_L1_2") + up2(rb(l2, f"{p}.RB_L2_2"))
        return rb(rb(rb(l1, f"{p}.RB_L1_3"), f"{p}.RB_L1_4"), f"{p}.RB_L1_5")

    def offsets(x, name):
        o1, o2, m = torch.chunk(conv(x, name), 3, dim=1)
        return torch.cat([o1, o2], 1), torch.sigmoid(m)

    def dcn(x, offset, mask, name):
        w, b = sd[f"{name}.weight"], sd[f"{name}.bias"]
        return deform_conv2d(x, offset, w, b, padding=1, mask=mask)

    def cost_volume(a, b):
        return lrelu(correlation(a, b, 4))

    xl, xr = predeblur(left), predeblur(right)
    cv = cost_volume(xl, xr)
    skips = []
    for k in range(1, 5):
        p = f"encoder.encoder{k}"
        if k > 1:
            xl, xr, cv = F.max_pool2d(xl, 2), F.max_pool2d(xr, 2), F.max_pool2d(cv, 2)
        xl, xr = conv_block(xl, f"{p}.block.block"), conv_block(xr, f"{p}.block.block")
        v = F.relu(same(F.relu(same(cv, f"{p}.flow_conv.0")), f"{p}.flow_conv.2"))
        hints = torch.cat([xl, xr, v], 1)
        off_l, m_l = offsets(hints, f"{p}.offset_l.offset_conv")
        off_r, m_r = offsets(hints, f"{p}.offset_r.offset_conv")
        xl, xr = dcn(xl, off_l, m_l, f"{p}.deform"), dcn(xr, off_r, m_r, f"{p}.deform")
        skips.append((xl, xr))
        if k < 4:
            cv = cost_volume(xl, xr)
    y = torch.cat([conv_block(xl, "encoder_5.block"), conv_block(xr, "encoder_5.block")], 1)
    for k in range(4, 0, -1):
        p = f"up{k}"
        sl, sr = skips[k - 1]
        y = same(F.interpolate(y, scale_factor=2, mode="nearest"), f"{p}.upsample.up.1")
        dy, dx = sl.shape[2] - y.shape[2], sl.shape[3] - y.shape[3]
        y = F.pad(y, (dx // 2, dx - dx // 2, dy // 2, dy - dy // 2))
        off, m = offsets(torch.cat([sl, sr, y], 1), f"{p}.offset_l")
        sl = dcn(sl, off, m, f"{p}.deform_l")
        off, m = offsets(torch.cat([sl, sr, y], 1), f"{p}.offset_r")
        sr = dcn(sr, off, m, f"{p}.deform_r")
        y = conv_block(torch.cat([sl, sr, y], 1), f"{p}.cv")
    return torch.sigmoid(same(F.relu(same(y, "out.0")), "out.2"))


def test_converted_model_computes_what_the_release_computes(full_model):
    """Random release weights: our model after conversion, fed R,G,B, gives the image the
    release gives fed the same pixels in B,G,R (its convention), with the channels reversed.

    Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.01^2): at this scale the network is well
    conditioned (float32 and float64 runs of the reference agree to 3e-7), so any
    difference is a misplaced tensor, not rounding.
    """
    gen = torch.Generator().manual_seed(0)
    release = {}
    for key, shape in release_keys():
        fan_in = 1
        for s in shape[1:]:
            fan_in *= s
        scale = 0.01 if key.endswith("bias") else fan_in**-0.5
        release[key[len("module.") :]] = torch.randn(shape, generator=gen) * scale
    model = create_model("dpanet").eval()
    model.load_state_dict(convert_dpanet_state_dict(release, model))
    left = torch.rand(1, 3, 40, 48, generator=gen)
    right = torch.roll(left, shifts=2, dims=3) * 0.9
    bgr = [2, 1, 0]
    with torch.no_grad():
        ours = model(left, right)
        theirs = release_forward(release, left[:, bgr], right[:, bgr])[:, bgr]
        unbaked = release_forward(release, left, right)
    assert ours.std() > 0.01  # not a constant image: a real comparison
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # the colour order matters with these weights: feeding R,G,B unbaked is far off
    assert (ours - unbaked).abs().max() > 1e-3
