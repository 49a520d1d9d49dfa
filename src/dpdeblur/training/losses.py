"""Training losses: a weighted sum of named terms, each returned on its own for logging.

``CompositeLoss(terms={"charbonnier": 1.0, "reblur": 0.1})`` is called as
``loss(output, batch) -> (total, {name: value})``, where ``output`` is what the model
returned (a tensor or a :class:`~dpdeblur.models.output.DeblurOutput`) and ``batch`` the
sample dict (``left``, ``right``, ``target``). ``total`` is the weighted sum; the dict holds
each term's *unweighted* value, detached, for the logger.

Terms (all means over every element of the batch):

* ``charbonnier``: ``mean(sqrt((I_hat - I_S)^2 + eps^2))``, eps = 1e-3.
* ``mse``: ``mean((I_hat - I_S)^2)``.
* ``l1``: ``mean(|I_hat - I_S|)``.
* ``psnr``: ``mean_i 10 log10(MSE_i + 1e-4)``, the negative of the per-image PSNR
  averaged over the batch (HINet's "PSNR loss"), softly capped at 40 dB: the protocol's
  score is the mean of per-image PSNRs, which weighs an error on a nearly sharp image far
  more than the same error on a very blurred one; MSE over the batch does the opposite.
  The cap matters: a crop entirely in focus is exact at the start (residual heads), and
  without it (eps 1e-10) its gradient weight 1/MSE drowned every other crop and the
  network learnt to change nothing.
* ``reblur``: K3DN's reblurring regularisation (docs/k3dn.md, "The reblur term"):
  ``mean(|B_hat - B|)``. ``B_hat`` reblurs an all-in-focus image with the blur the model
  estimated for the pair: ``output.reblur_fn(I)`` (K3DN's reverse path: ``I`` encoded by
  the same encoder, the deblur blocks in reverse form with the disparity vectors of the
  blurry pair, decoded with ``I``'s own skips), where ``I`` is the ground truth
  (``reblur_image="target"``, the default) or the estimate (``"estimate"``). ``B`` is the
  mean of the views (``reblur_target="mean"``, the default) or, with ``"views"``, the term
  is the mean of the L1 distances to each view. A model whose output has no
  ``reblur_fn`` but a ``reblurred`` image is compared with that image. A model that gives
  neither is an error, unless the call says ``skip_unavailable=True`` (for validation,
  where K3DN runs in eval mode): the term is then left out of the total and of the dict.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from dpdeblur.errors import ConfigError
from dpdeblur.models.output import DeblurOutput, output_image

CHARBONNIER_EPS = 1e-3

# A term maps (model output, batch) to a scalar.
LossTerm = Callable[[Tensor | DeblurOutput, Mapping[str, Tensor]], Tensor]


class LossError(ConfigError, ValueError):
    """A loss is misconfigured or cannot be computed from what the model and batch gave."""


class TermUnavailableError(LossError):
    """A term's input is missing from the model's output (e.g. no reblurred image)."""


def charbonnier(prediction: Tensor, target: Tensor, eps: float = CHARBONNIER_EPS) -> Tensor:
    """Charbonnier (smooth L1) penalty ``mean(sqrt(d^2 + eps^2))``."""
    diff = prediction - target
    return torch.sqrt(diff * diff + eps * eps).mean()


def mse(prediction: Tensor, target: Tensor) -> Tensor:
    return torch.mean((prediction - target) ** 2)


def l1(prediction: Tensor, target: Tensor) -> Tensor:
    return torch.mean(torch.abs(prediction - target))


PSNR_LOSS_EPS = 1e-4  # caps each image's PSNR term near 40 dB


def negative_psnr(prediction: Tensor, target: Tensor, eps: float = PSNR_LOSS_EPS) -> Tensor:
    """``mean_i 10 log10(MSE_i + eps)`` over the images ``i`` of the batch (= -mean PSNR)."""
    per_image = ((prediction - target) ** 2).flatten(1).mean(dim=1)
    return (10.0 * torch.log10(per_image + eps)).mean()


def _batch_tensor(batch: Mapping[str, Tensor], key: str, term: str) -> Tensor:
    if key not in batch:
        raise LossError(
            f"loss term {term!r} needs batch[{key!r}], but the batch has only {sorted(batch)}",
            fix="use a dataset that provides it, or drop the term from the loss config",
        )
    return batch[key]


def _image_term(metric: Callable[[Tensor, Tensor], Tensor], name: str) -> LossTerm:
    """The term ``metric(restored image, batch["target"])``."""

    def term(output: Tensor | DeblurOutput, batch: Mapping[str, Tensor]) -> Tensor:
        return metric(output_image(output), _batch_tensor(batch, "target", name))

    return term


REBLUR_IMAGES = ("target", "estimate")
REBLUR_TARGETS = ("mean", "views")


def reblur_term(
    output: Tensor | DeblurOutput,
    batch: Mapping[str, Tensor],
    image: str = "target",
    target: str = "mean",
) -> Tensor:
    """L1 between the reblurred all-in-focus image and the blurry input (module doc)."""
    reblur_fn = output.reblur_fn if isinstance(output, DeblurOutput) else None
    if reblur_fn is not None:
        source = output.image if image == "estimate" else _batch_tensor(batch, "target", "reblur")
        reblurred = reblur_fn(source)
    else:
        reblurred = output.reblurred if isinstance(output, DeblurOutput) else None
    if reblurred is None:
        raise TermUnavailableError(
            "loss term 'reblur' needs the model's reblurred image, but the model returned "
            "none (only K3DN gives one, and only in training mode)",
            fix="use loss=charbonnier for this model, or train a K3DN model",
        )
    left = _batch_tensor(batch, "left", "reblur")
    right = _batch_tensor(batch, "right", "reblur")
    if target == "views":
        return (l1(reblurred, left) + l1(reblurred, right)) / 2
    return l1(reblurred, (left + right) / 2)


TERMS: dict[str, LossTerm] = {
    "charbonnier": _image_term(charbonnier, "charbonnier"),
    "mse": _image_term(mse, "mse"),
    "l1": _image_term(l1, "l1"),
    "psnr": _image_term(negative_psnr, "psnr"),
    "reblur": reblur_term,
}


class CompositeLoss(nn.Module):
    """Weighted sum of named loss terms (see the module docstring for the terms).

    Args:
        terms: ``{name: weight}``; names from :data:`TERMS`, weights finite and >= 0.
        reblur_image: what the ``reblur`` term reblurs, ``"target"`` or ``"estimate"``.
        reblur_target: what it compares with, ``"mean"`` (of the views) or ``"views"``.
    """

    def __init__(
        self,
        terms: Mapping[str, float],
        reblur_image: str = "target",
        reblur_target: str = "mean",
    ):
        super().__init__()
        if reblur_image not in REBLUR_IMAGES:
            raise LossError(f"reblur_image must be one of {REBLUR_IMAGES}, got {reblur_image!r}")
        if reblur_target not in REBLUR_TARGETS:
            raise LossError(f"reblur_target must be one of {REBLUR_TARGETS}, got {reblur_target!r}")
        self.reblur_options = {"image": reblur_image, "target": reblur_target}
        if not terms:
            raise LossError("a loss needs at least one term", fix=f"choose from {sorted(TERMS)}")
        weights: dict[str, float] = {}
        for name, weight in terms.items():
            if name not in TERMS:
                raise LossError(f"unknown loss term {name!r}", fix=f"choose from {sorted(TERMS)}")
            weight = float(weight)
            if not math.isfinite(weight) or weight < 0:
                raise LossError(f"loss term {name!r} has weight {weight}; weights must be >= 0")
            weights[name] = weight
        self.weights = weights

    def forward(
        self,
        output: Tensor | DeblurOutput,
        batch: Mapping[str, Tensor],
        skip_unavailable: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Return ``(total, {name: unweighted value, detached})``."""
        total: Tensor | None = None
        values: dict[str, Tensor] = {}
        for name, weight in self.weights.items():
            try:
                if name == "reblur":
                    value = reblur_term(output, batch, **self.reblur_options)
                else:
                    value = TERMS[name](output, batch)
            except TermUnavailableError:
                if skip_unavailable:
                    continue
                raise
            values[name] = value.detach()
            total = weight * value if total is None else total + weight * value
        if total is None:
            total = output_image(output).new_zeros(())
        return total, values

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={weight:g}" for name, weight in self.weights.items())
