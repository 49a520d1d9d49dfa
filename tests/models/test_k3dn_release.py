"""``k3dn`` is the network of the public K3DN code: its 288 state-dict entries (names,
shapes, dtypes, order; tests/fixtures/k3dn_release_keys.tsv), its parameter counts, and its
numeric fingerprint (deterministic parameters and input, values measured on that code on
the CPU in float32, compared to 1e-5)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dpdeblur.models import create_model

KEYS_TSV = Path(__file__).parents[1] / "fixtures" / "k3dn_release_keys.tsv"
TOL = 1e-5


def release_entries() -> list[tuple[str, tuple[int, ...], str, str]]:
    """(key, shape, dtype, kind) of the release's checkpoint, in file order."""
    rows = []
    for line in KEYS_TSV.read_text().splitlines()[1:]:
        key, shape, dtype, kind = line.split("\t")
        dims = () if shape == "scalar" else tuple(int(n) for n in shape.split("x"))
        rows.append((key, dims, dtype, kind))
    return rows


# -- the fingerprint's deterministic parameters ---------------------------------------------
_MASK = (1 << 64) - 1


def uniform(k: int, count: int) -> np.ndarray:
    """t(k, i) in [-1, 1) for i = 0..count-1 (splitmix64 of k 2^32 + i), float64."""
    with np.errstate(over="ignore"):
        z = np.arange(count, dtype=np.uint64) + np.uint64((k << 32) + 0x9E3779B97F4A7C15 & _MASK)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-52 - 1.0


def _is_bn_weight(key: str) -> bool:
    return key.startswith("disp.") and (
        key.endswith(".bn.weight")
        or key.endswith("branch1.1.1.weight")
        or key.endswith("branch3.1.1.weight")
    )


def fingerprint_value(k: int, key: str, shape: tuple[int, ...], offset: int = 0) -> torch.Tensor:
    """Entry ``k`` of the release's checkpoint under the fingerprint's generation rule
    (``offset``: other values by the same rule, the stream of entry ``k + offset``)."""
    n = math.prod(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.int64)
    if key.endswith("conv2.p"):
        a = np.arange(shape[0])
        p = np.zeros(shape)
        p[a, (5 * a + 7 + offset) % shape[0]] = 1.0
        return torch.from_numpy(p).float()
    if key.endswith("conv2.sign_s"):
        return torch.from_numpy(np.where(np.arange(n) % 2 == 0, 1.0, -1.0)).float()
    t = uniform(k + offset, n).reshape(shape)
    if key.endswith("conv2.log_s"):
        value = 2 + 0.1 * t
    elif key.endswith("running_var") or _is_bn_weight(key):
        value = 1 + 0.25 * t
    elif key.endswith("conv1.weight") or key.endswith("inter.to_w"):
        value = t
    elif key.endswith("modulation.weight"):
        value = 4 * t
    elif key.endswith("conv2.lower") or key.endswith("conv2.upper"):
        value = 0.05 * t
    elif len(shape) == 1:
        value = 0.1 * t
    elif key.startswith("disp."):
        value = t * math.sqrt(6 / (n / shape[0]))
    else:
        value = t * math.sqrt(2 / (n / shape[0]))
    return torch.from_numpy(np.ascontiguousarray(value)).float()


def fingerprint_state_dict() -> dict[str, torch.Tensor]:
    return {
        key: fingerprint_value(k, key, shape)
        for k, (key, shape, _, _) in enumerate(release_entries())
    }


def fingerprint_views(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fingerprint's L and R (1 x 3 x H x W, in [0, 1]), from float64 to float32."""
    c = np.arange(3.0)[:, None, None]
    y = np.arange(float(height))[None, :, None]
    x = np.arange(float(width))[None, None, :]

    def image(xs):
        return (
            0.5
            + 0.3 * np.sin(0.11 * xs + 0.07 * y + 2.1 * c)
            + 0.15 * np.sin(0.031 * xs * (1 + 0.5 * c) - 0.047 * y)
        )

    left = torch.from_numpy(image(x + 1.5)).float()[None]
    right = torch.from_numpy(image(x - 1.5)).float()[None]
    return left, right


def release_model(name: str = "k3dn") -> torch.nn.Module:
    model = create_model(name).eval()
    model.load_state_dict(fingerprint_state_dict(), strict=True)
    return model


def check(values: torch.Tensor, mean: float, std: float, samples: dict) -> None:
    """Mean, sample std and values at indices, each within :data:`TOL`."""
    values = values.double()
    assert abs(values.mean().item() - mean) < TOL, (values.mean().item(), mean)
    assert abs(values.std().item() - std) < TOL, (values.std().item(), std)
    for index, expected in samples.items():
        assert abs(values[index].item() - expected) < TOL, (index, values[index].item(), expected)


# -- tests ----------------------------------------------------------------------------------
def test_state_dict_is_the_release_layout():
    own = create_model("k3dn").state_dict()
    entries = release_entries()
    assert len(entries) == 288 and sum(kind == "param" for *_, kind in entries) == 236
    assert list(own) == [key for key, *_ in entries]
    for key, shape, dtype, _ in entries:
        assert tuple(own[key].shape) == shape, key
        assert str(own[key].dtype) == f"torch.{dtype}", key


def test_parameter_counts_are_the_release_ones():
    count = {
        name: sum(p.numel() for p in create_model(name).parameters())
        for name in ("k3dn", "k3dn_no_srp")
    }
    assert count == {"k3dn": 16_099_350, "k3dn_no_srp": 10_556_754}


def test_generation_rule_checks():
    assert uniform(0, 2).tolist() == [0.7666216164272852, 0.1331231503445618]
    assert uniform(5, 8)[7] == 0.7131024095292251
    left, right = fingerprint_views(288, 448)
    torch.testing.assert_close(left[0, 0, 0, 0], torch.tensor(0.556248188), atol=1e-8, rtol=0)
    torch.testing.assert_close(left[0, 2, 100, 200], torch.tensor(0.928511858), atol=1e-8, rtol=0)
    torch.testing.assert_close(right[0, 0, 0, 0], torch.tensor(0.443751812), atol=1e-8, rtol=0)
    torch.testing.assert_close(right[0, 1, 287, 447], torch.tensor(0.883393824), atol=1e-8, rtol=0)


@pytest.fixture(scope="module")
def fingerprint():
    """Every quantity of the fingerprint at 288x448, computed once."""
    torch.manual_seed(0)
    model = release_model()
    left, right = fingerprint_views(288, 448)
    seen = {}

    def srp2_hook(module, inputs, output):
        seen["srp2"] = output - torch.cat(inputs, dim=1)

    handle = model.srp[2].register_forward_hook(srp2_hook)
    with torch.no_grad():
        lp, rp = left - 0.5, right - 0.5
        x = torch.cat([lp, rp], dim=1)
        _, e3 = model.encode(x)
        d = model.disparity_vectors(lp, rp)
        grid = model.window_grid(288, 448)
        windows = model.to_windows(e3, grid)
        block0 = model.deblur[0](windows, d) - windows
        blocks = model.to_windows(model.run_blocks(e3, d), grid) - windows
        output = model(left, right).image - 0.5
        handle.remove()  # the reverse path runs srp.2 too
        reverse = {}
        for kernel in ("reciprocal", "forward"):
            after = model.to_windows(model.run_blocks(e3, d, reverse=True, kernel=kernel), grid)
            reverse[kernel] = (after - windows, model.reverse_path(x, d, kernel))
    return {
        "d": d,
        "e3": e3,
        "block0": block0,
        "blocks": blocks,
        "srp2": seen["srp2"],
        "output": output,
        "reverse": reverse,
    }


BLOCK_INDICES = ((0, 0, 0, 0), (5, 100, 9, 7), (7, 191, 17, 13))
OUTPUT_INDICES = (
    (0, 0, 0, 0),
    (0, 1, 100, 200),
    (0, 2, 287, 447),
    (0, 0, 150, 17),
    (0, 1, 40, 300),
)


def test_fingerprint_disparity_vectors_and_encoder(fingerprint):
    d = fingerprint["d"]
    assert d.shape == (8, 256)
    check(
        d,
        0.06008527,
        0.116013,
        {
            (0, 0): -0.01346607,
            (0, 255): 0.2159852,
            (3, 17): -0.03802813,
            (5, 100): -0.02450919,
            (7, 200): -0.01441248,
        },
    )
    check(
        fingerprint["e3"],
        0.04199716,
        0.1502927,
        {(0, 0, 0, 0): 0.03275464, (0, 191, 35, 55): 0.1245903, (0, 77, 20, 30): -0.15047},
    )


def test_fingerprint_deblur_blocks(fingerprint):
    assert fingerprint["block0"].shape == (8, 192, 18, 14)
    check(
        fingerprint["block0"],
        0.001092821,
        0.002667691,
        dict(zip(BLOCK_INDICES, (7.286668e-05, 0.002536193, -7.883459e-05), strict=True)),
    )
    check(
        fingerprint["blocks"],
        0.008791192,
        0.01280083,
        dict(zip(BLOCK_INDICES, (0.002019521, 0.005816333, 0.007028714), strict=True)),
    )


def test_fingerprint_sharp_region_block_and_output(fingerprint):
    check(
        fingerprint["srp2"],
        0.0007267411,
        0.09078933,
        {(0, 0, 0, 0): -0.02077501, (0, 53, 200, 300): 0.06451241},
    )
    output = fingerprint["output"]
    assert output.shape == (1, 3, 288, 448)
    assert abs(output.min().item() + 0.8898552) < TOL and abs(output.max().item() - 0.6006306) < TOL
    check(
        output,
        -0.08452064,
        0.2353353,
        dict(
            zip(
                OUTPUT_INDICES,
                (0.07692406, 0.1596283, 0.03519221, 0.2076683, 0.1978925),
                strict=True,
            )
        ),
    )


@pytest.mark.parametrize(
    ("kernel", "blocks", "output"),
    [
        (
            "reciprocal",
            (0.002043495, 0.002500364, (0.00135196, 0.0005198196, 0.00024537)),
            (-0.08447104, 0.2352202, (0.07720342, 0.1576077, 0.03512273, 0.2074114, 0.2004241)),
        ),
        (
            "forward",
            (0.00212118, 0.002526676, (0.001453765, 0.002017781, 0.001078472)),
            (-0.08446147, 0.2352346, (0.07720073, 0.1576885, 0.03508693, 0.2070282, 0.2002232)),
        ),
    ],
)
def test_fingerprint_reverse_path(fingerprint, kernel, blocks, output):
    change, image = fingerprint["reverse"][kernel]
    check(change, blocks[0], blocks[1], dict(zip(BLOCK_INDICES, blocks[2], strict=True)))
    check(image, output[0], output[1], dict(zip(OUTPUT_INDICES, output[2], strict=True)))


def test_fingerprint_disparity_branch_at_the_eval_size():
    model = release_model()
    left, right = fingerprint_views(1152, 1792)
    with torch.no_grad():
        lp, rp = left - 0.5, right - 0.5
        matched = model.disp.matching_features(lp, rp)
        d = model.disparity_vectors(lp, rp)
    assert d.shape == (128, 256)
    check(matched, 0.08641906, 0.1296755, {})
    check(
        d,
        0.06943368,
        0.1338633,
        {
            (0, 0): -0.01336578,
            (17, 3): -0.03140142,
            (64, 128): -0.01433802,
            (100, 200): -0.02362836,
            (127, 255): 0.1851128,
        },
    )


# -- the release's checkpoint: conversion and in-memory loading -----------------------------
def release_checkpoint() -> dict[str, torch.Tensor]:
    """A state dict in the release's exact layout (the TSV's keys, order, shapes, dtypes)
    with distinct values: the fingerprint's rule on other streams, other permutations and
    batch counts."""
    state = {}
    for k, (key, shape, dtype, _) in enumerate(release_entries()):
        value = fingerprint_value(k, key, shape, offset=1000)
        if key.endswith("num_batches_tracked"):
            value = torch.tensor(1000 + k)
        assert str(value.dtype) == f"torch.{dtype}" and tuple(value.shape) == shape
        state[key] = value
    return state


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    left, right = fingerprint_views(37, 53)
    with torch.no_grad():
        return model.eval()(left, right).image


def test_release_checkpoint_converts_strictly_and_loads_in_memory(tmp_path):
    from dpdeblur.cli.convert import main as convert_main
    from dpdeblur.runs.checkpoints import load_model

    state = release_checkpoint()
    src, out = tmp_path / "best.pt", tmp_path / "k3dn_release.pt"
    torch.save(state, src)
    assert convert_main(["k3dn", str(src), str(out)]) == 0
    direct = create_model("k3dn")
    direct.load_state_dict(state, strict=True)
    expected = _outputs(direct)
    converted, info = load_model(out)
    assert info["kind"] == "converted"
    in_memory, info = load_model(src)
    assert info["kind"] == "release" and info["release_format"] == "k3dn-release-pt"
    for model in (converted, in_memory):
        for key, value in model.state_dict().items():
            assert torch.equal(value, state[key]), key
        torch.testing.assert_close(_outputs(model), expected, atol=0, rtol=0)


@pytest.mark.parametrize("damage", ["missing", "extra", "reshaped"])
def test_damaged_release_checkpoint_is_refused_naming_the_key(tmp_path, damage):
    from dpdeblur.errors import CheckpointError
    from dpdeblur.runs.checkpoints import load_model

    state = release_checkpoint()
    key = "deblur.3.inter.to_r.bias"
    if damage == "missing":
        del state[key]
    elif damage == "extra":
        key = "deblur.8.conv1.weight"
        state[key] = torch.zeros(1, 192, 1, 10, 6, 2)
    else:
        state[key] = torch.zeros(191)
    src = tmp_path / "best.pt"
    torch.save(state, src)
    with pytest.raises(CheckpointError) as caught:
        load_model(src)
    line = caught.value.one_line()
    assert key in line and "\n" not in line
    label = {"missing": "missing", "extra": "unexpected", "reshaped": "wrong shape"}[damage]
    assert label in line


# -- the release's evaluation protocol (an option; dpdeblur's own protocol pads) ------------
def test_release_protocol_resizes_uint16_views_with_opencv_and_back_with_torch():
    import cv2

    from dpdeblur.models.release_protocol import release_protocol, resize_uint16_views

    gen = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 65536, (1, 3, 35, 52), generator=gen)
    view = codes.double().div(65535).float()
    resized = resize_uint16_views(view, (36, 56))
    hwc = codes[0].permute(1, 2, 0).numpy().astype(np.uint16)
    expected = cv2.resize(hwc, (56, 36), interpolation=cv2.INTER_CUBIC).astype(np.float64) / 65535
    torch.testing.assert_close(resized[0].permute(1, 2, 0).double(), torch.from_numpy(expected))
    assert torch.equal(resized * 65535, (resized * 65535).round())  # rounded to uint16 codes

    seen = []

    def model(left, right):  # stands in for a network: records its input, returns L + 0.7
        seen.append(left.shape)
        return left + 0.7

    out = release_protocol(model, view, view, (36, 56))
    assert seen == [(1, 3, 36, 56)] and out.shape == view.shape
    assert out.min() >= 0 and out.max() <= 1 and (out == 1).any()
