"""Loss terms against their definitions, the weighted composite, and the loss configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from dpdeblur.errors import ConfigError
from dpdeblur.metrics import psnr
from dpdeblur.models.output import DeblurOutput
from dpdeblur.training.losses import (
    CHARBONNIER_EPS,
    TERMS,
    CompositeLoss,
    LossError,
    charbonnier,
    l1,
    mse,
    negative_psnr,
)

CONF = Path(__file__).parents[2] / "conf" / "loss"


def _batch(seed: int = 0, size: int = 6) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {key: torch.rand(2, 3, size, size, generator=gen) for key in ("left", "right", "target")}


def test_charbonnier_matches_its_definition():
    assert CHARBONNIER_EPS == 1e-3
    zero = torch.zeros(4)
    torch.testing.assert_close(charbonnier(zero, zero), torch.tensor(1e-3))
    pred, target = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([0.3, 0.5, 0.2])
    expected = sum(math.sqrt(d * d + 1e-6) for d in (-0.3, 0.0, 0.8)) / 3
    torch.testing.assert_close(charbonnier(pred, target), torch.tensor(expected))
    # for large errors it is L1, for tiny ones it is flat at eps
    big = torch.tensor([10.0])
    torch.testing.assert_close(charbonnier(big, -big), torch.tensor(20.0), rtol=1e-6, atol=0)


def test_mse_and_l1_match_their_definitions():
    batch = _batch()
    pred, target = batch["left"], batch["target"]
    torch.testing.assert_close(mse(pred, target), ((pred - target) ** 2).mean())
    torch.testing.assert_close(l1(pred, target), (pred - target).abs().mean())
    torch.testing.assert_close(mse(pred, target), torch.nn.functional.mse_loss(pred, target))


def test_psnr_loss_is_minus_the_mean_of_per_image_psnrs():
    batch = _batch(3)
    pred, target = batch["left"], batch["target"]
    expected = -psnr(pred, target).mean().float()
    torch.testing.assert_close(
        negative_psnr(pred, target, eps=1e-12), expected, rtol=1e-5, atol=1e-4
    )
    # The default eps caps a perfect image's term at 40 dB instead of infinity.
    torch.testing.assert_close(negative_psnr(target, target), torch.tensor(-40.0))


def test_psnr_loss_weighs_an_error_on_a_sharp_image_more_than_mse_does():
    """Two images, one nearly right (small error) and one far off: the PSNR loss's gradient
    on the nearly right image is the larger one; the batch MSE's is the smaller one."""
    target = torch.zeros(2, 3, 8, 8)
    pred = target.clone()
    pred[0] += 0.01
    pred[1] += 0.2
    grads = {}
    for name, fn in (("psnr", negative_psnr), ("mse", mse)):
        p = pred.clone().requires_grad_(True)
        fn(p, target).backward()
        grads[name] = p.grad.abs().flatten(1).mean(dim=1)
    assert grads["psnr"][0] > grads["psnr"][1]
    assert grads["mse"][0] < grads["mse"][1]


def test_composite_total_is_the_weighted_sum_and_terms_are_logged_unweighted():
    batch = _batch()
    image = torch.rand(2, 3, 6, 6, requires_grad=True)
    reblurred = torch.rand(2, 3, 6, 6, requires_grad=True)
    loss = CompositeLoss({"charbonnier": 1.0, "mse": 0.5, "l1": 2.0, "reblur": 0.1})
    total, terms = loss(DeblurOutput(image, reblurred), batch)
    target, mean_views = batch["target"], (batch["left"] + batch["right"]) / 2
    expected = {
        "charbonnier": torch.sqrt((image - target) ** 2 + 1e-6).mean(),
        "mse": ((image - target) ** 2).mean(),
        "l1": (image - target).abs().mean(),
        "reblur": (reblurred - mean_views).abs().mean(),
    }
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value.detach())
        assert not terms[name].requires_grad
    weighted = expected["charbonnier"] + 0.5 * expected["mse"] + 2 * expected["l1"]
    torch.testing.assert_close(total, weighted + 0.1 * expected["reblur"])
    total.backward()
    assert image.grad.abs().sum() > 0 and reblurred.grad.abs().sum() > 0


def test_reblur_weight_scales_only_the_reblur_gradient():
    batch = _batch()
    reblurred = torch.rand(2, 3, 6, 6, requires_grad=True)
    grads = []
    for weight in (0.1, 0.3):
        reblurred.grad = None
        total, _ = CompositeLoss({"charbonnier": 1.0, "reblur": weight})(
            DeblurOutput(torch.rand(2, 3, 6, 6), reblurred), batch
        )
        total.backward()
        grads.append(reblurred.grad.clone())
    torch.testing.assert_close(grads[1], 3 * grads[0])


def test_plain_tensor_output_works_for_image_terms():
    batch = _batch()
    total, terms = CompositeLoss({"l1": 1.0})(batch["left"], batch)
    torch.testing.assert_close(total, (batch["left"] - batch["target"]).abs().mean())
    assert list(terms) == ["l1"]


@pytest.mark.parametrize(
    "output",
    [torch.rand(2, 3, 6, 6), DeblurOutput(torch.rand(2, 3, 6, 6))],
    ids=["tensor", "no-reblurred"],
)
def test_reblur_without_a_reblurred_image_is_a_clear_error(output):
    loss = CompositeLoss({"charbonnier": 1.0, "reblur": 0.1})
    with pytest.raises(LossError, match="reblurred image") as info:
        loss(output, _batch())
    assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
    assert "\n" not in str(info.value)
    # validation (eval mode) may skip it: the term is left out of the total and the dict
    total, terms = loss(output, _batch(), skip_unavailable=True)
    assert list(terms) == ["charbonnier"]
    torch.testing.assert_close(total, terms["charbonnier"])


def test_missing_target_is_a_clear_error():
    batch = _batch()
    del batch["target"]
    with pytest.raises(LossError, match="target"):
        CompositeLoss({"charbonnier": 1.0})(torch.rand(2, 3, 6, 6), batch)
    with pytest.raises(LossError, match="target"):  # not skipped: that is a data problem
        CompositeLoss({"charbonnier": 1.0})(torch.rand(2, 3, 6, 6), batch, skip_unavailable=True)


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({}, "at least one"),
        ({"ssim": 1.0}, "unknown"),
        ({"l1": -1.0}, ">= 0"),
        ({"l1": math.nan}, ">= 0"),
    ],
)
def test_bad_configuration_is_rejected(terms, message):
    with pytest.raises(LossError, match=message):
        CompositeLoss(terms)


def test_every_term_is_known():
    assert set(TERMS) == {"charbonnier", "mse", "l1", "psnr", "reblur"}


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("charbonnier", {"charbonnier": 1.0}),
        ("mse", {"mse": 1.0}),
        ("l1", {"l1": 1.0}),
        ("psnr", {"psnr": 1.0}),
        ("k3dn", {"charbonnier": 1.0, "reblur": 0.1}),
    ],
)
def test_loss_configs_instantiate(name, weights):
    loss = instantiate(OmegaConf.load(CONF / f"{name}.yaml"))
    assert isinstance(loss, CompositeLoss)
    assert loss.weights == weights
    output = DeblurOutput(torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6))
    total, terms = loss(output, _batch())
    assert set(terms) == set(weights) and torch.isfinite(total)


def test_k3dn_reblur_weight_is_a_sweepable_value():
    cfg = OmegaConf.merge(
        OmegaConf.load(CONF / "k3dn.yaml"), OmegaConf.from_dotlist(["terms.reblur=0.25"])
    )
    assert instantiate(cfg).weights == {"charbonnier": 1.0, "reblur": 0.25}
