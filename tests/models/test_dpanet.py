"""DPANet: parameter counts of the paper, every ablation runs, any size, input checks, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dpdeblur.models import create_model, list_models
from dpdeblur.models.dpanet import VARIANTS, DPANet
from dpdeblur.models.padding import check_dp_inputs, crop_to, pad_to_multiple
from dpdeblur.nn.blocks import SamePadConv2d
from dpdeblur.nn.deform import ModulatedDeformConv2d, set_dcn_implementation
from dpdeblur.nn.layout import to_channels_last

CONF_DIR = Path(__file__).resolve().parents[2] / "conf" / "model"
NAMES = sorted(VARIANTS)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def pair(h: int = 64, w: int = 64, b: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=gen), torch.rand(b, 3, h, w, generator=gen)


def test_every_variant_is_registered():
    assert set(list_models("dpanet*")) == set(NAMES)
    assert len(NAMES) == 11  # the release, its nine ablations and the quarter-width dpanet_tiny


def test_dpanet_tiny_is_the_release_at_a_quarter_width():
    tiny, release = create_model("dpanet_tiny"), create_model("dpanet", width=0.25)
    assert tiny.channels == release.channels == [16, 32, 64, 128]
    assert {k: v.shape for k, v in tiny.state_dict().items()} == {
        k: v.shape for k, v in release.state_dict().items()
    }


def test_release_has_exactly_the_papers_parameter_count():
    assert n_params(create_model("dpanet")) == 63_983_859


def test_baseline_within_0_1_percent_of_60_76m():
    count = n_params(create_model("dpanet_baseline"))
    assert abs(count - 60.76e6) / 60.76e6 < 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_small_width(name):
    torch.manual_seed(0)
    model = create_model(name, width=0.25)
    assert model.registry_name == name
    left, right = pair()
    out = model(left, right)
    assert out.shape == left.shape
    assert out.min() >= 0 and out.max() <= 1  # sigmoid head
    out.mean().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: no gradient for {param_name}"
        assert torch.isfinite(param.grad).all(), f"{name}: non-finite gradient in {param_name}"


@pytest.mark.parametrize(("size", "multiple"), [((37, 53), 8), ((20, 31), 8)])
def test_any_size_is_padded_and_cropped_back(size, multiple):
    torch.manual_seed(0)
    model = create_model("dpanet", width=0.125).eval()
    assert model.input_multiple() == multiple
    left, right = pair(*size, b=2)
    with torch.no_grad():
        out = model(left, right)
    assert out.shape == (2, 3, *size)


def test_padding_does_not_depend_on_the_batch():
    torch.manual_seed(0)
    model = create_model("dpanet", width=0.125).eval()
    left, right = pair(24, 30, b=2)
    with torch.no_grad():
        both = model(left, right)
        first = model(left[:1], right[:1])
    torch.testing.assert_close(both[:1], first, atol=1e-5, rtol=1e-4)


def test_five_scales_need_a_multiple_of_16():
    model = create_model("dpanet_m5", width=0.125)
    assert model.input_multiple() == 16
    assert model.channels == [8, 16, 32, 64, 128]


def test_width_scales_every_channel_count():
    model = create_model("dpanet", width=0.25)
    assert model.channels == [16, 32, 64, 128]
    assert model.encoder[0].align.weight.shape == (16, 16, 3, 3)
    # The correlation keeps its 81 displacements whatever the width.
    assert model.encoder[1].cv_embed[0].in_channels == 81


def modules_of(model, kind):
    return [m for m in model.modules() if isinstance(m, kind)]


def test_release_structure():
    model = create_model("dpanet", width=0.25)
    # 4 encoder EAMs share one deformable conv between views; 4 DAMs have two each.
    assert len(modules_of(model, ModulatedDeformConv2d)) == 4 + 8
    assert all(level.block_r is None and level.align_r is None for level in model.encoder)
    assert model.predeblur_r is None and model.bottleneck_r is None
    assert [lv.offset_l.body[0].in_channels for lv in model.encoder] == [48, 96, 192, 384]


def test_ablation_flags_change_the_structure():
    no_share = create_model("dpanet_no_share", width=0.25)
    assert no_share.predeblur_r is not None and no_share.bottleneck_r is not None
    assert all(lv.block_r is not None and lv.align_r is not None for lv in no_share.encoder)

    assert create_model("dpanet_no_pyramid", width=0.25).predeblur is None

    dcn3 = create_model("dpanet_dcn3", width=0.25)
    assert len(dcn3.encoder[0].offset_l.body) == 5  # conv, lrelu, conv, lrelu, conv

    baseline = create_model("dpanet_baseline", width=0.25)
    assert not modules_of(baseline, ModulatedDeformConv2d)
    assert all(lv.cv_embed is None and lv.offset_l is None for lv in baseline.encoder)
    assert all(lv.offset_l is None for lv in baseline.decoder)
    assert isinstance(baseline.decoder[0].align_l, SamePadConv2d)

    no_eam = create_model("dpanet_no_eam", width=0.25)
    assert not any(lv.uses_cost_volume for lv in no_eam.encoder)
    assert len(modules_of(no_eam, ModulatedDeformConv2d)) == 8

    no_cv = create_model("dpanet_no_cv", width=0.25)
    assert all(lv.cv_embed is None for lv in no_cv.encoder)
    assert no_cv.encoder[0].offset_l.body[0].in_channels == 2 * 16

    cv_only = create_model("dpanet_cv_only", width=0.25)
    assert cv_only.encoder[0].offset_l.body[0].in_channels == 16

    no_dam = create_model("dpanet_no_dam", width=0.25)
    assert len(modules_of(no_dam, ModulatedDeformConv2d)) == 4


def test_variants_without_correlation_never_call_it(monkeypatch):
    calls = []
    import dpdeblur.models.dpanet as dpanet_module

    real = dpanet_module.correlation
    monkeypatch.setattr(
        dpanet_module, "correlation", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k)
    )
    left, right = pair(32, 32)
    with torch.no_grad():
        create_model("dpanet", width=0.125)(left, right)
        assert [s[1] for s in calls] == [8, 8, 16, 32]  # cv0 on pre-deblurred, cv1..cv3
        calls.clear()
        create_model("dpanet_no_pyramid", width=0.125)(left, right)
        assert calls[0][1] == 3  # the first cost volume correlates the RGB views
        for name in ("dpanet_no_cv", "dpanet_no_eam", "dpanet_baseline"):
            calls.clear()
            create_model(name, width=0.125)(left, right)
            assert calls == [], name


def test_paper_offset_init_starts_as_identity_alignment():
    model = create_model("dpanet", width=0.125, offset_init="paper")
    head = model.decoder[0].offset_l
    offset, mask = head(torch.randn(1, head.body[0].in_channels, 8, 8))
    assert torch.count_nonzero(offset) == 0
    torch.testing.assert_close(mask, torch.full_like(mask, 0.5))


def test_overrides_reach_the_constructor():
    model = create_model("dpanet_no_dam", width=0.125, max_displacement=2)
    assert model.encoder[0].cv_embed[0].in_channels == 25
    assert not model.decoder[0].dam


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "width"),
        ({"num_scales": 1}, "num_scales"),
        ({"eam_offsets": "nope"}, "eam_offsets"),
        ({"offset_init": "zeros"}, "offset_init"),
        ({"dcn_implementation": "cuda"}, "dcn_implementation"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DPANet(**kwargs)


# --- input checks -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model():
    return create_model("dpanet", width=0.125).eval()


def test_mismatched_views_are_refused(tiny_model):
    with pytest.raises(ValueError, match="differ in shape"):
        tiny_model(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 24))


def test_wrong_channel_count_is_refused(tiny_model):
    with pytest.raises(ValueError, match="3 channels"):
        tiny_model(torch.rand(1, 4, 16, 16), torch.rand(1, 4, 16, 16))


def test_non_finite_input_is_refused(tiny_model):
    left, right = pair(16, 16)
    right[0, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="right view contains non-finite"):
        tiny_model(left, right)
    left[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="left view contains non-finite"):
        tiny_model(left, right.nan_to_num())


def test_wrong_rank_is_refused():
    with pytest.raises(ValueError, match="4-D"):
        check_dp_inputs(torch.rand(3, 8, 8), torch.rand(3, 8, 8))


def test_integer_input_is_refused():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="floating-point"):
        check_dp_inputs(x, x)


@pytest.mark.parametrize(("h", "w", "multiple"), [(5, 7, 8), (16, 16, 8), (1, 3, 4), (2, 9, 16)])
def test_pad_to_multiple_round_trip(h, w, multiple):
    x = torch.rand(2, 3, h, w)
    padded, size = pad_to_multiple(x, multiple)
    assert size == (h, w)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple
    torch.testing.assert_close(crop_to(padded, size), x)


def test_pad_is_reflect():
    x = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    padded, _ = pad_to_multiple(x, 8)
    assert padded[0, 0, 0].tolist() == [0, 1, 2, 3, 2, 1, 0, 1]


def test_runs_under_cpu_autocast():
    torch.manual_seed(0)
    model = create_model("dpanet", width=0.125)
    left, right = pair(32, 40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(left, right)
    assert out.shape == left.shape
    out.float().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


# --- deformable conv implementations and layouts --------------------------------------------


def test_dcn_implementation_reaches_every_deformable_conv():
    model = create_model("dpanet", width=0.125, dcn_implementation="torchvision")
    convs = [m for m in model.modules() if isinstance(m, ModulatedDeformConv2d)]
    assert len(convs) == 12  # 4 encoder levels (shared by the views) + 2 per decoder level
    assert {conv.implementation for conv in convs} == {"torchvision"}
    assert create_model("dpanet", width=0.125).encoder[0].align.implementation == "auto"


def test_dcn_implementations_share_the_weights_and_agree():
    """Same state dict (released weights load into either); same output and gradients."""
    torch.manual_seed(0)
    sampled = create_model("dpanet", width=0.125, dcn_implementation="sampled")
    reference = create_model("dpanet", width=0.125, dcn_implementation="torchvision")
    assert {k: v.shape for k, v in sampled.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
    reference.load_state_dict(sampled.state_dict())
    left, right = pair(32, 40)
    grads = []
    for model in (sampled, reference):
        view = left.clone().requires_grad_()
        out = model(view, right)
        out.square().mean().backward()
        grads.append((out, view.grad, model.encoder[1].align.weight.grad))
    for got, expected in zip(*grads, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    assert set_dcn_implementation(sampled, "auto") == 12


def test_channels_last_matches_the_default_layout():
    torch.manual_seed(0)
    model = create_model("dpanet", width=0.125).eval()
    left, right = pair(32, 32)
    expected = model(left, right)
    to_channels_last(model)
    nhwc = [v.contiguous(memory_format=torch.channels_last) for v in (left, right)]
    torch.testing.assert_close(model(*nhwc), expected, atol=1e-5, rtol=1e-4)
