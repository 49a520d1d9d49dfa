"""What a model returns: the image, or the image with auxiliaries that loss terms read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class DeblurOutput:
    """A restored image plus optional training-time auxiliaries.

    ``reblurred``: the input blur re-synthesised from the restored estimate, compared with
    the mean of the input views by the ``reblur`` loss term. ``reblur_fn``: reblurs any
    all-in-focus B x 3 x H x W image with the blur the model estimated for this pair (K3DN's
    reverse path, training mode only); the ``reblur`` term calls it on the ground truth or
    the estimate. Models that have no auxiliaries simply return the image tensor.
    """

    image: Tensor
    reblurred: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    reblur_fn: Callable[[Tensor], Tensor] | None = None


def output_image(output: Tensor | DeblurOutput) -> Tensor:
    """The restored image of a model's output, whichever form the model returned."""
    return output.image if isinstance(output, DeblurOutput) else output
