"""What a model returns: the image, or the image with auxiliaries that loss terms read."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class DeblurOutput:
    """A restored image plus optional training-time auxiliaries.

    ``reblurred``: the input blur re-synthesised from the restored estimate (K3DN's reblur
    regularisation), compared with the mean of the input views by the ``reblur`` loss term.
    Models that have no auxiliaries simply return the image tensor.
    """

    image: Tensor
    reblurred: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)


def output_image(output: Tensor | DeblurOutput) -> Tensor:
    """The restored image of a model's output, whichever form the model returned."""
    return output.image if isinstance(output, DeblurOutput) else output
